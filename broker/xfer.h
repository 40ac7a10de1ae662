/* SPDX-License-Identifier: MIT */
/*
 * The transport layer: every byte the broker moves goes through one of its
 * copy engines, and nothing else in the broker knows how bytes move. The
 * migration engine (migrate.c) picks an engine per copy from the pools at
 * either end (xfer_pick); copy workers run it (copy.c); the engine tallies
 * what it did, and the loop thread adds that to the engine's counters
 * (pmctl stats, PM_OP_ENGINES).
 *
 * One file per engine:
 *   xfer_cpu.c    the CPU: pools the broker maps (BAR, emulated) and host
 *                 memory through the allocation's memfd, on parallel workers
 *   xfer_cuda.c   the GPU's copy engines through the CUDA driver API
 *   xfer_verbs.c  RDMA WRITE and READ to a peer broker's memory
 *   xfer_block.c  files and block devices to and from chunks (PM_OP_FILE_IO):
 *                 the storage device's DMA, into p2pmem peer to peer
 * A dma-buf engine is another file and another entry in the table
 * (xfer.c); its pools name it in their pool_ops.
 *
 * Counting: bytes_zero_copy are bytes a DMA engine moved straight from or to
 * their own pages; bytes_staged went through a staging buffer on the way
 * (copied by the CPU into registered memory first, or bounced through host
 * memory between two pools with no path between them). Plain CPU copies are
 * neither: the CPU is the engine. p2p: the part of zero_copy a device's DMA
 * engine moved into or out of another device's memory.
 */
#ifndef PAGEMAP_XFER_H
#define PAGEMAP_XFER_H

#include <stdint.h>
#include <sys/types.h>

struct pool;
struct broker;
struct pm_engine_info;

enum xfer_engine_id {
	XFER_CPU,
	XFER_CUDA,
	XFER_VERBS,
	XFER_BLOCK,
	XFER_ENGINES
};

/* What one copy did, filled by the engine on the worker. */
struct xfer_tally {
	uint64_t zero_copy;
	uint64_t staged;
	uint64_t p2p;
};

/* An engine's counters since the broker started (loop thread only). */
struct xfer_stats {
	uint64_t bytes;
	uint64_t zero_copy;
	uint64_t staged;
	uint64_t p2p_dma;
	uint64_t copies;
	uint64_t failed;
	uint64_t busy_ns; /* time workers spent in this engine's copies */
};

/*
 * The host side of a transfer: the allocation's memfd at off when fd >= 0,
 * else memory at ptr (a pool the broker maps).
 */
struct xfer_local {
	int fd;
	off_t off;
	uint8_t *ptr;
};

/*
 * An engine for pools the broker cannot map (p->map NULL). Each call runs
 * on a copy worker, several at once; 0 or -errno.
 */
struct xfer_engine {
	enum xfer_engine_id id;
	const char *name;
	/* The pool's bytes at poff into the local side, and back. */
	int (*read)(struct pool *p, uint64_t poff, const struct xfer_local *to, uint64_t len,
		    struct xfer_tally *t);
	int (*write)(struct pool *p, uint64_t poff, const struct xfer_local *from, uint64_t len,
		     struct xfer_tally *t);
	/* Two pools of this engine with a peer path: one DMA; NULL: none. */
	int (*copy_peer)(struct pool *src, uint64_t soff, struct pool *dst, uint64_t doff,
			 uint64_t len, struct xfer_tally *t);
};

extern const struct xfer_engine xfer_cpu;
extern const struct xfer_engine xfer_cuda;
extern const struct xfer_engine xfer_verbs;
extern const struct xfer_engine xfer_block;

/* The engine that moves a pool's bytes (NULL pool: host memory). */
const struct xfer_engine *xfer_engine_of(const struct pool *p);
/*
 * The engine a copy between from and to runs on (NULL: host memory): the
 * DMA engine of whichever side has one, the destination's when both do;
 * the CPU between memory it maps.
 */
const struct xfer_engine *xfer_pick(const struct pool *from, const struct pool *to);
/* Adds one finished copy to its engine's counters. */
void xfer_account(struct broker *b, enum xfer_engine_id id, uint64_t len,
		  const struct xfer_tally *t, uint64_t ns, int err);
/* Fills up to max records of the engines' counters; returns how many. */
unsigned xfer_describe(const struct broker *b, struct pm_engine_info *out, unsigned max);
#endif
