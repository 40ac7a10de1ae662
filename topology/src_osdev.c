/* SPDX-License-Identifier: MIT */
/* Kernel devices bound to PCI functions: netdevs, DRM nodes, NVMe controllers. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "source.h"
#include "sysfs_util.h"

static const char *const classes[] = { "net", "drm", "nvme" };

static int scan_class(struct topo_ctx *ctx, struct topo_graph *g, const char *cls)
{
	char path[4096], bdf[TOPO_BDF_MAX];
	struct dirent *de;
	int r = 0;
	DIR *d;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/class/%s", cls);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		struct topo_osdev o = { .pci = -1 };

		if (de->d_name[0] == '.')
			continue;
		/* DRM connectors ("card0-DP-1") are not devices. */
		if (!strcmp(cls, "drm") && strchr(de->d_name, '-'))
			continue;
		/* Attach by the last BDF of the class link, as hwloc does: a netdev's
		 * link ends in its PCI function's directory. */
		sysfs_path(path, sizeof(path), ctx->root, "/sys/class/%s/%s", cls, de->d_name);
		if (sysfs_link_last_bdf(path, bdf, sizeof(bdf)) < 0)
			continue;
		o.pci = topo_graph_find_pci_bdf(g, bdf);
		if (o.pci < 0)
			continue;
		snprintf(o.name, sizeof(o.name), "%s", de->d_name);
		snprintf(o.cls, sizeof(o.cls), "%s", cls);
		r = topo_graph_add_osdev(g, &o);
		if (r < 0)
			break;
	}
	closedir(d);
	return r < 0 ? r : 0;
}

static int discover_osdev(struct topo_ctx *ctx, struct topo_graph *g)
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		int r = scan_class(ctx, g, classes[i]);

		if (r < 0)
			return r;
	}
	return 0;
}

const struct topo_source topo_source_osdev = { "osdev", discover_osdev };
