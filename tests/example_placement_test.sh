#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# examples/client/placement.c against a real pagemapd on a temporary socket.
#
#   tests/example_placement_test.sh PLACEMENT PAGEMAPD SOURCE_ROOT
#
# Serves examples/topologies/qemu-pcie.json (emulated) and runs the example
# with the ivshmem device 0000:03:00.0, whose pool lives in the broker: the
# buffer goes there and comes back by CPU faults. Then with node0 (host
# memory, moved in the client). Each run must exit 0, say where the buffer
# was by name (0000:03:00.0/mem, node0: not a bare pagemap id) and that the
# data is intact; an unknown device must fail and be named.
set -uo pipefail

PLACEMENT=${1:-}
PAGEMAPD=${2:-}
SRC=${3:-}
for b in "$PLACEMENT" "$PAGEMAPD"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 PLACEMENT PAGEMAPD SOURCE_ROOT ('$b' is not executable)" >&2
		exit 2
	fi
done
TOPO=$SRC/examples/topologies/qemu-pcie.json
if [[ ! -f $TOPO ]]; then
	echo "usage: $0 PLACEMENT PAGEMAPD SOURCE_ROOT (no $TOPO)" >&2
	exit 2
fi

TMP=$(mktemp -d)
SOCK=$TMP/broker.sock
BROKER_PID=
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

"$PAGEMAPD" --socket "$SOCK" --topology "$TOPO" 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 200); do
	[[ -S $SOCK ]] && break
	kill -0 "$BROKER_PID" 2>/dev/null || break
	sleep 0.05
done
if [[ ! -S $SOCK ]]; then
	echo "FAIL: pagemapd did not start: $(cat "$TMP/broker.log")" >&2
	exit 1
fi

FAILS=0
# device, then the pool its pagemap names
for dev_pool in 0000:03:00.0=0000:03:00.0/mem node0=node0; do
	dev=${dev_pool%%=*} pool=${dev_pool#*=}
	if PAGEMAP_SOCKET=$SOCK "$PLACEMENT" "$dev" >"$TMP/out" 2>"$TMP/err" &&
		grep -q "^$dev: 8 MiB there and back, intact$" "$TMP/out"; then
		echo "ok: placement $dev: $(tail -n1 "$TMP/out")"
	else
		echo "FAIL: placement $dev: $(cat "$TMP/out" "$TMP/err")" >&2
		FAILS=$((FAILS + 1))
	fi
	want="resident in $pool (pagemap [0-9]*), requested $pool (pagemap [0-9]*)$"
	if grep -q -- "$want" "$TMP/out"; then
		echo "ok: placement $dev names where: $(grep -- "$want" "$TMP/out")"
	else
		echo "FAIL: placement $dev: no line '$want' in: $(cat "$TMP/out")" >&2
		FAILS=$((FAILS + 1))
	fi
done
# Without a broker the example says so and what to check.
if PAGEMAP_SOCKET=$TMP/none.sock "$PLACEMENT" node0 >"$TMP/out" 2>"$TMP/err"; then
	echo "FAIL: placement without a broker exited 0" >&2
	FAILS=$((FAILS + 1))
elif grep -q "no broker" "$TMP/err"; then
	echo "ok: no broker: $(cat "$TMP/err")"
else
	echo "FAIL: placement without a broker: $(cat "$TMP/err")" >&2
	FAILS=$((FAILS + 1))
fi
# A missing device is named, with a non-zero exit.
if PAGEMAP_SOCKET=$SOCK "$PLACEMENT" 0000:99:00.0 >"$TMP/out" 2>"$TMP/err"; then
	echo "FAIL: placement of an unknown device exited 0" >&2
	FAILS=$((FAILS + 1))
elif grep -q "0000:99:00.0" "$TMP/err"; then
	echo "ok: unknown device: $(cat "$TMP/err")"
else
	echo "FAIL: unknown device not named: $(cat "$TMP/err")" >&2
	FAILS=$((FAILS + 1))
fi
kill -0 "$BROKER_PID" 2>/dev/null || { echo "FAIL: the broker died" >&2; FAILS=$((FAILS + 1)); }
[[ $FAILS -eq 0 ]]
