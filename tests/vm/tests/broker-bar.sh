#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: pcie
# pagemapd serving real BAR memory: both ivshmem BAR 2 windows as pools, opened
# by a holder; access is denied by device permissions and by policy rules to an
# unprivileged user; hot-removing one device through sysfs revokes its pagemap
# under the holder (event, then hang-up), pmctl revoke does the same for the
# other, and neither disturbs the rest. Needs the project's build dir.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
[[ -x $b/broker/pagemapd && -x $b/tools/pmctl && -x $b/tests/pm_watch ]] ||
	{ echo "no pagemapd/pmctl/pm_watch in PM_BUILD_DIR='$b'"; exit 77; }
mapfile -t shm < <(pci_find 0x1af4 0x1110)
((${#shm[@]} == 2)) || fail "want 2 ivshmem functions, found ${shm[*]}"
a=${shm[0]} z=${shm[1]}

run=$(mktemp -d)
chmod 0755 "$run" # the unprivileged client must reach the socket
cat >"$run/conf.json" <<EOC
{
  "linger_ms": 500,
  "pools": { "bar": [ { "device": "$a", "bar": 2 }, { "device": "$z", "bar": 2 } ] },
  "access": [ { "device": "node1", "uid": 65534, "allow": false } ]
}
EOC
export PAGEMAP_SOCKET=$run/broker.sock
"$b/broker/pagemapd" --config "$run/conf.json" -v 2>"$run/broker.log" &
broker=$!
trap 'kill $broker 2>/dev/null || true; cat "$run/broker.log"' EXIT
for _ in $(seq 100); do [[ -S $PAGEMAP_SOCKET ]] && break; sleep 0.05; done
[[ -S $PAGEMAP_SOCKET ]] || fail "broker did not start"

# --- access: nobody may not map a root-only BAR, nor node1 by rule; node0 is open
setpriv --reuid=65534 --regid=65534 --clear-groups "$b/tests/pm_watch" --timeout 1 \
	"$a/bar2" node1 node0 >"$run/nobody.out" || true
cat "$run/nobody.out"
grep -q "^error $a/bar2 -13$" "$run/nobody.out" || fail "nobody opened $a's BAR"
grep -q "^error node1 -13$" "$run/nobody.out" || fail "the deny rule for node1 did not apply"
grep -q "^open node0 " "$run/nobody.out" || fail "nobody could not open node0"
grep -q "denied uid 65534 .* access to node1" "$run/broker.log" || fail "no log line naming uid and device"

# --- a holder of both BAR pagemaps
"$b/tests/pm_watch" --timeout 60 "$a/bar2" "$z/bar2" >"$run/holder.out" &
holder=$!
for _ in $(seq 100); do (($(grep -c '^open ' "$run/holder.out") == 2)) && break; sleep 0.05; done
cat "$run/holder.out"
"$b/tools/pmctl" pagemaps
n=$("$b/tools/pmctl" --json pagemaps | jq '[.pagemaps[] | select(.kind == "pci-bar" and .capacity == 67108864 and .state == "active")] | length')
((n == 2)) || fail "want 2 active 64 MiB pci-bar pagemaps, see $n"

# --- hot-remove one device under its holder
echo 1 >"/sys/bus/pci/devices/$z/remove"
for _ in $(seq 100); do grep -q "^hup $z/bar2" "$run/holder.out" && break; sleep 0.05; done
grep -q "^revoked $z/bar2 id=[0-9]* reason=-19$" "$run/holder.out" || fail "no ENODEV revoke for removed $z"
grep -q "^hup $z/bar2$" "$run/holder.out" || fail "no hang-up for removed $z"
grep -q "^hup $a/bar2" "$run/holder.out" && fail "$a was disturbed by $z's removal"
[[ $("$b/tools/pmctl" --json pagemaps | jq -r '.pagemaps[].device' | sort | tr '\n' ' ') == "$a " ]] ||
	fail "pagemaps after removal: $("$b/tools/pmctl" --json pagemaps)"

# --- planned revoke of the other
"$b/tools/pmctl" revoke "$a"
wait $holder || fail "holder did not see every hang-up"
cat "$run/holder.out"
grep -q "^revoked $a/bar2 id=[0-9]* reason=-125$" "$run/holder.out" || fail "no ECANCELED revoke for $a"
"$b/tests/pm_watch" --timeout 1 "$a/bar2" >"$run/reopen.out" || true
grep -q "^error $a/bar2 -125$" "$run/reopen.out" || fail "revoked $a could be reopened (or not with ECANCELED): $(cat "$run/reopen.out")"
"$b/tools/pmctl" --json stats | jq -e '.revoked == 2 and .denied == 2' >/dev/null || fail "stats: $("$b/tools/pmctl" --json stats)"
kill -TERM $broker
wait $broker || fail "broker exited with $?"
trap - EXIT
echo 1 >/sys/bus/pci/rescan
note "BAR pools: denied to nobody, revoked on hot-remove and by pmctl under a holder"
