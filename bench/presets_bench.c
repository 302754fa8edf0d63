// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Log lines parsed per second per preset, on one core (issue 3 target:
 * >= 300,000 lines/s). Two loads per preset, from tests/fixtures/presets:
 *   logins  only the lines that give an event (the worst case: the full
 *           PCRE2 match and field checks every time)
 *   mix     every line of every fixture file (other programs' lines, which
 *           the prefilter mostly skips: closer to a real mail.log)
 *
 *   presets_bench [FIXTURE_DIR] [SECONDS_PER_RUN]
 *
 * Build: cc -O2 -Imaps -Iuser bench/presets_bench.c OUT/librelaygate.a -lpcre2-8 ...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "presets.h"

struct line {
	char *s;
	size_t n;
};

static struct line *lines;
static size_t nlines, caplines;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void load_dir(const char *dir)
{
	struct dirent *d;
	DIR *dp = opendir(dir);
	char path[4096], buf[16384];

	if (!dp) {
		perror(dir);
		exit(1);
	}
	while ((d = readdir(dp))) {
		size_t l = strlen(d->d_name);
		FILE *f;

		if (l < 7 || strcmp(d->d_name + l - 6, ".lines"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(buf, sizeof(buf), f)) {
			size_t n = strlen(buf);

			while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
				buf[--n] = '\0';
			if (!n || buf[0] == '#' || !strncmp(buf, "preset ", 7))
				continue;
			if (nlines == caplines) {
				caplines = caplines ? caplines * 2 : 256;
				lines = realloc(lines, caplines * sizeof(*lines));
				if (!lines)
					exit(1);
			}
			lines[nlines].s = strdup(buf);
			lines[nlines++].n = n;
		}
		fclose(f);
	}
	closedir(dp);
}

/* Parse the lines idx[0..n) round-robin for about secs; lines per second. */
static double run(struct rg_preset *p, const size_t *idx, size_t n, double secs)
{
	struct rg_auth_event ev;
	unsigned long long done = 0;
	double t0 = now(), t;
	size_t i;

	do {
		for (i = 0; i < 100000; i++) {
			const struct line *l = &lines[idx[(done + i) % n]];

			(void)rg_preset_parse(p, l->s, l->n, &ev);
		}
		done += 100000;
		t = now();
	} while (t - t0 < secs);
	return (double)done / (t - t0);
}

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "tests/fixtures/presets";
	double secs = argc > 2 ? atof(argv[2]) : 1.0;
	size_t *all, *hits, nhits, i;
	enum rg_preset_type t;
	char err[256];

	load_dir(dir);
	if (!nlines) {
		fprintf(stderr, "presets_bench: no lines under %s\n", dir);
		return 1;
	}
	all = calloc(nlines, sizeof(*all));
	hits = calloc(nlines, sizeof(*hits));
	if (!all || !hits)
		return 1;
	for (i = 0; i < nlines; i++)
		all[i] = i;
	printf("%-14s %14s %14s  (%zu lines)\n", "preset", "logins/s", "mix/s", nlines);
	for (t = RG_PRESET_DOVECOT; t < RG_PRESET_REGEX; t++) {
		struct rg_preset *p = rg_preset_new(t, NULL, NULL, err, sizeof(err));
		struct rg_auth_event ev;

		if (!p) {
			fprintf(stderr, "presets_bench: %s\n", err);
			return 1;
		}
		for (nhits = 0, i = 0; i < nlines; i++)
			if (rg_preset_parse(p, lines[i].s, lines[i].n, &ev) == 1)
				hits[nhits++] = i;
		printf("%-14s %14.0f %14.0f  (%zu event lines)\n", rg_preset_type_name(t),
		       nhits ? run(p, hits, nhits, secs) : 0.0, run(p, all, nlines, secs), nhits);
		rg_preset_free(p);
	}
	return 0;
}
