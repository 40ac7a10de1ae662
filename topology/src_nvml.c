/* SPDX-License-Identifier: MIT */
/*
 * NVIDIA GPU fabric from NVML, loaded at run time (libnvidia-ml.so.1; no
 * build-time dependency): for every NVIDIA GPU function, each active NVLink
 * and what is at its other end. A GPU at the other end is a direct link; an
 * NVSwitch (any function that is not one of our GPUs) means every GPU on
 * the switches reaches every other, which the graph records as one entry
 * per pair, as nvidia-smi topo -m shows it (NV18 on an 8-GPU HGX H100).
 *
 * Live machines only: a captured sysfs tree has no driver to ask. For
 * tests, $PAGEMAP_NVML_LIB names another library (a fake NVML) and makes
 * the source run on captures too.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

#define NVLINK_MAX_LINKS 18 /* NVML_NVLINK_MAX_LINKS */

/* The NVML ABI, as nvml.h defines it (nvmlPciInfo_t for the _v2 calls). */
typedef int nvml_return;
typedef struct nvml_device_st *nvml_device;
struct nvml_pci_info {
	char bus_id_legacy[16];
	unsigned int domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
};

struct nvml_api {
	nvml_return (*init)(void);                                         /* nvmlInit_v2 */
	nvml_return (*shutdown)(void);                                     /* nvmlShutdown */
	nvml_return (*handle_by_bus_id)(const char *id, nvml_device *dev); /* ..._v2 */
	nvml_return (*link_state)(nvml_device dev, unsigned int link, int *active);
	nvml_return (*link_remote)(nvml_device dev, unsigned int link, struct nvml_pci_info *pci);
	nvml_return (*link_version)(nvml_device dev, unsigned int link, unsigned int *version);
};

static void *nvml_open(struct nvml_api *api, bool live)
{
	static const char *const names[] = { "nvmlInit_v2", "nvmlShutdown",
					     "nvmlDeviceGetHandleByPciBusId_v2",
					     "nvmlDeviceGetNvLinkState",
					     "nvmlDeviceGetNvLinkRemotePciInfo_v2",
					     "nvmlDeviceGetNvLinkVersion" };
	const char *path = getenv("PAGEMAP_NVML_LIB");
	void *fns[6], *lib;

	if (!path && !live)
		return NULL;
	lib = dlopen(path ? path : "libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!lib)
		return NULL;
	for (size_t i = 0; i < 6; i++) {
		fns[i] = dlsym(lib, names[i]);
		if (!fns[i]) {
			dlclose(lib);
			return NULL;
		}
	}
	/* POSIX: a dlsym()ed function pointer converts back. */
	memcpy(&api->init, &fns[0], sizeof(fns[0]));
	memcpy(&api->shutdown, &fns[1], sizeof(fns[1]));
	memcpy(&api->handle_by_bus_id, &fns[2], sizeof(fns[2]));
	memcpy(&api->link_state, &fns[3], sizeof(fns[3]));
	memcpy(&api->link_remote, &fns[4], sizeof(fns[4]));
	memcpy(&api->link_version, &fns[5], sizeof(fns[5]));
	if (api->init() != 0) {
		dlclose(lib);
		return NULL;
	}
	return lib;
}

/* GB/s per link and direction, by NVLink generation. */
static double link_gbps(unsigned int version)
{
	return version >= 5 ? 50.0 : version >= 2 ? 25.0 : version == 1 ? 20.0 : 0.0;
}

/* Any GPU function: NVML answers only for its own (the vendor may be
 * unknown in a capture), and a handle lookup fails for the rest. */
static bool nvidia_gpu(const struct topo_graph *g, int i)
{
	return (g->pci[i].vendor == 0x10de || !g->pci[i].vendor) &&
	       topo_pci_kind(&g->pci[i]) == TOPO_DEV_GPU;
}

static int add_link(struct topo_graph *g, int a, int b, int count, double gbps)
{
	struct topo_fabric f = { .a = a, .b = b, .type = TOPO_FABRIC_NVLINK, .count = count,
				 .gbps = gbps };

	if (topo_fabric_between(g, a, b) >= 0)
		return 0;
	return topo_graph_add_fabric(g, &f);
}

static int discover_nvml(struct topo_ctx *ctx, struct topo_graph *g)
{
	struct nvml_api api;
	int *to_switch, *direct, r = 0;
	double *per_link;
	void *lib = nvml_open(&api, ctx->live);
	size_t n = g->n_pci;

	if (!lib)
		return 0;
	to_switch = calloc(n, sizeof(*to_switch));
	per_link = calloc(n, sizeof(*per_link));
	direct = calloc(n * n, sizeof(*direct)); /* links from a to b, as a sees them */
	if (!to_switch || !per_link || !direct) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t a = 0; a < n; a++) {
		nvml_device dev;

		if (!nvidia_gpu(g, (int)a) || api.handle_by_bus_id(g->pci[a].bdf, &dev) != 0)
			continue;
		for (unsigned int l = 0; l < NVLINK_MAX_LINKS; l++) {
			struct nvml_pci_info pci;
			unsigned int version = 0;
			uint32_t dom;
			uint8_t bus, d, fn;
			int active = 0, b;

			if (api.link_state(dev, l, &active) != 0 || !active ||
			    api.link_remote(dev, l, &pci) != 0)
				continue;
			pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
			if (!topo_parse_bdf(pci.bus_id, false, &dom, &bus, &d, &fn))
				continue;
			api.link_version(dev, l, &version);
			per_link[a] = link_gbps(version);
			b = topo_graph_find_pci(g, dom, bus, d, fn);
			if (b >= 0 && nvidia_gpu(g, b) && (size_t)b != a)
				direct[a * n + (size_t)b]++;
			else
				to_switch[a]++;
		}
	}
	for (size_t a = 0; a < n && r >= 0; a++)
		for (size_t b = a + 1; b < n && r >= 0; b++) {
			int count = direct[a * n + b] > direct[b * n + a] ? direct[a * n + b]
									  : direct[b * n + a];

			/* Switched GPUs reach each other over as many links as the
			 * less connected of the two has to the switches. */
			if (to_switch[a] && to_switch[b])
				count += to_switch[a] < to_switch[b] ? to_switch[a] : to_switch[b];
			if (count)
				r = add_link(g, (int)a, (int)b, count, count * per_link[a]);
		}
out:
	free(to_switch);
	free(per_link);
	free(direct);
	api.shutdown();
	dlclose(lib);
	return r < 0 ? topo_ctx_error(ctx, r, "NVML: cannot record NVLinks") : 0;
}

const struct topo_source topo_source_nvml = { "nvml", discover_nvml };
