/* SPDX-License-Identifier: MIT */
/*
 * Managed allocations: each is a memfd the client created, mapped and passed
 * over; the broker checks it is what it claims to be before keeping it.
 * Placement state per chunk comes with the migration engine (docs/
 * placement-design.md); today the broker records geometry and accounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"

/*
 * The broker keeps a chunk table per allocation: a client asking for a
 * sparse terabyte would otherwise make the broker allocate (and later walk)
 * gigabytes of it. Counted per uid, so many sessions do not multiply it.
 */
static int alloc_charge(struct broker *b, uint32_t uid, uint64_t size, uint64_t nchunks)
{
	int r = uid_charge(b, uid, UID_ALLOCATIONS, 1);

	if (r < 0)
		return r;
	r = uid_charge(b, uid, UID_ALLOC_CHUNKS, nchunks);
	if (r < 0)
		goto fail_count;
	r = uid_charge(b, uid, UID_ALLOC_BYTES, size);
	if (r < 0)
		goto fail_chunks;
	return 0;
fail_chunks:
	uid_uncharge(b, uid, UID_ALLOC_CHUNKS, nchunks);
fail_count:
	uid_uncharge(b, uid, UID_ALLOCATIONS, 1);
	return r;
}

static void alloc_uncharge(struct broker *b, uint32_t uid, uint64_t size, uint64_t nchunks)
{
	uid_uncharge(b, uid, UID_ALLOC_BYTES, size);
	uid_uncharge(b, uid, UID_ALLOC_CHUNKS, nchunks);
	uid_uncharge(b, uid, UID_ALLOCATIONS, 1);
}

static bool power_of_two(uint64_t v)
{
	return v && !(v & (v - 1));
}

/*
 * The fd must be a memfd (only memfds and hugetlbfs/shmem files answer
 * F_GET_SEALS), sealed so the client cannot shrink it under the broker's
 * feet (a shrunk mapping would SIGBUS the broker mid-copy), of the size
 * announced.
 */
static int check_memfd(int fd, uint64_t size, uint64_t ino[2])
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return -EINVAL;
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EINVAL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -EINVAL;
	ino[0] = st.st_ino;
	ino[1] = st.st_dev;
	return 0;
}

int alloc_register(struct broker *b, struct session *s, const struct pm_alloc *a, int memfd,
		   struct pm_alloc_reply *rep)
{
	struct allocation *al;
	uint64_t ino[2] = { 0 };
	int r;

	if (a->flags || a->reserved || !power_of_two(a->chunk_size) ||
	    a->chunk_size < PM_CHUNK_MIN || a->chunk_size > PM_CHUNK_MAX || !a->size ||
	    a->size % a->chunk_size)
		return -EINVAL;
	r = check_memfd(memfd, a->size, ino);
	if (r < 0)
		return r;
	if (b->conf.max_allocations_per_session &&
	    s->nallocs >= b->conf.max_allocations_per_session) {
		blog(LOG_WARN, "uid %u (pid %d): max_allocations_per_session (%u) reached",
		     s->cred.uid, (int)s->cred.pid, b->conf.max_allocations_per_session);
		return -EMFILE;
	}
	r = alloc_charge(b, s->cred.uid, a->size, a->size / a->chunk_size);
	if (r < 0)
		return r;
	al = calloc(1, sizeof(*al));
	if (al)
		al->chunks = calloc(a->size / a->chunk_size, sizeof(*al->chunks));
	if (!al || !al->chunks) {
		free(al);
		alloc_uncharge(b, s->cred.uid, a->size, a->size / a->chunk_size);
		return -ENOMEM;
	}
	al->nchunks = a->size / a->chunk_size;
	al->id = ++b->next_alloc_id;
	al->session_id = s->id;
	al->pid = s->cred.pid;
	al->uid = s->cred.uid;
	al->memfd = memfd;
	al->ino = ino[0];
	al->dev = ino[1];
	al->size = a->size;
	al->chunk_size = a->chunk_size;
	al->next = s->allocs;
	s->allocs = al;
	s->nallocs++;
	b->stats.allocations++;
	b->stats.allocated_bytes += al->size;
	rep->alloc_id = al->id;
	rep->nchunks = al->nchunks;
	recover_claim(b, al);
	return 0;
}

void alloc_space_put(struct broker *b, const struct allocation *al, struct pool *p,
		     uint64_t off)
{
	space_put(p, off, al->chunk_size);
	recover_forget(p, off);
	uid_uncharge(b, al->uid, UID_PLACED_BYTES, al->chunk_size);
}

void alloc_set_ref(struct broker *b, struct pagemap **slot, struct pagemap *pm)
{
	struct pagemap *old = *slot;

	if (old == pm)
		return;
	if (pm)
		registry_pin(b, pm);
	*slot = pm;
	if (old)
		registry_unpin(b, old);
}

/* Drops what a chunk holds: its place in a device pool and its pins. */
static void chunk_release(struct broker *b, struct allocation *al, struct chunk *ch)
{
	if (ch->where && pool_is_device(ch->where->pool)) {
		alloc_space_put(b, al, ch->where->pool, ch->off);
	}
	alloc_set_ref(b, &ch->where, NULL);
	alloc_set_ref(b, &ch->requested, NULL);
	for (unsigned k = 0; k < PM_ACCESSORS_MAX; k++)
		alloc_set_ref(b, &ch->accessed_by[k], NULL);
}

/*
 * Whether fd is a userfaultfd: anything else (a socket, a file another
 * process gave this one) must never stand in for one.
 */
static bool is_uffd(int fd)
{
	char path[64], link[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, "anon_inode:[userfaultfd]");
}

void uffd_put(struct broker *b, struct uffd_ref *u)
{
	if (!u || --u->refs)
		return;
	close(u->fd);
	uid_uncharge(b, u->uid, UID_HANDLES, 1);
	free(u);
}

/*
 * PM_OP_UFFD. The broker trusts nothing here: the fd must be a
 * userfaultfd, the address page-aligned and the range not wrap. A client
 * that names another mapping, or another process's userfaultfd it holds,
 * gets its own allocation's bytes written where it could write them
 * itself with that fd; a range it did not register just makes the copies
 * fall back to the memfd.
 */
int alloc_set_uffd(struct broker *b, struct session *s, const struct pm_uffd *u, int fd)
{
	struct allocation *al = alloc_find(s, u->alloc_id);
	struct uffd_ref *ref = s->uffd;
	int r;

	if (!al || !u->addr || u->addr % 4096 || u->addr + al->size < u->addr) {
		close(fd);
		return !al ? -ENOENT : -EINVAL;
	}
	if (!is_uffd(fd)) {
		close(fd);
		return -EBADF;
	}
	/* The session's userfaultfd, unless this is another one. */
	if (ref) {
		struct stat a, c;

		if (fstat(ref->fd, &a) == 0 && fstat(fd, &c) == 0 && a.st_ino == c.st_ino &&
		    a.st_dev == c.st_dev) {
			close(fd);
			fd = -1;
		} else {
			ref = NULL;
		}
	}
	if (!ref) {
		r = uid_charge(b, s->cred.uid, UID_HANDLES, 1);
		if (r < 0) {
			close(fd);
			return r;
		}
		ref = calloc(1, sizeof(*ref));
		if (!ref) {
			uid_uncharge(b, s->cred.uid, UID_HANDLES, 1);
			close(fd);
			return -ENOMEM;
		}
		*ref = (struct uffd_ref){ .fd = fd, .refs = 1, .uid = s->cred.uid };
		uffd_put(b, s->uffd);
		s->uffd = ref;
	}
	ref->refs++;
	uffd_put(b, al->uffd);
	al->uffd = ref;
	al->uaddr = u->addr;
	return 0;
}

void alloc_reap(struct broker *b, struct allocation *al)
{
	if (al->busy)
		return;
	for (struct allocation **pp = &b->dying; *pp; pp = &(*pp)->next)
		if (*pp == al) {
			*pp = al->next;
			break;
		}
	for (uint64_t i = 0; i < al->nchunks; i++)
		chunk_release(b, al, &al->chunks[i]);
	free(al->chunks);
	close(al->memfd);
	uffd_put(b, al->uffd);
	alloc_uncharge(b, al->uid, al->size, al->nchunks);
	b->stats.allocations--;
	b->stats.allocated_bytes -= al->size;
	free(al);
}

/* Unlinked from its session; freed now, or when its last copy completes. */
static void drop(struct broker *b, struct session *s, struct allocation *al)
{
	s->nallocs--;
	engine_forget_alloc(b, al);
	al->dead = true;
	al->next = b->dying;
	b->dying = al;
	alloc_reap(b, al);
}

struct allocation *alloc_find(struct session *s, uint64_t id)
{
	for (struct allocation *al = s->allocs; al; al = al->next)
		if (al->id == id)
			return al;
	return NULL;
}

bool alloc_in_range(const struct allocation *al, uint64_t first, uint64_t count)
{
	return count && first < al->nchunks && count <= al->nchunks - first;
}

/*
 * The client moved host pages between NUMA nodes itself and records where
 * they are now. Chunks in device pools or in flight are the engine's
 * (PM_OP_MIGRATE moves those).
 */
int alloc_place(struct broker *b, struct session *s, const struct pm_place *pl, int pagemap_fd)
{
	struct allocation *al = alloc_find(s, pl->alloc_id);
	struct handle *h;

	if (pl->flags || pl->reserved)
		return -EINVAL;
	if (!al)
		return -ENOENT;
	if (!alloc_in_range(al, pl->first, pl->count))
		return -EINVAL;
	/* The fd is the capability: only a live handle's client end names a pagemap. */
	h = registry_handle_of_fd(b, pagemap_fd);
	if (!h)
		return -EBADF;
	if (pool_is_device(h->pm->pool))
		return -EINVAL;
	for (uint64_t i = pl->first; i < pl->first + pl->count; i++) {
		const struct chunk *ch = &al->chunks[i];

		if (ch->busy || (ch->where && pool_is_device(ch->where->pool)))
			return -EBUSY;
	}
	for (uint64_t i = pl->first; i < pl->first + pl->count; i++)
		alloc_set_ref(b, &al->chunks[i].where, h->pm);
	return 0;
}

int alloc_query(struct broker *b, struct session *s, const struct pm_query_range *q,
		uint64_t *ids)
{
	struct allocation *al = alloc_find(s, q->alloc_id);

	(void)b;
	if (!al)
		return -ENOENT;
	if (!alloc_in_range(al, q->first, q->count) || q->count > PM_QUERY_MAX)
		return -EINVAL;
	for (uint64_t i = 0; i < q->count; i++) {
		const struct pagemap *w = al->chunks[q->first + i].where;

		ids[i] = w ? w->id : 0;
	}
	return (int)q->count;
}

/* Copies a chunk of a vanishing device pool home, on the pool's engine. A
 * BAR whose device is already gone faults inside the kernel's copy
 * (-EFAULT) instead of killing the broker with SIGBUS; a peer that is gone
 * took the data with it (-ENOTCONN). */
static int evacuate(struct allocation *al, uint64_t i, struct pool *p)
{
	const struct chunk *ch = &al->chunks[i];
	struct xfer_local to = { .fd = al->memfd, .off = (off_t)(i * al->chunk_size) };
	struct xfer_tally t = { 0 };

	if (ch->host_copy)
		return 0;
	return xfer_engine_of(p)->read(p, ch->off, &to, al->chunk_size, &t);
}

static void forget_in(struct broker *b, struct allocation *al, struct pagemap *pm)
{
	for (uint64_t i = 0; i < al->nchunks; i++) {
		struct chunk *ch = &al->chunks[i];

		if (ch->where == pm) {
			int r = pool_is_device(pm->pool) ? evacuate(al, i, pm->pool) : 0;

			if (pool_is_device(pm->pool)) {
				if (r < 0)
					b->lost_bytes += al->chunk_size;
				else if (!ch->host_copy)
					b->evacuated_bytes += al->chunk_size;
			}
			if (r < 0) {
				ch->error = -EIO;
				blog(LOG_ERR, "allocation %llu chunk %llu: lost with %s/%s: %s",
				     (unsigned long long)al->id, (unsigned long long)i,
				     pm->pool->device, pm->pool->region, strerror(-r));
			}
			if (pool_is_device(pm->pool)) {
				uid_uncharge(b, al->uid, UID_PLACED_BYTES, al->chunk_size);
				recover_forget(pm->pool, ch->off);
			}
			ch->where = NULL;
			ch->host_copy = false;
			pm->pins--;
		}
		if (ch->requested == pm) {
			ch->requested = NULL;
			ch->advice &= (uint16_t)~PM_RUN_PREFERRED;
			pm->pins--;
		}
		for (unsigned k = 0; k < PM_ACCESSORS_MAX; k++)
			if (ch->accessed_by[k] == pm) {
				ch->accessed_by[k] = NULL;
				pm->pins--;
			}
	}
}

void alloc_forget_pagemap(struct broker *b, struct pagemap *pm)
{
	engine_forget_pagemap(b, pm);
	for (struct session *s = b->sessions; s; s = s->next)
		for (struct allocation *al = s->allocs; al; al = al->next)
			forget_in(b, al, pm);
	for (struct allocation *al = b->dying; al; al = al->next)
		forget_in(b, al, pm);
	/* Work aimed at pm now fails; whatever waited on its chunks runs. */
	engine_kick(b);
}

int alloc_free(struct broker *b, struct session *s, uint64_t id)
{
	for (struct allocation **pp = &s->allocs; *pp; pp = &(*pp)->next) {
		struct allocation *al = *pp;

		if (al->id != id)
			continue;
		*pp = al->next;
		drop(b, s, al);
		return 0;
	}
	return -ENOENT;
}

void alloc_free_all(struct broker *b, struct session *s)
{
	while (s->allocs) {
		struct allocation *al = s->allocs;

		s->allocs = al->next;
		drop(b, s, al);
	}
}
