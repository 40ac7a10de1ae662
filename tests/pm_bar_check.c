/* SPDX-License-Identifier: MIT */
/*
 * pm_bar_check BDF_A BDF_B [SEED]: through the broker ($PAGEMAP_SOCKET),
 * move managed memory into real PCI BAR pools (region "bar2" of two devices
 * under one PCIe switch, path class PIX) and back, for the real-kernel test
 * on the pcie guest (tests/vm/tests/bar-migrate.sh).
 *
 * For a 16 MiB allocation of 2 MiB chunks and one of 64 KiB chunks, each
 * filled with seeded random data:
 *   host -> A   every chunk in A (pm_query), bytes_host == size, A's `used`
 *   A -> B      every chunk in B, bytes_direct == size (peer to peer)
 *   CPU reads   fault every chunk home (userfaultfd in libpagemap): every
 *               byte checked, every chunk in system memory, both pools empty
 * Then 80 MiB to the 64 MiB BAR A: -ENOSPC, exactly the chunks that fit are
 * in A (bytes_done == A's capacity), and every byte reads back.
 *
 * Prints one "ok ..." line per step, "FAIL: ..." naming what went wrong, and
 * a "throughput ..." line (MB/s of host->BAR, BAR->BAR, fault-back; under
 * TCG the numbers are only indicative). Exit 0 when everything held.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_pattern.h"
#include "pagemap.h"

#define MiB ((size_t)1 << 20)
#define SIZE (16 * MiB)
#define BIG (80 * MiB)

static int fails;

#define FAIL(...)                                   \
	do {                                        \
		fprintf(stderr, "FAIL: " __VA_ARGS__); \
		fputc('\n', stderr);                \
		fails++;                            \
	} while (0)

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double mbs(size_t bytes, double s)
{
	return s > 0 ? (double)bytes / 1e6 / s : 0;
}

/* Every byte against the pattern; the first mismatch is reported. */
static int verify(const char *what, const uint64_t *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		if (p[i] != check_word(seed, i)) {
			FAIL("%s: data differs at byte %zu: %016" PRIx64 ", want %016" PRIx64, what,
			     i * 8, p[i], check_word(seed, i));
			return -1;
		}
	return 0;
}

/* Reads one byte of every page: the first touch of each chunk faults it home. */
static void touch(const volatile uint8_t *p, size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	uint8_t sink = 0;

	for (size_t i = 0; i < len; i += page)
		sink ^= p[i];
	(void)sink;
}

/*
 * The chunks of [p, p + len): the first `in` of them in pagemap id, the rest
 * in system memory (pm_query).
 */
static int check_where(struct pm_client *c, const char *what, const void *p, size_t len,
		       size_t chunk, uint64_t id, size_t in)
{
	size_t n = len / chunk, bad = 0, first = 0;
	uint64_t *ids = calloc(n, sizeof(*ids));
	int r;

	if (!ids) {
		FAIL("%s: out of memory", what);
		return -1;
	}
	r = pm_query(c, p, len, ids, n);
	if (r != (int)n) {
		FAIL("%s: pm_query returned %d, want %zu chunks", what, r, n);
		free(ids);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t want = i < in ? id : 0;

		if (ids[i] != want && !bad++)
			first = i;
	}
	if (bad)
		FAIL("%s: %zu of %zu chunks in the wrong pagemap (chunk %zu in %" PRIu64
		     ", want %" PRIu64 ")",
		     what, bad, n, first, ids[first], first < in ? id : 0);
	free(ids);
	return bad ? -1 : 0;
}

static uint64_t used_of(int fd)
{
	struct pagemap_info info;

	return pagemap_query(fd, &info) < 0 ? UINT64_MAX : info.used;
}

static void check_used(const char *what, const char *name, int fd, uint64_t want)
{
	uint64_t u = used_of(fd);

	if (u != want)
		FAIL("%s: %s used %" PRIu64 " bytes, want %" PRIu64, what, name, u, want);
}

struct bar {
	const char *bdf;
	int fd;
	struct pagemap_info info;
};

static int open_bar(struct pm_client *c, struct bar *b)
{
	int r;

	b->fd = pagemap_open(c, b->bdf, "bar2", 0);
	if (b->fd < 0) {
		FAIL("pagemap_open %s bar2: %s", b->bdf, strerror(-b->fd));
		return -1;
	}
	r = pagemap_query(b->fd, &b->info);
	if (r < 0) {
		FAIL("pagemap_query %s: %s", b->bdf, strerror(-r));
		return -1;
	}
	if (b->info.kind != PAGEMAP_KIND_PCI_BAR || b->info.used != 0 || b->info.capacity < SIZE) {
		FAIL("%s bar2: kind %u, capacity %" PRIu64 ", used %" PRIu64
		     ", want an empty pci-bar pool of at least %zu bytes",
		     b->bdf, b->info.kind, b->info.capacity, b->info.used, SIZE);
		return -1;
	}
	printf("ok open %s/bar2 id=%" PRIu64 " capacity=%" PRIu64 "\n", b->bdf, b->info.id,
	       b->info.capacity);
	return 0;
}

/* pm_migrate_batch of one range, timed; res is zeroed when the call fails early. */
static int migrate(struct pm_client *c, void *p, size_t len, int fd, struct pm_migrate_result *res,
		   double *secs)
{
	struct pm_migrate_range r = { .addr = p, .len = len, .pagemap_fd = fd };
	double t0 = now_s();
	int rc;

	memset(res, 0, sizeof(*res));
	rc = pm_migrate_batch(c, &r, 1, 0, res);
	*secs = now_s() - t0;
	return rc;
}

static void check_result(const char *what, int rc, const struct pm_migrate_result *res,
			 uint64_t done, uint64_t direct, uint64_t bounced, uint64_t host)
{
	if (rc < 0) {
		FAIL("%s: pm_migrate_batch: %s (status %d)", what, strerror(-rc), res->status);
		return;
	}
	if (res->status || res->bytes_done != done || res->bytes_direct != direct ||
	    res->bytes_bounced != bounced || res->bytes_host != host)
		FAIL("%s: result status %d done %" PRIu64 " direct %" PRIu64 " bounced %" PRIu64
		     " host %" PRIu64 ", want 0 %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64,
		     what, res->status, res->bytes_done, res->bytes_direct, res->bytes_bounced,
		     res->bytes_host, done, direct, bounced, host);
}

struct rates {
	double to_bar, bar_bar, back; /* MB/s */
};

/* host -> A -> B -> (CPU faults) host, for one allocation of SIZE bytes. */
static void round_trip(struct pm_client *c, struct bar *a, struct bar *b, unsigned shift,
		       uint64_t seed, struct rates *rt)
{
	size_t chunk = (size_t)1 << shift;
	struct pm_migrate_result res;
	char what[64];
	double t;
	void *m;
	int r, f0 = fails;

	r = pm_alloc(c, SIZE, PM_ALLOC_CHUNK_SHIFT(shift), &m);
	if (r < 0) {
		FAIL("pm_alloc %zu bytes, chunk %zu: %s", SIZE, chunk, strerror(-r));
		return;
	}
	check_fill(m, SIZE, seed);

	snprintf(what, sizeof(what), "%zu KiB chunks, host -> %s", chunk >> 10, a->bdf);
	r = migrate(c, m, SIZE, a->fd, &res, &t);
	rt->to_bar = mbs(SIZE, t);
	check_result(what, r, &res, SIZE, 0, 0, SIZE);
	check_where(c, what, m, SIZE, chunk, a->info.id, SIZE / chunk);
	check_used(what, a->bdf, a->fd, SIZE);
	if (fails == f0)
		printf("ok %s: %zu chunks in pagemap %" PRIu64 ", bytes_host %" PRIu64 "\n", what,
		       SIZE / chunk, a->info.id, res.bytes_host);

	f0 = fails;
	snprintf(what, sizeof(what), "%zu KiB chunks, %s -> %s", chunk >> 10, a->bdf, b->bdf);
	r = migrate(c, m, SIZE, b->fd, &res, &t);
	rt->bar_bar = mbs(SIZE, t);
	check_result(what, r, &res, SIZE, SIZE, 0, 0);
	check_where(c, what, m, SIZE, chunk, b->info.id, SIZE / chunk);
	check_used(what, a->bdf, a->fd, 0);
	check_used(what, b->bdf, b->fd, SIZE);
	if (fails == f0)
		printf("ok %s: %zu chunks in pagemap %" PRIu64 ", bytes_direct %" PRIu64 "\n", what,
		       SIZE / chunk, b->info.id, res.bytes_direct);

	f0 = fails;
	snprintf(what, sizeof(what), "%zu KiB chunks, fault-back from %s", chunk >> 10, b->bdf);
	t = now_s();
	touch(m, SIZE);
	rt->back = mbs(SIZE, now_s() - t);
	verify(what, m, SIZE, seed);
	check_where(c, what, m, SIZE, chunk, 0, 0);
	check_used(what, b->bdf, b->fd, 0);
	if (fails == f0)
		printf("ok %s: every byte intact, %zu chunks in system memory\n", what,
		       SIZE / chunk);
	r = pm_free(c, m);
	if (r < 0)
		FAIL("pm_free: %s", strerror(-r));
}

/* More than the pool holds: -ENOSPC, what fit is in A, nothing is lost. */
static void overfill(struct pm_client *c, struct bar *a, uint64_t seed)
{
	const size_t chunk = 2 * MiB, fit = a->info.capacity / chunk;
	struct pm_migrate_result res;
	const char *what = "80 MiB -> 64 MiB BAR";
	double t;
	void *m;
	int r, f0 = fails;

	if (a->info.capacity >= BIG) {
		FAIL("%s: %s's BAR holds %" PRIu64 " bytes, the test wants less than %zu", what,
		     a->bdf, a->info.capacity, BIG);
		return;
	}
	r = pm_alloc(c, BIG, 0, &m);
	if (r < 0) {
		FAIL("pm_alloc %zu bytes: %s", BIG, strerror(-r));
		return;
	}
	check_fill(m, BIG, seed);
	r = migrate(c, m, BIG, a->fd, &res, &t);
	if (r != -ENOSPC || res.status != -ENOSPC)
		FAIL("%s: pm_migrate_batch returned %d (%s), status %d, want -ENOSPC", what, r,
		     strerror(-r), res.status);
	if (res.bytes_done != fit * chunk || res.bytes_host != res.bytes_done ||
	    res.bytes_direct || res.bytes_bounced)
		FAIL("%s: done %" PRIu64 " host %" PRIu64 " direct %" PRIu64 " bounced %" PRIu64
		     ", want done == host == %zu",
		     what, res.bytes_done, res.bytes_host, res.bytes_direct, res.bytes_bounced,
		     fit * chunk);
	check_where(c, what, m, BIG, chunk, a->info.id, fit);
	check_used(what, a->bdf, a->fd, fit * chunk);
	if (fails == f0)
		printf("ok %s: -ENOSPC after %zu of %zu chunks, bytes_done %" PRIu64 "\n", what,
		       fit, BIG / chunk, res.bytes_done);
	f0 = fails;
	touch(m, BIG); /* every chunk home before the checks, whatever the data says */
	verify("80 MiB after -ENOSPC, fault-back", m, BIG, seed);
	check_where(c, "80 MiB after fault-back", m, BIG, chunk, 0, 0);
	check_used("80 MiB after fault-back", a->bdf, a->fd, 0);
	if (fails == f0)
		printf("ok %s: every byte intact after fault-back, %s empty\n", what, a->bdf);
	r = pm_free(c, m);
	if (r < 0)
		FAIL("pm_free: %s", strerror(-r));
}

int main(int argc, char **argv)
{
	struct bar a = { .fd = -1 }, b = { .fd = -1 };
	struct rates big = { 0 }, small = { 0 };
	struct pm_client *c;
	uint64_t seed;
	int r;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: pm_bar_check BDF_A BDF_B [SEED]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0); /* "ok" and "FAIL" lines in order in one file */
	a.bdf = argv[1];
	b.bdf = argv[2];
	/* A fresh seed per run: stale BAR contents from an earlier run cannot pass. */
	seed = argc > 3 ? strtoull(argv[3], NULL, 0)
			: (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	printf("seed %" PRIu64 "\n", seed);
	r = pm_connect(NULL, &c);
	if (r < 0) {
		FAIL("pm_connect: %s", strerror(-r));
		return 1;
	}
	if (open_bar(c, &a) < 0 || open_bar(c, &b) < 0)
		return 1;
	round_trip(c, &a, &b, 21, seed, &big);
	round_trip(c, &a, &b, 16, seed + 1, &small);
	overfill(c, &a, seed + 2);
	printf("throughput MB/s: 2 MiB chunks host->BAR %.0f, BAR->BAR %.0f, fault-back %.0f;"
	       " 64 KiB chunks %.0f, %.0f, %.0f\n",
	       big.to_bar, big.bar_bar, big.back, small.to_bar, small.bar_bar, small.back);
	close(a.fd);
	close(b.fd);
	pm_disconnect(c);
	if (fails)
		fprintf(stderr, "pm_bar_check: %d check(s) failed (seed %" PRIu64 ")\n", fails,
			seed);
	return fails ? 1 : 0;
}
