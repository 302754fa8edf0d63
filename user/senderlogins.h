/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * sender_logins: which envelope senders a granted user may use.
 *
 * File format, one entry per line:
 *
 *     # comment (from '#' to the end of the line)
 *     alice: alice@example.org, @alice.example
 *     bob:   bob@example.org
 *     alice: alice.smith@example.org       # a user may appear again: lists merge
 *
 * - The user is the login name the grant carries (what Dovecot logged), at
 *   most RG_USER_LEN - 2 (62) bytes. The grant map keeps RG_USER_LEN - 1
 *   (63) bytes of a login and cuts a longer one silently, so a stored name
 *   of 63 bytes may be the start of a longer login: it owns nothing (else
 *   the login "U" + "x" would pass as a 63-byte user U), and the parser
 *   refuses 63 bytes and more. Printable ASCII or UTF-8, no space, ':',
 *   ',' or '#'. Compared exactly (case-sensitive).
 * - Addresses are separated by commas: "local@domain" owns that address,
 *   "@domain" owns every address in that domain (not its subdomains: list
 *   them too). No quoting, no <>, no spaces inside an address.
 * - Addresses and domains compare case-insensitively (as Postfix lookups do).
 * - Every error names file:line and the reason; a file with any error loads
 *   nothing.
 */
#ifndef RG_SENDERLOGINS_H
#define RG_SENDERLOGINS_H

#include <stddef.h>

struct rg_senderlogins;

/* Largest file accepted (a map of a few hundred thousand users). */
#define RG_SENDERLOGINS_MAX_BYTES (64u << 20)
/* Longest line. */
#define RG_SENDERLOGINS_MAX_LINE 8192

/*
 * Parse text[0..len). name is used in error messages ("name:12: reason").
 * Returns the map, or NULL with one line in err.
 */
struct rg_senderlogins *rg_senderlogins_parse(const char *text, size_t len,
					      const char *name,
					      char *err, size_t errlen);
/* Read and parse a file. NULL with "path: reason" or "path:line: reason". */
struct rg_senderlogins *rg_senderlogins_load(const char *path,
					     char *err, size_t errlen);
void rg_senderlogins_free(struct rg_senderlogins *sl);

/* Number of distinct users and of (user, address) entries. */
size_t rg_senderlogins_users(const struct rg_senderlogins *sl);
size_t rg_senderlogins_entries(const struct rg_senderlogins *sl);

enum rg_sl_result {
	RG_SL_OWNED = 0,      /* sender is one of user's addresses or domains */
	RG_SL_NOT_OWNED,      /* user is listed, sender is not theirs */
	RG_SL_UNKNOWN_USER,   /* user is not in the map at all */
	RG_SL_USER_TOO_LONG,  /* user of RG_USER_LEN - 1 bytes or more: maybe
			       * cut by the grant map, owns nothing */
};

/*
 * Does user own sender ("local@domain", without <>)? An empty sender is
 * never owned (the caller decides what the null sender means). A user of
 * RG_USER_LEN - 1 bytes or more gets RG_SL_USER_TOO_LONG, whatever the
 * map holds.
 * delims: Postfix recipient_delimiter characters (e.g. "+"), or NULL/"" for
 * none; with "+", alice+lists@example.org is also tried as
 * alice@example.org, like Postfix's own sender login lookups.
 */
enum rg_sl_result rg_senderlogins_check(const struct rg_senderlogins *sl,
					const char *user, const char *sender,
					const char *delims);

#endif
