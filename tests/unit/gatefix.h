/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * gatefix.h: the fixture of the unit tests that work on real pinned maps
 * (root): a fresh set of maps under a pin dir of this test's own for each
 * test, purged after it. Include after cmocka.h.
 */
#ifndef RG_TEST_GATEFIX_H
#define RG_TEST_GATEFIX_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <valgrind/valgrind.h>
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"

#define SEC_NS 1000000000ULL

static char pin_dir[128];

static inline bool is_root(void)
{
	return geteuid() == 0;
}

#define NEED_ROOT()                     \
	do {                            \
		if (!is_root())         \
			skip();         \
	} while (0)

static inline struct rg_addr addr(const char *s)
{
	struct rg_addr a;
	const char *why = NULL;

	if (rg_addr_parse(s, &a, &why))
		fail_msg("test bug: '%s': %s", s, why);
	return a;
}

/* Before cmocka_run_group_tests: logging, the pin dir, bpffs mounted. */
static inline void gatefix_init(const char *name)
{
	struct statfs sf;

	rg_log_init(name, false, RG_LOG_ERR);
	rg_log_libbpf(false);
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/rgtest-%d-%s", (int)getpid(), name);
	if (is_root() && (statfs("/sys/fs/bpf", &sf) || (unsigned long)sf.f_type != BPF_FS_MAGIC))
		mount("bpf", "/sys/fs/bpf", "bpf", 0, NULL);
	if (RUNNING_ON_VALGRIND)
		printf("# valgrind: error reporting paused during map tests (libbpf 1.1 false positives)\n");
}

/* A test's setup: fresh maps (grants map grants_max big), opened. */
static inline int gatefix_setup(void **state, uint32_t grants_max)
{
	struct rg_load_opts o = { .grants_max = grants_max };
	struct rg_gate *g;
	char err[512];

	if (!is_root())
		return 0;
	VALGRIND_DISABLE_ERROR_REPORTING;
	if (rg_gate_create(pin_dir, &o, err, sizeof(err))) {
		fprintf(stderr, "# rg_gate_create: %s\n", err);
		return -1;
	}
	g = calloc(1, sizeof(*g));
	if (!g || rg_gate_open(g, pin_dir)) {
		fprintf(stderr, "# rg_gate_open: %s\n", g ? g->err : "ENOMEM");
		free(g);
		return -1;
	}
	*state = g;
	return 0;
}

static inline int gatefix_teardown(void **state)
{
	struct rg_gate *g = *state;
	char err[512];

	if (!is_root())
		return 0;
	if (g) {
		rg_gate_close(g);
		free(g);
	}
	if (rg_gate_purge(pin_dir, err, sizeof(err))) {
		fprintf(stderr, "# purge: %s\n", err);
		return -1;
	}
	VALGRIND_ENABLE_ERROR_REPORTING;
	return 0;
}

#endif
