/* SPDX-License-Identifier: MIT */
/*
 * GPU VRAM through the CUDA driver API, loaded at run time (cuda_api.h):
 * one pool per device, named cudaN with region "vram", identified in the
 * log by its PCI address. While its pagemap lives the pool holds the
 * device's primary context and one allocation of `capacity` bytes (chunks
 * sit at offsets in it, as in any device pool), pinned staging memory, and
 * the streams and events of its copy lanes (gpu.h). Bytes move through the
 * CUDA copy engine (xfer_cuda.c); this file is the pool's life.
 *
 * migration.gpu_pin_bytes (0 turns zero copy off) caps the client memory
 * each GPU pool has registered at once for zero-copy host -> VRAM copies
 * (default 256 MiB); the staging memory is apart from it.
 * migration.gpu_pin_keep keeps registrations once their copy is done,
 * for the next copy of the same range (READ_MOSTLY replicas), least
 * recently used first within the cap; by default none outlives its copy,
 * as no client page stays mapped in the broker (docs/transport.md).
 *
 * Without libcuda.so.1 or without a device there are simply no GPU pools.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"
#include "gpu.h"

struct cuda_api gpu_cuda; /* one driver per process */
uint64_t gpu_reg_cap;
bool gpu_reg_keep;
int gpu_pagemap_fd = -1;
/* Every GPU pool's state, by ordinal, for forgetting peer access. */
static struct gpu *gpus[64];

int gpu_cu_errno(struct pool *p, const char *what, cu_result r)
{
	char buf[64];

	blog(LOG_ERR, "%s: %s: %s", p->device, what, cuda_error(&gpu_cuda, r, buf, sizeof(buf)));
	return r == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ ? -ENOMEM : -EIO;
}

static void gpu_destroy(struct pool *p);

static int gpu_create(struct pool *p)
{
	struct gpu *g = p->k.gpu;
	const char *what;
	cu_result r;
	int e;

	r = gpu_cuda.primary_ctx_retain(&g->ctx, g->dev);
	if (r != CU_SUCCESS)
		return gpu_cu_errno(p, "cuDevicePrimaryCtxRetain", r);
	what = "cuCtxSetCurrent";
	r = gpu_cuda.ctx_set_current(g->ctx);
	if (r == CU_SUCCESS) {
		what = "cuMemAlloc";
		r = gpu_cuda.mem_alloc(&g->base, p->capacity);
	}
	if (r != CU_SUCCESS) {
		e = gpu_cu_errno(p, what, r);
		gpu_cuda.primary_ctx_release(g->dev);
		return e;
	}
	g->stage = mmap(NULL, STAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			-1, 0);
	if (g->stage == MAP_FAILED) {
		e = -errno;
		blog(LOG_ERR, "%s: staging buffers: %s", p->device, strerror(-e));
	} else {
		r = gpu_cuda.mem_host_register(g->stage, STAGE_BYTES, 0);
		e = r == CU_SUCCESS ? 0 : gpu_cu_errno(p, "cuMemHostRegister", r);
		if (!e) {
			e = gpu_lanes_init(p);
			if (e)
				gpu_cuda.mem_host_unregister(g->stage);
		}
	}
	if (e) {
		if (g->stage != MAP_FAILED)
			munmap(g->stage, STAGE_BYTES);
		g->stage = NULL;
		gpu_cuda.mem_free(g->base);
		gpu_cuda.primary_ctx_release(g->dev);
		return e;
	}
	g->peer_tried = 0; /* a new context: no peer access yet */
	e = space_init(p);
	if (e)
		gpu_destroy(p);
	return e;
}

static void gpu_destroy(struct pool *p)
{
	struct gpu *g = p->k.gpu;

	space_fini(p);
	if (!g->stage)
		return;
	gpu_cuda.ctx_set_current(g->ctx);
	gpu_lanes_fini(p);
	gpu_cuda.mem_host_unregister(g->stage);
	munmap(g->stage, STAGE_BYTES);
	g->stage = NULL;
	gpu_cuda.mem_free(g->base);
	gpu_cuda.primary_ctx_release(g->dev);
	/* Its context goes: peer access to it with it. */
	for (unsigned i = 0; i < sizeof(gpus) / sizeof(gpus[0]); i++)
		if (gpus[i] && gpus[i] != g && g->ordinal < 64) {
			pthread_mutex_lock(&gpus[i]->lock);
			gpus[i]->peer_tried &= ~(1ull << g->ordinal);
			pthread_mutex_unlock(&gpus[i]->lock);
		}
}

const struct pool_ops pool_gpu_ops = {
	.kind = PM_KIND_GPU,
	.name = "gpu",
	.create = gpu_create,
	.destroy = gpu_destroy,
	.engine = &xfer_cuda,
};

bool gpu_can_peer(const struct pool *a, const struct pool *b)
{
	int can = 0;

	if (a->ops != &pool_gpu_ops || b->ops != &pool_gpu_ops)
		return false;
	return gpu_cuda.device_can_access_peer(&can, ((struct gpu *)b->k.gpu)->dev,
					   ((struct gpu *)a->k.gpu)->dev) == CU_SUCCESS &&
	       can;
}

/* migration.gpu_pin_bytes and gpu_pin_keep, and whether zero copy can
 * check its pages. */
static void reg_configure(const struct broker *b)
{
	gpu_reg_cap = b->conf.gpu_pin_bytes;
	gpu_reg_keep = b->conf.gpu_pin_keep;
	if (!gpu_reg_cap) {
		blog(LOG_INFO, "GPU pools: zero copy off (migration.gpu_pin_bytes 0): copies are "
			       "staged");
		return;
	}
	gpu_pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (gpu_pagemap_fd < 0)
		blog(LOG_INFO, "GPU pools: zero copy off: /proc/self/pagemap: %s (it tells "
			       "whether registered pages are still the allocation's): copies are "
			       "staged", strerror(errno));
}

int gpu_pools_add(struct broker *b)
{
	char why[256] = "", name[PM_NAME_MAX];
	int n = 0, r = cuda_load(&gpu_cuda, why, sizeof(why));
	cu_result cr;

	if (r < 0) {
		blog(r == -ENOENT ? LOG_DEBUG : LOG_INFO, "no GPU pools: %s", why);
		return 0;
	}
	cr = gpu_cuda.device_get_count(&n);
	if (cr != CU_SUCCESS) {
		blog(LOG_WARN, "no GPU pools: cuDeviceGetCount: %s",
		     cuda_error(&gpu_cuda, cr, why, sizeof(why)));
		n = 0;
	}
	if (n > 0)
		reg_configure(b);
	for (int i = 0; i < n; i++) {
		char busid[32] = "", model[128] = "";
		const char *what = "cuDeviceGet";
		size_t total = 0;
		struct gpu *g;
		struct pool *p;

		g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		cr = gpu_cuda.device_get(&g->dev, i);
		if (cr == CU_SUCCESS) {
			what = "cuDeviceTotalMem";
			cr = gpu_cuda.device_total_mem(&total, g->dev);
		}
		if (cr != CU_SUCCESS) {
			blog(LOG_WARN, "CUDA device %d: no GPU pool: %s: %s", i, what,
			     cuda_error(&gpu_cuda, cr, why, sizeof(why)));
			free(g);
			continue;
		}
		gpu_cuda.device_get_pci_bus_id(busid, sizeof(busid), g->dev);
		gpu_cuda.device_get_name(model, sizeof(model), g->dev);
		topo_bdf_canonical(busid, g->bdf, sizeof(g->bdf));
		g->ordinal = i;
		pthread_mutex_init(&g->lock, NULL);
		pthread_cond_init(&g->freed, NULL);
		snprintf(name, sizeof(name), "cuda%d", i);
		p = pool_add(b, &pool_gpu_ops, name, "vram");
		if (!p) {
			free(g);
			return -ENOMEM;
		}
		p->k.gpu = g;
		if (i < 64)
			gpus[i] = g;
		/* What one pagemap takes of the device, never all of it: the
		 * GPU's own users need theirs. */
		p->capacity = b->conf.gpu_pool_bytes < total / 2 ? b->conf.gpu_pool_bytes : total / 2;
		p->capacity -= p->capacity % PM_CHUNK_MIN;
		p->addr_bits = 64;
		{
			int pci = topo_graph_find_pci_bdf(b->topo, g->bdf);

			p->numa = pci >= 0 ? topo_pci_numa(b->topo, pci) : -1;
		}
		blog(LOG_INFO, "GPU pool %s/vram: %s at %s, %zu MiB of %zu MiB", name, model, g->bdf,
		     (size_t)(p->capacity >> 20), total >> 20);
	}
	return 0;
}

void gpu_pools_free(struct broker *b)
{
	for (struct pool *p = b->pools; p; p = p->next)
		if (p->ops == &pool_gpu_ops && p->k.gpu) {
			struct gpu *g = p->k.gpu;

			pthread_mutex_destroy(&g->lock);
			pthread_cond_destroy(&g->freed);
			if (g->ordinal < 64)
				gpus[g->ordinal] = NULL;
			free(g);
			p->k.gpu = NULL;
		}
	if (gpu_pagemap_fd >= 0)
		close(gpu_pagemap_fd);
	gpu_pagemap_fd = -1;
	if (gpu_cuda.lib)
		cuda_unload(&gpu_cuda);
}
