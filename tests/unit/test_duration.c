// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Durations (grant and deny TTLs, --watch): every accepted form, every
 * refusal with its reason, the 3650-day ceiling without overflow, and
 * rg_duration_str() printing what rg_duration_parse() reads back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "duration.h"

static void good(const char *s, uint64_t want)
{
	const char *why = NULL;
	uint64_t sec = 12345;

	if (rg_duration_parse(s, &sec, &why))
		fail_msg("duration '%s' refused: %s", s, why);
	if (sec != want)
		fail_msg("duration '%s' = %llu s, want %llu", s, (unsigned long long)sec,
			 (unsigned long long)want);
}

static void bad(const char *s, const char *want)
{
	const char *why = NULL;
	uint64_t sec = 12345;

	if (!rg_duration_parse(s, &sec, &why))
		fail_msg("duration '%s' accepted as %llu s", s, (unsigned long long)sec);
	assert_non_null(why);
	if (want && !strstr(why, want))
		fail_msg("duration '%s': reason '%s' lacks '%s'", s, why, want);
	/* A refused duration leaves the output alone. */
	assert_int_equal(sec, 12345);
}

static void test_units(void **state)
{
	(void)state;
	good("90s", 90);
	good("30m", 1800);
	good("2h", 7200);
	good("1d", 86400);
	good("0s", 0);
	good("1s", 1);
	good("60m", 3600);
	good("48h", 172800);
}

static void test_bare_seconds(void **state)
{
	(void)state;
	good("0", 0);
	good("1", 1);
	good("300", 300);
	good("0300", 300);      /* a leading zero is harmless in a count */
	good("315360000", RG_DURATION_MAX_SEC);
}

static void test_compound(void **state)
{
	(void)state;
	good("1h30m", 5400);
	good("1d2h", 93600);
	good("1d1h1m1s", 90061);
	good("2m30s", 150);
	good("1h0m", 3600);
}

static void test_refused(void **state)
{
	(void)state;
	bad("", "empty");
	bad("-5", "negative");
	bad("-5m", "negative");
	bad("banana", "not a duration");
	bad("m", "not a duration");
	bad("+5", "not a duration");
	bad(" 5", "not a duration");
	bad("5 ", "unknown unit");
	bad("5\n", "unknown unit");
	bad("5 m", "unknown unit");
	bad("1.5h", "unknown unit");
	bad("1,5h", "unknown unit");
	bad("30M", "unknown unit");     /* months? minutes? refuse */
	bad("1H", "unknown unit");
	bad("2w", "unknown unit");
	bad("5ms", "unknown unit");
	bad("10sec", "unknown unit");
	bad("10min", "unknown unit");
	bad("1m1h", "largest first");
	bad("1h1h", "largest first");
	bad("30m5", "without a unit");
	bad("1e3", "unknown unit");
	bad("0x10", "unknown unit");
	bad("5mm", "unknown unit");
	bad("5m5m", "largest first");
}

static void test_limits(void **state)
{
	(void)state;
	good("3650d", RG_DURATION_MAX_SEC);
	good("87600h", RG_DURATION_MAX_SEC);
	good("5256000m", RG_DURATION_MAX_SEC);
	bad("3651d", "too long");
	bad("3650d1s", "too long");
	bad("315360001", "too long");
	bad("87601h", "too long");
	/* Numbers that would wrap 64 bits must not come back small. */
	bad("18446744073709551616", "too long");
	bad("18446744073709551617s", "too long");
	bad("213503982334601d", "too long");    /* * 86400 wraps to a small number */
	bad("99999999999999999999999999999", "too long");
	bad("1111111111111111111111111111111111111111", "too long");
}

static void test_str(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(rg_duration_str(0, buf, sizeof(buf)), "0s");
	assert_string_equal(rg_duration_str(45, buf, sizeof(buf)), "45s");
	assert_string_equal(rg_duration_str(60, buf, sizeof(buf)), "1m");
	assert_string_equal(rg_duration_str(90, buf, sizeof(buf)), "1m30s");
	assert_string_equal(rg_duration_str(1800, buf, sizeof(buf)), "30m");
	assert_string_equal(rg_duration_str(5400, buf, sizeof(buf)), "1h30m");
	assert_string_equal(rg_duration_str(86400, buf, sizeof(buf)), "1d");
	assert_string_equal(rg_duration_str(90061, buf, sizeof(buf)), "1d1h1m1s");
	assert_string_equal(rg_duration_str(RG_DURATION_MAX_SEC, buf, sizeof(buf)), "3650d");
	/* Beyond what parse accepts still prints, and never overruns. */
	assert_string_equal(rg_duration_str(UINT64_MAX, buf, sizeof(buf)),
			    "213503982334601d7h15s");
}

static void test_str_small_buffer(void **state)
{
	char buf[5];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	rg_duration_str(90061, buf, sizeof(buf));
	assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
	assert_int_equal(strncmp(buf, "1d1h", 4), 0);
	memset(buf, 'x', sizeof(buf));
	rg_duration_str(UINT64_MAX, buf, 1);
	assert_int_equal(buf[0], '\0');
	/* len 0: nothing written at all. */
	buf[0] = 'x';
	rg_duration_str(5, buf, 0);
	assert_int_equal(buf[0], 'x');
}

static void test_roundtrip(void **state)
{
	static const uint64_t samples[] = {
		0, 1, 59, 60, 61, 3599, 3600, 3601, 86399, 86400, 86401, 90061,
		1000000, 31536000, RG_DURATION_MAX_SEC - 1, RG_DURATION_MAX_SEC,
	};
	char buf[32];
	const char *why;
	uint64_t sec, got, x;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		rg_duration_str(samples[i], buf, sizeof(buf));
		if (rg_duration_parse(buf, &sec, &why))
			fail_msg("'%s' (from %llu) refused: %s", buf,
				 (unsigned long long)samples[i], why);
		assert_int_equal(sec, samples[i]);
	}
	/* A pseudo-random sweep over the whole range. */
	for (x = 12345, i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		sec = (x >> 20) % (RG_DURATION_MAX_SEC + 1);
		rg_duration_str(sec, buf, sizeof(buf));
		if (rg_duration_parse(buf, &got, &why))
			fail_msg("'%s' (from %llu) refused: %s", buf, (unsigned long long)sec, why);
		assert_int_equal(got, sec);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_bare_seconds),
		cmocka_unit_test(test_compound),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_str),
		cmocka_unit_test(test_str_small_buffer),
		cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
