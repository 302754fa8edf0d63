// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Smoke test of the data plane: loads the real object through the skeleton
 * (no pins), reports the verifier's instruction counts, and runs a handful
 * of crafted packets through both programs with BPF_PROG_TEST_RUN: the
 * basic verdicts, the flow that outlives its grant, the counters, a drop
 * event, and the RST+ACK reply checked field by field with its checksums.
 * The full packet table and the randomised test live in test_packets.c and
 * test_random.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "relaygate.h"
#include "relaygate.skel.h"

static int t_n, t_failed;

static void t_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void t_ok(bool cond, const char *fmt, ...)
{
	va_list ap;

	t_n++;
	printf("%sok %d - ", cond ? "" : "not ", t_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		t_failed = 1;
}

static uint64_t boot_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- packet crafting ---- */

struct spec {
	int family;              /* 4 or 6 (6 with a ::ffff: source: mapped) */
	const char *src, *dst;
	uint16_t sport, dport;
	uint8_t flags;           /* TCP flags */
	uint32_t seq;
	int opt_len;             /* TCP option bytes (multiple of 4) */
	int payload;             /* TCP payload bytes */
	int vlans;               /* 0..3 tags */
	int pad_to;              /* Ethernet padding up to this length */
	int ip4opt;              /* IPv4 option bytes (multiple of 4) */
	int frag;                /* IPv4 frag_off (host order, flags | offset);
				  * IPv6: the fragment header's offset << 3 | M */
	const uint8_t *ext;      /* IPv6 extension headers, in order (or IPv4 AH) */
	int n_ext;
	int proto;               /* 0: TCP */
};

static struct spec mk(int family, const char *src, const char *dst, uint16_t sport,
		      uint16_t dport, uint8_t flags, uint32_t seq, int opt_len, int payload,
		      int vlans, int pad_to)
{
	struct spec sp = { .family = family, .src = src, .dst = dst, .sport = sport,
			   .dport = dport, .flags = flags, .seq = seq, .opt_len = opt_len,
			   .payload = payload, .vlans = vlans, .pad_to = pad_to };

	return sp;
}

#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

static const uint8_t mac_a[6] = { 0x02, 0, 0, 0, 0, 0xaa };
static const uint8_t mac_b[6] = { 0x02, 0, 0, 0, 0, 0xbb };

static uint32_t sum16(const void *p, size_t n, uint32_t s)
{
	const uint8_t *b = p;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (b[i] << 8) | b[i + 1];
	if (n & 1)
		s += b[n - 1] << 8;
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* TCP checksum over pseudo header + segment; 0xffff... fold == 0 when valid */
static uint16_t tcp_sum(int v6, const uint8_t *ip, const uint8_t *tcp, size_t seglen)
{
	uint32_t s = 0;

	if (v6) {
		s = sum16(ip + 8, 32, s);
	} else {
		s = sum16(ip + 12, 8, s);
	}
	s += 6 + (uint32_t)seglen;
	s = sum16(tcp, seglen, s);
	return fold(s);
}

static size_t craft(uint8_t *buf, size_t cap, const struct spec *sp)
{
	size_t off = 12, l3, l4, ext_len = 0, seglen = 20 + sp->opt_len + sp->payload;
	int proto = sp->proto ? sp->proto : 6;
	uint8_t *ip, *th, *x;

	memset(buf, 0, cap);
	memcpy(buf, mac_b, 6);           /* to us */
	memcpy(buf + 6, mac_a, 6);
	for (int i = 0; i < sp->vlans; i++) {
		uint16_t tpid = (i == 0 && sp->vlans > 1) ? 0x88a8 : 0x8100;

		buf[off] = tpid >> 8;
		buf[off + 1] = tpid & 0xff;
		buf[off + 2] = 0;
		buf[off + 3] = 10 + i;
		off += 4;
	}
	buf[off] = sp->family == 4 ? 0x08 : 0x86;
	buf[off + 1] = sp->family == 4 ? 0x00 : 0xdd;
	l3 = off + 2;
	ip = buf + l3;
	/* extension headers (IPv6) or AH (IPv4): 8 bytes each, AH 12 */
	for (int i = 0; i < sp->n_ext; i++)
		ext_len += sp->ext[i] == 51 ? 12 : 8;
	if (sp->family == 4) {
		size_t hl = 20 + sp->ip4opt;

		ip[0] = 0x40 | (hl / 4);
		ip[2] = (hl + ext_len + seglen) >> 8;
		ip[3] = (hl + ext_len + seglen) & 0xff;
		ip[6] = sp->frag ? sp->frag >> 8 : 0x40;
		ip[7] = sp->frag & 0xff;
		ip[8] = 61;
		ip[9] = sp->n_ext ? sp->ext[0] : proto;
		inet_pton(AF_INET, sp->src, ip + 12);
		inet_pton(AF_INET, sp->dst, ip + 16);
		for (int i = 0; i < sp->ip4opt; i++)
			ip[20 + i] = 1;  /* NOP */
		uint16_t c = ~fold(sum16(ip, hl, 0));
		ip[10] = c >> 8;
		ip[11] = c & 0xff;
		x = ip + hl;
	} else {
		ip[0] = 0x60;
		ip[4] = (ext_len + seglen) >> 8;
		ip[5] = (ext_len + seglen) & 0xff;
		ip[6] = sp->n_ext ? sp->ext[0] : proto;
		ip[7] = 61;
		inet_pton(AF_INET6, sp->src, ip + 8);
		inet_pton(AF_INET6, sp->dst, ip + 24);
		x = ip + 40;
	}
	for (int i = 0; i < sp->n_ext; i++) {
		x[0] = i + 1 < sp->n_ext ? sp->ext[i + 1] : proto;
		if (sp->ext[i] == 51) {
			x[1] = 1;                /* (1 + 2) * 4 = 12 */
			x += 12;
		} else if (sp->ext[i] == 44) {
			x[2] = sp->frag >> 8;
			x[3] = sp->frag & 0xff;
			x[7] = 1;                /* identification */
			x += 8;
		} else {
			x[2] = 1;                /* PadN */
			x[3] = 4;
			x += 8;
		}
	}
	l4 = x - buf;
	th = buf + l4;
	th[0] = sp->sport >> 8;
	th[1] = sp->sport & 0xff;
	th[2] = sp->dport >> 8;
	th[3] = sp->dport & 0xff;
	th[4] = sp->seq >> 24;
	th[5] = sp->seq >> 16;
	th[6] = sp->seq >> 8;
	th[7] = sp->seq;
	th[12] = ((20 + sp->opt_len) / 4) << 4;
	th[13] = sp->flags;
	th[14] = 0xfa;
	for (int i = 0; i < sp->opt_len; i++)
		th[20 + i] = 1;          /* NOP */
	for (int i = 0; i < sp->payload; i++)
		th[20 + sp->opt_len + i] = 'x';
	if (!sp->n_ext && !sp->ip4opt) {
		uint16_t c = ~tcp_sum(sp->family == 6, ip, th, seglen);

		th[16] = c >> 8;
		th[17] = c & 0xff;
	}
	off = l4 + seglen;
	if ((size_t)sp->pad_to > off)
		off = sp->pad_to;
	return off;
}

/* ---- running ---- */

static struct relaygate *skel;

static int run(struct bpf_program *prog, const uint8_t *pkt, size_t len, uint8_t *out,
	       uint32_t *out_len, uint32_t *retval)
{
	uint8_t tmp[512];
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = pkt,
		.data_size_in = len,
		.data_out = out ? out : tmp,
		.data_size_out = sizeof(tmp),
		.repeat = 1,
	);
	int err = bpf_prog_test_run_opts(bpf_program__fd(prog), &o);

	if (out_len)
		*out_len = o.data_size_out;
	*retval = o.retval;
	return err;
}

static void stats(uint64_t *pkts)
{
	int ncpu = libbpf_num_possible_cpus();
	struct rg_counter *v = calloc(ncpu, sizeof(*v));

	for (uint32_t i = 0; i < RG_STAT_MAX; i++) {
		pkts[i] = 0;
		if (bpf_map_lookup_elem(bpf_map__fd(skel->maps.rg_stats), &i, v))
			continue;
		for (int c = 0; c < ncpu; c++)
			pkts[i] += v[c].packets;
	}
	free(v);
}

static const char *stat_names[] = RG_STAT_NAMES;

/* Runs pkt through prog; checks the return code and that exactly the named
 * counter moved by one. */
static void expect(const char *desc, struct bpf_program *prog, const uint8_t *pkt, size_t len,
		   uint32_t want_ret, int want_stat)
{
	uint64_t before[RG_STAT_MAX], after[RG_STAT_MAX];
	uint32_t ret = 0;
	int err, moved_ok = 1;

	stats(before);
	err = run(prog, pkt, len, NULL, NULL, &ret);
	stats(after);
	for (int i = 0; i < RG_VERDICT_MAX; i++) {
		uint64_t d = after[i] - before[i];

		if (d != (i == want_stat ? 1u : 0u)) {
			moved_ok = 0;
			printf("# %s: counter %s moved by %llu\n", desc, stat_names[i],
			       (unsigned long long)d);
		}
	}
	if (err)
		printf("# %s: test_run: %s\n", desc, strerror(-err));
	t_ok(!err && ret == want_ret && moved_ok, "%s: %s -> ret %u (%s)", bpf_program__name(prog),
	     desc, ret, stat_names[want_stat]);
}

static void map_set(struct bpf_map *m, const void *k, const void *v)
{
	if (bpf_map_update_elem(bpf_map__fd(m), k, v, BPF_ANY))
		printf("# update %s: %s\n", bpf_map__name(m), strerror(errno));
}

static struct rg_addr addr(const char *s)
{
	struct rg_addr a = { 0 };

	if (inet_pton(AF_INET, s, a.addr) == 1) {
		a.family = RG_AF_INET;
	} else {
		inet_pton(AF_INET6, s, a.addr);
		a.family = RG_AF_INET6;
	}
	return a;
}

static void grant(const char *s, int64_t ttl_ns)
{
	struct rg_addr a = addr(s);
	struct rg_grant g = { .expires = boot_ns() + ttl_ns, .granted = boot_ns() };

	strcpy(g.user, "smoke");
	map_set(skel->maps.rg_grants, &a, &g);
}

static int events;
static struct rg_drop_event last_ev;

/* rg_summary with these hints, no slot set, and the port bytes of the
 * protected ports (465, 587; indexed in network order) as userspace
 * keeps them. */
static void summary_set(struct relaygate *skel, uint32_t hints)
{
	struct rg_summary *sum = calloc(1, sizeof(*sum));
	uint32_t zero = 0;

	if (sum) {
		sum->hints = hints;
		sum->ports[htons(465)] = 1;
		sum->ports[htons(587)] = 1;
	}
	if (!sum || bpf_map_update_elem(bpf_map__fd(skel->maps.bss), &zero, sum, BPF_ANY))
		printf("# summary_set: %s\n", strerror(errno));
	free(sum);
}

static uint32_t summary_ev_quiet(struct relaygate *skel)
{
	struct rg_summary *sum = calloc(1, sizeof(*sum));
	uint32_t zero = 0, v = 0;

	if (sum && !bpf_map_lookup_elem(bpf_map__fd(skel->maps.bss), &zero, sum))
		v = sum->ev_quiet;
	free(sum);
	return v;
}

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	if (len >= sizeof(last_ev))
		memcpy(&last_ev, data, sizeof(last_ev));
	events++;
	return 0;
}

static void report_insns(struct bpf_program *prog, const char *log)
{
	struct bpf_prog_info info = { 0 };
	uint32_t len = sizeof(info);
	const char *st = strstr(log, "processed ");

	if (!bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
		printf("# %s: verified_insns %u, xlated %u bytes, jited %u bytes\n",
		       bpf_program__name(prog), info.verified_insns, info.xlated_prog_len,
		       info.jited_prog_len);
	if (st)
		printf("# %s: %.*s\n", bpf_program__name(prog), (int)strcspn(st, "\n"), st);
}

/* Checks one RST reply: rsp/rlen as returned, syn as sent. */
static void check_rst(const char *desc, int v6, int vlans, const uint8_t *syn, const uint8_t *rsp,
		      uint32_t rlen, uint32_t ack_want)
{
	size_t l3 = 14 + 4 * vlans, l4 = l3 + (v6 ? 40 : 20);
	const uint8_t *ip = rsp + l3, *th = rsp + l4;
	const uint8_t *sip = syn + l3, *sth = syn + l4;
	uint32_t ack = (uint32_t)th[8] << 24 | th[9] << 16 | th[10] << 8 | th[11];
	int ok = 1;

#define REQ(c) do { if (!(c)) { ok = 0; printf("# %s: failed %s\n", desc, #c); } } while (0)
	REQ(rlen == l4 + 20);
	REQ(!memcmp(rsp, mac_a, 6) && !memcmp(rsp + 6, mac_b, 6));
	REQ(!memcmp(rsp + 12, syn + 12, l3 - 12));      /* VLAN tags, ethertype kept */
	if (v6) {
		REQ(ip[0] == 0x60 && ip[1] == 0 && ip[2] == 0 && ip[3] == 0);
		REQ(ip[4] == 0 && ip[5] == 20 && ip[6] == 6 && ip[7] == 64);
		REQ(!memcmp(ip + 8, sip + 24, 16) && !memcmp(ip + 24, sip + 8, 16));
	} else {
		REQ(ip[0] == 0x45 && ip[1] == 0 && ip[2] == 0 && ip[3] == 40);
		REQ(ip[4] == 0 && ip[5] == 0 && ip[6] == 0x40 && ip[7] == 0);
		REQ(ip[8] == 64 && ip[9] == 6);
		REQ(!memcmp(ip + 12, sip + 16, 4) && !memcmp(ip + 16, sip + 12, 4));
		REQ(fold(sum16(ip, 20, 0)) == 0xffff);          /* header checksum */
	}
	REQ(th[0] == sth[2] && th[1] == sth[3] && th[2] == sth[0] && th[3] == sth[1]);
	REQ(!th[4] && !th[5] && !th[6] && !th[7]);
	REQ(ack == ack_want);
	REQ(th[12] == 0x50 && th[13] == (F_RST | F_ACK));
	REQ(!th[14] && !th[15] && !th[18] && !th[19]);
	REQ(tcp_sum(v6, ip, th, 20) == 0xffff);              /* TCP checksum */
#undef REQ
	t_ok(ok, "%s: RST+ACK reply right, checksums included", desc);
}

int main(void)
{
	static char log_x[1 << 20], log_t[1 << 20];
	uint8_t pkt[512], out[512];
	uint32_t ret, olen, one = 1, zero = 0;
	struct bpf_program *px, *pt;
	struct ring_buffer *rb = NULL;
	struct bpf_map *m;
	struct spec s;
	size_t n;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("ok 1 - smoke # SKIP needs root\n");
		return 0;
	}
	skel = relaygate__open();
	if (!skel) {
		t_ok(false, "open skeleton: %s", strerror(errno));
		return 1;
	}
	bpf_object__for_each_map(m, skel->obj)
		bpf_map__set_pin_path(m, NULL);
	px = skel->progs.rg_xdp;
	pt = skel->progs.rg_tc;
	bpf_program__set_log_buf(px, log_x, sizeof(log_x));
	bpf_program__set_log_level(px, 4);
	bpf_program__set_log_buf(pt, log_t, sizeof(log_t));
	bpf_program__set_log_level(pt, 4);
	err = relaygate__load(skel);
	t_ok(!err, "skeleton loads (rg_xdp and rg_tc pass the verifier): %d", err);
	if (err) {
		printf("%s\n%s\n", log_x, log_t);
		return 1;
	}
	report_insns(px, log_x);
	report_insns(pt, log_t);

	struct rg_config cfg = { .abi_version = RG_ABI_VERSION, .v4_prefix = 32, .v6_prefix = 64 };
	map_set(skel->maps.rg_config, &zero, &cfg);
	uint32_t port = 587;
	summary_set(skel, 0);           /* the port's byte before the port */
	map_set(skel->maps.rg_ports, &port, &one);
	rb = ring_buffer__new(bpf_map__fd(skel->maps.rg_events), on_event, NULL, NULL);
	t_ok(rb != NULL, "ring buffer opens");

	struct bpf_program *progs[2] = { px, pt };
	uint32_t pass_ret[2] = { XDP_PASS, (uint32_t)TC_ACT_UNSPEC }, drop_ret[2] = { XDP_DROP, TC_ACT_SHOT };
	uint32_t tx_ret[2] = { XDP_TX, TC_ACT_REDIRECT };

	for (int h = 0; h < 2; h++) {
		struct bpf_program *p = progs[h];
		/* hosts differ per hook so the flow map does not carry over */
		const char *cli4 = h ? "198.51.100.20" : "198.51.100.10";
		const char *cli6 = h ? "2001:db8:20::7" : "2001:db8:10::7";

		s = mk(4, cli4, "192.0.2.1", 40000, 587, F_SYN, 1000, 20, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		ring_buffer__consume(rb);       /* drain what earlier checks left */
		events = 0;
		expect("IPv4 SYN from unauthorised source dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);
		ring_buffer__consume(rb);
		t_ok(events == 1 && last_ev.reason == RG_STAT_DROP_UNAUTH && last_ev.dport == 587 &&
		     last_ev.sport == 40000 && last_ev.src.family == 4,
		     "%s: one drop event with reason, ports, source (%d)", bpf_program__name(p), events);
		events = 0;
		expect("same SYN again: dropped", p, pkt, n, drop_ret[h], RG_STAT_DROP_UNAUTH);
		ring_buffer__consume(rb);
		t_ok(events == 0, "%s: second drop within the interval: no event (%d)",
		     bpf_program__name(p), events);

		/* The same with the summary on (no entry, no trusted interface):
		 * the straight-line path drops, counts and reports, IPv4 and
		 * IPv6 alike. */
		summary_set(skel, RG_SUM_ON | RG_SUM_NO_TIFACE | RG_SUM_NO_DENY | RG_SUM_FAST);
		for (int fam = 4; fam <= 6; fam += 2) {
			const char *src = fam == 4 ? (h ? "198.51.100.31" : "198.51.100.30") :
					  (h ? "2001:db8:31::9" : "2001:db8:30::9");
			struct rg_addr want = addr(src);
			struct spec fs = mk(fam, src, fam == 4 ? "192.0.2.1" : "2001:db8::1", 40010,
					    587, F_SYN, 7, 0, 0, 0, 0);

			n = craft(pkt, sizeof(pkt), &fs);
			events = 0;
			expect(fam == 4 ? "summary on: IPv4 SYN from a clear slot dropped" :
			       "summary on: IPv6 SYN from a clear slot dropped", p, pkt, n, drop_ret[h],
			       RG_STAT_DROP_UNAUTH);
			ring_buffer__consume(rb);
			t_ok(events == 1 && last_ev.reason == RG_STAT_DROP_UNAUTH && last_ev.dport == 587 &&
			     last_ev.sport == 40010 && !memcmp(&last_ev.src, &want, sizeof(want)) &&
			     last_ev.ifindex == 1,
			     "%s: summary on: one IPv%d drop event with reason, ports, source, interface (%d)",
			     bpf_program__name(p), fam, events);
		}
		/* One token a second per CPU: more fresh sources than CPUs, so
		 * some CPU finds its token gone and marks the tick in the
		 * summary (ev_quiet) for the straight-line path. */
		if (!h) {
			struct rg_config c1 = cfg;
			int ncpu = libbpf_num_possible_cpus(), i;

			c1.event_burst = 1;
			map_set(skel->maps.rg_config, &zero, &c1);
			events = 0;
			for (i = 0; i <= ncpu && i < 250; i++) {
				char src[32];
				struct spec fs;

				snprintf(src, sizeof(src), "198.51.101.%d", i + 1);
				fs = mk(4, src, "192.0.2.1", 40020, 587, F_SYN, 7, 0, 0, 0, 0);
				n = craft(pkt, sizeof(pkt), &fs);
				expect("summary on, one token: SYN from a fresh source dropped", p, pkt,
				       n, drop_ret[h], RG_STAT_DROP_UNAUTH);
			}
			ring_buffer__consume(rb);
			t_ok(summary_ev_quiet(skel) != 0 && events <= ncpu,
			     "%s: one token per CPU: %d events from %d sources, and the tick marked quiet in the summary",
			     bpf_program__name(p), events, i);
			map_set(skel->maps.rg_config, &zero, &cfg);
			usleep(20000);  /* past the quiet tick (HZ >= 100) */
		}
		summary_set(skel, 0);
		n = craft(pkt, sizeof(pkt), &s);

		s.dport = 80;
		n = craft(pkt, sizeof(pkt), &s);
		expect("SYN to unprotected port passes", p, pkt, n, pass_ret[h],
		       RG_STAT_PASS_UNPROTECTED);

		s.dport = 587;
		s.flags = F_ACK;
		n = craft(pkt, sizeof(pkt), &s);
		expect("stray ACK from unadmitted source dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);

		grant(cli4, 60000000000LL);
		s.flags = F_SYN;
		n = craft(pkt, sizeof(pkt), &s);
		expect("SYN from granted source passes", p, pkt, n, pass_ret[h], RG_STAT_PASS_GRANT);
		struct rg_addr ga = addr(cli4);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_grants), &ga);
		s.flags = F_ACK;
		n = craft(pkt, sizeof(pkt), &s);
		expect("ACK of admitted flow passes after the grant is gone", p, pkt, n,
		       pass_ret[h], RG_STAT_PASS_FLOW);
		s.flags = F_SYN;
		n = craft(pkt, sizeof(pkt), &s);
		expect("new SYN after the grant is gone dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);
		grant(cli4, -1000000000LL);
		expect("SYN with an expired grant dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_grants), &ga);

		s = mk(6, cli6, "2001:db8::1", 40001, 587, F_SYN, 7, 0, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		expect("IPv6 SYN from unauthorised source dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);
		struct rg_lpm6 t6 = { .prefixlen = 64 };
		inet_pton(AF_INET6, cli6, t6.addr);
		map_set(skel->maps.rg_trust6, &t6, &one);
		expect("IPv6 SYN from trusted /64 passes", p, pkt, n, pass_ret[h],
		       RG_STAT_PASS_TRUSTED);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_trust6), &t6);

		s = mk(6, "::ffff:203.0.113.9", "::ffff:192.0.2.1", 40002, 587, F_SYN,
				   1, 0, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		struct rg_lpm4 t4 = { .prefixlen = 24 };
		inet_pton(AF_INET, "203.0.113.0", t4.addr);
		map_set(skel->maps.rg_trust4, &t4, &one);
		expect("IPv4-mapped IPv6 SYN trusted through trust4", p, pkt, n, pass_ret[h],
		       RG_STAT_PASS_TRUSTED);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_trust4), &t4);

		s = mk(4, "198.51.100.99", "192.0.2.1", 40003, 587, F_SYN, 1, 0, 0, 2, 0);
		n = craft(pkt, sizeof(pkt), &s);
		expect("QinQ-tagged SYN judged (dropped)", p, pkt, n, drop_ret[h], RG_STAT_DROP_UNAUTH);
		s.vlans = 3;
		n = craft(pkt, sizeof(pkt), &s);
		expect("third VLAN tag: malformed", p, pkt, n, drop_ret[h], RG_STAT_DROP_MALFORMED);
		s.vlans = 0;
		n = craft(pkt, sizeof(pkt), &s);
		expect("truncated TCP header to 587: malformed", p, pkt, 14 + 20 + 12, drop_ret[h],
		       RG_STAT_DROP_MALFORMED);
		pkt[12] = 0x08;
		pkt[13] = 0x06;
		expect("ARP frame passes", p, pkt, 60, pass_ret[h], RG_STAT_PASS_UNPROTECTED);

		uint32_t ifx = 1;
		map_set(skel->maps.rg_tiface, &ifx, &one);
		/* test_run runs XDP with ingress_ifindex = loopback (1) and TC
		 * with skb->ifindex = loopback (1) */
		s = mk(4, "198.51.100.98", "192.0.2.1", 40004, 587, F_SYN, 1, 0, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		expect("SYN on a trusted interface passes", p, pkt, n, pass_ret[h], RG_STAT_PASS_IFACE);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_tiface), &ifx);

		struct rg_addr da = addr("198.51.100.98");
		struct rg_deny dv = { .expires = boot_ns() + 60000000000ULL };
		map_set(skel->maps.rg_deny, &da, &dv);
		grant("198.51.100.98", 60000000000LL);
		expect("denied source with a grant dropped (deny wins)", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_DENIED);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_deny), &da);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_grants), &da);

		/* parser edges, all to port 587 from an unauthorised source */
		static const uint8_t e_hdf[] = { 0, 60, 44 }, e_ah[] = { 51 };
		static const uint8_t e_nine[] = { 60, 60, 60, 60, 60, 60, 60, 60, 60 };
		static const uint8_t e_eight[] = { 0, 43, 60, 51, 60, 60, 60, 44 };
		static const uint8_t e_frag[] = { 44 };
		struct {
			const char *desc;
			struct spec s;
			size_t cut;          /* 0: whole packet, else its length */
			int stat;
		} edge[] = {
			{ "IPv6 HBH+DST+first fragment: judged", { .family = 6, .src = "2001:db8:66::1",
			  .dst = "2001:db8::1", .sport = 1, .dport = 587, .flags = F_SYN, .ext = e_hdf,
			  .n_ext = 3, .frag = 1 }, 0, RG_STAT_DROP_UNAUTH },
			{ "IPv6 chain of 8 ext headers (incl. AH): judged", { .family = 6,
			  .src = "2001:db8:66::1", .dst = "2001:db8::1", .sport = 1, .dport = 587,
			  .flags = F_SYN, .ext = e_eight, .n_ext = 8 }, 0, RG_STAT_DROP_UNAUTH },
			{ "IPv6 chain of 9 ext headers: malformed", { .family = 6,
			  .src = "2001:db8:66::1", .dst = "2001:db8::1", .sport = 1, .dport = 587,
			  .flags = F_SYN, .ext = e_nine, .n_ext = 9 }, 0, RG_STAT_DROP_MALFORMED },
			{ "IPv6 non-first fragment: passes", { .family = 6, .src = "2001:db8:66::1",
			  .dst = "2001:db8::1", .sport = 1, .dport = 587, .flags = F_SYN, .ext = e_frag,
			  .n_ext = 1, .frag = 8 << 3 }, 0, RG_STAT_PASS_UNPROTECTED },
			{ "IPv6 ext header cut short: malformed", { .family = 6, .src = "2001:db8:66::1",
			  .dst = "2001:db8::1", .sport = 1, .dport = 587, .flags = F_SYN, .ext = e_hdf,
			  .n_ext = 3 }, 14 + 40 + 8 + 1, RG_STAT_DROP_MALFORMED },
			{ "IPv6 header cut short: malformed", { .family = 6, .src = "2001:db8:66::1",
			  .dst = "2001:db8::1", .sport = 1, .dport = 587, .flags = F_SYN }, 14 + 39,
			  RG_STAT_DROP_MALFORMED },
			{ "IPv6 UDP to 587: passes", { .family = 6, .src = "2001:db8:66::1",
			  .dst = "2001:db8::1", .sport = 1, .dport = 587, .proto = 17 }, 0,
			  RG_STAT_PASS_UNPROTECTED },
			{ "IPv4 with options: judged", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN, .ip4opt = 8 }, 0,
			  RG_STAT_DROP_UNAUTH },
			{ "IPv4 AH: judged", { .family = 4, .src = "198.51.100.66", .dst = "192.0.2.1",
			  .sport = 1, .dport = 587, .flags = F_SYN, .ext = e_ah, .n_ext = 1 }, 0,
			  RG_STAT_DROP_UNAUTH },
			{ "IPv4 non-first fragment: passes", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN, .frag = 0x2003 },
			  0, RG_STAT_PASS_UNPROTECTED },
			{ "IPv4 first fragment with 12 TCP bytes: malformed", { .family = 4,
			  .src = "198.51.100.66", .dst = "192.0.2.1", .sport = 1, .dport = 587,
			  .flags = F_SYN, .frag = 0x2000 }, 14 + 20 + 12, RG_STAT_DROP_MALFORMED },
			{ "IPv4 first fragment with the whole header: judged", { .family = 4,
			  .src = "198.51.100.66", .dst = "192.0.2.1", .sport = 1, .dport = 587,
			  .flags = F_SYN, .frag = 0x2000 }, 0, RG_STAT_DROP_UNAUTH },
			{ "IPv4 header cut short: malformed", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN }, 14 + 19,
			  RG_STAT_DROP_MALFORMED },
			{ "IPv4 options cut short: malformed", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN, .ip4opt = 40 },
			  14 + 30, RG_STAT_DROP_MALFORMED },
			{ "TCP ports cut short: malformed", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN }, 14 + 20 + 3,
			  RG_STAT_DROP_MALFORMED },
			{ "TCP options cut short: malformed", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN, .opt_len = 20 },
			  14 + 20 + 30, RG_STAT_DROP_MALFORMED },
			{ "TCP to port 80 cut after the ports: passes", { .family = 4,
			  .src = "198.51.100.66", .dst = "192.0.2.1", .sport = 1, .dport = 80,
			  .flags = F_SYN }, 14 + 20 + 4, RG_STAT_PASS_UNPROTECTED },
			{ "IPv4 UDP to 587: passes", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .proto = 17 }, 0,
			  RG_STAT_PASS_UNPROTECTED },
			{ "VLAN tag cut short: malformed", { .family = 4, .src = "198.51.100.66",
			  .dst = "192.0.2.1", .sport = 1, .dport = 587, .flags = F_SYN, .vlans = 1 },
			  14 + 2, RG_STAT_DROP_MALFORMED },
		};
		for (size_t e = 0; e < sizeof(edge) / sizeof(edge[0]); e++) {
			/* test_run refuses skbs whose IP header is cut short
			 * (EINVAL): those run through XDP only */
			if (h && edge[e].cut &&
			    edge[e].cut < 14u + (edge[e].s.family == 4 ? 20 : 40))
				continue;
			n = craft(pkt, sizeof(pkt), &edge[e].s);
			if (edge[e].cut)
				n = edge[e].cut;
			expect(edge[e].desc, p, pkt, n,
			       edge[e].stat == RG_STAT_PASS_UNPROTECTED ? pass_ret[h] : drop_ret[h],
			       edge[e].stat);
		}
		s = mk(4, "198.51.100.66", "192.0.2.1", 1, 587, F_SYN, 0, 0, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		pkt[14] = 0x44;                 /* ihl 4 */
		expect("IPv4 ihl < 5: malformed", p, pkt, n, drop_ret[h], RG_STAT_DROP_MALFORMED);
		n = craft(pkt, sizeof(pkt), &s);
		pkt[14 + 20 + 12] = 0x40;      /* doff 4 */
		expect("TCP doff < 5: malformed", p, pkt, n, drop_ret[h], RG_STAT_DROP_MALFORMED);

		/* grants keyed by the masked source: /24 and /48 */
		cfg.v4_prefix = 24;
		cfg.v6_prefix = 48;
		map_set(skel->maps.rg_config, &zero, &cfg);
		grant("198.51.100.0", 60000000000LL);
		grant("2001:db8:77::", 60000000000LL);
		s = mk(4, "198.51.100.201", "192.0.2.1", 2, 587, F_SYN, 0, 0, 0, 0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		expect("v4 prefix 24: grant of the /24 admits .201", p, pkt, n, pass_ret[h],
		       RG_STAT_PASS_GRANT);
		s = mk(6, "2001:db8:77:0:aaaa::1", "2001:db8::1", 2, 587, F_SYN, 0, 0, 0,
				   0, 0);
		n = craft(pkt, sizeof(pkt), &s);
		expect("v6 prefix 48: grant of the /48 admits a host in it", p, pkt, n, pass_ret[h],
		       RG_STAT_PASS_GRANT);
		s.src = "2001:db8:78::1";
		n = craft(pkt, sizeof(pkt), &s);
		expect("v6 prefix 48: next /48 dropped", p, pkt, n, drop_ret[h], RG_STAT_DROP_UNAUTH);
		struct rg_addr g1 = addr("198.51.100.0"), g2 = addr("2001:db8:77::");
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_grants), &g1);
		bpf_map_delete_elem(bpf_map__fd(skel->maps.rg_grants), &g2);
		cfg.v4_prefix = 32;
		cfg.v6_prefix = 64;
		map_set(skel->maps.rg_config, &zero, &cfg);

		/* reject = rst */
		cfg.flags = RG_CFG_REJECT_RST;
		map_set(skel->maps.rg_config, &zero, &cfg);
		for (int v6 = 0; v6 < 2; v6++) {
			for (int vl = 0; vl < 2; vl++) {
				char desc[96];
				uint64_t b[RG_STAT_MAX], a[RG_STAT_MAX];

				s = mk(v6 ? 6 : 4, v6 ? "2001:db8:99::5" : "198.51.100.77",
						   v6 ? "2001:db8::1" : "192.0.2.1", 40100, 587, F_SYN,
						   0xfffffff0u, 20, v6 ? 0 : 6, vl, 0);
				n = craft(pkt, sizeof(pkt), &s);
				stats(b);
				err = run(p, pkt, n, out, &olen, &ret);
				stats(a);
				snprintf(desc, sizeof(desc), "%s: %s%s SYN%s", bpf_program__name(p),
					 v6 ? "IPv6" : "IPv4", vl ? " VLAN" : "",
					 v6 ? "" : " with 6 data bytes");
				t_ok(!err && ret == tx_ret[h] &&
				     a[RG_STAT_DROP_UNAUTH] == b[RG_STAT_DROP_UNAUTH] + 1 &&
				     a[RG_STAT_RST_SENT] == b[RG_STAT_RST_SENT] + 1,
				     "%s with reject=rst: sent back (ret %u), drop_unauth and rst_sent counted",
				     desc, ret);
				check_rst(desc, v6, vl, pkt, out, olen, 0xfffffff0u + 1 + s.payload);
			}
		}
		/* a SYN as a veth/virtio peer with checksum offload sends it
		 * (CHECKSUM_PARTIAL: the check field holds the pseudo-header
		 * sum): TC answers with the reply's pseudo-header sum for the
		 * device to complete, XDP with the full checksum */
		for (int v6 = 0; v6 < 2; v6++) {
			size_t l4 = 14 + (v6 ? 40 : 20);
			uint32_t ps;
			uint16_t seed;

			s = mk(v6 ? 6 : 4, v6 ? "2001:db8:99::5" : "198.51.100.77",
			       v6 ? "2001:db8::1" : "192.0.2.1", 40101, 587, F_SYN, 9, 12, 0, 0, 0);
			n = craft(pkt, sizeof(pkt), &s);
			ps = v6 ? sum16(pkt + 14 + 8, 32, 0) : sum16(pkt + 14 + 12, 8, 0);
			seed = fold(ps + 6 + (n - l4));
			pkt[l4 + 16] = seed >> 8;
			pkt[l4 + 17] = seed & 0xff;
			err = run(p, pkt, n, out, &olen, &ret);
			seed = fold(ps + 6 + 20);
			if (h)
				t_ok(!err && ret == tx_ret[h] && olen == l4 + 20 &&
				     out[l4 + 16] == seed >> 8 && out[l4 + 17] == (seed & 0xff),
				     "%s: %s SYN with a partial checksum: RST carries the pseudo-header sum",
				     bpf_program__name(p), v6 ? "IPv6" : "IPv4");
			else
				t_ok(!err && ret == tx_ret[h] && olen == l4 + 20 &&
				     tcp_sum(v6, out + 14, out + l4, 20) == 0xffff,
				     "%s: %s SYN with a partial checksum: RST checksum complete",
				     bpf_program__name(p), v6 ? "IPv6" : "IPv4");
		}
		s = mk(4, "198.51.100.77", "192.0.2.1", 40100, 587, F_SYN, 5, 0, 0, 0, 60);
		n = craft(pkt, sizeof(pkt), &s);
		err = run(p, pkt, n, out, &olen, &ret);
		t_ok(!err && ret == tx_ret[h] && olen == 54,
		     "%s: padded 60-byte SYN answered with a 54-byte RST (%u)", bpf_program__name(p),
		     olen);
		s.flags = F_ACK;
		n = craft(pkt, sizeof(pkt), &s);
		expect("reject=rst: stray ACK just dropped", p, pkt, n, drop_ret[h],
		       RG_STAT_DROP_UNAUTH);
		cfg.flags = 0;
		map_set(skel->maps.rg_config, &zero, &cfg);
	}

	ring_buffer__free(rb);
	relaygate__destroy(skel);
	return t_failed;
}
