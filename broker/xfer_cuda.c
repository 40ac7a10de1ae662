/* SPDX-License-Identifier: MIT */
/*
 * The CUDA engine (xfer.h): bytes between host memory and a GPU pool go
 * through a few pinned staging buffers per pool with cuMemcpyHtoD/DtoH
 * (counted as staged), and between two GPUs that reach each other with
 * cuMemcpyPeer (zero copy). The pool's life is pool_gpu.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

#include "broker.h"
#include "copy.h"
#include "gpu.h"
#include "xfer.h"

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

static int gpu_io(struct pool *p, uint64_t poff, const struct xfer_local *loc, uint64_t len,
		  bool to_gpu, struct xfer_tally *t)
{
	int fd = loc->fd;
	off_t off = loc->off;
	uint8_t *ptr = loc->ptr;
	struct gpu *g = p->gpu;
	unsigned slot;
	uint8_t *buf;
	int err = 0;
	cu_result r;

	if (!g->stage || poff > p->capacity || len > p->capacity - poff)
		return -EINVAL;
	buf = stage_get(g, &slot);
	/* Each worker thread makes the context current for itself. */
	r = gpu_cuda.ctx_set_current(g->ctx);
	if (r != CU_SUCCESS)
		err = gpu_cu_errno(p, "cuCtxSetCurrent", r);
	for (uint64_t done = 0; !err && done < len; done += STAGE_BYTES) {
		uint64_t n = len - done < STAGE_BYTES ? len - done : STAGE_BYTES;
		uint8_t *at = ptr ? ptr + done : NULL;

		if (to_gpu) {
			err = copy_local_to_buf(fd, off + (off_t)done, at, buf, n);
			if (err)
				break;
			r = gpu_cuda.memcpy_htod(g->base + poff + done, buf, n);
		} else {
			r = gpu_cuda.memcpy_dtoh(buf, g->base + poff + done, n);
			if (r == CU_SUCCESS)
				err = copy_buf_to_local(fd, off + (off_t)done, at, buf, n);
		}
		if (r != CU_SUCCESS)
			err = gpu_cu_errno(p, to_gpu ? "cuMemcpyHtoD" : "cuMemcpyDtoH", r);
	}
	stage_put(g, slot);
	if (!err)
		t->staged += len;
	return err;
}

static int gpu_read(struct pool *p, uint64_t poff, const struct xfer_local *to, uint64_t len,
		    struct xfer_tally *t)
{
	return gpu_io(p, poff, to, len, false, t);
}

static int gpu_write(struct pool *p, uint64_t poff, const struct xfer_local *from, uint64_t len,
		     struct xfer_tally *t)
{
	return gpu_io(p, poff, from, len, true, t);
}

static int gpu_copy_peer(struct pool *src, uint64_t soff, struct pool *dst, uint64_t doff,
			 uint64_t len, struct xfer_tally *t)
{
	struct gpu *s = src->gpu, *d = dst->gpu;
	cu_result r = gpu_cuda.ctx_set_current(d->ctx);

	if (r == CU_SUCCESS)
		r = gpu_cuda.memcpy_peer(d->base + doff, d->ctx, s->base + soff, s->ctx, len);
	if (r != CU_SUCCESS)
		return gpu_cu_errno(dst, "cuMemcpyPeer", r);
	t->zero_copy += len;
	return 0;
}

const struct xfer_engine xfer_cuda = {
	.id = XFER_CUDA,
	.name = "cuda",
	.read = gpu_read,
	.write = gpu_write,
	.copy_peer = gpu_copy_peer,
};
