// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The floor: the least an XDP program can do and still gate a port. It
 * parses Ethernet (and up to two VLAN tags), IPv4 (with options) or IPv6
 * (no extension headers) and TCP, and drops SYNs to port 587. No maps, no
 * counters, no policy: what relaygate costs beyond this is the price of
 * its decision (trusted interfaces, deny list, trusted subnets, grants,
 * admitted flows, counters, drop events).
 *
 * floor_pass returns XDP_PASS for everything: the cost of an attached XDP
 * program that does nothing (and, through BPF_PROG_TEST_RUN, the overhead
 * of test_run itself).
 *
 * Built by bench/run, not by `make`: clang -O2 -target bpf -mcpu=v3.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define FLOOR_PORT 587

struct vlan_tag {
	__be16 tci;
	__be16 proto;
};

SEC("xdp")
int floor_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct vlan_tag *vt;
	struct tcphdr *th;
	void *l3;
	__be16 proto;
	__u8 l4proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	proto = eth->h_proto;
	l3 = eth + 1;
#pragma unroll
	for (i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		vt = l3;
		if ((void *)(vt + 1) > data_end)
			return XDP_PASS;
		proto = vt->proto;
		l3 = vt + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *iph = l3;

		if ((void *)(iph + 1) > data_end || iph->ihl < 5)
			return XDP_PASS;
		l4proto = iph->protocol;
		th = l3 + iph->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6h = l3;

		if ((void *)(ip6h + 1) > data_end)
			return XDP_PASS;
		l4proto = ip6h->nexthdr;
		th = (void *)(ip6h + 1);
	} else {
		return XDP_PASS;
	}
	if (l4proto != IPPROTO_TCP || (void *)(th + 1) > data_end)
		return XDP_PASS;
	if (th->dest == bpf_htons(FLOOR_PORT) && th->syn && !th->ack)
		return XDP_DROP;
	return XDP_PASS;
}

SEC("xdp")
int floor_pass(struct xdp_md *ctx __attribute__((unused)))
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
