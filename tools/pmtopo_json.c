/* SPDX-License-Identifier: MIT */
/*
 * pmtopo --json: the topology file's object (docs/topology-format.md) plus
 * three derived sections: devices, pairs (each unordered pair once, the
 * first device taken as the P2P provider) and peer_groups.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <json-c/json.h>

#include "json_out.h"

#include "pmtopo.h"

static json_object *device_json(const struct topo_graph *g, const struct topo_device *d, int group)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_out_add(o, "name", json_object_new_string(d->name)) ||
	    json_out_add(o, "alias", json_object_new_string(d->alias)) ||
	    json_out_add(o, "kind", json_object_new_string(topo_dev_kind_name(d->kind))) ||
	    json_out_add_str_or_null(o, "pci", d->pci >= 0 ? g->pci[d->pci].bdf : NULL) ||
	    json_out_add_str_or_null(o, "rdma", d->rdma >= 0 ? g->rdma[d->rdma].name : NULL) ||
	    json_out_add(o, "numa", json_object_new_int(d->numa)) ||
	    json_out_add(o, "peer_group", json_object_new_int(group))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *pair_json(const struct topo_graph *g, int a, int b, struct topo_path *p)
{
	json_object *o = json_object_new_object(), *hops;
	char cell[32], hop[TOPO_NAME_MAX];

	if (!o || topo_classify(g, a, b, p) < 0)
		goto fail;
	topo_class_cell(p, cell, sizeof(cell));
	if (json_out_add(o, "a", json_object_new_string(g->devices[a].name)) ||
	    json_out_add(o, "b", json_object_new_string(g->devices[b].name)) ||
	    json_out_add(o, "class", json_object_new_string(cell)) ||
	    json_out_add(o, "p2p", json_object_new_string(topo_p2p_verdict_name(p->p2p))) ||
	    json_out_add(o, "p2p_distance", json_object_new_int(p->p2p_distance)) ||
	    json_out_add(o, "p2p_acs_unknown", json_object_new_boolean(p->p2p_acs_unknown)) ||
	    json_out_add(o, "reason", json_object_new_string(p->reason)) ||
	    json_out_add(o, "gbps", json_object_new_double(p->gbps)))
		goto fail;
	hops = json_object_new_array();
	if (json_out_add(o, "hops", hops))
		goto fail;
	for (int i = 0; i < p->nhops; i++) {
		topo_hop_name(g, &p->hops[i], hop, sizeof(hop));
		if (json_out_append(hops, json_object_new_string(hop)))
			goto fail;
	}
	return o;
fail:
	json_object_put(o);
	return NULL;
}

static int build(const struct pmtopo_view *v, json_object *root, const int *sel, int n,
		 const int *group, int ngroups)
{
	const struct topo_graph *g = v->g;
	json_object *devs = json_object_new_array(), *pairs = json_object_new_array(),
		    *groups = json_object_new_array();
	struct topo_path *p = malloc(sizeof(*p));
	int r = -ENOMEM;

	if (json_out_add(root, "devices", devs) || json_out_add(root, "pairs", pairs) ||
	    json_out_add(root, "peer_groups", groups) || !p)
		goto out;
	for (int i = 0; i < n; i++)
		if (json_out_append(devs, device_json(g, &g->devices[sel[i]], group[sel[i]])))
			goto out;
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (json_out_append(pairs, pair_json(g, sel[i], sel[j], p)))
				goto out;
	for (int gid = 0; gid < ngroups; gid++) {
		json_object *members = json_object_new_array();

		if (json_out_append(groups, members))
			goto out;
		for (size_t d = 0; d < g->n_devices; d++)
			if (group[d] == gid &&
			    json_out_append(members, json_object_new_string(g->devices[d].name)))
				goto out;
	}
	r = 0;
out:
	free(p);
	return r;
}

int pmtopo_print_json(const struct pmtopo_view *v)
{
	const struct topo_graph *g = v->g;
	json_object *root = topo_file_to_json(g);
	int *sel = NULL, *group = malloc((g->n_devices ? g->n_devices : 1) * sizeof(int));
	int n, ngroups, r = -ENOMEM;

	if (!root || !group)
		goto out;
	ngroups = topo_peer_groups(g, group);
	if (ngroups < 0) {
		r = ngroups;
		goto out;
	}
	n = pmtopo_selected(v, &sel);
	if (n < 0) {
		r = n;
		goto out;
	}
	r = build(v, root, sel, n, group, ngroups);
	if (r == 0)
		fprintf(v->out, "%s\n",
			json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							     JSON_C_TO_STRING_SPACED |
							     JSON_C_TO_STRING_NOSLASHESCAPE));
out:
	json_object_put(root);
	free(sel);
	free(group);
	return r;
}
