#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Latency from a log line's append to its map entry (issue 3's benchmark,
# target p99 <= 5 ms): a real relaygated follows a Dovecot log file, and
# bench/latency.c appends login lines to it one at a time, each timed until
# its grant is in the pinned map.
#
#   OUT=build-x bench/latency.sh            # needs root and make OUT=... all
#
# The daemon gets a pin dir of its own (/sys/fs/bpf/rglat-PID), attaches to
# no interface (no [gate] interface: maps only, no packet is judged or
# sent), a scratch directory for its log source, control socket and state
# file, and no metrics listener. Everything goes at exit, by PID and path.
#
# Environment:
#   LAT_LINES=N        lines appended (default 2000)
#   LAT_INTERVAL_US=N  pause after each grant before the next line (1000)
#   LAT_POLL_US=N      pause between map lookups (10; 0 = spin)
#   LAT_RUNS=N         runs (default 3), each with fresh maps
#
# Prints one line per run and the worst p50/p99; writes
# $OUT/bench/results/latency.tsv (run, lines, lost, p50_ms, p99_ms, max_ms)
# and the raw latencies (µs) of each run next to it. Exit 0 when every line
# got its grant and every run's p99 met the target, 1 otherwise.
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-build}
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
B=$OUT/bench
RES=$B/results
LINES=${LAT_LINES:-2000}
INTERVAL=${LAT_INTERVAL_US:-1000}
POLL=${LAT_POLL_US:-10}
RUNS=${LAT_RUNS:-3}
TARGET_P99_MS=5

say() { echo "latency: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (BPF maps)"
[ -x "$OUT/relaygated" ] && [ -f "$OUT/librelaygate.a" ] || die "$OUT/relaygated missing: make OUT=$OUT all"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || die "no bpffs at /sys/fs/bpf"
mkdir -p "$RES" || die "cannot create $RES"

W=$(mktemp -d "/tmp/rg-lat-$$.XXXXXX") || die "no scratch directory"
PIN=/sys/fs/bpf/rglat-$$
DPID=
cleanup() {
	if [ -n "$DPID" ]; then
		kill -TERM "$DPID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	rm -rf "$PIN" "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "build: $B/latency"
gcc -O2 -g -Wall -Wextra -Werror -std=gnu11 -D_GNU_SOURCE -I"$ROOT/maps" -I"$ROOT/user" -I"$OUT" \
	bench/latency.c "$OUT/librelaygate.a" -lbpf -lelf -lz -lpcre2-8 -linih -lhiredis -lmicrohttpd -lm \
	-o "$B/latency" || die "build failed"

# run K: one run with fresh maps; prints latency's result line.
run() {
	local k=$1 res
	rm -rf "$PIN" "$W/state"
	mkdir -p "$W/state" "$W/run"
	: >"$W/dovecot.log"
	cat >"$W/relaygate.conf" <<EOF
; bench/latency.sh
[gate]
pin_dir = $PIN

[grants]
ttl = 1h
state_file = $W/state/grants.state

[source.dovecot]
type = dovecot
path = $W/dovecot.log

[control]
socket = $W/run/control.sock

[metrics]
listen = off
EOF
	"$OUT/relaygated" -c "$W/relaygate.conf" --foreground >"$W/daemon-$k.log" 2>&1 </dev/null &
	DPID=$!
	for _ in $(seq 100); do
		grep -q "running (pid $DPID)" "$W/daemon-$k.log" && break
		kill -0 "$DPID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "running (pid $DPID)" "$W/daemon-$k.log" || { tail -n 20 "$W/daemon-$k.log" >&2; die "relaygated did not start"; }
	res=$("$B/latency" -p "$PIN" -l "$W/dovecot.log" -n "$LINES" -i "$INTERVAL" -w "$POLL" \
		-r "$RES/latency-raw-$k.txt")
	local rc=$?
	kill -TERM "$DPID"
	wait "$DPID" 2>/dev/null
	DPID=
	echo "$res"
	return $rc
}

say "relaygated follows a log file; $LINES lines per run, $RUNS runs, ${INTERVAL} µs between lines, lookups every ${POLL} µs"
printf 'run\tlines\tlost\tp50_ms\tp99_ms\tmax_ms\n' >"$RES/latency.tsv"
fail=0
for ((k = 1; k <= RUNS; k++)); do
	line=$(run "$k") || fail=1
	echo "run $k: $line"
	printf '%s\n' "$line" | sed -nE 's/^lines=([0-9]+) lost=([0-9]+) .*p50=([0-9.]+) .*p99=([0-9.]+) max=([0-9.]+) .*/\1\t\2\t\3\t\4\t\5/p' |
		sed "s/^/$k\t/" >>"$RES/latency.tsv"
done
read -r p50 p99 < <(awk -F'\t' 'NR > 1 { if ($4 > a) a = $4; if ($5 > b) b = $5 } END { print a + 0, b + 0 }' "$RES/latency.tsv")
verdict=$(awk -v p="$p99" -v t="$TARGET_P99_MS" 'BEGIN { print (p <= t) ? "met" : "MISSED" }')
echo "log line -> grant in the map: worst p50 $p50 ms, worst p99 $p99 ms over $RUNS runs of $LINES lines (target p99 <= $TARGET_P99_MS ms: $verdict)"
echo "results: $RES/latency.tsv"
[ "$verdict" = met ] || fail=1
exit $fail
