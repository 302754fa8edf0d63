// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * user/cluster.c messages and Redis values, and the one-line state entries
 * they carry (user/state.c rg_state_write_grant/deny, rg_state_parse_line):
 * what one host formats another parses back to the same grant or deny,
 * with the times converted through the wall clock (expiry rounded up to
 * the second, start times down); every malformed message or value is
 * refused with its reason, and nothing is half filled or written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cidr.h"
#include "cluster.h"
#include "duration.h"
#include "state.h"

#define S 1000000000ULL
#define REAL0 (1700000000ULL * S)      /* 2023-11-14, a whole second */
#define ID "0123456789abcdef"
#define LIT(s) (s), sizeof(s) - 1      /* a literal and its length, NULs and all */

/* Whole seconds: every time survives the trip exactly. */
static const struct rg_state_clocks whole = { .boot_ns = 7200 * S, .real_ns = REAL0 };
/* Half and quarter seconds: the rounding shows. */
static const struct rg_state_clocks odd = { .boot_ns = 7200 * S + S / 2, .real_ns = REAL0 + S / 4 };

static struct rg_addr addr(const char *s)
{
	struct rg_addr a;
	const char *why;

	if (rg_addr_parse(s, &a, &why))
		fail_msg("%s: %s\n", s, why);
	return a;
}

static struct rg_state_grant grant(const char *a, const struct rg_state_clocks *now,
				   uint64_t ttl_ns, uint64_t ago_ns, const char *user,
				   enum rg_origin o, enum rg_service sv)
{
	struct rg_state_grant g;

	memset(&g, 0, sizeof(g));
	g.key = addr(a);
	g.v.expires = now->boot_ns + ttl_ns;
	g.v.granted = now->boot_ns - ago_ns;
	g.v.origin = o;
	g.v.service = sv;
	strncpy(g.v.user, user, sizeof(g.v.user) - 1);
	return g;
}

static struct rg_state_deny deny(const char *a, const struct rg_state_clocks *now,
				 uint64_t ttl_ns, uint64_t ago_ns, enum rg_origin o,
				 uint32_t failures)
{
	struct rg_state_deny d;

	memset(&d, 0, sizeof(d));
	d.key = addr(a);
	d.v.expires = now->boot_ns + ttl_ns;
	d.v.created = now->boot_ns - ago_ns;
	d.v.origin = o;
	d.v.failures = failures;
	return d;
}

/* An entry line through a memory stream: the write's return value, the
 * text in line (exactly what was written). */
static int line_of(char *line, size_t len, const struct rg_state_grant *g,
		   const struct rg_state_deny *d, const struct rg_state_clocks *now)
{
	char *text = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&text, &n);
	int r;

	assert_non_null(f);
	r = g ? rg_state_write_grant(f, g, now) : rg_state_write_deny(f, d, now);
	assert_int_equal(fclose(f), 0);
	assert_true(n < len);
	memcpy(line, text, n);
	line[n] = '\0';
	free(text);
	return r;
}

static int msg_of(char *msg, size_t len, const char *host, const struct rg_state_grant *g,
		  const struct rg_state_deny *d, const struct rg_state_clocks *now)
{
	char line[1100];

	assert_int_equal(line_of(line, sizeof(line), g, d, now), 0);
	return rg_cluster_msg_format(msg, len, ID, host,
				     (g ? g->key : d->key).family == RG_AF_INET ? 32 : 128, line);
}

/* Parse len bytes of msg: must be refused with exactly the reason want. */
static void msg_bad_n(const char *msg, size_t len, const char *want)
{
	struct rg_cluster_entry e;
	char id[RG_CLUSTER_ID_LEN + 1];
	const char *why = rg_cluster_msg_parse(msg, len, &whole, id, &e);
	int shown = len > 120 ? 120 : (int)len;

	if (!why)
		fail_msg("message '%.*s' was accepted\n", shown, msg);
	if (strcmp(why, want))
		fail_msg("message '%.*s': reason '%s', not '%s'\n", shown, msg, why, want);
}

static void msg_bad(const char *msg, const char *want)
{
	msg_bad_n(msg, strlen(msg), want);
}

static void test_round_trip_grant(void **state)
{
	struct rg_state_grant g4, g6;
	struct rg_cluster_entry e;
	char msg[RG_CLUSTER_MSG_MAX + 1], id[RG_CLUSTER_ID_LEN + 1], want[256];
	int n;

	(void)state;
	/* IPv4, odd clocks: 1800 s left at .25 past REAL0 -> 1700001800.25,
	 * rounded up to ...801; granted 60 s ago -> ...999940.25, down to
	 * ...999940. */
	g4 = grant("192.0.2.1", &odd, 1800 * S, 60 * S, "bob smith%x", RG_ORIGIN_LOG,
		   RG_SERVICE_POP3);
	n = msg_of(msg, sizeof(msg), "mx1.example.org", &g4, NULL, &odd);
	snprintf(want, sizeof(want), "relaygate-cluster 1 " ID " mx1.example.org 32 grant 192.0.2.1 "
		 "1700001801 1699999940 log pop3 bob%%20smith%%25x");
	assert_string_equal(msg, want);
	assert_int_equal(n, strlen(want));

	memset(id, 'x', sizeof(id));
	assert_null(rg_cluster_msg_parse(msg, n, &odd, id, &e));
	assert_string_equal(id, ID);
	assert_string_equal(e.host, "mx1.example.org");
	assert_true(e.live);
	assert_false(e.deny);
	assert_memory_equal(&e.key, &g4.key, sizeof(e.key));
	/* Back on the boot clock: a quarter second more left than sent (the
	 * rounding up), granted a quarter second earlier (rounding down). */
	assert_int_equal(e.g.expires, odd.boot_ns + 1800 * S + 3 * S / 4);
	assert_int_equal(e.g.granted, odd.boot_ns - 60 * S - S / 4);
	assert_int_equal(e.g.origin, RG_ORIGIN_LOG);
	assert_int_equal(e.g.service, RG_SERVICE_POP3);
	assert_string_equal(e.g.user, "bob smith%x");

	/* IPv6, whole-second clocks: exactly the grant sent. */
	g6 = grant("2001:db8:1:2::", &whole, 86400 * S, 3 * S, "carol@example.org",
		   RG_ORIGIN_CLUSTER, RG_SERVICE_IMAP);
	n = msg_of(msg, sizeof(msg), "mx2", &g6, NULL, &whole);
	assert_string_equal(msg, "relaygate-cluster 1 " ID " mx2 128 grant 2001:db8:1:2:: "
			    "1700086400 1699999997 cluster imap carol@example.org");
	assert_null(rg_cluster_msg_parse(msg, n, &whole, id, &e));
	assert_string_equal(e.host, "mx2");
	assert_false(e.deny);
	assert_memory_equal(&e.key, &g6.key, sizeof(e.key));
	assert_memory_equal(&e.g, &g6.v, sizeof(e.g));

	/* Another receiver, an hour later in wall time and just after its
	 * own boot: the same 86400 s expiry has 82800 s left. */
	{
		struct rg_state_clocks later = { .boot_ns = 30 * S, .real_ns = REAL0 + 3600 * S };

		assert_null(rg_cluster_msg_parse(msg, n, &later, id, &e));
		assert_int_equal(e.g.expires, 30 * S + 82800 * S);
		assert_int_equal(e.g.granted, 0);	/* before this boot: clamped */
	}
}

static void test_round_trip_deny(void **state)
{
	struct rg_state_deny d4, d6;
	struct rg_cluster_entry e;
	char msg[RG_CLUSTER_MSG_MAX + 1], id[RG_CLUSTER_ID_LEN + 1];
	int n;

	(void)state;
	d4 = deny("203.0.113.9", &odd, 3600 * S + S / 10, 5 * S, RG_ORIGIN_LOG, 10);
	n = msg_of(msg, sizeof(msg), "mx1", NULL, &d4, &odd);
	/* 3600.1 s after REAL0 + .25: 1700003600.35 -> ...601. */
	assert_string_equal(msg, "relaygate-cluster 1 " ID " mx1 32 deny 203.0.113.9 "
			    "1700003601 1699999995 log 10");
	assert_null(rg_cluster_msg_parse(msg, n, &odd, id, &e));
	assert_string_equal(id, ID);
	assert_string_equal(e.host, "mx1");
	assert_true(e.live);
	assert_true(e.deny);
	assert_memory_equal(&e.key, &d4.key, sizeof(e.key));
	assert_int_equal(e.d.expires, odd.boot_ns + 3600 * S + 3 * S / 4);
	assert_true(e.d.expires >= d4.v.expires && e.d.expires < d4.v.expires + S);
	assert_int_equal(e.d.created, odd.boot_ns - 5 * S - S / 4);
	assert_int_equal(e.d.origin, RG_ORIGIN_LOG);
	assert_int_equal(e.d.failures, 10);

	d6 = deny("2001:db8::", &whole, 120 * S, 0, RG_ORIGIN_CLI, 0);
	n = msg_of(msg, sizeof(msg), "h", NULL, &d6, &whole);
	assert_string_equal(msg, "relaygate-cluster 1 " ID " h 128 deny 2001:db8:: "
			    "1700000120 1700000000 cli 0");
	assert_null(rg_cluster_msg_parse(msg, n, &whole, id, &e));
	assert_true(e.deny);
	assert_memory_equal(&e.key, &d6.key, sizeof(e.key));
	assert_memory_equal(&e.d, &d6.v, sizeof(e.d));
}

static void test_expired(void **state)
{
	struct rg_cluster_entry e;
	char id[RG_CLUSTER_ID_LEN + 1];
	const char *ok = "relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700000001 0 log 1";

	(void)state;
	/* whole: now is exactly 1700000000. */
	msg_bad("relaygate-cluster 1 " ID " h 32 grant 192.0.2.1 1699999999 1699999000 log pop3 a",
		"expired");
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700000000 0 log 1", "expired");
	assert_null(rg_cluster_msg_parse(ok, strlen(ok), &whole, id, &e));
	assert_int_equal(e.d.expires, whole.boot_ns + S);
	/* Too far ahead is corrupt, not a long grant (ten years and a day). */
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 2015446400 0 log 1",
		"expiry too far in the future");
}

static void test_rejects(void **state)
{
	char host65[66], host64[65], msg[2048];
	struct rg_cluster_entry e;
	char id[RG_CLUSTER_ID_LEN + 1];
	const char *entry = "grant 192.0.2.1 1700001000 1699999000 log pop3 alice";
	size_t n;

	(void)state;
	/* Magic and version. */
	msg_bad("relaygate-cluster 2 " ID " h 32 grant 192.0.2.1 1700001000 1699999000 log pop3 a",
		"not a relaygate-cluster 1 message");
	msg_bad("relaygate-cluster 10 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1",
		"not a relaygate-cluster 1 message");
	msg_bad("Relaygate-cluster 1 " ID " h deny 192.0.2.1 1700001000 0 log 1",
		"not a relaygate-cluster 1 message");
	msg_bad("relaygate-state 1", "not a relaygate-cluster 1 message");
	msg_bad("", "not a relaygate-cluster 1 message");
	/* Instance id: 16 lower-case hex digits. */
	msg_bad("relaygate-cluster 1 0123456789abcde h 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad instance id");
	msg_bad("relaygate-cluster 1 0123456789abcdef0 h 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad instance id");
	msg_bad("relaygate-cluster 1 0123456789ABCDEF h 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad instance id");
	msg_bad("relaygate-cluster 1 0123456789abcdeg h 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad instance id");
	msg_bad("relaygate-cluster 1  h 32 deny 192.0.2.1 1700001000 0 log 1", "bad instance id");
	msg_bad("relaygate-cluster 1 " ID, "bad instance id");
	/* Host: 1..64 bytes in '!'..'~'. */
	msg_bad("relaygate-cluster 1 " ID "  deny 192.0.2.1 1700001000 0 log 1", "bad host name");
	memset(host65, 'h', 65);
	host65[65] = '\0';
	snprintf(msg, sizeof(msg), "relaygate-cluster 1 " ID " %s 32 %s", host65, entry);
	msg_bad(msg, "bad host name");
	memcpy(host64, host65, 64);
	host64[64] = '\0';
	snprintf(msg, sizeof(msg), "relaygate-cluster 1 " ID " %s 32 %s", host64, entry);
	assert_null(rg_cluster_msg_parse(msg, strlen(msg), &whole, id, &e));
	assert_string_equal(e.host, host64);
	msg_bad("relaygate-cluster 1 " ID " mx\x01 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad host name");
	msg_bad("relaygate-cluster 1 " ID " mx\x7f 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad host name");
	msg_bad("relaygate-cluster 1 " ID " mx\tb 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad host name");
	msg_bad("relaygate-cluster 1 " ID " h\xc3\xa9 32 deny 192.0.2.1 1700001000 0 log 1",
		"bad host name");
	/* Length: RG_CLUSTER_MSG_MAX bytes are looked at, one more is not. */
	n = (size_t)snprintf(msg, sizeof(msg), "relaygate-cluster 1 " ID " h 32 %s ", entry);
	memset(msg + n, 'x', sizeof(msg) - n);
	msg_bad_n(msg, RG_CLUSTER_MSG_MAX + 1, "message too long");
	msg_bad_n(msg, RG_CLUSTER_MSG_MAX, "line too long");	/* the entry's own limit */
	/* The entry: fields, kind, bytes. */
	msg_bad("relaygate-cluster 1 " ID " h 32 grant 192.0.2.1 1700001000 1699999000 log pop3 a b",
		"wrong number of fields");
	msg_bad("relaygate-cluster 1 " ID " h 32 grant 192.0.2.1 1700001000 1699999000 log pop3",
		"wrong number of fields");
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1 2",
		"wrong number of fields");
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log",
		"wrong number of fields");
	msg_bad("relaygate-cluster 1 " ID " h 32 allow 192.0.2.1 1700001000 0 log 1",
		"unknown kind (grant or deny)");
	/* Addresses no client has: no host makes such a key. */
	msg_bad("relaygate-cluster 1 " ID " h 32 grant 0.0.0.0 1700001000 1699999000 log pop3 a",
		rg_not_client_str(RG_NOT_CLIENT_UNSPEC4));
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 224.0.0.1 1700001000 0 log 1",
		rg_not_client_str(RG_NOT_CLIENT_RESERVED4));
	msg_bad("relaygate-cluster 1 " ID " h 64 grant ff02:: 1700001000 1699999000 log pop3 a",
		rg_not_client_str(RG_NOT_CLIENT_MCAST6));
	/* but "::" is the /64 key of a login from ::1 */
	snprintf(msg, sizeof(msg), "relaygate-cluster 1 " ID " h 64 grant :: 1700001000 1699999000 log pop3 a");
	assert_null(rg_cluster_msg_parse(msg, strlen(msg), &whole, id, &e));
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.0/24 1700001000 0 log 1",
		"not an IPv4 or IPv6 address");
	msg_bad("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1\n",
		"control or non-ASCII byte");
	msg_bad("relaygate-cluster 1 " ID " h ", "bad prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 32 ", "empty entry");
	/* The prefix length: 1-3 digits, within the family, the address
	 * masked to it. */
	msg_bad("relaygate-cluster 1 " ID " h x32 deny 192.0.2.1 1700001000 0 log 1",
		"bad prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 0032 deny 192.0.2.1 1700001000 0 log 1",
		"bad prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 33 deny 192.0.2.1 1700001000 0 log 1",
		"bad prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 129 deny 2001:db8:: 1700001000 0 log 1",
		"bad prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 24 deny 192.0.2.1 1700001000 0 log 1",
		"address not masked to its prefix length");
	msg_bad("relaygate-cluster 1 " ID " h 48 deny 2001:db8:1:2:: 1700001000 0 log 1",
		"address not masked to its prefix length");
	{
		struct rg_cluster_entry pe;
		char pid[RG_CLUSTER_ID_LEN + 1];
		const char *m24 = "relaygate-cluster 1 " ID " h 24 deny 192.0.2.0 1700001000 0 log 1";
		const char *m64 = "relaygate-cluster 1 " ID " h 64 grant 2001:db8:1:2:: 1700001000 0 log pop3 a";

		assert_null(rg_cluster_msg_parse(m24, strlen(m24), &whole, pid, &pe));
		assert_int_equal(pe.plen, 24);
		assert_null(rg_cluster_msg_parse(m64, strlen(m64), &whole, pid, &pe));
		assert_int_equal(pe.plen, 64);
	}
	/* A NUL byte in each part. */
	msg_bad_n(LIT("relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 17000" "\0" "01000 0 log 1"),
		  "NUL byte");
	msg_bad_n(LIT("relaygate-cluster 1 " ID " h\0 32 deny 192.0.2.1 1700001000 0 log 1"),
		  "bad host name");
	msg_bad_n(LIT("relaygate-cluster 1 0123456789ab\0def h 32 deny 192.0.2.1 1700001000 0 log 1"),
		  "bad instance id");
	msg_bad_n(LIT("relaygate-cluster\0 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1"),
		  "not a relaygate-cluster 1 message");
}

/* Every cut of a valid message short of its last field is refused (a cut
 * inside the last field, the user or the failure count, leaves a valid
 * entry: the format has no end mark, Redis delivers messages whole). */
static void test_truncated(void **state)
{
	struct rg_state_grant g = grant("2001:db8:1:2::", &whole, 600 * S, S, "dave",
					RG_ORIGIN_PUSH, RG_SERVICE_SMTP);
	struct rg_cluster_entry e;
	char msg[RG_CLUSTER_MSG_MAX + 1], id[RG_CLUSTER_ID_LEN + 1];
	size_t last, cut;
	int n;

	(void)state;
	n = msg_of(msg, sizeof(msg), "mx1.example.org", &g, NULL, &whole);
	assert_true(n > 0);
	last = strrchr(msg, ' ') - msg;		/* the space before the user */
	for (cut = 0; cut <= last; cut++) {
		const char *why = rg_cluster_msg_parse(msg, cut, &whole, id, &e);

		if (!why)
			fail_msg("cut at %zu: '%.*s' was accepted\n", cut, (int)cut, msg);
	}
	msg_bad_n(msg, 10, "not a relaygate-cluster 1 message");
	msg_bad_n(msg, 30, "bad instance id");
	msg_bad_n(msg, 40, "bad host name");
	msg_bad_n(msg, 52, "bad host name");	/* the host whole, no space */
	msg_bad_n(msg, 53, "bad prefix length");	/* no PLEN */
	msg_bad_n(msg, 56, "bad prefix length");	/* "128", no space */
	msg_bad_n(msg, 57, "empty entry");
	msg_bad_n(msg, 66, "wrong number of fields");
	msg_bad_n(msg, last, "wrong number of fields");
	assert_null(rg_cluster_msg_parse(msg, n, &whole, id, &e));
	assert_string_equal(e.g.user, "dave");
}

/* The length given is what counts, not a NUL: bytes after it are ignored. */
static void test_not_nul_terminated(void **state)
{
	const char *m = "relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 12GARBAGE";
	const char *v = "deny 192.0.2.1 1700001000 0 log 12 trailing";
	struct rg_cluster_entry e;
	char id[RG_CLUSTER_ID_LEN + 1];

	(void)state;
	assert_null(rg_cluster_msg_parse(m, strlen(m) - 7, &whole, id, &e));
	assert_int_equal(e.d.failures, 12);
	assert_null(rg_cluster_value_parse("relaygate:deny:192.0.2.1/32", v, 34, &whole, &e));
	assert_int_equal(e.d.failures, 12);
	assert_string_equal(rg_cluster_value_parse("relaygate:deny:192.0.2.1/32", v, strlen(v),
						   &whole, &e), "wrong number of fields");
}

static void test_format_errors(void **state)
{
	char buf[RG_CLUSTER_MSG_MAX + 64], host65[66], entry[RG_CLUSTER_MSG_MAX];
	const char *e = "deny 192.0.2.1 1700001000 0 log 1";
	size_t want = strlen("relaygate-cluster 1 " ID " h 32 ") + strlen(e);

	(void)state;
	/* Bad ids. */
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "", "h", 32, e), -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789abcde", "h", 32, e),
			 -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789abcdef0", "h", 32, e),
			 -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789abcde ", "h", 32, e),
			 -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789abcde\x01", "h", 32, e),
			 -EINVAL);
	/* What the parser refuses is not written: uppercase, not hex. */
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789ABCDEF", "h", 32, e),
			 -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), "0123456789abcdeg", "h", 32, e),
			 -EINVAL);
	/* Bad hosts. */
	memset(host65, 'h', 65);
	host65[65] = '\0';
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "", 32, e), -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, host65, 32, e), -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "mx 1", 32, e), -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "mx\x7f", 32, e), -EINVAL);
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "mx\xc3\xa9", 32, e), -EINVAL);
	host65[64] = '\0';
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, host65, 32, e),
			 (int)(want + 63));
	/* Room: the message and its NUL. */
	assert_int_equal(rg_cluster_msg_format(buf, 10, ID, "h", 32, e), -ENOSPC);
	assert_int_equal(rg_cluster_msg_format(buf, want, ID, "h", 32, e), -ENOSPC);
	assert_int_equal(rg_cluster_msg_format(buf, want + 1, ID, "h", 32, e), (int)want);
	assert_string_equal(buf, "relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1");
	/* Never longer than a receiver accepts, however big the buffer. */
	memset(entry, 'x', sizeof(entry));
	entry[RG_CLUSTER_MSG_MAX - strlen("relaygate-cluster 1 " ID " h 32 ")] = '\0';
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "h", 32, entry),
			 RG_CLUSTER_MSG_MAX);
	entry[strlen(entry)] = 'x';
	entry[RG_CLUSTER_MSG_MAX - strlen("relaygate-cluster 1 " ID " h 32 ") + 1] = '\0';
	assert_int_equal(rg_cluster_msg_format(buf, sizeof(buf), ID, "h", 32, entry), -ENOSPC);
}

static void test_key(void **state)
{
	struct rg_addr a4 = addr("192.0.2.1"), a6 = addr("2001:db8:1:2::");
	char buf[128];

	(void)state;
	rg_cluster_key(buf, sizeof(buf), false, &a4, 32);
	assert_string_equal(buf, "relaygate:grant:192.0.2.1/32");
	rg_cluster_key(buf, sizeof(buf), true, &a4, 24);
	assert_string_equal(buf, "relaygate:deny:192.0.2.1/24");
	rg_cluster_key(buf, sizeof(buf), false, &a6, 64);
	assert_string_equal(buf, "relaygate:grant:2001:db8:1:2::/64");
	rg_cluster_key(buf, sizeof(buf), true, &a6, 128);
	assert_string_equal(buf, "relaygate:deny:2001:db8:1:2::/128");
	/* ::ffff:a.b.c.d is the IPv4 address, and so is its key. */
	a6 = addr("::ffff:198.51.100.7");
	rg_cluster_key(buf, sizeof(buf), false, &a6, 32);
	assert_string_equal(buf, "relaygate:grant:198.51.100.7/32");
	/* A short buffer gets a cut, terminated key. */
	rg_cluster_key(buf, 10, false, &a4, 32);
	assert_string_equal(buf, "relaygate");
}

static void value_bad(const char *key, const char *val, const char *want)
{
	struct rg_cluster_entry e;
	const char *why = rg_cluster_value_parse(key, val, strlen(val), &whole, &e);

	if (!why)
		fail_msg("value '%s' under '%s' was accepted\n", val, key);
	if (strcmp(why, want))
		fail_msg("value '%s' under '%s': reason '%s', not '%s'\n", val, key, why, want);
}

static void test_value_parse(void **state)
{
	struct rg_state_grant g = grant("192.0.2.1", &whole, 900 * S, 10 * S, "erin",
					RG_ORIGIN_LOG, RG_SERVICE_IMAP);
	struct rg_state_deny d = deny("2001:db8:1:2::", &whole, 300 * S, 2 * S, RG_ORIGIN_LOG, 7);
	const char *mismatch = "value does not belong to its key";
	struct rg_cluster_entry e;
	char gl[256], dl[256], key[128];

	(void)state;
	assert_int_equal(line_of(gl, sizeof(gl), &g, NULL, &whole), 0);
	assert_int_equal(line_of(dl, sizeof(dl), NULL, &d, &whole), 0);

	/* Under its own key: the entry, not live, from no host. */
	rg_cluster_key(key, sizeof(key), false, &g.key, 32);
	memset(&e, 0xa5, sizeof(e));
	assert_null(rg_cluster_value_parse(key, gl, strlen(gl), &whole, &e));
	assert_false(e.deny);
	assert_false(e.live);
	assert_string_equal(e.host, "");
	assert_memory_equal(&e.key, &g.key, sizeof(e.key));
	assert_memory_equal(&e.g, &g.v, sizeof(e.g));
	rg_cluster_key(key, sizeof(key), true, &d.key, 64);
	assert_null(rg_cluster_value_parse(key, dl, strlen(dl), &whole, &e));
	assert_true(e.deny);
	assert_false(e.live);
	assert_memory_equal(&e.key, &d.key, sizeof(e.key));
	assert_memory_equal(&e.d, &d.v, sizeof(e.d));

	/* Under another address, another kind, another prefix. */
	value_bad("relaygate:grant:192.0.2.2/32", gl, mismatch);
	value_bad("relaygate:grant:2001:db8:1:2::/64", gl, "bad prefix length");
	value_bad("relaygate:grant:192.0.2.1/24", gl, "address not masked to its prefix length");
	value_bad("relaygate:grant:192.0.2.1/", gl, "bad prefix length");
	value_bad("relaygate:grant:192.0.2.1/032", gl, mismatch);   /* not the key written */
	value_bad("relaygate:deny:192.0.2.1/32", gl, mismatch);
	value_bad("relaygate:grant:2001:db8:1:2::/64", dl, mismatch);
	value_bad("relaygate:deny:2001:db8:1:3::/64", dl, mismatch);
	value_bad("relaygate:grant:192.0.2.1 ", gl, "bad prefix length");
	value_bad("relaygate:grants:192.0.2.1/32", gl, mismatch);
	value_bad("", gl, "bad prefix length");
	/* Bad or expired values. */
	value_bad("relaygate:grant:192.0.2.1/32", "grant 192.0.2.1 1700000900",
		  "wrong number of fields");
	value_bad("relaygate:grant:192.0.2.1/32", "", "empty entry");
	value_bad("relaygate:deny:192.0.2.1/32", "deny 192.0.2.1 1699999999 0 log 1", "expired");
	value_bad("relaygate:deny:192.0.2.1/32",
		  "relaygate-cluster 1 " ID " h 32 deny 192.0.2.1 1700001000 0 log 1",
		  "unknown kind (grant or deny)");
}

/* rg_state_write_grant/deny and rg_state_parse_line on their own. */
static void test_state_line(void **state)
{
	struct rg_state_grant g = grant("198.51.100.7", &whole, 61 * S, 0, "-", RG_ORIGIN_CONTROL,
					RG_SERVICE_SMTP);
	struct rg_state_deny d = deny("2001:db8::", &whole, 3600 * S, 5 * S, RG_ORIGIN_CLI, 4);
	struct rg_state st = { 0 };
	char line[1100];
	int i;

	(void)state;
	assert_int_equal(line_of(line, sizeof(line), &g, NULL, &whole), 0);
	assert_string_equal(line, "grant 198.51.100.7 1700000061 1700000000 control smtp %2D");
	assert_null(rg_state_parse_line(line, strlen(line), &whole, &st));
	assert_int_equal(line_of(line, sizeof(line), NULL, &d, &whole), 0);
	assert_string_equal(line, "deny 2001:db8:: 1700003600 1699999995 cli 4");
	assert_null(rg_state_parse_line(line, strlen(line), &whole, &st));
	assert_int_equal(st.ngrants, 1);
	assert_int_equal(st.ndenies, 1);
	assert_memory_equal(&st.grants[0].key, &g.key, sizeof(g.key));
	assert_memory_equal(&st.grants[0].v, &g.v, sizeof(g.v));
	assert_memory_equal(&st.denies[0].key, &d.key, sizeof(d.key));
	assert_memory_equal(&st.denies[0].v, &d.v, sizeof(d.v));

	/* An empty user, a 63-byte one all escaped, a wild origin or service
	 * (written as none). */
	g = grant("192.0.2.5", &whole, 10 * S, 0, "", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	assert_int_equal(line_of(line, sizeof(line), &g, NULL, &whole), 0);
	assert_string_equal(line, "grant 192.0.2.5 1700000010 1700000000 log pop3 -");
	memset(g.v.user, ' ', RG_USER_LEN - 1);
	g.v.origin = (enum rg_origin)99;
	g.v.service = (enum rg_service)42;
	assert_int_equal(line_of(line, sizeof(line), &g, NULL, &whole), 0);
	assert_non_null(strstr(line, " none none %20%20%20"));
	assert_int_equal(strlen(strstr(line, "%20")), 3 * (RG_USER_LEN - 1));
	assert_null(rg_state_parse_line(line, strlen(line), &whole, &st));
	assert_int_equal(st.ngrants, 2);
	assert_int_equal(st.grants[1].v.origin, RG_ORIGIN_NONE);
	assert_int_equal(st.grants[1].v.service, RG_SERVICE_NONE);
	assert_memory_equal(st.grants[1].v.user, g.v.user, RG_USER_LEN);

	/* Expired (now or before) or without a family: -EINVAL, nothing written. */
	for (i = 0; i < 3; i++) {
		g = grant("192.0.2.1", &whole, 10 * S, 0, "a", RG_ORIGIN_LOG, RG_SERVICE_POP3);
		d = deny("192.0.2.1", &whole, 10 * S, 0, RG_ORIGIN_LOG, 1);
		if (i == 0) {
			g.v.expires = d.v.expires = whole.boot_ns;
		} else if (i == 1) {
			g.v.expires = d.v.expires = whole.boot_ns - S;
		} else {
			g.key.family = 0;
			d.key.family = 0;
		}
		assert_int_equal(line_of(line, sizeof(line), &g, NULL, &whole), -EINVAL);
		assert_string_equal(line, "");
		assert_int_equal(line_of(line, sizeof(line), NULL, &d, &whole), -EINVAL);
		assert_string_equal(line, "");
	}
	/* One nanosecond left still goes out, as a whole second. */
	g = grant("192.0.2.1", &whole, 1, 0, "a", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	assert_int_equal(line_of(line, sizeof(line), &g, NULL, &whole), 0);
	assert_string_equal(line, "grant 192.0.2.1 1700000001 1700000000 log pop3 a");

	/* Refused lines append nothing. */
	assert_string_equal(rg_state_parse_line(LIT("grant 192.0.2.1 1700000001 1700000000 log "
						    "pop3 a\n"), &whole, &st),
			    "control or non-ASCII byte");
	assert_string_equal(rg_state_parse_line(LIT("deny 192.0.2.1 1700000001 0\0 log 1"), &whole,
						&st), "NUL byte");
	assert_string_equal(rg_state_parse_line(LIT("deny 192.0.2.1 1699999000 0 log 1"), &whole,
						&st), "expired");
	memset(line, 'x', sizeof(line));
	assert_string_equal(rg_state_parse_line(line, 1025, &whole, &st), "line too long");
	assert_string_equal(rg_state_parse_line(line, 1024, &whole, &st),
			    "unknown kind (grant or deny)");
	assert_int_equal(st.ngrants, 2);
	assert_int_equal(st.ndenies, 1);
	rg_state_free(&st);
}

/*
 * The farthest expiry: a line that rg_state_parse_line accepts must write
 * back with the same expiry (a host passing an entry on must not shorten
 * it), or be refused as too far. Ten years (RG_DURATION_MAX_SEC) ahead
 * does; ten years and one second, at a whole-second clock, is accepted
 * (parse_expiry allows AHEAD_MAX = MAX + 1 s) but written back one second
 * shorter (expiry_to_real clamps what is left to MAX before rounding up).
 */
static void test_horizon_round_trip(void **state)
{
	const uint64_t max = RG_DURATION_MAX_SEC;
	struct rg_state st = { 0 };
	struct rg_state_deny *d;
	char in[128], out[128], bad[300] = "";
	const char *why;

	(void)state;
	for (uint64_t ahead = max - 1; ahead <= max + 1 && !bad[0]; ahead++) {
		snprintf(in, sizeof(in), "deny 192.0.2.1 %llu 1700000000 log 1",
			 (unsigned long long)(REAL0 / S + ahead));
		why = rg_state_parse_line(in, strlen(in), &whole, &st);
		if (ahead <= max)
			assert_null(why);
		if (why) {
			assert_string_equal(why, "expiry too far in the future");
			continue;
		}
		d = &st.denies[st.ndenies - 1];
		assert_int_equal(d->v.expires, whole.boot_ns + ahead * S);
		assert_int_equal(line_of(out, sizeof(out), NULL, d, &whole), 0);
		if (strcmp(in, out))
			snprintf(bad, sizeof(bad), "'%s' accepted, written back as '%s'", in, out);
	}
	rg_state_free(&st);
	if (bad[0])
		fail_msg("%s\n", bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_grant),
		cmocka_unit_test(test_round_trip_deny),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_not_nul_terminated),
		cmocka_unit_test(test_format_errors),
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_value_parse),
		cmocka_unit_test(test_state_line),
		cmocka_unit_test(test_horizon_round_trip),
	};

	return cmocka_run_group_tests_name("cluster", tests, NULL, NULL);
}
