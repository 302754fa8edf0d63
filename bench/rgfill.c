// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rgfill: the benchmark's entries (bench/entries.h) into a gate, or as text.
 *
 *   rgfill fill PIN_DIR N [GRANTS_MAX]
 *       Creates the pinned maps under PIN_DIR if they are absent (with
 *       rg_gate_create(), grants map sized GRANTS_MAX, default N + N/4 +
 *       4096 so the LRU never evicts), then loads N trusted IPv4 prefixes,
 *       N trusted IPv6 prefixes and N grants with batch updates, and
 *       rebuilds the summary as relaygated would (batch updates bypass the
 *       CLI's per-entry upkeep). The maps are then what `relaygatectl
 *       attach` adopts. Prints the entries the
 *       maps hold and the seconds taken.
 *   rgfill create PIN_DIR GRANTS_MAX
 *       Only creates the (empty) pinned maps, the grants map that big: the
 *       CLI cannot size it.
 *   rgfill grants PIN_DIR N
 *       Only the N grants, into existing maps.
 *   rgfill summary PIN_DIR on|off
 *       on: rebuilds the summary (prefilter slots and empty-map hints)
 *       under the pin-dir lock, as relaygated does; off: turns it off (the
 *       program then looks every source up: the "full" variants).
 *   rgfill print N trust4|trust6|grant4|grant6
 *       One entry a line: CIDRs for trust*, addresses for grant4/grant6
 *       (grant6 as the /64 key address), for nftables sets and for loading
 *       through the CLI.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "gatemaps.h"
#include "entries.h"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "rgfill: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t parse_n(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || !v || v > 16u * 1024 * 1024)
		die("%s: want a count from 1 to 16M", s);
	return (uint32_t)v;
}

/* Batch update (generic kernel batch: overwrites, BPF_ANY). */
static void batch(int fd, const char *name, const void *keys, size_t ksz, const void *vals,
		  size_t vsz, uint32_t n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	uint32_t done = 0, cnt;

	while (done < n) {
		cnt = n - done < 65536 ? n - done : 65536;
		if (bpf_map_update_batch(fd, (const char *)keys + (size_t)done * ksz,
					 (const char *)vals + (size_t)done * vsz, &cnt, &bo))
			die("%s: batch update: %s", name, strerror(errno));
		done += cnt;
	}
}

static int do_fill(const char *pin, uint32_t n, uint32_t gmax, bool grants_only)
{
	struct rg_load_opts o = { .grants_max = gmax, .v4_prefix = 32, .v6_prefix = 64 };
	struct entries e;
	struct rg_gate g;
	char err[256];
	uint32_t *ones, i;
	double t0, t1;

	if (gmax && rg_gate_create(pin, &o, err, sizeof(err)))
		die("%s", err);
	if (rg_gate_open(&g, pin))
		die("%s", g.err);
	if (ent_gen(&e, n))
		die("out of memory");
	ones = malloc((size_t)n * sizeof(*ones));
	if (!ones)
		die("out of memory");
	for (i = 0; i < n; i++)
		ones[i] = 1;
	t0 = now_s();
	if (!grants_only) {
		batch(g.trust4_fd, RG_MAP_TRUST4, e.t4, sizeof(*e.t4), ones, sizeof(*ones), n);
		batch(g.trust6_fd, RG_MAP_TRUST6, e.t6, sizeof(*e.t6), ones, sizeof(*ones), n);
	}
	batch(g.grants_fd, RG_MAP_GRANTS, e.gk, sizeof(*e.gk), e.gv, sizeof(*e.gv), n);
	t1 = now_s();
	if (rg_gate_lock(&g) || rg_summary_rebuild(&g))
		die("%s", g.err);
	printf("trust4=%ld trust6=%ld grants=%ld grants_max=%ld seconds=%.2f summary_rebuild_seconds=%.2f\n",
	       rg_map_count(g.trust4_fd), rg_map_count(g.trust6_fd), rg_map_count(g.grants_fd),
	       rg_map_max_entries(g.grants_fd), t1 - t0, now_s() - t1);
	free(ones);
	ent_free(&e);
	rg_gate_close(&g);
	return 0;
}

static int do_print(uint32_t n, const char *what)
{
	struct entries e;
	char a[INET6_ADDRSTRLEN];
	uint32_t i;

	if (ent_gen(&e, n))
		die("out of memory");
	for (i = 0; i < n; i++) {
		if (!strcmp(what, "trust4")) {
			inet_ntop(AF_INET, e.t4[i].addr, a, sizeof(a));
			printf("%s/%u\n", a, e.t4[i].prefixlen);
		} else if (!strcmp(what, "trust6")) {
			inet_ntop(AF_INET6, e.t6[i].addr, a, sizeof(a));
			printf("%s/%u\n", a, e.t6[i].prefixlen);
		} else if (!strcmp(what, "grant4") || !strcmp(what, "grant6")) {
			bool v4 = what[5] == '4';

			if (v4 != (e.gk[i].family == RG_AF_INET))
				continue;
			inet_ntop(v4 ? AF_INET : AF_INET6, e.gk[i].addr, a, sizeof(a));
			printf("%s\n", a);
		} else {
			die("print what? trust4, trust6, grant4 or grant6");
		}
	}
	ent_free(&e);
	return 0;
}

static int do_summary(const char *pin, bool on)
{
	struct rg_summary_info si;
	struct rg_gate g;

	if (rg_gate_open(&g, pin) || rg_gate_lock(&g))
		die("%s", g.err);
	if (on) {
		if (rg_summary_rebuild(&g))
			die("%s", g.err);
	} else {
		__atomic_store_n(&g.sum->hints, 0, __ATOMIC_SEQ_CST);
	}
	if (rg_summary_info(&g, &si))
		die("%s", g.err);
	printf("summary=%s v4_slots=%u v6_slots=%u v4_fine=%u v6_fine=%u\n", si.on ? "on" : "off",
	       si.v4_slots, si.v6_slots, si.v4_fine, si.v6_fine);
	rg_gate_close(&g);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && argc <= 5 && !strcmp(argv[1], "fill")) {
		uint32_t n = parse_n(argv[3]);

		return do_fill(argv[2], n, argc == 5 ? parse_n(argv[4]) : n + n / 4 + 4096, false);
	}
	if (argc == 4 && !strcmp(argv[1], "grants"))
		return do_fill(argv[2], parse_n(argv[3]), 0, true);
	if (argc == 4 && !strcmp(argv[1], "create")) {
		struct rg_load_opts o = { .grants_max = parse_n(argv[3]), .v4_prefix = 32,
					  .v6_prefix = 64 };
		char err[256];

		if (rg_gate_create(argv[2], &o, err, sizeof(err)))
			die("%s", err);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "summary") &&
	    (!strcmp(argv[3], "on") || !strcmp(argv[3], "off")))
		return do_summary(argv[2], !strcmp(argv[3], "on"));
	if (argc == 4 && !strcmp(argv[1], "print"))
		return do_print(parse_n(argv[2]), argv[3]);
	fprintf(stderr, "usage: rgfill fill PIN_DIR N [GRANTS_MAX]\n"
			"       rgfill create PIN_DIR GRANTS_MAX\n"
			"       rgfill grants PIN_DIR N\n"
			"       rgfill summary PIN_DIR on|off\n"
			"       rgfill print N trust4|trust6|grant4|grant6\n");
	return 2;
}
