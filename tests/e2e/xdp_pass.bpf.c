// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * The e2e lab's pass-through XDP program, attached (native) to the client
 * ends of the veth pairs. A veth delivers frames that its peer's native XDP
 * program sends back with XDP_TX (relaygate's RST answers in xdp mode) only
 * when it runs an XDP program itself; on this kernel enabling GRO on it was
 * not enough (the frames were counted as sent and never arrived).
 * Built by tests/e2e/lab.sh with clang; no headers, so no include paths.
 */
__attribute__((section("xdp"), used)) int lab_xdp_pass(void *ctx)
{
	(void)ctx;
	return 2;	/* XDP_PASS */
}

__attribute__((section("license"), used)) char _license[] = "Dual BSD/GPL";
