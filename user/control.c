// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Control socket: the client (relaygatectl event) and the server (relaygated)
 * of the line protocol described in control.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "cidr.h"
#include "control.h"
#include "log.h"
#include "metrics.h"

#define RG_CONTROL_TIMEOUT_MS 5000

/* ------------------------------------------------------------------------ */
/* Client                                                                     */
/* ------------------------------------------------------------------------ */

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A field we put on the wire must not be able to split the request: no
 * spaces, no control characters (a '\n' in a user name would smuggle a
 * second request). Bytes from 0x80 up (a UTF-8 user name) only when
 * eight_bit. The daemon checks again; this gives a clear local error. */
static int field_ok(const char *s, size_t max, bool eight_bit)
{
	size_t n = 0;

	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];

		if (c <= 0x20 || c == 0x7f || (c > 0x7f && !eight_bit))
			return 0;
	}
	return n > 0 && n <= max;
}

int rg_control_request(const char *sock_path, enum rg_event_kind kind,
		       const char *addr, const char *user, const char *service,
		       char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = RG_CONTROL_TIMEOUT_MS / 1000 };
	char req[RG_CONTROL_LINE_MAX + 2], rep[RG_CONTROL_LINE_MAX + 2];
	const char *verb;
	long long deadline;
	size_t off = 0, have = 0;
	int fd, n, ret = -1;

	if (!sock_path || !*sock_path)
		sock_path = RG_CONTROL_SOCKET_DEFAULT;
	switch (kind) {
	case RG_EV_LOGIN:
		verb = "LOGIN";
		break;
	case RG_EV_FAILURE:
		verb = "FAILURE";
		break;
	default:
		snprintf(err, errlen, "event: unknown kind %d", (int)kind);
		return -1;
	}
	if (!addr || !field_ok(addr, 64, false)) {
		snprintf(err, errlen, "address '%s': not an IP address", addr ? addr : "");
		return -1;
	}
	if (!user || !field_ok(user, RG_EVENT_USER_MAX - 1, true)) {
		snprintf(err, errlen, "user '%s': must be 1..%d bytes without spaces or control characters",
			 user ? user : "", RG_EVENT_USER_MAX - 1);
		return -1;
	}
	if (service && !field_ok(service, 16, false)) {
		snprintf(err, errlen, "service '%s': must be pop3, imap, smtp or other", service);
		return -1;
	}
	if (strlen(sock_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path '%s': too long (max %zu bytes)",
			 sock_path, sizeof(sun.sun_path) - 1);
		return -1;
	}
	strcpy(sun.sun_path, sock_path);

	n = snprintf(req, sizeof(req), "%s %s %s%s%s\n", verb, addr, user,
		     service ? " " : "", service ? service : "");
	if (n < 0 || (size_t)n > RG_CONTROL_LINE_MAX) {
		snprintf(err, errlen, "event: request longer than %d bytes", RG_CONTROL_LINE_MAX);
		return -1;
	}

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	/* A blocking AF_UNIX connect waits for backlog room; bound it. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		if (e == ENOENT || e == ECONNREFUSED)
			snprintf(err, errlen, "connect %s: %s (is relaygated running?)",
				 sock_path, strerror(e));
		else if (e == EACCES || e == EPERM)
			snprintf(err, errlen, "connect %s: %s (are you root or in the socket's group?)",
				 sock_path, strerror(e));
		else if (e == EAGAIN || e == EINPROGRESS)
			snprintf(err, errlen, "connect %s: daemon busy, no answer within %d s",
				 sock_path, RG_CONTROL_TIMEOUT_MS / 1000);
		else
			snprintf(err, errlen, "connect %s: %s", sock_path, strerror(e));
		goto out;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "fcntl: %s", strerror(errno));
		goto out;
	}

	deadline = mono_ms() + RG_CONTROL_TIMEOUT_MS;
	for (;;) {
		struct pollfd p = { .fd = fd };
		long long left = deadline - mono_ms();
		char *nl;
		ssize_t r;

		if (left <= 0) {
			snprintf(err, errlen, "%s: no reply within %d s", sock_path,
				 RG_CONTROL_TIMEOUT_MS / 1000);
			goto out;
		}
		p.events = off < (size_t)n ? POLLOUT : POLLIN;
		r = poll(&p, 1, (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "poll: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			continue;
		if (off < (size_t)n) {
			r = send(fd, req + off, n - off, MSG_NOSIGNAL);
			if (r < 0) {
				if (errno == EAGAIN || errno == EINTR)
					continue;
				/* The daemon may have answered and closed: read it. */
				if (errno != EPIPE && errno != ECONNRESET) {
					snprintf(err, errlen, "send to %s: %s", sock_path,
						 strerror(errno));
					goto out;
				}
				off = n;
				continue;
			}
			off += r;
			continue;
		}
		r = read(fd, rep + have, sizeof(rep) - 1 - have);
		if (r < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			snprintf(err, errlen, "read from %s: %s", sock_path, strerror(errno));
			goto out;
		}
		if (r == 0) {
			snprintf(err, errlen, "%s: connection closed without a reply", sock_path);
			goto out;
		}
		have += r;
		rep[have] = '\0';
		nl = memchr(rep, '\n', have);
		if (!nl) {
			if (have >= sizeof(rep) - 1) {
				snprintf(err, errlen, "%s: reply line too long", sock_path);
				goto out;
			}
			continue;
		}
		*nl = '\0';
		if (nl > rep && nl[-1] == '\r')
			nl[-1] = '\0';
		if (!strcmp(rep, "OK")) {
			ret = 0;
		} else if (!strncmp(rep, "ERR ", 4)) {
			snprintf(err, errlen, "relaygated: %s", rep + 4);
		} else {
			snprintf(err, errlen, "%s: unexpected reply '%.64s'", sock_path, rep);
		}
		goto out;
	}
out:
	close(fd);
	return ret;
}

/* ------------------------------------------------------------------------ */
/* Request parsing                                                            */
/* ------------------------------------------------------------------------ */

static const struct {
	const char *name;
	enum rg_service svc;
} ctl_services[] = {
	{ "pop3", RG_SERVICE_POP3 },
	{ "imap", RG_SERVICE_IMAP },
	{ "smtp", RG_SERVICE_SMTP },
	{ "other", RG_SERVICE_OTHER },
};

#define CTL_MAX_FIELDS 4

/* "bad address: <reason>" for each kind of impossible source address. */
static const char *const ctl_not_client[RG_NOT_CLIENT_NKINDS] = {
#define CTL_NOT_CLIENT(kind, why) [RG_NOT_CLIENT_##kind] = "bad address: " why,
	RG_NOT_CLIENT_KINDS(CTL_NOT_CLIENT)
#undef CTL_NOT_CLIENT
};

int rg_control_parse(const char *line, size_t len, struct rg_auth_event *ev,
		     const char **why)
{
	const char *f[CTL_MAX_FIELDS];
	size_t fl[CTL_MAX_FIELDS];
	char addr[RG_ADDRSTRLEN];
	size_t i = 0, nf = 0;
	enum rg_not_client nc;
	const char *awhy;

	if (len && line[len - 1] == '\r')
		len--;
	if (memchr(line, '\0', len)) {
		*why = "NUL byte in request";
		return -1;
	}
	if (len > RG_CONTROL_LINE_MAX) {
		*why = "line too long (max 512 bytes)";
		return -1;
	}
	while (i < len) {
		size_t s;

		while (i < len && (line[i] == ' ' || line[i] == '\t'))
			i++;
		if (i == len)
			break;
		if (nf == CTL_MAX_FIELDS) {
			*why = "too many fields (expected: VERB ADDR USER [SERVICE])";
			return -1;
		}
		s = i;
		while (i < len && line[i] != ' ' && line[i] != '\t')
			i++;
		f[nf] = line + s;
		fl[nf++] = i - s;
	}
	if (nf == 0) {
		*why = "empty request";
		return -1;
	}

	memset(ev, 0, sizeof(*ev));
	if (fl[0] == 5 && !strncasecmp(f[0], "LOGIN", 5)) {
		ev->kind = RG_EV_LOGIN;
	} else if (fl[0] == 7 && !strncasecmp(f[0], "FAILURE", 7)) {
		ev->kind = RG_EV_FAILURE;
	} else {
		*why = "unknown verb (expected LOGIN or FAILURE)";
		return -1;
	}
	if (nf < 2) {
		*why = "missing address";
		return -1;
	}
	if (nf < 3) {
		*why = "missing user";
		return -1;
	}
	if (fl[1] >= sizeof(addr)) {
		*why = "bad address: too long";
		return -1;
	}
	memcpy(addr, f[1], fl[1]);
	addr[fl[1]] = '\0';
	if (rg_addr_parse(addr, &ev->addr, &awhy) < 0) {
		*why = "bad address: not an IP address";
		(void)awhy;
		return -1;
	}
	nc = rg_addr_not_client(&ev->addr);
	if (nc != RG_CLIENT_OK) {
		*why = ctl_not_client[nc];
		return -1;
	}
	if (fl[2] >= RG_EVENT_USER_MAX) {
		*why = "bad user: longer than 255 bytes";
		return -1;
	}
	/* Any byte but controls and DEL (spaces and tabs end the field):
	 * UTF-8 names such as "jürgen" are users too, as in the log sources. */
	for (i = 0; i < fl[2]; i++) {
		unsigned char ch = f[2][i];

		if (ch < 0x20 || ch == 0x7f) {
			*why = "bad user: control character";
			return -1;
		}
	}
	memcpy(ev->user, f[2], fl[2]);
	ev->user[fl[2]] = '\0';
	ev->service = RG_SERVICE_NONE;
	if (nf == 4) {
		bool found = false;

		for (i = 0; i < sizeof(ctl_services) / sizeof(ctl_services[0]); i++) {
			if (strlen(ctl_services[i].name) == fl[3] &&
			    !strncasecmp(ctl_services[i].name, f[3], fl[3])) {
				ev->service = ctl_services[i].svc;
				found = true;
				break;
			}
		}
		if (!found) {
			*why = "bad service (expected pop3, imap, smtp or other)";
			return -1;
		}
	}
	ev->origin = RG_ORIGIN_CONTROL;
	ev->source = NULL;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                     */
/* ------------------------------------------------------------------------ */

#define CTL_DEFAULT_RATE        50
#define CTL_DEFAULT_MAX_CLIENTS 64
#define CTL_DEFAULT_IDLE_MS     10000
#define CTL_BUCKETS             128
#define CTL_REPLY_MAX           320       /* "ERR " + reason + "\n" */
#define CTL_OUT_MAX             (4 * CTL_REPLY_MAX)
#define CTL_IN_MAX              (RG_CONTROL_LINE_MAX + 2)   /* + "\r\n" */
#define CTL_ACCEPT_BATCH        32
#define CTL_EPOLL_BATCH         64

/* epoll tags for the two fixed fds; clients are tagged by their pointer. */
static char ctl_tag_listen, ctl_tag_timer;

struct ctl_client {
	struct ctl_client *prev, *next;
	int fd;
	uid_t uid;
	pid_t pid;
	long long last_ms;           /* last read or write progress */
	bool eof;                    /* peer shut its side: answer, then close */
	bool closing;                /* close once the output is flushed */
	uint32_t events;             /* current epoll interest */
	size_t inlen, outlen, outoff;
	char in[CTL_IN_MAX];
	char out[CTL_OUT_MAX];
};

struct ctl_bucket {
	uid_t uid;
	bool used;
	long long last_ms;
	uint64_t mtokens;            /* tokens * 1000 */
};

/* The socket's group: members may send (resolve_group()). */
struct ctl_group {
	bool have_gid;               /* false: root only */
	gid_t gid;
	char name[64];
};

struct rg_control {
	int ep, lfd, tfd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	struct ctl_group grp;        /* who may send besides root */
	unsigned rate, burst, max_clients, idle_ms;
	char source[64];
	rg_control_event_fn cb;
	void *ctx;
	struct ctl_client *clients;
	unsigned nclients;
	bool accept_paused;
	bool timer_armed;
	long long log_ms;            /* rate limit for warnings */
	unsigned log_suppressed;
	struct ctl_bucket buckets[CTL_BUCKETS];
	struct rg_control_stats st;  /* updated with __atomic, read by metrics */
};

#define CTL_INC(c, field) __atomic_add_fetch(&(c)->st.field, 1, __ATOMIC_RELAXED)

/* At most one warning a second, so a hostile local user cannot flood the log. */
static void __attribute__((format(printf, 2, 3)))
ctl_warn(struct rg_control *c, const char *fmt, ...)
{
	long long now = mono_ms();
	char buf[384];
	va_list ap;

	if (now - c->log_ms < 1000) {
		c->log_suppressed++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (c->log_suppressed)
		rg_warn("control: %s (%u similar messages suppressed)", buf, c->log_suppressed);
	else
		rg_warn("control: %s", buf);
	c->log_ms = now;
	c->log_suppressed = 0;
}

static bool gid_in(gid_t g, const gid_t *list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == g)
			return true;
	return false;
}

/* root, or a member of the configured group: the peer's primary gid, its
 * process's supplementary groups (SO_PEERGROUPS), or the group database for
 * its uid (a Dovecot post-login script runs without supplementary groups). */
static bool peer_allowed(const struct rg_control *c, int fd, const struct ucred *cr)
{
	gid_t groups[256];
	socklen_t glen = sizeof(groups);
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096];
	int n;

	if (cr->uid == 0)
		return true;
	if (!c->grp.have_gid)
		return false;
	if (cr->gid == c->grp.gid)
		return true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0 &&
	    gid_in(c->grp.gid, groups, (int)(glen / sizeof(gid_t))))
		return true;
	if (getpwuid_r(cr->uid, &pw, pwbuf, sizeof(pwbuf), &pwp) != 0 || !pwp)
		return false;
	n = sizeof(groups) / sizeof(groups[0]);
	if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0)
		n = sizeof(groups) / sizeof(groups[0]);   /* truncated list: use what we got */
	return gid_in(c->grp.gid, groups, n);
}

/* Token bucket per uid; true when the event may pass. */
static bool rate_take(struct rg_control *c, uid_t uid)
{
	long long now = mono_ms();
	struct ctl_bucket *b = NULL, *victim = &c->buckets[0];
	uint64_t cap = (uint64_t)c->burst * 1000;

	for (int i = 0; i < CTL_BUCKETS; i++) {
		struct ctl_bucket *x = &c->buckets[i];

		if (x->used && x->uid == uid) {
			b = x;
			break;
		}
		if (!x->used)
			victim = x;
		else if (victim->used && x->last_ms < victim->last_ms)
			victim = x;
	}
	if (!b) {
		b = victim;
		b->used = true;
		b->uid = uid;
		b->mtokens = cap;
		b->last_ms = now;
	}
	if (now > b->last_ms) {
		uint64_t add = (uint64_t)(now - b->last_ms) * c->rate;

		b->mtokens = b->mtokens + add > cap ? cap : b->mtokens + add;
		b->last_ms = now;
	}
	if (b->mtokens < 1000)
		return false;
	b->mtokens -= 1000;
	return true;
}

static void client_free(struct rg_control *c, struct ctl_client *cl)
{
	epoll_ctl(c->ep, EPOLL_CTL_DEL, cl->fd, NULL);
	close(cl->fd);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	c->nclients--;
	__atomic_store_n(&c->st.clients, c->nclients, __ATOMIC_RELAXED);
	free(cl);
}

static void client_reply(struct ctl_client *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_reply(struct ctl_client *cl, const char *fmt, ...)
{
	size_t room = sizeof(cl->out) - cl->outlen;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cl->out + cl->outlen, room > CTL_REPLY_MAX ? CTL_REPLY_MAX : room, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= CTL_REPLY_MAX || (size_t)n >= room) {
		/* Truncated: keep the line well-formed. */
		n = (int)((room > CTL_REPLY_MAX ? CTL_REPLY_MAX : room) - 1);
		cl->out[cl->outlen + n - 1] = '\n';
	}
	cl->outlen += n;
}

static void client_line(struct rg_control *c, struct ctl_client *cl,
			const char *line, size_t len)
{
	struct rg_auth_event ev;
	const char *why;
	char err[256];

	if (rg_control_parse(line, len, &ev, &why) < 0) {
		CTL_INC(c, rejected);
		ctl_warn(c, "uid %u pid %d: %s; closing", (unsigned)cl->uid, (int)cl->pid, why);
		client_reply(cl, "ERR %s\n", why);
		cl->closing = true;
		return;
	}
	ev.source = c->source;
	if (!rate_take(c, cl->uid)) {
		CTL_INC(c, rate_limited);
		ctl_warn(c, "uid %u: over %u events/s, event dropped", (unsigned)cl->uid, c->rate);
		client_reply(cl, "ERR rate limit exceeded (%u events/s)\n", c->rate);
		return;
	}
	err[0] = '\0';
	if (c->cb(&ev, c->ctx, err, sizeof(err)) < 0) {
		CTL_INC(c, failed);
		client_reply(cl, "ERR %s\n", err[0] ? err : "event not applied");
		return;
	}
	CTL_INC(c, events);
	client_reply(cl, "OK\n");
}

/* Answer every complete line we have room to answer. Returns events given
 * to the callback. */
static int client_process(struct rg_control *c, struct ctl_client *cl)
{
	int n = 0;

	while (!cl->closing && cl->outlen + CTL_REPLY_MAX <= sizeof(cl->out)) {
		char *nl = memchr(cl->in, '\n', cl->inlen);
		size_t len, used;

		if (nl) {
			len = nl - cl->in;
			used = len + 1;
		} else if (cl->inlen >= sizeof(cl->in)) {
			CTL_INC(c, rejected);
			ctl_warn(c, "uid %u pid %d: line too long; closing",
				 (unsigned)cl->uid, (int)cl->pid);
			client_reply(cl, "ERR line too long (max %d bytes)\n", RG_CONTROL_LINE_MAX);
			cl->closing = true;
			break;
		} else if (cl->eof && cl->inlen) {
			/* Last line without its "\n": answer it anyway. */
			len = used = cl->inlen;
		} else {
			break;
		}
		{
			uint64_t before = c->st.events;

			client_line(c, cl, cl->in, len);
			n += c->st.events != before;
		}
		memmove(cl->in, cl->in + used, cl->inlen - used);
		cl->inlen -= used;
	}
	return n;
}

/* Write what is pending; then close, or set the epoll interest. Returns
 * false when the client was freed. */
static bool client_flush(struct rg_control *c, struct ctl_client *cl)
{
	uint32_t want;

	while (cl->outoff < cl->outlen) {
		ssize_t r = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_free(c, cl);      /* EPIPE, ECONNRESET: gone */
			return false;
		}
		cl->outoff += r;
		cl->last_ms = mono_ms();
	}
	if (cl->outoff == cl->outlen)
		cl->outoff = cl->outlen = 0;
	if (!cl->outlen && (cl->closing || (cl->eof && !cl->inlen))) {
		client_free(c, cl);
		return false;
	}
	/* Stop reading while replies are pending: a client that does not read
	 * its answers cannot make us buffer more. */
	want = cl->outlen ? EPOLLOUT : EPOLLIN;
	if (want != cl->events) {
		struct epoll_event e = { .events = want, .data.ptr = cl };

		epoll_ctl(c->ep, EPOLL_CTL_MOD, cl->fd, &e);
		cl->events = want;
	}
	return true;
}

static int client_event(struct rg_control *c, struct ctl_client *cl, uint32_t events)
{
	int n = 0;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR) && !cl->outlen && !cl->eof) {
		ssize_t r = read(cl->fd, cl->in + cl->inlen, sizeof(cl->in) - cl->inlen);

		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			client_free(c, cl);
			return 0;
		}
		if (r == 0)
			cl->eof = true;
		if (r > 0) {
			cl->inlen += r;
			cl->last_ms = mono_ms();
		}
	}
	n = client_process(c, cl);
	if (!client_flush(c, cl))
		return n;
	/* Output drained: answer lines that waited for room. */
	if (!cl->outlen && cl->inlen && !cl->closing) {
		n += client_process(c, cl);
		client_flush(c, cl);
	}
	return n;
}

static void ctl_refuse(int fd, const char *msg)
{
	ssize_t r = send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);

	(void)r;      /* best effort: the peer is being turned away anyway */
	close(fd);
}

static void ctl_accept(struct rg_control *c)
{
	for (int i = 0; i < CTL_ACCEPT_BATCH; i++) {
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		struct ctl_client *cl;
		struct epoll_event e;
		int fd;

		fd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Out of fds: stop accepting for a tick rather
				 * than spin on a listen socket that stays ready. */
				ctl_warn(c, "accept: %s; pausing for 1 s", strerror(errno));
				epoll_ctl(c->ep, EPOLL_CTL_DEL, c->lfd, NULL);
				c->accept_paused = true;
			}
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0) {
			close(fd);
			continue;
		}
		if (!peer_allowed(c, fd, &cr)) {
			CTL_INC(c, refused);
			ctl_warn(c, "refused uid %u pid %d: not root nor in group %s",
				 (unsigned)cr.uid, (int)cr.pid, c->grp.have_gid ? c->grp.name : "(none)");
			ctl_refuse(fd, "ERR permission denied\n");
			continue;
		}
		if (c->nclients >= c->max_clients) {
			CTL_INC(c, overflow);
			ctl_warn(c, "refused uid %u pid %d: %u clients connected already",
				 (unsigned)cr.uid, (int)cr.pid, c->nclients);
			ctl_refuse(fd, "ERR too many clients\n");
			continue;
		}
		cl = calloc(1, sizeof(*cl));
		if (!cl) {
			ctl_refuse(fd, "ERR out of memory\n");
			continue;
		}
		cl->fd = fd;
		cl->uid = cr.uid;
		cl->pid = cr.pid;
		cl->last_ms = mono_ms();
		cl->events = EPOLLIN;
		e.events = EPOLLIN;
		e.data.ptr = cl;
		if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
			free(cl);
			ctl_refuse(fd, "ERR internal error\n");
			continue;
		}
		cl->next = c->clients;
		if (c->clients)
			c->clients->prev = cl;
		c->clients = cl;
		c->nclients++;
		__atomic_store_n(&c->st.clients, c->nclients, __ATOMIC_RELAXED);
		CTL_INC(c, accepted);
	}
}

static void ctl_timer_set(struct rg_control *c)
{
	bool want = c->nclients > 0 || c->accept_paused;
	struct itimerspec its = { 0 };

	if (want == c->timer_armed)
		return;
	if (want) {
		its.it_interval.tv_sec = 1;
		its.it_value.tv_sec = 1;
	}
	timerfd_settime(c->tfd, 0, &its, NULL);
	c->timer_armed = want;
}

static void ctl_tick(struct rg_control *c)
{
	long long now = mono_ms();
	struct ctl_client *cl, *next;
	uint64_t expirations;
	ssize_t r = read(c->tfd, &expirations, sizeof(expirations));

	(void)r;
	if (c->accept_paused) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &ctl_tag_listen };

		if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->lfd, &e) == 0)
			c->accept_paused = false;
	}
	for (cl = c->clients; cl; cl = next) {
		next = cl->next;
		if (now - cl->last_ms >= c->idle_ms) {
			CTL_INC(c, timeouts);
			client_free(c, cl);
		}
	}
}

int rg_control_dispatch(struct rg_control *c)
{
	struct epoll_event evs[CTL_EPOLL_BATCH];
	int n, delivered = 0;

	n = epoll_wait(c->ep, evs, CTL_EPOLL_BATCH, 0);
	for (int i = 0; i < n; i++) {
		void *p = evs[i].data.ptr;

		if (p == &ctl_tag_listen)
			ctl_accept(c);
		else if (p == &ctl_tag_timer)
			ctl_tick(c);
	}
	/* Clients after the fixed fds: a tick may have freed some, so look
	 * each one up in the list before touching it. */
	for (int i = 0; i < n; i++) {
		struct ctl_client *cl, *p = evs[i].data.ptr;

		if ((void *)p == &ctl_tag_listen || (void *)p == &ctl_tag_timer)
			continue;
		for (cl = c->clients; cl && cl != p; cl = cl->next)
			;
		if (cl)
			delivered += client_event(c, cl, evs[i].events);
	}
	ctl_timer_set(c);
	return delivered;
}

int rg_control_fd(const struct rg_control *c)
{
	return c->ep;
}

void rg_control_get_stats(const struct rg_control *c, struct rg_control_stats *s)
{
	s->accepted = __atomic_load_n(&c->st.accepted, __ATOMIC_RELAXED);
	s->refused = __atomic_load_n(&c->st.refused, __ATOMIC_RELAXED);
	s->overflow = __atomic_load_n(&c->st.overflow, __ATOMIC_RELAXED);
	s->events = __atomic_load_n(&c->st.events, __ATOMIC_RELAXED);
	s->rejected = __atomic_load_n(&c->st.rejected, __ATOMIC_RELAXED);
	s->failed = __atomic_load_n(&c->st.failed, __ATOMIC_RELAXED);
	s->rate_limited = __atomic_load_n(&c->st.rate_limited, __ATOMIC_RELAXED);
	s->timeouts = __atomic_load_n(&c->st.timeouts, __ATOMIC_RELAXED);
	s->clients = __atomic_load_n(&c->st.clients, __ATOMIC_RELAXED);
}

void rg_control_metrics(const struct rg_control *c, struct rg_mbuf *b)
{
	static const char conns[] = "relaygate_control_connections_total";
	static const char reqs[] = "relaygate_control_requests_total";
	struct rg_control_stats s;

	if (!c)
		return;
	rg_control_get_stats(c, &s);
	rg_metric_family(b, conns, "counter", "Control socket connections by result.");
	rg_metric_u64_l1(b, conns, "result", "accepted", s.accepted);
	rg_metric_u64_l1(b, conns, "result", "permission_denied", s.refused);
	rg_metric_u64_l1(b, conns, "result", "too_many_clients", s.overflow);
	rg_metric_u64_l1(b, conns, "result", "idle_timeout", s.timeouts);
	rg_metric_family(b, reqs, "counter", "Control socket requests by result.");
	rg_metric_u64_l1(b, reqs, "result", "ok", s.events);
	rg_metric_u64_l1(b, reqs, "result", "malformed", s.rejected);
	rg_metric_u64_l1(b, reqs, "result", "failed", s.failed);
	rg_metric_u64_l1(b, reqs, "result", "rate_limited", s.rate_limited);
	rg_metric_one(b, "relaygate_control_clients", "gauge",
		      "Control socket clients connected now.", s.clients);
}

/* mkdir -p of the directory holding path. */
static int make_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			int e = errno;

			snprintf(err, errlen, "control socket directory %s: %s", dir, strerror(e));
			return -e;
		}
		if (last)
			break;
		*p = '/';
	}
	return 0;
}

static int resolve_group(struct ctl_group *g, const char *group, char *err, size_t errlen)
{
	struct group gr, *grp = NULL;
	char buf[8192];
	char *end;
	unsigned long v;
	int r;

	snprintf(g->name, sizeof(g->name), "%s", group);
	if (!*group)
		return 0;
	r = getgrnam_r(group, &gr, buf, sizeof(buf), &grp);
	if (r == 0 && grp) {
		g->gid = grp->gr_gid;
		g->have_gid = true;
		return 0;
	}
	errno = 0;
	v = strtoul(group, &end, 10);
	if (*group >= '0' && *group <= '9' && !*end && !errno && v < (gid_t)-1) {
		g->gid = (gid_t)v;
		g->have_gid = true;
		return 0;
	}
	snprintf(err, errlen,
		 "control socket group '%s': no such group (create it: groupadd --system %s, or set [control] group)",
		 group, group);
	return -ENOENT;
}

int rg_control_set_group(struct rg_control *c, const char *group, char *err, size_t errlen)
{
	struct ctl_group g = { 0 };
	int r;

	r = resolve_group(&g, group ? group : "", err, errlen);
	if (!r)
		c->grp = g;
	return r;
}

/* A socket file left by a dead daemon is removed; a live one is an error. */
static int clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (snprintf(err, errlen, "control socket %s: %s",
							path, strerror(errno)), -errno);
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket", path);
		return -EEXIST;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (r == 0 || errno == EAGAIN) {
		snprintf(err, errlen, "control socket %s: in use by another process (another relaygated?)",
			 path);
		return -EADDRINUSE;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: remove stale socket: %s", path,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

int rg_control_open(struct rg_control **out, const struct rg_control_opts *o,
		    rg_control_event_fn cb, void *ctx, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = o && o->path && *o->path ? o->path : RG_CONTROL_SOCKET_DEFAULT;
	struct epoll_event e;
	struct rg_control *c;
	struct stat st;
	int r;

	*out = NULL;
	if (!cb) {
		snprintf(err, errlen, "control socket: no event callback");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "control socket %s: path too long (max %zu bytes)",
			 path, sizeof(sun.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	if (path[0] != '/') {
		snprintf(err, errlen, "control socket %s: must be an absolute path", path);
		return -EINVAL;
	}
	if (o && o->mode > 07777) {
		snprintf(err, errlen, "control socket mode %o: not a file mode", o->mode);
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "control socket: out of memory");
		return -ENOMEM;
	}
	c->ep = c->lfd = c->tfd = -1;
	c->cb = cb;
	c->ctx = ctx;
	c->rate = o && o->rate ? o->rate : CTL_DEFAULT_RATE;
	c->burst = o && o->burst ? o->burst : 2 * c->rate;
	c->max_clients = o && o->max_clients ? o->max_clients : CTL_DEFAULT_MAX_CLIENTS;
	c->idle_ms = o && o->idle_timeout_ms ? o->idle_timeout_ms : CTL_DEFAULT_IDLE_MS;
	snprintf(c->source, sizeof(c->source), "%s", o && o->source ? o->source : "control");
	snprintf(c->path, sizeof(c->path), "%s", path);
	strcpy(sun.sun_path, path);

	r = resolve_group(&c->grp, o && o->group ? o->group : RG_CONTROL_GROUP_DEFAULT, err, errlen);
	if (r < 0)
		goto fail;
	r = make_parent(path, err, errlen);
	if (r < 0)
		goto fail;
	r = clear_stale(path, err, errlen);
	if (r < 0)
		goto fail;

	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	/* Peers are checked with SO_PEERCRED at accept, so the moment between
	 * bind and chmod (umask mode) opens nothing: mode and group are a second
	 * fence, not the only one. */
	if (c->grp.have_gid && chown(path, (uid_t)-1, c->grp.gid) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: chown to group %s: %s", path, c->grp.name,
			 strerror(errno));
		goto fail_unlink;
	}
	if (chmod(path, o && o->mode ? o->mode : RG_CONTROL_MODE_DEFAULT) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: chmod: %s", path, strerror(errno));
		goto fail_unlink;
	}
	if (stat(path, &st) == 0) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	if (listen(c->lfd, 64) < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket %s: listen: %s", path, strerror(errno));
		goto fail_unlink;
	}
	c->ep = epoll_create1(EPOLL_CLOEXEC);
	c->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (c->ep < 0 || c->tfd < 0) {
		r = -errno;
		snprintf(err, errlen, "control socket: %s", strerror(errno));
		goto fail_unlink;
	}
	e.events = EPOLLIN;
	e.data.ptr = &ctl_tag_listen;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->lfd, &e) < 0)
		goto fail_errno;
	e.data.ptr = &ctl_tag_timer;
	if (epoll_ctl(c->ep, EPOLL_CTL_ADD, c->tfd, &e) < 0)
		goto fail_errno;
	*out = c;
	return 0;

fail_errno:
	r = -errno;
	snprintf(err, errlen, "control socket: epoll: %s", strerror(errno));
fail_unlink:
	unlink(path);
fail:
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->ep >= 0)
		close(c->ep);
	if (c->tfd >= 0)
		close(c->tfd);
	free(c);
	return r;
}

void rg_control_close(struct rg_control *c)
{
	struct stat st;

	if (!c)
		return;
	while (c->clients)
		client_free(c, c->clients);
	/* Remove the socket file only if it is still the one we bound (a new
	 * daemon may have replaced it). */
	if (stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
		unlink(c->path);
	close(c->lfd);
	close(c->ep);
	close(c->tfd);
	free(c);
}
