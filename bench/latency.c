// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency: how long from a log line's append to its grant in the map
 * (issue 3's benchmark; bench/latency.sh runs it against a real
 * relaygated).
 *
 *   latency -p PIN_DIR -l LOG [-n LINES] [-i INTERVAL_US] [-t TIMEOUT_MS]
 *           [-w POLL_US] [-r RAW_FILE]
 *
 * For each of LINES distinct addresses (198.18.0.0/15, the benchmarking
 * range: these are only map keys, no packet is ever sent) it appends one
 * Dovecot 2.3 "pop3-login: Info: Login:" line to LOG with a single
 * write(2), takes CLOCK_MONOTONIC just before the write, and then looks the
 * address up in the pinned grant map (rg_grant_get) until it is there: the
 * time of the first successful lookup minus the time before the write is
 * that line's latency. Lookups are POLL_US apart (default 10 µs, timer
 * slack 1 µs; 0 = spin), so the resolution is about POLL_US plus one
 * lookup. The next line follows INTERVAL_US (default 1000) after a grant
 * was seen, so each line finds the daemon idle: this measures latency,
 * not a backlog. A line without a grant after TIMEOUT_MS (default 1000)
 * counts as lost.
 *
 * Prints one line "lines=N lost=N min=.. p50=.. p90=.. p99=.. max=..
 * mean=.." in milliseconds; with -r every latency (µs, one a line) goes to
 * RAW_FILE. Exit 0 when every line got its grant, 1 otherwise, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "gatemaps.h"

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "latency: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(code);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000ULL, .tv_nsec = ns % 1000000000ULL };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static unsigned long parse_num(const char *opt, const char *s, unsigned long min, unsigned long max)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
		die(2, "-%s %s: expected a number from %lu to %lu", opt, s, min, max);
	return v;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of the sorted v[0..n-1]. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: latency -p PIN_DIR -l LOG [-n LINES] [-i INTERVAL_US] [-t TIMEOUT_MS]\n"
		   "               [-w POLL_US] [-r RAW_FILE]\n");
}

int main(int argc, char **argv)
{
	const char *pin = NULL, *logpath = NULL, *raw = NULL;
	unsigned long lines = 2000, interval_us = 1000, timeout_ms = 1000, poll_us = 10;
	struct rg_gate g;
	uint64_t *lat, sum = 0;
	size_t got = 0, lost = 0;
	char stamp[32];
	int fd, c, r;

	while ((c = getopt(argc, argv, "p:l:n:i:t:w:r:h")) != -1) {
		switch (c) {
		case 'p': pin = optarg; break;
		case 'l': logpath = optarg; break;
		case 'n': lines = parse_num("n", optarg, 1, 100000); break;
		case 'i': interval_us = parse_num("i", optarg, 0, 10000000); break;
		case 't': timeout_ms = parse_num("t", optarg, 1, 60000); break;
		case 'w': poll_us = parse_num("w", optarg, 0, 100000); break;
		case 'r': raw = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!pin || !logpath || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Wake up from the short sleeps when asked, not 50 µs later. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

	r = rg_gate_open(&g, pin);
	if (r)
		die(1, "%s", g.err);
	fd = open(logpath, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		die(1, "%s: %s", logpath, strerror(errno));
	lat = calloc(lines, sizeof(*lat));
	if (!lat)
		die(1, "out of memory");

	for (unsigned long i = 0; i < lines; i++) {
		struct rg_addr a = { .family = RG_AF_INET };
		struct rg_grant v;
		char line[512];
		uint64_t t0, deadline;
		time_t wall = time(NULL);
		struct tm tm;
		int len;

		/* 198.18.0.1 upwards: never 0 in the last byte. */
		a.addr[0] = 198;
		a.addr[1] = 18 + (uint8_t)((i / 255) >> 8);
		a.addr[2] = (uint8_t)(i / 255);
		a.addr[3] = (uint8_t)(i % 255 + 1);
		if (rg_grant_get(&g, &a, &v) == 0)
			die(1, "198.%u.%u.%u already holds a grant: use fresh maps",
			    a.addr[1], a.addr[2], a.addr[3]);
		localtime_r(&wall, &tm);
		strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm);
		len = snprintf(line, sizeof(line),
			       "%s pop3-login: Info: Login: user=<bench%lu>, method=PLAIN, "
			       "rip=198.%u.%u.%u, lip=10.0.0.1, mpid=%lu, session=<lat%lu>\n",
			       stamp, i, a.addr[1], a.addr[2], a.addr[3], 10000 + i, i);

		t0 = now_ns();
		if (write(fd, line, (size_t)len) != len)
			die(1, "%s: write: %s", logpath, strerror(errno));
		deadline = t0 + timeout_ms * 1000000ULL;
		for (;;) {
			uint64_t t = now_ns();

			if (rg_grant_get(&g, &a, &v) == 0) {
				lat[got] = now_ns() - t0;
				sum += lat[got++];
				break;
			}
			if (t > deadline) {
				lost++;
				fprintf(stderr, "latency: line %lu (198.%u.%u.%u): no grant after %lu ms\n",
					i, a.addr[1], a.addr[2], a.addr[3], timeout_ms);
				break;
			}
			if (poll_us)
				sleep_ns(poll_us * 1000ULL);
		}
		if (interval_us)
			sleep_ns(interval_us * 1000ULL);
	}
	close(fd);
	rg_gate_close(&g);

	if (raw) {
		FILE *f = fopen(raw, "w");

		if (!f)
			die(1, "%s: %s", raw, strerror(errno));
		for (size_t k = 0; k < got; k++)
			fprintf(f, "%.1f\n", (double)lat[k] / 1e3);
		if (fclose(f))
			die(1, "%s: %s", raw, strerror(errno));
	}
	if (!got) {
		printf("lines=%lu lost=%zu (no grant at all)\n", lines, lost);
		free(lat);
		return 1;
	}
	qsort(lat, got, sizeof(*lat), cmp_u64);
	printf("lines=%lu lost=%zu min=%.3f p50=%.3f p90=%.3f p99=%.3f max=%.3f mean=%.3f (ms)\n",
	       lines, lost, ms(lat[0]), ms(pct(lat, got, 50)), ms(pct(lat, got, 90)),
	       ms(pct(lat, got, 99)), ms(lat[got - 1]), ms(sum / got));
	free(lat);
	return lost ? 1 : 0;
}
