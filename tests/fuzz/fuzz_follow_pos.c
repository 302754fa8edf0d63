// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the log follower's position file (follow.c
 * pos_parse, through rg_follow_pos_parse). Beyond "no crash":
 *  1. the input as a position file's contents: what is accepted keeps the
 *     invariants rg_follow_save writes (offset <= LLONG_MAX, a signature of
 *     0 or min(offset, 64) bytes), prints back (rg_follow_pos_format, the
 *     writer rg_follow_save uses) to text of the same length or shorter
 *     that parses to the same values, and stays accepted with no byte
 *     appended, removed from its end, or a NUL after it;
 *  2. the input as values: a position that rg_follow_save could write
 *     parses back to exactly those values; one it could not write (a wrong
 *     signature length, an offset past LLONG_MAX) is refused.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "follow.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static int same(const struct rg_follow_pos *a, const struct rg_follow_pos *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->off == b->off &&
	       a->sig_len == b->sig_len && !memcmp(a->sig, b->sig, a->sig_len);
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static size_t sig_want(uint64_t off)
{
	return off < RG_FOLLOW_SIG_MAX ? (size_t)off : RG_FOLLOW_SIG_MAX;
}

static void as_text(const uint8_t *data, size_t size)
{
	struct rg_follow_pos p, p2;
	char text[512], *more;
	int n;

	if (!rg_follow_pos_parse((const char *)data, size, &p))
		return;
	check(p.off <= (uint64_t)LLONG_MAX);
	check(p.sig_len == 0 || p.sig_len == sig_want(p.off));
	n = rg_follow_pos_format(&p, text, sizeof(text));
	check(n > 0 && (size_t)n < sizeof(text));
	/* the only freedom of an accepted text: leading zeros */
	check((size_t)n <= size);
	memset(&p2, 0, sizeof(p2));
	check(rg_follow_pos_parse(text, (size_t)n, &p2) && same(&p, &p2));

	/* strict about its end: one more byte (even a newline), one fewer,
	 * or a NUL after it (a text file cut by a crash) is not a position */
	more = malloc(size + 1);
	check(more != NULL);
	memcpy(more, data, size);
	more[size] = '\n';
	check(!rg_follow_pos_parse(more, size + 1, &p2));
	more[size] = '\0';
	check(!rg_follow_pos_parse(more, size + 1, &p2));
	check(!rg_follow_pos_parse(more, size - 1, &p2));
	free(more);
}

static void as_values(const uint8_t *data, size_t size)
{
	struct rg_follow_pos p = { 0 }, p2;
	char text[512];
	uint8_t mode;
	int n;

	if (size < 25)
		return;
	p.dev = le64(data);
	p.ino = le64(data + 8);
	p.off = le64(data + 16) & (uint64_t)LLONG_MAX;
	mode = data[24];
	if (mode & 1)
		p.off %= 3 * RG_FOLLOW_SIG_MAX;   /* short files: short signatures */
	if (!(mode & 2)) {
		p.sig_len = sig_want(p.off);
		for (size_t i = 0; i < p.sig_len; i++)
			p.sig[i] = 25 + i < size ? data[25 + i] : (uint8_t)i;
	}
	n = rg_follow_pos_format(&p, text, sizeof(text));
	check(n > 0 && (size_t)n < sizeof(text));
	check(rg_follow_pos_parse(text, (size_t)n, &p2) && same(&p, &p2));

	/* what the writer never writes is refused (one byte short, unless
	 * that is no signature: "-", which is fine) */
	if (mode & 4 && p.sig_len > 1) {
		p.sig_len--;
		n = rg_follow_pos_format(&p, text, sizeof(text));
		check(!rg_follow_pos_parse(text, (size_t)n, &p2));
		p.sig_len++;
	}
	if (mode & 8) {
		p.off += (uint64_t)LLONG_MAX + 1;
		p.sig_len = p.sig_len ? RG_FOLLOW_SIG_MAX : 0;
		n = rg_follow_pos_format(&p, text, sizeof(text));
		check(!rg_follow_pos_parse(text, (size_t)n, &p2));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	as_text(data, size);
	as_values(data, size);
	return 0;
}
