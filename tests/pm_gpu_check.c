/* SPDX-License-Identifier: MIT */
/*
 * GPU pools end to end, for a machine with an NVIDIA GPU (tests/gpu_test.sh
 * runs it against a live broker): seeded data host -> cuda0 -> back by CPU
 * faults, 2 MiB and 64 KiB chunks; cuda0 -> cuda1 when there are two GPUs
 * (direct when the driver allows peer access); and an administrator's
 * revoke of cuda0 with data on it, which must bring the data home first.
 * Exits 77 (skip) when the broker has no GPU pool.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check_pattern.h"
#include "check_report.h"
#include "client.h" /* pm_client_call for the administrator's revoke */
#include "pagemap.h"


static uint64_t id_of(int fd)
{
	struct pagemap_info info;

	return pagemap_query(fd, &info) == 0 ? info.id : 0;
}

static void round_trip(struct pm_client *c, int fd, int fd2, unsigned shift)
{
	const size_t len = 64u << 20;
	struct pm_migrate_range r = { .len = len, .pagemap_fd = fd };
	struct pm_migrate_result res;
	uint64_t ids[1];
	void *a;

	if (pm_alloc(c, len, PM_ALLOC_CHUNK_SHIFT(shift), &a) < 0) {
		FAIL("pm_alloc");
		return;
	}
	check_fill(a, len, shift);
	r.addr = a;
	if (pm_migrate_batch(c, &r, 1, 0, &res) || res.bytes_host != len)
		FAIL("host -> cuda0, %u-bit chunks: %d, bytes_host %llu", shift, res.status,
		     (unsigned long long)res.bytes_host);
	else if (pm_query(c, a, len, ids, 1) < 1 || ids[0] != id_of(fd))
		FAIL("pm_query does not say cuda0");
	else
		printf("ok host -> cuda0, %zu KiB chunks\n", ((size_t)1 << shift) >> 10);
	if (fd2 >= 0) {
		r.pagemap_fd = fd2;
		if (pm_migrate_batch(c, &r, 1, 0, &res))
			FAIL("cuda0 -> cuda1: %d", res.status);
		else
			printf("ok cuda0 -> cuda1: %llu bytes direct, %llu bounced\n",
			       (unsigned long long)res.bytes_direct,
			       (unsigned long long)res.bytes_bounced);
	}
	if (check_bad_words(a, 0, (len) / 8, shift))
		FAIL("data differs after fault-back from VRAM");
	else
		printf("ok fault-back from VRAM: every word intact\n");
	pm_free(c, a);
}

static void revoke_with_data(struct pm_client *c, int fd)
{
	const size_t len = 16u << 20;
	struct pm_revoke rv = { 0 };
	uint64_t ids[8];
	void *a;
	int r;

	if (pm_alloc(c, len, 0, &a) < 0 || (check_fill(a, len, 5), pm_migrate(c, a, len, fd, 0))) {
		FAIL("setting up the revoke");
		return;
	}
	pm_name_put(rv.device, sizeof(rv.device), "cuda0");
	r = pm_client_call(c, PM_OP_REVOKE, &rv, sizeof(rv), NULL, 0, NULL, NULL);
	if (r < 0) {
		FAIL("revoke cuda0: %d (run as root or the broker's user)", r);
		return;
	}
	if (pm_query(c, a, len, ids, 8) != 8 || ids[0] || ids[7])
		FAIL("chunks still in cuda0 after its revoke");
	else if (check_bad_words(a, 0, (len) / 8, 5))
		FAIL("data lost in the revoke");
	else
		printf("ok revoke of cuda0: data evacuated to system memory\n");
	pm_free(c, a);
}

int main(void)
{
	struct pm_client *c;
	int fd, fd2, r = pm_connect(NULL, &c);

	if (r < 0) {
		fprintf(stderr, "pm_gpu_check: no broker: %s\n", strerror(-r));
		return 1;
	}
	fd = pagemap_open(c, "cuda0", "vram", 0);
	if (fd == -ENOENT) {
		printf("skip: the broker has no GPU pool (no NVIDIA GPU or driver here)\n");
		pm_disconnect(c);
		return 77;
	}
	if (fd < 0) {
		fprintf(stderr, "pm_gpu_check: cuda0: %s\n", strerror(-fd));
		return 1;
	}
	fd2 = pagemap_open(c, "cuda1", "vram", 0);
	round_trip(c, fd, fd2, 21);
	round_trip(c, fd, -1, 16);
	if (fd2 >= 0)
		close(fd2);
	revoke_with_data(c, fd);
	close(fd);
	pm_disconnect(c);
	return failures ? 1 : 0;
}
