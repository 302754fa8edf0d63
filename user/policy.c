// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Postfix policy service: request framing and parsing, the decision, the
 * non-blocking server, and the lookup over relaygate's maps. See policy.h
 * for the protocol, the decision table and the Postfix configuration.
 *
 * Server shape: one epoll set of our own (listening socket, connections, a
 * timerfd); its fd goes into the daemon's loop. Each connection has one
 * fixed buffer of max_request bytes and one reply slot: while a reply is
 * not fully written, no further request of that connection is processed
 * (no unbounded output queue). Connections sit on one of two lists ordered
 * by deadline (every entry of a list has the same timeout, so appending at
 * the tail keeps it sorted): IDLE (between requests, idle_timeout) and BUSY
 * (a partial request or an unread reply, read_timeout from its start). The
 * timerfd is armed for the earliest head, so timeouts cost O(1) per request.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "audit.h"
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

/* ------------------------------------------------------------------------ */
/* Framing and parsing                                                       */

size_t rg_policy_frame(const char *buf, size_t len, size_t *scan)
{
	size_t i = *scan;

	while (i < len) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t ll;

		if (!nl)
			break;
		ll = nl - (buf + i);
		if (ll == 0 || (ll == 1 && buf[i] == '\r')) {
			*scan = 0;
			return nl - buf + 1;
		}
		i = nl - buf + 1;
	}
	*scan = i;          /* the start of the incomplete line */
	return 0;
}

struct known_attr {
	const char *name;
	size_t off;
};

#define KA(n) { #n, offsetof(struct rg_policy_request, n) }
static const struct known_attr known_attrs[] = {
	KA(request), KA(protocol_state), KA(client_address), KA(sender),
	KA(recipient), KA(recipient_count), KA(queue_id), KA(instance),
	KA(sasl_username),
};
#undef KA

int rg_policy_parse(char *buf, size_t len, unsigned max_attrs,
		    struct rg_policy_request *req, const char **why)
{
	size_t i = 0, k;

	memset(req, 0, sizeof(*req));
	if (memchr(buf, '\0', len)) {
		*why = "NUL byte in request";
		return -1;
	}
	while (i < len) {
		char *line = buf + i, *eq;
		char *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) : len - i;

		i += ll + (nl ? 1 : 0);
		if (ll && line[ll - 1] == '\r')
			ll--;
		if (ll == 0)
			break;                  /* the terminating empty line */
		if (!nl) {
			/* no byte of ours after it to hold the NUL: a framed
			 * request never ends so, any other input may */
			*why = "last line without a newline";
			return -1;
		}
		line[ll] = '\0';
		eq = memchr(line, '=', ll);
		if (!eq) {
			*why = "attribute line without '='";
			return -1;
		}
		if (eq == line) {
			*why = "empty attribute name";
			return -1;
		}
		if (++req->nattrs > max_attrs) {
			*why = "too many attributes";
			return -1;
		}
		*eq = '\0';
		/* every name we use starts with one of these */
		if (!strchr("rpcsqi", line[0]))
			continue;
		for (k = 0; k < sizeof(known_attrs) / sizeof(known_attrs[0]); k++) {
			const char **slot = (const char **)((char *)req + known_attrs[k].off);

			if (line[0] != known_attrs[k].name[0] || strcmp(line, known_attrs[k].name))
				continue;
			if (!*slot)              /* the first of repeated names wins */
				*slot = eq + 1;
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Decision                                                                  */

enum pstate { ST_OTHER, ST_RCPT, ST_EOM };

static enum pstate classify(const struct rg_policy_request *req)
{
	if (!req->request || strcmp(req->request, "smtpd_access_policy"))
		return ST_OTHER;
	if (!req->protocol_state)
		return ST_OTHER;
	if (!strcasecmp(req->protocol_state, "RCPT"))
		return ST_RCPT;
	if (!strcasecmp(req->protocol_state, "END-OF-MESSAGE"))
		return ST_EOM;
	return ST_OTHER;
}

bool rg_policy_wants_lookup(const struct rg_policy_request *req)
{
	return classify(req) != ST_OTHER;
}

static const char *service_name(enum rg_service s)
{
	/* "grant(login,...)" when the source did not say which service */
	if (s == RG_SERVICE_NONE || (unsigned)s >= RG_SERVICE_MAX)
		return "login";
	return rg_service_name(s);
}

char *rg_policy_auth_str(const struct rg_policy_auth *auth, char *buf, size_t len)
{
	char t[32];
	struct tm tm;
	time_t when;

	switch (auth->kind) {
	case RG_POLICY_TRUSTED:
		if (auth->subnet[0])
			snprintf(buf, len, "trusted(%.*s)", 60, auth->subnet);
		else
			snprintf(buf, len, "trusted");
		break;
	case RG_POLICY_GRANT:
		when = auth->granted;
		if (when > 0 && gmtime_r(&when, &tm) &&
		    strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm))
			snprintf(buf, len, "grant(%s,%s)", service_name(auth->service), t);
		else
			snprintf(buf, len, "grant(%s)", service_name(auth->service));
		break;
	default:
		snprintf(buf, len, "none");
	}
	return buf;
}

/* Client-controlled text going back into an SMTP reply: printable ASCII
 * only, bounded. */
static void reply_safe(char *dst, size_t len, const char *src, size_t max)
{
	size_t i, o = 0;

	for (i = 0; src[i] && o + 1 < len; i++) {
		if (i == max) {
			if (o + 4 < len) {
				memcpy(dst + o, "...", 3);
				o += 3;
			}
			break;
		}
		dst[o++] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
	}
	dst[o] = '\0';
}

void rg_policy_decide(const struct rg_policy_request *req,
		      const struct rg_policy_auth *auth,
		      const struct rg_policy_rules *rules,
		      struct rg_policy_decision *d)
{
	enum pstate st = classify(req);
	const char *sender = req->sender ? req->sender : "";
	const char *reason = NULL;

	memset(d, 0, sizeof(*d));
	d->answer = RG_ANSWER_DUNNO;
	strcpy(d->action, "DUNNO");
	if (st == ST_OTHER || auth->kind == RG_POLICY_NONE)
		return;

	if (auth->kind == RG_POLICY_GRANT && rules && rules->sender_logins) {
		if (!*sender) {
			if (rules->reject_null_sender)
				reason = "null_sender";
		} else if (!auth->user[0]) {
			/* relaygatectl grant add without --user: no one whose
			 * senders could be checked */
			reason = "grant_without_user";
		} else {
			switch (rg_senderlogins_check(rules->sender_logins, auth->user,
						      sender, rules->recipient_delimiter)) {
			case RG_SL_OWNED:
				break;
			case RG_SL_NOT_OWNED:
				reason = "sender_not_owned";
				break;
			case RG_SL_UNKNOWN_USER:
				reason = "user_not_in_sender_logins";
				break;
			case RG_SL_USER_TOO_LONG:
				/* the grant kept RG_USER_LEN - 1 bytes of a
				 * login that may have been longer */
				reason = "user_name_too_long_to_check";
				break;
			}
		}
	}
	if (reason) {
		char s[300], u[RG_USER_LEN + 8];

		reply_safe(s, sizeof(s), sender, 256);
		reply_safe(u, sizeof(u), auth->user, RG_USER_LEN - 1);
		d->answer = RG_ANSWER_REJECT;
		if (!strcmp(reason, "grant_without_user"))
			snprintf(d->action, sizeof(d->action),
				 "REJECT 5.7.1 <%s> not owned: the client's grant names no user", s);
		else
			snprintf(d->action, sizeof(d->action),
				 "REJECT 5.7.1 <%s> not owned by user %s%s", s, u[0] ? u : "?",
				 strcmp(reason, "user_name_too_long_to_check") ? "" :
				 " (login name too long to check)");
		d->event = "reject";
		d->reason = reason;
		return;
	}
	if (st == ST_RCPT) {
		d->answer = RG_ANSWER_OK;
		strcpy(d->action, "OK");
		d->event = "relay";
	} else {
		d->event = "message";
	}
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */

enum { L_IDLE = 0, L_BUSY = 1, L_NONE = 2 };

/* Longest reply: "action=" + action + "\n\n". */
#define REPLY_MAX (RG_POLICY_ACTION_MAX + 16)

struct conn {
	struct conn *prev, *next;    /* on lists[list], or the graveyard */
	int list;
	bool dead;
	int fd;
	uint32_t events;             /* current epoll mask */
	uint64_t deadline;           /* ms, CLOCK_MONOTONIC */
	size_t used, scan;           /* bytes in buf; framing resume point */
	size_t out_len, out_off;     /* pending reply */
	char out[REPLY_MAX];
	char buf[];                  /* max_request bytes */
};

struct clist {
	struct conn *head, *tail;
};

struct rg_policy {
	int efd, lfd, tfd;
	bool lfd_paused;
	uint64_t resume_at;          /* ms: retry accept after EMFILE */
	uint64_t armed;              /* ms the timerfd fires at; 0: disarmed */
	struct clist lists[2];
	uint64_t timeout[2];         /* ms */
	struct conn *graveyard;      /* closed during this process() call */
	unsigned nconns;
	unsigned max_request, max_attrs, max_conns;
	rg_policy_lookup_fn lookup;
	void *lookup_ctx;
	struct rg_policy_rules rules;
	char *delims;
	struct rg_audit *audit;
	struct rg_policy_stats st;
	char *unix_path;             /* to unlink, if still ours */
	dev_t sock_dev;
	ino_t sock_ino;
	char bound[160];
	/* warning rate limit: 20 per 10 s */
	uint64_t warn_window;
	unsigned warn_count;
	unsigned long warn_suppressed;
};

/* Distinct addresses tag the listening socket and the timer in epoll. */
#define TAG_LISTEN(p) ((void *)&(p)->lfd)
#define TAG_TIMER(p)  ((void *)&(p)->tfd)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool warn_ok(struct rg_policy *p)
{
	uint64_t now = now_ms();

	if (now - p->warn_window >= 10000) {
		if (p->warn_suppressed)
			rg_warn("policy: %lu more warnings suppressed", p->warn_suppressed);
		p->warn_window = now;
		p->warn_count = 0;
		p->warn_suppressed = 0;
	}
	if (p->warn_count >= 20) {
		p->warn_suppressed++;
		return false;
	}
	p->warn_count++;
	return true;
}

/* Who is on the other end, for a log line. */
static void peer_str(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[INET6_ADDRSTRLEN];

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
			snprintf(buf, len, "%s:%u", a, ntohs(s4->sin_port));
			return;
		}
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
			snprintf(buf, len, "[%s]:%u", a, ntohs(s6->sin6_port));
			return;
		}
		if (ss.ss_family == AF_UNIX) {
			struct ucred uc;
			socklen_t ul = sizeof(uc);

			if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul)) {
				snprintf(buf, len, "pid %d uid %u", uc.pid, uc.uid);
				return;
			}
		}
	}
	snprintf(buf, len, "fd %d", fd);
}

static void list_del(struct rg_policy *p, struct conn *c)
{
	struct clist *l;

	if (c->list == L_NONE)
		return;
	l = &p->lists[c->list];
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	c->prev = c->next = NULL;
	c->list = L_NONE;
}

static void arm_timer(struct rg_policy *p, uint64_t at)
{
	struct itimerspec its = { 0 };

	if (!at)
		return;
	if (p->armed && p->armed <= at)
		return;              /* fires earlier anyway and re-arms then */
	its.it_value.tv_sec = at / 1000;
	its.it_value.tv_nsec = (at % 1000) * 1000000;
	if (timerfd_settime(p->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		p->armed = at;
}

/* Append c to list with deadline now + that list's timeout. */
static void list_put(struct rg_policy *p, struct conn *c, int list, uint64_t now)
{
	struct clist *l = &p->lists[list];

	list_del(p, c);
	c->deadline = now + p->timeout[list];
	c->list = list;
	c->prev = l->tail;
	c->next = NULL;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	if (!p->armed || c->deadline < p->armed)
		arm_timer(p, c->deadline);
}

static void resume_accept(struct rg_policy *p)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = TAG_LISTEN(p) };

	if (!p->lfd_paused)
		return;
	if (epoll_ctl(p->efd, EPOLL_CTL_MOD, p->lfd, &ev) == 0) {
		p->lfd_paused = false;
		p->resume_at = 0;
	}
}

static void conn_close(struct rg_policy *p, struct conn *c)
{
	if (c->dead)
		return;
	list_del(p, c);
	epoll_ctl(p->efd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	c->dead = true;
	/* freed at the end of rg_policy_process(): a later event of the same
	 * batch may still point at it */
	c->next = p->graveyard;
	p->graveyard = c;
	p->nconns--;
	p->st.connections = p->nconns;
	resume_accept(p);
}

static void conn_set_events(struct rg_policy *p, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return;
	if (epoll_ctl(p->efd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = events;
}

static void conn_malformed(struct rg_policy *p, struct conn *c, const char *why)
{
	char peer[64];

	p->st.malformed++;
	if (warn_ok(p)) {
		peer_str(c->fd, peer, sizeof(peer));
		rg_warn("policy: malformed request from %s: %s; closing without an answer",
			peer, why);
	}
	conn_close(p, c);
}

/* Send the reply; keep what the socket did not take. -1: connection gone. */
static int conn_reply(struct rg_policy *p, struct conn *c, const char *action)
{
	int n = snprintf(c->out, sizeof(c->out), "action=%s\n\n", action);
	ssize_t w;

	if (n < 0 || (size_t)n >= sizeof(c->out))
		n = sizeof(c->out) - 1;     /* cannot happen: action is bounded */
	w = send(c->fd, c->out, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (w == n)
		return 0;
	if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		conn_close(p, c);
		return -1;
	}
	c->out_off = w > 0 ? (size_t)w : 0;
	c->out_len = n;
	return 0;
}

/* One framed request of n bytes at the start of c->buf. -1: closed. */
static int conn_request(struct rg_policy *p, struct conn *c, size_t n)
{
	struct rg_policy_request req;
	struct rg_policy_auth auth;
	struct rg_policy_decision d;
	const char *why;
	int err;

	p->st.requests++;
	if (rg_policy_parse(c->buf, n, p->max_attrs, &req, &why)) {
		conn_malformed(p, c, why);
		return -1;
	}
	memset(&auth, 0, sizeof(auth));
	if (rg_policy_wants_lookup(&req)) {
		struct rg_addr a;

		if (!req.client_address || rg_addr_parse(req.client_address, &a, &why)) {
			rg_debug("policy: client_address missing or not an address: DUNNO");
		} else if ((err = p->lookup ? p->lookup(p->lookup_ctx, &a, &auth) : 0) < 0) {
			p->st.lookup_errors++;
			if (warn_ok(p))
				rg_warn("policy: lookup of %s failed: %s; closing without an answer (Postfix retries)",
					req.client_address, strerror(-err));
			conn_close(p, c);
			return -1;
		}
	}
	rg_policy_decide(&req, &auth, &p->rules, &d);
	if (d.event) {
		char authbuf[128];
		struct rg_audit_rec r = {
			.event = d.event,
			.client = req.client_address,
			.user = auth.kind == RG_POLICY_GRANT ? auth.user : NULL,
			.auth = rg_policy_auth_str(&auth, authbuf, sizeof(authbuf)),
			.sender = req.sender ? req.sender : "",
			.recipient = req.recipient,
			.queue_id = req.queue_id,
			.instance = req.instance,
			.state = req.protocol_state,
			.action = d.answer == RG_ANSWER_OK ? "OK" :
				  d.answer == RG_ANSWER_REJECT ? "REJECT" : "DUNNO",
			.reason = d.reason,
		};

		rg_audit_emit(p->audit, &r);
	}
	switch (d.answer) {
	case RG_ANSWER_OK:
		p->st.ok++;
		break;
	case RG_ANSWER_REJECT:
		p->st.reject++;
		break;
	default:
		p->st.dunno++;
	}
	return conn_reply(p, c, d.action);
}

/* Answer every complete request in the buffer; then put c on the list its
 * state calls for. */
static void conn_run(struct rg_policy *p, struct conn *c, uint64_t now)
{
	bool answered = false;
	size_t n;

	while (!c->out_len) {
		n = rg_policy_frame(c->buf, c->used, &c->scan);
		if (!n) {
			if (c->used >= p->max_request) {
				char why[64];

				snprintf(why, sizeof(why), "request larger than %u bytes (max_request)",
					 p->max_request);
				conn_malformed(p, c, why);
				return;
			}
			break;
		}
		if (conn_request(p, c, n))
			return;
		answered = true;
		c->used -= n;
		memmove(c->buf, c->buf + n, c->used);
		c->scan = 0;
	}
	if (c->out_len) {
		/* the client is not reading: wait for room, no more requests */
		conn_set_events(p, c, EPOLLOUT);
		list_put(p, c, L_BUSY, now);
	} else if (!c->used) {
		list_put(p, c, L_IDLE, now);
	} else if (answered || c->list != L_BUSY) {
		/* a new partial request: its read_timeout starts now */
		list_put(p, c, L_BUSY, now);
	}
}

static void conn_readable(struct rg_policy *p, struct conn *c, uint64_t now)
{
	ssize_t r;

	if (c->out_len)
		return;
	r = read(c->fd, c->buf + c->used, p->max_request - c->used);
	if (r == 0) {
		if (c->used)
			rg_debug("policy: client closed mid-request");
		conn_close(p, c);
		return;
	}
	if (r < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(p, c);
		return;
	}
	c->used += r;
	conn_run(p, c, now);
}

static void conn_writable(struct rg_policy *p, struct conn *c, uint64_t now)
{
	ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
			 MSG_NOSIGNAL | MSG_DONTWAIT);

	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			conn_close(p, c);
		return;
	}
	c->out_off += w;
	if (c->out_off < c->out_len)
		return;
	c->out_len = c->out_off = 0;
	conn_set_events(p, c, EPOLLIN);
	/* a request still in the buffer starts its read_timeout now */
	list_put(p, c, c->used ? L_BUSY : L_IDLE, now);
	conn_run(p, c, now);             /* requests that waited in the buffer */
}

static void do_accept(struct rg_policy *p, uint64_t now)
{
	int i;

	for (i = 0; i < 256; i++) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn *c;
		int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (warn_ok(p))
				rg_warn("policy: accept: %s; pausing new connections",
					strerror(errno));
			/* EMFILE & co: stop accepting until a connection
			 * closes, or a second passed */
			ev.events = 0;
			ev.data.ptr = TAG_LISTEN(p);
			if (epoll_ctl(p->efd, EPOLL_CTL_MOD, p->lfd, &ev) == 0) {
				p->lfd_paused = true;
				p->resume_at = now + 1000;
				arm_timer(p, p->resume_at);
			}
			return;
		}
		p->st.accepted++;
		if (p->nconns >= p->max_conns) {
			p->st.refused++;
			close(fd);
			if (warn_ok(p))
				rg_warn("policy: %u connections open (max_conns): closing a new one",
					p->nconns);
			continue;
		}
		c = malloc(sizeof(*c) + p->max_request);
		if (!c) {
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->list = L_NONE;
		c->events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(p->efd, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
			continue;
		}
		p->nconns++;
		p->st.connections = p->nconns;
		list_put(p, c, L_IDLE, now);
	}
}

static void expire(struct rg_policy *p, uint64_t now)
{
	uint64_t buf;
	struct conn *c;
	char peer[64];

	if (read(p->tfd, &buf, sizeof(buf)) < 0 && errno != EAGAIN)
		rg_debug("policy: timerfd read: %s", strerror(errno));
	p->armed = 0;
	while ((c = p->lists[L_BUSY].head) && c->deadline <= now) {
		p->st.timeouts++;
		if (warn_ok(p)) {
			peer_str(c->fd, peer, sizeof(peer));
			if (c->out_len)
				rg_warn("policy: %s does not read its answer: closing", peer);
			else
				rg_warn("policy: %s stalled mid-request (%zu bytes, no end within %llu ms): closing without an answer",
					peer, c->used, (unsigned long long)p->timeout[L_BUSY]);
		}
		conn_close(p, c);
	}
	while ((c = p->lists[L_IDLE].head) && c->deadline <= now) {
		p->st.idle_closed++;
		conn_close(p, c);
	}
	if (p->lfd_paused && p->resume_at && p->resume_at <= now)
		resume_accept(p);
}

int rg_policy_process(struct rg_policy *p)
{
	struct epoll_event ev[64];
	int round, n, i;

	for (round = 0; round < 8; round++) {
		uint64_t now;

		n = epoll_wait(p->efd, ev, 64, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		now = now_ms();
		for (i = 0; i < n; i++) {
			void *tag = ev[i].data.ptr;
			struct conn *c = tag;

			if (tag == TAG_LISTEN(p)) {
				do_accept(p, now);
				continue;
			}
			if (tag == TAG_TIMER(p)) {
				expire(p, now);
				continue;
			}
			if (c->dead)
				continue;
			if (c->out_len) {
				/* waiting to write: EPOLLOUT, or HUP/ERR that
				 * send() turns into an error and a close */
				conn_writable(p, c, now);
				continue;
			}
			/* EPOLLIN, and EPOLLHUP/EPOLLERR: read() tells */
			conn_readable(p, c, now);
		}
		while (p->graveyard) {
			struct conn *c = p->graveyard;

			p->graveyard = c->next;
			free(c);
		}
		if (n < 64)
			break;
	}
	/* re-arm for the earliest deadline (the timer may have fired) */
	{
		uint64_t next = 0;
		int l;

		for (l = 0; l < 2; l++)
			if (p->lists[l].head && (!next || p->lists[l].head->deadline < next))
				next = p->lists[l].head->deadline;
		if (p->lfd_paused && p->resume_at && (!next || p->resume_at < next))
			next = p->resume_at;
		arm_timer(p, next);
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Listening socket                                                          */

static int resolve_owner(const char *spec, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	char user[256];
	const char *colon = strchr(spec, ':');
	size_t ul = colon ? (size_t)(colon - spec) : strlen(spec);
	struct passwd *pw;

	if (ul == 0 || ul >= sizeof(user)) {
		snprintf(err, errlen, "socket_owner '%s': expected user or user:group", spec);
		return -1;
	}
	memcpy(user, spec, ul);
	user[ul] = '\0';
	pw = getpwnam(user);
	if (!pw) {
		snprintf(err, errlen, "socket_owner %s: no such user", user);
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	if (colon) {
		struct group *gr = getgrnam(colon + 1);

		if (!colon[1] || !gr) {
			snprintf(err, errlen, "socket_owner %s: no such group '%s'", spec, colon + 1);
			return -1;
		}
		*gid = gr->gr_gid;
	}
	return 0;
}

static int listen_unix(struct rg_policy *p, const char *path, const struct rg_policy_opts *o,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;
	unsigned mode = o->socket_mode ? o->socket_mode : RG_POLICY_SOCKET_MODE_DEFAULT;
	struct stat st;
	int fd;

	if (path[0] != '/') {
		snprintf(err, errlen, "listen unix:%s: use an absolute path (e.g. unix:/var/spool/postfix/private/relaygate)",
			 path);
		return -1;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "listen unix:%s: path longer than %zu bytes", path,
			 sizeof(sa.sun_path) - 1);
		return -1;
	}
	if (mode > 07777) {
		snprintf(err, errlen, "socket_mode %o: not a file mode", mode);
		return -1;
	}
	if (o->socket_owner && *o->socket_owner &&
	    resolve_owner(o->socket_owner, &uid, &gid, err, errlen))
		return -1;
	strcpy(sa.sun_path, path);

	if (lstat(path, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "listen unix:%s: exists and is not a socket", path);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			snprintf(err, errlen, "listen unix:%s: another process is listening there",
				 path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(path);            /* stale: nobody listens */
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen unix:%s: socket: %s", path, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		snprintf(err, errlen, "listen unix:%s: bind: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	p->unix_path = strdup(path);
	if (!p->unix_path || lstat(path, &st)) {
		snprintf(err, errlen, "listen unix:%s: %s", path,
			 p->unix_path ? strerror(errno) : "out of memory");
		goto fail;
	}
	p->sock_dev = st.st_dev;
	p->sock_ino = st.st_ino;
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) && chown(path, uid, gid)) {
		snprintf(err, errlen, "listen unix:%s: chown to %s: %s", path,
			 o->socket_owner, strerror(errno));
		goto fail;
	}
	if (chmod(path, mode)) {
		snprintf(err, errlen, "listen unix:%s: chmod %o: %s", path, mode,
			 strerror(errno));
		goto fail;
	}
	if (listen(fd, SOMAXCONN)) {
		snprintf(err, errlen, "listen unix:%s: listen: %s", path, strerror(errno));
		goto fail;
	}
	snprintf(p->bound, sizeof(p->bound), "unix:%s", path);
	p->lfd = fd;
	return 0;
fail:
	close(fd);
	unlink(path);
	free(p->unix_path);
	p->unix_path = NULL;
	return -1;
}

static int parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;
	size_t n = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return -1;
	for (; *s; s++, n++) {
		if (*s < '0' || *s > '9' || n >= 5)
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*port = v;
	return 0;
}

static int listen_inet(struct rg_policy *p, const char *text, char *err, size_t errlen)
{
	const char *spec = strncmp(text, "inet:", 5) ? text : text + 5;
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	char host[INET6_ADDRSTRLEN + 2], a[INET6_ADDRSTRLEN];
	const char *colon, *ps;
	unsigned port;
	int fd, one = 1, fam;
	bool loopback;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, rb - spec - 1);
		host[rb - spec - 1] = '\0';
		ps = rb + 2;
		fam = AF_INET6;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= sizeof(host))
			goto bad;
		memcpy(host, spec, colon - spec);
		host[colon - spec] = '\0';
		ps = colon + 1;
		fam = AF_INET;
	}
	if (parse_port(ps, &port))
		goto bad;
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		sl = sizeof(*s4);
		loopback = (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		sl = sizeof(*s6);
		loopback = IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr);
	}
	fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fam == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, SOMAXCONN)) {
		snprintf(err, errlen, "listen %s: %s", text, strerror(errno));
		close(fd);
		return -1;
	}
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
		snprintf(p->bound, sizeof(p->bound), "inet:%s:%u", a, ntohs(s4->sin_port));
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
		snprintf(p->bound, sizeof(p->bound), "inet:[%s]:%u", a, ntohs(s6->sin6_port));
	}
	if (!loopback)
		rg_warn("policy: listening on %s, not a loopback address: whoever reaches it can query grants",
			p->bound);
	p->lfd = fd;
	return 0;
bad:
	snprintf(err, errlen, "listen %s: expected unix:/PATH or [inet:]ADDRESS:PORT with a numeric address (inet:127.0.0.1:10040, inet:[::1]:10040)",
		 text);
	return -1;
}

struct rg_policy *rg_policy_new(const struct rg_policy_opts *o, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct rg_policy *p;

	if (!o->listen || !*o->listen) {
		snprintf(err, errlen, "policy: no listen address");
		return NULL;
	}
	if (!o->lookup) {
		snprintf(err, errlen, "policy: no lookup function");
		return NULL;
	}
	if (o->max_request && (o->max_request < 256 || o->max_request > (1u << 20))) {
		snprintf(err, errlen, "policy: max_request %u out of range (256..1048576)",
			 o->max_request);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "policy: out of memory");
		return NULL;
	}
	p->efd = p->lfd = p->tfd = -1;
	p->max_request = o->max_request ? o->max_request : RG_POLICY_MAX_REQUEST_DEFAULT;
	p->max_attrs = o->max_attrs ? o->max_attrs : RG_POLICY_MAX_ATTRS_DEFAULT;
	p->max_conns = o->max_conns ? o->max_conns : RG_POLICY_MAX_CONNS_DEFAULT;
	p->timeout[L_BUSY] = o->read_timeout_ms ? o->read_timeout_ms :
			     RG_POLICY_READ_TIMEOUT_DEFAULT;
	p->timeout[L_IDLE] = o->idle_timeout_ms ? o->idle_timeout_ms :
			     RG_POLICY_IDLE_TIMEOUT_DEFAULT;
	p->lookup = o->lookup;
	p->lookup_ctx = o->lookup_ctx;
	p->audit = o->audit;
	p->rules.sender_logins = o->sender_logins;
	p->rules.reject_null_sender = o->reject_null_sender;
	if (o->recipient_delimiter && *o->recipient_delimiter) {
		p->delims = strdup(o->recipient_delimiter);
		if (!p->delims) {
			snprintf(err, errlen, "policy: out of memory");
			goto fail;
		}
		p->rules.recipient_delimiter = p->delims;
	}

	if (!strncmp(o->listen, "unix:", 5)) {
		if (listen_unix(p, o->listen + 5, o, err, errlen))
			goto fail;
	} else {
		/* "inet:HOST:PORT", or HOST:PORT as [policy] listen also allows */
		if (listen_inet(p, o->listen, err, errlen))
			goto fail;
		if (o->socket_owner && *o->socket_owner)
			rg_warn("policy: socket_owner applies to unix sockets only; ignored for %s",
				o->listen);
	}

	p->efd = epoll_create1(EPOLL_CLOEXEC);
	p->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (p->efd < 0 || p->tfd < 0) {
		snprintf(err, errlen, "policy: epoll/timerfd: %s", strerror(errno));
		goto fail;
	}
	ev.data.ptr = TAG_LISTEN(p);
	if (epoll_ctl(p->efd, EPOLL_CTL_ADD, p->lfd, &ev))
		goto fail_ctl;
	ev.data.ptr = TAG_TIMER(p);
	if (epoll_ctl(p->efd, EPOLL_CTL_ADD, p->tfd, &ev))
		goto fail_ctl;
	return p;
fail_ctl:
	snprintf(err, errlen, "policy: epoll_ctl: %s", strerror(errno));
fail:
	rg_policy_free(p);
	return NULL;
}

int rg_policy_fd(const struct rg_policy *p)
{
	return p->efd;
}

const char *rg_policy_address(const struct rg_policy *p)
{
	return p->bound;
}

void rg_policy_set_sender_logins(struct rg_policy *p, const struct rg_senderlogins *sl)
{
	p->rules.sender_logins = sl;
}

void rg_policy_set_audit(struct rg_policy *p, struct rg_audit *a)
{
	p->audit = a;
}

void rg_policy_stats(const struct rg_policy *p, struct rg_policy_stats *st)
{
	*st = p->st;
	st->connections = p->nconns;
}

void rg_policy_free(struct rg_policy *p)
{
	struct stat st;
	int l;

	if (!p)
		return;
	for (l = 0; l < 2; l++)
		while (p->lists[l].head)
			conn_close(p, p->lists[l].head);
	while (p->graveyard) {
		struct conn *c = p->graveyard;

		p->graveyard = c->next;
		free(c);
	}
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->tfd >= 0)
		close(p->tfd);
	if (p->efd >= 0)
		close(p->efd);
	/* unlink only our own socket, not one a newer instance put there */
	if (p->unix_path && lstat(p->unix_path, &st) == 0 &&
	    st.st_dev == p->sock_dev && st.st_ino == p->sock_ino)
		unlink(p->unix_path);
	free(p->unix_path);
	free(p->delims);
	free(p);
}

/* ------------------------------------------------------------------------ */
/* Lookup over relaygate's maps                                              */

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

void rg_policy_maps_init(struct rg_policy_maps *m, struct rg_gate *gate)
{
	memset(m, 0, sizeof(*m));
	m->gate = gate;
	m->v4_prefix = 32;
	m->v6_prefix = 64;
}

/* Grant keys follow rg_config's prefixes; re-read them once a second so a
 * reload elsewhere is seen. */
static void maps_refresh_cfg(struct rg_policy_maps *m, uint64_t now)
{
	struct rg_config cfg;
	__u32 zero = 0;

	if (m->cfg_read_ns && now - m->cfg_read_ns < 1000000000ULL)
		return;
	m->cfg_read_ns = now;
	if (m->gate->config_fd < 0 ||
	    bpf_map_lookup_elem(m->gate->config_fd, &zero, &cfg) ||
	    cfg.abi_version == 0)
		return;
	if (cfg.v4_prefix <= 32)
		m->v4_prefix = cfg.v4_prefix;
	if (cfg.v6_prefix <= 128)
		m->v6_prefix = cfg.v6_prefix;
}

/* LPM lookup of a at prefix length plen: 1 hit, 0 miss, <0 error. */
static int trust_hit(const struct rg_gate *g, const struct rg_addr *a, unsigned plen)
{
	__u32 val;
	int r;

	if (a->family == RG_AF_INET) {
		struct rg_lpm4 k = { .prefixlen = plen };

		if (g->trust4_fd < 0)
			return 0;
		memcpy(k.addr, a->addr, 4);
		r = bpf_map_lookup_elem(g->trust4_fd, &k, &val);
	} else {
		struct rg_lpm6 k = { .prefixlen = plen };

		if (g->trust6_fd < 0)
			return 0;
		memcpy(k.addr, a->addr, 16);
		r = bpf_map_lookup_elem(g->trust6_fd, &k, &val);
	}
	if (r == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

static unsigned name_slot(const struct rg_addr *a)
{
	uint32_t h = 2166136261u;
	unsigned i;

	for (i = 0; i < sizeof(a->addr); i++)
		h = (h ^ a->addr[i]) * 16777619u;
	return h % RG_POLICY_NAME_CACHE;
}

int rg_policy_lookup_maps(void *ctx, const struct rg_addr *client, struct rg_policy_auth *out)
{
	struct rg_policy_maps *m = ctx;
	struct rg_gate *g = m->gate;
	uint64_t now = clock_ns(CLOCK_BOOTTIME);
	unsigned bits = client->family == RG_AF_INET ? 32 : 128;
	struct rg_addr key = *client;
	struct rg_grant gr;
	struct rg_deny dn;
	int hit;

	maps_refresh_cfg(m, now);
	memset(key.pad, 0, sizeof(key.pad));
	rg_addr_key(&key, m->v4_prefix, m->v6_prefix);

	/* 1. denied (the gate drops it before anything else) */
	if (g->deny_fd >= 0) {
		if (bpf_map_lookup_elem(g->deny_fd, &key, &dn) == 0) {
			if (dn.expires > now) {
				rg_debug("policy: client is on the deny list");
				return 0;
			}
		} else if (errno != ENOENT) {
			return -errno;
		}
	}

	/* 2. trusted subnet: the longest-prefix lookup says whether; the
	 * smallest prefix length that still hits names the widest trusted
	 * subnet holding the client (hits are monotonic in the length) */
	hit = trust_hit(g, client, bits);
	if (hit < 0)
		return hit;
	if (hit) {
		unsigned lo = 0, hi = bits, h = name_slot(client);
		struct rg_addr net = *client;

		out->kind = RG_POLICY_TRUSTED;
		if (m->names[h].at_ns && now - m->names[h].at_ns < 1000000000ULL &&
		    !memcmp(&m->names[h].addr, client, sizeof(*client))) {
			memcpy(out->subnet, m->names[h].subnet, sizeof(m->names[h].subnet));
			return 0;
		}
		while (lo < hi) {
			unsigned mid = (lo + hi) / 2;

			hit = trust_hit(g, client, mid);
			if (hit < 0)
				return hit;
			if (hit)
				hi = mid;
			else
				lo = mid + 1;
		}
		rg_addr_mask(&net, lo);
		rg_cidr_str(&net, lo, out->subnet, sizeof(m->names[h].subnet));
		m->names[h].addr = *client;
		m->names[h].at_ns = now;
		memcpy(m->names[h].subnet, out->subnet, sizeof(m->names[h].subnet));
		return 0;
	}

	/* 3. a live grant */
	if (g->grants_fd >= 0) {
		if (bpf_map_lookup_elem(g->grants_fd, &key, &gr) == 0) {
			if (gr.expires > now) {
				/* Convert in nanoseconds, then round: truncating
				 * "now" first made one login's time jump by a
				 * second between two audit lines. */
				uint64_t wall = clock_ns(CLOCK_REALTIME);

				out->kind = RG_POLICY_GRANT;
				memcpy(out->user, gr.user, sizeof(out->user));
				out->user[sizeof(out->user) - 1] = '\0';
				out->service = gr.service;
				out->expires = (int64_t)((wall + (gr.expires - now)) / 1000000000ULL);
				out->granted = gr.granted && gr.granted <= now ?
					(int64_t)((wall - (now - gr.granted)) / 1000000000ULL) : 0;
			}
		} else if (errno != ENOENT) {
			return -errno;
		}
	}
	return 0;
}
