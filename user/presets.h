/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Log-line presets: successful and failed logins of Dovecot (2.2-2.4),
 * Postfix SASL, Courier and Cyrus, or a custom pair of regular expressions,
 * turned into struct rg_auth_event.
 *
 *	p = rg_preset_new(RG_PRESET_DOVECOT, NULL, NULL, err, sizeof(err));
 *	for each line:
 *		switch (rg_preset_parse(p, line, len, &ev)) {
 *		case 1:  an event: grant or count a failure
 *		case 0:  not a login line of this program: ignore
 *		case -1: looked like one but is unusable: count it, log
 *		         rg_preset_why(p)
 *		}
 *
 * Every pattern is anchored at the start of the line: an optional syslog
 * header (RFC 3164 "Nov 29 08:00:01 host prog[pid]: ", ISO timestamps as
 * rsyslog and journalctl -o short-iso write them, RFC 5424 "<PRI>1 ..."),
 * then the logging program's tag, then the fixed start of its message.
 * Text a client controls (a user name, a MAIL FROM, a HELO) only ever
 * appears after that, so it cannot make another program's line or a later
 * field look like a login (CVE-2001-1075). Where a client-controlled field
 * precedes the address (Dovecot's key=value elements, Courier's user=), a
 * line naming the address key twice is rejected.
 *
 * Limits of log parsing: whoever can write to the log (any local user can
 * call logger(1) with the tag "dovecot") can forge a line. Read a log file
 * only the mail programs write (Dovecot's log_path, Postfix's maillog_file)
 * or use the dovecot-auth-policy push source where that matters.
 *
 * A preset keeps its PCRE2 match data: use one preset per thread.
 */
#ifndef RG_PRESETS_H
#define RG_PRESETS_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"

enum rg_preset_type {
	RG_PRESET_DOVECOT = 1,       /* pop3/imap/submission/managesieve-login */
	RG_PRESET_POSTFIX_SASL,      /* smtpd client=... sasl_username=, SASL ... failed */
	RG_PRESET_COURIER,           /* LOGIN, user=...  /  LOGIN FAILED, ... */
	RG_PRESET_CYRUS,             /* login: ... User logged in  /  badlogin: */
	RG_PRESET_REGEX,             /* match/failure with named groups ip, user */
	RG_PRESET_MAX,
};

/* Custom patterns: named groups "ip" (required) and "user" (required in
 * match, optional in failure); an optional group "service" whose text
 * names pop3, imap, smtp/submission. Patterns are anchored at the start of
 * the line (PCRE2_ANCHORED). */
#define RG_PRESET_PATTERN_MAX 2048

/* "dovecot", "postfix-sasl", "courier", "cyrus", "regex". */
const char *rg_preset_type_name(enum rg_preset_type t);
int rg_preset_type_parse(const char *s, enum rg_preset_type *t);

struct rg_preset;

/*
 * Compile a preset. match and failure apply to RG_PRESET_REGEX only (at
 * least one of them given) and must be NULL otherwise. NULL on error with
 * one line in err, e.g. "match: no named group (?<ip>...)" or
 * "failure: PCRE2 error at offset 4: missing closing parenthesis".
 */
struct rg_preset *rg_preset_new(enum rg_preset_type type, const char *match,
				const char *failure, char *err, size_t errlen);
void rg_preset_free(struct rg_preset *p);

/*
 * Parse one line (len bytes; no NUL needed; a trailing "\r\n" is ignored).
 * Returns 1 and fills *ev (kind, addr, user, service, origin =
 * RG_ORIGIN_LOG; source = NULL: the caller names it); 0 for a line that is
 * not a login or login failure of this program; -1 for one that is but
 * cannot be used (unparsable or impossible address, duplicate address
 * field, overlong or control-character user name, ...): why in
 * rg_preset_why(). ev->service is RG_SERVICE_NONE when the line does not
 * say (the source's configured service applies).
 */
int rg_preset_parse(struct rg_preset *p, const char *line, size_t len,
		    struct rg_auth_event *ev);

/* Static reason of the last -1 from rg_preset_parse. */
const char *rg_preset_why(const struct rg_preset *p);

struct rg_preset_stats {
	uint64_t lines;      /* lines given to rg_preset_parse */
	uint64_t logins;     /* returned 1 with RG_EV_LOGIN */
	uint64_t failures;   /* returned 1 with RG_EV_FAILURE */
	uint64_t rejected;   /* returned -1 */
};
void rg_preset_get_stats(const struct rg_preset *p, struct rg_preset_stats *st);

#endif
