/* SPDX-License-Identifier: MIT */
/* pm_madvise and pm_query_range: advice goes to the broker, which keeps
 * it per chunk; this process remembers what its fault handling needs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

#define PM_EXPORT __attribute__((visibility("default")))

/* What this process keeps of advice that applied: READ_MOSTLY chunks are
 * write-protected while elsewhere; a preferred host node is bound like a
 * host move when prefetched. */
static void remember(struct pm_client *c, const struct pm_span *sp, int advice, int applied,
		     int node)
{
	struct pm_alloc_entry *e;

	pthread_mutex_lock(&c->lock);
	e = pm_alloc_find_range(c, sp->start, sp->count * sp->chunk);
	for (uint64_t i = sp->first; e && i < sp->first + sp->count; i++) {
		switch (advice) {
		case PM_ADV_READ_MOSTLY:
			e->state[i] |= PM_CHUNK_READ_MOSTLY;
			break;
		case PM_ADV_UNSET_READ_MOSTLY:
			/* The broker ended the replicas. The protection stays
			 * until the next write, which faults once and lifts it
			 * (a migration under way may still need it). */
			e->state[i] &= (uint8_t)~PM_CHUNK_READ_MOSTLY;
			break;
		case PM_ADV_PREFERRED_LOCATION:
			e->pref_node[i] = (int16_t)(applied == PM_ADV_APPLIED ? node : -1);
			break;
		case PM_ADV_UNSET_PREFERRED_LOCATION:
			e->pref_node[i] = -1;
			break;
		case PM_ADV_ACCESSED_BY:
			/* A fallback moved the preferred location off any node. */
			if (applied != PM_ADV_APPLIED)
				e->pref_node[i] = -1;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

PM_EXPORT int pm_madvise(struct pm_client *c, void *addr, size_t len, int advice, int pagemap_fd)
{
	struct pm_advise a = { 0 };
	struct pagemap_info info;
	struct pm_span sp;
	int kind = advice & 0xff, node = -1, r;

	if (!c)
		return -EINVAL;
again:
	r = pm_span_of(c, addr, len, &sp);
	if (r < 0)
		return r;
	if (pagemap_fd >= 0) {
		r = pagemap_query(pagemap_fd, &info);
		if (r < 0)
			return r;
		if (info.kind == PAGEMAP_KIND_HOST_NUMA)
			node = info.numa_node;
	} else if (pagemap_fd != PM_FD_SYSTEM) {
		return -EBADF;
	}
	/* A replica the CPU could write unnoticed would be silently stale. */
	if (kind == PM_ADV_READ_MOSTLY && !pm_fault_can_wp(c))
		return -EOPNOTSUPP;
	a.alloc_id = sp.id;
	a.first = sp.first;
	a.count = sp.count;
	a.advice = (uint32_t)advice; /* PM_ADV_* are the wire's PM_ADVICE_* (wire_check.c) */
	r = pm_client_call_gen(c, sp.gen, PM_OP_ADVISE, &a, sizeof(a), &pagemap_fd,
			       pagemap_fd >= 0, NULL, 0, NULL, NULL);
	if (r == -ESTALE)
		goto again; /* the broker restarted: the allocation's new id */
	if (r >= 0)
		remember(c, &sp, kind, r, node);
	return r;
}

PM_EXPORT int pm_query_range(struct pm_client *c, const void *addr, size_t len,
			     struct pm_range *out, size_t n)
{
	struct pm_query_range q = { 0 };
	struct pm_list_reply *rep;
	const struct pm_run *run;
	struct pm_range last = { 0 };
	struct pm_span sp;
	uint64_t next;
	size_t total = 0, got;
	int r;

	if (!c || (n && !out))
		return -EINVAL;
	r = pm_span_of(c, addr, len, &sp);
	if (r < 0)
		return r;
	rep = malloc(PM_MAX_PAYLOAD);
	if (!rep)
		return -ENOMEM;
	q.alloc_id = sp.id;
	/* As many requests as it takes; a run cut between two replies is
	 * joined again when the next reply's first run continues it. */
	for (next = sp.first; next < sp.first + sp.count;) {
		q.first = next;
		q.count = sp.first + sp.count - next;
		r = pm_client_call_gen(c, sp.gen, PM_OP_RANGES, &q, sizeof(q), NULL, 0, &rep->count,
				       PM_MAX_PAYLOAD - sizeof(rep->r), &got, NULL);
		if (r < 0)
			goto out;
		run = (const void *)(rep + 1);
		if (!rep->count || got < sizeof(*rep) - sizeof(rep->r) + rep->count * sizeof(*run)) {
			r = -EPROTO;
			goto out;
		}
		for (uint32_t k = 0; k < rep->count; k++, total++) {
			struct pm_range pr = { 0 };

			pr.addr = (void *)(sp.start + (run[k].first - sp.first) * sp.chunk);
			pr.len = run[k].count * sp.chunk;
			pr.resident = run[k].resident;
			pr.requested = run[k].requested;
			memcpy(pr.accessed_by, run[k].accessed_by, sizeof(pr.accessed_by));
			pr.advice = run[k].advice;
			pr.flags = run[k].flags;
			pr.error = run[k].error;
			if (total && k == 0 && last.resident == pr.resident &&
			    last.requested == pr.requested &&
			    !memcmp(last.accessed_by, pr.accessed_by, sizeof(pr.accessed_by)) &&
			    last.advice == pr.advice && last.flags == pr.flags &&
			    last.error == pr.error) {
				last.len += pr.len;
				if (total - 1 < n)
					out[total - 1].len += pr.len;
				total--;
				continue;
			}
			last = pr;
			if (total < n)
				out[total] = pr;
		}
		next = run[rep->count - 1].first + run[rep->count - 1].count;
	}
	r = total > INT32_MAX ? -EOVERFLOW : (int)total;
out:
	free(rep);
	return r;
}
