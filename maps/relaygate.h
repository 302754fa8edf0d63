/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * relaygate map ABI: the one header shared by the BPF program (bpf/) and
 * userspace (user/). Types only: keys, values, enums, map and pin names.
 *
 * Every map is pinned under the pin directory (default /sys/fs/bpf/relaygate)
 * by its own name, so `bpftool map dump pinned /sys/fs/bpf/relaygate/rg_grants`
 * prints typed fields. Names are <= 15 characters so bpftool shows them whole.
 *
 * Conventions
 *  - Addresses are struct rg_addr: family RG_AF_INET (4) or RG_AF_INET6 (6),
 *    address bytes in network order; an IPv4 address uses addr[0..3] and
 *    leaves addr[4..15] zero. IPv4-mapped IPv6 (::ffff:a.b.c.d) is always
 *    stored as the IPv4 address.
 *  - Grant and deny keys are the source masked to the configured prefix
 *    (rg_config.v4_prefix / v6_prefix), host bits zero.
 *  - Times are CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns()).
 *  - Ports are host byte order.
 *
 * Bump RG_ABI_VERSION whenever a key or value layout changes: the CLI then
 * refuses to reuse old pins and says how to replace them.
 */
#ifndef RELAYGATE_MAPS_H
#define RELAYGATE_MAPS_H

#include <linux/types.h>

#define RG_ABI_VERSION 4   /* 2: rg_summary; empty-map hints moved there.
                              3: rg_summary: port bytes, RG_SUM_FAST, ev_quiet, 256 KiB
                              4: rg_summary: the fine level (v4f, v6f), 4 MiB */

/* Pin names under the pin directory (= the maps' names, but for the
 * summary: the programs' .bss, pinned by path under this name). */
#define RG_MAP_CONFIG  "rg_config"  /* ARRAY[1] of struct rg_config */
#define RG_MAP_PORTS   "rg_ports"   /* ARRAY[65536] of __u32: 1 = protected */
#define RG_MAP_TIFACE  "rg_tiface"  /* HASH ifindex -> __u32 (1) */
#define RG_MAP_TRUST4  "rg_trust4"  /* LPM_TRIE struct rg_lpm4 -> __u32 (1) */
#define RG_MAP_TRUST6  "rg_trust6"  /* LPM_TRIE struct rg_lpm6 -> __u32 (1) */
#define RG_MAP_GRANTS  "rg_grants"  /* LRU_HASH struct rg_addr -> struct rg_grant */
#define RG_MAP_DENY    "rg_deny"    /* LRU_HASH struct rg_addr -> struct rg_deny */
#define RG_MAP_FLOWS   "rg_flows"   /* LRU_HASH struct rg_flow_key -> struct rg_flow */
#define RG_MAP_STATS   "rg_stats"   /* PERCPU_ARRAY[RG_STAT_MAX] of struct rg_counter */
#define RG_MAP_EVENTS  "rg_events"  /* RINGBUF of struct rg_drop_event */
#define RG_MAP_EVRATE  "rg_evrate"  /* LRU_HASH struct rg_addr -> __u64 last event ns */
#define RG_MAP_EVBUCKET "rg_evbucket" /* PERCPU_ARRAY[1] of struct rg_evbucket */
#define RG_MAP_SUMMARY "rg_summary" /* ARRAY[1] of struct rg_summary, mmapable */

/* Program names (as bpftool shows them: <= 15 characters). */
#define RG_PROG_XDP "rg_xdp"
#define RG_PROG_TC  "rg_tc"

/* Default pin directory and the pin-name prefixes of attachments in it. */
#define RG_PIN_DIR_DEFAULT "/sys/fs/bpf/relaygate"
#define RG_PIN_LINK_PREFIX "link_"   /* link_<ifname>: pinned XDP bpf_link */
#define RG_PIN_TC_PREFIX   "tc_"     /* tc_<ifname>: TC prog, clsact pre-existed */
#define RG_PIN_TCQ_PREFIX  "tcq_"    /* tcq_<ifname>: TC prog, we created clsact */
#define RG_PIN_DAEMON_LOCK "relaygated_lock"  /* a directory: relaygated's flock (bpffs refuses dots) */

/* Default sizes; [grants] max and friends override them at load time. */
#define RG_GRANTS_MAX_DEFAULT 262144
#define RG_DENY_MAX_DEFAULT   65536
#define RG_FLOWS_MAX_DEFAULT  262144
#define RG_TRUST_MAX_DEFAULT  1048576
#define RG_TIFACE_MAX         256
#define RG_EVRATE_MAX         16384
#define RG_EVENTS_BYTES       (256 * 1024)
#define RG_USER_LEN           64

#define RG_AF_INET  4
#define RG_AF_INET6 6

struct rg_addr {
	__u8 family;        /* RG_AF_INET or RG_AF_INET6 */
	__u8 pad[3];
	__u8 addr[16];      /* network order; IPv4 in addr[0..3] */
};

/* LPM trie keys: prefixlen first, as the kernel wants it. */
struct rg_lpm4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct rg_lpm6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Who created a grant or deny. */
enum rg_origin {
	RG_ORIGIN_NONE = 0,
	RG_ORIGIN_CLI,       /* relaygatectl grant add / deny add */
	RG_ORIGIN_LOG,       /* a log source (dovecot, postfix-sasl, ...) */
	RG_ORIGIN_PUSH,      /* dovecot auth policy push source */
	RG_ORIGIN_CONTROL,   /* control socket event */
	RG_ORIGIN_CLUSTER,   /* learnt from another host through Redis */
	RG_ORIGIN_STATE,     /* restored from the state file */
	RG_ORIGIN_MAX,
};

/* What kind of login a grant came from. */
enum rg_service {
	RG_SERVICE_NONE = 0,
	RG_SERVICE_POP3,
	RG_SERVICE_IMAP,
	RG_SERVICE_SMTP,     /* SMTP AUTH (postfix SASL, submission) */
	RG_SERVICE_OTHER,
	RG_SERVICE_MAX,
};

struct rg_grant {
	__u64 expires;           /* CLOCK_BOOTTIME ns */
	__u64 granted;           /* CLOCK_BOOTTIME ns of the last login */
	enum rg_origin origin;
	enum rg_service service;
	char user[RG_USER_LEN];  /* NUL-terminated, truncated if longer */
};

struct rg_deny {
	__u64 expires;           /* CLOCK_BOOTTIME ns */
	__u64 created;           /* CLOCK_BOOTTIME ns */
	enum rg_origin origin;
	__u32 failures;          /* failed logins that led to it (0: manual) */
};

/* One admitted TCP connection, keyed as the client sends it. */
struct rg_flow_key {
	__u8 saddr[16];          /* rg_addr conventions, unmasked */
	__u8 daddr[16];
	__u16 sport;             /* host order */
	__u16 dport;             /* host order */
	__u8 family;
	__u8 pad[3];
};

struct rg_flow {
	__u64 admitted;          /* CLOCK_BOOTTIME ns of the admitted SYN */
	__u32 reason;            /* enum rg_stat that admitted it */
	__u32 ifindex;
};

/* rg_config.flags */
#define RG_CFG_REJECT_RST  (1U << 0)   /* answer dropped SYNs with RST+ACK */
struct rg_config {
	__u32 abi_version;       /* RG_ABI_VERSION; 0 = not configured yet */
	__u32 flags;             /* RG_CFG_* */
	__u32 v4_prefix;         /* grant/deny key prefix, 0..32 (default 32) */
	__u32 v6_prefix;         /* grant/deny key prefix, 0..128 (default 64) */
	__u64 event_interval;    /* ns between drop events for one source */
	__u32 event_burst;       /* per-CPU drop events per second */
	__u32 pad;
};

/* Per-CPU verdict counters. The first RG_VERDICT_MAX are the verdict reasons
 * of SPEC.md: every packet the program sees increments exactly one of them. */
enum rg_stat {
	RG_STAT_PASS_IFACE = 0,
	RG_STAT_PASS_TRUSTED,
	RG_STAT_PASS_GRANT,
	RG_STAT_PASS_FLOW,
	RG_STAT_DROP_DENIED,
	RG_STAT_DROP_UNAUTH,
	RG_STAT_DROP_MALFORMED,
	RG_STAT_PASS_UNPROTECTED,
	RG_VERDICT_MAX,
	/* Not verdicts: side counters. */
	RG_STAT_RST_SENT = RG_VERDICT_MAX, /* RST+ACK answers sent (reject = rst) */
	RG_STAT_EVENTS_LOST,               /* drop events the ring buffer refused */
	RG_STAT_MAX,
};

#define RG_STAT_NAMES {                 \
	[RG_STAT_PASS_IFACE] = "pass_iface",         \
	[RG_STAT_PASS_TRUSTED] = "pass_trusted",     \
	[RG_STAT_PASS_GRANT] = "pass_grant",         \
	[RG_STAT_PASS_FLOW] = "pass_flow",           \
	[RG_STAT_DROP_DENIED] = "drop_denied",       \
	[RG_STAT_DROP_UNAUTH] = "drop_unauth",       \
	[RG_STAT_DROP_MALFORMED] = "drop_malformed", \
	[RG_STAT_PASS_UNPROTECTED] = "pass_unprotected", \
	[RG_STAT_RST_SENT] = "rst_sent",             \
	[RG_STAT_EVENTS_LOST] = "events_lost",       \
}

struct rg_counter {
	__u64 packets;
	__u64 bytes;
};

/* Ring buffer record of a dropped packet (rate-limited per source and CPU). */
struct rg_drop_event {
	__u64 ts;                /* CLOCK_BOOTTIME ns */
	struct rg_addr src;      /* unmasked source */
	__u16 sport;             /* host order */
	__u16 dport;
	__u32 ifindex;
	__u32 reason;            /* enum rg_stat */
	__u32 pad;
};

/*
 * The summary: a prefilter in front of the per-source lookups, and hints
 * that let the program skip a lookup in a map that is empty.
 *
 * v4[] has a slot per IPv4 /16 (the source's top 16 bits), v6[] a slot per
 * fold of an IPv6 source's top 32 bits (rg_sum_slot6). A slot is non-zero
 * when some trusted subnet, grant or deny entry may match a source in it:
 * RG_SUM_COARSE for an entry wider than the fine level (IPv4 shorter than
 * /16, IPv6 shorter than /40), RG_SUM_FINE for the others, which also set
 * their bits in the fine level: v4f[] a bit per IPv4 /24 (an entry of /16
 * to /23 sets each of its /24s), v6f[] a bit per hash of an IPv6 /48 (an
 * entry of /40 to /47 sets each of its /48s; rg_sum_fine6). A source may
 * match something when its slot is COARSE, or FINE and its fine bit is set
 * (bpf/gate.h rg_sum_may). While RG_SUM_ON is set, a source that may not
 * skips the deny, trusted and grant lookups: nothing there can match it.
 * So a flood from address blocks that hold none of your users costs a few
 * array loads, not three hash/trie lookups that miss the cache; and the
 * fine level keeps that true for a flood spoofed from the /16 or IPv6 /32
 * of your users (a big ISP's), or when entries are so many or so spread
 * that nearly every slot is set.
 *
 * Userspace keeps it true (user/gatemaps.c): every writer sets the slots
 * and fine bits an entry covers BEFORE inserting the entry (the fine bits
 * first), and clears the hint bit of a map BEFORE inserting into it
 * (atomic operations on the mmapped map, so writers need no lock). Slots
 * are cleared and the empty-map hints set only by a rebuild, which holds
 * the pin-dir lock and runs in the one process that writes without it
 * (relaygated), and which clears RG_SUM_ON while it works. All zero (a
 * fresh map) means "no prefilter, look everything up".
 *
 * For the straight-line path (bpf/gate.h rg_fast), which reads nothing
 * but this map and rg_stats on its way to a drop:
 *  - ports[] has a byte per TCP port, non-zero while rg_ports protects it,
 *    indexed by the port as it sits in the packet (rg_sum_port(): no byte
 *    swap on the path). The bytes are a superset of rg_ports (a writer
 *    sets a byte before it protects the port, and clears it after it
 *    unprotects it), so a zero byte means "unprotected" for sure. Valid
 *    whatever the hints say.
 *  - RG_SUM_FAST says rg_config allows a drop without reading it:
 *    configured, reject = drop, and grant prefixes no shorter than a slot
 *    (IPv4 /16, IPv6 /32). Writers of rg_config clear it before a config
 *    that does not allow it and set it after one that does.
 *  - ev_quiet is written by the program: the low 32 bits of jiffies when a
 *    CPU last found its drop-event tokens gone. While it equals the
 *    current tick, the straight-line path does not offer events.
 */
#define RG_SUM_SLOTS      65536
#define RG_SUM_COARSE     1           /* slot: some entry wider than the fine level */
#define RG_SUM_FINE       2           /* slot: entries in the fine level */
#define RG_SUM_FINE4_BITS (1U << 24)  /* v4f: a bit per /24 */
#define RG_SUM_FINE6_BITS (1U << 23)  /* v6f: a bit per hash of a /48 */
#define RG_SUM_FINE4_PLEN 16          /* shortest IPv4 prefix in v4f (256 bits) */
#define RG_SUM_FINE6_PLEN 40          /* shortest IPv6 prefix in v6f (256 bits) */
#define RG_SUM_ON         (1U << 0)   /* v4[] and v6[] are valid */
#define RG_SUM_NO_TIFACE  (1U << 1)   /* rg_tiface is empty */
#define RG_SUM_NO_DENY    (1U << 2)   /* rg_deny is empty */
#define RG_SUM_FAST       (1U << 3)   /* rg_config allows the straight-line drop */

struct rg_summary {
	__u32 hints;             /* RG_SUM_* */
	__u32 ev_quiet;          /* jiffies (low 32 bits): drop events spent */
	__u32 pad[14];           /* the header in a cache line of its own */
	__u8 ports[65536];       /* by rg_sum_port(): maybe protected */
	__u8 v4[RG_SUM_SLOTS];
	__u8 v6[RG_SUM_SLOTS];
	__u8 v4f[RG_SUM_FINE4_BITS / 8];   /* 2 MiB */
	__u8 v6f[RG_SUM_FINE6_BITS / 8];   /* 1 MiB */
	/* to 4 MiB: the largest value an array map takes
	 * (KMALLOC_MAX_SIZE); a power of two, from when the programs looked
	 * the summary up (the verifier's inlined lookup shifted where it
	 * would multiply); now it is their global data, at an address */
	__u8 spare[(4 << 20) - 64 - 65536 - 2 * RG_SUM_SLOTS - RG_SUM_FINE4_BITS / 8 -
		   RG_SUM_FINE6_BITS / 8];
};

/* The index of a port (host order) in ports[]: the 16-bit value whose
 * bytes in memory are the port in network order. */
static inline __u16 rg_sum_port(__u16 port)
{
	union {
		__u16 v;
		__u8 b[2];
	} u = { .b = { (__u8)(port >> 8), (__u8)port } };

	return u.v;
}

/* RG_SUM_FAST for a config: what rg_fast() may assume without reading it. */
static inline int rg_sum_fast_ok(const struct rg_config *c)
{
	return c->abi_version == RG_ABI_VERSION && !(c->flags & RG_CFG_REJECT_RST) &&
	       c->v4_prefix >= 16 && c->v4_prefix <= 32 && c->v6_prefix >= 32 &&
	       c->v6_prefix <= 128;
}

/* The slot of an address (host-order top 32 bits of the address). */
static inline __u32 rg_sum_slot4(__u32 top) { return top >> 16; }
static inline __u32 rg_sum_slot6(__u32 top) { return (top ^ (top >> 16)) & (RG_SUM_SLOTS - 1); }

/* The fine bit of an address: top as above, next the host-order 16 bits
 * after it (IPv6). IPv6: a multiplicative hash spreads the /32s, and the
 * /48s of one /32 get distinct bits. */
static inline __u32 rg_sum_fine4(__u32 top) { return top >> 8; }
static inline __u32 rg_sum_fine6(__u32 top, __u32 next)
{
	return ((top * 0x9e3779b1U) >> 9 ^ (next & 0xffff) << 7) & (RG_SUM_FINE6_BITS - 1);
}

/* Per-CPU token bucket for drop events. */
struct rg_evbucket {
	__u64 window_start;      /* ns */
	__u32 sent;              /* events sent in this 1 s window */
	__u32 tick;              /* low 32 bits of jiffies at the last clock read */
};

_Static_assert(sizeof(struct rg_addr) == 20, "rg_addr ABI");
_Static_assert(sizeof(struct rg_lpm4) == 8, "rg_lpm4 ABI");
_Static_assert(sizeof(struct rg_lpm6) == 20, "rg_lpm6 ABI");
_Static_assert(sizeof(struct rg_grant) == 88, "rg_grant ABI");
_Static_assert(sizeof(struct rg_deny) == 24, "rg_deny ABI");
_Static_assert(sizeof(struct rg_flow_key) == 40, "rg_flow_key ABI");
_Static_assert(sizeof(struct rg_flow) == 16, "rg_flow ABI");
_Static_assert(sizeof(struct rg_config) == 32, "rg_config ABI");
_Static_assert(sizeof(struct rg_counter) == 16, "rg_counter ABI");
_Static_assert(sizeof(struct rg_drop_event) == 48, "rg_drop_event ABI");
_Static_assert(sizeof(struct rg_evbucket) == 16, "rg_evbucket ABI");
_Static_assert(sizeof(struct rg_summary) == 4 << 20, "rg_summary ABI");

#endif /* RELAYGATE_MAPS_H */
