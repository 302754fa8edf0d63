// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the Dovecot auth policy JSON parser and the
 * report -> event step. Beyond "no crash": a refusal has a reason; kept
 * strings are NUL-terminated within their buffers; an accepted body stays
 * accepted with whitespace around it, and never with a byte of garbage
 * after it; an event has a known kind, an IPv4/IPv6 address and a user
 * without control characters.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "authpolicy.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_authpolicy_req req, req2;
	struct rg_auth_event ev;
	const char *why = NULL;
	char *buf;
	int r;

	if (size > 64 * 1024)
		return 0;
	if (rg_authpolicy_parse((const char *)data, size, &req, &why) < 0) {
		check(why && *why);
		return 0;
	}
	check(memchr(req.login, '\0', sizeof(req.login)) != NULL);
	check(memchr(req.remote, '\0', sizeof(req.remote)) != NULL);
	check(memchr(req.protocol, '\0', sizeof(req.protocol)) != NULL);

	buf = malloc(size + 2);
	check(buf != NULL);
	buf[0] = ' ';
	memcpy(buf + 1, data, size);
	buf[size + 1] = '\n';
	check(rg_authpolicy_parse(buf, size + 2, &req2, &why) == 0);
	check(!strcmp(req.login, req2.login) && req.success == req2.success);
	buf[size + 1] = 'x';
	check(rg_authpolicy_parse(buf, size + 2, &req2, &why) == -1);
	free(buf);

	why = NULL;
	r = rg_authpolicy_event(&req, &ev, &why);
	check(r >= -1 && r <= 1);
	if (r != 1) {
		check(why && *why);
		return 0;
	}
	check(ev.kind == RG_EV_LOGIN || ev.kind == RG_EV_FAILURE);
	check(ev.addr.family == RG_AF_INET || ev.addr.family == RG_AF_INET6);
	check(ev.origin == RG_ORIGIN_PUSH);
	check(ev.service < RG_SERVICE_MAX);
	for (size_t i = 0; ev.user[i]; i++)
		check((unsigned char)ev.user[i] >= 0x20 && ev.user[i] != 0x7f);
	return 0;
}
