/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Entries as text: the checks behind relaygatectl's arguments and the line
 * formats of its --file inputs (one entry a line), shared so that both
 * forms accept and reject the same values with the same words.
 *
 * Errors are one line, "<value>: <reason>", the value made safe to print
 * (control characters shown as '?', a long value cut with "...").
 */
#ifndef RG_BULK_H
#define RG_BULK_H

#include <stddef.h>
#include <stdint.h>
#include "relaygate.h"

/* Longest line of an input file, without its end of line. */
#define RG_LINE_MAX 4096

/* value made safe for a one-line message: control bytes as '?', cut at
 * about 90 bytes with "...". Returns buf (at least 96 bytes is enough). */
const char *rg_shown(const char *s, char *buf, size_t len);

/* A grant or deny address: one IPv4 or IPv6 address, not a CIDR. */
int rg_arg_addr(const char *s, struct rg_addr *a, char *err, size_t errlen);
/* A trusted subnet: a CIDR or a bare address, host bits clear (the error
 * names the network that was probably meant). */
int rg_arg_cidr(const char *s, struct rg_addr *a, unsigned *prefixlen,
		char *err, size_t errlen);
/* A duration of more than 0 ("30m"); what names it in errors ("TTL"). */
int rg_arg_ttl(const char *what, const char *s, uint64_t *sec, char *err, size_t errlen);
/* A user name as the maps keep it: 1..63 bytes, no spaces or control
 * characters. */
int rg_arg_user(const char *s, char *err, size_t errlen);

/* One line of a grant file. */
struct rg_grant_line {
	struct rg_addr addr;
	uint64_t ttl_sec;               /* 0: not given (the default applies) */
	char user[RG_USER_LEN];         /* "": not given */
};

/*
 * A line of a grant file: "ADDR [TTL [USER]]", fields separated by blanks
 * (spaces, tabs; a trailing \r is ignored); TTL "-" stands for the default,
 * so "ADDR - USER" gives a user with the default TTL. Each field is checked
 * as rg_arg_addr, rg_arg_ttl("TTL") and rg_arg_user check it.
 * Returns 1 with *out filled, 0 for a blank line or a comment (first
 * non-blank character '#'), -1 with err.
 */
int rg_grant_line_parse(const char *line, struct rg_grant_line *out, char *err, size_t errlen);

/* A line of a trusted subnet file: one CIDR as rg_arg_cidr takes it.
 * Returns 1, 0 (blank or comment) or -1 as rg_grant_line_parse. */
int rg_cidr_line_parse(const char *line, struct rg_addr *a, unsigned *prefixlen,
		       char *err, size_t errlen);

/*
 * Read path ("-": standard input) a line at a time and call cb with each
 * line, NUL-terminated, its end of line (\n) removed. Stops at the first
 * line cb fails (cb returns non-zero and fills err). A line longer than
 * RG_LINE_MAX or holding a NUL byte is an error too.
 * Returns 0, or -1 with err "line N: <reason>" or "<path>: <reason>".
 */
int rg_lines_read(const char *path,
		  int (*cb)(const char *line, void *ctx, char *err, size_t errlen),
		  void *ctx, char *err, size_t errlen);

#endif
