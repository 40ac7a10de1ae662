/* SPDX-License-Identifier: MIT */
/*
 * Emulated device memory (from a --topology file): a sealed-size memfd the
 * broker holds, sparse until written. Never a stand-in for a real path.
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
	int fd;

	snprintf(name, sizeof(name), "pagemapd:emulated:%s", p->device);
	fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)p->capacity) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	p->memfd = fd;
	return 0;
}

static void emulated_destroy(struct pool *p)
{
	if (p->memfd >= 0)
		close(p->memfd);
	p->memfd = -1;
}

const struct pool_ops pool_emulated_ops = {
	.kind = PM_KIND_EMULATED,
	.name = "emulated",
	.create = emulated_create,
	.destroy = emulated_destroy,
};
