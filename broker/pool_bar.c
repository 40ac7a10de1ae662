/* SPDX-License-Identifier: MIT */
/*
 * PCI BAR memory (an ivshmem BAR 2, a CXL or NVMe CMB window) donated in the
 * configuration: mapped through sysfs resourceN while its pagemap lives.
 * Mapping needs write access to the resource file (root, usually).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"

static int bar_create(struct pool *p)
{
	char path[600];
	void *map;
	int fd;

	snprintf(path, sizeof(path), "%s/resource%d", p->sysfs, p->bar);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	map = mmap(NULL, p->capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -errno;
	p->map = map;
	if (space_init(p) < 0) {
		munmap(map, p->capacity);
		p->map = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void bar_destroy(struct pool *p)
{
	if (p->map)
		munmap(p->map, p->capacity);
	p->map = NULL;
	space_fini(p);
}

const struct pool_ops pool_bar_ops = {
	.kind = PM_KIND_PCI_BAR,
	.name = "pci-bar",
	.create = bar_create,
	.destroy = bar_destroy,
};
