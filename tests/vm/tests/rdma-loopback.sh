#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma
# Soft-RoCE rxe0 on the guest NIC is ACTIVE and real libibverbs traffic flows:
# ib_write_bw from the guest to its own address (never leaves the guest).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

ibv_devinfo -d rxe0
ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || fail "rxe0 port not PORT_ACTIVE"
ibv_devinfo -d rxe0 | grep -q 'link_layer:.*Ethernet' || fail "rxe0 link layer not Ethernet"
[[ $(</sys/class/infiniband/rxe0/parent) == eth0 ]] || fail "rxe0 parent is not eth0"

# Server in the background; 1 MiB writes, few iterations: TCG moves ~50 MB/s.
timeout 90 ib_write_bw -d rxe0 -F -s 1048576 -n 50 >/tmp/server.log 2>&1 &
srv=$!
for _ in $(seq 50); do
	# the client fails fast while the server is not listening yet
	if timeout 90 ib_write_bw -d rxe0 -F -s 1048576 -n 50 "$PM_GUEST_IP" >/tmp/client.log 2>&1; then
		ok=1
		break
	fi
	ok=0
	sleep 0.3
done
wait "$srv" || { cat /tmp/server.log; fail "ib_write_bw server failed"; }
cat /tmp/client.log
((ok)) || fail "ib_write_bw client failed"
# result row: bytes iterations peak avg msg-rate
bw=$(awk '$1 == 1048576 { print $4 }' /tmp/client.log)
[[ -n $bw ]] || fail "no bandwidth line in ib_write_bw output"
echo "rdma-loopback: rxe0 PORT_ACTIVE, ib_write_bw 1 MiB avg ${bw} MB/s"
