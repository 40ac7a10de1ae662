#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma-pair
# Node to node: guest 0's broker exports its host memory over soft-RoCE on the
# private link, guest 1's broker imports it as a:node0, and pm_remote_check
# moves seeded data there and back (RDMA WRITE and READ across the link). Runs
# in both guests; PM_ROLE 0 exports, 1 imports and checks.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tests/pm_remote_check ]] ||
	{ echo "no pagemapd/pm_remote_check in PM_BUILD_DIR='$b'"; exit 77; }
ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || fail "rxe0 port not PORT_ACTIVE"
for _ in $(seq 60); do
	busybox ping -c 1 -W 1 "$PM_PEER_IP" >/dev/null 2>&1 && break
done

run=$(mktemp -d)
umask 077
# Both guests need the same secret and share nothing writable: a fixed one,
# good enough on a link that exists only between these two guests.
echo "pagemap rdma-pair-peers test secret" >"$run/secret"
port=18515

if [[ $PM_ROLE == 0 ]]; then
	"$b/broker/pagemapd" --socket "$run/a.sock" --rdma-listen "$PM_GUEST_IP:$port" \
		--peer-secret "$run/secret" -v 2>"$run/a.log" &
	a=$!
	trap 'kill $a 2>/dev/null || true; cat "$run/a.log"' EXIT
	# Serve until the importer has connected and gone again.
	for _ in $(seq 1800); do
		grep -q "authenticated" "$run/a.log" && grep -q ": disconnected" "$run/a.log" && break
		sleep 0.1
	done
	grep -q "authenticated" "$run/a.log" || fail "guest 1's broker never authenticated"
	echo "rdma-pair-peers: exported host memory to $PM_PEER_IP"
	exit 0
fi

"$b/broker/pagemapd" --socket "$run/b.sock" --peer "a=$PM_PEER_IP:$port" \
	--peer-secret "$run/secret" -v 2>"$run/b.log" &
bpid=$!
trap 'kill $bpid 2>/dev/null || true; tail -n 20 "$run/b.log"' EXIT
for _ in $(seq 600); do grep -q "peer a: pool a:node0" "$run/b.log" && break; sleep 0.1; done
grep -q "peer a: pool a:node0" "$run/b.log" || fail "no a:node0 from $PM_PEER_IP"
PAGEMAP_SOCKET=$run/b.sock "$b/tests/pm_remote_check" a:node0 | tee "$run/check.out"
grep -q '^FAIL' "$run/check.out" && fail "pm_remote_check across the link failed"
thr=$(grep '^throughput 2048' "$run/check.out" | sed 's/^throughput //')
note "rdma-pair-peers: guest 1 -> guest 0 a:node0 across the link: $thr"
