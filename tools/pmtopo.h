/* SPDX-License-Identifier: MIT */
/* pmtopo's views: each one prints the graph one way. */
#ifndef PAGEMAP_PMTOPO_H
#define PAGEMAP_PMTOPO_H
#include <stdio.h>

#include "topo.h"

struct pmtopo_view {
	const struct topo_graph *g;
	unsigned kinds; /* enum topo_dev_kind mask of devices to show */
	FILE *out;
};

/* devices[] indices the filter selects; returns the count (caller frees *idx). */
int pmtopo_selected(const struct pmtopo_view *v, int **idx);

int pmtopo_print_matrix(const struct pmtopo_view *v);
int pmtopo_print_tree(const struct pmtopo_view *v);
int pmtopo_print_json(const struct pmtopo_view *v);
int pmtopo_print_dot(const struct pmtopo_view *v);
int pmtopo_print_nccl_xml(const struct pmtopo_view *v);
int pmtopo_print_pair(const struct pmtopo_view *v, int dev_a, int dev_b);
#endif
