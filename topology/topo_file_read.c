/* SPDX-License-Identifier: MIT */
/*
 * Topology file JSON -> graph (docs/topology-format.md). Strict on purpose:
 * files are written by hand, so an unknown key is a typo, a dangling BDF a
 * copy-paste slip, and both are reported with the JSON path that holds them
 * rather than turned into a wrong topology. Member access and its checks are
 * topo_file_field.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "topo.h"
#include "topo_file_int.h"

static const char *const top_keys[] = {
	"format", "version", "emulated", "hostname", "source", "cpu", "socket_link_gbps",
	"numa", "hostbridges", "pci", "rdma", "osdevs", "fabric",
	/* Derived by `pmtopo --json`; recomputed from the rest, so ignored here. */
	"devices", "pairs", "peer_groups", NULL
};
static const char *const cpu_keys[] = { "vendor", "family", "model", NULL };
static const char *const numa_keys[] = {
	"id", "cpus", "mem_bytes", "has_cpu", "distances", "hmat", NULL
};
static const char *const hmat_keys[] = {
	"read_bw_mbps", "write_bw_mbps", "read_lat_ns", "write_lat_ns", "initiators", NULL
};
static const char *const hb_keys[] = { "name", "numa", "root_vendor", "root_device", NULL };
static const char *const pci_keys[] = {
	"bdf", "vendor", "device", "subvendor", "subdevice", "class", "vendor_name",
	"device_name", "driver", "numa", "iommu_group", "link", "parent", "hostbridge",
	"physfn", "port", "port_from_caps", "acs_ctrl", "bars", "local_cpus", NULL
};
static const char *const link_keys[] = {
	"cur_speed", "cur_width", "max_speed", "max_width", NULL
};
static const char *const bar_keys[] = { "index", "size", "prefetch", "is64", NULL };
static const char *const rdma_keys[] = {
	"name", "pci", "netdev", "soft", "node_guid", "ports", NULL
};
static const char *const port_keys[] = { "num", "state", "link_layer", "rate", "gbps", NULL };
static const char *const osdev_keys[] = { "name", "class", "pci", NULL };
static const char *const fabric_keys[] = { "a", "b", "type", "count", "gbps", NULL };

static int read_cpu(struct topo_file_rd *rd, struct json_object *root)
{
	struct json_object *o;
	int r = topo_file_get_member(rd, root, "", "cpu", json_type_object, 0, &o);

	if (r <= 0)
		return r;
	if ((r = topo_file_check_keys(rd, o, "cpu", cpu_keys)) < 0 ||
	    (r = topo_file_get_string(rd, o, "cpu", "vendor", 0, rd->g->cpu.vendor,
				      sizeof(rd->g->cpu.vendor))) < 0 ||
	    (r = topo_file_get_int(rd, o, "cpu", "family", 0, -1, INT_MAX,
				   &rd->g->cpu.family)) < 0 ||
	    (r = topo_file_get_int(rd, o, "cpu", "model", 0, -1, INT_MAX, &rd->g->cpu.model)) < 0)
		return r;
	return 0;
}

static int read_hmat(struct topo_file_rd *rd, struct json_object *el, const char *path,
		     struct topo_hmat *h)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	struct json_object *o, *ini;
	uint64_t v;
	int r = topo_file_get_member(rd, el, path, "hmat", json_type_object, F_NULL, &o);

	if (r <= 0 || !o)
		return r;
	topo_file_path_key(p, path, "hmat");
	if ((r = topo_file_check_keys(rd, o, p, hmat_keys)) < 0)
		return r;
	h->present = true;
	if ((r = topo_file_get_u64(rd, o, p, "read_bw_mbps", 0, UINT32_MAX, &v)) < 0)
		return r;
	h->read_bw = r ? (uint32_t)v : 0;
	if ((r = topo_file_get_u64(rd, o, p, "write_bw_mbps", 0, UINT32_MAX, &v)) < 0)
		return r;
	h->write_bw = r ? (uint32_t)v : 0;
	if ((r = topo_file_get_u64(rd, o, p, "read_lat_ns", 0, UINT32_MAX, &v)) < 0)
		return r;
	h->read_lat = r ? (uint32_t)v : 0;
	if ((r = topo_file_get_u64(rd, o, p, "write_lat_ns", 0, UINT32_MAX, &v)) < 0)
		return r;
	h->write_lat = r ? (uint32_t)v : 0;
	if ((r = topo_file_get_member(rd, o, p, "initiators", json_type_array, 0, &ini)) <= 0)
		return r;
	topo_file_path_key(q, p, "initiators");
	for (size_t i = 0; i < json_object_array_length(ini); i++) {
		struct json_object *n = json_object_array_get_idx(ini, i);
		char e[TOPO_FILE_PATHLEN];
		int64_t id;

		topo_file_path_index(e, q, i);
		if (!json_object_is_type(n, json_type_int))
			return topo_file_invalid(rd, e, "expected an integer, got %s",
						 topo_file_type_name(json_object_get_type(n)));
		id = json_object_get_int64(n);
		/* The mask is 64 bits wide: a node id is a bit number. */
		if (id < 0 || id > 63)
			return topo_file_invalid(rd, e, "node %" PRId64 " is out of range 0..63",
						 id);
		if (topo_graph_find_numa(rd->g, (int)id) < 0)
			return topo_file_invalid(rd, e, "no NUMA node %" PRId64, id);
		h->initiators |= 1ull << id;
	}
	return 0;
}

static int read_distances(struct topo_file_rd *rd, struct json_object *el, const char *path,
			  size_t i)
{
	struct topo_graph *g = rd->g;
	char p[TOPO_FILE_PATHLEN], e[TOPO_FILE_PATHLEN];
	struct json_object *d;
	int r = topo_file_get_member(rd, el, path, "distances", json_type_array, 0, &d);

	if (r <= 0)
		return r;
	topo_file_path_key(p, path, "distances");
	if (json_object_array_length(d) != g->n_numa)
		return topo_file_invalid(rd, p, "expected %zu values (one per NUMA node), got %zu",
					 g->n_numa, json_object_array_length(d));
	for (size_t j = 0; j < g->n_numa; j++) {
		struct json_object *n = json_object_array_get_idx(d, j);
		int64_t v;

		topo_file_path_index(e, p, j);
		if (!json_object_is_type(n, json_type_int))
			return topo_file_invalid(rd, e, "expected an integer, got %s",
						 topo_file_type_name(json_object_get_type(n)));
		v = json_object_get_int64(n);
		/* SLIT distances are a byte; -1 is "unknown". */
		if (v < -1 || v > 255)
			return topo_file_invalid(rd, e, "%" PRId64 " is out of range -1..255", v);
		g->numa_dist[i * g->n_numa + j] = (int)v;
	}
	return 0;
}

static int read_numa(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *arr, *el;
	size_t n;
	int r = topo_file_get_member(rd, root, "", "numa", json_type_array, F_REQ, &arr);

	if (r < 0)
		return r;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		struct topo_numa nd = { 0 };
		bool has_cpu;

		if ((r = topo_file_get_element(rd, arr, i, "numa", numa_keys, p, &el)) < 0 ||
		    (r = topo_file_get_int(rd, el, p, "id", F_REQ, 0, INT_MAX, &nd.id)) < 0 ||
		    (r = topo_file_get_cpulist(rd, el, p, "cpus", nd.cpulist,
					       sizeof(nd.cpulist))) < 0 ||
		    (r = topo_file_get_u64(rd, el, p, "mem_bytes", 0, UINT64_MAX,
					   &nd.mem_total)) < 0 ||
		    (r = topo_file_get_bool(rd, el, p, "has_cpu", 0, &has_cpu)) < 0)
			return r;
		nd.has_cpu = r ? has_cpu : nd.cpulist[0] != '\0';
		r = topo_graph_add_numa(rd->g, &nd);
		if (r == -EEXIST)
			return topo_file_invalid(rd, topo_file_path_key(p, p, "id"),
						 "duplicate NUMA node %d", nd.id);
		if (r < 0)
			return topo_file_oom(rd);
	}
	if (topo_graph_set_numa_count(rd->g) < 0)
		return topo_file_oom(rd);
	/* Distances and HMAT initiators name other nodes: read once all exist. */
	for (size_t i = 0; i < n; i++) {
		el = json_object_array_get_idx(arr, i);
		topo_file_path_index(p, "numa", i);
		if ((r = read_distances(rd, el, p, i)) < 0 ||
		    (r = read_hmat(rd, el, p, &rd->g->numa[i].access0)) < 0)
			return r;
	}
	return 0;
}

static int read_hostbridges(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	struct json_object *arr, *el;
	size_t n;
	int r = topo_file_get_member(rd, root, "", "hostbridges", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		struct topo_hostbridge hb = { .numa = -1 };
		uint64_t v = 0;

		if ((r = topo_file_get_element(rd, arr, i, "hostbridges", hb_keys, p, &el)) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "name", F_REQ, hb.name,
					      sizeof(hb.name))) < 0)
			return r;
		if (!topo_parse_hostbridge(hb.name, &hb.domain, &hb.bus))
			return topo_file_invalid(rd, topo_file_path_key(q, p, "name"),
						 "expected \"pciDDDD:BB\", got \"%s\"", hb.name);
		/* Store the kernel's spelling whatever case the file used. */
		snprintf(hb.name, sizeof(hb.name), "pci%04x:%02x", hb.domain, hb.bus);
		for (size_t j = 0; j < rd->g->n_hostbridges; j++)
			if (!strcmp(rd->g->hostbridges[j].name, hb.name))
				return topo_file_invalid(
					rd, topo_file_path_key(q, p, "name"),
					"duplicate host bridge %s (also hostbridges[%zu])", hb.name,
					j);
		if ((r = topo_file_get_numa_ref(rd, el, p, &hb.numa)) < 0)
			return r;
		/* Absent or 0: topo_graph_finalize() derives them from the root bus. */
		if ((r = topo_file_get_hex(rd, el, p, "root_vendor", 0, 0xffff, &v)) < 0)
			return r;
		hb.root_vendor = (uint16_t)v;
		v = 0;
		if ((r = topo_file_get_hex(rd, el, p, "root_device", 0, 0xffff, &v)) < 0)
			return r;
		hb.root_device = (uint16_t)v;
		if (topo_graph_add_hostbridge(rd->g, &hb) < 0)
			return topo_file_oom(rd);
	}
	return 0;
}

static int find_hostbridge(const struct topo_graph *g, const char *name)
{
	uint32_t dom;
	uint8_t bus;

	if (!topo_parse_hostbridge(name, &dom, &bus))
		return -EINVAL;
	for (size_t i = 0; i < g->n_hostbridges; i++)
		if (g->hostbridges[i].domain == dom && g->hostbridges[i].bus == bus)
			return (int)i;
	return -ENOENT;
}

static int read_link(struct topo_file_rd *rd, struct json_object *el, const char *path,
		     struct topo_pci *p)
{
	static const char *const speeds[] = { "cur_speed", "max_speed" };
	int *speed_out[] = { &p->cur_speed, &p->max_speed };
	char q[TOPO_FILE_PATHLEN], e[TOPO_FILE_PATHLEN];
	struct json_object *o, *v;
	int r = topo_file_get_member(rd, el, path, "link", json_type_object, 0, &o);

	if (r <= 0)
		return r;
	topo_file_path_key(q, path, "link");
	if ((r = topo_file_check_keys(rd, o, q, link_keys)) < 0 ||
	    (r = topo_file_get_int(rd, o, q, "cur_width", 0, 0, 32, &p->cur_width)) < 0 ||
	    (r = topo_file_get_int(rd, o, q, "max_width", 0, 0, 32, &p->max_width)) < 0)
		return r;
	for (int k = 0; k < 2; k++) {
		double gts;

		if (!json_object_object_get_ex(o, speeds[k], &v))
			continue;
		topo_file_path_key(e, q, speeds[k]);
		if (json_object_is_type(v, json_type_string)) {
			const char *s = json_object_get_string(v);
			char *end;

			if (!strcmp(s, "unknown") || !strcmp(s, "Unknown")) {
				*speed_out[k] = 0;
				continue;
			}
			gts = strtod(s, &end);
			/* sysfs: "8.0 GT/s PCIe" since Linux 5.6, "8 GT/s" before. */
			if (end == s || (strcmp(end, " GT/s") && strcmp(end, " GT/s PCIe")))
				return topo_file_invalid(rd, e,
							 "expected \"N.N GT/s\", a number or "
							 "\"unknown\", got \"%.32s\"",
							 s);
		} else if (json_object_is_type(v, json_type_int) ||
			   json_object_is_type(v, json_type_double)) {
			gts = json_object_get_double(v);
		} else {
			return topo_file_invalid(rd, e, "expected a string or a number, got %s",
						 topo_file_type_name(json_object_get_type(v)));
		}
		/* Stored in 0.1 GT/s: 2.5 GT/s is 25. */
		if (!isfinite(gts) || gts < 0 || gts > 1000 ||
		    gts * 10 - (int)(gts * 10 + 0.5) > 1e-6 ||
		    (int)(gts * 10 + 0.5) - gts * 10 > 1e-6)
			return topo_file_invalid(
				rd, e, "%g GT/s is not a multiple of 0.1 GT/s in 0..1000", gts);
		*speed_out[k] = (int)(gts * 10 + 0.5);
	}
	return 0;
}

static int read_bars(struct topo_file_rd *rd, struct json_object *el, const char *path,
		     struct topo_pci *p)
{
	char q[TOPO_FILE_PATHLEN], e[TOPO_FILE_PATHLEN], f[TOPO_FILE_PATHLEN];
	struct json_object *arr, *b;
	unsigned seen = 0;
	int r = topo_file_get_member(rd, el, path, "bars", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	topo_file_path_key(q, path, "bars");
	if (json_object_array_length(arr) > TOPO_MAX_BARS)
		return topo_file_invalid(rd, q, "%zu BARs, a function has at most %d",
					 json_object_array_length(arr), TOPO_MAX_BARS);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct topo_bar *bar = &p->bars[p->nbars];
		int idx = 0;

		if ((r = topo_file_get_element(rd, arr, i, q, bar_keys, e, &b)) < 0 ||
		    (r = topo_file_get_int(rd, b, e, "index", F_REQ, 0, TOPO_MAX_BARS - 1,
					   &idx)) < 0 ||
		    (r = topo_file_get_u64(rd, b, e, "size", F_REQ, UINT64_MAX, &bar->size)) < 0 ||
		    (r = topo_file_get_bool(rd, b, e, "prefetch", 0, &bar->prefetch)) < 0 ||
		    (r = topo_file_get_bool(rd, b, e, "is64", 0, &bar->is64)) < 0)
			return r;
		if (seen & 1u << idx)
			return topo_file_invalid(rd, topo_file_path_key(f, e, "index"),
						 "duplicate BAR %d", idx);
		seen |= 1u << idx;
		bar->index = (uint8_t)idx;
		p->nbars++;
	}
	return 0;
}

static int read_port_type(struct topo_file_rd *rd, struct json_object *el, const char *path,
			  struct topo_pci *p)
{
	char q[TOPO_FILE_PATHLEN], s[32];
	bool caps;
	int r = topo_file_get_string(rd, el, path, "port", 0, s, sizeof(s)), given = r;

	if (r < 0)
		return r;
	if (given) {
		for (r = TOPO_PORT_ENDPOINT; r <= TOPO_PORT_PCI_BRIDGE; r++)
			if (!strcmp(s, topo_port_type_name((enum topo_port_type)r)))
				break;
		if (r > TOPO_PORT_PCI_BRIDGE)
			return topo_file_invalid(rd, topo_file_path_key(q, path, "port"),
						 "\"%s\" is not endpoint, root-port, "
						 "switch-upstream, switch-downstream or pci-bridge",
						 s);
		p->port = (enum topo_port_type)r;
	}
	/* A port written by hand is meant; without one, infer it from the tree. */
	if ((r = topo_file_get_bool(rd, el, path, "port_from_caps", 0, &caps)) < 0)
		return r;
	p->port_from_caps = r ? caps : given > 0;
	return 0;
}

/* Everything but the references to other functions (parent, physfn), which may come later. */
static int read_pci_fields(struct topo_file_rd *rd, struct json_object *el, const char *path,
			   struct topo_pci *p, bool *hb_given)
{
	char q[TOPO_FILE_PATHLEN], s[TOPO_NAME_MAX];
	struct json_object *par = NULL;
	uint64_t v;
	int r;

	if ((r = topo_file_get_string(rd, el, path, "bdf", F_REQ, s, sizeof(s))) < 0)
		return r;
	if (!topo_parse_bdf(s, true, &p->domain, &p->bus, &p->dev, &p->fn))
		return topo_file_invalid(rd, topo_file_path_key(q, path, "bdf"),
					 "not a PCI address (DDDD:BB:DD.F): \"%s\"", s);
	snprintf(p->bdf, sizeof(p->bdf), "%04x:%02x:%02x.%x", p->domain, p->bus, p->dev, p->fn);
	if ((r = topo_file_get_hex(rd, el, path, "vendor", F_REQ, 0xffff, &v)) < 0)
		return r;
	p->vendor = (uint16_t)v;
	if ((r = topo_file_get_hex(rd, el, path, "device", F_REQ, 0xffff, &v)) < 0)
		return r;
	p->device = (uint16_t)v;
	v = 0;
	if ((r = topo_file_get_hex(rd, el, path, "subvendor", 0, 0xffff, &v)) < 0)
		return r;
	p->subvendor = (uint16_t)v;
	v = 0;
	if ((r = topo_file_get_hex(rd, el, path, "subdevice", 0, 0xffff, &v)) < 0)
		return r;
	p->subdevice = (uint16_t)v;
	if ((r = topo_file_get_hex(rd, el, path, "class", F_REQ, 0xffffff, &v)) < 0)
		return r;
	p->class_code = (uint32_t)v;
	if ((r = topo_file_get_string(rd, el, path, "vendor_name", 0, p->vendor_name,
				      sizeof(p->vendor_name))) < 0 ||
	    (r = topo_file_get_string(rd, el, path, "device_name", 0, p->device_name,
				      sizeof(p->device_name))) < 0 ||
	    (r = topo_file_get_string(rd, el, path, "driver", 0, p->driver,
				      sizeof(p->driver))) < 0 ||
	    (r = topo_file_get_numa_ref(rd, el, path, &p->numa)) < 0 ||
	    (r = topo_file_get_int(rd, el, path, "iommu_group", 0, -1, INT_MAX,
				   &p->iommu_group)) < 0 ||
	    (r = read_link(rd, el, path, p)) < 0 || (r = read_port_type(rd, el, path, p)) < 0 ||
	    (r = topo_file_get_member(rd, el, path, "acs_ctrl", json_type_int, F_NULL, &par)) < 0 ||
	    (r > 0 && par &&
	     (r = topo_file_get_int(rd, el, path, "acs_ctrl", 0, 0, 0xffff, &p->acs_ctrl)) < 0) ||
	    (r = read_bars(rd, el, path, p)) < 0 ||
	    (r = topo_file_get_cpulist(rd, el, path, "local_cpus", p->local_cpus,
				       sizeof(p->local_cpus))) < 0)
		return r;

	/* The host bridge: given, or inherited from the parent (resolved later). */
	*hb_given = false;
	if ((r = topo_file_get_member(rd, el, path, "hostbridge", json_type_string, F_NULL,
				      &par)) < 0)
		return r;
	if (r > 0 && par) {
		const struct topo_hostbridge *hb;

		if ((r = topo_file_get_string(rd, el, path, "hostbridge", 0, s, sizeof(s))) < 0)
			return r;
		p->hostbridge = find_hostbridge(rd->g, s);
		if (p->hostbridge == -EINVAL)
			return topo_file_invalid(rd, topo_file_path_key(q, path, "hostbridge"),
						 "expected \"pciDDDD:BB\", got \"%s\"", s);
		if (p->hostbridge < 0)
			return topo_file_invalid(rd, topo_file_path_key(q, path, "hostbridge"),
						 "no host bridge %s", s);
		hb = &rd->g->hostbridges[p->hostbridge];
		if (hb->domain != p->domain)
			return topo_file_invalid(rd, topo_file_path_key(q, path, "bdf"),
						 "domain %04x is not host bridge %s's", p->domain,
						 hb->name);
		*hb_given = true;
		return 0;
	}
	if (!json_object_object_get_ex(el, "parent", &par) || !par)
		return topo_file_invalid(rd, topo_file_path_key(q, path, "hostbridge"),
					 "missing (required when parent is null)");
	return 0;
}

static bool is_bridge_class(uint32_t class_code)
{
	/* PCI-to-PCI bridge, and the subtractive-decode kind. */
	return (class_code >> 8) == 0x0604 || (class_code >> 8) == 0x0609;
}

static int resolve_pci_refs(struct topo_file_rd *rd, struct json_object *arr)
{
	struct topo_graph *g = rd->g;
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	int r;

	for (size_t i = 0; i < g->n_pci; i++) {
		struct json_object *el = json_object_array_get_idx(arr, i);
		struct topo_pci *f = &g->pci[i];

		topo_file_path_index(p, "pci", i);
		if ((r = topo_file_get_pci_ref(rd, el, p, "parent", F_NULL, &f->parent)) < 0 ||
		    (r = topo_file_get_pci_ref(rd, el, p, "physfn", F_NULL, &f->physfn)) < 0)
			return r;
		if ((size_t)f->parent == i)
			return topo_file_invalid(rd, topo_file_path_key(q, p, "parent"),
						 "is the function itself");
		if ((size_t)f->physfn == i)
			return topo_file_invalid(rd, topo_file_path_key(q, p, "physfn"),
						 "is the function itself");
		if (f->parent >= 0 && !is_bridge_class(g->pci[f->parent].class_code))
			return topo_file_invalid(rd, topo_file_path_key(q, p, "parent"),
						 "%s is not a PCI bridge (class 0x%06x)",
						 g->pci[f->parent].bdf,
						 g->pci[f->parent].class_code);
	}
	/* A loop would send every walk up the tree round forever: the parent
	 * chain, and a VF's way up through its PF (p2pdma walks that one). */
	for (size_t i = 0; i < g->n_pci; i++) {
		size_t steps = 0;

		for (int a = g->pci[i].parent; a >= 0; a = g->pci[a].parent)
			if (++steps > g->n_pci)
				return topo_file_invalid(
					rd,
					topo_file_path_key(q, topo_file_path_index(p, "pci", i),
							   "parent"),
					"the parent chain of %s loops", g->pci[i].bdf);
		if (topo_pci_upstream_loop(g, (int)i) >= 0)
			return topo_file_invalid(
				rd,
				topo_file_path_key(q, topo_file_path_index(p, "pci", i), "physfn"),
				"the way up from %s through PFs and parents loops", g->pci[i].bdf);
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		struct topo_pci *f = &g->pci[i];
		const struct topo_hostbridge *hb;
		int a = (int)i;

		while (!rd->hb_explicit[a])
			a = g->pci[a].parent; /* roots always name theirs */
		f->hostbridge = g->pci[a].hostbridge;
		/* read_pci_fields() checked the domain of a named host bridge; an
		 * inherited one must match too, or the dump (which names every
		 * function's host bridge) would not load again. */
		hb = &g->hostbridges[f->hostbridge];
		if (!rd->hb_explicit[i] && hb->domain != f->domain)
			return topo_file_invalid(
				rd, topo_file_path_key(q, topo_file_path_index(p, "pci", i), "bdf"),
				"domain %04x is not host bridge %s's (inherited from parent %s)",
				f->domain, hb->name, g->pci[f->parent].bdf);
	}
	for (size_t i = 0; i < g->n_pci; i++) {
		const struct topo_pci *f = &g->pci[i];

		if (f->parent >= 0 && f->hostbridge != g->pci[f->parent].hostbridge)
			return topo_file_invalid(
				rd,
				topo_file_path_key(q, topo_file_path_index(p, "pci", i),
						   "hostbridge"),
				"%s, but parent %s is below %s", g->hostbridges[f->hostbridge].name,
				g->pci[f->parent].bdf,
				g->hostbridges[g->pci[f->parent].hostbridge].name);
	}
	return 0;
}

static int read_pci(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	struct json_object *arr, *el;
	size_t n;
	int r = topo_file_get_member(rd, root, "", "pci", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	n = json_object_array_length(arr);
	rd->hb_explicit = calloc(n ? n : 1, sizeof(*rd->hb_explicit));
	if (!rd->hb_explicit)
		return topo_file_oom(rd);
	for (size_t i = 0; i < n; i++) {
		struct topo_pci f;
		int dup;

		topo_pci_init(&f);
		if ((r = topo_file_get_element(rd, arr, i, "pci", pci_keys, p, &el)) < 0 ||
		    (r = read_pci_fields(rd, el, p, &f, &rd->hb_explicit[i])) < 0)
			return r;
		dup = topo_graph_find_pci(rd->g, f.domain, f.bus, f.dev, f.fn);
		if (dup >= 0)
			return topo_file_invalid(rd, topo_file_path_key(q, p, "bdf"),
						 "duplicate PCI function %s (also pci[%d])", f.bdf,
						 dup);
		if (topo_graph_add_pci(rd->g, &f) < 0)
			return topo_file_oom(rd);
	}
	return resolve_pci_refs(rd, arr);
}

static int read_ports(struct topo_file_rd *rd, struct json_object *el, const char *path,
		      struct topo_rdma *rdma)
{
	char q[TOPO_FILE_PATHLEN], e[TOPO_FILE_PATHLEN], f[TOPO_FILE_PATHLEN], st[32];
	struct json_object *arr, *o;
	int r = topo_file_get_member(rd, el, path, "ports", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	topo_file_path_key(q, path, "ports");
	if (json_object_array_length(arr) > TOPO_MAX_PORTS)
		return topo_file_invalid(rd, q, "%zu ports, at most %d are kept",
					 json_object_array_length(arr), TOPO_MAX_PORTS);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct topo_rdma_port *pt = &rdma->ports[i];

		if ((r = topo_file_get_element(rd, arr, i, q, port_keys, e, &o)) < 0 ||
		    (r = topo_file_get_int(rd, o, e, "num", F_REQ, 1, 255, &pt->num)) < 0)
			return r;
		for (size_t j = 0; j < i; j++)
			if (rdma->ports[j].num == pt->num)
				return topo_file_invalid(rd, topo_file_path_key(f, e, "num"),
							 "duplicate port %d", pt->num);
		if ((r = topo_file_get_string(rd, o, e, "state", 0, st, sizeof(st))) < 0)
			return r;
		if (r > 0 && (pt->state = topo_file_port_state_parse(st)) < 0)
			return topo_file_invalid(
				rd, topo_file_path_key(f, e, "state"),
				"\"%s\" is not DOWN, INIT, ARMED, ACTIVE, ACTIVE_DEFER or unknown",
				st);
		if ((r = topo_file_get_string(rd, o, e, "link_layer", 0, pt->link_layer,
					      sizeof(pt->link_layer))) < 0 ||
		    (r = topo_file_get_string(rd, o, e, "rate", 0, pt->rate,
					      sizeof(pt->rate))) < 0 ||
		    (r = topo_file_get_double(rd, o, e, "gbps", 0, &pt->gbps)) < 0)
			return r;
		/* Hand-written files may give only sysfs's rate: "400 Gb/sec (4X NDR)". */
		if (!r && pt->rate[0]) {
			double g = strtod(pt->rate, NULL);

			pt->gbps = isfinite(g) && g > 0 ? g : 0;
		}
		rdma->nports++;
	}
	return 0;
}

static int read_rdma(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	struct json_object *arr, *el;
	int r = topo_file_get_member(rd, root, "", "rdma", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct topo_rdma rdma = { .pci = -1 };

		if ((r = topo_file_get_element(rd, arr, i, "rdma", rdma_keys, p, &el)) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "name", F_REQ, rdma.name,
					      sizeof(rdma.name))) < 0)
			return r;
		if (!rdma.name[0])
			return topo_file_invalid(rd, topo_file_path_key(q, p, "name"), "empty");
		for (size_t j = 0; j < rd->g->n_rdma; j++)
			if (!strcmp(rd->g->rdma[j].name, rdma.name))
				return topo_file_invalid(
					rd, topo_file_path_key(q, p, "name"),
					"duplicate RDMA device %s (also rdma[%zu])", rdma.name, j);
		if ((r = topo_file_get_pci_ref(rd, el, p, "pci", F_NULL, &rdma.pci)) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "netdev", 0, rdma.netdev,
					      sizeof(rdma.netdev))) < 0 ||
		    (r = topo_file_get_bool(rd, el, p, "soft", 0, &rdma.soft)) < 0 ||
		    (r = topo_file_get_hex(rd, el, p, "node_guid", 0, UINT64_MAX,
					   &rdma.node_guid)) < 0 ||
		    (r = read_ports(rd, el, p, &rdma)) < 0)
			return r;
		if (topo_graph_add_rdma(rd->g, &rdma) < 0)
			return topo_file_oom(rd);
	}
	return 0;
}

static int read_osdevs(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN];
	struct json_object *arr, *el;
	int r = topo_file_get_member(rd, root, "", "osdevs", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct topo_osdev o = { .pci = -1 };

		if ((r = topo_file_get_element(rd, arr, i, "osdevs", osdev_keys, p, &el)) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "name", F_REQ, o.name,
					      sizeof(o.name))) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "class", F_REQ, o.cls,
					      sizeof(o.cls))) < 0 ||
		    (r = topo_file_get_pci_ref(rd, el, p, "pci", F_REQ | F_NULL, &o.pci)) < 0)
			return r;
		if (!o.name[0])
			return topo_file_invalid(rd, topo_file_path_key(q, p, "name"), "empty");
		if (!o.cls[0])
			return topo_file_invalid(rd, topo_file_path_key(q, p, "class"), "empty");
		if (topo_graph_add_osdev(rd->g, &o) < 0)
			return topo_file_oom(rd);
	}
	return 0;
}

static int read_fabric(struct topo_file_rd *rd, struct json_object *root)
{
	char p[TOPO_FILE_PATHLEN], q[TOPO_FILE_PATHLEN], type[16];
	struct json_object *arr, *el;
	int r = topo_file_get_member(rd, root, "", "fabric", json_type_array, 0, &arr);

	if (r <= 0)
		return r;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct topo_fabric l = { 0 };
		int t;

		if ((r = topo_file_get_element(rd, arr, i, "fabric", fabric_keys, p, &el)) < 0 ||
		    (r = topo_file_get_pci_ref(rd, el, p, "a", F_REQ, &l.a)) < 0 ||
		    (r = topo_file_get_pci_ref(rd, el, p, "b", F_REQ, &l.b)) < 0 ||
		    (r = topo_file_get_string(rd, el, p, "type", F_REQ, type, sizeof(type))) < 0 ||
		    (r = topo_file_get_int(rd, el, p, "count", 0, 0, 1024, &l.count)) < 0 ||
		    (r = topo_file_get_double(rd, el, p, "gbps", 0, &l.gbps)) < 0)
			return r;
		if (l.a == l.b)
			return topo_file_invalid(rd, topo_file_path_key(q, p, "b"),
						 "same function as a: %s", rd->g->pci[l.a].bdf);
		if ((t = topo_file_fabric_type_parse(type)) < 0)
			return topo_file_invalid(rd, topo_file_path_key(q, p, "type"),
						 "\"%s\" is not nvlink or xgmi", type);
		l.type = (enum topo_fabric_type)t;
		if (topo_graph_add_fabric(rd->g, &l) < 0)
			return topo_file_oom(rd);
	}
	return 0;
}

static int read_top(struct topo_file_rd *rd, struct json_object *root)
{
	struct topo_graph *g = rd->g;
	char fmt[32];
	int64_t version = 0;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return topo_file_invalid(rd, NULL, "expected a JSON object at the top, got %s",
					 topo_file_type_name(json_object_get_type(root)));
	/* Format and version first: a newer file should say so, not list its new keys. */
	if ((r = topo_file_get_string(rd, root, "", "format", F_REQ, fmt, sizeof(fmt))) < 0)
		return r;
	if (strcmp(fmt, TOPO_FILE_FORMAT))
		return topo_file_invalid(rd, "format", "expected \"%s\", got \"%s\"",
					 TOPO_FILE_FORMAT, fmt);
	if ((r = topo_file_get_int64(rd, root, "", "version", F_REQ, INT64_MIN, INT64_MAX,
				     &version)) < 0)
		return r;
	if (version != TOPO_FILE_VERSION)
		return topo_file_invalid(
			rd, "version", "version %" PRId64 " is not supported (this build reads %d)",
			version, TOPO_FILE_VERSION);
	g->source[0] = '\0';
	if ((r = topo_file_check_keys(rd, root, "", top_keys)) < 0 ||
	    (r = topo_file_get_bool(rd, root, "", "emulated", F_REQ, &g->emulated)) < 0 ||
	    (r = topo_file_get_string(rd, root, "", "hostname", 0, g->hostname,
				      sizeof(g->hostname))) < 0 ||
	    (r = topo_file_get_string(rd, root, "", "source", 0, g->source,
				      sizeof(g->source))) < 0 ||
	    (r = read_cpu(rd, root)) < 0 ||
	    (r = topo_file_get_double(rd, root, "", "socket_link_gbps", 0,
				      &g->socket_link_gbps)) < 0 ||
	    (r = read_numa(rd, root)) < 0 || (r = read_hostbridges(rd, root)) < 0 ||
	    (r = read_pci(rd, root)) < 0 || (r = read_rdma(rd, root)) < 0 ||
	    (r = read_osdevs(rd, root)) < 0 || (r = read_fabric(rd, root)) < 0)
		return r;
	r = topo_graph_finalize(g);
	if (r < 0)
		return topo_file_fail(rd->ctx, r, NULL, "the graph does not finalize: %s",
				      strerror(-r));
	return 0;
}

int topo_file_from_json(struct topo_file_ctx *ctx, struct json_object *root,
			struct topo_graph **out)
{
	struct topo_file_rd rd = { .ctx = ctx };
	int r;

	rd.g = topo_graph_new();
	if (!rd.g)
		return topo_file_oom(&rd);
	r = read_top(&rd, root);
	free(rd.hb_explicit);
	if (r < 0) {
		topo_graph_free(rd.g);
		return r;
	}
	*out = rd.g;
	return 0;
}
