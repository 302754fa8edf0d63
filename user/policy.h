/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Postfix policy service (SMTPD policy delegation protocol): tells Postfix
 * to relay for exactly the clients relaygate admitted, checks that a granted
 * user sends as themselves, and writes the audit trail.
 *
 * Protocol: a request is "name=value" lines ended by an empty line; the
 * answer is "action=..." and an empty line; Postfix reuses a connection for
 * many requests. On a malformed request (a line without '=', an empty name,
 * a NUL byte, more than max_attrs attributes, more than max_request bytes)
 * and when the lookup fails, the server logs a warning and closes the
 * connection without answering, as the protocol asks: Postfix then retries
 * and finally applies the check's default_action.
 *
 * What is answered, by protocol_state (only for request=smtpd_access_policy;
 * anything else gets DUNNO):
 *
 *   RCPT            trusted subnet                       -> OK      (audit: relay)
 *                   live grant, sender is the user's     -> OK      (audit: relay)
 *                   live grant, sender not the user's    -> REJECT 5.7.1 (audit: reject)
 *                   neither                              -> DUNNO   (no audit)
 *   END-OF-MESSAGE  authorized client: the same sender check (REJECT on a
 *                   mismatch), else DUNNO: the relay decision was taken at
 *                   RCPT; DUNNO does not skip the admin's other end-of-data
 *                   restrictions. Audit "message" line carrying the queue id.
 *   CONNECT, EHLO, HELO, MAIL, DATA, VRFY, ETRN
 *                   DUNNO without a lookup. These states are only seen when
 *                   the service is listed in other restriction lists with
 *                   smtpd_delay_reject = no; an OK there would skip the rest
 *                   of that list (RBLs, helo checks), which is not ours to
 *                   decide. (With the default smtpd_delay_reject = yes, client,
 *                   helo and sender restrictions run at RCPT time.)
 *
 * Sender check (only with sender_logins, only for grants: a trusted subnet
 * carries no user):
 *   - the null sender (MAIL FROM:<>) is accepted, as Postfix's own
 *     reject_sender_login_mismatch does: DSNs and RFC 8098 read receipts
 *     use it and it impersonates no one; the audit line still names the user.
 *     reject_null_sender = true refuses it.
 *   - a user absent from sender_logins owns no sender: REJECT. A map that
 *     is configured is a complete list; a forgotten user fails loudly
 *     (5.7.1 naming the user) rather than relaying unchecked.
 *   - a granted name of RG_USER_LEN - 1 bytes owns no sender either: the
 *     grant map cuts longer logins there, so it may be a listed user's
 *     name with more after it (REJECT, reason user_name_too_long_to_check).
 *
 * Queue id: at RCPT Postfix sends queue_id only when the queue file is
 * already open, i.e. with smtpd_delay_open_until_valid_rcpt = no (else the
 * first RCPT of a message has none). A second check_policy_service in
 * smtpd_end_of_data_restrictions always has it (the "message" line; the
 * instance field ties it to the relay lines).
 *
 * Postfix main.cf (relaygate's socket is inside Postfix's queue directory):
 *   smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
 *       check_policy_service { unix:private/relaygate, default_action=DUNNO },
 *       reject_unauth_destination
 *   smtpd_delay_open_until_valid_rcpt = no
 *   # optional, a "message" audit line per message with its queue id:
 *   smtpd_end_of_data_restrictions =
 *       check_policy_service { unix:private/relaygate, default_action=DUNNO }
 *
 * Event loop: the server is non-blocking and single-threaded. It keeps its
 * own epoll set (listening socket, connections, a timerfd for the timeouts)
 * and exposes that set's descriptor: add rg_policy_fd() to the daemon's
 * epoll with EPOLLIN and call rg_policy_process() whenever it is readable.
 * The server never blocks; a stalled client only costs its own buffer.
 */
#ifndef RG_POLICY_H
#define RG_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "relaygate.h"

struct rg_senderlogins;
struct rg_audit;
struct rg_gate;

#define RG_POLICY_MAX_REQUEST_DEFAULT  8192     /* bytes, empty line included */
#define RG_POLICY_MAX_ATTRS_DEFAULT    100
#define RG_POLICY_READ_TIMEOUT_DEFAULT 30000    /* ms, one request's arrival */
#define RG_POLICY_IDLE_TIMEOUT_DEFAULT 600000   /* ms, between requests */
#define RG_POLICY_MAX_CONNS_DEFAULT    4096
#define RG_POLICY_SOCKET_MODE_DEFAULT  0660
#define RG_POLICY_ACTION_MAX           600      /* "action=" value, bytes */

/* --- what the daemon knows about a client ------------------------------ */

enum rg_policy_kind {
	RG_POLICY_NONE = 0,      /* not admitted by relaygate */
	RG_POLICY_TRUSTED,       /* in a trusted subnet */
	RG_POLICY_GRANT,         /* holds a live grant */
};

struct rg_policy_auth {
	enum rg_policy_kind kind;
	char subnet[64];            /* TRUSTED: "10.0.0.0/24" ("" if unknown) */
	char user[RG_USER_LEN];     /* GRANT: the login's user */
	enum rg_service service;    /* GRANT: pop3, imap, ... */
	int64_t granted;            /* GRANT: login time, Unix seconds (0: unknown) */
	int64_t expires;            /* GRANT: expiry, Unix seconds */
};

/*
 * The decision source. client is the parsed client_address (IPv4-mapped
 * IPv6 already turned into IPv4). Fill *out (zeroed by the caller) and
 * return 0, or return a negative errno when the answer cannot be known: the
 * server then closes that connection without answering (Postfix retries).
 */
typedef int (*rg_policy_lookup_fn)(void *ctx, const struct rg_addr *client,
				   struct rg_policy_auth *out);

/* --- request parsing (pure; exposed for tests and fuzzing) -------------- */

/* The attributes we use; NULL when absent. The first of repeated names wins. */
struct rg_policy_request {
	const char *request;
	const char *protocol_state;
	const char *client_address;
	const char *sender;
	const char *recipient;
	const char *recipient_count;
	const char *queue_id;
	const char *instance;
	const char *sasl_username;
	unsigned nattrs;
};

/*
 * Find the end of the first complete request in buf[0..len): returns its
 * length including the terminating empty line ("\n" or "\r\n"), or 0 when
 * more bytes are needed. *scan carries where scanning resumes (start at 0;
 * it is reset to 0 when a request is found).
 */
size_t rg_policy_frame(const char *buf, size_t len, size_t *scan);
/*
 * Parse one framed request in place (values are NUL-terminated inside buf).
 * Returns 0, or -1 with a static reason in *why. Never touches buf[len]:
 * a last line without "\n" (never in a framed request) is an error.
 */
int rg_policy_parse(char *buf, size_t len, unsigned max_attrs,
		    struct rg_policy_request *req, const char **why);

/* --- the decision (pure) ------------------------------------------------ */

enum rg_policy_answer { RG_ANSWER_DUNNO = 0, RG_ANSWER_OK, RG_ANSWER_REJECT };

struct rg_policy_rules {
	const struct rg_senderlogins *sender_logins;  /* NULL: no sender check */
	const char *recipient_delimiter;  /* e.g. "+": alice+x@ is alice@; NULL: none */
	bool reject_null_sender;
};

struct rg_policy_decision {
	enum rg_policy_answer answer;
	char action[RG_POLICY_ACTION_MAX];  /* "OK", "DUNNO", "REJECT 5.7.1 ..." */
	const char *event;    /* audit event: "relay", "reject", "message"; NULL: none */
	const char *reason;   /* for "reject": "sender_not_owned", ... */
};

/* Does this request need the client looked up (smtpd_access_policy at RCPT
 * or END-OF-MESSAGE)? Other requests are decided without it. */
bool rg_policy_wants_lookup(const struct rg_policy_request *req);
void rg_policy_decide(const struct rg_policy_request *req,
		      const struct rg_policy_auth *auth,
		      const struct rg_policy_rules *rules,
		      struct rg_policy_decision *d);
/* "trusted(10.0.0.0/24)", "grant(pop3,2026-11-29T09:00:00Z)", "none". */
char *rg_policy_auth_str(const struct rg_policy_auth *auth, char *buf, size_t len);

/* --- the server ---------------------------------------------------------- */

struct rg_policy_opts {
	/* "unix:/var/spool/postfix/private/relaygate" (absolute path),
	 * "inet:127.0.0.1:10040" or "inet:[::1]:10040", "inet:" optional (port
	 * 0: any free port, see rg_policy_address). */
	const char *listen;
	const char *socket_owner;  /* unix: "user" or "user:group"; NULL: keep */
	unsigned socket_mode;      /* unix: 0 = RG_POLICY_SOCKET_MODE_DEFAULT */
	unsigned read_timeout_ms;  /* a request must arrive whole within this,
				    * and a pending answer be read; 0 = default */
	unsigned idle_timeout_ms;  /* close a connection idle this long; 0 =
				    * default (longer than Postfix's 300 s
				    * smtpd_policy_service_max_idle) */
	unsigned max_request;      /* 0 = default; 256 .. 1 MiB */
	unsigned max_attrs;        /* 0 = default */
	unsigned max_conns;        /* 0 = default; more are accepted and closed */
	rg_policy_lookup_fn lookup;
	void *lookup_ctx;
	/* Borrowed, may be NULL; swap with the setters below. */
	const struct rg_senderlogins *sender_logins;
	struct rg_audit *audit;    /* NULL: audit lines go to the log only */
	const char *recipient_delimiter;  /* copied */
	bool reject_null_sender;
};

struct rg_policy_stats {
	uint64_t accepted;       /* connections accepted */
	uint64_t refused;        /* accepted and closed at once: max_conns reached */
	uint64_t requests;       /* complete requests received */
	uint64_t ok, dunno, reject;
	uint64_t malformed;      /* closed without an answer: bad request */
	uint64_t lookup_errors;  /* closed without an answer: lookup failed */
	uint64_t timeouts;       /* closed: stalled mid-request or not reading */
	uint64_t idle_closed;    /* closed after idle_timeout */
	unsigned connections;    /* open now */
};

struct rg_policy;

/* Create the socket and start listening. NULL with one line in err
 * ("listen unix:/x/y: bind: No such file or directory"). A stale unix
 * socket at the path is replaced; a live one (another instance) is an
 * error. */
struct rg_policy *rg_policy_new(const struct rg_policy_opts *o, char *err, size_t errlen);
/* The descriptor to watch for EPOLLIN, level-triggered (no EPOLLET): an
 * epoll fd that is readable while anything of ours is ready. */
int rg_policy_fd(const struct rg_policy *p);
/* Handle what is ready: accept, read, answer, write, expire timeouts.
 * Never blocks; does a bounded amount of work (up to 512 events) so the
 * caller's other sources are not starved under a flood, and the fd stays
 * readable if more is pending. Returns 0, or -errno if the server's own
 * epoll failed. Not thread-safe: call every rg_policy_* function of one
 * server from the same thread (the lookup callback runs in it too, and
 * must not block: a map lookup is a few microseconds). */
int rg_policy_process(struct rg_policy *p);
/* The bound address, "unix:/path" or "inet:127.0.0.1:43512". */
const char *rg_policy_address(const struct rg_policy *p);
/* Reload: point at a new map / audit sink (NULL: none). The caller owns
 * both and may free the old one as soon as this returns. */
void rg_policy_set_sender_logins(struct rg_policy *p, const struct rg_senderlogins *sl);
void rg_policy_set_audit(struct rg_policy *p, struct rg_audit *a);
void rg_policy_stats(const struct rg_policy *p, struct rg_policy_stats *st);
/* Close every connection and the socket (a unix socket is unlinked if it
 * is still ours). */
void rg_policy_free(struct rg_policy *p);

/* --- the lookup over relaygate's maps ------------------------------------ */

/*
 * Mirrors the gate's verdict order: an unexpired deny (rg_deny) -> NONE;
 * rg_trust4/6 LPM match -> TRUSTED; an unexpired grant under the masked key
 * (rg_grants, prefixes from rg_config) -> GRANT; else NONE. A map fd < 0 is
 * skipped. The subnet named is the widest trusted prefix holding the
 * client (found with a few LPM lookups, no map walk). Trusted interfaces
 * are invisible here (Postfix does not say where a client came in): put VPN
 * ranges in mynetworks or [trust] subnet.
 */
#define RG_POLICY_NAME_CACHE 64

struct rg_policy_maps {
	struct rg_gate *gate;
	/* private: rg_config cached for a second */
	uint64_t cfg_read_ns;
	unsigned v4_prefix, v6_prefix;
	/* private: the name of a trusted client's subnet, kept a second.
	 * Only the name: whether a client is trusted is looked up every time. */
	struct {
		struct rg_addr addr;
		uint64_t at_ns;
		char subnet[48];
	} names[RG_POLICY_NAME_CACHE];
};

void rg_policy_maps_init(struct rg_policy_maps *m, struct rg_gate *gate);
/* rg_policy_lookup_fn; ctx is a struct rg_policy_maps. */
int rg_policy_lookup_maps(void *ctx, const struct rg_addr *client,
			  struct rg_policy_auth *out);

#endif
