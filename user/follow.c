// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Log file following: see follow.h for the behaviour. The shape:
 *
 *  - struct ffile is one open file (or stream) with its read position, the
 *    unconsumed bytes and a signature (the bytes just before the committed
 *    position) that tells whether the file still holds what we read.
 *  - A follower has a current file (what NAME is now) and, after a rotation,
 *    an old one that is read to its end first. While old is open, cur is not
 *    read: one file delivers at a time, so one position describes the state.
 *  - rg_follow_process() = drain inotify, check cur for truncation, check
 *    NAME for rotation, read old then cur, save the position.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>
#include "follow.h"
#include "log.h"

#define BUF_SIZE    (64 * 1024)          /* > RG_FOLLOW_LINE_MAX + a good read */
#define SIG_MAX     RG_FOLLOW_SIG_MAX    /* bytes compared before the position */
#define POS_TEXT_MAX 512                 /* a position file is shorter */
#define READ_BUDGET (4 * 1024 * 1024)    /* bytes per file per process call */
#define POS_HEADER  "relaygate-pos 1"

struct ffile {
	int fd;                  /* -1: none */
	int wd;                  /* inotify watch of this inode, -1: none */
	dev_t dev;
	ino_t ino;
	uint64_t off;            /* next byte to read */
	uint64_t commit;         /* end of the last complete line handled */
	char *buf;               /* BUF_SIZE: bytes [commit.., off) not consumed */
	size_t len;
	bool skipping;           /* inside a too-long line: discard to its newline */
	uint8_t sig[SIG_MAX];    /* file bytes [sig_off - sig_len, sig_off) */
	size_t sig_len;
	uint64_t sig_off;
};

/* What a position file says. */
struct pos {
	dev_t dev;
	ino_t ino;
	uint64_t off;
	uint8_t sig[SIG_MAX];
	size_t sig_len;
};

struct rg_follow {
	char *path;              /* NAME */
	char *path1;             /* NAME.1 */
	char *dir;
	char *pos_path;
	bool stream;             /* FIFO or stdin: cur only, read(), no position */
	bool own_fd;             /* close cur.fd at the end (not stdin) */
	int ifd;                 /* inotify (files) */
	int dir_wd;
	bool from_start;
	bool warned_type;        /* NAME is not a regular file */
	bool warned_save;        /* the position file cannot be written */
	struct ffile cur, old;
	rg_follow_line_cb cb;
	void *ctx;
	struct rg_follow_stats st;
	struct pos saved;        /* what the position file holds now */
};

static void ffile_init(struct ffile *ff)
{
	memset(ff, 0, sizeof(*ff));
	ff->fd = -1;
	ff->wd = -1;
}

/* Closes ff, counting an incomplete line it still held. */
static void ffile_close(struct rg_follow *f, struct ffile *ff)
{
	if (ff->len || ff->skipping)
		f->st.cut++;
	if (ff->wd >= 0)
		inotify_rm_watch(f->ifd, ff->wd);
	if (ff->fd >= 0 && (!f->stream || f->own_fd))	/* stdin is not ours */
		close(ff->fd);
	free(ff->buf);
	ffile_init(ff);
}

static int ffile_attach(struct rg_follow *f, struct ffile *ff, int fd,
			const struct stat *st)
{
	char proc[64];

	ff->buf = malloc(BUF_SIZE);
	if (!ff->buf)
		return -ENOMEM;
	ff->fd = fd;
	ff->dev = st->st_dev;
	ff->ino = st->st_ino;
	if (f->ifd < 0)
		return 0;
	/* Watch the inode behind fd, whatever its name is now. Without /proc
	 * there is no watch: the caller's periodic call still reads it. */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ff->wd = inotify_add_watch(f->ifd, proc, IN_MODIFY | IN_MOVE_SELF);
	return 0;
}

/* Opens a regular file; -errno (-EINVAL: not a regular file). */
static int open_regular(const char *path, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

static bool sig_matches(int fd, const uint8_t *sig, size_t len, uint64_t off)
{
	uint8_t now[SIG_MAX];

	if (!len)
		return true;
	return pread(fd, now, len, off - len) == (ssize_t)len &&
	       !memcmp(now, sig, len);
}

static void sig_capture(struct ffile *ff)
{
	size_t n = ff->commit < SIG_MAX ? ff->commit : SIG_MAX;

	if (ff->sig_off == ff->commit && ff->sig_len == n)
		return;
	ff->sig_off = ff->commit;
	ff->sig_len = 0;
	if (pread(ff->fd, ff->sig, n, ff->commit - n) == (ssize_t)n)
		ff->sig_len = n;
	/* A short read: the file shrank under us; the size check sees it. */
}

static void deliver(struct rg_follow *f, char *p, size_t n)
{
	/* A writer without O_APPEND leaves a hole of NULs after copytruncate. */
	while (n && *p == '\0') {
		p++;
		n--;
	}
	if (n && p[n - 1] == '\r')
		n--;
	p[n] = '\0';
	f->st.lines++;
	f->cb(p, n, f->ctx);
}

/* Hands complete lines of ff->buf to the callback; keeps the rest. */
static void consume(struct rg_follow *f, struct ffile *ff, bool eof)
{
	char *p = ff->buf, *end = ff->buf + ff->len, *nl;
	size_t rest;

	while ((nl = memchr(p, '\n', end - p))) {
		size_t n = nl - p;

		if (ff->skipping || n > RG_FOLLOW_LINE_MAX)
			f->st.too_long++;
		else
			deliver(f, p, n);
		ff->skipping = false;
		p = nl + 1;
		ff->commit = ff->off - (end - p);
	}
	rest = end - p;
	if (rest > RG_FOLLOW_LINE_MAX)
		ff->skipping = true;
	if (ff->skipping) {
		rest = 0;
	} else if (eof && rest) {	/* a stream's unterminated last line */
		deliver(f, p, rest);
		rest = 0;
	}
	memmove(ff->buf, p, rest);
	ff->len = rest;
}

/* Reads ff to its end (or the budget). RG_FOLLOW_IDLE/MORE/EOF or -errno. */
static int drain(struct rg_follow *f, struct ffile *ff)
{
	size_t budget = READ_BUDGET;
	int ret = RG_FOLLOW_MORE;

	while (budget) {
		size_t space = BUF_SIZE - 1 - ff->len;	/* 1: room for a NUL */
		ssize_t n;

		if (f->stream)
			n = read(ff->fd, ff->buf + ff->len, space);
		else
			n = pread(ff->fd, ff->buf + ff->len, space, ff->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ret = RG_FOLLOW_IDLE;
			break;
		}
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0) {
			ret = f->stream ? RG_FOLLOW_EOF : RG_FOLLOW_IDLE;
			break;
		}
		ff->off += n;
		ff->len += n;
		budget -= (size_t)n < budget ? (size_t)n : budget;
		consume(f, ff, false);
	}
	if (ret == RG_FOLLOW_EOF)
		consume(f, ff, true);
	if (!f->stream)
		sig_capture(ff);
	return ret;
}

static int drain_all(struct rg_follow *f, struct ffile *ff)
{
	int r;

	while ((r = drain(f, ff)) == RG_FOLLOW_MORE)
		;
	return r;
}

/* --- position file -------------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Digits up to the separator sep; advances *s past it. */
static bool take_u64(const char **s, char sep, uint64_t *v)
{
	const char *p = *s;

	*v = 0;
	if (*p < '0' || *p > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = *p - '0';

		/* exact: every value rg_follow_save can write reads back */
		if (*v > (UINT64_MAX - d) / 10)
			return false;
		*v = *v * 10 + d;
	}
	if (*p != sep)
		return false;
	*s = p + 1;
	return true;
}

/* Strict: "relaygate-pos 1\nDEV INO OFF SIGHEX\n"; false if anything is off. */
static bool pos_parse(const char *s, struct pos *p)
{
	uint64_t dev, ino, off;
	size_t n = 0;

	if (strncmp(s, POS_HEADER "\n", sizeof(POS_HEADER)))
		return false;
	s += sizeof(POS_HEADER);
	if (!take_u64(&s, ' ', &dev) || !take_u64(&s, ' ', &ino) ||
	    !take_u64(&s, ' ', &off) || off > (uint64_t)LLONG_MAX)
		return false;
	if (strcmp(s, "-\n")) {	/* "-": no signature */
		if (*s == '\n')
			return false;	/* nor an empty field: "-" says it */
		for (; *s != '\n' && n < SIG_MAX; s += 2, n++) {
			int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);

			if (lo < 0)
				return false;
			p->sig[n] = hi << 4 | lo;
		}
		if (strcmp(s, "\n") || n != (off < SIG_MAX ? off : SIG_MAX))
			return false;
	}
	p->sig_len = n;
	p->dev = dev;
	p->ino = ino;
	p->off = off;
	return true;
}

/* pos_parse on text[0..len): a NUL byte (or too much text) is not valid. */
static bool pos_parse_text(const char *text, size_t len, struct pos *p)
{
	char buf[POS_TEXT_MAX];

	if (len >= sizeof(buf) || memchr(text, '\0', len))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return pos_parse(buf, p);
}

bool rg_follow_pos_parse(const char *text, size_t len, struct rg_follow_pos *out)
{
	struct pos p;

	if (!pos_parse_text(text, len, &p))
		return false;
	out->dev = p.dev;
	out->ino = p.ino;
	out->off = p.off;
	out->sig_len = p.sig_len;
	memcpy(out->sig, p.sig, p.sig_len);
	return true;
}

/* The text of a position file: "relaygate-pos 1\nDEV INO OFF SIGHEX\n"
 * (SIGHEX "-" when there is no signature). snprintf's return value. */
static int pos_format(char *buf, size_t len, uint64_t dev, uint64_t ino, uint64_t off,
		      const uint8_t *sig, size_t sig_len)
{
	char hex[2 * SIG_MAX + 1] = "-";
	size_t i;

	for (i = 0; i < sig_len && i < SIG_MAX; i++)
		snprintf(hex + 2 * i, 3, "%02x", sig[i]);
	return snprintf(buf, len, POS_HEADER "\n%llu %llu %llu %s\n", (unsigned long long)dev,
			(unsigned long long)ino, (unsigned long long)off, hex);
}

int rg_follow_pos_format(const struct rg_follow_pos *p, char *buf, size_t len)
{
	return pos_format(buf, len, p->dev, p->ino, p->off, p->sig, p->sig_len);
}

/* 1: a position was read, 0: none (absent or unusable, warned). */
static int pos_load(const char *path, struct pos *p)
{
	char buf[POS_TEXT_MAX];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		if (errno != ENOENT)
			rg_warn("%s: %s: starting without a saved position", path, strerror(errno));
		return 0;
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || !pos_parse_text(buf, n, p)) {
		rg_warn("%s: not a valid position file: starting without a saved position", path);
		return 0;
	}
	return 1;
}

int rg_follow_save(struct rg_follow *f)
{
	struct ffile *ff = f->old.fd >= 0 ? &f->old : &f->cur;
	char tmp[PATH_MAX], text[POS_TEXT_MAX];
	int fd, len, err = 0;
	ssize_t w;

	if (!f->pos_path || f->stream || ff->fd < 0)
		return 0;
	sig_capture(ff);
	if (ff->dev == f->saved.dev && ff->ino == f->saved.ino &&
	    ff->commit == f->saved.off && ff->sig_len == f->saved.sig_len &&
	    !memcmp(ff->sig, f->saved.sig, ff->sig_len))
		return 0;
	len = pos_format(text, sizeof(text), ff->dev, ff->ino, ff->commit, ff->sig, ff->sig_len);
	if (len < 0 || (size_t)len >= sizeof(text))
		return -EOVERFLOW;      /* cannot happen: 3 numbers and 64 bytes */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", f->pos_path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	w = write(fd, text, len);
	if (w != len)
		err = w < 0 ? -errno : -EIO;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, f->pos_path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return err;
	}
	f->saved = (struct pos){ .dev = ff->dev, .ino = ff->ino, .off = ff->commit,
				 .sig_len = ff->sig_len };
	memcpy(f->saved.sig, ff->sig, ff->sig_len);
	return 0;
}

/* --- files ---------------------------------------------------------- */

/* Same file as the position names? The inode, and the device or (after a
 * reboot renumbered devices) the bytes before the position. */
static bool pos_same_file(const struct pos *p, int fd, const struct stat *st)
{
	if (st->st_ino != p->ino)
		return false;
	return st->st_dev == p->dev ||
	       (p->sig_len && sig_matches(fd, p->sig, p->sig_len, p->off));
}

static void ffile_set_pos(struct ffile *ff, const struct pos *p)
{
	ff->off = ff->commit = ff->sig_off = p->off;
	memcpy(ff->sig, p->sig, p->sig_len);
	ff->sig_len = p->sig_len;
}

/* Starts ff after the last newline in the file's last line-length bytes,
 * so a line being written is delivered whole. */
static void start_at_end(struct ffile *ff, uint64_t size)
{
	char *buf = malloc(RG_FOLLOW_LINE_MAX);
	uint64_t from = size > RG_FOLLOW_LINE_MAX ? size - RG_FOLLOW_LINE_MAX : 0;
	ssize_t n = buf ? pread(ff->fd, buf, size - from, from) : -1;
	char *nl = n > 0 ? memrchr(buf, '\n', n) : NULL;

	if (nl) {
		ff->off = from + (nl - buf) + 1;
	} else if (from || !buf) {	/* inside a too-long line (or no memory) */
		ff->off = size;
		ff->skipping = buf != NULL;
	}
	ff->commit = ff->sig_off = ff->off;
	free(buf);
}

/* cur shrank or changed before the read position: copytruncate. Read the
 * rest from NAME.1 when it is the copy; then cur from 0. */
static void handle_truncation(struct rg_follow *f)
{
	struct ffile *cur = &f->cur;
	struct stat st;
	char *nbuf = NULL;
	int fd;

	f->st.rotations++;
	fd = open_regular(f->path1, &st);
	if (fd >= 0 && f->old.fd < 0 && st.st_ino != cur->ino && cur->sig_len &&
	    (uint64_t)st.st_size >= cur->off &&
	    sig_matches(fd, cur->sig, cur->sig_len, cur->sig_off) &&
	    (nbuf = malloc(BUF_SIZE))) {
		/* The copy takes over cur's state, buffer included. */
		f->old = *cur;
		f->old.fd = fd;
		f->old.wd = -1;	/* a copy does not grow */
		f->old.dev = st.st_dev;
		f->old.ino = st.st_ino;
		cur->buf = nbuf;
	} else {
		if (fd >= 0)
			close(fd);
		if (cur->len || cur->skipping)
			f->st.cut++;
	}
	cur->len = 0;
	cur->skipping = false;
	cur->off = cur->commit = cur->sig_off = 0;
	cur->sig_len = 0;
}

static bool cur_truncated(struct ffile *cur)
{
	struct stat st;

	if (fstat(cur->fd, &st) < 0)
		return false;
	return (uint64_t)st.st_size < cur->off ||
	       !sig_matches(cur->fd, cur->sig, cur->sig_len, cur->sig_off);
}

/* Does NAME still name cur? If it names another file now, that file
 * becomes cur (from 0) and cur becomes old. */
static int check_name(struct rg_follow *f)
{
	struct stat st;
	int fd, r;

	if (stat(f->path, &st) < 0)
		return 0;	/* gone: keep reading cur; wait for NAME */
	if (!S_ISREG(st.st_mode)) {
		if (!f->warned_type)
			rg_warn("%s: not a regular file: waiting for one", f->path);
		f->warned_type = true;
		return 0;
	}
	f->warned_type = false;
	if (f->cur.fd >= 0 && st.st_ino == f->cur.ino && st.st_dev == f->cur.dev)
		return 0;
	fd = open_regular(f->path, &st);
	if (fd < 0)
		return fd == -ENOENT || fd == -EINVAL ? 0 : fd;
	if (f->cur.fd >= 0 && st.st_ino == f->cur.ino && st.st_dev == f->cur.dev) {
		close(fd);
		return 0;
	}
	if (f->cur.fd >= 0) {
		f->st.rotations++;
		if (f->old.fd >= 0) {	/* rotated again before NAME got data */
			drain_all(f, &f->old);
			ffile_close(f, &f->old);
		}
		f->old = f->cur;
		ffile_init(&f->cur);
	}
	r = ffile_attach(f, &f->cur, fd, &st);
	if (r < 0)
		close(fd);
	return r;
}

static void drain_inotify(struct rg_follow *f)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(f->ifd, buf, sizeof(buf))) > 0) {
		char *p = buf;

		while (p < buf + n) {
			const struct inotify_event *ev = (const void *)p;

			if ((ev->mask & IN_IGNORED) && ev->wd == f->dir_wd)
				f->dir_wd = -1;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (f->dir_wd < 0)	/* the directory was removed: retry each call */
		f->dir_wd = inotify_add_watch(f->ifd, f->dir, IN_CREATE | IN_MOVED_TO |
					      IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
}

static int process_file(struct rg_follow *f)
{
	int r = RG_FOLLOW_IDLE, e, s;

	drain_inotify(f);
	if (f->cur.fd >= 0 && f->cur.off && cur_truncated(&f->cur))
		handle_truncation(f);
	e = check_name(f);
	if (f->old.fd >= 0) {
		struct stat st;
		/* Sampled before the drain: if NAME has data, its logger has
		 * finished with old, and old read to its end is complete. */
		bool cur_has_data = f->cur.fd >= 0 && fstat(f->cur.fd, &st) == 0 &&
				    st.st_size > 0;

		r = drain(f, &f->old);
		if (r == RG_FOLLOW_IDLE && cur_has_data)
			ffile_close(f, &f->old);
	}
	if (f->old.fd < 0 && f->cur.fd >= 0)
		r = drain(f, &f->cur);
	s = rg_follow_save(f);
	if (s < 0 && !f->warned_save)
		rg_warn("%s: cannot save the read position: %s", f->pos_path, strerror(-s));
	f->warned_save = s < 0;
	return r < 0 ? r : e < 0 ? e : r;
}

int rg_follow_process(struct rg_follow *f)
{
	if (f->stream)
		return drain(f, &f->cur);
	return process_file(f);
}

/* --- open / close --------------------------------------------------- */

static int open_stream(struct rg_follow *f, char *err, size_t errlen)
{
	struct stat st = { 0 };
	int fd = 0, fl;

	if (strcmp(f->path, "-")) {
		/* O_RDWR: we hold a writer, so the FIFO never reads EOF and
		 * epoll never reports a hang-up between two writers. */
		fd = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "%s: %s", f->path, strerror(errno));
			return -1;
		}
		f->own_fd = true;
	} else if ((fl = fcntl(0, F_GETFL)) < 0 || fcntl(0, F_SETFL, fl | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "stdin: %s", strerror(errno));
		return -1;
	}
	if (ffile_attach(f, &f->cur, fd, &st) < 0) {
		if (f->own_fd)
			close(fd);
		snprintf(err, errlen, "%s: out of memory", f->path);
		return -1;
	}
	return 0;
}

/* Attaches fd (or closes it on failure). */
static int attach_or_close(struct rg_follow *f, struct ffile *ff, int fd,
			   const struct stat *st)
{
	int r = ffile_attach(f, ff, fd, st);

	if (r < 0)
		close(fd);
	return r;
}

/* Where to start reading NAME (and maybe NAME.1) when the follower opens. */
static int open_file(struct rg_follow *f)
{
	struct stat st, st1;
	struct pos p;
	bool have_pos = f->pos_path && pos_load(f->pos_path, &p);
	int fd, fd1, r;

	fd = open_regular(f->path, &st);
	if (fd == -EINVAL)
		return -EINVAL;
	if (fd < 0 && fd != -ENOENT)
		return fd;
	if (have_pos)
		f->saved = p;	/* the position file holds it already */
	if (have_pos && fd >= 0 && pos_same_file(&p, fd, &st)) {
		r = attach_or_close(f, &f->cur, fd, &st);
		if (r == 0)
			ffile_set_pos(&f->cur, &p);	/* truncation: see process */
		return r;
	}
	if (have_pos) {
		fd1 = open_regular(f->path1, &st1);
		if (fd1 >= 0 && pos_same_file(&p, fd1, &st1) &&
		    (uint64_t)st1.st_size >= p.off) {
			r = attach_or_close(f, &f->old, fd1, &st1);
			if (r < 0) {
				if (fd >= 0)
					close(fd);
				return r;
			}
			ffile_set_pos(&f->old, &p);
			f->st.rotations++;
		} else {
			if (fd1 >= 0)
				close(fd1);
			rg_warn("%s: the file of the saved position is gone: reading %s from its start",
				f->pos_path, f->path);
		}
	}
	if (fd < 0)
		return 0;	/* waited for */
	r = attach_or_close(f, &f->cur, fd, &st);
	if (r == 0 && !have_pos && !f->from_start)
		start_at_end(&f->cur, st.st_size);
	return r;
}

struct rg_follow *rg_follow_open(const struct rg_follow_opts *o, char *err, size_t errlen)
{
	struct rg_follow *f = calloc(1, sizeof(*f));
	struct stat st;
	char *slash;
	int r;

	if (!f || !o->path || !*o->path || !o->cb) {
		snprintf(err, errlen, "%s: %s", o->path ? o->path : "(null)",
			 f ? "no path or callback" : "out of memory");
		free(f);
		return NULL;
	}
	ffile_init(&f->cur);
	ffile_init(&f->old);
	f->ifd = f->dir_wd = -1;
	f->cb = o->cb;
	f->ctx = o->ctx;
	f->from_start = o->from_start;
	f->path = strdup(o->path);
	if (asprintf(&f->path1, "%s.1", o->path) < 0)
		f->path1 = NULL;
	f->pos_path = o->pos_path ? strdup(o->pos_path) : NULL;
	slash = f->path ? strrchr(f->path, '/') : NULL;
	f->dir = slash == f->path ? strdup("/") :
		 slash ? strndup(f->path, slash - f->path) : strdup(".");
	if (!f->path || !f->path1 || !f->dir || (o->pos_path && !f->pos_path)) {
		snprintf(err, errlen, "%s: out of memory", o->path);
		goto fail;
	}

	if (!strcmp(f->path, "-") || (stat(f->path, &st) == 0 && S_ISFIFO(st.st_mode))) {
		f->stream = true;
		if (open_stream(f, err, errlen) < 0)
			goto fail;
		return f;
	}

	if (stat(f->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: directory %s does not exist", f->path, f->dir);
		goto fail;
	}
	f->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (f->ifd < 0) {
		snprintf(err, errlen, "%s: inotify: %s", f->path, strerror(errno));
		goto fail;
	}
	f->dir_wd = inotify_add_watch(f->ifd, f->dir, IN_CREATE | IN_MOVED_TO |
				      IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
	if (f->dir_wd < 0) {
		snprintf(err, errlen, "%s: cannot watch %s: %s", f->path, f->dir,
			 strerror(errno));
		goto fail;
	}
	r = open_file(f);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", f->path,
			 r == -EINVAL ? "not a regular file or FIFO" : strerror(-r));
		goto fail;
	}
	return f;
fail:
	rg_follow_close(f);
	return NULL;
}

void rg_follow_close(struct rg_follow *f)
{
	if (!f)
		return;
	rg_follow_save(f);
	ffile_close(f, &f->old);
	ffile_close(f, &f->cur);
	if (f->ifd >= 0)
		close(f->ifd);
	free(f->path);
	free(f->path1);
	free(f->dir);
	free(f->pos_path);
	free(f);
}

int rg_follow_fd(const struct rg_follow *f)
{
	return f->stream ? f->cur.fd : f->ifd;
}

static uint64_t unread(const struct ffile *ff)
{
	struct stat st;

	if (ff->fd < 0 || fstat(ff->fd, &st) < 0 || (uint64_t)st.st_size < ff->off)
		return 0;
	return st.st_size - ff->off;
}

void rg_follow_get_stats(const struct rg_follow *f, struct rg_follow_stats *s)
{
	*s = f->st;
	s->lag = f->stream ? 0 : unread(&f->old) + unread(&f->cur);
}
