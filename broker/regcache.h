/* SPDX-License-Identifier: MIT */
/*
 * A registration cache: ranges of client memory (an allocation's memfd)
 * registered with a DMA engine so that it moves their bytes itself, without
 * a copy into staging buffers first. Generic over the engine: the verbs
 * engine registers memory regions with a protection domain, the CUDA
 * engine host memory with a GPU pool's context.
 *
 * Keys are (domain, the memfd's st_dev and st_ino, offset range, access),
 * never the fd number, which the loop thread may close and reuse meanwhile.
 * A transfer takes a reference for as long as the device may touch the
 * memory; the last put either keeps the registration for later (when its
 * getter said REGCACHE_KEEP: the loop thread's invalidations and the LRU
 * bound it) or releases it at once.
 *
 * Pinned bytes (registrations made with REGCACHE_PIN, and whatever else a
 * user charges, such as the verbs engine's exported arenas and transfer
 * buffers) never exceed the cap: idle registrations are evicted, least
 * recently used first, to make room, and a request that still does not fit
 * fails with -ENOSPC (the engine then stages through its buffers).
 *
 * Thread-safe: copy workers get and put concurrently; the loop thread
 * invalidates (an allocation freed, a link torn down). A registration
 * invalidated while in use is released when its last user puts it.
 * Callbacks run without the cache's lock, except idle (see below).
 */
#ifndef PAGEMAP_REGCACHE_H
#define PAGEMAP_REGCACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct regcache;
struct regcache_ent;

#define REGCACHE_PIN 0x1u   /* the registration pins its pages: charged to the cap */
#define REGCACHE_KEEP 0x2u  /* it may stay registered while idle (safe to hold) */
#define REGCACHE_WRITE 0x4u /* the device writes into it (else it only reads) */

struct regcache_ops {
	/*
	 * Registers len bytes of fd at off (page aligned) in dom for the device
	 * to read, or also write with REGCACHE_WRITE: *handle for the other
	 * callbacks and *base, the address of the range's first byte as the
	 * device is told it. 0 or -errno. fd is the caller's, borrowed: the
	 * registration must not depend on it staying open.
	 */
	int (*reg)(void *ctx, void *dom, int fd, off_t off, uint64_t len, unsigned flags,
		   void **handle, uint8_t **base);
	void (*unreg)(void *ctx, void *dom, void *handle);
	/* Optional: a kept registration goes idle (called under the lock; keep it short). */
	void (*idle)(void *ctx, void *dom, void *handle);
	/*
	 * Optional: whether bytes [at, at + len) of a kept registration found
	 * idle are still the file's pages (pinned ones are not once they were
	 * punched out or replaced); false releases it. A get asks about the
	 * range it wants (then registers it anew), a sweep about one page.
	 */
	bool (*valid)(void *ctx, void *dom, void *handle, uint64_t at, uint64_t len);
};

struct regcache_stats {
	uint64_t pinned;      /* bytes charged now (registrations and others) */
	uint64_t pinned_peak; /* the most ever charged at once */
	uint64_t cap;
	uint64_t entries, idle; /* registrations, and those not in use */
	uint64_t hits, registrations, evictions, invalidated;
	uint64_t stale;   /* kept registrations found stale (valid said so) */
	uint64_t refused; /* gets that failed for the cap (-ENOSPC) */
	uint64_t failed;  /* gets whose registration failed otherwise */
};

/* max_idle: kept idle registrations at most (LRU beyond). NULL when out of memory. */
struct regcache *regcache_new(const struct regcache_ops *ops, void *ctx, uint64_t cap,
			      unsigned max_idle);
/* Every registration is released; none may be in use. Accepts NULL. */
void regcache_destroy(struct regcache *rc);

/*
 * A registration covering [off, off + len) of fd (the memfd whose st_dev
 * and st_ino key it) in dom, with at least the access flags ask for:
 * a cached one, or a new one (evicting idle ones to stay under the cap).
 * *out holds a reference until regcache_put. 0, -ENOSPC (over the cap),
 * -EINVAL (not page aligned, past the end of the file) or the reg
 * callback's error; *out untouched on failure.
 */
int regcache_get(struct regcache *rc, void *dom, int fd, off_t off, uint64_t len,
		 unsigned flags, struct regcache_ent **out);
void regcache_put(struct regcache *rc, struct regcache_ent *e);
/* Where byte off of the file is, as the device addresses it; and the handle. */
uint8_t *regcache_addr(const struct regcache_ent *e, off_t off);
void *regcache_handle(const struct regcache_ent *e);

/* Pinned memory that is not a registration of the cache (arenas, buffers):
 * 0, or -ENOSPC when even evicting every idle registration leaves no room. */
int regcache_charge(struct regcache *rc, uint64_t bytes);
void regcache_uncharge(struct regcache *rc, uint64_t bytes);

/*
 * Tests the max least recently used idle registrations with valid, and
 * releases the stale ones, so that pages a user drops after their copy
 * (the CUDA engine punches a chunk out of the file once it is on the
 * device) are not kept pinned until the LRU or a get reaches them. Only
 * one page of each is tested, the first of the range last got: cheap
 * enough to sweep before every transfer, and a get tests its whole range.
 */
void regcache_sweep(struct regcache *rc, unsigned max);

/* Every registration of the file (an allocation freed, its session gone). */
void regcache_invalidate(struct regcache *rc, dev_t dev, ino_t ino);
/* Every registration in dom (its link torn down); none may be in use or
 * being swept. */
void regcache_invalidate_dom(struct regcache *rc, void *dom);
/* Bytes pinned by registrations in dom. */
uint64_t regcache_pinned_dom(struct regcache *rc, void *dom);
void regcache_stats(struct regcache *rc, struct regcache_stats *st);
#endif
