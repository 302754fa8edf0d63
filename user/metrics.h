/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Prometheus metrics: a libmicrohttpd server answering GET /metrics in the
 * text exposition format 0.0.4, and helpers to render metric families.
 *
 * metrics.c does not know the daemon's modules: the daemon passes one render
 * callback, which calls each module's own renderer (rg_metrics_render_gate,
 * rg_grants_metrics, rg_control_metrics, rg_authpolicy_metrics, ...) and
 * renders what is left (per-source line counters, lag) with the helpers.
 *
 * Threads: the HTTP server runs its own thread; the callback is called on
 * it, under the metrics lock. Module renderers read their counters safely
 * from any thread. Anything else the callback reads (the gate's fds, the
 * list of sources) must not change under it: the main loop takes
 * rg_metrics_lock() around such changes (e.g. on reload).
 */
#ifndef RG_METRICS_H
#define RG_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RG_METRICS_LISTEN_DEFAULT "127.0.0.1:9469"

/* A growing text buffer. After an allocation failure it keeps its old
 * content, sets oom, and ignores further output. */
struct rg_mbuf {
	char *buf;
	size_t len, cap;
	bool oom;
};

void rg_mbuf_init(struct rg_mbuf *b);
void rg_mbuf_free(struct rg_mbuf *b);
void rg_mbuf_printf(struct rg_mbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "# HELP name help" and "# TYPE name type" (type: "counter", "gauge"). Once
 * per family, before its samples; all samples of a family together. */
void rg_metric_family(struct rg_mbuf *b, const char *name, const char *type,
		      const char *help);
/* "name value", "name{k="v"} value", "name{k1="v1",k2="v2"} value".
 * Label values are escaped (\\, \", \n); keys must be valid names. */
void rg_metric_u64(struct rg_mbuf *b, const char *name, uint64_t v);
/* A family with one unlabelled sample: rg_metric_family + rg_metric_u64. */
void rg_metric_one(struct rg_mbuf *b, const char *name, const char *type,
		   const char *help, uint64_t v);
void rg_metric_f(struct rg_mbuf *b, const char *name, double v);
void rg_metric_u64_l1(struct rg_mbuf *b, const char *name,
		      const char *k, const char *v, uint64_t val);
void rg_metric_u64_l2(struct rg_mbuf *b, const char *name,
		      const char *k1, const char *v1,
		      const char *k2, const char *v2, uint64_t val);

struct rg_gate;
/*
 * The gate's own families, read from the pinned maps:
 *   relaygate_packets_total{reason}, relaygate_bytes_total{reason} (verdicts)
 *   relaygate_rst_sent_total, relaygate_drop_events_lost_total
 *   relaygate_map_entries{map}, relaygate_map_max_entries{map}
 *     map: grants, deny, flows, trust4, trust6, tiface
 *   relaygate_summary_on, relaygate_summary_slots{family}
 * Returns 0, or -errno when a map could not be read (what could be read is
 * rendered).
 */
int rg_metrics_render_gate(struct rg_mbuf *b, struct rg_gate *g);

/* ---- HTTP server ---- */

struct rg_metrics;
typedef void (*rg_metrics_render_fn)(struct rg_mbuf *b, void *ctx);

/*
 * Serve GET /metrics on listen ("127.0.0.1:9469", "[::1]:9469", port 0 picks
 * one: see rg_metrics_port). Returns 0 or -errno with one line in err.
 */
int rg_metrics_start(struct rg_metrics **out, const char *listen,
		     rg_metrics_render_fn fn, void *ctx, char *err, size_t errlen);
/* Stop the server (waits for its thread). NULL is fine. */
void rg_metrics_stop(struct rg_metrics *m);
/* The bound TCP port. */
unsigned rg_metrics_port(const struct rg_metrics *m);
/* The lock the render callback runs under. */
void rg_metrics_lock(struct rg_metrics *m);
void rg_metrics_unlock(struct rg_metrics *m);
/* What GET /metrics answers: the callback's output under the lock.
 * Returns 0, or -ENOMEM. */
int rg_metrics_render(struct rg_metrics *m, struct rg_mbuf *b);

#endif
