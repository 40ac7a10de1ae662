/* SPDX-License-Identifier: MIT */
/*
 * Migration into device pools (the emulated ivshmem pools of qemu-pcie.json):
 * pm_migrate and pm_migrate_batch move chunks there and back, the broker
 * counts what it copied and how, a CPU access brings a chunk home through
 * userfaultfd with its data, a full pool stops a migration part way without
 * losing a byte, asynchronous migrations complete on their fd, and bad
 * input or a revoked pool is refused. Every range holds seeded data that is
 * checked byte for byte after it has travelled.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "it_broker.h"

#define MiB (1ull << 20)
#define CHUNK (2 * MiB) /* pm_alloc's default */

static struct it_broker br;

static bool up(void)
{
	return br.pid || it_broker_up(&br, 300);
}

static struct pm_stats_reply stats(struct pm_client *c)
{
	struct pm_stats_reply st;

	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	return st;
}

/* The migration counters moved by exactly these amounts between a and b. */
#define CHECK_MOVED(a, b, direct, bounced, host, nfaults)                                   \
	do {                                                                               \
		cu_check_at((b).bytes_direct - (a).bytes_direct == (direct), __FILE__, __LINE__, \
			    "bytes_direct grew by %llu, want %llu",                       \
			    (unsigned long long)((b).bytes_direct - (a).bytes_direct),     \
			    (unsigned long long)(direct));                                  \
		cu_check_at((b).bytes_bounced - (a).bytes_bounced == (bounced), __FILE__,       \
			    __LINE__, "bytes_bounced grew by %llu, want %llu",            \
			    (unsigned long long)((b).bytes_bounced - (a).bytes_bounced),   \
			    (unsigned long long)(bounced));                                 \
		cu_check_at((b).bytes_host - (a).bytes_host == (host), __FILE__, __LINE__,     \
			    "bytes_host grew by %llu, want %llu",                         \
			    (unsigned long long)((b).bytes_host - (a).bytes_host),         \
			    (unsigned long long)(host));                                    \
		cu_check_at((b).faults - (a).faults == (nfaults), __FILE__, __LINE__,           \
			    "faults grew by %llu, want %llu",                             \
			    (unsigned long long)((b).faults - (a).faults),                 \
			    (unsigned long long)(nfaults));                                 \
	} while (0)

/* Every byte of [off, off + len) from base matches the pattern of seed. */
#define CHECK_DATA(base, off, len, seed)                                                   \
	do {                                                                               \
		size_t bad_ = it_pattern_check((base), (off), (len), (seed));              \
		cu_check_at(bad_ == SIZE_MAX, __FILE__, __LINE__,                          \
			    "data differs from its pattern at offset %zu", bad_);          \
	} while (0)

/* Exactly n chunks of [addr, addr + len) live in pagemap id. */
#define CHECK_IN(c, addr, len, id, n)                                                      \
	do {                                                                               \
		int in_ = it_chunks_in((c), (addr), (len), (id));                          \
		cu_check_at(in_ == (int)(n), __FILE__, __LINE__,                           \
			    "%d chunks in pagemap %llu, want %d", in_,                     \
			    (unsigned long long)(id), (int)(n));                            \
	} while (0)

/* One CPU load, not optimised away: what a program's first touch does. */
static uint8_t touch(const void *p)
{
	return *(const volatile uint8_t *)p;
}

static int node_of(void *p)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &p, NULL, &status, 0) < 0)
		return -errno;
	return status;
}

/*
 * Host memory to a device pool and back by a CPU touch: the pool's `used`,
 * the copy counters and the fault counter follow chunk by chunk, and the
 * data survives the round trip and later writes.
 */
static void test_to_device_and_fault_back(void)
{
	struct pm_stats_reply s0, s1, s2, s3;
	uint64_t ids[4], emu_id, used0;
	struct pm_client *c;
	uint8_t *p;
	void *a;
	int emu;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	emu_id = it_id(emu);
	used0 = it_used(emu);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 * CHUNK, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, 4 * CHUNK, 1);

	s0 = stats(c);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, 4 * CHUNK, emu, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, p, 4 * CHUNK, ids, 4), 4);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(ids[i], emu_id);
	CU_ASSERT_EQUAL(it_used(emu), used0 + 4 * CHUNK);
	s1 = stats(c);
	/* Host to device, nothing between devices, and no CPU fault involved. */
	CHECK_MOVED(s0, s1, 0, 0, 4 * CHUNK, 0);

	/* A load in chunk 2 brings back chunk 2 and nothing else. */
	CU_ASSERT_EQUAL(touch(p + 2 * CHUNK + 12345), it_pattern_byte(2 * CHUNK + 12345, 1));
	s2 = stats(c);
	CHECK_MOVED(s1, s2, 0, 0, CHUNK, 1);
	CU_ASSERT_EQUAL(pm_query(c, p, 4 * CHUNK, ids, 4), 4);
	CU_ASSERT_EQUAL(ids[0], emu_id);
	CU_ASSERT_EQUAL(ids[1], emu_id);
	CU_ASSERT_EQUAL(ids[2], 0);
	CU_ASSERT_EQUAL(ids[3], emu_id);
	CU_ASSERT_EQUAL(it_used(emu), used0 + 3 * CHUNK);

	/* Reading everything brings back the other three, each once. */
	CHECK_DATA(p, 0, 4 * CHUNK, 1);
	s3 = stats(c);
	CHECK_MOVED(s2, s3, 0, 0, 3 * CHUNK, 3);
	CHECK_IN(c, p, 4 * CHUNK, 0, 4);
	CU_ASSERT_EQUAL(it_used(emu), used0);
	CHECK_DATA(p, 0, 4 * CHUNK, 1); /* a second read changes nothing */
	s0 = stats(c);
	CHECK_MOVED(s3, s0, 0, 0, 0, 0);

	/* Writes after the fault-back land, and travel with the next migration. */
	it_pattern_fill(p, CHUNK, CHUNK, 2);
	CHECK_DATA(p, CHUNK, CHUNK, 2);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4 * CHUNK, emu, 0), 0);
	CHECK_IN(c, p, 4 * CHUNK, emu_id, 4);
	CHECK_DATA(p, 0, CHUNK, 1);
	CHECK_DATA(p, CHUNK, CHUNK, 2);
	CHECK_DATA(p, 2 * CHUNK, 2 * CHUNK, 1);
	/* A store is a CPU access too: it faults the chunk back, then lands. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, CHUNK, emu, 0), 0);
	s1 = stats(c);
	p[100] = (uint8_t)~it_pattern_byte(100, 1);
	s2 = stats(c);
	CU_ASSERT_EQUAL(s2.faults - s1.faults, 1);
	CU_ASSERT_EQUAL(touch(p + 100), (uint8_t)~it_pattern_byte(100, 1));
	CU_ASSERT_EQUAL(touch(p + 99), it_pattern_byte(99, 1));
	CU_ASSERT_EQUAL(touch(p + 101), it_pattern_byte(101, 1));

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(emu), used0);
	close(emu);
	pm_disconnect(c);
}

/* 64 KiB chunks: only the chunks a range touches move, and they alone fault back. */
static void test_small_chunks(void)
{
	const size_t ck = 64 << 10, n = 16;
	struct pm_stats_reply s0, s1, s2;
	uint64_t ids[16], emu_id, used0;
	struct pm_client *c;
	uint8_t *p;
	void *a;
	int emu;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	emu_id = it_id(emu);
	used0 = it_used(emu);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, n * ck, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	p = a;
	it_pattern_fill(p, 0, n * ck, 3);
	s0 = stats(c);
	/* Starts a page into chunk 3 and ends a page into chunk 5: 3, 4 and 5 move. */
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p + 3 * ck + 4096, 2 * ck, emu, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, p, n * ck, ids, n), (int)n);
	for (size_t i = 0; i < n; i++)
		cu_check_at(ids[i] == (i >= 3 && i <= 5 ? emu_id : 0), __FILE__, __LINE__,
			    "chunk %zu in pagemap %llu", i, (unsigned long long)ids[i]);
	CU_ASSERT_EQUAL(it_used(emu), used0 + 3 * ck);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, 0, 0, 3 * ck, 0);
	CHECK_DATA(p, 0, n * ck, 3);
	s2 = stats(c);
	CHECK_MOVED(s1, s2, 0, 0, 3 * ck, 3);
	CHECK_IN(c, p, n * ck, 0, n);
	CU_ASSERT_EQUAL(it_used(emu), used0);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu);
	pm_disconnect(c);
}

/*
 * Device to device: the two ivshmem pools sit under one switch (PIX), so the
 * broker copies directly between them; then home to a host NUMA pagemap and
 * to system memory, which need no fault to read.
 */
static void test_between_pools(void)
{
	const size_t len = 4 * CHUNK;
	uint64_t ids[4], e0, e1, n0, used0, used1;
	struct pm_stats_reply s0, s1;
	struct pm_migrate_result res;
	struct pm_migrate_range r;
	struct pm_client *c;
	int emu0, emu1, node0;
	uint8_t *p;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	node0 = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0 && node0 >= 0);
	e0 = it_id(emu0);
	e1 = it_id(emu1);
	n0 = it_id(node0);
	CU_ASSERT(e0 && e1 && n0 && e0 != e1);
	used0 = it_used(emu0);
	used1 = it_used(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 4);

	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, len, emu0, 0), 0);
	s0 = stats(c);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, len, emu1, 0), 0);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, len, 0, 0, 0);
	CHECK_IN(c, p, len, e1, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	CU_ASSERT_EQUAL(it_used(emu1), used1 + len);

	/* The same through a batch: its result counts the direct copy too. */
	memset(&res, 0xff, sizeof(res));
	r = (struct pm_migrate_range){ .addr = p, .len = len, .pagemap_fd = emu0 };
	CU_ASSERT_EQUAL(pm_migrate_batch(c, &r, 1, 0, &res), 0);
	s0 = stats(c);
	CHECK_MOVED(s1, s0, len, 0, 0, 0);
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_EQUAL(res.bytes_done, len);
	CU_ASSERT_EQUAL(res.bytes_direct, len);
	CU_ASSERT_EQUAL(res.bytes_bounced, 0);
	CU_ASSERT_EQUAL(res.bytes_host, 0);
	CHECK_IN(c, p, len, e0, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0 + len);
	CU_ASSERT_EQUAL(it_used(emu1), used1);

	/* Half to emu1, then everything read back by the CPU. */
	CU_ASSERT_EQUAL(pm_migrate(c, p + 2 * CHUNK, 2 * CHUNK, emu1, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, p, len, ids, 4), 4);
	CU_ASSERT(ids[0] == e0 && ids[1] == e0 && ids[2] == e1 && ids[3] == e1);
	s0 = stats(c);
	CHECK_DATA(p, 0, len, 4);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, 0, 0, len, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	CU_ASSERT_EQUAL(it_used(emu1), used1);

	/* emu0 -> node0: the data comes home, to that node, with no fault. */
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, len, emu0, 0), 0);
	s0 = stats(c);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, node0, 0), 0);
	CHECK_IN(c, p, len, n0, 4);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	CHECK_DATA(p, 0, len, 4);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, 0, 0, len, 0);
	CU_ASSERT_EQUAL(node_of(p), 0);
	CU_ASSERT_EQUAL(node_of(p + len - 4096), 0);

	/* emu1 -> system memory, likewise. */
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, len, emu1, 0), 0);
	s0 = stats(c);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_SYSTEM, 0), 0);
	CHECK_IN(c, p, len, 0, 4);
	CU_ASSERT_EQUAL(it_used(emu1), used1);
	CHECK_DATA(p, 0, len, 4);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, 0, 0, len, 0);
	/* Already there: nothing to copy, and still a success. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_SYSTEM, 0), 0);
	s0 = stats(c);
	CHECK_MOVED(s1, s0, 0, 0, 0, 0);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	close(emu1);
	close(node0);
	pm_disconnect(c);
}

/* DISCARD: chunks change pools with nothing copied, in every direction. */
static void test_discard(void)
{
	const size_t len = 2 * CHUNK;
	struct pm_stats_reply s0, s1;
	uint64_t e0, e1, used0, used1;
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
	used0 = it_used(emu0);
	used1 = it_used(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 5);

	s0 = stats(c);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu0, PM_MIGRATE_DISCARD), 0);
	CHECK_IN(c, p, len, e0, 2);
	CU_ASSERT_EQUAL(it_used(emu0), used0 + len);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu1, PM_MIGRATE_DISCARD), 0);
	CHECK_IN(c, p, len, e1, 2);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	CU_ASSERT_EQUAL(it_used(emu1), used1 + len);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, PM_FD_SYSTEM, PM_MIGRATE_DISCARD), 0);
	CHECK_IN(c, p, len, 0, 2);
	CU_ASSERT_EQUAL(it_used(emu1), used1);
	s1 = stats(c);
	CHECK_MOVED(s0, s1, 0, 0, 0, 0);
	/* Contents are undefined, but the memory is usable and in system memory. */
	(void)touch(p);
	(void)touch(p + len - 1);
	CHECK_IN(c, p, len, 0, 2);

	/* And it still migrates normally afterwards. */
	it_pattern_fill(p, 0, len, 6);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu0, 0), 0);
	CHECK_DATA(p, 0, len, 6);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
}

/*
 * A migration larger than the pool: -ENOSPC, the chunks that made it stay
 * there (as many as the result and the pool's `used` say), and every byte
 * of the allocation reads back.
 */
static void test_enospc(void)
{
	const size_t len = IT_EMU_CAPACITY + 4 * CHUNK, n = len / CHUNK;
	struct pm_migrate_result res;
	struct pm_migrate_range r;
	struct pm_client *c;
	uint64_t e0, used0;
	int emu, in;
	uint8_t *p;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	e0 = it_id(emu);
	used0 = it_used(emu);
	CU_ASSERT_EQUAL(used0, 0); /* earlier tests gave everything back */
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 7);

	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu, 0), -ENOSPC);
	in = it_chunks_in(c, p, len, e0);
	CU_ASSERT(in >= 0 && (size_t)in < n);
	CU_ASSERT_EQUAL(it_used(emu), used0 + (uint64_t)in * CHUNK);
	CU_ASSERT(it_used(emu) <= IT_EMU_CAPACITY);
	CHECK_DATA(p, 0, len, 7);
	CHECK_IN(c, p, len, 0, n);
	CU_ASSERT_EQUAL(it_used(emu), used0);

	/* The batch form says how far it got. */
	memset(&res, 0xff, sizeof(res));
	r = (struct pm_migrate_range){ .addr = p, .len = len, .pagemap_fd = emu };
	CU_ASSERT_EQUAL(pm_migrate_batch(c, &r, 1, 0, &res), -ENOSPC);
	CU_ASSERT_EQUAL(res.status, -ENOSPC);
	CU_ASSERT_EQUAL(res.bytes_done % CHUNK, 0);
	CU_ASSERT(res.bytes_done < len);
	CU_ASSERT(res.bytes_done <= IT_EMU_CAPACITY - used0);
	CU_ASSERT_EQUAL(res.bytes_host, res.bytes_done);
	CU_ASSERT_EQUAL(res.bytes_direct, 0);
	CHECK_IN(c, p, len, e0, res.bytes_done / CHUNK);
	CU_ASSERT_EQUAL(it_used(emu), used0 + res.bytes_done);
	CHECK_DATA(p, 0, len, 7);
	CHECK_IN(c, p, len, 0, n);

	/* What fits still goes. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, IT_EMU_CAPACITY - used0, emu, 0), 0);
	CHECK_IN(c, p, len, e0, (IT_EMU_CAPACITY - used0) / CHUNK);
	CU_ASSERT_EQUAL(it_used(emu), IT_EMU_CAPACITY);
	CHECK_DATA(p, 0, len, 7);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(emu), used0);
	close(emu);
	pm_disconnect(c);
}

/* ASYNC: a completion fd that polls POLLIN at the end, and the result on it. */
static void test_async(void)
{
	const size_t len = 16 * MiB;
	struct pm_migrate_result res;
	struct pm_migrate_range r[2];
	uint64_t e0, e1, used0;
	struct pm_client *c;
	int emu0, emu1, done, pipefd[2];
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
	used0 = it_used(emu0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 8);

	done = pm_migrate(c, p, len, emu0, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(done >= 0);
	CU_ASSERT(fcntl(done, F_GETFD) & FD_CLOEXEC);
	CU_ASSERT(it_readable(done, 10000));
	memset(&res, 0xff, sizeof(res));
	CU_ASSERT_EQUAL(pm_migrate_result(done, &res), 1);
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_EQUAL(res.bytes_done, len);
	CU_ASSERT_EQUAL(res.bytes_host, len);
	CU_ASSERT_EQUAL(res.bytes_direct, 0);
	close(done);
	CHECK_IN(c, p, len, e0, len / (64 << 10));
	CU_ASSERT_EQUAL(it_used(emu0), used0 + len);

	/* An asynchronous batch: half to emu1 directly, half home. */
	r[0] = (struct pm_migrate_range){ .addr = p, .len = len / 2, .pagemap_fd = emu1 };
	r[1] = (struct pm_migrate_range){ .addr = p + len / 2, .len = len / 2,
					  .pagemap_fd = PM_FD_SYSTEM };
	done = pm_migrate_batch(c, r, 2, PM_MIGRATE_ASYNC, NULL);
	CU_ASSERT_FATAL(done >= 0);
	CU_ASSERT(it_readable(done, 10000));
	memset(&res, 0xff, sizeof(res));
	CU_ASSERT_EQUAL(pm_migrate_result(done, &res), 1);
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_EQUAL(res.bytes_done, len);
	CU_ASSERT_EQUAL(res.bytes_direct, len / 2);
	CU_ASSERT_EQUAL(res.bytes_host, len / 2);
	close(done);
	CHECK_IN(c, p, len / 2, e1, len / 2 / (64 << 10));
	CHECK_IN(c, p + len / 2, len / 2, 0, len / 2 / (64 << 10));
	CU_ASSERT_EQUAL(it_used(emu0), used0);
	CHECK_DATA(p, 0, len, 8);

	/* Not a completion fd. */
	CU_ASSERT_FATAL(pipe2(pipefd, O_CLOEXEC) == 0);
	CU_ASSERT_EQUAL(pm_migrate_result(pipefd[0], &res), -EBADF);
	CU_ASSERT_EQUAL(pm_migrate_result(-1, &res), -EBADF);
	close(pipefd[0]);
	close(pipefd[1]);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
}

/* Freeing an allocation while it migrates: the migration ends, nothing stays behind. */
static void test_free_during_async(void)
{
	const size_t len = 32 * MiB;
	struct pm_stats_reply s0, s1;
	struct pm_client *c;
	uint64_t used0;
	int emu, done;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	used0 = it_used(emu);
	s0 = stats(c);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	it_pattern_fill(a, 0, len, 9);
	done = pm_migrate(c, a, len, emu, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(done >= 0);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	/* Over (however it ended) once the allocation is gone. */
	CU_ASSERT(it_readable(done, 10000));
	close(done);
	IT_WAIT_UNTIL(it_used(emu) == used0, 3000)
		;
	CU_ASSERT_EQUAL(it_used(emu), used0);
	s1 = stats(c);
	CU_ASSERT_EQUAL(s1.allocations, s0.allocations);
	CU_ASSERT_EQUAL(s1.allocated_bytes, s0.allocated_bytes);
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	close(emu);
	pm_disconnect(c);
}

/* Batches: several targets in one call, and the limits on ranges and fds. */
static void test_batch(void)
{
	const size_t ck = 64 << 10;
	struct pm_migrate_range r[PM_MIGRATE_BATCH_MAX + 1];
	uint64_t ids[8], e0, e1, n0;
	struct pm_migrate_result res;
	int emu0, emu1, emu0b, node0, node1, rc;
	struct pm_client *c;
	uint8_t *p, *q;
	void *a, *b;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	emu0b = pagemap_open(c, IT_EMU0, NULL, 0); /* a second handle: another fd */
	node0 = pagemap_open(c, "node0", NULL, 0);
	node1 = pagemap_open(c, "node1", NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0 && emu0b >= 0 && node0 >= 0 && node1 >= 0);
	e0 = it_id(emu0);
	e1 = it_id(emu1);
	n0 = it_id(node0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 * CHUNK, 0, &a), 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 8 * ck, PM_ALLOC_CHUNK_SHIFT(16), &b), 0);
	p = a;
	q = b;
	it_pattern_fill(p, 0, 4 * CHUNK, 10);
	it_pattern_fill(q, 0, 8 * ck, 11);

	/* Two ranges, two targets, one request. */
	memset(&res, 0xff, sizeof(res));
	r[0] = (struct pm_migrate_range){ .addr = p, .len = 2 * CHUNK, .pagemap_fd = emu0 };
	r[1] = (struct pm_migrate_range){ .addr = p + 2 * CHUNK, .len = CHUNK, .pagemap_fd = emu1 };
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 2, 0, &res), 0);
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_EQUAL(res.bytes_done, 3 * CHUNK);
	CU_ASSERT_EQUAL(res.bytes_host, 3 * CHUNK);
	CU_ASSERT_EQUAL(pm_query(c, p, 4 * CHUNK, ids, 4), 4);
	CU_ASSERT(ids[0] == e0 && ids[1] == e0 && ids[2] == e1 && ids[3] == 0);

	/* As many distinct fds as allowed, across two allocations. */
	r[0] = (struct pm_migrate_range){ .addr = q, .len = ck, .pagemap_fd = emu0 };
	r[1] = (struct pm_migrate_range){ .addr = q + ck, .len = ck, .pagemap_fd = emu1 };
	r[2] = (struct pm_migrate_range){ .addr = q + 2 * ck, .len = ck, .pagemap_fd = node0 };
	r[3] = (struct pm_migrate_range){ .addr = q + 3 * ck, .len = ck, .pagemap_fd = emu0b };
	r[4] = (struct pm_migrate_range){ .addr = p + 3 * CHUNK, .len = CHUNK, .pagemap_fd = emu1 };
	CU_ASSERT_EQUAL(PM_MIGRATE_BATCH_FDS, 4);
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 5, 0, NULL), 0);
	CU_ASSERT_EQUAL(pm_query(c, q, 8 * ck, ids, 8), 8);
	CU_ASSERT(ids[0] == e0 && ids[1] == e1 && ids[2] == n0 && ids[3] == e0 && ids[4] == 0);
	CHECK_IN(c, p + 3 * CHUNK, CHUNK, e1, 1);

	/* One fd more: refused before anything moves. */
	r[0] = (struct pm_migrate_range){ .addr = q + 4 * ck, .len = ck, .pagemap_fd = emu0 };
	r[1] = (struct pm_migrate_range){ .addr = q + 5 * ck, .len = ck, .pagemap_fd = emu1 };
	r[2] = (struct pm_migrate_range){ .addr = q + 6 * ck, .len = ck, .pagemap_fd = node0 };
	r[3] = (struct pm_migrate_range){ .addr = q + 7 * ck, .len = ck, .pagemap_fd = emu0b };
	r[4] = (struct pm_migrate_range){ .addr = q + 4 * ck, .len = ck, .pagemap_fd = node1 };
	rc = pm_migrate_batch(c, r, 5, 0, NULL);
	cu_check_at(rc == -E2BIG || rc == -EINVAL, __FILE__, __LINE__,
		    "5 distinct fds: %d, want -E2BIG or -EINVAL", rc);
	CHECK_IN(c, q + 4 * ck, 4 * ck, 0, 4);

	/* More ranges than allowed, all to one target. */
	for (int i = 0; i <= PM_MIGRATE_BATCH_MAX; i++)
		r[i] = (struct pm_migrate_range){ .addr = q + 5 * ck, .len = 4096,
						  .pagemap_fd = emu0 };
	rc = pm_migrate_batch(c, r, PM_MIGRATE_BATCH_MAX + 1, 0, NULL);
	cu_check_at(rc == -E2BIG || rc == -EINVAL, __FILE__, __LINE__,
		    "%d ranges: %d, want -E2BIG or -EINVAL", PM_MIGRATE_BATCH_MAX + 1, rc);
	CHECK_IN(c, q + 5 * ck, ck, 0, 1);
	/* The same chunk twice in one request: refused, nothing moves. */
	rc = pm_migrate_batch(c, r, 2, 0, NULL);
	cu_check_at(rc == -EINVAL, __FILE__, __LINE__, "overlapping ranges: %d, want -EINVAL", rc);
	CHECK_IN(c, q + 5 * ck, ck, 0, 1);
	/* ...and exactly as many as allowed is fine. */
	{
		uint8_t *big;
		void *v;

		CU_ASSERT_EQUAL_FATAL(pm_alloc(c, PM_MIGRATE_BATCH_MAX * ck, PM_ALLOC_CHUNK_SHIFT(16),
					       &v), 0);
		big = v;
		for (int i = 0; i < PM_MIGRATE_BATCH_MAX; i++)
			r[i] = (struct pm_migrate_range){ .addr = big + i * ck, .len = 4096,
							  .pagemap_fd = emu0 };
		CU_ASSERT_EQUAL(pm_migrate_batch(c, r, PM_MIGRATE_BATCH_MAX, 0, NULL), 0);
		CHECK_IN(c, big, PM_MIGRATE_BATCH_MAX * ck, e0, PM_MIGRATE_BATCH_MAX);
		CU_ASSERT_EQUAL(pm_free(c, v), 0);
	}

	r[0] = (struct pm_migrate_range){ .addr = q + 6 * ck, .len = ck, .pagemap_fd = emu0 };
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 0, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate_batch(c, NULL, 1, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 1, 0x80, NULL), -EINVAL);
	r[0].reserved = 1;
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 1, 0, NULL), -EINVAL);
	r[0].reserved = 0;
	r[0].addr = q + 6 * ck + 1;
	CU_ASSERT_EQUAL(pm_migrate_batch(c, r, 1, 0, NULL), -EINVAL);
	CHECK_IN(c, q + 6 * ck, 2 * ck, 0, 2);

	CHECK_DATA(p, 0, 4 * CHUNK, 10);
	CHECK_DATA(q, 0, 8 * ck, 11);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(pm_free(c, b), 0);
	close(emu0);
	close(emu1);
	close(emu0b);
	close(node0);
	close(node1);
	pm_disconnect(c);
}

/* Refused before anything moves. */
static void test_errors(void)
{
	uint64_t stack_buf[1024];
	struct pm_client *c;
	int emu, pipefd[2], sv[2], rc;
	uint8_t *p, *heap;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 2 * CHUNK, 0, &a), 0);
	p = a;
	heap = aligned_alloc(4096, 1 << 20);
	CU_ASSERT_FATAL(heap != NULL);
	CU_ASSERT_FATAL(pipe2(pipefd, O_CLOEXEC) == 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);

	CU_ASSERT_EQUAL(pm_migrate(c, p + 1, 4096, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p + 2048, 4096, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 0, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 2 * CHUNK + 4096, emu, 0), -EINVAL); /* past the end */
	CU_ASSERT_EQUAL(pm_migrate(c, heap, 4096, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, (void *)((uintptr_t)stack_buf & ~(uintptr_t)4095), 4096,
				   emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, NULL, 4096, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(NULL, p, 4096, emu, 0), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, emu, 0x80), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, emu, PM_MIGRATE_DISCARD | 0x10000), -EINVAL);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, pipefd[0], 0), -EBADF);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, sv[0], 0), -EBADF);
	/* Neither an fd nor a PM_FD_* target. */
	rc = pm_migrate(c, p, 4096, -3, 0);
	cu_check_at(rc == -EBADF || rc == -EINVAL, __FILE__, __LINE__, "fd -3: %d", rc);
	CHECK_IN(c, p, 2 * CHUNK, 0, 2);

	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[0]);
	close(sv[1]);
	free(heap);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(emu);
	pm_disconnect(c);
}

/* The chunks in a pool hold its pagemap, as host chunks hold theirs. */
static void test_chunks_hold_pagemap(void)
{
	struct pm_client *c;
	uint64_t id;
	void *a;
	int emu;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	id = it_id(emu);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, CHUNK, 0, &a), 0);
	it_pattern_fill(a, 0, CHUNK, 12);
	CU_ASSERT_EQUAL(pm_migrate(c, a, CHUNK, emu, 0), 0);
	close(emu);
	it_sleep_ms(600); /* twice the linger */
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_ACTIVE);
	CHECK_IN(c, a, CHUNK, id, 1);
	/* Back home, the chunk lets go: the pagemap lingers, then goes. */
	CHECK_DATA(a, 0, CHUNK, 12);
	IT_WAIT_UNTIL(it_state(c, id) == 0, 3000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), 0);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	pm_disconnect(c);
}

/*
 * Revoke by the administrator, on a broker of its own (a revoked device
 * stays gone for the broker's life): chunks in the revoked pool come home
 * with their data, chunks elsewhere stay, and the pool is refused after.
 */
static void test_revoke_with_data(void)
{
	const size_t len = 4 * CHUNK;
	struct pagemap_info info;
	struct pm_stats_reply st;
	struct it_broker b2;
	struct pm_client *c;
	uint64_t ids[4], e1;
	int emu0, emu1;
	uint8_t *p;
	void *a;

	if (!it_broker_up(&b2, 300))
		return;
	c = it_connect(&b2);
	CU_ASSERT_FATAL(c != NULL);
	emu0 = pagemap_open(c, IT_EMU0, NULL, 0);
	emu1 = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(emu0 >= 0 && emu1 >= 0);
	e1 = it_id(emu1);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, &a), 0);
	p = a;
	it_pattern_fill(p, 0, len, 13);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 3 * CHUNK, emu0, 0), 0);
	CU_ASSERT_EQUAL(pm_migrate(c, p + 2 * CHUNK, CHUNK, emu1, 0), 0);

	CU_ASSERT_EQUAL(it_revoke(c, IT_EMU0), 1);
	IT_WAIT_UNTIL(it_chunks_in(c, p, len, 0) == 3, 2000)
		;
	CU_ASSERT_EQUAL(pm_query(c, p, len, ids, 4), 4);
	CU_ASSERT(ids[0] == 0 && ids[1] == 0 && ids[2] == e1 && ids[3] == 0);
	CHECK_DATA(p, 0, len, 13);

	/* The revoked pool is refused; the other still works. */
	CU_ASSERT_EQUAL(pagemap_query(emu0, &info), -ENODEV);
	CU_ASSERT_EQUAL(pm_migrate(c, p, CHUNK, emu0, 0), -ENODEV);
	CU_ASSERT_EQUAL(pm_madvise(c, p, CHUNK, PM_ADV_PREFERRED_LOCATION, emu0), -ENODEV);
	CHECK_IN(c, p, len, 0, 4);
	CU_ASSERT_EQUAL(pm_migrate(c, p, len, emu1, 0), 0);
	CHECK_IN(c, p, len, e1, 4);
	CHECK_DATA(p, 0, len, 13);

	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 0);
	CU_ASSERT_EQUAL(it_used(emu1), 0);
	close(emu0);
	close(emu1);
	pm_disconnect(c);
	it_broker_stop(&b2);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "to a device pool and back by a CPU fault", test_to_device_and_fault_back },
		{ "64 KiB chunks move and fault alone", test_small_chunks },
		{ "between pools: direct, to a node, to system memory", test_between_pools },
		{ "DISCARD copies nothing", test_discard },
		{ "a full pool: -ENOSPC part way, no byte lost", test_enospc },
		{ "ASYNC completes on its fd", test_async },
		{ "free during an asynchronous migration", test_free_during_async },
		{ "batches and their limits", test_batch },
		{ "refused before anything moves", test_errors },
		{ "chunks in a pool hold its pagemap", test_chunks_hold_pagemap },
		{ "revoke evacuates a pool's chunks", test_revoke_with_data },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("migrate", tests);
}
