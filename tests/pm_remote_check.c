/* SPDX-License-Identifier: MIT */
/*
 * Migration to a peer broker's memory, checked end to end (tests/vm/tests/
 * rdma-peers.sh runs it in a guest with soft-RoCE):
 *
 *   pm_remote_check REMOTE            seeded data to REMOTE and back by CPU
 *                                     faults, 2 MiB and 64 KiB chunks; more
 *                                     than REMOTE holds: -ENOSPC, nothing lost
 *   pm_remote_check --killed REMOTE   a migration the test kills the peer
 *                                     (or cuts the link) under: it fails, the
 *                                     pagemap is revoked,
 *                                     and every chunk that was not on the peer
 *                                     keeps its data; chunks lost with the peer
 *                                     say -EIO
 *
 * Prints "ok ..." per step, "FAIL: ..." per failure, exits 1 on any.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check_pattern.h"
#include "check_report.h"
#include "pagemap.h"


static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int chunks_at(struct pm_client *c, void *a, size_t len, uint64_t id)
{
	uint64_t ids[1024];
	int n = pm_query(c, a, len, ids, 1024), k = 0;

	for (int i = 0; i < n && i < 1024; i++)
		k += ids[i] == id;
	return n < 0 ? n : k;
}

static void round_trip(struct pm_client *c, int fd, const struct pagemap_info *info,
		       unsigned shift)
{
	const size_t len = 16u << 20, chunk = (size_t)1 << shift;
	struct pm_migrate_range r = { .len = len, .pagemap_fd = fd };
	struct pm_migrate_result res;
	double t0, t1, t2;
	void *a;
	int n;

	if (pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(shift), &a) < 0) {
		FAIL("pm_alloc %zu", len);
		return;
	}
	check_fill(a, len, shift);
	r.addr = a;
	t0 = now_s();
	n = pm_migrate_batch(c, &r, 1, 0, &res);
	t1 = now_s();
	if (n || res.bytes_done != len || res.bytes_host != len)
		FAIL("%zu KiB chunks -> %s: %d, done %llu host %llu", chunk >> 10, info->device, n,
		     (unsigned long long)res.bytes_done, (unsigned long long)res.bytes_host);
	else if (chunks_at(c, a, len, info->id) != (int)(len / chunk))
		FAIL("%zu KiB chunks: pm_query does not say %s for every chunk", chunk >> 10,
		     info->device);
	else
		printf("ok %zu KiB chunks host -> %s: %zu chunks there, bytes_host %zu\n",
		       chunk >> 10, info->device, len / chunk, len);
	/* Every chunk comes back by a CPU touch: RDMA READ from the peer. */
	n = (int)check_bad_words(a, 0, len / 8, shift);
	t2 = now_s();
	if (n)
		FAIL("%zu KiB chunks: %d words differ after fault-back", chunk >> 10, n);
	else if (chunks_at(c, a, len, 0) != (int)(len / chunk))
		FAIL("%zu KiB chunks: not every chunk in system memory after fault-back",
		     chunk >> 10);
	else
		printf("ok %zu KiB chunks fault-back from %s: every word intact\n", chunk >> 10,
		       info->device);
	printf("throughput %zu KiB chunks: host->remote %.1f MB/s, fault-back %.1f MB/s\n",
	       chunk >> 10, len / (t1 - t0) / 1e6, len / (t2 - t1) / 1e6);
	pm_free(c, a);
}

static void too_much(struct pm_client *c, int fd, const struct pagemap_info *info)
{
	size_t len = info->capacity + (16u << 20);
	struct pm_migrate_range r = { .len = len, .pagemap_fd = fd };
	struct pm_migrate_result res;
	void *a;
	int n;

	if (pm_alloc(c, len, 0, &a) < 0) {
		FAIL("pm_alloc %zu", len);
		return;
	}
	check_fill(a, len, 7);
	r.addr = a;
	n = pm_migrate_batch(c, &r, 1, 0, &res);
	if (n != -ENOSPC || res.bytes_done != info->capacity)
		FAIL("%zu MiB into %llu MiB: %d, done %llu", len >> 20,
		     (unsigned long long)(info->capacity >> 20), n,
		     (unsigned long long)res.bytes_done);
	else
		printf("ok %zu MiB into %llu MiB: -ENOSPC after %llu MiB\n", len >> 20,
		       (unsigned long long)(info->capacity >> 20),
		       (unsigned long long)(res.bytes_done >> 20));
	n = (int)check_bad_words(a, 0, len / 8, 7);
	if (n)
		FAIL("ENOSPC: %d words differ afterwards", n);
	else
		printf("ok ENOSPC: every word intact after fault-back\n");
	pm_free(c, a);
}

/* The test kills the peer while this migration runs (it waits for our
 * "started" line). */
static void killed(struct pm_client *c, int fd, const struct pagemap_info *info)
{
	const size_t len = 56u << 20, chunk = 64u << 10;
	struct pm_migrate_result res;
	struct pagemap_event ev;
	struct pollfd pfd;
	size_t lost = 0, bad = 0;
	void *a;
	int done, n;

	if (pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(16), &a) < 0) {
		FAIL("pm_alloc");
		return;
	}
	check_fill(a, len, 99);
	done = pm_migrate(c, a, len, fd, PM_MIGRATE_ASYNC);
	if (done < 0) {
		FAIL("async migrate: %d", done);
		return;
	}
	/* "started" once the first chunks are over there: the kill then lands
	 * mid-migration, not before or after it. */
	for (int i = 0; i < 30000 && chunks_at(c, a, len, info->id) < 4; i++)
		usleep(1000);
	printf("started\n");
	fflush(stdout);
	pfd = (struct pollfd){ .fd = done, .events = POLLIN };
	if (poll(&pfd, 1, 120000) != 1 || pm_migrate_result(done, &res) != 1) {
		FAIL("the migration did not end within 120 s of the peer's death");
		return;
	}
	if (res.status == 0 || res.status == -ENOSPC)
		FAIL("the migration ended with %d although the peer was killed (too fast? %llu MiB)",
		     res.status, (unsigned long long)(res.bytes_done >> 20));
	else
		printf("ok the migration failed with %d after %llu MiB\n", res.status,
		       (unsigned long long)(res.bytes_done >> 20));
	close(done);
	/* The holder hears of it. */
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 10000) != 1 || pagemap_read_event(fd, &ev) != 1 ||
	    ev.type != PAGEMAP_EVENT_REVOKED)
		FAIL("no REVOKED event on %s's pagemap fd", info->device);
	else
		printf("ok %s revoked (reason %d)\n", info->device, ev.reason);
	/* Chunks not lost with the peer keep their data; lost ones say so. */
	for (size_t k = 0; k < len / chunk; k++) {
		struct pm_range run;
		uint8_t *p = (uint8_t *)a + k * chunk;

		n = pm_query_range(c, p, chunk, &run, 1);
		if (n != 1) {
			FAIL("pm_query_range chunk %zu: %d", k, n);
			continue;
		}
		if (run.error == -EIO) {
			lost++;
			continue;
		}
		bad += check_bad_words(a, k * chunk / 8, chunk / 8, 99) != 0;
	}
	if (bad)
		FAIL("%zu chunks not marked lost differ from their data", bad);
	else
		printf("ok %zu chunks intact, %zu lost with the peer (marked -EIO)\n",
		       len / chunk - lost, lost);
	pm_free(c, a);
}

int main(int argc, char **argv)
{
	bool kill_mode = argc == 3 && !strcmp(argv[1], "--killed");
	const char *remote = argv[argc - 1];
	struct pagemap_info info;
	struct pm_client *c;
	int fd, r;

	if (argc != 2 && !kill_mode) {
		fprintf(stderr, "usage: pm_remote_check [--killed] NAME:DEVICE\n");
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0) {
		fprintf(stderr, "pm_remote_check: cannot reach the broker: %s\n", strerror(-r));
		return 1;
	}
	fd = pagemap_open(c, remote, NULL, 0);
	if (fd < 0 || pagemap_query(fd, &info) < 0) {
		fprintf(stderr, "pm_remote_check: cannot open %s: %s\n", remote,
			strerror(fd < 0 ? -fd : EBADF));
		return 1;
	}
	if (info.kind != PAGEMAP_KIND_RDMA_REMOTE)
		FAIL("%s is kind %u, not rdma-remote", remote, info.kind);
	else
		printf("ok open %s id=%llu capacity=%llu\n", remote, (unsigned long long)info.id,
		       (unsigned long long)info.capacity);
	if (kill_mode) {
		killed(c, fd, &info);
	} else {
		round_trip(c, fd, &info, 21);
		round_trip(c, fd, &info, 16);
		too_much(c, fd, &info);
	}
	close(fd);
	pm_disconnect(c);
	return failures ? 1 : 0;
}
