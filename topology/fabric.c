/* SPDX-License-Identifier: MIT */
/* Non-PCIe links between PCI functions: NVLink, XGMI. */
#include "topo.h"

int topo_fabric_between(const struct topo_graph *g, int a, int b)
{
	for (size_t i = 0; i < g->n_fabric; i++)
		if ((g->fabric[i].a == a && g->fabric[i].b == b) ||
		    (g->fabric[i].a == b && g->fabric[i].b == a))
			return (int)i;
	return -1;
}

bool topo_fabric_nvswitched(const struct topo_graph *g, int pci)
{
	int sum = 0;

	if (topo_pci_kind(&g->pci[pci]) != TOPO_DEV_GPU)
		return false;
	for (size_t i = 0; i < g->n_fabric; i++) {
		const struct topo_fabric *l = &g->fabric[i];
		int peer = l->a == pci ? l->b : l->b == pci ? l->a : -1;

		if (peer < 0 || l->type != TOPO_FABRIC_NVLINK || g->pci[peer].removed)
			continue;
		if (topo_pci_kind(&g->pci[peer]) != TOPO_DEV_GPU)
			return false;
		sum += l->count > 0 ? l->count : 1;
	}
	return sum > TOPO_NVLINK_MAX_PER_GPU;
}
