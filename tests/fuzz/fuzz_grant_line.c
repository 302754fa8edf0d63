// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for a line of a `grant add --file` file
 * (rg_grant_line_parse). Beyond "no crash": an error is one line; an entry
 * holds a canonical address, a TTL within the duration limits (0 for the
 * default) and a user the argument form accepts; and the entry written
 * back as text parses to the very same entry.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bulk.h"
#include "cidr.h"
#include "duration.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char in[RG_LINE_MAX + 64], text[RG_LINE_MAX + 64];
	char err[512], a[RG_ADDRSTRLEN];
	struct rg_grant_line gl, back;
	int r;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	memset(err, 0, sizeof(err));
	r = rg_grant_line_parse(in, &gl, err, sizeof(err));
	check(r >= -1 && r <= 1);
	if (r == -1) {
		check(err[0] && !strchr(err, '\n') && strlen(err) < sizeof(err));
		return 0;
	}
	if (r == 0)
		return 0;
	check(gl.addr.family == RG_AF_INET || gl.addr.family == RG_AF_INET6);
	check(gl.ttl_sec <= RG_DURATION_MAX_SEC);
	check(!gl.user[0] || !rg_arg_user(gl.user, err, sizeof(err)));

	rg_addr_str(&gl.addr, a, sizeof(a));
	snprintf(text, sizeof(text), "%s %llu %s", a, (unsigned long long)gl.ttl_sec, gl.user);
	if (!gl.ttl_sec)
		snprintf(text, sizeof(text), "%s - %s", a, gl.user);
	check(rg_grant_line_parse(text, &back, err, sizeof(err)) == 1);
	check(!memcmp(&back.addr, &gl.addr, sizeof(gl.addr)));
	check(back.ttl_sec == gl.ttl_sec);
	check(!strcmp(back.user, gl.user));
	return 0;
}
