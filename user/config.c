// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * relaygated's config file: inih does the INI grammar, this file the
 * sections, keys, values and their checks (see config.h for the rules).
 *
 * How the line numbers come about: Debian's libinih calls the handler
 * without a line number, so we hand inih the file one line per reader call
 * (every line is checked to fit its buffer first) and count them. The reader
 * also sees the "[section]" lines inih keeps to itself, which is where
 * unknown, repeated and malformed sections are caught, even empty ones.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cidr.h"
#include "config.h"
#include "control.h"
#include "duration.h"

/* ------------------------------------------------------------ loader state */

enum section_id {
	SEC_NONE = 0, SEC_GATE, SEC_TRUST, SEC_GRANTS, SEC_DENY, SEC_POLICY,
	SEC_CONTROL, SEC_METRICS, SEC_CLUSTER, SEC_SOURCE, SEC_MAX,
};

static const char *const section_names[SEC_MAX] = {
	[SEC_GATE] = "gate", [SEC_TRUST] = "trust", [SEC_GRANTS] = "grants",
	[SEC_DENY] = "deny", [SEC_POLICY] = "policy", [SEC_CONTROL] = "control",
	[SEC_METRICS] = "metrics", [SEC_CLUSTER] = "cluster",
};

#define SECTION_LIST "gate, trust, grants, deny, source.NAME, policy, control, metrics, cluster"

struct loader;
struct key;
typedef int (*parse_fn)(struct loader *l, const struct key *k, const char *v);

struct key {
	enum section_id sec;
	const char *name;
	parse_fn parse;
	bool repeat;
};

enum src_key { SK_TYPE, SK_PATH, SK_MATCH, SK_FAILURE, SK_LISTEN, SK_SERVICE, SK_MAX };

struct loader {
	const char *name;            /* file name in messages */
	const char *text;
	size_t len, pos;
	unsigned lineno;             /* of the line last handed to inih */
	struct rg_config_file *cfg;
	bool failed;
	char *err;
	size_t errlen;

	unsigned sec_line[SEC_MAX];  /* header line of each section, 0: not seen */
	unsigned *key_line;          /* per entry of keys[] */
	unsigned (*src_key_line)[SK_MAX];   /* per source */
	size_t src_cap;
	struct rg_source_cfg *cur_src;      /* section the reader last opened */
	char cur_section[RG_SOURCE_NAME_MAX + 16];
	size_t subnet_cap;
	char qbuf[2][96];            /* quote() and printable() buffers */
};

/* Config text as it appears in a message: at most 64 bytes, printable, quoted or not. */
static const char *show(struct loader *l, int slot, const char *v, bool quoted)
{
	char *b = l->qbuf[slot], *o = b;
	size_t i;

	if (quoted)
		*o++ = '"';
	for (i = 0; v[i] && i < 64; i++)
		*o++ = isprint((unsigned char)v[i]) ? v[i] : '?';
	if (v[i]) {
		memcpy(o, "...", 3);
		o += 3;
	}
	if (quoted)
		*o++ = '"';
	*o = '\0';
	return b;
}

static const char *quote(struct loader *l, int slot, const char *v)
{
	return show(l, slot, v, true);
}

static const char *printable(struct loader *l, int slot, const char *v)
{
	return show(l, slot, v, false);
}

__attribute__((format(printf, 3, 4)))
static int fail_line(struct loader *l, unsigned line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (l->failed)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line)
		snprintf(l->err, l->errlen, "%s:%u: %s", l->name, line, msg);
	else
		snprintf(l->err, l->errlen, "%s: %s", l->name, msg);
	l->failed = true;
	return -1;
}

/* "FILE:LINE: [section] key: why" for the key being parsed. */
__attribute__((format(printf, 3, 4)))
static int fail_key(struct loader *l, const struct key *k, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail_line(l, l->lineno, "[%s] %s: %s", l->cur_section, k->name, msg);
}

/* ------------------------------------------------------------ value helpers */

/* Decimal without sign or leading zeros, min..max. */
static int parse_uint(const char *v, unsigned long long min, unsigned long long max,
		      unsigned long long *out)
{
	unsigned long long n = 0;
	const char *p;

	if (!*v || (v[0] == '0' && v[1]))
		return -1;
	for (p = v; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		n = n * 10 + (unsigned long long)(*p - '0');
		if (n > max)
			return -1;
	}
	if (n < min)
		return -1;
	*out = n;
	return 0;
}

/* An absolute path without "." or ".." components, shorter than size. */
static const char *check_abspath(const char *v, size_t size)
{
	const char *p;

	if (v[0] != '/')
		return "not an absolute path";
	if (strlen(v) >= size)
		return "path too long";
	for (p = v; *p; p++) {
		if (p[0] == '/' && p[1] == '.' &&
		    (p[2] == '/' || !p[2] || (p[2] == '.' && (p[3] == '/' || !p[3]))))
			return "\".\" or \"..\" in path";
	}
	return NULL;
}

/* The tokens of a list value: blanks and commas separate. */
static char *next_token(char **s)
{
	char *p = *s, *t;

	while (*p == ' ' || *p == '\t' || *p == ',')
		p++;
	if (!*p)
		return NULL;
	t = p;
	while (*p && *p != ' ' && *p != '\t' && *p != ',')
		p++;
	if (*p)
		*p++ = '\0';
	*s = p;
	return t;
}

/*
 * A list value is separated by blanks or commas, and a comma stands between
 * two values: ",465", "465,,587", "465, ,587" and "465," hold an empty
 * element (refused as `relaygatectl ports set 465,,587` is: a value lost in
 * an edit, most likely). A value of separators only is not one of these:
 * its caller says "empty value".
 */
static bool empty_element(const char *v)
{
	bool seen = false;              /* a value since the start or the last comma */
	bool any = false, empty = false;
	const char *p;

	for (p = v; *p; p++) {
		if (*p == ',') {
			empty |= !seen;
			seen = false;
		} else if (*p != ' ' && *p != '\t') {
			seen = any = true;
		}
	}
	if (strchr(v, ',') && !seen)
		empty = true;           /* a comma at the end */
	return any && empty;
}

/* Interface names the kernel accepts (dev_valid_name). */
static const char *check_ifname(const char *n)
{
	const char *p;

	if (!*n)
		return "empty interface name";
	if (strlen(n) >= IF_NAMESIZE)
		return "interface name longer than 15 characters";
	if (!strcmp(n, ".") || !strcmp(n, ".."))
		return "not an interface name";
	for (p = n; *p; p++) {
		if (*p == '/' || *p == ':' || isspace((unsigned char)*p) || !isprint((unsigned char)*p))
			return "not an interface name";
	}
	return NULL;
}

/*
 * "[inet:]HOST:PORT" (IPv4, or IPv6 in brackets) or, with allow_unix,
 * "unix:/path".
 */
static const char *parse_endpoint(const char *v, bool allow_unix, struct rg_endpoint *e)
{
	char host[64];
	const char *p = v, *colon, *why;
	unsigned long long port;

	size_t vlen = strlen(v);

	memset(e, 0, sizeof(*e));
	if (vlen >= sizeof(e->text))
		return "too long";
	memcpy(e->text, v, vlen + 1);
	if (!strncmp(v, "unix:", 5)) {
		if (!allow_unix)
			return "a unix socket is not possible here (use HOST:PORT)";
		why = check_abspath(v + 5, sizeof(e->path));
		if (why)
			return why;
		e->is_unix = true;
		snprintf(e->path, sizeof(e->path), "%s", v + 5);
		e->set = true;
		return NULL;
	}
	if (!strncmp(v, "inet:", 5))
		p = v + 5;
	if (*p == '[') {
		const char *close = strchr(p, ']');
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->sa;

		if (!close || close[1] != ':')
			return allow_unix ? "expected unix:/PATH, HOST:PORT or [IPv6]:PORT"
					  : "expected HOST:PORT or [IPv6]:PORT";
		if ((size_t)(close - p - 1) >= sizeof(host))
			return "not an IPv6 address";
		memcpy(host, p + 1, (size_t)(close - p - 1));
		host[close - p - 1] = '\0';
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return "not an IPv6 address";
		s6->sin6_family = AF_INET6;
		e->salen = sizeof(*s6);
		colon = close + 1;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&e->sa;

		colon = strrchr(p, ':');
		if (!colon)
			return allow_unix ? "expected unix:/PATH, HOST:PORT or [IPv6]:PORT"
					  : "expected HOST:PORT or [IPv6]:PORT";
		if ((size_t)(colon - p) >= sizeof(host))
			return "not an IPv4 address (IPv6 goes in brackets)";
		memcpy(host, p, (size_t)(colon - p));
		host[colon - p] = '\0';
		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return "not an IPv4 address (IPv6 goes in brackets)";
		s4->sin_family = AF_INET;
		e->salen = sizeof(*s4);
	}
	if (parse_uint(colon + 1, 1, 65535, &port))
		return "port is not a number 1..65535";
	if (e->sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&e->sa)->sin6_port = htons((uint16_t)port);
	else
		((struct sockaddr_in *)&e->sa)->sin_port = htons((uint16_t)port);
	e->set = true;
	return NULL;
}

static bool endpoint_eq(const struct rg_endpoint *a, const struct rg_endpoint *b)
{
	if (a->is_unix != b->is_unix)
		return false;
	if (a->is_unix)
		return !strcmp(a->path, b->path);
	return a->salen == b->salen && !memcmp(&a->sa, &b->sa, a->salen);
}

/* 0660-style: octal digits only, at most 0777. */
static int parse_mode(const char *v, mode_t *out)
{
	unsigned m = 0;
	const char *p;

	if (!*v || strlen(v) > 4)
		return -1;
	for (p = v; *p; p++) {
		if (*p < '0' || *p > '7')
			return -1;
		m = m * 8 + (unsigned)(*p - '0');
	}
	if (m > 0777)
		return -1;
	*out = (mode_t)m;
	return 0;
}

/* A user or group name as getpwnam() wants it, or a number. */
static bool name_ok(const char *n, size_t max)
{
	const char *p;

	if (!*n || strlen(n) >= max)
		return false;
	for (p = n; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.' && *p != '$')
			return false;
	}
	return true;
}

/*
 * getpwnam_r/getgrnam_r with a buffer that grows on ERANGE (a group with
 * thousands of members). 0 found, -1 not found or lookup failure.
 */
static int lookup_user(const char *n, uid_t *uid, gid_t *gid)
{
	struct passwd pw, *res = NULL;
	unsigned long long id;
	size_t size = 4096;
	char *buf = NULL;
	int rc;

	if (!parse_uint(n, 0, 0xfffffffeULL, &id)) {
		*uid = (uid_t)id;
		buf = malloc(size);
		if (buf && !getpwuid_r(*uid, &pw, buf, size, &res) && res)
			*gid = pw.pw_gid;
		free(buf);
		return 0;
	}
	do {
		char *nb = realloc(buf, size);

		if (!nb) {
			rc = ENOMEM;
			break;
		}
		buf = nb;
		rc = getpwnam_r(n, &pw, buf, size, &res);
		size *= 2;
	} while (rc == ERANGE && size <= (1U << 22));
	if (!rc && res) {
		*uid = pw.pw_uid;
		*gid = pw.pw_gid;
	}
	free(buf);
	return !rc && res ? 0 : -1;
}

static int lookup_group(const char *n, gid_t *gid)
{
	struct group gr, *res = NULL;
	unsigned long long id;
	size_t size = 16384;
	char *buf = NULL;
	int rc;

	if (!parse_uint(n, 0, 0xfffffffeULL, &id)) {
		*gid = (gid_t)id;
		return 0;
	}
	do {
		char *nb = realloc(buf, size);

		if (!nb) {
			rc = ENOMEM;
			break;
		}
		buf = nb;
		rc = getgrnam_r(n, &gr, buf, size, &res);
		size *= 2;
	} while (rc == ERANGE && size <= (1U << 22));
	if (!rc && res)
		*gid = gr.gr_gid;
	free(buf);
	return !rc && res ? 0 : -1;
}

/* ------------------------------------------------------------ key parsers */

static int add_ifaces(struct loader *l, const struct key *k, const char *v,
		      char (*list)[IF_NAMESIZE], unsigned *lines, size_t *n)
{
	char buf[RG_CONFIG_LINE_MAX + 1], *s = buf, *t;
	const char *why;
	size_t i, before = *n;

	if (empty_element(v))
		return fail_key(l, k, "%s: empty element in the list", quote(l, 0, v));
	snprintf(buf, sizeof(buf), "%s", v);
	while ((t = next_token(&s))) {
		why = check_ifname(t);
		if (why)
			return fail_key(l, k, "%s: %s", quote(l, 0, t), why);
		for (i = 0; i < *n; i++) {
			if (!strcmp(list[i], t))
				return fail_key(l, k, "%s: listed twice", quote(l, 0, t));
		}
		if (*n == RG_CONFIG_MAX_IFACES)
			return fail_key(l, k, "more than %d interfaces", RG_CONFIG_MAX_IFACES);
		if (lines)
			lines[*n] = l->lineno;
		snprintf(list[(*n)++], IF_NAMESIZE, "%s", t);
	}
	if (*n == before)
		return fail_key(l, k, "empty value (an interface name)");
	return 0;
}

static int p_gate_iface(struct loader *l, const struct key *k, const char *v)
{
	return add_ifaces(l, k, v, l->cfg->gate.ifaces, l->cfg->gate.iface_line,
			  &l->cfg->gate.n_ifaces);
}

static int p_trust_iface(struct loader *l, const struct key *k, const char *v)
{
	return add_ifaces(l, k, v, l->cfg->trust.ifaces, NULL, &l->cfg->trust.n_ifaces);
}

static int p_mode(struct loader *l, const struct key *k, const char *v)
{
	if (rg_mode_parse(v, &l->cfg->gate.mode))
		return fail_key(l, k, "%s is not one of xdp, xdp-generic, tc", quote(l, 0, v));
	return 0;
}

static int p_ports(struct loader *l, const struct key *k, const char *v)
{
	char buf[RG_CONFIG_LINE_MAX + 1], *s = buf, *t;
	struct rg_config_file *c = l->cfg;
	unsigned long long port;
	size_t i;

	if (empty_element(v))
		return fail_key(l, k, "%s: empty element in the list", quote(l, 0, v));
	snprintf(buf, sizeof(buf), "%s", v);
	c->gate.n_ports = 0;
	while ((t = next_token(&s))) {
		if (parse_uint(t, 1, 65535, &port))
			return fail_key(l, k, "%s is not a port number 1..65535", quote(l, 0, t));
		for (i = 0; i < c->gate.n_ports; i++) {
			if (c->gate.ports[i] == port)
				return fail_key(l, k, "port %llu listed twice", port);
		}
		if (c->gate.n_ports == RG_CONFIG_MAX_PORTS)
			return fail_key(l, k, "more than %d ports", RG_CONFIG_MAX_PORTS);
		c->gate.ports[c->gate.n_ports++] = (uint16_t)port;
	}
	if (!c->gate.n_ports)
		return fail_key(l, k, "empty value (ports to protect, e.g. 465 587)");
	return 0;
}

static int p_reject(struct loader *l, const struct key *k, const char *v)
{
	if (!strcmp(v, "drop"))
		l->cfg->gate.reject_rst = false;
	else if (!strcmp(v, "rst"))
		l->cfg->gate.reject_rst = true;
	else
		return fail_key(l, k, "%s is not one of drop, rst", quote(l, 0, v));
	return 0;
}

static int set_path(struct loader *l, const struct key *k, const char *v, char *dst, size_t size)
{
	const char *why = check_abspath(v, size);

	if (why)
		return fail_key(l, k, "%s: %s", quote(l, 0, v), why);
	snprintf(dst, size, "%s", v);
	return 0;
}

static int p_pin_dir(struct loader *l, const struct key *k, const char *v)
{
	/* Room for the pins' own names under it. */
	return set_path(l, k, v, l->cfg->gate.pin_dir, sizeof(l->cfg->gate.pin_dir) - 64);
}

static int p_subnet(struct loader *l, const struct key *k, const char *v)
{
	char buf[RG_CONFIG_LINE_MAX + 1], *s = buf, *t;
	struct rg_config_file *c = l->cfg;
	bool any = false;

	if (empty_element(v))
		return fail_key(l, k, "%s: empty element in the list", quote(l, 0, v));
	snprintf(buf, sizeof(buf), "%s", v);
	while ((t = next_token(&s))) {
		struct rg_cidr cidr;
		const char *why;
		char txt[RG_ADDRSTRLEN];
		size_t i;

		any = true;
		if (rg_cidr_parse(t, &cidr.addr, &cidr.prefixlen, &why))
			return fail_key(l, k, "%s: %s", quote(l, 0, t), why);
		for (i = 0; i < c->trust.n_subnets; i++) {
			if (c->trust.subnets[i].prefixlen == cidr.prefixlen &&
			    !memcmp(&c->trust.subnets[i].addr, &cidr.addr, sizeof(cidr.addr)))
				return fail_key(l, k, "%s: %s listed twice", quote(l, 0, t),
						rg_cidr_str(&cidr.addr, cidr.prefixlen, txt, sizeof(txt)));
		}
		if (c->trust.n_subnets == RG_CONFIG_MAX_SUBNETS)
			return fail_key(l, k, "more than %d subnets", RG_CONFIG_MAX_SUBNETS);
		if (c->trust.n_subnets == l->subnet_cap) {
			size_t cap = l->subnet_cap ? l->subnet_cap * 2 : 16;
			struct rg_cidr *n = realloc(c->trust.subnets, cap * sizeof(*n));

			if (!n)
				return fail_key(l, k, "out of memory");
			c->trust.subnets = n;
			l->subnet_cap = cap;
		}
		c->trust.subnets[c->trust.n_subnets++] = cidr;
	}
	if (!any)
		return fail_key(l, k, "empty value (a CIDR such as 192.0.2.0/24)");
	return 0;
}

static int set_duration(struct loader *l, const struct key *k, const char *v, uint64_t *dst)
{
	const char *why;
	uint64_t sec;

	if (rg_duration_parse(v, &sec, &why))
		return fail_key(l, k, "%s: %s", quote(l, 0, v), why);
	if (!sec)
		return fail_key(l, k, "%s: must be at least 1s", quote(l, 0, v));
	*dst = sec;
	return 0;
}

static int p_grant_ttl(struct loader *l, const struct key *k, const char *v)
{
	return set_duration(l, k, v, &l->cfg->grants.ttl);
}

static int p_grants_max(struct loader *l, const struct key *k, const char *v)
{
	unsigned long long n;

	if (parse_uint(v, 1, RG_GRANTS_MAX_LIMIT, &n))
		return fail_key(l, k, "%s is not a number 1..%u", quote(l, 0, v), RG_GRANTS_MAX_LIMIT);
	l->cfg->grants.max = (uint32_t)n;
	return 0;
}

static int p_v4_prefix(struct loader *l, const struct key *k, const char *v)
{
	unsigned long long n;

	if (parse_uint(v, RG_V4_PREFIX_MIN, 32, &n))
		return fail_key(l, k, "%s is not a prefix length %d..32 (shorter grants too many addresses)",
				quote(l, 0, v), RG_V4_PREFIX_MIN);
	l->cfg->grants.ipv4_prefix = (unsigned)n;
	return 0;
}

static int p_v6_prefix(struct loader *l, const struct key *k, const char *v)
{
	unsigned long long n;

	if (parse_uint(v, RG_V6_PREFIX_MIN, 128, &n))
		return fail_key(l, k, "%s is not a prefix length %d..128 (shorter grants too many addresses)",
				quote(l, 0, v), RG_V6_PREFIX_MIN);
	l->cfg->grants.ipv6_prefix = (unsigned)n;
	return 0;
}

static int p_state_file(struct loader *l, const struct key *k, const char *v)
{
	l->cfg->grants.state_file_line = l->lineno;
	return set_path(l, k, v, l->cfg->grants.state_file, sizeof(l->cfg->grants.state_file) - 16);
}

static int p_deny_after(struct loader *l, const struct key *k, const char *v)
{
	unsigned long long n;

	if (parse_uint(v, 0, 1000000, &n))
		return fail_key(l, k, "%s is not a number 0..1000000 (0: never deny)", quote(l, 0, v));
	l->cfg->deny.after_failures = (unsigned)n;
	return 0;
}

static int p_deny_within(struct loader *l, const struct key *k, const char *v)
{
	return set_duration(l, k, v, &l->cfg->deny.within);
}

static int p_deny_ttl(struct loader *l, const struct key *k, const char *v)
{
	return set_duration(l, k, v, &l->cfg->deny.ttl);
}

static int p_policy_listen(struct loader *l, const struct key *k, const char *v)
{
	const char *why = parse_endpoint(v, true, &l->cfg->policy.listen);

	if (why)
		return fail_key(l, k, "%s: %s", quote(l, 0, v), why);
	return 0;
}

static int p_socket_owner(struct loader *l, const struct key *k, const char *v)
{
	struct rg_config_file *c = l->cfg;
	char user[64], group[64] = "";
	const char *colon = strchr(v, ':');
	size_t ulen = colon ? (size_t)(colon - v) : strlen(v);

	if (ulen >= sizeof(user) || (colon && strlen(colon + 1) >= sizeof(group)))
		return fail_key(l, k, "%s: too long", quote(l, 0, v));
	memcpy(user, v, ulen);
	user[ulen] = '\0';
	if (colon)
		snprintf(group, sizeof(group), "%s", colon + 1);
	if (!name_ok(user, sizeof(user)) || (colon && !name_ok(group, sizeof(group))))
		return fail_key(l, k, "%s is not USER or USER:GROUP", quote(l, 0, v));
	if (lookup_user(user, &c->policy.owner_uid, &c->policy.owner_gid))
		return fail_key(l, k, "no such user %s", quote(l, 0, user));
	if (colon && lookup_group(group, &c->policy.owner_gid))
		return fail_key(l, k, "no such group %s", quote(l, 0, group));
	snprintf(c->policy.socket_owner, sizeof(c->policy.socket_owner), "%s", v);
	return 0;
}

static int set_mode(struct loader *l, const struct key *k, const char *v, mode_t *dst)
{
	if (parse_mode(v, dst))
		return fail_key(l, k, "%s is not an octal mode 0..0777 (e.g. 0660)", quote(l, 0, v));
	return 0;
}

static int p_policy_mode(struct loader *l, const struct key *k, const char *v)
{
	return set_mode(l, k, v, &l->cfg->policy.socket_mode);
}

static int p_sender_logins(struct loader *l, const struct key *k, const char *v)
{
	l->cfg->policy.sender_logins_line = l->lineno;
	return set_path(l, k, v, l->cfg->policy.sender_logins, sizeof(l->cfg->policy.sender_logins));
}

static int p_audit_log(struct loader *l, const struct key *k, const char *v)
{
	l->cfg->policy.audit_log_line = l->lineno;
	return set_path(l, k, v, l->cfg->policy.audit_log, sizeof(l->cfg->policy.audit_log));
}

static int p_control_socket(struct loader *l, const struct key *k, const char *v)
{
	return set_path(l, k, v, l->cfg->control.socket, sizeof(l->cfg->control.socket));
}

static int p_control_group(struct loader *l, const struct key *k, const char *v)
{
	struct rg_config_file *c = l->cfg;

	if (!name_ok(v, sizeof(c->control.socket_group)))
		return fail_key(l, k, "%s is not a group name", quote(l, 0, v));
	if (lookup_group(v, &c->control.socket_gid))
		return fail_key(l, k, "no such group %s", quote(l, 0, v));
	snprintf(c->control.socket_group, sizeof(c->control.socket_group), "%s", v);
	return 0;
}

static int p_control_mode(struct loader *l, const struct key *k, const char *v)
{
	return set_mode(l, k, v, &l->cfg->control.socket_mode);
}

static int p_metrics_listen(struct loader *l, const struct key *k, const char *v)
{
	const char *why;

	if (!strcmp(v, "off")) {
		memset(&l->cfg->metrics.listen, 0, sizeof(l->cfg->metrics.listen));
		return 0;
	}
	why = parse_endpoint(v, false, &l->cfg->metrics.listen);
	if (why)
		return fail_key(l, k, "%s: %s (or off)", quote(l, 0, v), why);
	return 0;
}

/* [USER]:PASSWORD before end into the config (the user is ignored). */
static const char *redis_password(const char *p, const char *end, struct rg_config_file *c)
{
	const char *colon = memchr(p, ':', (size_t)(end - p));
	size_t plen;

	if (!colon)
		return "expected :PASSWORD@ before the host or path";
	plen = (size_t)(end - colon - 1);
	if (!plen || plen >= sizeof(c->cluster.redis_password))
		return "bad password";
	memcpy(c->cluster.redis_password, colon + 1, plen);
	c->cluster.redis_password[plen] = '\0';
	return NULL;
}

/* redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:[//][[USER]:PASSWORD@]/PATH[?db=N]. */
static const char *parse_redis(const char *v, struct rg_config_file *c)
{
	unsigned long long n;
	const char *p, *at, *slash, *hostend, *q;
	size_t hlen;

	if (strlen(v) >= sizeof(c->cluster.redis))
		return "too long";
	if (!strncmp(v, "unix:", 5)) {
		char path[RG_SUN_PATH_MAX];
		const char *why;

		p = v + 5;
		if (!strncmp(p, "//", 2))
			p += 2;
		if (*p != '/') {
			slash = strchr(p, '/');
			at = slash ? memrchr(p, '@', (size_t)(slash - p)) : NULL;
			if (!at)
				return "expected unix:[:PASSWORD@]/PATH[?db=N]";
			why = redis_password(p, at, c);
			if (why)
				return why;
			p = at + 1;
		}
		q = strstr(p, "?db=");
		hlen = q ? (size_t)(q - p) : strlen(p);
		if (hlen >= sizeof(path))
			return "path too long";
		memcpy(path, p, hlen);
		path[hlen] = '\0';
		why = check_abspath(path, sizeof(c->cluster.redis_path));
		if (why)
			return why;
		if (q && parse_uint(q + 4, 0, 65535, &n))
			return "?db= is not a number 0..65535";
		c->cluster.redis_unix = true;
		memcpy(c->cluster.redis_path, path, sizeof(path));
		c->cluster.redis_db = q ? (unsigned)n : 0;
		goto done;
	}
	if (!strncmp(v, "rediss://", 9))
		return "rediss:// (TLS) is not supported";
	if (strncmp(v, "redis://", 8))
		return "expected redis://HOST[:PORT][/DB] or unix:/PATH";
	p = v + 8;
	slash = strchr(p, '/');
	at = memrchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
	if (at) {
		const char *why = redis_password(p, at, c);

		if (why)
			return why;
		p = at + 1;
	}
	if (*p == '[') {
		hostend = strchr(p, ']');
		if (!hostend)
			return "unterminated [IPv6] host";
		hlen = (size_t)(hostend - p - 1);
		if (!hlen || hlen >= sizeof(c->cluster.redis_host))
			return "bad host";
		memcpy(c->cluster.redis_host, p + 1, hlen);
		c->cluster.redis_host[hlen] = '\0';
		if (inet_pton(AF_INET6, c->cluster.redis_host, &(struct in6_addr){ 0 }) != 1)
			return "not an IPv6 address in [...]";
		q = hostend + 1;
	} else {
		for (q = p; *q && *q != ':' && *q != '/'; q++) {
			if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
				return "bad host name";
		}
		hlen = (size_t)(q - p);
		if (!hlen || hlen >= sizeof(c->cluster.redis_host))
			return "bad host";
		memcpy(c->cluster.redis_host, p, hlen);
		c->cluster.redis_host[hlen] = '\0';
	}
	c->cluster.redis_port = 6379;
	if (*q == ':') {
		char port[8];
		const char *e = strchr(q + 1, '/');
		size_t plen = e ? (size_t)(e - q - 1) : strlen(q + 1);

		if (plen >= sizeof(port))
			return "port is not a number 1..65535";
		memcpy(port, q + 1, plen);
		port[plen] = '\0';
		if (parse_uint(port, 1, 65535, &n))
			return "port is not a number 1..65535";
		c->cluster.redis_port = (uint16_t)n;
		q += 1 + plen;
	}
	c->cluster.redis_db = 0;
	if (*q == '/') {
		if (q[1] && parse_uint(q + 1, 0, 65535, &n))
			return "database is not a number 0..65535";
		c->cluster.redis_db = q[1] ? (unsigned)n : 0;
	} else if (*q) {
		return "expected redis://HOST[:PORT][/DB]";
	}
done:
	snprintf(c->cluster.redis, sizeof(c->cluster.redis), "%s", v);
	return NULL;
}

static int p_redis(struct loader *l, const struct key *k, const char *v)
{
	const char *why;

	memset(&l->cfg->cluster, 0, sizeof(l->cfg->cluster));
	why = parse_redis(v, l->cfg);
	if (why) {
		memset(&l->cfg->cluster, 0, sizeof(l->cfg->cluster));
		return fail_key(l, k, "%s: %s", quote(l, 0, v), why);
	}
	return 0;
}

static const struct key keys[] = {
	{ SEC_GATE, "interface", p_gate_iface, true },
	{ SEC_GATE, "mode", p_mode, false },
	{ SEC_GATE, "ports", p_ports, false },
	{ SEC_GATE, "reject", p_reject, false },
	{ SEC_GATE, "pin_dir", p_pin_dir, false },
	{ SEC_TRUST, "subnet", p_subnet, true },
	{ SEC_TRUST, "interface", p_trust_iface, true },
	{ SEC_GRANTS, "ttl", p_grant_ttl, false },
	{ SEC_GRANTS, "max", p_grants_max, false },
	{ SEC_GRANTS, "ipv4_prefix", p_v4_prefix, false },
	{ SEC_GRANTS, "ipv6_prefix", p_v6_prefix, false },
	{ SEC_GRANTS, "state_file", p_state_file, false },
	{ SEC_DENY, "after_failures", p_deny_after, false },
	{ SEC_DENY, "within", p_deny_within, false },
	{ SEC_DENY, "ttl", p_deny_ttl, false },
	{ SEC_POLICY, "listen", p_policy_listen, false },
	{ SEC_POLICY, "socket_owner", p_socket_owner, false },
	{ SEC_POLICY, "socket_mode", p_policy_mode, false },
	{ SEC_POLICY, "sender_logins", p_sender_logins, false },
	{ SEC_POLICY, "audit_log", p_audit_log, false },
	{ SEC_CONTROL, "socket", p_control_socket, false },
	{ SEC_CONTROL, "socket_group", p_control_group, false },
	{ SEC_CONTROL, "socket_mode", p_control_mode, false },
	{ SEC_METRICS, "listen", p_metrics_listen, false },
	{ SEC_CLUSTER, "redis", p_redis, false },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ------------------------------------------------------------ [source.NAME] */

static const char *const src_key_names[SK_MAX] = {
	[SK_TYPE] = "type", [SK_PATH] = "path", [SK_MATCH] = "match",
	[SK_FAILURE] = "failure", [SK_LISTEN] = "listen", [SK_SERVICE] = "service",
};

static const char *const source_type_names[] = {
	[RG_SOURCE_DOVECOT] = "dovecot",
	[RG_SOURCE_POSTFIX_SASL] = "postfix-sasl",
	[RG_SOURCE_COURIER] = "courier",
	[RG_SOURCE_CYRUS] = "cyrus",
	[RG_SOURCE_REGEX] = "regex",
	[RG_SOURCE_DOVECOT_AUTH_POLICY] = "dovecot-auth-policy",
};
#define SOURCE_TYPES "dovecot, postfix-sasl, courier, cyrus, regex, dovecot-auth-policy"

const char *rg_source_type_name(enum rg_source_type t)
{
	return t >= RG_SOURCE_DOVECOT && t <= RG_SOURCE_DOVECOT_AUTH_POLICY ?
	       source_type_names[t] : "unknown";
}

bool rg_source_is_log(enum rg_source_type t)
{
	return t >= RG_SOURCE_DOVECOT && t <= RG_SOURCE_REGEX;
}

static int src_fail(struct loader *l, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int src_fail(struct loader *l, const char *key, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail_line(l, l->lineno, "[%s] %s: %s", l->cur_section, key, msg);
}

static int source_key(struct loader *l, const char *name, const char *v)
{
	struct rg_source_cfg *s = l->cur_src;
	size_t idx = (size_t)(s - l->cfg->sources);
	unsigned *seen = l->src_key_line[idx];
	const char *why;
	unsigned i;

	for (i = 0; i < SK_MAX; i++)
		if (!strcmp(name, src_key_names[i]))
			break;
	if (i == SK_MAX)
		return src_fail(l, printable(l, 1, name),
				"unknown key (type, path, match, failure, listen, service)");
	if (!*v)
		return src_fail(l, name, "empty value");
	if (seen[i])
		return src_fail(l, name, "given twice (first at line %u)", seen[i]);
	seen[i] = l->lineno;
	switch (i) {
	case SK_TYPE: {
		unsigned t;

		for (t = RG_SOURCE_DOVECOT; t <= RG_SOURCE_DOVECOT_AUTH_POLICY; t++)
			if (!strcmp(v, source_type_names[t]))
				break;
		if (t > RG_SOURCE_DOVECOT_AUTH_POLICY)
			return src_fail(l, name, "%s is not one of " SOURCE_TYPES, quote(l, 0, v));
		s->type = (enum rg_source_type)t;
		return 0;
	}
	case SK_PATH:
		if (!strcmp(v, "-")) {
			snprintf(s->path, sizeof(s->path), "-");
			return 0;
		}
		why = check_abspath(v, sizeof(s->path) - 16);
		if (why)
			return src_fail(l, name, "%s: %s (or - for stdin)", quote(l, 0, v), why);
		snprintf(s->path, sizeof(s->path), "%s", v);
		return 0;
	case SK_MATCH:
	case SK_FAILURE: {
		char **dst = i == SK_MATCH ? &s->match : &s->failure;

		*dst = strdup(v);
		if (!*dst)
			return src_fail(l, name, "out of memory");
		return 0;
	}
	case SK_LISTEN:
		why = parse_endpoint(v, false, &s->listen);
		if (why)
			return src_fail(l, name, "%s: %s", quote(l, 0, v), why);
		return 0;
	case SK_SERVICE:
		if (rg_service_parse(v, &s->service))
			return src_fail(l, name, "%s is not one of pop3, imap, smtp, other",
					quote(l, 0, v));
		return 0;
	}
	return 0;
}

/* ------------------------------------------------------------ inih glue */

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct loader *l = user;
	const char *p;
	unsigned i;

	if (l->failed)
		return 0;
	for (p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 && *p != '\t') {
			fail_line(l, l->lineno, "[%s] %s: control character in value",
				  printable(l, 0, section), printable(l, 1, name));
			return 0;
		}
	}
	if (!section[0]) {
		fail_line(l, l->lineno, "%s: key before the first [section]", printable(l, 0, name));
		return 0;
	}
	/* The reader saw this line's section header: cur_section is section. */
	if (l->cur_src)
		return source_key(l, name, value) ? 0 : 1;
	for (i = 0; i < NKEYS; i++) {
		if (!strcmp(section, section_names[keys[i].sec]) && !strcmp(name, keys[i].name))
			break;
	}
	if (i == NKEYS) {
		char list[256] = "";
		unsigned j;

		for (j = 0; j < NKEYS; j++) {
			if (strcmp(section, section_names[keys[j].sec]))
				continue;
			snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
				 list[0] ? ", " : "", keys[j].name);
		}
		fail_line(l, l->lineno, "[%s] %s: unknown key (%s)", section, printable(l, 0, name),
			  list);
		return 0;
	}
	if (!*value) {
		fail_line(l, l->lineno, "[%s] %s: empty value", section, name);
		return 0;
	}
	if (!keys[i].repeat && l->key_line[i]) {
		fail_line(l, l->lineno, "[%s] %s: given twice (first at line %u)", section, name,
			  l->key_line[i]);
		return 0;
	}
	l->key_line[i] = l->lineno;
	return keys[i].parse(l, &keys[i], value) ? 0 : 1;
}

static bool source_name_ok(const char *n)
{
	const char *p;

	if (!*n || strlen(n) > RG_SOURCE_NAME_MAX)
		return false;
	for (p = n; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return false;
	return true;
}

/* A "[...]" line: check it as inih will read it, before inih does. */
static int section_line(struct loader *l, const char *s, size_t n)
{
	struct rg_config_file *c = l->cfg;
	char name[RG_CONFIG_LINE_MAX + 1];
	const char *close = memchr(s, ']', n), *after;
	size_t len, i;
	unsigned id;

	if (!close)
		return fail_line(l, l->lineno, "\"[\" without \"]\"");
	len = (size_t)(close - s - 1);
	memcpy(name, s + 1, len);
	name[len] = '\0';
	for (after = close + 1; after < s + n && (*after == ' ' || *after == '\t'); after++)
		;
	if (after < s + n && *after != ';' && *after != '#')
		return fail_line(l, l->lineno, "[%s]: text after the section header",
				 printable(l, 0, name));
	l->cur_src = NULL;
	snprintf(l->cur_section, sizeof(l->cur_section), "%.*s", (int)sizeof(l->cur_section) - 1,
		 name);
	if (!strncmp(name, "source.", 7)) {
		const char *sname = name + 7;

		if (!source_name_ok(sname))
			return fail_line(l, l->lineno,
					 "[%s]: source name must be 1..%d of A-Z a-z 0-9 _ -",
					 printable(l, 0, name), RG_SOURCE_NAME_MAX);
		for (i = 0; i < c->n_sources; i++) {
			if (!strcmp(c->sources[i].name, sname))
				return fail_line(l, l->lineno, "[%s]: section given twice (first at line %u)",
						 name, c->sources[i].line);
		}
		if (c->n_sources == RG_CONFIG_MAX_SOURCES)
			return fail_line(l, l->lineno, "[%s]: more than %d sources", name,
					 RG_CONFIG_MAX_SOURCES);
		if (c->n_sources == l->src_cap) {
			size_t cap = l->src_cap ? l->src_cap * 2 : 4;
			struct rg_source_cfg *ns = realloc(c->sources, cap * sizeof(*ns));
			unsigned (*nk)[SK_MAX];

			if (!ns)
				return fail_line(l, l->lineno, "out of memory");
			c->sources = ns;
			nk = realloc(l->src_key_line, cap * sizeof(*nk));
			if (!nk)
				return fail_line(l, l->lineno, "out of memory");
			l->src_key_line = nk;
			l->src_cap = cap;
		}
		l->cur_src = &c->sources[c->n_sources];
		memset(l->cur_src, 0, sizeof(*l->cur_src));
		memset(l->src_key_line[c->n_sources], 0, sizeof(l->src_key_line[0]));
		snprintf(l->cur_src->name, sizeof(l->cur_src->name), "%.*s", RG_SOURCE_NAME_MAX, sname);
		l->cur_src->line = l->lineno;
		c->n_sources++;
		return 0;
	}
	for (id = SEC_GATE; id < SEC_SOURCE; id++)
		if (!strcmp(name, section_names[id]))
			break;
	if (id == SEC_SOURCE)
		return fail_line(l, l->lineno, "[%s]: unknown section (" SECTION_LIST ")",
				 printable(l, 0, name));
	if (l->sec_line[id])
		return fail_line(l, l->lineno, "[%s]: section given twice (first at line %u)", name,
				 l->sec_line[id]);
	l->sec_line[id] = l->lineno;
	return 0;
}

/* inih's reader: one whole line per call (load_string checked they fit). */
static char *reader(char *str, int num, void *stream)
{
	struct loader *l = stream;
	const char *s, *nl, *t;
	size_t n;

	if (l->failed || l->pos >= l->len || num < 2)
		return NULL;
	s = l->text + l->pos;
	nl = memchr(s, '\n', l->len - l->pos);
	n = nl ? (size_t)(nl - s) + 1 : l->len - l->pos;
	if (n > (size_t)num - 1)
		n = (size_t)num - 1;
	memcpy(str, s, n);
	str[n] = '\0';
	l->pos += n;
	l->lineno++;
	/* Section headers as inih sees them: after blanks (and a BOM on line 1). */
	t = str;
	if (l->lineno == 1 && !memcmp(t, "\xEF\xBB\xBF", 3))
		t += 3;
	while (*t == ' ' || *t == '\t')
		t++;
	if (*t == '[') {
		size_t m = strlen(t);

		while (m && (t[m - 1] == '\n' || t[m - 1] == '\r' || t[m - 1] == ' ' || t[m - 1] == '\t'))
			m--;
		if (section_line(l, t, m))
			return NULL;
	}
	return str;
}

/* ------------------------------------------------------------ final checks */

static int check_sources(struct loader *l)
{
	struct rg_config_file *c = l->cfg;
	size_t i, j;
	char err[256];

	for (i = 0; i < c->n_sources; i++) {
		struct rg_source_cfg *s = &c->sources[i];
		unsigned *seen = l->src_key_line[i];

		snprintf(l->cur_section, sizeof(l->cur_section), "source.%s", s->name);
		if (!seen[SK_TYPE])
			return fail_line(l, s->line, "[source.%s] type: missing (" SOURCE_TYPES ")",
					 s->name);
		if (rg_source_is_log(s->type)) {
			if (seen[SK_LISTEN])
				return fail_line(l, seen[SK_LISTEN],
						 "[source.%s] listen: only for type = dovecot-auth-policy",
						 s->name);
			if (!seen[SK_PATH])
				return fail_line(l, s->line,
						 "[source.%s] path: missing (the log file, a FIFO, or - for stdin)",
						 s->name);
		} else {
			if (seen[SK_PATH])
				return fail_line(l, seen[SK_PATH],
						 "[source.%s] path: not for type = dovecot-auth-policy (it listens)",
						 s->name);
			if (!seen[SK_LISTEN])
				return fail_line(l, s->line,
						 "[source.%s] listen: missing (HOST:PORT for auth_policy_server_url)",
						 s->name);
		}
		if (s->type != RG_SOURCE_REGEX) {
			if (seen[SK_MATCH] || seen[SK_FAILURE]) {
				unsigned k = seen[SK_MATCH] ? SK_MATCH : SK_FAILURE;

				return fail_line(l, seen[k], "[source.%s] %s: only for type = regex",
						 s->name, src_key_names[k]);
			}
		} else {
			struct rg_preset *p = rg_preset_new(RG_PRESET_REGEX, s->match, s->failure,
							    err, sizeof(err));

			if (!p) {
				if (!strncmp(err, "match:", 6))
					return fail_line(l, seen[SK_MATCH], "[source.%s] %s", s->name, err);
				if (!strncmp(err, "failure:", 8))
					return fail_line(l, seen[SK_FAILURE], "[source.%s] %s", s->name, err);
				return fail_line(l, s->line, "[source.%s]: %s", s->name, err);
			}
			rg_preset_free(p);
		}
		for (j = 0; j < i; j++) {
			const struct rg_source_cfg *o = &c->sources[j];

			if (rg_source_is_log(s->type) && rg_source_is_log(o->type) &&
			    !strcmp(s->path, o->path))
				return fail_line(l, seen[SK_PATH],
						 "[source.%s] path: %s is also read by [source.%s]",
						 s->name, quote(l, 0, s->path), o->name);
			if (!rg_source_is_log(s->type) && !rg_source_is_log(o->type) &&
			    endpoint_eq(&s->listen, &o->listen))
				return fail_line(l, seen[SK_LISTEN],
						 "[source.%s] listen: %s is also used by [source.%s]",
						 s->name, quote(l, 0, s->listen.text), o->name);
		}
	}
	return 0;
}

static unsigned key_line(const struct loader *l, enum section_id sec, const char *name)
{
	unsigned i;

	for (i = 0; i < NKEYS; i++)
		if (keys[i].sec == sec && !strcmp(keys[i].name, name))
			return l->key_line[i];
	return 0;
}

static int check_all(struct loader *l)
{
	struct rg_config_file *c = l->cfg;
	size_t i;

	if (check_sources(l))
		return -1;
	if (l->sec_line[SEC_POLICY] && !c->policy.listen.set)
		return fail_line(l, l->sec_line[SEC_POLICY],
				 "[policy] listen: missing (unix:/PATH or inet:HOST:PORT)");
	if (l->sec_line[SEC_CLUSTER] && !c->cluster.redis[0])
		return fail_line(l, l->sec_line[SEC_CLUSTER],
				 "[cluster] redis: missing (redis://HOST[:PORT][/DB])");
	/* Two listeners on one address would fail at start: say so now. */
	for (i = 0; i < c->n_sources; i++) {
		const struct rg_source_cfg *s = &c->sources[i];

		if (rg_source_is_log(s->type))
			continue;
		if (c->metrics.listen.set && endpoint_eq(&s->listen, &c->metrics.listen))
			return fail_line(l, l->src_key_line[i][SK_LISTEN],
					 "[source.%s] listen: %s is also [metrics] listen", s->name,
					 quote(l, 0, s->listen.text));
		if (c->policy.listen.set && endpoint_eq(&s->listen, &c->policy.listen))
			return fail_line(l, l->src_key_line[i][SK_LISTEN],
					 "[source.%s] listen: %s is also [policy] listen", s->name,
					 quote(l, 0, s->listen.text));
	}
	if (c->policy.listen.set && c->metrics.listen.set &&
	    endpoint_eq(&c->policy.listen, &c->metrics.listen))
		return fail_line(l, key_line(l, SEC_POLICY, "listen"), "[policy] listen: %s is also [metrics] listen",
				 quote(l, 0, c->policy.listen.text));
	if (c->policy.listen.is_unix && !strcmp(c->policy.listen.path, c->control.socket))
		return fail_line(l, key_line(l, SEC_POLICY, "listen"), "[policy] listen: %s is also [control] socket",
				 quote(l, 0, c->policy.listen.text));
	return 0;
}

static void set_defaults(struct rg_config_file *c, const char *name)
{
	static const uint16_t ports[] = RG_CONFIG_PORTS_DEFAULT;
	struct rg_endpoint *m = &c->metrics.listen;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&m->sa;
	gid_t gid;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "%s", name);
	c->gate.mode = RG_MODE_XDP;
	memcpy(c->gate.ports, ports, sizeof(ports));
	c->gate.n_ports = sizeof(ports) / sizeof(ports[0]);
	snprintf(c->gate.pin_dir, sizeof(c->gate.pin_dir), "%s", RG_PIN_DIR_DEFAULT);
	c->grants.ttl = RG_GRANT_TTL_DEFAULT;
	c->grants.max = RG_GRANTS_MAX_DEFAULT;
	c->grants.ipv4_prefix = 32;
	c->grants.ipv6_prefix = 64;
	snprintf(c->grants.state_file, sizeof(c->grants.state_file), "%s", RG_STATE_FILE_DEFAULT);
	c->deny.after_failures = RG_DENY_AFTER_DEFAULT;
	c->deny.within = RG_DENY_WITHIN_DEFAULT;
	c->deny.ttl = RG_DENY_TTL_DEFAULT;
	c->policy.owner_uid = (uid_t)-1;
	c->policy.owner_gid = (gid_t)-1;
	c->policy.socket_mode = 0660;
	snprintf(c->control.socket, sizeof(c->control.socket), "%s", RG_CONTROL_SOCKET_DEFAULT);
	snprintf(c->control.socket_group, sizeof(c->control.socket_group), "%s",
		 RG_CONTROL_GROUP_DEFAULT);
	c->control.socket_gid = lookup_group(RG_CONTROL_GROUP_DEFAULT, &gid) ? (gid_t)-1 : gid;
	c->control.socket_mode = 0660;
	m->set = true;
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s4->sin_port = htons(9469);
	m->salen = sizeof(*s4);
	snprintf(m->text, sizeof(m->text), "%s", RG_METRICS_LISTEN_DEFAULT);
}

void rg_config_free(struct rg_config_file *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_sources; i++) {
		free(c->sources[i].match);
		free(c->sources[i].failure);
	}
	free(c->sources);
	free(c->trust.subnets);
	memset(c, 0, sizeof(*c));
}

/* Lines fit inih's buffer and hold no NUL: checked before inih runs. */
static int prescan(struct loader *l)
{
	const char *s = l->text, *end = l->text + l->len;
	unsigned line = 1;

	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *e = nl ? nl : end;
		size_t n = (size_t)(e - s);

		if (n && s[n - 1] == '\r')
			n--;
		if (memchr(s, '\0', (size_t)(e - s)))
			return fail_line(l, line, "NUL byte in line");
		if (n > RG_CONFIG_LINE_MAX)
			return fail_line(l, line, "line longer than %d bytes", RG_CONFIG_LINE_MAX);
		s = e + 1;
		line++;
	}
	return 0;
}

int rg_config_load_string(const char *text, size_t len, const char *name,
			  struct rg_config_file *out, char *err, size_t errlen)
{
	struct loader l = {
		.name = name, .text = text, .len = len, .err = err, .errlen = errlen,
	};
	struct rg_config_file *c;
	/* inih's process-wide settings, ours for this call. */
	const bool s_multi = ini_allow_multiline, s_bom = ini_allow_bom,
		   s_inline = ini_allow_inline_comments, s_stack = ini_use_stack,
		   s_realloc = ini_allow_realloc, s_stop = ini_stop_on_first_error,
		   s_noval = ini_allow_no_value;
	char *const s_start = ini_start_comment_prefixes, *const s_inpfx = ini_inline_comment_prefixes;
	const int s_max = ini_max_line;
	int rc;

	if (errlen)
		err[0] = '\0';
	c = malloc(sizeof(*c));
	l.key_line = calloc(NKEYS, sizeof(*l.key_line));
	if (!c || !l.key_line) {
		free(c);
		free(l.key_line);
		snprintf(err, errlen, "%s: out of memory", name);
		return -1;
	}
	set_defaults(c, name);
	l.cfg = c;
	if (len > RG_CONFIG_MAX_BYTES) {
		fail_line(&l, 0, "larger than %d bytes", RG_CONFIG_MAX_BYTES);
		goto fail;
	}
	if (prescan(&l))
		goto fail;

	ini_allow_multiline = false;
	ini_allow_bom = true;
	ini_start_comment_prefixes = (char *)";#";
	ini_allow_inline_comments = true;
	ini_inline_comment_prefixes = (char *)";";
	ini_use_stack = true;
	ini_max_line = RG_CONFIG_LINE_MAX + 3;   /* + "\r\n" and NUL */
	ini_allow_realloc = false;
	ini_stop_on_first_error = true;
	ini_allow_no_value = false;
	rc = ini_parse_stream(reader, &l, handler, &l);
	ini_allow_multiline = s_multi;
	ini_allow_bom = s_bom;
	ini_start_comment_prefixes = s_start;
	ini_allow_inline_comments = s_inline;
	ini_inline_comment_prefixes = s_inpfx;
	ini_use_stack = s_stack;
	ini_max_line = s_max;
	ini_allow_realloc = s_realloc;
	ini_stop_on_first_error = s_stop;
	ini_allow_no_value = s_noval;

	if (l.failed)
		goto fail;
	if (rc > 0) {
		fail_line(&l, (unsigned)rc, "expected \"[section]\" or \"key = value\"");
		goto fail;
	}
	if (rc < 0) {
		fail_line(&l, 0, "cannot parse (inih error %d)", rc);
		goto fail;
	}
	if (check_all(&l))
		goto fail;
	free(l.key_line);
	free(l.src_key_line);
	*out = *c;
	free(c);
	return 0;
fail:
	free(l.key_line);
	free(l.src_key_line);
	rg_config_free(c);
	free(c);
	return -1;
}

int rg_config_load(const char *path, struct rg_config_file *out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st)) {
		snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	if (st.st_mode & S_IWOTH) {
		snprintf(err, errlen, "%s: world-writable: anyone could trust their own address "
			 "(chmod o-w %s)", path, path);
		goto fail;
	}
	if (st.st_size > RG_CONFIG_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %d bytes", path, RG_CONFIG_MAX_BYTES);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	while (got < (size_t)st.st_size + 1) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
			goto fail;
		}
		if (!n)
			break;
		got += (size_t)n;
	}
	if (got > (size_t)st.st_size) {
		snprintf(err, errlen, "%s: changed while being read", path);
		goto fail;
	}
	close(fd);
	rc = rg_config_load_string(buf, got, path, out, err, errlen);
	free(buf);
	return rc;
fail:
	free(buf);
	close(fd);
	return -1;
}
