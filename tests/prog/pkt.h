/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * pkt.h: a packet builder for the BPF_PROG_TEST_RUN tests.
 *
 * A struct pkt describes a frame layer by layer (Ethernet, 0..4 VLAN tags,
 * IPv4 with options and fragment bits, IPv6 with an extension-header chain,
 * TCP/UDP/ICMP/raw payload, or ARP); pkt_build() lays it out in network
 * order with every checksum right and reports where each layer starts, so a
 * test can cut the frame at any layer (pkt_truncate) or poke a field after
 * the fact (pkt_put16 ...) to make it malformed on purpose.
 *
 * Fields are written byte by byte (no bitfield structs), so a test can ask
 * for values no well-behaved stack would produce (ihl 4, doff 3, ...).
 *
 * pkt_check_rst() checks a reply of reject = rst against the SYN it answers,
 * field by field, and says which field is wrong.
 */
#ifndef RG_TEST_PKT_H
#define RG_TEST_PKT_H

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PKT_MAX      3000
#define PKT_MAX_VLAN 4
#define PKT_MAX_EXT  16

#define PKT_ETH_IP    0x0800
#define PKT_ETH_ARP   0x0806
#define PKT_ETH_IPV6  0x86dd
#define PKT_ETH_8021Q 0x8100
#define PKT_ETH_8021AD 0x88a8

#define PKT_IPPROTO_HOPOPTS  0
#define PKT_IPPROTO_ICMP     1
#define PKT_IPPROTO_TCP      6
#define PKT_IPPROTO_UDP      17
#define PKT_IPPROTO_ROUTING  43
#define PKT_IPPROTO_FRAGMENT 44
#define PKT_IPPROTO_ICMPV6   58
#define PKT_IPPROTO_NONE     59
#define PKT_IPPROTO_DSTOPTS  60

#define PKT_TCP_FIN 0x01
#define PKT_TCP_SYN 0x02
#define PKT_TCP_RST 0x04
#define PKT_TCP_PSH 0x08
#define PKT_TCP_ACK 0x10
#define PKT_TCP_URG 0x20
#define PKT_TCP_ECE 0x40
#define PKT_TCP_CWR 0x80

enum pkt_l3 { PKT_L3_NONE, PKT_L3_IPV4, PKT_L3_IPV6, PKT_L3_ARP };
enum pkt_l4 { PKT_L4_NONE, PKT_L4_TCP, PKT_L4_UDP, PKT_L4_ICMP, PKT_L4_RAW };

/* One IPv6 extension header. type is the header's own protocol number
 * (0 hop-by-hop, 43 routing, 60 destination options, 44 fragment); hdrlen
 * is the Hdr Ext Len field ((hdrlen + 1) * 8 bytes; ignored for fragment
 * headers, which are 8 bytes). frag_off is in 8-byte units. */
struct pkt_ext {
	uint8_t type;
	uint8_t hdrlen;
	uint16_t frag_off;
	bool more;
	uint32_t ident;
};

struct pkt {
	/* Ethernet */
	uint8_t dmac[6], smac[6];
	int nvlan;
	uint16_t vlan_tpid[PKT_MAX_VLAN];
	uint16_t vlan_tci[PKT_MAX_VLAN];
	uint16_t ethertype;          /* 0: from l3 */
	enum pkt_l3 l3;
	/* IPv4 */
	uint8_t src4[4], dst4[4];
	uint8_t tos, ttl;
	uint16_t ip_id;
	bool df, mf;
	uint16_t frag_off;           /* 8-byte units */
	uint8_t ipopt[40];
	int ipoptlen;                /* multiple of 4 */
	/* IPv6 */
	uint8_t src6[16], dst6[16];
	uint8_t hlim;
	uint32_t flowlabel;
	struct pkt_ext ext[PKT_MAX_EXT];
	int next;
	/* Upper-layer protocol number in the IP header / last next-header;
	 * proto_set false: from l4. */
	bool proto_set;
	uint8_t proto;
	/* L4 */
	enum pkt_l4 l4;
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t tcp_flags;
	uint16_t window, urg;
	uint8_t tcpopt[40];
	int tcpoptlen;               /* multiple of 4 */
	uint8_t icmp_type, icmp_code;
	const uint8_t *payload;
	int paylen;
	int trailer;                 /* zero bytes after the datagram (Ethernet padding) */
};

/* Where the layers of a built frame start (byte offsets). */
struct pkt_layout {
	size_t len;                  /* whole frame */
	size_t l3;                   /* IP/ARP header */
	size_t l4;                   /* TCP/UDP/ICMP header (after IPv6 ext headers) */
	size_t payload;              /* after the L4 header and its options */
	size_t ip_end;               /* end of the IP datagram (before the trailer) */
};

static inline void pkt_put8(uint8_t *b, size_t off, uint8_t v) { b[off] = v; }
static inline void pkt_put16(uint8_t *b, size_t off, uint16_t v)
{
	b[off] = v >> 8;
	b[off + 1] = v & 0xff;
}
static inline void pkt_put32(uint8_t *b, size_t off, uint32_t v)
{
	pkt_put16(b, off, v >> 16);
	pkt_put16(b, off + 2, v & 0xffff);
}
static inline uint16_t pkt_get16(const uint8_t *b, size_t off)
{
	return (uint16_t)(b[off] << 8 | b[off + 1]);
}
static inline uint32_t pkt_get32(const uint8_t *b, size_t off)
{
	return (uint32_t)pkt_get16(b, off) << 16 | pkt_get16(b, off + 2);
}

/* Ones' complement sum of a byte run (big-endian 16-bit words), unfolded. */
static inline uint32_t pkt_sum(uint32_t sum, const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += pkt_get16(b, i);
	if (n & 1)
		sum += (uint32_t)b[n - 1] << 8;
	return sum;
}

static inline uint16_t pkt_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Pseudo-header sum for TCP/UDP/ICMPv6 over IPv4 (alen 4) or IPv6 (16). */
static inline uint32_t pkt_pseudo(const uint8_t *src, const uint8_t *dst, int alen,
				  uint8_t proto, uint32_t l4len)
{
	uint32_t sum = 0;

	sum = pkt_sum(sum, src, alen);
	sum = pkt_sum(sum, dst, alen);
	sum += proto;
	sum += l4len >> 16;
	sum += l4len & 0xffff;
	return sum;
}

/* Parse a textual address into 4 or 16 bytes; aborts the test on a typo. */
static inline void pkt_addr4(uint8_t out[4], const char *s)
{
	if (inet_pton(AF_INET, s, out) != 1) {
		fprintf(stderr, "pkt: bad IPv4 literal %s\n", s);
		__builtin_trap();
	}
}

static inline void pkt_addr6(uint8_t out[16], const char *s)
{
	if (inet_pton(AF_INET6, s, out) != 1) {
		fprintf(stderr, "pkt: bad IPv6 literal %s\n", s);
		__builtin_trap();
	}
}

/* Defaults: a TCP SYN (seq 0x11223344, window 64240) over the given L3,
 * 02:00:00:00:00:01 -> 02:00:00:00:00:02, ttl/hop limit 64, no VLAN. */
static inline void pkt_init(struct pkt *p, enum pkt_l3 l3)
{
	static const uint8_t dmac[6] = { 0x02, 0, 0, 0, 0, 0x02 };
	static const uint8_t smac[6] = { 0x02, 0, 0, 0, 0, 0x01 };

	memset(p, 0, sizeof(*p));
	memcpy(p->dmac, dmac, 6);
	memcpy(p->smac, smac, 6);
	p->l3 = l3;
	p->ttl = 64;
	p->hlim = 64;
	p->ip_id = 0x1234;
	p->df = true;
	p->l4 = l3 == PKT_L3_ARP || l3 == PKT_L3_NONE ? PKT_L4_NONE : PKT_L4_TCP;
	p->sport = 40000;
	p->dport = 587;
	p->seq = 0x11223344;
	p->tcp_flags = PKT_TCP_SYN;
	p->window = 64240;
}

static inline void pkt_vlan(struct pkt *p, uint16_t tpid, uint16_t tci)
{
	if (p->nvlan < PKT_MAX_VLAN) {
		p->vlan_tpid[p->nvlan] = tpid;
		p->vlan_tci[p->nvlan] = tci;
		p->nvlan++;
	}
}

static inline void pkt_ext_add(struct pkt *p, uint8_t type, uint8_t hdrlen)
{
	if (p->next < PKT_MAX_EXT) {
		memset(&p->ext[p->next], 0, sizeof(p->ext[0]));
		p->ext[p->next].type = type;
		p->ext[p->next].hdrlen = hdrlen;
		p->ext[p->next].ident = 0xabcd0000u + p->next;
		p->next++;
	}
}

static inline void pkt_frag6_add(struct pkt *p, uint16_t off, bool more)
{
	pkt_ext_add(p, PKT_IPPROTO_FRAGMENT, 0);
	p->ext[p->next - 1].frag_off = off;
	p->ext[p->next - 1].more = more;
}

/* Fill an extension header body of n bytes (after nh and hdrlen) with
 * padding options (Pad1/PadN), as hop-by-hop and destination options want. */
static inline void pkt_padopts(uint8_t *b, size_t n)
{
	memset(b, 0, n);
	if (n >= 2) {
		b[0] = 1;               /* PadN */
		b[1] = (uint8_t)(n - 2);
	}
}

static inline uint8_t pkt_l4_proto(const struct pkt *p)
{
	if (p->proto_set)
		return p->proto;
	switch (p->l4) {
	case PKT_L4_TCP: return PKT_IPPROTO_TCP;
	case PKT_L4_UDP: return PKT_IPPROTO_UDP;
	case PKT_L4_ICMP: return p->l3 == PKT_L3_IPV6 ? PKT_IPPROTO_ICMPV6 : PKT_IPPROTO_ICMP;
	default: return PKT_IPPROTO_NONE;
	}
}

/* Lay the frame out into buf (cap bytes). Returns the frame length, or 0 if
 * it does not fit. lo (may be NULL) gets the layer offsets. */
static inline size_t pkt_build(const struct pkt *p, uint8_t *buf, size_t cap,
			       struct pkt_layout *lo)
{
	uint8_t b[PKT_MAX + 256];
	size_t off = 0, l3, l4, pay, end, iphl = 0, l4len = 0;
	int i, oplen = p->tcpoptlen & ~3;
	uint16_t et = p->ethertype;

	memset(b, 0, sizeof(b));
	memcpy(b, p->dmac, 6);
	memcpy(b + 6, p->smac, 6);
	off = 12;
	for (i = 0; i < p->nvlan && i < PKT_MAX_VLAN; i++) {
		pkt_put16(b, off, p->vlan_tpid[i]);
		pkt_put16(b, off + 2, p->vlan_tci[i]);
		off += 4;
	}
	if (!et)
		et = p->l3 == PKT_L3_IPV4 ? PKT_ETH_IP :
		     p->l3 == PKT_L3_IPV6 ? PKT_ETH_IPV6 :
		     p->l3 == PKT_L3_ARP ? PKT_ETH_ARP : 0x88b5;
	pkt_put16(b, off, et);
	off += 2;
	l3 = off;

	if (p->l3 == PKT_L3_ARP) {
		pkt_put16(b, l3, 1);            /* Ethernet */
		pkt_put16(b, l3 + 2, PKT_ETH_IP);
		b[l3 + 4] = 6;
		b[l3 + 5] = 4;
		pkt_put16(b, l3 + 6, 1);        /* request */
		memcpy(b + l3 + 8, p->smac, 6);
		memcpy(b + l3 + 14, p->src4, 4);
		memcpy(b + l3 + 24, p->dst4, 4);
		l4 = pay = end = l3 + 28;
		goto done;
	}
	if (p->l3 == PKT_L3_IPV4) {
		iphl = 20 + (p->ipoptlen & ~3);
		memcpy(b + l3 + 20, p->ipopt, iphl - 20);
	} else if (p->l3 == PKT_L3_IPV6) {
		iphl = 40;
		for (i = 0; i < p->next; i++) {
			const struct pkt_ext *e = &p->ext[i];
			uint8_t nh = i + 1 < p->next ? p->ext[i + 1].type : pkt_l4_proto(p);
			size_t el = e->type == PKT_IPPROTO_FRAGMENT ? 8
								    : ((size_t)e->hdrlen + 1) * 8;
			uint8_t *h = b + l3 + iphl;

			if (l3 + iphl + el > PKT_MAX)
				return 0;
			h[0] = nh;
			if (e->type == PKT_IPPROTO_FRAGMENT) {
				pkt_put16(h, 2, (uint16_t)(e->frag_off << 3 | (e->more ? 1 : 0)));
				pkt_put32(h, 4, e->ident);
			} else {
				h[1] = e->hdrlen;
				if (e->type == PKT_IPPROTO_ROUTING) {
					memset(h + 2, 0, el - 2);
					h[2] = 4;       /* segment routing header */
					h[3] = 0;       /* segments left: nothing to do */
				} else {
					pkt_padopts(h + 2, el - 2);
				}
			}
			iphl += el;
		}
	}
	l4 = l3 + iphl;
	off = l4;
	switch (p->l4) {
	case PKT_L4_TCP:
		pkt_put16(b, off, p->sport);
		pkt_put16(b, off + 2, p->dport);
		pkt_put32(b, off + 4, p->seq);
		pkt_put32(b, off + 8, p->ack);
		b[off + 12] = (uint8_t)(((20 + oplen) / 4) << 4);
		b[off + 13] = p->tcp_flags;
		pkt_put16(b, off + 14, p->window);
		pkt_put16(b, off + 18, p->urg);
		memcpy(b + off + 20, p->tcpopt, oplen);
		off += 20 + oplen;
		break;
	case PKT_L4_UDP:
		pkt_put16(b, off, p->sport);
		pkt_put16(b, off + 2, p->dport);
		off += 8;
		break;
	case PKT_L4_ICMP:
		b[off] = p->icmp_type ? p->icmp_type : (p->l3 == PKT_L3_IPV6 ? 128 : 8);
		b[off + 1] = p->icmp_code;
		pkt_put32(b, off + 4, 0x00010001);  /* id 1, seq 1 */
		off += 8;
		break;
	default:
		break;
	}
	pay = off;
	if (p->paylen > 0) {
		if (pay + p->paylen > PKT_MAX)
			return 0;
		memcpy(b + pay, p->payload, p->paylen);
	}
	end = pay + (p->paylen > 0 ? p->paylen : 0);
	l4len = end - l4;

	if (p->l4 == PKT_L4_UDP)
		pkt_put16(b, l4 + 4, (uint16_t)l4len);

	if (p->l3 == PKT_L3_IPV4) {
		uint8_t *h = b + l3;
		uint16_t frag = p->frag_off & 0x1fff;

		h[0] = (uint8_t)(0x40 | iphl / 4);
		h[1] = p->tos;
		pkt_put16(h, 2, (uint16_t)(end - l3));
		pkt_put16(h, 4, p->ip_id);
		if (p->df)
			frag |= 0x4000;
		if (p->mf)
			frag |= 0x2000;
		pkt_put16(h, 6, frag);
		h[8] = p->ttl;
		h[9] = pkt_l4_proto(p);
		memcpy(h + 12, p->src4, 4);
		memcpy(h + 16, p->dst4, 4);
		pkt_put16(h, 10, pkt_fold(pkt_sum(0, h, iphl)));
	} else if (p->l3 == PKT_L3_IPV6) {
		uint8_t *h = b + l3;

		pkt_put32(h, 0, 6u << 28 | (p->flowlabel & 0xfffff));
		pkt_put16(h, 4, (uint16_t)(end - l3 - 40));
		h[6] = p->next ? p->ext[0].type : pkt_l4_proto(p);
		h[7] = p->hlim;
		memcpy(h + 8, p->src6, 16);
		memcpy(h + 24, p->dst6, 16);
	}

	/* Upper-layer checksums (TCP 16, UDP 6, ICMP 2 bytes in). */
	if (p->l4 == PKT_L4_TCP || p->l4 == PKT_L4_UDP ||
	    (p->l4 == PKT_L4_ICMP)) {
		size_t co = p->l4 == PKT_L4_TCP ? 16 : p->l4 == PKT_L4_UDP ? 6 : 2;
		uint8_t proto = pkt_l4_proto(p);
		uint32_t sum = 0;
		uint16_t c;

		if (p->l3 == PKT_L3_IPV4 && p->l4 != PKT_L4_ICMP)
			sum = pkt_pseudo(p->src4, p->dst4, 4, proto, (uint32_t)l4len);
		else if (p->l3 == PKT_L3_IPV6)
			sum = pkt_pseudo(p->src6, p->dst6, 16, proto, (uint32_t)l4len);
		pkt_put16(b, l4 + co, 0);
		c = pkt_fold(pkt_sum(sum, b + l4, l4len));
		if (p->l4 == PKT_L4_UDP && c == 0)
			c = 0xffff;
		pkt_put16(b, l4 + co, c);
	}
done:
	if (p->trailer > 0)
		end += p->trailer;      /* already zero */
	if (end > cap || end > PKT_MAX)
		return 0;
	memcpy(buf, b, end);
	if (lo) {
		lo->len = end;
		lo->l3 = l3;
		lo->l4 = l4;
		lo->payload = pay;
		lo->ip_end = end - (p->trailer > 0 ? p->trailer : 0);
	}
	return end;
}

/* Cut a frame to n bytes (keeping the headers' length fields as they were,
 * which is what a truncated capture or a lying sender produces). */
static inline size_t pkt_truncate(size_t len, size_t n)
{
	return n < len ? n : len;
}

/* Recompute the IPv4 header checksum of the header at l3 (after an edit). */
static inline void pkt_fix_ip4_csum(uint8_t *b, size_t l3)
{
	size_t hl = (size_t)(b[l3] & 0x0f) * 4;

	pkt_put16(b, l3 + 10, 0);
	pkt_put16(b, l3 + 10, pkt_fold(pkt_sum(0, b + l3, hl)));
}

/* Hex dump as a TAP diagnostic. */
static inline void pkt_hexdump(const char *what, const uint8_t *b, size_t n)
{
	size_t i;

	printf("#   %s (%zu bytes):", what, n);
	for (i = 0; i < n; i++) {
		if (i % 16 == 0)
			printf("\n#     %04zx ", i);
		printf(" %02x", b[i]);
	}
	printf("\n");
}

/* --- Checking a reject = rst reply ----------------------------------- */

static inline int pkt_rst_fail(int *nfail, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static inline int pkt_rst_fail(int *nfail, const char *fmt, ...)
{
	va_list ap;

	printf("#   rst reply: ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return ++*nfail;
}

#define PKT_RST_EQ(what, got, want) do {				\
	unsigned long long g_ = (got), w_ = (want);			\
	if (g_ != w_)							\
		pkt_rst_fail(&nfail, "%s: got %#llx, want %#llx", what, g_, w_); \
} while (0)

/* Check that out[0..outlen) is the RST+ACK answering the SYN in[0..inlen)
 * whose layout is lo (IPv4 without options or IPv6 without extension
 * headers, VLAN tags allowed): MACs and IPs swapped, tags kept, IPv4
 * tot_len 40 / ttl 64 / id 0 / DF / valid checksum, IPv6 payload length 20 /
 * hop limit 64, TCP ports swapped, seq 0, ack = seq + 1 + SYN payload,
 * doff 5, RST|ACK, window 0, urgent pointer 0, valid checksum, and the frame
 * exactly as long as the reply. Prints one diagnostic per wrong field;
 * returns the number of wrong fields. */
static inline int pkt_check_rst_csum(const uint8_t *in, const struct pkt_layout *lo,
				     const uint8_t *out, size_t outlen, bool tcp_csum)
{
	int nfail = 0;
	size_t l3 = lo->l3, l4, want_len;
	bool v6 = pkt_get16(in, l3 - 2) == PKT_ETH_IPV6;
	uint32_t paylen, seq, sum;
	size_t doff;

	l4 = l3 + (v6 ? 40 : 20);
	want_len = l4 + 20;
	doff = (size_t)(in[lo->l4 + 12] >> 4) * 4;
	if (v6)
		paylen = pkt_get16(in, l3 + 4) - (uint32_t)doff;
	else
		paylen = pkt_get16(in, l3 + 2) - (uint32_t)(in[l3] & 0x0f) * 4 -
			 (uint32_t)doff;
	seq = pkt_get32(in, lo->l4 + 4);

	PKT_RST_EQ("frame length", outlen, want_len);
	if (outlen < want_len)
		return nfail;
	if (memcmp(out, in + 6, 6))
		pkt_rst_fail(&nfail, "destination MAC is not the SYN's source MAC");
	if (memcmp(out + 6, in, 6))
		pkt_rst_fail(&nfail, "source MAC is not the SYN's destination MAC");
	if (memcmp(out + 12, in + 12, l3 - 12))
		pkt_rst_fail(&nfail, "VLAN tags / ethertype not kept");
	if (v6) {
		PKT_RST_EQ("ipv6 version", out[l3] >> 4, 6);
		PKT_RST_EQ("ipv6 payload length", pkt_get16(out, l3 + 4), 20);
		PKT_RST_EQ("ipv6 next header", out[l3 + 6], PKT_IPPROTO_TCP);
		PKT_RST_EQ("ipv6 hop limit", out[l3 + 7], 64);
		if (memcmp(out + l3 + 8, in + l3 + 24, 16))
			pkt_rst_fail(&nfail, "ipv6 source is not the SYN's destination");
		if (memcmp(out + l3 + 24, in + l3 + 8, 16))
			pkt_rst_fail(&nfail, "ipv6 destination is not the SYN's source");
		sum = pkt_pseudo(out + l3 + 8, out + l3 + 24, 16, PKT_IPPROTO_TCP, 20);
	} else {
		PKT_RST_EQ("ipv4 version/ihl", out[l3], 0x45);
		PKT_RST_EQ("ipv4 tot_len", pkt_get16(out, l3 + 2), 40);
		PKT_RST_EQ("ipv4 id", pkt_get16(out, l3 + 4), 0);
		PKT_RST_EQ("ipv4 frag_off (DF)", pkt_get16(out, l3 + 6), 0x4000);
		PKT_RST_EQ("ipv4 ttl", out[l3 + 8], 64);
		PKT_RST_EQ("ipv4 protocol", out[l3 + 9], PKT_IPPROTO_TCP);
		PKT_RST_EQ("ipv4 header checksum (folded sum)",
			   pkt_fold(pkt_sum(0, out + l3, 20)), 0);
		if (memcmp(out + l3 + 12, in + l3 + 16, 4))
			pkt_rst_fail(&nfail, "ipv4 source is not the SYN's destination");
		if (memcmp(out + l3 + 16, in + l3 + 12, 4))
			pkt_rst_fail(&nfail, "ipv4 destination is not the SYN's source");
		sum = pkt_pseudo(out + l3 + 12, out + l3 + 16, 4, PKT_IPPROTO_TCP, 20);
	}
	PKT_RST_EQ("tcp source port", pkt_get16(out, l4), pkt_get16(in, lo->l4 + 2));
	PKT_RST_EQ("tcp dest port", pkt_get16(out, l4 + 2), pkt_get16(in, lo->l4));
	PKT_RST_EQ("tcp seq", pkt_get32(out, l4 + 4), 0);
	PKT_RST_EQ("tcp ack", pkt_get32(out, l4 + 8), (uint32_t)(seq + 1 + paylen));
	PKT_RST_EQ("tcp doff/reserved", out[l4 + 12], 0x50);
	PKT_RST_EQ("tcp flags", out[l4 + 13], PKT_TCP_RST | PKT_TCP_ACK);
	PKT_RST_EQ("tcp window", pkt_get16(out, l4 + 14), 0);
	PKT_RST_EQ("tcp urgent pointer", pkt_get16(out, l4 + 18), 0);
	if (tcp_csum)
		PKT_RST_EQ("tcp checksum (folded sum)", pkt_fold(pkt_sum(sum, out + l4, 20)), 0);
	return nfail;
}

static inline int pkt_check_rst(const uint8_t *in, const struct pkt_layout *lo,
				const uint8_t *out, size_t outlen)
{
	return pkt_check_rst_csum(in, lo, out, outlen, true);
}

#endif /* RG_TEST_PKT_H */
