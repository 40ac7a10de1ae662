/* SPDX-License-Identifier: MIT */
/*
 * The CPU engine (xfer.h): copies between host memory and pools the broker
 * maps (BAR windows, emulated pools), run by the copy workers in parallel.
 *
 * The host side goes through pread/pwrite on the allocation's memfd rather
 * than a mapping of it: the broker then never maps a client's pages (which
 * would make them shared, and unmovable by the client's mbind without
 * CAP_SYS_NICE), and a device mapping that went bad (a BAR whose device was
 * removed) fails the copy with -EFAULT inside the kernel instead of killing
 * the broker with SIGBUS. It is also the faster way here: a write into a
 * fresh shmem page through a mapping zeroes the page first, pwrite does not
 * (docs/transport.md has the figures).
 *
 * Copies home go one better where the client told us its userfaultfd
 * (PM_OP_UFFD): UFFDIO_COPY fills the holes of the client's own mapping,
 * page by page with no zeroing, without the inode lock that serialises
 * every pwrite to one memfd (so workers copy home in parallel), and leaves
 * the pages mapped: the client's next touch costs no fault.
 */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include "broker.h"
#include "copy.h"
#include "xfer.h"

/*
 * As much of the copy home as UFFDIO_COPY places in the client's mapping:
 * the bytes done. It stops at the first page it cannot fill (one already
 * there, a range not registered, a mapping gone or changing), and the rest
 * goes through the memfd. The faulting thread, if any, is woken by the
 * client's fault handler once the broker has answered, not here.
 */
static uint64_t copy_into_mapping(struct copy *cp)
{
	uint64_t done = 0;

	while (done < cp->len) {
		struct uffdio_copy c = { .dst = cp->uaddr + done,
					 .src = (uintptr_t)(cp->src + done),
					 .len = cp->len - done,
					 .mode = UFFDIO_COPY_MODE_DONTWAKE };
		int r = ioctl(cp->uffd, UFFDIO_COPY, &c);

		if (c.copy > 0)
			done += (uint64_t)c.copy;
		if (!r)
			continue;
		/* -EAGAIN: the mapping is changing (fork, mremap); what is
		 * left goes the other way rather than spin. */
		break;
	}
	return done;
}

int xfer_cpu_run(struct copy *cp, uint8_t *bounce, struct xfer_tally *t)
{
	uint64_t placed;
	int r = 0;

	switch (cp->kind) {
	case CP_NONE:
		break;
	case CP_TO_DEV:
		r = copy_local_to_buf(cp->memfd, cp->file_off, NULL, cp->dst, cp->len);
		break;
	case CP_TO_HOST:
		if (cp->discard)
			break;
		placed = cp->uffd >= 0 ? copy_into_mapping(cp) : 0;
		if (placed < cp->len)
			r = copy_buf_to_local(cp->memfd, cp->file_off + (off_t)placed, NULL,
					      cp->src + placed, cp->len - placed);
		break;
	case CP_DIRECT:
		r = copy_guarded(cp->dst, cp->src, cp->len);
		break;
	case CP_BOUNCE:
		/* The path between the pools is not peer to peer: through host
		 * memory, a piece at a time, as a DMA engine would stage it. */
		if (!bounce)
			return -ENOMEM;
		for (uint64_t done = 0; !r && done < cp->len; done += COPY_BOUNCE) {
			uint64_t n = cp->len - done < COPY_BOUNCE ? cp->len - done : COPY_BOUNCE;

			r = copy_guarded(bounce, cp->src + done, n);
			if (!r)
				r = copy_guarded(cp->dst + done, bounce, n);
		}
		if (!r)
			t->staged += cp->len;
		break;
	case CP_FILE_IN:
	case CP_FILE_OUT:
		return -EINVAL; /* the block engine's (xfer_block.c) */
	}
	return r;
}

/* A mapped pool's bytes, for callers outside the copy path (evacuation). */
static int cpu_read(struct pool *p, uint64_t poff, const struct xfer_local *to, uint64_t len,
		    struct xfer_tally *t)
{
	(void)t;
	if (!p->map || poff > p->capacity || len > p->capacity - poff)
		return -EINVAL;
	return copy_buf_to_local(to->fd, to->off, to->ptr, p->map + poff, len);
}

static int cpu_write(struct pool *p, uint64_t poff, const struct xfer_local *from, uint64_t len,
		     struct xfer_tally *t)
{
	(void)t;
	if (!p->map || poff > p->capacity || len > p->capacity - poff)
		return -EINVAL;
	return copy_local_to_buf(from->fd, from->off, from->ptr, p->map + poff, len);
}

const struct xfer_engine xfer_cpu = {
	.id = XFER_CPU,
	.name = "cpu",
	.read = cpu_read,
	.write = cpu_write,
};
