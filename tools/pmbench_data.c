/* SPDX-License-Identifier: MIT */
/*
 * What the data-moving benchmarks (migrate, rdma, gpu) share: a seeded
 * pattern no earlier buffer left behind, its checksum and a check that
 * names the first bad word, where a buffer's chunks are resident, option
 * sizes, and throughput figures in the JSON.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_stats.h"
#include "json_out.h"
#include "pagemap.h"
#include "pmbench.h"

#define FNV_BASIS 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t bench_fill(void *buf, size_t len, uint64_t seed)
{
	uint64_t *w = buf, h = FNV_BASIS;

	for (size_t i = 0; i < len / sizeof(*w); i++) {
		w[i] = mix(seed + i);
		h = (h ^ w[i]) * FNV_PRIME;
	}
	return h;
}

uint64_t bench_checksum(const void *buf, size_t len)
{
	const uint64_t *w = buf;
	uint64_t h = FNV_BASIS;

	for (size_t i = 0; i < len / sizeof(*w); i++)
		h = (h ^ w[i]) * FNV_PRIME;
	return h;
}

int bench_verify(const void *buf, size_t len, size_t chunk, uint64_t seed, uint64_t want,
		 char *why, size_t wlen)
{
	const uint64_t *w = buf;

	if (bench_checksum(buf, len) == want)
		return 0;
	for (size_t i = 0; i < len / sizeof(*w); i++)
		if (w[i] != mix(seed + i)) {
			snprintf(why, wlen, "data differs at offset %zu (chunk %zu)",
				 i * sizeof(*w), i * sizeof(*w) / chunk);
			return -EIO;
		}
	snprintf(why, wlen, "checksum differs but no word does (the data changed while read)");
	return -EIO;
}

int bench_resident(struct pm_client *c, const void *buf, size_t len, size_t chunk, uint64_t id,
		   const char *where, char *why, size_t wlen)
{
	size_t n = len / chunk, at = 0;
	uint64_t *ids = calloc(n, sizeof(*ids));
	int r = ids ? pm_query(c, buf, len, ids, n) : -ENOMEM;

	if (r >= 0 && (size_t)r != n)
		r = -EPROTO;
	if (r < 0) {
		snprintf(why, wlen, "pm_query: %s", strerror(-r));
		free(ids);
		return r;
	}
	for (size_t i = 0; i < n; i++)
		at += ids[i] == id;
	free(ids);
	if (at == n)
		return 0;
	snprintf(why, wlen, "%zu of %zu chunks are resident in %s", at, n,
		 id ? where : "system memory");
	return -EIO;
}

size_t bench_parse_size(const char *s)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return 0;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	if (*end || v > (1ull << 40))
		return 0;
	return (size_t)v;
}

double bench_gbps(size_t bytes, double secs)
{
	return secs > 0 ? (double)bytes / secs / 1e9 : NAN;
}

int bench_add_rates(json_object *o, size_t bytes, const struct bench_stats *s)
{
	/* The slow tail of the rates (p5) is the long tail of the times (p95). */
	return json_out_add_num(o, "median_gbps", bench_gbps(bytes, s->median), 3) ||
	       json_out_add_num(o, "p5_gbps", bench_gbps(bytes, s->p95), 3) ||
	       json_out_add_num(o, "p95_gbps", bench_gbps(bytes, s->p5), 3);
}

int engine_leg_migrate(struct pm_client *c, void *buf, size_t size, int fd, double *t,
		       struct engine_leg *leg)
{
	struct engine_stats before, after, d;
	bool ok = leg->ok && engine_stats_read(c, &before) == 0;
	double t0 = bench_now();
	int r = pm_migrate(c, buf, size, fd, 0);

	*t = bench_now() - t0;
	ok = ok && engine_stats_read(c, &after) == 0;
	if (ok && r == 0) {
		engine_stats_delta(&before, &after, &d);
		engine_stats_add(&leg->sum, &d);
	}
	leg->ok = ok;
	return r;
}
