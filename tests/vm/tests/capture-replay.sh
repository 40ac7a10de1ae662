#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# sysfs-copy captures the live guest (what capture-sysfs does for fixtures) and
# hwloc replays the copy with the same PCI functions and NUMA nodes the live
# kernel shows: guards the copier against losing files a discoverer needs.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

command -v lstopo-no-graphics >/dev/null || { echo "SKIP: hwloc not installed"; exit 77; }
cap=/tmp/capture
"$PM_VM_BIN/sysfs-copy" "$cap"
config=$(find "$cap/sys/devices" -name config -size 4096c | wc -l)
((config > 0)) || fail "no 4096-byte PCI config copied (PCIe extended space missing)"

topo=$(lstopo-no-graphics --input "$cap" --whole-io --no-factorize --no-collapse -v) || fail "lstopo --input failed"
live=$(lspci | wc -l)
seen=$(grep -c 'busid=' <<<"$topo")
[[ $seen == "$live" ]] || fail "replay shows $seen PCI functions, live lspci $live"
nodes=$(grep -Ec '^ *NUMANode L#[0-9]+ \(' <<<"$topo")  # not the memattr lines
[[ $nodes == 2 ]] || fail "replay shows $nodes NUMA nodes, want 2"
grep -q '"eth0"' <<<"$topo" || fail "replay lost eth0"
grep -q '"nvme0n1"' <<<"$topo" || fail "replay lost nvme0n1"
echo "capture-replay: $seen PCI functions, $nodes NUMA nodes, eth0 and nvme0n1 replayed"
