#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# pmbench topo and pmbench rtt from the command line.
#
#   tests/pmbench_cli_test.sh PMBENCH PAGEMAPD SOURCE_ROOT
#
# Both answer --help; bad values are named; by default they print a summary
# for people, with --json one JSON document that jq parses, whatever the
# strings in it (a --sysfs-root path with a quote and a backslash). rtt runs
# small against a broker of its own ($PAGEMAPD) and against one on --socket.
set -uo pipefail
PMBENCH=${1:-} PAGEMAPD=${2:-} SRC=${3:-}
for b in "$PMBENCH" "$PAGEMAPD"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 PMBENCH PAGEMAPD SOURCE_ROOT ('$b' is not executable)" >&2
		exit 2
	fi
done
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
TMP=$(mktemp -d)
BROKER_PID=
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
export PAGEMAPD
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*" >&2; }
# expect_fail NAME NEEDLE CMD...: exits non-zero and stderr names NEEDLE
expect_fail() {
	local name=$1 needle=$2
	shift 2
	if "$@" >"$TMP/out" 2>"$TMP/err"; then
		bad "$name: exited 0"
	elif ! grep -qF -- "$needle" "$TMP/err"; then
		bad "$name: stderr lacks '$needle': $(cat "$TMP/err")"
	else
		ok "$name: $(head -1 "$TMP/err")"
	fi
}

for sub in topo rtt; do
	if "$PMBENCH" "$sub" --help >"$TMP/out" 2>&1 && grep -q "^Usage: pmbench $sub" "$TMP/out"; then
		ok "pmbench $sub --help"
	else
		bad "pmbench $sub --help: $(cat "$TMP/out")"
	fi
	expect_fail "$sub --samples abc" "'abc'" "$PMBENCH" "$sub" --samples abc
	expect_fail "$sub --samples 0" "'0'" "$PMBENCH" "$sub" --samples 0
	expect_fail "$sub unknown option" "'--bogus'" "$PMBENCH" "$sub" --bogus
	expect_fail "$sub missing value" "'--samples'" "$PMBENCH" "$sub" --samples
	expect_fail "$sub stray argument" "'extra'" "$PMBENCH" "$sub" extra
done
expect_fail "topo --synthetic 1" "'1'" "$PMBENCH" topo --synthetic 1
expect_fail "rtt --pin" "'sideways'" "$PMBENCH" rtt --pin sideways
expect_fail "rtt without a pagemapd" "$TMP/none" env PAGEMAPD="$TMP/none" "$PMBENCH" rtt --samples 10

# topo: a summary by default, JSON with --json, strings escaped.
fx=$SRC/tests/fixtures/qemu-pcie
if [[ -d $fx ]]; then
	odd=$TMP/'a "quoted\dir'
	cp -r "$fx" "$odd"
	if "$PMBENCH" topo --sysfs-root "$odd" --samples 1 --synthetic 64 --json >"$TMP/topo.json" &&
		jq -e --arg d "$odd" '.benchmark == "topo" and .source == $d and .pci_functions > 0 and
			(.discovery | length) == 2 and .synthetic.devices >= 64 and
			(.synthetic.stages | length) == 4' "$TMP/topo.json" >/dev/null; then
		ok "topo --json parses, the odd path intact"
	else
		bad "topo --json: $(head -c 600 "$TMP/topo.json")"
	fi
	if "$PMBENCH" topo --sysfs-root "$fx" --samples 1 --synthetic 64 >"$TMP/topo.txt" &&
		head -1 "$TMP/topo.txt" | grep -q "^pmbench topo" &&
		grep -q "topo_discover() in this process: [0-9.]* ms" "$TMP/topo.txt" &&
		! jq -e . "$TMP/topo.txt" >/dev/null 2>&1; then
		ok "topo prints a summary by default"
	else
		bad "topo summary: $(cat "$TMP/topo.txt")"
	fi
fi

# rtt: a broker of its own, then one on --socket.
if "$PMBENCH" rtt --samples 50 --json >"$TMP/rtt.json" 2>"$TMP/err" &&
	jq -e '.benchmark == "rtt" and .broker == "spawned" and (.rtt | length) == 4 and
		(.rtt[] | select(.id == "broker_nop") | .median_us > 0 and .baseline.median_us > 0) and
		.held_pagemap.refs_before == .held_pagemap.refs_after' "$TMP/rtt.json" >/dev/null; then
	ok "rtt --json (spawned broker) parses"
else
	bad "rtt --json: $(cat "$TMP/rtt.json" "$TMP/err")"
fi
SOCK=$TMP/'b"roker.sock'
"$PAGEMAPD" --socket "$SOCK" 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 200); do
	[[ -S $SOCK ]] && break
	sleep 0.05
done
if "$PMBENCH" rtt --socket "$SOCK" --samples 50 >"$TMP/rtt.txt" 2>"$TMP/err" &&
	head -1 "$TMP/rtt.txt" | grep -q "^pmbench rtt" &&
	grep -q "broker NOP: [0-9.]* us, raw Unix ping-pong [0-9.]* us = [0-9.]*x" "$TMP/rtt.txt"; then
	ok "rtt --socket prints a summary by default"
else
	bad "rtt --socket summary: $(cat "$TMP/rtt.txt" "$TMP/err" "$TMP/broker.log")"
fi
if "$PMBENCH" rtt --socket "$SOCK" --samples 50 --json >"$TMP/rtt2.json" 2>"$TMP/err" &&
	jq -e --arg s "$SOCK" '.broker == $s and .pin.mode == "none"' "$TMP/rtt2.json" >/dev/null; then
	ok "rtt --socket --json: the socket's quote escaped, pin none"
else
	bad "rtt --socket --json: $(cat "$TMP/rtt2.json" "$TMP/err")"
fi

echo "$pass passed, $fail failed"
((fail == 0))
