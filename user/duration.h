/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Durations: "90s", "30m", "2h", "1d", or bare seconds. */
#ifndef RG_DURATION_H
#define RG_DURATION_H

#include <stdint.h>
#include <stddef.h>

/* Longest accepted: 3650 days. 0 is rejected by callers where it means nothing. */
#define RG_DURATION_MAX_SEC (3650ULL * 86400)

/* Returns 0 and *sec, or -1 with a static reason in *why. */
int rg_duration_parse(const char *s, uint64_t *sec, const char **why);
/* "1h30m", "45s", "0s". Returns buf. */
char *rg_duration_str(uint64_t sec, char *buf, size_t len);

#endif
