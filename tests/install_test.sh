#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# meson install gives a tree that works on its own.
#
#   tests/install_test.sh SOURCE_ROOT
#
# Configures a second build of the source tree with --prefix in a temporary
# directory and a libdir no dynamic linker searches (lib/pagemap), installs
# it, and removes that build, so nothing can come from it. Then, with no
# LD_LIBRARY_PATH: the layout is as documented (tools, broker, library,
# header, pkg-config file, example topologies and configuration, documents
# and example clients, bash completions, man pages); programs from outside
# the tree compile and link through pkg-config (a test program of its own,
# and examples/client/*.c copied out); the installed pagemapd serves an
# installed example topology on a temporary socket, and the outside
# programs, the installed pmctl, pmtopo and pmbench (rtt on --socket and with
# a broker of its own, which must be the installed one; topo, which runs the
# installed pmtopo) work against it. The build skips the CUnit suites
# (-Dtests=disabled) to stay quick. Exit 77 (skip) when meson, ninja, a C
# compiler, pkg-config, jq or readelf is missing.
set -uo pipefail
SRC=${1:-}
if [[ -z $SRC || ! -f $SRC/meson.build ]]; then
	echo "usage: $0 SOURCE_ROOT ('$SRC' has no meson.build)" >&2
	exit 2
fi
SRC=$(realpath "$SRC")
for t in meson ninja cc pkg-config jq readelf; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing"; exit 77; }
done
unset LD_LIBRARY_PATH PAGEMAPD PAGEMAP_SOCKET PKG_CONFIG_PATH
TMP=$(mktemp -d)
P=$TMP/prefix
LIBDIR=$P/lib/pagemap
BROKER_PID=
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*" >&2; }
# run NAME CMD...: exits 0 (output kept in $TMP/out, $TMP/err)
run() {
	local name=$1
	shift
	if "$@" >"$TMP/out" 2>"$TMP/err"; then
		ok "$name"
	else
		bad "$name (exit $?): $(tail -5 "$TMP/out" "$TMP/err")"
		return 1
	fi
}
step() { echo "== $* ($SECONDS s)"; }

step "configure, build and install into $P"
if ! meson setup "$TMP/build" "$SRC" --prefix="$P" --libdir=lib/pagemap -Dtests=disabled \
	>"$TMP/setup.log" 2>&1; then
	echo "FAIL meson setup: $(tail -20 "$TMP/setup.log")" >&2
	exit 1
fi
if ! ninja -C "$TMP/build" -j2 >"$TMP/build.log" 2>&1; then
	echo "FAIL build: $(grep -m5 -A5 error "$TMP/build.log")" >&2
	exit 1
fi
# A test must not write outside its directory (as root it could): every path
# meson would install to is inside the prefix, or nothing is installed.
if ! meson introspect --installed "$TMP/build" >"$TMP/installed.json"; then
	echo "FAIL meson introspect --installed" >&2
	exit 1
fi
outside=$(jq -r --arg p "$P/" '.[] | select(startswith($p) | not)' "$TMP/installed.json")
if [[ -n $outside ]]; then
	echo "FAIL would install outside --prefix $P: $outside" >&2
	exit 1
fi
if ! meson install -C "$TMP/build" --no-rebuild >"$TMP/install.log" 2>&1; then
	echo "FAIL meson install: $(tail -20 "$TMP/install.log")" >&2
	exit 1
fi
# Nothing may come from the build tree from here on (its rpaths, ../broker).
rm -rf "$TMP/build"
ok "built and installed in ${SECONDS}s"

step "layout"
version=$(sed -n "s/^ *version: '\([^']*\)',*$/\1/p" "$SRC/meson.build" | head -1)
for f in bin/pmtopo bin/pmctl bin/pmbench sbin/pagemapd; do
	[[ -x $P/$f ]] && ok "$f" || bad "$f not installed"
done
for f in lib/pagemap/libpagemap.so.0 include/pagemap.h lib/pagemap/pkgconfig/libpagemap.pc \
	share/pagemap/topologies/qemu-pcie.json share/pagemap/topologies/dgx-like-2s8g8n.json \
	share/pagemap/topologies/two-socket-mem.json share/pagemap/topologies/README.md \
	etc/pagemap/pagemapd.json.example share/doc/pagemap/README.md \
	share/doc/pagemap/examples/pagemap-info.c share/doc/pagemap/examples/placement.c \
	share/bash-completion/completions/pmtopo share/bash-completion/completions/pmctl \
	share/bash-completion/completions/pmbench share/man/man1/pmtopo.1 share/man/man1/pmbench.1 \
	share/man/man8/pmctl.8 share/man/man8/pagemapd.8 share/man/man3/libpagemap.3; do
	[[ -f $P/$f ]] && ok "$f" || bad "$f not installed"
done
# Every document and example topology of the source, so a new one is not forgotten.
for f in "$SRC"/docs/*.md "$SRC"/examples/topologies/*.json; do
	case $f in
	*/docs/*) want=$P/share/doc/pagemap/${f##*/} ;;
	*) want=$P/share/pagemap/topologies/${f##*/} ;;
	esac
	[[ -f $want ]] || bad "${f#"$SRC"/} is not installed (as $want)"
done
ok "every docs/*.md and example topology installed"
jq -e . "$P/etc/pagemap/pagemapd.json.example" >/dev/null && ok "example configuration is JSON" ||
	bad "example configuration is not JSON"

step "rpath: installed programs find the installed library"
for f in bin/pmctl bin/pmbench; do
	rp=$(readelf -d "$P/$f" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')
	[[ $rp == "$LIBDIR" ]] && ok "$f runpath $rp" || bad "$f runpath '$rp', want $LIBDIR"
	lib=$(ldd "$P/$f" | awk '$1 == "libpagemap.so.0" { print $3 }')
	[[ $lib == "$LIBDIR/libpagemap.so.0" ]] && ok "$f loads $lib" ||
		bad "$f loads libpagemap from '$lib': $(ldd "$P/$f" | grep pagemap)"
done
run "pmctl --version" "$P/bin/pmctl" --version
run "pmbench --version" "$P/bin/pmbench" --version

step "pkg-config"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
[[ $(pkg-config --modversion libpagemap) == "$version" ]] && ok "pkg-config version $version" ||
	bad "pkg-config version '$(pkg-config --modversion libpagemap)', want $version"
[[ " $(pkg-config --cflags libpagemap) " == *" -I$P/include "* ]] &&
	ok "pkg-config --cflags: $(pkg-config --cflags libpagemap)" ||
	bad "pkg-config --cflags: '$(pkg-config --cflags libpagemap)'"
read -ra libs <<<"$(pkg-config --libs libpagemap)"
[[ ${libs[*]} == "-L$LIBDIR -lpagemap" ]] &&
	ok "pkg-config --libs: $(pkg-config --libs libpagemap)" ||
	bad "pkg-config --libs: '$(pkg-config --libs libpagemap)'"
[[ $(pkg-config --variable=libdir libpagemap) == "$LIBDIR" ]] && ok "pkg-config libdir" ||
	bad "pkg-config libdir '$(pkg-config --variable=libdir libpagemap)'"

step "programs from outside the tree"
out=$TMP/outside
mkdir -p "$out"
cp "$P"/share/doc/pagemap/examples/*.c "$out/"
# The header alone, strict C11 and C++-free: what a user's first program looks like.
cat >"$out/hello.c" <<'C'
#include <pagemap.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct pagemap_info info;
	struct pm_client *c;
	int r, fd;

	if ((r = pm_connect(argc > 1 ? argv[1] : NULL, &c)) < 0 || (r = pm_ping(c)) < 0) {
		fprintf(stderr, "hello: %s\n", strerror(-r));
		return 1;
	}
	fd = pagemap_open(c, "node0", NULL, 0);
	if (fd < 0 || (r = pagemap_query(fd, &info)) < 0) {
		fprintf(stderr, "hello: node0: %s\n", strerror(fd < 0 ? -fd : -r));
		return 1;
	}
	printf("hello: pagemap %llu is %s\n", (unsigned long long)info.id, info.device);
	close(fd);
	pm_disconnect(c);
	return 0;
}
C
# A private prefix needs the program to say where the library is; the
# package's Libs do not (no rpath in a .pc file).
rpath=-Wl,-rpath,$(pkg-config --variable=libdir libpagemap)
for prog in hello pagemap-info placement; do
	# shellcheck disable=SC2046
	run "cc $prog.c \$(pkg-config --cflags --libs libpagemap)" \
		cc -std=c11 -Wall -Wextra -Werror -o "$out/$prog" "$out/$prog.c" \
		$(pkg-config --cflags --libs libpagemap) "$rpath"
done

step "the installed pagemapd on an installed example topology"
SOCK=$TMP/broker.sock
TOPO=$P/share/pagemap/topologies/qemu-pcie.json
"$P/sbin/pagemapd" --socket "$SOCK" --topology "$TOPO" 2>"$TMP/broker.log" &
BROKER_PID=$!
for _ in $(seq 200); do
	[[ -S $SOCK ]] && break
	kill -0 "$BROKER_PID" 2>/dev/null || break
	sleep 0.05
done
if [[ ! -S $SOCK ]]; then
	echo "FAIL installed pagemapd did not start: $(cat "$TMP/broker.log")" >&2
	exit 1
fi
ok "installed pagemapd serves $SOCK"
run "hello" "$out/hello" "$SOCK" && grep -q "is node0" "$TMP/out" ||
	bad "hello: $(cat "$TMP/out")"
PAGEMAP_SOCKET=$SOCK run "pagemap-info node0 0000:03:00.0" "$out/pagemap-info" node0 0000:03:00.0
PAGEMAP_SOCKET=$SOCK run "placement 0000:03:00.0" "$out/placement" 0000:03:00.0 &&
	grep -q "intact" "$TMP/out" || bad "placement: $(cat "$TMP/out")"
run "pmctl --socket S stats" "$P/bin/pmctl" --socket "$SOCK" stats
run "pmctl --socket S pools" "$P/bin/pmctl" --socket "$SOCK" pools &&
	grep -q "^0000:03:00.0 " "$TMP/out" || bad "pmctl pools lacks 0000:03:00.0: $(cat "$TMP/out")"
run "pmctl --socket S pagemaps --json" "$P/bin/pmctl" --socket "$SOCK" --json pagemaps &&
	jq -e . "$TMP/out" >/dev/null || bad "pmctl --json: $(cat "$TMP/out")"
for t in "$P"/share/pagemap/topologies/*.json; do
	run "pmtopo --load ${t#"$P"/}" "$P/bin/pmtopo" --load "$t" && grep -q EMULATED "$TMP/out" ||
		bad "pmtopo --load $t: not labelled emulated"
done
run "pmbench rtt --socket S" "$P/bin/pmbench" rtt --socket "$SOCK" --samples 50 --json &&
	jq -e --arg s "$SOCK" '.broker == $s and (.rtt | length) == 4' "$TMP/out" >/dev/null ||
	bad "pmbench rtt --socket: $(cat "$TMP/out")"
# A broker of its own: with PAGEMAPD unset and no build tree, the installed one.
run "pmbench rtt (its own broker: sbin/pagemapd)" "$P/bin/pmbench" rtt --samples 50 --json &&
	jq -e '.broker == "spawned"' "$TMP/out" >/dev/null || bad "pmbench rtt: $(cat "$TMP/out")"
run "pmbench topo (runs the installed pmtopo)" "$P/bin/pmbench" topo --samples 1 --synthetic 16 \
	--json && jq -e '[.discovery[].id] | index("pmtopo_json_process") != null' "$TMP/out" \
	>/dev/null || bad "pmbench topo did not run $P/bin/pmtopo: $(cat "$TMP/out")"
# What a newcomer reads: man pmctl from the installed pages.
if command -v man >/dev/null; then
	MANPATH=$P/share/man MANWIDTH=80 man -P cat pmctl >"$TMP/man" 2>/dev/null &&
		grep -q "restore" "$TMP/man" && ok "man pmctl (installed) renders" ||
		bad "man pmctl: $(head -5 "$TMP/man")"
	MANPATH=$P/share/man man -P cat pm_free >"$TMP/man" 2>/dev/null &&
		grep -q "pm_alloc" "$TMP/man" && ok "man pm_free (a link page) renders" ||
		bad "man pm_free: $(head -5 "$TMP/man")"
else
	echo "note: no man(1): installed pages not rendered"
fi
# An unprivileged user of the root broker: the installed pmctl pools and the
# placement example built outside, with the installed library.
if [[ $(id -u) == 0 ]] && command -v setpriv >/dev/null; then
	chmod -R a+rX "$TMP"
	chmod 666 "$SOCK"
	nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
	run "pmctl pools as uid 65534" nobody "$P/bin/pmctl" --socket "$SOCK" pools &&
		grep -q "^node0 " "$TMP/out" || bad "pmctl pools as nobody: $(cat "$TMP/out")"
	PAGEMAP_SOCKET=$SOCK run "placement as uid 65534" nobody "$out/placement" 0000:03:00.0 &&
		grep -q "intact" "$TMP/out" || bad "placement as nobody: $(cat "$TMP/out")"
else
	echo "note: not root (or no setpriv): the unprivileged user's run is not exercised"
fi
kill -0 "$BROKER_PID" 2>/dev/null && ok "the installed broker is still up" ||
	bad "the installed broker died: $(cat "$TMP/broker.log")"

echo "$pass passed, $fail failed (${SECONDS}s)"
((fail == 0))
