// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for a line of a `trust add|del --file` file
 * (rg_cidr_line_parse). Beyond "no crash": an error is one line; a CIDR
 * is canonical (host bits clear, prefix within the family) and prints
 * back to a line that parses to the very same CIDR, as the argument form
 * takes it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "bulk.h"
#include "cidr.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[RG_LINE_MAX + 64];
	char err[512], text[RG_ADDRSTRLEN];
	struct rg_addr a, b, m;
	unsigned plen, plen2;
	int r;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	memset(err, 0, sizeof(err));
	r = rg_cidr_line_parse(in, &a, &plen, err, sizeof(err));
	check(r >= -1 && r <= 1);
	if (r == -1) {
		check(err[0] && !strchr(err, '\n') && strlen(err) < sizeof(err));
		return 0;
	}
	if (r == 0)
		return 0;
	check(a.family == RG_AF_INET || a.family == RG_AF_INET6);
	check(plen <= (a.family == RG_AF_INET ? 32u : 128u));
	m = a;
	rg_addr_mask(&m, plen);
	check(!memcmp(&m, &a, sizeof(a)));
	rg_cidr_str(&a, plen, text, sizeof(text));
	check(rg_cidr_line_parse(text, &b, &plen2, err, sizeof(err)) == 1);
	check(plen2 == plen && !memcmp(&a, &b, sizeof(a)));
	check(!rg_arg_cidr(text, &b, &plen2, err, sizeof(err)) && plen2 == plen);
	return 0;
}
