/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "machines.h"

static int numa(struct topo_graph *g, int id, const char *cpus)
{
	struct topo_numa n = { .id = id, .has_cpu = true, .mem_total = 1ull << 30 };

	strcpy(n.cpulist, cpus);
	return topo_graph_add_numa(g, &n);
}

/* Root device 00.0 of every host bridge carries the given ids (the whitelist input). */
int test_machine_build(struct test_machine *m, uint16_t root_vendor, uint16_t root_device)
{
	struct topo_graph *g = topo_graph_new();
	int r;

	if (!g)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	m->g = g;
	if ((r = numa(g, 0, "0")) < 0 || (r = numa(g, 1, "1")) < 0 ||
	    (r = topo_graph_set_numa_count(g)) < 0)
		return r;
	g->numa_dist[0] = g->numa_dist[3] = 10;
	g->numa_dist[1] = g->numa_dist[2] = 20;
	strcpy(g->cpu.vendor, "GenuineIntel");
	g->cpu.family = 6;
	m->hb0 = topo_synth_hostbridge(g, 0, 0x00, 0);
	m->hb40 = topo_synth_hostbridge(g, 0, 0x40, 0);
	m->hb80 = topo_synth_hostbridge(g, 0, 0x80, 1);
	g->hostbridges[m->hb0].root_vendor = g->hostbridges[m->hb40].root_vendor =
		g->hostbridges[m->hb80].root_vendor = root_vendor;
	g->hostbridges[m->hb0].root_device = g->hostbridges[m->hb40].root_device =
		g->hostbridges[m->hb80].root_device = root_device;
	m->rp0 = topo_synth_fn(g, "0000:00:01.0", -1, m->hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	m->up = topo_synth_fn(g, "0000:01:00.0", m->rp0, m->hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	m->dn0 = topo_synth_fn(g, "0000:02:00.0", m->up, m->hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 4);
	m->dn1 = topo_synth_fn(g, "0000:02:01.0", m->up, m->hb0, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	m->a = topo_synth_fn(g, "0000:03:00.0", m->dn0, m->hb0, 0x050000, TOPO_PORT_ENDPOINT, 80, 16);
	m->b = topo_synth_fn(g, "0000:04:00.0", m->dn1, m->hb0, 0x050000, TOPO_PORT_ENDPOINT, 80, 16);
	m->rp2 = topo_synth_fn(g, "0000:00:02.0", -1, m->hb0, 0x060400, TOPO_PORT_ENDPOINT, 160, 4);
	m->nvme = topo_synth_fn(g, "0000:05:00.0", m->rp2, m->hb0, 0x010802, TOPO_PORT_ENDPOINT, 160, 4);
	m->rp40 = topo_synth_fn(g, "0000:40:01.0", -1, m->hb40, 0x060400, TOPO_PORT_ENDPOINT, 320, 16);
	m->c = topo_synth_fn(g, "0000:41:00.0", m->rp40, m->hb40, 0x030200, TOPO_PORT_ENDPOINT, 320, 16);
	m->rp80 = topo_synth_fn(g, "0000:80:00.0", -1, m->hb80, 0x060400, TOPO_PORT_ENDPOINT, 80, 16);
	m->nic = topo_synth_fn(g, "0000:81:00.0", m->rp80, m->hb80, 0x020000, TOPO_PORT_ENDPOINT, 80, 16);
	if (m->nic < 0)
		return m->nic;
	return topo_graph_finalize(g);
}

int test_dev(const struct topo_graph *g, const char *name)
{
	return topo_graph_lookup(g, name);
}
