/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * harness.h: load the real relaygate object (the skeleton) without pinning
 * anything, set its maps directly, run frames through rg_xdp and rg_tc with
 * BPF_PROG_TEST_RUN, and read the per-CPU verdict counters summed.
 *
 * Both programs run with ifindex 1 (lo) unless told otherwise: test_run
 * wants a real device for a given ifindex, and lo is the one every network
 * namespace has. XDP gets it through struct xdp_md (ingress_ifindex,
 * rx_queue_index 0), TC through struct __sk_buff (ifindex and
 * ingress_ifindex), so a trusted-interface entry for 1 matches either way.
 *
 * Every helper returns 0 or -errno and prints a "# ..." line on failure.
 */
#ifndef RG_TEST_HARNESS_H
#define RG_TEST_HARNESS_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>

#include "relaygate.h"
#include "relaygate.skel.h"
#include "pkt.h"

#define H_IFINDEX_LO 1

enum h_prog { H_XDP, H_TC, H_NPROG };
enum h_verdict { HV_PASS, HV_DROP, HV_TX, HV_OTHER };

static const char *const h_prog_name[H_NPROG] = { "xdp", "tc" };
static const char *const h_verdict_name[] = { "pass", "drop", "rst", "other" };
static const char *const h_stat_name[RG_STAT_MAX] = RG_STAT_NAMES;

struct harness {
	struct relaygate *skel;
	int prog_fd[H_NPROG];
	int config_fd, ports_fd, tiface_fd, trust4_fd, trust6_fd;
	int grants_fd, deny_fd, flows_fd, stats_fd, evrate_fd;
	int ncpus;
	uint8_t ports_on[65536 / 8];  /* ports this harness set to 1 */
	/* rg_summary, mmapped. With summary set, h_reset turns the prefilter
	 * and both empty-map hints on, and every insert below keeps them
	 * true as relaygate's userspace must; clear, it stays all zero. */
	struct rg_summary *sum;
	size_t sum_len;
	bool summary;
	/* rg_config's grant prefixes, as last written: grants and denies
	 * cover what a key of that prefix can match (no less than a slot:
	 * a shorter one the program does not trust the summary with) */
	uint32_t p4, p6;
};

struct h_result {
	int err;                      /* bpf_prog_test_run_opts(): 0 or -errno */
	uint32_t retval;
	enum h_verdict verdict;
	uint32_t out_len;
	uint8_t out[PKT_MAX + 512];
};

static inline uint64_t h_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* libbpf's messages become TAP diagnostics. A verifier log can run to
 * thousands of lines: only its last 40 are shown (the error is there). */
static int h_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char *msg = NULL, *line, *save = NULL;
	int n, lines = 0, skip;

	if (level == LIBBPF_DEBUG)
		return 0;
	n = vasprintf(&msg, fmt, ap);
	if (n < 0)
		return 0;
	for (line = msg; *line; line++)
		lines += *line == '\n';
	skip = lines > 40 ? lines - 40 : 0;
	if (skip)
		printf("# libbpf: (%d lines cut)\n", skip);
	for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (skip-- <= 0)
			printf("# %s\n", line);
	free(msg);
	return n;
}

static inline int h_map_fd(struct harness *h, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(h->skel->obj, name);

	if (!m) {
		printf("# harness: map %s missing from the object\n", name);
		return -ENOENT;
	}
	return bpf_map__fd(m);
}

static inline int h_prog_fd(struct harness *h, const char *name)
{
	struct bpf_program *p = bpf_object__find_program_by_name(h->skel->obj, name);

	if (!p) {
		printf("# harness: program %s missing from the object\n", name);
		return -ENOENT;
	}
	return bpf_program__fd(p);
}

/* Open the skeleton, unpin every map (nothing touches /sys/fs/bpf), load. */
static inline int h_open(struct harness *h)
{
	struct bpf_map *m;
	int err;

	memset(h, 0, sizeof(*h));
	libbpf_set_print(h_libbpf_print);
	h->ncpus = libbpf_num_possible_cpus();
	if (h->ncpus <= 0) {
		printf("# harness: cannot count CPUs: %d\n", h->ncpus);
		return -EINVAL;
	}
	h->skel = relaygate__open();
	if (!h->skel) {
		err = -errno;
		printf("# harness: relaygate__open: %s\n", strerror(-err));
		return err;
	}
	bpf_object__for_each_map(m, h->skel->obj) {
		err = bpf_map__set_pin_path(m, NULL);
		if (err) {
			printf("# harness: unpin %s: %s\n", bpf_map__name(m), strerror(-err));
			return err;
		}
	}
	err = relaygate__load(h->skel);
	if (err) {
		printf("# harness: relaygate__load: %s\n", strerror(-err));
		return err;
	}
	h->prog_fd[H_XDP] = h_prog_fd(h, RG_PROG_XDP);
	h->prog_fd[H_TC] = h_prog_fd(h, RG_PROG_TC);
	h->config_fd = h_map_fd(h, RG_MAP_CONFIG);
	h->ports_fd = h_map_fd(h, RG_MAP_PORTS);
	h->tiface_fd = h_map_fd(h, RG_MAP_TIFACE);
	h->trust4_fd = h_map_fd(h, RG_MAP_TRUST4);
	h->trust6_fd = h_map_fd(h, RG_MAP_TRUST6);
	h->grants_fd = h_map_fd(h, RG_MAP_GRANTS);
	h->deny_fd = h_map_fd(h, RG_MAP_DENY);
	h->flows_fd = h_map_fd(h, RG_MAP_FLOWS);
	h->stats_fd = h_map_fd(h, RG_MAP_STATS);
	h->evrate_fd = h_map_fd(h, RG_MAP_EVRATE);
	if (h->prog_fd[H_XDP] < 0 || h->prog_fd[H_TC] < 0 || h->config_fd < 0 ||
	    h->ports_fd < 0 || h->tiface_fd < 0 || h->trust4_fd < 0 ||
	    h->trust6_fd < 0 || h->grants_fd < 0 || h->deny_fd < 0 ||
	    h->flows_fd < 0 || h->stats_fd < 0)
		return -ENOENT;
	h->sum_len = (sizeof(struct rg_summary) + 4095) & ~(size_t)4095;
	h->sum = mmap(NULL, h->sum_len, PROT_READ | PROT_WRITE, MAP_SHARED,
		      bpf_map__fd(h->skel->maps.bss), 0);
	if (h->sum == MAP_FAILED) {
		h->sum = NULL;
		printf("# harness: mmap %s: %s\n", RG_MAP_SUMMARY, strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * The summary slots and fine bits an entry covers, computed the plain way
 * (a reference for user/gatemaps.c, not a copy). IPv4: an entry of /16 or
 * longer sets the bit of every /24 that overlaps it, and FINE on its /16
 * slot; a shorter one sets COARSE on every /16 slot that overlaps it.
 * IPv6: /40 or longer sets the bit of every /48 that overlaps it and FINE
 * on its slot; /32 to /39 sets COARSE on its slot; a shorter one COARSE on
 * every slot.
 */
static inline void h_cover(struct harness *h, int family, const uint8_t *addr, unsigned plen)
{
	uint32_t top = (uint32_t)addr[0] << 24 | (uint32_t)addr[1] << 16 |
		       (uint32_t)addr[2] << 8 | addr[3];
	uint32_t s, b;

	if (!h->summary || !h->sum)
		return;
	if (family == RG_AF_INET) {
		if (plen >= 16) {
			for (s = 0; s < 256; s++) {
				b = (top >> 16) << 8 | s;       /* a /24 of top's /16 */
				if (plen <= 24 ? s >> (24 - plen) == (top >> 8 & 0xff) >> (24 - plen) :
				    b == top >> 8)
					h->sum->v4f[b / 8] |= (uint8_t)(1 << (b % 8));
			}
			h->sum->v4[top >> 16] |= RG_SUM_FINE;
			return;
		}
		for (s = 0; s < RG_SUM_SLOTS; s++)
			if (!plen || s >> (16 - plen) == top >> (32 - plen))
				h->sum->v4[s] |= RG_SUM_COARSE;
		return;
	}
	if (plen >= 40) {
		for (s = 0; s < 256; s++) {
			uint32_t n = (uint32_t)addr[4] << 8 | s;   /* a /48 of the /40 */

			if (plen <= 48 ? s >> (48 - plen) == (uint32_t)addr[5] >> (48 - plen) :
			    s == addr[5]) {
				b = rg_sum_fine6(top, n);
				h->sum->v6f[b / 8] |= (uint8_t)(1 << (b % 8));
			}
		}
		h->sum->v6[(top ^ (top >> 16)) & 0xffff] |= RG_SUM_FINE;
		return;
	}
	if (plen >= 32) {
		h->sum->v6[(top ^ (top >> 16)) & 0xffff] |= RG_SUM_COARSE;
		return;
	}
	for (s = 0; s < RG_SUM_SLOTS; s++)
		h->sum->v6[s] |= RG_SUM_COARSE;
}

static inline void h_unhint(struct harness *h, uint32_t bit)
{
	if (h->sum)
		__atomic_fetch_and(&h->sum->hints, ~bit, __ATOMIC_SEQ_CST);
}

static inline void h_close(struct harness *h)
{
	if (h->sum)
		munmap(h->sum, h->sum_len);
	h->sum = NULL;
	relaygate__destroy(h->skel);
	h->skel = NULL;
}

/* Delete every key of a hash/LRU/LPM map. The keys are collected first:
 * restarting get_next_key from NULL after each delete rescans the empty
 * buckets every time (quadratic on a big hash map). */
static inline int h_clear(int fd)
{
	struct bpf_map_info info = { 0 };
	uint32_t ilen = sizeof(info);
	uint8_t *keys = NULL, *cur, *prev = NULL;
	size_t n = 0, cap = 0, i;
	int err = 0;

	if (fd < 0)
		return 0;
	if (bpf_obj_get_info_by_fd(fd, &info, &ilen))
		return -errno;
	for (;;) {
		if (n == cap) {
			uint8_t *k = realloc(keys, (cap = cap ? cap * 2 : 1024) * info.key_size);

			if (!k) {
				free(keys);
				return -ENOMEM;
			}
			keys = k;
			prev = n ? keys + (n - 1) * info.key_size : NULL;
		}
		cur = keys + n * info.key_size;
		if (bpf_map_get_next_key(fd, prev, cur))
			break;
		prev = cur;
		n++;
	}
	for (i = 0; i < n && !err; i++)
		if (bpf_map_delete_elem(fd, keys + i * info.key_size) && errno != ENOENT) {
			err = -errno;
			printf("# harness: delete: %s\n", strerror(-err));
		}
	free(keys);
	return err;
}

static inline long h_count(int fd)
{
	uint8_t key[64], next[64];
	long n = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		memcpy(key, next, sizeof(key));
		prev = key;
		n++;
	}
	return n;
}

static inline int h_update(int fd, const void *k, const void *v, const char *what)
{
	if (bpf_map_update_elem(fd, k, v, BPF_ANY)) {
		int err = -errno;

		printf("# harness: update %s: %s\n", what, strerror(-err));
		return err;
	}
	return 0;
}

/*
 * RG_SUM_FAST as userspace keeps it, written out plainly: the config
 * carries our ABI version, reject = drop, and grant prefixes are no
 * shorter than a summary slot (IPv4 /16, IPv6 /32). Cleared before a
 * config that does not allow it, set after one that does.
 */
static inline int h_config(struct harness *h, const struct rg_config *c)
{
	bool fast = c->abi_version == RG_ABI_VERSION && !(c->flags & RG_CFG_REJECT_RST) &&
		    c->v4_prefix >= 16 && c->v4_prefix <= 32 && c->v6_prefix >= 32 &&
		    c->v6_prefix <= 128;
	uint32_t k = 0;
	int err;

	if (h->sum && !fast)
		__atomic_fetch_and(&h->sum->hints, ~RG_SUM_FAST, __ATOMIC_SEQ_CST);
	err = h_update(h->config_fd, &k, c, RG_MAP_CONFIG);
	h->p4 = c->v4_prefix < 16 ? 16 : c->v4_prefix > 32 ? 32 : c->v4_prefix;
	h->p6 = c->v6_prefix < 32 ? 32 : c->v6_prefix > 128 ? 128 : c->v6_prefix;
	if (h->sum && fast && !err)
		__atomic_fetch_or(&h->sum->hints, RG_SUM_FAST, __ATOMIC_SEQ_CST);
	return err;
}

/* Configured: ABI version set, given flags and prefixes. */
static inline int h_cfg(struct harness *h, uint32_t flags, uint32_t v4p, uint32_t v6p)
{
	struct rg_config c = {
		.abi_version = RG_ABI_VERSION,
		.flags = flags,
		.v4_prefix = v4p,
		.v6_prefix = v6p,
		.event_interval = 1000000000ull,
		.event_burst = 64,
	};

	return h_config(h, &c);
}

/* rg_ports[port] = on, with the summary's byte for the port (indexed by
 * the port in network order) set before a port is protected and cleared
 * after it is not, whether the summary is on or not: the straight-line
 * path reads the bytes either way. */
static inline int h_port(struct harness *h, uint16_t port, bool on)
{
	uint32_t k = port, v = on;
	int err;

	if (h->sum && on)
		h->sum->ports[htons(port)] = 1;
	err = h_update(h->ports_fd, &k, &v, RG_MAP_PORTS);
	if (h->sum && !on && !err)
		h->sum->ports[htons(port)] = 0;
	if (!err) {
		if (on)
			h->ports_on[port / 8] |= (uint8_t)(1u << (port % 8));
		else
			h->ports_on[port / 8] &= (uint8_t)~(1u << (port % 8));
	}
	return err;
}

/* Base state: configured (drop, /32, /64), ports 465 and 587, every other
 * map empty. Counters are left alone (tests compare deltas). */
static inline int h_reset(struct harness *h)
{
	int err = 0;
	unsigned p;

	for (p = 0; p < 65536; p++)
		if (h->ports_on[p / 8] & (1u << (p % 8)))
			err = err ?: h_port(h, (uint16_t)p, false);
	err = err ?: h_port(h, 465, true);
	err = err ?: h_port(h, 587, true);
	if (h->sum) {
		h->sum->hints = 0;
		memset(h->sum->v4, 0, sizeof(h->sum->v4));
		memset(h->sum->v6, 0, sizeof(h->sum->v6));
		memset(h->sum->v4f, 0, sizeof(h->sum->v4f));
		memset(h->sum->v6f, 0, sizeof(h->sum->v6f));
		if (h->summary)
			h->sum->hints = RG_SUM_ON | RG_SUM_NO_TIFACE | RG_SUM_NO_DENY;
	}
	err = err ?: h_cfg(h, 0, 32, 64);
	err = err ?: h_clear(h->tiface_fd);
	err = err ?: h_clear(h->trust4_fd);
	err = err ?: h_clear(h->trust6_fd);
	err = err ?: h_clear(h->grants_fd);
	err = err ?: h_clear(h->deny_fd);
	err = err ?: h_clear(h->flows_fd);
	err = err ?: h_clear(h->evrate_fd);
	return err;
}

static inline int h_tiface(struct harness *h, uint32_t ifindex)
{
	uint32_t v = 1;

	h_unhint(h, RG_SUM_NO_TIFACE);
	return h_update(h->tiface_fd, &ifindex, &v, RG_MAP_TIFACE);
}

/* Address literal -> struct rg_addr (no IPv4-mapped folding: the caller
 * says exactly which key it wants). */
static inline void h_addr(struct rg_addr *a, const char *s)
{
	memset(a, 0, sizeof(*a));
	if (strchr(s, ':')) {
		a->family = RG_AF_INET6;
		pkt_addr6(a->addr, s);
	} else {
		a->family = RG_AF_INET;
		pkt_addr4(a->addr, s);
	}
}

static inline void h_mask(uint8_t *addr, unsigned bytes, unsigned plen)
{
	unsigned i;

	for (i = 0; i < bytes; i++) {
		if (plen >= 8)
			plen -= 8;
		else {
			addr[i] &= (uint8_t)(0xff00u >> plen);
			plen = 0;
		}
	}
}

static inline int h_trust_raw(struct harness *h, int family, const uint8_t *addr, unsigned plen)
{
	uint32_t v = 1;

	h_cover(h, family, addr, plen);
	if (family == RG_AF_INET) {
		struct rg_lpm4 k = { .prefixlen = plen };

		memcpy(k.addr, addr, 4);
		h_mask(k.addr, 4, plen);
		return h_update(h->trust4_fd, &k, &v, RG_MAP_TRUST4);
	} else {
		struct rg_lpm6 k = { .prefixlen = plen };

		memcpy(k.addr, addr, 16);
		h_mask(k.addr, 16, plen);
		return h_update(h->trust6_fd, &k, &v, RG_MAP_TRUST6);
	}
}

/* "192.0.2.0/24" or "2001:db8::/32" into rg_trust4 / rg_trust6. */
static inline int h_trust(struct harness *h, const char *cidr)
{
	char buf[64];
	char *slash;
	struct rg_addr a;

	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	if (!slash) {
		printf("# harness: bad CIDR %s\n", cidr);
		return -EINVAL;
	}
	*slash = 0;
	h_addr(&a, buf);
	return h_trust_raw(h, a.family, a.addr, (unsigned)atoi(slash + 1));
}

static inline int h_grant_key(struct harness *h, const struct rg_addr *key, uint64_t expires)
{
	struct rg_grant g = {
		.expires = expires,
		.granted = h_now(),
		.origin = RG_ORIGIN_CLI,
		.service = RG_SERVICE_POP3,
	};

	snprintf(g.user, sizeof(g.user), "test");
	h_cover(h, key->family, key->addr, key->family == RG_AF_INET ? h->p4 : h->p6);
	return h_update(h->grants_fd, key, &g, RG_MAP_GRANTS);
}

/* Grant / deny for a key given as an address literal, already masked. */
static inline int h_grant(struct harness *h, const char *key, uint64_t expires)
{
	struct rg_addr a;

	h_addr(&a, key);
	return h_grant_key(h, &a, expires);
}

static inline int h_deny_key(struct harness *h, const struct rg_addr *key, uint64_t expires)
{
	struct rg_deny d = {
		.expires = expires,
		.created = h_now(),
		.origin = RG_ORIGIN_CLI,
	};

	h_cover(h, key->family, key->addr, key->family == RG_AF_INET ? h->p4 : h->p6);
	h_unhint(h, RG_SUM_NO_DENY);
	return h_update(h->deny_fd, key, &d, RG_MAP_DENY);
}

static inline int h_deny(struct harness *h, const char *key, uint64_t expires)
{
	struct rg_addr a;

	h_addr(&a, key);
	return h_deny_key(h, &a, expires);
}

/* The flow key of a built TCP frame as the contract defines it: unmasked
 * addresses (IPv4 in the first 4 bytes), host-order ports, family. An
 * IPv4-mapped IPv6 source makes a family-4 key (both addresses folded). */
static inline void h_flow_key_of(const struct pkt *p, struct rg_flow_key *k)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	memset(k, 0, sizeof(*k));
	if (p->l3 == PKT_L3_IPV4) {
		k->family = RG_AF_INET;
		memcpy(k->saddr, p->src4, 4);
		memcpy(k->daddr, p->dst4, 4);
	} else if (!memcmp(p->src6, mapped, 12)) {
		k->family = RG_AF_INET;
		memcpy(k->saddr, p->src6 + 12, 4);
		if (!memcmp(p->dst6, mapped, 12))
			memcpy(k->daddr, p->dst6 + 12, 4);
		else
			memcpy(k->daddr, p->dst6, 16);
	} else {
		k->family = RG_AF_INET6;
		memcpy(k->saddr, p->src6, 16);
		memcpy(k->daddr, p->dst6, 16);
	}
	k->sport = p->sport;
	k->dport = p->dport;
}

static inline int h_flow_key(struct harness *h, const struct rg_flow_key *k)
{
	struct rg_flow f = {
		.admitted = h_now(),
		.reason = RG_STAT_PASS_GRANT,
		.ifindex = H_IFINDEX_LO,
	};

	return h_update(h->flows_fd, k, &f, RG_MAP_FLOWS);
}

static inline int h_flow(struct harness *h, const struct pkt *p)
{
	struct rg_flow_key k;

	h_flow_key_of(p, &k);
	return h_flow_key(h, &k);
}

/* Per-CPU counters summed over CPUs, indexed by enum rg_stat: one batched
 * lookup (the random test reads them after every run), or key by key. */
static inline int h_stats(struct harness *h, struct rg_counter out[RG_STAT_MAX])
{
	static struct rg_counter *vals;
	static int nvals;
	uint32_t keys[RG_STAT_MAX], k, count = RG_STAT_MAX, out_batch;
	int c, err;

	if (nvals != h->ncpus) {
		free(vals);
		vals = calloc((size_t)h->ncpus * RG_STAT_MAX, sizeof(*vals));
		nvals = vals ? h->ncpus : 0;
		if (!vals)
			return -ENOMEM;
	}
	err = bpf_map_lookup_batch(h->stats_fd, NULL, &out_batch, keys, vals, &count, NULL);
	if ((err && errno != ENOENT) || count != RG_STAT_MAX) {
		for (k = 0; k < RG_STAT_MAX; k++) {
			keys[k] = k;
			if (bpf_map_lookup_elem(h->stats_fd, &k, vals + (size_t)k * h->ncpus)) {
				printf("# harness: read %s[%u]: %s\n", RG_MAP_STATS, k,
				       strerror(errno));
				return -errno;
			}
		}
	}
	for (k = 0; k < RG_STAT_MAX; k++) {
		const struct rg_counter *v = vals + (size_t)k * h->ncpus;

		if (keys[k] >= RG_STAT_MAX)
			return -EINVAL;
		out[keys[k]].packets = out[keys[k]].bytes = 0;
		for (c = 0; c < h->ncpus; c++) {
			out[keys[k]].packets += v[c].packets;
			out[keys[k]].bytes += v[c].bytes;
		}
	}
	return 0;
}

static inline enum h_verdict h_map_verdict(enum h_prog prog, uint32_t rv)
{
	if (prog == H_XDP)
		return rv == XDP_PASS ? HV_PASS : rv == XDP_DROP ? HV_DROP :
		       rv == XDP_TX ? HV_TX : HV_OTHER;
	return rv == (uint32_t)TC_ACT_UNSPEC ? HV_PASS : rv == TC_ACT_SHOT ? HV_DROP :
	       rv == TC_ACT_REDIRECT ? HV_TX : HV_OTHER;
}

/* Run one frame through rg_xdp or rg_tc, arriving on ifindex. */
static inline int h_run(struct harness *h, enum h_prog prog, const void *frame,
			size_t len, uint32_t ifindex, struct h_result *r)
{
	struct xdp_md xctx = {
		.data = 0,
		.data_end = (uint32_t)len,
		.ingress_ifindex = ifindex,
		.rx_queue_index = 0,
	};
	struct __sk_buff sctx = {
		.ifindex = ifindex,
		.ingress_ifindex = ifindex,
	};
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = frame,
		.data_size_in = (uint32_t)len,
		.data_out = r->out,
		.data_size_out = sizeof(r->out),
		.repeat = 1,
	);
	int err;

	if (prog == H_XDP) {
		o.ctx_in = &xctx;
		o.ctx_size_in = sizeof(xctx);
	} else {
		o.ctx_in = &sctx;
		o.ctx_size_in = sizeof(sctx);
	}
	err = bpf_prog_test_run_opts(h->prog_fd[prog], &o);
	r->err = err ? -errno : 0;
	r->retval = o.retval;
	r->out_len = o.data_size_out;
	r->verdict = r->err ? HV_OTHER : h_map_verdict(prog, o.retval);
	return r->err;
}

#endif /* RG_TEST_HARNESS_H */
