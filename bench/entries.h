/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * entries.h: the trusted prefixes and grants every benchmark loads, the
 * same for a given N in every tool (progcost, rgfill, and through rgfill
 * the nftables sets), so relaygate and nftables are measured on the same
 * data.
 *
 * Address plan (nothing overlaps, so each packet class hits exactly one
 * reason, and the flood's spoofed sources hit none):
 *   trusted IPv4   first octet 1..100 except 10, prefix /16../32
 *   granted IPv4   first octet 101..126, /32 keys
 *   trusted IPv6   2a00::/8, prefix /48, /56, /64 or /128
 *   granted IPv6   2c00::/8, /64 keys
 *   unauthorised   198.18.0.0/15 and 2001:db8:ffff::/48 (the flood)
 * Grants alternate IPv4 (even index) and IPv6 (odd index).
 *
 * Random prefixes repeat or nest (a /16 drawn twice, a /24 inside a /16):
 * the tries keep fewer than N distinct keys at 1M (about 0.91M IPv4).
 */
#ifndef RG_BENCH_ENTRIES_H
#define RG_BENCH_ENTRIES_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relaygate.h"

struct entries {
	struct rg_lpm4 *t4;
	struct rg_lpm6 *t6;
	struct rg_addr *gk;      /* grant keys (masked: /32, /64) */
	struct rg_grant *gv;
	uint32_t n;
};

/* xorshift64*: reproducible entries for a given N. */
static inline uint64_t ent_rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dull;
}

static inline void ent_mask(uint8_t *a, unsigned bytes, unsigned plen)
{
	unsigned i;

	for (i = 0; i < bytes; i++) {
		if (plen >= 8) {
			plen -= 8;
		} else {
			a[i] &= (uint8_t)(0xff00u >> plen);
			plen = 0;
		}
	}
}

static inline uint64_t ent_boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Fill e with n of each; grants expire an hour from now. 0 or -1 (ENOMEM). */
static inline int ent_gen(struct entries *e, uint32_t n)
{
	static const unsigned p6[] = { 48, 56, 64, 128 };
	uint64_t now = ent_boot_ns(), s = 0x9e3779b97f4a7c15ull ^ n;
	uint32_t i;

	memset(e, 0, sizeof(*e));
	e->n = n;
	e->t4 = calloc(n ? n : 1, sizeof(*e->t4));
	e->t6 = calloc(n ? n : 1, sizeof(*e->t6));
	e->gk = calloc(n ? n : 1, sizeof(*e->gk));
	e->gv = calloc(n ? n : 1, sizeof(*e->gv));
	if (!e->t4 || !e->t6 || !e->gk || !e->gv)
		return -1;
	for (i = 0; i < n; i++) {
		uint64_t r = ent_rnd(&s), x;
		uint8_t o1;

		do
			o1 = (uint8_t)(1 + ent_rnd(&s) % 100);
		while (o1 == 10);
		e->t4[i].prefixlen = 16 + (unsigned)(r % 17);
		e->t4[i].addr[0] = o1;
		e->t4[i].addr[1] = (uint8_t)(r >> 8);
		e->t4[i].addr[2] = (uint8_t)(r >> 16);
		e->t4[i].addr[3] = (uint8_t)(r >> 24);
		ent_mask(e->t4[i].addr, 4, e->t4[i].prefixlen);

		e->t6[i].prefixlen = p6[(r >> 32) % 4];
		e->t6[i].addr[0] = 0x2a;
		x = ent_rnd(&s);
		memcpy(e->t6[i].addr + 1, &x, 8);
		x = ent_rnd(&s);
		memcpy(e->t6[i].addr + 9, &x, 7);
		ent_mask(e->t6[i].addr, 16, e->t6[i].prefixlen);

		if (i % 2 == 0) {
			r = ent_rnd(&s);
			e->gk[i].family = RG_AF_INET;
			e->gk[i].addr[0] = (uint8_t)(101 + r % 26);
			e->gk[i].addr[1] = (uint8_t)(r >> 8);
			e->gk[i].addr[2] = (uint8_t)(r >> 16);
			e->gk[i].addr[3] = (uint8_t)(r >> 24);
		} else {
			x = ent_rnd(&s);
			e->gk[i].family = RG_AF_INET6;
			e->gk[i].addr[0] = 0x2c;
			memcpy(e->gk[i].addr + 1, &x, 7);   /* /64: the rest stays 0 */
		}
		e->gv[i].expires = now + 3600ull * 1000000000ull;
		e->gv[i].granted = now;
		e->gv[i].origin = RG_ORIGIN_CLI;
		e->gv[i].service = RG_SERVICE_POP3;
		snprintf(e->gv[i].user, sizeof(e->gv[i].user), "user%u", i);
	}
	return 0;
}

static inline void ent_free(struct entries *e)
{
	free(e->t4);
	free(e->t6);
	free(e->gk);
	free(e->gv);
	memset(e, 0, sizeof(*e));
}

#endif /* RG_BENCH_ENTRIES_H */
