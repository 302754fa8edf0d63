// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Grants and denies shared through Redis: design in cluster.h. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "cidr.h"
#include "cluster.h"
#include "log.h"

#define MAGIC          "relaygate-cluster 1 "
#define KEY_PREFIX     "relaygate:"
#define TIMEOUT_SEC    2
#define PING_EVERY_NS  (5 * 1000000000ULL)
#define RETRY_MIN_SEC  1
#define RETRY_MAX_SEC  30
#define STABLE_NS      (60 * 1000000000ULL)   /* a connection this old: retry from 1 s */
#define PIPELINE       512              /* commands in flight while pushing */
#define FLUSH_BATCH    256              /* queued entries sent in one pipeline */
#define SCAN_COUNT     "1000"

/*
 * KEYS[1] the entry's key; ARGV: the entry line, its expiry (Unix s), the
 * channel, the message. Sets and publishes only when the expiry extends
 * what Redis holds by more than a second (expiries are rounded up to the
 * second, so an entry read back and written again may gain one), or Redis
 * holds nothing parsable: 1; else 0.
 */
static const char SCRIPT[] =
	"local cur = redis.call('GET', KEYS[1])\n"
	"if cur then\n"
	"  local e = tonumber(string.match(cur, '^%a+ %S+ (%d+) '))\n"
	"  if e and e + 1 >= tonumber(ARGV[2]) then return 0 end\n"
	"end\n"
	"redis.call('SET', KEYS[1], ARGV[1], 'EXAT', ARGV[2])\n"
	"redis.call('PUBLISH', ARGV[3], ARGV[4])\n"
	"return 1\n";

/* --- messages -------------------------------------------------------- */

/* An instance id: RG_CLUSTER_ID_LEN lowercase hex digits, as parsed. */
static bool id_ok(const char *s)
{
	size_t n;

	for (n = 0; n < RG_CLUSTER_ID_LEN; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return s[n] == '\0';
}

/* A word of 1..max bytes in '!'..'~'. */
static bool word_ok(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1);

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '!' || s[i] > '~')
			return false;
	return true;
}

int rg_cluster_msg_format(char *buf, size_t len, const char *id, const char *host,
			  unsigned plen, const char *entry)
{
	int n;

	if (!id_ok(id) || !word_ok(host, RG_CLUSTER_HOST_MAX) || plen > 128)
		return -EINVAL;
	n = snprintf(buf, len, MAGIC "%s %s %u %s", id, host, plen, entry);
	if (n < 0 || (size_t)n >= len || n > RG_CLUSTER_MSG_MAX)
		return -ENOSPC;
	return n;
}

/* A prefix length of 1 to 3 digits ending at end. -1: not one. */
static int parse_plen(const char *p, const char *end)
{
	int v = 0;

	if (end - p < 1 || end - p > 3)
		return -1;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

/* e's key is an address of its family masked to plen: then plen is e's. */
static const char *take_plen(struct rg_cluster_entry *e, int plen)
{
	struct rg_addr m = e->key;

	if (plen < 0 || plen > (e->key.family == RG_AF_INET ? 32 : 128))
		return "bad prefix length";
	rg_addr_key(&m, (unsigned)plen, (unsigned)plen);
	if (memcmp(&m, &e->key, sizeof(m)))
		return "address not masked to its prefix length";
	e->plen = (unsigned)plen;
	return NULL;
}

/* One state-file entry line (len bytes) into e, its key masked to plen
 * (-1: none given): NULL, or why not. */
static const char *take_entry(const char *line, size_t len, const struct rg_state_clocks *now,
			      int plen, struct rg_cluster_entry *e)
{
	struct rg_state st = { 0 };
	const char *why = rg_state_parse_line(line, len, now, &st);

	if (!why && st.ngrants + st.ndenies != 1) {
		why = "not one entry";
	} else if (!why && st.ngrants) {
		e->deny = false;
		e->key = st.grants[0].key;
		e->g = st.grants[0].v;
	} else if (!why) {
		e->deny = true;
		e->key = st.denies[0].key;
		e->d = st.denies[0].v;
	}
	rg_state_free(&st);
	/* No host makes such a key from a login, as none takes one in; but
	 * "::" is also the /64 (or shorter) key of ::1, a login from IPv6
	 * loopback (webmail on the host), so that one is let through. */
	if (!why) {
		enum rg_not_client k = rg_addr_not_client(&e->key);

		if (k != RG_CLIENT_OK && k != RG_NOT_CLIENT_UNSPEC6)
			why = rg_not_client_str(k);
	}
	return why ? why : take_plen(e, plen);
}

const char *rg_cluster_msg_parse(const char *msg, size_t len, const struct rg_state_clocks *now,
				 char *id, struct rg_cluster_entry *e)
{
	const char *p = msg, *end = msg + len, *sp, *why;
	size_t n;
	int plen;

	memset(e, 0, sizeof(*e));
	if (len > RG_CLUSTER_MSG_MAX)
		return "message too long";
	if (len < sizeof(MAGIC) - 1 || memcmp(msg, MAGIC, sizeof(MAGIC) - 1))
		return "not a relaygate-cluster 1 message";
	p += sizeof(MAGIC) - 1;
	/* ID */
	sp = memchr(p, ' ', end - p);
	if (!sp || sp - p != RG_CLUSTER_ID_LEN)
		return "bad instance id";
	memcpy(id, p, RG_CLUSTER_ID_LEN);
	id[RG_CLUSTER_ID_LEN] = '\0';
	if (!id_ok(id))
		return "bad instance id";
	p = sp + 1;
	/* HOST */
	sp = memchr(p, ' ', end - p);
	n = sp ? (size_t)(sp - p) : 0;
	if (!n || n > RG_CLUSTER_HOST_MAX)
		return "bad host name";
	for (size_t i = 0; i < n; i++)
		if (p[i] < '!' || p[i] > '~')
			return "bad host name";
	memcpy(e->host, p, n);
	e->host[n] = '\0';
	p = sp + 1;
	/* PLEN */
	sp = memchr(p, ' ', end - p);
	plen = sp ? parse_plen(p, sp) : -1;
	if (plen < 0)
		return "bad prefix length";
	p = sp + 1;
	/* ENTRY */
	why = take_entry(p, end - p, now, plen, e);
	e->live = true;
	return why;
}

void rg_cluster_key(char *buf, size_t len, bool deny, const struct rg_addr *key, unsigned plen)
{
	char a[RG_ADDRSTRLEN];

	snprintf(buf, len, KEY_PREFIX "%s:%s/%u", deny ? "deny" : "grant",
		 rg_addr_str(key, a, sizeof(a)), plen);
}

const char *rg_cluster_value_parse(const char *key, const char *val, size_t len,
				   const struct rg_state_clocks *now, struct rg_cluster_entry *e)
{
	const char *slash = strrchr(key, '/');
	char want[64 + RG_ADDRSTRLEN];
	const char *why;

	memset(e, 0, sizeof(*e));
	why = take_entry(val, len, now, slash ? parse_plen(slash + 1, slash + strlen(slash)) : -1, e);
	if (why)
		return why;
	rg_cluster_key(want, sizeof(want), e->deny, &e->key, e->plen);
	if (strcmp(key, want))
		return "value does not belong to its key";
	return NULL;
}

/* --- the thread's state ---------------------------------------------- */

struct outgoing {
	bool deny;
	unsigned plen;                   /* the key's prefix length */
	struct rg_addr key;
	struct rg_grant g;
	struct rg_deny d;
};

struct rg_cluster {
	/* set at start, read-only after */
	bool unix_sock;
	char host[256], path[RG_SUN_PATH_MAX], password[256];
	uint16_t port;
	unsigned db;
	char where[320], channel[48];
	char id[RG_CLUSTER_ID_LEN + 1], hostname[RG_CLUSTER_HOST_MAX + 1];
	struct rg_cluster_hooks hooks;
	pthread_t th;
	int wake;                        /* eventfd: outgoing entries, stop */
	int efd;                         /* eventfd: incoming entries */

	pthread_mutex_t mu;
	pthread_cond_t room;             /* incoming has room, or stop */
	bool stop;
	bool exited;                     /* the thread has ended */
	bool orphan;                     /* nobody waits for it: it frees cl itself */
	struct rg_cluster_entry *in;     /* ring: incoming */
	size_t in_head, in_n;
	struct outgoing *out;            /* ring: outgoing */
	size_t out_head, out_n;
	bool push_all;                   /* outgoing overflowed */
	struct rg_cluster_stats st;

	/* the thread's own */
	redisContext *cmd, *sub;
	uint64_t ping_at;
	bool sub_ping_out;               /* a PING on sub not answered yet */
	bool refused_warned;             /* this connection's refused write logged */
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static bool stopping(struct rg_cluster *cl)
{
	bool s;

	pthread_mutex_lock(&cl->mu);
	s = cl->stop;
	pthread_mutex_unlock(&cl->mu);
	return s;
}

static void count(struct rg_cluster *cl, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&cl->mu);
	*field += n;
	pthread_mutex_unlock(&cl->mu);
}

static void set_up(struct rg_cluster *cl, bool up)
{
	pthread_mutex_lock(&cl->mu);
	cl->st.up = up;
	pthread_mutex_unlock(&cl->mu);
}

/* Hand an entry to the loop; waits while the queue is full. false: stop. */
static bool deliver(struct rg_cluster *cl, const struct rg_cluster_entry *e)
{
	uint64_t one = 1;
	bool ok;

	pthread_mutex_lock(&cl->mu);
	while (cl->in_n == RG_CLUSTER_QUEUE && !cl->stop)
		pthread_cond_wait(&cl->room, &cl->mu);
	ok = !cl->stop;
	if (ok) {
		cl->in[(cl->in_head + cl->in_n) % RG_CLUSTER_QUEUE] = *e;
		if (!cl->in_n++ && write(cl->efd, &one, sizeof(one)) < 0)
			ok = true;      /* the counter is full: it is readable anyway */
		cl->st.received++;
	}
	pthread_mutex_unlock(&cl->mu);
	return ok;
}

size_t rg_cluster_take(struct rg_cluster *cl, struct rg_cluster_entry *out, size_t max)
{
	uint64_t v;
	size_t n = 0;

	pthread_mutex_lock(&cl->mu);
	while (n < max && cl->in_n) {
		out[n++] = cl->in[cl->in_head];
		cl->in_head = (cl->in_head + 1) % RG_CLUSTER_QUEUE;
		cl->in_n--;
	}
	if (!cl->in_n && read(cl->efd, &v, sizeof(v)) < 0)
		v = 0;          /* already clear */
	if (n)
		pthread_cond_signal(&cl->room);
	pthread_mutex_unlock(&cl->mu);
	return n;
}

static void share(struct rg_cluster *cl, const struct outgoing *o)
{
	uint64_t one = 1;
	bool wake = false;

	pthread_mutex_lock(&cl->mu);
	if (!cl->st.up) {
		/* the next connect pushes the snapshot, this one in it */
	} else if (cl->out_n == RG_CLUSTER_QUEUE) {
		cl->st.dropped++;
		cl->push_all = wake = true;
	} else {
		cl->out[(cl->out_head + cl->out_n) % RG_CLUSTER_QUEUE] = *o;
		wake = !cl->out_n++;
	}
	pthread_mutex_unlock(&cl->mu);
	if (wake && write(cl->wake, &one, sizeof(one)) < 0)
		wake = false;   /* full counter: readable anyway */
}

void rg_cluster_share_grant(struct rg_cluster *cl, const struct rg_addr *key, unsigned plen,
			    const struct rg_grant *v)
{
	struct outgoing o = { .deny = false, .plen = plen, .key = *key, .g = *v };

	share(cl, &o);
}

void rg_cluster_share_deny(struct rg_cluster *cl, const struct rg_addr *key, unsigned plen,
			   const struct rg_deny *v)
{
	struct outgoing o = { .deny = true, .plen = plen, .key = *key, .d = *v };

	share(cl, &o);
}

/* --- talking to Redis ------------------------------------------------ */

static void drop_conn(redisContext **c)
{
	if (*c)
		redisFree(*c);
	*c = NULL;
}

/* A command's reply, or NULL with why set (no reply, or an error reply). */
static redisReply *checked(redisContext *c, redisReply *r, const char *what, char *why,
			   size_t len)
{
	if (!r) {
		snprintf(why, len, "%s: %s", what, c->errstr[0] ? c->errstr : "connection lost");
		return NULL;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		snprintf(why, len, "%s: %.*s", what, (int)r->len, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

static redisContext *open_one(struct rg_cluster *cl, char *why, size_t len)
{
	struct timeval tv = { .tv_sec = TIMEOUT_SEC };
	redisContext *c;
	redisReply *r;

	c = cl->unix_sock ? redisConnectUnixWithTimeout(cl->path, tv) :
			    redisConnectWithTimeout(cl->host, cl->port, tv);
	if (!c) {
		snprintf(why, len, "connect: out of memory");
		return NULL;
	}
	if (c->err) {
		snprintf(why, len, "connect: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	if (redisSetTimeout(c, tv) != REDIS_OK) {
		snprintf(why, len, "setting the timeout: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	/* TCP keepalive: a connection dropped on the way (a NAT, a firewall)
	 * without a reset is found even while nothing is sent */
	if (!cl->unix_sock && redisEnableKeepAlive(c) != REDIS_OK) {
		snprintf(why, len, "enabling keepalive: %s", c->errstr);
		redisFree(c);
		return NULL;
	}
	if (cl->password[0]) {
		r = checked(c, redisCommand(c, "AUTH %s", cl->password), "AUTH", why, len);
		if (!r) {
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	if (cl->db) {
		r = checked(c, redisCommand(c, "SELECT %u", cl->db), "SELECT", why, len);
		if (!r) {
			redisFree(c);
			return NULL;
		}
		freeReplyObject(r);
	}
	return c;
}

static int connect_all(struct rg_cluster *cl, char *why, size_t len)
{
	redisReply *r;

	cl->cmd = open_one(cl, why, len);
	if (!cl->cmd)
		return -1;
	cl->sub = open_one(cl, why, len);
	if (!cl->sub) {
		drop_conn(&cl->cmd);
		return -1;
	}
	r = checked(cl->sub, redisCommand(cl->sub, "SUBSCRIBE %s", cl->channel), "SUBSCRIBE",
		    why, len);
	if (!r) {
		drop_conn(&cl->cmd);
		drop_conn(&cl->sub);
		return -1;
	}
	freeReplyObject(r);
	cl->ping_at = mono_ns() + PING_EVERY_NS;
	cl->sub_ping_out = false;
	cl->refused_warned = false;
	return 0;
}

/* Writes one entry with the script (appended to the pipeline): false when
 * it has nothing to send (expired, or not representable). */
static bool append_push(struct rg_cluster *cl, const struct outgoing *o,
			const struct rg_state_clocks *now)
{
	char line[1100], msg[RG_CLUSTER_MSG_MAX + 1], key[64 + RG_ADDRSTRLEN], exp[24];
	const char *argv[8];
	size_t argl[8];
	FILE *f = fmemopen(line, sizeof(line), "w");
	const char *sp;
	int r, n, i;

	if (!f)
		return false;
	if (o->deny) {
		struct rg_state_deny e = { .key = o->key, .v = o->d };

		r = rg_state_write_deny(f, &e, now);
	} else {
		struct rg_state_grant e = { .key = o->key, .v = o->g };

		r = rg_state_write_grant(f, &e, now);
	}
	if (fclose(f) || r || !memchr(line, '\0', sizeof(line) - 1))
		return false;
	/* the expiry is the third field */
	sp = strchr(line, ' ');
	sp = sp ? strchr(sp + 1, ' ') : NULL;
	if (!sp || sscanf(sp + 1, "%20[0-9]", exp) != 1)
		return false;
	n = rg_cluster_msg_format(msg, sizeof(msg), cl->id, cl->hostname, o->plen, line);
	if (n < 0)
		return false;
	rg_cluster_key(key, sizeof(key), o->deny, &o->key, o->plen);
	argv[0] = "EVAL";
	argv[1] = SCRIPT;
	argv[2] = "1";
	argv[3] = key;
	argv[4] = line;
	argv[5] = exp;
	argv[6] = cl->channel;
	argv[7] = msg;
	for (i = 0; i < 8; i++)
		argl[i] = strlen(argv[i]);
	return redisAppendCommandArgv(cl->cmd, 8, argv, argl) == REDIS_OK;
}

/* Reads n pipelined script replies. -1: the connection failed. */
static int read_pushes(struct rg_cluster *cl, size_t n, char *why, size_t len)
{
	uint64_t ext = 0, err = 0;
	void *v;
	int ret = 0;

	while (n--) {
		redisReply *r;

		if (redisGetReply(cl->cmd, &v) != REDIS_OK) {
			snprintf(why, len, "writing to redis: %s",
				 cl->cmd->errstr[0] ? cl->cmd->errstr : "connection lost");
			ret = -1;
			break;
		}
		r = v;
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
			ext++;
		else if (r->type == REDIS_REPLY_ERROR && !err++ && !cl->refused_warned) {
			rg_warn("cluster: redis refused a write: %.*s (logged once per connection)",
				(int)r->len, r->str);
			cl->refused_warned = true;
		}
		freeReplyObject(r);
	}
	pthread_mutex_lock(&cl->mu);
	cl->st.published += ext;
	cl->st.errors += err;
	pthread_mutex_unlock(&cl->mu);
	return ret;
}

/* Sends what waits in the outgoing queue. */
static int flush_out(struct rg_cluster *cl, char *why, size_t len)
{
	for (;;) {
		struct outgoing batch[FLUSH_BATCH];
		struct rg_state_clocks now;
		size_t n = 0, sent = 0, i;

		pthread_mutex_lock(&cl->mu);
		while (n < FLUSH_BATCH && cl->out_n) {
			batch[n++] = cl->out[cl->out_head];
			cl->out_head = (cl->out_head + 1) % RG_CLUSTER_QUEUE;
			cl->out_n--;
		}
		pthread_mutex_unlock(&cl->mu);
		if (!n)
			return 0;
		rg_state_clocks_now(&now);
		for (i = 0; i < n; i++)
			sent += append_push(cl, &batch[i], &now);
		if (sent && read_pushes(cl, sent, why, len))
			return -1;
	}
}

static int pump_sub(struct rg_cluster *cl, char *why, size_t len);

/* Every local entry, with the script. Between batches the subscriber is
 * read: what the push publishes comes back to it, and Redis cuts off a
 * subscriber that lets tens of megabytes pile up (a push of a million). */
static int push_snapshot(struct rg_cluster *cl, size_t *pushed, char *why, size_t len)
{
	struct rg_state st = { 0 };
	struct rg_state_clocks now;
	size_t i, inflight = 0, total;
	unsigned p4 = 32, p6 = 128;
	int r;

	*pushed = 0;
	if (stopping(cl))
		return 0;
	r = cl->hooks.snapshot(cl->hooks.ctx, &st, &p4, &p6);
	if (r) {
		snprintf(why, len, "reading the local grants: %s", strerror(-r));
		rg_state_free(&st);
		return -1;
	}
	rg_state_clocks_now(&now);
	total = st.ngrants + st.ndenies;
	for (i = 0; i < total && !stopping(cl); i++) {
		struct outgoing o = { 0 };

		if (i < st.ngrants) {
			o.key = st.grants[i].key;
			o.g = st.grants[i].v;
		} else {
			o.deny = true;
			o.key = st.denies[i - st.ngrants].key;
			o.d = st.denies[i - st.ngrants].v;
		}
		o.plen = o.key.family == RG_AF_INET ? p4 : p6;
		if (!append_push(cl, &o, &now))
			continue;
		(*pushed)++;
		if (++inflight == PIPELINE) {
			if (read_pushes(cl, inflight, why, len) || pump_sub(cl, why, len)) {
				rg_state_free(&st);
				return -1;
			}
			inflight = 0;
		}
	}
	rg_state_free(&st);
	return inflight ? read_pushes(cl, inflight, why, len) : 0;
}

/* Every relaygate key of the database, for the loop. */
static int read_all(struct rg_cluster *cl, size_t *got, char *why, size_t len)
{
	char cursor[32] = "0";

	*got = 0;
	do {
		struct rg_state_clocks now;
		redisReply *r, *m, *keys;
		const char **argv;
		size_t *argl, i;

		r = checked(cl->cmd, redisCommand(cl->cmd, "SCAN %s MATCH " KEY_PREFIX "* COUNT "
						  SCAN_COUNT, cursor), "SCAN", why, len);
		if (!r)
			return -1;
		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[0]->len >= sizeof(cursor) ||
		    r->element[1]->type != REDIS_REPLY_ARRAY) {
			snprintf(why, len, "SCAN: unexpected reply");
			freeReplyObject(r);
			return -1;
		}
		memcpy(cursor, r->element[0]->str, r->element[0]->len);
		cursor[r->element[0]->len] = '\0';
		keys = r->element[1];
		if (!keys->elements) {
			freeReplyObject(r);
			continue;
		}
		argv = calloc(keys->elements + 1, sizeof(*argv));
		argl = calloc(keys->elements + 1, sizeof(*argl));
		if (!argv || !argl) {
			free(argv);
			free(argl);
			freeReplyObject(r);
			snprintf(why, len, "SCAN: out of memory");
			return -1;
		}
		argv[0] = "MGET";
		argl[0] = 4;
		for (i = 0; i < keys->elements; i++) {
			argv[i + 1] = keys->element[i]->str ? keys->element[i]->str : "";
			argl[i + 1] = keys->element[i]->str ? keys->element[i]->len : 0;
		}
		m = checked(cl->cmd, redisCommandArgv(cl->cmd, (int)keys->elements + 1, argv, argl),
			    "MGET", why, len);
		free(argv);
		free(argl);
		if (!m || m->type != REDIS_REPLY_ARRAY || m->elements != keys->elements) {
			if (m)
				snprintf(why, len, "MGET: unexpected reply");
			freeReplyObject(m);
			freeReplyObject(r);
			return -1;
		}
		rg_state_clocks_now(&now);
		for (i = 0; i < m->elements; i++) {
			struct rg_cluster_entry e;
			redisReply *v = m->element[i];
			char key[64 + RG_ADDRSTRLEN];
			const char *bad;

			if (v->type != REDIS_REPLY_STRING || !keys->element[i]->str ||
			    keys->element[i]->len >= sizeof(key))
				continue;       /* gone since the SCAN, or not ours */
			memcpy(key, keys->element[i]->str, keys->element[i]->len);
			key[keys->element[i]->len] = '\0';
			bad = rg_cluster_value_parse(key, v->str, v->len, &now, &e);
			if (bad && strcmp(bad, "expired")) {
				count(cl, &cl->st.rejected, 1);
				rg_debug("cluster: redis key %s: %s", key, bad);
				continue;
			}
			if (bad)
				continue;
			if (!deliver(cl, &e)) {
				freeReplyObject(m);
				freeReplyObject(r);
				return 0;
			}
			(*got)++;
		}
		freeReplyObject(m);
		freeReplyObject(r);
	} while (strcmp(cursor, "0") && !stopping(cl));
	return 0;
}

/* One reply on the subscriber connection. */
static void on_message(struct rg_cluster *cl, redisReply *r)
{
	struct rg_state_clocks now;
	struct rg_cluster_entry e;
	char id[RG_CLUSTER_ID_LEN + 1];
	const char *why;

	if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
	    r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "pong")) {
		cl->sub_ping_out = false;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(r->element[0]->str, "message") ||
	    r->element[2]->type != REDIS_REPLY_STRING)
		return;         /* subscribe confirmations and the like */
	rg_state_clocks_now(&now);
	why = rg_cluster_msg_parse(r->element[2]->str, r->element[2]->len, &now, id, &e);
	if (why) {
		if (strcmp(why, "expired")) {
			count(cl, &cl->st.rejected, 1);
			rg_debug("cluster: message rejected: %s", why);
		}
		return;
	}
	if (!strcmp(id, cl->id))
		return;         /* our own */
	deliver(cl, &e);
}

/* Handles the replies the subscriber connection has buffered. -1: it failed. */
static int drain_sub(struct rg_cluster *cl, char *why, size_t len)
{
	void *v;

	for (;;) {
		if (redisGetReplyFromReader(cl->sub, &v) != REDIS_OK) {
			snprintf(why, len, "subscriber: %s", cl->sub->errstr);
			return -1;
		}
		if (!v)
			return 0;
		on_message(cl, v);
		freeReplyObject(v);
	}
}

/* Reads what the subscriber connection has. -1: it failed. */
static int read_sub(struct rg_cluster *cl, char *why, size_t len)
{
	if (redisBufferRead(cl->sub) != REDIS_OK) {
		snprintf(why, len, "subscriber: %s",
			 cl->sub->errstr[0] ? cl->sub->errstr : "connection lost");
		return -1;
	}
	return drain_sub(cl, why, len);
}

/* Both connections: the command one answers at once; the subscriber's
 * answer comes with its messages and must be there by the next ping (a
 * subscriber cut off silently would otherwise look idle for ever). */
/* Reads the subscriber while it has something, without waiting. */
static int pump_sub(struct rg_cluster *cl, char *why, size_t len)
{
	struct pollfd p = { .fd = cl->sub->fd, .events = POLLIN };

	while (poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)))
		if (read_sub(cl, why, len))
			return -1;
	return 0;
}

static int ping(struct rg_cluster *cl, char *why, size_t len)
{
	redisReply *r;
	int done = 0;

	if (cl->sub_ping_out) {
		snprintf(why, len, "subscriber: no answer to PING within %llu s",
			 PING_EVERY_NS / 1000000000ULL);
		return -1;
	}
	r = checked(cl->cmd, redisCommand(cl->cmd, "PING"), "PING", why, len);
	if (!r)
		return -1;
	freeReplyObject(r);
	if (redisAppendCommand(cl->sub, "PING") != REDIS_OK) {
		snprintf(why, len, "subscriber: PING: %s", cl->sub->errstr);
		return -1;
	}
	while (!done) {
		if (redisBufferWrite(cl->sub, &done) != REDIS_OK) {
			snprintf(why, len, "subscriber: PING: %s",
				 cl->sub->errstr[0] ? cl->sub->errstr : "connection lost");
			return -1;
		}
	}
	cl->sub_ping_out = true;
	cl->ping_at = mono_ns() + PING_EVERY_NS;
	return 0;
}

/* Connected: serve until the connection fails (-1) or stop (0). */
static int serve(struct rg_cluster *cl, char *why, size_t len)
{
	while (!stopping(cl)) {
		struct pollfd p[2] = {
			{ .fd = cl->sub->fd, .events = POLLIN },
			{ .fd = cl->wake, .events = POLLIN },
		};
		bool again;
		uint64_t v;

		pthread_mutex_lock(&cl->mu);
		again = cl->push_all;
		cl->push_all = false;
		pthread_mutex_unlock(&cl->mu);
		if (again) {
			size_t n;

			if (push_snapshot(cl, &n, why, len))
				return -1;
			rg_info("cluster: the outgoing queue overflowed: pushed all %zu local entries again",
				n);
		}
		/* a read may have brought more than one reply */
		if (drain_sub(cl, why, len))
			return -1;
		if (poll(p, 2, 1000) < 0 && errno != EINTR) {
			snprintf(why, len, "poll: %s", strerror(errno));
			return -1;
		}
		if ((p[1].revents & POLLIN) && read(cl->wake, &v, sizeof(v)) < 0)
			v = 0;
		if (flush_out(cl, why, len))
			return -1;
		if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && read_sub(cl, why, len))
			return -1;
		if (mono_ns() >= cl->ping_at && ping(cl, why, len))
			return -1;
	}
	return 0;
}

/* Sleeps up to sec seconds; false when asked to stop. */
static bool nap(struct rg_cluster *cl, unsigned sec)
{
	struct pollfd p = { .fd = cl->wake, .events = POLLIN };
	uint64_t until = mono_ns() + sec * 1000000000ULL, v;

	while (!stopping(cl)) {
		uint64_t t = mono_ns();

		if (t >= until)
			return true;
		if (poll(&p, 1, (int)((until - t) / 1000000 + 1)) > 0 &&
		    read(cl->wake, &v, sizeof(v)) < 0)
			v = 0;
		/* entries shared meanwhile wait for the next connect's snapshot */
		pthread_mutex_lock(&cl->mu);
		cl->out_head = cl->out_n = 0;
		pthread_mutex_unlock(&cl->mu);
	}
	return false;
}

static void destroy(struct rg_cluster *cl);

/* Retry delays: 1 s, doubling up to 30 s; from 1 s again once a connection
 * has lasted a minute. Each change of state is logged once. */
static void *cluster_main(void *arg)
{
	struct rg_cluster *cl = arg;
	unsigned retry = RETRY_MIN_SEC;
	bool warned = false, ever = false, orphan;
	char why[512];

	while (!stopping(cl)) {
		size_t got, pushed;
		uint64_t t_up;

		/* Once stopped (an exit, or a reload that left this server)
		 * a failure is not news: nothing is retried. */
		if (connect_all(cl, why, sizeof(why))) {
			count(cl, &cl->st.errors, 1);
			if (!warned && !stopping(cl))
				rg_warn("cluster: cannot use %s: %s; working locally, retrying", cl->where,
					why);
			warned = true;
		} else {
			/* Up from here: local entries queue while the resync runs. */
			set_up(cl, true);
			if (read_all(cl, &got, why, sizeof(why)) ||
			    push_snapshot(cl, &pushed, why, sizeof(why))) {
				count(cl, &cl->st.errors, 1);
				if (!warned && !stopping(cl))
					rg_warn("cluster: %s: %s; working locally, retrying", cl->where,
						why);
				warned = true;
			} else if (!stopping(cl)) {
				count(cl, &cl->st.connects, 1);
				rg_info("cluster: %s %s: %zu entries read, %zu local entries pushed",
					ever ? "reconnected to" : "connected to", cl->where, got, pushed);
				ever = true;
				warned = false;
				t_up = mono_ns();
				if (serve(cl, why, sizeof(why)) && !stopping(cl)) {
					count(cl, &cl->st.errors, 1);
					rg_warn("cluster: lost %s: %s; working locally, retrying", cl->where,
						why);
					warned = true;
				}
				if (mono_ns() - t_up >= STABLE_NS)
					retry = RETRY_MIN_SEC;
			}
			set_up(cl, false);
			drop_conn(&cl->cmd);
			drop_conn(&cl->sub);
		}
		if (!nap(cl, retry))
			break;
		retry = retry * 2 > RETRY_MAX_SEC ? RETRY_MAX_SEC : retry * 2;
	}
	drop_conn(&cl->cmd);
	drop_conn(&cl->sub);
	pthread_mutex_lock(&cl->mu);
	orphan = cl->orphan;
	cl->exited = true;
	pthread_mutex_unlock(&cl->mu);
	if (orphan)
		destroy(cl);
	return NULL;
}

/* --- life ------------------------------------------------------------ */

static void host_name(char *out)
{
	char h[256] = "";
	size_t i, n = 0;

	if (gethostname(h, sizeof(h) - 1))
		h[0] = '\0';
	for (i = 0; h[i] && n < RG_CLUSTER_HOST_MAX; i++)
		if (h[i] >= '!' && h[i] <= '~')
			out[n++] = h[i];
	if (!n)
		out[n++] = '-';
	out[n] = '\0';
}

int rg_cluster_new(struct rg_cluster **out, const struct rg_config_file *c,
		   const struct rg_cluster_hooks *h, char *err, size_t errlen)
{
	struct rg_cluster *cl;
	unsigned char rnd[RG_CLUSTER_ID_LEN / 2];
	int r;

	*out = NULL;
	if (!c->cluster.redis[0] || !h || !h->snapshot) {
		snprintf(err, errlen, "cluster: no redis configured");
		return -EINVAL;
	}
	cl = calloc(1, sizeof(*cl));
	if (cl) {
		cl->in = calloc(RG_CLUSTER_QUEUE, sizeof(*cl->in));
		cl->out = calloc(RG_CLUSTER_QUEUE, sizeof(*cl->out));
	}
	if (!cl || !cl->in || !cl->out) {
		if (cl) {
			free(cl->in);
			free(cl->out);
		}
		free(cl);
		snprintf(err, errlen, "cluster: out of memory");
		return -ENOMEM;
	}
	cl->unix_sock = c->cluster.redis_unix;
	snprintf(cl->host, sizeof(cl->host), "%s", c->cluster.redis_host);
	snprintf(cl->path, sizeof(cl->path), "%s", c->cluster.redis_path);
	snprintf(cl->password, sizeof(cl->password), "%s", c->cluster.redis_password);
	cl->port = c->cluster.redis_port;
	cl->db = c->cluster.redis_db;
	if (cl->unix_sock)
		snprintf(cl->where, sizeof(cl->where), "redis unix:%s?db=%u", cl->path, cl->db);
	else
		snprintf(cl->where, sizeof(cl->where), strchr(cl->host, ':') ?
			 "redis://[%s]:%u/%u" : "redis://%s:%u/%u", cl->host, cl->port, cl->db);
	snprintf(cl->channel, sizeof(cl->channel), KEY_PREFIX "events:%u", cl->db);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		/* no entropy yet: time and pid tell instances apart as well */
		uint64_t t = mono_ns() ^ ((uint64_t)getpid() << 40);

		memcpy(rnd, &t, sizeof(rnd));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(cl->id + 2 * i, 3, "%02x", rnd[i]);
	host_name(cl->hostname);
	cl->hooks = *h;
	cl->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cl->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->room, NULL);
	r = cl->wake < 0 || cl->efd < 0 ? -errno : -pthread_create(&cl->th, NULL, cluster_main, cl);
	if (r) {
		snprintf(err, errlen, "cluster: cannot start its thread: %s", strerror(-r));
		destroy(cl);
		return r;
	}
	*out = cl;
	return 0;
}

/* Frees cl: its thread has ended, or was never started. */
static void destroy(struct rg_cluster *cl)
{
	if (cl->wake >= 0)
		close(cl->wake);
	if (cl->efd >= 0)
		close(cl->efd);
	pthread_cond_destroy(&cl->room);
	pthread_mutex_destroy(&cl->mu);
	free(cl->in);
	free(cl->out);
	memset(cl->password, 0, sizeof(cl->password));
	free(cl);
}

bool rg_cluster_free(struct rg_cluster *cl, unsigned wait_ms)
{
	uint64_t one = 1;
	pthread_t th;
	bool ended;

	if (!cl)
		return true;
	pthread_mutex_lock(&cl->mu);
	cl->stop = true;
	pthread_cond_broadcast(&cl->room);
	pthread_mutex_unlock(&cl->mu);
	if (write(cl->wake, &one, sizeof(one)) < 0)
		one = 0;        /* full counter: the thread wakes anyway */
	if (wait_ms) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += wait_ms / 1000;
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		if (!pthread_timedjoin_np(cl->th, NULL, &ts)) {
			destroy(cl);
			return true;
		}
	}
	/* Still busy (a name lookup, a Redis timeout): it ends on its own
	 * and frees cl then; cl is not to be touched after the unlock. */
	pthread_mutex_lock(&cl->mu);
	th = cl->th;
	ended = cl->exited;
	cl->orphan = !ended;
	pthread_mutex_unlock(&cl->mu);
	if (ended) {
		pthread_join(th, NULL);
		destroy(cl);
		return true;
	}
	pthread_detach(th);
	return false;
}

const char *rg_cluster_where(const struct rg_cluster *cl)
{
	return cl->where;
}

int rg_cluster_fd(const struct rg_cluster *cl)
{
	return cl->efd;
}

void rg_cluster_get_stats(struct rg_cluster *cl, struct rg_cluster_stats *s)
{
	pthread_mutex_lock(&cl->mu);
	*s = cl->st;
	pthread_mutex_unlock(&cl->mu);
}
