// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Durations: "90s", "30m", "2h", "1d", bare seconds "300", and the compound
 * form rg_duration_str() prints ("1h30m", "1d2h"): each unit at most once,
 * largest first. No signs, spaces, fractions or upper-case units ("30M"
 * could be months), and nothing beyond RG_DURATION_MAX_SEC.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include "duration.h"

/* Longest input we look at: far more than any valid duration needs. */
#define INPUT_MAX 32

static const struct {
	char unit;
	uint64_t sec;
} units[] = {
	{ 'd', 86400 },
	{ 'h', 3600 },
	{ 'm', 60 },
	{ 's', 1 },
};

#define NUNITS (sizeof(units) / sizeof(units[0]))

static int unit_index(char c)
{
	size_t i;

	for (i = 0; i < NUNITS; i++)
		if (units[i].unit == c)
			return (int)i;
	return -1;
}

int rg_duration_parse(const char *s, uint64_t *sec, const char **why)
{
	uint64_t total = 0;
	int last = -1;
	const char *p = s;

	if (!s || !*s) {
		*why = "empty duration";
		return -1;
	}
	if (strnlen(s, INPUT_MAX + 1) > INPUT_MAX) {
		*why = "too long for a duration";
		return -1;
	}
	if (*s == '-') {
		*why = "negative duration";
		return -1;
	}
	while (*p) {
		uint64_t n = 0, part;
		int u;

		if (!isdigit((unsigned char)*p)) {
			/* "5ms", "10sec": a unit we do not know. */
			*why = last >= 0 ? "unknown unit (use s, m, h or d)"
					 : "not a duration (use e.g. 90s, 30m, 2h, 1d)";
			return -1;
		}
		while (isdigit((unsigned char)*p)) {
			n = n * 10 + (uint64_t)(*p - '0');
			if (n > RG_DURATION_MAX_SEC) {
				*why = "too long (max 3650d)";
				return -1;
			}
			p++;
		}
		if (!*p) {
			/* Bare seconds: only alone ("300"), not after a unit. */
			if (last >= 0) {
				*why = "number without a unit after a unit";
				return -1;
			}
			total = n;
			break;
		}
		u = unit_index(*p);
		if (u < 0) {
			*why = "unknown unit (use s, m, h or d)";
			return -1;
		}
		if (u <= last) {
			*why = "units must be given largest first, each once";
			return -1;
		}
		last = u;
		p++;
		part = n * units[u].sec;        /* n <= 3650d, no overflow */
		if (part > RG_DURATION_MAX_SEC || total + part > RG_DURATION_MAX_SEC) {
			*why = "too long (max 3650d)";
			return -1;
		}
		total += part;
	}
	*sec = total;
	return 0;
}

char *rg_duration_str(uint64_t sec, char *buf, size_t len)
{
	size_t i, off = 0;

	if (!len)
		return buf;
	buf[0] = '\0';
	if (!sec) {
		snprintf(buf, len, "0s");
		return buf;
	}
	for (i = 0; i < NUNITS; i++) {
		uint64_t n = sec / units[i].sec;
		int w;

		if (!n)
			continue;
		sec -= n * units[i].sec;
		w = snprintf(buf + off, len - off, "%llu%c",
			     (unsigned long long)n, units[i].unit);
		if (w < 0 || (size_t)w >= len - off)
			break;
		off += (size_t)w;
	}
	return buf;
}
