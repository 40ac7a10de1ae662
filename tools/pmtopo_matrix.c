/* SPDX-License-Identifier: MIT */
/* The default view: a devices x devices matrix of path classes, as nvidia-smi topo -m. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmtopo.h"

static const char legend[] =
	"Legend:\n"
	"  X    = Self\n"
	"  SYS  = Path traverses the link between NUMA nodes (e.g. UPI, Infinity Fabric)\n"
	"  NODE = Path traverses host bridges within one NUMA node\n"
	"  PHB  = Path traverses one PCIe host bridge (typically the CPU)\n"
	"  PXB  = Path traverses several PCIe switches, no host bridge\n"
	"  PIX  = Path traverses at most one PCIe switch\n"
	"  NV#  = Bonded set of # NVLinks;  XGMI# = AMD XGMI links\n"
	"  NET  = Another machine, over RDMA\n";

static const char *cpus_of(const struct topo_graph *g, const struct topo_device *d)
{
	int n;

	if (d->pci >= 0 && g->pci[d->pci].local_cpus[0])
		return g->pci[d->pci].local_cpus;
	n = d->numa >= 0 ? topo_graph_find_numa(g, d->numa) : -1;
	return n >= 0 && g->numa[n].cpulist[0] ? g->numa[n].cpulist : "N/A";
}

int pmtopo_print_matrix(const struct pmtopo_view *v)
{
	const struct topo_graph *g = v->g;
	struct topo_path *p = malloc(sizeof(*p));
	struct topo_pos *pos = NULL;
	int *sel, n, w = 6, cw = 16;

	if (!p)
		return -ENOMEM;
	n = pmtopo_selected(v, &sel);
	if (n < 0) {
		free(p);
		return n;
	}
	pos = calloc(n ? (size_t)n : 1, sizeof(*pos));
	for (int i = 0; pos && i < n; i++)
		if (topo_device_pos(g, sel[i], &pos[i]) < 0)
			pos[i].dev = -1;
	if (!pos) {
		free(sel);
		free(p);
		return -ENOMEM;
	}
	if (g->emulated)
		fprintf(v->out, "EMULATED topology (%s): no path below is real.\n\n", g->source);
	if (n == 0) {
		fprintf(v->out, "No devices of the selected kinds (try --filter all).\n");
		free(sel);
		free(pos);
		free(p);
		return 0;
	}
	for (int i = 0; i < n; i++) {
		int l = (int)strlen(g->devices[sel[i]].alias) + 2;

		if (l > w)
			w = l;
	}
	fprintf(v->out, "%*s", w, "");
	for (int i = 0; i < n; i++)
		fprintf(v->out, "%-*s", w, g->devices[sel[i]].alias);
	for (int i = 0; i < n; i++) {
		int l = (int)strlen(cpus_of(g, &g->devices[sel[i]])) + 2;

		if (l > cw)
			cw = l;
	}
	fprintf(v->out, "%-*s%s\n", cw, "CPU Affinity", "NUMA Affinity");
	for (int i = 0; i < n; i++) {
		const struct topo_device *d = &g->devices[sel[i]];
		char cell[32];

		fprintf(v->out, "%-*s", w, d->alias);
		for (int j = 0; j < n; j++) {
			if (pos[i].dev < 0 || pos[j].dev < 0) {
				snprintf(cell, sizeof(cell), "?");
			} else {
				topo_classify_pos(g, &pos[i], &pos[j], p);
				topo_class_cell(p, cell, sizeof(cell));
			}
			fprintf(v->out, "%-*s", w, cell);
		}
		fprintf(v->out, "%-*s", cw, cpus_of(g, d));
		if (d->numa >= 0)
			fprintf(v->out, "%d\n", d->numa);
		else
			fprintf(v->out, "N/A\n");
	}
	fprintf(v->out, "\n%s\nDevices:\n", legend);
	for (int i = 0; i < n; i++) {
		const struct topo_device *d = &g->devices[sel[i]];

		fprintf(v->out, "  %-*s %-14s", w - 2, d->alias, d->name);
		if (d->pci >= 0)
			fprintf(v->out, " %s %s %s", g->pci[d->pci].bdf, g->pci[d->pci].vendor_name,
				g->pci[d->pci].device_name);
		if (d->rdma >= 0 && g->rdma[d->rdma].soft)
			fprintf(v->out, " (soft RDMA on %s)", g->rdma[d->rdma].netdev);
		fputc('\n', v->out);
	}
	free(sel);
	free(pos);
	free(p);
	return 0;
}
