/* SPDX-License-Identifier: MIT */
/*
 * Stateful fuzzer of the migration engine: the input is a program of
 * operations by up to three clients on an in-process broker (broker_harness.h):
 * connect, allocate, open pools, migrate (sync, async, discard; to pools,
 * home, to the preferred location), CPU faults (the FAULT requests
 * libpagemap's fault handler sends), advice, frees, closes, revokes and
 * disconnects, interleaved with turns of the loop and with copies in flight.
 *
 * Checked after every input: every request sent is answered (a request
 * still unanswered when the broker has nothing left to do, or after 3 s, is
 * a deadlock, like the fault/async-migration one this fuzzer was written
 * to find), and once every client is gone the broker holds nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_harness.h"

#define CLIENTS 3
#define ALLOCS 4
#define HANDLES 4
#define ASYNC 8
#define CHUNK (64u << 10)

struct client {
	int sock;
	uint64_t next_id;
	unsigned waiting;           /* requests sent, replies not yet read */
	uint64_t alloc[ALLOCS];     /* ids, 0 for none */
	uint64_t nchunks[ALLOCS];
	int memfd[ALLOCS];          /* kept: a client may seal it after ALLOC */
	int handle[HANDLES];        /* pagemap fds, -1 for none */
	int async[ASYNC];           /* completion fds of async migrations */
	struct pm_msg *m;
};

static struct client cl[CLIENTS];
static const char *const devices[] = { "node0", "node1", "0000:03:00.0", "0000:04:00.0" };

/* The input, a byte at a time; zeros once it runs out. */
struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t next(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* Reads whatever replies and events have arrived for c; keeps the fds that
 * matter (pagemap fds from OPEN, completion fds from async MIGRATE). */
static void drain(struct client *c)
{
	for (;;) {
		const struct pm_reply *r = (const void *)c->m->payload;
		struct pollfd p = { .fd = c->sock, .events = POLLIN };
		int e;

		/* The broker sends whole messages: once readable, one is there
		 * (or the end of the session). */
		if (c->sock < 0 || poll(&p, 1, 0) != 1)
			return;
		e = pm_msg_recv(c->sock, c->m);
		if (e < 0) {
			c->waiting = 0; /* the broker ended the session: nobody answers */
			return;
		}

		if ((c->m->hdr.flags & PM_HDR_REPLY) && c->waiting)
			c->waiting--;
		if (c->m->hdr.opcode == PM_OP_ALLOC && r->status == 0 &&
		    c->m->hdr.length >= sizeof(struct pm_alloc_reply)) {
			const struct pm_alloc_reply *a = (const void *)c->m->payload;

			/* Replies come in request order: the oldest empty slot
			 * that asked gets it (we record asks as UINT64_MAX). */
			for (int i = 0; i < ALLOCS; i++)
				if (c->alloc[i] == UINT64_MAX) {
					c->alloc[i] = a->alloc_id;
					break;
				}
		} else if (c->m->hdr.opcode == PM_OP_ALLOC) {
			for (int i = 0; i < ALLOCS; i++)
				if (c->alloc[i] == UINT64_MAX) {
					c->alloc[i] = 0;
					break;
				}
		}
		for (unsigned k = 0; k < c->m->nfds; k++) {
			int fd = pm_msg_take_fd(c->m, k);
			int *slots = c->m->hdr.opcode == PM_OP_OPEN ? c->handle : c->async;
			int nslots = c->m->hdr.opcode == PM_OP_OPEN ? HANDLES : ASYNC;
			int i;

			for (i = 0; i < nslots && slots[i] >= 0; i++)
				;
			if (i < nslots)
				slots[i] = fd;
			else
				close(fd);
		}
		pm_msg_close_fds(c->m);
	}
}

static void request(struct client *c, uint16_t op, const void *p, size_t len, const int *fds,
		    unsigned nfds)
{
	if (c->sock < 0)
		return;
	if (fh_send(c->sock, op, ++c->next_id, p, len, fds, nfds) == 0)
		c->waiting++;
}

static void op_alloc(struct client *c, struct input *in)
{
	uint64_t nchunks = 1 + next(in) % 16;
	struct pm_alloc a = { .size = nchunks * CHUNK, .chunk_size = CHUNK };
	int i, fd;

	for (i = 0; i < ALLOCS && c->alloc[i]; i++)
		;
	if (i == ALLOCS)
		return;
	fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return;
	if (ftruncate(fd, (off_t)a.size) == 0 &&
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0) {
		/* Some data, so that copies have something to carry. */
		uint64_t v = a.size ^ 0x9e3779b97f4a7c15ull;

		pwrite(fd, &v, sizeof(v), 0);
		c->alloc[i] = UINT64_MAX; /* asked */
		c->nchunks[i] = nchunks;
		request(c, PM_OP_ALLOC, &a, sizeof(a), &fd, 1);
	}
	if (c->memfd[i] >= 0)
		close(c->memfd[i]);
	c->memfd[i] = fd;
}

/* A range of one of c's allocations (or a stale id, sometimes). */
static void pick_range(struct client *c, struct input *in, uint64_t *id, uint64_t *first,
		       uint64_t *count)
{
	unsigned i = next(in) % ALLOCS;
	uint64_t n = c->nchunks[i] ? c->nchunks[i] : 1;

	*id = c->alloc[i] == UINT64_MAX ? 0 : c->alloc[i];
	if (!*id)
		*id = next(in); /* nonsense ids are inputs too */
	*first = next(in) % n;
	*count = 1 + next(in) % (n - *first);
}

static void op_migrate(struct client *c, struct input *in, bool fault)
{
	struct {
		struct pm_migrate_req rq;
		struct pm_migrate_entry en[2];
	} req = { 0 };
	uint8_t how = next(in);
	unsigned nr = fault ? 1 : 1 + (how >> 7), nfds = 0;
	int fds[2];

	req.rq.nranges = nr;
	req.rq.flags = fault ? PM_MIG_FAULT : (how & 3); /* ASYNC, DISCARD */
	for (unsigned r = 0; r < nr; r++) {
		uint8_t t = next(in) % 6;

		pick_range(c, in, &req.en[r].alloc_id, &req.en[r].first, &req.en[r].count);
		if (fault)
			req.en[r].count = 1;
		if (fault || t == 4) {
			req.en[r].target = PM_TARGET_SYSTEM;
		} else if (t == 5) {
			req.en[r].target = PM_TARGET_PREFERRED;
		} else if (c->handle[t] >= 0) {
			fds[nfds] = c->handle[t];
			req.en[r].target = (int32_t)nfds++;
		} else {
			req.en[r].target = PM_TARGET_SYSTEM;
		}
	}
	request(c, PM_OP_MIGRATE, &req, sizeof(req.rq) + nr * sizeof(req.en[0]), fds, nfds);
}

static void op_advise(struct client *c, struct input *in)
{
	struct pm_advise a = { 0 };
	uint8_t adv = next(in), h = next(in) % (HANDLES + 1);
	int fd = h < HANDLES ? c->handle[h] : -1;

	pick_range(c, in, &a.alloc_id, &a.first, &a.count);
	a.advice = 1 + adv % 6;
	if (adv & 0x40)
		a.advice |= PM_ADVICE_FLAG_FALLBACK;
	if (adv & 0x80)
		a.advice |= PM_ADVICE_FLAG_ONLY_SYSTEM;
	request(c, PM_OP_ADVISE, &a, sizeof(a), &fd, fd >= 0);
}

static void disconnect(struct client *c)
{
	if (c->sock >= 0)
		close(c->sock);
	c->sock = -1;
	c->waiting = 0;
	for (int i = 0; i < HANDLES; i++) {
		if (c->handle[i] >= 0)
			close(c->handle[i]);
		c->handle[i] = -1;
	}
	for (int i = 0; i < ASYNC; i++) {
		if (c->async[i] >= 0)
			close(c->async[i]);
		c->async[i] = -1;
	}
	memset(c->alloc, 0, sizeof(c->alloc));
	for (int i = 0; i < ALLOCS; i++) {
		if (c->memfd[i] >= 0)
			close(c->memfd[i]);
		c->memfd[i] = -1;
	}
}

static void step(struct input *in)
{
	uint8_t op = next(in);
	struct client *c = &cl[(op >> 4) % CLIENTS];

	if (c->sock < 0 && (op & 15) != 0)
		return;
	switch (op & 15) {
	case 0:
		if (c->sock >= 0)
			break;
		c->sock = fh_connect(true);
		c->waiting = c->sock >= 0; /* the HELLO */
		break;
	case 1:
		disconnect(c);
		break;
	case 2:
		op_alloc(c, in);
		break;
	case 3: {
		unsigned i = next(in) % ALLOCS;
		struct pm_free f = { .alloc_id = c->alloc[i] == UINT64_MAX ? 0 : c->alloc[i] };

		request(c, PM_OP_FREE, &f, sizeof(f), NULL, 0);
		if (c->alloc[i] != UINT64_MAX)
			c->alloc[i] = 0;
		break;
	}
	case 4: {
		struct pm_open o = { 0 };

		pm_name_put(o.device, sizeof(o.device), devices[next(in) % 4]);
		request(c, PM_OP_OPEN, &o, sizeof(o), NULL, 0);
		break;
	}
	case 5: {
		unsigned i = next(in) % HANDLES;

		if (c->handle[i] >= 0)
			close(c->handle[i]);
		c->handle[i] = -1;
		break;
	}
	case 6:
	case 7:
	case 8:
		op_migrate(c, in, false);
		break;
	case 9:
	case 10:
		op_migrate(c, in, true);
		break;
	case 11:
		op_advise(c, in);
		break;
	case 12: {
		struct pm_revoke r = { 0 };

		pm_name_put(r.device, sizeof(r.device), devices[2 + next(in) % 2]);
		request(c, PM_OP_REVOKE, &r, sizeof(r), NULL, 0);
		break;
	}
	case 14: {
		/* Sealed against writes after ALLOC: the broker's copies into
		 * and out of it fail (EPERM), in workers and inline. */
		unsigned i = next(in) % ALLOCS;

		if (c->memfd[i] >= 0)
			fcntl(c->memfd[i], F_ADD_SEALS, F_SEAL_WRITE);
		break;
	}
	case 13: {
		struct pm_query_range q = { 0 };

		pick_range(c, in, &q.alloc_id, &q.first, &q.count);
		request(c, next(in) & 1 ? PM_OP_RANGES : PM_OP_QUERY_RANGE, &q, sizeof(q), NULL, 0);
		break;
	}
	default:
		/* Time passes: copies complete, the loop turns. */
		fh_pump(next(in) % 4);
		break;
	}
	fh_pump(0);
	drain(c);
}

/* Every request answered, and every async migration over (its completion
 * socket readable: the result, or the broker's hang-up). */
static bool all_answered(void)
{
	for (int i = 0; i < CLIENTS; i++) {
		if (cl[i].sock >= 0 && cl[i].waiting)
			return false;
		for (int k = 0; k < ASYNC; k++) {
			struct pollfd p = { .fd = cl[i].async[k], .events = POLLIN };

			if (cl[i].async[k] >= 0 && poll(&p, 1, 0) != 1)
				return false;
		}
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	uint64_t waited = 0, stuck = 0;

	fh_start();
	for (int i = 0; i < CLIENTS; i++) {
		if (!cl[i].m && !(cl[i].m = calloc(1, sizeof(*cl[i].m))))
			return 0;
		cl[i].sock = -1;
		for (int k = 0; k < HANDLES; k++)
			cl[i].handle[k] = -1;
		for (int k = 0; k < ASYNC; k++)
			cl[i].async[k] = -1;
		for (int k = 0; k < ALLOCS; k++)
			cl[i].memfd[k] = -1;
	}
	for (unsigned n = 0; in.n && n < 256; n++)
		step(&in);
	/* Every request is answered, unless its session went. A broker with
	 * nothing left to do and a request unanswered is a deadlock. */
	while (!all_answered()) {
		unsigned inflight = 0, jobs;

		fh_pump(20);
		for (int i = 0; i < CLIENTS; i++)
			drain(&cl[i]);
		waited += 20;
		jobs = engine_jobs(&fh_broker, &inflight);
		/* Residency waits are off: queued work with no copy in flight
		 * and nothing arriving is stuck for good. */
		stuck = jobs && !inflight ? stuck + 20 : 0;
		if (stuck >= 300 || waited > 5000)
			fh_fail("requests unanswered after %llu ms: %u jobs queued, %u copies in "
				"flight",
				(unsigned long long)waited, jobs, inflight);
	}
	for (int i = 0; i < CLIENTS; i++)
		disconnect(&cl[i]);
	fh_check_clean("after every client left");
	/* Revoked pools come back for the next input (the harness's doing:
	 * the broker has no un-revoke). */
	for (struct pool *p = fh_broker.pools; p; p = p->next)
		p->gone = false;
	return 0;
}
