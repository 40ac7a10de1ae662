#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: rdma
# Zero-copy RDMA between two brokers in one guest over soft-RoCE rxe0 (as
# rdma-peers.sh, which checks the default configuration): broker a exports,
# then one importer at a time, each configured differently, runs
# rdma_numa_check (rdma-zc-lib.sh: round trips to a:node0, host NUMA moves
# after them with every page's node checked, the data after every return):
#   d  rdma.zero_copy "both": RDMA READ into the client's pages too, every
#      byte zero copy but small copies (CPU faults on 64 KiB chunks), and
#      still every page moves
#   e  rdma.max_pinned_bytes = the transfer buffers: no room for any
#      registration, every byte staged, and the log says why
#   f  room for one 1 MiB piece beside the buffers: some of each, and the
#      most ever pinned is the cap, never more
#   g  rdma.zero_copy "off": every byte staged, nothing registered
# Each importer logs at exit how many registrations it made and the most it
# had pinned; between transfers none holds more than its buffers.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"
# shellcheck source-path=SCRIPTDIR source=rdma-zc-lib.sh
source "$PM_SRCDIR/tests/vm/tests/rdma-zc-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tools/pmctl && -e $b/libpagemap/libpagemap.so ]] ||
	{ echo "no pagemapd/pmctl/libpagemap in PM_BUILD_DIR='$b'"; exit 77; }
command -v cc >/dev/null || { echo "no cc to build rdma_numa_check"; exit 77; }
ibv_devinfo -d rxe0 | grep -q 'state:.*PORT_ACTIVE' || fail "rxe0 not active"
[[ -d /sys/devices/system/node/node1 ]] || fail "the rdma profile has two NUMA nodes"

run=$(mktemp -d)
umask 077
head -c 32 /dev/urandom | base64 >"$run/secret"
cat >"$run/a.json" <<EOC
{ "rdma": { "export_bytes": 67108864, "max_pinned_bytes": 83886080 } }
EOC
addr=$PM_GUEST_IP:18515
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; tail -n 30 "$run"/*.log' EXIT
wait_log() { # FILE PATTERN SECONDS
	for _ in $(seq $(($3 * 10))); do grep -q -- "$2" "$1" && return 0; sleep 0.1; done
	return 1
}

"$b/broker/pagemapd" --socket "$run/a.sock" --config "$run/a.json" --rdma-listen "$addr" \
	--peer-secret "$run/secret" -v 2>"$run/a.log" &
pids+=($!)
wait_log "$run/a.log" "exporting host memory to peers" 20 || fail "broker a did not listen"
build_numa_check "$run" || fail "cannot build rdma_numa_check"

importer() { # NAME CONFIG: a broker importing from a, with that config
	echo "$2" >"$run/$1.json"
	"$b/broker/pagemapd" --socket "$run/$1.sock" --config "$run/$1.json" --peer "a=$addr" \
		--peer-secret "$run/secret" -v 2>"$run/$1.log" &
	ipid=$!
	pids+=("$ipid")
	# a exports one arena at a time: the last importer's may not be gone yet.
	wait_log "$run/$1.log" "peer a: pool a:node0" 60 || fail "$1 did not import a:node0"
}
importer_stop() { # NAME: stops it (exit 0); prints what it logs of its registrations
	[[ $(link_pinned "$run/$1.sock") == 8388608 ]] ||
		fail "$1 holds $(link_pinned "$run/$1.sock") bytes registered at rest, not its 8 MiB of buffers"
	kill "$ipid"
	wait "$ipid" || fail "$1 exited with $? after SIGTERM"
	regs=$(grep -o "rdma registrations: .*" "$run/$1.log") || fail "$1 did not log its registrations"
	echo "$1: $regs"
}

importer d '{ "rdma": { "zero_copy": "both" } }'
# All but CPU faults on 64 KiB chunks, whose copies home may be too small to
# register (one chunk per fault: 16 MiB staged at most).
numa_check "$run/d.sock" a:node0 any any
((numa_zc >= 134217728 - 16777216)) || fail "d: only $numa_zc bytes zero copy"
numa_zc_d=$numa_zc
importer_stop d
if ! [[ $regs =~ "pinned at most "([0-9]+)" of 536870912 bytes" ]] ||
	((BASH_REMATCH[1] > 8388608 + 8388608)); then
	fail "d pinned more than its buffers and a transfer's pieces in flight: $regs"
fi

importer e '{ "rdma": { "max_pinned_bytes": 8388608 } }'
numa_check "$run/e.sock" a:node0 0 134217728
wait_log "$run/e.log" "staging transfers that cannot be registered: .*max_pinned_bytes" 1 ||
	fail "e did not say why it staged"
importer_stop e
[[ $regs == *"0 made, 0 reused, "[1-9]*" refused"*"pinned at most 8388608 of 8388608 bytes" ]] ||
	fail "e: $regs"

importer f '{ "rdma": { "max_pinned_bytes": 9437184, "zero_copy": "both" } }'
numa_check "$run/f.sock" a:node0 any any
((numa_zc > 0 && numa_st > 0)) || fail "f, one piece of room: $numa_zc zero copy, $numa_st staged"
tight="$numa_zc bytes zero copy, $numa_st staged"
importer_stop f
[[ $regs == *" refused"*"pinned at most 9437184 of 9437184 bytes" ]] || fail "f: $regs"

importer g '{ "rdma": { "zero_copy": "off" } }'
numa_check "$run/g.sock" a:node0 0 134217728
importer_stop g
[[ $regs == *"0 made, 0 reused, 0 refused"* ]] || fail "g registered with zero_copy off: $regs"

note "rdma-zero-copy: zero_copy both: $((numa_zc_d >> 20)) MiB of 128 zero copy; cap = buffers: all staged; one piece of room: $tight, peak = cap; off: all staged; every page moved by NUMA moves after each"
