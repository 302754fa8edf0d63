// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The packet table: crafted frames through rg_xdp and rg_tc with
 * BPF_PROG_TEST_RUN, each with its map setup, expected verdict and expected
 * counter. For every row and program it checks: test_run succeeded; the
 * verdict (xdp PASS/DROP/TX, tc OK/SHOT/REDIRECT); the expected counter
 * moved by exactly one packet (and the frame's bytes) while no other
 * verdict counter moved; rst_sent moved iff a reply was sent; a passed
 * frame left unmodified; a reply correct field by field; a SYN admitted by
 * a trusted subnet or a grant recorded its flow, and a dropped frame none.
 *
 * After the table, scenarios that need several frames: a connection that
 * outlives its grant, and grants/denies that expire in real time.
 */
#include "harness.h"

static int tap_n, tap_failed;
static const char *tap_tag = "";     /* appended to every line of a pass */

static void tap(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s %d - ", ok ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("%s\n", tap_tag);
	if (!ok)
		tap_failed = 1;
}

/* --- Addresses --------------------------------------------------------- */

#define C4 "198.51.100.10"          /* the client */
#define S4 "192.0.2.1"              /* the mail host */
#define C6 "2001:db8:100::10"
#define S6 "2001:db8::1"
#define M4 "::ffff:198.51.100.10"   /* the client, IPv4-mapped */
#define MS "::ffff:192.0.2.1"

static const uint8_t payload[64] = "EHLO relay.example\r\nMAIL FROM:<a@example.org>\r\n";
/* Fragment payloads that start like a SYN to 587 (40000 -> 587, doff 5,
 * SYN): a parser that ignored the fragment offset would judge them. */
static const uint8_t fake_tcp[64] = {
	0x9c, 0x40, 0x02, 0x4b, 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0,
};

/* --- Packet shapes ----------------------------------------------------- */

static void v4(struct pkt *p)
{
	pkt_init(p, PKT_L3_IPV4);
	pkt_addr4(p->src4, C4);
	pkt_addr4(p->dst4, S4);
}

static void v6(struct pkt *p)
{
	pkt_init(p, PKT_L3_IPV6);
	pkt_addr6(p->src6, C6);
	pkt_addr6(p->dst6, S6);
}

static void mapped(struct pkt *p)
{
	pkt_init(p, PKT_L3_IPV6);
	pkt_addr6(p->src6, M4);
	pkt_addr6(p->dst6, MS);
}

static void as_ack(struct pkt *p)
{
	p->tcp_flags = PKT_TCP_ACK;
	p->seq += 1;
	p->ack = 0x55667788;
}

static void as_data(struct pkt *p)
{
	as_ack(p);
	p->tcp_flags = PKT_TCP_PSH | PKT_TCP_ACK;
	p->payload = payload;
	p->paylen = 48;
}

static void syn_opts(struct pkt *p)
{
	/* MSS 1460, SACK permitted, timestamps, NOP, window scale 7 */
	static const uint8_t o[20] = {
		2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
	};

	memcpy(p->tcpopt, o, sizeof(o));
	p->tcpoptlen = sizeof(o);
}

static void ipopts(struct pkt *p, int n)
{
	memset(p->ipopt, 1, n);         /* NOPs */
	p->ipopt[n - 1] = 0;            /* EOL */
	p->ipoptlen = n;
}

static void v4_syn(struct pkt *p) { v4(p); }
static void v4_ack(struct pkt *p) { v4(p); as_ack(p); }
static void v4_data(struct pkt *p) { v4(p); as_data(p); }
static void v4_rst(struct pkt *p) { v4(p); p->tcp_flags = PKT_TCP_RST; }
static void v4_finack(struct pkt *p) { v4(p); as_ack(p); p->tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK; }
static void v4_synack(struct pkt *p) { v4(p); as_ack(p); p->tcp_flags = PKT_TCP_SYN | PKT_TCP_ACK; }
static void v4_ack_465(struct pkt *p) { v4(p); as_ack(p); p->dport = 465; }
static void v4_syn_465(struct pkt *p) { v4(p); p->dport = 465; }
static void v4_syn_25(struct pkt *p) { v4(p); p->dport = 25; }
static void v4_syn_2525(struct pkt *p) { v4(p); p->dport = 2525; }
static void v4_syn_ecn(struct pkt *p) { v4(p); p->tcp_flags |= PKT_TCP_ECE | PKT_TCP_CWR; }
static void v4_udp(struct pkt *p) { v4(p); p->l4 = PKT_L4_UDP; }
static void v4_icmp(struct pkt *p) { v4(p); p->l4 = PKT_L4_ICMP; }
static void v4_syn_payload(struct pkt *p) { v4(p); p->payload = payload; p->paylen = 10; }
static void v4_syn_tcpopts(struct pkt *p) { v4(p); syn_opts(p); }
static void v4_syn_padded(struct pkt *p) { v4(p); p->trailer = 6; }  /* 60-byte frame */
static void v4_syn_seqmax(struct pkt *p) { v4(p); p->seq = 0xffffffff; }

static void arp(struct pkt *p)
{
	pkt_init(p, PKT_L3_ARP);
	pkt_addr4(p->src4, C4);
	pkt_addr4(p->dst4, S4);
}

static void lldp(struct pkt *p)
{
	pkt_init(p, PKT_L3_NONE);
	p->ethertype = 0x88cc;
	p->payload = payload;
	p->paylen = 46;
}

static void v4_vlan_syn(struct pkt *p) { v4(p); pkt_vlan(p, PKT_ETH_8021Q, 100); }
static void v4_vlan_udp(struct pkt *p) { v4_vlan_syn(p); p->l4 = PKT_L4_UDP; }
static void vlan_arp(struct pkt *p) { arp(p); pkt_vlan(p, PKT_ETH_8021Q, 100); }
static void v4_qinq_syn(struct pkt *p)
{
	v4(p);
	pkt_vlan(p, PKT_ETH_8021AD, 10);
	pkt_vlan(p, PKT_ETH_8021Q, 100);
}
static void v4_qq_syn(struct pkt *p)
{
	v4(p);
	pkt_vlan(p, PKT_ETH_8021Q, 10);
	pkt_vlan(p, PKT_ETH_8021Q, 100);
}
static void v4_3tag_syn(struct pkt *p)
{
	v4_qinq_syn(p);
	pkt_vlan(p, PKT_ETH_8021Q, 200);
}
static void v4_3tag_udp(struct pkt *p) { v4_3tag_syn(p); p->l4 = PKT_L4_UDP; }

static void v4_opt_syn(struct pkt *p) { v4(p); ipopts(p, 4); }
static void v4_opt40_syn(struct pkt *p) { v4(p); ipopts(p, 40); }
static void v4_opt_syn_25(struct pkt *p) { v4_opt_syn(p); p->dport = 25; }

static void v4_frag_first(struct pkt *p)
{
	v4(p);
	p->df = false;
	p->mf = true;
	p->payload = payload;
	p->paylen = 64;
}

static void v4_frag_nonfirst(struct pkt *p)
{
	v4(p);
	p->df = false;
	p->mf = true;
	p->frag_off = 185;
	p->l4 = PKT_L4_RAW;
	p->proto_set = true;
	p->proto = PKT_IPPROTO_TCP;
	p->payload = fake_tcp;
	p->paylen = 64;
}

static void v4_frag_last(struct pkt *p) { v4_frag_nonfirst(p); p->mf = false; p->frag_off = 1; }

static void v4_frag_tiny(struct pkt *p)
{
	/* Ports and sequence number only: the flags are in the next fragment. */
	v4_frag_nonfirst(p);
	p->frag_off = 0;
	p->paylen = 8;
}

static void v6_syn(struct pkt *p) { v6(p); }
static void v6_ack(struct pkt *p) { v6(p); as_ack(p); }
static void v6_data(struct pkt *p) { v6(p); as_data(p); }
static void v6_rst(struct pkt *p) { v6(p); p->tcp_flags = PKT_TCP_RST; }
static void v6_syn_25(struct pkt *p) { v6(p); p->dport = 25; }
static void v6_syn_465(struct pkt *p) { v6(p); p->dport = 465; }
static void v6_udp(struct pkt *p) { v6(p); p->l4 = PKT_L4_UDP; }
static void v6_icmp(struct pkt *p) { v6(p); p->l4 = PKT_L4_ICMP; }
static void v6_nonext(struct pkt *p) { v6(p); p->l4 = PKT_L4_NONE; }
static void v6_syn_payload(struct pkt *p) { v6(p); p->payload = payload; p->paylen = 33; }
static void v6_syn_tcpopts(struct pkt *p) { v6(p); syn_opts(p); }
static void v6_vlan_syn(struct pkt *p) { v6(p); pkt_vlan(p, PKT_ETH_8021Q, 7); }
static void v6_qinq_syn(struct pkt *p)
{
	v6(p);
	pkt_vlan(p, PKT_ETH_8021AD, 7);
	pkt_vlan(p, PKT_ETH_8021Q, 8);
}
static void v6_3tag_syn(struct pkt *p) { v6_qinq_syn(p); pkt_vlan(p, PKT_ETH_8021AD, 9); }
static void v6_hbh_syn(struct pkt *p) { v6(p); pkt_ext_add(p, PKT_IPPROTO_HOPOPTS, 0); }
static void v6_hbh16_syn(struct pkt *p) { v6(p); pkt_ext_add(p, PKT_IPPROTO_HOPOPTS, 1); }
static void v6_rt_syn(struct pkt *p) { v6(p); pkt_ext_add(p, PKT_IPPROTO_ROUTING, 2); }
static void v6_dst_syn(struct pkt *p) { v6(p); pkt_ext_add(p, PKT_IPPROTO_DSTOPTS, 0); }
static void v6_hbh_udp(struct pkt *p) { v6_hbh_syn(p); p->l4 = PKT_L4_UDP; }

static void v6_frag_first(struct pkt *p)
{
	v6(p);
	pkt_frag6_add(p, 0, true);
	p->payload = payload;
	p->paylen = 64;
}

static void v6_frag_atomic(struct pkt *p) { v6(p); pkt_frag6_add(p, 0, false); }

static void v6_frag_nonfirst(struct pkt *p)
{
	v6(p);
	pkt_frag6_add(p, 181, true);
	p->l4 = PKT_L4_RAW;
	p->proto_set = true;
	p->proto = PKT_IPPROTO_TCP;
	p->payload = fake_tcp;
	p->paylen = 64;
}

static void v6_frag_last(struct pkt *p) { v6_frag_nonfirst(p); p->ext[0].more = false; }

static void v6_frag_tiny(struct pkt *p)
{
	v6_frag_nonfirst(p);
	p->ext[0].frag_off = 0;
	p->paylen = 8;
}

static void chain(struct pkt *p, int n)
{
	static const uint8_t t[] = {
		PKT_IPPROTO_DSTOPTS, PKT_IPPROTO_ROUTING, PKT_IPPROTO_DSTOPTS,
	};
	int i;

	v6(p);
	pkt_ext_add(p, PKT_IPPROTO_HOPOPTS, 0);
	for (i = 1; i < n; i++)
		pkt_ext_add(p, t[i % 3], 0);
}

static void v6_chain8_syn(struct pkt *p) { chain(p, 8); }
static void v6_chain9_syn(struct pkt *p) { chain(p, 9); }
static void v6_chain12_udp(struct pkt *p) { chain(p, 12); p->l4 = PKT_L4_UDP; }

static void v6_mixed_syn(struct pkt *p)
{
	v6(p);
	pkt_ext_add(p, PKT_IPPROTO_HOPOPTS, 0);
	pkt_ext_add(p, PKT_IPPROTO_DSTOPTS, 1);
	pkt_ext_add(p, PKT_IPPROTO_ROUTING, 2);
	pkt_frag6_add(p, 0, false);
	pkt_ext_add(p, PKT_IPPROTO_DSTOPTS, 0);
}

static void m_syn(struct pkt *p) { mapped(p); }

/* --- Raw edits after the build ---------------------------------------- */

/* An IPsec AH header (12 bytes, no ICV) between IPv4 and the transport
 * header: the gate looks through it (bpf/parse.h rg_skip_ah4). */
static void ed_ah4(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	uint8_t *ah = b + lo->l4;

	memmove(ah + 12, ah, *len - lo->l4);
	memset(ah, 0, 12);
	ah[0] = b[lo->l3 + 9];          /* next header: the transport */
	ah[1] = 1;                      /* (12 / 4) - 2 */
	pkt_put32(ah, 4, 0x1000);       /* SPI */
	pkt_put32(ah, 8, 1);            /* sequence */
	b[lo->l3 + 9] = 51;
	pkt_put16(b, lo->l3 + 2, (uint16_t)(pkt_get16(b, lo->l3 + 2) + 12));
	pkt_fix_ip4_csum(b, lo->l3);
	*len += 12;
}

static void ed_ihl4(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	(void)len;
	b[lo->l3] = 0x44;
	pkt_fix_ip4_csum(b, lo->l3);
}

static void ed_ihl0(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	(void)len;
	b[lo->l3] = 0x40;
}

static void ed_doff4(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	(void)len;
	b[lo->l4 + 12] = 0x40;
}

static void ed_doff0(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	(void)len;
	b[lo->l4 + 12] = 0x00;
}

static void ed_doff15(uint8_t *b, size_t *len, const struct pkt_layout *lo)
{
	(void)len;
	b[lo->l4 + 12] = 0xf0;      /* 60 bytes of header, 20 present */
}

/* --- The table ---------------------------------------------------------- */

enum { E_NONE, E_LIVE, E_PAST };   /* a grant or deny: none, now+1s, now-1ns */
enum { CUT_NONE, CUT_ABS, CUT_L3, CUT_L4 };

#define PASS HV_PASS
#define DROP HV_DROP
#define RST  HV_TX

struct row {
	const char *name;
	void (*mk)(struct pkt *p);
	const char *src;            /* overrides the shape's source address */
	int cut, cut_off;           /* truncate the frame at layer + offset */
	void (*edit)(uint8_t *b, size_t *len, const struct pkt_layout *lo);
	/* setup on top of h_reset() */
	const char *trust[2];
	const char *grant;          /* key, already masked */
	int grant_exp;
	const char *deny;
	int deny_exp;
	uint32_t tiface;
	bool flow;                  /* the frame's own flow is in rg_flows */
	bool rst;                   /* reject = rst */
	bool unconfigured;          /* rg_config all zero (defaults apply) */
	uint32_t v4p, v6p;          /* 0: 32 / 64 */
	uint16_t port_on, port_off;
	/* expectation */
	enum h_verdict verdict;
	enum rg_stat stat;
};

#define G(k)  .grant = (k), .grant_exp = E_LIVE
#define GX(k) .grant = (k), .grant_exp = E_PAST
#define D(k)  .deny = (k), .deny_exp = E_LIVE
#define DX(k) .deny = (k), .deny_exp = E_PAST
#define T(c)  .trust = { (c) }
#define EXPECT(v, s) .verdict = (v), .stat = RG_STAT_##s

static const struct row rows[] = {
	/* SPEC's table, IPv4 */
	{ "v4 SYN from nowhere", v4_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 SYN on a trusted interface", v4_syn, .tiface = H_IFINDEX_LO,
	  EXPECT(PASS, PASS_IFACE) },
	{ "v4 SYN, another interface is trusted", v4_syn, .tiface = 7, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 SYN from a denied source", v4_syn, D(C4), EXPECT(DROP, DROP_DENIED) },
	{ "v4 SYN, deny expired 1ns ago", v4_syn, DX(C4), EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 SYN from a trusted /24", v4_syn, T("198.51.100.0/24"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 SYN, grant expires in 1s", v4_syn, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 SYN, grant expired 1ns ago", v4_syn, GX(C4), EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 SYN to 465, granted", v4_syn_465, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 SYN+ECE+CWR (ECN setup), granted", v4_syn_ecn, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 ACK of an admitted flow", v4_ack, .flow = true, EXPECT(PASS, PASS_FLOW) },
	{ "v4 data of an admitted flow to 465", v4_ack_465, .flow = true, EXPECT(PASS, PASS_FLOW) },
	{ "v4 FIN+ACK of an admitted flow", v4_finack, .flow = true, EXPECT(PASS, PASS_FLOW) },
	{ "v4 SYN+ACK of an admitted flow (not a SYN)", v4_synack, .flow = true,
	  EXPECT(PASS, PASS_FLOW) },
	{ "v4 stray ACK", v4_ack, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 stray data", v4_data, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 stray RST", v4_rst, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 SYN of a known flow, no grant (SYNs never pass by flow)", v4_syn, .flow = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 deny overrides a grant", v4_syn, G(C4), D(C4), EXPECT(DROP, DROP_DENIED) },
	{ "v4 deny overrides a trusted subnet", v4_syn, T("198.51.100.0/24"), D(C4),
	  EXPECT(DROP, DROP_DENIED) },
	{ "v4 deny overrides an admitted flow", v4_ack, .flow = true, D(C4),
	  EXPECT(DROP, DROP_DENIED) },
	{ "v4 trusted interface overrides deny", v4_syn, D(C4), .tiface = H_IFINDEX_LO,
	  EXPECT(PASS, PASS_IFACE) },
	{ "v4 grant keyed /24 (v4_prefix 24)", v4_syn, G("198.51.100.0"), .v4p = 24,
	  EXPECT(PASS, PASS_GRANT) },
	{ "v4 grant for another /24 (v4_prefix 24)", v4_syn, G("198.51.101.0"), .v4p = 24,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 deny keyed /24 (v4_prefix 24) overrides trust", v4_syn, D("198.51.100.0"), .v4p = 24,
	  T("198.51.100.10/32"), EXPECT(DROP, DROP_DENIED) },
	{ "v4 unconfigured rg_config: /32 default, exact grant", v4_syn, G(C4),
	  .unconfigured = true,
	  EXPECT(PASS, PASS_GRANT) },
	{ "v4 unconfigured rg_config: /32 default, not /0", v4_syn, G("0.0.0.0"),
	  .unconfigured = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 unprotected port 25", v4_syn_25, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 port 587 unprotected by rg_ports", v4_syn, .port_off = 587,
	  EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 port 2525 protected by rg_ports", v4_syn_2525, .port_on = 2525,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 UDP to 587", v4_udp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 AH + TCP SYN to 587, unauthorised: judged through AH", v4_syn, .edit = ed_ah4,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 AH + TCP SYN to 587, granted", v4_syn, .edit = ed_ah4, G(C4),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v4 AH + UDP to 587", v4_udp, .edit = ed_ah4, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 ICMP echo", v4_icmp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "ARP request", arp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "LLDP frame (not IP)", lldp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 SYN in a 60-byte padded frame, granted", v4_syn_padded, G(C4),
	  EXPECT(PASS, PASS_GRANT) },

	/* trusted-prefix edges, IPv4 */
	{ "v4 trust 0.0.0.0/0", v4_syn, T("0.0.0.0/0"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 trust /32 of the source", v4_syn, T("198.51.100.10/32"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 trust /32 of the neighbour", v4_syn, T("198.51.100.11/32"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 first address of a trusted /24", v4_syn, .src = "198.51.100.0", T("198.51.100.0/24"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 last address of a trusted /24", v4_syn, .src = "198.51.100.255", T("198.51.100.0/24"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 one past a trusted /24", v4_syn, .src = "198.51.101.0", T("198.51.100.0/24"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 one before a trusted /24", v4_syn, .src = "198.51.99.255", T("198.51.100.0/24"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 nested prefixes /8 and /30", v4_syn, .src = "198.51.100.77",
	  .trust = { "198.0.0.0/8", "198.51.100.76/30" }, EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 trusted v6 prefix does not trust v4", v4_syn, T("::/0"), EXPECT(DROP, DROP_UNAUTH) },

	/* VLAN */
	{ "v4 802.1Q SYN, granted", v4_vlan_syn, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 802.1Q SYN from nowhere", v4_vlan_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 802.1Q UDP", v4_vlan_udp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "802.1Q ARP", vlan_arp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 QinQ (802.1ad+802.1Q) SYN from nowhere", v4_qinq_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 QinQ SYN from a trusted subnet", v4_qinq_syn, T("198.51.100.0/24"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 double 802.1Q SYN from nowhere", v4_qq_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 three VLAN tags, SYN", v4_3tag_syn, G(C4), EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 three VLAN tags, UDP", v4_3tag_udp, EXPECT(DROP, DROP_MALFORMED) },

	/* IPv4 options */
	{ "v4 options (ihl 6) SYN, granted", v4_opt_syn, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 options (ihl 6) SYN from nowhere", v4_opt_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 40 bytes of options (ihl 15) SYN from nowhere", v4_opt40_syn,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 40 bytes of options, trusted", v4_opt40_syn, T("198.51.100.0/24"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v4 options, port 25", v4_opt_syn_25, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 ihl 4", v4_syn, .edit = ed_ihl4, G(C4), EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 ihl 0", v4_syn, .edit = ed_ihl0, EXPECT(DROP, DROP_MALFORMED) },

	/* IPv4 fragments */
	{ "v4 first fragment from nowhere", v4_frag_first, EXPECT(DROP, DROP_UNAUTH) },
	{ "v4 first fragment, granted", v4_frag_first, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "v4 non-first fragment", v4_frag_nonfirst, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 last fragment (offset 8)", v4_frag_last, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v4 tiny first fragment (8 bytes of TCP)", v4_frag_tiny, G(C4),
	  EXPECT(DROP, DROP_MALFORMED) },

	/* truncation, IPv4 */
	{ "cut inside a VLAN tag", v4_vlan_syn, .cut = CUT_ABS, .cut_off = 16,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut after 10 bytes of IP header", v4_syn, .cut = CUT_L3, .cut_off = 10,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut after 19 bytes of IP header", v4_syn, .cut = CUT_L3, .cut_off = 19,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 UDP cut inside the IP header", v4_udp, .cut = CUT_L3, .cut_off = 12,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 802.1Q cut inside the IP header", v4_vlan_syn, .cut = CUT_L3, .cut_off = 8,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut inside IP options", v4_opt40_syn, .cut = CUT_L3, .cut_off = 30,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut after 3 bytes of TCP", v4_syn, .cut = CUT_L4, .cut_off = 3,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut after 10 bytes of TCP", v4_syn, .cut = CUT_L4, .cut_off = 10, G(C4),
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut after 19 bytes of TCP", v4_syn, .cut = CUT_L4, .cut_off = 19,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 cut inside TCP options", v4_syn_tcpopts, .cut = CUT_L4, .cut_off = 28,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 TCP doff 4", v4_syn, .edit = ed_doff4, G(C4), EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 TCP doff 0", v4_syn, .edit = ed_doff0, EXPECT(DROP, DROP_MALFORMED) },
	{ "v4 TCP doff 15 beyond the frame", v4_syn, .edit = ed_doff15, G(C4),
	  EXPECT(DROP, DROP_MALFORMED) },

	/* SPEC's table, IPv6 */
	{ "v6 SYN from nowhere", v6_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 SYN on a trusted interface", v6_syn, .tiface = H_IFINDEX_LO,
	  EXPECT(PASS, PASS_IFACE) },
	{ "v6 SYN from a denied /64", v6_syn, D("2001:db8:100::"), EXPECT(DROP, DROP_DENIED) },
	{ "v6 SYN, deny expired 1ns ago", v6_syn, DX("2001:db8:100::"), EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 SYN from a trusted /48", v6_syn, T("2001:db8:100::/48"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 SYN, grant (/64 key) expires in 1s", v6_syn, G("2001:db8:100::"),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 SYN, grant expired 1ns ago", v6_syn, GX("2001:db8:100::"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 SYN, unmasked grant key does not match", v6_syn, G(C6), EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 SYN to 465, granted", v6_syn_465, G("2001:db8:100::"), EXPECT(PASS, PASS_GRANT) },
	{ "v6 ACK of an admitted flow", v6_ack, .flow = true, EXPECT(PASS, PASS_FLOW) },
	{ "v6 stray ACK", v6_ack, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 stray data", v6_data, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 stray RST", v6_rst, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 SYN of a known flow, no grant", v6_syn, .flow = true, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 deny overrides a grant", v6_syn, G("2001:db8:100::"), D("2001:db8:100::"),
	  EXPECT(DROP, DROP_DENIED) },
	{ "v6 deny overrides a trusted subnet", v6_syn, T("2001:db8::/32"), D("2001:db8:100::"),
	  EXPECT(DROP, DROP_DENIED) },
	{ "v6 grant /64 covers a privacy address", v6_syn,
	  .src = "2001:db8:100:0:a1b2:c3d4:e5f6:789a",
	  G("2001:db8:100::"), EXPECT(PASS, PASS_GRANT) },
	{ "v6 grant /64 does not cover the next /64", v6_syn, .src = "2001:db8:100:1::10",
	  G("2001:db8:100::"), EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 grant keyed /56 (v6_prefix 56)", v6_syn, .src = "2001:db8:100:ff::1",
	  G("2001:db8:100::"), .v6p = 56, EXPECT(PASS, PASS_GRANT) },
	{ "v6 grant keyed /128 (v6_prefix 128)", v6_syn, G(C6), .v6p = 128,
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 unconfigured rg_config: /64 default", v6_syn, .src = "2001:db8:100::abcd",
	  G("2001:db8:100::"), .unconfigured = true, EXPECT(PASS, PASS_GRANT) },
	{ "v6 unconfigured rg_config: /64 default, not /0", v6_syn, G("::"), .unconfigured = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 unprotected port 25", v6_syn_25, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 UDP to 587", v6_udp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 ICMPv6 echo", v6_icmp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 no next header", v6_nonext, EXPECT(PASS, PASS_UNPROTECTED) },

	/* trusted-prefix edges, IPv6 */
	{ "v6 trust ::/0", v6_syn, T("::/0"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 trust /128 of the source", v6_syn, T("2001:db8:100::10/128"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 trust /128 of the neighbour", v6_syn, T("2001:db8:100::11/128"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 first address of a trusted /48", v6_syn, .src = "2001:db8:100::",
	  T("2001:db8:100::/48"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 last address of a trusted /48", v6_syn,
	  .src = "2001:db8:100:ffff:ffff:ffff:ffff:ffff",
	  T("2001:db8:100::/48"), EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 one past a trusted /48", v6_syn, .src = "2001:db8:101::", T("2001:db8:100::/48"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 one before a trusted /48", v6_syn, .src = "2001:db8:ff:ffff:ffff:ffff:ffff:ffff",
	  T("2001:db8:100::/48"), EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 trusted v4 prefix does not trust v6", v6_syn, T("0.0.0.0/0"),
	  EXPECT(DROP, DROP_UNAUTH) },

	/* IPv4-mapped sources are IPv4 */
	{ "mapped SYN, trusted v4 /24", m_syn, T("198.51.100.0/24"), EXPECT(PASS, PASS_TRUSTED) },
	{ "mapped SYN, v4 grant", m_syn, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "mapped SYN, v4 /24 grant (v4_prefix 24)", m_syn, G("198.51.100.0"), .v4p = 24,
	  EXPECT(PASS, PASS_GRANT) },
	{ "mapped SYN, v4 deny overrides v4 grant", m_syn, G(C4), D(C4),
	  EXPECT(DROP, DROP_DENIED) },
	{ "mapped SYN, only ::ffff:0:0/96 trusted (v6 trie unused)", m_syn, T("::ffff:0:0/96"),
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "mapped SYN, only a v6 grant for ::/64", m_syn, G("::"), EXPECT(DROP, DROP_UNAUTH) },
	{ "mapped SYN from nowhere", m_syn, EXPECT(DROP, DROP_UNAUTH) },

	/* VLAN, IPv6 */
	{ "v6 802.1Q SYN from a trusted subnet", v6_vlan_syn, T("2001:db8:100::/48"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 QinQ SYN from nowhere", v6_qinq_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 QinQ SYN, granted", v6_qinq_syn, G("2001:db8:100::"), EXPECT(PASS, PASS_GRANT) },
	{ "v6 three VLAN tags", v6_3tag_syn, T("::/0"), EXPECT(DROP, DROP_MALFORMED) },

	/* IPv6 extension headers */
	{ "v6 hop-by-hop + SYN, granted", v6_hbh_syn, G("2001:db8:100::"),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 hop-by-hop + SYN from nowhere", v6_hbh_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 hop-by-hop (16 bytes) + SYN from nowhere", v6_hbh16_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 routing header + SYN from nowhere", v6_rt_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 routing header + SYN, trusted", v6_rt_syn, T("2001:db8:100::/48"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 destination options + SYN from nowhere", v6_dst_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 destination options + SYN, trusted", v6_dst_syn, T("2001:db8:100::/48"),
	  EXPECT(PASS, PASS_TRUSTED) },
	{ "v6 hop-by-hop + UDP", v6_hbh_udp, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 HBH+DST+RT+FRAG(0)+DST + SYN from nowhere", v6_mixed_syn, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 HBH+DST+RT+FRAG(0)+DST + SYN, granted", v6_mixed_syn, G("2001:db8:100::"),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 chain of 8 extension headers + SYN from nowhere", v6_chain8_syn,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 chain of 8 extension headers + SYN, granted", v6_chain8_syn, G("2001:db8:100::"),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 chain of 9 extension headers (too long)", v6_chain9_syn, G("2001:db8:100::"),
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 chain of 12 extension headers + UDP (too long)", v6_chain12_udp,
	  EXPECT(DROP, DROP_MALFORMED) },

	/* IPv6 fragments */
	{ "v6 first fragment from nowhere", v6_frag_first, EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 first fragment, granted", v6_frag_first, G("2001:db8:100::"),
	  EXPECT(PASS, PASS_GRANT) },
	{ "v6 atomic fragment (offset 0, M=0) from nowhere", v6_frag_atomic,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "v6 non-first fragment", v6_frag_nonfirst, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 last fragment", v6_frag_last, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "v6 tiny first fragment (8 bytes of TCP)", v6_frag_tiny, G("2001:db8:100::"),
	  EXPECT(DROP, DROP_MALFORMED) },

	/* truncation, IPv6 */
	{ "v6 cut after 30 bytes of IPv6 header", v6_syn, .cut = CUT_L3, .cut_off = 30,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 cut after 39 bytes of IPv6 header", v6_syn, .cut = CUT_L3, .cut_off = 39,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 cut inside a hop-by-hop header", v6_hbh16_syn, .cut = CUT_L3, .cut_off = 50,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 cut inside a fragment header", v6_frag_first, .cut = CUT_L3, .cut_off = 44,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 cut right after the extension headers", v6_mixed_syn, .cut = CUT_L4, .cut_off = 0,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 cut after 12 bytes of TCP", v6_syn, .cut = CUT_L4, .cut_off = 12, G("2001:db8:100::"),
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 TCP doff 4", v6_syn, .edit = ed_doff4, EXPECT(DROP, DROP_MALFORMED) },
	{ "v6 TCP doff 15 beyond the frame", v6_syn, .edit = ed_doff15,
	  EXPECT(DROP, DROP_MALFORMED) },

	/* reject = rst */
	{ "rst: v4 SYN from nowhere", v4_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN from a denied source is only dropped", v4_syn, .rst = true, D(C4), G(C4),
	  EXPECT(DROP, DROP_DENIED) },
	{ "rst: v4 SYN carrying 10 bytes of data", v4_syn_payload, .rst = true,
	  EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN with TCP options", v4_syn_tcpopts, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN in a padded 60-byte frame", v4_syn_padded, .rst = true,
	  EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN with seq 0xffffffff", v4_syn_seqmax, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 802.1Q SYN", v4_vlan_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 QinQ SYN", v4_qinq_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN to 465", v4_syn_465, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v4 SYN with IP options is only dropped", v4_opt_syn, .rst = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v4 stray ACK is only dropped", v4_ack, .rst = true, EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v4 stray SYN+ACK is only dropped", v4_synack, .rst = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v4 first fragment SYN is only dropped", v4_frag_first, .rst = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v4 malformed SYN is only dropped", v4_syn, .edit = ed_doff4, .rst = true,
	  EXPECT(DROP, DROP_MALFORMED) },
	{ "rst: v4 granted SYN passes", v4_syn, .rst = true, G(C4), EXPECT(PASS, PASS_GRANT) },
	{ "rst: v4 SYN to port 25 passes", v4_syn_25, .rst = true, EXPECT(PASS, PASS_UNPROTECTED) },
	{ "rst: v6 SYN from nowhere", v6_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v6 SYN from a denied source is only dropped", v6_syn, .rst = true,
	  D("2001:db8:100::"), EXPECT(DROP, DROP_DENIED) },
	{ "rst: v6 SYN carrying 33 bytes of data", v6_syn_payload, .rst = true,
	  EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v6 SYN with TCP options", v6_syn_tcpopts, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v6 802.1Q SYN", v6_vlan_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v6 QinQ SYN", v6_qinq_syn, .rst = true, EXPECT(RST, DROP_UNAUTH) },
	{ "rst: v6 SYN with hop-by-hop is only dropped", v6_hbh_syn, .rst = true,
	  EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v6 stray data is only dropped", v6_data, .rst = true, EXPECT(DROP, DROP_UNAUTH) },
	{ "rst: v6 trusted SYN passes", v6_syn, .rst = true, T("2001:db8:100::/48"),
	  EXPECT(PASS, PASS_TRUSTED) },
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

static int setup_row(struct harness *h, const struct row *r)
{
	uint64_t now = h_now(), live = now + 1000000000ull;
	int err = h_reset(h), i;

	if (r->unconfigured) {
		struct rg_config c = { 0 };

		err = err ?: h_config(h, &c);
	} else {
		err = err ?: h_cfg(h, r->rst ? RG_CFG_REJECT_RST : 0, r->v4p ?: 32, r->v6p ?: 64);
	}
	for (i = 0; i < 2; i++)
		if (r->trust[i])
			err = err ?: h_trust(h, r->trust[i]);
	/* live: expires in 1 s; expired: 1 ns ago */
	if (r->grant)
		err = err ?: h_grant(h, r->grant, r->grant_exp == E_LIVE ? live : now - 1);
	if (r->deny)
		err = err ?: h_deny(h, r->deny, r->deny_exp == E_LIVE ? live : now - 1);
	if (r->tiface)
		err = err ?: h_tiface(h, r->tiface);
	if (r->port_on)
		err = err ?: h_port(h, r->port_on, true);
	if (r->port_off)
		err = err ?: h_port(h, r->port_off, false);
	return err;
}

static size_t build_row(const struct row *r, struct pkt *p, uint8_t *b, struct pkt_layout *lo)
{
	size_t len, cut;

	r->mk(p);
	if (r->src) {
		if (p->l3 == PKT_L3_IPV6)
			pkt_addr6(p->src6, r->src);
		else
			pkt_addr4(p->src4, r->src);
	}
	len = pkt_build(p, b, PKT_MAX, lo);
	if (r->edit)
		r->edit(b, &len, lo);
	cut = r->cut == CUT_ABS ? (size_t)r->cut_off :
	      r->cut == CUT_L3 ? lo->l3 + r->cut_off :
	      r->cut == CUT_L4 ? lo->l4 + r->cut_off : len;
	return pkt_truncate(len, cut);
}

static bool is_syn(const struct pkt *p)
{
	return p->l4 == PKT_L4_TCP && (p->tcp_flags & PKT_TCP_SYN) && !(p->tcp_flags & PKT_TCP_ACK);
}

static bool is_mapped(const struct pkt *p)
{
	static const uint8_t pre[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return p->l3 == PKT_L3_IPV6 && !memcmp(p->src6, pre, 12);
}

/* Counters: exactly `stat` moved by one packet (and len bytes unless a
 * reply rewrote the frame), no other verdict moved, rst_sent iff tx. */
static int check_counters(const struct rg_counter *a, const struct rg_counter *b,
			  enum rg_stat stat, size_t len, bool tx)
{
	int bad = 0;
	unsigned s;
	uint64_t d;

	for (s = 0; s < RG_VERDICT_MAX; s++) {
		uint64_t dp = b[s].packets - a[s].packets, db = b[s].bytes - a[s].bytes;
		uint64_t want = s == stat ? 1 : 0;

		if (dp != want) {
			printf("#   counter %s moved by %llu, want %llu\n", h_stat_name[s],
			       (unsigned long long)dp, (unsigned long long)want);
			bad++;
		} else if (s == stat && !tx && db != len) {
			printf("#   counter %s bytes moved by %llu, want %zu\n", h_stat_name[s],
			       (unsigned long long)db, len);
			bad++;
		}
	}
	d = b[RG_STAT_RST_SENT].packets - a[RG_STAT_RST_SENT].packets;
	if (d != (tx ? 1u : 0u)) {
		printf("#   counter rst_sent moved by %llu, want %d\n", (unsigned long long)d, tx);
		bad++;
	}
	return bad;
}

/* Flow bookkeeping after one frame: an admitted SYN (trusted/grant) left
 * its exact key, with the reason and ifindex; a dropped frame left none. */
static int check_flows(struct harness *h, const struct pkt *p, const struct row *r,
		       const struct h_result *res, long before, uint64_t t0, uint64_t t1)
{
	long after = h_count(h->flows_fd);
	struct rg_flow_key k;
	struct rg_flow f;

	if (res->verdict != HV_PASS) {
		if (after != before) {
			printf("#   rg_flows went from %ld to %ld entries on a drop\n",
			       before, after);
			return 1;
		}
		return 0;
	}
	if (!is_syn(p) || (r->stat != RG_STAT_PASS_TRUSTED && r->stat != RG_STAT_PASS_GRANT))
		return 0;
	if (after != before + 1) {
		printf("#   rg_flows went from %ld to %ld entries on an admitted SYN\n",
		       before, after);
		return 1;
	}
	if (is_mapped(p))
		return 0;       /* the entry exists; its exact key is checked by the scenario */
	h_flow_key_of(p, &k);
	if (bpf_map_lookup_elem(h->flows_fd, &k, &f)) {
		printf("#   admitted SYN's flow key is not in rg_flows\n");
		return 1;
	}
	if (f.reason != r->stat || f.ifindex != H_IFINDEX_LO ||
	    f.admitted < t0 || f.admitted > t1) {
		printf("#   flow value: reason %u (want %u), ifindex %u (want %u), "
		       "admitted %llu (want %llu..%llu)\n",
		       f.reason, r->stat, f.ifindex, H_IFINDEX_LO, (unsigned long long)f.admitted,
		       (unsigned long long)t0, (unsigned long long)t1);
		return 1;
	}
	return 0;
}

/*
 * The kernel's BPF_PROG_TEST_RUN for tc programs builds a real skb and
 * refuses (EINVAL) an untagged IPv4 frame with less than a whole IPv4
 * header, or IPv6 with less than a whole IPv6 header. Such frames are
 * judged through rg_xdp only (the tc program shares its parser).
 */
static bool tc_refuses(const uint8_t *b, size_t len)
{
	uint16_t et = pkt_get16(b, 12);

	return (et == PKT_ETH_IP && len < 14 + 20) || (et == PKT_ETH_IPV6 && len < 14 + 40);
}

static void run_row(struct harness *h, const struct row *r, enum h_prog prog)
{
	static struct h_result res;
	struct rg_counter a[RG_STAT_MAX], b[RG_STAT_MAX];
	uint8_t frame[PKT_MAX];
	struct pkt_layout lo;
	struct pkt p;
	size_t len;
	long flows_before;
	uint64_t t0, t1;
	int bad = 0;

	len = build_row(r, &p, frame, &lo);
	if (prog == H_TC && len && tc_refuses(frame, len)) {
		printf("# tc: %s: not run (test_run refuses a short IP header; judged by xdp)\n",
		       r->name);
		return;
	}
	if (!len || setup_row(h, r)) {
		tap(false, "%s: %s (setup failed)", h_prog_name[prog], r->name);
		return;
	}
	if (r->flow && h_flow(h, &p)) {
		tap(false, "%s: %s (flow setup failed)", h_prog_name[prog], r->name);
		return;
	}
	flows_before = h_count(h->flows_fd);
	if (h_stats(h, a)) {
		tap(false, "%s: %s (stats)", h_prog_name[prog], r->name);
		return;
	}
	t0 = h_now();
	h_run(h, prog, frame, len, H_IFINDEX_LO, &res);
	t1 = h_now();
	if (res.err) {
		printf("#   test_run: %s\n", strerror(-res.err));
		bad++;
		goto out;
	}
	if (res.verdict != r->verdict) {
		printf("#   verdict %s (retval %u), want %s\n", h_verdict_name[res.verdict],
		       res.retval, h_verdict_name[r->verdict]);
		bad++;
	}
	if (h_stats(h, b))
		bad++;
	else
		bad += check_counters(a, b, r->stat, len, r->verdict == HV_TX);
	if (res.verdict == HV_PASS && (res.out_len != len || memcmp(res.out, frame, len))) {
		printf("#   a passed frame was modified\n");
		bad++;
	}
	if (res.verdict == HV_TX && r->verdict == HV_TX)
		bad += pkt_check_rst(frame, &lo, res.out, res.out_len);
	bad += check_flows(h, &p, r, &res, flows_before, t0, t1);
out:
	if (bad) {
		pkt_hexdump("frame", frame, len);
		if (res.verdict == HV_TX)
			pkt_hexdump("reply", res.out, res.out_len);
	}
	tap(!bad, "%s: %s -> %s, %s", h_prog_name[prog], r->name, h_verdict_name[r->verdict],
	    h_stat_name[r->stat]);
}

/* --- Scenarios ----------------------------------------------------------- */

/* Run one frame, check verdict and counter; returns true when both hold. */
static bool step(struct harness *h, enum h_prog prog, const struct pkt *p,
		 enum h_verdict v, enum rg_stat stat, const char *what)
{
	static struct h_result res;
	struct rg_counter a[RG_STAT_MAX], b[RG_STAT_MAX];
	uint8_t frame[PKT_MAX];
	size_t len = pkt_build(p, frame, sizeof(frame), NULL);
	bool ok;

	if (!len || h_stats(h, a) || h_run(h, prog, frame, len, H_IFINDEX_LO, &res) ||
	    h_stats(h, b)) {
		printf("#   %s: test_run failed: %s\n", what, strerror(-res.err));
		return false;
	}
	ok = res.verdict == v && b[stat].packets - a[stat].packets == 1;
	if (!ok)
		printf("#   %s: verdict %s want %s; %s moved by %llu\n", what,
		       h_verdict_name[res.verdict], h_verdict_name[v], h_stat_name[stat],
		       (unsigned long long)(b[stat].packets - a[stat].packets));
	return ok;
}

/* A connection admitted by its grant outlives it: the ACKs and data of
 * that connection pass by flow, a new SYN (or another port) does not. */
static void scenario_outlives_grant(struct harness *h, enum h_prog prog, const char *fam,
				    void (*mk)(struct pkt *), const char *key)
{
	struct pkt p;
	bool ok = !h_reset(h) && !h_grant(h, key, h_now() + 10000000000ull);

	mk(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "SYN with a grant");
	ok = ok && !h_grant(h, key, h_now() - 1);      /* the grant expires */
	as_ack(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_FLOW, "ACK after expiry");
	as_data(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_FLOW, "data after expiry");
	p.tcp_flags = PKT_TCP_FIN | PKT_TCP_ACK;
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_FLOW, "FIN after expiry");
	p.paylen = 0;
	p.tcp_flags = PKT_TCP_SYN;
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH, "SYN again after expiry");
	p.tcp_flags = PKT_TCP_ACK;
	p.sport++;
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH, "ACK of another source port");
	p.sport--;
	p.dport = 465;
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH,
			"ACK to the other protected port");
	tap(ok, "%s: %s connection admitted by a grant outlives the grant; nothing else does",
	    h_prog_name[prog], fam);
}

/* A trusted-subnet SYN also admits its connection. */
static void scenario_trusted_flow(struct harness *h, enum h_prog prog)
{
	struct pkt p;
	bool ok = !h_reset(h) && !h_trust(h, "198.51.100.0/24");

	v4_syn(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_TRUSTED, "trusted SYN");
	ok = ok && !h_clear(h->trust4_fd);
	as_ack(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_FLOW,
			"ACK after the subnet is untrusted");
	tap(ok, "%s: connection admitted by a trusted subnet outlives the trust",
	    h_prog_name[prog]);
}

/* Grants and denies expire on the clock the program reads. */
static void scenario_expiry(struct harness *h, enum h_prog prog)
{
	struct pkt p;
	uint64_t exp = h_now() + 500000000ull;
	bool ok = !h_reset(h) && !h_grant(h, C4, exp);

	v4_syn(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "SYN 500 ms before expiry");
	while (ok && h_now() <= exp + 20000000ull)
		usleep(10000);
	p.sport++;
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH, "SYN 20 ms after expiry");
	tap(ok, "%s: a grant expires in real time (CLOCK_BOOTTIME)", h_prog_name[prog]);

	exp = h_now() + 500000000ull;
	ok = !h_reset(h) && !h_grant(h, C4, exp + 10000000000ull) && !h_deny(h, C4, exp);
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_DENIED, "SYN 500 ms before deny expiry");
	while (ok && h_now() <= exp + 20000000ull)
		usleep(10000);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "SYN 20 ms after deny expiry");
	tap(ok, "%s: a deny expires in real time and the grant shows again", h_prog_name[prog]);
}

/*
 * The summary's mechanism, entries written behind its back: a grant whose
 * slot is clear is not seen (the prefilter skips the lookups), a deny or
 * trusted interface is not seen while its map's hint says empty. So the
 * table's summary pass above really ran with the prefilter deciding.
 */
static void scenario_summary(struct harness *h, enum h_prog prog)
{
	struct rg_grant gv = { .expires = h_now() + 10000000000ull };
	struct rg_deny dv = { .expires = h_now() + 10000000000ull };
	uint32_t ifx = H_IFINDEX_LO, one = 1;
	struct rg_addr k;
	struct pkt p;
	bool ok;

	h->summary = true;
	h_addr(&k, C4);
	ok = !h_reset(h) && !bpf_map_update_elem(h->grants_fd, &k, &gv, BPF_ANY);
	v4_syn(&p);
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH, "grant, slot clear");
	ok = ok && !h_grant(h, C4, gv.expires);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "grant, slot set");
	as_ack(&p);
	p.sport++;
	ok = ok && !h_reset(h) && !h_flow(h, &p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_FLOW, "admitted ACK, slot clear");
	tap(ok, "%s: summary on: a source in a clear slot skips the grant lookup, not the flow's",
	    h_prog_name[prog]);

	ok = !h_reset(h) && !h_grant(h, C4, gv.expires) &&
	     !bpf_map_update_elem(h->deny_fd, &k, &dv, BPF_ANY);
	v4_syn(&p);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "deny, hint still 'empty'");
	h_unhint(h, RG_SUM_NO_DENY);
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_DENIED, "deny, hint cleared");
	ok = ok && !h_reset(h) && !bpf_map_update_elem(h->tiface_fd, &ifx, &one, BPF_ANY);
	ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH, "tiface, hint still 'empty'");
	h_unhint(h, RG_SUM_NO_TIFACE);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_IFACE, "tiface, hint cleared");
	tap(ok, "%s: summary on: the empty-map hints skip rg_deny and rg_tiface until cleared",
	    h_prog_name[prog]);

	/* The fine level decides in a set slot: a grant written behind the
	 * summary's back is not seen while only another /24 of its /16
	 * (IPv6: another /48 of its /32) holds a covered entry, on the
	 * straight-line path and on the general one (VLAN), and is seen once
	 * its own fine bit is set. */
	{
		static void (*const mk[])(struct pkt *) = { v4_syn, v4_vlan_syn, v6_syn };
		static const char *const own[] = { C4, C4, "2001:db8:100::" };
		static const char *const other[] = { "198.51.7.1", "198.51.7.1", "2001:db8:200::" };
		unsigned i;

		ok = true;
		for (i = 0; i < 3 && ok; i++) {
			h_addr(&k, own[i]);
			ok = !h_reset(h) && !h_grant(h, other[i], gv.expires) &&
			     !bpf_map_update_elem(h->grants_fd, &k, &gv, BPF_ANY);
			mk[i](&p);
			ok = ok && step(h, prog, &p, HV_DROP, RG_STAT_DROP_UNAUTH,
					"grant, slot set, fine bit clear");
			ok = ok && !h_grant(h, own[i], gv.expires);
			ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT,
					"grant, fine bit set");
		}
		tap(ok, "%s: summary on: in a set slot the fine bit decides (IPv4 /24, IPv6 /48; fast and general path)",
		    h_prog_name[prog]);
		v4_syn(&p);
	}

	/* A grant prefix shorter than a slot (/8 here, which userspace
	 * refuses) would span slots: the program ignores the summary. */
	h_addr(&k, "198.0.0.0");
	ok = !h_reset(h) && !h_cfg(h, 0, 8, 64) && !h_grant_key(h, &k, gv.expires);
	ok = ok && step(h, prog, &p, HV_PASS, RG_STAT_PASS_GRANT, "/8 grant, other /16");
	tap(ok, "%s: summary on: keys shorter than /16 bypass the prefilter", h_prog_name[prog]);
	h->summary = false;
}

/* --- The builder itself -------------------------------------------------- */

/*
 * pkt.h's checksums against values computed once by a separate
 * implementation (a few lines of Python over the same frames), so the
 * table's inputs are what they claim to be. Offsets: IPv4 header checksum
 * at l3 + 10; TCP at l4 + 16, UDP at l4 + 6, ICMP/ICMPv6 at l4 + 2.
 */
static void builder_selfcheck(void)
{
	static const uint8_t pl[7] = "abcdefg";
	static const struct {
		const char *name;
		int l3, l4, ext;         /* l3 4/6; l4 'T' 'U' 'I'; ext: HBH + FRAG(0, M) */
		bool data;
		size_t len;
		uint16_t ipsum, l4sum;
	} v[] = {
		{ "v4 SYN", 4, 'T', 0, false, 54, 0x3c5d, 0xe5c0 },
		{ "v4 PSH+ACK, 7 bytes (odd length)", 4, 'T', 0, true, 61, 0x3c56, 0x5476 },
		{ "v4 UDP, 7 bytes", 4, 'U', 0, true, 49, 0x3c57, 0xe3d7 },
		{ "v4 ICMP echo", 4, 'I', 0, false, 42, 0x3c6e, 0xf7fd },
		{ "v6 SYN", 6, 'T', 0, false, 74, 0, 0x757d },
		{ "v6 ICMPv6 echo", 6, 'I', 0, false, 62, 0, 0x2338 },
		{ "v6 HBH + fragment + UDP, 7 bytes", 6, 'U', 1, true, 85, 0, 0x7394 },
	};
	unsigned i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t b[PKT_MAX];
		struct pkt_layout lo;
		struct pkt p;
		size_t len, co;
		bool ok;

		if (v[i].l3 == 4)
			v4(&p);
		else
			v6(&p);
		p.l4 = v[i].l4 == 'T' ? PKT_L4_TCP : v[i].l4 == 'U' ? PKT_L4_UDP : PKT_L4_ICMP;
		if (v[i].data) {
			p.payload = pl;
			p.paylen = 7;
			if (p.l4 == PKT_L4_TCP)
				p.tcp_flags = PKT_TCP_PSH | PKT_TCP_ACK;
		}
		if (v[i].ext) {
			pkt_ext_add(&p, PKT_IPPROTO_HOPOPTS, 0);
			pkt_frag6_add(&p, 0, true);
		}
		len = pkt_build(&p, b, sizeof(b), &lo);
		co = lo.l4 + (p.l4 == PKT_L4_TCP ? 16 : p.l4 == PKT_L4_UDP ? 6 : 2);
		ok = len == v[i].len && pkt_get16(b, co) == v[i].l4sum &&
		     (v[i].l3 == 6 || pkt_get16(b, lo.l3 + 10) == v[i].ipsum);
		if (!ok) {
			printf("#   length %zu (want %zu), l4 checksum %#06x (want %#06x)",
			       len, v[i].len, pkt_get16(b, co), v[i].l4sum);
			if (v[i].l3 == 4)
				printf(", ip checksum %#06x (want %#06x)", pkt_get16(b, lo.l3 + 10),
				       v[i].ipsum);
			printf("\n");
			pkt_hexdump("frame", b, len);
		}
		tap(ok, "builder: %s has the independently computed checksums", v[i].name);
	}
}

int main(void)
{
	struct harness h;
	unsigned i;
	int prog, pass;

	setvbuf(stdout, NULL, _IOLBF, 0);
	builder_selfcheck();
	if (geteuid() != 0) {
		printf("ok %d - packet table # SKIP needs root (BPF_PROG_TEST_RUN)\n1..%d\n",
		       tap_n + 1, tap_n + 1);
		return tap_failed;
	}
	if (h_open(&h)) {
		tap(false, "load the relaygate object without pinning");
		printf("1..%d\n", tap_n);
		return 1;
	}
	/* The whole table twice: with the summary off (all zero, as the
	 * harness's maps start), and on and kept true by every insert, as
	 * relaygate's userspace keeps it. The verdicts must not differ. */
	for (pass = 0; pass < 2; pass++) {
		h.summary = pass;
		tap_tag = pass ? " [summary on]" : "";
		printf("# packet table: %zu rows, each through rg_xdp and rg_tc, summary %s\n",
		       NROWS, pass ? "on" : "off");
		for (i = 0; i < NROWS; i++)
			for (prog = 0; prog < H_NPROG; prog++)
				run_row(&h, &rows[i], prog);
		for (prog = 0; prog < H_NPROG; prog++) {
			scenario_outlives_grant(&h, prog, "v4", v4_syn, C4);
			scenario_outlives_grant(&h, prog, "v6", v6_syn, "2001:db8:100::");
			scenario_outlives_grant(&h, prog, "IPv4-mapped", m_syn, C4);
			scenario_trusted_flow(&h, prog);
			scenario_expiry(&h, prog);
		}
	}
	tap_tag = "";
	for (prog = 0; prog < H_NPROG; prog++)
		scenario_summary(&h, prog);
	h_close(&h);
	printf("1..%d\n", tap_n);
	return tap_failed;
}
