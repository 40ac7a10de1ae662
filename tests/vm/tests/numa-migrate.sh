#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: numa2
# Real NUMA migration through the broker: managed memory moved to node 1 and
# back to node 0 by pm_migrate, every page's node checked with move_pages(2),
# pm_query naming the right pagemap per chunk, the data intact.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tests/pm_numa_check ]] ||
	{ echo "no pagemapd/pm_numa_check in PM_BUILD_DIR='$b'"; exit 77; }
broker_start "$b"
"$b/tests/pm_numa_check" 1 0 || fail "migration node0 -> node1 -> node0 not verified"
"$b/tests/pm_numa_check" 0 1 || fail "migration -> node0 -> node1 not verified"
broker_stop
trap - EXIT
note "pm_migrate moved 16 MiB between node0 and node1, move_pages agrees"
