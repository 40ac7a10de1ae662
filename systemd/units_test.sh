#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The units as meson generated them, checked offline (no running systemd
# needed):
#
#   systemd/units_test.sh SERVICE SOCKET PAGEMAPD
#
# - systemd-analyze verify says nothing about either: an unknown key or a
#   bad value only warns (exit 0), so any output fails. ExecStart points at
#   the installed path, which verify wants to exist: a copy with it
#   rewritten to the build's PAGEMAPD is verified.
# - the checker itself: a copy with an unknown key must be caught.
# - the socket is where the broker and its clients look for root's broker.
# - systemd-analyze security --offline: the sandbox's exposure stays at
#   or below 3.0 ("OK"), so a hardening option lost on the way is noticed.
# Exit 77 (skip) without systemd-analyze.
set -uo pipefail

SERVICE=${1:-}
SOCKET=${2:-}
PAGEMAPD=${3:-}
for f in "$SERVICE" "$SOCKET"; do
	if [[ ! -f $f ]]; then
		echo "usage: $0 SERVICE SOCKET PAGEMAPD ('$f' is not a file)" >&2
		exit 2
	fi
done
if [[ ! -x $PAGEMAPD ]]; then
	echo "usage: $0 SERVICE SOCKET PAGEMAPD ('$PAGEMAPD' is not executable)" >&2
	exit 2
fi
if ! command -v systemd-analyze >/dev/null; then
	echo "SKIP: no systemd-analyze"
	exit 77
fi

# shellcheck source=test-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/test-lib.sh"

# unit_copy DIR: the units in DIR, the service's ExecStart at the build's broker.
unit_copy() {
	mkdir -p "$1"
	sed -E "s#^ExecStart=[^ ]*/pagemapd( |\$)#ExecStart=$PAGEMAPD\1#" "$SERVICE" >"$1/pagemapd.service"
	cp "$SOCKET" "$1/pagemapd.socket"
}
# verify DIR: systemd-analyze verify's output on DIR's units (empty: clean).
verify() {
	(cd "$1" && systemd-analyze verify --man=no ./pagemapd.socket ./pagemapd.service 2>&1)
}

unit_copy "$TMP/ok"
grep -q "^ExecStart=$PAGEMAPD " "$TMP/ok/pagemapd.service" ||
	fail "ExecStart not rewritten: $(grep '^ExecStart=' "$TMP/ok/pagemapd.service")"
out=$(verify "$TMP/ok")
rc=$?
if [[ $rc -eq 0 && -z $out ]]; then
	ok "systemd-analyze verify: both units clean"
else
	fail "systemd-analyze verify (exit $rc): $out"
fi

unit_copy "$TMP/bad"
sed -i 's/^\[Service\]$/[Service]\nSandboxEverything=yes/' "$TMP/bad/pagemapd.service"
out=$(verify "$TMP/bad")
if grep -q "SandboxEverything" <<<"$out"; then
	ok "an unknown key is caught ($(head -n1 <<<"$out"))"
else
	fail "the check does not see an unknown key: '$out'"
fi

listen=$(sed -n 's/^ListenStream=//p' "$SOCKET")
if [[ $listen == /run/pagemap/broker.sock ]] && "$PAGEMAPD" --help | grep -qF "$listen"; then
	ok "the socket is root's broker's default path ($listen)"
else
	fail "ListenStream=$listen is not the path the broker documents: $("$PAGEMAPD" --help | grep -F /run/)"
fi
mode=$(sed -n 's/^SocketMode=//p' "$SOCKET")
[[ $mode == 0666 ]] && ok "SocketMode=0666" || fail "SocketMode=$mode, expected 0666"
dmode=$(sed -n 's/^RuntimeDirectoryMode=//p' "$SERVICE")
[[ $dmode == 0755 ]] && ok "RuntimeDirectoryMode=0755" || fail "RuntimeDirectoryMode=$dmode"

if systemd-analyze security --help 2>/dev/null | grep -q -- --threshold; then
	out=$(cd "$TMP/ok" && systemd-analyze security --offline=yes --threshold=30 \
		./pagemapd.service 2>&1)
	rc=$?
	level=$(grep -o 'Overall exposure level for pagemapd.service: [0-9.]* [A-Z]*' <<<"$out")
	if [[ $rc -eq 0 && -n $level ]]; then
		ok "$level (at most 3.0 wanted)"
	else
		fail "systemd-analyze security (exit $rc): ${level:-$(tail -n3 <<<"$out")}"
	fi
else
	echo "note: systemd-analyze security has no --threshold here: exposure not checked"
fi

[[ $FAILS -eq 0 ]]
