#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# The policy service behind real Postfix (Debian's smtpd, its own config
# directory, transport discard: nothing is ever delivered), swaks as the
# SMTP client, all inside one network namespace of this test. The policy
# server is the test binary's --serve mode: the real server and the real
# lookup over BPF maps (unpinned, filled by the test) — what relaygated
# will run, minus the daemon around it.
#
#   10.79.0.10  Postfix smtpd on :2525, mynetworks = 127.0.0.0/8
#   10.79.0.1   granted client (user alice)
#   10.79.0.66  trusted client (10.79.0.64/26 trusted)
#   10.79.0.3   unknown client
#   10.79.0.4   granted (user carol, not in sender_logins)
#   10.79.0.5   granted but on the deny list
. "$(dirname "$0")/../lib.sh"

t_need_root "policy e2e with real Postfix"
for tool in postfix postconf swaks; do
	if ! command -v $tool >/dev/null; then
		not_ok "$tool installed (scripts/install-deps)"
		t_done
	fi
done
SERVE="$OUT/tests/unit/test_policy_proto"
if [ ! -x "$SERVE" ]; then
	not_ok "$SERVE built (make OUT=... tests)"
	t_done
fi

NS=rg-$$-pol
W=$(mktemp -d /tmp/rg-pol-$$-XXXXXX)
chmod 755 "$W"
t_cleanup "rm -rf '$W'"
ip netns add "$NS" || { not_ok "create namespace $NS"; t_done; }
t_cleanup "ip netns del '$NS'"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up
for a in 10 1 66 3 4 5; do nsx ip addr add 10.79.0.$a/24 dev lo; done

# --- Postfix, its own instance ---------------------------------------------
mkdir -p "$W/etc" "$W/spool" "$W/data"
chown postfix "$W/data"
cat >"$W/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $W/spool
data_directory = $W/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mail.rg-test.example
mydomain = rg-test.example
myorigin = \$myhostname
mydestination = localhost
inet_interfaces = 10.79.0.10
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
default_transport = discard
relay_transport = discard
local_transport = discard
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
smtpd_banner = \$myhostname ESMTP
maillog_file_prefixes = $W
maillog_file = $W/maillog
biff = no
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    check_policy_service { unix:private/relaygate, default_action=DUNNO },
    reject_unauth_destination
smtpd_delay_open_until_valid_rcpt = no
smtpd_end_of_data_restrictions =
    check_policy_service { unix:private/relaygate, default_action=DUNNO }
CF
cat >"$W/etc/master.cf" <<'CF'
10.79.0.10:2525 inet n -  n -  -  smtpd
cleanup   unix  n -  n -  0  cleanup
qmgr      unix  n -  n 300 1 qmgr
rewrite   unix  - -  n -  -  trivial-rewrite
bounce    unix  - -  n -  0  bounce
defer     unix  - -  n -  0  bounce
trace     unix  - -  n -  0  bounce
verify    unix  - -  n -  1  verify
flush     unix  n -  n 1000? 0 flush
proxymap  unix  - -  n -  -  proxymap
discard   unix  - -  n -  -  discard
error     unix  - -  n -  -  error
retry     unix  - -  n -  -  error
anvil     unix  - -  n -  1  anvil
scache    unix  - -  n -  1  scache
showq     unix  n -  n -  -  showq
postlog   unix-dgram n - n - 1 postlogd
CF
if ! out=$(nsx postfix -c "$W/etc" start 2>&1); then
	not_ok "postfix starts with its own config directory"
	printf '%s\n' "$out" | sed 's/^/#   /'
	[ -f "$W/maillog" ] && tail -20 "$W/maillog" | sed 's/^/#   /'
	# postfix prints its fatal errors only to a terminal
	nsx script -qec "postfix -c $W/etc check" /dev/null 2>&1 | sed 's/^/#   /'
	t_done
fi
# postfix refuses to run outside the namespace that has its inet_interfaces,
# abort included: stop it in there, then make sure of the master by its pid.
t_cleanup "ip netns exec '$NS' postfix -c '$W/etc' abort; p=\$(tr -dc 0-9 <'$W/spool/pid/master.pid' 2>/dev/null); [ -n \"\$p\" ] && kill \"\$p\""
ok "postfix starts with its own config directory"

# --- the policy server -------------------------------------------------------
cat >"$W/sender_logins" <<'SL'
# who may send as whom
alice: alice@example.org, @alice.example
bob:   bob@example.org
SL
SOCK="$W/spool/private/relaygate"
"$SERVE" --serve "unix:$SOCK" --owner postfix --sender-logins "$W/sender_logins" \
	--audit "$W/audit.log" --grant 10.79.0.1=alice --grant 10.79.0.4=carol \
	--grant 10.79.0.5=mallory --deny 10.79.0.5 --trust 10.79.0.64/26 \
	>"$W/serve.out" 2>"$W/serve.err" &
SERVE_PID=$!
t_cleanup "kill $SERVE_PID"
for _ in $(seq 50); do grep -q '^ready' "$W/serve.out" && break; sleep 0.1; done
check "policy server listens on $SOCK, owned by postfix" \
	bash -c "[ -S '$SOCK' ] && [ \"\$(stat -c %U:%a '$SOCK')\" = postfix:660 ]"

# swaks FROM-ADDRESS CLIENT-ADDRESS MAIL-FROM RCPT: prints the transcript,
# returns swaks' exit status (0 delivered, 24 RCPT refused).
smtp() {
	nsx swaks --server 10.79.0.10:2525 --local-interface "$1" --from "$2" --to "$3" \
		--helo client.example --timeout 20 --hide-informational 2>&1
}

out=$(smtp 10.79.0.1 alice@example.org bob@example.net); rc=$?
if [ $rc -eq 0 ] && grep -q '<-  250 2.0.0 Ok: queued as' <<<"$out"; then
	ok "granted client relays as its own address (250)"
else
	not_ok "granted client relays as its own address (rc $rc)"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
out=$(smtp 10.79.0.1 someone@alice.example bob@example.net); rc=$?
check_eq "granted client relays from its own @domain" 0 "$rc"

out=$(smtp 10.79.0.1 bob@example.org carol@example.net); rc=$?
if [ $rc -eq 24 ] && grep -q '<\*\* 554 5.7.1 <carol@example.net>: Recipient address rejected: <bob@example.org> not owned by user alice' <<<"$out"; then
	ok "granted client sending as another user's address: 554 5.7.1 naming user and sender"
else
	not_ok "granted client sending as another user's address (rc $rc)"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
out=$(smtp 10.79.0.4 carol@example.org bob@example.net); rc=$?
if [ $rc -eq 24 ] && grep -q '554 5.7.1 .*<carol@example.org> not owned by user carol' <<<"$out"; then
	ok "granted user missing from sender_logins is refused"
else
	not_ok "granted user missing from sender_logins is refused (rc $rc)"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
out=$(smtp 10.79.0.66 office@example.org bob@example.net); rc=$?
check_eq "trusted-subnet client relays" 0 "$rc"
out=$(smtp 10.79.0.3 alice@example.org bob@example.net); rc=$?
if [ $rc -eq 24 ] && grep -q 'Relay access denied' <<<"$out"; then
	ok "unknown client: Relay access denied"
else
	not_ok "unknown client: Relay access denied (rc $rc)"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
out=$(smtp 10.79.0.5 mallory@example.org bob@example.net); rc=$?
if [ $rc -eq 24 ] && grep -q 'Relay access denied' <<<"$out"; then
	ok "denied client holding a grant: Relay access denied"
else
	not_ok "denied client holding a grant (rc $rc)"; printf '%s\n' "$out" | sed 's/^/#   /'
fi
# local delivery still works for anyone (not a relay): the service says DUNNO
out=$(smtp 10.79.0.3 x@example.com postmaster@localhost); rc=$?
check_eq "mail to a local domain from an unknown client is not blocked" 0 "$rc"

# --- the audit trail -----------------------------------------------------------
A="$W/audit.log"
diag "audit.log:"; sed 's/^/#   /' "$A"
check "relay line with user, grant, sender, recipient and a queue id at RCPT" \
	grep -Eq '^[0-9T:.-]+Z relay client=10\.79\.0\.1 user=alice auth=grant\(pop3,[0-9T:-]+Z\) sender=<alice@example\.org> recipient=<bob@example\.net> queue_id=[0-9A-Za-z]+ instance=[0-9a-f.]+ state=RCPT action=OK$' "$A"
check "message line at END-OF-MESSAGE with the queue id" \
	grep -Eq ' message client=10\.79\.0\.1 user=alice .* queue_id=[0-9A-Za-z]+ .*state=END-OF-MESSAGE action=DUNNO$' "$A"
check "reject line for the foreign sender" \
	grep -Eq ' reject client=10\.79\.0\.1 user=alice .*sender=<bob@example\.org> recipient=<carol@example\.net> .*action=REJECT reason=sender_not_owned$' "$A"
check "trusted relay line names the subnet" \
	grep -Eq ' relay client=10\.79\.0\.66 user=- auth=trusted\(10\.79\.0\.64/26\) sender=<office@example\.org> ' "$A"
check_not "no audit line for the unknown or the denied client" grep -Eq 'client=10\.79\.0\.(3|5) ' "$A"
# the queue id in the audit file is the one Postfix logged for that message
qid=$(grep -E ' relay client=10\.79\.0\.1 .*sender=<alice@example\.org>' "$A" | head -1 | sed -E 's/.* queue_id=([^ ]+) .*/\1/')
check "audit queue id $qid is in Postfix's log" grep -q "$qid: client=" "$W/maillog"
check_not "Postfix never had trouble talking to the service" \
	grep -Eq 'problem talking to server|policy.*(timeout|error)' "$W/maillog"

# --- reload: a new sender_logins map and a rotated audit file ----------------
mv "$A" "$A.1"
echo 'alice: alice@example.org, bob@example.org' >"$W/sender_logins"
kill -HUP $SERVE_PID
sleep 0.5
out=$(smtp 10.79.0.1 bob@example.org carol@example.net); rc=$?
check_eq "after SIGHUP the new sender_logins applies" 0 "$rc"
check "after SIGHUP audit lines go to the new file" grep -q 'sender=<bob@example.org> recipient=<carol@example.net>' "$A"
echo 'alice alice@example.org' >"$W/sender_logins"
kill -HUP $SERVE_PID
sleep 0.5
check "a broken sender_logins on reload is reported with file:line" \
	grep -q "$W/sender_logins:1: expected 'user: address, ...'" "$W/serve.err"
out=$(smtp 10.79.0.1 bob@example.org carol@example.net); rc=$?
check_eq "and the old map stays in force" 0 "$rc"

kill $SERVE_PID
wait $SERVE_PID 2>/dev/null
check_not "the socket is removed when the server stops" test -e "$SOCK"
t_done
