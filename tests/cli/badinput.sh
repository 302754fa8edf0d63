#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Bad input changes nothing (root): each bad value of SPEC exits 1 with
# exactly one stderr line naming the value, usage errors exit 2 with one
# line, and the maps (compared as --json listings) are the same afterwards.
# A command with several arguments applies all of them or none.
. "$(dirname "$0")/cli-lib.bash"
cli_setup bad 2

check "attach v0" ctl attach v0
check "seed: trust add" ctl trust add 192.0.2.0/24 2001:db8::/32
check "seed: trust-iface add v1" ctl trust-iface add v1
check "seed: grant add" ctl grant add 198.51.100.1 --user alice --ttl 1h
check "seed: deny add" ctl deny add 203.0.113.9
check "seed: ports set" ctl ports set 465,587
before=$(snapshot)
check "snapshot is complete" test "$(printf '%s\n' "$before" | wc -l)" -eq 6

# bad CMD...: exit 1, one line naming WANT, nothing changed.
bad() {
	local desc=$1 want=$2 after
	shift 2
	expect_exit "$desc: exit 1, one line naming '$want'" 1 "$want" "$@"
	after=$(snapshot)
	if [ "$after" = "$before" ]; then
		ok "$desc: nothing changed"
	else
		not_ok "$desc: nothing changed"
		diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed 's/^/#   /' | head -10
	fi
}

# usage CMD...: exit 2, one line, nothing changed.
usage() {
	local desc=$1 after
	shift
	expect_exit "$desc: exit 2, one line" 2 "relaygatectl" "$@"
	after=$(snapshot)
	if [ "$after" = "$before" ]; then ok "$desc: nothing changed"; else not_ok "$desc: nothing changed"; fi
}

# --- SPEC's list of bad inputs ----------------------------------------------
bad "trust add CIDR /33" "10.0.0.0/33" trust add 10.0.0.0/33
bad "trust add a .300 octet" "10.0.0.300" trust add 10.0.0.300/32
bad "trust add IPv6 /129" "2001:db8::/129" trust add 2001:db8::/129
bad "trust add a valid and an invalid CIDR" "10.0.0.0/33" trust add 10.0.0.0/8 10.0.0.0/33
bad "trust add an invalid then a valid CIDR" "banana" trust add banana 10.0.0.0/8
bad "trust add host bits set" "10.0.0.1/8" trust add 10.0.0.0/16 10.0.0.1/8
check "host bits: the error suggests the network" grep -qF "did you mean 10.0.0.0/8?" "$TMP/err"
bad "trust del a subnet that is not trusted (with one that is)" "172.16.0.0/12" trust del 192.0.2.0/24 172.16.0.0/12
bad "trust del a bad CIDR (with a good one)" "192.0.2.0/33" trust del 192.0.2.0/24 192.0.2.0/33
bad "grant add --ttl -5" "-5" grant add 198.51.100.2 --ttl -5
bad "grant add --ttl=-5" "-5" grant add 198.51.100.2 --ttl=-5
bad "grant add --ttl banana" "banana" grant add 198.51.100.2 --ttl banana
bad "grant add --ttl 0" "TTL 0" grant add 198.51.100.2 --ttl 0
bad "grant add --ttl 3651d" "3651d" grant add 198.51.100.2 --ttl 3651d
bad "grant add banana" "banana" grant add banana
bad "grant add a .300 octet" "198.51.100.300" grant add 198.51.100.300
bad "grant add a CIDR" "198.51.100.0/24" grant add 198.51.100.0/24
bad "grant add a user with a space" "user" grant add 198.51.100.2 --user "al ice"
bad "grant add a user of 64 bytes" "user" grant add 198.51.100.2 --user "$(printf 'u%.0s' {1..64})"
bad "grant del an address without a grant" "198.51.100.99" grant del 198.51.100.99
bad "grant del --user with no grants" "nobody" grant del --user nobody
bad "deny add --ttl -5" "-5" deny add 203.0.113.10 --ttl -5
bad "deny add banana" "banana" deny add banana
bad "deny del an address not denied" "203.0.113.77" deny del 203.0.113.77
bad "trust-iface add an unknown interface" "nosuch0" trust-iface add nosuch0
bad "trust-iface add a known and an unknown interface" "nosuch0" trust-iface add v2 nosuch0
bad "trust-iface del an interface that is not trusted" "v2" trust-iface del v2
bad "ports set 0" "port 0" ports set 0
bad "ports set 70000" "port 70000" ports set 70000
bad "ports set 25,70000 (one good, one bad)" "port 70000" ports set 25,70000
bad "ports set 25 0 (two arguments, one bad)" "port 0" ports set 25 0
bad "ports set abc" "port abc" ports set abc
bad "ports set 465,,587" "465,,587" ports set 465,,587
bad "attach an unknown interface" "nosuch0" attach nosuch0
bad "attach --mode bogus" "bogus" attach v2 --mode bogus
bad "attach --ports 0" "port 0" attach v2 --ports 0
bad "attach --reject bogus" "bogus" attach v2 --reject bogus
bad "attach --ports 70000" "port 70000" attach v2 --ports 465,70000
bad "attach an interface already attached" "already attached" attach v0
bad "detach an unknown interface" "nosuch0" detach nosuch0
check_eq "... the line names the command, like every other error" \
	"relaygatectl: detach: interface nosuch0: no such interface" "$(cat "$TMP/err")"
bad "detach an interface that is not attached" "v2" detach v2
check "... named once (not 'detach: detach v2')" grep -q "^relaygatectl: detach v2: not attached" "$TMP/err"
bad "purge while attached" "detach v0" purge
bad "stats --watch 0" "--watch 0" stats --watch 0
bad "stats --watch -5" "-5" stats --watch -5
bad "stats --watch 2h (too long)" "2h" stats --watch 2h
bad "stats --count banana" "banana" stats --watch 1 --count banana
# A value with a newline is shown on one line.
bad "trust add with an embedded newline" "10.0.0.0?/8" trust add $'10.0.0.0\n/8'
bad "an over-long argument is cut, still one line" "..." trust add "$(printf '1%.0s' {1..300})"

# --- usage errors -------------------------------------------------------------
usage "no command" --json
usage "unknown command" frobnicate
usage "unknown global option" --bogus trust list
usage "global option without its value" --pin-dir
usage "missing verb" trust
usage "unknown verb" trust frob
usage "missing CIDR" trust add
usage "missing ADDR" grant add
usage "unknown option of a verb" grant add 198.51.100.2 --bogus
usage "option without its value" grant add 198.51.100.2 --ttl
usage "two addresses to grant add" grant add 198.51.100.2 198.51.100.3
usage "grant del with ADDR and --user" grant del 198.51.100.1 --user alice
usage "grant del with neither" grant del
usage "listing with an argument" trust list extra
usage "--prometheus with --watch" stats --prometheus --watch 1
usage "--count without --watch" stats --count 2
usage "event without USER" event login 192.0.2.1
# An option with a value given twice: which one would count?
usage "grant add --ttl twice" grant add 198.51.100.2 --ttl 1h --ttl 2h
check "... says which option" grep -qF "grant add: option --ttl given twice" "$TMP/err"
usage "grant add --ttl=1h --ttl 1h" grant add 198.51.100.2 --ttl=1h --ttl 1h
usage "grant add --user twice" grant add 198.51.100.2 --user alice --user bob
check "... says which option" grep -qF "grant add: option --user given twice" "$TMP/err"
usage "grant add --file twice" grant add --file /dev/null --file /dev/null
usage "grant del --user twice" grant del --user alice --user alice
usage "deny add --ttl twice" deny add 203.0.113.10 --ttl 1h --ttl 2h
usage "event login --service twice" event login 192.0.2.1 bob --service pop3 --service imap
usage "attach without IFACE" attach
check_eq "v2 was never attached" "" "$(ls "$PIN" | grep -E '^(link|tc|tcq)_v2$')"

# The seeded state is all still there.
check_eq "grants intact" '["198.51.100.1"]' "$(ctl --json grant list | jq -c 'map(.address)')"
check_eq "trusted subnets intact" '["192.0.2.0/24","2001:db8::/32"]' "$(ctl --json trust list | jq -c 'map(.cidr)')"
t_done
