// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the --file reader of `grant add --file` and
 * `trust add|del --file` (bulk.c rg_lines_read), on a real file.
 *
 * Input: MODE FILE... MODE % 3 picks the line callback: 0 one that takes
 * every line but those starting with '!' (refused with a reason) or '?'
 * (refused without one), 1 the grant line parser, 2 the trusted subnet
 * line parser (as relaygatectl uses them). Beyond "no crash", against a
 * model written here that splits the whole file at once: the callback gets
 * exactly the file's lines, in order, each NUL-terminated without its
 * "\n" (a last line without one included); reading stops at the first
 * line holding a NUL byte, longer than RG_LINE_MAX, or refused by the
 * callback, with exactly the error "line N: <reason>"; otherwise it
 * returns 0 and leaves err alone.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "bulk.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

struct span {
	size_t start, len;
};

struct ctx {
	const uint8_t *file;
	const struct span *want;
	size_t nwant, next;
	int mode;
};

/* The callback's verdict on a line; the same function is the model's. */
static int judge(int mode, const char *line, char *err, size_t errlen)
{
	struct rg_grant_line gl;
	struct rg_addr a;
	unsigned plen;

	switch (mode) {
	case 0:
		if (line[0] == '!') {
			snprintf(err, errlen, "refused '%.20s'", line + 1);
			return -1;
		}
		return line[0] == '?' ? -1 : 0;
	case 1:
		return rg_grant_line_parse(line, &gl, err, errlen) < 0 ? -1 : 0;
	default:
		return rg_cidr_line_parse(line, &a, &plen, err, errlen) < 0 ? -1 : 0;
	}
}

static int on_line(const char *line, void *arg, char *err, size_t errlen)
{
	struct ctx *c = arg;
	const struct span *w;

	check(c->next < c->nwant);      /* never a line past the first error */
	w = &c->want[c->next++];
	check(strlen(line) == w->len && !memcmp(line, c->file + w->start, w->len));
	check(err && errlen > 0);
	return judge(c->mode, line, err, errlen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char line[RG_LINE_MAX + 1];
	const uint8_t *file = data + 1;
	size_t n = size ? size - 1 : 0, i = 0, lineno = 0;
	char path[64], err[600], want_err[600] = "", why[512];
	struct span *spans;
	struct ctx c;
	int fd, rc;

	if (!size || size > (1 << 20))
		return 0;
	c = (struct ctx){ .file = file, .mode = data[0] % 3 };

	/* The model: lines of the whole file, up to the first error. */
	spans = malloc((n + 1) * sizeof(*spans));
	check(spans != NULL);
	while (i < n) {
		const uint8_t *nl = memchr(file + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (file + i)) : n - i;

		lineno++;
		if (memchr(file + i, '\0', len)) {
			snprintf(want_err, sizeof(want_err),
				 "line %zu: holds a NUL byte (not a text file?)", lineno);
			break;
		}
		if (len > RG_LINE_MAX) {
			snprintf(want_err, sizeof(want_err), "line %zu: longer than %d bytes",
				 lineno, RG_LINE_MAX);
			break;
		}
		spans[c.nwant++] = (struct span){ i, len };
		memcpy(line, file + i, len);
		line[len] = '\0';
		why[0] = '\0';
		if (judge(c.mode, line, why, sizeof(why))) {
			snprintf(want_err, sizeof(want_err), "line %zu: %s", lineno,
				 why[0] ? why : "rejected");
			break;
		}
		i += len + (nl ? 1 : 0);
	}
	c.want = spans;

	fd = memfd_create("fuzz_lines_read", MFD_CLOEXEC);
	check(fd >= 0);
	check(write(fd, file, n) == (ssize_t)n);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	strcpy(err, "untouched");
	rc = rg_lines_read(path, on_line, &c, err, sizeof(err));
	close(fd);

	check(c.next == c.nwant);       /* every line up to the error */
	if (want_err[0]) {
		check(rc == -1);
		/* one line, as the model says */
		check(!strcmp(err, want_err) && !strchr(err, '\n'));
	} else {
		check(rc == 0 && !strcmp(err, "untouched"));
	}
	free(spans);
	return 0;
}
