/* SPDX-License-Identifier: MIT */
/*
 * pmtopo --dot: the machine as an undirected Graphviz graph, one cluster per
 * NUMA node holding its host bridges and their PCIe trees, with NVLink/XGMI
 * and NUMA distances as extra edges. `pmtopo --dot | dot -Tsvg > machine.svg`
 *
 * Node ids are always quoted: "nodeN", "hbN" (index into hostbridges[]),
 * "pci:DOMAIN:BB:DD.F" and "rdmaN" (index into rdma[]); tests rely on them.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmtopo.h"

struct dot {
	const struct pmtopo_view *v;
	FILE *f;
	bool *pci_drawn;  /* per pci[] */
	bool *hb_drawn;   /* per hostbridges[] */
	bool *rdma_drawn; /* per rdma[] */
	int *hb_cluster;  /* per hostbridges[]: NUMA node id of its cluster, -1 outside */
};

/* Text inside a quoted dot string: quotes and backslashes escaped, control
 * characters (never expected in sysfs names) flattened to spaces. */
static void put_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
	}
}

/* lspci names put the marketing name in brackets: "GH100 [H100 SXM5 80GB]". */
static void short_name(const char *full, char *buf, size_t len)
{
	const char *open = strrchr(full, '['), *close = open ? strchr(open, ']') : NULL;

	if (open && close && close > open + 1)
		snprintf(buf, len, "%.*s", (int)(close - open - 1), open + 1);
	else if (strlen(full) > 32)
		snprintf(buf, len, "%.29s...", full);
	else
		snprintf(buf, len, "%s", full);
}

static void mem_str(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (1ull << 30))
		snprintf(buf, len, "%.0f GiB", (double)bytes / (1ull << 30));
	else if (bytes)
		snprintf(buf, len, "%.0f MiB", (double)bytes / (1ull << 20));
	else
		buf[0] = '\0';
}

static const char *osdev_name(const struct topo_graph *g, int pci, const char *cls)
{
	for (size_t i = 0; i < g->n_osdevs; i++)
		if (g->osdevs[i].pci == pci && !strcmp(g->osdevs[i].cls, cls))
			return g->osdevs[i].name;
	return NULL;
}

/* The devices[] entry for a PCI function; a soft RDMA device riding on a NIC
 * also points at the NIC's function, so prefer the entry that is not RDMA. */
static const struct topo_device *pci_device(const struct topo_graph *g, int pci)
{
	const struct topo_device *found = NULL;

	for (size_t i = 0; i < g->n_devices; i++) {
		const struct topo_device *d = &g->devices[i];

		if (d->pci != pci || d->removed)
			continue;
		if (d->rdma < 0)
			return d;
		if (!found)
			found = d;
	}
	return found;
}

static bool is_selected(const struct pmtopo_view *v, const struct topo_pci *p)
{
	enum topo_dev_kind k = topo_pci_kind(p);

	return !p->removed && k != TOPO_DEV_BRIDGE && (k & v->kinds);
}

/* Mark what is drawn: selected functions, the PCI functions of drawn RDMA
 * devices, every ancestor of those, and host bridges with anything drawn. */
static void mark(struct dot *d)
{
	const struct topo_graph *g = d->v->g;

	for (size_t r = 0; r < g->n_rdma; r++) {
		int pci = g->rdma[r].pci;

		if (!(d->v->kinds & TOPO_DEV_NIC) || (pci >= 0 && g->pci[pci].removed))
			continue;
		d->rdma_drawn[r] = true;
		if (pci >= 0)
			d->pci_drawn[pci] = true;
	}
	for (size_t i = 0; i < g->n_pci; i++)
		if (is_selected(d->v, &g->pci[i]))
			d->pci_drawn[i] = true;
	for (size_t i = 0; i < g->n_pci; i++) {
		size_t hops = 0;

		if (!d->pci_drawn[i])
			continue;
		for (int up = g->pci[i].parent; up >= 0 && hops < g->n_pci;
		     up = g->pci[up].parent, hops++)
			d->pci_drawn[up] = true;
		if (g->pci[i].hostbridge >= 0)
			d->hb_drawn[g->pci[i].hostbridge] = true;
	}
	for (size_t h = 0; h < g->n_hostbridges; h++) {
		int numa = g->hostbridges[h].numa;

		/* A one-node machine reports -1: there is nowhere else it could be. */
		if (numa < 0 && g->n_numa == 1)
			numa = g->numa[0].id;
		d->hb_cluster[h] = topo_graph_find_numa(g, numa) >= 0 ? numa : -1;
	}
}

static int pci_cluster(const struct dot *d, int pci)
{
	int hb = d->v->g->pci[pci].hostbridge;

	return hb >= 0 ? d->hb_cluster[hb] : -1;
}

static void put_pci_node(const struct dot *d, int i)
{
	const struct topo_graph *g = d->v->g;
	const struct topo_pci *p = &g->pci[i];
	enum topo_dev_kind k = topo_pci_kind(p);
	const struct topo_device *dev = pci_device(g, i);
	const char *shape = "ellipse", *fill = "white", *extra = NULL;
	char sname[TOPO_NAME_MAX];
	FILE *f = d->f;

	switch (k) {
	case TOPO_DEV_BRIDGE:
		shape = "box";
		fill = "#eeeeee";
		break;
	case TOPO_DEV_GPU:
		fill = "#d9ead3";
		break;
	case TOPO_DEV_ACCEL:
		fill = "#d0e0e3";
		break;
	case TOPO_DEV_NIC:
		fill = "#cfe2f3";
		extra = osdev_name(g, i, "net");
		break;
	case TOPO_DEV_NVME:
		shape = "cylinder";
		fill = "#fce5cd";
		break;
	case TOPO_DEV_MEM:
		shape = "box3d";
		fill = "#fff2cc";
		break;
	default:
		break;
	}
	fprintf(f, "    \"pci:%s\" [shape=%s, style=filled, fillcolor=\"%s\", label=\"", p->bdf,
		shape, fill);
	if (k == TOPO_DEV_BRIDGE || !dev) {
		put_esc(f, p->port == TOPO_PORT_ENDPOINT ? topo_dev_kind_name(k)
							 : topo_port_type_name(p->port));
	} else {
		put_esc(f, dev->alias);
		/* The name is the BDF when the function has no kernel name. */
		if (dev->rdma < 0 && strcmp(dev->name, p->bdf))
			extra = dev->name;
		if (extra) {
			fputs(" (", f);
			put_esc(f, extra);
			fputc(')', f);
		}
	}
	fprintf(f, "\\n%s", p->bdf);
	short_name(p->device_name, sname, sizeof(sname));
	if (sname[0]) {
		fputs("\\n", f);
		put_esc(f, sname);
	}
	fputs("\"];\n", f);
}

static const char *port_state(int state)
{
	switch (state) {
	case 1:
		return "down";
	case 2:
		return "init";
	case 3:
		return "armed";
	case 4:
	case 5:
		return "active";
	default:
		return NULL;
	}
}

static void put_rdma_node(const struct dot *d, size_t r)
{
	const struct topo_rdma *rd = &d->v->g->rdma[r];
	FILE *f = d->f;

	fprintf(f, "    \"rdma%zu\" [shape=hexagon, style=\"%s\", fillcolor=\"#cfe2f3\", label=\"", r,
		rd->soft ? "filled,dashed" : "filled");
	put_esc(f, rd->name);
	if (rd->soft)
		fputs(strncmp(rd->name, "siw", 3) ? "\\n(soft-RoCE)" : "\\n(soft-iWARP)", f);
	if (rd->netdev[0]) {
		fputs("\\nnetdev ", f);
		put_esc(f, rd->netdev);
	}
	for (int p = 0; p < rd->nports && p < TOPO_MAX_PORTS; p++) {
		const struct topo_rdma_port *pt = &rd->ports[p];
		const char *st = port_state(pt->state);

		fprintf(f, "\\nport %d", pt->num);
		if (pt->gbps > 0)
			fprintf(f, " %g Gb/s", pt->gbps);
		if (pt->link_layer[0]) {
			fputc(' ', f);
			put_esc(f, pt->link_layer);
		}
		if (st)
			fprintf(f, " %s", st);
	}
	fputs("\"];\n", f);
}

static void put_numa_cluster(const struct dot *d, const struct topo_numa *n)
{
	const struct topo_graph *g = d->v->g;
	char mem[32];
	FILE *f = d->f;

	mem_str(n->mem_total, mem, sizeof(mem));
	fprintf(f, "  subgraph cluster_node%d {\n    label=\"node%d: ", n->id, n->id);
	if (n->has_cpu && n->cpulist[0]) {
		fputs("cpus ", f);
		put_esc(f, n->cpulist);
	} else {
		fputs("memory only", f);
	}
	if (mem[0])
		fprintf(f, ", %s", mem);
	fputs("\";\n    style=rounded;\n    color=\"#999999\";\n", f);
	fprintf(f, "    \"node%d\" [shape=box, style=\"rounded,filled\", fillcolor=\"#fff2cc\", "
		   "label=\"node%d%s\"];\n",
		n->id, n->id, n->has_cpu ? "" : "\\nmemory only");
	for (size_t h = 0; h < g->n_hostbridges; h++)
		if (d->hb_drawn[h] && d->hb_cluster[h] == n->id) {
			fprintf(f, "    \"hb%zu\" [shape=invtrapezium, style=filled, "
				   "fillcolor=\"#dddddd\", label=\"",
				h);
			put_esc(f, g->hostbridges[h].name);
			fputs("\\nhost bridge\"];\n", f);
		}
	for (size_t i = 0; i < g->n_pci; i++)
		if (d->pci_drawn[i] && pci_cluster(d, (int)i) == n->id)
			put_pci_node(d, (int)i);
	for (size_t r = 0; r < g->n_rdma; r++) {
		int pci = g->rdma[r].pci;

		if (d->rdma_drawn[r] && pci >= 0 && pci_cluster(d, pci) == n->id)
			put_rdma_node(d, r);
	}
	fputs("  }\n", f);
}

/* Everything whose NUMA node is unknown (or names no node we have). */
static void put_outside(const struct dot *d)
{
	const struct topo_graph *g = d->v->g;
	FILE *f = d->f;

	for (size_t h = 0; h < g->n_hostbridges; h++)
		if (d->hb_drawn[h] && d->hb_cluster[h] < 0) {
			fprintf(f, "    \"hb%zu\" [shape=invtrapezium, style=filled, "
				   "fillcolor=\"#dddddd\", label=\"",
				h);
			put_esc(f, g->hostbridges[h].name);
			fputs("\\nhost bridge\\nNUMA node unknown\"];\n", f);
		}
	for (size_t i = 0; i < g->n_pci; i++)
		if (d->pci_drawn[i] && pci_cluster(d, (int)i) < 0)
			put_pci_node(d, (int)i);
	for (size_t r = 0; r < g->n_rdma; r++) {
		int pci = g->rdma[r].pci;

		if (d->rdma_drawn[r] && (pci < 0 || pci_cluster(d, pci) < 0))
			put_rdma_node(d, r);
	}
}

static void put_pci_edge(const struct dot *d, int i)
{
	const struct topo_graph *g = d->v->g;
	const struct topo_pci *p = &g->pci[i];
	double gbps = topo_pci_uplink_gbps(g, i);
	bool down = topo_pci_downtrained(p);
	FILE *f = d->f;

	/* Parent first: dot ranks an edge's tail above its head. */
	if (p->parent >= 0)
		fprintf(f, "  \"pci:%s\" -- \"pci:%s\"", g->pci[p->parent].bdf, p->bdf);
	else if (p->hostbridge >= 0)
		fprintf(f, "  \"hb%d\" -- \"pci:%s\"", p->hostbridge, p->bdf);
	else
		return;
	if (!gbps && !down) {
		fputs(";\n", f);
		return;
	}
	fputs(" [label=\"", f);
	if (gbps > 0)
		fprintf(f, "%.3g GB/s", gbps);
	if (down)
		fprintf(f, "%sdowntrained: %d.%d GT/s x%d", gbps > 0 ? "\\n" : "", p->cur_speed / 10,
			p->cur_speed % 10, p->cur_width);
	fprintf(f, "\"%s];\n", down ? ", style=dashed, color=\"#cc0000\", fontcolor=\"#cc0000\"" : "");
}

static int find_root(int *up, int i)
{
	while (up[i] != i)
		i = up[i] = up[up[i]];
	return i;
}

static void put_fabric_label(FILE *f, const struct topo_fabric *l, int count, double gbps)
{
	if (l->type == TOPO_FABRIC_NVLINK)
		fprintf(f, "NV%d", count);
	else if (count > 1)
		fprintf(f, "XGMI x%d", count);
	else
		fputs("XGMI", f);
	if (gbps > 0)
		fprintf(f, " %.4g GB/s", gbps);
}

/*
 * Fabric links as bold edges. Labels are xlabels: dot gives an ordinary
 * label of an edge within one rank a node of its own, and a clique of GPUs
 * then pushes every GPU away from its switch. NVSwitch-connected GPUs
 * (see topo_fabric_nvswitched()) hang off one "NVSwitch" node per connected group
 * instead of a clique of n*(n-1)/2 edges. None of these edges constrains
 * the ranks, so the PCIe trees keep their shape.
 */
static int put_fabric_edges(const struct dot *d)
{
	const struct topo_graph *g = d->v->g;
	int *up = malloc((g->n_pci + 1) * sizeof(*up)), *cnt = calloc(g->n_pci + 1, sizeof(*cnt));
	double *bw = calloc(g->n_pci + 1, sizeof(*bw));
	bool *sw = calloc(g->n_pci + 1, sizeof(*sw));
	FILE *f = d->f;

	if (!up || !cnt || !bw || !sw) {
		free(up);
		free(cnt);
		free(bw);
		free(sw);
		return -ENOMEM;
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		up[i] = (int)i;
		sw[i] = d->pci_drawn[i] && topo_fabric_nvswitched(g, (int)i);
	}
	for (size_t i = 0; i < g->n_fabric; i++) {
		const struct topo_fabric *l = &g->fabric[i];
		const char *color = l->type == TOPO_FABRIC_NVLINK ? "#76b900" : "#ed1c24";

		if (!d->pci_drawn[l->a] || !d->pci_drawn[l->b])
			continue;
		if (l->type == TOPO_FABRIC_NVLINK && sw[l->a] && sw[l->b]) {
			int ra = find_root(up, l->a), rb = find_root(up, l->b);

			up[ra > rb ? ra : rb] = ra < rb ? ra : rb;
			for (int e = 0; e < 2; e++) {
				int end = e ? l->b : l->a;

				if (l->count > cnt[end])
					cnt[end] = l->count;
				if (l->gbps > bw[end])
					bw[end] = l->gbps;
			}
			continue;
		}
		fprintf(f, "  \"pci:%s\" -- \"pci:%s\" [style=bold, penwidth=2.5, color=\"%s\", "
			   "fontcolor=\"%s\", constraint=false, xlabel=\"",
			g->pci[l->a].bdf, g->pci[l->b].bdf, color, color);
		put_fabric_label(f, l, l->count, l->gbps);
		fputs("\"];\n", f);
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		struct topo_fabric nv = { .type = TOPO_FABRIC_NVLINK };
		int root;

		if (!sw[i] || !cnt[i])
			continue;
		root = find_root(up, (int)i);
		if (root == (int)i)
			fprintf(f, "  \"nvswitch%d\" [shape=box, style=\"rounded,filled,bold\", "
				   "color=\"#76b900\", fillcolor=\"#eaf5d3\", "
				   "label=\"NVSwitch\\n(inferred: NVLink to every peer)\"];\n",
				root);
		fprintf(f, "  \"pci:%s\" -- \"nvswitch%d\" [style=bold, penwidth=2.5, "
			   "color=\"#76b900\", fontcolor=\"#4c7a00\", constraint=false, xlabel=\"",
			g->pci[i].bdf, root);
		put_fabric_label(f, &nv, cnt[i], bw[i]);
		fputs("\"];\n", f);
	}
	free(up);
	free(cnt);
	free(bw);
	free(sw);
	return 0;
}

static int put_edges(const struct dot *d)
{
	const struct topo_graph *g = d->v->g;
	FILE *f = d->f;

	for (size_t h = 0; h < g->n_hostbridges; h++)
		if (d->hb_drawn[h] && d->hb_cluster[h] >= 0)
			fprintf(f, "  \"node%d\" -- \"hb%zu\";\n", d->hb_cluster[h], h);
	for (size_t i = 0; i < g->n_pci; i++)
		if (d->pci_drawn[i])
			put_pci_edge(d, (int)i);
	for (size_t r = 0; r < g->n_rdma; r++) {
		const struct topo_rdma *rd = &g->rdma[r];

		if (d->rdma_drawn[r] && rd->pci >= 0)
			fprintf(f, "  \"pci:%s\" -- \"rdma%zu\"%s;\n", g->pci[rd->pci].bdf, r,
				rd->soft ? " [style=dashed]" : "");
	}
	for (size_t a = 0; a < g->n_numa; a++)
		for (size_t b = a + 1; b < g->n_numa; b++) {
			int dist = topo_numa_distance(g, g->numa[a].id, g->numa[b].id);

			if (dist > 0)
				fprintf(f, "  \"node%d\" -- \"node%d\" [style=dotted, penwidth=2, "
					   "constraint=false, label=\"distance %d\"];\n",
					g->numa[a].id, g->numa[b].id, dist);
		}
	return put_fabric_edges(d);
}

int pmtopo_print_dot(const struct pmtopo_view *v)
{
	const struct topo_graph *g;
	struct dot d = { .v = v };
	int r = 0;

	if (!v || !v->g || !v->out)
		return -EINVAL;
	g = v->g;
	d.f = v->out;
	d.pci_drawn = calloc(g->n_pci + 1, sizeof(bool));
	d.hb_drawn = calloc(g->n_hostbridges + 1, sizeof(bool));
	d.rdma_drawn = calloc(g->n_rdma + 1, sizeof(bool));
	d.hb_cluster = calloc(g->n_hostbridges + 1, sizeof(int));
	if (!d.pci_drawn || !d.hb_drawn || !d.rdma_drawn || !d.hb_cluster) {
		r = -ENOMEM;
		goto out;
	}
	mark(&d);

	fputs("graph machine {\n  graph [label=\"", d.f);
	if (g->hostname[0]) {
		put_esc(d.f, g->hostname);
		fputs(" - ", d.f);
	}
	put_esc(d.f, g->source);
	if (g->emulated)
		fputs(" - EMULATED", d.f);
	fputs("\", labelloc=t, fontsize=16, fontname=\"Helvetica\", newrank=true, "
	      "nodesep=0.3, ranksep=0.5];\n"
	      "  node [fontname=\"Helvetica\", fontsize=10];\n"
	      "  edge [fontname=\"Helvetica\", fontsize=9];\n",
	      d.f);
	for (size_t n = 0; n < g->n_numa; n++)
		put_numa_cluster(&d, &g->numa[n]);
	put_outside(&d);
	r = put_edges(&d);
	fputs("}\n", d.f);
	if (!r && (fflush(d.f) || ferror(d.f)))
		r = -EIO;
out:
	free(d.pci_drawn);
	free(d.hb_drawn);
	free(d.rdma_drawn);
	free(d.hb_cluster);
	return r;
}
