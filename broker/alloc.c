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
	close(al->memfd);
	s->nallocs--;
	b->stats.allocations--;
	b->stats.allocated_bytes -= al->size;
	free(al);
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
