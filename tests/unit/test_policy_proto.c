// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Policy service protocol tests against a running server: the server runs
 * in a thread of this process exactly as the daemon runs it (its fd in an
 * epoll loop, rg_policy_process() on readiness); the test is the Postfix
 * side, over real unix and TCP sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/signalfd.h>
#include <bpf/bpf.h>
#include "gatemaps.h"
#include <signal.h>
#include "audit.h"
#include "cidr.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

#define GRANT_TIME 1795942800  /* 2026-11-29T09:00:00Z */

static char tmpdir[64];

/* ---- the daemon side: a fake decision source and the event loop ---- */

static int lookups;

static int fake_lookup(void *ctx, const struct rg_addr *a, struct rg_policy_auth *out)
{
	char s[RG_ADDRSTRLEN];
	struct rg_addr net;
	const char *why;
	unsigned plen;

	(void)ctx;
	__atomic_add_fetch(&lookups, 1, __ATOMIC_RELAXED);
	rg_addr_str(a, s, sizeof(s));
	if (!strcmp(s, "198.51.100.7") || !strcmp(s, "2001:db8::7")) {
		out->kind = RG_POLICY_GRANT;
		strcpy(out->user, "alice");
		out->service = RG_SERVICE_POP3;
		out->granted = GRANT_TIME;
		out->expires = GRANT_TIME + 1800;
		return 0;
	}
	if (!strcmp(s, "192.0.2.66"))
		return -EIO;                       /* the maps cannot be read */
	rg_cidr_parse("10.0.0.0/24", &net, &plen, &why);
	if (rg_addr_in(a, &net, plen)) {
		out->kind = RG_POLICY_TRUSTED;
		strcpy(out->subnet, "10.0.0.0/24");
	}
	return 0;
}

struct srv {
	struct rg_policy *p;
	pthread_t th;
	int stop[2];
	bool running;
	sem_t ready;         /* the loop's descriptors exist */
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	struct epoll_event ev = { .events = EPOLLIN }, got[4];
	int ep = epoll_create1(EPOLL_CLOEXEC), i, n;
	bool stop = false;

	ev.data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, rg_policy_fd(s->p), &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, s->stop[0], &ev);
	sem_post(&s->ready);
	while (!stop) {
		n = epoll_wait(ep, got, 4, -1);
		for (i = 0; i < n; i++) {
			if (got[i].data.u32 == 2)
				stop = true;
			else if (rg_policy_process(s->p) < 0)
				stop = true;
		}
	}
	close(ep);
	return NULL;
}

static void srv_start(struct srv *s)
{
	assert_int_equal(pipe2(s->stop, O_CLOEXEC), 0);
	assert_int_equal(sem_init(&s->ready, 0, 0), 0);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	while (sem_wait(&s->ready) && errno == EINTR)
		;
	sem_destroy(&s->ready);
	s->running = true;
}

static void srv_pause(struct srv *s)
{
	if (!s->running)
		return;
	assert_int_equal(write(s->stop[1], "x", 1), 1);
	pthread_join(s->th, NULL);
	close(s->stop[0]);
	close(s->stop[1]);
	s->running = false;
}

static struct srv *srv_new(struct rg_policy_opts *o)
{
	struct srv *s = calloc(1, sizeof(*s));
	char err[300];

	o->lookup = fake_lookup;
	s->p = rg_policy_new(o, err, sizeof(err));
	if (!s->p)
		fail_msg("rg_policy_new: %s", err);
	srv_start(s);
	return s;
}

static void srv_free(struct srv *s)
{
	srv_pause(s);
	rg_policy_free(s->p);
	free(s);
}

static struct rg_policy_stats srv_stats(struct srv *s)
{
	struct rg_policy_stats st;
	bool was = s->running;

	srv_pause(s);
	rg_policy_stats(s->p, &st);
	if (was)
		srv_start(s);
	return st;
}

static void sock_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- the Postfix side ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set_timeout(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_to(const char *address)
{
	int fd;

	if (!strncmp(address, "unix:", 5)) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", address + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)))
			fail_msg("connect %s: %s", address, strerror(errno));
	} else {
		struct sockaddr_storage ss = { 0 };
		char host[64];
		const char *h = address + 5, *colon = strrchr(h, ':');
		socklen_t sl;

		if (*h == '[') {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			snprintf(host, sizeof(host), "%.*s", (int)(colon - h - 2), h + 1);
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons(atoi(colon + 1));
			inet_pton(AF_INET6, host, &s6->sin6_addr);
			sl = sizeof(*s6);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			snprintf(host, sizeof(host), "%.*s", (int)(colon - h), h);
			s4->sin_family = AF_INET;
			s4->sin_port = htons(atoi(colon + 1));
			inet_pton(AF_INET, host, &s4->sin_addr);
			sl = sizeof(*s4);
		}
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&ss, sl))
			fail_msg("connect %s: %s", address, strerror(errno));
	}
	set_timeout(fd, 10000);
	return fd;
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail_msg("send: %s", strerror(errno));
		buf += w;
		len -= w;
	}
}

static void send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Read one reply (up to its empty line). Returns its length, 0 when the
 * server closed without answering, -1 on timeout. */
static int read_reply(int fd, char *buf, size_t len)
{
	size_t o = 0;

	while (o + 1 < len) {
		ssize_t r = recv(fd, buf + o, 1, 0);  /* byte-wise: never eat the next reply */

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			r = 0;
		if (r < 0)
			return -1;
		if (r == 0) {
			buf[o] = '\0';
			return o ? -2 : 0;             /* -2: a torn reply */
		}
		o += r;
		buf[o] = '\0';
		if (o >= 2 && buf[o - 1] == '\n' && buf[o - 2] == '\n')
			return o;
	}
	return -3;
}

static size_t request(char *buf, size_t len, const char *state, const char *client,
		      const char *sender, const char *rcpt)
{
	return snprintf(buf, len,
			"request=smtpd_access_policy\n"
			"protocol_state=%s\n"
			"protocol_name=ESMTP\n"
			"client_address=%s\n"
			"client_name=unknown\n"
			"helo_name=roaming.example\n"
			"sender=%s\n"
			"recipient=%s\n"
			"recipient_count=0\n"
			"queue_id=4XyZ1\n"
			"instance=1a2.6a2b.0\n"
			"size=0\n"
			"\n", state, client, sender, rcpt);
}

/* One request, one reply; returns the reply text (static). */
static const char *ask(int fd, const char *state, const char *client, const char *sender)
{
	static char reply[1024];
	char req[1024];
	size_t n = request(req, sizeof(req), state, client, sender, "bob@example.net");
	int r;

	send_all(fd, req, n);
	r = read_reply(fd, reply, sizeof(reply));
	if (r <= 0)
		fail_msg("no reply (%d) for %s from %s", r, state, client);
	return reply;
}

/* The server closed the connection without sending a byte. */
static void assert_closed_silently(int fd)
{
	char buf[64];
	int r = read_reply(fd, buf, sizeof(buf));

	if (r != 0)
		fail_msg("expected a silent close, got %d: '%s'", r, r > 0 || r == -2 ? buf : "");
}

static int setup(void **state)
{
	struct rlimit rl;

	(void)state;
	strcpy(tmpdir, "/tmp/rg-proto-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	/* 1,000 clients and their 1,000 server ends in one process */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests ---- */

static void test_answers(void **state)
{
	struct rg_policy_opts o = { 0 };
	char path[128], addr[160];
	struct srv *s;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "answers");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	assert_string_equal(rg_policy_address(s->p), addr);
	fd = connect_to(addr);
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "alice@example.org"), "action=OK\n\n");
	assert_string_equal(ask(fd, "RCPT", "10.0.0.9", "x@y"), "action=OK\n\n");
	assert_string_equal(ask(fd, "RCPT", "203.0.113.1", "x@y"), "action=DUNNO\n\n");
	assert_string_equal(ask(fd, "RCPT", "::ffff:198.51.100.7", "a@b"), "action=OK\n\n");
	assert_string_equal(ask(fd, "RCPT", "2001:db8::7", "a@b"), "action=OK\n\n");
	assert_string_equal(ask(fd, "RCPT", "not-an-address", "a@b"), "action=DUNNO\n\n");
	assert_string_equal(ask(fd, "MAIL", "198.51.100.7", "a@b"), "action=DUNNO\n\n");
	assert_string_equal(ask(fd, "END-OF-MESSAGE", "198.51.100.7", "a@b"), "action=DUNNO\n\n");
	/* not a policy request at all: DUNNO, no lookup */
	send_str(fd, "request=junk\nclient_address=10.0.0.9\n\n");
	{
		char r[64];

		assert_int_equal(read_reply(fd, r, sizeof(r)), 14);
		assert_string_equal(r, "action=DUNNO\n\n");
	}
	close(fd);
	srv_free(s);
	/* the socket is gone with the server */
	assert_int_equal(access(path, F_OK), -1);
}

static void test_many_requests_one_connection(void **state)
{
	struct rg_policy_opts o = { 0 };
	struct rg_policy_stats st;
	char path[128], addr[160];
	struct srv *s;
	int fd, i, before;

	(void)state;
	sock_path(path, sizeof(path), "many");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	before = __atomic_load_n(&lookups, __ATOMIC_RELAXED);
	fd = connect_to(addr);
	for (i = 0; i < 3000; i++) {
		switch (i % 3) {
		case 0:
			assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "a@b"), "action=OK\n\n");
			break;
		case 1:
			assert_string_equal(ask(fd, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
			break;
		default:
			assert_string_equal(ask(fd, "RCPT", "203.0.113.9", "a@b"), "action=DUNNO\n\n");
		}
	}
	close(fd);
	st = srv_stats(s);
	assert_int_equal(st.requests, 3000);
	assert_int_equal(st.ok, 2000);
	assert_int_equal(st.dunno, 1000);
	assert_int_equal(st.accepted, 1);
	assert_int_equal(st.malformed, 0);
	assert_int_equal(__atomic_load_n(&lookups, __ATOMIC_RELAXED) - before, 3000);
	srv_free(s);
}

static void test_pipelined_and_split(void **state)
{
	struct rg_policy_opts o = { 0 };
	char path[128], addr[160], req[4096], r[64];
	struct srv *s;
	size_t n = 0, one, i;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "pipe");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	fd = connect_to(addr);
	/* three requests in one write: three answers, in order */
	n += request(req + n, sizeof(req) - n, "RCPT", "203.0.113.9", "a@b", "c@d");
	n += request(req + n, sizeof(req) - n, "RCPT", "198.51.100.7", "a@b", "c@d");
	n += request(req + n, sizeof(req) - n, "RCPT", "203.0.113.9", "a@b", "c@d");
	send_all(fd, req, n);
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=DUNNO\n\n");
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=OK\n\n");
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=DUNNO\n\n");
	/* one request dribbled byte by byte */
	one = request(req, sizeof(req), "RCPT", "198.51.100.7", "a@b", "c@d");
	for (i = 0; i < one; i++)
		send_all(fd, req + i, 1);
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=OK\n\n");
	/* CRLF from a human with nc */
	send_str(fd, "request=smtpd_access_policy\r\nprotocol_state=RCPT\r\n"
		 "client_address=10.0.0.3\r\n\r\n");
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=OK\n\n");
	close(fd);
	srv_free(s);
}

static void malformed_case(const char *addr, const char *good_first, const char *bad,
			   size_t badlen)
{
	char r[64];
	int fd = connect_to(addr);

	if (good_first) {
		send_all(fd, good_first, strlen(good_first));
		assert_true(read_reply(fd, r, sizeof(r)) > 0);
		assert_string_equal(r, "action=OK\n\n");
	}
	send_all(fd, bad, badlen ? badlen : strlen(bad));
	assert_closed_silently(fd);
	close(fd);
}

static void test_malformed(void **state)
{
	struct rg_policy_opts o = { .max_attrs = 100, .max_request = 8192 };
	struct rg_policy_stats st;
	char path[128], addr[160], good[512], *big, r[64];
	struct srv *s;
	size_t n, i;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "malformed");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	request(good, sizeof(good), "RCPT", "198.51.100.7", "a@b", "c@d");

	malformed_case(addr, NULL, "request=smtpd_access_policy\nthis line has no equals\n\n", 0);
	malformed_case(addr, good, "request=smtpd_access_policy\n=empty name\n\n", 0);
	malformed_case(addr, good, "request=smtpd_access_policy\nsender=a\0b\n\n",
		       sizeof("request=smtpd_access_policy\nsender=a\0b\n\n") - 1);
	/* 101 attributes */
	big = malloc(65536);
	for (n = 0, i = 0; i < 101; i++)
		n += sprintf(big + n, "attr%zu=%zu\n", i, i);
	big[n++] = '\n';
	malformed_case(addr, good, big, n);
	/* 100 attributes are fine */
	for (n = 0, i = 0; i < 99; i++)
		n += sprintf(big + n, "attr%zu=%zu\n", i, i);
	n += sprintf(big + n, "client_address=10.0.0.1\nrequest=smtpd_access_policy\n");
	fd = connect_to(addr);
	send_all(fd, big, n);
	send_str(fd, "protocol_state=RCPT\n\n");
	assert_int_equal(read_reply(fd, r, sizeof(r)), 0);   /* 101 again: closed */
	close(fd);
	for (n = 0, i = 0; i < 97; i++)
		n += sprintf(big + n, "attr%zu=%zu\n", i, i);
	n += sprintf(big + n, "client_address=10.0.0.1\nrequest=smtpd_access_policy\n"
		     "protocol_state=RCPT\n\n");
	fd = connect_to(addr);
	send_all(fd, big, n);
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=OK\n\n");
	close(fd);

	/* oversized: 9,000 bytes and no end in sight */
	memset(big, 'x', 9000);
	memcpy(big, "request=", 8);
	malformed_case(addr, good, big, 9000);
	free(big);
	/* the lookup failing is "trouble" too: no answer */
	request(good, sizeof(good), "RCPT", "192.0.2.66", "a@b", "c@d");
	malformed_case(addr, NULL, good, strlen(good));

	/* and the server is fine afterwards */
	fd = connect_to(addr);
	assert_string_equal(ask(fd, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	close(fd);
	st = srv_stats(s);
	assert_int_equal(st.malformed, 6);
	assert_int_equal(st.lookup_errors, 1);
	assert_int_equal(st.connections, 0);
	srv_free(s);
}

static void test_request_size_limit(void **state)
{
	struct rg_policy_opts o = { .max_request = 1024 };
	char path[128], addr[160], req[2048], r[64];
	struct srv *s;
	size_t base, n;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "size");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	/* exactly max_request bytes, empty line included: answered */
	base = strlen("request=smtpd_access_policy\nprotocol_state=RCPT\n"
		      "client_address=10.0.0.1\nhelo_name=\n\n");
	n = snprintf(req, sizeof(req), "request=smtpd_access_policy\nprotocol_state=RCPT\n"
		     "client_address=10.0.0.1\nhelo_name=%0*d\n\n", (int)(1024 - base), 0);
	assert_int_equal(n, 1024);
	fd = connect_to(addr);
	send_all(fd, req, n);
	assert_true(read_reply(fd, r, sizeof(r)) > 0);
	assert_string_equal(r, "action=OK\n\n");
	/* one byte more: closed without an answer */
	n = snprintf(req, sizeof(req), "request=smtpd_access_policy\nprotocol_state=RCPT\n"
		     "client_address=10.0.0.1\nhelo_name=%0*d\n\n", (int)(1025 - base), 0);
	send_all(fd, req, n);
	assert_closed_silently(fd);
	close(fd);
	srv_free(s);
}

static void test_1000_concurrent(void **state)
{
	enum { N = 1000 };
	struct rg_policy_opts o = { 0 };
	struct rg_policy_stats st;
	char path[128], addr[160], req[1024], r[64];
	struct srv *s;
	int *fds = calloc(N, sizeof(int)), i, round;

	(void)state;
	sock_path(path, sizeof(path), "thousand");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	for (i = 0; i < N; i++)
		fds[i] = connect_to(addr);
	for (round = 0; round < 3; round++) {
		/* every connection has a request in flight at once */
		for (i = 0; i < N; i++) {
			size_t n = request(req, sizeof(req), "RCPT",
					   i % 2 ? "198.51.100.7" : "203.0.113.5", "a@b", "c@d");

			send_all(fds[(i * 7 + round) % N], req, n);
		}
		for (i = N - 1; i >= 0; i--) {
			int k = (i * 7 + round) % N;

			assert_true(read_reply(fds[k], r, sizeof(r)) > 0);
			assert_string_equal(r, i % 2 ? "action=OK\n\n" : "action=DUNNO\n\n");
		}
	}
	st = srv_stats(s);
	assert_int_equal(st.connections, N);
	assert_int_equal(st.requests, 3 * N);
	assert_int_equal(st.refused, 0);
	for (i = 0; i < N; i++)
		close(fds[i]);
	free(fds);
	srv_free(s);
}

static void test_stalled_client(void **state)
{
	struct rg_policy_opts o = { .read_timeout_ms = 3000 };
	struct rg_policy_stats st;
	char path[128], addr[160], r[64];
	struct pollfd pa;
	struct srv *s;
	double t0, tb;
	int a, b, i;

	(void)state;
	sock_path(path, sizeof(path), "stall");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	a = connect_to(addr);
	b = connect_to(addr);
	/* A sends half a request and stalls */
	send_str(a, "request=smtpd_access_policy\nprotocol_state=RC");
	t0 = now_s();
	/* B keeps getting answers meanwhile */
	for (i = 0; i < 200; i++)
		assert_string_equal(ask(b, "RCPT", "198.51.100.7", "a@b"), "action=OK\n\n");
	tb = now_s() - t0;
	/* all that while A was still connected, stalled (unless this machine
	 * is so slow that 200 answers took longer than the timeout) */
	pa = (struct pollfd){ .fd = a, .events = POLLIN };
	if (tb < 2.5)
		assert_int_equal(poll(&pa, 1, 0), 0);
	/* A is closed, without an answer, once its read_timeout has passed */
	assert_int_equal(read_reply(a, r, sizeof(r)), 0);
	assert_true(now_s() - t0 >= 2.9);
	assert_true(now_s() - t0 < 8.0);
	/* B is untouched */
	assert_string_equal(ask(b, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	st = srv_stats(s);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.connections, 1);
	close(a);
	close(b);
	srv_free(s);
}

/* The timeout counts from the request's first byte: dribbling does not
 * keep a connection alive forever. */
static void test_slow_dribble(void **state)
{
	struct rg_policy_opts o = { .read_timeout_ms = 400 };
	char path[128], addr[160], r[64];
	struct srv *s;
	double t0;
	int a, i;

	(void)state;
	sock_path(path, sizeof(path), "dribble");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	a = connect_to(addr);
	t0 = now_s();
	for (i = 0; i < 60; i++) {           /* a byte every 50 ms for 3 s */
		if (send(a, "x", 1, MSG_NOSIGNAL) != 1)
			break;
		usleep(50000);
	}
	/* closed long before the dribble ended */
	assert_true(i < 60);
	assert_int_equal(read_reply(a, r, sizeof(r)), 0);
	assert_true(now_s() - t0 >= 0.35);
	close(a);
	srv_free(s);
}

static void test_idle_timeout(void **state)
{
	struct rg_policy_opts o = { .idle_timeout_ms = 300 };
	struct rg_policy_stats st;
	char path[128], addr[160], r[64];
	struct srv *s;
	double t0;
	int a;

	(void)state;
	sock_path(path, sizeof(path), "idle");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	a = connect_to(addr);
	assert_string_equal(ask(a, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	t0 = now_s();
	assert_int_equal(read_reply(a, r, sizeof(r)), 0);
	assert_true(now_s() - t0 >= 0.25);
	st = srv_stats(s);
	assert_int_equal(st.idle_closed, 1);
	assert_int_equal(st.timeouts, 0);
	close(a);
	srv_free(s);
}

/* A client that sends requests but never reads the answers: its replies
 * back up, the server stops reading from it, and drops it after
 * read_timeout; others are served all along. */
static void test_unread_replies(void **state)
{
	struct rg_policy_opts o = { .read_timeout_ms = 500 };
	struct rg_policy_stats st;
	char path[128], addr[160], req[512], *blob;
	struct srv *s;
	size_t one, n, sent = 0;
	int a, b, sz = 4096;
	double t0;

	(void)state;
	sock_path(path, sizeof(path), "unread");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	a = connect_to(addr);
	b = connect_to(addr);
	setsockopt(a, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	one = request(req, sizeof(req), "RCPT", "203.0.113.9", "a@b", "c@d");
	n = one * 4096;
	blob = malloc(n);
	for (size_t i = 0; i < 4096; i++)
		memcpy(blob + i * one, req, one);
	fcntl(a, F_SETFL, O_NONBLOCK);
	t0 = now_s();
	while (sent < n && now_s() - t0 < 3) {
		ssize_t w = send(a, blob + sent, n - sent, MSG_NOSIGNAL);

		if (w > 0)
			sent += w;
		else if (w < 0 && errno != EAGAIN)
			break;
		else
			usleep(1000);
		assert_string_equal(ask(b, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	}
	free(blob);
	/* wait for the server to give up on A */
	t0 = now_s();
	do {
		st = srv_stats(s);
		if (st.timeouts)
			break;
		assert_string_equal(ask(b, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
		usleep(20000);
	} while (now_s() - t0 < 5);
	assert_int_equal(st.timeouts, 1);
	assert_int_equal(st.connections, 1);
	close(a);
	close(b);
	srv_free(s);
}

static void test_max_conns(void **state)
{
	struct rg_policy_opts o = { .max_conns = 5 };
	struct rg_policy_stats st;
	char path[128], addr[160], r[64];
	struct srv *s;
	int fds[6], i;

	(void)state;
	sock_path(path, sizeof(path), "maxconns");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	for (i = 0; i < 5; i++) {
		fds[i] = connect_to(addr);
		assert_string_equal(ask(fds[i], "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	}
	fds[5] = connect_to(addr);
	assert_int_equal(read_reply(fds[5], r, sizeof(r)), 0);
	close(fds[5]);
	/* room again after one leaves */
	close(fds[0]);
	usleep(100000);
	fds[0] = connect_to(addr);
	assert_string_equal(ask(fds[0], "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
	st = srv_stats(s);
	assert_int_equal(st.refused, 1);
	assert_int_equal(st.connections, 5);
	for (i = 0; i < 5; i++)
		close(fds[i]);
	srv_free(s);
}

/* The RLIMIT_NOFILE that leaves exactly want descriptors free (the limit
 * bounds fd numbers, and lower free numbers are reused first). */
static int limit_leaving(int want)
{
	int fd, free_slots = 0;

	for (fd = 0;; fd++)
		if (fcntl(fd, F_GETFD) < 0 && ++free_slots == want)
			return fd + 1;
}

/* Client side without cmocka (it runs in a forked child): -1 on error. */
static int connect_raw(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		fd = -1;
	}
	if (fd >= 0)
		set_timeout(fd, 5000);
	return fd;
}

enum { C_WAIT, C_ANSWERED, C_CLOSED };

/* Wait up to ms for the answers of fds[0..n); state[i] becomes ANSWERED,
 * or CLOSED when the server dropped the connection without one. */
static void await(const int *fds, int *st, int n, int ms)
{
	double end = now_s() + ms / 1000.0;
	int i, waiting;

	do {
		waiting = 0;
		for (i = 0; i < n; i++) {
			struct pollfd pf = { .fd = fds[i], .events = POLLIN };
			char r[64];
			int got;

			if (st[i] != C_WAIT)
				continue;
			waiting++;
			if (poll(&pf, 1, 10) != 1)
				continue;
			got = read_reply(fds[i], r, sizeof(r));
			st[i] = got > 0 && !strcmp(r, "action=OK\n\n") ? C_ANSWERED : C_CLOSED;
		}
	} while (waiting && now_s() < end);
}

static int count_state(const int *st, int n, int which)
{
	int i, c = 0;

	for (i = 0; i < n; i++)
		c += st[i] == which;
	return c;
}

/* The clients of test_out_of_fds, in a child process; reports over rep. */
static void emfile_child(const char *path, const char *req, int ctl, int rep)
{
	int fds[5], st[5], i, n;
	char c;

	alarm(30);
	if (read(ctl, &c, 1) != 1)              /* the server's limit is set */
		_exit(1);
	for (i = 0; i < 5; i++) {
		fds[i] = connect_raw(path);
		st[i] = C_WAIT;
		if (fds[i] < 0)
			_exit(2);
		if (send(fds[i], req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
			st[i] = C_CLOSED;
	}
	await(fds, st, 5, 1500);
	c = (char)count_state(st, 5, C_ANSWERED);
	if (write(rep, &c, 1) != 1 || read(ctl, &c, 1) != 1)
		_exit(1);
	/* two of the answered ones leave; those dropped try again */
	for (i = 0, n = 0; i < 5; i++) {
		if (st[i] == C_ANSWERED && n < 2) {
			close(fds[i]);
			fds[i] = -1;
			st[i] = C_WAIT + 10;     /* gone, counted as answered below */
			n++;
		} else if (st[i] != C_ANSWERED) {
			close(fds[i]);
			fds[i] = connect_raw(path);
			st[i] = C_WAIT;
			if (fds[i] < 0 ||
			    send(fds[i], req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
				st[i] = C_CLOSED;
		}
	}
	await(fds, st, 5, 5000);
	c = (char)(count_state(st, 5, C_ANSWERED) + n);
	if (write(rep, &c, 1) != 1)
		_exit(1);
	_exit(0);
}

/* Read one byte from fd within 20 s; -1 on timeout or EOF. */
static int read_byte(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pf, 1, 20000) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

/* Out of file descriptors: the server stops accepting (no busy loop, no
 * crash), serves what it has, and accepts again when a connection closes.
 * (With the kernel the extra connections wait in the backlog; under
 * valgrind, which emulates the limit, they are accepted and dropped, and
 * the client retries: both are what Postfix copes with.) */
static void test_out_of_fds(void **state)
{
	struct rg_policy_opts o = { 0 };
	char path[128], addr[160], req[512];
	struct rlimit old, low;
	int ctl[2], rep[2], first, second;
	struct srv *s;
	pid_t pid;

	(void)state;
	sock_path(path, sizeof(path), "emfile");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	s = srv_new(&o);
	request(req, sizeof(req), "RCPT", "10.0.0.1", "a@b", "c@d");
	assert_int_equal(pipe2(ctl, O_CLOEXEC), 0);
	assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(ctl[1]);
		close(rep[0]);
		emfile_child(path, req, ctl[0], rep[1]);
	}
	close(ctl[0]);
	close(rep[1]);
	/* room for three more descriptors in the server's process */
	getrlimit(RLIMIT_NOFILE, &old);
	low = old;
	low.rlim_cur = limit_leaving(3);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	first = write(ctl[1], "g", 1) == 1 ? read_byte(rep[0]) : -1;
	second = first >= 0 && write(ctl[1], "g", 1) == 1 ? read_byte(rep[0]) : -1;
	setrlimit(RLIMIT_NOFILE, &old);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(ctl[1]);
	close(rep[0]);
	srv_free(s);
	assert_int_equal(first, 3);             /* three served, two wait */
	assert_int_equal(second, 5);            /* then the other two */
}

static void test_unix_socket_setup(void **state)
{
	struct rg_policy_opts o = { 0 };
	struct rg_policy *p, *q;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[128], addr[160], err[300];
	struct passwd *nobody = getpwnam("nobody");
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(nobody);
	sock_path(path, sizeof(path), "perm");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	o.listen = addr;
	o.lookup = fake_lookup;
	o.socket_owner = "nobody";
	o.socket_mode = 0660;
	p = rg_policy_new(&o, err, sizeof(err));
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(st.st_uid, nobody->pw_uid);
	assert_int_equal(st.st_gid, nobody->pw_gid);

	/* a second instance on the same path: refused, first one untouched */
	q = rg_policy_new(&o, err, sizeof(err));
	assert_null(q);
	assert_string_equal(strstr(err, "another process is listening there"),
			    "another process is listening there");
	assert_int_equal(access(path, F_OK), 0);
	rg_policy_free(p);
	assert_int_equal(access(path, F_OK), -1);

	/* a stale socket (nobody listening) is replaced */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	o.socket_owner = "root:nogroup";
	o.socket_mode = 0600;
	p = rg_policy_new(&o, err, sizeof(err));
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, 0);
	{
		struct srv s2 = { .p = p };

		srv_start(&s2);
		fd = connect_to(addr);
		assert_string_equal(ask(fd, "RCPT", "10.0.0.1", "a@b"), "action=OK\n\n");
		close(fd);
		srv_pause(&s2);
	}
	rg_policy_free(p);
}

static void expect_new_fails(const char *listen, const char *owner, const char *want)
{
	struct rg_policy_opts o = { .listen = listen, .socket_owner = owner,
				    .lookup = fake_lookup };
	char err[300] = "";
	struct rg_policy *p = rg_policy_new(&o, err, sizeof(err));

	if (p) {
		rg_policy_free(p);
		fail_msg("%s: accepted, expected '%s'", listen, want);
	}
	if (!strstr(err, want))
		fail_msg("%s: error '%s' lacks '%s'", listen, err, want);
}

static void test_listen_errors(void **state)
{
	char path[128], addr[160];
	int fd;

	(void)state;
	expect_new_fails("unix:private/relaygate", NULL, "use an absolute path");
	expect_new_fails("unix:/nonexistent-dir/sock", NULL,
			 "listen unix:/nonexistent-dir/sock: bind: No such file or directory");
	sock_path(path, sizeof(path), "regular");
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	snprintf(addr, sizeof(addr), "unix:%s", path);
	expect_new_fails(addr, NULL, "exists and is not a socket");
	assert_int_equal(access(path, F_OK), 0);  /* not deleted */
	sock_path(path, sizeof(path), "owner");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	expect_new_fails(addr, "no-such-user-rg", "socket_owner no-such-user-rg: no such user");
	expect_new_fails(addr, "root:no-such-group-rg", "no such group");
	assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
	expect_new_fails("inet:localhost:10040", NULL, "numeric address");
	expect_new_fails("inet:127.0.0.1:99999", NULL,
			 "listen inet:127.0.0.1:99999: expected unix:/PATH or [inet:]ADDRESS:PORT");
	expect_new_fails("inet:127.0.0.1", NULL, "expected unix:/PATH or [inet:]ADDRESS:PORT");
	expect_new_fails("inet:[::1:10040", NULL, "expected unix:/PATH or [inet:]ADDRESS:PORT");
	expect_new_fails("tcp:127.0.0.1:10040", NULL,
			 "listen tcp:127.0.0.1:10040: expected unix:/PATH or [inet:]ADDRESS:PORT");
	expect_new_fails("/var/spool/postfix/private/relaygate", NULL,
			 "expected unix:/PATH or [inet:]ADDRESS:PORT");
	expect_new_fails("", NULL, "no listen address");
	{
		struct rg_policy_opts o = { .listen = "inet:127.0.0.1:0", .lookup = fake_lookup,
					    .max_request = 100 };
		char err[200];

		assert_null(rg_policy_new(&o, err, sizeof(err)));
		assert_string_equal(err, "policy: max_request 100 out of range (256..1048576)");
		o.max_request = 2u << 20;
		assert_null(rg_policy_new(&o, err, sizeof(err)));
		o.max_request = 0;
		o.lookup = NULL;
		assert_null(rg_policy_new(&o, err, sizeof(err)));
		assert_string_equal(err, "policy: no lookup function");
	}
}

static void test_inet(void **state)
{
	struct rg_policy_opts o = { .listen = "inet:127.0.0.1:0" };
	struct srv *s;
	int fd;

	(void)state;
	s = srv_new(&o);
	assert_int_equal(strncmp(rg_policy_address(s->p), "inet:127.0.0.1:", 15), 0);
	assert_true(atoi(rg_policy_address(s->p) + 15) > 0);
	fd = connect_to(rg_policy_address(s->p));
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "a@b"), "action=OK\n\n");
	close(fd);
	srv_free(s);

	/* without "inet:", as [policy] listen = 127.0.0.1:10040 allows */
	o.listen = "127.0.0.1:0";
	s = srv_new(&o);
	assert_int_equal(strncmp(rg_policy_address(s->p), "inet:127.0.0.1:", 15), 0);
	fd = connect_to(rg_policy_address(s->p));
	assert_string_equal(ask(fd, "RCPT", "10.0.0.7", "a@b"), "action=OK\n\n");
	close(fd);
	srv_free(s);

	o.listen = "inet:[::1]:0";
	s = srv_new(&o);
	assert_int_equal(strncmp(rg_policy_address(s->p), "inet:[::1]:", 11), 0);
	fd = connect_to(rg_policy_address(s->p));
	assert_string_equal(ask(fd, "RCPT", "203.0.113.1", "a@b"), "action=DUNNO\n\n");
	close(fd);
	srv_free(s);
}

static int read_all(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return (int)n;
}

static void test_sender_logins_and_audit(void **state)
{
	static const char map[] = "alice: alice@example.org, @alice.example\n";
	struct rg_policy_opts o = { 0 };
	struct rg_senderlogins *sl;
	struct rg_audit *au;
	char path[128], addr[160], apath[160], err[300], text[8192];
	struct srv *s;
	int fd;

	(void)state;
	sock_path(path, sizeof(path), "senders");
	snprintf(addr, sizeof(addr), "unix:%s", path);
	sock_path(apath, sizeof(apath), "audit.log");
	sl = rg_senderlogins_parse(map, strlen(map), "map", err, sizeof(err));
	assert_non_null(sl);
	au = rg_audit_open(apath, err, sizeof(err));
	assert_non_null(au);
	rg_audit_set_log(au, false);
	o.listen = addr;
	o.sender_logins = sl;
	o.audit = au;
	s = srv_new(&o);
	fd = connect_to(addr);
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "alice@example.org"), "action=OK\n\n");
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "bob@example.org"),
			    "action=REJECT 5.7.1 <bob@example.org> not owned by user alice\n\n");
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", ""), "action=OK\n\n");
	/* trusted subnets carry no user: no sender check */
	assert_string_equal(ask(fd, "RCPT", "10.0.0.4", "bob@example.org"), "action=OK\n\n");
	assert_string_equal(ask(fd, "END-OF-MESSAGE", "198.51.100.7", "alice@example.org"),
			    "action=DUNNO\n\n");
	/* an unknown client: no audit line */
	assert_string_equal(ask(fd, "RCPT", "203.0.113.1", "bob@example.org"), "action=DUNNO\n\n");

	/* reload: no map any more */
	srv_pause(s);
	rg_policy_set_sender_logins(s->p, NULL);
	rg_senderlogins_free(sl);
	srv_start(s);
	assert_string_equal(ask(fd, "RCPT", "198.51.100.7", "bob@example.org"), "action=OK\n\n");
	close(fd);
	srv_free(s);
	rg_audit_close(au);

	assert_true(read_all(apath, text, sizeof(text)) > 0);
	/* each line: timestamp, then the record */
	{
		static const char *const want[] = {
			"relay client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) sender=<alice@example.org> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=RCPT action=OK",
			"reject client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) sender=<bob@example.org> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=RCPT action=REJECT reason=sender_not_owned",
			"relay client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) sender=<> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=RCPT action=OK",
			"relay client=10.0.0.4 user=- auth=trusted(10.0.0.0/24) sender=<bob@example.org> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=RCPT action=OK",
			"message client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) sender=<alice@example.org> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=END-OF-MESSAGE action=DUNNO",
			"relay client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z) sender=<bob@example.org> recipient=<bob@example.net> queue_id=4XyZ1 instance=1a2.6a2b.0 state=RCPT action=OK",
		};
		char *line = text, *nl;
		size_t i = 0;

		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (i >= sizeof(want) / sizeof(want[0]))
				fail_msg("extra audit line: %s", line);
			assert_true(strlen(line) > 25);
			assert_int_equal(line[23], 'Z');
			assert_string_equal(line + 25, want[i]);
			i++;
			line = nl + 1;
		}
		assert_int_equal(i, sizeof(want) / sizeof(want[0]));
	}
}

/*
 * --serve: the server alone, for tests/e2e/test_policy_proto.sh to put
 * real Postfix in front of it, with the real lookup over BPF maps (created
 * here, unpinned) until the daemon does this itself:
 *
 *   test_policy_proto --serve LISTEN [--owner USER] [--grant ADDR=USER]...
 *       [--trust CIDR]... [--deny ADDR]... [--sender-logins FILE] [--audit FILE]
 *
 * Prints "ready" when listening. SIGHUP reopens the audit file and reloads
 * sender_logins (the daemon's reload path); SIGTERM/SIGINT exit.
 */
static int serve_map(enum bpf_map_type t, size_t k, size_t v, unsigned max, unsigned flags)
{
	LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);

	return bpf_map_create(t, NULL, k, v, max, &o);
}

static int serve(int argc, char **argv)
{
	struct rg_policy_opts o = { .listen = argv[2] };
	struct rg_config cfg = { .abi_version = RG_ABI_VERSION, .v4_prefix = 32, .v6_prefix = 64 };
	const char *sl_path = NULL, *audit_path = NULL;
	struct rg_senderlogins *sl = NULL;
	struct rg_audit *au = NULL;
	struct rg_policy_maps maps;
	struct rg_policy *p;
	struct rg_gate g;
	struct epoll_event ev = { .events = EPOLLIN };
	struct timespec ts;
	uint64_t boot;
	sigset_t mask;
	char err[400];
	__u32 zero = 0, one = 1;
	int i, ep, sfd;

	rg_log_init("relaygate-policy", false, RG_LOG_INFO);
	memset(&g, 0, sizeof(g));
	g.config_fd = g.ports_fd = g.tiface_fd = g.flows_fd = g.stats_fd = g.events_fd = -1;
	g.lock_fd = -1;
	g.config_fd = serve_map(BPF_MAP_TYPE_ARRAY, 4, sizeof(cfg), 1, 0);
	g.trust4_fd = serve_map(BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rg_lpm4), 4, 1024,
				BPF_F_NO_PREALLOC);
	g.trust6_fd = serve_map(BPF_MAP_TYPE_LPM_TRIE, sizeof(struct rg_lpm6), 4, 1024,
				BPF_F_NO_PREALLOC);
	g.grants_fd = serve_map(BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_addr),
				sizeof(struct rg_grant), 1024, 0);
	g.deny_fd = serve_map(BPF_MAP_TYPE_LRU_HASH, sizeof(struct rg_addr),
			      sizeof(struct rg_deny), 1024, 0);
	if (g.config_fd < 0 || g.trust4_fd < 0 || g.trust6_fd < 0 || g.grants_fd < 0 ||
	    g.deny_fd < 0) {
		fprintf(stderr, "serve: BPF maps: %s\n", strerror(errno));
		return 1;
	}
	bpf_map_update_elem(g.config_fd, &zero, &cfg, 0);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	boot = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	for (i = 3; i < argc; i++) {
		const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		const char *why;
		struct rg_addr a;
		unsigned plen;

		if (!val) {
			fprintf(stderr, "serve: %s needs a value\n", arg);
			return 2;
		}
		i++;
		if (!strcmp(arg, "--owner")) {
			o.socket_owner = val;
		} else if (!strcmp(arg, "--sender-logins")) {
			sl_path = val;
		} else if (!strcmp(arg, "--audit")) {
			audit_path = val;
		} else if (!strcmp(arg, "--grant") || !strcmp(arg, "--deny")) {
			const char *eq = strchr(val, '=');
			char ip[64];

			snprintf(ip, sizeof(ip), "%.*s", eq ? (int)(eq - val) : (int)strlen(val), val);
			if (rg_addr_parse(ip, &a, &why)) {
				fprintf(stderr, "serve: %s %s: %s\n", arg, ip, why);
				return 2;
			}
			rg_addr_key(&a, 32, 64);
			if (arg[2] == 'g') {
				struct rg_grant gr = { .expires = boot + 3600000000000ULL,
						       .granted = boot, .origin = RG_ORIGIN_LOG,
						       .service = RG_SERVICE_POP3 };

				snprintf(gr.user, sizeof(gr.user), "%s", eq ? eq + 1 : "");
				bpf_map_update_elem(g.grants_fd, &a, &gr, 0);
			} else {
				struct rg_deny d = { .expires = boot + 3600000000000ULL };

				bpf_map_update_elem(g.deny_fd, &a, &d, 0);
			}
		} else if (!strcmp(arg, "--trust")) {
			if (rg_cidr_parse(val, &a, &plen, &why)) {
				fprintf(stderr, "serve: --trust %s: %s\n", val, why);
				return 2;
			}
			if (a.family == RG_AF_INET) {
				struct rg_lpm4 k = { .prefixlen = plen };

				memcpy(k.addr, a.addr, 4);
				bpf_map_update_elem(g.trust4_fd, &k, &one, 0);
			} else {
				struct rg_lpm6 k = { .prefixlen = plen };

				memcpy(k.addr, a.addr, 16);
				bpf_map_update_elem(g.trust6_fd, &k, &one, 0);
			}
		} else {
			fprintf(stderr, "serve: unknown option %s\n", arg);
			return 2;
		}
	}
	if (sl_path && !(sl = rg_senderlogins_load(sl_path, err, sizeof(err)))) {
		fprintf(stderr, "serve: %s\n", err);
		return 1;
	}
	if (!(au = rg_audit_open(audit_path, err, sizeof(err)))) {
		fprintf(stderr, "serve: %s\n", err);
		return 1;
	}
	rg_policy_maps_init(&maps, &g);
	o.lookup = rg_policy_lookup_maps;
	o.lookup_ctx = &maps;
	o.sender_logins = sl;
	o.audit = au;
	p = rg_policy_new(&o, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "serve: %s\n", err);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, rg_policy_fd(p), &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
	printf("ready %s\n", rg_policy_address(p));
	fflush(stdout);
	for (;;) {
		struct epoll_event got[4];
		int n = epoll_wait(ep, got, 4, -1), k;

		for (k = 0; k < n; k++) {
			struct signalfd_siginfo si;

			if (got[k].data.u32 == 1) {
				rg_policy_process(p);
				continue;
			}
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				struct rg_senderlogins *nsl = NULL;

				if (rg_audit_reopen(au, err, sizeof(err)))
					rg_err("%s", err);
				if (sl_path && !(nsl = rg_senderlogins_load(sl_path, err, sizeof(err)))) {
					rg_err("%s (keeping the old map)", err);
					continue;
				}
				rg_policy_set_sender_logins(p, nsl);
				rg_senderlogins_free(sl);
				sl = nsl;
				rg_info("reloaded");
				continue;
			}
			rg_policy_free(p);
			rg_audit_close(au);
			rg_senderlogins_free(sl);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_many_requests_one_connection),
		cmocka_unit_test(test_pipelined_and_split),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_request_size_limit),
		cmocka_unit_test(test_1000_concurrent),
		cmocka_unit_test(test_stalled_client),
		cmocka_unit_test(test_slow_dribble),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_unread_replies),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_out_of_fds),
		cmocka_unit_test(test_unix_socket_setup),
		cmocka_unit_test(test_listen_errors),
		cmocka_unit_test(test_inet),
		cmocka_unit_test(test_sender_logins_and_audit),
	};

	if (argc >= 3 && !strcmp(argv[1], "--serve"))
		return serve(argc, argv);
	rg_log_init("test_policy_proto", false, RG_LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
