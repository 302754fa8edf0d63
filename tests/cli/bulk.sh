#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Bulk loading (root): `grant add --file` and `trust add|del --file`, from a
# file and from standard input, tens of thousands of entries at a time.
# What a user sees: the counts and contents of the listings, the never-
# shorten rule, one bad line anywhere -> exit 1, one stderr line naming
# the line number, and the maps unchanged; a load that does not fit in the
# grant map (default max 262144) -> the map-full error and nothing loaded.
. "$(dirname "$0")/cli-lib.bash"
cli_setup bulk 1

check "attach v0" ctl attach v0

# gen_grants FIRST N: N grant lines; even i IPv4 100.64.x.y, odd i a /64 of
# 2001:db8:(i>>16):(i&0xffff)::1; every 3rd line a 2h TTL, every 5th a
# user u<i>, a comment and a blank line every 1000.
gen_grants() {
	awk -v first="$1" -v n="$2" 'BEGIN {
		for (i = first; i < first + n; i++) {
			if (i % 1000 == 0) { print "# block " i; print "" }
			if (i % 2 == 0) a = sprintf("100.%d.%d.%d", 64 + int(i / 65536), int(i / 256) % 256, i % 256)
			else a = sprintf("2001:db8:%x:%x::1", int(i / 65536), i % 65536)
			ttl = (i % 3 == 0) ? "2h" : "-"
			if (i % 5 == 0) print a, ttl, "u" i
			else if (ttl != "-") print a, ttl
			else print a
		}
	}'
}
# gen_prefixes FIRST N: N distinct CIDRs (IPv4 /32s and /24s, IPv6 /48s).
gen_prefixes() {
	awk -v first="$1" -v n="$2" 'BEGIN {
		for (i = first; i < first + n; i++) {
			if (i % 3 == 0) printf "2001:db8:%x::/48\n", i + 1
			else if (i % 3 == 1) printf "172.%d.%d.%d/32\n", 16 + int(i / 65536), int(i / 256) % 256, i % 256
			else printf "10.%d.%d.0/24\n", int(i / 256) % 256, i % 256
		}
	}'
}
ngrants() { ctl --json grant list | jq length; }
ntrust() { ctl --json trust list | jq length; }

# --- grants from a file and from standard input ---------------------------
gen_grants 0 20000 >"$TMP/g1"
gen_grants 20000 20000 >"$TMP/g2"
out=$(ctl grant add --file "$TMP/g1" --ttl 1h 2>&1)
check_eq "grant add --file: 20000 lines, all new" "20000 grants ($TMP/g1): 20000 new, 0 renewed" "$out"
check_eq "grant list --json holds 20000" "20000" "$(ngrants)"
out=$(ctl grant add --file - <"$TMP/g2" 2>&1)
check_eq "grant add --file - (stdin): 20000 more" "20000 grants (standard input): 20000 new, 0 renewed" "$out"
gl=$(ctl --json grant list)
jq_check "grant list --json holds all 40000, each address once" 'length == 40000 and (map(.address) | unique | length) == 40000' "$gl"
jq_check "line 'ADDR 2h uN': user and TTL from the line" \
	'map(select(.address == "100.64.0.30"))[0] | .user == "u30" and .expires_in > 7190 and .expires_in <= 7200 and .source == "cli"' "$gl"
jq_check "line 'ADDR': the --ttl default (1h), no user" \
	'map(select(.address == "100.64.0.2"))[0] | .user == "" and .expires_in > 3590 and .expires_in <= 3600' "$gl"
jq_check "stdin without --ttl: the 30m default" \
	'map(select(.address == "100.64.78.34"))[0] | .user == "" and .expires_in > 1790 and .expires_in <= 1800' "$gl"
jq_check "IPv6 lines keyed by their /64" \
	'map(select(.address == "2001:db8:0:4e21::"))[0] | .prefixlen == 64 and .user == ""' "$gl"
jq_check "'ADDR - uN': the user with the default TTL" \
	'map(select(.address == "2001:db8:0:4e25::"))[0] | .user == "u20005" and .expires_in <= 1800' "$gl"
check_eq "grant list (text): a header and 40000 rows" "40001" "$(ctl grant list | wc -l)"
check_eq "bpftool sees 40000 entries in rg_grants" "40000" "$(bpftool -j map dump pinned "$PIN/rg_grants" | jq length)"

# --- never shorten, with --file --------------------------------------------
printf '100.64.0.30 1m\n100.64.0.2 5h newuser\n2001:db8:0:4e21::77 3h\n' >"$TMP/renew"
out=$(ctl grant add --file "$TMP/renew" 2>&1)
check_eq "renewals: 0 new, 2 renewed, 1 kept (its 1m ends before the 2h it holds)" \
	"3 grants ($TMP/renew): 0 new, 2 renewed, 1 kept (they expire later already)" "$out"
gl=$(ctl --json grant list)
jq_check "a shorter TTL does not shorten, the user stays" \
	'map(select(.address == "100.64.0.30"))[0] | .user == "u30" and .expires_in > 7180' "$gl"
jq_check "a longer TTL extends, the new user replaces" \
	'map(select(.address == "100.64.0.2"))[0] | .user == "newuser" and .expires_in > 17990' "$gl"
jq_check "another address of a /64 renews that grant" \
	'(map(select(.address == "2001:db8:0:4e21::"))[0].expires_in > 10790) and length == 40000' "$gl"

# --- a bad line: nothing loaded ----------------------------------------------
before=$(snapshot)
# bad_file DESC WANT LINENO BADLINE [VERB...]: 100 good new lines with
# BADLINE in place of line LINENO; exit 1, one line naming "line N: WANT",
# nothing changed.
bad_file() {
	local desc=$1 want=$2 at=$3 badline=$4 after
	shift 4
	awk -v at="$at" -v bad="$badline" 'BEGIN { for (i = 1; i <= 100; i++) if (i == at) print bad; else printf "198.18.0.%d 1h\n", i }' >"$TMP/bad"
	expect_exit "$desc: exit 1, one line naming line $at" 1 "line $at: $want" grant add --file "$TMP/bad"
	after=$(snapshot)
	if [ "$after" = "$before" ]; then ok "$desc: nothing loaded"; else not_ok "$desc: nothing loaded"; fi
}
bad_file "a bad address on line 57" "banana: " 57 "banana 1h"
bad_file "a bad TTL on line 3" "TTL -5: " 3 "198.18.1.1 -5"
bad_file "a zero TTL on the last line" "TTL 0: must be more than 0" 100 "198.18.1.1 0"
bad_file "a CIDR on line 1" "198.18.1.0/24: give a single address, not a CIDR" 1 "198.18.1.0/24"
bad_file "four fields on line 50" "too many fields: want ADDR [TTL] [USER]" 50 "198.18.1.1 1h alice bob"
u64=$(printf 'u%.0s' {1..64})
bad_file "a user of 64 bytes on line 2" "user $u64: must be 1..63 bytes" 2 "198.18.1.1 1h $u64"
bad_file "a control character in a user on line 9" "user al?ce" 9 $'198.18.1.1 1h al\x01ce'
printf '198.18.0.1\n198.18\x00.2\n' >"$TMP/nul"
expect_exit "a NUL byte: exit 1, names line 2" 1 "line 2: holds a NUL byte" grant add --file "$TMP/nul"
expect_exit "a file that is not there: exit 1" 1 "$TMP/nope: No such file or directory" grant add --file "$TMP/nope"
expect_exit "grant add ADDR --file FILE: usage, exit 2" 2 "not both" grant add 198.18.0.1 --file "$TMP/g1"
expect_exit "trust add CIDR --file FILE: usage, exit 2" 2 "not both" trust add 10.0.0.0/8 --file "$TMP/g1"
expect_exit "grant add --file with a bad --ttl default: exit 1" 1 "TTL banana" grant add --file "$TMP/g1" --ttl banana
check_eq "after the bad files: the grants are as they were" "$before" "$(snapshot)"
out=$(printf '# nothing here\n\n' | ctl grant add --file - 2>&1)
check_eq "a file of comments loads nothing, exit 0" "0 grants (standard input): 0 new, 0 renewed" "$out"

# --- trusted subnets ---------------------------------------------------------
gen_prefixes 0 20000 >"$TMP/t1"
gen_prefixes 20000 20000 >"$TMP/t2"
out=$(ctl trust add --file "$TMP/t1" 2>&1)
check_eq "trust add --file: 20000 prefixes" "added 20000 trusted subnets ($TMP/t1)" "$out"
check "trust add --file - (stdin): 20000 more" bash -c 'nsenter --net="/run/netns/$1" "$2" --pin-dir "$3" trust add --file - <"$4"' _ "$NS" "$CTL" "$PIN" "$TMP/t2"
tl=$(ctl --json trust list)
jq_check "trust list --json holds all 40000" 'length == 40000' "$tl"
check_eq "trust list is exactly the two files" "$(cat "$TMP/t1" "$TMP/t2" | sort)" "$(jq -r '.[].cidr' <<<"$tl" | sort)"
jq_check "an IPv6 /48 with family and prefixlen" \
	'map(select(.cidr == "2001:db8:4::/48"))[0] | .family == 6 and .prefixlen == 48' "$tl"
check_eq "trust add --file again: no change" "40000" "$(ctl trust add --file "$TMP/t1" >/dev/null && ntrust)"
before=$(snapshot)
printf '10.200.0.0/16\n192.0.2.0/24\n10.0.0.1/8\n' >"$TMP/tbad"
expect_exit "trust add --file, host bits on line 3: names the line and the network" 1 \
	"line 3: 10.0.0.1/8: host bits set below the prefix (did you mean 10.0.0.0/8?)" trust add --file "$TMP/tbad"
printf '10.200.0.0/16 10.201.0.0/16\n' >"$TMP/tbad"
expect_exit "trust add --file, two CIDRs on a line" 1 "line 1: 10.201.0.0/16: one CIDR a line" trust add --file "$TMP/tbad"
{ head -n 100 "$TMP/t1"; echo 203.0.113.0/24; } >"$TMP/tdel"
expect_exit "trust del --file with one subnet not trusted" 1 "203.0.113.0/24: not a trusted subnet" trust del --file "$TMP/tdel"
check_eq "after the bad trust files: nothing changed" "$before" "$(snapshot)"
out=$(ctl trust del --file "$TMP/t1" 2>&1)
check_eq "trust del --file: 20000 removed" "removed 20000 trusted subnets ($TMP/t1)" "$out"
check_eq "what is left is exactly the stdin set" "$(sort "$TMP/t2")" "$(ctl --json trust list | jq -r '.[].cidr' | sort)"
check "trust del --file - (stdin): the rest" bash -c 'nsenter --net="/run/netns/$1" "$2" --pin-dir "$3" trust del --file - <"$4"' _ "$NS" "$CTL" "$PIN" "$TMP/t2"
check_eq "trust list empty" "[]" "$(ctl --json trust list)"

# --- a grant map too small: nothing loaded ------------------------------------
# 230000 new grants beside the 40000 there, and a renewal that would extend
# one of them: more than the 262144 the map holds.
before=$(snapshot)
{ echo "100.64.0.4 9h"; awk 'BEGIN { for (i = 0; i < 230000; i++) printf "11.%d.%d.%d\n", int(i / 65536), int(i / 256) % 256, i % 256 }'; } >"$TMP/big"
expect_exit "230000 more grants: exit 1, the map-full error" 1 "grant map full (max 262144): raise [grants] max" grant add --file "$TMP/big"
check_eq "after map full: the grants are as they were (none added, none extended)" "$before" "$(snapshot)"
gl=$(ctl --json grant list)
jq_check "the renewal in the refused file did not extend" 'map(select(.address == "100.64.0.4"))[0].expires_in <= 3600' "$gl"

# Right up to the map's size an LRU map may evict: then the load is undone.
# Either it all fits or nothing changed; never a part.
n=$((262144 - 40000 - 64))
head -n $((n + 1)) "$TMP/big" | tail -n "$n" >"$TMP/fill"
ctl grant add --file "$TMP/fill" >"$TMP/out" 2>"$TMP/err"
rc=$?
cnt=$(ngrants)
if [ "$rc" -eq 0 ] && [ "$cnt" -eq $((40000 + n)) ]; then
	ok "a load to 64 short of full: all of it is there ($cnt)"
elif [ "$rc" -eq 1 ] && grep -qF "grant map full (max 262144)" "$TMP/err" && [ "$(snapshot)" = "$before" ]; then
	ok "a load to 64 short of full: the map evicted, the load was undone"
else
	not_ok "a load to 64 short of full: all or nothing (exit $rc, $cnt grants)"
	sed 's/^/#   /' "$TMP/err" | head -3
fi
t_done
