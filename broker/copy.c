/* SPDX-License-Identifier: MIT */
/*
 * Copy workers, and what every copy does whatever its engine (xfer.h):
 * clearing a discarded destination, dropping the host pages of chunks that
 * left, timing. The bytes themselves are the engines'.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"

static __thread sigjmp_buf *guard;

static void sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (guard)
		siglongjmp(*guard, 1);
	/* Not ours: what SIGBUS would have done. */
	signal(sig, SIG_DFL);
	raise(sig);
}

int copy_guarded(void *dst, const void *src, size_t n)
{
	sigjmp_buf env;
	volatile int r = 0;

	if (sigsetjmp(env, 1)) {
		r = -EFAULT;
	} else {
		guard = &env;
		if (src)
			memcpy(dst, src, n);
		else
			memset(dst, 0, n);
	}
	guard = NULL;
	return r;
}

/*
 * A DISCARD move writes no data, but the place it takes in a device pool
 * may still hold what an earlier chunk left there, another user's perhaps:
 * it is cleared instead (docs/security.md). An emulated pool's memfd gives
 * the pages back, which reads as zeros; a mapped pool is zeroed by the
 * CPU; a pool behind its own ops is written from a zeroed buffer.
 */
static int clear_dst(struct copy *cp, uint8_t *bounce)
{
	int r = 0;

	if (cp->dst_memfd >= 0)
		return fallocate(cp->dst_memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)cp->to_off, (off_t)cp->len) < 0 ? -errno : 0;
	if (cp->dst)
		return copy_guarded(cp->dst, NULL, cp->len);
	if (!cp->rdst)
		return 0;
	if (!bounce)
		return -ENOMEM;
	memset(bounce, 0, COPY_BOUNCE);
	for (uint64_t done = 0; !r && done < cp->len; done += COPY_BOUNCE) {
		uint64_t n = cp->len - done < COPY_BOUNCE ? cp->len - done : COPY_BOUNCE;

		struct xfer_local zeros = { .fd = -1, .ptr = bounce };
		struct xfer_tally ignore = { 0 };

		r = xfer_engine_of(cp->rdst)->write(cp->rdst, cp->rdst_off + done, &zeros, n,
						    &ignore);
	}
	return r;
}

static void sigbus_install(void)
{
	struct sigaction sa = { .sa_sigaction = sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

static int pread_full(int fd, uint8_t *dst, uint64_t len, off_t off)
{
	while (len) {
		ssize_t n = pread(fd, dst, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		dst += n;
		len -= (uint64_t)n;
		off += n;
	}
	return 0;
}

static int pwrite_full(int fd, const uint8_t *src, uint64_t len, off_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, src, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		src += n;
		len -= (uint64_t)n;
		off += n;
	}
	return 0;
}

int copy_local_to_buf(int fd, off_t off, const uint8_t *ptr, uint8_t *buf, uint64_t n)
{
	return fd < 0 ? copy_guarded(buf, ptr, n) : pread_full(fd, buf, n, off);
}

int copy_buf_to_local(int fd, off_t off, uint8_t *ptr, const uint8_t *buf, uint64_t n)
{
	return fd < 0 ? copy_guarded(ptr, buf, n) : pwrite_full(fd, buf, n, off);
}

/*
 * A copy with a side the broker cannot map (a peer's memory, VRAM): that
 * side's engine reads or writes it, from or into the host side (the memfd)
 * or a mapped pool; between two such pools, one DMA where their engine has
 * a peer path, else through the bounce buffer.
 */
static int copy_unmapped(struct copy *cp, uint8_t *bounce, struct xfer_tally *t)
{
	const struct xfer_engine *se = cp->rsrc ? xfer_engine_of(cp->rsrc) : NULL;
	const struct xfer_engine *de = cp->rdst ? xfer_engine_of(cp->rdst) : NULL;
	int r = 0;

	if (cp->discard)
		return clear_dst(cp, bounce);
	if (se && de && cp->kind == CP_DIRECT && se == de && se->copy_peer)
		return se->copy_peer(cp->rsrc, cp->rsrc_off, cp->rdst, cp->rdst_off, cp->len, t);
	if (se && de) {
		if (!bounce)
			return -ENOMEM;
		for (uint64_t done = 0; !r && done < cp->len; done += COPY_BOUNCE) {
			uint64_t n = cp->len - done < COPY_BOUNCE ? cp->len - done : COPY_BOUNCE;
			struct xfer_local via = { .fd = -1, .ptr = bounce };
			struct xfer_tally ignore = { 0 };

			r = se->read(cp->rsrc, cp->rsrc_off + done, &via, n, &ignore);
			if (!r)
				r = de->write(cp->rdst, cp->rdst_off + done, &via, n, &ignore);
		}
		if (!r)
			t->staged += cp->len;
		return r;
	}
	if (de) {
		struct xfer_local from = { .fd = cp->src ? -1 : cp->memfd, .off = cp->file_off,
					   .ptr = cp->src };

		return de->write(cp->rdst, cp->rdst_off, &from, cp->len, t);
	}
	{
		struct xfer_local to = { .fd = cp->dst ? -1 : cp->memfd, .off = cp->file_off,
					 .ptr = cp->dst };

		return se->read(cp->rsrc, cp->rsrc_off, &to, cp->len, t);
	}
}

/*
 * The chunks are in the device now: their host pages go, in one punch for
 * the run. Punching also unmaps the client's pages, so its next touch
 * faults (userfaultfd) and brings the chunk back. The crash records are
 * confirmed first, so that at no point is the only copy of the data one a
 * successor would not take back.
 */
static int punch_host(struct copy *cp)
{
	for (unsigned k = 0; cp->confirm && k < cp->nchunks; k++) {
		uint32_t *flag = recover_pending_flag(cp->confirm, cp->to_off + k * cp->chunk_len);

		if (flag)
			__atomic_store_n(flag, 0, __ATOMIC_RELEASE);
	}
	return fallocate(cp->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, cp->file_off,
			 (off_t)cp->len) < 0 ? -errno : 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void copy_run(struct copy *cp, uint8_t *bounce)
{
	uint64_t t0 = mono_ns();
	int r;

	cp->tally = (struct xfer_tally){ 0 };
	/* A valid replica is already home (a READ_MOSTLY chunk coming back):
	 * nothing to read from the device, whatever its engine. */
	if (cp->kind == CP_NONE)
		r = 0;
	else if (cp->kind == CP_FILE_IN || cp->kind == CP_FILE_OUT)
		r = xfer_block_run(cp, bounce, &cp->tally);
	else if (cp->rsrc || cp->rdst)
		r = copy_unmapped(cp, bounce, &cp->tally);
	else if (cp->discard && cp->kind != CP_TO_HOST && cp->kind != CP_NONE)
		r = clear_dst(cp, bounce);
	else
		r = xfer_cpu_run(cp, bounce, &cp->tally);
	if (!r && cp->punch)
		r = punch_host(cp);
	cp->err = r;
	cp->ns = mono_ns() - t0;
}

static void finish(struct copy_queue *q, struct copy *cp)
{
	uint64_t one = 1;
	struct copy **tail;

	pthread_mutex_lock(&q->lock);
	/* Oldest first: completions of one chunk are applied in order. */
	for (tail = &q->done; *tail; tail = &(*tail)->next)
		;
	cp->next = NULL;
	*tail = cp;
	pthread_mutex_unlock(&q->lock);
	if (write(q->notify_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow here; EAGAIN still leaves it readable. */
	}
}

static void *worker(void *arg)
{
	struct copy_queue *q = arg;
	bool stop;
	uint8_t *bounce = mmap(NULL, COPY_BOUNCE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (bounce == MAP_FAILED)
		bounce = NULL;
	else
		mlock(bounce, COPY_BOUNCE); /* staging memory stays put; best effort */
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct copy *cp = q->todo;

		if (!cp) {
			if (q->stop)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		q->todo = cp->next;
		if (!q->todo)
			q->todo_tail = &q->todo;
		stop = q->stop;
		pthread_mutex_unlock(&q->lock);
		if (stop)
			cp->err = -ECANCELED;
		else if (cp->kind == CP_BOUNCE && !bounce)
			cp->err = -ENOMEM;
		else
			copy_run(cp, bounce);
		finish(q, cp);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	if (bounce)
		munmap(bounce, COPY_BOUNCE);
	return NULL;
}

int copy_queue_start(struct copy_queue *q, unsigned nthreads, int notify_fd)
{
	sigbus_install();
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->todo = q->done = NULL;
	q->todo_tail = &q->todo;
	q->notify_fd = notify_fd;
	q->stop = false;
	q->threads = calloc(nthreads, sizeof(*q->threads));
	if (!q->threads)
		return -ENOMEM;
	for (q->nthreads = 0; q->nthreads < nthreads; q->nthreads++) {
		int r = pthread_create(&q->threads[q->nthreads], NULL, worker, q);

		if (r) {
			copy_queue_stop(q);
			return -r;
		}
	}
	return 0;
}

void copy_queue_stop(struct copy_queue *q)
{
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	free(q->threads);
	q->threads = NULL;
	q->nthreads = 0;
}

void copy_queue_push(struct copy_queue *q, struct copy *cp)
{
	cp->next = NULL;
	pthread_mutex_lock(&q->lock);
	*q->todo_tail = cp;
	q->todo_tail = &cp->next;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

struct copy *copy_queue_take_done(struct copy_queue *q)
{
	struct copy *cp;

	pthread_mutex_lock(&q->lock);
	cp = q->done;
	q->done = NULL;
	pthread_mutex_unlock(&q->lock);
	return cp;
}
