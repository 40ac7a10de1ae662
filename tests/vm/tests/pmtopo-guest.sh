#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma
# pmtopo on a real kernel: the two ivshmem devices behind one switch are PIX,
# each of them and the NIC on the second host bridge (NUMA node 1) are SYS,
# the soft-RoCE device rides on the NIC, and the JSON lists every function
# lspci lists. Needs the project's build dir (PM_BUILD_DIR); skips without.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

pmtopo=${PM_BUILD_DIR:-}/tools/pmtopo
[[ -x $pmtopo ]] || { echo "no pmtopo in PM_BUILD_DIR='${PM_BUILD_DIR:-}'"; exit 77; }

"$pmtopo"
"$pmtopo" --tree
mapfile -t shm < <(pci_find 0x1af4 0x1110)
mapfile -t nic < <(pci_find 0x1af4 0x1041)
((${#shm[@]} == 2 && ${#nic[@]} == 1)) || fail "want 2 ivshmem and 1 NIC, found ${shm[*]} / ${nic[*]}"

cls=$("$pmtopo" --pair "${shm[0]}" "${shm[1]}" | head -1)
[[ $cls == PIX ]] || fail "ivshmem pair is '$cls', not PIX"
for f in "${shm[@]}"; do
	cls=$("$pmtopo" --pair "$f" "${nic[0]}" | head -1)
	[[ $cls == SYS ]] || fail "$f to the NIC is '$cls', not SYS"
done
cls=$("$pmtopo" --pair rxe0 eth0 | head -1)
[[ $cls == X ]] || fail "rxe0 and eth0 are '$cls', not the same function (X)"
"$pmtopo" --pair "${shm[0]}" "${shm[1]}"

"$pmtopo" --json >"$PM_OUT_DIR/pmtopo.json"
jq -r '.pci[].bdf' "$PM_OUT_DIR/pmtopo.json" | sort >"$PM_OUT_DIR/ours"
lspci -D -n | awk '{print $1}' | sort >"$PM_OUT_DIR/lspci"
diff -u "$PM_OUT_DIR/lspci" "$PM_OUT_DIR/ours" || fail "pmtopo's functions differ from lspci's"
[[ $(jq '.numa | length' "$PM_OUT_DIR/pmtopo.json") == 2 ]] || fail "want 2 NUMA nodes"
# As root the PCIe capability is readable: port types come from it, not from the tree's shape.
[[ $(jq -r --arg b "${shm[0]}" '.pci[] | select(.bdf == $b) | .parent' "$PM_OUT_DIR/pmtopo.json") != null ]]
n=$(jq '[.pci[] | select(.port_from_caps)] | length' "$PM_OUT_DIR/pmtopo.json")
((n >= 4)) || fail "only $n port types read from capabilities"
note "pmtopo: PIX within the switch, SYS to the NIC, $(wc -l <"$PM_OUT_DIR/ours") functions as lspci"
