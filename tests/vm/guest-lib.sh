# SPDX-License-Identifier: MIT
# Helpers for the guest-side test scripts in tests/vm/tests/ (sourced, bash).
# Tests run as root in a guest whose sysfs is the real kernel's.

fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "# $*"; }

# broker_start BUILD_DIR [ARGS...]: pagemapd on a socket in a fresh
# directory ($run), exported as PAGEMAP_SOCKET; its pid in $broker, its log
# printed when the test exits. broker_stop: SIGTERM, and it must exit 0.
broker_start() {
	local b=$1
	shift
	run=$(mktemp -d)
	export PAGEMAP_SOCKET=$run/broker.sock
	"$b/broker/pagemapd" "$@" 2>"$run/broker.log" &
	broker=$!
	trap 'kill $broker 2>/dev/null || true; cat "$run/broker.log"' EXIT
	for _ in $(seq 100); do [[ -S $PAGEMAP_SOCKET ]] && break; sleep 0.05; done
	[[ -S $PAGEMAP_SOCKET ]] || fail "broker did not start"
}
broker_stop() {
	kill -TERM "$broker"
	wait "$broker" || fail "broker exited with $?"
}

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
