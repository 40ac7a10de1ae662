/* SPDX-License-Identifier: MIT */
/*
 * What each uid holds in the broker, against the per-uid limits of the
 * configuration (docs/security.md). Every client is treated as hostile:
 * whatever a request would make the broker keep (a session, a handle, an
 * allocation's chunk table, a queued job, device pool bytes) is charged to
 * the caller's uid first and refused when it would pass the uid's share,
 * with an errno that says which kind of limit and a log line that names
 * the uid and the limit.
 *
 * Few uids use a broker at once, and an entry lives only while its uid
 * holds something: a short list is enough.
 */
#include <errno.h>
#include <stdlib.h>

#include "broker.h"

struct uid_usage {
	uint32_t uid;
	uint64_t held[UID_NRES];
	uint64_t refused_at[UID_NRES + 1]; /* ms of the last log line (+1: the fd share) */
	struct uid_usage *next;
};

static const struct {
	const char *key; /* the limit's name in the configuration file */
	int err;
} res_info[UID_NRES] = {
	[UID_SESSIONS] = { "max_sessions_per_uid", -EMFILE },
	[UID_HANDLES] = { "max_handles_per_uid", -EMFILE },
	[UID_ALLOCATIONS] = { "max_allocations_per_uid", -EMFILE },
	[UID_ALLOC_CHUNKS] = { "max_alloc_chunks_per_uid", -EDQUOT },
	[UID_ALLOC_BYTES] = { "max_alloc_bytes_per_uid", -EDQUOT },
	[UID_JOBS] = { "max_jobs_per_uid", -EAGAIN },
	[UID_PLACED_BYTES] = { "max_placed_bytes_per_uid", -EDQUOT },
};

static uint64_t limit_of(const struct config *c, enum uid_res r)
{
	switch (r) {
	case UID_SESSIONS: return c->max_sessions_per_uid;
	case UID_HANDLES: return c->max_handles_per_uid;
	case UID_ALLOCATIONS: return c->max_allocations_per_uid;
	case UID_ALLOC_CHUNKS: return c->max_alloc_chunks_per_uid;
	case UID_ALLOC_BYTES: return c->max_alloc_bytes_per_uid;
	case UID_JOBS: return c->max_jobs_per_uid;
	case UID_PLACED_BYTES: return c->max_placed_bytes_per_uid;
	case UID_NRES: break;
	}
	return 0;
}

static struct uid_usage *find(const struct broker *b, uint32_t uid)
{
	for (struct uid_usage *u = b->uids; u; u = u->next)
		if (u->uid == uid)
			return u;
	return NULL;
}

/* Adds n of r to uid's usage, making its entry if it has none. */
static int add(struct broker *b, struct uid_usage *u, uint32_t uid, enum uid_res r, uint64_t n)
{
	if (!u) {
		u = calloc(1, sizeof(*u));
		if (!u)
			return -ENOMEM;
		u->uid = uid;
		u->next = b->uids;
		b->uids = u;
	}
	u->held[r] += n;
	return 0;
}

int uid_charge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n)
{
	struct uid_usage *u = find(b, uid);
	uint64_t limit, have;

	if (r >= UID_NRES)
		return -EINVAL;
	/* Sessions, handles, allocations (their memfds) and async migrations
	 * (their completion sockets) all hold fds here: together they get a
	 * share of the broker's fd limit, so that no one uid can make accept()
	 * fail for everyone. */
	if (b->conf.max_fds_per_uid &&
	    (r == UID_SESSIONS || r == UID_HANDLES || r == UID_ALLOCATIONS || r == UID_JOBS)) {
		uint64_t fds = u ? u->held[UID_SESSIONS] + u->held[UID_HANDLES] +
					   u->held[UID_ALLOCATIONS] + u->held[UID_JOBS]
				 : 0;

		if (fds + n > b->conf.max_fds_per_uid) {
			b->limits_hit++;
			if (u && now_ms() - u->refused_at[UID_NRES] >= 1000) {
				blog(LOG_WARN, "uid %u: max_fds_per_uid (%u) reached: %llu held", uid,
				     b->conf.max_fds_per_uid, (unsigned long long)fds);
				u->refused_at[UID_NRES] = now_ms();
			}
			return -EMFILE;
		}
	}
	limit = limit_of(&b->conf, r);
	have = u ? u->held[r] : 0;

	/* 0 is "no limit" (only where the documentation says it may be). */
	if (limit && (n > limit || have > limit - n)) {
		uint64_t now = now_ms();

		b->limits_hit++;
		/* One line a second per uid and limit: a client hammering at its
		 * limit must not flood the journal. */
		if (!u || now - u->refused_at[r] >= 1000) {
			blog(LOG_WARN, "uid %u: %s (%llu) reached: %llu held, %llu more refused", uid,
			     res_info[r].key, (unsigned long long)limit, (unsigned long long)have,
			     (unsigned long long)n);
			if (u)
				u->refused_at[r] = now;
		}
		return res_info[r].err;
	}
	return n ? add(b, u, uid, r, n) : 0;
}

void uid_force_charge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n)
{
	if (r < UID_NRES && n)
		add(b, find(b, uid), uid, r, n);
}

void uid_uncharge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n)
{
	struct uid_usage **pp, *u;

	for (pp = &b->uids; (u = *pp) && u->uid != uid; pp = &u->next)
		;
	if (!u || r >= UID_NRES)
		return;
	u->held[r] = u->held[r] > n ? u->held[r] - n : 0;
	for (unsigned i = 0; i < UID_NRES; i++)
		if (u->held[i])
			return;
	*pp = u->next;
	free(u);
}

void uid_free_all(struct broker *b)
{
	while (b->uids) {
		struct uid_usage *u = b->uids;

		b->uids = u->next;
		free(u);
	}
}
