/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Cluster: grants and denies shared among the mail hosts of a site through
 * Redis ([cluster] redis = ...), so that a login on one host admits its
 * address on every other.
 *
 * In Redis (the database of the URL):
 *
 *	relaygate:grant:ADDR/PLEN   a grant, ADDR its key (rg_addr_str) masked
 *	                            to PLEN bits by the host that made it
 *	relaygate:deny:ADDR/PLEN    a deny
 *
 * each holding its state-file entry line (state.h: wall-clock seconds, so
 * hosts with different boot times agree) and expiring in Redis when the
 * entry does (EXAT). A write never shortens: a Lua script compares the
 * expiries and, only when it extends, sets the key and publishes
 *
 *	relaygate-cluster 1 ID HOST PLEN ENTRY
 *
 * on the channel relaygate:events:DB (pub/sub ignores databases), where ID
 * is the sending daemon's instance (16 hex digits, new at each start; a
 * daemon ignores its own messages), HOST its host name, PLEN the key's
 * prefix length and ENTRY the line. A host whose own prefix is longer
 * than PLEN does not apply the entry (it would admit only the network's
 * first address, or deny too little): the hosts of a site should key
 * alike, and a mismatch is counted and logged.
 *
 * A thread of its own talks to Redis (hiredis, blocking calls with 2 s
 * timeouts); the daemon's loop never waits for it. Local grants and denies
 * go to the thread through a bounded queue (rg_cluster_share_*); entries
 * from other hosts come back through another (rg_cluster_take, with an
 * eventfd), and the loop writes them into the maps with the maps' own
 * never-shorten rule. On every connect, the first one included, the
 * thread subscribes, reads every relaygate key of the database (SCAN) for
 * the loop, and then writes every local entry (the hooks' snapshot) with
 * the script: what either side made while they were apart meets, and a
 * Redis that restarted empty is filled again. While Redis is away the
 * host works alone; the thread retries (1 s, doubling to 30 s) and logs
 * each change of state once. Deletions are not shared: a grant revoked
 * with relaygatectl on one host stays on the others until it expires.
 */
#ifndef RG_CLUSTER_H
#define RG_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "relaygate.h"
#include "state.h"

#define RG_CLUSTER_ID_LEN   16           /* hex digits of an instance id */
#define RG_CLUSTER_HOST_MAX 64           /* longest host name carried */
#define RG_CLUSTER_MSG_MAX  1200         /* longest message accepted */
#define RG_CLUSTER_QUEUE    16384        /* entries each way */

/* An entry from another host (or read back from Redis), times in
 * CLOCK_BOOTTIME ns as the maps hold them. */
struct rg_cluster_entry {
	bool deny;
	bool live;                           /* from the channel; else a resync read */
	struct rg_addr key;                  /* as sent: masked to plen */
	unsigned plen;                       /* the sender's prefix length for it */
	struct rg_grant g;                   /* !deny */
	struct rg_deny d;                    /* deny */
	char host[RG_CLUSTER_HOST_MAX + 1];  /* the sender; "" from a resync read */
};

/* --- messages (pure; tests and the fuzz target call these) ----------- */

/* "relaygate-cluster 1 ID HOST PLEN ENTRY" into buf: its length, or -ENOSPC
 * (buf too small, or longer than RG_CLUSTER_MSG_MAX), -EINVAL (an id that
 * is not RG_CLUSTER_ID_LEN lowercase hex digits, a host that is empty, too
 * long, or has a byte outside '!'..'~', plen over 128). */
int rg_cluster_msg_format(char *buf, size_t len, const char *id, const char *host,
			  unsigned plen, const char *entry);
/* Parses a message (len bytes, need not be NUL-terminated): NULL and *e
 * filled (live, host and id set), or why not ("expired" for a valid entry
 * that has). id: RG_CLUSTER_ID_LEN + 1 bytes. */
const char *rg_cluster_msg_parse(const char *msg, size_t len, const struct rg_state_clocks *now,
				 char *id, struct rg_cluster_entry *e);
/* A value read from Redis under key (NUL-terminated): NULL and *e filled
 * (not live, no host, plen from the key), or why not: a bad entry, or one
 * that is not the key's (kind, address, a prefix length it is masked to). */
const char *rg_cluster_value_parse(const char *key, const char *val, size_t len,
				   const struct rg_state_clocks *now, struct rg_cluster_entry *e);
/* The Redis key of an entry: "relaygate:grant:ADDR/PLEN" or "relaygate:deny:ADDR/PLEN". */
void rg_cluster_key(char *buf, size_t len, bool deny, const struct rg_addr *key, unsigned plen);

/* --- the thread ------------------------------------------------------ */

struct rg_cluster_hooks {
	/* Called by the cluster thread on each connect: every live local
	 * grant and deny into st (times in boot ns), and the prefix lengths
	 * their keys are masked to. 0 or -errno. */
	int (*snapshot)(void *ctx, struct rg_state *st, unsigned *v4_prefix, unsigned *v6_prefix);
	void *ctx;
};

struct rg_cluster;

/* Starts the thread for c->cluster (c->cluster.redis set); it connects on
 * its own time. Returns 0, or -errno with err (no thread). */
int rg_cluster_new(struct rg_cluster **out, const struct rg_config_file *c,
		   const struct rg_cluster_hooks *h, char *err, size_t errlen);
/* Stops the thread and frees cl: waits up to wait_ms for it; a thread
 * still busy then (a name lookup, a Redis timeout) is left to end on its
 * own, which frees cl (false). It calls hooks.snapshot no more once it has
 * seen the stop, but a call under way finishes. NULL: nothing (true). */
bool rg_cluster_free(struct rg_cluster *cl, unsigned wait_ms);
/* The server as logged: redis://HOST:PORT/DB or unix:PATH?db=N (no password). */
const char *rg_cluster_where(const struct rg_cluster *cl);

/* Any thread: share a local entry (copied). Never blocks. While Redis is
 * away the entry is left to the next connect's snapshot; when the queue
 * is full it is counted in dropped and the thread pushes the whole
 * snapshot again instead. */
void rg_cluster_share_grant(struct rg_cluster *cl, const struct rg_addr *key, unsigned plen,
			    const struct rg_grant *v);
void rg_cluster_share_deny(struct rg_cluster *cl, const struct rg_addr *key, unsigned plen,
			   const struct rg_deny *v);

/* The loop: an eventfd, readable while entries wait; take up to max of
 * them (returns how many). */
int rg_cluster_fd(const struct rg_cluster *cl);
size_t rg_cluster_take(struct rg_cluster *cl, struct rg_cluster_entry *out, size_t max);

struct rg_cluster_stats {
	bool up;                 /* connected and subscribed */
	uint64_t connects;       /* connects whose resync worked */
	uint64_t published;      /* local entries written to Redis (extending it) */
	uint64_t received;       /* entries from other hosts and resync reads */
	uint64_t rejected;       /* messages and values that did not parse */
	uint64_t errors;         /* failed connects, commands and lost connections */
	uint64_t dropped;        /* local entries not queued: the queue was full */
};
void rg_cluster_get_stats(struct rg_cluster *cl, struct rg_cluster_stats *s);

#endif
