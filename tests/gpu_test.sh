#!/bin/bash
# SPDX-License-Identifier: MIT
# GPU pools against a live broker on this machine: skipped (77) where the
# broker finds no GPU (no NVIDIA driver or device), as on CI.
#   tests/gpu_test.sh PAGEMAPD PM_GPU_CHECK
set -uo pipefail
d=$(mktemp -d)
trap 'kill "$broker" 2>/dev/null; wait "$broker" 2>/dev/null; rm -rf "$d"' EXIT
"$1" --socket "$d/sock" -v 2>"$d/log" &
broker=$!
for _ in $(seq 50); do [[ -S $d/sock ]] && break; sleep 0.1; done
PAGEMAP_SOCKET=$d/sock "$2"
rc=$?
grep -i "gpu\|cuda" "$d/log"
((rc == 0 || rc == 77)) || cat "$d/log"
exit $rc
