/* SPDX-License-Identifier: MIT */
/* pmtopo --tree: the PCIe tree per NUMA node and host bridge, like lspci -tv. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmtopo.h"

struct tree {
	const struct pmtopo_view *v;
	int *order; /* pci indices sorted by BDF */
	size_t n;
	bool *shown;    /* per pci function: passes --filter or leads to one that does */
	bool *hb_shown; /* per host bridge: something below it is shown */
};

/* As --dot selects: an endpoint of a chosen kind, or the function of an RDMA
 * device when NICs are chosen (a NIC whose class code says otherwise). */
static bool selected(const struct pmtopo_view *v, int i)
{
	const struct topo_graph *g = v->g;
	enum topo_dev_kind k = topo_pci_kind(&g->pci[i]);

	if (g->pci[i].port != TOPO_PORT_ENDPOINT)
		return false;
	if (k != TOPO_DEV_BRIDGE && (k & v->kinds))
		return true;
	for (size_t r = 0; r < g->n_rdma && (v->kinds & TOPO_DEV_NIC); r++)
		if (g->rdma[r].pci == i)
			return true;
	return false;
}

/*
 * What the tree shows. Unfiltered (every kind) it is everything, empty root
 * ports included, as lspci -tv. Filtered, a bridge alone says nothing: keep
 * the chosen endpoints and the bridges on their way up, so the tree still
 * shows where each one hangs.
 */
static void mark_shown(struct tree *t)
{
	const struct topo_graph *g = t->v->g;
	bool all = t->v->kinds == ~0u;

	for (size_t i = 0; i < g->n_pci; i++) {
		size_t hops = 0;

		if (g->pci[i].removed || !(all || selected(t->v, (int)i)))
			continue;
		t->shown[i] = true;
		for (int up = g->pci[i].parent; up >= 0 && hops < g->n_pci && !g->pci[up].removed;
		     up = g->pci[up].parent, hops++)
			t->shown[up] = true;
		if (g->pci[i].hostbridge >= 0 && (size_t)g->pci[i].hostbridge < g->n_hostbridges)
			t->hb_shown[g->pci[i].hostbridge] = true;
	}
	/* An empty host bridge is news on an unfiltered tree only. */
	for (size_t h = 0; all && h < g->n_hostbridges; h++)
		t->hb_shown[h] = true;
}

static int cmp_bdf(const void *a, const void *b, void *arg)
{
	const struct topo_graph *g = arg;
	const struct topo_pci *x = &g->pci[*(const int *)a], *y = &g->pci[*(const int *)b];

	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	return (x->bus << 8 | x->dev << 3 | x->fn) - (y->bus << 8 | y->dev << 3 | y->fn);
}

static void speed_str(int s, char *buf, size_t len)
{
	snprintf(buf, len, "%d.%d GT/s", s / 10, s % 10);
}

static void print_link(FILE *f, const struct topo_pci *p)
{
	char cur[16], max[16];

	if (!p->max_speed || !p->max_width)
		return;
	speed_str(p->max_speed, max, sizeof(max));
	fprintf(f, "  [%s x%d", max, p->max_width);
	if (topo_pci_downtrained(p)) {
		speed_str(p->cur_speed, cur, sizeof(cur));
		fprintf(f, ", trained %s x%d", cur, p->cur_width);
	}
	fputc(']', f);
}

static void print_extras(const struct topo_graph *g, FILE *f, int i)
{
	const struct topo_pci *p = &g->pci[i];

	for (size_t o = 0; o < g->n_osdevs; o++)
		if (g->osdevs[o].pci == i)
			fprintf(f, " %s", g->osdevs[o].name);
	for (size_t r = 0; r < g->n_rdma; r++)
		if (g->rdma[r].pci == i)
			fprintf(f, " %s%s", g->rdma[r].name, g->rdma[r].soft ? "(soft)" : "");
	for (unsigned b = 0; b < p->nbars && p->port == TOPO_PORT_ENDPOINT; b++) {
		const struct topo_bar *bar = &p->bars[b];
		double sz = (double)bar->size;
		const char *u = "B";

		if (!bar->prefetch)
			continue; /* register BARs are not memory anyone maps */
		if (sz >= 1 << 30) {
			sz /= 1 << 30;
			u = "GiB";
		} else if (sz >= 1 << 20) {
			sz /= 1 << 20;
			u = "MiB";
		} else if (sz >= 1 << 10) {
			sz /= 1 << 10;
			u = "KiB";
		}
		fprintf(f, " bar%u=%g%s", bar->index, sz, u);
	}
}

static void print_subtree(struct tree *t, int parent, int hb, const char *prefix)
{
	const struct topo_graph *g = t->v->g;
	FILE *f = t->v->out;
	int last = -1;

	for (size_t k = 0; k < t->n; k++) {
		const struct topo_pci *p = &g->pci[t->order[k]];

		if (t->shown[t->order[k]] && p->parent == parent && p->hostbridge == hb)
			last = t->order[k];
	}
	for (size_t k = 0; k < t->n; k++) {
		int i = t->order[k];
		const struct topo_pci *p = &g->pci[i];
		char sub[256];

		if (!t->shown[i] || p->parent != parent || p->hostbridge != hb)
			continue;
		fprintf(f, "%s%s %s %s", prefix, i == last ? "\\-" : "+-", p->bdf,
			p->port == TOPO_PORT_ENDPOINT ? topo_dev_kind_name(topo_pci_kind(p))
						     : topo_port_type_name(p->port));
		fprintf(f, "  %s %s", p->vendor_name, p->device_name);
		print_link(f, p);
		print_extras(g, f, i);
		fputc('\n', f);
		snprintf(sub, sizeof(sub), "%s%s", prefix, i == last ? "   " : "|  ");
		print_subtree(t, i, hb, sub);
	}
}

static void print_hostbridges(struct tree *t, int numa, bool unknown)
{
	const struct topo_graph *g = t->v->g;

	for (size_t h = 0; h < g->n_hostbridges; h++) {
		const struct topo_hostbridge *hb = &g->hostbridges[h];

		if (!t->hb_shown[h] ||
		    (unknown ? hb->numa >= 0 && topo_graph_find_numa(g, hb->numa) >= 0
			     : hb->numa != numa))
			continue;
		fprintf(t->v->out, "  %s\n", hb->name);
		print_subtree(t, -1, (int)h, "  ");
	}
}

int pmtopo_print_tree(const struct pmtopo_view *v)
{
	const struct topo_graph *g = v->g;
	struct tree t = { .v = v, .n = g->n_pci };
	bool any_unknown = false, any_shown = false;

	t.order = malloc((t.n ? t.n : 1) * sizeof(int));
	t.shown = calloc(t.n ? t.n : 1, sizeof(bool));
	t.hb_shown = calloc(g->n_hostbridges ? g->n_hostbridges : 1, sizeof(bool));
	if (!t.order || !t.shown || !t.hb_shown) {
		free(t.order);
		free(t.shown);
		free(t.hb_shown);
		return -ENOMEM;
	}
	mark_shown(&t);
	for (size_t i = 0; i < t.n; i++)
		t.order[i] = (int)i;
	qsort_r(t.order, t.n, sizeof(int), cmp_bdf, (void *)g);
	if (g->emulated)
		fprintf(v->out, "EMULATED topology (%s)\n", g->source);
	for (size_t n = 0; n < g->n_numa; n++) {
		const struct topo_numa *node = &g->numa[n];

		fprintf(v->out, "node%d  cpus %s  memory %.1f GiB%s", node->id,
			node->cpulist[0] ? node->cpulist : "none",
			(double)node->mem_total / (1 << 30), node->has_cpu ? "" : "  (memory only)");
		if (node->access0.present)
			fprintf(v->out, "  [HMAT read %u MB/s %u ns]", node->access0.read_bw,
				node->access0.read_lat);
		fputc('\n', v->out);
		/* On a one-node machine the kernel leaves numa_node at -1. */
		print_hostbridges(&t, node->id, false);
		if (g->n_numa == 1)
			print_hostbridges(&t, -1, false);
	}
	for (size_t h = 0; h < g->n_hostbridges && g->n_numa != 1; h++)
		if (t.hb_shown[h] && (g->hostbridges[h].numa < 0 ||
				      topo_graph_find_numa(g, g->hostbridges[h].numa) < 0))
			any_unknown = true;
	if (any_unknown) {
		fprintf(v->out, "unknown NUMA node\n");
		print_hostbridges(&t, -1, true);
	}
	for (size_t h = 0; h < g->n_hostbridges; h++)
		any_shown |= t.hb_shown[h];
	if (!any_shown && v->kinds != ~0u)
		fprintf(v->out, "(no PCI device of the kinds --filter chose)\n");
	free(t.order);
	free(t.shown);
	free(t.hb_shown);
	return 0;
}
