// SPDX-License-Identifier: MIT
/*
 * bar_rw RESOURCE_FILE [BYTES]
 *
 * Maps a PCI BAR through sysfs (/sys/bus/pci/devices/<bdf>/resourceN), writes a
 * pattern, unmaps, maps it again and reads the pattern back: proves the BAR is
 * real device memory reachable by userspace mmap (what a BAR pool does), not
 * just a mapping that swallows writes. Exit 0 on success, 1 on mismatch or error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The seed changes per run so stale contents from an earlier run cannot pass. */
static uint64_t pattern(uint64_t seed, size_t i)
{
	return (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
}

static volatile uint64_t *map_bar(const char *path, size_t len, int *fd_out)
{
	/* O_SYNC keeps the mapping uncached; sysfs ignores it for prefetchable
	 * BARs, which map write-combining, and that is fine for a read-back. */
	int fd = open(path, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "bar_rw: open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "bar_rw: mmap %s (%zu bytes): %s\n", path, len, strerror(errno));
		close(fd);
		return NULL;
	}
	*fd_out = fd;
	return p;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: bar_rw RESOURCE_FILE [BYTES]\n");
		return 2;
	}
	const char *path = argv[1];
	struct stat st;
	if (stat(path, &st) < 0) {
		fprintf(stderr, "bar_rw: stat %s: %s\n", path, strerror(errno));
		return 1;
	}
	/* sysfs reports the BAR size as the resource file size. */
	size_t len = (size_t)st.st_size;
	if (argc == 3) {
		size_t want = strtoull(argv[2], NULL, 0);
		if (want && want < len)
			len = want;
	}
	len &= ~(size_t)7;
	if (len == 0) {
		fprintf(stderr, "bar_rw: %s has size 0\n", path);
		return 1;
	}
	size_t words = len / 8;

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);

	int fd;
	volatile uint64_t *bar = map_bar(path, len, &fd);
	if (!bar)
		return 1;
	for (size_t i = 0; i < words; i++)
		bar[i] = pattern(seed, i);
	munmap((void *)bar, len);
	close(fd);

	/* A fresh mapping: what we read now can only come from the device. */
	bar = map_bar(path, len, &fd);
	if (!bar)
		return 1;
	size_t bad = 0;
	for (size_t i = 0; i < words; i++) {
		uint64_t v = bar[i];
		if (v != pattern(seed, i) && bad++ < 5)
			fprintf(stderr, "bar_rw: word %zu: read 0x%016" PRIx64 " want 0x%016" PRIx64 "\n",
				i, v, pattern(seed, i));
	}
	munmap((void *)bar, len);
	close(fd);
	if (bad) {
		fprintf(stderr, "bar_rw: %zu of %zu words wrong in %s\n", bad, words, path);
		return 1;
	}
	printf("bar_rw: %s: %zu bytes written and read back\n", path, len);
	return 0;
}
