/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Addresses and CIDRs in the rg_addr form of maps/relaygate.h. */
#ifndef RG_CIDR_H
#define RG_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include "relaygate.h"

/* Longest text form of an address or CIDR, with NUL. */
#define RG_ADDRSTRLEN 64

/*
 * Parse "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (stored as IPv4).
 * Returns 0, or -1 with a static reason in *why ("not an IP address", ...).
 */
int rg_addr_parse(const char *s, struct rg_addr *a, const char **why);

/*
 * Parse a CIDR "192.0.2.0/24", "2001:db8::/48", or a bare address (full
 * length). Host bits set below the prefix are an error ("host bits set",
 * a mail admin typo worth catching). ::ffff:a.b.c.d/N with N >= 96 becomes
 * the IPv4 prefix a.b.c.d/(N-96).
 */
int rg_cidr_parse(const char *s, struct rg_addr *a, unsigned *prefixlen,
		  const char **why);

/* Zero the bits of a below prefixlen (clamped to the family's length). */
void rg_addr_mask(struct rg_addr *a, unsigned prefixlen);
/* Mask to the grant/deny key prefix of its family. */
void rg_addr_key(struct rg_addr *a, unsigned v4_prefix, unsigned v6_prefix);
bool rg_addr_in(const struct rg_addr *a, const struct rg_addr *net, unsigned prefixlen);

/*
 * Source addresses no TCP client can have, each with its reason for
 * messages: X(KIND, "reason"). An auth event naming one grants nothing
 * (SPEC: "names an impossible address"). Every source of events checks
 * with rg_addr_not_client(); each words the refusal its own way, e.g.
 * "bad address: " reason on the control socket.
 */
#define RG_NOT_CLIENT_KINDS(X)                                                \
	X(UNSPEC4, "unspecified (0.0.0.0/8)")                                 \
	X(RESERVED4, "multicast, reserved or broadcast (224.0.0.0/3)")        \
	X(UNSPEC6, "unspecified (::)")                                        \
	X(MCAST6, "multicast (ff00::/8)")

enum rg_not_client {
	RG_CLIENT_OK = 0,               /* a client can have it */
#define RG_NOT_CLIENT_ENUM(kind, why) RG_NOT_CLIENT_##kind,
	RG_NOT_CLIENT_KINDS(RG_NOT_CLIENT_ENUM)
#undef RG_NOT_CLIENT_ENUM
	RG_NOT_CLIENT_NKINDS
};

/*
 * Which kind of impossible source a is, or RG_CLIENT_OK. An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d, which rg_addr_parse already stores as
 * IPv4) is judged as its IPv4 address in either form.
 */
enum rg_not_client rg_addr_not_client(const struct rg_addr *a);
/* The reason of a kind ("unspecified (0.0.0.0/8)"); NULL for RG_CLIENT_OK. */
const char *rg_not_client_str(enum rg_not_client kind);

/* Text forms: "192.0.2.1", "2001:db8::/48". Return buf. */
char *rg_addr_str(const struct rg_addr *a, char *buf, size_t len);
char *rg_cidr_str(const struct rg_addr *a, unsigned prefixlen, char *buf, size_t len);

#endif
