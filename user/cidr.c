// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Addresses and CIDRs in the rg_addr form of maps/relaygate.h.
 *
 * Parsing is strict on purpose: an address typed into a trust list or a
 * grant must mean exactly one thing. inet_pton() does the grammar (it
 * already refuses IPv4 octets with leading zeros, which other parsers read
 * as octal); we add the prefix length, the host-bits check, the
 * IPv4-mapped-to-IPv4 rule, and reasons a mail admin can act on.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "cidr.h"

/* Longest text we even look at: a full IPv6 with an embedded IPv4 and /128. */
#define INPUT_MAX 64

static const unsigned char v4mapped_prefix[12] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
};

static unsigned family_bits(const struct rg_addr *a)
{
	return a->family == RG_AF_INET ? 32 : 128;
}

/*
 * A better reason than "not an IP address" for things that look like a
 * dotted quad: an octet over 255 or a leading zero are common typos.
 */
static const char *v4_reason(const char *s)
{
	unsigned dots = 0, digits = 0, val = 0;
	const char *p;

	for (p = s; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!isdigit((unsigned char)*p))
			return NULL;
	}
	if (!dots)
		return NULL;
	for (p = s;; p++) {
		if (*p == '.' || !*p) {
			if (!digits)
				return "empty octet";
			if (!*p)
				break;
			digits = 0;
			val = 0;
			continue;
		}
		if (digits == 1 && val == 0)
			return "octet with a leading zero (ambiguous: octal?)";
		val = val * 10 + (unsigned)(*p - '0');
		if (++digits > 3 || val > 255)
			return "octet out of range (0..255)";
	}
	if (dots != 3)
		return "IPv4 address needs 4 octets";
	return NULL;
}

int rg_addr_parse(const char *s, struct rg_addr *a, const char **why)
{
	unsigned char buf[16];
	const char *reason;

	memset(a, 0, sizeof(*a));
	if (!s || !*s) {
		*why = "empty address";
		return -1;
	}
	if (strnlen(s, INPUT_MAX + 1) > INPUT_MAX) {
		*why = "too long for an IP address";
		return -1;
	}
	if (inet_pton(AF_INET, s, buf) == 1) {
		a->family = RG_AF_INET;
		memcpy(a->addr, buf, 4);
		return 0;
	}
	if (strchr(s, ':') && inet_pton(AF_INET6, s, buf) == 1) {
		if (!memcmp(buf, v4mapped_prefix, sizeof(v4mapped_prefix))) {
			a->family = RG_AF_INET;
			memcpy(a->addr, buf + 12, 4);
		} else {
			a->family = RG_AF_INET6;
			memcpy(a->addr, buf, 16);
		}
		return 0;
	}
	reason = strchr(s, ':') ? NULL : v4_reason(s);
	*why = reason ? reason : "not an IPv4 or IPv6 address";
	return -1;
}

/* Decimal with no sign, no spaces, no leading zeros: 0 and the value, -1
 * for not a number, -2 for a number too long to be a prefix length. */
static int parse_prefixlen(const char *s, unsigned *out)
{
	unsigned v = 0;
	size_t n = 0;

	if (!*s)
		return -1;
	if (s[0] == '0' && s[1])
		return -1;
	for (; *s; s++, n++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (n < 3)
			v = v * 10 + (unsigned)(*s - '0');
	}
	if (n > 3)
		return -2;
	*out = v;
	return 0;
}

static bool host_bits_set(const struct rg_addr *a, unsigned prefixlen)
{
	struct rg_addr m = *a;

	rg_addr_mask(&m, prefixlen);
	return memcmp(m.addr, a->addr, sizeof(a->addr)) != 0;
}

int rg_cidr_parse(const char *s, struct rg_addr *a, unsigned *prefixlen,
		  const char **why)
{
	char buf[INPUT_MAX + 1];
	const char *slash;
	unsigned plen;
	bool mapped;
	size_t alen;

	memset(a, 0, sizeof(*a));
	if (!s || !*s) {
		*why = "empty CIDR";
		return -1;
	}
	if (strnlen(s, INPUT_MAX + 1) > INPUT_MAX) {
		*why = "too long for a CIDR";
		return -1;
	}
	slash = strchr(s, '/');
	if (!slash) {
		if (rg_addr_parse(s, a, why))
			return -1;
		*prefixlen = family_bits(a);
		return 0;
	}
	alen = (size_t)(slash - s);
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	if (rg_addr_parse(buf, a, why))
		return -1;
	switch (parse_prefixlen(slash + 1, &plen)) {
	case 0:
		break;
	case -2:
		plen = 1000;    /* out of range for every family below */
		break;
	default:
		*why = "prefix length is not a number";
		return -1;
	}
	/* An IPv4-mapped address that rg_addr_parse turned into IPv4. */
	mapped = a->family == RG_AF_INET && strchr(buf, ':') != NULL;
	if (mapped) {
		if (plen > 128) {
			*why = "prefix length out of range (0..128)";
			return -1;
		}
		if (plen < 96) {
			*why = "IPv4-mapped prefix shorter than /96";
			return -1;
		}
		plen -= 96;
	} else if (plen > family_bits(a)) {
		*why = a->family == RG_AF_INET ? "prefix length out of range (0..32)"
					       : "prefix length out of range (0..128)";
		return -1;
	}
	if (host_bits_set(a, plen)) {
		*why = "host bits set below the prefix";
		return -1;
	}
	*prefixlen = plen;
	return 0;
}

void rg_addr_mask(struct rg_addr *a, unsigned prefixlen)
{
	unsigned bits = family_bits(a), i;

	if (prefixlen > bits)
		prefixlen = bits;
	for (i = 0; i < 16; i++) {
		unsigned lo = i * 8;

		if (lo >= prefixlen)
			a->addr[i] = 0;
		else if (prefixlen - lo < 8)
			a->addr[i] &= (__u8)(0xff << (8 - (prefixlen - lo)));
	}
	memset(a->pad, 0, sizeof(a->pad));
}

void rg_addr_key(struct rg_addr *a, unsigned v4_prefix, unsigned v6_prefix)
{
	rg_addr_mask(a, a->family == RG_AF_INET ? v4_prefix : v6_prefix);
}

bool rg_addr_in(const struct rg_addr *a, const struct rg_addr *net, unsigned prefixlen)
{
	struct rg_addr x = *a, n = *net;

	if (a->family != net->family)
		return false;
	rg_addr_mask(&x, prefixlen);
	rg_addr_mask(&n, prefixlen);
	return memcmp(x.addr, n.addr, sizeof(x.addr)) == 0;
}

static enum rg_not_client v4_not_client(const __u8 *a4)
{
	if (a4[0] == 0)
		return RG_NOT_CLIENT_UNSPEC4;
	if (a4[0] >= 224)
		return RG_NOT_CLIENT_RESERVED4;
	return RG_CLIENT_OK;
}

enum rg_not_client rg_addr_not_client(const struct rg_addr *a)
{
	static const __u8 zero[16];

	if (a->family == RG_AF_INET)
		return v4_not_client(a->addr);
	if (!memcmp(a->addr, v4mapped_prefix, sizeof(v4mapped_prefix)))
		return v4_not_client(a->addr + sizeof(v4mapped_prefix));
	if (!memcmp(a->addr, zero, sizeof(zero)))
		return RG_NOT_CLIENT_UNSPEC6;
	if (a->addr[0] == 0xff)
		return RG_NOT_CLIENT_MCAST6;
	return RG_CLIENT_OK;
}

const char *rg_not_client_str(enum rg_not_client kind)
{
	static const char *const why[RG_NOT_CLIENT_NKINDS] = {
#define NOT_CLIENT_WHY(k, w) [RG_NOT_CLIENT_##k] = w,
		RG_NOT_CLIENT_KINDS(NOT_CLIENT_WHY)
#undef NOT_CLIENT_WHY
	};

	return kind > RG_CLIENT_OK && kind < RG_NOT_CLIENT_NKINDS ? why[kind] : NULL;
}

char *rg_addr_str(const struct rg_addr *a, char *buf, size_t len)
{
	if (!len)
		return buf;
	if (a->family == RG_AF_INET) {
		if (!inet_ntop(AF_INET, a->addr, buf, (socklen_t)len))
			buf[0] = '\0';
	} else if (a->family == RG_AF_INET6) {
		if (!inet_ntop(AF_INET6, a->addr, buf, (socklen_t)len))
			buf[0] = '\0';
	} else {
		snprintf(buf, len, "?family%u", a->family);
	}
	return buf;
}

char *rg_cidr_str(const struct rg_addr *a, unsigned prefixlen, char *buf, size_t len)
{
	char tmp[RG_ADDRSTRLEN];

	rg_addr_str(a, tmp, sizeof(tmp));
	snprintf(buf, len, "%s/%u", tmp, prefixlen);
	return buf;
}
