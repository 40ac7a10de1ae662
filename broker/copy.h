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

enum copy_kind {
	CP_NONE,    /* nothing to copy (a valid replica is already there) */
	CP_TO_DEV,  /* host (the allocation's memfd) to a device pool */
	CP_TO_HOST, /* device pool to host */
	CP_DIRECT,  /* device to device, one copy */
	CP_BOUNCE,  /* device to device through a host buffer */
};

struct copy {
	struct copy *next;
	enum copy_kind kind;
	int memfd;       /* host side: the allocation's memfd ... */
	off_t file_off;  /* ... at this offset */
	uint8_t *src, *dst; /* device sides: inside the pools' mappings */
	/* Sides the broker cannot map (pool ops read/write): pool, offset. */
	struct pool *rsrc, *rdst;
	uint64_t rsrc_off, rdst_off;
	uint64_t len;
	uint64_t to_off;  /* the destination's offset in its pool */
	int dst_memfd;    /* an emulated destination pool's memfd, else -1 */
	bool discard;    /* no data: the destination is cleared, never left as it was */
	bool punch;      /* CP_TO_DEV: drop the host pages afterwards */
	/* Cleared (released) once the data is in place and before the host
	 * pages go: the destination's crash record turns authoritative then
	 * (recover.c). NULL when the pool keeps no records. */
	uint32_t *confirm;
	int err;         /* set by the worker: 0 or -errno */
	/* For the loop thread, untouched by workers. */
	struct mig_job *job;
	struct allocation *al;
	uint64_t chunk;
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
/* Runs one copy in the calling thread (bounce: a buffer of COPY_BOUNCE bytes). */
#define COPY_BOUNCE (1u << 20)
void copy_run(struct copy *cp, uint8_t *bounce);
#endif
