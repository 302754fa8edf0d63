// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The config file: every error path with its exact one-line message, the
 * defaults, every key's accepted forms, the SPEC example and the shipped
 * etc/relaygate.conf, and that a failed load changes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <grp.h>
#include <ini.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cidr.h"
#include "config.h"
#include "control.h"

static char root[PATH_MAX];     /* repository root */

static int find_root(void)
{
	char exe[PATH_MAX], probe[PATH_MAX + 64], *slash;
	ssize_t n;
	int up;

	if (!access("tests/fixtures/config", R_OK)) {
		snprintf(root, sizeof(root), ".");
		return 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return -1;
	exe[n] = '\0';
	for (up = 0; up < 6 && (slash = strrchr(exe, '/')); up++) {
		*slash = '\0';
		snprintf(probe, sizeof(probe), "%s/tests/fixtures/config", exe);
		if (!access(probe, R_OK)) {
			snprintf(root, sizeof(root), "%s", exe);
			return 0;
		}
	}
	return -1;
}

static int load(const char *text, struct rg_config_file *c, char *err, size_t errlen)
{
	return rg_config_load_string(text, strlen(text), "t.conf", c, err, errlen);
}

static void expect_ok(const char *text, struct rg_config_file *c)
{
	char err[512] = "";

	if (load(text, c, err, sizeof(err)))
		fail_msg("unexpected error: %s\n--- config:\n%s", err, text);
}

/* ------------------------------------------------------------ error table */

struct bad {
	const char *text;
	const char *err;
};

static const struct bad bad_configs[] = {
	/* Grammar. */
	{ "oops\n", "t.conf:1: expected \"[section]\" or \"key = value\"" },
	{ "[gate]\nmode\n", "t.conf:2: expected \"[section]\" or \"key = value\"" },
	{ "[gate\nmode = xdp\n", "t.conf:1: \"[\" without \"]\"" },
	{ "[gate] mode = xdp\n", "t.conf:1: [gate]: text after the section header" },
	{ "mode = xdp\n[gate]\n", "t.conf:1: mode: key before the first [section]" },
	{ "[gate]\nmode = \x01xdp\n", "t.conf:2: [gate] mode: control character in value" },
	/* Sections. */
	{ "[gate]\n\n[bogus]\n", "t.conf:3: [bogus]: unknown section (gate, trust, grants, deny, "
				 "source.NAME, policy, control, metrics, cluster)" },
	{ "[Gate]\nmode = xdp\n", "t.conf:1: [Gate]: unknown section (gate, trust, grants, deny, "
				  "source.NAME, policy, control, metrics, cluster)" },
	{ "[ gate ]\n", "t.conf:1: [ gate ]: unknown section (gate, trust, grants, deny, "
			"source.NAME, policy, control, metrics, cluster)" },
	{ "[gate]\nmode = xdp\n[trust]\n[gate]\nreject = rst\n",
	  "t.conf:4: [gate]: section given twice (first at line 1)" },
	{ "[source.]\n", "t.conf:1: [source.]: source name must be 1..32 of A-Z a-z 0-9 _ -" },
	{ "[source.mail log]\n", "t.conf:1: [source.mail log]: source name must be 1..32 of A-Z a-z 0-9 _ -" },
	{ "[source.a]\ntype = dovecot\npath = /var/log/a\n[source.a]\n",
	  "t.conf:4: [source.a]: section given twice (first at line 1)" },
	/* Unknown keys. */
	{ "[gate]\ncolour = red\n",
	  "t.conf:2: [gate] colour: unknown key (interface, mode, ports, reject, pin_dir)" },
	{ "[grants]\nTTL = 1h\n",
	  "t.conf:2: [grants] TTL: unknown key (ttl, max, ipv4_prefix, ipv6_prefix, state_file)" },
	{ "[metrics]\nport = 9469\n", "t.conf:2: [metrics] port: unknown key (listen)" },
	{ "[source.d]\ntype = dovecot\nfile = /var/log/mail.log\n",
	  "t.conf:3: [source.d] file: unknown key (type, path, match, failure, listen, service)" },
	/* Keys given twice (those that do not repeat). */
	{ "[gate]\nmode = xdp\nmode = tc\n", "t.conf:3: [gate] mode: given twice (first at line 2)" },
	{ "[grants]\nttl = 1h\n\n; again\nttl = 2h\n",
	  "t.conf:5: [grants] ttl: given twice (first at line 2)" },
	{ "[gate]\nports = 465\nports = 587\n", "t.conf:3: [gate] ports: given twice (first at line 2)" },
	{ "[source.d]\ntype = dovecot\npath = /a\npath = /b\n",
	  "t.conf:4: [source.d] path: given twice (first at line 3)" },
	/* Empty values. */
	{ "[gate]\nmode =\n", "t.conf:2: [gate] mode: empty value" },
	{ "[gate]\nmode = ; xdp\n", "t.conf:2: [gate] mode: empty value" },
	{ "[source.d]\ntype =\n", "t.conf:2: [source.d] type: empty value" },
	/* [gate] */
	{ "[gate]\nmode = fast\n", "t.conf:2: [gate] mode: \"fast\" is not one of xdp, xdp-generic, tc" },
	{ "[gate]\nreject = reset\n", "t.conf:2: [gate] reject: \"reset\" is not one of drop, rst" },
	{ "[gate]\nports = 465 0\n", "t.conf:2: [gate] ports: \"0\" is not a port number 1..65535" },
	{ "[gate]\nports = 65536\n", "t.conf:2: [gate] ports: \"65536\" is not a port number 1..65535" },
	{ "[gate]\nports = 0587\n", "t.conf:2: [gate] ports: \"0587\" is not a port number 1..65535" },
	{ "[gate]\nports = smtps\n", "t.conf:2: [gate] ports: \"smtps\" is not a port number 1..65535" },
	{ "[gate]\nports = 465,587,465\n", "t.conf:2: [gate] ports: port 465 listed twice" },
	{ "[gate]\nports = ,\n", "t.conf:2: [gate] ports: empty value (ports to protect, e.g. 465 587)" },
	/* An empty element between commas, as `relaygatectl ports set` refuses it. */
	{ "[gate]\nports = 587,,465\n", "t.conf:2: [gate] ports: \"587,,465\": empty element in the list" },
	{ "[gate]\nports = 587, ,465\n", "t.conf:2: [gate] ports: \"587, ,465\": empty element in the list" },
	{ "[gate]\nports = ,587\n", "t.conf:2: [gate] ports: \",587\": empty element in the list" },
	{ "[gate]\nports = 587 465,\n", "t.conf:2: [gate] ports: \"587 465,\": empty element in the list" },
	{ "[gate]\ninterface = eth0,,eth1\n",
	  "t.conf:2: [gate] interface: \"eth0,,eth1\": empty element in the list" },
	{ "[trust]\nsubnet = 192.0.2.0/24,,10.0.0.0/8\n",
	  "t.conf:2: [trust] subnet: \"192.0.2.0/24,,10.0.0.0/8\": empty element in the list" },
	{ "[trust]\ninterface = wg0,\n", "t.conf:2: [trust] interface: \"wg0,\": empty element in the list" },
	{ "[gate]\ninterface = averyveryverylongname0\n",
	  "t.conf:2: [gate] interface: \"averyveryverylongname0\": interface name longer than 15 characters" },
	{ "[gate]\ninterface = eth0/1\n", "t.conf:2: [gate] interface: \"eth0/1\": not an interface name" },
	{ "[gate]\ninterface = eth0:1\n", "t.conf:2: [gate] interface: \"eth0:1\": not an interface name" },
	{ "[gate]\ninterface = eth0\ninterface = eth1 eth0\n",
	  "t.conf:3: [gate] interface: \"eth0\": listed twice" },
	{ "[gate]\npin_dir = sys/fs/bpf/rg\n",
	  "t.conf:2: [gate] pin_dir: \"sys/fs/bpf/rg\": not an absolute path" },
	{ "[gate]\npin_dir = /sys/fs/bpf/../rg\n",
	  "t.conf:2: [gate] pin_dir: \"/sys/fs/bpf/../rg\": \".\" or \"..\" in path" },
	/* [trust] */
	{ "[trust]\nsubnet = 10.0.0.1/8\n",
	  "t.conf:2: [trust] subnet: \"10.0.0.1/8\": host bits set below the prefix" },
	{ "[trust]\nsubnet = 192.0.2.0/33\n",
	  "t.conf:2: [trust] subnet: \"192.0.2.0/33\": prefix length out of range (0..32)" },
	{ "[trust]\nsubnet = 2001:db8::/129\n",
	  "t.conf:2: [trust] subnet: \"2001:db8::/129\": prefix length out of range (0..128)" },
	{ "[trust]\nsubnet = 999.1.1.0/24\n",
	  "t.conf:2: [trust] subnet: \"999.1.1.0/24\": octet out of range (0..255)" },
	{ "[trust]\nsubnet = office.example.org\n",
	  "t.conf:2: [trust] subnet: \"office.example.org\": not an IPv4 or IPv6 address" },
	{ "[trust]\nsubnet = 192.0.2.0/24\nsubnet = 198.51.100.0/24, 192.0.2.0/24\n",
	  "t.conf:3: [trust] subnet: \"192.0.2.0/24\": 192.0.2.0/24 listed twice" },
	{ "[trust]\nsubnet = 192.0.2.0/24 ::ffff:192.0.2.0/120\n",
	  "t.conf:2: [trust] subnet: \"::ffff:192.0.2.0/120\": 192.0.2.0/24 listed twice" },
	{ "[trust]\ninterface = wg0 wg0\n", "t.conf:2: [trust] interface: \"wg0\": listed twice" },
	/* [grants] */
	{ "[grants]\nttl = -5\n", "t.conf:2: [grants] ttl: \"-5\": negative duration" },
	{ "[grants]\nttl = 0\n", "t.conf:2: [grants] ttl: \"0\": must be at least 1s" },
	{ "[grants]\nttl = 30x\n", "t.conf:2: [grants] ttl: \"30x\": unknown unit (use s, m, h or d)" },
	{ "[grants]\nttl = 30 m\n",
	  "t.conf:2: [grants] ttl: \"30 m\": unknown unit (use s, m, h or d)" },
	{ "[grants]\nmax = 0\n", "t.conf:2: [grants] max: \"0\" is not a number 1..16777216" },
	{ "[grants]\nmax = 16777217\n", "t.conf:2: [grants] max: \"16777217\" is not a number 1..16777216" },
	{ "[grants]\nipv4_prefix = 8\n",
	  "t.conf:2: [grants] ipv4_prefix: \"8\" is not a prefix length 16..32 (shorter grants too many addresses)" },
	{ "[grants]\nipv4_prefix = 33\n",
	  "t.conf:2: [grants] ipv4_prefix: \"33\" is not a prefix length 16..32 (shorter grants too many addresses)" },
	{ "[grants]\nipv6_prefix = /64\n",
	  "t.conf:2: [grants] ipv6_prefix: \"/64\" is not a prefix length 32..128 (shorter grants too many addresses)" },
	{ "[grants]\nstate_file = grants.state\n",
	  "t.conf:2: [grants] state_file: \"grants.state\": not an absolute path" },
	/* [deny] */
	{ "[deny]\nafter_failures = ten\n",
	  "t.conf:2: [deny] after_failures: \"ten\" is not a number 0..1000000 (0: never deny)" },
	{ "[deny]\nwithin = 0s\n", "t.conf:2: [deny] within: \"0s\": must be at least 1s" },
	{ "[deny]\nttl = 1h30\n", "t.conf:2: [deny] ttl: \"1h30\": number without a unit after a unit" },
	/* [policy] */
	{ "[policy]\nsocket_mode = 0660\n",
	  "t.conf:1: [policy] listen: missing (unix:/PATH or inet:HOST:PORT)" },
	{ "[policy]\nlisten = private/relaygate\n",
	  "t.conf:2: [policy] listen: \"private/relaygate\": expected unix:/PATH, HOST:PORT or [IPv6]:PORT" },
	{ "[policy]\nlisten = unix:private/relaygate\n",
	  "t.conf:2: [policy] listen: \"unix:private/relaygate\": not an absolute path" },
	{ "[policy]\nlisten = inet:localhost:10040\n",
	  "t.conf:2: [policy] listen: \"inet:localhost:10040\": not an IPv4 address (IPv6 goes in brackets)" },
	{ "[policy]\nlisten = inet:127.0.0.1:100400\n",
	  "t.conf:2: [policy] listen: \"inet:127.0.0.1:100400\": port is not a number 1..65535" },
	{ "[policy]\nlisten = inet:[::1:10040\n",
	  "t.conf:2: [policy] listen: \"inet:[::1:10040\": expected unix:/PATH, HOST:PORT or [IPv6]:PORT" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsocket_owner = no-such-user-rg\n",
	  "t.conf:3: [policy] socket_owner: no such user \"no-such-user-rg\"" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsocket_owner = root:no-such-group-rg\n",
	  "t.conf:3: [policy] socket_owner: no such group \"no-such-group-rg\"" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsocket_owner = root postfix\n",
	  "t.conf:3: [policy] socket_owner: \"root postfix\" is not USER or USER:GROUP" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsocket_mode = 0999\n",
	  "t.conf:3: [policy] socket_mode: \"0999\" is not an octal mode 0..0777 (e.g. 0660)" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsocket_mode = 1777\n",
	  "t.conf:3: [policy] socket_mode: \"1777\" is not an octal mode 0..0777 (e.g. 0660)" },
	{ "[policy]\nlisten = inet:127.0.0.1:10040\nsender_logins = sender_logins\n",
	  "t.conf:3: [policy] sender_logins: \"sender_logins\": not an absolute path" },
	{ "[policy]\nlisten = unix:/run/relaygate/control.sock\n",
	  "t.conf:2: [policy] listen: \"unix:/run/relaygate/control.sock\" is also [control] socket" },
	{ "[policy]\nlisten = 127.0.0.1:9469\n",
	  "t.conf:2: [policy] listen: \"127.0.0.1:9469\" is also [metrics] listen" },
	/* [control] */
	{ "[control]\nsocket = control.sock\n",
	  "t.conf:2: [control] socket: \"control.sock\": not an absolute path" },
	{ "[control]\nsocket = /run/relaygate/a-control-socket-path-that-is-far-too-long-for-"
	  "a-unix-socket-address-to-hold-even-if-it-tried/control.sock\n",
	  "t.conf:2: [control] socket: \"/run/relaygate/a-control-socket-path-that-is-far-too-long-for-a-...\": "
	  "path too long" },
	{ "[control]\nsocket_group = no-such-group-rg\n",
	  "t.conf:2: [control] socket_group: no such group \"no-such-group-rg\"" },
	{ "[control]\nsocket_mode = rw-rw----\n",
	  "t.conf:2: [control] socket_mode: \"rw-rw----\" is not an octal mode 0..0777 (e.g. 0660)" },
	/* [metrics] */
	{ "[metrics]\nlisten = 9469\n",
	  "t.conf:2: [metrics] listen: \"9469\": expected HOST:PORT or [IPv6]:PORT (or off)" },
	{ "[metrics]\nlisten = unix:/run/relaygate/metrics.sock\n",
	  "t.conf:2: [metrics] listen: \"unix:/run/relaygate/metrics.sock\": a unix socket is not "
	  "possible here (use HOST:PORT) (or off)" },
	{ "[metrics]\nlisten = [::1]\n",
	  "t.conf:2: [metrics] listen: \"[::1]\": expected HOST:PORT or [IPv6]:PORT (or off)" },
	/* [cluster] */
	{ "[cluster]\n", "t.conf:1: [cluster] redis: missing (redis://HOST[:PORT][/DB])" },
	{ "[cluster]\nredis = http://127.0.0.1:6379\n",
	  "t.conf:2: [cluster] redis: \"http://127.0.0.1:6379\": expected redis://HOST[:PORT][/DB] or unix:/PATH" },
	{ "[cluster]\nredis = rediss://redis.example.net\n",
	  "t.conf:2: [cluster] redis: \"rediss://redis.example.net\": rediss:// (TLS) is not supported" },
	{ "[cluster]\nredis = redis://127.0.0.1:0/0\n",
	  "t.conf:2: [cluster] redis: \"redis://127.0.0.1:0/0\": port is not a number 1..65535" },
	{ "[cluster]\nredis = redis://127.0.0.1/x\n",
	  "t.conf:2: [cluster] redis: \"redis://127.0.0.1/x\": database is not a number 0..65535" },
	{ "[cluster]\nredis = redis://red is/0\n",
	  "t.conf:2: [cluster] redis: \"redis://red is/0\": bad host name" },
	{ "[cluster]\nredis = unix:redis.sock\n",
	  "t.conf:2: [cluster] redis: \"unix:redis.sock\": expected unix:[:PASSWORD@]/PATH[?db=N]" },
	{ "[cluster]\nredis = unix:s3cret@/run/redis.sock\n",
	  "t.conf:2: [cluster] redis: \"unix:s3cret@/run/redis.sock\": expected :PASSWORD@ before the host or path" },
	{ "[cluster]\nredis = unix::@/run/redis.sock\n",
	  "t.conf:2: [cluster] redis: \"unix::@/run/redis.sock\": bad password" },
	/* [source.NAME] */
	{ "[source.d]\npath = /var/log/mail.log\n",
	  "t.conf:1: [source.d] type: missing (dovecot, postfix-sasl, courier, cyrus, regex, "
	  "dovecot-auth-policy)" },
	{ "[source.d]\ntype = exim\n",
	  "t.conf:2: [source.d] type: \"exim\" is not one of dovecot, postfix-sasl, courier, cyrus, "
	  "regex, dovecot-auth-policy" },
	{ "[source.d]\ntype = dovecot\n",
	  "t.conf:1: [source.d] path: missing (the log file, a FIFO, or - for stdin)" },
	{ "[source.d]\ntype = dovecot\npath = mail.log\n",
	  "t.conf:3: [source.d] path: \"mail.log\": not an absolute path (or - for stdin)" },
	{ "[source.d]\ntype = dovecot\npath = /var/log/mail.log\nlisten = 127.0.0.1:8088\n",
	  "t.conf:4: [source.d] listen: only for type = dovecot-auth-policy" },
	{ "[source.d]\nmatch = (?<ip>\\S+) (?<user>\\S+)\ntype = dovecot\npath = /var/log/mail.log\n",
	  "t.conf:2: [source.d] match: only for type = regex" },
	{ "[source.d]\ntype = postfix-sasl\npath = /var/log/mail.log\nfailure = (?<ip>\\S+)\n",
	  "t.conf:4: [source.d] failure: only for type = regex" },
	{ "[source.d]\ntype = cyrus\npath = /var/log/mail.log\nservice = pop\n",
	  "t.conf:4: [source.d] service: \"pop\" is not one of pop3, imap, smtp, other" },
	{ "[source.p]\ntype = dovecot-auth-policy\n",
	  "t.conf:1: [source.p] listen: missing (HOST:PORT for auth_policy_server_url)" },
	{ "[source.p]\ntype = dovecot-auth-policy\nlisten = 127.0.0.1:8088\npath = /var/log/mail.log\n",
	  "t.conf:4: [source.p] path: not for type = dovecot-auth-policy (it listens)" },
	{ "[source.p]\ntype = dovecot-auth-policy\nlisten = localhost:8088\n",
	  "t.conf:3: [source.p] listen: \"localhost:8088\": not an IPv4 address (IPv6 goes in brackets)" },
	{ "[source.r]\ntype = regex\npath = /var/log/app.log\n",
	  "t.conf:1: [source.r]: type = regex needs a match or a failure pattern (or both)" },
	{ "[source.r]\ntype = regex\npath = /var/log/app.log\nmatch = app: ok (?<user>\\S+)\n",
	  "t.conf:4: [source.r] match: no named group (?<ip>...)" },
	{ "[source.r]\ntype = regex\npath = /var/log/app.log\nmatch = app: ok (?<ip>\\S+)\n",
	  "t.conf:4: [source.r] match: no named group (?<user>...)" },
	{ "[source.r]\ntype = regex\npath = /var/log/app.log\nmatch = app: ok (?<ip>\\S+) (?<user>\\S+)\n"
	  "failure = app: bad (?<host>\\S+)\n",
	  "t.conf:5: [source.r] failure: no named group (?<ip>...)" },
	{ "[source.r]\ntype = regex\npath = /var/log/app.log\nfailure = app: bad (?<ip>[0-9.+)\n",
	  "t.conf:4: [source.r] failure: PCRE2 error at offset 22: missing terminating ] for character class" },
	{ "[source.a]\ntype = dovecot\npath = /var/log/mail.log\n"
	  "[source.b]\ntype = postfix-sasl\npath = /var/log/mail.log\n",
	  "t.conf:6: [source.b] path: \"/var/log/mail.log\" is also read by [source.a]" },
	{ "[source.a]\ntype = dovecot\npath = -\n[source.b]\ntype = courier\npath = -\n",
	  "t.conf:6: [source.b] path: \"-\" is also read by [source.a]" },
	{ "[source.a]\ntype = dovecot-auth-policy\nlisten = 127.0.0.1:8088\n"
	  "[source.b]\ntype = dovecot-auth-policy\nlisten = inet:127.0.0.1:8088\n",
	  "t.conf:6: [source.b] listen: \"inet:127.0.0.1:8088\" is also used by [source.a]" },
	{ "[source.a]\ntype = dovecot-auth-policy\nlisten = 127.0.0.1:9469\n",
	  "t.conf:3: [source.a] listen: \"127.0.0.1:9469\" is also [metrics] listen" },
};

static void test_errors(void **state)
{
	size_t i, failed = 0;

	(void)state;
	for (i = 0; i < sizeof(bad_configs) / sizeof(bad_configs[0]); i++) {
		struct rg_config_file c;
		char err[512] = "";

		memset(&c, 0xa5, sizeof(c));
		if (!load(bad_configs[i].text, &c, err, sizeof(err))) {
			print_message("# case %zu loaded, want: %s\n", i, bad_configs[i].err);
			rg_config_free(&c);
			failed++;
			continue;
		}
		if (strcmp(err, bad_configs[i].err)) {
			print_message("# case %zu\n#   want: %s\n#   got:  %s\n", i, bad_configs[i].err, err);
			failed++;
		}
	}
	print_message("# %zu error cases\n", i);
	assert_int_equal(failed, 0);
}

/* A failed load leaves *out exactly as it was (no side effect). */
static void test_failure_leaves_out_alone(void **state)
{
	struct rg_config_file c, before;
	char err[512];

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	memcpy(&before, &c, sizeof(c));
	/* Fails late: after subnets, sources and a regex were allocated. */
	assert_int_equal(load("[trust]\nsubnet = 192.0.2.0/24 2001:db8::/32\n"
			      "[source.r]\ntype = regex\npath = /x\nmatch = (?<ip>a)(?<user>b)\n"
			      "[source.s]\ntype = dovecot\npath = /x\n", &c, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:9: [source.s] path: \"/x\" is also read by [source.r]");
	assert_memory_equal(&c, &before, sizeof(c));
}

/* ------------------------------------------------------------ files */

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_file_errors(void **state)
{
	char dir[] = "/tmp/rg-config-test.XXXXXX", path[256], want[1024];
	char err[1024];
	struct rg_config_file c;
	FILE *f;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(dir));

	snprintf(path, sizeof(path), "%s/missing.conf", dir);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
	assert_string_equal(err, want);

	assert_int_equal(rg_config_load(dir, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: not a regular file", dir);
	assert_string_equal(err, want);

	snprintf(path, sizeof(path), "%s/ww.conf", dir);
	write_file(path, "[gate]\nmode = xdp\n", 0666);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
		 "%s: world-writable: anyone could trust their own address (chmod o-w %s)", path, path);
	assert_string_equal(err, want);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), 0);
	assert_string_equal(c.path, path);
	rg_config_free(&c);
	unlink(path);

	/* Errors in a file name the file. */
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	write_file(path, "[gate]\nmode = fast\n", 0600);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: [gate] mode: \"fast\" is not one of xdp, xdp-generic, tc", path);
	assert_string_equal(err, want);
	unlink(path);

	snprintf(path, sizeof(path), "%s/big.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	for (i = 0; i < RG_CONFIG_MAX_BYTES / 16 + 1; i++)
		fputs("; filler line .\n", f);
	fclose(f);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
	assert_string_equal(err, want);
	unlink(path);

	/* A FIFO is not read (it would block). */
	snprintf(path, sizeof(path), "%s/fifo.conf", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(rg_config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	assert_string_equal(err, want);
	unlink(path);
	rmdir(dir);
}

static void test_line_errors(void **state)
{
	static char text[RG_CONFIG_LINE_MAX + 64];
	struct rg_config_file c;
	char err[512];
	size_t n;

	(void)state;
	/* The longest line that is accepted, then one byte more. */
	n = (size_t)snprintf(text, sizeof(text), "[gate]\n; ");
	memset(text + n, 'x', RG_CONFIG_LINE_MAX - 2);
	n += RG_CONFIG_LINE_MAX - 2;
	memcpy(text + n, "\nmode = tc\n", 12);
	expect_ok(text, &c);
	assert_int_equal(c.gate.mode, RG_MODE_TC);
	rg_config_free(&c);
	n = (size_t)snprintf(text, sizeof(text), "[gate]\n; ");
	memset(text + n, 'x', RG_CONFIG_LINE_MAX - 1);
	n += RG_CONFIG_LINE_MAX - 1;
	memcpy(text + n, "\nmode = tc\n", 12);
	assert_int_equal(load(text, &c, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:2: line longer than 4096 bytes");

	/* A NUL byte inside a line. */
	assert_int_equal(rg_config_load_string("[gate]\nmode = xdp\nports = 4\0005\n", 29, "t.conf", &c,
					       err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:3: NUL byte in line");

	assert_int_equal(rg_config_load_string("", RG_CONFIG_MAX_BYTES + 1, "t.conf", &c, err,
					       sizeof(err)), -1);
	assert_string_equal(err, "t.conf: larger than 1048576 bytes");
}

/* ------------------------------------------------------------ values */

static const char *endpoint_str(const struct rg_endpoint *e, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!e->set)
		snprintf(buf, len, "off");
	else if (e->is_unix)
		snprintf(buf, len, "unix:%s", e->path);
	else if (e->sa.ss_family == AF_INET)
		snprintf(buf, len, "%s:%u",
			 inet_ntop(AF_INET, &((const struct sockaddr_in *)&e->sa)->sin_addr, a, sizeof(a)),
			 ntohs(((const struct sockaddr_in *)&e->sa)->sin_port));
	else
		snprintf(buf, len, "[%s]:%u",
			 inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&e->sa)->sin6_addr, a, sizeof(a)),
			 ntohs(((const struct sockaddr_in6 *)&e->sa)->sin6_port));
	return buf;
}

static void test_defaults(void **state)
{
	struct rg_config_file c;
	struct group *g;
	char buf[128];

	(void)state;
	expect_ok("", &c);
	assert_string_equal(c.path, "t.conf");
	assert_int_equal(c.gate.n_ifaces, 0);
	assert_int_equal(c.gate.mode, RG_MODE_XDP);
	assert_int_equal(c.gate.n_ports, 2);
	assert_int_equal(c.gate.ports[0], 465);
	assert_int_equal(c.gate.ports[1], 587);
	assert_false(c.gate.reject_rst);
	assert_string_equal(c.gate.pin_dir, "/sys/fs/bpf/relaygate");
	assert_int_equal(c.trust.n_subnets, 0);
	assert_null(c.trust.subnets);
	assert_int_equal(c.trust.n_ifaces, 0);
	assert_int_equal(c.grants.ttl, 1800);
	assert_int_equal(c.grants.max, 262144);
	assert_int_equal(c.grants.ipv4_prefix, 32);
	assert_int_equal(c.grants.ipv6_prefix, 64);
	assert_string_equal(c.grants.state_file, "/var/lib/relaygate/grants.state");
	assert_int_equal(c.deny.after_failures, 10);
	assert_int_equal(c.deny.within, 600);
	assert_int_equal(c.deny.ttl, 3600);
	assert_int_equal(c.n_sources, 0);
	assert_false(c.policy.listen.set);
	assert_int_equal(c.policy.owner_uid, (uid_t)-1);
	assert_int_equal(c.policy.owner_gid, (gid_t)-1);
	assert_int_equal(c.policy.socket_mode, 0660);
	assert_string_equal(c.policy.sender_logins, "");
	assert_string_equal(c.policy.audit_log, "");
	assert_string_equal(c.control.socket, "/run/relaygate/control.sock");
	assert_string_equal(c.control.socket_group, "relaygate");
	g = getgrnam("relaygate");
	assert_int_equal(c.control.socket_gid, g ? g->gr_gid : (gid_t)-1);
	assert_int_equal(c.control.socket_mode, 0660);
	assert_string_equal(endpoint_str(&c.metrics.listen, buf, sizeof(buf)), "127.0.0.1:9469");
	assert_string_equal(c.metrics.listen.text, "127.0.0.1:9469");
	assert_string_equal(c.cluster.redis, "");
	rg_config_free(&c);
	/* Freeing twice (the struct is zeroed) is harmless. */
	rg_config_free(&c);
	rg_config_free(NULL);
}

static void test_lists_and_syntax(void **state)
{
	struct rg_config_file c;
	char txt[RG_ADDRSTRLEN];

	(void)state;
	/* BOM, CRLF, both comment styles, inline comments, blanks, lists. */
	expect_ok("\xEF\xBB\xBF; relaygate\r\n"
		  "# another comment\r\n"
		  "\r\n"
		  "  [gate]   ; the gate\r\n"
		  "interface = eth0 eth1\r\n"
		  "interface=eth2\r\n"
		  "ports = 25,465, 587   ; submission too\r\n"
		  "mode = tc\r\n"
		  "reject = rst\r\n"
		  "[trust]\n"
		  "subnet = 192.0.2.0/24, 2001:db8:1::/48\n"
		  "subnet = ::ffff:198.51.100.0/120\n"
		  "subnet = 203.0.113.9\n"
		  "interface = wg0\n"
		  "interface = tun0, tun1\n", &c);
	assert_int_equal(c.gate.n_ifaces, 3);
	assert_string_equal(c.gate.ifaces[0], "eth0");
	assert_string_equal(c.gate.ifaces[1], "eth1");
	assert_string_equal(c.gate.ifaces[2], "eth2");
	assert_int_equal(c.gate.n_ports, 3);
	assert_int_equal(c.gate.ports[0], 25);
	assert_int_equal(c.gate.ports[2], 587);
	assert_int_equal(c.gate.mode, RG_MODE_TC);
	assert_true(c.gate.reject_rst);
	assert_int_equal(c.trust.n_subnets, 4);
	assert_string_equal(rg_cidr_str(&c.trust.subnets[0].addr, c.trust.subnets[0].prefixlen, txt,
					sizeof(txt)), "192.0.2.0/24");
	assert_string_equal(rg_cidr_str(&c.trust.subnets[1].addr, c.trust.subnets[1].prefixlen, txt,
					sizeof(txt)), "2001:db8:1::/48");
	assert_string_equal(rg_cidr_str(&c.trust.subnets[2].addr, c.trust.subnets[2].prefixlen, txt,
					sizeof(txt)), "198.51.100.0/24");
	assert_string_equal(rg_cidr_str(&c.trust.subnets[3].addr, c.trust.subnets[3].prefixlen, txt,
					sizeof(txt)), "203.0.113.9/32");
	assert_int_equal(c.trust.n_ifaces, 3);
	assert_string_equal(c.trust.ifaces[2], "tun1");
	rg_config_free(&c);

	/* Many subnets (the array grows). */
	{
		char *big = malloc(200000);
		size_t n = 0;
		unsigned i;

		assert_non_null(big);
		n += (size_t)sprintf(big + n, "[trust]\n");
		for (i = 0; i < 3000; i++)
			n += (size_t)sprintf(big + n, "subnet = 10.%u.%u.0/24\n", i / 256, i % 256);
		expect_ok(big, &c);
		assert_int_equal(c.trust.n_subnets, 3000);
		assert_string_equal(rg_cidr_str(&c.trust.subnets[2999].addr, 24, txt, sizeof(txt)),
				    "10.11.183.0/24");
		rg_config_free(&c);
		free(big);
	}
}

static void test_sections(void **state)
{
	struct rg_config_file c;
	struct passwd *pw = getpwnam("root");
	char buf[160];

	(void)state;
	assert_non_null(pw);
	expect_ok("[grants]\nttl = 1h30m\nmax = 1000\nipv4_prefix = 24\nipv6_prefix = 48\n"
		  "state_file = /tmp/grants.state\n"
		  "[deny]\nafter_failures = 0\nwithin = 90\nttl = 1d\n"
		  "[policy]\nlisten = inet:[::1]:10040\nsocket_owner = root:0\nsocket_mode = 600\n"
		  "sender_logins = /etc/relaygate/sender_logins\naudit_log = /var/log/relaygate/audit.log\n"
		  "[control]\nsocket = /tmp/rg.sock\nsocket_group = root\nsocket_mode = 0600\n"
		  "[metrics]\nlisten = off\n"
		  "[cluster]\nredis = redis://:s3cret@[::1]:6380/3\n", &c);
	assert_int_equal(c.grants.ttl, 5400);
	assert_int_equal(c.grants.max, 1000);
	assert_int_equal(c.grants.ipv4_prefix, 24);
	assert_int_equal(c.grants.ipv6_prefix, 48);
	assert_string_equal(c.grants.state_file, "/tmp/grants.state");
	assert_int_equal(c.deny.after_failures, 0);
	assert_int_equal(c.deny.within, 90);
	assert_int_equal(c.deny.ttl, 86400);
	assert_string_equal(endpoint_str(&c.policy.listen, buf, sizeof(buf)), "[::1]:10040");
	assert_string_equal(c.policy.listen.text, "inet:[::1]:10040");
	assert_int_equal(c.policy.listen.salen, sizeof(struct sockaddr_in6));
	assert_string_equal(c.policy.socket_owner, "root:0");
	assert_int_equal(c.policy.owner_uid, 0);
	assert_int_equal(c.policy.owner_gid, 0);
	assert_int_equal(c.policy.socket_mode, 0600);
	assert_string_equal(c.policy.sender_logins, "/etc/relaygate/sender_logins");
	assert_string_equal(c.policy.audit_log, "/var/log/relaygate/audit.log");
	assert_string_equal(c.control.socket, "/tmp/rg.sock");
	assert_int_equal(c.control.socket_gid, 0);
	assert_int_equal(c.control.socket_mode, 0600);
	assert_false(c.metrics.listen.set);
	assert_string_equal(c.cluster.redis, "redis://:s3cret@[::1]:6380/3");
	assert_false(c.cluster.redis_unix);
	assert_string_equal(c.cluster.redis_host, "::1");
	assert_int_equal(c.cluster.redis_port, 6380);
	assert_int_equal(c.cluster.redis_db, 3);
	assert_string_equal(c.cluster.redis_password, "s3cret");
	rg_config_free(&c);

	expect_ok("[policy]\nlisten = unix:/var/spool/postfix/private/relaygate\nsocket_owner = root\n"
		  "[metrics]\nlisten = [::]:9100\n[cluster]\nredis = unix:/run/redis/redis.sock?db=2\n", &c);
	assert_true(c.policy.listen.is_unix);
	assert_string_equal(c.policy.listen.path, "/var/spool/postfix/private/relaygate");
	assert_int_equal(c.policy.owner_uid, pw->pw_uid);
	assert_int_equal(c.policy.owner_gid, pw->pw_gid);
	assert_string_equal(endpoint_str(&c.metrics.listen, buf, sizeof(buf)), "[::]:9100");
	assert_true(c.cluster.redis_unix);
	assert_string_equal(c.cluster.redis_path, "/run/redis/redis.sock");
	assert_int_equal(c.cluster.redis_db, 2);
	rg_config_free(&c);

	/* A password for the socket form, redis-py's spelling too. */
	expect_ok("[cluster]\nredis = unix::s3cret@/run/redis/redis.sock?db=4\n", &c);
	assert_true(c.cluster.redis_unix);
	assert_string_equal(c.cluster.redis_path, "/run/redis/redis.sock");
	assert_string_equal(c.cluster.redis_password, "s3cret");
	assert_int_equal(c.cluster.redis_db, 4);
	rg_config_free(&c);
	expect_ok("[cluster]\nredis = unix://default:pa:ss@/run/redis.sock\n", &c);
	assert_string_equal(c.cluster.redis_path, "/run/redis.sock");
	assert_string_equal(c.cluster.redis_password, "pa:ss");
	assert_int_equal(c.cluster.redis_db, 0);
	rg_config_free(&c);
	/* '@' in a password: the last one before the host or path ends it. */
	expect_ok("[cluster]\nredis = redis://:p@ss@redis.example.net:6380/1\n", &c);
	assert_string_equal(c.cluster.redis_host, "redis.example.net");
	assert_string_equal(c.cluster.redis_password, "p@ss");
	rg_config_free(&c);
	expect_ok("[cluster]\nredis = unix::p@ss@/run/redis.sock\n", &c);
	assert_string_equal(c.cluster.redis_password, "p@ss");
	rg_config_free(&c);
	expect_ok("[cluster]\nredis = unix:///run/redis.sock\n", &c);
	assert_string_equal(c.cluster.redis_path, "/run/redis.sock");
	assert_string_equal(c.cluster.redis_password, "");
	rg_config_free(&c);

	expect_ok("[cluster]\nredis = redis://redis.example.net\n", &c);
	assert_string_equal(c.cluster.redis_host, "redis.example.net");
	assert_int_equal(c.cluster.redis_port, 6379);
	assert_int_equal(c.cluster.redis_db, 0);
	assert_string_equal(c.cluster.redis_password, "");
	rg_config_free(&c);
}

static void test_sources(void **state)
{
	struct rg_config_file c;
	char buf[160];

	(void)state;
	expect_ok("[source.dovecot]\ntype = dovecot\npath = /var/log/dovecot.log\n"
		  "[source.smtp]\ntype = postfix-sasl\npath = /var/log/mail.log\nservice = smtp\n"
		  "[source.pipe]\ntype = courier\npath = -\n"
		  "[source.cyrus-1]\ntype = cyrus\npath = /run/cyrus.fifo\nservice = imap\n"
		  "[source.webmail]\ntype = regex\npath = /var/log/webmail.log\n"
		  "match = ^\\S+ webmail: ok (?<user>\\S+) (?<ip>\\S+)$ ; a comment\n"
		  "failure = ^\\S+ webmail: bad (?<ip>\\S+)$\nservice = other\n"
		  "[source.push]\ntype = dovecot-auth-policy\nlisten = 127.0.0.1:8088\n", &c);
	assert_int_equal(c.n_sources, 6);
	assert_string_equal(c.sources[0].name, "dovecot");
	assert_int_equal(c.sources[0].type, RG_SOURCE_DOVECOT);
	assert_string_equal(c.sources[0].path, "/var/log/dovecot.log");
	assert_int_equal(c.sources[0].service, RG_SERVICE_NONE);
	assert_int_equal(c.sources[0].line, 1);
	assert_null(c.sources[0].match);
	assert_int_equal(c.sources[1].type, RG_SOURCE_POSTFIX_SASL);
	assert_int_equal(c.sources[1].service, RG_SERVICE_SMTP);
	assert_string_equal(c.sources[2].path, "-");
	assert_int_equal(c.sources[2].type, RG_SOURCE_COURIER);
	assert_string_equal(c.sources[3].name, "cyrus-1");
	assert_int_equal(c.sources[3].service, RG_SERVICE_IMAP);
	assert_int_equal(c.sources[4].type, RG_SOURCE_REGEX);
	assert_string_equal(c.sources[4].match, "^\\S+ webmail: ok (?<user>\\S+) (?<ip>\\S+)$");
	assert_string_equal(c.sources[4].failure, "^\\S+ webmail: bad (?<ip>\\S+)$");
	assert_int_equal(c.sources[4].service, RG_SERVICE_OTHER);
	assert_int_equal(c.sources[5].type, RG_SOURCE_DOVECOT_AUTH_POLICY);
	assert_false(rg_source_is_log(c.sources[5].type));
	assert_true(rg_source_is_log(c.sources[4].type));
	assert_string_equal(endpoint_str(&c.sources[5].listen, buf, sizeof(buf)), "127.0.0.1:8088");
	assert_int_equal(c.sources[5].line, 21);
	assert_string_equal(rg_source_type_name(c.sources[5].type), "dovecot-auth-policy");
	assert_string_equal(rg_source_type_name(RG_SOURCE_POSTFIX_SASL), "postfix-sasl");
	assert_string_equal(rg_source_type_name(0), "unknown");
	rg_config_free(&c);
}

/* inih's process-wide settings are back as they were after a load. */
static void test_inih_settings_restored(void **state)
{
	struct rg_config_file c;
	char err[512];
	const bool multi = ini_allow_multiline, stop = ini_stop_on_first_error;
	const int max = ini_max_line;

	(void)state;
	expect_ok("[gate]\nmode = tc\n", &c);
	rg_config_free(&c);
	assert_int_equal(load("[gate]\nmode = x\n", &c, err, sizeof(err)), -1);
	assert_int_equal(ini_allow_multiline, multi);
	assert_int_equal(ini_stop_on_first_error, stop);
	assert_int_equal(ini_max_line, max);
	/* Continuation lines are off: an indented line is a key of its own. */
	assert_int_equal(load("[gate]\nmode = xdp\n  tc\n", &c, err, sizeof(err)), -1);
	assert_string_equal(err, "t.conf:3: expected \"[section]\" or \"key = value\"");
}

static void load_file_ok(const char *rel, struct rg_config_file *c)
{
	char path[PATH_MAX + 64], err[PATH_MAX + 256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	if (rg_config_load(path, c, err, sizeof(err)))
		fail_msg("%s", err);
}

/* SPEC.md's example config, verbatim. */
static void test_spec_example(void **state)
{
	struct rg_config_file c;
	char txt[RG_ADDRSTRLEN], buf[160];
	struct passwd *pw = getpwnam("postfix");

	(void)state;
	if (!pw)
		skip();
	load_file_ok("tests/fixtures/config/spec-example.conf", &c);
	assert_int_equal(c.gate.n_ifaces, 1);
	assert_string_equal(c.gate.ifaces[0], "eth0");
	assert_int_equal(c.gate.mode, RG_MODE_XDP);
	assert_int_equal(c.gate.n_ports, 2);
	assert_false(c.gate.reject_rst);
	assert_int_equal(c.trust.n_subnets, 2);
	assert_string_equal(rg_cidr_str(&c.trust.subnets[1].addr, c.trust.subnets[1].prefixlen, txt,
					sizeof(txt)), "2001:db8:1::/48");
	assert_string_equal(c.trust.ifaces[0], "wg0");
	assert_int_equal(c.n_sources, 1);
	assert_string_equal(c.sources[0].name, "dovecot");
	assert_string_equal(c.sources[0].path, "/var/log/mail.log");
	assert_true(c.policy.listen.is_unix);
	assert_string_equal(c.policy.listen.path, "/var/spool/postfix/private/relaygate");
	assert_int_equal(c.policy.owner_uid, pw->pw_uid);
	assert_string_equal(c.policy.sender_logins, "/etc/relaygate/sender_logins");
	assert_string_equal(endpoint_str(&c.metrics.listen, buf, sizeof(buf)), "127.0.0.1:9469");
	assert_string_equal(c.cluster.redis_host, "127.0.0.1");
	assert_int_equal(c.cluster.redis_port, 6379);
	rg_config_free(&c);
}

/* The commented sample config that make install ships. */
static void test_sample_config(void **state)
{
	struct rg_config_file c;

	(void)state;
	load_file_ok("etc/relaygate.conf", &c);
	assert_true(c.n_sources >= 1);
	assert_int_equal(c.gate.n_ports, 2);
	rg_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_failure_leaves_out_alone),
		cmocka_unit_test(test_file_errors),
		cmocka_unit_test(test_line_errors),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_lists_and_syntax),
		cmocka_unit_test(test_sections),
		cmocka_unit_test(test_sources),
		cmocka_unit_test(test_inih_settings_restored),
		cmocka_unit_test(test_spec_example),
		cmocka_unit_test(test_sample_config),
	};

	if (find_root()) {
		fprintf(stderr, "test_config: tests/fixtures/config not found\n");
		return 1;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
