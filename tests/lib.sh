# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
# Shell test helpers: TAP output (see tests/run-all), process and namespace
# bookkeeping with guaranteed cleanup. Source it; call t_done at the end.
T_N=0
T_FAILED=0
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-build}
case "$OUT" in /*) ;; *) OUT="$T_ROOT/$OUT" ;; esac
CTL="$OUT/relaygatectl"
DAEMON="$OUT/relaygated"

ok()     { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); echo "not ok $T_N - $*"; T_FAILED=1; }
skip()   { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP ${2:-}"; }
diag()   { echo "# $*"; }

# check DESC CMD...: passes when CMD exits 0; shows its output otherwise.
check() {
	local desc=$1 out; shift
	if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc"; printf '%s\n' "$out" | sed 's/^/#   /' | head -20; fi
}
# check_not DESC CMD...: passes when CMD exits non-zero.
check_not() {
	local desc=$1 out; shift
	if out=$("$@" 2>&1); then not_ok "$desc"; printf '%s\n' "$out" | sed 's/^/#   /' | head -20; else ok "$desc"; fi
}
# check_eq DESC EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; diag "expected [$2] got [$3]"; fi
}

# Cleanup stack: t_cleanup "cmd" pushes, run in reverse order on exit.
T_CLEANUP=()
t_cleanup() { T_CLEANUP+=("$*"); }
t_run_cleanup() {
	local i
	for ((i = ${#T_CLEANUP[@]} - 1; i >= 0; i--)); do eval "${T_CLEANUP[$i]}" >/dev/null 2>&1 || true; done
	T_CLEANUP=()
}
trap t_run_cleanup EXIT
trap 'exit 130' INT TERM

t_need_root() {
	if [ "$(id -u)" -ne 0 ]; then skip "$1" "needs root"; t_done; fi
}
t_done() { [ "$T_N" -gt 0 ] || not_ok "no checks ran"; exit $T_FAILED; }

# A unique pin dir for this test run, removed on exit.
t_pin_dir() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	local d="/sys/fs/bpf/rgtest-$$-${1:-x}"
	mkdir -p "$d"
	t_cleanup "rm -rf '$d'"
	echo "$d"
}
