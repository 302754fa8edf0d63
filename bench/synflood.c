// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * synflood: a bounded TCP SYN generator for the lab, and nothing else.
 *
 * It precomputes F frames (SYNs from distinct spoofed sources in
 * 198.18.0.0/15, RFC 2544's benchmarking range, random source ports, to
 * DST:DPORT) with correct checksums, then sends COUNT of them round-robin
 * through an AF_PACKET socket with sendmmsg(), optionally paced to RATE
 * packets per second, and stops at COUNT packets or SECONDS, whichever
 * comes first.
 *
 * Guard rails (it refuses to start otherwise):
 *  - it runs inside the lab namespace named by -N (rgb-..., which
 *    bench/lab.sh creates);
 *  - IFACE is a veth;
 *  - every source lies in 198.18.0.0/15 and DST in 10.0.0.0/8 (the lab's
 *    addresses), COUNT <= 100M and SECONDS <= 600.
 *
 * usage: synflood -N NETNS -i IFACE -d DST -m DMAC [-p DPORT] [-n COUNT] [-r PPS]
 *                 [-t SECONDS] [-f FRAMES] [-b BATCH] [-c CPU] [-s SRCNET]
 * Prints one line: sent=N seconds=S pps=P errors=E
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <net/if.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>

#include "pkt.h"

#define MAX_COUNT   100000000ull
#define MAX_SECONDS 600.0
#define MAX_FRAMES  (1 << 20)
#define MAX_BATCH   1024
#define FRAME_CAP   128

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "synflood: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
	struct timespec ts = { .tv_sec = (time_t)t, .tv_nsec = (long)((t - (time_t)t) * 1e9) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static uint64_t rng = 0x243f6a8885a308d3ull;

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

/*
 * We run inside the lab namespace the benchmark created: the named
 * namespace /run/netns/NAME (NAME starting with "rgb-", bench/lab.sh) must
 * be the one we are in. (PID 1's namespace cannot be read here, so "not the
 * initial one" is checked this way round.)
 */
static void check_netns(const char *name)
{
	struct stat self, lab;
	char path[256];

	if (!name || strncmp(name, "rgb-", 4) || strchr(name, '/'))
		die("give the lab namespace (-N rgb-...) this runs in");
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	if (stat("/proc/self/ns/net", &self))
		die("cannot tell our network namespace: %s", strerror(errno));
	if (stat(path, &lab))
		die("%s: %s", path, strerror(errno));
	if (self.st_ino != lab.st_ino || self.st_dev != lab.st_dev)
		die("not running inside %s: refusing", path);
}

static void check_veth(int fd, const char *ifname)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&di;
	if (ioctl(fd, SIOCETHTOOL, &ifr))
		die("%s: driver info: %s", ifname, strerror(errno));
	if (strcmp(di.driver, "veth"))
		die("%s is a %s device, not a veth: refusing", ifname, di.driver);
}

static bool in_net4(const uint8_t a[4], uint32_t net, unsigned plen)
{
	uint32_t v = (uint32_t)a[0] << 24 | a[1] << 16 | a[2] << 8 | a[3];
	uint32_t m = plen ? 0xffffffffu << (32 - plen) : 0;

	return (v & m) == (net & m);
}

static void parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int i;

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		die("bad MAC address %s", s);
	for (i = 0; i < 6; i++) {
		if (v[i] > 255)
			die("bad MAC address %s", s);
		mac[i] = (uint8_t)v[i];
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: synflood -N NETNS -i IFACE -d DST -m DMAC [-p DPORT] [-n COUNT] [-r PPS]\n"
		"                [-t SECONDS] [-f FRAMES] [-b BATCH] [-c CPU] [-s SRCNET]\n"
		"  SRCNET: spoofed sources, inside 198.18.0.0/15 (default 198.18.0.0/15)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *netns = NULL, *ifname = NULL, *dst = NULL, *dmac_s = NULL;
	const char *srcnet = "198.18.0.0/15";
	unsigned long long count = 1000000, sent = 0, errors = 0;
	double rate = 0, seconds = 60, t0, t1, next;
	unsigned nframes = 65536, batch = 64, dport = 587, splen;
	uint8_t smac[6], dmac[6], snet[4];
	struct sockaddr_ll sll;
	struct mmsghdr *msgs;
	struct iovec *iov;
	struct ifreq ifr;
	uint8_t *frames;
	size_t *lens;
	int c, fd, cpu = -1;
	unsigned i, pos = 0;
	char netbuf[64], *slash;

	while ((c = getopt(argc, argv, "N:i:d:m:p:n:r:t:f:b:c:s:")) != -1) {
		switch (c) {
		case 'N': netns = optarg; break;
		case 'i': ifname = optarg; break;
		case 'd': dst = optarg; break;
		case 'm': dmac_s = optarg; break;
		case 'p': dport = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'n': count = strtoull(optarg, NULL, 0); break;
		case 'r': rate = atof(optarg); break;
		case 't': seconds = atof(optarg); break;
		case 'f': nframes = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'b': batch = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'c': cpu = atoi(optarg); break;
		case 's': srcnet = optarg; break;
		default: usage();
		}
	}
	if (!ifname || !dst || !dmac_s || optind != argc)
		usage();
	if (!count || count > MAX_COUNT)
		die("count %llu: 1..%llu", count, MAX_COUNT);
	if (!(seconds > 0 && seconds <= MAX_SECONDS))
		die("seconds %g: more than 0, at most %g", seconds, MAX_SECONDS);
	if (rate < 0)
		die("rate %g: not negative", rate);
	if (!nframes || nframes > MAX_FRAMES || !batch || batch > MAX_BATCH || !dport ||
	    dport > 65535)
		die("frames 1..%u, batch 1..%u, port 1..65535", MAX_FRAMES, MAX_BATCH);

	/* Sources: a prefix inside 198.18.0.0/15. */
	snprintf(netbuf, sizeof(netbuf), "%s", srcnet);
	slash = strchr(netbuf, '/');
	if (!slash)
		die("source network %s: want ADDR/LEN", srcnet);
	*slash = '\0';
	splen = (unsigned)strtoul(slash + 1, NULL, 10);
	if (inet_pton(AF_INET, netbuf, snet) != 1 || splen < 15 || splen > 32 ||
	    !in_net4(snet, 0xc6120000u, 15))
		die("source network %s: must lie inside 198.18.0.0/15", srcnet);

	check_netns(netns);
	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		die("AF_PACKET socket: %s", strerror(errno));
	check_veth(fd, ifname);

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		die("%s: MAC address: %s", ifname, strerror(errno));
	memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
	parse_mac(dmac_s, dmac);

	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	sll.sll_protocol = 0;
	if (!sll.sll_ifindex)
		die("no interface %s", ifname);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind %s: %s", ifname, strerror(errno));
	{
		int one = 1;

		/* Straight to the driver, no qdisc: the sender's own cost stays low. */
		if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
			die("PACKET_QDISC_BYPASS: %s", strerror(errno));
	}
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);   /* 1 us: sleeps end on time */
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("pin to CPU %d: %s", cpu, strerror(errno));
	}

	frames = calloc(nframes, FRAME_CAP);
	lens = calloc(nframes, sizeof(*lens));
	if (!frames || !lens)
		die("out of memory");
	for (i = 0; i < nframes; i++) {
		uint32_t base = (uint32_t)snet[0] << 24 | snet[1] << 16 | snet[2] << 8 | snet[3];
		uint32_t hostmask = splen == 32 ? 0 : 0xffffffffu >> splen;
		uint64_t r = rnd();
		uint32_t s = (base & ~hostmask) | ((uint32_t)r & hostmask);
		struct pkt p;

		pkt_init(&p, PKT_L3_IPV4);
		memcpy(p.dmac, dmac, 6);
		memcpy(p.smac, smac, 6);
		p.src4[0] = (uint8_t)(s >> 24);
		p.src4[1] = (uint8_t)(s >> 16);
		p.src4[2] = (uint8_t)(s >> 8);
		p.src4[3] = (uint8_t)s;
		if (!in_net4(p.src4, 0xc6120000u, 15))
			die("internal: source outside 198.18.0.0/15");
		if (inet_pton(AF_INET, dst, p.dst4) != 1)
			die("bad destination %s (IPv4)", dst);
		if (!in_net4(p.dst4, 0x0a000000u, 8))
			die("destination %s: must lie inside 10.0.0.0/8 (the lab)", dst);
		p.sport = (uint16_t)(1024 + (r >> 32) % 64000);
		p.dport = (uint16_t)dport;
		p.seq = (uint32_t)(r >> 16);
		p.ip_id = (uint16_t)(r >> 48);
		/* MSS, SACK-permitted, timestamps, window scale: a Linux SYN */
		{
			static const uint8_t o[20] = { 2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1,
						       0, 0, 0, 0, 1, 3, 3, 7 };

			memcpy(p.tcpopt, o, sizeof(o));
			p.tcpoptlen = sizeof(o);
		}
		lens[i] = pkt_build(&p, frames + (size_t)i * FRAME_CAP, FRAME_CAP, NULL);
		if (!lens[i])
			die("internal: frame does not fit");
	}

	msgs = calloc(batch, sizeof(*msgs));
	iov = calloc(batch, sizeof(*iov));
	if (!msgs || !iov)
		die("out of memory");
	for (i = 0; i < batch; i++) {
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	t0 = now_s();
	next = t0;
	while (sent < count) {
		unsigned n = count - sent < batch ? (unsigned)(count - sent) : batch;
		int r;

		t1 = now_s();
		if (t1 - t0 > seconds)
			break;
		if (rate > 0) {
			/* Pacing: sleep through most of the gap (leaving the CPU
			 * to others, such as connlat's client), spin the rest. */
			if (next - t1 > 30e-6)
				sleep_until(next - 15e-6);
			while (t1 < next)
				t1 = now_s();
			next += n / rate;
		}
		for (i = 0; i < n; i++) {
			iov[i].iov_base = frames + (size_t)pos * FRAME_CAP;
			iov[i].iov_len = lens[pos];
			pos = pos + 1 == nframes ? 0 : pos + 1;
		}
		r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR)
				die("sendmmsg: %s", strerror(errno));
			errors++;
			continue;
		}
		sent += (unsigned)r;
		if ((unsigned)r < n)
			errors++;
	}
	t1 = now_s();
	printf("sent=%llu seconds=%.3f pps=%.0f errors=%llu\n", sent, t1 - t0,
	       sent / (t1 - t0), errors);
	close(fd);
	free(frames);
	free(lens);
	free(msgs);
	free(iov);
	return 0;
}
