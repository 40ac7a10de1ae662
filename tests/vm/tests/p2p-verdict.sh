#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: p2p
# pmtopo's P2PDMA verdict agrees with the kernel, pair by pair. For every
# (p2pmem provider, NVMe client) pair in the guest, pmtopo --pair predicts
# direct / through-host-bridge / not-supported; the kernel then decides for
# real: p2p_dio O_DIRECT-writes the provider's p2pmem to the client's namespace
# and reads it back into the p2pmem (the client DMAs into the provider's BAR),
# which works or fails with EREMOTEIO plus a "cannot be used for peer-to-peer
# DMA" line in dmesg. Any disagreement fails. Also: data intact on the allowed
# pairs (with the throughput of the same transfer through a host bounce
# buffer), the p2pmem attributes, and what mmap of p2pmem/allocate does.
# Argument --no-acs: leave ACS as the kernel set it (off), so pmE -> pmF is
# allowed too (run-vm p2p tests/vm/tests/p2p-verdict.sh --no-acs).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

skip() { echo "SKIP: $*"; exit 77; }

[[ -n ${PM_BUILD_DIR:-} ]] || skip "PM_BUILD_DIR not set (pmtopo is needed)"
pmtopo=$PM_BUILD_DIR/tools/pmtopo
[[ -x $pmtopo ]] || skip "$pmtopo not built"
dio=$PM_VM_BIN/p2p_dio
[[ -x $dio ]] || skip "p2p_dio not built (no cc on the host)"

# 1 MiB per transfer: enough DMA to mean something, a fraction of a second
# under TCG, and well inside a 16 MiB CMB.
len=$((1 << 20))

providers=()
for d in /sys/bus/pci/devices/*/p2pmem; do
	[[ -d $d ]] && providers+=("$(basename "$(dirname "$d")")")
done
((${#providers[@]})) || skip "no p2pmem provider (kernel without CONFIG_PCI_P2PDMA, or no NVMe CMB)"

# Clients: every NVMe controller, by its function, serial and first namespace.
declare -A serial_of ns_of
clients=()
for c in /sys/class/nvme/nvme*; do
	bdf=$(basename "$(readlink -f "$c/device")")
	ns=""
	for n in "$c"/nvme*n*; do
		n=${n##*/}
		# With NVMe multipath the controller lists nvme<S>c<C>n<N> and the
		# block device is the subsystem's nvme<S>n<N>.
		[[ $n =~ ^nvme([0-9]+)c[0-9]+n([0-9]+)$ ]] &&
			n=nvme${BASH_REMATCH[1]}n${BASH_REMATCH[2]}
		[[ -b /dev/$n ]] && { ns=$n; break; }
	done
	[[ -n $ns ]] || fail "controller ${c##*/} ($bdf) has no namespace block device"
	clients+=("$bdf")
	serial_of[$bdf]=$(tr -d ' ' <"$c/serial")
	ns_of[$bdf]=$ns
done
((${#clients[@]})) || fail "no NVMe controller"
for p in "${providers[@]}"; do
	[[ -n ${serial_of[$p]:-} ]] || serial_of[$p]=$p
done

# The ACS case: the p2p profile's pmE (provider) and pmF are two functions
# below root port rp2, so rp2 is their common upstream bridge and its ACS
# redirect bits count (QEMU's xio3130 switch ports have no ACS capability,
# only pcie-root-port has one). Linux leaves ACS off without an IOMMU; turn
# Request and Completion Redirect on before any P2P I/O: the kernel computes a
# pair's verdict once, at its first DMA mapping, and caches it.
acs_port="" set_acs=1
[[ ${1:-} == --no-acs ]] && set_acs=0
for bdf in "${clients[@]}"; do
	((set_acs)) || break
	[[ ${serial_of[$bdf]} == pmF ]] || continue
	port=$(pci_parent "$bdf")
	if lspci -s "$port" -vvv 2>/dev/null | grep -q 'Access Control Services'; then
		setpci -s "$port" ECAP0d+6.w=000c:000c
		ctl=$(setpci -s "$port" ECAP0d+6.w)
		(((0x$ctl & 0xc) == 0xc)) || fail "ACS control of $port reads $ctl after setting RR|CR"
		acs_port=$port
		note "ACS RR|CR set on $port (root port above pmE and pmF), ACS control now 0x$ctl"
	else
		note "no ACS capability on $port: the ACS pair tests nothing"
	fi
done

# p2pmem attributes, and mmap of allocate: each mmap is a fresh allocation of
# its length from the pool, given back on munmap; offset must be 0, the
# mapping shared, and the length at most what is available.
declare -A avail0
for p in "${providers[@]}"; do
	d=/sys/bus/pci/devices/$p/p2pmem
	size=$(<"$d/size") avail=$(<"$d/available") pub=$(<"$d/published")
	note "provider $p (${serial_of[$p]}): size $size, available $avail, published $pub"
	((size > 0 && size % 4096 == 0)) || fail "$p: p2pmem size $size"
	# The NVMe driver puts its I/O submission queues in its own CMB, so
	# some of it is in use from boot.
	((avail > 0 && avail <= size && avail % 4096 == 0)) || fail "$p: available $avail of $size"
	[[ $pub == 1 ]] || fail "$p: published $pub (the NVMe driver publishes a CMB with RDS and WDS)"
	bar=0
	# resource: "0xSTART 0xEND 0xFLAGS" per BAR, zeros when unused.
	while read -r start end _; do
		((end > start && end - start + 1 > bar)) && bar=$((end - start + 1))
	done <"/sys/bus/pci/devices/$p/resource"
	((size <= bar)) || fail "$p: p2pmem size $size larger than its largest BAR ($bar)"

	out=$("$dio" map "$d/allocate" "$len") || fail "$p: p2p_dio map: $out"
	echo "$out" | sed "s/^/# $p map: /"
	declare -A m=()
	while read -r k v; do m[$k]=$v; done <<<"$out"
	((m[available_before] == avail)) || fail "$p: map saw available ${m[available_before]}, sysfs $avail"
	((m[available_mapped] == avail - 2 * len)) ||
		fail "$p: two ${len}-byte mappings left available ${m[available_mapped]}, want $((avail - 2 * len))"
	[[ ${m[aliased]} == 0 ]] || fail "$p: two mmaps of allocate share memory"
	((m[available_after] == avail)) || fail "$p: munmap left available ${m[available_after]}, want $avail"
	[[ ${m[offset_4096]} == EINVAL ]] || fail "$p: mmap at offset 4096 gave ${m[offset_4096]}, want EINVAL"
	[[ ${m[private]} == EINVAL ]] || fail "$p: MAP_PRIVATE gave ${m[private]}, want EINVAL"
	[[ ${m[too_big]} == ENOMEM ]] || fail "$p: mmap over available gave ${m[too_big]}, want ENOMEM"
	avail0[$p]=$avail
	unset m
done

# pmtopo's view of a pair: "VERDICT|REASON".
pmtopo_pair() {
	local out
	out=$("$pmtopo" --pair "$1" "$2") || fail "pmtopo --pair $1 $2 failed"
	echo "$out" | sed "s/^/#   pmtopo: /" >&2
	printf '%s|%s\n' "$(awk '$1 == "p2pdma:" { print $2 }' <<<"$out")" \
		"$(sed -n 's/^reason: *//p' <<<"$out")"
}

rows=() bad=0
printf -v hdr '%-13s %-13s %-8s %-20s %-10s %-9s %-9s %s' provider client blockdev pmtopo kernel \
	'p2p MB/s' 'bnc MB/s' agree
for p in "${providers[@]}"; do
	alloc=/sys/bus/pci/devices/$p/p2pmem/allocate
	for c in "${clients[@]}"; do
		ns=${ns_of[$c]}
		pt=$(pmtopo_pair "$p" "$c")
		verdict=${pt%%|*} reason=${pt#*|}
		[[ -n $verdict ]] || fail "no p2pdma line from pmtopo --pair $p $c"

		dmesg -C
		rc=0
		res=$("$dio" p2p "$alloc" "/dev/$ns" "$len") || rc=$?
		klog=$(dmesg)
		note "$p -> $c ($ns): p2p_dio: $res"
		[[ -z $klog ]] || echo "$klog" | sed 's/^/#   dmesg: /'
		refused_msg="$c: cannot be used for peer-to-peer DMA as the client and provider ($p) do not share an upstream bridge or whitelisted host bridge"
		acs_msg="$c: ACS redirect is set between the client and provider ($p)"
		why=""
		case $rc in
		0)
			kernel=ok
			grep -qF "$refused_msg" <<<"$klog" && why="kernel logged a refusal but the I/O worked"
			;;
		3)
			kernel=EREMOTEIO
			grep -qF "$refused_msg" <<<"$klog" || why="EREMOTEIO without the kernel's refusal line"
			;;
		*) fail "$p -> $c: p2p_dio failed (exit $rc): $res" ;;
		esac

		p2p_bw=- bnc_bw=-
		if [[ $kernel == ok ]]; then
			p2p_bw=$(awk '{ print $3 }' <<<"$res")
			# The same transfer through host memory, for comparison.
			bres=$("$dio" bounce "$alloc" "/dev/$ns" "$len") || fail "$p -> $c: bounce failed: $bres"
			bnc_bw=$(awk '{ print $3 }' <<<"$bres")
		fi

		# The verdicts the kernel's outcome allows: it cannot show whether an
		# allowed transfer went direct or through the host bridge.
		case $verdict in
		direct | through-host-bridge) [[ $kernel == ok ]] || why+="${why:+; }pmtopo allows it, the kernel refused" ;;
		not-supported) [[ $kernel == EREMOTEIO ]] || why+="${why:+; }pmtopo refuses it, the kernel allowed it" ;;
		*) why+="${why:+; }unexpected pmtopo verdict '$verdict'" ;;
		esac
		# ACS: both must see the redirect, and name the same bridges (pmtopo
		# suggests the same pci=disable_acs_redir= list the kernel prints).
		if grep -qF "$acs_msg" <<<"$klog"; then
			klist=$(sed -n 's/.*pci=disable_acs_redir=\([^ ]*\).*/\1/p' <<<"$klog" | head -n1)
			[[ $reason == *"ACS redirect set on $klist "* ]] ||
				why+="${why:+; }kernel saw ACS redirect on $klist, pmtopo says: $reason"
		elif [[ $reason == *"ACS redirect"* ]]; then
			why+="${why:+; }pmtopo reports ACS redirect, the kernel did not"
		fi

		agree=yes
		[[ -z $why ]] || { agree=NO; bad=$((bad + 1)); echo "DISAGREE $p -> $c: $why"; }
		printf -v row '%-13s %-13s %-8s %-20s %-10s %-9s %-9s %s' "$p" "$c" "$ns" "$verdict" \
			"$kernel" "$p2p_bw" "$bnc_bw" "$agree"
		rows+=("$row (${serial_of[$p]} -> ${serial_of[$c]})")
	done
done

# No pages leaked: every O_DIRECT transfer gave its p2pmem back.
for p in "${providers[@]}"; do
	a=$(<"/sys/bus/pci/devices/$p/p2pmem/available")
	((a == avail0[$p])) || fail "$p: available $a after the transfers, was ${avail0[$p]}"
done

echo "$hdr"
printf '%s\n' "${rows[@]}"
[[ -n $acs_port ]] || note "ACS not exercised (--no-acs, or no pmF below an ACS-capable port)"
((bad == 0)) || fail "$bad pair(s) where pmtopo and the kernel disagree"
echo "p2p-verdict: ${#providers[@]} provider(s) x ${#clients[@]} client(s), pmtopo agrees with the kernel"
