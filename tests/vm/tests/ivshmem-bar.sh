#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# Each ivshmem's 64 MiB BAR 2 can be mmapped by root through sysfs, written and
# read back through a fresh mapping: the access path a BAR memory pool uses.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

[[ -x $PM_VM_BIN/bar_rw ]] || { echo "SKIP: bar_rw not built (no cc on the host)"; exit 77; }
mapfile -t shm < <(pci_find 0x1af4 0x1110)
((${#shm[@]} == 2)) || fail "want 2 ivshmem functions, found ${#shm[@]}"
for f in "${shm[@]}"; do
	d=/sys/bus/pci/devices/$f
	size=$(stat -c %s "$d/resource2")
	((size == 64 << 20)) || fail "$f BAR2 is $size bytes, want 64 MiB"
	# No driver binds ivshmem-plain: enabling makes sure memory decoding is on.
	echo 1 >"$d/enable"
	# 8 MiB: the full 64 MiB works too but costs seconds of TCG time.
	"$PM_VM_BIN/bar_rw" "$d/resource2" $((8 << 20)) || fail "$f BAR2 read-back"
done
echo "ivshmem-bar: BAR2 of ${shm[*]} written and read back"
