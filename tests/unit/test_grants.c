// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Grants core: the failure window, masking, trusted sources and counters
 * with a fake map side; then the same through the real pinned maps
 * (rg_gate_create under a unique /sys/fs/bpf dir; needs root).
 *
 * Under valgrind: libbpf 1.1 zeroes a bpf() attr only up to the fields the
 * command uses, and passes a NULL key to the first BPF_MAP_GET_NEXT_KEY;
 * valgrind 3.19's bpf() checks report both from inside libbpf (false
 * positives). QUIET() pauses error reporting around exactly the calls that
 * load the object or walk a map; everything else stays checked, and the
 * ASan build checks all of it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>
#include "cidr.h"
#include "gatemaps.h"
#include "grants.h"
#include "log.h"
#include "metrics.h"

#define SEC 1000000000ULL

#define QUIET(stmt)                                 \
	do {                                        \
		VALGRIND_DISABLE_ERROR_REPORTING;   \
		stmt;                               \
		VALGRIND_ENABLE_ERROR_REPORTING;    \
	} while (0)

/* ------------------------------------------------------------ fake maps */

struct fake {
	int grant_calls, deny_calls, trusted_calls;
	struct rg_addr keys[64];        /* granted keys, to answer "created" */
	int nkeys;
	struct rg_addr grant_src, deny_src;
	uint64_t grant_ttl, deny_ttl;
	char user[RG_EVENT_USER_MAX];
	enum rg_service service;
	enum rg_origin origin;
	uint32_t deny_failures;
	int grant_err, deny_err, trusted_ret;
	unsigned trusted_plen;
};

static int f_grant(void *ctx, const struct rg_addr *src, uint64_t ttl_ns, const char *user,
		   enum rg_origin origin, enum rg_service service, bool *created,
		   char *err, size_t errlen)
{
	struct fake *f = ctx;

	f->grant_calls++;
	if (f->grant_err) {
		snprintf(err, errlen, "grant map full (max 64): raise [grants] max");
		return f->grant_err;
	}
	f->grant_src = *src;
	f->grant_ttl = ttl_ns;
	snprintf(f->user, sizeof(f->user), "%s", user);
	f->service = service;
	f->origin = origin;
	*created = true;
	for (int i = 0; i < f->nkeys; i++)
		if (!memcmp(&f->keys[i], src, sizeof(*src)))
			*created = false;
	if (*created && f->nkeys < 64)
		f->keys[f->nkeys++] = *src;
	return 0;
}

static int f_deny(void *ctx, const struct rg_addr *src, uint64_t ttl_ns, enum rg_origin origin,
		  uint32_t failures, char *err, size_t errlen)
{
	struct fake *f = ctx;

	(void)origin;
	f->deny_calls++;
	if (f->deny_err) {
		snprintf(err, errlen, "deny map full");
		return f->deny_err;
	}
	f->deny_src = *src;
	f->deny_ttl = ttl_ns;
	f->deny_failures = failures;
	return 0;
}

static int f_trusted(void *ctx, const struct rg_addr *src, const struct rg_addr *net,
		     unsigned plen)
{
	struct fake *f = ctx;

	(void)src;
	(void)net;
	f->trusted_calls++;
	f->trusted_plen = plen;
	return f->trusted_ret;
}

static const struct rg_grants_ops fake_ops = {
	.grant_put = f_grant, .deny_put = f_deny, .trusted = f_trusted,
};

static struct rg_auth_event ev(enum rg_event_kind kind, const char *addr, const char *user)
{
	struct rg_auth_event e = { .kind = kind, .origin = RG_ORIGIN_LOG, .source = "dovecot",
				   .service = RG_SERVICE_POP3 };
	const char *why;

	if (rg_addr_parse(addr, &e.addr, &why))
		fail_msg("address %s: %s", addr, why);
	snprintf(e.user, sizeof(e.user), "%s", user);
	return e;
}

static struct rg_grants *mk(struct fake *f, unsigned after, uint64_t within_s,
			    const struct rg_cidr *trusted, size_t ntrusted, unsigned max_sources)
{
	struct rg_grants_conf c = {
		.ttl_ns = 1800 * SEC, .after_failures = after, .within_ns = within_s * SEC,
		.deny_ttl_ns = 3600 * SEC, .trusted = trusted, .ntrusted = ntrusted,
		.max_sources = max_sources,
	};
	struct rg_grants *gr;
	char err[256];

	memset(f, 0, sizeof(*f));
	if (rg_grants_new_ops(&gr, &fake_ops, f, &c, err, sizeof(err)))
		fail_msg("rg_grants_new_ops: %s", err);
	return gr;
}

static void test_login(void **state)
{
	struct rg_grants_stats s;
	struct rg_auth_event e;
	struct rg_grants *gr;
	struct fake f;
	char a[RG_ADDRSTRLEN];

	(void)state;
	gr = mk(&f, 3, 60, NULL, 0, 0);
	e = ev(RG_EV_LOGIN, "192.0.2.7", "alice");
	e.service = RG_SERVICE_IMAP;
	assert_int_equal(rg_grants_handle(gr, &e, 1 * SEC), RG_GRANTS_GRANTED);
	assert_int_equal(f.grant_calls, 1);
	assert_string_equal(rg_addr_str(&f.grant_src, a, sizeof(a)), "192.0.2.7");
	assert_int_equal(f.grant_ttl, 1800 * SEC);
	assert_string_equal(f.user, "alice");
	assert_int_equal(f.service, RG_SERVICE_IMAP);
	assert_int_equal(f.origin, RG_ORIGIN_LOG);
	assert_int_equal(rg_grants_handle(gr, &e, 2 * SEC), RG_GRANTS_EXTENDED);
	assert_int_equal(f.deny_calls, 0);

	/* A failed map write is an error with the map's reason, counted. */
	f.grant_err = -E2BIG;
	assert_int_equal(rg_grants_handle(gr, &e, 3 * SEC), RG_GRANTS_ERROR);
	assert_string_equal(rg_grants_error(gr),
			    "grant 192.0.2.7: grant map full (max 64): raise [grants] max");

	/* Events without an address or with an unknown kind are ignored. */
	e.addr.family = 0;
	assert_int_equal(rg_grants_handle(gr, &e, 4 * SEC), RG_GRANTS_IGNORED);
	e = ev(RG_EV_LOGIN, "192.0.2.7", "alice");
	e.kind = 9;
	assert_int_equal(rg_grants_handle(gr, &e, 4 * SEC), RG_GRANTS_IGNORED);

	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.grants_issued, 1);
	assert_int_equal(s.grants_extended, 1);
	assert_int_equal(s.errors, 1);
	assert_int_equal(s.ignored, 2);
	rg_grants_free(gr);
}

static void test_failure_window(void **state)
{
	struct rg_auth_event e = ev(RG_EV_FAILURE, "203.0.113.5", "root");
	struct rg_grants_stats s;
	struct rg_grants *gr;
	struct fake f;
	char a[RG_ADDRSTRLEN];

	(void)state;
	/* 3 failures within 10 s deny. */
	gr = mk(&f, 3, 10, NULL, 0, 0);
	assert_int_equal(rg_grants_handle(gr, &e, 100 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 101 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 101 * SEC), 2);
	assert_int_equal(rg_grants_handle(gr, &e, 102 * SEC), RG_GRANTS_DENIED);
	assert_int_equal(f.deny_calls, 1);
	assert_string_equal(rg_addr_str(&f.deny_src, a, sizeof(a)), "203.0.113.5");
	assert_int_equal(f.deny_ttl, 3600 * SEC);
	assert_int_equal(f.deny_failures, 3);
	/* The count starts over after a deny. */
	assert_int_equal(rg_grants_failures(gr, &e.addr, 102 * SEC), 0);
	assert_int_equal(rg_grants_handle(gr, &e, 103 * SEC), RG_GRANTS_COUNTED);

	/* Sliding: at 0, 5, 11 the first has left the window (10 s). */
	e = ev(RG_EV_FAILURE, "203.0.113.6", "x");
	assert_int_equal(rg_grants_handle(gr, &e, 200 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 205 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 211 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 211 * SEC), 2);
	/* ... and 5, 11, 12 are within 10 s: deny. */
	assert_int_equal(rg_grants_handle(gr, &e, 212 * SEC), RG_GRANTS_DENIED);
	/* Exactly `within` apart is outside the window. */
	e = ev(RG_EV_FAILURE, "203.0.113.7", "x");
	assert_int_equal(rg_grants_handle(gr, &e, 300 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 301 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 310 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 310 * SEC + 1), RG_GRANTS_DENIED);

	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.denies_issued, 3);
	assert_int_equal(s.failures, 12);
	assert_int_equal(s.tracked, 1);      /* 203.0.113.5 after its deny */
	rg_grants_free(gr);
}

static void test_login_does_not_reset(void **state)
{
	struct rg_auth_event bad = ev(RG_EV_FAILURE, "198.51.100.9", "bob");
	struct rg_auth_event good = ev(RG_EV_LOGIN, "198.51.100.9", "alice");
	struct rg_grants *gr;
	struct fake f;

	(void)state;
	gr = mk(&f, 3, 600, NULL, 0, 0);
	assert_int_equal(rg_grants_handle(gr, &bad, 1 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &bad, 2 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &good, 3 * SEC), RG_GRANTS_GRANTED);
	assert_int_equal(rg_grants_failures(gr, &bad.addr, 3 * SEC), 2);
	assert_int_equal(rg_grants_handle(gr, &bad, 4 * SEC), RG_GRANTS_DENIED);
	/* A login after the deny grants (the data plane still drops: deny
	 * comes first) and asks nothing of the deny map. */
	assert_int_equal(rg_grants_handle(gr, &good, 5 * SEC), RG_GRANTS_EXTENDED);
	assert_int_equal(f.deny_calls, 1);
	rg_grants_free(gr);
}

static void test_masking(void **state)
{
	struct rg_grants *gr;
	struct rg_auth_event e;
	struct fake f;

	(void)state;
	gr = mk(&f, 3, 60, NULL, 0, 0);
	/* IPv6: one /64 counts together (privacy addresses of one host). */
	e = ev(RG_EV_FAILURE, "2001:db8:1:2::1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 1 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 2 * SEC), RG_GRANTS_COUNTED);
	/* Another /64 is another source. */
	e = ev(RG_EV_FAILURE, "2001:db8:1:3::1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 3 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "2001:db8:1:2::ffff", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 4 * SEC), RG_GRANTS_DENIED);
	/* IPv4: /32, and a mapped address is the same source. */
	e = ev(RG_EV_FAILURE, "192.0.2.1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 5 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "192.0.2.2", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 6 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "::ffff:192.0.2.1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 7 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 7 * SEC), 2);
	rg_grants_free(gr);
}

static void test_trusted(void **state)
{
	struct rg_cidr t[2];
	struct rg_grants_stats s;
	struct rg_auth_event e;
	struct rg_grants *gr;
	const char *why;
	struct fake f;

	(void)state;
	assert_int_equal(rg_cidr_parse("192.0.2.0/24", &t[0].addr, &t[0].prefixlen, &why), 0);
	/* One trusted host inside an IPv6 /64 that is about to be denied. */
	assert_int_equal(rg_cidr_parse("2001:db8:5:5::42/128", &t[1].addr, &t[1].prefixlen, &why), 0);
	gr = mk(&f, 2, 60, t, 2, 0);

	e = ev(RG_EV_FAILURE, "192.0.2.200", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 1 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 2 * SEC), RG_GRANTS_TRUSTED);
	e = ev(RG_EV_FAILURE, "2001:db8:5:5::1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 3 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 4 * SEC), RG_GRANTS_TRUSTED);
	assert_int_equal(f.deny_calls, 0);
	/* Not trusted: denied (and the map side was asked first). */
	e = ev(RG_EV_FAILURE, "192.0.3.1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 5 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 6 * SEC), RG_GRANTS_DENIED);
	assert_int_equal(f.trusted_calls, 1);
	assert_int_equal(f.trusted_plen, 32);

	/* The map side says trusted. */
	f.trusted_ret = 1;
	e = ev(RG_EV_FAILURE, "198.51.100.1", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 7 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 8 * SEC), RG_GRANTS_TRUSTED);
	/* The map side cannot tell: nothing denied, an error. */
	f.trusted_ret = -EIO;
	assert_int_equal(rg_grants_handle(gr, &e, 9 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 10 * SEC), RG_GRANTS_ERROR);
	assert_int_equal(f.deny_calls, 1);

	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.denies_trusted, 3);
	assert_int_equal(s.denies_issued, 1);
	rg_grants_free(gr);
}

/* The question the cluster asks before a deny from another host. */
static void test_overlaps_trusted(void **state)
{
	struct rg_addr net;
	struct rg_cidr t;
	struct rg_grants *gr;
	const char *why;
	struct fake f;

	(void)state;
	assert_int_equal(rg_cidr_parse("192.0.2.0/24", &t.addr, &t.prefixlen, &why), 0);
	gr = mk(&f, 2, 60, &t, 1, 0);
	/* In the configured list: the map side is not asked. */
	assert_int_equal(rg_addr_parse("192.0.2.9", &net, &why), 0);
	assert_int_equal(rg_grants_overlaps_trusted(gr, &net, 32), 1);
	assert_int_equal(f.trusted_calls, 0);
	/* A /16 covering the list overlaps it too. */
	assert_int_equal(rg_addr_parse("192.0.0.0", &net, &why), 0);
	assert_int_equal(rg_grants_overlaps_trusted(gr, &net, 16), 1);
	/* Elsewhere: the map side decides, its answer and its error passed on. */
	assert_int_equal(rg_addr_parse("198.51.100.1", &net, &why), 0);
	assert_int_equal(rg_grants_overlaps_trusted(gr, &net, 32), 0);
	assert_int_equal(f.trusted_calls, 1);
	assert_int_equal(f.trusted_plen, 32);
	f.trusted_ret = 1;
	assert_int_equal(rg_grants_overlaps_trusted(gr, &net, 32), 1);
	f.trusted_ret = -EIO;
	assert_int_equal(rg_grants_overlaps_trusted(gr, &net, 32), -EIO);
	/* Nothing was denied or counted by asking. */
	assert_int_equal(f.deny_calls, 0);
	rg_grants_free(gr);
}

static void test_deny_retry(void **state)
{
	struct rg_auth_event e = ev(RG_EV_FAILURE, "203.0.113.50", "u");
	struct rg_grants *gr;
	struct fake f;

	(void)state;
	gr = mk(&f, 2, 60, NULL, 0, 0);
	f.deny_err = -E2BIG;
	assert_int_equal(rg_grants_handle(gr, &e, 1 * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, 2 * SEC), RG_GRANTS_ERROR);
	assert_string_equal(rg_grants_error(gr), "deny 203.0.113.50/32: deny map full");
	/* The next failure tries again. */
	f.deny_err = 0;
	assert_int_equal(rg_grants_handle(gr, &e, 3 * SEC), RG_GRANTS_DENIED);
	assert_int_equal(f.deny_calls, 2);
	rg_grants_free(gr);
}

static void test_bounded(void **state)
{
	struct rg_grants_stats s;
	struct rg_auth_event e;
	struct rg_grants *gr;
	struct fake f;
	char a[32];

	(void)state;
	gr = mk(&f, 3, 60, NULL, 0, 4);
	for (int i = 1; i <= 6; i++) {
		snprintf(a, sizeof(a), "203.0.113.%d", i);
		e = ev(RG_EV_FAILURE, a, "u");
		assert_int_equal(rg_grants_handle(gr, &e, (uint64_t)i * SEC), RG_GRANTS_COUNTED);
	}
	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.tracked, 4);
	assert_int_equal(s.evicted, 2);
	/* The oldest two were forgotten, the newest kept. */
	e = ev(RG_EV_FAILURE, "203.0.113.1", "u");
	assert_int_equal(rg_grants_failures(gr, &e.addr, 7 * SEC), 0);
	e = ev(RG_EV_FAILURE, "203.0.113.6", "u");
	assert_int_equal(rg_grants_failures(gr, &e.addr, 7 * SEC), 1);
	/* A source that fails again is the most recent: 203.0.113.3 survives
	 * the next eviction, 203.0.113.4 does not. */
	e = ev(RG_EV_FAILURE, "203.0.113.3", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 8 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "203.0.113.7", "u");
	assert_int_equal(rg_grants_handle(gr, &e, 9 * SEC), RG_GRANTS_COUNTED);
	e = ev(RG_EV_FAILURE, "203.0.113.3", "u");
	assert_int_equal(rg_grants_failures(gr, &e.addr, 9 * SEC), 2);
	e = ev(RG_EV_FAILURE, "203.0.113.4", "u");
	assert_int_equal(rg_grants_failures(gr, &e.addr, 9 * SEC), 0);

	/* Sweep forgets records whose window passed. */
	assert_int_equal(rg_grants_sweep(gr, 67 * SEC), 2);   /* .5 (5 s), .6 (6 s); .3 keeps 8 s */
	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.tracked, 2);
	assert_int_equal(rg_grants_sweep(gr, 1000 * SEC), 2);
	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.tracked, 0);
	rg_grants_free(gr);

	/* A flood of distinct IPv6 sources stays within the cap. */
	gr = mk(&f, 5, 60, NULL, 0, 1000);
	for (int i = 0; i < 20000; i++) {
		struct rg_auth_event x = { .kind = RG_EV_FAILURE, .source = "flood" };

		x.addr.family = RG_AF_INET6;
		x.addr.addr[0] = 0x20;
		x.addr.addr[1] = 0x01;
		x.addr.addr[4] = (uint8_t)(i >> 8);
		x.addr.addr[5] = (uint8_t)i;
		x.addr.addr[6] = (uint8_t)(i >> 16);
		rg_grants_handle(gr, &x, SEC + (uint64_t)i);
	}
	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.tracked, 1000);
	assert_int_equal(s.evicted, 19000);
	assert_int_equal(f.deny_calls, 0);
	rg_grants_free(gr);
}

static void test_no_deny(void **state)
{
	struct rg_auth_event e = ev(RG_EV_FAILURE, "203.0.113.1", "u");
	struct rg_grants_stats s;
	struct rg_grants *gr;
	struct fake f;

	(void)state;
	gr = mk(&f, 0, 0, NULL, 0, 0);
	for (int i = 0; i < 50; i++)
		assert_int_equal(rg_grants_handle(gr, &e, (uint64_t)i * SEC), RG_GRANTS_COUNTED);
	assert_int_equal(f.deny_calls, 0);
	rg_grants_get_stats(gr, &s);
	assert_int_equal(s.failures, 50);
	assert_int_equal(s.tracked, 0);
	rg_grants_free(gr);
}

static void test_conf(void **state)
{
	struct rg_grants_conf c = { .ttl_ns = 0 };
	struct rg_grants *gr = NULL;
	struct rg_auth_event e;
	struct fake f;
	char err[256];

	(void)state;
	assert_int_equal(rg_grants_new_ops(&gr, &fake_ops, &f, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "grants: ttl must be more than 0");
	assert_null(gr);
	c.ttl_ns = SEC;
	c.after_failures = 101;
	c.within_ns = c.deny_ttl_ns = SEC;
	assert_int_equal(rg_grants_new_ops(&gr, &fake_ops, &f, &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "deny: after_failures 101: at most 100");
	c.after_failures = 3;
	c.within_ns = 0;
	assert_int_equal(rg_grants_new_ops(&gr, &fake_ops, &f, &c, err, sizeof(err)), -EINVAL);

	/* Reconfigure: a bad config keeps the old one; a new ttl applies; a
	 * new window drops the counts. */
	gr = mk(&f, 3, 60, NULL, 0, 0);
	e = ev(RG_EV_FAILURE, "203.0.113.1", "u");
	rg_grants_handle(gr, &e, 1 * SEC);
	c = (struct rg_grants_conf){ .ttl_ns = 0 };
	assert_int_equal(rg_grants_reconfigure(gr, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 2 * SEC), 1);
	c = (struct rg_grants_conf){ .ttl_ns = 60 * SEC, .after_failures = 3,
				     .within_ns = 60 * SEC, .deny_ttl_ns = 7 * SEC };
	assert_int_equal(rg_grants_reconfigure(gr, &c, err, sizeof(err)), 0);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 2 * SEC), 1);   /* same window: kept */
	rg_grants_handle(gr, &e, 3 * SEC);
	assert_int_equal(rg_grants_handle(gr, &e, 4 * SEC), RG_GRANTS_DENIED);
	assert_int_equal(f.deny_ttl, 7 * SEC);
	e = ev(RG_EV_LOGIN, "203.0.113.1", "u");
	rg_grants_handle(gr, &e, 5 * SEC);
	assert_int_equal(f.grant_ttl, 60 * SEC);
	e = ev(RG_EV_FAILURE, "203.0.113.2", "u");
	rg_grants_handle(gr, &e, 6 * SEC);
	c.after_failures = 5;
	assert_int_equal(rg_grants_reconfigure(gr, &c, err, sizeof(err)), 0);
	assert_int_equal(rg_grants_failures(gr, &e.addr, 7 * SEC), 0);   /* dropped */
	rg_grants_free(gr);
}

static void test_metrics(void **state)
{
	struct rg_auth_event e;
	struct rg_grants *gr;
	struct rg_mbuf b;
	struct fake f;

	(void)state;
	gr = mk(&f, 2, 60, NULL, 0, 0);
	e = ev(RG_EV_LOGIN, "192.0.2.1", "a");
	rg_grants_handle(gr, &e, 1 * SEC);
	e.source = "push \"x\"";
	rg_grants_handle(gr, &e, 2 * SEC);
	e = ev(RG_EV_FAILURE, "192.0.2.2", "a");
	rg_grants_handle(gr, &e, 3 * SEC);
	rg_grants_handle(gr, &e, 4 * SEC);

	rg_mbuf_init(&b);
	rg_grants_metrics(gr, &b);
	assert_false(b.oom);
	assert_non_null(strstr(b.buf, "# HELP relaygate_grants_issued_total "));
	assert_non_null(strstr(b.buf, "# TYPE relaygate_grants_issued_total counter\n"
				      "relaygate_grants_issued_total 1\n"));
	assert_non_null(strstr(b.buf, "relaygate_grants_extended_total 1\n"));
	assert_non_null(strstr(b.buf, "relaygate_denies_issued_total 1\n"));
	assert_non_null(strstr(b.buf, "# TYPE relaygate_events_total counter\n"
				      "relaygate_events_total{source=\"dovecot\",kind=\"login\"} 1\n"
				      "relaygate_events_total{source=\"dovecot\",kind=\"failure\"} 2\n"
				      "relaygate_events_total{source=\"push \\\"x\\\"\",kind=\"login\"} 1\n"));
	rg_mbuf_free(&b);
	rg_grants_free(gr);
}

/* ----------------------------------------------------------- real maps */

static char pin_dir[64];

static int count_deny(const struct rg_addr *k, const struct rg_deny *v, void *ctx)
{
	(void)k;
	(void)v;
	(*(int *)ctx)++;
	return 0;
}

/* rg_grants_handle with its info log (stderr) caught in buf, and shown still. */
static enum rg_grants_result handle_logged(struct rg_grants *gr, const struct rg_auth_event *e,
					   char *buf, size_t len)
{
	enum rg_grants_result r;
	FILE *f = tmpfile();
	int saved;
	size_t n;

	assert_non_null(f);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fileno(f), STDERR_FILENO) >= 0);
	rg_log_init("test_grants", false, RG_LOG_INFO);
	r = rg_grants_handle(gr, e, rg_now_ns());
	rg_log_init("test_grants", false, RG_LOG_WARN);
	fflush(stderr);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	rewind(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	fputs(buf, stderr);
	return r;
}

static void test_real_maps(void **state)
{
	struct rg_grants_conf c = {
		.ttl_ns = 1800 * SEC, .after_failures = 3, .within_ns = 60 * SEC,
		.deny_ttl_ns = 3600 * SEC,
	};
	struct rg_auth_event e;
	struct rg_grants *gr;
	struct rg_grant gv;
	struct rg_cidr t[2];
	struct rg_gate g;
	const char *why;
	char err[256], log[1024];
	uint64_t now, exp1;
	int ndeny = 0, r;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/rgtest-%d-grants", (int)getpid());
	QUIET(r = rg_gate_create(pin_dir, NULL, err, sizeof(err)));
	if (r)
		fail_msg("rg_gate_create: %s", err);
	assert_int_equal(rg_gate_open(&g, pin_dir), 0);
	assert_int_equal(rg_grants_new(&gr, &g, &c, err, sizeof(err)), 0);

	/* A login grants, with user and service. */
	e = ev(RG_EV_LOGIN, "192.0.2.7", "alice@example.org");
	now = rg_now_ns();
	assert_int_equal(rg_grants_handle(gr, &e, now), RG_GRANTS_GRANTED);
	assert_int_equal(rg_grant_get(&g, &e.addr, &gv), 0);
	assert_string_equal(gv.user, "alice@example.org");
	assert_int_equal(gv.service, RG_SERVICE_POP3);
	assert_int_equal(gv.origin, RG_ORIGIN_LOG);
	assert_true(gv.expires >= now + 1800 * SEC && gv.expires < now + 1805 * SEC);
	exp1 = gv.expires;
	/* A repeated login under a shorter ttl extends nothing back, and the
	 * log says the expiry was kept, not "extended". */
	c.ttl_ns = 60 * SEC;
	assert_int_equal(rg_grants_reconfigure(gr, &c, err, sizeof(err)), 0);
	assert_int_equal(handle_logged(gr, &e, log, sizeof(log)), RG_GRANTS_EXTENDED);
	assert_int_equal(rg_grant_get(&g, &e.addr, &gv), 0);
	assert_true(gv.expires == exp1);
	if (!strstr(log, "grant 192.0.2.7 user=alice@example.org service=pop3 source=dovecot "
			 "ttl=1m (kept: expires in ") || strstr(log, "(extended)"))
		fail_msg("log of a login that kept the expiry: '%s'", log);
	/* A longer ttl moves it: "extended". */
	c.ttl_ns = 7200 * SEC;
	assert_int_equal(rg_grants_reconfigure(gr, &c, err, sizeof(err)), 0);
	assert_int_equal(handle_logged(gr, &e, log, sizeof(log)), RG_GRANTS_EXTENDED);
	assert_int_equal(rg_grant_get(&g, &e.addr, &gv), 0);
	assert_true(gv.expires > exp1);
	if (!strstr(log, "grant 192.0.2.7 user=alice@example.org service=pop3 source=dovecot "
			 "ttl=2h (extended)\n") || strstr(log, "kept"))
		fail_msg("log of a login that extended the expiry: '%s'", log);

	/* Failures deny... */
	e = ev(RG_EV_FAILURE, "203.0.113.66", "root");
	for (int i = 0; i < 2; i++)
		assert_int_equal(rg_grants_handle(gr, &e, rg_now_ns()), RG_GRANTS_COUNTED);
	assert_int_equal(rg_grants_handle(gr, &e, rg_now_ns()), RG_GRANTS_DENIED);
	QUIET(r = rg_deny_foreach(&g, count_deny, &ndeny));
	assert_int_equal(r, 0);
	assert_int_equal(ndeny, 1);

	/* ... but not a source in the trust maps: an IPv4 subnet, and one
	 * trusted IPv6 host inside the /64 a deny would cover. */
	assert_int_equal(rg_cidr_parse("198.51.100.0/24", &t[0].addr, &t[0].prefixlen, &why), 0);
	assert_int_equal(rg_cidr_parse("2001:db8:9:9::42/128", &t[1].addr, &t[1].prefixlen, &why), 0);
	assert_int_equal(rg_trust_add(&g, t, 2), 0);
	e = ev(RG_EV_FAILURE, "198.51.100.23", "root");
	for (int i = 0; i < 2; i++)
		rg_grants_handle(gr, &e, rg_now_ns());
	assert_int_equal(rg_grants_handle(gr, &e, rg_now_ns()), RG_GRANTS_TRUSTED);
	e = ev(RG_EV_FAILURE, "2001:db8:9:9::1", "root");
	for (int i = 0; i < 2; i++)
		rg_grants_handle(gr, &e, rg_now_ns());
	/* The /64 deny would cover a trusted /128: found by walking rg_trust6. */
	QUIET(r = rg_grants_handle(gr, &e, rg_now_ns()));
	assert_int_equal(r, RG_GRANTS_TRUSTED);
	/* Another /64 of the same /48 is not covered. */
	e = ev(RG_EV_FAILURE, "2001:db8:9:8::1", "root");
	for (int i = 0; i < 2; i++)
		rg_grants_handle(gr, &e, rg_now_ns());
	QUIET(r = rg_grants_handle(gr, &e, rg_now_ns()));
	assert_int_equal(r, RG_GRANTS_DENIED);
	ndeny = 0;
	QUIET(r = rg_deny_foreach(&g, count_deny, &ndeny));
	assert_int_equal(r, 0);
	assert_int_equal(ndeny, 2);

	/* A login does not lift a deny. */
	e = ev(RG_EV_LOGIN, "203.0.113.66", "root");
	assert_int_equal(rg_grants_handle(gr, &e, rg_now_ns()), RG_GRANTS_GRANTED);
	ndeny = 0;
	QUIET(r = rg_deny_foreach(&g, count_deny, &ndeny));
	assert_int_equal(r, 0);
	assert_int_equal(ndeny, 2);

	/* The gate's metrics read the same maps. */
	{
		struct rg_mbuf b;

		rg_mbuf_init(&b);
		QUIET(r = rg_metrics_render_gate(&b, &g));
		assert_int_equal(r, 0);
		assert_non_null(strstr(b.buf, "relaygate_map_entries{map=\"grants\"} 2\n"));
		assert_non_null(strstr(b.buf, "relaygate_map_entries{map=\"deny\"} 2\n"));
		assert_non_null(strstr(b.buf, "relaygate_map_entries{map=\"trust4\"} 1\n"));
		assert_non_null(strstr(b.buf, "relaygate_map_max_entries{map=\"grants\"} 262144\n"));
		assert_non_null(strstr(b.buf, "# TYPE relaygate_packets_total counter\n"
					      "relaygate_packets_total{reason=\"pass_iface\"} 0\n"));
		assert_non_null(strstr(b.buf, "relaygate_bytes_total{reason=\"drop_unauth\"} 0\n"));
		assert_non_null(strstr(b.buf, "relaygate_rst_sent_total 0\n"));
		assert_null(strstr(b.buf, "reason=\"rst_sent\""));
		rg_mbuf_free(&b);
	}

	rg_grants_free(gr);
	rg_gate_close(&g);
	QUIET(r = rg_gate_purge(pin_dir, err, sizeof(err)));
	assert_int_equal(r, 0);
	pin_dir[0] = '\0';
}

static int teardown_pins(void **state)
{
	char err[256];

	(void)state;
	if (pin_dir[0])
		QUIET(rg_gate_purge(pin_dir, err, sizeof(err)));
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_failure_window),
		cmocka_unit_test(test_login_does_not_reset),
		cmocka_unit_test(test_masking),
		cmocka_unit_test(test_trusted),
		cmocka_unit_test(test_overlaps_trusted),
		cmocka_unit_test(test_deny_retry),
		cmocka_unit_test(test_bounded),
		cmocka_unit_test(test_no_deny),
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test_teardown(test_real_maps, teardown_pins),
	};

	rg_log_init("test_grants", false, RG_LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
