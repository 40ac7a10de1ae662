/* SPDX-License-Identifier: MIT */
/*
 * The registration cache (regcache.h): a hash of registrations by file, an
 * LRU list of the idle ones, and the pinned-bytes budget, under one mutex.
 * Registering and releasing (slow: the kernel pins or unpins every page)
 * happen outside the lock; the budget is reserved before a registration
 * and given back only after its release, so the count never falls below
 * what is really pinned.
 */
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "regcache.h"

#define BUCKETS 64

struct regcache_ent {
	struct regcache_ent *next;            /* in its bucket, while linked */
	struct regcache_ent *older, *newer;   /* in the LRU list, while idle */
	void *dom;
	dev_t dev;
	ino_t ino;
	off_t off;
	uint64_t len;
	uint64_t last; /* where in it the range last got starts (sweeps test it) */
	unsigned flags;
	void *handle;
	uint8_t *base;
	unsigned refs;
	bool ready;  /* registered (else the getter is registering it) */
	bool linked; /* in its bucket: lookups may find it */
	bool testing; /* its user's valid() runs: lookups wait for the verdict */
	bool idle;   /* in the LRU list */
};

struct regcache {
	pthread_mutex_t lock;
	pthread_cond_t tested; /* an entry's valid() test ended */
	const struct regcache_ops *ops;
	void *ctx;
	uint64_t cap, pinned, peak;
	unsigned max_idle, nidle;
	uint64_t nentries; /* linked */
	uint64_t nlive;    /* not yet released, linked or not */
	struct regcache_ent *buckets[BUCKETS];
	struct regcache_ent lru; /* sentinel: lru.newer is the oldest idle one */
	uint64_t hits, registrations, evictions, invalidated, stale, refused, failed;
};

static unsigned bucket_of(dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4full);

	return (unsigned)(h >> 58) % BUCKETS;
}

static void lru_remove(struct regcache *rc, struct regcache_ent *e)
{
	assert(e->idle);
	e->older->newer = e->newer;
	e->newer->older = e->older;
	e->idle = false;
	rc->nidle--;
}

/* Into the LRU list as its newest entry, or back among its oldest. */
static void lru_push(struct regcache *rc, struct regcache_ent *e, bool oldest)
{
	assert(!e->idle);
	e->older = oldest ? &rc->lru : rc->lru.older;
	e->newer = e->older->newer;
	e->older->newer = e;
	e->newer->older = e;
	e->idle = true;
	rc->nidle++;
}

static void unlink_ent(struct regcache *rc, struct regcache_ent *e)
{
	struct regcache_ent **pp = &rc->buckets[bucket_of(e->dev, e->ino)];

	if (!e->linked)
		return;
	for (; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	e->linked = false;
	rc->nentries--;
}

/*
 * Releases e, which nobody uses and nothing can find any more: the
 * callback without the lock (held on entry and on return), then its bytes
 * go back to the budget.
 */
static void release(struct regcache *rc, struct regcache_ent *e)
{
	assert(!e->refs && !e->linked && !e->idle);
	pthread_mutex_unlock(&rc->lock);
	if (e->ready)
		rc->ops->unreg(rc->ctx, e->dom, e->handle);
	pthread_mutex_lock(&rc->lock);
	if (e->flags & REGCACHE_PIN) {
		assert(rc->pinned >= e->len);
		rc->pinned -= e->len;
	}
	rc->nlive--;
	free(e);
}

/* The oldest idle registration (one that pins, with pin_only). */
static struct regcache_ent *oldest_idle(struct regcache *rc, bool pin_only)
{
	for (struct regcache_ent *e = rc->lru.newer; e != &rc->lru; e = e->newer)
		if (!pin_only || (e->flags & REGCACHE_PIN))
			return e;
	return NULL;
}

static void evict(struct regcache *rc, struct regcache_ent *e)
{
	lru_remove(rc, e);
	unlink_ent(rc, e);
	rc->evictions++;
	release(rc, e);
}

/* Evicts the oldest idle registrations beyond max_idle. Lock held. */
static void trim_idle(struct regcache *rc)
{
	struct regcache_ent *old;

	while (rc->nidle > rc->max_idle && (old = oldest_idle(rc, false)))
		evict(rc, old);
}

/* Charges bytes, evicting idle pinned registrations until they fit. Lock held. */
static int reserve(struct regcache *rc, uint64_t bytes)
{
	for (;;) {
		struct regcache_ent *victim;

		/* More than the cap: evicting would only empty the cache. */
		if (bytes > rc->cap)
			return -ENOSPC;
		if (rc->pinned <= rc->cap - bytes) {
			rc->pinned += bytes;
			if (rc->pinned > rc->peak)
				rc->peak = rc->pinned;
			return 0;
		}
		victim = oldest_idle(rc, true);
		if (!victim)
			return -ENOSPC;
		evict(rc, victim);
	}
}

struct regcache *regcache_new(const struct regcache_ops *ops, void *ctx, uint64_t cap,
			      unsigned max_idle)
{
	struct regcache *rc = calloc(1, sizeof(*rc));

	if (!rc)
		return NULL;
	pthread_mutex_init(&rc->lock, NULL);
	pthread_cond_init(&rc->tested, NULL);
	rc->ops = ops;
	rc->ctx = ctx;
	rc->cap = cap;
	rc->max_idle = max_idle;
	rc->lru.newer = rc->lru.older = &rc->lru;
	return rc;
}

static void drop_matching(struct regcache *rc, bool (*match)(const struct regcache_ent *,
							      const void *), const void *arg)
{
	pthread_mutex_lock(&rc->lock);
	for (unsigned b = 0; b < BUCKETS; b++) {
		struct regcache_ent **pp = &rc->buckets[b];

		while (*pp) {
			struct regcache_ent *e = *pp;

			if (!match(e, arg)) {
				pp = &e->next;
				continue;
			}
			unlink_ent(rc, e);
			rc->invalidated++;
			/* In use (or being registered): its last put releases it. */
			if (e->refs)
				continue;
			lru_remove(rc, e);
			release(rc, e); /* drops the lock: start the bucket over */
			pp = &rc->buckets[b];
		}
	}
	pthread_mutex_unlock(&rc->lock);
}

static bool match_all(const struct regcache_ent *e, const void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

void regcache_destroy(struct regcache *rc)
{
	if (!rc)
		return;
	drop_matching(rc, match_all, NULL);
	assert(!rc->nlive && !rc->nidle); /* nothing in use */
	pthread_cond_destroy(&rc->tested);
	pthread_mutex_destroy(&rc->lock);
	free(rc);
}

static bool covers(const struct regcache_ent *e, const void *dom, dev_t dev, ino_t ino,
		   off_t off, uint64_t len, unsigned flags)
{
	return e->ready && e->dom == dom && e->dev == dev && e->ino == ino &&
	       (!(flags & REGCACHE_WRITE) || (e->flags & REGCACHE_WRITE)) && e->off <= off &&
	       (uint64_t)(off - e->off) + len <= e->len;
}

int regcache_get(struct regcache *rc, void *dom, int fd, off_t off, uint64_t len,
		 unsigned flags, struct regcache_ent **out)
{
	long page = sysconf(_SC_PAGESIZE);
	struct regcache_ent *e;
	struct stat st;
	void *handle = NULL;
	uint8_t *base = NULL;
	unsigned b;
	int r;

	if (off < 0 || !len || page <= 0 || off % page || len % (uint64_t)page)
		return -EINVAL;
	/* The range must be the file's own: never a byte past its end. */
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)off > (uint64_t)st.st_size ||
	    len > (uint64_t)st.st_size - (uint64_t)off)
		return -EINVAL;
	b = bucket_of(st.st_dev, st.st_ino);
	pthread_mutex_lock(&rc->lock);
	for (;;) {
		bool was_idle, ok = true;

		for (e = rc->buckets[b]; e; e = e->next)
			if (covers(e, dom, st.st_dev, st.st_ino, off, len, flags))
				break;
		if (!e)
			break;
		/* Being tested (a sweep, another get): its verdict decides
		 * whether it is reused or made anew, so wait for it rather
		 * than register the range a second time. */
		if (e->testing) {
			pthread_cond_wait(&rc->tested, &rc->lock);
			continue;
		}
		was_idle = e->idle;
		if (was_idle)
			lru_remove(rc, e);
		e->refs++;
		/* A registration kept while idle may have gone stale meanwhile
		 * (its pages punched out of the file): the user's test says. */
		if (was_idle && rc->ops->valid) {
			e->testing = true; /* other lookups wait meanwhile */
			pthread_mutex_unlock(&rc->lock);
			ok = rc->ops->valid(rc->ctx, dom, e->handle, (uint64_t)(off - e->off), len);
			pthread_mutex_lock(&rc->lock);
			e->testing = false;
			pthread_cond_broadcast(&rc->tested);
		}
		if (ok) {
			rc->hits++;
			e->last = (uint64_t)(off - e->off);
			pthread_mutex_unlock(&rc->lock);
			*out = e;
			return 0;
		}
		unlink_ent(rc, e);
		rc->stale++;
		if (!--e->refs)
			release(rc, e);
	}
	if ((flags & REGCACHE_PIN) && reserve(rc, len) < 0) {
		rc->refused++;
		pthread_mutex_unlock(&rc->lock);
		return -ENOSPC;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		if (flags & REGCACHE_PIN)
			rc->pinned -= len;
		pthread_mutex_unlock(&rc->lock);
		return -ENOMEM;
	}
	/* Linked before it is registered, so that an invalidation meanwhile
	 * marks it too; lookups pass it over until it is ready. */
	*e = (struct regcache_ent){ .dom = dom, .dev = st.st_dev, .ino = st.st_ino, .off = off,
				    .len = len, .flags = flags, .refs = 1, .linked = true,
				    .next = rc->buckets[b] };
	rc->buckets[b] = e;
	rc->nentries++;
	rc->nlive++;
	pthread_mutex_unlock(&rc->lock);
	r = rc->ops->reg(rc->ctx, dom, fd, off, len, flags, &handle, &base);
	pthread_mutex_lock(&rc->lock);
	if (r < 0) {
		unlink_ent(rc, e);
		e->refs = 0;
		rc->failed++;
		release(rc, e); /* not ready: only the budget goes back */
		pthread_mutex_unlock(&rc->lock);
		return r;
	}
	e->handle = handle;
	e->base = base;
	e->ready = true;
	rc->registrations++;
	pthread_mutex_unlock(&rc->lock);
	*out = e;
	return 0;
}

void regcache_put(struct regcache *rc, struct regcache_ent *e)
{
	pthread_mutex_lock(&rc->lock);
	assert(e->refs > 0 && e->ready);
	if (--e->refs) {
		pthread_mutex_unlock(&rc->lock);
		return;
	}
	if (!e->linked || !(e->flags & REGCACHE_KEEP)) {
		unlink_ent(rc, e);
		release(rc, e);
		pthread_mutex_unlock(&rc->lock);
		return;
	}
	lru_push(rc, e, false);
	if (rc->ops->idle)
		rc->ops->idle(rc->ctx, e->dom, e->handle);
	trim_idle(rc);
	pthread_mutex_unlock(&rc->lock);
}

void regcache_sweep(struct regcache *rc, unsigned max)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	struct regcache_ent *took = NULL, *e, *next;

	if (!rc->ops->valid)
		return;
	pthread_mutex_lock(&rc->lock);
	/* Out of the list while tested, so that nothing evicts them meanwhile,
	 * and lookups wait for the verdict; chained newest first, so that
	 * putting each back at the oldest end keeps their order. */
	for (unsigned n = 0; n < max && (e = oldest_idle(rc, false)); n++) {
		lru_remove(rc, e);
		e->refs++;
		e->testing = true;
		e->newer = took;
		took = e;
	}
	pthread_mutex_unlock(&rc->lock);
	for (e = took; e; e = next) {
		bool ok;

		next = e->newer;
		ok = rc->ops->valid(rc->ctx, e->dom, e->handle, e->last, page);
		pthread_mutex_lock(&rc->lock);
		e->testing = false;
		pthread_cond_broadcast(&rc->tested);
		e->refs--;
		if (!ok && e->linked) {
			unlink_ent(rc, e);
			rc->stale++;
		}
		/* Back where it was; or stale, or invalidated meanwhile. */
		if (e->linked)
			lru_push(rc, e, true);
		else
			release(rc, e);
		trim_idle(rc); /* puts meanwhile may have filled the list */
		pthread_mutex_unlock(&rc->lock);
	}
}

uint8_t *regcache_addr(const struct regcache_ent *e, off_t off)
{
	assert(off >= e->off && (uint64_t)(off - e->off) <= e->len);
	return e->base + (off - e->off);
}

void *regcache_handle(const struct regcache_ent *e)
{
	return e->handle;
}

int regcache_charge(struct regcache *rc, uint64_t bytes)
{
	int r;

	pthread_mutex_lock(&rc->lock);
	r = reserve(rc, bytes);
	if (r < 0)
		rc->refused++;
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void regcache_uncharge(struct regcache *rc, uint64_t bytes)
{
	pthread_mutex_lock(&rc->lock);
	assert(rc->pinned >= bytes);
	rc->pinned -= bytes;
	pthread_mutex_unlock(&rc->lock);
}

struct file_key {
	dev_t dev;
	ino_t ino;
};

static bool match_file(const struct regcache_ent *e, const void *arg)
{
	const struct file_key *k = arg;

	return e->dev == k->dev && e->ino == k->ino;
}

void regcache_invalidate(struct regcache *rc, dev_t dev, ino_t ino)
{
	struct file_key k = { dev, ino };

	drop_matching(rc, match_file, &k);
}

static bool match_dom(const struct regcache_ent *e, const void *arg)
{
	/* Its link goes: nothing may use the domain any more. */
	assert(e->dom != arg || !e->refs);
	return e->dom == arg;
}

void regcache_invalidate_dom(struct regcache *rc, void *dom)
{
	drop_matching(rc, match_dom, dom);
}

uint64_t regcache_pinned_dom(struct regcache *rc, void *dom)
{
	uint64_t n = 0;

	pthread_mutex_lock(&rc->lock);
	for (unsigned b = 0; b < BUCKETS; b++)
		for (const struct regcache_ent *e = rc->buckets[b]; e; e = e->next)
			if (e->dom == dom && (e->flags & REGCACHE_PIN))
				n += e->len;
	pthread_mutex_unlock(&rc->lock);
	return n;
}

void regcache_stats(struct regcache *rc, struct regcache_stats *st)
{
	pthread_mutex_lock(&rc->lock);
	*st = (struct regcache_stats){ .pinned = rc->pinned, .pinned_peak = rc->peak,
				       .cap = rc->cap, .entries = rc->nentries, .idle = rc->nidle,
				       .hits = rc->hits, .registrations = rc->registrations,
				       .evictions = rc->evictions, .invalidated = rc->invalidated,
				       .stale = rc->stale,
				       .refused = rc->refused, .failed = rc->failed };
	pthread_mutex_unlock(&rc->lock);
}
