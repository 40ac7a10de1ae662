/* SPDX-License-Identifier: MIT */
/*
 * Copy workers. Host sides go through pread/pwrite on the allocation's
 * memfd rather than a mapping of it: the broker then never maps a client's
 * pages (which would make them shared, and unmovable by the client's mbind
 * without CAP_SYS_NICE), and a device mapping that went bad (a BAR whose
 * device was removed) fails the copy with -EFAULT inside the kernel instead
 * of killing the broker with SIGBUS.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

		r = cp->rdst->ops->write(cp->rdst, cp->rdst_off + done, -1, 0, bounce, n);
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
 * A copy with a side the broker cannot map (a peer's memory, VRAM): the
 * pool's own read and write, from or into the host side (the memfd) or a
 * mapped pool; between two such pools, through the bounce buffer.
 */
static int copy_unmapped(struct copy *cp, uint8_t *bounce)
{
	int r = 0;

	if (cp->discard)
		return clear_dst(cp, bounce);
	if (cp->rsrc && cp->rdst && cp->kind == CP_DIRECT && cp->rsrc->ops == cp->rdst->ops &&
	    cp->rsrc->ops->copy_peer)
		return cp->rsrc->ops->copy_peer(cp->rsrc, cp->rsrc_off, cp->rdst, cp->rdst_off,
						cp->len);
	if (cp->rsrc && cp->rdst) {
		for (uint64_t done = 0; !r && done < cp->len; done += COPY_BOUNCE) {
			uint64_t n = cp->len - done < COPY_BOUNCE ? cp->len - done : COPY_BOUNCE;

			r = cp->rsrc->ops->read(cp->rsrc, cp->rsrc_off + done, -1, 0, bounce, n);
			if (!r)
				r = cp->rdst->ops->write(cp->rdst, cp->rdst_off + done, -1, 0, bounce,
							 n);
		}
		return r;
	}
	if (cp->rdst)
		return cp->rdst->ops->write(cp->rdst, cp->rdst_off, cp->src ? -1 : cp->memfd,
					    cp->file_off, cp->src, cp->len);
	return cp->rsrc->ops->read(cp->rsrc, cp->rsrc_off, cp->dst ? -1 : cp->memfd, cp->file_off,
				   cp->dst, cp->len);
}

/*
 * The chunk is in the device now: its host pages go. Punching also unmaps
 * the client's pages, so its next touch faults (userfaultfd) and brings the
 * chunk back. The crash record is confirmed first, so that at no point is
 * the only copy of the data one a successor would not take back.
 */
static int punch_host(struct copy *cp)
{
	if (cp->confirm)
		__atomic_store_n(cp->confirm, 0, __ATOMIC_RELEASE);
	return fallocate(cp->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, cp->file_off,
			 (off_t)cp->len) < 0 ? -errno : 0;
}

void copy_run(struct copy *cp, uint8_t *bounce)
{
	int r = 0;

	if (cp->rsrc || cp->rdst) {
		r = copy_unmapped(cp, bounce);
		if (!r && cp->punch)
			r = punch_host(cp);
		cp->err = r;
		return;
	}
	switch (cp->kind) {
	case CP_NONE:
		break;
	case CP_TO_DEV:
		r = cp->discard ? clear_dst(cp, bounce)
				: pread_full(cp->memfd, cp->dst, cp->len, cp->file_off);
		if (!r && cp->punch)
			r = punch_host(cp);
		break;
	case CP_TO_HOST:
		if (!cp->discard)
			r = pwrite_full(cp->memfd, cp->src, cp->len, cp->file_off);
		break;
	case CP_DIRECT:
		r = cp->discard ? clear_dst(cp, bounce) : copy_guarded(cp->dst, cp->src, cp->len);
		break;
	case CP_BOUNCE:
		if (cp->discard) {
			r = clear_dst(cp, bounce);
			break;
		}
		/* The path between the pools is not peer to peer: through host
		 * memory, a piece at a time, as a DMA engine would stage it. */
		for (uint64_t done = 0; !r && done < cp->len; done += COPY_BOUNCE) {
			uint64_t n = cp->len - done < COPY_BOUNCE ? cp->len - done : COPY_BOUNCE;

			r = copy_guarded(bounce, cp->src + done, n);
			if (!r)
				r = copy_guarded(cp->dst + done, bounce, n);
		}
		break;
	}
	cp->err = r;
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
