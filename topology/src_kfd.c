/* SPDX-License-Identifier: MIT */
/*
 * AMD GPU fabric from the KFD topology: io_links of type 11 are XGMI links
 * between GPU nodes. Nodes are matched to PCI functions by domain and
 * location_id (bus << 8 | devfn), as the KFD writes them.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"
#include "sysfs_util.h"

#define KFD_NODES "/sys/class/kfd/kfd/topology/nodes"
#define KFD_IOLINK_XGMI 11

/* Reads "key value" lines of a KFD properties file into out[] for keys[]. */
static int read_props(const char *path, const char *const *keys, long long *out, size_t n)
{
	char line[256], key[64];
	long long v;
	FILE *f = fopen(path, "re");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %lld", key, &v) != 2)
			continue;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(key, keys[i]))
				out[i] = v;
	}
	fclose(f);
	return 0;
}

static int node_pci(struct topo_ctx *ctx, const struct topo_graph *g, int node)
{
	static const char *const keys[] = { "domain", "location_id" };
	long long v[2] = { -1, -1 };
	char path[4096];

	sysfs_path(path, sizeof(path), ctx->root, KFD_NODES "/%d/properties", node);
	if (read_props(path, keys, v, 2) < 0 || v[1] <= 0)
		return -1; /* CPU nodes have location_id 0 */
	return topo_graph_find_pci(g, (uint32_t)(v[0] < 0 ? 0 : v[0]), (uint8_t)(v[1] >> 8),
				   (uint8_t)((v[1] >> 3) & 0x1f), (uint8_t)(v[1] & 7));
}

static bool have_link(const struct topo_graph *g, int a, int b)
{
	for (size_t i = 0; i < g->n_fabric; i++)
		if ((g->fabric[i].a == a && g->fabric[i].b == b) ||
		    (g->fabric[i].a == b && g->fabric[i].b == a))
			return true;
	return false;
}

static int scan_links(struct topo_ctx *ctx, struct topo_graph *g, int node)
{
	static const char *const keys[] = { "type", "node_from", "node_to", "max_bandwidth" };
	char path[4096];
	struct dirent *de;
	int r = 0;
	DIR *d;

	sysfs_path(path, sizeof(path), ctx->root, KFD_NODES "/%d/io_links", node);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		long long v[4] = { -1, -1, -1, 0 };
		struct topo_fabric f = { .type = TOPO_FABRIC_XGMI, .count = 1 };

		if (de->d_name[0] == '.')
			continue;
		sysfs_path(path, sizeof(path), ctx->root, KFD_NODES "/%d/io_links/%s/properties",
			   node, de->d_name);
		if (read_props(path, keys, v, 4) < 0 || v[0] != KFD_IOLINK_XGMI)
			continue;
		f.a = node_pci(ctx, g, (int)v[1]);
		f.b = node_pci(ctx, g, (int)v[2]);
		if (f.a < 0 || f.b < 0 || f.a == f.b || have_link(g, f.a, f.b))
			continue;
		f.gbps = (double)v[3] / 1000.0; /* MB/s */
		r = topo_graph_add_fabric(g, &f);
		if (r < 0)
			break;
	}
	closedir(d);
	return r < 0 ? r : 0;
}

static int discover_kfd(struct topo_ctx *ctx, struct topo_graph *g)
{
	char path[4096];
	struct dirent *de;
	int r = 0;
	DIR *d;

	sysfs_path(path, sizeof(path), ctx->root, KFD_NODES);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d)) && r >= 0) {
		char *end;
		long node = strtol(de->d_name, &end, 10);

		if (end != de->d_name && !*end)
			r = scan_links(ctx, g, (int)node);
	}
	closedir(d);
	return r;
}

const struct topo_source topo_source_kfd = { "kfd", discover_kfd };
