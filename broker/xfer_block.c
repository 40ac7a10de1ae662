/* SPDX-License-Identifier: MIT */
/*
 * The block engine (xfer.h): file and block-device bytes into and out of a
 * chunk where it lives (PM_OP_FILE_IO), one chunk's part per copy, on the
 * copy workers.
 *
 * The storage device's own DMA engine moves the bytes when it can: the
 * client's fd is O_DIRECT and the buffer handed to pread/pwrite is the
 * chunk's own memory. For a chunk in a p2pmem pool that memory is another
 * PCI device's, and the transfer is peer-to-peer DMA, which the kernel
 * allows only for pairs its p2pdma rules pass: EREMOTEIO otherwise. A BAR
 * mapped through resourceN has no struct pages and cannot be a DMA buffer
 * at all (EFAULT); a GPU or a remote pool is not mapped here. Whatever the
 * kernel refuses goes through the worker's host buffer instead, and the
 * copy says why (copy_io.fallback), so the reply can.
 *
 * A chunk in host memory is the allocation's memfd: it is mapped here for
 * the length of the transfer only, so that the device DMAs into the pages
 * the client maps. (xfer_cpu.c avoids mapping clients' pages because a
 * page mapped twice is one a client's mbind skips; a load races such a
 * move only for as long as the I/O takes, and the client asked for both.)
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"
#include "xfer.h"

const struct xfer_engine xfer_block = {
	.id = XFER_BLOCK,
	.name = "block",
};

/*
 * pread or pwrite until len bytes moved, the file ended (a read returned
 * 0: *done says how far) or an error. 0 or -errno.
 */
static int file_rw(int fd, bool store, uint8_t *buf, uint64_t len, off_t off, uint64_t *done)
{
	*done = 0;
	while (*done < len) {
		ssize_t n = store ? pwrite(fd, buf + *done, len - *done, off + (off_t)*done)
				  : pread(fd, buf + *done, len - *done, off + (off_t)*done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return store ? -EIO : 0;
		*done += (uint64_t)n;
	}
	return 0;
}

/* Errors that say "not this buffer" rather than "the I/O failed": the
 * transfer can still go through host memory. */
static bool dma_refused(int err)
{
	return err == -EREMOTEIO || err == -EFAULT || err == -EOPNOTSUPP ||
	       err == -524 /* ENOTSUPP, the kernel's own */;
}

/* The chunk side of n bytes at pos into or out of buf, through whatever
 * holds the chunk: a mapping, or the engine of a pool not mapped here. */
static int chunk_side(struct copy *cp, uint8_t *mem, uint64_t pos, uint8_t *buf, uint64_t n,
		      bool to_chunk)
{
	struct xfer_local via = { .fd = -1, .ptr = buf };
	struct xfer_tally ignore = { 0 };
	const struct xfer_engine *e;

	if (mem)
		return to_chunk ? copy_guarded(mem + pos, buf, n) : copy_guarded(buf, mem + pos, n);
	e = xfer_engine_of(cp->rsrc);
	return to_chunk ? e->write(cp->rsrc, cp->rsrc_off + pos, &via, n, &ignore)
			: e->read(cp->rsrc, cp->rsrc_off + pos, &via, n, &ignore);
}

/* What is left from pos, through the worker's buffer. A load that meets
 * the end of the file leaves zeros after it, as a short read would. */
static int via_bounce(struct copy *cp, uint8_t *mem, uint64_t pos, uint8_t *bounce,
		      struct xfer_tally *t)
{
	bool store = cp->kind == CP_FILE_OUT, eof = false;
	int r = 0;

	if (!bounce)
		return -ENOMEM;
	while (!r && pos < cp->len) {
		uint64_t n = cp->len - pos < COPY_BOUNCE ? cp->len - pos : COPY_BOUNCE, got = 0;

		if (store) {
			r = chunk_side(cp, mem, pos, bounce, n, false);
			if (!r)
				r = file_rw(cp->io.fd, true, bounce, n, cp->io.off + (off_t)pos, &got);
		} else {
			if (!eof)
				r = file_rw(cp->io.fd, false, bounce, n, cp->io.off + (off_t)pos,
					    &got);
			eof = eof || got < n;
			memset(bounce + got, 0, n - got);
			if (!r)
				r = chunk_side(cp, mem, pos, bounce, n, true);
		}
		cp->io.done += got;
		t->staged += got;
		pos += n;
	}
	return r;
}

/* Straight between the file and mem, by the device's DMA when the fd is
 * O_DIRECT (by the kernel's copy through its page cache when not). */
static int direct(struct copy *cp, uint8_t *mem, uint8_t *bounce, struct xfer_tally *t)
{
	bool store = cp->kind == CP_FILE_OUT;
	uint64_t got = 0;
	int r = file_rw(cp->io.fd, store, mem, cp->len, cp->io.off, &got);

	cp->io.done = got;
	if (cp->io.direct) {
		t->zero_copy += got;
		if (cp->io.p2p)
			t->p2p += got;
	} else {
		t->staged += got; /* the page cache is the host buffer */
	}
	if (!r && !store && got < cp->len)
		r = copy_guarded(mem + got, NULL, cp->len - got);
	if (r < 0 && cp->io.direct && dma_refused(r)) {
		cp->io.fallback = r;
		return via_bounce(cp, mem, got, bounce, t);
	}
	return r;
}

int xfer_block_run(struct copy *cp, uint8_t *bounce, struct xfer_tally *t)
{
	uint8_t *mem = cp->src, *host = NULL;
	int r;

	cp->io.done = 0;
	cp->io.fallback = 0;
	cp->io.dropped = false;
	/* The device chunk is about to change under a READ_MOSTLY host
	 * replica: the replica goes first, so that whatever comes of the
	 * load, the client's next touch faults the device's bytes home
	 * rather than reading the old ones. */
	if (cp->io.drop_host) {
		if (fallocate(cp->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)cp->io.chunk_off, (off_t)cp->chunk_len) < 0)
			return -errno;
		cp->io.dropped = true;
	}
	if (!mem && !cp->rsrc) {
		/* A host chunk: its memfd pages, mapped while the I/O runs. */
		host = mmap(NULL, cp->len, PROT_READ | PROT_WRITE, MAP_SHARED, cp->memfd,
			    cp->file_off);
		if (host == MAP_FAILED)
			return -errno;
		mem = host;
	}
	if (mem && !cp->io.bounce)
		r = direct(cp, mem, bounce, t);
	else
		r = via_bounce(cp, mem, 0, bounce, t);
	if (host)
		munmap(host, cp->len);
	return r;
}
