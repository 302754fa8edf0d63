// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the duration parser: no crash, never more than
 * RG_DURATION_MAX_SEC (no overflow wrapping to a small TTL), a refusal
 * always has a reason and leaves the output alone, and the printed form
 * parses back to the same number of seconds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "duration.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[64], text[48];
	uint64_t sec = 0xdeadbeef, back;
	const char *why = NULL;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';

	if (rg_duration_parse(in, &sec, &why) == 0) {
		check(sec <= RG_DURATION_MAX_SEC);
		rg_duration_str(sec, text, sizeof(text));
		check(rg_duration_parse(text, &back, &why) == 0);
		check(back == sec);
	} else {
		check(why != NULL && *why);
		check(sec == 0xdeadbeef);
	}
	return 0;
}
