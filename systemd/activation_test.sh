#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Socket activation and sd_notify for real, as pagemapd.service gets them:
#
#   systemd/activation_test.sh PAGEMAPD PMCTL NOTIFY_LISTEN PAGEMAP_INFO TOPOLOGY HAVE_LIBSYSTEMD
#
# systemd-socket-activate holds the socket and starts the broker on the
# first connection, as pagemapd.socket does; NOTIFY_LISTEN plays the
# manager's notify socket ($NOTIFY_SOCKET). Checks:
# - the connection that started the broker is served (pmctl stats);
# - READY=1 and STATUS= come from the broker's pid, STATUS= names its
#   pools, and is sent again when a pagemap appears;
# - the log names the passed socket, which the broker leaves in place;
# - SIGTERM: STOPPING=1, exit 0;
# - two passed sockets are refused: exit 1, the log says why, ERRNO= goes
#   to the manager.
# Exit 77 (skip) without systemd-socket-activate or libsystemd.
set -uo pipefail

PAGEMAPD=${1:-}
PMCTL=${2:-}
LISTEN=${3:-}
INFO=${4:-}
TOPO=${5:-}
HAVE_SD=${6:-}
for b in "$PAGEMAPD" "$PMCTL" "$LISTEN" "$INFO"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 PAGEMAPD PMCTL NOTIFY_LISTEN PAGEMAP_INFO TOPOLOGY yes|no ('$b' is not executable)" >&2
		exit 2
	fi
done
if [[ ! -f $TOPO ]]; then
	echo "usage: $0 ... TOPOLOGY ('$TOPO' is not a file)" >&2
	exit 2
fi
if [[ $HAVE_SD != yes ]]; then
	echo "SKIP: pagemapd is built without libsystemd: no socket activation, no sd_notify"
	exit 77
fi
if ! command -v systemd-socket-activate >/dev/null; then
	echo "SKIP: no systemd-socket-activate"
	exit 77
fi

# shellcheck source=test-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"
# notified PID REGEX: the notify socket got a line matching REGEX from PID.
notified() { grep -qE "^$1 $2" "$TMP/notify.out"; }

SOCK=$TMP/broker.sock
NOTIFY=$TMP/notify
"$LISTEN" "$NOTIFY" 100 >"$TMP/notify.out" 2>"$TMP/notify.err" &
LPID=$!
PIDS+=("$LPID")
wait_for 5 test -S "$NOTIFY" || { echo "FAIL: notify_listen: $(cat "$TMP/notify.err")" >&2; exit 1; }

# systemd-socket-activate passes on only the environment it is told to.
systemd-socket-activate -l "$SOCK" --fdname=pagemapd -E NOTIFY_SOCKET="$NOTIFY" \
	"$PAGEMAPD" --topology "$TOPO" --linger-ms 60000 >"$TMP/broker.log" 2>&1 &
BPID=$!
PIDS+=("$BPID")
wait_for 10 test -S "$SOCK" || fail "no socket from systemd-socket-activate: $(cat "$TMP/broker.log")"
notified "$BPID" READY= && fail "READY=1 before any client connected: not socket activation"

# The first connection starts the broker, which then serves it.
if "$PMCTL" --socket "$SOCK" stats >"$TMP/stats" 2>&1; then
	ok "the connection that activated the broker is served"
else
	fail "pmctl stats through the activated socket: $(cat "$TMP/stats") / $(cat "$TMP/broker.log")"
fi
wait_for 10 notified "$BPID" 'READY=1$' && ok "READY=1 from the broker's pid $BPID" ||
	fail "no READY=1 from pid $BPID: $(cat "$TMP/notify.out")"
wait_for 5 notified "$BPID" 'STATUS=serving [0-9]+ pools?, 0 pagemaps, [0-9]+ sessions?$' &&
	ok "STATUS: $(grep -m1 STATUS= "$TMP/notify.out")" ||
	fail "no STATUS=serving ... from pid $BPID: $(cat "$TMP/notify.out")"
grep -q "listening on systemd socket $SOCK " "$TMP/broker.log" && ok "the log names the passed socket" ||
	fail "the log does not name the passed socket: $(cat "$TMP/broker.log")"

# A pagemap (kept by --linger-ms): the status says so within its second.
PAGEMAP_SOCKET=$SOCK "$INFO" node0 >"$TMP/info" 2>&1 || fail "pagemap-info node0: $(cat "$TMP/info")"
wait_for 5 notified "$BPID" 'STATUS=serving [0-9]+ pools?, 1 pagemap, ' &&
	ok "STATUS follows: $(grep 'STATUS=.* 1 pagemap,' "$TMP/notify.out" | head -n1)" ||
	fail "STATUS not updated for the new pagemap: $(cat "$TMP/notify.out")"

kill -TERM "$BPID"
wait "$BPID"
rc=$?
[[ $rc -eq 0 ]] && ok "SIGTERM: exit 0" || fail "SIGTERM: exit $rc: $(tail -n5 "$TMP/broker.log")"
wait_for 5 notified "$BPID" 'STOPPING=1$' && ok "STOPPING=1 on SIGTERM" ||
	fail "no STOPPING=1: $(cat "$TMP/notify.out")"
[[ -S $SOCK ]] && ok "the passed socket's file is left to its owner" ||
	fail "the broker unlinked a socket it did not bind"
grep -q '<[0-9]>' "$TMP/broker.log" && fail "<N> prefixes in a log file: $(head -n3 "$TMP/broker.log")"

# Two sockets: a unit written wrong. Refused, said, and told to the manager.
SOCK2=$TMP/second.sock
systemd-socket-activate -l "$SOCK" -l "$SOCK2" -E NOTIFY_SOCKET="$NOTIFY" \
	"$PAGEMAPD" --topology "$TOPO" >"$TMP/two.log" 2>&1 &
TPID=$!
PIDS+=("$TPID")
wait_for 10 test -S "$SOCK2" || fail "no second socket: $(cat "$TMP/two.log")"
"$PMCTL" --socket "$SOCK" stats >/dev/null 2>&1
wait "$TPID"
rc=$?
[[ $rc -eq 1 ]] && ok "two passed sockets: exit 1" || fail "two passed sockets: exit $rc"
grep -q "error: systemd passed 2 sockets" "$TMP/two.log" && ok "the log says why" ||
	fail "two passed sockets: the log does not say so: $(cat "$TMP/two.log")"
wait_for 5 notified "$TPID" 'ERRNO=22$' && ok "ERRNO=22 to the manager" ||
	fail "no ERRNO= from pid $TPID: $(cat "$TMP/notify.out")"

kill -TERM "$LPID"
wait "$LPID" || fail "notify_listen: $(cat "$TMP/notify.err")"
[[ $FAILS -eq 0 ]]
