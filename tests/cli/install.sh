#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# `make install` and `make uninstall` into a scratch DESTDIR: exactly the
# expected files with their modes; the unit's paths follow PREFIX and it
# passes `systemd-analyze verify`; the man pages render without warnings
# and document every config key, every relaygatectl command and option; a
# second install keeps an admin's changed config; uninstall removes all
# but the config. Builds nothing new: make runs with the OUT of run-all.
. "$(dirname "$0")/../lib.sh"

ROOT=$T_ROOT
TMP=$(mktemp -d)
t_cleanup "rm -rf '$TMP'"
HAVE_DAEMON=false
[ -f "$ROOT/user/relaygated.c" ] && HAVE_DAEMON=true
NO_DAEMON_WHY="user/relaygated.c is not written yet"

# mk ARGS...: make in the source tree with run-all's OUT, nothing inherited
# from an outer make (make check runs us).
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$ROOT" --no-print-directory OUT="$OUT" "$@"
}

# mode_is DESC FILE MODE
mode_is() {
	local m
	m=$(stat -c %a "$2" 2>/dev/null) || m=missing
	check_eq "$1" "$3" "$m"
}

# same DESC A B: the files are identical.
same() {
	if cmp -s "$2" "$3"; then ok "$1"; else not_ok "$1"; diag "$2 differs from $3 (or is missing)"; fi
}

# files_under DIR: every file and symlink below DIR, relative, sorted.
files_under() {
	(cd "$1" && find . ! -type d | sed 's|^\./||' | LC_ALL=C sort)
}

[ -x "$CTL" ] || { not_ok "relaygatectl is built ($CTL): make OUT=... first"; t_done; }

# ---------------------------------------------------------- default PREFIX
D=$TMP/root
mkdir -p "$D"
if out=$(mk install DESTDIR="$D" 2>&1); then
	ok "make install DESTDIR=... (PREFIX /usr/local)"
else
	not_ok "make install DESTDIR=... (PREFIX /usr/local)"
	printf '%s\n' "$out" | tail -20 | sed 's/^/#   /'
	t_done
fi

SB=$D/usr/local/sbin
MAN=$D/usr/local/share/man
UNIT=$D/lib/systemd/system/relaygated.service
CONF=$D/etc/relaygate/relaygate.conf

expected="etc/relaygate/relaygate.conf
lib/systemd/system/relaygated.service
usr/local/sbin/relaygatectl
$($HAVE_DAEMON && echo usr/local/sbin/relaygated)
usr/local/share/man/man5/relaygate.conf.5
usr/local/share/man/man8/relaygatectl.8
usr/local/share/man/man8/relaygated.8"
expected=$(printf '%s\n' "$expected" | sed '/^$/d' | LC_ALL=C sort)
got=$(files_under "$D")
if [ "$got" = "$expected" ]; then
	ok "installs exactly the binaries, 3 man pages, the unit and the config"
else
	not_ok "installs exactly the binaries, 3 man pages, the unit and the config"
	diff <(printf '%s\n' "$expected") <(printf '%s\n' "$got") | sed 's/^/#   /'
fi

mode_is "relaygatectl installed mode 755" "$SB/relaygatectl" 755
same "installed relaygatectl is the one built in OUT" "$CTL" "$SB/relaygatectl"
check "installed relaygatectl runs (--version)" "$SB/relaygatectl" --version
if $HAVE_DAEMON; then
	mode_is "relaygated installed mode 755" "$SB/relaygated" 755
	same "installed relaygated is the one built in OUT" "$DAEMON" "$SB/relaygated"
else
	skip "relaygated installed mode 755" "$NO_DAEMON_WHY"
	skip "installed relaygated is the one built in OUT" "$NO_DAEMON_WHY"
fi
for p in man5/relaygate.conf.5 man8/relaygated.8 man8/relaygatectl.8; do
	mode_is "$p installed mode 644" "$MAN/$p" 644
	same "$p is docs/$(basename "$p")" "$ROOT/docs/$(basename "$p")" "$MAN/$p"
done
mode_is "unit installed mode 644" "$UNIT" 644
mode_is "sample config installed mode 640 (not world-writable)" "$CONF" 640
same "installed config is etc/relaygate.conf" "$ROOT/etc/relaygate.conf" "$CONF"

# ------------------------------------------------------------------ the unit
check_eq "unit: ExecStart runs PREFIX's relaygated in the foreground" \
	"/usr/local/sbin/relaygated --foreground -c /etc/relaygate/relaygate.conf" \
	"$(sed -n 's/^ExecStart=//p' "$UNIT")"
check_eq "unit: ExecStartPre checks the config" \
	"/usr/local/sbin/relaygated --check-config -c /etc/relaygate/relaygate.conf" \
	"$(sed -n 's/^ExecStartPre=//p' "$UNIT")"
check_eq "unit: no /usr/sbin path left with PREFIX /usr/local" "0" \
	"$(grep -c '/usr/sbin/' "$UNIT")"
check_eq "unit: reload checks the config, then SIGHUP" \
	"/usr/local/sbin/relaygated --check-config -c /etc/relaygate/relaygate.conf|/bin/kill -HUP \$MAINPID" \
	"$(sed -n 's/^ExecReload=//p' "$UNIT" | paste -sd'|')"
check_eq "unit: capability bounding set" \
	"CAP_BPF CAP_PERFMON CAP_NET_ADMIN CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE" \
	"$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")"

if command -v systemd-analyze >/dev/null; then
	# verify checks that the commands exist: point them into DESTDIR.
	vdir=$TMP/verify
	mkdir -p "$vdir"
	daemon_bin=$SB/relaygated
	what="the installed relaygated"
	if ! $HAVE_DAEMON; then
		daemon_bin=$SB/relaygatectl
		what="relaygatectl standing in for relaygated ($NO_DAEMON_WHY)"
	fi
	sed "s|/usr/local/sbin/relaygated|$daemon_bin|g" "$UNIT" >"$vdir/relaygated.service"
	# Documentation= is checked with man(1): find the pages in DESTDIR.
	manopt=--man=yes
	command -v man >/dev/null || manopt=--man=no
	vout=$(MANPATH=$MAN systemd-analyze verify "$manopt" "$vdir/relaygated.service" 2>&1)
	rc=$?
	if [ $rc -eq 0 ] && [ -z "$vout" ]; then
		ok "systemd-analyze verify: no error, no warning ($what, $manopt)"
	else
		not_ok "systemd-analyze verify: no error, no warning ($what, $manopt)"
		printf '%s\n' "$vout" | sed 's/^/#   /' | head -20
	fi
	# The check itself must be able to fail.
	printf '[Service]\nExecStart=/bin/true\nNoSuchSetting=1\n' >"$vdir/rg-bad.service"
	if [ -n "$(systemd-analyze verify --man=no "$vdir/rg-bad.service" 2>&1)" ]; then
		ok "systemd-analyze verify reports an unknown setting (the check can fail)"
	else
		not_ok "systemd-analyze verify reports an unknown setting (the check can fail)"
	fi
else
	skip "systemd-analyze verify" "systemd is not installed"
	skip "systemd-analyze verify reports an unknown setting" "systemd is not installed"
fi

# ------------------------------------------------------------- man pages
# render PAGE: the page as plain text, one long line per paragraph.
render() {
	MANWIDTH=2000 MAN_KEEP_FORMATTING='' man -E ascii -l "$1" 2>/dev/null | col -bx
}
for p in man5/relaygate.conf.5 man8/relaygated.8 man8/relaygatectl.8; do
	f=$MAN/$p
	if command -v groff >/dev/null; then
		w=$(groff -man -ww -z "$f" 2>&1)
		if [ -z "$w" ]; then ok "$p: groff -ww: no warnings"; else
			not_ok "$p: groff -ww: no warnings"; printf '%s\n' "$w" | sed 's/^/#   /' | head; fi
	else
		skip "$p: groff -ww: no warnings" "groff-base is not installed"
	fi
	if command -v man >/dev/null; then
		w=$(man --warnings -E ascii -l "$f" 2>&1 >/dev/null)
		name=$(render "$f" | sed -n '/^NAME/{n;p;q}' | sed 's/^ *//')
		if [ -z "$w" ] && [ -n "$name" ]; then ok "$p: man -l renders, NAME: $name"; else
			not_ok "$p: man -l renders without warnings"; printf '%s\n' "$w" | sed 's/^/#   /' | head; fi
	else
		skip "$p: man -l renders" "man-db is not installed"
	fi
done

if command -v man >/dev/null; then
	# Every key the config parser knows is documented in its section.
	conf_txt=$(render "$MAN/man5/relaygate.conf.5")
	# section_text NAME: the rendered text of the page section titled NAME.
	section_text() {
		printf '%s\n' "$conf_txt" | awk -v h="$1" '
			/^[^ ]/ { on = ($0 == h) ; next } on'
	}
	missing=""
	n=0
	while read -r sec key; do
		n=$((n + 1))
		section_text "[$sec]" | grep -q "^ *$key = " || missing="$missing [$sec] $key"
	done < <(sed -n '/^static const struct key keys\[\]/,/^};/p' "$ROOT/user/config.c" |
		 sed -n 's/.*{ *SEC_\([A-Z]*\), *"\([a-z0-9_]*\)".*/\1 \2/p' | tr '[:upper:]' '[:lower:]')
	while read -r key; do
		n=$((n + 1))
		section_text "[source.NAME]" | grep -q "^ *$key = " || missing="$missing [source.NAME] $key"
	done < <(sed -n '/src_key_names\[SK_MAX\] = {/,/};/p' "$ROOT/user/config.c" |
		 grep -o '= "[a-z_]*"' | tr -d '="' | tr -d ' ')
	if [ "$n" -ge 25 ] && [ -z "$missing" ]; then
		ok "relaygate.conf(5) documents all $n keys of user/config.c in their sections"
	else
		not_ok "relaygate.conf(5) documents all keys of user/config.c in their sections ($n found)"
		diag "missing:$missing"
	fi

	# Every relaygatectl command and option of --help is in relaygatectl(8).
	ctl_txt=$(render "$MAN/man8/relaygatectl.8" | tr -s ' ')
	help=$("$CTL" --help)
	missing=""
	n=0
	while read -r cmd; do
		n=$((n + 1))
		printf '%s\n' "$ctl_txt" | grep -qF -- "$cmd" || missing="$missing '$cmd'"
	done < <(printf '%s\n' "$help" | sed -n 's/^  relaygatectl \([a-z-]*\( [a-z]*\)\?\).*/\1/p' |
		 sed 's/ *$//'; printf '%s\n' "$help" | grep -oE -- '--[a-z][a-z-]*|(^| )-[a-zA-Z]\b' |
		 sed 's/^ //' | sort -u)
	if [ "$n" -ge 30 ] && [ -z "$missing" ]; then
		ok "relaygatectl(8) names all $n commands and options of relaygatectl --help"
	else
		not_ok "relaygatectl(8) names all commands and options of relaygatectl --help ($n found)"
		diag "missing:$missing"
	fi

	# relaygated's options are in relaygated(8).
	d_txt=$(render "$MAN/man8/relaygated.8")
	missing=""
	for o in -c --foreground --check-config -v; do
		printf '%s\n' "$d_txt" | grep -qE -- "(^| )$o([ ,]|$)" || missing="$missing $o"
	done
	if $HAVE_DAEMON; then
		for o in $("$DAEMON" --help 2>&1 | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
			[ "$o" = --help ] || [ "$o" = --version ] && continue
			printf '%s\n' "$d_txt" | grep -qF -- "$o" || missing="$missing $o"
		done
	fi
	check_eq "relaygated(8) documents -c, --foreground, --check-config, -v$($HAVE_DAEMON && echo ' and every option of relaygated --help')" \
		"" "$missing"
else
	skip "relaygate.conf(5) documents every config key" "man-db is not installed"
	skip "relaygatectl(8) names every command" "man-db is not installed"
	skip "relaygated(8) documents the options" "man-db is not installed"
fi

if $HAVE_DAEMON; then
	check "the installed sample config passes relaygated --check-config" \
		"$SB/relaygated" --check-config -c "$CONF"
else
	skip "the installed sample config passes relaygated --check-config" "$NO_DAEMON_WHY"
fi

# ------------------------------------------- a second install keeps the config
printf '\n[grants]\n; changed by the admin\n' >>"$CONF"
chmod 600 "$CONF"
changed=$(cat "$CONF")
echo "not a man page" >"$MAN/man8/relaygated.8"
if out=$(mk install DESTDIR="$D" 2>&1); then ok "second make install"; else
	not_ok "second make install"; printf '%s\n' "$out" | tail -10 | sed 's/^/#   /'; fi
check_eq "second install keeps the admin's config" "$changed" "$(cat "$CONF")"
mode_is "second install keeps the config's mode" "$CONF" 600
if printf '%s\n' "$out" | grep -q "^kept .*relaygate.conf"; then
	ok "second install says it kept the config"
else
	not_ok "second install says it kept the config"
fi
same "second install replaces the other files (relaygated.8)" "$ROOT/docs/relaygated.8" "$MAN/man8/relaygated.8"
check_eq "second install adds no file" "$expected" "$(files_under "$D")"

# ------------------------------------------------------------------ uninstall
if out=$(mk uninstall DESTDIR="$D" 2>&1); then ok "make uninstall"; else
	not_ok "make uninstall"; printf '%s\n' "$out" | tail -10 | sed 's/^/#   /'; fi
check_eq "uninstall removes everything but the config" "etc/relaygate/relaygate.conf" \
	"$(files_under "$D")"
check_eq "uninstall keeps the admin's config as it was" "$changed" "$(cat "$CONF" 2>/dev/null)"
if out=$(mk install DESTDIR="$D" 2>&1) && out=$(mk uninstall DESTDIR="$D" 2>&1) &&
   out=$(mk uninstall DESTDIR="$D" 2>&1); then
	ok "uninstall twice is fine (nothing left to remove)"
else
	not_ok "uninstall twice is fine"; printf '%s\n' "$out" | tail -5 | sed 's/^/#   /'
fi

# ------------------------------------- PREFIX=/usr, SYSTEMDUNITDIR overridden
D2=$TMP/root2
mkdir -p "$D2"
if out=$(mk install DESTDIR="$D2" PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system 2>&1); then
	ok "make install PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system"
else
	not_ok "make install PREFIX=/usr SYSTEMDUNITDIR=/usr/lib/systemd/system"
	printf '%s\n' "$out" | tail -10 | sed 's/^/#   /'
fi
exp2=$(printf '%s\n' "$expected" | sed 's|^usr/local/|usr/|; s|^lib/systemd/|usr/lib/systemd/|' | LC_ALL=C sort)
check_eq "PREFIX and SYSTEMDUNITDIR place every file" "$exp2" "$(files_under "$D2")"
check_eq "unit: ExecStart follows PREFIX=/usr" \
	"/usr/sbin/relaygated --foreground -c /etc/relaygate/relaygate.conf" \
	"$(sed -n 's/^ExecStart=//p' "$D2/usr/lib/systemd/system/relaygated.service")"


# --------------------------------- the unit's sandbox with the real daemon
# relaygated runs as root with exactly the unit's CapabilityBoundingSet,
# NoNewPrivileges and no writable+executable memory (PR_SET_MDWE, what
# MemoryDenyWriteExecute= enforces), in a private network namespace, with a
# config that uses every privileged step: attach XDP, a policy socket in a
# directory of another user (Postfix's private/ is postfix's, mode 0700)
# given to that user, a control socket given to a group root is not in.
# Then each capability is taken away in turn: the daemon must refuse to
# start, so none of them is superfluous for this config.
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' "$ROOT/etc/relaygated.service")
# The daemon running now, if any: killed on exit (never a PID we waited for,
# which another process may have by then).
SANDBOX_PID=
kill_sandbox() { [ -z "$SANDBOX_PID" ] || kill "$SANDBOX_PID"; }
t_cleanup kill_sandbox
sandbox_section() {
	local NS="rg-$$-inst" PIN S conf log pid i line json rc cap killed
	if [ "$(id -u)" -ne 0 ]; then
		skip "relaygated runs in the unit's sandbox" "needs root"
		return
	fi
	if ! $HAVE_DAEMON; then
		skip "relaygated runs in the unit's sandbox" "$NO_DAEMON_WHY"
		return
	fi
	for c in jq nsenter ip setpriv; do
		command -v "$c" >/dev/null || { not_ok "$c is installed"; return; }
	done
	PIN=$(t_pin_dir inst)
	ip netns add "$NS" || { not_ok "ip netns add $NS"; return; }
	t_cleanup "ip netns del '$NS'"
	ip -n "$NS" link add v0 type veth peer name v1 && ip -n "$NS" link set v0 up &&
		ip -n "$NS" link set v1 up || { not_ok "veth pair in $NS"; return; }
	S=$TMP/sandbox
	mkdir -p "$S/private" "$S/run"
	chown nobody "$S/private" && chmod 0700 "$S/private"
	: >"$S/mail.log"
	conf=$S/relaygate.conf
	cat >"$conf" <<-EOF
	[gate]
	interface = v0
	pin_dir = $PIN
	[grants]
	state_file = $S/state/grants.state
	[source.mail]
	type = dovecot
	path = $S/mail.log
	[policy]
	listen = unix:$S/private/relaygate
	socket_owner = nobody
	[control]
	socket = $S/run/control.sock
	socket_group = nogroup
	[metrics]
	listen = off
	EOF
	ctl() { nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN" "$@"; }

	# MDWE wrapper: perl's prctl, inherited by the exec'd daemon.
	local mdwe=()
	if perl -e 'require "syscall.ph"; syscall(&SYS_prctl, 65, 1, 0, 0, 0) == 0 or exit 1' 2>/dev/null; then
		mdwe=(perl -e 'require "syscall.ph"; syscall(&SYS_prctl, 65, 1, 0, 0, 0) == 0 or die "PR_SET_MDWE: $!\n"; exec @ARGV or die "exec: $!\n"' --)
	fi

	# start CAPS LOG: relaygated in the background; pid in $pid.
	start() {
		local caps=-all
		for c in $1; do caps="$caps,+$(echo "${c#CAP_}" | tr '[:upper:]' '[:lower:]')"; done
		: >"$2"
		nsenter --net="/run/netns/$NS" setpriv --bounding-set="$caps" --inh-caps=-all \
			--no-new-privs -- "${mdwe[@]}" "$DAEMON" --foreground -c "$conf" 2>"$2" &
		pid=$!
		SANDBOX_PID=$pid
	}
	# wait_for LOG: 0 once "running" is logged, 1 when the daemon exited
	# (status in $rc) or after 15 s.
	wait_for() {
		for ((i = 0; i < 150; i++)); do
			grep -q "running (pid" "$1" && return 0
			if ! kill -0 "$pid" 2>/dev/null; then wait "$pid"; rc=$?; SANDBOX_PID=; return 1; fi
			sleep 0.1
		done
		rc=timeout
		return 1
	}
	reset_gate() {
		ctl detach v0 >/dev/null 2>&1
		ctl purge >/dev/null 2>&1
		rm -f "$S/private/relaygate" "$S/run/control.sock"
	}

	log=$S/daemon.log
	start "$UNIT_CAPS" "$log"
	if wait_for "$log"; then
		ok "relaygated starts with only $UNIT_CAPS, no new privileges${mdwe:+, no W+X memory}"
	else
		not_ok "relaygated starts with only $UNIT_CAPS (exit $rc)"
		sed 's/^/#   /' "$log" | tail -15
		reset_gate
		return
	fi
	[ ${#mdwe[@]} -gt 0 ] || skip "no W+X memory (MemoryDenyWriteExecute)" "perl's syscall.ph is missing"
	json=$(ctl --json status 2>&1)
	check_eq "sandboxed daemon attached the gate to v0" "v0" \
		"$(printf '%s' "$json" | jq -r '.attachments[0].interface' 2>/dev/null)"
	check_eq "policy socket in another user's 0700 dir, given to nobody, mode 660" "nobody 660" \
		"$(stat -c '%U %a' "$S/private/relaygate" 2>&1)"
	check_eq "control socket given to group nogroup, mode 660" "nogroup 660" \
		"$(stat -c '%G %a' "$S/run/control.sock" 2>&1)"
	line="Nov 29 09:45:38 pop3-login: Info: Login: user=<alice>, method=PLAIN, rip=198.18.0.7, lip=10.77.0.1, mpid=22817, session=<JJjeJ2dhutQKTQAC>"
	echo "$line" >>"$S/mail.log"
	for ((i = 0; i < 50; i++)); do
		json=$(ctl --json grant list 2>/dev/null)
		printf '%s' "$json" | jq -e 'any(.[]; .address == "198.18.0.7" and .user == "alice")' >/dev/null 2>&1 && break
		sleep 0.1
	done
	if printf '%s' "$json" | jq -e 'any(.[]; .address == "198.18.0.7" and .user == "alice")' >/dev/null 2>&1; then
		ok "a Dovecot login line becomes a grant under the sandbox (PCRE2 without JIT memory)"
	else
		not_ok "a Dovecot login line becomes a grant under the sandbox"
		diag "grants: $json"; sed 's/^/#   /' "$log" | tail -10
	fi
	check "relaygatectl event login over the control socket" \
		"$CTL" --socket "$S/run/control.sock" event login 198.18.0.8 bob
	kill -TERM "$pid"
	for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	killed=false
	if kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid"
		killed=true
	fi
	wait "$pid"
	rc=$?
	$killed && rc="still running after 10 s"
	SANDBOX_PID=
	check_eq "SIGTERM: exits 0 within 10 s" "0" "$rc"
	check_eq "after the daemon exits the gate stays attached" "v0" \
		"$(ctl --json status 2>/dev/null | jq -r '.attachments[0].interface' 2>/dev/null)"
	if grep -q "alice" "$S/state/grants.state" 2>/dev/null; then
		ok "state file written under the sandbox"
	else
		not_ok "state file written under the sandbox"
	fi
	reset_gate

	for cap in $UNIT_CAPS; do
		log=$S/without-$cap.log
		start "$(printf '%s\n' $UNIT_CAPS | grep -vx "$cap" | tr '\n' ' ')" "$log"
		if wait_for "$log"; then
			not_ok "without $cap relaygated refuses to start (it started: $cap is not needed)"
			kill -KILL "$pid"; wait "$pid"; SANDBOX_PID=
		elif [ "$rc" = timeout ]; then
			not_ok "without $cap relaygated refuses to start (no answer in 15 s)"
			kill -KILL "$pid"; wait "$pid"; SANDBOX_PID=
		else
			ok "without $cap relaygated refuses to start: $(grep -v '^ *$' "$log" | tail -1 | cut -c1-150)"
		fi
		reset_gate
	done
}
sandbox_section

t_done
