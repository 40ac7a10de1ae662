/* SPDX-License-Identifier: MIT */
/*
 * pmtopo --export nccl-xml: the graph in NCCL's topology XML, the format
 * NCCL_TOPO_FILE reads and NCCL_TOPO_DUMP_FILE writes (NCCL's
 * src/graph/xml.cc: ncclTopoGetXmlFromSys, ncclTopoGetXmlFromCpu,
 * ncclTopoGetXmlFromGpu, ncclTopoFillNet, ncclTopoDumpXmlRec; the reader
 * is ncclTopoAddCpu/AddPci/AddNic/AddNet/AddNvLinks in src/graph/topo.cc).
 *
 * What NCCL does with the file decides what we write:
 *  - It loads the file, then fills in, for its own GPU and NICs only,
 *    every attribute that is missing (from sysfs, cpuid, NVML and its net
 *    plugin) and drops every branch without a GPU or NIC it uses
 *    (ncclTopoTrimXml). So an attribute we cannot know is left out, never
 *    guessed: a wrong value would win over NCCL's own detection.
 *  - Always filled by NCCL, never written here: cpu host_hash (replaced on
 *    load), gpu rank/gdr/keep/mlopart, net dev (overwritten: we number nets
 *    in document order), guid (overwritten with the plugin's), rail, plane,
 *    maxconn, latency, gdr, coll.
 *  - Unknown to pmtopo, left to NCCL: gpu dev (NVML index) and sm (compute
 *    capability), GPUDirect RDMA support, and any cpu/pci attribute the
 *    graph lacks (unknown link speed, CPU vendor).
 *  - A PCIe switch is one <pci> element named by its upstream port; root
 *    ports and downstream ports are not elements (NCCL walks sysfs two
 *    levels at a time). Endpoints nest inside their switch's element.
 *  - A gpu with no <nvlink> child makes NCCL ask NVML, so NVLink is written
 *    only where the graph knows it. Pairwise NVLink counts that add up to
 *    more links than any GPU has (18) mean an NVSwitch fabric, written the
 *    way NCCL writes an NVSwitch it cannot see: one <nvlink> with
 *    tclass 0x068000. XGMI links are written as RCCL's <xgmi>, which NCCL
 *    ignores.
 *  - Soft RDMA devices (rxe, siw) have no PCI function of their own; NCCL
 *    puts such NICs directly under a <cpu>, and so do we (the netdev's
 *    NUMA node when known).
 *  - No <?xml?> declaration: NCCL's parser does not understand one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cpuset.h"
#include "pmtopo.h"

/* NCCL's MAX_STR_LEN: a longer attribute value fails its parse. */
#define NCCL_MAX_VALUE 255

struct nccl {
	const struct pmtopo_view *v;
	FILE *f;
	bool *elem;      /* per pci[]: written as a <pci> element */
	int *elem_up;    /* per pci[]: enclosing element, -1 when directly under a cpu */
	int *order;      /* pci[] indices sorted by BDF */
	int max_cpu;     /* highest CPU number of the machine, -1 unknown */
	int next_net;    /* dev numbers in document order */
	int first_cpu;   /* NUMA id of the first <cpu> */
};

static void put_xml(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '"':
			fputs("&quot;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		default:
			fputc((unsigned char)*s < 0x20 ? ' ' : *s, f);
		}
	}
}

/* Text inside <!-- -->: "--" may not appear there. */
static void put_comment_text(FILE *f, const char *s)
{
	char prev = 0;

	for (; *s; s++) {
		char c = (unsigned char)*s < 0x20 ? ' ' : *s;

		fputc(c == '-' && prev == '-' ? '_' : c, f);
		prev = c;
	}
}

/* NCCL compares and stores bus ids in lower case. */
static void put_busid(FILE *f, const char *bdf)
{
	for (; *bdf; bdf++)
		fputc(tolower((unsigned char)*bdf), f);
}

static int cmp_bdf(const void *a, const void *b, void *arg)
{
	const struct topo_graph *g = arg;

	return strcasecmp(g->pci[*(const int *)a].bdf, g->pci[*(const int *)b].bdf);
}

static bool is_gpu(const struct pmtopo_view *v, int pci)
{
	const struct topo_pci *p = &v->g->pci[pci];

	return !p->removed && (v->kinds & TOPO_DEV_GPU) && topo_pci_kind(p) == TOPO_DEV_GPU;
}

/* RDMA devices NCCL's IB plugin would list on a PCI function of their own. */
static bool rdma_on_pci(const struct pmtopo_view *v, size_t r)
{
	const struct topo_rdma *rd = &v->g->rdma[r];

	return (v->kinds & TOPO_DEV_NIC) && !rd->soft && rd->pci >= 0 && !v->g->pci[rd->pci].removed;
}

static bool rdma_on_cpu(const struct pmtopo_view *v, size_t r)
{
	const struct topo_rdma *rd = &v->g->rdma[r];

	return (v->kinds & TOPO_DEV_NIC) && (rd->soft || rd->pci < 0) &&
	       !(rd->pci >= 0 && v->g->pci[rd->pci].removed);
}

/* Switch upstream ports and conventional bridges stand for a switch. */
static bool is_switch(const struct topo_pci *p)
{
	return p->port == TOPO_PORT_SWITCH_UP || p->port == TOPO_PORT_PCI_BRIDGE;
}

static void mark_device(struct nccl *x, int pci)
{
	const struct topo_graph *g = x->v->g;
	size_t hops = 0;

	x->elem[pci] = true;
	for (int up = g->pci[pci].parent; up >= 0 && hops < g->n_pci; up = g->pci[up].parent, hops++)
		if (is_switch(&g->pci[up]))
			x->elem[up] = true;
}

static void mark(struct nccl *x)
{
	const struct topo_graph *g = x->v->g;

	for (size_t i = 0; i < g->n_pci; i++)
		if (is_gpu(x->v, (int)i))
			mark_device(x, (int)i);
	for (size_t r = 0; r < g->n_rdma; r++)
		if (rdma_on_pci(x->v, r))
			mark_device(x, g->rdma[r].pci);
	for (size_t i = 0; i < g->n_pci; i++) {
		size_t hops = 0;
		int up = g->pci[i].parent;

		while (up >= 0 && !x->elem[up] && hops++ < g->n_pci)
			up = g->pci[up].parent;
		x->elem_up[i] = up;
	}
}

/* The NUMA node NCCL would read for a top-level element: the function's
 * numa_node, else its host bridge's; a one-node machine has only one. */
static int elem_numa(const struct topo_graph *g, int pci)
{
	int n = topo_pci_numa(g, pci), hb = g->pci[pci].hostbridge;

	if (n < 0 && hb >= 0)
		n = g->hostbridges[hb].numa;
	if (n < 0 && g->n_numa == 1)
		n = g->numa[0].id;
	return n >= 0 && topo_graph_find_numa(g, n) >= 0 ? n : -1;
}

/* Where a NIC without a PCI function of its own goes: its netdev's node when
 * known, else the first <cpu> (NCCL attaches virtual NICs to the first one). */
static int cpu_of_rdma(const struct nccl *x, size_t r)
{
	int pci = x->v->g->rdma[r].pci, n = pci >= 0 ? elem_numa(x->v->g, pci) : -1;

	return n >= 0 ? n : x->first_cpu;
}

static int first_cpu(const struct nccl *x)
{
	const struct topo_graph *g = x->v->g;
	int first = -1;

	for (size_t i = 0; i < g->n_pci; i++) {
		int n = x->elem[i] && x->elem_up[i] < 0 ? elem_numa(g, (int)i) : -1;

		if (n >= 0 && (first < 0 || n < first))
			first = n;
	}
	if (first < 0 && g->n_numa)
		first = g->numa[0].id;
	return first;
}

/* ---- cpu attributes ---- */

/* Highest CPU in a cpulist, -1 for none or unparsable. */
static int cpulist_max(const char *list, struct cpuset *set)
{
	if (!list[0] || cpuset_parse_list(list, set) < 0)
		return -1;
	for (int w = CPUSET_WORDS - 1; w >= 0; w--)
		if (set->w[w])
			return w * 64 + 63 - __builtin_clzll(set->w[w]);
	return -1;
}

/* sysfs cpumap, which NCCL copies: 32-bit groups as 8 hex digits, highest
 * first, comma-separated; as many groups as the machine's highest CPU needs. */
static void put_affinity(const struct nccl *x, const struct topo_numa *n)
{
	struct cpuset set;
	int groups = x->max_cpu / 32 + 1;

	if (!n->has_cpu || x->max_cpu < 0 || cpulist_max(n->cpulist, &set) < 0 ||
	    groups * 9 - 1 > NCCL_MAX_VALUE)
		return; /* NCCL reads the node's cpumap itself */
	fputs(" affinity=\"", x->f);
	for (int gi = groups - 1; gi >= 0; gi--)
		fprintf(x->f, "%08x%s", (unsigned)(set.w[gi / 2] >> (32 * (gi % 2)) & 0xffffffffu),
			gi ? "," : "");
	fputc('"', x->f);
}

static bool x86_vendor(const char *v)
{
	return !strcmp(v, "GenuineIntel") || !strcmp(v, "AuthenticAMD") ||
	       !strcmp(v, "HygonGenuine") || !strcmp(v, "CentaurHauls");
}

static void put_cpu_open(const struct nccl *x, int numa, int indent)
{
	const struct topo_graph *g = x->v->g;
	const struct topo_cpu_info *c = &g->cpu;
	int ni = numa >= 0 ? topo_graph_find_numa(g, numa) : -1;

	fprintf(x->f, "%*s<cpu numaid=\"%d\"", indent, "", numa);
	if (ni >= 0)
		put_affinity(x, &g->numa[ni]);
	if (x86_vendor(c->vendor)) {
		fputs(" arch=\"x86_64\" vendor=\"", x->f);
		put_xml(x->f, c->vendor);
		fputc('"', x->f);
		/* cpuid's base family plus extended family << 4, as NCCL reads it
		 * (AMD family 0x19 is 0xaf); /proc/cpuinfo shows base + extended. */
		if (c->family >= 0)
			fprintf(x->f, " familyid=\"%d\"",
				c->family >= 0xf ? 0xf + ((c->family - 0xf) << 4) : c->family);
		if (c->model >= 0)
			fprintf(x->f, " modelid=\"%d\"", c->model);
	}
	fputs(">\n", x->f);
}

/* ---- pci, gpu, nic ---- */

static void put_fabric_link(const struct nccl *x, const char *tag, const struct topo_pci *peer,
			    int count, int indent)
{
	fprintf(x->f, "%*s<%s target=\"", indent, "", tag);
	put_busid(x->f, peer->bdf);
	fprintf(x->f, "\" count=\"%d\" tclass=\"0x%06x\"/>\n", count > 0 ? count : 1,
		peer->class_code & 0xffffff);
}

static void put_gpu(const struct nccl *x, int pci, int indent)
{
	const struct topo_graph *g = x->v->g;
	int nv_max = 0, nv_links = 0, xgmi_links = 0;

	for (size_t i = 0; i < g->n_fabric; i++) {
		const struct topo_fabric *l = &g->fabric[i];
		int peer = l->a == pci ? l->b : l->b == pci ? l->a : -1;

		if (peer < 0 || g->pci[peer].removed)
			continue;
		if (l->type == TOPO_FABRIC_XGMI) {
			xgmi_links++;
			continue;
		}
		nv_links++;
		if (l->count > nv_max)
			nv_max = l->count;
	}
	if (!nv_links && !xgmi_links) {
		fprintf(x->f, "%*s<gpu/>\n", indent, "");
		return;
	}
	fprintf(x->f, "%*s<gpu>\n", indent, "");
	if (nv_links && topo_fabric_nvswitched(g, pci)) {
		/* Every peer at the full count: the links go into NVSwitches. */
		fprintf(x->f, "%*s<nvlink target=\"fffffff:ffff:ff\" count=\"%d\" "
			      "tclass=\"0x068000\"/>\n",
			indent + 2, "", nv_max > 0 ? nv_max : TOPO_NVLINK_MAX_PER_GPU);
		nv_links = 0;
	}
	for (size_t i = 0; i < g->n_fabric; i++) {
		const struct topo_fabric *l = &g->fabric[i];
		int peer = l->a == pci ? l->b : l->b == pci ? l->a : -1;

		if (peer < 0 || g->pci[peer].removed)
			continue;
		if (l->type == TOPO_FABRIC_NVLINK && nv_links)
			put_fabric_link(x, "nvlink", &g->pci[peer], l->count, indent + 2);
		else if (l->type == TOPO_FABRIC_XGMI)
			put_fabric_link(x, "xgmi", &g->pci[peer], l->count, indent + 2);
	}
	fprintf(x->f, "%*s</gpu>\n", indent, "");
}

static const struct topo_rdma_port *net_port(const struct topo_rdma *rd)
{
	/* NCCL's IB plugin uses active ports; one net per device here. */
	for (int p = 0; p < rd->nports && p < TOPO_MAX_PORTS; p++)
		if (rd->ports[p].state == 4 || rd->ports[p].state == 5)
			return &rd->ports[p];
	return rd->nports > 0 ? &rd->ports[0] : NULL;
}

static void put_net(struct nccl *x, size_t r, int indent)
{
	const struct topo_rdma *rd = &x->v->g->rdma[r];
	const struct topo_rdma_port *pt = net_port(rd);

	fprintf(x->f, "%*s<net name=\"", indent, "");
	put_xml(x->f, rd->name);
	fprintf(x->f, "\" dev=\"%d\"", x->next_net++);
	if (pt && pt->gbps > 0) /* Mb/s, as ncclNetProperties_t.speed */
		fprintf(x->f, " speed=\"%.0f\"", pt->gbps * 1000);
	if (pt && pt->num > 0)
		fprintf(x->f, " port=\"%d\"", pt->num);
	if (rd->node_guid) /* xmlSetAttrUint64: "%#" PRIx64 */
		fprintf(x->f, " guid=\"0x%llx\"", (unsigned long long)rd->node_guid);
	fputs("/>\n", x->f);
}

static void put_nic_on_pci(struct nccl *x, int pci, int indent)
{
	const struct topo_graph *g = x->v->g;
	bool open = false;

	for (size_t r = 0; r < g->n_rdma; r++) {
		if (!rdma_on_pci(x->v, r) || g->rdma[r].pci != pci)
			continue;
		if (!open)
			fprintf(x->f, "%*s<nic>\n", indent, "");
		open = true;
		put_net(x, r, indent + 2);
	}
	if (open)
		fprintf(x->f, "%*s</nic>\n", indent, "");
}

static void put_pci(struct nccl *x, int pci, int indent)
{
	const struct topo_graph *g = x->v->g;
	const struct topo_pci *p = &g->pci[pci];
	/* NCCL: the lower of this function's and its upstream port's maximum. */
	int speed, width;
	bool children = false;

	topo_pci_uplink_caps(g, pci, &speed, &width);
	fprintf(x->f, "%*s<pci busid=\"", indent, "");
	put_busid(x->f, p->bdf);
	fprintf(x->f, "\" class=\"0x%06x\" vendor=\"0x%04x\" device=\"0x%04x\" "
		      "subsystem_vendor=\"0x%04x\" subsystem_device=\"0x%04x\"",
		p->class_code & 0xffffff, p->vendor, p->device, p->subvendor, p->subdevice);
	if (speed > 0)
		fprintf(x->f, " link_speed=\"%d.%d GT/s PCIe\"", speed / 10, speed % 10);
	if (width > 0)
		fprintf(x->f, " link_width=\"%d\"", width);

	for (size_t k = 0; k < g->n_pci && !children; k++)
		children = x->elem[x->order[k]] && x->elem_up[x->order[k]] == pci;
	for (size_t r = 0; r < g->n_rdma && !children; r++)
		children = rdma_on_pci(x->v, r) && g->rdma[r].pci == pci;
	if (!children && !is_gpu(x->v, pci)) {
		fputs("/>\n", x->f);
		return;
	}
	fputs(">\n", x->f);
	if (is_gpu(x->v, pci))
		put_gpu(x, pci, indent + 2);
	put_nic_on_pci(x, pci, indent + 2);
	for (size_t k = 0; k < g->n_pci; k++) {
		int c = x->order[k];

		if (x->elem[c] && x->elem_up[c] == pci)
			put_pci(x, c, indent + 2);
	}
	fprintf(x->f, "%*s</pci>\n", indent, "");
}

static void put_cpu(struct nccl *x, int numa)
{
	const struct topo_graph *g = x->v->g;
	bool nic = false;

	put_cpu_open(x, numa, 2);
	for (size_t k = 0; k < g->n_pci; k++) {
		int i = x->order[k];

		if (x->elem[i] && x->elem_up[i] < 0 && elem_numa(g, i) == numa)
			put_pci(x, i, 4);
	}
	for (size_t r = 0; r < g->n_rdma; r++) {
		if (!rdma_on_cpu(x->v, r) || cpu_of_rdma(x, r) != numa)
			continue;
		if (!nic)
			fputs("    <nic>\n", x->f);
		nic = true;
		put_net(x, r, 6);
	}
	if (nic)
		fputs("    </nic>\n", x->f);
	fputs("  </cpu>\n", x->f);
}

/* The NUMA ids that get a <cpu>: those holding a device, ascending, -1 last. */
static int collect_cpus(const struct nccl *x, int *ids)
{
	const struct topo_graph *g = x->v->g;
	int n = 0;

	for (size_t k = 0; k < g->n_pci + g->n_rdma; k++) {
		int id;
		bool seen = false;

		if (k < g->n_pci) {
			if (!x->elem[k] || x->elem_up[k] >= 0)
				continue;
			id = elem_numa(g, (int)k);
		} else {
			if (!rdma_on_cpu(x->v, k - g->n_pci))
				continue;
			id = cpu_of_rdma(x, k - g->n_pci);
		}
		for (int j = 0; j < n && !seen; j++)
			seen = ids[j] == id;
		if (!seen)
			ids[n++] = id;
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0; j--) {
			unsigned a = (unsigned)ids[j - 1], b = (unsigned)ids[j]; /* -1 sorts last */

			if (a <= b)
				break;
			ids[j - 1] = (int)b;
			ids[j] = (int)a;
		}
	return n;
}

static void put_header(const struct nccl *x)
{
	const struct topo_graph *g = x->v->g;
	FILE *f = x->f;

	fputs("<!-- NCCL_TOPO_FILE written by pmtopo from ", f);
	put_comment_text(f, g->source);
	if (g->hostname[0]) {
		fputs(" (", f);
		put_comment_text(f, g->hostname);
		fputc(')', f);
	}
	fputs(g->emulated ? ". EMULATED topology: not this machine.\n" : ".\n", f);
	fputs("     NCCL fills in what is missing here from sysfs, cpuid, NVML and its net\n"
	      "     plugin, for its own GPU and NICs, and drops branches it does not use:\n"
	      "     cpu host_hash; gpu dev, sm, rank, gdr and, when a gpu has no nvlink here,\n"
	      "     its NVLinks; net dev, guid, latency, maxconn, gdr, rail, plane.\n"
	      "     pmtopo cannot know CUDA/NVML device numbers, compute capability or\n"
	      "     GPUDirect RDMA support, so they are not written.\n"
	      "     A PCIe switch is one pci element named by its upstream port. -->\n",
	      f);
}

int pmtopo_print_nccl_xml(const struct pmtopo_view *v)
{
	const struct topo_graph *g;
	struct nccl x = { .v = v, .max_cpu = -1 };
	int *cpus = NULL, ncpus, r = 0;

	if (!v || !v->g || !v->out)
		return -EINVAL;
	g = v->g;
	x.f = v->out;
	x.elem = calloc(g->n_pci + 1, sizeof(*x.elem));
	x.elem_up = calloc(g->n_pci + 1, sizeof(*x.elem_up));
	x.order = calloc(g->n_pci + 1, sizeof(*x.order));
	cpus = calloc(g->n_pci + g->n_rdma + 1, sizeof(*cpus));
	if (!x.elem || !x.elem_up || !x.order || !cpus) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < g->n_pci; i++)
		x.order[i] = (int)i;
	qsort_r(x.order, g->n_pci, sizeof(*x.order), cmp_bdf, (void *)g);
	for (size_t n = 0; n < g->n_numa; n++) {
		struct cpuset set;
		int max = g->numa[n].has_cpu ? cpulist_max(g->numa[n].cpulist, &set) : -1;

		if (max > x.max_cpu)
			x.max_cpu = max;
	}
	mark(&x);
	x.first_cpu = first_cpu(&x);
	ncpus = collect_cpus(&x, cpus);

	put_header(&x);
	fputs("<system version=\"1\">\n", x.f);
	for (int c = 0; c < ncpus; c++)
		put_cpu(&x, cpus[c]);
	fputs("</system>\n", x.f);
	if (fflush(x.f) || ferror(x.f))
		r = -EIO;
out:
	free(x.elem);
	free(x.elem_up);
	free(x.order);
	free(cpus);
	return r;
}
