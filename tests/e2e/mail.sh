# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Real Dovecot and Postfix (Debian's packages) in the lab's mail namespace,
# for the end-to-end tests of the daemon and the policy service, and clients
# (curl, swaks) in the client namespace. Source it after tests/e2e/lab.sh:
#
#   . tests/e2e/lab.sh; . tests/e2e/mail.sh
#   lab_up && trap lab_down EXIT    # lab_down also stops what mail_* started
#   mail_dovecot_start [POLICY_URL] # POP3 110, IMAP 143 on every lab address
#                                   # of the mail host; users alice and bob,
#                                   # password "secret" (MAIL_USERS);
#                                   # POLICY_URL: the auth policy push
#   mail_postfix_start [POLICY]     # SMTP 25, submission 587 (SASL AUTH
#                                   # through Dovecot when it runs); POLICY:
#                                   # check_policy_service target, e.g.
#                                   # unix:private/relaygate (in the queue
#                                   # directory: MAIL_POSTFIX_QUEUE)
#   mail_login pop3 alice secret [DST] [SRC]   # curl login from the client;
#                                   # returns curl's status (0 ok, 67 denied)
#   mail_swaks DST PORT SWAKS-ARGS...          # swaks from the client; returns
#                                   # swaks' status, transcript in MAIL_SWAKS_OUT
#   mail_swaks_queue_id             # "queued as ID" of the last swaks run
#   mail_log_wait FILE ERE [TMO]    # until a line of FILE matches ERE
#   mail_log_since FILE MARK        # lines of FILE after mail_log_mark FILE
#   mail_postfix_set NAME=VALUE...  # postconf -e + postfix reload
#   mail_postfix ARGS...            # the postfix command of our instance
#   mail_doveadm ARGS...            # doveadm of our instance (log reopen, ...)
#   mail_dovecot_add_user NAME PASS # one more account, at once
#   mail_dovecot_stop, mail_postfix_stop       # each stops everything of it
#   mail_down                       # stop both (lab_down calls it too)
#
# Run directly (bash tests/e2e/mail.sh) it checks the configurations it
# writes (doveconf, postconf) without starting anything and prints TAP;
# tests/e2e/test_mail_lab.sh runs the servers and the clients for real.
#
# Both servers are ours alone: their configuration, base, state, queue and
# data directories and their log files live in MAIL_DIR (a directory of
# their own under /tmp, removed by mail_down); /etc/dovecot, /etc/postfix
# and the system's instances are never touched. Dovecot logs to
# MAIL_DOVECOT_LOG (log_path and info_log_path), Postfix to MAIL_POSTFIX_LOG
# (maillog_file through postlogd). Nothing leaves the lab: both listen only
# on the mail namespace's lab addresses, Postfix's transports all discard
# and it looks up no names (no DNS: the namespace has no route to one).
#
# Settings (set before the start functions):
#   MAIL_USERS              "user:password ..." for Dovecot's passwd-file
#   MAIL_AUTH_FAILURE_DELAY Dovecot's auth_failure_delay (default 0: fast tests;
#                           Dovecot's own default is 2 s)
#   MAIL_AUTH_PENALTY       1: keep Dovecot's auth penalty (default 0: off, so
#                           repeated failures from one address are not slowed
#                           down 2, 4, 8, 15 s)
#   MAIL_DOVECOT_EXTRA      lines appended to dovecot.conf
#   MAIL_POSTFIX_EXTRA      lines appended to main.cf
#   MAIL_POSTFIX_POLICY_EOD 1: also check the policy at end-of-data
#                           (smtpd_end_of_data_restrictions)
# shellcheck shell=bash disable=SC2034  # MAIL_* variables are for the scripts sourcing this

MAIL_DOMAIN=relaygate.test              # Postfix's mydestination
MAIL_HOSTNAME=mail.$MAIL_DOMAIN
MAIL_USERS=${MAIL_USERS:-alice:secret bob:secret}
MAIL_AUTH_FAILURE_DELAY=${MAIL_AUTH_FAILURE_DELAY:-0}
MAIL_AUTH_PENALTY=${MAIL_AUTH_PENALTY:-0}
MAIL_DOVECOT_EXTRA=${MAIL_DOVECOT_EXTRA:-}
MAIL_POSTFIX_EXTRA=${MAIL_POSTFIX_EXTRA:-}
MAIL_POSTFIX_POLICY_EOD=${MAIL_POSTFIX_POLICY_EOD:-0}

MAIL_DIR=                               # everything of ours, mode 0755
MAIL_UID=                               # owner of the mailboxes (no passwd entry)
MAIL_DOVECOT_CONF='' MAIL_DOVECOT_LOG='' MAIL_DOVECOT_PID='' MAIL_DOVECOT_AUTH=''
MAIL_POSTFIX_DIR='' MAIL_POSTFIX_QUEUE='' MAIL_POSTFIX_LOG='' MAIL_POSTFIX_PID=''
MAIL_SWAKS_OUT=

mail_err() { echo "mail: $*" >&2; }

# The mail host's lab addresses: the client side, and the vpn side when the
# lab has it.
mail_addrs() {
	echo "$LAB_MAIL4 $LAB_MAIL6"
	[ "${LAB_WITH_VPN:-1}" = 1 ] && echo "$LAB_MAILVPN4 $LAB_MAILVPN6"
	return 0
}
mail_addr_list() { mail_addrs | tr ' \n' '  ' | sed 's/ *$//; s/  */, /g'; }

# A uid and gid that no account uses, for the mailboxes: Dovecot's mail
# processes run as it (a numeric uid needs no passwd entry), so nothing of
# the system's users is involved and nothing is added to /etc/passwd.
mail_pick_uid() {
	local u
	for ((u = 64100; u < 64400; u++)); do
		getent passwd "$u" >/dev/null || getent group "$u" >/dev/null || { echo "$u"; return 0; }
	done
	return 1
}

# MAIL_DIR, made once per lab. World-traversable: Dovecot's and Postfix's
# unprivileged processes (dovenull, dovecot, postfix, the mail uid) reach
# their sockets and mailboxes in it.
mail_init() {
	if [ -z "$LAB_DIR" ] || [ ! -d "$LAB_DIR" ]; then
		mail_err "lab_up first"
		return 1
	fi
	[ -n "$MAIL_DIR" ] && return 0
	MAIL_DIR=$(mktemp -d "/tmp/rg-mail-$LAB_ID.XXXXXX") || return 1
	chmod 0755 "$MAIL_DIR"
	MAIL_UID=$(mail_pick_uid) || { mail_err "no free uid for the mailboxes"; return 1; }
	lab_on_down mail_down
}

# mail_log_wait FILE ERE [TIMEOUT]: until a line of FILE matches ERE.
mail_log_wait() {
	lab_poll "${3:-5}" grep -Eqs -- "$2" "$1"
}

# mail_log_mark FILE: a mark (the line count now) for mail_log_since.
mail_log_mark() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# mail_log_since FILE MARK: the lines of FILE written after MARK.
mail_log_since() { [ -f "$1" ] && tail -n "+$(($2 + 1))" "$1"; }

# mail_pid_gone PID [TIMEOUT]: until PID has exited.
mail_pid_gone() { lab_poll "${2:-5}" eval "! mail_pid_running $1"; }

# mail_pid_running PID: PID exists and is not a zombie.
mail_pid_running() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $st != Z* ]]
}

# mail_end_group PID NAME: PID (a server's master: Dovecot's, started by
# lab_spawn's setsid, and Postfix's, which calls setsid itself) leads its
# own process group; once it has exited, what is left of the group
# (Dovecot's auth and log processes stay while Postfix is connected) gets
# SIGTERM, and SIGKILL 3 s later. Only a group that PID leads is touched.
mail_end_group() {
	local pid=$1 name=$2
	lab_poll 6 eval "! mail_pid_running $pid" || mail_err "$name master $pid did not stop: killing its process group"
	mail_group_alive "$pid" || return 0
	kill -TERM -- "-$pid" 2>/dev/null
	lab_poll 3 eval "! mail_group_alive $pid" && return 0
	mail_err "$name processes outlived their master $pid by 3 s: killing them"
	kill -KILL -- "-$pid" 2>/dev/null
	lab_poll 2 eval "! mail_group_alive $pid"
	return 0
}

# mail_group_alive PGID: a process of group PGID still runs (zombies, which
# wait for init to reap them, do not count).
mail_group_alive() {
	ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# mail_is_group_leader PID: PID leads its process group.
mail_is_group_leader() {
	[ "$(ps -o pgid= -p "$1" 2>/dev/null | tr -d ' ')" = "$1" ]
}

# --- Dovecot ------------------------------------------------------------

mail_dovecot_conf() {
	local d=$1 url=$2
	cat <<CONF
# relaygate lab Dovecot (tests/e2e/mail.sh), instance of lab $LAB_ID
base_dir = $d/run
state_dir = $d/state
instance_name = rglab-$LAB_ID
protocols = pop3 imap
listen = $(mail_addr_list)
shutdown_clients = yes

log_path = $MAIL_DOVECOT_LOG
info_log_path = $MAIL_DOVECOT_LOG
auth_verbose = yes

ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = $MAIL_AUTH_FAILURE_DELAY

default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = $MAIL_UID
last_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_UID
last_valid_gid = $MAIL_UID
mail_location = maildir:$d/mail/%n

passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/users
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_UID home=$d/mail/%n
}

service pop3-login {
  inet_listener pop3 {
    port = 110
  }
}
service imap-login {
  inet_listener imap {
    port = 143
  }
}
CONF
	if [ "$MAIL_AUTH_PENALTY" != 1 ]; then
		cat <<CONF
# No auth penalty (anvil's per-IP delay doubling after each failure, up
# to 15 s): tests send many failures from one address.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
CONF
	fi
	cat <<CONF
# SMTP AUTH of the lab's Postfix (smtpd_sasl_type = dovecot).
service auth {
  unix_listener $MAIL_DOVECOT_AUTH {
    mode = 0660
    user = postfix
    group = postfix
  }
}
CONF
	if [ -n "$url" ]; then
		cat <<CONF

# Every login and failure pushed to relaygated's auth policy server.
auth_policy_server_url = $url
auth_policy_hash_nonce = x
auth_policy_report_after_auth = yes
CONF
	fi
	[ -n "$MAIL_DOVECOT_EXTRA" ] && printf '\n%s\n' "$MAIL_DOVECOT_EXTRA"
	return 0
}

# mail_dovecot_prepare [POLICY_URL]: Dovecot's directories, users and
# dovecot.conf in MAIL_DIR/dovecot, checked with doveconf (which must have
# nothing to say). mail_dovecot_start calls it.
mail_dovecot_prepare() {
	local url=${1:-} d u p
	mail_init || return 1
	d=$MAIL_DIR/dovecot
	mkdir -p "$d/run" "$d/state" "$d/mail" || return 1
	chmod 0755 "$d"
	chown "$MAIL_UID:$MAIL_UID" "$d/mail" && chmod 0700 "$d/mail" || return 1
	MAIL_DOVECOT_CONF=$d/dovecot.conf
	MAIL_DOVECOT_LOG=$MAIL_DIR/dovecot.log
	MAIL_DOVECOT_AUTH=$d/auth-postfix
	: >"$d/users"
	for u in $MAIL_USERS; do
		printf '%s:{PLAIN}%s\n' "${u%%:*}" "${u#*:}" >>"$d/users"
	done
	# Read by the auth process (user dovecot), not by anyone else.
	chgrp dovecot "$d/users" && chmod 0640 "$d/users" || return 1
	mail_dovecot_conf "$d" "$url" >"$MAIL_DOVECOT_CONF" || return 1
	if ! p=$(doveconf -c "$MAIL_DOVECOT_CONF" -n 2>&1 >/dev/null) || [ -n "$p" ]; then
		mail_err "dovecot.conf is not clean ($MAIL_DOVECOT_CONF):"
		printf '%s\n' "$p" | sed 's/^/mail:   /' >&2
		return 1
	fi
}

# mail_dovecot_up PID: Dovecot (started as PID) has written its pid file,
# listens on 110 and 143, and made the auth socket for Postfix.
mail_dovecot_up() {
	[ -s "$MAIL_DIR/dovecot/run/master.pid" ] && [ -S "$MAIL_DOVECOT_AUTH" ] &&
	lab_listening "$LAB_MAIL" 110 && lab_listening "$LAB_MAIL" 143
}

# mail_dovecot_start [POLICY_URL]: Dovecot (dovecot -F -c MAIL_DOVECOT_CONF,
# as root) in the mail namespace, ready when mail_dovecot_up (10 s at
# most). With POLICY_URL (http://ADDR:PORT/, reachable from the mail
# namespace) its auth process reports every authentication there.
mail_dovecot_start() {
	local pid
	[ -z "$MAIL_DOVECOT_PID" ] || { mail_err "dovecot already runs ($MAIL_DOVECOT_PID)"; return 1; }
	mail_dovecot_prepare "$@" || return 1
	# Leftovers of an earlier run in this MAIL_DIR must not look ready.
	rm -f "$MAIL_DIR/dovecot/run/master.pid" "$MAIL_DOVECOT_AUTH"
	lab_spawn "$LAB_MAIL" dovecot-master dovecot -F -c "$MAIL_DOVECOT_CONF"
	pid=$LAB_SPAWNED
	lab_poll 10 eval "mail_dovecot_up || ! kill -0 $pid 2>/dev/null"
	MAIL_DOVECOT_PID=$(cat "$MAIL_DIR/dovecot/run/master.pid" 2>/dev/null)
	if ! mail_dovecot_up || ! kill -0 "${MAIL_DOVECOT_PID:-$pid}" 2>/dev/null; then
		mail_err "dovecot did not come up (pid ${MAIL_DOVECOT_PID:-none}); its output and log:"
		cat "$LAB_DIR/dovecot-master.log" "$MAIL_DOVECOT_LOG" 2>/dev/null | tail -n 20 | sed 's/^/mail:   /' >&2
		MAIL_DOVECOT_PID=$pid
		mail_dovecot_stop
		return 1
	fi
	lab_log "dovecot $MAIL_DOVECOT_PID up: $MAIL_DOVECOT_CONF"
}

# mail_dovecot_stop: SIGTERM to the master (it ends its children), and
# wait until every process of it has gone (mail_end_group): an auth process
# serving Postfix would otherwise outlive the master for a while.
mail_dovecot_stop() {
	local pid=$MAIL_DOVECOT_PID leader=0
	[ -n "$pid" ] || return 0
	MAIL_DOVECOT_PID=
	mail_is_group_leader "$pid" && leader=1
	kill -TERM "$pid" 2>/dev/null || return 0
	if [ $leader = 1 ]; then
		mail_end_group "$pid" dovecot
	else
		mail_pid_gone "$pid" 6 || kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	return 0
}

# mail_doveadm ARGS...: doveadm on our instance (e.g. log reopen).
mail_doveadm() { doveadm -c "$MAIL_DOVECOT_CONF" "$@"; }

# mail_dovecot_add_user NAME PASSWORD: one more account (Dovecot rereads
# the passwd-file when it changes).
mail_dovecot_add_user() {
	printf '%s:{PLAIN}%s\n' "$1" "$2" >>"$MAIL_DIR/dovecot/users"
}

# mail_login PROTO USER PASSWORD [DST] [SRC]: a curl login (pop3 or imap)
# from the client namespace to DST (default LAB_MAIL4), from address SRC
# (default: the client's own address, LAB_CLIENT4 or LAB_CLIENT6).
# Returns curl's status: 0 logged in, 67 login denied, 28 timeout.
# curl's output is in MAIL_DIR/curl.out.
mail_login() {
	local proto=$1 user=$2 pass=$3 dst=${4:-$LAB_MAIL4} src=${5:-} host
	case "$dst" in *:*) host="[$dst]" ;; *) host=$dst ;; esac
	[ -n "$src" ] || src=$(mail_client_addr "$dst")
	lab_client timeout 10 curl -sS -g --max-time 5 --interface "$src" \
		--user "$user:$pass" "$proto://$host/" >"$MAIL_DIR/curl.out" 2>&1
}

# mail_client_addr DST: the client's own address of DST's family (never the
# office address, which source address selection could pick for IPv6).
mail_client_addr() {
	case "$1" in *:*) echo "$LAB_CLIENT6" ;; *) echo "$LAB_CLIENT4" ;; esac
}

# --- Postfix ------------------------------------------------------------

mail_postfix_main_cf() {
	local policy=$1 sasl=$2 pol=
	[ -n "$policy" ] && pol="check_policy_service { $policy, default_action=DUNNO },"
	cat <<CONF
# relaygate lab Postfix (tests/e2e/mail.sh), instance of lab $LAB_ID
compatibility_level = 3.6
queue_directory = $MAIL_POSTFIX_QUEUE
data_directory = $MAIL_DIR/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $MAIL_POSTFIX_LOG
maillog_file_prefixes = $MAIL_DIR

myhostname = $MAIL_HOSTNAME
mydomain = $MAIL_DOMAIN
myorigin = \$mydomain
mydestination = $MAIL_DOMAIN
inet_interfaces = $(mail_addr_list)
inet_protocols = all
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP relaygate lab

# Nothing is ever delivered: every transport discards, nothing is looked
# up in the DNS (the namespace has no route to a name server anyway).
default_transport = discard
relay_transport = discard
local_transport = discard
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
biff = no

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated,
    $pol reject_unauth_destination
# A queue id exists when RCPT TO is checked (policy requests carry it).
smtpd_delay_open_until_valid_rcpt = no
CONF
	if [ -n "$policy" ] && [ "$MAIL_POSTFIX_POLICY_EOD" = 1 ]; then
		echo "smtpd_end_of_data_restrictions = check_policy_service { $policy, default_action=DUNNO }"
	fi
	if [ -n "$sasl" ]; then
		cat <<CONF

# SMTP AUTH (on submission only, see master.cf) through Dovecot's auth.
smtpd_sasl_type = dovecot
smtpd_sasl_path = $sasl
smtpd_sasl_security_options = noanonymous
CONF
	fi
	[ -n "$MAIL_POSTFIX_EXTRA" ] && printf '\n%s\n' "$MAIL_POSTFIX_EXTRA"
	return 0
}

mail_postfix_master_cf() {
	local sasl=$1
	cat <<'CONF'
# service  type  private unpriv chroot wakeup maxproc command
smtp       inet  n       -      n      -      -       smtpd
submission inet  n       -      n      -      -       smtpd
  -o syslog_name=postfix/submission
CONF
	[ -n "$sasl" ] && echo "  -o smtpd_sasl_auth_enable=yes"
	cat <<'CONF'
pickup     unix  n       -      n      60     1       pickup
cleanup    unix  n       -      n      -      0       cleanup
qmgr       unix  n       -      n      300    1       qmgr
rewrite    unix  -       -      n      -      -       trivial-rewrite
bounce     unix  -       -      n      -      0       bounce
defer      unix  -       -      n      -      0       bounce
trace      unix  -       -      n      -      0       bounce
verify     unix  -       -      n      -      1       verify
flush      unix  n       -      n      1000?  0       flush
proxymap   unix  -       -      n      -      -       proxymap
showq      unix  n       -      n      -      -       showq
error      unix  -       -      n      -      -       error
retry      unix  -       -      n      -      -       error
discard    unix  -       -      n      -      -       discard
anvil      unix  -       -      n      -      1       anvil
scache     unix  -       -      n      -      1       scache
postlog    unix-dgram n  -      n      -      1       postlogd
CONF
}

# mail_postfix_prepare [POLICY] [SASL_PATH]: Postfix's config, queue and
# data directories in MAIL_DIR/postfix, main.cf and master.cf, checked with
# postconf (which must have nothing to say). SASL_PATH: Dovecot's auth
# socket for SMTP AUTH on 587 (none: no AUTH). mail_postfix_start calls it.
mail_postfix_prepare() {
	local policy=${1:-} sasl=${2:-} p out
	mail_init || return 1
	p=$MAIL_DIR/postfix
	MAIL_POSTFIX_DIR=$p/etc
	MAIL_POSTFIX_QUEUE=$p/queue
	MAIL_POSTFIX_LOG=$MAIL_DIR/postfix.log
	mkdir -p "$MAIL_POSTFIX_DIR" "$MAIL_POSTFIX_QUEUE" "$p/data" || return 1
	chmod 0755 "$p" "$MAIL_POSTFIX_DIR" "$MAIL_POSTFIX_QUEUE"
	chown postfix "$p/data" && chmod 0700 "$p/data" || return 1
	mail_postfix_main_cf "$policy" "$sasl" >"$MAIL_POSTFIX_DIR/main.cf" &&
	mail_postfix_master_cf "$sasl" >"$MAIL_POSTFIX_DIR/master.cf" || return 1
	# Postfix rereads a file modified within the current second until it
	# is older (300 ms at a time, 1.5-2 s for a fresh one): these are
	# complete, say so.
	touch -d "@$(($(date +%s) - 2))" "$MAIL_POSTFIX_DIR/main.cf" "$MAIL_POSTFIX_DIR/master.cf"
	# postconf warns about unknown parameters and bad master.cf lines.
	if ! out=$(postconf -c "$MAIL_POSTFIX_DIR" -n 2>&1 >/dev/null &&
		   postconf -c "$MAIL_POSTFIX_DIR" -M 2>&1 >/dev/null) || [ -n "$out" ]; then
		mail_err "postconf is not happy with $MAIL_POSTFIX_DIR:"
		printf '%s\n' "$out" | sed 's/^/mail:   /' >&2
		return 1
	fi
}

# mail_postfix_start [POLICY]: Postfix in the mail namespace with its own
# config directory (MAIL_POSTFIX_DIR), queue (MAIL_POSTFIX_QUEUE) and data
# directories: postfix -c DIR check (silent), then postfix -c DIR start;
# ready when 25 and 587 listen (10 s at most). POLICY (e.g.
# unix:private/relaygate, which is MAIL_POSTFIX_QUEUE/private/relaygate, or
# inet:127.0.0.1:10040) puts check_policy_service { POLICY,
# default_action=DUNNO } into smtpd_relay_restrictions: until a server
# answers there Postfix goes on as if it said DUNNO. SMTP AUTH on 587 goes
# through Dovecot's auth socket if mail_dovecot_start ran before.
mail_postfix_start() {
	local sasl='' out
	[ -z "$MAIL_POSTFIX_PID" ] || { mail_err "postfix already runs ($MAIL_POSTFIX_PID)"; return 1; }
	[ -n "$MAIL_DOVECOT_PID" ] && [ -S "$MAIL_DOVECOT_AUTH" ] && sasl=$MAIL_DOVECOT_AUTH
	mail_postfix_prepare "${1:-}" "$sasl" || return 1
	# postfix check makes the queue's subdirectories (post-install
	# create-missing) and must have nothing to say. It runs in the mail
	# namespace (the postfix command refuses inet_interfaces it cannot
	# see) and gets a terminal from script: it prints its fatal errors
	# only to one (or to the maillog).
	out=$(mail_postfix_tty check 2>&1)
	if [ -n "$out" ]; then
		mail_err "postfix check is not happy with $MAIL_POSTFIX_DIR:"
		printf '%s\n' "$out" | sed 's/^/mail:   /' >&2
		return 1
	fi
	if ! out=$(mail_postfix_tty start 2>&1); then
		mail_err "postfix did not start:"
		printf '%s\n' "$out" | sed 's/^/mail:   /' >&2
		tail -n 10 "$MAIL_POSTFIX_LOG" 2>/dev/null | sed 's/^/mail:   /' >&2
		return 1
	fi
	# postfix start returns once the master is ready (master -w).
	MAIL_POSTFIX_PID=$(awk '{ print $1; exit }' "$MAIL_POSTFIX_QUEUE/pid/master.pid" 2>/dev/null)
	if [ -z "$MAIL_POSTFIX_PID" ] || ! kill -0 "$MAIL_POSTFIX_PID" 2>/dev/null ||
	   ! lab_wait_listen "$LAB_MAIL" 25 10 || ! lab_wait_listen "$LAB_MAIL" 587 10; then
		mail_err "postfix did not come up (master pid ${MAIL_POSTFIX_PID:-none}); its log:"
		tail -n 20 "$MAIL_POSTFIX_LOG" 2>/dev/null | sed 's/^/mail:   /' >&2
		return 1
	fi
	lab_log "postfix $MAIL_POSTFIX_PID up: $MAIL_POSTFIX_DIR"
}

# mail_postfix_tty ARGS...: mail_postfix with a terminal (script), output
# without carriage returns; the exit status is postfix's.
mail_postfix_tty() {
	local q
	printf -v q ' %q' "$@"
	ip netns exec "$LAB_MAIL" script -qec "postfix -c '$MAIL_POSTFIX_DIR'$q" /dev/null | tr -d '\r'
	return "${PIPESTATUS[0]}"
}

# mail_postfix_stop: postfix stop (SIGTERM to the master), and wait until
# every process of it has gone (mail_end_group).
mail_postfix_stop() {
	local pid=$MAIL_POSTFIX_PID
	[ -n "$MAIL_POSTFIX_DIR" ] || return 0
	[ -n "$pid" ] || pid=$(awk '{ print $1; exit }' "$MAIL_POSTFIX_QUEUE/pid/master.pid" 2>/dev/null)
	MAIL_POSTFIX_PID=
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
	if mail_is_group_leader "$pid"; then
		mail_postfix stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
		mail_end_group "$pid" postfix
	else
		mail_postfix stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null
		mail_pid_gone "$pid" 6 || kill -KILL "$pid" 2>/dev/null
	fi
	return 0
}

# mail_postfix_set NAME=VALUE...: change main.cf and reload Postfix.
mail_postfix_set() {
	postconf -c "$MAIL_POSTFIX_DIR" -e "$@" &&
	touch -d "@$(($(date +%s) - 2))" "$MAIL_POSTFIX_DIR/main.cf" &&
	mail_postfix reload >/dev/null 2>&1
}

# mail_postfix ARGS...: the postfix command on our instance, in the mail
# namespace (it refuses an inet_interfaces address it cannot see).
mail_postfix() {
	ip netns exec "$LAB_MAIL" postfix -c "$MAIL_POSTFIX_DIR" "$@"
}

# mail_swaks DST PORT SWAKS-ARGS...: swaks from the client namespace to
# DST:PORT (helo client.example, 10 s timeout), from the client's own
# address unless SWAKS-ARGS hold a --local-interface. Returns swaks' status (0
# sent; 24 a recipient refused; 28 AUTH failed); the transcript is in
# MAIL_SWAKS_OUT.
mail_swaks() {
	local dst=$1 port=$2 rc src=()
	shift 2
	case " $* " in
	*" --local-interface "* | *" -li "*) ;;
	*) src=(--local-interface "$(mail_client_addr "$dst")") ;;
	esac
	MAIL_SWAKS_OUT=$(lab_client timeout 30 swaks --server "$dst" --port "$port" "${src[@]}" \
		--helo client.example --timeout 10 "$@" 2>&1)
	rc=$?
	printf '%s\n' "$MAIL_SWAKS_OUT" >"$MAIL_DIR/swaks.out"
	return $rc
}

# mail_swaks_queue_id: the queue id Postfix gave the last swaks message.
mail_swaks_queue_id() {
	printf '%s\n' "$MAIL_SWAKS_OUT" | sed -n 's/.*250 2\.0\.0 Ok: queued as \([0-9A-Za-z]*\).*/\1/p' | tail -n 1
}

mail_down() {
	mail_postfix_stop
	mail_dovecot_stop
	[ -n "$MAIL_DIR" ] && rm -rf "$MAIL_DIR"
	MAIL_DIR='' MAIL_DOVECOT_CONF='' MAIL_DOVECOT_LOG='' MAIL_DOVECOT_AUTH=''
	MAIL_POSTFIX_DIR='' MAIL_POSTFIX_QUEUE='' MAIL_POSTFIX_LOG=''
	return 0
}

# --- self-test: bash tests/e2e/mail.sh ------------------------------------
# The configurations mail_*_prepare write, checked with doveconf and
# postconf without starting anything (no namespace, no server);
# tests/e2e/test_mail_lab.sh runs the servers for real.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	. "$(dirname "$0")/lab.sh"
	. "$(dirname "$0")/../lib.sh"
	t_need_root "mail.sh self-test"
	LAB_DIR=$(mktemp -d "/tmp/rg-mailself-$$.XXXXXX")
	t_cleanup "rm -rf '$LAB_DIR'"
	t_cleanup mail_down
	# MAIL_DIR made here: the checks below run in subshells (check), and
	# one made there would be lost to mail_down.
	mail_init || { not_ok "mail: mail_init makes MAIL_DIR"; t_done; }
	dc() { doveconf -c "$MAIL_DOVECOT_CONF" -h "$1" 2>/dev/null; }
	pc() { postconf -c "$MAIL_POSTFIX_DIR" -h "$1" 2>/dev/null; }
	want_listen="$LAB_MAIL4, $LAB_MAIL6, $LAB_MAILVPN4, $LAB_MAILVPN6"

	check "mail: mail_dovecot_prepare writes a dovecot.conf doveconf accepts silently" mail_dovecot_prepare
	mail_dovecot_prepare >/dev/null 2>&1
	check_eq "mail: Dovecot listens on every lab address of the mail host" "$want_listen" "$(dc listen)"
	check "mail: base_dir and state_dir are in MAIL_DIR ($MAIL_DIR)" \
		eval '[[ $(dc base_dir) == "$MAIL_DIR"/* && $(dc state_dir) == "$MAIL_DIR"/* ]]'
	check_eq "mail: log_path and info_log_path are MAIL_DOVECOT_LOG" \
		"$MAIL_DOVECOT_LOG $MAIL_DOVECOT_LOG" "$(dc log_path) $(dc info_log_path)"
	check_eq "mail: auth_verbose, plaintext auth without TLS, plain and login" \
		"yes no no plain login" "$(dc auth_verbose) $(dc disable_plaintext_auth) $(dc ssl) $(dc auth_mechanisms)"
	check_eq "mail: no auth policy push unless asked" "" "$(dc auth_policy_server_url)"
	check_eq "mail: the passwd-file holds alice and bob, readable by group dovecot only" \
		"alice bob root:dovecot:640" \
		"$(cut -d: -f1 "$MAIL_DIR/dovecot/users" | xargs) $(stat -c %U:%G:%a "$MAIL_DIR/dovecot/users")"
	mail_dovecot_prepare http://127.0.0.1:10040/ >/dev/null 2>&1
	check_eq "mail: mail_dovecot_prepare URL sets the auth policy push" \
		"http://127.0.0.1:10040/ yes x" \
		"$(dc auth_policy_server_url) $(dc auth_policy_report_after_auth) $(dc auth_policy_hash_nonce)"
	MAIL_DOVECOT_EXTRA="no_such_setting = 1"
	check "mail: a bad MAIL_DOVECOT_EXTRA makes mail_dovecot_prepare fail, naming it" \
		eval '! out=$(mail_dovecot_prepare 2>&1) && grep -q "no_such_setting" <<<"$out"'
	MAIL_DOVECOT_EXTRA=

	check "mail: mail_postfix_prepare writes main.cf and master.cf postconf accepts silently" mail_postfix_prepare
	mail_postfix_prepare >/dev/null 2>&1
	check_eq "mail: Postfix listens on every lab address of the mail host" "$want_listen" "$(pc inet_interfaces)"
	check_eq "mail: every transport discards; mynetworks is 127.0.0.0/8" \
		"discard discard discard 127.0.0.0/8" \
		"$(pc default_transport) $(pc relay_transport) $(pc local_transport) $(pc mynetworks)"
	check_eq "mail: without POLICY the relay restrictions have no policy service" \
		"permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" \
		"$(pc smtpd_relay_restrictions | xargs)"
	check_eq "mail: queue, data directory and maillog_file are in MAIL_DIR" \
		"$MAIL_DIR/postfix/queue $MAIL_DIR/postfix/data $MAIL_DIR/postfix.log" \
		"$(pc queue_directory) $(pc data_directory) $(pc maillog_file)"
	check_eq "mail: a queue id at RCPT (smtpd_delay_open_until_valid_rcpt = no)" no \
		"$(pc smtpd_delay_open_until_valid_rcpt)"
	check_eq "mail: smtp and submission in master.cf, no SASL without Dovecot" "smtp submission -" \
		"$(postconf -c "$MAIL_POSTFIX_DIR" -F '*/inet/service' | sed 's/.*= *//' | xargs) $(postconf -c "$MAIL_POSTFIX_DIR" -P 'submission/inet/smtpd_sasl_auth_enable' 2>/dev/null | sed 's/.*= *//' | grep . || echo -)"
	mail_postfix_prepare unix:private/relaygate "$LAB_DIR/auth" >/dev/null 2>&1
	check_eq "mail: POLICY goes before reject_unauth_destination with default_action=DUNNO" \
		"permit_mynetworks, permit_sasl_authenticated, check_policy_service { unix:private/relaygate, default_action=DUNNO }, reject_unauth_destination" \
		"$(pc smtpd_relay_restrictions | xargs)"
	check_eq "mail: with SASL_PATH, Dovecot SASL on submission only" \
		"dovecot $LAB_DIR/auth yes" \
		"$(pc smtpd_sasl_type) $(pc smtpd_sasl_path) $(postconf -c "$MAIL_POSTFIX_DIR" -P 'submission/inet/smtpd_sasl_auth_enable' | sed 's/.*= *//')"
	MAIL_POSTFIX_EXTRA="no_such_parameter = 1"
	check "mail: a bad MAIL_POSTFIX_EXTRA makes mail_postfix_prepare fail, naming it" \
		eval '! out=$(mail_postfix_prepare 2>&1) && grep -q "no_such_parameter" <<<"$out"'
	MAIL_POSTFIX_EXTRA=

	dir=$MAIL_DIR
	mail_down
	check "mail: mail_down removes MAIL_DIR" test ! -e "$dir"
	t_done
fi
