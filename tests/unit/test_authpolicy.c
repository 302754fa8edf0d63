// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Dovecot auth policy push source: the strict JSON parser, report -> event,
 * the HTTP server (driven over a raw TCP socket, as Dovecot's HTTP client
 * would), and the event queue it hands events to.
 *
 * The request bodies below have the shape Dovecot 2.3 builds
 * (src/auth/auth-policy.c: the auth_policy_request_attributes template,
 * keys sorted, every value a string, "a/b" keys as nested objects, then
 * "success" and "policy_reject" appended for command=report), with the
 * default attributes of Debian's dovecot-core 2.3.19:
 *   login=%{requested_username} pwhash=%{hashed_password} remote=%{rip}
 *   device_id=%{client_id} protocol=%s session_id=%{session}
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "authpolicy.h"
#include "cidr.h"
#include "evqueue.h"
#include "log.h"
#include "metrics.h"

#define DOVECOT_REPORT_OK \
	"{\"device_id\":\"\",\"login\":\"alice@example.org\",\"protocol\":\"pop3\"," \
	"\"pwhash\":\"a3f1c2\",\"remote\":\"192.0.2.7\",\"session_id\":\"Vd2xK0gR4tHAqAAB\"," \
	"\"success\":true,\"policy_reject\":false}"
#define DOVECOT_REPORT_FAIL \
	"{\"device_id\":\"\",\"login\":\"root\",\"protocol\":\"imap\"," \
	"\"pwhash\":\"0e11f5\",\"remote\":\"2001:db8::66\",\"session_id\":\"xyz\"," \
	"\"success\":false,\"policy_reject\":false}"
/* Captured from Debian 12's dovecot 2.3.19.1 (auth_debug = yes, "Policy
 * server request JSON:"), `doveadm auth test -x rip=... -x service=...`
 * against a passwd-file passdb: a good password, a wrong one, and a user
 * name Dovecot refused (it reports an empty login). */
#define DOVECOT_2319_REPORT_OK \
	"{\"device_id\":\"\",\"login\":\"alice\",\"protocol\":\"pop3\",\"pwhash\":\"0520\"," \
	"\"remote\":\"192.0.2.7\",\"session_id\":\"\",\"success\":true,\"policy_reject\":false," \
	"\"tls\":false}"
#define DOVECOT_2319_REPORT_FAIL \
	"{\"device_id\":\"\",\"login\":\"alice\",\"protocol\":\"imap\",\"pwhash\":\"0695\"," \
	"\"remote\":\"2001:db8::66\",\"session_id\":\"\",\"success\":false,\"policy_reject\":false," \
	"\"tls\":false}"
#define DOVECOT_2319_REPORT_BADUSER \
	"{\"device_id\":\"\",\"login\":\"\",\"protocol\":\"imap\",\"pwhash\":\"01a9\"," \
	"\"remote\":\"192.0.2.9\",\"session_id\":\"\",\"success\":false,\"policy_reject\":false," \
	"\"tls\":false}"
#define DOVECOT_2319_ALLOW \
	"{\"device_id\":\"\",\"login\":\"alice\",\"protocol\":\"pop3\",\"pwhash\":\"0520\"," \
	"\"remote\":\"192.0.2.7\",\"session_id\":\"\",\"tls\":false}"
#define DOVECOT_ALLOW \
	"{\"device_id\":\"\",\"login\":\"alice@example.org\",\"protocol\":\"pop3\"," \
	"\"pwhash\":\"a3f1c2\",\"remote\":\"192.0.2.7\",\"session_id\":\"Vd2xK0gR4tHAqAAB\"}"

static int parse(const char *s, struct rg_authpolicy_req *r, const char **why)
{
	return rg_authpolicy_parse(s, strlen(s), r, why);
}

/* The HTTP tests talk over loopback inside a network namespace of their
 * own (root: unshare, then bring lo up), never the host's. */
static bool have_netns;

static int private_netns(void **state)
{
	struct ifreq ifr = { 0 };
	int fd;

	(void)state;
	if (geteuid() != 0)
		return 0;            /* the HTTP tests skip */
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "# unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -1;
	}
	have_netns = true;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)) {
		fprintf(stderr, "# bring lo up: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* --------------------------------------------------------------- JSON */

static void test_parse_dovecot(void **state)
{
	struct rg_authpolicy_req r;
	const char *why = NULL;

	(void)state;
	assert_int_equal(parse(DOVECOT_REPORT_OK, &r, &why), 0);
	assert_true(r.has_login && r.has_remote && r.has_protocol && r.has_success &&
		    r.has_policy_reject);
	assert_string_equal(r.login, "alice@example.org");
	assert_string_equal(r.remote, "192.0.2.7");
	assert_string_equal(r.protocol, "pop3");
	assert_true(r.success);
	assert_false(r.policy_reject);

	assert_int_equal(parse(DOVECOT_ALLOW, &r, &why), 0);
	assert_false(r.has_success);

	/* What dovecot 2.3.19 really sent. */
	{
		static const struct {
			const char *body;
			int ret;
			enum rg_event_kind kind;
			const char *user, *addr;
		} real[] = {
			{ DOVECOT_2319_REPORT_OK, 1, RG_EV_LOGIN, "alice", "192.0.2.7" },
			{ DOVECOT_2319_REPORT_FAIL, 1, RG_EV_FAILURE, "alice", "2001:db8::66" },
			{ DOVECOT_2319_REPORT_BADUSER, 1, RG_EV_FAILURE, "", "192.0.2.9" },
			{ DOVECOT_2319_ALLOW, -1, 0, NULL, NULL },    /* no "success" */
		};
		struct rg_auth_event ev;
		char a[RG_ADDRSTRLEN];

		for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
			assert_int_equal(parse(real[i].body, &r, &why), 0);
			assert_int_equal(rg_authpolicy_event(&r, &ev, &why), real[i].ret);
			if (real[i].ret != 1)
				continue;
			assert_int_equal(ev.kind, real[i].kind);
			assert_string_equal(ev.user, real[i].user);
			assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), real[i].addr);
		}
	}

	/* Nested objects ("attrs/cos=..."), arrays, numbers, null, spaces. */
	assert_int_equal(parse(" {\"attrs\" : {\"cos\":\"premium\",\"x\":{\"y\":[1,-2.5e3,true,null]}},\n"
			       "\t\"login\":\"bob\",\"n\":0,\"f\":-0.5E+2,\"z\":null,"
			       "\"remote\":\"::ffff:198.51.100.1\",\"success\":false} \r\n", &r, &why), 0);
	assert_string_equal(r.login, "bob");
	assert_false(r.success);
	/* A nested "login" is not the login. */
	assert_int_equal(parse("{\"a\":{\"login\":\"evil\"},\"login\":\"good\"}", &r, &why), 0);
	assert_string_equal(r.login, "good");
	assert_int_equal(parse("{}", &r, &why), 0);
	assert_false(r.has_login);
}

static void test_parse_strings(void **state)
{
	struct rg_authpolicy_req r;
	const char *why = NULL;
	char body[1024], user[400];

	(void)state;
	/* Escapes, \u with BMP and a surrogate pair, raw UTF-8. */
	assert_int_equal(parse("{\"login\":\"a\\\"b\\\\c\\/d\\u00e9\\ud83d\\ude00\xc3\xa9\"}", &r, &why), 0);
	assert_string_equal(r.login, "a\"b\\c/d\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9");
	assert_int_equal(parse("{\"login\":\"t\\tn\\nr\\rb\\bf\\f\"}", &r, &why), 0);
	assert_string_equal(r.login, "t\tn\nr\rb\bf\f");

	/* Too long a login is cut (at a character boundary), and flagged. */
	memset(user, 'x', 300);
	user[300] = '\0';
	snprintf(body, sizeof(body), "{\"login\":\"%s\"}", user);
	assert_int_equal(parse(body, &r, &why), 0);
	assert_int_equal(strlen(r.login), RG_EVENT_USER_MAX - 1);
	assert_true(r.login_truncated);
	memset(user, 'x', 254);
	strcpy(user + 254, "\xc3\xa9");     /* the 2-byte char does not fit */
	snprintf(body, sizeof(body), "{\"login\":\"%s\"}", user);
	assert_int_equal(parse(body, &r, &why), 0);
	assert_int_equal(strlen(r.login), 254);
	assert_true(r.login_truncated);
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *body;
		size_t len;
		const char *why;
	} cases[] = {
		{ "", 0, "body is not a JSON object" },
		{ "[]", 0, "body is not a JSON object" },
		{ "\"x\"", 0, "body is not a JSON object" },
		{ "{", 0, "expected a member name" },
		{ "{\"a\":1", 0, "unterminated object" },
		{ "{\"a\":1,}", 0, "expected a member name" },
		{ "{\"a\" 1}", 0, "expected ':'" },
		{ "{'a':1}", 0, "expected a member name" },
		{ "{\"a\":1} x", 0, "data after the JSON object" },
		{ "{\"a\":1}{}", 0, "data after the JSON object" },
		{ "{\"a\":01}", 0, "expected ',' or '}'" },
		{ "{\"a\":1.}", 0, "bad number" },
		{ "{\"a\":-}", 0, "bad number" },
		{ "{\"a\":1e}", 0, "bad number" },
		{ "{\"a\":+1}", 0, "bad number" },
		{ "{\"a\":tru}", 0, "unexpected character" },
		{ "{\"a\":nul}", 0, "unexpected character" },
		{ "{\"a\":[1,]}", 0, "bad number" },
		{ "{\"a\":[1}", 0, "expected ',' or ']'" },
		{ "{\"a\":\"x\ty\"}", 0, "control character in string" },
		{ "{\"a\":\"x\\q\"}", 0, "bad escape in string" },
		{ "{\"a\":\"\\u12\"}", 0, "bad \\u escape" },
		{ "{\"a\":\"\\u0000\"}", 0, "NUL in string" },
		{ "{\"a\":\"\\udc00\"}", 0, "lone low surrogate" },
		{ "{\"a\":\"\\ud800x\"}", 0, "lone high surrogate" },
		{ "{\"a\":\"\\ud800\\u0041\"}", 0, "bad surrogate pair" },
		{ "{\"a\":\"\xc0\x80\"}", 0, "invalid UTF-8" },           /* overlong NUL */
		{ "{\"a\":\"\xed\xa0\x80\"}", 0, "invalid UTF-8" },       /* surrogate */
		{ "{\"a\":\"\xf5\x80\x80\x80\"}", 0, "invalid UTF-8" },   /* > U+10FFFF */
		{ "{\"a\":\"\xe2\x82\"}", 0, "invalid UTF-8" },           /* cut short */
		{ "{\"a\":\"\x80\"}", 0, "invalid UTF-8" },
		{ "{\"a\":\"x\0y\"}", 12, "control character in string" },
		{ "{\"a\":1}\0", 8, "data after the JSON object" },
		{ "{\"a\":\"unterminated", 0, "unterminated string" },
		{ "{\"login\":\"a\",\"login\":\"b\"}", 0, "duplicate member" },
		{ "{\"success\":true,\"success\":false}", 0, "duplicate member" },
		{ "{\"success\":\"true\"}", 0, "\"success\" is not a boolean" },
		{ "{\"policy_reject\":0}", 0, "\"policy_reject\" is not a boolean" },
		{ "{\"login\":42}", 0, "\"login\" is not a string" },
		{ "{\"remote\":null}", 0, "\"remote\" is not a string" },
		{ "{\"remote\":\"1111111111222222222233333333334444444444555555555566666666667777\"}", 0,
		  "\"remote\" is too long" },
	};
	struct rg_authpolicy_req r;
	char deep[64];
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);

		why = NULL;
		if (rg_authpolicy_parse(cases[i].body, len, &r, &why) != -1)
			fail_msg("case %zu accepted: %s", i, cases[i].body);
		if (!why || strcmp(why, cases[i].why))
			fail_msg("case %zu (%s): reason '%s', expected '%s'", i, cases[i].body,
				 why ? why : "(null)", cases[i].why);
	}
	/* 16 levels of nesting (the top object included) are fine, 17 are not. */
	for (int levels = 16; levels <= 17; levels++) {
		size_t n = 0;

		n += snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
		for (int k = 1; k < levels; k++)
			deep[n++] = '[';
		for (int k = 1; k < levels; k++)
			deep[n++] = ']';
		deep[n++] = '}';
		deep[n] = '\0';
		why = NULL;
		if (levels == 16) {
			assert_int_equal(parse(deep, &r, &why), 0);
		} else {
			assert_int_equal(parse(deep, &r, &why), -1);
			assert_string_equal(why, "nested too deep");
		}
	}
}

/* -------------------------------------------------------- report -> event */

static void test_event(void **state)
{
	struct rg_authpolicy_req r;
	struct rg_auth_event ev;
	const char *why;
	char a[RG_ADDRSTRLEN];

	(void)state;
	assert_int_equal(parse(DOVECOT_REPORT_OK, &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 1);
	assert_int_equal(ev.kind, RG_EV_LOGIN);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(ev.user, "alice@example.org");
	assert_int_equal(ev.service, RG_SERVICE_POP3);
	assert_int_equal(ev.origin, RG_ORIGIN_PUSH);

	assert_int_equal(parse(DOVECOT_REPORT_FAIL, &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 1);
	assert_int_equal(ev.kind, RG_EV_FAILURE);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "2001:db8::66");
	assert_string_equal(ev.user, "root");
	assert_int_equal(ev.service, RG_SERVICE_IMAP);

	/* Services. */
	static const struct { const char *proto; enum rg_service s; } svc[] = {
		{ "smtp", RG_SERVICE_SMTP }, { "submission", RG_SERVICE_SMTP },
		{ "IMAP", RG_SERVICE_IMAP }, { "sieve", RG_SERVICE_OTHER }, { "", RG_SERVICE_NONE },
	};
	for (size_t i = 0; i < sizeof(svc) / sizeof(svc[0]); i++) {
		char body[256];

		snprintf(body, sizeof(body),
			 "{\"login\":\"u\",\"protocol\":\"%s\",\"remote\":\"192.0.2.1\",\"success\":true}",
			 svc[i].proto);
		assert_int_equal(parse(body, &r, &why), 0);
		assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 1);
		assert_int_equal(ev.service, svc[i].s);
	}

	/* A hostile user name reaches the event without control characters. */
	assert_int_equal(parse("{\"login\":\"x\\nLOGIN 203.0.113.1 evil\\u001b[0m\","
			       "\"remote\":\"192.0.2.1\",\"success\":false}", &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 1);
	assert_string_equal(ev.user, "x?LOGIN 203.0.113.1 evil?[0m");

	/* No event: policy rejects, no address (local auth test). */
	assert_int_equal(parse("{\"remote\":\"192.0.2.1\",\"success\":false,\"policy_reject\":true}",
			       &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 0);
	assert_string_equal(why, "failure decided by a policy, not a password");
	assert_int_equal(parse("{\"login\":\"u\",\"remote\":\"\",\"success\":true}", &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 0);
	assert_int_equal(parse("{\"login\":\"u\",\"success\":true}", &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), 0);

	/* Invalid: no success, bad address. */
	assert_int_equal(parse(DOVECOT_ALLOW, &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), -1);
	assert_string_equal(why, "report without \"success\"");
	assert_int_equal(parse("{\"remote\":\"192.0.2.300\",\"success\":true}", &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), -1);
	assert_string_equal(why, "\"remote\" is not an IP address");
	assert_int_equal(parse("{\"remote\":\"192.0.2.0/24\",\"success\":true}", &r, &why), 0);
	assert_int_equal(rg_authpolicy_event(&r, &ev, &why), -1);

	/* Invalid: an address no client can have (rg_addr_not_client), for a
	 * login and a failure alike. */
	{
		static const struct { const char *remote, *why; } imp[] = {
			{ "0.0.0.0", "\"remote\" is not a client's address: unspecified (0.0.0.0/8)" },
			{ "0.0.0.1", "\"remote\" is not a client's address: unspecified (0.0.0.0/8)" },
			{ "::ffff:0.0.0.0",
			  "\"remote\" is not a client's address: unspecified (0.0.0.0/8)" },
			{ "224.0.0.1", "\"remote\" is not a client's address: "
				       "multicast, reserved or broadcast (224.0.0.0/3)" },
			{ "255.255.255.255", "\"remote\" is not a client's address: "
					     "multicast, reserved or broadcast (224.0.0.0/3)" },
			{ "::", "\"remote\" is not a client's address: unspecified (::)" },
			{ "ff02::1", "\"remote\" is not a client's address: multicast (ff00::/8)" },
		};

		for (size_t i = 0; i < sizeof(imp) / sizeof(imp[0]); i++) {
			char body[256];

			for (int ok = 0; ok < 2; ok++) {
				snprintf(body, sizeof(body),
					 "{\"login\":\"pd\",\"remote\":\"%s\",\"success\":%s}",
					 imp[i].remote, ok ? "true" : "false");
				assert_int_equal(parse(body, &r, &why), 0);
				if (rg_authpolicy_event(&r, &ev, &why) != -1)
					fail_msg("remote %s (success %d) was not refused", imp[i].remote, ok);
				assert_string_equal(why, imp[i].why);
			}
		}
	}
}

/* ---------------------------------------------------------------- queue */

static struct rg_auth_event drained[64];
static char drained_src[64][64];
static int ndrained;

static void on_drain(const struct rg_auth_event *ev, void *ctx)
{
	(void)ctx;
	if (ndrained < 64) {
		drained[ndrained] = *ev;
		snprintf(drained_src[ndrained], sizeof(drained_src[0]), "%s",
			 ev->source ? ev->source : "(null)");
		ndrained++;
	}
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static void test_evqueue(void **state)
{
	struct rg_auth_event ev = { .kind = RG_EV_LOGIN, .origin = RG_ORIGIN_PUSH };
	struct rg_evqueue *q;
	char *name = strdup("dovecot-push");

	(void)state;
	assert_int_equal(rg_evqueue_new(&q, 4), 0);
	assert_false(readable(rg_evqueue_fd(q)));
	ev.source = name;
	for (int i = 0; i < 4; i++) {
		snprintf(ev.user, sizeof(ev.user), "u%d", i);
		assert_int_equal(rg_evqueue_push(q, &ev), 0);
	}
	assert_int_equal(rg_evqueue_push(q, &ev), -ENOSPC);
	assert_int_equal(rg_evqueue_dropped(q), 1);
	assert_int_equal(rg_evqueue_len(q), 4);
	assert_true(readable(rg_evqueue_fd(q)));
	/* The producer's name may go away: the queue has a copy. */
	memset(name, 'X', strlen(name));
	free(name);
	ev.source = NULL;

	ndrained = 0;
	assert_int_equal(rg_evqueue_drain(q, 3, on_drain, NULL), 3);
	assert_true(readable(rg_evqueue_fd(q)));          /* one left: still readable */
	assert_int_equal(rg_evqueue_drain(q, 0, on_drain, NULL), 1);
	assert_false(readable(rg_evqueue_fd(q)));
	assert_int_equal(ndrained, 4);
	for (int i = 0; i < 4; i++) {
		char u[16];

		snprintf(u, sizeof(u), "u%d", i);
		assert_string_equal(drained[i].user, u);     /* in order */
		assert_string_equal(drained_src[i], "dovecot-push");
	}
	/* Wraps around. */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++)
			assert_int_equal(rg_evqueue_push(q, &ev), 0);
		assert_int_equal(rg_evqueue_drain(q, 0, on_drain, NULL), 3);
	}
	assert_int_equal(rg_evqueue_len(q), 0);
	rg_evqueue_free(q);
}

/* ----------------------------------------------------------------- HTTP */

/* One HTTP/1.1 request over a fresh TCP connection; returns the status
 * code and copies the body. */
static int http(unsigned port, const char *method, const char *target, const char *headers,
		const char *body, size_t blen, char *out, size_t cap)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	char req[4096], resp[8192];
	size_t have = 0;
	int fd, n, status = -1;
	char *p;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
		     "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
		     method, target, blen, headers ? headers : "");
	assert_true(n > 0 && (size_t)n < sizeof(req));
	assert_int_equal(send(fd, req, n, MSG_NOSIGNAL), n);
	if (blen) {
		ssize_t w = send(fd, body, blen, MSG_NOSIGNAL);

		(void)w;     /* a 413 may close before it reads everything */
	}
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pf, 1, 5000) != 1)
			break;
		r = read(fd, resp + have, sizeof(resp) - 1 - have);
		if (r <= 0)
			break;
		have += r;
		if (have == sizeof(resp) - 1)
			break;
	}
	close(fd);
	resp[have] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	p = strstr(resp, "\r\n\r\n");
	snprintf(out, cap, "%s", p ? p + 4 : "");
	return status;
}

static struct rg_authpolicy *start(struct rg_evqueue *q, const char *api_header, size_t max_body)
{
	struct rg_authpolicy_opts o = {
		.listen = "127.0.0.1:0", .source = "dovecot-push", .api_header = api_header,
		.max_body = max_body,
	};
	struct rg_authpolicy *ap;
	char err[256];

	if (rg_authpolicy_start(&ap, &o, q, err, sizeof(err)))
		fail_msg("rg_authpolicy_start: %s", err);
	assert_true(rg_authpolicy_port(ap) > 0);
	return ap;
}

static void test_http(void **state)
{
	struct rg_authpolicy_stats s;
	struct rg_authpolicy *ap;
	struct rg_evqueue *q;
	char out[1024], big[3000];
	unsigned port;
	char a[RG_ADDRSTRLEN];

	(void)state;
	if (!have_netns)
		skip();      /* needs root for a private network namespace */
	assert_int_equal(rg_evqueue_new(&q, 16), 0);
	ap = start(q, NULL, 2048);
	port = rg_authpolicy_port(ap);

	/* allow: never reject. */
	assert_int_equal(http(port, "POST", "/?command=allow", NULL, DOVECOT_ALLOW,
			      strlen(DOVECOT_ALLOW), out, sizeof(out)), 200);
	assert_string_equal(out, "{\"status\":0,\"msg\":\"\"}");
	assert_int_equal(rg_evqueue_len(q), 0);

	/* report: an event each; any path (the URL may have one). */
	assert_int_equal(http(port, "POST", "/?command=report", NULL, DOVECOT_REPORT_OK,
			      strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 200);
	assert_string_equal(out, "{\"status\":0,\"msg\":\"\"}");
	assert_int_equal(http(port, "POST", "/policy/?command=report", NULL, DOVECOT_REPORT_FAIL,
			      strlen(DOVECOT_REPORT_FAIL), out, sizeof(out)), 200);
	ndrained = 0;
	assert_int_equal(rg_evqueue_drain(q, 0, on_drain, NULL), 2);
	assert_int_equal(drained[0].kind, RG_EV_LOGIN);
	assert_string_equal(drained[0].user, "alice@example.org");
	assert_string_equal(rg_addr_str(&drained[0].addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(drained_src[0], "dovecot-push");
	assert_int_equal(drained[1].kind, RG_EV_FAILURE);

	/* No event, still 200: a policy reject. */
	assert_int_equal(http(port, "POST", "/?command=report", NULL,
			      "{\"remote\":\"192.0.2.1\",\"success\":false,\"policy_reject\":true}", 59,
			      out, sizeof(out)), 200);
	/* Bad requests: 400/405/413, no event. */
	assert_int_equal(http(port, "POST", "/?command=report", NULL, "{\"success\":tru}", 15,
			      out, sizeof(out)), 400);
	assert_int_equal(http(port, "POST", "/?command=report", NULL,
			      "{\"remote\":\"nope\",\"success\":true}", 32, out, sizeof(out)), 400);
	/* An impossible address is a bad request like an unparsable one. */
	assert_int_equal(http(port, "POST", "/?command=report", NULL,
			      "{\"login\":\"pd\",\"remote\":\"0.0.0.0\",\"success\":true}", 48,
			      out, sizeof(out)), 400);
	assert_int_equal(http(port, "POST", "/?command=explode", NULL, "{}", 2, out, sizeof(out)), 400);
	assert_int_equal(http(port, "POST", "/", NULL, "{}", 2, out, sizeof(out)), 400);
	assert_int_equal(http(port, "GET", "/?command=allow", NULL, "", 0, out, sizeof(out)), 405);
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 1] = '}';
	assert_int_equal(http(port, "POST", "/?command=report", NULL, big, sizeof(big),
			      out, sizeof(out)), 413);
	assert_int_equal(rg_evqueue_len(q), 0);

	/* The queue full: answered, counted, not blocking. */
	for (int i = 0; i < 17; i++)
		assert_int_equal(http(port, "POST", "/?command=report", NULL, DOVECOT_REPORT_OK,
				      strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 200);
	assert_int_equal(rg_evqueue_len(q), 16);
	assert_int_equal(rg_evqueue_dropped(q), 1);

	rg_authpolicy_get_stats(ap, &s);
	assert_int_equal(s.allow, 1);
	assert_int_equal(s.report, 23);
	assert_int_equal(s.logins, 17);
	assert_int_equal(s.failures, 1);
	assert_int_equal(s.ignored, 1);
	assert_int_equal(s.bad, 7);
	assert_int_equal(s.queue_full, 1);
	{
		struct rg_mbuf b;

		rg_mbuf_init(&b);
		rg_authpolicy_metrics(ap, &b);
		assert_non_null(strstr(b.buf, "# TYPE relaygate_authpolicy_requests_total counter\n"));
		assert_non_null(strstr(b.buf,
			"relaygate_authpolicy_requests_total{source=\"dovecot-push\",result=\"login\"} 17\n"));
		rg_mbuf_free(&b);
	}
	rg_authpolicy_stop(ap);
	rg_evqueue_free(q);
}

static void test_http_api_header(void **state)
{
	struct rg_authpolicy_stats s;
	struct rg_authpolicy *ap;
	struct rg_evqueue *q;
	char out[256], err[256];
	unsigned port;

	(void)state;
	if (!have_netns)
		skip();      /* needs root for a private network namespace */
	assert_int_equal(rg_evqueue_new(&q, 16), 0);
	/* Written as in dovecot.conf: auth_policy_server_api_header = X-API-Key: s3cret */
	ap = start(q, "X-API-Key: s3cret", 0);
	port = rg_authpolicy_port(ap);
	assert_int_equal(http(port, "POST", "/?command=report", NULL, DOVECOT_REPORT_OK,
			      strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 401);
	assert_int_equal(http(port, "POST", "/?command=report", "X-API-Key: wrong\r\n",
			      DOVECOT_REPORT_OK, strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 401);
	assert_int_equal(http(port, "POST", "/?command=report", "X-API-Key: s3cret2\r\n",
			      DOVECOT_REPORT_OK, strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 401);
	assert_int_equal(rg_evqueue_len(q), 0);
	/* Dovecot sends the value after the colon, with its leading space. */
	assert_int_equal(http(port, "POST", "/?command=report", "x-api-key:  s3cret\r\n",
			      DOVECOT_REPORT_OK, strlen(DOVECOT_REPORT_OK), out, sizeof(out)), 200);
	assert_int_equal(rg_evqueue_len(q), 1);
	rg_authpolicy_get_stats(ap, &s);
	assert_int_equal(s.unauthorized, 3);
	rg_authpolicy_stop(ap);

	/* A bare value means X-API-Key, as in Dovecot. */
	ap = start(q, "tok3n", 0);
	port = rg_authpolicy_port(ap);
	assert_int_equal(http(port, "POST", "/?command=allow", "X-API-Key: tok3n\r\n", "{}", 2,
			      out, sizeof(out)), 200);
	assert_int_equal(http(port, "POST", "/?command=allow", NULL, "{}", 2, out, sizeof(out)), 401);
	rg_authpolicy_stop(ap);

	/* Bad listen addresses and headers are one clear line. */
	{
		struct rg_authpolicy_opts o = { .listen = "localhost:8088" };

		ap = NULL;
		assert_int_not_equal(rg_authpolicy_start(&ap, &o, q, err, sizeof(err)), 0);
		assert_null(ap);
		assert_string_equal(err, "dovecot-auth-policy listen 'localhost:8088': not an IPv4 address");
		o.listen = "127.0.0.1:99999";
		assert_int_not_equal(rg_authpolicy_start(&ap, &o, q, err, sizeof(err)), 0);
		assert_non_null(strstr(err, "port must be a number 0..65535"));
		o.listen = "127.0.0.1:0";
		o.api_header = ": x";
		assert_int_equal(rg_authpolicy_start(&ap, &o, q, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "api_header: bad header name"));
	}
	rg_evqueue_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_dovecot),
		cmocka_unit_test(test_parse_strings),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_event),
		cmocka_unit_test(test_evqueue),
		cmocka_unit_test(test_http),
		cmocka_unit_test(test_http_api_header),
	};

	rg_log_init("test_authpolicy", false, RG_LOG_ERR);
	return cmocka_run_group_tests(tests, private_netns, NULL);
}
