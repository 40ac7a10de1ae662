#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: numa2
# The numa2 machine has two NUMA nodes, each with one CPU (own socket) and
# ~1 GiB, and the firmware's distances (10/20) and HMAT figures reach userspace.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

numactl -H
nodes=$(numactl -H | sed -n 's/^available: \([0-9]*\) nodes.*/\1/p')
[[ $nodes == 2 ]] || fail "numactl sees '$nodes' nodes, want 2"

for n in 0 1; do
	d=/sys/devices/system/node/node$n
	[[ -d $d ]] || fail "no $d"
	kb=$(awk '/MemTotal/ { print $4 }' "$d/meminfo")
	# 1 GiB minus what the kernel keeps for itself.
	((kb > 700000 && kb <= 1048576)) || fail "node$n MemTotal ${kb} kB, want ~1 GiB"
	[[ $(<"$d/cpulist") == "$n" ]] || fail "node$n cpulist '$(<"$d/cpulist")', want $n"
done
[[ $(</sys/devices/system/node/node0/distance) == "10 20" ]] || fail "node0 distance"
[[ $(</sys/devices/system/node/node1/distance) == "20 10" ]] || fail "node1 distance"
# The profile's HMAT reaches sysfs: local access figures per node.
for n in 0 1; do
	a=/sys/devices/system/node/node$n/access0/initiators
	[[ $(<"$a/read_latency") == 100 ]] || fail "node$n HMAT read_latency '$(<"$a/read_latency")', want 100"
	[[ -e $a/node$n ]] || fail "node$n is not its own HMAT initiator"
done
[[ $(</sys/devices/system/cpu/cpu1/topology/physical_package_id) == 1 ]] ||
	fail "cpu1 not in package 1 (one socket per node)"
# Memory really comes from the asked node (first-touch under a bind policy).
numactl --membind=1 --cpunodebind=1 true || fail "cannot bind to node 1"
echo "numa2: 2 nodes with memory, distances 10/20, HMAT access0"
