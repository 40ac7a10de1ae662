/* SPDX-License-Identifier: MIT */
/*
 * The registration cache (broker/regcache.c) over a fake engine: the cap on
 * pinned bytes under 8 threads, LRU eviction, invalidation while in use, by
 * file and by domain, failed registrations, stale kept ones and sweeps, a
 * request over the whole cap.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cu_run.h"
#include "regcache.h"

#define MB (1ull << 20)
#define D1 ((void *)1)
#define D2 ((void *)2)
#define PK (REGCACHE_PIN | REGCACHE_KEEP)
#define BASE ((uint8_t *)0x100000)

struct handle {
	uint64_t len;
	unsigned flags;
	int valid, dead;
	uint64_t at, vlen; /* what valid was last asked about */
};

/* The fake engine: a handle per registration, kept to see which were released;
 * what it pinned plus what users charged never passes the cap (over: breaches). */
static struct fake {
	pthread_mutex_t m;
	uint64_t cap, live, charged;
	unsigned nreg, nunreg, nvalid, over, bad_unreg;
	int fail_next;
	struct handle h[40000];
} f;

static int fd1, fd2;
static struct regcache_stats st;
#define STAT(x) (regcache_stats(rc, &st), st.x) /* of the test's rc, now */

static int freg(void *ctx, void *dom, int fd, off_t off, uint64_t len, unsigned flags,
		void **handle, uint8_t **base)
{
	struct handle *h = NULL;

	if (__atomic_exchange_n(&f.fail_next, 0, __ATOMIC_SEQ_CST))
		return -EFAULT;
	pthread_mutex_lock(&f.m);
	if (f.nreg < sizeof(f.h) / sizeof(f.h[0])) {
		h = &f.h[f.nreg++];
		*h = (struct handle){ .len = len, .flags = flags, .valid = 1 };
		f.live += flags & REGCACHE_PIN ? len : 0;
		f.over += f.live + __atomic_load_n(&f.charged, __ATOMIC_SEQ_CST) > f.cap;
	}
	pthread_mutex_unlock(&f.m);
	if (!h)
		return -ENOMEM;
	usleep(20); /* pinning takes a while: other threads run meanwhile */
	*handle = h;
	*base = BASE + off;
	return 0;
}

static void funreg(void *ctx, void *dom, void *handle)
{
	struct handle *h = handle;

	pthread_mutex_lock(&f.m);
	f.nunreg++;
	f.bad_unreg += h->dead; /* released twice */
	h->dead = 1;
	f.live -= h->flags & REGCACHE_PIN ? h->len : 0;
	pthread_mutex_unlock(&f.m);
}

static bool fvalid(void *ctx, void *dom, void *handle, uint64_t at, uint64_t len)
{
	struct handle *h = handle;

	__atomic_add_fetch(&f.nvalid, 1, __ATOMIC_RELAXED);
	h->at = at;
	h->vlen = len;
	return __atomic_load_n(&h->valid, __ATOMIC_SEQ_CST);
}

static const struct regcache_ops ops = { .reg = freg, .unreg = funreg, .valid = fvalid };

static struct regcache *setup(uint64_t cap, unsigned max_idle)
{
	struct regcache *rc;

	/* whatever a test stopped by a fatal assertion left too */
	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.m, NULL);
	f.cap = cap;
	rc = regcache_new(&ops, NULL, cap, max_idle);
	CU_ASSERT_FATAL(rc != NULL);
	return rc;
}

/* Destroys rc: everything registered was released exactly once, under the cap. */
static void teardown(struct regcache *rc)
{
	regcache_destroy(rc);
	CU_ASSERT(f.live == 0 && f.nreg == f.nunreg);
	CU_ASSERT(f.bad_unreg == 0 && f.over == 0);
}

static struct regcache_ent *get(struct regcache *rc, void *dom, int fd, uint64_t off,
				uint64_t len, unsigned flags)
{
	struct regcache_ent *e = NULL;

	CU_ASSERT_EQUAL_FATAL(regcache_get(rc, dom, fd, (off_t)off, len, flags, &e), 0);
	CU_ASSERT_PTR_EQUAL(regcache_addr(e, (off_t)off), BASE + off);
	return e;
}

static void invalidate_file(struct regcache *rc, int fd)
{
	struct stat fs;

	if (!fstat(fd, &fs))
		regcache_invalidate(rc, fs.st_dev, fs.st_ino);
}

static struct regcache *shared;
static unsigned bad_result; /* a get that failed for another reason than the cap */

static void *worker(void *arg)
{
	struct regcache *rc = shared;
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (int i = 0; i < 4000; i++) {
		unsigned x = (unsigned)rand_r(&seed);
		uint64_t off = (x >> 8) % 16 * MB;
		unsigned fl = REGCACHE_PIN | (x & 1 ? REGCACHE_KEEP : 0) | (x & 2 ? REGCACHE_WRITE : 0);
		struct regcache_ent *e;
		int r = regcache_get(rc, D1, x & 4 ? fd1 : fd2, (off_t)off, MB, fl, &e);

		if (r ? r != -ENOSPC : regcache_addr(e, (off_t)off) != BASE + off)
			__atomic_add_fetch(&bad_result, 1, __ATOMIC_RELAXED);
		if (!r && rand_r(&seed) % 50 == 0) /* its pages punched out */
			__atomic_store_n(&((struct handle *)regcache_handle(e))->valid, 0,
					 __ATOMIC_SEQ_CST);
		if (!r)
			regcache_put(rc, e);
		if (rand_r(&seed) % 500 == 0)
			invalidate_file(rc, fd1);
		if (rand_r(&seed) % 50 == 0)
			regcache_sweep(rc, 4);
		if (rand_r(&seed) % 300 == 0 && !regcache_charge(rc, 3 * MB)) {
			__atomic_add_fetch(&f.charged, 3 * MB, __ATOMIC_SEQ_CST);
			usleep(20);
			__atomic_sub_fetch(&f.charged, 3 * MB, __ATOMIC_SEQ_CST);
			regcache_uncharge(rc, 3 * MB);
		}
	}
	return NULL;
}

static void test_cap_concurrent(void)
{
	struct regcache *rc = shared = setup(6 * MB, 8);
	pthread_t th[8];

	bad_result = 0;
	for (unsigned i = 0; i < 8; i++)
		CU_ASSERT_FATAL(!pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1)));
	for (unsigned i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT_EQUAL(bad_result, 0);
	CU_ASSERT(STAT(pinned_peak) <= 6 * MB);
	/* the cap was under pressure: idle ones evicted, gets and charges refused */
	CU_ASSERT(st.evictions > 0 && st.refused > 0 && st.invalidated > 0);
	teardown(rc);
}

static void test_lru_eviction(void)
{
	struct regcache *rc = setup(4 * MB, 8);
	struct regcache_ent *a = get(rc, D1, fd1, 0, 2 * MB, PK), *b, *c, *e;
	struct handle *ha = regcache_handle(a), *hb;

	regcache_put(rc, a);
	hb = regcache_handle(b = get(rc, D1, fd1, 2 * MB, 2 * MB, PK));
	regcache_put(rc, b);
	CU_ASSERT_PTR_EQUAL(get(rc, D1, fd1, 0, MB, PK), a); /* a hit: a is the newest now */
	regcache_put(rc, a);
	c = get(rc, D1, fd1, 4 * MB, 2 * MB, PK); /* needs room: b, the oldest, goes */
	CU_ASSERT_EQUAL(STAT(evictions), 1);
	CU_ASSERT_FATAL(hb->dead && !ha->dead); /* else a is gone: stop here */
	CU_ASSERT_EQUAL(f.live, 4 * MB);
	/* a and c in use hold the whole budget: nothing to evict */
	CU_ASSERT_PTR_EQUAL(get(rc, D1, fd1, 0, MB, PK), a);
	CU_ASSERT_EQUAL(regcache_get(rc, D1, fd1, 8 * MB, MB, PK, &e), -ENOSPC);
	CU_ASSERT_EQUAL(regcache_charge(rc, MB), -ENOSPC);
	CU_ASSERT(STAT(refused) == 2 && st.pinned == 4 * MB);
	regcache_put(rc, a);
	regcache_put(rc, c);
	CU_ASSERT_EQUAL(regcache_charge(rc, 4 * MB), 0); /* evicts both, idle now */
	CU_ASSERT(f.live == 0 && STAT(entries) == 0);
	regcache_uncharge(rc, 4 * MB);
	teardown(rc);
}

static void test_inuse_survives_invalidation(void)
{
	struct regcache *rc = setup(4 * MB, 8);
	struct regcache_ent *e = get(rc, D1, fd1, 0, MB, PK), *e2;
	struct handle *h = regcache_handle(e);

	CU_ASSERT_PTR_EQUAL(get(rc, D1, fd1, 0, MB, PK), e); /* two references */
	invalidate_file(rc, fd1);
	CU_ASSERT(STAT(invalidated) == 1 && st.entries == 0);
	CU_ASSERT_FALSE(h->dead);
	e2 = get(rc, D1, fd1, 0, MB, PK); /* found no more: registered anew */
	CU_ASSERT_PTR_NOT_EQUAL(e2, e);
	CU_ASSERT_EQUAL(f.nreg, 2);
	regcache_put(rc, e);
	CU_ASSERT_FALSE(h->dead);
	CU_ASSERT_PTR_EQUAL(regcache_addr(e, 0), BASE);
	regcache_put(rc, e); /* the last put releases it, kept or not */
	CU_ASSERT(h->dead);
	CU_ASSERT_EQUAL(STAT(pinned), MB);
	regcache_put(rc, e2);
	CU_ASSERT_EQUAL(STAT(idle), 1);
	teardown(rc);
}

static void test_invalidate_file_and_dom(void)
{
	struct regcache *rc = setup(8 * MB, 8);
	struct regcache_ent *e;
	struct handle *h;

	regcache_put(rc, get(rc, D1, fd1, 0, MB, PK));
	regcache_put(rc, get(rc, D1, fd2, 0, 2 * MB, PK));
	h = regcache_handle(e = get(rc, D2, fd1, 0, MB, PK));
	regcache_put(rc, e);
	CU_ASSERT_EQUAL(regcache_pinned_dom(rc, D1), 3 * MB);
	CU_ASSERT_EQUAL(regcache_pinned_dom(rc, D2), MB);
	regcache_invalidate_dom(rc, D2);
	CU_ASSERT(h->dead);
	CU_ASSERT_EQUAL(regcache_pinned_dom(rc, D2), 0);
	CU_ASSERT_EQUAL(STAT(entries), 2);
	invalidate_file(rc, fd1);
	CU_ASSERT(STAT(entries) == 1 && st.idle == 1 && st.pinned == 2 * MB);
	CU_ASSERT_EQUAL(f.live, 2 * MB);
	regcache_put(rc, get(rc, D1, fd2, MB, MB, PK)); /* fd2's is left: a hit */
	CU_ASSERT_EQUAL(f.nreg, 3);
	regcache_invalidate_dom(rc, D1);
	CU_ASSERT(STAT(entries) == 0 && st.pinned == 0);
	CU_ASSERT_EQUAL(f.nunreg, 3);
	teardown(rc);
}

static void test_failed_reg_uncharged(void)
{
	struct regcache *rc = setup(2 * MB, 8);
	struct regcache_ent *e = NULL;

	f.fail_next = 1;
	CU_ASSERT_EQUAL(regcache_get(rc, D1, fd1, 0, 2 * MB, REGCACHE_PIN, &e), -EFAULT);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT(STAT(failed) == 1 && st.pinned == 0 && st.entries == 0);
	CU_ASSERT_EQUAL(regcache_charge(rc, 2 * MB), 0); /* the whole budget is free */
	regcache_uncharge(rc, 2 * MB);
	regcache_put(rc, get(rc, D1, fd1, 0, 2 * MB, REGCACHE_PIN));
	CU_ASSERT_EQUAL(f.nreg, 1);
	teardown(rc);
}

static void test_stale_dropped(void)
{
	struct regcache *rc = setup(4 * MB, 8);
	struct regcache_ent *e = get(rc, D1, fd1, 0, MB, PK);
	struct handle *h = regcache_handle(e);

	regcache_put(rc, e);
	regcache_put(rc, get(rc, D1, fd1, 0, MB, PK)); /* still valid: a hit */
	CU_ASSERT(f.nreg == 1 && f.nvalid == 1);
	h->valid = 0;
	e = get(rc, D1, fd1, 0, MB, PK);
	CU_ASSERT_PTR_NOT_EQUAL(regcache_handle(e), h);
	CU_ASSERT(h->dead);
	CU_ASSERT_EQUAL(f.nreg, 2);
	CU_ASSERT(STAT(stale) == 1 && st.pinned == MB);
	CU_ASSERT(h->at == 0 && h->vlen == MB);
	regcache_put(rc, e);
	teardown(rc);
}

/* A sweep tests the oldest idle ones, a page each where their last get
 * began, releases the stale ones and leaves the others where they were. */
static void test_sweep(void)
{
	struct regcache *rc = setup(8 * MB, 8);
	struct regcache_ent *a = get(rc, D1, fd1, 0, 2 * MB, PK);
	struct regcache_ent *b = get(rc, D1, fd1, 2 * MB, 2 * MB, PK);
	struct regcache_ent *c = get(rc, D1, fd1, 4 * MB, 2 * MB, PK), *e;
	struct handle *ha = regcache_handle(a), *hb = regcache_handle(b), *hc = regcache_handle(c);
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	regcache_put(rc, a);
	regcache_put(rc, b);
	regcache_put(rc, c);
	regcache_put(rc, get(rc, D1, fd1, 3 * MB, MB, PK)); /* b from its 2nd MiB: a, c, b */
	CU_ASSERT(hb->at == MB && hb->vlen == MB);
	hb->valid = 0;
	regcache_sweep(rc, 1); /* a alone, still valid */
	CU_ASSERT(f.nvalid == 2 && ha->at == 0 && ha->vlen == page && !hb->dead);
	/* a is still the oldest: room for 4 MiB evicts it, not c */
	e = get(rc, D1, fd2, 0, 4 * MB, PK);
	CU_ASSERT(ha->dead && !hc->dead);
	regcache_put(rc, e);
	regcache_sweep(rc, 8); /* c, b, e: b is stale */
	CU_ASSERT(f.nvalid == 5 && hb->at == MB && hb->vlen == page);
	CU_ASSERT(hb->dead && !hc->dead);
	CU_ASSERT(STAT(stale) == 1 && st.entries == 2 && st.idle == 2 && st.pinned == 6 * MB);
	teardown(rc);
}

/* Evicting would not make room for more than the whole cap: nothing goes. */
static void test_over_cap(void)
{
	struct regcache *rc = setup(4 * MB, 8);
	struct regcache_ent *e = NULL;

	regcache_put(rc, get(rc, D1, fd1, 0, 2 * MB, PK));
	CU_ASSERT_EQUAL(regcache_get(rc, D1, fd1, 0, 8 * MB, PK, &e), -ENOSPC);
	CU_ASSERT_PTR_NULL(e);
	CU_ASSERT_EQUAL(regcache_charge(rc, 5 * MB), -ENOSPC);
	CU_ASSERT(STAT(evictions) == 0 && st.idle == 1 && st.refused == 2);
	teardown(rc);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "cap never exceeded, 8 threads", test_cap_concurrent },
		{ "LRU eviction, ENOSPC when all in use", test_lru_eviction },
		{ "in use survives invalidation", test_inuse_survives_invalidation },
		{ "invalidate by file and by domain", test_invalidate_file_and_dom },
		{ "failed register leaves no charge", test_failed_reg_uncharged },
		{ "valid false drops a kept entry", test_stale_dropped },
		{ "sweep drops stale idle entries, keeps LRU order", test_sweep },
		{ "over the whole cap evicts nothing", test_over_cap },
		{ NULL, NULL },
	};

	fd1 = memfd_create("regcache1", 0);
	fd2 = memfd_create("regcache2", 0);
	if (fd1 < 0 || fd2 < 0 || ftruncate(fd1, 64 * MB) || ftruncate(fd2, 64 * MB))
		return 77;
	return cu_run("regcache", tests);
}
