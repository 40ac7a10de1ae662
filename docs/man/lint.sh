#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The man pages: each passes `mandoc -Tlint -W warning` with no message;
# each .so link names a page that exists, in its own section; every page in
# this directory is installed (in the list given) and every name a page's
# NAME line gives has a page or link; every reference to one of pagemap's
# own pages resolves. Skips (77) without mandoc.
# Usage: lint.sh PAGE...   (the pages meson installs, all in one directory)
set -uo pipefail
if ! command -v mandoc >/dev/null; then
	echo "SKIP: no mandoc (apt-get install mandoc)"
	exit 77
fi
[ $# -gt 0 ] || { echo "usage: lint.sh PAGE..."; exit 2; }
dir=$(dirname "$1")
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }

declare -A listed=()
for page in "$@"; do
	listed[$(basename "$page")]=1
done
# Every page here is installed.
for page in "$dir"/*.[1-8]; do
	[ -n "${listed[$(basename "$page")]:-}" ] || bad "$(basename "$page"): not in meson.build's list"
done

# The first line that is not a comment, and whether it is the only one.
so_target() {
	grep -v -e '^\.\\"' -e "^'\\\\\"" "$1" | sed -n '1s/^\.so[[:space:]]\{1,\}//p'
}

for page in "$@"; do
	name=$(basename "$page")
	sect=${name##*.}
	if [ ! -f "$page" ]; then
		bad "$name: missing"
		continue
	fi
	target=$(so_target "$page")
	if [ -n "$target" ]; then
		lines=$(grep -c -v -e '^\.\\"' -e '^[[:space:]]*$' "$page")
		tname=$(basename "$target")
		if [ "$lines" != 1 ]; then
			bad "$name: a .so link page holds more than its .so line"
		elif [ "$target" != "man$sect/$tname" ]; then
			bad "$name: .so $target: want man$sect/PAGE.$sect"
		elif [ ! -f "$dir/$tname" ] || [ -n "$(so_target "$dir/$tname")" ]; then
			bad "$name: .so $target: no such page here"
		else
			ok "$name -> $target"
		fi
		continue
	fi
	out=$(mandoc -Tlint -W warning "$page" 2>&1)
	rc=$?
	if [ $rc -ne 0 ] || [ -n "$out" ]; then
		bad "$name: mandoc -Tlint (exit $rc): $out"
	else
		ok "$name: mandoc -Tlint -W warning"
	fi
	# NAME: "a, b, c \- what": each name has a page or a link.
	names=$(sed -n '/^\.SH NAME/{n;p;q}' "$page" | sed 's/[[:space:]]*\\-.*//; s/,/ /g')
	[ -n "$names" ] || bad "$name: no NAME line"
	for n in $names; do
		[ -f "$dir/$n.$sect" ] || bad "$name: NAME gives $n, but there is no $n.$sect (page or .so link)"
	done
	# References to pagemap's own pages resolve.
	for ref in $(grep -o -E '^\.BR (pagemapd|pagemapd\.conf|pmctl|pmtopo|pmbench|libpagemap|pagemap_[a-z_]+|pm_[a-z_]+) \([1-8]\)' "$page" |
		     sed -E 's/^\.BR ([^ ]+) \(([1-8])\)/\1.\2/' | sort -u); do
		[ -f "$dir/$ref" ] || bad "$name: refers to ${ref%.*}(${ref##*.}), which has no page"
	done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
