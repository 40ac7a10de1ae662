#!/bin/bash
# SPDX-License-Identifier: MIT
# GPU pools (broker/pool_gpu.c) on the SIMULATED CUDA driver (tests/fake_cuda.c,
# loaded as libcuda.so.1 through LD_LIBRARY_PATH): VRAM in host memory, so the
# pool code runs without a GPU. What it proves is the broker's side (contexts
# per thread, streams and events, pipelined staging, zero copy from
# registered pages and its fallbacks, the cap on pinned bytes, peer and
# bounced copies, revoke, error paths); nothing here says anything about a
# real GPU's behaviour or speed. The simulated streams run their copies on
# threads of their own, later than the calls that queue them, so a buffer
# reused too early shows as wrong data; registered pages that are no longer
# the file's make the driver log an error. Each case starts a fresh broker;
# every broker must exit 0 on SIGTERM with no ERROR in its log but the ones
# the case injected, and no leak or misuse reported by the driver.
#   tests/gpu_sim_test.sh PAGEMAPD PM_GPU_CHECK PMBENCH PM_GPU_FAULT_CHECK PMCTL FAKE_LIBCUDA
set -uo pipefail
pagemapd=$1 check=$2 pmbench=$3 fcheck=$4 pmctl=$5 lib=$6
SIM="SIMULATED CUDA driver"
d=$(mktemp -d)
broker='' holder='' cur='' fail=0 case_fail=0
trap '[[ -n $holder ]] && kill "$holder" 2>/dev/null
      [[ -n $broker ]] && kill "$broker" 2>/dev/null && wait "$broker"; rm -rf "$d"' EXIT
# No client may hang the test: a chunk that cannot come home makes a CPU
# fault retry for ever.
T="timeout 120"

say() { echo "gpu-sim [$SIM] $*"; }
bad() { echo "FAIL [$SIM] $cur: $*"; fail=1 case_fail=1; }
# show FILE: a log without the broker's debug lines
show() { grep -v '^pagemapd: debug: ' "$1" | sed 's/^/    /'; }

[[ ":${LD_LIBRARY_PATH:-}:" == *":$(dirname "$lib"):"* && -f $lib ]] ||
	{ echo "FAIL: LD_LIBRARY_PATH does not lead to the $SIM ($lib)"; exit 1; }

# start CASE [VAR=VALUE...]: a fresh broker on the simulated driver
# start NAME [VAR=VALUE...]: a broker for case NAME with those in its
# environment, and with $CONF (JSON text) as its configuration when set.
start() {
	local conf=()

	cur=$1 case_fail=0
	shift
	say "=== $cur${*:+ ($*)}${CONF:+ $CONF}"
	if [[ ${CONF:-} ]]; then
		printf '%s\n' "$CONF" >"$d/$cur.json"
		conf=(--config "$d/$cur.json")
	fi
	env "$@" "$pagemapd" "${conf[@]}" --socket "$d/$cur.sock" -v 2>"$d/$cur.log" &
	broker=$!
	for _ in $(seq 400); do [[ -S $d/$cur.sock ]] && break; sleep 0.05; done
	export PAGEMAP_SOCKET=$d/$cur.sock
	[[ -S $PAGEMAP_SOCKET ]] || bad "the broker did not start"
}

# stop [REGEX]: SIGTERM; exit 0; ERROR lines ("pagemapd: error: ") only those matching REGEX,
# which must be there when given; no warning from the driver (leaks).
stop() {
	local want=${1:-} rc errs
	kill -TERM "$broker"
	wait "$broker"
	rc=$?
	broker=
	((rc == 0)) || bad "broker exit $rc after SIGTERM"
	errs=$(grep '^pagemapd: error: ' "$d/$cur.log")
	[[ -n $want ]] && errs=$(grep -Ev "$want" <<<"$errs")
	[[ -z $errs ]] || bad "ERROR in the broker log that this case did not cause: $errs"
	[[ -z $want ]] || grep -Eq "^pagemapd: error: .*($want)" "$d/$cur.log" ||
		bad "the broker did not log the injected error ($want)"
	! grep -q "$SIM: \(warning\|error\)" "$d/$cur.log" ||
		bad "the driver reports a leak or misuse: $(grep "$SIM: \(warning\|error\)" "$d/$cur.log")"
	grep -q "shutdown: " "$d/$cur.log" || bad "no shutdown line in the broker log"
	if ((case_fail)); then
		echo "--- broker log ($cur, debug lines left out):"
		show "$d/$cur.log"
	fi
}

# engines FIELD WANT: pmctl stats --json's engines.cuda.FIELD is WANT (a jq
# comparison such as '== 1024' or '> 0').
engines() {
	local got
	got=$("$pmctl" --json stats | jq -r ".engines.cuda | .$1")
	jq -en "$got $2" >/dev/null || bad "engines.cuda.$1 is $got, want $2"
}

# zc FIELD: a number from the broker's zero-copy line for cuda0 (written when
# the pool closes, so after stop): registered, reused, punched, over_cap,
# refused, peak, cap.
zc() {
	local line
	line=$(grep -o 'cuda0: zero copy: .*' "$d/$cur.log" | tail -1)
	[[ -n $line ]] || { bad "no zero-copy line for cuda0 in the broker log"; echo -1; return; }
	case $1 in
	registered) sed -E 's/.* ([0-9]+) ranges registered.*/\1/' <<<"$line" ;;
	reused) sed -E 's/.* ([0-9]+) reused.*/\1/' <<<"$line" ;;
	punched) sed -E 's/.* ([0-9]+) dropped \(punched\).*/\1/' <<<"$line" ;;
	over_cap) sed -E 's/.* ([0-9]+) over the cap.*/\1/' <<<"$line" ;;
	refused) sed -E 's/.* ([0-9]+) refused;.*/\1/' <<<"$line" ;;
	peak) sed -E 's/.* at most ([0-9]+) bytes registered.*/\1/' <<<"$line" ;;
	cap) sed -E 's/.*\(cap ([0-9]+)\).*/\1/' <<<"$line" ;;
	esac
}

# driver_peak: the most bytes the driver saw registered at once (at unload).
driver_peak() {
	sed -nE "s/^$SIM: host registrations: .* at most ([0-9]+) bytes .*/\1/p" "$d/$cur.log"
}

# injected NAME CALL: the driver says it injected the fault into that call.
injected() {
	grep -q "^$SIM: injecting .* into call $2 of $1 " "$d/$cur.log" ||
		bad "the driver did not inject into call $2 of $1"
}

# logged TEXT: an ERROR line of the broker's that says TEXT.
logged() {
	grep -qF "$1" <(grep '^pagemapd: error: ' "$d/$cur.log") || bad "the broker did not log '$1'"
}

# The pools, pm_gpu_check with a peer path between the two devices.
start pools
grep -E "GPU pool cuda[0-9]+/vram" "$d/$cur.log"
for i in 0 1; do
	grep -q "GPU pool cuda$i/vram: SIMULATED CUDA device $i " "$d/$cur.log" ||
		bad "the broker did not find simulated device $i as GPU pool cuda$i/vram"
done
$T "$check" >"$d/check.out"
rc=$?
cat "$d/check.out"
((rc == 0)) || bad "pm_gpu_check exit $rc"
grep -q "cuda0 -> cuda1: [1-9][0-9]* bytes direct, 0 bounced" "$d/check.out" ||
	bad "cuda0 -> cuda1 did not go direct (cuMemcpyPeer)"
stop

# The same without peer access: GPU to GPU through host memory.
start no-peer FAKE_CUDA_PEER=0
$T "$check" >"$d/check.out"
rc=$?
cat "$d/check.out"
((rc == 0)) || bad "pm_gpu_check exit $rc"
grep -q "cuda0 -> cuda1: 0 bytes direct, [1-9][0-9]* bounced" "$d/check.out" ||
	bad "cuda0 -> cuda1 did not bounce through host memory"
stop

# pmbench gpu: valid JSON, data verified; the rates are host memcpy's.
start pmbench
$T "$pmbench" gpu --json --size 64M >"$d/bench.json" 2>"$d/bench.err"
rc=$?
say "pmbench gpu's numbers below come from the $SIM (host memcpy): meaningless as GPU performance"
jq --arg s "$SIM: host memory, not a GPU; rates meaningless" '{simulated: $s} + .' \
	"$d/bench.json" || bad "pmbench gpu: not JSON"
((rc == 0)) || { bad "pmbench gpu exit $rc"; cat "$d/bench.err"; }
jq -e '(.throughput | length) == 8 and ([.throughput[] | .verified] | all) and
       (.errors | length) == 0 and (.gpu.model | test("SIMULATED"))' "$d/bench.json" >/dev/null ||
	bad "pmbench gpu: not 8 verified legs without errors on the simulated devices"
# Per leg (per sample, 64 MiB): out zero copy, home staged, GPU to GPU one
# peer DMA; every ratio against a baseline of the same run.
jq -e '[.throughput[] | select(.direction == "host_to_gpu") |
        .bytes_zero_copy == 67108864 and .bytes_staged == 0] | length == 2 and all' \
	"$d/bench.json" >/dev/null || bad "pmbench gpu: host -> VRAM legs not all zero copy"
jq -e '[.throughput[] | select(.direction == "gpu_to_host") |
        .bytes_staged == 67108864 and .bytes_zero_copy == 0] | length == 2 and all' \
	"$d/bench.json" >/dev/null || bad "pmbench gpu: VRAM -> host legs not all staged"
jq -e '[.throughput[] | select(.direction == "gpu_to_gpu") |
        .bytes_zero_copy == 67108864 and .baseline == "memcpy_peer" and
        (.memcpy_peer.median_gbps > 0)] | length == 4 and all' \
	"$d/bench.json" >/dev/null || bad "pmbench gpu: GPU -> GPU legs not cuMemcpyPeer-compared zero copy"
jq -e '[.throughput[] | select(.direction != "gpu_to_gpu") | .baseline == "pinned_memcpy" and
        .pinned_memcpy.median_gbps > 0 and .pageable_memcpy.median_gbps > 0] | all' \
	"$d/bench.json" >/dev/null || bad "pmbench gpu: host legs without their cuMemcpy baselines"
jq -e '.gpu_to_gpu.measured and .gpu_to_gpu.peer_access == "enabled"' "$d/bench.json" \
	>/dev/null || bad "pmbench gpu: GPU to GPU not measured with peer access"
stop

# One GPU: GPU to GPU is skipped, and says why; the rest runs.
start pmbench-1gpu FAKE_CUDA_DEVICES=1
FAKE_CUDA_DEVICES=1 $T "$pmbench" gpu --json --size 16M --samples 10 >"$d/bench.json" 2>"$d/bench.err"
rc=$?
((rc == 0)) || { bad "pmbench gpu exit $rc"; cat "$d/bench.err"; }
jq -e '(.throughput | length) == 4 and (.gpu_to_gpu.measured | not) and
       (.gpu_to_gpu.reason | test("needs two"))' "$d/bench.json" >/dev/null ||
	bad "pmbench gpu on one GPU: $(jq -c .gpu_to_gpu "$d/bench.json")"
stop

# (a) A copy to the GPU fails mid-migration: the 3rd (one async copy each,
# zero copy), then the 3rd wait for one.
start htod FAKE_CUDA_FAIL=cuMemcpyHtoDAsync:3
$T "$fcheck" htod || bad "pm_gpu_fault_check htod"
injected cuMemcpyHtoDAsync_v2 3
logged "cuda0: cuMemcpyHtoDAsync: unknown error ($SIM)"
"$pmctl" stats >/dev/null || bad "the broker does not answer after the fault"
stop "cuda0: cuMemcpyHtoDAsync: unknown error \($SIM\)|copy host -> cuda0 failed"

start htod-sync FAKE_CUDA_FAIL=cuStreamSynchronize:3
$T "$fcheck" htod || bad "pm_gpu_fault_check htod"
injected cuStreamSynchronize 3
logged "cuda0: cuStreamSynchronize: unknown error ($SIM)"
stop "cuda0: cuStreamSynchronize: unknown error \($SIM\)|copy host -> cuda0 failed"

# (b) The way home fails: the 2nd piece's copy (2 MiB chunks go home in 4
# pieces), then the 2nd wait for a piece.
start dtoh FAKE_CUDA_FAIL=cuMemcpyDtoHAsync:2
$T "$fcheck" dtoh || bad "pm_gpu_fault_check dtoh"
injected cuMemcpyDtoHAsync_v2 2
logged "cuda0: cuMemcpyDtoHAsync: unknown error ($SIM)"
stop "cuda0: cuMemcpyDtoHAsync: unknown error \($SIM\)|copy cuda0 -> host failed"

start dtoh-event FAKE_CUDA_FAIL=cuEventSynchronize:2
$T "$fcheck" dtoh || bad "pm_gpu_fault_check dtoh"
injected cuEventSynchronize 2
logged "cuda0: cuEventSynchronize: unknown error ($SIM)"
stop "cuda0: cuEventSynchronize: unknown error \($SIM\)|copy cuda0 -> host failed"

# (c) The device goes bad after the data went in (the 8 chunks' copies in
# succeed, the first 2 chunks out too: 4 pieces each), then the
# administrator revokes it.
start dead FAKE_CUDA_FAIL_AFTER=cuMemcpyDtoHAsync:9,cuMemcpyHtoDAsync:9,cuMemcpyPeerAsync:1
$T "$fcheck" dead >"$d/dead.out" &
holder=$!
for _ in $(seq 600); do grep -q '^ready' "$d/dead.out" && break; sleep 0.1; done
if grep -q '^ready' "$d/dead.out"; then
	"$pmctl" revoke cuda0 || bad "pmctl revoke cuda0"
fi
wait "$holder"
rc=$? holder=
cat "$d/dead.out"
((rc == 0)) || bad "pm_gpu_fault_check dead exit $rc"
grep -qx "lost 6 evacuated 2" "$d/dead.out" ||
	bad "want 6 chunks lost (-EIO) and 2 evacuated"
injected cuMemcpyDtoHAsync_v2 9
stop "cuda0: cuMemcpyDtoHAsync: unknown error \($SIM\)|chunk [0-9]+: lost with cuda0/vram"
grep -q "shutdown: .* 12582912 lost" "$d/$cur.log" || bad "the broker does not count 6 chunks lost"

# (d) Pool creation fails: cuMemAlloc out of memory at the first open,
# cuMemHostRegister (staging buffers) at the second; the third works.
start openfail FAKE_CUDA_FAIL=cuMemAlloc:1:CUDA_ERROR_OUT_OF_MEMORY,cuMemHostRegister:1
$T "$fcheck" openfail || bad "pm_gpu_fault_check openfail"
for e in "Cannot allocate memory" "Input/output error"; do
	grep -q "cuda0: cannot create pagemap: $e" "$d/$cur.log" ||
		bad "the broker did not log that cuda0 could not be opened ($e)"
done
logged "cuda0: cuMemAlloc: out of memory ($SIM)"
logged "cuda0: cuMemHostRegister: unknown error ($SIM)"
stop "cuda0: (cuMemAlloc: out of memory|cuMemHostRegister: unknown error) \($SIM\)"

# (e) cuCtxSetCurrent fails in a copy worker (call 1 is pool creation's).
start ctx FAKE_CUDA_FAIL=cuCtxSetCurrent:4
$T "$fcheck" htod || bad "pm_gpu_fault_check htod"
injected cuCtxSetCurrent 4
logged "cuda0: cuCtxSetCurrent: unknown error ($SIM)"
stop "cuda0: cuCtxSetCurrent: unknown error \($SIM\)|copy host -> cuda0 failed"

# (f) A device the driver cannot describe is left out, and the log says why.
start enum FAKE_CUDA_FAIL=cuDeviceTotalMem:2
grep -q "^pagemapd: warning: CUDA device 1: no GPU pool: cuDeviceTotalMem: unknown error ($SIM)" \
	"$d/$cur.log" || bad "the broker did not log why device 1 has no pool"
! grep -q "GPU pool cuda1/vram" "$d/$cur.log" || bad "a pool for device 1 anyway"
$T "$check" >"$d/check.out" || { cat "$d/check.out"; bad "pm_gpu_check on cuda0 alone"; }
stop

# (g) A copy worker stalls for 5 s inside the driver (a stuck DMA engine):
# the broker keeps answering everyone meanwhile, and the stalled migration
# completes with its data once the stall ends.
start stall FAKE_CUDA_STALL=cuMemcpyHtoDAsync:2:5000
$T "$check" >"$d/check.out" &
checker=$!
for _ in $(seq 400); do grep -q "stalling call 2 of cuMemcpyHtoDAsync" "$d/$cur.log" && break; sleep 0.05; done
grep -q "stalling call 2 of cuMemcpyHtoDAsync" "$d/$cur.log" || bad "the driver did not stall a copy"
slowest=0
for _ in $(seq 10); do
	t0=$(date +%s%N)
	"$pmctl" stats >/dev/null || bad "pmctl stats during the stall"
	ms=$((($(date +%s%N) - t0) / 1000000))
	((ms > slowest)) && slowest=$ms
	sleep 0.1
done
say "pmctl stats during a 5 s stall in a copy worker: slowest ${slowest} ms"
# A loop thread that waited on its worker would answer after the stall, ~5 s;
# the bound leaves room for a loaded machine (CI runs QEMU guests beside it).
((slowest < 2000)) || bad "the broker stalled with its worker (${slowest} ms for pmctl stats)"
wait "$checker" || { cat "$d/check.out"; bad "pm_gpu_check across the stall"; }
stop

# Zero copy and its counters: 3 round trips of 16 MiB (2 MiB chunks, one
# copy each). Out: every byte straight from registered pages, one
# registration per copy, none kept; home: staged. MiB=1048576.
M=1048576
start zero-copy
$T "$fcheck" trips 3 || bad "pm_gpu_fault_check trips 3"
engines bytes "== $((96 * M))"
engines bytes_zero_copy "== $((48 * M))"
engines bytes_staged "== $((48 * M))"
engines failed "== 0"
stop
(($(zc registered) == 24 && $(zc reused) == 0)) || bad "want 24 registrations, none reused"
(($(zc peak) > 0 && $(zc peak) <= $(zc cap))) || bad "$(zc peak) bytes registered, cap $(zc cap)"

# Registration refused: the first copy's (call 1 registers the staging
# memory) is staged instead, and said once; then every one.
start reg-fail FAKE_CUDA_FAIL=cuMemHostRegister:2
$T "$fcheck" trips 3 || bad "pm_gpu_fault_check trips 3"
injected cuMemHostRegister_v2 2
engines bytes_zero_copy "== $((46 * M))"
engines bytes_staged "== $((50 * M))"
grep -q "^pagemapd: warning: cuda0: cuMemHostRegister: unknown error ($SIM); host -> VRAM copies that cannot be registered are staged" \
	"$d/$cur.log" || bad "the broker did not say why a copy was staged"
stop
(($(zc refused) == 1)) || bad "want 1 registration refused, not $(zc refused)"

start reg-fail-all FAKE_CUDA_FAIL_AFTER=cuMemHostRegister:2
$T "$fcheck" trips 3 || bad "pm_gpu_fault_check trips 3"
engines bytes_zero_copy "== 0"
engines bytes_staged "== $((96 * M))"
stop
(($(zc refused) == 24)) || bad "want 24 registrations refused, not $(zc refused)"

# The cap: 4 MiB registered at most (two copies' worth, where 4 workers may
# want four), by the broker's count and the driver's (16 MiB of staging
# buffers apart); 1 MiB (no 2 MiB copy fits): everything staged.
CONF='{"migration": {"gpu_pin_bytes": 4194304}}' start cap
$T "$fcheck" trips 3 || bad "pm_gpu_fault_check trips 3"
engines "bytes_zero_copy + .bytes_staged" "== $((96 * M))"
engines bytes_zero_copy "> 0"
stop
(($(zc cap) == 4 * M && $(zc peak) <= 4 * M)) || bad "$(zc peak) bytes registered, cap $(zc cap)"
p=$(driver_peak)
((p > 0 && p <= 20 * M)) || bad "the driver saw $p bytes registered at once (16 MiB staging + 4 MiB cap)"

CONF='{"migration": {"gpu_pin_bytes": 1048576}}' start cap-small
$T "$fcheck" trips 3 || bad "pm_gpu_fault_check trips 3"
engines bytes_zero_copy "== 0"
engines bytes_staged "== $((96 * M))"
stop
(($(zc over_cap) == 24 && $(zc peak) == 0)) || bad "want 24 copies staged over the cap, none registered"

# Zero copy off: the pipelined staging path both ways, with slow simulated
# DMA, so that a piece refilled (or written out) before its copy ran would
# show. 8 MiB chunks: 16 pieces a copy, twice round a lane's ring of 8.
CONF='{"migration": {"gpu_pin_bytes": 0}}' start staged FAKE_CUDA_DMA_US=2000
$T "$fcheck" trips 2 23 || bad "pm_gpu_fault_check trips 2 23"
engines bytes_zero_copy "== 0"
engines bytes_staged "== $((64 * M))"
stop
grep -q "^$SIM: host registrations: 1 cuMemHostRegister calls" "$d/$cur.log" ||
	bad "zero copy off, yet the broker registered more than its staging memory"

# The two keys refuse what is not theirs, by name, before anything starts.
for bad_conf in '{"migration": {"gpu_pin_keep": 1}}' '{"migration": {"gpu_pin_bytes": -1}}'; do
	printf '%s\n' "$bad_conf" >"$d/bad.json"
	if $T "$pagemapd" --config "$d/bad.json" --socket "$d/bad.sock" 2>"$d/bad.log"; then
		bad "pagemapd started with $bad_conf"
	fi
	grep -qE "migration: 'gpu_pin_(keep|bytes)'" "$d/bad.log" ||
		bad "config $bad_conf: the error does not name the key: $(cat "$d/bad.log")"
done

# The same host pages out again and again (READ_MOSTLY replicas), then
# punched and back as new ones. By default each registration goes with its
# copy; kept (migration.gpu_pin_keep), the replicas reuse them, and the
# punched ones are dropped, never used: the driver would log an error.
start replica
$T "$fcheck" replica
rc=$?
((rc == 0 || rc == 77)) || bad "pm_gpu_fault_check replica exit $rc"
stop
((rc == 77 || $(zc reused) == 0)) || bad "registrations reused though not kept"
CONF='{"migration": {"gpu_pin_keep": true}}' start replica-keep
$T "$fcheck" replica
rc=$?
((rc == 0 || rc == 77)) || bad "pm_gpu_fault_check replica exit $rc"
stop
((rc == 77 || ($(zc reused) >= 16 && $(zc punched) >= 8))) ||
	bad "kept registrations: $(zc reused) reused (want 16 or more), $(zc punched) dropped punched (want 8 or more)"

if ((fail)); then
	echo "FAIL: gpu-sim (GPU pools on the $SIM)"
	exit 1
fi
say "all cases passed (pool code exercised on the $SIM, not on a GPU)"
