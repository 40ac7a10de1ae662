# SPDX-License-Identifier: MIT
# Helpers for the guest-side test scripts in tests/vm/tests/ (sourced, bash).
# Tests run as root in a guest whose sysfs is the real kernel's.

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "# $*"; }

# pci_find VENDOR DEVICE: BDFs of matching functions, one per line (ids as 0x1234).
pci_find() {
	local d
	for d in /sys/bus/pci/devices/*; do
		[[ $(<"$d/vendor") == "$1" && $(<"$d/device") == "$2" ]] && basename "$d"
	done
	return 0
}

# pci_parent BDF: the BDF of the bridge above it, or the host bridge directory
# name (pci0000:80) for a function on a root bus.
pci_parent() {
	basename "$(dirname "$(readlink -f "/sys/bus/pci/devices/$1")")"
}

# pci_id BDF: "vendor:device" without 0x, for messages and comparisons.
pci_id() {
	local d=/sys/bus/pci/devices/$1
	echo "$(sed s/0x// "$d/vendor"):$(sed s/0x// "$d/device")"
}
