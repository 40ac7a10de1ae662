#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# pmtopo's Graphviz and NCCL XML views on every example topology file.
#
#   tests/pmtopo_views_test.sh PMTOPO SOURCE_ROOT
#
# For each examples/topologies/*.json: `--dot` parses with `dot -Tsvg` and
# has one node per device (and, filtered to GPUs, no other device); the
# `--export nccl-xml` output is well-formed, has <system version="1">, one
# <cpu> per NUMA node holding a GPU or RDMA device, one <gpu> per GPU, one
# <net> per RDMA device and the NVLink elements the fabric implies. The
# dgx-like example must give 8 GPUs, 8 nets and 8 NVSwitch links.
# Expected counts come from the JSON (jq). Exit 77 (skip) without the
# binary or jq; without `dot` or `xmllint` those checks are skipped.
set -euo pipefail

PMTOPO=${1:-}
SRC=${2:-}
if [[ -z $PMTOPO || ! -x $PMTOPO ]]; then
	echo "SKIP: pmtopo binary '${PMTOPO}' not found" >&2
	exit 77
fi
if [[ -z $SRC || ! -d $SRC/examples/topologies ]]; then
	echo "usage: $0 PMTOPO SOURCE_ROOT (no examples/topologies under '${SRC}')" >&2
	exit 2
fi
if ! command -v jq >/dev/null; then
	echo "SKIP: jq is needed to compute the expected counts" >&2
	exit 77
fi
HAVE_DOT=1
command -v dot >/dev/null || { HAVE_DOT=0; echo "note: dot missing, not rendering (apt-get install graphviz)"; }
HAVE_XMLLINT=1
command -v xmllint >/dev/null ||
	{ HAVE_XMLLINT=0; echo "note: xmllint missing, not checking well-formedness (apt-get install libxml2-utils)"; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
FAILS=0
CHECKS=0

fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}

# expect NAME ACTUAL EXPECTED
expect() {
	CHECKS=$((CHECKS + 1))
	if [[ "$2" != "$3" ]]; then
		fail "$CUR: $1: got $2, expected $3"
	fi
}

# count PATTERN FILE: lines matching an extended regex (0 when none)
count() {
	grep -cE -- "$1" "$2" || true
}

# jq helpers shared by the expectations below. A function's NUMA node is its
# own, else its host bridge's, else the only node of a one-node machine;
# ids that name no node are unknown (-1).
# shellcheck disable=SC2016 # jq code, not shell
JQ_DEFS='
def known(x): if (x | type) == "number" and x >= 0 then x else null end;
def is_gpu: .class | test("^0x03");
def is_bridge: .class | test("^0x060[49]");
def ids: [.numa[].id];
def hbnuma: (.hostbridges | map({key: .name, value: known(.numa)}) | from_entries);
def eff($doc; $bdf):
  ($doc.pci[] | select(.bdf == $bdf)) as $p
  | (known($p.numa) // hbnuma[$p.hostbridge] // (if ($doc.numa | length) == 1 then $doc.numa[0].id else null end)) as $n
  | if $n != null and ($doc | ids | index($n)) != null then $n else -1 end;
'

check_dot() {
	local json=$1 out=$TMP/out.dot nbr nrdma total drawn bdf

	if ! "$PMTOPO" --load "$json" --dot >"$out"; then
		fail "$CUR: pmtopo --dot failed"
		return
	fi
	CHECKS=$((CHECKS + 1))
	grep -q '^graph machine {' "$out" || fail "$CUR: dot output does not start an undirected graph"
	if [[ $HAVE_DOT == 1 ]]; then
		CHECKS=$((CHECKS + 1))
		dot -Tsvg "$out" -o "$TMP/out.svg" 2>"$TMP/dot.err" ||
			fail "$CUR: dot -Tsvg rejects the output: $(head -3 "$TMP/dot.err")"
	fi
	if [[ $(jq -r '.emulated' "$json") == true ]]; then
		expect "EMULATED in the graph label" "$(count '^  graph \[label="[^"]*EMULATED' "$out")" 1
	fi
	expect "NUMA clusters" "$(count '^  subgraph cluster_node[0-9]+ \{' "$out")" \
		"$(jq '.numa | length' "$json")"

	# Every non-bridge function is a device node, exactly once; bridges only
	# appear above devices, so there are never more pci nodes than functions.
	while read -r bdf; do
		expect "node for $bdf" "$(count "^ +\"pci:$bdf\" \\[" "$out")" 1
	done < <(jq -r '.pci[] | select((.class | test("^0x060[49]")) | not) | .bdf' "$json")
	nbr=$(jq '[.pci[] | select(.class | test("^0x060[49]") | not)] | length' "$json")
	total=$(jq '.pci | length' "$json")
	drawn=$(count '^ +"pci:[^"]+" \[' "$out")
	CHECKS=$((CHECKS + 1))
	if ((drawn < nbr || drawn > total)); then
		fail "$CUR: $drawn pci nodes, expected between $nbr and $total"
	fi
	nrdma=$(jq '.rdma | length' "$json")
	expect "RDMA device nodes" "$(count '^ +"rdma[0-9]+" \[' "$out")" "$nrdma"
	expect "soft RDMA labels" "$(count '\(soft-(RoCE|iWARP)\)' "$out")" \
		"$(jq '[.rdma[] | select(.soft)] | length' "$json")"
	if (($(jq '.fabric | length' "$json") > 0)); then
		CHECKS=$((CHECKS + 1))
		grep -qE 'style=bold.*xlabel="(NV[0-9]+|XGMI)' "$out" || fail "$CUR: no fabric edge drawn"
	fi

	# Filtered to GPUs: every GPU, no other device.
	if ! "$PMTOPO" --load "$json" --dot --filter gpu >"$out"; then
		fail "$CUR: pmtopo --dot --filter gpu failed"
		return
	fi
	while read -r bdf; do
		expect "gpu-filtered node for $bdf" "$(count "^ +\"pci:$bdf\" \\[" "$out")" 1
	done < <(jq -r '.pci[] | select(.class | test("^0x03")) | .bdf' "$json")
	while read -r bdf; do
		expect "gpu-filtered: no node for $bdf" "$(count "^ +\"pci:$bdf\" \\[" "$out")" 0
	done < <(jq -r '.pci[] | select((.class | test("^0x03|^0x060[49]")) | not) | .bdf' "$json")
	expect "gpu-filtered RDMA nodes" "$(count '^ +"rdma[0-9]+" \[' "$out")" 0
}

check_nccl() {
	local json=$1 out=$TMP/out.xml exp got

	if ! "$PMTOPO" --load "$json" --export nccl-xml >"$out"; then
		fail "$CUR: pmtopo --export nccl-xml failed"
		return
	fi
	if [[ $HAVE_XMLLINT == 1 ]]; then
		CHECKS=$((CHECKS + 1))
		xmllint --noout "$out" 2>"$TMP/xml.err" ||
			fail "$CUR: NCCL XML is not well-formed: $(head -3 "$TMP/xml.err")"
	fi
	expect '<system version="1">' "$(count '^<system version="1">$' "$out")" 1
	# NCCL's parser takes no XML declaration.
	expect "no <?xml declaration" "$(count '<\?xml' "$out")" 0

	# One <cpu> per NUMA node holding a GPU or RDMA device (soft RDMA devices
	# without a known node join the first one), each numaid once.
	exp=$(jq -r "$JQ_DEFS"'
		. as $doc
		| ([.pci[] | select(is_gpu) | eff($doc; .bdf)]
		   + [.rdma[] | select((.soft | not) and .pci != null) | eff($doc; .pci)]) as $hw
		| ([$hw[] | select(. >= 0)] | min // ($doc.numa[0].id // -1)) as $first
		| ($hw + [.rdma[] | select(.soft or .pci == null)
		          | (if .pci != null then eff($doc; .pci) else -1 end)
		          | if . >= 0 then . else $first end])
		| unique | map(tostring) | join(" ")' "$json")
	# A machine with no GPU or NIC exports no <cpu>: grep finding nothing is no error.
	got=$({ grep -oE '<cpu numaid="-?[0-9]+"' "$out" || true; } | { grep -oE -- '-?[0-9]+' || true; } | sort -n | tr '\n' ' ' | sed 's/ $//')
	exp=$(tr ' ' '\n' <<<"$exp" | sed '/^$/d' | sort -n | tr '\n' ' ' | sed 's/ $//')
	expect "<cpu> numaids" "$got" "$exp"

	expect "<gpu> elements" "$(count '<gpu[ />]' "$out")" "$(jq '[.pci[] | select(.class | test("^0x03"))] | length' "$json")"
	expect "<net> elements" "$(count '<net ' "$out")" "$(jq '.rdma | length' "$json")"
	expect "<net> with a speed" "$(count '<net [^>]* speed="[1-9][0-9]*"' "$out")" \
		"$(jq '[.rdma[] | select([.ports[] | .gbps] | max // 0 | . > 0)] | length' "$json")"
	expect "switch elements (class 0x0604, never a root or downstream port)" \
		"$(grep -oE '<pci busid="[^"]+" class="0x0604' "$out" | grep -oE '[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]' |
			while read -r b; do jq -r --arg b "$b" '.pci[] | select(.bdf == $b) | .port' "$json"; done |
			grep -cvE '^switch-upstream$|^pci-bridge$' || true)" 0

	# NVLink: one element per peer, or one NVSwitch element for a GPU whose
	# NVLink counts to GPU peers add up to more than 18.
	exp=$(jq "$JQ_DEFS"'
		[.pci[] | select(is_gpu) | .bdf] as $gpus
		| [ $gpus[] as $g
		    | [.fabric[] | select(.type == "nvlink" and (.a == $g or .b == $g))] as $l
		    | if ($l | length) == 0 then 0
		      elif ([$l[] | (if .a == $g then .b else .a end) | . as $p | $gpus | index($p) != null] | all)
		           and ([$l[] | .count] | add) > 18 then 1
		      else ($l | length) end ]
		| add // 0' "$json")
	expect "<nvlink> elements" "$(count '<nvlink ' "$out")" "$exp"
	expect "<xgmi> elements" "$(count '<xgmi ' "$out")" \
		"$(jq "$JQ_DEFS"'[.pci[] | select(is_gpu) | .bdf] as $gpus
			| [.fabric[] | select(.type == "xgmi") | .a, .b | select(. as $e | $gpus | index($e) != null)]
			| length' "$json")"
	expect "nvlink/xgmi tclass format" \
		"$(count '<(nvlink|xgmi) target="[^"]+" count="[0-9]+" tclass="0x[0-9a-f]{6}"/>' "$out")" \
		"$(count '<(nvlink|xgmi) ' "$out")"
	expect "pci attribute format" \
		"$(count '<pci busid="[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-9a-f]" class="0x[0-9a-f]{6}" vendor="0x[0-9a-f]{4}" device="0x[0-9a-f]{4}" subsystem_vendor="0x[0-9a-f]{4}" subsystem_device="0x[0-9a-f]{4}"' "$out")" \
		"$(count '<pci ' "$out")"

	if [[ $(basename "$json") == *dgx* ]]; then
		expect "dgx-like: GPUs" "$(count '<gpu[ />]' "$out")" 8
		expect "dgx-like: nets" "$(count '<net ' "$out")" 8
		expect "dgx-like: 400 Gb/s nets" "$(count '<net [^>]* speed="400000"' "$out")" 8
		expect "dgx-like: NVSwitch links" \
			"$(count '<nvlink target="fffffff:ffff:ff" count="18" tclass="0x068000"/>' "$out")" 8
		expect "dgx-like: cpus" "$(count '<cpu ' "$out")" 2
	fi
}

shopt -s nullglob
FILES=("$SRC"/examples/topologies/*.json)
if ((${#FILES[@]} == 0)); then
	echo "SKIP: no example topologies in $SRC/examples/topologies" >&2
	exit 77
fi
for json in "${FILES[@]}"; do
	CUR=$(basename "$json")
	check_dot "$json"
	check_nccl "$json"
done

if ((FAILS)); then
	echo "$FAILS of $CHECKS checks failed" >&2
	exit 1
fi
echo "ok: $CHECKS checks on ${#FILES[@]} topologies"
