/* SPDX-License-Identifier: MIT */
/*
 * Pair classification in the vocabulary of `nvidia-smi topo -m`: X, NV#, PIX,
 * PXB, PHB, NODE, SYS (NET for other machines), with the hops of the path and
 * its bottleneck bandwidth.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "topo.h"

const char *topo_class_name(enum topo_class c)
{
	static const char *const names[] = {
		[TOPO_CLASS_X] = "X",     [TOPO_CLASS_NV] = "NV",     [TOPO_CLASS_PIX] = "PIX",
		[TOPO_CLASS_PXB] = "PXB", [TOPO_CLASS_PHB] = "PHB",   [TOPO_CLASS_NODE] = "NODE",
		[TOPO_CLASS_SYS] = "SYS", [TOPO_CLASS_NET] = "NET",
	};
	return (unsigned)c < sizeof(names) / sizeof(names[0]) ? names[c] : "?";
}

const char *topo_p2p_verdict_name(enum topo_p2p_verdict v)
{
	switch (v) {
	case TOPO_P2P_BUS_ADDR:
		return "direct";
	case TOPO_P2P_THRU_HOST_BRIDGE:
		return "through-host-bridge";
	case TOPO_P2P_NOT_SUPPORTED:
		return "not-supported";
	default:
		return "n/a";
	}
}

void topo_class_cell(const struct topo_path *p, char *buf, size_t len)
{
	if (p->cls == TOPO_CLASS_NV)
		snprintf(buf, len, "%s%d", p->fabric_type == TOPO_FABRIC_XGMI ? "XGMI" : "NV",
			 p->fabric_links);
	else
		snprintf(buf, len, "%s", topo_class_name(p->cls));
}

int topo_hop_name(const struct topo_graph *g, const struct topo_hop *h, char *buf, size_t len)
{
	switch (h->kind) {
	case TOPO_HOP_PCI:
		return snprintf(buf, len, "%s", g->pci[h->index].bdf);
	case TOPO_HOP_HOSTBRIDGE:
		return snprintf(buf, len, "%s", g->hostbridges[h->index].name);
	case TOPO_HOP_NUMA:
		return snprintf(buf, len, "node%d", h->index);
	case TOPO_HOP_FABRIC:
		return snprintf(buf, len, "%s", g->fabric[h->index].type == TOPO_FABRIC_XGMI ?
							"xgmi" : "nvlink");
	}
	return -EINVAL;
}

static void push(struct topo_path *p, enum topo_hop_kind k, int index)
{
	if (p->nhops < TOPO_MAX_HOPS)
		p->hops[p->nhops++] = (struct topo_hop){ k, index };
}

static void limit(struct topo_path *p, double gbps)
{
	if (gbps > 0 && (p->gbps <= 0 || gbps < p->gbps))
		p->gbps = gbps;
}

/* The switch a bridge belongs to, identified by its upstream port; -1 for none. */
static int switch_of(const struct topo_graph *g, int i)
{
	const struct topo_pci *p = &g->pci[i];

	switch (p->port) {
	case TOPO_PORT_SWITCH_UP:
	case TOPO_PORT_PCI_BRIDGE:
		return i;
	case TOPO_PORT_SWITCH_DOWN:
		return p->parent >= 0 && g->pci[p->parent].port == TOPO_PORT_SWITCH_UP ? p->parent : i;
	default:
		return -1;
	}
}

static int chain(const struct topo_graph *g, int pci, int *out, int max)
{
	int n = 0;

	for (int i = pci; i >= 0 && n < max; i = g->pci[i].parent)
		out[n++] = i;
	return n;
}

/* Walks pci up to (not including) stop, adding hops and link limits. */
static void walk_up(const struct topo_graph *g, int pci, int stop, struct topo_path *p)
{
	for (int i = pci; i >= 0 && i != stop; i = g->pci[i].parent) {
		push(p, TOPO_HOP_PCI, i);
		limit(p, topo_pci_uplink_gbps(g, i));
	}
}

/* Same, downwards: hops from just below stop to pci, in order. */
static void walk_down(const struct topo_graph *g, int pci, int stop, struct topo_path *p)
{
	int c[TOPO_MAX_HOPS], n = 0;

	for (int i = pci; i >= 0 && i != stop && n < TOPO_MAX_HOPS; i = g->pci[i].parent)
		c[n++] = i;
	while (n--) {
		push(p, TOPO_HOP_PCI, c[n]);
		limit(p, topo_pci_uplink_gbps(g, c[n]));
	}
}

static int fabric_between(const struct topo_graph *g, int a, int b)
{
	for (size_t i = 0; i < g->n_fabric; i++)
		if ((g->fabric[i].a == a && g->fabric[i].b == b) ||
		    (g->fabric[i].a == b && g->fabric[i].b == a))
			return (int)i;
	return -1;
}

static void classify_pci(const struct topo_graph *g, int a, int b, struct topo_path *p)
{
	int ca[TOPO_MAX_HOPS], cb[TOPO_MAX_HOPS], na, nb, common = -1, sw[TOPO_MAX_HOPS], nsw = 0;
	int ha = g->pci[a].hostbridge, hb = g->pci[b].hostbridge;
	int numa_a = topo_pci_numa(g, a), numa_b = topo_pci_numa(g, b);
	int f;

	na = chain(g, a, ca, TOPO_MAX_HOPS);
	nb = chain(g, b, cb, TOPO_MAX_HOPS);
	for (int i = 0; i < na && common < 0; i++)
		for (int j = 0; j < nb; j++)
			if (ca[i] == cb[j]) {
				common = ca[i];
				break;
			}

	if (common >= 0) {
		walk_up(g, a, common, p);
		push(p, TOPO_HOP_PCI, common);
		walk_down(g, b, common, p);
		/* Count distinct switches among the bridges on the path. */
		for (int h = 0; h < p->nhops; h++) {
			int s = switch_of(g, p->hops[h].index), k;

			for (k = 0; k < nsw && sw[k] != s; k++)
				;
			if (s >= 0 && k == nsw)
				sw[nsw++] = s;
		}
		p->cls = nsw <= 1 ? TOPO_CLASS_PIX : TOPO_CLASS_PXB;
	} else {
		walk_up(g, a, -1, p);
		push(p, TOPO_HOP_HOSTBRIDGE, ha);
		if (ha == hb) {
			p->cls = TOPO_CLASS_PHB;
		} else if (numa_a >= 0 && numa_a == numa_b) {
			p->cls = TOPO_CLASS_NODE;
			push(p, TOPO_HOP_NUMA, numa_a);
			push(p, TOPO_HOP_HOSTBRIDGE, hb);
		} else {
			/* Unknown locality on a multi-node machine is not assumed local. */
			p->cls = TOPO_CLASS_SYS;
			if (numa_a >= 0)
				push(p, TOPO_HOP_NUMA, numa_a);
			if (numa_b >= 0 && numa_b != numa_a)
				push(p, TOPO_HOP_NUMA, numa_b);
			push(p, TOPO_HOP_HOSTBRIDGE, hb);
			limit(p, g->socket_link_gbps);
		}
		walk_down(g, b, -1, p);
	}
	f = fabric_between(g, a, b);
	if (f >= 0) {
		/* A fabric link beats any PCIe path; the PCIe verdict stays for reference. */
		p->cls = TOPO_CLASS_NV;
		p->fabric_links = g->fabric[f].count;
		p->fabric_type = g->fabric[f].type;
		p->gbps = g->fabric[f].gbps;
		p->nhops = 0;
		push(p, TOPO_HOP_PCI, a);
		push(p, TOPO_HOP_FABRIC, f);
		push(p, TOPO_HOP_PCI, b);
	}
}

/* A device and a NUMA node: PHB when the device is local to it, else SYS. */
static void classify_numa(const struct topo_graph *g, int pci, int node, struct topo_path *p)
{
	int local = topo_pci_numa(g, pci);

	walk_up(g, pci, -1, p);
	push(p, TOPO_HOP_HOSTBRIDGE, g->pci[pci].hostbridge);
	if (local >= 0)
		push(p, TOPO_HOP_NUMA, local);
	if (local == node) {
		p->cls = TOPO_CLASS_PHB;
	} else {
		p->cls = TOPO_CLASS_SYS;
		push(p, TOPO_HOP_NUMA, node);
		limit(p, g->socket_link_gbps);
	}
}

/* Matrices classify millions of pairs: no memset of the hop and reason
 * buffers, and the p2pdma walk only when asked for. */
static int classify(const struct topo_graph *g, int da, int db, struct topo_path *out,
		    bool with_p2p)
{
	const struct topo_device *a, *b;

	if (!g || !out || da < 0 || db < 0 || (size_t)da >= g->n_devices ||
	    (size_t)db >= g->n_devices)
		return -EINVAL;
	a = &g->devices[da];
	b = &g->devices[db];
	out->cls = TOPO_CLASS_X;
	out->fabric_links = 0;
	out->fabric_type = 0;
	out->gbps = 0;
	out->nhops = 0;
	out->reason[0] = '\0';
	out->p2p_acs_unknown = false;
	out->p2p = TOPO_P2P_NOT_APPLICABLE;
	out->p2p_distance = -1;

	if (da == db || (a->pci >= 0 && a->pci == b->pci)) {
		/* One function seen as two devices (a NIC and its RDMA device) is self too. */
		out->cls = TOPO_CLASS_X;
		if (a->pci >= 0) {
			push(out, TOPO_HOP_PCI, a->pci);
			return with_p2p ? topo_p2pdma(g, a->pci, b->pci, out) : 0;
		}
		push(out, TOPO_HOP_NUMA, a->numa);
		return 0;
	}
	if (a->kind == TOPO_DEV_NUMA && b->kind == TOPO_DEV_NUMA) {
		out->cls = TOPO_CLASS_SYS;
		push(out, TOPO_HOP_NUMA, a->numa);
		push(out, TOPO_HOP_NUMA, b->numa);
		limit(out, g->socket_link_gbps);
		return 0;
	}
	if (a->kind == TOPO_DEV_NUMA || b->kind == TOPO_DEV_NUMA) {
		const struct topo_device *dev = a->kind == TOPO_DEV_NUMA ? b : a;
		const struct topo_device *node = a->kind == TOPO_DEV_NUMA ? a : b;

		if (dev->pci < 0) {
			out->cls = TOPO_CLASS_SYS;
			snprintf(out->reason, sizeof(out->reason), "%s has no PCI function", dev->name);
			return 0;
		}
		classify_numa(g, dev->pci, node->numa, out);
		return 0;
	}
	if (a->pci < 0 || b->pci < 0) {
		out->cls = TOPO_CLASS_SYS;
		snprintf(out->reason, sizeof(out->reason), "%s has no PCI function",
			 a->pci < 0 ? a->name : b->name);
		return 0;
	}
	classify_pci(g, a->pci, b->pci, out);
	return with_p2p ? topo_p2pdma(g, a->pci, b->pci, out) : 0;
}

int topo_classify(const struct topo_graph *g, int da, int db, struct topo_path *out)
{
	return classify(g, da, db, out, true);
}

int topo_classify_quick(const struct topo_graph *g, int da, int db, struct topo_path *out)
{
	return classify(g, da, db, out, false);
}
