/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The gate from userspace: attach/detach and every operation on the pinned
 * maps. Used by relaygatectl and relaygated alike, so both apply the same
 * rules (masking, extend-never-shorten, all-or-nothing).
 *
 * Errors: functions return 0 or a negative errno and fill rg_gate.err with
 * one actionable line ("grant map full (max 262144): raise [grants] max").
 */
#ifndef RG_GATEMAPS_H
#define RG_GATEMAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include "relaygate.h"

enum rg_mode { RG_MODE_XDP, RG_MODE_XDP_GENERIC, RG_MODE_TC };

/* Our clsact ingress filter (tc mode): fixed handle and priority, so detach
 * removes exactly ours. Priority 1 runs it before other filters. */
#define RG_TC_HANDLE   0x5247
#define RG_TC_PRIORITY 1

/* Drop-event rate limit written to a fresh rg_config. */
#define RG_EVENT_INTERVAL_DEFAULT_NS 1000000000ULL   /* per source */
#define RG_EVENT_BURST_DEFAULT       64              /* per CPU per second */

struct rg_gate {
	char pin_dir[PATH_MAX];
	int config_fd, ports_fd, tiface_fd, trust4_fd, trust6_fd;
	int grants_fd, deny_fd, flows_fd, stats_fd, events_fd, summary_fd;
	int lock_fd;                 /* pin dir, flock()ed by rg_gate_lock */
	struct rg_summary *sum;      /* rg_summary, mmapped (NULL: not open) */
	struct rg_config cfg;        /* as read at open */
	char err[256];               /* last error, one line */
};

/* Options for the first attach, which creates the maps. */
struct rg_load_opts {
	uint32_t grants_max;         /* 0: default */
	uint32_t v4_prefix, v6_prefix;   /* grant key prefixes (32, 64) */
	bool reject_rst;
	const uint16_t *ports;       /* NULL: leave as is (465, 587 when new) */
	size_t nports;
	bool apply_reject;           /* set reject_rst on existing maps too */
	bool fresh_only;             /* ports and reject_rst for a fresh set
				      * only: existing maps keep theirs */
};

/* Monotonic clock the maps use: CLOCK_BOOTTIME ns. */
uint64_t rg_now_ns(void);

/* Attach the gate to ifname (creating and pinning maps under pin_dir when
 * absent, reusing them otherwise). Pins link_<ifname> (xdp modes) or
 * tc_/tcq_<ifname> (tc). Fails if ifname already has an XDP program or our
 * tc filter. */
int rg_gate_attach(const char *pin_dir, const char *ifname, enum rg_mode mode,
		   const struct rg_load_opts *o, char *err, size_t errlen);
int rg_gate_detach(const char *pin_dir, const char *ifname, char *err, size_t errlen);

/*
 * Create, configure and pin the maps under pin_dir without attaching
 * anything (rg_gate_attach does this itself). Pinned maps that already
 * exist are reused as they are: their sizes, prefixes and reject mode stay
 * (the options only apply to a fresh set, except o->ports, and reject_rst
 * with apply_reject, which are applied whenever given unless fresh_only;
 * rg_gate_attach takes them back when the attach itself fails). Maps from another ABI version:
 * -EPROTO, and err says to purge them. NULL o: defaults.
 */
int rg_gate_create(const char *pin_dir, const struct rg_load_opts *o,
		   char *err, size_t errlen);
/* relaygated's claim on pin_dir (one daemon per gate): an flock held on
 * the directory pin_dir/relaygated_lock for as long as the returned fd
 * stays open (creating pin_dir, on a BPF filesystem, if need be). Another
 * daemon holding it: -EWOULDBLOCK with err saying so. */
int rg_gate_daemon_lock(const char *pin_dir, char *err, size_t errlen);
/* Remove the pinned maps under pin_dir (and the directory when it is then
 * empty). Refuses (-EBUSY) while any interface is attached. Nothing pinned
 * is not an error. */
int rg_gate_purge(const char *pin_dir, char *err, size_t errlen);

struct rg_attachment {
	char ifname[32];
	unsigned ifindex;            /* 0 when the interface is gone */
	enum rg_mode mode;
	unsigned prog_id;
};
/* Fill up to max attachments recorded under pin_dir; returns the count or -errno. */
int rg_gate_attachments(const char *pin_dir, struct rg_attachment *a, size_t max);

/* Open the pinned maps. -ENOENT: nothing pinned (err says to attach first). */
int rg_gate_open(struct rg_gate *g, const char *pin_dir);
void rg_gate_close(struct rg_gate *g);
/* Exclusive flock on the pin dir, for multi-step edits. */
int rg_gate_lock(struct rg_gate *g);

/* Config (prefixes, reject mode). */
int rg_config_read(struct rg_gate *g, struct rg_config *c);
int rg_config_write(struct rg_gate *g, const struct rg_config *c);

/* Ports: replace the protected set with exactly these (new ones set before
 * old ones are cleared, so a port in both sets is never unprotected). */
int rg_ports_set(struct rg_gate *g, const uint16_t *ports, size_t n);
/* Fill ports (sorted); returns count or -errno. */
int rg_ports_list(struct rg_gate *g, uint16_t *ports, size_t max);

/* Trusted subnets. add/del apply all or nothing. */
struct rg_cidr { struct rg_addr addr; unsigned prefixlen; };
int rg_trust_add(struct rg_gate *g, const struct rg_cidr *c, size_t n);
int rg_trust_del(struct rg_gate *g, const struct rg_cidr *c, size_t n);
/* Replace the whole trusted set (reload): add the new first, then delete
 * what is gone, so no client trusted before and after is ever dropped. */
int rg_trust_replace(struct rg_gate *g, const struct rg_cidr *c, size_t n);
/* Calls cb for each entry; stops early when cb returns non-zero, and
 * returns that (a negative errno is also put in g->err), else 0. */
int rg_trust_foreach(struct rg_gate *g, int (*cb)(const struct rg_cidr *, void *), void *ctx);

/* Trusted interfaces by ifindex. */
int rg_tiface_add(struct rg_gate *g, const unsigned *ifindex, size_t n);
int rg_tiface_del(struct rg_gate *g, const unsigned *ifindex, size_t n);
int rg_tiface_replace(struct rg_gate *g, const unsigned *ifindex, size_t n);
int rg_tiface_list(struct rg_gate *g, unsigned *ifindex, size_t max);

/* Grants. src is masked to the configured prefix here. A grant is extended,
 * never shortened: the new expiry is max(old, now + ttl). The user is
 * replaced by the latest login's. *created tells whether it is new. */
int rg_grant_put(struct rg_gate *g, const struct rg_addr *src, uint64_t ttl_ns,
		 const char *user, enum rg_origin origin, enum rg_service service,
		 bool *created);
/* Put with an absolute expiry (state restore, cluster); same never-shorten rule. */
int rg_grant_put_abs(struct rg_gate *g, const struct rg_addr *key,
		     const struct rg_grant *v);
int rg_grant_get(struct rg_gate *g, const struct rg_addr *src, struct rg_grant *v);
int rg_grant_del(struct rg_gate *g, const struct rg_addr *src);
/* Revoke every grant of user; *count = how many. */
int rg_grant_del_user(struct rg_gate *g, const char *user, unsigned *count);
int rg_grant_foreach(struct rg_gate *g,
		     int (*cb)(const struct rg_addr *, const struct rg_grant *, void *),
		     void *ctx);

/* One grant of a bulk load (rg_grant_put_many). */
struct rg_grant_req {
	struct rg_addr src;          /* masked to the key prefix there */
	uint64_t ttl_ns;             /* > 0 */
	const char *user;            /* NULL or "": keep the grant's user */
};
/*
 * Put n grants, all or nothing, by rg_grant_put's rules: keys masked, an
 * expiry extended and never shortened, the last user given wins (requests
 * for one key merge in order). Reads the map once (batch lookups) and
 * writes it with batch updates. The new keys not fitting: -E2BIG ("grant
 * map full (max N): raise [grants] max") before any change. A failure
 * while writing, or an LRU eviction that the writing caused, is undone:
 * the keys created are deleted, the grants overwritten or evicted put
 * back. *created, *renewed, *kept (each may be NULL): keys new, keys that
 * were there and now expire later, keys that were there and keep their
 * (later or equal) expiry.
 */
int rg_grant_put_many(struct rg_gate *g, const struct rg_grant_req *r, size_t n,
		      enum rg_origin origin, enum rg_service service,
		      size_t *created, size_t *renewed, size_t *kept);
/*
 * The summary (maps/relaygate.h): every insert here keeps it true by
 * itself. A rebuild clears the slots of entries that are gone and sets the
 * hints of empty maps. It needs the pin-dir lock (rg_gate_lock or
 * rg_gate_trylock), and it is only correct in a process that no other
 * thread of writes into the maps while it runs: relaygated runs it; the
 * CLI never does (the daemon writes without the lock).
 */
struct rg_summary_info {
	bool on, no_tiface, no_deny;
	bool fast;                       /* RG_SUM_FAST: the config allows the straight-line drop */
	unsigned v4_slots, v6_slots;     /* slots set */
	unsigned v4_fine, v6_fine;       /* fine bits set */
};
int rg_summary_rebuild(struct rg_gate *g);
/* Mark in s what an entry keyed by a (plen bits) can match (gatemaps.c;
 * exported for the benchmarks, which fill a summary of their own). */
void rg_summary_cover(struct rg_summary *s, const struct rg_addr *a, unsigned plen);
int rg_summary_info(struct rg_gate *g, struct rg_summary_info *out);
/* Non-blocking rg_gate_lock: -EWOULDBLOCK when someone holds it. */
int rg_gate_trylock(struct rg_gate *g);
void rg_gate_unlock(struct rg_gate *g);

/* Remove expired grants and denies; returns how many were removed. */
int rg_sweep(struct rg_gate *g, uint64_t now_ns);

/* Deny list: same keying and never-shorten rule as grants. */
int rg_deny_put(struct rg_gate *g, const struct rg_addr *src, uint64_t ttl_ns,
		enum rg_origin origin, uint32_t failures);
int rg_deny_del(struct rg_gate *g, const struct rg_addr *src);
int rg_deny_foreach(struct rg_gate *g,
		    int (*cb)(const struct rg_addr *, const struct rg_deny *, void *),
		    void *ctx);

/* Counters summed over CPUs, indexed by enum rg_stat. */
int rg_stats_read(struct rg_gate *g, struct rg_counter out[RG_STAT_MAX]);
/* Entries in a map (walks keys); -errno on error. */
long rg_map_count(int map_fd);
/* The map's max_entries; -errno on error. */
long rg_map_max_entries(int map_fd);
/* The kernel's id of a map (unique within a boot): 0 on an error. */
uint32_t rg_map_id(int map_fd);

const char *rg_stat_name(unsigned stat);
const char *rg_origin_name(enum rg_origin o);     /* "cli", "log", ... */
const char *rg_service_name(enum rg_service s);   /* "pop3", "imap", ... */
int rg_service_parse(const char *s, enum rg_service *out);
const char *rg_mode_name(enum rg_mode m);         /* "xdp", "xdp-generic", "tc" */
int rg_mode_parse(const char *s, enum rg_mode *out);

#endif
