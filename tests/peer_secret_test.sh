#!/bin/bash
# SPDX-License-Identifier: MIT
# The peer secret file is read safely (docs/security.md): a symbolic link, a
# file others may read, one owned by another user and a FIFO (which would
# block the broker) are each refused with a log line that names the file and
# why; a proper one passes that check (and the broker then stops at the
# missing RDMA device, as this machine has none, or serves when it has one).
#   tests/peer_secret_test.sh PAGEMAPD SOURCE_ROOT
set -uo pipefail
pagemapd=$1
topo=$2/examples/topologies/qemu-pcie.json
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fail=0
head -c 32 /dev/urandom | base64 >"$d/secret"
chmod 600 "$d/secret"

# Runs the broker for at most 3 s with FILE as the secret; its log in $d/log.
try() {
	timeout 3 "$pagemapd" --socket "$d/sock" --topology "$topo" --peer-secret "$1" \
		--rdma-listen 127.0.0.1:7471 2>"$d/log"
}

expect_refused() { # FILE WHY
	try "$1"
	if grep -q "built without librdmacm" "$d/log"; then
		echo "SKIP: this pagemapd was built without peer brokers"
		exit 77
	fi
	if grep -q "peer secret $1: $2" "$d/log"; then
		echo "ok: $1 refused: $2"
	else
		echo "FAIL: $1: want 'peer secret $1: $2' in the log:"
		sed 's/^/  | /' "$d/log"
		fail=1
	fi
}

ln -s secret "$d/link"
expect_refused "$d/link" "is a symbolic link"
cp "$d/secret" "$d/open"
chmod 640 "$d/open"
expect_refused "$d/open" "must be ours or root's, mode 0600 or stricter"
mkfifo -m 600 "$d/fifo"
expect_refused "$d/fifo" "not a regular file"
if [[ $(id -u) -eq 0 ]]; then
	cp "$d/secret" "$d/theirs"
	chown 65534 "$d/theirs"
	expect_refused "$d/theirs" "must be ours or root's, mode 0600 or stricter"
fi
try "$d/secret"
if grep -q "peer secret" "$d/log"; then
	echo "FAIL: a proper secret file was refused:"
	sed 's/^/  | /' "$d/log"
	fail=1
else
	echo "ok: $d/secret accepted"
fi
exit $fail
