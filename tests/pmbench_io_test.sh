#!/bin/bash
# SPDX-License-Identifier: MIT
# pmbench io against a broker of its own (an emulated pool) and a file: both
# directions measured against the bounce baseline in one run, every byte
# checked, the baseline bouncing every byte, no P2P DMA claimed for an
# emulated pool; bad arguments name what is wrong and exit non-zero.
# Args: PMBENCH PAGEMAPD SOURCE_ROOT
set -euo pipefail
PMBENCH=$1 PAGEMAPD=$2 SRC=$3
# tmpfs: the broker reads only files of local kernel file systems (/tmp may
# be overlayfs).
TMP=$(mktemp -d -p /dev/shm)
trap 'kill "$BROKER" 2>/dev/null || true; rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_err() { # NAME WANT_RC WANT_TEXT CMD...
	local name=$1 rc_want=$2 text=$3 out rc=0
	shift 3
	out=$("$@" 2>&1) || rc=$?
	if [[ $rc == "$rc_want" && $out == *"$text"* ]]; then
		ok "$name (exit $rc)"
	else
		fail "$name: exit $rc, output: $out"
	fi
}

"$PAGEMAPD" --socket "$TMP/s" --topology "$SRC/examples/topologies/two-socket-mem.json" \
	2>"$TMP/log" &
BROKER=$!
for _ in $(seq 100); do [[ -S $TMP/s ]] && break; sleep 0.05; done
truncate -s 16M "$TMP/f"

J=$("$PMBENCH" io --json --socket "$TMP/s" --pagemap 0000:03:00.0 --file "$TMP/f" \
	--size 4M --samples 5) || fail "pmbench io exited $?"
check() { # NAME JQ_EXPR
	if jq -e "$2" >/dev/null <<<"$J"; then ok "$1"; else fail "$1: $(jq -c . <<<"$J")"; fi
}
check "two directions, store then load" '[.results[].op] == ["store", "load"]'
check "data verified in memory and file" '.verified == true'
check "the pool's kind" '.kind == "emulated"'
check "each direction has a ratio to its baseline" \
	'all(.results[]; (.ratio | type) == "number" and .ratio > 0 and .baseline.kind == "bounce")'
check "the baseline bounced every byte" \
	'all(.results[]; .baseline.bytes_staged == 4194304 and .baseline.bytes_p2p_dma == 0)'
check "no P2P DMA claimed for an emulated pool" 'all(.results[]; .bytes_p2p_dma == 0)'
check "the direct way moved every byte without the bounce buffer, or says why not" \
	'all(.results[]; .direct.bytes_dma == 4194304 or (.reason | length) > 0)'
out=$("$PMBENCH" io --socket "$TMP/s" --pagemap 0000:03:00.0 --file "$TMP/f" --size 2M \
	--samples 5)
[[ $out == *"store: "*"bounce "*"x"* && $out == *"verified: true"* ]] &&
	ok "summary names the baseline and the ratio" || fail "summary: $out"

expect_err "no --file" 2 "--pagemap and --file are required" \
	"$PMBENCH" io --socket "$TMP/s" --pagemap 0000:03:00.0
expect_err "a file that is not there" 1 "cannot open '$TMP/none'" \
	"$PMBENCH" io --socket "$TMP/s" --pagemap 0000:03:00.0 --file "$TMP/none"
expect_err "an unknown pagemap" 1 "--pagemap: cannot open 'nosuch'" \
	"$PMBENCH" io --socket "$TMP/s" --pagemap nosuch --file "$TMP/f"
expect_err "a size in part pages" 2 "--size: '1000'" \
	"$PMBENCH" io --socket "$TMP/s" --pagemap 0000:03:00.0 --file "$TMP/f" --size 1000
expect_err "too few samples" 2 "--samples: '2'" \
	"$PMBENCH" io --socket "$TMP/s" --pagemap 0000:03:00.0 --file "$TMP/f" --samples 2
kill -TERM "$BROKER"
wait "$BROKER" || fail "broker exited with $?"
echo "$((fails == 0 ? 1 : 0)) run, $fails failed"
((fails == 0))
