// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer target for the control socket protocol, two ways:
 *  1. the request parser: whatever it accepts is a sane event (known kind,
 *     IPv4/IPv6 address, 1..255 printable user bytes) that prints back to a
 *     request parsing to the same event; a refusal always has a reason;
 *  2. the server: the input is written to a real connection of a real
 *     server (then the client shuts its side); every reply must be a whole
 *     "OK" or "ERR <printable reason>" line, never more replies than
 *     request lines, and the server must close the connection.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "cidr.h"
#include "control.h"
#include "log.h"

static void check(int cond)
{
	if (!cond)
		abort();
}

static const char *const verbs[] = { [RG_EV_LOGIN] = "LOGIN", [RG_EV_FAILURE] = "FAILURE" };
static const char *const svcs[] = { "", "pop3", "imap", "smtp", "other" };

static void check_parser(const uint8_t *data, size_t size)
{
	struct rg_auth_event ev, ev2;
	char line[1024], a[RG_ADDRSTRLEN];
	const char *why = NULL;
	size_t ul;
	int n;

	if (rg_control_parse((const char *)data, size, &ev, &why) < 0) {
		check(why && *why);
		return;
	}
	check(ev.kind == RG_EV_LOGIN || ev.kind == RG_EV_FAILURE);
	check(ev.addr.family == RG_AF_INET || ev.addr.family == RG_AF_INET6);
	check(rg_addr_not_client(&ev.addr) == RG_CLIENT_OK);
	check(ev.origin == RG_ORIGIN_CONTROL);
	check(ev.service < RG_SERVICE_MAX);
	ul = strnlen(ev.user, sizeof(ev.user));
	check(ul >= 1 && ul <= 255);
	for (size_t i = 0; i < ul; i++)
		check((unsigned char)ev.user[i] > 0x20 && ev.user[i] != 0x7f);
	n = snprintf(line, sizeof(line), "%s %s %s%s%s", verbs[ev.kind],
		     rg_addr_str(&ev.addr, a, sizeof(a)), ev.user,
		     ev.service ? " " : "", ev.service ? svcs[ev.service] : "");
	check(n > 0 && (size_t)n < sizeof(line));
	check(rg_control_parse(line, (size_t)n, &ev2, &why) == 0);
	check(ev2.kind == ev.kind && ev2.service == ev.service);
	check(!memcmp(&ev2.addr, &ev.addr, sizeof(ev.addr)));
	check(!strcmp(ev2.user, ev.user));
}

static struct rg_control *srv;
static char dir[64], sock[96];

static int on_event(const struct rg_auth_event *ev, void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	if (!strcmp(ev->user, "fail")) {
		snprintf(err, errlen, "refused \"%s\"", ev->user);
		return -1;
	}
	return 0;
}

static void cleanup(void)
{
	rg_control_close(srv);
	rmdir(dir);
}

static void setup(void)
{
	struct rg_control_opts o = { .group = "0", .rate = 1000000, .burst = 1000000,
				     .max_clients = 4 };
	char err[256];

	rg_log_init("fuzz_control", false, RG_LOG_ERR);
	snprintf(dir, sizeof(dir), "/tmp/rgfuzz-ctl-%d", (int)getpid());
	snprintf(sock, sizeof(sock), "%s/control.sock", dir);
	o.path = sock;
	if (rg_control_open(&srv, &o, on_event, NULL, err, sizeof(err))) {
		fprintf(stderr, "fuzz_control: %s\n", err);
		abort();
	}
	atexit(cleanup);
}

static void check_server(const uint8_t *data, size_t size)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	static char out[1 << 16];
	size_t off = 0, have = 0, lines = 1;
	bool eof = false, shut = false;
	int fd;

	if (!srv)
		setup();
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	strcpy(sun.sun_path, sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	check(fd >= 0);
	check(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
	for (int round = 0; round < 20000 && !eof; round++) {
		ssize_t r;

		if (off < size) {
			r = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (r > 0)
				off += r;
			else if (errno == EPIPE || errno == ECONNRESET)
				off = size;    /* the server closed on garbage */
		}
		if (off == size && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		rg_control_dispatch(srv);
		r = read(fd, out + have, sizeof(out) - 1 - have);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			eof = true;
		else if (r > 0)
			have += r;
		check(have < sizeof(out) - 1);
		if (r < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = rg_control_fd(srv), .events = POLLIN };

			poll(&p, 1, 1);
		}
	}
	close(fd);
	check(eof);                      /* the server always ends it */
	/* Let it notice the close before the next input. */
	rg_control_dispatch(srv);
	out[have] = '\0';
	/* Whole reply lines only, each OK or ERR <printable>. */
	check(have == 0 || out[have - 1] == '\n');
	for (char *p = out, *nl; p < out + have; p = nl + 1) {
		nl = strchr(p, '\n');
		check(nl != NULL);
		*nl = '\0';
		check(!strcmp(p, "OK") || (!strncmp(p, "ERR ", 4) && p[4]));
		for (char *q = p; *q; q++)
			check((unsigned char)*q >= 0x20 && (unsigned char)*q < 0x7f);
		check(lines-- > 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_parser(data, size);
	check_server(data, size);
	return 0;
}
