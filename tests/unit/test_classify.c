/* SPDX-License-Identifier: MIT */
/* Path classes, bandwidth, names and peer groups on hand-built machines. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cu_run.h"
#include "machines.h"

static struct test_machine m;
static struct topo_path path;

static void setup(void)
{
	topo_graph_free(m.g);
	CU_ASSERT_FATAL(test_machine_build(&m, 0x8086, 0x2030) == 0);
}

static const char *cell(const char *a, const char *b)
{
	static char buf[32];
	int da = test_dev(m.g, a), db = test_dev(m.g, b);

	CU_ASSERT_FATAL(da >= 0 && db >= 0);
	CU_ASSERT_FATAL(topo_classify(m.g, da, db, &path) == 0);
	topo_class_cell(&path, buf, sizeof(buf));
	return buf;
}

static void test_port_inference(void)
{
	setup();
	CU_ASSERT_EQUAL(m.g->pci[m.rp0].port, TOPO_PORT_ROOT);
	CU_ASSERT_EQUAL(m.g->pci[m.up].port, TOPO_PORT_SWITCH_UP);
	CU_ASSERT_EQUAL(m.g->pci[m.dn0].port, TOPO_PORT_SWITCH_DOWN);
	CU_ASSERT_EQUAL(m.g->pci[m.dn1].port, TOPO_PORT_SWITCH_DOWN);
	CU_ASSERT_EQUAL(m.g->pci[m.a].port, TOPO_PORT_ENDPOINT);
	CU_ASSERT_EQUAL(m.g->pci[m.rp80].port, TOPO_PORT_ROOT);
}

static void test_classes(void)
{
	setup();
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "03:00.0"), "X");
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "04:00.0"), "PIX");
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "05:00.0"), "PHB");
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "41:00.0"), "NODE");
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "81:00.0"), "SYS");
	CU_ASSERT_STRING_EQUAL(cell("81:00.0", "03:00.0"), "SYS");
	/* a device and NUMA nodes: local is PHB, remote SYS */
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "node0"), "PHB");
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "node1"), "SYS");
	CU_ASSERT_STRING_EQUAL(cell("node0", "node1"), "SYS");
}

static void test_hops(void)
{
	static const char *const want[] = { "0000:03:00.0", "0000:02:00.0", "0000:01:00.0",
					     "0000:02:01.0", "0000:04:00.0" };
	char name[TOPO_NAME_MAX];

	setup();
	cell("03:00.0", "04:00.0");
	CU_ASSERT_EQUAL_FATAL(path.nhops, 5);
	for (int i = 0; i < 5; i++) {
		topo_hop_name(m.g, &path.hops[i], name, sizeof(name));
		CU_ASSERT_STRING_EQUAL(name, want[i]);
	}
	cell("03:00.0", "81:00.0");
	topo_hop_name(m.g, &path.hops[4], name, sizeof(name));
	CU_ASSERT_STRING_EQUAL(name, "pci0000:00");
	topo_hop_name(m.g, &path.hops[5], name, sizeof(name));
	CU_ASSERT_STRING_EQUAL(name, "node0");
	topo_hop_name(m.g, &path.hops[6], name, sizeof(name));
	CU_ASSERT_STRING_EQUAL(name, "node1");
}

/* Two switches stacked under one root port: PXB. */
static void test_pxb(void)
{
	int up2, dn2, d;

	setup();
	up2 = topo_synth_fn(m.g, "0000:06:00.0", m.dn1, m.hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	dn2 = topo_synth_fn(m.g, "0000:07:00.0", up2, m.hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	d = topo_synth_fn(m.g, "0000:08:00.0", dn2, m.hb0, 0x030000, TOPO_PORT_ENDPOINT, 80, 16);
	CU_ASSERT_FATAL(d >= 0);
	CU_ASSERT_FATAL(topo_graph_finalize(m.g) == 0);
	CU_ASSERT_EQUAL(m.g->pci[up2].port, TOPO_PORT_SWITCH_UP);
	CU_ASSERT_EQUAL(m.g->pci[dn2].port, TOPO_PORT_SWITCH_DOWN);
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "08:00.0"), "PXB");
	CU_ASSERT_STRING_EQUAL(cell("04:00.0", "08:00.0"), "PXB");
}

static void test_bandwidth(void)
{
	setup();
	/* dn0 is trained for x4: the endpoint below it gets Gen3 x4 = 3 GB/s */
	cell("03:00.0", "04:00.0");
	CU_ASSERT_DOUBLE_EQUAL(path.gbps, 3.0, 1e-9);
	cell("04:00.0", "41:00.0");
	CU_ASSERT_DOUBLE_EQUAL(path.gbps, 12.0, 1e-9);
	m.g->socket_link_gbps = 2.0;
	cell("04:00.0", "81:00.0");
	CU_ASSERT_DOUBLE_EQUAL(path.gbps, 2.0, 1e-9);
}

static void test_link_parsing(void)
{
	struct topo_pci p;

	CU_ASSERT_EQUAL(topo_parse_link_speed("8.0 GT/s PCIe"), 80);
	CU_ASSERT_EQUAL(topo_parse_link_speed("2.5 GT/s"), 25);
	CU_ASSERT_EQUAL(topo_parse_link_speed("16 GT/s"), 160);
	CU_ASSERT_EQUAL(topo_parse_link_speed("Unknown"), 0);
	CU_ASSERT_EQUAL(topo_parse_link_speed("Unknown speed"), 0);
	CU_ASSERT_EQUAL(topo_parse_link_speed("8.0 MB/s"), 0);
	CU_ASSERT_DOUBLE_EQUAL(topo_pcie_gbps(80, 16), 12.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(topo_pcie_gbps(160, 16), 24.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(topo_pcie_gbps(320, 16), 48.0, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(topo_pcie_gbps(0, 16), 0.0, 1e-9);
	topo_pci_init(&p);
	p.max_speed = 160;
	p.max_width = 16;
	p.cur_speed = 25;
	p.cur_width = 16;
	CU_ASSERT_TRUE(topo_pci_downtrained(&p));
	p.cur_speed = 160;
	CU_ASSERT_FALSE(topo_pci_downtrained(&p));
}

static void test_fabric(void)
{
	struct topo_fabric f = { .type = TOPO_FABRIC_NVLINK, .count = 18, .gbps = 450 };

	setup();
	f.a = m.a;
	f.b = m.c;
	CU_ASSERT_FATAL(topo_graph_add_fabric(m.g, &f) >= 0);
	CU_ASSERT_STRING_EQUAL(cell("03:00.0", "41:00.0"), "NV18");
	CU_ASSERT_DOUBLE_EQUAL(path.gbps, 450.0, 1e-9);
	/* the PCIe verdict stays available beside the fabric class */
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	f.a = f.b;
	CU_ASSERT_EQUAL(topo_graph_add_fabric(m.g, &f), -EINVAL);
}

static void test_lookup(void)
{
	int d;

	setup();
	d = topo_graph_lookup(m.g, "0000:81:00.0");
	CU_ASSERT_FATAL(d >= 0);
	CU_ASSERT_EQUAL(m.g->devices[d].pci, m.nic);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "81:00.0"), d);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "NIC0"), d);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "nic0"), d);
	CU_ASSERT_EQUAL(m.g->devices[topo_graph_lookup(m.g, "node1")].numa, 1);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "01:00.0"), -ENODEV);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "99:00.0"), -ENOENT);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "mlx5_9"), -ENOENT);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, "00:1f.8"), -ENOENT);
	CU_ASSERT_EQUAL(topo_graph_lookup(m.g, ""), -EINVAL);
}

static void test_osdev_names(void)
{
	struct topo_osdev o = { .name = "eth0", .cls = "net" };
	struct topo_rdma r = { .name = "rxe0", .netdev = "eth0", .soft = true };
	int d;

	setup();
	o.pci = m.nic;
	r.pci = m.nic;
	CU_ASSERT_FATAL(topo_graph_add_osdev(m.g, &o) >= 0);
	CU_ASSERT_FATAL(topo_graph_add_rdma(m.g, &r) >= 0);
	CU_ASSERT_FATAL(topo_graph_finalize(m.g) == 0);
	d = topo_graph_lookup(m.g, "eth0");
	CU_ASSERT_FATAL(d >= 0);
	CU_ASSERT_EQUAL(m.g->devices[d].pci, m.nic);
	CU_ASSERT_STRING_EQUAL(m.g->devices[d].name, "eth0");
	/* the soft RDMA device rides on the NIC's function: self to it, SYS to node0 devices */
	CU_ASSERT_STRING_EQUAL(cell("rxe0", "eth0"), "X");
	CU_ASSERT_STRING_EQUAL(cell("rxe0", "03:00.0"), "SYS");
}

static void test_peer_groups(void)
{
	int *group, n, da, db;

	setup();
	group = calloc(m.g->n_devices, sizeof(int));
	CU_ASSERT_FATAL(group != NULL);
	n = topo_peer_groups(m.g, group);
	CU_ASSERT_EQUAL(n, 1);
	da = test_dev(m.g, "03:00.0");
	db = test_dev(m.g, "04:00.0");
	CU_ASSERT_EQUAL(group[da], 0);
	CU_ASSERT_EQUAL(group[db], 0);
	CU_ASSERT_EQUAL(group[test_dev(m.g, "41:00.0")], -1);
	CU_ASSERT_EQUAL(group[test_dev(m.g, "81:00.0")], -1);
	/* the device goes away: groups are recomputed without it */
	CU_ASSERT_FATAL(topo_graph_remove_pci(m.g, m.dn1) == 0);
	CU_ASSERT_TRUE(m.g->pci[m.b].removed);
	CU_ASSERT_EQUAL(test_dev(m.g, "04:00.0"), -ENOENT);
	CU_ASSERT_EQUAL(topo_peer_groups(m.g, group), 0);
	free(group);
}

static void test_finalize_rejects_bad_links(void)
{
	setup();
	m.g->pci[m.a].parent = (int)m.g->n_pci + 3;
	CU_ASSERT_EQUAL(topo_graph_finalize(m.g), -EINVAL);
	m.g->pci[m.a].parent = m.a;
	CU_ASSERT_EQUAL(topo_graph_finalize(m.g), -EINVAL);
	m.g->pci[m.a].parent = m.dn0;
	m.g->pci[m.a].hostbridge = 7;
	CU_ASSERT_EQUAL(topo_graph_finalize(m.g), -EINVAL);
}

/* Drivers write BDFs their own way (CUDA and NVML: "00000000:3B:00.0"). */
static void test_bdf_canonical(void)
{
	char out[32];

	topo_bdf_canonical("00000000:3B:00.0", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "0000:3b:00.0");
	topo_bdf_canonical("00010000:5e:1f.7", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "10000:5e:1f.7");
	topo_bdf_canonical("3b:00.0", out, sizeof(out)); /* short forms are not a driver's */
	CU_ASSERT_STRING_EQUAL(out, "3b:00.0");
	topo_bdf_canonical("GPU-1234", out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "GPU-1234");
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "port types inferred from the tree", test_port_inference },
		{ "X PIX PHB NODE SYS", test_classes },
		{ "hop list", test_hops },
		{ "two switches are PXB", test_pxb },
		{ "bottleneck bandwidth", test_bandwidth },
		{ "link speed strings and NCCL bandwidth", test_link_parsing },
		{ "fabric links are NV#", test_fabric },
		{ "device names", test_lookup },
		{ "drivers' BDFs in our form", test_bdf_canonical },
		{ "netdev and soft RDMA names", test_osdev_names },
		{ "peer groups follow removal", test_peer_groups },
		{ "finalize rejects broken links", test_finalize_rejects_bad_links },
		{ NULL, NULL },
	};
	int r = cu_run("classify", tests);

	topo_graph_free(m.g);
	return r;
}
