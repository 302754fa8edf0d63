// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Control socket: request parsing, and the server and client talking over a
 * real unix socket. The server runs in this process (dispatched from a
 * small epoll loop); clients run in forked children, some of them with the
 * uid and groups of "nobody" to check the SO_PEERCRED gate.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "cidr.h"
#include "control.h"
#include "log.h"
#include "metrics.h"

/* ---------------------------------------------------------------- parsing */

static void test_parse_good(void **state)
{
	struct rg_auth_event ev;
	const char *why = NULL;
	char a[RG_ADDRSTRLEN];
	const char *l;

	(void)state;
	l = "LOGIN 192.0.2.7 alice";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_int_equal(ev.kind, RG_EV_LOGIN);
	assert_int_equal(ev.addr.family, RG_AF_INET);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(ev.user, "alice");
	assert_int_equal(ev.service, RG_SERVICE_NONE);
	assert_int_equal(ev.origin, RG_ORIGIN_CONTROL);

	l = "FAILURE 2001:db8::1 bob@example.org imap\r";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_int_equal(ev.kind, RG_EV_FAILURE);
	assert_int_equal(ev.addr.family, RG_AF_INET6);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "2001:db8::1");
	assert_string_equal(ev.user, "bob@example.org");
	assert_int_equal(ev.service, RG_SERVICE_IMAP);

	/* IPv4-mapped IPv6 is the IPv4 address; verbs in any case; tabs. */
	l = "login\t::ffff:198.51.100.4  carol   pop3";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_int_equal(ev.kind, RG_EV_LOGIN);
	assert_int_equal(ev.addr.family, RG_AF_INET);
	assert_string_equal(rg_addr_str(&ev.addr, a, sizeof(a)), "198.51.100.4");
	assert_int_equal(ev.service, RG_SERVICE_POP3);

	l = "LOGIN 192.0.2.8 dave smtp";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_int_equal(ev.service, RG_SERVICE_SMTP);
	l = "LOGIN 192.0.2.8 dave other";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_int_equal(ev.service, RG_SERVICE_OTHER);

	/* UTF-8 user names, as a Dovecot post-login script passes them. */
	l = "LOGIN 10.77.32.2 j\xc3\xbcrgen";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_string_equal(ev.user, "j\xc3\xbcrgen");
	l = "FAILURE 10.77.32.2 \xe5\xb1\xb1\xe7\x94\xb0@example.jp imap";
	assert_int_equal(rg_control_parse(l, strlen(l), &ev, &why), 0);
	assert_string_equal(ev.user, "\xe5\xb1\xb1\xe7\x94\xb0@example.jp");
	assert_int_equal(ev.service, RG_SERVICE_IMAP);
}

static void test_parse_bad(void **state)
{
	static const struct {
		const char *line;
		size_t len;                  /* 0: strlen */
		const char *why;             /* expected reason prefix */
	} cases[] = {
		{ "", 0, "empty request" },
		{ "   ", 0, "empty request" },
		{ "HELLO 192.0.2.1 bob", 0, "unknown verb" },
		{ "LOGINX 192.0.2.1 bob", 0, "unknown verb" },
		{ "LOGIN", 0, "missing address" },
		{ "LOGIN 192.0.2.1", 0, "missing user" },
		{ "LOGIN 192.0.2.256 bob", 0, "bad address" },
		{ "LOGIN 192.0.2.0/24 bob", 0, "bad address" },
		{ "LOGIN example.org bob", 0, "bad address" },
		{ "LOGIN 2001:db8::g bob", 0, "bad address" },
		{ "LOGIN 192.0.2.1 bob pop4", 0, "bad service" },
		{ "LOGIN 192.0.2.1 bob pop3 extra", 0, "too many fields" },
		{ "LOGIN 192.0.2.1 b\x01ob", 0, "bad user: control character" },
		{ "LOGIN 192.0.2.1 b\x7fob", 0, "bad user: control character" },
		{ "LOGIN 192.0.2.1 b\xc3\xa9\x1b", 0, "bad user: control character" },
		{ "LOGIN 192.0.2.1 bob\rx", 0, "bad user: control character" },
		/* Addresses no client can have (rg_addr_not_client). */
		{ "LOGIN 0.0.0.1 x", 0, "bad address: unspecified (0.0.0.0/8)" },
		{ "LOGIN 0.0.0.0 x", 0, "bad address: unspecified (0.0.0.0/8)" },
		{ "FAILURE ::ffff:0.0.0.0 x", 0, "bad address: unspecified (0.0.0.0/8)" },
		{ "LOGIN 224.0.0.1 x", 0,
		  "bad address: multicast, reserved or broadcast (224.0.0.0/3)" },
		{ "LOGIN 255.255.255.255 x", 0,
		  "bad address: multicast, reserved or broadcast (224.0.0.0/3)" },
		{ "LOGIN :: x", 0, "bad address: unspecified (::)" },
		{ "LOGIN ff02::1 x", 0, "bad address: multicast (ff00::/8)" },
		{ "LOGIN 192.0.2.1 bob\0 x", 21, "NUL byte" },
		{ "LOGIN 192.0.2.1\0 bob", 20, "NUL byte" },
	};
	char longuser[300], longline[600];
	struct rg_auth_event ev;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].line);

		why = NULL;
		if (rg_control_parse(cases[i].line, len, &ev, &why) != -1)
			fail_msg("case %zu accepted: '%s'", i, cases[i].line);
		assert_non_null(why);
		if (strncmp(why, cases[i].why, strlen(cases[i].why)))
			fail_msg("case %zu: reason '%s', expected '%s...'", i, why, cases[i].why);
	}
	/* A 256-byte user is one too many. */
	memset(longuser, 'u', 256);
	longuser[256] = '\0';
	snprintf(longline, sizeof(longline), "LOGIN 192.0.2.1 %s", longuser);
	assert_int_equal(rg_control_parse(longline, strlen(longline), &ev, &why), -1);
	assert_string_equal(why, "bad user: longer than 255 bytes");
	longuser[255] = '\0';
	snprintf(longline, sizeof(longline), "LOGIN 192.0.2.1 %s", longuser);
	assert_int_equal(rg_control_parse(longline, strlen(longline), &ev, &why), 0);
	assert_int_equal(strlen(ev.user), 255);
	/* Over 512 bytes. */
	memset(longline, ' ', 520);
	memcpy(longline, "LOGIN 192.0.2.1 bob", 19);
	assert_int_equal(rg_control_parse(longline, 520, &ev, &why), -1);
	assert_string_equal(why, "line too long (max 512 bytes)");
}

/* ------------------------------------------------------------ server side */

#define MAX_EVENTS 64
static struct rg_auth_event got[MAX_EVENTS];
static char got_source[MAX_EVENTS][32];
static int ngot;
static char tmpdir[64];
static struct rg_control *volatile live_server;

static int on_event(const struct rg_auth_event *ev, void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	if (!strcmp(ev->user, "failme")) {
		snprintf(err, errlen, "grant map full (max 4): raise [grants] max");
		return -1;
	}
	if (ngot < MAX_EVENTS) {
		got[ngot] = *ev;
		snprintf(got_source[ngot], sizeof(got_source[ngot]), "%s", ev->source ? ev->source : "");
		ngot++;
	}
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Run the server until child pid exits; returns its exit status (or -1
 * after 30 s, killing it). */
static int serve_until_exit(struct rg_control *c, pid_t pid)
{
	long long end = now_ms() + 30000;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event e = { .events = EPOLLIN };
	int st;

	assert_true(ep >= 0);
	assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, rg_control_fd(c), &e), 0);
	while (now_ms() < end) {
		if (epoll_wait(ep, &e, 1, 10) > 0)
			rg_control_dispatch(c);
		if (waitpid(pid, &st, WNOHANG) == pid) {
			close(ep);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	close(ep);
	return -1;
}

/* In a child: complain on stderr (it lands in the test log) and exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2))) child_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "# child: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(1);
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		child_fail("connect %s: %s", path, strerror(errno));
	return fd;
}

/*
 * Send req on fd, then read until `lines` replies arrived (want_eof false)
 * or until the server closes (want_eof true). 5 s at most. Returns the
 * bytes read into out (NUL-terminated); *eof tells whether it closed.
 */
static size_t xchg_fd(int fd, const void *req, size_t len, int lines, bool want_eof,
		      char *out, size_t cap, bool *eof)
{
	long long end = now_ms() + 5000;
	size_t have = 0;
	int nl = 0;

	*eof = false;
	if (len && send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len && errno != EPIPE &&
	    errno != ECONNRESET)
		child_fail("send: %s", strerror(errno));
	while (now_ms() < end && (want_eof || nl < lines)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(fd, out + have, cap - 1 - have);
		if (r <= 0) {
			*eof = true;    /* EOF, or ECONNRESET after unread data */
			break;
		}
		for (ssize_t i = 0; i < r; i++)
			nl += out[have + i] == '\n';
		have += r;
		if (have >= cap - 1)
			break;
	}
	out[have] = '\0';
	return have;
}

static size_t xchg(const char *path, const void *req, size_t len, int lines, bool want_eof,
		   char *out, size_t cap, bool *eof)
{
	int fd = raw_connect(path);
	size_t n = xchg_fd(fd, req, len, lines, want_eof, out, cap, eof);

	close(fd);
	return n;
}

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rgctl-%d-XXXXXX", (int)getpid());
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0755), 0);    /* "nobody" must reach the socket */
}

static void rm_tmpdir(void)
{
	char cmd[128];

	if (!tmpdir[0])
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	tmpdir[0] = '\0';
	assert_int_equal(system(cmd), 0);
}

/* After each test, even a failed one: no directory left in /tmp. */
static int teardown_tmp(void **state)
{
	(void)state;
	rm_tmpdir();
	return 0;
}

static struct rg_control *open_server(const char *sock, const char *group, unsigned mode,
				      unsigned rate, unsigned max_clients, unsigned idle_ms)
{
	struct rg_control_opts o = {
		.path = sock, .group = group, .mode = mode, .rate = rate, .burst = rate,
		.max_clients = max_clients, .idle_timeout_ms = idle_ms, .source = "ctltest",
	};
	struct rg_control *c = NULL;
	char err[256];
	int r = rg_control_open(&c, &o, on_event, NULL, err, sizeof(err));

	if (r)
		fail_msg("rg_control_open: %s", err);
	/* Forked children inherit the server; a global keeps it reachable
	 * there, so valgrind's leak check in a child does not call it lost. */
	live_server = c;
	return c;
}

static void test_roundtrip(void **state)
{
	char sock[100], err[256], a[RG_ADDRSTRLEN];
	struct rg_control_stats s;
	struct rg_control *c;
	struct stat st;
	pid_t pid;

	(void)state;
	make_tmpdir();
	/* The parent directory does not exist yet: the server makes it. */
	snprintf(sock, sizeof(sock), "%s/run/relaygate/control.sock", tmpdir);
	c = open_server(sock, "0", 0, 0, 0, 0);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_gid, 0);

	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (rg_control_request(sock, RG_EV_LOGIN, "192.0.2.7", "alice", "pop3", err,
				       sizeof(err)))
			child_fail("LOGIN: %s", err);
		if (rg_control_request(sock, RG_EV_FAILURE, "2001:db8::9", "mallory", NULL, err,
				       sizeof(err)))
			child_fail("FAILURE: %s", err);
		/* The daemon's refusal comes back as the reason. */
		if (rg_control_request(sock, RG_EV_LOGIN, "192.0.2.8", "failme", NULL, err,
				       sizeof(err)) != -1)
			child_fail("failing callback reported OK");
		if (strcmp(err, "relaygated: grant map full (max 4): raise [grants] max"))
			child_fail("reason: '%s'", err);
		if (rg_control_request(sock, RG_EV_LOGIN, "300.1.1.1", "bob", NULL, err,
				       sizeof(err)) != -1 ||
		    strcmp(err, "relaygated: bad address: not an IP address"))
			child_fail("bad address: '%s'", err);
		/* An address no client can have: refused, counted as malformed. */
		if (rg_control_request(sock, RG_EV_LOGIN, "0.0.0.0", "bob", NULL, err,
				       sizeof(err)) != -1 ||
		    strcmp(err, "relaygated: bad address: unspecified (0.0.0.0/8)"))
			child_fail("impossible address: '%s'", err);
		/* A UTF-8 user name goes through. */
		if (rg_control_request(sock, RG_EV_LOGIN, "10.77.31.1", "\xc3\xbc", NULL, err,
				       sizeof(err)))
			child_fail("UTF-8 user: %s", err);
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 3);
	assert_int_equal(got[0].kind, RG_EV_LOGIN);
	assert_string_equal(rg_addr_str(&got[0].addr, a, sizeof(a)), "192.0.2.7");
	assert_string_equal(got[0].user, "alice");
	assert_int_equal(got[0].service, RG_SERVICE_POP3);
	assert_int_equal(got[0].origin, RG_ORIGIN_CONTROL);
	assert_string_equal(got_source[0], "ctltest");
	assert_int_equal(got[1].kind, RG_EV_FAILURE);
	assert_string_equal(rg_addr_str(&got[1].addr, a, sizeof(a)), "2001:db8::9");
	assert_string_equal(got[1].user, "mallory");
	assert_string_equal(rg_addr_str(&got[2].addr, a, sizeof(a)), "10.77.31.1");
	assert_string_equal(got[2].user, "\xc3\xbc");

	rg_control_get_stats(c, &s);
	assert_int_equal(s.events, 3);
	assert_int_equal(s.failed, 1);
	assert_int_equal(s.rejected, 2);
	assert_int_equal(s.accepted, 6);

	/* Metrics render the same counters. */
	{
		struct rg_mbuf b;

		rg_mbuf_init(&b);
		rg_control_metrics(c, &b);
		assert_non_null(strstr(b.buf, "# TYPE relaygate_control_requests_total counter\n"));
		assert_non_null(strstr(b.buf, "relaygate_control_requests_total{result=\"ok\"} 3\n"));
		assert_non_null(strstr(b.buf, "relaygate_control_requests_total{result=\"malformed\"} 2\n"));
		rg_mbuf_free(&b);
	}

	rg_control_close(c);
	/* The socket file goes with the server. */
	assert_int_equal(stat(sock, &st), -1);
	rm_tmpdir();
}

static void test_garbage(void **state)
{
	static const struct {
		const char *req;
		size_t len;
		const char *reply;
	} cases[] = {
		{ "HELLO\n", 6, "ERR unknown verb (expected LOGIN or FAILURE)\n" },
		{ "LOGIN 1.2.3 bob\n", 16, "ERR bad address: not an IP address\n" },
		{ "LOGIN 192.0.2.1 bob\0evil\n", 25, "ERR NUL byte in request\n" },
		{ "LOGIN 192.0.2.1 \x1b[31mbob\n", 26, "ERR bad user: control character\n" },
		{ "LOGIN 0.0.0.1 x\n", 16, "ERR bad address: unspecified (0.0.0.0/8)\n" },
		{ "LOGIN ff02::1 x\n", 16, "ERR bad address: multicast (ff00::/8)\n" },
		{ "\n", 1, "ERR empty request\n" },
		/* A good line, then garbage: the good one is answered first. */
		{ "FAILURE 192.0.2.2 x\nGET / HTTP/1.0\n", 36,
		  "OK\nERR unknown verb (expected LOGIN or FAILURE)\n" },
	};
	char sock[100], out[1024], big[4096], err[256];
	struct rg_control *c;
	pid_t pid;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	c = open_server(sock, "0", 0, 1000, 0, 0);
	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		bool eof;

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			xchg(sock, cases[i].req, cases[i].len, 0, true, out, sizeof(out), &eof);
			if (strcmp(out, cases[i].reply))
				child_fail("case %zu: got '%s'", i, out);
			if (!eof)
				child_fail("case %zu: connection left open", i);
		}
		/* An overlong line, no newline in sight. */
		memset(big, 'A', sizeof(big));
		xchg(sock, big, sizeof(big), 0, true, out, sizeof(out), &eof);
		if (strcmp(out, "ERR line too long (max 512 bytes)\n") || !eof)
			child_fail("overlong: got '%s' eof %d", out, eof);
		/* 600 bytes then a newline: still too long. */
		memset(big, 'B', 600);
		big[600] = '\n';
		xchg(sock, big, 601, 0, true, out, sizeof(out), &eof);
		if (strcmp(out, "ERR line too long (max 512 bytes)\n") || !eof)
			child_fail("overlong 2: got '%s'", out);
		/* The daemon carries on. */
		if (rg_control_request(sock, RG_EV_LOGIN, "192.0.2.9", "erin", NULL, err, sizeof(err)))
			child_fail("after garbage: %s", err);
		/* A last line without "\n" before the client shuts its side. */
		{
			int fd = raw_connect(sock);

			if (send(fd, "LOGIN 192.0.2.10 frank", 22, 0) != 22)
				child_fail("send");
			shutdown(fd, SHUT_WR);
			xchg_fd(fd, NULL, 0, 0, true, out, sizeof(out), &eof);
			close(fd);
			if (strcmp(out, "OK\n") || !eof)
				child_fail("no newline: got '%s'", out);
		}
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 3);
	assert_string_equal(got[0].user, "x");
	assert_string_equal(got[1].user, "erin");
	assert_string_equal(got[2].user, "frank");
	rg_control_close(c);
	rm_tmpdir();
}

static void test_pipelined(void **state)
{
	char sock[100], out[1024];
	struct rg_control *c;
	pid_t pid;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	c = open_server(sock, "0", 0, 1000, 0, 0);
	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const char req[] =
			"LOGIN 192.0.2.1 u1\r\n"
			"LOGIN 192.0.2.2 failme\n"      /* callback refuses: ERR, stays open */
			"FAILURE 192.0.2.3 u3 imap\n";
		int fd = raw_connect(sock);
		bool eof;

		xchg_fd(fd, req, sizeof(req) - 1, 3, false, out, sizeof(out), &eof);
		if (strcmp(out, "OK\nERR grant map full (max 4): raise [grants] max\nOK\n"))
			child_fail("replies: '%s'", out);
		if (eof)
			child_fail("closed after a refused event");
		/* Still usable. */
		xchg_fd(fd, "LOGIN 192.0.2.4 u4\n", 19, 1, false, out, sizeof(out), &eof);
		if (strcmp(out, "OK\n"))
			child_fail("reuse: '%s'", out);
		close(fd);
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 3);
	assert_string_equal(got[0].user, "u1");
	assert_string_equal(got[1].user, "u3");
	assert_int_equal(got[1].kind, RG_EV_FAILURE);
	assert_string_equal(got[2].user, "u4");
	rg_control_close(c);
	rm_tmpdir();
}

static void test_rate_limit(void **state)
{
	char sock[100], out[4096], req[2048];
	struct rg_control_stats s;
	struct rg_control *c;
	size_t n = 0;
	pid_t pid;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	/* 5 events/s, burst 5: of 8 sent at once, 5 pass. */
	c = open_server(sock, "0", 0, 5, 0, 0);
	for (int i = 0; i < 8; i++)
		n += snprintf(req + n, sizeof(req) - n, "LOGIN 192.0.2.%d u%d\n", i + 1, i);
	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd = raw_connect(sock), ok = 0, limited = 0;
		bool eof;

		xchg_fd(fd, req, n, 8, false, out, sizeof(out), &eof);
		for (char *p = out; (p = strstr(p, "OK\n")); p++)
			ok++;
		for (char *p = out; (p = strstr(p, "ERR rate limit exceeded (5 events/s)\n")); p++)
			limited++;
		if (ok != 5 || limited != 3)
			child_fail("ok %d limited %d: '%s'", ok, limited, out);
		/* Tokens come back: after 1.2 s, more pass. */
		usleep(1200 * 1000);
		xchg_fd(fd, "LOGIN 192.0.2.99 later\n", 23, 1, false, out, sizeof(out), &eof);
		if (strcmp(out, "OK\n"))
			child_fail("after refill: '%s'", out);
		close(fd);
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 6);
	rg_control_get_stats(c, &s);
	assert_int_equal(s.rate_limited, 3);
	rg_control_close(c);
	rm_tmpdir();
}

/* A group "nobody" is not a member of, by any of the three paths. */
static bool pick_other_group(const struct passwd *nobody, gid_t *gid, char *name, size_t len)
{
	static const char *const names[] = { "mail", "daemon", "adm", "staff", "users", "sys" };
	gid_t groups[64];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct group *gr = getgrnam(names[i]);
		int n = 64;

		if (!gr || gr->gr_gid == nobody->pw_gid || gr->gr_gid == 0)
			continue;
		if (getgrouplist(nobody->pw_name, nobody->pw_gid, groups, &n) < 0)
			continue;
		bool member = false;

		for (int k = 0; k < n; k++)
			member |= groups[k] == gr->gr_gid;
		if (member)
			continue;
		*gid = gr->gr_gid;
		snprintf(name, len, "%s", names[i]);
		return true;
	}
	return false;
}

/* Fork a child that drops to nobody (with supplementary groups sup) and
 * sends one LOGIN; expect_ok: whether it must succeed. */
static int as_nobody(struct rg_control *c, const char *sock, const struct passwd *nobody,
		     const gid_t *sup, size_t nsup, bool expect_ok, const char *expect_err)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		int r;

		if (setgroups(nsup, sup) || setgid(nobody->pw_gid) || setuid(nobody->pw_uid))
			child_fail("drop privileges: %s", strerror(errno));
		r = rg_control_request(sock, RG_EV_LOGIN, "192.0.2.50", "nob", NULL, err, sizeof(err));
		if (expect_ok && r)
			child_fail("as nobody: %s", err);
		if (!expect_ok && (r != -1 || strstr(err, expect_err) == NULL))
			child_fail("as nobody: r %d err '%s', expected '%s'", r, err, expect_err);
		_exit(0);
	}
	return serve_until_exit(c, pid);
}

static void test_permissions(void **state)
{
	struct passwd *pw = getpwnam("nobody");
	char sock[100], other[32], err[256];
	struct rg_control_stats s;
	struct rg_control *c;
	struct stat st;
	gid_t ogid;

	(void)state;
	if (getuid() != 0)
		skip();
	assert_non_null(pw);
	assert_true(pick_other_group(pw, &ogid, other, sizeof(other)));
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);

	/* Mode 0666, group `other`: the file lets nobody connect, the
	 * SO_PEERCRED check refuses it. */
	c = open_server(sock, other, 0666, 0, 0, 0);
	assert_int_equal(stat(sock, &st), 0);
	assert_int_equal(st.st_gid, ogid);
	assert_int_equal(st.st_mode & 07777, 0666);
	ngot = 0;
	assert_int_equal(as_nobody(c, sock, pw, NULL, 0, false, "relaygated: permission denied"), 0);
	assert_int_equal(ngot, 0);
	rg_control_get_stats(c, &s);
	assert_int_equal(s.refused, 1);
	/* A supplementary group of the peer process counts. */
	assert_int_equal(as_nobody(c, sock, pw, &ogid, 1, true, NULL), 0);
	assert_int_equal(ngot, 1);
	rg_control_close(c);

	/* The peer's primary group counts. */
	snprintf(err, sizeof(err), "%u", (unsigned)pw->pw_gid);
	c = open_server(sock, err, 0666, 0, 0, 0);
	assert_int_equal(as_nobody(c, sock, pw, NULL, 0, true, NULL), 0);
	assert_int_equal(ngot, 2);
	rg_control_close(c);

	/* Default mode 0660: the file system refuses first, and the client
	 * says what to check. */
	c = open_server(sock, other, 0, 0, 0, 0);
	assert_int_equal(as_nobody(c, sock, pw, NULL, 0, false,
				   "Permission denied (are you root or in the socket's group?)"), 0);
	rg_control_close(c);

	/* group "" : root only. */
	c = open_server(sock, "", 0666, 0, 0, 0);
	assert_int_equal(as_nobody(c, sock, pw, &ogid, 1, false, "relaygated: permission denied"), 0);
	rg_control_close(c);

	/* A group that does not exist is an error naming the fix. */
	{
		struct rg_control_opts o = { .path = sock, .group = "rg-no-such-group-zz" };

		c = NULL;
		assert_int_equal(rg_control_open(&c, &o, on_event, NULL, err, sizeof(err)), -ENOENT);
		assert_null(c);
		assert_non_null(strstr(err, "no such group"));
	}
	rm_tmpdir();
}

static void test_stalled_clients(void **state)
{
	char sock[100], out[256], err[256];
	struct rg_control_stats s;
	struct rg_control *c;
	pid_t pid;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	/* 8 clients at most, idle ones dropped after 1 s. */
	c = open_server(sock, "0", 0, 1000, 8, 1000);
	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int stalled[7];
		bool eof;

		/* Seven clients that send half a line and stall. */
		for (int i = 0; i < 7; i++) {
			stalled[i] = raw_connect(sock);
			if (send(stalled[i], "LOGIN 192.0", 11, 0) != 11)
				child_fail("send");
		}
		/* The eighth still gets through, at once. */
		long long t0 = now_ms();

		if (rg_control_request(sock, RG_EV_LOGIN, "192.0.2.77", "busy", NULL, err, sizeof(err)))
			child_fail("with stalled clients: %s", err);
		if (now_ms() - t0 > 1000)
			child_fail("took %lld ms", now_ms() - t0);
		/* Nine at once: the ninth is turned away. */
		{
			int eighth, ninth;

			/* Let the server see the request client go first. */
			usleep(200 * 1000);
			eighth = raw_connect(sock);
			usleep(100 * 1000);
			ninth = raw_connect(sock);
			xchg_fd(ninth, NULL, 0, 0, true, out, sizeof(out), &eof);
			if (strcmp(out, "ERR too many clients\n") || !eof)
				child_fail("ninth: '%s'", out);
			close(ninth);
			close(eighth);
		}
		/* The stalled ones are closed within ~2 s. */
		for (int i = 0; i < 7; i++) {
			xchg_fd(stalled[i], NULL, 0, 0, true, out, sizeof(out), &eof);
			if (!eof || out[0])
				child_fail("stalled %d: eof %d '%s'", i, eof, out);
			close(stalled[i]);
		}
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 1);
	rg_control_get_stats(c, &s);
	assert_true(s.timeouts >= 7);
	assert_int_equal(s.overflow, 1);
	assert_int_equal(s.clients, 0);
	rg_control_close(c);
	rm_tmpdir();
}

static void test_nonreading_client(void **state)
{
	char sock[100], err[256];
	struct rg_control_stats s;
	struct rg_control *c;
	pid_t pid;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	c = open_server(sock, "0", 0, 1000000, 0, 1000);
	ngot = 0;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const char req[] = "FAILURE 192.0.2.1 failme imap\n";
		long long quiet_since = now_ms(), t0;
		size_t sent = 0;
		int a = raw_connect(sock);

		/* Write requests, never read a reply, until the server stops
		 * taking them (its replies fill our receive buffer, then it
		 * stops reading us). */
		fcntl(a, F_SETFL, O_NONBLOCK);
		while (now_ms() - quiet_since < 300) {
			ssize_t r = send(a, req, sizeof(req) - 1, MSG_NOSIGNAL);

			if (r > 0) {
				sent += r;
				quiet_since = now_ms();
			} else {
				usleep(1000);
			}
			if (sent > 64u << 20)
				child_fail("server kept reading 64 MiB without us reading a reply");
		}
		/* Another client is served at once. */
		t0 = now_ms();
		if (rg_control_request(sock, RG_EV_LOGIN, "192.0.2.88", "other", NULL, err, sizeof(err)))
			child_fail("beside a stalled client: %s", err);
		if (now_ms() - t0 > 1000)
			child_fail("took %lld ms", now_ms() - t0);
		/* The stalled one is closed within the idle timeout (+ a tick). */
		{
			struct pollfd p = { .fd = a, .events = POLLRDHUP };

			if (poll(&p, 1, 4000) != 1 || !(p.revents & (POLLHUP | POLLRDHUP)))
				child_fail("stalled client not closed");
		}
		close(a);
		_exit(0);
	}
	assert_int_equal(serve_until_exit(c, pid), 0);
	assert_int_equal(ngot, 1);
	assert_string_equal(got[0].user, "other");
	rg_control_get_stats(c, &s);
	assert_true(s.failed > 0);
	assert_int_equal(s.timeouts, 1);
	rg_control_close(c);
	rm_tmpdir();
}

static void test_socket_file(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char sock[100], err[256];
	struct rg_control_opts o = { 0 };
	struct rg_control *c, *c2;
	int fd;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);
	o.path = sock;
	o.group = "0";

	/* A stale socket (its server died) is replaced. */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(rg_control_open(&c, &o, on_event, NULL, err, sizeof(err)), 0);

	/* A live one is not. */
	assert_int_equal(rg_control_open(&c2, &o, on_event, NULL, err, sizeof(err)), -EADDRINUSE);
	assert_non_null(strstr(err, "in use by another process"));
	rg_control_close(c);

	/* Not a socket: refused, left alone. */
	fd = open(sock, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(rg_control_open(&c2, &o, on_event, NULL, err, sizeof(err)), -EEXIST);
	assert_non_null(strstr(err, "exists and is not a socket"));
	assert_int_equal(access(sock, F_OK), 0);
	unlink(sock);

	/* Relative paths and bad modes are refused. */
	o.path = "control.sock";
	assert_int_equal(rg_control_open(&c2, &o, on_event, NULL, err, sizeof(err)), -EINVAL);
	o.path = sock;
	o.mode = 010000;
	assert_int_equal(rg_control_open(&c2, &o, on_event, NULL, err, sizeof(err)), -EINVAL);
	rm_tmpdir();
}

static void test_client_errors(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char sock[100], err[256];
	long long t0;
	int lfd;

	(void)state;
	make_tmpdir();
	snprintf(sock, sizeof(sock), "%s/control.sock", tmpdir);

	/* No daemon. */
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "bob", NULL, err,
					    sizeof(err)), -1);
	assert_non_null(strstr(err, "(is relaygated running?)"));

	/* Fields that would split the request are refused locally. */
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1",
					    "bob\nLOGIN 203.0.113.9 evil", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "user"));
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1 x", "bob", NULL, err,
					    sizeof(err)), -1);
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "", NULL, err,
					    sizeof(err)), -1);
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "b\x7fob", NULL, err,
					    sizeof(err)), -1);
	assert_string_equal(err, "user 'b\x7fob': must be 1..255 bytes without spaces or control characters");
	/* A UTF-8 user passes the local check: it gets as far as connecting. */
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "j\xc3\xbcrgen", NULL,
					    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "(is relaygated running?)"));
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "bob", "po p3", err,
					    sizeof(err)), -1);
	assert_int_equal(rg_control_request(sock, 7, "192.0.2.1", "bob", NULL, err,
					    sizeof(err)), -1);

	/* A server that never answers: give up after 5 s. */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	t0 = now_ms();
	assert_int_equal(rg_control_request(sock, RG_EV_LOGIN, "192.0.2.1", "bob", NULL, err,
					    sizeof(err)), -1);
	assert_true(now_ms() - t0 >= 4900);
	assert_true(now_ms() - t0 < 7000);
	assert_non_null(strstr(err, "no reply within 5 s"));
	close(lfd);
	rm_tmpdir();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test_teardown(test_roundtrip, teardown_tmp),
		cmocka_unit_test_teardown(test_garbage, teardown_tmp),
		cmocka_unit_test_teardown(test_pipelined, teardown_tmp),
		cmocka_unit_test_teardown(test_rate_limit, teardown_tmp),
		cmocka_unit_test_teardown(test_permissions, teardown_tmp),
		cmocka_unit_test_teardown(test_stalled_clients, teardown_tmp),
		cmocka_unit_test_teardown(test_nonreading_client, teardown_tmp),
		cmocka_unit_test_teardown(test_socket_file, teardown_tmp),
		cmocka_unit_test_teardown(test_client_errors, teardown_tmp),
	};

	signal(SIGPIPE, SIG_IGN);
	rg_log_init("test_control", false, RG_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
