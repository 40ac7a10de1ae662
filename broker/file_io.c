/* SPDX-License-Identifier: MIT */
/*
 * PM_OP_FILE_IO's checks and words: which files a client may hand the
 * broker, which PCI device holds a file's bytes, and why a transfer could
 * not go by the storage device's DMA. The transfers themselves are jobs of
 * the migration engine (migrate.c), copied by the block engine
 * (xfer_block.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "broker.h"

/*
 * The file systems whose files the workers may read and write: kernel ones
 * backed by local block devices or memory, whose I/O always ends. Anything
 * served by a process (FUSE, or overlayfs and loop devices stacked on it),
 * by a network, or by the kernel on the broker's behalf (procfs, sysfs:
 * their handlers check the reader's credentials, which would be ours) is
 * refused.
 */
static const char *const fs_allowed[] = {
	"ext2", "ext3", "ext4", "xfs", "btrfs", "f2fs", "tmpfs",
};

/* The PCI function the block device dev hangs under (the last PCI address
 * on its sysfs path: a partition's disk's controller), "" when none. */
static void storage_of(const struct broker *b, dev_t dev, char *out, size_t len)
{
	char link[600], *path, *save = NULL;
	const char *best = NULL;
	uint32_t dom;
	uint8_t bus, slot, fn;

	out[0] = '\0';
	snprintf(link, sizeof(link), "%s/sys/dev/block/%u:%u", b->conf.sysfs_root, major(dev),
		 minor(dev));
	path = realpath(link, NULL);
	if (!path)
		return;
	for (char *name = strtok_r(path, "/", &save); name; name = strtok_r(NULL, "/", &save))
		if (topo_parse_bdf(name, false, &dom, &bus, &slot, &fn))
			best = name;
	if (best)
		topo_bdf_canonical(best, out, len);
	free(path);
}

/* The type of the file system mount mnt_id is ("ext4"), from the mount
 * table: asking the file system itself (fstatfs) could block in its server. */
static int fs_type_of(uint64_t mnt_id, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (r == -ENOENT && fgets(line, sizeof(line), f)) {
		unsigned long long id;
		const char *sep = strstr(line, " - ");

		if (sscanf(line, "%llu", &id) == 1 && id == mnt_id && sep &&
		    sscanf(sep + 3, "%63s", type) == 1 && len > 63)
			r = 0;
	}
	fclose(f);
	return r;
}

int file_io_check(const struct broker *b, int fd, bool store, struct io_file *f)
{
	struct statx stx;
	char type[64];
	int fl = fcntl(fd, F_GETFL), acc;
	bool ok = false;

	if (fl < 0)
		return -errno;
	acc = fl & O_ACCMODE;
	/* The client's own open decides what we may do with it: an O_PATH fd
	 * or one opened the other way round reads or writes nothing here. */
	if ((fl & O_PATH) || (store ? acc == O_RDONLY : acc == O_WRONLY))
		return -EBADF;
	/* Cached attributes only: a FUSE server could make a fresh getattr
	 * wait for ever, on the loop thread. */
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_MNT_ID,
		  &stx) < 0)
		return -errno;
	/* Pipes, sockets and character devices could block a worker forever,
	 * and have no offset to read at. */
	if (!S_ISREG(stx.stx_mode) && !S_ISBLK(stx.stx_mode))
		return -EINVAL;
	f->fd = fd;
	f->direct = fl & O_DIRECT;
	storage_of(b, S_ISBLK(stx.stx_mode) ? makedev(stx.stx_rdev_major, stx.stx_rdev_minor)
					    : makedev(stx.stx_dev_major, stx.stx_dev_minor),
		   f->storage, sizeof(f->storage));
	/* A block device must be a PCI device's disk: loop, nbd and
	 * device-mapper devices may sit on a file or a server that never
	 * answers. */
	if (S_ISBLK(stx.stx_mode))
		return f->storage[0] ? 0 : -EOPNOTSUPP;
	if (!(stx.stx_mask & STATX_MNT_ID) || fs_type_of(stx.stx_mnt_id, type, sizeof(type)) < 0)
		return -EOPNOTSUPP;
	for (size_t i = 0; i < sizeof(fs_allowed) / sizeof(fs_allowed[0]); i++)
		ok = ok || !strcmp(type, fs_allowed[i]);
	return ok ? 0 : -EOPNOTSUPP;
}

void file_io_explain(const struct broker *b, const struct io_file *f, const struct pool *p,
		     int fallback, bool bounce, char *out, size_t len)
{
	const char *where = p ? p->device : "host memory", *ename = strerrorname_np(-fallback);
	struct topo_path *path;
	int dp, ds;

	if (bounce) {
		snprintf(out, len, "through host memory, as asked (PM_IO_BOUNCE)");
		return;
	}
	if (!f->direct) {
		snprintf(out, len, "the file is not open with O_DIRECT: its bytes went through "
				   "the page cache");
		return;
	}
	if (!fallback) {
		snprintf(out, len, "%s is not mapped by the broker: no device DMAs into it from "
				   "storage, so through host memory", where);
		return;
	}
	if (fallback == -EFAULT && p && p->ops->kind == PM_KIND_PCI_BAR) {
		snprintf(out, len, "%s's BAR has no struct pages a device could DMA into (%s)",
			 where, strerror(-fallback));
		return;
	}
	if (!p || p->ops->kind != PM_KIND_P2PMEM) {
		snprintf(out, len, "DMA into %s refused: %s", where, strerror(-fallback));
		return;
	}
	if (!f->storage[0]) {
		snprintf(out, len, "the kernel refused DMA into %s's p2pmem (%s): the file is not "
				   "on a PCI device's storage", where, strerror(-fallback));
		return;
	}
	/* The topology's own verdict on the pair, as pmtopo --pair gives it. */
	dp = topo_graph_lookup(b->topo, p->device);
	ds = topo_graph_lookup(b->topo, f->storage);
	path = malloc(sizeof(*path));
	if (path && dp >= 0 && ds >= 0 && topo_classify(b->topo, dp, ds, path) == 0)
		snprintf(out, len, "the kernel refused P2P DMA %s <-> %s (%s); pmtopo: %s%s%s", where,
			 f->storage, ename ? ename : strerror(-fallback),
			 topo_p2p_verdict_name(path->p2p), path->reason[0] ? ": " : "", path->reason);
	else
		snprintf(out, len, "the kernel refused P2P DMA %s <-> %s (%s)", where, f->storage,
			 strerror(-fallback));
	free(path);
}
