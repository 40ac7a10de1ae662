/* SPDX-License-Identifier: MIT */
/* Discovery sources: one file each, run in order by discover.c. */
#ifndef PAGEMAP_TOPO_SOURCE_H
#define PAGEMAP_TOPO_SOURCE_H
#include <stdbool.h>
#include <stdarg.h>

#include "config.h"
#include "topo.h"

struct topo_ctx {
	const char *root; /* "" live, else the replay root without trailing slash */
	bool live;
	bool no_verbs;
	char *errbuf;
	size_t errlen;
};

struct topo_source {
	const char *name;
	/* Fills its part of the graph. Returns 0, or -errno with topo_ctx_error() set. */
	int (*discover)(struct topo_ctx *ctx, struct topo_graph *g);
};

extern const struct topo_source topo_source_cpu;
extern const struct topo_source topo_source_numa;
extern const struct topo_source topo_source_pci;
extern const struct topo_source topo_source_osdev;
extern const struct topo_source topo_source_rdma;
extern const struct topo_source topo_source_kfd;
extern const struct topo_source topo_source_nvml;

/* Records the first error message; later ones are dropped. Returns err. */
int topo_ctx_error(struct topo_ctx *ctx, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* RDMA rate as sysfs prints it ("100 Gb/sec (4X EDR)") to Gb/s. */
double topo_rdma_rate_gbps(const char *rate);
#if HAVE_IBVERBS
/* Live: refines sysfs-discovered RDMA devices with what libibverbs reports. */
int topo_rdma_verbs_refine(struct topo_ctx *ctx, struct topo_graph *g);
#endif
#endif
