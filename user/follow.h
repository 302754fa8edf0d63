/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Following a log source line by line: a file across rename rotation and
 * copytruncate, a named FIFO, or stdin ("-"). Non-blocking, driven by the
 * caller's epoll loop:
 *
 *	f = rg_follow_open(&opts, err, sizeof(err));
 *	epoll_ctl(ep, EPOLL_CTL_ADD, rg_follow_fd(f), &(EPOLLIN ...));
 *	on EPOLLIN, and about once a second anyway:  rg_follow_process(f);
 *
 * Files are watched with inotify (the file itself, through /proc/self/fd,
 * and its directory); the events only wake us up, every rg_follow_process()
 * re-checks the state (the name's inode, the size, the bytes before the
 * read position), so a lost or overflowed event (or a removed directory)
 * costs latency until the next periodic call, never a line.
 *
 * What happens to a file:
 *  - rename rotation (mv NAME NAME.1; the logger reopens NAME): the old file
 *    is read to its end, and kept open until the new NAME receives data (the
 *    logger may write to the old one until it reopens), then NAME is read
 *    from its start. Lines come in order and none twice.
 *  - copytruncate (NAME shrinks below the read position, or the bytes just
 *    before it changed): if NAME.1 is the copy (it holds the same bytes
 *    before the read position), its rest is read first; then NAME from 0.
 *    Lines written between the copy and the truncation are lost: that is
 *    copytruncate's own window.
 *  - a missing NAME is waited for and read from its start when it appears.
 *
 * Position file (opts.pos_path): "device inode offset" of the oldest file
 * still being read plus the bytes before the offset, rewritten (temp file +
 * rename, no fsync) at the end of each rg_follow_process() that moved it.
 * The callback runs before the save: after a crash the lines of the last
 * rg_follow_process() call may come again (at least once, never lost).
 * At open: the same file -> resume at the offset (from 0 if it was
 * copytruncated meanwhile, NAME.1's rest first as above); NAME is another
 * file -> if the saved file is now NAME.1, its rest first; then NAME from 0.
 * Without a position (first start, unreadable position file) an existing
 * file is read from its end, unless opts.from_start: replaying an old log
 * would re-grant old logins.
 *
 * Lines are delivered without their "\n" (and without a "\r" before it),
 * NUL-terminated. A line longer than RG_FOLLOW_LINE_MAX bytes is skipped
 * and counted. An incomplete last line waits for its newline; it is dropped
 * (and counted as cut) if its file is truncated or left behind by a
 * rotation; at the end of a stream (stdin) it is delivered.
 */
#ifndef RG_FOLLOW_H
#define RG_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RG_FOLLOW_LINE_MAX 8192

/* Called once per complete line; line[len] == '\0'. */
typedef void (*rg_follow_line_cb)(const char *line, size_t len, void *ctx);

struct rg_follow_opts {
	const char *path;        /* file, named FIFO, or "-" for stdin */
	const char *pos_path;    /* position file; NULL: none (files only) */
	bool from_start;         /* no saved position: read an existing file from 0 */
	rg_follow_line_cb cb;
	void *ctx;
};

struct rg_follow_stats {
	uint64_t lines;          /* delivered to the callback */
	uint64_t too_long;       /* longer than RG_FOLLOW_LINE_MAX: skipped */
	uint64_t cut;            /* incomplete lines dropped (truncation, rotation) */
	uint64_t rotations;      /* renames, replacements and truncations seen */
	uint64_t lag;            /* bytes in the file(s) not read yet (0 for streams) */
};

/* rg_follow_process() results besides -errno. */
#define RG_FOLLOW_IDLE 0         /* caught up */
#define RG_FOLLOW_MORE 1         /* stopped early with data left: call again soon */
#define RG_FOLLOW_EOF  2         /* stdin ended: remove it from the loop */

struct rg_follow;

/* NULL on error with one line in err ("/var/log/x: directory does not exist"). */
struct rg_follow *rg_follow_open(const struct rg_follow_opts *o, char *err, size_t errlen);
/* Saves the position (if any) and frees everything. NULL is fine. */
void rg_follow_close(struct rg_follow *f);
/* The one fd to poll for EPOLLIN: inotify for files, the stream itself
 * otherwise. Stable for the follower's lifetime. (stdin redirected from a
 * regular file cannot be polled: just call rg_follow_process() until EOF.) */
int rg_follow_fd(const struct rg_follow *f);
/* Reads what is available and calls the callback for each complete line.
 * Returns RG_FOLLOW_IDLE, _MORE, _EOF or -errno (a read error; the
 * follower stays usable and retries on the next call). */
int rg_follow_process(struct rg_follow *f);
void rg_follow_get_stats(const struct rg_follow *f, struct rg_follow_stats *s);
/* Writes the position file now (also done by process and close): 0 or -errno. */
int rg_follow_save(struct rg_follow *f);

/*
 * The position file's text, exposed for tests and fuzzing only (the
 * follower reads and writes the file itself): "relaygate-pos 1\n", then
 * "DEV INO OFF SIG\n", SIG the min(OFF, 64) bytes before OFF in lowercase
 * hex, or "-" for none.
 */
#define RG_FOLLOW_SIG_MAX 64
struct rg_follow_pos {
	uint64_t dev, ino, off;
	uint8_t sig[RG_FOLLOW_SIG_MAX];
	size_t sig_len;          /* 0 or min(off, RG_FOLLOW_SIG_MAX) */
};
/* Strict parser of a position file's contents text[0..len) (no NUL
 * needed): true and *p filled, or false for anything else. */
bool rg_follow_pos_parse(const char *text, size_t len, struct rg_follow_pos *p);
/* The text rg_follow_save writes for p; returns snprintf's value. */
int rg_follow_pos_format(const struct rg_follow_pos *p, char *buf, size_t len);

#endif
