# SPDX-License-Identifier: MIT
# Machine profiles for the QEMU test rig: every guest shape is declared here and
# nowhere else. Sourced by run-vm (bash); not executable on its own.
#
# pm_profile NAME [ROLE] fills:
#   PM_QEMU_ARGS   qemu-system-x86_64 arguments describing the machine
#   PM_GUEST_SETUP words the guest-side runner (guest-run) acts on before the test:
#                    pcidrv  load the NVMe/virtio-net drivers (no udev in the guest,
#                            so nothing autoloads them) so class devices exist
#                    rdma    bring up soft-RoCE rxe0 on eth0
#   PM_GUESTS      how many guests the profile needs (rdma-pair: 2, run together)
#   PM_GUEST_IP    address the guest gives eth0 (private, never routed anywhere)
#   PM_PEER_IP     the other guest's address (rdma-pair only)
# ROLE (0 or 1) only matters for multi-guest profiles.
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

pm_profile() {
	local name=$1 role=${2:-0}
	PM_QEMU_ARGS=() PM_GUEST_SETUP="" PM_GUESTS=1 PM_GUEST_IP="" PM_PEER_IP=""
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
	*)
		echo "unknown profile '$name' (known: $PM_PROFILES)" >&2
		return 1 ;;
	esac
}

PM_PROFILES="numa2 pcie rdma rdma-pair"
