#!/bin/bash
# SPDX-License-Identifier: MIT
# GPU pools against a live broker on this machine: pm_gpu_check, then
# pmbench gpu (host <-> VRAM against pinned cuMemcpy, GPU to GPU against
# cuMemcpyPeer where there are two GPUs, the broker's zero-copy and staged
# bytes per leg). Skipped (77) where the broker finds no GPU (no NVIDIA driver
# or device), as on CI; then pmbench gpu must say why, in JSON, and exit 77.
#   tests/gpu_test.sh PAGEMAPD PM_GPU_CHECK PMBENCH
set -uo pipefail
d=$(mktemp -d)
broker=
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf "$d"' EXIT
# A broker of its own for each: pm_gpu_check ends by revoking cuda0, which
# stays gone for the life of that broker.
start_broker() {
	[[ -n $broker ]] && { kill "$broker"; wait "$broker"; }
	rm -f "$d/sock"
	"$1" --socket "$d/sock" -v 2>>"$d/log" &
	broker=$!
	for _ in $(seq 50); do [[ -S $d/sock ]] && break; sleep 0.1; done
}
start_broker "$1"
PAGEMAP_SOCKET=$d/sock "$2"
rc=$?
grep -i "gpu\|cuda" "$d/log"
((rc == 0 || rc == 77)) || { cat "$d/log"; exit "$rc"; }
start_broker "$1"
PAGEMAP_SOCKET=$d/sock "$3" gpu --json --size 64M >"$d/bench.json"
brc=$?
cat "$d/bench.json"
if ((rc == 77)); then
	((brc == 77)) && jq -e '.skipped | length > 0' "$d/bench.json" >/dev/null ||
		{ echo "FAIL: pmbench gpu did not skip cleanly (exit $brc)"; exit 1; }
	exit 77
fi
((brc == 0)) || { echo "FAIL: pmbench gpu exit $brc"; exit 1; }
jq -e '[.throughput[] | .verified] | all' "$d/bench.json" >/dev/null ||
	{ echo "FAIL: pmbench gpu: unverified data"; exit 1; }
# Every leg's bytes went zero copy or staged (a refused registration is
# staged, not lost), and each ratio has its baseline from this run.
jq -e '[.throughput[] | .bytes_zero_copy + .bytes_staged == .bytes] | all' "$d/bench.json" \
	>/dev/null || { echo "FAIL: pmbench gpu: legs whose bytes are neither zero copy nor staged"; exit 1; }
jq -r '.throughput[] | "\(.direction) \(.src) -> \(.dst), \(.chunk_size / 1024) KiB chunks: " +
       "\(.median_gbps) GB/s, \(.ratio)x \(.baseline); zero copy \(.bytes_zero_copy), " +
       "staged \(.bytes_staged)"' "$d/bench.json"
jq -r '"GPU to GPU: " + (if .gpu_to_gpu.measured then "measured, peer access " +
       (.gpu_to_gpu.peer_access // "unknown") else "skipped: " + .gpu_to_gpu.reason end)' \
	"$d/bench.json"
