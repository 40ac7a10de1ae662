/* SPDX-License-Identifier: MIT */
/*
 * Seeded data for the guest check programs (pm_bar_check, pm_remote_check,
 * pm_gpu_check), which run without the integration helpers: any word can
 * be recomputed alone, and a word at the wrong offset or under another seed
 * differs from the one expected there.
 */
#ifndef PAGEMAP_CHECK_PATTERN_H
#define PAGEMAP_CHECK_PATTERN_H
#include <stddef.h>
#include <stdint.h>

static inline uint64_t check_word(uint64_t seed, size_t i)
{
	uint64_t x = seed ^ (i * 0x9e3779b97f4a7c15ull);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

static inline void check_fill(uint64_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		p[i] = check_word(seed, i);
}

/* Words in [first, first + n) that differ from the pattern. */
static inline size_t check_bad_words(const uint64_t *p, size_t first, size_t n, uint64_t seed)
{
	size_t bad = 0;

	for (size_t i = first; i < first + n; i++)
		bad += p[i] != check_word(seed, i);
	return bad;
}
#endif
