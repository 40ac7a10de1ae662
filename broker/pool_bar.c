/* SPDX-License-Identifier: MIT */
/*
 * PCI BAR memory (an ivshmem BAR 2, a CXL or NVMe CMB window) donated in the
 * configuration: mapped through sysfs resourceN while its pagemap lives.
 * Mapping needs write access to the resource file (root, usually).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"

/* Reads or writes the function's sysfs "enable" (memory decoding). */
static int enable_get(const struct pool *p)
{
	char path[600], c = 0;
	int fd, n;

	snprintf(path, sizeof(path), "%s/enable", p->sysfs);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = (int)read(fd, &c, 1);
	close(fd);
	return n == 1 ? c == '1' : -EIO;
}

static int enable_set(const struct pool *p, bool on)
{
	char path[600];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/enable", p->sysfs);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, on ? "1" : "0", 1) != 1)
		r = -errno;
	close(fd);
	return r;
}

static int bar_create(struct pool *p)
{
	char path[600];
	void *map;
	int fd, r;

	/* A function without a driver may have memory decoding off: its BAR
	 * then reads all zeros or ones and drops writes, and data placed there
	 * would silently vanish. Enable it for the pagemap's life. */
	if (enable_get(p) == 0) {
		r = enable_set(p, true);
		if (r < 0) {
			blog(LOG_ERR, "%s: memory decoding is off and cannot be enabled: %s",
			     p->device, strerror(-r));
			return r;
		}
		p->k.bar.enabled_here = true;
	}
	snprintf(path, sizeof(path), "%s/resource%d", p->sysfs, p->k.bar.index);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	map = mmap(NULL, p->capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = map == MAP_FAILED ? -errno : 0;
	close(fd);
	if (r < 0)
		goto fail;
	p->map = map;
	if (space_init(p) < 0) {
		munmap(map, p->capacity);
		p->map = NULL;
		r = -ENOMEM;
		goto fail;
	}
	return 0;
fail:
	if (p->k.bar.enabled_here)
		enable_set(p, false);
	p->k.bar.enabled_here = false;
	return r;
}

static void bar_destroy(struct pool *p)
{
	if (p->map)
		munmap(p->map, p->capacity);
	p->map = NULL;
	space_fini(p);
	if (p->k.bar.enabled_here && !p->gone)
		enable_set(p, false);
	p->k.bar.enabled_here = false;
}

const struct pool_ops pool_bar_ops = {
	.kind = PM_KIND_PCI_BAR,
	.name = "pci-bar",
	.create = bar_create,
	.destroy = bar_destroy,
};
