/* SPDX-License-Identifier: MIT */
/*
 * pm_migrate and friends. Host NUMA moves happen here, on this process's
 * own pages (move_pages(2) with MPOL_MF_MOVE: pages mapped only here need
 * no privilege); everything else is the broker's engine, told what to move in
 * one PM_OP_MIGRATE. Before a chunk may leave host memory it is put under
 * the fault handler, so that touching it afterwards brings it back rather
 * than reading a fresh zero page.
 */
#include <errno.h>
#include <pthread.h>
#include <linux/mempolicy.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "client.h"

#define PM_EXPORT __attribute__((visibility("default")))
#define PM_MOVE_BATCH 1024 /* pages per move_pages() call: 16 KiB of arrays on the stack */

struct target {
	int fd;           /* as the caller gave it */
	int32_t wire;     /* PM_TARGET_* or an fd index */
	bool host;        /* system memory or a host NUMA node */
	int node;         /* host NUMA node, -1 for none */
};

/* Binds [start, start + len) to node: pages allocated there from now on
 * (faults here, the broker's copies home) land on it. On shmem this sets
 * the memfd's shared policy: no page moves, it costs a tree insert. */
static int bind_to_node(uintptr_t start, size_t len, int node)
{
	unsigned long mask[16] = { 0 };
	const unsigned long bits = 8 * sizeof(mask[0]);

	if (node < 0 || (size_t)node >= bits * 16)
		return -EINVAL;
	mask[node / bits] = 1ul << (node % bits);
	if (syscall(SYS_mbind, start, len, MPOL_BIND, mask, bits * 16 + 1, 0) < 0)
		return -errno;
	return 0;
}

/*
 * Moves the pages of [start, start + len) to node: bound there, then moved
 * with move_pages(2), PM_MOVE_BATCH pages a call. Pages not present (holes,
 * chunks away from host) report -ENOENT and are not an error. Nothing else
 * hides a page from move_pages() here: NUMA balancing, whose PROT_NONE
 * hinting PTEs a 6.1 kernel reports as -ENOENT too, never scans a shmem
 * mapping without a policy of its own or one bound like this.
 *
 * One thread, on purpose: threads of one process moving at once flush each
 * other's TLBs, since every batch the kernel unmaps sends an IPI to each
 * CPU running this mm. Two threads took 2.4 times as long as one in a
 * two-node guest, where two processes took as long as one
 * (docs/placement-design.md). mbind(MPOL_MF_MOVE) moves the same way but
 * holds the mmap lock for writing throughout.
 */
static int move_to_node(uintptr_t start, size_t len, int node)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), npages = len / page, n;
	void *pages[PM_MOVE_BATCH];
	int nodes[PM_MOVE_BATCH], status[PM_MOVE_BATCH];
	int r = bind_to_node(start, len, node);

	for (size_t done = 0; r == 0 && done < npages; done += n) {
		n = npages - done < PM_MOVE_BATCH ? npages - done : PM_MOVE_BATCH;
		for (size_t i = 0; i < n; i++) {
			pages[i] = (void *)(start + (done + i) * page);
			nodes[i] = node;
		}
		if (syscall(SYS_move_pages, 0, n, pages, nodes, status, MPOL_MF_MOVE) < 0)
			r = -errno;
	}
	return r;
}

static int resolve(int fd, struct target *t)
{
	struct pagemap_info info;
	int r;

	t->fd = fd;
	t->node = -1;
	t->host = fd == PM_FD_SYSTEM;
	if (fd == PM_FD_SYSTEM || fd == PM_FD_PREFERRED) {
		t->wire = fd == PM_FD_SYSTEM ? PM_TARGET_SYSTEM : PM_TARGET_PREFERRED;
		return 0;
	}
	if (fd < 0)
		return -EBADF;
	r = pagemap_query(fd, &info);
	if (r < 0)
		return r;
	if (info.state == PAGEMAP_STATE_REVOKED)
		return -ENODEV;
	t->host = info.kind == PAGEMAP_KIND_HOST_NUMA;
	t->node = t->host ? info.numa_node : -1;
	return 0;
}

/*
 * Readies the chunks of sp for target t. Host nodes: the pages move now,
 * and the binding makes the broker's copies home land there too. Anywhere
 * else: the chunks go under the fault handler, READ_MOSTLY ones
 * write-protected so that a write ends their replica.
 */
static int prepare(struct pm_client *c, const struct pm_span *sp, const struct target *t,
		   uint64_t *epoch)
{
	struct pm_alloc_entry *e;
	bool wp;
	int r = 0;

	if (t->host) {
		/* Protection older than this request is lifted when it is over:
		 * the broker finishes earlier moves of a chunk before this one. */
		pthread_mutex_lock(&c->lock);
		*epoch = c->wp_epoch;
		pthread_mutex_unlock(&c->lock);
		return t->node >= 0 ? move_to_node(sp->start, sp->count * sp->chunk, t->node) : 0;
	}
	r = pm_fault_start(c);
	if (r < 0)
		return r;
	wp = pm_fault_can_wp(c);
	pthread_mutex_lock(&c->lock);
	*epoch = ++c->wp_epoch;
	e = pm_alloc_find_range(c, sp->start, sp->count * sp->chunk);
	for (uint64_t i = sp->first; e && r == 0 && i < sp->first + sp->count; i++) {
		void *a = (uint8_t *)e->addr + i * e->chunk_size;

		/* A preferred host node is a host move: bind it like one. */
		if (t->wire == PM_TARGET_PREFERRED && e->pref_node[i] >= 0) {
			r = move_to_node((uintptr_t)a, e->chunk_size, e->pref_node[i]);
			continue;
		}
		/* From now on it may be elsewhere: if the broker dies with it,
		 * its pages tell whether it came home (reconnect.c). */
		e->state[i] |= PM_CHUNK_AWAY;
		if (!(e->state[i] & PM_CHUNK_REGISTERED)) {
			r = pm_fault_register(c, a, e->chunk_size);
			if (r == 0)
				e->state[i] |= PM_CHUNK_REGISTERED;
		}
		/*
		 * Write-protected before the broker copies: a store racing the
		 * copy faults and waits until the chunk has moved and come
		 * back, instead of landing in pages about to be punched.
		 * Without uffd-wp (before 5.19) that race stays (pagemap.h).
		 */
		if (r == 0 && wp) {
			r = pm_fault_protect(c, a, e->chunk_size, true);
			e->wp_epoch[i] = *epoch;
		}
	}
	pthread_mutex_unlock(&c->lock);
	if (e && r == 0)
		pm_fault_tell(c, (const void *)sp->start);
	return e ? r : -EINVAL;
}

/* A synchronous move is over: chunks in host memory need no protection, nor
 * do chunks gone to a device (their pages were punched), except READ_MOSTLY
 * replicas, whose first write must end the replica. */
static void settle(struct pm_client *c, const struct pm_span *sp, bool home, uint64_t epoch)
{
	struct pm_alloc_entry *e;

	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, sp->start, sp->count * sp->chunk);
	/* A chunk a later migration protected is that one's to lift. */
	for (uint64_t i = sp->first; e && i < sp->first + sp->count; i++) {
		if (home && e->wp_epoch[i] <= epoch)
			e->state[i] &= (uint8_t)~PM_CHUNK_AWAY;
		if ((e->state[i] & PM_CHUNK_REGISTERED) && e->wp_epoch[i] <= epoch &&
		    (home || !(e->state[i] & PM_CHUNK_READ_MOSTLY)))
			pm_fault_protect(c, (uint8_t *)e->addr + i * e->chunk_size, e->chunk_size,
					 false);
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * A move that failed left some chunks home: they are not "away" (which
 * would make a crash of the broker look like their loss). Where each chunk
 * is, from the broker.
 */
static void unmark_home(struct pm_client *c, const struct pm_migrate_range *r)
{
	struct pm_alloc_entry *e;
	uint64_t *ids;
	struct pm_span sp;
	int n;

	if (pm_span_of(c, r->addr, r->len, &sp) < 0)
		return;
	ids = calloc(sp.count, sizeof(*ids));
	if (!ids)
		return;
	n = pm_query(c, (void *)sp.start, sp.count * sp.chunk, ids, sp.count);
	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, sp.start, sp.count * sp.chunk);
	for (int k = 0; e && k < n && (uint64_t)k < sp.count; k++)
		if (!ids[k])
			e->state[sp.first + (uint64_t)k] &= (uint8_t)~PM_CHUNK_AWAY;
	pthread_mutex_unlock(&c->lock);
	free(ids);
}

/* The index of fd among the request's fds, adding it: -E2BIG past the limit. */
static int fd_index(int *fds, unsigned *nfds, int fd)
{
	for (unsigned i = 0; i < *nfds; i++)
		if (fds[i] == fd)
			return (int)i;
	if (*nfds == PM_MIGRATE_BATCH_FDS)
		return -E2BIG;
	fds[*nfds] = fd;
	return (int)(*nfds)++;
}

PM_EXPORT int pm_migrate_batch(struct pm_client *c, const struct pm_migrate_range *ranges,
			       size_t n, unsigned int flags, struct pm_migrate_result *res)
{
	struct {
		struct pm_migrate_req rq;
		struct pm_migrate_entry en[PM_MIGRATE_BATCH_MAX];
	} req = { 0 };
	struct pm_migrate_reply rep = { 0 };
	struct pm_span sp[PM_MIGRATE_BATCH_MAX];
	struct target t[PM_MIGRATE_BATCH_MAX];
	uint64_t epoch[PM_MIGRATE_BATCH_MAX] = { 0 };
	int fds[PM_MIGRATE_BATCH_FDS];
	unsigned nfds = 0;
	int r, done_fd = -1;

	if (!c || !ranges || !n || n > PM_MIGRATE_BATCH_MAX ||
	    (flags & ~(PM_MIGRATE_ASYNC | PM_MIGRATE_DISCARD)))
		return -EINVAL;
again:
	nfds = 0;
	for (size_t i = 0; i < n; i++) {
		if (ranges[i].reserved)
			return -EINVAL;
		r = pm_span_of(c, ranges[i].addr, ranges[i].len, &sp[i]);
		if (r < 0)
			return r;
		if (sp[i].gen != sp[0].gen)
			goto again; /* a reconnect between two lookups */
		r = resolve(ranges[i].pagemap_fd, &t[i]);
		if (r < 0)
			return r;
		if (ranges[i].pagemap_fd >= 0) {
			r = fd_index(fds, &nfds, ranges[i].pagemap_fd);
			if (r < 0)
				return r;
			t[i].wire = r;
		}
		req.en[i].alloc_id = sp[i].id;
		req.en[i].first = sp[i].first;
		req.en[i].count = sp[i].count;
		req.en[i].target = t[i].wire;
	}
	/* Everything checked: now pages may move. The protection and the
	 * request reach the broker before any fault they cause. */
	pthread_mutex_lock(&c->order);
	for (size_t i = 0; i < n; i++) {
		r = prepare(c, &sp[i], &t[i], &epoch[i]);
		if (r < 0) {
			pthread_mutex_unlock(&c->order);
			return r;
		}
	}
	req.rq.nranges = (uint32_t)n;
	req.rq.flags = (flags & PM_MIGRATE_ASYNC ? PM_MIG_ASYNC : 0) |
		       (flags & PM_MIGRATE_DISCARD ? PM_MIG_DISCARD : 0);
	r = pm_client_call_ordered(c, sp[0].gen, PM_OP_MIGRATE, &req,
				   sizeof(req.rq) + n * sizeof(req.en[0]), fds, nfds, &rep.bytes_done,
				   sizeof(rep) - sizeof(rep.r), NULL,
				   flags & PM_MIGRATE_ASYNC ? &done_fd : NULL);
	if (r == -ESTALE)
		goto again; /* the broker restarted: the allocations' new ids */
	if (flags & PM_MIGRATE_ASYNC) {
		if (r >= 0 && done_fd < 0)
			r = -EPROTO;
		return r < 0 ? r : done_fd;
	}
	for (size_t i = 0; i < n; i++) {
		if (t[i].wire != PM_TARGET_PREFERRED)
			settle(c, &sp[i], t[i].host, epoch[i]);
		/* Refused or cut short: some chunks never left. */
		if (r < 0 && !t[i].host)
			unmark_home(c, &ranges[i]);
	}
	if (res) {
		memset(res, 0, sizeof(*res));
		res->status = r < 0 ? r : 0;
		res->bytes_done = rep.bytes_done;
		res->bytes_direct = rep.bytes_direct;
		res->bytes_bounced = rep.bytes_bounced;
		res->bytes_host = rep.bytes_host;
	}
	return r < 0 ? r : 0;
}

PM_EXPORT int pm_migrate(struct pm_client *c, void *addr, size_t len, int pagemap_fd,
			 unsigned int flags)
{
	struct pm_migrate_range range = { .addr = addr, .len = len, .pagemap_fd = pagemap_fd };

	return pm_migrate_batch(c, &range, 1, flags, NULL);
}

PM_EXPORT int pm_migrate_result(int completion_fd, struct pm_migrate_result *res)
{
	const struct pm_migrate_reply *rep;
	struct pm_msg *m;
	int r;

	if (!res)
		return -EINVAL;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* Peeked, not read: the fd stays readable and the call repeatable. */
	r = pm_msg_recv_flags(completion_fd, m, MSG_DONTWAIT | MSG_PEEK);
	if (r == -EAGAIN || r == -EWOULDBLOCK) {
		r = 0;
		goto out;
	}
	if (r == -ENOTSOCK || r == -EBADF) {
		r = -EBADF;
		goto out;
	}
	if (r < 0)
		goto out; /* -ECONNRESET: the broker went away first */
	pm_msg_close_fds(m);
	rep = (const void *)m->payload;
	if (!(m->hdr.flags & PM_HDR_EVENT) || m->hdr.opcode != PM_OP_MIGRATE ||
	    m->hdr.length != sizeof(*rep)) {
		r = -EBADF;
		goto out;
	}
	memset(res, 0, sizeof(*res));
	res->status = rep->r.status;
	res->bytes_done = rep->bytes_done;
	res->bytes_direct = rep->bytes_direct;
	res->bytes_bounced = rep->bytes_bounced;
	res->bytes_host = rep->bytes_host;
	r = 1;
out:
	free(m);
	return r;
}
