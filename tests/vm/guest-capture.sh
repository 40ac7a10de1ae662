#!/bin/bash
# SPDX-License-Identifier: MIT
# Guest side of capture-sysfs: copies this guest's sysfs into the output share
# as a tar (9p plus symlinks plus odd names is a detour we do not need).
set -euo pipefail
cap=/tmp/capture
rm -rf "$cap"
start=$(date +%s.%N)
"$PM_VM_BIN/sysfs-copy" "$cap"
end=$(date +%s.%N)
awk -v a="$start" -v b="$end" 'BEGIN { printf "guest-capture: sysfs-copy took %.2f s\n", b - a }'
tar -C "$cap" -cf "$PM_OUT_DIR/capture.tar" .
