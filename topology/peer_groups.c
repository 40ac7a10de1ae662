/* SPDX-License-Identifier: MIT */
/*
 * Peer groups: sets of devices in which every pair has a direct path (a
 * fabric link, or PCIe P2P without the host bridge). Like the kernel's xe
 * "owners", a device joins a group only if it reaches every member directly;
 * groups are recomputed from scratch whenever the graph changes.
 */
#include <errno.h>
#include <stdlib.h>

#include "topo.h"

static bool direct(const struct topo_graph *g, int a, int b)
{
	struct topo_path p;

	if (topo_classify(g, a, b, &p) < 0)
		return false;
	if (p.cls == TOPO_CLASS_NV)
		return true;
	/* Path verdict in both directions; a missing BAR on one side does not
	 * stop the other side from exposing memory. */
	if (p.p2p == TOPO_P2P_BUS_ADDR)
		return true;
	if (topo_classify(g, b, a, &p) < 0)
		return false;
	return p.p2p == TOPO_P2P_BUS_ADDR;
}

static bool groupable(const struct topo_device *d)
{
	return !d->removed && d->pci >= 0 && d->kind != TOPO_DEV_NUMA;
}

int topo_peer_groups(const struct topo_graph *g, int *group)
{
	size_t n = g->n_devices;
	int *members, ngroups = 0, *size;

	members = calloc(n ? n : 1, sizeof(*members));
	size = calloc(n ? n : 1, sizeof(*size));
	if (!members || !size) {
		free(members);
		free(size);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		group[i] = -1;
	for (size_t i = 0; i < n; i++) {
		int gid;

		if (!groupable(&g->devices[i]))
			continue;
		for (gid = 0; gid < ngroups; gid++) {
			bool all = true;

			for (size_t j = 0; j < i && all; j++)
				if (group[j] == gid && !direct(g, (int)i, (int)j))
					all = false;
			if (all)
				break;
		}
		if (gid == ngroups)
			ngroups++;
		group[i] = gid;
		size[gid]++;
	}
	/* Singletons are not groups: renumber the rest densely. */
	for (int gid = 0, next = 0; gid < ngroups; gid++)
		members[gid] = size[gid] > 1 ? next++ : -1;
	for (size_t i = 0; i < n; i++)
		if (group[i] >= 0)
			group[i] = members[group[i]];
	int count = 0;

	for (int gid = 0; gid < ngroups; gid++)
		count += size[gid] > 1;
	free(members);
	free(size);
	return count;
}
