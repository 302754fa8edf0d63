/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * A bounded, thread-safe queue of auth events from a producer thread (the
 * auth policy HTTP server) to the daemon's main loop. The main loop watches
 * rg_evqueue_fd() (an eventfd, EPOLLIN while events wait) and drains.
 * The event's source name is copied, so a producer may go away while its
 * events wait.
 */
#ifndef RG_EVQUEUE_H
#define RG_EVQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "event.h"

#define RG_EVQUEUE_CAP_DEFAULT 4096

struct rg_evqueue;

/* cap 0: RG_EVQUEUE_CAP_DEFAULT. Returns 0 or -errno. */
int rg_evqueue_new(struct rg_evqueue **out, size_t cap);
void rg_evqueue_free(struct rg_evqueue *q);
int rg_evqueue_fd(const struct rg_evqueue *q);
/* Any thread. Returns 0, or -ENOSPC when full (the event is dropped and
 * counted). */
int rg_evqueue_push(struct rg_evqueue *q, const struct rg_auth_event *ev);
/* Main loop: take up to max events (0: all waiting) and call cb for each,
 * outside the lock. Returns how many were delivered. */
size_t rg_evqueue_drain(struct rg_evqueue *q, size_t max,
			void (*cb)(const struct rg_auth_event *ev, void *ctx), void *ctx);
/* Events dropped because the queue was full; events waiting now. */
uint64_t rg_evqueue_dropped(struct rg_evqueue *q);
size_t rg_evqueue_len(struct rg_evqueue *q);

#endif
