// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * user/follow.c: a file followed across rename rotation, copytruncate and
 * daemon restarts delivers every line exactly once, in order; FIFO and
 * stdin; long lines; the position file. Each test works in its own
 * temporary directory and plays the logger (an O_APPEND fd, like syslog
 * daemons and Dovecot) and logrotate (rename/create, copy+truncate) itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "follow.h"

struct got {
	char **lines;
	size_t n, cap;
};

struct ctx {
	char dir[64];
	char path[128], path1[128], pos[128];
	struct got got;
	struct rg_follow *f;
};

static void on_line(const char *line, size_t len, void *arg)
{
	struct got *g = arg;

	assert_int_equal(strlen(line), len);	/* NUL-terminated, no NUL inside */
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 64;
		g->lines = realloc(g->lines, g->cap * sizeof(*g->lines));
		assert_non_null(g->lines);
	}
	g->lines[g->n] = strdup(line);
	assert_non_null(g->lines[g->n]);
	g->n++;
}

static void got_clear(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->lines[i]);
	g->n = 0;
}

/* The lines delivered since the last check are exactly these. */
static void expect_lines(struct got *g, ...)
{
	va_list ap;
	const char *want;
	size_t i = 0;

	va_start(ap, g);
	while ((want = va_arg(ap, const char *))) {
		if (i >= g->n)
			fail_msg("line %zu: expected \"%s\", got nothing more", i, want);
		if (strcmp(g->lines[i], want))
			fail_msg("line %zu: expected \"%s\", got \"%s\"", i, want, g->lines[i]);
		i++;
	}
	va_end(ap);
	if (i != g->n)
		fail_msg("%zu lines expected, got %zu (extra: \"%s\")", i, g->n, g->lines[i]);
	got_clear(g);
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	strcpy(c->dir, "/tmp/rg-follow-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->path, sizeof(c->path), "%s/mail.log", c->dir);
	snprintf(c->path1, sizeof(c->path1), "%s/mail.log.1", c->dir);
	snprintf(c->pos, sizeof(c->pos), "%s/pos", c->dir);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	struct dirent *de;
	char p[512];
	DIR *d;

	rg_follow_close(c->f);
	got_clear(&c->got);
	free(c->got.lines);
	d = opendir(c->dir);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", c->dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(c->dir);
	free(c);
	return 0;
}

static void follow(struct ctx *c, const char *pos, bool from_start)
{
	struct rg_follow_opts o = {
		.path = c->path, .pos_path = pos, .from_start = from_start,
		.cb = on_line, .ctx = &c->got,
	};
	char err[256] = "";

	c->f = rg_follow_open(&o, err, sizeof(err));
	if (!c->f)
		fail_msg("rg_follow_open: %s", err);
}

static void restart(struct ctx *c, const char *pos)
{
	rg_follow_close(c->f);
	c->f = NULL;
	follow(c, pos, true);
}

static int process(struct ctx *c)
{
	int r;

	while ((r = rg_follow_process(c->f)) == RG_FOLLOW_MORE)
		;
	assert_true(r >= 0);
	return r;
}

/* The logger: an O_APPEND fd on NAME (kept across renames, like a logger
 * that has not reopened yet). */
static int logger_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);

	assert_true(fd >= 0);
	return fd;
}

static void put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void append(const char *path, const char *s)
{
	int fd = logger_open(path);

	put(fd, s);
	close(fd);
}

static void copy_file(const char *from, const char *to)
{
	char buf[4096];
	int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, n), n);
	close(in);
	close(out);
}

/* logrotate copytruncate */
static void copytruncate(struct ctx *c)
{
	copy_file(c->path, c->path1);
	assert_int_equal(truncate(c->path, 0), 0);
}

static struct rg_follow_stats stats(struct ctx *c)
{
	struct rg_follow_stats s;

	rg_follow_get_stats(c->f, &s);
	return s;
}

static void test_lines_partial_crlf(void **state)
{
	struct ctx *c = *state;

	append(c->path, "one\ntwo\r\n\nthr");
	follow(c, NULL, true);
	assert_int_equal(process(c), RG_FOLLOW_IDLE);
	expect_lines(&c->got, "one", "two", "", NULL);
	assert_int_equal(stats(c).lag, 0);
	append(c->path, "ee");
	process(c);
	expect_lines(&c->got, NULL);	/* no newline yet */
	append(c->path, "\nfour\n");
	process(c);
	expect_lines(&c->got, "three", "four", NULL);
	assert_int_equal(stats(c).lines, 5);
}

static void test_start_at_end(void **state)
{
	struct ctx *c = *state;

	/* An old log is not replayed (its logins are stale); the line being
	 * written when we start is delivered whole. */
	append(c->path, "old 1\nold 2\npart");
	follow(c, NULL, false);
	process(c);
	expect_lines(&c->got, NULL);
	append(c->path, "ial\nnew\n");
	process(c);
	expect_lines(&c->got, "partial", "new", NULL);
}

static void test_long_lines(void **state)
{
	struct ctx *c = *state;
	size_t big = 3 * RG_FOLLOW_LINE_MAX;
	char *s = malloc(big + 1);

	assert_non_null(s);
	follow(c, NULL, true);
	/* One line of exactly the maximum is fine. */
	memset(s, 'a', RG_FOLLOW_LINE_MAX);
	s[RG_FOLLOW_LINE_MAX] = '\0';
	append(c->path, s);
	append(c->path, "\n");
	process(c);
	assert_int_equal(c->got.n, 1);
	assert_int_equal(strlen(c->got.lines[0]), RG_FOLLOW_LINE_MAX);
	got_clear(&c->got);
	/* One byte more is skipped, also when it arrives in pieces. */
	append(c->path, "b");
	append(c->path, s);
	process(c);
	append(c->path, "tail of the long line\nshort\n");
	memset(s, 'c', big);
	s[big] = '\0';
	append(c->path, s);
	append(c->path, "\nlast\n");
	process(c);
	expect_lines(&c->got, "short", "last", NULL);
	assert_int_equal(stats(c).too_long, 2);
	free(s);
}

static void test_rename_logger_not_reopened(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);

	follow(c, NULL, true);
	put(lg, "l1\nl2\n");
	process(c);
	expect_lines(&c->got, "l1", "l2", NULL);
	/* logrotate: mv NAME NAME.1; create NAME; the logger writes on to
	 * the old file until it is told to reopen. */
	assert_int_equal(rename(c->path, c->path1), 0);
	put(lg, "l3\n");
	close(logger_open(c->path));
	process(c);
	put(lg, "l4\nl");
	process(c);
	expect_lines(&c->got, "l3", "l4", NULL);
	put(lg, "5\n");
	close(lg);
	lg = logger_open(c->path);	/* reopen */
	put(lg, "l6\n");
	process(c);
	expect_lines(&c->got, "l5", "l6", NULL);
	put(lg, "l7\n");
	process(c);
	expect_lines(&c->got, "l7", NULL);
	assert_int_equal(stats(c).rotations, 1);
	assert_int_equal(stats(c).cut, 0);
	close(lg);
}

static void test_rename_old_read_first(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);

	follow(c, NULL, true);
	put(lg, "a1\n");
	process(c);
	/* Everything happens before we look: old lines must still come first. */
	assert_int_equal(rename(c->path, c->path1), 0);
	put(lg, "a2\na3\n");
	close(lg);
	append(c->path, "b1\nb2\n");
	process(c);
	expect_lines(&c->got, "a1", "a2", "a3", "b1", "b2", NULL);
	/* The old file was let go: writing to NAME.1 delivers nothing. */
	append(c->path1, "stray\n");
	append(c->path, "b3\n");
	process(c);
	expect_lines(&c->got, "b3", NULL);
}

static void test_copytruncate(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);

	follow(c, NULL, true);
	put(lg, "c1\nc2\n");
	process(c);
	/* c3 is written before the copy but read only after the truncation:
	 * it is recovered from NAME.1. */
	put(lg, "c3\nc");
	copytruncate(c);
	put(lg, "4\nc5\n");	/* O_APPEND: lands at the new end */
	process(c);
	/* A line split by the copy: its start "c" is dropped (counted as cut),
	 * its rest "4" comes as a line: copytruncate's window again. */
	expect_lines(&c->got, "c1", "c2", "c3", "4", "c5", NULL);
	assert_int_equal(stats(c).rotations, 1);
	assert_int_equal(stats(c).cut, 1);
	/* Without a copy (plain truncation) NAME is read from 0. */
	unlink(c->path1);
	assert_int_equal(ftruncate(lg, 0), 0);
	put(lg, "d1\n");
	process(c);
	expect_lines(&c->got, "d1", NULL);
	assert_int_equal(stats(c).rotations, 2);
	close(lg);
}

static void test_truncated_and_regrown(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);

	follow(c, NULL, true);
	put(lg, "short 1\n");
	process(c);
	/* Truncated and already longer than our position when we look: the
	 * bytes before the position tell. */
	assert_int_equal(ftruncate(lg, 0), 0);
	put(lg, "a much longer line\nand more\n");
	process(c);
	expect_lines(&c->got, "short 1", "a much longer line", "and more", NULL);
	close(lg);
}

static void test_restart_resumes(void **state)
{
	struct ctx *c = *state;

	append(c->path, "r1\nr2\n");
	follow(c, c->pos, true);
	process(c);
	expect_lines(&c->got, "r1", "r2", NULL);
	append(c->path, "r3\nr4-par");
	restart(c, c->pos);	/* position saved by close */
	process(c);
	expect_lines(&c->got, "r3", NULL);
	rg_follow_close(c->f);	/* the partial line is re-read, not lost */
	c->f = NULL;
	append(c->path, "tial\n");
	follow(c, c->pos, false);	/* a position overrides from_start */
	process(c);
	expect_lines(&c->got, "r4-partial", NULL);
}

static void test_restart_after_rename(void **state)
{
	struct ctx *c = *state;

	append(c->path, "x1\n");
	follow(c, c->pos, true);
	process(c);
	expect_lines(&c->got, "x1", NULL);
	rg_follow_close(c->f);
	c->f = NULL;
	/* While we are down: more lines, a rotation, lines in the new file. */
	append(c->path, "x2\nx3\n");
	assert_int_equal(rename(c->path, c->path1), 0);
	append(c->path, "y1\n");
	follow(c, c->pos, false);
	process(c);
	expect_lines(&c->got, "x2", "x3", "y1", NULL);
	assert_int_equal(stats(c).rotations, 1);
	/* Down again, and the old file is gone entirely: NAME from 0. */
	rg_follow_close(c->f);
	c->f = NULL;
	assert_int_equal(rename(c->path, c->path1), 0);
	unlink(c->path1);
	append(c->path, "z1\n");
	follow(c, c->pos, false);
	process(c);
	expect_lines(&c->got, "z1", NULL);
}

static void test_restart_after_copytruncate(void **state)
{
	struct ctx *c = *state;

	append(c->path, "p1\n");
	follow(c, c->pos, true);
	process(c);
	rg_follow_close(c->f);
	c->f = NULL;
	append(c->path, "p2\n");
	copytruncate(c);
	append(c->path, "q1 is longer than the position\n");
	follow(c, c->pos, false);
	process(c);
	expect_lines(&c->got, "p1", "p2", "q1 is longer than the position", NULL);
}

static void test_restart_while_old_open(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);

	follow(c, c->pos, true);
	put(lg, "o1\n");
	assert_int_equal(rename(c->path, c->path1), 0);
	close(logger_open(c->path));	/* created empty, logger not reopened */
	process(c);
	put(lg, "o2\n");
	restart(c, c->pos);	/* the saved position is in the old file */
	process(c);
	put(lg, "o3\n");
	close(lg);
	append(c->path, "n1\n");
	process(c);
	expect_lines(&c->got, "o1", "o2", "o3", "n1", NULL);
}

static void test_bad_position_file(void **state)
{
	struct ctx *c = *state;
	FILE *p = fopen(c->pos, "w");

	assert_non_null(p);
	fputs("relaygate-pos 1\n12 -3 99 zz\n", p);
	fclose(p);
	append(c->path, "stale\n");
	follow(c, c->pos, false);	/* warned, then as without a position */
	process(c);
	append(c->path, "fresh\n");
	process(c);
	expect_lines(&c->got, "fresh", NULL);
}

static void test_wait_for_file(void **state)
{
	struct ctx *c = *state;
	struct rg_follow_opts o = { .path = "/nonexistent-rg/x.log", .cb = on_line };
	char err[256] = "";

	assert_null(rg_follow_open(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "does not exist"));
	o.path = c->dir;
	assert_null(rg_follow_open(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "not a regular file"));

	follow(c, c->pos, false);
	process(c);
	expect_lines(&c->got, NULL);
	append(c->path, "born\n");
	/* The inotify fd wakes the loop. */
	struct pollfd pfd = { .fd = rg_follow_fd(c->f), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	process(c);
	expect_lines(&c->got, "born", NULL);	/* a new file is read from 0 */
}

static void test_fd_wakes_on_old_file(void **state)
{
	struct ctx *c = *state;
	int lg = logger_open(c->path);
	struct pollfd pfd;

	follow(c, NULL, true);
	pfd = (struct pollfd){ .fd = rg_follow_fd(c->f), .events = POLLIN };
	process(c);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(rename(c->path, c->path1), 0);
	process(c);
	put(lg, "late\n");	/* written to the renamed file */
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	process(c);
	expect_lines(&c->got, "late", NULL);
	put(lg, "0123456789");
	assert_int_equal(stats(c).lag, 10);
	close(lg);
}

static void test_fifo(void **state)
{
	struct ctx *c = *state;
	int w;

	assert_int_equal(mkfifo(c->path, 0600), 0);
	follow(c, c->pos, false);
	w = open(c->path, O_WRONLY);
	assert_true(w >= 0);
	put(w, "f1\nf2\nf");
	close(w);	/* the writer goes away: no EOF for a FIFO */
	assert_int_equal(process(c), RG_FOLLOW_IDLE);
	expect_lines(&c->got, "f1", "f2", NULL);
	w = open(c->path, O_WRONLY);
	put(w, "3\n");
	struct pollfd pfd = { .fd = rg_follow_fd(c->f), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(process(c), RG_FOLLOW_IDLE);
	expect_lines(&c->got, "f3", NULL);
	close(w);
	assert_int_equal(access(c->pos, F_OK), -1);	/* no position for a stream */
}

static void test_stdin(void **state)
{
	struct ctx *c = *state;
	struct rg_follow_opts o = { .path = "-", .cb = on_line, .ctx = &c->got };
	char err[256];
	int p[2], saved = dup(0);

	assert_int_equal(pipe(p), 0);
	assert_int_equal(dup2(p[0], 0), 0);
	close(p[0]);
	c->f = rg_follow_open(&o, err, sizeof(err));
	assert_non_null(c->f);
	assert_int_equal(rg_follow_fd(c->f), 0);
	put(p[1], "s1\ns2");
	assert_int_equal(rg_follow_process(c->f), RG_FOLLOW_IDLE);
	expect_lines(&c->got, "s1", NULL);
	close(p[1]);
	assert_int_equal(rg_follow_process(c->f), RG_FOLLOW_EOF);
	expect_lines(&c->got, "s2", NULL);	/* the last line without newline */
	rg_follow_close(c->f);
	c->f = NULL;
	assert_int_equal(dup2(saved, 0), 0);
	close(saved);
}

/*
 * A model test: a logger writes numbered lines while logrotate renames
 * (with and without "create", the logger reopening later) or copytruncates,
 * and the daemon restarts, all in a seeded random order. Every line must be
 * delivered once, in order. The constraint that holds in real life, where
 * rotations are hours apart and inotify wakes the follower at once: before
 * the next rotation the follower has looked at the log after the logger
 * wrote to its new file (awake, or after a restart).
 */
static void test_model_random_rotations(void **state)
{
	struct ctx *c = *state;
	const char *env = getenv("RG_FOLLOW_SEED");	/* to explore other orders */
	unsigned seed = env ? strtoul(env, NULL, 0) : 20241129, written = 0, next = 0;
	bool looked = false, reopen_pending = false, settled = false;
	int lg = logger_open(c->path);
	char line[32];

	follow(c, c->pos, true);
	for (int step = 0; step < 4000; step++) {
		int op = rand_r(&seed) % 100;

		if (op < 55) {
			snprintf(line, sizeof(line), "line %06u\n", written++);
			put(lg, line);
			settled = !reopen_pending;
		} else if (op < 75) {
			process(c);
			looked = settled;
		} else if (op < 83 && looked && !reopen_pending) {
			assert_int_equal(rename(c->path, c->path1), 0);
			if (rand_r(&seed) % 2)	/* logrotate "create" */
				close(open(c->path, O_WRONLY | O_CREAT, 0644));
			reopen_pending = true;
			looked = settled = false;
		} else if (op < 88 && reopen_pending) {
			close(lg);
			lg = logger_open(c->path);
			reopen_pending = false;
		} else if (op < 93 && looked && !reopen_pending) {
			copytruncate(c);
			looked = settled = false;
		} else if (op < 100) {
			rg_follow_close(c->f);
			c->f = NULL;
			follow(c, c->pos, false);
		}
		/* Delivered so far: a prefix of what was written, in order. */
		for (size_t i = 0; i < c->got.n; i++, next++) {
			snprintf(line, sizeof(line), "line %06u", next);
			if (strcmp(c->got.lines[i], line))
				fail_msg("step %d: expected \"%s\", got \"%s\"", step, line,
					 c->got.lines[i]);
		}
		got_clear(&c->got);
	}
	if (reopen_pending) {
		close(lg);
		lg = logger_open(c->path);
	}
	put(lg, "end\n");
	process(c);
	for (size_t i = 0; i + 1 < c->got.n; i++, next++) {
		snprintf(line, sizeof(line), "line %06u", next);
		assert_string_equal(c->got.lines[i], line);
	}
	assert_true(c->got.n > 0);
	assert_string_equal(c->got.lines[c->got.n - 1], "end");
	assert_int_equal(next, written);
	assert_int_equal(stats(c).cut, 0);
	close(lg);
}

/*
 * Real time: a logger thread writes lines as fast as it can and rotates
 * (rename, a few more lines into the renamed file, "create" or not, then
 * reopen) while the follower runs a poll loop on rg_follow_fd(). Rotations
 * wait until the follower has seen the previous new file, as hours apart
 * would. Every line arrives once, in order.
 */
#define STREAM_LINES 20000
#define STREAM_ROTATE 2500

struct stream {
	struct ctx *c;
	atomic_uint delivered;
	bool failed;
};

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ULL + t.tv_nsec / 1000000;
}

static void *logger_thread(void *arg)
{
	struct stream *s = arg;
	int lg = open(s->c->path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	unsigned reopened_at = 0;
	char line[32];

	for (unsigned i = 0; i < STREAM_LINES && lg >= 0; i++) {
		if (i && i % STREAM_ROTATE == 0) {
			uint64_t deadline = now_ms() + 20000;

			while (atomic_load(&s->delivered) <= reopened_at && now_ms() < deadline)
				usleep(1000);
			if (rename(s->c->path, s->c->path1) < 0)
				break;
			if (i / STREAM_ROTATE % 2)	/* logrotate "create" */
				close(open(s->c->path, O_WRONLY | O_CREAT, 0644));
		}
		if (i && i % STREAM_ROTATE == 50) {	/* the logger reopens */
			close(lg);
			lg = open(s->c->path, O_WRONLY | O_APPEND | O_CREAT, 0644);
			reopened_at = i;
		}
		snprintf(line, sizeof(line), "line %06u\n", i);
		if (write(lg, line, strlen(line)) != (ssize_t)strlen(line))
			s->failed = true;
	}
	if (lg >= 0)
		close(lg);
	else
		s->failed = true;
	return NULL;
}

static void test_stream_with_rotations(void **state)
{
	struct ctx *c = *state;
	struct stream s = { .c = c };
	uint64_t deadline = now_ms() + 60000;
	unsigned next = 0;
	pthread_t t;
	char want[32];

	close(logger_open(c->path));
	follow(c, c->pos, true);
	assert_int_equal(pthread_create(&t, NULL, logger_thread, &s), 0);
	while (next < STREAM_LINES && now_ms() < deadline) {
		struct pollfd pfd = { .fd = rg_follow_fd(c->f), .events = POLLIN };

		poll(&pfd, 1, 100);	/* and a periodic call, as the daemon does */
		process(c);
		for (size_t i = 0; i < c->got.n; i++, next++) {
			snprintf(want, sizeof(want), "line %06u", next);
			if (strcmp(c->got.lines[i], want)) {
				pthread_join(t, NULL);
				fail_msg("expected \"%s\", got \"%s\"", want, c->got.lines[i]);
			}
		}
		got_clear(&c->got);
		atomic_store(&s.delivered, next);
	}
	pthread_join(t, NULL);
	assert_false(s.failed);
	assert_int_equal(next, STREAM_LINES);
	/* A rotation before every chunk of lines but the first. */
	assert_int_equal(stats(c).rotations, STREAM_LINES / STREAM_ROTATE - 1);
	assert_int_equal(stats(c).cut, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lines_partial_crlf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_start_at_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_logger_not_reopened, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_old_read_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copytruncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_and_regrown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_rename, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_copytruncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_while_old_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_position_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_for_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_wakes_on_old_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_model_random_rotations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_with_rotations, setup, teardown),
	};

	return cmocka_run_group_tests_name("follow", tests, NULL, NULL);
}
