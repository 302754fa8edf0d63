// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target: the config parser. Any input either loads into a
 * config that satisfies the documented invariants or fails with one line
 * naming the file; nothing crashes, leaks or hangs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "config.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void check_str(const char *s, size_t size)
{
	CHECK(memchr(s, '\0', size) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_config_file c;
	char err[512];
	size_t i;

	memset(err, 'x', sizeof(err));
	if (rg_config_load_string((const char *)data, size, "fuzz.conf", &c, err, sizeof(err))) {
		/* One line, naming the file. */
		check_str(err, sizeof(err));
		CHECK(!strncmp(err, "fuzz.conf", 9));
		CHECK(!strchr(err, '\n'));
		return 0;
	}
	CHECK(c.gate.n_ports >= 1 && c.gate.n_ports <= RG_CONFIG_MAX_PORTS);
	for (i = 0; i < c.gate.n_ports; i++)
		CHECK(c.gate.ports[i] != 0);
	CHECK(c.gate.n_ifaces <= RG_CONFIG_MAX_IFACES && c.trust.n_ifaces <= RG_CONFIG_MAX_IFACES);
	for (i = 0; i < c.gate.n_ifaces; i++)
		CHECK(c.gate.ifaces[i][0] && strlen(c.gate.ifaces[i]) < IF_NAMESIZE);
	CHECK(c.gate.pin_dir[0] == '/');
	CHECK(c.trust.n_subnets <= RG_CONFIG_MAX_SUBNETS);
	for (i = 0; i < c.trust.n_subnets; i++) {
		const struct rg_cidr *s = &c.trust.subnets[i];

		CHECK(s->addr.family == RG_AF_INET || s->addr.family == RG_AF_INET6);
		CHECK(s->prefixlen <= (s->addr.family == RG_AF_INET ? 32U : 128U));
	}
	CHECK(c.grants.ttl >= 1 && c.deny.within >= 1 && c.deny.ttl >= 1);
	CHECK(c.grants.max >= 1 && c.grants.max <= RG_GRANTS_MAX_LIMIT);
	CHECK(c.grants.ipv4_prefix >= RG_V4_PREFIX_MIN && c.grants.ipv4_prefix <= 32);
	CHECK(c.grants.ipv6_prefix >= RG_V6_PREFIX_MIN && c.grants.ipv6_prefix <= 128);
	CHECK(c.n_sources <= RG_CONFIG_MAX_SOURCES);
	for (i = 0; i < c.n_sources; i++) {
		const struct rg_source_cfg *s = &c.sources[i];

		CHECK(s->name[0]);
		if (rg_source_is_log(s->type)) {
			CHECK(s->path[0] == '/' || !strcmp(s->path, "-"));
			CHECK(!s->listen.set);
			CHECK((s->type == RG_SOURCE_REGEX) == (s->match || s->failure));
		} else {
			CHECK(s->type == RG_SOURCE_DOVECOT_AUTH_POLICY);
			CHECK(s->listen.set && !s->listen.is_unix && !s->path[0]);
		}
	}
	CHECK(c.control.socket[0] == '/');
	CHECK(c.control.socket_mode <= 0777 && c.policy.socket_mode <= 0777);
	if (c.policy.listen.set && c.policy.listen.is_unix)
		CHECK(c.policy.listen.path[0] == '/');
	rg_config_free(&c);
	return 0;
}
