/* SPDX-License-Identifier: MIT */
/*
 * Managed allocations: each is a memfd the client created, mapped and passed
 * over; the broker checks it is what it claims to be before keeping it.
 * Placement state per chunk comes with the migration engine (docs/
 * placement-design.md); today the broker records geometry and accounts.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"

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
static int check_memfd(int fd, uint64_t size)
{
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0)
		return -EINVAL;
	if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EINVAL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -EINVAL;
	return 0;
}

int alloc_register(struct broker *b, struct session *s, const struct pm_alloc *a, int memfd,
		   struct pm_alloc_reply *rep)
{
	struct allocation *al;
	int r;

	if (a->flags || a->reserved || !power_of_two(a->chunk_size) ||
	    a->chunk_size < PM_CHUNK_MIN || a->chunk_size > PM_CHUNK_MAX || !a->size ||
	    a->size % a->chunk_size)
		return -EINVAL;
	r = check_memfd(memfd, a->size);
	if (r < 0)
		return r;
	if (b->conf.max_allocations_per_session &&
	    s->nallocs >= b->conf.max_allocations_per_session)
		return -EMFILE;
	al = calloc(1, sizeof(*al));
	if (!al)
		return -ENOMEM;
	al->where = calloc(a->size / a->chunk_size, sizeof(*al->where));
	if (!al->where) {
		free(al);
		return -ENOMEM;
	}
	al->id = ++b->next_alloc_id;
	al->memfd = memfd;
	al->size = a->size;
	al->chunk_size = a->chunk_size;
	al->next = s->allocs;
	s->allocs = al;
	s->nallocs++;
	b->stats.allocations++;
	b->stats.allocated_bytes += al->size;
	rep->alloc_id = al->id;
	rep->nchunks = al->size / al->chunk_size;
	return 0;
}

static void drop(struct broker *b, struct session *s, struct allocation *al)
{
	for (uint64_t i = 0; i < al->size / al->chunk_size; i++)
		if (al->where[i])
			registry_unpin(b, al->where[i]);
	free(al->where);
	close(al->memfd);
	s->nallocs--;
	b->stats.allocations--;
	b->stats.allocated_bytes -= al->size;
	free(al);
}

static struct allocation *find(struct session *s, uint64_t id)
{
	for (struct allocation *al = s->allocs; al; al = al->next)
		if (al->id == id)
			return al;
	return NULL;
}

/* [first, first + count) within al's chunks, without overflow. */
static bool in_range(const struct allocation *al, uint64_t first, uint64_t count)
{
	uint64_t n = al->size / al->chunk_size;

	return count && first < n && count <= n - first;
}

int alloc_place(struct broker *b, struct session *s, const struct pm_place *pl, int pagemap_fd)
{
	struct allocation *al = find(s, pl->alloc_id);
	struct handle *h;

	if (pl->flags || pl->reserved)
		return -EINVAL;
	if (!al)
		return -ENOENT;
	if (!in_range(al, pl->first, pl->count))
		return -EINVAL;
	/* The fd is the capability: only a live handle's client end names a pagemap. */
	h = registry_handle_of_fd(b, pagemap_fd);
	if (!h)
		return -EBADF;
	for (uint64_t i = pl->first; i < pl->first + pl->count; i++) {
		struct pagemap *old = al->where[i];

		if (old == h->pm)
			continue;
		registry_pin(b, h->pm);
		al->where[i] = h->pm;
		if (old)
			registry_unpin(b, old);
	}
	return 0;
}

int alloc_query(struct broker *b, struct session *s, const struct pm_query_range *q,
		uint64_t *ids)
{
	struct allocation *al = find(s, q->alloc_id);

	(void)b;
	if (!al)
		return -ENOENT;
	if (!in_range(al, q->first, q->count) || q->count > PM_QUERY_MAX)
		return -EINVAL;
	for (uint64_t i = 0; i < q->count; i++)
		ids[i] = al->where[q->first + i] ? al->where[q->first + i]->id : 0;
	return (int)q->count;
}

void alloc_forget_pagemap(struct broker *b, const struct pagemap *pm)
{
	for (struct session *s = b->sessions; s; s = s->next)
		for (struct allocation *al = s->allocs; al; al = al->next)
			for (uint64_t i = 0; i < al->size / al->chunk_size; i++)
				if (al->where[i] == pm)
					al->where[i] = NULL;
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
