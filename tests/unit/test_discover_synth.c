/* SPDX-License-Identifier: MIT */
/*
 * Discovery against small sysfs trees built here, laid out as real kernels lay
 * them out (bus/pci/devices links into devices/pciDDDD:BB/..., class links into
 * the owning function's directory), so each source's reading of one kernel
 * interface is pinned down by an exact expectation.
 */
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_run.h"
#include "topo.h"

/* ---- checks that say what differed ---- */

#define check_at(ok, line, ...) cu_check_at(ok, __FILE__, line, __VA_ARGS__)
#define CHECK(cond, ...) check_at(!!(cond), __LINE__, __VA_ARGS__)
#define CHECK_INT(got, want)                                                              \
	do {                                                                              \
		long long got_ = (long long)(got), want_ = (long long)(want);           \
		check_at(got_ == want_, __LINE__, "%s = %lld, want %lld", #got, got_, want_); \
	} while (0)
#define CHECK_STR(got, want)                                                             \
	do {                                                                             \
		const char *got_ = (got), *want_ = (want);                              \
		check_at(got_ && !strcmp(got_, want_), __LINE__, "%s = '%s', want '%s'", #got, \
			 got_ ? got_ : "(null)", want_);                                  \
	} while (0)

/* ---- building trees ---- */

struct tree {
	char root[4096];
	int err;          /* first failure while building, 0 if none */
	char what[4200];  /* what failed */
};

static void fail(struct tree *t, int err, const char *rel)
{
	if (!t->err) {
		t->err = err;
		snprintf(t->what, sizeof(t->what), "%s: %s", rel, strerror(-err));
	}
}

static int mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) && errno != EEXIST) {
			*p = '/';
			return -errno;
		}
		*p = '/';
	}
	return mkdir(path, 0755) && errno != EEXIST ? -errno : 0;
}

/* Creates the directories leading to root/rel; fills path with root/rel. */
static int prepare(struct tree *t, const char *rel, char *path, size_t len)
{
	char dir[4096];
	char *slash;

	snprintf(path, len, "%s/%s", t->root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	return mkdir_p(dir);
}

static void put_bin(struct tree *t, const char *rel, const void *data, size_t len)
{
	char path[8192];
	FILE *f;
	int r = prepare(t, rel, path, sizeof(path));

	if (r < 0) {
		fail(t, r, rel);
		return;
	}
	f = fopen(path, "we");
	if (!f) {
		fail(t, -errno, rel);
		return;
	}
	if (fwrite(data, 1, len, f) != len)
		r = -EIO;
	if (fclose(f) && !r)
		r = -errno;
	if (r < 0)
		fail(t, r, rel);
}

/* Writes root/rel (making its directories) with content. */
static void put(struct tree *t, const char *rel, const char *content)
{
	put_bin(t, rel, content, strlen(content));
}

/* Makes root/rel a symlink to target (relative to the link, as sysfs's are). */
static void link_to(struct tree *t, const char *rel, const char *target)
{
	char path[8192];
	int r = prepare(t, rel, path, sizeof(path));

	if (r < 0)
		fail(t, r, rel);
	else if (symlink(target, path) < 0)
		fail(t, -errno, rel);
}

static void mkdir_in(struct tree *t, const char *rel)
{
	char path[8192];
	int r;

	snprintf(path, sizeof(path), "%s/%s", t->root, rel);
	if ((r = mkdir_p(path)) < 0)
		fail(t, r, rel);
}

static void tree_init(struct tree *t)
{
	const char *base = getenv("TMPDIR");
	struct stat st;

	memset(t, 0, sizeof(*t));
	if (!base || !base[0]) {
		bool shm = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
			   access("/dev/shm", W_OK) == 0;

		base = shm ? "/dev/shm" : "/tmp";
	}
	snprintf(t->root, sizeof(t->root), "%s/pagemap-synth-XXXXXX", base);
	if (!mkdtemp(t->root)) {
		fail(t, -errno, t->root);
		t->root[0] = '\0';
		return;
	}
	mkdir_in(t, "sys/bus/pci/devices");
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void tree_free(struct tree *t)
{
	if (t->root[0])
		nftw(t->root, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
	t->root[0] = '\0';
}

/* Stops the test when its tree could not be built, removing what was. */
#define REQUIRE_BUILT(t)                                                       \
	do {                                                                   \
		if ((t)->err) {                                                \
			CHECK(false, "building the tree: %s", (t)->what);      \
			tree_free(t);                                          \
			CU_FAIL_FATAL("tree not built");                       \
		}                                                              \
	} while (0)

/* ---- PCI functions ---- */

/* resource's flags column: IORESOURCE_* bits, the low bits those of the BAR register. */
#define RES_MEM64_PREF 0x14220cull /* MEM_64 | SIZEALIGN | PREFETCH | MEM, BAR type 0xc */
#define RES_MEM32 0x40200ull       /* SIZEALIGN | MEM */
#define RES_IO 0x40101ull          /* SIZEALIGN | IO, BAR type 0x1 */

struct res {
	uint64_t start, size, flags;
};

/* An AMD GPU's BARs: VRAM and doorbells 64-bit prefetchable, an I/O BAR, MMIO. */
static const struct res gpu_bars[6] = {
	[0] = { 0x38000000000ull, 16ull << 30, RES_MEM64_PREF },
	[2] = { 0x38400000000ull, 256ull << 20, RES_MEM64_PREF },
	[4] = { 0xe000, 0x100, RES_IO },
	[5] = { 0xfc600000, 512 << 10, RES_MEM32 },
};

static const struct res nic_bars[6] = {
	[0] = { 0x3fff0000000ull, 32 << 20, RES_MEM64_PREF },
};

static const char *last_component(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int depth_of(const char *path)
{
	int n = 1;

	for (; *path; path++)
		n += *path == '/';
	return n;
}

/* Writes attr of the function at sys/devices/<dev>. */
static void attr(struct tree *t, const char *dev, const char *name, const char *content)
{
	char rel[4096];

	snprintf(rel, sizeof(rel), "sys/devices/%s/%s", dev, name);
	put(t, rel, content);
}

/* A link from the function's directory to sys/<to>, relative as the kernel makes it. */
static void attr_link(struct tree *t, const char *dev, const char *name, const char *to)
{
	char rel[4096], target[4096] = "";
	size_t n = 0;

	for (int i = 0; i < depth_of(dev) + 1; i++)
		n += (size_t)snprintf(target + n, sizeof(target) - n, "../");
	snprintf(target + n, sizeof(target) - n, "%s", to);
	snprintf(rel, sizeof(rel), "sys/%s", to);
	mkdir_in(t, rel);
	snprintf(rel, sizeof(rel), "sys/devices/%s/%s", dev, name);
	link_to(t, rel, target);
}

static void put_le16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *b, uint32_t v)
{
	put_le16(b, (uint16_t)v);
	put_le16(b + 2, (uint16_t)(v >> 16));
}

/*
 * A PCI function at sys/devices/<dev> ("pci0000:00/0000:00:01.1/0000:01:00.0")
 * with what the kernel always shows: ids, class, the first 64 bytes of config
 * space (what an unprivileged reader gets), resource, irq; and its
 * sys/bus/pci/devices link. bars may be NULL. cfg_ids false writes 0xffff as
 * the config space ids, as an SR-IOV VF reads.
 */
static void add_fn_ids(struct tree *t, const char *dev, uint16_t vendor, uint16_t device,
		       uint32_t class_code, const struct res *bars, bool cfg_ids)
{
	bool bridge = (class_code >> 8) == 0x0604;
	const char *bdf = last_component(dev);
	char rel[4096], target[4096], buf[4096];
	uint8_t cfg[64] = { 0 };
	size_t n = 0;

	snprintf(buf, sizeof(buf), "0x%04x\n", vendor);
	attr(t, dev, "vendor", buf);
	attr(t, dev, "subsystem_vendor", buf);
	snprintf(buf, sizeof(buf), "0x%04x\n", device);
	attr(t, dev, "device", buf);
	attr(t, dev, "subsystem_device", bridge ? "0x0000\n" : "0x0e3b\n");
	snprintf(buf, sizeof(buf), "0x%06x\n", class_code);
	attr(t, dev, "class", buf);
	attr(t, dev, "revision", "0xc1\n");
	attr(t, dev, "irq", "0\n");
	attr(t, dev, "enable", "1\n");
	attr(t, dev, "numa_node", "-1\n");

	put_le16(cfg + 0x00, cfg_ids ? vendor : 0xffff);
	put_le16(cfg + 0x02, cfg_ids ? device : 0xffff);
	put_le16(cfg + 0x04, 0x0006); /* memory space, bus master */
	cfg[0x08] = 0xc1;
	cfg[0x09] = (uint8_t)class_code;
	cfg[0x0a] = (uint8_t)(class_code >> 8);
	cfg[0x0b] = (uint8_t)(class_code >> 16);
	cfg[0x0e] = bridge ? 1 : 0;
	if (!bridge) {
		put_le16(cfg + 0x2c, vendor);
		put_le16(cfg + 0x2e, 0x0e3b);
	}
	for (int i = 0; bars && i < 6 && i < (bridge ? 2 : 6); i++) {
		uint32_t lo = (uint32_t)bars[i].start;

		if (!bars[i].size)
			continue;
		if (bars[i].flags & 0x100)
			lo |= 1;
		else
			lo |= (bars[i].flags & 0x100000 ? 4 : 0) | (bars[i].flags & 0x2000 ? 8 : 0);
		put_le32(cfg + 0x10 + 4 * i, lo);
		if (bars[i].flags & 0x100000)
			put_le32(cfg + 0x14 + 4 * i, (uint32_t)(bars[i].start >> 32));
	}
	snprintf(rel, sizeof(rel), "sys/devices/%s/config", dev);
	put_bin(t, rel, cfg, sizeof(cfg));

	/* 6 BARs, the ROM, 6 SR-IOV BARs; bridges add 4 windows. */
	for (int i = 0; i < (bridge ? 17 : 13); i++) {
		const struct res *r = bars && i < 6 && bars[i].size ? &bars[i] : NULL;

		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      "0x%016llx 0x%016llx 0x%016llx\n",
				      r ? (unsigned long long)r->start : 0ull,
				      r ? (unsigned long long)(r->start + r->size - 1) : 0ull,
				      r ? (unsigned long long)r->flags : 0ull);
	}
	attr(t, dev, "resource", buf);

	snprintf(rel, sizeof(rel), "sys/bus/pci/devices/%s", bdf);
	snprintf(target, sizeof(target), "../../../devices/%s", dev);
	link_to(t, rel, target);
}

static void add_fn(struct tree *t, const char *dev, uint16_t vendor, uint16_t device,
		   uint32_t class_code, const struct res *bars)
{
	add_fn_ids(t, dev, vendor, device, class_code, bars, true);
}

static void set_link(struct tree *t, const char *dev, const char *max_speed, int max_width,
		     const char *cur_speed, int cur_width)
{
	char buf[32];

	attr(t, dev, "max_link_speed", max_speed);
	attr(t, dev, "current_link_speed", cur_speed);
	snprintf(buf, sizeof(buf), "%d\n", max_width);
	attr(t, dev, "max_link_width", buf);
	snprintf(buf, sizeof(buf), "%d\n", cur_width);
	attr(t, dev, "current_link_width", buf);
}

static void add_node(struct tree *t, int id, const char *cpulist, unsigned long kb,
		     const char *distance)
{
	char rel[4096], buf[256];

	snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/cpulist", id);
	put(t, rel, cpulist);
	snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/meminfo", id);
	snprintf(buf, sizeof(buf),
		 "Node %d MemTotal:       %lu kB\nNode %d MemFree:        %lu kB\n", id, kb, id,
		 kb / 2);
	put(t, rel, buf);
	snprintf(rel, sizeof(rel), "sys/devices/system/node/node%d/distance", id);
	put(t, rel, distance);
}

static struct topo_graph *discover(struct tree *t, int *rc)
{
	char err[512] = "";
	struct topo_discover_opts o = {
		.sysfs_root = t->root, .no_verbs = true, .errbuf = err, .errlen = sizeof(err)
	};
	struct topo_graph *g = NULL;

	*rc = topo_discover(&o, &g);
	CHECK(*rc == 0, "topo_discover(%s) = %d: %s", t->root, *rc, err);
	return *rc == 0 ? g : NULL;
}

/* Index of the function at bdf in g->pci, checked to exist. */
static int pci_at(const struct topo_graph *g, const char *bdf)
{
	int i = topo_graph_find_pci_bdf(g, bdf);

	CHECK(i >= 0, "%s not discovered", bdf);
	return i;
}

static int device_of_pci(const struct topo_graph *g, int pci)
{
	for (size_t d = 0; d < g->n_devices; d++)
		if (g->devices[d].pci == pci && pci >= 0)
			return (int)d;
	return -1;
}

static int rdma_named(const struct topo_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_rdma; i++)
		if (!strcmp(g->rdma[i].name, name))
			return (int)i;
	return -1;
}

static int osdev_named(const struct topo_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_osdevs; i++)
		if (!strcmp(g->osdevs[i].name, name))
			return (int)i;
	return -1;
}

/* ---- the trees ---- */

#define RC0 "pci0000:00/0000:00:00.0"
#define RP_A "pci0000:00/0000:00:01.1"
#define RP_B "pci0000:00/0000:00:03.1"
#define SW_UP RP_A "/0000:01:00.0"
#define SW_DN0 SW_UP "/0000:02:00.0"
#define SW_DN1 SW_UP "/0000:02:01.0"
#define GPU0 SW_DN0 "/0000:03:00.0"
#define GPU1 SW_DN1 "/0000:04:00.0"
#define NVME RP_B "/0000:05:00.0"

/*
 * pci0000:00: the root complex at 00.0; root port 01.1 with a switch (upstream
 * 01:00.0, downstream 02:00.0 and 02:01.0) and an MI210-class GPU below each
 * downstream port; root port 03.1 with an NVMe drive. Created out of BDF order:
 * discovery must sort.
 */
static void build_switch_tree(struct tree *t)
{
	add_fn(t, GPU1, 0x1002, 0x74a1, 0x038000, gpu_bars);
	add_fn(t, NVME, 0x144d, 0xa80a, 0x010802, nic_bars);
	add_fn(t, SW_DN1, 0x1002, 0x14a1, 0x060400, NULL);
	add_fn(t, RP_B, 0x1022, 0x1483, 0x060400, NULL);
	add_fn(t, GPU0, 0x1002, 0x74a1, 0x038000, gpu_bars);
	add_fn(t, SW_DN0, 0x1002, 0x14a1, 0x060400, NULL);
	add_fn(t, SW_UP, 0x1002, 0x14a0, 0x060400, NULL);
	add_fn(t, RP_A, 0x1022, 0x1483, 0x060400, NULL);
	add_fn(t, RC0, 0x1022, 0x1480, 0x060000, NULL);

	for (const char *const *b = (const char *const[]){ RP_A, RP_B, SW_UP, SW_DN0, SW_DN1, NULL };
	     *b; b++) {
		set_link(t, *b, "16.0 GT/s PCIe\n", 16, "16.0 GT/s PCIe\n", 16);
		attr_link(t, *b, "driver", "bus/pci/drivers/pcieport");
		attr(t, *b, "local_cpulist", "0-7\n");
	}
	/* GPU0's link trained down to Gen1 (e.g. idle ASPM or a bad riser). */
	set_link(t, GPU0, "16.0 GT/s PCIe\n", 16, "2.5 GT/s PCIe\n", 16);
	set_link(t, GPU1, "16.0 GT/s PCIe\n", 16, "16.0 GT/s PCIe\n", 16);
	set_link(t, NVME, "8.0 GT/s PCIe\n", 4, "8.0 GT/s PCIe\n", 4);
	attr_link(t, GPU0, "driver", "bus/pci/drivers/amdgpu");
	attr_link(t, GPU1, "driver", "bus/pci/drivers/amdgpu");
	attr_link(t, NVME, "driver", "bus/pci/drivers/nvme");
	attr_link(t, GPU0, "iommu_group", "kernel/iommu_groups/7");
	attr_link(t, GPU1, "iommu_group", "kernel/iommu_groups/8");
	attr_link(t, NVME, "iommu_group", "kernel/iommu_groups/12");
	attr(t, GPU0, "numa_node", "0\n");
	attr(t, GPU1, "numa_node", "0\n");
	attr(t, GPU0, "local_cpulist", "0-7\n");
	attr(t, GPU1, "local_cpulist", "0-7\n");
	/* An older kernel's attributes: the mask, no list. */
	attr(t, NVME, "local_cpus", "00000000,0000000f\n");
	add_node(t, 0, "0-7\n", 16384, "10\n");
}

/* ---- 1. PCI ---- */

static void test_pci(void)
{
	static const char *const order[] = { "0000:00:00.0", "0000:00:01.1", "0000:00:03.1",
					     "0000:01:00.0", "0000:02:00.0", "0000:02:01.0",
					     "0000:03:00.0", "0000:04:00.0", "0000:05:00.0" };
	struct topo_graph *g;
	struct tree t;
	int r, rp_a, rp_b, up, dn0, dn1, gpu0, gpu1, nvme, rc0;

	tree_init(&t);
	build_switch_tree(&t);
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	/* lspci's order, whatever order the directory gave. */
	CHECK_INT(g->n_pci, 9);
	for (size_t i = 0; i < g->n_pci && i < 9; i++)
		CHECK_STR(g->pci[i].bdf, order[i]);
	rc0 = pci_at(g, "0000:00:00.0");
	rp_a = pci_at(g, "0000:00:01.1");
	rp_b = pci_at(g, "0000:00:03.1");
	up = pci_at(g, "0000:01:00.0");
	dn0 = pci_at(g, "0000:02:00.0");
	dn1 = pci_at(g, "0000:02:01.0");
	gpu0 = pci_at(g, "0000:03:00.0");
	gpu1 = pci_at(g, "0000:04:00.0");
	nvme = pci_at(g, "0000:05:00.0");
	if (rc0 < 0 || rp_a < 0 || rp_b < 0 || up < 0 || dn0 < 0 || dn1 < 0 || gpu0 < 0 ||
	    gpu1 < 0 || nvme < 0)
		goto out;

	/* The chain comes from the sysfs path. */
	CHECK_INT(g->pci[gpu0].parent, dn0);
	CHECK_INT(g->pci[gpu1].parent, dn1);
	CHECK_INT(g->pci[dn0].parent, up);
	CHECK_INT(g->pci[dn1].parent, up);
	CHECK_INT(g->pci[up].parent, rp_a);
	CHECK_INT(g->pci[rp_a].parent, -1);
	CHECK_INT(g->pci[rp_b].parent, -1);
	CHECK_INT(g->pci[rc0].parent, -1);
	CHECK_INT(g->pci[nvme].parent, rp_b);

	/* 64 bytes of config space: no capabilities, port types from the tree shape. */
	CHECK_INT(g->pci[rp_a].port, TOPO_PORT_ROOT);
	CHECK_INT(g->pci[rp_b].port, TOPO_PORT_ROOT);
	CHECK_INT(g->pci[up].port, TOPO_PORT_SWITCH_UP);
	CHECK_INT(g->pci[dn0].port, TOPO_PORT_SWITCH_DOWN);
	CHECK_INT(g->pci[dn1].port, TOPO_PORT_SWITCH_DOWN);
	CHECK_INT(g->pci[gpu0].port, TOPO_PORT_ENDPOINT);
	CHECK_INT(g->pci[rc0].port, TOPO_PORT_ENDPOINT);
	CHECK(!g->pci[up].port_from_caps, "switch port type claimed to come from capabilities");
	CHECK_INT(g->pci[up].acs_ctrl, -1);

	/* One host bridge, named as in the path; its whitelist device is 00.0. */
	CHECK_INT(g->n_hostbridges, 1);
	CHECK_INT(g->pci[gpu0].hostbridge, 0);
	CHECK_INT(g->pci[nvme].hostbridge, 0);
	if (g->n_hostbridges == 1) {
		CHECK_STR(g->hostbridges[0].name, "pci0000:00");
		CHECK_INT(g->hostbridges[0].domain, 0);
		CHECK_INT(g->hostbridges[0].bus, 0);
		CHECK_INT(g->hostbridges[0].root_vendor, 0x1022);
		CHECK_INT(g->hostbridges[0].root_device, 0x1480);
	}

	/* Identity. */
	CHECK_INT(g->pci[gpu0].domain, 0);
	CHECK_INT(g->pci[gpu0].bus, 3);
	CHECK_INT(g->pci[gpu0].dev, 0);
	CHECK_INT(g->pci[gpu0].fn, 0);
	CHECK_INT(g->pci[gpu0].vendor, 0x1002);
	CHECK_INT(g->pci[gpu0].device, 0x74a1);
	CHECK_INT(g->pci[gpu0].subvendor, 0x1002);
	CHECK_INT(g->pci[gpu0].subdevice, 0x0e3b);
	CHECK_INT(g->pci[gpu0].class_code, 0x038000);
	CHECK_INT(g->pci[nvme].class_code, 0x010802);
	CHECK_INT(g->pci[up].class_code, 0x060400);
	CHECK_INT(topo_pci_kind(&g->pci[gpu0]), TOPO_DEV_GPU);
	CHECK_INT(topo_pci_kind(&g->pci[nvme]), TOPO_DEV_NVME);

	/* sysfs extras. */
	CHECK_STR(g->pci[gpu0].driver, "amdgpu");
	CHECK_STR(g->pci[nvme].driver, "nvme");
	CHECK_STR(g->pci[up].driver, "pcieport");
	CHECK_STR(g->pci[rc0].driver, "");
	CHECK_INT(g->pci[gpu0].iommu_group, 7);
	CHECK_INT(g->pci[gpu1].iommu_group, 8);
	CHECK_INT(g->pci[nvme].iommu_group, 12);
	CHECK_INT(g->pci[rc0].iommu_group, -1);
	CHECK_INT(g->pci[gpu0].numa, 0);
	CHECK_INT(g->pci[rc0].numa, -1);
	CHECK_INT(topo_pci_numa(g, rc0), 0); /* one node: -1 means node 0 */

	/* Links: speeds in 0.1 GT/s. */
	CHECK_INT(g->pci[gpu0].max_speed, 160);
	CHECK_INT(g->pci[gpu0].cur_speed, 25);
	CHECK_INT(g->pci[gpu0].max_width, 16);
	CHECK_INT(g->pci[gpu0].cur_width, 16);
	CHECK_INT(g->pci[nvme].max_speed, 80);
	CHECK_INT(g->pci[nvme].max_width, 4);
	CHECK_INT(g->pci[rc0].max_speed, 0);
	CHECK(topo_pci_downtrained(&g->pci[gpu0]), "GPU0 at 2.5 of 16 GT/s not downtrained");
	CHECK(!topo_pci_downtrained(&g->pci[gpu1]), "GPU1 at full speed reported downtrained");
	/* Gen4 x16 from GPU1 up to its downstream port: 24 GB/s. */
	CHECK(topo_pci_uplink_gbps(g, gpu1) == 24.0, "GPU1 uplink %.1f GB/s, want 24",
	      topo_pci_uplink_gbps(g, gpu1));

	/* BARs: memory BARs only, sizes from start..end, flags from resource. */
	CHECK_INT(g->pci[gpu0].nbars, 3);
	if (g->pci[gpu0].nbars == 3) {
		const struct topo_bar *b = g->pci[gpu0].bars;

		CHECK_INT(b[0].index, 0);
		CHECK_INT(b[0].size, 16ull << 30);
		CHECK(b[0].prefetch && b[0].is64, "BAR0 not 64-bit prefetchable");
		CHECK_INT(b[1].index, 2);
		CHECK_INT(b[1].size, 256ull << 20);
		CHECK(b[1].prefetch && b[1].is64, "BAR2 not 64-bit prefetchable");
		CHECK_INT(b[2].index, 5);
		CHECK_INT(b[2].size, 512 << 10);
		CHECK(!b[2].prefetch && !b[2].is64, "BAR5 not 32-bit non-prefetchable");
	}
	CHECK_INT(g->pci[up].nbars, 0);

	/* CPU affinity: the list, or the mask made a list. */
	CHECK_STR(g->pci[gpu0].local_cpus, "0-7");
	CHECK_STR(g->pci[nvme].local_cpus, "0-3");
	CHECK_STR(g->pci[rc0].local_cpus, "");
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 2. NUMA ---- */

static void test_numa(void)
{
	struct topo_graph *g;
	struct tree t;
	int r, n0, n1, local, wide;

	tree_init(&t);
	add_node(&t, 0, "0-3\n", 16384, "10 20\n");
	add_node(&t, 1, "\n", 8192, "20 10\n");
	put(&t, "sys/devices/system/node/online", "0-1\n");
	put(&t, "sys/devices/system/node/has_cpu", "0\n");
	/* HMAT: node 1 (CXL memory) is best reached from node 0's CPUs. */
	put(&t, "sys/devices/system/node/node1/access0/initiators/read_bandwidth", "20000\n");
	put(&t, "sys/devices/system/node/node1/access0/initiators/write_bandwidth", "15000\n");
	put(&t, "sys/devices/system/node/node1/access0/initiators/read_latency", "250\n");
	put(&t, "sys/devices/system/node/node1/access0/initiators/write_latency", "300\n");
	link_to(&t, "sys/devices/system/node/node1/access0/initiators/node0", "../../../node0");
	link_to(&t, "sys/devices/system/node/node0/access0/targets/node1", "../../../node1");

	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, "pci0000:00/0000:00:02.0", 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, "pci0000:00/0000:00:02.0", "local_cpulist", "0-3\n");
	add_fn(&t, "pci0000:00/0000:00:03.0", 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, "pci0000:00/0000:00:03.0", "local_cpulist", "0-7\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	CHECK_INT(g->n_numa, 2);
	n0 = topo_graph_find_numa(g, 0);
	n1 = topo_graph_find_numa(g, 1);
	CHECK(n0 >= 0 && n1 >= 0, "nodes 0 and 1 not both found");
	if (n0 < 0 || n1 < 0)
		goto out;
	CHECK_STR(g->numa[n0].cpulist, "0-3");
	CHECK_STR(g->numa[n1].cpulist, "");
	CHECK(g->numa[n0].has_cpu, "node0 has CPUs");
	CHECK(!g->numa[n1].has_cpu, "node1 is memory-only");
	CHECK_INT(g->numa[n0].mem_total, 16384ull * 1024);
	CHECK_INT(g->numa[n1].mem_total, 8192ull * 1024);

	CHECK(g->numa[n1].access0.present, "node1 HMAT access0 not read");
	CHECK_INT(g->numa[n1].access0.read_bw, 20000);
	CHECK_INT(g->numa[n1].access0.write_bw, 15000);
	CHECK_INT(g->numa[n1].access0.read_lat, 250);
	CHECK_INT(g->numa[n1].access0.write_lat, 300);
	CHECK_INT(g->numa[n1].access0.initiators, 1ull << 0);
	CHECK(!g->numa[n0].access0.present, "node0 has no access0/initiators");
	CHECK_INT(g->numa[n0].access0.initiators, 0);

	CHECK_INT(topo_numa_distance(g, 0, 0), 10);
	CHECK_INT(topo_numa_distance(g, 0, 1), 20);
	CHECK_INT(topo_numa_distance(g, 1, 0), 20);
	CHECK_INT(topo_numa_distance(g, 1, 1), 10);
	CHECK_INT(topo_numa_distance(g, 0, 2), -ENOENT);

	/* numa_node -1: placed by the node whose CPUs hold all its local CPUs. */
	local = pci_at(g, "0000:00:02.0");
	wide = pci_at(g, "0000:00:03.0");
	if (local >= 0)
		CHECK_INT(g->pci[local].numa, 0);
	if (wide >= 0)
		CHECK_INT(g->pci[wide].numa, -1);
	r = topo_graph_lookup(g, "node1");
	CHECK(r >= 0 && g->devices[r].kind == TOPO_DEV_NUMA && g->devices[r].numa == 1,
	      "lookup node1 = %d", r);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* Two CPU nodes: a device local to both is local to neither; numa_node wins. */
static void test_numa_placement(void)
{
	struct topo_graph *g;
	struct tree t;
	int r, i;

	tree_init(&t);
	add_node(&t, 0, "0-3\n", 16384, "10 21\n");
	add_node(&t, 1, "4-7\n", 16384, "21 10\n");
	add_fn(&t, "pci0000:00/0000:00:02.0", 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, "pci0000:00/0000:00:02.0", "local_cpulist", "0-7\n");
	add_fn(&t, "pci0000:00/0000:00:03.0", 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, "pci0000:00/0000:00:03.0", "local_cpulist", "4-7\n");
	add_fn(&t, "pci0000:00/0000:00:04.0", 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, "pci0000:00/0000:00:04.0", "local_cpulist", "4-7\n");
	attr(&t, "pci0000:00/0000:00:04.0", "numa_node", "0\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;
	if ((i = pci_at(g, "0000:00:02.0")) >= 0)
		CHECK_INT(g->pci[i].numa, -1);
	if ((i = pci_at(g, "0000:00:03.0")) >= 0)
		CHECK_INT(g->pci[i].numa, 1);
	if ((i = pci_at(g, "0000:00:04.0")) >= 0)
		CHECK_INT(g->pci[i].numa, 0);
	CHECK_INT(topo_numa_distance(g, 0, 1), 21);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 3. OS devices ---- */

#define OS_GPU "pci0000:00/0000:00:01.1/0000:03:00.0"
#define OS_NIC "pci0000:00/0000:00:02.1/0000:05:00.0"
#define OS_NVME "pci0000:00/0000:00:03.1/0000:06:00.0"

static void test_osdev(void)
{
	static const struct {
		const char *name, *cls, *bdf;
	} want[] = {
		{ "card0", "drm", "0000:03:00.0" },
		{ "renderD128", "drm", "0000:03:00.0" },
		{ "eth0", "net", "0000:05:00.0" },
		{ "nvme0", "nvme", "0000:06:00.0" },
	};
	struct topo_graph *g;
	struct tree t;
	int r, gpu, nic, nvme, d;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, "pci0000:00/0000:00:01.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, "pci0000:00/0000:00:02.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, "pci0000:00/0000:00:03.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, OS_GPU, 0x1002, 0x74a1, 0x038000, gpu_bars);
	add_fn(&t, OS_NIC, 0x8086, 0x1521, 0x020000, nic_bars);
	add_fn(&t, OS_NVME, 0x144d, 0xa80a, 0x010802, nic_bars);
	mkdir_in(&t, "sys/devices/" OS_GPU "/drm/card0/card0-DP-1");
	mkdir_in(&t, "sys/devices/" OS_GPU "/drm/renderD128");
	mkdir_in(&t, "sys/devices/" OS_NIC "/net/eth0");
	mkdir_in(&t, "sys/devices/" OS_NVME "/nvme/nvme0");
	mkdir_in(&t, "sys/devices/virtual/net/lo");
	link_to(&t, "sys/class/drm/card0", "../../devices/" OS_GPU "/drm/card0");
	link_to(&t, "sys/class/drm/renderD128", "../../devices/" OS_GPU "/drm/renderD128");
	link_to(&t, "sys/class/drm/card0-DP-1", "../../devices/" OS_GPU "/drm/card0/card0-DP-1");
	put(&t, "sys/class/drm/version", "drm 1.1.0 20060810\n");
	link_to(&t, "sys/class/net/eth0", "../../devices/" OS_NIC "/net/eth0");
	link_to(&t, "sys/class/net/lo", "../../devices/virtual/net/lo");
	link_to(&t, "sys/class/nvme/nvme0", "../../devices/" OS_NVME "/nvme/nvme0");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	gpu = pci_at(g, "0000:03:00.0");
	nic = pci_at(g, "0000:05:00.0");
	nvme = pci_at(g, "0000:06:00.0");
	if (gpu < 0 || nic < 0 || nvme < 0)
		goto out;
	/* Connectors, virtual netdevs and plain files are not devices. */
	CHECK_INT(g->n_osdevs, 4);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		int o = osdev_named(g, want[i].name);

		CHECK(o >= 0, "osdev %s missing", want[i].name);
		if (o < 0)
			continue;
		CHECK_STR(g->osdevs[o].cls, want[i].cls);
		CHECK_INT(g->osdevs[o].pci, topo_graph_find_pci_bdf(g, want[i].bdf));
	}
	CHECK_INT(osdev_named(g, "card0-DP-1"), -1);
	CHECK_INT(osdev_named(g, "lo"), -1);
	CHECK_INT(osdev_named(g, "version"), -1);

	/* Devices are named by their kernel devices; lookups by any of them resolve. */
	d = device_of_pci(g, gpu);
	CHECK(d >= 0, "no device for the GPU");
	if (d >= 0) {
		CHECK_STR(g->devices[d].name, "card0");
		CHECK_INT(g->devices[d].kind, TOPO_DEV_GPU);
		CHECK_INT(topo_graph_lookup(g, "card0"), d);
		CHECK_INT(topo_graph_lookup(g, "renderD128"), d);
		CHECK_INT(topo_graph_lookup(g, "0000:03:00.0"), d);
		CHECK_INT(topo_graph_lookup(g, "03:00.0"), d);
	}
	d = device_of_pci(g, nic);
	CHECK(d >= 0, "no device for the NIC");
	if (d >= 0) {
		CHECK_STR(g->devices[d].name, "eth0");
		CHECK_INT(g->devices[d].kind, TOPO_DEV_NIC);
		CHECK_INT(topo_graph_lookup(g, "eth0"), d);
	}
	d = device_of_pci(g, nvme);
	CHECK(d >= 0, "no device for the NVMe drive");
	if (d >= 0) {
		CHECK_STR(g->devices[d].name, "nvme0");
		CHECK_INT(g->devices[d].kind, TOPO_DEV_NVME);
		CHECK_INT(topo_graph_lookup(g, "nvme0"), d);
	}
	CHECK_INT(topo_graph_lookup(g, "card0-DP-1"), -ENOENT);
	CHECK_INT(topo_graph_lookup(g, "lo"), -ENOENT);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 4. RDMA ---- */

#define RD_MLX "pci0000:00/0000:00:02.1/0000:05:00.0"
#define RD_IGB "pci0000:00/0000:00:03.1/0000:06:00.0"

static void test_rdma(void)
{
	struct topo_graph *g;
	struct tree t;
	int r, mlx, igb, ib, rxe, d, n;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, "pci0000:00/0000:00:02.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, "pci0000:00/0000:00:03.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, RD_MLX, 0x15b3, 0x1017, 0x020000, nic_bars);
	add_fn(&t, RD_IGB, 0x8086, 0x1521, 0x020000, nic_bars);
	attr_link(&t, RD_MLX, "driver", "bus/pci/drivers/mlx5_core");
	mkdir_in(&t, "sys/devices/" RD_MLX "/net/eth0");
	mkdir_in(&t, "sys/devices/" RD_IGB "/net/eth1");
	link_to(&t, "sys/class/net/eth0", "../../devices/" RD_MLX "/net/eth0");
	link_to(&t, "sys/class/net/eth1", "../../devices/" RD_IGB "/net/eth1");

	/* A hardware device: its class link ends in the PCI function's directory. */
	put(&t, "sys/devices/" RD_MLX "/infiniband/mlx5_0/node_guid", "0002:c903:0044:e0a2\n");
	put(&t, "sys/devices/" RD_MLX "/infiniband/mlx5_0/node_type", "1: CA\n");
	put(&t, "sys/devices/" RD_MLX "/infiniband/mlx5_0/ports/1/state", "4: ACTIVE\n");
	put(&t, "sys/devices/" RD_MLX "/infiniband/mlx5_0/ports/1/rate", "100 Gb/sec (4X EDR)\n");
	put(&t, "sys/devices/" RD_MLX "/infiniband/mlx5_0/ports/1/link_layer", "InfiniBand\n");
	link_to(&t, "sys/class/infiniband/mlx5_0", "../../devices/" RD_MLX "/infiniband/mlx5_0");
	/* A soft device: virtual, tied to its netdev by `parent`. */
	put(&t, "sys/devices/virtual/infiniband/rxe0/node_guid", "a236:9fff:fe4a:1b2c\n");
	put(&t, "sys/devices/virtual/infiniband/rxe0/parent", "eth1\n");
	put(&t, "sys/devices/virtual/infiniband/rxe0/ports/1/state", "1: DOWN\n");
	put(&t, "sys/devices/virtual/infiniband/rxe0/ports/1/rate", "10 Gb/sec (1X QDR)\n");
	put(&t, "sys/devices/virtual/infiniband/rxe0/ports/1/link_layer", "Ethernet\n");
	link_to(&t, "sys/class/infiniband/rxe0", "../../devices/virtual/infiniband/rxe0");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	mlx = pci_at(g, "0000:05:00.0");
	igb = pci_at(g, "0000:06:00.0");
	CHECK_INT(g->n_rdma, 2);
	ib = rdma_named(g, "mlx5_0");
	rxe = rdma_named(g, "rxe0");
	CHECK(ib >= 0 && rxe >= 0, "mlx5_0 or rxe0 missing");
	if (mlx < 0 || igb < 0 || ib < 0 || rxe < 0)
		goto out;

	CHECK_INT(g->rdma[ib].node_guid, 0x0002c9030044e0a2ull);
	CHECK_INT(g->rdma[ib].pci, mlx);
	CHECK_STR(g->rdma[ib].netdev, "eth0");
	CHECK(!g->rdma[ib].soft, "mlx5_0 marked soft");
	CHECK_INT(g->rdma[ib].nports, 1);
	if (g->rdma[ib].nports == 1) {
		const struct topo_rdma_port *p = &g->rdma[ib].ports[0];

		CHECK_INT(p->num, 1);
		CHECK_INT(p->state, 4);
		CHECK(p->gbps == 100.0, "mlx5_0 port gbps %.1f, want 100", p->gbps);
		CHECK_STR(p->rate, "100 Gb/sec (4X EDR)");
		CHECK_STR(p->link_layer, "InfiniBand");
	}

	CHECK_INT(g->rdma[rxe].node_guid, 0xa2369ffffe4a1b2cull);
	CHECK(g->rdma[rxe].soft, "rxe0 not marked soft");
	CHECK_STR(g->rdma[rxe].netdev, "eth1");
	CHECK_INT(g->rdma[rxe].pci, igb);
	CHECK_INT(g->rdma[rxe].nports, 1);
	if (g->rdma[rxe].nports == 1) {
		CHECK_INT(g->rdma[rxe].ports[0].state, 1);
		CHECK(g->rdma[rxe].ports[0].gbps == 10.0, "rxe0 port gbps %.1f, want 10",
		      g->rdma[rxe].ports[0].gbps);
		CHECK_STR(g->rdma[rxe].ports[0].link_layer, "Ethernet");
	}

	/* Hardware RDMA replaces its NIC's entry; a soft one sits beside its netdev. */
	n = 0;
	for (size_t i = 0; i < g->n_devices; i++)
		n += g->devices[i].pci == mlx;
	CHECK_INT(n, 1);
	d = device_of_pci(g, mlx);
	if (d >= 0) {
		CHECK_STR(g->devices[d].name, "mlx5_0");
		CHECK_INT(g->devices[d].rdma, ib);
		CHECK_INT(topo_graph_lookup(g, "eth0"), d);
	}
	d = topo_graph_lookup(g, "eth1");
	CHECK(d >= 0 && g->devices[d].pci == igb && g->devices[d].rdma == -1,
	      "eth1 is not its own device (lookup = %d)", d);
	d = topo_graph_lookup(g, "rxe0");
	CHECK(d >= 0 && g->devices[d].pci == igb && g->devices[d].rdma == rxe,
	      "rxe0 is not a device on eth1's function (lookup = %d)", d);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 5. AMD KFD fabric ---- */

#define KFD "sys/devices/virtual/kfd/kfd/topology/nodes/"
#define GPU2 "pci0000:00/0000:00:07.1/0000:08:00.0"

static void kfd_link(struct tree *t, int node, int idx, int type, int from, int to,
		     int weight, int maxbw)
{
	char rel[256], buf[512];

	snprintf(rel, sizeof(rel), KFD "%d/io_links/%d/properties", node, idx);
	snprintf(buf, sizeof(buf),
		 "type %d\nversion_major 0\nversion_minor 0\nnode_from %d\nnode_to %d\n"
		 "weight %d\nmin_latency 0\nmax_latency 0\nmin_bandwidth %d\n"
		 "max_bandwidth %d\nrecommended_transfer_size 0\nflags 1\n",
		 type, from, to, weight, maxbw / 2, maxbw);
	put(t, rel, buf);
}

static void kfd_node(struct tree *t, int node, bool gpu, int location_id)
{
	char rel[256], buf[512];

	snprintf(rel, sizeof(rel), KFD "%d/properties", node);
	snprintf(buf, sizeof(buf),
		 "cpu_cores_count %d\nsimd_count %d\nmem_banks_count 1\n"
		 "vendor_id %d\ndevice_id %d\nlocation_id %d\ndomain 0\n"
		 "drm_render_minor %d\nnum_xcc %d\n",
		 gpu ? 0 : 8, gpu ? 416 : 0, gpu ? 0x1002 : 0, gpu ? 0x74a1 : 0, location_id,
		 gpu ? 127 + node : 0, gpu ? 1 : 0);
	put(t, rel, buf);
	snprintf(rel, sizeof(rel), KFD "%d/gpu_id", node);
	put(t, rel, gpu ? "12345\n" : "0\n");
}

static void test_kfd(void)
{
	struct topo_graph *g;
	struct topo_path path;
	char cell[32];
	struct tree t;
	int r, gpu0, gpu1, gpu2, d0, d1, d2;

	tree_init(&t);
	build_switch_tree(&t);
	link_to(&t, "sys/class/kfd/kfd", "../../devices/virtual/kfd/kfd");
	add_fn(&t, "pci0000:00/0000:00:07.1", 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, GPU2, 0x1002, 0x74a1, 0x038000, gpu_bars);
	kfd_node(&t, 0, false, 0);
	kfd_node(&t, 1, true, 0x03 << 8 | 0x00);
	kfd_node(&t, 2, true, 0x04 << 8 | 0x00);
	kfd_node(&t, 3, true, 0x08 << 8 | 0x00);
	/* XGMI between nodes 1 and 2, listed from both ends. */
	kfd_link(&t, 1, 0, 11, 1, 2, 15, 100000);
	kfd_link(&t, 2, 0, 11, 2, 1, 15, 100000);
	/* PCIe links: to the CPU, and between GPU nodes 1 and 3 (no XGMI there). */
	kfd_link(&t, 1, 1, 2, 1, 0, 20, 32000);
	kfd_link(&t, 2, 1, 2, 2, 0, 20, 32000);
	kfd_link(&t, 3, 0, 2, 3, 0, 20, 32000);
	kfd_link(&t, 1, 2, 2, 1, 3, 40, 32000);
	kfd_link(&t, 3, 1, 2, 3, 1, 40, 32000);
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	gpu0 = pci_at(g, "0000:03:00.0");
	gpu1 = pci_at(g, "0000:04:00.0");
	gpu2 = pci_at(g, "0000:08:00.0");
	if (gpu0 < 0 || gpu1 < 0 || gpu2 < 0)
		goto out;
	CHECK_INT(g->n_fabric, 1);
	if (g->n_fabric >= 1) {
		const struct topo_fabric *f = &g->fabric[0];

		CHECK((f->a == gpu0 && f->b == gpu1) || (f->a == gpu1 && f->b == gpu0),
		      "fabric link between %d and %d, want %d and %d", f->a, f->b, gpu0, gpu1);
		CHECK_INT(f->type, TOPO_FABRIC_XGMI);
		CHECK_INT(f->count, 1);
		CHECK(f->gbps == 100.0, "XGMI link %.1f GB/s, want 100", f->gbps);
	}
	CHECK_INT(topo_fabric_between(g, gpu0, gpu2), -1);
	CHECK_INT(topo_fabric_between(g, gpu1, gpu2), -1);

	d0 = device_of_pci(g, gpu0);
	d1 = device_of_pci(g, gpu1);
	d2 = device_of_pci(g, gpu2);
	CHECK(d0 >= 0 && d1 >= 0 && d2 >= 0, "GPU devices missing");
	if (d0 < 0 || d1 < 0 || d2 < 0)
		goto out;
	CHECK_INT(topo_classify(g, d0, d1, &path), 0);
	CHECK_INT(path.cls, TOPO_CLASS_NV);
	topo_class_cell(&path, cell, sizeof(cell));
	CHECK_STR(cell, "XGMI1");
	/* Across root ports of one host bridge, PCIe only. */
	CHECK_INT(topo_classify(g, d0, d2, &path), 0);
	CHECK_INT(path.cls, TOPO_CLASS_PHB);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 6. SR-IOV ---- */

#define SR_RP "pci0000:00/0000:00:02.1"
#define SR_PF SR_RP "/0000:05:00.0"
#define SR_VF0 SR_RP "/0000:05:00.2"
#define SR_VF1 SR_RP "/0000:05:00.3"

static void test_sriov(void)
{
	struct topo_graph *g;
	struct tree t;
	int r, rp, pf, vf0, vf1;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, SR_RP, 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, SR_PF, 0x15b3, 0x1017, 0x020000, nic_bars);
	/* A VF's config space reads 0xffff ids; sysfs has the real ones. */
	add_fn_ids(&t, SR_VF0, 0x15b3, 0x1018, 0x020000, nic_bars, false);
	add_fn_ids(&t, SR_VF1, 0x15b3, 0x1018, 0x020000, nic_bars, false);
	link_to(&t, "sys/devices/" SR_VF0 "/physfn", "../0000:05:00.0");
	link_to(&t, "sys/devices/" SR_VF1 "/physfn", "../0000:05:00.0");
	link_to(&t, "sys/devices/" SR_PF "/virtfn0", "../0000:05:00.2");
	link_to(&t, "sys/devices/" SR_PF "/virtfn1", "../0000:05:00.3");
	attr(&t, SR_PF, "sriov_numvfs", "2\n");
	attr(&t, SR_PF, "sriov_totalvfs", "8\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	rp = pci_at(g, "0000:00:02.1");
	pf = pci_at(g, "0000:05:00.0");
	vf0 = pci_at(g, "0000:05:00.2");
	vf1 = pci_at(g, "0000:05:00.3");
	if (rp < 0 || pf < 0 || vf0 < 0 || vf1 < 0)
		goto out;
	CHECK_INT(g->pci[vf0].physfn, pf);
	CHECK_INT(g->pci[vf1].physfn, pf);
	CHECK_INT(g->pci[pf].physfn, -1);
	CHECK_INT(g->pci[rp].physfn, -1);
	CHECK_INT(g->pci[vf0].parent, rp);
	CHECK_INT(g->pci[vf0].vendor, 0x15b3);
	CHECK_INT(g->pci[vf0].device, 0x1018);
	CHECK_INT(g->pci[vf0].class_code, 0x020000);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 7. Robustness ---- */

#define RB_PARTIAL "pci0000:00/0000:00:04.0"
#define RB_GARBAGE "pci0000:00/0000:00:05.0"

static void test_robust(void)
{
	struct topo_graph *g;
	struct tree t;
	int r, i;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	/* A partial capture's function: class and mask only. */
	attr(&t, RB_PARTIAL, "class", "0x030000\n");
	attr(&t, RB_PARTIAL, "local_cpus", "f\n");
	link_to(&t, "sys/bus/pci/devices/0000:00:04.0", "../../../devices/" RB_PARTIAL);
	/* A complete function whose attributes are nonsense. */
	add_fn(&t, RB_GARBAGE, 0x8086, 0x1521, 0x020000, nic_bars);
	attr(&t, RB_GARBAGE, "class", "garbage\n");
	attr(&t, RB_GARBAGE, "numa_node", "garbage\n");
	attr(&t, RB_GARBAGE, "max_link_speed", "Unknown\n");
	attr(&t, RB_GARBAGE, "current_link_speed", "Unknown speed\n");
	attr(&t, RB_GARBAGE, "max_link_width", "x16\n");
	attr(&t, RB_GARBAGE, "current_link_width", "255\n");
	attr(&t, RB_GARBAGE, "local_cpulist", "\n");
	add_node(&t, 0, "0-3\n", 4096, "10\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;

	CHECK_INT(g->n_pci, 3);
	if ((i = pci_at(g, "0000:00:00.0")) >= 0) {
		CHECK_INT(g->pci[i].vendor, 0x1022);
		CHECK_INT(g->pci[i].device, 0x1480);
	}
	if ((i = pci_at(g, "0000:00:04.0")) >= 0) {
		CHECK_INT(g->pci[i].vendor, 0);
		CHECK_INT(g->pci[i].device, 0);
		CHECK_INT(g->pci[i].class_code, 0x030000);
		CHECK_STR(g->pci[i].local_cpus, "0-3");
		CHECK_INT(g->pci[i].parent, -1);
		CHECK_INT(g->pci[i].nbars, 0);
		CHECK(g->pci[i].hostbridge >= 0 && (size_t)g->pci[i].hostbridge < g->n_hostbridges &&
			      !strcmp(g->hostbridges[g->pci[i].hostbridge].name, "pci0000:00"),
		      "partial function not on pci0000:00");
	}
	if ((i = pci_at(g, "0000:00:05.0")) >= 0) {
		CHECK_INT(g->pci[i].vendor, 0x8086);
		CHECK_INT(g->pci[i].class_code, 0);
		CHECK_INT(g->pci[i].numa, -1);
		CHECK_INT(g->pci[i].max_speed, 0);
		CHECK_INT(g->pci[i].cur_speed, 0);
		CHECK_INT(g->pci[i].max_width, 0);
		CHECK_INT(g->pci[i].cur_width, 0);
		CHECK(!topo_pci_downtrained(&g->pci[i]), "unknown link reported downtrained");
		CHECK_STR(g->pci[i].local_cpus, "");
	}
out:
	topo_graph_free(g);
	tree_free(&t);
}

/*
 * libpci's sysfs method needs vendor, device, class and resource (irq, config
 * and the subsystem ids it can do without). A capture that kept a function's
 * ids but not its resource must cost that function its BARs, not discovery.
 */
static void test_no_resource(void)
{
	char rel[4096];
	struct topo_graph *g;
	struct tree t;
	int r, i;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, RB_GARBAGE, 0x8086, 0x1521, 0x020000, nic_bars);
	REQUIRE_BUILT(&t);
	snprintf(rel, sizeof(rel), "%s/sys/devices/" RB_GARBAGE "/resource", t.root);
	g = NULL;
	CHECK(unlink(rel) == 0, "unlink %s: %s", rel, strerror(errno));
	if (access(rel, F_OK) == 0 || !(g = discover(&t, &r)))
		goto out;
	CHECK_INT(g->n_pci, 2);
	if ((i = pci_at(g, "0000:00:05.0")) >= 0) {
		CHECK_INT(g->pci[i].vendor, 0x8086);
		CHECK_INT(g->pci[i].device, 0x1521);
		CHECK_INT(g->pci[i].class_code, 0x020000);
		CHECK_INT(g->pci[i].nbars, 0);
	}
	if ((i = pci_at(g, "0000:00:00.0")) >= 0)
		CHECK_INT(g->pci[i].vendor, 0x1022);
out:
	topo_graph_free(g);
	tree_free(&t);
}

/* No PCI functions at all; NUMA from what exists. */
static void test_empty(void)
{
	struct topo_graph *g;
	struct tree t;
	int r;

	/* Without CONFIG_NUMA: one node of everything online. */
	tree_init(&t);
	put(&t, "sys/devices/system/cpu/online", "0-3\n");
	put(&t, "proc/meminfo", "MemTotal:        4096 kB\nMemFree:         1024 kB\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (g) {
		CHECK_INT(g->n_pci, 0);
		CHECK_INT(g->n_hostbridges, 0);
		CHECK_INT(g->n_numa, 1);
		if (g->n_numa == 1) {
			CHECK_INT(g->numa[0].id, 0);
			CHECK_STR(g->numa[0].cpulist, "0-3");
			CHECK(g->numa[0].has_cpu, "the only node has no CPUs");
			CHECK_INT(g->numa[0].mem_total, 4096ull * 1024);
		}
		CHECK_INT(topo_numa_distance(g, 0, 0), 10);
		CHECK_INT(g->n_devices, 1);
	}
	topo_graph_free(g);
	tree_free(&t);

	/* Two nodes, no devices. */
	tree_init(&t);
	add_node(&t, 0, "0-1\n", 1024, "10 12\n");
	add_node(&t, 1, "2-3\n", 2048, "12 10\n");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (g) {
		CHECK_INT(g->n_pci, 0);
		CHECK_INT(g->n_numa, 2);
		CHECK_INT(topo_numa_distance(g, 1, 0), 12);
		CHECK_INT(g->n_devices, 2);
	}
	topo_graph_free(g);
	tree_free(&t);
}

/* ---- 8. CPU ---- */

#define CPU_RP0 "pci0000:00/0000:00:01.1"
#define CPU_GPU0 CPU_RP0 "/0000:01:00.0"
#define CPU_RP1 "pci0000:40/0000:40:01.1"
#define CPU_GPU1 CPU_RP1 "/0000:41:00.0"

static void cpuinfo(struct tree *t, const char *vendor, int family)
{
	char buf[1024];
	size_t n = 0;

	for (int cpu = 0; cpu < 2; cpu++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				      "processor\t: %d\nvendor_id\t: %s\ncpu family\t: %d\n"
				      "model\t\t: 1\nmodel name\t: Synthetic CPU 7%d43\n"
				      "stepping\t: 1\nflags\t\t: fpu vme de pse\n\n",
				      cpu, vendor, family, cpu);
	put(t, "proc/cpuinfo", buf);
}

static void test_cpu(void)
{
	static const struct {
		const char *vendor;
		int family;
		enum topo_p2p_verdict p2p;
	} cases[] = {
		{ "AuthenticAMD", 25, TOPO_P2P_THRU_HOST_BRIDGE }, /* Zen 3 */
		{ "AuthenticAMD", 22, TOPO_P2P_NOT_SUPPORTED },    /* Jaguar: pre-Zen */
		{ "GenuineIntel", 6, TOPO_P2P_NOT_SUPPORTED },
	};
	struct tree t;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, CPU_RP0, 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, CPU_GPU0, 0x1002, 0x74a1, 0x038000, gpu_bars);
	add_fn(&t, "pci0000:40/0000:40:00.0", 0x1022, 0x1480, 0x060000, NULL);
	add_fn(&t, CPU_RP1, 0x1022, 0x1483, 0x060400, NULL);
	add_fn(&t, CPU_GPU1, 0x1002, 0x74a1, 0x038000, gpu_bars);
	add_node(&t, 0, "0-1\n", 16384, "10\n");
	put(&t, "proc/sys/kernel/hostname", "synth-host\n");
	REQUIRE_BUILT(&t);

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct topo_path path;
		struct topo_graph *g;
		int r, a, b;

		cpuinfo(&t, cases[c].vendor, cases[c].family);
		REQUIRE_BUILT(&t);
		g = discover(&t, &r);
		if (!g)
			continue;
		CHECK_STR(g->cpu.vendor, cases[c].vendor);
		CHECK_INT(g->cpu.family, cases[c].family);
		CHECK_INT(g->cpu.model, 1);
		CHECK_STR(g->hostname, "synth-host");
		CHECK_INT(g->n_hostbridges, 2);
		a = pci_at(g, "0000:01:00.0");
		b = pci_at(g, "0000:41:00.0");
		if (a >= 0 && b >= 0) {
			CHECK(g->pci[a].hostbridge != g->pci[b].hostbridge,
			      "GPUs on one host bridge");
			CHECK_STR(g->hostbridges[g->pci[b].hostbridge].name, "pci0000:40");
			CHECK_INT(topo_p2pdma(g, a, b, &path), 0);
			CHECK(path.p2p == cases[c].p2p, "%s family %d: p2pdma %s, want %s (%s)",
			      cases[c].vendor, cases[c].family, topo_p2p_verdict_name(path.p2p),
			      topo_p2p_verdict_name(cases[c].p2p), path.reason);
			CHECK((strstr(path.reason, "AMD Zen") != NULL) ==
				      (cases[c].p2p == TOPO_P2P_THRU_HOST_BRIDGE),
			      "%s family %d: reason '%s'", cases[c].vendor, cases[c].family,
			      path.reason);
		}
		topo_graph_free(g);
	}
	tree_free(&t);
}

/* ---- VMD: a host bridge inside another's path ---- */

#define VMD_EP "pci0000:00/0000:00:0e.0"
#define VMD_RP0 VMD_EP "/pci10000:00/10000:00:02.0"
#define VMD_RP1 VMD_EP "/pci10000:00/10000:00:03.0"
#define VMD_NVME0 VMD_RP0 "/10000:01:00.0"
#define VMD_NVME1 VMD_RP1 "/10000:02:00.0"

/*
 * Intel VMD makes a PCI domain whose root bus hangs below the VMD endpoint in
 * sysfs: 10000:00:02.0 is a root port on the root bus of pci10000:00 (the
 * kernel's pci_upstream_bridge() is NULL for it), not below 0000:00:0e.0.
 */
static void test_vmd(void)
{
	struct topo_graph *g;
	struct topo_path path;
	struct tree t;
	int r, rp0, rp1, nv0, nv1, vmd;

	tree_init(&t);
	add_fn(&t, "pci0000:00/0000:00:00.0", 0x8086, 0x09a2, 0x060000, NULL);
	add_fn(&t, VMD_EP, 0x8086, 0x28c0, 0x010400, nic_bars);
	add_fn(&t, VMD_RP0, 0x8086, 0x347a, 0x060400, NULL);
	add_fn(&t, VMD_RP1, 0x8086, 0x347b, 0x060400, NULL);
	add_fn(&t, VMD_NVME0, 0x144d, 0xa80a, 0x010802, nic_bars);
	add_fn(&t, VMD_NVME1, 0x144d, 0xa80a, 0x010802, nic_bars);
	attr_link(&t, VMD_EP, "driver", "bus/pci/drivers/vmd");
	REQUIRE_BUILT(&t);
	g = discover(&t, &r);
	if (!g)
		goto out;
	vmd = pci_at(g, "0000:00:0e.0");
	rp0 = pci_at(g, "10000:00:02.0");
	rp1 = pci_at(g, "10000:00:03.0");
	nv0 = pci_at(g, "10000:01:00.0");
	nv1 = pci_at(g, "10000:02:00.0");
	if (vmd < 0 || rp0 < 0 || rp1 < 0 || nv0 < 0 || nv1 < 0)
		goto out;
	CHECK_INT(g->n_hostbridges, 2);
	CHECK_STR(g->hostbridges[g->pci[rp0].hostbridge].name, "pci10000:00");
	CHECK_INT(g->pci[rp0].domain, 0x10000);
	CHECK_INT(g->pci[rp0].parent, -1);
	CHECK_INT(g->pci[rp1].parent, -1);
	CHECK_INT(g->pci[rp0].port, TOPO_PORT_ROOT);
	CHECK_INT(g->pci[nv0].parent, rp0);
	CHECK_INT(g->pci[nv1].parent, rp1);
	/* Two root ports of one host bridge: PHB, and P2P is not switch-routed. */
	CHECK_INT(topo_classify(g, device_of_pci(g, nv0), device_of_pci(g, nv1), &path), 0);
	CHECK(path.cls == TOPO_CLASS_PHB, "NVMe behind two VMD root ports: %s, want PHB",
	      topo_class_name(path.cls));
	CHECK(path.p2p != TOPO_P2P_BUS_ADDR, "P2P across VMD root ports claimed direct");
out:
	topo_graph_free(g);
	tree_free(&t);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "pci tree, ports, links, BARs", test_pci },
		{ "numa nodes, HMAT, distances", test_numa },
		{ "numa placement from local cpus", test_numa_placement },
		{ "os devices", test_osdev },
		{ "rdma hardware and soft", test_rdma },
		{ "kfd xgmi fabric", test_kfd },
		{ "sr-iov physfn", test_sriov },
		{ "robustness: partial and garbage", test_robust },
		{ "robustness: function without resource", test_no_resource },
		{ "robustness: no pci functions", test_empty },
		{ "cpu vendor and p2pdma", test_cpu },
		{ "vmd domain below its endpoint", test_vmd },
		{ NULL, NULL },
	};

	return cu_run("discover-synth", tests);
}
