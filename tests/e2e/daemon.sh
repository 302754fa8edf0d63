# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# relaygated in the lab's mail namespace, for the end-to-end tests that run
# it beside real Dovecot and Postfix (test_relay.sh, test_daemon_mail.sh).
# Source it after tests/lib.sh and tests/e2e/lab.sh, once the lab is up:
#
#   rgd_init                        # RGD_DIR (scratch, removed by lab_down),
#                                   # pin dir (lab_pin_new), RGD_CONF/RGD_LOG
#   rgd_conf_base >"$RGD_CONF"      # [gate] on the lab interface, [grants],
#                                   # [control], [metrics] off: add sections
#   rgd_start                       # relaygated -c RGD_CONF --foreground via
#                                   # nsenter; ready on "running (pid N)"
#   rgd_stop [SIGNAL]               # TERM (default), wait; status in RGD_RC
#   rgd_hup                         # SIGHUP, wait until it says how it went
#   rgd_alive                       # it still runs
#   rgd_grant_of ADDR               # "user expires_in service" of a live grant
#   rgd_has_grant ADDR / rgd_has_deny ADDR
#   rgd_log_wait ERE [TMO]          # a line of this run's daemon log matches
#   rgd_log_count ERE               # lines of the daemon log matching ERE
#
# The daemon runs under nsenter --net (not ip netns exec, which remounts
# /sys and hides the pins); lab_down stops it (lab_on_down) before the
# namespaces go, so the gate it attached goes with them and its pins with
# lab_pin_new's directory.
#
# Run directly (bash tests/e2e/daemon.sh) it tests itself and prints TAP.
# shellcheck shell=bash disable=SC2034  # RGD_* are for the scripts sourcing this

RGD_DIR=''
RGD_CONF=''
RGD_LOG=''
RGD_SOCK=''
RGD_STATE=''
RGD_PID=''
RGD_RC=''
RGD_MARK=0                      # daemon log line count when rgd_start ran
RGD_TTL=${RGD_TTL:-60s}
RGD_DAEMON=${RGD_DAEMON:-$LAB_OUT/relaygated}

rgd_err() { echo "rgd: $*" >&2; }

# rgd_init: a scratch directory (mode 0755: the postfix user reaches a
# policy socket in it) and a pin dir for this lab's daemon.
rgd_init() {
	[ -n "$LAB_DIR" ] && [ -d "$LAB_DIR" ] || { rgd_err "lab_up first"; return 1; }
	[ -n "$RGD_DIR" ] && return 0
	[ -x "$RGD_DAEMON" ] || { rgd_err "$RGD_DAEMON is not built (make OUT=...)"; return 1; }
	RGD_DIR=$LAB_DIR/rgd
	mkdir -p "$RGD_DIR/run" "$RGD_DIR/state" "$RGD_DIR/log" || return 1
	chmod 0755 "$RGD_DIR"
	RGD_CONF=$RGD_DIR/relaygate.conf
	RGD_LOG=$RGD_DIR/daemon.log
	RGD_SOCK=$RGD_DIR/run/control.sock
	RGD_STATE=$RGD_DIR/state/grants.state
	: >"$RGD_LOG"
	lab_pin_new rgd
	lab_on_down rgd_stop
}

# rgd_conf_base: [gate], [grants] (ttl RGD_TTL), [control], [metrics] off,
# on stdout. The test adds [trust], [deny], sources and [policy].
rgd_conf_base() {
	cat <<EOF
; relaygated in the lab (tests/e2e/daemon.sh), lab $LAB_ID
[gate]
interface = $LAB_IF
mode = xdp
ports = 587 465
pin_dir = $LAB_PIN

[grants]
ttl = $RGD_TTL
state_file = $RGD_STATE

[control]
socket = $RGD_SOCK

[metrics]
listen = off
EOF
}

# rgd_start: start relaygated on RGD_CONF in the mail namespace; returns 0
# once it logged "running (pid N)" (10 s at most), else 1 with its last
# lines on stderr. nsenter execs the daemon, so $! is the daemon's PID.
rgd_start() {
	[ -z "$RGD_PID" ] || { rgd_err "relaygated already runs ($RGD_PID)"; return 1; }
	RGD_MARK=$(wc -l <"$RGD_LOG")
	nsenter --net="/run/netns/$LAB_MAIL" "$RGD_DAEMON" -c "$RGD_CONF" --foreground >>"$RGD_LOG" 2>&1 </dev/null &
	RGD_PID=$!
	lab_poll 10 eval "rgd_since | grep -q 'running (pid $RGD_PID)' || ! kill -0 $RGD_PID 2>/dev/null"
	if ! rgd_since | grep -q "running (pid $RGD_PID)"; then
		rgd_err "relaygated did not start; its log:"
		rgd_since | tail -n 15 | sed 's/^/rgd:   /' >&2
		rgd_stop KILL
		return 1
	fi
}

# rgd_since: the daemon log lines of the current (or last) run.
rgd_since() { tail -n "+$((RGD_MARK + 1))" "$RGD_LOG"; }

# rgd_stop [SIGNAL]: signal the daemon (TERM), wait up to 5 s, then KILL.
# Its exit status in RGD_RC. (stderr off: bash's "Killed" notice.)
rgd_stop() { rgd_stop_ "$@" 2>/dev/null; }
rgd_stop_() {
	local sig=${1:-TERM}
	RGD_RC=
	[ -n "$RGD_PID" ] || return 0
	kill "-$sig" "$RGD_PID"
	lab_poll 5 eval "! kill -0 $RGD_PID" || kill -KILL "$RGD_PID"
	wait "$RGD_PID"
	RGD_RC=$?
	RGD_PID=
	return 0
}

rgd_alive() { [ -n "$RGD_PID" ] && kill -0 "$RGD_PID" 2>/dev/null; }

# rgd_hup: SIGHUP, then wait until the daemon says how the reload went.
rgd_hup() {
	local before
	before=$(rgd_log_count 'reloaded |keeping the old configuration')
	kill -HUP "$RGD_PID" || return 1
	lab_poll 5 eval "[ \$(rgd_log_count 'reloaded |keeping the old configuration') -gt $before ]"
}

rgd_log_count() { grep -cE -- "$1" "$RGD_LOG"; }
rgd_log_has() { rgd_since | grep -Eq -- "$1"; }
rgd_log_wait() { lab_poll "${2:-5}" rgd_log_has "$1"; }

# rgd_grant_of ADDR: "user expires_in service" of ADDR's live grant (ADDR
# as relaygatectl lists it: IPv6 grants are /64 networks, "fd00:77:1::").
rgd_grant_of() {
	lab_ctl --json grant list 2>/dev/null | jq -r --arg a "$1" \
		'.[] | select(.address == $a and .expired == false) | "\(.user) \(.expires_in) \(.service)"'
}
rgd_has_grant() { [ -n "$(rgd_grant_of "$1")" ]; }
rgd_has_deny() {
	lab_ctl --json deny list 2>/dev/null |
		jq -e --arg a "$1" '.[] | select(.address == $a and .expired == false)' >/dev/null
}
# rgd_grants: every live grant's address, one a line.
rgd_grants() {
	lab_ctl --json grant list 2>/dev/null | jq -r '.[] | select(.expired == false) | .address'
}

# --- self-test: bash tests/e2e/daemon.sh -----------------------------------
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	. "$(dirname "$0")/../lib.sh"
	. "$(dirname "$0")/lab.sh"
	RGD_DAEMON=$LAB_OUT/relaygated
	t_need_root "daemon.sh self-test"
	for b in "$RGD_DAEMON" "$LAB_CTL"; do
		[ -x "$b" ] || { not_ok "$(basename "$b") is built ($b missing: make OUT=$OUT)"; t_done; }
	done
	t_cleanup lab_down
	LAB_WITH_VPN=0
	if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi
	check "rgd_init" rgd_init
	rgd_init
	{ rgd_conf_base; printf '\n[trust]\nsubnet = %s\n' "$LAB_TRUST4"; } >"$RGD_CONF"
	if rgd_start; then ok "rgd_start: relaygated runs in the mail namespace (pid $RGD_PID)"; else
		not_ok "rgd_start"; t_done
	fi
	check_eq "... in the mail namespace" "$(stat -L -c %i "/run/netns/$LAB_MAIL")" \
		"$(stat -L -c %i "/proc/$RGD_PID/ns/net")"
	check "... attached to $LAB_IF" eval "ip -n '$LAB_MAIL' link show dev '$LAB_IF' | grep -q ' xdp '"
	check "... its pins are under the lab's pin dir" test -e "$LAB_PIN/rg_grants"
	check "an event (login, pop3) on its control socket" "$LAB_CTL" --socket "$RGD_SOCK" event login 198.18.0.7 alice --service pop3
	check_eq "rgd_grant_of shows the user and service" "alice pop3" \
		"$(rgd_grant_of 198.18.0.7 | awk '{ print $1, $3 }')"
	check "rgd_log_wait finds the grant line" rgd_log_wait "grant 198\\.18\\.0\\.7 user=alice "
	check_not "rgd_has_deny of an address without a deny" rgd_has_deny 198.18.0.7
	check "rgd_hup reloads" rgd_hup
	check "... and says so" rgd_log_wait "reloaded $RGD_CONF"
	pid=$RGD_PID
	rgd_stop
	check_eq "rgd_stop: SIGTERM, exit 0" 0 "$RGD_RC"
	check_not "... the daemon is gone" kill -0 "$pid"
	rgd_start >/dev/null 2>&1
	pid=$RGD_PID
	nss="$LAB_MAIL $LAB_CLIENT"
	lab_down
	check_not "lab_down stops a running daemon (rgd_stop hook)" kill -0 "$pid"
	left=$(ip netns list | grep -cE "^rg-$LAB_ID-" || true)
	check_eq "lab_down removes the namespaces ($nss)" 0 "$left"
	t_done
fi
