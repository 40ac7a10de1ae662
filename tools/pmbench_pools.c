/* SPDX-License-Identifier: MIT */
/*
 * The pools pmbench migrate measures between: system memory, host NUMA nodes
 * and device pools, found by asking the broker rather than assumed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmbench_migrate.h"
#include "topo.h"

const char *migbench_kind_name(uint32_t kind)
{
	return kind ? pm_kind_name(kind) : "system";
}

bool migbench_pool_is_host(const struct migbench_pool *p)
{
	return p->kind == 0 || p->kind == PAGEMAP_KIND_HOST_NUMA;
}

int migbench_pool_open(struct pm_client *c, const char *name, struct migbench_pool *out)
{
	char dev[MIGBENCH_NAME_MAX], *region;
	struct pagemap_info info;
	int fd, r;

	if (!strcmp(name, "system")) {
		*out = (struct migbench_pool){ .name = "system", .fd = PM_FD_SYSTEM, .node = -1 };
		return 0;
	}
	if (strlen(name) >= sizeof(dev))
		return -ENAMETOOLONG;
	snprintf(dev, sizeof(dev), "%s", name);
	region = strchr(dev, '/');
	if (region)
		*region++ = '\0';
	fd = pagemap_open(c, dev, region, 0);
	if (fd < 0)
		return fd;
	r = pagemap_query(fd, &info);
	if (r < 0) {
		close(fd);
		return r;
	}
	memset(out, 0, sizeof(*out));
	/* The broker's canonical name: an alias given on the command line becomes its BDF. */
	snprintf(out->name, sizeof(out->name), "%s%s%s", info.device, info.region[0] ? "/" : "",
		 info.region);
	out->fd = fd;
	out->id = info.id;
	out->kind = info.kind;
	out->node = info.kind == PAGEMAP_KIND_HOST_NUMA ? info.numa_node : -1;
	out->capacity = info.capacity;
	return 0;
}

void migbench_pool_close(struct migbench_pool *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = PM_FD_SYSTEM;
}

/* "system", "node3", a BDF, or a name without ':' (alias), each with an optional /REGION. */
static bool is_pool_name(const char *s, size_t len)
{
	char name[MIGBENCH_NAME_MAX], *slash;
	uint32_t dom;
	uint8_t bus, dev, fn;

	if (!len || len >= sizeof(name))
		return false;
	memcpy(name, s, len);
	name[len] = '\0';
	slash = strchr(name, '/');
	if (slash) {
		if (!slash[1] || strchr(slash + 1, ':') || strchr(slash + 1, '/'))
			return false;
		*slash = '\0';
	}
	if (!name[0])
		return false;
	return !strchr(name, ':') || topo_parse_bdf(name, true, &dom, &bus, &dev, &fn);
}

int migbench_split_pair(const char *arg, char *src, char *dst, size_t len)
{
	const char *at = NULL;
	int found = 0;

	for (const char *p = strchr(arg, ':'); p; p = strchr(p + 1, ':'))
		if (is_pool_name(arg, (size_t)(p - arg)) && is_pool_name(p + 1, strlen(p + 1))) {
			at = p;
			found++;
		}
	if (found != 1 || (size_t)(at - arg) >= len || strlen(at + 1) >= len)
		return -EINVAL;
	memcpy(src, arg, (size_t)(at - arg));
	src[at - arg] = '\0';
	snprintf(dst, len, "%s", at + 1);
	return 0;
}

/* Adds *p to out unless a pool with its id is there already (then closes it). */
static void add_unique(struct migbench_pool *out, int *n, int max, struct migbench_pool *p)
{
	for (int i = 0; i < *n; i++)
		if (out[i].id == p->id) {
			migbench_pool_close(p);
			return;
		}
	if (*n >= max) {
		fprintf(stderr, "pmbench migrate: leaving out %s: at most %d pools by default "
				"(name it with --pair)\n", p->name, max);
		migbench_pool_close(p);
		return;
	}
	out[(*n)++] = *p;
}

/* Opens name if the broker serves it; what it does not serve is silently not a pool. */
static void try_add(struct pm_client *c, const char *name, uint64_t min_capacity,
		    struct migbench_pool *out, int *n, int max)
{
	struct migbench_pool p;
	int r = migbench_pool_open(c, name, &p);

	if (r == -ENOENT)
		return;
	if (r < 0) {
		fprintf(stderr, "pmbench migrate: not measuring %s: %s\n", name, strerror(-r));
		return;
	}
	if (p.capacity && p.capacity < min_capacity) {
		fprintf(stderr, "pmbench migrate: not measuring %s: %llu bytes, less than --size\n",
			p.name, (unsigned long long)p.capacity);
		migbench_pool_close(&p);
		return;
	}
	add_unique(out, n, max, &p);
}

/* This host's online NUMA nodes, from "0-1,3" in sysfs. */
static int host_nodes(int *nodes, int max)
{
	char line[256], *save = NULL;
	FILE *f = fopen("/sys/devices/system/node/online", "re");
	int n = 0;

	if (!f)
		return -errno;
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	for (char *tok = strtok_r(line, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save)) {
		int lo, hi;

		if (sscanf(tok, "%d-%d", &lo, &hi) != 2)
			hi = lo = atoi(tok);
		for (int i = lo; i <= hi && n < max; i++)
			nodes[n++] = i;
	}
	return n;
}

/* Every device pool the broker serves us and can open now (POOLS). */
static void add_listed(struct pm_client *c, uint64_t min_capacity, struct migbench_pool *out,
		       int *n, int max)
{
	struct pm_pool_info pools[MIGBENCH_MAX_POOLS * 4];
	int np = pm_list_pools(c, pools, sizeof(pools) / sizeof(pools[0]));

	if (np < 0) {
		fprintf(stderr, "pmbench migrate: listing the broker's pools: %s\n", strerror(-np));
		return;
	}
	for (int i = 0; i < np && (size_t)i < sizeof(pools) / sizeof(pools[0]); i++) {
		const struct pm_pool_info *p = &pools[i];
		char name[MIGBENCH_NAME_MAX];

		if (p->kind == PAGEMAP_KIND_HOST_NUMA ||
		    (p->state != PM_POOL_AVAILABLE && p->state != PM_POOL_LIVE))
			continue;
		snprintf(name, sizeof(name), "%s%s%s", p->device, p->region[0] ? "/" : "",
			 p->region);
		try_add(c, name, min_capacity, out, n, max);
	}
}

static void add_topology(struct pm_client *c, const char *topology, uint64_t min_capacity,
			 struct migbench_pool *out, int *n, int max)
{
	struct topo_discover_opts o = { .no_verbs = true };
	struct topo_graph *g = NULL;
	char err[256] = "";
	int r;

	o.errbuf = err;
	o.errlen = sizeof(err);
	r = topology ? topo_file_load(topology, &g, err, sizeof(err)) : topo_discover(&o, &g);
	if (r < 0) {
		fprintf(stderr, "pmbench migrate: %s: %s; only live pagemaps are measured\n",
			topology ? topology : "discovering this machine",
			err[0] ? err : strerror(-r));
		return;
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *pci = &g->pci[i];

		if (!pci->removed &&
		    (topo_pci_kind(pci) & (TOPO_DEV_GPU | TOPO_DEV_ACCEL | TOPO_DEV_MEM)))
			try_add(c, pci->bdf, min_capacity, out, n, max);
	}
	topo_graph_free(g);
}

int migbench_pools_default(struct pm_client *c, const char *topology, uint64_t min_capacity,
			   struct migbench_pool *out, int max)
{
	int nodes[64], nn = host_nodes(nodes, 64), n = 0, nhost;

	if (max < 1)
		return -EINVAL;
	migbench_pool_open(c, "system", &out[n++]);
	/* Only nodes this host has: a broker serving an emulated machine may list
	 * nodes that exist only in its topology file, where no page can go. */
	for (int i = 0; i < nn; i++) {
		char name[16];

		snprintf(name, sizeof(name), "node%d", nodes[i]);
		try_add(c, name, 0, out, &n, max);
	}
	nhost = n;
	add_listed(c, min_capacity, out, &n, max);
	/* A topology file adds nothing the broker does not list; kept for
	 * command lines that still name one. */
	if (topology)
		add_topology(c, topology, min_capacity, out, &n, max);
	if (n == nhost)
		fprintf(stderr, "pmbench migrate: the broker serves no device pool we may open "
				"(see pmctl pools)\n");
	return n;
}
