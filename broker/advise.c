/* SPDX-License-Identifier: MIT */
/*
 * Placement advice (after cudaMemAdvise and xe's madvise) and the chunk
 * state it leaves, described as runs of alike chunks. Advice moves nothing
 * by itself: it is what PM_TARGET_PREFERRED prefetches and fault-backs read.
 * Each request is checked whole before any chunk changes, so a refused one
 * leaves nothing half-applied.
 */
#include <errno.h>
#include <string.h>

#include "broker.h"

/* Whether an accessor can use data placed at target without moving it:
 * system memory and host nodes are reachable by every device (and the CPU
 * reaches device pools by faulting chunks back); two devices need a peer
 * path (NVLink/XGMI or PCIe P2P the kernel would allow). */
static bool reaches(const struct broker *b, const struct pagemap *acc, const struct pagemap *target)
{
	if (!target || !pool_is_device(target->pool) || !pool_is_device(acc->pool))
		return true;
	return engine_peer_path(b, acc->pool, target->pool);
}

static int accessor_slot(const struct chunk *ch, const struct pagemap *pm, bool free_slot)
{
	for (int k = 0; k < PM_ACCESSORS_MAX; k++)
		if (ch->accessed_by[k] == (free_slot ? NULL : pm))
			return k;
	return -1;
}

static void set_preferred(struct broker *b, struct chunk *ch, struct pagemap *pm, bool only_system)
{
	alloc_set_ref(b, &ch->requested, pm);
	ch->requested_system = !pm;
	ch->only_system = only_system;
	ch->advice |= PM_RUN_PREFERRED;
}

static int preferred(struct broker *b, struct allocation *al, uint64_t first, uint64_t count,
		     struct pagemap *pm, unsigned flags)
{
	bool conflict = false;

	for (uint64_t i = first; i < first + count && !conflict; i++)
		for (int k = 0; k < PM_ACCESSORS_MAX; k++)
			if (al->chunks[i].accessed_by[k] && !reaches(b, al->chunks[i].accessed_by[k], pm))
				conflict = true;
	if (conflict && !(flags & PM_ADVICE_FLAG_FALLBACK))
		return -ENOLINK;
	for (uint64_t i = first; i < first + count; i++)
		set_preferred(b, &al->chunks[i], conflict ? NULL : pm, flags & PM_ADVICE_FLAG_ONLY_SYSTEM);
	return conflict ? PM_ADVICE_APPLIED_SYSTEM : PM_ADVICE_APPLIED;
}

static int accessed_by(struct broker *b, struct allocation *al, uint64_t first, uint64_t count,
		       struct pagemap *acc, unsigned flags)
{
	bool conflict = false;
	int applied = PM_ADVICE_APPLIED;

	for (uint64_t i = first; i < first + count; i++) {
		const struct chunk *ch = &al->chunks[i];

		if (accessor_slot(ch, acc, false) < 0 && accessor_slot(ch, NULL, true) < 0)
			return -E2BIG;
		if (ch->requested && !reaches(b, acc, ch->requested))
			conflict = true;
	}
	if (conflict) {
		if (!(flags & PM_ADVICE_FLAG_FALLBACK))
			return -ENOLINK;
		/* Peer failed; the accessor's own memory if it can hold the
		 * range, else system memory (xe's order). */
		applied = pool_is_device(acc->pool) && !acc->pool->gone &&
					  pool_free(b, acc->pool) >= count * al->chunk_size
				  ? PM_ADVICE_APPLIED_LOCAL
				  : PM_ADVICE_APPLIED_SYSTEM;
	}
	for (uint64_t i = first; i < first + count; i++) {
		struct chunk *ch = &al->chunks[i];

		if (accessor_slot(ch, acc, false) < 0)
			alloc_set_ref(b, &ch->accessed_by[accessor_slot(ch, NULL, true)], acc);
		ch->advice |= PM_RUN_ACCESSED_BY;
		if (conflict && ch->requested && !reaches(b, acc, ch->requested))
			set_preferred(b, ch, applied == PM_ADVICE_APPLIED_LOCAL ? acc : NULL,
				      ch->only_system);
	}
	return applied;
}

static void unset_accessed_by(struct broker *b, struct allocation *al, uint64_t first,
			      uint64_t count, struct pagemap *acc)
{
	for (uint64_t i = first; i < first + count; i++) {
		struct chunk *ch = &al->chunks[i];
		int k = accessor_slot(ch, acc, false);

		if (k >= 0)
			alloc_set_ref(b, &ch->accessed_by[k], NULL);
		if (accessor_slot(ch, NULL, true) >= 0 &&
		    !ch->accessed_by[0] && !ch->accessed_by[1] && !ch->accessed_by[2] &&
		    !ch->accessed_by[3])
			ch->advice &= (uint16_t)~PM_RUN_ACCESSED_BY;
	}
}

/*
 * Unsetting READ_MOSTLY ends the replicas: the host copy is valid, so the
 * device copy goes and the chunk is in system memory again, with nothing to
 * copy. (Left alone, a later CPU write would go unnoticed.)
 */
static int unset_read_mostly(struct broker *b, struct allocation *al, uint64_t first,
			     uint64_t count)
{
	for (uint64_t i = first; i < first + count; i++)
		if (al->chunks[i].busy)
			return -EBUSY;
	for (uint64_t i = first; i < first + count; i++) {
		struct chunk *ch = &al->chunks[i];

		ch->advice &= (uint16_t)~PM_RUN_READ_MOSTLY;
		if (!ch->host_copy)
			continue;
		alloc_space_put(b, al, ch->where->pool, ch->off);
		alloc_set_ref(b, &ch->where, NULL);
		ch->host_copy = false;
	}
	return 0;
}

int advise_apply(struct broker *b, struct session *s, const struct pm_advise *a, int pagemap_fd)
{
	struct allocation *al = alloc_find(s, a->alloc_id);
	unsigned advice = a->advice & PM_ADVICE_KIND_MASK, flags = a->advice & ~PM_ADVICE_KIND_MASK;
	bool wants_fd = advice == PM_ADVICE_ACCESSED_BY || advice == PM_ADVICE_UNSET_ACCESSED_BY;
	struct pagemap *pm = NULL;

	if (a->reserved || (flags & ~PM_ADVICE_FLAGS_KNOWN) ||
	    advice < PM_ADVICE_PREFERRED_LOCATION || advice > PM_ADVICE_UNSET_READ_MOSTLY)
		return -EINVAL;
	if (!al)
		return -ENOENT;
	if (!alloc_in_range(al, a->first, a->count))
		return -EINVAL;
	if ((wants_fd && pagemap_fd < 0) ||
	    (pagemap_fd >= 0 && !wants_fd && advice != PM_ADVICE_PREFERRED_LOCATION))
		return -EINVAL;
	if (pagemap_fd >= 0) {
		struct handle *h = registry_handle_of_fd(b, pagemap_fd);

		if (!h)
			return -EBADF;
		if (h->pm->state == PM_STATE_REVOKED || h->pm->pool->gone)
			return -ENODEV;
		pm = h->pm;
	}
	switch (advice) {
	case PM_ADVICE_PREFERRED_LOCATION:
		return preferred(b, al, a->first, a->count, pm, flags);
	case PM_ADVICE_UNSET_PREFERRED_LOCATION:
		for (uint64_t i = a->first; i < a->first + a->count; i++) {
			struct chunk *ch = &al->chunks[i];

			alloc_set_ref(b, &ch->requested, NULL);
			ch->requested_system = ch->only_system = false;
			ch->advice &= (uint16_t)~PM_RUN_PREFERRED;
		}
		return PM_ADVICE_APPLIED;
	case PM_ADVICE_ACCESSED_BY:
		return accessed_by(b, al, a->first, a->count, pm, flags);
	case PM_ADVICE_UNSET_ACCESSED_BY:
		unset_accessed_by(b, al, a->first, a->count, pm);
		return PM_ADVICE_APPLIED;
	case PM_ADVICE_READ_MOSTLY:
		for (uint64_t i = a->first; i < a->first + a->count; i++)
			al->chunks[i].advice |= PM_RUN_READ_MOSTLY;
		return PM_ADVICE_APPLIED;
	case PM_ADVICE_UNSET_READ_MOSTLY:
		return unset_read_mostly(b, al, a->first, a->count);
	}
	return -EINVAL;
}

static void run_of(const struct chunk *ch, uint64_t i, struct pm_run *r)
{
	memset(r, 0, sizeof(*r));
	r->first = i;
	r->count = 1;
	r->resident = ch->where ? ch->where->id : 0;
	if (ch->requested)
		r->requested = ch->requested->id;
	else if (ch->requested_system)
		r->requested = PM_RUN_REQUESTED_SYSTEM;
	for (int k = 0, n = 0; k < PM_ACCESSORS_MAX; k++)
		if (ch->accessed_by[k])
			r->accessed_by[n++] = ch->accessed_by[k]->id;
	r->advice = ch->advice;
	r->flags = (ch->busy ? PM_RUN_IN_FLIGHT : 0) | (ch->host_copy ? PM_RUN_HOST_COPY : 0);
	r->error = ch->error;
}

static bool alike(const struct pm_run *a, const struct pm_run *c)
{
	return a->resident == c->resident && a->requested == c->requested &&
	       !memcmp(a->accessed_by, c->accessed_by, sizeof(a->accessed_by)) &&
	       a->advice == c->advice && a->flags == c->flags && a->error == c->error;
}

unsigned runs_describe(const struct allocation *al, uint64_t first, uint64_t count,
		       struct pm_run *out, unsigned max, bool *more)
{
	unsigned n = 0;
	struct pm_run cur;

	*more = false;
	for (uint64_t i = first; i < first + count; i++) {
		run_of(&al->chunks[i], i, &cur);
		if (n && alike(&out[n - 1], &cur)) {
			out[n - 1].count++;
			continue;
		}
		if (n == max) {
			*more = true;
			break;
		}
		out[n++] = cur;
	}
	return n;
}
