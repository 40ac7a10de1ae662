/* SPDX-License-Identifier: MIT */
/*
 * The floor under fault-back: a bare userfaultfd round trip on shmem pages
 * like managed memory's, with no broker. A thread touches a hole of a
 * registered memfd mapping; a handler thread answers with UFFDIO_COPY of
 * one page (the round trip alone) or of the whole chunk (the round trip
 * plus what bringing a chunk's bytes back costs the kernel: allocating
 * and filling its pages); the time is the touch's.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pmbench.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

struct uffd_bench {
	int uffd, stop;
	uint8_t *map, *src;
	size_t chunk, fill; /* what the handler copies per fault */
};

static void *handler(void *arg)
{
	struct uffd_bench *u = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = u->uffd, .events = POLLIN },
				       { .fd = u->stop, .events = POLLIN } };
		struct uffd_msg msg;
		struct uffdio_copy c = { 0 };
		uintptr_t at;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (read(u->uffd, &msg, sizeof(msg)) != sizeof(msg) ||
		    msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		/* The page, or the chunk, the fault is in: the mapping is only
		 * page-aligned, so chunks are counted from its start. */
		at = (uintptr_t)msg.arg.pagefault.address - (uintptr_t)u->map;
		at = (uintptr_t)u->map + at / u->fill * u->fill;
		c.dst = at;
		c.src = (uintptr_t)u->src;
		c.len = u->fill;
		/* It wakes the toucher; should it fail, a wake lets the touch
		 * fault again rather than hang. */
		if (ioctl(u->uffd, UFFDIO_COPY, &c) < 0) {
			struct uffdio_range w = { .start = at, .len = u->fill };

			ioctl(u->uffd, UFFDIO_WAKE, &w);
		}
	}
	return NULL;
}

int bench_uffd_fault(size_t chunk, size_t nchunks, int samples, bool whole_chunk,
		     double *median_s)
{
	struct uffd_bench u = { .uffd = -1, .stop = -1, .chunk = chunk };
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_MISSING_SHMEM };
	size_t size = chunk * nchunks, n = 0;
	double *lat = calloc((size_t)samples, sizeof(double));
	struct bench_stats st;
	pthread_t t;
	int fd = memfd_create("pmbench:uffd", MFD_CLOEXEC), r = 0;

	u.fill = whole_chunk ? chunk : (size_t)sysconf(_SC_PAGESIZE);
	/* Non-blocking: a fault another answer already covered leaves poll()
	 * readable with nothing to read. */
	u.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	u.stop = eventfd(0, EFD_CLOEXEC);
	u.src = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		     -1, 0);
	if (!lat || fd < 0 || u.uffd < 0 || u.stop < 0 || u.src == MAP_FAILED ||
	    ftruncate(fd, (off_t)size) < 0 || ioctl(u.uffd, UFFDIO_API, &api) < 0) {
		r = errno ? -errno : -ENOMEM;
		goto out;
	}
	memset(u.src, 0x5a, chunk);
	u.map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (u.map == MAP_FAILED) {
		r = -errno;
		goto out;
	}
	{
		struct uffdio_register reg = { .range = { (uintptr_t)u.map, size },
					       .mode = UFFDIO_REGISTER_MODE_MISSING };

		if (ioctl(u.uffd, UFFDIO_REGISTER, &reg) < 0) {
			r = -errno;
			goto unmap;
		}
	}
	if ((r = -pthread_create(&t, NULL, handler, &u)))
		goto unmap;
	while (n < (size_t)samples) {
		for (size_t k = 0; k < nchunks && n < (size_t)samples; k++) {
			double t0 = bench_now();

			(void)*(volatile uint8_t *)(u.map + k * chunk);
			lat[n++] = bench_now() - t0;
		}
		/* Holes again, unmapped too: the next round faults afresh. */
		fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)size);
	}
	eventfd_write(u.stop, 1);
	pthread_join(t, NULL);
	bench_stats(lat, (int)n, &st);
	*median_s = st.median;
unmap:
	munmap(u.map, size);
out:
	if (u.src != MAP_FAILED && u.src)
		munmap(u.src, chunk);
	if (fd >= 0)
		close(fd);
	if (u.uffd >= 0)
		close(u.uffd);
	if (u.stop >= 0)
		close(u.stop);
	free(lat);
	return r;
}
