// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target: every log-line preset. The first input byte picks the
 * preset (dovecot, postfix-sasl, courier, cyrus, or a custom regex pair),
 * the rest is the line. An event always carries a client address and a
 * printable user name; a rejection always a reason.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "presets.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

#define NPRESETS (RG_PRESET_MAX - RG_PRESET_DOVECOT)

static struct rg_preset *presets[NPRESETS];

static struct rg_preset *get(unsigned i)
{
	char err[256];

	if (!presets[i]) {
		enum rg_preset_type t = (enum rg_preset_type)(RG_PRESET_DOVECOT + i);

		if (t == RG_PRESET_REGEX)
			presets[i] = rg_preset_new(t,
				"(?:\\S+ +\\d+ [\\d:]+ \\S+ )?app(?:\\[\\d+\\])?: ok (?<user>\\S+) from (?<ip>\\S+)(?: via (?<service>\\w+))?$",
				"(?:\\S+ +\\d+ [\\d:]+ \\S+ )?app(?:\\[\\d+\\])?: failed(?: (?<user>\\S+))? from (?<ip>\\S+)$",
				err, sizeof(err));
		else
			presets[i] = rg_preset_new(t, NULL, NULL, err, sizeof(err));
		CHECK(presets[i]);
	}
	return presets[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rg_auth_event ev;
	struct rg_preset *p;
	size_t i, n;
	int rc;

	if (!size)
		return 0;
	p = get(data[0] % NPRESETS);
	memset(&ev, 0x5a, sizeof(ev));
	rc = rg_preset_parse(p, (const char *)data + 1, size - 1, &ev);
	CHECK(rc >= -1 && rc <= 1);
	if (rc == 1) {
		CHECK(ev.kind == RG_EV_LOGIN || ev.kind == RG_EV_FAILURE);
		CHECK(ev.addr.family == RG_AF_INET || ev.addr.family == RG_AF_INET6);
		CHECK(ev.origin == RG_ORIGIN_LOG && ev.source == NULL);
		CHECK((unsigned)ev.service < RG_SERVICE_MAX);
		n = strnlen(ev.user, sizeof(ev.user));
		CHECK(n < sizeof(ev.user));
		CHECK(ev.kind == RG_EV_FAILURE || n > 0);
		for (i = 0; i < n; i++)
			CHECK((unsigned char)ev.user[i] >= 0x20 && ev.user[i] != 0x7f);
	} else if (rc < 0) {
		CHECK(rg_preset_why(p)[0] != '\0');
	}
	return 0;
}
