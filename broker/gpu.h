/* SPDX-License-Identifier: MIT */
/* Inside pool_gpu.c (the pool's life) and xfer_cuda.c (its copies): one GPU. */
#ifndef PAGEMAP_GPU_H
#define PAGEMAP_GPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cuda_api.h"

struct pool;
struct broker;
struct allocation;
struct regcache;
struct regcache_ent;

/*
 * Lanes: what one copy holds while it runs (a copy worker takes one, and
 * waits while all are taken): a stream of its own, and a ring of
 * STAGE_DEPTH pinned staging pieces of STAGE_PIECE bytes with an event
 * each, so that the CPU fills (or empties) one piece while the DMA engine
 * moves the ones before it. 4 x 8 x 512 KiB: 16 MiB pinned per pool.
 */
#define STAGE_LANES 4
#define STAGE_DEPTH 8
#define STAGE_PIECE (512u << 10)
#define STAGE_LANE_BYTES ((size_t)STAGE_DEPTH * STAGE_PIECE)
#define STAGE_BYTES ((size_t)STAGE_LANES * STAGE_LANE_BYTES)

/* Host -> VRAM copies shorter than this are staged, never registered. */
#define REG_MIN (256u << 10)

extern struct cuda_api gpu_cuda; /* one driver per process */
extern uint64_t gpu_reg_cap;     /* pinned bytes of client memory per pool */
/* Registrations stay while unused, for a later copy of the same range
 * (migration.gpu_pin_keep); by default each goes with its copy. */
extern bool gpu_reg_keep;
extern int gpu_pagemap_fd;       /* /proc/self/pagemap; -1: no zero copy */

struct gpu_lane {
	cu_stream stream;
	cu_event ev[STAGE_DEPTH];
	uint8_t *buf;  /* STAGE_DEPTH pieces, inside struct gpu's stage */
	bool busy;     /* taken by a copy, under the pool's lock */
	bool broken;   /* a failed copy could not be waited for: never reused */
	/* The registration a broken copy's DMA may still read: put when the
	 * pool closes, its stream gone. */
	struct regcache_ent *held;
};

struct gpu {
	cu_device dev;
	int ordinal;
	char bdf[16];
	cu_context ctx;     /* primary context, retained while the pagemap lives */
	cu_deviceptr base;  /* the pool's memory */
	uint8_t *stage;     /* STAGE_BYTES, pinned; NULL while the pool is closed */
	struct gpu_lane lanes[STAGE_LANES];
	unsigned lanes_ok;  /* lanes not broken */
	pthread_mutex_t lock; /* lanes, reg_told, peer state */
	pthread_cond_t freed;
	/* Zero copy: registered client memory (xfer_cuda.c), while the pool
	 * is open; NULL: zero copy off (gpu_reg_cap 0, or no gpu_pagemap_fd). */
	struct regcache *regs;
	bool reg_told;      /* the first refused registration was logged */
	/* Peer access enabled from this context to device i's (bit i), this
	 * pool's life; peer_tried: tried, whatever the driver said. */
	uint64_t peer_tried;
};

/* Logs a failed driver call against the pool; -ENOMEM or -EIO. */
int gpu_cu_errno(struct pool *p, const char *what, cu_result r);
/* xfer_cuda.c: a pool's lanes and registrations, made at its creation and
 * dropped (registrations unregistered) when it is destroyed; 0 or -errno. */
int gpu_lanes_init(struct pool *p);
void gpu_lanes_fini(struct pool *p);
#endif
