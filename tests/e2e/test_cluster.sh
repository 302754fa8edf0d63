#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# End to end: [cluster] redis = ... (user/cluster.h), two mail hosts sharing
# grants and denies through a real Redis.
#
#   client (rgc-PID-cl)            mx1 (rgc-PID-mx1)             mx2 (rgc-PID-mx2)
#   m1 10.88.1.2 <----veth----> cl0 10.88.1.1
#   m2 10.88.2.2 <----veth-------------------------------------> cl0 10.88.2.1
#                                  mx0 10.88.3.1 <----veth----> mx0 10.88.3.2
#   lo 10.88.9.9/32, .10 .. .14    redis-server (requirepass)
#      (routed back by both hosts  on 127.0.0.1 and 10.88.3.1,
#       through their own link)    and a unix socket
#
# The same client address reaches both hosts (a bound source address). One
# relaygated per mail host (nsenter --net, in a UTS namespace of its own
# whose host name is mx1 / mx2, which is what the messages carry), each
# gating 587 on cl0 in xdp mode, reject = drop, with its own pin dir,
# config, Dovecot log, control socket, state file and metrics port; mx1
# uses redis://:PASS@127.0.0.1:PORT/3, mx2 redis://:PASS@10.88.3.1:PORT/3.
#
# What a user sees: a login on one host admits its address on the other
# within 3 s; failed logins on one deny on the other, except where the
# other trusts the address; a grant is never shortened by a shorter one;
# with Redis away each host works alone and, when Redis comes back empty,
# both reconnect and fill it again; malformed messages on the channel are
# counted and change nothing; a daemon whose Redis cannot be reached starts
# anyway, joins on SIGHUP and leaves on SIGHUP; SIGTERM with Redis down
# exits 0 at once.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"

TTL=120                         # [grants] ttl, seconds
RPORT=6390                      # redis in mx1 (its own namespace)
DEADPORT=6391                   # nothing listens there
PASS="rg-e2e-$$-$RANDOM$RANDOM"
CLIENT=10.88.9.9                # alice, logs in on mx1
MALLORY=10.88.9.10              # fails on mx2
CAROL=10.88.9.11                # relaygatectl grant add --ttl 1h on mx2
DAVE=10.88.9.12                 # logs in on mx1 while Redis is away
ERIN=10.88.9.13                 # logs in on mx2 while it cannot reach Redis
BARRIER=10.88.9.14              # a login after another, to know it arrived
BARRIER2=10.88.9.15             # the same, after the subscriber came back
TRUSTED_NET=10.88.8.0/24        # trusted by mx1 only
TRUDY=10.88.8.8                 # fails on mx2, inside TRUSTED_NET
declare -A NS PIN CONF DLOG AUTHLOG MPORT DPID DRC MARK HOSTIP
NS[1]=rgc-$$-mx1
NS[2]=rgc-$$-mx2
NSC=rgc-$$-cl
HOSTIP[1]=10.88.1.1
HOSTIP[2]=10.88.2.1
MPORT[1]=19471
MPORT[2]=19472
PIN[1]=/sys/fs/bpf/rgtest-$$-mx1
PIN[2]=/sys/fs/bpf/rgtest-$$-mx2
declare -a URL
URL[1]="redis://:$PASS@127.0.0.1:$RPORT/3"
URL[2]="redis://:$PASS@10.88.3.1:$RPORT/3"
WHERE1="redis://127.0.0.1:$RPORT/3"         # as the daemons log them
WHERE2="redis://10.88.3.1:$RPORT/3"
CHANNEL=relaygate:events:3

t_need_root "e2e cluster tests"
for b in "$DAEMON" "$CTL"; do
	[ -x "$b" ] || { not_ok "$(basename "$b") is built ($b missing: make OUT=$OUT)"; t_done; }
done
for tool in redis-server redis-cli socat jq curl nsenter unshare ss nft; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done

T0=$(lab_now_ms)
step() { diag "[$((($(lab_now_ms) - T0) / 1000)) s] $*"; }
ms_since() { echo $(($(lab_now_ms) - $1)); }
re() { printf '%s' "$1" | sed 's/[][\.^$*+?(){}|]/\\&/g'; }

# --- cleanup: daemons (by PID), then the lab (namespaces, redis, socat,
# pins, scratch dir) -------------------------------------------------------
LAB_DIR=$(mktemp -d "/tmp/rg-cluster-$$.XXXXXX") || { not_ok "a scratch directory"; t_done; }
LAB_PINS+=("${PIN[1]}" "${PIN[2]}")
t_cleanup "rm -rf '${PIN[1]}' '${PIN[2]}'"
t_cleanup lab_down
t_cleanup stop_all
D=$LAB_DIR
RSOCK=$D/redis.sock             # the password-protected redis' unix socket

in_ns() { local ns=$1; shift; nsenter --net="/run/netns/$ns" "$@"; }
ctl() { local h=$1; shift; in_ns "${NS[$h]}" "$CTL" --pin-dir "${PIN[$h]}" "$@"; }
# grant_of H ADDR: "user source expires_in" of ADDR's live grant on host H.
grant_of() {
	ctl "$1" --json grant list 2>/dev/null | jq -r --arg a "$2" \
		'.[] | select(.address == $a and .expired == false) | "\(.user) \(.source) \(.expires_in)"'
}
has_grant() { [ -n "$(grant_of "$1" "$2")" ]; }
# deny_of H ADDR: "source expires_in" of ADDR's live deny on host H.
deny_of() {
	ctl "$1" --json deny list 2>/dev/null | jq -r --arg a "$2" \
		'.[] | select(.address == $a and .expired == false) | "\(.source) \(.expires_in)"'
}
has_deny() { [ -n "$(deny_of "$1" "$2")" ]; }
# grants H: the live grants' addresses, sorted, on one line.
grants() { ctl "$1" --json grant list 2>/dev/null | jq -r '[.[] | select(.expired == false) | .address] | sort | join(" ")'; }
metrics() { in_ns "${NS[$1]}" curl -s --max-time 3 "http://127.0.0.1:${MPORT[$1]}/metrics"; }
# metric H NAME{LABELS}: its value, nothing if absent.
metric() { metrics "$1" | mval "$2"; }
# mval NAME{LABELS}: its value in the /metrics text on stdin.
mval() { awk -v k="$1" '$1 == k { print $2; exit }'; }
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
# settled H: host H's cluster counters on /metrics (copied once a second)
# are the same across a copy: what happened before is in them.
settled() {
	local a b
	a=$(metrics "$1" | grep '^relaygate_cluster_')
	sleep 1.2
	b=$(metrics "$1" | grep '^relaygate_cluster_')
	[ -n "$a" ] && [ "$a" = "$b" ]
}
rcli() { REDISCLI_AUTH=$PASS in_ns "${NS[1]}" redis-cli -h 127.0.0.1 -p "$RPORT" -n 3 "$@"; }
rkeys() { rcli --scan --pattern 'relaygate:*' 2>/dev/null | sort | tr '\n' ' '; }
# try SRC HOST [TMO]: one connection attempt to HOST's 587 from SRC.
try() { lab_try "$NSC" "${HOSTIP[$2]}" 587 "${3:-$LAB_CONNECT_TMO}" "$1"; }

login_line() {
	printf '%s pop3-login: Info: Login: user=<%s>, method=PLAIN, rip=%s, lip=%s, mpid=4242, session=<e2e%s>\n' \
		"$(date '+%b %e %H:%M:%S')" "$2" "$1" "$3" "$RANDOM"
}
failure_line() {
	printf '%s imap-login: Info: Disconnected: Connection closed (auth failed, 1 attempts in 1 secs): user=<%s>, method=PLAIN, rip=%s, lip=%s, session=<e2e%s>\n' \
		"$(date '+%b %e %H:%M:%S')" "$2" "$1" "$3" "$RANDOM"
}
# login H ADDR USER / fail H ADDR USER: a Dovecot line in host H's log.
login() { login_line "$2" "$3" "${HOSTIP[$1]}" >>"${AUTHLOG[$1]}"; }
fail() { failure_line "$2" "$3" "${HOSTIP[$1]}" >>"${AUTHLOG[$1]}"; }

# conf H URL [TRUST]: host H's config on stdout; URL "" = no [cluster].
conf() {
	local h=$1 url=$2 trust=${3:-}
	cat <<EOF
; relaygated cluster e2e ($0), host mx$h
[gate]
interface = cl0
mode = xdp
reject = drop
ports = 587
pin_dir = ${PIN[$h]}
EOF
	[ -z "$trust" ] || printf '\n[trust]\nsubnet = %s\n' "$trust"
	cat <<EOF

[grants]
ttl = ${TTL}s
state_file = $D/mx$h/grants.state

[deny]
after_failures = 3
within = 1m
ttl = 10m

[source.log]
type = dovecot
path = ${AUTHLOG[$h]}

[control]
socket = $D/mx$h/control.sock

[metrics]
listen = 127.0.0.1:${MPORT[$h]}
EOF
	[ -z "$url" ] || printf '\n[cluster]\nredis = %s\n' "$url"
}
put_conf() { local h=$1; shift; conf "$h" "$@" >"${CONF[$h]}.tmp" && mv -f "${CONF[$h]}.tmp" "${CONF[$h]}"; }

# since H: host H's daemon log lines of its current run.
since() { tail -n "+$((${MARK[$1]} + 1))" "${DLOG[$1]}"; }
log_has() { since "$1" | grep -Eq -- "$2"; }
log_count() { since "$1" | grep -Ec -- "$2"; }
log_wait() { lab_poll "${3:-5}" log_has "$1" "$2"; }
show_log() { since "$1" | tail -n "${2:-12}" | sed "s/^/#   mx$1: /"; }

# start_daemon H: relaygated --foreground in mx H's network namespace and a
# UTS namespace named mxH (unshare and sh exec: $! is the daemon's PID);
# ready when it logs "running (pid N)".
start_daemon() {
	local h=$1
	touch "${DLOG[$h]}"
	MARK[$h]=$(wc -l <"${DLOG[$h]}")
	nsenter --net="/run/netns/${NS[$h]}" unshare --uts -- \
		sh -c 'hostname "$0" && exec "$@"' "mx$h" "$DAEMON" -c "${CONF[$h]}" --foreground \
		>>"${DLOG[$h]}" 2>&1 </dev/null &
	DPID[$h]=$!
	lab_poll 10 eval "since $h | grep -q 'running (pid ${DPID[$h]})' || ! kill -0 ${DPID[$h]} 2>/dev/null"
	since "$h" | grep -q "running (pid ${DPID[$h]})"
}
# stop_daemon H [SIGNAL]: signal it (TERM), wait up to 5 s (then KILL);
# exit status in DRC[H].
stop_daemon() { stop_daemon_ "$@" 2>/dev/null; }
stop_daemon_() {
	local h=$1 sig=${2:-TERM}
	DRC[$h]=
	[ -n "${DPID[$h]:-}" ] || return 0
	kill "-$sig" "${DPID[$h]}" 2>/dev/null
	lab_poll 5 eval "! kill -0 ${DPID[$h]} 2>/dev/null" || kill -KILL "${DPID[$h]}" 2>/dev/null
	wait "${DPID[$h]}" 2>/dev/null
	DRC[$h]=$?
	DPID[$h]=
	return 0
}
stop_all() { stop_daemon 1 KILL; stop_daemon 2 KILL; }
alive() { [ -n "${DPID[$1]:-}" ] && kill -0 "${DPID[$1]}" 2>/dev/null; }
# hup H: SIGHUP, and wait until the daemon says how the reload went.
hup() {
	local h=$1 before
	before=$(log_count "$h" 'reloaded |keeping the old configuration')
	kill -HUP "${DPID[$h]}" || return 1
	lab_poll 5 eval "[ \$(log_count $h 'reloaded |keeping the old configuration') -gt $before ]"
}

RPID=
redis_start() {
	lab_spawn "${NS[1]}" redis redis-server --port "$RPORT" --bind 127.0.0.1 10.88.3.1 \
		--requirepass "$PASS" --unixsocket "$RSOCK" --unixsocketperm 700 \
		--save '' --appendonly no --daemonize no
	RPID=$LAB_SPAWNED
	lab_poll 5 eval '[ "$(rcli PING 2>/dev/null)" = PONG ]'
}
# forget PID: lab_down need not signal it (stopped already).
forget() {
	local p keep=()
	for p in "${LAB_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	LAB_PIDS=("${keep[@]}")
}
redis_stop() { [ -n "$RPID" ] && lab_stop "$RPID" && forget "$RPID"; RPID=; }

# --- the topology ----------------------------------------------------------------

step "namespaces, veths, routes, listeners, redis"
setup() {
	local h
	lab_ns_new "${NS[1]}" && lab_ns_new "${NS[2]}" && lab_ns_new "$NSC" || return 1
	lab_veth "$NSC" m1 "${NS[1]}" cl0 && lab_veth "$NSC" m2 "${NS[2]}" cl0 &&
		lab_veth "${NS[1]}" mx0 "${NS[2]}" mx0 || return 1
	lab_addr "$NSC" m1 10.88.1.2/24 && lab_addr "${NS[1]}" cl0 10.88.1.1/24 &&
		lab_addr "$NSC" m2 10.88.2.2/24 && lab_addr "${NS[2]}" cl0 10.88.2.1/24 &&
		lab_addr "${NS[1]}" mx0 10.88.3.1/24 && lab_addr "${NS[2]}" mx0 10.88.3.2/24 || return 1
	for a in $CLIENT $MALLORY $CAROL $DAVE $ERIN $BARRIER $BARRIER2; do
		lab_addr "$NSC" lo "$a/32" || return 1
	done
	ip -n "${NS[1]}" route add 10.88.9.0/24 via 10.88.1.2 &&
		ip -n "${NS[2]}" route add 10.88.9.0/24 via 10.88.2.2 || return 1
	for h in 1 2; do
		mkdir -p "$D/mx$h" || return 1
		CONF[$h]=$D/mx$h/relaygate.conf
		DLOG[$h]=$D/mx$h/daemon.log
		AUTHLOG[$h]=$D/mx$h/auth.log
		MARK[$h]=0
		: >"${AUTHLOG[$h]}" && : >"${DLOG[$h]}" || return 1
		lab_spawn "${NS[$h]}" "listen-mx$h" socat TCP4-LISTEN:587,reuseaddr,fork,backlog=64 EXEC:cat
	done
	lab_wait_listen "${NS[1]}" 587 && lab_wait_listen "${NS[2]}" 587
}
if setup; then ok "three namespaces, three veths, the client address routed back by both hosts"; else
	not_ok "the topology comes up"; t_done
fi
try "$CLIENT" 1 2; r1=$LAB_RESULT
try "$CLIENT" 2 2; r2=$LAB_RESULT
check_eq "without a gate, $CLIENT (bound source) connects to both hosts' 587" "open open" "$r1 $r2"
if redis_start; then ok "redis-server (requirepass, DB 3) runs in mx1 on 127.0.0.1 and 10.88.3.1:$RPORT"; else
	not_ok "redis-server starts in mx1"; sed 's/^/#   /' "$D/redis.log"; t_done
fi
check_eq "... mx2 reaches it over the mx1<->mx2 link" PONG \
	"$(REDISCLI_AUTH=$PASS in_ns "${NS[2]}" redis-cli -h 10.88.3.1 -p "$RPORT" PING 2>&1)"

# --- 1. both daemons start and connect ------------------------------------------

step "1. daemons"
put_conf 1 "${URL[1]}" "$TRUSTED_NET"
put_conf 2 "${URL[2]}"
for h in 1 2; do
	if start_daemon "$h"; then ok "relaygated runs on mx$h (pid ${DPID[$h]})"; else
		not_ok "relaygated runs on mx$h"; show_log "$h" 20; t_done
	fi
done
check "mx1 logs that it connected to $WHERE1" log_wait 1 "cluster: connected to $(re "$WHERE1"): "
check "mx2 logs that it connected to $WHERE2" log_wait 2 "cluster: connected to $(re "$WHERE2"): "
check "... neither logs the password" eval "! grep -qF -- '$PASS' '${DLOG[1]}' '${DLOG[2]}'"
check "relaygate_cluster_up 1 on both" lab_poll 3 eval 'metric_is 1 relaygate_cluster_up 1 && metric_is 2 relaygate_cluster_up 1'

# --- 2. a login on mx1 admits the address on mx2 -------------------------------

step "2. grant shared"
try "$CLIENT" 2
check_eq "before any login, $CLIENT cannot connect to mx2:587 (dropped)" timeout "$LAB_RESULT"
t0=$(lab_now_ms)
login 1 "$CLIENT" alice
if lab_poll 3 has_grant 2 "$CLIENT"; then
	ok "a login for $CLIENT on mx1: mx2 grants it within 3 s ($(ms_since "$t0") ms)"
else
	not_ok "a login for $CLIENT on mx1: mx2 grants it within 3 s"; show_log 1; show_log 2
fi
g=$(grant_of 2 "$CLIENT")
check_eq "... mx2's grant: user alice, source cluster" "alice cluster" "$(awk '{ print $1, $2 }' <<<"$g")"
check "... mx2 logs it with the sending host" log_has 2 "grant $(re "$CLIENT") user=alice source=cluster host=mx1 ttl="
try "$CLIENT" 2 2
check_eq "... and the client connects to mx2:587" open "$LAB_RESULT"
v=$(rcli GET "relaygate:grant:$CLIENT/32")
check "Redis DB 3 holds relaygate:grant:$CLIENT/32 (the state-file entry line)" \
	grep -qE "^grant $(re "$CLIENT") [0-9]+ [0-9]+ log pop3 alice\$" <<<"$v"
pttl=$(rcli PTTL "relaygate:grant:$CLIENT/32")
# EXPIRES is in whole seconds, rounded up: up to 1 s over the TTL.
if [ "${pttl:-0}" -gt $(((TTL - 10) * 1000)) ] && [ "$pttl" -le $(((TTL + 1) * 1000)) ]; then
	ok "... expiring with the grant (PTTL $pttl ms, grant TTL ${TTL} s)"
else
	not_ok "... expiring with the grant"; diag "PTTL '$pttl' ms, grant TTL $TTL s, value '$v'"
fi
check_eq "... and only in DB 3" "" "$(REDISCLI_AUTH=$PASS in_ns "${NS[1]}" redis-cli -h 127.0.0.1 -p "$RPORT" -n 0 --scan --pattern 'relaygate:*')"

# --- 3. denies: shared, except into a trusted subnet -----------------------------

step "3. denies"
drop0=$(lab_stat drop_denied "$(ctl 1 --json stats)")
for _ in 1 2 3; do fail 2 "$MALLORY" mallory; done
check "3 failed logins for $MALLORY on mx2: mx2 denies it" lab_poll 3 has_deny 2 "$MALLORY"
if lab_poll 3 has_deny 1 "$MALLORY"; then ok "... and mx1 denies it, within 3 s"; else not_ok "... and mx1 denies it, within 3 s"; show_log 1; fi
check_eq "... mx1's deny has source cluster" cluster "$(deny_of 1 "$MALLORY" | awk '{ print $1 }')"
check "... mx1 logs it with the sending host" log_has 1 "deny $(re "$MALLORY") source=cluster host=mx2 ttl="
try "$MALLORY" 1
drop1=$(lab_stat drop_denied "$(ctl 1 --json stats)")
check_eq "... $MALLORY's SYN to mx1 is dropped as denied" "timeout yes" \
	"$LAB_RESULT $([ "${drop1:-0}" -gt "${drop0:-0}" ] && echo yes || echo "no ($drop0 -> $drop1)")"
for _ in 1 2 3; do fail 2 "$TRUDY" trudy; done
check "3 failed logins for $TRUDY on mx2: mx2 denies it" lab_poll 3 has_deny 2 "$TRUDY"
check_eq "... its own deny: source log" log "$(deny_of 2 "$TRUDY" | awk '{ print $1 }')"
check "... mx1, which trusts $TRUSTED_NET, logs that it does not deny it" \
	log_wait 1 "not denying $(re "$TRUDY") \(sent by mx2\): it overlaps a trusted subnet here" 3
check_not "... and has no deny for it" has_deny 1 "$TRUDY"
# /metrics shows counters copied once a second: poll.
if lab_poll 3 metric_is 1 'relaygate_cluster_entries_total{result="trusted"}' 1; then ok '... counted as result="trusted"'; else
	not_ok '... counted as result="trusted"'; diag "got $(metric 1 'relaygate_cluster_entries_total{result="trusted"}')"
fi

# --- 4. never shorten ---------------------------------------------------------

step "4. never shorten"
check "relaygatectl grant add $CAROL --ttl 1h --user carol on mx2" ctl 2 grant add "$CAROL" --ttl 1h --user carol
t0=$(lab_now_ms)
if lab_poll 5 has_grant 1 "$CAROL"; then ok "... reaches mx1 ($(ms_since "$t0") ms: the walker shares relaygatectl's adds)"; else
	not_ok "... reaches mx1 within 5 s"; show_log 2
fi
login 1 "$CAROL" carol
check "a login for $CAROL on mx1 (config TTL ${TTL} s)" log_wait 1 "grant $(re "$CAROL") user=carol service=pop3 source=log ttl=.*\(kept: expires in " 3
# Barrier: one more login on mx1 after it; once mx2 has that one, whatever
# mx1 sent about $CAROL has arrived too (one queue, one channel).
login 1 "$BARRIER" barrier
check "... (a later login on mx1 has reached mx2)" lab_poll 3 has_grant 2 "$BARRIER"
l1=$(grant_of 1 "$CAROL" | awk '{ print $3 }')
l2=$(grant_of 2 "$CAROL" | awk '{ print $3 }')
if [ "${l1:-0}" -gt 3000 ] && [ "${l2:-0}" -gt 3000 ]; then
	ok "... shortens neither host's grant (mx1 $l1 s, mx2 $l2 s left)"
else
	not_ok "... shortens neither host's grant"; diag "mx1 '$(grant_of 1 "$CAROL")' mx2 '$(grant_of 2 "$CAROL")'"
fi
t=$(rcli TTL "relaygate:grant:$CAROL/32")
check "... nor Redis' key (TTL $t s)" test "${t:-0}" -gt 3000
# Extending a grant that came from a login, with relaygatectl: shared too.
ctl 1 grant add "$CLIENT" --ttl 2h >/dev/null
check "relaygatectl grant add $CLIENT --ttl 2h on mx1 (it held a ${TTL} s login grant): Redis' key extended" \
	lab_poll 5 eval "[ \"\$(rcli TTL 'relaygate:grant:$CLIENT/32')\" -gt 3600 ]"
check "... and mx2's grant" lab_poll 3 eval "[ \"\$(grant_of 2 $CLIENT | awk '{ print \$3 }')\" -gt 3600 ]"

# --- 4b. a subscriber cut off without a reset ------------------------------------

step "4b. silent subscriber"
# mx2's subscriber connection, as Redis sees it; then mx1 (where Redis
# runs) drops everything Redis sends on it, as a NAT that forgot the flow.
sport=$(rcli CLIENT LIST | awk '/cmd=subscribe/ && / addr=10\.88\.3\.2:/ { sub(/.* addr=10\.88\.3\.2:/, ""); sub(/ .*/, ""); print; exit }')
check "mx2's subscriber connection is in CLIENT LIST (port ${sport:-none})" test -n "$sport"
n0=$(log_count 2 "cluster: reconnected to $(re "$WHERE2"): ")
in_ns "${NS[1]}" nft -f - <<NFT
table inet rgc-$$ {
	chain out {
		type filter hook output priority 0;
		ip daddr 10.88.3.2 tcp sport $RPORT tcp dport ${sport:-1} drop
	}
}
NFT
t0=$(lab_now_ms)
if log_wait 2 "cluster: lost $(re "$WHERE2"): subscriber: no answer to PING" 15; then
	ok "mx2 finds its subscriber dead by its PING ($(ms_since "$t0") ms)"
else
	not_ok "mx2 finds its subscriber dead by its PING"; show_log 2 5
fi
in_ns "${NS[1]}" nft delete table inet "rgc-$$"
check "... and reconnects" lab_poll 10 eval "[ \$(log_count 2 'cluster: reconnected to $(re "$WHERE2"): ') -gt $n0 ]"
login 1 "$BARRIER2" barrier2
check "... and receives again: a login on mx1 reaches mx2" lab_poll 3 has_grant 2 "$BARRIER2"

# --- 5. Redis away ------------------------------------------------------------

step "5. redis away"
lab_poll 5 settled 1 && lab_poll 5 settled 2
c1=$(metric 1 relaygate_cluster_connects_total)
c2=$(metric 2 relaygate_cluster_connects_total)
redis_stop
check "redis stopped: mx1 logs that it lost $WHERE1" log_wait 1 "cluster: lost $(re "$WHERE1"): .*working locally, retrying"
check "... mx2 logs that it lost $WHERE2" log_wait 2 "cluster: lost $(re "$WHERE2"): .*working locally, retrying"
t_lost=$(lab_now_ms)
check "... relaygate_cluster_up 0 on both" lab_poll 3 eval 'metric_is 1 relaygate_cluster_up 0 && metric_is 2 relaygate_cluster_up 0'
check "... both keep running" eval 'alive 1 && alive 2'
login 1 "$DAVE" dave
check "a login for $DAVE on mx1 meanwhile: mx1 grants it" lab_poll 2 has_grant 1 "$DAVE"
try "$DAVE" 1 2; r1=$LAB_RESULT
try "$DAVE" 2; r2=$LAB_RESULT
check_eq "... $DAVE connects to mx1, not to mx2" "open timeout" "$r1 $r2"
check_not "... mx2 has no grant for it" has_grant 2 "$DAVE"
if redis_start; then ok "redis-server started again (empty) after $(ms_since "$t_lost") ms"; else
	not_ok "redis-server starts again"; t_done
fi
t0=$(lab_now_ms)
lab_poll 40 eval 'log_has 1 "cluster: reconnected to $(re "$WHERE1"): " && log_has 2 "cluster: reconnected to $(re "$WHERE2"): "'
if log_has 1 "cluster: reconnected to" && log_has 2 "cluster: reconnected to"; then
	ok "... both log that they reconnected, within 40 s ($(ms_since "$t0") ms)"
else
	not_ok "... both log that they reconnected, within 40 s"; show_log 1 5; show_log 2 5
fi
check "... relaygate_cluster_up 1 on both" lab_poll 3 eval 'metric_is 1 relaygate_cluster_up 1 && metric_is 2 relaygate_cluster_up 1'
if lab_poll 3 has_grant 2 "$DAVE"; then ok "mx2 now holds the grant mx1 made while Redis was away"; else not_ok "mx2 now holds the grant mx1 made while Redis was away"; fi
try "$DAVE" 2 2
check_eq "... and $DAVE connects to mx2" open "$LAB_RESULT"
want="relaygate:deny:$MALLORY/32 relaygate:deny:$TRUDY/32 relaygate:grant:$CLIENT/32 relaygate:grant:$CAROL/32 relaygate:grant:$DAVE/32 relaygate:grant:$BARRIER/32"
missing() { local k have; have=" $(rkeys)"; for k in $want; do [[ $have == *" $k "* ]] || echo "$k"; done; }
if lab_poll 3 eval '[ -z "$(missing)" ]'; then ok "Redis holds both hosts' grants and denies again (the resync push)"; else
	not_ok "Redis holds both hosts' grants and denies again"; diag "missing: $(missing | tr '\n' ' ') have: $(rkeys)"
fi
lab_poll 5 settled 1 && lab_poll 5 settled 2
check_eq "relaygate_cluster_connects_total one more on both ($c1 $c2 before)" "$((c1 + 1)) $((c2 + 1))" \
	"$(metric 1 relaygate_cluster_connects_total) $(metric 2 relaygate_cluster_connects_total)"

# --- 6. bad input on the channel -------------------------------------------------

step "6. bad messages"
now=$(date +%s)
exp=$((now + 120))
long=$(printf 'x%.0s' $(seq 1 1200))
bad=(
	"hello world"
	"relaygate-cluster 2 0123456789abcdef mx9 32 grant 10.88.9.20 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123456789ABCDEF mx9 32 grant 10.88.9.20 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123abc mx9 32 grant 10.88.9.20 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123456789abcdef $(printf 'h%.0s' $(seq 1 65)) 32 grant 10.88.9.20 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123456789abcdef mx9 32 grant 10.88.9.300 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123456789abcdef mx9 32 grant 10.88.9.20 $exp $now log pop3 $long"
	"relaygate-cluster 1 0123456789abcdef mx9 32 grant 10.88.9.20 $exp"
	"relaygate-cluster 1 0123456789abcdef mx9 33 grant 10.88.9.20 $exp $now log pop3 eve"
	"relaygate-cluster 1 0123456789abcdef mx9 24 grant 10.88.9.20 $exp $now log pop3 eve"
)
expired="relaygate-cluster 1 0123456789abcdef mx9 32 grant 10.88.9.21 $((now - 10)) $((now - 100)) log pop3 eve"
good="relaygate-cluster 1 0123456789abcdef mx9 32 grant 10.88.9.22 $exp $now log pop3 bob"
# Well-formed, but keyed /24 by its sender: these hosts key /32 and would
# admit only 10.88.7.0 of it.
wide="relaygate-cluster 1 0123456789abcdef mx9 24 grant 10.88.7.0 $exp $now log pop3 wide"
lab_poll 5 settled 1 && lab_poll 5 settled 2
for h in 1 2; do
	m=$(metrics "$h")
	rej0[h]=$(mval 'relaygate_cluster_entries_total{result="rejected"}' <<<"$m")
	pre0[h]=$(mval 'relaygate_cluster_entries_total{result="prefix"}' <<<"$m")
	app0[h]=$(mval 'relaygate_cluster_entries_total{result="applied"}' <<<"$m")
	list0[h]=$(grants "$h")
done
subs=
for m in "${bad[@]}" "$expired" "$wide" "$good"; do subs+="$(rcli PUBLISH "$CHANNEL" "$m") "; done
check_eq "PUBLISH on $CHANNEL: ${#bad[@]} malformed, 1 expired, 1 keyed /24, 1 good message, each to 2 subscribers" \
	"$(printf '2 %.0s' $(seq 1 $((${#bad[@]} + 3))))" "$subs"
for h in 1 2; do
	if lab_poll 3 has_grant "$h" 10.88.9.22; then ok "mx$h applies the well-formed message: grants 10.88.9.22"; else
		not_ok "mx$h applies the well-formed message: grants 10.88.9.22"; show_log "$h" 5
	fi
	check_eq "... user bob, source cluster" "bob cluster" "$(grant_of "$h" 10.88.9.22 | awk '{ print $1, $2 }')"
	check "... logged with host mx9" log_has "$h" "grant 10\.88\.9\.22 user=bob source=cluster host=mx9 ttl="
	# /metrics copies the counters once a second: the first copy that
	# shows the good message applied was taken after every message
	# before it on the channel was handled.
	lab_poll 3 eval "[ \"\$(metric $h 'relaygate_cluster_entries_total{result=\"applied\"}')\" -gt ${app0[h]:-0} ]"
	rej=$(metric "$h" 'relaygate_cluster_entries_total{result="rejected"}')
	check_eq "mx$h counts the ${#bad[@]} malformed ones as result=\"rejected\" (not the expired one)" \
		"${#bad[@]}" "$((${rej:-0} - ${rej0[h]:-0}))"
	pre=$(metric "$h" 'relaygate_cluster_entries_total{result="prefix"}')
	check_eq "mx$h does not apply the /24 one: result=\"prefix\" +1" 1 "$((${pre:-0} - ${pre0[h]:-0}))"
	check "... and says why" log_has "$h" "cluster: grant 10\.88\.7\.0/24 from mx9 not applied: this host keys /32"
	check_not "... no grant for 10.88.7.0" has_grant "$h" 10.88.7.0
	check "... keeps running" alive "$h"
	check_eq "... its grants are the same but for 10.88.9.22" "${list0[h]}" \
		"$(grants "$h" | tr ' ' '\n' | grep -vx 10.88.9.22 | tr '\n' ' ' | sed 's/ $//')"
done

# --- 7. a Redis that cannot be reached; joining and leaving on SIGHUP -------------

step "7. unreachable at start, SIGHUP"
stop_daemon 2 TERM
check_eq "mx2 stopped (SIGTERM: exit 0)" 0 "${DRC[2]}"
put_conf 2 "redis://:$PASS@10.88.3.1:$DEADPORT/3"
if start_daemon 2; then ok "mx2 starts with [cluster] at a port where nothing listens"; else
	not_ok "mx2 starts with [cluster] at a port where nothing listens"; show_log 2 20; t_done
fi
check "... logs that it cannot reach it" log_wait 2 "cluster: cannot use $(re "redis://10.88.3.1:$DEADPORT/3"): .*working locally, retrying"
check "... relaygate_cluster_up 0" lab_poll 3 metric_is 2 relaygate_cluster_up 0
login 2 "$ERIN" erin
check "a login for $ERIN on mx2: mx2 grants it" lab_poll 2 has_grant 2 "$ERIN"
try "$ERIN" 2 2
check_eq "... and $ERIN connects to mx2" open "$LAB_RESULT"
check_not "... mx1 does not have it" has_grant 1 "$ERIN"
# The unix: form, with a wrong password first: a clear error, no cluster.
put_conf 2 "unix::wrong-$PASS@$RSOCK?db=3"
check "SIGHUP to unix:[wrong password]@$RSOCK?db=3" hup 2
check "... leaves the unreachable one" log_has 2 "cluster: leaving $(re "redis://10.88.3.1:$DEADPORT/3")"
check "... and says the password is wrong" \
	log_wait 2 "cluster: cannot use redis unix:$(re "$RSOCK")\?db=3: AUTH: .*(WRONGPASS|invalid)"
check_eq "... relaygate_cluster_up 0" 0 "$(metric 2 relaygate_cluster_up)"
if grep -qF -- "wrong-$PASS" "${DLOG[2]}"; then not_ok "... the password is not logged"; else
	ok "... the password is not logged"; fi
put_conf 2 "unix::$PASS@$RSOCK?db=3"
t0=$(lab_now_ms)
check "SIGHUP to unix::PASSWORD@$RSOCK?db=3: mx2 connects" \
	eval "hup 2 && log_wait 2 'cluster: connected to redis unix:$(re "$RSOCK")\\?db=3: '"
check "... and writes its grants into DB 3" \
	lab_poll 3 eval "rcli GET 'relaygate:grant:$ERIN/32' | grep -qE ' pop3 erin\$'"
if lab_poll 3 has_grant 1 "$ERIN"; then ok "... its local grant for $ERIN reaches mx1 ($(ms_since "$t0") ms)"; else
	not_ok "... its local grant for $ERIN reaches mx1"; show_log 2 5
fi
check_eq "... as user erin, source cluster" "erin cluster" "$(grant_of 1 "$ERIN" | awk '{ print $1, $2 }')"
try "$ERIN" 1 2
check_eq "... and $ERIN connects to mx1" open "$LAB_RESULT"
put_conf 2 "${URL[2]}"
check "SIGHUP back to $WHERE2: mx2 leaves the socket and connects" \
	eval "hup 2 && log_wait 2 'cluster: connected to $(re "$WHERE2"): ' && log_has 2 'cluster: leaving redis unix:'"
check "... relaygate_cluster_up 1" lab_poll 3 metric_is 2 relaygate_cluster_up 1
# mx2 made the deny of $TRUDY itself (step 3); this connect's resync read
# it back from Redis, where its expiry is in whole seconds, rounded up. It
# is still mx2's own (cluster.h: a daemon ignores its own messages).
check_eq "... mx2's own deny for $TRUDY, read back from Redis, keeps source log" log \
	"$(deny_of 2 "$TRUDY" | awk '{ print $1 }')"
put_conf 2 ""
check "SIGHUP without [cluster]: mx2 logs cluster: leaving $WHERE2" eval "hup 2 && log_wait 2 'cluster: leaving $(re "$WHERE2")\$'"
m=$(metrics 2)
if [ -n "$m" ] && ! grep -q '^relaygate_cluster_' <<<"$m"; then ok "... /metrics has no relaygate_cluster_ families"; else
	not_ok "... /metrics has no relaygate_cluster_ families"; grep '^relaygate_cluster_' <<<"$m" | sed 's/^/#   /'
fi
check "... and it keeps running" alive 2

# --- 8. SIGTERM while Redis is down --------------------------------------------

step "8. SIGTERM with redis down"
# rvals: every relaygate key of DB 3 with its value (the entry line).
rvals() { local k; for k in $(rcli --scan --pattern 'relaygate:*' | sort); do echo "$k $(rcli GET "$k")"; done; }
v0=$(rvals)
put_conf 2 "${URL[2]}"
n0=$(log_count 2 "cluster: connected to $(re "$WHERE2"): ")
check "mx2 rejoins on SIGHUP" eval "hup 2 && lab_poll 3 eval '[ \$(log_count 2 \"cluster: connected to $(re "$WHERE2"): \") -gt $n0 ]'"
# Nobody logged in since mx2 last pushed everything it holds: its resync
# (which logs "connected" when its push is done) must change no expiry.
v1=$(rvals)
if [ -n "$v0" ] && [ "$v0" = "$v1" ]; then ok "... its resync changes no entry in Redis (nothing was renewed)"; else
	not_ok "... its resync changes no entry in Redis (nothing was renewed)"
	diff <(echo "$v0") <(echo "$v1") | grep '^[<>]' | sed 's/^/#   /'
fi
check_eq "... mx2's own grant for $ERIN, read back from Redis, keeps source log" log \
	"$(grant_of 2 "$ERIN" | awk '{ print $2 }')"
l1=$(log_count 1 "cluster: lost ")
l2=$(log_count 2 "cluster: lost ")
redis_stop
check "redis stopped: both log lost" lab_poll 5 eval "[ \$(log_count 1 'cluster: lost ') -gt $l1 ] && [ \$(log_count 2 'cluster: lost ') -gt $l2 ]"
# Both at once; each must be gone within 5 s of the signal.
t0=$(lab_now_ms)
kill -TERM "${DPID[1]}" "${DPID[2]}"
for h in 1 2; do
	lab_poll 5 eval "! kill -0 ${DPID[$h]} 2>/dev/null"
	ms=$(ms_since "$t0")
	stop_daemon "$h" TERM   # waits for it (KILL if still there): its status
	if [ "${DRC[$h]}" = 0 ] && [ "$ms" -lt 5000 ]; then ok "SIGTERM: mx$h exits 0 within 5 s ($ms ms)"; else
		not_ok "SIGTERM: mx$h exits 0 within 5 s"; diag "exit ${DRC[$h]} after $ms ms"; show_log "$h" 5
	fi
done
check "the daemon logs show no crash" eval "! grep -qiE 'AddressSanitizer|runtime error|segfault|assert' '${DLOG[1]}' '${DLOG[2]}'"
step "done"

t_done
