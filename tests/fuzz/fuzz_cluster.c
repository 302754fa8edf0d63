// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the cluster messages and Redis values
 * (user/cluster.c, over user/state.c's entry lines). The first byte picks
 * the parser: even, rg_cluster_msg_parse over the rest; odd,
 * rg_cluster_value_parse with the rest split at the first newline into
 * the key and the value. Any input: no crash, no leak, no undefined
 * behaviour. What parses is written back (rg_state_write_grant/deny, and
 * rg_cluster_msg_format for a message) and must parse again to the same
 * entry: the same kind, key, expiry, user, service, origin, failure count,
 * sender; start times may only lose their sub-second part (they are
 * rounded down to the second). After that one pass the text is a fixed
 * point. The value a message carries must also be accepted under its own
 * Redis key, and no other.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cluster.h"
#include "state.h"

#define S 1000000000ULL
#define KEY_MAX 256

/* Clocks that are not whole seconds, so the rounding is exercised. */
static const struct rg_state_clocks now = {
	.boot_ns = 5000ULL * S + 123456789,
	.real_ns = 1700000000ULL * S + 987654321,
};

/* The entry's line, without newline, into line. */
static void entry_line(const struct rg_cluster_entry *e, char *line, size_t len)
{
	FILE *f = fmemopen(line, len, "w");
	int r;

	if (!f)
		abort();
	if (e->deny) {
		struct rg_state_deny d = { .key = e->key, .v = e->d };

		r = rg_state_write_deny(f, &d, &now);
	} else {
		struct rg_state_grant g = { .key = e->key, .v = e->g };

		r = rg_state_write_grant(f, &g, &now);
	}
	/* A parsed entry is live and has a family: it must write, whole. */
	if (r || fclose(f) || !memchr(line, '\0', len - 1))
		abort();
}

/* a then b, one write and parse apart: equal but for start times, which
 * may only round down (by less than a second). */
static void same_entry(const struct rg_cluster_entry *a, const struct rg_cluster_entry *b)
{
	uint64_t s1 = a->deny ? a->d.created : a->g.granted;
	uint64_t s2 = b->deny ? b->d.created : b->g.granted;

	if (a->deny != b->deny || a->live != b->live || a->plen != b->plen || strcmp(a->host, b->host) ||
	    memcmp(&a->key, &b->key, sizeof(a->key)) || s2 > s1 || s1 - s2 >= S)
		abort();
	if (a->deny && (a->d.expires != b->d.expires || a->d.origin != b->d.origin ||
			a->d.failures != b->d.failures))
		abort();
	if (!a->deny && (a->g.expires != b->g.expires || a->g.origin != b->g.origin ||
			 a->g.service != b->g.service ||
			 memcmp(a->g.user, b->g.user, sizeof(a->g.user))))
		abort();
}

static void exact_entry(const struct rg_cluster_entry *a, const struct rg_cluster_entry *b)
{
	same_entry(a, b);
	if ((a->deny ? a->d.created : a->g.granted) != (b->deny ? b->d.created : b->g.granted))
		abort();
}

/* What any accepted entry looks like. */
static void sane(const struct rg_cluster_entry *e)
{
	size_t n = strnlen(e->host, sizeof(e->host));

	if (n > RG_CLUSTER_HOST_MAX || (e->live && !n) || (!e->live && n))
		abort();
	for (size_t i = 0; i < n; i++)
		if (e->host[i] < '!' || e->host[i] > '~')
			abort();
	if (e->key.family != RG_AF_INET && e->key.family != RG_AF_INET6)
		abort();
	if ((e->deny ? e->d.expires : e->g.expires) <= now.boot_ns)
		abort();
	if (!e->deny && !memchr(e->g.user, '\0', sizeof(e->g.user)))
		abort();
}

/* The value of e (written to line) under its own key: accepted, the same
 * entry; under the other kind's key: refused. */
static void value_checks(const struct rg_cluster_entry *e, const char *line)
{
	struct rg_cluster_entry v;
	char key[KEY_MAX];

	rg_cluster_key(key, sizeof(key), e->deny, &e->key, e->plen);
	if (rg_cluster_value_parse(key, line, strlen(line), &now, &v))
		abort();
	sane(&v);
	if (v.live || v.deny != e->deny || v.plen != e->plen ||
	    memcmp(&v.key, &e->key, sizeof(v.key)))
		abort();
	rg_cluster_key(key, sizeof(key), !e->deny, &e->key, e->plen);
	if (!rg_cluster_value_parse(key, line, strlen(line), &now, &v))
		abort();
}

static void fuzz_msg(const char *data, size_t size)
{
	struct rg_cluster_entry e1, e2, e3;
	char id1[RG_CLUSTER_ID_LEN + 1], id2[RG_CLUSTER_ID_LEN + 1];
	char line[1100], line2[1100], m2[RG_CLUSTER_MSG_MAX + 1], m3[RG_CLUSTER_MSG_MAX + 1];
	int n2, n3;

	if (rg_cluster_msg_parse(data, size, &now, id1, &e1))
		return;
	sane(&e1);
	if (!e1.live || strlen(id1) != RG_CLUSTER_ID_LEN ||
	    strspn(id1, "0123456789abcdef") != RG_CLUSTER_ID_LEN)
		abort();
	/* Once around: write, format, parse. */
	entry_line(&e1, line, sizeof(line));
	n2 = rg_cluster_msg_format(m2, sizeof(m2), id1, e1.host, e1.plen, line);
	if (n2 <= 0 || rg_cluster_msg_parse(m2, n2, &now, id2, &e2) || strcmp(id1, id2))
		abort();
	same_entry(&e1, &e2);
	/* Twice: the same text, the same entry, to the nanosecond. */
	entry_line(&e2, line2, sizeof(line2));
	n3 = rg_cluster_msg_format(m3, sizeof(m3), id2, e2.host, e2.plen, line2);
	if (n3 != n2 || memcmp(m2, m3, n2) || rg_cluster_msg_parse(m3, n3, &now, id2, &e3))
		abort();
	exact_entry(&e2, &e3);
	value_checks(&e2, line2);
}

static void fuzz_value(const char *data, size_t size)
{
	const char *nl = memchr(data, '\n', size);
	struct rg_cluster_entry e1, e2;
	char key[KEY_MAX], key2[KEY_MAX], line[1100];
	size_t klen = nl ? (size_t)(nl - data) : size;

	if (klen >= sizeof(key))
		return;
	memcpy(key, data, klen);
	key[klen] = '\0';
	data += nl ? klen + 1 : klen;
	size -= nl ? klen + 1 : klen;
	/* The value on its own: bytes after its end are not read. */
	if (rg_cluster_value_parse(key, data, size, &now, &e1))
		return;
	sane(&e1);
	/* Accepted: the key must be the entry's (a key with a NUL inside
	 * is compared up to it, as Redis keys never hold one). */
	rg_cluster_key(key2, sizeof(key2), e1.deny, &e1.key, e1.plen);
	if (strcmp(key, key2))
		abort();
	entry_line(&e1, line, sizeof(line));
	if (rg_cluster_value_parse(key, line, strlen(line), &now, &e2))
		abort();
	same_entry(&e1, &e2);
	value_checks(&e2, line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* libFuzzer's buffer ends where the input does: ASan sees any read
	 * past it, and nothing in it is NUL-terminated. */
	if (!size)
		return 0;
	if (data[0] & 1)
		fuzz_value((const char *)data + 1, size - 1);
	else
		fuzz_msg((const char *)data + 1, size - 1);
	return 0;
}
