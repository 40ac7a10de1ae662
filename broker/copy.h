/* SPDX-License-Identifier: MIT */
/*
 * The migration engine's worker threads and the one thing they do: move a
 * chunk's bytes. A copy is self-contained; workers touch nothing else.
 */
#ifndef PAGEMAP_COPY_H
#define PAGEMAP_COPY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "xfer.h"

enum copy_kind {
	CP_NONE,    /* nothing to copy (a valid replica is already there) */
	CP_TO_DEV,  /* host (the allocation's memfd) to a device pool */
	CP_TO_HOST, /* device pool to host */
	CP_DIRECT,  /* device to device, one copy */
	CP_BOUNCE,  /* device to device through a host buffer */
	CP_FILE_IN, /* file data into a chunk where it lives (PM_OP_FILE_IO) */
	CP_FILE_OUT, /* a chunk's data out to a file */
};

/* The file side of CP_FILE_IN and CP_FILE_OUT (xfer_block.c). */
struct copy_io {
	int fd;          /* the client's file; the job owns it */
	off_t off;       /* where this copy's bytes are in it */
	bool direct;     /* the fd is O_DIRECT: the storage device's DMA moves them */
	bool p2p;        /* the chunk is in p2pmem: that DMA is peer to peer */
	bool bounce;     /* through a host buffer whatever the kernel allows */
	bool drop_host;  /* a load into a device chunk: its host replica is stale */
	uint64_t chunk_off; /* the chunk's offset in the memfd (drop_host) */
	/* Set by the worker. */
	uint64_t done;   /* bytes read from or written to the file */
	bool dropped;    /* drop_host: the replica is gone */
	int fallback;    /* why DMA was refused and the bytes bounced: -errno, 0 */
};

/*
 * One copy: a run of nchunks neighbouring chunks of one allocation that go
 * the same way (batched by migrate.c: one copy and one hole punch for the
 * run, not one per chunk).
 */
struct copy {
	struct copy *next;
	enum copy_kind kind;
	const struct xfer_engine *engine; /* who moves the bytes (xfer_pick) */
	int memfd;       /* host side: the allocation's memfd ... */
	off_t file_off;  /* ... at this offset */
	/* ... and where the client maps that offset, with its userfaultfd
	 * (PM_OP_UFFD): copies home go there when they can; -1 when not. */
	int uffd;
	uint64_t uaddr;
	uint8_t *src, *dst; /* device sides: inside the pools' mappings */
	/* Sides the broker cannot map (their engine's read and write): pool, offset. */
	struct pool *rsrc, *rdst;
	uint64_t rsrc_off, rdst_off;
	uint64_t len;     /* nchunks * chunk_len */
	uint64_t chunk_len;
	uint64_t to_off;  /* the destination's offset in its pool */
	int dst_memfd;    /* an emulated destination pool's memfd, else -1 */
	bool discard;    /* no data: the destination is cleared, never left as it was */
	bool punch;      /* CP_TO_DEV: drop the host pages afterwards */
	/* The destination's crash records (recover.c), confirmed chunk by
	 * chunk once the data is in place and before the host pages go: they
	 * turn authoritative then. NULL when the pool keeps none. */
	struct pool *confirm;
	int err;         /* set by the worker: 0 or -errno */
	struct copy_io io; /* CP_FILE_*: the file; the chunk side is src or rsrc */
	struct xfer_tally tally; /* set by the worker: what the engine did */
	uint64_t ns;     /* set by the worker: time it took */
	/* For the loop thread, untouched by workers. */
	struct mig_job *job;
	struct allocation *al;
	uint64_t chunk;  /* the first */
	unsigned nchunks;
	struct pagemap *from, *to;
	bool keep_host;
};

struct copy_queue {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct copy *todo, **todo_tail, *done;
	pthread_t *threads;
	unsigned nthreads;
	int notify_fd; /* eventfd written after each completion */
	bool stop;
};

int copy_queue_start(struct copy_queue *q, unsigned nthreads, int notify_fd);
/* Lets copies in flight finish, then joins the workers; queued ones fail
 * with -ECANCELED and land on the done list. */
void copy_queue_stop(struct copy_queue *q);
void copy_queue_push(struct copy_queue *q, struct copy *cp);
/* Every completed copy, oldest first; the caller frees them. */
struct copy *copy_queue_take_done(struct copy_queue *q);
/*
 * memcpy that survives a device mapping going bad under it (a BAR whose
 * device was surprise-removed faults with SIGBUS): 0, or -EFAULT. src NULL
 * zeroes dst instead. For copy workers, which the queue sets up for it;
 * other threads get plain memcpy.
 */
int copy_guarded(void *dst, const void *src, size_t n);
/*
 * The local side of a transfer into or out of a staging buffer: fd at off
 * when fd >= 0 (pread/pwrite until done), else memory at ptr (copy_guarded).
 * 0 or -errno (-EIO for a short read or write that made no progress).
 */
int copy_local_to_buf(int fd, off_t off, const uint8_t *ptr, uint8_t *buf, uint64_t n);
int copy_buf_to_local(int fd, off_t off, uint8_t *ptr, const uint8_t *buf, uint64_t n);
/* Runs one copy in the calling thread (bounce: a buffer of COPY_BOUNCE bytes),
 * on its engine; sets cp->err, cp->tally and cp->ns. */
#define COPY_BOUNCE (1u << 20)
void copy_run(struct copy *cp, uint8_t *bounce);
/* xfer_cpu.c: a copy between host memory and pools the broker maps. */
int xfer_cpu_run(struct copy *cp, uint8_t *bounce, struct xfer_tally *t);
/* xfer_block.c: a CP_FILE_IN or CP_FILE_OUT copy. */
int xfer_block_run(struct copy *cp, uint8_t *bounce, struct xfer_tally *t);
#endif
