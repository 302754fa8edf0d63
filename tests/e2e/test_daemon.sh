#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# End to end: relaygated for real, in the namespace lab (tests/e2e/lab.sh).
# The daemon runs on the mail host (nsenter into its network namespace, so
# it sees the lab's interfaces and /sys/fs/bpf) with its own pin dir,
# control socket, state file and metrics port, and follows a log file this
# test appends Dovecot lines to (with real Dovecot too when tests/e2e/mail.sh
# and Debian's dovecot are there). What is checked, from the client's side
# and in the maps:
#   a config error exits 1 naming file:line and attaches nothing (also when
#   detaching into the background); --check-config; a login line admits the
#   client within 1 s; failed logins deny (drop_denied), never a trusted
#   address; relaygatectl event over the control socket, garbage on it
#   answered ERR without harm; drop events logged; /metrics; SIGHUP with a
#   changed trusted subnet, and a connect loop from a trusted address that
#   loses nothing during repeated reloads; SIGHUP with a broken config keeps
#   the old one; SIGTERM exits 0 and leaves the gate attached and the grants
#   pinned; a restart adopts them; kill -9 loses no grant older than a
#   second (state file); a reboot simulation (detach, pins removed) restores
#   grants from the state file with the right remaining TTL.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"

TTL=60                  # grant TTL of the config, seconds
METRICS_PORT=19469      # inside the mail namespace: nobody else's
PUSH_PORT=18088         # the auth policy push source, likewise

t_need_root "e2e daemon tests"
for b in "$DAEMON" "$LAB_CTL"; do
	[ -x "$b" ] || { not_ok "$(basename "$b") is built ($b missing: make OUT=$OUT)"; t_done; }
done
for tool in socat jq curl nsenter ss; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done

T=$(mktemp -d "/tmp/rg-daemon-$$.XXXXXX") || { not_ok "a scratch directory"; t_done; }
# Cleanups run newest first: the daemon (by PID), the lab, the scratch dir.
t_cleanup "rm -rf '$T'"
t_cleanup lab_down
t_cleanup stop_daemon

LAB_WITH_VPN=0         # read by lab_up (and mail.sh): no vpn peer needed here
if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi
if ! lab_listen 587 465 25; then not_ok "echo services listen in the mail namespace"; t_done; fi
lab_pin_new daemon
# A third client address for the brute-forcer: the client's IPv6 /64 holds
# the trusted LAB_TRUST6, and a deny key overlapping a trusted subnet is
# never denied.
MALLORY=10.77.1.3
ip -n "$LAB_CLIENT" addr add "$MALLORY/24" dev eth0 || { not_ok "an extra client address"; t_done; }

# Real Dovecot when its helpers and binaries are there (tests/e2e/mail.sh).
HAVE_MAIL=0
if [ -f "$(dirname "$0")/mail.sh" ] && command -v dovecot >/dev/null && command -v curl >/dev/null; then
	. "$(dirname "$0")/mail.sh"
	if declare -F mail_dovecot_start >/dev/null && declare -F mail_login >/dev/null && mail_init; then
		HAVE_MAIL=1
	fi
fi
DOVECOT_LOG=${MAIL_DIR:-$T}/dovecot.log

AUTHLOG=$T/log/auth.log
AUTHLOG2=$T/log/auth2.log
SOCK=$T/run/control.sock
PSOCK=$T/run/policy.sock
AUDIT=$T/log/audit.log
SENDERS=$T/sender_logins
STATE=$T/state/grants.state
CONF=$T/relaygate.conf
DLOG=$T/daemon.log
mkdir -p "$T/log" "$T/run"
: >"$AUTHLOG"
: >"$AUTHLOG2"
printf 'alice: alice@example.org\nerin: erin@example.org\n' >"$SENDERS"

# conf [TRUST-SUBNETS] [APPLOG]: the daemon's config on stdout.
conf() {
	local trust=${1:-"$LAB_TRUST4 $LAB_TRUST6"} applog=${2:-$AUTHLOG}
	cat <<EOF
; relaygated e2e ($0)
[gate]
interface = $LAB_IF
mode = xdp
ports = 587 465
pin_dir = $LAB_PIN

[trust]
subnet = $trust

[grants]
ttl = ${TTL}s
state_file = $STATE

[deny]
after_failures = 3
within = 1m
ttl = 10m

[source.applog]
type = dovecot
path = $applog

[source.dovecot]
type = dovecot
path = $DOVECOT_LOG

[source.push]
type = dovecot-auth-policy
listen = 127.0.0.1:$PUSH_PORT

[policy]
listen = unix:$PSOCK
sender_logins = $SENDERS
audit_log = $AUDIT

[control]
socket = $SOCK

[metrics]
listen = 127.0.0.1:$METRICS_PORT
EOF
}

# put_conf FILE [TRUST]: write the config atomically (the daemon may be
# reading it on a SIGHUP).
put_conf() {
	local f=$1; shift
	conf "$@" >"$f.tmp" && mv -f "$f.tmp" "$f"
}

in_mail() { nsenter --net="/run/netns/$LAB_MAIL" "$@"; }
ctl() { lab_ctl "$@"; }

DPID=
# start_daemon: relaygated --foreground in the mail namespace (nsenter
# execs it: $! is its PID); ready when it logs "running".
start_daemon() {
	local mark
	touch "$DLOG"
	mark=$(wc -l <"$DLOG")
	# Not through in_mail: a backgrounded function is a subshell, and $!
	# would be its PID, not the daemon's.
	nsenter --net="/run/netns/$LAB_MAIL" "$DAEMON" -c "$CONF" --foreground >>"$DLOG" 2>&1 &
	DPID=$!
	lab_poll 10 eval "tail -n +$((mark + 1)) '$DLOG' | grep -q 'running (pid $DPID)' || ! kill -0 $DPID 2>/dev/null"
	tail -n +$((mark + 1)) "$DLOG" | grep -q "running (pid $DPID)"
}
# stop_daemon [SIGNAL]: signal it (TERM), wait up to 5 s (then KILL); the
# exit status in DRC. (stderr off: bash's "Killed" notice for kill -9.)
stop_daemon() { stop_daemon_ "$@" 2>/dev/null; }
stop_daemon_() {
	local sig=${1:-TERM}
	DRC=
	[ -n "$DPID" ] || return 0
	kill "-$sig" "$DPID" 2>/dev/null
	lab_poll 5 eval "! kill -0 $DPID 2>/dev/null" || kill -KILL "$DPID" 2>/dev/null
	wait "$DPID" 2>/dev/null
	DRC=$?
	DPID=
	return 0
}
alive() { [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; }
# hup: SIGHUP, and wait until the daemon says how the reload went.
hup() {
	local before
	before=$(grep -cE 'reloaded |keeping the old configuration' "$DLOG")
	kill -HUP "$DPID"
	lab_poll 5 eval "[ \$(grep -cE 'reloaded |keeping the old configuration' '$DLOG') -gt $before ]"
}

# A Dovecot 2.3 line (as tests/fixtures/presets/dovecot-2.3-live.lines).
login_line() {
	printf '%s pop3-login: Info: Login: user=<%s>, method=PLAIN, rip=%s, lip=%s, mpid=4242, session=<e2e%s>\n' \
		"$(date '+%b %e %H:%M:%S')" "$2" "$1" "$LAB_MAIL4" "$RANDOM"
}
failure_line() {
	printf '%s imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<%s>, method=PLAIN, rip=%s, lip=%s, session=<e2e%s>\n' \
		"$(date '+%b %e %H:%M:%S')" "$2" "$1" "$LAB_MAIL6" "$RANDOM"
}

# grant_of ADDR: "user expires_in service" of ADDR's grant, nothing if none.
grant_of() {
	ctl --json grant list 2>/dev/null | jq -r --arg a "$1" \
		'.[] | select(.address == $a and .expired == false) | "\(.user) \(.expires_in) \(.service)"'
}
has_grant() { [ -n "$(grant_of "$1")" ]; }
has_deny() { ctl --json deny list 2>/dev/null | jq -e --arg a "$1" '.[] | select(.address == $a and .expired == false)' >/dev/null; }
trust_list() { ctl --json trust list 2>/dev/null | jq -r '[.[].cidr] | join(" ")'; }
attached() { ip -n "$LAB_MAIL" link show dev "$LAB_IF" | grep -q ' xdp '; }
metrics() { in_mail curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics"; }
counter() { lab_stat "$1"; }
# ms_since T0: milliseconds since lab_now_ms gave T0.
ms_since() { echo $(($(lab_now_ms) - $1)); }

# --- config errors: exit 1, file:line, nothing attached ---------------------

BAD=$T/bad.conf
printf '[gate]\ninterface = %s\nmode = warp\npin_dir = %s\n' "$LAB_IF" "$LAB_PIN" >"$BAD"
out=$(in_mail "$DAEMON" -c "$BAD" --foreground 2>&1); rc=$?
check_eq "a bad config value: exit 1" 1 "$rc"
if [[ $out == *"$BAD:3:"* ]] && [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ]; then
	ok "... with one line naming file:line ($out)"
else
	not_ok "... with one line naming file:line"; diag "got: $out"
fi
check_not "... and nothing is attached" attached
check_not "... and nothing is pinned" test -e "$LAB_PIN/rg_grants"
out=$(in_mail "$DAEMON" -c "$T/missing.conf" --foreground 2>&1); rc=$?
check_eq "a missing config file: exit 1" 1 "$rc"
[[ $out == *"$T/missing.conf"* ]] && ok "... naming the file" || { not_ok "... naming the file"; diag "got: $out"; }
out=$(in_mail "$DAEMON" -c "$BAD" --check-config 2>&1); rc=$?
check_eq "--check-config of a bad config: exit 1" 1 "$rc"
put_conf "$CONF"
out=$(in_mail "$DAEMON" -c "$CONF" --check-config 2>&1); rc=$?
check_eq "--check-config of a good config: exit 0" 0 "$rc"
check_not "... and still nothing is attached" attached
# A start-up failure after the config (an interface that is not there)
# while detaching into the background: the parent reports it and exits 1.
sed "s/^interface = $LAB_IF\$/interface = nosuch0/" "$CONF" >"$T/noif.conf"
out=$(in_mail timeout 20 "$DAEMON" -c "$T/noif.conf" 2>&1); rc=$?
check_eq "background start with a missing interface: exit 1" 1 "$rc"
[[ $out == *nosuch0* ]] && ok "... the parent prints the child's error ($out)" || { not_ok "... the parent prints the child's error"; diag "got: $out"; }
ln=$(grep -n '^interface = nosuch0$' "$T/noif.conf" | cut -d: -f1)
[[ $out == *"$T/noif.conf:$ln: [gate] interface: "* ]] && ok "... naming the config's file and line" || { not_ok "... naming the config's file and line"; diag "got: $out"; }
out=$(in_mail "$DAEMON" -c "$T/noif.conf" --check-config 2>&1); rc=$?
check_eq "--check-config with a missing [gate] interface: exit 1" 1 "$rc"
check_eq "... one line naming file, line and interface" \
	"relaygated: $T/noif.conf:$ln: [gate] interface: nosuch0: no such interface" "$out"
check_not "... and nothing is attached" attached
check_not "... and no control socket is left" test -e "$SOCK"

# --- start ----------------------------------------------------------------

if start_daemon; then ok "relaygated starts (pid $DPID)"; else
	not_ok "relaygated starts"; sed 's/^/#   /' "$DLOG" | tail -20; t_done
fi
check "the gate is attached to $LAB_IF" attached
check_eq "the config's trusted subnets are in the maps" "$LAB_TRUST4 $LAB_TRUST6" "$(trust_list)"
check_eq "the config's ports are protected" "465 587" "$(ctl ports list | tr '\n' ' ' | sed 's/ $//')"
check "the control socket exists" test -S "$SOCK"
# A second daemon on the same gate (its own control socket) is refused.
sed "s|^socket = $SOCK\$|socket = $T/run/second.sock|" "$CONF" >"$T/second.conf"
out=$(timeout 10 nsenter --net="/run/netns/$LAB_MAIL" "$DAEMON" -c "$T/second.conf" --foreground 2>&1)
rc=$?
check_eq "a second relaygated on the same pin dir: exit 1" 1 "$rc"
check "... saying another relaygated manages the gate" \
	grep -q "pin dir $LAB_PIN: another relaygated manages this gate; stop it first, or give this one a \[gate\] pin_dir of its own" <<<"$out"
check "... the first one runs on" alive

lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587
check_eq "an unauthorised client is dropped" timeout "$LAB_RESULT"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4 "$LAB_OFFICE4"
check_eq "a client in a trusted subnet connects" open "$LAB_RESULT"
check "the drop is logged (ring buffer)" lab_poll 3 grep -qE "drop $LAB_CLIENT4 port [0-9]+ -> 587 on $LAB_IF: drop_unauth" "$DLOG"

# --- a login line admits the client within a second -------------------------

t0=$(lab_now_ms)
login_line "$LAB_CLIENT4" alice >>"$AUTHLOG"
if lab_poll 1 has_grant "$LAB_CLIENT4"; then
	ok "a Dovecot login line appended to the log grants within 1 s ($(ms_since "$t0") ms)"
else
	not_ok "a Dovecot login line appended to the log grants within 1 s"
fi
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4
check_eq "... and the client connects ($(ms_since "$t0") ms after the line)" open "$LAB_RESULT"
check_eq "... the grant names the user and service" "alice pop3" "$(grant_of "$LAB_CLIENT4" | awk '{print $1, $3}')"
check "... and the grant is logged with address, user and source" \
	grep -qE "grant $LAB_CLIENT4 user=alice service=pop3 source=applog" "$DLOG"

# --- failed logins deny; a trusted address is never denied ----------------

lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$MALLORY"
check_eq "another client address is dropped as unauthorised" timeout "$LAB_RESULT"
ctl grant add "$MALLORY" --ttl 10m --user mallory >/dev/null
d0=$(counter drop_denied)
for i in 1 2; do failure_line "$MALLORY" mallory >>"$AUTHLOG"; done
sleep 0.3
check_not "2 failed logins (of 3) do not deny" has_deny "$MALLORY"
failure_line "$MALLORY" mallory >>"$AUTHLOG"
if lab_poll 1 has_deny "$MALLORY"; then ok "the 3rd failed login denies the address within 1 s"; else
	not_ok "the 3rd failed login denies the address within 1 s"; ctl deny list | sed 's/^/#   /'
fi
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$MALLORY"
check_eq "... the denied client is dropped, although it holds a grant" timeout "$LAB_RESULT"
d1=$(counter drop_denied)
if [ -n "$d0" ] && [ -n "$d1" ] && [ "$d1" -gt "$d0" ]; then ok "... and counted as drop_denied ($d0 -> $d1)"; else
	not_ok "... and counted as drop_denied"; diag "drop_denied $d0 -> $d1"
fi
check "... the deny is logged with the user and source" grep -qE "deny $MALLORY(/32)? after 3 failures within [^ ]+ user=mallory source=applog" "$DLOG"
for i in 1 2 3; do failure_line "$LAB_OFFICE4" mallory >>"$AUTHLOG"; done
check "3 failed logins from a trusted address are logged as not denied" \
	lab_poll 2 grep -q "not denying $LAB_OFFICE4" "$DLOG"
check_not "... and it is not on the deny list" has_deny "$LAB_OFFICE4"

# --- control socket --------------------------------------------------------

check "relaygatectl event login over the control socket" \
	"$LAB_CTL" --socket "$SOCK" event login 198.18.0.9 carol --service imap
check_eq "... grants with the user and service" "carol imap" "$(grant_of 198.18.0.9 | awk '{print $1, $3}')"
check_not "relaygatectl event with a bad address fails" \
	"$LAB_CTL" --socket "$SOCK" event login 198.18.0.999 carol
reply=$(printf 'HELLO\x01\x02 garbage\n' | timeout 5 socat -t 2 - "UNIX-CONNECT:$SOCK" 2>&1)
[[ $reply == ERR* ]] && ok "garbage on the control socket is answered ERR ($reply)" || { not_ok "garbage on the control socket is answered ERR"; diag "got: $reply"; }
head -c 20000 /dev/urandom | timeout 5 socat -t 2 - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1
printf 'LOGIN 198.18.0.8' | timeout 5 socat -t 1 - "UNIX-CONNECT:$SOCK" >/dev/null 2>&1
check "... random bytes and a cut request do not crash the daemon" alive
check "... and the next event still works" "$LAB_CTL" --socket "$SOCK" event login 198.18.0.10 dave

# --- the auth policy push source ------------------------------------------

# What Dovecot's auth process POSTs after an authentication.
push() {
	in_mail curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' --data "$2" \
		"http://127.0.0.1:$PUSH_PORT/?command=$1"
}
code=$(push report '{"login":"frank","remote":"198.18.0.20","protocol":"imap","success":true,"policy_reject":false}')
check_eq "a pushed report of a successful login is accepted" 200 "$code"
if lab_poll 1 has_grant 198.18.0.20; then ok "... and grants within 1 s"; else not_ok "... and grants within 1 s"; fi
check_eq "... with the user and service" "frank imap" "$(grant_of 198.18.0.20 | awk '{print $1, $3}')"
check "... logged with its source" grep -q "grant 198.18.0.20 user=frank service=imap source=push" "$DLOG"
code=$(push report '{"login":"frank","remote":"198.18.0.21",')
check_eq "a broken push body gets 400" 400 "$code"
check_not "... and grants nothing" has_grant 198.18.0.21

# --- the Postfix policy service -----------------------------------------------

# policy CLIENT SENDER: the action relaygated answers at RCPT.
policy() {
	printf 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=%s\nsender=%s\nrecipient=rcpt@example.net\nqueue_id=Q%s\ninstance=i.%s\n\n' \
		"$1" "$2" "$RANDOM" "$RANDOM" |
		timeout 5 socat -t 2 - "UNIX-CONNECT:$PSOCK" 2>/dev/null | sed -n 's/^action=//p'
}
check "the policy socket exists" test -S "$PSOCK"
check_eq "policy: a granted client sending as its user: OK" OK "$(policy "$LAB_CLIENT4" alice@example.org)"
r=$(policy "$LAB_CLIENT4" bob@example.org)
[[ $r == "REJECT 5.7.1"* ]] && ok "policy: a granted client sending as someone else: REJECT 5.7.1 ($r)" || { not_ok "policy: ... as someone else: REJECT 5.7.1"; diag "got: $r"; }
check_eq "policy: a client in a trusted subnet: OK" OK "$(policy "$LAB_OFFICE4" anyone@example.com)"
check_eq "policy: an unknown client: DUNNO" DUNNO "$(policy 198.18.0.99 x@example.org)"
check_eq "policy: a denied client (with a grant): DUNNO" DUNNO "$(policy "$MALLORY" mallory@example.org)"
check "the audit log has the relay, with user and how it was authorized" \
	grep -qE "relay client=$LAB_CLIENT4 user=alice auth=grant\(pop3,[^)]*\) sender=<alice@example.org> recipient=<rcpt@example.net> queue_id=Q" "$AUDIT"
check "... and the rejection" grep -qE "reject client=$LAB_CLIENT4 user=alice .*sender=<bob@example.org>" "$AUDIT"

# --- metrics ---------------------------------------------------------------

m=$(metrics)
check "/metrics answers with the gate's counters" grep -qE '^relaygate_packets_total\{reason="drop_denied"\} [1-9]' <<<"$m"
check "... events per source" grep -qE '^relaygate_events_total\{source="applog",kind="login"\} 1$' <<<"$m"
check "... lines and rejected lines per source" grep -qE '^relaygate_source_lines_rejected_total\{source="applog"\} 0$' <<<"$m"
check "... source lag" grep -qE '^relaygate_source_lag_bytes\{source="applog"\} [0-9]+$' <<<"$m"
check "... grants issued" grep -qE '^relaygate_grants_issued_total [3-9]' <<<"$m"
check "... control socket requests" grep -qE '^relaygate_control_' <<<"$m"
check "... map fill" grep -qE '^relaygate_map_entries\{map="grants"\} [1-9]' <<<"$m"
check "... the summary: on, its slots, its rebuilds, the straight-line drop" bash -c 'grep -qx "relaygate_summary_on 1" <<<"$1" &&
	grep -qE "^relaygate_summary_slots\{family=\"ipv4\"\} [1-9]" <<<"$1" &&
	grep -qE "^relaygate_summary_rebuilds_total\{result=\"ok\"\} [1-9]" <<<"$1" &&
	grep -qE "^relaygate_summary_rebuild_seconds [0-9.]+$" <<<"$1" &&
	grep -qE "^relaygate_summary_fast_drop [01]$" <<<"$1"' _ "$m"
check "... how long the last walk of the grant and deny maps took" grep -qE '^relaygate_map_walk_seconds 0\.[0-9]*[1-9][0-9]*$' <<<"$m"
check "... push source requests" grep -qE '^relaygate_authpolicy_requests_total\{source="push",result="login"\} 1$' <<<"$m"
check "... policy answers (counted each second)" lab_poll 2 eval "metrics | grep -qE '^relaygate_policy_requests_total\{answer=\"ok\"\} [2-9]'"
check_eq "... in valid exposition format (each family's HELP once)" "" \
	"$(grep '^# HELP' <<<"$m" | sort | uniq -d)"
# relaygatectl stats --prometheus: the gate's families as /metrics has them
# (the same HELP lines), plus the attachments
p=$(ctl stats --prometheus)
check_eq "relaygatectl stats --prometheus has /metrics' gate families, word for word" "" \
	"$(comm -23 <(grep -E '^# HELP relaygate_(packets_total|bytes_total|rst_sent_total|drop_events_lost_total|map_entries|map_max_entries|summary_on|summary_slots|summary_fast_drop) ' <<<"$m" | sort) \
		<(grep '^# HELP' <<<"$p" | sort))"
check "... and no family /metrics lacks but the attachments" bash -c '[ -z "$(comm -13 <(grep "^# HELP" <<<"$1" | sort) <(grep "^# HELP" <<<"$2" | grep -v "^# HELP relaygate_attached " | sort))" ]' _ "$m" "$p"

# --- real Dovecot (tests/e2e/mail.sh) ---------------------------------------

if [ "$HAVE_MAIL" = 1 ]; then
	if mail_dovecot_start; then
		ok "real Dovecot runs in the mail namespace"
		ctl grant del "$LAB_CLIENT6" >/dev/null 2>&1
		ctl deny del "$LAB_CLIENT6" >/dev/null 2>&1
		t0=$(lab_now_ms)
		if mail_login pop3 bob secret "$LAB_MAIL6" >/dev/null 2>&1; then ok "a real POP3 login (curl) over IPv6"; else not_ok "a real POP3 login (curl) over IPv6"; fi
		if lab_poll 1 has_grant "fd00:77:1::"; then ok "... grants its /64 within 1 s of the login ($(ms_since "$t0") ms)"; else
			not_ok "... grants its /64 within 1 s of the login"; tail -5 "$DOVECOT_LOG" | sed 's/^/#   /'
		fi
		lab_try "$LAB_CLIENT" "$LAB_MAIL6" 587 4
		check_eq "... and the client connects to 587" open "$LAB_RESULT"
	else
		not_ok "real Dovecot runs in the mail namespace"
	fi
else
	skip "real Dovecot login" "tests/e2e/mail.sh or dovecot missing"
fi

# --- SIGHUP: a changed trusted subnet ---------------------------------------

put_conf "$CONF" "$LAB_TRUST6"
hup
check "SIGHUP with a changed trusted subnet reloads" grep -q "reloaded $CONF" "$DLOG"
check_eq "... the trusted subnets are the new ones" "$LAB_TRUST6" "$(trust_list)"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$LAB_OFFICE4"
check_eq "... the removed subnet's client is dropped" timeout "$LAB_RESULT"
lab_try "$LAB_CLIENT" "$LAB_MAIL6" 465 4 "$LAB_OFFICE6"
check_eq "... the kept subnet's client connects" open "$LAB_RESULT"
check "... the grants survive the reload" has_grant "$LAB_CLIENT4"

# Reloads under a connect loop from a trusted address: config A and B both
# trust LAB_TRUST4 (B adds a subnet); no connect may fail.
put_conf "$T/a.conf" "$LAB_TRUST4 $LAB_TRUST6"
put_conf "$T/b.conf" "$LAB_TRUST4 $LAB_TRUST6 198.18.77.0/24"
cp "$T/a.conf" "$CONF"
hup
reloads0=$(grep -c "reloaded $CONF" "$DLOG")
(
	for i in $(seq 1 20); do
		if [ $((i % 2)) = 0 ]; then cp "$T/a.conf" "$CONF.new"; else cp "$T/b.conf" "$CONF.new"; fi
		mv -f "$CONF.new" "$CONF"
		kill -HUP "$DPID" 2>/dev/null
		sleep 0.1
	done
) &
hpid=$!
fails=0 n=0
end=$(($(lab_now_ms) + 2200))
while [ "$(lab_now_ms)" -lt "$end" ] && [ $n -lt 200 ]; do
	lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 2 "$LAB_OFFICE4"
	n=$((n + 1))
	[ "$LAB_RESULT" = open ] || fails=$((fails + 1))
done
wait "$hpid"
lab_poll 3 eval "[ \$(grep -c 'reloaded $CONF' '$DLOG') -ge $((reloads0 + 5)) ]"
reloads=$(($(grep -c "reloaded $CONF" "$DLOG") - reloads0))
check_eq "$n connects from a trusted address during $reloads reloads: none dropped" 0 "$fails"
[ "$reloads" -ge 5 ] && ok "... the reloads happened ($reloads)" || not_ok "... the reloads happened ($reloads)"
cp "$T/a.conf" "$CONF"
hup

# A source pointed at another file: the new file is read, the old one no
# longer; the sources that did not change lose and repeat nothing.
put_conf "$CONF" "$LAB_TRUST4 $LAB_TRUST6" "$AUTHLOG2"
hup
check "SIGHUP with a source's path changed reloads" grep -q "reloaded $CONF" "$DLOG"
login_line 198.18.0.30 grace >>"$AUTHLOG2"
login_line 198.18.0.31 heidi >>"$AUTHLOG"
if lab_poll 1 has_grant 198.18.0.30; then ok "... a login in the new file grants"; else not_ok "... a login in the new file grants"; fi
sleep 0.3
check_not "... one in the old file does not" has_grant 198.18.0.31
check_eq "... no line was read twice in all the reloads" 1 "$(grep -c "grant $LAB_CLIENT4 user=alice service=pop3 source=applog" "$DLOG")"
put_conf "$CONF"
hup
login_line 198.18.0.32 ivan >>"$AUTHLOG"
if lab_poll 1 has_grant 198.18.0.32; then ok "... pointed back at the old file, it reads on from its end"; else not_ok "... pointed back at the old file, it reads on from its end"; fi
check_not "... and does not replay what was written there meanwhile" has_grant 198.18.0.31

# --- SIGHUP: a broken config keeps the old one ------------------------------

before=$(trust_list)
conf | sed "s|^subnet = .*|subnet = 10.0.0.1/8|" >"$CONF.tmp"
badline=$(grep -n '^subnet = 10.0.0.1/8' "$CONF.tmp" | cut -d: -f1)
mv -f "$CONF.tmp" "$CONF"
hup
check "SIGHUP with a broken config says why, naming file:line" \
	grep -qE "reload: $CONF:$badline: .*keeping the old configuration" "$DLOG"
check "... the daemon keeps running" alive
check_eq "... the trusted subnets are unchanged" "$before" "$(trust_list)"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4 "$LAB_OFFICE4"
check_eq "... the trusted client still connects" open "$LAB_RESULT"
put_conf "$CONF"

# --- SIGHUP: an attach that fails halfway changes nothing -------------------
# Two new interfaces: the first attaches, the second refuses native XDP
# (MTU 9000 on veth). The new ports and reject mode must not stay behind.
ip -n "$LAB_MAIL" link add rgxa type veth peer name rgxb &&
	ip -n "$LAB_MAIL" link add rgxc mtu 9000 type veth peer name rgxd mtu 9000 &&
	ip -n "$LAB_MAIL" link set rgxa up && ip -n "$LAB_MAIL" link set rgxc up ||
	not_ok "two more interfaces in the mail namespace"
conf | sed -e "s|^interface = .*|interface = $LAB_IF, rgxa, rgxc|" -e "s|^ports = .*|ports = 25|" \
	-e "s|^mode = xdp|mode = xdp\nreject = rst|" >"$CONF.tmp" && mv -f "$CONF.tmp" "$CONF"
ifline=$(grep -n '^interface = ' "$CONF" | cut -d: -f1)
hup
check "SIGHUP whose second attach fails (MTU 9000, native XDP) says why, naming file:line, and keeps the old configuration" \
	grep -qE "reload: $CONF:$ifline: \[gate\] interface: attach rgxc \(xdp\): the driver refuses native XDP at this MTU \(9000;.*--mode tc; keeping the old configuration" "$DLOG"
check "... the attach it made is undone" grep -q "gate on rgxa: detached again" "$DLOG"
check_not "... rgxa has no XDP program" eval "ip -n '$LAB_MAIL' link show dev rgxa | grep -q ' xdp'"
check_eq "... the ports are the old ones" "465 587" "$(ctl ports list | tr '\n' ' ' | sed 's/ $//')"
check_eq "... the reject mode is the old one" drop "$(ctl --json status | jq -r .config.reject)"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 465 4 "$MALLORY"
check_eq "... a client without a grant is still dropped on 465" timeout "$LAB_RESULT"
put_conf "$CONF"
ip -n "$LAB_MAIL" link del rgxa 2>/dev/null
ip -n "$LAB_MAIL" link del rgxc 2>/dev/null

# --- the summary: relaygated rebuilds it -----------------------------------

summary() { ctl --json status | jq -r ".summary.$1"; }
check_eq "the summary is on" true "$(summary on)"
s0=$(summary ipv4_slots)
ctl grant add 198.19.77.1 --ttl 10m >/dev/null
check_eq "a grant in a new /16 marks one more slot" $((s0 + 1)) "$(summary ipv4_slots)"
ctl grant del 198.19.77.1 >/dev/null
check_eq "... which stays marked after the grant is deleted" $((s0 + 1)) "$(summary ipv4_slots)"
hup
lab_poll 2 eval '[ "$(summary ipv4_slots)" = "$s0" ]'
check_eq "SIGHUP rebuilds the summary: the slot is clear again" "$s0" "$(summary ipv4_slots)"
check_eq "... the deny hint is still clear (a deny is listed)" false "$(summary deny_empty)"
check_eq "... the summary is on" true "$(summary on)"
ctl grant add 198.19.77.1 --ttl 1 >/dev/null
if lab_poll 15 eval '[ "$(summary ipv4_slots)" = "$s0" ]'; then
	ok "an expired grant's slot clears within the rebuild period (10 s)"
else
	not_ok "an expired grant's slot clears within the rebuild period (10 s)"
	diag "ipv4_slots $(summary ipv4_slots), want $s0"
fi

# --- SIGTERM leaves the gate attached and the grants pinned -----------------

# A grant and a deny to revoke while the daemon is stopped (below).
ctl grant add 198.18.0.60 --ttl 1h --user stolen >/dev/null
ctl deny add 198.18.0.61 --ttl 1h >/dev/null
check "the state file names the maps it was written from" \
	lab_poll 3 grep -qE '^maps [0-9a-f-]{36} [1-9][0-9]* [1-9][0-9]* 32 64$' "$STATE"
check "... and holds the grant and deny to revoke" \
	lab_poll 3 eval "grep -q '^grant 198.18.0.60 .* stolen\$' '$STATE' && grep -q '^deny 198.18.0.61 ' '$STATE'"
stop_daemon TERM
check_eq "SIGTERM: exit 0" 0 "$DRC"
check "... the gate stays attached" attached
check "... and the daemon said so" grep -q "exiting (the gate stays attached)" "$DLOG"
check "... the grants stay in the pinned maps" has_grant "$LAB_CLIENT4"
check_not "... the control socket is removed" test -e "$SOCK"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4
check_eq "... the granted client still connects" open "$LAB_RESULT"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$MALLORY"
check_eq "... the denied one is still dropped (fail closed)" timeout "$LAB_RESULT"
# A login logged while the daemon is down is read at its start (saved read
# position), not skipped.
login_line 198.18.0.50 judy >>"$AUTHLOG"
# A stolen account revoked, a deny lifted, while the daemon is down.
check "grant del --user while the daemon is stopped" ctl grant del --user stolen
check "deny del while the daemon is stopped" ctl deny del 198.18.0.61

# --- restart, kill -9, reboot ----------------------------------------------

if start_daemon; then ok "restart"; else not_ok "restart"; tail -20 "$DLOG" | sed 's/^/#   /'; t_done; fi
check "... adopts the attached gate" grep -q "gate on $LAB_IF: adopting the attached gate" "$DLOG"
check "... keeps the grants" has_grant "$LAB_CLIENT4"
check "... knows the state file was written from these maps" \
	grep -q "state file $STATE: written from the grant and deny maps the gate still has" "$DLOG"
check_not "... the grant revoked while it was stopped stays revoked" has_grant 198.18.0.60
check_not "... the deny lifted while it was stopped stays lifted" has_deny 198.18.0.61
if lab_poll 1 has_grant 198.18.0.50; then ok "... reads the login logged while it was down (saved position)"; else not_ok "... reads the login logged while it was down (saved position)"; fi
check_eq "... and no line before it again" 1 "$(grep -c "grant $LAB_CLIENT4 user=alice service=pop3 source=applog" "$DLOG")"

# Expiry and revocation are logged with address and user.
check "a grant with a 1 s TTL by relaygatectl" ctl grant add 198.18.0.51 --ttl 1 --user kim
if lab_poll 3 grep -q "expire grant 198.18.0.51 user=kim" "$DLOG"; then ok "... expires: removed and logged with the user"; else not_ok "... expires: removed and logged with the user"; fi
check_not "... and is gone from the map" has_grant 198.18.0.51
check "relaygatectl grant del --user" ctl grant del --user judy
check "... the revocation is logged with address and user" lab_poll 3 grep -q "revoke grant 198.18.0.50 user=judy" "$DLOG"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4
check_eq "... the granted client connects" open "$LAB_RESULT"

# The state file cannot be written (its path is a directory now): said
# once and counted, the gate goes on; when it can again, the next walk
# writes it and says so.
e0=$(metrics | sed -n 's/^relaygate_state_saves_total{result="error"} //p')
rm -f "$STATE" && mkdir "$STATE"
check "a grant while the state file cannot be written" ctl grant add 198.18.0.77 --ttl 1h --user tess
check "... the daemon says why" lab_poll 3 grep -q "saving the state file: state file $STATE: rename .*(the previous file is unchanged)" "$DLOG"
check "... and counts it" lab_poll 2 eval "[ \"\$(metrics | sed -n 's/^relaygate_state_saves_total{result=\"error\"} //p')\" -gt ${e0:-0} ]"
check "... the grant stands" has_grant 198.18.0.77
rmdir "$STATE"
check "... it can again: the next walk writes it and says so" lab_poll 3 grep -q "state file $STATE: saved again" "$DLOG"
check "... with the grant" grep -q "^grant 198.18.0.77 .* tess\$" "$STATE"
check_eq "... the failure was logged once" 1 "$(grep -c "saving the state file:" "$DLOG")"

check "a grant through the control socket" "$LAB_CTL" --socket "$SOCK" event login 198.18.0.11 erin --service imap
tg=$(lab_now_ms)
sleep 1.2
stop_daemon KILL
check "kill -9 1.2 s after a grant: the state file holds it" grep -q "^grant 198.18.0.11 .* erin\$" "$STATE"
check "... and the earlier grants" grep -q "^grant $LAB_CLIENT4 .* alice\$" "$STATE"
check "... and the deny" grep -q "^deny $MALLORY " "$STATE"
if start_daemon; then ok "restart after kill -9"; else not_ok "restart after kill -9"; tail -20 "$DLOG" | sed 's/^/#   /'; t_done; fi
check "... keeps the grant made just before" has_grant 198.18.0.11
stop_daemon TERM

# Reboot: the attachment and every pin are gone, only the state file is left.
check "reboot simulation: detach" ctl detach "$LAB_IF"
rm -rf "$LAB_PIN"
check_not "... the grant is gone with the pins" test -e "$LAB_PIN/rg_grants"
sleep 1
if start_daemon; then ok "start after the reboot simulation"; else not_ok "start after the reboot simulation"; tail -20 "$DLOG" | sed 's/^/#   /'; t_done; fi
check "... attaches the gate again" attached
check "... logs what it restored" grep -qE "state file $STATE: restored [1-9][0-9]* grants and 1 denies" "$DLOG"
g=$(grant_of 198.18.0.11)
left=$(awk '{print $2}' <<<"$g")
want=$((TTL - $(ms_since "$tg") / 1000))
if [ -n "$left" ] && [ "$left" -le $((want + 1)) ] && [ "$left" -ge $((want - 2)) ]; then
	ok "... the grant is back with its remaining TTL ($left s, expected about $want s)"
else
	not_ok "... the grant is back with its remaining TTL"; diag "got '$g', expected about $want s left"
fi
check_eq "... with its user and service" "erin imap" "$(awk '{print $1, $3}' <<<"$g")"
check "... the deny is back" has_deny "$MALLORY"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4
check_eq "... the client granted before the reboot connects" open "$LAB_RESULT"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$MALLORY"
check_eq "... the denied one is dropped" timeout "$LAB_RESULT"

# --- [grants] ipv4_prefix changed by SIGHUP ----------------------------------
ctl grant add fd00:5::7 --ttl 1h --user p6 >/dev/null
n6=$(ctl --json grant list | jq '[.[] | select(.address | contains(":"))] | length')
ctl grant add 198.18.5.7 --ttl 1h --user pa >/dev/null
ctl grant add 198.18.5.9 --ttl 2h --user pb >/dev/null
ctl grant add 198.18.5.11 --ttl 30m --user pc >/dev/null
conf | sed "s|^ttl = ${TTL}s\$|ttl = ${TTL}s\nipv4_prefix = 24|" >"$CONF.tmp" && mv -f "$CONF.tmp" "$CONF"
hup
check "SIGHUP with ipv4_prefix = 24 moves the grants to /24 keys" \
	grep -qE "grant prefixes changed to /24 and /64: [1-9][0-9]* entries moved" "$DLOG"
g=$(ctl --json grant list | jq -r '.[] | select(.address == "198.18.5.0") | "\(.prefixlen) \(.user) \(.expires_in)"')
read -r plen user left <<<"$g"
check_eq "... three grants in one /24 are one, keyed 198.18.5.0/24" "24 pb" "$plen $user"
if [ -n "$left" ] && [ "$left" -gt 7000 ]; then ok "... with the longest expiry and that grant's user ($left s)"; else not_ok "... with the longest expiry and that grant's user"; diag "got '$g'"; fi
put_conf "$CONF"
hup
check "SIGHUP back to /32: the /24 keys cannot be narrowed, removed and said so" \
	grep -qE "grant prefixes changed from /24 and /64 to /32 and /64: [1-9][0-9]* grants and denies keyed by the shorter prefix removed" "$DLOG"
check_not "... no grant is left for 198.18.5.0 (it would admit only that address)" has_grant 198.18.5.0
check_eq "... the IPv6 grants (prefix unchanged) stay ($n6)" "$n6" "$(ctl --json grant list | jq '[.[] | select(.address | contains(":"))] | length')"
# A reboot with the prefix made longer meanwhile: the state file's /24
# keys are not restored as /32s.
ctl grant add 198.18.6.7 --ttl 1h --user pd >/dev/null
conf | sed "s|^ttl = ${TTL}s\$|ttl = ${TTL}s\nipv4_prefix = 24|" >"$CONF.tmp" && mv -f "$CONF.tmp" "$CONF"
hup
check "the state file says the keys are /24 and /64" \
	lab_poll 3 eval "grep -qE '^maps [0-9a-f-]{36} [0-9]+ [0-9]+ 24 64\$' '$STATE' && grep -q '^grant 198.18.6.0 ' '$STATE'"
stop_daemon TERM
ctl detach "$LAB_IF" >/dev/null
rm -rf "$LAB_PIN"
put_conf "$CONF"
if start_daemon; then ok "start after a reboot simulation, back at ipv4_prefix 32"; else not_ok "start after a reboot simulation, back at ipv4_prefix 32"; tail -20 "$DLOG" | sed 's/^/#   /'; t_done; fi
check "... the /24 keys of the state file are not restored, and it says so" \
	grep -qE "state file $STATE: [1-9][0-9]* grants and denies keyed by /24 and /64 not restored: the prefixes are /32 and /64 now" "$DLOG"
check_not "... no grant for 198.18.6.0" has_grant 198.18.6.0
check_eq "... the IPv6 grants are restored ($n6)" "$n6" "$(ctl --json grant list | jq '[.[] | select(.address | contains(":"))] | length')"

# --- a start that fails once the config is checked leaves the maps ---------
# The gate config map frozen (no syscall writes: bpftool map freeze) makes
# the last step of applying a config fail. A config that adds a subnet and
# changes ports and reject mode must then leave none of that behind; one
# that also trusts the gate's own interface must not leave it trusted
# (that would open the gate to everyone on it).
stop_daemon TERM
check_eq "the summary's fast-drop hint is on" true "$(summary fast_drop)"
check "bpftool map freeze of rg_config (a start's last map write will fail)" \
	bpftool map freeze pinned "$LAB_PIN/rg_config"
conf "$LAB_TRUST4 $LAB_TRUST6 198.18.99.0/24" | sed -e "s|^ports = .*|ports = 25|" \
	-e "s|^mode = xdp|mode = xdp\nreject = rst|" >"$T/frozen.conf"
out=$(timeout 20 nsenter --net="/run/netns/$LAB_MAIL" "$DAEMON" -c "$T/frozen.conf" --foreground 2>&1); rc=$?
check_eq "a start whose gate config write fails: exit 1" 1 "$rc"
check "... saying which map refused" grep -q "writing rg_config: Operation not permitted" <<<"$out"
check_eq "... the trusted subnets are the old ones" "$LAB_TRUST4 $LAB_TRUST6" "$(trust_list)"
check_eq "... the ports are the old ones" "465 587" "$(ctl ports list | tr '\n' ' ' | sed 's/ $//')"
check_eq "... the reject mode is the old one" drop "$(ctl --json status | jq -r .config.reject)"
check_eq "... and so is the summary's fast-drop hint" true "$(summary fast_drop)"
sed -i "s|^\[trust\]|[trust]\ninterface = $LAB_IF|" "$T/frozen.conf"
out=$(timeout 20 nsenter --net="/run/netns/$LAB_MAIL" "$DAEMON" -c "$T/frozen.conf" --foreground 2>&1); rc=$?
check_eq "the same start trusting $LAB_IF as well: exit 1" 1 "$rc"
check_eq "... no interface is left trusted" "" "$(ctl trust-iface list)"
# (a trusted interface passes before the deny list is read)
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$MALLORY"
check_eq "... the denied client is still dropped on $LAB_IF" timeout "$LAB_RESULT"
# The frozen map goes with the pins; the gate starts afresh.
ctl detach "$LAB_IF" >/dev/null
rm -rf "$LAB_PIN"
if start_daemon; then ok "start with fresh maps"; else not_ok "start with fresh maps"; tail -20 "$DLOG" | sed 's/^/#   /'; t_done; fi

# --- a trusted interface that appears and vanishes while the daemon runs ----
# relaygated looks once a second and writes rg_tiface under the pin-dir
# lock, as relaygatectl writes: while someone holds it, the change waits.
put_conf "$CONF"
sed -i "s|^\[trust\]|[trust]\ninterface = rgtif0|" "$CONF"
hup
check "a configured trusted interface that does not exist: warned" \
	grep -q "trusted interface rgtif0 does not exist (yet)" "$DLOG"
check_eq "... and no interface is trusted" "" "$(ctl trust-iface list)"
flock "$LAB_PIN" sleep 3 &
lpid=$!
sleep 0.3
check "rgtif0 appears (a veth pair in the mail namespace) while the pin dir is locked" \
	ip -n "$LAB_MAIL" link add name rgtif0 type veth peer name rgtif1
sleep 1.6
check_eq "... two ticks later rg_tiface is still as it was" "" "$(ctl trust-iface list)"
wait "$lpid"
lab_poll 3 eval '[ "$(ctl trust-iface list)" = rgtif0 ]'
check_eq "... the lock released, rgtif0 is trusted" rgtif0 "$(ctl trust-iface list)"
check "... and the daemon said so" grep -q "trusted interface rgtif0 appeared: trusted now" "$DLOG"
check "rgtif0 vanishes" ip -n "$LAB_MAIL" link del rgtif0
lab_poll 3 eval '[ -z "$(ctl trust-iface list)" ]'
check_eq "... and is trusted no more (no stale ifindex left)" "" "$(ctl trust-iface list)"
put_conf "$CONF"
hup

check "detach while the daemon runs" ctl detach "$LAB_IF"
stop_daemon TERM
check_eq "final SIGTERM: exit 0" 0 "$DRC"
check "... says the gate is attached nowhere" grep -q "exiting (the gate is attached nowhere)" "$DLOG"
if grep -qiE 'AddressSanitizer|runtime error|segfault' "$DLOG"; then not_ok "the daemon log shows no crash"; else ok "the daemon log shows no crash"; fi

t_done
