#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# Removing an ivshmem function through sysfs makes it disappear from the bus
# (what the broker must survive), the other one stays, and a rescan brings it back.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

mapfile -t shm < <(pci_find 0x1af4 0x1110)
((${#shm[@]} == 2)) || fail "want 2 ivshmem functions, found ${#shm[@]}"
victim=${shm[1]} other=${shm[0]}
echo 1 >"/sys/bus/pci/devices/$victim/remove"
[[ ! -e /sys/bus/pci/devices/$victim ]] || fail "$victim still in sysfs after remove"
[[ -z $(lspci -s "$victim") ]] || fail "lspci still lists $victim"
[[ -e /sys/bus/pci/devices/$other ]] || fail "$other vanished with $victim"
((${#shm[@]} - 1 == $(pci_find 0x1af4 0x1110 | wc -l))) || fail "ivshmem count after remove"
note "$victim removed"

echo 1 >/sys/bus/pci/rescan
[[ -e /sys/bus/pci/devices/$victim ]] || fail "$victim not back after rescan"
echo "hot-remove: $victim removed and rescanned"
