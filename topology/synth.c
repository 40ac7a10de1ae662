/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "synth.h"

int topo_synth_hostbridge(struct topo_graph *g, uint32_t domain, uint8_t bus, int numa)
{
	struct topo_hostbridge hb = { .domain = domain, .bus = bus, .numa = numa };

	snprintf(hb.name, sizeof(hb.name), "pci%04x:%02x", domain, bus);
	return topo_graph_add_hostbridge(g, &hb);
}

int topo_synth_fn(struct topo_graph *g, const char *bdf, int parent, int hb,
		  uint32_t class_code, enum topo_port_type port, int speed, int width)
{
	struct topo_pci p;

	topo_pci_init(&p);
	if (!topo_parse_bdf(bdf, false, &p.domain, &p.bus, &p.dev, &p.fn))
		return -EINVAL;
	snprintf(p.bdf, sizeof(p.bdf), "%04x:%02x:%02x.%x", p.domain, p.bus, p.dev, p.fn);
	p.parent = parent;
	p.hostbridge = hb;
	p.class_code = class_code;
	p.vendor = 0x1af4; /* labelled as what it is: synthetic */
	snprintf(p.vendor_name, sizeof(p.vendor_name), "Synthetic");
	snprintf(p.device_name, sizeof(p.device_name), "emulated function");
	p.numa = g->hostbridges[hb].numa;
	p.max_speed = p.cur_speed = speed;
	p.max_width = p.cur_width = width;
	if (port != TOPO_PORT_ENDPOINT) {
		p.port = port;
		p.port_from_caps = true;
	}
	if ((class_code >> 16) != 0x06) {
		p.bars[0] = (struct topo_bar){ .index = 1, .size = 1ull << 30, .prefetch = true,
					       .is64 = true };
		p.nbars = 1;
	}
	return topo_graph_add_pci(g, &p);
}

static int add_socket_numa(struct topo_graph *g, int id)
{
	struct topo_numa n = { .id = id, .has_cpu = true, .mem_total = 256ull << 30 };

	snprintf(n.cpulist, sizeof(n.cpulist), "%d-%d", id * 32, id * 32 + 31);
	return topo_graph_add_numa(g, &n);
}

int topo_synth_server(int hb_per_socket, int devs_per_switch, struct topo_graph **out)
{
	struct topo_graph *g;
	char bdf[TOPO_BDF_MAX];
	int r = 0;

	if (hb_per_socket < 1 || devs_per_switch < 1 || devs_per_switch > 252)
		return -EINVAL;
	g = topo_graph_new();
	if (!g)
		return -ENOMEM;
	g->emulated = true;
	snprintf(g->source, sizeof(g->source), "synthetic:%dx%dx%d", 2, hb_per_socket,
		 devs_per_switch);
	snprintf(g->cpu.vendor, sizeof(g->cpu.vendor), "GenuineIntel");
	g->cpu.family = 6;
	g->socket_link_gbps = 40;
	if ((r = add_socket_numa(g, 0)) < 0 || (r = add_socket_numa(g, 1)) < 0 ||
	    (r = topo_graph_set_numa_count(g)) < 0)
		goto fail;
	g->numa_dist[0] = g->numa_dist[3] = 10;
	g->numa_dist[1] = g->numa_dist[2] = 21;
	for (int s = 0; s < 2; s++) {
		for (int h = 0; h < hb_per_socket; h++) {
			uint32_t dom = (uint32_t)(s * hb_per_socket + h);
			int hb, rp, up;

			if ((hb = r = topo_synth_hostbridge(g, dom, 0, s)) < 0)
				goto fail;
			snprintf(bdf, sizeof(bdf), "%04x:00:01.0", dom);
			if ((rp = r = topo_synth_fn(g, bdf, -1, hb, 0x060400, TOPO_PORT_ROOT, 320, 16)) < 0)
				goto fail;
			snprintf(bdf, sizeof(bdf), "%04x:01:00.0", dom);
			if ((up = r = topo_synth_fn(g, bdf, rp, hb, 0x060400, TOPO_PORT_SWITCH_UP, 320,
						     16)) < 0)
				goto fail;
			for (int d = 0; d < devs_per_switch; d++) {
				int dn;

				/* Eight downstream ports per switch bus device, as
				 * large switches present them; one endpoint each. */
				snprintf(bdf, sizeof(bdf), "%04x:02:%02x.%x", dom, d / 8, d % 8);
				if ((dn = r = topo_synth_fn(g, bdf, up, hb, 0x060400,
							    TOPO_PORT_SWITCH_DOWN, 320, 16)) < 0)
					goto fail;
				snprintf(bdf, sizeof(bdf), "%04x:%02x:00.0", dom, 3 + d);
				if ((r = topo_synth_fn(g, bdf, dn, hb, d % 2 ? 0x020700 : 0x030200,
						       TOPO_PORT_ENDPOINT, 320, 16)) < 0)
					goto fail;
			}
		}
	}
	if ((r = topo_graph_finalize(g)) < 0)
		goto fail;
	*out = g;
	return 0;
fail:
	topo_graph_free(g);
	return r;
}
