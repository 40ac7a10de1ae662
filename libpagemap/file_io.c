/* SPDX-License-Identifier: MIT */
/*
 * pm_load and pm_store: file or block-device bytes into or out of managed
 * memory where it lives (PM_OP_FILE_IO). The broker does the I/O, so that a
 * chunk in a device pool is filled in place by the storage device's DMA;
 * this side chooses the fd it gets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"

#define PM_EXPORT __attribute__((visibility("default")))

/*
 * fd again, opened O_DIRECT by this process (its own rights, the same
 * access mode), so that the storage device can DMA into the memory; -1
 * when fd is O_DIRECT already, offset is not aligned for direct I/O, or
 * the file system refuses it (its bytes then go through the page cache).
 */
static int reopen_direct(int fd, off_t offset)
{
	char path[40];
	int fl = fcntl(fd, F_GETFL);
	struct stat st;

	/* Only files and disks: opening a FIFO again could wait for a writer,
	 * a character device again could have side effects (the broker
	 * refuses both anyway). */
	if (fl < 0 || (fl & (O_DIRECT | O_PATH)) || offset % PM_IO_ALIGN || fstat(fd, &st) < 0 ||
	    (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)))
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	return open(path, (fl & O_ACCMODE) | O_DIRECT | O_CLOEXEC);
}

static ssize_t file_io(struct pm_client *c, const void *addr, size_t len, int fd, off_t offset,
		       unsigned int flags, bool store, struct pm_io_result *res)
{
	struct pm_file_io q = { 0 };
	struct pm_file_io_reply rep;
	struct pm_span sp;
	size_t got = 0;
	int dfd, r;

	if (!c || fd < 0 || offset < 0 || (flags & ~PM_FILE_BOUNCE) || len % PM_IO_ALIGN)
		return -EINVAL;
	dfd = reopen_direct(fd, offset);
again:
	r = pm_span_of(c, addr, len, &sp);
	if (r < 0)
		goto out;
	q.alloc_id = sp.id;
	q.start = sp.first * sp.chunk + ((uintptr_t)addr - sp.start);
	q.len = len;
	q.file_off = (uint64_t)offset;
	q.flags = (store ? PM_IO_STORE : 0) | (flags & PM_FILE_BOUNCE ? PM_IO_BOUNCE : 0);
	memset(&rep, 0, sizeof(rep));
	r = pm_client_call_gen(c, sp.gen, PM_OP_FILE_IO, &q, sizeof(q), dfd >= 0 ? &dfd : &fd, 1,
			       &rep.bytes_done, sizeof(rep) - sizeof(rep.r), &got, NULL);
	if (r == -ESTALE)
		goto again; /* the broker restarted: the allocation's new id */
	if (res && got == sizeof(rep) - sizeof(rep.r)) {
		memset(res, 0, sizeof(*res));
		res->bytes_done = rep.bytes_done;
		res->bytes_p2p_dma = rep.bytes_p2p_dma;
		res->bytes_dma = rep.bytes_dma;
		res->bytes_bounced = rep.bytes_bounced;
		res->fallback = rep.fallback;
		memcpy(res->reason, rep.reason, sizeof(res->reason));
		res->reason[sizeof(res->reason) - 1] = '\0';
	}
	if (r >= 0 && got != sizeof(rep) - sizeof(rep.r))
		r = -EPROTO;
out:
	if (dfd >= 0)
		close(dfd);
	return r < 0 ? r : (ssize_t)rep.bytes_done;
}

PM_EXPORT ssize_t pm_load(struct pm_client *c, void *addr, size_t len, int fd, off_t offset,
			  unsigned int flags, struct pm_io_result *res)
{
	return file_io(c, addr, len, fd, offset, flags, false, res);
}

PM_EXPORT ssize_t pm_store(struct pm_client *c, const void *addr, size_t len, int fd,
			   off_t offset, unsigned int flags, struct pm_io_result *res)
{
	return file_io(c, addr, len, fd, offset, flags, true, res);
}
