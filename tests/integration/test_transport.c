/* SPDX-License-Identifier: MIT */
/*
 * The transport layer seen from outside (broker/xfer.h): every copy is
 * counted under the engine that ran it, bounced bytes count as staged,
 * neighbouring chunks move as one copy, and faults that walk an allocation
 * in order bring the chunks ahead home with them while a lone fault brings
 * one chunk. Emulated pools of the two-socket topology: 0000:03:00.0 and
 * 0000:04:00.0 share a switch, 0000:81:00.0 has no peer path to either.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define TOPOLOGY "examples/topologies/two-socket-mem.json"
#define NEAR_A "0000:03:00.0"
#define NEAR_B "0000:04:00.0"
#define FAR_X "0000:81:00.0"

static struct it_broker br;

static bool up(void)
{
	struct it_opts o = { .linger_ms = 300, .topology = TOPOLOGY };

	if (br.pid)
		return true;
	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	return br.pid != 0;
}

static uint8_t touch(const void *p)
{
	return *(const volatile uint8_t *)p;
}

/* The four engines are listed; a request with a payload is refused. */
static void test_engines_listed(void)
{
	struct pm_client *c;
	uint8_t junk[8] = { 0 }, buf[64];
	size_t len = 0;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_STRING_EQUAL(it_engine(c, "cpu").name, "cpu");
	CU_ASSERT_STRING_EQUAL(it_engine(c, "cuda").name, "cuda");
	CU_ASSERT_STRING_EQUAL(it_engine(c, "verbs").name, "verbs");
	CU_ASSERT_STRING_EQUAL(it_engine(c, "block").name, "block");
	CU_ASSERT_EQUAL(pm_client_call(c, PM_OP_ENGINES, junk, sizeof(junk), buf, sizeof(buf), &len,
				       NULL),
			-EINVAL);
	pm_disconnect(c);
}

/*
 * 4 MiB in 64 KiB chunks to a pool and back: the CPU engine counts every
 * byte once per direction, none staged or zero-copy, and neighbouring
 * chunks went as a few batched copies, not one per chunk.
 */
static void test_cpu_counts_and_batches(void)
{
	const size_t ck = 64 * KiB, size = 4 * MiB;
	struct pm_engine_info e0, e1, e2;
	struct it_fixture f;

	if (!up())
		return;
	it_fixture_up(&f, &br, NEAR_A, size, 16, 11);
	e0 = it_engine(f.c, "cpu");
	CU_ASSERT_EQUAL_FATAL(pm_migrate(f.c, f.p, size, f.pm, 0), 0);
	e1 = it_engine(f.c, "cpu");
	CU_ASSERT_EQUAL(e1.bytes - e0.bytes, size);
	CU_ASSERT_EQUAL(e1.bytes_staged - e0.bytes_staged, 0);
	CU_ASSERT_EQUAL(e1.bytes_zero_copy - e0.bytes_zero_copy, 0);
	CU_ASSERT_EQUAL(e1.failed - e0.failed, 0);
	/* 64 chunks in 2 MiB batches: 2 copies when the pool's space is
	 * contiguous; never one per chunk. */
	cu_check_at(e1.copies - e0.copies >= 2 && e1.copies - e0.copies <= size / ck / 8,
		    __FILE__, __LINE__, "%llu copies for %zu chunks",
		    (unsigned long long)(e1.copies - e0.copies), size / ck);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(f.c, f.p, size, PM_FD_SYSTEM, 0), 0);
	e2 = it_engine(f.c, "cpu");
	CU_ASSERT_EQUAL(e2.bytes - e1.bytes, size);
	CU_ASSERT(e2.copies - e1.copies <= size / ck / 8);
	CU_ASSERT_EQUAL(it_pattern_check(f.p, 0, size, 11), SIZE_MAX);
	it_fixture_down(&f);
}

/* Between pools with no peer path the bytes go through host memory:
 * staged. Between pools under one switch: one copy, not staged. */
static void test_bounce_is_staged(void)
{
	const size_t size = 4 * MiB;
	struct pm_engine_info e0, e1, e2;
	struct pm_client *c;
	int a_fd, b_fd, x_fd;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	a_fd = pagemap_open(c, NEAR_A, NULL, 0);
	b_fd = pagemap_open(c, NEAR_B, NULL, 0);
	x_fd = pagemap_open(c, FAR_X, NULL, 0);
	CU_ASSERT_FATAL(a_fd >= 0 && b_fd >= 0 && x_fd >= 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, size, 0, &a), 0);
	it_pattern_fill(a, 0, size, 12);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, a, size, a_fd, 0), 0);
	e0 = it_engine(c, "cpu");
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, a, size, b_fd, 0), 0);
	e1 = it_engine(c, "cpu");
	CU_ASSERT_EQUAL(e1.bytes - e0.bytes, size);
	CU_ASSERT_EQUAL(e1.bytes_staged - e0.bytes_staged, 0);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, a, size, x_fd, 0), 0);
	e2 = it_engine(c, "cpu");
	CU_ASSERT_EQUAL(e2.bytes - e1.bytes, size);
	CU_ASSERT_EQUAL(e2.bytes_staged - e1.bytes_staged, size);
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, size, 12), SIZE_MAX);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	close(a_fd);
	close(b_fd);
	close(x_fd);
	pm_disconnect(c);
}

/*
 * Fault-back: a lone fault brings exactly its chunk home; reads that walk
 * the allocation in order bring every chunk home in far fewer copies than
 * chunks (the window ahead), with every byte intact.
 */
static void test_fault_ahead(void)
{
	const size_t ck = 64 * KiB, n = 128, size = n * ck;
	struct pm_stats_reply s0, s1, s2;
	struct pm_engine_info e1, e2;
	uint64_t ids[128], pid;
	struct it_fixture f;

	if (!up())
		return;
	it_fixture_up(&f, &br, NEAR_A, size, 16, 13);
	pid = it_id(f.pm);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(f.c, f.p, size, f.pm, 0), 0);

	CU_ASSERT_EQUAL_FATAL(it_stats(f.c, &s0), 0);
	CU_ASSERT_EQUAL(touch(f.p + 77 * ck + 5), it_pattern_byte(77 * ck + 5, 13));
	CU_ASSERT_EQUAL_FATAL(it_stats(f.c, &s1), 0);
	CU_ASSERT_EQUAL(s1.faults - s0.faults, 1);
	CU_ASSERT_EQUAL(pm_query(f.c, f.p, size, ids, n), (int)n);
	CU_ASSERT_EQUAL(ids[77], 0);
	CU_ASSERT_EQUAL(ids[76], pid);
	CU_ASSERT_EQUAL(ids[78], pid);

	e1 = it_engine(f.c, "cpu");
	CU_ASSERT_EQUAL(it_pattern_check(f.p, 0, size, 13), SIZE_MAX);
	e2 = it_engine(f.c, "cpu");
	CU_ASSERT_EQUAL_FATAL(it_stats(f.c, &s2), 0);
	/* Every chunk came home once... */
	CU_ASSERT_EQUAL(s2.faults - s1.faults, n - 1);
	CU_ASSERT_EQUAL(it_chunks_in(f.c, f.p, size, 0), (int)n);
	/* ...in windows of up to 2 MiB: a handful of copies, not 127. */
	cu_check_at(e2.copies - e1.copies <= n / 8, __FILE__, __LINE__,
		    "%llu copies brought %zu chunks home",
		    (unsigned long long)(e2.copies - e1.copies), n - 1);
	it_fixture_down(&f);
}

/* Whether every page of [p, p + len) is mapped in this process (/proc/self/pagemap). */
static bool all_mapped(const void *p, size_t len)
{
	long pg = sysconf(_SC_PAGESIZE);
	int fd = open("/proc/self/pagemap", O_RDONLY);
	bool all = fd >= 0;

	for (size_t off = 0; all && off < len; off += (size_t)pg) {
		uint64_t ent = 0;

		if (pread(fd, &ent, sizeof(ent), (off_t)(((uintptr_t)p + off) / (uintptr_t)pg * 8)) !=
		    sizeof(ent))
			all = false;
		else if (!(ent >> 63 & 1))
			all = false;
	}
	if (fd >= 0)
		close(fd);
	return all;
}

/*
 * Copies home fill the client's own mapping through its userfaultfd: after
 * a move to a pool and back, every page is mapped here already (a copy
 * through the memfd would leave them unmapped until touched), and the data
 * is intact.
 */
static void test_copies_home_mapped(void)
{
	const size_t size = 8 * MiB;
	struct it_fixture f;

	if (!up())
		return;
	it_fixture_up(&f, &br, NEAR_A, size, 0, 14);
	CU_ASSERT_EQUAL_FATAL(pm_migrate(f.c, f.p, size, f.pm, 0), 0);
	CU_ASSERT_FALSE(all_mapped(f.p, 4096)); /* punched: nothing mapped */
	CU_ASSERT_EQUAL_FATAL(pm_migrate(f.c, f.p, size, PM_FD_SYSTEM, 0), 0);
	CU_ASSERT_TRUE(all_mapped(f.p, size));
	CU_ASSERT_EQUAL(it_pattern_check(f.p, 0, size, 14), SIZE_MAX);
	it_fixture_down(&f);
}

/* PM_OP_UFFD at the wire, with fd attached when >= 0: the reply's status. */
static int raw_uffd(int s, uint64_t alloc_id, uint64_t addr, int fd)
{
	static uint64_t rid = 100;
	struct pm_uffd u = { .alloc_id = alloc_id, .addr = addr };
	struct pm_hdr hdr = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_UFFD,
			      .length = sizeof(u), .nfds = fd >= 0, .request_id = ++rid };
	struct pm_msg m;
	int st;

	if (it_raw_send(s, &hdr, &u, sizeof(u), &fd, fd >= 0) < 0 || it_raw_recv(s, &m, 5000) < 0)
		return INT32_MIN;
	st = ((const struct pm_reply *)m.payload)->status;
	pm_msg_close_fds(&m);
	return st;
}

/* PM_OP_UFFD trusts nothing: not a userfaultfd, no fd, an unaligned or
 * wrapping address, an unknown allocation. The session goes on. */
static void test_uffd_refused(void)
{
	uint64_t id;
	int s, memfd, pfd[2];

	if (!up())
		return;
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_alloc(s, 2 * MiB, 2 * MiB, &id, &memfd), 0);
	CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);

	/* The pipe's write end stands in for a userfaultfd each time. */
	CU_ASSERT_EQUAL(raw_uffd(s, id, 1ull << 30, pfd[1]), -EBADF);
	CU_ASSERT_EQUAL(raw_uffd(s, id, 1ull << 30, memfd), -EBADF);
	CU_ASSERT_EQUAL(raw_uffd(s, id, 1ull << 30, -1), -EPROTO);
	CU_ASSERT_EQUAL(raw_uffd(s, id, (1ull << 30) + 100, pfd[1]), -EINVAL);
	CU_ASSERT_EQUAL(raw_uffd(s, id, UINT64_MAX & ~4095ull, pfd[1]), -EINVAL);
	CU_ASSERT_EQUAL(raw_uffd(s, id + 1000, 1ull << 30, pfd[1]), -ENOENT);
	/* None of them was kept: ours is the last write end. */
	close(pfd[1]);
	CU_ASSERT_TRUE(it_pipe_widowed(pfd[0], 1000));
	close(pfd[0]);
	close(memfd);
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_NOP, NULL, 0, &(int){ 1 }, NULL), 0);
	close(s);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "engines listed", test_engines_listed },
		{ "cpu engine counts and batches", test_cpu_counts_and_batches },
		{ "bounced bytes are staged", test_bounce_is_staged },
		{ "faults bring the chunks ahead home", test_fault_ahead },
		{ "copies home land mapped", test_copies_home_mapped },
		{ "PM_OP_UFFD refuses bad input", test_uffd_refused },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("transport", tests);
}
