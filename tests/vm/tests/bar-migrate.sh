#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# The migration engine on real BAR memory: pagemapd serves both ivshmem BAR 2
# windows (one PCIe switch between them: PIX) and pm_bar_check moves managed
# memory host -> BAR A -> BAR B (direct, peer to peer) and back by CPU
# faults (userfaultfd on the guest's kernel), 2 MiB and 64 KiB chunks, every
# byte checked; 80 MiB into a 64 MiB BAR stops with -ENOSPC and loses
# nothing. Prints the measured throughput (TCG: indicative only).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tests/pm_bar_check ]] ||
	{ echo "no pagemapd/pm_bar_check in PM_BUILD_DIR='$b'"; exit 77; }
mapfile -t shm < <(pci_find 0x1af4 0x1110)
((${#shm[@]} == 2)) || fail "want 2 ivshmem functions, found ${shm[*]}"
a=${shm[0]} z=${shm[1]}
[[ $(pci_parent "$(pci_parent "$a")") == "$(pci_parent "$(pci_parent "$z")")" ]] ||
	fail "$a and $z are not under one switch"
# No driver binds ivshmem-plain, so memory decoding starts off: the broker
# must turn it on for the pagemap's life (else the data would read back zero).
for f in "$a" "$z"; do
	[[ $(cat "/sys/bus/pci/devices/$f/enable") == 0 ]] || fail "$f already enabled"
done

run=$(mktemp -d)
cat >"$run/conf.json" <<EOC
{
  "pools": { "bar": [ { "device": "$a", "bar": 2 }, { "device": "$z", "bar": 2 } ] }
}
EOC
export PAGEMAP_SOCKET=$run/broker.sock
"$b/broker/pagemapd" --config "$run/conf.json" -v 2>"$run/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null || true; cat "$run/broker.log"' EXIT
for _ in $(seq 100); do [[ -S $PAGEMAP_SOCKET ]] && break; sleep 0.05; done
[[ -S $PAGEMAP_SOCKET ]] || fail "broker did not start"

rc=0
"$b/tests/pm_bar_check" "$a" "$z" >"$run/check.out" 2>&1 || rc=$?
cat "$run/check.out"
((rc == 0)) || fail "pm_bar_check $a $z exited $rc (see FAIL lines above)"
kill -TERM $broker
wait $broker || fail "broker exited with $?"
trap - EXIT
note "bar-migrate: host -> $a -> $z (direct) -> host by faults, ENOSPC intact;" \
	"$(sed -n 's/^throughput //p' "$run/check.out") (TCG, indicative)"
