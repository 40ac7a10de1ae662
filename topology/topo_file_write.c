/* SPDX-License-Identifier: MIT */
/*
 * Graph -> topology file JSON (docs/topology-format.md). Every field is
 * written, unknown values included, so that loading a dump and dumping it
 * again gives the same bytes. Values the loader would reject (a negative
 * NUMA id other than -1, a NaN bandwidth) are written as "unknown".
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "topo.h"
#include "topo_file_int.h"

/* Adds a member; a NULL val (allocation failure) poisons the build. */
static bool add(struct json_object *o, const char *key, struct json_object *val, bool *ok)
{
	if (!val || json_object_object_add(o, key, val) < 0) {
		json_object_put(val);
		*ok = false;
	}
	return *ok;
}

static bool push(struct json_object *a, struct json_object *val, bool *ok)
{
	if (!val || json_object_array_add(a, val) < 0) {
		json_object_put(val);
		*ok = false;
	}
	return *ok;
}

/* A JSON null member. */
static bool add_null(struct json_object *o, const char *key, bool *ok)
{
	if (json_object_object_add(o, key, NULL) < 0)
		*ok = false;
	return *ok;
}

static struct json_object *str(const char *s)
{
	return json_object_new_string(s);
}

static struct json_object *num(int64_t v)
{
	return json_object_new_int64(v);
}

static struct json_object *unum(uint64_t v)
{
	return json_object_new_uint64(v);
}

/* -1 for every negative: the loader's single "unknown". */
static struct json_object *id_or_unknown(int v)
{
	return json_object_new_int(v < 0 ? -1 : v);
}

static struct json_object *hex(uint64_t v, int digits)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "0x%0*" PRIx64, digits, v);
	return json_object_new_string(buf);
}

/*
 * The shortest text that reads back as the same double, so 450 prints as 450
 * rather than json-c's 17-digit form. Non-finite and negative values are
 * "unknown" (0).
 */
static struct json_object *dbl(double v)
{
	char buf[40];

	if (!isfinite(v) || v < 0)
		v = 0;
	/* Whole numbers without an exponent: "400", not "4e+02". */
	if (v < 1e15 && v == (double)(int64_t)v) {
		snprintf(buf, sizeof(buf), "%" PRId64, (int64_t)v);
	} else {
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(buf, sizeof(buf), "%.*g", prec, v);
			if (strtod(buf, NULL) == v)
				break;
		}
	}
	return json_object_new_double_s(v, buf);
}

/* A reference to a PCI function by BDF; null for none. */
static bool add_ref(struct json_object *o, const char *key, const struct topo_graph *g, int pci,
		    bool *ok)
{
	if (pci < 0 || (size_t)pci >= g->n_pci || g->pci[pci].removed)
		return add_null(o, key, ok);
	return add(o, key, json_object_new_string(g->pci[pci].bdf), ok);
}

static bool pci_gone(const struct topo_graph *g, int pci)
{
	return pci >= 0 && ((size_t)pci >= g->n_pci || g->pci[pci].removed);
}

static struct json_object *speed(int tenths)
{
	char buf[32];

	if (tenths <= 0)
		return str("unknown");
	snprintf(buf, sizeof(buf), "%d.%d GT/s", tenths / 10, tenths % 10);
	return str(buf);
}

static struct json_object *numa_json(const struct topo_graph *g, size_t i, bool *ok)
{
	const struct topo_numa *n = &g->numa[i];
	struct json_object *o = json_object_new_object(), *d, *h, *ini;

	if (!o || !add(o, "id", json_object_new_int(n->id), ok) ||
	    !add(o, "cpus", str(n->cpulist), ok) || !add(o, "mem_bytes", unum(n->mem_total), ok) ||
	    !add(o, "has_cpu", json_object_new_boolean(n->has_cpu), ok) ||
	    !add(o, "distances", d = json_object_new_array(), ok))
		goto fail;
	for (size_t j = 0; j < g->n_numa; j++)
		if (!push(d, id_or_unknown(g->numa_dist ? g->numa_dist[i * g->n_numa + j] : -1),
			  ok))
			goto fail;
	if (!n->access0.present) {
		if (!add_null(o, "hmat", ok))
			goto fail;
		return o;
	}
	if (!add(o, "hmat", h = json_object_new_object(), ok) ||
	    !add(h, "read_bw_mbps", unum(n->access0.read_bw), ok) ||
	    !add(h, "write_bw_mbps", unum(n->access0.write_bw), ok) ||
	    !add(h, "read_lat_ns", unum(n->access0.read_lat), ok) ||
	    !add(h, "write_lat_ns", unum(n->access0.write_lat), ok) ||
	    !add(h, "initiators", ini = json_object_new_array(), ok))
		goto fail;
	for (int b = 0; b < 64; b++)
		if ((n->access0.initiators >> b & 1) && !push(ini, json_object_new_int(b), ok))
			goto fail;
	return o;
fail:
	*ok = false;
	json_object_put(o);
	return NULL;
}

static struct json_object *hostbridge_json(const struct topo_hostbridge *hb, bool *ok)
{
	struct json_object *o = json_object_new_object();

	if (!o || !add(o, "name", str(hb->name), ok) ||
	    !add(o, "numa", id_or_unknown(hb->numa), ok) ||
	    !add(o, "root_vendor", hex(hb->root_vendor, 4), ok) ||
	    !add(o, "root_device", hex(hb->root_device, 4), ok)) {
		*ok = false;
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *pci_json(const struct topo_graph *g, const struct topo_pci *p,
				    bool *ok)
{
	struct json_object *o = json_object_new_object(), *l, *bars;
	const struct topo_hostbridge *hb =
		p->hostbridge >= 0 && (size_t)p->hostbridge < g->n_hostbridges ?
			&g->hostbridges[p->hostbridge] : NULL;

	if (!o || !add(o, "bdf", str(p->bdf), ok) || !add(o, "vendor", hex(p->vendor, 4), ok) ||
	    !add(o, "device", hex(p->device, 4), ok) ||
	    !add(o, "subvendor", hex(p->subvendor, 4), ok) ||
	    !add(o, "subdevice", hex(p->subdevice, 4), ok) ||
	    !add(o, "class", hex(p->class_code & 0xffffff, 6), ok) ||
	    !add(o, "vendor_name", str(p->vendor_name), ok) ||
	    !add(o, "device_name", str(p->device_name), ok) ||
	    !add(o, "driver", str(p->driver), ok) || !add(o, "numa", id_or_unknown(p->numa), ok) ||
	    !add(o, "iommu_group", id_or_unknown(p->iommu_group), ok) ||
	    !add(o, "link", l = json_object_new_object(), ok) ||
	    !add(l, "cur_speed", speed(p->cur_speed), ok) ||
	    !add(l, "cur_width", json_object_new_int(p->cur_width > 0 ? p->cur_width : 0), ok) ||
	    !add(l, "max_speed", speed(p->max_speed), ok) ||
	    !add(l, "max_width", json_object_new_int(p->max_width > 0 ? p->max_width : 0), ok))
		goto fail;
	/* A parent or host bridge is always written, even when the graph lacks one,
	 * so the loader names the problem instead of guessing. */
	if (!add_ref(o, "parent", g, p->parent, ok) ||
	    !(hb ? add(o, "hostbridge", str(hb->name), ok) : add_null(o, "hostbridge", ok)) ||
	    !add_ref(o, "physfn", g, p->physfn, ok) ||
	    !add(o, "port", str(topo_port_type_name(p->port)), ok) ||
	    !add(o, "port_from_caps", json_object_new_boolean(p->port_from_caps), ok) ||
	    !(p->acs_ctrl < 0 ? add_null(o, "acs_ctrl", ok)
			      : add(o, "acs_ctrl", num(p->acs_ctrl), ok)) ||
	    !add(o, "bars", bars = json_object_new_array(), ok))
		goto fail;
	for (unsigned i = 0; i < p->nbars && i < TOPO_MAX_BARS; i++) {
		const struct topo_bar *b = &p->bars[i];
		struct json_object *bo = json_object_new_object();

		if (!push(bars, bo, ok) || !add(bo, "index", json_object_new_int(b->index), ok) ||
		    !add(bo, "size", unum(b->size), ok) ||
		    !add(bo, "prefetch", json_object_new_boolean(b->prefetch), ok) ||
		    !add(bo, "is64", json_object_new_boolean(b->is64), ok))
			goto fail;
	}
	if (!add(o, "local_cpus", str(p->local_cpus), ok))
		goto fail;
	return o;
fail:
	*ok = false;
	json_object_put(o);
	return NULL;
}

static struct json_object *rdma_json(const struct topo_graph *g, const struct topo_rdma *r,
				     bool *ok)
{
	struct json_object *o = json_object_new_object(), *ports;

	if (!o || !add(o, "name", str(r->name), ok) || !add_ref(o, "pci", g, r->pci, ok) ||
	    !add(o, "netdev", str(r->netdev), ok) ||
	    !add(o, "soft", json_object_new_boolean(r->soft), ok) ||
	    !add(o, "node_guid", hex(r->node_guid, 16), ok) ||
	    !add(o, "ports", ports = json_object_new_array(), ok))
		goto fail;
	for (int i = 0; i < r->nports && i < TOPO_MAX_PORTS; i++) {
		const struct topo_rdma_port *pt = &r->ports[i];
		struct json_object *po = json_object_new_object();

		if (!push(ports, po, ok) || !add(po, "num", json_object_new_int(pt->num), ok) ||
		    !add(po, "state", str(topo_file_port_state_name(pt->state)), ok) ||
		    !add(po, "link_layer", str(pt->link_layer), ok) ||
		    !add(po, "rate", str(pt->rate), ok) || !add(po, "gbps", dbl(pt->gbps), ok))
			goto fail;
	}
	return o;
fail:
	*ok = false;
	json_object_put(o);
	return NULL;
}

static struct json_object *osdev_json(const struct topo_graph *g, const struct topo_osdev *d,
				      bool *ok)
{
	struct json_object *o = json_object_new_object();

	if (!o || !add(o, "name", str(d->name), ok) || !add(o, "class", str(d->cls), ok) ||
	    !add_ref(o, "pci", g, d->pci, ok)) {
		*ok = false;
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *fabric_json(const struct topo_graph *g, const struct topo_fabric *l,
				       bool *ok)
{
	struct json_object *o = json_object_new_object();
	const char *type = topo_file_fabric_type_name(l->type);

	if (!o || !add_ref(o, "a", g, l->a, ok) || !add_ref(o, "b", g, l->b, ok) ||
	    !(type ? add(o, "type", str(type), ok) : add_null(o, "type", ok)) ||
	    !add(o, "count", json_object_new_int(l->count > 0 ? l->count : 0), ok) ||
	    !add(o, "gbps", dbl(l->gbps), ok)) {
		*ok = false;
		json_object_put(o);
		return NULL;
	}
	return o;
}

static struct json_object *cpu_json(const struct topo_cpu_info *c, bool *ok)
{
	struct json_object *o = json_object_new_object();

	if (!o || !add(o, "vendor", str(c->vendor), ok) ||
	    !add(o, "family", id_or_unknown(c->family), ok) ||
	    !add(o, "model", id_or_unknown(c->model), ok)) {
		*ok = false;
		json_object_put(o);
		return NULL;
	}
	return o;
}

struct json_object *topo_file_to_json(const struct topo_graph *g)
{
	struct json_object *root, *a;
	bool ok = true;

	if (!g)
		return NULL;
	root = json_object_new_object();
	if (!root || !add(root, "format", str(TOPO_FILE_FORMAT), &ok) ||
	    !add(root, "version", json_object_new_int(TOPO_FILE_VERSION), &ok) ||
	    !add(root, "emulated", json_object_new_boolean(g->emulated), &ok) ||
	    !add(root, "hostname", str(g->hostname), &ok) ||
	    !add(root, "source", str(g->source), &ok) ||
	    !add(root, "cpu", cpu_json(&g->cpu, &ok), &ok) ||
	    !add(root, "socket_link_gbps", dbl(g->socket_link_gbps), &ok))
		goto fail;

	if (!add(root, "numa", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_numa; i++)
		if (!push(a, numa_json(g, i, &ok), &ok))
			goto fail;

	if (!add(root, "hostbridges", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_hostbridges; i++)
		if (!push(a, hostbridge_json(&g->hostbridges[i], &ok), &ok))
			goto fail;

	/* Hot-removed functions are gone from the machine: not written, and
	 * neither is anything that hangs off them. */
	if (!add(root, "pci", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_pci; i++)
		if (!g->pci[i].removed && !push(a, pci_json(g, &g->pci[i], &ok), &ok))
			goto fail;

	if (!add(root, "rdma", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_rdma; i++)
		if (!pci_gone(g, g->rdma[i].pci) && !push(a, rdma_json(g, &g->rdma[i], &ok), &ok))
			goto fail;

	if (!add(root, "osdevs", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_osdevs; i++)
		if (!pci_gone(g, g->osdevs[i].pci) &&
		    !push(a, osdev_json(g, &g->osdevs[i], &ok), &ok))
			goto fail;

	if (!add(root, "fabric", a = json_object_new_array(), &ok))
		goto fail;
	for (size_t i = 0; i < g->n_fabric; i++)
		if (!pci_gone(g, g->fabric[i].a) && !pci_gone(g, g->fabric[i].b) &&
		    !push(a, fabric_json(g, &g->fabric[i], &ok), &ok))
			goto fail;
	return root;
fail:
	json_object_put(root);
	return NULL;
}
