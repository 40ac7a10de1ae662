/* SPDX-License-Identifier: MIT */
/*
 * The pools a broker serves: host NUMA nodes from the topology, PCI BAR
 * memory named in the configuration, p2pmem a driver published, GPUs the
 * CUDA driver shows, and, for an emulated topology, one
 * broker-held pool per memory-bearing device (labelled emulated everywhere).
 * Each kind is an ops table in its own pool_*.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "cpuset.h"

struct pool *pool_add(struct broker *b, const struct pool_ops *ops, const char *device,
		      const char *region)
{
	struct pool *p = calloc(1, sizeof(*p)), **tail = &b->pools;

	if (!p)
		return NULL;
	p->ops = ops;
	p->numa = -1;
	if (ops == &pool_emulated_ops)
		p->k.emu.memfd = -1;
	p->addr_bits = 64;
	snprintf(p->device, sizeof(p->device), "%s", device);
	snprintf(p->region, sizeof(p->region), "%s", region);
	/* Keep discovery order: the first pool of a device is its default. */
	while (*tail)
		tail = &(*tail)->next;
	*tail = p;
	return p;
}

static const struct topo_bar *largest_bar(const struct topo_pci *pci)
{
	const struct topo_bar *best = NULL;

	for (unsigned i = 0; i < pci->nbars; i++)
		if (pci->bars[i].prefetch && (!best || pci->bars[i].size > best->size))
			best = &pci->bars[i];
	return best;
}

static int add_numa_pools(struct broker *b)
{
	for (size_t i = 0; i < b->topo->n_numa; i++) {
		const struct topo_numa *n = &b->topo->numa[i];
		char name[PM_NAME_MAX];
		struct pool *p;

		snprintf(name, sizeof(name), "node%d", n->id);
		p = pool_add(b, &pool_numa_ops, name, "");
		if (!p)
			return -ENOMEM;
		p->numa = n->id;
		p->capacity = n->mem_total;
		p->emulated = b->topo->emulated;
	}
	return 0;
}

/* Emulated machines: every GPU, accelerator and memory device gets a pool
 * the size of its largest prefetchable BAR, memory the broker holds. */
static int add_emulated_pools(struct broker *b)
{
	for (size_t i = 0; i < b->topo->n_pci; i++) {
		const struct topo_pci *pci = &b->topo->pci[i];
		enum topo_dev_kind k = topo_pci_kind(pci);
		const struct topo_bar *bar = largest_bar(pci);
		struct pool *p;

		if (!(k & (TOPO_DEV_GPU | TOPO_DEV_ACCEL | TOPO_DEV_MEM)) || !bar || pci->removed)
			continue;
		p = pool_add(b, &pool_emulated_ops, pci->bdf, k == TOPO_DEV_MEM ? "mem" : "vram");
		if (!p)
			return -ENOMEM;
		p->numa = topo_pci_numa(b->topo, (int)i);
		p->capacity = bar->size;
		p->addr_bits = 48;
		p->emulated = true;
	}
	return 0;
}

static int add_bar_pool(struct broker *b, const struct pool_bar_conf *c)
{
	int pci = topo_graph_find_pci_bdf(b->topo, c->device);
	const struct topo_pci *fn;
	char region[PM_REGION_MAX];
	struct pool *p;

	if (pci < 0) {
		blog(LOG_ERR, "configured BAR pool %s: no such PCI function", c->device);
		return -ENOENT;
	}
	fn = &b->topo->pci[pci];
	for (unsigned i = 0; i < fn->nbars; i++) {
		if (fn->bars[i].index != c->bar)
			continue;
		snprintf(region, sizeof(region), "bar%d", c->bar);
		p = pool_add(b, &pool_bar_ops, fn->bdf, region);
		if (!p)
			return -ENOMEM;
		p->k.bar.index = c->bar;
		p->capacity = fn->bars[i].size;
		p->numa = topo_pci_numa(b->topo, pci);
		p->addr_bits = fn->bars[i].is64 ? 64 : 32;
		snprintf(p->sysfs, sizeof(p->sysfs), "%s/sys/bus/pci/devices/%s",
			 b->conf.sysfs_root, fn->bdf);
		return 0;
	}
	blog(LOG_ERR, "configured BAR pool %s: no memory BAR %d", c->device, c->bar);
	return -ENOENT;
}

int pools_build(struct broker *b, const struct pool_bar_conf *bars, unsigned nbars)
{
	int r = add_numa_pools(b);

	if (r == 0 && b->topo->emulated)
		r = add_emulated_pools(b);
	if (r == 0 && nbars && b->topo->emulated) {
		/* An emulated machine has no BAR to map: refuse rather than map
		 * whatever this machine has at that address. */
		blog(LOG_ERR, "PCI BAR pools need a real machine, not an emulated topology");
		return -EINVAL;
	}
	for (unsigned i = 0; r == 0 && i < nbars; i++)
		r = add_bar_pool(b, &bars[i]);
	/* Real devices only: an emulated machine's are emulated pools. */
	if (r == 0 && !b->topo->emulated)
		r = p2pmem_pools_add(b);
	if (r == 0 && !b->topo->emulated)
		r = gpu_pools_add(b);
	return r;
}

void pools_free(struct broker *b)
{
	gpu_pools_free(b);
	while (b->pools) {
		struct pool *p = b->pools;

		b->pools = p->next;
		free(p);
	}
}

/*
 * A device is named as pmtopo names it (BDF, alias, netdev...) or as the
 * pool is ("node1"); region NULL or "" picks the device's first pool.
 */
const char *pool_canonical_device(const struct broker *b, const char *device)
{
	int d = topo_graph_lookup(b->topo, device);

	if (d >= 0 && b->topo->devices[d].pci >= 0)
		return b->topo->pci[b->topo->devices[d].pci].bdf;
	return device;
}

struct pool *pool_find(struct broker *b, const char *device, const char *region)
{
	const char *canon = pool_canonical_device(b, device);

	for (struct pool *p = b->pools; p; p = p->next)
		if (!strcmp(p->device, canon) &&
		    (!region || !region[0] || !strcmp(p->region, region)))
			return p;
	return NULL;
}

uint64_t pool_free(const struct broker *b, const struct pool *p)
{
	char path[600], line[256];
	unsigned long long kb;
	uint64_t free_bytes = p->capacity > p->used ? p->capacity - p->used : 0;
	FILE *f;

	if (p->ops->kind != PM_KIND_HOST_NUMA || b->topo->emulated)
		return free_bytes;
	snprintf(path, sizeof(path), "%s/sys/devices/system/node/node%d/meminfo",
		 b->conf.sysfs_root, p->numa);
	f = fopen(path, "re");
	if (!f)
		return free_bytes;
	while (fgets(line, sizeof(line), f)) {
		const char *m = strstr(line, "MemFree:");

		if (m && sscanf(m + 8, "%llu", &kb) == 1) {
			free_bytes = (uint64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return free_bytes;
}

bool pool_device_present(const struct pool *p)
{
	if (!p->sysfs[0])
		return true;
	if (access(p->sysfs, F_OK) < 0)
		return false;
	return p->ops != &pool_p2pmem_ops || p2pmem_present(p);
}

int pool_caller_node(const struct broker *b, int cpu)
{
	const struct topo_graph *g = b->topo;
	char node[16];

	for (size_t i = 0; cpu >= 0 && cpu < CPUSET_WORDS * 64 && i < g->n_numa; i++) {
		struct cpuset cs;

		if (cpuset_parse_list(g->numa[i].cpulist, &cs) == 0 &&
		    (cs.w[cpu / 64] >> (cpu % 64) & 1)) {
			snprintf(node, sizeof(node), "node%d", g->numa[i].id);
			return topo_graph_lookup(g, node);
		}
	}
	return -1;
}

/* The path class from the topology device from (the caller's node) to p's
 * device, as pmtopo's matrix names it; the caller's own node is NODE. ""
 * when unknown. */
static void path_from(const struct broker *b, const struct pool *p, int from, char *out,
		      size_t len)
{
	const struct topo_graph *g = b->topo;
	struct topo_path *path;
	int to = topo_graph_lookup(g, p->device);

	out[0] = '\0';
	if (from < 0 || to < 0)
		return;
	if (from == to) {
		snprintf(out, len, "NODE");
		return;
	}
	path = malloc(sizeof(*path));
	if (path && topo_classify(g, from, to, path) == 0)
		topo_class_cell(path, out, len);
	free(path);
}

void pool_describe(const struct broker *b, const struct pool *p, int from,
		   struct pm_pools_entry *out)
{
	memset(out, 0, sizeof(*out));
	pm_name_put(out->device, sizeof(out->device), p->device);
	pm_name_put(out->region, sizeof(out->region), p->region);
	out->kind = p->ops->kind;
	out->numa_node = p->numa;
	out->capacity = p->capacity;
	out->free = pool_free(b, p);
	if (p->gone)
		out->state = p->revoked_by == -ECANCELED ? PM_POOLS_REVOKED : PM_POOLS_GONE;
	else
		out->state = p->pm ? PM_POOLS_LIVE : PM_POOLS_AVAILABLE;
	out->pagemap_id = p->pm ? p->pm->id : 0;
	path_from(b, p, from, out->path, sizeof(out->path));
}
