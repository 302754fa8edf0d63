// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/* Listen-address parsing and libmicrohttpd start-up shared by metrics.c and
 * authpolicy.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "httpd.h"
#include "log.h"

#define RG_HTTPD_CONNECTIONS 32
#define RG_HTTPD_TIMEOUT_S   10
#define RG_HTTPD_MEMORY      (64 * 1024)

int rg_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		    const char **why)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *port;
	unsigned long p;
	char *end;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (!s || !*s) {
		*why = "empty listen address";
		return -1;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':') {
			*why = "expected [IPv6]:PORT";
			return -1;
		}
		hl = rb - s - 1;
		if (hl >= sizeof(host)) {
			*why = "address too long";
			return -1;
		}
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		port = rb + 2;
	} else {
		colon = strrchr(s, ':');
		if (!colon) {
			*why = "expected ADDRESS:PORT";
			return -1;
		}
		if (memchr(s, ':', colon - s)) {
			*why = "IPv6 addresses need brackets: [ADDRESS]:PORT";
			return -1;
		}
		hl = colon - s;
		if (hl >= sizeof(host)) {
			*why = "address too long";
			return -1;
		}
		memcpy(host, s, hl);
		host[hl] = '\0';
		port = colon + 1;
	}
	if (*port < '0' || *port > '9') {
		*why = "port must be a number 0..65535";
		return -1;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*end || errno || p > 65535) {
		*why = "port must be a number 0..65535";
		return -1;
	}
	if (s[0] == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
			*why = "not an IPv6 address";
			return -1;
		}
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
			*why = "not an IPv4 address";
			return -1;
		}
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof(*a4);
	}
	return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	size_t n;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	n = strlen(buf);
	while (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	rg_warn("%s http: %s", (const char *)cls, buf);
}

struct MHD_Daemon *rg_httpd_start(const char *what, const char *listen,
				  MHD_AccessHandlerCallback handler, void *cls,
				  MHD_RequestCompletedCallback done, void *done_cls,
				  char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	struct MHD_Daemon *d;
	const char *why;
	socklen_t len;

	if (rg_listen_parse(listen, &ss, &len, &why) < 0) {
		snprintf(err, errlen, "%s listen '%s': %s", what, listen ? listen : "", why);
		return NULL;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* The logger first: MHD logs options it parses after it to stderr. */
	d = MHD_start_daemon(flags, 0, NULL, NULL, handler, cls,
			     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, (void *)what,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)RG_HTTPD_CONNECTIONS,
			     MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)RG_HTTPD_CONNECTIONS,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)RG_HTTPD_TIMEOUT_S,
			     MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)RG_HTTPD_MEMORY,
			     MHD_OPTION_NOTIFY_COMPLETED, done, done_cls,
			     MHD_OPTION_END);
	if (!d) {
		int e = errno;

		snprintf(err, errlen, "%s listen %s: cannot start HTTP server%s%s", what, listen,
			 e ? ": " : "", e ? strerror(e) : "");
		return NULL;
	}
	return d;
}

unsigned rg_httpd_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

	return i ? i->port : 0;
}

enum MHD_Result rg_httpd_reply(struct MHD_Connection *con, unsigned status,
			       const char *content_type, const char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	ret = MHD_queue_response(con, status, r);
	MHD_destroy_response(r);
	return ret;
}
