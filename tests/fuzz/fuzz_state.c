// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the state file parser (user/state.c). Any input:
 * no crash, no leak, no undefined behaviour; and what it loads survives a
 * write and a re-parse unchanged (after one pass the text is a fixed point)
 * with nothing counted bad or expired on the way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "log.h"
#include "state.h"

/* Clocks that are not whole seconds, so the rounding is exercised. */
static const struct rg_state_clocks now = {
	.boot_ns = 5000ULL * 1000000000 + 123456789,
	.real_ns = 1700000000ULL * 1000000000 + 987654321,
};

static char *write_text(const struct rg_state *st, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (!f || rg_state_write(f, st, &now) || fclose(f))
		abort();
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	struct rg_state a = { 0 }, b = { 0 };
	char *t1, *t2;
	size_t l1, l2;

	if (!quiet++)
		rg_log_init("fuzz_state", false, RG_LOG_ERR);
	if (rg_state_parse((const char *)data, size, &now, &a, "fuzz")) {
		if (a.ngrants || a.ndenies)	/* a refused file adds nothing */
			abort();
		rg_state_free(&a);
		return 0;
	}
	t1 = write_text(&a, &l1);
	if (rg_state_parse(t1, l1, &now, &b, "pass 1") || b.bad || b.expired ||
	    b.ngrants != a.ngrants || b.ndenies != a.ndenies)
		abort();
	t2 = write_text(&b, &l2);
	if (l1 != l2 || memcmp(t1, t2, l1))
		abort();
	free(t1);
	free(t2);
	rg_state_free(&a);
	rg_state_free(&b);
	return 0;
}
