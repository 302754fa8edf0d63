#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# End to end: the gate on a real network path. relaygatectl attaches it to
# the mail namespace's interfaces (tests/e2e/lab.sh draws the lab), real
# clients connect over veth, IPv4 and IPv6, in each mode (xdp, xdp-generic,
# tc), and every case of SPEC's "Data plane semantics" is checked from the
# client's side (connected, timed out, refused) and in the counters
# (`relaygatectl --json stats`, cross-checked with bpftool):
#   unauthorised -> dropped; unprotected ports untouched; trusted subnet
#   (and its edge); deny over a grant; grant (IPv4 /32, IPv6 /64 keys) and
#   its expiry; an established connection outliving its grant; trusted
#   interface; `ports set`; the totals; detach reopening; reject = rst
#   refusing at once (client checksum offload off and on); bpftool dumping
#   rg_grants with typed fields.
#
# Environment: OUT (build dir), RG_E2E_MODES (default "xdp xdp-generic tc"),
# RG_E2E_TTL (grant TTL in seconds for the expiry cases, default 5).
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"

MODES=${RG_E2E_MODES:-xdp xdp-generic tc}
TTL=${RG_E2E_TTL:-5}

t_need_root "e2e gate tests"
if [ ! -x "$LAB_CTL" ]; then
	not_ok "relaygatectl is built ($LAB_CTL missing: make OUT=$OUT)"
	t_done
fi
for tool in socat jq bpftool ethtool nsenter ss; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done

t_cleanup lab_down
if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi
if ! lab_listen 587 465 25 2525; then not_ok "echo services listen in the mail namespace"; t_done; fi

# --- helpers ---------------------------------------------------------------

declare -A SNAP=() NOW=() TALLY=()

# counters ARRAY: read every counter into the associative array ARRAY.
counters() {
	local -n arr=$1
	local n v
	arr=()
	# shellcheck disable=SC2034  # arr is a nameref
	while read -r n v; do arr[$n]=$v; done < <(lab_stats)
}
# snap: remember every counter now; measure: read them again. check_delta
# compares the two.
snap() { counters SNAP; }
measure() { counters NOW; }

# delta NAME: how much NAME moved from snap to measure ("?" if unreadable).
delta() {
	if [ -z "${NOW[$1]:-}" ] || [ -z "${SNAP[$1]:-}" ]; then echo "?"; else echo $((NOW[$1] - SNAP[$1])); fi
}

# check_delta DESC NAME WANT: WANT is N (exactly) or +N (at least N).
check_delta() {
	local desc=$1 name=$2 want=$3 d
	d=$(delta "$name")
	case "$want" in
	+*) if [ "$d" != "?" ] && [ "$d" -ge "${want#+}" ]; then ok "$desc"; else not_ok "$desc"; diag "$name moved by $d, wanted at least ${want#+}"; fi ;;
	*) check_eq "$desc" "$want" "$d" ;;
	esac
}

# conn WANT NS DST PORT SRC: one connect (result in LAB_RESULT); a connect
# expected to pass gets 4 s (a loaded machine), one expected to be dropped
# the short timeout (one SYN, normally no retransmission).
conn() {
	local want=$1 tmo=$LAB_CONNECT_TMO
	shift
	[ "$want" = timeout ] || tmo=4
	lab_try "$1" "$2" "$3" "$tmo" "$4"
}

# expect DESC WANT NS DST PORT SRC [COUNTER DELTA]...: connect, compare what
# the client saw with WANT, then each counter's movement: DELTA is N
# (exactly), +N (at least) or "syns" (exactly as many as the client sent
# SYNs: one, unless a slow machine let the kernel retransmit within the
# timeout). Exact movements add up in TALLY (checked against stats at the end).
expect() {
	local desc=$1 want=$2 ns=$3 dst=$4 port=$5 src=$6 r w
	shift 6
	snap
	conn "$want" "$ns" "$dst" "$port" "$src"
	r=$LAB_RESULT
	if [ "$r" = "$want" ]; then ok "$desc"; else
		not_ok "$desc"
		diag "client saw '$r' after ${LAB_LAST_MS:-?} ms, wanted '$want' ${LAB_LAST_ERR:+($LAB_LAST_ERR)}"
	fi
	measure
	[ "${LAB_SYNS:-1}" -gt 1 ] && diag "the client sent $LAB_SYNS SYNs (retransmitted within the timeout)"
	while [ $# -ge 2 ]; do
		w=$2
		[ "$w" = syns ] && w=${LAB_SYNS:-1}
		check_delta "${desc%%:*}: ... and $1 moved by $w" "$1" "$w"
		case "$w" in [0-9]*) TALLY[$1]=$((${TALLY[$1]:-0} + w)) ;; esac
		shift 2
	done
}

# The source of the client's connection: its main address per family.
cli() { [ "$1" = 6 ] && echo "$LAB_CLIENT6" || echo "$LAB_CLIENT4"; }
office() { [ "$1" = 6 ] && echo "$LAB_OFFICE6" || echo "$LAB_OFFICE4"; }
mail() { [ "$1" = 6 ] && echo "$LAB_MAIL6" || echo "$LAB_MAIL4"; }
vpn() { [ "$1" = 6 ] && echo "$LAB_VPN6" || echo "$LAB_VPN4"; }
mailvpn() { [ "$1" = 6 ] && echo "$LAB_MAILVPN6" || echo "$LAB_MAILVPN4"; }

# attached MODE IFACE: the kernel shows our program on IFACE in MODE.
attached() {
	# The link line's flags name the XDP mode ("mtu 1500 xdpgeneric qdisc").
	case "$1" in
	xdp) ip -n "$LAB_MAIL" link show dev "$2" | grep -q ' xdp ' ;;
	xdp-generic) ip -n "$LAB_MAIL" link show dev "$2" | grep -q ' xdpgeneric ' ;;
	tc) tc -n "$LAB_MAIL" filter show dev "$2" ingress 2>/dev/null | grep -q 'rg_tc' ;;
	esac
}
nothing_attached() {
	! ip -n "$LAB_MAIL" -d link show dev "$1" | grep -q 'prog/xdp' &&
	! tc -n "$LAB_MAIL" filter show dev "$1" ingress 2>/dev/null | grep -q bpf
}

# json_has JSON STRING: STRING is one of the JSON document's string values.
json_has() { printf '%s' "$1" | jq -e --arg s "$2" '[.. | strings] | index($s) != null' >/dev/null 2>&1; }
json_has_num() { printf '%s' "$1" | jq -e --argjson n "$2" '[.. | numbers] | index($n) != null' >/dev/null 2>&1; }

# --- one mode ----------------------------------------------------------------

run_mode() {
	local M=$1 f n j t_granted wait_ms s out dump
	TALLY=()
	lab_pin_new "${M//-/}"
	diag "=== mode $M (pin dir $LAB_PIN) ==="

	if ! out=$(lab_ctl attach "$LAB_IF" --mode "$M" 2>&1); then
		not_ok "$M: relaygatectl attach $LAB_IF --mode $M"
		diag "$out"
		return
	fi
	ok "$M: relaygatectl attach $LAB_IF --mode $M"
	check "$M: relaygatectl attach $LAB_VPNIF --mode $M (second interface, same maps)" \
		lab_ctl attach "$LAB_VPNIF" --mode "$M"
	check "$M: the kernel shows the program on $LAB_IF in $M mode" attached "$M" "$LAB_IF"
	case "$M" in
	xdp*) check "$M: the XDP attachment is pinned as a bpf_link (link_$LAB_IF)" test -e "$LAB_PIN/link_$LAB_IF" ;;
	tc) check "$M: the tc attachment is recorded in the pin dir (tc_/tcq_$LAB_IF)" \
		eval "test -e '$LAB_PIN/tc_$LAB_IF' || test -e '$LAB_PIN/tcq_$LAB_IF'" ;;
	esac
	j=$(lab_ctl --json status 2>/dev/null)
	check "$M: status --json shows $LAB_IF and $LAB_VPNIF attached, active, in $M mode" eval \
		'printf "%s" "$j" | jq -e --arg m "$M" --arg a "$LAB_IF" --arg b "$LAB_VPNIF" \
			"[.attachments[] | select((.interface == \$a or .interface == \$b) and .mode == \$m and .active)] | length == 2" >/dev/null'

	# Unauthorised: dropped, counted; other ports untouched.
	for f in 4 6; do
		expect "$M IPv$f: unauthorised client to 587 is dropped (connect times out)" timeout \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" drop_unauth syns pass_grant 0 pass_flow 0
		expect "$M IPv$f: unauthorised client to 465 is dropped" timeout \
			"$LAB_CLIENT" "$(mail $f)" 465 "$(cli $f)" drop_unauth syns
		expect "$M IPv$f: unauthorised client to 25 (not protected) connects" open \
			"$LAB_CLIENT" "$(mail $f)" 25 "$(cli $f)" drop_unauth 0 pass_unprotected +2
	done

	# Trusted subnets.
	check "$M: trust add $LAB_TRUST4 $LAB_TRUST6" lab_ctl trust add "$LAB_TRUST4" "$LAB_TRUST6"
	for f in 4 6; do
		expect "$M IPv$f: a client in a trusted subnet connects to 587" open \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(office $f)" pass_trusted +1 drop_unauth 0
		expect "$M IPv$f: the same host's address outside the subnet is still dropped" timeout \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" drop_unauth syns
	done
	check "$M: trust del $LAB_TRUST4 $LAB_TRUST6" lab_ctl trust del "$LAB_TRUST4" "$LAB_TRUST6"
	for f in 4 6; do
		expect "$M IPv$f: after trust del the subnet is dropped again" timeout \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(office $f)" drop_unauth syns pass_trusted 0
	done

	# Deny overrides a grant.
	check "$M: grant add + deny add for the client (IPv4, IPv6)" eval \
		'lab_ctl grant add "$LAB_CLIENT4" --ttl 1h --user mallory && lab_ctl grant add "$LAB_CLIENT6" --ttl 1h --user mallory && lab_ctl deny add "$LAB_CLIENT4" --ttl 1h && lab_ctl deny add "$LAB_CLIENT6" --ttl 1h'
	for f in 4 6; do
		expect "$M IPv$f: a denied source is dropped despite its grant" timeout \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" drop_denied syns drop_unauth 0 pass_grant 0
	done
	check "$M: deny del + grant del" eval \
		'lab_ctl deny del "$LAB_CLIENT4" && lab_ctl deny del "$LAB_CLIENT6" && lab_ctl grant del "$LAB_CLIENT4" && lab_ctl grant del "$LAB_CLIENT6"'
	expect "$M IPv4: after grant del the client is dropped again" timeout \
		"$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CLIENT4" drop_unauth syns drop_denied 0

	# Grants: admit, expire; an established connection outlives its grant.
	if lab_ctl grant add "$LAB_CLIENT4" --ttl "${TTL}s" --user alice >/dev/null &&
	   lab_ctl grant add "$LAB_CLIENT6" --ttl "${TTL}s" --user bob >/dev/null; then
		t_granted=$(lab_now_ms)
		ok "$M: grant add (IPv4 user alice, IPv6 user bob, --ttl ${TTL}s)"
	else
		t_granted=$(lab_now_ms)
		not_ok "$M: grant add (IPv4 user alice, IPv6 user bob, --ttl ${TTL}s)"
	fi
	for f in 4 6; do
		if lab_session_open "s$f" "$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)"; then
			lab_session_send "s$f" "before expiry $M v$f"
			check "$M IPv$f: a granted session carries data" lab_session_expect "s$f" "before expiry $M v$f"
		else
			not_ok "$M IPv$f: a granted client opens a session"
			lab_session_close "s$f"
		fi
	done
	for f in 4 6; do
		expect "$M IPv$f: a granted client connects to 587" open \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" pass_grant +1 drop_unauth 0
	done
	expect "$M IPv6: the grant covers the client's /64 (its other address connects)" open \
		"$LAB_CLIENT" "$LAB_MAIL6" 587 "$LAB_OFFICE6" pass_grant +1 drop_unauth 0
	expect "$M IPv4: the grant covers only the client's /32 (its other address is dropped)" timeout \
		"$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_OFFICE4" drop_unauth syns
	# shellcheck disable=SC2034  # read by the eval'd checks below
	dump=$(bpftool map dump pinned "$LAB_PIN/rg_grants" 2>&1)
	check "$M: bpftool map dump rg_grants prints user names as strings" \
		eval 'grep -qF "\"user\": \"alice\"" <<<"$dump" && grep -qF "\"user\": \"bob\"" <<<"$dump"'
	check "$M: bpftool map dump rg_grants prints typed key and expiry fields" \
		eval 'grep -qE "\"family\": 4" <<<"$dump" && grep -qE "\"family\": 6" <<<"$dump" && grep -qE "\"expires\": [0-9]+" <<<"$dump"'
	j=$(lab_ctl --json grant list 2>/dev/null)
	check "$M: grant list --json shows both grants with their users" \
		eval 'json_has "$j" alice && json_has "$j" bob && json_has "$j" "$LAB_CLIENT4"'
	wait_ms=$((t_granted + TTL * 1000 + 150 - $(lab_now_ms)))
	diag "$M: the checks while the grants lived took $(($(lab_now_ms) - t_granted)) ms of the ${TTL} s$([ "$wait_ms" -lt 150 ] && echo ': too long, raise RG_E2E_TTL')"
	[ "$wait_ms" -gt 0 ] && sleep "$(awk -v m="$wait_ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	for f in 4 6; do
		expect "$M IPv$f: after the grant expired a new connection is dropped" timeout \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" drop_unauth syns pass_grant 0
	done
	for f in 4 6; do
		[ -n "${LAB_SESS_FD[s$f]:-}" ] || { not_ok "$M IPv$f: the established session outlives its grant (no session)"; continue; }
		snap
		lab_session_send "s$f" "after expiry $M v$f"
		check "$M IPv$f: the established session outlives its grant (data after expiry echoed)" \
			lab_session_expect "s$f" "after expiry $M v$f" 2
		check "$M IPv$f: the mail host received the data sent after expiry" \
			grep -qF "after expiry $M v$f" "$LAB_DIR/recv-587.log"
		measure
		check_delta "$M IPv$f: ... counted as pass_flow" pass_flow +1
		check_delta "$M IPv$f: ... and nothing of it dropped" drop_unauth 0
		lab_session_close "s$f"
	done

	# Trusted interface: vpn0 is gated too, until it is trusted.
	for f in 4 6; do
		expect "$M IPv$f: the vpn peer is dropped on $LAB_VPNIF before trust-iface" timeout \
			"$LAB_VPN" "$(mailvpn $f)" 587 "$(vpn $f)" drop_unauth syns
	done
	check "$M: trust-iface add $LAB_VPNIF" lab_ctl trust-iface add "$LAB_VPNIF"
	j=$(lab_ctl --json trust-iface list 2>/dev/null)
	check "$M: trust-iface list --json shows $LAB_VPNIF" json_has "$j" "$LAB_VPNIF"
	for f in 4 6; do
		expect "$M IPv$f: the vpn peer connects on the trusted interface" open \
			"$LAB_VPN" "$(mailvpn $f)" 587 "$(vpn $f)" pass_iface +1 drop_unauth 0
	done
	expect "$M IPv4: trusting $LAB_VPNIF does not open $LAB_IF" timeout \
		"$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CLIENT4" drop_unauth syns pass_iface 0
	check "$M: trust-iface del $LAB_VPNIF" lab_ctl trust-iface del "$LAB_VPNIF"
	expect "$M IPv6: after trust-iface del the vpn peer is dropped again" timeout \
		"$LAB_VPN" "$LAB_MAILVPN6" 587 "$LAB_VPN6" drop_unauth syns pass_iface 0

	# Ports: only the protected set is gated.
	check "$M: ports set 2525" lab_ctl ports set 2525
	j=$(lab_ctl --json ports list 2>/dev/null)
	check "$M: ports list --json shows 2525 and not 587" eval 'json_has_num "$j" 2525 && ! json_has_num "$j" 587'
	for f in 4 6; do
		expect "$M IPv$f: 2525 is gated now" timeout \
			"$LAB_CLIENT" "$(mail $f)" 2525 "$(cli $f)" drop_unauth syns
		expect "$M IPv$f: 587 is not gated any more" open \
			"$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)" drop_unauth 0 pass_unprotected +2
	done
	expect "$M IPv4: 25 (never protected) still connects" open \
		"$LAB_CLIENT" "$LAB_MAIL4" 25 "$LAB_CLIENT4" drop_unauth 0
	check "$M: ports set 465,587" lab_ctl ports set 465,587
	expect "$M IPv6: 2525 connects again" open \
		"$LAB_CLIENT" "$LAB_MAIL6" 2525 "$LAB_CLIENT6" drop_unauth 0
	expect "$M IPv6: 587 is gated again" timeout \
		"$LAB_CLIENT" "$LAB_MAIL6" 587 "$LAB_CLIENT6" drop_unauth syns

	# The counters tell what happened.
	j=$(lab_ctl --json stats 2>/dev/null)
	check "$M: stats --json is valid JSON" eval 'printf "%s" "$j" | jq -e . >/dev/null'
	for n in drop_unauth drop_denied; do
		check_eq "$M: stats $n total = the ${TALLY[$n]:-0} SYNs this run dropped" \
			"${TALLY[$n]:-0}" "$(lab_stat "$n" "$j")"
		check_eq "$M: bpftool's per-CPU sum of $n agrees with stats" \
			"$(lab_stat "$n" "$j")" "$(lab_stat_bpftool "$n")"
	done
	check_eq "$M: no packet of this run was malformed" 0 "$(lab_stat drop_malformed "$j")"
	check_eq "$M: no RST was sent (reject = drop)" 0 "$(lab_stat rst_sent "$j")"

	# Detach opens the gate.
	snap
	check "$M: relaygatectl detach $LAB_IF" lab_ctl detach "$LAB_IF"
	check "$M: relaygatectl detach $LAB_VPNIF" lab_ctl detach "$LAB_VPNIF"
	check "$M: nothing of ours left on $LAB_IF or $LAB_VPNIF" eval 'nothing_attached "$LAB_IF" && nothing_attached "$LAB_VPNIF"'
	for f in 4 6; do
		conn open "$LAB_CLIENT" "$(mail $f)" 587 "$(cli $f)"
		check_eq "$M IPv$f: after detach the unauthorised client connects to 587" open "$LAB_RESULT"
	done
	measure
	check_delta "$M: ... and no counter saw it (the maps stay pinned, the program is gone)" drop_unauth 0
	check "$M: the maps stay pinned after the last detach" test -e "$LAB_PIN/rg_grants"

	# reject = rst: refused at once, with full checksums from the client (as
	# from a NIC) and with partial ones (a container's veth, offload on).
	lab_pin_new "${M//-/}rst"
	if lab_ctl attach "$LAB_IF" --mode "$M" --reject rst >"$LAB_DIR/attach-rst.out" 2>&1; then
		ok "$M: relaygatectl attach $LAB_IF --mode $M --reject rst"
		j=$(lab_ctl --json status 2>/dev/null)
		check_eq "$M: status --json says reject rst" rst "$(printf '%s' "$j" | jq -r .config.reject 2>/dev/null)"
		for csum in off on; do
			lab_csum_offload "$LAB_CLIENT" eth0 "$csum"
			for f in 4 6; do
				snap
				lab_try "$LAB_CLIENT" "$(mail $f)" 587 1.5 "$(cli $f)"
				measure
				s="$M IPv$f, client checksum offload $csum: reject = rst"
				check_eq "$s: the client's connect is refused" refused "$LAB_RESULT"
				# At once: the first SYN was answered (no retransmission,
				# well under the 1 s retransmission timeout).
				if [ "$LAB_RESULT" = refused ] && [ "$LAB_SYNS" -eq 1 ] && [ "$LAB_LAST_MS" -lt 1000 ]; then
					ok "$s: ... at once (${LAB_LAST_MS} ms, one SYN)"
				else
					not_ok "$s: ... at once (took ${LAB_LAST_MS} ms, $LAB_SYNS SYNs)"
				fi
				check_delta "$s: ... rst_sent moved by 1" rst_sent 1
				check_delta "$s: ... drop_unauth moved by 1" drop_unauth 1
			done
		done
		lab_csum_offload "$LAB_CLIENT" eth0 off
		expect "$M IPv4: reject = rst leaves unprotected ports alone" open \
			"$LAB_CLIENT" "$LAB_MAIL4" 25 "$LAB_CLIENT4" rst_sent 0
		# A denied source is not answered: a brute-forcer waits.
		check "$M: deny add the client (reject = rst)" lab_ctl deny add "$LAB_CLIENT4" --ttl 1h
		expect "$M IPv4: reject = rst: a denied client gets no RST, only a timeout" timeout \
			"$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CLIENT4" drop_denied syns rst_sent 0
		check "$M: deny del (reject = rst)" lab_ctl deny del "$LAB_CLIENT4"
		check "$M: detach (reject = rst)" lab_ctl detach "$LAB_IF"
	else
		not_ok "$M: relaygatectl attach $LAB_IF --mode $M --reject rst"
		sed 's/^/#   /' "$LAB_DIR/attach-rst.out"
	fi
}

t_start=$SECONDS
for m in $MODES; do
	run_mode "$m"
done
diag "e2e gate: $T_N checks in $((SECONDS - t_start)) s"
t_done
