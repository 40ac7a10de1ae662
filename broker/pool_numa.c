/* SPDX-License-Identifier: MIT */
/*
 * Host NUMA node pools. A pagemap of a node costs nothing to create: memory
 * is bound to the node when data is placed (the migration engine).
 */
#include "broker.h"

const struct pool_ops pool_numa_ops = {
	.kind = PM_KIND_HOST_NUMA,
	.name = "host-numa",
};
