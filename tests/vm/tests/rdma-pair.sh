#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma-pair
# Two guests joined by a private link (QEMU socket netdev on host loopback), each
# with soft-RoCE rxe0: RDMA writes cross from guest 1 to guest 0. Runs in both
# guests; PM_ROLE 0 serves, 1 is the client.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || fail "rxe0 port not PORT_ACTIVE"
# The other guest may still be booting: wait for it on the link (busybox ping:
# iputils is not installed on our hosts).
for _ in $(seq 60); do
	busybox ping -c 1 -W 1 "$PM_PEER_IP" >/dev/null 2>&1 && break
done
busybox ping -c 3 -W 2 "$PM_PEER_IP" || fail "peer $PM_PEER_IP unreachable on the guest link"

args=(-d rxe0 -F -s 1048576 -n 20)
if [[ $PM_ROLE == 0 ]]; then
	timeout 150 ib_write_bw "${args[@]}" || fail "ib_write_bw server failed"
	echo "rdma-pair: served RDMA writes from $PM_PEER_IP"
	exit 0
fi
ok=0
for _ in $(seq 60); do
	# fails fast until the server listens
	if timeout 150 ib_write_bw "${args[@]}" "$PM_PEER_IP" >/tmp/client.log 2>&1; then
		ok=1
		break
	fi
	sleep 0.5
done
cat /tmp/client.log
((ok)) || fail "ib_write_bw client failed"
bw=$(awk '$1 == 1048576 { print $4 }' /tmp/client.log)
[[ -n $bw ]] || fail "no bandwidth line in ib_write_bw output"
echo "rdma-pair: guest 1 -> guest 0 ib_write_bw 1 MiB avg ${bw} MB/s"
