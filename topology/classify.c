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

static double min_gbps(double a, double b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
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

int topo_device_pos(const struct topo_graph *g, int dev, struct topo_pos *out)
{
	const struct topo_device *d;
	int up[TOPO_MAX_DEPTH], n = 0;
	double bw = 0;

	if (dev < 0 || (size_t)dev >= g->n_devices)
		return -EINVAL;
	d = &g->devices[dev];
	out->dev = dev;
	out->pci = d->pci;
	out->kind = d->kind;
	out->numa = d->numa;
	out->depth = 0;
	out->root_gbps = 0;
	out->hostbridge = d->pci >= 0 ? g->pci[d->pci].hostbridge : -1;
	if (d->pci < 0)
		return 0;
	for (int i = d->pci; i >= 0; i = g->pci[i].parent) {
		if (n == TOPO_MAX_DEPTH)
			return -ELOOP;
		up[n++] = i;
	}
	/* up[] runs from the function to the root bus; chain[] the other way. */
	for (int k = 0; k < n; k++) {
		int i = up[k];

		out->chain[n - 1 - k] = i;
		out->sw[n - 1 - k] = switch_of(g, i);
		out->up_gbps[n - 1 - k] = bw; /* links below chain[k] only */
		bw = min_gbps(bw, topo_pci_uplink_gbps(g, i));
	}
	out->depth = n;
	out->root_gbps = bw;
	return 0;
}

/* Distinct switches among the bridges of a path through chain[common]. */
static int count_switches(const struct topo_pos *a, const struct topo_pos *b, int common)
{
	int seen[2 * TOPO_MAX_DEPTH], n = 0;
	const struct topo_pos *side[2] = { a, b };

	for (int s = 0; s < 2; s++)
		for (int k = common + s; k < side[s]->depth; k++) {
			int id = side[s]->sw[k], j;

			for (j = 0; j < n && seen[j] != id; j++)
				;
			if (id >= 0 && j == n)
				seen[n++] = id;
		}
	return n;
}

static void classify_pci_pos(const struct topo_graph *g, const struct topo_pos *a,
			     const struct topo_pos *b, struct topo_path *p)
{
	int common = -1, f;

	/* Chains start on their host bridge's root bus: the common ancestor is
	 * the last entry of their common prefix. */
	if (a->hostbridge == b->hostbridge)
		for (int k = 0; k < a->depth && k < b->depth && a->chain[k] == b->chain[k]; k++)
			common = k;
	if (common >= 0) {
		p->cls = count_switches(a, b, common) <= 1 ? TOPO_CLASS_PIX : TOPO_CLASS_PXB;
		p->gbps = min_gbps(a->up_gbps[common], b->up_gbps[common]);
	} else {
		p->gbps = min_gbps(a->root_gbps, b->root_gbps);
		if (a->hostbridge == b->hostbridge) {
			p->cls = TOPO_CLASS_PHB;
		} else if (a->numa >= 0 && a->numa == b->numa) {
			p->cls = TOPO_CLASS_NODE;
		} else {
			/* Unknown locality on a multi-node machine is not assumed local. */
			p->cls = TOPO_CLASS_SYS;
			p->gbps = min_gbps(p->gbps, g->socket_link_gbps);
		}
	}
	f = g->n_fabric ? topo_fabric_between(g, a->pci, b->pci) : -1;
	if (f >= 0) {
		/* A fabric link beats any PCIe path; the PCIe verdict stays for reference. */
		p->cls = TOPO_CLASS_NV;
		p->fabric_links = g->fabric[f].count;
		p->fabric_type = g->fabric[f].type;
		p->gbps = g->fabric[f].gbps;
	}
}

void topo_classify_pos(const struct topo_graph *g, const struct topo_pos *a,
		       const struct topo_pos *b, struct topo_path *out)
{
	out->cls = TOPO_CLASS_X;
	out->fabric_links = 0;
	out->fabric_type = 0;
	out->gbps = 0;
	if (a->dev == b->dev || (a->pci >= 0 && a->pci == b->pci)) {
		/* One function seen as two devices (a NIC and its RDMA device) is self too. */
		return;
	}
	if (a->kind == TOPO_DEV_NUMA && b->kind == TOPO_DEV_NUMA) {
		out->cls = TOPO_CLASS_SYS;
		out->gbps = g->socket_link_gbps;
	} else if (a->kind == TOPO_DEV_NUMA || b->kind == TOPO_DEV_NUMA) {
		/* A device and a NUMA node: PHB when the device is local to it. */
		const struct topo_pos *dev = a->kind == TOPO_DEV_NUMA ? b : a;
		const struct topo_pos *node = a->kind == TOPO_DEV_NUMA ? a : b;

		out->gbps = dev->root_gbps;
		if (dev->pci >= 0 && dev->numa >= 0 && dev->numa == node->numa) {
			out->cls = TOPO_CLASS_PHB;
		} else {
			out->cls = TOPO_CLASS_SYS;
			out->gbps = min_gbps(out->gbps, g->socket_link_gbps);
		}
	} else if (a->pci < 0 || b->pci < 0) {
		out->cls = TOPO_CLASS_SYS;
	} else {
		classify_pci_pos(g, a, b, out);
	}
}

/* The hop list of a classified pair: up one chain, across, down the other. */
static void add_hops(const struct topo_graph *g, const struct topo_pos *a,
		     const struct topo_pos *b, struct topo_path *p)
{
	int common = -1;

	if (p->cls == TOPO_CLASS_X) {
		if (a->pci >= 0)
			push(p, TOPO_HOP_PCI, a->pci);
		else
			push(p, TOPO_HOP_NUMA, a->numa);
		return;
	}
	if (p->cls == TOPO_CLASS_NV) {
		push(p, TOPO_HOP_PCI, a->pci);
		push(p, TOPO_HOP_FABRIC, topo_fabric_between(g, a->pci, b->pci));
		push(p, TOPO_HOP_PCI, b->pci);
		return;
	}
	if (a->hostbridge == b->hostbridge && a->pci >= 0 && b->pci >= 0)
		for (int k = 0; k < a->depth && k < b->depth && a->chain[k] == b->chain[k]; k++)
			common = k;
	for (int k = a->depth - 1; k >= (common >= 0 ? common : 0); k--)
		push(p, TOPO_HOP_PCI, a->chain[k]);
	if (common < 0) {
		if (a->pci >= 0)
			push(p, TOPO_HOP_HOSTBRIDGE, a->hostbridge);
		if (a->numa >= 0 && (a->kind == TOPO_DEV_NUMA || p->cls != TOPO_CLASS_PHB ||
				     b->kind == TOPO_DEV_NUMA))
			push(p, TOPO_HOP_NUMA, a->numa);
		if (b->numa >= 0 && b->numa != a->numa)
			push(p, TOPO_HOP_NUMA, b->numa);
		if (b->pci >= 0 && (p->cls != TOPO_CLASS_PHB || a->kind == TOPO_DEV_NUMA))
			push(p, TOPO_HOP_HOSTBRIDGE, b->hostbridge);
	}
	for (int k = common >= 0 ? common + 1 : 0; k < b->depth; k++)
		push(p, TOPO_HOP_PCI, b->chain[k]);
}

int topo_classify(const struct topo_graph *g, int da, int db, struct topo_path *out)
{
	struct topo_pos a, b;
	int r;

	if (!g || !out)
		return -EINVAL;
	if ((r = topo_device_pos(g, da, &a)) < 0 || (r = topo_device_pos(g, db, &b)) < 0)
		return r;
	topo_classify_pos(g, &a, &b, out);
	out->nhops = 0;
	out->reason[0] = '\0';
	out->p2p_acs_unknown = false;
	out->p2p = TOPO_P2P_NOT_APPLICABLE;
	out->p2p_distance = -1;
	add_hops(g, &a, &b, out);
	if (a.pci >= 0 && b.pci >= 0)
		return topo_p2pdma(g, a.pci, b.pci, out);
	if (a.kind != TOPO_DEV_NUMA && b.kind != TOPO_DEV_NUMA)
		snprintf(out->reason, sizeof(out->reason), "%s has no PCI function",
			 g->devices[a.pci < 0 ? da : db].name);
	return 0;
}
