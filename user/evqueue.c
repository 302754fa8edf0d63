// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Bounded event queue, mutex + eventfd. See evqueue.h. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "evqueue.h"

#define DRAIN_BATCH 64

struct slot {
	struct rg_auth_event ev;
	char source[64];
};

struct rg_evqueue {
	pthread_mutex_t lock;
	int efd;
	size_t cap, head, len;
	uint64_t dropped;
	struct slot *slots;
};

int rg_evqueue_new(struct rg_evqueue **out, size_t cap)
{
	struct rg_evqueue *q;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->cap = cap ? cap : RG_EVQUEUE_CAP_DEFAULT;
	q->slots = calloc(q->cap, sizeof(*q->slots));
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!q->slots || q->efd < 0) {
		int e = q->slots ? -errno : -ENOMEM;

		if (q->efd >= 0)
			close(q->efd);
		free(q->slots);
		free(q);
		return e;
	}
	pthread_mutex_init(&q->lock, NULL);
	*out = q;
	return 0;
}

void rg_evqueue_free(struct rg_evqueue *q)
{
	if (!q)
		return;
	close(q->efd);
	pthread_mutex_destroy(&q->lock);
	free(q->slots);
	free(q);
}

int rg_evqueue_fd(const struct rg_evqueue *q)
{
	return q->efd;
}

int rg_evqueue_push(struct rg_evqueue *q, const struct rg_auth_event *ev)
{
	uint64_t one = 1;
	struct slot *s;
	ssize_t r;

	pthread_mutex_lock(&q->lock);
	if (q->len == q->cap) {
		q->dropped++;
		pthread_mutex_unlock(&q->lock);
		return -ENOSPC;
	}
	s = &q->slots[(q->head + q->len) % q->cap];
	s->ev = *ev;
	snprintf(s->source, sizeof(s->source), "%s", ev->source ? ev->source : "");
	s->ev.source = NULL;
	q->len++;
	pthread_mutex_unlock(&q->lock);
	/* Cannot fail short of overflowing a 64-bit counter. */
	r = write(q->efd, &one, sizeof(one));
	(void)r;
	return 0;
}

size_t rg_evqueue_drain(struct rg_evqueue *q, size_t max,
			void (*cb)(const struct rg_auth_event *ev, void *ctx), void *ctx)
{
	struct slot batch[DRAIN_BATCH];
	size_t done = 0;
	uint64_t cnt;
	ssize_t r;

	/* Reset the eventfd first: a push racing with us re-arms it. */
	r = read(q->efd, &cnt, sizeof(cnt));
	(void)r;
	for (;;) {
		size_t n = 0, want = DRAIN_BATCH;

		if (max && max - done < want)
			want = max - done;
		pthread_mutex_lock(&q->lock);
		while (n < want && q->len) {
			batch[n++] = q->slots[q->head];
			q->head = (q->head + 1) % q->cap;
			q->len--;
		}
		pthread_mutex_unlock(&q->lock);
		for (size_t i = 0; i < n; i++) {
			batch[i].ev.source = batch[i].source[0] ? batch[i].source : NULL;
			cb(&batch[i].ev, ctx);
		}
		done += n;
		if (n < want || (max && done >= max))
			break;
	}
	/* Stopped at max with events left: keep the fd readable. */
	if (rg_evqueue_len(q)) {
		uint64_t one = 1;

		r = write(q->efd, &one, sizeof(one));
		(void)r;
	}
	return done;
}

uint64_t rg_evqueue_dropped(struct rg_evqueue *q)
{
	uint64_t d;

	pthread_mutex_lock(&q->lock);
	d = q->dropped;
	pthread_mutex_unlock(&q->lock);
	return d;
}

size_t rg_evqueue_len(struct rg_evqueue *q)
{
	size_t n;

	pthread_mutex_lock(&q->lock);
	n = q->len;
	pthread_mutex_unlock(&q->lock);
	return n;
}
