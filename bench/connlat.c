// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * connlat: TCP connect latency, for "a granted client during the flood".
 *
 *   connlat listen ADDR PORT SECONDS
 *       Accepts and closes connections on ADDR:PORT (backlog 4096) until
 *       SECONDS have passed or SIGTERM.
 *   connlat connect ADDR PORT COUNT INTERVAL_MS TIMEOUT_MS [BIND_ADDR]
 *       COUNT connects (ADDR must be a lab address: 10.0.0.0/8 or fd00::/8),
 *       one every INTERVAL_MS, each waited for up to
 *       TIMEOUT_MS (a lost SYN is retransmitted by the kernel after 1 s, so
 *       a timeout above 1000 shows those as slow rather than failed).
 *       Prints, tab-separated:
 *         ok N  fail N  p50_us  p90_us  p99_us  max_us
 *       and with -v each sample on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT 100000

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what)
{
	fprintf(stderr, "connlat: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ADDR (v4 or v6) and PORT into ss; returns the address length. */
static socklen_t sockaddr_of(const char *addr, unsigned port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		return sizeof(*s4);
	}
	if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		return sizeof(*s6);
	}
	fprintf(stderr, "connlat: %s: not an IP address\n", addr);
	exit(2);
}

static int do_listen(const char *addr, unsigned port, double seconds)
{
	struct sockaddr_storage ss;
	socklen_t len = sockaddr_of(addr, port, &ss);
	double end = now_s() + seconds;
	int fd, c, one = 1;

	signal(SIGTERM, on_term);
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len))
		die("bind");
	if (listen(fd, 4096))
		die("listen");
	while (!stop && now_s() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 200) <= 0)
			continue;
		while ((c = accept(fd, NULL, NULL)) >= 0)
			close(c);
	}
	close(fd);
	return 0;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* One connect; its latency in seconds, or -1 on failure/timeout. */
static double one_connect(const struct sockaddr_storage *ss, socklen_t len,
			  const struct sockaddr_storage *bs, socklen_t blen, int tmo_ms)
{
	struct pollfd p;
	double t0, dt = -1;
	int fd, err = 0;
	socklen_t el = sizeof(err);

	fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket");
	if (blen && bind(fd, (const struct sockaddr *)bs, blen))
		die("bind");
	t0 = now_s();
	if (connect(fd, (const struct sockaddr *)ss, len) && errno != EINPROGRESS)
		goto out;
	p.fd = fd;
	p.events = POLLOUT;
	if (poll(&p, 1, tmo_ms) != 1)
		goto out;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err)
		goto out;
	dt = now_s() - t0;
out:
	close(fd);
	return dt;
}

/* Lab addresses only: 10.0.0.0/8 or fd00::/8. */
static bool lab_addr(const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET)
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 10;
	return s6->sin6_addr.s6_addr[0] == 0xfd;
}

static int do_connect(const char *addr, unsigned port, long count, double interval_ms,
		      int tmo_ms, const char *bind_addr, bool verbose)
{
	struct sockaddr_storage ss, bs;
	socklen_t len = sockaddr_of(addr, port, &ss), blen = 0;
	double *lat, next = now_s();
	long i, ok = 0;

	if (!lab_addr(&ss)) {
		fprintf(stderr, "connlat: %s: not a lab address (10.0.0.0/8, fd00::/8): refusing\n",
			addr);
		exit(2);
	}

	if (bind_addr)
		blen = sockaddr_of(bind_addr, 0, &bs);
	lat = calloc((size_t)count, sizeof(*lat));
	if (!lat)
		die("calloc");
	for (i = 0; i < count; i++) {
		double dt;

		while (now_s() < next)
			usleep(200);
		next += interval_ms / 1000.0;
		dt = one_connect(&ss, len, &bs, blen, tmo_ms);
		if (verbose)
			fprintf(stderr, "%ld\t%.1f\n", i, dt < 0 ? -1.0 : dt * 1e6);
		if (dt >= 0)
			lat[ok++] = dt;
	}
	qsort(lat, (size_t)ok, sizeof(*lat), cmp_d);
#define PCT(p) (ok ? lat[(long)((p) * (ok - 1) + 0.5)] * 1e6 : -1.0)
	printf("ok\t%ld\tfail\t%ld\t%.0f\t%.0f\t%.0f\t%.0f\n", ok, count - ok, PCT(0.5), PCT(0.9),
	       PCT(0.99), ok ? lat[ok - 1] * 1e6 : -1.0);
	free(lat);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: connlat listen ADDR PORT SECONDS\n"
			"       connlat [-v] connect ADDR PORT COUNT INTERVAL_MS TIMEOUT_MS\n"
			"               [BIND_ADDR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool verbose = false;
	unsigned long port;

	if (argc > 1 && !strcmp(argv[1], "-v")) {
		verbose = true;
		argv++;
		argc--;
	}
	if (argc < 5)
		usage();
	port = strtoul(argv[3], NULL, 10);
	if (!port || port > 65535)
		usage();
	if (!strcmp(argv[1], "listen") && argc == 5) {
		double s = atof(argv[4]);

		if (!(s > 0 && s <= 3600))
			usage();
		return do_listen(argv[2], (unsigned)port, s);
	}
	if (!strcmp(argv[1], "connect") && (argc == 7 || argc == 8)) {
		long n = atol(argv[4]);
		double iv = atof(argv[5]);
		int tmo = atoi(argv[6]);

		if (n < 1 || n > MAX_COUNT || iv < 0 || tmo < 1 || tmo > 60000)
			usage();
		return do_connect(argv[2], (unsigned)port, n, iv, tmo, argc == 8 ? argv[7] : NULL,
				  verbose);
	}
	usage();
	return 2;
}
