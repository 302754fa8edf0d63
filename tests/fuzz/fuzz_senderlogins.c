// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target: the sender_logins parser on arbitrary file contents,
 * then the matcher. Input: MAP [0xff USER '\n' SENDER]. A map that parses
 * must answer consistently: an owned sender stays owned in other case, and
 * no user outside the map owns anything.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "senderlogins.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *sep = memchr(data, 0xff, size);
	size_t maplen = sep ? (size_t)(sep - data) : size;
	struct rg_senderlogins *sl;
	char err[300];

	if (size > 1 << 20)
		return 0;
	err[0] = 'x';
	sl = rg_senderlogins_parse((const char *)data, maplen, "fuzz", err, sizeof(err));
	if (!sl) {
		/* every failure names the file and line */
		if (strncmp(err, "fuzz:", 5))
			abort();
		return 0;
	}
	if (err[0] != '\0' || rg_senderlogins_entries(sl) < rg_senderlogins_users(sl))
		abort();
	if (sep) {
		const char *rest = (const char *)sep + 1;
		size_t rl = size - maplen - 1;
		const char *nl = memchr(rest, '\n', rl);
		char *user, *sender, *upper;
		size_t ul = nl ? (size_t)(nl - rest) : rl, i;
		enum rg_sl_result r, r2;

		user = strndup(rest, ul);
		sender = strndup(nl ? nl + 1 : "", nl ? rl - ul - 1 : 0);
		if (!user || !sender)
			abort();
		r = rg_senderlogins_check(sl, user, sender, "+-");
		upper = strdup(sender);
		for (i = 0; upper[i]; i++)
			if (upper[i] >= 'a' && upper[i] <= 'z')
				upper[i] -= 32;
		r2 = rg_senderlogins_check(sl, user, upper, "+-");
		if (r != r2)
			abort();
		if (r == RG_SL_OWNED && rg_senderlogins_check(sl, "", sender, NULL) == RG_SL_OWNED)
			abort();         /* "" can never be a user in a parsed map */
		free(upper);
		free(user);
		free(sender);
	}
	rg_senderlogins_free(sl);
	return 0;
}
