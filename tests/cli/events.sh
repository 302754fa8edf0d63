#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Events into a real relaygated (root): the control socket and the Dovecot
# auth-policy push refuse addresses no client can have (0.0.0.0/8,
# 224.0.0.0/3, ::, ff00::/8) and grant nothing for them; the control socket
# takes UTF-8 user names as the log sources do; a login that leaves a longer
# grant's expiry alone is logged "(kept: ...)", one that moves it
# "(extended)"; the config refuses an empty list element; and a SIGHUP that
# changes [control] socket_group changes who may send, not only the file.
. "$(dirname "$0")/cli-lib.bash"
cli_setup ev 1

for c in socat curl; do
	if ! command -v "$c" >/dev/null; then
		not_ok "$c is installed (scripts/install-deps)"
		t_done
	fi
done
if [ ! -x "$DAEMON" ]; then
	not_ok "relaygated is built ($DAEMON)"
	t_done
fi
ip -n "$NS" link set lo up
SOCK=$TMP/control.sock
PUSH_PORT=$((20000 + $$ % 20000))
LOG=$TMP/daemon.log
mkdir -p "$TMP/state"
cat >"$TMP/relaygate.conf" <<EOF
[gate]
interface = v0
ports = 587 465
pin_dir = $PIN

[grants]
ttl = 1m
state_file = $TMP/state/grants.state

[control]
socket = $SOCK
socket_group = root
; world-writable: the daemon's own peer check decides who may send
socket_mode = 0666

[source.push]
type = dovecot-auth-policy
listen = 127.0.0.1:$PUSH_PORT

[metrics]
listen = off
EOF

# --- the config: an empty list element is an error with file:line ----------
sed 's/^ports = 587 465$/ports = 587,,465/' "$TMP/relaygate.conf" >"$TMP/bad.conf"
out=$("$DAEMON" --check-config -c "$TMP/bad.conf" 2>&1)
rc=$?
check_eq "check-config: ports = 587,,465 fails" 1 "$([ "$rc" -ne 0 ] && echo 1 || echo 0)"
check "... naming the file, line and value" \
	grep -qF "$TMP/bad.conf:3: [gate] ports: \"587,,465\": empty element in the list" <<<"$out"
check "check-config: the good config passes (in the gate's namespace)" \
	nsenter --net="/run/netns/$NS" "$DAEMON" --check-config -c "$TMP/relaygate.conf"
out=$("$DAEMON" --check-config -c "$TMP/relaygate.conf" 2>&1)
check_eq "check-config where its [gate] interface is not: exit 1" 1 "$?"
check_eq "... naming file, line and interface" \
	"relaygated: $TMP/relaygate.conf:2: [gate] interface: v0: no such interface" "$out"

# --- files the config names: checked by --check-config, with file:line ------------
# bad_files NAME: the config plus a [policy] section (and the lines on stdin
# added where they belong), written to $TMP/NAME.conf.
bad_files() {
	{ cat "$TMP/relaygate.conf"; printf '\n[policy]\nlisten = inet:127.0.0.1:%d\n' $((PUSH_PORT + 1)); cat; } >"$TMP/$1.conf"
}
printf 'audit_log = %s\n' "$TMP/nodir/audit.log" | bad_files noaudit
line=$(grep -n '^audit_log' "$TMP/noaudit.conf" | cut -d: -f1)
out=$("$DAEMON" --check-config -c "$TMP/noaudit.conf" 2>&1)
check_eq "check-config: audit_log in a missing directory fails" 1 "$?"
check_eq "... with file:line and why" \
	"relaygated: $TMP/noaudit.conf:$line: [policy] audit_log: $TMP/nodir/audit.log: directory $TMP/nodir: No such file or directory" "$out"
printf 'sender_logins = %s\n' "$TMP/nosuch" | bad_files nosl
line=$(grep -n '^sender_logins' "$TMP/nosl.conf" | cut -d: -f1)
out=$("$DAEMON" --check-config -c "$TMP/nosl.conf" 2>&1)
check_eq "check-config: a missing sender_logins file fails" 1 "$?"
check "... with file:line" grep -qF "relaygated: $TMP/nosl.conf:$line: [policy] sender_logins: " <<<"$out"
sed "s|^state_file = .*|state_file = $TMP/state|" "$TMP/relaygate.conf" >"$TMP/sfdir.conf"
line=$(grep -n '^state_file' "$TMP/sfdir.conf" | cut -d: -f1)
out=$("$DAEMON" --check-config -c "$TMP/sfdir.conf" 2>&1)
check_eq "check-config: a state_file that is a directory fails" 1 "$?"
check_eq "... with file:line and why" \
	"relaygated: $TMP/sfdir.conf:$line: [grants] state_file: $TMP/state: not a regular file (a directory: name a file in it)" "$out"
out=$(nsenter --net="/run/netns/$NS" "$DAEMON" -c "$TMP/sfdir.conf" --foreground 2>&1)
check_eq "... and relaygated does not start with it" 1 "$?"
check "... saying the same" grep -qF "$TMP/sfdir.conf:$line: [grants] state_file: $TMP/state: not a regular file" <<<"$out"

# --- the daemon -----------------------------------------------------------------
nsenter --net="/run/netns/$NS" "$DAEMON" -c "$TMP/relaygate.conf" --foreground >"$LOG" 2>&1 </dev/null &
DPID=$!
t_cleanup "kill $DPID; wait $DPID"
for _ in $(seq 100); do
	grep -q "running (pid $DPID)" "$LOG" && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.1
done
if ! grep -q "running (pid $DPID)" "$LOG"; then
	not_ok "relaygated starts"
	sed 's/^/#   /' "$LOG" | tail -15
	t_done
fi
ok "relaygated starts (control socket and auth-policy push)"

# raw LINE: send one request line to the control socket, print the reply.
raw() { printf '%s\n' "$1" | timeout 5 socat -t 2 - "UNIX-CONNECT:$SOCK" 2>&1; }
# push BODY: POST a Dovecot auth-policy report, print the HTTP status.
push() {
	inns curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' --data "$1" \
		"http://127.0.0.1:$PUSH_PORT/?command=report"
}
# grant_user ADDR: the user of ADDR's grant, "" when it has none.
grant_user() { ctl --json grant list | jq -r --arg a "$1" 'map(select(.address == $a))[0].user // ""'; }
has_grant() { ctl --json grant list | jq -e --arg a "$1" 'any(.[]; .address == $a)' >/dev/null; }
# wait_grant ADDR: poll up to 3 s.
wait_grant() {
	for _ in $(seq 30); do has_grant "$1" && return 0; sleep 0.1; done
	return 1
}

# --- impossible addresses ------------------------------------------------------
expect_exit "event login 0.0.0.0 u: exit 1 with the daemon's reason" 1 \
	"relaygated: bad address: unspecified (0.0.0.0/8)" --socket "$SOCK" event login 0.0.0.0 u
check_eq "... the whole line" "relaygatectl: event login: relaygated: bad address: unspecified (0.0.0.0/8)" \
	"$(cat "$TMP/err")"
check_eq "LOGIN 0.0.0.1 x: refused" "ERR bad address: unspecified (0.0.0.0/8)" "$(raw 'LOGIN 0.0.0.1 x')"
check_eq "LOGIN 255.255.255.255 x: refused" "ERR bad address: multicast, reserved or broadcast (224.0.0.0/3)" \
	"$(raw 'LOGIN 255.255.255.255 x')"
check_eq "LOGIN 224.0.0.1 x: refused" "ERR bad address: multicast, reserved or broadcast (224.0.0.0/3)" \
	"$(raw 'LOGIN 224.0.0.1 x')"
check_eq "LOGIN ff02::1 x: refused" "ERR bad address: multicast (ff00::/8)" "$(raw 'LOGIN ff02::1 x')"
check_eq "LOGIN :: x: refused" "ERR bad address: unspecified (::)" "$(raw 'LOGIN :: x')"
check_eq "LOGIN ::ffff:0.0.0.0 x: refused as its IPv4 address" "ERR bad address: unspecified (0.0.0.0/8)" \
	"$(raw 'LOGIN ::ffff:0.0.0.0 x')"
check_eq "push of remote 0.0.0.0: 400" 400 "$(push '{"login":"pd","remote":"0.0.0.0","success":true}')"
check_eq "push of remote ff02::1: 400" 400 "$(push '{"login":"pd","remote":"ff02::1","success":true}')"
check_eq "a push of a client's address: 200" 200 "$(push '{"login":"pd","remote":"10.77.33.3","success":true}')"
check "... and it grants (so the push works)" wait_grant 10.77.33.3
check_eq "no grant for any impossible address: the push's is the only one" '["10.77.33.3"]' \
	"$(ctl --json grant list | jq -c 'map(.address)')"
check "the daemon logged the refusals" grep -q "bad address: unspecified (0.0.0.0/8); closing" "$LOG"

# --- UTF-8 user names ------------------------------------------------------------
check "event login 10.77.31.1 ü" ctl --socket "$SOCK" event login 10.77.31.1 ü
check "... grants" wait_grant 10.77.31.1
check_eq "... to ü" "ü" "$(grant_user 10.77.31.1)"
check_eq "LOGIN 10.77.32.2 jürgen: OK" OK "$(raw 'LOGIN 10.77.32.2 jürgen')"
check "... grants" wait_grant 10.77.32.2
check_eq "... to jürgen" "jürgen" "$(grant_user 10.77.32.2)"
check_eq "a control character in a user is still refused" "ERR bad user: control character" \
	"$(raw $'LOGIN 10.77.32.3 j\x1bx')"
expect_exit "event login with a control character: refused locally" 1 \
	"spaces and control characters are not allowed" --socket "$SOCK" event login 10.77.32.3 $'a\x01b'

# --- "(kept)" and "(extended)" ---------------------------------------------------
check "grant add 10.77.1.60 --ttl 2h --user zoe" ctl grant add 10.77.1.60 --ttl 2h --user zoe
check "a login for 10.77.1.60 (config ttl 1m)" ctl --socket "$SOCK" event login 10.77.1.60 yan
logged() { for _ in $(seq 30); do grep -Eq "$1" "$LOG" && return 0; sleep 0.1; done; return 1; }
check "... is logged as kept, with the expiry it keeps" \
	logged 'grant 10\.77\.1\.60 user=yan .*ttl=1m \(kept: expires in (2h|1h59m[0-9]*s)\)$'
check_not "... not as extended" grep -q "grant 10.77.1.60 user=yan .*(extended)" "$LOG"
jq_check "... and the 2h grant stands (now yan's)" \
	'map(select(.address == "10.77.1.60"))[0] | .expires_in > 7000 and .user == "yan"' "$(ctl --json grant list)"
check "grant add 10.77.1.61 --ttl 10s" ctl grant add 10.77.1.61 --ttl 10s
check "a login for 10.77.1.61" ctl --socket "$SOCK" event login 10.77.1.61 yan
check "... is logged as extended" logged 'grant 10\.77\.1\.61 user=yan .*ttl=1m \(extended\)$'
out=$(ctl grant add 10.77.1.60 --ttl 300)
check "grant add --ttl 300 over the 2h grant says the expiry was kept" \
	bash -c 'grep -Eqx "kept the grant of 10\.77\.1\.60 to yan: it expires in (2h|1h59m[0-9]*s), later than 5m" <<<"$1"' _ "$out"

# --- [control] socket_group changed by SIGHUP ------------------------------------
# nobody (group nogroup) may send once the group is nogroup, and no longer
# once it is root's again: the daemon's check follows the file's group.
chmod 711 "$TMP"          # nobody reaches the socket; the group decides
as_nobody() { setpriv --reuid=65534 --regid=65534 --init-groups "$CTL" --socket "$SOCK" "$@" 2>&1; }
reload() {
	local n
	n=$(grep -c 'reloaded ' "$LOG")
	kill -HUP "$DPID"
	for _ in $(seq 50); do [ "$(grep -c 'reloaded ' "$LOG")" -gt "$n" ] && return 0; sleep 0.1; done
	return 1
}
out=$(as_nobody event login 10.77.34.1 nob)
check "socket_group root: nobody is refused (by the daemon: the file is 0666)" grep -q "relaygated: permission denied" <<<"$out"
sed -i 's/^socket_group = root$/socket_group = nogroup/' "$TMP/relaygate.conf"
check "SIGHUP with socket_group = nogroup reloads" reload
check_eq "... the socket's group is nogroup" nogroup "$(stat -c %G "$SOCK")"
check "... and nobody may send now" as_nobody event login 10.77.34.2 nob
check "... which grants" wait_grant 10.77.34.2
sed -i 's/^socket_group = nogroup$/socket_group = root/' "$TMP/relaygate.conf"
check "SIGHUP with socket_group = root again reloads" reload
check_eq "... the socket's group is root" root "$(stat -c %G "$SOCK")"
out=$(as_nobody event login 10.77.34.3 nob)
check "... and nobody is refused again, by the daemon" grep -q "relaygated: permission denied" <<<"$out"
check_not "... no grant for its event" has_grant 10.77.34.3

check "relaygated is still running" kill -0 "$DPID"
t_done
