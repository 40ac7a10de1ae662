#!/bin/bash
# SPDX-License-Identifier: MIT
# GPU pools (broker/pool_gpu.c) on the SIMULATED CUDA driver (tests/fake_cuda.c,
# loaded as libcuda.so.1 through LD_LIBRARY_PATH): VRAM in host memory, so the
# pool code runs without a GPU. What it proves is the broker's side (contexts
# per thread, staging, peer and bounced copies, revoke, error paths); nothing
# here says anything about a real GPU's behaviour or speed. Each case starts a
# fresh broker; every broker must exit 0 on SIGTERM with no ERROR in its log
# but the ones the case injected, and no leak reported by the driver.
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
show() { grep -v '^<7>' "$1" | sed 's/^/    /'; }

[[ ":${LD_LIBRARY_PATH:-}:" == *":$(dirname "$lib"):"* && -f $lib ]] ||
	{ echo "FAIL: LD_LIBRARY_PATH does not lead to the $SIM ($lib)"; exit 1; }

# start CASE [VAR=VALUE...]: a fresh broker on the simulated driver
start() {
	cur=$1 case_fail=0
	shift
	say "=== $cur${*:+ ($*)}"
	env "$@" "$pagemapd" --socket "$d/$cur.sock" -v 2>"$d/$cur.log" &
	broker=$!
	for _ in $(seq 100); do [[ -S $d/$cur.sock ]] && break; sleep 0.05; done
	export PAGEMAP_SOCKET=$d/$cur.sock
	[[ -S $PAGEMAP_SOCKET ]] || bad "the broker did not start"
}

# stop [REGEX]: SIGTERM; exit 0; ERROR lines (<3>) only those matching REGEX,
# which must be there when given; no warning from the driver (leaks).
stop() {
	local want=${1:-} rc errs
	kill -TERM "$broker"
	wait "$broker"
	rc=$?
	broker=
	((rc == 0)) || bad "broker exit $rc after SIGTERM"
	errs=$(grep '^<3>' "$d/$cur.log")
	[[ -n $want ]] && errs=$(grep -Ev "$want" <<<"$errs")
	[[ -z $errs ]] || bad "ERROR in the broker log that this case did not cause: $errs"
	[[ -z $want ]] || grep -Eq "^<3>.*($want)" "$d/$cur.log" ||
		bad "the broker did not log the injected error ($want)"
	! grep -q "$SIM: \(warning\|error\)" "$d/$cur.log" ||
		bad "the driver reports a leak or misuse: $(grep "$SIM: \(warning\|error\)" "$d/$cur.log")"
	grep -q "shutdown: " "$d/$cur.log" || bad "no shutdown line in the broker log"
	if ((case_fail)); then
		echo "--- broker log ($cur, debug lines left out):"
		show "$d/$cur.log"
	fi
}

# injected NAME CALL: the driver says it injected the fault into that call.
injected() {
	grep -q "^$SIM: injecting .* into call $2 of $1 " "$d/$cur.log" ||
		bad "the driver did not inject into call $2 of $1"
}

# logged TEXT: an ERROR line of the broker's that says TEXT.
logged() {
	grep -qF "$1" <(grep '^<3>' "$d/$cur.log") || bad "the broker did not log '$1'"
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
$T "$pmbench" gpu --size 64M >"$d/bench.json" 2>"$d/bench.err"
rc=$?
say "pmbench gpu's numbers below come from the $SIM (host memcpy): meaningless as GPU performance"
jq --arg s "$SIM: host memory, not a GPU; rates meaningless" '{simulated: $s} + .' \
	"$d/bench.json" || bad "pmbench gpu: not JSON"
((rc == 0)) || { bad "pmbench gpu exit $rc"; cat "$d/bench.err"; }
jq -e '(.throughput | length) == 4 and ([.throughput[] | .verified] | all) and
       (.errors | length) == 0 and (.gpu.model | test("SIMULATED"))' "$d/bench.json" >/dev/null ||
	bad "pmbench gpu: not 4 verified legs without errors on the simulated device"
stop

# (a) cuMemcpyHtoD fails once mid-migration.
start htod FAKE_CUDA_FAIL=cuMemcpyHtoD:3
$T "$fcheck" htod || bad "pm_gpu_fault_check htod"
injected cuMemcpyHtoD_v2 3
logged "cuda0: cuMemcpyHtoD: unknown error ($SIM)"
"$pmctl" stats >/dev/null || bad "the broker does not answer after the fault"
stop "cuda0: cuMemcpyHtoD: unknown error \($SIM\)|copy host -> cuda0 failed"

# (b) cuMemcpyDtoH fails on the way home.
start dtoh FAKE_CUDA_FAIL=cuMemcpyDtoH:2
$T "$fcheck" dtoh || bad "pm_gpu_fault_check dtoh"
injected cuMemcpyDtoH_v2 2
logged "cuda0: cuMemcpyDtoH: unknown error ($SIM)"
stop "cuda0: cuMemcpyDtoH: unknown error \($SIM\)|copy cuda0 -> host failed"

# (c) The device goes bad after the data went in (the 8 chunks' copies in
# succeed, the first 2 copies out too), then the administrator revokes it.
start dead FAKE_CUDA_FAIL_AFTER=cuMemcpyDtoH:3,cuMemcpyHtoD:9,cuMemcpyPeer:1
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
injected cuMemcpyDtoH_v2 3
stop "cuda0: cuMemcpyDtoH: unknown error \($SIM\)|chunk [0-9]+: lost with cuda0/vram"
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
grep -q "^<4>pagemapd: CUDA device 1: no GPU pool: cuDeviceTotalMem: unknown error ($SIM)" \
	"$d/$cur.log" || bad "the broker did not log why device 1 has no pool"
! grep -q "GPU pool cuda1/vram" "$d/$cur.log" || bad "a pool for device 1 anyway"
$T "$check" >"$d/check.out" || { cat "$d/check.out"; bad "pm_gpu_check on cuda0 alone"; }
stop

# (g) A copy worker stalls for 3 s inside the driver (a stuck DMA engine):
# the broker keeps answering everyone meanwhile, and the stalled migration
# completes with its data once the stall ends.
start stall FAKE_CUDA_STALL=cuMemcpyHtoD:2:3000
$T "$check" >"$d/check.out" &
checker=$!
for _ in $(seq 100); do grep -q "stalling call 2 of cuMemcpyHtoD" "$d/$cur.log" && break; sleep 0.05; done
grep -q "stalling call 2 of cuMemcpyHtoD" "$d/$cur.log" || bad "the driver did not stall a copy"
slowest=0
for _ in $(seq 10); do
	t0=$(date +%s%N)
	"$pmctl" stats >/dev/null || bad "pmctl stats during the stall"
	ms=$((($(date +%s%N) - t0) / 1000000))
	((ms > slowest)) && slowest=$ms
	sleep 0.1
done
say "pmctl stats during a 3 s stall in a copy worker: slowest ${slowest} ms"
((slowest < 500)) || bad "the broker stalled with its worker (${slowest} ms for pmctl stats)"
wait "$checker" || { cat "$d/check.out"; bad "pm_gpu_check across the stall"; }
stop

if ((fail)); then
	echo "FAIL: gpu-sim (GPU pools on the $SIM)"
	exit 1
fi
say "all cases passed (pool code exercised on the $SIM, not on a GPU)"
