#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# The guest's PCI tree is the one profiles.sh declares: two ivshmem devices (and
# the NVMe) behind ONE switch upstream port, the NIC under the second host bridge
# (bus 0x80) reporting NUMA node 1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

lspci -tv
lspci -nn

mapfile -t shm < <(pci_find 0x1af4 0x1110)
((${#shm[@]} == 2)) || fail "want 2 ivshmem functions, found ${#shm[@]}: ${shm[*]}"

ups=()
for f in "${shm[@]}"; do
	dn=$(pci_parent "$f")
	[[ $(pci_id "$dn") == 104c:8233 ]] || fail "$f: parent $dn is $(pci_id "$dn"), not an xio3130 downstream port"
	up=$(pci_parent "$dn")
	[[ $(pci_id "$up") == 104c:8232 ]] || fail "$dn: parent $up is $(pci_id "$up"), not an x3130 upstream port"
	ups+=("$up")
done
[[ ${ups[0]} == "${ups[1]}" ]] || fail "ivshmem devices under different upstream ports: ${ups[*]}"
[[ $(pci_parent "$(pci_parent "${shm[0]}")") == "${ups[0]}" ]]
rp=$(pci_parent "${ups[0]}")
[[ $(pci_parent "$rp") == pci0000:00 ]] || fail "switch root port $rp not on host bridge 0000:00"
note "ivshmem ${shm[*]} share upstream port ${ups[0]} (root port $rp)"

mapfile -t nvme < <(pci_find 0x1b36 0x0010)
((${#nvme[@]} == 1)) || fail "want 1 NVMe controller, found ${#nvme[@]}"
[[ $(pci_parent "$(pci_parent "${nvme[0]}")") == "${ups[0]}" ]] ||
	fail "NVMe ${nvme[0]} not behind the same switch"
[[ -e /sys/bus/pci/devices/${nvme[0]}/nvme ]] || fail "nvme driver not bound to ${nvme[0]}"

mapfile -t nic < <(pci_find 0x1af4 0x1041)
((${#nic[@]} == 1)) || fail "want 1 virtio-net function, found ${#nic[@]}"
path=$(readlink -f "/sys/bus/pci/devices/${nic[0]}")
[[ $path == /sys/devices/pci0000:80/* ]] || fail "NIC ${nic[0]} not under host bridge 0000:80 ($path)"
[[ $(<"/sys/bus/pci/devices/${nic[0]}/numa_node") == 1 ]] ||
	fail "NIC numa_node $(<"/sys/bus/pci/devices/${nic[0]}/numa_node"), want 1"
[[ $(<"/sys/bus/pci/devices/${nic[0]}/local_cpulist") == 1 ]] || fail "NIC local_cpulist, want 1"
lspci -t | grep -q '\[0000:80\]' || fail "lspci -t shows no domain/bus [0000:80]"
note "NIC ${nic[0]} on pci0000:80, numa_node 1"
echo "pcie-tree: as declared"
