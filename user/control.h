/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Control socket: a line protocol for login/failure events from other
 * programs (a Dovecot post-login script, relaygatectl event).
 *
 *   request:  LOGIN <addr> <user> [<service>]\n
 *             FAILURE <addr> <user> [<service>]\n
 *   reply:    OK\n   or   ERR <reason>\n
 *
 * <user>: 1..255 bytes, printable, no spaces. <service>: pop3, imap, smtp,
 * other. Lines longer than 512 bytes, unknown verbs or bad fields get
 * "ERR <reason>" and the connection is closed.
 */
#ifndef RG_CONTROL_H
#define RG_CONTROL_H

#include <stddef.h>
#include "event.h"

#define RG_CONTROL_SOCKET_DEFAULT "/run/relaygate/control.sock"
#define RG_CONTROL_LINE_MAX 512

/* Client side (relaygatectl event): connect, send one request, read the
 * reply. Returns 0 on OK; -1 with a one-line reason in err otherwise
 * (connect failure, ERR reply, timeout after 5 s). */
int rg_control_request(const char *sock_path, enum rg_event_kind kind,
		       const char *addr, const char *user, const char *service,
		       char *err, size_t errlen);

#endif
