/* SPDX-License-Identifier: MIT */
/*
 * RDMA devices from /sys/class/infiniband (live and replayed), refined by
 * libibverbs when live. Soft devices (rxe, siw) have no PCI function of their
 * own: they are tied to one through the netdev named in their `parent` file.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"
#include "sysfs_util.h"

double topo_rdma_rate_gbps(const char *rate)
{
	char *end;
	double v = strtod(rate, &end);

	return end == rate || v < 0 ? 0 : v;
}

/* "0002:c903:0044:e0a2" -> 0x0002c9030044e0a2 */
static uint64_t parse_guid(const char *s)
{
	uint64_t v = 0;
	int digits = 0;

	for (; *s; s++) {
		int x;

		if (*s == ':')
			continue;
		if (*s >= '0' && *s <= '9')
			x = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			x = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			x = *s - 'A' + 10;
		else
			return 0;
		if (++digits > 16)
			return 0;
		v = v << 4 | (uint64_t)x;
	}
	return v;
}

static void read_ports(struct topo_ctx *ctx, struct topo_rdma *rd)
{
	char path[4096], buf[64];
	struct dirent *de;
	DIR *d;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s/ports", rd->name);
	d = opendir(path);
	if (!d)
		return;
	while ((de = readdir(d)) && rd->nports < TOPO_MAX_PORTS) {
		struct topo_rdma_port *p = &rd->ports[rd->nports];
		int num = atoi(de->d_name);

		if (num <= 0)
			continue;
		memset(p, 0, sizeof(*p));
		p->num = num;
		sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s/ports/%d/state",
			   rd->name, num);
		if (sysfs_read_str(path, buf, sizeof(buf)) > 0)
			p->state = atoi(buf); /* "4: ACTIVE" */
		sysfs_path(path, sizeof(path), ctx->root,
			   "/sys/class/infiniband/%s/ports/%d/link_layer", rd->name, num);
		sysfs_read_str(path, p->link_layer, sizeof(p->link_layer));
		sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s/ports/%d/rate",
			   rd->name, num);
		if (sysfs_read_str(path, p->rate, sizeof(p->rate)) > 0)
			p->gbps = topo_rdma_rate_gbps(p->rate);
		rd->nports++;
	}
	closedir(d);
}

static int osdev_pci(const struct topo_graph *g, const char *name)
{
	for (size_t i = 0; i < g->n_osdevs; i++)
		if (!strcmp(g->osdevs[i].name, name) && !strcmp(g->osdevs[i].cls, "net"))
			return g->osdevs[i].pci;
	return -1;
}

/* The first netdev on the same PCI function (mlx5: the port's Ethernet/IPoIB). */
static void netdev_of_pci(const struct topo_graph *g, int pci, char *buf, size_t len)
{
	for (size_t i = 0; i < g->n_osdevs; i++)
		if (g->osdevs[i].pci == pci && !strcmp(g->osdevs[i].cls, "net")) {
			snprintf(buf, len, "%s", g->osdevs[i].name);
			return;
		}
}

static int discover_rdma(struct topo_ctx *ctx, struct topo_graph *g)
{
	char path[4096], buf[TOPO_NAME_MAX];
	struct dirent *de;
	int r = 0;
	DIR *d;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband");
	d = opendir(path);
	if (d) {
		while ((de = readdir(d))) {
			struct topo_rdma rd = { .pci = -1 };

			if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof(rd.name))
				continue;
			strcpy(rd.name, de->d_name);
			sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s/node_guid",
				   rd.name);
			if (sysfs_read_str(path, buf, sizeof(buf)) > 0)
				rd.node_guid = parse_guid(buf);
			sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s/parent",
				   rd.name);
			if (sysfs_read_str(path, rd.netdev, sizeof(rd.netdev)) > 0) {
				rd.soft = true;
				rd.pci = osdev_pci(g, rd.netdev);
			} else {
				sysfs_path(path, sizeof(path), ctx->root, "/sys/class/infiniband/%s",
					   rd.name);
				if (sysfs_link_last_bdf(path, buf, sizeof(buf)) == 0)
					rd.pci = topo_graph_find_pci_bdf(g, buf);
				if (rd.pci < 0)
					rd.pci = -1;
				else
					netdev_of_pci(g, rd.pci, rd.netdev, sizeof(rd.netdev));
			}
			read_ports(ctx, &rd);
			r = topo_graph_add_rdma(g, &rd);
			if (r < 0)
				break;
		}
		closedir(d);
	}
	if (r < 0)
		return r;
#if HAVE_IBVERBS
	if (ctx->live && !ctx->no_verbs)
		return topo_rdma_verbs_refine(ctx, g);
#endif
	return 0;
}

const struct topo_source topo_source_rdma = { "rdma", discover_rdma };
