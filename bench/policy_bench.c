// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * Policy service benchmark: requests per second and latency percentiles
 * with N concurrent Postfix-like clients (default 64), each a connection
 * with one request in flight (send, wait for the answer, send the next),
 * as smtpd processes use the service.
 *
 * The server runs as the daemon runs it: rg_policy_fd() in an epoll loop in
 * one thread, the real lookup (rg_policy_lookup_maps) over BPF maps created
 * for the run (unpinned: trusted prefixes, grants, deny list, config),
 * sender_logins loaded, every OK and REJECT written to an audit file.
 * The request mix: 50% granted clients (half of them sending as someone
 * else: REJECT), 25% trusted, 25% unknown (DUNNO).
 *
 * Build (after `make OUT=build`):
 *   gcc -O2 -g -D_GNU_SOURCE -Imaps -Iuser bench/policy_bench.c \
 *       build/librelaygate.a -lbpf -lelf -lz -lpcre2-8 -linih -lhiredis \
 *       -lmicrohttpd -lm -o build/policy_bench
 * Run (root, for the BPF maps; --fake uses an in-memory lookup instead):
 *   build/policy_bench [-c CLIENTS] [-t CLIENT_THREADS] [-d SECONDS] [--fake] [--nice N]
 * --nice N runs the server thread at that nice value (as a daemon started
 * with Nice=N would), the clients at the default.
 * Exit status 0 when the targets (>= 50,000 req/s, p99 <= 2 ms) are met.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <bpf/bpf.h>
#include "audit.h"
#include "cidr.h"
#include "gatemaps.h"
#include "log.h"
#include "policy.h"
#include "senderlogins.h"

#define HIST_US 100000            /* 1 us buckets up to 100 ms */
#define NGRANTS 10000
#define NTRUST  1000

static volatile int phase;        /* 0 warmup, 1 measure, 2 stop */
static int server_nice;            /* --nice N: the server thread's nice value */

static double server_cpu;         /* s of CPU the server thread used */

static double thread_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_THREAD, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
static char sock_addr[100];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* ---- requests ---- */

#define NVARIANTS 64
static char *reqs[NVARIANTS];
static size_t reqlen[NVARIANTS];

static void build_requests(void)
{
	int i;

	for (i = 0; i < NVARIANTS; i++) {
		char client[64], sender[64], buf[1024];
		int kind = i % 8;   /* 0-3 granted, 4-5 trusted, 6-7 unknown */
		int g = (i * 37) % NGRANTS;

		if (kind < 4) {
			snprintf(client, sizeof(client), "198.%d.%d.%d", 18 + (g >> 16),
				 (g >> 8) & 255, g & 255);
			/* odd variants send as another user: REJECT */
			snprintf(sender, sizeof(sender), "user%d@example.org", kind & 1 ? g + 1 : g);
		} else if (kind < 6) {
			snprintf(client, sizeof(client), "172.%d.%d.9", 16 + i % 16, i);
			snprintf(sender, sizeof(sender), "office@example.org");
		} else {
			snprintf(client, sizeof(client), "203.0.113.%d", i);
			snprintf(sender, sizeof(sender), "spam@example.com");
		}
		reqlen[i] = snprintf(buf, sizeof(buf),
			"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
			"helo_name=client.example\nqueue_id=\nsender=%s\nrecipient=bob@example.net\n"
			"recipient_count=0\nclient_address=%s\nclient_name=unknown\n"
			"reverse_client_name=unknown\ninstance=1a2.6a2b.%d\nsasl_method=\n"
			"sasl_username=\nsasl_sender=\nsize=0\nccert_subject=\nccert_issuer=\n"
			"ccert_fingerprint=\nencryption_protocol=TLSv1.3\n"
			"encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\n"
			"etrn_domain=\nstress=\nclient_port=40112\npolicy_context=\n"
			"server_address=192.0.2.25\nserver_port=587\n\n", sender, client, i);
		reqs[i] = strdup(buf);
	}
}

/* ---- decision sources ---- */

static int fake_lookup(void *ctx, const struct rg_addr *a, struct rg_policy_auth *out)
{
	(void)ctx;
	if (a->family == RG_AF_INET && a->addr[0] == 198) {
		int g = ((a->addr[1] - 18) << 16) | (a->addr[2] << 8) | a->addr[3];

		out->kind = RG_POLICY_GRANT;
		snprintf(out->user, sizeof(out->user), "user%d", g);
		out->service = RG_SERVICE_POP3;
		out->granted = time(NULL) - 60;
	} else if (a->family == RG_AF_INET && a->addr[0] == 172) {
		out->kind = RG_POLICY_TRUSTED;
		snprintf(out->subnet, sizeof(out->subnet), "172.%d.0.0/16", a->addr[1]);
	}
	return 0;
}

static int make_maps(struct rg_gate *g)
{
	LIBBPF_OPTS(bpf_map_create_opts, lpm, .map_flags = BPF_F_NO_PREALLOC);
	struct rg_config cfg = { .abi_version = RG_ABI_VERSION, .v4_prefix = 32, .v6_prefix = 64 };
	struct timespec ts;
	uint64_t boot;
	__u32 zero = 0, one = 1;
	int i;

	memset(g, 0, sizeof(*g));
	g->config_fd = g->ports_fd = g->tiface_fd = g->trust4_fd = g->trust6_fd = -1;
	g->grants_fd = g->deny_fd = g->flows_fd = g->stats_fd = g->events_fd = g->lock_fd = -1;
	g->config_fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "b_config", 4, sizeof(cfg), 1, NULL);
	g->trust4_fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "b_trust4", sizeof(struct rg_lpm4),
				      4, 65536, &lpm);
	g->trust6_fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, "b_trust6", sizeof(struct rg_lpm6),
				      4, 65536, &lpm);
	g->grants_fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "b_grants", sizeof(struct rg_addr),
				      sizeof(struct rg_grant), 262144, NULL);
	g->deny_fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "b_deny", sizeof(struct rg_addr),
				    sizeof(struct rg_deny), 65536, NULL);
	if (g->config_fd < 0 || g->trust4_fd < 0 || g->trust6_fd < 0 || g->grants_fd < 0 ||
	    g->deny_fd < 0) {
		fprintf(stderr, "policy_bench: cannot create BPF maps: %s (run as root, or --fake)\n",
			strerror(errno));
		return -1;
	}
	bpf_map_update_elem(g->config_fd, &zero, &cfg, 0);
	/* trusted: 172.16.0.0/12 as 16 /16s plus NTRUST /24 elsewhere */
	for (i = 0; i < 16; i++) {
		struct rg_lpm4 k = { .prefixlen = 16, .addr = { 172, 16 + i, 0, 0 } };

		bpf_map_update_elem(g->trust4_fd, &k, &one, 0);
	}
	for (i = 0; i < NTRUST; i++) {
		struct rg_lpm4 k = { .prefixlen = 24, .addr = { 100, 64 + (i >> 8), i & 255, 0 } };

		bpf_map_update_elem(g->trust4_fd, &k, &one, 0);
	}
	clock_gettime(CLOCK_BOOTTIME, &ts);
	boot = (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
	for (i = 0; i < NGRANTS; i++) {
		struct rg_addr a = { .family = RG_AF_INET,
				     .addr = { 198, 18 + (i >> 16), (i >> 8) & 255, i & 255 } };
		struct rg_grant gr = { .expires = boot + 3600000000000ULL, .granted = boot - 60000000000ULL,
				       .origin = RG_ORIGIN_LOG, .service = RG_SERVICE_POP3 };

		snprintf(gr.user, sizeof(gr.user), "user%d", i);
		if (bpf_map_update_elem(g->grants_fd, &a, &gr, 0)) {
			fprintf(stderr, "policy_bench: grant update: %s\n", strerror(errno));
			return -1;
		}
	}
	return 0;
}

static struct rg_senderlogins *make_senderlogins(void)
{
	size_t cap = NGRANTS * 64, o = 0;
	char *text = malloc(cap), err[256];
	struct rg_senderlogins *sl;
	int i;

	for (i = 0; i < NGRANTS; i++)
		o += snprintf(text + o, cap - o, "user%d: user%d@example.org, @u%d.example\n", i, i, i);
	sl = rg_senderlogins_parse(text, o, "bench", err, sizeof(err));
	if (!sl)
		fprintf(stderr, "policy_bench: %s\n", err);
	free(text);
	return sl;
}

/* ---- server thread ---- */

struct server {
	struct rg_policy *p;
	int stop[2];
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct epoll_event ev = { .events = EPOLLIN }, got[4];
	int ep = epoll_create1(0), n, i;

	if (server_nice)
		setpriority(PRIO_PROCESS, gettid(), server_nice);
	ev.data.u32 = 1;
	epoll_ctl(ep, EPOLL_CTL_ADD, rg_policy_fd(s->p), &ev);
	ev.data.u32 = 2;
	epoll_ctl(ep, EPOLL_CTL_ADD, s->stop[0], &ev);
	for (;;) {
		n = epoll_wait(ep, got, 4, -1);
		for (i = 0; i < n; i++) {
			if (got[i].data.u32 == 2) {
				server_cpu = thread_cpu();
				close(ep);
				return NULL;
			}
			rg_policy_process(s->p);
		}
	}
}

/* ---- client threads ---- */

struct cconn {
	int fd;
	uint64_t sent;
	unsigned next;
	size_t got;
	char buf[256];
};

struct client {
	pthread_t th;
	int nconn, id;
	uint64_t done, errors;
	double cpu;
	uint64_t *hist;      /* HIST_US + 1 buckets */
};

static int cconnect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		perror("policy_bench: connect");
		exit(1);
	}
	return fd;
}

static void csend(struct cconn *c)
{
	unsigned v = c->next++ % NVARIANTS;
	size_t o = 0;

	c->sent = now_ns();
	while (o < reqlen[v]) {
		ssize_t w = send(c->fd, reqs[v] + o, reqlen[v] - o, MSG_NOSIGNAL);

		if (w <= 0) {
			perror("policy_bench: send");
			exit(1);
		}
		o += w;
	}
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct cconn *cs = calloc(cl->nconn, sizeof(*cs));
	struct epoll_event ev = { .events = EPOLLIN }, got[64];
	int ep = epoll_create1(0), i, n;

	for (i = 0; i < cl->nconn; i++) {
		cs[i].fd = cconnect();
		cs[i].next = cl->id * 7 + i;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
		csend(&cs[i]);
	}
	while (phase < 2) {
		n = epoll_wait(ep, got, 64, 100);
		for (i = 0; i < n; i++) {
			struct cconn *c = got[i].data.ptr;
			ssize_t r = recv(c->fd, c->buf + c->got, sizeof(c->buf) - 1 - c->got, 0);

			if (r <= 0) {
				fprintf(stderr, "policy_bench: server closed a connection\n");
				exit(1);
			}
			c->got += r;
			if (c->got < 2 || c->buf[c->got - 1] != '\n' || c->buf[c->got - 2] != '\n')
				continue;
			if (phase == 1) {
				uint64_t us = (now_ns() - c->sent) / 1000;

				cl->hist[us < HIST_US ? us : HIST_US]++;
				cl->done++;
				if (strncmp(c->buf, "action=", 7))
					cl->errors++;
			}
			c->got = 0;
			csend(c);
		}
	}
	cl->cpu = thread_cpu();
	for (i = 0; i < cl->nconn; i++)
		close(cs[i].fd);
	free(cs);
	close(ep);
	return NULL;
}

static double pct(const uint64_t *h, uint64_t total, double p)
{
	uint64_t want = (uint64_t)(total * p), acc = 0;
	int i;

	for (i = 0; i <= HIST_US; i++) {
		acc += h[i];
		if (acc > want)
			return i / 1000.0;
	}
	return HIST_US / 1000.0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "clients", required_argument, NULL, 'c' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "fake", no_argument, NULL, 'f' },
		{ "nice", required_argument, NULL, 'n' },
		{ 0 },
	};
	int clients = 64, threads = 1, duration = 5, opt, i;
	bool fake = false;
	struct rg_policy_opts po = { 0 };
	struct rg_policy_maps maps;
	struct rg_policy_stats st;
	struct rg_senderlogins *sl;
	struct rg_audit *au;
	struct rg_gate gate;
	struct server srv;
	pthread_t sth;
	struct client *cl;
	uint64_t *hist, total = 0, errors = 0, maxus = 0, t0, t1;
	char dir[] = "/tmp/rg-bench-XXXXXX", apath[128], addr[160], err[300];
	double rate, p99, client_cpu = 0;

	while ((opt = getopt_long(argc, argv, "c:t:d:fn:", lo, NULL)) != -1) {
		switch (opt) {
		case 'c': clients = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'd': duration = atoi(optarg); break;
		case 'f': fake = true; break;
		case 'n': server_nice = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: policy_bench [-c CLIENTS] [-t THREADS] [-d SECONDS] [--fake] [--nice N]\n");
			return 2;
		}
	}
	if (clients < 1 || threads < 1 || threads > clients || duration < 1) {
		fprintf(stderr, "policy_bench: bad -c/-t/-d\n");
		return 2;
	}
	rg_log_init("policy_bench", false, RG_LOG_WARN);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock_addr, sizeof(sock_addr), "%s/policy.sock", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock_addr);
	snprintf(apath, sizeof(apath), "%s/audit.log", dir);
	build_requests();
	sl = make_senderlogins();
	au = rg_audit_open(apath, err, sizeof(err));
	if (!sl || !au) {
		fprintf(stderr, "policy_bench: %s\n", err);
		return 1;
	}
	po.listen = addr;
	po.sender_logins = sl;
	po.audit = au;
	if (fake) {
		po.lookup = fake_lookup;
	} else {
		if (make_maps(&gate))
			return 1;
		rg_policy_maps_init(&maps, &gate);
		po.lookup = rg_policy_lookup_maps;
		po.lookup_ctx = &maps;
	}
	srv.p = rg_policy_new(&po, err, sizeof(err));
	if (!srv.p) {
		fprintf(stderr, "policy_bench: %s\n", err);
		return 1;
	}
	if (pipe(srv.stop) || pthread_create(&sth, NULL, server_main, &srv))
		return 1;

	cl = calloc(threads, sizeof(*cl));
	for (i = 0; i < threads; i++) {
		cl[i].id = i;
		cl[i].nconn = clients / threads + (i < clients % threads);
		cl[i].hist = calloc(HIST_US + 1, sizeof(uint64_t));
		pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
	}
	sleep(1);                          /* warm up */
	t0 = now_ns();
	phase = 1;
	sleep(duration);
	phase = 2;
	t1 = now_ns();
	hist = calloc(HIST_US + 1, sizeof(uint64_t));
	for (i = 0; i < threads; i++) {
		int b;

		pthread_join(cl[i].th, NULL);
		total += cl[i].done;
		client_cpu += cl[i].cpu;
		errors += cl[i].errors;
		for (b = 0; b <= HIST_US; b++) {
			hist[b] += cl[i].hist[b];
			if (cl[i].hist[b] && (uint64_t)b > maxus)
				maxus = b;
		}
		free(cl[i].hist);
	}
	if (write(srv.stop[1], "x", 1) != 1)
		return 1;
	pthread_join(sth, NULL);
	rg_policy_stats(srv.p, &st);
	rate = total / ((t1 - t0) / 1e9);
	p99 = pct(hist, total, 0.99);
	printf("policy_bench: %d clients (%d client thread%s), %d s, %s lookup, sender_logins %zu users, audit to file\n",
	       clients, threads, threads > 1 ? "s" : "", duration,
	       fake ? "in-memory" : "BPF map", rg_senderlogins_users(sl));
	printf("requests: %llu in %.2f s = %.0f req/s (server total: ok %llu, reject %llu, dunno %llu, malformed %llu)\n",
	       (unsigned long long)total, (t1 - t0) / 1e9, rate, (unsigned long long)st.ok,
	       (unsigned long long)st.reject, (unsigned long long)st.dunno,
	       (unsigned long long)st.malformed);
	printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
	       pct(hist, total, 0.5), pct(hist, total, 0.9), p99, pct(hist, total, 0.999),
	       maxus / 1000.0);
	printf("targets: >= 50000 req/s %s, p99 <= 2 ms %s\n", rate >= 50000 ? "PASS" : "FAIL",
	       p99 <= 2.0 ? "PASS" : "FAIL");
	printf("cpu (whole run incl. 1 s warm-up): server thread %.2f s, client threads %.2f s\n",
	       server_cpu, client_cpu);
	if (st.requests)
		printf("server cpu per request: %.2f us (one core's worth: %.0f req/s)\n",
		       server_cpu * 1e6 / st.requests, st.requests / server_cpu);
	if (errors)
		printf("errors: %llu bad replies\n", (unsigned long long)errors);

	rg_policy_free(srv.p);
	rg_audit_close(au);
	rg_senderlogins_free(sl);
	unlink(apath);
	rmdir(dir);
	return rate >= 50000 && p99 <= 2.0 && !errors && !st.malformed ? 0 : 1;
}
