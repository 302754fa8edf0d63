// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * sender_logins map: parser (strict, file:line errors) and matcher.
 *
 * The map is a sorted array of (user, key) pairs, key being a lowercased
 * "local@domain" or "@domain"; a check is a few binary searches, no
 * allocation, so it can run on every policy request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "relaygate.h"
#include "senderlogins.h"

/* RFC 5321 limits; longer senders can never be owned. */
#define SL_LOCAL_MAX  64
#define SL_DOMAIN_MAX 253
#define SL_SENDER_MAX (SL_LOCAL_MAX + 1 + SL_DOMAIN_MAX)

struct sl_entry {
	const char *user;
	const char *key;
};

struct rg_senderlogins {
	struct sl_entry *e;
	size_t n, cap;
	size_t users;
	char *pool;          /* every user and key string */
	size_t pool_used, pool_size;
};

struct sl_parse {
	struct rg_senderlogins *sl;
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static void __attribute__((format(printf, 2, 3)))
perr(struct sl_parse *p, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->errlen)
		snprintf(p->err, p->errlen, "%s:%u: %s", p->name, p->line, msg);
}

/* Quote a piece of the file for an error message: at most 40 bytes, only
 * printable ASCII (the rest becomes '?'). */
static const char *show(const char *s, size_t len, char *buf, size_t size)
{
	size_t i, n = len < 40 ? len : 40;

	if (n > size - 4)
		n = size - 4;
	for (i = 0; i < n; i++)
		buf[i] = (s[i] > 0x20 && s[i] < 0x7f) || s[i] == ' ' ? s[i] : '?';
	if (n < len)
		buf[i++] = '.', buf[i++] = '.', buf[i++] = '.';
	buf[i] = '\0';
	return buf;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Copy into the pool (sized at parse start to hold every string). */
static const char *pool_add(struct rg_senderlogins *sl, const char *s, size_t len,
			    bool lowercase)
{
	char *d = sl->pool + sl->pool_used;
	size_t i;

	for (i = 0; i < len; i++)
		d[i] = lowercase ? lower(s[i]) : s[i];
	d[len] = '\0';
	sl->pool_used += len + 1;
	return d;
}

static int add_entry(struct rg_senderlogins *sl, const char *user, const char *key)
{
	if (sl->n == sl->cap) {
		size_t cap = sl->cap ? sl->cap * 2 : 64;
		struct sl_entry *e = realloc(sl->e, cap * sizeof(*e));

		if (!e)
			return -1;
		sl->e = e;
		sl->cap = cap;
	}
	sl->e[sl->n].user = user;
	sl->e[sl->n].key = key;
	sl->n++;
	return 0;
}

static bool user_char_ok(unsigned char c)
{
	return c > 0x20 && c != 0x7f && c != ':' && c != ',' && c != '#';
}

/* Characters of an unquoted local part (RFC 5322 atext and '.'), plus
 * UTF-8 (SMTPUTF8). */
static bool local_char_ok(unsigned char c)
{
	if (c >= 0x80)
		return true;
	if (c <= 0x20 || c == 0x7f)
		return false;
	return !strchr("\"(),:;<>@[\\]", c);
}

static bool domain_ok(const char *d, size_t len)
{
	size_t i, label = 0;

	if (len == 0 || len > SL_DOMAIN_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = d[i];

		if (c == '.') {
			if (label == 0)
				return false;        /* leading or double dot */
			label = 0;
			continue;
		}
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;                    /* no trailing dot */
}

/* One comma-separated item, already trimmed. */
static int parse_address(struct sl_parse *p, const char *user, const char *a, size_t len)
{
	struct rg_senderlogins *sl = p->sl;
	const char *at;
	size_t i, local;
	char q[64];

	for (i = 0; i < len; i++) {
		if (is_space(a[i])) {
			perr(p, "space inside address '%s' (separate addresses with ',')",
			     show(a, len, q, sizeof(q)));
			return -1;
		}
		if (a[i] == '<' || a[i] == '>') {
			perr(p, "address '%s': write addresses without <>",
			     show(a, len, q, sizeof(q)));
			return -1;
		}
	}
	at = memchr(a, '@', len);
	if (!at) {
		perr(p, "'%s' is not an address (expected local@domain or @domain)",
		     show(a, len, q, sizeof(q)));
		return -1;
	}
	local = at - a;
	if (memchr(at + 1, '@', len - local - 1)) {
		perr(p, "address '%s' has more than one '@'", show(a, len, q, sizeof(q)));
		return -1;
	}
	if (local > SL_LOCAL_MAX) {
		perr(p, "address '%s': local part longer than %d bytes",
		     show(a, len, q, sizeof(q)), SL_LOCAL_MAX);
		return -1;
	}
	for (i = 0; i < local; i++) {
		if (!local_char_ok(a[i]) || (a[i] == '.' && (i == 0 || i == local - 1 ||
							      a[i - 1] == '.'))) {
			perr(p, "address '%s': bad local part", show(a, len, q, sizeof(q)));
			return -1;
		}
	}
	if (!domain_ok(at + 1, len - local - 1)) {
		perr(p, "address '%s': bad or missing domain after '@'",
		     show(a, len, q, sizeof(q)));
		return -1;
	}
	if (add_entry(sl, user, pool_add(sl, a, len, true))) {
		perr(p, "out of memory");
		return -1;
	}
	return 0;
}

static int parse_line(struct sl_parse *p, const char *s, size_t len)
{
	struct rg_senderlogins *sl = p->sl;
	const char *colon, *hash, *end, *item, *user;
	size_t ulen, i;
	char q[64];

	if (len && s[len - 1] == '\r')
		len--;                       /* CRLF file */
	hash = memchr(s, '#', len);
	if (hash)
		len = hash - s;
	while (len && is_space(s[len - 1]))
		len--;
	while (len && is_space(*s))
		s++, len--;
	if (!len)
		return 0;
	for (i = 0; i < len; i++) {
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t') {
			perr(p, "control character 0x%02x", (unsigned char)s[i]);
			return -1;
		}
	}
	colon = memchr(s, ':', len);
	if (!colon) {
		perr(p, "expected 'user: address, ...', got '%s'", show(s, len, q, sizeof(q)));
		return -1;
	}
	ulen = colon - s;
	while (ulen && is_space(s[ulen - 1]))
		ulen--;
	if (!ulen) {
		perr(p, "missing user name before ':'");
		return -1;
	}
	for (i = 0; i < ulen; i++) {
		if (!user_char_ok(s[i])) {
			perr(p, "user name '%s': spaces, ',' and control characters are not allowed",
			     show(s, ulen, q, sizeof(q)));
			return -1;
		}
	}
	if (ulen >= RG_USER_LEN - 1) {
		/* a grant keeps 63 bytes: a 63-byte name may be a longer
		 * login cut short, see rg_senderlogins_check */
		perr(p, "user name '%s' longer than %d bytes (grants keep %d bytes: a %d-byte name may be a longer login cut short)",
		     show(s, ulen, q, sizeof(q)), RG_USER_LEN - 2, RG_USER_LEN - 1,
		     RG_USER_LEN - 1);
		return -1;
	}
	user = pool_add(sl, s, ulen, false);

	end = s + len;
	item = colon + 1;
	while (item < end && is_space(*item))
		item++;
	if (item == end) {
		perr(p, "no addresses for user '%s'", user);
		return -1;
	}
	for (;;) {
		const char *comma = memchr(item, ',', end - item);
		const char *e = comma ? comma : end;
		const char *b = item;

		while (b < e && is_space(*b))
			b++;
		while (e > b && is_space(e[-1]))
			e--;
		if (b == e) {
			perr(p, "empty address in the list of '%s' (stray ','?)", user);
			return -1;
		}
		if (parse_address(p, user, b, e - b))
			return -1;
		if (!comma)
			break;
		item = comma + 1;
	}
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct sl_entry *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	return c ? c : strcmp(x->key, y->key);
}

struct rg_senderlogins *rg_senderlogins_parse(const char *text, size_t len,
					      const char *name,
					      char *err, size_t errlen)
{
	struct rg_senderlogins *sl;
	struct sl_parse p = { .name = name ? name : "sender_logins", .err = err,
			      .errlen = errlen };
	size_t off = 0, i, j;

	if (errlen)
		err[0] = '\0';
	if (len > RG_SENDERLOGINS_MAX_BYTES) {
		p.line = 0;
		if (errlen)
			snprintf(err, errlen, "%s: larger than %u MiB", p.name,
				 RG_SENDERLOGINS_MAX_BYTES >> 20);
		return NULL;
	}
	sl = calloc(1, sizeof(*sl));
	if (!sl)
		goto oom;
	/* Every string is a piece of one line plus a NUL; a line yields its
	 * user once and each address once, so 2 * len + 2 always suffices. */
	sl->pool_size = 2 * len + 2;
	sl->pool = malloc(sl->pool_size);
	if (!sl->pool)
		goto oom;
	p.sl = sl;

	while (off < len) {
		const char *s = text + off;
		const char *nl = memchr(s, '\n', len - off);
		size_t ll = nl ? (size_t)(nl - s) : len - off;

		p.line++;
		if (ll > RG_SENDERLOGINS_MAX_LINE) {
			perr(&p, "line longer than %d bytes", RG_SENDERLOGINS_MAX_LINE);
			goto fail;
		}
		if (memchr(s, '\0', ll)) {
			perr(&p, "NUL byte");
			goto fail;
		}
		if (parse_line(&p, s, ll))
			goto fail;
		off += ll + (nl ? 1 : 0);
	}

	if (sl->n)
		qsort(sl->e, sl->n, sizeof(*sl->e), entry_cmp);
	/* Drop duplicates (a user listed twice with the same address). */
	for (i = 0, j = 0; i < sl->n; i++) {
		if (j && !entry_cmp(&sl->e[j - 1], &sl->e[i]))
			continue;
		sl->e[j++] = sl->e[i];
	}
	sl->n = j;
	for (i = 0; i < sl->n; i++)
		if (i == 0 || strcmp(sl->e[i - 1].user, sl->e[i].user))
			sl->users++;
	return sl;

oom:
	if (errlen)
		snprintf(err, errlen, "%s: out of memory", p.name);
fail:
	rg_senderlogins_free(sl);
	return NULL;
}

struct rg_senderlogins *rg_senderlogins_load(const char *path, char *err, size_t errlen)
{
	struct rg_senderlogins *sl = NULL;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if ((unsigned long long)st.st_size > RG_SENDERLOGINS_MAX_BYTES) {
		snprintf(err, errlen, "%s: larger than %u MiB", path,
			 RG_SENDERLOGINS_MAX_BYTES >> 20);
		goto out;
	}
	buf = malloc(st.st_size + 1);
	if (!buf) {
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;                   /* shrank while reading */
		got += r;
	}
	sl = rg_senderlogins_parse(buf, got, path, err, errlen);
out:
	free(buf);
	close(fd);
	return sl;
}

void rg_senderlogins_free(struct rg_senderlogins *sl)
{
	if (!sl)
		return;
	free(sl->e);
	free(sl->pool);
	free(sl);
}

size_t rg_senderlogins_users(const struct rg_senderlogins *sl)
{
	return sl ? sl->users : 0;
}

size_t rg_senderlogins_entries(const struct rg_senderlogins *sl)
{
	return sl ? sl->n : 0;
}

/* First index in [lo, hi) whose user is >= user. */
static size_t lower_user(const struct rg_senderlogins *sl, const char *user)
{
	size_t lo = 0, hi = sl->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(sl->e[mid].user, user) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool has_key(const struct rg_senderlogins *sl, size_t lo, size_t hi,
		    const char *key)
{
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(sl->e[mid].key, key);

		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

enum rg_sl_result rg_senderlogins_check(const struct rg_senderlogins *sl,
					const char *user, const char *sender,
					const char *delims)
{
	char key[SL_SENDER_MAX + 2];
	size_t lo, hi, len, i;
	char *at;

	if (!sl || !user)
		return RG_SL_UNKNOWN_USER;
	/* The grant map cuts a login to RG_USER_LEN - 1 bytes without a
	 * trace: a name that long may be someone's name plus more. */
	if (strnlen(user, RG_USER_LEN - 1) >= RG_USER_LEN - 1)
		return RG_SL_USER_TOO_LONG;
	lo = lower_user(sl, user);
	if (lo == sl->n || strcmp(sl->e[lo].user, user))
		return RG_SL_UNKNOWN_USER;
	/* Entries of one user are contiguous (sorted by user text; they may
	 * come from several lines). */
	for (hi = lo + 1; hi < sl->n && !strcmp(sl->e[hi].user, user); hi++)
		;

	/* "@domain" is a domain entry, never a sender */
	if (!sender || !*sender || *sender == '@')
		return RG_SL_NOT_OWNED;
	len = strlen(sender);
	if (len > SL_SENDER_MAX)
		return RG_SL_NOT_OWNED;
	for (i = 0; i < len; i++)
		key[i] = lower(sender[i]);
	key[len] = '\0';

	if (has_key(sl, lo, hi, key))
		return RG_SL_OWNED;
	at = strrchr(key, '@');
	if (!at || at == key)
		return RG_SL_NOT_OWNED;
	if (has_key(sl, lo, hi, at))
		return RG_SL_OWNED;              /* "@domain" */
	if (delims && *delims) {
		size_t ext = strcspn(key, delims);

		if (ext > 0 && key + ext < at) {
			/* alice+lists@example.org -> alice@example.org */
			memmove(key + ext, at, strlen(at) + 1);
			if (has_key(sl, lo, hi, key))
				return RG_SL_OWNED;
		}
	}
	return RG_SL_NOT_OWNED;
}
