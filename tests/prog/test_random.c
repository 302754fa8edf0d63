// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Randomised and mutated frames through rg_xdp and rg_tc, judged against a
 * reference classifier written here in plain C from the contract (its own
 * parser, its own model of the maps), and a model-based test of the
 * trusted-subnet LPM tries against a linear scan.
 *
 * Seeded PRNG: the seed is printed; RG_SEED=<n> repeats a run, and
 * RG_RANDOM_COUNT=<n> changes the number of frames (default 1000000).
 *
 * For every frame, through both programs:
 *  - test_run does not fail, and exactly one verdict counter moves by one
 *    (rst_sent too iff a reply was sent);
 *  - the invariant: a frame the reference sees as TCP to a protected port
 *    from a source that is not authorised (no trusted interface, denied or
 *    neither trusted nor granted) never passes, unless it belongs to a
 *    connection admitted earlier (a SYN from an authorised source);
 *  - unless the frame hits one of the few corners the contract leaves open
 *    (see struct ref), verdict and counter are exactly the reference's, and
 *    a reply is the exact RST+ACK;
 *  - xdp and tc agree; a passed frame is unmodified.
 */
#include "harness.h"

#include <inttypes.h>

static int tap_n, tap_failed;

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", ok ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!ok)
		tap_failed = 1;
}

/* --- PRNG: xoshiro256** seeded through splitmix64 ----------------------- */

static uint64_t rs[4];

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rnd_seed(uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		rs[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rnd(void)
{
	uint64_t r = rotl(rs[1] * 5, 7) * 9, t = rs[1] << 17;

	rs[2] ^= rs[0];
	rs[3] ^= rs[1];
	rs[1] ^= rs[2];
	rs[0] ^= rs[3];
	rs[2] ^= t;
	rs[3] = rotl(rs[3], 45);
	return r;
}

/* Uniform in [0, n). */
static uint32_t rn(uint32_t n)
{
	return n ? (uint32_t)(((rnd() >> 32) * n) >> 32) : 0;
}

static bool chance(unsigned pct) { return rn(100) < pct; }

static void rbytes(uint8_t *b, size_t n)
{
	while (n--)
		*b++ = (uint8_t)rnd();
}

/* --- Small fixed-size-key hash sets ------------------------------------- */

struct set {
	size_t ksize, cap, n;
	uint8_t *slots;              /* cap * (1 + ksize): used flag, key */
};

static int set_init(struct set *s, size_t ksize, size_t cap)
{
	s->ksize = ksize;
	s->cap = cap;
	s->n = 0;
	s->slots = calloc(cap, 1 + ksize);
	return s->slots ? 0 : -ENOMEM;
}

static void set_clear(struct set *s)
{
	memset(s->slots, 0, s->cap * (1 + s->ksize));
	s->n = 0;
}

static uint64_t set_hash(const void *k, size_t n)
{
	const uint8_t *p = k;
	uint64_t h = 0xcbf29ce484222325ull;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

/* Returns the slot holding k, or the empty slot where it would go. */
static uint8_t *set_slot(const struct set *s, const void *k)
{
	size_t i = set_hash(k, s->ksize) & (s->cap - 1);

	for (;;) {
		uint8_t *e = s->slots + i * (1 + s->ksize);

		if (!e[0] || !memcmp(e + 1, k, s->ksize))
			return e;
		i = (i + 1) & (s->cap - 1);
	}
}

static bool set_has(const struct set *s, const void *k)
{
	return set_slot(s, k)[0];
}

static void set_add(struct set *s, const void *k)
{
	uint8_t *e;

	if (s->n * 2 >= s->cap)
		return;              /* never reached at our sizes; stay bounded */
	e = set_slot(s, k);
	if (!e[0]) {
		e[0] = 1;
		memcpy(e + 1, k, s->ksize);
		s->n++;
	}
}

/* --- The model of the maps ---------------------------------------------- */

#define NS_1S      1000000000ull
#define NS_1H      (3600 * NS_1S)
#define MAX_TRUST  64
#define MAX_KEYS   512
#define MAX_SRC    512
#define MAX_CONN   4096

static const uint8_t v4mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

struct mprefix {
	uint8_t fam;                 /* RG_AF_INET / RG_AF_INET6 */
	uint8_t addr[16];
	unsigned plen;
	bool live;
};

struct mkey {
	struct rg_addr key;          /* masked */
	bool live;                   /* expires = now + 1h (true) or now - 1s */
};

struct model {
	uint32_t flags;              /* RG_CFG_* as the program sees them */
	unsigned p4, p6;             /* effective prefixes */
	bool tiface;                 /* lo (ifindex 1) is trusted */
	uint8_t prot[65536 / 8];
	struct mprefix trust[MAX_TRUST];
	int ntrust;
	struct mkey grants[MAX_KEYS];
	int ngrants;
	struct mkey denies[MAX_KEYS];
	int ndenies;
	struct set flows;            /* struct rg_flow_key: connections admitted */
	struct set maybe;            /* struct rg_addr: authorised sources that sent
				      * frames the reference cannot pin down */
};

static bool m_prot(const struct model *m, uint16_t port)
{
	return m->prot[port / 8] & (1u << (port % 8));
}

static bool prefix_has(const uint8_t *net, unsigned plen, const uint8_t *a)
{
	unsigned i;

	for (i = 0; i < plen / 8; i++)
		if (net[i] != a[i])
			return false;
	if (plen % 8)
		return !((net[i] ^ a[i]) & (0xff00u >> (plen % 8)));
	return true;
}

static bool m_trusted(const struct model *m, const struct rg_addr *src)
{
	int i;

	for (i = 0; i < m->ntrust; i++)
		if (m->trust[i].live && m->trust[i].fam == src->family &&
		    prefix_has(m->trust[i].addr, m->trust[i].plen, src->addr))
			return true;
	return false;
}

static void masked(const struct model *m, const struct rg_addr *src, struct rg_addr *k)
{
	*k = *src;
	h_mask(k->addr, 16, src->family == RG_AF_INET ? m->p4 : m->p6);
}

static const struct mkey *m_find(const struct mkey *v, int n, const struct rg_addr *k)
{
	int i;

	for (i = 0; i < n; i++)
		if (!memcmp(&v[i].key, k, sizeof(*k)))
			return &v[i];
	return NULL;
}

static bool m_live(const struct mkey *v, int n, const struct rg_addr *k)
{
	const struct mkey *e = m_find(v, n, k);

	return e && e->live;
}

/* --- The reference classifier ------------------------------------------- */

/*
 * What the contract says a frame gets. amb marks the corners the contract
 * leaves open, where only the invariant is checked:
 *  - an IPsec AH header on the way to the transport header;
 *  - a frame that is not a SYN of a flow the reference does not know, from
 *    a source that earlier sent such an open-corner frame while authorised
 *    (the program may have admitted a connection there).
 * rst_amb: a dropped SYN whose IP length fields disagree with the frame, or
 * an IPv4 first fragment: a reply and a plain drop are both acceptable.
 */
struct ref {
	int stat;
	bool amb, rst, rst_amb;
	bool judged;                 /* TCP to a protected port: authorisation ran */
	bool has_src;                /* the IP header was read */
	bool syn, authorised;
	bool v6;
	size_t l3, l4;
	struct rg_addr src;          /* canonical (IPv4-mapped folded) */
	struct rg_flow_key fk;
};

static bool ref_is_vlan(uint16_t et) { return et == PKT_ETH_8021Q || et == PKT_ETH_8021AD; }

/*
 * The contract, read plainly. Where it is silent, the fail-closed reading:
 * an IP header whose version does not match its ethertype is malformed (the
 * kernel drops it anyway); a TCP header cut after its ports, or with a bad
 * doff, is malformed only when the port it names is protected (the port is
 * what makes a frame ours); IP length fields are not judged (the bytes
 * present are), except for whether a reply's ack is defined (rst_amb).
 */
static void ref_judge(const struct model *m, const uint8_t *b, size_t len, struct ref *r)
{
	size_t off = 12, l3, l4 = 0;
	uint16_t et, dport, sport;
	int tags = 0, next = 0, n;
	bool opts = false, v4frag = false, rst_amb = false;
	struct rg_addr key;
	uint8_t nh, flags;

	memset(r, 0, sizeof(*r));
	r->stat = RG_STAT_PASS_UNPROTECTED;

	/* Ethernet and at most two tags; a third is malformed, a cut tag too. */
	et = pkt_get16(b, 12);
	while (ref_is_vlan(et)) {
		if (tags == 2 || off + 6 > len)
			goto malformed;
		et = pkt_get16(b, off + 4);
		off += 4;
		tags++;
	}
	l3 = off + 2;
	r->l3 = l3;
	if (et == PKT_ETH_IP) {
		unsigned ihl;
		uint16_t fo;

		if (l3 + 20 > len)
			goto malformed;
		ihl = b[l3] & 0x0f;
		if (b[l3] >> 4 != 4 || ihl < 5 || l3 + ihl * 4 > len)
			goto malformed;
		fo = pkt_get16(b, l3 + 6);
		if (fo & 0x1fff)
			return;                         /* non-first fragment */
		v4frag = fo & 0x2000;
		opts = ihl > 5;
		next = b[l3 + 9];
		l4 = l3 + ihl * 4;
		r->src.family = RG_AF_INET;
		memcpy(r->src.addr, b + l3 + 12, 4);
		r->fk.family = RG_AF_INET;
		memcpy(r->fk.saddr, b + l3 + 12, 4);
		memcpy(r->fk.daddr, b + l3 + 16, 4);
		{
			uint16_t tot = pkt_get16(b, l3 + 2);

			rst_amb = v4frag || tot > len - l3;
		}
	} else if (et == PKT_ETH_IPV6) {
		if (l3 + 40 > len || b[l3] >> 4 != 6)
			goto malformed;
		r->v6 = true;
		nh = b[l3 + 6];
		off = l3 + 40;
		for (n = 0;; n++) {
			if (nh != PKT_IPPROTO_HOPOPTS && nh != PKT_IPPROTO_ROUTING &&
			    nh != PKT_IPPROTO_DSTOPTS && nh != PKT_IPPROTO_FRAGMENT && nh != 51)
				break;
			if (n == 8)
				goto malformed;         /* chain too long to walk */
			if (nh == 51) {
				r->amb = true;          /* AH: not in the contract */
				break;
			}
			opts = true;
			if (nh == PKT_IPPROTO_FRAGMENT) {
				if (off + 8 > len)
					goto malformed;
				if (pkt_get16(b, off + 2) & 0xfff8)
					return;         /* non-first fragment */
				nh = b[off];
				off += 8;
			} else {
				if (off + 2 > len)
					goto malformed;
				nh = b[off];
				off += ((size_t)b[off + 1] + 1) * 8;
			}
		}
		next = nh;
		l4 = off;
		if (!memcmp(b + l3 + 8, v4mapped_prefix, 12)) {
			r->src.family = RG_AF_INET;
			memcpy(r->src.addr, b + l3 + 8 + 12, 4);
			r->fk.family = RG_AF_INET;
			memcpy(r->fk.saddr, b + l3 + 20, 4);
			if (!memcmp(b + l3 + 24, v4mapped_prefix, 12))
				memcpy(r->fk.daddr, b + l3 + 36, 4);
			else
				memcpy(r->fk.daddr, b + l3 + 24, 16);
		} else {
			r->src.family = RG_AF_INET6;
			memcpy(r->src.addr, b + l3 + 8, 16);
			r->fk.family = RG_AF_INET6;
			memcpy(r->fk.saddr, b + l3 + 8, 16);
			memcpy(r->fk.daddr, b + l3 + 24, 16);
		}
		rst_amb = pkt_get16(b, l3 + 4) > len - l3 - 40;
	} else {
		return;                                 /* not IP */
	}
	if (next == 51)
		r->amb = true;                          /* AH over IPv4 */

	/* Is the source authorised at all (for the invariant and the model)? */
	masked(m, &r->src, &key);
	r->has_src = true;
	r->authorised = m->tiface ||
			((m_trusted(m, &r->src) || m_live(m->grants, m->ngrants, &key)) &&
			 !m_live(m->denies, m->ndenies, &key));
	if (next != PKT_IPPROTO_TCP)
		return;
	r->l4 = l4;

	/* TCP: the port decides whether we care; then the header must be whole. */
	if (l4 + 4 > len)
		goto malformed;
	sport = pkt_get16(b, l4);
	dport = pkt_get16(b, l4 + 2);
	if (!m_prot(m, dport))
		return;
	if (l4 + 20 > len || b[l4 + 12] >> 4 < 5 || l4 + (size_t)(b[l4 + 12] >> 4) * 4 > len)
		goto malformed;
	flags = b[l4 + 13];
	r->syn = (flags & (PKT_TCP_SYN | PKT_TCP_ACK)) == PKT_TCP_SYN;
	r->fk.sport = sport;
	r->fk.dport = dport;
	r->judged = true;

	/* A reply's length fields must make sense for its ack to be defined. */
	{
		size_t doff = (size_t)(b[l4 + 12] >> 4) * 4;

		if (r->v6)
			rst_amb = rst_amb || pkt_get16(b, l3 + 4) < doff;
		else
			rst_amb = rst_amb || pkt_get16(b, l3 + 2) < 20 + doff;
	}

	/* Authorisation, in the contract's order. */
	if (m->tiface) {
		r->stat = RG_STAT_PASS_IFACE;
		return;
	}
	if (m_live(m->denies, m->ndenies, &key)) {
		r->stat = RG_STAT_DROP_DENIED;   /* never answered */
		return;
	}
	if (m_trusted(m, &r->src)) {
		r->stat = RG_STAT_PASS_TRUSTED;
		return;
	}
	if (m_live(m->grants, m->ngrants, &key)) {
		r->stat = RG_STAT_PASS_GRANT;
		return;
	}
	if (!r->syn) {
		if (set_has(&m->flows, &r->fk)) {
			r->stat = RG_STAT_PASS_FLOW;
			return;
		}
		if (set_has(&m->maybe, &r->src))
			r->amb = true;
	}
	r->stat = RG_STAT_DROP_UNAUTH;
	if (r->syn && (m->flags & RG_CFG_REJECT_RST) && !opts) {
		r->rst = true;
		r->rst_amb = rst_amb;
	}
	return;
malformed:
	r->stat = RG_STAT_DROP_MALFORMED;
	r->judged = false;
}

/* After judging: an admitted SYN opens its connection in the model. */
static void ref_commit(struct model *m, const struct ref *r)
{
	if (!r->has_src || !r->authorised)
		return;
	if (r->amb) {
		set_add(&m->maybe, &r->src);
		return;
	}
	if (r->judged && r->syn &&
	    (r->stat == RG_STAT_PASS_TRUSTED || r->stat == RG_STAT_PASS_GRANT))
		set_add(&m->flows, &r->fk);
}

/* --- The test world: sources, servers, connections ---------------------- */

enum kind { K_TRUSTED, K_GRANT, K_GRANT_OLD, K_DENY, K_DENY_OLD, K_UNKNOWN, K_EDGE, K_NKIND };

struct src {
	uint8_t fam;                 /* 4 or 6 (the packet's family) */
	uint8_t addr[16];
};

struct conn {
	struct src s;
	bool mapped;                 /* IPv6 frame with the IPv4 source mapped */
	uint8_t dst[16];
	uint16_t sport, dport;
};

struct world {
	struct harness *h;
	struct model m;
	struct src pool[K_NKIND][MAX_SRC];
	int npool[K_NKIND];
	struct conn conns[MAX_CONN]; /* connections opened so far (ring) */
	unsigned nconns;
	uint16_t ports[3];           /* protected */
};

static const char *const servers4[] = { "192.0.2.1", "192.0.2.2" };
static const char *const servers6[] = { "2001:db8::1", "2001:db8::25" };
static const uint16_t unprot_ports[] = { 25, 80, 443, 993, 995, 110, 143, 8080 };

static void rand_in(uint8_t *out, const uint8_t *net, unsigned plen, unsigned bytes)
{
	unsigned i;

	rbytes(out, bytes);
	for (i = 0; i < bytes; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;
		uint8_t keep = bits >= 8 ? 0xff : (uint8_t)(0xff00u >> bits);

		out[i] = (uint8_t)((net[i] & keep) | (out[i] & ~keep));
	}
}

static void world_src_add(struct world *w, enum kind k, const struct src *s)
{
	if (w->npool[k] < MAX_SRC)
		w->pool[k][w->npool[k]++] = *s;
}

static int w_trust(struct world *w, const char *cidr)
{
	struct mprefix *t = &w->m.trust[w->m.ntrust];
	char buf[64], *slash;
	struct rg_addr a;

	if (w->m.ntrust >= MAX_TRUST)
		return -ENOSPC;
	snprintf(buf, sizeof(buf), "%s", cidr);
	slash = strchr(buf, '/');
	*slash = 0;
	h_addr(&a, buf);
	t->fam = a.family;
	memcpy(t->addr, a.addr, 16);
	t->plen = (unsigned)atoi(slash + 1);
	h_mask(t->addr, 16, t->plen);
	t->live = true;
	w->m.ntrust++;
	return h_trust(w->h, cidr);
}

static int w_trust_set(struct world *w, int i, bool live)
{
	struct mprefix *t = &w->m.trust[i];
	int err;

	if (live) {
		err = h_trust_raw(w->h, t->fam, t->addr, t->plen);
	} else if (t->fam == RG_AF_INET) {
		struct rg_lpm4 k = { .prefixlen = t->plen };

		memcpy(k.addr, t->addr, 4);
		err = bpf_map_delete_elem(w->h->trust4_fd, &k) ? -errno : 0;
	} else {
		struct rg_lpm6 k = { .prefixlen = t->plen };

		memcpy(k.addr, t->addr, 16);
		err = bpf_map_delete_elem(w->h->trust6_fd, &k) ? -errno : 0;
	}
	if (!err)
		t->live = live;
	return err;
}

static void src_key(const struct world *w, const struct src *s, struct rg_addr *k)
{
	struct rg_addr a = { .family = s->fam };

	memcpy(a.addr, s->addr, s->fam == RG_AF_INET ? 4 : 16);
	masked(&w->m, &a, k);
}

/* Put (or overwrite) a grant/deny for the source's masked key. */
static int w_key_set(struct world *w, bool deny, const struct src *s, bool live)
{
	struct mkey *v = deny ? w->m.denies : w->m.grants;
	int *n = deny ? &w->m.ndenies : &w->m.ngrants;
	uint64_t exp = live ? h_now() + NS_1H : h_now() - NS_1S;
	struct mkey *e;
	struct rg_addr k;

	src_key(w, s, &k);
	e = (struct mkey *)m_find(v, *n, &k);
	if (!e) {
		if (*n >= MAX_KEYS)
			return 0;
		e = &v[(*n)++];
		e->key = k;
	}
	e->live = live;
	return deny ? h_deny_key(w->h, &k, exp) : h_grant_key(w->h, &k, exp);
}

static void rand_src(struct src *s, bool v6)
{
	static const uint8_t n4[4] = { 100, 64, 0, 0 };        /* 100.64.0.0/10 */
	uint8_t n6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x20 };     /* 2001:db8:2000::/36 */
	/* fd00:5000::/20: 4096 different top 32 bits, so IPv6 sources fall in
	 * many summary slots (the /36 above is one slot) */
	uint8_t n6b[16] = { 0xfd, 0x00, 0x50 };

	memset(s, 0, sizeof(*s));
	s->fam = v6 ? RG_AF_INET6 : RG_AF_INET;
	if (v6 && rn(2))
		rand_in(s->addr, n6b, 20, 16);
	else if (v6)
		rand_in(s->addr, n6, 36, 16);
	else
		rand_in(s->addr, n4, 10, 4);
}

/*
 * A fresh world for one phase: maps reset to (flags, prefixes), trusted
 * subnets, source pools with grants and denies (live and expired), and
 * connections pre-admitted for unauthorised sources (the flows of grants
 * that have expired since).
 */
static int world_init(struct world *w, uint32_t flags, unsigned p4, unsigned p6,
		      bool unconfigured, bool tiface)
{
	static const char *const trusts[] = {
		"10.20.0.0/16", "10.21.5.0/24", "198.18.7.77/32", "172.16.0.0/12",
		"10.21.5.128/25", "2001:db8:aa::/48", "2001:db8:bb:1::/64",
		"2001:db8:cc::5/128", "2001:db8:aa:8000::/49", "fd00:1::/32",
		"2001:db8:ee40::/44",
	};
	struct harness *h = w->h;
	int err, i, k;
	unsigned t;

	err = h_reset(h);
	if (unconfigured) {
		struct rg_config c = { 0 };

		err = err ?: h_config(h, &c);
		flags = 0;
		p4 = 32;
		p6 = 64;
	} else {
		err = err ?: h_cfg(h, flags, p4, p6);
	}
	w->m.flags = flags;
	w->m.p4 = p4;
	w->m.p6 = p6;
	w->m.tiface = tiface;
	if (tiface)
		err = err ?: h_tiface(h, H_IFINDEX_LO);
	memset(w->m.prot, 0, sizeof(w->m.prot));
	w->ports[0] = 465;
	w->ports[1] = 587;
	w->ports[2] = (uint16_t)(2000 + rn(60000));
	for (i = 0; i < 3; i++) {
		err = err ?: h_port(h, w->ports[i], true);
		w->m.prot[w->ports[i] / 8] |= (uint8_t)(1u << (w->ports[i] % 8));
	}
	w->m.ntrust = w->m.ngrants = w->m.ndenies = 0;
	set_clear(&w->m.flows);
	set_clear(&w->m.maybe);
	memset(w->npool, 0, sizeof(w->npool));
	w->nconns = 0;
	for (t = 0; t < sizeof(trusts) / sizeof(trusts[0]); t++)
		err = err ?: w_trust(w, trusts[t]);
	if (err)
		return err;

	for (k = 0; k < K_NKIND; k++) {
		for (i = 0; i < 48; i++) {
			struct src s;
			bool v6 = i & 1;

			rand_src(&s, v6);
			switch (k) {
			case K_TRUSTED: {
				const struct mprefix *tp = &w->m.trust[rn(w->m.ntrust)];

				s.fam = tp->fam;
				rand_in(s.addr, tp->addr, tp->plen, tp->fam == RG_AF_INET ? 4 : 16);
				if (s.fam == RG_AF_INET)
					memset(s.addr + 4, 0, 12);
				break;
			}
			case K_GRANT:
				err = err ?: w_key_set(w, false, &s, true);
				break;
			case K_GRANT_OLD:
				err = err ?: w_key_set(w, false, &s, false);
				break;
			case K_DENY:
				/* denied, and half of them granted too: deny wins */
				if (i % 4 < 2)
					err = err ?: w_key_set(w, false, &s, true);
				err = err ?: w_key_set(w, true, &s, true);
				break;
			case K_DENY_OLD:
				if (i % 4 < 2)
					err = err ?: w_key_set(w, false, &s, true);
				err = err ?: w_key_set(w, true, &s, false);
				break;
			case K_EDGE: {
				/* one address outside a trusted prefix, just past either end */
				const struct mprefix *tp = &w->m.trust[rn(w->m.ntrust)];
				unsigned bytes = tp->fam == RG_AF_INET ? 4 : 16;
				int j;

				if (!tp->plen)
					break;
				s.fam = tp->fam;
				memset(s.addr, 0, 16);
				memcpy(s.addr, tp->addr, bytes);
				if (chance(50)) {
					/* first - 1: borrow through the zero host bits */
					for (j = (int)bytes - 1; j >= 0 && s.addr[j]-- == 0; j--)
						;
				} else {
					/* last + 1: set host bits, then carry */
					for (j = (int)bytes - 1;
					     j >= 0 && (unsigned)j * 8 >= tp->plen; j--)
						s.addr[j] = 0xff;
					if (j >= 0 && tp->plen % 8)
						s.addr[j] |= (uint8_t)(0xffu >> (tp->plen % 8));
					for (j = (int)bytes - 1; j >= 0 && ++s.addr[j] == 0; j--)
						;
				}
				break;
			}
			default:
				break;
			}
			world_src_add(w, (enum kind)k, &s);
		}
	}
	if (err)
		return err;

	/* Connections admitted before their grant expired. */
	for (i = 0; i < 64; i++) {
		struct conn *c = &w->conns[w->nconns++ % MAX_CONN];
		struct rg_flow_key fk = { 0 };

		c->s = w->pool[K_UNKNOWN][rn(w->npool[K_UNKNOWN])];
		c->mapped = false;
		memset(c->dst, 0, 16);
		if (c->s.fam == RG_AF_INET)
			pkt_addr4(c->dst, servers4[rn(2)]);
		else
			pkt_addr6(c->dst, servers6[rn(2)]);
		c->sport = (uint16_t)(32768 + rn(28000));
		c->dport = w->ports[rn(3)];
		fk.family = c->s.fam;
		memcpy(fk.saddr, c->s.addr, c->s.fam == RG_AF_INET ? 4 : 16);
		memcpy(fk.daddr, c->dst, c->s.fam == RG_AF_INET ? 4 : 16);
		fk.sport = c->sport;
		fk.dport = c->dport;
		err = err ?: h_flow_key(h, &fk);
		set_add(&w->m.flows, &fk);
	}
	return err;
}

/* Now and then the world changes: grants expire and appear, denies come
 * and go, a trusted subnet is withdrawn or restored. Connections opened
 * while a grant lived must keep passing after it expired. */
static int world_churn(struct world *w)
{
	int err = 0, i;

	for (i = 0; i < 3 && w->m.ngrants; i++) {
		struct mkey *g = &w->m.grants[rn(w->m.ngrants)];
		uint64_t exp = g->live ? h_now() - NS_1S : h_now() + NS_1H;

		err = err ?: h_grant_key(w->h, &g->key, exp);
		g->live = !g->live;
	}
	if (w->npool[K_UNKNOWN])
		err = err ?: w_key_set(w, false, &w->pool[K_UNKNOWN][rn(w->npool[K_UNKNOWN])],
				       true);
	if (w->m.ndenies) {
		struct mkey *d = &w->m.denies[rn(w->m.ndenies)];
		uint64_t exp = d->live ? h_now() - NS_1S : h_now() + NS_1H;

		err = err ?: h_deny_key(w->h, &d->key, exp);
		d->live = !d->live;
	}
	if (w->nconns && chance(50)) {
		/* deny the source of an open connection: deny beats flows */
		const struct conn *c = &w->conns[rn(w->nconns < MAX_CONN ? w->nconns : MAX_CONN)];

		err = err ?: w_key_set(w, true, &c->s, true);
	}
	if (chance(30)) {
		i = (int)rn(w->m.ntrust);
		err = err ?: w_trust_set(w, i, !w->m.trust[i].live);
	}
	return err;
}

/* --- Generating frames -------------------------------------------------- */

static uint8_t rnd_payload[2048];

static void fill_tcp(struct pkt *p)
{
	static const uint8_t flagset[] = {
		PKT_TCP_SYN, PKT_TCP_SYN, PKT_TCP_SYN, PKT_TCP_SYN, PKT_TCP_ACK, PKT_TCP_ACK,
		PKT_TCP_ACK | PKT_TCP_PSH, PKT_TCP_FIN | PKT_TCP_ACK, PKT_TCP_RST,
		PKT_TCP_RST | PKT_TCP_ACK, PKT_TCP_SYN | PKT_TCP_ACK,
		PKT_TCP_SYN | PKT_TCP_ECE | PKT_TCP_CWR,
	};

	p->tcp_flags = chance(12) ? (uint8_t)rnd() : flagset[rn(sizeof(flagset))];
	p->seq = (uint32_t)rnd();
	p->ack = p->tcp_flags & PKT_TCP_ACK ? (uint32_t)rnd() : 0;
	p->window = (uint16_t)rnd();
	if (chance(30)) {
		p->tcpoptlen = (int)rn(11) * 4;
		rbytes(p->tcpopt, (size_t)p->tcpoptlen);
	}
}

static void set_addrs(struct pkt *p, const struct src *s, bool mapped, const uint8_t *dst)
{
	if (s->fam == RG_AF_INET && !mapped) {
		pkt_init(p, PKT_L3_IPV4);
		memcpy(p->src4, s->addr, 4);
		memcpy(p->dst4, dst, 4);
	} else {
		pkt_init(p, PKT_L3_IPV6);
		if (mapped) {
			memcpy(p->src6, v4mapped_prefix, 12);
			memcpy(p->src6 + 12, s->addr, 4);
		} else {
			memcpy(p->src6, s->addr, 16);
		}
		memcpy(p->dst6, dst, 16);
	}
}

/* A frame in p: mostly TCP to the gate from the pools, with every header
 * variation the parser must handle. */
static void gen_frame(struct world *w, struct pkt *p, bool *from_conn)
{
	static const uint8_t exts[] = {
		PKT_IPPROTO_HOPOPTS, PKT_IPPROTO_ROUTING, PKT_IPPROTO_DSTOPTS, PKT_IPPROTO_FRAGMENT,
	};
	uint8_t dst[16] = { 0 };
	struct src s;
	bool mapped = false;
	unsigned r = rn(100), i;

	*from_conn = false;
	if (r < 3) {
		pkt_init(p, PKT_L3_ARP);
		rbytes(p->src4, 4);
		rbytes(p->dst4, 4);
		goto l2;
	}
	if (r < 6) {
		pkt_init(p, PKT_L3_NONE);
		p->ethertype = (uint16_t)rnd();
		p->payload = rnd_payload;
		p->paylen = (int)rn(100);
		goto l2;
	}
	if (r < 20 && w->nconns) {
		/* a frame of a known connection */
		const struct conn *c = &w->conns[rn(w->nconns < MAX_CONN ? w->nconns : MAX_CONN)];

		set_addrs(p, &c->s, c->mapped, c->dst);
		p->sport = c->sport;
		p->dport = c->dport;
		fill_tcp(p);
		if (chance(80))
			p->tcp_flags = chance(50) ? PKT_TCP_ACK : PKT_TCP_ACK | PKT_TCP_PSH;
		*from_conn = true;
		goto l3opts;
	}
	{
		enum kind k = (enum kind)rn(K_NKIND);

		if (!w->npool[k])
			k = K_UNKNOWN;
		s = w->pool[k][rn(w->npool[k])];
	}
	if (s.fam == RG_AF_INET) {
		mapped = chance(8);
		if (mapped)
			pkt_addr6(dst, servers6[rn(2)]);
		else
			pkt_addr4(dst, servers4[rn(2)]);
	} else {
		pkt_addr6(dst, servers6[rn(2)]);
	}
	set_addrs(p, &s, mapped, dst);
	r = rn(100);
	if (r < 85) {
		p->l4 = PKT_L4_TCP;
		p->sport = (uint16_t)(32768 + rn(28000));
		p->dport = chance(80) ? w->ports[rn(3)] : unprot_ports[rn(8)];
		fill_tcp(p);
	} else if (r < 92) {
		p->l4 = PKT_L4_UDP;
		p->sport = (uint16_t)rnd();
		p->dport = chance(50) ? w->ports[rn(3)] : (uint16_t)rnd();
	} else if (r < 97) {
		p->l4 = PKT_L4_ICMP;
	} else {
		p->l4 = PKT_L4_NONE;
		p->proto_set = true;
		p->proto = (uint8_t)rnd();
	}
l3opts:
	if (p->l3 == PKT_L3_IPV4) {
		if (chance(10)) {
			p->ipoptlen = 4 * (int)(1 + rn(10));
			if (chance(50))
				memset(p->ipopt, 1, (size_t)p->ipoptlen);
			else
				rbytes(p->ipopt, (size_t)p->ipoptlen);
		}
		if (chance(6)) {
			p->df = false;
			p->mf = chance(60);
			p->frag_off = chance(50) ? 0 : (uint16_t)(1 + rn(8000));
			if (p->frag_off) {
				p->l4 = PKT_L4_RAW;
				p->proto_set = true;
				p->proto = PKT_IPPROTO_TCP;
			}
		}
	} else if (chance(15)) {
		unsigned n = 1 + rn(10);

		for (i = 0; i < n; i++) {
			uint8_t t = i == 0 && chance(50) ? PKT_IPPROTO_HOPOPTS : exts[rn(4)];

			if (t == PKT_IPPROTO_FRAGMENT)
				pkt_frag6_add(p, chance(60) ? 0 : (uint16_t)(1 + rn(8000)),
					      chance(50));
			else
				pkt_ext_add(p, t, (uint8_t)rn(4));
		}
	}
	if (chance(40)) {
		p->payload = rnd_payload + rn(512);
		p->paylen = (int)rn(300);
	}
l2:
	r = rn(100);
	if (r < 18) {
		pkt_vlan(p, PKT_ETH_8021Q, (uint16_t)rn(4096));
	} else if (r < 28) {
		pkt_vlan(p, chance(70) ? PKT_ETH_8021AD : PKT_ETH_8021Q, (uint16_t)rn(4096));
		pkt_vlan(p, PKT_ETH_8021Q, (uint16_t)rn(4096));
	} else if (r < 30) {
		for (i = 0; i < 3; i++)
			pkt_vlan(p, chance(50) ? PKT_ETH_8021AD : PKT_ETH_8021Q,
				 (uint16_t)rn(4096));
	}
	if (chance(8))
		p->trailer = (int)(1 + rn(8));
}

/* Damage a built frame: cut it, flip bits, poke header fields with the
 * values parsers get wrong. Returns the new length (>= 14). */
static size_t mutate(uint8_t *b, size_t len, size_t cap, const struct pkt_layout *lo)
{
	static const uint16_t ethertypes[] = {
		PKT_ETH_IP, PKT_ETH_IPV6, PKT_ETH_8021Q, PKT_ETH_8021AD,
		PKT_ETH_ARP, 0x9100, 0x8847, 0,
	};
	static const uint8_t protos[] = { 0, 6, 17, 1, 43, 44, 51, 50, 58, 59, 60, 255 };
	int n = 1 + (int)rn(3);

	while (n--) {
		size_t at;

		switch (rn(11)) {
		case 0:                 /* cut */
			len = 14 + rn((uint32_t)(len - 14 + 1));
			break;
		case 1:                 /* flip a header bit */
			at = rn((uint32_t)(len < 128 ? len : 128));
			b[at] ^= (uint8_t)(1u << rn(8));
			break;
		case 2:                 /* any byte */
			b[rn((uint32_t)len)] = (uint8_t)rnd();
			break;
		case 3:                 /* IPv4 ihl / version nibble */
			if (lo->l3 < len && chance(80))
				b[lo->l3] = (uint8_t)((b[lo->l3] & 0xf0) | rn(16));
			else if (lo->l3 < len)
				b[lo->l3] = (uint8_t)((rn(16) << 4) | (b[lo->l3] & 0x0f));
			break;
		case 4:                 /* TCP doff */
			if (lo->l4 + 12 < len)
				b[lo->l4 + 12] = (uint8_t)((rn(16) << 4) | (b[lo->l4 + 12] & 0x0f));
			break;
		case 5:                 /* an ethertype or tag */
			at = 12 + 4 * rn((uint32_t)((lo->l3 - 12) / 4 + 1));
			if (at + 1 < len)
				pkt_put16(b, at, ethertypes[rn(sizeof(ethertypes) / 2)]);
			break;
		case 6:                 /* the protocol / next header */
			at = pkt_get16(b, lo->l3 - 2) == PKT_ETH_IPV6 ? lo->l3 + 6 : lo->l3 + 9;
			if (at < len)
				b[at] = protos[rn(sizeof(protos))];
			break;
		case 7:                 /* fragment bits */
			if (lo->l3 + 7 < len && pkt_get16(b, lo->l3 - 2) == PKT_ETH_IP)
				pkt_put16(b, lo->l3 + 6, (uint16_t)(chance(50) ? 0x2000 : rnd()));
			else if (lo->l3 + 43 < len)
				b[lo->l3 + 40 + rn(4)] = (uint8_t)rnd();
			break;
		case 8:                 /* grow */
			if (len + 64 <= cap) {
				rbytes(b + len, 64);
				len += rn(65);
			}
			break;
		case 9:                 /* TCP flags */
			if (lo->l4 + 13 < len)
				b[lo->l4 + 13] = (uint8_t)rnd();
			break;
		default:                /* IP length fields */
			at = lo->l3 + (pkt_get16(b, lo->l3 - 2) == PKT_ETH_IPV6 ? 4 : 2);
			if (lo->l3 + 5 < len)
				pkt_put16(b, at, (uint16_t)(chance(50) ? rn(80) : rnd()));
			break;
		}
	}
	return len;
}

/* --- Running and checking ------------------------------------------------ */

struct tally {
	uint64_t frames, runs, mutated, run_err, count_err, invariant, mismatch, disagree;
	uint64_t rst_checked, rst_bad, modified, amb, judged;
	uint64_t by_stat[RG_STAT_MAX];
	int shown;
};

static int moved_stat(const struct rg_counter *a, const struct rg_counter *b, bool *rst, bool *ok)
{
	int s, got = -1, n = 0;

	*ok = true;
	for (s = 0; s < RG_VERDICT_MAX; s++) {
		uint64_t d = b[s].packets - a[s].packets;

		if (d) {
			n++;
			got = s;
			if (d != 1)
				*ok = false;
		}
	}
	if (n != 1)
		*ok = false;
	*rst = b[RG_STAT_RST_SENT].packets - a[RG_STAT_RST_SENT].packets == 1;
	if (b[RG_STAT_RST_SENT].packets - a[RG_STAT_RST_SENT].packets > 1)
		*ok = false;
	return got;
}

static void show(struct tally *t, const char *why, enum h_prog prog, const uint8_t *f, size_t len,
		 const struct ref *r, const struct h_result *res, int stat)
{
	if (t->shown++ >= 12)
		return;
	printf("# %s: %s: got %s/%s, reference %s%s%s\n", h_prog_name[prog], why,
	       h_verdict_name[res->verdict], stat >= 0 ? h_stat_name[stat] : "?",
	       h_stat_name[r->stat], r->amb ? " (open corner)" : "",
	       r->rst ? (r->rst_amb ? " rst?" : " rst") : "");
	pkt_hexdump("frame", f, len);
	if (res->verdict == HV_TX)
		pkt_hexdump("reply", res->out, res->out_len);
}

/* The TC program seeds the checksum of a reply whose SYN looks like a
 * CHECKSUM_PARTIAL skb (check field == folded pseudo-header sum); a full
 * checksum hits that signature by chance once in 65536 SYNs. */
static bool looks_partial(const uint8_t *f, const struct ref *r)
{
	uint32_t seglen, sum;
	uint16_t check = pkt_get16(f, r->l4 + 16), seed;

	if (r->v6) {
		seglen = pkt_get16(f, r->l3 + 4);
		sum = pkt_pseudo(f + r->l3 + 8, f + r->l3 + 24, 16, PKT_IPPROTO_TCP, seglen);
	} else {
		seglen = pkt_get16(f, r->l3 + 2) - 20u;
		sum = pkt_pseudo(f + r->l3 + 12, f + r->l3 + 16, 4, PKT_IPPROTO_TCP, seglen);
	}
	seed = (uint16_t)~pkt_fold(sum);
	return check == seed;
}

/* One frame through one program; returns the counter that moved. */
static int run_check(struct world *w, struct tally *t, enum h_prog prog, const uint8_t *f,
		     size_t len, const struct ref *r, struct rg_counter *before,
		     struct h_result *res, bool judge)
{
	struct rg_counter after[RG_STAT_MAX];
	bool rst, cnt_ok, want_tx;
	int stat;

	t->runs++;
	if (h_run(w->h, prog, f, len, H_IFINDEX_LO, res)) {
		t->run_err++;
		show(t, "test_run failed", prog, f, len, r, res, -1);
		return -1;
	}
	if (h_stats(w->h, after)) {
		t->run_err++;
		return -1;
	}
	stat = moved_stat(before, after, &rst, &cnt_ok);
	memcpy(before, after, sizeof(after));
	if (!cnt_ok || rst != (res->verdict == HV_TX) || res->verdict == HV_OTHER) {
		t->count_err++;
		show(t, "counters", prog, f, len, r, res, stat);
		return stat;
	}
	if (!judge)
		return stat;

	/* The invariant. */
	if ((r->stat == RG_STAT_DROP_UNAUTH || r->stat == RG_STAT_DROP_DENIED) &&
	    res->verdict == HV_PASS && !(r->amb && stat == RG_STAT_PASS_FLOW &&
					 r->stat == RG_STAT_DROP_UNAUTH)) {
		t->invariant++;
		show(t, "INVARIANT: an unauthorised frame to a protected port passed", prog, f, len,
		     r, res, stat);
	}
	if (res->verdict == HV_PASS && (res->out_len != len || memcmp(res->out, f, len))) {
		t->modified++;
		show(t, "passed frame modified", prog, f, len, r, res, stat);
	}
	if (r->amb)
		return stat;

	/* Exactly the reference. */
	want_tx = r->rst && !r->rst_amb;
	if (stat != r->stat ||
	    (r->stat >= RG_STAT_PASS_IFACE && r->stat <= RG_STAT_PASS_FLOW &&
	     res->verdict != HV_PASS) ||
	    (r->stat == RG_STAT_PASS_UNPROTECTED && res->verdict != HV_PASS) ||
	    (r->stat >= RG_STAT_DROP_DENIED && r->stat <= RG_STAT_DROP_MALFORMED &&
	     (res->verdict == HV_PASS || (want_tx && res->verdict != HV_TX) ||
	      (!r->rst && res->verdict == HV_TX)))) {
		t->mismatch++;
		show(t, "differs from the reference", prog, f, len, r, res, stat);
		return stat;
	}
	if (want_tx) {
		struct pkt_layout lo = { .len = len, .l3 = r->l3, .l4 = r->l4 };
		bool csum = prog == H_XDP || !looks_partial(f, r);
		int bad;

		t->rst_checked++;
		bad = pkt_check_rst_csum(f, &lo, res->out, res->out_len, csum);
		if (bad) {
			t->rst_bad++;
			show(t, "wrong rst reply", prog, f, len, r, res, stat);
		}
	}
	return stat;
}

static bool tc_refuses(const uint8_t *b, size_t len)
{
	uint16_t et = pkt_get16(b, 12);

	return (et == PKT_ETH_IP && len < 14 + 20) || (et == PKT_ETH_IPV6 && len < 14 + 40);
}

static int run_phase(struct world *w, struct tally *t, uint64_t frames)
{
	static struct h_result rx, rt;
	static uint8_t f[PKT_MAX + 128];
	struct rg_counter before[RG_STAT_MAX];
	struct pkt_layout lo;
	struct pkt p;
	struct ref r;
	uint64_t i;
	bool from_conn;
	int sx, st;

	if (h_stats(w->h, before))
		return -EIO;
	for (i = 0; i < frames; i++) {
		size_t len;
		bool mutated = chance(35);

		if (i && i % 20000 == 0 && world_churn(w))
			return -EIO;
		gen_frame(w, &p, &from_conn);
		len = pkt_build(&p, f, PKT_MAX, &lo);
		if (!len)
			continue;
		if (mutated) {
			len = mutate(f, len, PKT_MAX, &lo);
			t->mutated++;
		}
		t->frames++;
		ref_judge(&w->m, f, len, &r);
		t->amb += r.amb;
		t->judged += r.judged;
		t->by_stat[r.stat]++;

		sx = run_check(w, t, H_XDP, f, len, &r, before, &rx, true);
		if (!tc_refuses(f, len)) {
			st = run_check(w, t, H_TC, f, len, &r, before, &rt, true);
			if (sx >= 0 && st >= 0 && (sx != st || rx.verdict != rt.verdict)) {
				t->disagree++;
				show(t, "xdp and tc disagree (tc shown)", H_TC, f, len, &r, &rt,
				     st);
			}
		}
		ref_commit(&w->m, &r);
		/* remember connections the program admitted, to send their ACKs */
		if (!mutated && !from_conn && r.syn && !r.amb &&
		    (r.stat == RG_STAT_PASS_TRUSTED || r.stat == RG_STAT_PASS_GRANT)) {
			struct conn *c = &w->conns[w->nconns++ % MAX_CONN];

			memset(c, 0, sizeof(*c));
			if (p.l3 == PKT_L3_IPV4) {
				c->s.fam = RG_AF_INET;
				memcpy(c->s.addr, p.src4, 4);
				memcpy(c->dst, p.dst4, 4);
			} else if (!memcmp(p.src6, v4mapped_prefix, 12)) {
				c->s.fam = RG_AF_INET;
				c->mapped = true;
				memcpy(c->s.addr, p.src6 + 12, 4);
				memcpy(c->dst, p.dst6, 16);
			} else {
				c->s.fam = RG_AF_INET6;
				memcpy(c->s.addr, p.src6, 16);
				memcpy(c->dst, p.dst6, 16);
			}
			c->sport = p.sport;
			c->dport = p.dport;
		}
	}
	return 0;
}

/* --- LPM model test ----------------------------------------------------- */

struct lpm_model {
	struct mprefix *v;
	int n;
};

static bool lpm_has(const struct lpm_model *lm, const uint8_t *a, uint8_t fam)
{
	int i;

	for (i = 0; i < lm->n; i++)
		if (lm->v[i].live && lm->v[i].fam == fam &&
		    prefix_has(lm->v[i].addr, lm->v[i].plen, a))
			return true;
	return false;
}

static int lpm_fill(struct harness *h, struct lpm_model *lm, uint8_t fam, int want)
{
	static const uint8_t c4[][4] = { { 10, 0, 0, 0 }, { 172, 16, 0, 0 }, { 192, 168, 0, 0 } };
	static const unsigned c4len[] = { 8, 12, 16 };
	static const uint8_t c6[][16] = {
		{ 0x20, 0x01, 0x0d, 0xb8 }, { 0xfd }, { 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x34 },
	};
	static const unsigned c6len[] = { 32, 8, 48 };
	unsigned bytes = fam == RG_AF_INET ? 4 : 16;
	int tries = 0;

	while (lm->n < want && tries++ < want * 4) {
		struct mprefix e = { .fam = fam, .live = true };
		unsigned c = rn(3);
		int i;
		bool dup = false;

		/* mostly long prefixes, a few short ones that cover many */
		if (fam == RG_AF_INET) {
			unsigned r = rn(100);

			e.plen = r < 70 ? 20 + rn(13) : r < 97 ? 16 + rn(4) : 8 + rn(8);
			rand_in(e.addr, c4[c], c4len[c], 4);
			if (chance(10))
				rbytes(e.addr, 4);
		} else {
			unsigned r = rn(100);

			e.plen = r < 70 ? 56 + rn(73) : r < 97 ? 40 + rn(16) : 16 + rn(24);
			rand_in(e.addr, c6[c], c6len[c], 16);
		}
		/* never a whole cluster: queries must also miss */
		if (e.plen < (fam == RG_AF_INET ? c4len[c] : c6len[c]) + 4)
			e.plen = (fam == RG_AF_INET ? c4len[c] : c6len[c]) + 4;
		h_mask(e.addr, bytes, e.plen);
		for (i = 0; i < lm->n && !dup; i++)
			dup = lm->v[i].plen == e.plen && !memcmp(lm->v[i].addr, e.addr, bytes);
		if (dup)
			continue;
		if (h_trust_raw(h, fam, e.addr, e.plen))
			return -EIO;
		lm->v[lm->n++] = e;
	}
	return 0;
}

/* A query address: inside a prefix, just outside one, or anywhere nearby. */
static void lpm_query(const struct lpm_model *lm, uint8_t fam, uint8_t *a)
{
	static const uint8_t c4[4] = { 10, 0, 0, 0 }, c6[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	unsigned bytes = fam == RG_AF_INET ? 4 : 16, r = rn(100);
	const struct mprefix *e = &lm->v[rn(lm->n)];

	memset(a, 0, 16);
	if (r < 40 || !e->plen) {
		rand_in(a, e->addr, e->plen, bytes);
	} else if (r < 75) {
		uint8_t near[16];

		memcpy(near, e->addr, 16);
		near[(e->plen - 1) / 8] ^= (uint8_t)(0x80u >> ((e->plen - 1) % 8));
		rand_in(a, near, e->plen, bytes);
	} else {
		rand_in(a, fam == RG_AF_INET ? c4 : c6, fam == RG_AF_INET ? 4 : 28, bytes);
	}
}

static int lpm_round(struct harness *h, struct lpm_model *lm, uint8_t fam, int queries,
		     uint64_t *bad, uint64_t *hits)
{
	static struct h_result res;
	struct rg_counter a[RG_STAT_MAX], b[RG_STAT_MAX];
	uint8_t f[PKT_MAX];
	int q, prog, st;

	for (q = 0; q < queries; q++) {
		uint8_t addr[16];
		struct pkt p;
		bool want, mapped = fam == RG_AF_INET && chance(10);
		size_t len;

		lpm_query(lm, fam, addr);
		want = lpm_has(lm, addr, fam);
		*hits += want;
		if (fam == RG_AF_INET && !mapped) {
			pkt_init(&p, PKT_L3_IPV4);
			memcpy(p.src4, addr, 4);
			pkt_addr4(p.dst4, "192.0.2.1");
		} else {
			pkt_init(&p, PKT_L3_IPV6);
			if (mapped) {
				memcpy(p.src6, v4mapped_prefix, 12);
				memcpy(p.src6 + 12, addr, 4);
			} else {
				memcpy(p.src6, addr, 16);
			}
			pkt_addr6(p.dst6, "2001:db8::1");
		}
		p.sport = (uint16_t)(1024 + rn(60000));
		len = pkt_build(&p, f, sizeof(f), NULL);
		prog = q & 1 ? H_TC : H_XDP;
		if (h_stats(h, a) || h_run(h, prog, f, len, H_IFINDEX_LO, &res) || h_stats(h, b))
			return -EIO;
		st = want ? RG_STAT_PASS_TRUSTED : RG_STAT_DROP_UNAUTH;
		if (res.verdict != (want ? HV_PASS : HV_DROP) ||
		    b[st].packets - a[st].packets != 1) {
			if ((*bad)++ < 5) {
				char s[64];

				inet_ntop(fam == RG_AF_INET ? AF_INET : AF_INET6, addr, s,
					  sizeof(s));
				printf("# LPM: %s%s: %s, want %s\n", mapped ? "::ffff:" : "", s,
				       h_verdict_name[res.verdict],
				       want ? "pass (trusted)" : "drop");
			}
		}
	}
	return 0;
}

static void lpm_test(struct harness *h, uint8_t fam, int nprefix, int queries)
{
	struct lpm_model lm = { .v = calloc((size_t)nprefix, sizeof(struct mprefix)) };
	const char *name = fam == RG_AF_INET ? "v4" : "v6";
	uint64_t bad = 0, hits = 0;
	int i, err, deleted = 0;

	err = !lm.v || h_reset(h) || lpm_fill(h, &lm, fam, nprefix);
	err = err || lpm_round(h, &lm, fam, queries, &bad, &hits);
	tap(!err && !bad && hits && hits < (uint64_t)queries,
	    "LPM %s: %d addresses judged as a linear scan over %d prefixes does (%" PRIu64
	    " trusted, %" PRIu64 " wrong)", name, queries, lm.n, hits, bad);

	/* Withdraw half the prefixes; the rest must still match, no more. */
	for (i = 0; !err && i < lm.n; i += 2) {
		struct mprefix *e = &lm.v[i];
		int r;

		if (fam == RG_AF_INET) {
			struct rg_lpm4 k = { .prefixlen = e->plen };

			memcpy(k.addr, e->addr, 4);
			r = bpf_map_delete_elem(h->trust4_fd, &k);
		} else {
			struct rg_lpm6 k = { .prefixlen = e->plen };

			memcpy(k.addr, e->addr, 16);
			r = bpf_map_delete_elem(h->trust6_fd, &k);
		}
		err = r != 0;
		e->live = false;
		deleted++;
	}
	bad = hits = 0;
	err = err || lpm_round(h, &lm, fam, queries / 2, &bad, &hits);
	tap(!err && !bad && hits, "LPM %s: after deleting %d prefixes, %d addresses still match "
	    "the scan (%" PRIu64 " trusted, %" PRIu64 " wrong)", name, deleted, queries / 2, hits,
	    bad);
	free(lm.v);
}

/* --- main --------------------------------------------------------------- */

int main(void)
{
	static struct world w;
	struct harness h;
	struct tally t = { 0 };
	const char *env;
	uint64_t seed, count = 1000000, done = 0;
	struct timespec t0, t1;
	unsigned ph;
	int err = 0;
	static const struct {
		const char *name;
		unsigned share;              /* percent of the frames */
		uint32_t flags;
		unsigned p4, p6;
		bool unconfigured, tiface, summary;
	} phases[] = {
		{ "drop, prefixes /32 /64, summary on", 30, 0, 32, 64, false, false, true },
		{ "rst, prefixes /24 /56", 25, RG_CFG_REJECT_RST, 24, 56, false, false, false },
		{ "rst, prefixes /24 /56, summary on", 25, RG_CFG_REJECT_RST, 24, 56, false, false, true },
		{ "rst, prefixes /30 /128", 10, RG_CFG_REJECT_RST, 30, 128, false, false, false },
		{ "unconfigured rg_config (defaults)", 5, 0, 0, 0, true, false, false },
		{ "lo is a trusted interface, summary on", 5, RG_CFG_REJECT_RST, 32, 64, false, true, true },
	};

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		printf("ok 1 - random packets # SKIP needs root (BPF_PROG_TEST_RUN)\n1..1\n");
		return 0;
	}
	env = getenv("RG_SEED");
	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &t0);
		seed = (uint64_t)t0.tv_sec * 1000003u ^ (uint64_t)t0.tv_nsec ^
		       (uint64_t)getpid() << 32;
	}
	env = getenv("RG_RANDOM_COUNT");
	if (env && *env)
		count = strtoull(env, NULL, 0);
	printf("# seed %" PRIu64 " (RG_SEED=%" PRIu64 " repeats this run), %" PRIu64 " frames\n",
	       seed, seed, count);
	rnd_seed(seed);
	rbytes(rnd_payload, sizeof(rnd_payload));

	if (h_open(&h)) {
		tap(false, "load the relaygate object without pinning");
		printf("1..%d\n", tap_n);
		return 1;
	}
	w.h = &h;
	if (set_init(&w.m.flows, sizeof(struct rg_flow_key), 1u << 20) ||
	    set_init(&w.m.maybe, sizeof(struct rg_addr), 1u << 16)) {
		tap(false, "allocate the model");
		return 1;
	}

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (ph = 0; ph < sizeof(phases) / sizeof(phases[0]) && !err; ph++) {
		uint64_t n = ph + 1 == sizeof(phases) / sizeof(phases[0]) ? count - done :
			     count * phases[ph].share / 100;

		h.summary = phases[ph].summary;
		err = world_init(&w, phases[ph].flags, phases[ph].p4, phases[ph].p6,
				 phases[ph].unconfigured, phases[ph].tiface);
		if (!err)
			err = run_phase(&w, &t, n);
		done += n;
		printf("# phase %u (%s): %" PRIu64 " frames, %zu flows admitted in the model\n",
		       ph + 1, phases[ph].name, n, w.m.flows.n);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("# %" PRIu64 " frames (%" PRIu64 " mutated), %" PRIu64 " test runs in %.1f s; "
	       "%" PRIu64 " judged (TCP to a protected port), %" PRIu64 " in open corners\n",
	       t.frames, t.mutated, t.runs,
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, t.judged, t.amb);
	for (ph = 0; ph < RG_VERDICT_MAX; ph++)
		printf("#   reference %-17s %" PRIu64 "\n", h_stat_name[ph], t.by_stat[ph]);

	tap(!err && t.frames >= count && !t.run_err,
	    "%" PRIu64 " random and mutated frames through rg_xdp and rg_tc: test_run never failed",
	    t.frames);
	tap(!err && !t.count_err, "every run counted exactly one verdict, rst_sent iff a reply "
	    "(%" PRIu64 " bad)", t.count_err);
	tap(!err && !t.invariant && t.by_stat[RG_STAT_DROP_UNAUTH] && t.by_stat[RG_STAT_PASS_FLOW],
	    "invariant: nothing from an unauthorised source to a protected port passed outside an "
	    "admitted connection (%" PRIu64 " violations)", t.invariant);
	tap(!err && !t.mismatch, "verdict and counter equal the reference on every frame outside "
	    "the open corners (%" PRIu64 " differ)", t.mismatch);
	tap(!err && !t.disagree, "rg_xdp and rg_tc agree on every frame (%" PRIu64 " differ)",
	    t.disagree);
	tap(!err && !t.rst_bad && t.rst_checked > 1000, "%" PRIu64 " RST+ACK replies correct "
	    "field by field (%" PRIu64 " wrong)", t.rst_checked, t.rst_bad);
	tap(!err && !t.modified, "passed frames left unmodified (%" PRIu64 " modified)",
	    t.modified);

	h.summary = false;
	lpm_test(&h, RG_AF_INET, 3000, 16000);
	lpm_test(&h, RG_AF_INET6, 3000, 16000);

	h_close(&h);
	printf("1..%d\n", tap_n);
	return tap_failed;
}
