/* SPDX-License-Identifier: MIT */
/* pmtopo --pair A B: the class on the first line, then how and why. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "pmtopo.h"

int pmtopo_print_pair(const struct pmtopo_view *v, int a, int b)
{
	const struct topo_graph *g = v->g;
	struct topo_path *p = malloc(sizeof(*p));
	char cell[32], hop[TOPO_NAME_MAX];
	int r;

	if (!p)
		return -ENOMEM;
	r = topo_classify(g, a, b, p);
	if (r < 0) {
		free(p);
		return r;
	}
	topo_class_cell(p, cell, sizeof(cell));
	fprintf(v->out, "%s\n", cell);
	fprintf(v->out, "devices:   %s (%s) -> %s (%s)\n", g->devices[a].name, g->devices[a].alias,
		g->devices[b].name, g->devices[b].alias);
	if (g->emulated)
		fprintf(v->out, "source:    %s (EMULATED)\n", g->source);
	fprintf(v->out, "p2pdma:    %s", topo_p2p_verdict_name(p->p2p));
	if (p->p2p_distance >= 0)
		fprintf(v->out, " (distance %d)", p->p2p_distance);
	fprintf(v->out, "\n");
	if (p->reason[0])
		fprintf(v->out, "reason:    %s\n", p->reason);
	if (p->gbps > 0)
		fprintf(v->out, "bandwidth: %.1f GB/s (estimated bottleneck)\n", p->gbps);
	else
		fprintf(v->out, "bandwidth: unknown\n");
	fprintf(v->out, "hops:      ");
	for (int i = 0; i < p->nhops; i++) {
		topo_hop_name(g, &p->hops[i], hop, sizeof(hop));
		fprintf(v->out, "%s%s", i ? " -> " : "", hop);
	}
	fprintf(v->out, "\n");
	free(p);
	return 0;
}
