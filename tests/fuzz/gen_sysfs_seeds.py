#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the fuzz_sysfs seed corpus: small sysfs/procfs trees in the record
format tests/fuzz/fuzz_sysfs.c reads ("@ PATH" file, "> PATH TARGET" link,
"/ PATH" directory), cut from the captured machines in tests/fixtures/ (only
the attributes topology/ reads, config space shortened) plus a few
hand-written trees for paths the captures do not take (KFD XGMI links, an
SR-IOV VF, a partial capture, a VMD-style nested root bus, no NUMA).

    tests/fuzz/gen_sysfs_seeds.py [OUTDIR]   (default tests/fuzz/corpus/fuzz_sysfs)
    tests/fuzz/gen_sysfs_seeds.py --unpack INPUT DIR
        builds the tree an input describes under DIR, as the harness does, for
        pmtopo --sysfs-root DIR (reproducing a finding outside the fuzzer)
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")

# What the sources read (src_pci.c, src_numa.c, src_cpu.c, src_rdma.c, src_osdev.c)
PCI_ATTRS = {"vendor", "device", "class", "subsystem_vendor", "subsystem_device", "resource",
             "config", "numa_node", "local_cpulist", "local_cpus", "current_link_speed",
             "max_link_speed", "current_link_width", "max_link_width", "irq"}
PCI_LINKS = {"driver", "iommu_group", "physfn"}
NODE_ATTRS = {"cpulist", "distance", "meminfo", "read_bandwidth", "write_bandwidth",
              "read_latency", "write_latency"}


def rec_file(path, data):
    if isinstance(data, str):
        data = data.encode()
    # The newline before the next record is not part of the file.
    return b"@ " + path.encode() + b"\n" + data + b"\n"


def rec_link(path, target):
    return b"> " + path.encode() + b" " + target.encode() + b"\n"


def rec_dir(path):
    return b"/ " + path.encode() + b"\n"


def first_lines(data, n):
    return b"".join(data.splitlines(keepends=True)[:n])


def pci_function(fx, bdf, config_len=64, attrs=PCI_ATTRS):
    """One function of a fixture: its bus link, its attributes, its links."""
    root = os.path.join(FIXTURES, fx)
    link = os.path.join("sys/bus/pci/devices", bdf)
    target = os.readlink(os.path.join(root, link))
    out = rec_link(link, target)
    real = os.path.normpath(os.path.join(os.path.dirname(link), target))
    d = os.path.join(root, real)
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        rel = os.path.join(real, name)
        if os.path.islink(p) and name in PCI_LINKS:
            t = os.readlink(p)
            # keep only targets inside the captured tree
            if not os.path.normpath(os.path.join(os.path.dirname(rel), t)).startswith(".."):
                out += rec_link(rel, t)
        elif os.path.isfile(p) and name in attrs:
            data = open(p, "rb").read()
            if name == "config":
                data = data[:config_len]
                if any(m in b"\n" + data for m in (b"\n@ ", b"\n> ", b"\n/ ")):
                    continue
            out += rec_file(rel, data)
    return out


def numa(fx):
    root = os.path.join(FIXTURES, fx)
    out = b""
    base = "sys/devices/system/node"
    for dp, dns, fns in sorted(os.walk(os.path.join(root, base))):
        dns.sort()
        for fn in sorted(fns):
            if fn not in NODE_ATTRS:
                continue
            rel = os.path.relpath(os.path.join(dp, fn), root)
            if "/access1/" in rel:
                continue
            data = open(os.path.join(dp, fn), "rb").read()
            out += rec_file(rel, first_lines(data, 2) if fn == "meminfo" else data)
        if os.path.basename(dp) == "initiators":
            for dn in dns:
                out += rec_dir(os.path.relpath(os.path.join(dp, dn), root))
    return out


def proc(fx):
    root = os.path.join(FIXTURES, fx)
    cpu = open(os.path.join(root, "proc/cpuinfo"), "rb").read().split(b"\n\n")[0] + b"\n\n"
    mem = first_lines(open(os.path.join(root, "proc/meminfo"), "rb").read(), 1)
    return rec_file("proc/cpuinfo", cpu) + rec_file("proc/meminfo", mem)


def class_link(fx, cls, name):
    root = os.path.join(FIXTURES, fx)
    rel = os.path.join("sys/class", cls, name)
    return rec_link(rel, os.readlink(os.path.join(root, rel)))


def fixture_dir(fx, rel):
    """Every file below rel, as it is."""
    root = os.path.join(FIXTURES, fx)
    out = b""
    for dp, dns, fns in sorted(os.walk(os.path.join(root, rel))):
        dns.sort()
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                out += rec_file(os.path.relpath(p, root), open(p, "rb").read())
    return out


def all_pci(fx):
    root = os.path.join(FIXTURES, fx)
    return sorted(os.listdir(os.path.join(root, "sys/bus/pci/devices")))


def seeds():
    s = {}
    s["qemu-pcie-numa-hmat"] = proc("qemu-pcie") + numa("qemu-pcie")
    # host bridge 00.0, root port, switch up/down, ivshmem below it; caps readable
    s["qemu-pcie-switch-chain"] = proc("qemu-pcie") + b"".join(
        pci_function("qemu-pcie", b, 256)
        for b in ["0000:00:00.0", "0000:00:03.0", "0000:01:00.0", "0000:02:01.0",
                  "0000:04:00.0"])
    s["qemu-pcie-all-functions"] = b"".join(
        pci_function("qemu-pcie", b, 0, {"vendor", "device", "class", "resource"})
        for b in all_pci("qemu-pcie"))
    s["qemu-pcie-nvme-class"] = b"".join(
        pci_function("qemu-pcie", b, 64)
        for b in ["0000:00:03.0", "0000:01:00.0", "0000:02:02.0", "0000:05:00.0"]) + \
        class_link("qemu-pcie", "nvme", "nvme0")
    s["qemu-pcie-pxb-ext-config"] = numa("qemu-pcie") + b"".join(
        pci_function("qemu-pcie", b, 4096) for b in ["0000:80:00.0", "0000:81:00.0"])
    s["qemu-rdma-rxe"] = b"".join(pci_function("qemu-rdma", b, 64)
                                  for b in ["0000:80:00.0", "0000:81:00.0"]) + \
        class_link("qemu-rdma", "net", "eth0") + class_link("qemu-rdma", "infiniband", "rxe0") + \
        fixture_dir("qemu-rdma", "sys/devices/virtual/infiniband/rxe0/ports/1").replace(
            b"gids/0", b"gid0") + \
        rec_file("sys/devices/virtual/infiniband/rxe0/parent", "eth0") + \
        rec_file("sys/devices/virtual/infiniband/rxe0/node_guid", "5054:00ff:fe12:3456")
    s["host-vm-pci"] = proc("host-vm") + b"".join(pci_function("host-vm", b, 64)
                                                  for b in all_pci("host-vm")[:4])

    hb = "sys/devices/pci0000:00"
    rp = hb + "/0000:00:01.0"

    def fn(path, cls, vendor="0x1002", device="0x74a1", extra=b""):
        return (rec_file(path + "/vendor", vendor) + rec_file(path + "/device", device) +
                rec_file(path + "/class", cls) + rec_file(path + "/resource",
                "0x00000000f0000000 0x00000000f0ffffff 0x0000000000140204\n" +
                "0x0000000000000000 0x0000000000000000 0x0000000000000000\n" * 5) + extra)

    def buslink(bdf, path):
        depth = 3  # sys/bus/pci/devices -> ../../../
        return rec_link("sys/bus/pci/devices/" + bdf, "../" * depth + path[len("sys/"):])

    # Two AMD GPUs with an XGMI link in the KFD topology.
    kfd = "sys/class/kfd/kfd/topology/nodes"
    g0, g1 = rp + "/0000:03:00.0", rp + "/0000:04:00.0"
    s["kfd-xgmi"] = (fn(rp, "0x060400", "0x1022", "0x14ab") + buslink("0000:00:01.0", rp) +
                     fn(g0, "0x038000") + buslink("0000:03:00.0", g0) +
                     fn(g1, "0x038000") + buslink("0000:04:00.0", g1) +
                     rec_file(kfd + "/1/properties", "domain 0\nlocation_id 768\n") +
                     rec_file(kfd + "/2/properties", "domain 0\nlocation_id 1024\n") +
                     rec_file(kfd + "/1/io_links/0/properties",
                              "type 11\nnode_from 1\nnode_to 2\nmax_bandwidth 64000\n"))
    # An SR-IOV VF: physfn link, driver and iommu_group links, link speeds.
    pf, vf = rp + "/0000:02:00.0", rp + "/0000:02:00.2"
    s["sriov-vf"] = (fn(rp, "0x060400", "0x8086", "0x347a") + buslink("0000:00:01.0", rp) +
                     fn(pf, "0x020000", "0x15b3", "0x101d",
                        rec_file(pf + "/current_link_speed", "16.0 GT/s PCIe") +
                        rec_file(pf + "/max_link_speed", "32.0 GT/s PCIe") +
                        rec_file(pf + "/current_link_width", "8") +
                        rec_file(pf + "/max_link_width", "16") +
                        rec_file(pf + "/local_cpulist", "0-3,8-11") +
                        rec_link(pf + "/driver", "../../../bus/pci/drivers/mlx5_core") +
                        rec_link(pf + "/iommu_group", "../../../kernel/iommu_groups/12")) +
                     buslink("0000:02:00.0", pf) +
                     fn(vf, "0x020000", "0x15b3", "0x101e",
                        rec_link(vf + "/physfn", "../0000:02:00.0")) +
                     buslink("0000:02:00.2", vf) +
                     rec_link("sys/class/net/ens1f0", "../../devices/pci0000:00/0000:00:01.0/"
                              "0000:02:00.0/net/ens1f0") +
                     rec_dir(pf + "/net/ens1f0") +
                     rec_link("sys/class/drm/card0", "../../devices/pci0000:00/0000:00:01.0/"
                              "0000:02:00.0/drm/card0"))
    # A partial capture: class and local_cpus only (read from sysfs alone).
    s["partial-function"] = (rec_file(rp + "/class", "0x030200") +
                             rec_file(rp + "/local_cpus", "00000000,0000ff00") +
                             rec_file(rp + "/numa_node", "-1") + buslink("0000:00:01.0", rp) +
                             fn(hb + "/0000:00:00.0", "0x060000", "0x8086", "0x09a2") +
                             buslink("0000:00:00.0", hb + "/0000:00:00.0"))
    # A plain directory for a function (some captures), no chain.
    s["plain-directory"] = fn("sys/bus/pci/devices/0000:3b:00.0", "0x010802", "0x144d", "0xa80a")
    # Intel VMD: a root bus below a device starts a new hierarchy.
    vmd = hb + "/0000:00:0e.0"
    nested = vmd + "/pci10000:e0/10000:e0:06.0"
    s["vmd-nested-root"] = (fn(vmd, "0x010400", "0x8086", "0x9a0b") + buslink("0000:00:0e.0", vmd) +
                            fn(nested, "0x060400", "0x8086", "0x9a09") +
                            buslink("10000:e0:06.0", nested) +
                            fn(nested + "/10000:e1:00.0", "0x010802", "0x144d", "0xa80a") +
                            buslink("10000:e1:00.0", nested + "/10000:e1:00.0"))
    # No NUMA in the kernel: one node from cpu/online and /proc/meminfo.
    s["no-numa"] = (rec_file("sys/devices/system/cpu/online", "0-3") +
                    rec_file("proc/meminfo", "MemTotal:        4030256 kB") +
                    rec_file("proc/sys/kernel/hostname", "tiny") +
                    rec_file("proc/cpuinfo", "vendor_id\t: GenuineIntel\ncpu family\t: 6\n"
                             "model\t\t: 143\n\n"))
    # The text parsers alone: one value each, as sysfs prints them.
    s["text-values"] = (rec_file("a/speed", "8.0 GT/s PCIe") + rec_file("a/speed2", "2.5 GT/s") +
                        rec_file("a/cpulist", "0-7,16-23,4095") +
                        rec_file("a/cpumask", "ffffffff,00000000,0000ff0f") +
                        rec_file("a/bdf", "00000000:3B:00.0") + rec_file("a/short", "3b:00.7") +
                        rec_file("a/hb", "pci10000:e0") + rec_file("a/rate", "100 Gb/sec (4X EDR)"))
    return s


def unpack(inp, top):
    """fuzz_sysfs.c's reading of an input, without its checks on names."""
    data = open(inp, "rb").read()
    os.makedirs(os.path.join(top, "sys/bus/pci/devices"), exist_ok=True)
    starts = [i for i in range(len(data)) if (i == 0 or data[i - 1] == 10)
              and data[i:i + 2] in (b"@ ", b"> ", b"/ ")]
    for k, at in enumerate(starts):
        nxt = starts[k + 1] if k + 1 < len(starts) else len(data)
        nl = data.find(b"\n", at, nxt)
        line = data[at + 2:nl if nl >= 0 else nxt].decode(errors="replace")
        body = data[nl + 1:nxt] if nl >= 0 else b""
        if body.endswith(b"\n"):
            body = body[:-1]  # the separator
        kind = data[at:at + 1]
        if kind == b"@":
            path = os.path.join(top, line)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.lexists(path):
                open(path, "wb").write(body)
        elif kind == b">" and " " in line:
            path, target = line.split(" ", 1)
            path = os.path.join(top, path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if not os.path.lexists(path):
                os.symlink(target, path)
        else:
            os.makedirs(os.path.join(top, line), exist_ok=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--unpack":
        unpack(sys.argv[2], sys.argv[3])
        return
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "fuzz_sysfs")
    os.makedirs(out, exist_ok=True)
    for n, data in sorted(seeds().items()):
        assert len(data) < 64 << 10, n
        with open(os.path.join(out, n), "wb") as f:
            f.write(data)
    print(f"{len(seeds())} seeds in {out}")


if __name__ == "__main__":
    main()
