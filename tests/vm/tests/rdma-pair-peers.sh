#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma-pair
# Node to node: guest 0's broker exports its host memory over soft-RoCE on the
# private link, guest 1's broker imports it as a:node0, and pm_remote_check
# moves seeded data there and back (RDMA WRITE and READ across the link). Then
# guest 0 cuts its link (drops everything it sends for 8 s) under a migration: it fails, the
# pagemap is revoked, data not on the peer is intact, and guest 1's broker
# reconnects by itself once the link is back. Zero copy across the link, as
# configured by default (rdma-zc-lib.sh): RDMA WRITE from the client's own
# pages, READ staged, and guest 1's own NUMA moves still move every page
# after round trips to guest 0 (rdma_numa_check). Runs in both guests; PM_ROLE 0
# exports, 1 imports and checks. The guests signal each other with busybox nc
# on the same link (port 18600: "cut now"; 18601: "done").
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"
# shellcheck source-path=SCRIPTDIR source=rdma-zc-lib.sh
source "$PM_SRCDIR/tests/vm/tests/rdma-zc-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tests/pm_remote_check && -x $b/tools/pmctl ]] ||
	{ echo "no pagemapd/pm_remote_check/pmctl in PM_BUILD_DIR='$b'"; exit 77; }
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
	timeout 300 busybox nc -l -p 18600 </dev/null >/dev/null || fail "no 'cut now' from guest 1"
	# Every packet guest 0 sends is dropped (ACKs, read responses): the
	# importer's retries run out. (eth0 down would only pause the link:
	# QEMU holds the frames until it is up again, and RC rides that out.)
	echo "rdma-pair-peers: cutting the link at $(date +%s.%N)"
	tc qdisc add dev eth0 root netem loss 100%
	sleep 8
	tc qdisc del dev eth0 root
	echo "rdma-pair-peers: link back at $(date +%s.%N)"
	timeout 300 busybox nc -l -p 18601 </dev/null >/dev/null || fail "no 'done' from guest 1"
	(($(grep -c "authenticated" "$run/a.log") >= 2)) ||
		fail "guest 1's broker did not authenticate again after the cut"
	echo "rdma-pair-peers: exported host memory to $PM_PEER_IP, before and after the cut"
	exit 0
fi
signal() { # PORT: tells guest 0, which may still be setting up its listener
	for _ in $(seq 100); do
		echo x | busybox nc -w 2 "$PM_PEER_IP" "$1" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

"$b/broker/pagemapd" --socket "$run/b.sock" --peer "a=$PM_PEER_IP:$port" \
	--peer-secret "$run/secret" -v 2>"$run/b.log" &
bpid=$!
trap 'kill $bpid 2>/dev/null || true; tail -n 20 "$run/b.log"' EXIT
for _ in $(seq 600); do grep -q "peer a: pool a:node0" "$run/b.log" && break; sleep 0.1; done
grep -q "peer a: pool a:node0" "$run/b.log" || fail "no a:node0 from $PM_PEER_IP"
PAGEMAP_SOCKET=$run/b.sock "$b/tests/pm_remote_check" a:node0 | tee "$run/check.out"
grep -q '^FAIL' "$run/check.out" && fail "pm_remote_check across the link failed"
# Written from the client's pages, read back staged; nothing left pinned.
zc=$(verbs_counter "$run/b.sock" bytes_zero_copy)
st=$(verbs_counter "$run/b.sock" bytes_staged)
((zc > 0 && st > 0)) || fail "verbs engine: $zc bytes zero copy, $st staged"
[[ $(link_pinned "$run/b.sock") == 8388608 ]] || fail "registrations left pinned at rest"
build_numa_check "$run" || fail "cannot build rdma_numa_check"
numa_check "$run/b.sock" a:node0 67108864 67108864

# --- the link is cut under a migration
mkfifo "$run/fifo"
PAGEMAP_SOCKET=$run/b.sock "$b/tests/pm_remote_check" --killed a:node0 >"$run/fifo" &
checker=$!
exec 3<"$run/fifo"
read -r -t 120 line <&3 || fail "the cut-link check did not start"
while [[ $line != started ]]; do echo "$line"; read -r -t 120 line <&3; done
echo "started at $(date +%s.%N)"
signal 18600 || fail "cannot tell guest 0 to cut the link"
cat <&3 | tee "$run/cut.out"
echo "over at $(date +%s.%N)"
wait "$checker" || fail "pm_remote_check under a cut link failed"
connections() { grep -c "peer a: connected and authenticated" "$run/b.log" || true; }
for _ in $(seq 600); do (($(connections) >= 2)) && break; sleep 0.1; done
(($(connections) >= 2)) || fail "no reconnection after the link came back"
for _ in $(seq 100); do
	[[ $(grep -c "peer a: pool a:node0" "$run/b.log") -ge 2 ]] && break
	sleep 0.1
done
PAGEMAP_SOCKET=$run/b.sock "$b/tests/pm_remote_check" a:node0 >"$run/again.out" ||
	{ cat "$run/again.out"; fail "migration after reconnection failed"; }
signal 18601 || fail "cannot tell guest 0 we are done"
# Registrations the cut left in flight went with the link: a clean exit.
kill "$bpid"
wait "$bpid" || fail "guest 1's broker exited with $? after SIGTERM"
grep "rdma registrations:" "$run/b.log" || fail "guest 1's broker did not log its registrations"
trap - EXIT
thr=$(grep '^throughput 2048' "$run/check.out" | sed 's/^throughput //')
note "rdma-pair-peers: guest 1 -> guest 0 a:node0 across the link: $thr; zero copy out, NUMA moves after round trips moved every page; link cut: $(grep -o 'failed with .*' "$run/cut.out" | head -1), reconnected"
