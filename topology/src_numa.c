/* SPDX-License-Identifier: MIT */
/* NUMA nodes: CPUs, memory, distances and HMAT access figures from sysfs. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"
#include "sysfs_util.h"

static uint64_t node_mem_total(const char *root, int id)
{
	char path[4096], line[256];
	unsigned long long kb;
	FILE *f;
	uint64_t total = 0;

	if (id >= 0)
		sysfs_path(path, sizeof(path), root, "/sys/devices/system/node/node%d/meminfo", id);
	else
		sysfs_path(path, sizeof(path), root, "/proc/meminfo");
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		/* "Node 0 MemTotal:  16318020 kB" or "MemTotal:  16318020 kB" */
		char *m = strstr(line, "MemTotal:");

		if (m && sscanf(m + 9, "%llu", &kb) == 1) {
			total = (uint64_t)kb * 1024;
			break;
		}
	}
	fclose(f);
	return total;
}

static void read_hmat(const char *root, struct topo_numa *n)
{
	static const char *const attrs[] = { "read_bandwidth", "write_bandwidth", "read_latency",
					     "write_latency" };
	uint32_t *vals[] = { &n->access0.read_bw, &n->access0.write_bw, &n->access0.read_lat,
			     &n->access0.write_lat };
	char path[4096];
	struct dirent *de;
	DIR *d;

	for (size_t i = 0; i < 4; i++) {
		long v;

		sysfs_path(path, sizeof(path), root,
			   "/sys/devices/system/node/node%d/access0/initiators/%s", n->id, attrs[i]);
		if (sysfs_read_long(path, &v) == 0 && v >= 0) {
			*vals[i] = (uint32_t)v;
			n->access0.present = true;
		}
	}
	sysfs_path(path, sizeof(path), root, "/sys/devices/system/node/node%d/access0/initiators",
		   n->id);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d))) {
		int id;

		if (sscanf(de->d_name, "node%d", &id) == 1 && id >= 0 && id < 64)
			n->access0.initiators |= 1ull << id;
	}
	closedir(d);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

static int list_nodes(const char *root, int **ids)
{
	char path[4096];
	struct dirent *de;
	int n = 0, cap = 8, *v = malloc((size_t)cap * sizeof(int));
	DIR *d;

	if (!v)
		return -ENOMEM;
	sysfs_path(path, sizeof(path), root, "/sys/devices/system/node");
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			int id;
			char tail;

			if (sscanf(de->d_name, "node%d%c", &id, &tail) != 1 || id < 0)
				continue;
			if (n == cap) {
				int *nv = realloc(v, (size_t)(cap *= 2) * sizeof(int));

				if (!nv) {
					closedir(d);
					free(v);
					return -ENOMEM;
				}
				v = nv;
			}
			v[n++] = id;
		}
		closedir(d);
	}
	qsort(v, (size_t)n, sizeof(int), cmp_int);
	*ids = v;
	return n;
}

static int discover_numa(struct topo_ctx *ctx, struct topo_graph *g)
{
	char path[4096], buf[4096];
	int *ids, n, r;

	n = list_nodes(ctx->root, &ids);
	if (n < 0)
		return n;
	if (n == 0) {
		/* Kernel without CONFIG_NUMA: one node holding everything. */
		struct topo_numa node = { .id = 0, .has_cpu = true };

		sysfs_path(path, sizeof(path), ctx->root, "/sys/devices/system/cpu/online");
		sysfs_read_str(path, node.cpulist, sizeof(node.cpulist));
		node.mem_total = node_mem_total(ctx->root, -1);
		free(ids);
		if ((r = topo_graph_add_numa(g, &node)) < 0 || (r = topo_graph_set_numa_count(g)) < 0)
			return r;
		g->numa_dist[0] = 10;
		return 0;
	}
	for (int i = 0; i < n; i++) {
		struct topo_numa node = { .id = ids[i] };

		sysfs_path(path, sizeof(path), ctx->root, "/sys/devices/system/node/node%d/cpulist",
			   ids[i]);
		sysfs_read_str(path, node.cpulist, sizeof(node.cpulist));
		node.has_cpu = node.cpulist[0] != '\0';
		node.mem_total = node_mem_total(ctx->root, ids[i]);
		read_hmat(ctx->root, &node);
		if ((r = topo_graph_add_numa(g, &node)) < 0) {
			free(ids);
			return r;
		}
	}
	if ((r = topo_graph_set_numa_count(g)) < 0) {
		free(ids);
		return r;
	}
	/* nodeN/distance lists distances to every possible node in id order. */
	for (int i = 0; i < n; i++) {
		char *tok, *save = NULL;
		int j = 0;

		sysfs_path(path, sizeof(path), ctx->root, "/sys/devices/system/node/node%d/distance",
			   ids[i]);
		if (sysfs_read_str(path, buf, sizeof(buf)) <= 0)
			continue;
		for (tok = strtok_r(buf, " ", &save); tok && j < n; tok = strtok_r(NULL, " ", &save))
			g->numa_dist[(size_t)i * (size_t)n + (size_t)j++] = atoi(tok);
	}
	free(ids);
	return 0;
}

const struct topo_source topo_source_numa = { "numa", discover_numa };
