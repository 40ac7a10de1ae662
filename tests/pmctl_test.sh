#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# pmctl against a real pagemapd on a temporary socket.
#
#   tests/pmctl_test.sh PMCTL PAGEMAPD PM_OPEN_HOLD SOURCE_ROOT [PM_ALLOC_HOLD]
#
# Serves examples/topologies/qemu-pcie.json (emulated) with --linger-ms 200,
# opens node0 and the ivshmem device 0000:03:00.0 from a helper process that
# holds them, then checks `pmctl pagemaps/clients/stats` (table and --json,
# compared with the ids the helper printed), `pmctl revoke`, that a pagemap
# torn down after the last holder dies and the linger ends is no longer
# listed, `pmctl ranges` against the runs an allocation holder placed
# (PM_ALLOC_HOLD, default pm_alloc_hold beside PM_OPEN_HOLD), and the error
# paths (each must exit non-zero and name the bad input on stderr). Exit 77
# (skip) without jq.
set -uo pipefail

PMCTL=${1:-}
PAGEMAPD=${2:-}
HOLD=${3:-}
SRC=${4:-}
ALLOC_HOLD=${5:-$(dirname -- "$HOLD")/pm_alloc_hold}
for b in "$PMCTL" "$PAGEMAPD" "$HOLD"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 PMCTL PAGEMAPD PM_OPEN_HOLD SOURCE_ROOT ('$b' is not executable)" >&2
		exit 2
	fi
done
TOPO=$SRC/examples/topologies/qemu-pcie.json
if [[ ! -f $TOPO ]]; then
	echo "usage: $0 PMCTL PAGEMAPD PM_OPEN_HOLD SOURCE_ROOT (no $TOPO)" >&2
	exit 2
fi
if ! command -v jq >/dev/null; then
	echo "SKIP: jq is needed to check pmctl --json" >&2
	exit 77
fi

TMP=$(mktemp -d)
SOCK=$TMP/broker.sock
BROKER_PID=
HOLD_PIDS=()
cleanup() {
	for p in "${HOLD_PIDS[@]}" $BROKER_PID; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT

PASS=0
FAILS=0
ok() {
	PASS=$((PASS + 1))
	echo "ok: $*"
}
fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*" >&2
}
# expect NAME ACTUAL EXPECTED
expect() {
	if [[ "$2" == "$3" ]]; then ok "$1"; else fail "$1: got '$2', expected '$3'"; fi
}
# expect_err NAME NEEDLE CMD...: CMD exits non-zero and NEEDLE is in its stderr
expect_err() {
	local name=$1 needle=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>"$TMP/err"
	rc=$?
	if [[ $rc -eq 0 ]]; then
		fail "$name: exit 0, expected non-zero"
	elif ! grep -qF -- "$needle" "$TMP/err"; then
		fail "$name: stderr does not name '$needle': $(cat "$TMP/err")"
	else
		ok "$name (exit $rc: $(head -n1 "$TMP/err"))"
	fi
}
# pmctl with the socket from the environment (the --socket path is tested too)
pm() {
	PAGEMAP_SOCKET=$SOCK "$PMCTL" "$@"
}
# wait_for SECONDS CMD...: retries CMD every 50 ms until it succeeds
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.05
	done
}
# lines_ge FILE N: FILE has at least N lines
lines_ge() {
	[[ -f $1 && $(wc -l <"$1") -ge $2 ]]
}
# hold OUTFILE DEVICE...: starts the helper, waits for its ids; sets HOLD_PID
hold() {
	local out=$1
	shift
	PAGEMAP_SOCKET=$SOCK "$HOLD" --timeout 0 "$@" >"$out" 2>"$out.err" &
	HOLD_PID=$!
	HOLD_PIDS+=("$HOLD_PID")
	if ! wait_for 10 lines_ge "$out" $# || grep -q '^error ' "$out"; then
		fail "pm_watch $*: no ids: $(cat "$out" "$out.err")"
		return 1
	fi
}
# id_of OUTFILE DEVICE
id_of() {
	awk -v d="$2" '$1 == "open" && $2 == d { sub(/^id=/, "", $3); print $3 }' "$1"
}

# --- no broker yet: every command names the socket it could not reach --------
expect_err "no broker at --socket" "cannot connect to $TMP/none.sock" \
	"$PMCTL" --socket "$TMP/none.sock" stats
expect_err "no broker at \$PAGEMAP_SOCKET" "cannot connect to $TMP/none.sock" \
	env PAGEMAP_SOCKET="$TMP/none.sock" "$PMCTL" --json pagemaps

# --- usage errors need no broker ---------------------------------------------
expect_err "unknown command" "frobnicate" pm frobnicate
expect_err "revoke without DEVICE" "revoke" pm revoke
expect_err "no command" "COMMAND" pm
expect_err "extra argument" "surplus" pm stats surplus
expect_err "ranges: SESSION_ID not a number" "'abc'" pm ranges abc
expect_err "ranges: SESSION_ID out of range" "99999999999999999999999" \
	pm ranges 99999999999999999999999
expect_err "ranges: two arguments" "unexpected argument '2'" pm ranges 1 2
expect_err "unknown option" "--bogus" pm --bogus stats
"$PMCTL" --help | grep -q "revoke \[--force\] DEVICE" && "$PMCTL" --help | grep -q "restore DEVICE" &&
	"$PMCTL" --help | grep -q "^  pools" && ok "--help" || fail "--help does not list pools, revoke, restore"
expect_err "restore without DEVICE" "restore" pm restore
expect_err "--force with another command" "--force is for revoke only" pm --force pools
"$PMCTL" --version | grep -qE '^pmctl [0-9]' && ok "--version" || fail "--version"

# --- the broker ----------------------------------------------------------------
"$PAGEMAPD" --socket "$SOCK" --topology "$TOPO" --linger-ms 200 2>"$TMP/broker.log" &
BROKER_PID=$!
if ! wait_for 10 pm stats >/dev/null 2>&1; then
	fail "pagemapd did not start: $(cat "$TMP/broker.log")"
	echo "$PASS passed, $FAILS failed"
	exit 1
fi
ok "pagemapd answers on $SOCK"

J=$(pm --json pagemaps | jq .pagemaps)
expect "no pagemaps before any open" "$(jq length <<<"$J")" 0

hold "$TMP/hold1" node0 0000:03:00.0 || { echo "$PASS passed, $FAILS failed"; exit 1; }
H1=$HOLD_PID
ID_NODE0=$(id_of "$TMP/hold1" node0)
ID_IVSHMEM=$(id_of "$TMP/hold1" 0000:03:00.0)

# --- pagemaps --json -----------------------------------------------------------
J=$("$PMCTL" --socket "$SOCK" --json pagemaps | jq .pagemaps)
expect "pagemaps: count" "$(jq length <<<"$J")" 2
expect "pagemaps: every field present" \
	"$(jq '[.[] | . as $o | ["id", "device", "region", "kind", "state", "refs", "capacity",
		"used", "numa_node", "addr_bits"] | map(. as $k | $o | has($k)) | all] | all' \
		<<<"$J")" true
expect "pagemaps: all active" "$(jq -c '[.[].state] | unique' <<<"$J")" '["active"]'
expect "pagemaps: refs 1 each" "$(jq -c '[.[].refs] | unique' <<<"$J")" '[1]'
expect "pagemaps: node0 id as pagemap_query gave it" \
	"$(jq '.[] | select(.device == "node0") | .id' <<<"$J")" "$ID_NODE0"
expect "pagemaps: node0 kind" "$(jq -r '.[] | select(.device == "node0") | .kind' <<<"$J")" \
	host-numa
expect "pagemaps: node0 numa_node" \
	"$(jq '.[] | select(.device == "node0") | .numa_node' <<<"$J")" 0
expect "pagemaps: ivshmem id" \
	"$(jq '.[] | select(.device == "0000:03:00.0") | .id' <<<"$J")" "$ID_IVSHMEM"
expect "pagemaps: ivshmem kind, region" \
	"$(jq -r '.[] | select(.device == "0000:03:00.0") | "\(.kind) \(.region)"' <<<"$J")" \
	"emulated mem"
expect "pagemaps: capacities positive, used within" \
	"$(jq '[.[] | .capacity > 0 and .used <= .capacity] | all' <<<"$J")" true

# A second holder shares the pagemap: same id, two references.
hold "$TMP/hold2" node0 || true
H2=$HOLD_PID
expect "second open shares the pagemap" "$(id_of "$TMP/hold2" node0)" "$ID_NODE0"
expect "shared pagemap has refs 2" \
	"$(pm --json pagemaps | jq '.pagemaps[] | select(.device == "node0") | .refs')" 2
kill -9 "$H2" && wait "$H2" 2>/dev/null
refs_back() {
	[[ $(pm --json pagemaps | jq '.pagemaps[] | select(.device == "node0") | .refs') == 1 ]]
}
wait_for 5 refs_back && ok "a killed holder's reference goes: refs 1" ||
	fail "node0 refs did not drop back to 1 after SIGKILL of a holder"

# --- pagemaps (table) ------------------------------------------------------------
T=$(pm pagemaps)
if head -n1 <<<"$T" | grep -qE '^ID +DEVICE +REGION +KIND +STATE +REFS +CAPACITY +USED +NUMA'; then
	ok "pagemaps table header"
else
	fail "pagemaps table header: $(head -n1 <<<"$T")"
fi
expect "pagemaps table rows" "$(tail -n +2 <<<"$T" | wc -l)" 2
grep -qE "^$ID_IVSHMEM +0000:03:00.0 +mem +emulated +active +1 " <<<"$T" &&
	ok "pagemaps table ivshmem row" || fail "pagemaps table ivshmem row: $T"

# --- clients -------------------------------------------------------------------
C=$(pm clients)
if grep -qE "^[0-9]+ +$H1 +$(id -u) +[0-9]+ +2 +pm_watch" <<<"$C"; then
	ok "clients: the holder with 2 handles"
else
	fail "clients: no row for pid $H1 with 2 handles: $C"
fi
grep -q "(this pmctl)" <<<"$C" && ok "clients: pmctl's own session marked" ||
	fail "clients: own session not marked: $C"
CJ=$(pm --json clients | jq .clients)
expect "clients --json: holder" \
	"$(jq -c --argjson p "$H1" '.[] | select(.pid == $p) | [.handles, .client, .uid]' <<<"$CJ")" \
	"[2,\"pm_watch\",$(id -u)]"

# --- stats ---------------------------------------------------------------------
S=$(pm stats)
missing=
for k in sessions pagemaps handles created revived torn_down reclaimed revoked denied \
	protocol_errors allocations allocated_bytes bytes_direct bytes_bounced bytes_host faults; do
	grep -qE "^$k +[0-9]+" <<<"$S" || missing+=" $k"
done
expect "stats: every counter" "${missing:-none missing}" "none missing"
SJ=$(pm --json stats)
expect "stats --json: pagemaps, handles, created" \
	"$(jq -c '[.pagemaps, .handles, .created]' <<<"$SJ")" "[2,2,2]"
expect "stats --json: sessions (holder + this pmctl)" "$(jq .sessions <<<"$SJ")" 2
expect "stats --json: version, 16 counters, the engines, zero-copy, staged and P2P DMA bytes" \
	"$(jq -c '[.version, (keys | length)]' <<<"$SJ")" "[1,21]"
expect "stats --json: the copy engines" "$(jq -c '.engines | keys' <<<"$SJ")" \
	'["block","cpu","cuda","verbs"]'
T=$(pm stats)
grep -qE "^cpu +[0-9.]+ [KMGT]?i?B" <<<"$T" && ok "stats: the engine table" ||
	fail "stats: no engine table: $T"

# --- pools -----------------------------------------------------------------------
PJ=$(pm --json pools)
expect "pools --json: a versioned envelope" "$(jq -c '[.version, (.pools | type)]' <<<"$PJ")" \
	'[1,"array"]'
expect "pools: node0 is live, its pagemap the holder's" \
	"$(jq -c ".pools[] | select(.device == \"node0\") | [.state, .pagemap_id]" <<<"$PJ")" \
	"[\"live\",$ID_NODE0]"
expect "pools: the emulated machine's nodes and device pools, sizes as numbers" \
	"$(jq -c '[(.pools | length > 2), all(.pools[]; (.capacity | type) == "number" and
		(.free | type) == "number" and (.kind == "host-numa" or .free <= .capacity)),
		([.pools[].kind] | index("host-numa") != null), ([.pools[].kind] | index("emulated") != null)]' \
		<<<"$PJ")" "[true,true,true,true]"
T=$(pm pools)
[[ $(head -n1 <<<"$T") == DEVICE*REGION*KIND*NUMA*CAPACITY*FREE*STATE*PATH ]] &&
	(($(wc -l <<<"$T") == $(jq '.pools | length' <<<"$PJ") + 1)) &&
	ok "pools: a table, one line per pool" || fail "pools table: $T"

# --- revoke --------------------------------------------------------------------
R=$(pm revoke 0000:03:00.0)
expect "revoke 0000:03:00.0" "$R" \
	"0000:03:00.0: revoked 1 pagemap; the device stays disabled until 'pmctl restore 0000:03:00.0'"
expect "pools: the revoked device" \
	"$(pm --json pools | jq -r '.pools[] | select(.device == "0000:03:00.0") | .state')" revoked
J=$(pm --json pagemaps | jq .pagemaps)
expect "revoked pagemap is gone from the list" \
	"$(jq '[.[] | select(.device == "0000:03:00.0")] | length' <<<"$J")" 0
expect "node0 untouched by the revoke" \
	"$(jq -c '.[] | select(.device == "node0") | [.id, .state, .refs]' <<<"$J")" \
	"[$ID_NODE0,\"active\",1]"
expect "stats: revoked 1" "$(pm --json stats | jq .revoked)" 1
expect_err "revoke of host memory without --force" "revoke it only with --force" pm revoke node1
expect "revoke --json --force of a device with no pagemap" \
	"$(pm --json --force revoke node1 | jq -c '[.device, .revoked]')" '["node1",0]'
expect "restore node1" "$(pm restore node1)" "node1: restored 1 pool: served again"
expect "restore twice" "$(pm restore node1)" \
	"node1: nothing to restore (not revoked, or its device is gone)"
expect "restore --json" "$(pm --json restore 0000:03:00.0 | jq -c '[.device, .restored]')" \
	'["0000:03:00.0",1]'
expect_err "revoke of an unknown device" "0000:99:00.0" pm revoke 0000:99:00.0
# Everything so far was well-formed: the broker counted no protocol error.
expect "stats: no protocol errors from pmctl" "$(pm --json stats | jq .protocol_errors)" 0
expect_err "revoke of an invalid name" "bad" pm revoke $'bad\tname'
# A name the broker rejects as malformed may count as a protocol error.
PE=$(pm --json stats | jq .protocol_errors)

# Another uid may not revoke (needs root to switch to one).
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
	chmod 755 "$TMP"
	chmod 666 "$SOCK"
	expect_err "revoke as another uid" "not allowed (root or the broker's user only)" \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$PMCTL" --socket "$SOCK" \
		revoke node0
	chmod 700 "$TMP"
else
	echo "note: not root (or no setpriv): the -EPERM path of revoke is not exercised"
fi

# --- teardown after the last holder and the linger ----------------------------
kill -9 "$H1" && wait "$H1" 2>/dev/null
gone() {
	[[ $(pm --json pagemaps | jq '.pagemaps | length') == 0 ]]
}
sleep 0.25
wait_for 5 gone && ok "torn-down pagemap is not listed" ||
	fail "pagemaps still listed after the holder died and the linger ended: $(pm --json pagemaps)"
SJ=$(pm --json stats)
expect "stats after teardown: pagemaps, handles, torn_down" \
	"$(jq -c '[.pagemaps, .handles, .torn_down]' <<<"$SJ")" "[0,0,1]"
expect "stats: no protocol errors since the deliberate one" "$(jq .protocol_errors <<<"$SJ")" "$PE"
expect "pagemaps table when empty" "$(pm pagemaps | tail -n1)" "(no live pagemaps)"

# --- peers: none configured
expect "peers with no peer brokers" "$(pm peers)" "(no peer brokers: see pagemapd --peer and --rdma-listen)"
expect "peers --json with no peer brokers" "$(pm --json peers | jq -c .peers)" "[]"

# --- ranges: the runs of a held allocation -------------------------------------
expect "ranges with no allocation" "$(pm ranges)" "(no managed allocations)"
expect "ranges --json with no allocation" "$(pm --json ranges | jq -c .allocations)" "[]"
expect_err "ranges of an unknown session" "999999" pm ranges 999999
if [[ -x $ALLOC_HOLD ]]; then
	# 16 MiB in 2 MiB chunks: 2 chunks preferred at and prefetched to the second
	# ivshmem pool (the first was revoked above) and accessed by node0, 2
	# migrated to node0, 4 left in system memory (read-mostly).
	PAGEMAP_SOCKET=$SOCK "$ALLOC_HOLD" --timeout 0 16 0000:04:00.0 node0 \
		>"$TMP/alloc" 2>"$TMP/alloc.err" &
	AH=$!
	HOLD_PIDS+=("$AH")
	if ! wait_for 10 grep -q '^ready$' "$TMP/alloc"; then
		fail "pm_alloc_hold: not ready: $(cat "$TMP/alloc" "$TMP/alloc.err")"
	else
		part_id() {
			awk -v p="$1" '$1 == "part" && $2 == p { sub(/^id=/, "", $6); print $6 }' \
				"$TMP/alloc"
		}
		P0=$(part_id 0)
		P1=$(part_id 1)
		AJ=$(pm --json ranges | jq .allocations)
		A=$(jq -c --argjson p "$AH" '[.[] | select(.pid == $p)]' <<<"$AJ")
		expect "ranges --json: one allocation of the holder" "$(jq length <<<"$A")" 1
		expect "ranges --json: size, chunk size, chunks, in flight" \
			"$(jq -c '.[0] | [.size, .chunk_size, .chunks, .in_flight]' <<<"$A")" \
			"[16777216,2097152,8,0]"
		expect "ranges --json: three runs covering 8 chunks" \
			"$(jq -c '.[0].runs | [length, (map(.chunks) | add), (map(.bytes) | add)]' \
				<<<"$A")" "[3,8,16777216]"
		expect "ranges --json: run 0 preferred at and resident in the ivshmem pool" \
			"$(jq -c '.[0].runs[0] | [.first_chunk, .chunks, .resident, .requested,
				(.advice | index("preferred") != null), .flags, .error]' <<<"$A")" \
			"[0,2,$P0,$P0,true,[],0]"
		expect "ranges --json: run 1 in node0, nothing requested" \
			"$(jq -c '.[0].runs[1] | [.first_chunk, .offset, .resident, .requested, .advice]' \
				<<<"$A")" "[2,4194304,$P1,null,[]]"
		expect "ranges --json: run 2 in system memory" \
			"$(jq -c '.[0].runs[2] | [.first_chunk, .chunks, .resident]' <<<"$A")" \
			'[4,4,0]'
		if grep -q '^advice accessed-by 0$' "$TMP/alloc"; then
			expect "ranges --json: run 0 accessed by node0" \
				"$(jq -c '.[0].runs[0] | [.advice, .accessed_by]' <<<"$A")" \
				"[[\"preferred\",\"accessed-by\"],[$P1]]"
		else
			echo "note: the broker refused ACCESSED_BY ($(grep accessed-by "$TMP/alloc")): not checked"
		fi
		if grep -q '^advice read-mostly 0$' "$TMP/alloc"; then
			expect "ranges --json: run 2 read-mostly" \
				"$(jq -c '.[0].runs[2].advice' <<<"$A")" '["read-mostly"]'
		else
			echo "note: the broker refused READ_MOSTLY ($(grep read-mostly "$TMP/alloc")): not checked"
		fi
		SID=$(pm --json clients | jq --argjson p "$AH" '.clients[] | select(.pid == $p) | .session_id')
		expect "ranges SESSION_ID: only that session" \
			"$(pm --json ranges "$SID" | jq -c '.allocations | [length, .[0].pid]')" "[1,$AH]"
		T=$(pm ranges "$SID")
		grep -qE "^session $SID, pid $AH: allocation [0-9]+, 16 MiB in 8 chunks of 2 MiB, 0 in flight$" \
			<<<"$T" && ok "ranges table: allocation line" || fail "ranges table: allocation line: $T"
		grep -qE '^  CHUNKS +BYTES +RESIDENT +REQUESTED +FLAGS +ADVICE +ERROR$' <<<"$T" &&
			ok "ranges table: run header" || fail "ranges table: run header: $T"
		grep -qE "^  0-1 +4 MiB +$P0 +$P0 +- +preferred( accessed-by:$P1)? +-$" <<<"$T" &&
			ok "ranges table: run 0" || fail "ranges table: run 0: $T"
		grep -qE "^  4-7 +8 MiB +system +none +- " <<<"$T" &&
			ok "ranges table: run 2" || fail "ranges table: run 2: $T"
		SJ=$(pm --json stats)
		expect "stats: the allocation and its bytes" \
			"$(jq -c '[.allocations, .allocated_bytes]' <<<"$SJ")" "[1,16777216]"
		expect "stats: bytes moved between host memory and the ivshmem pool" \
			"$(jq '.bytes_host >= 4194304' <<<"$SJ")" true
		expect "stats: the CPU engine moved them, none staged" \
			"$(jq '.engines.cpu.bytes >= 4194304 and .engines.cpu.bytes_staged == 0' <<<"$SJ")" true
		kill "$AH" && wait "$AH" 2>/dev/null
		gone_allocs() { [[ $(pm --json ranges | jq '.allocations | length') == 0 ]]; }
		wait_for 5 gone_allocs && ok "ranges: a dead holder's allocation goes" ||
			fail "ranges: allocation still listed after its holder died: $(pm ranges)"
	fi
else
	fail "no pm_alloc_hold at $ALLOC_HOLD: pmctl ranges with allocations not exercised"
fi

kill -0 "$BROKER_PID" 2>/dev/null && ok "broker still running" || fail "broker died"

# --- systemd socket activation: the broker serves the socket it is handed -----
if ! "$PAGEMAPD" --version | grep -q '+systemd'; then
	echo "note: pagemapd built without libsystemd: socket activation not exercised"
elif command -v systemd-socket-activate >/dev/null; then
	ASOCK=$TMP/activated.sock
	systemd-socket-activate -l "$ASOCK" "$PAGEMAPD" --topology "$SRC/examples/topologies/qemu-pcie.json" \
		>"$TMP/activated.log" 2>&1 &
	APID=$!
	up() { [[ -S $ASOCK ]] && "$PMCTL" --socket "$ASOCK" stats >/dev/null 2>&1; }
	wait_for 10 up && ok "socket-activated broker answers" || fail "socket activation: $(cat "$TMP/activated.log")"
	grep -q "listening on systemd socket" "$TMP/activated.log" && ok "it used the socket systemd passed" ||
		fail "socket activation: the broker did not take fd 3: $(cat "$TMP/activated.log")"
	kill "$APID" 2>/dev/null
	wait "$APID" 2>/dev/null
else
	echo "note: no systemd-socket-activate: socket activation not exercised"
fi

echo "$PASS passed, $FAILS failed"
[[ $FAILS -eq 0 ]]
