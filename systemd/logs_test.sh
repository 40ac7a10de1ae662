#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The broker's log lines and its start-up errors:
#
#   systemd/logs_test.sh PAGEMAPD TOPOLOGY
#
# - stderr a file: plain lines, "pagemapd: " then "error: " or "warning: "
#   for those levels, no "<N>" anywhere;
# - $JOURNAL_STREAM naming stderr (as systemd sets it): each line starts
#   with its syslog priority, <3> errors, <4> warnings, <6> the rest;
# - $JOURNAL_STREAM naming another stream (inherited, stderr redirected
#   since): plain again;
# - --config with a missing file or a directory: the file and the errno
#   named, exit 2;
# - a start that fails after the socket is bound leaves no socket file;
# - a start that fails because another broker listens leaves that
#   broker's socket alone.
set -uo pipefail

PAGEMAPD=${1:-}
TOPO=${2:-}
if [[ -z $PAGEMAPD || ! -x $PAGEMAPD || ! -f $TOPO ]]; then
	echo "usage: $0 PAGEMAPD TOPOLOGY" >&2
	exit 2
fi

# shellcheck source=test-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

# A topology not marked emulated: the broker warns, then serves it anyway.
sed 's/"emulated": true/"emulated": false/' "$TOPO" >"$TMP/topo.json"
grep -q '"emulated": false' "$TMP/topo.json" || { echo "FAIL: $TOPO has no \"emulated\": true" >&2; exit 1; }

# run LOG [ENV...]: a broker until it serves, then SIGTERM; its stderr in LOG.
run() {
	local log=$1 rc
	shift
	: >"$log"
	env "$@" "$PAGEMAPD" --socket "$TMP/s.sock" --topology "$TMP/topo.json" 2>>"$log" &
	BPID=$!
	wait_for 10 grep -q "listening on" "$log" || fail "$log: the broker does not start: $(cat "$log")"
	kill -TERM "$BPID"
	wait "$BPID"
	rc=$?
	BPID=
	[[ $rc -eq 0 ]] || fail "$log: exit $rc after SIGTERM"
}

run "$TMP/plain.log" JOURNAL_STREAM=
if grep -q '<[0-9]>' "$TMP/plain.log"; then
	fail "<N> prefixes in a log file: $(grep -m1 '<[0-9]>' "$TMP/plain.log")"
else
	ok "a log file has no <N> prefixes"
fi
grep -q "^pagemapd: warning: .* is not marked emulated" "$TMP/plain.log" &&
	ok "warnings say so: $(grep -m1 '^pagemapd: warning: ' "$TMP/plain.log")" ||
	fail "no 'pagemapd: warning: ' line: $(cat "$TMP/plain.log")"
grep -q "^pagemapd: listening on $TMP/s.sock " "$TMP/plain.log" && ok "information lines are plain" ||
	fail "no plain 'pagemapd: listening on' line: $(cat "$TMP/plain.log")"
bad=$(grep -v '^pagemapd: ' "$TMP/plain.log")
[[ -z $bad ]] && ok "every line starts with 'pagemapd: '" || fail "lines without 'pagemapd: ': $bad"

# The journal's own stream is a socket; any file whose device and inode
# $JOURNAL_STREAM names is one to the broker.
: >"$TMP/journal.log"
stream=$(stat -c '%d:%i' "$TMP/journal.log")
run "$TMP/journal.log" JOURNAL_STREAM="$stream"
grep -q "^<4>.* is not marked emulated" "$TMP/journal.log" && ok "journal: <4> for a warning" ||
	fail "journal: no <4> warning: $(cat "$TMP/journal.log")"
grep -q "^<6>listening on $TMP/s.sock " "$TMP/journal.log" && ok "journal: <6> for information" ||
	fail "journal: no <6> line: $(cat "$TMP/journal.log")"
bad=$(grep -v '^<[3467]>' "$TMP/journal.log")
[[ -z $bad ]] && ok "journal: every line has its priority" || fail "journal: lines without <N>: $bad"
grep -q '^<[0-9]>pagemapd: ' "$TMP/journal.log" &&
	fail "journal: the program's name repeated (the journal has it): $(head -n1 "$TMP/journal.log")"

: >"$TMP/other.log"
run "$TMP/redirected.log" JOURNAL_STREAM="$(stat -c '%d:%i' "$TMP/other.log")"
grep -q '<[0-9]>' "$TMP/redirected.log" &&
	fail "JOURNAL_STREAM of another stream: <N> prefixes: $(head -n1 "$TMP/redirected.log")" ||
	ok "JOURNAL_STREAM naming another stream: plain"

# An error the broker logs at start: a state directory that cannot be.
: >"$TMP/file"
"$PAGEMAPD" --socket "$TMP/e.sock" --topology "$TOPO" --state-dir "$TMP/file/state" 2>"$TMP/err.log"
rc=$?
[[ $rc -eq 1 ]] && ok "a state directory under a file: exit 1" || fail "state directory under a file: exit $rc"
grep -q "^pagemapd: error: state directory $TMP/file/state: Not a directory$" "$TMP/err.log" &&
	ok "errors say so: $(cat "$TMP/err.log")" || fail "no 'pagemapd: error: ' line: $(cat "$TMP/err.log")"
[[ ! -e $TMP/e.sock ]] && ok "a failed start leaves no socket file" ||
	fail "a failed start left $TMP/e.sock behind"

# --config: what is wrong with the file, named.
expect_config_err() { # PATH NEEDLE...
	local path=$1 rc n
	shift
	"$PAGEMAPD" --config "$path" --socket "$TMP/c.sock" --topology "$TOPO" 2>"$TMP/cfg.err"
	rc=$?
	[[ $rc -eq 2 ]] || fail "--config $path: exit $rc, expected 2"
	for n in "$@"; do
		grep -qF -- "$n" "$TMP/cfg.err" || fail "--config $path: '$n' not in: $(cat "$TMP/cfg.err")"
	done
	grep -q "json_object\|json_tokener\|json-c" "$TMP/cfg.err" && fail "--config $path: json-c's message: $(cat "$TMP/cfg.err")"
	[[ ! -e $TMP/c.sock ]] || fail "--config $path: a socket file was made"
	ok "--config $path: $(cat "$TMP/cfg.err")"
}
expect_config_err "$TMP/nonexistent.json" "$TMP/nonexistent.json" "No such file or directory" ENOENT
expect_config_err "$TMP" "$TMP" "Is a directory" EISDIR

# Another broker listens on the path: this one fails, and leaves it be.
"$PAGEMAPD" --socket "$TMP/s.sock" --topology "$TOPO" 2>"$TMP/first.log" &
BPID=$!
wait_for 10 test -S "$TMP/s.sock" || fail "no first broker: $(cat "$TMP/first.log")"
"$PAGEMAPD" --socket "$TMP/s.sock" --topology "$TOPO" 2>"$TMP/second.log"
rc=$?
[[ $rc -eq 1 ]] && grep -q "Address already in use" "$TMP/second.log" &&
	ok "a second broker on the path: exit 1 ($(cat "$TMP/second.log"))" ||
	fail "a second broker on the path: exit $rc: $(cat "$TMP/second.log")"
[[ -S $TMP/s.sock ]] && ok "the first broker's socket is still there" ||
	fail "the second broker removed the first one's socket"
kill -TERM "$BPID"
wait "$BPID" || fail "the first broker: exit $? after SIGTERM"
BPID=
[[ $FAILS -eq 0 ]]
