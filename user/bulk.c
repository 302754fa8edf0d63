// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Entries as text, for relaygatectl's arguments and its --file inputs.
 *
 * A file holds one entry a line. Blank lines and lines whose first
 * non-blank character is '#' are skipped; fields are separated by spaces
 * or tabs; a Windows line end (\r\n) is accepted. Every field is checked
 * exactly as the same value given as an argument, so a file line and the
 * argument form fail with the same words, the file form prefixed with
 * "line N: ".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bulk.h"
#include "cidr.h"
#include "duration.h"

#define SHOWN_LEN 96

static int __attribute__((format(printf, 3, 4)))
bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

const char *rg_shown(const char *s, char *buf, size_t len)
{
	size_t i, j = 0;

	if (len < 8) {
		if (len)
			buf[0] = '\0';
		return buf;
	}
	for (i = 0; s[i] && j < len - 4; i++)
		buf[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (s[i]) {
		memcpy(buf + j, "...", 3);
		j += 3;
	}
	buf[j] = '\0';
	return buf;
}

/* --------------------------------------------------------- one value */

int rg_arg_addr(const char *s, struct rg_addr *a, char *err, size_t errlen)
{
	char sh[SHOWN_LEN];
	const char *why = NULL;

	if (!rg_addr_parse(s, a, &why))
		return 0;
	if (strchr(s, '/'))
		why = "give a single address, not a CIDR";
	return bad(err, errlen, "%s: %s", rg_shown(s, sh, sizeof(sh)), why ? why : "not an address");
}

int rg_arg_cidr(const char *s, struct rg_addr *a, unsigned *prefixlen, char *err, size_t errlen)
{
	char sh[SHOWN_LEN];
	const char *why = NULL;

	if (!rg_cidr_parse(s, a, prefixlen, &why))
		return 0;
	if (why && !strcmp(why, "host bits set below the prefix")) {
		/* Name the network the admin probably meant. */
		char buf[RG_ADDRSTRLEN + 8], net[RG_ADDRSTRLEN];
		const char *slash = strchr(s, '/'), *why2;
		struct rg_addr m;
		unsigned plen;

		if (slash && (size_t)(slash - s) < sizeof(buf)) {
			memcpy(buf, s, (size_t)(slash - s));
			buf[slash - s] = '\0';
			if (!rg_addr_parse(buf, &m, &why2)) {
				plen = (unsigned)atoi(slash + 1);
				if (strchr(buf, ':') && m.family == RG_AF_INET)
					plen -= 96;
				rg_addr_mask(&m, plen);
				return bad(err, errlen, "%s: host bits set below the prefix (did you mean %s?)",
					   rg_shown(s, sh, sizeof(sh)), rg_cidr_str(&m, plen, net, sizeof(net)));
			}
		}
	}
	return bad(err, errlen, "%s: %s", rg_shown(s, sh, sizeof(sh)), why ? why : "not a CIDR");
}

int rg_arg_ttl(const char *what, const char *s, uint64_t *sec, char *err, size_t errlen)
{
	char sh[SHOWN_LEN];
	const char *why = NULL;

	if (rg_duration_parse(s, sec, &why))
		return bad(err, errlen, "%s %s: %s", what, rg_shown(s, sh, sizeof(sh)),
			   why ? why : "not a duration");
	if (!*sec)
		return bad(err, errlen, "%s %s: must be more than 0", what, rg_shown(s, sh, sizeof(sh)));
	return 0;
}

int rg_arg_user(const char *s, char *err, size_t errlen)
{
	char sh[SHOWN_LEN];
	size_t i, l = strlen(s);

	if (!l || l >= RG_USER_LEN)
		return bad(err, errlen, "user %s: must be 1..%d bytes", rg_shown(s, sh, sizeof(sh)),
			   RG_USER_LEN - 1);
	for (i = 0; i < l; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return bad(err, errlen, "user %s: spaces and control characters are not allowed",
				   rg_shown(s, sh, sizeof(sh)));
	return 0;
}

/* --------------------------------------------------------- one line */

#define MAX_FIELDS 4    /* one more than any format has, to report extras */

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * Split a line into at most MAX_FIELDS fields, copied NUL-terminated into
 * buf (which holds the whole line). Returns the count, 0 for a blank or
 * comment line, -1 for a line longer than RG_LINE_MAX (without its \r) or
 * than buf.
 */
static int split(const char *line, char *buf, size_t buflen, char *f[MAX_FIELDS])
{
	size_t len = strlen(line), o = 0;
	const char *p = line, *end;
	int n = 0;

	/* A Windows line end: one trailing \r. */
	if (len && line[len - 1] == '\r')
		len--;
	if (len > RG_LINE_MAX || len >= buflen)
		return -1;
	end = line + len;
	while (p < end && blank(*p))
		p++;
	if (p == end || *p == '#')
		return 0;
	while (p < end && n < MAX_FIELDS) {
		f[n++] = buf + o;
		while (p < end && !blank(*p))
			buf[o++] = *p++;
		buf[o++] = '\0';
		while (p < end && blank(*p))
			p++;
	}
	return n;
}

int rg_grant_line_parse(const char *line, struct rg_grant_line *out, char *err, size_t errlen)
{
	char buf[RG_LINE_MAX + 8], *f[MAX_FIELDS];
	int n;

	memset(out, 0, sizeof(*out));
	n = split(line, buf, sizeof(buf), f);
	if (n < 0)
		return bad(err, errlen, "longer than %d bytes", RG_LINE_MAX);
	if (n == 0)
		return 0;
	if (n > 3)
		return bad(err, errlen, "too many fields: want ADDR [TTL] [USER]");
	if (rg_arg_addr(f[0], &out->addr, err, errlen))
		return -1;
	if (n >= 2 && strcmp(f[1], "-") && rg_arg_ttl("TTL", f[1], &out->ttl_sec, err, errlen))
		return -1;
	if (n == 3) {
		if (rg_arg_user(f[2], err, errlen))
			return -1;
		memcpy(out->user, f[2], strlen(f[2]) + 1);
	}
	return 1;
}

int rg_cidr_line_parse(const char *line, struct rg_addr *a, unsigned *prefixlen,
		       char *err, size_t errlen)
{
	char buf[RG_LINE_MAX + 8], *f[MAX_FIELDS], sh[SHOWN_LEN];
	int n;

	n = split(line, buf, sizeof(buf), f);
	if (n < 0)
		return bad(err, errlen, "longer than %d bytes", RG_LINE_MAX);
	if (n == 0)
		return 0;
	if (n > 1)
		return bad(err, errlen, "%s: one CIDR a line", rg_shown(f[1], sh, sizeof(sh)));
	if (rg_arg_cidr(f[0], a, prefixlen, err, errlen))
		return -1;
	return 1;
}

/* -------------------------------------------------------------- files */

int rg_lines_read(const char *path,
		  int (*cb)(const char *line, void *ctx, char *err, size_t errlen),
		  void *ctx, char *err, size_t errlen)
{
	bool std = !strcmp(path, "-");
	char sh[SHOWN_LEN], why[512];
	unsigned long lineno = 0;
	size_t cap = 0;
	char *line = NULL;
	ssize_t len;
	FILE *f;
	int rc = 0;

	f = std ? stdin : fopen(path, "r");
	if (!f)
		return bad(err, errlen, "%s: %s", rg_shown(path, sh, sizeof(sh)), strerror(errno));
	errno = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		if (memchr(line, '\0', (size_t)len)) {
			rc = bad(err, errlen, "line %lu: holds a NUL byte (not a text file?)", lineno);
			break;
		}
		if (len > RG_LINE_MAX) {
			rc = bad(err, errlen, "line %lu: longer than %d bytes", lineno, RG_LINE_MAX);
			break;
		}
		why[0] = '\0';
		if (cb(line, ctx, why, sizeof(why))) {
			rc = bad(err, errlen, "line %lu: %s", lineno, why[0] ? why : "rejected");
			break;
		}
		errno = 0;
	}
	if (!rc && ferror(f))
		rc = bad(err, errlen, "%s: %s", std ? "standard input" : rg_shown(path, sh, sizeof(sh)),
			 strerror(errno ? errno : EIO));
	free(line);
	if (!std)
		fclose(f);
	return rc;
}
