#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Device uevents through libudev's kernel monitor (no udevd needed):
#
#   systemd/uevents_test.sh PAGEMAPD PAGEMAP_INFO TOPOLOGY HAVE_LIBUDEV
#
# The emulated topology with its ivshmem function renamed to a PCI function
# this machine has, so the kernel can speak of it: a synthetic "remove"
# uevent (written to the function's uevent file: the kernel sends the
# message and changes nothing) revokes the pool, and opens fail with ENODEV;
# a synthetic "add", as `udevadm trigger` sends, serves it again.
# Exit 77 (skip) without libudev, without root, with udevd running (its
# rules would act on the synthetic "remove" too), or with no PCI function.
set -uo pipefail

PAGEMAPD=${1:-}
INFO=${2:-}
TOPO=${3:-}
HAVE_UDEV=${4:-}
if [[ -z $PAGEMAPD || ! -x $PAGEMAPD || -z $INFO || ! -x $INFO || ! -f $TOPO ]]; then
	echo "usage: $0 PAGEMAPD PAGEMAP_INFO TOPOLOGY yes|no" >&2
	exit 2
fi
if [[ $HAVE_UDEV != yes ]]; then
	echo "SKIP: pagemapd is built without libudev"
	exit 77
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "SKIP: needs root to make the kernel send a uevent"
	exit 77
fi
if [[ -e /run/udev/control ]]; then
	echo "SKIP: udevd runs here: a synthetic remove would reach its rules too"
	exit 77
fi
OLD=0000:03:00.0
grep -q "\"bdf\": \"$OLD\"" "$TOPO" || { echo "FAIL: no $OLD in $TOPO" >&2; exit 1; }
BDF=
for d in /sys/bus/pci/devices/*; do
	b=${d##*/}
	[[ -w $d/uevent ]] && ! grep -q "\"bdf\": \"$b\"" "$TOPO" && BDF=$b
done
if [[ -z $BDF ]]; then
	echo "SKIP: no PCI function here whose uevent file can be written"
	exit 77
fi

# shellcheck source=test-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"
logged() { grep -qF "$1" "$TMP/broker.log"; }
open_dev() { PAGEMAP_SOCKET=$TMP/s.sock "$INFO" "$BDF" >"$TMP/info" 2>&1; }

sed "s/${OLD//./\\.}/$BDF/g" "$TOPO" >"$TMP/topo.json"
"$PAGEMAPD" --socket "$TMP/s.sock" --topology "$TMP/topo.json" --linger-ms 0 -v 2>"$TMP/broker.log" &
BPID=$!
wait_for 10 logged "listening on" || fail "the broker does not start: $(cat "$TMP/broker.log")"
grep -q "no uevents" "$TMP/broker.log" && fail "no uevent monitor: $(grep 'no uevents' "$TMP/broker.log")"
open_dev && ok "$BDF (emulated) opens" || fail "$BDF does not open: $(cat "$TMP/info")"

echo remove >"/sys/bus/pci/devices/$BDF/uevent"
wait_for 5 logged "$BDF removed: its pagemaps are revoked" && ok "uevent remove: $BDF revoked" ||
	fail "no revoke on a remove uevent: $(cat "$TMP/broker.log")"
if open_dev; then
	fail "$BDF opens after its removal"
else
	grep -q "No such device" "$TMP/info" && ok "an open after the removal: $(cat "$TMP/info")" ||
		fail "an open after the removal: $(cat "$TMP/info"), expected ENODEV"
fi

echo add >"/sys/bus/pci/devices/$BDF/uevent"
wait_for 5 logged "uevent: add $BDF" || fail "no add uevent seen: $(cat "$TMP/broker.log")"
wait_for 5 open_dev && ok "uevent add: $BDF served again" ||
	fail "$BDF not served after its add uevent: $(cat "$TMP/info")"

kill -TERM "$BPID"
wait "$BPID"
rc=$?
BPID=
[[ $rc -eq 0 ]] && ok "SIGTERM: exit 0" || fail "exit $rc after SIGTERM: $(tail -n5 "$TMP/broker.log")"
[[ $FAILS -eq 0 ]]
