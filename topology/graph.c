/* SPDX-License-Identifier: MIT */
/* Building, finalizing and looking up a topology graph. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpuset.h"
#include "topo.h"

#define GROW(g, name)                                                              \
	do {                                                                       \
		if ((g)->n_##name == (g)->cap_##name) {                            \
			size_t ncap = (g)->cap_##name ? 2 * (g)->cap_##name : 16; \
			void *grown = realloc((g)->name, ncap * sizeof(*(g)->name)); \
			if (!grown)                                                \
				return -ENOMEM;                                    \
			(g)->name = grown;                                         \
			(g)->cap_##name = ncap;                                    \
		}                                                                  \
	} while (0)

#define APPEND(g, name, item)                       \
	do {                                        \
		GROW(g, name);                      \
		(g)->name[(g)->n_##name] = *(item); \
		return (int)(g)->n_##name++;        \
	} while (0)

struct topo_graph *topo_graph_new(void)
{
	struct topo_graph *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	strcpy(g->source, "live");
	g->cpu.family = -1;
	g->cpu.model = -1;
	return g;
}

void topo_graph_free(struct topo_graph *g)
{
	if (!g)
		return;
	free(g->numa);
	free(g->numa_dist);
	free(g->hostbridges);
	free(g->pci);
	free(g->rdma);
	free(g->osdevs);
	free(g->fabric);
	free(g->devices);
	free(g);
}

void topo_pci_init(struct topo_pci *p)
{
	memset(p, 0, sizeof(*p));
	p->numa = -1;
	p->iommu_group = -1;
	p->parent = -1;
	p->hostbridge = -1;
	p->physfn = -1;
	p->acs_ctrl = -1;
}

int topo_graph_add_numa(struct topo_graph *g, const struct topo_numa *n)
{
	if (topo_graph_find_numa(g, n->id) >= 0)
		return -EEXIST;
	APPEND(g, numa, n);
}

int topo_graph_add_hostbridge(struct topo_graph *g, const struct topo_hostbridge *hb)
{
	APPEND(g, hostbridges, hb);
}

int topo_graph_add_pci(struct topo_graph *g, const struct topo_pci *p)
{
	if (topo_graph_find_pci(g, p->domain, p->bus, p->dev, p->fn) >= 0)
		return -EEXIST;
	APPEND(g, pci, p);
}

int topo_graph_add_rdma(struct topo_graph *g, const struct topo_rdma *r)
{
	APPEND(g, rdma, r);
}

int topo_graph_add_osdev(struct topo_graph *g, const struct topo_osdev *o)
{
	APPEND(g, osdevs, o);
}

int topo_graph_add_fabric(struct topo_graph *g, const struct topo_fabric *f)
{
	if (f->a < 0 || f->b < 0 || (size_t)f->a >= g->n_pci || (size_t)f->b >= g->n_pci ||
	    f->a == f->b)
		return -EINVAL;
	APPEND(g, fabric, f);
}

static int add_device(struct topo_graph *g, const struct topo_device *d)
{
	APPEND(g, devices, d);
}

int topo_graph_set_numa_count(struct topo_graph *g)
{
	size_t n = g->n_numa;
	int *d = malloc((n ? n * n : 1) * sizeof(*d));

	if (!d)
		return -ENOMEM;
	for (size_t i = 0; i < n * n; i++)
		d[i] = -1;
	free(g->numa_dist);
	g->numa_dist = d;
	return 0;
}

int topo_graph_find_pci(const struct topo_graph *g, uint32_t domain, uint8_t bus, uint8_t dev,
			uint8_t fn)
{
	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *p = &g->pci[i];

		if (p->domain == domain && p->bus == bus && p->dev == dev && p->fn == fn)
			return (int)i;
	}
	return -ENOENT;
}

/* Accepts "DDDD:BB:DD.F" (any domain width) and "BB:DD.F" (domain 0), as lspci does. */
int topo_pci_upstream(const struct topo_graph *g, int i)
{
	if (g->pci[i].physfn >= 0)
		i = g->pci[i].physfn;
	return g->pci[i].parent;
}

int topo_pci_upstream_loop(const struct topo_graph *g, int i)
{
	size_t steps = 0;

	for (int a = topo_pci_upstream(g, i); a >= 0; a = topo_pci_upstream(g, a))
		if (++steps > g->n_pci)
			return a;
	return -1;
}

int topo_graph_find_pci_bdf(const struct topo_graph *g, const char *bdf)
{
	uint32_t dom;
	uint8_t bus, dev, fn;

	if (!topo_parse_bdf(bdf, true, &dom, &bus, &dev, &fn))
		return -EINVAL;
	return topo_graph_find_pci(g, dom, bus, dev, fn);
}

int topo_graph_find_numa(const struct topo_graph *g, int id)
{
	for (size_t i = 0; i < g->n_numa; i++)
		if (g->numa[i].id == id)
			return (int)i;
	return -ENOENT;
}

int topo_numa_distance(const struct topo_graph *g, int node_a, int node_b)
{
	int a = topo_graph_find_numa(g, node_a), b = topo_graph_find_numa(g, node_b);

	if (a < 0 || b < 0 || !g->numa_dist)
		return -ENOENT;
	return g->numa_dist[(size_t)a * g->n_numa + (size_t)b];
}

int topo_pci_numa(const struct topo_graph *g, int pci)
{
	int n = g->pci[pci].numa;

	/* The kernel reports -1 on machines without NUMA information; with a
	 * single node there is nowhere else the device could be. */
	if (n < 0 && g->n_numa == 1)
		return g->numa[0].id;
	return n;
}

enum topo_dev_kind topo_pci_kind(const struct topo_pci *p)
{
	uint32_t base = p->class_code >> 16, sub = (p->class_code >> 8) & 0xff;

	if (p->class_code == 0x010802)
		return TOPO_DEV_NVME;
	switch (base) {
	case 0x02:
		return TOPO_DEV_NIC;
	case 0x03:
		return TOPO_DEV_GPU;
	case 0x05:
		return TOPO_DEV_MEM;
	case 0x06:
		return sub == 0x04 || sub == 0x09 ? TOPO_DEV_BRIDGE : TOPO_DEV_OTHER;
	case 0x0b:
		return sub == 0x40 ? TOPO_DEV_ACCEL : TOPO_DEV_OTHER;
	case 0x0c:
		/* InfiniBand used to be a serial-bus subclass (0x0c06). */
		return sub == 0x06 ? TOPO_DEV_NIC : TOPO_DEV_OTHER;
	case 0x12:
		return TOPO_DEV_ACCEL;
	default:
		return TOPO_DEV_OTHER;
	}
}

const char *topo_dev_kind_name(enum topo_dev_kind k)
{
	switch (k) {
	case TOPO_DEV_GPU:
		return "gpu";
	case TOPO_DEV_ACCEL:
		return "accel";
	case TOPO_DEV_NIC:
		return "nic";
	case TOPO_DEV_NVME:
		return "nvme";
	case TOPO_DEV_MEM:
		return "mem";
	case TOPO_DEV_NUMA:
		return "numa";
	case TOPO_DEV_BRIDGE:
		return "bridge";
	default:
		return "other";
	}
}

const char *topo_port_type_name(enum topo_port_type t)
{
	static const char *const names[] = {
		[TOPO_PORT_ENDPOINT] = "endpoint",
		[TOPO_PORT_ROOT] = "root-port",
		[TOPO_PORT_SWITCH_UP] = "switch-upstream",
		[TOPO_PORT_SWITCH_DOWN] = "switch-downstream",
		[TOPO_PORT_PCI_BRIDGE] = "pci-bridge",
	};
	return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "unknown";
}

static bool is_bridge(const struct topo_pci *p)
{
	return topo_pci_kind(p) == TOPO_DEV_BRIDGE && (p->class_code >> 8) == 0x0604;
}

/*
 * Without the PCIe capability (unprivileged reads and hwloc captures give
 * only 64 bytes of config space) the port type follows from the shape of the
 * tree: a bridge on a root bus is a root port, a bridge below a root port or
 * a downstream port is a switch's upstream port, and a bridge below an
 * upstream port is one of that switch's downstream ports.
 */
static enum topo_port_type infer_port(const struct topo_graph *g, const struct topo_pci *p)
{
	const struct topo_pci *up;

	if (!is_bridge(p))
		return TOPO_PORT_ENDPOINT;
	if (p->parent < 0)
		return TOPO_PORT_ROOT;
	up = &g->pci[p->parent];
	if (up->port == TOPO_PORT_SWITCH_UP)
		return TOPO_PORT_SWITCH_DOWN;
	return TOPO_PORT_SWITCH_UP;
}

/* Parents first, so inference sees its parent's port type already set. */
static void infer_ports(struct topo_graph *g, size_t i, unsigned char *done)
{
	struct topo_pci *p = &g->pci[i];

	if (done[i])
		return;
	done[i] = 1;
	if (p->parent >= 0)
		infer_ports(g, (size_t)p->parent, done);
	if (!p->port_from_caps)
		p->port = infer_port(g, p);
}

static const char *osdev_for(const struct topo_graph *g, int pci, const char *cls,
			     const char *prefix)
{
	for (size_t i = 0; i < g->n_osdevs; i++) {
		const struct topo_osdev *o = &g->osdevs[i];

		if (o->pci == pci && !strcmp(o->cls, cls) &&
		    (!prefix || !strncmp(o->name, prefix, strlen(prefix))))
			return o->name;
	}
	return NULL;
}

/* The label users know a device by: rdma name, netdev, DRM card, nvme, else BDF. */
static void pci_label(const struct topo_graph *g, int pci, char *buf, size_t len)
{
	const char *n = NULL;

	switch (topo_pci_kind(&g->pci[pci])) {
	case TOPO_DEV_NIC:
		n = osdev_for(g, pci, "net", NULL);
		break;
	case TOPO_DEV_GPU:
	case TOPO_DEV_ACCEL:
		n = osdev_for(g, pci, "drm", "card");
		break;
	case TOPO_DEV_NVME:
		n = osdev_for(g, pci, "nvme", NULL);
		break;
	default:
		break;
	}
	snprintf(buf, len, "%s", n ? n : g->pci[pci].bdf);
}

static bool rdma_on_pci(const struct topo_graph *g, int pci)
{
	for (size_t i = 0; i < g->n_rdma; i++)
		if (g->rdma[i].pci == pci && !g->rdma[i].soft)
			return true;
	return false;
}

static const char *alias_prefix(enum topo_dev_kind k)
{
	switch (k) {
	case TOPO_DEV_GPU:
		return "GPU";
	case TOPO_DEV_ACCEL:
		return "ACC";
	case TOPO_DEV_NIC:
		return "NIC";
	case TOPO_DEV_NVME:
		return "NVME";
	case TOPO_DEV_MEM:
		return "MEM";
	default:
		return "DEV";
	}
}

/* Aliases number devices per kind in discovery order, like nvidia-smi's GPU0/NIC0. */
static void assign_aliases(struct topo_graph *g)
{
	int n = 0;

	/* devices[] is grouped by kind: number each group from 0 */
	for (size_t i = 0; i < g->n_devices; i++) {
		if (i > 0 && g->devices[i].kind != g->devices[i - 1].kind)
			n = 0;
		if (g->devices[i].kind != TOPO_DEV_NUMA)
			snprintf(g->devices[i].alias, sizeof(g->devices[i].alias), "%s%d",
				 alias_prefix(g->devices[i].kind), n++);
	}
	for (size_t i = 0; i < g->n_devices; i++)
		if (g->devices[i].kind == TOPO_DEV_NUMA)
			snprintf(g->devices[i].alias, sizeof(g->devices[i].alias), "node%d",
				 g->devices[i].numa);
}

/* Display and alias order, as nvidia-smi lists GPUs before NICs. */
static const enum topo_dev_kind device_order[] = { TOPO_DEV_GPU,  TOPO_DEV_ACCEL, TOPO_DEV_NIC,
						   TOPO_DEV_NVME, TOPO_DEV_MEM,   TOPO_DEV_OTHER };

static int add_pci_devices(struct topo_graph *g, enum topo_dev_kind kind)
{
	int r;

	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *p = &g->pci[i];
		struct topo_device d = { .kind = kind, .pci = (int)i, .rdma = -1 };

		if (p->removed || topo_pci_kind(p) != kind)
			continue;
		/* A NIC with a hardware RDMA device is listed once, as that device. */
		if (kind == TOPO_DEV_NIC && rdma_on_pci(g, (int)i))
			continue;
		d.numa = topo_pci_numa(g, (int)i);
		pci_label(g, (int)i, d.name, sizeof(d.name));
		if ((r = add_device(g, &d)) < 0)
			return r;
	}
	return 0;
}

static int add_rdma_devices(struct topo_graph *g)
{
	int r;

	for (size_t i = 0; i < g->n_rdma; i++) {
		const struct topo_rdma *rd = &g->rdma[i];
		struct topo_device d = { .kind = TOPO_DEV_NIC, .pci = rd->pci, .rdma = (int)i };

		if (rd->pci >= 0 && g->pci[rd->pci].removed)
			continue;
		d.numa = rd->pci >= 0 ? topo_pci_numa(g, rd->pci) : -1;
		snprintf(d.name, sizeof(d.name), "%s", rd->name);
		if ((r = add_device(g, &d)) < 0)
			return r;
	}
	return 0;
}

static int build_devices(struct topo_graph *g)
{
	int r;

	g->n_devices = 0;
	for (size_t i = 0; i < g->n_numa; i++) {
		struct topo_device d = { .kind = TOPO_DEV_NUMA, .pci = -1, .rdma = -1,
					 .numa = g->numa[i].id };

		snprintf(d.name, sizeof(d.name), "node%d", g->numa[i].id);
		if ((r = add_device(g, &d)) < 0)
			return r;
	}
	for (size_t k = 0; k < sizeof(device_order) / sizeof(device_order[0]); k++) {
		if ((r = add_pci_devices(g, device_order[k])) < 0)
			return r;
		if (device_order[k] == TOPO_DEV_NIC && (r = add_rdma_devices(g)) < 0)
			return r;
	}
	assign_aliases(g);
	return 0;
}

/*
 * What the kernel's p2pdma whitelist looks at is the first device on the
 * host bridge's root bus, if it is 00.0 or a root port. A host bridge's NUMA
 * node is that of its devices when not given.
 */
static void fill_hostbridge(struct topo_graph *g, int hb)
{
	struct topo_hostbridge *h = &g->hostbridges[hb];
	const struct topo_pci *first = NULL;

	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *p = &g->pci[i];

		if (p->hostbridge != hb || p->removed)
			continue;
		if (h->numa < 0 && p->numa >= 0)
			h->numa = p->numa;
		if (p->parent < 0 && p->physfn < 0 &&
		    (!first || p->dev * 8 + p->fn < first->dev * 8 + first->fn))
			first = p;
	}
	if (!h->root_vendor && first && ((first->dev == 0 && first->fn == 0) ||
					 first->port == TOPO_PORT_ROOT)) {
		h->root_vendor = first->vendor;
		h->root_device = first->device;
	}
}

/*
 * Devices without numa_node (old kernels, partial captures) are local to the
 * one node whose CPUs include all of their local CPUs, as hwloc places them.
 */
static void numa_from_cpus(struct topo_graph *g, struct topo_pci *p)
{
	struct cpuset dev, node;
	int found = -1;

	if (p->numa >= 0 || !p->local_cpus[0] || g->n_numa < 2 ||
	    cpuset_parse_list(p->local_cpus, &dev) < 0 || cpuset_empty(&dev))
		return;
	for (size_t i = 0; i < g->n_numa; i++) {
		if (!g->numa[i].has_cpu || cpuset_parse_list(g->numa[i].cpulist, &node) < 0 ||
		    !cpuset_subset(&dev, &node))
			continue;
		if (found >= 0)
			return;
		found = g->numa[i].id;
	}
	p->numa = found;
}

int topo_graph_finalize(struct topo_graph *g)
{
	unsigned char *done = calloc(g->n_pci ? g->n_pci : 1, 1);

	if (!done)
		return -ENOMEM;
	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *p = &g->pci[i];

		if ((p->parent >= 0 && (size_t)p->parent >= g->n_pci) ||
		    (size_t)p->parent == i || p->hostbridge < 0 ||
		    (size_t)p->hostbridge >= g->n_hostbridges) {
			free(done);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		infer_ports(g, i, done);
		numa_from_cpus(g, &g->pci[i]);
	}
	free(done);
	for (size_t i = 0; i < g->n_hostbridges; i++)
		fill_hostbridge(g, (int)i);
	return build_devices(g);
}

int topo_graph_remove_pci(struct topo_graph *g, int pci)
{
	if (pci < 0 || (size_t)pci >= g->n_pci)
		return -EINVAL;
	g->pci[pci].removed = true;
	/* Parents may come after their children in pci[]: iterate to a fixpoint. */
	for (bool changed = true; changed;) {
		changed = false;
		for (size_t i = 0; i < g->n_pci; i++) {
			struct topo_pci *p = &g->pci[i];

			if (!p->removed && p->parent >= 0 && g->pci[p->parent].removed) {
				p->removed = true;
				changed = true;
			}
		}
	}
	return build_devices(g);
}

int topo_graph_lookup(const struct topo_graph *g, const char *name)
{
	int pci;

	if (!name || !*name)
		return -EINVAL;
	for (size_t i = 0; i < g->n_devices; i++)
		if (!strcmp(g->devices[i].name, name) || !strcasecmp(g->devices[i].alias, name))
			return (int)i;
	/* netdev, DRM node or nvme name of a device's PCI function */
	for (size_t i = 0; i < g->n_osdevs; i++) {
		if (strcmp(g->osdevs[i].name, name))
			continue;
		for (size_t d = 0; d < g->n_devices; d++)
			if (g->devices[d].pci == g->osdevs[i].pci && g->devices[d].pci >= 0)
				return (int)d;
	}
	pci = topo_graph_find_pci_bdf(g, name);
	if (pci >= 0 && !g->pci[pci].removed) {
		for (size_t d = 0; d < g->n_devices; d++)
			if (g->devices[d].pci == pci)
				return (int)d;
		return -ENODEV; /* a bridge: known, but not an endpoint */
	}
	return -ENOENT;
}
