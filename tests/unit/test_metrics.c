// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Metrics: the exposition-format helpers, and GET /metrics from the
 * libmicrohttpd server over a raw TCP socket. (The gate's families, read
 * from real maps, are checked in test_grants.c.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
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
#include <unistd.h>
#include <cmocka.h>
#include "httpd.h"
#include "log.h"
#include "metrics.h"

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

static void test_format(void **state)
{
	struct rg_mbuf b;

	(void)state;
	rg_mbuf_init(&b);
	rg_metric_family(&b, "relaygate_x_total", "counter", "Lines with a \\ and a\nnewline.");
	rg_metric_u64(&b, "relaygate_x_total", 18446744073709551615ULL);
	rg_metric_u64_l1(&b, "relaygate_x_total", "source", "a\"b\\c\nd", 7);
	rg_metric_u64_l2(&b, "relaygate_x_total", "source", "dovecot", "kind", "login", 0);
	assert_false(b.oom);
	assert_string_equal(b.buf,
		"# HELP relaygate_x_total Lines with a \\\\ and a\\nnewline.\n"
		"# TYPE relaygate_x_total counter\n"
		"relaygate_x_total 18446744073709551615\n"
		"relaygate_x_total{source=\"a\\\"b\\\\c\\nd\"} 7\n"
		"relaygate_x_total{source=\"dovecot\",kind=\"login\"} 0\n");
	assert_int_equal(b.len, strlen(b.buf));
	rg_mbuf_free(&b);

	/* Grows past its first allocation. */
	rg_mbuf_init(&b);
	for (int i = 0; i < 5000; i++)
		rg_metric_u64_l1(&b, "relaygate_y", "n", "0123456789", (uint64_t)i);
	assert_false(b.oom);
	assert_int_equal(b.len, strlen(b.buf));
	assert_non_null(strstr(b.buf, "relaygate_y{n=\"0123456789\"} 4999\n"));
	rg_mbuf_free(&b);
}

static void test_listen_parse(void **state)
{
	static const struct {
		const char *s;
		int family;                  /* 0: must fail */
		unsigned port;
	} cases[] = {
		{ "127.0.0.1:9469", AF_INET, 9469 },
		{ "0.0.0.0:0", AF_INET, 0 },
		{ "[::1]:9469", AF_INET6, 9469 },
		{ "[::]:65535", AF_INET6, 65535 },
		{ "", 0, 0 },
		{ "9469", 0, 0 },
		{ "localhost:9469", 0, 0 },
		{ "::1:9469", 0, 0 },
		{ "[::1]9469", 0, 0 },
		{ "[::1", 0, 0 },
		{ "127.0.0.1:", 0, 0 },
		{ "127.0.0.1:65536", 0, 0 },
		{ "127.0.0.1:-1", 0, 0 },
		{ "127.0.0.1:80x", 0, 0 },
		{ "[192.0.2.1]:80", 0, 0 },
	};
	struct sockaddr_storage ss;
	const char *why;
	socklen_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = rg_listen_parse(cases[i].s, &ss, &len, &why);

		if (!cases[i].family) {
			if (r != -1)
				fail_msg("'%s' accepted", cases[i].s);
			continue;
		}
		if (r)
			fail_msg("'%s': %s", cases[i].s, why);
		assert_int_equal(ss.ss_family, cases[i].family);
		if (cases[i].family == AF_INET)
			assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), cases[i].port);
		else
			assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), cases[i].port);
	}
}

static int renders;

static void render(struct rg_mbuf *b, void *ctx)
{
	renders++;
	rg_metric_family(b, "relaygate_test_total", "counter", "A test counter.");
	rg_metric_u64_l1(b, "relaygate_test_total", "source", (const char *)ctx, (uint64_t)renders);
}

static int get(unsigned port, const char *req, char *out, size_t cap)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	size_t have = 0;
	int fd, status = -1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5000) != 1)
			break;
		r = read(fd, out + have, cap - 1 - have);
		if (r <= 0)
			break;
		have += r;
		if (have == cap - 1)
			break;
	}
	close(fd);
	out[have] = '\0';
	sscanf(out, "HTTP/1.%*d %d", &status);
	return status;
}

static void test_server(void **state)
{
	struct rg_metrics *m;
	char out[4096], err[256];
	unsigned port;

	(void)state;
	if (!have_netns)
		skip();      /* needs root for a private network namespace */
	assert_int_equal(rg_metrics_start(&m, "127.0.0.1:0", render, "dovecot", err, sizeof(err)), 0);
	port = rg_metrics_port(m);
	assert_true(port > 0);

	renders = 0;
	assert_int_equal(get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			     out, sizeof(out)), 200);
	assert_non_null(strstr(out, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	assert_non_null(strstr(out, "\r\n\r\n# HELP relaygate_test_total A test counter.\n"
				    "# TYPE relaygate_test_total counter\n"
				    "relaygate_test_total{source=\"dovecot\"} 1\n"));
	assert_int_equal(get(port, "GET /metrics HTTP/1.0\r\n\r\n", out, sizeof(out)), 200);
	assert_non_null(strstr(out, "relaygate_test_total{source=\"dovecot\"} 2\n"));
	assert_int_equal(get(port, "GET / HTTP/1.0\r\n\r\n", out, sizeof(out)), 404);
	assert_int_equal(get(port, "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n", out,
			     sizeof(out)), 405);
	assert_int_equal(renders, 2);

	/* The daemon holds the lock while it changes what render reads: a
	 * scrape waits for it (here: render runs after unlock). */
	rg_metrics_lock(m);
	renders = 10;
	rg_metrics_unlock(m);
	{
		struct rg_mbuf b;

		rg_mbuf_init(&b);
		assert_int_equal(rg_metrics_render(m, &b), 0);
		assert_non_null(strstr(b.buf, "relaygate_test_total{source=\"dovecot\"} 11\n"));
		rg_mbuf_free(&b);
	}

	/* The port is taken: a clear error. */
	{
		struct rg_metrics *m2 = NULL;
		char listen[32];

		snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
		assert_int_not_equal(rg_metrics_start(&m2, listen, render, "x", err, sizeof(err)), 0);
		assert_null(m2);
		assert_non_null(strstr(err, "metrics listen 127.0.0.1:"));
	}
	rg_metrics_stop(m);
	rg_metrics_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_listen_parse),
		cmocka_unit_test(test_server),
	};

	rg_log_init("test_metrics", false, RG_LOG_ERR);
	return cmocka_run_group_tests(tests, private_netns, NULL);
}
