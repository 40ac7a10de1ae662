/* SPDX-License-Identifier: MIT */
/* The topology file: shipped examples load and round-trip byte for byte, and
 * every class of mistake is refused with the JSON path that holds it. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "cu_run.h"
#include "topo.h"

#define EXAMPLES "examples/topologies"

/* The graph as the file's text; caller frees. */
static char *dump(const struct topo_graph *g)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	if (topo_file_dump(g, f) < 0) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	return buf;
}

static char *read_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

static struct topo_graph *load_example(const char *name)
{
	char path[4096], err[512] = "";
	struct topo_graph *g = NULL;
	int r;

	snprintf(path, sizeof(path), "%s", cu_source_path(name));
	r = topo_file_load(path, &g, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "\n%s: %d %s\n", path, r, err);
	CU_ASSERT_EQUAL(r, 0);
	return g;
}

static int find(const struct topo_graph *g, const char *bdf)
{
	int i = topo_graph_find_pci_bdf(g, bdf);

	CU_ASSERT(i >= 0);
	return i;
}

static int find_rdma(const struct topo_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_rdma; i++)
		if (!strcmp(g->rdma[i].name, name))
			return (int)i;
	CU_FAIL("rdma device missing");
	return -1;
}

static size_t count_kind(const struct topo_graph *g, enum topo_dev_kind k)
{
	size_t n = 0;

	for (size_t i = 0; i < g->n_devices; i++)
		n += g->devices[i].kind == k;
	return n;
}

/*
 * load(file) -> dump A -> load_string(A) -> dump B: A and B must be the same
 * bytes, and the graphs the same shape. Returns A (caller frees).
 */
static char *check_roundtrip(const struct topo_graph *g)
{
	struct topo_graph *g2 = NULL;
	char err[512] = "", *a, *b;
	int r;

	a = dump(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	r = topo_file_load_string(a, &g2, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "\nreload: %d %s\n", r, err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	b = dump(g2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(a, b);
	CU_ASSERT_EQUAL(g2->n_numa, g->n_numa);
	CU_ASSERT_EQUAL(g2->n_hostbridges, g->n_hostbridges);
	CU_ASSERT_EQUAL(g2->n_rdma, g->n_rdma);
	CU_ASSERT_EQUAL(g2->n_osdevs, g->n_osdevs);
	CU_ASSERT_EQUAL(g2->n_fabric, g->n_fabric);
	CU_ASSERT_EQUAL(g2->n_devices, g->n_devices);
	CU_ASSERT_EQUAL(g2->emulated, g->emulated);
	CU_ASSERT_STRING_EQUAL(g2->source, g->source); /* load_string keeps the file's */
	topo_graph_free(g2);
	free(b);
	return a;
}

static void test_examples_all_load(void)
{
	const char *dir = cu_source_path(EXAMPLES);
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char rel[512], src[600];
		struct topo_graph *g;

		if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", EXAMPLES, e->d_name);
		g = load_example(rel);
		if (!g)
			continue;
		/* the file's own source is kept (every example names one) */
		snprintf(src, sizeof(src), "file:%s", cu_source_path(rel));
		CU_ASSERT(g->source[0] != '\0');
		CU_ASSERT_STRING_NOT_EQUAL(g->source, src);
		CU_ASSERT_TRUE(g->emulated); /* no shipped file claims to be a real machine */
		CU_ASSERT(g->n_devices > 0);
		free(check_roundtrip(g));
		topo_graph_free(g);
		n++;
	}
	closedir(d);
	CU_ASSERT(n >= 2);
}

/* The shipped files are already in the dumper's canonical form. */
static void check_canonical(const char *rel)
{
	char *text = read_file(cu_source_path(rel)), *again, err[512] = "";
	struct topo_graph *g = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(text, &g, err, sizeof(err)), 0);
	again = dump(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(again);
	CU_ASSERT_STRING_EQUAL(again, text);
	free(again);
	free(text);
	topo_graph_free(g);
}

static void test_dgx_roundtrip(void)
{
	struct topo_graph *g = load_example(EXAMPLES "/dgx-like-2s8g8n.json");
	const struct topo_pci *p;
	const struct topo_rdma *rd;
	int gpu, dp, up, nic, r;
	char *a;

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	a = check_roundtrip(g);
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"format\": \"pagemap-topology\""));
	CU_ASSERT_EQUAL(a[strlen(a) - 1], '\n');
	free(a);
	check_canonical(EXAMPLES "/dgx-like-2s8g8n.json");

	CU_ASSERT_EQUAL(g->n_numa, 2);
	CU_ASSERT_EQUAL(g->n_hostbridges, 4);
	/* per host bridge 00.0 + root port + switch (1 up, 4 down) + 4 endpoints; + NVMe and its port */
	CU_ASSERT_EQUAL(g->n_pci, 4 * 11 + 2);
	CU_ASSERT_EQUAL(g->n_rdma, 8);
	CU_ASSERT_EQUAL(g->n_osdevs, 9);
	CU_ASSERT_EQUAL(g->n_fabric, 28); /* every pair of 8 GPUs */
	CU_ASSERT_EQUAL(count_kind(g, TOPO_DEV_GPU), 8);
	CU_ASSERT_EQUAL(count_kind(g, TOPO_DEV_NIC), 8); /* each NIC once, as its mlx5 device */
	CU_ASSERT_EQUAL(count_kind(g, TOPO_DEV_NVME), 1);
	CU_ASSERT_EQUAL(count_kind(g, TOPO_DEV_NUMA), 2);
	CU_ASSERT_STRING_EQUAL(g->cpu.vendor, "GenuineIntel");
	CU_ASSERT_EQUAL(g->cpu.family, 6);
	CU_ASSERT_EQUAL(g->cpu.model, 143);
	CU_ASSERT_DOUBLE_EQUAL(g->socket_link_gbps, 83.2, 1e-9);
	CU_ASSERT_EQUAL(topo_numa_distance(g, 0, 1), 21);
	CU_ASSERT_EQUAL(topo_numa_distance(g, 1, 1), 10);
	CU_ASSERT_TRUE(g->numa[1].access0.present);
	CU_ASSERT_EQUAL(g->numa[1].access0.initiators, 1u << 1);
	CU_ASSERT_EQUAL(g->numa[0].mem_total, 1ull << 40);

	gpu = find(g, "0000:18:00.0");
	dp = find(g, "0000:17:00.0");
	up = find(g, "0000:16:00.0");
	p = &g->pci[gpu];
	CU_ASSERT_EQUAL(p->vendor, 0x10de);
	CU_ASSERT_EQUAL(p->device, 0x2330);
	CU_ASSERT_EQUAL(p->class_code, 0x030200);
	CU_ASSERT_EQUAL(p->parent, dp);
	CU_ASSERT_EQUAL(g->pci[dp].parent, up);
	CU_ASSERT_EQUAL(g->pci[dp].port, TOPO_PORT_SWITCH_DOWN);
	CU_ASSERT_EQUAL(g->pci[up].port, TOPO_PORT_SWITCH_UP);
	CU_ASSERT_STRING_EQUAL(g->hostbridges[p->hostbridge].name, "pci0000:15");
	CU_ASSERT_EQUAL(p->cur_speed, 320);
	CU_ASSERT_EQUAL(p->max_width, 16);
	CU_ASSERT_EQUAL(p->numa, 0);
	CU_ASSERT_EQUAL(p->nbars, 3);
	CU_ASSERT_EQUAL(p->bars[1].index, 1);
	CU_ASSERT_EQUAL(p->bars[1].size, 64ull << 30);
	CU_ASSERT_TRUE(p->bars[1].prefetch && p->bars[1].is64);
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:bb:00.0")].numa, 1);

	r = find_rdma(g, "mlx5_0");
	CU_ASSERT_FATAL(r >= 0);
	rd = &g->rdma[r];
	nic = find(g, "0000:1a:00.0");
	CU_ASSERT_EQUAL(rd->pci, nic);
	CU_ASSERT_EQUAL(g->pci[nic].parent, find(g, "0000:17:02.0"));
	CU_ASSERT_STRING_EQUAL(rd->netdev, "ibp26s0"); /* bus 0x1a */
	CU_ASSERT_FALSE(rd->soft);
	CU_ASSERT_EQUAL(rd->node_guid, 0xa088c203004e1a00ull);
	CU_ASSERT_EQUAL(rd->nports, 1);
	CU_ASSERT_EQUAL(rd->ports[0].state, 4);
	CU_ASSERT_DOUBLE_EQUAL(rd->ports[0].gbps, 400, 1e-9);
	CU_ASSERT_EQUAL(g->fabric[0].type, TOPO_FABRIC_NVLINK);
	CU_ASSERT_EQUAL(g->fabric[0].count, 18);
	CU_ASSERT_DOUBLE_EQUAL(g->fabric[0].gbps, 450, 1e-9);
	CU_ASSERT_EQUAL(g->hostbridges[0].root_vendor, 0x8086);
	CU_ASSERT_EQUAL(g->hostbridges[0].root_device, 0x09a2);
	topo_graph_free(g);
}

static void test_qemu_roundtrip(void)
{
	struct topo_graph *g = load_example(EXAMPLES "/qemu-pcie.json");
	const struct topo_pci *p;
	int shm, nic, r;

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	free(check_roundtrip(g));
	check_canonical(EXAMPLES "/qemu-pcie.json");

	CU_ASSERT_EQUAL(g->n_numa, 2);
	CU_ASSERT_EQUAL(topo_numa_distance(g, 0, 1), 20);
	CU_ASSERT_EQUAL(g->numa[1].mem_total, 1009950720ull);
	CU_ASSERT_STRING_EQUAL(g->numa[1].cpulist, "1");
	CU_ASSERT_TRUE(g->numa[0].access0.present); /* the rig's ACPI HMAT */
	CU_ASSERT_EQUAL(g->numa[0].access0.read_lat, 100);
	CU_ASSERT_EQUAL(g->numa[0].access0.initiators, 1u);
	CU_ASSERT_EQUAL(g->n_hostbridges, 2);
	CU_ASSERT_STRING_EQUAL(g->hostbridges[1].name, "pci0000:80");
	CU_ASSERT_EQUAL(g->hostbridges[1].bus, 0x80);
	CU_ASSERT_EQUAL(g->hostbridges[1].numa, 1);
	CU_ASSERT_EQUAL(g->hostbridges[0].root_device, 0x29c0);

	shm = find(g, "0000:04:00.0");
	p = &g->pci[shm];
	CU_ASSERT_EQUAL(p->vendor, 0x1af4);
	CU_ASSERT_EQUAL(p->device, 0x1110);
	CU_ASSERT_EQUAL(topo_pci_kind(p), TOPO_DEV_MEM);
	CU_ASSERT_EQUAL(p->bars[1].index, 2);
	CU_ASSERT_EQUAL(p->bars[1].size, 64ull << 20);
	CU_ASSERT_EQUAL(p->parent, find(g, "0000:02:01.0"));
	CU_ASSERT_EQUAL(g->pci[p->parent].parent, find(g, "0000:01:00.0"));
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:05:00.0")].class_code, 0x010802);
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:00:03.0")].cur_speed, 25);
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:00:03.0")].max_speed, 160);

	nic = find(g, "0000:81:00.0");
	CU_ASSERT_EQUAL(g->pci[nic].numa, 1);
	CU_ASSERT_STRING_EQUAL(g->hostbridges[g->pci[nic].hostbridge].name, "pci0000:80");
	r = find_rdma(g, "rxe0");
	CU_ASSERT_FATAL(r >= 0);
	CU_ASSERT_TRUE(g->rdma[r].soft);
	CU_ASSERT_EQUAL(g->rdma[r].pci, nic);
	CU_ASSERT_STRING_EQUAL(g->rdma[r].netdev, "eth0");
	CU_ASSERT(topo_graph_lookup(g, "rxe0") >= 0);
	CU_ASSERT(topo_graph_lookup(g, "eth0") >= 0);
	CU_ASSERT_EQUAL(count_kind(g, TOPO_DEV_MEM), 2);
	topo_graph_free(g);
}

/* A graph built in code, with what files seldom hold: a VF, a wide domain, a
 * removed function, a soft RDMA device without a PCI function, odd doubles. */
static void test_built_graph_roundtrip(void)
{
	struct topo_graph *g = topo_graph_new(), *g2 = NULL;
	struct topo_numa n = { .id = 3, .cpulist = "0-1", .mem_total = 5, .has_cpu = true };
	struct topo_hostbridge hb = { .name = "pci10000:00", .domain = 0x10000, .numa = 3 };
	struct topo_rdma rd = { .name = "siw0", .pci = -1, .soft = true, .nports = 1,
				.ports = { { .num = 1, .state = 1, .gbps = 0.1 } } };
	struct topo_pci f;
	char *a, *b, err[512] = "";
	int rp, pf, gone;

	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	n.access0 = (struct topo_hmat){ .present = true, .read_bw = 7, .initiators = 1u << 3 };
	CU_ASSERT(topo_graph_add_numa(g, &n) >= 0);
	CU_ASSERT_EQUAL(topo_graph_set_numa_count(g), 0);
	CU_ASSERT(topo_graph_add_hostbridge(g, &hb) >= 0);
	topo_pci_init(&f);
	f.domain = 0x10000;
	strcpy(f.bdf, "10000:00:01.0");
	f.dev = 1;
	f.class_code = 0x060400;
	f.hostbridge = 0;
	rp = topo_graph_add_pci(g, &f);
	topo_pci_init(&f);
	f.domain = 0x10000;
	f.bus = 1;
	strcpy(f.bdf, "10000:01:00.0");
	f.class_code = 0x020000;
	f.parent = rp;
	f.hostbridge = 0;
	f.max_speed = 160;
	strcpy(f.device_name, "caf\xc3\xa9 \"nic\"/x");
	pf = topo_graph_add_pci(g, &f);
	f.fn = 2;
	strcpy(f.bdf, "10000:01:00.2");
	f.physfn = pf;
	CU_ASSERT(topo_graph_add_pci(g, &f) >= 0);
	f.fn = 3;
	f.physfn = -1;
	strcpy(f.bdf, "10000:01:00.3");
	gone = topo_graph_add_pci(g, &f);
	CU_ASSERT(topo_graph_add_rdma(g, &rd) >= 0);
	g->socket_link_gbps = 0.1 + 0.2; /* needs 17 digits */
	CU_ASSERT_EQUAL_FATAL(topo_graph_finalize(g), 0);
	CU_ASSERT_EQUAL_FATAL(topo_graph_remove_pci(g, gone), 0);

	a = dump(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NULL(strstr(a, "10000:01:00.3")); /* removed: not written */
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"physfn\": \"10000:01:00.0\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(a, "\"port\": \"root-port\""));
	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(a, &g2, err, sizeof(err)), 0);
	b = dump(g2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(a, b);
	CU_ASSERT_EQUAL(g2->n_pci, 3);
	CU_ASSERT_EQUAL(g2->pci[2].physfn, 1);
	CU_ASSERT_EQUAL(g2->pci[1].max_speed, 160);
	CU_ASSERT_STRING_EQUAL(g2->pci[1].device_name, "caf\xc3\xa9 \"nic\"/x");
	CU_ASSERT_FALSE(g2->pci[0].port_from_caps);
	CU_ASSERT_EQUAL(g2->pci[0].port, TOPO_PORT_ROOT);
	CU_ASSERT_EQUAL(g2->hostbridges[0].domain, 0x10000);
	CU_ASSERT_EQUAL(g2->rdma[0].pci, -1);
	CU_ASSERT_EQUAL(g2->rdma[0].ports[0].state, 1);
	CU_ASSERT_EQUAL(g2->rdma[0].ports[0].gbps, 0.1); /* exact, not approximately */
	CU_ASSERT_EQUAL(g2->socket_link_gbps, 0.1 + 0.2);
	CU_ASSERT_EQUAL(g2->numa[0].access0.initiators, 1u << 3);
	CU_ASSERT_EQUAL(g2->numa[0].access0.read_bw, 7);
	CU_ASSERT_EQUAL(topo_numa_distance(g2, 3, 3), -1);
	free(a);
	free(b);
	topo_graph_free(g);
	topo_graph_free(g2);
}

/* A small valid file the error cases below each break in one place. parent
 * refers forward; the endpoints inherit their host bridge from it. */
static const char base[] =
	"{\n"
	"  \"format\": \"pagemap-topology\",\n"
	"  \"version\": 1,\n"
	"  \"emulated\": true,\n"
	"  \"numa\": [\n"
	"    {\"id\": 0, \"cpus\": \"0-3\", \"distances\": [10, 20]},\n"
	"    {\"id\": 1, \"cpus\": \"4-7\", \"distances\": [20, 10]}\n"
	"  ],\n"
	"  \"hostbridges\": [{\"name\": \"pci0000:00\", \"numa\": 0}],\n"
	"  \"pci\": [\n"
	"    {\"bdf\": \"0000:01:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x2330\", "
	"\"class\": \"0x030200\", \"parent\": \"0000:00:01.0\"},\n"
	"    {\"bdf\": \"0000:00:01.0\", \"vendor\": \"0x8086\", \"device\": \"0x7075\", "
	"\"class\": \"0x060400\", \"hostbridge\": \"pci0000:00\"},\n"
	"    {\"bdf\": \"0000:01:00.1\", \"vendor\": \"0x15b3\", \"device\": \"0x1021\", "
	"\"class\": \"0x020700\", \"parent\": \"0000:00:01.0\"}\n"
	"  ],\n"
	"  \"rdma\": [{\"name\": \"mlx5_0\", \"pci\": \"0000:01:00.1\", "
	"\"ports\": [{\"num\": 1, \"rate\": \"200 Gb/sec (4X HDR)\"}]}],\n"
	"  \"osdevs\": [{\"name\": \"ib0\", \"class\": \"net\", \"pci\": \"0000:01:00.1\"}],\n"
	"  \"fabric\": []\n"
	"}\n";

/* src with the first `from` replaced by `to`; caller frees. */
static char *replace(const char *src, const char *from, const char *to)
{
	const char *at = strstr(src, from);
	size_t pre;
	char *s;

	CU_ASSERT_PTR_NOT_NULL_FATAL(at);
	pre = (size_t)(at - src);
	s = malloc(strlen(src) - strlen(from) + strlen(to) + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	memcpy(s, src, pre);
	strcpy(s + pre, to);
	strcat(s, at + strlen(from));
	return s;
}

static char *mutate(const char *from, const char *to)
{
	return replace(base, from, to);
}

static void test_base_defaults(void)
{
	struct topo_graph *g = NULL;
	char err[512] = "";
	const struct topo_pci *gpu;

	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(base, &g, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_EQUAL(g->n_pci, 3);
	gpu = &g->pci[0];
	CU_ASSERT_EQUAL(gpu->parent, 1);
	CU_ASSERT_EQUAL(gpu->hostbridge, 0); /* inherited from its parent */
	CU_ASSERT_EQUAL(gpu->physfn, -1);
	CU_ASSERT_EQUAL(gpu->acs_ctrl, -1);
	CU_ASSERT_EQUAL(gpu->iommu_group, -1);
	CU_ASSERT_EQUAL(gpu->subvendor, 0);
	CU_ASSERT_EQUAL(gpu->cur_speed, 0);
	CU_ASSERT_EQUAL(gpu->nbars, 0);
	CU_ASSERT_FALSE(gpu->port_from_caps);
	CU_ASSERT_EQUAL(g->pci[1].port, TOPO_PORT_ROOT); /* inferred */
	CU_ASSERT_TRUE(g->numa[0].has_cpu);              /* it has cpus */
	CU_ASSERT_FALSE(g->numa[0].access0.present);
	CU_ASSERT_EQUAL(g->cpu.family, -1);
	CU_ASSERT_STRING_EQUAL(g->source, "");
	CU_ASSERT_DOUBLE_EQUAL(g->rdma[0].ports[0].gbps, 200, 1e-9); /* from rate */
	CU_ASSERT_EQUAL(g->rdma[0].ports[0].state, 0);               /* unknown */
	/* the root bus's first function is a root port: what p2pdma checks */
	CU_ASSERT_EQUAL(g->hostbridges[0].root_vendor, 0x8086);
	CU_ASSERT_EQUAL(g->hostbridges[0].root_device, 0x7075);
	free(check_roundtrip(g));
	topo_graph_free(g);
}

struct bad_case {
	const char *from, *to;
	int rc;
	const char *msg; /* substring of the error */
};

static const struct bad_case bad_cases[] = {
	/* syntax: line and column of the offending character */
	{ "\"version\": 1,", "\"version\": 1x,", -EINVAL, "<string>:3:15: " },
	{ "  \"fabric\": []\n}\n", "  \"fabric\": [\n", -EINVAL, "<string>:18:1: unexpected end of data" },
	{ "\"fabric\": []\n}", "\"fabric\": []\n} x", -EINVAL, "<string>:18:3: unexpected character" },
	{ "\"fabric\": []", "\"fabric\": [],", -EINVAL, "<string>:18:1: unexpected character" },
	/* the top */
	{ "\"pagemap-topology\"", "\"pagemap-topo\"", -EINVAL,
	  "<string>: format: expected \"pagemap-topology\", got \"pagemap-topo\"" },
	{ "\"version\": 1", "\"version\": 2", -EINVAL, "version: version 2 is not supported" },
	{ "\"emulated\": true,", "", -EINVAL, "<string>: emulated: missing" },
	{ "\"emulated\": true", "\"emulated\": \"yes\"", -EINVAL,
	  "emulated: expected a boolean, got a string" },
	{ "\"fabric\": []", "\"fabric\": [], \"numaa\": []", -EINVAL, "<string>: numaa: unknown key" },
	/* numa */
	{ "\"distances\": [10, 20]}", "\"distances\": [10]}", -EINVAL,
	  "numa[0].distances: expected 2 values (one per NUMA node), got 1" },
	{ "[20, 10]", "[20, 256]", -EINVAL, "numa[1].distances[1]: 256 is out of range -1..255" },
	{ "{\"id\": 1,", "{\"id\": 0,", -EINVAL, "numa[1].id: duplicate NUMA node 0" },
	{ "\"cpus\": \"4-7\"", "\"cpus\": \"7-4\"", -EINVAL, "numa[1].cpus: not a cpulist" },
	{ "\"cpus\": \"4-7\"", "\"cpus\": \"4-7\", \"hmat\": {\"initiators\": [2]}", -EINVAL,
	  "numa[1].hmat.initiators[0]: no NUMA node 2" },
	/* host bridges */
	{ "\"name\": \"pci0000:00\"", "\"name\": \"0000:00\"", -EINVAL,
	  "hostbridges[0].name: expected \"pciDDDD:BB\"" },
	{ "\"numa\": 0}]", "\"numa\": 5}]", -EINVAL, "hostbridges[0].numa: no NUMA node 5" },
	/* pci */
	{ "\"vendor\": \"0x15b3\", \"device\"", "\"vendr\": \"0x15b3\", \"device\"", -EINVAL,
	  "pci[2].vendr: unknown key" },
	{ "\"vendor\": \"0x10de\", ", "", -EINVAL, "pci[0].vendor: missing" },
	{ "\"vendor\": \"0x10de\"", "\"vendor\": 4318", -EINVAL,
	  "pci[0].vendor: expected a string, got an integer" },
	{ "\"vendor\": \"0x10de\"", "\"vendor\": \"0x10g\"", -EINVAL,
	  "pci[0].vendor: expected a hex string like \"0x15b3\", got \"0x10g\"" },
	{ "\"vendor\": \"0x10de\"", "\"vendor\": \"10de\"", -EINVAL, "pci[0].vendor: expected a hex string" },
	{ "\"vendor\": \"0x10de\"", "\"vendor\": \"0x110de\"", -EINVAL,
	  "pci[0].vendor: 0x110de is out of range (max 0xffff)" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x1030200\"", -EINVAL, "pci[0].class: 0x1030200 is out of range" },
	{ "\"bdf\": \"0000:01:00.0\"", "\"bdf\": \"0000:01:20.0\"", -EINVAL,
	  "pci[0].bdf: not a PCI address" },
	{ "\"bdf\": \"0000:01:00.1\"", "\"bdf\": \"0000:01:00.0\"", -EINVAL,
	  "pci[2].bdf: duplicate PCI function 0000:01:00.0 (also pci[0])" },
	{ "\"parent\": \"0000:00:01.0\"}", "\"parent\": \"0000:99:00.0\"}", -EINVAL,
	  "<string>: pci[0].parent: no PCI function 0000:99:00.0" },
	{ "\"parent\": \"0000:00:01.0\"}", "\"parent\": \"0000:01:00.1\"}", -EINVAL,
	  "pci[0].parent: 0000:01:00.1 is not a PCI bridge (class 0x020700)" },
	{ "\"parent\": \"0000:00:01.0\"}", "\"parent\": \"0000:01:00.0\"}", -EINVAL,
	  "pci[0].parent: is the function itself" },
	{ "\"hostbridge\": \"pci0000:00\"}", "\"hostbridge\": \"pci0000:00\", \"parent\": \"0000:00:01.0\"}",
	  -EINVAL, "pci[1].parent: is the function itself" },
	{ "\"hostbridge\": \"pci0000:00\"}", "\"parent\": \"0000:01:00.0\"}", -EINVAL,
	  "pci[1].parent: 0000:01:00.0 is not a PCI bridge (class 0x030200)" },
	{ "\"hostbridge\": \"pci0000:00\"}", "\"hostbridge\": null}", -EINVAL,
	  "pci[1].hostbridge: missing (required when parent is null)" },
	{ "\"hostbridge\": \"pci0000:00\"}", "\"hostbridge\": \"pci0000:17\"}", -EINVAL,
	  "pci[1].hostbridge: no host bridge pci0000:17" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"numa\": \"0\"", -EINVAL,
	  "pci[0].numa: expected an integer, got a string" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"numa\": 9", -EINVAL,
	  "pci[0].numa: no NUMA node 9" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"link\": {\"cur_speed\": \"fast\"}",
	  -EINVAL, "pci[0].link.cur_speed: expected \"N.N GT/s\"" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"link\": {\"max_width\": 33}",
	  -EINVAL, "pci[0].link.max_width: 33 is out of range 0..32" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"port\": \"switch\"", -EINVAL,
	  "pci[0].port: \"switch\" is not endpoint" },
	{ "\"class\": \"0x030200\"",
	  "\"class\": \"0x030200\", \"bars\": [{\"index\": 1, \"size\": 4}, {\"index\": 1, \"size\": 8}]",
	  -EINVAL, "pci[0].bars[1].index: duplicate BAR 1" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"bars\": [{\"index\": 6, \"size\": 4}]",
	  -EINVAL, "pci[0].bars[0].index: 6 is out of range 0..5" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"acs_ctrl\": 65536", -EINVAL,
	  "pci[0].acs_ctrl: 65536 is out of range 0..65535" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"physfn\": \"0000:02:00.0\"", -EINVAL,
	  "pci[0].physfn: no PCI function 0000:02:00.0" },
	{ "\"class\": \"0x030200\"", "\"class\": \"0x030200\", \"driver\": \"0123456789012345678901234567890123\"",
	  -EINVAL, "pci[0].driver: longer than 31 bytes" },
	/* rdma, osdevs, fabric */
	{ "\"pci\": \"0000:01:00.1\", \"ports\"", "\"pci\": \"0000:01:00.7\", \"ports\"", -EINVAL,
	  "rdma[0].pci: no PCI function 0000:01:00.7" },
	{ "\"ports\": [{\"num\": 1,", "\"ports\": [{\"num\": 1, \"state\": \"UP\",", -EINVAL,
	  "rdma[0].ports[0].state: \"UP\" is not DOWN" },
	{ "\"class\": \"net\"", "\"cls\": \"net\"", -EINVAL, "osdevs[0].cls: unknown key" },
	{ "\"fabric\": []", "\"fabric\": [{\"a\": \"0000:01:00.0\", \"b\": \"0000:01:00.0\", \"type\": \"nvlink\"}]",
	  -EINVAL, "fabric[0].b: same function as a" },
	{ "\"fabric\": []", "\"fabric\": [{\"a\": \"0000:01:00.0\", \"b\": \"0000:01:00.1\", \"type\": \"nvswitch\"}]",
	  -EINVAL, "fabric[0].type: \"nvswitch\" is not nvlink or xgmi" },
	{ "\"fabric\": []", "\"fabric\": [{\"a\": \"0000:01:00.0\", \"b\": null, \"type\": \"xgmi\"}]",
	  -EINVAL, "fabric[0].b: expected a string, got null" },
	{ "\"fabric\": []", "\"fabric\": [{\"a\": \"0000:01:00.0\", \"b\": \"0000:01:00.1\", \"type\": \"xgmi\", \"gbps\": -1}]",
	  -EINVAL, "fabric[0].gbps: must be a finite number >= 0" },
	{ "\"fabric\": []", "\"fabric\": {}", -EINVAL, "fabric: expected an array, got an object" },
	{ "\"fabric\": []", "\"fabric\": [7]", -EINVAL, "fabric[0]: expected an object, got an integer" },
};

static void test_errors(void)
{
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct topo_graph *sentinel = (struct topo_graph *)&bad_cases, *g = sentinel;
		char err[512] = "", *doc;
		int r;

		if (!c->msg || !strstr(base, c->from))
			continue;
		doc = mutate(c->from, c->to);
		r = topo_file_load_string(doc, &g, err, sizeof(err));
		if (r != c->rc || !strstr(err, c->msg))
			fprintf(stderr, "\ncase %zu: got %d \"%s\", want %d \"%s\"\n", i, r, err, c->rc,
				c->msg);
		CU_ASSERT_EQUAL(r, c->rc);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, c->msg));
		CU_ASSERT_PTR_EQUAL(g, sentinel); /* output untouched on failure */
		free(doc);
	}
}

static void test_parent_loop(void)
{
	/* 00:01.0 below 01:00.2, 01:00.2 below 00:01.0: both bridges, a cycle. */
	char *doc = mutate("\"hostbridge\": \"pci0000:00\"}",
			   "\"parent\": \"0000:01:00.2\"}, {\"bdf\": \"0000:01:00.2\", \"vendor\": \"0x8086\", "
			   "\"device\": \"0x7075\", \"class\": \"0x060400\", \"hostbridge\": \"pci0000:00\", "
			   "\"parent\": \"0000:00:01.0\"}");
	struct topo_graph *g = NULL;
	char err[512] = "";

	CU_ASSERT_EQUAL(topo_file_load_string(doc, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pci[0].parent: the parent chain of 0000:01:00.0 loops"));
	CU_ASSERT_PTR_NULL(g);
	free(doc);
}

static void test_hostbridge_mismatch(void)
{
	char *two = mutate("[{\"name\": \"pci0000:00\", \"numa\": 0}]",
			   "[{\"name\": \"pci0000:00\", \"numa\": 0}, {\"name\": \"pci0000:8A\"}, "
			   "{\"name\": \"pci0001:00\"}]");
	char *doc = replace(two, "\"parent\": \"0000:00:01.0\"}",
			    "\"parent\": \"0000:00:01.0\", \"hostbridge\": \"pci0000:8a\"}");
	char *dom = replace(two, "\"hostbridge\": \"pci0000:00\"}", "\"hostbridge\": \"pci0001:00\"}");
	struct topo_graph *g = NULL;
	char err[512] = "";

	/* a child named below another host bridge than its parent */
	CU_ASSERT_EQUAL(topo_file_load_string(doc, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(err, "pci[0].hostbridge: pci0000:8a, but parent 0000:00:01.0 is below pci0000:00"));
	/* a function in another PCI domain than its host bridge */
	CU_ASSERT_EQUAL(topo_file_load_string(dom, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "pci[1].bdf: domain 0000 is not host bridge pci0001:00's"));
	CU_ASSERT_PTR_NULL(g);
	/* the host bridge list itself loads, names normalized to the kernel's case */
	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(two, &g, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(g->hostbridges[1].name, "pci0000:8a");
	CU_ASSERT_EQUAL(g->hostbridges[2].domain, 1);
	topo_graph_free(g);
	free(two);
	free(doc);
	free(dom);
}

/*
 * The BDF's domain must be the host bridge's also when the host bridge is
 * inherited from the parent: such a file used to load, and its dump (which
 * names every function's host bridge) then did not load again. Found by
 * fuzz_topo_file (topo_file-domain-vs-inherited-hostbridge.json).
 */
static const char inherit_doc[] =
	"{\"format\": \"pagemap-topology\", \"version\": 1, \"emulated\": true,\n"
	" \"numa\": [{\"id\": 0, \"cpus\": \"0-3\"}],\n"
	" \"hostbridges\": [{\"name\": \"pci0000:00\", \"numa\": 0}],\n"
	" \"pci\": [\n"
	"  {\"bdf\": \"0000:00:01.0\", \"vendor\": \"0x8086\", \"device\": \"0x7075\", "
	"\"class\": \"0x060400\", \"hostbridge\": \"pci0000:00\"},\n"
	"  {\"bdf\": \"0001:01:00.0\", \"vendor\": \"0x10de\", \"device\": \"0x2330\", "
	"\"class\": \"0x030200\", \"parent\": \"0000:00:01.0\"}\n"
	" ]}\n";

static void test_domain_vs_inherited_hostbridge(void)
{
	/* base with its first endpoint, listed before its parent, in domain 0001 */
	char *fwd = mutate("\"bdf\": \"0000:01:00.0\"", "\"bdf\": \"0001:01:00.0\"");
	/* the same tree wholly in domain 0001: consistent, and it stays so */
	char *t1 = replace(inherit_doc, "pci0000:00\", \"numa\"", "pci0001:00\", \"numa\"");
	char *t2 = replace(t1, "\"hostbridge\": \"pci0000:00\"", "\"hostbridge\": \"pci0001:00\"");
	char *t3 = replace(t2, "\"bdf\": \"0000:00:01.0\"", "\"bdf\": \"0001:00:01.0\"");
	char *ok = replace(t3, "\"parent\": \"0000:00:01.0\"", "\"parent\": \"0001:00:01.0\"");
	struct topo_graph *sentinel = (struct topo_graph *)&bad_cases, *g = sentinel, *g2 = NULL;
	char err[512] = "", *a, *b;

	CU_ASSERT_EQUAL(topo_file_load_string(fwd, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>: pci[0].bdf: domain 0001 is not host bridge "
					   "pci0000:00's (inherited from parent 0000:00:01.0)"));
	CU_ASSERT_PTR_EQUAL(g, sentinel); /* output untouched on failure */
	err[0] = '\0';
	CU_ASSERT_EQUAL(topo_file_load_string(inherit_doc, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>: pci[1].bdf: domain 0001 is not host bridge "
					   "pci0000:00's (inherited from parent 0000:00:01.0)"));
	CU_ASSERT_PTR_EQUAL(g, sentinel);

	g = NULL;
	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(ok, &g, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(g->pci[1].hostbridge, 0); /* inherited */
	CU_ASSERT_EQUAL(g->pci[1].domain, 1);
	a = dump(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(a, &g2, err, sizeof(err)), 0);
	b = dump(g2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_STRING_EQUAL(a, b);
	free(a);
	free(b);
	topo_graph_free(g);
	topo_graph_free(g2);
	free(fwd);
	free(t1);
	free(t2);
	free(t3);
	free(ok);
}

static void test_derived_keys_ignored(void)
{
	char *doc = mutate("\"fabric\": []",
			   "\"fabric\": [], \"devices\": [{\"name\": \"x\"}], \"pairs\": {\"a\": 1}, "
			   "\"peer_groups\": [[0, 1]]");
	struct topo_graph *g = NULL;
	char err[512] = "", *out;

	CU_ASSERT_EQUAL_FATAL(topo_file_load_string(doc, &g, err, sizeof(err)), 0);
	out = dump(g);
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NULL(strstr(out, "peer_groups")); /* the file never writes them */
	free(out);
	topo_graph_free(g);
	free(doc);
}

static void test_top_not_object(void)
{
	struct topo_graph *g = NULL;
	char err[512] = "";

	CU_ASSERT_EQUAL(topo_file_load_string("[1, 2]", &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>: expected a JSON object at the top, got an array"));
	CU_ASSERT_EQUAL(topo_file_load_string("", &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "<string>:1:1: unexpected end of data"));
	/* no error buffer is fine too */
	CU_ASSERT_EQUAL(topo_file_load_string("{", &g, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(topo_file_load_string(NULL, &g, err, sizeof(err)), -EINVAL);
	CU_ASSERT_PTR_NULL(g);
}

static void test_missing_file(void)
{
	struct topo_graph *g = NULL;
	char err[512] = "";
	const char *path = cu_source_path(EXAMPLES "/no-such-file.json");
	char want[4200];

	CU_ASSERT_EQUAL(topo_file_load(path, &g, err, sizeof(err)), -ENOENT);
	snprintf(want, sizeof(want), "%s: cannot open: ", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	CU_ASSERT_PTR_NULL(g);
	/* a directory opens but does not read */
	CU_ASSERT(topo_file_load(cu_source_path(EXAMPLES), &g, err, sizeof(err)) < 0);
	CU_ASSERT_PTR_NULL(g);
}

static void test_file_syntax_error_names_file(void)
{
	char path[] = "/tmp/pm-topo-XXXXXX";
	int fd = mkstemp(path);
	struct topo_graph *g = NULL;
	char err[512] = "", want[600];
	FILE *f;

	CU_ASSERT_FATAL(fd >= 0);
	f = fdopen(fd, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("{\n  \"format\": \"pagemap-topology\",\n  \"version\": 1,\n  \"emulated\": tru\n}\n", f);
	fclose(f);
	CU_ASSERT_EQUAL(topo_file_load(path, &g, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:4:", path);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	CU_ASSERT_PTR_NULL(g);
	unlink(path);
}

/* The example in docs/topology-format.md is a valid, hand-written file. */
static void test_doc_example(void)
{
	char *doc = read_file(cu_source_path("docs/topology-format.md")), *start, *end;
	struct topo_graph *g = NULL;
	char err[512] = "";
	int gpu;

	CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
	start = strstr(doc, "## Example");
	CU_ASSERT_PTR_NOT_NULL_FATAL(start);
	start = strstr(start, "```json\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(start);
	start += strlen("```json\n");
	end = strstr(start, "\n```");
	CU_ASSERT_PTR_NOT_NULL_FATAL(end);
	end[1] = '\0';
	if (topo_file_load_string(start, &g, err, sizeof(err)) < 0)
		fprintf(stderr, "\n%s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_EQUAL(g->n_pci, 8);
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:01:00.0")].port, TOPO_PORT_SWITCH_UP);
	CU_ASSERT_EQUAL(g->pci[find(g, "0000:02:01.0")].port, TOPO_PORT_SWITCH_DOWN);
	gpu = find(g, "0000:04:00.0");
	CU_ASSERT_EQUAL(g->pci[gpu].max_speed, 320);
	CU_ASSERT_EQUAL(g->pci[gpu].hostbridge, 0);
	CU_ASSERT_FALSE(g->numa[1].has_cpu);
	CU_ASSERT_EQUAL(g->fabric[0].type, TOPO_FABRIC_XGMI);
	CU_ASSERT_DOUBLE_EQUAL(g->rdma[0].ports[0].gbps, 200, 1e-9);
	CU_ASSERT_EQUAL(g->hostbridges[0].root_device, 0x14ab);
	free(check_roundtrip(g));
	topo_graph_free(g);
	free(doc);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "examples all load and round-trip", test_examples_all_load },
		{ "dgx-like example", test_dgx_roundtrip },
		{ "qemu example", test_qemu_roundtrip },
		{ "graph built in code round-trips", test_built_graph_roundtrip },
		{ "defaults of optional fields", test_base_defaults },
		{ "errors name the field", test_errors },
		{ "parent loop", test_parent_loop },
		{ "host bridge mismatch", test_hostbridge_mismatch },
		{ "domain vs inherited host bridge", test_domain_vs_inherited_hostbridge },
		{ "derived keys ignored", test_derived_keys_ignored },
		{ "top level not an object", test_top_not_object },
		{ "missing file", test_missing_file },
		{ "syntax error names the file", test_file_syntax_error_names_file },
		{ "example in the format doc", test_doc_example },
		{ NULL, NULL },
	};

	return cu_run("topo-file", tests);
}
