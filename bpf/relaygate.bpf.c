// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * relaygate data plane: the XDP and TC (clsact ingress) entry points. Both
 * hand the packet to rg_decide() (gate.h), which judges and counts it, and
 * translate its answer into the hook's return code. Nothing else is decided
 * here: the hook-specific work is getting at the bytes (TC may have to pull
 * them into the linear part) and resizing and sending an RST reply.
 *
 * Loading needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON (or root): without
 * CAP_PERFMON the verifier refuses packet pointer arithmetic with a
 * variable offset ("pointer arithmetic with it prohibited for !root"),
 * which no parser of IPv4 options or IPv6 extension headers can avoid.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "gate.h"

SEC("xdp")
int rg_xdp(struct xdp_md *ctx)
{
	void *data, *data_end;
	struct rg_res r;
	__u64 len;
	int fast;

	fast = rg_fast(ctx, 0);
	if (rg_likely(fast))
		return fast == RG_FAST_DROP ? XDP_DROP : XDP_PASS;
	/* Read ctx again (the barrier stops the compiler reusing what
	 * rg_fast read): the straight-line path then keeps nothing live
	 * for the general one. */
	asm volatile("" ::: "memory");
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	/* Linear frames only: the program is not loaded for XDP
	 * multi-buffer, so data..data_end is the whole packet. */
	len = data_end - data;
	r = rg_decide(data, data_end, ctx->ingress_ifindex, len, 0);
	if (r.act == RG_ACT_PASS)
		return XDP_PASS;
	if (r.act == RG_ACT_REPLY) {
		__u32 rlen = rg_reply((void *)(long)ctx->data, (void *)(long)ctx->data_end, &r, 0);

		/* The reply is the first rlen bytes: cut the rest (the SYN's
		 * options, data, Ethernet padding). */
		if (!rlen || (len > rlen && bpf_xdp_adjust_tail(ctx, (int)rlen - (int)len)))
			return XDP_DROP;
		rg_count(RG_STAT_RST_SENT, rlen);
		return XDP_TX;
	}
	return XDP_DROP;
}

SEC("tc")
int rg_tc(struct __sk_buff *skb)
{
	struct rg_res r;
	int fast;

	fast = rg_fast(skb, 1);
	if (rg_likely(fast))
		return fast == RG_FAST_DROP ? TC_ACT_SHOT : TC_ACT_UNSPEC;
	r = rg_decide((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex,
		      skb->len, 1);
	if (r.act == RG_ACT_PULL) {
		/*
		 * Headers run past the linear part. Pull the whole packet
		 * (it is rare: drivers and GRO keep headers linear) and judge
		 * again with fresh pointers; the second pass does not pull,
		 * so a packet that is really truncated, or a failed pull,
		 * ends as drop_malformed there.
		 */
		bpf_skb_pull_data(skb, skb->len);
		r = rg_decide((void *)(long)skb->data, (void *)(long)skb->data_end, skb->ifindex,
			      skb->len, 0);
	}
	/* TC_ACT_UNSPEC, not TC_ACT_OK: a passed packet goes on to the
	 * other filters on this ingress hook (we sit at priority 1); OK
	 * would end the chain and skip the admin's own filters. */
	if (r.act == RG_ACT_PASS)
		return TC_ACT_UNSPEC;
	if (r.act == RG_ACT_REPLY) {
		__u32 rlen = rg_reply((void *)(long)skb->data, (void *)(long)skb->data_end, &r, 1);

		/* Shrink to the reply (a shrink also turns a stale
		 * CHECKSUM_COMPLETE into CHECKSUM_NONE; egress does not use
		 * it either way), then send it out of the interface it came
		 * in on; a hw-accelerated VLAN tag stays on the skb. For a
		 * CHECKSUM_PARTIAL skb see rg_tcp_check(). */
		if (!rlen || bpf_skb_change_tail(skb, rlen, 0))
			return TC_ACT_SHOT;
		rg_count(RG_STAT_RST_SENT, rlen);
		return bpf_redirect(skb->ifindex, 0);
	}
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
