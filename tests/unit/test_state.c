// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * user/state.c: the grants state file. Round trip, the reboot arithmetic
 * (CLOCK_BOOTTIME restarts, wall-clock expiries give the right remaining
 * TTL), corrupt and cut-short files lose only their bad lines, a newer
 * format is refused, and a save that fails or is killed leaves the old
 * file or the new one, never a mix.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cidr.h"
#include "log.h"
#include "state.h"

#define S 1000000000ULL
#define REAL0 (1700000000ULL * S)      /* 2023-11-14, a whole second */

struct ctx {
	char dir[64];
	char path[128];
	char err[256];
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	strcpy(c->dir, "/tmp/rg-state-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->path, sizeof(c->path), "%s/grants.state", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char p[160];

	unlink(c->path);
	snprintf(p, sizeof(p), "%s.tmp", c->path);
	unlink(p);
	rmdir(c->dir);
	free(c);
	return 0;
}

static struct rg_addr addr(const char *s)
{
	struct rg_addr a;
	const char *why;

	if (rg_addr_parse(s, &a, &why))
		fail_msg("%s: %s", s, why);
	return a;
}

static void add_grant(struct rg_state *st, const char *a, const struct rg_state_clocks *now,
		      uint64_t ttl_s, const char *user, enum rg_origin o, enum rg_service sv)
{
	struct rg_grant g = {
		.expires = now->boot_ns + ttl_s * S, .granted = now->boot_ns - 60 * S,
		.origin = o, .service = sv,
	};
	struct rg_addr k = addr(a);

	strncpy(g.user, user, sizeof(g.user) - 1);
	assert_int_equal(rg_state_add_grant(st, &k, &g), 0);
}

static void add_deny(struct rg_state *st, const char *a, const struct rg_state_clocks *now,
		     uint64_t ttl_s, uint32_t failures)
{
	struct rg_deny d = {
		.expires = now->boot_ns + ttl_s * S, .created = now->boot_ns - 5 * S,
		.origin = RG_ORIGIN_LOG, .failures = failures,
	};
	struct rg_addr k = addr(a);

	assert_int_equal(rg_state_add_deny(st, &k, &d), 0);
}

static void write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 22);

	assert_non_null(f);
	assert_non_null(buf);
	*len = fread(buf, 1, (1 << 22) - 1, f);
	fclose(f);
	return buf;
}

static void same_grant(const struct rg_state_grant *a, const struct rg_state_grant *b)
{
	assert_memory_equal(&a->key, &b->key, sizeof(a->key));
	assert_memory_equal(&a->v, &b->v, sizeof(a->v));
}

static void test_round_trip(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 7200 * S, .real_ns = REAL0 };
	struct rg_state st = { 0 }, back = { 0 };
	char user63[64], line[256];
	struct stat sb;
	size_t len;
	char *text;

	memset(user63, 'u', 63);
	user63[0] = (char)0xc3;	/* UTF-8 bytes are kept */
	user63[1] = (char)0xa9;
	user63[63] = '\0';
	add_grant(&st, "192.0.2.1", &now, 1800, "alice", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	add_grant(&st, "2001:db8:1:2::", &now, 3600, "bob smith%x", RG_ORIGIN_CLI, RG_SERVICE_IMAP);
	add_grant(&st, "198.51.100.0", &now, 60, "", RG_ORIGIN_CONTROL, RG_SERVICE_NONE);
	add_grant(&st, "198.51.100.7", &now, 61, "-", RG_ORIGIN_PUSH, RG_SERVICE_SMTP);
	add_grant(&st, "10.0.0.1", &now, 86400, user63, RG_ORIGIN_CLUSTER, RG_SERVICE_OTHER);
	add_deny(&st, "203.0.113.9", &now, 3600, 10);
	add_deny(&st, "2001:db8::", &now, 120, 0);

	assert_int_equal(rg_state_save(c->path, &st, &now, c->err, sizeof(c->err)), 0);
	assert_int_equal(stat(c->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	text = read_file(c->path, &len);
	snprintf(line, sizeof(line), "relaygate-state 1\ngrant 192.0.2.1 %llu %llu log pop3 alice\n",
		 REAL0 / S + 1800, REAL0 / S - 60);
	assert_memory_equal(text, line, strlen(line));
	assert_non_null(strstr(text, " cli imap bob%20smith%25x\n"));
	assert_non_null(strstr(text, " control none -\n"));
	assert_non_null(strstr(text, " push smtp %2D\n"));
	snprintf(line, sizeof(line), "deny 203.0.113.9 %llu %llu log 10\n",
		 REAL0 / S + 3600, REAL0 / S - 5);
	assert_non_null(strstr(text, line));
	free(text);

	assert_int_equal(rg_state_load(c->path, &now, &back, c->err, sizeof(c->err)), 0);
	assert_int_equal(back.bad, 0);
	assert_int_equal(back.expired, 0);
	assert_int_equal(back.ngrants, st.ngrants);
	assert_int_equal(back.ndenies, st.ndenies);
	for (size_t i = 0; i < st.ngrants; i++)
		same_grant(&back.grants[i], &st.grants[i]);
	for (size_t i = 0; i < st.ndenies; i++) {
		assert_memory_equal(&back.denies[i].key, &st.denies[i].key, sizeof(struct rg_addr));
		assert_memory_equal(&back.denies[i].v, &st.denies[i].v, sizeof(struct rg_deny));
	}
	rg_state_free(&st);
	rg_state_free(&back);
}

static void test_reboot_remaining_ttl(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks before = { .boot_ns = 3600 * S, .real_ns = REAL0 };
	/* Ten minutes later, 20 s after a reboot. */
	struct rg_state_clocks after = { .boot_ns = 20 * S, .real_ns = REAL0 + 600 * S };
	struct rg_state st = { 0 }, back = { 0 };

	add_grant(&st, "192.0.2.1", &before, 1800, "alice", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	add_grant(&st, "192.0.2.2", &before, 30, "bob", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	add_deny(&st, "192.0.2.3", &before, 300, 10);
	add_deny(&st, "192.0.2.4", &before, 3600, 12);
	/* Already expired when saved: not written. */
	st.grants[1].v.expires = before.boot_ns;
	assert_int_equal(rg_state_save(c->path, &st, &before, c->err, sizeof(c->err)), 0);
	st.grants[1].v.expires = before.boot_ns + 30 * S;

	assert_int_equal(rg_state_load(c->path, &after, &back, c->err, sizeof(c->err)), 0);
	assert_int_equal(back.ngrants, 1);
	assert_int_equal(back.ndenies, 1);
	assert_int_equal(back.expired, 1);	/* the 300 s deny */
	assert_int_equal(back.bad, 0);
	/* 1800 s TTL, 600 s gone: 1200 s left on the new boot clock. */
	assert_int_equal(back.grants[0].v.expires, 20 * S + 1200 * S);
	assert_string_equal(back.grants[0].v.user, "alice");
	/* Granted before this boot: clamped to the boot. */
	assert_int_equal(back.grants[0].v.granted, 0);
	assert_int_equal(back.denies[0].v.expires, 20 * S + 3000 * S);
	assert_int_equal(back.denies[0].v.failures, 12);
	rg_state_free(&back);

	/* Sub-second clocks: the expiry is rounded up, never down. */
	struct rg_state_clocks odd = { .boot_ns = 3600 * S + S / 2, .real_ns = REAL0 + S / 4 };

	st.grants[0].v.expires = odd.boot_ns + 10 * S + S / 10;
	assert_int_equal(rg_state_save(c->path, &st, &odd, c->err, sizeof(c->err)), 0);
	assert_int_equal(rg_state_load(c->path, &odd, &back, c->err, sizeof(c->err)), 0);
	assert_true(back.grants[0].v.expires >= st.grants[0].v.expires);
	assert_true(back.grants[0].v.expires < st.grants[0].v.expires + S);
	rg_state_free(&back);
	rg_state_free(&st);
}

static void test_corrupt_lines(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 5000 * S, .real_ns = REAL0 };
	struct rg_state st = { 0 };
	char text[8192], longline[1100];
	const char *const bad[] = {
		"grant 192.0.2.300 1700001000 1699999000 log pop3 alice",  /* address */
		"grant 192.0.2.01 1700001000 1699999000 log pop3 alice",   /* octal-ish */
		"grant 192.0.2.0/24 1700001000 1699999000 log pop3 alice", /* a CIDR */
		"grant 192.0.2.1 -1700001000 1699999000 log pop3 alice",   /* sign */
		"grant 192.0.2.1 17000x1000 1699999000 log pop3 alice",    /* digits */
		"grant 192.0.2.1 99999999999999999999999 0 log pop3 alice", /* overflow */
		"grant 192.0.2.1 1700001000 1699999000 log pop3",          /* a field short */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 alice x",  /* one too many */
		"grant 192.0.2.1 1700001000 1699999000 magic pop3 alice",  /* origin */
		"grant 192.0.2.1 1700001000 1699999000 log ftp alice",     /* service */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 al%00ce",  /* NUL */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 al%zzce",  /* escape */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 al%4",     /* escape cut */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 64 bytes */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 al\tice",  /* control */
		"grant 192.0.2.1 1700001000 1699999000 log pop3 \xc3\xa9", /* raw non-ASCII */
		"grant 192.0.2.1 2100000000 1699999000 log pop3 alice",    /* > 10 years */
		"deny 192.0.2.9 1700001000 1699999000 log 4294967296",     /* failures */
		"deny 192.0.2.9 1700001000 1699999000 log",                /* a field short */
		"allow 192.0.2.9 1700001000 1699999000 log 1",             /* kind */
		"GRANT 192.0.2.1 1700001000 1699999000 log pop3 alice",    /* case */
		" ",
		longline,
	};
	size_t n = 0, len;

	memset(longline, 'x', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	n += snprintf(text + n, sizeof(text) - n, "relaygate-state 1\n# a comment\n\n");
	n += snprintf(text + n, sizeof(text) - n,
		      "grant 192.0.2.1 1700001000 1699999000 log pop3 alice\n");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		n += snprintf(text + n, sizeof(text) - n, "%s\n", bad[i]);
	/* A NUL byte inside a line. */
	len = n;
	memcpy(text + len, "deny 192.0.2.8 1700001000 0 log 1\0\n", 35);
	len += 35;
	memcpy(text + len, "deny 2001:db8:: 1700001000 0 cli 0\n", 35);
	len += 35;
	/* Expired: a valid line, dropped and counted as such. */
	memcpy(text + len, "deny 192.0.2.7 1699999999 0 log 3\n", 34);
	len += 34;
	write_file(c->path, text, len);

	assert_int_equal(rg_state_load(c->path, &now, &st, c->err, sizeof(c->err)), 0);
	assert_int_equal(st.bad, sizeof(bad) / sizeof(bad[0]) + 1);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.ngrants, 1);
	assert_int_equal(st.ndenies, 1);
	assert_string_equal(st.grants[0].v.user, "alice");
	assert_int_equal(st.grants[0].v.expires, now.boot_ns + 1000 * S);
	assert_int_equal(st.grants[0].v.granted, now.boot_ns - 1000 * S);
	assert_int_equal(st.denies[0].key.family, RG_AF_INET6);
	assert_int_equal(st.denies[0].v.origin, RG_ORIGIN_CLI);
	assert_int_equal(st.denies[0].v.created, 0);
	rg_state_free(&st);
}

/* The "maps" line: written when known, read back; a bad or second one is
 * a corrupt line that leaves the entries alone; the boot id is this
 * machine's. */
static void test_maps_line(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 5000 * S, .real_ns = REAL0 };
	struct rg_state st = { 0 }, back = { 0 };
	const char *id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
	const char *const bad[] = {
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 13 32",    /* a field short */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 13 32 64 1", /* one too many */
		"maps 0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0 12 13 32 64", /* upper case */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f 12 13 32 64",  /* short id */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 0 13 32 64",  /* id 0 */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 4294967296 32 64", /* > u32 */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 x 32 64",  /* digits */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 13 33 64", /* v4 prefix */
		"maps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 13 32 0",  /* v6 prefix */
		"maps 1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 7 8 32 64",   /* a second one */
	};
	char text[4096], mine[RG_BOOT_ID_LEN + 1];
	size_t n = 0, len;
	char *t;

	add_grant(&st, "192.0.2.1", &now, 1800, "alice", RG_ORIGIN_LOG, RG_SERVICE_POP3);
	memcpy(st.maps.boot_id, id, RG_BOOT_ID_LEN + 1);
	st.maps.grants_id = 12;
	st.maps.deny_id = 4294967295u;
	st.maps.v4_prefix = 24;
	st.maps.v6_prefix = 128;
	assert_int_equal(rg_state_save(c->path, &st, &now, c->err, sizeof(c->err)), 0);
	t = read_file(c->path, &len);
	assert_non_null(strstr(t, "relaygate-state 1\nmaps 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 12 4294967295 24 128\ngrant "));
	free(t);
	assert_int_equal(rg_state_load(c->path, &now, &back, c->err, sizeof(c->err)), 0);
	assert_int_equal(back.bad, 0);
	assert_string_equal(back.maps.boot_id, id);
	assert_int_equal(back.maps.grants_id, 12);
	assert_int_equal(back.maps.deny_id, 4294967295u);
	assert_int_equal(back.maps.v4_prefix, 24);
	assert_int_equal(back.maps.v6_prefix, 128);
	assert_int_equal(back.ngrants, 1);
	rg_state_free(&back);

	/* Without a boot id no line is written, and none is read. */
	st.maps.boot_id[0] = '\0';
	assert_int_equal(rg_state_save(c->path, &st, &now, c->err, sizeof(c->err)), 0);
	t = read_file(c->path, &len);
	assert_null(strstr(t, "maps"));
	free(t);
	assert_int_equal(rg_state_load(c->path, &now, &back, c->err, sizeof(c->err)), 0);
	assert_string_equal(back.maps.boot_id, "");
	rg_state_free(&back);
	rg_state_free(&st);

	n += snprintf(text + n, sizeof(text) - n, "relaygate-state 1\nmaps %s 12 13 32 64\n", id);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		n += snprintf(text + n, sizeof(text) - n, "%s\n", bad[i]);
	n += snprintf(text + n, sizeof(text) - n,
		      "grant 192.0.2.1 1700001000 1699999000 log pop3 alice\n");
	write_file(c->path, text, n);
	assert_int_equal(rg_state_load(c->path, &now, &back, c->err, sizeof(c->err)), 0);
	assert_int_equal(back.bad, sizeof(bad) / sizeof(bad[0]));
	assert_string_equal(back.maps.boot_id, id);
	assert_int_equal(back.maps.grants_id, 12);
	assert_int_equal(back.maps.deny_id, 13);
	assert_int_equal(back.maps.v4_prefix, 32);
	assert_int_equal(back.maps.v6_prefix, 64);
	assert_int_equal(back.ngrants, 1);
	rg_state_free(&back);

	assert_int_equal(rg_state_boot_id(mine), 0);
	assert_int_equal(strlen(mine), RG_BOOT_ID_LEN);
	assert_int_equal(mine[8], '-');
}

/* A file cut at every byte: the complete lines before the cut load, the
 * cut one is counted, nothing else happens. */
static void test_truncated_file(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 100 * S, .real_ns = REAL0 };
	struct rg_state st = { 0 }, back;
	size_t len, cut;
	char *text;

	for (int i = 0; i < 12; i++) {
		char a[32];

		snprintf(a, sizeof(a), "2001:db8::%x", i + 1);
		add_grant(&st, a, &now, 600 + i, "someone@example.org", RG_ORIGIN_LOG,
			  RG_SERVICE_IMAP);
	}
	add_deny(&st, "192.0.2.66", &now, 99, 10);
	assert_int_equal(rg_state_save(c->path, &st, &now, c->err, sizeof(c->err)), 0);
	text = read_file(c->path, &len);
	rg_log_init("test_state", false, RG_LOG_ERR);	/* a warning per cut */
	for (cut = 0; cut <= len; cut++) {
		size_t lines = 0, entries;

		for (size_t i = 0; i < cut; i++)
			lines += text[i] == '\n';
		entries = lines ? lines - 1 : 0;
		write_file(c->path, text, cut);
		memset(&back, 0, sizeof(back));
		assert_int_equal(rg_state_load(c->path, &now, &back, c->err, sizeof(c->err)), 0);
		assert_int_equal(back.ngrants + back.ndenies, entries);
		/* A cut line counts once (also the header cut short). */
		assert_int_equal(back.bad, cut && text[cut - 1] != '\n' ? 1 : 0);
		for (size_t i = 0; i < back.ngrants; i++)
			same_grant(&back.grants[i], &st.grants[i]);
		rg_state_free(&back);
	}
	rg_log_init("test_state", false, RG_LOG_INFO);
	free(text);
	rg_state_free(&st);
}

static void test_header_and_errors(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 100 * S, .real_ns = REAL0 };
	struct rg_state st = { 0 };
	const char *newer = "relaygate-state 2\ngrant 192.0.2.1 1700001000 1699999000 log pop3 a\n";
	const char *headless = "grant 192.0.2.1 1700001000 1699999000 log pop3 a\n";

	/* A newer format is refused whole. */
	write_file(c->path, newer, strlen(newer));
	assert_int_equal(rg_state_load(c->path, &now, &st, c->err, sizeof(c->err)), -EPROTO);
	assert_non_null(strstr(c->err, "newer relaygate"));
	assert_int_equal(st.ngrants, 0);
	/* No header: said once, the entries still load. */
	write_file(c->path, headless, strlen(headless));
	assert_int_equal(rg_state_load(c->path, &now, &st, c->err, sizeof(c->err)), 0);
	assert_int_equal(st.ngrants, 1);
	assert_int_equal(st.bad, 1);
	rg_state_free(&st);
	/* An empty file is an empty state. */
	write_file(c->path, "", 0);
	assert_int_equal(rg_state_load(c->path, &now, &st, c->err, sizeof(c->err)), 0);
	assert_int_equal(st.ngrants + st.ndenies + st.bad, 0);
	/* None yet; not a file; nowhere to write. */
	unlink(c->path);
	assert_int_equal(rg_state_load(c->path, &now, &st, c->err, sizeof(c->err)), -ENOENT);
	assert_non_null(strstr(c->err, c->path));
	assert_int_equal(rg_state_load(c->dir, &now, &st, c->err, sizeof(c->err)), -EINVAL);
	assert_non_null(strstr(c->err, "not a regular file"));
	assert_true(rg_state_save("/nonexistent-rg/grants.state", &st, &now, c->err,
				  sizeof(c->err)) < 0);
	assert_non_null(strstr(c->err, "/nonexistent-rg/grants.state"));
	rg_state_free(&st);
}

static void big_state(struct rg_state *st, const struct rg_state_clocks *now, int n, int tag)
{
	for (int i = 0; i < n; i++) {
		char a[48];

		snprintf(a, sizeof(a), "2001:db8:%x::%x", tag, i + 1);
		add_grant(st, a, now, 3600, "user-with-a-longish-name@example.org",
			  RG_ORIGIN_LOG, RG_SERVICE_POP3);
	}
}

static size_t entries_in(struct ctx *c, const struct rg_state_clocks *now)
{
	struct rg_state st = { 0 };
	size_t n;

	assert_int_equal(rg_state_load(c->path, now, &st, c->err, sizeof(c->err)), 0);
	assert_int_equal(st.bad, 0);
	n = st.ngrants;
	rg_state_free(&st);
	return n;
}

static void test_failed_save_keeps_old(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 100 * S, .real_ns = REAL0 };
	struct rg_state old = { 0 }, big = { 0 };
	char tmp[160];
	int status;
	pid_t pid;

	big_state(&old, &now, 3, 1);
	big_state(&big, &now, 2000, 2);
	assert_int_equal(rg_state_save(c->path, &old, &now, c->err, sizeof(c->err)), 0);
	/* A full disk, played by a file size limit in a child. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = { 4096, 4096 };
		int r;

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		r = rg_state_save(c->path, &big, &now, c->err, sizeof(c->err));
		_exit(r == -EFBIG && strstr(c->err, "File too large") &&
		      strstr(c->err, "previous file is unchanged") ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(entries_in(c, &now), 3);
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->path);
	assert_int_equal(access(tmp, F_OK), -1);	/* cleaned up */
	rg_state_free(&old);
	rg_state_free(&big);
}

/* kill -9 at random moments of a save: the file is the old one or the new
 * one, whole, every time. */
static void test_killed_save_is_atomic(void **state)
{
	struct ctx *c = *state;
	struct rg_state_clocks now = { .boot_ns = 100 * S, .real_ns = REAL0 };
	struct rg_state old = { 0 }, big = { 0 };
	unsigned seed = 42, saw_old = 0, saw_new = 0;

	big_state(&old, &now, 10, 1);
	big_state(&big, &now, 20000, 2);
	for (int round = 0; round < 25; round++) {
		size_t n;
		pid_t pid;

		assert_int_equal(rg_state_save(c->path, &old, &now, c->err, sizeof(c->err)), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			for (;;)
				rg_state_save(c->path, &big, &now, c->err, sizeof(c->err));
		}
		usleep(rand_r(&seed) % 30000);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, NULL, 0), pid);
		n = entries_in(c, &now);
		if (n == 10)
			saw_old++;
		else if (n == 20000)
			saw_new++;
		else
			fail_msg("round %d: %zu entries: neither the old file nor the new", round, n);
	}
	print_message("# old file %u times, new file %u times\n", saw_old, saw_new);
	rg_state_free(&old);
	rg_state_free(&big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reboot_remaining_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_maps_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_header_and_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_save_keeps_old, setup, teardown),
		cmocka_unit_test_setup_teardown(test_killed_save_is_atomic, setup, teardown),
	};

	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
