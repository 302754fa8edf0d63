// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <bpf/libbpf.h>
#include "log.h"

static const char *log_ident = "relaygate";
static bool log_syslog;
static enum rg_log_level log_max = RG_LOG_INFO;
static bool libbpf_verbose;

void rg_log_init(const char *ident, bool use_syslog, enum rg_log_level max)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_max = max;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static void vlog(enum rg_log_level lvl, const char *fmt, va_list ap)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

	if (lvl > log_max)
		return;
	if (log_syslog) {
		vsyslog(prio[lvl], fmt, ap);
		return;
	}
	/* one line, whole, from any thread */
	flockfile(stderr);
	fprintf(stderr, "%s: ", log_ident);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

void rg_log(enum rg_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char buf[1024];
	size_t n;

	if (level == LIBBPF_DEBUG && !libbpf_verbose)
		return 0;
	if (level == LIBBPF_INFO && !libbpf_verbose)
		return 0;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	/* Our own errors say what failed and why; libbpf's detail is for -v. */
	rg_log(libbpf_verbose ? RG_LOG_WARN : RG_LOG_DEBUG, "%s", buf);
	return 0;
}

void rg_log_libbpf(bool verbose)
{
	libbpf_verbose = verbose;
	libbpf_set_print(libbpf_print);
}
