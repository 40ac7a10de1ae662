# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the systemd/ tests share (sourced, bash): a scratch directory $TMP
# that goes at exit together with the processes the test started ($BPID,
# and any pid in PIDS), ok/fail lines counted in FAILS, and polling.
TMP=$(mktemp -d)
BPID=
PIDS=()
cleanup() {
	local p
	for p in $BPID "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
ok() { echo "ok: $*"; }
fail() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*" >&2
}
# wait_for SECONDS CMD...: until CMD succeeds, polling every 0.05 s.
wait_for() {
	local end=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < end)) || return 1
		sleep 0.05
	done
}
