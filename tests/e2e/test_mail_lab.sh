#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# The mail lab helpers (tests/e2e/mail.sh) do what the daemon and policy
# end-to-end tests rely on: real Dovecot and Postfix from Debian in the lab's
# mail namespace, real clients (curl, swaks) in the client namespace, every
# line the servers log landing in their own log files, and nothing left
# behind. No relaygate program is involved: this proves the ground the
# relaygate tests stand on.
#
#   Dovecot   curl pop3:// and imap:// logins, IPv4 and IPv6, accepted with
#             the right password and logged as "Login: user=<...>, ...
#             rip=<client>"; wrong password and unknown user refused and
#             logged (auth_verbose); after mv + doveadm log reopen the
#             next login lands in the new file; the auth policy push variant
#             reports POP3, IMAP and Postfix SASL logins to an HTTP recorder.
#   Postfix   postfix check silent; an unknown client on 25 gets
#             "554 5.7.1 ... Relay access denied"; SASL AUTH on 587
#             (through Dovecot) relays (250, queued, discarded: never
#             delivered); a wrong password is a 535 and a SASL failure line;
#             with POLICY, a policy server's OK relays (the request has the
#             queue id at RCPT), and without the server Postfix falls back
#             to DUNNO.
#   Cleanup   no Dovecot or Postfix process left, namespaces and files gone.
#
# Environment: RG_MAIL_CAPTURE=DIR also copies what the servers wrote
# (dovecot.log, postfix.log, authpolicy.txt: Dovecot's auth policy
# requests, policy.txt: Postfix's policy requests) to DIR, for the fixtures
# (tests/fixtures/README.md).
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/mail.sh"

T0=$SECONDS
step() { diag "[$((SECONDS - T0)) s] $*"; }
LIMIT=60                        # seconds the whole test may take
CAPTURE=${RG_MAIL_CAPTURE:-}

t_need_root "mail lab (real Dovecot and Postfix)"
for tool in dovecot doveconf doveadm postfix postconf swaks curl ss python3 script jq; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done
# swaks 20201014 speaks IPv6 only through IO::Socket::INET6.
if ! perl -MIO::Socket::INET6 -e 1 2>/dev/null; then
	not_ok "perl IO::Socket::INET6 is installed (libio-socket-inet6-perl, swaks needs it for IPv6)"
	t_done
fi

t_cleanup lab_down
if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi

# --- helpers ------------------------------------------------------------------

# re TEXT: TEXT as a literal inside an ERE.
re() { printf '%s' "$1" | sed 's/[][\.^$*+?(){}|]/\\&/g'; }

# since_has DESC FILE MARK ERE: a line written to FILE after MARK matches
# ERE (waits up to 5 s: the servers log asynchronously).
since_has() {
	local desc=$1 file=$2 mark=$3 ere=$4
	if lab_poll 5 eval 'mail_log_since "$file" "$mark" | grep -Eq -- "$ere"'; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "no line matching: $ere"
		mail_log_since "$file" "$mark" | sed 's/^/#   got: /' | tail -n 10
	fi
}
since_lacks() {
	local desc=$1 file=$2 mark=$3 ere=$4
	if mail_log_since "$file" "$mark" | grep -Eq -- "$ere"; then
		not_ok "$desc"
		mail_log_since "$file" "$mark" | grep -E -- "$ere" | sed 's/^/#   got: /'
	else
		ok "$desc"
	fi
}
# show FILE MARK WHAT: the lines FILE got since MARK, as TAP comments.
show() {
	diag "$3:"
	mail_log_since "$1" "$2" | sed 's/^/#     /'
}

# in_mail_ns PID: PID runs in the lab's mail namespace.
in_mail_ns() {
	[ "$(stat -L -c %i "/proc/$1/ns/net" 2>/dev/null)" = "$(stat -L -c %i "/run/netns/$LAB_MAIL")" ]
}

# listens_on PORT ADDR: something listens on ADDR:PORT in the mail namespace.
listens_on() {
	local a=$1
	case "$a" in *:*) a="[$a]" ;; esac
	lab_in "$LAB_MAIL" ss -Hltn "sport = :$2" | awk '{ print $4 }' | grep -qxF "$a:$2"
}

# --- Dovecot -------------------------------------------------------------------

step "starting Dovecot"
if mail_dovecot_start; then
	ok "Dovecot starts in the mail namespace with its own config ($MAIL_DOVECOT_CONF)"
else
	not_ok "Dovecot starts in the mail namespace with its own config"
	t_done
fi
check "the Dovecot master ($MAIL_DOVECOT_PID) runs in $LAB_MAIL" in_mail_ns "$MAIL_DOVECOT_PID"
check "... with our config file, not /etc/dovecot" \
	eval 'tr "\0" " " </proc/$MAIL_DOVECOT_PID/cmdline | grep -qF -- "-c $MAIL_DOVECOT_CONF"'
base=$(doveconf -c "$MAIL_DOVECOT_CONF" -h base_dir)
check "... as root, its base_dir ($base) in the lab's mail directory" \
	eval '[ "$(stat -c %U /proc/$MAIL_DOVECOT_PID)" = root ] && [[ $base == "$MAIL_DIR"/* ]] && [ "$(cat "$base/master.pid")" = "$MAIL_DOVECOT_PID" ]'
for a in $LAB_MAIL4 $LAB_MAIL6; do
	check "Dovecot listens on $a port 110 (POP3) and 143 (IMAP)" eval "listens_on $a 110 && listens_on $a 143"
done

step "logins"
# Successful logins: POP3 and IMAP, IPv4 and IPv6, from the client's address.
for dst in "$LAB_MAIL4" "$LAB_MAIL6"; do
	cli=$(mail_client_addr "$dst")
	for proto in pop3 imap; do
		m=$(mail_log_mark "$MAIL_DOVECOT_LOG")
		mail_login "$proto" alice secret "$dst"
		rc=$?
		check_eq "curl $proto://alice:secret@$dst/ from $cli logs in (curl exit 0)" 0 "$rc"
		since_has "... Dovecot logs '$proto-login: Info: Login: user=<alice>' naming rip=$cli" \
			"$MAIL_DOVECOT_LOG" "$m" \
			"$proto-login: Info: Login: user=<alice>, method=PLAIN, rip=$(re "$cli"), lip=$(re "$dst"), "
		show "$MAIL_DOVECOT_LOG" "$m" "Dovecot's lines for this login"
	done
done
m=$(mail_log_mark "$MAIL_DOVECOT_LOG")
mail_login pop3 bob secret "$LAB_MAIL4"
check_eq "curl pop3:// as bob logs in" 0 "$?"
since_has "... logged with user=<bob>" "$MAIL_DOVECOT_LOG" "$m" \
	"pop3-login: Info: Login: user=<bob>, .*rip=$(re "$LAB_CLIENT4"), "

step "failed logins"
# Failures.
m=$(mail_log_mark "$MAIL_DOVECOT_LOG")
mail_login pop3 alice wrong "$LAB_MAIL4"
check_eq "curl pop3:// with a wrong password is refused (curl exit 67, login denied)" 67 "$?"
since_has "... auth_verbose logs the password mismatch with user and address" "$MAIL_DOVECOT_LOG" "$m" \
	"auth: Info: passwd-file\\(alice,$(re "$LAB_CLIENT4"),<[^>]*>\\): Password mismatch"
since_has "... pop3-login logs 'auth failed' with user=<alice> and rip" "$MAIL_DOVECOT_LOG" "$m" \
	"pop3-login: Info: Disconnected: .*\\(auth failed, 1 attempts in [0-9]+ secs\\): user=<alice>, method=PLAIN, rip=$(re "$LAB_CLIENT4"), "
since_lacks "... and no Login: line" "$MAIL_DOVECOT_LOG" "$m" "Login: user="
show "$MAIL_DOVECOT_LOG" "$m" "Dovecot's lines for a wrong POP3 password"
m=$(mail_log_mark "$MAIL_DOVECOT_LOG")
mail_login imap alice wrong "$LAB_MAIL6"
check_eq "curl imap:// over IPv6 with a wrong password is refused (curl exit 67)" 67 "$?"
since_has "... imap-login logs 'auth failed' with rip=$LAB_CLIENT6" "$MAIL_DOVECOT_LOG" "$m" \
	"imap-login: Info: Disconnected: .*\\(auth failed, 1 attempts in [0-9]+ secs\\): user=<alice>, method=PLAIN, rip=$(re "$LAB_CLIENT6"), "
show "$MAIL_DOVECOT_LOG" "$m" "Dovecot's lines for a wrong IMAP password over IPv6"
m=$(mail_log_mark "$MAIL_DOVECOT_LOG")
mail_login imap nosuchuser secret "$LAB_MAIL4"
check_eq "curl imap:// as an unknown user is refused (curl exit 67)" 67 "$?"
since_has "... auth_verbose logs 'unknown user'" "$MAIL_DOVECOT_LOG" "$m" \
	"auth: Info: passwd-file\\(nosuchuser,$(re "$LAB_CLIENT4"),<[^>]*>\\): unknown user"
show "$MAIL_DOVECOT_LOG" "$m" "Dovecot's lines for an unknown user"

# Rotation as the daemon tests do it: mv, then doveadm log reopen.
mv "$MAIL_DOVECOT_LOG" "$MAIL_DOVECOT_LOG.1"
check "mail_doveadm log reopen reaches our instance" mail_doveadm log reopen
mail_login pop3 bob secret "$LAB_MAIL6"
check "... and the next login is logged to a new $MAIL_DOVECOT_LOG" \
	mail_log_wait "$MAIL_DOVECOT_LOG" "pop3-login: Info: Login: user=<bob>, .*rip=$(re "$LAB_CLIENT6"), "
check_not "... not to the renamed one" grep -qF "Login: user=<bob>, method=PLAIN, rip=$LAB_CLIENT6," "$MAIL_DOVECOT_LOG.1"

# --- Postfix -------------------------------------------------------------------

step "starting Postfix"
if mail_postfix_start; then
	ok "Postfix starts in the mail namespace with its own config directory ($MAIL_POSTFIX_DIR)"
else
	not_ok "Postfix starts in the mail namespace with its own config directory"
	t_done
fi
out=$(mail_postfix check 2>&1)
check_eq "postfix -c DIR check has nothing to say" "" "$out"
check "the Postfix master ($MAIL_POSTFIX_PID) runs in $LAB_MAIL" in_mail_ns "$MAIL_POSTFIX_PID"
check "... with our queue directory, not /var/spool/postfix" \
	eval '[ "$(readlink /proc/$MAIL_POSTFIX_PID/cwd)" = "$MAIL_POSTFIX_QUEUE" ]'
for n in default_transport relay_transport local_transport; do
	check_eq "Postfix $n = discard (nothing is ever delivered)" discard \
		"$(postconf -c "$MAIL_POSTFIX_DIR" -h "$n")"
done
check_eq "Postfix mynetworks = 127.0.0.0/8 only" 127.0.0.0/8 "$(postconf -c "$MAIL_POSTFIX_DIR" -h mynetworks)"
check "Postfix logs to its maillog_file (daemon started -- ... configuration $MAIL_POSTFIX_DIR)" \
	mail_log_wait "$MAIL_POSTFIX_LOG" "postfix/master\\[$MAIL_POSTFIX_PID\\]: daemon started -- version [0-9.]+, configuration $(re "$MAIL_POSTFIX_DIR")$"
for a in $LAB_MAIL4 $LAB_MAIL6; do
	check "Postfix listens on $a port 25 (smtp) and 587 (submission)" eval "listens_on $a 25 && listens_on $a 587"
done

step "relay attempts on 25"
# An unknown client may not relay through 25.
for dst in "$LAB_MAIL4" "$LAB_MAIL6"; do
	cli=$(mail_client_addr "$dst")
	m=$(mail_log_mark "$MAIL_POSTFIX_LOG")
	mail_swaks "$dst" 25 --from x@ext.example --to y@outside.example
	rc=$?
	if [ $rc -eq 24 ] && grep -q '<\*\* 554 5\.7\.1 <y@outside\.example>: Relay access denied' <<<"$MAIL_SWAKS_OUT"; then
		ok "swaks from $cli to $dst:25 for y@outside.example: 554 5.7.1 Relay access denied (swaks exit 24)"
	else
		not_ok "swaks from $cli to $dst:25 for y@outside.example: 554 5.7.1 Relay access denied (exit $rc)"
		printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -n 15
	fi
	since_has "... Postfix logs the reject with the client's address" "$MAIL_POSTFIX_LOG" "$m" \
		"postfix/smtpd\\[[0-9]+\\]: [0-9A-F]+: reject: RCPT from unknown\\[$(re "$cli")\\]: 554 5\\.7\\.1 <y@outside\\.example>: Relay access denied; from=<x@ext\\.example> to=<y@outside\\.example>"
	show "$MAIL_POSTFIX_LOG" "$m" "Postfix's lines"
done
m=$(mail_log_mark "$MAIL_POSTFIX_LOG")
mail_swaks "$LAB_MAIL4" 25 --from x@ext.example --to "postmaster@$MAIL_DOMAIN"
check_eq "... while mail for the lab domain ($MAIL_DOMAIN) is accepted on 25 (and discarded)" 0 "$?"
m=$(mail_log_mark "$MAIL_POSTFIX_LOG")
mail_swaks "$LAB_MAIL4" 587 --from alice@relaygate.test --to y@outside.example
check_eq "submission (587) without AUTH does not relay either (swaks exit 24)" 24 "$?"

step "SASL on 587"
# SASL AUTH on 587 through Dovecot.
for dst in "$LAB_MAIL4" "$LAB_MAIL6"; do
	cli=$(mail_client_addr "$dst")
	mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
	mail_swaks "$dst" 587 --from "alice@$MAIL_DOMAIN" --to y@outside.example \
		--auth PLAIN --auth-user alice --auth-password secret
	rc=$?
	qid=$(mail_swaks_queue_id)
	if [ $rc -eq 0 ] && grep -q '<-  235 2\.7\.0 Authentication successful' <<<"$MAIL_SWAKS_OUT" && [ -n "$qid" ]; then
		ok "swaks AUTH PLAIN alice from $cli to $dst:587 relays to y@outside.example (235, 250 queued as $qid)"
	else
		not_ok "swaks AUTH PLAIN alice from $cli to $dst:587 relays (exit $rc)"
		printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -n 15
		qid=NONE
	fi
	since_has "... Postfix logs the SASL login: '$qid: client=unknown[$cli], sasl_method=PLAIN, sasl_username=alice'" \
		"$MAIL_POSTFIX_LOG" "$mp" \
		"postfix/submission/smtpd\\[[0-9]+\\]: $qid: client=unknown\\[$(re "$cli")\\], sasl_method=PLAIN, sasl_username=alice$"
	since_has "... and the message is discarded, not delivered (relay=none, status=sent (outside.example))" \
		"$MAIL_POSTFIX_LOG" "$mp" \
		"postfix/discard\\[[0-9]+\\]: $qid: to=<y@outside\\.example>, relay=none, .*status=sent \\(outside\\.example\\)"
	show "$MAIL_POSTFIX_LOG" "$mp" "Postfix's lines"
done
mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
md=$(mail_log_mark "$MAIL_DOVECOT_LOG")
mail_swaks "$LAB_MAIL4" 587 --from "alice@$MAIL_DOMAIN" --to y@outside.example \
	--auth PLAIN --auth-user alice --auth-password wrong
rc=$?
if [ $rc -eq 28 ] && grep -q '<\*\* 535 5\.7\.8 Error: authentication failed' <<<"$MAIL_SWAKS_OUT"; then
	ok "swaks AUTH with a wrong password on 587: 535 5.7.8 (swaks exit 28)"
else
	not_ok "swaks AUTH with a wrong password on 587: 535 5.7.8 (exit $rc)"
	printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -n 15
fi
since_has "... Postfix logs 'warning: unknown[$LAB_CLIENT4]: SASL PLAIN authentication failed' naming the user" \
	"$MAIL_POSTFIX_LOG" "$mp" \
	"postfix/submission/smtpd\\[[0-9]+\\]: warning: unknown\\[$(re "$LAB_CLIENT4")\\]: SASL PLAIN authentication failed: .*sasl_username=alice$"
since_has "... and Dovecot's auth logs the mismatch (the SASL check went through it)" \
	"$MAIL_DOVECOT_LOG" "$md" "auth: Info: passwd-file\\(alice,$(re "$LAB_CLIENT4")\\): Password mismatch"
show "$MAIL_POSTFIX_LOG" "$mp" "Postfix's lines"
show "$MAIL_DOVECOT_LOG" "$md" "Dovecot's lines"
mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
mail_swaks "$LAB_MAIL6" 587 --from "x@$MAIL_DOMAIN" --to y@outside.example \
	--auth LOGIN --auth-user nosuchuser --auth-password secret
check_eq "swaks AUTH LOGIN as an unknown user over IPv6 fails (exit 28)" 28 "$?"
since_has "... Postfix logs 'SASL LOGIN authentication failed' for unknown[$LAB_CLIENT6]" "$MAIL_POSTFIX_LOG" "$mp" \
	"warning: unknown\\[$(re "$LAB_CLIENT6")\\]: SASL LOGIN authentication failed: .*sasl_username=nosuchuser$"
show "$MAIL_POSTFIX_LOG" "$mp" "Postfix's lines"
mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
mail_swaks "$LAB_MAIL6" 587 --from "bob@$MAIL_DOMAIN" --to y@outside.example \
	--auth LOGIN --auth-user bob --auth-password secret
check_eq "swaks AUTH LOGIN bob over IPv6 relays (exit 0)" 0 "$?"
since_has "... logged with sasl_method=LOGIN, sasl_username=bob" "$MAIL_POSTFIX_LOG" "$mp" \
	"client=unknown\\[$(re "$LAB_CLIENT6")\\], sasl_method=LOGIN, sasl_username=bob$"

# --- Postfix with a policy service -------------------------------------------------

# Postfix again, now with mail_postfix_start's POLICY: a stand-in policy
# server (the relaygated policy service comes later) answers action=OK to
# everything and appends each request to POL as it came (name=value lines,
# an empty line).
step "Postfix with a policy service"
POL=$LAB_DIR/policy-requests.txt
cat >"$LAB_DIR/policy.py" <<'PY'
import os, socketserver, sys
class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        request = b""
        for line in self.rfile:
            request += line
            if line != b"\n":
                continue
            with open(sys.argv[2], "ab") as f:
                f.write(request)
            request = b""
            self.wfile.write(b"action=OK\n\n")
            self.wfile.flush()
server = socketserver.ThreadingUnixStreamServer(sys.argv[1], Handler)
os.chmod(sys.argv[1], 0o666)
server.serve_forever()
PY
: >"$POL"
mail_postfix_stop
if mail_postfix_start unix:private/relaygate; then
	ok "Postfix restarts with check_policy_service unix:private/relaygate"
	SOCK=$MAIL_POSTFIX_QUEUE/private/relaygate
	lab_spawn "$LAB_MAIL" policy python3 "$LAB_DIR/policy.py" "$SOCK" "$POL"
	POL_PID=$LAB_SPAWNED
	lab_poll 5 test -S "$SOCK" || not_ok "the stand-in policy server listens on $SOCK"
	mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
	mail_swaks "$LAB_MAIL4" 25 --from x@ext.example --to y@outside.example
	rc=$?
	qid=$(mail_swaks_queue_id)
	check_eq "an unknown client relays on 25 when the policy service says OK (swaks exit 0)" 0 "$rc"
	# rcpt_request: the RCPT requests in POL, each on one line.
	rcpt_request() { awk -v RS= '/(^|\n)protocol_state=RCPT\n/ { gsub(/\n/, " "); print }' "$POL"; }
	check "... the request reached the service at RCPT with client address, recipient and queue id $qid" \
		eval 'rcpt_request | grep " client_address=$LAB_CLIENT4 " | grep " recipient=y@outside.example " |
			grep -q " queue_id=${qid:-NONE} "'
	diag "the policy request: $(rcpt_request | head -n 1)"
	lab_stop "$POL_PID"
	rm -f "$SOCK"
	mp=$(mail_log_mark "$MAIL_POSTFIX_LOG")
	mail_swaks "$LAB_MAIL4" 25 --from x@ext.example --to y@outside.example
	check_eq "with the service gone, default_action=DUNNO: Relay access denied again (exit 24)" 24 "$?"
	since_has "... and Postfix logs a warning about the missing service" "$MAIL_POSTFIX_LOG" "$mp" \
		"warning: connect to private/relaygate: "
	show "$MAIL_POSTFIX_LOG" "$mp" "Postfix's lines"
else
	not_ok "Postfix restarts with check_policy_service unix:private/relaygate"
fi

# --- Dovecot with the auth policy push -------------------------------------------

# An HTTP recorder on the mail host's loopback stands in for relaygated's
# dovecot-auth-policy source: it answers "allow" and writes each request.
# One line per request: "POST PATH BODY", the body as Dovecot sent it.
REC=$LAB_DIR/authpolicy.txt
REC_PORT=10099
cat >"$LAB_DIR/recorder.py" <<'PY'
import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as f:
            f.write(b"POST " + self.path.encode() + b" " + body.replace(b"\n", b" ") + b"\n")
        out = b'{"status":0,"msg":""}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
: >"$REC"
lab_spawn "$LAB_MAIL" recorder python3 "$LAB_DIR/recorder.py" "$REC_PORT" "$REC"
REC_PID=$LAB_SPAWNED
lab_wait_listen "$LAB_MAIL" "$REC_PORT" || not_ok "the auth policy recorder listens"
step "restarting Dovecot with the auth policy"
mail_dovecot_stop
URL=http://127.0.0.1:$REC_PORT/
if mail_dovecot_start "$URL"; then
	ok "Dovecot restarts with auth_policy_server_url = $URL"
	check "... its config has auth_policy_report_after_auth = yes" \
		eval 'doveconf -c "$MAIL_DOVECOT_CONF" -h auth_policy_report_after_auth | grep -qx yes'
	# report requests: the recorder's lines with the given login, remote,
	# protocol and success.
	report() {
		grep '^POST /?command=report ' "$REC" | cut -d' ' -f3- |
		jq -e -s --arg l "$1" --arg r "$2" --arg p "$3" --argjson s "$4" \
			'map(select(.login == $l and .remote == $r and .protocol == $p
				and .success == $s)) | length > 0' >/dev/null 2>&1
	}
	mail_login pop3 alice secret "$LAB_MAIL4"
	check_eq "... a POP3 login still works" 0 "$?"
	check "... and is reported: POST /?command=report {login alice, remote $LAB_CLIENT4, protocol pop3, success true}" \
		lab_poll 5 report alice "$LAB_CLIENT4" pop3 true
	mail_login imap alice wrong "$LAB_MAIL6"
	check "... an IMAP failure over IPv6 is reported with success false" \
		lab_poll 5 report alice "$LAB_CLIENT6" imap false
	mail_swaks "$LAB_MAIL4" 587 --from "alice@$MAIL_DOMAIN" --to y@outside.example \
		--auth PLAIN --auth-user alice --auth-password secret
	check_eq "... Postfix SASL still works through the restarted Dovecot" 0 "$?"
	check "... and the SASL login is reported too (protocol smtp, success true)" \
		lab_poll 5 report alice "$LAB_CLIENT4" smtp true
	diag "the auth policy requests Dovecot sent:"
	sed 's/^/#     /' "$REC"
else
	not_ok "Dovecot restarts with auth_policy_server_url = $URL"
fi

# --- cleanup -----------------------------------------------------------------------

step "cleanup"
lab_stop "$REC_PID"
mail_pids=$(ip netns pids "$LAB_MAIL")
dir=$MAIL_DIR
mail_postfix_stop
mail_dovecot_stop
if [ -n "$CAPTURE" ]; then
	# After the stops, so their last lines are in too.
	mkdir -p "$CAPTURE" &&
	cat "$MAIL_DOVECOT_LOG.1" "$MAIL_DOVECOT_LOG" >"$CAPTURE/dovecot.log" &&
	cp "$MAIL_POSTFIX_LOG" "$CAPTURE/postfix.log" &&
	cp "$REC" "$CAPTURE/authpolicy.txt" &&
	cp "$POL" "$CAPTURE/policy.txt" &&
	diag "captured dovecot.log, postfix.log, authpolicy.txt, policy.txt in $CAPTURE"
fi
mail_down
left=
# (a zombie whose parent, the master, has gone is init's to reap: not ours)
for p in $mail_pids; do mail_pid_running "$p" && left="$left $p($(cat "/proc/$p/comm" 2>/dev/null))"; done
check_eq "mail_postfix_stop and mail_dovecot_stop end every Dovecot and Postfix process ($(wc -w <<<"$mail_pids") were running)" "" "$left"
check_eq "... nothing runs in $LAB_MAIL any more" "" "$(ip netns pids "$LAB_MAIL")"
check "... and its directory is gone" test ! -e "$dir"
# lab_down alone (the daemon tests' t_cleanup) stops a running Dovecot
# through its hook (mail_down) before it deletes the namespaces.
if mail_dovecot_start; then
	pid=$MAIL_DOVECOT_PID dir=$MAIL_DIR
	lab_down
	check_eq "lab_down alone ends a running Dovecot, all its processes" "" \
		"$(ps -e -o pgid=,stat=,comm= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/')"
	check "... and removes its directory" test ! -e "$dir"
else
	not_ok "Dovecot starts again (for the lab_down check)"
	lab_down
fi
check_eq "lab_down removes the namespaces" 0 "$(ip netns list | grep -c "^rg-$LAB_ID-")"

took=$((SECONDS - T0))
if [ "$took" -lt "$LIMIT" ]; then ok "the mail lab test took $took s (< $LIMIT s)"; else not_ok "the mail lab test took $took s (limit $LIMIT s)"; fi
t_done
