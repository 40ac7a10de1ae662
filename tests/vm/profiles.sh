# SPDX-License-Identifier: MIT
# Machine profiles for the QEMU test rig: every guest shape is declared here and
# nowhere else. Sourced by run-vm (bash); not executable on its own.
#
# pm_profile NAME [ROLE [OUTDIR]] fills:
#   PM_QEMU_ARGS   qemu-system-x86_64 arguments describing the machine
#   PM_KERNEL      "" (the host's Debian kernel) or p2pdma (a kernel with
#                  CONFIG_PCI_P2PDMA; run-vm says where it comes from)
#   PM_IMAGES      disk images run-vm creates (sparse, zero-filled) before the
#                  guest starts, as SIZE:PATH (truncate's SIZE); they live in
#                  OUTDIR, the guest's output dir, and go with it
#   PM_GUEST_SETUP words the guest-side runner (guest-run) acts on before the test:
#                    pcidrv  load the NVMe/virtio-net drivers (no udev in the guest,
#                            so nothing autoloads them) so class devices exist
#                    rdma    bring up soft-RoCE rxe0 on eth0
#   PM_GUESTS      how many guests the profile needs (rdma-pair: 2, run together)
#   PM_GUEST_IP    address the guest gives eth0 (private, never routed anywhere)
#   PM_PEER_IP     the other guest's address (rdma-pair only)
# ROLE (0 or 1) only matters for multi-guest profiles. OUTDIR is empty when run-vm
# only checks that NAME exists.
# The commas inside array elements are QEMU option syntax, and the PM_ variables
# are read by run-vm:
# shellcheck disable=SC2054,SC2034
#
# Bus layout of the pcie machine (what tests/vm/tests/pcie-tree.sh checks):
#   pcie.0 ── rp0 (pcie-root-port) ── up0 (x3130-upstream)
#                                       ├── dn0 (xio3130-downstream) ── ivshmem-plain (shm0, 64 MiB BAR2)
#                                       ├── dn1 (xio3130-downstream) ── ivshmem-plain (shm1, 64 MiB BAR2)
#                                       └── dn2 (xio3130-downstream) ── nvme (1 GiB null-co namespace)
#   pcie.0 ── pxb1 (pxb-pcie, bus_nr=0x80, numa_node=1) ── rp1 (pcie-root-port) ── virtio-net-pci
# The NVMe sits on a third downstream port of the SAME switch on purpose: a
# topology discoverer then sees a storage device and two BAR-memory devices that
# share one upstream port (a P2P-capable shape), without an extra root port.
#
# Bus layout of the p2p machine (numa2 plus this; what p2p-verdict.sh runs on),
# with the guest's BDFs and block devices. Every NVMe has a 64 MiB raw image of
# its own (OUTDIR/<serial>.img) and its serial as the name, so tests find them
# by /sys/class/nvme/nvmeN/serial.
#   pcie.0 ── rp0 (00:03.0) ── up0 (01:00.0, x3130-upstream)
#                                ├── dn0 (02:00.0) ── nvme pmA  03:00.0  nvme0n1  CMB 16 MiB: p2pmem
#                                └── dn1 (02:01.0) ── nvme pmB  04:00.0  nvme1n1
#   pcie.0 ── rp1 (00:04.0) ── nvme pmC  05:00.0  nvme2n1
#   pcie.0 ── rp2 (00:05.0) ─┬─ nvme pmE  06:00.0  nvme3n1  CMB 16 MiB: p2pmem (function 0)
#                            └─ nvme pmF  06:00.1  nvme4n1  (function 1 of the same slot)
# What the 6.12 kernel does when a client controller DMAs into or out of a
# provider's p2pmem (PROVIDER -> CLIENT below):
#   pmA -> pmA, pmE -> pmE   allowed (a device to itself, distance 0)
#   pmA -> pmB               allowed: common upstream bridge up0, no ACS on the way
#   pmA -> pmC/pmE/pmF,      refused (EREMOTEIO): no common upstream bridge, and
#   pmE -> pmA/pmB/pmC       q35's host bridge 8086:29c0 is not on the kernel's
#                            P2PDMA whitelist
#   pmE -> pmF               allowed, unless ACS redirect is set on rp2: their
#                            common upstream bridge is rp2, and only
#                            pcie-root-port has an ACS capability in QEMU 7.2
#                            (xio3130 ports have none), so this multifunction
#                            slot is the one shape where ACS decides. Linux
#                            leaves ACS off without an IOMMU; p2p-verdict.sh sets
#                            RR|CR with setpci before any P2P I/O (the kernel
#                            caches a pair's verdict at its first DMA mapping).
# The rig's two virtio-9p functions are 00:01.0 and 00:02.0, as everywhere.

# numa2: two NUMA nodes, 1 GiB and one CPU each, one socket per node as on a
# real 2-socket box (QEMU's default would put both CPUs in one package across
# two nodes). -nodefaults drops q35's default e1000e NIC and VGA so the PCI tree
# holds only what a profile declares. hmat=on plus the hmat-lb table gives the
# guest an ACPI HMAT, so nodeN/access0/initiators/{read,write}_{latency,bandwidth}
# exist for a discoverer to read (numbers are made up but consistent: remote
# access is twice as slow and half as wide).
_pm_numa2() {
	PM_QEMU_ARGS+=(
		-M q35,hmat=on -m 2048 -smp 2,sockets=2,cores=1,threads=1 -nodefaults -vga none
		-object memory-backend-ram,id=m0,size=1G
		-object memory-backend-ram,id=m1,size=1G
		-numa node,nodeid=0,cpus=0,memdev=m0,initiator=0
		-numa node,nodeid=1,cpus=1,memdev=m1,initiator=1
	)
	local i t lat bw
	for i in 0 1; do
		for t in 0 1; do
			if [[ $i == "$t" ]]; then lat=100 bw=20G; else lat=200 bw=10G; fi
			PM_QEMU_ARGS+=(
				-numa "hmat-lb,initiator=$i,target=$t,hierarchy=memory,data-type=access-latency,latency=$lat"
				-numa "hmat-lb,initiator=$i,target=$t,hierarchy=memory,data-type=access-bandwidth,bandwidth=$bw"
			)
		done
	done
}

# pcie: numa2 plus the tree drawn above. $1 is the -netdev spec for the NIC
# (user with restrict=on, or a socket link for rdma-pair); $2 its MAC.
_pm_pcie() {
	local netdev=$1 mac=$2
	_pm_numa2
	PM_QEMU_ARGS+=(
		-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1
		-device x3130-upstream,id=up0,bus=rp0
		-device xio3130-downstream,id=dn0,bus=up0,chassis=2,slot=0
		-device xio3130-downstream,id=dn1,bus=up0,chassis=3,slot=1
		-device xio3130-downstream,id=dn2,bus=up0,chassis=5,slot=2
		-object memory-backend-ram,id=shm0,size=64M,share=on
		-device ivshmem-plain,memdev=shm0,bus=dn0
		-object memory-backend-ram,id=shm1,size=64M,share=on
		-device ivshmem-plain,memdev=shm1,bus=dn1
		-blockdev driver=null-co,node-name=nvm0,size=1073741824
		-device nvme,serial=pm-nvme0,drive=nvm0,bus=dn2
		-device pxb-pcie,id=pxb1,bus_nr=0x80,numa_node=1,bus=pcie.0
		-device pcie-root-port,id=rp1,bus=pxb1,chassis=4,slot=0
		-netdev "$netdev"
		-device virtio-net-pci,netdev=n0,bus=rp1,mac="$mac"
	)
}

# _pm_nvme_disk NAME OUTDIR BUS [NVME_PROPS]: an NVMe controller with serial NAME
# on BUS whose namespace is a 64 MiB raw image OUTDIR/NAME.img (real storage: what
# a test writes it can read back, unlike null-co).
_pm_nvme_disk() {
	local name=$1 dir=$2 bus=$3 props=${4:+,$4}
	PM_IMAGES+=("64M:$dir/$name.img")
	PM_QEMU_ARGS+=(
		-blockdev "driver=raw,node-name=d$name,file.driver=file,file.filename=$dir/$name.img"
		-device "nvme,serial=$name,drive=d$name,bus=$bus$props"
	)
}

# p2p: numa2 plus five NVMe controllers with real images, two of them p2pmem
# providers (see the drawing at the top). It boots the P2PDMA kernel.
_pm_p2p() {
	local dir=$1
	_pm_numa2
	PM_QEMU_ARGS+=(
		-device pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1
		-device x3130-upstream,id=up0,bus=rp0
		-device xio3130-downstream,id=dn0,bus=up0,chassis=2,slot=0
		-device xio3130-downstream,id=dn1,bus=up0,chassis=3,slot=1
	)
	_pm_nvme_disk pmA "$dir" dn0 cmb_size_mb=16
	_pm_nvme_disk pmB "$dir" dn1
	PM_QEMU_ARGS+=(-device pcie-root-port,id=rp1,bus=pcie.0,chassis=4,slot=2)
	_pm_nvme_disk pmC "$dir" rp1
	PM_QEMU_ARGS+=(-device pcie-root-port,id=rp2,bus=pcie.0,chassis=6,slot=3)
	_pm_nvme_disk pmE "$dir" rp2 addr=00.0,multifunction=on,cmb_size_mb=16
	_pm_nvme_disk pmF "$dir" rp2 addr=00.1
}

pm_profile() {
	local name=$1 role=${2:-0} dir=${3:-}
	PM_QEMU_ARGS=() PM_GUEST_SETUP="" PM_GUESTS=1 PM_GUEST_IP="" PM_PEER_IP=""
	PM_KERNEL="" PM_IMAGES=()
	case $name in
	numa2)
		_pm_numa2 ;;
	pcie)
		_pm_pcie user,id=n0,restrict=on 52:54:00:12:34:01
		PM_GUEST_SETUP="pcidrv" ;;
	rdma)
		# restrict=on: slirp forwards nothing to the host or beyond; the
		# perftest traffic goes to the guest's own address and never leaves it.
		_pm_pcie user,id=n0,restrict=on 52:54:00:12:34:01
		PM_GUEST_SETUP="pcidrv rdma" PM_GUEST_IP=192.168.77.1 ;;
	rdma-pair)
		# Guest 0 listens, guest 1 connects; the host side is a TCP socket on
		# loopback and the guests' addresses exist only on that private link.
		local port=${PM_PAIR_PORT:-47661}
		if [[ $role == 0 ]]; then
			_pm_pcie socket,id=n0,listen="127.0.0.1:$port" 52:54:00:12:34:10
			PM_GUEST_IP=192.168.77.10 PM_PEER_IP=192.168.77.11
		else
			_pm_pcie socket,id=n0,connect="127.0.0.1:$port" 52:54:00:12:34:11
			PM_GUEST_IP=192.168.77.11 PM_PEER_IP=192.168.77.10
		fi
		PM_GUEST_SETUP="pcidrv rdma" PM_GUESTS=2 ;;
	p2p)
		_pm_p2p "$dir"
		PM_KERNEL=p2pdma PM_GUEST_SETUP="pcidrv" ;;
	*)
		echo "unknown profile '$name' (known: $PM_PROFILES)" >&2
		return 1 ;;
	esac
}

PM_PROFILES="numa2 pcie rdma rdma-pair p2p"
