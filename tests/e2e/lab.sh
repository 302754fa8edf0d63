# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# The network-namespace lab shared by the end-to-end tests and `make demo`.
#
#   client (rg-ID-client)                mail host (rg-ID-mail)           vpn peer (rg-ID-vpn)
#   eth0 10.77.1.2   fd00:77:1::2  <-veth->  eth0 10.77.1.1  fd00:77:1::1
#        10.77.1.66  fd00:77:1::142          vpn0 10.77.2.1  fd00:77:2::1 <-veth-> eth0 10.77.2.2 fd00:77:2::2
#        (second "office" address,
#         inside LAB_TRUST4/6)
#
# ID is the PID of the script that sources this file (LAB_ID), so labs of
# parallel runs never meet. Every link is created directly inside the
# namespaces (nothing in the root namespace), and every address is one of
# the lab's own: traffic never leaves it.
#
# Use:  LAB_WITH_VPN=0              # optional: no vpn peer (the demo)
#       . tests/e2e/lab.sh
#       lab_up                      # namespaces, veths, addresses
#       trap lab_down EXIT          # or t_cleanup lab_down (tests/lib.sh)
#       lab_listen 587 25           # echo services in the mail namespace
#       lab_service dovecot 110 dovecot -F -c "$conf"   # any service there
#       lab_pin_new main            # pin dir for relaygatectl (LAB_PIN)
#       lab_ctl attach eth0 --mode xdp                  # relaygatectl on the mail host
#       lab_connect "$LAB_CLIENT" "$LAB_MAIL4" 587      # prints open|refused|timeout|error
#       lab_try ...                 # the same into LAB_RESULT, with LAB_LAST_MS
#       lab_session_open s "$LAB_CLIENT" "$LAB_MAIL4" 587   # a long-lived connection:
#       lab_session_send s "text"; lab_session_expect s "text"; lab_session_close s
#       lab_stat drop_unauth        # a counter, from relaygatectl --json stats
#       lab_down
#
# lab_down is idempotent and removes everything lab_* made, also after a
# partial lab_up: namespaces (and with them every veth and tc filter),
# processes started by lab_spawn / lab_listen / lab_session_open (by PID),
# pin directories made by lab_pin_new, and the scratch directory. Before
# all that it runs the commands in LAB_DOWN_HOOKS (lab_on_down CMD adds
# one; they run newest first, once), so helpers that start services with
# their own way to stop (tests/e2e/mail.sh: Postfix, Dovecot) stop them
# while the namespaces still exist.
#
# Run directly (bash tests/e2e/lab.sh) it tests itself and prints TAP.
# shellcheck disable=SC2034  # LAB_* variables are for the scripts sourcing this

LAB_ROOT=${LAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LAB_ID=${LAB_ID:-$$}
LAB_MAIL=rg-$LAB_ID-mail
LAB_CLIENT=rg-$LAB_ID-client
LAB_VPN=rg-$LAB_ID-vpn

LAB_MAIL4=10.77.1.1
LAB_MAIL6=fd00:77:1::1
LAB_CLIENT4=10.77.1.2
LAB_CLIENT6=fd00:77:1::2
LAB_OFFICE4=10.77.1.66          # second client address, inside LAB_TRUST4
LAB_OFFICE6=fd00:77:1::142      # second client address, inside LAB_TRUST6
LAB_TRUST4=10.77.1.64/26
LAB_TRUST6=fd00:77:1::100/120
LAB_MAILVPN4=10.77.2.1
LAB_MAILVPN6=fd00:77:2::1
LAB_VPN4=10.77.2.2
LAB_VPN6=fd00:77:2::2

# LAB_WITH_VPN=0 (set before sourcing): no vpn peer namespace, no vpn0.
LAB_WITH_VPN=${LAB_WITH_VPN:-1}

# Interface names inside the mail namespace.
LAB_IF=eth0                     # towards the client
LAB_VPNIF=vpn0                  # towards the vpn peer

# A connect that gets no answer gives up after this many seconds. Below the
# kernel's initial SYN retransmission timeout (1 s), so an unanswered
# attempt sends exactly one SYN.
LAB_CONNECT_TMO=${LAB_CONNECT_TMO:-0.5}

case "${OUT:-build}" in /*) LAB_OUT=${OUT} ;; *) LAB_OUT=$LAB_ROOT/${OUT:-build} ;; esac
LAB_CTL=${LAB_CTL:-$LAB_OUT/relaygatectl}
LAB_PIN=

LAB_NSS=()          # namespaces made
LAB_PIDS=()         # process group leaders started
LAB_PINS=()         # pin directories made
LAB_DIR=            # scratch directory
LAB_DOWN_HOOKS=()   # commands lab_down runs first (lab_on_down)
declare -A LAB_SESS_FD=() LAB_SESS_PID=() LAB_SESS_OUT=()

lab_log() { [ -n "${LAB_VERBOSE:-}" ] && echo "# lab: $*" >&2; return 0; }

# Milliseconds since the epoch, from bash itself (no fork).
lab_now_ms() {
	local t=${EPOCHREALTIME/[.,]/}
	echo $((t / 1000))
}

# lab_poll TIMEOUT_S CMD...: run CMD every 50 ms until it succeeds or
# TIMEOUT_S seconds (fractions allowed) have passed.
lab_poll() {
	local tmo_ms end
	tmo_ms=$(awk -v t="$1" 'BEGIN { printf "%d", t * 1000 }'); shift
	end=$(($(lab_now_ms) + tmo_ms))
	while :; do
		"$@" && return 0
		[ "$(lab_now_ms)" -ge "$end" ] && return 1
		sleep 0.05
	done
}

lab_in() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# lab_veth NS_A IF_A NS_B IF_B: a veth pair made inside the two namespaces.
lab_veth() {
	ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" || return 1
	ip -n "$1" link set "$2" up && ip -n "$3" link set "$4" up
}

# lab_addr NS IF CIDR...: IPv6 addresses get nodad so they work at once.
lab_addr() {
	local ns=$1 ifc=$2 a; shift 2
	for a in "$@"; do
		case "$a" in
		*:*) ip -n "$ns" addr add "$a" dev "$ifc" nodad || return 1 ;;
		*) ip -n "$ns" addr add "$a" dev "$ifc" || return 1 ;;
		esac
	done
}

lab_ns_new() {
	ip netns add "$1" || return 1
	LAB_NSS+=("$1")
	ip -n "$1" link set lo up
	# No duplicate address detection on anything made later (link-local
	# addresses included): addresses are usable the moment they exist.
	lab_in "$1" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0 >/dev/null
}

# The ends that face the mail host behave like a host on a wire:
#  - full checksums in the frames they send (no veth checksum offload), so
#    what the gate sees is what a NIC hands it; lab_csum_offload turns the
#    offload back on, to test the partial checksums a container's veth sends;
#  - a pass-through XDP program of their own (tests/e2e/xdp_pass.bpf.c),
#    without which a veth drops the frames its peer's native XDP program
#    sends back with XDP_TX (the reject = rst answer in xdp mode).
lab_wire_like() {
	lab_in "$1" ethtool -K "$2" tx off >/dev/null 2>&1 || {
		echo "lab: cannot turn checksum offload off on $2 in $1" >&2
		return 1
	}
	ip -n "$1" link set dev "$2" xdpdrv obj "$LAB_XDP_PASS" sec xdp || {
		echo "lab: cannot attach the pass-through XDP program to $2 in $1" >&2
		return 1
	}
}

# lab_csum_offload NS IF on|off: the veth's transmit checksum offload.
lab_csum_offload() {
	lab_in "$1" ethtool -K "$2" tx "$3" >/dev/null 2>&1
}

lab_build_xdp_pass() {
	LAB_XDP_PASS=$LAB_DIR/xdp_pass.o
	"${CLANG:-clang}" -O2 -target bpf -Wall -Wextra -Werror -c "$LAB_ROOT/tests/e2e/xdp_pass.bpf.c" \
		-o "$LAB_XDP_PASS" || {
		echo "lab: cannot build tests/e2e/xdp_pass.bpf.c (clang: scripts/install-deps)" >&2
		return 1
	}
}

# lab_up: the whole lab. Returns non-zero (and says why) if any step fails;
# call lab_down either way.
lab_up() {
	[ "$(id -u)" -eq 0 ] || { echo "lab: needs root" >&2; return 1; }
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || return 1
	LAB_DIR=$(mktemp -d "/tmp/rg-lab-$LAB_ID.XXXXXX") || return 1
	lab_build_xdp_pass || return 1
	lab_ns_new "$LAB_MAIL" && lab_ns_new "$LAB_CLIENT" &&
	lab_veth "$LAB_MAIL" "$LAB_IF" "$LAB_CLIENT" eth0 &&
	lab_addr "$LAB_MAIL" "$LAB_IF" "$LAB_MAIL4/24" "$LAB_MAIL6/64" &&
	lab_addr "$LAB_CLIENT" eth0 "$LAB_CLIENT4/24" "$LAB_OFFICE4/24" "$LAB_CLIENT6/64" "$LAB_OFFICE6/64" &&
	lab_wire_like "$LAB_CLIENT" eth0 || {
		echo "lab: setting up the client and mail namespaces failed" >&2
		return 1
	}
	[ "$LAB_WITH_VPN" = 1 ] || return 0
	lab_ns_new "$LAB_VPN" &&
	lab_veth "$LAB_MAIL" "$LAB_VPNIF" "$LAB_VPN" eth0 &&
	lab_addr "$LAB_MAIL" "$LAB_VPNIF" "$LAB_MAILVPN4/24" "$LAB_MAILVPN6/64" &&
	lab_addr "$LAB_VPN" eth0 "$LAB_VPN4/24" "$LAB_VPN6/64" &&
	lab_wire_like "$LAB_VPN" eth0 || {
		echo "lab: setting up the vpn peer namespace failed" >&2
		return 1
	}
	lab_log "up: $LAB_MAIL $LAB_CLIENT $LAB_VPN in $LAB_DIR"
}

# lab_spawn NS NAME CMD...: start CMD in the background inside NS, in its
# own process group (so a forking server goes with all its children), output
# to $LAB_DIR/NAME.log. Sets LAB_SPAWNED to its PID.
lab_spawn() {
	local ns=$1 name=$2; shift 2
	(
		lab_close_sess_fds
		exec setsid ip netns exec "$ns" "$@"
	) >"$LAB_DIR/$name.log" 2>&1 </dev/null &
	LAB_SPAWNED=$!
	LAB_PIDS+=("$LAB_SPAWNED")
	lab_log "spawned $name ($LAB_SPAWNED) in $ns: $*"
}

# lab_service NAME PORT CMD...: a service in the mail namespace (a Dovecot,
# a Postfix, ...), ready when something listens on PORT there.
lab_service() {
	local name=$1 port=$2; shift 2
	lab_spawn "$LAB_MAIL" "$name" "$@"
	lab_wait_listen "$LAB_MAIL" "$port"
}

# lab_client CMD...: run CMD in the client namespace.
lab_client() { ip netns exec "$LAB_CLIENT" "$@"; }

# lab_stop PID: stop one process started by lab_spawn, with its group.
lab_stop() {
	kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null
	lab_poll 2 eval "! kill -0 $1 2>/dev/null" || kill -KILL -- "-$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

lab_listening() { lab_in "$1" ss -Hltn "sport = :$2" | grep -q LISTEN; }

# lab_wait_listen NS PORT [TIMEOUT]: until something listens on PORT in NS.
lab_wait_listen() {
	lab_poll "${3:-5}" lab_listening "$1" "$2" || {
		echo "lab: nothing listens on port $2 in $1" >&2
		return 1
	}
}

# lab_listen PORT...: an echo service on each PORT (IPv4 and IPv6) in the
# mail namespace; each byte it receives is also appended to
# $LAB_DIR/recv-PORT.log, so "did it arrive" can be read on the server side.
lab_listen() {
	local p
	for p in "$@"; do
		lab_spawn "$LAB_MAIL" "listen-$p" socat \
			"TCP6-LISTEN:$p,ipv6only=0,reuseaddr,fork,backlog=64" \
			"SYSTEM:tee -a $LAB_DIR/recv-$p.log"
	done
	for p in "$@"; do
		lab_wait_listen "$LAB_MAIL" "$p" || return 1
	done
}

# lab_socat_addr DST PORT [SRC]: socat's client address for DST:PORT.
lab_socat_addr() {
	case "$1" in
	*:*) echo "TCP6:[$1]:$2${3:+,bind=[$3]}" ;;
	*) echo "TCP4:$1:$2${3:+,bind=$3}" ;;
	esac
}

# lab_connect NS DST PORT [TIMEOUT] [SRC]: one TCP connection attempt from
# NS (optionally from source address SRC); prints
#   open     connected (then closed at once)
#   refused  the peer answered RST
#   timeout  no answer within TIMEOUT seconds (default LAB_CONNECT_TMO)
#   error    anything else (LAB_LAST_ERR says what)
# lab_try takes the same arguments and sets LAB_RESULT instead of printing,
# so that LAB_LAST_MS (how long it took) and LAB_LAST_ERR reach the caller.
# LAB_SYNS is how many SYNs the attempt sent (1 + the kernel's SYN
# retransmissions, which a slow machine may let happen within TIMEOUT).
lab_try() {
	local ns=$1 dst=$2 port=$3 tmo=${4:-$LAB_CONNECT_TMO} src=${5:-} out rc t0 r0
	r0=$(lab_syn_retrans "$ns")
	t0=$(lab_now_ms)
	out=$(ip netns exec "$ns" timeout 10 socat -u /dev/null \
		"$(lab_socat_addr "$dst" "$port" "$src"),connect-timeout=$tmo" 2>&1)
	rc=$?
	LAB_LAST_MS=$(($(lab_now_ms) - t0))
	LAB_SYNS=$((1 + $(lab_syn_retrans "$ns") - r0))
	LAB_LAST_ERR=
	if [ $rc -eq 0 ]; then
		LAB_RESULT=open
	elif [[ $out == *"Connection refused"* ]]; then
		LAB_RESULT=refused
	elif [[ $out == *"timed out"* || $out == *"Operation now in progress"* ]]; then
		LAB_RESULT=timeout
	else
		LAB_LAST_ERR=$(printf '%s' "$out" | tail -n 1)
		LAB_RESULT=error
	fi
}

# lab_syn_retrans NS: SYN retransmissions so far in NS (TcpExt TCPSynRetrans,
# IPv4 and IPv6 together).
lab_syn_retrans() {
	nsenter --net="/run/netns/$1" awk '
		/^TcpExt:/ { if (!n) { n = split($0, h); next } split($0, v);
			for (i = 2; i <= n; i++) if (h[i] == "TCPSynRetrans") { print v[i]; exit } }
		END { if (!n) print 0 }' /proc/net/netstat
}

lab_connect() {
	lab_try "$@"
	echo "$LAB_RESULT"
}

# lab_session_open NAME NS DST PORT [SRC]: a long-lived connection. Lines
# written with lab_session_send go to the mail host's echo service, and its
# answers collect in LAB_SESS_OUT[NAME]. Fails if it does not connect. NAME
# may be used again once lab_session_close has closed it.
lab_session_open() {
	local name=$1 ns=$2 dst=$3 port=$4 src=${5:-} fifo out err fd pid t0
	fifo=$LAB_DIR/sess-$name.in
	out=$LAB_DIR/sess-$name.out
	err=$LAB_DIR/sess-$name.err
	rm -f "$fifo"; mkfifo "$fifo" || return 1
	# Empty logs before socat is even forked. The wait below reads err,
	# and an earlier session of the same NAME (test_gate.sh opens s4 and
	# s6 in every mode) left its "starting data transfer loop" there. The
	# child's own 2> truncates the file only when the child runs, which on
	# a loaded machine came after the first check had read the old line:
	# the session counted as connected before its socat existed.
	: >"$out" && : >"$err" || return 1
	# Our write end first (read-write: this open cannot block), so socat's
	# read-only open of the FIFO finds a writer and cannot block either,
	# however late the child gets to it.
	exec {fd}<>"$fifo"
	LAB_SESS_FD[$name]=$fd
	# -t 2: after our EOF, wait at most 2 s for the server to finish;
	# -d -d: socat says when it is connected. The child drops this
	# shell's FIFO write ends first (see lab_close_sess_fds).
	(
		lab_close_sess_fds
		exec setsid ip netns exec "$ns" socat -d -d -t 2 - \
			"$(lab_socat_addr "$dst" "$port" "$src"),connect-timeout=4" \
			<"$fifo" >"$out" 2>"$err"
	) &
	pid=$!
	LAB_PIDS+=("$pid")
	LAB_SESS_PID[$name]=$pid
	LAB_SESS_OUT[$name]=$out
	# Until socat says it is connected, or has exited (refused, timed out).
	t0=$(lab_now_ms)
	lab_poll 6 eval "grep -qs 'starting data transfer loop' '$err' || ! kill -0 $pid 2>/dev/null"
	grep -qs "starting data transfer loop" "$err" || {
		echo "lab: session $name did not connect in $(($(lab_now_ms) - t0)) ms ($(kill -0 "$pid" 2>/dev/null && echo "still trying" || echo "gave up")):" >&2
		sed 's/^/lab:   /' "$err" >&2
		lab_in "$ns" ss -tan | sed 's/^/lab:   /' >&2
		return 1
	}
}

# lab_close_sess_fds: in a child about to run something long-lived, close
# the sessions' FIFO write ends this shell holds. Bash does not mark {var}
# descriptors close-on-exec, so every child inherits them, and a session's
# socat sees the EOF of lab_session_close only when no process holds a
# write end any more: a second session's socat holding the first one's
# kept the first open until it was killed.
lab_close_sess_fds() {
	local f
	for f in "${LAB_SESS_FD[@]}"; do
		exec {f}>&-
	done
}

# lab_session_send NAME TEXT: one line into the connection.
lab_session_send() {
	printf '%s\n' "$2" >&"${LAB_SESS_FD[$1]}"
}

# lab_session_expect NAME TEXT [TIMEOUT]: until TEXT came back on it.
lab_session_expect() {
	lab_poll "${3:-2}" grep -qF -- "$2" "${LAB_SESS_OUT[$1]}"
}

# lab_session_close NAME: EOF to the server, wait for the client to exit.
# Returns non-zero if it did not exit on its own within 3 s (then it is
# stopped).
lab_session_close() {
	local fd=${LAB_SESS_FD[$1]:-} pid=${LAB_SESS_PID[$1]:-} rc=0
	[ -n "$fd" ] && exec {fd}>&-
	if [ -n "$pid" ]; then
		lab_poll 3 eval "! kill -0 $pid 2>/dev/null" || { rc=1; lab_stop "$pid"; }
		wait "$pid" 2>/dev/null
	fi
	unset "LAB_SESS_FD[$1]" "LAB_SESS_PID[$1]"
	return $rc
}

# lab_pin_new NAME: a fresh pin directory for relaygatectl, removed by
# lab_down; sets LAB_PIN (used by lab_ctl).
lab_pin_new() {
	LAB_PIN=/sys/fs/bpf/rglab-$LAB_ID-$1
	rm -rf "$LAB_PIN"
	LAB_PINS+=("$LAB_PIN")
}

# lab_ctl ARGS...: relaygatectl inside the mail namespace on LAB_PIN.
# nsenter keeps /sys/fs/bpf visible (ip netns exec remounts /sys).
lab_ctl() {
	nsenter --net="/run/netns/$LAB_MAIL" "$LAB_CTL" --pin-dir "$LAB_PIN" "$@"
}

# lab_stats: every counter of `relaygatectl --json stats` as "NAME PACKETS"
# lines ({"drop_unauth":{"packets":N,"bytes":M},...}; the counters object of
# `status --json` works too).
lab_stats() {
	local j
	j=$(lab_ctl --json stats 2>/dev/null) || return 1
	printf '%s' "$j" | jq -r '(if has("counters") then .counters else . end)
		| to_entries[] | select(.value | type == "object")
		| "\(.key) \(.value.packets)"'
}

# lab_stat NAME [JSON]: packets counted for NAME ("drop_unauth", ...), from
# `relaygatectl --json stats` (or the JSON given); nothing if not found.
lab_stat() {
	local j=${2:-}
	[ -n "$j" ] || j=$(lab_ctl --json stats 2>/dev/null) || return 1
	printf '%s' "$j" | jq -r --arg k "$1" \
		'(if has("counters") then .counters else . end) | .[$k].packets // empty' 2>/dev/null
}

# lab_stat_bpftool NAME: the same counter read straight from the pinned
# per-CPU array with bpftool, summed over CPUs (a cross-check of the CLI).
lab_stat_bpftool() {
	local idx
	idx=$(lab_stat_index "$1") || return 1
	bpftool -j map lookup pinned "$LAB_PIN/rg_stats" key "$idx" 0 0 0 2>/dev/null |
		jq -r '[(.formatted.values // .values)[] | .value | if type == "object" then .packets else empty end] | add // 0'
}

# Index of a counter in enum rg_stat (maps/relaygate.h), from its name:
# RG_STAT_NAMES maps the name to its enumerator, the enum gives its value.
lab_stat_index() {
	local h=$LAB_ROOT/maps/relaygate.h id
	id=$(sed -n "s/.*\[\(RG_STAT_[A-Z_]*\)\] *= *\"$1\".*/\1/p" "$h")
	[ -n "$id" ] || return 1
	awk -v want="$id" '
		/^enum rg_stat \{/ { on = 1; v = -1; next }
		on && /^\};/ { exit 1 }
		on {
			sub(/\/\*.*/, ""); gsub(/[ \t,]/, "")
			if ($0 == "") next
			n = split($0, kv, "=")
			if (n == 2) v = (kv[2] ~ /^[0-9]+$/) ? kv[2] + 0 : val[kv[2]]
			else v++
			val[kv[1]] = v
			if (kv[1] == want) { print v; exit 0 }
		}' "$h"
}

# lab_on_down CMD: run CMD (eval'd) at the start of lab_down, before any
# process or namespace of the lab goes.
lab_on_down() { LAB_DOWN_HOOKS+=("$*"); }

lab_down() {
	local name pid ns p i
	for ((i = ${#LAB_DOWN_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${LAB_DOWN_HOOKS[$i]}" || true
	done
	LAB_DOWN_HOOKS=()
	for name in "${!LAB_SESS_FD[@]}"; do
		p=${LAB_SESS_FD[$name]}
		exec {p}>&- 2>/dev/null
	done
	LAB_SESS_FD=() LAB_SESS_PID=()
	for pid in "${LAB_PIDS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${LAB_PIDS[@]}"; do
		lab_poll 2 eval "! kill -0 $pid 2>/dev/null" || kill -KILL -- "-$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	LAB_PIDS=()
	for ns in "${LAB_NSS[@]}"; do
		# Anything still running inside a namespace of ours was started
		# by us (a client, a helper): end it by PID before the namespace.
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	LAB_NSS=()
	# With the namespaces gone the attachments are gone; the pins go now.
	for p in "${LAB_PINS[@]}"; do rm -rf "$p"; done
	LAB_PINS=()
	[ -n "$LAB_DIR" ] && rm -rf "$LAB_DIR"
	LAB_DIR=
	return 0
}

# --- self-test: bash tests/e2e/lab.sh -----------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	. "$LAB_ROOT/tests/lib.sh"
	t_need_root "lab self-test"
	t_cleanup lab_down
	# Not through check(): lab_up and lab_listen must run in this shell
	# (check runs its command in a subshell, and the lab state would be lost).
	if lab_up; then ok "lab: namespaces, veths and addresses come up"; else not_ok "lab: namespaces, veths and addresses come up"; t_done; fi
	if lab_listen 587 25; then ok "lab: echo services listen on 587 and 25 in the mail namespace"; else not_ok "lab: echo services listen on 587 and 25"; fi
	check_eq "lab: IPv4 client reaches the mail host on 587 (no gate)" open \
		"$(lab_connect "$LAB_CLIENT" "$LAB_MAIL4" 587 2)"
	check_eq "lab: IPv6 client reaches the mail host on 587 (no gate)" open \
		"$(lab_connect "$LAB_CLIENT" "$LAB_MAIL6" 587 2)"
	check_eq "lab: the office address reaches it too (bound source)" open \
		"$(lab_connect "$LAB_CLIENT" "$LAB_MAIL4" 587 2 "$LAB_OFFICE4")"
	check_eq "lab: the vpn peer reaches the mail host over vpn0 (IPv6)" open \
		"$(lab_connect "$LAB_VPN" "$LAB_MAILVPN6" 25 2)"
	r=$(lab_connect "$LAB_CLIENT" "$LAB_MAIL4" 2 2)
	check_eq "lab: a closed port is refused at once" refused "$r"
	if lab_session_open s "$LAB_CLIENT" "$LAB_MAIL6" 587; then
		lab_session_send s "hello lab $$"
		check "lab: a session's line is echoed back" lab_session_expect s "hello lab $$"
		check "lab: the mail host logged the line it received" grep -qF "hello lab $$" "$LAB_DIR/recv-587.log"
		if lab_session_open s2 "$LAB_CLIENT" "$LAB_MAIL4" 587; then
			check "lab: the second session's 'connected' is its own socat's" \
				grep -q "socat\[${LAB_SESS_PID[s2]}\] N starting data transfer loop" "$LAB_DIR/sess-s2.err"
			# No other process may hold the first session's FIFO:
			# its socat must see EOF, not wait to be killed.
			if lab_session_close s; then
				ok "lab: closing a session while another is open ends it on EOF"
			else
				not_ok "lab: closing a session while another is open ends it on EOF"
			fi
			lab_session_close s2
		else
			not_ok "lab: a second session connects while the first is open"
		fi
		lab_session_close s
	else
		not_ok "lab: a session connects"
	fi
	check_not "lab: a session to a closed port reports that it did not connect" \
		lab_session_open bad "$LAB_CLIENT" "$LAB_MAIL4" 2
	# The name s again: what its earlier socat logged ("starting data
	# transfer loop") must not count for the new one.
	check_not "lab: a reused session name does not inherit the earlier session's 'connected'" \
		lab_session_open s "$LAB_CLIENT" "$LAB_MAIL4" 2
	nss="$LAB_MAIL $LAB_CLIENT $LAB_VPN"
	pids="${LAB_PIDS[*]}"
	lab_down
	left=$(ip netns list | grep -cE "^rg-$LAB_ID-" || true)
	check_eq "lab: lab_down removes every namespace ($nss)" 0 "$left"
	alive=0
	for p in $pids; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
	check_eq "lab: lab_down ends every process it started" 0 "$alive"
	t_done
fi
