/* SPDX-License-Identifier: MIT */
/*
 * Random requests on the placement ops (MIGRATE, ADVISE, RANGES, ALLOCS,
 * PEERS, QUERY_RANGE, PLACE, FREE), seeded so a failure replays: payloads of
 * random length and bytes, and payloads well-formed but for random fields
 * (allocation ids, chunk ranges, targets, advice, flags), with fds attached
 * or not. Every request must get a reply (framing stays intact), the session
 * must keep working, a real allocation's data must survive whatever moved
 * it, and the broker must exit cleanly with no fd leaked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "it_broker.h"

#define ITERATIONS 4000

static struct it_broker br;

/* An id: mostly the real one, sometimes off by one, sometimes anything. */
static uint64_t pick(uint64_t *s, uint64_t real)
{
	switch (it_rand(s) % 8) {
	case 0:
		return it_rand(s);
	case 1:
		return real + it_rand(s) % 3 - 1;
	default:
		return real;
	}
}

/* A chunk range of n chunks: mostly inside, sometimes past the end or
 * overflowing. */
static void range(uint64_t *s, uint64_t n, uint64_t *first, uint64_t *count)
{
	switch (it_rand(s) % 8) {
	case 0:
		*first = it_rand(s);
		*count = it_rand(s);
		return;
	case 1:
		*first = it_rand(s) % (n + 2);
		*count = n + 1 - *first + it_rand(s) % 2;
		return;
	default:
		*first = it_rand(s) % n;
		*count = 1 + it_rand(s) % (n - *first);
	}
}

/* A request body for op: structured for the ops that take one, else noise. */
static size_t body(uint64_t *s, uint16_t op, uint8_t *buf, uint64_t alloc_id, uint64_t nchunks)
{
	size_t len = 0;

	if (it_rand(s) % 5 == 0) { /* pure noise, any length */
		len = it_rand(s) % 600;
		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)it_rand(s);
		return len;
	}
	switch (op) {
	case PM_OP_MIGRATE: {
		struct pm_migrate_req *rq = (void *)buf;
		struct pm_migrate_entry *en = (void *)(rq + 1);
		uint32_t n = (uint32_t)(1 + it_rand(s) % 3);

		rq->flags = (uint32_t)(it_rand(s) % 8 ? (it_rand(s) % 2) * PM_MIG_DISCARD : it_rand(s));
		rq->nranges = it_rand(s) % 8 ? n : (uint32_t)it_rand(s) % 70;
		for (uint32_t i = 0; i < n; i++) {
			en[i].alloc_id = pick(s, alloc_id);
			range(s, nchunks, &en[i].first, &en[i].count);
			en[i].target = (int32_t)(it_rand(s) % 5) - 2; /* -2..2 */
			en[i].reserved = it_rand(s) % 8 ? 0 : (uint32_t)it_rand(s);
		}
		return sizeof(*rq) + n * sizeof(*en) + (it_rand(s) % 8 ? 0 : it_rand(s) % 9);
	}
	case PM_OP_ADVISE: {
		struct pm_advise *a = (void *)buf;

		a->alloc_id = pick(s, alloc_id);
		range(s, nchunks, &a->first, &a->count);
		a->advice = (uint32_t)(it_rand(s) % 8 ? it_rand(s) % 8 | (it_rand(s) % 4 << 8) : it_rand(s));
		a->reserved = it_rand(s) % 8 ? 0 : (uint32_t)it_rand(s);
		return sizeof(*a);
	}
	case PM_OP_RANGES:
	case PM_OP_QUERY_RANGE: {
		struct pm_query_range *q = (void *)buf;

		q->alloc_id = pick(s, alloc_id);
		range(s, nchunks, &q->first, &q->count);
		return sizeof(*q);
	}
	case PM_OP_ALLOCS: {
		struct pm_allocs *q = (void *)buf;

		q->session_id = it_rand(s) % 3 ? it_rand(s) % 4 : it_rand(s);
		return sizeof(*q);
	}
	case PM_OP_PLACE: {
		struct pm_place *pl = (void *)buf;

		pl->alloc_id = pick(s, alloc_id);
		range(s, nchunks, &pl->first, &pl->count);
		pl->flags = it_rand(s) % 8 ? 0 : (uint32_t)it_rand(s);
		pl->reserved = 0;
		return sizeof(*pl);
	}
	case PM_OP_FREE: {
		struct pm_free *f = (void *)buf;

		/* Never the allocation whose data is checked at the end. */
		f->alloc_id = alloc_id + 1 + it_rand(s) % 1000;
		return sizeof(*f);
	}
	default:
		return 0;
	}
}

static void test_fuzz(void)
{
	static const uint16_t ops[] = { PM_OP_MIGRATE, PM_OP_ADVISE, PM_OP_RANGES, PM_OP_ALLOCS,
					PM_OP_PEERS, PM_OP_QUERY_RANGE, PM_OP_PLACE, PM_OP_FREE };
	const size_t len = 8u << 20, chunk = 64u << 10;
	uint64_t seed = 0x9e3779b97f4a7c15ull, alloc_id;
	uint8_t buf[1024];
	struct pm_client *c;
	int fds[3], pfd[2], s, replies = 0, migrated = 0, advised = 0;
	struct pm_msg *m = malloc(sizeof(*m));
	uint64_t *data;
	void *a;

	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT_FATAL(it_broker_up(&br, 200));
	/* A real client with real data: the fuzzing session is another one,
	 * so it can name this allocation only by guessing wrong (ids are
	 * per session), and the data must come through untouched. */
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	data = a;
	for (size_t i = 0; i < len / 8; i++)
		data[i] = i * 0x9e3779b97f4a7c15ull;
	fds[0] = pagemap_open(c, IT_EMU0, NULL, 0);
	fds[1] = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fds[0] >= 0 && fds[1] >= 0 && pipe(pfd) == 0);
	fds[2] = pfd[0];
	CU_ASSERT_EQUAL(pm_migrate(c, a, len / 2, fds[0], 0), 0);

	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	/* The fuzzing session's own allocation, so that valid ids exist. */
	{
		struct pm_alloc al = { .size = len, .chunk_size = chunk };
		int memfd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		struct pm_hdr hdr = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_ALLOC,
				      .length = sizeof(al), .nfds = 1, .request_id = 1 };
		const struct pm_alloc_reply *rep;

		CU_ASSERT_FATAL(memfd >= 0 && ftruncate(memfd, (off_t)len) == 0);
		CU_ASSERT_FATAL(fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
		CU_ASSERT_EQUAL_FATAL(it_raw_send(s, &hdr, &al, sizeof(al), &memfd, 1), 0);
		close(memfd);
		CU_ASSERT_EQUAL_FATAL(it_raw_recv(s, m, 5000), 0);
		rep = (const void *)m->payload;
		CU_ASSERT_EQUAL_FATAL(rep->r.status, 0);
		alloc_id = rep->alloc_id;
		pm_msg_close_fds(m);
	}
	for (int i = 0; i < ITERATIONS; i++) {
		uint16_t op = ops[it_rand(&seed) % (sizeof(ops) / sizeof(ops[0]))];
		size_t n = body(&seed, op, buf, alloc_id, len / chunk);
		/* Mostly the fds the op takes (pagemap fds first), sometimes more. */
		unsigned nfds = (unsigned)(it_rand(&seed) % 8 ? it_rand(&seed) % 3 : 3);
		struct pm_hdr hdr = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = op,
				      .length = (uint32_t)n, .nfds = (uint16_t)nfds,
				      .request_id = (uint64_t)i + 2 };

		if (it_raw_send(s, &hdr, buf, n, fds, nfds) < 0)
			break;
		if (it_raw_recv(s, m, 10000) < 0)
			break;
		/* Replies answer requests in order, whatever they say; an
		 * async MIGRATE's completion socket comes and is closed. */
		if (m->hdr.request_id == hdr.request_id && (m->hdr.flags & PM_HDR_REPLY)) {
			const struct pm_reply *rep = (const void *)m->payload;

			replies++;
			migrated += op == PM_OP_MIGRATE && rep->status == 0;
			advised += op == PM_OP_ADVISE && rep->status >= 0;
		}
		pm_msg_close_fds(m);
	}
	cu_check_at(replies == ITERATIONS, __FILE__, __LINE__, "%d of %d requests answered",
		    replies, ITERATIONS);
	/* Deep enough: some random requests got past validation and acted. */
	cu_check_at(migrated > 20 && advised > 20, __FILE__, __LINE__,
		    "only %d migrations and %d advice took effect", migrated, advised);
	close(s);
	/* The well-behaved client and its data are untouched. */
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	for (size_t i = 0, bad = 0; i < len / 8; i++)
		if (data[i] != i * 0x9e3779b97f4a7c15ull && !bad++)
			cu_check_at(false, __FILE__, __LINE__, "word %zu differs", i);
	close(fds[0]);
	close(fds[1]);
	close(pfd[0]);
	close(pfd[1]);
	pm_disconnect(c);
	free(m);
}

static void test_stop(void)
{
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "random placement requests: all answered, nothing lost", test_fuzz },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("fuzz-ops", tests);
}
