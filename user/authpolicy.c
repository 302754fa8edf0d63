// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Dovecot auth policy push source. See authpolicy.h.
 *
 * JSON: we parse with a small strict recursive-descent parser rather than a
 * library. None of our allowed libraries parses JSON; json-c or jansson would
 * be a new build dependency for one flat object of a handful of string and
 * boolean members. The parser validates the whole document (RFC 8259 grammar,
 * UTF-8, escapes, surrogate pairs, depth) and keeps only the top-level
 * members we use; tests/fuzz/fuzz_authpolicy.c fuzzes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "authpolicy.h"
#include "cidr.h"
#include "evqueue.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

#define JSON_DEPTH_MAX 16

/* ------------------------------------------------------------------------ */
/* JSON                                                                       */
/* ------------------------------------------------------------------------ */

struct jp {
	const unsigned char *p, *end;
	const char *why;
};

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int fail(struct jp *j, const char *why)
{
	if (!j->why)
		j->why = why;
	return -1;
}

static int hex4(struct jp *j, unsigned *out)
{
	unsigned v = 0;

	if (j->end - j->p < 4)
		return fail(j, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		unsigned char c = j->p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return fail(j, "bad \\u escape");
	}
	j->p += 4;
	*out = v;
	return 0;
}

/* Append one byte to a bounded output (dst may be NULL: validate only). */
static void put(char *dst, size_t cap, size_t *n, bool *trunc, unsigned char c)
{
	if (!dst)
		return;
	if (*n + 1 < cap)
		dst[(*n)++] = (char)c;
	else
		*trunc = true;
}

static void put_utf8(char *dst, size_t cap, size_t *n, bool *trunc, unsigned cp)
{
	unsigned char b[4];
	size_t k;

	if (cp < 0x80) {
		b[0] = cp;
		k = 1;
	} else if (cp < 0x800) {
		b[0] = 0xc0 | (cp >> 6);
		b[1] = 0x80 | (cp & 0x3f);
		k = 2;
	} else if (cp < 0x10000) {
		b[0] = 0xe0 | (cp >> 12);
		b[1] = 0x80 | ((cp >> 6) & 0x3f);
		b[2] = 0x80 | (cp & 0x3f);
		k = 3;
	} else {
		b[0] = 0xf0 | (cp >> 18);
		b[1] = 0x80 | ((cp >> 12) & 0x3f);
		b[2] = 0x80 | ((cp >> 6) & 0x3f);
		b[3] = 0x80 | (cp & 0x3f);
		k = 4;
	}
	/* Never cut a character in half: all of it or nothing. */
	if (dst && *n + k >= cap) {
		*trunc = true;
		return;
	}
	for (size_t i = 0; i < k; i++)
		put(dst, cap, n, trunc, b[i]);
}

/* One raw UTF-8 sequence starting at j->p (first byte >= 0x80): strict
 * (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_seq(struct jp *j, unsigned *cp)
{
	unsigned char c = *j->p;
	unsigned v, need, min;

	if (c >= 0xc2 && c <= 0xdf) {
		v = c & 0x1f;
		need = 1;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		v = c & 0x0f;
		need = 2;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		v = c & 0x07;
		need = 3;
		min = 0x10000;
	} else {
		return fail(j, "invalid UTF-8");
	}
	if ((size_t)(j->end - j->p) <= need)
		return fail(j, "invalid UTF-8");
	for (unsigned i = 1; i <= need; i++) {
		if ((j->p[i] & 0xc0) != 0x80)
			return fail(j, "invalid UTF-8");
		v = (v << 6) | (j->p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return fail(j, "invalid UTF-8");
	j->p += need + 1;
	*cp = v;
	return 0;
}

/* A string at j->p ('"'); decoded into dst (NUL-terminated, cap > 0) when
 * dst is not NULL. */
static int string(struct jp *j, char *dst, size_t cap, bool *trunc)
{
	size_t n = 0;
	bool t = false;

	j->p++;                                  /* opening quote */
	for (;;) {
		unsigned char c;
		unsigned cp;

		if (j->p >= j->end)
			return fail(j, "unterminated string");
		c = *j->p;
		if (c == '"') {
			j->p++;
			break;
		}
		if (c < 0x20)
			return fail(j, "control character in string");
		if (c == '\\') {
			if (j->end - j->p < 2)
				return fail(j, "unterminated string");
			c = j->p[1];
			j->p += 2;
			switch (c) {
			case '"': case '\\': case '/':
				put(dst, cap, &n, &t, c);
				continue;
			case 'b': put(dst, cap, &n, &t, '\b'); continue;
			case 'f': put(dst, cap, &n, &t, '\f'); continue;
			case 'n': put(dst, cap, &n, &t, '\n'); continue;
			case 'r': put(dst, cap, &n, &t, '\r'); continue;
			case 't': put(dst, cap, &n, &t, '\t'); continue;
			case 'u':
				break;
			default:
				return fail(j, "bad escape in string");
			}
			if (hex4(j, &cp) < 0)
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(j, "lone low surrogate");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;

				if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
					return fail(j, "lone high surrogate");
				j->p += 2;
				if (hex4(j, &lo) < 0)
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(j, "bad surrogate pair");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return fail(j, "NUL in string");
			put_utf8(dst, cap, &n, &t, cp);
			continue;
		}
		if (c < 0x80) {
			put(dst, cap, &n, &t, c);
			j->p++;
			continue;
		}
		if (utf8_seq(j, &cp) < 0)
			return -1;
		put_utf8(dst, cap, &n, &t, cp);
	}
	if (dst)
		dst[n] = '\0';
	if (trunc)
		*trunc = t;
	return 0;
}

static int number(struct jp *j)
{
	const unsigned char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end)
		return fail(j, "bad number");
	if (*j->p == '0') {
		j->p++;
	} else if (*j->p >= '1' && *j->p <= '9') {
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	} else {
		return fail(j, "bad number");
	}
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return fail(j, "bad number");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return fail(j, "bad number");
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s ? 0 : fail(j, "bad number");
}

static int literal(struct jp *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n))
		return fail(j, "unexpected character");
	j->p += n;
	return 0;
}

/* Kinds of top-level values we care about. */
enum jv { JV_OTHER, JV_STRING, JV_TRUE, JV_FALSE };

static int value(struct jp *j, int depth, enum jv *kind, char *dst, size_t cap, bool *trunc);

static int container(struct jp *j, int depth, bool object,
		     struct rg_authpolicy_req *req)
{
	unsigned char close = object ? '}' : ']';

	if (depth > JSON_DEPTH_MAX)
		return fail(j, "nested too deep");
	j->p++;
	ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		char key[32], sval[RG_EVENT_USER_MAX];
		bool ktrunc = false, vtrunc = false;
		enum jv kind;

		ws(j);
		if (object) {
			if (j->p >= j->end || *j->p != '"')
				return fail(j, "expected a member name");
			if (string(j, key, sizeof(key), &ktrunc) < 0)
				return -1;
			ws(j);
			if (j->p >= j->end || *j->p != ':')
				return fail(j, "expected ':'");
			j->p++;
			ws(j);
		}
		/* Only the top level object's members are kept. */
		if (req && object && !ktrunc) {
			if (value(j, depth + 1, &kind, sval, sizeof(sval), &vtrunc) < 0)
				return -1;
#define DUP(f) do { if (req->f) return fail(j, "duplicate member"); req->f = true; } while (0)
			if (!strcmp(key, "login")) {
				DUP(has_login);
				if (kind != JV_STRING)
					return fail(j, "\"login\" is not a string");
				snprintf(req->login, sizeof(req->login), "%s", sval);
				req->login_truncated = vtrunc;
			} else if (!strcmp(key, "remote")) {
				DUP(has_remote);
				if (kind != JV_STRING)
					return fail(j, "\"remote\" is not a string");
				if (vtrunc || strlen(sval) >= sizeof(req->remote))
					return fail(j, "\"remote\" is too long");
				memcpy(req->remote, sval, strlen(sval) + 1);
			} else if (!strcmp(key, "protocol")) {
				DUP(has_protocol);
				if (kind != JV_STRING)
					return fail(j, "\"protocol\" is not a string");
				snprintf(req->protocol, sizeof(req->protocol), "%.31s", sval);
			} else if (!strcmp(key, "success")) {
				DUP(has_success);
				if (kind != JV_TRUE && kind != JV_FALSE)
					return fail(j, "\"success\" is not a boolean");
				req->success = kind == JV_TRUE;
			} else if (!strcmp(key, "policy_reject")) {
				DUP(has_policy_reject);
				if (kind != JV_TRUE && kind != JV_FALSE)
					return fail(j, "\"policy_reject\" is not a boolean");
				req->policy_reject = kind == JV_TRUE;
			}
#undef DUP
		} else {
			if (value(j, depth + 1, &kind, NULL, 0, NULL) < 0)
				return -1;
		}
		ws(j);
		if (j->p >= j->end)
			return fail(j, object ? "unterminated object" : "unterminated array");
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p == close) {
			j->p++;
			return 0;
		}
		return fail(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int value(struct jp *j, int depth, enum jv *kind, char *dst, size_t cap, bool *trunc)
{
	*kind = JV_OTHER;
	ws(j);
	if (j->p >= j->end)
		return fail(j, "expected a value");
	switch (*j->p) {
	case '{':
		return container(j, depth, true, NULL);
	case '[':
		return container(j, depth, false, NULL);
	case '"':
		*kind = JV_STRING;
		return string(j, dst, cap, trunc);
	case 't':
		*kind = JV_TRUE;
		return literal(j, "true");
	case 'f':
		*kind = JV_FALSE;
		return literal(j, "false");
	case 'n':
		return literal(j, "null");
	default:
		return number(j);
	}
}

int rg_authpolicy_parse(const char *body, size_t len, struct rg_authpolicy_req *req,
			const char **why)
{
	struct jp j = { (const unsigned char *)body, (const unsigned char *)body + len, NULL };

	memset(req, 0, sizeof(*req));
	ws(&j);
	if (j.p >= j.end || *j.p != '{') {
		*why = "body is not a JSON object";
		return -1;
	}
	if (container(&j, 1, true, req) < 0) {
		*why = j.why ? j.why : "bad JSON";
		return -1;
	}
	ws(&j);
	if (j.p != j.end) {
		*why = "data after the JSON object";
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Report -> event                                                            */
/* ------------------------------------------------------------------------ */

static enum rg_service service_of(const struct rg_authpolicy_req *req)
{
	if (!req->has_protocol || !req->protocol[0])
		return RG_SERVICE_NONE;
	if (!strcasecmp(req->protocol, "pop3"))
		return RG_SERVICE_POP3;
	if (!strcasecmp(req->protocol, "imap"))
		return RG_SERVICE_IMAP;
	if (!strcasecmp(req->protocol, "smtp") || !strcasecmp(req->protocol, "submission"))
		return RG_SERVICE_SMTP;
	return RG_SERVICE_OTHER;
}

/* A "remote" no client can have is refused like one that does not parse. */
static const char *const ap_not_client[RG_NOT_CLIENT_NKINDS] = {
#define AP_NOT_CLIENT(kind, why) [RG_NOT_CLIENT_##kind] = "\"remote\" is not a client's address: " why,
	RG_NOT_CLIENT_KINDS(AP_NOT_CLIENT)
#undef AP_NOT_CLIENT
};

int rg_authpolicy_event(const struct rg_authpolicy_req *req, struct rg_auth_event *ev,
			const char **why)
{
	enum rg_not_client nc;
	const char *awhy;
	size_t i;

	memset(ev, 0, sizeof(*ev));
	if (!req->has_success) {
		*why = "report without \"success\"";
		return -1;
	}
	if (req->has_policy_reject && req->policy_reject) {
		*why = "failure decided by a policy, not a password";
		return 0;
	}
	if (!req->has_remote || !req->remote[0]) {
		*why = "no \"remote\" address (local authentication?)";
		return 0;
	}
	if (rg_addr_parse(req->remote, &ev->addr, &awhy) < 0) {
		*why = "\"remote\" is not an IP address";
		return -1;
	}
	nc = rg_addr_not_client(&ev->addr);
	if (nc != RG_CLIENT_OK) {
		*why = ap_not_client[nc];
		return -1;
	}
	ev->kind = req->success ? RG_EV_LOGIN : RG_EV_FAILURE;
	/* A failed login's name is whatever the client typed: keep it out of
	 * the log's reach (no control characters), like every other source. */
	for (i = 0; req->has_login && req->login[i] && i + 1 < sizeof(ev->user); i++) {
		unsigned char c = req->login[i];

		ev->user[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	ev->user[i] = '\0';
	ev->service = service_of(req);
	ev->origin = RG_ORIGIN_PUSH;
	ev->source = NULL;
	return 1;
}

/* ------------------------------------------------------------------------ */
/* HTTP server                                                                */
/* ------------------------------------------------------------------------ */

struct rg_authpolicy {
	struct MHD_Daemon *d;
	struct rg_evqueue *q;
	char source[64];
	char hname[128], hvalue[512];    /* api header, if any */
	bool check_header;
	size_t max_body;
	long long log_s;                 /* last warning (s), for rate limiting */
	struct rg_authpolicy_stats st;   /* __atomic */
};

enum ap_status { AP_OK, AP_BAD_METHOD, AP_UNAUTH, AP_TOO_BIG };

struct ap_conn {
	enum ap_status status;
	size_t len, cap;
	char *body;
};

#define AP_INC(ap, f) __atomic_add_fetch(&(ap)->st.f, 1, __ATOMIC_RELAXED)

static const char ap_ok[] = "{\"status\":0,\"msg\":\"\"}";

/* One warning per second at most: the HTTP port is reachable by any local
 * process. Only the HTTP thread calls it. */
static void ap_warn(struct rg_authpolicy *ap, const char *what, const char *why)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (ts.tv_sec == ap->log_s)
		return;
	ap->log_s = ts.tv_sec;
	rg_warn("source %s: %s: %s", ap->source, what, why);
}

/* Compare without an early exit, so timing says little about the secret. */
static bool same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la; i++)
		d |= (unsigned char)a[i] ^ (unsigned char)b[i < lb ? i : 0];
	return d == 0;
}

static bool ap_authorized(struct rg_authpolicy *ap, struct MHD_Connection *con)
{
	const char *v;

	if (!ap->check_header)
		return true;
	v = MHD_lookup_connection_value(con, MHD_HEADER_KIND, ap->hname);
	if (!v)
		return false;
	while (*v == ' ' || *v == '\t')
		v++;
	return same_secret(v, ap->hvalue);
}

static enum MHD_Result ap_json(struct MHD_Connection *con, unsigned status, const char *msg)
{
	char buf[256];
	int n;

	if (status == MHD_HTTP_OK)
		return rg_httpd_reply(con, status, "application/json", ap_ok, sizeof(ap_ok) - 1);
	n = snprintf(buf, sizeof(buf), "{\"status\":0,\"msg\":\"%s\"}", msg);
	return rg_httpd_reply(con, status, "application/json", buf, (size_t)n);
}

static enum MHD_Result ap_finish(struct rg_authpolicy *ap, struct MHD_Connection *con,
				 const char *url, struct ap_conn *c)
{
	struct rg_authpolicy_req req;
	struct rg_auth_event ev;
	const char *cmd, *why;
	int r;

	(void)url;
	switch (c->status) {
	case AP_BAD_METHOD:
		AP_INC(ap, bad);
		return ap_json(con, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
	case AP_UNAUTH:
		AP_INC(ap, unauthorized);
		ap_warn(ap, "request refused", "missing or wrong API header");
		return ap_json(con, MHD_HTTP_UNAUTHORIZED, "unauthorized");
	case AP_TOO_BIG:
		AP_INC(ap, bad);
		ap_warn(ap, "request refused", "body too large");
		return ap_json(con, MHD_HTTP_CONTENT_TOO_LARGE, "body too large");
	case AP_OK:
		break;
	}
	cmd = MHD_lookup_connection_value(con, MHD_GET_ARGUMENT_KIND, "command");
	if (cmd && !strcmp(cmd, "allow")) {
		/* Never reject, never delay: relaygate only listens. */
		AP_INC(ap, allow);
		return ap_json(con, MHD_HTTP_OK, NULL);
	}
	if (!cmd || strcmp(cmd, "report")) {
		AP_INC(ap, bad);
		ap_warn(ap, "request refused", "command is neither allow nor report");
		return ap_json(con, MHD_HTTP_BAD_REQUEST, "unknown command");
	}
	AP_INC(ap, report);
	if (rg_authpolicy_parse(c->body ? c->body : "", c->len, &req, &why) < 0 ||
	    (r = rg_authpolicy_event(&req, &ev, &why)) < 0) {
		AP_INC(ap, bad);
		ap_warn(ap, "bad report", why);
		return ap_json(con, MHD_HTTP_BAD_REQUEST, "bad request");
	}
	if (r == 0) {
		AP_INC(ap, ignored);
		rg_debug("source %s: report ignored: %s", ap->source, why);
		return ap_json(con, MHD_HTTP_OK, NULL);
	}
	ev.source = ap->source;
	if (rg_evqueue_push(ap->q, &ev) < 0) {
		AP_INC(ap, queue_full);
		ap_warn(ap, "event lost", "event queue full (main loop too slow)");
	} else if (ev.kind == RG_EV_LOGIN) {
		AP_INC(ap, logins);
	} else {
		AP_INC(ap, failures);
	}
	return ap_json(con, MHD_HTTP_OK, NULL);
}

static enum MHD_Result ap_handler(void *cls, struct MHD_Connection *con,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct rg_authpolicy *ap = cls;
	struct ap_conn *c = *con_cls;

	(void)version;
	if (!c) {
		const char *cl;

		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		if (strcmp(method, MHD_HTTP_METHOD_POST))
			c->status = AP_BAD_METHOD;
		else if (!ap_authorized(ap, con))
			c->status = AP_UNAUTH;
		cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (!c->status && cl && strtoull(cl, NULL, 10) > ap->max_body)
			c->status = AP_TOO_BIG;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;           /* consumed, kept or not */
		if (c->status)
			return MHD_YES;
		if (n > ap->max_body - c->len) {
			c->status = AP_TOO_BIG;
			free(c->body);
			c->body = NULL;
			c->len = c->cap = 0;
			return MHD_YES;
		}
		if (c->len + n > c->cap) {
			size_t cap = c->cap ? c->cap : 1024;
			char *b;

			while (cap < c->len + n)
				cap *= 2;
			if (cap > ap->max_body)
				cap = ap->max_body;
			b = realloc(c->body, cap);
			if (!b)
				return MHD_NO;
			c->body = b;
			c->cap = cap;
		}
		memcpy(c->body + c->len, upload_data, n);
		c->len += n;
		return MHD_YES;
	}
	return ap_finish(ap, con, url, c);
}

static void ap_done(void *cls, struct MHD_Connection *con, void **con_cls,
		    enum MHD_RequestTerminationCode toe)
{
	struct ap_conn *c = *con_cls;

	(void)cls;
	(void)con;
	(void)toe;
	if (c) {
		free(c->body);
		free(c);
		*con_cls = NULL;
	}
}

static int parse_api_header(struct rg_authpolicy *ap, const char *h, char *err, size_t errlen)
{
	const char *colon = strchr(h, ':');
	const char *v;
	size_t nl;

	if (!colon) {
		snprintf(ap->hname, sizeof(ap->hname), "X-API-Key");
		v = h;
	} else {
		nl = colon - h;
		while (nl && (h[nl - 1] == ' ' || h[nl - 1] == '\t'))
			nl--;
		if (!nl || nl >= sizeof(ap->hname)) {
			snprintf(err, errlen, "source %s: api_header: bad header name", ap->source);
			return -EINVAL;
		}
		memcpy(ap->hname, h, nl);
		ap->hname[nl] = '\0';
		v = colon + 1;
	}
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v || strlen(v) >= sizeof(ap->hvalue)) {
		snprintf(err, errlen, "source %s: api_header: empty or too long value", ap->source);
		return -EINVAL;
	}
	snprintf(ap->hvalue, sizeof(ap->hvalue), "%s", v);
	/* MHD hands us values with trailing blanks removed. */
	for (size_t n = strlen(ap->hvalue); n; n--) {
		if (ap->hvalue[n - 1] != ' ' && ap->hvalue[n - 1] != '\t')
			break;
		ap->hvalue[n - 1] = '\0';
	}
	ap->check_header = true;
	return 0;
}

int rg_authpolicy_start(struct rg_authpolicy **out, const struct rg_authpolicy_opts *o,
			struct rg_evqueue *q, char *err, size_t errlen)
{
	struct rg_authpolicy *ap;
	int r;

	*out = NULL;
	if (!q) {
		snprintf(err, errlen, "auth policy: no event queue");
		return -EINVAL;
	}
	ap = calloc(1, sizeof(*ap));
	if (!ap) {
		snprintf(err, errlen, "auth policy: out of memory");
		return -ENOMEM;
	}
	ap->q = q;
	ap->log_s = -1;
	snprintf(ap->source, sizeof(ap->source), "%s",
		 o && o->source ? o->source : "dovecot-auth-policy");
	ap->max_body = o && o->max_body ? o->max_body : RG_AUTHPOLICY_BODY_MAX_DEFAULT;
	if (o && o->api_header && *o->api_header) {
		r = parse_api_header(ap, o->api_header, err, errlen);
		if (r < 0) {
			free(ap);
			return r;
		}
	}
	ap->d = rg_httpd_start(ap->source,
			       o && o->listen ? o->listen : RG_AUTHPOLICY_LISTEN_DEFAULT,
			       ap_handler, ap, ap_done, ap, err, errlen);
	if (!ap->d) {
		free(ap);
		return -EADDRNOTAVAIL;
	}
	*out = ap;
	return 0;
}

void rg_authpolicy_stop(struct rg_authpolicy *ap)
{
	if (!ap)
		return;
	MHD_stop_daemon(ap->d);
	free(ap);
}

unsigned rg_authpolicy_port(const struct rg_authpolicy *ap)
{
	return rg_httpd_port(ap->d);
}

void rg_authpolicy_get_stats(const struct rg_authpolicy *ap, struct rg_authpolicy_stats *s)
{
	s->allow = __atomic_load_n(&ap->st.allow, __ATOMIC_RELAXED);
	s->report = __atomic_load_n(&ap->st.report, __ATOMIC_RELAXED);
	s->logins = __atomic_load_n(&ap->st.logins, __ATOMIC_RELAXED);
	s->failures = __atomic_load_n(&ap->st.failures, __ATOMIC_RELAXED);
	s->ignored = __atomic_load_n(&ap->st.ignored, __ATOMIC_RELAXED);
	s->bad = __atomic_load_n(&ap->st.bad, __ATOMIC_RELAXED);
	s->unauthorized = __atomic_load_n(&ap->st.unauthorized, __ATOMIC_RELAXED);
	s->queue_full = __atomic_load_n(&ap->st.queue_full, __ATOMIC_RELAXED);
}

void rg_authpolicy_metrics(const struct rg_authpolicy *ap, struct rg_mbuf *b)
{
	static const char name[] = "relaygate_authpolicy_requests_total";
	struct rg_authpolicy_stats s;

	if (!ap)
		return;
	rg_authpolicy_get_stats(ap, &s);
	rg_metric_family(b, name, "counter",
			 "Dovecot auth policy requests, by result.");
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "allow", s.allow);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "login", s.logins);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "failure", s.failures);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "ignored", s.ignored);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "bad_request", s.bad);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "unauthorized", s.unauthorized);
	rg_metric_u64_l2(b, name, "source", ap->source, "result", "queue_full", s.queue_full);
}
