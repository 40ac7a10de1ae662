#!/bin/bash
# SPDX-License-Identifier: MIT
# vm-profile: p2p
# pagemapd on the P2PDMA kernel: every NVMe controller that published its
# CMB as p2pmem is a pool of kind p2pmem; managed memory placed in it is
# loaded from and stored to NVMe namespaces by the controllers' own DMA
# (pm_load/pm_store through `pmbench io`, which checks every byte in memory
# and on the disk and faults the chunks home at the end). Where pmtopo's
# p2pdma verdict allows the pair, every byte must go peer to peer; where it
# does not, the kernel must refuse (EREMOTEIO) and the broker must bounce
# and say why with pmtopo's reason. Each pair is measured against the same
# transfer bounced through host memory, in one run. Last, hot-removing a
# provider revokes its pagemap under a holder.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR/.. source=guest-lib.sh
source "$PM_SRCDIR/tests/vm/guest-lib.sh"

b=${PM_BUILD_DIR:-}
for t in broker/pagemapd tools/pmctl tools/pmbench tools/pmtopo tests/pm_watch; do
	[[ -x $b/$t ]] || { echo "no $t in PM_BUILD_DIR='$b'"; exit 77; }
done

# nvme_by_serial SERIAL: the controller's PCI function and its namespace.
nvme_by_serial() {
	local c
	for c in /sys/class/nvme/nvme*; do
		[[ $(tr -d ' ' <"$c/serial") == "$1" ]] || continue
		echo "$(basename "$(readlink -f "$c/device")") $(basename "$(ls -d "$c"/nvme*n1)")"
		return 0
	done
	return 1
}

declare -A fn blk
for s in pmA pmB pmC pmE pmF; do
	read -r fn[$s] blk[$s] < <(nvme_by_serial $s) || fail "no NVMe with serial $s"
done
for s in pmA pmE; do
	[[ $(cat "/sys/bus/pci/devices/${fn[$s]}/p2pmem/published") == 1 ]] ||
		fail "$s (${fn[$s]}) did not publish p2pmem"
done
size=$(cat "/sys/bus/pci/devices/${fn[pmA]}/p2pmem/size")
note "pmA ${fn[pmA]} p2pmem size $size available" \
	"$(cat "/sys/bus/pci/devices/${fn[pmA]}/p2pmem/available")"

broker_start "$b" -v

# --- the pools: kind p2pmem, region p2pmem, the size sysfs gives
"$b/tests/pm_watch" --timeout 120 "${fn[pmA]}/p2pmem" "${fn[pmE]}/p2pmem" >"$run/holder.out" &
holder=$!
for _ in $(seq 100); do (($(grep -c '^open ' "$run/holder.out") == 2)) && break; sleep 0.05; done
cat "$run/holder.out"
"$b/tools/pmctl" pagemaps
n=$("$b/tools/pmctl" --json pagemaps |
	jq --argjson sz "$size" '[.pagemaps[] | select(.kind == "p2pmem" and .region == "p2pmem"
		and .capacity <= $sz and .capacity > 0 and .state == "active")] | length')
((n == 2)) || fail "want 2 active p2pmem pagemaps, see $n"

# --- pm_load / pm_store per pair, against the bounce in the same run
verdict_of() { # PROVIDER CLIENT: pmtopo's p2pdma verdict word
	"$b/tools/pmtopo" --pair "$1" "$2" | sed -n 's/^p2pdma: *\([a-z/-]*\).*/\1/p'
}
summary=""
pair() { # PROVIDER_SERIAL CLIENT_SERIAL
	local p=$1 c=$2 v j
	v=$(verdict_of "${fn[$p]}" "${fn[$c]}")
	[[ -n $v ]] || fail "pmtopo gave no p2pdma verdict for $p/$c"
	j=$("$b/tools/pmbench" io --json --pagemap "${fn[$p]}/p2pmem" --file "/dev/${blk[$c]}" \
		--size 4M --samples 5) || fail "pmbench io $p <- $c exited $?"
	jq -c '{results: [.results[] | {op, median_gbps, bytes_p2p_dma, bytes_staged, ratio,
		reason}], verified}' <<<"$j"
	jq -e '.verified == true and .kind == "p2pmem"' <<<"$j" >/dev/null ||
		fail "$p <- $c: data not intact"
	case $v in
	direct | through-host-bridge)
		jq -e 'all(.results[]; .bytes_p2p_dma == 4194304 and .bytes_staged == 0)' \
			<<<"$j" >/dev/null ||
			fail "$p <- $c: pmtopo says $v, but not every byte went P2P"
		;;
	*)
		jq -e 'all(.results[]; .bytes_p2p_dma == 0 and .bytes_staged == 4194304
			and .direct.fallback == -121 and (.reason | test("refused.*pmtopo")))' \
			<<<"$j" >/dev/null ||
			fail "$p <- $c: pmtopo says $v: want EREMOTEIO, a bounce and the reason"
		;;
	esac
	summary+="$p<-$c $v: $(jq -r '[.results[] | "\(.op) \(.median_gbps) GB/s = \(.ratio)x bounce"]
		| join(", ")' <<<"$j"); "
}
for c in pmA pmB pmC pmE pmF; do
	pair pmA "$c"
done
pair pmE pmF
pair pmE pmA
"$b/tools/pmctl" stats | sed -n '/^ENGINE/,$p'
"$b/tools/pmctl" --json stats | jq -e '.engines.block.bytes_p2p_dma > 0' >/dev/null ||
	fail "the block engine counted no P2P DMA"
grep -q "refused P2P DMA" "$run/broker.log" || fail "no log line for a refused pair"

# --- hot-remove a provider under its holder
echo 1 >"/sys/bus/pci/devices/${fn[pmE]}/remove"
for _ in $(seq 100); do grep -q "^hup ${fn[pmE]}/p2pmem" "$run/holder.out" && break; sleep 0.05; done
grep -q "^revoked ${fn[pmE]}/p2pmem id=[0-9]* reason=-19$" "$run/holder.out" ||
	fail "no ENODEV revoke for removed ${fn[pmE]}: $(cat "$run/holder.out")"
grep -q "^hup ${fn[pmA]}/p2pmem" "$run/holder.out" && fail "pmA was disturbed by pmE's removal"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
broker_stop
trap - EXIT
echo 1 >/sys/bus/pci/rescan
note "p2p-pool (TCG, indicative): $summary"
