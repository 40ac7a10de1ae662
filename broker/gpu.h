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
};

/*
 * A range of an allocation's memfd, mapped in the broker and registered
 * with the driver (pinned), so that the DMA engine reads it in place
 * (xfer_cuda.c). The pool's list, under its lock, least recently used
 * first.
 */
struct gpu_reg {
	struct gpu_reg *prev, *next;
	uint64_t dev, ino;  /* the memfd's file */
	uint64_t off, len;  /* the range of it */
	uint8_t *map;
	uint64_t probe;     /* where in map the last copy out of it started */
	unsigned refs;      /* copies using it */
	bool ready;         /* registered (not yet: being registered by refs' copy) */
	bool dead;          /* to go once unused: the allocation is gone, or stale */
	bool suspect;       /* a copy went out of it: the range may be punched now */
};

struct gpu_reg_stats {
	uint64_t registered, reused, dropped_stale, evicted;
	uint64_t staged_cap, staged_refused; /* copies staged instead, and why */
	uint64_t peak;      /* most bytes registered at once */
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
	pthread_mutex_t lock; /* lanes, regs, peer state */
	pthread_cond_t freed;
	/* Zero copy: registered client memory, while the pool is open. */
	struct gpu_reg *reg_lru, *reg_mru;
	uint64_t reg_bytes; /* registered or being registered: at most gpu_reg_cap */
	struct gpu_reg_stats reg_stats;
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
/*
 * The allocation is being freed: its registrations go (now, or as soon as
 * the copies using them finish). For the loop thread, from
 * engine_forget_alloc; without it they linger, within the cap, until
 * evicted or the pool closes.
 */
void gpu_forget_alloc(struct broker *b, const struct allocation *al);
#endif
