// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Grants core: auth event -> grant or deny. See grants.h.
 *
 * Failure counting. Each source key (the address masked to the deny key
 * prefix) has a record holding the times of its last failures, at most
 * after_failures of them, oldest first: a true sliding window. A failure
 * drops the times older than `within`, appends now, and at after_failures
 * denies the key and forgets the record. Records live in a hash table
 * (SipHash with a random key, so a flood of chosen IPv6 sources cannot
 * pile up in one chain) and on an LRU list ordered by last failure; when
 * max_sources records exist, the least recently failing one is forgotten.
 *
 * A successful login does NOT reset the failure count of its source. A
 * login proves that someone behind that address knows one password; behind
 * a NAT or a shared /64 a brute-forcer would otherwise have its count wiped
 * by every legitimate login of a neighbour and never be denied. A user who
 * mistypes a few times and then logs in loses nothing: the window forgets
 * the mistakes after `within`. Nor does a login clear an existing deny: a
 * deny ends by its TTL or by `relaygatectl deny del`.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <bpf/bpf.h>
#include "cidr.h"
#include "duration.h"
#include "grants.h"
#include "log.h"
#include "metrics.h"

#define NS_PER_SEC 1000000000ULL
#define SOURCES_NAMED_MAX 32        /* per-source event counters kept by name */

struct fail_rec {
	struct rg_addr key;
	struct fail_rec *hnext;          /* hash chain */
	struct fail_rec *lprev, *lnext;  /* LRU: head = least recently failing */
	unsigned head, n;                /* ring of failure times */
	char user[RG_USER_LEN];          /* last user name tried, for the log */
	uint64_t t[];                    /* after_failures slots */
};

struct src_count {
	char name[64];
	uint64_t logins, failures;
};

struct rg_grants {
	struct rg_grants_ops ops;
	void *ops_ctx;
	struct rg_gate *gate;            /* the real maps, or NULL */
	struct rg_grants_conf conf;      /* trusted points at our copy */
	struct rg_cidr *trusted;
	uint64_t sipkey[2];
	struct fail_rec **buckets;
	size_t nbuckets;                 /* power of two */
	size_t nrec;
	struct fail_rec *lru_head, *lru_tail;
	char err[320];

	pthread_mutex_t lock;            /* stats and srcs: read by metrics */
	struct rg_grants_stats st;
	struct src_count srcs[SOURCES_NAMED_MAX + 1];   /* last: "other" */
	size_t nsrcs;
};

/* ---- SipHash-2-4 over a short key ---- */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                       \
	do {                                                           \
		v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
		v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                 \
		v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                 \
		v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
	} while (0)

static uint64_t siphash(const uint64_t k[2], const uint8_t *in, size_t len)
{
	uint64_t v0 = 0x736f6d6570736575ULL ^ k[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ k[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ k[0];
	uint64_t v3 = 0x7465646279746573ULL ^ k[1];
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, full = len & ~(size_t)7;

	for (i = 0; i < full; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t j = 0; i + j < len; j++)
		b |= (uint64_t)in[i + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- failure table ---- */

static size_t bucket_of(const struct rg_grants *gr, const struct rg_addr *k)
{
	return siphash(gr->sipkey, (const uint8_t *)k, sizeof(*k)) & (gr->nbuckets - 1);
}

static struct fail_rec *rec_find(struct rg_grants *gr, const struct rg_addr *k)
{
	struct fail_rec *r;

	for (r = gr->buckets[bucket_of(gr, k)]; r; r = r->hnext)
		if (!memcmp(&r->key, k, sizeof(*k)))
			return r;
	return NULL;
}

static void lru_unlink(struct rg_grants *gr, struct fail_rec *r)
{
	if (r->lprev)
		r->lprev->lnext = r->lnext;
	else
		gr->lru_head = r->lnext;
	if (r->lnext)
		r->lnext->lprev = r->lprev;
	else
		gr->lru_tail = r->lprev;
	r->lprev = r->lnext = NULL;
}

static void lru_append(struct rg_grants *gr, struct fail_rec *r)
{
	r->lprev = gr->lru_tail;
	r->lnext = NULL;
	if (gr->lru_tail)
		gr->lru_tail->lnext = r;
	else
		gr->lru_head = r;
	gr->lru_tail = r;
}

static void rec_free(struct rg_grants *gr, struct fail_rec *r)
{
	struct fail_rec **pp = &gr->buckets[bucket_of(gr, &r->key)];

	while (*pp && *pp != r)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = r->hnext;
	lru_unlink(gr, r);
	free(r);
	gr->nrec--;
}

static void table_clear(struct rg_grants *gr)
{
	while (gr->lru_head)
		rec_free(gr, gr->lru_head);
}

static int table_init(struct rg_grants *gr)
{
	size_t n = 16;

	while (n < gr->conf.max_sources)
		n <<= 1;
	gr->buckets = calloc(n, sizeof(*gr->buckets));
	if (!gr->buckets)
		return -ENOMEM;
	gr->nbuckets = n;
	return 0;
}

/* Drop the failure times that left the window. */
static void rec_expire(const struct rg_grants *gr, struct fail_rec *r, uint64_t now)
{
	unsigned cap = gr->conf.after_failures;

	while (r->n && now > r->t[r->head] && now - r->t[r->head] >= gr->conf.within_ns) {
		r->head = (r->head + 1) % cap;
		r->n--;
	}
}

/* ---- helpers ---- */

static void stat_inc(struct rg_grants *gr, uint64_t *field)
{
	pthread_mutex_lock(&gr->lock);
	(*field)++;
	pthread_mutex_unlock(&gr->lock);
}

static void count_source(struct rg_grants *gr, const char *name, enum rg_event_kind kind)
{
	struct src_count *s = NULL;

	if (!name || !*name)
		name = "-";
	pthread_mutex_lock(&gr->lock);
	for (size_t i = 0; i < gr->nsrcs; i++) {
		if (!strcmp(gr->srcs[i].name, name)) {
			s = &gr->srcs[i];
			break;
		}
	}
	if (!s) {
		if (gr->nsrcs < SOURCES_NAMED_MAX) {
			s = &gr->srcs[gr->nsrcs++];
			snprintf(s->name, sizeof(s->name), "%s", name);
		} else {
			s = &gr->srcs[SOURCES_NAMED_MAX];
			snprintf(s->name, sizeof(s->name), "other");
		}
	}
	if (kind == RG_EV_LOGIN)
		s->logins++;
	else
		s->failures++;
	pthread_mutex_unlock(&gr->lock);
}

/* A user name as it may appear in our log: no control characters. */
static const char *log_user(const char *u, char *buf, size_t len)
{
	size_t i;

	if (!u || !*u)
		return "-";
	for (i = 0; u[i] && i + 1 < len; i++)
		buf[i] = ((unsigned char)u[i] < 0x20 || u[i] == 0x7f) ? '?' : u[i];
	buf[i] = '\0';
	return buf;
}

static const char *dur(uint64_t ns, char *buf, size_t len)
{
	return rg_duration_str(ns / NS_PER_SEC, buf, len);
}

static bool conf_trusted(const struct rg_grants *gr, const struct rg_addr *net, unsigned plen)
{
	for (size_t i = 0; i < gr->conf.ntrusted; i++) {
		const struct rg_cidr *c = &gr->trusted[i];

		if (c->addr.family != net->family)
			continue;
		/* Two prefixes overlap iff one contains the other. */
		if (rg_addr_in(net, &c->addr, c->prefixlen) ||
		    rg_addr_in(&c->addr, net, plen))
			return true;
	}
	return false;
}

/* ---- the real maps ---- */

static int gate_grant_put(void *ctx, const struct rg_addr *src, uint64_t ttl_ns,
			  const char *user, enum rg_origin origin,
			  enum rg_service service, bool *created, char *err, size_t errlen)
{
	struct rg_gate *g = ctx;
	struct rg_grant old;
	bool live;
	int r;

	/* An expired grant not swept yet still sits in the map: a login then
	 * issues a new grant, it does not extend one. */
	live = rg_grant_get(g, src, &old) == 0 && old.expires > rg_now_ns();
	r = rg_grant_put(g, src, ttl_ns, user, origin, service, created);
	if (r < 0)
		snprintf(err, errlen, "%s", g->err[0] ? g->err : strerror(-r));
	else if (created)
		*created = !live;
	return r;
}

static int gate_deny_put(void *ctx, const struct rg_addr *src, uint64_t ttl_ns,
			 enum rg_origin origin, uint32_t failures, char *err, size_t errlen)
{
	struct rg_gate *g = ctx;
	int r = rg_deny_put(g, src, ttl_ns, origin, failures);

	if (r < 0)
		snprintf(err, errlen, "%s", g->err[0] ? g->err : strerror(-r));
	return r;
}

/* Does any entry of the trust LPM map overlap net/plen? A lookup with a
 * full-length key finds entries containing that address (src, then the
 * network address); entries more specific than plen that lie inside the
 * prefix without covering its first address are found by walking the keys,
 * which happens only for a deny prefix shorter than the address (an IPv6
 * /64 by default) and only when a deny is about to be written. */
static int gate_trusted(void *ctx, const struct rg_addr *src,
			const struct rg_addr *net, unsigned plen)
{
	struct rg_gate *g = ctx;
	bool v4 = src->family == RG_AF_INET;
	int fd = v4 ? g->trust4_fd : g->trust6_fd;
	unsigned alen = v4 ? 4 : 16, bits = v4 ? 32 : 128;
	struct rg_lpm6 key, next;
	__u32 val;
	int r;

	if (fd < 0)
		return 0;
	for (int pass = 0; pass < 2; pass++) {
		const struct rg_addr *a = pass ? net : src;

		memset(&key, 0, sizeof(key));
		key.prefixlen = bits;
		memcpy(key.addr, a->addr, alen);
		if (bpf_map_lookup_elem(fd, &key, &val) == 0)
			return 1;
		if (errno != ENOENT)
			return -errno;
	}
	if (plen >= bits)
		return 0;
	r = bpf_map_get_next_key(fd, NULL, &next);
	while (r == 0) {
		if (next.prefixlen > plen) {
			struct rg_addr a = { .family = src->family };

			memcpy(a.addr, next.addr, alen);
			if (rg_addr_in(&a, net, plen))
				return 1;
		}
		key = next;
		r = bpf_map_get_next_key(fd, &key, &next);
	}
	return errno == ENOENT ? 0 : -errno;
}

static const struct rg_grants_ops gate_ops = {
	.grant_put = gate_grant_put,
	.deny_put = gate_deny_put,
	.trusted = gate_trusted,
};

/* ---- life cycle ---- */

static int conf_check(const struct rg_grants_conf *c, char *err, size_t errlen)
{
	if (!c->ttl_ns) {
		snprintf(err, errlen, "grants: ttl must be more than 0");
		return -EINVAL;
	}
	if (c->after_failures > RG_GRANTS_FAILURES_LIMIT) {
		snprintf(err, errlen, "deny: after_failures %u: at most %u",
			 c->after_failures, RG_GRANTS_FAILURES_LIMIT);
		return -EINVAL;
	}
	if (c->after_failures && (!c->within_ns || !c->deny_ttl_ns)) {
		snprintf(err, errlen, "deny: within and ttl must be more than 0");
		return -EINVAL;
	}
	if (c->v4_prefix > 32 || c->v6_prefix > 128) {
		snprintf(err, errlen, "grants: prefix out of range (IPv4 0..32, IPv6 0..128)");
		return -EINVAL;
	}
	return 0;
}

int rg_grants_overlaps_trusted(struct rg_grants *gr, const struct rg_addr *net,
			       unsigned prefixlen)
{
	if (conf_trusted(gr, net, prefixlen))
		return 1;
	return gr->ops.trusted ? gr->ops.trusted(gr->ops_ctx, net, net, prefixlen) : 0;
}

/* Copy c into gr->conf, with defaults, and the trusted list into gr->trusted. */
static int conf_apply(struct rg_grants *gr, const struct rg_grants_conf *c,
		      char *err, size_t errlen)
{
	struct rg_cidr *t = NULL;

	if (c->ntrusted) {
		t = malloc(c->ntrusted * sizeof(*t));
		if (!t) {
			snprintf(err, errlen, "grants: out of memory");
			return -ENOMEM;
		}
		memcpy(t, c->trusted, c->ntrusted * sizeof(*t));
	}
	free(gr->trusted);
	gr->trusted = t;
	gr->conf = *c;
	gr->conf.trusted = t;
	/* Count failures by the same key the deny map uses. */
	if (!gr->conf.v4_prefix)
		gr->conf.v4_prefix = gr->gate && gr->gate->cfg.v4_prefix ?
				     gr->gate->cfg.v4_prefix : 32;
	if (!gr->conf.v6_prefix)
		gr->conf.v6_prefix = gr->gate && gr->gate->cfg.v6_prefix ?
				     gr->gate->cfg.v6_prefix : 64;
	if (!gr->conf.max_sources)
		gr->conf.max_sources = RG_GRANTS_SOURCES_MAX_DEFAULT;
	return 0;
}

static int grants_new(struct rg_grants **out, const struct rg_grants_ops *ops,
		      void *ops_ctx, struct rg_gate *gate, const struct rg_grants_conf *c,
		      char *err, size_t errlen)
{
	struct rg_grants *gr;
	int r;

	*out = NULL;
	if (!ops || !ops->grant_put || !ops->deny_put) {
		snprintf(err, errlen, "grants: no map operations");
		return -EINVAL;
	}
	r = conf_check(c, err, errlen);
	if (r < 0)
		return r;
	gr = calloc(1, sizeof(*gr));
	if (!gr) {
		snprintf(err, errlen, "grants: out of memory");
		return -ENOMEM;
	}
	gr->ops = *ops;
	gr->ops_ctx = ops_ctx;
	gr->gate = gate;
	pthread_mutex_init(&gr->lock, NULL);
	if (getrandom(gr->sipkey, sizeof(gr->sipkey), 0) != sizeof(gr->sipkey)) {
		/* No entropy source: a fixed key still works, it only makes
		 * chains predictable. */
		gr->sipkey[0] = 0x9e3779b97f4a7c15ULL;
		gr->sipkey[1] = (uint64_t)(uintptr_t)gr;
	}
	r = conf_apply(gr, c, err, errlen);
	if (!r && table_init(gr) < 0) {
		snprintf(err, errlen, "grants: out of memory");
		r = -ENOMEM;
	}
	if (r < 0) {
		rg_grants_free(gr);
		return r;
	}
	*out = gr;
	return 0;
}

int rg_grants_new_ops(struct rg_grants **out, const struct rg_grants_ops *ops,
		      void *ops_ctx, const struct rg_grants_conf *c,
		      char *err, size_t errlen)
{
	return grants_new(out, ops, ops_ctx, NULL, c, err, errlen);
}

int rg_grants_new(struct rg_grants **out, struct rg_gate *g,
		  const struct rg_grants_conf *c, char *err, size_t errlen)
{
	return grants_new(out, &gate_ops, g, g, c, err, errlen);
}

int rg_grants_reconfigure(struct rg_grants *gr, const struct rg_grants_conf *c,
			  char *err, size_t errlen)
{
	size_t want = c->max_sources ? c->max_sources : RG_GRANTS_SOURCES_MAX_DEFAULT;
	struct rg_grants_conf old = gr->conf;
	int r = conf_check(c, err, errlen);

	if (r < 0)
		return r;
	if (want != old.max_sources) {
		struct fail_rec **nb;
		size_t n = 16;

		while (n < want)
			n <<= 1;
		nb = calloc(n, sizeof(*nb));
		if (!nb) {
			snprintf(err, errlen, "grants: out of memory");
			return -ENOMEM;
		}
		table_clear(gr);
		free(gr->buckets);
		gr->buckets = nb;
		gr->nbuckets = n;
	}
	r = conf_apply(gr, c, err, errlen);
	if (r < 0)
		return r;
	if (gr->conf.after_failures != old.after_failures ||
	    gr->conf.within_ns != old.within_ns ||
	    gr->conf.v4_prefix != old.v4_prefix || gr->conf.v6_prefix != old.v6_prefix)
		table_clear(gr);
	while (gr->nrec > gr->conf.max_sources)
		rec_free(gr, gr->lru_head);
	pthread_mutex_lock(&gr->lock);
	gr->st.tracked = gr->nrec;
	pthread_mutex_unlock(&gr->lock);
	return 0;
}

void rg_grants_free(struct rg_grants *gr)
{
	if (!gr)
		return;
	if (gr->buckets)
		table_clear(gr);
	free(gr->buckets);
	free(gr->trusted);
	pthread_mutex_destroy(&gr->lock);
	free(gr);
}

const char *rg_grants_error(const struct rg_grants *gr)
{
	return gr->err;
}

/* ---- events ---- */

static enum rg_grants_result handle_login(struct rg_grants *gr, const struct rg_auth_event *ev)
{
	char a[RG_ADDRSTRLEN], u[RG_USER_LEN], d[32], left[32], err[256];
	struct rg_grant before, after;
	bool created = false, had, kept = false;
	int r;

	/* A grant that expires later than this login's ttl keeps its expiry
	 * (never shortened): the log says "kept", not "extended". Only the
	 * real maps can tell; a fake map side always "extends". */
	had = gr->gate && rg_grant_get(gr->gate, &ev->addr, &before) == 0;
	r = gr->ops.grant_put(gr->ops_ctx, &ev->addr, gr->conf.ttl_ns, ev->user, ev->origin,
			      ev->service, &created, err, sizeof(err));
	rg_addr_str(&ev->addr, a, sizeof(a));
	if (r < 0) {
		snprintf(gr->err, sizeof(gr->err), "grant %s: %.200s", a, err);
		rg_warn("%s", gr->err);
		stat_inc(gr, &gr->st.errors);
		return RG_GRANTS_ERROR;
	}
	if (!created && had && rg_grant_get(gr->gate, &ev->addr, &after) == 0 &&
	    after.expires <= before.expires) {
		uint64_t now = rg_now_ns();

		kept = true;
		rg_duration_str(after.expires > now ?
				(after.expires - now + NS_PER_SEC - 1) / NS_PER_SEC : 0,
				left, sizeof(left));
	}
	if (kept)
		rg_info("grant %s user=%s service=%s source=%s ttl=%s (kept: expires in %s)", a,
			log_user(ev->user, u, sizeof(u)), rg_service_name(ev->service),
			ev->source ? ev->source : rg_origin_name(ev->origin),
			dur(gr->conf.ttl_ns, d, sizeof(d)), left);
	else
		rg_info("grant %s user=%s service=%s source=%s ttl=%s%s", a,
			log_user(ev->user, u, sizeof(u)), rg_service_name(ev->service),
			ev->source ? ev->source : rg_origin_name(ev->origin),
			dur(gr->conf.ttl_ns, d, sizeof(d)), created ? "" : " (extended)");
	stat_inc(gr, created ? &gr->st.grants_issued : &gr->st.grants_extended);
	return created ? RG_GRANTS_GRANTED : RG_GRANTS_EXTENDED;
}

static enum rg_grants_result handle_failure(struct rg_grants *gr,
					    const struct rg_auth_event *ev, uint64_t now)
{
	char a[RG_ADDRSTRLEN], u[RG_USER_LEN], d1[32], d2[32], err[256];
	unsigned cap = gr->conf.after_failures, plen;
	struct rg_addr key = ev->addr;
	struct fail_rec *rec;
	int tr = 0, r;

	stat_inc(gr, &gr->st.failures);
	if (!cap)
		return RG_GRANTS_COUNTED;
	rg_addr_key(&key, gr->conf.v4_prefix, gr->conf.v6_prefix);
	plen = key.family == RG_AF_INET ? gr->conf.v4_prefix : gr->conf.v6_prefix;

	rec = rec_find(gr, &key);
	if (rec) {
		rec_expire(gr, rec, now);
		lru_unlink(gr, rec);
	} else {
		if (gr->nrec >= gr->conf.max_sources && gr->lru_head) {
			rec_free(gr, gr->lru_head);
			stat_inc(gr, &gr->st.evicted);
		}
		rec = calloc(1, sizeof(*rec) + cap * sizeof(rec->t[0]));
		if (!rec) {
			snprintf(gr->err, sizeof(gr->err), "failure table: out of memory");
			stat_inc(gr, &gr->st.errors);
			return RG_GRANTS_ERROR;
		}
		rec->key = key;
		rec->hnext = gr->buckets[bucket_of(gr, &key)];
		gr->buckets[bucket_of(gr, &key)] = rec;
		gr->nrec++;
	}
	lru_append(gr, rec);
	if (rec->n == cap) {             /* full (an earlier deny failed): slide */
		rec->head = (rec->head + 1) % cap;
		rec->n--;
	}
	rec->t[(rec->head + rec->n) % cap] = now;
	rec->n++;
	snprintf(rec->user, sizeof(rec->user), "%.63s", ev->user);
	pthread_mutex_lock(&gr->lock);
	gr->st.tracked = gr->nrec;
	pthread_mutex_unlock(&gr->lock);
	if (rec->n < cap)
		return RG_GRANTS_COUNTED;

	/* Threshold reached. */
	rg_cidr_str(&key, plen, a, sizeof(a));
	if (conf_trusted(gr, &key, plen))
		tr = 1;
	else if (gr->ops.trusted)
		tr = gr->ops.trusted(gr->ops_ctx, &ev->addr, &key, plen);
	if (tr != 0) {
		if (tr < 0) {
			snprintf(gr->err, sizeof(gr->err), "deny %s: trusted-subnet check failed: %s",
				 a, strerror(-tr));
			rg_warn("%s; not denied", gr->err);
			stat_inc(gr, &gr->st.errors);
			rec_free(gr, rec);
			return RG_GRANTS_ERROR;
		}
		rg_info("not denying %s: %u failures within %s (user=%s source=%s), but it overlaps a trusted subnet",
			a, cap, dur(gr->conf.within_ns, d1, sizeof(d1)),
			log_user(rec->user, u, sizeof(u)), ev->source ? ev->source : "-");
		stat_inc(gr, &gr->st.denies_trusted);
		rec_free(gr, rec);
		return RG_GRANTS_TRUSTED;
	}
	r = gr->ops.deny_put(gr->ops_ctx, &ev->addr, gr->conf.deny_ttl_ns, ev->origin, cap,
			     err, sizeof(err));
	if (r < 0) {
		/* Keep the record: the next failure tries again. */
		snprintf(gr->err, sizeof(gr->err), "deny %s: %.200s", a, err);
		rg_warn("%s", gr->err);
		stat_inc(gr, &gr->st.errors);
		return RG_GRANTS_ERROR;
	}
	rg_info("deny %s after %u failures within %s user=%s source=%s ttl=%s", a, cap,
		dur(gr->conf.within_ns, d1, sizeof(d1)), log_user(rec->user, u, sizeof(u)),
		ev->source ? ev->source : rg_origin_name(ev->origin),
		dur(gr->conf.deny_ttl_ns, d2, sizeof(d2)));
	stat_inc(gr, &gr->st.denies_issued);
	rec_free(gr, rec);
	pthread_mutex_lock(&gr->lock);
	gr->st.tracked = gr->nrec;
	pthread_mutex_unlock(&gr->lock);
	return RG_GRANTS_DENIED;
}

enum rg_grants_result rg_grants_handle(struct rg_grants *gr,
				       const struct rg_auth_event *ev,
				       uint64_t now_ns)
{
	if (ev->addr.family != RG_AF_INET && ev->addr.family != RG_AF_INET6) {
		snprintf(gr->err, sizeof(gr->err), "event without an address");
		stat_inc(gr, &gr->st.ignored);
		return RG_GRANTS_IGNORED;
	}
	if (ev->kind != RG_EV_LOGIN && ev->kind != RG_EV_FAILURE) {
		snprintf(gr->err, sizeof(gr->err), "event of unknown kind %d", (int)ev->kind);
		stat_inc(gr, &gr->st.ignored);
		return RG_GRANTS_IGNORED;
	}
	count_source(gr, ev->source, ev->kind);
	if (ev->kind == RG_EV_LOGIN)
		return handle_login(gr, ev);
	return handle_failure(gr, ev, now_ns);
}

unsigned rg_grants_sweep(struct rg_grants *gr, uint64_t now_ns)
{
	struct fail_rec *r, *next;
	unsigned dropped = 0;

	if (!gr->conf.after_failures)
		return 0;
	for (r = gr->lru_head; r; r = next) {
		next = r->lnext;
		rec_expire(gr, r, now_ns);
		if (!r->n) {
			rec_free(gr, r);
			dropped++;
		}
	}
	pthread_mutex_lock(&gr->lock);
	gr->st.tracked = gr->nrec;
	pthread_mutex_unlock(&gr->lock);
	return dropped;
}

unsigned rg_grants_failures(struct rg_grants *gr, const struct rg_addr *src,
			    uint64_t now_ns)
{
	struct rg_addr key = *src;
	struct fail_rec *r;

	if (!gr->conf.after_failures)
		return 0;
	rg_addr_key(&key, gr->conf.v4_prefix, gr->conf.v6_prefix);
	r = rec_find(gr, &key);
	if (!r)
		return 0;
	rec_expire(gr, r, now_ns);
	return r->n;
}

/* ---- stats ---- */

void rg_grants_get_stats(struct rg_grants *gr, struct rg_grants_stats *s)
{
	pthread_mutex_lock(&gr->lock);
	*s = gr->st;
	pthread_mutex_unlock(&gr->lock);
}

void rg_grants_foreach_source(struct rg_grants *gr,
			      int (*cb)(const char *source, uint64_t logins,
					uint64_t failures, void *ctx),
			      void *ctx)
{
	struct src_count copy[SOURCES_NAMED_MAX + 1];
	size_t n;

	pthread_mutex_lock(&gr->lock);
	n = gr->nsrcs;
	memcpy(copy, gr->srcs, sizeof(copy));
	pthread_mutex_unlock(&gr->lock);
	if (copy[SOURCES_NAMED_MAX].name[0])
		copy[n++] = copy[SOURCES_NAMED_MAX];
	for (size_t i = 0; i < n; i++)
		if (cb(copy[i].name, copy[i].logins, copy[i].failures, ctx))
			break;
}

static int metrics_source(const char *source, uint64_t logins, uint64_t failures, void *ctx)
{
	static const char name[] = "relaygate_events_total";
	struct rg_mbuf *b = ctx;

	rg_metric_u64_l2(b, name, "source", source, "kind", "login", logins);
	rg_metric_u64_l2(b, name, "source", source, "kind", "failure", failures);
	return 0;
}

void rg_grants_metrics(struct rg_grants *gr, struct rg_mbuf *b)
{
	struct rg_grants_stats s;

	if (!gr)
		return;
	rg_grants_get_stats(gr, &s);
	rg_metric_one(b, "relaygate_grants_issued_total", "counter",
		      "Grants created by a login.", s.grants_issued);
	rg_metric_one(b, "relaygate_grants_extended_total", "counter",
		      "Logins that refreshed an existing grant.", s.grants_extended);
	rg_metric_one(b, "relaygate_denies_issued_total", "counter",
		      "Sources denied after too many failed logins.", s.denies_issued);
	rg_metric_one(b, "relaygate_denies_skipped_trusted_total", "counter",
		      "Deny thresholds reached by sources in a trusted subnet (not denied).",
		      s.denies_trusted);
	rg_metric_one(b, "relaygate_grant_errors_total", "counter",
		      "Grant or deny writes that failed (see the log).", s.errors);
	rg_metric_one(b, "relaygate_failure_sources", "gauge",
		      "Sources with failed logins being counted now.", s.tracked);
	rg_metric_one(b, "relaygate_failure_sources_evicted_total", "counter",
		      "Failure records forgotten because the table was full.", s.evicted);
	rg_metric_family(b, "relaygate_events_total", "counter",
			 "Auth events received, by source and kind.");
	rg_grants_foreach_source(gr, metrics_source, b);
}
