// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Prometheus text exposition format 0.0.4 over libmicrohttpd (/metrics),
 * the render helpers, and the gate's own families read from the maps.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "gatemaps.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

#define RG_METRICS_CT "text/plain; version=0.0.4; charset=utf-8"

/* ---- text buffer ---- */

void rg_mbuf_init(struct rg_mbuf *b)
{
	memset(b, 0, sizeof(*b));
}

void rg_mbuf_free(struct rg_mbuf *b)
{
	free(b->buf);
	memset(b, 0, sizeof(*b));
}

static bool mbuf_reserve(struct rg_mbuf *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	char *n;

	if (b->oom)
		return false;
	if (b->len + more + 1 <= b->cap)
		return true;
	while (cap < b->len + more + 1) {
		if (cap > ((size_t)1 << 30)) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	n = realloc(b->buf, cap);
	if (!n) {
		b->oom = true;
		return false;
	}
	b->buf = n;
	b->cap = cap;
	return true;
}

static void mbuf_vprintf(struct rg_mbuf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || !mbuf_reserve(b, (size_t)n))
		return;
	vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	b->len += (size_t)n;
}

void rg_mbuf_printf(struct rg_mbuf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	mbuf_vprintf(b, fmt, ap);
	va_end(ap);
}

static void mbuf_putc(struct rg_mbuf *b, char c)
{
	if (!mbuf_reserve(b, 1))
		return;
	b->buf[b->len++] = c;
	b->buf[b->len] = '\0';
}

/* ---- exposition format ---- */

void rg_metric_family(struct rg_mbuf *b, const char *name, const char *type,
		      const char *help)
{
	/* HELP text escapes only backslash and newline. */
	rg_mbuf_printf(b, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			rg_mbuf_printf(b, "\\\\");
		else if (*p == '\n')
			rg_mbuf_printf(b, "\\n");
		else
			mbuf_putc(b, *p);
	}
	rg_mbuf_printf(b, "\n# TYPE %s %s\n", name, type);
}

static void label_value(struct rg_mbuf *b, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\')
			rg_mbuf_printf(b, "\\\\");
		else if (*p == '"')
			rg_mbuf_printf(b, "\\\"");
		else if (*p == '\n')
			rg_mbuf_printf(b, "\\n");
		else
			mbuf_putc(b, *p);
	}
}

void rg_metric_u64(struct rg_mbuf *b, const char *name, uint64_t v)
{
	rg_mbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void rg_metric_one(struct rg_mbuf *b, const char *name, const char *type,
		   const char *help, uint64_t v)
{
	rg_metric_family(b, name, type, help);
	rg_metric_u64(b, name, v);
}

void rg_metric_f(struct rg_mbuf *b, const char *name, double v)
{
	rg_mbuf_printf(b, "%s %.6f\n", name, v);
}

void rg_metric_u64_l1(struct rg_mbuf *b, const char *name,
		      const char *k, const char *v, uint64_t val)
{
	rg_mbuf_printf(b, "%s{%s=\"", name, k);
	label_value(b, v);
	rg_mbuf_printf(b, "\"} %llu\n", (unsigned long long)val);
}

void rg_metric_u64_l2(struct rg_mbuf *b, const char *name,
		      const char *k1, const char *v1,
		      const char *k2, const char *v2, uint64_t val)
{
	rg_mbuf_printf(b, "%s{%s=\"", name, k1);
	label_value(b, v1);
	rg_mbuf_printf(b, "\",%s=\"", k2);
	label_value(b, v2);
	rg_mbuf_printf(b, "\"} %llu\n", (unsigned long long)val);
}

/* ---- the gate's families ---- */

int rg_metrics_render_gate(struct rg_mbuf *b, struct rg_gate *g)
{
	static const struct {
		const char *label;
		size_t off;
	} maps[] = {
		{ "grants", offsetof(struct rg_gate, grants_fd) },
		{ "deny", offsetof(struct rg_gate, deny_fd) },
		{ "flows", offsetof(struct rg_gate, flows_fd) },
		{ "trust4", offsetof(struct rg_gate, trust4_fd) },
		{ "trust6", offsetof(struct rg_gate, trust6_fd) },
		{ "tiface", offsetof(struct rg_gate, tiface_fd) },
	};
	const size_t nmaps = sizeof(maps) / sizeof(maps[0]);
	struct rg_counter c[RG_STAT_MAX];
	long count[sizeof(maps) / sizeof(maps[0])];
	__u32 maxe[sizeof(maps) / sizeof(maps[0])];
	int ret = 0, r;
	size_t i;

	r = rg_stats_read(g, c);
	if (r < 0) {
		ret = r;
	} else {
		rg_metric_family(b, "relaygate_packets_total", "counter",
				 "Packets judged by the gate, by verdict reason.");
		for (i = 0; i < RG_VERDICT_MAX; i++)
			rg_metric_u64_l1(b, "relaygate_packets_total", "reason",
					 rg_stat_name(i), c[i].packets);
		rg_metric_family(b, "relaygate_bytes_total", "counter",
				 "Bytes judged by the gate, by verdict reason.");
		for (i = 0; i < RG_VERDICT_MAX; i++)
			rg_metric_u64_l1(b, "relaygate_bytes_total", "reason",
					 rg_stat_name(i), c[i].bytes);
		/* Side counters, not verdicts. */
		rg_metric_one(b, "relaygate_rst_sent_total", "counter",
			      "RST+ACK answers sent to dropped SYNs (reject = rst).",
			      c[RG_STAT_RST_SENT].packets);
		rg_metric_family(b, "relaygate_drop_events_lost_total", "counter",
				 "Drop events the ring buffer refused (the drop itself was counted).");
		rg_metric_u64(b, "relaygate_drop_events_lost_total",
			      c[RG_STAT_EVENTS_LOST].packets);
	}

	for (i = 0; i < nmaps; i++) {
		int fd = *(const int *)((const char *)g + maps[i].off);
		long m;

		count[i] = -1;
		maxe[i] = 0;
		if (fd < 0)
			continue;
		count[i] = rg_map_count(fd);
		if (count[i] < 0 && !ret)
			ret = (int)count[i];
		m = rg_map_max_entries(fd);
		if (m > 0)
			maxe[i] = (__u32)m;
		else if (m < 0 && !ret)
			ret = (int)m;
	}
	rg_metric_family(b, "relaygate_map_entries", "gauge",
			 "Entries in each gate map now.");
	for (i = 0; i < nmaps; i++)
		if (count[i] >= 0)
			rg_metric_u64_l1(b, "relaygate_map_entries", "map", maps[i].label,
					 (uint64_t)count[i]);
	rg_metric_family(b, "relaygate_map_max_entries", "gauge",
			 "Capacity of each gate map (an LRU map evicts when full).");
	for (i = 0; i < nmaps; i++)
		if (maxe[i])
			rg_metric_u64_l1(b, "relaygate_map_max_entries", "map", maps[i].label,
					 maxe[i]);
	if (g->sum) {
		struct rg_summary_info si;

		rg_summary_info(g, &si);
		rg_metric_one(b, "relaygate_summary_on", "gauge",
			      "1 while the summary prefilter is on (0: every source is looked up).",
			      si.on);
		rg_metric_family(b, "relaygate_summary_slots", "gauge",
				 "Summary slots (of 65536 per family) that hold entries.");
		rg_metric_u64_l1(b, "relaygate_summary_slots", "family", "ipv4", si.v4_slots);
		rg_metric_u64_l1(b, "relaygate_summary_slots", "family", "ipv6", si.v6_slots);
		rg_metric_family(b, "relaygate_summary_fine_bits", "gauge",
				 "Bits of the summary's fine level that hold entries (IPv4: per /24; IPv6: per hashed /48).");
		rg_metric_u64_l1(b, "relaygate_summary_fine_bits", "family", "ipv4", si.v4_fine);
		rg_metric_u64_l1(b, "relaygate_summary_fine_bits", "family", "ipv6", si.v6_fine);
		rg_metric_one(b, "relaygate_summary_fast_drop", "gauge",
			      "1 while unauthorised SYNs that no entry may match (the summary says) are dropped on the straight-line path.",
			      si.on && si.no_tiface && si.fast);
	}
	return ret;
}

/* ---- HTTP server ---- */

struct rg_metrics {
	struct MHD_Daemon *d;
	pthread_mutex_t lock;
	rg_metrics_render_fn fn;
	void *ctx;
};

void rg_metrics_lock(struct rg_metrics *m)
{
	pthread_mutex_lock(&m->lock);
}

void rg_metrics_unlock(struct rg_metrics *m)
{
	pthread_mutex_unlock(&m->lock);
}

int rg_metrics_render(struct rg_metrics *m, struct rg_mbuf *b)
{
	pthread_mutex_lock(&m->lock);
	if (m->fn)
		m->fn(b, m->ctx);
	pthread_mutex_unlock(&m->lock);
	if (!b->oom && !b->buf)
		mbuf_reserve(b, 0);   /* an empty page is still a page */
	return b->oom ? -ENOMEM : 0;
}

static enum MHD_Result metrics_handler(void *cls, struct MHD_Connection *con,
				       const char *url, const char *method,
				       const char *version, const char *upload_data,
				       size_t *upload_data_size, void **con_cls)
{
	static const char not_found[] = "not found: try /metrics\n";
	static const char bad_method[] = "method not allowed\n";
	struct rg_metrics *m = cls;
	struct MHD_Response *r;
	struct rg_mbuf b;
	enum MHD_Result ret;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
		*upload_data_size = 0;
		return rg_httpd_reply(con, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
				      bad_method, sizeof(bad_method) - 1);
	}
	if (strcmp(url, "/metrics"))
		return rg_httpd_reply(con, MHD_HTTP_NOT_FOUND, "text/plain",
				      not_found, sizeof(not_found) - 1);
	rg_mbuf_init(&b);
	if (rg_metrics_render(m, &b) < 0) {
		rg_mbuf_free(&b);
		return rg_httpd_reply(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
				      "out of memory\n", 14);
	}
	/* The buffer goes to MHD, which frees it with free(). */
	r = MHD_create_response_from_buffer(b.len, b.buf, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		rg_mbuf_free(&b);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, RG_METRICS_CT);
	ret = MHD_queue_response(con, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int rg_metrics_start(struct rg_metrics **out, const char *listen,
		     rg_metrics_render_fn fn, void *ctx, char *err, size_t errlen)
{
	struct rg_metrics *m;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "metrics: out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->fn = fn;
	m->ctx = ctx;
	m->d = rg_httpd_start("metrics", listen ? listen : RG_METRICS_LISTEN_DEFAULT,
			      metrics_handler, m, NULL, NULL, err, errlen);
	if (!m->d) {
		pthread_mutex_destroy(&m->lock);
		free(m);
		return -EADDRNOTAVAIL;
	}
	*out = m;
	return 0;
}

void rg_metrics_stop(struct rg_metrics *m)
{
	if (!m)
		return;
	MHD_stop_daemon(m->d);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

unsigned rg_metrics_port(const struct rg_metrics *m)
{
	return rg_httpd_port(m->d);
}
