// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Log-line presets against the fixtures in tests/fixtures/presets/ (real
 * Dovecot 2.3 and Postfix 3.7 lines captured by capture-live.sh, lines
 * built from the Dovecot, Postfix, Courier and Cyrus sources), the
 * CVE-2001-1075 forgeries, and custom regex sources.
 *
 * Fixture format: "preset NAME" once; "#= login ADDR USER SERVICE",
 * "#= failure ADDR USER|- SERVICE|-", "#= reject" before a log line say
 * what it must give; a log line with no "#=" must give nothing (0).
 * USER may be "quoted". Other "#" lines and blank lines are comments.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cidr.h"
#include "presets.h"

static char fixtures[PATH_MAX + 64];

/* tests/fixtures/presets from the repository root, or found upwards from
 * the test binary (build-x/tests/unit/, build-x/asan/tests/unit/). */
static int find_fixtures(void)
{
	char exe[PATH_MAX], *slash;
	const char *env = getenv("RG_FIXTURES");
	ssize_t n;
	int up;

	if (env) {
		snprintf(fixtures, sizeof(fixtures), "%s/presets", env);
		return access(fixtures, R_OK);
	}
	if (!access("tests/fixtures/presets", R_OK)) {
		snprintf(fixtures, sizeof(fixtures), "tests/fixtures/presets");
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	for (up = 0; up < 6 && (slash = strrchr(exe, '/')); up++) {
		*slash = '\0';
		snprintf(fixtures, sizeof(fixtures), "%s/tests/fixtures/presets", exe);
		if (!access(fixtures, R_OK))
			return 0;
	}
	return -1;
}

static const char *svc_name(enum rg_service s)
{
	switch (s) {
	case RG_SERVICE_POP3: return "pop3";
	case RG_SERVICE_IMAP: return "imap";
	case RG_SERVICE_SMTP: return "smtp";
	case RG_SERVICE_OTHER: return "other";
	default: return "-";
	}
}

/* "#= ..." -> the text rg_preset_parse's result must print as (see describe()). */
static void normalise_expect(const char *in, char *out, size_t len)
{
	char kind[16] = "", addr[64] = "", user[300] = "", svc[16] = "";
	const char *p = in;
	int n = 0;

	if (sscanf(p, "%15s %n", kind, &n) < 1) {
		snprintf(out, len, "bad expectation");
		return;
	}
	p += n;
	if (!strcmp(kind, "none") || !strcmp(kind, "reject")) {
		snprintf(out, len, "%s", kind);
		return;
	}
	if (sscanf(p, "%63s %n", addr, &n) < 1) {
		snprintf(out, len, "bad expectation");
		return;
	}
	p += n;
	if (*p == '"') {
		const char *q = strchr(p + 1, '"');

		if (!q) {
			snprintf(out, len, "bad expectation");
			return;
		}
		snprintf(user, sizeof(user), "%.*s", (int)(q - p - 1), p + 1);
		p = q + 1;
	} else if (sscanf(p, "%299s %n", user, &n) >= 1) {
		p += n;
	}
	if (!strcmp(user, "-"))
		user[0] = '\0';
	sscanf(p, "%15s", svc);
	snprintf(out, len, "%s %s <%s> %s", kind, addr, user, svc[0] ? svc : "-");
}

static void describe(int rc, const struct rg_auth_event *ev, char *out, size_t len)
{
	char a[RG_ADDRSTRLEN];

	if (rc == 0) {
		snprintf(out, len, "none");
		return;
	}
	if (rc < 0) {
		snprintf(out, len, "reject");
		return;
	}
	snprintf(out, len, "%s %s <%s> %s", ev->kind == RG_EV_LOGIN ? "login" : "failure",
		 rg_addr_str(&ev->addr, a, sizeof(a)), ev->user, svc_name(ev->service));
}

struct fixture_result {
	unsigned lines, logins, failures, rejects, nones, mismatches;
};

/*
 * Run every log line of fixture file name through preset type (NULL type:
 * the file's own) and compare. cross: every line must give 0 (the file
 * belongs to another program).
 */
static void run_fixture(const char *name, enum rg_preset_type force, struct fixture_result *r,
			enum rg_preset_type *file_type)
{
	char path[PATH_MAX + 128], line[16384], expect[400] = "", want[400], got[400], err[256];
	struct rg_preset *p = NULL;
	enum rg_preset_type type = 0;
	unsigned lineno = 0;
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(path, sizeof(path), "%s/%s", fixtures, name);
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);
		struct rg_auth_event ev;
		int rc;

		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!strncmp(line, "preset ", 7)) {
			assert_int_equal(rg_preset_type_parse(line + 7, &type), 0);
			if (file_type)
				*file_type = type;
			p = rg_preset_new(force ? force : type, NULL, NULL, err, sizeof(err));
			if (!p)
				fail_msg("%s", err);
			continue;
		}
		if (!strncmp(line, "#= ", 3)) {
			snprintf(expect, sizeof(expect), "%.*s", (int)sizeof(expect) - 1, line + 3);
			continue;
		}
		if (!n || line[0] == '#')
			continue;
		if (!p)
			fail_msg("%s: no \"preset\" line before the first log line", path);
		if (force && force != type)
			snprintf(want, sizeof(want), "none");
		else if (expect[0])
			normalise_expect(expect, want, sizeof(want));
		else
			snprintf(want, sizeof(want), "none");
		expect[0] = '\0';
		rc = rg_preset_parse(p, line, n, &ev);
		describe(rc, &ev, got, sizeof(got));
		r->lines++;
		if (rc == 1 && ev.kind == RG_EV_LOGIN)
			r->logins++;
		else if (rc == 1)
			r->failures++;
		else if (rc < 0)
			r->rejects++;
		else
			r->nones++;
		if (strcmp(want, got)) {
			r->mismatches++;
			print_message("# %s:%u (preset %s): want [%s] got [%s]%s%s\n#   %s\n", name,
				      lineno, rg_preset_type_name(force ? force : type), want, got,
				      rc < 0 ? " why: " : "", rc < 0 ? rg_preset_why(p) : "", line);
		}
		/* The reason of a reject is never empty. */
		if (rc < 0 && !rg_preset_why(p)[0]) {
			r->mismatches++;
			print_message("# %s:%u: rejected without a reason\n", name, lineno);
		}
	}
	fclose(f);
	if (p) {
		struct rg_preset_stats st;

		rg_preset_get_stats(p, &st);
		assert_int_equal(st.lines, r->lines);
		assert_int_equal(st.logins, r->logins);
		assert_int_equal(st.failures, r->failures);
		assert_int_equal(st.rejected, r->rejects);
	}
	rg_preset_free(p);
}

static void check_fixture(const char *name, unsigned min_logins, unsigned min_failures,
			  unsigned min_rejects, unsigned min_nones)
{
	struct fixture_result r;

	run_fixture(name, 0, &r, NULL);
	print_message("# %s: %u lines: %u logins, %u failures, %u rejected, %u not logins\n",
		      name, r.lines, r.logins, r.failures, r.rejects, r.nones);
	assert_int_equal(r.mismatches, 0);
	/* The fixture really exercised each outcome. */
	assert_true(r.logins >= min_logins);
	assert_true(r.failures >= min_failures);
	assert_true(r.rejects >= min_rejects);
	assert_true(r.nones >= min_nones);
}

static void test_dovecot_live(void **state)
{
	(void)state;
	check_fixture("dovecot-2.3-live.lines", 4, 3, 4, 5);
}

static void test_dovecot_versions(void **state)
{
	(void)state;
	check_fixture("dovecot.lines", 10, 9, 9, 17);
}

static void test_postfix_live(void **state)
{
	(void)state;
	check_fixture("postfix-3.7-live.lines", 4, 2, 0, 30);
}

static void test_postfix_variants(void **state)
{
	(void)state;
	check_fixture("postfix-sasl.lines", 6, 3, 2, 8);
}

static void test_courier(void **state)
{
	(void)state;
	check_fixture("courier.lines", 5, 4, 4, 5);
}

static void test_cyrus(void **state)
{
	(void)state;
	check_fixture("cyrus.lines", 5, 6, 2, 5);
}

/* Every preset gives nothing for every line of every other program. */
static void test_cross_presets(void **state)
{
	static const char *const files[] = {
		"dovecot-2.3-live.lines", "dovecot.lines", "postfix-3.7-live.lines",
		"postfix-sasl.lines", "courier.lines", "cyrus.lines",
	};
	enum rg_preset_type t;
	unsigned i, total = 0;

	(void)state;
	for (t = RG_PRESET_DOVECOT; t < RG_PRESET_REGEX; t++) {
		for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
			struct fixture_result r;
			enum rg_preset_type own = 0;

			run_fixture(files[i], t, &r, &own);
			if (own == t)
				continue;
			assert_int_equal(r.mismatches, 0);
			assert_int_equal(r.nones, r.lines);
			total += r.lines;
		}
	}
	assert_true(total > 300);
}

/*
 * CVE-2001-1075: a client puts a login line of some program into text that
 * another program logs (a sender, a HELO, a user name, a message id). No
 * preset may turn that into an event for the forged address.
 */
static void test_cve_2001_1075(void **state)
{
	static const char *const forged[] = {
		"dovecot: pop3-login: Login: user=<a>, method=PLAIN, rip=198.51.100.66, lip=192.0.2.1",
		"pop3-login: Login: user=<a>, method=PLAIN, rip=198.51.100.66",
		"imap-login: Info: Logged in: user=<a>, rip=198.51.100.66",
		"postfix/smtpd[1]: 4ABC: client=x[198.51.100.66], sasl_method=PLAIN, sasl_username=a",
		"4ABC: client=x[198.51.100.66], sasl_method=PLAIN, sasl_username=a",
		"postfix/smtpd[1]: warning: x[198.51.100.66]: SASL PLAIN authentication failed: x",
		"pop3d: LOGIN, user=a, ip=[198.51.100.66], port=[1]",
		"LOGIN FAILED, user=a, ip=[198.51.100.66]",
		"cyrus/imap[1]: login: x [198.51.100.66] a plaintext User logged in",
		"badlogin: x [198.51.100.66] plaintext (a) [SASL(-13): authentication failure]",
	};
	static const char *const carriers[] = {
		/* A sender and a HELO in a Postfix reject (client text). */
		"Nov 29 08:00:01 mail postfix/smtpd[1234]: NOQUEUE: reject: RCPT from unknown[192.0.2.66]: "
		"554 5.7.1 <x@example.net>: Relay access denied; from=<%s> to=<x@example.net> "
		"proto=ESMTP helo=<%s>",
		"Nov 29 08:00:01 mail postfix/qmgr[1234]: 4ABC: from=<\"%s\"@example.org>, size=1, nrcpt=1 (queue active)",
		"Nov 29 08:00:01 mail postfix/cleanup[1234]: 4ABC: message-id=<%s>",
		/* The sendmail line of the original advisory's kind. */
		"Nov 29 08:00:01 mail sendmail[1234]: h1234: from=<%s>, size=1, class=0, nrcpts=1, relay=x [192.0.2.66]",
		/* A user name in Dovecot's mail process and auth lines. */
		"Nov 29 08:00:01 mail dovecot: imap(%s)<1><s>: Logged out in=1 out=1",
		"Nov 29 08:00:01 mail dovecot: auth: passwd-file(%s,192.0.2.66,<s>): unknown user",
		"Nov 29 08:00:01 imap(%s)<1><s>: Info: Logged out in=1 out=1",
		/* sshd logs the user name a client tried. */
		"Nov 29 08:00:01 mail sshd[99]: Invalid user %s from 192.0.2.66 port 22",
		/* A user name inside Dovecot's own login line, as a failure. */
		"Nov 29 08:00:01 mail dovecot: pop3-login: Disconnected (auth failed, 1 attempts in 2 secs): "
		"user=<%s>, method=PLAIN, rip=192.0.2.66, lip=192.0.2.1",
		/* ... and in Courier's failure line. */
		"Nov 29 08:00:01 mail pop3d: LOGIN FAILED, user=%s, ip=[::ffff:192.0.2.66], port=[1]",
	};
	struct rg_addr forged_addr;
	const char *why;
	enum rg_preset_type t;
	unsigned i, j, tried = 0;
	char err[256];

	(void)state;
	assert_int_equal(rg_addr_parse("198.51.100.66", &forged_addr, &why), 0);
	for (t = RG_PRESET_DOVECOT; t < RG_PRESET_REGEX; t++) {
		struct rg_preset *p = rg_preset_new(t, NULL, NULL, err, sizeof(err));

		assert_non_null(p);
		for (i = 0; i < sizeof(carriers) / sizeof(carriers[0]); i++) {
			for (j = 0; j < sizeof(forged) / sizeof(forged[0]); j++) {
				struct rg_auth_event ev;
				char line[2048];
				int rc;

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
				snprintf(line, sizeof(line), carriers[i], forged[j], forged[j]);
#pragma GCC diagnostic pop
				rc = rg_preset_parse(p, line, strlen(line), &ev);
				tried++;
				if (rc == 1 && !memcmp(&ev.addr, &forged_addr, sizeof(forged_addr)))
					fail_msg("preset %s granted the forged address: %s",
						 rg_preset_type_name(t), line);
			}
		}
		rg_preset_free(p);
	}
	assert_int_equal(tried, 4 * 10 * 10);
}

/* A line is taken by length: bytes after len and a trailing CR LF do not count. */
static void test_length_and_crlf(void **state)
{
	const char base[] = "Nov 29 08:00:01 mail dovecot: pop3-login: Login: user=<alice>, "
			    "method=PLAIN, lip=192.0.2.1, rip=192.0.2.7";
	char buf[512], a[RG_ADDRSTRLEN], err[256];
	struct rg_auth_event ev;
	struct rg_preset *p = rg_preset_new(RG_PRESET_DOVECOT, NULL, NULL, err, sizeof(err));
	size_t n = strlen(base);

	(void)state;
	assert_non_null(p);
	/* Followed by more bytes (no NUL at len): only len counts. */
	snprintf(buf, sizeof(buf), "%s9", base);
	assert_int_equal(rg_preset_parse(p, buf, n, &ev), 1);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.7");
	/* One byte more and the address reads 192.0.2.79. */
	assert_int_equal(rg_preset_parse(p, buf, n + 1, &ev), 1);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.79");
	snprintf(buf, sizeof(buf), "%s\r\n", base);
	assert_int_equal(rg_preset_parse(p, buf, strlen(buf), &ev), 1);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(ev.user, "alice");
	assert_int_equal(ev.origin, RG_ORIGIN_LOG);
	assert_null(ev.source);
	assert_int_equal(rg_preset_parse(p, "", 0, &ev), 0);
	rg_preset_free(p);
}

/* Addresses no client can have grant nothing, with the shared reasons
 * (rg_addr_not_client, also used by the control socket and the push). */
static void test_impossible_addresses(void **state)
{
	static const struct {
		const char *rip, *why;
	} cases[] = {
		{ "0.0.0.0", "address: unspecified (0.0.0.0/8)" },
		{ "0.0.0.1", "address: unspecified (0.0.0.0/8)" },
		{ "::ffff:0.0.0.0", "address: unspecified (0.0.0.0/8)" },
		{ "224.0.0.1", "address: multicast, reserved or broadcast (224.0.0.0/3)" },
		{ "255.255.255.255", "address: multicast, reserved or broadcast (224.0.0.0/3)" },
		{ "::", "address: unspecified (::)" },
		{ "ff02::1", "address: multicast (ff00::/8)" },
	};
	char line[256], err[256];
	struct rg_auth_event ev;
	struct rg_preset *p = rg_preset_new(RG_PRESET_DOVECOT, NULL, NULL, err, sizeof(err));

	(void)state;
	assert_non_null(p);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "Nov 29 08:00:01 mail dovecot: pop3-login: Login: "
			 "user=<alice>, method=PLAIN, rip=%s, lip=192.0.2.1", cases[i].rip);
		if (rg_preset_parse(p, line, strlen(line), &ev) != -1)
			fail_msg("rip=%s was not rejected", cases[i].rip);
		assert_string_equal(rg_preset_why(p), cases[i].why);
	}
	snprintf(line, sizeof(line), "Nov 29 08:00:01 mail dovecot: pop3-login: Login: "
		 "user=<alice>, method=PLAIN, rip=1.0.0.1, lip=192.0.2.1");
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), 1);
	rg_preset_free(p);
}

static void test_user_names(void **state)
{
	char line[1024], user[400], err[256];
	struct rg_auth_event ev;
	struct rg_preset *p = rg_preset_new(RG_PRESET_COURIER, NULL, NULL, err, sizeof(err));

	(void)state;
	assert_non_null(p);
	/* The longest user name an event holds, and one byte more. */
	memset(user, 'u', RG_EVENT_USER_MAX - 1);
	user[RG_EVENT_USER_MAX - 1] = '\0';
	snprintf(line, sizeof(line), "Nov 29 08:00:01 mail pop3d: LOGIN, user=%s, ip=[192.0.2.7], port=[1]",
		 user);
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), 1);
	assert_int_equal(strlen(ev.user), RG_EVENT_USER_MAX - 1);
	memset(user, 'u', RG_EVENT_USER_MAX);
	user[RG_EVENT_USER_MAX] = '\0';
	snprintf(line, sizeof(line), "Nov 29 08:00:01 mail pop3d: LOGIN, user=%s, ip=[192.0.2.7], port=[1]",
		 user);
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), -1);
	assert_string_equal(rg_preset_why(p), "user name too long");
	/* A control character (a syslog daemon passing one through). */
	snprintf(line, sizeof(line), "Nov 29 08:00:01 mail pop3d: LOGIN, user=al\x1bice, ip=[192.0.2.7], port=[1]");
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), -1);
	assert_string_equal(rg_preset_why(p), "control character in user name");
	/* UTF-8 is fine. */
	snprintf(line, sizeof(line), "Nov 29 08:00:01 mail pop3d: LOGIN, user=j\xc3\xbcrgen, ip=[192.0.2.7], port=[1]");
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), 1);
	assert_string_equal(ev.user, "j\xc3\xbcrgen");
	rg_preset_free(p);
}

static void test_type_names(void **state)
{
	static const char *const names[] = { "dovecot", "postfix-sasl", "courier", "cyrus", "regex" };
	enum rg_preset_type t;
	unsigned i;

	(void)state;
	for (i = 0; i < 5; i++) {
		assert_int_equal(rg_preset_type_parse(names[i], &t), 0);
		assert_int_equal(t, RG_PRESET_DOVECOT + i);
		assert_string_equal(rg_preset_type_name(t), names[i]);
	}
	assert_int_equal(rg_preset_type_parse("Dovecot", &t), -1);
	assert_int_equal(rg_preset_type_parse("postfix", &t), -1);
	assert_int_equal(rg_preset_type_parse("dovecot-auth-policy", &t), -1);
	assert_int_equal(rg_preset_type_parse("", &t), -1);
	assert_string_equal(rg_preset_type_name(0), "unknown");
	assert_string_equal(rg_preset_type_name(RG_PRESET_MAX), "unknown");
}

static void expect_new_error(enum rg_preset_type t, const char *match, const char *failure,
			     const char *want)
{
	char err[256] = "";
	struct rg_preset *p = rg_preset_new(t, match, failure, err, sizeof(err));

	if (p) {
		rg_preset_free(p);
		fail_msg("rg_preset_new(%d, %s, %s) succeeded, want \"%s\"", (int)t,
			 match ? match : "NULL", failure ? failure : "NULL", want);
	}
	assert_string_equal(err, want);
}

static void test_regex_errors(void **state)
{
	char big[RG_PRESET_PATTERN_MAX + 2];

	(void)state;
	expect_new_error(RG_PRESET_REGEX, NULL, NULL,
			 "type = regex needs a match or a failure pattern (or both)");
	expect_new_error(RG_PRESET_DOVECOT, "(?<ip>x)(?<user>y)", NULL,
			 "match: only type = regex takes match and failure patterns");
	expect_new_error(RG_PRESET_CYRUS, NULL, "(?<ip>x)",
			 "failure: only type = regex takes match and failure patterns");
	expect_new_error(RG_PRESET_REGEX, "app: ok (?<user>\\S+)", NULL,
			 "match: no named group (?<ip>...)");
	expect_new_error(RG_PRESET_REGEX, "app: ok (?<ip>\\S+)", NULL,
			 "match: no named group (?<user>...)");
	expect_new_error(RG_PRESET_REGEX, "app: ok (?<ip>\\S+) (?<user>\\S+)", "app: bad (?<addr>\\S+)",
			 "failure: no named group (?<ip>...)");
	expect_new_error(RG_PRESET_REGEX, "app: ok (?<ip>\\S+ (?<user>\\S+)", NULL,
			 "match: PCRE2 error at offset 30: missing closing parenthesis");
	expect_new_error(RG_PRESET_REGEX, NULL, "app: bad (?<ip>[0-9.+)",
			 "failure: PCRE2 error at offset 22: missing terminating ] for character class");
	expect_new_error(RG_PRESET_MAX, NULL, NULL, "unknown preset type 6");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	expect_new_error(RG_PRESET_REGEX, big, NULL, "match: longer than 2048 bytes");
}

static void test_regex_parse(void **state)
{
	/* A program with its own log format; failure lines name no user. */
	const char *match = "\\S+ +\\d+ [\\d:]+ \\S+ webmail\\[\\d+\\]: login ok for (?<user>\\S+) "
			    "from (?<ip>[0-9a-fA-F:.]+) via (?<service>\\w+)$";
	const char *failure = "\\S+ +\\d+ [\\d:]+ \\S+ webmail\\[\\d+\\]: login failed from "
			      "(?<ip>[0-9a-fA-F:.]+)$";
	char err[256], a[RG_ADDRSTRLEN];
	struct rg_auth_event ev;
	struct rg_preset *p = rg_preset_new(RG_PRESET_REGEX, match, failure, err, sizeof(err));
	struct rg_preset_stats st;
	const char *l;

	(void)state;
	if (!p)
		fail_msg("%s", err);
	l = "Nov 29 08:00:01 mail webmail[12]: login ok for alice from 192.0.2.7 via imap";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 1);
	assert_int_equal(ev.kind, RG_EV_LOGIN);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(ev.user, "alice");
	assert_int_equal(ev.service, RG_SERVICE_IMAP);
	assert_int_equal(ev.origin, RG_ORIGIN_LOG);
	l = "Nov 29 08:00:01 mail webmail[12]: login ok for alice from 2001:db8::7 via HTTP";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 1);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "2001:db8::7");
	assert_int_equal(ev.service, RG_SERVICE_OTHER);
	l = "Nov 29 08:00:01 mail webmail[12]: login failed from 192.0.2.66";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 1);
	assert_int_equal(ev.kind, RG_EV_FAILURE);
	assert_string_equal(ev.user, "");
	assert_int_equal(ev.service, RG_SERVICE_NONE);
	/* Anchored at the start of the line: the same text later in another
	 * program's line does not match. */
	l = "Nov 29 08:00:01 mail postfix/smtpd[1]: x: from=<Nov 29 08:00:01 mail webmail[12]: "
	    "login ok for alice from 198.51.100.66 via imap>";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 0);
	/* Impossible address. */
	l = "Nov 29 08:00:01 mail webmail[12]: login failed from 192.0.2.300";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), -1);
	assert_string_equal(rg_preset_why(p), "address: octet out of range (0..255)");
	l = "Nov 29 08:00:01 mail webmail[12]: login failed from 1.2.3";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), -1);
	assert_string_equal(rg_preset_why(p), "address: IPv4 address needs 4 octets");
	l = "Nov 29 08:00:01 mail webmail[12]: login ok for  from 192.0.2.7 via imap";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 0);
	rg_preset_get_stats(p, &st);
	assert_int_equal(st.lines, 7);
	assert_int_equal(st.logins, 2);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.rejected, 2);
	rg_preset_free(p);

	/* A match pattern alone; an empty user group is a rejected login. */
	p = rg_preset_new(RG_PRESET_REGEX, "app: (?<user>\\S*) (?<ip>\\S+)$", NULL, err, sizeof(err));
	assert_non_null(p);
	l = "app:  192.0.2.7";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), -1);
	assert_string_equal(rg_preset_why(p), "login without a user name");
	l = "app: bob 192.0.2.7";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), 1);
	l = "app: bob 224.0.0.1";
	assert_int_equal(rg_preset_parse(p, l, strlen(l), &ev), -1);
	assert_string_equal(rg_preset_why(p), "address: multicast, reserved or broadcast (224.0.0.0/3)");
	rg_preset_free(p);
}

/* Catastrophic backtracking in a custom pattern costs a bounded effort. */
static void test_regex_match_limit(void **state)
{
	char line[80], err[256];
	struct rg_auth_event ev;
	struct rg_preset *p = rg_preset_new(RG_PRESET_REGEX, "(?<user>(a+)+)(?<ip>x?)$", NULL,
					    err, sizeof(err));

	(void)state;
	assert_non_null(p);
	memset(line, 'a', 64);
	line[64] = '!';
	line[65] = '\0';
	assert_int_equal(rg_preset_parse(p, line, strlen(line), &ev), -1);
	assert_string_equal(rg_preset_why(p), "pattern: match limit exceeded");
	rg_preset_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dovecot_live),
		cmocka_unit_test(test_dovecot_versions),
		cmocka_unit_test(test_postfix_live),
		cmocka_unit_test(test_postfix_variants),
		cmocka_unit_test(test_courier),
		cmocka_unit_test(test_cyrus),
		cmocka_unit_test(test_cross_presets),
		cmocka_unit_test(test_cve_2001_1075),
		cmocka_unit_test(test_length_and_crlf),
		cmocka_unit_test(test_impossible_addresses),
		cmocka_unit_test(test_user_names),
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_regex_errors),
		cmocka_unit_test(test_regex_parse),
		cmocka_unit_test(test_regex_match_limit),
	};

	if (find_fixtures()) {
		fprintf(stderr, "test_presets: tests/fixtures/presets not found (set RG_FIXTURES)\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
