/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Audit trail of the Postfix policy service: one line per relay it permits
 * and per rejection, to the daemon's log (rg_info) and, when configured, to
 * the audit_log file.
 *
 * Line format (the file adds an RFC 3339 UTC timestamp in front):
 *
 *   EVENT client=ADDR user=USER auth=AUTH sender=<S> recipient=<R>
 *         queue_id=Q instance=I state=STATE action=ACTION [reason=WHY]
 *
 *   relay client=198.51.100.7 user=alice auth=grant(pop3,2026-11-29T09:00:00Z)
 *         sender=<alice@example.org> recipient=<bob@example.net>
 *         queue_id=4XyZ1 instance=8c1.6a2b.0 state=RCPT action=OK
 *   (one line in the log)
 *
 * EVENT is "relay" (relay permitted), "reject" (refused by us) or "message"
 * (end-of-message of an authorized client: ties the queue id to the relay
 * lines of the same instance). auth is trusted(CIDR) or
 * grant(SERVICE,LOGIN-TIME). A missing value is written "-"; the null sender
 * is "<>".
 *
 * Injection safety: every value comes from Postfix and many from the SMTP
 * client, so each is escaped. A value never contains a space, a control
 * character, '=', '"', '\', '<', '>' or a byte >= 0x7f: those are written as
 * \xHH (and a value that is exactly "-" as \x2d). A line therefore always
 * splits into space-separated KEY=VALUE tokens at the first '=' of each, and
 * no value can forge another field or another line.
 */
#ifndef RG_AUDIT_H
#define RG_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

/* Longest line rg_audit_format produces (values are cut, marked "..."). */
#define RG_AUDIT_LINE_MAX 2048

struct rg_audit_rec {
	const char *event;       /* "relay", "reject", "message" */
	const char *client;      /* client_address */
	const char *user;        /* grant's user; NULL for a trusted subnet */
	const char *auth;        /* "trusted(10.0.0.0/24)", "grant(pop3,...)" */
	const char *sender;      /* envelope sender without <>; "" = null sender */
	const char *recipient;   /* NULL/"" when Postfix sent none */
	const char *queue_id;
	const char *instance;
	const char *state;       /* protocol_state */
	const char *action;      /* "OK", "DUNNO", "REJECT" */
	const char *reason;      /* NULL, or why it was rejected */
};

struct rg_audit;

/*
 * path: the audit_log file (opened O_APPEND, created 0640), or NULL for the
 * daemon's log only. Returns NULL with "path: reason" in err.
 */
struct rg_audit *rg_audit_open(const char *path, char *err, size_t errlen);
/*
 * Reopen the file by name (after logrotate moved it; call on SIGHUP). On
 * failure the old file stays in use and -1 is returned with err filled.
 */
int rg_audit_reopen(struct rg_audit *a, char *err, size_t errlen);
void rg_audit_close(struct rg_audit *a);
/* Also log each line with rg_info() (default true). */
void rg_audit_set_log(struct rg_audit *a, bool to_log);

/* Write one record: the daemon's log, and the file with one write(2). */
void rg_audit_emit(struct rg_audit *a, const struct rg_audit_rec *r);

/* The line (no timestamp, no newline) into buf; returns its length. */
size_t rg_audit_format(char *buf, size_t len, const struct rg_audit_rec *r);
/*
 * Escape src into dst as described above (bracket: a <...> value, where the
 * empty string is meaningful and "-" needs no escape). Always NUL-terminates;
 * output longer than len is cut at a character boundary and ends in "...".
 * Returns the length written.
 */
size_t rg_audit_escape(char *dst, size_t len, const char *src, bool bracket);

#endif
