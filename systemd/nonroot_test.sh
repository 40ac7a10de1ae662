#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# A user reaches root's broker, laid out as pagemapd.service lays it out:
#
#   systemd/nonroot_test.sh PAGEMAPD PMCTL PAGEMAP_INFO TOPOLOGY
#
# root's broker listens in a runtime directory made as RuntimeDirectory=
# makes it (root's, 0755); its socket is 0666 (SocketMode=, or the broker's
# own umask at bind). As nobody (uid 65534, no groups): pmctl stats, a
# pagemap opened (pagemap-info node0), pmctl pagemaps listing it; and pmctl
# revoke refused, since what a user may do is the broker's policy, not the
# socket's mode. Exit 77 (skip) unless root with setpriv, or when nobody
# cannot run the build's binaries.
set -uo pipefail

PAGEMAPD=${1:-}
PMCTL=${2:-}
INFO=${3:-}
TOPO=${4:-}
for b in "$PAGEMAPD" "$PMCTL" "$INFO"; do
	if [[ -z $b || ! -x $b ]]; then
		echo "usage: $0 PAGEMAPD PMCTL PAGEMAP_INFO TOPOLOGY ('$b' is not executable)" >&2
		exit 2
	fi
done
if [[ ! -f $TOPO ]]; then
	echo "usage: $0 PAGEMAPD PMCTL PAGEMAP_INFO TOPOLOGY ('$TOPO' is not a file)" >&2
	exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "SKIP: needs root (a root broker, and setpriv to become nobody)"
	exit 77
fi
if ! command -v setpriv >/dev/null; then
	echo "SKIP: no setpriv"
	exit 77
fi
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if ! nobody "$PMCTL" --version >/dev/null 2>&1; then
	echo "SKIP: uid 65534 cannot run $PMCTL (a build directory others cannot read)"
	exit 77
fi

# shellcheck source=test-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

# $TMP stands in for /run: searchable by all, as /run is.
chmod 0755 "$TMP"
RUN=$TMP/run/pagemap
install -d -m 0755 "$TMP/run"
install -d -m 0755 -o root -g root "$RUN"
SOCK=$RUN/broker.sock
"$PAGEMAPD" --socket "$SOCK" --topology "$TOPO" --linger-ms 60000 2>"$TMP/broker.log" &
BPID=$!
wait_for 10 test -S "$SOCK" || fail "no socket: $(cat "$TMP/broker.log")"

[[ $(stat -c %a "$RUN") == 755 ]] && ok "runtime directory 0755" ||
	fail "runtime directory mode $(stat -c %a "$RUN")"
[[ $(stat -c %a "$SOCK") == 666 ]] && ok "socket 0666" || fail "socket mode $(stat -c %a "$SOCK")"

if nobody "$PMCTL" --socket "$SOCK" stats >"$TMP/stats" 2>&1; then
	ok "nobody: pmctl stats"
else
	fail "nobody: pmctl stats: $(cat "$TMP/stats")"
fi
if PAGEMAP_SOCKET=$SOCK nobody "$INFO" node0 >"$TMP/info" 2>&1; then
	ok "nobody: opens node0 ($(cat "$TMP/info"))"
else
	fail "nobody: pagemap-info node0: $(cat "$TMP/info")"
fi
if nobody "$PMCTL" --socket "$SOCK" pagemaps >"$TMP/pagemaps" 2>&1 && grep -q node0 "$TMP/pagemaps"; then
	ok "nobody: pmctl pagemaps lists node0"
else
	fail "nobody: pmctl pagemaps: $(cat "$TMP/pagemaps")"
fi
if nobody "$PMCTL" --socket "$SOCK" revoke node0 >"$TMP/revoke" 2>&1; then
	fail "nobody: pmctl revoke node0 was allowed"
else
	ok "nobody: pmctl revoke refused by the broker ($(head -n1 "$TMP/revoke"))"
fi

kill -TERM "$BPID"
wait "$BPID"
rc=$?
BPID=
[[ $rc -eq 0 ]] && ok "broker: SIGTERM, exit 0" || fail "broker exit $rc: $(tail -n5 "$TMP/broker.log")"
[[ ! -e $SOCK ]] && ok "its own socket file removed" || fail "socket file left after a clean stop"
[[ $FAILS -eq 0 ]]
