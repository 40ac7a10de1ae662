/* SPDX-License-Identifier: MIT */
/*
 * GPU pools under injected driver faults, against a broker running on the
 * SIMULATED CUDA driver (tests/fake_cuda.c; tests/gpu_sim_test.sh starts a
 * fresh broker per case with the FAKE_CUDA_FAIL* setting named here):
 *   htod      cuMemcpyHtoD:3      a migration to cuda0 fails (-EIO), no byte
 *             (or cuCtxSetCurrent  is lost, a later migration works
 *             in a copy worker)
 *   dtoh      cuMemcpyDtoH:2      the move home fails (-EIO), the chunk stays
 *                                 on cuda0 with its data, a retry succeeds
 *   dead      DtoH fails from the 3rd call, HtoD from the 9th: prints "ready"
 *             once 16 MiB sit on cuda0, waits for the revoke of cuda0 (the
 *             script runs pmctl revoke), then every chunk must be home with
 *             its data or marked -EIO: never silently zeros
 *   openfail  cuMemAlloc:1:CUDA_ERROR_OUT_OF_MEMORY,cuMemHostRegister:1:
 *             opening cuda0 fails twice (-ENOMEM, then -EIO), then works
 * and without faults, for the copy engine's counters (the script reads
 * them with pmctl stats):
 *   trips N [SHIFT]  N round trips of 16 MiB host -> cuda0 -> host, each
 *             with new data written by the CPU in between, every word
 *             checked; 2 MiB chunks, or 1 << SHIFT (21..24)
 *   replica   READ_MOSTLY: 3 times a replica to cuda0 (the host pages stay)
 *             that a CPU write of every chunk then collapses; then without
 *             the advice twice to cuda0 and home, with new data in between:
 *             the same host pages go out again and again, then are punched
 *             and come back as new ones. Exits 77 where the kernel cannot
 *             write-protect shmem (no READ_MOSTLY).
 * Prints "ok ..." or "FAIL ..." lines; exits 0, or 1 on any failure.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_pattern.h"
#include "check_report.h"
#include "pagemap.h"

#define LEN (16u << 20)
#define CHUNK (2u << 20)
#define NCHUNKS (LEN / CHUNK)
#define SEED 7


static uint64_t id_of(int fd)
{
	struct pagemap_info info;

	return pagemap_query(fd, &info) == 0 ? info.id : 0;
}

/* Per chunk: where it is (pagemap id, 0 home) and its last transfer error. */
static int chunks(struct pm_client *c, const void *a, uint64_t *where, int *err)
{
	struct pm_range runs[NCHUNKS];
	int n = pm_query_range(c, a, LEN, runs, NCHUNKS);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		size_t first = (size_t)((const uint8_t *)runs[i].addr - (const uint8_t *)a) / CHUNK;

		for (size_t k = first; k < first + runs[i].len / CHUNK && k < NCHUNKS; k++) {
			where[k] = runs[i].resident;
			err[k] = runs[i].error;
		}
	}
	return 0;
}

static size_t bad_in_chunk(const void *a, size_t k)
{
	return check_bad_words(a, k * (CHUNK / 8), CHUNK / 8, SEED);
}

static void *setup(struct pm_client *c)
{
	void *a;

	if (pm_alloc(c, LEN, PM_ALLOC_CHUNK_SHIFT(21), &a) < 0) {
		FAIL("pm_alloc");
		return NULL;
	}
	check_fill(a, LEN, SEED);
	return a;
}

/* Moves to cuda0 and home again must both work, with every word intact. */
static void round_trip_ok(struct pm_client *c, void *a, int fd, const char *what)
{
	uint64_t ids[NCHUNKS];
	int r = pm_migrate(c, a, LEN, fd, 0);

	if (r || pm_query(c, a, LEN, ids, NCHUNKS) != NCHUNKS || ids[0] != id_of(fd) ||
	    ids[NCHUNKS - 1] != id_of(fd)) {
		FAIL("%s: migration to cuda0: %d", what, r);
		return;
	}
	r = pm_migrate(c, a, LEN, PM_FD_SYSTEM, 0);
	if (r) {
		FAIL("%s: migration home: %d", what, r);
		return;
	}
	if (check_bad_words(a, 0, LEN / 8, SEED))
		FAIL("%s: data differs after the round trip", what);
	else
		OK("%s: round trip host -> cuda0 -> host, every word intact", what);
}

static void htod(struct pm_client *c, int fd)
{
	uint64_t where[NCHUNKS] = { 0 };
	int err[NCHUNKS] = { 0 }, r, home = 0, failed = 0;
	void *a = setup(c);

	if (!a)
		return;
	r = pm_migrate(c, a, LEN, fd, 0);
	if (r != -EIO)
		FAIL("migration with a failing copy to cuda0 returned %d, not -EIO", r);
	else
		OK("migration with a failing copy to cuda0: -EIO");
	if (chunks(c, a, where, err) < 0) {
		FAIL("pm_query_range");
		return;
	}
	for (size_t k = 0; k < NCHUNKS; k++) {
		home += !where[k];
		failed += err[k] == -EIO;
		if (err[k] && where[k])
			FAIL("chunk %zu marked %d yet on pagemap %llu", k, err[k],
			     (unsigned long long)where[k]);
	}
	if (!failed || !home)
		FAIL("no chunk left home marked -EIO (%d home, %d marked)", home, failed);
	else
		OK("%d chunk(s) stayed home, %d marked -EIO in pm_query_range", home, failed);
	/* Chunks that made it come back by fault; those that did not never left. */
	if (check_bad_words(a, 0, LEN / 8, SEED))
		FAIL("data differs after the failed migration");
	else
		OK("every word intact after the failed migration");
	round_trip_ok(c, a, fd, "after the fault");
	pm_free(c, a);
}

static void dtoh(struct pm_client *c, int fd)
{
	uint64_t where[NCHUNKS] = { 0 };
	int err[NCHUNKS] = { 0 }, r, away = 0;
	void *a = setup(c);

	if (!a)
		return;
	r = pm_migrate(c, a, LEN, fd, 0);
	if (r) {
		FAIL("migration to cuda0: %d", r);
		return;
	}
	/* Not a word read until the retry: a read would fault the chunk home. */
	r = pm_migrate(c, a, LEN, PM_FD_SYSTEM, 0);
	if (r != -EIO)
		FAIL("move home with a failing cuMemcpyDtoH returned %d, not -EIO", r);
	else
		OK("move home with a failing cuMemcpyDtoH: -EIO");
	if (chunks(c, a, where, err) < 0) {
		FAIL("pm_query_range");
		return;
	}
	for (size_t k = 0; k < NCHUNKS; k++)
		if (where[k]) {
			away++;
			if (where[k] != id_of(fd))
				FAIL("chunk %zu on pagemap %llu, not cuda0", k,
				     (unsigned long long)where[k]);
		}
	if (!away)
		FAIL("no chunk stayed on cuda0 after the failed copy home");
	else
		OK("%d chunk(s) stayed on cuda0 (not lost)", away);
	r = pm_migrate(c, a, LEN, PM_FD_SYSTEM, 0);
	if (r || pm_query(c, a, LEN, where, NCHUNKS) != NCHUNKS)
		FAIL("retry of the move home: %d", r);
	else if (check_bad_words(a, 0, LEN / 8, SEED))
		FAIL("data differs after the retry (lost or zeros)");
	else
		OK("retry brought everything home, every word intact");
	for (size_t k = 0; k < NCHUNKS; k++)
		if (where[k])
			FAIL("chunk %zu still away after the retry", k);
	round_trip_ok(c, a, fd, "after the fault");
	pm_free(c, a);
}

static void dead(struct pm_client *c, int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct pagemap_event ev;
	uint64_t where[NCHUNKS] = { 0 };
	int err[NCHUNKS] = { 0 }, r, lost = 0, home = 0;
	void *a = setup(c);

	if (!a)
		return;
	r = pm_migrate(c, a, LEN, fd, 0);
	if (r) {
		FAIL("migration to cuda0: %d", r);
		return;
	}
	printf("ready\n");
	fflush(stdout);
	if (poll(&p, 1, 60000) != 1 || pagemap_read_event(fd, &ev) < 0 ||
	    ev.type != PAGEMAP_EVENT_REVOKED) {
		FAIL("no revoke of cuda0 within 60 s");
		return;
	}
	OK("cuda0 revoked (reason %d)", ev.reason);
	if (chunks(c, a, where, err) < 0) {
		FAIL("pm_query_range");
		return;
	}
	for (size_t k = 0; k < NCHUNKS; k++) {
		if (where[k])
			FAIL("chunk %zu still on pagemap %llu after the revoke", k,
			     (unsigned long long)where[k]);
		if (err[k] == -EIO) {
			lost++;
		} else if (err[k]) {
			FAIL("chunk %zu marked %d, not -EIO", k, err[k]);
		} else if (bad_in_chunk(a, k)) {
			/* The one outcome never allowed: bad data, unmarked. */
			FAIL("chunk %zu came home with %zu wrong words and no error", k,
			     bad_in_chunk(a, k));
		} else {
			home++;
		}
	}
	printf("lost %d evacuated %d\n", lost, home);
	if (lost)
		OK("chunks that could not be evacuated are marked -EIO, the rest intact");
	pm_free(c, a);
}

/* Away to cuda0 and home, checked at both ends (n chunks); 0 or -1. */
static int trip_n(struct pm_client *c, void *a, int fd, uint64_t seed, const char *what, int n)
{
	uint64_t ids[NCHUNKS];
	int r = pm_migrate(c, a, LEN, fd, 0);

	if (r || pm_query(c, a, LEN, ids, NCHUNKS) != n || ids[0] != id_of(fd) ||
	    ids[n - 1] != id_of(fd)) {
		FAIL("%s: migration to cuda0: %d", what, r);
		return -1;
	}
	r = pm_migrate(c, a, LEN, PM_FD_SYSTEM, 0);
	if (r || pm_query(c, a, LEN, ids, NCHUNKS) != n || ids[0] || ids[n - 1]) {
		FAIL("%s: migration home: %d", what, r);
		return -1;
	}
	if (check_bad_words(a, 0, LEN / 8, seed)) {
		FAIL("%s: %zu words differ after host -> cuda0 -> host", what,
		     check_bad_words(a, 0, LEN / 8, seed));
		return -1;
	}
	return 0;
}

static int trip(struct pm_client *c, void *a, int fd, uint64_t seed, const char *what)
{
	return trip_n(c, a, fd, seed, what, NCHUNKS);
}

static void trips(struct pm_client *c, int fd, int n, unsigned shift)
{
	void *a;
	int i;

	if (pm_alloc(c, LEN, PM_ALLOC_CHUNK_SHIFT(shift), &a) < 0) {
		FAIL("pm_alloc");
		return;
	}
	for (i = 0; i < n; i++) {
		char what[32];

		/* New data each time, in the pages that came home. */
		check_fill(a, LEN, SEED + (uint64_t)i);
		snprintf(what, sizeof(what), "trip %d", i + 1);
		if (trip_n(c, a, fd, SEED + (uint64_t)i, what, (int)(LEN >> shift)))
			break;
	}
	if (i == n)
		OK("%d round trips host -> cuda0 -> host of %u MiB in %u MiB chunks, every word "
		   "intact", n, LEN >> 20, (1u << shift) >> 20);
	pm_free(c, a);
}

static int replica(struct pm_client *c, int fd)
{
	uint64_t ids[NCHUNKS];
	void *a = setup(c);
	int r, i;

	if (!a)
		return 1;
	r = pm_madvise(c, a, LEN, PM_ADV_READ_MOSTLY, PM_FD_SYSTEM);
	if (r == -EOPNOTSUPP) {
		printf("skip: READ_MOSTLY needs userfaultfd write protection of shmem\n");
		pm_free(c, a);
		return 77;
	}
	if (r != PM_ADV_APPLIED) {
		FAIL("READ_MOSTLY advice: %d", r);
		pm_free(c, a);
		return 1;
	}
	for (i = 0; i < 3; i++) {
		r = pm_migrate(c, a, LEN, fd, 0);
		if (r || pm_query(c, a, LEN, ids, NCHUNKS) != NCHUNKS || ids[0] != id_of(fd)) {
			FAIL("replica %d to cuda0: %d", i + 1, r);
			break;
		}
		if (check_bad_words(a, 0, LEN / 8, SEED)) {
			FAIL("replica %d: the host copy differs", i + 1);
			break;
		}
		/* A write to each chunk ends its replica: home, with its pages. */
		for (size_t k = 0; k < NCHUNKS; k++) {
			volatile uint64_t *w = (uint64_t *)a + k * (CHUNK / 8);

			*w = *w;
		}
		if (pm_query(c, a, LEN, ids, NCHUNKS) != NCHUNKS || ids[0] || ids[NCHUNKS - 1]) {
			FAIL("replica %d: a write did not bring the chunks home", i + 1);
			break;
		}
	}
	if (i == 3)
		OK("3 replicas to cuda0 out of the same host pages, ended by writes");
	r = pm_madvise(c, a, LEN, PM_ADV_UNSET_READ_MOSTLY, PM_FD_SYSTEM);
	if (r != PM_ADV_APPLIED)
		FAIL("unsetting READ_MOSTLY: %d", r);
	else if (!trip(c, a, fd, SEED, "after the replicas") &&
		 (check_fill(a, LEN, SEED + 1), !trip(c, a, fd, SEED + 1, "with new pages")))
		OK("twice to cuda0 and home after the replicas, new data in new pages, every word "
		   "intact");
	pm_free(c, a);
	return 0;
}

static void openfail(struct pm_client *c)
{
	static const int want[2] = { -ENOMEM, -EIO };
	void *a;
	int fd;

	for (int i = 0; i < 2; i++) {
		fd = pagemap_open(c, "cuda0", "vram", 0);
		if (fd != want[i]) {
			FAIL("open %d of cuda0 with pool creation failing: %d, want %d", i + 1,
			     fd, want[i]);
			if (fd >= 0)
				close(fd);
		} else {
			OK("open %d of cuda0 with pool creation failing: %s", i + 1,
			   strerror(-fd));
		}
	}
	fd = pagemap_open(c, "cuda0", "vram", 0);
	if (fd < 0) {
		FAIL("open of cuda0 once the driver works again: %d", fd);
		return;
	}
	OK("cuda0 opens once the driver works again");
	a = setup(c);
	if (a) {
		round_trip_ok(c, a, fd, "after the failed opens");
		pm_free(c, a);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	const char *mode = argc >= 2 ? argv[1] : "";
	int fd = -1, r, n = 0, rc = 0, shift = 21;
	struct pm_client *c;

	if (!strcmp(mode, "trips") && (argc == 3 || argc == 4)) {
		n = atoi(argv[2]);
		if (argc == 4)
			shift = atoi(argv[3]);
	}
	if ((strcmp(mode, "htod") && strcmp(mode, "dtoh") && strcmp(mode, "dead") &&
	     strcmp(mode, "openfail") && strcmp(mode, "replica") && strcmp(mode, "trips")) ||
	    (!strcmp(mode, "trips") ? n < 1 || n > 1000 || shift < 21 || shift > 24 : argc != 2)) {
		fprintf(stderr, "usage: pm_gpu_fault_check htod|dtoh|dead|openfail|replica|"
				"trips N [SHIFT]\n");
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0) {
		fprintf(stderr, "pm_gpu_fault_check: no broker: %s\n", strerror(-r));
		return 1;
	}
	if (strcmp(mode, "openfail")) {
		fd = pagemap_open(c, "cuda0", "vram", 0);
		if (fd < 0) {
			fprintf(stderr, "pm_gpu_fault_check: cuda0: %s\n", strerror(-fd));
			pm_disconnect(c);
			return 1;
		}
	}
	if (!strcmp(mode, "htod"))
		htod(c, fd);
	else if (!strcmp(mode, "dtoh"))
		dtoh(c, fd);
	else if (!strcmp(mode, "dead"))
		dead(c, fd);
	else if (!strcmp(mode, "trips"))
		trips(c, fd, n, (unsigned)shift);
	else if (!strcmp(mode, "replica"))
		rc = replica(c, fd);
	else
		openfail(c);
	if (fd >= 0)
		close(fd);
	pm_disconnect(c);
	return failures ? 1 : rc;
}
