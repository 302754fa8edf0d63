// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * relaygated: the daemon (SPEC.md "relaygated"). It wires the modules:
 *
 *   log sources (follow.c + presets.c) --\
 *   auth policy push (authpolicy.c) -----+--> struct rg_auth_event --> grants.c --> maps
 *   control socket (control.c) ----------/
 *
 * and beside that the Postfix policy service (policy.c), the drop events of
 * the BPF ring buffer, the state file (state.c), /metrics (metrics.c) and
 * the cluster (cluster.c: grants and denies shared through Redis).
 *
 * One thread runs everything but the two HTTP servers (metrics and the auth
 * policy push source, each on its own libmicrohttpd thread), the map
 * walker (its own thread, walker_main) and the cluster's Redis client (its
 * own thread, in cluster.c): an epoll loop over every source's descriptor,
 * the control socket, the push sources' event queue, the policy server,
 * the ring buffer, the walker's results, the cluster's received entries, a
 * signalfd (SIGHUP reload, SIGTERM/SIGINT exit) and a quarter-second
 * timerfd. Only the loop writes grants and denies into the maps.
 *
 * The tick (every second; between, a quarter-second tick saves the state
 * file when our own events changed the maps):
 *  - asks the walker for a walk of the grant and deny maps: it logs what
 *    changed behind our back (relaygatectl grant del / add), saves the
 *    state file when anything changed since the last save, and hands the
 *    loop what expired, which the loop removes and logs. So after a kill -9
 *    no grant older than about one second is lost (with hundreds of
 *    thousands of grants, a few seconds: a walk takes at most a tenth of
 *    the time, and the loop goes on serving meanwhile).
 *  - forgets failure records whose window passed, polls every log source
 *    (a lost inotify event costs a second, never a line), re-resolves the
 *    trusted interfaces (wg0 may come up after us), and copies counters
 *    into the snapshot /metrics reads.
 *
 * Reload (SIGHUP) is prepare-then-commit: everything that can fail without
 * touching a map is made first (new sources, sockets, sender_logins, audit
 * file, servers); then new interfaces are attached and the maps updated
 * (trusted subnets, ports and interfaces are replaced add-before-remove by
 * gatemaps.c); only then are the new parts swapped in and the old ones
 * closed. A failure at any step keeps the old configuration whole. What did
 * not change (a source, a socket) stays open and loses nothing.
 *
 * Exit (SIGTERM) saves the state file and the read positions and leaves the
 * gate attached: the gate fails closed, only `relaygatectl detach` opens it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "audit.h"
#include "authpolicy.h"
#include "cidr.h"
#include "cluster.h"
#include "config.h"
#include "control.h"
#include "duration.h"
#include "evqueue.h"
#include "follow.h"
#include "gatemaps.h"
#include "grants.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "presets.h"
#include "senderlogins.h"
#include "state.h"

#define RELAYGATED_VERSION "0.1"
#define NS_PER_SEC 1000000000ULL
#define MAX_EPOLL_EVENTS 64
#define MAX_ATTACH 256
#define DROP_LOG_PER_SEC 10         /* drop events logged per second */
#define CLUSTER_LOG_PER_SEC 20      /* entries from other hosts logged per second */
#define REJECT_LOG_PER_SEC 5        /* rejected log lines logged per second */
#define SAVE_ERR_REPEAT_NS (60 * NS_PER_SEC)

/* ------------------------------------------------------------ types */

enum h_kind { H_SOURCE, H_CONTROL, H_EVQ, H_POLICY, H_RINGBUF, H_SIGNAL, H_TIMER, H_WALK,
	      H_CLUSTER };

/* What an epoll event's data.ptr points at. */
struct handler {
	enum h_kind kind;
	void *ptr;
};

struct daemon;

/* One [source.NAME] at run time. The definition is copied from the config,
 * so the config it came from may be freed (reload). */
struct source {
	struct handler h;
	struct daemon *d;
	char name[RG_SOURCE_NAME_MAX + 1];
	enum rg_source_type type;
	char path[PATH_MAX];
	char *match, *failure;
	struct rg_endpoint listen;
	enum rg_service service;

	struct rg_preset *preset;        /* log sources */
	struct rg_follow *follow;
	char pos_path[PATH_MAX + 64];
	bool polled;                     /* follow fd is in the epoll set */
	bool more;                       /* rg_follow_process said: again soon */
	bool eof;                        /* stdin ended */
	bool unpollable;                 /* stdin is a regular file: no epoll */
	struct rg_authpolicy *ap;        /* push source */

	/* Copies /metrics reads (under d->lock). */
	struct rg_preset_stats pst;
	struct rg_follow_stats fst;
};

struct ratelim {
	unsigned per_sec, used;
	uint64_t suppressed;
};

/* Counters of the daemon itself, copied for /metrics on each tick. */
struct dstats {
	uint64_t drop_events;            /* records read from the ring buffer */
	uint64_t drop_log_suppressed;    /* not logged: over DROP_LOG_PER_SEC */
	uint64_t expired_grants, expired_denies;
	uint64_t state_saves, state_save_errors;
	uint64_t reloads, reload_errors;
	uint64_t sum_rebuilds, sum_rebuild_errors, sum_rebuild_ns;
	uint64_t walk_ns;                /* the last walk of the grant and deny maps */
	uint64_t evq_dropped;
	bool cluster_on;
	struct rg_cluster_stats cluster;
	uint64_t cluster_applied, cluster_kept, cluster_trusted, cluster_errors, cluster_prefix;
	bool policy_on;
	struct rg_policy_stats policy;
};

/* Buffers for batch lookups of a whole map, grown as needed. */
struct dump {
	void *keys, *vals;
	size_t cap;                      /* entries */
	size_t vsize;                    /* the largest value size seen */
};

/* Keys the walker saw expired: grants and denies. */
struct expired {
	struct rg_addr *keys;
	size_t n, cap, ngrants;          /* keys[0, ngrants): grants; the rest denies */
};

/* The map walker's state (see walker_main). */
struct walker {
	struct daemon *d;
	pthread_t th;
	bool threaded;                   /* else the loop walks inline */
	int efd;                         /* eventfd: results for the loop */
	pthread_mutex_t mu, gate_mu;
	pthread_cond_t cv;               /* CLOCK_MONOTONIC */
	/* mu */
	uint64_t asked, done;            /* walks asked for; done up to */
	bool force, stop;
	struct expired expired;          /* the latest walk's, for the loop */
	bool have_expired;
	uint64_t saves, save_errors;     /* since the loop last looked */
	bool last_failed;
	char save_err[512], walk_err[256];
	uint64_t walk_at, walk_cost, walk_ns;   /* the last walk: start, pacing cost, ns */
	/* gate_mu */
	struct rg_state prev;            /* the last walk, sorted by key */
	bool have_prev, save_pending, no_batch;
	bool closing;                    /* exiting: no more cluster snapshots */
	struct dump dump;                /* batch lookup buffers, kept */
};

/* What a (re)configuration brings, made before anything is swapped in. */
struct prepared {
	struct source **src;
	bool *src_new;                   /* src[i] was made for this config */
	size_t nsrc;
	struct rg_control *control;
	bool control_new;
	struct rg_policy *policy;
	bool policy_new;
	struct rg_senderlogins *sl;
	struct rg_audit *audit;
	bool audit_new;
	struct rg_metrics *metrics;
	bool metrics_new;
};

struct daemon {
	const char *cfg_path;
	bool foreground, verbose;
	int ready_fd;                    /* daemonize: tell the parent; -1 none */

	struct rg_config_file cfg;
	bool have_cfg;
	struct rg_gate gate;
	bool gate_open;
	char boot_id[RG_BOOT_ID_LEN + 1];   /* "" when unreadable */
	int lock_fd;                     /* rg_gate_daemon_lock(): held until exit */
	struct rg_grants *grants;
	struct rg_evqueue *evq;
	struct rg_control *control;
	struct rg_policy *policy;
	struct rg_policy_maps pmaps;
	struct rg_senderlogins *sl;
	struct rg_audit *audit;
	struct rg_metrics *metrics;
	struct ring_buffer *rb;

	struct source **src;
	size_t nsrc;

	int ep, sfd, tfd;
	unsigned quarters;      /* timer ticks since the last one-second round */
	bool changed;           /* our own grant or deny since the last save */
	uint64_t sum_at, sum_cost;   /* last summary rebuild: when, how long (ns) */
	struct handler h_control, h_evq, h_policy, h_rb, h_sig, h_timer, h_walk, h_cluster;
	bool running;

	bool attached_now[RG_CONFIG_MAX_IFACES];   /* attached by this start */
	unsigned *tiface;                /* trusted ifindexes applied now */
	size_t ntiface;
	char tiface_missing[RG_CONFIG_MAX_IFACES];   /* warned: name not there */
	unsigned tiface_waits;           /* ticks a change waited for the pin-dir lock */

	struct rg_cluster *cluster;      /* [cluster]: its thread; NULL without */
	struct rg_cluster *cluster_old;  /* replaced by a reload, freed after it */
	struct walker wk;                /* walks the grant and deny maps */
	struct expired expq;             /* seen expired by the walker, to remove */
	size_t exp_at;                   /* removed up to here */
	char save_err[512];              /* the last state file error logged */
	uint64_t save_err_ns;

	struct ratelim drop_rl, reject_rl, cluster_rl;
	struct dstats st;                /* main thread */

	pthread_mutex_t lock;            /* what /metrics reads: below, d->src,
					  * d->control, d->grants, the sources' pst/fst */
	struct dstats shown;
};

/* ------------------------------------------------------------ helpers */

static void gate_reset(struct rg_gate *g)
{
	memset(g, 0, sizeof(*g));
	g->config_fd = g->ports_fd = g->tiface_fd = g->trust4_fd = g->trust6_fd = -1;
	g->grants_fd = g->deny_fd = g->flows_fd = g->stats_fd = g->events_fd = -1;
	g->lock_fd = -1;
}

static bool rl_take(struct ratelim *r)
{
	if (r->used < r->per_sec) {
		r->used++;
		return true;
	}
	r->suppressed++;
	return false;
}

/* A user name for a log line: printable ASCII, no blanks; "-" when empty. */
static const char *log_user(const char *u, char *buf, size_t len)
{
	size_t i;

	if (!u || !*u)
		return "-";
	for (i = 0; u[i] && i + 1 < len; i++)
		buf[i] = u[i] > 0x20 && u[i] < 0x7f ? u[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* Text of a grant/deny key: the address, or a CIDR when keys are masked. */
static const char *key_str(const struct rg_gate *g, const struct rg_addr *k, char *buf, size_t len)
{
	unsigned plen = k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix;
	unsigned full = k->family == RG_AF_INET ? 32 : 128;

	return plen >= full ? rg_addr_str(k, buf, len) : rg_cidr_str(k, plen, buf, len);
}

static const char *dur_ns(uint64_t ns, char *buf, size_t len)
{
	return rg_duration_str((ns + NS_PER_SEC - 1) / NS_PER_SEC, buf, len);
}

/* "127.0.0.1:9469" or "[::1]:9469" from a parsed endpoint. */
static const char *endpoint_hostport(const struct rg_endpoint *e, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (e->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&e->sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)&e->sa;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
	}
	return buf;
}

static bool endpoint_same(const struct rg_endpoint *a, const struct rg_endpoint *b)
{
	if (a->set != b->set)
		return false;
	if (!a->set)
		return true;
	if (a->is_unix != b->is_unix)
		return false;
	if (a->is_unix)
		return !strcmp(a->path, b->path);
	return a->salen == b->salen && !memcmp(&a->sa, &b->sa, a->salen);
}

static bool str_same(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return !strcmp(a, b);
}

static int mkdir_p(const char *dir, mode_t mode)
{
	char p[PATH_MAX];
	size_t i, n = strlen(dir);

	if (!n || n >= sizeof(p))
		return -ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, mode) && errno != EEXIST)
			return -errno;
		p[i] = i < n ? '/' : '\0';
	}
	return 0;
}

static void state_dir(const char *state_file, char *buf, size_t len)
{
	const char *slash = strrchr(state_file, '/');

	if (!slash)
		snprintf(buf, len, ".");
	else if (slash == state_file)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - state_file), state_file);
}

/* FNV-1a: the position file is named after the source and its path, so a
 * source pointed at another file never resumes at a position of the old
 * one (that would replay the new file from its start: old logins). */
static uint32_t fnv1a(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}

static int ep_add(struct daemon *d, int fd, struct handler *h)
{
	struct epoll_event e = { .events = EPOLLIN, .data.ptr = h };

	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &e) ? -errno : 0;
}

static void ep_del(struct daemon *d, int fd)
{
	if (fd >= 0 && d->ep >= 0)
		epoll_ctl(d->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* A startup error: logged, and passed to the waiting parent (daemonize). */
static void __attribute__((format(printf, 2, 3)))
startup_error(struct daemon *d, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	rg_err("%s", line);
	if (d->ready_fd >= 0) {
		size_t n = strlen(line);

		if (write(d->ready_fd, line, n) != (ssize_t)n) {
			/* the parent reads what it gets */
		}
		close(d->ready_fd);
		d->ready_fd = -1;
	}
}

/* ------------------------------------------------------------ events */

/* The prefix length key is masked to in g's maps. */
static unsigned key_plen(const struct rg_gate *g, const struct rg_addr *k)
{
	return k->family == RG_AF_INET ? g->cfg.v4_prefix : g->cfg.v6_prefix;
}

/* A grant or deny this host just made, to the other hosts: the entry as
 * the map now holds it. */
static void share_local(struct daemon *d, const struct rg_auth_event *ev, bool deny)
{
	struct rg_addr k = ev->addr;
	struct rg_grant g;
	struct rg_deny v;

	rg_addr_key(&k, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
	if (!deny && !bpf_map_lookup_elem(d->gate.grants_fd, &k, &g))
		rg_cluster_share_grant(d->cluster, &k, key_plen(&d->gate, &k), &g);
	else if (deny && !bpf_map_lookup_elem(d->gate.deny_fd, &k, &v))
		rg_cluster_share_deny(d->cluster, &k, key_plen(&d->gate, &k), &v);
}

/* The one way into grants.c: every source ends here. */
static enum rg_grants_result handle_event(struct daemon *d, struct rg_auth_event *ev)
{
	enum rg_grants_result r = rg_grants_handle(d->grants, ev, rg_now_ns());

	if (r == RG_GRANTS_GRANTED || r == RG_GRANTS_EXTENDED || r == RG_GRANTS_DENIED) {
		d->changed = true;
		if (d->cluster)
			share_local(d, ev, r == RG_GRANTS_DENIED);
	}
	return r;
}

static struct source *source_by_name(struct daemon *d, const char *name)
{
	size_t i;

	for (i = 0; name && i < d->nsrc; i++)
		if (!strcmp(d->src[i]->name, name))
			return d->src[i];
	return NULL;
}

static void on_line(const char *line, size_t len, void *ctx)
{
	struct source *s = ctx;
	struct daemon *d = s->d;
	struct rg_auth_event ev;
	int r;

	r = rg_preset_parse(s->preset, line, len, &ev);
	if (r == 0)
		return;
	if (r < 0) {
		if (rl_take(&d->reject_rl))
			rg_warn("source %s: line rejected: %s", s->name, rg_preset_why(s->preset));
		return;
	}
	ev.source = s->name;
	/* [source.X] service is a default: the line's own word wins. */
	if (ev.service == RG_SERVICE_NONE)
		ev.service = s->service;
	handle_event(d, &ev);
}

static void on_push_event(const struct rg_auth_event *e, void *ctx)
{
	struct daemon *d = ctx;
	struct rg_auth_event ev = *e;
	struct source *s = source_by_name(d, ev.source);

	if (s && ev.service == RG_SERVICE_NONE)
		ev.service = s->service;
	handle_event(d, &ev);
}

static int on_control_event(const struct rg_auth_event *e, void *ctx, char *err, size_t errlen)
{
	struct daemon *d = ctx;
	struct rg_auth_event ev = *e;

	switch (handle_event(d, &ev)) {
	case RG_GRANTS_ERROR:
		snprintf(err, errlen, "%s", rg_grants_error(d->grants));
		return -1;
	case RG_GRANTS_IGNORED:
		snprintf(err, errlen, "ignored: %s", rg_grants_error(d->grants));
		return -1;
	default:
		return 0;
	}
}

static int on_drop(void *ctx, void *data, size_t size)
{
	struct daemon *d = ctx;
	const struct rg_drop_event *e = data;
	char a[RG_ADDRSTRLEN], ifn[IF_NAMESIZE];

	if (size < sizeof(*e))
		return 0;
	d->st.drop_events++;
	if (!rl_take(&d->drop_rl)) {
		d->st.drop_log_suppressed++;
		return 0;
	}
	if (!if_indextoname(e->ifindex, ifn))
		snprintf(ifn, sizeof(ifn), "ifindex %u", e->ifindex);
	rg_info("drop %s port %u -> %u on %s: %s", rg_addr_str(&e->src, a, sizeof(a)),
		e->sport, e->dport, ifn, rg_stat_name(e->reason));
	return 0;
}

/* ------------------------------------------------------------ sources */

static void source_process(struct source *s)
{
	int r;

	if (!s->follow || s->eof)
		return;
	r = rg_follow_process(s->follow);
	s->more = r == RG_FOLLOW_MORE || (s->unpollable && r != RG_FOLLOW_EOF && r >= 0);
	if (r == RG_FOLLOW_EOF) {
		rg_info("source %s: end of %s", s->name, strcmp(s->path, "-") ? s->path : "stdin");
		s->eof = true;
		if (s->polled) {
			ep_del(s->d, rg_follow_fd(s->follow));
			s->polled = false;
		}
	} else if (r < 0 && rl_take(&s->d->reject_rl)) {
		rg_warn("source %s: reading %s: %s", s->name, s->path, strerror(-r));
	}
}

static void source_free(struct daemon *d, struct source *s)
{
	if (!s)
		return;
	if (s->follow) {
		if (s->polled)
			ep_del(d, rg_follow_fd(s->follow));
		rg_follow_close(s->follow);      /* saves the position */
	}
	rg_authpolicy_stop(s->ap);
	rg_preset_free(s->preset);
	free(s->match);
	free(s->failure);
	free(s);
}

/*
 * A source the new config dropped or redefined. Its read position goes
 * with it (unless the new definition reads the same file under the same
 * name): a source configured again later starts at the end of its log, not
 * at a stale position whose old logins it would replay as new grants.
 */
static void source_retire(struct daemon *d, struct source *s, struct source **keep, size_t n)
{
	char pos[sizeof(s->pos_path)];
	size_t i;

	snprintf(pos, sizeof(pos), "%s", s->pos_path);
	/* What it has not read yet was logged under the old definition. */
	if (s->follow && !s->eof) {
		int rounds = 0;

		do
			source_process(s);
		while (s->more && !s->eof && ++rounds < 64);
	}
	rg_info("source %s: closed", s->name);
	source_free(d, s);
	for (i = 0; i < n; i++)
		if (!strcmp(keep[i]->pos_path, pos))
			return;
	if (pos[0] && unlink(pos) && errno != ENOENT)
		rg_warn("removing %s: %s", pos, strerror(errno));
}

/* Same source, or one to make anew? The service is not part of it: it is
 * applied per event, and changed in place at commit. */
static bool source_same(const struct source *s, const struct rg_source_cfg *c)
{
	return !strcmp(s->name, c->name) && s->type == c->type && !strcmp(s->path, c->path) &&
	       str_same(s->match, c->match) && str_same(s->failure, c->failure) &&
	       endpoint_same(&s->listen, &c->listen);
}

static struct source *source_new(struct daemon *d, const struct rg_config_file *cfg,
				 const struct rg_source_cfg *c, char *err, size_t errlen)
{
	struct source *s = calloc(1, sizeof(*s));
	char e[512], dir[PATH_MAX];

	if (!s) {
		snprintf(err, errlen, "[source.%s]: out of memory", c->name);
		return NULL;
	}
	s->h.kind = H_SOURCE;
	s->h.ptr = s;
	s->d = d;
	snprintf(s->name, sizeof(s->name), "%s", c->name);
	s->type = c->type;
	snprintf(s->path, sizeof(s->path), "%s", c->path);
	s->listen = c->listen;
	s->service = c->service;
	if ((c->match && !(s->match = strdup(c->match))) ||
	    (c->failure && !(s->failure = strdup(c->failure)))) {
		snprintf(err, errlen, "[source.%s]: out of memory", c->name);
		goto fail;
	}
	if (!rg_source_is_log(c->type)) {
		struct rg_authpolicy_opts o = { .source = s->name };
		char lis[96];

		o.listen = endpoint_hostport(&c->listen, lis, sizeof(lis));
		if (!c->listen.set)
			o.listen = NULL;
		if (rg_authpolicy_start(&s->ap, &o, d->evq, e, sizeof(e))) {
			snprintf(err, errlen, "[source.%s]: %s", c->name, e);
			goto fail;
		}
		return s;
	}
	s->preset = rg_preset_new((enum rg_preset_type)c->type, c->match, c->failure, e, sizeof(e));
	if (!s->preset) {
		snprintf(err, errlen, "[source.%s]: %s", c->name, e);
		goto fail;
	}
	if (strcmp(c->path, "-")) {
		state_dir(cfg->grants.state_file, dir, sizeof(dir));
		snprintf(s->pos_path, sizeof(s->pos_path), "%s/%s.%08x.pos", dir, c->name,
			 fnv1a(c->path));
	}
	{
		struct rg_follow_opts fo = {
			.path = c->path,
			.pos_path = s->pos_path[0] ? s->pos_path : NULL,
			.cb = on_line,
			.ctx = s,
		};

		s->follow = rg_follow_open(&fo, e, sizeof(e));
	}
	if (!s->follow) {
		snprintf(err, errlen, "[source.%s]: %s", c->name, e);
		goto fail;
	}
	return s;
fail:
	source_free(d, s);
	return NULL;
}

/* Put a log source's descriptor into the loop. */
static int source_poll(struct daemon *d, struct source *s, char *err, size_t errlen)
{
	int r;

	if (!s->follow || s->polled || s->eof)
		return 0;
	r = ep_add(d, rg_follow_fd(s->follow), &s->h);
	if (r == -EPERM) {
		/* stdin redirected from a regular file: read it until EOF. */
		s->unpollable = true;
		s->more = true;
		return 0;
	}
	if (r) {
		snprintf(err, errlen, "[source.%s]: epoll: %s", s->name, strerror(-r));
		return r;
	}
	s->polled = true;
	s->more = true;          /* read what is there already */
	return 0;
}

/* Copy the counters /metrics shows. Caller holds d->lock. */
static void source_snapshot(struct source *s)
{
	if (s->preset)
		rg_preset_get_stats(s->preset, &s->pst);
	if (s->follow)
		rg_follow_get_stats(s->follow, &s->fst);
}

/* ------------------------------------------------------------ gate */

static void load_opts(const struct rg_config_file *c, struct rg_load_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->grants_max = c->grants.max;
	o->v4_prefix = c->grants.ipv4_prefix;
	o->v6_prefix = c->grants.ipv6_prefix;
	o->reject_rst = c->gate.reject_rst;
	o->ports = c->gate.ports;
	o->nports = c->gate.n_ports;
	/* Maps that exist keep their ports and reject mode here: apply_maps
	 * sets them once every attach has worked, and takes them back when a
	 * later step fails (an attach to the second of two new interfaces
	 * failing must not leave the new ports behind). */
	o->fresh_only = true;
}

/* "FILE:LINE: " of a config key, or "FILE: " for a default (line 0). */
static const char *key_at(const struct rg_config_file *c, unsigned line, char *buf, size_t len)
{
	if (line)
		snprintf(buf, len, "%s:%u: ", c->path, line);
	else
		snprintf(buf, len, "%s: ", c->path);
	return buf;
}

/* Detach what gate_attach_all attached (mine[i]: c's interface i), when a
 * later step of the start or reload fails. */
static void gate_undo_attach(const struct rg_config_file *c, const bool *mine)
{
	char e[512];
	size_t i;

	for (i = 0; i < c->gate.n_ifaces; i++) {
		if (!mine[i])
			continue;
		if (rg_gate_detach(c->gate.pin_dir, c->gate.ifaces[i], e, sizeof(e)))
			rg_warn("undoing the attach to %s: %s", c->gate.ifaces[i], e);
		else
			rg_info("gate on %s: detached again", c->gate.ifaces[i]);
	}
}

/*
 * Attach the gate to each [gate] interface not attached yet, adopting those
 * that are (pinned under pin_dir). All or nothing: on a failure, what this
 * call attached is detached again. With no interface, make sure the maps
 * exist (adopting them when pinned).
 */
static int gate_attach_all(struct daemon *d, const struct rg_config_file *c,
			   bool mine[RG_CONFIG_MAX_IFACES], char *err, size_t errlen)
{
	struct rg_attachment *att;
	struct rg_load_opts o;
	int natt, r = 0;
	size_t i;
	char e[512];

	load_opts(c, &o);
	if (!c->gate.n_ifaces) {
		struct rg_gate probe;

		gate_reset(&probe);
		r = rg_gate_open(&probe, c->gate.pin_dir);
		if (!r) {
			rg_gate_close(&probe);
			return 0;
		}
		if (r != -ENOENT) {
			snprintf(err, errlen, "%s", probe.err);
			return r;
		}
		r = rg_gate_create(c->gate.pin_dir, &o, e, sizeof(e));
		if (r) {
			snprintf(err, errlen, "%s", e);
			return r;
		}
		rg_warn("no [gate] interface configured: maps created under %s, but the gate is attached nowhere",
			c->gate.pin_dir);
		return 0;
	}
	memset(mine, 0, RG_CONFIG_MAX_IFACES * sizeof(*mine));
	att = calloc(MAX_ATTACH, sizeof(*att));
	if (!att) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	natt = rg_gate_attachments(c->gate.pin_dir, att, MAX_ATTACH);
	if (natt < 0)
		natt = 0;
	for (i = 0; i < c->gate.n_ifaces; i++) {
		const char *ifn = c->gate.ifaces[i];
		int j;

		for (j = 0; j < natt; j++)
			if (!strcmp(att[j].ifname, ifn))
				break;
		if (j < natt) {
			if (!att[j].ifindex || !att[j].prog_id)
				rg_warn("gate on %s: pinned under %s, but %s; `relaygatectl detach %s` and restart to attach it again",
					ifn, c->gate.pin_dir,
					att[j].ifindex ? "its program was removed" : "the interface is gone",
					ifn);
			else if (att[j].mode != c->gate.mode)
				rg_warn("gate on %s: already attached in %s mode, not %s: keeping it (detach it to change the mode)",
					ifn, rg_mode_name(att[j].mode), rg_mode_name(c->gate.mode));
			else if (!d->have_cfg)       /* start, not reload */
				rg_info("gate on %s: adopting the attached gate (%s, prog id %u)", ifn,
					rg_mode_name(att[j].mode), att[j].prog_id);
			continue;
		}
		r = rg_gate_attach(c->gate.pin_dir, ifn, c->gate.mode, &o, e, sizeof(e));
		if (r) {
			char at[PATH_MAX + 32];

			snprintf(err, errlen, "%.300s[gate] interface: %s",
				 key_at(c, c->gate.iface_line[i], at, sizeof(at)), e);
			break;
		}
		mine[i] = true;
		rg_info("gate attached to %s (%s)", ifn, rg_mode_name(c->gate.mode));
	}
	if (r) {
		gate_undo_attach(c, mine);
		memset(mine, 0, RG_CONFIG_MAX_IFACES * sizeof(*mine));
	}
	/* Interfaces no longer configured stay attached: only detach opens. */
	for (i = 0; d->have_cfg && i < d->cfg.gate.n_ifaces; i++) {
		size_t k;

		for (k = 0; k < c->gate.n_ifaces; k++)
			if (!strcmp(c->gate.ifaces[k], d->cfg.gate.ifaces[i]))
				break;
		if (k == c->gate.n_ifaces && !r)
			rg_warn("gate on %s: no longer in [gate] interface, but stays attached (fail closed): `relaygatectl detach %s` opens it",
				d->cfg.gate.ifaces[i], d->cfg.gate.ifaces[i]);
	}
	free(att);
	return r;
}

/* Whether the gate runs on some interface now (attachments pinned under
 * the pin dir, with their program in place). */
static bool gate_attached_anywhere(const struct daemon *d)
{
	struct rg_attachment *att = calloc(MAX_ATTACH, sizeof(*att));
	bool any = false;
	int i, n;

	if (!att)
		return true;    /* not known: say what is likely */
	n = rg_gate_attachments(d->cfg.gate.pin_dir, att, MAX_ATTACH);
	for (i = 0; i < n && !any; i++)
		any = att[i].ifindex && att[i].prog_id;
	free(att);
	return any;
}

static int cmp_unsigned(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;

	return x < y ? -1 : x > y;
}

/* [trust] interface names -> sorted ifindexes (missing ones left out). */
static size_t resolve_tiface(const struct rg_config_file *c, unsigned *out, char *missing)
{
	size_t i, n = 0;

	for (i = 0; i < c->trust.n_ifaces; i++) {
		unsigned idx = if_nametoindex(c->trust.ifaces[i]);

		if (missing)
			missing[i] = !idx;
		if (idx)
			out[n++] = idx;
	}
	qsort(out, n, sizeof(*out), cmp_unsigned);
	return n;
}

/* periodic: the tick's check (say what appeared); else a (re)configuration
 * (warn about every missing name), whose caller holds the pin-dir lock. */
static int apply_tiface(struct daemon *d, const struct rg_config_file *c, bool periodic)
{
	unsigned idx[RG_CONFIG_MAX_IFACES];
	char missing[RG_CONFIG_MAX_IFACES];
	bool same, locked = false;
	size_t n, i;
	int r;

	n = resolve_tiface(c, idx, missing);
	same = d->tiface && n == d->ntiface && !memcmp(idx, d->tiface, n * sizeof(*idx));
	if (!same && periodic && d->gate.lock_fd < 0) {
		/* Under the pin-dir lock, as relaygatectl's edits are. Held
		 * by someone else: the next tick tries again (nothing is
		 * recorded, so it will see the same change). */
		r = rg_gate_trylock(&d->gate);
		if (r == -EWOULDBLOCK) {
			if (++d->tiface_waits % 10)
				return 0;
			/* said every 10 s while it lasts (the caller logs it) */
			snprintf(d->gate.err, sizeof(d->gate.err),
				 "a change waits for the pin-dir lock, held by another process for %u s",
				 d->tiface_waits);
			return r;
		}
		if (r)
			return r;
		locked = true;
	}
	d->tiface_waits = 0;
	for (i = 0; i < c->trust.n_ifaces; i++) {
		if (missing[i] && (!periodic || !d->tiface_missing[i]))
			rg_warn("trusted interface %s does not exist (yet): its traffic is not trusted until it appears",
				c->trust.ifaces[i]);
		else if (!missing[i] && d->tiface_missing[i] && periodic)
			rg_info("trusted interface %s appeared: trusted now", c->trust.ifaces[i]);
	}
	if (same) {
		memcpy(d->tiface_missing, missing, sizeof(missing));
		return 0;
	}
	r = rg_tiface_replace(&d->gate, idx, n);
	if (locked)
		rg_gate_unlock(&d->gate);
	if (r)
		return r;
	memcpy(d->tiface_missing, missing, sizeof(missing));
	free(d->tiface);
	d->tiface = calloc(n ? n : 1, sizeof(*idx));
	if (d->tiface)
		memcpy(d->tiface, idx, n * sizeof(*idx));
	d->ntiface = d->tiface ? n : 0;
	return 0;
}

struct rekey_ctx {
	struct rg_state st;
	int err;
};

static int rekey_grant_cb(const struct rg_addr *k, const struct rg_grant *v, void *ctx)
{
	struct rekey_ctx *rc = ctx;

	if (rg_state_add_grant(&rc->st, k, v))
		rc->err = -ENOMEM;
	return rc->err;
}

static int rekey_deny_cb(const struct rg_addr *k, const struct rg_deny *v, void *ctx)
{
	struct rekey_ctx *rc = ctx;

	if (rg_state_add_deny(&rc->st, k, v))
		rc->err = -ENOMEM;
	return rc->err;
}

static int cmp_grant_expiry(const void *a, const void *b)
{
	uint64_t x = ((const struct rg_state_grant *)a)->v.expires;
	uint64_t y = ((const struct rg_state_grant *)b)->v.expires;

	return x < y ? -1 : x > y;
}

/* Whether an entry keyed under old prefixes has no key under the new ones:
 * its family's prefix got longer, and the address it was made for is
 * gone (a /24 key holds 192.0.2.0, not the client's 192.0.2.7). */
static bool narrowed(const struct rg_addr *k, unsigned old4, unsigned old6,
		     const struct rg_config *now)
{
	return k->family == RG_AF_INET ? now->v4_prefix > old4 : now->v6_prefix > old6;
}

/*
 * After a prefix change, move every grant and deny to its key under the new
 * prefixes (g->cfg holds them already; old4 and old6 are the ones they were
 * keyed by). Keys that merge keep the longest expiry, with the user of the
 * grant that had it. An entry whose prefix got longer cannot be moved (its
 * client's address is not in the key): it is removed, and said so; its user
 * gets a new grant at the next login.
 */
static void rekey_maps(struct daemon *d, unsigned old4, unsigned old6)
{
	struct rekey_ctx rc = { 0 };
	unsigned moved = 0, dropped = 0;
	uint64_t now = rg_now_ns();
	size_t i;

	rg_grant_foreach(&d->gate, rekey_grant_cb, &rc);
	rg_deny_foreach(&d->gate, rekey_deny_cb, &rc);
	/* the longest last: rg_grant_put_abs keeps the longest expiry and
	 * takes the user of the last put */
	if (rc.st.ngrants)
		qsort(rc.st.grants, rc.st.ngrants, sizeof(*rc.st.grants), cmp_grant_expiry);
	for (i = 0; i < rc.st.ngrants; i++) {
		struct rg_state_grant *e = &rc.st.grants[i];
		struct rg_addr nk = e->key;

		if (narrowed(&e->key, old4, old6, &d->gate.cfg)) {
			if (!bpf_map_delete_elem(d->gate.grants_fd, &e->key))
				dropped++;
			continue;
		}
		rg_addr_key(&nk, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
		if (!memcmp(&nk, &e->key, sizeof(nk)))
			continue;
		if (!rg_grant_put_abs(&d->gate, &e->key, &e->v)) {
			bpf_map_delete_elem(d->gate.grants_fd, &e->key);
			moved++;
		}
	}
	for (i = 0; i < rc.st.ndenies; i++) {
		struct rg_state_deny *e = &rc.st.denies[i];
		struct rg_addr nk = e->key;

		if (narrowed(&e->key, old4, old6, &d->gate.cfg)) {
			if (!bpf_map_delete_elem(d->gate.deny_fd, &e->key))
				dropped++;
			continue;
		}
		rg_addr_key(&nk, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
		if (!memcmp(&nk, &e->key, sizeof(nk)) || e->v.expires <= now)
			continue;
		if (!rg_deny_put(&d->gate, &e->key, e->v.expires - now, e->v.origin, e->v.failures)) {
			bpf_map_delete_elem(d->gate.deny_fd, &e->key);
			moved++;
		}
	}
	rg_state_free(&rc.st);
	if (moved)
		rg_info("grant prefixes changed to /%u and /%u: %u entries moved to their new keys",
			d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix, moved);
	if (dropped)
		rg_warn("grant prefixes changed from /%u and /%u to /%u and /%u: %u grants and denies keyed by the shorter prefix removed (a key no longer holds the client's address; users get a new grant at their next login)",
			old4, old6, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix, dropped);
	d->wk.have_prev = false; /* keys moved: no "removed outside" noise */
}

/* rg_config: reject mode and grant key prefixes. */
static int apply_gate_config(struct daemon *d, const struct rg_config_file *c)
{
	struct rg_config gc;
	bool prefix_changed;
	int r;

	r = rg_config_read(&d->gate, &gc);
	if (r)
		return r;
	{
		struct rg_config want = gc;

		want.flags = c->gate.reject_rst ? gc.flags | RG_CFG_REJECT_RST : gc.flags & ~RG_CFG_REJECT_RST;
		want.v4_prefix = c->grants.ipv4_prefix;
		want.v6_prefix = c->grants.ipv6_prefix;
		if (!memcmp(&want, &gc, sizeof(gc))) {
			d->gate.cfg = gc;
			return 0;
		}
		prefix_changed = want.v4_prefix != gc.v4_prefix || want.v6_prefix != gc.v6_prefix;
		r = rg_config_write(&d->gate, &want);
		if (r)
			return r;
	}
	if (prefix_changed)
		rekey_maps(d, gc.v4_prefix, gc.v6_prefix);
	return 0;
}

/* v (n of *cap elements used) with room for one more: v itself, or v
 * grown (doubling, from 256) with *cap updated, or NULL (v unchanged). */
static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	size_t ncap;

	if (n < *cap)
		return v;
	ncap = *cap ? 2 * *cap : 256;
	v = realloc(v, ncap * size);
	if (v)
		*cap = ncap;
	return v;
}

/* What the pinned maps hold of what apply_maps changes and puts back on a
 * failure at start: the ports, the trusted subnets and the trusted
 * interfaces. */
struct maps_was {
	uint16_t *ports;
	size_t nports;
	struct rg_cidr *subnets;
	size_t nsubnets, cap;
	unsigned *ifaces;
	size_t nifaces;
};

static int was_add_subnet(const struct rg_cidr *c, void *ctx)
{
	struct maps_was *w = ctx;
	struct rg_cidr *v = grow(w->subnets, &w->cap, w->nsubnets, sizeof(*v));

	if (!v)
		return -ENOMEM;
	w->subnets = v;
	w->subnets[w->nsubnets++] = *c;
	return 0;
}

static void maps_was_free(struct maps_was *w)
{
	free(w->ports);
	free(w->subnets);
	free(w->ifaces);
	memset(w, 0, sizeof(*w));
}

static int maps_was_read(struct daemon *d, struct maps_was *w)
{
	int r;

	memset(w, 0, sizeof(*w));
	w->ports = calloc(65536, sizeof(*w->ports));
	if (!w->ports)
		r = -ENOMEM;
	else
		r = rg_ports_list(&d->gate, w->ports, 65536);
	if (r >= 0) {
		w->nports = (size_t)r;
		r = rg_trust_foreach(&d->gate, was_add_subnet, w);
	}
	if (!r) {
		w->ifaces = calloc(RG_TIFACE_MAX, sizeof(*w->ifaces));
		r = w->ifaces ? rg_tiface_list(&d->gate, w->ifaces, RG_TIFACE_MAX) : -ENOMEM;
		if (r >= 0) {
			w->nifaces = (size_t)r;
			r = 0;
		}
	}
	if (r == -ENOMEM)
		snprintf(d->gate.err, sizeof(d->gate.err), "reading the maps: out of memory");
	if (r)
		maps_was_free(w);
	return r;
}

/*
 * Apply a config to the maps: ports, trusted subnets, trusted interfaces,
 * then reject mode and prefixes (last: a prefix change moves the grants,
 * which is not taken back). On a failure the earlier steps are taken back,
 * best effort, and the error is in err: to old, on a reload; at start,
 * where there is no old config, to what the pinned maps held.
 */
static int apply_maps(struct daemon *d, const struct rg_config_file *c,
		      const struct rg_config_file *old, char *err, size_t errlen)
{
	struct maps_was was = { 0 };
	bool take_lock = d->gate.lock_fd < 0;
	int r, step = 0;

	/* Under the pin-dir lock, as relaygatectl's edits are: a `trust add`
	 * lands before this replace or after it, never in its middle. */
	if (take_lock && (r = rg_gate_lock(&d->gate))) {
		snprintf(err, errlen, "%s", d->gate.err);
		return r;
	}
	if (!old && (r = maps_was_read(d, &was))) {
		snprintf(err, errlen, "%s", d->gate.err);
		goto out;
	}
	if (old) {
		was.ports = (uint16_t *)old->gate.ports;
		was.nports = old->gate.n_ports;
		was.subnets = old->trust.subnets;
		was.nsubnets = old->trust.n_subnets;
	}
	r = rg_ports_set(&d->gate, c->gate.ports, c->gate.n_ports);
	if (r)
		goto fail;
	step = 1;
	r = rg_trust_replace(&d->gate, c->trust.subnets, c->trust.n_subnets);
	if (r)
		goto fail;
	step = 2;
	r = apply_tiface(d, c, false);
	if (r)
		goto fail;
	step = 3;
	r = apply_gate_config(d, c);
	if (r)
		goto fail;
	goto out;
fail:
	snprintf(err, errlen, "%s", d->gate.err);
	if (step >= 3 && old) {
		apply_tiface(d, old, false);
	} else if (step >= 3) {
		rg_tiface_replace(&d->gate, was.ifaces, was.nifaces);
		free(d->tiface);        /* what apply_tiface recorded is gone */
		d->tiface = NULL;
		d->ntiface = 0;
	}
	if (step >= 2)
		rg_trust_replace(&d->gate, was.subnets, was.nsubnets);
	if (step >= 1)
		rg_ports_set(&d->gate, was.ports, was.nports);
out:
	if (!old)
		maps_was_free(&was);
	if (take_lock)
		rg_gate_unlock(&d->gate);
	return r;
}

static void grants_conf(const struct rg_config_file *c, struct rg_grants_conf *gc)
{
	memset(gc, 0, sizeof(*gc));
	gc->ttl_ns = c->grants.ttl * NS_PER_SEC;
	gc->after_failures = c->deny.after_failures;
	gc->within_ns = c->deny.within * NS_PER_SEC;
	gc->deny_ttl_ns = c->deny.ttl * NS_PER_SEC;
	gc->v4_prefix = c->grants.ipv4_prefix;
	gc->v6_prefix = c->grants.ipv6_prefix;
	gc->trusted = c->trust.subnets;
	gc->ntrusted = c->trust.n_subnets;
}

/* ------------------------------------------------------------ state */

/* What a rebuild or walk that took ns counts as, for pacing: at most
 * RG_COST_MAX_NS, as a suspend or a stopped process in the middle of one
 * is not its own cost. */
#define RG_COST_MAX_NS   (5 * NS_PER_SEC)

static uint64_t pacing_cost(uint64_t ns)
{
	return ns < RG_COST_MAX_NS ? ns : RG_COST_MAX_NS;
}

/*
 * The walker. A thread of its own walks the grant and deny maps (about a
 * second at a million grants: the kernel's batch reads, the sort, the
 * comparison with the last walk), logs what changed behind our back and
 * writes the state file, so the event loop waits for none of it: logins,
 * policy queries and the control socket are served while it walks.
 *
 * Expired entries it only reports; the loop removes them (expire_some),
 * after looking each up again, so an expiry never races with the loop's
 * own renewal of the same grant. Walks are asked for by the tick (each
 * second, and a quarter-second after our own grants and denies) and take
 * at most 1/RG_WALK_SHARE of the time; a forced walk (start, exit) runs at
 * once and always writes the file.
 *
 * Locks: wk.mu guards the requests and the results (marked "mu"); wk.gate_mu
 * is held for a whole walk, and by the loop while a reload changes what a
 * walk reads (the grant prefixes, the state path) or moves keys; what
 * only walks touch is marked "gate_mu". Order: gate_mu, then mu. Without
 * the thread (none could be made) the loop walks inline, paced the same.
 */
/* A walk takes at most 1/RG_WALK_SHARE of the time: at a million grants,
 * one about every 10 s. */
#define RG_WALK_SHARE 10
#define RG_WALKER_NICE 10

struct walk_ctx {
	struct rg_gate g;                /* the maps' fds and prefixes: a private copy */
	struct rg_state cur;             /* live entries */
	struct expired exp;              /* expired ones: grants first */
	uint64_t now;
	int err;
};

static int expired_add(struct expired *e, const struct rg_addr *k)
{
	struct rg_addr *v = grow(e->keys, &e->cap, e->n, sizeof(*v));

	if (!v)
		return -ENOMEM;
	e->keys = v;
	e->keys[e->n++] = *k;
	return 0;
}

static void expired_free(struct expired *e)
{
	free(e->keys);
	memset(e, 0, sizeof(*e));
}

static int walk_grant_cb(const struct rg_addr *k, const struct rg_grant *v, void *ctx)
{
	struct walk_ctx *w = ctx;

	if (v->expires <= w->now ? expired_add(&w->exp, k) : rg_state_add_grant(&w->cur, k, v))
		w->err = -ENOMEM;
	w->exp.ngrants = w->exp.n;       /* grants are walked first */
	return w->err;
}

static int walk_deny_cb(const struct rg_addr *k, const struct rg_deny *v, void *ctx)
{
	struct walk_ctx *w = ctx;

	if (v->expires <= w->now ? expired_add(&w->exp, k) : rg_state_add_deny(&w->cur, k, v))
		w->err = -ENOMEM;
	return w->err;
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct rg_addr));
}

static int cmp_grant(const void *a, const void *b)
{
	return cmp_key(&((const struct rg_state_grant *)a)->key,
		       &((const struct rg_state_grant *)b)->key);
}

static int cmp_deny(const void *a, const void *b)
{
	return cmp_key(&((const struct rg_state_deny *)a)->key,
		       &((const struct rg_state_deny *)b)->key);
}

static bool grants_equal(const struct rg_state *a, const struct rg_state *b)
{
	size_t i;

	if (a->ngrants != b->ngrants || a->ndenies != b->ndenies)
		return false;
	for (i = 0; i < a->ngrants; i++)
		if (memcmp(&a->grants[i].key, &b->grants[i].key, sizeof(struct rg_addr)) ||
		    memcmp(&a->grants[i].v, &b->grants[i].v, sizeof(struct rg_grant)))
			return false;
	for (i = 0; i < a->ndenies; i++)
		if (memcmp(&a->denies[i].key, &b->denies[i].key, sizeof(struct rg_addr)) ||
		    memcmp(&a->denies[i].v, &b->denies[i].v, sizeof(struct rg_deny)))
			return false;
	return true;
}

/* Log what changed in the maps without us: grants and denies removed before
 * their expiry (relaygatectl grant del, deny del, or LRU eviction of a full
 * map) and ones added with relaygatectl. Both arrays sorted. */
/* Also shares what relaygatectl added or extended with the cluster (cl,
 * may be NULL). */
static void log_outside_changes(const struct rg_gate *g, const struct rg_state *prev,
				const struct rg_state *cur, uint64_t now, struct rg_cluster *cl)
{
	char a[RG_ADDRSTRLEN], u[RG_USER_LEN], t[32];
	size_t i = 0, j = 0;

	while (i < prev->ngrants || j < cur->ngrants) {
		int c = i == prev->ngrants ? 1 : j == cur->ngrants ? -1 :
			cmp_key(&prev->grants[i].key, &cur->grants[j].key);

		if (c < 0) {
			const struct rg_state_grant *e = &prev->grants[i++];

			if (e->v.expires > now)
				rg_info("revoke grant %s user=%s: removed outside relaygated (relaygatectl grant del, or evicted from a full map)",
					key_str(g, &e->key, a, sizeof(a)),
					log_user(e->v.user, u, sizeof(u)));
		} else if (c > 0) {
			const struct rg_state_grant *e = &cur->grants[j++];

			if (e->v.origin == RG_ORIGIN_CLI) {
				rg_info("grant %s user=%s source=cli ttl=%s (added with relaygatectl)",
					key_str(g, &e->key, a, sizeof(a)),
					log_user(e->v.user, u, sizeof(u)),
					dur_ns(e->v.expires - now, t, sizeof(t)));
				if (cl)
					rg_cluster_share_grant(cl, &e->key, key_plen(g, &e->key), &e->v);
			}
		} else {
			const struct rg_state_grant *e = &cur->grants[j];

			/* extended with relaygatectl grant add */
			if (cl && e->v.origin == RG_ORIGIN_CLI &&
			    e->v.expires > prev->grants[i].v.expires)
				rg_cluster_share_grant(cl, &e->key, key_plen(g, &e->key), &e->v);
			i++;
			j++;
		}
	}
	i = j = 0;
	while (i < prev->ndenies || j < cur->ndenies) {
		int c = i == prev->ndenies ? 1 : j == cur->ndenies ? -1 :
			cmp_key(&prev->denies[i].key, &cur->denies[j].key);

		if (c < 0) {
			const struct rg_state_deny *e = &prev->denies[i++];

			if (e->v.expires > now)
				rg_info("revoke deny %s: removed outside relaygated (relaygatectl deny del, or evicted from a full map)",
					key_str(g, &e->key, a, sizeof(a)));
		} else if (c > 0) {
			const struct rg_state_deny *e = &cur->denies[j++];

			if (e->v.origin == RG_ORIGIN_CLI) {
				rg_info("deny %s source=cli ttl=%s (added with relaygatectl)",
					key_str(g, &e->key, a, sizeof(a)),
					dur_ns(e->v.expires - now, t, sizeof(t)));
				if (cl)
					rg_cluster_share_deny(cl, &e->key, key_plen(g, &e->key), &e->v);
			}
		} else {
			const struct rg_state_deny *e = &cur->denies[j];

			if (cl && e->v.origin == RG_ORIGIN_CLI &&
			    e->v.expires > prev->denies[i].v.expires)
				rg_cluster_share_deny(cl, &e->key, key_plen(g, &e->key), &e->v);
			i++;
			j++;
		}
	}
}

/* The outcome of the latest state file write: an error is logged once,
 * again when it changes, and once a minute, and the walker tries again on
 * its next walk; a success after one is logged too. */
static void save_outcome(struct daemon *d, bool failed, const char *err)
{
	struct rg_state_clocks clk;

	if (!failed) {
		if (d->save_err[0]) {
			rg_info("state file %s: saved again", d->cfg.grants.state_file);
			d->save_err[0] = '\0';
		}
		return;
	}
	rg_state_clocks_now(&clk);
	if (strcmp(err, d->save_err) || clk.boot_ns - d->save_err_ns >= SAVE_ERR_REPEAT_NS) {
		rg_err("saving the state file: %s (grants will not survive a reboot until this works)",
		       err);
		snprintf(d->save_err, sizeof(d->save_err), "%s", err);
		d->save_err_ns = clk.boot_ns;
	}
}

#define DUMP_CHUNK 4096

/*
 * Every entry of an rg_addr-keyed hash map, with batch lookups: one system
 * call per DUMP_CHUNK entries instead of two per entry (a full grant map of
 * 262144 entries reads in about a tenth of a second, not over a second).
 * Entries changed meanwhile may be missed (the next walk sees them) or
 * come twice (the caller drops duplicates after sorting). 0 or -errno.
 */
static int dump_map(struct dump *b, int fd, size_t vsize, size_t *n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, o);
	const size_t ksize = sizeof(struct rg_addr);
	size_t got = 0, chunk = DUMP_CHUNK;
	bool first = true;
	__u32 batch = 0;

	if (vsize > b->vsize) {
		free(b->vals);
		b->vals = NULL;
		b->cap = 0;
		b->vsize = vsize;
	}
	for (;;) {
		__u32 cnt;
		int r;

		if (b->cap - got < chunk) {
			size_t ncap = b->cap ? b->cap * 2 : chunk;
			void *k, *v;

			while (ncap - got < chunk)
				ncap *= 2;
			k = realloc(b->keys, ncap * ksize);
			if (k)
				b->keys = k;
			v = k ? realloc(b->vals, ncap * b->vsize) : NULL;
			if (!v)
				return -ENOMEM;
			b->vals = v;
			b->cap = ncap;
		}
		cnt = (__u32)chunk;
		r = bpf_map_lookup_batch(fd, first ? NULL : &batch, &batch,
					 (char *)b->keys + got * ksize,
					 (char *)b->vals + got * vsize, &cnt, &o);
		r = r < 0 ? -errno : 0;
		if (r == -ENOSPC && !cnt && chunk < (1u << 20)) {
			chunk *= 2;      /* a bucket larger than the chunk */
			continue;
		}
		first = false;
		got += cnt;
		if (r == -ENOENT)
			break;
		if (r)
			return r;
	}
	*n = got;
	return 0;
}

/* Walk a map: batch lookups, or key by key when the kernel refuses them. */
static int walk_grants(struct walker *wk, struct walk_ctx *w)
{
	size_t n, i;
	int r;

	if (wk->no_batch)
		return rg_grant_foreach(&w->g, walk_grant_cb, w);
	r = dump_map(&wk->dump, w->g.grants_fd, sizeof(struct rg_grant), &n);
	if (r && r != -ENOMEM) {
		rg_info("batch lookups on %s: %s: reading the maps key by key", RG_MAP_GRANTS,
			strerror(-r));
		wk->no_batch = true;
		return rg_grant_foreach(&w->g, walk_grant_cb, w);
	}
	if (r)
		return r;
	for (i = 0; i < n && !w->err; i++) {
		struct rg_grant *v = (struct rg_grant *)wk->dump.vals + i;

		v->user[RG_USER_LEN - 1] = '\0';
		walk_grant_cb((struct rg_addr *)wk->dump.keys + i, v, w);
	}
	return 0;
}

static int walk_denies(struct walker *wk, struct walk_ctx *w)
{
	size_t n, i;
	int r;

	if (wk->no_batch)
		return rg_deny_foreach(&w->g, walk_deny_cb, w);
	r = dump_map(&wk->dump, w->g.deny_fd, sizeof(struct rg_deny), &n);
	if (r && r != -ENOMEM) {
		wk->no_batch = true;
		return rg_deny_foreach(&w->g, walk_deny_cb, w);
	}
	if (r)
		return r;
	for (i = 0; i < n && !w->err; i++)
		walk_deny_cb((struct rg_addr *)wk->dump.keys + i,
			     (struct rg_deny *)wk->dump.vals + i, w);
	return 0;
}

/* Sorted arrays: drop entries whose key repeats (a batch walk racing with
 * updates may return one twice). */
static void dedupe(struct rg_state *st)
{
	size_t i, o;

	for (i = o = 0; i < st->ngrants; i++)
		if (!o || cmp_key(&st->grants[o - 1].key, &st->grants[i].key))
			st->grants[o++] = st->grants[i];
	st->ngrants = o;
	for (i = o = 0; i < st->ndenies; i++)
		if (!o || cmp_key(&st->denies[o - 1].key, &st->denies[i].key))
			st->denies[o++] = st->denies[i];
	st->ndenies = o;
}

/* Which maps g's are, for the state file's "maps" line (none when either
 * id is unknown). */
static void maps_ident(const char *boot_id, const struct rg_gate *g, struct rg_state_maps *m)
{
	memset(m, 0, sizeof(*m));
	m->grants_id = rg_map_id(g->grants_fd);
	m->deny_id = rg_map_id(g->deny_fd);
	m->v4_prefix = g->cfg.v4_prefix;
	m->v6_prefix = g->cfg.v6_prefix;
	if (boot_id[0] && m->grants_id && m->deny_id && m->v4_prefix && m->v6_prefix)
		memcpy(m->boot_id, boot_id, sizeof(m->boot_id));
}

/* Both maps into w (gate_mu held), with a private copy of the gate's fds
 * and prefixes: 0, or the first map's error. */
static int walk_maps(struct walker *wk, struct walk_ctx *w)
{
	struct daemon *d = wk->d;
	int r;

	w->g.grants_fd = d->gate.grants_fd;
	w->g.deny_fd = d->gate.deny_fd;
	w->g.cfg = d->gate.cfg;
	maps_ident(d->boot_id, &w->g, &w->cur.maps);
	r = walk_grants(wk, w);
	return r ? r : walk_denies(wk, w);
}

/*
 * One walk (gate_mu held): read both maps and log changes from outside.
 * Returns whether the state file is due (anything changed since the last
 * write that worked, or force) with its path in path; wk->prev is then
 * what to write. The expired entries and a walk error go to the loop.
 */
static bool walk_once(struct walker *wk, bool force, char *path, size_t pathlen)
{
	struct daemon *d = wk->d;
	struct walk_ctx w = { .now = rg_now_ns() };
	bool save = false;
	int r;

	r = walk_maps(wk, &w);
	if (r || w.err) {
		rg_state_free(&w.cur);
		expired_free(&w.exp);
		pthread_mutex_lock(&wk->mu);
		snprintf(wk->walk_err, sizeof(wk->walk_err), "%s",
			 w.err ? strerror(-w.err) : r < 0 ? strerror(-r) : w.g.err);
		pthread_mutex_unlock(&wk->mu);
		return false;
	}
	if (w.cur.ngrants)
		qsort(w.cur.grants, w.cur.ngrants, sizeof(*w.cur.grants), cmp_grant);
	if (w.cur.ndenies)
		qsort(w.cur.denies, w.cur.ndenies, sizeof(*w.cur.denies), cmp_deny);
	dedupe(&w.cur);
	if (!wk->have_prev || !grants_equal(&wk->prev, &w.cur)) {
		if (wk->have_prev)
			log_outside_changes(&w.g, &wk->prev, &w.cur, w.now, d->cluster);
		wk->save_pending = true;
	}
	if (wk->save_pending || force) {
		/* cleared now: a reload meanwhile sets it again */
		wk->save_pending = false;
		snprintf(path, pathlen, "%s", d->cfg.grants.state_file);
		save = true;
	}
	rg_state_free(&wk->prev);
	wk->prev = w.cur;
	wk->have_prev = true;
	/* A newer walk's list replaces one the loop has not taken. */
	pthread_mutex_lock(&wk->mu);
	expired_free(&wk->expired);
	wk->expired = w.exp;
	wk->have_expired = true;
	pthread_mutex_unlock(&wk->mu);
	return save;
}

/*
 * A walk (under gate_mu), then the state file's write (not under it: a
 * reload does not wait for the write and its fsyncs). The walk alone is
 * timed, for pacing and relaygate_map_walk_seconds.
 */
static void walk_timed(struct walker *wk, bool force)
{
	struct rg_state_clocks clk;
	char path[PATH_MAX], err[512] = "";
	uint64_t t0, took;
	bool save;
	int r;

	pthread_mutex_lock(&wk->gate_mu);
	t0 = rg_now_ns();
	save = walk_once(wk, force, path, sizeof(path));
	took = rg_now_ns() - t0;
	pthread_mutex_unlock(&wk->gate_mu);
	pthread_mutex_lock(&wk->mu);
	wk->walk_at = t0;
	wk->walk_cost = pacing_cost(took);
	wk->walk_ns = took;
	pthread_mutex_unlock(&wk->mu);
	if (!save)
		return;
	/* wk->prev: only walks, in this thread, change it */
	rg_state_clocks_now(&clk);
	r = rg_state_save(path, &wk->prev, &clk, err, sizeof(err));
	if (r) {
		pthread_mutex_lock(&wk->gate_mu);
		wk->save_pending = true;
		pthread_mutex_unlock(&wk->gate_mu);
	}
	pthread_mutex_lock(&wk->mu);
	if (r) {
		wk->save_errors++;
		snprintf(wk->save_err, sizeof(wk->save_err), "%s", err);
	} else {
		wk->saves++;
	}
	wk->last_failed = r != 0;
	pthread_mutex_unlock(&wk->mu);
}

/* ns until pacing allows the next walk (mu held): 0 now. */
static uint64_t walk_wait(const struct walker *wk)
{
	uint64_t now = rg_now_ns(), next = wk->walk_at + RG_WALK_SHARE * wk->walk_cost;

	return wk->walk_cost && now < next ? next - now : 0;
}

static void *walker_main(void *arg)
{
	struct walker *wk = arg;

	/* Background work: where it competes for a CPU, the loop goes
	 * first (nice applies per thread on Linux). */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), RG_WALKER_NICE))
		rg_debug("walker: setpriority: %s", strerror(errno));
	pthread_mutex_lock(&wk->mu);
	while (!wk->stop) {
		uint64_t asked, wait;
		bool force;

		if (wk->done == wk->asked) {
			pthread_cond_wait(&wk->cv, &wk->mu);
			continue;
		}
		wait = walk_wait(wk);
		if (wait && !wk->force) {
			struct timespec ts;
			uint64_t at;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			at = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec + wait;
			ts.tv_sec = (time_t)(at / NS_PER_SEC);
			ts.tv_nsec = (long)(at % NS_PER_SEC);
			pthread_cond_timedwait(&wk->cv, &wk->mu, &ts);
			continue;
		}
		asked = wk->asked;
		force = wk->force;
		wk->force = false;
		pthread_mutex_unlock(&wk->mu);
		walk_timed(wk, force);
		pthread_mutex_lock(&wk->mu);
		wk->done = asked;
		pthread_cond_broadcast(&wk->cv);
		if (wk->efd >= 0 && eventfd_write(wk->efd, 1))
			rg_warn("walker: eventfd: %s", strerror(errno));
	}
	pthread_mutex_unlock(&wk->mu);
	return NULL;
}

/* Locks, at daemon start (before any config). */
static void walker_init(struct daemon *d)
{
	struct walker *wk = &d->wk;
	pthread_condattr_t ca;

	wk->d = d;
	wk->efd = -1;
	pthread_mutex_init(&wk->mu, NULL);
	pthread_mutex_init(&wk->gate_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&wk->cv, &ca);
	pthread_condattr_destroy(&ca);
}

/* The thread; without it the loop walks inline. */
static void walker_start(struct daemon *d)
{
	if (pthread_create(&d->wk.th, NULL, walker_main, &d->wk)) {
		rg_warn("map walker: no thread; the event loop walks the maps itself");
		return;
	}
	d->wk.threaded = true;
}

/* The expired entries and the outcomes of the walks since the last call. */
static void walker_poll(struct daemon *d)
{
	struct walker *wk = &d->wk;
	struct expired exp = { 0 };
	bool have_exp;
	uint64_t saves, errors;
	bool last_failed;
	char err[512], werr[256];
	uint64_t v;

	if (wk->efd >= 0 && eventfd_read(wk->efd, &v) && errno != EAGAIN)
		rg_warn("walker: eventfd: %s", strerror(errno));
	pthread_mutex_lock(&wk->mu);
	saves = wk->saves;
	errors = wk->save_errors;
	last_failed = wk->last_failed;
	wk->saves = wk->save_errors = 0;
	memcpy(err, wk->save_err, sizeof(err));
	memcpy(werr, wk->walk_err, sizeof(werr));
	wk->walk_err[0] = '\0';
	d->st.walk_ns = wk->walk_ns;
	have_exp = wk->have_expired;
	if (have_exp) {
		exp = wk->expired;
		memset(&wk->expired, 0, sizeof(wk->expired));
		wk->have_expired = false;
	}
	pthread_mutex_unlock(&wk->mu);
	d->st.state_saves += saves;
	d->st.state_save_errors += errors;
	if (errors)
		save_outcome(d, true, err);
	if (saves && !last_failed)
		save_outcome(d, false, NULL);
	if (werr[0] && rl_take(&d->reject_rl))
		rg_warn("walking the grant maps: %s", werr);
	if (have_exp) {
		/* the newest list: what an older one still held and is still
		 * expired is on it again */
		expired_free(&d->expq);
		d->expq = exp;
		d->exp_at = 0;
	}
}

/*
 * Ask for a walk; wait: until one asked for now has finished. A forced
 * walk runs at once and writes the state file. False: put off (inline
 * walks only; the thread paces the walks it is asked for itself).
 */
static bool walker_ask(struct daemon *d, bool force, bool wait)
{
	struct walker *wk = &d->wk;
	uint64_t mine;

	if (!d->gate_open)
		return true;
	if (!wk->threaded) {
		if (!force && walk_wait(wk))
			return false;
		walk_timed(wk, force);
		walker_poll(d);
		return true;
	}
	pthread_mutex_lock(&wk->mu);
	mine = ++wk->asked;
	wk->force |= force;
	pthread_cond_broadcast(&wk->cv);
	while (wait && wk->done < mine)
		pthread_cond_wait(&wk->cv, &wk->mu);
	pthread_mutex_unlock(&wk->mu);
	if (wait)
		walker_poll(d);
	return true;
}

/* End the thread (after its walk in progress) and free what walks kept. */
static void walker_stop(struct daemon *d)
{
	struct walker *wk = &d->wk;

	if (wk->threaded) {
		pthread_mutex_lock(&wk->mu);
		wk->stop = true;
		pthread_cond_broadcast(&wk->cv);
		pthread_mutex_unlock(&wk->mu);
		pthread_join(wk->th, NULL);
		wk->threaded = false;
	}
	walker_poll(d);
	expired_free(&wk->expired);
	pthread_mutex_lock(&wk->gate_mu);       /* cluster_snapshot reads dump */
	rg_state_free(&wk->prev);
	wk->have_prev = false;
	free(wk->dump.keys);
	free(wk->dump.vals);
	memset(&wk->dump, 0, sizeof(wk->dump));
	pthread_mutex_unlock(&wk->gate_mu);
}

/*
 * Remove up to budget of the entries the walker saw expired, each looked
 * up again first: a login, or relaygatectl, may have renewed it since.
 * While some are left (expiring()), the loop comes back after its next
 * round of events.
 */
#define EXPIRE_SLICE 256

static bool expiring(const struct daemon *d)
{
	return d->exp_at < d->expq.n;
}

static void expire_some(struct daemon *d, size_t budget)
{
	struct expired *q = &d->expq;
	char a[RG_ADDRSTRLEN], u[RG_USER_LEN];
	uint64_t now = rg_now_ns();

	for (; budget && d->exp_at < q->n; budget--) {
		const struct rg_addr *k = &q->keys[d->exp_at++];
		union {
			struct rg_grant g;
			struct rg_deny d;
		} v;

		if (d->exp_at <= q->ngrants) {
			if (bpf_map_lookup_elem(d->gate.grants_fd, k, &v.g) || v.g.expires > now ||
			    bpf_map_delete_elem(d->gate.grants_fd, k))
				continue;
			v.g.user[RG_USER_LEN - 1] = '\0';
			d->st.expired_grants++;
			rg_info("expire grant %s user=%s service=%s origin=%s",
				key_str(&d->gate, k, a, sizeof(a)), log_user(v.g.user, u, sizeof(u)),
				rg_service_name(v.g.service), rg_origin_name(v.g.origin));
		} else {
			if (bpf_map_lookup_elem(d->gate.deny_fd, k, &v.d) || v.d.expires > now ||
			    bpf_map_delete_elem(d->gate.deny_fd, k))
				continue;
			d->st.expired_denies++;
			rg_info("expire deny %s failures=%u origin=%s", key_str(&d->gate, k, a, sizeof(a)),
				v.d.failures, rg_origin_name(v.d.origin));
		}
	}
	if (!expiring(d)) {
		expired_free(q);
		d->exp_at = 0;
	}
}

/* Grants and denies of the state file back into the maps (after a reboot,
 * or a purge), never shortening what the pinned maps hold. */
static void restore_state(struct daemon *d)
{
	const char *path = d->cfg.grants.state_file;
	struct rg_state_clocks clk;
	struct rg_state_maps cur;
	struct rg_state st = { 0 };
	bool same, same_g, same_d;
	unsigned put_g = 0, put_d = 0, kept = 0, failed = 0, narrow = 0;
	char err[512], a[RG_ADDRSTRLEN];
	size_t i;
	int r;

	rg_state_clocks_now(&clk);
	r = rg_state_load(path, &clk, &st, err, sizeof(err));
	if (r == -ENOENT) {
		rg_info("state file %s: none yet", path);
		rg_state_free(&st);
		return;
	}
	if (r) {
		rg_warn("state file: %s; starting with what the maps hold", err);
		rg_state_free(&st);
		return;
	}
	/* Written from these very maps (same boot, same map ids): they hold
	 * everything the file does, unless it was deleted since, while we
	 * were stopped (`grant del --user` of a stolen account): that stays
	 * deleted. The file is for maps made anew (a reboot, a purge). */
	maps_ident(d->boot_id, &d->gate, &cur);
	same = cur.boot_id[0] && !strcmp(cur.boot_id, st.maps.boot_id);
	same_g = same && cur.grants_id == st.maps.grants_id;
	same_d = same && cur.deny_id == st.maps.deny_id;
	if (same_g || same_d)
		rg_info("state file %s: written from the %s the gate still has: %s kept as %s (%zu grants and %zu denies in the file)",
			path, same_g && same_d ? "grant and deny maps" : same_g ? "grant map" : "deny map",
			same_g && same_d ? "they are" : "it is", same_g && same_d ? "they are" : "it is",
			st.ngrants, st.ndenies);
	for (i = 0; !same_g && i < st.ngrants; i++) {
		struct rg_state_grant *e = &st.grants[i];
		struct rg_addr k = e->key;
		struct rg_grant old;

		if (st.maps.boot_id[0] && narrowed(&k, st.maps.v4_prefix, st.maps.v6_prefix,
						   &d->gate.cfg)) {
			narrow++;
			continue;
		}
		rg_addr_key(&k, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
		/* The file rounds expiries up to the second: a map entry less
		 * than a second shorter is the same one, not to be extended
		 * (else each restart would add up to a second). */
		if (!bpf_map_lookup_elem(d->gate.grants_fd, &k, &old) &&
		    old.expires + NS_PER_SEC >= e->v.expires) {
			kept++;
			continue;
		}
		if (rg_grant_put_abs(&d->gate, &k, &e->v)) {
			if (failed++ < 5)
				rg_warn("restoring grant %s: %s", rg_addr_str(&k, a, sizeof(a)), d->gate.err);
			continue;
		}
		put_g++;
	}
	for (i = 0; !same_d && i < st.ndenies; i++) {
		struct rg_state_deny *e = &st.denies[i];
		struct rg_addr k = e->key;
		struct rg_deny old;
		uint64_t now = rg_now_ns();

		if (st.maps.boot_id[0] && narrowed(&k, st.maps.v4_prefix, st.maps.v6_prefix,
						   &d->gate.cfg)) {
			narrow++;
			continue;
		}
		rg_addr_key(&k, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
		if (e->v.expires <= now ||
		    (!bpf_map_lookup_elem(d->gate.deny_fd, &k, &old) &&
		     old.expires + NS_PER_SEC >= e->v.expires)) {
			kept++;
			continue;
		}
		if (rg_deny_put(&d->gate, &k, e->v.expires - now, e->v.origin, e->v.failures)) {
			if (failed++ < 5)
				rg_warn("restoring deny %s: %s", rg_addr_str(&k, a, sizeof(a)), d->gate.err);
			continue;
		}
		put_d++;
	}
	if (!same_g || !same_d)
		rg_info("state file %s: restored %u grants and %u denies (%u already in the maps, %u expired, %u corrupt lines, %u failed)",
			path, put_g, put_d, kept, st.expired, st.bad, failed);
	if (narrow)
		rg_warn("state file %s: %u grants and denies keyed by /%u and /%u not restored: the prefixes are /%u and /%u now, and a shorter key does not hold the client's address",
			path, narrow, st.maps.v4_prefix, st.maps.v6_prefix, d->gate.cfg.v4_prefix,
			d->gate.cfg.v6_prefix);
	rg_state_free(&st);
}

/* ------------------------------------------------------------ cluster */

/*
 * [cluster]: the thread (cluster.c) talks to Redis; the loop writes what
 * other hosts sent into the maps, as it writes everything else, so a
 * cluster entry and a local login for the same key never race.
 */
#define CLUSTER_SLICE 256        /* entries written per turn of the loop */
#define CLUSTER_STOP_MS 3000     /* at exit: how long the cluster thread may take */

/* The cluster thread, on each connect: every live entry of the maps, read
 * as a walk reads them (under gate_mu: a reload may reopen the maps). */
static int cluster_snapshot(void *ctx, struct rg_state *st, unsigned *v4_prefix,
			    unsigned *v6_prefix)
{
	struct daemon *d = ctx;
	struct walk_ctx w = { .now = rg_now_ns() };
	int r;

	pthread_mutex_lock(&d->wk.gate_mu);
	if (d->wk.closing) {
		pthread_mutex_unlock(&d->wk.gate_mu);
		return -ECANCELED;
	}
	r = walk_maps(&d->wk, &w);
	*v4_prefix = w.g.cfg.v4_prefix;
	*v6_prefix = w.g.cfg.v6_prefix;
	pthread_mutex_unlock(&d->wk.gate_mu);
	expired_free(&w.exp);
	if (r || w.err) {
		rg_state_free(&w.cur);
		return r < 0 ? r : w.err ? w.err : -EIO;
	}
	*st = w.cur;
	return 0;
}

/* One entry from another host (or read back from Redis) into the maps. */
static void cluster_put(struct daemon *d, const struct rg_cluster_entry *e)
{
	struct rg_addr k = e->key;
	uint64_t now = rg_now_ns();
	char a[RG_ADDRSTRLEN], u[RG_USER_LEN], t[32];
	unsigned own = key_plen(&d->gate, &k);
	bool had;
	int r;

	/* Keyed wider than here: a /24 sent to a /32 host would admit the
	 * network's first address only (and a deny would miss the rest). */
	if (e->plen < own) {
		d->st.cluster_prefix++;
		if (rl_take(&d->reject_rl))
			rg_warn("cluster: %s %s/%u from %s not applied: this host keys /%u ([grants] ipv4_prefix and ipv6_prefix should be the same on every host)",
				e->deny ? "deny" : "grant", rg_addr_str(&k, a, sizeof(a)),
				e->plen, e->host[0] ? e->host : "redis", own);
		return;
	}
	rg_addr_key(&k, d->gate.cfg.v4_prefix, d->gate.cfg.v6_prefix);
	if (!e->deny) {
		struct rg_grant old, v = e->g;

		had = !bpf_map_lookup_elem(d->gate.grants_fd, &k, &old) && old.expires > now;
		/* An expiry travels rounded up to the second: less than a
		 * second more is the same grant (our own, read back), kept
		 * with its source. */
		if ((had && old.expires + NS_PER_SEC >= v.expires) || v.expires <= now) {
			d->st.cluster_kept++;
			return;
		}
		v.origin = RG_ORIGIN_CLUSTER;
		r = rg_grant_put_abs(&d->gate, &k, &v);
		if (!r && !had && e->live && rl_take(&d->cluster_rl))
			rg_info("grant %s user=%s source=cluster host=%s ttl=%s",
				key_str(&d->gate, &k, a, sizeof(a)), log_user(v.user, u, sizeof(u)),
				e->host, dur_ns(v.expires - now, t, sizeof(t)));
	} else {
		struct rg_deny old;
		bool v4 = k.family == RG_AF_INET;

		had = !bpf_map_lookup_elem(d->gate.deny_fd, &k, &old) && old.expires > now;
		if ((had && old.expires + NS_PER_SEC >= e->d.expires) || e->d.expires <= now) {
			d->st.cluster_kept++;
			return;
		}
		r = rg_grants_overlaps_trusted(d->grants, &k, v4 ? d->gate.cfg.v4_prefix :
					       d->gate.cfg.v6_prefix);
		if (r) {
			if (r > 0 && e->live && rl_take(&d->reject_rl))
				rg_info("not denying %s (sent by %s): it overlaps a trusted subnet here",
					key_str(&d->gate, &k, a, sizeof(a)), e->host);
			d->st.cluster_trusted += r > 0;
			d->st.cluster_errors += r < 0;
			return;
		}
		r = rg_deny_put(&d->gate, &k, e->d.expires - now, RG_ORIGIN_CLUSTER, e->d.failures);
		if (!r && !had && e->live && rl_take(&d->cluster_rl))
			rg_info("deny %s source=cluster host=%s ttl=%s",
				key_str(&d->gate, &k, a, sizeof(a)), e->host,
				dur_ns(e->d.expires - now, t, sizeof(t)));
	}
	if (r) {
		d->st.cluster_errors++;
		if (rl_take(&d->reject_rl))
			rg_warn("cluster: %s %s: %s", e->deny ? "deny" : "grant",
				key_str(&d->gate, &k, a, sizeof(a)), d->gate.err);
		return;
	}
	d->st.cluster_applied++;
	d->changed = true;
}

/* Entries waiting from the cluster thread: a slice per turn (the eventfd
 * stays readable while more wait). */
static void cluster_poll(struct daemon *d)
{
	struct rg_cluster_entry e[64];
	size_t n, i, done = 0;

	while (d->cluster && done < CLUSTER_SLICE &&
	       (n = rg_cluster_take(d->cluster, e, sizeof(e) / sizeof(e[0])))) {
		for (i = 0; i < n; i++)
			cluster_put(d, &e[i]);
		done += n;
	}
}

/* Start, keep or stop the cluster for config c (start and reload; a
 * replaced one waits in cluster_old until gate_mu is let go: its thread
 * may be waiting for it in cluster_snapshot). */
static void cluster_configure(struct daemon *d, const struct rg_config_file *c,
			      const struct rg_config_file *old)
{
	struct rg_cluster_hooks h = { .snapshot = cluster_snapshot, .ctx = d };
	struct rg_cluster *cl = NULL;
	char err[256];

	if (d->cluster && old && !strcmp(old->cluster.redis, c->cluster.redis))
		return;
	if (c->cluster.redis[0] && rg_cluster_new(&cl, c, &h, err, sizeof(err)))
		rg_err("%s; working without the cluster", err);
	if (d->cluster) {
		ep_del(d, rg_cluster_fd(d->cluster));
		rg_info("cluster: leaving %s", rg_cluster_where(d->cluster));
	}
	if (cl && ep_add(d, rg_cluster_fd(cl), &d->h_cluster))
		rg_err("cluster: epoll: %s", strerror(errno));
	if (cl)
		rg_info("cluster: sharing grants and denies through %s", rg_cluster_where(cl));
	d->cluster_old = d->cluster;
	d->cluster = cl;
}

/* ------------------------------------------------------------ metrics */

static void render(struct rg_mbuf *b, void *ctx)
{
	struct daemon *d = ctx;
	struct dstats s;
	size_t i, nap = 0;

	bool gate_open;

	/* The gate's fds stay open while this server runs (it is stopped
	 * first at exit); counting map entries walks the maps, which is not
	 * done under the lock the main loop takes. */
	pthread_mutex_lock(&d->lock);
	gate_open = d->gate_open;
	pthread_mutex_unlock(&d->lock);
	if (gate_open)
		rg_metrics_render_gate(b, &d->gate);

	pthread_mutex_lock(&d->lock);
	s = d->shown;
	if (d->grants)
		rg_grants_metrics(d->grants, b);
	if (d->control)
		rg_control_metrics(d->control, b);

	/* Several push sources share one family: rendered here, not by
	 * rg_authpolicy_metrics (which writes the family header each call). */
	for (i = 0; i < d->nsrc; i++)
		nap += d->src[i]->ap != NULL;
	if (nap) {
		static const char n[] = "relaygate_authpolicy_requests_total";

		rg_metric_family(b, n, "counter", "Dovecot auth policy requests, by result.");
		for (i = 0; i < d->nsrc; i++) {
			struct rg_authpolicy_stats a;
			const char *src = d->src[i]->name;

			if (!d->src[i]->ap)
				continue;
			rg_authpolicy_get_stats(d->src[i]->ap, &a);
			rg_metric_u64_l2(b, n, "source", src, "result", "allow", a.allow);
			rg_metric_u64_l2(b, n, "source", src, "result", "login", a.logins);
			rg_metric_u64_l2(b, n, "source", src, "result", "failure", a.failures);
			rg_metric_u64_l2(b, n, "source", src, "result", "ignored", a.ignored);
			rg_metric_u64_l2(b, n, "source", src, "result", "bad_request", a.bad);
			rg_metric_u64_l2(b, n, "source", src, "result", "unauthorized", a.unauthorized);
			rg_metric_u64_l2(b, n, "source", src, "result", "queue_full", a.queue_full);
		}
	}

	rg_metric_family(b, "relaygate_source_lines_total", "counter",
			 "Log lines read, by source.");
	for (i = 0; i < d->nsrc; i++)
		if (d->src[i]->follow)
			rg_metric_u64_l1(b, "relaygate_source_lines_total", "source", d->src[i]->name,
					 d->src[i]->fst.lines);
	rg_metric_family(b, "relaygate_source_events_parsed_total", "counter",
			 "Login and failure events parsed from log lines, by source and kind.");
	for (i = 0; i < d->nsrc; i++) {
		if (!d->src[i]->preset)
			continue;
		rg_metric_u64_l2(b, "relaygate_source_events_parsed_total", "source", d->src[i]->name,
				 "kind", "login", d->src[i]->pst.logins);
		rg_metric_u64_l2(b, "relaygate_source_events_parsed_total", "source", d->src[i]->name,
				 "kind", "failure", d->src[i]->pst.failures);
	}
	rg_metric_family(b, "relaygate_source_lines_rejected_total", "counter",
			 "Log lines that looked like a login but could not be used, by source.");
	for (i = 0; i < d->nsrc; i++)
		if (d->src[i]->preset)
			rg_metric_u64_l1(b, "relaygate_source_lines_rejected_total", "source",
					 d->src[i]->name, d->src[i]->pst.rejected);
	rg_metric_family(b, "relaygate_source_lines_skipped_total", "counter",
			 "Log lines skipped: longer than the limit, or cut by a truncation or rotation.");
	for (i = 0; i < d->nsrc; i++)
		if (d->src[i]->follow)
			rg_metric_u64_l1(b, "relaygate_source_lines_skipped_total", "source",
					 d->src[i]->name, d->src[i]->fst.too_long + d->src[i]->fst.cut);
	rg_metric_family(b, "relaygate_source_rotations_total", "counter",
			 "Log rotations (rename, replace, truncate) seen, by source.");
	for (i = 0; i < d->nsrc; i++)
		if (d->src[i]->follow)
			rg_metric_u64_l1(b, "relaygate_source_rotations_total", "source",
					 d->src[i]->name, d->src[i]->fst.rotations);
	rg_metric_family(b, "relaygate_source_lag_bytes", "gauge",
			 "Bytes written to a source's log and not read yet.");
	for (i = 0; i < d->nsrc; i++)
		if (d->src[i]->follow)
			rg_metric_u64_l1(b, "relaygate_source_lag_bytes", "source", d->src[i]->name,
					 d->src[i]->fst.lag);
	pthread_mutex_unlock(&d->lock);

	rg_metric_one(b, "relaygate_drop_events_total", "counter",
		      "Drop events read from the gate's ring buffer.", s.drop_events);
	rg_metric_one(b, "relaygate_drop_events_log_suppressed_total", "counter",
		      "Drop events not logged (over the log rate limit).", s.drop_log_suppressed);
	rg_metric_family(b, "relaygate_expired_total", "counter",
			 "Grants and denies removed at their expiry.");
	rg_metric_u64_l1(b, "relaygate_expired_total", "map", "grants", s.expired_grants);
	rg_metric_u64_l1(b, "relaygate_expired_total", "map", "deny", s.expired_denies);
	rg_metric_family(b, "relaygate_summary_rebuilds_total", "counter",
			 "Rebuilds of the summary prefilter, by result.");
	rg_metric_u64_l1(b, "relaygate_summary_rebuilds_total", "result", "ok",
			 s.sum_rebuilds - s.sum_rebuild_errors);
	rg_metric_u64_l1(b, "relaygate_summary_rebuilds_total", "result", "error",
			 s.sum_rebuild_errors);
	rg_metric_family(b, "relaygate_summary_rebuild_seconds", "gauge",
			 "How long the last summary rebuild took.");
	rg_metric_f(b, "relaygate_summary_rebuild_seconds", s.sum_rebuild_ns / 1e9);
	rg_metric_family(b, "relaygate_map_walk_seconds", "gauge",
			 "How long the last walk of the grant and deny maps took (reading them, expiries found, changes from outside; not the state file's write).");
	rg_metric_f(b, "relaygate_map_walk_seconds", s.walk_ns / 1e9);
	rg_metric_family(b, "relaygate_state_saves_total", "counter",
			 "State file writes, by result.");
	rg_metric_u64_l1(b, "relaygate_state_saves_total", "result", "ok", s.state_saves);
	rg_metric_u64_l1(b, "relaygate_state_saves_total", "result", "error", s.state_save_errors);
	rg_metric_family(b, "relaygate_reloads_total", "counter",
			 "Configuration reloads (SIGHUP), by result.");
	rg_metric_u64_l1(b, "relaygate_reloads_total", "result", "ok", s.reloads);
	rg_metric_u64_l1(b, "relaygate_reloads_total", "result", "error", s.reload_errors);
	rg_metric_one(b, "relaygate_push_events_dropped_total", "counter",
		      "Pushed auth events lost because the daemon's queue was full.",
		      s.evq_dropped);
	if (s.cluster_on) {
		const char *n = "relaygate_cluster_entries_total";

		rg_metric_one(b, "relaygate_cluster_up", "gauge",
			      "1 while connected to the cluster's Redis, else 0.", s.cluster.up);
		rg_metric_one(b, "relaygate_cluster_connects_total", "counter",
			      "Connections to Redis that worked (each reads and pushes everything).",
			      s.cluster.connects);
		rg_metric_one(b, "relaygate_cluster_errors_total", "counter",
			      "Failed connects, failed commands and lost connections to Redis.",
			      s.cluster.errors);
		rg_metric_family(b, n, "counter",
				 "Cluster entries: published (local, extending Redis), received (from other hosts or read back), applied (written into the maps), kept (the maps held as long or longer), trusted (denies not applied: a trusted subnet here), prefix (not applied: keyed wider than this host keys), rejected (malformed), dropped (local, queue full), failed (map writes).");
		rg_metric_u64_l1(b, n, "result", "published", s.cluster.published);
		rg_metric_u64_l1(b, n, "result", "received", s.cluster.received);
		rg_metric_u64_l1(b, n, "result", "applied", s.cluster_applied);
		rg_metric_u64_l1(b, n, "result", "kept", s.cluster_kept);
		rg_metric_u64_l1(b, n, "result", "trusted", s.cluster_trusted);
		rg_metric_u64_l1(b, n, "result", "prefix", s.cluster_prefix);
		rg_metric_u64_l1(b, n, "result", "rejected", s.cluster.rejected);
		rg_metric_u64_l1(b, n, "result", "dropped", s.cluster.dropped);
		rg_metric_u64_l1(b, n, "result", "failed", s.cluster_errors);
	}
	if (s.policy_on) {
		static const char n[] = "relaygate_policy_requests_total";

		rg_metric_family(b, n, "counter", "Postfix policy requests, by answer.");
		rg_metric_u64_l1(b, n, "answer", "ok", s.policy.ok);
		rg_metric_u64_l1(b, n, "answer", "dunno", s.policy.dunno);
		rg_metric_u64_l1(b, n, "answer", "reject", s.policy.reject);
		rg_metric_u64_l1(b, n, "answer", "malformed", s.policy.malformed);
		rg_metric_u64_l1(b, n, "answer", "lookup_error", s.policy.lookup_errors);
		rg_metric_family(b, "relaygate_policy_connections_total", "counter",
				 "Postfix policy connections, by how they ended or began.");
		rg_metric_u64_l1(b, "relaygate_policy_connections_total", "result", "accepted",
				 s.policy.accepted);
		rg_metric_u64_l1(b, "relaygate_policy_connections_total", "result", "refused",
				 s.policy.refused);
		rg_metric_u64_l1(b, "relaygate_policy_connections_total", "result", "timeout",
				 s.policy.timeouts);
		rg_metric_u64_l1(b, "relaygate_policy_connections_total", "result", "idle_closed",
				 s.policy.idle_closed);
		rg_metric_one(b, "relaygate_policy_connections", "gauge",
			      "Postfix policy connections open now.", s.policy.connections);
	}
}

/* Copy counters for /metrics (main thread). */
static void snapshot(struct daemon *d)
{
	size_t i;

	d->st.evq_dropped = d->evq ? rg_evqueue_dropped(d->evq) : 0;
	d->st.policy_on = d->policy != NULL;
	if (d->policy)
		rg_policy_stats(d->policy, &d->st.policy);
	d->st.cluster_on = d->cluster != NULL;
	if (d->cluster)
		rg_cluster_get_stats(d->cluster, &d->st.cluster);
	pthread_mutex_lock(&d->lock);
	d->shown = d->st;
	for (i = 0; i < d->nsrc; i++)
		source_snapshot(d->src[i]);
	pthread_mutex_unlock(&d->lock);
}

/* ------------------------------------------------------------ configure */

static void prepared_free(struct daemon *d, struct prepared *p, bool only_new)
{
	size_t i;

	for (i = 0; i < p->nsrc; i++)
		if (!only_new || p->src_new[i])
			source_free(d, p->src[i]);
	free(p->src);
	free(p->src_new);
	if (!only_new || p->control_new)
		rg_control_close(p->control);
	if (!only_new || p->policy_new)
		rg_policy_free(p->policy);
	if (!only_new || p->sl != d->sl)
		rg_senderlogins_free(p->sl);
	if (!only_new || p->audit_new)
		rg_audit_close(p->audit);
	if (!only_new || p->metrics_new)
		rg_metrics_stop(p->metrics);
	memset(p, 0, sizeof(*p));
}

static void policy_listen_str(const struct rg_endpoint *e, char *buf, size_t len)
{
	char hp[96];

	if (e->is_unix)
		snprintf(buf, len, "unix:%s", e->path);
	else
		snprintf(buf, len, "inet:%s", endpoint_hostport(e, hp, sizeof(hp)));
}

/*
 * The files a config names, as far as they can be checked without
 * creating anything (--check-config, start, reload): the state file is a
 * regular file if it exists (its directory is made at start); the audit
 * log is a writable regular file, or can be created in an existing
 * directory. 0, or -1 with "FILE:LINE: [section] key: PATH: reason"
 * (paths cut at 300 bytes: err holds about a thousand).
 */
static int check_paths(const struct rg_config_file *c, char *err, size_t errlen)
{
	const char *sf = c->grants.state_file, *al = c->policy.audit_log, *why = NULL;
	char at[PATH_MAX + 32], dir[PATH_MAX];
	struct stat st;

	if (!stat(sf, &st) && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%.300s[grants] state_file: %.300s: not a regular file%s",
			 key_at(c, c->grants.state_file_line, at, sizeof(at)), sf,
			 S_ISDIR(st.st_mode) ? " (a directory: name a file in it)" : "");
		return -1;
	}
	if (!c->policy.listen.set || !al[0])
		return 0;
	if (!stat(al, &st)) {
		if (!S_ISREG(st.st_mode) || access(al, W_OK)) {
			snprintf(err, errlen, "%.300s[policy] audit_log: %.300s: %s",
				 key_at(c, c->policy.audit_log_line, at, sizeof(at)), al,
				 !S_ISREG(st.st_mode) ? "not a regular file" : strerror(errno));
			return -1;
		}
		return 0;
	}
	state_dir(al, dir, sizeof(dir));
	if (stat(dir, &st))
		why = strerror(errno);
	else if (!S_ISDIR(st.st_mode))
		why = "not a directory";
	else if (access(dir, W_OK | X_OK))
		why = strerror(errno);
	if (why) {
		snprintf(err, errlen, "%.300s[policy] audit_log: %.300s: directory %.300s: %s",
			 key_at(c, c->policy.audit_log_line, at, sizeof(at)), al, dir, why);
		return -1;
	}
	return 0;
}

/*
 * Make what config c needs and d does not have yet; reuse what is unchanged.
 * Changes nothing of d. 0, or -1 with err (and everything made freed).
 */
static int prepare(struct daemon *d, const struct rg_config_file *c, struct prepared *p,
		   char *err, size_t errlen)
{
	const struct rg_config_file *o = d->have_cfg ? &d->cfg : NULL;
	char e[512], at[PATH_MAX + 32];
	size_t i, k;

	memset(p, 0, sizeof(*p));
	if (check_paths(c, err, errlen))
		return -1;
	p->src = calloc(c->n_sources ? c->n_sources : 1, sizeof(*p->src));
	p->src_new = calloc(c->n_sources ? c->n_sources : 1, sizeof(*p->src_new));
	if (!p->src || !p->src_new) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (i = 0; i < c->n_sources; i++) {
		const struct rg_source_cfg *sc = &c->sources[i];
		struct source *s = NULL;

		for (k = 0; k < d->nsrc; k++) {
			if (source_same(d->src[k], sc)) {
				s = d->src[k];
				break;
			}
		}
		if (!s) {
			s = source_new(d, c, sc, err, errlen);
			if (!s)
				goto fail;
			p->src_new[i] = true;
		}
		p->src[p->nsrc++] = s;
	}

	/* Control socket: a new path needs a new socket; group and mode of
	 * the same path are changed in place at commit. */
	if (o && d->control && !strcmp(o->control.socket, c->control.socket)) {
		p->control = d->control;
	} else {
		struct rg_control_opts co = {
			.path = c->control.socket,
			.group = c->control.socket_gid == (gid_t)-1 ? "" : c->control.socket_group,
			.mode = c->control.socket_mode,
		};

		if (rg_control_open(&p->control, &co, on_control_event, d, e, sizeof(e))) {
			snprintf(err, errlen, "[control] %s", e);
			goto fail;
		}
		p->control_new = true;
		if (c->control.socket_gid == (gid_t)-1)
			rg_warn("control socket %s: group %s does not exist: only root may send events (groupadd --system %s)",
				c->control.socket, c->control.socket_group, c->control.socket_group);
	}

	/* Postfix policy service, its sender_logins map and audit log. */
	if (c->policy.listen.set) {
		if (c->policy.sender_logins[0]) {
			p->sl = rg_senderlogins_load(c->policy.sender_logins, e, sizeof(e));
			if (!p->sl) {
				snprintf(err, errlen, "%s[policy] sender_logins: %s",
					 key_at(c, c->policy.sender_logins_line, at, sizeof(at)), e);
				goto fail;
			}
		}
		if (o && d->audit && o->policy.listen.set &&
		    !strcmp(o->policy.audit_log, c->policy.audit_log)) {
			p->audit = d->audit;
		} else {
			p->audit = rg_audit_open(c->policy.audit_log[0] ? c->policy.audit_log : NULL,
						 e, sizeof(e));
			if (!p->audit) {
				snprintf(err, errlen, "%s[policy] audit_log: %s",
					 key_at(c, c->policy.audit_log_line, at, sizeof(at)), e);
				goto fail;
			}
			p->audit_new = true;
		}
		if (o && d->policy && endpoint_same(&o->policy.listen, &c->policy.listen)) {
			p->policy = d->policy;
		} else {
			struct rg_policy_opts po = {
				.socket_owner = c->policy.socket_owner[0] ? c->policy.socket_owner : NULL,
				.socket_mode = c->policy.socket_mode,
				.lookup = rg_policy_lookup_maps,
				.lookup_ctx = &d->pmaps,
				.sender_logins = p->sl,
				.audit = p->audit,
			};
			char lis[RG_SUN_PATH_MAX + 16];

			policy_listen_str(&c->policy.listen, lis, sizeof(lis));
			po.listen = lis;
			p->policy = rg_policy_new(&po, e, sizeof(e));
			if (!p->policy) {
				snprintf(err, errlen, "[policy] %s", e);
				goto fail;
			}
			p->policy_new = true;
		}
	}

	/* Metrics. */
	if (c->metrics.listen.set) {
		if (o && d->metrics && endpoint_same(&o->metrics.listen, &c->metrics.listen)) {
			p->metrics = d->metrics;
		} else {
			char lis[96];

			endpoint_hostport(&c->metrics.listen, lis, sizeof(lis));
			if (rg_metrics_start(&p->metrics, lis, render, d, e, sizeof(e))) {
				snprintf(err, errlen, "[metrics] %s", e);
				goto fail;
			}
			p->metrics_new = true;
		}
	}
	return 0;
fail:
	prepared_free(d, p, true);
	return -1;
}

/* Owner, group and mode of a socket we keep across a reload. */
static void fix_socket(const char *path, uid_t uid, gid_t gid, mode_t mode, const char *what)
{
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid))
		rg_warn("%s %s: chown: %s", what, path, strerror(errno));
	if (chmod(path, mode))
		rg_warn("%s %s: chmod: %s", what, path, strerror(errno));
}

/* Swap the prepared parts in and close the old ones. Cannot fail (a new
 * source whose descriptor cannot be polled is still read every second). */
static void commit(struct daemon *d, const struct rg_config_file *c, struct prepared *p)
{
	struct rg_metrics *old_metrics = NULL;
	struct rg_control *old_control = NULL;
	struct rg_policy *old_policy = NULL;
	struct rg_senderlogins *old_sl = d->sl;
	struct rg_audit *old_audit = NULL;
	struct source **old_src = d->src;
	size_t old_n = d->nsrc, i, k;
	char e[512];

	for (i = 0; i < p->nsrc; i++) {
		if (!p->src_new[i] && p->src[i]->service != c->sources[i].service) {
			rg_info("source %s: service %s from now on", p->src[i]->name,
				c->sources[i].service ? rg_service_name(c->sources[i].service) : "as logged");
			p->src[i]->service = c->sources[i].service;
		}
		if (p->src_new[i] && source_poll(d, p->src[i], e, sizeof(e))) {
			rg_warn("%s; read once a second instead", e);
			p->src[i]->unpollable = true;
		}
	}
	if (p->control_new) {
		old_control = d->control;
		ep_del(d, d->control ? rg_control_fd(d->control) : -1);
		if (ep_add(d, rg_control_fd(p->control), &d->h_control))
			rg_err("control socket: epoll: %s", strerror(errno));
	} else if (d->have_cfg && p->control &&
		   (d->cfg.control.socket_gid != c->control.socket_gid ||
		    d->cfg.control.socket_mode != c->control.socket_mode)) {
		/* The same socket, another group: the file's group (root's
		 * when there is none now) and who the daemon lets send. */
		bool grp = c->control.socket_gid != (gid_t)-1;

		fix_socket(c->control.socket, (uid_t)-1, grp ? c->control.socket_gid : 0,
			   c->control.socket_mode, "control socket");
		if (rg_control_set_group(p->control, grp ? c->control.socket_group : "", e,
					 sizeof(e)))
			rg_warn("control socket: %s", e);
	}
	if (p->policy != d->policy) {
		old_policy = d->policy;
		if (d->policy)
			ep_del(d, rg_policy_fd(d->policy));
		if (p->policy && ep_add(d, rg_policy_fd(p->policy), &d->h_policy))
			rg_err("policy service: epoll: %s", strerror(errno));
	} else if (p->policy) {
		if (c->policy.listen.is_unix &&
		    (d->cfg.policy.owner_uid != c->policy.owner_uid ||
		     d->cfg.policy.owner_gid != c->policy.owner_gid ||
		     d->cfg.policy.socket_mode != c->policy.socket_mode))
			fix_socket(c->policy.listen.path, c->policy.owner_uid, c->policy.owner_gid,
				   c->policy.socket_mode, "policy socket");
		rg_policy_set_sender_logins(p->policy, p->sl);
		rg_policy_set_audit(p->policy, p->audit);
	}
	if (p->audit != d->audit)
		old_audit = d->audit;
	else if (p->audit && rg_audit_reopen(p->audit, e, sizeof(e)))
		rg_warn("audit log: %s; writing to the old file", e);
	if (p->metrics != d->metrics)
		old_metrics = d->metrics;

	pthread_mutex_lock(&d->lock);
	d->src = p->src;
	d->nsrc = p->nsrc;
	d->control = p->control;
	d->policy = p->policy;
	d->sl = p->sl;
	d->audit = p->audit;
	d->metrics = p->metrics;
	pthread_mutex_unlock(&d->lock);

	/* Close what is gone, outside the lock (stopping a server waits for
	 * its thread, which may be waiting for the lock). */
	for (i = 0; i < old_n; i++) {
		for (k = 0; k < p->nsrc; k++)
			if (p->src[k] == old_src[i])
				break;
		if (k == p->nsrc)
			source_retire(d, old_src[i], p->src, p->nsrc);
	}
	free(old_src);
	free(p->src_new);
	if (old_control)
		rg_control_close(old_control);
	if (old_policy)
		rg_policy_free(old_policy);
	if (old_sl && old_sl != p->sl)
		rg_senderlogins_free(old_sl);
	if (old_audit)
		rg_audit_close(old_audit);
	if (old_metrics)
		rg_metrics_stop(old_metrics);
	memset(p, 0, sizeof(*p));
}

static void describe(struct daemon *d)
{
	size_t i;

	for (i = 0; i < d->nsrc; i++) {
		struct source *s = d->src[i];

		if (s->ap)
			rg_info("source %s: %s on port %u", s->name, rg_source_type_name(s->type),
				rg_authpolicy_port(s->ap));
		else
			rg_info("source %s: %s following %s", s->name, rg_source_type_name(s->type),
				strcmp(s->path, "-") ? s->path : "stdin");
	}
	rg_info("control socket %s", d->cfg.control.socket);
	if (d->policy)
		rg_info("policy service on %s", rg_policy_address(d->policy));
	if (d->metrics)
		rg_info("metrics on port %u", rg_metrics_port(d->metrics));
}

/* SIGHUP. */
static void reload(struct daemon *d)
{
	bool mine[RG_CONFIG_MAX_IFACES];
	struct rg_config_file nc;
	struct rg_grants_conf gc;
	struct prepared p;
	char err[1024];

	rg_info("reloading %s", d->cfg_path);
	if (rg_config_load(d->cfg_path, &nc, err, sizeof(err))) {
		rg_err("reload: %s; keeping the old configuration", err);
		d->st.reload_errors++;
		return;
	}
	if (strcmp(nc.gate.pin_dir, d->cfg.gate.pin_dir)) {
		rg_err("reload: [gate] pin_dir changed (%s -> %s): that needs a restart; keeping the old configuration",
		       d->cfg.gate.pin_dir, nc.gate.pin_dir);
		goto fail_cfg;
	}
	if (nc.grants.max != d->cfg.grants.max)
		rg_warn("reload: [grants] max %u applies when the maps are made anew (they hold %ld)",
			nc.grants.max, rg_map_max_entries(d->gate.grants_fd));
	if (nc.gate.mode != d->cfg.gate.mode)
		rg_warn("reload: [gate] mode %s applies to interfaces attached from now on",
			rg_mode_name(nc.gate.mode));
	if (prepare(d, &nc, &p, err, sizeof(err))) {
		rg_err("reload: %s; keeping the old configuration", err);
		goto fail_cfg;
	}
	if (gate_attach_all(d, &nc, mine, err, sizeof(err))) {
		rg_err("reload: %s; keeping the old configuration", err);
		goto fail_prep;
	}
	grants_conf(&nc, &gc);
	if (rg_grants_reconfigure(d->grants, &gc, err, sizeof(err))) {
		rg_err("reload: %s; keeping the old configuration", err);
		goto fail_attach;
	}
	if (apply_maps(d, &nc, &d->cfg, err, sizeof(err))) {
		rg_err("reload: %s; keeping the old configuration", err);
		grants_conf(&d->cfg, &gc);
		rg_grants_reconfigure(d->grants, &gc, err, sizeof(err));
		goto fail_attach;
	}
	if (strcmp(nc.grants.state_file, d->cfg.grants.state_file)) {
		char dir[PATH_MAX];

		state_dir(nc.grants.state_file, dir, sizeof(dir));
		mkdir_p(dir, 0750);
		d->wk.save_pending = true;
	}
	commit(d, &nc, &p);
	cluster_configure(d, &nc, &d->cfg);
	rg_config_free(&d->cfg);
	d->cfg = nc;
	d->st.reloads++;
	rg_info("reloaded %s: %zu sources, %zu trusted subnets, %zu trusted interfaces, %zu ports",
		d->cfg_path, d->nsrc, d->cfg.trust.n_subnets, d->cfg.trust.n_ifaces,
		d->cfg.gate.n_ports);
	return;
fail_attach:
	gate_undo_attach(&nc, mine);
fail_prep:
	prepared_free(d, &p, true);
fail_cfg:
	rg_config_free(&nc);
	d->st.reload_errors++;
}

/* ------------------------------------------------------------ summary */

/*
 * Rebuild the summary (maps/relaygate.h) so that slots of grants and denies
 * that are gone clear, and the empty-map hints come back: every
 * RG_SUM_EVERY_SEC, or at once (force) after start and reload; never more
 * than 1/RG_SUM_SHARE of the time (a rebuild walks every map). Only this
 * process may: it is the one writer that does not take the pin-dir lock,
 * and it does not write while rebuilding. A CLI holding the lock just
 * puts the rebuild off to a later round.
 */
#define RG_SUM_EVERY_SEC 10
#define RG_SUM_SHARE     50

static void summary_round(struct daemon *d, bool force)
{
	uint64_t now = rg_now_ns(), took;
	int r;

	if (!d->gate_open)
		return;
	if (!force && (now - d->sum_at < RG_SUM_EVERY_SEC * 1000000000ULL ||
		       now - d->sum_at < RG_SUM_SHARE * d->sum_cost))
		return;
	if (rg_gate_trylock(&d->gate))
		return;
	r = rg_summary_rebuild(&d->gate);
	rg_gate_unlock(&d->gate);
	took = rg_now_ns() - now;
	d->sum_at = now;
	d->sum_cost = pacing_cost(took);
	d->st.sum_rebuilds++;
	d->st.sum_rebuild_ns = took;
	if (r)
		d->st.sum_rebuild_errors++;
	if (r && rl_take(&d->reject_rl))
		rg_warn("summary rebuild: %s (the gate looks up every source until the next one)",
			d->gate.err);
}

/* ------------------------------------------------------------ loop */

#define RG_TICKS_PER_SEC 4

static void tick(struct daemon *d)
{
	uint64_t exp;
	size_t i;

	if (read(d->tfd, &exp, sizeof(exp)) < 0) {
		if (errno != EAGAIN)
			rg_warn("timer: %s", strerror(errno));
		exp = 0;
	}
	d->quarters += (unsigned)(exp < RG_TICKS_PER_SEC ? exp : RG_TICKS_PER_SEC);
	if (d->quarters < RG_TICKS_PER_SEC) {
		/* Our own grants and denies go to the state file within a
		 * walk: the next quarter-second tick while walks are cheap,
		 * so kill -9 loses no grant older than about a second. */
		if (d->changed && walker_ask(d, false, false))
			d->changed = false;
		return;
	}
	d->quarters = 0;
	rg_grants_sweep(d->grants, rg_now_ns());
	if (walker_ask(d, false, false))
		d->changed = false;
	summary_round(d, false);
	for (i = 0; i < d->nsrc; i++)
		source_process(d->src[i]);
	if (d->cfg.trust.n_ifaces && apply_tiface(d, &d->cfg, true) && rl_take(&d->reject_rl))
		rg_warn("trusted interfaces: %s", d->gate.err);
	if (d->drop_rl.suppressed)
		rg_info("drop events: %llu more in the last second not logged",
			(unsigned long long)d->drop_rl.suppressed);
	if (d->reject_rl.suppressed)
		rg_warn("%llu more warnings in the last second not logged",
			(unsigned long long)d->reject_rl.suppressed);
	if (d->cluster_rl.suppressed)
		rg_info("cluster: %llu more grants and denies from other hosts in the last second not logged",
			(unsigned long long)d->cluster_rl.suppressed);
	d->drop_rl.used = d->reject_rl.used = d->cluster_rl.used = 0;
	d->drop_rl.suppressed = d->reject_rl.suppressed = d->cluster_rl.suppressed = 0;
	snapshot(d);
}

static void on_signal(struct daemon *d)
{
	struct signalfd_siginfo si;

	while (read(d->sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			/* Not while a walk reads the prefixes, the state
			 * path or the keys a prefix change moves. */
			pthread_mutex_lock(&d->wk.gate_mu);
			reload(d);
			pthread_mutex_unlock(&d->wk.gate_mu);
			/* not under gate_mu, and without waiting: a
			 * thread still busy ends on its own */
			rg_cluster_free(d->cluster_old, 0);
			d->cluster_old = NULL;
			summary_round(d, true);
			snapshot(d);
			break;
		case SIGTERM:
		case SIGINT:
			rg_info("%s: exiting (%s)", strsignal((int)si.ssi_signo),
				gate_attached_anywhere(d) ? "the gate stays attached" :
				"the gate is attached nowhere");
			d->running = false;
			break;
		default:
			break;
		}
	}
}

static int run(struct daemon *d)
{
	struct epoll_event ev[MAX_EPOLL_EVENTS];

	while (d->running) {
		bool more = false;
		int n, i;
		size_t k;

		for (k = 0; k < d->nsrc; k++)
			more |= d->src[k]->more;
		more |= expiring(d);
		n = epoll_wait(d->ep, ev, MAX_EPOLL_EVENTS, more ? 0 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rg_err("epoll_wait: %s", strerror(errno));
			return -1;
		}
		for (i = 0; i < n; i++) {
			struct handler *h = ev[i].data.ptr;

			switch (h->kind) {
			case H_SOURCE:
				source_process(h->ptr);
				break;
			case H_CONTROL:
				if (d->control)
					rg_control_dispatch(d->control);
				break;
			case H_EVQ:
				rg_evqueue_drain(d->evq, 1024, on_push_event, d);
				break;
			case H_POLICY:
				if (d->policy) {
					int r = rg_policy_process(d->policy);

					if (r < 0 && rl_take(&d->reject_rl))
						rg_warn("policy service: %s", strerror(-r));
				}
				break;
			case H_RINGBUF:
				ring_buffer__consume(d->rb);
				break;
			case H_SIGNAL:
				on_signal(d);
				break;
			case H_TIMER:
				tick(d);
				break;
			case H_WALK:
				walker_poll(d);
				break;
			case H_CLUSTER:
				cluster_poll(d);
				break;
			}
			if (!d->running)
				break;
			/* A reload may have freed a source whose event is
			 * still in ev[]: stop this round, poll again. */
			if (h->kind == H_SIGNAL)
				break;
		}
		if (expiring(d))
			expire_some(d, EXPIRE_SLICE);
		/* Sources with data left get their turn after each round. */
		for (k = 0; d->running && k < d->nsrc; k++)
			if (d->src[k]->more)
				source_process(d->src[k]);
	}
	return 0;
}

/* ------------------------------------------------------------ start, stop */

static int setup_loop(struct daemon *d)
{
	struct itimerspec its = {
		.it_interval = { .tv_nsec = 1000000000L / RG_TICKS_PER_SEC },
		.it_value = { .tv_nsec = 1000000000L / RG_TICKS_PER_SEC },
	};
	sigset_t set;
	int r;

	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if (d->ep < 0)
		return -errno;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	d->sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	d->wk.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->sfd < 0 || d->tfd < 0 || d->wk.efd < 0 || timerfd_settime(d->tfd, 0, &its, NULL))
		return -errno;
	d->h_sig = (struct handler){ H_SIGNAL, d };
	d->h_timer = (struct handler){ H_TIMER, d };
	d->h_control = (struct handler){ H_CONTROL, d };
	d->h_evq = (struct handler){ H_EVQ, d };
	d->h_policy = (struct handler){ H_POLICY, d };
	d->h_rb = (struct handler){ H_RINGBUF, d };
	d->h_walk = (struct handler){ H_WALK, d };
	d->h_cluster = (struct handler){ H_CLUSTER, d };
	r = ep_add(d, d->sfd, &d->h_sig);
	if (!r)
		r = ep_add(d, d->tfd, &d->h_timer);
	if (!r)
		r = ep_add(d, rg_evqueue_fd(d->evq), &d->h_evq);
	if (!r)
		r = ep_add(d, d->wk.efd, &d->h_walk);
	return r;
}

static void shutdown_all(struct daemon *d)
{
	struct rg_cluster *cl;
	size_t i;

	/* Events already received still count. */
	if (d->evq && d->grants)
		rg_evqueue_drain(d->evq, 0, on_push_event, d);
	if (d->gate_open && d->grants)
		walker_ask(d, true, true);
	/* The cluster first: its thread may be reading the maps into the
	 * walker's buffers (cluster_snapshot), which walker_stop frees. One
	 * still busy after CLUSTER_STOP_MS (a name lookup) is left to end
	 * on its own: closing keeps it off the maps from now on. */
	pthread_mutex_lock(&d->wk.gate_mu);
	d->wk.closing = true;
	cl = d->cluster;
	d->cluster = NULL;
	pthread_mutex_unlock(&d->wk.gate_mu);
	if (!rg_cluster_free(cl, CLUSTER_STOP_MS))
		rg_warn("cluster: its thread did not stop within %u ms; exiting without it",
			CLUSTER_STOP_MS);
	walker_stop(d);
	if (d->gate_open)
		expire_some(d, SIZE_MAX);
	expired_free(&d->expq);
	pthread_mutex_lock(&d->lock);
	d->gate_open = false;
	pthread_mutex_unlock(&d->lock);
	rg_metrics_stop(d->metrics);          /* first: it reads everything below */
	d->metrics = NULL;
	for (i = 0; i < d->nsrc; i++)
		source_free(d, d->src[i]);
	free(d->src);
	d->src = NULL;
	d->nsrc = 0;
	rg_control_close(d->control);
	rg_policy_free(d->policy);
	rg_senderlogins_free(d->sl);
	rg_audit_close(d->audit);
	if (d->rb)
		ring_buffer__free(d->rb);
	rg_grants_free(d->grants);
	rg_evqueue_free(d->evq);
	rg_gate_close(&d->gate);              /* never detach: fail closed */
	free(d->tiface);
	if (d->ep >= 0)
		close(d->ep);
	if (d->sfd >= 0)
		close(d->sfd);
	if (d->tfd >= 0)
		close(d->tfd);
	if (d->wk.efd >= 0)
		close(d->wk.efd);
	d->wk.efd = -1;
	if (d->lock_fd >= 0)
		close(d->lock_fd);      /* last: another daemon may take the gate */
	d->lock_fd = -1;
	if (d->have_cfg)
		rg_config_free(&d->cfg);
}

static int start(struct daemon *d, struct rg_config_file *cfg)
{
	struct rg_grants_conf gc;
	struct prepared p;
	char err[1024], dir[PATH_MAX];
	int r;

	r = rg_evqueue_new(&d->evq, 0);
	if (r) {
		startup_error(d, "event queue: %s", strerror(-r));
		return -1;
	}
	r = setup_loop(d);
	if (r) {
		startup_error(d, "event loop: %s", strerror(-r));
		return -1;
	}
	state_dir(cfg->grants.state_file, dir, sizeof(dir));
	r = mkdir_p(dir, 0750);
	if (r)
		rg_warn("state directory %s: %s (grants will not survive a reboot)", dir, strerror(-r));
	rg_policy_maps_init(&d->pmaps, &d->gate);

	/* One daemon per gate: a second one would fight the first over the
	 * ports, the trusted sets and the expiries. */
	d->lock_fd = rg_gate_daemon_lock(cfg->gate.pin_dir, err, sizeof(err));
	if (d->lock_fd < 0) {
		startup_error(d, "%s", err);
		return -1;
	}
	/* Everything that can fail without touching the gate first. */
	if (prepare(d, cfg, &p, err, sizeof(err))) {
		startup_error(d, "%s", err);
		return -1;
	}
	if (gate_attach_all(d, cfg, d->attached_now, err, sizeof(err))) {
		startup_error(d, "%s", err);
		prepared_free(d, &p, false);
		return -1;
	}
	r = rg_gate_open(&d->gate, cfg->gate.pin_dir);
	if (r) {
		startup_error(d, "%s", d->gate.err);
		goto fail_attached;
	}
	pthread_mutex_lock(&d->lock);
	d->gate_open = true;
	pthread_mutex_unlock(&d->lock);
	if (rg_map_max_entries(d->gate.grants_fd) != (long)cfg->grants.max)
		rg_warn("[grants] max %u: the pinned grant map holds %ld (sizes apply when the maps are made anew)",
			cfg->grants.max, rg_map_max_entries(d->gate.grants_fd));
	/* Before apply_maps: once the maps hold this config, nothing below
	 * fails, so a start that fails leaves them as it found them. */
	grants_conf(cfg, &gc);
	{
		struct rg_grants *gr;

		if (rg_grants_new(&gr, &d->gate, &gc, err, sizeof(err))) {
			startup_error(d, "%s", err);
			goto fail_attached;
		}
		if (apply_maps(d, cfg, NULL, err, sizeof(err))) {
			startup_error(d, "%s", err);
			rg_grants_free(gr);
			goto fail_attached;
		}
		pthread_mutex_lock(&d->lock);
		d->grants = gr;
		pthread_mutex_unlock(&d->lock);
	}
	/* The config moves into d; prepared parts point into their own copies. */
	d->cfg = *cfg;
	d->have_cfg = true;
	memset(cfg, 0, sizeof(*cfg));
	if (rg_state_boot_id(d->boot_id))
		rg_warn("/proc/sys/kernel/random/boot_id: unreadable; a grant deleted while relaygated is stopped will come back from the state file");
	walker_start(d);
	restore_state(d);
	walker_ask(d, true, true);
	expire_some(d, SIZE_MAX);        /* before the rebuild: their slots clear */
	summary_round(d, true);

	d->rb = ring_buffer__new(d->gate.events_fd, on_drop, d, NULL);
	if (!d->rb)
		rg_warn("drop events: ring buffer %s: %s (drops are still counted)", RG_MAP_EVENTS,
			strerror(errno));
	else if (ep_add(d, ring_buffer__epoll_fd(d->rb), &d->h_rb))
		rg_warn("drop events: epoll: %s", strerror(errno));

	d->have_cfg = false;     /* commit compares with the old config: none */
	commit(d, &d->cfg, &p);
	d->have_cfg = true;
	pthread_mutex_lock(&d->wk.gate_mu);     /* the walker reads d->cluster */
	cluster_configure(d, &d->cfg, NULL);
	pthread_mutex_unlock(&d->wk.gate_mu);
	snapshot(d);
	describe(d);
	return 0;
fail_attached:
	/* Nothing of this start stays: an attach it made is undone (a gate
	 * that was attached before stays as it was). */
	prepared_free(d, &p, false);
	gate_undo_attach(cfg, d->attached_now);
	return -1;
}

/* ------------------------------------------------------------ main */

/*
 * Without --foreground: fork; the child sets up everything and then tells
 * the parent through a pipe, which exits 0, or 1 after printing the child's
 * startup error. So `relaygated -c FILE` returns only once the gate is up.
 */
static int daemonize(void)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		char buf[1100];
		ssize_t n, len = 0;

		close(pfd[1]);
		while ((n = read(pfd[0], buf + len, sizeof(buf) - 1 - (size_t)len)) > 0 ||
		       (n < 0 && errno == EINTR))
			if (n > 0)
				len += n;
		buf[len] = '\0';
		if (len == 1 && buf[0] == '\n')
			_exit(0);
		fprintf(stderr, "relaygated: %s\n", len ? buf : "startup failed (see the system log)");
		_exit(1);
	}
	close(pfd[0]);
	if (setsid() < 0)
		return -1;
	if (chdir("/")) {
		/* stays where it was: nothing relies on it */
	}
	return pfd[1];
}

static void redirect_std(bool keep_stdin)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	if (!keep_stdin)
		dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: relaygated [-c FILE] [--foreground] [--check-config] [-v]\n"
		"  -c, --config FILE  configuration (default %s)\n"
		"  -f, --foreground   stay in the foreground, log to stderr (default: detach, log to syslog)\n"
		"  -t, --check-config validate the configuration and exit (0 valid, 1 not)\n"
		"  -v, --verbose      debug logging, libbpf's messages too\n"
		"  -h, --help         this text\n"
		"  -V, --version      version\n",
		RG_CONFIG_PATH_DEFAULT);
}

static int check_config(const struct rg_config_file *c)
{
	char e[512];
	size_t i;

	for (i = 0; i < c->n_sources; i++) {
		const struct rg_source_cfg *s = &c->sources[i];
		struct rg_preset *p;

		if (!rg_source_is_log(s->type))
			continue;
		p = rg_preset_new((enum rg_preset_type)s->type, s->match, s->failure, e, sizeof(e));
		if (!p) {
			fprintf(stderr, "relaygated: %s:%u: [source.%s]: %s\n", c->path, s->line,
				s->name, e);
			return 1;
		}
		rg_preset_free(p);
	}
	if (c->policy.listen.set && c->policy.sender_logins[0]) {
		struct rg_senderlogins *sl = rg_senderlogins_load(c->policy.sender_logins, e, sizeof(e));
		char at[PATH_MAX + 32];

		if (!sl) {
			fprintf(stderr, "relaygated: %s[policy] sender_logins: %s\n",
				key_at(c, c->policy.sender_logins_line, at, sizeof(at)), e);
			return 1;
		}
		rg_senderlogins_free(sl);
	}
	if (check_paths(c, e, sizeof(e))) {
		fprintf(stderr, "relaygated: %s\n", e);
		return 1;
	}
	/* Here, not at every reload: a gate whose interface has gone since
	 * it was attached stays pinned, and relaygated says so. */
	for (i = 0; i < c->gate.n_ifaces; i++) {
		char at[PATH_MAX + 32];

		if (!if_nametoindex(c->gate.ifaces[i])) {
			fprintf(stderr, "relaygated: %s[gate] interface: %s: no such interface\n",
				key_at(c, c->gate.iface_line[i], at, sizeof(at)), c->gate.ifaces[i]);
			return 1;
		}
	}
	printf("%s: configuration OK\n", c->path);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check-config", no_argument, NULL, 't' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct daemon dm;
	struct daemon *d = &dm;
	struct rg_config_file cfg;
	bool check = false, keep_stdin = false;
	char err[1024];
	sigset_t set;
	size_t i;
	int c, rc;

	d->cfg_path = RG_CONFIG_PATH_DEFAULT;
	d->ready_fd = d->ep = d->sfd = d->tfd = d->lock_fd = -1;
	gate_reset(&d->gate);
	pthread_mutex_init(&d->lock, NULL);
	walker_init(d);
	d->drop_rl.per_sec = DROP_LOG_PER_SEC;
	d->cluster_rl.per_sec = CLUSTER_LOG_PER_SEC;
	d->reject_rl.per_sec = REJECT_LOG_PER_SEC;
	while ((c = getopt_long(argc, argv, "c:ftvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d->cfg_path = optarg;
			break;
		case 'f':
			d->foreground = true;
			break;
		case 't':
			check = true;
			break;
		case 'v':
			d->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("relaygated %s (map ABI %d)\n", RELAYGATED_VERSION, RG_ABI_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "relaygated: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	/* Nothing is touched before the whole config is known to be good. */
	if (rg_config_load(d->cfg_path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "relaygated: %s\n", err);
		return 1;
	}
	if (check) {
		rc = check_config(&cfg);
		rg_config_free(&cfg);
		return rc;
	}
	for (i = 0; i < cfg.n_sources; i++)
		if (rg_source_is_log(cfg.sources[i].type) && !strcmp(cfg.sources[i].path, "-"))
			keep_stdin = true;

	/* Signals are taken by the signalfd; block them before any thread
	 * (libmicrohttpd's) exists, so every thread inherits the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!d->foreground) {
		d->ready_fd = daemonize();
		if (d->ready_fd < 0) {
			fprintf(stderr, "relaygated: cannot detach: %s\n", strerror(errno));
			return 1;
		}
	}
	rg_log_init("relaygated", !d->foreground, d->verbose ? RG_LOG_DEBUG : RG_LOG_INFO);
	rg_log_libbpf(d->verbose);
	rg_info("starting: %s", d->cfg_path);

	if (start(d, &cfg)) {
		rg_config_free(&cfg);
		shutdown_all(d);
		return 1;
	}
	if (d->ready_fd >= 0) {
		if (write(d->ready_fd, "\n", 1) != 1) {
			/* the parent is gone: nobody to tell */
		}
		close(d->ready_fd);
		d->ready_fd = -1;
		redirect_std(keep_stdin);
	}
	rg_info("running (pid %d)", (int)getpid());
	d->running = true;
	rc = run(d);
	shutdown_all(d);
	rg_info("stopped");
	return rc ? 1 : 0;
}
