/* SPDX-License-Identifier: MIT */
/* Live RDMA refinement through libibverbs: port state and rate as verbs sees them. */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <infiniband/verbs.h>

#include "source.h"

/* Lanes per IBV width code and effective Gb/s per lane per speed code. */
static int width_lanes(uint8_t w)
{
	switch (w) {
	case 1: return 1;
	case 2: return 4;
	case 4: return 8;
	case 8: return 12;
	case 16: return 2;
	default: return 0;
	}
}

static double lane_gbps(uint8_t s)
{
	switch (s) {
	case 1: return 2.5;   /* SDR */
	case 2: return 5;     /* DDR */
	case 4: return 10;    /* QDR */
	case 8: return 10;    /* FDR10 */
	case 16: return 14;   /* FDR */
	case 32: return 25;   /* EDR */
	case 64: return 50;   /* HDR */
	case 128: return 100; /* NDR */
	default: return 0;
	}
}

static void refine_one(struct topo_rdma *rd, struct ibv_context *ctx)
{
	struct ibv_device_attr attr;

	if (ibv_query_device(ctx, &attr))
		return;
	rd->node_guid = be64toh(attr.node_guid);
	rd->nports = 0;
	for (int p = 1; p <= attr.phys_port_cnt && rd->nports < TOPO_MAX_PORTS; p++) {
		struct topo_rdma_port *tp = &rd->ports[rd->nports];
		struct ibv_port_attr pa;

		if (ibv_query_port(ctx, (uint8_t)p, &pa))
			continue;
		memset(tp, 0, sizeof(*tp));
		tp->num = p;
		tp->state = pa.state;
		snprintf(tp->link_layer, sizeof(tp->link_layer), "%s",
			 pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand");
		tp->gbps = width_lanes(pa.active_width) * lane_gbps(pa.active_speed);
		snprintf(tp->rate, sizeof(tp->rate), "%g Gb/sec", tp->gbps);
		rd->nports++;
	}
}

int topo_rdma_verbs_refine(struct topo_ctx *tctx, struct topo_graph *g)
{
	struct ibv_device **list;
	int n = 0;

	list = ibv_get_device_list(&n);
	if (!list)
		return 0; /* no uverbs: sysfs already said what there is */
	for (int i = 0; i < n; i++) {
		const char *name = ibv_get_device_name(list[i]);
		struct ibv_context *ctx;

		for (size_t j = 0; j < g->n_rdma; j++) {
			if (strcmp(g->rdma[j].name, name))
				continue;
			ctx = ibv_open_device(list[i]);
			if (ctx) {
				refine_one(&g->rdma[j], ctx);
				ibv_close_device(ctx);
			}
		}
	}
	ibv_free_device_list(list);
	(void)tctx;
	return 0;
}
