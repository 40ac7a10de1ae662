/* SPDX-License-Identifier: MIT */
/*
 * The migration engine's limits: a per-uid quota on bytes placed in device
 * pools (-EDQUOT, how far it got, nothing lost), and residency: after a
 * chunk moves, advice-driven prefetches of it wait out min_residency_ms
 * while explicit migrations do not. Malformed MIGRATE requests are refused
 * whole.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"

#define QUOTA (6ull << 20)
#define RESIDENCY_MS 400

static struct it_broker br;

static bool up(void)
{
	static const char conf[] =
		"{\"pressure\": {\"psi_path\": \"\"},"
		" \"limits\": {\"max_placed_bytes_per_uid\": 6291456},"
		" \"migration\": {\"min_residency_ms\": 400, \"max_residency_ms\": 1600}}\n";
	struct it_opts o = { .linger_ms = 200, .config = conf };

	if (br.pid)
		return true;
	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	return true;
}

static void test_quota(void)
{
	struct pm_migrate_range r = { 0 };
	struct pm_migrate_result res;
	struct pm_client *c;
	uint64_t ids[4];
	void *a;
	int fd;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 8 << 20, 0, &a), 0);
	it_pattern_fill(a, 0, 8 << 20, 7);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	r.addr = a;
	r.len = 8 << 20;
	r.pagemap_fd = fd;
	/* 6 MiB of quota: three 2 MiB chunks go, the fourth is refused. */
	CU_ASSERT_EQUAL(pm_migrate_batch(c, &r, 1, 0, &res), -EDQUOT);
	CU_ASSERT_EQUAL(res.status, -EDQUOT);
	CU_ASSERT_EQUAL(res.bytes_done, QUOTA);
	CU_ASSERT_EQUAL(pm_query(c, a, 8 << 20, ids, 4), 4);
	CU_ASSERT_EQUAL(ids[0], it_pagemap_id(fd));
	CU_ASSERT_EQUAL(ids[2], it_pagemap_id(fd));
	CU_ASSERT_EQUAL(ids[3], 0);
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, 8 << 20, 7), SIZE_MAX);
	/* Faulted home, the quota is free again. */
	CU_ASSERT_EQUAL(pm_migrate(c, a, 6 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 6 << 20, PM_FD_SYSTEM, 0), 0);
	close(fd);
	pm_disconnect(c);
}

static int wait_result(int cfd, struct pm_migrate_result *res, int timeout_ms)
{
	struct pollfd p = { .fd = cfd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) != 1)
		return 0;
	return pm_migrate_result(cfd, res);
}

static void test_residency(void)
{
	struct pm_migrate_result res;
	struct pm_client *c;
	uint64_t ids[1];
	uint8_t *p;
	void *a;
	int fd, cfd;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 2 << 20, 0, &a), 0);
	p = a;
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_madvise(c, a, 2 << 20, PM_ADV_PREFERRED_LOCATION, fd), PM_ADV_APPLIED);
	/* An explicit move is obeyed at once, then the CPU takes it back. */
	CU_ASSERT_EQUAL(pm_migrate(c, a, 2 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(p[0], 0);
	CU_ASSERT_EQUAL(pm_query(c, a, 2 << 20, ids, 1), 1);
	CU_ASSERT_EQUAL(ids[0], 0);
	/* The advice-driven prefetch straight after waits out the residency. */
	cfd = pm_migrate(c, a, 2 << 20, PM_FD_PREFERRED, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(cfd >= 0);
	CU_ASSERT_EQUAL(wait_result(cfd, &res, RESIDENCY_MS / 4), 0);
	CU_ASSERT_EQUAL(wait_result(cfd, &res, 10 * RESIDENCY_MS), 1);
	CU_ASSERT_EQUAL(res.status, 0);
	CU_ASSERT_EQUAL(res.bytes_done, 2 << 20);
	close(cfd);
	CU_ASSERT_EQUAL(pm_query(c, a, 2 << 20, ids, 1), 1);
	CU_ASSERT_EQUAL(ids[0], it_pagemap_id(fd));
	close(fd);
	pm_disconnect(c);
}

static void test_malformed_migrate(void)
{
	struct {
		struct pm_migrate_req rq;
		struct pm_migrate_entry en[2];
	} req;
	int s, st = 0;

	if (!up())
		return;
	memset(&req, 0, sizeof(req));
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	/* No ranges; more ranges than sent; unknown flags; a bad fd index;
	 * a fault with two ranges: each refused, the session lives on. */
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_MIGRATE, &req, sizeof(req.rq), &st, NULL), 0);
	CU_ASSERT_EQUAL(st, -EINVAL);
	req.rq.nranges = 2;
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_MIGRATE, &req, sizeof(req.rq) + 32, &st, NULL), 0);
	CU_ASSERT_EQUAL(st, -EINVAL);
	req.rq.nranges = 1;
	req.rq.flags = 0x80;
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_MIGRATE, &req, sizeof(req.rq) + 32, &st, NULL), 0);
	CU_ASSERT_EQUAL(st, -EINVAL);
	req.rq.flags = 0;
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_MIGRATE, &req, sizeof(req.rq) + 32, &st, NULL), 0);
	CU_ASSERT_EQUAL(st, -ENOENT);
	req.rq.flags = PM_MIG_FAULT;
	req.rq.nranges = 2;
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_MIGRATE, &req, sizeof(req), &st, NULL), 0);
	CU_ASSERT_EQUAL(st, -EINVAL);
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_NOP, NULL, 0, &st, NULL), 0);
	CU_ASSERT_EQUAL(st, 0);
	close(s);
}

/*
 * Two pools with no peer path between them (examples/topologies/two-socket-
 * mem.json: one under a switch on node 0, one on node 1, SYS): the engine
 * copies through a host buffer and counts it as bounced, and the data is
 * intact when the CPU faults it home.
 */
static void test_bounced(void)
{
	struct it_opts o = { .linger_ms = 200,
			     .topology = "examples/topologies/two-socket-mem.json" };
	struct pm_migrate_result res;
	struct pm_migrate_range r = { 0 };
	struct it_broker far = { 0 };
	struct pm_client *c;
	uint64_t ids[2];
	int near_fd, far_fd;
	void *a;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&far), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&far, &o), 0);
	c = it_connect(&far);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 << 20, 0, &a), 0);
	it_pattern_fill(a, 0, 4 << 20, 11);
	near_fd = pagemap_open(c, "0000:03:00.0", NULL, 0);
	far_fd = pagemap_open(c, "0000:81:00.0", NULL, 0);
	CU_ASSERT_FATAL(near_fd >= 0 && far_fd >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 4 << 20, near_fd, 0), 0);
	r.addr = a;
	r.len = 4 << 20;
	r.pagemap_fd = far_fd;
	CU_ASSERT_EQUAL(pm_migrate_batch(c, &r, 1, 0, &res), 0);
	CU_ASSERT_EQUAL(res.bytes_bounced, 4 << 20);
	CU_ASSERT_EQUAL(res.bytes_direct, 0);
	CU_ASSERT_EQUAL(res.bytes_host, 0);
	CU_ASSERT_EQUAL(pm_query(c, a, 4 << 20, ids, 2), 2);
	CU_ASSERT_EQUAL(ids[1], it_pagemap_id(far_fd));
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, 4 << 20, 11), SIZE_MAX);
	close(near_fd);
	close(far_fd);
	pm_disconnect(c);
	it_broker_stop(&far);
}

/*
 * A chunk's requests are served in the order they came: a later request on
 * it cannot finish first. Here an advice-driven prefetch of the range waits
 * on chunk 0's residency while a later, explicit move of chunk 5 home is
 * asked for; the later one must wait too, or its completion would let the
 * library lift the write protection the prefetch still needs, and the
 * stores below would race the prefetch's copy of chunk 5.
 */
static void test_requests_in_order(void)
{
	const size_t ch = 2u << 20, len = 3 * ch; /* within the 6 MiB quota */
	struct pm_migrate_result res;
	struct pm_client *c;
	uint64_t *slot;
	size_t lost = 0, n = ch / 8;
	uint8_t *a;
	int fd, done;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, 0, (void **)&a), 0);
	memset(a, 0, len);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	/* Chunk 0 just moved: an advice-driven move of it must wait. */
	CU_ASSERT_EQUAL(pm_migrate(c, a, ch, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, ch, PM_FD_SYSTEM, 0), 0);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION, fd), PM_ADV_APPLIED);
	done = pm_migrate(c, a, len, PM_FD_PREFERRED, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(done >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a + 2 * ch, ch, PM_FD_SYSTEM, 0), 0);
	/* Each word stored once, spread over the prefetch. */
	slot = (uint64_t *)(a + 2 * ch);
	for (size_t i = 0; i < n; i++) {
		uint64_t until = it_now_us() + 4;

		slot[i] = i + 1;
		while (it_now_us() < until)
			;
	}
	CU_ASSERT_EQUAL(wait_result(done, &res, 10000), 1);
	CU_ASSERT_EQUAL(res.status, 0);
	close(done);
	for (size_t i = 0; i < n; i++)
		lost += slot[i] != i + 1;
	cu_check_at(lost == 0, __FILE__, __LINE__, "%zu of %zu stores lost", lost, n);
	close(fd);
	pm_disconnect(c);
}

/*
 * A copy in flight keeps its destination: here the only other references
 * to the pool's pagemap (the fd, the preferred-location advice) go while a
 * prefetch fills it. The pagemap must stay, active, with the data in it.
 */
static void test_destination_outlives_references(void)
{
	const size_t len = 4u << 20, chunk = 64u << 10;
	struct pm_migrate_result res;
	struct pm_client *c;
	uint64_t id, ids[64];
	struct pm_info info;
	int fd, done, n, there = 0;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	it_pattern_fill(a, 0, len, 21);
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_pagemap_id(fd);
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_PREFERRED_LOCATION, fd), PM_ADV_APPLIED);
	close(fd);
	done = pm_migrate(c, a, len, PM_FD_PREFERRED, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(done >= 0);
	/* The prefetch's first copies are in flight: the last reference goes. */
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_UNSET_PREFERRED_LOCATION, PM_FD_SYSTEM), 0);
	CU_ASSERT_EQUAL(wait_result(done, &res, 10000), 1);
	close(done);
	it_sleep_ms(600); /* three lingers */
	n = pm_query(c, a, len, ids, 64);
	CU_ASSERT_EQUAL(n, (int)(len / chunk));
	for (int i = 0; i < n && i < 64; i++)
		there += ids[i] == id;
	/* The chunks that went are in a live pagemap that says so. */
	CU_ASSERT(there > 0);
	CU_ASSERT_EQUAL(it_lookup(c, id, &info), 1);
	CU_ASSERT_EQUAL(info.state, PM_STATE_ACTIVE);
	CU_ASSERT_EQUAL(info.used, (uint64_t)there * chunk);
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, len, 21), SIZE_MAX);
	pm_disconnect(c);
}

static void test_stop(void)
{
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "quota: -EDQUOT after what fits, nothing lost", test_quota },
		{ "residency: advice-driven moves wait, explicit ones do not", test_residency },
		{ "malformed MIGRATE requests are refused whole", test_malformed_migrate },
		{ "no peer path: bounced through host, intact", test_bounced },
		{ "requests on a chunk are served in order", test_requests_in_order },
		{ "a copy in flight keeps its destination", test_destination_outlives_references },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("limits", tests);
}
