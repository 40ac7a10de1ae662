/* SPDX-License-Identifier: MIT */
/*
 * Placement advice: pm_madvise records where chunks belong, who accesses
 * them and whether they are read mostly, moves nothing by itself, and
 * pm_query_range reports it beside where the data really is, as uniform
 * runs. Prefetches to the preferred location (PM_FD_PREFERRED) honour it.
 * Peer-path rules need devices without one: a second broker serves
 * examples/topologies/two-socket-mem.json, six memory devices under
 * one switch on node 0 (PIX to each other) and one on node 1 (SYS to all).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"

#define CHUNK (2ull << 20)

/* Devices of the two-socket topology. */
#define FAR_TOPOLOGY "examples/topologies/two-socket-mem.json"
#define FAR_A "0000:03:00.0"
static const char *const far_peers[] = { "0000:04:00.0", "0000:05:00.0", "0000:06:00.0",
					 "0000:07:00.0", "0000:08:00.0" };
#define FAR_X "0000:81:00.0" /* node 1: no peer path to any of the above */

static struct it_broker br, far;

static bool up(void)
{
	return br.pid || it_broker_up(&br, 300);
}

static bool far_up(void)
{
	struct it_opts o = { .linger_ms = 300, .topology = FAR_TOPOLOGY };
	int r;

	if (far.pid)
		return true;
	r = it_broker_init(&far);
	if (r == 0)
		r = it_broker_start(&far, &o);
	if (r < 0)
		fprintf(stderr, "cannot start pagemapd on %s: %s\n", FAR_TOPOLOGY, strerror(-r));
	CU_ASSERT_EQUAL(r, 0);
	if (r < 0)
		it_broker_stop(&far);
	return r == 0;
}

#define CHECK_DATA(base, off, len, seed)                                                   \
	do {                                                                               \
		size_t bad_ = it_pattern_check((base), (off), (len), (seed));              \
		cu_check_at(bad_ == SIZE_MAX, __FILE__, __LINE__,                          \
			    "data differs from its pattern at offset %zu", bad_);          \
	} while (0)

#define CHECK_IN(c, addr, len, id, n)                                                      \
	do {                                                                               \
		int in_ = it_chunks_in((c), (addr), (len), (id));                          \
		cu_check_at(in_ == (int)(n), __FILE__, __LINE__,                           \
			    "%d chunks in pagemap %llu, want %d", in_,                     \
			    (unsigned long long)(id), (int)(n));                            \
	} while (0)

/* [addr, addr + len) is one run: *out is it. False (and asserted) otherwise. */
static bool one_run_at(struct pm_client *c, const void *addr, size_t len, struct pm_range *out,
		       unsigned line)
{
	struct pm_range r[4];
	int n;

	memset(r, 0xa5, sizeof(r));
	n = pm_query_range(c, addr, len, r, 4);
	cu_check_at(n == 1, __FILE__, line, "pm_query_range: %d runs, want 1", n);
	if (n != 1)
		return false;
	cu_check_at(r[0].addr == addr && r[0].len == len, __FILE__, line,
		    "run covers %p+%zu, want %p+%zu", r[0].addr, r[0].len, addr, len);
	*out = r[0];
	return true;
}
#define ONE_RUN(c, addr, len, out) one_run_at((c), (addr), (len), (out), __LINE__)

/* PREFERRED_LOCATION records a wish; PM_FD_PREFERRED carries it out. */
static void test_preferred(void)
{
	const size_t len = 4 * CHUNK;
	struct pm_client *c;
	struct pm_range r;
	uint64_t e0, used0;
	uint8_t *p;
	void *a;
	int emu0;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0);
	e0 = it_id(emu0);
	used0 = it_used(emu0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 21);

	/* Nothing asked yet. */
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.resident, 0);
		CU_ASSERT_EQUAL(r.requested, 0);
		CU_ASSERT_EQUAL(r.advice, 0);
		CU_ASSERT_EQUAL(r.flags, 0);
		CU_ASSERT_EQUAL(r.error, 0);
		CU_ASSERT_EQUAL(r.accessed_by[0], 0);
	}
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	/* Advice alone moves nothing. */
	CHECK_IN(c, p, len, 0, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.resident, 0);
		CU_ASSERT_EQUAL(r.requested, e0);
		CU_ASSERT(r.advice & PM_RANGE_PREFERRED);
		CU_ASSERT_FALSE(r.advice & (PM_RANGE_ACCESSED_BY | PM_RANGE_READ_MOSTLY));
	}
	/* The same advice again changes nothing. */
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	if (ONE_RUN(c, p, len, &r))
		CU_ASSERT_EQUAL(r.requested, e0);

	/* The prefetch. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, len, e0, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0 + len);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.resident, e0);
		CU_ASSERT_EQUAL(r.requested, e0);
		CU_ASSERT_FALSE(r.flags & PM_RANGE_IN_FLIGHT);
	}
	/* A fault brings the data home; the wish stays. */
	CHECK_DATA(p, 0, len, 21);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.resident, 0);
		CU_ASSERT_EQUAL(r.requested, e0);
		CU_ASSERT(r.advice & PM_RANGE_PREFERRED);
	}

	/* Chunks without a preferred location stay where they are. */
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_UNSET_PREFERRED_LOCATION, PM_FD_SYSTEM),
			PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, p, 2 * CHUNK, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, 2 * CHUNK, e0, 2);
	CHECK_IN(c, p + 2 * CHUNK, 2 * CHUNK, 0, 2);
	CHECK_DATA(p, 0, len, 21);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	close(emu0);
	pm_disconnect(c);
}

/* ONLY_SYSTEM: the prefetch leaves chunks another device holds where they are. */
static void test_only_system(void)
{
	const size_t len = 4 * CHUNK;
	uint64_t ids[4], e0, e1;
	struct pm_client *c;
	int emu0, emu1;
	uint8_t *p;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0);
	e0 = it_id(emu0);
	e1 = it_id(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 22);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION | PM_ADV_FLAG_ONLY_SYSTEM,
				   emu0), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_migrate(c, p + CHUNK, CHUNK, emu1, 0), 0);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, p, len, ids, 4), 4);
	CU_ASSERT_EQUAL(ids[0], e0);
	CU_ASSERT_EQUAL(ids[1], e1);
	CU_ASSERT_EQUAL(ids[2], e0);
	CU_ASSERT_EQUAL(ids[3], e0);

	/* Without the flag (changed advice), the prefetch takes every chunk. */
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, len, e0, 4);
	CU_ASSERT_EQUAL(it_used(emu1), 0);
	CHECK_DATA(p, 0, len, 22);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
}

/* UNSET clears the wish; system memory is a wish of its own, not "none". */
static void test_unset_and_system(void)
{
	const size_t len = 2 * CHUNK;
	struct pm_client *c;
	struct pm_range r;
	uint8_t *p;
	uint64_t e0;
	void *a;
	int emu0;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0);
	e0 = it_id(emu0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 23);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_UNSET_PREFERRED_LOCATION, PM_FD_SYSTEM),
			PM_ADV_APPLIED);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, 0);
		CU_ASSERT_FALSE(r.advice & PM_RANGE_PREFERRED);
	}
	/* Nothing preferred: the prefetch moves nothing. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, len, 0, 2);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, PM_FD_SYSTEM),
			PM_ADV_APPLIED);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, PM_PAGEMAP_SYSTEM);
		CU_ASSERT(r.advice & PM_RANGE_PREFERRED);
		CU_ASSERT_EQUAL(r.resident, 0);
	}
	/* Preferring system memory brings chunks home from a pool. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu0, 0), 0);
	CHECK_IN(c, p, len, e0, 2);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, len, 0, 2);
	CHECK_DATA(p, 0, len, 23);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	pm_disconnect(c);
}

/* Uniform runs: every field alike within a run, a new run where one differs. */
static void test_runs(void)
{
	const size_t len = 4 * CHUNK;
	struct pm_range r[8], sentinel;
	struct pm_client *c;
	int emu0, emu1, n;
	uint64_t e0, e1;
	uint8_t *p;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0);
	e0 = it_id(emu0);
	e1 = it_id(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 24);
	CU_ASSERT_EQUAL(pm_migrate(c, p + CHUNK, CHUNK, emu0, 0), 0);

	memset(r, 0xa5, sizeof(r));
	n = pm_query_range(c, p, len, r, 8);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_PTR_EQUAL(r[0].addr, p);
	CU_ASSERT_EQUAL(r[0].len, CHUNK);
	CU_ASSERT_EQUAL(r[0].resident, 0);
	CU_ASSERT_PTR_EQUAL(r[1].addr, p + CHUNK);
	CU_ASSERT_EQUAL(r[1].len, CHUNK);
	CU_ASSERT_EQUAL(r[1].resident, e0);
	CU_ASSERT_PTR_EQUAL(r[2].addr, p + 2 * CHUNK);
	CU_ASSERT_EQUAL(r[2].len, 2 * CHUNK);
	CU_ASSERT_EQUAL(r[2].resident, 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(r[i].requested, 0);
		CU_ASSERT_EQUAL(r[i].advice, 0);
		CU_ASSERT_EQUAL(r[i].flags, 0);
		CU_ASSERT_EQUAL(r[i].error, 0);
		CU_ASSERT_EQUAL(r[i].accessed_by[0], 0);
	}

	/* n smaller than the runs: fills n, returns how many there are. */
	memset(r, 0xa5, sizeof(r));
	sentinel = r[1];
	CU_ASSERT_EQUAL(pm_query_range(c, p, len, r, 1), 3);
	CU_ASSERT_PTR_EQUAL(r[0].addr, p);
	CU_ASSERT_EQUAL(r[0].len, CHUNK);
	CU_ASSERT_EQUAL(memcmp(&r[1], &sentinel, sizeof(sentinel)), 0);

	/* Advice alone splits a run too: chunk 3 prefers emu1. */
	CU_ASSERT_EQUAL(pm_madvise(c, p + 3 * CHUNK, CHUNK, PM_ADV_PREFERRED_LOCATION, emu1),
			PM_ADV_APPLIED);
	n = pm_query_range(c, p, len, r, 8);
	CU_ASSERT_EQUAL_FATAL(n, 4);
	CU_ASSERT_PTR_EQUAL(r[2].addr, p + 2 * CHUNK);
	CU_ASSERT_EQUAL(r[2].len, CHUNK);
	CU_ASSERT_EQUAL(r[2].requested, 0);
	CU_ASSERT_PTR_EQUAL(r[3].addr, p + 3 * CHUNK);
	CU_ASSERT_EQUAL(r[3].len, CHUNK);
	CU_ASSERT_EQUAL(r[3].requested, e1);
	CU_ASSERT_EQUAL(r[3].resident, 0);

	/* Part of the allocation: only the chunks asked about. */
	n = pm_query_range(c, p + CHUNK, 2 * CHUNK, r, 8);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_PTR_EQUAL(r[0].addr, p + CHUNK);
	CU_ASSERT_EQUAL(r[0].len, CHUNK);
	CU_ASSERT_EQUAL(r[0].resident, e0);
	CU_ASSERT_PTR_EQUAL(r[1].addr, p + 2 * CHUNK);
	CU_ASSERT_EQUAL(r[1].len, CHUNK);
	CU_ASSERT_EQUAL(r[1].resident, 0);

	/* Back to one run once chunk 1 is home and chunk 3's wish is gone. */
	CHECK_DATA(p, 0, len, 24);
	CU_ASSERT_EQUAL(pm_madvise(c, p + 3 * CHUNK, CHUNK, PM_ADV_UNSET_PREFERRED_LOCATION,
				   PM_FD_SYSTEM), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_query_range(c, p, len, r, 8), 1);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
}

/* ACCESSED_BY a peer (the two ivshmem pools are PIX): recorded, removable, moves nothing. */
static void test_accessed_by_peer(void)
{
	const size_t len = 2 * CHUNK;
	struct pm_client *c;
	struct pm_range r;
	uint64_t e0, e1;
	int emu0, emu1;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0);
	e0 = it_id(emu0);
	e1 = it_id(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);

	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION, emu0), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, emu1), PM_ADV_APPLIED);
	CHECK_IN(c, a, len, 0, 2);
	if (ONE_RUN(c, a, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, e0);
		CU_ASSERT_EQUAL(r.accessed_by[0], e1);
		CU_ASSERT_EQUAL(r.accessed_by[1], 0);
		CU_ASSERT_EQUAL(r.advice & (PM_RANGE_PREFERRED | PM_RANGE_ACCESSED_BY),
				PM_RANGE_PREFERRED | PM_RANGE_ACCESSED_BY);
	}
	/* Twice is once. */
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, emu1), PM_ADV_APPLIED);
	if (ONE_RUN(c, a, len, &r)) {
		CU_ASSERT_EQUAL(r.accessed_by[0], e1);
		CU_ASSERT_EQUAL(r.accessed_by[1], 0);
	}
	/* With the fallback flag, a peer needs no fallback. */
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY | PM_ADV_FLAG_FALLBACK, emu1),
			PM_ADV_APPLIED);
	if (ONE_RUN(c, a, len, &r))
		CU_ASSERT_EQUAL(r.requested, e0);

	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_UNSET_ACCESSED_BY, emu1), PM_ADV_APPLIED);
	if (ONE_RUN(c, a, len, &r)) {
		CU_ASSERT_EQUAL(r.accessed_by[0], 0);
		CU_ASSERT_FALSE(r.advice & PM_RANGE_ACCESSED_BY);
		CU_ASSERT_EQUAL(r.requested, e0); /* the other advice untouched */
	}
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
}

/*
 * READ_MOSTLY: the host copy stays valid while the chunk lives in a pool,
 * so reads do not fault; the first write collapses the replica into the
 * written copy in system memory.
 */
static void test_read_mostly(void)
{
	const size_t len = 2 * CHUNK, off = CHUNK + 64;
	const uint64_t word = 0x0123456789abcdefull;
	struct pm_stats_reply s0, s1;
	struct pm_client *c;
	struct pm_range r[4];
	uint64_t e0, used0, ids[2];
	uint8_t *p;
	void *a;
	int emu0, rc;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0);
	e0 = it_id(emu0);
	used0 = it_used(emu0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 25);

	rc = pm_madvise(c, p, len, PM_ADV_READ_MOSTLY, PM_FD_SYSTEM);
	if (rc == -EOPNOTSUPP) {
		fprintf(stderr, "READ_MOSTLY: -EOPNOTSUPP (no userfaultfd write protection "
				"for shmem here): not tested\n");
		CU_PASS("READ_MOSTLY not supported by this kernel: skipped");
		goto out;
	}
	CU_ASSERT_EQUAL(rc, PM_ADV_APPLIED);
	if (ONE_RUN(c, p, len, &r[0])) {
		CU_ASSERT(r[0].advice & PM_RANGE_READ_MOSTLY);
		CU_ASSERT_EQUAL(r[0].resident, 0);
	}
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, len, emu0, 0), 0);
	CU_ASSERT_EQUAL(it_used(emu0), used0 + len);
	if (ONE_RUN(c, p, len, &r[0])) {
		CU_ASSERT_EQUAL(r[0].resident, e0);
		CU_ASSERT(r[0].flags & PM_RANGE_HOST_COPY);
		CU_ASSERT(r[0].advice & PM_RANGE_READ_MOSTLY);
	}

	/* Reads hit the host copy: no fault, nothing moves. */
	s0 = (struct pm_stats_reply){ 0 };
	CU_ASSERT_EQUAL(it_stats(c, &s0), 0);
	CHECK_DATA(p, 0, len, 25);
	CHECK_DATA(p, 0, len, 25);
	CU_ASSERT_EQUAL(it_stats(c, &s1), 0);
	CU_ASSERT_EQUAL(s1.faults, s0.faults);
	CU_ASSERT_EQUAL(s1.bytes_host, s0.bytes_host);
	CHECK_IN(c, p, len, e0, 2);

	/* A write collapses chunk 1's replica: its data is the written copy, at home. */
	memcpy(p + off, &word, sizeof(word));
	CU_ASSERT_EQUAL(pm_query(c, p, len, ids, 2), 2);
	CU_ASSERT_EQUAL(ids[1], 0);
	CU_ASSERT_EQUAL(pm_query_range(c, p + CHUNK, CHUNK, r, 4), 1);
	CU_ASSERT_EQUAL(r[0].resident, 0);
	CU_ASSERT_FALSE(r[0].flags & PM_RANGE_HOST_COPY);
	{
		uint64_t got;

		memcpy(&got, p + off, sizeof(got));
		CU_ASSERT_EQUAL(got, word);
	}
	CHECK_DATA(p, 0, off, 25);
	CHECK_DATA(p, off + 8, len - off - 8, 25);

	/* Migrated again, the (new) data is replicated again. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu0, 0), 0);
	CU_ASSERT_EQUAL(pm_query_range(c, p + CHUNK, CHUNK, r, 4), 1);
	CU_ASSERT_EQUAL(r[0].resident, e0);
	CU_ASSERT(r[0].flags & PM_RANGE_HOST_COPY);
	CU_ASSERT_EQUAL(memcmp(p + off, &word, sizeof(word)), 0);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_UNSET_READ_MOSTLY, PM_FD_SYSTEM),
			PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_query_range(c, p, len, r, 4) >= 1, 1);
	CU_ASSERT_FALSE(r[0].advice & PM_RANGE_READ_MOSTLY);
	CHECK_DATA(p, 0, off, 25);
out:
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	close(emu0);
	pm_disconnect(c);
}

/* Bad advice is refused and records nothing. */
static void test_errors(void)
{
	const size_t len = 2 * CHUNK;
	struct pm_range r[2];
	struct pm_client *c;
	int emu0, pipefd[2], rc;
	uint8_t *p, *heap;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	heap = aligned_alloc(4096, 1 << 20);
	CU_ASSERT_FATAL(heap != NULL);
	CU_ASSERT_FATAL(pipe2(pipefd, O_CLOEXEC) == 0);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, 0, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, 7, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, 99, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, -1, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION | 0x400, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION | 0x10000, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p + 1, 4096, PM_ADV_PREFERRED_LOCATION, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, 0, PM_ADV_PREFERRED_LOCATION, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len + 4096, PM_ADV_PREFERRED_LOCATION, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, heap, 4096, PM_ADV_PREFERRED_LOCATION, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(NULL, p, len, PM_ADV_PREFERRED_LOCATION, emu0), -EINVAL);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, pipefd[0]), -EBADF);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_ACCESSED_BY, pipefd[0]), -EBADF);
	/* An accessor is a device's pagemap; system memory is none. */
	rc = pm_madvise(c, p, len, PM_ADV_ACCESSED_BY, PM_FD_SYSTEM);
	cu_check_at(rc == -EINVAL || rc == -EBADF, __FILE__, __LINE__,
		    "ACCESSED_BY PM_FD_SYSTEM: %d", rc);
	/* PM_FD_PREFERRED names no location to prefer. */
	rc = pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, PM_FD_PREFERRED);
	cu_check_at(rc == -EINVAL || rc == -EBADF, __FILE__, __LINE__,
		    "PREFERRED_LOCATION PM_FD_PREFERRED: %d", rc);

	CU_ASSERT_EQUAL(pm_query_range(c, p + 1, 4096, r, 2), -EINVAL);
	CU_ASSERT_EQUAL(pm_query_range(c, p, 0, r, 2), -EINVAL);
	CU_ASSERT_EQUAL(pm_query_range(c, p, len, NULL, 2), -EINVAL);
	CU_ASSERT_EQUAL(pm_query_range(c, heap, 4096, r, 2), -EINVAL);
	CU_ASSERT_EQUAL(pm_query_range(c, p, len + 4096, r, 2), -EINVAL);

	/* Nothing recorded by any of that. */
	if (ONE_RUN(c, p, len, &r[0])) {
		CU_ASSERT_EQUAL(r[0].advice, 0);
		CU_ASSERT_EQUAL(r[0].requested, 0);
		CU_ASSERT_EQUAL(r[0].accessed_by[0], 0);
	}
	close(pipefd[0]);
	close(pipefd[1]);
	free(heap);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	pm_disconnect(c);
}

/*
 * No peer path (FAR_X on node 1, FAR_A on node 0): ACCESSED_BY is refused
 * with -ENOLINK, or with the fallback flag makes the accessor's own pagemap
 * the preferred location.
 */
static void test_no_peer_path(void)
{
	const size_t len = 2 * CHUNK;
	uint64_t ida, idx;
	struct pm_client *c;
	struct pm_range r;
	int fa, fx, fb;
	uint8_t *p;
	void *a;

	if (!far_up())
		return;
	c = it_connect(&far);
	CU_ASSERT_FATAL(c != NULL);
	fa = pagemap_open(c, FAR_A, NULL, 0);
	fb = pagemap_open(c, far_peers[0], NULL, 0);
	fx = pagemap_open(c, FAR_X, NULL, 0);
	CU_ASSERT_FATAL(fa >= 0 && fb >= 0 && fx >= 0);
	ida = it_id(fa);
	idx = it_id(fx);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 26);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_PREFERRED_LOCATION, fa), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_ACCESSED_BY, fx), -ENOLINK);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, ida);
		CU_ASSERT_EQUAL(r.accessed_by[0], 0);
		CU_ASSERT_FALSE(r.advice & PM_RANGE_ACCESSED_BY);
	}
	/* A peer of FAR_A is fine. */
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_ACCESSED_BY, fb), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_UNSET_ACCESSED_BY, fb), PM_ADV_APPLIED);

	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_ACCESSED_BY | PM_ADV_FLAG_FALLBACK, fx),
			PM_ADV_APPLIED_LOCAL);
	if (ONE_RUN(c, p, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, idx);
		CU_ASSERT(r.advice & PM_RANGE_PREFERRED);
		CU_ASSERT(r.advice & PM_RANGE_ACCESSED_BY);
		CU_ASSERT_EQUAL(r.accessed_by[0], idx);
		CU_ASSERT_EQUAL(r.resident, 0); /* advice still moves nothing */
	}
	/* The prefetch follows the new location. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_PREFERRED, 0), 0);
	CHECK_IN(c, p, len, idx, 2);
	CHECK_DATA(p, 0, len, 26);
	/* FAR_A's peer has no peer path to FAR_X, the location now. */
	CU_ASSERT_EQUAL(pm_madvise(c, p, len, PM_ADV_ACCESSED_BY, fb), -ENOLINK);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(fa);
	close(fb);
	close(fx);
	pm_disconnect(c);
}

/*
 * The other order: an accessor first, then a preferred location it has no
 * peer path to. -ENOLINK without the flag; with it, one of the fallbacks,
 * and `requested` says which.
 */
static void test_preferred_far_from_accessor(void)
{
	const size_t len = 2 * CHUNK;
	struct pm_client *c;
	struct pm_range r;
	uint64_t idx;
	int fa, fx, rc;
	void *a;

	if (!far_up())
		return;
	c = it_connect(&far);
	CU_ASSERT_FATAL(c != NULL);
	fa = pagemap_open(c, FAR_A, NULL, 0);
	fx = pagemap_open(c, FAR_X, NULL, 0);
	CU_ASSERT_FATAL(fa >= 0 && fx >= 0);
	idx = it_id(fx);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);

	/* No preferred location yet: any device may access. */
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, fx), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION, fa), -ENOLINK);
	if (ONE_RUN(c, a, len, &r)) {
		CU_ASSERT_EQUAL(r.requested, 0);
		CU_ASSERT_FALSE(r.advice & PM_RANGE_PREFERRED);
		CU_ASSERT_EQUAL(r.accessed_by[0], idx);
	}
	rc = pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION | PM_ADV_FLAG_FALLBACK, fa);
	cu_check_at(rc == PM_ADV_APPLIED_LOCAL || rc == PM_ADV_APPLIED_SYSTEM, __FILE__, __LINE__,
		    "PREFERRED_LOCATION with a far accessor and FALLBACK: %d", rc);
	if (ONE_RUN(c, a, len, &r)) {
		CU_ASSERT(r.advice & PM_RANGE_PREFERRED);
		CU_ASSERT_EQUAL(r.accessed_by[0], idx);
		if (rc == PM_ADV_APPLIED_LOCAL)
			CU_ASSERT_EQUAL(r.requested, idx);
		if (rc == PM_ADV_APPLIED_SYSTEM)
			CU_ASSERT_EQUAL(r.requested, PM_PAGEMAP_SYSTEM);
	}
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(fa);
	close(fx);
	pm_disconnect(c);
}

/* At most PM_ACCESSED_BY_MAX accessors per chunk. */
static void test_accessed_by_max(void)
{
	const size_t len = CHUNK;
	uint64_t ids[5], want[4];
	int fa, fp[5], rc;
	struct pm_client *c;
	struct pm_range r;
	void *a;

	if (!far_up())
		return;
	c = it_connect(&far);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(PM_ACCESSED_BY_MAX, 4);
	fa = pagemap_open(c, FAR_A, NULL, 0);
	CU_ASSERT_FATAL(fa >= 0);
	for (int i = 0; i < 5; i++) {
		fp[i] = pagemap_open(c, far_peers[i], NULL, 0);
		CU_ASSERT_FATAL(fp[i] >= 0);
		ids[i] = it_id(fp[i]);
	}
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION, fa), PM_ADV_APPLIED);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, fp[i]), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, fp[4]), -E2BIG);
	/* Already there: a repeat, not a fifth. */
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, fp[1]), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_UNSET_ACCESSED_BY, fp[2]), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_ACCESSED_BY, fp[4]), PM_ADV_APPLIED);

	want[0] = ids[0];
	want[1] = ids[1];
	want[2] = ids[3];
	want[3] = ids[4];
	if (ONE_RUN(c, a, len, &r)) {
		/* The set, in whatever order the broker keeps it. */
		for (int i = 0; i < 4; i++) {
			rc = 0;
			for (int k = 0; k < 4; k++)
				rc += r.accessed_by[k] == want[i];
			cu_check_at(rc == 1, __FILE__, __LINE__, "accessor %llu listed %d times",
				    (unsigned long long)want[i], rc);
		}
	}
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(fa);
	for (int i = 0; i < 5; i++)
		close(fp[i]);
	pm_disconnect(c);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
	if (far.pid)
		it_broker_stop(&far);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "PREFERRED_LOCATION and the prefetch to it", test_preferred },
		{ "ONLY_SYSTEM leaves other devices' chunks", test_only_system },
		{ "UNSET, and system memory as the location", test_unset_and_system },
		{ "pm_query_range: uniform runs", test_runs },
		{ "ACCESSED_BY a peer", test_accessed_by_peer },
		{ "READ_MOSTLY keeps a host copy until written", test_read_mostly },
		{ "bad advice is refused", test_errors },
		{ "no peer path: -ENOLINK or the accessor's pool", test_no_peer_path },
		{ "a preferred location far from an accessor", test_preferred_far_from_accessor },
		{ "at most PM_ACCESSED_BY_MAX accessors", test_accessed_by_max },
		{ "brokers exit cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("advise", tests);
}
