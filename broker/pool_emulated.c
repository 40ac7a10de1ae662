/* SPDX-License-Identifier: MIT */
/*
 * Emulated device memory (from a --topology file): a sealed-size memfd the
 * broker holds, sparse until written; with a state directory, a file there
 * instead, so that what is in it outlives a crashed broker as a device's
 * memory would (recover.c). Never a stand-in for a real path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"

static int emulated_create(struct pool *p)
{
	char name[96];
	void *map;
	int fd, r;

	snprintf(name, sizeof(name), "pagemapd:emulated:%s", p->device);
	if (p->k.emu.backing[0])
		fd = open(p->k.emu.backing, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	else
		fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)p->capacity) < 0 ||
	    (!p->k.emu.backing[0] && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)) {
		r = -errno;
		close(fd);
		return r;
	}
	/* Mapped whole, as a BAR pool is: pages appear as chunks are written. */
	map = mmap(NULL, p->capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (map == MAP_FAILED) {
		r = -errno;
		close(fd);
		return r;
	}
	if (space_init(p) < 0) {
		munmap(map, p->capacity);
		close(fd);
		return -ENOMEM;
	}
	p->map = map;
	p->k.emu.memfd = fd;
	return 0;
}

static void emulated_destroy(struct pool *p)
{
	if (p->map)
		munmap(p->map, p->capacity);
	/* A backing file with no chunk left for anyone gives its pages back;
	 * one holding orphans keeps them for the next broker. */
	if (p->k.emu.memfd >= 0 && p->k.emu.backing[0] && !p->orphans)
		fallocate(p->k.emu.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)p->capacity);
	if (p->k.emu.memfd >= 0)
		close(p->k.emu.memfd);
	p->map = NULL;
	p->k.emu.memfd = -1;
	space_fini(p);
}

const struct pool_ops pool_emulated_ops = {
	.kind = PM_KIND_EMULATED,
	.name = "emulated",
	.create = emulated_create,
	.destroy = emulated_destroy,
};
