#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# End to end: SMTP after POP through everything real (issue 4). In the
# namespace lab (tests/e2e/lab.sh):
#
#   mail host  real Dovecot (POP3/IMAP, tests/e2e/mail.sh), real Postfix
#              with its own config directory (every transport discards:
#              nothing is ever delivered), smtpd_relay_restrictions with
#              check_policy_service { unix:private/relaygate,
#              default_action=DUNNO }, smtpd_delay_open_until_valid_rcpt
#              = no; relaygated (tests/e2e/daemon.sh) gating 587 and 465 on
#              the lab interface, following Dovecot's log, serving the
#              policy socket in Postfix's queue directory (owner postfix),
#              with sender_logins and audit_log.
#   client     curl for the POP3 login, swaks for SMTP, from four addresses:
#              the roaming client (LAB_CLIENT4), the office (LAB_OFFICE4 /
#              LAB_OFFICE6, inside the trusted subnets), and a stranger.
#
# What a user would see: before its POP login the roaming client cannot
# connect to 587 (dropped); after a real POP login swaks relays to an
# outside domain (250); sending as another user's address is refused with
# 5.7.1; the office relays; the stranger gets "Relay access denied" on 25
# (not gated); after the grant expires a new connection to 587 is dropped
# and 25 refuses to relay again; the audit file holds the relay, the
# rejection and the trusted relay, each queue id the one Postfix logged.
set -u
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lab.sh"
. "$(dirname "$0")/mail.sh"
. "$(dirname "$0")/daemon.sh"

TTL=12                          # grant TTL, seconds: the test waits it out
STRANGER=10.77.1.5              # a client address that never logs in
OUTSIDE=y@outside.example       # a recipient the mail host does not serve

t_need_root "relay e2e (real Postfix, Dovecot, relaygated)"
for b in "$RGD_DAEMON" "$LAB_CTL"; do
	[ -x "$b" ] || { not_ok "$(basename "$b") is built ($b missing: make OUT=$OUT)"; t_done; }
done
for tool in dovecot doveadm postfix postconf swaks curl socat jq nsenter ss script; do
	command -v "$tool" >/dev/null || { not_ok "$tool is installed (scripts/install-deps)"; t_done; }
done
perl -MIO::Socket::INET6 -e 1 2>/dev/null ||
	{ not_ok "perl IO::Socket::INET6 is installed (swaks needs it for IPv6)"; t_done; }

T0=$SECONDS
step() { diag "[$((SECONDS - T0)) s] $*"; }
re() { printf '%s' "$1" | sed 's/[][\.^$*+?(){}|]/\\&/g'; }

t_cleanup lab_down
LAB_WITH_VPN=0
if ! lab_up; then not_ok "the namespace lab comes up"; t_done; fi
ip -n "$LAB_CLIENT" addr add "$STRANGER/24" dev eth0 || { not_ok "the stranger's address"; t_done; }

# --- the servers ----------------------------------------------------------------

step "Dovecot, Postfix"
if ! mail_dovecot_start; then not_ok "Dovecot starts in the mail namespace"; t_done; fi
if ! mail_postfix_start unix:private/relaygate; then
	not_ok "Postfix starts with check_policy_service unix:private/relaygate"; t_done
fi
ok "Dovecot and Postfix (check_policy_service unix:private/relaygate) run in the mail namespace"
pc() { postconf -c "$MAIL_POSTFIX_DIR" -h "$1"; }
check_eq "Postfix: policy check before reject_unauth_destination, default_action=DUNNO, queue id at RCPT" \
	"permit_mynetworks, permit_sasl_authenticated, check_policy_service { unix:private/relaygate, default_action=DUNNO }, reject_unauth_destination no discard" \
	"$(pc smtpd_relay_restrictions | xargs) $(pc smtpd_delay_open_until_valid_rcpt) $(pc default_transport)"

# --- relaygated -------------------------------------------------------------------

step "relaygated"
rgd_init || { not_ok "relaygated's directories"; t_done; }
PSOCK=$MAIL_POSTFIX_QUEUE/private/relaygate
AUDIT=$RGD_DIR/log/audit.log
SENDERS=$RGD_DIR/sender_logins
printf 'alice: alice@%s\nbob: bob@%s\n' "$MAIL_DOMAIN" "$MAIL_DOMAIN" >"$SENDERS"
RGD_TTL=${TTL}s
{
	rgd_conf_base
	cat <<EOF

[trust]
subnet = $LAB_TRUST4 $LAB_TRUST6

[source.dovecot]
type = dovecot
path = $MAIL_DOVECOT_LOG

[policy]
listen = unix:$PSOCK
socket_owner = postfix
socket_mode = 0660
sender_logins = $SENDERS
audit_log = $AUDIT
EOF
} >"$RGD_CONF"
if rgd_start; then ok "relaygated starts (pid $RGD_PID)"; else not_ok "relaygated starts"; t_done; fi
check "... the gate is attached to the mail host's $LAB_IF" \
	eval "ip -n '$LAB_MAIL' link show dev '$LAB_IF' | grep -q ' xdp '"
check_eq "... the policy socket is in Postfix's private/, owned by postfix, mode 660" \
	"socket postfix 660" "$(stat -c '%F %U %a' "$PSOCK" 2>/dev/null)"

# --- before the POP login ---------------------------------------------------------

step "before the login"
d0=$(lab_stat drop_unauth)
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587
check_eq "before a POP login the client cannot connect to 587 (SYN dropped: timeout)" timeout "$LAB_RESULT"
d1=$(lab_stat drop_unauth)
if [ -n "$d0" ] && [ -n "$d1" ] && [ "$d1" -gt "$d0" ]; then ok "... counted as drop_unauth ($d0 -> $d1)"; else
	not_ok "... counted as drop_unauth"; diag "drop_unauth $d0 -> $d1"
fi
mail_swaks "$LAB_MAIL4" 587 --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE" --timeout 2
rc=$?
if [ $rc -ne 0 ] && ! grep -q '<-  220 ' <<<"$MAIL_SWAKS_OUT"; then
	ok "... and swaks gets no SMTP greeting on 587 (exit $rc)"
else
	not_ok "... and swaks gets no SMTP greeting on 587 (exit $rc)"; printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -5
fi
mail_swaks "$LAB_MAIL4" 25 --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE"
rc=$?
if [ $rc -eq 24 ] && grep -q "<\*\* 554 5\.7\.1 <$(re "$OUTSIDE")>: Relay access denied" <<<"$MAIL_SWAKS_OUT"; then
	ok "... on 25 (not gated) it connects but may not relay: 554 5.7.1 Relay access denied"
else
	not_ok "... on 25 it connects but may not relay (exit $rc)"; printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -8
fi

# --- a real POP login ---------------------------------------------------------------

step "POP login"
t0=$(lab_now_ms)
mail_login pop3 alice secret "$LAB_MAIL4"
check_eq "a real POP3 login (curl pop3://) from $LAB_CLIENT4" 0 "$?"
if lab_poll 1 rgd_has_grant "$LAB_CLIENT4"; then
	ok "... grants $LAB_CLIENT4 within 1 s ($(($(lab_now_ms) - t0)) ms)"
else
	not_ok "... grants $LAB_CLIENT4 within 1 s"; rgd_since | tail -5 | sed 's/^/#   /'
fi
t_login=$(lab_now_ms)
check_eq "... to user alice for pop3" "alice pop3" "$(rgd_grant_of "$LAB_CLIENT4" | awk '{ print $1, $3 }')"
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 4
check_eq "... and the client connects to 587" open "$LAB_RESULT"

mail_swaks "$LAB_MAIL4" 587 --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE"
rc=$?
QID1=$(mail_swaks_queue_id)
if [ $rc -eq 0 ] && [ -n "$QID1" ]; then
	ok "swaks on 587 as alice@$MAIL_DOMAIN to $OUTSIDE relays: 250 queued as $QID1"
else
	not_ok "swaks on 587 as alice@$MAIL_DOMAIN to $OUTSIDE relays (exit $rc)"
	printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -10
	QID1=NONE
fi
check "... Postfix logs the message from unknown[$LAB_CLIENT4] under queue id $QID1" \
	mail_log_wait "$MAIL_POSTFIX_LOG" "postfix/submission/smtpd\\[[0-9]+\\]: $QID1: client=unknown\\[$(re "$LAB_CLIENT4")\\]$"
check "... and hands it to discard (never delivered)" \
	mail_log_wait "$MAIL_POSTFIX_LOG" "postfix/discard\\[[0-9]+\\]: $QID1: to=<$(re "$OUTSIDE")>, relay=none, .*status=sent"

mail_swaks "$LAB_MAIL4" 587 --from "bob@$MAIL_DOMAIN" --to "$OUTSIDE"
rc=$?
if [ $rc -eq 24 ] && grep -q "<\*\* 554 5\.7\.1 <$(re "$OUTSIDE")>: Recipient address rejected: <bob@$(re "$MAIL_DOMAIN")> not owned by user alice" <<<"$MAIL_SWAKS_OUT"; then
	ok "sending as another user's address (bob@$MAIL_DOMAIN) is rejected: 554 5.7.1 ... not owned by user alice"
else
	not_ok "sending as another user's address is rejected 5.7.1 (exit $rc)"
	printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -8
fi
check_not "... and nothing of it was queued" eval "grep -q 'queued as' <<<\"\$MAIL_SWAKS_OUT\""

# --- the office, the stranger ------------------------------------------------------------

step "trusted and unknown clients"
mail_swaks "$LAB_MAIL4" 587 --local-interface "$LAB_OFFICE4" --from "office@example.com" --to "$OUTSIDE"
rc=$?
QID2=$(mail_swaks_queue_id)
if [ $rc -eq 0 ] && [ -n "$QID2" ]; then
	ok "a client in a trusted subnet ($LAB_OFFICE4 in $LAB_TRUST4) relays through 587: 250 queued as $QID2"
else
	not_ok "a client in a trusted subnet relays through 587 (exit $rc)"
	printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -8
	QID2=NONE
fi
mail_swaks "$LAB_MAIL6" 587 --local-interface "$LAB_OFFICE6" --from "office@example.com" --to "$OUTSIDE"
rc=$?
QID3=$(mail_swaks_queue_id)
check_eq "... and so does the IPv6 office address ($LAB_OFFICE6 in $LAB_TRUST6)" "0 yes" "$rc $([ -n "$QID3" ] && echo yes)"

mail_swaks "$LAB_MAIL4" 25 --local-interface "$STRANGER" --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE"
rc=$?
if [ $rc -eq 24 ] && grep -q "<\*\* 554 5\.7\.1 <$(re "$OUTSIDE")>: Relay access denied" <<<"$MAIL_SWAKS_OUT"; then
	ok "an unknown client ($STRANGER) on 25 (not gated): 554 5.7.1 Relay access denied"
else
	not_ok "an unknown client on 25: Relay access denied (exit $rc)"; printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -8
fi
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587 "$LAB_CONNECT_TMO" "$STRANGER"
check_eq "... and cannot connect to 587 at all" timeout "$LAB_RESULT"
mail_swaks "$LAB_MAIL4" 25 --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE"
check_eq "the granted client relays through 25 as well (the policy knows its grant)" 0 "$?"

# --- the audit trail ----------------------------------------------------------------------

step "audit"
diag "audit log:"; sed 's/^/#   /' "$AUDIT" 2>/dev/null
TS='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z '
check "audit: the relay for alice: client, user, grant from the pop3 login, sender, recipient, queue id $QID1" \
	grep -Eq "${TS}relay client=$(re "$LAB_CLIENT4") user=alice auth=grant\\(pop3,[0-9T:-]+Z\\) sender=<alice@$(re "$MAIL_DOMAIN")> recipient=<$(re "$OUTSIDE")> queue_id=$QID1 instance=[^ ]+ state=RCPT action=OK$" "$AUDIT"
check "audit: the rejection of bob@$MAIL_DOMAIN, naming user alice and the reason" \
	grep -Eq "${TS}reject client=$(re "$LAB_CLIENT4") user=alice auth=grant\\(pop3,[^)]*\\) sender=<bob@$(re "$MAIL_DOMAIN")> recipient=<$(re "$OUTSIDE")> queue_id=[0-9A-Za-z]+ .*action=REJECT reason=sender_not_owned$" "$AUDIT"
check "audit: the office relay, authorized by the trusted subnet $LAB_TRUST4, queue id $QID2" \
	grep -Eq "${TS}relay client=$(re "$LAB_OFFICE4") user=- auth=trusted\\($(re "$LAB_TRUST4")\\) sender=<office@example\\.com> recipient=<$(re "$OUTSIDE")> queue_id=$QID2 " "$AUDIT"
check "audit: the IPv6 office relay, trusted($LAB_TRUST6), queue id $QID3" \
	grep -Eq "${TS}relay client=$(re "$LAB_OFFICE6") user=- auth=trusted\\($(re "$LAB_TRUST6")\\) .* queue_id=${QID3:-NONE} " "$AUDIT"
check_not "audit: nothing for the unknown client" grep -q "client=$(re "$STRANGER") " "$AUDIT"
# Every queue id of an audit relay line is one Postfix logged for that
# client, and the other way round.
mism=0
while read -r cl q; do
	grep -Eq "postfix/(submission/)?smtpd\\[[0-9]+\\]: $q: client=unknown\\[$(re "$cl")\\]" "$MAIL_POSTFIX_LOG" ||
		{ mism=$((mism + 1)); diag "audit queue id $q of $cl is not in Postfix's log"; }
done < <(sed -nE 's/.* relay client=([^ ]+) .* queue_id=([^ ]+) .*/\1 \2/p' "$AUDIT")
nrel=$(grep -c ' relay client=' "$AUDIT")
check_eq "audit: each of the $nrel relay lines carries the queue id Postfix logged for its client" 0 "$mism"
# The messages that left (to discard) are exactly the audited relays.
out_ids() { sed -nE 's/.*postfix\/discard\[[0-9]+\]: ([0-9A-Z]+): to=.*/\1/p' "$MAIL_POSTFIX_LOG" | sort -u | xargs; }
audit_ids() { sed -nE 's/.* relay client=.* queue_id=([^ ]+) .*/\1/p' "$AUDIT" | sort -u | xargs; }
lab_poll 5 eval '[ "$(out_ids)" = "$(audit_ids)" ]'
check_eq "... and the messages Postfix let out (to discard) are exactly the audited relays" "$(out_ids)" "$(audit_ids)"
# One grant, one login: every audit line of alice's grant names the same
# login time.
check_eq "... every audit line of alice's grant names the same login time" 1 \
	"$(sed -nE "s/.* client=$(re "$LAB_CLIENT4") user=alice auth=grant\\(pop3,([^)]*)\\).*/\\1/p" "$AUDIT" | sort -u | wc -l)"
check "... the audit lines are in the daemon's log too" \
	rgd_log_wait "audit: relay client=$(re "$LAB_CLIENT4") user=alice .*queue_id=$QID1 "
check_not "Postfix never had trouble talking to the policy service" \
	grep -Eq 'warning: .*(private/relaygate|problem talking to server)' "$MAIL_POSTFIX_LOG"

# --- the grant expires ---------------------------------------------------------------------

step "waiting for the grant to expire (TTL $TTL s)"
left=$(( (TTL * 1000 - ($(lab_now_ms) - t_login)) / 1000 + 3 ))
if lab_poll "$left" eval '! rgd_has_grant "$LAB_CLIENT4"'; then
	ok "the grant expires after its TTL (${TTL} s)"
else
	not_ok "the grant expires after its TTL"; lab_ctl grant list | sed 's/^/#   /'
fi
check "... the daemon logs the expiry with the user" rgd_log_wait "expire grant $(re "$LAB_CLIENT4") user=alice "
lab_try "$LAB_CLIENT" "$LAB_MAIL4" 587
check_eq "after the grant expired a new connection to 587 is dropped" timeout "$LAB_RESULT"
mail_swaks "$LAB_MAIL4" 25 --from "alice@$MAIL_DOMAIN" --to "$OUTSIDE"
rc=$?
if [ $rc -eq 24 ] && grep -q 'Relay access denied' <<<"$MAIL_SWAKS_OUT"; then
	ok "... and 25 refuses to relay for it again: Relay access denied"
else
	not_ok "... and 25 refuses to relay for it again (exit $rc)"; printf '%s\n' "$MAIL_SWAKS_OUT" | sed 's/^/#   /' | tail -5
fi

step "cleanup"
rgd_stop
check_eq "relaygated exits 0 on SIGTERM" 0 "$RGD_RC"
diag "took $((SECONDS - T0)) s"
t_done
