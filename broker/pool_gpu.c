/* SPDX-License-Identifier: MIT */
/*
 * GPU VRAM through the CUDA driver API, loaded at run time (cuda_api.h):
 * one pool per device, named cudaN with region "vram", identified in the
 * log by its PCI address. While its pagemap lives the pool holds the
 * device's primary context and one allocation of `capacity` bytes (chunks
 * sit at offsets in it, as in any device pool); bytes move through a few
 * pinned staging buffers with cuMemcpyHtoD/DtoH, and between two GPUs that
 * can reach each other with cuMemcpyPeer.
 *
 * Without libcuda.so.1 or without a device there are simply no GPU pools.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"
#include "cuda_api.h"

#define STAGE_BUFS 4
#define STAGE_BYTES (4u << 20)

static struct cuda_api cuda; /* one driver per process */

struct gpu {
	cu_device dev;
	int ordinal;
	char bdf[16];
	cu_context ctx;     /* primary context, retained while the pagemap lives */
	cu_deviceptr base;  /* the pool's memory */
	uint8_t *stage;     /* STAGE_BUFS pinned buffers of STAGE_BYTES */
	unsigned stage_busy; /* bitmap, under lock */
	pthread_mutex_t lock;
	pthread_cond_t freed;
};

static int cu_errno(struct pool *p, const char *what, cu_result r)
{
	char buf[64];

	blog(LOG_ERR, "%s: %s: %s", p->device, what, cuda_error(&cuda, r, buf, sizeof(buf)));
	return r == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ ? -ENOMEM : -EIO;
}

static int gpu_create(struct pool *p)
{
	struct gpu *g = p->gpu;
	const char *what;
	cu_result r;
	int e;

	r = cuda.primary_ctx_retain(&g->ctx, g->dev);
	if (r != CU_SUCCESS)
		return cu_errno(p, "cuDevicePrimaryCtxRetain", r);
	what = "cuCtxSetCurrent";
	r = cuda.ctx_set_current(g->ctx);
	if (r == CU_SUCCESS) {
		what = "cuMemAlloc";
		r = cuda.mem_alloc(&g->base, p->capacity);
	}
	if (r != CU_SUCCESS) {
		e = cu_errno(p, what, r);
		cuda.primary_ctx_release(g->dev);
		return e;
	}
	g->stage = mmap(NULL, (size_t)STAGE_BUFS * STAGE_BYTES, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g->stage == MAP_FAILED) {
		e = -errno;
		blog(LOG_ERR, "%s: staging buffers: %s", p->device, strerror(-e));
	} else {
		r = cuda.mem_host_register(g->stage, (size_t)STAGE_BUFS * STAGE_BYTES, 0);
		e = r == CU_SUCCESS ? 0 : cu_errno(p, "cuMemHostRegister", r);
	}
	if (e) {
		if (g->stage != MAP_FAILED)
			munmap(g->stage, (size_t)STAGE_BUFS * STAGE_BYTES);
		g->stage = NULL;
		cuda.mem_free(g->base);
		cuda.primary_ctx_release(g->dev);
		return e;
	}
	g->stage_busy = 0;
	return space_init(p);
}

static void gpu_destroy(struct pool *p)
{
	struct gpu *g = p->gpu;

	space_fini(p);
	if (!g->stage)
		return;
	cuda.ctx_set_current(g->ctx);
	cuda.mem_host_unregister(g->stage);
	munmap(g->stage, (size_t)STAGE_BUFS * STAGE_BYTES);
	g->stage = NULL;
	cuda.mem_free(g->base);
	cuda.primary_ctx_release(g->dev);
}

/* A staging buffer of the pool's own: several workers may copy at once. */
static uint8_t *stage_get(struct gpu *g, unsigned *slot)
{
	pthread_mutex_lock(&g->lock);
	while (g->stage_busy == (1u << STAGE_BUFS) - 1)
		pthread_cond_wait(&g->freed, &g->lock);
	for (*slot = 0; g->stage_busy & (1u << *slot); (*slot)++)
		;
	g->stage_busy |= 1u << *slot;
	pthread_mutex_unlock(&g->lock);
	return g->stage + (size_t)*slot * STAGE_BYTES;
}

static void stage_put(struct gpu *g, unsigned slot)
{
	pthread_mutex_lock(&g->lock);
	g->stage_busy &= ~(1u << slot);
	pthread_cond_signal(&g->freed);
	pthread_mutex_unlock(&g->lock);
}

static int gpu_io(struct pool *p, uint64_t poff, int fd, off_t off, uint8_t *ptr, uint64_t len,
		  bool to_gpu)
{
	struct gpu *g = p->gpu;
	unsigned slot;
	uint8_t *buf;
	int err = 0;
	cu_result r;

	if (!g->stage || poff > p->capacity || len > p->capacity - poff)
		return -EINVAL;
	buf = stage_get(g, &slot);
	/* Each worker thread makes the context current for itself. */
	r = cuda.ctx_set_current(g->ctx);
	if (r != CU_SUCCESS)
		err = cu_errno(p, "cuCtxSetCurrent", r);
	for (uint64_t done = 0; !err && done < len; done += STAGE_BYTES) {
		uint64_t n = len - done < STAGE_BYTES ? len - done : STAGE_BYTES;
		uint8_t *at = ptr ? ptr + done : NULL;

		if (to_gpu) {
			err = copy_local_to_buf(fd, off + (off_t)done, at, buf, n);
			if (err)
				break;
			r = cuda.memcpy_htod(g->base + poff + done, buf, n);
		} else {
			r = cuda.memcpy_dtoh(buf, g->base + poff + done, n);
			if (r == CU_SUCCESS)
				err = copy_buf_to_local(fd, off + (off_t)done, at, buf, n);
		}
		if (r != CU_SUCCESS)
			err = cu_errno(p, to_gpu ? "cuMemcpyHtoD" : "cuMemcpyDtoH", r);
	}
	stage_put(g, slot);
	return err;
}

static int gpu_read(struct pool *p, uint64_t poff, int fd, off_t off, uint8_t *ptr, uint64_t len)
{
	return gpu_io(p, poff, fd, off, ptr, len, false);
}

static int gpu_write(struct pool *p, uint64_t poff, int fd, off_t off, const uint8_t *ptr,
		     uint64_t len)
{
	return gpu_io(p, poff, fd, off, (uint8_t *)ptr, len, true);
}

static int gpu_copy_peer(struct pool *src, uint64_t soff, struct pool *dst, uint64_t doff,
			 uint64_t len)
{
	struct gpu *s = src->gpu, *d = dst->gpu;
	cu_result r = cuda.ctx_set_current(d->ctx);

	if (r == CU_SUCCESS)
		r = cuda.memcpy_peer(d->base + doff, d->ctx, s->base + soff, s->ctx, len);
	return r == CU_SUCCESS ? 0 : cu_errno(dst, "cuMemcpyPeer", r);
}

const struct pool_ops pool_gpu_ops = {
	.kind = PM_KIND_GPU,
	.name = "gpu",
	.create = gpu_create,
	.destroy = gpu_destroy,
	.read = gpu_read,
	.write = gpu_write,
	.copy_peer = gpu_copy_peer,
};

bool gpu_can_peer(const struct pool *a, const struct pool *b)
{
	int can = 0;

	if (a->ops != &pool_gpu_ops || b->ops != &pool_gpu_ops)
		return false;
	return cuda.device_can_access_peer(&can, ((struct gpu *)b->gpu)->dev,
					   ((struct gpu *)a->gpu)->dev) == CU_SUCCESS &&
	       can;
}

int gpu_pools_add(struct broker *b)
{
	char why[256] = "", name[PM_NAME_MAX];
	int n = 0, r = cuda_load(&cuda, why, sizeof(why));
	cu_result cr;

	if (r < 0) {
		blog(r == -ENOENT ? LOG_DEBUG : LOG_INFO, "no GPU pools: %s", why);
		return 0;
	}
	cr = cuda.device_get_count(&n);
	if (cr != CU_SUCCESS) {
		blog(LOG_WARN, "no GPU pools: cuDeviceGetCount: %s",
		     cuda_error(&cuda, cr, why, sizeof(why)));
		n = 0;
	}
	for (int i = 0; i < n; i++) {
		char busid[32] = "", model[128] = "";
		const char *what = "cuDeviceGet";
		size_t total = 0;
		struct gpu *g;
		struct pool *p;

		g = calloc(1, sizeof(*g));
		if (!g)
			return -ENOMEM;
		cr = cuda.device_get(&g->dev, i);
		if (cr == CU_SUCCESS) {
			what = "cuDeviceTotalMem";
			cr = cuda.device_total_mem(&total, g->dev);
		}
		if (cr != CU_SUCCESS) {
			blog(LOG_WARN, "CUDA device %d: no GPU pool: %s: %s", i, what,
			     cuda_error(&cuda, cr, why, sizeof(why)));
			free(g);
			continue;
		}
		cuda.device_get_pci_bus_id(busid, sizeof(busid), g->dev);
		cuda.device_get_name(model, sizeof(model), g->dev);
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
		p->gpu = g;
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
		if (p->ops == &pool_gpu_ops && p->gpu) {
			struct gpu *g = p->gpu;

			pthread_mutex_destroy(&g->lock);
			pthread_cond_destroy(&g->freed);
			free(g);
			p->gpu = NULL;
		}
	if (cuda.lib)
		cuda_unload(&cuda);
}
