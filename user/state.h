/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The grants state file: every grant and deny with a wall-clock expiry, so
 * that after a reboot (where CLOCK_BOOTTIME starts again from 0) each comes
 * back with its right remaining TTL. This module converts between the file
 * and arrays of (key, value) in map form; the daemon fills the arrays with
 * rg_grant_foreach/rg_deny_foreach and puts them back with rg_grant_put_abs
 * and rg_deny_put. The clocks are passed in, so it is testable.
 *
 * Format, version 1 (text, one entry per line, fields separated by a space):
 *
 *	relaygate-state 1
 *	maps BOOT_ID GRANTS_ID DENIES_ID V4_PREFIX V6_PREFIX
 *	grant ADDR EXPIRES GRANTED ORIGIN SERVICE USER
 *	deny ADDR EXPIRES CREATED ORIGIN FAILURES
 *
 *  maps      which maps the entries were read from: the kernel's boot id
 *            (/proc/sys/kernel/random/boot_id) and the ids of the grant
 *            and deny maps. A daemon that finds the same maps at start
 *            knows that an entry of the file missing from them was
 *            deleted since (a revoke while it was stopped), not lost in a
 *            reboot, and does not bring it back. The prefixes are the
 *            ones the keys were made with: a key from a shorter prefix
 *            than the daemon's now cannot be narrowed and is not restored.
 *            Optional (at most one).
 *
 *  ADDR      the map key as rg_addr_str() prints it (already masked)
 *  EXPIRES   Unix seconds (CLOCK_REALTIME), rounded up
 *  GRANTED/CREATED  Unix seconds, rounded down (clamped to the boot on load)
 *  ORIGIN    rg_origin_name(): cli, log, ...; SERVICE rg_service_name()
 *  USER      bytes outside '!'..'~' and '%' as %XX; "-" for no user
 *  FAILURES  decimal
 *
 * Blank lines and lines starting with '#' are ignored. The file is written
 * whole to PATH.tmp in the same directory, fsync()ed, renamed over PATH, and
 * the directory fsync()ed: a crash leaves the old file or the new one (one
 * writer at a time: PATH.tmp is a fixed name). Mode 0600 (it holds users).
 *
 * Loading is strict per line and lenient per file: a line that is not
 * exactly right (bad address, number, name, field count, a last line
 * without its newline) is skipped, counted in bad and warned about (the
 * first few); the other lines still load. Entries already expired are
 * dropped and counted in expired. An expiry more than RG_DURATION_MAX_SEC
 * ahead is corrupt. A header of a newer version refuses the whole file.
 */
#ifndef RG_STATE_H
#define RG_STATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "relaygate.h"

#define RG_STATE_VERSION 1
#define RG_STATE_FILE_MAX (64u << 20)    /* bytes; a bigger file is refused */

/* Both clocks read at (nearly) the same instant. */
struct rg_state_clocks {
	uint64_t boot_ns;        /* CLOCK_BOOTTIME, what the maps hold */
	uint64_t real_ns;        /* CLOCK_REALTIME, what the file holds */
};

struct rg_state_grant {
	struct rg_addr key;
	struct rg_grant v;       /* times in CLOCK_BOOTTIME ns */
};

struct rg_state_deny {
	struct rg_addr key;
	struct rg_deny v;
};

/* The "maps" line. */
#define RG_BOOT_ID_LEN 36
struct rg_state_maps {
	char boot_id[RG_BOOT_ID_LEN + 1];   /* "" when unknown */
	uint32_t grants_id, deny_id;
	unsigned v4_prefix, v6_prefix;   /* 1..32, 1..128 */
};

struct rg_state {
	struct rg_state_maps maps;       /* boot_id "": none (not written, not read) */
	struct rg_state_grant *grants;
	size_t ngrants, grants_cap;
	struct rg_state_deny *denies;
	size_t ndenies, denies_cap;
	unsigned bad;            /* corrupt lines skipped while loading */
	unsigned expired;        /* entries dropped while loading: expired */
};

void rg_state_clocks_now(struct rg_state_clocks *c);
/* This boot's id into out (RG_BOOT_ID_LEN + 1 bytes): 0 or -errno ("" then). */
int rg_state_boot_id(char *out);

/* Append an entry (for the daemon's foreach callbacks): 0 or -ENOMEM. */
int rg_state_add_grant(struct rg_state *st, const struct rg_addr *key,
		       const struct rg_grant *v);
int rg_state_add_deny(struct rg_state *st, const struct rg_addr *key,
		      const struct rg_deny *v);
/* Frees the arrays and zeroes st. */
void rg_state_free(struct rg_state *st);

/* Writes the file format to out (entries expired at now are left out):
 * 0 or -errno. */
int rg_state_write(FILE *out, const struct rg_state *st, const struct rg_state_clocks *now);
/* One entry's line, without its newline: 0, or -EINVAL when it has
 * expired at now or has no address family (nothing written). */
int rg_state_write_grant(FILE *out, const struct rg_state_grant *g,
			 const struct rg_state_clocks *now);
int rg_state_write_deny(FILE *out, const struct rg_state_deny *d,
			const struct rg_state_clocks *now);
/* Atomic save as described above: 0, or -errno with one line in err. */
int rg_state_save(const char *path, const struct rg_state *st,
		  const struct rg_state_clocks *now, char *err, size_t errlen);

/* Parses buf (len bytes, need not be NUL-terminated), appending entries
 * to st and counting bad and expired lines; name is for the warnings.
 * 0, -EPROTO (a newer version: nothing appended) or -ENOMEM. */
int rg_state_parse(const char *buf, size_t len, const struct rg_state_clocks *now,
		   struct rg_state *st, const char *name);
/* One entry line (len bytes, no newline, need not be NUL-terminated):
 * NULL when it was appended to st, else why not ("expired" for a valid
 * entry that has, "out of memory"); nothing is appended then. */
const char *rg_state_parse_line(const char *line, size_t len,
				const struct rg_state_clocks *now, struct rg_state *st);
/* Reads and parses path: 0; -ENOENT when there is none (a first start);
 * other -errno with one line in err. */
int rg_state_load(const char *path, const struct rg_state_clocks *now,
		  struct rg_state *st, char *err, size_t errlen);

#endif
