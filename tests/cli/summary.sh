#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# The summary (prefilter slots and empty-map hints) as relaygatectl keeps
# it: a fresh gate has it on and empty; every insert marks the slots its
# entry covers and clears the hint of its map; the CLI never clears a
# slot nor sets a hint back (only relaygated's rebuild does, which
# tests/e2e/test_daemon.sh checks). The straight-line drop (fast_drop)
# is on while the summary is on, no interface is trusted and the config
# allows it: reject = drop (tests/e2e/test_gate.sh sends the traffic).
# Under the slots, the fine level: a bit per IPv4 /24 for entries of /16
# or longer, a bit per (hashed) IPv6 /48 for entries of /40 or longer.
. "$(dirname "$0")/cli-lib.bash"
cli_setup summary 1

sum() { ctl --json status | jq -c '.summary'; }
want() { jq -cn "$1"; }

check "attach v0" ctl attach v0
check_eq "a fresh gate: summary on, no slot, both maps empty" \
	"$(want '{on:true,ipv4_slots:0,ipv6_slots:0,ipv4_fine:0,ipv6_fine:0,tiface_empty:true,deny_empty:true,fast_drop:true}')" "$(sum)"

check "grant add 198.51.100.7" ctl grant add 198.51.100.7 --ttl 10m
check "grant add 198.51.200.9 (the same /16)" ctl grant add 198.51.200.9 --ttl 10m
check "grant add 2001:db8:1::5" ctl grant add 2001:db8:1::5 --ttl 10m
check_eq "grants mark one IPv4 slot per /16 (a fine bit per /24) and one IPv6 slot (a /48 bit)" \
	"$(want '{on:true,ipv4_slots:1,ipv6_slots:1,ipv4_fine:2,ipv6_fine:1,tiface_empty:true,deny_empty:true,fast_drop:true}')" "$(sum)"

check "trust add 10.0.0.0/8" ctl trust add 10.0.0.0/8
check "trust add 2001::/20 (shorter than an IPv6 slot)" ctl trust add 2001::/20
# a /8 spans 256 /16 slots; 2001::/20 spans 4096 values of the top 32
# bits, whose folds are distinct (and hold 2001:db8:1::'s)
check_eq "a short prefix marks every slot it spans, and no fine bit" \
	"$(want '{on:true,ipv4_slots:257,ipv6_slots:4096,ipv4_fine:2,ipv6_fine:1,tiface_empty:true,deny_empty:true,fast_drop:true}')" "$(sum)"
check "trust add 172.16.16.0/20 2001:db8:2::/48 2001:db8:30::/44" ctl trust add 172.16.16.0/20 2001:db8:2::/48 2001:db8:30::/44
check_eq "a /20 sets the bits of its 16 /24s in one slot; a /48 one bit, a /44 its 16 /48s" \
	"$(want '{on:true,ipv4_slots:258,ipv6_slots:4096,ipv4_fine:18,ipv6_fine:18,tiface_empty:true,deny_empty:true,fast_drop:true}')" "$(sum)"

check "deny add 203.0.113.5" ctl deny add 203.0.113.5 --ttl 10m
check_eq "a deny marks its slot and clears the deny hint" \
	"$(want '{on:true,ipv4_slots:259,ipv6_slots:4096,ipv4_fine:19,ipv6_fine:18,tiface_empty:true,deny_empty:false,fast_drop:true}')" "$(sum)"
check "trust-iface add v0" ctl trust-iface add v0
jq_check "a trusted interface clears the interface hint and the straight-line drop" \
	'.tiface_empty == false and .fast_drop == false' "$(sum)"

check "deny del, grant del, trust del, trust-iface del" bash -c \
	'c() { nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" "${@:4}"; }
	 c "$1" "$2" "$3" deny del 203.0.113.5 && c "$1" "$2" "$3" grant del 198.51.100.7 &&
	 c "$1" "$2" "$3" trust del 10.0.0.0/8 && c "$1" "$2" "$3" trust-iface del v0' _ "$NS" "$CTL" "$PIN"
check_eq "the CLI never clears a slot or sets a hint (relaygated's rebuild does)" \
	"$(want '{on:true,ipv4_slots:259,ipv6_slots:4096,ipv4_fine:19,ipv6_fine:18,tiface_empty:false,deny_empty:false,fast_drop:false}')" "$(sum)"
check "status (text) shows the summary" bash -c 'grep -q "^summary: *on: 259 of 65536 IPv4 /16 slots (19 /24 bits) and 4096 of 65536 IPv6 slots (18 /48 bits) hold entries; straight-line drop off (a trusted interface)$" <<<"$1"' _ "$(ctl status)"

check "detach v0 and purge" bash -c 'nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" detach v0 && "$2" --pin-dir "$3" purge' _ "$NS" "$CTL" "$PIN"
check "attach v0 again" ctl attach v0
jq_check "fresh maps start with a fresh summary" '.on and .ipv4_slots == 0 and .ipv6_slots == 0 and .ipv4_fine == 0 and .ipv6_fine == 0 and .deny_empty and .fast_drop' "$(sum)"
check "status (text): straight-line drop on" bash -c 'grep -q "^summary: .*; straight-line drop on$" <<<"$1"' _ "$(ctl status)"
check "detach v0, attach v0 --reject rst" bash -c 'nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" detach v0 && nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" attach v0 --reject rst' _ "$NS" "$CTL" "$PIN"
jq_check "reject = rst: the summary stays on, the straight-line drop goes off" '.on and .fast_drop == false' "$(sum)"
check "status (text) says why" bash -c 'grep -q "; straight-line drop off (reject = rst, or grant prefixes shorter than IPv4 /16 or IPv6 /32)$" <<<"$1"' _ "$(ctl status)"
check "detach v0, attach v0 --reject drop" bash -c 'nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" detach v0 && nsenter --net=/run/netns/$1 "$2" --pin-dir "$3" attach v0 --reject drop' _ "$NS" "$CTL" "$PIN"
jq_check "reject = drop again: the straight-line drop is back" '.fast_drop' "$(sum)"
check "detach v0" ctl detach v0
t_done
