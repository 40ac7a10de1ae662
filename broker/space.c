/* SPDX-License-Identifier: MIT */
/*
 * Where chunks sit inside a device pool: a bitmap of PM_CHUNK_MIN units,
 * first fit, each chunk aligned to its own size when the pool allows so that
 * large chunks do not straddle what a device would map as one page.
 * Pools are at most a few hundred GiB: a linear scan of a few hundred KiB of
 * bitmap is cheap next to copying the chunk.
 */
#include <errno.h>
#include <stdlib.h>

#include "broker.h"

#define WORD_BITS 64u

static bool unit_used(const struct pool *p, uint64_t u)
{
	return p->space[u / WORD_BITS] >> (u % WORD_BITS) & 1;
}

static void units_set(struct pool *p, uint64_t u, uint64_t n, bool used)
{
	for (uint64_t i = u; i < u + n; i++) {
		uint64_t bit = 1ull << (i % WORD_BITS);

		if (used)
			p->space[i / WORD_BITS] |= bit;
		else
			p->space[i / WORD_BITS] &= ~bit;
	}
}

int space_init(struct pool *p)
{
	p->nunits = p->capacity / PM_CHUNK_MIN;
	p->space = calloc((p->nunits + WORD_BITS - 1) / WORD_BITS + 1, sizeof(*p->space));
	p->used = 0;
	return p->space ? 0 : -ENOMEM;
}

void space_fini(struct pool *p)
{
	free(p->space);
	p->space = NULL;
	p->nunits = 0;
	p->used = 0;
}

/* The first free run of n units starting at a multiple of align units. */
static int64_t find_run(const struct pool *p, uint64_t n, uint64_t align)
{
	for (uint64_t u = 0; u + n <= p->nunits; u += align) {
		uint64_t i = 0;

		/* Whole free words are skipped a word at a time. */
		if (!(u % WORD_BITS) && p->space[u / WORD_BITS] == ~0ull && align <= WORD_BITS) {
			u += WORD_BITS - align;
			continue;
		}
		while (i < n && !unit_used(p, u + i))
			i++;
		if (i == n)
			return (int64_t)u;
	}
	return -ENOSPC;
}

int64_t space_get(struct pool *p, uint64_t len)
{
	uint64_t n = len / PM_CHUNK_MIN;
	int64_t u;

	if (!p->space || !n || len % PM_CHUNK_MIN)
		return -EINVAL;
	u = find_run(p, n, n);
	if (u < 0 && n > 1)
		u = find_run(p, n, 1);
	if (u < 0)
		return u;
	units_set(p, (uint64_t)u, n, true);
	p->used += len;
	return u * (int64_t)PM_CHUNK_MIN;
}

int space_take(struct pool *p, uint64_t off, uint64_t len)
{
	uint64_t u = off / PM_CHUNK_MIN, n = len / PM_CHUNK_MIN;

	if (!p->space || !n || off % PM_CHUNK_MIN || len % PM_CHUNK_MIN || u + n > p->nunits ||
	    u + n < u)
		return -EINVAL;
	for (uint64_t i = u; i < u + n; i++)
		if (unit_used(p, i))
			return -EBUSY;
	units_set(p, u, n, true);
	p->used += len;
	return 0;
}

void space_put(struct pool *p, uint64_t off, uint64_t len)
{
	if (!p->space)
		return;
	units_set(p, off / PM_CHUNK_MIN, len / PM_CHUNK_MIN, false);
	p->used -= len;
}
