/* SPDX-License-Identifier: MIT */
/*
 * CPU access to chunks that live outside host memory. The broker punches a
 * chunk out of the allocation's memfd when it moves it to a device pool, so
 * this process's next touch of it finds no page; the range is registered
 * with userfaultfd (missing mode), and this thread turns the fault into a
 * request to bring the chunk home, then lets the access retry.
 * READ_MOSTLY chunks keep their pages but are write-protected: a write
 * faults here too, and ends the replica. Chunks on their way out are
 * write-protected as well, so a store racing the copy waits here.
 *
 * UFFD_USER_MODE_ONLY (Linux 5.11) works where vm.unprivileged_userfaultfd
 * is 0, as Debian ships it; shmem needs UFFD_FEATURE_MISSING_SHMEM (4.11),
 * write protection of shmem UFFD_FEATURE_WP_HUGETLBFS_SHMEM (5.19).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "client.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

/*
 * Faults that walk an allocation in order bring the away chunks after the
 * faulting one home with it: a window that doubles with each fault that
 * lands where the last one's window ended, as the kernel's readahead does,
 * up to FAULT_AHEAD_MAX bytes; any other fault starts again at one chunk.
 * One round trip and one copy for the window instead of one per chunk.
 */
#define FAULT_AHEAD_MAX (2u << 20)
#define FAULT_AHEAD_CHUNKS 64

struct pm_fault {
	int uffd;
	int stop_fd;
	bool wp;
	pthread_t thread;
	/* The fault thread's own: where the last window ended, its size. */
	uint64_t ahead_id, ahead_next;
	unsigned ahead;
};

static int uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);

	/* Before 5.11 the flag is unknown; a privileged process may go on. */
	if (fd < 0 && errno == EINVAL)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

/* The features this kernel offers: a handshake on a throw-away fd (the
 * API handshake can be made once per fd). */
static int uffd_features(uint64_t *out)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = uffd_open(), r = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, UFFDIO_API, &api) < 0)
		r = -errno;
	close(fd);
	*out = api.features;
	return r;
}

bool pm_chunk_at(struct pm_client *c, uintptr_t addr, uint64_t *id, uint64_t *idx,
		 uintptr_t *start, size_t *size, uint64_t *epoch, uint64_t *gen)
{
	const struct pm_alloc_entry *e;

	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, addr, 1);
	if (e) {
		*id = e->id;
		*idx = (addr - (uintptr_t)e->addr) / e->chunk_size;
		*start = (uintptr_t)e->addr + *idx * e->chunk_size;
		*size = e->chunk_size;
		*epoch = e->wp_epoch[*idx];
		*gen = c->gen;
	}
	pthread_mutex_unlock(&c->lock);
	return e != NULL;
}

/* The PM_CHUNK_* state of the chunk holding addr, or NULL. Caller holds
 * c->lock. */
static uint8_t *chunk_state(struct pm_client *c, uintptr_t addr)
{
	struct pm_alloc_entry *e = pm_alloc_find_range(c, addr, 1);

	return e ? &e->state[(addr - (uintptr_t)e->addr) / e->chunk_size] : NULL;
}

/* The chunk holding addr is in host memory. */
static void pm_chunk_home(struct pm_client *c, uintptr_t addr)
{
	uint8_t *st;

	pthread_mutex_lock(&c->lock);
	st = chunk_state(c, addr);
	if (st)
		*st &= (uint8_t)~PM_CHUNK_AWAY;
	pthread_mutex_unlock(&c->lock);
}

/*
 * The chunk came home for a fault: lifts its protection, gives a page that
 * is still a hole (a chunk in host memory never touched there) a zero page,
 * and wakes the chunk's waiters. All under c->order, so that no migration
 * can protect and start moving the chunk in between; if one did so after
 * the fault was taken (its epoch moved), nothing is lifted or filled: the
 * access faults again and waits for that migration.
 */
static void release(struct pm_client *c, uintptr_t start, size_t size, uint64_t epoch,
		    uintptr_t page, bool missing)
{
	struct uffdio_range range = { .start = start, .len = size };
	uint64_t id, idx, now = 0, gen;
	uintptr_t s2;
	size_t z;

	pthread_mutex_lock(&c->order);
	if (pm_chunk_at(c, start, &id, &idx, &s2, &z, &now, &gen) && now == epoch) {
		struct uffdio_zeropage zp = {
			.range = { .start = page, .len = (uint64_t)sysconf(_SC_PAGESIZE) },
			.mode = UFFDIO_ZEROPAGE_MODE_DONTWAKE,
		};

		pm_fault_protect(c, (void *)start, size, false);
		pm_chunk_home(c, start);
		/* EEXIST: the page came home with the chunk. */
		if (missing)
			ioctl(c->fault->uffd, UFFDIO_ZEROPAGE, &zp);
	}
	ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
	pthread_mutex_unlock(&c->order);
}

/*
 * The broker is gone with the chunk's data (its connection broke): a
 * retry would spin for ever, a zero page would hand the access silent
 * garbage. The chunk's range becomes a mapping past the end of an empty
 * file, so every access to it gets SIGBUS, as it would for memory the
 * kernel knows is lost (a truncated file, a poisoned page); the rest of the
 * allocation, in host memory, stays as it is.
 */
void pm_fault_lose(struct pm_client *c, uintptr_t start, size_t size)
{
	struct uffdio_range range = { .start = start, .len = size };
	int fd = memfd_create("pagemap:lost", MFD_CLOEXEC);

	/*
	 * The new mapping replaces the old in one step, and leaves the range's
	 * userfaultfd registration behind with the old one. Unregistering
	 * first would wake the waiting access onto a hole, which reads zeros.
	 */
	if (fd >= 0) {
		mmap((void *)start, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
		close(fd);
	}
	ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
}

/* Whether chunk [start, start + size) may be away from host memory. */
static bool chunk_away(struct pm_client *c, uintptr_t start)
{
	const uint8_t *st;
	bool away;

	pthread_mutex_lock(&c->lock);
	st = chunk_state(c, start);
	away = st && (*st & PM_CHUNK_AWAY);
	pthread_mutex_unlock(&c->lock);
	return away;
}

/*
 * The fault's request found the broker gone. A broker being restarted is
 * given a few seconds: reconnecting registers the allocations again and
 * settles chunks that were away (home, or lost: SIGBUS), and the access
 * retries against the new broker. With no broker to come back, a chunk
 * that never left host memory is what its pages are (a hole reads zeros,
 * as it always would), and one that may have left is lost.
 */
static void broker_gone(struct pm_client *c, uintptr_t start, size_t size, uintptr_t page,
			uint64_t epoch, bool missing)
{
	struct uffdio_range range = { .start = start, .len = size };

	for (int i = 0; i < 50; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		if (pm_client_reconnect(c) == 0) {
			ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
			return;
		}
		nanosleep(&ts, NULL);
	}
	if (chunk_away(c, start))
		pm_fault_lose(c, start, size);
	else
		release(c, start, size, epoch, page, missing);
}

/*
 * The chunks to bring home for a fault on chunk idx of allocation id: the
 * faulting one, then as many of the away chunks right after it as the
 * readahead window holds (see FAULT_AHEAD_MAX). Their protection epochs go
 * to epochs[]; returns the count.
 */
static unsigned fault_window(struct pm_client *c, uintptr_t start, uint64_t id, uint64_t idx,
			     uint64_t *epochs)
{
	struct pm_fault *f = c->fault;
	const struct pm_alloc_entry *e;
	unsigned want, n = 1, max;

	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, start, 1);
	if (!e || e->id != id) {
		pthread_mutex_unlock(&c->lock);
		return 1;
	}
	max = e->chunk_size >= FAULT_AHEAD_MAX ? 1 : (unsigned)(FAULT_AHEAD_MAX / e->chunk_size);
	if (max > FAULT_AHEAD_CHUNKS)
		max = FAULT_AHEAD_CHUNKS;
	want = f->ahead_id == id && f->ahead_next == idx ? f->ahead * 2 : 1;
	if (want > max)
		want = max;
	while (n < want && idx + n < e->nchunks && (e->state[idx + n] & PM_CHUNK_AWAY) &&
	       !(e->state[idx + n] & PM_CHUNK_READ_MOSTLY)) {
		epochs[n] = e->wp_epoch[idx + n];
		n++;
	}
	pthread_mutex_unlock(&c->lock);
	f->ahead_id = id;
	f->ahead_next = idx + n;
	f->ahead = want;
	return n;
}

static void handle_fault(struct pm_client *c, uintptr_t addr, bool wp)
{
	struct {
		struct pm_migrate_req rq;
		struct pm_migrate_entry en;
	} req = { .rq = { .flags = PM_MIG_FAULT, .nranges = 1 } };
	uintptr_t page = addr & ~((uintptr_t)sysconf(_SC_PAGESIZE) - 1), start;
	uint64_t id, idx, gen, epochs[FAULT_AHEAD_CHUNKS];
	struct uffdio_range range;
	unsigned n = 1;
	size_t size;
	int r;

	if (!pm_chunk_at(c, addr, &id, &idx, &start, &size, &epochs[0], &gen)) {
		/* Freed under the access: let it retry and meet the unmapping. */
		range.start = page;
		range.len = (uint64_t)sysconf(_SC_PAGESIZE);
		ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
		return;
	}
	/* A store to a protected chunk moves nothing ahead: it is home. */
	if (!wp)
		n = fault_window(c, start, id, idx, epochs);
	/* After a reconnect the new broker has not got our userfaultfd yet. */
	pm_fault_tell(c, (const void *)start);
	req.en.alloc_id = id;
	req.en.first = idx;
	req.en.count = n;
	req.en.target = PM_TARGET_SYSTEM;
	/* Whatever the broker answers, the access must go on: an error (the
	 * broker gone, a failed copy) is recorded there and in the chunk. */
	pthread_mutex_lock(&c->order);
	r = pm_client_call_ordered(c, gen, PM_OP_MIGRATE, &req, sizeof(req), NULL, 0, NULL, 0,
				   NULL, NULL);
	if (r == -ESTALE) {
		/* The broker restarted since the id was read: fault again,
		 * with the allocation's new id. */
		range.start = start;
		range.len = size;
		ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
		return;
	}
	if (r < 0 && pm_client_dead(c)) {
		broker_gone(c, start, size, page, epochs[0], !wp);
		return;
	}
	if (r < 0) {
		/*
		 * The chunk could not come home (a transient failure: no
		 * memory, a copy that failed). A zero page would hand the
		 * access silent garbage; instead it waits and faults again.
		 * Data that is truly gone (its device revoked) is no longer
		 * anywhere but home, marked -EIO, and the next try succeeds.
		 * Chunks ahead stay wherever the broker left them: a fault
		 * on one asks again.
		 */
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		range.start = start;
		range.len = size;
		ioctl(c->fault->uffd, UFFDIO_WAKE, &range);
		c->fault->ahead = 0;
		return;
	}
	release(c, start, size, epochs[0], page, !wp);
	for (unsigned k = 1; k < n; k++)
		release(c, start + k * size, size, epochs[k], 0, false);
}

static void *fault_thread(void *arg)
{
	struct pm_client *c = arg;
	struct pm_fault *f = c->fault;

	for (;;) {
		struct pollfd p[2] = { { .fd = f->uffd, .events = POLLIN },
				       { .fd = f->stop_fd, .events = POLLIN } };
		struct uffd_msg msg;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (read(f->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT)
			handle_fault(c, (uintptr_t)msg.arg.pagefault.address,
				     msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP);
	}
	return NULL;
}

int pm_fault_start(struct pm_client *c)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	struct pm_fault *f;
	uint64_t have = 0;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	if (c->fault)
		goto out;
	r = uffd_features(&have);
	if (r < 0 || !(have & UFFD_FEATURE_MISSING_SHMEM)) {
		r = -EOPNOTSUPP;
		goto out;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		r = -ENOMEM;
		goto out;
	}
	api.features |= have & (UFFD_FEATURE_WP_HUGETLBFS_SHMEM | UFFD_FEATURE_WP_UNPOPULATED);
	f->wp = have & UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	f->uffd = uffd_open();
	f->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (f->uffd < 0 || f->stop_fd < 0 || ioctl(f->uffd, UFFDIO_API, &api) < 0) {
		r = -EOPNOTSUPP;
		goto fail;
	}
	c->fault = f;
	r = -pthread_create(&f->thread, NULL, fault_thread, c);
	if (r == 0)
		goto out;
	c->fault = NULL;
fail:
	if (f->uffd >= 0)
		close(f->uffd);
	if (f->stop_fd >= 0)
		close(f->stop_fd);
	free(f);
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

void pm_fault_stop(struct pm_client *c)
{
	struct pm_fault *f = c->fault;
	uint64_t one = 1;

	if (!f)
		return;
	/* A thread that cannot be told to stop keeps its state: leak it
	 * rather than free it under the thread. */
	if (write(f->stop_fd, &one, sizeof(one)) != sizeof(one))
		return;
	pthread_join(f->thread, NULL);
	/* Closing the uffd wakes whoever still waits: their access retries
	 * without the handler. */
	close(f->uffd);
	close(f->stop_fd);
	free(f);
	c->fault = NULL;
}

bool pm_fault_can_wp(struct pm_client *c)
{
	return pm_fault_start(c) == 0 && c->fault->wp;
}

/*
 * Gives the broker this client's userfaultfd and where the allocation at
 * addr is mapped, once per allocation and connection: its copies home then
 * fill our mapping's holes directly (UFFDIO_COPY) instead of writing the
 * memfd. Only speed depends on it: a broker that refuses it copies through
 * the memfd as before, so errors are not the caller's.
 */
void pm_fault_tell(struct pm_client *c, const void *addr)
{
	struct pm_uffd u = { 0 };
	struct pm_alloc_entry *e;
	int fd;

	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, (uintptr_t)addr, 1);
	if (!e || e->uffd_told || !c->fault) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	e->uffd_told = true;
	u.alloc_id = e->id;
	u.addr = (uintptr_t)e->addr;
	fd = c->fault->uffd;
	pthread_mutex_unlock(&c->lock);
	pm_client_call_fds(c, PM_OP_UFFD, &u, sizeof(u), &fd, 1, NULL, 0, NULL, NULL);
}

int pm_fault_register(struct pm_client *c, void *addr, size_t len)
{
	struct uffdio_register reg = { .range = { .start = (uintptr_t)addr, .len = len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };

	if (!c->fault)
		return -EOPNOTSUPP;
	if (c->fault->wp)
		reg.mode |= UFFDIO_REGISTER_MODE_WP;
	return ioctl(c->fault->uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

int pm_fault_protect(struct pm_client *c, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = { .range = { .start = (uintptr_t)addr, .len = len },
					 .mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0 };

	if (!c->fault || !c->fault->wp)
		return -EOPNOTSUPP;
	return ioctl(c->fault->uffd, UFFDIO_WRITEPROTECT, &w) < 0 ? -errno : 0;
}
