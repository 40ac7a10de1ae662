#!/bin/bash
# SPDX-License-Identifier: MIT
# NVLink discovery (topology/src_nvml.c) against a FAKE NVML library, on the
# hwloc capture of a six-GPU machine: two triplets of GPUs linked in pairs
# give NV2 within each triplet and SYS across; all six on NVSwitches give
# NV6 everywhere. Real NVML is exercised only on a machine with NVIDIA GPUs.
#   tests/nvml_test.sh PMTOPO FAKE_NVML_LIB SHARED_DIR
set -euo pipefail
pmtopo=$1 lib=$2 shared=$3
t="$shared/fixtures/hwloc/nvidiagpunumanodes.tar.bz2"
[[ -f $t ]] || { echo "skip: no $t"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tar xjf "$t" -C "$tmp"
root=$tmp/nvidiagpunumanodes
fail=0
expect() { # WHAT GOT WANT
	if [[ $2 == "$3" ]]; then echo "ok: $1"; else echo "FAIL: $1: got '$2', want '$3'"; fail=1; fi
}
cell() { PAGEMAP_NVML_LIB=$lib "$pmtopo" --sysfs-root "$root" --pair "$1" "$2" | head -1 | awk '{print $1}'; }

g=(0004:05:00.0 0004:06:00.0 0006:00:00.0 0007:00:00.0 0035:04:00.0 0035:05:00.0)
spec=""
for tri in "0 1 2" "3 4 5"; do
	read -r a b c <<<"$tri"
	for p in "$a $b" "$a $c" "$b $c"; do
		read -r x y <<<"$p"
		spec+="${g[x]}>${g[y]}*2;${g[y]}>${g[x]}*2;"
	done
done
export FAKE_NVML=$spec
expect "GPU0-GPU1 linked twice" "$(cell GPU0 GPU1)" "NV2"
expect "GPU3-GPU5 linked twice" "$(cell GPU3 GPU5)" "NV2"
expect "GPU0-GPU3 not linked" "$(cell GPU0 GPU3)" "SYS"
expect "without the library, no links" "$(FAKE_NVML= "$pmtopo" --sysfs-root "$root" --pair GPU0 GPU1 | head -1 | awk '{print $1}')" "NODE"
spec=""
for x in "${g[@]}"; do spec+="$x>switch*6;"; done
export FAKE_NVML=$spec
expect "all six switched: GPU0-GPU5" "$(cell GPU0 GPU5)" "NV6"
n=$(PAGEMAP_NVML_LIB=$lib "$pmtopo" --sysfs-root "$root" --json | jq '.fabric | length')
expect "switched: one fabric entry per pair" "$n" "15"
exit $fail
