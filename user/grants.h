/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Grants core: THE one place where an auth event becomes a grant or a deny.
 *
 *   login   -> rg_grant_put(src, ttl, user, service): extends, never shortens
 *   failure -> counted per masked source in a sliding window; after_failures
 *              within `within` -> rg_deny_put(src, deny_ttl), unless the
 *              source is trusted (never denied)
 *
 * The failure table is bounded (max_sources, default 65536): when full, the
 * source whose last failure is oldest is forgotten. A successful login does
 * not clear a deny, nor the failures counted so far (see grants.c).
 *
 * The map side goes through struct rg_grants_ops, so the window logic can be
 * tested without BPF; rg_grants_new() wires the real maps of an rg_gate.
 * Single-threaded use (the daemon's main loop), except rg_grants_get_stats
 * and rg_grants_metrics, which any thread may call.
 */
#ifndef RG_GRANTS_H
#define RG_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "event.h"
#include "gatemaps.h"

#define RG_GRANTS_SOURCES_MAX_DEFAULT 65536
#define RG_GRANTS_FAILURES_LIMIT 100     /* largest after_failures accepted */

struct rg_grants_conf {
	uint64_t ttl_ns;             /* [grants] ttl; must be > 0 */
	unsigned after_failures;     /* [deny] after_failures; 0: never deny */
	uint64_t within_ns;          /* [deny] within; > 0 when after_failures */
	uint64_t deny_ttl_ns;        /* [deny] ttl; > 0 when after_failures */
	unsigned v4_prefix;          /* failure-count key prefix; 0: 32 */
	unsigned v6_prefix;          /* failure-count key prefix; 0: 64 */
	const struct rg_cidr *trusted;   /* [trust] subnets (copied); the
					  * trust maps are checked as well */
	size_t ntrusted;
	unsigned max_sources;        /* failure table cap; 0: 65536 */
};

/* The map side. Return 0 or -errno (err says why, one line). */
struct rg_grants_ops {
	int (*grant_put)(void *ctx, const struct rg_addr *src, uint64_t ttl_ns,
			 const char *user, enum rg_origin origin,
			 enum rg_service service, bool *created,
			 char *err, size_t errlen);
	int (*deny_put)(void *ctx, const struct rg_addr *src, uint64_t ttl_ns,
			enum rg_origin origin, uint32_t failures,
			char *err, size_t errlen);
	/* 1 when a trusted subnet overlaps net/prefixlen (src is inside it),
	 * 0 when none does, -errno on error (then nothing is denied). */
	int (*trusted)(void *ctx, const struct rg_addr *src,
		       const struct rg_addr *net, unsigned prefixlen);
};

struct rg_grants;

/* With the real maps of an open gate (kept by pointer: the caller keeps g
 * open, or reopens it in place, for the life of the rg_grants). */
int rg_grants_new(struct rg_grants **out, struct rg_gate *g,
		  const struct rg_grants_conf *c, char *err, size_t errlen);
/* With any map side (tests). ops->trusted may be NULL: configured list only. */
int rg_grants_new_ops(struct rg_grants **out, const struct rg_grants_ops *ops,
		      void *ops_ctx, const struct rg_grants_conf *c,
		      char *err, size_t errlen);
/* Apply a new config (SIGHUP). Counted failures are kept when after_failures,
 * within and the prefixes are unchanged, dropped otherwise. Returns 0, or
 * -EINVAL with err (then the old config stays). */
int rg_grants_reconfigure(struct rg_grants *gr, const struct rg_grants_conf *c,
			  char *err, size_t errlen);
void rg_grants_free(struct rg_grants *gr);

/* Outcome of one event. */
enum rg_grants_result {
	RG_GRANTS_ERROR = -1,        /* map write failed: rg_grants_error() */
	RG_GRANTS_IGNORED = 0,       /* bad event (no address family, ...) */
	RG_GRANTS_GRANTED,           /* new grant */
	RG_GRANTS_EXTENDED,          /* existing grant refreshed */
	RG_GRANTS_COUNTED,           /* failure counted, below the threshold */
	RG_GRANTS_DENIED,            /* failure reached the threshold: denied */
	RG_GRANTS_TRUSTED,           /* threshold reached but trusted: not denied */
};

/* Turn one event into a grant or a deny. now_ns: CLOCK_BOOTTIME
 * (rg_now_ns()), used for the failure window; non-decreasing. */
enum rg_grants_result rg_grants_handle(struct rg_grants *gr,
				       const struct rg_auth_event *ev,
				       uint64_t now_ns);
/* Whether net/prefixlen overlaps a trusted subnet (the configured list or
 * the trust maps), which are never denied: 1, 0, or -errno. Main loop. */
int rg_grants_overlaps_trusted(struct rg_grants *gr, const struct rg_addr *net,
			       unsigned prefixlen);
/* The last error, one line. */
const char *rg_grants_error(const struct rg_grants *gr);

/* Forget failure records whose window has passed (call now and then, e.g.
 * with the map sweep). Returns how many were dropped. */
unsigned rg_grants_sweep(struct rg_grants *gr, uint64_t now_ns);
/* Failures counted for src's key now (0 if none). */
unsigned rg_grants_failures(struct rg_grants *gr, const struct rg_addr *src,
			    uint64_t now_ns);

struct rg_grants_stats {
	uint64_t grants_issued;      /* new grants */
	uint64_t grants_extended;    /* logins that refreshed a grant */
	uint64_t denies_issued;
	uint64_t denies_trusted;     /* thresholds reached by trusted sources */
	uint64_t failures;           /* failure events counted */
	uint64_t errors;             /* map writes that failed */
	uint64_t ignored;            /* events with no usable address */
	uint64_t evicted;            /* failure records dropped because the table was full */
	uint64_t tracked;            /* failure records held now */
};
void rg_grants_get_stats(struct rg_grants *gr, struct rg_grants_stats *s);

/* Events seen per source name and kind; cb returns non-zero to stop. */
void rg_grants_foreach_source(struct rg_grants *gr,
			      int (*cb)(const char *source, uint64_t logins,
					uint64_t failures, void *ctx),
			      void *ctx);

struct rg_mbuf;
/* relaygate_grants_issued_total, relaygate_grants_extended_total,
 * relaygate_denies_issued_total, relaygate_denies_skipped_trusted_total,
 * relaygate_grant_errors_total, relaygate_failure_sources (gauge),
 * relaygate_failure_sources_evicted_total, relaygate_events_total{source,kind}. */
void rg_grants_metrics(struct rg_grants *gr, struct rg_mbuf *b);

#endif
