// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Bulk loading: the --file line formats and their reader (user/bulk.c),
 * and the batch map operations behind them (user/gatemaps.c):
 * rg_grant_put_many's all-or-nothing rules, the batch trust add/del, and
 * the batch listings. The map tests need root (skipped without it, a
 * failure under CI=true) and use a gate created under a unique pin dir.
 *
 * Under valgrind error reporting is paused during map tests, as in
 * test_gatemaps.c (libbpf 1.1 false positives in valgrind's bpf() checks).
 */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>
#include "bulk.h"
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"
#include "gatefix.h"

#define GRANTS_MAX 1024

/* A line that must fail, with err containing want. */
static void grant_line_bad(const char *line, const char *want)
{
	struct rg_grant_line gl;
	char err[512] = "";

	if (rg_grant_line_parse(line, &gl, err, sizeof(err)) != -1)
		fail_msg("'%s' parsed", line);
	if (!strstr(err, want))
		fail_msg("'%s': error '%s' does not name '%s'", line, err, want);
	assert_null(strchr(err, '\n'));
}

/* ---------------------------------------------------------- line formats */

static void test_grant_line_fields(void **state)
{
	struct rg_grant_line gl;
	struct rg_addr a = addr("192.0.2.1");
	char err[256];

	(void)state;
	assert_int_equal(rg_grant_line_parse("192.0.2.1", &gl, err, sizeof(err)), 1);
	assert_memory_equal(&gl.addr, &a, sizeof(a));
	assert_int_equal(gl.ttl_sec, 0);
	assert_string_equal(gl.user, "");

	assert_int_equal(rg_grant_line_parse("192.0.2.1 1h alice", &gl, err, sizeof(err)), 1);
	assert_int_equal(gl.ttl_sec, 3600);
	assert_string_equal(gl.user, "alice");

	/* Tabs, leading blanks, "-" for the default TTL, a Windows line end. */
	assert_int_equal(rg_grant_line_parse("  192.0.2.1\t-\tbob\r", &gl, err, sizeof(err)), 1);
	assert_memory_equal(&gl.addr, &a, sizeof(a));
	assert_int_equal(gl.ttl_sec, 0);
	assert_string_equal(gl.user, "bob");

	assert_int_equal(rg_grant_line_parse("2001:db8::1   90s  ", &gl, err, sizeof(err)), 1);
	assert_int_equal(gl.addr.family, RG_AF_INET6);
	assert_int_equal(gl.ttl_sec, 90);

	/* IPv4-mapped is stored as IPv4, as the argument form does. */
	assert_int_equal(rg_grant_line_parse("::ffff:192.0.2.1 1d", &gl, err, sizeof(err)), 1);
	assert_memory_equal(&gl.addr, &a, sizeof(a));
	assert_int_equal(gl.ttl_sec, 86400);
}

static void test_grant_line_skipped(void **state)
{
	static const char *const skip[] = { "", " ", "\t\t", "\r", "#", "# a comment",
					    "   # 192.0.2.1 1h alice", "\t#x" };
	struct rg_grant_line gl;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(skip) / sizeof(skip[0]); i++)
		if (rg_grant_line_parse(skip[i], &gl, err, sizeof(err)) != 0)
			fail_msg("'%s' is not skipped", skip[i]);
}

static void test_grant_line_errors(void **state)
{
	char line[RG_LINE_MAX + 64], u64[80];

	(void)state;
	grant_line_bad("banana", "banana: ");
	grant_line_bad("192.0.2.300", "192.0.2.300: ");
	grant_line_bad("192.0.2.0/24 1h", "192.0.2.0/24: give a single address, not a CIDR");
	grant_line_bad("192.0.2.1 -5", "TTL -5: ");
	grant_line_bad("192.0.2.1 0", "TTL 0: must be more than 0");
	grant_line_bad("192.0.2.1 3651d", "TTL 3651d: ");
	grant_line_bad("192.0.2.1 banana alice", "TTL banana: ");
	grant_line_bad("192.0.2.1 1h alice extra", "too many fields: want ADDR [TTL] [USER]");
	grant_line_bad("192.0.2.1 1h al\x01ice", "user al?ice: spaces and control characters");
	memset(u64, 'u', 64);
	u64[64] = '\0';
	snprintf(line, sizeof(line), "192.0.2.1 1h %s", u64);
	grant_line_bad(line, "must be 1..63 bytes");
	/* A line too long for the format. */
	memset(line, 'x', RG_LINE_MAX + 10);
	line[RG_LINE_MAX + 10] = '\0';
	grant_line_bad(line, "longer than 4096 bytes");
	/* the limit is exact: RG_LINE_MAX bytes (and a \r) pass, one more not */
	{
		struct rg_grant_line gl;
		struct rg_addr a;
		unsigned plen;
		char err[512];

		memset(line, ' ', sizeof(line));
		memcpy(line, "192.0.2.1 1h", 12);
		line[RG_LINE_MAX] = '\0';
		assert_int_equal(rg_grant_line_parse(line, &gl, err, sizeof(err)), 1);
		memcpy(line, "10.0.0.0/8  ", 12);
		assert_int_equal(rg_cidr_line_parse(line, &a, &plen, err, sizeof(err)), 1);
		line[RG_LINE_MAX] = '\r';
		line[RG_LINE_MAX + 1] = '\0';
		assert_int_equal(rg_cidr_line_parse(line, &a, &plen, err, sizeof(err)), 1);
		line[RG_LINE_MAX] = ' ';
		assert_int_equal(rg_cidr_line_parse(line, &a, &plen, err, sizeof(err)), -1);
		assert_string_equal(err, "longer than 4096 bytes");
		memcpy(line, "192.0.2.1 1h", 12);
		grant_line_bad(line, "longer than 4096 bytes");
	}
}

/* The argument form and a line say the same about the same value. */
static void test_same_words_as_arguments(void **state)
{
	static const char *const vals[] = { "banana", "10.0.0.256", "192.0.2.0/24", "2001:db8::g" };
	char e1[512], e2[512];
	struct rg_grant_line gl;
	struct rg_addr a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		assert_int_equal(rg_arg_addr(vals[i], &a, e1, sizeof(e1)), -1);
		assert_int_equal(rg_grant_line_parse(vals[i], &gl, e2, sizeof(e2)), -1);
		assert_string_equal(e1, e2);
	}
	assert_int_equal(rg_arg_user("a b", e1, sizeof(e1)), -1);
	assert_string_equal(e1, "user a b: spaces and control characters are not allowed");
}

static void test_cidr_line(void **state)
{
	struct rg_addr a;
	unsigned plen;
	char err[512];

	(void)state;
	assert_int_equal(rg_cidr_line_parse("10.0.0.0/8", &a, &plen, err, sizeof(err)), 1);
	assert_int_equal(plen, 8);
	assert_int_equal(rg_cidr_line_parse("\t2001:db8::/32 \r", &a, &plen, err, sizeof(err)), 1);
	assert_int_equal(a.family, RG_AF_INET6);
	assert_int_equal(plen, 32);
	assert_int_equal(rg_cidr_line_parse("198.51.100.7", &a, &plen, err, sizeof(err)), 1);
	assert_int_equal(plen, 32);
	assert_int_equal(rg_cidr_line_parse("  # 10.0.0.0/8", &a, &plen, err, sizeof(err)), 0);
	assert_int_equal(rg_cidr_line_parse("", &a, &plen, err, sizeof(err)), 0);
	assert_int_equal(rg_cidr_line_parse("10.0.0.1/8", &a, &plen, err, sizeof(err)), -1);
	assert_string_equal(err, "10.0.0.1/8: host bits set below the prefix (did you mean 10.0.0.0/8?)");
	assert_int_equal(rg_cidr_line_parse("10.0.0.0/8 10.1.0.0/16", &a, &plen, err, sizeof(err)), -1);
	assert_string_equal(err, "10.1.0.0/16: one CIDR a line");
	assert_int_equal(rg_cidr_line_parse("10.0.0.0/33", &a, &plen, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "10.0.0.0/33: "));
}

/* ------------------------------------------------------------ the reader */

struct seen {
	int n;
	char last[64];
	int fail_at;            /* fail the cb on this (1-based) call */
};

static int seen_cb(const char *line, void *ctx, char *err, size_t errlen)
{
	struct seen *s = ctx;

	s->n++;
	snprintf(s->last, sizeof(s->last), "%s", line);
	if (s->n == s->fail_at) {
		snprintf(err, errlen, "%s: bad", line);
		return -1;
	}
	return 0;
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void test_lines_read(void **state)
{
	char path[64], err[512], *big;
	struct seen s = { 0 };
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/rg-bulk-%d-XXXXXX", (int)getpid());
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);

	/* Every line, the last one without a newline too. */
	write_file(path, "a\nb\r\n\nlast", 10);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 4);
	assert_string_equal(s.last, "last");

	/* The callback's error, with the line number. */
	memset(&s, 0, sizeof(s));
	s.fail_at = 3;
	write_file(path, "one\ntwo\nthree\nfour\n", 19);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "line 3: three: bad");
	assert_int_equal(s.n, 3);

	/* A NUL byte on line 2. */
	memset(&s, 0, sizeof(s));
	write_file(path, "ok\nb\0d\nc\n", 9);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "line 2: holds a NUL byte (not a text file?)");
	assert_int_equal(s.n, 1);

	/* A line over RG_LINE_MAX. */
	big = malloc(RG_LINE_MAX + 8);
	assert_non_null(big);
	memset(big, 'x', RG_LINE_MAX + 7);
	big[0] = '\n';
	memset(&s, 0, sizeof(s));
	write_file(path, big, RG_LINE_MAX + 7);
	free(big);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "line 2: longer than 4096 bytes");

	/* An empty file is no lines, not an error. */
	memset(&s, 0, sizeof(s));
	write_file(path, "", 0);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 0);

	unlink(path);
	assert_int_equal(rg_lines_read(path, seen_cb, &s, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));
	assert_int_equal(rg_lines_read("/", seen_cb, &s, err, sizeof(err)), -1);
	assert_string_equal(err, "/: Is a directory");
}

/* ----------------------------------------------------------- map tests */

static int setup(void **state)
{
	return gatefix_setup(state, GRANTS_MAX);
}

#define teardown gatefix_teardown

/* The grants map as a list sorted by key, to compare before and after. */
struct entry {
	struct rg_addr k;
	struct rg_grant v;
};

struct snap {
	struct entry e[GRANTS_MAX + 64];
	size_t n;
};

static int snap_cb(const struct rg_addr *k, const struct rg_grant *v, void *ctx)
{
	struct snap *s = ctx;

	if (s->n < GRANTS_MAX + 64) {
		s->e[s->n].k = *k;
		s->e[s->n].v = *v;
	}
	s->n++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(&((const struct entry *)a)->k, &((const struct entry *)b)->k, sizeof(struct rg_addr));
}

static struct snap *snapshot(struct rg_gate *g)
{
	struct snap *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	assert_int_equal(rg_grant_foreach(g, snap_cb, s), 0);
	assert_true(s->n <= GRANTS_MAX);
	qsort(s->e, s->n, sizeof(s->e[0]), cmp_entry);
	return s;
}

static void snap_equal(const struct snap *a, const struct snap *b)
{
	assert_int_equal(a->n, b->n);
	assert_memory_equal(a->e, b->e, a->n * sizeof(a->e[0]));
}

/* n requests for 198.51.x.y from index first on, ttl, user. */
static struct rg_grant_req *reqs(size_t first, size_t n, uint64_t ttl_s, const char *user)
{
	struct rg_grant_req *r = calloc(n + 1, sizeof(*r));
	size_t i;

	assert_non_null(r);
	for (i = 0; i < n; i++) {
		size_t x = first + i;

		r[i].src.family = RG_AF_INET;
		r[i].src.addr[0] = 198;
		r[i].src.addr[1] = 51;
		r[i].src.addr[2] = (uint8_t)(x >> 8);
		r[i].src.addr[3] = (uint8_t)x;
		r[i].ttl_ns = ttl_s * SEC_NS;
		r[i].user = user;
	}
	return r;
}

static void test_put_many_merges(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant_req r[5];
	struct rg_grant v;
	struct rg_addr a;
	size_t created = 99, renewed = 99, kept = 99;
	uint64_t now;

	NEED_ROOT();
	memset(r, 0, sizeof(r));
	r[0] = (struct rg_grant_req){ addr("192.0.2.1"), 60 * SEC_NS, "alice" };
	/* Two privacy addresses of one /64: one key; the longer TTL and the
	 * last user win. */
	r[1] = (struct rg_grant_req){ addr("2001:db8:1:2::a"), 3600 * SEC_NS, "bob" };
	r[2] = (struct rg_grant_req){ addr("2001:db8:1:2::b"), 60 * SEC_NS, "carol" };
	r[3] = (struct rg_grant_req){ addr("192.0.2.1"), 7200 * SEC_NS, NULL };
	r[4] = (struct rg_grant_req){ addr("::ffff:192.0.2.2"), 60 * SEC_NS, "" };
	now = rg_now_ns();
	assert_int_equal(rg_grant_put_many(g, r, 5, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, &renewed,
					   &kept), 0);
	assert_int_equal(created, 3);
	assert_int_equal(renewed, 0);
	assert_int_equal(kept, 0);
	assert_int_equal(rg_map_count(g->grants_fd), 3);

	a = addr("192.0.2.1");
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_string_equal(v.user, "alice");          /* no user on line 4: kept */
	assert_true(v.expires >= now + 7200 * SEC_NS);
	assert_int_equal(v.origin, RG_ORIGIN_CLI);
	a = addr("2001:db8:1:2::ffff");
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_string_equal(v.user, "carol");
	assert_true(v.expires >= now + 3600 * SEC_NS);
	a = addr("192.0.2.2");
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_string_equal(v.user, "");

	/* Nothing at all is fine. */
	assert_int_equal(rg_grant_put_many(g, r, 0, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, &renewed,
					   NULL), 0);
	assert_int_equal(created, 0);
	/* A zero TTL is refused before anything changes. */
	r[0].ttl_ns = 0;
	r[1] = (struct rg_grant_req){ addr("192.0.2.77"), 60 * SEC_NS, NULL };
	assert_int_equal(rg_grant_put_many(g, r + 1, 1, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL), 0);
	assert_int_equal(rg_grant_put_many(g, r, 1, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL),
			 -EINVAL);
	assert_string_equal(g->err, "grant #1: TTL must be more than 0");
	assert_int_equal(rg_map_count(g->grants_fd), 4);
}

static void test_put_many_never_shortens(void **state)
{
	struct rg_gate *g = *state;
	struct rg_addr a = addr("192.0.2.50");
	struct rg_grant_req r = { a, 60 * SEC_NS, NULL };
	struct rg_grant before, v;
	size_t created, renewed, kept;

	NEED_ROOT();
	assert_int_equal(rg_grant_put(g, &a, 7200 * SEC_NS, "alice", RG_ORIGIN_LOG, RG_SERVICE_IMAP, NULL), 0);
	assert_int_equal(rg_grant_get(g, &a, &before), 0);

	assert_int_equal(rg_grant_put_many(g, &r, 1, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, &renewed,
					   &kept), 0);
	assert_int_equal(created, 0);
	assert_int_equal(renewed, 0);
	assert_int_equal(kept, 1);          /* 1 min asked, 2 h held: kept */
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_int_equal(v.expires, before.expires);   /* a shorter TTL keeps it */
	assert_string_equal(v.user, "alice");
	assert_int_equal(v.origin, RG_ORIGIN_CLI);     /* the latest login's source */

	r.ttl_ns = 3 * 3600 * SEC_NS;
	r.user = "bob";
	assert_int_equal(rg_grant_put_many(g, &r, 1, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL), 0);
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_true(v.expires > before.expires + 3000 * SEC_NS);
	assert_string_equal(v.user, "bob");
}

/* More new keys than the map holds: refused before any change. */
static void test_put_many_full_changes_nothing(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant_req *r = reqs(0, 600, 3600, "old");
	struct snap *before, *after;
	size_t created;

	NEED_ROOT();
	assert_int_equal(rg_grant_put_many(g, r, 600, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, NULL, NULL), 0);
	assert_int_equal(created, 600);
	free(r);
	before = snapshot(g);
	assert_int_equal(before->n, 600);

	/* 500 new and 100 renewals with a longer TTL and a new user. */
	r = reqs(500, 600, 7200, "new");
	assert_int_equal(rg_grant_put_many(g, r, 600, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, NULL, NULL), -E2BIG);
	assert_string_equal(g->err, "grant map full (max 1024): raise [grants] max");
	after = snapshot(g);
	snap_equal(before, after);
	free(after);
	free(before);
	free(r);
}

/* Run on the n-th CPU of set (no change when there are fewer). */
static void on_cpu(const cpu_set_t *set, int n)
{
	cpu_set_t one;
	int cpu;

	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, set) || n--)
			continue;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
		return;
	}
}

/*
 * Close to full an LRU map evicts (before max_entries): a load that
 * caused an eviction is undone, so the map holds all of it or is as it
 * was, never a part.
 */
static void test_put_many_near_full_all_or_nothing(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant_req *r = reqs(0, 100, 3600, "old");
	struct snap *before, *after;
	cpu_set_t all;
	size_t i;
	int rc;

	NEED_ROOT();
	/* The first load on one CPU, the second on another: free nodes the
	 * first CPU keeps make the second evict (as two relaygatectl runs
	 * would). */
	sched_getaffinity(0, sizeof(all), &all);
	on_cpu(&all, 0);
	assert_int_equal(rg_grant_put_many(g, r, 100, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL), 0);
	free(r);
	before = snapshot(g);
	/* 50 renewals and 850 new: 950 of 1024. */
	r = reqs(50, 900, 7200, "new");
	on_cpu(&all, 1);
	rc = rg_grant_put_many(g, r, 900, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL);
	sched_setaffinity(0, sizeof(all), &all);
	after = snapshot(g);
	if (rc == 0) {
		printf("# the load fit (no eviction)\n");
		assert_int_equal(after->n, 950);
		for (i = 0; i < after->n; i++)
			assert_string_equal(after->e[i].v.user,
					    after->e[i].k.addr[2] == 0 && after->e[i].k.addr[3] < 50 ? "old" : "new");
	} else {
		printf("# the load evicted and was undone\n");
		assert_int_equal(rc, -E2BIG);
		assert_string_equal(g->err, "grant map full (max 1024): raise [grants] max");
		snap_equal(before, after);
	}
	free(after);
	free(before);
	free(r);
}

/* Every insert covers its summary slot first. */
static void test_put_many_covers_summary(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant_req r[3];
	struct rg_cidr c;
	const char *why;

	NEED_ROOT();
	if (!g->sum)
		skip();
	assert_int_equal(g->sum->v4[(203 << 8) | 0], 0);
	r[0] = (struct rg_grant_req){ addr("203.0.113.9"), 60 * SEC_NS, NULL };
	r[1] = (struct rg_grant_req){ addr("198.18.7.7"), 60 * SEC_NS, NULL };
	r[2] = (struct rg_grant_req){ addr("2001:db8:77::1"), 60 * SEC_NS, NULL };
	assert_int_equal(rg_grant_put_many(g, r, 3, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL), 0);
	assert_int_not_equal(g->sum->v4[(203 << 8) | 0], 0);
	assert_int_not_equal(g->sum->v4[(198 << 8) | 18], 0);
	assert_int_not_equal(g->sum->v6[rg_sum_slot6(0x20010db8)], 0);
	assert_int_equal(rg_cidr_parse("100.64.0.0/10", &c.addr, &c.prefixlen, &why), 0);
	assert_int_equal(g->sum->v4[(100 << 8) | 64], 0);
	assert_int_equal(rg_trust_add(g, &c, 1), 0);
	assert_int_not_equal(g->sum->v4[(100 << 8) | 64], 0);
	assert_int_not_equal(g->sum->v4[(100 << 8) | 127], 0);
}

static int count_trust(const struct rg_cidr *c, void *ctx)
{
	(void)c;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t trust_count(struct rg_gate *g)
{
	size_t n = 0;

	assert_int_equal(rg_trust_foreach(g, count_trust, &n), 0);
	return n;
}

static void test_trust_bulk(void **state)
{
	struct rg_gate *g = *state;
	size_t n = 20000, i, m;
	struct rg_cidr *c = calloc(n + 8, sizeof(*c));

	NEED_ROOT();
	assert_non_null(c);
	/* 20000 /32s and /64s, half IPv6; then the first 100 again. */
	for (i = 0; i < n; i++) {
		if (i % 2) {
			c[i].addr.family = RG_AF_INET6;
			c[i].addr.addr[0] = 0x2a;
			c[i].addr.addr[5] = (uint8_t)(i >> 8);
			c[i].addr.addr[6] = (uint8_t)i;
			c[i].prefixlen = 64;
		} else {
			c[i].addr.family = RG_AF_INET;
			c[i].addr.addr[0] = 10;
			c[i].addr.addr[2] = (uint8_t)(i >> 8);
			c[i].addr.addr[3] = (uint8_t)i;
			c[i].prefixlen = 32;
		}
	}
	assert_int_equal(rg_trust_add(g, c, 100), 0);
	assert_int_equal(rg_trust_add(g, c, n), 0);    /* 100 already there */
	assert_int_equal(trust_count(g), n);
	assert_int_equal(rg_trust_add(g, c, n), 0);    /* all there: no change */
	assert_int_equal(trust_count(g), n);

	/* Delete the first half, one listed twice: exact keys, a binary
	 * search each. */
	m = n / 2;
	c[m] = c[0];
	assert_int_equal(rg_trust_del(g, c, m + 1), 0);
	assert_int_equal(trust_count(g), n - m);
	/* One not there: nothing removed. */
	assert_int_equal(rg_trust_del(g, c + m - 1, 2), -ENOENT);
	assert_non_null(strstr(g->err, "not a trusted subnet"));
	assert_int_equal(trust_count(g), n - m);
	/* Replace with a quarter of it: the rest goes. */
	assert_int_equal(rg_trust_replace(g, c + m + 1, n / 4), 0);
	assert_int_equal(trust_count(g), n / 4);
	free(c);
}

/* Listings read with batch lookups hold every entry once, with values. */
static void test_foreach_batch(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant_req *r = reqs(0, 1000, 600, "u");
	struct snap *s;
	size_t i;

	NEED_ROOT();
	assert_int_equal(rg_grant_put_many(g, r, 1000, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL, NULL, NULL), 0);
	s = snapshot(g);
	assert_int_equal(s->n, 1000);
	for (i = 0; i < s->n; i++) {
		assert_int_equal(s->e[i].k.addr[0], 198);
		assert_int_equal((s->e[i].k.addr[2] << 8) | s->e[i].k.addr[3], i);
		assert_string_equal(s->e[i].v.user, "u");
	}
	free(s);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grant_line_fields),
		cmocka_unit_test(test_grant_line_skipped),
		cmocka_unit_test(test_grant_line_errors),
		cmocka_unit_test(test_same_words_as_arguments),
		cmocka_unit_test(test_cidr_line),
		cmocka_unit_test(test_lines_read),
		cmocka_unit_test_setup_teardown(test_put_many_merges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_many_never_shortens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_many_full_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_many_near_full_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_put_many_covers_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_bulk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_batch, setup, teardown),
	};
	gatefix_init("bulk");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
