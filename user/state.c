// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* The grants state file: format and rules in state.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cidr.h"
#include "duration.h"
#include "gatemaps.h"
#include "log.h"
#include "state.h"

#define NSEC        1000000000ULL
#define HEADER      "relaygate-state"
#define LINE_MAX_   1024               /* longer lines are corrupt */
#define FIELDS_MAX  8
#define WARN_MAX    10                 /* corrupt lines warned about per load */
/* Furthest expiry accepted: the longest TTL anyone can set, plus rounding. */
#define AHEAD_MAX   ((RG_DURATION_MAX_SEC + 1) * NSEC)

void rg_state_clocks_now(struct rg_state_clocks *c)
{
	struct timespec b, r;

	clock_gettime(CLOCK_BOOTTIME, &b);
	clock_gettime(CLOCK_REALTIME, &r);
	c->boot_ns = (uint64_t)b.tv_sec * NSEC + b.tv_nsec;
	c->real_ns = (uint64_t)r.tv_sec * NSEC + r.tv_nsec;
}

/* --- arrays ---------------------------------------------------------- */

static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap = *cap ? 2 * *cap : 256;
	void *p;

	if (n < *cap)
		return 0;
	p = reallocarray(*arr, ncap, size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

int rg_state_add_grant(struct rg_state *st, const struct rg_addr *key,
		       const struct rg_grant *v)
{
	if (grow((void **)&st->grants, &st->grants_cap, st->ngrants, sizeof(*st->grants)))
		return -ENOMEM;
	memset(&st->grants[st->ngrants], 0, sizeof(*st->grants));	/* padding */
	st->grants[st->ngrants].key = *key;
	st->grants[st->ngrants].v = *v;
	st->ngrants++;
	return 0;
}

int rg_state_add_deny(struct rg_state *st, const struct rg_addr *key,
		      const struct rg_deny *v)
{
	if (grow((void **)&st->denies, &st->denies_cap, st->ndenies, sizeof(*st->denies)))
		return -ENOMEM;
	memset(&st->denies[st->ndenies], 0, sizeof(*st->denies));
	st->denies[st->ndenies].key = *key;
	st->denies[st->ndenies].v = *v;
	st->ndenies++;
	return 0;
}

void rg_state_free(struct rg_state *st)
{
	free(st->grants);
	free(st->denies);
	memset(st, 0, sizeof(*st));
}

/* --- clocks ---------------------------------------------------------- */

/* Boot-time expiry -> Unix seconds, rounded up (a grant never loses time). */
static uint64_t expiry_to_real(uint64_t boot, const struct rg_state_clocks *now)
{
	uint64_t left = boot - now->boot_ns;	/* caller: boot > now */

	if (left > RG_DURATION_MAX_SEC * NSEC)	/* a wild map value: clamp */
		left = RG_DURATION_MAX_SEC * NSEC;
	return (now->real_ns + left + NSEC - 1) / NSEC;
}

/* Boot-time past instant -> Unix seconds, rounded down. */
static uint64_t since_to_real(uint64_t boot, const struct rg_state_clocks *now)
{
	uint64_t ago = boot < now->boot_ns ? now->boot_ns - boot : 0;

	return ago < now->real_ns ? (now->real_ns - ago) / NSEC : 0;
}

/* Unix seconds in the past -> boot time, clamped to [0, now]. */
static uint64_t since_to_boot(uint64_t sec, const struct rg_state_clocks *now)
{
	uint64_t real = sec * NSEC, ago;

	if (real >= now->real_ns)
		return now->boot_ns;
	ago = now->real_ns - real;
	return ago < now->boot_ns ? now->boot_ns - ago : 0;
}

/* --- writing --------------------------------------------------------- */

static void put_user(FILE *out, const char *user)
{
	size_t i, n = strnlen(user, RG_USER_LEN - 1);

	if (!n || (n == 1 && user[0] == '-')) {
		fputs(n ? "%2D" : "-", out);
		return;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = user[i];

		if (c <= ' ' || c > '~' || c == '%')
			fprintf(out, "%%%02X", c);
		else
			fputc(c, out);
	}
}

static bool family_ok(const struct rg_addr *a)
{
	return a->family == RG_AF_INET || a->family == RG_AF_INET6;
}

int rg_state_write_grant(FILE *out, const struct rg_state_grant *g,
			 const struct rg_state_clocks *now)
{
	char addr[RG_ADDRSTRLEN];

	if (g->v.expires <= now->boot_ns || !family_ok(&g->key))
		return -EINVAL;
	fprintf(out, "grant %s %llu %llu %s %s ",
		rg_addr_str(&g->key, addr, sizeof(addr)),
		(unsigned long long)expiry_to_real(g->v.expires, now),
		(unsigned long long)since_to_real(g->v.granted, now),
		rg_origin_name((unsigned)g->v.origin < RG_ORIGIN_MAX ?
			       g->v.origin : RG_ORIGIN_NONE),
		rg_service_name((unsigned)g->v.service < RG_SERVICE_MAX ?
				g->v.service : RG_SERVICE_NONE));
	put_user(out, g->v.user);
	return 0;
}

int rg_state_write_deny(FILE *out, const struct rg_state_deny *d,
			const struct rg_state_clocks *now)
{
	char addr[RG_ADDRSTRLEN];

	if (d->v.expires <= now->boot_ns || !family_ok(&d->key))
		return -EINVAL;
	fprintf(out, "deny %s %llu %llu %s %u",
		rg_addr_str(&d->key, addr, sizeof(addr)),
		(unsigned long long)expiry_to_real(d->v.expires, now),
		(unsigned long long)since_to_real(d->v.created, now),
		rg_origin_name((unsigned)d->v.origin < RG_ORIGIN_MAX ?
			       d->v.origin : RG_ORIGIN_NONE),
		d->v.failures);
	return 0;
}

int rg_state_write(FILE *out, const struct rg_state *st, const struct rg_state_clocks *now)
{
	size_t i;

	/* Left out: what has expired, and what the loader would refuse. */
	fprintf(out, HEADER " %d\n", RG_STATE_VERSION);
	if (st->maps.boot_id[0])
		fprintf(out, "maps %s %u %u %u %u\n", st->maps.boot_id, st->maps.grants_id,
			st->maps.deny_id, st->maps.v4_prefix, st->maps.v6_prefix);
	for (i = 0; i < st->ngrants; i++)
		if (!rg_state_write_grant(out, &st->grants[i], now))
			fputc('\n', out);
	for (i = 0; i < st->ndenies; i++)
		if (!rg_state_write_deny(out, &st->denies[i], now))
			fputc('\n', out);
	return ferror(out) ? -EIO : 0;
}

/* Copies the directory part of path into dir. */
static void dir_of(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

int rg_state_save(const char *path, const struct rg_state *st,
		  const struct rg_state_clocks *now, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *step = "create";
	FILE *out = NULL;
	int fd, r = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "state file %s: path too long", path);
		return -ENAMETOOLONG;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || !(out = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	step = "write";
	errno = 0;
	r = rg_state_write(out, st, now);
	if (!r && fflush(out))
		r = -errno;
	if (r == -EIO && errno)	/* say why stdio failed: ENOSPC, EFBIG, ... */
		r = -errno;
	if (!r && fsync(fileno(out))) {
		step = "fsync";
		r = -errno;
	}
	if (fclose(out) && !r)
		r = -errno;
	if (r)
		goto fail;
	step = "rename";
	if (rename(tmp, path)) {
		r = -errno;
		goto fail;
	}
	/* The rename itself is durable once the directory is. */
	dir_of(path, dir, sizeof(dir));
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd)) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "state file %s: fsync of %s: %s", path, dir, strerror(-r));
		return r;
	}
	close(fd);
	return 0;
fail:
	if (!r)
		r = -EIO;
	unlink(tmp);
	snprintf(err, errlen, "state file %s: %s %s: %s (the previous file is unchanged)",
		 path, step, tmp, strerror(-r));
	return r;
}

/* --- reading --------------------------------------------------------- */

/* Decimal digits only, no sign, no overflow. */
static bool parse_u64(const char *s, uint64_t *v)
{
	*v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || *v > (UINT64_MAX - 9) / 10)
			return false;
		*v = *v * 10 + (*s - '0');
	}
	return true;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static const char *parse_user(const char *s, char user[RG_USER_LEN])
{
	size_t n = 0;

	memset(user, 0, RG_USER_LEN);
	if (!strcmp(s, "-"))
		return NULL;
	for (; *s; s++) {
		int c = (unsigned char)*s;

		if (c == '%') {
			int hi = hexval(s[1]), lo = hi < 0 ? -1 : hexval(s[2]);

			if (lo < 0)
				return "bad %XX escape in user";
			c = hi << 4 | lo;
			s += 2;
			if (!c)
				return "NUL byte in user";
		}
		if (n == RG_USER_LEN - 1)
			return "user too long";
		user[n++] = c;
	}
	return NULL;
}

/* The enum value named s (by gatemaps' names), or -1. */
static int origin_parse(const char *s)
{
	for (unsigned i = 0; i < RG_ORIGIN_MAX; i++)
		if (!strcmp(s, rg_origin_name(i)))
			return i;
	return -1;
}

static int service_parse(const char *s)
{
	for (unsigned i = 0; i < RG_SERVICE_MAX; i++)
		if (!strcmp(s, rg_service_name(i)))
			return i;
	return -1;
}

/* Expiry in Unix seconds -> boot time; NULL, or why not ("expired" too). */
static const char *parse_expiry(const char *s, const struct rg_state_clocks *now,
				__u64 *boot)
{
	uint64_t sec, real;

	if (!parse_u64(s, &sec) || sec > UINT64_MAX / NSEC)
		return "bad expiry";
	real = sec * NSEC;
	if (real <= now->real_ns)
		return "expired";
	if (real - now->real_ns >= AHEAD_MAX || now->boot_ns > UINT64_MAX - AHEAD_MAX)
		return "expiry too far in the future";
	*boot = now->boot_ns + (real - now->real_ns);
	return NULL;
}

/* Splits line in place at spaces; returns the field count (max + 1 if more). */
static int split(char *line, char **f, int max)
{
	int n = 0;
	char *save, *tok;

	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == max)
			return max + 1;
		f[n++] = tok;
	}
	return n;
}

/*
 * One entry line (NUL-terminated, no newline). Appends it, or returns why
 * not; "expired" is a valid line that is dropped. Nothing is appended
 * unless every field is right.
 */
static const char *parse_entry(char *line, const struct rg_state_clocks *now,
			       struct rg_state *st, int *nomem)
{
	char *f[FIELDS_MAX];
	const char *why = NULL;
	struct rg_addr key;
	uint64_t since, failures;
	int n, origin, service;

	for (const char *p = line; *p; p++)
		if (*p < ' ' || *p > '~')
			return "control or non-ASCII byte";
	n = split(line, f, FIELDS_MAX);
	if (n < 1)
		return "empty entry";
	if (strcmp(f[0], "grant") && strcmp(f[0], "deny"))
		return "unknown kind (grant or deny)";
	if (n != (f[0][0] == 'g' ? 7 : 6))
		return "wrong number of fields";
	if (rg_addr_parse(f[1], &key, &why))
		return why;
	if (!parse_u64(f[3], &since) || since > UINT64_MAX / NSEC)
		return "bad start time";
	origin = origin_parse(f[4]);
	if (origin < 0)
		return "unknown origin";

	if (f[0][0] == 'g') {
		struct rg_grant g = { .origin = origin };

		service = service_parse(f[5]);
		if (service < 0)
			return "unknown service";
		g.service = service;
		if ((why = parse_user(f[6], g.user)))
			return why;
		if ((why = parse_expiry(f[2], now, &g.expires)))
			return why;
		g.granted = since_to_boot(since, now);
		*nomem = rg_state_add_grant(st, &key, &g);
	} else {
		struct rg_deny d = { .origin = origin };

		if (!parse_u64(f[5], &failures) || failures > UINT32_MAX)
			return "bad failure count";
		d.failures = failures;
		if ((why = parse_expiry(f[2], now, &d.expires)))
			return why;
		d.created = since_to_boot(since, now);
		*nomem = rg_state_add_deny(st, &key, &d);
	}
	return NULL;
}

const char *rg_state_parse_line(const char *line, size_t len,
				const struct rg_state_clocks *now, struct rg_state *st)
{
	char buf[LINE_MAX_ + 1];
	const char *why;
	int nomem = 0;

	if (len > LINE_MAX_)
		return "line too long";
	if (memchr(line, '\0', len))
		return "NUL byte";
	memcpy(buf, line, len);
	buf[len] = '\0';
	why = parse_entry(buf, now, st, &nomem);
	return nomem ? "out of memory" : why;
}

/* "relaygate-state N": N, or -1 if the line is no header. */
static long parse_header(const char *line)
{
	uint64_t v;

	if (strncmp(line, HEADER " ", sizeof(HEADER)) ||
	    !parse_u64(line + sizeof(HEADER), &v) || v > INT_MAX)
		return -1;
	return v;
}

static bool boot_id_ok(const char *s, size_t n)
{
	size_t i;

	if (n != RG_BOOT_ID_LEN)
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '-'))
			return false;
	return true;
}

/* "maps BOOT_ID GRANTS_ID DENIES_ID V4_PREFIX V6_PREFIX" (line:
 * NUL-terminated): NULL when taken into st->maps, else why not. */
static const char *parse_maps(char *line, struct rg_state *st)
{
	char *f[5];
	uint64_t g, d, p4, p6;
	int n = split(line + 5, f, 5);

	if (n > 5)
		return "maps: too many fields";
	if (n != 5)
		return "maps: expected BOOT_ID GRANTS_ID DENIES_ID V4_PREFIX V6_PREFIX";
	if (!boot_id_ok(f[0], strlen(f[0])))
		return "maps: bad boot id";
	if (!parse_u64(f[1], &g) || !parse_u64(f[2], &d) || !g || !d || g > UINT32_MAX ||
	    d > UINT32_MAX)
		return "maps: bad map id";
	if (!parse_u64(f[3], &p4) || !parse_u64(f[4], &p6) || !p4 || p4 > 32 || !p6 || p6 > 128)
		return "maps: bad prefix";
	if (st->maps.boot_id[0])
		return "maps: a second maps line";
	memcpy(st->maps.boot_id, f[0], RG_BOOT_ID_LEN + 1);
	st->maps.grants_id = (uint32_t)g;
	st->maps.deny_id = (uint32_t)d;
	st->maps.v4_prefix = (unsigned)p4;
	st->maps.v6_prefix = (unsigned)p6;
	return NULL;
}

int rg_state_boot_id(char *out)
{
	char buf[RG_BOOT_ID_LEN + 2];
	ssize_t n;
	int fd, r = 0;

	out[0] = '\0';
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf));
	if (n < 0)
		r = -errno;
	else if (n != RG_BOOT_ID_LEN + 1 || buf[RG_BOOT_ID_LEN] != '\n' ||
		 !boot_id_ok(buf, RG_BOOT_ID_LEN))
		r = -EINVAL;
	close(fd);
	if (!r) {
		memcpy(out, buf, RG_BOOT_ID_LEN);
		out[RG_BOOT_ID_LEN] = '\0';
	}
	return r;
}

static void bad_line(struct rg_state *st, const char *name, unsigned lineno, const char *why)
{
	if (st->bad++ < WARN_MAX)
		rg_warn("%s:%u: %s: line skipped", name, lineno, why);
}

int rg_state_parse(const char *buf, size_t len, const struct rg_state_clocks *now,
		   struct rg_state *st, const char *name)
{
	unsigned lineno = 0, bad0 = st->bad;
	const char *p = buf, *end = buf + len;
	char line[LINE_MAX_ + 1];

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl : end) - p;
		const char *why;
		int nomem = 0;

		lineno++;
		if (n > LINE_MAX_ || memchr(p, '\0', n) || !nl) {
			bad_line(st, name, lineno, n > LINE_MAX_ ? "line too long" :
				 !nl ? "last line cut short (no newline)" : "NUL byte");
			p = nl ? nl + 1 : end;
			continue;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		p = nl + 1;
		if (lineno == 1) {
			long v = parse_header(line);

			if (v > RG_STATE_VERSION) {
				rg_warn("%s: format version %ld is newer than this relaygate's (%d)",
					name, v, RG_STATE_VERSION);
				return -EPROTO;
			}
			if (v == RG_STATE_VERSION)
				continue;
			/* No header: counted once; an entry line still loads. */
			bad_line(st, name, lineno, "no \"" HEADER " 1\" header");
			if (parse_entry(line, now, st, &nomem) == NULL && nomem)
				return -ENOMEM;
			continue;
		}
		if (!n || line[0] == '#')
			continue;
		if (!strncmp(line, "maps ", 5)) {
			why = parse_maps(line, st);
			if (why)
				bad_line(st, name, lineno, why);
			continue;
		}
		why = parse_entry(line, now, st, &nomem);
		if (nomem)
			return -ENOMEM;
		if (why && !strcmp(why, "expired"))
			st->expired++;
		else if (why)
			bad_line(st, name, lineno, why);
	}
	if (st->bad - bad0 > WARN_MAX)
		rg_warn("%s: %u corrupt lines skipped in all", name, st->bad - bad0);
	return 0;
}

int rg_state_load(const char *path, const struct rg_state_clocks *now,
		  struct rg_state *st, char *err, size_t errlen)
{
	struct stat sb;
	const char *why = NULL;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n = 0;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb)) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode) || sb.st_size > RG_STATE_FILE_MAX) {
		why = S_ISREG(sb.st_mode) ? "too large (over 64 MiB)" : "not a regular file";
		r = -EINVAL;
		goto out;
	}
	buf = malloc(sb.st_size + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	/* Up to the size seen: a file that grows meanwhile is not ours. */
	while (len < (size_t)sb.st_size) {
		n = read(fd, buf + len, sb.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += n;
	}
	if (n < 0) {
		r = -errno;
		goto out;
	}
	r = rg_state_parse(buf, len, now, st, path);
	if (r == -EPROTO)
		why = "written by a newer relaygate: not loaded";
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	if (r)
		snprintf(err, errlen, "state file %s: %s", path, why ? why : strerror(-r));
	return r;
}
