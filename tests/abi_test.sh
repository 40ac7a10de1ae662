#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# libpagemap's ABI: the exported symbols are exactly those of the version
# script (no leak, none missing), and the public header compiles alone as C
# and as C++ with warnings as errors.
# Usage: abi_test.sh LIBPAGEMAP_SO SOURCE_ROOT
set -uo pipefail
so=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

sed -n 's/^[[:space:]]*\([a-z_][a-z0-9_]*\);$/\1/p' "$src/libpagemap/libpagemap.sym" | sort >"$tmp/want"
nm -D --defined-only "$so" | awk '$2 == "T" || $2 == "D" || $2 == "B" {sub(/@.*/, "", $3); print $3}' | sort >"$tmp/got"
if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then
	ok "exported symbols match libpagemap.sym ($(wc -l <"$tmp/want"))"
else
	bad "exported symbols differ from libpagemap.sym: $(cat "$tmp/diff")"
fi
nm -D --defined-only "$so" | grep -q 'PAGEMAP_0.1' && ok "symbols carry version PAGEMAP_0.1" || bad "no PAGEMAP_0.1 version node"

printf '#include <pagemap.h>\nint main(void) { return sizeof(struct pagemap_info) == 208 ? 0 : 1; }\n' >"$tmp/c.c"
if cc -std=c99 -Wall -Wextra -Wpedantic -Werror -I"$src/libpagemap/include" -c "$tmp/c.c" -o "$tmp/c.o" 2>"$tmp/err"; then
	ok "pagemap.h compiles alone as C99"
else
	bad "pagemap.h as C: $(cat "$tmp/err")"
fi
if command -v c++ >/dev/null; then
	cp "$tmp/c.c" "$tmp/cxx.cc"
	if c++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -I"$src/libpagemap/include" -c "$tmp/cxx.cc" -o "$tmp/cxx.o" 2>"$tmp/err"; then
		ok "pagemap.h compiles alone as C++11"
	else
		bad "pagemap.h as C++: $(cat "$tmp/err")"
	fi
else
	echo "skip: no C++ compiler"
fi
# The layout a binary compiled today relies on: size and the offsets that matter.
cat >"$tmp/layout.c" <<'EOC'
#include <stddef.h>
#include <pagemap.h>
_Static_assert(sizeof(struct pagemap_info) == 208, "pagemap_info size");
_Static_assert(offsetof(struct pagemap_info, capacity) == 120, "capacity offset");
_Static_assert(offsetof(struct pagemap_info, reserved) == 144, "reserved offset");
_Static_assert(sizeof(struct pagemap_event) == 48, "pagemap_event size");
int main(void) { return 0; }
EOC
cc -std=c11 -I"$src/libpagemap/include" -c "$tmp/layout.c" -o "$tmp/layout.o" 2>"$tmp/err" &&
	ok "pagemap_info and pagemap_event layouts unchanged" || bad "ABI layout changed: $(cat "$tmp/err")"
echo "$pass passed, $fail failed"
((fail == 0))
