/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Push source `type = dovecot-auth-policy`: Dovecot's auth policy HTTP
 * interface, served with libmicrohttpd on its own thread.
 *
 * Dovecot (auth_policy_server_url = http://127.0.0.1:8088/, with
 * auth_policy_report_after_auth = yes and an auth_policy_hash_nonce) POSTs
 * a JSON object to URL?command=allow before/after authentication and to
 * URL?command=report after it. The object's members come from
 * auth_policy_request_attributes (string values; a key with "/" makes a
 * nested object); report adds "success" and "policy_reject" (booleans).
 *
 *  - allow: answered {"status":0,"msg":""}. relaygate never rejects or
 *    delays an IMAP/POP3 login; it only learns from the reports.
 *  - report: success=true -> a LOGIN event, success=false -> a FAILURE
 *    event (not when policy_reject=true: that failure was a policy
 *    decision, not a password). Address from "remote" (one no client can
 *    have, such as 0.0.0.0 or ff02::1, is a bad request), user from "login",
 *    service from "protocol" (pop3, imap, smtp/submission, else other).
 *    Events go to an rg_evqueue that the main loop drains.
 *  - The body is limited (default 16 KiB: 413 beyond) and parsed strictly:
 *    RFC 8259 JSON, valid UTF-8, nesting <= 16, no duplicate known keys,
 *    no NUL; anything else gets 400 and no event.
 *  - api_header: Dovecot's auth_policy_server_api_header, "Name: value" (a
 *    bare value means "X-API-Key: value"). When set, a request without that
 *    header and value gets 401: any local process can reach 127.0.0.1, and
 *    a forged report would otherwise be a forged grant. Set it.
 */
#ifndef RG_AUTHPOLICY_H
#define RG_AUTHPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "event.h"

#define RG_AUTHPOLICY_LISTEN_DEFAULT "127.0.0.1:8088"
#define RG_AUTHPOLICY_BODY_MAX_DEFAULT (16 * 1024)

/* The members of a request relaygate uses (all others are checked and
 * ignored). Strings are decoded; a longer value is truncated (flagged). */
struct rg_authpolicy_req {
	bool has_login, has_remote, has_protocol, has_success, has_policy_reject;
	bool login_truncated;
	bool success, policy_reject;
	char login[RG_EVENT_USER_MAX];
	char remote[64];
	char protocol[32];
};

/* Parse a request body. Returns 0, or -1 with a static reason in *why.
 * Pure: no allocation, no I/O; fuzzed. */
int rg_authpolicy_parse(const char *body, size_t len, struct rg_authpolicy_req *req,
			const char **why);

/* The event a report means: 1 and ev filled (origin RG_ORIGIN_PUSH, source
 * NULL); 0 when it means no event (why says which: no address, policy
 * reject); -1 when it is invalid (why). */
int rg_authpolicy_event(const struct rg_authpolicy_req *req, struct rg_auth_event *ev,
			const char **why);

struct rg_evqueue;
struct rg_authpolicy;

struct rg_authpolicy_opts {
	const char *listen;          /* NULL: RG_AUTHPOLICY_LISTEN_DEFAULT */
	const char *source;          /* ev->source; NULL: "dovecot-auth-policy" */
	const char *api_header;      /* NULL or "": no check */
	size_t max_body;             /* 0: RG_AUTHPOLICY_BODY_MAX_DEFAULT */
};

/* Start serving; events go to q (which must outlive the server). Returns 0
 * or -errno with one line in err. */
int rg_authpolicy_start(struct rg_authpolicy **out, const struct rg_authpolicy_opts *o,
			struct rg_evqueue *q, char *err, size_t errlen);
/* Stop (waits for the HTTP thread). NULL is fine. */
void rg_authpolicy_stop(struct rg_authpolicy *ap);
unsigned rg_authpolicy_port(const struct rg_authpolicy *ap);

struct rg_authpolicy_stats {
	uint64_t allow;              /* command=allow answered */
	uint64_t report;             /* command=report received */
	uint64_t logins, failures;   /* events queued */
	uint64_t ignored;            /* reports meaning no event */
	uint64_t bad;                /* 400/404/405/413 answers */
	uint64_t unauthorized;       /* 401 answers */
	uint64_t queue_full;         /* events lost: main loop too slow */
};
void rg_authpolicy_get_stats(const struct rg_authpolicy *ap, struct rg_authpolicy_stats *s);

struct rg_mbuf;
/* relaygate_authpolicy_requests_total{source,result}. Any thread. */
void rg_authpolicy_metrics(const struct rg_authpolicy *ap, struct rg_mbuf *b);

#endif
