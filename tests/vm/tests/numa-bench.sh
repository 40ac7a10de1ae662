#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: numa2
# pmbench migrate between the guest's two nodes: pm_migrate of 16 MiB of
# managed memory next to move_pages(2) of a plain buffer of the same size, in
# both directions. Checked: each direction has one result, verified, with a
# move_pages baseline and a ratio, and nothing failed. NUMA balancing scans as
# often as it can meanwhile: a 6.1 kernel's move_pages() finds no page where
# the scanner left a PROT_NONE hinting PTE (-ENOENT), which is how the
# baseline used to fail; it must fail here first. No threshold on the ratio
# (a timed test under TCG is no performance target): it is printed as a note.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tools/pmbench ]] ||
	{ echo "no pagemapd/pmbench in PM_BUILD_DIR='$b'"; exit 77; }
command -v jq >/dev/null || { echo "no jq"; exit 77; }

# Scan from the first second on, every 100 ms (the defaults: after 1 s, then
# at most once a second), so that a buffer within the scanner's reach is
# reached during the run. The knobs are in debugfs since 5.13.
knobs=/sys/kernel/debug/sched/numa_balancing
[[ -d $knobs ]] || mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
balancing=$(cat /proc/sys/kernel/numa_balancing 2>/dev/null || echo 0)
if [[ $balancing != 0 && -w $knobs/scan_delay_ms ]]; then
	echo 0 >"$knobs/scan_delay_ms"
	echo 100 >"$knobs/scan_period_min_ms"
	balancing="$balancing, scanning every 100 ms"
fi
updates() { awk '$1 == "numa_pte_updates" { print $2 }' /proc/vmstat; }
before=$(updates)

broker_start "$b"

# --pair measures one direction each: two of them for both.
"$b/tools/pmbench" migrate --json --pair node0:node1 --pair node1:node0 --size 16M \
	--samples 10 --chunk-shift 21 >"$run/bench.json" 2>"$run/bench.err" || {
	cat "$run/bench.err"
	jq -c '.errors' "$run/bench.json" || true
	fail "pmbench migrate failed"
}
cat "$run/bench.err"
jq -e '.errors == []' "$run/bench.json" >/dev/null || fail "errors: $(jq -c .errors "$run/bench.json")"
for pair in node0:node1 node1:node0; do
	# shellcheck disable=SC2016 # jq's variables
	n=$(jq --arg s "${pair%:*}" --arg d "${pair#*:}" '[.pairs[] | select(.src == $s and
		.dst == $d and .verified == true and .baseline.kind == "move_pages" and
		(.baseline.median_gbps | type) == "number" and (.ratio | type) == "number")] |
		length' "$run/bench.json")
	[[ $n == 1 ]] || fail "$pair: want one verified result with a move_pages baseline" \
		"and a ratio, have $n: $(jq -c .pairs "$run/bench.json")"
done
ratios=$(jq -r '[.pairs[] | "\(.src) -> \(.dst): \(.median_gbps) GB/s, move_pages \(.baseline.median_gbps) GB/s = \(.ratio)x"] | join("; ")' \
	"$run/bench.json")
echo "pmbench migrate: $ratios"

broker_stop
trap - EXIT
note "numa-bench: 16 MiB, 2 MiB chunks, NUMA balancing $balancing ($(($(updates) - before)) PTEs marked): $ratios"
