/* SPDX-License-Identifier: MIT */
/*
 * Test helper, an allocation holder: pm_alloc_hold [--timeout S] MIB DEVICE...
 * connects ($PAGEMAP_SOCKET), pm_allocs MIB MiB in 2 MiB chunks and fills it,
 * cuts it into one part per DEVICE plus a last part, and places part i in
 * DEVICE i: the first with PREFERRED_LOCATION advice and a prefetch
 * (PM_FD_PREFERRED), the others with a plain pm_migrate. The first part is
 * also advised ACCESSED_BY the last DEVICE, and the last part stays in system
 * memory with READ_MOSTLY advice, each when the broker takes it. Prints
 *   alloc pid=P size=BYTES chunk=BYTES
 *   part I first=CHUNK count=CHUNKS device=DEVICE id=PAGEMAP_ID
 *   advice accessed-by 0|-ERRNO
 *   advice read-mostly 0|-ERRNO
 *   ready
 * then holds everything until killed or the timeout (default 60 s; 0:
 * never). Exits 1 on any error before "ready", naming it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pagemap.h"

#define MAX_DEVS 8
#define CHUNK (2u << 20)

int main(int argc, char **argv)
{
	int timeout_s = 60, argi = 1, fds[MAX_DEVS], ndev, r;
	size_t size, nchunks, per;
	struct pm_client *c;
	uint8_t *p;

	if (argc > 2 && !strcmp(argv[1], "--timeout")) {
		timeout_s = atoi(argv[2]);
		argi = 3;
	}
	ndev = argc - argi - 1;
	if (ndev < 1 || ndev > MAX_DEVS || atoi(argv[argi]) <= 0) {
		fprintf(stderr, "usage: pm_alloc_hold [--timeout S] MIB DEVICE... (1..%d devices)\n",
			MAX_DEVS);
		return 2;
	}
	size = (size_t)atoi(argv[argi]) << 20;
	nchunks = size / CHUNK;
	per = nchunks / (size_t)(ndev + 1);
	if (per == 0) {
		fprintf(stderr, "pm_alloc_hold: %s MiB is too small for %d parts of 2 MiB\n",
			argv[argi], ndev + 1);
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0) {
		fprintf(stderr, "pm_alloc_hold: connect: %s\n", strerror(-r));
		return 1;
	}
	r = pm_alloc(c, size, PM_ALLOC_CHUNK_SHIFT(21), (void **)&p);
	if (r < 0) {
		fprintf(stderr, "pm_alloc_hold: pm_alloc %zu: %s\n", size, strerror(-r));
		return 1;
	}
	memset(p, 0xa5, size);
	printf("alloc pid=%d size=%zu chunk=%u\n", (int)getpid(), size, CHUNK);
	for (int i = 0; i < ndev; i++) {
		const char *dev = argv[argi + 1 + i];
		uint8_t *part = p + (size_t)i * per * CHUNK;
		struct pagemap_info info;

		fds[i] = pagemap_open(c, dev, NULL, 0);
		r = fds[i] < 0 ? fds[i] : pagemap_query(fds[i], &info);
		if (r >= 0 && i == 0) {
			r = pm_madvise(c, part, per * CHUNK, PM_ADV_PREFERRED_LOCATION, fds[i]);
			if (r >= 0)
				r = pm_migrate(c, part, per * CHUNK, PM_FD_PREFERRED, 0);
		} else if (r >= 0) {
			r = pm_migrate(c, part, per * CHUNK, fds[i], 0);
		}
		if (r < 0) {
			fprintf(stderr, "pm_alloc_hold: placing part %d in %s: %s\n", i, dev,
				strerror(-r));
			return 1;
		}
		printf("part %d first=%zu count=%zu device=%s id=%llu\n", i, (size_t)i * per, per,
		       dev, (unsigned long long)info.id);
	}
	r = pm_madvise(c, p, per * CHUNK, PM_ADV_ACCESSED_BY, fds[ndev - 1]);
	printf("advice accessed-by %d\n", r < 0 ? r : 0);
	r = pm_madvise(c, p + (size_t)ndev * per * CHUNK, size - (size_t)ndev * per * CHUNK,
		       PM_ADV_READ_MOSTLY, PM_FD_SYSTEM);
	printf("advice read-mostly %d\nready\n", r < 0 ? r : 0);
	fflush(stdout);
	if (timeout_s)
		sleep((unsigned)timeout_s);
	else
		pause();
	pm_disconnect(c);
	return 0;
}
