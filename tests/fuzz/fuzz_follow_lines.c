// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the log follower's line splitting (follow.c
 * consume/deliver) and its position file, through the real follower.
 *
 * Input: MODE SEED_LO SEED_HI LOG... The log bytes are written in chunks
 * (sizes from SEED and MODE) and rg_follow_process() runs after each, so
 * the splitter sees arbitrary chunkings. MODE % 3 picks the source:
 *  0  a regular file (with a position file; MODE & 4: the follower is
 *     closed and reopened half way, as a daemon restart does);
 *  1  a named FIFO;
 *  2  standard input (a pipe on fd 0), ended: its last line without a
 *     newline is delivered too.
 * The lines delivered must be exactly those split from the whole input at
 * once by the rules of follow.h (a model written here): in order, none
 * twice, none lost across the restart, NUL-terminated, "\r" and a leading
 * NUL hole removed, lines over RG_FOLLOW_LINE_MAX counted and skipped. For
 * a file, the position file then holds the file's device and inode, the
 * offset after the last complete line and the bytes before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "follow.h"
#include "log.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static char dir[64], logpath[96], pospath[96], fifopath[96], tmppath[112];

static void cleanup(void)
{
	unlink(logpath);
	unlink(pospath);
	unlink(tmppath);
	unlink(fifopath);
	rmdir(dir);
}

static void setup(void)
{
	struct stat st;

	rg_log_init("fuzz_follow_lines", false, RG_LOG_ERR);
	/* tmpfs if there is one: each input creates and renames files */
	snprintf(dir, sizeof(dir), "%s/rgfuzz-follow-%d",
		 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	snprintf(pospath, sizeof(pospath), "%s/pos", dir);
	snprintf(tmppath, sizeof(tmppath), "%s/pos.tmp", dir);
	snprintf(fifopath, sizeof(fifopath), "%s/fifo", dir);
	check(mkdir(dir, 0700) == 0 || errno == EEXIST);
	unlink(fifopath);
	check(mkfifo(fifopath, 0600) == 0);
	atexit(cleanup);
}

/* The model: a line as delivered is log[start, start + len). */
struct span {
	size_t start, len;
};

struct model {
	struct span *lines;
	size_t n, too_long;
	size_t last_end;        /* offset after the last '\n' (0: none) */
};

static struct span strip(const uint8_t *log, size_t start, size_t len)
{
	while (len && log[start] == '\0')
		start++, len--;
	if (len && log[start + len - 1] == '\r')
		len--;
	return (struct span){ start, len };
}

static void model_build(struct model *m, const uint8_t *log, size_t n, bool eof)
{
	size_t i = 0;

	memset(m, 0, sizeof(*m));
	m->lines = malloc((n + 1) * sizeof(*m->lines));
	check(m->lines != NULL);
	while (i < n) {
		const uint8_t *nl = memchr(log + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (log + i)) : n - i;

		if (!nl) {
			/* only an ended stream delivers it, if not too long */
			if (eof && len <= RG_FOLLOW_LINE_MAX)
				m->lines[m->n++] = strip(log, i, len);
			break;
		}
		if (len > RG_FOLLOW_LINE_MAX)
			m->too_long++;
		else
			m->lines[m->n++] = strip(log, i, len);
		i += len + 1;
		m->last_end = i;
	}
}

struct seen {
	const uint8_t *log;
	const struct model *m;
	size_t next;
};

static void on_line(const char *line, size_t len, void *arg)
{
	struct seen *s = arg;
	const struct span *want;

	check(s->next < s->m->n);       /* no line more than the model */
	want = &s->m->lines[s->next++];
	check(line[len] == '\0');
	check(len == want->len && !memcmp(line, s->log + want->start, len));
}

/* xorshift32: chunk sizes from the seed */
static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* At most about max_chunks chunks: each costs a process() (and for a
 * file a position save), and an input should take a few milliseconds. */
static size_t chunk_size(uint32_t *x, uint8_t mode, size_t n, size_t max_chunks)
{
	static const size_t max[8] = { 1, 3, 17, 130, 1500, 8200, 20000, 70000 };
	size_t c = 1 + rnd(x) % max[(mode >> 3) & 7];

	if (c < n / max_chunks)
		c = n / max_chunks;
	return c;
}

/* Process until caught up; returns what the last call said. */
static int run(struct rg_follow *f)
{
	int r, i;

	for (i = 0; i < 1000; i++) {
		r = rg_follow_process(f);
		check(r >= 0);
		if (r != RG_FOLLOW_MORE)
			return r;
	}
	abort();
}

static void add_stats(struct rg_follow *f, uint64_t *lines, uint64_t *too_long)
{
	struct rg_follow_stats st;

	rg_follow_get_stats(f, &st);
	*lines += st.lines;
	*too_long += st.too_long;
}

static void check_pos(const uint8_t *log, const struct model *m)
{
	struct rg_follow_pos p;
	struct stat st;
	char text[600];
	ssize_t n;
	int fd = open(pospath, O_RDONLY);
	size_t want_sig;

	check(fd >= 0);
	n = read(fd, text, sizeof(text));
	close(fd);
	check(n > 0 && rg_follow_pos_parse(text, (size_t)n, &p));
	check(stat(logpath, &st) == 0);
	check(p.dev == (uint64_t)st.st_dev && p.ino == (uint64_t)st.st_ino);
	check(p.off == m->last_end);
	want_sig = m->last_end < RG_FOLLOW_SIG_MAX ? m->last_end : RG_FOLLOW_SIG_MAX;
	check(p.sig_len == want_sig);
	check(!memcmp(p.sig, log + m->last_end - want_sig, want_sig));
}

static struct rg_follow *open_follower(const char *path, struct seen *s)
{
	struct rg_follow_opts o = { .path = path, .from_start = true, .cb = on_line, .ctx = s };
	char err[256];
	struct rg_follow *f;

	if (path == logpath)
		o.pos_path = pospath;
	f = rg_follow_open(&o, err, sizeof(err));
	if (!f) {
		fprintf(stderr, "fuzz_follow_lines: %s\n", err);
		abort();
	}
	return f;
}

static void follow_file(const uint8_t *log, size_t n, uint8_t mode, uint32_t seed)
{
	struct model m;
	struct seen s = { .log = log, .m = &m };
	uint64_t lines = 0, too_long = 0;
	struct rg_follow *f;
	size_t off = 0, half = n / 2;
	bool reopened = !(mode & 4);
	int fd;

	model_build(&m, log, n, false);
	unlink(pospath);
	fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	check(fd >= 0);
	f = open_follower(logpath, &s);
	while (off < n) {
		size_t c = chunk_size(&seed, mode, n, 64);

		if (c > n - off)
			c = n - off;
		check(write(fd, log + off, c) == (ssize_t)c);
		off += c;
		check(run(f) == RG_FOLLOW_IDLE);
		if (!reopened && off >= half) {
			/* a restart: the position file carries on */
			add_stats(f, &lines, &too_long);
			rg_follow_close(f);
			f = open_follower(logpath, &s);
			reopened = true;
		}
	}
	check(run(f) == RG_FOLLOW_IDLE);
	add_stats(f, &lines, &too_long);
	check(s.next == m.n && lines == m.n && too_long == m.too_long);
	check_pos(log, &m);
	rg_follow_close(f);
	close(fd);
	free(m.lines);
}

/* Write what the pipe takes; 0 when it is full. */
static size_t put(int fd, const uint8_t *p, size_t c)
{
	ssize_t w = write(fd, p, c);

	check(w >= 0 || errno == EAGAIN);
	return w > 0 ? (size_t)w : 0;
}

static void follow_stream(const uint8_t *log, size_t n, uint8_t mode, uint32_t seed,
			  bool use_stdin)
{
	struct model m;
	struct seen s = { .log = log, .m = &m };
	uint64_t lines = 0, too_long = 0;
	struct rg_follow *f;
	size_t off = 0;
	int wfd, saved0 = -1, pfd[2];

	model_build(&m, log, n, use_stdin);
	if (use_stdin) {
		check(pipe2(pfd, O_CLOEXEC) == 0);
		saved0 = dup(0);
		check(saved0 >= 0 && dup2(pfd[0], 0) == 0);
		close(pfd[0]);
		wfd = pfd[1];
		check(fcntl(wfd, F_SETFL, O_NONBLOCK) == 0);
		f = open_follower("-", &s);
	} else {
		f = open_follower(fifopath, &s);   /* opens it read-write */
		wfd = open(fifopath, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		check(wfd >= 0);
	}
	while (off < n) {
		size_t c = chunk_size(&seed, mode, n, 256), done = 0;

		if (c > n - off)
			c = n - off;
		while (done < c) {
			done += put(wfd, log + off + done, c - done);
			check(run(f) == RG_FOLLOW_IDLE);
		}
		off += c;
	}
	if (use_stdin) {
		close(wfd);
		check(run(f) == RG_FOLLOW_EOF);
	} else {
		check(run(f) == RG_FOLLOW_IDLE);
	}
	add_stats(f, &lines, &too_long);
	check(s.next == m.n && lines == m.n && too_long == m.too_long);
	rg_follow_close(f);
	if (use_stdin) {
		check(dup2(saved0, 0) == 0);
		close(saved0);
	} else {
		close(wfd);
	}
	free(m.lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed;
	uint8_t mode;

	if (size < 3 || size > (1 << 20))
		return 0;
	if (!dir[0])
		setup();
	mode = data[0];
	seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | 0x10000u;   /* never 0 */
	switch (mode % 3) {
	case 0:
		follow_file(data + 3, size - 3, mode, seed);
		break;
	case 1:
		follow_stream(data + 3, size - 3, mode, seed, false);
		break;
	default:
		follow_stream(data + 3, size - 3, mode, seed, true);
	}
	return 0;
}
