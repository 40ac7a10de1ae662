/* SPDX-License-Identifier: MIT */
/*
 * PCI peer-to-peer memory a driver published: an NVMe controller's memory
 * buffer, a p2pmem device (/sys/bus/pci/devices/BDF/p2pmem/). The kernel
 * lends it to userspace through the "allocate" file: an mmap of it (shared,
 * offset 0) takes that many bytes of the device's pool and maps them as
 * struct pages of the device (ZONE_DEVICE), so the CPU can copy to and from
 * them like any BAR and, unlike a BAR mapped through resourceN, another
 * device can DMA into them: O_DIRECT I/O on a block device accepts them as
 * buffers where the kernel's p2pdma rules allow the pair (xfer_block.c).
 * The bytes go back to the device's pool when the mapping goes; a device
 * removed under us has its mappings zapped by the kernel (copies then see
 * SIGBUS, which copy_guarded turns into -EFAULT).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"
#include "sysfs_util.h"

/* dir: the function's sysfs directory. */
static int p2pmem_attr(const char *dir, const char *name, uint64_t *out)
{
	char path[640];

	snprintf(path, sizeof(path), "%s/p2pmem/%s", dir, name);
	return sysfs_read_u64(path, out);
}

static int p2pmem_create(struct pool *p)
{
	char path[640];
	uint64_t avail = 0, len;
	void *map;
	int fd, r;

	/* What the device has free now: another user (nvmet, a second broker)
	 * may hold part of it. The pagemap takes all of that for its life. */
	r = p2pmem_attr(p->sysfs, "available", &avail);
	if (r < 0)
		return r;
	len = (avail < p->k.p2p.size ? avail : p->k.p2p.size) / PM_CHUNK_MIN * PM_CHUNK_MIN;
	if (!len) {
		blog(LOG_ERR, "%s: no p2pmem available (%llu bytes free)", p->device,
		     (unsigned long long)avail);
		return -ENOSPC;
	}
	snprintf(path, sizeof(path), "%s/p2pmem/allocate", p->sysfs);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	r = map == MAP_FAILED ? -errno : 0;
	close(fd);
	if (r < 0) {
		blog(LOG_ERR, "%s: cannot map %llu bytes of p2pmem: %s", p->device,
		     (unsigned long long)len, strerror(-r));
		return r;
	}
	p->map = map;
	p->capacity = len;
	if (space_init(p) < 0) {
		munmap(map, len);
		p->map = NULL;
		p->capacity = p->k.p2p.size;
		return -ENOMEM;
	}
	if (len < p->k.p2p.size)
		blog(LOG_INFO, "%s: p2pmem pagemap holds %llu of %llu bytes (the rest is in use)",
		     p->device, (unsigned long long)len, (unsigned long long)p->k.p2p.size);
	return 0;
}

static void p2pmem_destroy(struct pool *p)
{
	if (p->map)
		munmap(p->map, p->capacity);
	p->map = NULL;
	space_fini(p);
	p->capacity = p->k.p2p.size;
}

bool p2pmem_present(const struct pool *p)
{
	uint64_t published = 0;
	char path[640];

	/* A driver unbind takes the p2pmem away (and zaps our mapping) while
	 * the function's own sysfs directory stays. */
	snprintf(path, sizeof(path), "%s/p2pmem/allocate", p->sysfs);
	return access(path, F_OK) == 0 && p2pmem_attr(p->sysfs, "published", &published) == 0 &&
	       published == 1;
}

const struct pool_ops pool_p2pmem_ops = {
	.kind = PM_KIND_P2PMEM,
	.name = "p2pmem",
	.create = p2pmem_create,
	.destroy = p2pmem_destroy,
};

int p2pmem_pools_add(struct broker *b)
{
	for (size_t i = 0; i < b->topo->n_pci; i++) {
		const struct topo_pci *pci = &b->topo->pci[i];
		uint64_t size = 0, published = 0;
		struct pool *p;
		char dir[512];

		if (pci->removed)
			continue;
		snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices/%s", b->conf.sysfs_root,
			 pci->bdf);
		/* Only what the driver published: unpublished p2pmem is the
		 * driver's own (an NVMe CMB used for its queues). */
		if (p2pmem_attr(dir, "published", &published) < 0 || published != 1 ||
		    p2pmem_attr(dir, "size", &size) < 0 || size < PM_CHUNK_MIN)
			continue;
		p = pool_add(b, &pool_p2pmem_ops, pci->bdf, "p2pmem");
		if (!p)
			return -ENOMEM;
		snprintf(p->sysfs, sizeof(p->sysfs), "%s", dir);
		p->k.p2p.size = size;
		p->capacity = size;
		p->numa = topo_pci_numa(b->topo, (int)i);
		blog(LOG_INFO, "%s: p2pmem pool of %llu bytes", pci->bdf, (unsigned long long)size);
	}
	return 0;
}
