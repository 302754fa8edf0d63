# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Set-up shared by tests/cli/*.sh (this file is not a test: run-all only
# runs *.sh). Each test gets a private network namespace rg-<pid>-<name>
# with veth pairs, a unique pin dir, and helpers that run relaygatectl
# inside the namespace with nsenter (`ip netns exec` would hide the pins).
# shellcheck source=../lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

# cli_setup NAME NPAIRS: namespace with veth pairs v0/v1, v2/v3, ... (up).
cli_setup() {
	local name=$1 pairs=${2:-1} i
	t_need_root "CLI tests ($name)"
	if [ ! -x "$CTL" ]; then
		not_ok "relaygatectl is built ($CTL)"
		t_done
	fi
	for c in jq nsenter ip bpftool; do
		if ! command -v "$c" >/dev/null; then
			not_ok "$c is installed (scripts/install-deps)"
			t_done
		fi
	done
	TMP=$(mktemp -d)
	t_cleanup "rm -rf '$TMP'"
	t_pin_dir "$name" >/dev/null
	PIN="/sys/fs/bpf/rgtest-$$-$name"
	NS="rg-$$-$name"
	ip netns add "$NS" || { not_ok "ip netns add $NS"; t_done; }
	t_cleanup "ip netns del '$NS'"
	for ((i = 0; i < pairs; i++)); do
		ip -n "$NS" link add "v$((2 * i))" type veth peer name "v$((2 * i + 1))" &&
			ip -n "$NS" link set "v$((2 * i))" up &&
			ip -n "$NS" link set "v$((2 * i + 1))" up ||
			{ not_ok "veth pair $i in $NS"; t_done; }
	done
}

# Run in the namespace: relaygatectl with our pin dir, or any command.
ctl() { nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN" "$@"; }
inns() { nsenter --net="/run/netns/$NS" "$@"; }

# expect_exit DESC CODE WANT CMD-ARGS...: relaygatectl exits CODE with
# exactly one line on stderr, containing WANT (fixed string).
expect_exit() {
	local desc=$1 code=$2 want=$3 rc lines
	shift 3
	ctl "$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	lines=$(wc -l <"$TMP/err")
	if [ "$rc" -eq "$code" ] && [ "$lines" -eq 1 ] && grep -qF -- "$want" "$TMP/err"; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "exit $rc (want $code), $lines stderr lines (want 1 containing '$want'):"
		sed 's/^/#   /' "$TMP/err" | head -5
	fi
}

# Everything a command could change, as JSON (times left out: they tick).
snapshot() {
	ctl --json trust list
	ctl --json trust-iface list
	ctl --json ports list
	ctl --json grant list | jq -c 'map(del(.expires_in, .granted_ago))'
	ctl --json deny list | jq -c 'map(del(.expires_in))'
	ctl --json status | jq -c '.attachments'
}

# jq_check DESC FILTER JSON: jq -e FILTER holds on JSON.
jq_check() {
	if printf '%s' "$3" | jq -e "$2" >/dev/null 2>&1; then
		ok "$1"
	else
		not_ok "$1"
		diag "jq -e '$2' failed on: $(printf '%s' "$3" | head -c 600)"
	fi
}
