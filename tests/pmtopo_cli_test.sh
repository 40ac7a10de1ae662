#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pmtopo end to end: every view on this machine, on the example machines and
# on hwloc's captured machines; the JSON lists every PCI function lspci lists;
# topology files round-trip, from stdin too (--load -); --tree honours
# --filter; bad input fails naming the input.
# Usage: pmtopo_cli_test.sh PMTOPO SOURCE_ROOT [SHARED_DIR]
set -uo pipefail
pmtopo=$1 src=$2 shared=${3:-$2/../shared}
[[ -x "$pmtopo" ]] || { echo "SKIP: no pmtopo binary"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# expect_fail NAME NEEDLE CMD...: exits non-zero and stderr names NEEDLE
expect_fail() {
	local name=$1 needle=$2
	shift 2
	if "$@" >"$tmp/out" 2>"$tmp/err"; then
		bad "$name: exited 0"
	elif ! grep -qF -- "$needle" "$tmp/err"; then
		bad "$name: stderr lacks '$needle': $(cat "$tmp/err")"
	else
		ok "$name"
	fi
}
views() { # label, source args...
	local label=$1
	shift
	for v in "" --tree --json --dot "--export nccl-xml" "--filter all,numa"; do
		# shellcheck disable=SC2086
		if "$pmtopo" "$@" $v >"$tmp/view" 2>"$tmp/err" && [[ -s "$tmp/view" ]]; then
			ok "$label ${v:-matrix}"
		else
			bad "$label ${v:-matrix}: $(head -3 "$tmp/err")"
		fi
	done
	if "$pmtopo" "$@" --json | jq -e . >/dev/null 2>&1; then ok "$label json parses"; else bad "$label json parses"; fi
}

# --- this machine
views live --no-verbs
"$pmtopo" --json >"$tmp/live.json"
if command -v lspci >/dev/null; then
	lspci -D -n | awk '{print $1}' | sort >"$tmp/lspci"
	jq -r '.pci[].bdf' "$tmp/live.json" | sort >"$tmp/ours"
	if [[ -s "$tmp/lspci" ]] && diff -u "$tmp/lspci" "$tmp/ours" >"$tmp/diff"; then
		ok "live json lists every function lspci lists ($(wc -l <"$tmp/lspci"))"
	else
		bad "live json vs lspci: $(head -20 "$tmp/diff")"
	fi
fi
n=$(jq '[.devices[] | select(.kind != "numa")] | length' "$tmp/live.json")
if ((n >= 2)); then
	a=$(jq -r '[.devices[] | select(.kind != "numa")][0].name' "$tmp/live.json")
	b=$(jq -r '[.devices[] | select(.kind != "numa")][1].name' "$tmp/live.json")
	first=$("$pmtopo" --pair "$a" "$b" | head -1)
	want=$(jq -r --arg a "$a" --arg b "$b" '.pairs[] | select(.a==$a and .b==$b) | .class' "$tmp/live.json")
	[[ -n "$first" && "$first" == "$want" ]] && ok "live --pair first line is the class ($first)" \
		|| bad "live --pair '$first' vs json '$want'"
fi

# --- example machines: views, round trip, expected classes
for f in "$src"/examples/topologies/*.json; do
	name=$(basename "$f" .json)
	views "$name" --load "$f"
	"$pmtopo" --load "$f" --dump "$tmp/$name.1" && "$pmtopo" --load "$tmp/$name.1" --dump "$tmp/$name.2" &&
		cmp -s "$tmp/$name.1" "$tmp/$name.2" && ok "$name round trip" || bad "$name round trip"
	grep -q EMULATED <("$pmtopo" --load "$f") && ok "$name labelled emulated" || bad "$name not labelled emulated"
done
q="$src/examples/topologies/qemu-pcie.json"
if [[ -f "$q" ]]; then
	[[ $("$pmtopo" --load "$q" --pair MEM0 MEM1 | head -1) == PIX ]] && ok "qemu MEM0-MEM1 PIX" || bad "qemu MEM0-MEM1 not PIX"
	[[ $("$pmtopo" --load "$q" --pair MEM0 eth0 | head -1) == SYS ]] && ok "qemu MEM0-eth0 SYS" || bad "qemu MEM0-eth0 not SYS"
fi
d="$src/examples/topologies/dgx-like-2s8g8n.json"
if [[ -f "$d" ]]; then
	[[ $("$pmtopo" --load "$d" --pair GPU0 GPU1 | head -1) == NV* ]] && ok "dgx GPU0-GPU1 NVLink" || bad "dgx GPU0-GPU1"
	[[ $("$pmtopo" --load "$d" --pair GPU0 NIC0 | head -1) == PIX ]] && ok "dgx GPU0-NIC0 PIX" || bad "dgx GPU0-NIC0"
	[[ $("$pmtopo" --load "$d" --pair GPU0 NIC7 | head -1) == SYS ]] && ok "dgx GPU0-NIC7 SYS" || bad "dgx GPU0-NIC7"
fi

# --- hwloc's captured machines (skipped when shared/ is absent)
fx="$shared/fixtures/hwloc"
if [[ -d "$fx" ]]; then
	for t in "$fx"/*.tar.bz2; do
		top=$(tar tjf "$t" | head -1 | cut -d/ -f1)
		tar xjf "$t" -C "$tmp"
		views "hwloc:$top" --sysfs-root "$tmp/$top"
		want=$(find "$tmp/$top/sys/bus/pci/devices" -mindepth 1 -maxdepth 1 | wc -l)
		got=$("$pmtopo" --sysfs-root "$tmp/$top" --json | jq '.pci | length')
		[[ "$want" == "$got" ]] && ok "hwloc:$top all $want functions" || bad "hwloc:$top functions $got != $want"
	done
else
	echo "skip hwloc fixtures: $fx absent"
fi

# --- machines we captured ourselves (tests/vm/capture-sysfs): this build
# machine and the QEMU rig's guests, replayed; hwloc must agree on the functions
for d in "$src"/tests/fixtures/*/; do
	name=$(basename "$d")
	views "fixture:$name" --sysfs-root "$d"
	want=$(find "$d/sys/bus/pci/devices" -mindepth 1 -maxdepth 1 | wc -l)
	got=$("$pmtopo" --sysfs-root "$d" --json | jq '.pci | length')
	[[ "$want" == "$got" ]] && ok "fixture:$name all $want functions" || bad "fixture:$name functions $got != $want"
	if command -v lstopo-no-graphics >/dev/null; then
		HWLOC_COMPONENTS=linux,stop lstopo-no-graphics --input "$d" --whole-io --of xml - 2>/dev/null |
			grep -o 'pci_busid="[^"]*"' | cut -d'"' -f2 | sort >"$tmp/hw.$name"
		"$pmtopo" --sysfs-root "$d" --json | jq -r '.pci[].bdf' | sort >"$tmp/ours.$name"
		# hwloc hides bridges with nothing below them; every function it lists must be ours
		if [[ -s "$tmp/hw.$name" ]] && comm -23 "$tmp/hw.$name" "$tmp/ours.$name" | grep -q .; then
			bad "fixture:$name functions lstopo lists that we do not: $(comm -23 "$tmp/hw.$name" "$tmp/ours.$name" | tr '\n' ' ')"
		else
			ok "fixture:$name every function lstopo lists ($(wc -l <"$tmp/hw.$name"))"
		fi
	fi
done
for d in "$src"/tests/fixtures/qemu-pcie "$src"/tests/fixtures/qemu-rdma; do
	[[ -d $d ]] || continue
	name=$(basename "$d")
	[[ $("$pmtopo" --sysfs-root "$d" --pair 03:00.0 04:00.0 | head -1) == PIX ]] && ok "$name ivshmem pair PIX" || bad "$name ivshmem pair not PIX"
	[[ $("$pmtopo" --sysfs-root "$d" --pair 03:00.0 eth0 | head -1) == SYS ]] && ok "$name ivshmem-NIC SYS" || bad "$name ivshmem-NIC not SYS"
	[[ $("$pmtopo" --sysfs-root "$d" --json | jq '[.pci[] | select(.port_from_caps)] | length') -ge 4 ]] &&
		ok "$name port types from full config space" || bad "$name port types not from capabilities"
done
[[ -d "$src/tests/fixtures/qemu-rdma" ]] && { [[ $("$pmtopo" --sysfs-root "$src/tests/fixtures/qemu-rdma" --pair rxe0 eth0 | head -1) == X ]] &&
	ok "qemu-rdma rxe0 rides on eth0" || bad "qemu-rdma rxe0 not on eth0"; }

# --- bad input
expect_fail "unknown device" "'nosuchdev'" "$pmtopo" --pair nosuchdev node0
expect_fail "pair needs two" "--pair needs two" "$pmtopo" --pair node0
expect_fail "bad filter" "'gpux'" "$pmtopo" --filter gpu,gpux
expect_fail "bad export" "'dotx'" "$pmtopo" --export dotx
expect_fail "unreadable root" "$tmp/none" "$pmtopo" --sysfs-root "$tmp/none"
expect_fail "missing file" "$tmp/none.json" "$pmtopo" --load "$tmp/none.json"
printf '{\n  "format": "pagemap-topology",\n  "version": 1,\n  oops\n}\n' >"$tmp/bad.json"
expect_fail "malformed file names line" "bad.json:4" "$pmtopo" --load "$tmp/bad.json"
jq '.pci[0].bdf = "zz:00.0"' "$src/examples/topologies/qemu-pcie.json" >"$tmp/badbdf.json"
expect_fail "bad bdf names field" "pci[0].bdf" "$pmtopo" --load "$tmp/badbdf.json"
expect_fail "bridge is not a device" "is a PCI bridge" "$pmtopo" --load "$q" --pair 0000:01:00.0 MEM0
expect_fail "two views" "choose one view" "$pmtopo" --tree --json
expect_fail "unwritable dump" "$tmp/no/such/dir" "$pmtopo" --load "$q" --dump "$tmp/no/such/dir"
# An empty list selects nothing: named, with the kinds there are, not a silent exit 2.
expect_fail "empty filter" "--filter: empty list" "$pmtopo" --filter ""
expect_fail "empty filter lists kinds" "gpu, accel, nic" "$pmtopo" --filter ,
expect_fail "malformed stdin names line" "/dev/stdin:4" "$pmtopo" --load - <"$tmp/bad.json"

# --- --load - reads stdin, as --dump - writes stdout
if [[ -f "$q" ]]; then
	"$pmtopo" --load "$q" --dump "$tmp/q.file"
	"$pmtopo" --load - --dump - <"$q" >"$tmp/q.stdin" && cmp -s "$tmp/q.file" "$tmp/q.stdin" &&
		ok "--load - from a redirect" || bad "--load - from a redirect differs from --load FILE"
	[[ $(cat "$q" | "$pmtopo" --load - --pair MEM0 MEM1 | head -1) == PIX ]] &&
		ok "--load - from a pipe" || bad "--load - from a pipe"
fi

# --- --tree --filter: endpoints of the kinds chosen, the bridges leading to them
if [[ -f "$q" ]]; then
	"$pmtopo" --load "$q" --tree >"$tmp/tree.all"
	"$pmtopo" --load "$q" --tree --filter all >"$tmp/tree.filter-all"
	cmp -s "$tmp/tree.all" "$tmp/tree.filter-all" && ok "--tree --filter all is --tree" ||
		bad "--tree --filter all differs from --tree"
	"$pmtopo" --load "$q" --tree --filter mem >"$tmp/tree.mem"
	# both ivshmem functions, their switch and root port; no NVMe, NIC, ICH9
	for want in "0000:03:00.0 mem" "0000:04:00.0 mem" "0000:01:00.0 switch-upstream" \
		"0000:02:00.0 switch-downstream" "0000:00:03.0 root-port"; do
		grep -qF -- "$want" "$tmp/tree.mem" && ok "--tree --filter mem shows $want" ||
			bad "--tree --filter mem lacks $want: $(cat "$tmp/tree.mem")"
	done
	for unwanted in nvme0 eth0 "0000:02:02.0" "0000:00:1f.0" "pci0000:80"; do
		grep -qF -- "$unwanted" "$tmp/tree.mem" && bad "--tree --filter mem shows $unwanted" ||
			ok "--tree --filter mem hides $unwanted"
	done
	"$pmtopo" --load "$q" --tree --filter nic >"$tmp/tree.nic"
	grep -q "eth0 rxe0" "$tmp/tree.nic" && ! grep -q "0000:03:00.0" "$tmp/tree.nic" &&
		ok "--tree --filter nic: the NIC only" || bad "--tree --filter nic: $(cat "$tmp/tree.nic")"
	"$pmtopo" --load "$q" --tree --filter gpu >"$tmp/tree.gpu"
	grep -q "no PCI device of the kinds --filter chose" "$tmp/tree.gpu" &&
		ok "--tree --filter gpu on a machine without one says so" ||
		bad "--tree --filter gpu: $(cat "$tmp/tree.gpu")"
fi

echo "$pass passed, $fail failed"
((fail == 0))
