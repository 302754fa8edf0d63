# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
# shellcheck shell=bash
#
# The benchmark lab: two network namespaces and one veth pair, nothing in
# the root namespace, every address the lab's own.
#
#   generator / client (rgb-ID-gen)            mail host (rgb-ID-mx)
#   rgbgID 10.77.0.1  <------- veth ------->   rgbmID 10.77.0.2
#   (synflood sends spoofed SYNs from          blackhole route 198.18.0.0/15
#    198.18.0.0/15; connlat connects
#    from 10.77.0.1)
#
# Replies to spoofed sources (SYN-ACKs, SYN cookies, RSTs) are built and
# routed, into a blackhole: they are not transmitted. On veth a transmit
# wakes the peer's NAPI thread on the other CPU for nearly every packet (an
# inter-processor interrupt, costly in a VM), which would dominate the
# no-filter numbers with an artifact of the lab. The "stack alone" cost is
# therefore a lower bound.
#
# Both veth ends run threaded NAPI (GRO on, so veth takes its NAPI path even
# without XDP; TSO/GSO off on the sender so its AF_PACKET frames qualify).
# The mail host's NAPI thread is pinned to BL_RX_CPU with SCHED_FIFO
# priority 50 (so that other work on that CPU does not delay it): the
# receive path of every variant runs in that one thread,
# and its CPU time (/proc/PID/schedstat) divided by the packets is the
# receive cost. (The CPU's busy time from /proc/stat is recorded too, but on
# a shared machine other processes run there as well.) The generator's NAPI
# thread is pinned to BL_TX_CPU, with the generator, also SCHED_FIFO 50.
#
# BL_DEFER_US > 0 sets the mail host's gro_flush_timeout and
# napi_defer_hard_irqs: the NAPI thread then polls every BL_DEFER_US
# instead of being woken per packet burst, so wakeups do not dominate.
#
# Use:  . bench/lab.sh; bl_up; trap bl_down EXIT; ...; bl_down
# shellcheck disable=SC2034  # BL_* are for bench/run

BL_ID=${BL_ID:-$$}
BL_GEN=rgb-$BL_ID-gen
BL_MX=rgb-$BL_ID-mx
BL_GIF=rgbg$BL_ID
BL_MIF=rgbm$BL_ID
BL_GEN4=10.77.0.1
BL_MX4=10.77.0.2
BL_PIN=/sys/fs/bpf/rgb-$BL_ID
BL_RX_CPU=${BL_RX_CPU:-1}
BL_TX_CPU=${BL_TX_CPU:-0}
BL_DEFER_US=${BL_DEFER_US:-200}
BL_NSS=()
BL_PIDS=()
BL_RX_NAPI=
BL_TX_NAPI=
BL_MX_MAC=

# Commands inside a namespace: nsenter keeps /sys/fs/bpf visible (ip netns
# exec remounts /sys, so it is used only for sysfs reads and writes).
bl_mx()  { nsenter --net="/run/netns/$BL_MX" "$@"; }
bl_gen() { nsenter --net="/run/netns/$BL_GEN" "$@"; }

# The PID of the NAPI thread of a device ("napi/DEV-ID").
bl_napi_pid() {
	local p
	for p in /proc/[0-9]*; do
		case "$(cat "$p/comm" 2>/dev/null)" in "napi/$1-"*) echo "${p#/proc/}"; return 0 ;; esac
	done
	return 1
}

bl_up() {
	local ns dev
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	ip netns add "$BL_GEN" && BL_NSS+=("$BL_GEN") || return 1
	ip netns add "$BL_MX" && BL_NSS+=("$BL_MX") || return 1
	mkdir -p "$BL_PIN" || return 1
	ip link add "$BL_GIF" netns "$BL_GEN" type veth peer name "$BL_MIF" netns "$BL_MX" || return 1
	ip -n "$BL_GEN" addr add "$BL_GEN4/24" dev "$BL_GIF"
	ip -n "$BL_MX" addr add "$BL_MX4/24" dev "$BL_MIF"
	for ns in "$BL_GEN" "$BL_MX"; do
		dev=$BL_MIF; [ "$ns" = "$BL_GEN" ] && dev=$BL_GIF
		ip -n "$ns" link set lo up
		ip -n "$ns" link set "$dev" up
		ip netns exec "$ns" ethtool -K "$dev" gro on tso off gso off >/dev/null 2>&1
		ip netns exec "$ns" sh -c "echo 1 > /sys/class/net/$dev/threaded" || return 1
	done
	bl_defer "$BL_DEFER_US" || return 1
	BL_MX_MAC=$(ip -n "$BL_MX" -br link show "$BL_MIF" | awk '{print $3}')
	ip -n "$BL_MX" neigh replace "$BL_GEN4" lladdr "$(ip -n "$BL_GEN" -br link show "$BL_GIF" | awk '{print $3}')" dev "$BL_MIF" nud permanent
	ip -n "$BL_GEN" neigh replace "$BL_MX4" lladdr "$BL_MX_MAC" dev "$BL_GIF" nud permanent
	ip -n "$BL_MX" route add blackhole 198.18.0.0/15
	sleep 0.2
	BL_RX_NAPI=$(bl_napi_pid "$BL_MIF") || { echo "bench: no NAPI thread for $BL_MIF" >&2; return 1; }
	BL_TX_NAPI=$(bl_napi_pid "$BL_GIF") || { echo "bench: no NAPI thread for $BL_GIF" >&2; return 1; }
	taskset -pc "$BL_RX_CPU" "$BL_RX_NAPI" >/dev/null || return 1
	taskset -pc "$BL_TX_CPU" "$BL_TX_NAPI" >/dev/null || return 1
	chrt -f -p 50 "$BL_RX_NAPI" || return 1
	chrt -f -p 50 "$BL_TX_NAPI" || return 1
}

# bl_spawn NS CMD...: start CMD in the background inside NS; remembered.
bl_spawn() {
	local ns=$1; shift
	nsenter --net="/run/netns/$ns" "$@" &
	BL_PIDS+=($!)
}

# bl_defer US: the mail host's NAPI polls every US microseconds (0: woken
# per burst, the default behaviour)
bl_defer() {
	local n=1000000
	[ "$1" -gt 0 ] || n=0
	ip netns exec "$BL_MX" sh -c "echo $(($1 * 1000)) > /sys/class/net/$BL_MIF/gro_flush_timeout &&
		echo $n > /sys/class/net/$BL_MIF/napi_defer_hard_irqs"
}

bl_down() {
	local p ns
	for p in "${BL_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${BL_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	BL_PIDS=()
	for ns in "${BL_NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done
	BL_NSS=()
	# the gate's pins: links die with the veth; maps and programs go here
	[ -d "$BL_PIN" ] && rm -rf "$BL_PIN"
	return 0
}

# Counters of the mail host's side, one line: napi_ns cpu_busy_ticks rx_packets tcp_in_segs
bl_sample() {
	local napi busy rx segs
	napi=$(awk '{print $1}' "/proc/$BL_RX_NAPI/schedstat")
	busy=$(awk -v c="cpu$BL_RX_CPU" '$1 == c {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)
	rx=$(ip netns exec "$BL_MX" cat "/sys/class/net/$BL_MIF/statistics/rx_packets")
	segs=$(bl_mx awk '/^Tcp:/ {if (h) print $11; h = 1}' /proc/net/snmp)
	echo "$napi $busy $rx $segs"
}
