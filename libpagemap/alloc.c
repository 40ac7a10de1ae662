/* SPDX-License-Identifier: MIT */
/*
 * Managed allocations: one sealed memfd each, mapped shared here and passed
 * to the broker, which may act on the same pages (docs/placement-design.md).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client.h"

#define PM_EXPORT __attribute__((visibility("default")))
#define KNOWN_FLAGS (PM_ALLOC_ADDR_BITS(0x3f) | PM_ALLOC_CHUNK_SHIFT(0x1f))
#define DEFAULT_CHUNK_SHIFT 21

/*
 * The highest chunk-aligned start of a free range of size bytes ending at or
 * below limit, from the gaps in /proc/self/maps; 0 when there is none.
 */
static uintptr_t find_gap(size_t size, size_t align, uintptr_t limit)
{
	uintptr_t best = 0, prev_end = 1u << 16; /* stay above mmap_min_addr */
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return 0;
	for (;;) {
		unsigned long start = 0, end = 0;
		bool more = fgets(line, sizeof(line), f) && sscanf(line, "%lx-%lx", &start, &end) == 2;
		uintptr_t gap_end = more ? (uintptr_t)start : limit;

		if (gap_end > limit)
			gap_end = limit;
		if (gap_end > prev_end && gap_end - prev_end >= size) {
			uintptr_t cand = (gap_end - size) & ~(uintptr_t)(align - 1);

			if (cand >= prev_end)
				best = cand;
		}
		if (!more || (uintptr_t)end >= limit)
			break;
		if ((uintptr_t)end > prev_end)
			prev_end = end;
	}
	fclose(f);
	return best;
}

/*
 * Maps memfd entirely below 1 << bits, as high as possible: a free range from
 * /proc/self/maps, claimed with MAP_FIXED_NOREPLACE so that a thread mapping
 * something there meanwhile makes us look again rather than clobber it.
 */
static void *map_below(int memfd, size_t size, size_t align, unsigned bits)
{
	uintptr_t limit = bits >= 8 * sizeof(uintptr_t) - 1 ? UINTPTR_MAX : (uintptr_t)1 << bits;

	for (int tries = 0; tries < 8; tries++) {
		uintptr_t addr = find_gap(size, align, limit);
		void *p;

		if (!addr)
			break;
		p = mmap((void *)addr, size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED_NOREPLACE, memfd, 0);
		if (p == (void *)addr)
			return p;
		if (p != MAP_FAILED) {
			/* A kernel without MAP_FIXED_NOREPLACE took it as a hint. */
			munmap(p, size);
			break;
		}
		if (errno != EEXIST)
			return MAP_FAILED;
	}
	errno = ENOMEM;
	return MAP_FAILED;
}

static int create_memfd(size_t size)
{
	int fd = memfd_create("pagemap:alloc", MFD_CLOEXEC | MFD_ALLOW_SEALING), r;

	if (fd < 0)
		return -errno;
	/* Sealed: the broker maps it too, and a shrink would fault it. */
	if (ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

PM_EXPORT int pm_alloc(struct pm_client *c, size_t size, unsigned int flags, void **addr)
{
	unsigned bits = flags & 0x3f, shift = (flags >> 8) & 0x1f;
	struct pm_alloc req = { 0 };
	struct pm_alloc_reply rep;
	struct pm_alloc_entry *e;
	size_t chunk, len;
	void *p;
	int fd, r;

	if (!c || !addr || !size || (flags & ~KNOWN_FLAGS) || (bits && bits < 20) ||
	    (shift && (shift < 16 || shift > 30)))
		return -EINVAL;
	chunk = (size_t)1 << (shift ? shift : DEFAULT_CHUNK_SHIFT);
	if (size > SIZE_MAX - chunk)
		return -EINVAL;
	size = (size + chunk - 1) & ~(chunk - 1);
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->state = calloc(size / chunk, sizeof(*e->state));
	e->pref_node = malloc(size / chunk * sizeof(*e->pref_node));
	e->wp_epoch = calloc(size / chunk, sizeof(*e->wp_epoch));
	if (!e->state || !e->pref_node || !e->wp_epoch) {
		pm_alloc_entry_free(e);
		return -ENOMEM;
	}
	for (size_t i = 0; i < size / chunk; i++)
		e->pref_node[i] = -1;
	fd = create_memfd(size);
	if (fd < 0) {
		pm_alloc_entry_free(e);
		return fd;
	}
	p = bits ? map_below(fd, size, chunk, bits)
		 : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		r = errno == EEXIST || errno == EPERM ? -ENOMEM : -errno;
		goto fail_fd;
	}
	req.size = size;
	req.chunk_size = chunk;
	e->addr = p;
	e->size = size;
	e->chunk_size = chunk;
	e->nchunks = size / chunk;
	e->memfd = fd;
	for (;;) {
		uint64_t gen;

		pthread_mutex_lock(&c->lock);
		gen = c->gen;
		pthread_mutex_unlock(&c->lock);
		r = pm_client_call_gen(c, gen, PM_OP_ALLOC, &req, sizeof(req), &fd, 1,
				       &rep.alloc_id, sizeof(rep) - sizeof(rep.r), &len, NULL);
		if (r >= 0 && len != sizeof(rep) - sizeof(rep.r))
			r = -EPROTO;
		if (r == -ESTALE)
			continue;
		if (r < 0)
			goto fail_map;
		/* Linked under the connection that registered it: one that
		 * reconnected meanwhile did not know it, so it goes again. */
		pthread_mutex_lock(&c->lock);
		if (c->gen == gen)
			break;
		pthread_mutex_unlock(&c->lock);
	}
	e->id = rep.alloc_id;
	e->next = c->allocs;
	c->allocs = e;
	pthread_mutex_unlock(&c->lock);
	*addr = p;
	return 0;
fail_map:
	munmap(p, size);
fail_fd:
	close(fd);
	pm_alloc_entry_free(e);
	return r;
}

void pm_alloc_entry_free(struct pm_alloc_entry *e)
{
	free(e->state);
	free(e->pref_node);
	free(e->wp_epoch);
	free(e);
}

static struct pm_alloc_entry *unlink_alloc(struct pm_client *c, void *addr, uint64_t *gen)
{
	struct pm_alloc_entry *e = NULL;

	pthread_mutex_lock(&c->lock);
	*gen = c->gen;
	for (struct pm_alloc_entry **pp = &c->allocs; *pp; pp = &(*pp)->next)
		if ((*pp)->addr == addr) {
			e = *pp;
			*pp = e->next;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return e;
}

PM_EXPORT int pm_free(struct pm_client *c, void *addr)
{
	struct pm_free req = { 0 };
	struct pm_alloc_entry *e;
	uint64_t gen;
	int r;

	if (!c || !addr)
		return -EINVAL;
	e = unlink_alloc(c, addr, &gen);
	if (!e)
		return -EINVAL;
	req.alloc_id = e->id;
	/* The memory goes whatever the broker says: it is this process's. A
	 * broker restarted since the unlink never heard of it (-ESTALE). */
	r = pm_client_call_gen(c, gen, PM_OP_FREE, &req, sizeof(req), NULL, 0, NULL, 0, NULL, NULL);
	if (r == -ESTALE)
		r = 0;
	munmap(e->addr, e->size);
	close(e->memfd);
	pm_alloc_entry_free(e);
	return r < 0 ? r : 0;
}

void pm_alloc_release_all(struct pm_client *c)
{
	while (c->allocs) {
		struct pm_alloc_entry *e = c->allocs;

		c->allocs = e->next;
		munmap(e->addr, e->size);
		close(e->memfd);
		pm_alloc_entry_free(e);
	}
}

/* The allocation holding [addr, addr + len) entirely, or NULL. Caller holds
 * c->lock. */
struct pm_alloc_entry *pm_alloc_find_range(const struct pm_client *c, uintptr_t addr,
					   size_t len)
{
	for (struct pm_alloc_entry *e = c->allocs; e; e = e->next) {
		uintptr_t start = (uintptr_t)e->addr;

		if (addr >= start && addr - start < e->size && len <= e->size - (addr - start))
			return e;
	}
	return NULL;
}

int pm_span_of(struct pm_client *c, const void *addr, size_t len, struct pm_span *sp)
{
	uintptr_t a = (uintptr_t)addr, page = (uintptr_t)sysconf(_SC_PAGESIZE);
	const struct pm_alloc_entry *e;
	int r = -EINVAL;

	if (!len || (a & (page - 1)))
		return -EINVAL;
	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, a, len);
	if (e) {
		uintptr_t off = a - (uintptr_t)e->addr;

		sp->id = e->id;
		sp->chunk = e->chunk_size;
		sp->first = off / e->chunk_size;
		sp->count = (off + len + e->chunk_size - 1) / e->chunk_size - sp->first;
		sp->start = (uintptr_t)e->addr + sp->first * e->chunk_size;
		sp->gen = c->gen;
		r = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

PM_EXPORT int pm_query(struct pm_client *c, const void *addr, size_t len, uint64_t *pagemap_ids,
		       size_t n)
{
	struct pm_query_range q = { 0 };
	struct pm_span sp;
	size_t done = 0;
	int r;

	if (!c || (n && !pagemap_ids))
		return -EINVAL;
again:
	r = pm_span_of(c, addr, len, &sp);
	if (r < 0)
		return r;
	if (sp.count > INT32_MAX)
		return -EINVAL;
	q.alloc_id = sp.id;
	done = 0;
	/* As many requests as it takes: one reply holds PM_QUERY_MAX ids. */
	while (done < n && done < sp.count) {
		size_t want = sp.count - done, got = 0;

		if (want > n - done)
			want = n - done;
		if (want > PM_QUERY_MAX)
			want = PM_QUERY_MAX;
		q.first = sp.first + done;
		q.count = want;
		r = pm_client_call_gen(c, sp.gen, PM_OP_QUERY_RANGE, &q, sizeof(q), NULL, 0,
				       pagemap_ids + done, want * sizeof(uint64_t), &got, NULL);
		if (r == -ESTALE)
			goto again; /* the broker restarted: the allocation's new id */
		if (r < 0)
			return r;
		if ((size_t)r != want || got != want * sizeof(uint64_t))
			return -EPROTO;
		done += want;
	}
	return (int)sp.count;
}
