// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The userspace gate API against real pinned maps (root): created under a
 * unique pin dir with rg_gate_create (no interface needed), removed again
 * with rg_gate_purge. Covers the rules both relaygatectl and relaygated
 * rely on: key masking, extend-never-shorten, all-or-nothing edits with
 * rollback, ports replaced without a gap, the ABI guard and purge.
 * Without root every test is skipped (a failure under CI=true).
 *
 * Under valgrind: libbpf 1.1 zeroes a bpf() attr only up to the fields a
 * command uses and passes NULL keys legitimately, which valgrind 3.19's
 * bpf() syscall checks report as errors (false positives inside libbpf).
 * Error reporting is therefore paused while a map test runs; leaks are
 * still checked at exit, and the ASan build checks these tests fully.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <cmocka.h>
#include <valgrind/valgrind.h>
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"
#include "gatefix.h"


static struct rg_cidr cidr(const char *s)
{
	struct rg_cidr c;
	const char *why = NULL;

	if (rg_cidr_parse(s, &c.addr, &c.prefixlen, &why))
		fail_msg("test bug: '%s': %s", s, why);
	return c;
}

/* Each test gets a fresh set of maps. */
static int setup(void **state)
{
	return gatefix_setup(state, 1024);
}

#define teardown gatefix_teardown

/* ------------------------------------------------------------- create */

static void test_create_defaults(void **state)
{
	struct rg_gate *g;
	uint16_t ports[8];
	struct rg_config c;
	struct stat st;
	char path[256];

	NEED_ROOT();
	g = *state;
	assert_int_equal(rg_config_read(g, &c), 0);
	assert_int_equal(c.abi_version, RG_ABI_VERSION);
	assert_int_equal(c.v4_prefix, 32);
	assert_int_equal(c.v6_prefix, 64);
	assert_int_equal(c.flags, 0);
	assert_int_equal(rg_ports_list(g, ports, 8), 2);
	assert_int_equal(ports[0], 465);
	assert_int_equal(ports[1], 587);
	/* [grants] max sizes the grant map; the others keep their defaults. */
	assert_int_equal(rg_map_max_entries(g->grants_fd), 1024);
	assert_int_equal(rg_map_max_entries(g->deny_fd), RG_DENY_MAX_DEFAULT);
	assert_int_equal(rg_map_count(g->grants_fd), 0);
	/* Every map is pinned by its name. */
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RG_MAP_EVBUCKET);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RG_MAP_GRANTS);
	assert_int_equal(stat(path, &st), 0);
}

static void test_create_reuses(void **state)
{
	struct rg_load_opts o = { .grants_max = 4096, .v4_prefix = 24, .reject_rst = true };
	static const uint16_t p2[] = { 2525 };
	struct rg_gate *g = *state, g2;
	uint16_t ports[8];
	char err[512];

	NEED_ROOT();
	assert_int_equal(rg_grant_put(g, &(struct rg_addr){ 0 }, SEC_NS, "x", RG_ORIGIN_CLI, 0, NULL),
			 -EINVAL);
	{
		struct rg_addr a = addr("192.0.2.1");

		assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "alice", RG_ORIGIN_CLI,
					      RG_SERVICE_POP3, NULL), 0);
	}
	/* A second create keeps the maps, their contents, sizes and config... */
	assert_int_equal(rg_gate_create(pin_dir, &o, err, sizeof(err)), 0);
	assert_int_equal(rg_gate_open(&g2, pin_dir), 0);
	assert_int_equal(rg_map_count(g2.grants_fd), 1);
	assert_int_equal(rg_map_max_entries(g2.grants_fd), 1024);
	assert_int_equal(g2.cfg.v4_prefix, 32);
	assert_int_equal(g2.cfg.flags, 0);
	rg_gate_close(&g2);
	/* ...but applies ports when they are given. */
	o.ports = p2;
	o.nports = 1;
	assert_int_equal(rg_gate_create(pin_dir, &o, err, sizeof(err)), 0);
	assert_int_equal(rg_ports_list(g, ports, 8), 1);
	assert_int_equal(ports[0], 2525);
}

static void test_open_missing(void **state)
{
	struct rg_gate g;

	(void)state;
	NEED_ROOT();
	VALGRIND_DISABLE_ERROR_REPORTING;
	assert_int_equal(rg_gate_open(&g, "/sys/fs/bpf/rgtest-nonexistent-dir"), -ENOENT);
	assert_non_null(strstr(g.err, "attach"));
	/* Closing a failed gate is harmless. */
	rg_gate_close(&g);
	VALGRIND_ENABLE_ERROR_REPORTING;
}

static void test_abi_guard_and_purge(void **state)
{
	struct rg_gate *g = *state, g2;
	struct rg_config c;
	char err[512];
	__u32 zero = 0;
	struct stat st;

	NEED_ROOT();
	/* Maps from another ABI version are refused, with the fix. */
	c = g->cfg;
	c.abi_version = RG_ABI_VERSION + 98;
	assert_int_equal(bpf_map_update_elem(g->config_fd, &zero, &c, BPF_ANY), 0);
	assert_int_equal(rg_gate_open(&g2, pin_dir), -EPROTO);
	assert_non_null(strstr(g2.err, "purge"));
	assert_int_equal(rg_gate_create(pin_dir, NULL, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "purge"));
	/* An interrupted first attach (ABI 0) says to attach again; create repairs it. */
	c.abi_version = 0;
	assert_int_equal(bpf_map_update_elem(g->config_fd, &zero, &c, BPF_ANY), 0);
	assert_int_equal(rg_gate_open(&g2, pin_dir), -ENODATA);
	assert_non_null(strstr(g2.err, "attach"));
	assert_int_equal(rg_gate_create(pin_dir, NULL, err, sizeof(err)), 0);
	assert_int_equal(rg_gate_open(&g2, pin_dir), 0);
	assert_int_equal(g2.cfg.abi_version, RG_ABI_VERSION);
	rg_gate_close(&g2);
	/* Purge removes every pin and the dir; a second purge is a no-op. */
	assert_int_equal(rg_gate_purge(pin_dir, err, sizeof(err)), 0);
	assert_int_not_equal(stat(pin_dir, &st), 0);
	assert_int_equal(rg_gate_purge(pin_dir, err, sizeof(err)), 0);
	/* The open fds still work (the maps live until closed); recreate for teardown. */
	assert_int_equal(rg_gate_create(pin_dir, NULL, err, sizeof(err)), 0);
}

static void test_purge_refuses_when_attached(void **state)
{
	char path[256], err[512];
	struct stat st;

	(void)state;
	NEED_ROOT();
	/* An attachment pin (here a map stands in for a link) blocks purge. */
	snprintf(path, sizeof(path), "%s/link_rgtestif0", pin_dir);
	{
		struct rg_gate *g = *state;

		assert_int_equal(bpf_obj_pin(g->tiface_fd, path), 0);
	}
	assert_int_equal(rg_gate_purge(pin_dir, err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "detach rgtestif0"));
	/* Nothing was removed. */
	snprintf(path, sizeof(path), "%s/%s", pin_dir, RG_MAP_GRANTS);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/link_rgtestif0", pin_dir);
	assert_int_equal(unlink(path), 0);
}

/* ------------------------------------------------------------- grants */

static void test_grant_never_shortens(void **state)
{
	struct rg_gate *g = *state;
	struct rg_addr a;
	struct rg_grant v;
	uint64_t t0, first;
	bool created = false;

	NEED_ROOT();
	a = addr("192.0.2.10");
	t0 = rg_now_ns();
	assert_int_equal(rg_grant_put(g, &a, 100 * SEC_NS, "alice", RG_ORIGIN_LOG,
				      RG_SERVICE_POP3, &created), 0);
	assert_true(created);
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_true(v.expires >= t0 + 100 * SEC_NS && v.expires <= rg_now_ns() + 100 * SEC_NS);
	assert_string_equal(v.user, "alice");
	assert_int_equal(v.origin, RG_ORIGIN_LOG);
	assert_int_equal(v.service, RG_SERVICE_POP3);
	first = v.expires;

	/* A shorter TTL keeps the later expiry; the latest login's user wins. */
	assert_int_equal(rg_grant_put(g, &a, 10 * SEC_NS, "bob", RG_ORIGIN_CONTROL,
				      RG_SERVICE_IMAP, &created), 0);
	assert_false(created);
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_int_equal(v.expires, first);
	assert_string_equal(v.user, "bob");
	assert_int_equal(v.service, RG_SERVICE_IMAP);

	/* No user given: the old one stays. */
	assert_int_equal(rg_grant_put(g, &a, 10 * SEC_NS, NULL, RG_ORIGIN_CLI, 0, NULL), 0);
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_string_equal(v.user, "bob");

	/* A longer one extends. */
	assert_int_equal(rg_grant_put(g, &a, 1000 * SEC_NS, "bob", RG_ORIGIN_LOG, 0, NULL), 0);
	assert_int_equal(rg_grant_get(g, &a, &v), 0);
	assert_true(v.expires > first + 800 * SEC_NS);

	/* TTL 0 is refused. */
	assert_int_equal(rg_grant_put(g, &a, 0, "bob", RG_ORIGIN_LOG, 0, NULL), -EINVAL);
	assert_int_equal(rg_map_count(g->grants_fd), 1);
}

static void test_grant_put_abs(void **state)
{
	struct rg_gate *g = *state;
	struct rg_grant v, got;
	struct rg_addr a;
	uint64_t now = rg_now_ns();

	NEED_ROOT();
	a = addr("2001:db8:5::77");
	memset(&v, 0, sizeof(v));
	v.expires = now + 500 * SEC_NS;
	v.granted = now;
	v.origin = RG_ORIGIN_STATE;
	memset(v.user, 'u', sizeof(v.user));    /* unterminated: must be cut */
	assert_int_equal(rg_grant_put_abs(g, &a, &v), 0);
	assert_int_equal(rg_grant_get(g, &a, &got), 0);
	assert_int_equal(got.expires, v.expires);
	assert_int_equal(strlen(got.user), RG_USER_LEN - 1);
	v.expires = now + 5 * SEC_NS;
	assert_int_equal(rg_grant_put_abs(g, &a, &v), 0);
	assert_int_equal(rg_grant_get(g, &a, &got), 0);
	assert_int_equal(got.expires, now + 500 * SEC_NS);
}

static void test_grant_masking(void **state)
{
	struct rg_gate *g = *state;
	struct rg_addr a, b, c, m;
	struct rg_grant v;
	struct rg_config cfg;

	NEED_ROOT();
	/* IPv6 keys are /64: two privacy addresses of one host share a grant. */
	a = addr("2001:db8:1:2:aaaa::1");
	b = addr("2001:db8:1:2:bbbb::2");
	c = addr("2001:db8:1:3::1");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "carol", RG_ORIGIN_CLI, 0, NULL), 0);
	assert_int_equal(rg_grant_get(g, &b, &v), 0);
	assert_string_equal(v.user, "carol");
	assert_int_equal(rg_grant_get(g, &c, &v), -ENOENT);
	assert_non_null(strstr(g->err, "2001:db8:1:3::/64"));
	assert_int_equal(rg_map_count(g->grants_fd), 1);
	/* The stored key is the masked one, as the BPF side looks it up. */
	m = addr("2001:db8:1:2::");
	assert_int_equal(bpf_map_lookup_elem(g->grants_fd, &m, &v), 0);

	/* IPv4-mapped sources are their IPv4 address. */
	a = addr("::ffff:198.51.100.9");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "dave", RG_ORIGIN_CLI, 0, NULL), 0);
	b = addr("198.51.100.9");
	assert_int_equal(rg_grant_get(g, &b, &v), 0);
	assert_string_equal(v.user, "dave");

	/* With ipv4_prefix 24, a grant covers the /24. */
	cfg = g->cfg;
	cfg.v4_prefix = 24;
	assert_int_equal(rg_config_write(g, &cfg), 0);
	a = addr("203.0.113.200");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "erin", RG_ORIGIN_CLI, 0, NULL), 0);
	b = addr("203.0.113.1");
	assert_int_equal(rg_grant_get(g, &b, &v), 0);
	m = addr("203.0.113.0");
	assert_int_equal(bpf_map_lookup_elem(g->grants_fd, &m, &v), 0);
	assert_int_equal(rg_grant_del(g, &b), 0);
	assert_int_equal(rg_grant_del(g, &b), -ENOENT);
	/* A bad config is refused and changes nothing. */
	cfg.v4_prefix = 33;
	assert_int_equal(rg_config_write(g, &cfg), -EINVAL);
	assert_int_equal(g->cfg.v4_prefix, 24);
}

static int count_cb(const struct rg_addr *k, const struct rg_grant *v, void *ctx)
{
	(void)k;
	if (!strcmp(v->user, "alice"))
		(*(int *)ctx)++;
	return 0;
}

static void test_grant_del_user(void **state)
{
	static const char *const alice[] = { "192.0.2.1", "192.0.2.2", "2001:db8::1" };
	struct rg_gate *g = *state;
	char longname[100];
	struct rg_addr a;
	unsigned count = 99;
	size_t i;
	int n = 0;

	NEED_ROOT();
	for (i = 0; i < 3; i++) {
		a = addr(alice[i]);
		assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "alice", RG_ORIGIN_LOG, 0, NULL), 0);
	}
	a = addr("192.0.2.3");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "alice2", RG_ORIGIN_LOG, 0, NULL), 0);
	a = addr("192.0.2.4");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, "bob", RG_ORIGIN_LOG, 0, NULL), 0);
	assert_int_equal(rg_grant_foreach(g, count_cb, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(rg_grant_del_user(g, "alice", &count), 0);
	assert_int_equal(count, 3);
	assert_int_equal(rg_map_count(g->grants_fd), 2);     /* alice2 and bob stay */
	assert_int_equal(rg_grant_del_user(g, "alice", &count), 0);
	assert_int_equal(count, 0);

	/* Long names are kept truncated and matched truncated. */
	memset(longname, 'z', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	a = addr("192.0.2.5");
	assert_int_equal(rg_grant_put(g, &a, 60 * SEC_NS, longname, RG_ORIGIN_LOG, 0, NULL), 0);
	assert_int_equal(rg_grant_del_user(g, longname, &count), 0);
	assert_int_equal(count, 1);
}

static void test_sweep(void **state)
{
	struct rg_gate *g = *state;
	struct rg_addr a, b;

	NEED_ROOT();
	a = addr("192.0.2.20");
	b = addr("192.0.2.21");
	assert_int_equal(rg_grant_put(g, &a, 1, "short", RG_ORIGIN_LOG, 0, NULL), 0);
	assert_int_equal(rg_grant_put(g, &b, 600 * SEC_NS, "long", RG_ORIGIN_LOG, 0, NULL), 0);
	assert_int_equal(rg_deny_put(g, &a, 1, RG_ORIGIN_LOG, 10), 0);
	assert_int_equal(rg_deny_put(g, &b, 600 * SEC_NS, RG_ORIGIN_LOG, 10), 0);
	assert_int_equal(rg_sweep(g, rg_now_ns() + 1000), 2);
	assert_int_equal(rg_map_count(g->grants_fd), 1);
	assert_int_equal(rg_map_count(g->deny_fd), 1);
	assert_int_equal(rg_sweep(g, rg_now_ns()), 0);
	assert_int_equal(rg_sweep(g, rg_now_ns() + 601 * SEC_NS), 2);
	assert_int_equal(rg_map_count(g->grants_fd), 0);
}

/* -------------------------------------------------------------- denies */

static int deny_cb(const struct rg_addr *k, const struct rg_deny *v, void *ctx)
{
	struct rg_deny *out = ctx;

	(void)k;
	*out = *v;
	return 1;
}

static void test_deny(void **state)
{
	struct rg_gate *g = *state;
	struct rg_deny v;
	struct rg_addr a;
	uint64_t first;

	NEED_ROOT();
	a = addr("203.0.113.66");
	assert_int_equal(rg_deny_put(g, &a, 3600 * SEC_NS, RG_ORIGIN_LOG, 12), 0);
	assert_int_equal(rg_deny_foreach(g, deny_cb, &v), 0);
	assert_int_equal(v.failures, 12);
	assert_int_equal(v.origin, RG_ORIGIN_LOG);
	first = v.expires;
	/* Never shortened; a manual re-deny keeps the failure count. */
	assert_int_equal(rg_deny_put(g, &a, 60 * SEC_NS, RG_ORIGIN_CLI, 0), 0);
	assert_int_equal(rg_deny_foreach(g, deny_cb, &v), 0);
	assert_int_equal(v.expires, first);
	assert_int_equal(v.failures, 12);
	assert_int_equal(rg_deny_put(g, &a, 0, RG_ORIGIN_CLI, 0), -EINVAL);
	assert_int_equal(rg_deny_del(g, &a), 0);
	assert_int_equal(rg_deny_del(g, &a), -ENOENT);
	assert_non_null(strstr(g->err, "203.0.113.66"));
}

/* ------------------------------------------------------ trusted subnets */

struct collected {
	char text[16][RG_ADDRSTRLEN];
	int n;
};

static int trust_cb(const struct rg_cidr *c, void *ctx)
{
	struct collected *l = ctx;

	if (l->n < 16)
		rg_cidr_str(&c->addr, c->prefixlen, l->text[l->n++], RG_ADDRSTRLEN);
	return 0;
}

static bool has(const struct collected *l, const char *s)
{
	int i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->text[i], s))
			return true;
	return false;
}

static void test_trust_all_or_nothing(void **state)
{
	struct rg_gate *g = *state;
	struct rg_cidr c[4];
	struct collected l;

	NEED_ROOT();
	c[0] = cidr("10.0.0.0/8");
	c[1] = cidr("2001:db8::/32");
	c[2] = cidr("192.0.2.0/24");
	c[2].prefixlen = 33;            /* invalid: nothing may be added */
	assert_int_equal(rg_trust_add(g, c, 3), -EINVAL);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 0);

	c[2] = cidr("10.0.0.0/8");      /* listed twice: fine */
	assert_int_equal(rg_trust_add(g, c, 3), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_true(has(&l, "10.0.0.0/8") && has(&l, "2001:db8::/32"));
	/* Adding what is there already is not an error. */
	assert_int_equal(rg_trust_add(g, c, 1), 0);

	/* del: a subnet that is not trusted fails the lot. A covering
	 * prefix (10.0.0.0/8 covers 10.1.0.0/16) is not the same entry. */
	c[2] = cidr("10.1.0.0/16");
	assert_int_equal(rg_trust_del(g, c, 3), -ENOENT);
	assert_non_null(strstr(g->err, "10.1.0.0/16"));
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 2);
	assert_int_equal(rg_trust_del(g, c, 1), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_true(has(&l, "2001:db8::/32"));
}

static void test_trust_edges(void **state)
{
	struct rg_gate *g = *state;
	struct rg_cidr c[4];
	struct collected l;
	__u32 v;
	struct rg_lpm4 k4 = { .prefixlen = 32, .addr = { 203, 0, 113, 5 } };

	NEED_ROOT();
	c[0] = cidr("0.0.0.0/0");
	c[1] = cidr("::/0");
	c[2] = cidr("192.0.2.1/32");
	c[3] = cidr("2001:db8::1/128");
	assert_int_equal(rg_trust_add(g, c, 4), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 4);
	assert_true(has(&l, "0.0.0.0/0") && has(&l, "::/0"));
	assert_true(has(&l, "192.0.2.1/32") && has(&l, "2001:db8::1/128"));
	/* The kernel trie matches any IPv4 through /0, as the data plane will. */
	assert_int_equal(bpf_map_lookup_elem(g->trust4_fd, &k4, &v), 0);
	/* Unmasked input is masked before it becomes a key. */
	c[0].addr = cidr("198.51.100.77").addr;
	c[0].prefixlen = 24;
	assert_int_equal(rg_trust_add(g, c, 1), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_true(has(&l, "198.51.100.0/24"));
}

static void test_trust_replace(void **state)
{
	struct rg_gate *g = *state;
	struct rg_cidr c[3];
	struct collected l;

	NEED_ROOT();
	c[0] = cidr("10.0.0.0/8");
	c[1] = cidr("172.16.0.0/12");
	assert_int_equal(rg_trust_add(g, c, 2), 0);
	c[0] = cidr("172.16.0.0/12");
	c[1] = cidr("192.168.0.0/16");
	c[2] = cidr("fd00::/8");
	assert_int_equal(rg_trust_replace(g, c, 3), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_false(has(&l, "10.0.0.0/8"));
	assert_true(has(&l, "172.16.0.0/12") && has(&l, "192.168.0.0/16") && has(&l, "fd00::/8"));
	/* Replace with nothing empties it. */
	assert_int_equal(rg_trust_replace(g, c, 0), 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(rg_trust_foreach(g, trust_cb, &l), 0);
	assert_int_equal(l.n, 0);
}

/* --------------------------------------------------- trusted interfaces */

static void test_tiface(void **state)
{
	struct rg_gate *g = *state;
	unsigned idx[RG_TIFACE_MAX + 8], got[RG_TIFACE_MAX + 8];
	unsigned i;

	NEED_ROOT();
	/* Fill to 250, then a batch of 10 overflows: none of the 10 stays. */
	for (i = 0; i < 250; i++)
		idx[i] = 1000 + i;
	assert_int_equal(rg_tiface_add(g, idx, 250), 0);
	for (i = 0; i < 10; i++)
		idx[i] = 5000 + i;
	assert_int_not_equal(rg_tiface_add(g, idx, 10), 0);
	assert_non_null(strstr(g->err, "full (max 256)"));
	assert_int_equal(rg_tiface_list(g, got, RG_TIFACE_MAX + 8), 250);
	assert_int_equal(got[0], 1000);
	assert_int_equal(got[249], 1249);

	/* del: one unknown index fails the lot. */
	idx[0] = 1000;
	idx[1] = 77;
	assert_int_equal(rg_tiface_del(g, idx, 2), -ENOENT);
	assert_int_equal(rg_tiface_list(g, got, RG_TIFACE_MAX + 8), 250);
	assert_int_equal(rg_tiface_del(g, idx, 1), 0);
	assert_int_equal(rg_tiface_list(g, got, RG_TIFACE_MAX + 8), 249);
	idx[0] = 0;
	assert_int_equal(rg_tiface_add(g, idx, 1), -EINVAL);

	idx[0] = 7;
	idx[1] = 1001;
	assert_int_equal(rg_tiface_replace(g, idx, 2), 0);
	assert_int_equal(rg_tiface_list(g, got, RG_TIFACE_MAX + 8), 2);
	assert_int_equal(got[0], 7);
	assert_int_equal(got[1], 1001);
}

/* ---------------------------------------------------------------- ports */

static void test_ports(void **state)
{
	static const uint16_t set1[] = { 587, 25, 465 }, zero[] = { 0 };
	struct rg_gate *g = *state;
	uint16_t got[8];
	__u32 k, v;

	NEED_ROOT();
	assert_int_equal(rg_ports_set(g, set1, 3), 0);
	assert_int_equal(rg_ports_list(g, got, 8), 3);
	assert_int_equal(got[0], 25);
	assert_int_equal(got[1], 465);
	assert_int_equal(got[2], 587);
	/* The BPF side sees 1 at each protected port. */
	k = 25;
	assert_int_equal(bpf_map_lookup_elem(g->ports_fd, &k, &v), 0);
	assert_int_equal(v, 1);
	/* Port 0 and an empty set are refused and change nothing. */
	assert_int_equal(rg_ports_set(g, zero, 1), -EINVAL);
	assert_int_equal(rg_ports_set(g, set1, 0), -EINVAL);
	assert_int_equal(rg_ports_list(g, got, 8), 3);
	assert_int_equal(rg_ports_set(g, set1 + 2, 1), 0);
	assert_int_equal(rg_ports_list(g, got, 8), 1);
	assert_int_equal(got[0], 465);
	k = 25;
	assert_int_equal(bpf_map_lookup_elem(g->ports_fd, &k, &v), 0);
	assert_int_equal(v, 0);
}

/* The summary's byte for a port: indexed by the port in network order. */
static bool port_bit(const struct rg_gate *g, unsigned port)
{
	return g->sum->ports[htons((uint16_t)port)];
}

/* The summary's port bytes follow rg_ports (the straight-line path passes
 * a port whose byte is clear), and a rebuild clears a stray one. */
static void test_ports_summary(void **state)
{
	static const uint16_t set1[] = { 587, 25, 465 }, set2[] = { 2525 };
	struct rg_gate *g = *state;
	unsigned p, n = 0;

	NEED_ROOT();
	assert_true(port_bit(g, 465) && port_bit(g, 587));   /* the fresh set's ports */
	assert_int_equal(rg_ports_set(g, set1, 3), 0);
	assert_true(port_bit(g, 25) && port_bit(g, 465) && port_bit(g, 587));
	assert_int_equal(rg_ports_set(g, set2, 1), 0);
	for (p = 0; p < 65536; p++)
		n += port_bit(g, p);
	assert_int_equal(n, 1);
	assert_true(port_bit(g, 2525));
	/* A refused set changes no byte. */
	assert_int_equal(rg_ports_set(g, set1, 0), -EINVAL);
	assert_true(port_bit(g, 2525) && !port_bit(g, 587));
	/* A byte left behind (a writer that died between its two steps) is
	 * gone after a rebuild; a protected port's byte stays. */
	g->sum->ports[htons(80)] = 1;
	assert_int_equal(rg_gate_lock(g), 0);
	assert_int_equal(rg_summary_rebuild(g), 0);
	rg_gate_unlock(g);
	assert_false(port_bit(g, 80));
	assert_true(port_bit(g, 2525));
}

/* What the program asks of the summary (bpf/gate.h rg_sum_may), written
 * out here from the layout in maps/relaygate.h. */
static bool sum_may(const struct rg_summary *s, const struct rg_addr *a)
{
	uint32_t top = (uint32_t)a->addr[0] << 24 | (uint32_t)a->addr[1] << 16 |
		       (uint32_t)a->addr[2] << 8 | a->addr[3], b;
	uint8_t v;

	if (a->family == RG_AF_INET) {
		v = s->v4[top >> 16];
		b = top >> 8;
		return (v & RG_SUM_COARSE) || ((v & RG_SUM_FINE) && (s->v4f[b / 8] >> (b % 8) & 1));
	}
	v = s->v6[(top ^ (top >> 16)) & 0xffff];
	b = rg_sum_fine6(top, (uint32_t)a->addr[4] << 8 | a->addr[5]);
	return (v & RG_SUM_COARSE) || ((v & RG_SUM_FINE) && (s->v6f[b / 8] >> (b % 8) & 1));
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd32(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (uint32_t)(rnd_state >> 16);
}

/* a random address of the family, and one inside prefix p/plen */
static void rnd_addr(struct rg_addr *a, uint8_t family)
{
	unsigned i;

	memset(a, 0, sizeof(*a));
	a->family = family;
	for (i = 0; i < (family == RG_AF_INET ? 4u : 16u); i++)
		a->addr[i] = (uint8_t)rnd32();
}

static void rnd_inside(struct rg_addr *out, const struct rg_addr *p, unsigned plen)
{
	unsigned i, n = p->family == RG_AF_INET ? 4 : 16;

	rnd_addr(out, p->family);
	for (i = 0; i < n; i++) {
		unsigned keep = plen >= 8 * (i + 1) ? 8 : plen > 8 * i ? plen - 8 * i : 0;
		uint8_t m = (uint8_t)(0xffu >> keep);     /* the free bits */

		out->addr[i] = (uint8_t)((p->addr[i] & ~m) | (out->addr[i] & m));
	}
}

/*
 * rg_summary_cover against the question the program asks: every address
 * inside a covered prefix "may" match (never a false "no"); and with one
 * entry in it, an address of the same /16 (IPv6: /32) outside the entry
 * is told "no" where the fine level can tell: IPv4 entries of /16 or
 * longer, IPv6 of /40 or longer (another /48 of the same /32 always has
 * another bit). No root needed: the summary is plain memory here.
 */
static void test_summary_cover(void **state)
{
	struct rg_summary *s = calloc(1, sizeof(*s));
	struct rg_addr e[400], q;
	unsigned plen[400], i, k;

	(void)state;
	assert_non_null(s);
	for (i = 0; i < 400; i++) {
		rnd_addr(&e[i], i % 2 ? RG_AF_INET6 : RG_AF_INET);
		plen[i] = rnd32() % (i % 2 ? 129 : 33);
		if (i % 4 < 2)          /* most of them where the fine level works */
			plen[i] = i % 2 ? 40 + rnd32() % 89 : 16 + rnd32() % 17;
		rg_summary_cover(s, &e[i], plen[i]);
	}
	for (i = 0; i < 400; i++)
		for (k = 0; k < 8; k++) {
			rnd_inside(&q, &e[i], plen[i]);
			assert_true(sum_may(s, &q));
		}
	for (i = 0; i < 64; i++) {
		bool v6 = i % 2;
		unsigned p = v6 ? 40 + rnd32() % 89 : 16 + rnd32() % 17;

		memset(s, 0, sizeof(*s));
		rnd_addr(&e[0], v6 ? RG_AF_INET6 : RG_AF_INET);
		rg_summary_cover(s, &e[0], p);
		rnd_inside(&q, &e[0], p);
		assert_true(sum_may(s, &q));
		/* same /16 (IPv6: /32), another /24 (/48) outside the entry */
		rnd_inside(&q, &e[0], v6 ? 32 : 16);
		if (v6 && p >= 48) {
			q.addr[5] = (uint8_t)(e[0].addr[5] ^ (1 + rnd32() % 255));
		} else if (v6) {        /* flip a bit of the prefix's bits 32 to p - 1 */
			unsigned j = 32 + rnd32() % (p - 32);

			q.addr[4] = e[0].addr[4];
			q.addr[5] = e[0].addr[5];
			q.addr[j / 8] ^= (uint8_t)(0x80u >> (j % 8));
		} else if (p >= 24)
			q.addr[2] = (uint8_t)(e[0].addr[2] ^ (1 + rnd32() % 255));
		else if (p > 16)        /* flip a bit of the prefix's third octet */
			q.addr[2] = (uint8_t)(e[0].addr[2] ^ (0x80u >> (rnd32() % (p - 16))));
		if (!v6 && p == 16)
			assert_true(sum_may(s, &q));    /* a /16 covers its slot whole */
		else
			assert_false(sum_may(s, &q));
		/* another slot altogether */
		rnd_addr(&q, e[0].family);
		q.addr[0] = e[0].addr[0];
		q.addr[1] = (uint8_t)(e[0].addr[1] ^ 1);
		q.addr[2] = e[0].addr[2];
		q.addr[3] = e[0].addr[3];
		assert_false(sum_may(s, &q));   /* IPv6: the fold differs in bit 16 */
	}
	free(s);
}

/* RG_SUM_FAST follows the config: off with reject = rst or a grant prefix
 * shorter than a slot, on again after; a rebuild keeps it so. */
static void test_config_fast_hint(void **state)
{
	struct rg_gate *g = *state;
	struct rg_summary_info si;
	struct rg_config c;

	NEED_ROOT();
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_true(si.on && si.fast);
	assert_int_equal(rg_config_read(g, &c), 0);
	c.flags |= RG_CFG_REJECT_RST;
	assert_int_equal(rg_config_write(g, &c), 0);
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_false(si.fast);
	assert_int_equal(rg_gate_lock(g), 0);
	assert_int_equal(rg_summary_rebuild(g), 0);
	rg_gate_unlock(g);
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_true(si.on);
	assert_false(si.fast);
	c.flags &= ~RG_CFG_REJECT_RST;
	c.v4_prefix = 8;
	assert_int_equal(rg_config_write(g, &c), 0);
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_false(si.fast);
	c.v4_prefix = 24;
	c.v6_prefix = 16;
	assert_int_equal(rg_config_write(g, &c), 0);
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_false(si.fast);
	c.v6_prefix = 48;
	assert_int_equal(rg_config_write(g, &c), 0);
	assert_int_equal(rg_summary_info(g, &si), 0);
	assert_true(si.fast);
}

/* ------------------------------------------------------------- counters */

static void test_stats(void **state)
{
	struct rg_counter ctr[RG_STAT_MAX];
	struct rg_gate *g = *state;
	int ncpu = libbpf_num_possible_cpus();
	struct rg_counter *per;
	__u32 k = RG_STAT_DROP_UNAUTH;
	int i;

	NEED_ROOT();
	assert_true(ncpu > 0);
	per = calloc((size_t)ncpu, sizeof(*per));
	assert_non_null(per);
	for (i = 0; i < ncpu; i++) {
		per[i].packets = 2;
		per[i].bytes = 100;
	}
	assert_int_equal(bpf_map_update_elem(g->stats_fd, &k, per, BPF_ANY), 0);
	free(per);
	assert_int_equal(rg_stats_read(g, ctr), 0);
	assert_int_equal(ctr[RG_STAT_DROP_UNAUTH].packets, 2ULL * (unsigned)ncpu);
	assert_int_equal(ctr[RG_STAT_DROP_UNAUTH].bytes, 100ULL * (unsigned)ncpu);
	assert_int_equal(ctr[RG_STAT_PASS_GRANT].packets, 0);
}

/* The key walk, as an oracle for rg_map_count. */
static long walk_count(int fd, size_t ksz)
{
	char prev[64], next[64];
	long n = 0;

	assert_true(ksz <= sizeof(prev));
	if (bpf_map_get_next_key(fd, NULL, next))
		return errno == ENOENT ? 0 : -errno;
	do {
		n++;
		memcpy(prev, next, ksz);
	} while (!bpf_map_get_next_key(fd, prev, next));
	return n;
}

/* rg_map_count reads in batches (first chunk 4096, then 65536): counts
 * across several chunks of an LPM trie (the kernel's generic batch) and a
 * hash map, a small hash, an array, and a per-CPU array (the walk). */
static void test_map_count(void **state)
{
	enum { NT = 70000, NF = 20000 };
	struct rg_gate *g = *state;
	struct rg_lpm4 *t;
	struct rg_flow_key *fk;
	struct rg_flow *fv;
	__u32 one = 1, *tv, n;
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	int i;

	NEED_ROOT();
	t = calloc(NT, sizeof(*t));
	fk = calloc(NF, sizeof(*fk));
	fv = calloc(NF, sizeof(*fv));
	tv = calloc(NT, sizeof(*tv));
	assert_non_null(t);
	assert_non_null(fk);
	assert_non_null(fv);
	assert_non_null(tv);
	assert_int_equal(rg_map_count(g->trust4_fd), 0);
	assert_int_equal(rg_map_count(g->deny_fd), 0);
	for (i = 0; i < NT; i++) {
		t[i].prefixlen = 32;
		memcpy(t[i].addr, &(__u32){ htonl(0x0a000000u + (unsigned)i) }, 4);
	}
	n = NT;
	assert_int_equal(bpf_map_update_batch(g->trust4_fd, t, tv, &n, &bo), 0);
	assert_int_equal(n, NT);
	assert_int_equal(rg_map_count(g->trust4_fd), NT);
	assert_int_equal(walk_count(g->trust4_fd, sizeof(*t)), NT);
	for (i = 0; i < NF; i++) {
		fk[i].family = RG_AF_INET;
		memcpy(fk[i].saddr, &(__u32){ htonl(0xc6120000u + (unsigned)i) }, 4);
		fk[i].sport = (__u16)(1024 + i % 50000);
		fk[i].dport = 587;
	}
	n = NF;
	assert_int_equal(bpf_map_update_batch(g->flows_fd, fk, fv, &n, &bo), 0);
	assert_int_equal(rg_map_count(g->flows_fd), walk_count(g->flows_fd, sizeof(*fk)));
	assert_true(rg_map_count(g->flows_fd) > NF / 2);        /* an LRU may evict some */
	for (i = 1; i <= 3; i++)
		assert_int_equal(bpf_map_update_elem(g->tiface_fd, &(__u32){ (__u32)i }, &one, BPF_ANY), 0);
	assert_int_equal(rg_map_count(g->tiface_fd), 3);
	assert_int_equal(rg_map_count(g->ports_fd), 65536);
	assert_int_equal(rg_map_count(g->stats_fd), RG_STAT_MAX);
	assert_true(rg_map_count(-1) < 0);
	free(t);
	free(tv);
	free(fk);
	free(fv);
}

/* ---------------------------------------------------------------- names */

static void test_names(void **state)
{
	enum rg_service s;
	enum rg_mode m;

	(void)state;
	assert_string_equal(rg_stat_name(RG_STAT_PASS_GRANT), "pass_grant");
	assert_string_equal(rg_stat_name(RG_STAT_EVENTS_LOST), "events_lost");
	assert_string_equal(rg_stat_name(RG_STAT_MAX), "unknown");
	assert_string_equal(rg_origin_name(RG_ORIGIN_CLI), "cli");
	assert_string_equal(rg_origin_name(RG_ORIGIN_MAX), "unknown");
	assert_string_equal(rg_service_name(RG_SERVICE_POP3), "pop3");
	assert_int_equal(rg_service_parse("imap", &s), 0);
	assert_int_equal(s, RG_SERVICE_IMAP);
	assert_int_equal(rg_service_parse("none", &s), -1);
	assert_int_equal(rg_service_parse("POP3", &s), -1);
	assert_int_equal(rg_mode_parse("xdp-generic", &m), 0);
	assert_int_equal(m, RG_MODE_XDP_GENERIC);
	assert_string_equal(rg_mode_name(RG_MODE_TC), "tc");
	assert_int_equal(rg_mode_parse("skb", &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_create_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_reuses, setup, teardown),
		cmocka_unit_test(test_open_missing),
		cmocka_unit_test_setup_teardown(test_abi_guard_and_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_refuses_when_attached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_never_shortens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_put_abs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_masking, setup, teardown),
		cmocka_unit_test_setup_teardown(test_grant_del_user, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deny, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_edges, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trust_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tiface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_fast_hint, setup, teardown),
		cmocka_unit_test(test_summary_cover),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_count, setup, teardown),
	};
	gatefix_init("gatemaps");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
