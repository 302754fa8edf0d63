// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the Postfix policy server's connection handling
 * (policy.c conn_readable/conn_run/conn_request: request buffering,
 * framing across reads, pipelining, max_request, closing on bad input),
 * through a real server on a unix socket.
 *
 * Input: SEED_LO SEED_HI BYTES... BYTES are sent on one connection in
 * chunks (sizes from SEED), the server runs after each chunk, then the
 * client shuts its side down. The answers must be exactly those a model
 * written here gives for the whole input at once: split it into requests
 * at empty lines, answer each (rg_policy_parse, the lookup, rg_policy_
 * decide) with "action=...\n\n", in order, and stop at the first request
 * over max_request bytes, malformed, or whose lookup fails: the server
 * closes the connection there without an answer. The server always ends
 * the connection, keeps none open, and counts what it did (requests,
 * answers, malformed) as the model does.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "cidr.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

#define MAX_REQUEST 1024        /* small, so the limit is reached often */
#define MAX_ATTRS   20

static void check(int cond)
{
	if (!cond)
		abort();
}

static struct rg_policy *srv;
static struct rg_senderlogins *map;
static char dir[64], sock[96];

/*
 * The decision source: a pure function of the address. Last byte % 4:
 * 0 unknown, 1 trusted, 2 a grant for alice, 3 the lookup fails (-EIO)
 * when the byte is 3, else a grant for a user absent from the map.
 */
static int lookup(void *ctx, const struct rg_addr *a, struct rg_policy_auth *out)
{
	uint8_t last = a->addr[a->family == RG_AF_INET ? 3 : 15];

	(void)ctx;
	switch (last % 4) {
	case 1:
		out->kind = RG_POLICY_TRUSTED;
		strcpy(out->subnet, "10.0.0.0/8");
		break;
	case 2:
		out->kind = RG_POLICY_GRANT;
		strcpy(out->user, "alice");
		out->service = RG_SERVICE_IMAP;
		out->granted = 1700000000;
		break;
	case 3:
		if (last == 3)
			return -EIO;
		out->kind = RG_POLICY_GRANT;
		strcpy(out->user, "mallory");
		break;
	}
	return 0;
}

static void cleanup(void)
{
	rg_policy_free(srv);
	rg_senderlogins_free(map);
	rmdir(dir);
}

static void setup(void)
{
	static const char text[] = "alice: alice@example.org, @alice.example\n";
	struct rg_policy_opts o = { .max_request = MAX_REQUEST, .max_attrs = MAX_ATTRS,
				    .lookup = lookup, .recipient_delimiter = "+" };
	char err[256];

	rg_log_init("fuzz_policy_server", false, RG_LOG_ERR);
	map = rg_senderlogins_parse(text, strlen(text), "fuzz", err, sizeof(err));
	check(map != NULL);
	snprintf(dir, sizeof(dir), "/tmp/rgfuzz-policy-%d", (int)getpid());
	check(mkdir(dir, 0700) == 0 || errno == EEXIST);
	snprintf(sock, sizeof(sock), "unix:%s/policy.sock", dir);
	o.listen = sock;
	o.sender_logins = map;
	srv = rg_policy_new(&o, err, sizeof(err));
	if (!srv) {
		fprintf(stderr, "fuzz_policy_server: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

struct expect {
	char *text;             /* the answers, concatenated */
	size_t len, cap;
	uint64_t requests, ok, dunno, reject, malformed, lookup_errors;
};

static void add_answer(struct expect *e, const char *action)
{
	size_t need = strlen(action) + 16;

	if (e->len + need > e->cap) {
		e->cap = (e->len + need) * 2;
		e->text = realloc(e->text, e->cap);
		check(e->text != NULL);
	}
	e->len += sprintf(e->text + e->len, "action=%s\n\n", action);
}

/* End of the request starting at in[0]: its length with the empty line,
 * or 0 if the input ends first. Written apart from rg_policy_frame. */
static size_t request_len(const uint8_t *in, size_t n)
{
	size_t i = 0;

	while (i < n) {
		const uint8_t *nl = memchr(in + i, '\n', n - i);

		if (!nl)
			return 0;
		if (nl == in + i || (nl == in + i + 1 && in[i] == '\r'))
			return (size_t)(nl - in) + 1;
		i = (size_t)(nl - in) + 1;
	}
	return 0;
}

static void model(const uint8_t *in, size_t n, struct expect *e)
{
	struct rg_policy_rules rules = { .sender_logins = map, .recipient_delimiter = "+" };
	size_t off = 0;

	for (;;) {
		size_t len = request_len(in + off, n - off);
		struct rg_policy_request req;
		struct rg_policy_auth auth;
		struct rg_policy_decision d;
		const char *why;
		char *buf;

		if (!len || len > MAX_REQUEST) {
			/* the buffer fills up before an end: malformed; else
			 * the client's EOF ends it quietly */
			if (n - off >= MAX_REQUEST)
				e->malformed++;
			return;
		}
		e->requests++;
		buf = malloc(len);
		check(buf != NULL);
		memcpy(buf, in + off, len);
		if (rg_policy_parse(buf, len, MAX_ATTRS, &req, &why)) {
			e->malformed++;
			free(buf);
			return;
		}
		memset(&auth, 0, sizeof(auth));
		if (rg_policy_wants_lookup(&req)) {
			struct rg_addr a;

			if (req.client_address && !rg_addr_parse(req.client_address, &a, &why) &&
			    lookup(NULL, &a, &auth) < 0) {
				e->lookup_errors++;
				free(buf);
				return;
			}
		}
		rg_policy_decide(&req, &auth, &rules, &d);
		add_answer(e, d.action);
		if (d.answer == RG_ANSWER_OK)
			e->ok++;
		else if (d.answer == RG_ANSWER_REJECT)
			e->reject++;
		else
			e->dunno++;
		free(buf);
		off += len;
	}
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_chunk[4] = { 1, 9, 200, 5000 };
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct rg_policy_stats before, after;
	struct expect e = { 0 };
	const uint8_t *in = data + 2;
	size_t n, off = 0, have = 0, cap = 4096;
	uint32_t seed;
	char *out;
	bool eof = false, shut = false;
	int fd, round;

	if (size < 2 || size > (1 << 20))
		return 0;
	if (!srv)
		setup();
	n = size - 2;
	seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | 0x10000u;
	model(in, n, &e);
	out = malloc(cap);
	check(out != NULL);
	rg_policy_stats(srv, &before);

	strcpy(sun.sun_path, sock + 5);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	check(fd >= 0);
	check(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	for (round = 0; round < 200000 && !eof; round++) {
		ssize_t r;

		if (off < n) {
			size_t c = 1 + rnd(&seed) % max_chunk[data[0] & 3];

			if (c < n / 300)
				c = n / 300;    /* bounded work per input */
			if (c > n - off)
				c = n - off;
			r = send(fd, in + off, c, MSG_NOSIGNAL);
			if (r > 0)
				off += (size_t)r;
			else if (r < 0 && (errno == EPIPE || errno == ECONNRESET))
				off = n;        /* the server closed: no more to say */
			else
				check(r < 0 && errno == EAGAIN);
		}
		if (off == n && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		check(rg_policy_process(srv) == 0);
		for (;;) {
			if (have == cap) {
				cap *= 2;
				out = realloc(out, cap);
				check(out != NULL);
			}
			r = read(fd, out + have, cap - have);
			if (r > 0) {
				have += (size_t)r;
				continue;
			}
			if (r == 0 || errno == ECONNRESET)
				eof = true;
			else
				check(errno == EAGAIN);
			break;
		}
		if (!eof && off == n) {
			struct pollfd p = { .fd = rg_policy_fd(srv), .events = POLLIN };

			poll(&p, 1, 1);
		}
	}
	close(fd);
	check(eof);                     /* the server always ends it */
	check(rg_policy_process(srv) == 0);
	rg_policy_stats(srv, &after);
	check(after.connections == 0);

	/* exactly the model's answers, and counted as it counts */
	check(have == e.len && (!have || !memcmp(out, e.text, have)));
	check(after.requests - before.requests == e.requests);
	check(after.ok - before.ok == e.ok);
	check(after.dunno - before.dunno == e.dunno);
	check(after.reject - before.reject == e.reject);
	check(after.malformed - before.malformed == e.malformed);
	check(after.lookup_errors - before.lookup_errors == e.lookup_errors);
	check(after.timeouts == before.timeouts);
	free(out);
	free(e.text);
	return 0;
}
