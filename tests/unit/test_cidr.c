// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Addresses and CIDRs: every form an admin types into a trust list or a
 * grant, and every way it can be wrong. Each bad input must be refused with
 * a reason (never silently "fixed"), each good one must mean exactly one
 * thing and print back the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "cidr.h"

static struct rg_addr v4(unsigned a, unsigned b, unsigned c, unsigned d)
{
	struct rg_addr x;

	memset(&x, 0, sizeof(x));
	x.family = RG_AF_INET;
	x.addr[0] = (__u8)a;
	x.addr[1] = (__u8)b;
	x.addr[2] = (__u8)c;
	x.addr[3] = (__u8)d;
	return x;
}

static struct rg_addr v6(const char *s)
{
	struct rg_addr x;
	const char *why = NULL;

	assert_int_equal(rg_addr_parse(s, &x, &why), 0);
	assert_int_equal(x.family, RG_AF_INET6);
	return x;
}

static void assert_addr_eq(const struct rg_addr *a, const struct rg_addr *b)
{
	assert_int_equal(a->family, b->family);
	assert_memory_equal(a->pad, b->pad, sizeof(a->pad));
	assert_memory_equal(a->addr, b->addr, sizeof(a->addr));
}

/* Parse s as an address: must fail, with a reason containing want. */
static void addr_bad(const char *s, const char *want)
{
	struct rg_addr a;
	const char *why = NULL;

	if (rg_addr_parse(s, &a, &why) == 0)
		fail_msg("address '%s' was accepted", s);
	assert_non_null(why);
	if (want && !strstr(why, want))
		fail_msg("address '%s': reason '%s' lacks '%s'", s, why, want);
}

static void cidr_bad(const char *s, const char *want)
{
	struct rg_addr a;
	unsigned plen = 999;
	const char *why = NULL;

	if (rg_cidr_parse(s, &a, &plen, &why) == 0)
		fail_msg("CIDR '%s' was accepted as prefix /%u", s, plen);
	assert_non_null(why);
	if (want && !strstr(why, want))
		fail_msg("CIDR '%s': reason '%s' lacks '%s'", s, why, want);
}

/* Parse s as a CIDR: must succeed and print back as want. */
static void cidr_good(const char *s, const char *want, unsigned want_plen)
{
	char buf[RG_ADDRSTRLEN];
	struct rg_addr a;
	unsigned plen = 999;
	const char *why = NULL;

	if (rg_cidr_parse(s, &a, &plen, &why))
		fail_msg("CIDR '%s' refused: %s", s, why);
	assert_int_equal(plen, want_plen);
	assert_string_equal(rg_cidr_str(&a, plen, buf, sizeof(buf)), want);
}

/* ---------------------------------------------------------- addresses */

static void test_addr_ipv4(void **state)
{
	struct rg_addr a, want;
	const char *why = NULL;
	char buf[RG_ADDRSTRLEN];

	(void)state;
	assert_int_equal(rg_addr_parse("192.0.2.1", &a, &why), 0);
	want = v4(192, 0, 2, 1);
	assert_addr_eq(&a, &want);
	assert_string_equal(rg_addr_str(&a, buf, sizeof(buf)), "192.0.2.1");

	assert_int_equal(rg_addr_parse("0.0.0.0", &a, &why), 0);
	want = v4(0, 0, 0, 0);
	assert_addr_eq(&a, &want);
	assert_int_equal(rg_addr_parse("255.255.255.255", &a, &why), 0);
	want = v4(255, 255, 255, 255);
	assert_addr_eq(&a, &want);
	/* Bytes beyond the IPv4 address stay zero: they are part of map keys. */
	for (int i = 4; i < 16; i++)
		assert_int_equal(a.addr[i], 0);
}

static void test_addr_ipv6(void **state)
{
	struct rg_addr a;
	const char *why = NULL;
	char buf[RG_ADDRSTRLEN];
	static const __u8 want[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };

	(void)state;
	assert_int_equal(rg_addr_parse("2001:db8::1", &a, &why), 0);
	assert_int_equal(a.family, RG_AF_INET6);
	assert_memory_equal(a.addr, want, 16);
	assert_string_equal(rg_addr_str(&a, buf, sizeof(buf)), "2001:db8::1");

	/* Upper case and the long form are the same address, printed canonically. */
	assert_int_equal(rg_addr_parse("2001:0DB8:0000:0000:0000:0000:0000:0001", &a, &why), 0);
	assert_memory_equal(a.addr, want, 16);
	assert_string_equal(rg_addr_str(&a, buf, sizeof(buf)), "2001:db8::1");

	assert_int_equal(rg_addr_parse("::", &a, &why), 0);
	assert_int_equal(a.family, RG_AF_INET6);
	assert_int_equal(rg_addr_parse("::1", &a, &why), 0);
	assert_string_equal(rg_addr_str(&a, buf, sizeof(buf)), "::1");
	assert_int_equal(rg_addr_parse("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a, &why), 0);
	assert_int_equal(a.addr[15], 0xff);
}

static void test_addr_v4mapped(void **state)
{
	struct rg_addr a, want = v4(192, 0, 2, 7);
	const char *why = NULL;
	char buf[RG_ADDRSTRLEN];

	(void)state;
	/* SPEC: IPv4-mapped IPv6 is its IPv4 address everywhere. */
	assert_int_equal(rg_addr_parse("::ffff:192.0.2.7", &a, &why), 0);
	assert_addr_eq(&a, &want);
	assert_string_equal(rg_addr_str(&a, buf, sizeof(buf)), "192.0.2.7");
	assert_int_equal(rg_addr_parse("::FFFF:c000:0207", &a, &why), 0);
	assert_addr_eq(&a, &want);
	assert_int_equal(rg_addr_parse("0:0:0:0:0:ffff:192.0.2.7", &a, &why), 0);
	assert_addr_eq(&a, &want);

	/* Not mapped: IPv4-compatible (deprecated) and NAT64 stay IPv6. */
	assert_int_equal(rg_addr_parse("::192.0.2.7", &a, &why), 0);
	assert_int_equal(a.family, RG_AF_INET6);
	assert_int_equal(rg_addr_parse("64:ff9b::192.0.2.7", &a, &why), 0);
	assert_int_equal(a.family, RG_AF_INET6);
	assert_int_equal(rg_addr_parse("::fffe:192.0.2.7", &a, &why), 0);
	assert_int_equal(a.family, RG_AF_INET6);
}

static void test_addr_bad(void **state)
{
	(void)state;
	addr_bad("", "empty");
	addr_bad("banana", NULL);
	addr_bad("192.0.2.300", "out of range");
	addr_bad("10.0.0.256", "out of range");
	addr_bad("1.2.3.1000", "out of range");
	addr_bad("192.0.2", "4 octets");
	addr_bad("192.0.2.1.5", "4 octets");
	addr_bad("192.0.2.", "empty octet");
	addr_bad(".192.0.2", "empty octet");
	addr_bad("192..0.2", "empty octet");
	/* Leading zeros: 010 is 8 to inet_aton and 10 to a human. Refuse. */
	addr_bad("010.0.0.1", "leading zero");
	addr_bad("10.0.0.01", "leading zero");
	addr_bad("10.00.0.1", "leading zero");
	/* Forms inet_aton takes but nobody means in a trust list. */
	addr_bad("10.1", NULL);
	addr_bad("167772161", NULL);
	addr_bad("0x0a.0.0.1", NULL);
	addr_bad("-1.2.3.4", NULL);
	addr_bad("+1.2.3.4", NULL);
	addr_bad(" 192.0.2.1", NULL);
	addr_bad("192.0.2.1 ", NULL);
	addr_bad("192.0.2.1\n", NULL);
	addr_bad("192.0.2.1/32", NULL);
	/* IPv6 errors. */
	addr_bad("2001:db8::1::1", NULL);
	addr_bad("2001:db8:::1", NULL);
	addr_bad("12345::1", NULL);
	addr_bad("2001:db8::g", NULL);
	addr_bad("1:2:3:4:5:6:7:8:9", NULL);
	addr_bad("fe80::1%eth0", NULL);
	addr_bad("[2001:db8::1]", NULL);
	addr_bad("::ffff:192.0.2.300", NULL);
	addr_bad(":", NULL);
	/* Over-long input is refused before parsing. */
	addr_bad("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd:eeee", "too long");
}

/* --------------------------------------------------------------- CIDRs */

static void test_cidr_ipv4(void **state)
{
	(void)state;
	cidr_good("10.0.0.0/8", "10.0.0.0/8", 8);
	cidr_good("192.0.2.0/24", "192.0.2.0/24", 24);
	cidr_good("192.0.2.1/32", "192.0.2.1/32", 32);
	cidr_good("0.0.0.0/0", "0.0.0.0/0", 0);
	cidr_good("192.0.2.128/25", "192.0.2.128/25", 25);
	cidr_good("255.255.255.254/31", "255.255.255.254/31", 31);
	/* A bare address is the full-length prefix. */
	cidr_good("192.0.2.1", "192.0.2.1/32", 32);
}

static void test_cidr_ipv6(void **state)
{
	(void)state;
	cidr_good("2001:db8::/32", "2001:db8::/32", 32);
	cidr_good("2001:db8:1::/48", "2001:db8:1::/48", 48);
	cidr_good("::/0", "::/0", 0);
	cidr_good("2001:db8::1/128", "2001:db8::1/128", 128);
	cidr_good("2001:db8::1", "2001:db8::1/128", 128);
	cidr_good("2001:db8:0:0:8000::/65", "2001:db8:0:0:8000::/65", 65);
	cidr_good("fe80::/10", "fe80::/10", 10);
}

static void test_cidr_v4mapped(void **state)
{
	(void)state;
	/* ::ffff:a.b.c.d/N with N >= 96 is a.b.c.d/(N-96). */
	cidr_good("::ffff:192.0.2.0/120", "192.0.2.0/24", 24);
	cidr_good("::ffff:192.0.2.1/128", "192.0.2.1/32", 32);
	cidr_good("::ffff:0.0.0.0/96", "0.0.0.0/0", 0);
	cidr_good("::ffff:192.0.2.1", "192.0.2.1/32", 32);
	/* Shorter than /96 would cover non-mapped IPv6 too. */
	cidr_bad("::ffff:0.0.0.0/95", "/96");
	cidr_bad("::ffff:192.0.2.0/129", "out of range");
	cidr_bad("::ffff:192.0.2.1/120", "host bits");
}

static void test_cidr_bad(void **state)
{
	(void)state;
	cidr_bad("", "empty");
	cidr_bad("10.0.0.0/33", "out of range (0..32)");
	cidr_bad("2001:db8::/129", "out of range (0..128)");
	cidr_bad("10.0.0.300/8", "out of range (0..255)");
	cidr_bad("10.0.0.1/8", "host bits");
	cidr_bad("192.0.2.1/24", "host bits");
	cidr_bad("192.0.2.129/25", "host bits");
	cidr_bad("2001:db8::1/64", "host bits");
	cidr_bad("2001:db8:0:0:4000::/65", "host bits");
	cidr_bad("1.0.0.0/0", "host bits");
	cidr_bad("::1/0", "host bits");
	cidr_bad("10.0.0.0/", "not a number");
	cidr_bad("10.0.0.0/-1", "not a number");
	cidr_bad("10.0.0.0/+8", "not a number");
	cidr_bad("10.0.0.0/8/8", "not a number");
	cidr_bad("10.0.0.0/ 8", "not a number");
	cidr_bad("10.0.0.0/8 ", "not a number");
	cidr_bad("10.0.0.0/08", "not a number");
	cidr_bad("10.0.0.0/0x8", "not a number");
	cidr_bad("10.0.0.0/4294967304", "out of range");  /* 2^32 + 8: no wrap to /8 */
	cidr_bad("10.0.0.0/1000", "out of range");
	cidr_bad("2001:db8::/99999999999999999999", "out of range");
	cidr_bad("/8", "empty");
	cidr_bad("banana/8", NULL);
	cidr_bad("banana", NULL);
	cidr_bad("10.0.0.0\n/8", NULL);
	cidr_bad("010.0.0.0/8", "leading zero");
	cidr_bad("0.0.0.0/00", "not a number");
	cidr_bad("2001:db8::/32\n", "not a number");
}

/* ----------------------------------------------------------- masking */

static void test_mask(void **state)
{
	struct rg_addr a, want;

	(void)state;
	a = v4(192, 0, 2, 255);
	rg_addr_mask(&a, 24);
	want = v4(192, 0, 2, 0);
	assert_addr_eq(&a, &want);

	a = v4(255, 255, 255, 255);
	rg_addr_mask(&a, 0);
	want = v4(0, 0, 0, 0);
	assert_addr_eq(&a, &want);

	a = v4(255, 255, 255, 255);
	rg_addr_mask(&a, 32);
	want = v4(255, 255, 255, 255);
	assert_addr_eq(&a, &want);

	/* A prefix longer than the family is clamped, never reads bytes 4..15. */
	a = v4(10, 1, 2, 3);
	rg_addr_mask(&a, 64);
	want = v4(10, 1, 2, 3);
	assert_addr_eq(&a, &want);

	a = v4(255, 255, 255, 255);
	rg_addr_mask(&a, 9);
	want = v4(255, 128, 0, 0);
	assert_addr_eq(&a, &want);

	a = v6("2001:db8:1:2:3:4:5:6");
	rg_addr_mask(&a, 64);
	want = v6("2001:db8:1:2::");
	assert_addr_eq(&a, &want);

	a = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	rg_addr_mask(&a, 127);
	want = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
	assert_addr_eq(&a, &want);

	a = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
	rg_addr_mask(&a, 0);
	want = v6("::");
	assert_addr_eq(&a, &want);

	/* Padding is cleared too: keys compare byte for byte in the kernel. */
	a = v4(1, 2, 3, 4);
	a.pad[1] = 0x55;
	rg_addr_mask(&a, 32);
	assert_int_equal(a.pad[1], 0);
}

static void test_key(void **state)
{
	struct rg_addr a, want;

	(void)state;
	/* Defaults: IPv4 /32 (the host), IPv6 /64 (privacy addresses of one host). */
	a = v4(192, 0, 2, 77);
	rg_addr_key(&a, 32, 64);
	want = v4(192, 0, 2, 77);
	assert_addr_eq(&a, &want);

	a = v6("2001:db8:1:2:aaaa:bbbb:cccc:dddd");
	rg_addr_key(&a, 32, 64);
	want = v6("2001:db8:1:2::");
	assert_addr_eq(&a, &want);

	a = v4(192, 0, 2, 77);
	rg_addr_key(&a, 24, 128);
	want = v4(192, 0, 2, 0);
	assert_addr_eq(&a, &want);

	a = v6("2001:db8::1");
	rg_addr_key(&a, 24, 128);
	want = v6("2001:db8::1");
	assert_addr_eq(&a, &want);
}

static void test_in(void **state)
{
	struct rg_addr net = v4(10, 0, 0, 0), a;

	(void)state;
	a = v4(10, 255, 255, 255);
	assert_true(rg_addr_in(&a, &net, 8));
	a = v4(11, 0, 0, 0);
	assert_false(rg_addr_in(&a, &net, 8));
	/* /0 holds every address of its family, and only of its family. */
	a = v4(203, 0, 113, 1);
	assert_true(rg_addr_in(&a, &net, 0));
	a = v6("2001:db8::1");
	assert_false(rg_addr_in(&a, &net, 0));

	net = v6("2001:db8::");
	assert_true(rg_addr_in(&a, &net, 32));
	assert_true(rg_addr_in(&a, &net, 127));
	assert_false(rg_addr_in(&a, &net, 128));
	a = v6("2001:db9::1");
	assert_false(rg_addr_in(&a, &net, 32));
	assert_true(rg_addr_in(&a, &net, 15));
	/* First and last address of a prefix. */
	net = v4(192, 0, 2, 0);
	a = v4(192, 0, 2, 0);
	assert_true(rg_addr_in(&a, &net, 24));
	a = v4(192, 0, 2, 255);
	assert_true(rg_addr_in(&a, &net, 24));
	a = v4(192, 0, 3, 0);
	assert_false(rg_addr_in(&a, &net, 24));
	a = v4(192, 0, 1, 255);
	assert_false(rg_addr_in(&a, &net, 24));
}

static void test_str_small_buffers(void **state)
{
	struct rg_addr a = v4(192, 0, 2, 1);
	char buf[8];

	(void)state;
	/* Too small: an empty or truncated string, never an overrun. */
	memset(buf, 'x', sizeof(buf));
	rg_addr_str(&a, buf, sizeof(buf));
	assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
	memset(buf, 'x', sizeof(buf));
	rg_cidr_str(&a, 24, buf, sizeof(buf));
	assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
	a.family = 9;
	rg_addr_str(&a, buf, sizeof(buf));
	assert_true(memchr(buf, '\0', sizeof(buf)) != NULL);
}

/* Every prefix length of both families round-trips through text. */
static void test_roundtrip_all_prefixes(void **state)
{
	char text[RG_ADDRSTRLEN], back[RG_ADDRSTRLEN];
	struct rg_addr a, b;
	const char *why;
	unsigned p, plen;

	(void)state;
	for (p = 0; p <= 32; p++) {
		a = v4(255, 255, 255, 255);
		rg_addr_mask(&a, p);
		rg_cidr_str(&a, p, text, sizeof(text));
		assert_int_equal(rg_cidr_parse(text, &b, &plen, &why), 0);
		assert_int_equal(plen, p);
		assert_addr_eq(&a, &b);
		assert_string_equal(rg_cidr_str(&b, plen, back, sizeof(back)), text);
	}
	for (p = 0; p <= 128; p++) {
		a = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
		rg_addr_mask(&a, p);
		rg_cidr_str(&a, p, text, sizeof(text));
		assert_int_equal(rg_cidr_parse(text, &b, &plen, &why), 0);
		/* ffff..:/96 up to /128 masks to ::ffff:x, which is IPv4-mapped
		 * only when the first 80 bits are zero: never the case here. */
		assert_int_equal(plen, p);
		assert_addr_eq(&a, &b);
		assert_string_equal(rg_cidr_str(&b, plen, back, sizeof(back)), text);
	}
}

/* ------------------------------------------------- impossible sources */

/* Parse s (any form rg_addr_parse takes) and classify it. */
static enum rg_not_client not_client(const char *s)
{
	struct rg_addr a;
	const char *why = NULL;

	if (rg_addr_parse(s, &a, &why))
		fail_msg("address '%s' refused: %s", s, why);
	return rg_addr_not_client(&a);
}

static void test_not_client(void **state)
{
	static const struct {
		const char *addr;
		enum rg_not_client want;
	} cases[] = {
		{ "0.0.0.0", RG_NOT_CLIENT_UNSPEC4 },
		{ "0.0.0.1", RG_NOT_CLIENT_UNSPEC4 },
		{ "0.255.255.255", RG_NOT_CLIENT_UNSPEC4 },
		{ "1.0.0.0", RG_CLIENT_OK },
		{ "10.77.32.2", RG_CLIENT_OK },
		{ "127.0.0.1", RG_CLIENT_OK },
		{ "223.255.255.255", RG_CLIENT_OK },
		{ "224.0.0.1", RG_NOT_CLIENT_RESERVED4 },
		{ "239.255.255.250", RG_NOT_CLIENT_RESERVED4 },
		{ "240.0.0.1", RG_NOT_CLIENT_RESERVED4 },
		{ "255.255.255.255", RG_NOT_CLIENT_RESERVED4 },
		/* IPv4-mapped IPv6 (parsed as IPv4) is judged as IPv4. */
		{ "::ffff:0.0.0.0", RG_NOT_CLIENT_UNSPEC4 },
		{ "::ffff:255.255.255.255", RG_NOT_CLIENT_RESERVED4 },
		{ "::ffff:198.51.100.4", RG_CLIENT_OK },
		{ "::", RG_NOT_CLIENT_UNSPEC6 },
		{ "::1", RG_CLIENT_OK },
		{ "ff02::1", RG_NOT_CLIENT_MCAST6 },
		{ "ff05::1:3", RG_NOT_CLIENT_MCAST6 },
		{ "fe80::1", RG_CLIENT_OK },
		{ "2001:db8::1", RG_CLIENT_OK },
		{ "64:ff9b::1", RG_CLIENT_OK },
	};
	struct rg_addr a;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum rg_not_client got = not_client(cases[i].addr);

		if (got != cases[i].want)
			fail_msg("%s: kind %d, want %d", cases[i].addr, (int)got, (int)cases[i].want);
	}
	/* An rg_addr holding a mapped address as IPv6 (not made by
	 * rg_addr_parse) is judged as its IPv4 address all the same. */
	a = v6("2001:db8::1");
	memset(a.addr, 0, sizeof(a.addr));
	a.addr[10] = a.addr[11] = 0xff;
	assert_int_equal(rg_addr_not_client(&a), RG_NOT_CLIENT_UNSPEC4);
	a.addr[12] = 224;
	assert_int_equal(rg_addr_not_client(&a), RG_NOT_CLIENT_RESERVED4);
	a.addr[12] = 192;
	assert_int_equal(rg_addr_not_client(&a), RG_CLIENT_OK);
	/* Reasons. */
	assert_null(rg_not_client_str(RG_CLIENT_OK));
	assert_null(rg_not_client_str(RG_NOT_CLIENT_NKINDS));
	assert_string_equal(rg_not_client_str(RG_NOT_CLIENT_UNSPEC4), "unspecified (0.0.0.0/8)");
	assert_string_equal(rg_not_client_str(RG_NOT_CLIENT_RESERVED4),
			    "multicast, reserved or broadcast (224.0.0.0/3)");
	assert_string_equal(rg_not_client_str(RG_NOT_CLIENT_UNSPEC6), "unspecified (::)");
	assert_string_equal(rg_not_client_str(RG_NOT_CLIENT_MCAST6), "multicast (ff00::/8)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_ipv4),
		cmocka_unit_test(test_addr_ipv6),
		cmocka_unit_test(test_addr_v4mapped),
		cmocka_unit_test(test_addr_bad),
		cmocka_unit_test(test_cidr_ipv4),
		cmocka_unit_test(test_cidr_ipv6),
		cmocka_unit_test(test_cidr_v4mapped),
		cmocka_unit_test(test_cidr_bad),
		cmocka_unit_test(test_mask),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_in),
		cmocka_unit_test(test_str_small_buffers),
		cmocka_unit_test(test_roundtrip_all_prefixes),
		cmocka_unit_test(test_not_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
