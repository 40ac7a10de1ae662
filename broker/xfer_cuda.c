/* SPDX-License-Identifier: MIT */
/*
 * The CUDA engine (xfer.h): bytes between host memory and a GPU pool, and
 * between two GPU pools. The pool's life is pool_gpu.c's.
 *
 * Each copy takes one of the pool's lanes (gpu.h): a stream of its own and
 * a ring of pinned staging pieces, each with an event. Copies run on the
 * lane's stream with cuMemcpyHtoDAsync/DtoHAsync, several pieces in flight:
 *
 * - Host -> VRAM, zero copy: the allocation's memfd range is mapped in the
 *   broker and registered with cuMemHostRegister, and one async copy reads
 *   it in place (counted as zero_copy). The pool's registration cache
 *   (regcache.h) holds at most gpu_reg_cap bytes registered at once; a
 *   registration goes with its copy, or with gpu_reg_keep stays for the
 *   next copy of the range, least recently used first evicted to make room.
 * - Host -> VRAM, staged (a copy from a pool the broker maps, one shorter
 *   than REG_MIN, one over the cap, a registration the driver refused):
 *   the CPU fills piece N+1 (pread) while the DMA engine moves piece N; a
 *   piece is refilled once its event says its last DMA is over.
 * - VRAM -> host, always staged: the DMA engine empties piece N+1 while the
 *   CPU writes piece N out (pwrite). Never into registered pages: pinning a
 *   range of the memfd puts a page into every hole of it at once, and a
 *   client touching a chunk on its way home would then find those pages,
 *   zeros until the DMA lands, instead of faulting (userfaultfd's missing
 *   mode) and waiting for the chunk. pwrite fills each page before the
 *   client can see it.
 * - GPU -> GPU: cuMemcpyPeer (zero copy), peer access enabled first where
 *   the driver allows it.
 *
 * A registration is only good while its pages are the file's: moving a
 * chunk to a device punches its host pages out of the memfd (copy.c), and
 * pinned pages then stay pinned, detached from the file, while the client's
 * next touch gets new ones. The broker never touches its mapping of a
 * registered range with the CPU, so each of its pages stays mapped exactly
 * until a punch takes it: before a registration is used again every page of
 * the range must still be mapped (/proc/self/pagemap's present bit), or it
 * is dropped and the range registered anew (the cache's valid callback).
 * The oldest kept registrations are checked (one page) at the start of
 * every copy, and dropped once punched (regcache_sweep), so that detached
 * pages are not kept pinned for long; an allocation's go when it is freed
 * (gpu_forget_alloc).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"
#include "gpu.h"
#include "regcache.h"
#include "xfer.h"

#define SWEEP_MAX 16 /* kept registrations a copy checks for punched pages */

static uint64_t page_size(void)
{
	static uint64_t pg;

	if (!pg)
		pg = (uint64_t)sysconf(_SC_PAGESIZE);
	return pg;
}

/* ---- registrations (zero copy) ---- */

/*
 * Through a registration cache (regcache.h) of the pool's own rather than
 * one per broker keyed by context: migration.gpu_pin_bytes caps each pool,
 * the zero-copy counters are each pool's, and its registrations live as
 * long as its context does (made with the lanes, gone with them). Every
 * callback runs with the pool's context current: a copy worker's, or the
 * loop thread's in gpu_forget_alloc and at the pool's close.
 */

/* A range of an allocation's memfd, mapped here and registered. */
struct creg {
	uint8_t *map;
	uint64_t len;
};

/* Registering failed: the copy is staged; said once a pool. */
static void reg_refused(struct pool *p, const char *what, const char *why)
{
	struct gpu *g = p->k.gpu;
	bool tell;

	pthread_mutex_lock(&g->lock);
	tell = !g->reg_told;
	g->reg_told = true;
	pthread_mutex_unlock(&g->lock);
	blog(tell ? LOG_WARN : LOG_DEBUG,
	     "%s: %s: %s; host -> VRAM copies that cannot be registered are staged", p->device,
	     what, why);
}

/* Maps the range and registers it with the pool's context (dom), for the
 * DMA engine to read. */
static int reg_make(void *ctx, void *dom, int fd, off_t off, uint64_t len, unsigned flags,
		    void **handle, uint8_t **base)
{
	struct creg *c = calloc(1, sizeof(*c));
	char buf[64];
	cu_result r;

	if (c)
		c->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	if (!c || c->map == MAP_FAILED) {
		int e = -errno;

		reg_refused(ctx, c ? "mapping the allocation" : "registration", strerror(-e));
		free(c);
		return e;
	}
	c->len = len;
	r = gpu_cuda.mem_host_register(c->map, len, 0);
	if (r == CU_SUCCESS) {
		*handle = c;
		*base = c->map;
		return 0;
	}
	reg_refused(ctx, "cuMemHostRegister", cuda_error(&gpu_cuda, r, buf, sizeof(buf)));
	munmap(c->map, len);
	free(c);
	return -EIO;
}

static void reg_release(void *ctx, void *dom, void *handle)
{
	struct creg *c = handle;
	cu_result r = gpu_cuda.mem_host_unregister(c->map);

	if (r != CU_SUCCESS)
		gpu_cu_errno(ctx, "cuMemHostUnregister", r);
	munmap(c->map, c->len);
	free(c);
}

/* Whether every page of [at, at + len) of the registration is still mapped
 * here (see the top). */
static bool pages_ours(void *ctx, void *dom, void *handle, uint64_t at, uint64_t len)
{
	const uint64_t pg = page_size();
	const uint8_t *p = ((struct creg *)handle)->map + at;
	uint64_t i = (uintptr_t)p / pg, last = ((uintptr_t)p + len - 1) / pg;
	uint64_t e[512];

	if (gpu_pagemap_fd < 0 || !len)
		return false;
	while (i <= last) {
		size_t k = last - i + 1 < 512 ? (size_t)(last - i + 1) : 512;

		if (pread(gpu_pagemap_fd, e, k * sizeof(e[0]), (off_t)(i * sizeof(e[0]))) !=
		    (ssize_t)(k * sizeof(e[0])))
			return false;
		for (size_t j = 0; j < k; j++)
			if (!(e[j] >> 63))
				return false;
		i += k;
	}
	return true;
}

static const struct regcache_ops reg_ops = {
	.reg = reg_make,
	.unreg = reg_release,
	.valid = pages_ours,
};

void gpu_forget_alloc(struct broker *b, const struct allocation *al)
{
	for (struct pool *p = b->pools; p; p = p->next) {
		struct gpu *g = p->k.gpu;

		/* Without the context they are left to eviction or the pool's close. */
		if (p->ops == &pool_gpu_ops && g && g->regs &&
		    gpu_cuda.ctx_set_current(g->ctx) == CU_SUCCESS)
			regcache_invalidate(g->regs, (dev_t)al->dev, (ino_t)al->ino);
	}
}

/* ---- lanes ---- */

static void lanes_destroy(struct gpu *g)
{
	for (unsigned i = 0; i < STAGE_LANES; i++) {
		struct gpu_lane *l = &g->lanes[i];

		/* Destroying a stream lets its work finish first. */
		for (unsigned k = 0; k < STAGE_DEPTH; k++)
			if (l->ev[k])
				gpu_cuda.event_destroy(l->ev[k]);
		if (l->stream)
			gpu_cuda.stream_destroy(l->stream);
		/* A broken copy's registration: no DMA reads it any more. */
		if (l->held)
			regcache_put(g->regs, l->held);
		memset(l, 0, sizeof(*l));
	}
	g->lanes_ok = 0;
}

int gpu_lanes_init(struct pool *p)
{
	struct gpu *g = p->k.gpu;
	const char *what = NULL;
	cu_result r = CU_SUCCESS;

	memset(g->lanes, 0, sizeof(g->lanes));
	for (unsigned i = 0; i < STAGE_LANES && !what; i++) {
		struct gpu_lane *l = &g->lanes[i];

		l->buf = g->stage + i * STAGE_LANE_BYTES;
		r = gpu_cuda.stream_create(&l->stream, CU_STREAM_NON_BLOCKING);
		if (r != CU_SUCCESS) {
			l->stream = NULL;
			what = "cuStreamCreate";
		}
		for (unsigned k = 0; k < STAGE_DEPTH && !what; k++) {
			r = gpu_cuda.event_create(&l->ev[k], CU_EVENT_DISABLE_TIMING);
			if (r != CU_SUCCESS) {
				l->ev[k] = NULL;
				what = "cuEventCreate";
			}
		}
	}
	if (what) {
		int e = gpu_cu_errno(p, what, r);

		lanes_destroy(g);
		return e;
	}
	g->lanes_ok = STAGE_LANES;
	g->reg_told = false;
	g->regs = NULL;
	if (gpu_reg_cap && gpu_pagemap_fd >= 0) {
		/* Kept ones are bounded by the cap, not by their number. */
		g->regs = regcache_new(&reg_ops, p, gpu_reg_cap, UINT_MAX);
		if (!g->regs) {
			lanes_destroy(g);
			return -ENOMEM;
		}
	}
	return 0;
}

void gpu_lanes_fini(struct pool *p)
{
	struct gpu *g = p->k.gpu;
	struct regcache_stats s;

	/* Streams first: what they still run is over once they are gone. */
	lanes_destroy(g);
	if (!g->regs)
		return;
	regcache_stats(g->regs, &s);
	regcache_destroy(g->regs);
	g->regs = NULL;
	blog(LOG_INFO, "%s: zero copy: %llu ranges registered, %llu reused, %llu dropped "
		       "(punched), %llu evicted; staged instead: %llu over the cap, %llu "
		       "refused; at most %llu bytes registered (cap %llu)",
	     p->device, (unsigned long long)s.registrations, (unsigned long long)s.hits,
	     (unsigned long long)s.stale, (unsigned long long)s.evictions,
	     (unsigned long long)s.refused, (unsigned long long)s.failed,
	     (unsigned long long)s.pinned_peak, (unsigned long long)s.cap);
}

/* A lane of the pool's, waiting while all are taken; NULL: all broken. */
static struct gpu_lane *lane_get(struct gpu *g)
{
	struct gpu_lane *l = NULL;

	pthread_mutex_lock(&g->lock);
	while (g->lanes_ok) {
		for (unsigned i = 0; i < STAGE_LANES && !l; i++)
			if (!g->lanes[i].busy && !g->lanes[i].broken)
				l = &g->lanes[i];
		if (l)
			break;
		pthread_cond_wait(&g->freed, &g->lock);
	}
	if (l)
		l->busy = true;
	pthread_mutex_unlock(&g->lock);
	return l;
}

static void lane_put(struct gpu *g, struct gpu_lane *l, bool broken)
{
	pthread_mutex_lock(&g->lock);
	l->busy = false;
	if (broken) {
		l->broken = true;
		g->lanes_ok--;
	}
	pthread_cond_broadcast(&g->freed);
	pthread_mutex_unlock(&g->lock);
}

/*
 * After a failure: everything queued on the lane's stream is over before
 * its pieces (or a registration) may be used again. false: the driver
 * cannot say so, and the lane is never used again.
 */
static bool lane_drain(struct pool *p, struct gpu_lane *l)
{
	cu_result r = gpu_cuda.stream_synchronize(l->stream);

	if (r == CU_SUCCESS)
		return true;
	gpu_cu_errno(p, "cuStreamSynchronize", r);
	blog(LOG_WARN, "%s: a copy lane is out of use (its stream cannot be waited for)",
	     p->device);
	return false;
}

/* ---- copies ---- */

static uint64_t piece_len(uint64_t len, uint64_t i)
{
	uint64_t at = i * STAGE_PIECE;

	return len - at < STAGE_PIECE ? len - at : STAGE_PIECE;
}

/* Host -> VRAM through the lane's pieces: fill one while the others move. */
static int staged_to_gpu(struct pool *p, struct gpu_lane *l, uint64_t poff,
			 const struct xfer_local *loc, uint64_t len, bool *broken)
{
	struct gpu *g = p->k.gpu;
	uint64_t pieces = (len + STAGE_PIECE - 1) / STAGE_PIECE;
	const char *what = NULL;
	cu_result r = CU_SUCCESS;
	int err = 0;

	for (uint64_t i = 0; i < pieces; i++) {
		unsigned slot = (unsigned)(i % STAGE_DEPTH);
		uint64_t at = i * STAGE_PIECE, n = piece_len(len, i);
		uint8_t *buf = l->buf + (size_t)slot * STAGE_PIECE;

		/* The buffer's last DMA must be over before it is refilled. */
		if (i >= STAGE_DEPTH && (r = gpu_cuda.event_synchronize(l->ev[slot])) != CU_SUCCESS) {
			what = "cuEventSynchronize";
			break;
		}
		err = copy_local_to_buf(loc->fd, loc->off + (off_t)at, loc->ptr ? loc->ptr + at : NULL,
					buf, n);
		if (err)
			break;
		r = gpu_cuda.memcpy_htod_async(g->base + poff + at, buf, n, l->stream);
		if (r != CU_SUCCESS) {
			what = "cuMemcpyHtoDAsync";
			break;
		}
		r = gpu_cuda.event_record(l->ev[slot], l->stream);
		if (r != CU_SUCCESS) {
			what = "cuEventRecord";
			break;
		}
	}
	if (!err && !what && (r = gpu_cuda.stream_synchronize(l->stream)) != CU_SUCCESS)
		what = "cuStreamSynchronize";
	if (what)
		err = gpu_cu_errno(p, what, r);
	if (err && !lane_drain(p, l))
		*broken = true;
	return err;
}

/* VRAM -> host through the lane's pieces: write one out while the next move. */
static int staged_from_gpu(struct pool *p, struct gpu_lane *l, uint64_t poff,
			   const struct xfer_local *loc, uint64_t len, bool *broken)
{
	struct gpu *g = p->k.gpu;
	uint64_t pieces = (len + STAGE_PIECE - 1) / STAGE_PIECE, issued = 0, done = 0;
	const char *what = NULL;
	cu_result r = CU_SUCCESS;
	int err = 0;

	while (!err && done < pieces) {
		unsigned slot;
		uint64_t at;

		for (; issued < pieces && issued - done < STAGE_DEPTH; issued++) {
			slot = (unsigned)(issued % STAGE_DEPTH);
			r = gpu_cuda.memcpy_dtoh_async(l->buf + (size_t)slot * STAGE_PIECE,
						       g->base + poff + issued * STAGE_PIECE,
						       piece_len(len, issued), l->stream);
			if (r != CU_SUCCESS) {
				what = "cuMemcpyDtoHAsync";
				break;
			}
			r = gpu_cuda.event_record(l->ev[slot], l->stream);
			if (r != CU_SUCCESS) {
				what = "cuEventRecord";
				break;
			}
		}
		if (what)
			break;
		slot = (unsigned)(done % STAGE_DEPTH);
		r = gpu_cuda.event_synchronize(l->ev[slot]);
		if (r != CU_SUCCESS) {
			what = "cuEventSynchronize";
			break;
		}
		at = done * STAGE_PIECE;
		err = copy_buf_to_local(loc->fd, loc->off + (off_t)at, loc->ptr ? loc->ptr + at : NULL,
					l->buf + (size_t)slot * STAGE_PIECE, piece_len(len, done));
		done++;
	}
	if (what)
		err = gpu_cu_errno(p, what, r);
	if (err && !lane_drain(p, l))
		*broken = true;
	return err;
}

/* Host -> VRAM straight out of registered pages: one DMA. */
static int direct_to_gpu(struct pool *p, struct gpu_lane *l, uint64_t poff, const uint8_t *src,
			 uint64_t len, bool *broken)
{
	struct gpu *g = p->k.gpu;
	const char *what = "cuMemcpyHtoDAsync";
	cu_result r = gpu_cuda.memcpy_htod_async(g->base + poff, src, len, l->stream);
	int err;

	if (r == CU_SUCCESS) {
		what = "cuStreamSynchronize";
		r = gpu_cuda.stream_synchronize(l->stream);
	}
	if (r == CU_SUCCESS)
		return 0;
	err = gpu_cu_errno(p, what, r);
	if (!lane_drain(p, l))
		*broken = true;
	return err;
}

static int gpu_io(struct pool *p, uint64_t poff, const struct xfer_local *loc, uint64_t len,
		  bool to_gpu, struct xfer_tally *t)
{
	struct gpu *g = p->k.gpu;
	struct regcache_ent *reg = NULL;
	struct gpu_lane *l;
	bool broken = false;
	cu_result r;
	int err;

	if (!g->stage || poff > p->capacity || len > p->capacity - poff)
		return -EINVAL;
	l = lane_get(g);
	if (!l)
		return -EIO; /* every lane broken: the device is gone bad */
	/* Each worker thread makes the context current for itself. */
	r = gpu_cuda.ctx_set_current(g->ctx);
	if (r != CU_SUCCESS) {
		err = gpu_cu_errno(p, "cuCtxSetCurrent", r);
		lane_put(g, l, false);
		return err;
	}
	if (g->regs) {
		regcache_sweep(g->regs, SWEEP_MAX);
		/* Else staged: regcache counts why (over the cap, refused). */
		if (to_gpu && loc->fd >= 0 && len >= REG_MIN)
			regcache_get(g->regs, g->ctx, loc->fd, loc->off, len,
				     REGCACHE_PIN | (gpu_reg_keep ? REGCACHE_KEEP : 0), &reg);
	}
	if (reg) {
		err = direct_to_gpu(p, l, poff, regcache_addr(reg, loc->off), len, &broken);
		/* A DMA that may still run keeps its pages until the pool closes. */
		if (broken)
			l->held = reg;
		else
			regcache_put(g->regs, reg);
		if (!err)
			t->zero_copy += len;
	} else {
		err = to_gpu ? staged_to_gpu(p, l, poff, loc, len, &broken)
			     : staged_from_gpu(p, l, poff, loc, len, &broken);
		if (!err)
			t->staged += len;
	}
	lane_put(g, l, broken);
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

/*
 * Lets the destination's context reach the source's memory directly, once
 * per pair and pool life (pool_gpu.c forgets it when either closes). Where
 * the driver says no, cuMemcpyPeer still works, through host memory.
 */
static void peer_enable(struct pool *dst, struct gpu *d, const struct gpu *s)
{
	uint64_t bit = s->ordinal < 64 ? 1ull << s->ordinal : 0;
	char buf[64];
	bool tried;
	cu_result r;

	if (!gpu_cuda.ctx_enable_peer_access || !bit)
		return;
	pthread_mutex_lock(&d->lock);
	tried = d->peer_tried & bit;
	d->peer_tried |= bit;
	pthread_mutex_unlock(&d->lock);
	if (tried)
		return;
	r = gpu_cuda.ctx_enable_peer_access(s->ctx, 0);
	if (r == CU_SUCCESS || r == CU_ERROR_PEER_ACCESS_ALREADY_ENABLED)
		blog(LOG_DEBUG, "%s: peer access to cuda%d enabled", dst->device, s->ordinal);
	else
		blog(LOG_INFO, "%s: no peer access to cuda%d (cuCtxEnablePeerAccess: %s): "
			       "cuMemcpyPeer between them may go through host memory",
		     dst->device, s->ordinal, cuda_error(&gpu_cuda, r, buf, sizeof(buf)));
}

/*
 * One DMA on a lane of the destination's, waited for: a synchronous
 * cuMemcpyPeer may return before a copy between two devices is over, and
 * the source's space is reused as soon as the copy says done.
 */
static int gpu_copy_peer(struct pool *src, uint64_t soff, struct pool *dst, uint64_t doff,
			 uint64_t len, struct xfer_tally *t)
{
	struct gpu *s = src->k.gpu, *d = dst->k.gpu;
	const char *what = "cuCtxSetCurrent";
	struct gpu_lane *l;
	bool broken = false;
	cu_result r;
	int err;

	if (!s->stage || !d->stage || soff > src->capacity || len > src->capacity - soff ||
	    doff > dst->capacity || len > dst->capacity - doff)
		return -EINVAL;
	l = lane_get(d);
	if (!l)
		return -EIO;
	r = gpu_cuda.ctx_set_current(d->ctx);
	if (r == CU_SUCCESS) {
		peer_enable(dst, d, s);
		what = "cuMemcpyPeerAsync";
		r = gpu_cuda.memcpy_peer_async(d->base + doff, d->ctx, s->base + soff, s->ctx, len,
					       l->stream);
		if (r == CU_SUCCESS) {
			what = "cuStreamSynchronize";
			r = gpu_cuda.stream_synchronize(l->stream);
		}
	}
	if (r == CU_SUCCESS) {
		lane_put(d, l, false);
		t->zero_copy += len;
		return 0;
	}
	err = gpu_cu_errno(dst, what, r);
	if (strcmp(what, "cuCtxSetCurrent") && !lane_drain(dst, l))
		broken = true;
	lane_put(d, l, broken);
	return err;
}

const struct xfer_engine xfer_cuda = {
	.id = XFER_CUDA,
	.name = "cuda",
	.read = gpu_read,
	.write = gpu_write,
	.copy_peer = gpu_copy_peer,
};
