/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * An authentication event: what every source (log presets, custom regex,
 * dovecot auth policy push, control socket) produces and what grants.c turns
 * into a grant or a deny. Data flows one way:
 *   source -> struct rg_auth_event -> grants.c -> rg_grant_put/rg_deny_put -> map
 */
#ifndef RG_EVENT_H
#define RG_EVENT_H

#include "relaygate.h"

#define RG_EVENT_USER_MAX 256

enum rg_event_kind { RG_EV_LOGIN = 1, RG_EV_FAILURE = 2 };

struct rg_auth_event {
	enum rg_event_kind kind;
	struct rg_addr addr;             /* client address, unmasked */
	char user[RG_EVENT_USER_MAX];    /* may be empty for failures */
	enum rg_service service;
	enum rg_origin origin;
	const char *source;              /* config section name, e.g. "dovecot" */
};

#endif
