/* SPDX-License-Identifier: MIT */
/* Inside pool_gpu.c (the pool's life) and xfer_cuda.c (its copies): one GPU. */
#ifndef PAGEMAP_GPU_H
#define PAGEMAP_GPU_H

#include <pthread.h>
#include <stdint.h>

#include "cuda_api.h"

struct pool;

#define STAGE_BUFS 4
#define STAGE_BYTES (4u << 20)

extern struct cuda_api gpu_cuda; /* one driver per process */

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

/* Logs a failed driver call against the pool; -ENOMEM or -EIO. */
int gpu_cu_errno(struct pool *p, const char *what, cu_result r);
#endif
