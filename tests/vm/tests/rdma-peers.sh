#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma
# Two brokers in one guest, peered over soft-RoCE rxe0 (loopback: the traffic
# never leaves the guest): broker a exports its host nodes, broker b imports
# them as pagemaps a:nodeN. Checked: data to a:node0 and back by CPU faults
# (RDMA WRITE and READ), ENOSPC past the exported arena, a wrong secret
# refused, the pinned-bytes cap honoured, a peer killed mid-migration (the
# migration fails, the pagemap is revoked, data not on the peer intact) and
# the importer reconnecting by itself when the peer comes back.
# Zero copy, as configured by default (rdma-zc-lib.sh): RDMA WRITE from the
# client's own pages (the verbs engine's zero-copy bytes), READ staged,
# pmbench rdma saying so per direction; no registration left pinned between
# transfers; and after round trips to the peer the client's own NUMA moves
# still move every page (rdma_numa_check). rdma-zero-copy.sh has the rest.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"
# shellcheck source-path=SCRIPTDIR source=rdma-zc-lib.sh
source "$PM_SRCDIR/tests/vm/tests/rdma-zc-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tests/pm_remote_check && -x $b/tools/pmbench ]] ||
	{ echo "no pagemapd/pm_remote_check/pmbench in PM_BUILD_DIR='$b'"; exit 77; }
ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || fail "rxe0 not active"

run=$(mktemp -d)
umask 077
head -c 32 /dev/urandom | base64 >"$run/secret"
head -c 32 /dev/urandom | base64 >"$run/wrong"
cat >"$run/a.json" <<EOC
{ "rdma": { "export_bytes": 67108864, "max_pinned_bytes": 83886080 } }
EOC
addr=$PM_GUEST_IP:18515
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; tail -n 30 "$run"/*.log' EXIT

start_a() {
	"$b/broker/pagemapd" --socket "$run/a.sock" --config "$run/a.json" --rdma-listen "$addr" \
		--peer-secret "$run/secret" -v 2>>"$run/a.log" &
	a=$!
	pids+=("$a")
}
wait_log() { # FILE PATTERN SECONDS
	for _ in $(seq $(($3 * 10))); do grep -q -- "$2" "$1" && return 0; sleep 0.1; done
	return 1
}

start_a
wait_log "$run/a.log" "exporting host memory to peers" 10 || fail "broker a did not listen"
"$b/broker/pagemapd" --socket "$run/b.sock" --peer "a=$addr" --peer-secret "$run/secret" -v \
	2>"$run/b.log" &
bpid=$!
pids+=("$bpid")
wait_log "$run/b.log" "peer a: connected and authenticated" 20 || fail "b did not connect to a"
grep -q "peer a: pool a:node0" "$run/b.log" || fail "b has no pool a:node0"
# 64 MiB per node and an 80 MiB cap: node0 fits, node1 does not.
if grep -q "node1" /sys/devices/system/node/possible 2>/dev/null ||
	[[ -d /sys/devices/system/node/node1 ]]; then
	grep -q "exporting 1 of 2 host nodes: .*max_pinned_bytes" "$run/a.log" ||
		fail "the pinned-bytes cap did not stop the second arena"
	grep -q "pool a:node1" "$run/b.log" && fail "a:node1 exported beyond the cap"
fi

# pmctl peers on both sides: the link, its device and the port's rate.
"$b/tools/pmctl" --socket "$run/b.sock" peers
"$b/tools/pmctl" --socket "$run/a.sock" peers
pj=$("$b/tools/pmctl" --socket "$run/b.sock" --json peers | jq .peers)
[[ $(jq -r '.[0] | "\(.name) \(.role) \(.state) \(.device) \(.pools)"' <<<"$pj") == "a imports ready rxe0 1" ]] ||
	fail "pmctl peers on b: $pj"
(($(jq '.[0].rate_mbps' <<<"$pj") > 0)) || fail "no port rate in pmctl peers: $pj"
aj=$("$b/tools/pmctl" --socket "$run/a.sock" --json peers | jq .peers)
[[ $(jq -r '[.[] | select(.role == "exports" and .state == "ready")] | length' <<<"$aj") == 1 ]] ||
	fail "pmctl peers on a: $aj"

export PAGEMAP_SOCKET=$run/b.sock
"$b/tests/pm_remote_check" a:node0 | tee "$run/check.out"
grep -q '^FAIL' "$run/check.out" && fail "pm_remote_check failed"

# --- zero copy, the default (rdma.zero_copy "write"): every byte written to
# the peer went from the client's pages, every byte read back was staged
zc=$(verbs_counter "$run/b.sock" bytes_zero_copy)
st=$(verbs_counter "$run/b.sock" bytes_staged)
by=$(verbs_counter "$run/b.sock" bytes)
echo "verbs engine after pm_remote_check: $by bytes, $zc zero copy, $st staged"
((zc > 0 && st > 0 && zc + st == by)) || fail "zero-copy counters: $by bytes, $zc zero copy, $st staged"
# Between transfers nothing of the client's stays pinned: the transfer buffers only.
[[ $(link_pinned "$run/b.sock") == 8388608 ]] ||
	fail "b holds $(link_pinned "$run/b.sock") bytes registered at rest, not the 8 MiB of buffers"
# NUMA moves after round trips to the peer; the counters say how each trip went.
build_numa_check "$run" || fail "cannot build rdma_numa_check"
numa_check "$run/b.sock" a:node0 67108864 67108864
[[ $(link_pinned "$run/b.sock") == 8388608 ]] || fail "registrations left pinned after rdma_numa_check"

# --- a wrong secret is refused on both sides
"$b/broker/pagemapd" --socket "$run/c.sock" --peer "a=$addr" --peer-secret "$run/wrong" -v \
	2>"$run/c.log" &
c=$!
pids+=("$c")
wait_log "$run/a.log" "wrong secret" 20 || fail "a did not refuse a wrong secret"
grep -q "pool a:node0" "$run/c.log" && fail "a wrong secret got pools"
kill "$c"

# --- the peer dies mid-migration; the importer reconnects when it returns
mkfifo "$run/fifo"
"$b/tests/pm_remote_check" --killed a:node0 >"$run/fifo" &
checker=$!
exec 3<"$run/fifo"
read -r -t 30 line <&3 || fail "the killed-peer check did not start"
while [[ $line != started ]]; do echo "$line"; read -r -t 30 line <&3; done
kill -9 "$a"
cat <&3 | tee "$run/killed.out"
wait "$checker" || fail "pm_remote_check --killed failed"
grep -q "peer a: disconnected\|peer a: .*" "$run/b.log" || true
start_a
# b retries with a growing back-off (at most 8 s): a second connection.
connections() { grep -c "peer a: connected and authenticated" "$run/b.log" || true; }
for _ in $(seq 300); do (($(connections) >= 2)) && break; sleep 0.1; done
(($(connections) >= 2)) || fail "b did not reconnect to a restarted a"
"$b/tests/pm_remote_check" a:node0 >"$run/again.out" || { cat "$run/again.out"; fail "after reconnection"; }

# --- the benchmark against perftest on the same device, same run
"$b/tools/pmbench" rdma --json --remote a:node0 --ib-dev rxe0 --ib-addr "$PM_GUEST_IP" \
	--perftest-port 18520 --size 16M --samples 10 >"$run/bench.json" ||
	{ cat "$run/bench.json"; fail "pmbench rdma failed"; }
ratios=$(jq -r '[.throughput[] | "\(.direction) \(.chunk_size / 1024) KiB: \(.median_gbps) GB/s = \(.ratio)x ib_write_bw, \(.bytes_zero_copy) zero copy, \(.bytes_staged) staged"] | join("; ")' "$run/bench.json")
[[ -n $ratios ]] || fail "no throughput in pmbench rdma's JSON"
echo "pmbench rdma: $ratios"
# Per sample (16 MiB each): written straight from the client's pages, read staged.
[[ $(jq '[.throughput[] | select(.direction == "host_to_remote" and .bytes_zero_copy == 16777216 and .bytes_staged == 0)] | length' "$run/bench.json") == 2 &&
   $(jq '[.throughput[] | select(.direction == "remote_to_host" and .bytes_zero_copy == 0 and .bytes_staged == 16777216)] | length' "$run/bench.json") == 2 ]] ||
	fail "pmbench rdma: bytes_zero_copy/bytes_staged per direction are not as configured"

# Nothing left registered: b exits cleanly and says what it pinned at most.
kill "$bpid"
wait "$bpid" || fail "b exited with $? after SIGTERM"
grep "rdma registrations:" "$run/b.log" || fail "b did not log its registrations"
thr=$(grep '^throughput 2048' "$run/check.out" | sed 's/^throughput //')
note "rdma-peers: a:node0 over rxe0: $thr; wrong secret refused; peer killed: $(grep -o 'failed with .*' "$run/killed.out" | head -1); reconnected; pmbench rdma: $ratios; NUMA moves after round trips: every page moved"
