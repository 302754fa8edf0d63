/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Logging for relaygatectl and relaygated: stderr or syslog, one line each. */
#ifndef RG_LOG_H
#define RG_LOG_H

#include <stdbool.h>

enum rg_log_level { RG_LOG_ERR, RG_LOG_WARN, RG_LOG_INFO, RG_LOG_DEBUG };

/* ident: program name prefixed to stderr lines and used for syslog. */
void rg_log_init(const char *ident, bool use_syslog, enum rg_log_level max);
void rg_log(enum rg_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Route libbpf's messages into rg_log (warnings and errors; debug with -v). */
void rg_log_libbpf(bool verbose);

#define rg_err(...)   rg_log(RG_LOG_ERR, __VA_ARGS__)
#define rg_warn(...)  rg_log(RG_LOG_WARN, __VA_ARGS__)
#define rg_info(...)  rg_log(RG_LOG_INFO, __VA_ARGS__)
#define rg_debug(...) rg_log(RG_LOG_DEBUG, __VA_ARGS__)

#endif
