// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the address and CIDR parsers. Beyond "no crash":
 * whatever parses must be canonical (host bits zero, prefix within the
 * family, IPv4 bytes 4..15 zero), print back to text that parses to the
 * very same value, and the address and CIDR parsers must agree.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "cidr.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static void check_canonical(const struct rg_addr *a, unsigned plen)
{
	struct rg_addr m = *a;
	unsigned i;

	check(a->family == RG_AF_INET || a->family == RG_AF_INET6);
	check(plen <= (a->family == RG_AF_INET ? 32u : 128u));
	check(!a->pad[0] && !a->pad[1] && !a->pad[2]);
	if (a->family == RG_AF_INET)
		for (i = 4; i < 16; i++)
			check(a->addr[i] == 0);
	rg_addr_mask(&m, plen);
	check(!memcmp(&m, a, sizeof(m)));
	check(rg_addr_in(a, a, plen));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[128], text[RG_ADDRSTRLEN], atext[RG_ADDRSTRLEN];
	struct rg_addr a, b;
	unsigned plen, plen2;
	const char *why = NULL;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	if (rg_cidr_parse(in, &a, &plen, &why) == 0) {
		check_canonical(&a, plen);
		rg_cidr_str(&a, plen, text, sizeof(text));
		check(rg_cidr_parse(text, &b, &plen2, &why) == 0);
		check(plen2 == plen && !memcmp(&a, &b, sizeof(a)));
	} else {
		check(why != NULL && *why);
	}

	why = NULL;
	if (rg_addr_parse(in, &a, &why) == 0) {
		check_canonical(&a, a.family == RG_AF_INET ? 32 : 128);
		/* An address is also a full-length CIDR, and prints back the same. */
		check(rg_cidr_parse(in, &b, &plen, &why) == 0);
		check(plen == (a.family == RG_AF_INET ? 32u : 128u));
		check(!memcmp(&a, &b, sizeof(a)));
		rg_addr_str(&a, atext, sizeof(atext));
		check(rg_addr_parse(atext, &b, &why) == 0 && !memcmp(&a, &b, sizeof(a)));
		/* Key masking keeps the value canonical for any prefix. */
		b = a;
		rg_addr_key(&b, (unsigned)(size % 40), (unsigned)(size % 140));
		check(b.family == a.family && rg_addr_in(&a, &b, a.family == RG_AF_INET ?
						       (unsigned)(size % 40) : (unsigned)(size % 140)));
	} else {
		check(why != NULL && *why);
	}
	return 0;
}
