/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Strict header-cursor parsers for the relaygate data plane.
 *
 * Each parser reads the header at the cursor, checks that all of it lies
 * before data_end, checks the fields the kernel would reject, and only then
 * advances the cursor. Every advance is followed by a fresh bounds check
 * before the next read: nothing is read on the strength of an earlier check.
 *
 * Return convention: a value >= 0 is the protocol of the next header (an
 * ethertype in host order for L2, an IP protocol number for L3); a negative
 * value is one of RG_P_*:
 *   RG_P_TRUNC     the header runs past data_end (in TC the bytes may still
 *                  be in the non-linear part of the skb: the caller may pull
 *                  and parse again);
 *   RG_P_BAD       the header is there but is not something the kernel would
 *                  accept (IP version, ihl < 5, a third VLAN tag, an IPv6
 *                  extension chain longer than we walk);
 *   RG_P_NONFIRST  a non-first fragment: it carries no TCP header, so there
 *                  is nothing to judge (see rg_ip6_walk and gate.h).
 * The decision in gate.h turns TRUNC and BAD into drop_malformed: both are
 * "could be TCP to a protected port but cannot be parsed safely".
 */
#ifndef RG_PARSE_H
#define RG_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define RG_P_TRUNC    (-1)
#define RG_P_BAD      (-2)
#define RG_P_NONFIRST (-3)

/* VLAN tags we walk: 802.1Q inside 802.1ad (QinQ) at most. */
#define RG_VLAN_MAX    2
/* IPv6 extension headers we walk before giving up (drop_malformed). Real
 * traffic carries one or two; eight leaves room for odd stacks while keeping
 * the walk's verification small (each step is a loop iteration the verifier
 * follows). */
#define RG_IP6_EXT_MAX 8

/* IPv4 frag_off bits (host order). */
#define RG_IP_DF      0x4000
#define RG_IP_MF      0x2000
#define RG_IP_OFFSET  0x1fff
/* IPv6 fragment header frag_off: offset in the top 13 bits, M flag bit 0. */
#define RG_IP6_OFFSET 0xfff8

/* Facts about the packet the parsers collect for the decision. */
#define RG_PKT_FRAG   (1U << 0)  /* a first fragment (more follow) */
#define RG_PKT_EXT    (1U << 1)  /* IPv4 options / AH, or IPv6 ext headers */

/*
 * pos: the next header. off: its offset from the packet start, kept as a
 * plain number beside the pointer, so that a header can be found again as
 * data + off with an offset the verifier does not track (rg_opaque_off).
 */
struct hdr_cursor {
	void *pos;
	__u32 off;
};

static __always_inline void rg_adv(struct hdr_cursor *nh, __u32 len)
{
	nh->pos += len;
	nh->off += len;
}

/* Not in the uapi headers (kernel-internal there), so our own. */
struct rg_vlan_hdr {
	__be16 tci;
	__be16 proto;            /* encapsulated ethertype */
};

struct rg_ip6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;         /* offset << 3 | M */
	__be32 identification;
};

/* First two bytes of hop-by-hop, routing, destination options and AH. */
struct rg_ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

/*
 * Bound of any header offset we compute: below MAX_PACKET_OFF (0xffff) minus
 * the largest header we read at it, or the verifier's bounds checks do not
 * count. The deepest header we reach starts before 22 + 40 + 8 * 2048.
 */
#define RG_OFF_MASK 0x7fff
_Static_assert(22 + 40 + RG_IP6_EXT_MAX * 2048 <= RG_OFF_MASK, "RG_OFF_MASK too small");

/*
 * Verifier workaround: returns off unchanged (it is always below
 * RG_OFF_MASK), but the verifier only knows "0..RG_OFF_MASK". The value goes
 * through 2 bytes of an 8-byte stack slot, which the verifier does not track
 * (STACK_MISC), so parse paths that differ only in this value look alike
 * afterwards and prune each other. volatile keeps clang (14.0.6) from
 * forwarding the store to the load; the full-width store first keeps the
 * slot 8-byte aligned (clang otherwise allocates just the 2 bytes, aligned,
 * and an aligned narrow spill IS tracked). Cost: two stack accesses.
 */
static __always_inline __u32 rg_opaque_off(__u32 off)
{
	volatile __u64 box = 0;
	volatile __u16 *half = (volatile __u16 *)&box + 1;

	*half = off;
	return *half & RG_OFF_MASK;
}

static __always_inline int rg_is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/*
 * Ethernet and up to RG_VLAN_MAX tags. *l2len gets the bytes before the L3
 * header (14, 18 or 22).
 *
 * Gaps, and how they are closed:
 *  - A frame shorter than an Ethernet header cannot carry IP: returns 0 (not
 *    IP), so the caller passes it as unprotected; no driver hands such a
 *    runt to the IP stack.
 *  - A truncated VLAN tag could hide an IP header: RG_P_TRUNC.
 *  - A third tag: we do not walk deeper, so it is RG_P_BAD (fail closed)
 *    rather than "not IP" (which would pass it).
 *  - Tags a NIC strips into metadata (rx VLAN offload) are not in the packet
 *    at all; what follows them is parsed as if untagged, which is right.
 */
static __always_inline int rg_parse_eth(struct hdr_cursor *nh, void *data_end,
					struct ethhdr **ethp, __u32 *l2len)
{
	struct ethhdr *eth = nh->pos;
	struct rg_vlan_hdr *vh;
	__be16 proto;
	__u32 len = sizeof(*eth);
	int i;

	if ((void *)(eth + 1) > data_end)
		return 0;
	*ethp = eth;
	proto = eth->h_proto;
	rg_adv(nh, sizeof(*eth));

#pragma unroll
	for (i = 0; i < RG_VLAN_MAX; i++) {
		if (!rg_is_vlan(proto))
			break;
		vh = nh->pos;
		if ((void *)(vh + 1) > data_end)
			return RG_P_TRUNC;
		proto = vh->proto;
		rg_adv(nh, sizeof(*vh));
		len += sizeof(*vh);
	}
	if (rg_is_vlan(proto))
		return RG_P_BAD;
	*l2len = len;
	return bpf_ntohs(proto);
}

/*
 * IPv4 header with options. Returns the protocol.
 *
 * Gaps:
 *  - Fewer than 20 bytes: RG_P_TRUNC.
 *  - version != 4 or ihl < 5 (ihl * 4 < 20): RG_P_BAD; ip_rcv() drops both,
 *    and with ihl < 5 we would read the transport header inside the IP one.
 *  - Options (ihl > 5) are skipped whole: ihl * 4 must lie in the packet,
 *    else RG_P_TRUNC. The caller marks the packet RG_PKT_EXT (no RST reply).
 *  - tot_len is NOT checked against the packet: with BIG TCP a GRO packet
 *    seen at TC ingress legitimately carries tot_len 0. The header bounds
 *    checks are what keeps the parse safe; the stack validates tot_len.
 *  - Fragments are the caller's business (frag_off).
 */
static __always_inline int rg_parse_ip4(struct hdr_cursor *nh, void *data_end,
					struct iphdr **iphp)
{
	struct iphdr *iph = nh->pos;
	__u32 hlen;

	if ((void *)(iph + 1) > data_end)
		return RG_P_TRUNC;
	if (iph->version != 4 || iph->ihl < 5)
		return RG_P_BAD;
	hlen = iph->ihl * 4;
	if (nh->pos + hlen > data_end)
		return RG_P_TRUNC;
	rg_adv(nh, hlen);
	*iphp = iph;
	return iph->protocol;
}

/*
 * An IPv4 AH header (IPsec, RFC 4302) in front of the transport header:
 * skipped, so TCP under AH to a protected port is still judged. One AH only:
 * AH inside AH is RG_P_BAD (fail closed). ESP cannot be looked into at all;
 * it is passed as "not TCP" by the caller: the kernel drops ESP without a
 * security association, and with one the peer is authenticated by IPsec.
 */
static __always_inline int rg_skip_ah4(struct hdr_cursor *nh, void *data_end)
{
	struct rg_ext_hdr *ah = nh->pos;
	int next;

	if ((void *)(ah + 1) > data_end)
		return RG_P_TRUNC;
	next = ah->nexthdr;
	/* AH length: 4-octet units minus 2. */
	rg_adv(nh, (ah->hdrlen + 2) * 4);
	if (next == IPPROTO_AH)
		return RG_P_BAD;
	return next;
}

/*
 * The fixed IPv6 header. Returns the next header (before any extension).
 *
 * Gaps: fewer than 40 bytes: RG_P_TRUNC; version != 6: RG_P_BAD
 * (ipv6_rcv() drops it). payload_len is not checked (BIG TCP, jumbograms:
 * see rg_parse_ip4).
 */
static __always_inline int rg_parse_ip6(struct hdr_cursor *nh, void *data_end,
					struct ipv6hdr **ip6hp)
{
	struct ipv6hdr *ip6h = nh->pos;

	if ((void *)(ip6h + 1) > data_end)
		return RG_P_TRUNC;
	if (ip6h->version != 6)
		return RG_P_BAD;
	rg_adv(nh, sizeof(*ip6h));
	*ip6hp = ip6h;
	return ip6h->nexthdr;
}

#define RG_IP6_EXT_SET ((1ULL << IPPROTO_HOPOPTS) | (1ULL << IPPROTO_ROUTING) | \
			(1ULL << IPPROTO_DSTOPTS) | (1ULL << IPPROTO_FRAGMENT) | \
			(1ULL << IPPROTO_AH))

/*
 * Is next one of the extension headers we walk? A bit test rather than five
 * compares: compares leave next a different constant on each path into the
 * walk, and each constant is then verified separately (clang 14.0.6,
 * kernel 6.18); barrier_var keeps clang from turning it back into compares.
 */
static __always_inline int rg_ip6_is_ext(__u32 next)
{
	__u64 bit;

	if (next >= 64)
		return 0;
	bit = 1ULL << next;
	barrier_var(bit);
	return (bit & RG_IP6_EXT_SET) != 0;
}

/*
 * Walks IPv6 extension headers from next to the upper-layer protocol, at
 * most RG_IP6_EXT_MAX of them, and returns that protocol. Sets RG_PKT_EXT
 * in *flags when it skipped any, RG_PKT_FRAG for a first fragment.
 *
 * Gaps:
 *  - The headers the kernel walks on the way to TCP: hop-by-hop, routing,
 *    destination options, fragment and AH (ipv6_ext_hdr() plus AH, which
 *    xfrm peels). Anything else ends the walk as the upper-layer protocol;
 *    if that is not TCP the packet is not ours (ESP: see rg_skip_ah4;
 *    "no next header" 59: no payload).
 *  - Each header is bounds-checked before its length byte is read; a
 *    header that runs past the packet shows up as RG_P_TRUNC at the next
 *    read (the next header, or the TCP ports in gate.h).
 *  - More than RG_IP6_EXT_MAX headers: RG_P_BAD. We cannot see what they
 *    hide, so on a possibly protected packet we fail closed.
 *  - Fragment header with a non-zero offset: RG_P_NONFIRST (no TCP header
 *    in it; the reassembly needs the first fragment, which we judge).
 *    Offset 0 (first fragment, or an atomic fragment with M clear): the walk
 *    continues; the TCP header must then be whole in this fragment.
 *  - Hop-by-hop options anywhere but first are walked like the others; the
 *    kernel drops such a packet, we judge it: fail closed either way.
 */
static __always_inline int rg_ip6_walk(struct hdr_cursor *nh, void *data, void *data_end,
				       int next, __u32 *flags)
{
	struct rg_ext_hdr *eh;
	struct rg_ip6_frag *fh;
	__u32 len;
	int i;

	for (i = 0; i < RG_IP6_EXT_MAX; i++) {
		if (!rg_ip6_is_ext(next))
			return next;
		/*
		 * Verifier workaround: each step restarts from the packet
		 * start plus an offset the verifier sees only as "some
		 * number below RG_OFF_MASK" (rg_opaque_off). Advancing the
		 * pointer itself left every sequence of header kinds and
		 * lengths with its own pointer state, none pruning another:
		 * ~9K more verified instructions per header walked (clang
		 * 14.0.6, kernel 6.18). The bytes read are the same.
		 */
		nh->pos = data + rg_opaque_off(nh->off);
		if (next == IPPROTO_FRAGMENT) {
			fh = nh->pos;
			if ((void *)(fh + 1) > data_end)
				return RG_P_TRUNC;
			if (fh->frag_off & bpf_htons(RG_IP6_OFFSET))
				return RG_P_NONFIRST;
			*flags |= RG_PKT_FRAG;
			next = fh->nexthdr;
			len = sizeof(*fh);
		} else {
			eh = nh->pos;
			if ((void *)(eh + 1) > data_end)
				return RG_P_TRUNC;
			/* AH counts 4-octet units minus 2; the others 8-octet
			 * units not counting the first 8. */
			if (next == IPPROTO_AH)
				len = (eh->hdrlen + 2) * 4;
			else
				len = (eh->hdrlen + 1) * 8;
			next = eh->nexthdr;
		}
		rg_adv(nh, len);
		*flags |= RG_PKT_EXT;
	}
	if (rg_ip6_is_ext(next))
		return RG_P_BAD;
	return next;
}

#endif /* RG_PARSE_H */
