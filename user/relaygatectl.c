// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * relaygatectl: the command line over the pinned maps.
 *
 *   relaygatectl [--pin-dir DIR] [--json] [--socket PATH] OBJECT [VERB] ARGS...
 *
 * A command table maps OBJECT VERB to one do_<object>_<verb>() each; every
 * command parses its own options. Every command validates all of its
 * arguments before it changes anything, and multi-step edits hold the pin
 * dir's flock, so a command applies all of its arguments or none.
 *
 * Exit status: 0 done, 1 failed (one line on stderr: what, why, and the fix
 * when there is one), 2 usage (unknown command or option, missing argument).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include "bulk.h"
#include "cidr.h"
#include "control.h"
#include "duration.h"
#include "gatemaps.h"
#include "log.h"
#include "metrics.h"

#ifndef RELAYGATE_VERSION
#define RELAYGATE_VERSION "0.1.0"
#endif

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define GRANT_TTL_DEFAULT (30 * 60)
#define DENY_TTL_DEFAULT  (60 * 60)
#define WATCH_MAX_SEC     3600
#define NS_PER_SEC        1000000000ULL

static struct {
	const char *pin_dir;
	const char *socket;
	bool json;
	bool verbose;
} opt = {
	.pin_dir = RG_PIN_DIR_DEFAULT,
	.socket = RG_CONTROL_SOCKET_DEFAULT,
};

/* "trust add": the command being run, for messages. */
static char cmd_name[64];

/* ---------------------------------------------------------------- output */

/* A user-supplied value made safe to quote in a one-line message. */
static const char *shown(const char *s)
{
	static char bufs[4][96];
	static unsigned next;

	return rg_shown(s, bufs[next++ % 4], sizeof(bufs[0]));
}

/*
 * Room for one more element in an array v of n elements of esz bytes with
 * *cap allocated: returns v, or v grown to twice *cap (first when empty),
 * or NULL when out of memory (v is still the caller's, *cap unchanged).
 */
static void *grow(void *v, size_t n, size_t *cap, size_t esz, size_t first)
{
	size_t c;

	if (n < *cap)
		return v;
	c = *cap ? *cap * 2 : first;
	v = realloc(v, c * esz);
	if (v)
		*cap = c;
	return v;
}

/* Exit 1 with "relaygatectl: <command>: <message>". */
static int __attribute__((format(printf, 1, 2))) failed(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (*cmd_name)
		rg_err("%s: %s", cmd_name, msg);
	else
		rg_err("%s", msg);
	return EXIT_FAIL;
}

/* An error of rg_gate_attach/detach/purge: most name the command already
 * ("detach v2: not attached"); the others ("interface nosuch0: no such
 * interface") get its name like every other error. Exit 1. */
static int gate_failed(const char *err)
{
	size_t n = strlen(cmd_name);

	if (n && !strncmp(err, cmd_name, n) && (err[n] == ' ' || err[n] == ':')) {
		rg_err("%s", err);
		return EXIT_FAIL;
	}
	return failed("%s", err);
}

/* Exit 2 with "relaygatectl: <command>: <message> (see relaygatectl --help)". */
static int __attribute__((format(printf, 1, 2))) usage_err(const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (*cmd_name)
		rg_err("%s: %s (see relaygatectl --help)", cmd_name, msg);
	else
		rg_err("%s (see relaygatectl --help)", msg);
	return EXIT_USAGE;
}

/* Confirmation of a change, for people; silent under --json. */
static void __attribute__((format(printf, 1, 2))) done(const char *fmt, ...)
{
	va_list ap;

	if (opt.json)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Length of a valid UTF-8 sequence at s, 0 if invalid. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)))
		return 0;
	if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)))
		return 0;
	return n;
}

/* A JSON string, quoted and escaped; invalid UTF-8 becomes U+FFFD. */
static void json_str(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	while (*p) {
		size_t n;

		if (*p == '"' || *p == '\\') {
			putchar('\\');
			putchar(*p++);
		} else if (*p < 0x20 || *p == 0x7f) {
			printf("\\u%04x", *p++);
		} else if ((n = utf8_len(p))) {
			fwrite(p, 1, n, stdout);
			p += n;
		} else {
			fputs("\\ufffd", stdout);
			p++;
		}
	}
	putchar('"');
}

/* A text table: rows of NCOL cells, columns padded to their widest cell. */
#define TBL_MAXCOL 6
struct table {
	size_t ncol, nrow, cap;
	char **cells;
};

static void tbl_init(struct table *t, size_t ncol)
{
	memset(t, 0, sizeof(*t));
	t->ncol = ncol;
}

static void tbl_row(struct table *t, ...)
{
	va_list ap;
	char **c;
	size_t i;

	c = grow(t->cells, t->nrow, &t->cap, t->ncol * sizeof(*c), 16);
	if (!c)
		return;
	t->cells = c;
	va_start(ap, t);
	for (i = 0; i < t->ncol; i++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->nrow * t->ncol + i] = strdup(s ? s : "-");
	}
	va_end(ap);
	t->nrow++;
}

static void tbl_print(struct table *t, const char *indent)
{
	size_t w[TBL_MAXCOL] = { 0 }, r, c;

	for (r = 0; r < t->nrow; r++)
		for (c = 0; c < t->ncol; c++) {
			const char *s = t->cells[r * t->ncol + c];
			size_t l = s ? strlen(s) : 0;

			if (l > w[c])
				w[c] = l;
		}
	for (r = 0; r < t->nrow; r++) {
		fputs(indent, stdout);
		for (c = 0; c < t->ncol; c++) {
			const char *s = t->cells[r * t->ncol + c];

			if (!s)
				s = "";
			if (c + 1 < t->ncol)
				printf("%-*s  ", (int)w[c], s);
			else
				printf("%s\n", s);
		}
	}
}

static void tbl_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nrow * t->ncol; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------- options */

#define OPT_JSON 0x100
#define OPT_HELP 0x101

static const char *cmd_usage;   /* the running command's usage line */
static unsigned opt_seen;       /* options with a value given so far (bit: index) */

/*
 * getopt_long for one command: options may come before or after the
 * positional arguments. --json and --help are understood everywhere. An
 * option with a value may be given once ("--ttl 1h --ttl 2h" would
 * otherwise quietly keep one of them). Returns the option, -1 at the end,
 * or '?' after printing a usage error.
 */
static int next_opt(int argc, char **argv, const struct option *lo)
{
	struct option all[16];
	size_t n = 0;
	int c;

	while (lo && lo[n].name && n < 13) {
		all[n] = lo[n];
		n++;
	}
	all[n++] = (struct option){ "json", no_argument, NULL, OPT_JSON };
	all[n++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	all[n] = (struct option){ 0 };
	for (;;) {
		int idx = -1;

		opterr = 0;
		c = getopt_long(argc, argv, ":h", all, &idx);
		if (c == OPT_JSON) {
			opt.json = true;
			continue;
		}
		if (c == OPT_HELP || c == 'h') {
			printf("usage: relaygatectl %s\n", cmd_usage);
			exit(EXIT_OK);
		}
		if (c == '?') {
			if (optopt)
				usage_err("unknown option -%c", optopt);
			else
				usage_err("unknown option %s", shown(argv[optind - 1]));
			return '?';
		}
		if (c == ':') {
			usage_err("option %s needs a value", shown(argv[optind - 1]));
			return '?';
		}
		if (idx >= 0 && all[idx].has_arg == required_argument) {
			if (opt_seen & (1u << idx)) {
				usage_err("option --%s given twice", all[idx].name);
				return '?';
			}
			opt_seen |= 1u << idx;
		}
		return c;
	}
}

/* Reset getopt for a command's argv (argv[0] is the verb). */
static void opt_reset(void)
{
	optind = 0;
	opt_seen = 0;
}

/* ------------------------------------------------------ argument parsing */

/* The checks are bulk.c's, shared with the --file line formats. */
static int parse_cidr_arg(const char *s, struct rg_cidr *c)
{
	char err[512];

	if (!rg_arg_cidr(s, &c->addr, &c->prefixlen, err, sizeof(err)))
		return 0;
	failed("%s", err);
	return -1;
}

static int parse_addr_arg(const char *s, struct rg_addr *a)
{
	char err[512];

	if (!rg_arg_addr(s, a, err, sizeof(err)))
		return 0;
	failed("%s", err);
	return -1;
}

/* A duration for --ttl and friends: > 0. */
static int parse_ttl_arg(const char *what, const char *s, uint64_t *sec)
{
	char err[512];

	if (!rg_arg_ttl(what, s, sec, err, sizeof(err)))
		return 0;
	failed("%s", err);
	return -1;
}

/* "465,587" (and more such arguments): ports 1..65535, appended to ports[]. */
static int parse_ports_arg(const char *s, uint16_t *ports, size_t *n, size_t max)
{
	const char *p = s;

	if (!*s) {
		failed("ports '': empty port list");
		return -1;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p), i;
		unsigned long v = 0;
		char tok[16];

		if (!len) {
			failed("ports %s: empty port in the list", shown(s));
			return -1;
		}
		snprintf(tok, sizeof(tok), "%.*s", (int)(len < 12 ? len : 12), p);
		for (i = 0; i < len; i++) {
			if (p[i] < '0' || p[i] > '9') {
				failed("port %s: not a number", shown(tok));
				return -1;
			}
			if (v <= 65535)
				v = v * 10 + (unsigned long)(p[i] - '0');
		}
		if (v < 1 || v > 65535) {
			failed("port %s: out of range (1..65535)", shown(tok));
			return -1;
		}
		if (*n >= max) {
			failed("ports %s: too many ports", shown(s));
			return -1;
		}
		ports[(*n)++] = (uint16_t)v;
		if (!end)
			return 0;
		p = end + 1;
	}
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Sort and drop duplicates; returns the new count. */
static size_t ports_unique(uint16_t *ports, size_t n)
{
	size_t i, j = 0;

	qsort(ports, n, sizeof(*ports), cmp_u16);
	for (i = 0; i < n; i++)
		if (!j || ports[j - 1] != ports[i])
			ports[j++] = ports[i];
	return j;
}

static int parse_iface_arg(const char *s, unsigned *ifindex)
{
	if (!*s || strlen(s) >= IF_NAMESIZE || strchr(s, '/')) {
		failed("interface %s: not an interface name", shown(s));
		return -1;
	}
	*ifindex = if_nametoindex(s);
	if (!*ifindex) {
		failed("interface %s: no such interface", shown(s));
		return -1;
	}
	return 0;
}

/* A user name as the maps keep it: 1..63 bytes, printable, no spaces. */
static int parse_user_arg(const char *s)
{
	char err[512];

	if (!rg_arg_user(s, err, sizeof(err)))
		return 0;
	failed("%s", err);
	return -1;
}

/* ------------------------------------------------------------- the gate */

static int open_gate(struct rg_gate *g, bool lock)
{
	if (rg_gate_open(g, opt.pin_dir)) {
		failed("%s", g->err);
		return -1;
	}
	if (lock && rg_gate_lock(g)) {
		failed("%s", g->err);
		rg_gate_close(g);
		return -1;
	}
	return 0;
}

static const char *key_text(const struct rg_gate *g, const struct rg_addr *k,
			    char *buf, size_t len)
{
	unsigned plen = k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix;

	if (plen >= (k->family == RG_AF_INET ? 32u : 128u))
		return rg_addr_str(k, buf, len);
	return rg_cidr_str(k, plen, buf, len);
}

static unsigned key_plen(const struct rg_gate *g, const struct rg_addr *k)
{
	unsigned plen = k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix;
	unsigned full = k->family == RG_AF_INET ? 32 : 128;

	return plen < full ? plen : full;
}

static int cmp_addr(const struct rg_addr *a, const struct rg_addr *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* Seconds left until expires (rounded up), 0 when expired. */
static uint64_t secs_left(uint64_t expires, uint64_t now)
{
	return expires > now ? (expires - now + NS_PER_SEC - 1) / NS_PER_SEC : 0;
}

/* --------------------------------------------------------- attach/detach */

static int do_attach(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "ports", required_argument, NULL, 'p' },
		{ "reject", required_argument, NULL, 'r' },
		{ 0 },
	};
	static uint16_t ports[65536];
	struct rg_load_opts o = { 0 };
	enum rg_mode mode = RG_MODE_XDP;
	const char *mode_s = NULL, *ports_s = NULL, *reject_s = NULL;
	char err[512];
	unsigned ifindex;
	size_t n = 0;
	int c;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 'm')
			mode_s = optarg;
		else if (c == 'p')
			ports_s = optarg;
		else if (c == 'r')
			reject_s = optarg;
		else
			return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one interface" : "missing IFACE");
	if (mode_s && rg_mode_parse(mode_s, &mode))
		return failed("mode %s: unknown (xdp, xdp-generic or tc)", shown(mode_s));
	if (reject_s) {
		if (strcmp(reject_s, "drop") && strcmp(reject_s, "rst"))
			return failed("reject %s: unknown (drop or rst)", shown(reject_s));
		o.reject_rst = !strcmp(reject_s, "rst");
		o.apply_reject = true;
	}
	if (ports_s) {
		if (parse_ports_arg(ports_s, ports, &n, sizeof(ports) / sizeof(ports[0])))
			return EXIT_FAIL;
		o.ports = ports;
		o.nports = ports_unique(ports, n);
	}
	if (parse_iface_arg(argv[optind], &ifindex))
		return EXIT_FAIL;
	if (rg_gate_attach(opt.pin_dir, argv[optind], mode, &o, err, sizeof(err)))
		return gate_failed(err);
	done("%s: attached (%s%s), maps under %s", argv[optind], rg_mode_name(mode),
	     reject_s ? (o.reject_rst ? ", reject rst" : ", reject drop") : "", opt.pin_dir);
	return EXIT_OK;
}

static int do_detach(int argc, char **argv)
{
	char err[512];

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one interface" : "missing IFACE");
	if (rg_gate_detach(opt.pin_dir, argv[optind], err, sizeof(err)))
		return gate_failed(err);
	done("%s: detached (maps stay pinned under %s)", argv[optind], opt.pin_dir);
	return EXIT_OK;
}

static int do_purge(int argc, char **argv)
{
	char err[512];

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (rg_gate_purge(opt.pin_dir, err, sizeof(err)))
		return gate_failed(err);
	done("removed the pinned maps under %s", opt.pin_dir);
	return EXIT_OK;
}

/* ---------------------------------------------------------------- status */

struct fill {
	const char *name;
	long entries, max;
};

static size_t map_fill(struct rg_gate *g, struct fill *f)
{
	const struct {
		const char *name;
		int fd;
	} m[] = {
		{ RG_MAP_TIFACE, g->tiface_fd },
		{ RG_MAP_TRUST4, g->trust4_fd },
		{ RG_MAP_TRUST6, g->trust6_fd },
		{ RG_MAP_GRANTS, g->grants_fd },
		{ RG_MAP_DENY, g->deny_fd },
		{ RG_MAP_FLOWS, g->flows_fd },
	};
	size_t i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		f[i].name = m[i].name;
		f[i].entries = rg_map_count(m[i].fd);
		f[i].max = rg_map_max_entries(m[i].fd);
	}
	return i;
}

#define MAX_ATT 64

static int do_status(int argc, char **argv)
{
	static uint16_t ports[65536];
	struct rg_attachment att[MAX_ATT];
	struct rg_counter ctr[RG_STAT_MAX];
	struct rg_summary_info sum;
	struct fill fill[8];
	struct rg_gate g;
	size_t nfill, i;
	int natt, nports;
	char buf[64];

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (open_gate(&g, false))
		return EXIT_FAIL;
	natt = rg_gate_attachments(opt.pin_dir, att, MAX_ATT);
	if (natt < 0) {
		rg_gate_close(&g);
		return failed("%s: %s", opt.pin_dir, strerror(-natt));
	}
	nports = rg_ports_list(&g, ports, 65536);
	if (nports < 0 || rg_stats_read(&g, ctr)) {
		rg_gate_close(&g);
		return failed("%s", g.err);
	}
	nfill = map_fill(&g, fill);
	if (rg_summary_info(&g, &sum)) {
		rg_gate_close(&g);
		return failed("%s", g.err);
	}

	if (opt.json) {
		printf("{\"pin_dir\":");
		json_str(opt.pin_dir);
		printf(",\"abi_version\":%u,\"attachments\":[", g.cfg.abi_version);
		for (i = 0; i < (size_t)natt; i++) {
			printf("%s{\"interface\":", i ? "," : "");
			json_str(att[i].ifname);
			printf(",\"ifindex\":%u,\"mode\":\"%s\",\"prog_id\":%u,\"active\":%s}",
			       att[i].ifindex, rg_mode_name(att[i].mode), att[i].prog_id,
			       att[i].prog_id ? "true" : "false");
		}
		printf("],\"config\":{\"ipv4_prefix\":%u,\"ipv6_prefix\":%u,\"reject\":\"%s\"},\"ports\":[",
		       g.cfg.v4_prefix, g.cfg.v6_prefix,
		       g.cfg.flags & RG_CFG_REJECT_RST ? "rst" : "drop");
		for (i = 0; i < (size_t)nports; i++)
			printf("%s%u", i ? "," : "", ports[i]);
		printf("],\"maps\":{");
		for (i = 0; i < nfill; i++)
			printf("%s\"%s\":{\"entries\":%ld,\"max_entries\":%ld}", i ? "," : "",
			       fill[i].name, fill[i].entries, fill[i].max);
		printf("},\"summary\":{\"on\":%s,\"ipv4_slots\":%u,\"ipv6_slots\":%u,"
		       "\"ipv4_fine\":%u,\"ipv6_fine\":%u,"
		       "\"tiface_empty\":%s,\"deny_empty\":%s,\"fast_drop\":%s}",
		       sum.on ? "true" : "false", sum.v4_slots, sum.v6_slots, sum.v4_fine, sum.v6_fine,
		       sum.no_tiface ? "true" : "false", sum.no_deny ? "true" : "false",
		       sum.on && sum.no_tiface && sum.fast ? "true" : "false");
		printf(",\"counters\":{");
		for (i = 0; i < RG_STAT_MAX; i++)
			printf("%s\"%s\":{\"packets\":%llu,\"bytes\":%llu}", i ? "," : "",
			       rg_stat_name((unsigned)i), (unsigned long long)ctr[i].packets,
			       (unsigned long long)ctr[i].bytes);
		printf("}}\n");
	} else {
		struct table t;

		printf("pin dir:    %s (map ABI v%u)\n", opt.pin_dir, g.cfg.abi_version);
		if (!natt) {
			printf("attached:   nothing (the gate is open)\n");
		} else {
			printf("attached:\n");
			tbl_init(&t, 4);
			tbl_row(&t, "IFACE", "IFINDEX", "MODE", "PROG");
			for (i = 0; i < (size_t)natt; i++) {
				char ifx[16], pid[32];

				snprintf(ifx, sizeof(ifx), "%u", att[i].ifindex);
				if (att[i].prog_id)
					snprintf(pid, sizeof(pid), "%u", att[i].prog_id);
				else
					snprintf(pid, sizeof(pid), "gone (detach to clean up)");
				tbl_row(&t, att[i].ifname, att[i].ifindex ? ifx : "-",
					rg_mode_name(att[i].mode), pid);
			}
			tbl_print(&t, "  ");
			tbl_free(&t);
		}
		printf("config:     grant keys IPv4 /%u, IPv6 /%u; reject %s\n", g.cfg.v4_prefix,
		       g.cfg.v6_prefix, g.cfg.flags & RG_CFG_REJECT_RST ? "rst" : "drop");
		printf("ports:     ");
		for (i = 0; i < (size_t)nports; i++)
			printf(" %u", ports[i]);
		printf("%s\n", nports ? "" : " none (nothing is protected)");
		printf("maps:\n");
		tbl_init(&t, 3);
		tbl_row(&t, "MAP", "ENTRIES", "MAX");
		for (i = 0; i < nfill; i++) {
			char e[32], m[32];

			snprintf(e, sizeof(e), "%ld", fill[i].entries);
			snprintf(m, sizeof(m), "%ld", fill[i].max);
			tbl_row(&t, fill[i].name, e, m);
		}
		tbl_print(&t, "  ");
		tbl_free(&t);
		if (sum.on)
			printf("summary:    on: %u of 65536 IPv4 /16 slots (%u /24 bits) and %u of 65536 IPv6 slots (%u /48 bits) hold entries%s%s; straight-line drop %s\n",
			       sum.v4_slots, sum.v4_fine, sum.v6_slots, sum.v6_fine,
			       sum.no_tiface ? "; no trusted interface" : "",
			       sum.no_deny ? "; no deny" : "",
			       !sum.no_tiface ? "off (a trusted interface)" :
			       !sum.fast ? "off (reject = rst, or grant prefixes shorter than IPv4 /16 or IPv6 /32)" :
			       "on");
		else
			printf("summary:    off (every source is looked up; relaygated rebuilds it)\n");
		printf("counters:\n");
		tbl_init(&t, 3);
		tbl_row(&t, "REASON", "PACKETS", "BYTES");
		for (i = 0; i < RG_STAT_MAX; i++) {
			char p[32];

			snprintf(p, sizeof(p), "%llu", (unsigned long long)ctr[i].packets);
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)ctr[i].bytes);
			tbl_row(&t, rg_stat_name((unsigned)i), p, buf);
		}
		tbl_print(&t, "  ");
		tbl_free(&t);
	}
	rg_gate_close(&g);
	return EXIT_OK;
}

/* ----------------------------------------------------------------- trust */

/* CIDRs read from a --file, one a line. */
struct cidr_list {
	struct rg_cidr *v;
	size_t n, cap;
};

static int cidr_push(struct cidr_list *l, const struct rg_cidr *c)
{
	struct rg_cidr *v = grow(l->v, l->n, &l->cap, sizeof(*v), 1024);

	if (!v)
		return -1;
	l->v = v;
	l->v[l->n++] = *c;
	return 0;
}

static int cidr_line(const char *line, void *ctx, char *err, size_t errlen)
{
	struct rg_cidr c;
	int r;

	memset(&c, 0, sizeof(c));
	r = rg_cidr_line_parse(line, &c.addr, &c.prefixlen, err, errlen);
	if (r <= 0)
		return r;
	if (cidr_push(ctx, &c)) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int cmp_cidr(const void *a, const void *b)
{
	const struct rg_cidr *x = a, *y = b;
	int r = cmp_addr(&x->addr, &y->addr);

	return r ? r : (x->prefixlen > y->prefixlen) - (x->prefixlen < y->prefixlen);
}

/* How many different subnets l holds ("trust add X X" adds one). Sorts l. */
static size_t cidr_distinct(struct cidr_list *l)
{
	size_t i, n = 0;

	qsort(l->v, l->n, sizeof(*l->v), cmp_cidr);
	for (i = 0; i < l->n; i++)
		if (!i || cmp_cidr(&l->v[i - 1], &l->v[i]))
			n++;
	return n;
}

/* "-" reads standard input; name it so in messages. */
static const char *file_name(const char *path)
{
	return strcmp(path, "-") ? shown(path) : "standard input";
}

static int trust_edit(int argc, char **argv, bool add)
{
	static const struct option lo[] = {
		{ "file", required_argument, NULL, 'f' },
		{ 0 },
	};
	struct cidr_list l = { 0 };
	const char *file = NULL;
	struct rg_gate g;
	char err[600];
	int i, n, c, rc;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 'f')
			file = optarg;
		else
			return EXIT_USAGE;
	}
	n = argc - optind;
	if (file && n)
		return usage_err("give CIDRs or --file FILE, not both");
	if (!file && n < 1)
		return usage_err("missing CIDR (or --file FILE)");
	/* Every CIDR first: one bad one changes nothing. */
	if (file) {
		if (rg_lines_read(file, cidr_line, &l, err, sizeof(err))) {
			free(l.v);
			return failed("%s", err);
		}
	} else {
		l.v = calloc((size_t)n, sizeof(*l.v));
		if (!l.v)
			return failed("out of memory");
		for (i = 0; i < n; i++) {
			if (parse_cidr_arg(argv[optind + i], &l.v[i])) {
				free(l.v);
				return EXIT_FAIL;
			}
		}
		l.n = (size_t)n;
	}
	if (open_gate(&g, true)) {
		free(l.v);
		return EXIT_FAIL;
	}
	rc = add ? rg_trust_add(&g, l.v, l.n) : rg_trust_del(&g, l.v, l.n);
	if (rc) {
		failed("%s", g.err);
	} else {
		size_t nd = cidr_distinct(&l);

		if (file)
			done("%s %zu trusted subnet%s (%s)", add ? "added" : "removed", nd,
			     nd == 1 ? "" : "s", file_name(file));
		else
			done("%s %zu trusted subnet%s", add ? "added" : "removed", nd,
			     nd == 1 ? "" : "s");
	}
	rg_gate_close(&g);
	free(l.v);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_trust_add(int argc, char **argv)
{
	return trust_edit(argc, argv, true);
}

static int do_trust_del(int argc, char **argv)
{
	return trust_edit(argc, argv, false);
}

static int collect_cidr(const struct rg_cidr *c, void *ctx)
{
	return cidr_push(ctx, c);
}

static int do_trust_list(int argc, char **argv)
{
	struct cidr_list l = { 0 };
	struct rg_gate g;
	char buf[RG_ADDRSTRLEN];
	size_t i;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (open_gate(&g, false))
		return EXIT_FAIL;
	if (rg_trust_foreach(&g, collect_cidr, &l)) {
		failed("%s", g.err);
		rg_gate_close(&g);
		free(l.v);
		return EXIT_FAIL;
	}
	qsort(l.v, l.n, sizeof(*l.v), cmp_cidr);
	if (opt.json)
		putchar('[');
	for (i = 0; i < l.n; i++) {
		rg_cidr_str(&l.v[i].addr, l.v[i].prefixlen, buf, sizeof(buf));
		if (opt.json) {
			printf("%s{\"cidr\":\"%s\",\"family\":%u,\"prefixlen\":%u}", i ? "," : "", buf,
			       l.v[i].addr.family, l.v[i].prefixlen);
		} else {
			printf("%s\n", buf);
		}
	}
	if (opt.json)
		printf("]\n");
	rg_gate_close(&g);
	free(l.v);
	return EXIT_OK;
}

/* ----------------------------------------------------------- trust-iface */

/* An interface argument of trust-iface del: a name, or "#N" for the
 * ifindex of an interface that no longer exists (as the listing shows it). */
static int parse_tiface_del_arg(const char *s, unsigned *ifindex)
{
	char *end;
	unsigned long v;

	if (s[0] == '#' && s[1] >= '0' && s[1] <= '9') {
		errno = 0;
		v = strtoul(s + 1, &end, 10);
		if (!errno && !*end && v > 0 && v <= 0x7fffffff) {
			*ifindex = (unsigned)v;
			return 0;
		}
	}
	return parse_iface_arg(s, ifindex);
}

static int tiface_edit(int argc, char **argv, bool add)
{
	struct rg_gate g;
	unsigned *idx;
	int i, n, rc;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	n = argc - optind;
	if (n < 1)
		return usage_err("missing IFACE");
	idx = calloc((size_t)n, sizeof(*idx));
	if (!idx)
		return failed("out of memory");
	for (i = 0; i < n; i++) {
		rc = add ? parse_iface_arg(argv[optind + i], &idx[i])
			 : parse_tiface_del_arg(argv[optind + i], &idx[i]);
		if (rc) {
			free(idx);
			return EXIT_FAIL;
		}
	}
	if (open_gate(&g, true)) {
		free(idx);
		return EXIT_FAIL;
	}
	rc = add ? rg_tiface_add(&g, idx, (size_t)n) : rg_tiface_del(&g, idx, (size_t)n);
	if (rc)
		failed("%s", g.err);
	else
		done("%s %d trusted interface%s", add ? "added" : "removed", n, n == 1 ? "" : "s");
	rg_gate_close(&g);
	free(idx);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_tiface_add(int argc, char **argv)
{
	return tiface_edit(argc, argv, true);
}

static int do_tiface_del(int argc, char **argv)
{
	return tiface_edit(argc, argv, false);
}

static int do_tiface_list(int argc, char **argv)
{
	unsigned idx[RG_TIFACE_MAX];
	struct rg_gate g;
	int n, i;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (open_gate(&g, false))
		return EXIT_FAIL;
	n = rg_tiface_list(&g, idx, RG_TIFACE_MAX);
	if (n < 0) {
		failed("%s", g.err);
		rg_gate_close(&g);
		return EXIT_FAIL;
	}
	if (opt.json)
		putchar('[');
	for (i = 0; i < n; i++) {
		char name[IF_NAMESIZE];
		bool have = if_indextoname(idx[i], name) != NULL;

		if (opt.json) {
			printf("%s{\"name\":", i ? "," : "");
			json_str(have ? name : NULL);
			printf(",\"ifindex\":%u}", idx[i]);
		} else if (have) {
			printf("%s\n", name);
		} else {
			printf("#%u (interface gone; `trust-iface del #%u` removes it)\n", idx[i], idx[i]);
		}
	}
	if (opt.json)
		printf("]\n");
	rg_gate_close(&g);
	return EXIT_OK;
}

/* ----------------------------------------------------------------- grant */

/* Grants read from a --file: one request a line. Users repeat from line
 * to line, so each distinct run is kept once. */
struct grant_file {
	struct rg_grant_req *v;
	size_t n, cap;
	uint64_t ttl;                   /* default, seconds */
	const char *user;               /* default, or NULL */
	char **users;                   /* the user strings, to free */
	size_t nusers, capusers;
};

static const char *grant_file_user(struct grant_file *f, const char *user)
{
	char **v, *u;

	if (!*user)
		return f->user;
	if (f->nusers && !strcmp(f->users[f->nusers - 1], user))
		return f->users[f->nusers - 1];
	v = grow(f->users, f->nusers, &f->capusers, sizeof(*v), 16);
	if (!v)
		return NULL;
	f->users = v;
	u = strdup(user);
	if (!u)
		return NULL;
	f->users[f->nusers++] = u;
	return u;
}

static int grant_line(const char *line, void *ctx, char *err, size_t errlen)
{
	struct grant_file *f = ctx;
	struct rg_grant_line gl;
	struct rg_grant_req *r;
	int rc;

	rc = rg_grant_line_parse(line, &gl, err, errlen);
	if (rc <= 0)
		return rc;
	r = grow(f->v, f->n, &f->cap, sizeof(*r), 1024);
	if (!r)
		goto oom;
	f->v = r;
	r = &f->v[f->n];
	r->src = gl.addr;
	r->ttl_ns = (gl.ttl_sec ? gl.ttl_sec : f->ttl) * NS_PER_SEC;
	r->user = grant_file_user(f, gl.user);
	if (gl.user[0] && !r->user)
		goto oom;
	f->n++;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void grant_file_free(struct grant_file *f)
{
	size_t i;

	for (i = 0; i < f->nusers; i++)
		free(f->users[i]);
	free(f->users);
	free(f->v);
}

/* grant add --file: every line checked, then all put at once or none. */
static int grant_add_file(const char *file, uint64_t ttl, const char *user)
{
	struct grant_file f = { .ttl = ttl, .user = user };
	size_t created = 0, renewed = 0, kept = 0;
	struct rg_gate g;
	char err[600];
	int rc;

	if (rg_lines_read(file, grant_line, &f, err, sizeof(err))) {
		grant_file_free(&f);
		return failed("%s", err);
	}
	if (open_gate(&g, true)) {
		grant_file_free(&f);
		return EXIT_FAIL;
	}
	rc = rg_grant_put_many(&g, f.v, f.n, RG_ORIGIN_CLI, RG_SERVICE_NONE, &created, &renewed,
			       &kept);
	if (rc)
		failed("%s", g.err);
	else if (kept)
		done("%zu grant%s (%s): %zu new, %zu renewed, %zu kept (they expire later already)",
		     f.n, f.n == 1 ? "" : "s", file_name(file), created, renewed, kept);
	else
		done("%zu grant%s (%s): %zu new, %zu renewed", f.n, f.n == 1 ? "" : "s",
		     file_name(file), created, renewed);
	rg_gate_close(&g);
	grant_file_free(&f);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_grant_add(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ "user", required_argument, NULL, 'u' },
		{ "file", required_argument, NULL, 'f' },
		{ 0 },
	};
	const char *ttl_s = NULL, *user = NULL, *file = NULL;
	char buf[RG_ADDRSTRLEN], dur[32], dur_ttl[32];
	uint64_t ttl = GRANT_TTL_DEFAULT;
	struct rg_addr a, key;
	struct rg_grant old;
	bool live;
	struct rg_gate g;
	int c, rc;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 't')
			ttl_s = optarg;
		else if (c == 'u')
			user = optarg;
		else if (c == 'f')
			file = optarg;
		else
			return EXIT_USAGE;
	}
	if (file && argc - optind)
		return usage_err("give ADDR or --file FILE, not both");
	if (!file && argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one address (or --file FILE)" : "missing ADDR (or --file FILE)");
	if (!file && parse_addr_arg(argv[optind], &a))
		return EXIT_FAIL;
	if (ttl_s && parse_ttl_arg("TTL", ttl_s, &ttl))
		return EXIT_FAIL;
	if (user && parse_user_arg(user))
		return EXIT_FAIL;
	if (file)
		return grant_add_file(file, ttl, user);
	if (open_gate(&g, true))
		return EXIT_FAIL;
	/* An expired grant not swept yet is replaced, not renewed. */
	live = !rg_grant_get(&g, &a, &old) && old.expires > rg_now_ns();
	rc = rg_grant_put(&g, &a, ttl * NS_PER_SEC, user, RG_ORIGIN_CLI, RG_SERVICE_NONE, NULL);
	if (rc) {
		failed("%s", g.err);
	} else {
		struct rg_grant v;
		uint64_t now = rg_now_ns();

		key = a;
		rg_addr_key(&key, g.cfg.v4_prefix, g.cfg.v6_prefix);
		key_text(&g, &key, buf, sizeof(buf));
		/* Never shortened: say when it really expires. */
		if (rg_grant_get(&g, &a, &v))
			v.expires = now + ttl * NS_PER_SEC;
		rg_duration_str(secs_left(v.expires, now), dur, sizeof(dur));
		if (live && v.expires <= old.expires)
			done("kept the grant of %s%s%s: it expires in %s, later than %s",
			     buf, v.user[0] ? " to " : "", v.user[0] ? v.user : "", dur,
			     rg_duration_str(ttl, dur_ttl, sizeof(dur_ttl)));
		else
			done("%s %s%s%s, expires in %s", live ? "renewed" : "granted", buf,
			     v.user[0] ? " to " : "", v.user[0] ? v.user : "", dur);
	}
	rg_gate_close(&g);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_grant_del(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "user", required_argument, NULL, 'u' },
		{ 0 },
	};
	const char *user = NULL;
	struct rg_gate g;
	struct rg_addr a;
	unsigned count = 0;
	int c, rc;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 'u')
			user = optarg;
		else
			return EXIT_USAGE;
	}
	if (user && argc - optind)
		return usage_err("give ADDR or --user NAME, not both");
	if (!user && argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one address" : "missing ADDR or --user NAME");
	if (user ? parse_user_arg(user) : parse_addr_arg(argv[optind], &a))
		return EXIT_FAIL;
	if (open_gate(&g, true))
		return EXIT_FAIL;
	if (user) {
		rc = rg_grant_del_user(&g, user, &count);
		if (rc)
			failed("%s", g.err);
		else if (!count)
			rc = failed("user %s has no grants", shown(user));
		else
			done("revoked %u grant%s of %s", count, count == 1 ? "" : "s", user);
	} else {
		char buf[RG_ADDRSTRLEN];
		struct rg_addr key = a;

		/* Say which key went: an IPv6 address stands for its /64. */
		rg_addr_key(&key, g.cfg.v4_prefix, g.cfg.v6_prefix);
		rc = rg_grant_del(&g, &a);
		if (rc)
			failed("%s", g.err);
		else
			done("revoked the grant of %s", key_text(&g, &key, buf, sizeof(buf)));
	}
	rg_gate_close(&g);
	return rc ? EXIT_FAIL : EXIT_OK;
}

/* One row of a grant or deny listing, collected to be sorted by address. */
struct map_row {
	struct rg_addr key;
	union {
		struct rg_grant grant;
		struct rg_deny deny;
	} v;
};

struct map_rows {
	struct map_row *v;
	size_t n, cap;
	bool oom;
};

static int rows_push(struct map_rows *l, const struct rg_addr *k, const void *v, size_t len)
{
	struct map_row *nv = grow(l->v, l->n, &l->cap, sizeof(*nv), 64);

	if (!nv) {
		l->oom = true;
		return -1;
	}
	l->v = nv;
	l->v[l->n].key = *k;
	memcpy(&l->v[l->n].v, v, len);
	l->n++;
	return 0;
}

static int collect_grant(const struct rg_addr *k, const struct rg_grant *v, void *ctx)
{
	return rows_push(ctx, k, v, sizeof(*v));
}

static int collect_deny(const struct rg_addr *k, const struct rg_deny *v, void *ctx)
{
	return rows_push(ctx, k, v, sizeof(*v));
}

static int cmp_row(const void *a, const void *b)
{
	return cmp_addr(&((const struct map_row *)a)->key, &((const struct map_row *)b)->key);
}

static const char *source_text(enum rg_origin o, enum rg_service s, char *buf, size_t len)
{
	if (s == RG_SERVICE_NONE)
		snprintf(buf, len, "%s", rg_origin_name(o));
	else
		snprintf(buf, len, "%s/%s", rg_origin_name(o), rg_service_name(s));
	return buf;
}

/*
 * The opening of grant list and deny list: no arguments; the gate opened
 * and the rows of the grant map (deny false) or the deny map, read with
 * batch lookups and sorted by address. EXIT_OK or the exit status.
 */
static int load_rows(int argc, char **argv, bool deny, struct rg_gate *g, struct map_rows *l)
{
	int rc;

	memset(l, 0, sizeof(*l));
	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (open_gate(g, false))
		return EXIT_FAIL;
	rc = deny ? rg_deny_foreach(g, collect_deny, l) : rg_grant_foreach(g, collect_grant, l);
	if (rc || l->oom) {
		failed("%s", rc ? g->err : "out of memory");
		rg_gate_close(g);
		free(l->v);
		l->v = NULL;
		return EXIT_FAIL;
	}
	qsort(l->v, l->n, sizeof(*l->v), cmp_row);
	return EXIT_OK;
}

static int do_grant_list(int argc, char **argv)
{
	struct map_rows l;
	struct rg_gate g;
	uint64_t now;
	size_t i;
	int rc;

	rc = load_rows(argc, argv, false, &g, &l);
	if (rc)
		return rc;
	now = rg_now_ns();
	if (opt.json) {
		putchar('[');
		for (i = 0; i < l.n; i++) {
			const struct map_row *r = &l.v[i];
			char a[RG_ADDRSTRLEN];

			printf("%s{\"address\":\"%s\",\"prefixlen\":%u,\"user\":", i ? "," : "",
			       rg_addr_str(&r->key, a, sizeof(a)), key_plen(&g, &r->key));
			json_str(r->v.grant.user);
			printf(",\"expires_in\":%llu,\"expired\":%s,\"granted_ago\":%llu,\"source\":\"%s\",\"service\":\"%s\"}",
			       (unsigned long long)secs_left(r->v.grant.expires, now),
			       r->v.grant.expires > now ? "false" : "true",
			       (unsigned long long)(now > r->v.grant.granted ? (now - r->v.grant.granted) / NS_PER_SEC : 0),
			       rg_origin_name(r->v.grant.origin), rg_service_name(r->v.grant.service));
		}
		printf("]\n");
	} else {
		struct table t;

		tbl_init(&t, 4);
		tbl_row(&t, "ADDRESS", "USER", "EXPIRES-IN", "SOURCE");
		for (i = 0; i < l.n; i++) {
			const struct map_row *r = &l.v[i];
			char a[RG_ADDRSTRLEN], exp[32], src[32];
			uint64_t left = secs_left(r->v.grant.expires, now);

			tbl_row(&t, key_text(&g, &r->key, a, sizeof(a)),
				r->v.grant.user[0] ? shown(r->v.grant.user) : "-",
				left ? rg_duration_str(left, exp, sizeof(exp)) : "expired",
				source_text(r->v.grant.origin, r->v.grant.service, src, sizeof(src)));
		}
		tbl_print(&t, "");
		tbl_free(&t);
	}
	rg_gate_close(&g);
	free(l.v);
	return EXIT_OK;
}

/* ------------------------------------------------------------------ deny */

static int do_deny_add(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ttl", required_argument, NULL, 't' },
		{ 0 },
	};
	const char *ttl_s = NULL;
	uint64_t ttl = DENY_TTL_DEFAULT;
	struct rg_addr a, key;
	struct rg_gate g;
	char buf[RG_ADDRSTRLEN], dur[32];
	int c, rc;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 't')
			ttl_s = optarg;
		else
			return EXIT_USAGE;
	}
	if (argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one address" : "missing ADDR");
	if (parse_addr_arg(argv[optind], &a))
		return EXIT_FAIL;
	if (ttl_s && parse_ttl_arg("TTL", ttl_s, &ttl))
		return EXIT_FAIL;
	if (open_gate(&g, true))
		return EXIT_FAIL;
	rc = rg_deny_put(&g, &a, ttl * NS_PER_SEC, RG_ORIGIN_CLI, 0);
	if (rc) {
		failed("%s", g.err);
	} else {
		struct rg_deny v;

		key = a;
		rg_addr_key(&key, g.cfg.v4_prefix, g.cfg.v6_prefix);
		/* Never shortened: say when it really expires. */
		if (bpf_map_lookup_elem(g.deny_fd, &key, &v))
			v.expires = rg_now_ns() + ttl * NS_PER_SEC;
		done("denied %s, expires in %s", key_text(&g, &key, buf, sizeof(buf)),
		     rg_duration_str(secs_left(v.expires, rg_now_ns()), dur, sizeof(dur)));
	}
	rg_gate_close(&g);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_deny_del(int argc, char **argv)
{
	char buf[RG_ADDRSTRLEN];
	struct rg_addr a, key;
	struct rg_gate g;
	int rc;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind != 1)
		return usage_err("%s", argc - optind ? "give one address" : "missing ADDR");
	if (parse_addr_arg(argv[optind], &a))
		return EXIT_FAIL;
	if (open_gate(&g, true))
		return EXIT_FAIL;
	key = a;
	rg_addr_key(&key, g.cfg.v4_prefix, g.cfg.v6_prefix);
	rc = rg_deny_del(&g, &a);
	if (rc)
		failed("%s", g.err);
	else
		done("removed the deny entry of %s", key_text(&g, &key, buf, sizeof(buf)));
	rg_gate_close(&g);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_deny_list(int argc, char **argv)
{
	struct map_rows l;
	struct rg_gate g;
	uint64_t now;
	size_t i;
	int rc;

	rc = load_rows(argc, argv, true, &g, &l);
	if (rc)
		return rc;
	now = rg_now_ns();
	if (opt.json) {
		putchar('[');
		for (i = 0; i < l.n; i++) {
			const struct map_row *r = &l.v[i];
			char a[RG_ADDRSTRLEN];

			printf("%s{\"address\":\"%s\",\"prefixlen\":%u,\"expires_in\":%llu,\"expired\":%s,\"failures\":%u,\"source\":\"%s\"}",
			       i ? "," : "", rg_addr_str(&r->key, a, sizeof(a)), key_plen(&g, &r->key),
			       (unsigned long long)secs_left(r->v.deny.expires, now),
			       r->v.deny.expires > now ? "false" : "true", r->v.deny.failures,
			       rg_origin_name(r->v.deny.origin));
		}
		printf("]\n");
	} else {
		struct table t;

		tbl_init(&t, 4);
		tbl_row(&t, "ADDRESS", "EXPIRES-IN", "FAILURES", "SOURCE");
		for (i = 0; i < l.n; i++) {
			const struct map_row *r = &l.v[i];
			char a[RG_ADDRSTRLEN], exp[32], f[16];
			uint64_t left = secs_left(r->v.deny.expires, now);

			snprintf(f, sizeof(f), "%u", r->v.deny.failures);
			tbl_row(&t, key_text(&g, &r->key, a, sizeof(a)),
				left ? rg_duration_str(left, exp, sizeof(exp)) : "expired", f,
				rg_origin_name(r->v.deny.origin));
		}
		tbl_print(&t, "");
		tbl_free(&t);
	}
	rg_gate_close(&g);
	free(l.v);
	return EXIT_OK;
}

/* ----------------------------------------------------------------- ports */

static int do_ports_set(int argc, char **argv)
{
	static uint16_t ports[65536];
	struct rg_gate g;
	size_t n = 0;
	int i, rc;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind < 1)
		return usage_err("missing PORT[,PORT...]");
	for (i = optind; i < argc; i++)
		if (parse_ports_arg(argv[i], ports, &n, 65536))
			return EXIT_FAIL;
	n = ports_unique(ports, n);
	if (open_gate(&g, true))
		return EXIT_FAIL;
	rc = rg_ports_set(&g, ports, n);
	if (rc)
		failed("%s", g.err);
	else
		done("protecting %zu port%s", n, n == 1 ? "" : "s");
	rg_gate_close(&g);
	return rc ? EXIT_FAIL : EXIT_OK;
}

static int do_ports_list(int argc, char **argv)
{
	static uint16_t ports[65536];
	struct rg_gate g;
	int n, i;

	opt_reset();
	if (next_opt(argc, argv, NULL) != -1)
		return EXIT_USAGE;
	if (argc - optind)
		return usage_err("takes no arguments");
	if (open_gate(&g, false))
		return EXIT_FAIL;
	n = rg_ports_list(&g, ports, 65536);
	if (n < 0) {
		failed("%s", g.err);
		rg_gate_close(&g);
		return EXIT_FAIL;
	}
	if (opt.json) {
		putchar('[');
		for (i = 0; i < n; i++)
			printf("%s%u", i ? "," : "", ports[i]);
		printf("]\n");
	} else {
		for (i = 0; i < n; i++)
			printf("%u\n", ports[i]);
	}
	rg_gate_close(&g);
	return EXIT_OK;
}

/* ----------------------------------------------------------------- stats */

/* The gate's families exactly as relaygated's /metrics has them (one
 * renderer, so a textfile collector and a scrape agree), and the
 * attachments, which only the CLI reads. */
static int print_prometheus(struct rg_gate *g)
{
	struct rg_attachment att[MAX_ATT];
	struct rg_mbuf b;
	int natt, i, r;

	rg_mbuf_init(&b);
	r = rg_metrics_render_gate(&b, g);
	natt = rg_gate_attachments(opt.pin_dir, att, MAX_ATT);
	rg_metric_family(&b, "relaygate_attached", "gauge",
			 "Interfaces the gate is attached to (1: active).");
	for (i = 0; i < natt; i++)
		rg_metric_u64_l2(&b, "relaygate_attached", "interface", att[i].ifname, "mode",
				 rg_mode_name(att[i].mode), att[i].prog_id ? 1 : 0);
	if (b.oom)
		r = -ENOMEM;
	if (!r && fwrite(b.buf, 1, b.len, stdout) != b.len)
		r = -EIO;
	rg_mbuf_free(&b);
	return r;
}

static void print_counters(const struct rg_counter *ctr)
{
	size_t i;

	if (opt.json) {
		putchar('{');
		for (i = 0; i < RG_STAT_MAX; i++)
			printf("%s\"%s\":{\"packets\":%llu,\"bytes\":%llu}", i ? "," : "",
			       rg_stat_name((unsigned)i), (unsigned long long)ctr[i].packets,
			       (unsigned long long)ctr[i].bytes);
		printf("}\n");
	} else {
		struct table t;

		tbl_init(&t, 3);
		tbl_row(&t, "REASON", "PACKETS", "BYTES");
		for (i = 0; i < RG_STAT_MAX; i++) {
			char p[32], b[32];

			snprintf(p, sizeof(p), "%llu", (unsigned long long)ctr[i].packets);
			snprintf(b, sizeof(b), "%llu", (unsigned long long)ctr[i].bytes);
			tbl_row(&t, rg_stat_name((unsigned)i), p, b);
		}
		tbl_print(&t, "");
		tbl_free(&t);
	}
}

static volatile sig_atomic_t stop_watch;

static void on_stop(int sig)
{
	(void)sig;
	stop_watch = 1;
}

/* Sleep sec seconds unless asked to stop; false when stopped. */
static bool watch_sleep(uint64_t sec)
{
	struct timespec ts = { .tv_sec = (time_t)sec };

	while (!stop_watch && nanosleep(&ts, &ts) && errno == EINTR)
		;
	return !stop_watch;
}

static void print_rates(const struct rg_counter *prev, const struct rg_counter *cur,
			double secs, uint64_t interval, bool tty)
{
	size_t i;

	if (opt.json) {
		printf("{\"interval\":%llu,\"rates\":{", (unsigned long long)interval);
		for (i = 0; i < RG_STAT_MAX; i++)
			printf("%s\"%s\":{\"packets_per_sec\":%.1f,\"bytes_per_sec\":%.1f,\"packets\":%llu}",
			       i ? "," : "", rg_stat_name((unsigned)i),
			       (double)(cur[i].packets - prev[i].packets) / secs,
			       (double)(cur[i].bytes - prev[i].bytes) / secs,
			       (unsigned long long)cur[i].packets);
		printf("}}\n");
	} else {
		struct table t;
		time_t now = time(NULL);
		char ts[32];

		strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
		if (tty)
			fputs("\033[H\033[2J", stdout);
		printf("relaygate rates at %s, every %llus (Ctrl-C stops)\n", ts,
		       (unsigned long long)interval);
		tbl_init(&t, 4);
		tbl_row(&t, "REASON", "PKTS/S", "BYTES/S", "PACKETS");
		for (i = 0; i < RG_STAT_MAX; i++) {
			char p[32], b[32], tot[32];

			snprintf(p, sizeof(p), "%.1f", (double)(cur[i].packets - prev[i].packets) / secs);
			snprintf(b, sizeof(b), "%.1f", (double)(cur[i].bytes - prev[i].bytes) / secs);
			snprintf(tot, sizeof(tot), "%llu", (unsigned long long)cur[i].packets);
			tbl_row(&t, rg_stat_name((unsigned)i), p, b, tot);
		}
		tbl_print(&t, "");
		tbl_free(&t);
		if (!tty)
			putchar('\n');
	}
	fflush(stdout);
}

static int do_stats(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "watch", required_argument, NULL, 'w' },
		{ "count", required_argument, NULL, 'c' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ 0 },
	};
	struct rg_counter prev[RG_STAT_MAX], cur[RG_STAT_MAX];
	const char *watch_s = NULL, *count_s = NULL;
	uint64_t interval = 0, t0, t1;
	unsigned long count = 0, k;
	bool prom = false, tty;
	struct sigaction sa;
	struct rg_gate g;
	int c, rc = EXIT_OK;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 'w')
			watch_s = optarg;
		else if (c == 'c')
			count_s = optarg;
		else if (c == 'P')
			prom = true;
		else
			return EXIT_USAGE;
	}
	if (argc - optind)
		return usage_err("takes no arguments");
	if (prom && (watch_s || opt.json))
		return usage_err("--prometheus goes with neither --watch nor --json");
	if (count_s && !watch_s)
		return usage_err("--count needs --watch");
	if (watch_s) {
		if (parse_ttl_arg("--watch", watch_s, &interval))
			return EXIT_FAIL;
		if (interval > WATCH_MAX_SEC)
			return failed("--watch %s: at most %ds", shown(watch_s), WATCH_MAX_SEC);
	}
	if (count_s) {
		char *end;

		errno = 0;
		count = strtoul(count_s, &end, 10);
		if (errno || *end || count_s[0] < '0' || count_s[0] > '9' || !count || count > 1000000)
			return failed("--count %s: not a number from 1 to 1000000", shown(count_s));
	}
	if (open_gate(&g, false))
		return EXIT_FAIL;
	if (rg_stats_read(&g, cur)) {
		failed("%s", g.err);
		rg_gate_close(&g);
		return EXIT_FAIL;
	}
	if (!watch_s) {
		int r = 0;

		if (prom)
			r = print_prometheus(&g);
		else
			print_counters(cur);
		if (r)
			failed("stats --prometheus: %s", strerror(-r));
		rg_gate_close(&g);
		return r ? EXIT_FAIL : EXIT_OK;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	tty = isatty(STDOUT_FILENO) && !opt.json;
	t0 = rg_now_ns();
	for (k = 0; !count || k < count; k++) {
		memcpy(prev, cur, sizeof(cur));
		if (!watch_sleep(interval))
			break;
		if (rg_stats_read(&g, cur)) {
			rc = failed("%s", g.err);
			break;
		}
		t1 = rg_now_ns();
		print_rates(prev, cur, t1 > t0 ? (double)(t1 - t0) / 1e9 : 1.0, interval, tty);
		t0 = t1;
	}
	rg_gate_close(&g);
	return rc;
}

/* ----------------------------------------------------------------- event */

static int do_event(int argc, char **argv, enum rg_event_kind kind)
{
	static const struct option lo[] = {
		{ "service", required_argument, NULL, 's' },
		{ "socket", required_argument, NULL, 'S' },
		{ 0 },
	};
	const char *service = NULL, *user;
	char addr[RG_ADDRSTRLEN], err[512];
	enum rg_service svc;
	struct rg_addr a;
	size_t i;
	int c;

	opt_reset();
	while ((c = next_opt(argc, argv, lo)) != -1) {
		if (c == 's')
			service = optarg;
		else if (c == 'S')
			opt.socket = optarg;
		else
			return EXIT_USAGE;
	}
	if (argc - optind != 2)
		return usage_err("%s", argc - optind < 2 ? "needs ADDR and USER" : "too many arguments");
	if (parse_addr_arg(argv[optind], &a))
		return EXIT_FAIL;
	user = argv[optind + 1];
	if (!*user || strlen(user) >= RG_EVENT_USER_MAX)
		return failed("user %s: must be 1..%d bytes", shown(user), RG_EVENT_USER_MAX - 1);
	/* UTF-8 names ("jürgen") are fine; a space or a control character
	 * would split or forge the request line. */
	for (i = 0; user[i]; i++)
		if ((unsigned char)user[i] <= 0x20 || user[i] == 0x7f)
			return failed("user %s: spaces and control characters are not allowed",
				      shown(user));
	if (service && rg_service_parse(service, &svc))
		return failed("service %s: unknown (pop3, imap, smtp or other)", shown(service));
	rg_addr_str(&a, addr, sizeof(addr));
	if (rg_control_request(opt.socket, kind, addr, user, service, err, sizeof(err)))
		return failed("%s", err);
	done("%s of %s from %s reported to the daemon", kind == RG_EV_LOGIN ? "login" : "failure",
	     user, addr);
	return EXIT_OK;
}

static int do_event_login(int argc, char **argv)
{
	return do_event(argc, argv, RG_EV_LOGIN);
}

static int do_event_failure(int argc, char **argv)
{
	return do_event(argc, argv, RG_EV_FAILURE);
}

/* --------------------------------------------------------- command table */

struct cmd {
	const char *object;
	const char *verb;       /* NULL: the object is the whole command */
	int (*fn)(int argc, char **argv);
	const char *usage;
};

static const struct cmd cmds[] = {
	{ "attach", NULL, do_attach, "attach IFACE [--mode xdp|xdp-generic|tc] [--ports 465,587] [--reject drop|rst]" },
	{ "detach", NULL, do_detach, "detach IFACE" },
	{ "status", NULL, do_status, "status" },
	{ "purge", NULL, do_purge, "purge" },
	{ "trust", "add", do_trust_add, "trust add CIDR... | --file FILE" },
	{ "trust", "del", do_trust_del, "trust del CIDR... | --file FILE" },
	{ "trust", "list", do_trust_list, "trust list" },
	{ "trust-iface", "add", do_tiface_add, "trust-iface add IFACE..." },
	{ "trust-iface", "del", do_tiface_del, "trust-iface del IFACE..." },
	{ "trust-iface", "list", do_tiface_list, "trust-iface list" },
	{ "grant", "add", do_grant_add, "grant add ADDR | --file FILE [--ttl 30m] [--user NAME]" },
	{ "grant", "del", do_grant_del, "grant del ADDR | --user NAME" },
	{ "grant", "list", do_grant_list, "grant list" },
	{ "deny", "add", do_deny_add, "deny add ADDR [--ttl 1h]" },
	{ "deny", "del", do_deny_del, "deny del ADDR" },
	{ "deny", "list", do_deny_list, "deny list" },
	{ "ports", "set", do_ports_set, "ports set PORT[,PORT...]" },
	{ "ports", "list", do_ports_list, "ports list" },
	{ "stats", NULL, do_stats, "stats [--watch SECONDS [--count N]] [--prometheus]" },
	{ "event", "login", do_event_login, "event login ADDR USER [--service pop3] [--socket PATH]" },
	{ "event", "failure", do_event_failure, "event failure ADDR USER [--service pop3] [--socket PATH]" },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void help(void)
{
	size_t i;

	printf("usage: relaygatectl [--pin-dir DIR] [--json] [--socket PATH] [-v] COMMAND...\n"
	       "\n"
	       "Gate SMTP submission ports with XDP/TC: only trusted interfaces, trusted\n"
	       "subnets and recently authenticated sources may connect.\n"
	       "\n"
	       "Commands:\n");
	for (i = 0; i < NCMDS; i++)
		printf("  relaygatectl %s\n", cmds[i].usage);
	printf("\n"
	       "Global options:\n"
	       "  --pin-dir DIR   pinned maps and attachments (default %s)\n"
	       "  --json          machine-readable output of listings\n"
	       "  --socket PATH   daemon control socket for `event` (default %s)\n"
	       "  -v, --verbose   show libbpf's messages\n"
	       "  -h, --help      this text;  -V, --version  the version\n"
	       "\n"
	       "Durations: 90s, 30m, 2h, 1d, 1h30m or bare seconds.\n"
	       "--file FILE (`-`: standard input) loads one entry a line, all or nothing;\n"
	       "blank lines and # comments are skipped. grant add: ADDR [TTL|-] [USER]\n"
	       "(--ttl and --user are the defaults); trust add/del: CIDR.\n"
	       "`purge` removes the pinned maps once no interface is attached (needed when an\n"
	       "upgrade changes the map layout).\n"
	       "Exit status: 0 done, 1 failed (nothing changed), 2 usage.\n",
	       RG_PIN_DIR_DEFAULT, RG_CONTROL_SOCKET_DEFAULT);
}

static const char *verbs_of(const char *object, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].object, object) || !cmds[i].verb)
			continue;
		off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", cmds[i].verb);
		if (off >= len)
			break;
	}
	return buf;
}

static int dispatch(int argc, char **argv)
{
	const char *object = argv[0];
	bool known = false;
	char verbs[128];
	size_t i;

	for (i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].object, object))
			continue;
		known = true;
		if (!cmds[i].verb) {
			snprintf(cmd_name, sizeof(cmd_name), "%s", object);
			cmd_usage = cmds[i].usage;
			return cmds[i].fn(argc, argv);
		}
		if (argc > 1 && !strcmp(cmds[i].verb, argv[1])) {
			snprintf(cmd_name, sizeof(cmd_name), "%s %s", object, argv[1]);
			cmd_usage = cmds[i].usage;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	if (!known) {
		if (!strcmp(object, "help")) {
			help();
			return EXIT_OK;
		}
		if (!strcmp(object, "version")) {
			printf("relaygatectl %s (map ABI v%d)\n", RELAYGATE_VERSION, RG_ABI_VERSION);
			return EXIT_OK;
		}
		return usage_err("unknown command %s", shown(object));
	}
	snprintf(cmd_name, sizeof(cmd_name), "%s", object);
	verbs_of(object, verbs, sizeof(verbs));
	if (argc < 2)
		return usage_err("missing verb (%s)", verbs);
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		for (i = 0; i < NCMDS; i++)
			if (!strcmp(cmds[i].object, object))
				printf("usage: relaygatectl %s\n", cmds[i].usage);
		return EXIT_OK;
	}
	return usage_err("unknown verb %s (%s)", shown(argv[1]), verbs);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "pin-dir", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	int c, rc;

	rg_log_init("relaygatectl", false, RG_LOG_INFO);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:vhV", lo, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!*optarg)
				return usage_err("--pin-dir needs a directory");
			opt.pin_dir = optarg;
			break;
		case 'j':
			opt.json = true;
			break;
		case 's':
			opt.socket = optarg;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'h':
			help();
			return EXIT_OK;
		case 'V':
			printf("relaygatectl %s (map ABI v%d)\n", RELAYGATE_VERSION, RG_ABI_VERSION);
			return EXIT_OK;
		case ':':
			return usage_err("option %s needs a value", shown(argv[optind - 1]));
		default:
			if (optopt)
				return usage_err("unknown option -%c", optopt);
			return usage_err("unknown option %s", shown(argv[optind - 1]));
		}
	}
	if (opt.verbose)
		rg_log_init("relaygatectl", false, RG_LOG_DEBUG);
	rg_log_libbpf(opt.verbose);
	if (optind >= argc)
		return usage_err("missing command");
	rc = dispatch(argc - optind, argv + optind);
	if (fflush(stdout) || ferror(stdout)) {
		if (rc == EXIT_OK)
			rc = failed("writing the output: %s", strerror(errno));
	}
	return rc;
}
