// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Log-line presets: PCRE2 patterns for the login and login-failure lines of
 * Dovecot, Postfix SASL, Courier and Cyrus (see presets.h for the contract).
 *
 * Where each format comes from (the fixtures under tests/fixtures/ quote
 * lines of each):
 *  - Dovecot 2.2/2.3: src/login-common/client-common.c (client_destroy,
 *    client_get_extra_disconnect_reason: "<reason> (auth failed, N attempts
 *    in S secs)"), client-common-auth.c ("Login"), login-settings.c
 *    (login_log_format_elements "user=<%u> method=%m rip=%r lip=%l mpid=%e
 *    %c session=<%{session}>", login_log_format "%$: %s"). The elements
 *    are joined with ", "; %u is str_sanitize()d but may hold any printable
 *    text, including "<", ">" and ", rip=".
 *  - Dovecot 2.4: the same files; "Logged in" on success and
 *    "Login aborted: <reason> (auth failed, N attempts in S secs)
 *    (auth_failed)" on failure.
 *  - Postfix: smtpd.c ("%s: client=%s, sasl_method=%s, sasl_username=%s"),
 *    smtpd_sasl_glue.c ("%s: SASL %s authentication failed: %s", since 3.9
 *    followed by ", sasl_username=%s"); namaddr is "name[addr]" or, with
 *    smtpd_client_port_logging, "name[addr]:port".
 *  - Courier: imap/pop3dserver.C, imapd.C, pop3login.C, imaplogin.C
 *    ("LOGIN, user=%s, ip=[%s], port=[%s]...", "LOGIN FAILED, user=%s,
 *    ip=[%s]..."), through courierlogger (which drops the "INFO: ").
 *  - Cyrus 2.4-3.12: imap/imapd.c, imap/pop3d.c ("login: %s %s%s %s%s User
 *    logged in SESSIONID=<%s>"; "badlogin: %s %s (%s) [%s]" in 3.x,
 *    "badlogin: %s plaintext %s %s" and "badlogin: %s %s [%s]" in 2.4);
 *    clienthost is "name [addr]" or "[addr]" ("name[addr]" in older
 *    releases). Cyrus 3.13 moved to key=value (logfmt) lines: not covered.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cidr.h"
#include "presets.h"

/* ------------------------------------------------------------ patterns */

/* Timestamps: "Nov  9 08:00:01[.123]" and "2024-11-29T08:00:01[.123][+01:00]". */
#define TS_BSD "[A-Z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?"
#define TS_ISO "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}" \
	       "(?:[.,][0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
#define TS "(?:" TS_BSD "|" TS_ISO ")"
#define HOSTNAME "[^\\s\\[\\]]+"
/* RFC 5424 STRUCTURED-DATA: "-" or one or more [id k="v" ...] elements. */
#define SD "(?:-|(?:\\[(?:[^\\]\\\\]|\\\\.)*\\])+)"
/* An optional <PRI>. */
#define PRI "^(?:<[0-9]{1,3}>)?"
/*
 * The syslog header ending where the program's message starts: RFC 5424
 * ("1 TIMESTAMP HOST APP PROCID MSGID SD [BOM]") or RFC 3164 and its ISO
 * variants ("[TIMESTAMP ][HOST ]TAG[[PID]]: "). tag is a pattern.
 */
#define SYSLOG(tag) \
	"(?:1 " TS_ISO " " HOSTNAME " (?:" tag ") (?:[0-9]+|-) \\S+ " SD " (?:\\xEF\\xBB\\xBF)?" \
	"|(?:" TS " )?(?:" HOSTNAME " )?(?:" tag ")(?:\\[[0-9]+\\])?: )"

/*
 * Dovecot: through syslog ("dovecot[pid]: imap-login: Login: ...") or in
 * its own log_path file ("Nov 29 08:00:01 imap-login: Info: Login: ...").
 * The elements are parsed as fields by dovecot_fields(), not by position:
 * login_log_format_elements is configurable. The failure reason before the
 * elements never holds "<" or ">" (a user name does: it is in the elements).
 */
#define DOVECOT_HEAD PRI "(?:" SYSLOG("dovecot") "|(?:" TS " )?)" \
	"(?<service>pop3|imap|submission|managesieve)-login: (?:Info: )?"
static const char dovecot_login[] =
	DOVECOT_HEAD "(?:Login|Logged in): (?<fields>.*)$";
static const char dovecot_failure[] =
	DOVECOT_HEAD
	"(?:(?:Disconnected|Aborted login)(?:: [^<>]*?)?"
	" \\(auth failed, [0-9]+ attempts(?: in [0-9]+ secs)?\\)"
	"|Login aborted: [^<>]*? \\(auth failed, [0-9]+ attempts in [0-9]+ secs\\)"
	" \\(auth_failed\\)"
	"): (?<fields>.*)$";

/* Postfix smtpd under any syslog_name: postfix/smtpd, postfix/submission/smtpd, postfix-out/smtpd. */
#define POSTFIX_TAG "postfix(?:-[A-Za-z0-9_.-]+)?(?:/[A-Za-z0-9_.-]+)*/smtpd"
#define NAMADDR HOSTNAME "\\[(?<ip>[0-9A-Fa-f:.]+)\\](?::[0-9]+)?"
static const char postfix_login[] =
	PRI SYSLOG(POSTFIX_TAG) "[0-9A-Za-z]+: client=" NAMADDR
	", sasl_method=(?<method>[^\\s,]+), sasl_username=(?<user>.+?)"
	"(?:, sasl_sender=.*?)?(?:, orig_queue_id=.*?)?(?:, orig_client=.*)?$";
static const char postfix_failure[] =
	PRI SYSLOG(POSTFIX_TAG) "warning: " NAMADDR
	": SASL \\S+ authentication failed(?::.*?)?(?:, sasl_username=(?<user>.*))?$";

/* Courier through courierlogger (-name=imapd, pop3d, ...), or the older login programs. */
#define COURIER_TAG "(?<service>courierpop3login|courierpop3d|courierimaplogin|courierimapd" \
		    "|pop3d-ssl|pop3d|imapd-ssl|imapd)"
static const char courier_login[] =
	PRI SYSLOG(COURIER_TAG) "LOGIN, user=(?<user>.+), ip=\\[(?<ip>[^\\]]*)\\]"
	"(?:, port=\\[[0-9]*\\])?(?:, protocol=[A-Za-z0-9]+)?(?:, (?:stls|starttls)=1)?$";
static const char courier_failure[] =
	PRI SYSLOG(COURIER_TAG) "LOGIN FAILED, (?:user=(?<user>.*)|method=[^,]*),"
	" ip=\\[(?<ip>[^\\]]*)\\](?:, port=\\[[0-9]*\\])?$";

/* Cyrus: "cyrus/imap[pid]", "imap[pid]", "pop3s[pid]", "imapd[pid]". */
#define CYRUS_TAG "(?:[A-Za-z0-9_.-]+/)?(?<service>imaps?|pop3s?|imapd|pop3d)"
#define CYRUS_CLIENT "(?:" HOSTNAME " ?)?\\[(?<ip>[0-9A-Fa-f:.]+)\\]"
static const char cyrus_login[] =
	PRI SYSLOG(CYRUS_TAG) "login: " CYRUS_CLIENT " (?<user>\\S+) [A-Za-z0-9_-]+(?:\\+TLS)?"
	" User logged in(?: SESSIONID=<[^>]*>)?$";
static const char cyrus_failure[] =
	PRI SYSLOG(CYRUS_TAG) "badlogin: " CYRUS_CLIENT " [A-Za-z0-9_-]+"
	"(?: \\((?<user>[^()\\s]*)\\)| (?<user>[^\\s\\[(]+)(?= (?:SASL\\(|invalid user)))?"
	"(?: .*)?$";

struct preset_def {
	const char *name;
	const char *needle[3];      /* the line holds one of these, or it is skipped */
	const char *login, *failure;
	enum rg_service service;    /* fixed, or NONE: from the "service" group */
	const char *dup_marker;     /* a line holding it twice is rejected */
	bool fields;                /* Dovecot key=value elements */
};

static const struct preset_def defs[RG_PRESET_MAX] = {
	[RG_PRESET_DOVECOT] = {
		.name = "dovecot", .needle = { "-login: " },
		.login = dovecot_login, .failure = dovecot_failure,
		.fields = true,
	},
	[RG_PRESET_POSTFIX_SASL] = {
		.name = "postfix-sasl",
		.needle = { "sasl_username=", "authentication failed" },
		.login = postfix_login, .failure = postfix_failure,
		.service = RG_SERVICE_SMTP,
	},
	[RG_PRESET_COURIER] = {
		.name = "courier", .needle = { "LOGIN" },
		.login = courier_login, .failure = courier_failure,
		.dup_marker = "ip=[",
	},
	[RG_PRESET_CYRUS] = {
		.name = "cyrus", .needle = { "login: " },
		.login = cyrus_login, .failure = cyrus_failure,
	},
	[RG_PRESET_REGEX] = { .name = "regex" },
};

/* ------------------------------------------------------------ compiled state */

enum { G_IP, G_USER, G_SERVICE, G_FIELDS, G_METHOD, G_MAX };
static const char *const group_names[G_MAX] = {
	[G_IP] = "ip", [G_USER] = "user", [G_SERVICE] = "service",
	[G_FIELDS] = "fields", [G_METHOD] = "method",
};
#define GROUP_DUPS 4            /* a name may appear this often ((?J), SYSLOG(tag)) */

struct rx {
	pcre2_code *code;
	unsigned ngroups[G_MAX];
	uint32_t groups[G_MAX][GROUP_DUPS];
};

/* Pathological custom patterns end as "rejected", not as a stuck daemon. */
#define MATCH_LIMIT 200000
#define DEPTH_LIMIT 10000
#define JIT_STACK_MAX (512 * 1024)
#define LINE_MAX_BYTES 65536

struct rg_preset {
	enum rg_preset_type type;
	const struct preset_def *def;
	struct rx rx[2];                /* [0] login, [1] failure; code NULL: none */
	pcre2_match_data *md;
	pcre2_match_context *mctx;
	pcre2_jit_stack *jit_stack;
	const char *why;
	char whybuf[96];
	struct rg_preset_stats st;
};

const char *rg_preset_type_name(enum rg_preset_type t)
{
	return t > 0 && t < RG_PRESET_MAX ? defs[t].name : "unknown";
}

int rg_preset_type_parse(const char *s, enum rg_preset_type *t)
{
	unsigned i;

	for (i = 1; i < RG_PRESET_MAX; i++) {
		if (!strcmp(s, defs[i].name)) {
			*t = (enum rg_preset_type)i;
			return 0;
		}
	}
	return -1;
}

static void rx_find_groups(struct rx *r)
{
	unsigned g;

	for (g = 0; g < G_MAX; g++) {
		PCRE2_SPTR first, last, e;
		int size;

		r->ngroups[g] = 0;
		size = pcre2_substring_nametable_scan(r->code, (PCRE2_SPTR)group_names[g],
						      &first, &last);
		if (size <= 0)
			continue;
		for (e = first; e <= last && r->ngroups[g] < GROUP_DUPS; e += size)
			r->groups[g][r->ngroups[g]++] = ((uint32_t)e[0] << 8) | e[1];
	}
}

static int rx_compile(struct rx *r, const char *what, const char *pattern,
		      uint32_t options, char *err, size_t errlen)
{
	PCRE2_UCHAR msg[128];
	PCRE2_SIZE off;
	int code;

	r->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, options,
				&code, &off, NULL);
	if (!r->code) {
		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "%s: PCRE2 error at offset %zu: %s", what,
			 (size_t)off, (const char *)msg);
		return -1;
	}
	/* Without JIT (not built in, no executable memory) the interpreter runs. */
	(void)pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE);
	rx_find_groups(r);
	return 0;
}

void rg_preset_free(struct rg_preset *p)
{
	unsigned i;

	if (!p)
		return;
	for (i = 0; i < 2; i++)
		pcre2_code_free(p->rx[i].code);
	pcre2_match_data_free(p->md);
	pcre2_match_context_free(p->mctx);
	pcre2_jit_stack_free(p->jit_stack);
	free(p);
}

static int check_custom(const struct rx *r, const char *what, bool need_user,
			char *err, size_t errlen)
{
	if (!r->ngroups[G_IP]) {
		snprintf(err, errlen, "%s: no named group (?<ip>...)", what);
		return -1;
	}
	if (need_user && !r->ngroups[G_USER]) {
		snprintf(err, errlen, "%s: no named group (?<user>...)", what);
		return -1;
	}
	return 0;
}

struct rg_preset *rg_preset_new(enum rg_preset_type type, const char *match,
				const char *failure, char *err, size_t errlen)
{
	const uint32_t builtin_opts = PCRE2_ANCHORED | PCRE2_DOLLAR_ENDONLY |
		PCRE2_DUPNAMES | PCRE2_NO_AUTO_CAPTURE | PCRE2_NEVER_UTF;
	const uint32_t custom_opts = PCRE2_ANCHORED | PCRE2_DOLLAR_ENDONLY;
	struct rg_preset *p;
	uint32_t cap, maxcap = 0;
	unsigned i;

	if (type <= 0 || type >= RG_PRESET_MAX) {
		snprintf(err, errlen, "unknown preset type %d", (int)type);
		return NULL;
	}
	if (type != RG_PRESET_REGEX && (match || failure)) {
		snprintf(err, errlen, "%s: only type = regex takes match and failure patterns",
			 match ? "match" : "failure");
		return NULL;
	}
	if (type == RG_PRESET_REGEX && !match && !failure) {
		snprintf(err, errlen, "type = regex needs a match or a failure pattern (or both)");
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->type = type;
	p->def = &defs[type];
	if (type == RG_PRESET_REGEX) {
		const char *pat[2] = { match, failure }, *what[2] = { "match", "failure" };

		for (i = 0; i < 2; i++) {
			if (!pat[i])
				continue;
			if (strlen(pat[i]) > RG_PRESET_PATTERN_MAX) {
				snprintf(err, errlen, "%s: longer than %d bytes", what[i],
					 RG_PRESET_PATTERN_MAX);
				goto fail;
			}
			if (rx_compile(&p->rx[i], what[i], pat[i], custom_opts, err, errlen) ||
			    check_custom(&p->rx[i], what[i], i == 0, err, errlen))
				goto fail;
		}
	} else {
		if (rx_compile(&p->rx[0], "login pattern", p->def->login, builtin_opts,
			       err, errlen) ||
		    rx_compile(&p->rx[1], "failure pattern", p->def->failure, builtin_opts,
			       err, errlen))
			goto fail;
	}
	for (i = 0; i < 2; i++) {
		if (p->rx[i].code &&
		    !pcre2_pattern_info(p->rx[i].code, PCRE2_INFO_CAPTURECOUNT, &cap) &&
		    cap > maxcap)
			maxcap = cap;
	}
	p->md = pcre2_match_data_create(maxcap + 1, NULL);
	p->mctx = pcre2_match_context_create(NULL);
	p->jit_stack = pcre2_jit_stack_create(32 * 1024, JIT_STACK_MAX, NULL);
	if (!p->md || !p->mctx || !p->jit_stack) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pcre2_set_match_limit(p->mctx, MATCH_LIMIT);
	pcre2_set_depth_limit(p->mctx, DEPTH_LIMIT);
	pcre2_jit_stack_assign(p->mctx, NULL, p->jit_stack);
	return p;
fail:
	rg_preset_free(p);
	return NULL;
}

const char *rg_preset_why(const struct rg_preset *p)
{
	return p->why ? p->why : "";
}

void rg_preset_get_stats(const struct rg_preset *p, struct rg_preset_stats *st)
{
	*st = p->st;
}

/* ------------------------------------------------------------ extraction */

/* The text of named group g in the last match, or NULL when unset. */
static const char *group(const struct rg_preset *p, const struct rx *r, const char *line,
			 unsigned g, size_t *len)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
	uint32_t ovn = pcre2_get_ovector_count(p->md);
	unsigned i;

	for (i = 0; i < r->ngroups[g]; i++) {
		uint32_t n = r->groups[g][i];

		if (n < ovn && ov[2 * n] != PCRE2_UNSET) {
			*len = ov[2 * n + 1] - ov[2 * n];
			return line + ov[2 * n];
		}
	}
	return NULL;
}

static int reject(struct rg_preset *p, const char *why)
{
	p->why = why;
	return -1;
}

static int set_addr(struct rg_preset *p, const char *s, size_t n, struct rg_auth_event *ev)
{
	char buf[RG_ADDRSTRLEN];
	const char *why;

	if (n >= sizeof(buf))
		return reject(p, "address: too long for an IP address");
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (rg_addr_parse(buf, &ev->addr, &why)) {
		snprintf(p->whybuf, sizeof(p->whybuf), "address: %s", why);
		return reject(p, p->whybuf);
	}
	why = rg_not_client_str(rg_addr_not_client(&ev->addr));
	if (why) {
		snprintf(p->whybuf, sizeof(p->whybuf), "address: %s", why);
		return reject(p, p->whybuf);
	}
	return 0;
}

static int set_user(struct rg_preset *p, const char *s, size_t n, struct rg_auth_event *ev)
{
	size_t i;

	if (n >= sizeof(ev->user))
		return reject(p, "user name too long");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return reject(p, "control character in user name");
	}
	memcpy(ev->user, s, n);
	ev->user[n] = '\0';
	return 0;
}

static bool has_ci(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), i;

	for (i = 0; i + k <= n; i++)
		if (!strncasecmp(s + i, needle, k))
			return true;
	return false;
}

/* "pop3-login", "imapd-ssl", "cyrus/pop3s", "SMTP" -> the service. */
static enum rg_service service_of(const char *s, size_t n)
{
	if (!n)
		return RG_SERVICE_NONE;
	if (has_ci(s, n, "pop"))
		return RG_SERVICE_POP3;
	if (has_ci(s, n, "imap"))
		return RG_SERVICE_IMAP;
	if (has_ci(s, n, "smtp") || has_ci(s, n, "submission"))
		return RG_SERVICE_SMTP;
	return RG_SERVICE_OTHER;
}

static size_t count(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), c = 0;
	const char *q;

	while (n >= k && (q = memmem(s, n, needle, k))) {
		c++;
		n -= (size_t)(q - s) + k;
		s = q + k;
	}
	return c;
}

#define FIELDS_MAX 32

/*
 * Dovecot's login elements: "user=<alice>, method=PLAIN, rip=192.0.2.7,
 * lip=192.0.2.1, mpid=1234, TLS, session=<abc>", in any order. A value in
 * <...> runs to the first ">" followed by ", " or the end. A user name is
 * printable but otherwise free, so "x>, rip=6.6.6.6, y=<z" can forge a
 * field: any key appearing twice rejects the line. Since the real rip=
 * is always logged, a forged one always makes a second one.
 */
static int dovecot_fields(struct rg_preset *p, const char *s, size_t n,
			  struct rg_auth_event *ev)
{
	const char *end = s + n, *f = s;
	const char *keys[FIELDS_MAX];
	size_t keylens[FIELDS_MAX], nkeys = 0, i;
	const char *rip = NULL, *user = NULL, *method = NULL;
	size_t riplen = 0, userlen = 0, methodlen = 0;

	while (f < end) {
		const char *k = f, *v, *next, *val;
		size_t vallen;

		while (k < end && (islower((unsigned char)*k) || *k == '_'))
			k++;
		if (k > f && k < end && *k == '=') {
			v = k + 1;
			if (v < end && *v == '<') {
				const char *q;

				for (q = v + 1; q < end; q++) {
					if (*q == '>' && (q + 1 == end ||
							  (end - q >= 3 && q[1] == ',' && q[2] == ' ')))
						break;
				}
				if (q >= end)
					return reject(p, "unterminated <...> field");
				val = v + 1;
				vallen = (size_t)(q - val);
				next = q + 1;
			} else {
				next = memmem(v, (size_t)(end - v), ", ", 2);
				if (!next)
					next = end;
				val = v;
				vallen = (size_t)(next - v);
			}
			if (nkeys == FIELDS_MAX)
				return reject(p, "too many fields");
			for (i = 0; i < nkeys; i++) {
				if (keylens[i] == (size_t)(k - f) && !memcmp(keys[i], f, keylens[i]))
					return reject(p, "duplicate field (forged by a user name?)");
			}
			keys[nkeys] = f;
			keylens[nkeys++] = (size_t)(k - f);
			if (k - f == 3 && !memcmp(f, "rip", 3)) {
				rip = val;
				riplen = vallen;
			} else if (k - f == 4 && !memcmp(f, "user", 4)) {
				user = val;
				userlen = vallen;
			} else if (k - f == 6 && !memcmp(f, "method", 6)) {
				method = val;
				methodlen = vallen;
			}
		} else {
			/* A bare element: "TLS", "secured", "TLS handshaking: ...". */
			next = memmem(f, (size_t)(end - f), ", ", 2);
			if (!next)
				next = end;
		}
		f = next < end ? next + 2 : end;
	}
	if (!rip)
		return reject(p, "no rip= field (login_log_format_elements must log %r / %{remote_ip})");
	if (set_addr(p, rip, riplen, ev))
		return -1;
	if (user && set_user(p, user, userlen, ev))
		return -1;
	if (method && methodlen == 9 && !strncasecmp(method, "ANONYMOUS", 9))
		return reject(p, "anonymous login");
	return 0;
}

static int extract(struct rg_preset *p, const struct rx *r, const char *line,
		   size_t len, struct rg_auth_event *ev)
{
	const char *s;
	size_t n;

	if (p->def->dup_marker && count(line, len, p->def->dup_marker) > 1)
		return reject(p, "address field given twice (forged by a user name?)");
	s = group(p, r, line, G_FIELDS, &n);
	if (p->def->fields) {
		if (!s || dovecot_fields(p, s, n, ev))
			return s ? -1 : reject(p, "no fields");
	} else {
		s = group(p, r, line, G_IP, &n);
		if (!s)
			return reject(p, "no address");
		if (set_addr(p, s, n, ev))
			return -1;
		s = group(p, r, line, G_USER, &n);
		if (s && set_user(p, s, n, ev))
			return -1;
	}
	s = group(p, r, line, G_METHOD, &n);
	if (s && n == 9 && !strncasecmp(s, "ANONYMOUS", 9))
		return reject(p, "anonymous login");
	if (p->def->service) {
		ev->service = p->def->service;
	} else {
		s = group(p, r, line, G_SERVICE, &n);
		ev->service = s ? service_of(s, n) : RG_SERVICE_NONE;
	}
	if (ev->kind == RG_EV_LOGIN) {
		if (!ev->user[0])
			return reject(p, "login without a user name");
		/* Cyrus logs an anonymous login's password where the mechanism
		 * goes: "login: host [ip] anonymous <password>". */
		if (p->type == RG_PRESET_CYRUS && !strcmp(ev->user, "anonymous"))
			return reject(p, "anonymous login");
	}
	return 0;
}

static bool prefilter(const struct preset_def *d, const char *line, size_t len)
{
	unsigned i;

	if (!d->needle[0])
		return true;
	for (i = 0; i < sizeof(d->needle) / sizeof(d->needle[0]) && d->needle[i]; i++)
		if (memmem(line, len, d->needle[i], strlen(d->needle[i])))
			return true;
	return false;
}

int rg_preset_parse(struct rg_preset *p, const char *line, size_t len,
		    struct rg_auth_event *ev)
{
	static const enum rg_event_kind kinds[2] = { RG_EV_LOGIN, RG_EV_FAILURE };
	unsigned i;
	int rc = PCRE2_ERROR_NOMATCH;

	p->st.lines++;
	p->why = NULL;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	if (len > LINE_MAX_BYTES || !prefilter(p->def, line, len))
		return 0;
	for (i = 0; i < 2; i++) {
		if (!p->rx[i].code)
			continue;
		rc = pcre2_match(p->rx[i].code, (PCRE2_SPTR)line, len, 0, 0, p->md, p->mctx);
		if (rc != PCRE2_ERROR_NOMATCH)
			break;
	}
	if (rc == PCRE2_ERROR_NOMATCH)
		return 0;
	if (rc < 0) {
		PCRE2_UCHAR msg[64];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		snprintf(p->whybuf, sizeof(p->whybuf), "pattern: %s", (const char *)msg);
		p->why = p->whybuf;
		p->st.rejected++;
		return -1;
	}
	memset(ev, 0, sizeof(*ev));
	ev->kind = kinds[i];
	ev->origin = RG_ORIGIN_LOG;
	if (extract(p, &p->rx[i], line, len, ev)) {
		memset(ev, 0, sizeof(*ev));
		p->st.rejected++;
		return -1;
	}
	if (ev->kind == RG_EV_LOGIN)
		p->st.logins++;
	else
		p->st.failures++;
	return 1;
}
