/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Control socket: a line protocol for login/failure events from other
 * programs (a Dovecot post-login script, relaygatectl event).
 *
 *   request:  LOGIN <addr> <user> [<service>]\n
 *             FAILURE <addr> <user> [<service>]\n
 *   reply:    OK\n   or   ERR <reason>\n
 *
 * <user>: 1..255 bytes, no spaces or control characters (UTF-8 names are
 * fine). <addr>: an address a client can have. <service>: pop3, imap, smtp,
 * other. Lines longer than 512 bytes, unknown verbs or bad fields get
 * "ERR <reason>" and the connection is closed.
 *
 * Details of the server (relaygated):
 *  - Verbs are matched without regard to case; fields are separated by
 *    spaces or tabs; a trailing "\r" is ignored; <addr> is parsed by
 *    rg_addr_parse (IPv4, IPv6, IPv4-mapped IPv6) and refused when no client
 *    can have it (rg_addr_not_client: "ERR bad address: unspecified
 *    (0.0.0.0/8)"); <user> is any bytes but control characters (0x00..0x1f)
 *    and DEL, so UTF-8 names pass; a missing <service> means "not said"
 *    (RG_SERVICE_NONE).
 *  - A client may send several requests on one connection; each gets one
 *    reply, in order. A request the daemon accepted but could not apply (a
 *    full map, a rate limit) gets "ERR <reason>" and the connection stays
 *    open; a malformed one gets "ERR <reason>" and the connection closes.
 *  - Only root and members of the socket's group (primary gid, supplementary
 *    groups of the peer process, or the group database for the peer's uid)
 *    may send; anyone else gets "ERR permission denied" and is closed.
 *  - Each uid has a token bucket (default 50 events/s, burst 100); an event
 *    over it gets "ERR rate limit exceeded".
 *  - A client silent for the idle timeout (default 10 s), or not reading
 *    its replies for as long, is closed. At most max_clients connections.
 */
#ifndef RG_CONTROL_H
#define RG_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "event.h"

#define RG_CONTROL_SOCKET_DEFAULT "/run/relaygate/control.sock"
#define RG_CONTROL_LINE_MAX 512
#define RG_CONTROL_GROUP_DEFAULT "relaygate"
#define RG_CONTROL_MODE_DEFAULT 0660

/* Client side (relaygatectl event): connect, send one request, read the
 * reply. Returns 0 on OK; -1 with a one-line reason in err otherwise
 * (connect failure, ERR reply, timeout after 5 s). */
int rg_control_request(const char *sock_path, enum rg_event_kind kind,
		       const char *addr, const char *user, const char *service,
		       char *err, size_t errlen);

/* Parse one request line (without its "\n"; a trailing "\r" is allowed).
 * Fills ev (origin RG_ORIGIN_CONTROL, source NULL) and returns 0, or returns
 * -1 with a static reason in *why. Pure: no I/O, no allocation. */
int rg_control_parse(const char *line, size_t len, struct rg_auth_event *ev,
		     const char **why);

/* ---- Server side (relaygated) ---- */

struct rg_control;

struct rg_control_opts {
	const char *path;            /* NULL: RG_CONTROL_SOCKET_DEFAULT */
	const char *group;           /* name or number; NULL: "relaygate";
				      * "": root only, group left as is */
	unsigned mode;               /* 0: 0660 */
	unsigned rate;               /* events per second per uid; 0: 50 */
	unsigned burst;              /* bucket size; 0: 2 * rate */
	unsigned max_clients;        /* 0: 64 */
	unsigned idle_timeout_ms;    /* 0: 10000 */
	const char *source;          /* ev->source; NULL: "control" */
};

/*
 * Called for each well-formed, permitted request, on the thread that calls
 * rg_control_dispatch. Return 0 to answer "OK", or -1 with a one-line
 * reason in err (answered "ERR <reason>", connection kept).
 */
typedef int (*rg_control_event_fn)(const struct rg_auth_event *ev, void *ctx,
				   char *err, size_t errlen);

/*
 * Create the socket (and its parent directory, mode 0755), set its group
 * and mode, listen. A stale socket file is replaced; a live one (another
 * daemon answers) is an error. Returns 0 or -errno with one line in err.
 */
int rg_control_open(struct rg_control **out, const struct rg_control_opts *o,
		    rg_control_event_fn cb, void *ctx, char *err, size_t errlen);

/* One fd for the caller's epoll loop (EPOLLIN): an epoll fd holding the
 * listening socket, every client and an idle timer. */
int rg_control_fd(const struct rg_control *c);
/* Who may send from now on (a reload that changed the group): root and the
 * members of group (name or number; "": root only). The socket file's own
 * group is the caller's to change. 0, or -ENOENT with err for a group that
 * does not exist (nothing changed then). */
int rg_control_set_group(struct rg_control *c, const char *group, char *err, size_t errlen);

/* Call when rg_control_fd() is readable: accepts, reads, answers, closes
 * idle clients. Never blocks. Returns the number of events delivered. */
int rg_control_dispatch(struct rg_control *c);

/* Close every client and the socket, and remove the socket file (if it is
 * still ours). NULL is fine. */
void rg_control_close(struct rg_control *c);

struct rg_control_stats {
	uint64_t accepted;           /* connections accepted and permitted */
	uint64_t refused;            /* connections refused: permission */
	uint64_t overflow;           /* connections refused: too many clients */
	uint64_t events;             /* requests answered OK */
	uint64_t rejected;           /* malformed requests (connection closed) */
	uint64_t failed;             /* well-formed but the callback said no */
	uint64_t rate_limited;       /* requests over the per-uid rate */
	uint64_t timeouts;           /* clients closed for idleness */
	unsigned clients;            /* connected now */
};

/* Counters; safe to call from another thread (metrics). */
void rg_control_get_stats(const struct rg_control *c, struct rg_control_stats *s);

struct rg_mbuf;
/* relaygate_control_connections_total{result}, relaygate_control_requests_total{result},
 * relaygate_control_clients. Safe from the metrics thread. */
void rg_control_metrics(const struct rg_control *c, struct rg_mbuf *b);

#endif
