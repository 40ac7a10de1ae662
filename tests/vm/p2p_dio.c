// SPDX-License-Identifier: MIT
/*
 * p2p_dio p2p    ALLOCATE BLOCKDEV LEN [DEV_OFFSET]
 * p2p_dio bounce ALLOCATE|- BLOCKDEV LEN [DEV_OFFSET]
 * p2p_dio map    ALLOCATE LEN
 *
 * Real peer-to-peer DMA between a block device and another PCI function's
 * p2pmem, as the kernel does it for userspace: mmap LEN bytes of
 * /sys/bus/pci/devices/BDF/p2pmem/allocate, then O_DIRECT I/O on BLOCKDEV with
 * that mapping as the buffer, so the block device's controller DMAs straight
 * into (and out of) the provider's BAR.
 *
 * p2p:    fill the p2pmem buffer with a pattern, O_DIRECT write it to BLOCKDEV at
 *         DEV_OFFSET (default 0), clear the buffer, O_DIRECT read it back into
 *         the buffer, verify.
 * bounce: the same transfer through a plain host buffer: the device DMAs to
 *         and from host memory and the CPU copies between that and the
 *         p2pmem buffer (what moving the data costs without P2P). With '-'
 *         for ALLOCATE the p2pmem side is an ordinary buffer too.
 *
 * Both print one line, "ok BYTES MB/s (write W MB/s, read R MB/s)" where BYTES
 * counts both directions and the rates cover the I/O (and, for bounce, the
 * copies), or "error ERRNO-NAME message". Exit 0 on success, 3 when the
 * kernel refused the transfer with EREMOTEIO (it would not map the p2pmem
 * pages for that device: no P2P path between provider and client), 1 on any
 * other failure (including a data mismatch), 2 on bad usage.
 *
 * map:    what the allocate file does with mmap, as "key value" lines: the
 *         pool's "available" before, with two mappings of LEN, and after
 *         munmap; whether the two mappings alias; and the errno for a non-zero
 *         offset, a MAP_PRIVATE mapping and a mapping larger than available.
 *         Exit 0 when every step ran (the caller judges the values), 1 if a
 *         step that must work failed.
 *
 * The block device's contents at DEV_OFFSET..+LEN are overwritten.
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
#include <time.h>
#include <unistd.h>

#define EXIT_REMOTEIO 3

/* Set by the first failure: the line printed and the exit status follow it. */
static int fail_errno;

static const char *errname(int e)
{
	const char *n = strerrorname_np(e);

	return n ? n : "E?";
}

static int fail(int e, const char *what, const char *arg)
{
	if (!fail_errno)
		fail_errno = e ? e : EIO;
	printf("error %s %s (%s%s%s)\n", errname(fail_errno), strerror(fail_errno), what,
	       arg ? ": " : "", arg ? arg : "");
	return -1;
}

/* Word i of the pattern for a seed. */
static uint64_t pattern(uint64_t seed, size_t i)
{
	return (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;
}

static double now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0) {
		printf("error %s %s (clock_gettime)\n", errname(errno), strerror(errno));
		exit(1);
	}
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A byte count or offset; 0 is refused unless zero_ok. */
static int parse_size(const char *s, size_t *out, int zero_ok)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || (v == 0 && !zero_ok) || v > SIZE_MAX)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* The whole range or an error: O_DIRECT on a block device may come back short. */
static int dio(int fd, void *buf, size_t len, off_t off, int write)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, off + (off_t)done)
				  : pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fail(errno, write ? "O_DIRECT write" : "O_DIRECT read", NULL);
		}
		if (n == 0)
			return fail(EIO, write ? "O_DIRECT write" : "O_DIRECT read",
				    "device ended early");
		done += (size_t)n;
	}
	return 0;
}

/* MAP_SHARED at offset 0 is the only way allocate can be mapped. */
static void *map_p2pmem(const char *path, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fail(errno, "open", path);
		return NULL;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	/* The mapping keeps its pages (and the pool allocation) after close. */
	if (close(fd) < 0 && p != MAP_FAILED) {
		fail(errno, "close", path);
		munmap(p, len);
		return NULL;
	}
	if (p == MAP_FAILED) {
		fail(e, "mmap", path);
		return NULL;
	}
	return p;
}

static int run_transfer(int bounce, const char *alloc, const char *dev, size_t len, off_t off)
{
	void *buf = NULL, *host = NULL;
	int fd = -1, rc = -1;
	double t0, tw, tr;

	if (!bounce || strcmp(alloc, "-")) {
		buf = map_p2pmem(alloc, len);
		if (!buf)
			return -1;
	} else if (posix_memalign(&buf, 4096, len)) {
		return fail(ENOMEM, "posix_memalign", NULL);
	}
	if (bounce && posix_memalign(&host, 4096, len)) {
		fail(ENOMEM, "posix_memalign", NULL);
		goto out;
	}
	fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		fail(errno, "open", dev);
		goto out;
	}

	/* The seed changes per run: stale data from an earlier run cannot pass. */
	uint64_t seed = (uint64_t)(now() * 1e9) ^ ((uint64_t)getpid() << 32);
	volatile uint64_t *w = buf;
	size_t words = len / 8;

	for (size_t i = 0; i < words; i++)
		w[i] = pattern(seed, i);

	t0 = now();
	if (bounce)
		memcpy(host, buf, len);
	if (dio(fd, bounce ? host : buf, len, off, 1) < 0)
		goto out;
	/* Written through to the device (QEMU's image), not held in a cache:
	 * the read below then has to come from the device. */
	if (fdatasync(fd) < 0) {
		fail(errno, "fdatasync", dev);
		goto out;
	}
	tw = now() - t0;

	/* Clear both buffers: what we verify can only have come from the device. */
	memset(buf, 0, len);
	if (bounce)
		memset(host, 0, len);
	t0 = now();
	if (dio(fd, bounce ? host : buf, len, off, 0) < 0)
		goto out;
	if (bounce)
		memcpy(buf, host, len);
	tr = now() - t0;

	size_t bad = 0;
	for (size_t i = 0; i < words; i++) {
		uint64_t v = w[i];
		if (v != pattern(seed, i) && bad++ < 5)
			fprintf(stderr, "p2p_dio: word %zu: read 0x%016" PRIx64 " want 0x%016" PRIx64 "\n",
				i, v, pattern(seed, i));
	}
	if (bad) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%zu of %zu words differ", bad, words);
		fail(EILSEQ, "verify", msg);
		goto out;
	}
	printf("ok %zu %.1f (write %.1f MB/s, read %.1f MB/s)\n", 2 * len, 2 * len / (tw + tr) / 1e6,
	       len / tw / 1e6, len / tr / 1e6);
	rc = 0;
out:
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = fail(errno, "close", dev);
	if (buf && (!bounce || strcmp(alloc, "-"))) {
		if (munmap(buf, len) < 0 && !rc)
			rc = fail(errno, "munmap", alloc);
	} else {
		free(buf);
	}
	free(host);
	return rc;
}

/* The pool's free bytes as the kernel reports them, -1 if unreadable. */
static long long available(const char *alloc)
{
	char path[4096], line[64];
	const char *slash = strrchr(alloc, '/');
	long long v = -1;

	snprintf(path, sizeof(path), "%.*s/available", slash ? (int)(slash - alloc) : 1,
		 slash ? alloc : ".");
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	if (fgets(line, sizeof(line), f))
		v = strtoll(line, NULL, 0);
	fclose(f);
	return v;
}

/* errno of one mmap that should fail: 0 if it worked (and was undone), -1 if
 * something around it failed (already reported). */
static int try_map(const char *alloc, size_t len, int flags, off_t off)
{
	int fd = open(alloc, O_RDWR | O_CLOEXEC), e = 0;

	if (fd < 0)
		return fail(errno, "open", alloc);
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, off);
	if (p == MAP_FAILED)
		e = errno;
	else if (munmap(p, len) < 0)
		e = fail(errno, "munmap", alloc);
	if (close(fd) < 0)
		e = fail(errno, "close", alloc);
	return e;
}

static int run_map(const char *alloc, size_t len)
{
	long long v = available(alloc);

	if (v < 0)
		return fail(errno, "read available", alloc);
	printf("available_before %lld\n", v);

	volatile uint64_t *a = map_p2pmem(alloc, len);
	if (!a)
		return -1;
	volatile uint64_t *b = map_p2pmem(alloc, len);
	if (!b) {
		munmap((void *)a, len);
		return -1;
	}
	v = available(alloc);
	if (v < 0)
		return fail(errno, "read available", alloc);
	printf("available_mapped %lld\n", v);
	/* Each mmap is its own allocation from the pool, or both map one chunk. */
	a[0] = 0x1111111111111111ull;
	b[0] = 0x2222222222222222ull;
	printf("aliased %d\n", a[0] == b[0]);
	if (munmap((void *)a, len) < 0 || munmap((void *)b, len) < 0)
		return fail(errno, "munmap", alloc);
	v = available(alloc);
	if (v < 0)
		return fail(errno, "read available", alloc);
	printf("available_after %lld\n", v);

	static const struct {
		const char *name;
		int flags;
		off_t off;
		int over; /* map available + 2 MiB instead of one page */
	} probes[] = {
		{ "offset_4096", MAP_SHARED, 4096, 0 },
		{ "private", MAP_PRIVATE, 0, 0 },
		{ "too_big", MAP_SHARED, 0, 1 },
	};
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		long long avail = available(alloc);
		if (avail < 0)
			return fail(errno, "read available", alloc);
		int e = try_map(alloc, probes[i].over ? (size_t)avail + (2 << 20) : 4096,
				probes[i].flags, probes[i].off);
		if (e < 0)
			return -1;
		printf("%s %s\n", probes[i].name, e ? errname(e) : "ok");
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: p2p_dio p2p ALLOCATE BLOCKDEV LEN [DEV_OFFSET]\n"
			"       p2p_dio bounce ALLOCATE|- BLOCKDEV LEN [DEV_OFFSET]\n"
			"       p2p_dio map ALLOCATE LEN\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t len, off = 0;
	int rc;

	/* One line on stdout whatever happens: tests parse it. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "map")) {
		if (argc != 4 || parse_size(argv[3], &len, 0) || len % 4096)
			usage();
		rc = run_map(argv[2], len);
	} else if (!strcmp(argv[1], "p2p") || !strcmp(argv[1], "bounce")) {
		if (argc < 5 || argc > 6 || parse_size(argv[4], &len, 0) || len % 4096)
			usage();
		/* O_DIRECT wants the offset aligned to the logical block size. */
		if (argc == 6 && (parse_size(argv[5], &off, 1) || off % 4096 || off > INT64_MAX))
			usage();
		rc = run_transfer(argv[1][0] == 'b', argv[2], argv[3], len, (off_t)off);
	} else {
		usage();
	}
	if (!rc)
		return 0;
	return fail_errno == EREMOTEIO ? EXIT_REMOTEIO : 1;
}
