#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
#
# Every relaygatectl verb on real pinned maps (root): what a user sees in
# the text and --json listings, and what bpftool sees in the maps.
. "$(dirname "$0")/cli-lib.bash"
cli_setup verbs 1

# --- global options -----------------------------------------------------
check "--version prints the version and ABI" bash -c '"$1" --version | grep -q "relaygatectl .* (map ABI v[0-9]*)"' _ "$CTL"
check "--help lists every object" bash -c 'h=$("$1" --help) && for w in attach detach status purge "trust add" "trust-iface" "grant add" "deny add" "ports set" stats "event login"; do grep -qF -- "$w" <<<"$h" || exit 1; done' _ "$CTL"
check "grant --help shows its verbs" bash -c '"$1" grant --help | grep -q "grant del ADDR | --user NAME"' _ "$CTL"

# --- attach ---------------------------------------------------------------
check "attach v0 (xdp)" ctl attach v0
st=$(ctl --json status)
jq_check "status --json: v0 attached in xdp mode with a program id" \
	'.attachments | length == 1 and .[0].interface == "v0" and .[0].mode == "xdp" and .[0].prog_id > 0 and .[0].active' "$st"
prog=$(jq -r '.attachments[0].prog_id' <<<"$st")
check "the kernel runs program $prog (rg_xdp) on v0" bash -c 'nsenter --net=/run/netns/$1 ip -d link show v0 | grep -q "prog/xdp id $2 name rg_xdp"' _ "$NS" "$prog"
check "the link is pinned as link_v0" test -e "$PIN/link_v0"
check "every map is pinned by name" bash -c 'for m in rg_config rg_ports rg_tiface rg_trust4 rg_trust6 rg_grants rg_deny rg_flows rg_stats rg_events; do test -e "$1/$m" || exit 1; done' _ "$PIN"
jq_check "status --json: fresh config (ABI, /32, /64, drop)" \
	'.abi_version >= 1 and .config.ipv4_prefix == 32 and .config.ipv6_prefix == 64 and .config.reject == "drop"' "$st"
jq_check "status --json: map fill has entries and max for rg_grants" \
	'.maps.rg_grants.entries == 0 and .maps.rg_grants.max_entries == 262144' "$st"
txt=$(ctl status)
check "status (text) names v0, xdp, the ports and the counters" bash -c 'grep -q "^  v0 .*xdp" <<<"$1" && grep -q "ports: *465 587" <<<"$1" && grep -q "drop_unauth" <<<"$1" && grep -q "rg_grants" <<<"$1"' _ "$txt"

# --- ports ----------------------------------------------------------------
check_eq "ports list --json: defaults 465 and 587" "[465,587]" "$(ctl --json ports list)"
check "ports set 25,465 587" ctl ports set 25,465 587
check_eq "ports list --json after set" "[25,465,587]" "$(ctl ports list --json)"
check_eq "ports list (text): one per line" "$(printf '25\n465\n587')" "$(ctl ports list)"
check "ports set with duplicates" ctl ports set 587,465,587 465
check_eq "duplicates collapse" "[465,587]" "$(ctl --json ports list)"
check "ports set every port 1..65535" ctl ports set "$(seq -s, 1 20000)" $(seq 20001 65535)
check_eq "all 65535 ports protected" "65535 1 65535" "$(ctl --json ports list | jq -r '"\(length) \(.[0]) \(.[-1])"')"
check "ports set 465,587 (back to defaults)" ctl ports set 465,587
check_eq "ports list after reset" "[465,587]" "$(ctl --json ports list)"

# --- trust ----------------------------------------------------------------
check "trust add IPv4, IPv6 and IPv4-mapped CIDRs" ctl trust add 192.0.2.0/24 2001:db8:1::/48 ::ffff:198.51.100.0/120 10.9.8.7
tl=$(ctl --json trust list)
jq_check "trust list --json has all four, the mapped one as IPv4" \
	'map(.cidr) | sort == (["10.9.8.7/32","192.0.2.0/24","198.51.100.0/24","2001:db8:1::/48"] | sort)' "$tl"
jq_check "trust list --json gives family and prefixlen" \
	'map(select(.cidr == "2001:db8:1::/48"))[0] | .family == 6 and .prefixlen == 48' "$tl"
check_eq "trust list (text)" "$(printf '10.9.8.7/32\n192.0.2.0/24\n198.51.100.0/24\n2001:db8:1::/48')" "$(ctl trust list)"
check "trust add of an existing subnet is fine" ctl trust add 192.0.2.0/24
check "trust del two of them" ctl trust del 10.9.8.7/32 2001:db8:1::/48
check_eq "trust list after del" '["192.0.2.0/24","198.51.100.0/24"]' "$(ctl --json trust list | jq -c 'map(.cidr)')"
check "trust add /0 for both families" ctl trust add 0.0.0.0/0 ::/0
check_eq "trust list shows /0 entries" '["0.0.0.0/0","192.0.2.0/24","198.51.100.0/24","::/0"]' "$(ctl --json trust list | jq -c 'map(.cidr)')"
check "trust del everything" ctl trust del 0.0.0.0/0 ::/0 192.0.2.0/24 198.51.100.0/24
# The same subnet twice (or in its IPv4-mapped form) is one subnet.
check_eq "trust add X X ::ffff:X counts it once" "added 1 trusted subnet" \
	"$(ctl trust add 10.1.0.0/16 10.1.0.0/16 ::ffff:10.1.0.0/112)"
check_eq "trust del X X counts it once" "removed 1 trusted subnet" "$(ctl trust del 10.1.0.0/16 10.1.0.0/16)"
check_eq "trust add X Y X: two" "added 2 trusted subnets" "$(ctl trust add 10.1.0.0/16 10.2.0.0/16 10.1.0.0/16)"
check_eq "trust del Y X: two" "removed 2 trusted subnets" "$(ctl trust del 10.2.0.0/16 10.1.0.0/16)"
check_eq "trust list empty (json)" "[]" "$(ctl --json trust list)"
check_eq "trust list empty (text)" "" "$(ctl trust list)"

# --- trust-iface ----------------------------------------------------------
check "trust-iface add v1" ctl trust-iface add v1
v1idx=$(ip -n "$NS" -j link show v1 | jq '.[0].ifindex')
check_eq "trust-iface list --json" "[{\"name\":\"v1\",\"ifindex\":$v1idx}]" "$(ctl --json trust-iface list)"
check_eq "trust-iface list (text)" "v1" "$(ctl trust-iface list)"
check "trust-iface del v1" ctl trust-iface del v1
check_eq "trust-iface list empty" "[]" "$(ctl --json trust-iface list)"

# --- grant ----------------------------------------------------------------
check_eq "grant add 192.0.2.10 --user alice --ttl 2h" "granted 192.0.2.10 to alice, expires in 2h" \
	"$(ctl grant add 192.0.2.10 --user alice --ttl 2h)"
check "grant add --ttl 90s --user alice 192.0.2.11 (options first)" ctl grant add --ttl 90s --user alice 192.0.2.11
check "grant add 203.0.113.5 (default TTL, no user)" ctl grant add 203.0.113.5
check "grant add 2001:db8:1:2:aaaa::1 --user bob --ttl 1d" ctl grant add 2001:db8:1:2:aaaa::1 --user bob --ttl 1d
check "grant add ::ffff:198.51.100.9 --user carol" ctl grant add ::ffff:198.51.100.9 --user carol
gl=$(ctl --json grant list)
jq_check "grant list --json: five grants" 'length == 5' "$gl"
jq_check "grant: alice 2h, source cli" \
	'map(select(.address == "192.0.2.10"))[0] | .user == "alice" and .expires_in > 7190 and .expires_in <= 7200 and .source == "cli" and .expired == false and .prefixlen == 32' "$gl"
jq_check "grant: 90s TTL" 'map(select(.address == "192.0.2.11"))[0] | .expires_in > 80 and .expires_in <= 90' "$gl"
jq_check "grant: default TTL is 30m" 'map(select(.address == "203.0.113.5"))[0] | .expires_in > 1790 and .expires_in <= 1800 and .user == ""' "$gl"
jq_check "grant: IPv6 keyed by its /64" 'map(select(.address == "2001:db8:1:2::"))[0] | .prefixlen == 64 and .user == "bob" and .expires_in > 86390' "$gl"
jq_check "grant: IPv4-mapped stored as IPv4" 'map(select(.address == "198.51.100.9"))[0].user == "carol"' "$gl"
gt=$(ctl grant list)
check "grant list (text): header ADDRESS USER EXPIRES-IN SOURCE" bash -c 'head -1 <<<"$1" | grep -Eq "^ADDRESS +USER +EXPIRES-IN +SOURCE$"' _ "$gt"
check "grant list (text): alice's row" bash -c 'grep -Eq "^192\.0\.2\.10 +alice +(1h59m[0-9]*s?|2h) +cli$" <<<"$1"' _ "$gt"
check "grant list (text): the /64 and the default TTL" bash -c 'grep -Eq "^2001:db8:1:2::/64 +bob +" <<<"$1" && grep -Eq "^203\.0\.113\.5 +- +(29m[0-9]*s|30m) +cli$" <<<"$1"' _ "$gt"

# Never shortened: a shorter TTL keeps the expiry, a longer one extends.
out=$(ctl grant add 192.0.2.10 --ttl 1m)
check "grant add 192.0.2.10 --ttl 1m (shorter) says the expiry was kept" \
	bash -c 'grep -Eqx "kept the grant of 192\.0\.2\.10 to alice: it expires in (1h59m[0-9]*s|2h), later than 1m" <<<"$1"' _ "$out"
jq_check "the shorter TTL did not shorten alice's grant" \
	'map(select(.address == "192.0.2.10"))[0] | .expires_in > 7180 and .user == "alice"' "$(ctl --json grant list)"
check_eq "grant add 192.0.2.10 --ttl 3h (longer) renews it" "renewed 192.0.2.10 to alice, expires in 3h" \
	"$(ctl grant add 192.0.2.10 --ttl 3h)"
jq_check "the longer TTL extended it" 'map(select(.address == "192.0.2.10"))[0] | .expires_in > 10790' "$(ctl --json grant list)"
check "another privacy address of bob's /64 renews the same grant" ctl grant add 2001:db8:1:2:bbbb::2 --user bob
jq_check "still one IPv6 grant" 'map(select(.prefixlen == 64)) | length == 1' "$(ctl --json grant list)"

# bpftool sees typed fields: the user is a string, not hex.
dump=$(bpftool map dump pinned "$PIN/rg_grants" 2>&1)
check "bpftool map dump shows the user as a string field" bash -c 'grep -q "\"user\": \"alice\"" <<<"$1" && grep -q "\"expires\": [0-9]" <<<"$1"' _ "$dump"
check "bpftool map dump shows the origin enum by name" bash -c 'grep -q "RG_ORIGIN_CLI" <<<"$1"' _ "$dump"

# Revocation.
check "grant del 203.0.113.5" ctl grant del 203.0.113.5
check_eq "grant del 2001:db8:1:2::77 (any address of the /64) names the key it removed" \
	"revoked the grant of 2001:db8:1:2::/64" "$(ctl grant del 2001:db8:1:2::77)"
out=$(ctl grant del --user alice)
check "grant del --user alice says how many" bash -c 'grep -q "revoked 2 grants of alice" <<<"$1"' _ "$out"
check_eq "only carol's grant is left" '["198.51.100.9"]' "$(ctl --json grant list | jq -c 'map(.address)')"

# --- deny -----------------------------------------------------------------
check "deny add 203.0.113.66 (default TTL)" ctl deny add 203.0.113.66
check "deny add 2001:db8:bad::1 --ttl 90s" ctl deny add 2001:db8:bad::1 --ttl 90s
dl=$(ctl --json deny list)
jq_check "deny list --json: default TTL 1h, source cli" \
	'map(select(.address == "203.0.113.66"))[0] | .expires_in > 3590 and .expires_in <= 3600 and .source == "cli" and .failures == 0' "$dl"
jq_check "deny list --json: IPv6 /64 key, 90s" 'map(select(.address == "2001:db8:bad::"))[0] | .prefixlen == 64 and .expires_in <= 90' "$dl"
check "deny list (text) header and row" bash -c 'o=$("$@" deny list) && head -1 <<<"$o" | grep -Eq "^ADDRESS +EXPIRES-IN +FAILURES +SOURCE$" && grep -Eq "^203\.0\.113\.66 +(59m[0-9]*s|1h) +0 +cli$" <<<"$o"' _ nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN"
check_eq "deny del 203.0.113.66" "removed the deny entry of 203.0.113.66" "$(ctl deny del 203.0.113.66)"
check "deny add 2001:db8:bad:1::9" ctl deny add 2001:db8:bad:1::9
check_eq "deny del 2001:db8:bad:1::10 names the /64 it removed" \
	"removed the deny entry of 2001:db8:bad:1::/64" "$(ctl deny del 2001:db8:bad:1::10)"
check_eq "deny list after del" '["2001:db8:bad::"]' "$(ctl --json deny list | jq -c 'map(.address)')"

# --- stats ----------------------------------------------------------------
sj=$(ctl --json stats)
jq_check "stats --json: every reason with packets and bytes" \
	'[.pass_iface, .pass_trusted, .pass_grant, .pass_flow, .drop_denied, .drop_unauth, .drop_malformed, .pass_unprotected, .rst_sent, .events_lost] | all(.packets >= 0 and .bytes >= 0)' "$sj"
prom=$(ctl stats --prometheus)
check "stats --prometheus: a counter line for each reason" bash -c 'for r in pass_iface pass_trusted pass_grant pass_flow drop_denied drop_unauth drop_malformed pass_unprotected; do grep -Eq "^relaygate_packets_total\{reason=\"$r\"\} [0-9]+$" <<<"$1" || exit 1; done' _ "$prom"
check "stats --prometheus: HELP and TYPE for each family" bash -c 'for m in relaygate_packets_total relaygate_bytes_total relaygate_map_entries relaygate_map_max_entries; do grep -q "^# HELP $m " <<<"$1" && grep -q "^# TYPE $m " <<<"$1" || exit 1; done' _ "$prom"
check "stats --prometheus: map fill gauges" bash -c 'grep -Eq "^relaygate_map_entries\{map=\"grants\"\} 1$" <<<"$1" && grep -Eq "^relaygate_map_max_entries\{map=\"grants\"\} 262144$" <<<"$1"' _ "$prom"
check "stats --prometheus: side counters, the summary and the attachment" bash -c 'grep -Eq "^relaygate_rst_sent_total [0-9]+$" <<<"$1" &&
	grep -Eq "^relaygate_drop_events_lost_total [0-9]+$" <<<"$1" &&
	grep -Eq "^relaygate_summary_on [01]$" <<<"$1" &&
	grep -Eq "^relaygate_summary_slots\{family=\"ipv4\"\} [1-9][0-9]*$" <<<"$1" &&
	grep -Eq "^relaygate_summary_fine_bits\{family=\"ipv4\"\} [1-9][0-9]*$" <<<"$1" &&
	grep -Eq "^relaygate_summary_fast_drop [01]$" <<<"$1" &&
	grep -qx "relaygate_attached{interface=\"v0\",mode=\"xdp\"} 1" <<<"$1"' _ "$prom"
check_eq "stats --prometheus: each family's HELP once" "" "$(grep '^# HELP' <<<"$prom" | sort | uniq -d)"
check "stats --prometheus: every line is a comment or a sample" bash -c '! grep -Ev "^(# (HELP|TYPE) [a-z_]+ .+|[a-z_]+(\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\})? [0-9]+)$" <<<"$1"' _ "$prom"
check "stats (text) has a row per reason" bash -c 'o=$("$@" stats) && [ "$(grep -cE "^(pass|drop)_[a-z]+ +[0-9]+ +[0-9]+$" <<<"$o")" -eq 8 ]' _ nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN"

t0=$SECONDS
w=$(timeout 20 nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN" stats --watch 1 --count 2)
rc=$?
check_eq "stats --watch 1 --count 2 exits 0" 0 "$rc"
check_eq "stats --watch 1 --count 2 redraws twice" 2 "$(grep -c '^REASON .*PKTS/S' <<<"$w")"
check "stats --watch took about 2 s" test $((SECONDS - t0)) -le 6
wj=$(timeout 20 nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN" --json stats --watch 1 --count 2)
check_eq "stats --json --watch: one JSON object per interval" 2 "$(jq -c '.rates.drop_unauth.packets_per_sec' <<<"$wj" | wc -l)"

# SIGINT stops an unbounded watch promptly, exit 0.
nsenter --net="/run/netns/$NS" "$CTL" --pin-dir "$PIN" stats --watch 1 >"$TMP/watch" 2>&1 &
wpid=$!
t_cleanup "kill $wpid"
sleep 1.5
kill -INT "$wpid"
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$wpid" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$wpid" 2>/dev/null; then
	not_ok "stats --watch stops on SIGINT"
	kill "$wpid"
else
	wait "$wpid"
	check_eq "stats --watch stops on SIGINT with exit 0" 0 "$?"
fi

# --- event (through the daemon's control socket) --------------------------
sock="$TMP/control.sock"
expect_exit "event login without a daemon: exit 1, one line" 1 "$sock" event login 192.0.2.50 alice --socket "$sock"
if command -v socat >/dev/null; then
	# A stand-in daemon: records each request line, answers like relaygated.
	cat >"$TMP/fake-daemon" <<EOF
#!/bin/sh
read -r l
printf '%s\n' "\$l" >>"$TMP/requests"
case "\$l" in *mallory*) echo "ERR user locked" ;; *) echo OK ;; esac
EOF
	chmod +x "$TMP/fake-daemon"
	socat UNIX-LISTEN:"$sock",fork EXEC:"$TMP/fake-daemon" &
	spid=$!
	t_cleanup "kill $spid"
	for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
	check "event login 192.0.2.50 alice --service pop3 --socket PATH" "$CTL" event login 192.0.2.50 alice --service pop3 --socket "$sock"
	check "global --socket before the command works too" "$CTL" --socket "$sock" event failure ::ffff:192.0.2.51 bob
	check_eq "the daemon got both requests, address normalised" \
		"$(printf 'LOGIN 192.0.2.50 alice pop3\nFAILURE 192.0.2.51 bob')" "$(cat "$TMP/requests" 2>/dev/null)"
	expect_exit "an ERR reply: exit 1 with the daemon's reason" 1 "user locked" event login 192.0.2.52 mallory --socket "$sock"
	expect_exit "event with a bad service: exit 1" 1 "service smtpx" event login 192.0.2.52 alice --service smtpx --socket "$sock"
	expect_exit "event with a bad address: exit 1" 1 "192.0.2.300" event login 192.0.2.300 alice --socket "$sock"
	check_eq "bad events never reached the daemon" 3 "$(wc -l <"$TMP/requests")"
	kill "$spid" 2>/dev/null
else
	not_ok "socat is installed (scripts/install-deps)"
fi

# --- detach -----------------------------------------------------------------
check "detach v0" ctl detach v0
check "v0 has no XDP program any more" bash -c '! nsenter --net=/run/netns/$1 ip -d link show v0 | grep -q "prog/xdp"' _ "$NS"
check "detach leaves the maps pinned" test -e "$PIN/rg_grants"
check_eq "detach leaves the grants" '["198.51.100.9"]' "$(ctl --json grant list | jq -c 'map(.address)')"
t_done
