/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The small shared part of relaygated's two HTTP servers (metrics, Dovecot
 * auth policy): parse a listen address and start a libmicrohttpd daemon on
 * its own thread with bounded connections, memory and time.
 */
#ifndef RG_HTTPD_H
#define RG_HTTPD_H

#include <stddef.h>
#include <sys/socket.h>
#include <microhttpd.h>

/* "127.0.0.1:9469", "[::1]:9469", "localhost:9469" is refused (give an
 * address). Port 0 lets the kernel pick. Returns 0, or -1 with a static
 * reason in *why. */
int rg_listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len,
		    const char **why);

/* Start MHD with its internal polling thread. what names the server in
 * errors ("metrics", "auth policy"). Returns the daemon or NULL with one
 * line in err. */
struct MHD_Daemon *rg_httpd_start(const char *what, const char *listen,
				  MHD_AccessHandlerCallback handler, void *cls,
				  MHD_RequestCompletedCallback done, void *done_cls,
				  char *err, size_t errlen);

/* The TCP port the daemon listens on (0 if unknown). */
unsigned rg_httpd_port(struct MHD_Daemon *d);

/* Queue a response with a copy of body and the given content type. */
enum MHD_Result rg_httpd_reply(struct MHD_Connection *con, unsigned status,
			       const char *content_type, const char *body, size_t len);

#endif
