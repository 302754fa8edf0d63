// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * progcost: what one packet costs each program, through BPF_PROG_TEST_RUN.
 *
 * For every map size N (-n 1000,100000,1000000) it loads a fresh copy of
 * the relaygate object (nothing pinned), fills it with N trusted IPv4
 * prefixes, N trusted IPv6 prefixes and N grants (half IPv4 /32 keys, half
 * IPv6 /64 keys; bench/entries.h), timing the loads, and then runs each
 * packet class through
 *   null     an XDP program that returns XDP_PASS (test_run's own cost)
 *   floor    bench/floor.bpf.c: parse to TCP, drop SYNs to 587
 *   xdpfilt  xdp-filter's packaged program (xdp-tools), port 587 denied
 *   rg_xdp   relaygate's XDP program, its summary on (the prefilter
 *            slots of every entry set, the empty-map hints of rg_tiface
 *            and rg_deny set), as relaygate's userspace keeps it
 *   rg_xdp_full  the same with the summary off: every lookup made
 *   rg_tc    relaygate's TC program, summary on
 * with repeat R (-r, default 1e6), in rounds (-k, default 3): each round
 * runs every (program, class) once, so a slow moment of the machine hits
 * all of them alike, starting one program later than the round before (no
 * program always follows the same one). The median of the rounds is
 * reported.
 *
 * Before timing, every relaygate class is run once and its verdict counter
 * checked (an unauthorised SYN must count drop_unauth, a trusted one
 * pass_trusted, ...): a benchmark of the wrong path fails loudly.
 *
 * Output (stdout), tab-separated, one header line each:
 *   cost  N prog class ns_median ns_min ns_max retval
 *   load  N map method entries seconds memlock_bytes
 *   dump  N map method entries seconds   (reading a map back whole)
 * Diagnostics go to stderr. Exit 1 on any failure.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "relaygate.h"
#include "gatemaps.h"
#include "relaygate.skel.h"
#include "pkt.h"
#include "entries.h"

#define MAX_SIZES 8
#define MAX_ROUNDS 15
#define IFINDEX_LO 1

/* xdp-filter's map flags (xdp-tools xdp-filter/common_kern_user.h): a
 * filter_ports entry with both bits drops TCP to that destination port. */
#define XF_FLAG_DST (1U << 1)
#define XF_FLAG_TCP (1U << 2)

static const char *const stat_names[RG_STAT_MAX] = RG_STAT_NAMES;

static struct {
	uint32_t sizes[MAX_SIZES];
	int nsizes;
	uint32_t repeat;
	int rounds;
	int cpu;
	const char *floor_obj;
	const char *xdpfilt_dir;
	const char *only_prog;   /* -P: time only this program */
	const char *only_class;  /* -C: and only this class */
	bool no_check;           /* -S: skip the verdict checks */
	bool run_stats;          /* -s: time by the kernel's run-time stats */
	uint32_t cfg_flags;      /* -F: rg_config.flags */
	bool verbose;
} opt = {
	.repeat = 1000000,
	.rounds = 3,
	.cpu = -1,
	.floor_obj = "floor.bpf.o",
	.xdpfilt_dir = "/usr/lib/x86_64-linux-gnu/bpf",
};

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "progcost: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG || (level == LIBBPF_INFO && !opt.verbose))
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t boot_ns(void)
{
	return ent_boot_ns();
}

/* xorshift64* for the flood frames. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
	return ent_rnd(&rng_state);
}

static void gen_entries(struct entries *e, uint32_t n)
{
	if (ent_gen(e, n))
		die("out of memory for %u entries", n);
}

static void free_entries(struct entries *e)
{
	ent_free(e);
}

static long memlock_of(int fd)
{
	char path[64], line[256];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "memlock: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * Load n keys/values into fd: by BPF_MAP_UPDATE_BATCH when try_batch and the
 * map type has it, else one BPF_MAP_UPDATE_ELEM each. Prints a load line.
 */
static void load_map(uint32_t N, const char *name, int fd, const void *keys, size_t ksz,
		     const void *vals, size_t vsz, uint32_t n, bool try_batch)
{
	const char *method = "update_elem";
	double t0 = now_s(), dt;
	uint32_t i, done = 0;

	if (try_batch) {
		/* elem_flags: the kernel's generic batch update takes BPF_F_LOCK
		 * only (no BPF_NOEXIST): existing keys are overwritten. */
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		uint32_t chunk = 65536;

		while (done < n) {
			uint32_t cnt = n - done < chunk ? n - done : chunk;

			const char *k = (const char *)keys + (size_t)done * ksz;
			const char *v = (const char *)vals + (size_t)done * vsz;

			if (bpf_map_update_batch(fd, k, v, &cnt, &bo)) {
				if (done == 0 && (errno == EINVAL || errno == ENOTSUP ||
						  errno == EOPNOTSUPP || errno == 524)) {
					fprintf(stderr, "progcost: %s: no batch update (%s): %s\n",
						name, strerror(errno), "one update each");
					break;
				}
				if (errno != EEXIST)
					die("%s: batch update: %s", name, strerror(errno));
			}
			done += cnt ? cnt : 1;   /* EEXIST: a duplicate key, skip it */
		}
		if (done >= n)
			method = "batch";
		else
			done = 0;
	}
	if (done < n) {
		for (i = done; i < n; i++) {
			const char *k = (const char *)keys + (size_t)i * ksz;
			const char *v = (const char *)vals + (size_t)i * vsz;

			if (bpf_map_update_elem(fd, k, v, BPF_NOEXIST) && errno != EEXIST)
				die("%s: update #%u: %s", name, i, strerror(errno));
		}
	}
	dt = now_s() - t0;
	printf("load\t%u\t%s\t%s\t%u\t%.3f\t%ld\n", N, name, method, n, dt, memlock_of(fd));
	fflush(stdout);
}

/*
 * Read a whole map back the two ways userspace can: one get_next_key and one
 * lookup per entry (what the CLI's listings do), and BPF_MAP_LOOKUP_BATCH.
 * Prints a "dump" line per method: N map method entries seconds.
 */
static void dump_map(uint32_t N, const char *name, int fd, size_t ksz, size_t vsz)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	size_t cap = (size_t)N + 1024;
	char *keys = malloc(cap * ksz), *vals = malloc(cap * vsz);
	uint32_t n = 0, cnt, out_batch = 0;
	void *prev = NULL;
	bool first = true;
	double t0;
	int err;

	if (!keys || !vals)
		die("out of memory");
	t0 = now_s();
	while (n < cap && !bpf_map_get_next_key(fd, prev, keys + (size_t)n * ksz)) {
		prev = keys + (size_t)n * ksz;
		if (bpf_map_lookup_elem(fd, prev, vals + (size_t)n * vsz) && errno != ENOENT)
			die("%s: lookup: %s", name, strerror(errno));
		n++;
	}
	printf("dump\t%u\t%s\tget_next_key+lookup\t%u\t%.3f\n", N, name, n, now_s() - t0);

	n = 0;
	t0 = now_s();
	for (;;) {
		cnt = (uint32_t)(cap - n < 65536 ? cap - n : 65536);
		if (!cnt)
			break;
		err = bpf_map_lookup_batch(fd, first ? NULL : &out_batch, &out_batch,
					   keys + (size_t)n * ksz, vals + (size_t)n * vsz, &cnt,
					   &bo);
		first = false;
		n += cnt;
		if (err) {
			if (errno == ENOENT)
				break;
			printf("dump\t%u\t%s\tlookup_batch\tunsupported (%s)\t-\n", N, name,
			       strerror(errno));
			goto out;
		}
	}
	printf("dump\t%u\t%s\tlookup_batch\t%u\t%.3f\n", N, name, n, now_s() - t0);
out:
	fflush(stdout);
	free(keys);
	free(vals);
}

static long count_keys(int fd, size_t ksz)
{
	uint8_t a[64], b[64];
	void *prev = NULL;
	long n = 0;

	if (ksz > sizeof(a))
		return -1;
	while (!bpf_map_get_next_key(fd, prev, prev == a ? b : a)) {
		prev = prev == a ? b : a;
		n++;
	}
	return n;
}

/* ---------------------------------------------------------------- classes */

/* syn4_near, syn6_near: an unauthorised SYN from the /16 (IPv6: /32) of
 * a granted address, from a /24 (/48) that holds no entry: a flood spoofed
 * from a block where your users are, which the summary's fine level keeps
 * on the straight-line path (build_near()). */
enum { C_SYN4_UNAUTH, C_SYN4_TRUSTED, C_SYN4_GRANTED, C_SYN6_UNAUTH, C_SYN6_TRUSTED,
       C_SYN6_GRANTED, C_ACK4_FLOW, C_SYN4_UNPROT, C_UDP4, C_VLAN_SYN4_UNAUTH, C_SYN4_NEAR,
       C_SYN6_NEAR, C_SYN4_FLOOD, C_SYN6_FLOOD, NCLASS };

static const char *const class_name[NCLASS] = {
	"syn4_unauth", "syn4_trusted", "syn4_granted", "syn6_unauth", "syn6_trusted",
	"syn6_granted", "ack4_flow", "syn4_unprot", "udp4", "vlan_syn4_unauth", "syn4_near",
	"syn6_near", "syn4_flood", "syn6_flood",
};

static const int class_stat[NCLASS] = {
	RG_STAT_DROP_UNAUTH, RG_STAT_PASS_TRUSTED, RG_STAT_PASS_GRANT, RG_STAT_DROP_UNAUTH,
	RG_STAT_PASS_TRUSTED, RG_STAT_PASS_GRANT, RG_STAT_PASS_FLOW, RG_STAT_PASS_UNPROTECTED,
	RG_STAT_PASS_UNPROTECTED, RG_STAT_DROP_UNAUTH, RG_STAT_DROP_UNAUTH, RG_STAT_DROP_UNAUTH,
	RG_STAT_DROP_UNAUTH, RG_STAT_DROP_UNAUTH,
};

/*
 * The flood classes are not one frame repeated (which keeps every map
 * bucket it touches in the cache) but NFLOOD SYNs from distinct spoofed
 * sources (198.18.0.0/15, 2001:db8:ffff::/48) and ports, each run once;
 * the cost is their mean. One run per call adds test_run's per-call timer
 * overhead (a clock read): compare with null's flood rows, not with the
 * one-frame rows.
 */
#define NFLOOD 16384

static bool is_flood(int c)
{
	return c == C_SYN4_FLOOD || c == C_SYN6_FLOOD;
}

struct frame {
	uint8_t b[256];
	size_t len;
};

static struct frame frames[NCLASS];
static struct frame flood[2][NFLOOD];

#define FLOW_SRC4 "198.18.77.7"
#define FLOW_SPORT 41000
#define DST4 "192.0.2.1"
#define DST6 "2001:db8::1"

/* Spoofed SYNs from distinct sources: the same for every N. */
static void build_flood(void)
{
	uint64_t saved = rng_state;
	struct frame *f;
	struct pkt p;
	int i, v6;

	rng_state = 0x5eed0f100dull;
	for (v6 = 0; v6 < 2; v6++)
		for (i = 0; i < NFLOOD; i++) {
			uint64_t r = rnd();

			pkt_init(&p, v6 ? PKT_L3_IPV6 : PKT_L3_IPV4);
			pkt_addr4(p.dst4, DST4);
			pkt_addr6(p.dst6, DST6);
			pkt_addr4(p.src4, "198.18.0.0");
			p.src4[1] |= (uint8_t)(r & 1);
			p.src4[2] = (uint8_t)(r >> 8);
			p.src4[3] = (uint8_t)(r >> 16);
			pkt_addr6(p.src6, "2001:db8:ffff::");
			memcpy(p.src6 + 6, &r, 8);
			p.src6[15] = (uint8_t)(r >> 40);
			p.sport = (uint16_t)(1024 + (r >> 48) % 64000);
			p.seq = (uint32_t)(r >> 24);
			f = &flood[v6][i];
			f->len = pkt_build(&p, f->b, sizeof(f->b), NULL);
			if (!f->len)
				die("cannot build a flood frame");
		}
	memcpy(&frames[C_SYN4_FLOOD], &flood[0][0], sizeof(frames[0]));
	memcpy(&frames[C_SYN6_FLOOD], &flood[1][0], sizeof(frames[0]));
	rng_state = saved;
}

/* A SYN like Linux sends (MSS, SACK-permitted, timestamps, window scale:
 * 20 option bytes) from an unauthorised source. */
static void syn_init(struct pkt *p, bool v6)
{
	static const uint8_t o[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1,
				       0, 0, 0, 0, 1, 3, 3, 7 };

	pkt_init(p, v6 ? PKT_L3_IPV6 : PKT_L3_IPV4);
	memcpy(p->tcpopt, o, sizeof(o));
	p->tcpoptlen = sizeof(o);
	pkt_addr4(p->dst4, DST4);
	pkt_addr6(p->dst6, DST6);
	pkt_addr4(p->src4, "198.18.3.4");
	pkt_addr6(p->src6, "2001:db8:ffff::1234");
}

/* The granted addresses the classes use: from the middle of the set. */
static const struct rg_addr *grant4(const struct entries *e) { return &e->gk[(e->n / 2) & ~1u]; }
static const struct rg_addr *grant6(const struct entries *e) { return &e->gk[(e->n / 2) | 1u]; }

/* Frames for a given set of entries: trusted and granted sources are taken
 * from the middle of the loaded sets. */
static void build_frames(const struct entries *e)
{
	const struct rg_lpm4 *t4 = &e->t4[e->n / 2];
	const struct rg_lpm6 *t6 = &e->t6[e->n / 2];
	const struct rg_addr *g4 = grant4(e);
	const struct rg_addr *g6 = grant6(e);
	struct pkt p;
	int c;

	for (c = 0; c < NCLASS; c++) {
		if (is_flood(c))
			continue;
		bool v6 = c == C_SYN6_UNAUTH || c == C_SYN6_TRUSTED || c == C_SYN6_GRANTED ||
			  c == C_SYN6_NEAR;

		syn_init(&p, v6);
		switch (c) {
		case C_SYN4_TRUSTED:
			memcpy(p.src4, t4->addr, 4);
			if (t4->prefixlen < 32)
				p.src4[3] |= 1;
			break;
		case C_SYN4_GRANTED:
			memcpy(p.src4, g4->addr, 4);
			break;
		case C_SYN6_TRUSTED:
			memcpy(p.src6, t6->addr, 16);
			if (t6->prefixlen < 128)
				p.src6[15] |= 1;
			break;
		case C_SYN6_GRANTED:
			memcpy(p.src6, g6->addr, 16);
			p.src6[15] = 0x42;       /* any host of the granted /64 */
			break;
		case C_ACK4_FLOW:
			pkt_addr4(p.src4, FLOW_SRC4);
			p.sport = FLOW_SPORT;
			p.tcp_flags = PKT_TCP_ACK;
			p.ack = 0x01020304;
			p.tcpoptlen = 12;        /* NOP NOP timestamps */
			{
				static const uint8_t o[12] = { 1, 1, 8, 10, 0, 0, 0, 2,
							       0, 0, 0, 1 };

				memcpy(p.tcpopt, o, sizeof(o));
			}
			break;
		case C_SYN4_UNPROT:
			p.dport = 80;
			break;
		case C_UDP4:
			p.l4 = PKT_L4_UDP;
			p.dport = 53;
			p.tcpoptlen = 0;
			{
				static const uint8_t q[32] = { 0x12, 0x34, 1, 0, 0, 1 };

				p.payload = q;
				p.paylen = sizeof(q);
				frames[c].len = pkt_build(&p, frames[c].b, sizeof(frames[c].b),
							  NULL);
			}
			continue;
		case C_VLAN_SYN4_UNAUTH:
			pkt_vlan(&p, PKT_ETH_8021Q, 100);
			break;
		default:
			break;
		}
		frames[c].len = pkt_build(&p, frames[c].b, sizeof(frames[c].b), NULL);
		if (!frames[c].len)
			die("cannot build frame %s", class_name[c]);
	}
	build_flood();
}

/* ---------------------------------------------------------------- running */

enum kind { K_XDP, K_TC };

struct prog {
	const char *name;
	int fd;
	enum kind kind;
	bool per_n;      /* depends on the relaygate maps */
	uint32_t flags;  /* per_n: rg_config.flags while this one runs */
	bool summary;    /* per_n: the summary on while this one runs */
};

static int config_fd = -1;   /* the current relaygate instance's rg_config */
static struct rg_summary *sum_map;   /* its rg_summary, mmapped */
static size_t sum_len;

/* Before a relaygate program runs: its rg_config.flags. */
static void set_flags(const struct prog *p)
{
	struct rg_config c;
	uint32_t zero = 0;

	if (!p->per_n || config_fd < 0)
		return;
	if (bpf_map_lookup_elem(config_fd, &zero, &c))
		die("rg_config: %s", strerror(errno));
	c.flags = p->flags;
	if (bpf_map_update_elem(config_fd, &zero, &c, BPF_ANY))
		die("rg_config: %s", strerror(errno));
	/* as relaygate's userspace keeps it (rg_sum_fast_ok: the config is
	 * written with the ABI version and /32, /64) */
	if (sum_map)
		sum_map->hints = !p->summary ? 0 :
			RG_SUM_ON | RG_SUM_NO_TIFACE | RG_SUM_NO_DENY |
			(rg_sum_fast_ok(&c) ? RG_SUM_FAST : 0);
}

/* The summary of the entries, as relaygate's userspace marks it. */
static void summary_fill(const struct entries *e, uint32_t N)
{
	struct rg_addr a;
	uint32_t i;

	for (i = 0; i < N; i++) {
		memset(&a, 0, sizeof(a));
		a.family = RG_AF_INET;
		memcpy(a.addr, e->t4[i].addr, 4);
		rg_summary_cover(sum_map, &a, e->t4[i].prefixlen);
		memset(&a, 0, sizeof(a));
		a.family = RG_AF_INET6;
		memcpy(a.addr, e->t6[i].addr, 16);
		rg_summary_cover(sum_map, &a, e->t6[i].prefixlen);
		rg_summary_cover(sum_map, &e->gk[i], e->gk[i].family == RG_AF_INET ? 32 : 64);
	}
	/* the ack4_flow class's source has no entry: its slot stays clear */
}

/* The near classes' sources (see the class list), once the summary holds
 * the entries: the granted address with another /24 (IPv6: another /48)
 * whose fine bit is clear, so that no entry can match it either. */
static void build_near(const struct entries *e)
{
	struct rg_addr a;
	struct pkt p;
	uint32_t top, b, x, next;
	int v6;

	for (v6 = 0; v6 < 2; v6++) {
		a = *(v6 ? grant6(e) : grant4(e));
		top = (uint32_t)a.addr[0] << 24 | (uint32_t)a.addr[1] << 16 |
		      (uint32_t)a.addr[2] << 8 | a.addr[3];
		next = (uint32_t)a.addr[4] << 8 | a.addr[5];
		for (x = 1; x < (v6 ? 65536u : 256u); x++) {
			if (v6) {
				b = rg_sum_fine6(top, next ^ x);
				if (!(sum_map->v6f[b / 8] >> (b % 8) & 1))
					break;
			} else {
				b = rg_sum_fine4(top ^ x << 8);
				if (!(sum_map->v4f[b / 8] >> (b % 8) & 1))
					break;
			}
		}
		if (x == (v6 ? 65536u : 256u))
			die("%s: every /%d next to the grant holds an entry", class_name[C_SYN4_NEAR + v6],
			    v6 ? 48 : 24);
		syn_init(&p, v6);
		if (v6) {
			memcpy(p.src6, a.addr, 16);
			p.src6[4] = (uint8_t)((next ^ x) >> 8);
			p.src6[5] = (uint8_t)(next ^ x);
			p.src6[15] = 0x42;
		} else {
			memcpy(p.src4, a.addr, 4);
			p.src4[2] ^= (uint8_t)x;
		}
		frames[C_SYN4_NEAR + v6].len = pkt_build(&p, frames[C_SYN4_NEAR + v6].b,
							  sizeof(frames[0].b), NULL);
		if (!frames[C_SYN4_NEAR + v6].len)
			die("cannot build frame %s", class_name[C_SYN4_NEAR + v6]);
	}
}

/* A rebuild's start: no slot set (the previous N's entries are gone). */
static void summary_clear(void)
{
	memset(sum_map->v4, 0, sizeof(sum_map->v4));
	memset(sum_map->v6, 0, sizeof(sum_map->v6));
	memset(sum_map->v4f, 0, sizeof(sum_map->v4f));
	memset(sum_map->v6f, 0, sizeof(sum_map->v6f));
}

static int run_once(const struct prog *p, const struct frame *f, uint32_t repeat,
		    uint32_t *retval, uint32_t *ns)
{
	uint8_t out[512];
	struct xdp_md xctx = {
		.data_end = (uint32_t)f->len,
		.ingress_ifindex = IFINDEX_LO,
	};
	struct __sk_buff sctx = {
		.ifindex = IFINDEX_LO,
		.ingress_ifindex = IFINDEX_LO,
	};
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = f->b,
		.data_size_in = (uint32_t)f->len,
		.data_out = out,
		.data_size_out = sizeof(out),
		.repeat = repeat,
	);

	if (p->kind == K_XDP) {
		o.ctx_in = &xctx;
		o.ctx_size_in = sizeof(xctx);
	} else {
		o.ctx_in = &sctx;
		o.ctx_size_in = sizeof(sctx);
	}
	struct bpf_prog_info i0 = { 0 }, i1 = { 0 };
	uint32_t il = sizeof(i0);

	if (opt.run_stats && bpf_obj_get_info_by_fd(p->fd, &i0, &il))
		return -errno;
	if (bpf_prog_test_run_opts(p->fd, &o))
		return -errno;
	*retval = o.retval;
	*ns = o.duration;
	if (opt.run_stats) {
		uint64_t dt, dn;

		il = sizeof(i1);
		if (bpf_obj_get_info_by_fd(p->fd, &i1, &il))
			return -errno;
		dt = i1.run_time_ns - i0.run_time_ns;
		dn = i1.run_cnt - i0.run_cnt;
		if (!dn)
			return -ENODATA;        /* the stats did not count: not on */
		/* hundredths of a ns: the program alone, with the stats'
		 * own two clock reads, not test_run's loop */
		*ns = (uint32_t)((dt * 100 + dn / 2) / dn);
	}
	return 0;
}

static void stats_sum(int fd, int ncpu, uint64_t out[RG_STAT_MAX])
{
	struct rg_counter *v = calloc((size_t)ncpu, sizeof(*v));
	uint32_t k;
	int c;

	if (!v)
		die("out of memory");
	for (k = 0; k < RG_STAT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(fd, &k, v))
			die("reading rg_stats: %s", strerror(errno));
		for (c = 0; c < ncpu; c++)
			out[k] += v[c].packets;
	}
	free(v);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Each flood frame once; the mean cost. */
static int run_flood(const struct prog *p, const struct frame *f, uint32_t *retval, uint32_t *ns)
{
	uint64_t sum = 0;
	uint32_t one;
	int i, err;

	for (i = 0; i < NFLOOD; i++) {
		err = run_once(p, &f[i], 1, retval, &one);
		if (err)
			return err;
		sum += one;
	}
	*ns = (uint32_t)((sum + NFLOOD / 2) / NFLOOD);
	return 0;
}

static bool skip(const struct prog *p, int c)
{
	return (opt.only_prog && strcmp(opt.only_prog, p->name)) ||
	       (opt.only_class && strcmp(opt.only_class, class_name[c]));
}

/* Time every (program, class) in rounds; print the medians. */
static void measure(uint32_t N, const struct prog *progs, int nprogs)
{
	static uint32_t ns[8][NCLASS][MAX_ROUNDS];
	static uint32_t rv[8][NCLASS];

	if (nprogs > 8)
		die("too many programs");
	int p, c, k;

	for (k = 0; k < opt.rounds; k++)
		for (int j = 0; j < nprogs; j++) {
			/* each round starts one program later: no program always
			 * runs right after the same other one */
			p = (j + k) % nprogs;
			set_flags(&progs[p]);
			for (c = 0; c < NCLASS; c++) {
				int err;

				if (skip(&progs[p], c))
					continue;
				if (is_flood(c))
					err = run_flood(&progs[p], flood[c == C_SYN6_FLOOD],
							&rv[p][c], &ns[p][c][k]);
				else
					err = run_once(&progs[p], &frames[c], opt.repeat,
						       &rv[p][c], &ns[p][c][k]);

				if (err)
					die("test_run %s %s: %s", progs[p].name, class_name[c],
					    strerror(-err));
			}
		}
	for (p = 0; p < nprogs; p++)
		for (c = 0; c < NCLASS; c++) {
			uint32_t *v = ns[p][c];

			if (skip(&progs[p], c))
				continue;
			qsort(v, (size_t)opt.rounds, sizeof(*v), cmp_u32);
			printf("cost\t%u\t%s\t%s\t%u\t%u\t%u\t%u\n", N, progs[p].name,
			       class_name[c], v[opt.rounds / 2], v[0], v[opt.rounds - 1], rv[p][c]);
		}
	fflush(stdout);
}

/* ---------------------------------------------------------------- loading */

static int load_xdp_obj(const char *path, const char *prog, struct bpf_object **objp)
{
	struct bpf_object *obj;
	struct bpf_program *pr;
	struct bpf_map *m;

	obj = bpf_object__open_file(path, NULL);
	if (!obj)
		die("open %s: %s", path, strerror(errno));
	bpf_object__for_each_map(m, obj)
		bpf_map__set_pin_path(m, NULL);
	if (bpf_object__load(obj))
		die("load %s: %s", path, strerror(errno));
	pr = prog ? bpf_object__find_program_by_name(obj, prog)
		  : bpf_object__next_program(obj, NULL);
	if (!pr)
		die("%s: no program %s", path, prog ? prog : "");
	*objp = obj;
	return bpf_program__fd(pr);
}

/*
 * xdp-filter as `xdp-filter load --policy allow --features tcp` and
 * `xdp-filter port 587 --mode dst --proto tcp` set it up: the "tcp" object
 * of the allow policy (xdpfilt_alw_tcp.o), filter_ports[587] = dst|tcp.
 * filter_ports is a per-CPU array: every CPU's copy is set. Checked: a SYN
 * to 587 must come back XDP_DROP and one to 80 XDP_PASS.
 */
static int load_xdpfilt(struct bpf_object **objp, int ncpu)
{
	char path[512];
	struct bpf_map *m;
	uint64_t *vals;
	uint32_t port = htons(587), rv, ns;
	struct prog p = { "xdpfilt", -1, K_XDP, false, 0, false };
	int fd, c;

	snprintf(path, sizeof(path), "%s/xdpfilt_alw_tcp.o", opt.xdpfilt_dir);
	fd = load_xdp_obj(path, NULL, objp);
	m = bpf_object__find_map_by_name(*objp, "filter_ports");
	if (!m)
		die("%s: no filter_ports map", path);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		die("out of memory");
	for (c = 0; c < ncpu; c++)
		vals[c] = XF_FLAG_DST | XF_FLAG_TCP;
	if (bpf_map_update_elem(bpf_map__fd(m), &port, vals, BPF_ANY))
		die("xdpfilt: filter_ports: %s", strerror(errno));
	free(vals);
	p.fd = fd;
	if (run_once(&p, &frames[C_SYN4_UNAUTH], 1, &rv, &ns) || rv != XDP_DROP)
		die("xdpfilt: a SYN to 587 gave %u, not XDP_DROP", rv);
	if (run_once(&p, &frames[C_SYN4_UNPROT], 1, &rv, &ns) || rv != XDP_PASS)
		die("xdpfilt: a SYN to 80 gave %u, not XDP_PASS", rv);
	return fd;
}

static void put_u32(int fd, uint32_t k, uint32_t v, const char *what)
{
	if (bpf_map_update_elem(fd, &k, &v, BPF_ANY))
		die("%s: %s", what, strerror(errno));
}

/* One relaygate instance with N entries; measured, then destroyed. */
static void bench_size(uint32_t N, struct prog *progs, int nprogs, int ncpu)
{
	struct relaygate *skel;
	struct bpf_map *m;
	struct entries e;
	struct rg_config cfg = {
		.abi_version = RG_ABI_VERSION,
		.flags = opt.cfg_flags,
		.v4_prefix = 32,
		.v6_prefix = 64,
		.event_interval = 1000000000ull,
		.event_burst = 64,
	};
	struct rg_flow_key fk = { 0 };
	struct rg_flow fv = { 0 };
	uint32_t *ones, i, zero = 0, rv, ns;
	uint64_t before[RG_STAT_MAX], after[RG_STAT_MAX];
	int c, p;

	gen_entries(&e, N);
	build_frames(&e);

	skel = relaygate__open();
	if (!skel)
		die("relaygate__open: %s", strerror(errno));
	bpf_object__for_each_map(m, skel->obj)
		bpf_map__set_pin_path(m, NULL);
	if (N > bpf_map__max_entries(skel->maps.rg_trust4)) {
		bpf_map__set_max_entries(skel->maps.rg_trust4, N);
		bpf_map__set_max_entries(skel->maps.rg_trust6, N);
	}
	/* LRU maps evict before they are full (per-CPU free lists): room. */
	bpf_map__set_max_entries(skel->maps.rg_grants, N + N / 4 + 4096);
	if (relaygate__load(skel))
		die("relaygate__load: %s", strerror(errno));

	if (bpf_map_update_elem(bpf_map__fd(skel->maps.rg_config), &zero, &cfg, BPF_ANY))
		die("rg_config: %s", strerror(errno));
	config_fd = bpf_map__fd(skel->maps.rg_config);
	sum_len = (sizeof(struct rg_summary) + 4095) & ~(size_t)4095;
	sum_map = mmap(NULL, sum_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(skel->maps.bss), 0);
	if (sum_map == MAP_FAILED)
		die("rg_summary: mmap: %s", strerror(errno));
	/* each port's summary byte, then the port (relaygate.h) */
	sum_map->ports[htons(465)] = 1;
	sum_map->ports[htons(587)] = 1;
	put_u32(bpf_map__fd(skel->maps.rg_ports), 465, 1, "rg_ports");
	put_u32(bpf_map__fd(skel->maps.rg_ports), 587, 1, "rg_ports");

	ones = malloc((size_t)N * sizeof(*ones));
	if (!ones)
		die("out of memory");
	for (i = 0; i < N; i++)
		ones[i] = 1;
	load_map(N, "rg_trust4", bpf_map__fd(skel->maps.rg_trust4), e.t4, sizeof(*e.t4), ones,
		 sizeof(*ones), N, true);
	load_map(N, "rg_trust6", bpf_map__fd(skel->maps.rg_trust6), e.t6, sizeof(*e.t6), ones,
		 sizeof(*ones), N, false);
	/* Grants twice: once one by one (what the CLI and daemon do), then
	 * cleared and loaded again in batches, to compare. */
	load_map(N, "rg_grants", bpf_map__fd(skel->maps.rg_grants), e.gk, sizeof(*e.gk), e.gv,
		 sizeof(*e.gv), N, false);
	{
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		uint32_t cnt, done = 0;

		while (done < N) {
			cnt = N - done < 65536 ? N - done : 65536;
			char *k = (char *)e.gk + (size_t)done * sizeof(*e.gk);

			if (bpf_map_delete_batch(bpf_map__fd(skel->maps.rg_grants), k, &cnt, &bo) &&
			    errno != ENOENT)
				die("rg_grants: batch delete: %s", strerror(errno));
			done += cnt ? cnt : 1;
		}
	}
	load_map(N, "rg_grants", bpf_map__fd(skel->maps.rg_grants), e.gk, sizeof(*e.gk), e.gv,
		 sizeof(*e.gv), N, true);
	free(ones);
	summary_clear();
	summary_fill(&e, N);
	build_near(&e);
	{
		long n4 = count_keys(bpf_map__fd(skel->maps.rg_trust4), sizeof(struct rg_lpm4));
		long ng = count_keys(bpf_map__fd(skel->maps.rg_grants), sizeof(struct rg_addr));

		fprintf(stderr, "progcost: N=%u: trust4 holds %ld, grants %ld\n", N, n4, ng);
		if (ng < (long)N * 99 / 100)
			die("grants map kept only %ld of %u entries", ng, N);
	}

	dump_map(N, "rg_trust4", bpf_map__fd(skel->maps.rg_trust4), sizeof(struct rg_lpm4),
		 sizeof(uint32_t));
	dump_map(N, "rg_grants", bpf_map__fd(skel->maps.rg_grants), sizeof(struct rg_addr),
		 sizeof(struct rg_grant));

	/* The admitted flow of the ack4_flow class (source not trusted, not
	 * granted: the longest pass path). */
	pkt_addr4(fk.saddr, FLOW_SRC4);
	pkt_addr4(fk.daddr, DST4);
	fk.sport = FLOW_SPORT;
	fk.dport = 587;
	fk.family = RG_AF_INET;
	fv.admitted = boot_ns();
	fv.reason = RG_STAT_PASS_GRANT;
	fv.ifindex = IFINDEX_LO;
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.rg_flows), &fk, &fv, BPF_ANY))
		die("rg_flows: %s", strerror(errno));

	for (p = 0; p < nprogs; p++) {
		if (!progs[p].per_n)
			continue;
		progs[p].fd = bpf_program__fd(progs[p].kind == K_XDP ? skel->progs.rg_xdp
								      : skel->progs.rg_tc);
		/* Each class once: it must take the path it is named for. */
		set_flags(&progs[p]);
		for (c = 0; c < NCLASS && !opt.no_check; c++) {
			stats_sum(bpf_map__fd(skel->maps.rg_stats), ncpu, before);
			if (run_once(&progs[p], &frames[c], 1, &rv, &ns))
				die("test_run %s: %s", progs[p].name, strerror(errno));
			stats_sum(bpf_map__fd(skel->maps.rg_stats), ncpu, after);
			if (after[class_stat[c]] != before[class_stat[c]] + 1)
				die("%s %s (N=%u): expected %s, retval %u", progs[p].name,
				    class_name[c], N, stat_names[class_stat[c]], rv);
		}
	}
	measure(N, progs, nprogs);
	munmap(sum_map, sum_len);
	sum_map = NULL;
	config_fd = -1;
	relaygate__destroy(skel);
	free_entries(&e);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: progcost [-n N[,N...]] [-r REPEAT] [-k ROUNDS] [-c CPU]\n"
		"                [-f FLOOR_OBJ] [-x XDPFILT_DIR] [-P PROG] [-C CLASS] [-S] [-s]\n"
		"                [-F FLAGS] [-v]\n"
		"  -P, -C: time only this program / class (for profiling)\n"
		"  -S: skip the verdict checks (experiments with modified objects)\n"
		"  -s: ns from the kernel's run-time stats (BPF_ENABLE_STATS), in\n"
		"      hundredths: the program alone, plus two clock reads\n"
		"  -F: rg_config.flags for the gate (default 0)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct bpf_object *floor_obj = NULL, *xf_obj = NULL;
	struct prog progs[6];
	struct entries e0;
	int ch, i, fd, ncpu, nprogs = 0;
	char *s, *tok, *save = NULL;

	while ((ch = getopt(argc, argv, "n:r:k:c:f:x:P:C:SsF:v")) != -1) {
		switch (ch) {
		case 'n':
			s = strdup(optarg);
			for (tok = strtok_r(s, ",", &save); tok && opt.nsizes < MAX_SIZES;
			     tok = strtok_r(NULL, ",", &save))
				opt.sizes[opt.nsizes++] = (uint32_t)strtoul(tok, NULL, 0);
			free(s);
			break;
		case 'r': opt.repeat = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'k': opt.rounds = atoi(optarg); break;
		case 'c': opt.cpu = atoi(optarg); break;
		case 'f': opt.floor_obj = optarg; break;
		case 'x': opt.xdpfilt_dir = optarg; break;
		case 'P': opt.only_prog = optarg; break;
		case 'C': opt.only_class = optarg; break;
		case 'S': opt.no_check = true; break;
		case 's': opt.run_stats = true; break;
		case 'F': opt.cfg_flags = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'v': opt.verbose = true; break;
		default: usage();
		}
	}
	if (!opt.nsizes) {
		opt.sizes[0] = 1000;
		opt.nsizes = 1;
	}
	if (opt.rounds < 1 || opt.rounds > MAX_ROUNDS || !opt.repeat)
		usage();
	for (i = 0; i < opt.nsizes; i++)
		if (opt.sizes[i] < 2)
			die("map size %u: at least 2", opt.sizes[i]);
	if (opt.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(opt.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("pin to CPU %d: %s", opt.cpu, strerror(errno));
	}
	/* held open until exit: the kernel keeps the stats while it is */
	if (opt.run_stats && bpf_enable_stats(BPF_STATS_RUN_TIME) < 0)
		die("BPF_ENABLE_STATS: %s", strerror(errno));
	libbpf_set_print(libbpf_quiet);
	ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		die("cannot count CPUs");

	/* Frames for the fixed programs' checks (entries do not matter). */
	gen_entries(&e0, 2);
	build_frames(&e0);
	free_entries(&e0);

	fd = load_xdp_obj(opt.floor_obj, "floor_pass", &floor_obj);
	progs[nprogs++] = (struct prog){ "null", fd, K_XDP, false, 0, false };
	fd = bpf_program__fd(bpf_object__find_program_by_name(floor_obj, "floor_xdp"));
	progs[nprogs++] = (struct prog){ "floor", fd, K_XDP, false, 0, false };
	progs[nprogs++] = (struct prog){ "xdpfilt", load_xdpfilt(&xf_obj, ncpu), K_XDP, false, 0, false };
	progs[nprogs++] = (struct prog){ "rg_xdp", -1, K_XDP, true, opt.cfg_flags, true };
	progs[nprogs++] = (struct prog){ "rg_xdp_full", -1, K_XDP, true, opt.cfg_flags, false };
	progs[nprogs++] = (struct prog){ "rg_tc", -1, K_TC, true, opt.cfg_flags, true };

	printf("# cost\tN\tprog\tclass\tns_median\tns_min\tns_max\tretval\n");
	printf("# load\tN\tmap\tmethod\tentries\tseconds\tmemlock_bytes\n");
	printf("# dump\tN\tmap\tmethod\tentries\tseconds\n");
	for (i = 0; i < opt.nsizes; i++)
		bench_size(opt.sizes[i], progs, nprogs, ncpu);
	bpf_object__close(xf_obj);
	bpf_object__close(floor_obj);
	return 0;
}
