// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Audit lines of the policy service: formatting with injection-safe
 * escaping (see audit.h), and output to the daemon's log and the audit file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "audit.h"
#include "log.h"

/* Longest escaped value; longer ones are cut and end in "...". */
#define VALUE_MAX 320

struct rg_audit {
	char *path;
	int fd;
	bool to_log;
	time_t last_err;         /* rate limit for write error messages */
	unsigned long suppressed;
	time_t ts_sec;           /* the second ts_text shows */
	char ts_text[32];        /* "2026-11-29T09:00:00" */
};

static bool needs_escape(unsigned char c)
{
	return c < 0x21 || c >= 0x7f || c == '=' || c == '"' || c == '\\' ||
	       c == '<' || c == '>';
}

static size_t escaped_len(const unsigned char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += needs_escape(*s) ? 4 : 1;
	return n;
}

/* Write escaped s into dst, at most room bytes (no NUL); stops before a
 * unit that would not fit. Returns the bytes written. */
static size_t put_escaped(char *dst, size_t room, const unsigned char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (; *s; s++) {
		if (!needs_escape(*s)) {
			if (o + 1 > room)
				break;
			dst[o++] = *s;
			continue;
		}
		if (o + 4 > room)
			break;
		dst[o++] = '\\';
		dst[o++] = 'x';
		dst[o++] = hex[*s >> 4];
		dst[o++] = hex[*s & 15];
	}
	return o;
}

size_t rg_audit_escape(char *dst, size_t len, const char *src, bool bracket)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, need, inner;

	if (!len)
		return 0;
	if (len < 8) {                   /* too small for anything useful */
		dst[0] = '\0';
		return 0;
	}
	if (!src) {
		dst[0] = '-';
		dst[1] = '\0';
		return 1;
	}
	if (!bracket && !*s) {
		dst[0] = '-';
		dst[1] = '\0';
		return 1;
	}
	if (!bracket && !strcmp(src, "-"))
		return snprintf(dst, len, "\\x2d");

	/* room for the value: len - NUL - brackets */
	inner = len - 1 - (bracket ? 2 : 0);
	if (bracket)
		dst[o++] = '<';
	need = escaped_len(s);
	if (need <= inner) {
		o += put_escaped(dst + o, inner, s);
	} else {
		o += put_escaped(dst + o, inner - 3, s);
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	if (bracket)
		dst[o++] = '>';
	dst[o] = '\0';
	return o;
}

struct line {
	char *buf;
	size_t len, o;
};

static void add_raw(struct line *l, const char *s)
{
	size_t n = strlen(s);

	if (l->o + n >= l->len)
		n = l->len - 1 - l->o;
	memcpy(l->buf + l->o, s, n);
	l->o += n;
	l->buf[l->o] = '\0';
}

static void add_field(struct line *l, const char *key, const char *val, bool bracket)
{
	char v[VALUE_MAX + 3];

	rg_audit_escape(v, sizeof(v), val, bracket);
	add_raw(l, " ");
	add_raw(l, key);
	add_raw(l, "=");
	add_raw(l, v);
}

size_t rg_audit_format(char *buf, size_t len, const struct rg_audit_rec *r)
{
	struct line l = { .buf = buf, .len = len };
	char ev[32];

	if (!len)
		return 0;
	buf[0] = '\0';
	rg_audit_escape(ev, sizeof(ev), r->event ? r->event : "audit", false);
	add_raw(&l, ev);
	add_field(&l, "client", r->client, false);
	add_field(&l, "user", r->user, false);
	add_field(&l, "auth", r->auth, false);
	/* NULL sender: Postfix sent none ("-"); "": the null sender ("<>"). */
	add_field(&l, "sender", r->sender, r->sender != NULL);
	add_field(&l, "recipient", r->recipient && *r->recipient ? r->recipient : NULL,
		  r->recipient && *r->recipient);
	add_field(&l, "queue_id", r->queue_id, false);
	add_field(&l, "instance", r->instance, false);
	add_field(&l, "state", r->state, false);
	add_field(&l, "action", r->action, false);
	if (r->reason)
		add_field(&l, "reason", r->reason, false);
	return l.o;
}

static int open_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

	if (fd < 0)
		snprintf(err, errlen, "audit_log %s: %s", path, strerror(errno));
	return fd;
}

struct rg_audit *rg_audit_open(const char *path, char *err, size_t errlen)
{
	struct rg_audit *a = calloc(1, sizeof(*a));

	if (!a) {
		snprintf(err, errlen, "audit: out of memory");
		return NULL;
	}
	a->fd = -1;
	a->to_log = true;
	if (path && *path) {
		a->path = strdup(path);
		if (!a->path) {
			snprintf(err, errlen, "audit: out of memory");
			free(a);
			return NULL;
		}
		a->fd = open_file(path, err, errlen);
		if (a->fd < 0) {
			free(a->path);
			free(a);
			return NULL;
		}
	}
	return a;
}

int rg_audit_reopen(struct rg_audit *a, char *err, size_t errlen)
{
	int fd;

	if (!a || !a->path)
		return 0;
	fd = open_file(a->path, err, errlen);
	if (fd < 0)
		return -1;
	if (a->fd >= 0)
		close(a->fd);
	a->fd = fd;
	return 0;
}

void rg_audit_close(struct rg_audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}

void rg_audit_set_log(struct rg_audit *a, bool to_log)
{
	if (a)
		a->to_log = to_log;
}

static void write_error(struct rg_audit *a, int e)
{
	time_t now = time(NULL);

	if (now - a->last_err < 10) {
		a->suppressed++;
		return;
	}
	rg_err("audit_log %s: write failed: %s (%lu earlier failures not shown)",
	       a->path, strerror(e), a->suppressed);
	a->last_err = now;
	a->suppressed = 0;
}

void rg_audit_emit(struct rg_audit *a, const struct rg_audit_rec *r)
{
	char line[RG_AUDIT_LINE_MAX + 64];
	struct timespec ts;
	struct tm tm;
	size_t o, n;
	ssize_t w;

	/* The timestamp first (used by the file only), then the line. */
	clock_gettime(CLOCK_REALTIME, &ts);
	if (a && a->fd >= 0) {
		if (ts.tv_sec != a->ts_sec || !a->ts_text[0]) {
			gmtime_r(&ts.tv_sec, &tm);
			strftime(a->ts_text, sizeof(a->ts_text), "%Y-%m-%dT%H:%M:%S", &tm);
			a->ts_sec = ts.tv_sec;
		}
		o = snprintf(line, 40, "%s.%03ldZ ", a->ts_text, ts.tv_nsec / 1000000);
	} else {
		o = 0;
	}
	n = rg_audit_format(line + o, RG_AUDIT_LINE_MAX, r);

	if (!a || a->to_log)
		rg_info("audit: %s", line + o);
	if (!a || a->fd < 0)
		return;
	n += o;
	line[n++] = '\n';
	/* One write per line: O_APPEND keeps concurrent writers' lines whole. */
	for (o = 0; o < n; o += w) {
		w = write(a->fd, line + o, n - o);
		if (w < 0 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0) {
			write_error(a, w < 0 ? errno : ENOSPC);
			return;
		}
	}
}
