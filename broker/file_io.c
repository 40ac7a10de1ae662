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
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "broker.h"

#define FUSE_SUPER_MAGIC 0x65735546

/* Whether s starts with a PCI address: dddd:bb:dd.f */
static bool is_bdf(const char *s, size_t n)
{
	static const char pat[] = "xxxx:xx:xx.x";

	if (n != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; i < n; i++)
		if (pat[i] == 'x' ? !s[i] || !strchr("0123456789abcdef", s[i]) : s[i] != pat[i])
			return false;
	return true;
}

/* The PCI function the block device dev hangs under (the last PCI address
 * on its sysfs path: a partition's disk's controller), "" when none. */
static void storage_of(const struct broker *b, dev_t dev, char *out, size_t len)
{
	char link[600], *path;
	const char *c, *best = NULL;

	out[0] = '\0';
	snprintf(link, sizeof(link), "%s/sys/dev/block/%u:%u", b->conf.sysfs_root, major(dev),
		 minor(dev));
	path = realpath(link, NULL);
	if (!path)
		return;
	for (c = path; (c = strchr(c, '/')); c++) {
		const char *end = strchr(c + 1, '/');
		size_t n = end ? (size_t)(end - c - 1) : strlen(c + 1);

		if (is_bdf(c + 1, n))
			best = c + 1;
	}
	if (best)
		snprintf(out, len, "%.12s", best);
	free(path);
}

int file_io_check(const struct broker *b, int fd, bool store, struct io_file *f)
{
	struct statfs sf;
	struct stat st;
	int fl = fcntl(fd, F_GETFL), acc;

	if (fl < 0)
		return -errno;
	acc = fl & O_ACCMODE;
	/* The client's own open decides what we may do with it: an O_PATH fd
	 * or one opened the other way round reads or writes nothing here. */
	if ((fl & O_PATH) || (store ? acc == O_RDONLY : acc == O_WRONLY))
		return -EBADF;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Pipes, sockets and character devices could block a worker forever,
	 * and have no offset to read at. */
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return -EINVAL;
	/* Neither could a file system served by a process. */
	if (fstatfs(fd, &sf) < 0)
		return -errno;
	if (sf.f_type == FUSE_SUPER_MAGIC)
		return -EOPNOTSUPP;
	f->fd = fd;
	f->direct = fl & O_DIRECT;
	storage_of(b, S_ISBLK(st.st_mode) ? st.st_rdev : st.st_dev, f->storage,
		   sizeof(f->storage));
	return 0;
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
