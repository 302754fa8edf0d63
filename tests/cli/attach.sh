#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# attach / detach / purge on veth interfaces in a private namespace (root):
# all three modes, several interfaces sharing one set of maps, never
# clobbering a foreign XDP program or clsact qdisc, the gate staying
# attached after the CLI exits, interfaces that vanish, maps from another
# ABI version, and the pin dir lock.
. "$(dirname "$0")/cli-lib.bash"
cli_setup att 4

xdp_id() { ip -n "$NS" -j -d link show "$1" | jq -r '.[0].xdp.prog.id // empty'; }
# progs_use_map MAP_ID PROG_ID...: every one of the programs uses that map
# (a program bpftool cannot show fails: jq -e passes on empty input).
progs_use_map() {
	local m=$1 p j; shift
	for p in "$@"; do
		j=$(bpftool -j prog show id "$p") || return 1
		jq -e --argjson g "$m" '.map_ids | index($g) != null' <<<"$j" >/dev/null || return 1
	done
}

# --- nothing pinned yet ---------------------------------------------------------
expect_exit "trust list before any attach: exit 1, says to attach" 1 "attach IFACE" trust list
expect_exit "status before any attach: exit 1" 1 "attach IFACE" status
check "purge with nothing pinned is a no-op" ctl purge
expect_exit "attach with a pin dir outside a BPF filesystem: exit 1" 1 "not on a BPF filesystem" \
	--pin-dir "$TMP/pins" attach v0
check "... and created nothing there" test ! -e "$TMP/pins"
check_eq "... nor attached anything" "" "$(xdp_id v0)"
# A device without Ethernet frames: its packets start at the IP header,
# which the program would read as a MAC header (and pass).
check "make a tun device (no MAC header)" ip -n "$NS" tuntap add dev tun9 mode tun
for m in xdp xdp-generic tc; do
	expect_exit "attach tun9 --mode $m: exit 1, not an Ethernet interface" 1 \
		"attach tun9: not an Ethernet interface (link type none: tun, WireGuard)" \
		attach tun9 --mode "$m"
done
expect_exit "... and nothing was pinned (status still says to attach)" 1 "attach IFACE" status

# --- xdp, fail closed -----------------------------------------------------------
check "attach v0 --mode xdp --ports 2525,465" ctl attach v0 --mode xdp --ports 2525,465
check_eq "a fresh gate takes --ports" "[465,2525]" "$(ctl --json ports list)"
id0=$(ctl --json status | jq -r '.attachments[0].prog_id')
check_eq "the CLI has exited and v0 still runs the gate (fail closed)" "$id0" "$(xdp_id v0)"
check "v0 is in native (driver) mode" bash -c 'ip -n "$1" -d link show v0 | grep -q "xdp qdisc\|prog/xdp" && ! ip -n "$1" -d link show v0 | grep -q xdpgeneric' _ "$NS"
check "grant add before the second interface" ctl grant add 192.0.2.44 --user zoe

# --- a second interface shares the maps ------------------------------------------
check "attach v2 --mode xdp-generic" ctl attach v2 --mode xdp-generic
check "v2 is in generic mode" bash -c 'ip -n "$1" -d link show v2 | grep -q xdpgeneric' _ "$NS"
st=$(ctl --json status)
jq_check "status lists v0 (xdp) and v2 (xdp-generic)" \
	'[.attachments[] | [.interface, .mode]] == [["v0","xdp"],["v2","xdp-generic"]]' "$st"
id2=$(jq -r '.attachments[1].prog_id' <<<"$st")
gid=$(bpftool -j map show pinned "$PIN/rg_grants" | jq '.id')
check "both programs use the one pinned rg_grants (map id $gid)" progs_use_map "$gid" "$id0" "$id2"
# The summary is the programs' global data (.bss), pinned by path as rg_summary.
sid=$(bpftool -j map show pinned "$PIN/rg_summary" | jq '.id')
check_eq "the pinned rg_summary is the object's .bss" "relaygat.bss" \
	"$(bpftool -j map show pinned "$PIN/rg_summary" | jq -r '.name')"
check "both programs read the one pinned summary (map id $sid)" progs_use_map "$sid" "$id0" "$id2"
check_eq "the grant made before is still there" '["192.0.2.44"]' "$(ctl --json grant list | jq -c 'map(.address)')"
expect_exit "attach v2 again: exit 1" 1 "already attached" attach v2 --ports 465,587
check_eq "... and the ports did not change" "[465,2525]" "$(ctl --json ports list)"
check "detach v2" ctl detach v2
check "attach v2 --mode xdp-generic --ports 465,587 (existing maps)" ctl attach v2 --mode xdp-generic --ports 465,587
check_eq "ports replaced for every interface" "[465,587]" "$(ctl --json ports list)"
id2=$(ctl --json status | jq -r '.attachments[] | select(.interface == "v2") | .prog_id')

# --- native XDP and a jumbo MTU: the error says so --------------------------------
check "v6 (and its peer) at MTU 9000" bash -c 'ip -n "$1" link set v6 mtu 9000 && ip -n "$1" link set v7 mtu 9000' _ "$NS"
expect_exit "attach v6 --mode xdp at MTU 9000: exit 1, says the MTU is why and what to do" 1 \
	"attach v6 (xdp): the driver refuses native XDP at this MTU (9000; a veth also checks its peer's): lower the MTU or use --mode tc" \
	attach v6 --mode xdp --ports 25
check_eq "... and the ports did not change" "[465,587]" "$(ctl --json ports list)"
check "v6 (and its peer) back at MTU 1500" bash -c 'ip -n "$1" link set v6 mtu 1500 && ip -n "$1" link set v7 mtu 1500' _ "$NS"

# --- tc: we create clsact (tcq_) or find it (tc_) ---------------------------------
check "attach v4 --mode tc --reject rst" ctl attach v4 --mode tc --reject rst
check_eq "--reject rst set the shared config" "rst" "$(ctl --json status | jq -r .config.reject)"
check "tcq_v4 pinned: we created the clsact qdisc" test -e "$PIN/tcq_v4"
check "v4 has relaygate's tc filter" bash -c 'tc -n "$1" filter show dev v4 ingress | grep -q "rg_tc"' _ "$NS"
id4=$(ctl --json status | jq -r '.attachments[] | select(.interface == "v4") | .prog_id')
check "the tc program reads the same summary (map id $sid)" progs_use_map "$sid" "$id4"
check "tc qdisc add dev v6 clsact (someone else's)" tc -n "$NS" qdisc add dev v6 clsact
check "attach v6 --mode tc" ctl attach v6 --mode tc
check "tc_v6 pinned: the clsact pre-existed" test -e "$PIN/tc_v6"
jq_check "status lists the tc attachments with program ids" \
	'[.attachments[] | select(.mode == "tc") | select(.prog_id > 0) | .interface] == ["v4","v6"]' "$(ctl --json status)"
check "detach v4" ctl detach v4
check "detach v4 removed the clsact qdisc it created" bash -c '! tc -n "$1" qdisc show dev v4 | grep -q clsact' _ "$NS"
check "detach v6" ctl detach v6
check "detach v6 kept the pre-existing clsact qdisc" bash -c 'tc -n "$1" qdisc show dev v6 | grep -q clsact' _ "$NS"
check "... without our filter" bash -c '! tc -n "$1" filter show dev v6 ingress | grep -q rg_tc' _ "$NS"
check "no tc pins left" bash -c '! ls "$1" | grep -Eq "^tcq?_"' _ "$PIN"

# --- never clobber a foreign XDP program ----------------------------------------
if clang -O2 -g -target bpf -I"/usr/include/$(gcc -dumpmachine)" -c -o "$TMP/other.o" -x c - <<'EOF'
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int other_xdp(struct xdp_md *ctx) { (void)ctx; return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
EOF
then
	check "someone else's XDP program on v6" ip -n "$NS" link set dev v6 xdpgeneric obj "$TMP/other.o" sec xdp
	other=$(xdp_id v6)
	expect_exit "attach v6 (xdp) refuses, naming the program" 1 "already has an XDP program (id $other)" attach v6
	expect_exit "attach v6 --mode xdp-generic refuses too" 1 "already has an XDP program" attach v6 --mode xdp-generic
	check_eq "v6 still runs the foreign program" "$other" "$(xdp_id v6)"
	# All or nothing: the ports and reject mode given with a failed attach are taken back.
	expect_exit "attach v6 --ports 25 --reject drop refuses" 1 "already has an XDP program" attach v6 --ports 25 --reject drop
	jq_check "... and changed neither the ports nor the reject mode" \
		'.ports == [465,587] and .config.reject == "rst"' "$(ctl --json status)"
	check "no link_v6 pinned" test ! -e "$PIN/link_v6"
	check "attach v6 --mode tc works next to it" ctl attach v6 --mode tc
	check "detach v6 (tc)" ctl detach v6
	check_eq "v6 still runs the foreign program after detach" "$other" "$(xdp_id v6)"
else
	not_ok "compile a foreign XDP program with clang"
fi

# --- detach ---------------------------------------------------------------------------
check "detach v0" ctl detach v0
check_eq "v0 runs no XDP program" "" "$(xdp_id v0)"
check "link_v0 unpinned" test ! -e "$PIN/link_v0"
check "maps stay pinned after detach" test -e "$PIN/rg_grants"
check_eq "v2 still attached" "$id2" "$(xdp_id v2)"
expect_exit "detach v0 again: exit 1" 1 "not attached" detach v0
expect_exit "purge while v2 is attached: exit 1, says which" 1 "detach v2" purge
check "maps still pinned after a refused purge" test -e "$PIN/rg_grants"

# --- an interface that vanishes -----------------------------------------------------------
check "delete v2's veth pair" ip -n "$NS" link del v2
jq_check "status shows v2's attachment as gone" \
	'.attachments | length == 1 and .[0].interface == "v2" and .[0].active == false' "$(ctl --json status)"
check "status (text) says so" bash -c '"$@" status | grep -q "gone (detach to clean up)"' _ nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN"
check "detach v2 cleans up the pin" ctl detach v2
check "link_v2 unpinned" test ! -e "$PIN/link_v2"

# --- pin dir lock -------------------------------------------------------------------------
flock "$PIN" sleep 2 &
lpid=$!
t_cleanup "kill $lpid"
sleep 0.3
t0=$(date +%s%N)
check "trust add waits for a held pin dir lock, then succeeds" ctl trust add 10.77.0.0/16
waited=$((($(date +%s%N) - t0) / 1000000))
check "... it waited for the lock (${waited} ms)" test "$waited" -ge 1000
wait "$lpid" 2>/dev/null

# --- maps from another ABI version --------------------------------------------------------
check "attach v0 again" ctl attach v0
# rg_config: abi_version 99, flags 0, prefixes 32 and 64, the rest zero (32 bytes).
check "make the pinned config claim ABI v99" bpftool map update pinned "$PIN/rg_config" key 0 0 0 0 \
	value 99 0 0 0 0 0 0 0 32 0 0 0 64 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
expect_exit "trust list on v99 maps: exit 1, says how to replace them" 1 "purge" trust list
expect_exit "attach on v99 maps: exit 1, says how to replace them" 1 "map ABI v99" attach v4
check "... and attached nothing" test ! -e "$PIN/link_v4"
check "detach still works on v99 maps" ctl detach v0
check "purge once nothing is attached" ctl purge
check "purge removed the pin dir" test ! -e "$PIN"
check "attach after purge makes fresh maps" ctl attach v0
jq_check "fresh: ABI current, no grants, default ports" \
	'.abi_version >= 1 and .abi_version < 99 and .maps.rg_grants.entries == 0 and .ports == [465,587]' "$(ctl --json status)"

# --- a summary pinned by an earlier release: a .maps array named rg_summary -------------
check "detach v0 and purge" bash -c '"$@" detach v0 && "$@" purge' _ nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN"
check "pin an rg_summary as releases before 2026-11-30 made it" bash -c \
	'mkdir -p "$1" && bpftool map create "$1/rg_summary" type array key 4 value 4194304 entries 1 name rg_summary flags 1024' _ "$PIN"
sid=$(bpftool -j map show pinned "$PIN/rg_summary" | jq '.id')
check "attach v0 on it" ctl attach v0
id0=$(ctl --json status | jq -r '.attachments[0].prog_id')
check "the program reads that map (id $sid) as its summary" progs_use_map "$sid" "$id0"
check_eq "... which keeps its name" "rg_summary" "$(bpftool -j map show pinned "$PIN/rg_summary" | jq -r '.name')"
check "trust add 10.9.0.0/16" ctl trust add 10.9.0.0/16
jq_check "status: the summary holds it (one /16 slot, 256 /24 bits)" \
	'.summary.ipv4_slots == 1 and .summary.ipv4_fine == 256' "$(ctl --json status)"
check "detach v0 at the end" ctl detach v0
t_done
