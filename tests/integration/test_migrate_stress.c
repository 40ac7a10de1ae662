/* SPDX-License-Identifier: MIT */
/*
 * Migrations under load: threads of one client moving overlapping ranges of
 * one allocation between both device pools, a NUMA node and system memory;
 * threads and then processes writing, moving and checking their own data
 * concurrently; and clients SIGKILLed in the middle of a migration, after
 * which the broker must have let go of everything they held. Data is seeded
 * per chunk and checked byte for byte: a lost store, a stale chunk or one
 * copied to the wrong place all show.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_broker.h"

#define MiB (1ull << 20)
#define NTHREADS 4
#define NCHILDREN 3

static struct it_broker br;

static bool up(void)
{
	return br.pid || it_broker_up(&br, 300);
}

/* Where things go: both pools, a host node, system memory. */
struct targets {
	int fd[4];
	unsigned n;
};

static bool targets_open(struct pm_client *c, struct targets *t)
{
	t->fd[0] = pagemap_open(c, IT_EMU0, NULL, 0);
	t->fd[1] = pagemap_open(c, IT_EMU1, NULL, 0);
	t->fd[2] = pagemap_open(c, "node0", NULL, 0);
	t->fd[3] = PM_FD_SYSTEM;
	t->n = 4;
	return t->fd[0] >= 0 && t->fd[1] >= 0 && t->fd[2] >= 0;
}

static void targets_close(struct targets *t)
{
	for (unsigned i = 0; i < 3; i++)
		if (t->fd[i] >= 0)
			close(t->fd[i]);
}

/* One migration, synchronous or through a completion fd: 0 or -errno. */
static int migrate_one(struct pm_client *c, void *addr, size_t len, int fd, bool async)
{
	struct pm_migrate_result res;
	int done, r;

	if (!async)
		return pm_migrate(c, addr, len, fd, 0);
	done = pm_migrate(c, addr, len, fd, PM_MIGRATE_ASYNC);
	if (done < 0)
		return done;
	if (!it_readable(done, 10000)) {
		close(done);
		return -ETIMEDOUT;
	}
	r = pm_migrate_result(done, &res);
	close(done);
	if (r != 1)
		return r < 0 ? r : -EINPROGRESS;
	if (res.status)
		return res.status;
	/* Ranges here are whole chunks: every byte of them has arrived. */
	return res.bytes_done == len ? 0 : -ERANGE;
}

/* ---- phase 1: overlapping migrations, no writes ---- */

struct mover {
	pthread_t thread;
	struct pm_client *c;
	const struct targets *t;
	uint8_t *base;
	size_t nchunks, ck;
	uint64_t rng, deadline;
	unsigned ops;
	int err;
	size_t err_first, err_count;
};

static void *mover_run(void *arg)
{
	struct mover *m = arg;

	while (it_now_ms() < m->deadline && !m->err) {
		size_t first = it_rand(&m->rng) % m->nchunks;
		size_t count = 1 + it_rand(&m->rng) % (m->nchunks - first < 24 ? m->nchunks - first : 24);
		int fd = m->t->fd[it_rand(&m->rng) % m->t->n];
		bool async = it_rand(&m->rng) % 4 == 0;
		int r = migrate_one(m->c, m->base + first * m->ck, count * m->ck, fd, async);

		if (r < 0) {
			m->err = r;
			m->err_first = first;
			m->err_count = count;
		}
		m->ops++;
	}
	return NULL;
}

/*
 * Four threads of one client move random, overlapping chunk ranges of one
 * allocation between every kind of place; then every byte is where it was.
 */
static void test_threads_overlapping(void)
{
	const size_t ck = 256 << 10, len = 32 * MiB;
	struct mover m[NTHREADS];
	struct pm_stats_reply st;
	struct targets t;
	struct pm_client *c;
	uint64_t deadline;
	size_t bad;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(targets_open(c, &t));
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(18), &a), 0);
	it_pattern_fill(a, 0, len, 31);

	deadline = it_now_ms() + 1200;
	for (int i = 0; i < NTHREADS; i++) {
		m[i] = (struct mover){ .c = c, .t = &t, .base = a, .nchunks = len / ck, .ck = ck,
				       .rng = 1000 + (uint64_t)i, .deadline = deadline };
		CU_ASSERT_FATAL(pthread_create(&m[i].thread, NULL, mover_run, &m[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(m[i].thread, NULL);
		cu_check_at(m[i].err == 0, __FILE__, __LINE__,
			    "thread %d: migrating chunks %zu+%zu: %s", i, m[i].err_first,
			    m[i].err_count, strerror(-m[i].err));
		cu_check_at(m[i].ops > 0, __FILE__, __LINE__, "thread %d did nothing", i);
	}
	/* Nothing is left in flight once every call has returned. */
	{
		struct pm_range r[64];
		int n = pm_query_range(c, a, len, r, 64);

		CU_ASSERT(n >= 1);
		for (int i = 0; i < n && i < 64; i++) {
			CU_ASSERT_FALSE(r[i].flags & PM_RANGE_IN_FLIGHT);
			CU_ASSERT_EQUAL(r[i].error, 0);
		}
	}
	bad = it_pattern_check(a, 0, len, 31);
	cu_check_at(bad == SIZE_MAX, __FILE__, __LINE__,
		    "after %u+%u+%u+%u migrations, data differs at offset %zu (chunk %zu)",
		    m[0].ops, m[1].ops, m[2].ops, m[3].ops, bad, bad / ck);
	/* Read back, nothing is left in a pool; node0's chunks stay on node0. */
	CU_ASSERT_EQUAL(it_chunks_in(c, a, len, it_id(t.fd[0])), 0);
	CU_ASSERT_EQUAL(it_chunks_in(c, a, len, it_id(t.fd[1])), 0);
	CU_ASSERT_EQUAL(it_chunks_in(c, a, len, 0) + it_chunks_in(c, a, len, it_id(t.fd[2])),
			(int)(len / ck));
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(t.fd[0]), 0);
	CU_ASSERT_EQUAL(it_used(t.fd[1]), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 0);
	targets_close(&t);
	pm_disconnect(c);
}

/* ---- phase 2: each owner writes, moves and checks its own chunks ---- */

struct owner {
	pthread_t thread;
	struct pm_client *c;
	const struct targets *t;
	uint8_t *base;     /* the allocation: pattern offsets count from here */
	size_t off, len;   /* the chunks this owner alone touches */
	size_t ck;
	uint64_t *seeds;   /* per chunk of [off, off + len) */
	uint64_t rng, deadline;
	unsigned ops;
	int err;
	const char *what;
	size_t bad;        /* the first wrong byte (offset from base), SIZE_MAX: none */
};

static void owner_write(struct owner *o, size_t first, size_t count)
{
	for (size_t i = first; i < first + count; i++) {
		o->seeds[i] = it_rand(&o->rng);
		it_pattern_fill(o->base, o->off + i * o->ck, o->ck, o->seeds[i]);
	}
}

static size_t owner_check(const struct owner *o)
{
	for (size_t i = 0; i < o->len / o->ck; i++) {
		size_t bad = it_pattern_check(o->base, o->off + i * o->ck, o->ck, o->seeds[i]);

		if (bad != SIZE_MAX)
			return bad;
	}
	return SIZE_MAX;
}

/*
 * Until the deadline: new data into some chunks, a migration of some chunks
 * (never a store while one of its own runs: the contract forbids it), or a
 * full check. Stores to chunks in a pool fault them back first.
 */
static void *owner_run(void *arg)
{
	struct owner *o = arg;
	size_t n = o->len / o->ck;

	o->bad = SIZE_MAX;
	owner_write(o, 0, n);
	while (it_now_ms() < o->deadline && !o->err && o->bad == SIZE_MAX) {
		size_t first = it_rand(&o->rng) % n;
		size_t count = 1 + it_rand(&o->rng) % (n - first < 16 ? n - first : 16);
		unsigned op = (unsigned)(it_rand(&o->rng) % 8);
		int fd = o->t->fd[it_rand(&o->rng) % o->t->n];

		if (op == 0) {
			owner_write(o, first, count);
		} else if (op == 1) {
			o->bad = owner_check(o);
		} else {
			int r = migrate_one(o->c, o->base + o->off + first * o->ck, count * o->ck,
					    fd, op == 2);

			if (r < 0) {
				o->err = r;
				o->what = op == 2 ? "async migration" : "migration";
			}
		}
		o->ops++;
	}
	if (!o->err && o->bad == SIZE_MAX)
		o->bad = owner_check(o);
	return NULL;
}

static void test_threads_own_data(void)
{
	const size_t ck = 128 << 10, len = 32 * MiB, part = len / NTHREADS;
	struct owner o[NTHREADS];
	struct targets t;
	struct pm_client *c;
	uint64_t deadline;
	void *a;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(targets_open(c, &t));
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(17), &a), 0);
	deadline = it_now_ms() + 1000;
	for (int i = 0; i < NTHREADS; i++) {
		o[i] = (struct owner){ .c = c, .t = &t, .base = a, .off = (size_t)i * part,
				       .len = part, .ck = ck, .rng = 2000 + (uint64_t)i,
				       .deadline = deadline };
		o[i].seeds = calloc(part / ck, sizeof(uint64_t));
		CU_ASSERT_FATAL(o[i].seeds != NULL);
		CU_ASSERT_FATAL(pthread_create(&o[i].thread, NULL, owner_run, &o[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(o[i].thread, NULL);
		cu_check_at(o[i].err == 0, __FILE__, __LINE__, "thread %d: %s: %s", i,
			    o[i].what ? o[i].what : "", strerror(-o[i].err));
		cu_check_at(o[i].bad == SIZE_MAX, __FILE__, __LINE__,
			    "thread %d: data differs at offset %zu (chunk %zu) after %u operations",
			    i, o[i].bad, o[i].bad / ck, o[i].ops);
	}
	/* And once more from here, after everyone stopped. */
	for (int i = 0; i < NTHREADS; i++) {
		size_t bad = owner_check(&o[i]);

		cu_check_at(bad == SIZE_MAX, __FILE__, __LINE__,
			    "thread %d's chunks, checked after the join: differ at %zu", i, bad);
		free(o[i].seeds);
	}
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_used(t.fd[0]), 0);
	CU_ASSERT_EQUAL(it_used(t.fd[1]), 0);
	targets_close(&t);
	pm_disconnect(c);
}

/* ---- processes ---- */

/* Exit statuses of a child: what went wrong, for the parent's message. */
enum {
	CHILD_OK = 0,
	CHILD_CONNECT = 10,
	CHILD_OPEN = 11,
	CHILD_ALLOC = 12,
	CHILD_MIGRATE = 13,
	CHILD_DATA = 14,
	CHILD_FREE = 15,
};

/*
 * A child: its own client (a client is not usable across fork), its own
 * allocation, the owner loop over all of it. _exit only: exit() would run
 * the parent's atexit handlers, which kill test brokers.
 */
static void child_stress(unsigned k, uint64_t deadline)
{
	const size_t ck = 64 << 10, len = 16 * MiB;
	struct pm_client *c = NULL;
	struct owner o;
	struct targets t;
	void *a;

	if (pm_connect(br.sock, &c) < 0)
		_exit(CHILD_CONNECT);
	if (!targets_open(c, &t))
		_exit(CHILD_OPEN);
	if (pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a) < 0)
		_exit(CHILD_ALLOC);
	o = (struct owner){ .c = c, .t = &t, .base = a, .off = 0, .len = len, .ck = ck,
			    .rng = 3000 + k, .deadline = deadline };
	o.seeds = calloc(len / ck, sizeof(uint64_t));
	if (!o.seeds)
		_exit(CHILD_ALLOC);
	owner_run(&o);
	if (o.err) {
		fprintf(stderr, "child %u: %s: %s\n", k, o.what, strerror(-o.err));
		_exit(CHILD_MIGRATE);
	}
	if (o.bad != SIZE_MAX) {
		fprintf(stderr, "child %u: data differs at offset %zu after %u operations\n", k,
			o.bad, o.ops);
		_exit(CHILD_DATA);
	}
	if (pm_free(c, a) < 0)
		_exit(CHILD_FREE);
	targets_close(&t);
	pm_disconnect(c);
	_exit(CHILD_OK);
}

static void test_processes(void)
{
	struct pm_stats_reply s0, s1;
	pid_t pid[NCHILDREN];
	struct pm_client *c;
	uint64_t deadline;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(it_stats(c, &s0), 0);
	/* No client of ours across the fork: its threads would not be in the children. */
	pm_disconnect(c);
	deadline = it_now_ms() + 1500;
	fflush(NULL);
	for (unsigned k = 0; k < NCHILDREN; k++) {
		pid[k] = fork();
		CU_ASSERT_FATAL(pid[k] >= 0);
		if (pid[k] == 0)
			child_stress(k, deadline);
	}
	for (unsigned k = 0; k < NCHILDREN; k++) {
		int status = it_reap(pid[k], 20000);

		cu_check_at(status == CHILD_OK, __FILE__, __LINE__,
			    "child %u exited %d (10 connect, 11 open, 12 alloc, 13 migrate, "
			    "14 data, 15 free, -1 hung)", k, status);
	}
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	IT_WAIT_UNTIL(it_stats(c, &s1) == 0 && s1.sessions == s0.sessions, 3000)
		;
	CU_ASSERT_EQUAL(it_stats(c, &s1), 0);
	CU_ASSERT_EQUAL(s1.sessions, s0.sessions);
	CU_ASSERT_EQUAL(s1.allocations, s0.allocations);
	CU_ASSERT_EQUAL(s1.allocated_bytes, s0.allocated_bytes);
	pm_disconnect(c);
}

/*
 * A child that starts a large migration into emu0 and is SIGKILLed while it
 * runs: the broker lives on, forgets the allocation, gives the pool's
 * space back and closes every fd the child's session had.
 */
static void child_killed(int ready, bool async)
{
	const size_t len = 48 * MiB;
	struct pm_client *c = NULL;
	void *a;
	int emu;

	if (pm_connect(br.sock, &c) < 0)
		_exit(CHILD_CONNECT);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	if (emu < 0)
		_exit(CHILD_OPEN);
	if (pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a) < 0)
		_exit(CHILD_ALLOC);
	it_pattern_fill(a, 0, len, 41);
	if (async) {
		int done = pm_migrate(c, a, len, emu, PM_MIGRATE_ASYNC);

		if (done < 0)
			_exit(CHILD_MIGRATE);
		it_post(ready, 'S');
	} else {
		/* Told just before: the kill lands inside the call or soon after. */
		it_post(ready, 'S');
		if (pm_migrate(c, a, len, emu, 0) < 0)
			_exit(CHILD_MIGRATE);
	}
	for (;;)
		pause();
}

static void test_killed_mid_migration(void)
{
	static const unsigned delays_ms[] = { 0, 1, 3, 8 };
	struct pm_stats_reply s0, s1;
	struct pm_client *c;
	int emu, fds0;
	uint64_t emu_id;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(emu >= 0);
	emu_id = it_id(emu);
	CU_ASSERT_EQUAL(it_used(emu), 0);
	/* Earlier tests' pagemaps linger a while, each with fds: wait them out,
	 * so that only emu0 (held by our handle) is left when fds are counted. */
	IT_WAIT_UNTIL(it_stats(c, &s0) == 0 && s0.pagemaps == 1, 3000)
		;
	CU_ASSERT_EQUAL(it_stats(c, &s0), 0);
	CU_ASSERT_EQUAL(s0.pagemaps, 1);
	/* The broker's fds with one session of ours and our emu0 handle, as below. */
	fds0 = it_count_fds(br.pid);
	pm_disconnect(c);

	for (unsigned i = 0; i < sizeof(delays_ms) / sizeof(delays_ms[0]); i++) {
		bool async = i % 2 == 0;
		int pfd[2], got, status, fds;
		pid_t pid;

		CU_ASSERT_FATAL(pipe2(pfd, O_CLOEXEC) == 0);
		fflush(NULL);
		pid = fork();
		CU_ASSERT_FATAL(pid >= 0);
		if (pid == 0) {
			close(pfd[0]);
			close(emu);
			child_killed(pfd[1], async);
		}
		close(pfd[1]);
		got = it_wait_byte(pfd[0], 10000);
		cu_check_at(got == 'S', __FILE__, __LINE__, "child %u (%s) did not start: %d", i,
			    async ? "async" : "sync", got);
		if (delays_ms[i])
			it_sleep_ms(delays_ms[i]);
		kill(pid, SIGKILL);
		status = it_reap(pid, 5000);
		cu_check_at(status == 128 + SIGKILL, __FILE__, __LINE__,
			    "child %u ended with %d before the kill", i, status);
		close(pfd[0]);

		/* The broker is alive and has let go of all the child had. */
		c = it_connect(&br);
		CU_ASSERT_FATAL(c != NULL);
		CU_ASSERT_EQUAL(pm_ping(c), 0);
		IT_WAIT_UNTIL(it_stats(c, &s1) == 0 && s1.allocations == s0.allocations &&
				      s1.sessions == s0.sessions,
			      5000)
			;
		CU_ASSERT_EQUAL(it_stats(c, &s1), 0);
		CU_ASSERT_EQUAL(s1.allocations, s0.allocations);
		CU_ASSERT_EQUAL(s1.allocated_bytes, s0.allocated_bytes);
		CU_ASSERT_EQUAL(s1.sessions, s0.sessions); /* c again, the child's gone */
		IT_WAIT_UNTIL(it_used(emu) == 0, 5000)
			;
		cu_check_at(it_used(emu) == 0, __FILE__, __LINE__,
			    "kill %u (%s, %u ms): emu0 still has %llu bytes used", i,
			    async ? "async" : "sync", delays_ms[i],
			    (unsigned long long)it_used(emu));
		CU_ASSERT_EQUAL(it_state(c, emu_id), PM_STATE_ACTIVE); /* our fd holds it */
		CU_ASSERT_EQUAL(it_open_err(c, IT_EMU0, NULL, 0), 0);
		/* Settled means it stays there: a count falling through fds0 on its
		 * way down would pass the wait alone. */
		fds = it_broker_fds_settle(&br, fds0, 5000);
		if (fds == fds0) {
			it_sleep_ms(50);
			fds = it_count_fds(br.pid);
		}
		cu_check_at(fds == fds0, __FILE__, __LINE__,
			    "kill %u: the broker has %d fds, %d before the child", i, fds, fds0);
		pm_disconnect(c);
	}
	/* The pool is usable at full size after all that. */
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	{
		void *a;

		CU_ASSERT_EQUAL_FATAL(pm_alloc(c, IT_EMU_CAPACITY, 0, &a), 0);
		it_pattern_fill(a, 0, IT_EMU_CAPACITY, 42);
		CU_ASSERT_EQUAL(pm_migrate(c, a, IT_EMU_CAPACITY, emu, 0), 0);
		CU_ASSERT_EQUAL(it_used(emu), IT_EMU_CAPACITY);
		CU_ASSERT_EQUAL(it_pattern_check(a, 0, IT_EMU_CAPACITY, 42), SIZE_MAX);
		CU_ASSERT_EQUAL(pm_free(c, a), 0);
		CU_ASSERT_EQUAL(it_used(emu), 0);
	}
	pm_disconnect(c);
	close(emu);
}

/*
 * A writer storing into chunks while another thread moves them to a device
 * pool and back: every store must survive. The library write-protects a
 * chunk before the broker copies it, so a store racing the copy waits until
 * the chunk has come home; without that protection (kernels before 5.19)
 * the race is documented and this test is skipped.
 */
struct racer {
	volatile uint64_t *words;
	size_t nwords;           /* stores to make: each word is written once */
	volatile bool stop;
	size_t stored;           /* how many it made */
};

/*
 * Each word gets one store, never repeated, so a store lost to the copy
 * window cannot be hidden by a later one; a pause between stores spreads
 * them over the migrations.
 */
static void *racer_run(void *arg)
{
	struct racer *r = arg;
	size_t n;

	for (n = 0; n < r->nwords && !r->stop; n++) {
		uint64_t until = it_now_us() + 10;

		r->words[n] = n + 1;
		while (it_now_us() < until)
			;
	}
	r->stored = n;
	r->stop = true;
	return NULL;
}

static void test_store_racing_migration(void)
{
	const size_t len = 8 * 64 * 1024;
	struct racer r = { .nwords = len / sizeof(uint64_t) };
	struct pm_client *c;
	pthread_t t;
	size_t lost = 0;
	void *a;
	int fd, moves = 0;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a), 0);
	/* READ_MOSTLY needs the same write protection: its answer says
	 * whether this kernel has it. */
	if (pm_madvise(c, a, len, PM_ADV_READ_MOSTLY, PM_FD_SYSTEM) == -EOPNOTSUPP) {
		CU_PASS("no userfaultfd write protection: the racing store is documented");
		pm_disconnect(c);
		return;
	}
	CU_ASSERT_EQUAL(pm_madvise(c, a, len, PM_ADV_UNSET_READ_MOSTLY, PM_FD_SYSTEM), 0);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	r.words = a;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, racer_run, &r), 0);
	for (uint64_t end = it_now_ms() + 3000; !r.stop && it_now_ms() < end; moves++) {
		CU_ASSERT_EQUAL(pm_migrate(c, a, len, fd, 0), 0);
		CU_ASSERT_EQUAL(pm_migrate(c, a, len, PM_FD_SYSTEM, 0), 0);
	}
	r.stop = true;
	pthread_join(t, NULL);
	for (size_t i = 0; i < r.stored; i++)
		lost += r.words[i] != i + 1;
	cu_check_at(lost == 0, __FILE__, __LINE__, "%zu of %zu stores lost in %d moves", lost,
		    r.stored, moves);
	CU_ASSERT(moves > 10);
	close(fd);
	pm_disconnect(c);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "threads: overlapping migrations keep every byte", test_threads_overlapping },
		{ "threads: each writes, moves and checks its own", test_threads_own_data },
		{ "processes: each writes, moves and checks its own", test_processes },
		{ "SIGKILL mid-migration leaves nothing behind", test_killed_mid_migration },
		{ "a store racing a migration is not lost", test_store_racing_migration },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("migrate-stress", tests);
}
