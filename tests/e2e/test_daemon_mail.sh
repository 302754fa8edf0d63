#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# End to end: relaygated fed by real Dovecot (issue 3), beside what
# test_daemon.sh covers with appended lines. Real Dovecot (tests/e2e/mail.sh)
# in the lab's mail namespace, relaygated (tests/e2e/daemon.sh) gating 587
# and 465 there, curl logging in from the client namespace:
#
#   log source   a `curl imap://` login admits the client's SMTP connect
#                within 1 s (IPv4 and IPv6); wrong passwords (pop3 and imap)
#                deny the address after [deny] after_failures, and the
#                denied client stays dropped although it then logs in; a
#                trusted address is never denied;
#   hostile      user names that carry a forged "rip=" (a space-separated
#                one, and one closing the <...> early: "y>, rip=..."),
#                created in the passwd-file so Dovecot logs them: successful
#                and failed logins grant and deny nothing for the forged
#                address, which stays dropped;
#   rotation     200 logins from 200 distinct addresses, four at a time,
#                while the log is rotated three times with mv + doveadm log
#                reopen: every address gets its grant, each exactly once;
#                again with copytruncate (cp + truncate), three times: every
#                address whose line reached a file gets its grant, once (a
#                line written between the copy and the truncation is in no
#                file: copytruncate's own window, reported as a comment);
#                and copytruncate while the daemon is stopped (SIGSTOP): the
#                lines it had not read are read from the copy;
#   push         the same Dovecot with auth_policy_server_url pointing at
#                relaygated's [source.push] type = dovecot-auth-policy (and
#                no log source): a POP3 and an IMAP login admit within 1 s,
#                wrong passwords deny, a hostile user name forges nothing.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/mail.sh"
. "$(dirname "$0")/daemon.sh"

PUSH_PORT=18089                 # auth policy push, on the mail namespace's loopback
MALLORY=10.77.1.3               # brute-forces passwords
HOSTILE_SRC=10.77.1.4           # logs in with hostile user names
MARKER=10.77.1.5                # a plain login after the hostile ones
FORGED="10.77.1.199 10.77.1.198" # the addresses the hostile names name (not trusted)
PUSH_A=10.77.1.7                # clients of the push phase
PUSH_B=10.77.1.8
PUSH_M=10.77.1.9
PUSH_H=10.77.1.10
STREAM_N=200                    # logins per rotation run
STREAM_WORKERS=4
HOSTILE_1='x rip=10.77.1.199 '
HOSTILE_2='y>, rip=10.77.1.198, lip=10.77.1.1, session=<z'

t_need_root "daemon e2e with real Dovecot"
for b in "$RGD_DAEMON" "$LAB_CTL"; do
	[ -x "$b" ] || { not_ok "$(basename "$b") is built ($b missing: make OUT=$OUT)"; t_done; }
done
for tool in dovecot doveadm curl socat jq nsenter ss; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done

T0=$SECONDS
step() { diag "[$((SECONDS - T0)) s] $*"; }
re() { printf '%s' "$1" | sed 's/[][\.^$*+?(){}|]/\\&/g'; }
ms_since() { echo $(($(lab_now_ms) - $1)); }

t_cleanup lab_down
LAB_WITH_VPN=0
if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi
# Echo services on the gated ports: a connect the gate lets through opens.
if ! lab_listen 587 465; then not_ok "echo services listen on 587 and 465"; t_done; fi

# Client addresses: the named ones on the lab /24, and two /24s for the
# rotation streams (10.77.3.0/24, 10.77.4.0/24), on-link on both ends.
{
	for a in $MALLORY $HOSTILE_SRC $MARKER $FORGED $PUSH_A $PUSH_B $PUSH_M $PUSH_H 10.77.1.6; do
		echo "addr add $a/24 dev eth0"
	done
	for n in 3 4; do
		for ((i = 1; i <= STREAM_N; i++)); do echo "addr add 10.77.$n.$i/24 dev eth0"; done
	done
	for ((i = 1; i <= 8; i++)); do echo "addr add 10.77.5.$i/24 dev eth0"; done
} | ip -n "$LAB_CLIENT" -batch - || { not_ok "the client's extra addresses"; t_done; }
ip -n "$LAB_MAIL" route add 10.77.3.0/24 dev "$LAB_IF" &&
ip -n "$LAB_MAIL" route add 10.77.4.0/24 dev "$LAB_IF" &&
ip -n "$LAB_MAIL" route add 10.77.5.0/24 dev "$LAB_IF" || { not_ok "routes to the stream addresses"; t_done; }

# Dovecot takes any character in a user name (the default set has no
# blank, ",", "<", ">" or "="): the hostile names must reach its log.
MAIL_DOVECOT_EXTRA='auth_username_chars ='
add_hostile_users() {
	mail_dovecot_add_user "$HOSTILE_1" secret
	mail_dovecot_add_user "$HOSTILE_2" secret
}

step "Dovecot"
if mail_dovecot_start; then ok "real Dovecot runs in the mail namespace"; else
	not_ok "real Dovecot runs in the mail namespace"; t_done
fi
add_hostile_users

step "relaygated"
rgd_init || { not_ok "relaygated's directories"; t_done; }
RGD_TTL=10m
# conf SOURCE-SECTION: the daemon's config with that source.
conf() {
	rgd_conf_base
	cat <<EOF

[trust]
subnet = $LAB_TRUST4 $LAB_TRUST6

[deny]
after_failures = 3
within = 1m
ttl = 10m

EOF
	printf '%s\n' "$1"
}
LOG_SOURCE="[source.dovecot]
type = dovecot
path = $MAIL_DOVECOT_LOG"
PUSH_SOURCE="[source.push]
type = dovecot-auth-policy
listen = 127.0.0.1:$PUSH_PORT"
conf "$LOG_SOURCE" >"$RGD_CONF"
if rgd_start; then ok "relaygated starts, following $MAIL_DOVECOT_LOG"; else not_ok "relaygated starts"; t_done; fi

# connects ADDR [DST]: one connect to DST:587 from ADDR; prints the result.
connects() { lab_connect "$LAB_CLIENT" "${2:-$LAB_MAIL4}" 587 "${3:-$LAB_CONNECT_TMO}" "$1"; }

# --- curl imap:// admits within a second ---------------------------------------------

step "IMAP logins"
check_eq "before any login the client is dropped on 587" timeout "$(connects "$LAB_CLIENT4")"
t0=$(lab_now_ms)
mail_login imap alice secret "$LAB_MAIL4"
check_eq "a real IMAP login (curl imap://) from $LAB_CLIENT4" 0 "$?"
if lab_poll 1 rgd_has_grant "$LAB_CLIENT4"; then ok "... grants its address within 1 s ($(ms_since "$t0") ms)"; else
	not_ok "... grants its address within 1 s"; tail -n 3 "$MAIL_DOVECOT_LOG" | sed 's/^/#   /'
fi
check_eq "... as user alice, service imap" "alice imap" "$(rgd_grant_of "$LAB_CLIENT4" | awk '{ print $1, $3 }')"
check_eq "... and the client connects to 587 ($(ms_since "$t0") ms after the login began)" open \
	"$(connects "$LAB_CLIENT4" "$LAB_MAIL4" 4)"
t0=$(lab_now_ms)
mail_login imap bob secret "$LAB_MAIL6"
check_eq "a real IMAP login over IPv6 from $LAB_CLIENT6" 0 "$?"
if lab_poll 1 rgd_has_grant "fd00:77:1::"; then ok "... grants its /64 within 1 s ($(ms_since "$t0") ms)"; else
	not_ok "... grants its /64 within 1 s"
fi
check_eq "... and it connects to 587 over IPv6" open "$(connects "$LAB_CLIENT6" "$LAB_MAIL6" 4)"

# --- wrong passwords deny ------------------------------------------------------------------

step "wrong passwords"
check_eq "another client ($MALLORY) is dropped on 587" timeout "$(connects "$MALLORY")"
dd0=$(lab_stat drop_denied)
mail_login pop3 alice wrong "$LAB_MAIL4" "$MALLORY"
r1=$?
mail_login imap bob wrong "$LAB_MAIL4" "$MALLORY"
r2=$?
check_eq "two wrong passwords (pop3, imap) from $MALLORY are refused by Dovecot (curl 67)" "67 67" "$r1 $r2"
mail_log_wait "$MAIL_DOVECOT_LOG" "imap-login: .*auth failed.*user=<bob>, .*rip=$(re "$MALLORY"), "
sleep 0.3
check_not "... and do not deny it yet (after_failures = 3)" rgd_has_deny "$MALLORY"
t0=$(lab_now_ms)
mail_login pop3 alice wrong2 "$LAB_MAIL4" "$MALLORY"
check_eq "a third wrong password is refused" 67 "$?"
if lab_poll 1 rgd_has_deny "$MALLORY"; then ok "... and denies $MALLORY within 1 s ($(ms_since "$t0") ms)"; else
	not_ok "... and denies $MALLORY within 1 s"; lab_ctl deny list | sed 's/^/#   /'
fi
check "... logged with the user and source" rgd_log_wait "deny $(re "$MALLORY")(/32)? after 3 failures within [^ ]+ user=alice source=dovecot"
mail_login pop3 alice secret "$LAB_MAIL4" "$MALLORY"
check_eq "the denied client then logs in with the right password" 0 "$?"
rgd_log_wait "grant $(re "$MALLORY") user=alice " 2
check_eq "... and still cannot connect to 587 (the deny list wins)" timeout "$(connects "$MALLORY")"
dd1=$(lab_stat drop_denied)
if [ -n "$dd0" ] && [ -n "$dd1" ] && [ "$dd1" -gt "$dd0" ]; then ok "... counted as drop_denied ($dd0 -> $dd1)"; else
	not_ok "... counted as drop_denied"; diag "drop_denied $dd0 -> $dd1"
fi
for p in 1 2 3; do mail_login imap alice "wrong$p" "$LAB_MAIL4" "$LAB_OFFICE4"; done
check "3 wrong passwords from the trusted $LAB_OFFICE4: 'not denying', logged" \
	rgd_log_wait "not denying $(re "$LAB_OFFICE4")"
check_not "... and it is not on the deny list" rgd_has_deny "$LAB_OFFICE4"
check_eq "... and still connects" open "$(connects "$LAB_OFFICE4" "$LAB_MAIL4" 4)"

# --- hostile user names --------------------------------------------------------------------

step "hostile user names"
# hostile_logins PASS: log in as each hostile name from HOSTILE_SRC (pop3
# and imap); prints the curl statuses.
hostile_logins() {
	local u p
	for u in "$HOSTILE_1" "$HOSTILE_2"; do
		for p in pop3 imap; do
			mail_login "$p" "$u" "$1" "$LAB_MAIL4" "$HOSTILE_SRC"
			printf '%s ' $?
		done
	done
}
# marker_login ADDR: a plain login from ADDR, waited for: the daemon has
# read every line before it once ADDR holds a grant (lines go in order).
marker_login() {
	mail_login pop3 bob secret "$LAB_MAIL4" "$1" && lab_poll 2 rgd_has_grant "$1"
}
check_eq "Dovecot accepts the hostile user names ('$HOSTILE_1', '$HOSTILE_2')" "0 0 0 0 " "$(hostile_logins secret)"
check "... and logs them verbatim, the forged rip= before the real one" \
	grep -qF "Login: user=<$HOSTILE_2>, method=PLAIN, rip=$HOSTILE_SRC," "$MAIL_DOVECOT_LOG"
check "a plain login after them is read (the daemon has read every line before it)" marker_login "$MARKER"
for f in $FORGED; do
	check_not "... no grant for the forged address $f" rgd_has_grant "$f"
	check_eq "... which stays dropped on 587" timeout "$(connects "$f")"
done
diag "the hostile logins' own address $HOSTILE_SRC: $(rgd_grant_of "$HOSTILE_SRC" | sed 's/^$/no grant/')"
check_eq "wrong passwords with the hostile names are refused" "67 67 67 67 " "$(hostile_logins wrong)"
marker_login 10.77.1.6 >/dev/null
for f in $FORGED; do
	check_not "... and deny nothing for the forged address $f" rgd_has_deny "$f"
done
diag "their real address $HOSTILE_SRC: $(rgd_has_deny "$HOSTILE_SRC" && echo denied || echo not denied);" \
	"lines the daemon rejected so far: $(rgd_log_count 'source dovecot: line rejected')"

# --- rotation during a stream of logins ----------------------------------------------------

# stream NET LOG: STREAM_N logins (bob, pop3) from 10.77.NET.1..STREAM_N,
# STREAM_WORKERS at a time; each worker appends "ADDR STATUS" to LOG.
stream() {
	local net=$1 log=$2 w
	: >"$log"
	for ((w = 0; w < STREAM_WORKERS; w++)); do
		(
			for ((i = 1 + w; i <= STREAM_N; i += STREAM_WORKERS)); do
				mail_login pop3 bob secret "$LAB_MAIL4" "10.77.$net.$i"
				echo "10.77.$net.$i $?" >>"$log"
			done
		) &
		STREAM_PIDS+=($!)
	done
}
stream_wait() {
	local p
	for p in "${STREAM_PIDS[@]}"; do wait "$p"; done
	STREAM_PIDS=()
}
t_cleanup 'for p in "${STREAM_PIDS[@]}"; do kill "$p"; done'
# rotate_mv / rotate_copytruncate: one rotation of Dovecot's log, the
# older generations shifted (.2 -> .3, .1 -> .2) so every line written
# stays on disk somewhere, except what copytruncate itself loses.
rotate_shift() {
	local n
	for n in 2 1; do
		[ ! -e "$MAIL_DOVECOT_LOG.$n" ] || mv -f "$MAIL_DOVECOT_LOG.$n" "$MAIL_DOVECOT_LOG.$((n + 1))"
	done
}
rotate_mv() {
	rotate_shift && mv "$MAIL_DOVECOT_LOG" "$MAIL_DOVECOT_LOG.1" && mail_doveadm log reopen
}
rotate_copytruncate() {
	# logrotate's copytruncate: copy, then truncate in place (bash's own
	# O_TRUNC open, no fork in between). A line Dovecot writes after the
	# copy and before the truncation is in neither file: copytruncate's
	# own window (user/follow.h), which no reader can close.
	rotate_shift && cp "$MAIL_DOVECOT_LOG" "$MAIL_DOVECOT_LOG.1" && : >"$MAIL_DOVECOT_LOG"
}
# on_disk NET: the stream addresses whose Login line is in a log file.
on_disk() {
	cat "$MAIL_DOVECOT_LOG" "$MAIL_DOVECOT_LOG".[123] 2>/dev/null |
		sed -nE "s/.*pop3-login: Info: Login: user=<bob>, method=PLAIN, rip=(10\\.77\\.$1\\.[0-9]+), .*/\\1/p" | sort -u
}
# rotation_run NAME NET ROTATE: the stream with three rotations at 1/4,
# 2/4 and 3/4 of it; then every address must hold a grant (copytruncate:
# every address whose line is on disk; the others were lost in its window).
rotation_run() {
	local name=$1 net=$2 rotate=$3 log=$LAB_DIR/stream-$2.txt k done_n missing=() lost=() window=() t0 g0
	rm -f "$MAIL_DOVECOT_LOG".[123]
	STREAM_PIDS=()
	g0=$(rgd_log_count ": grant 10\\.77\\.$net\\.[0-9]+ user=")
	t0=$(lab_now_ms)
	stream "$net" "$log"
	for k in 1 2 3; do
		lab_poll 30 eval "[ \$(wc -l <'$log') -ge $((STREAM_N * k / 4)) ]"
		"$rotate" || not_ok "$name: rotation $k failed"
	done
	stream_wait
	done_n=$(awk '$2 == 0' "$log" | wc -l)
	check_eq "$name: $STREAM_N logins from $STREAM_N addresses during 3 rotations, all accepted by Dovecot ($(ms_since "$t0") ms)" \
		"$STREAM_N" "$done_n"
	lab_poll 3 eval "[ \$(rgd_grants | grep -c '^10\\.77\\.$net\\.') -ge $STREAM_N ]"
	mapfile -t missing < <(comm -23 <(seq 1 "$STREAM_N" | sed "s/^/10.77.$net./" | sort) <(rgd_grants | sort))
	mapfile -t lost < <(comm -12 <(printf '%s\n' "${missing[@]}" | grep . | sort) <(on_disk "$net"))
	mapfile -t window < <(comm -23 <(printf '%s\n' "${missing[@]}" | grep . | sort) <(on_disk "$net"))
	if [ "$rotate" = rotate_copytruncate ]; then
		if [ ${#lost[@]} -eq 0 ]; then
			ok "$name: every address whose login line reached a log file got its grant ($((STREAM_N - ${#window[@]})) of $STREAM_N)"
		else
			not_ok "$name: every address whose login line reached a log file got its grant: ${#lost[@]} lost (${lost[*]:0:5})"
		fi
		[ ${#window[@]} -eq 0 ] ||
			diag "$name: ${#window[@]} login line(s) were truncated before anyone could read them (copytruncate's window, in no file): ${window[*]}"
		check_eq "$name: each address granted once (one grant line per granted address)" \
			"$((STREAM_N - ${#missing[@]}))" "$(($(rgd_log_count ": grant 10\\.77\\.$net\\.[0-9]+ user=") - g0))"
		return
	fi
	if [ ${#missing[@]} -eq 0 ]; then
		ok "$name: every one of the $STREAM_N addresses got its grant (none lost)"
	else
		not_ok "$name: every address got its grant: ${#missing[@]} lost (${missing[*]:0:5}; ${#lost[@]} of them on disk)"
	fi
	check_eq "$name: each login was read once (one grant line per address)" "$STREAM_N" \
		"$(($(rgd_log_count ": grant 10\\.77\\.$net\\.[0-9]+ user=") - g0))"
}

step "rotation: mv + doveadm log reopen"
rotation_run "mv + doveadm log reopen" 3 rotate_mv
# stream_in FILE NET: FILE holds logins of that stream.
stream_in() { grep -q "Login: user=<bob>, method=PLAIN, rip=10\\.77\\.$2\\." "$1"; }
check "... the stream's logins are spread over the rotated files and the new one (.3, .2, .1, current)" \
	eval 'stream_in "$MAIL_DOVECOT_LOG.3" 3 && stream_in "$MAIL_DOVECOT_LOG.2" 3 && stream_in "$MAIL_DOVECOT_LOG.1" 3 && stream_in "$MAIL_DOVECOT_LOG" 3'
step "rotation: copytruncate"
rotation_run "copytruncate" 4 rotate_copytruncate
check "... the stream's logins are in each copy and after the last truncation (.3, .2, .1, current)" \
	eval 'stream_in "$MAIL_DOVECOT_LOG.3" 4 && stream_in "$MAIL_DOVECOT_LOG.2" 4 && stream_in "$MAIL_DOVECOT_LOG.1" 4 && stream_in "$MAIL_DOVECOT_LOG" 4'

# copytruncate while relaygated is stopped (SIGSTOP): the lines it had not
# read when the file was truncated are in the copy only, and must be read
# from there (follow.h: NAME.1's rest first); the ones after the
# truncation from the new start of the file.
step "copytruncate while the daemon is stopped"
kill -STOP "$RGD_PID"
t_cleanup "kill -CONT $RGD_PID"
ok_n=0
for i in 1 2 3 4 5; do mail_login pop3 bob secret "$LAB_MAIL4" "10.77.5.$i" && ok_n=$((ok_n + 1)); done
mail_log_wait "$MAIL_DOVECOT_LOG" "rip=10\.77\.5\.5, "
rotate_copytruncate
kill -CONT "$RGD_PID"
for i in 6 7; do mail_login pop3 bob secret "$LAB_MAIL4" "10.77.5.$i" && ok_n=$((ok_n + 1)); done
check_eq "7 logins: 5 while relaygated is stopped, then cp + truncate, SIGCONT, 2 more" 7 "$ok_n"
lab_poll 2 eval '[ $(rgd_grants | grep -c "^10\.77\.5\.") -ge 7 ]'
check_eq "... the 5 lines found only in the copy and the 2 after the truncation all grant" \
	"10.77.5.1 10.77.5.2 10.77.5.3 10.77.5.4 10.77.5.5 10.77.5.6 10.77.5.7" \
	"$(rgd_grants | grep '^10\.77\.5\.' | sort -t. -k4n | xargs)"
check "relaygated survived all three runs" rgd_alive

# --- the auth policy push source -------------------------------------------------------------

step "auth policy push"
rgd_stop
check_eq "relaygated stops (SIGTERM: exit 0)" 0 "$RGD_RC"
conf "$PUSH_SOURCE" >"$RGD_CONF"
if rgd_start; then ok "relaygated starts with [source.push] type = dovecot-auth-policy on 127.0.0.1:$PUSH_PORT and no log source"; else
	not_ok "relaygated starts with the push source"; t_done
fi
mail_dovecot_stop
URL=http://127.0.0.1:$PUSH_PORT/
if mail_dovecot_start "$URL"; then ok "Dovecot restarts with auth_policy_server_url = $URL"; else
	not_ok "Dovecot restarts with auth_policy_server_url = $URL"; t_done
fi
add_hostile_users
check_eq "$PUSH_A is dropped on 587 before its login" timeout "$(connects "$PUSH_A")"
t0=$(lab_now_ms)
mail_login pop3 alice secret "$LAB_MAIL4" "$PUSH_A"
check_eq "a real POP3 login from $PUSH_A" 0 "$?"
if lab_poll 1 rgd_has_grant "$PUSH_A"; then ok "... grants within 1 s through the push source ($(ms_since "$t0") ms)"; else
	not_ok "... grants within 1 s through the push source"; rgd_since | tail -n 5 | sed 's/^/#   /'
fi
check "... logged as source=push" rgd_log_wait "grant $(re "$PUSH_A") user=alice service=pop3 source=push "
check_eq "... and $PUSH_A connects to 587" open "$(connects "$PUSH_A" "$LAB_MAIL4" 4)"
t0=$(lab_now_ms)
mail_login imap bob secret "$LAB_MAIL4" "$PUSH_B"
check_eq "a real IMAP login from $PUSH_B" 0 "$?"
if lab_poll 1 rgd_has_grant "$PUSH_B"; then ok "... grants within 1 s ($(ms_since "$t0") ms)"; else not_ok "... grants within 1 s"; fi
check_eq "... as bob, imap" "bob imap" "$(rgd_grant_of "$PUSH_B" | awk '{ print $1, $3 }')"
check_eq "... and connects" open "$(connects "$PUSH_B" "$LAB_MAIL4" 4)"
mail_login pop3 alice wrong "$LAB_MAIL4" "$PUSH_M"
mail_login imap alice wrong "$LAB_MAIL4" "$PUSH_M"
sleep 0.3
check_not "two wrong passwords reported by push: no deny yet" rgd_has_deny "$PUSH_M"
t0=$(lab_now_ms)
mail_login pop3 alice wrong "$LAB_MAIL4" "$PUSH_M"
if lab_poll 1 rgd_has_deny "$PUSH_M"; then ok "... the third denies $PUSH_M within 1 s ($(ms_since "$t0") ms)"; else
	not_ok "... the third denies $PUSH_M within 1 s"
fi
check "... logged with source=push" rgd_log_wait "deny $(re "$PUSH_M")(/32)? after 3 failures .*source=push"
check_eq "... and $PUSH_M is dropped on 587" timeout "$(connects "$PUSH_M")"
mail_login pop3 "$HOSTILE_2" secret "$LAB_MAIL4" "$PUSH_H"
check_eq "a login with the hostile name '$HOSTILE_2' from $PUSH_H (push)" 0 "$?"
check "... grants its real address $PUSH_H (the report names it apart from the user)" lab_poll 1 rgd_has_grant "$PUSH_H"
check_eq "... under the hostile name, as a name" "$HOSTILE_2" \
	"$(lab_ctl --json grant list | jq -r --arg a "$PUSH_H" '.[] | select(.address == $a) | .user')"
check_not "... and nothing for the forged 10.77.1.198" rgd_has_grant 10.77.1.198
check "relaygated is still running" rgd_alive

rgd_stop
check_eq "relaygated exits 0 on SIGTERM" 0 "$RGD_RC"
diag "took $((SECONDS - T0)) s"
t_done
