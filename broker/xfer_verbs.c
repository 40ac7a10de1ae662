/* SPDX-License-Identifier: MIT */
/*
 * The verbs engine (xfer.h): RDMA WRITE and READ to a peer broker's memory,
 * run by copy workers. A chunk goes out or comes in as pieces, several in
 * flight at once (ib_write_bw's way of keeping the wire busy).
 *
 * Zero copy: a piece of the allocation's memfd is posted straight from (or
 * into) the client's own pages, mapped here and registered through the
 * registration cache (regcache.h) piece by piece: the next piece is
 * registered while the last one is on the wire, and a piece's registration
 * is put as soon as it completes, so a transfer pins at most the pieces it
 * has in flight. Where that is refused (rdma.max_pinned_bytes, shared with
 * the arenas and transfer buffers, has no room; the device or the kernel
 * cannot register the memory; the local side is not a memfd but a pool
 * mapping or a bounce buffer), the piece is staged: copied through one of
 * the link's registered transfer buffers (pread or pwrite of the memfd, or
 * a memcpy) and counted as staged. So are pieces too small to be worth
 * registering (ZC_MIN).
 *
 * How long a registration lives (docs/pagemapd.md, "Zero copy"):
 *  - pinned (the device has no on-demand paging, as soft-RoCE): for the
 *    transfer only. A pinned page cannot be migrated, and a page mapped by
 *    two processes is skipped by move_pages(MPOL_MF_MOVE): the client's own
 *    NUMA moves must find its pages unpinned and mapped by it alone once
 *    its chunks are home. Pinned bytes also never outlive their use.
 *  - on-demand paging: kept idle in the cache (least recently used go
 *    first), which pins nothing; when one goes idle our mapping of it is
 *    zapped (MADV_DONTNEED), so the pages are the client's alone again and
 *    the device faults them back in on the next use.
 * RDMA READ goes straight into the client's pages only with rdma.zero_copy
 * "both": registering a hole in the memfd puts a zero page there that the
 * client sees, before the data lands, without faulting (docs/pagemapd.md).
 *
 * Only local access is ever granted on client memory, never remote: the
 * peer reaches the arenas it was given and nothing else.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "xfer.h"

#if HAVE_RDMA
#include "copy.h"
#include "peer_link.h"

/*
 * Pieces shorter than this are staged, never registered: mapping, pinning
 * and unpinning a few pages costs more than copying them (a lone 64 KiB
 * chunk moved in 5.9-6.9 ms registered against 4.7-5.0 ms staged, soft-RoCE
 * under TCG), and a small move is all latency.
 */
#define ZC_MIN (256u << 10)

/* A registration of client memory: our mapping of the range, its MR. */
struct vreg {
	struct ibv_mr *mr;
	uint8_t *map;
	uint64_t len;
};

/*
 * Maps [off, off + len) of the memfd and registers it with the link's
 * protection domain (dom), for the device to read it (RDMA WRITE's source)
 * or also to write it (RDMA READ's destination). Local access only.
 */
static int vreg(void *ctx, void *dom, int fd, off_t off, uint64_t len, unsigned flags,
		void **handle, uint8_t **base)
{
	bool wr = flags & REGCACHE_WRITE;
	int access = (wr ? IBV_ACCESS_LOCAL_WRITE : 0) |
		     (flags & REGCACHE_PIN ? 0 : IBV_ACCESS_ON_DEMAND);
	struct vreg *v = calloc(1, sizeof(*v));
	int r;

	(void)ctx;
	if (!v)
		return -ENOMEM;
	v->len = len;
	/*
	 * Writable even for the device only to read: before Linux 6.2 the
	 * kernel pins every registration for writing (FOLL_FORCE), which a
	 * read-only shared mapping refuses with EFAULT. A memfd sealed against
	 * writes still gets the read-only mapping.
	 */
	v->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, off);
	if (v->map == MAP_FAILED && !wr)
		v->map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);
	if (v->map == MAP_FAILED) {
		r = -errno;
		free(v);
		return r;
	}
	v->mr = ibv_reg_mr(dom, v->map, len, access);
	if (!v->mr) {
		r = errno ? -errno : -EIO;
		munmap(v->map, len);
		free(v);
		return r;
	}
	*handle = v;
	*base = v->map;
	return 0;
}

static void vunreg(void *ctx, void *dom, void *handle)
{
	struct vreg *v = handle;

	(void)ctx;
	(void)dom;
	ibv_dereg_mr(v->mr);
	munmap(v->map, v->len);
	free(v);
}

/* An on-demand registration goes idle: our page table entries go, which
 * also unmaps the pages from the device (its MMU notifier). */
static void vidle(void *ctx, void *dom, void *handle)
{
	struct vreg *v = handle;

	(void)ctx;
	(void)dom;
	madvise(v->map, v->len, MADV_DONTNEED);
}

const struct regcache_ops xfer_verbs_reg_ops = {
	.reg = vreg,
	.unreg = vunreg,
	.idle = vidle,
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Why a piece was staged, said once per connection. */
static void said_staged(struct link *l, int err)
{
	if (l->said_staged)
		return;
	l->said_staged = true;
	blog(LOG_INFO, "peer %s: staging transfers that cannot be registered: %s%s", l->conf.name,
	     strerror(-err), err == -ENOSPC ? " (rdma.max_pinned_bytes)" : "");
}

/*
 * The registration for a piece of a transfer (NULL: stage it). An
 * on-demand one is faulted in ahead of the piece, as a pinned one is by
 * registering.
 */
static struct regcache_ent *piece_get(struct link *l, int fd, off_t off, uint64_t len,
				       bool out)
{
	unsigned flags = (l->odp ? REGCACHE_KEEP : REGCACHE_PIN) | (out ? 0 : REGCACHE_WRITE);
	struct regcache_ent *e;
	int r = regcache_get(l->ps->regs, l->pd, fd, off, len, flags, &e);

	if (r < 0) {
		said_staged(l, r);
		return NULL;
	}
	if (l->odp) {
		struct vreg *v = regcache_handle(e);
		struct ibv_sge sge = { .addr = (uintptr_t)regcache_addr(e, off),
				       .length = (uint32_t)len, .lkey = v->mr->lkey };

		/* Best effort: without it the device faults them in itself. */
		ibv_advise_mr(l->pd, out ? IBV_ADVISE_MR_ADVICE_PREFETCH
					 : IBV_ADVISE_MR_ADVICE_PREFETCH_WRITE,
			      IBV_ADVISE_MR_FLAG_FLUSH, &sge, 1);
	}
	return e;
}

/*
 * Moves len bytes: out (RDMA WRITE from local to remote) or in (RDMA READ).
 * Pieces complete in posting order on an RC queue pair, so the ring of
 * buffers is reused in order, and a piece's registration is put when it
 * completes. On any failure the remaining work requests are
 * waited for (flushed when the queue pair breaks) before the buffers and
 * registrations may be reused; after a stall they stay with the link.
 */
static int xfer(struct pool *p, uint64_t roff, const struct xfer_local *loc, uint64_t len,
		bool out, struct xfer_tally *t)
{
	int fd = loc->fd;
	off_t off = loc->off;
	uint8_t *ptr = loc->ptr;
	struct link *l = p->k.remote.link;
	struct regcache_ent *reg[XFER_REGS_MAX] = { NULL }; /* by piece, while in flight */
	uint64_t bs, pieces, posted = 0, done = 0, deadline, zc = 0, staged = 0;
	bool zero_copy;
	int err = 0;

	if (!l)
		return -ENOTCONN;
	pthread_mutex_lock(&l->xfer);
	if (l->broken || l->state != LINK_READY || !l->xfer_mr || roff > p->capacity ||
	    len > p->capacity - roff) {
		pthread_mutex_unlock(&l->xfer);
		return l->broken || l->state != LINK_READY ? -ENOTCONN : -EINVAL;
	}
	bs = l->buf_bytes;
	pieces = (len + bs - 1) / bs;
	zero_copy = fd >= 0 && l->ps->regs &&
		    (out ? l->ps->zero_copy != RDMA_ZC_OFF : l->ps->zero_copy == RDMA_ZC_BOTH);
	deadline = mono_ms() + l->stall_ms;
	while (done < posted || (posted < pieces && !err)) {
		struct ibv_wc wc[8];
		int n;

		while (!err && posted < pieces && posted - done < l->nbufs) {
			uint64_t at = posted * bs;
			uint64_t n_bytes = len - at < bs ? len - at : bs;
			struct regcache_ent **e = &reg[posted % XFER_REGS_MAX];
			struct ibv_sge sge = { .length = (uint32_t)n_bytes };
			struct ibv_send_wr wr = { .wr_id = posted, .sg_list = &sge, .num_sge = 1,
						  .opcode = out ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
						  .send_flags = IBV_SEND_SIGNALED },
					   *bad;

			if (zero_copy && n_bytes >= ZC_MIN)
				*e = piece_get(l, fd, off + (off_t)at, n_bytes, out);
			if (*e) {
				sge.addr = (uintptr_t)regcache_addr(*e, off + (off_t)at);
				sge.lkey = ((struct vreg *)regcache_handle(*e))->mr->lkey;
			} else {
				uint8_t *buf = l->xfer_buf + (posted % l->nbufs) * bs;

				sge.addr = (uintptr_t)buf;
				sge.lkey = l->xfer_mr->lkey;
				if (out)
					err = copy_local_to_buf(fd, off + (off_t)at,
								ptr ? ptr + at : NULL, buf, n_bytes);
				if (err)
					break;
			}
			wr.wr.rdma.remote_addr = p->k.remote.raddr + roff + at;
			wr.wr.rdma.rkey = p->k.remote.rkey;
			if (ibv_post_send(l->id->qp, &wr, &bad)) {
				err = -EIO;
				break;
			}
			posted++;
		}
		n = ibv_poll_cq(l->data_cq, 8, wc);
		if (n < 0) {
			err = -EIO;
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t k = wc[i].wr_id, at, n_bytes;
			struct regcache_ent **e;

			if (k == UINT64_MAX)
				continue; /* a control send that asked for nothing */
			at = k * bs;
			n_bytes = len - at < bs ? len - at : bs;
			e = &reg[k % XFER_REGS_MAX];
			if (wc[i].status != IBV_WC_SUCCESS) {
				err = -EIO;
				l->broken = true;
			} else if (!*e && !out && !err) {
				err = copy_buf_to_local(fd, off + (off_t)at, ptr ? ptr + at : NULL,
							l->xfer_buf + (k % l->nbufs) * bs, n_bytes);
			}
			if (*e) {
				/* The device is done with the piece's pages. */
				regcache_put(l->ps->regs, *e);
				*e = NULL;
				zc += n_bytes;
			} else {
				staged += n_bytes;
			}
			done++;
		}
		if (n)
			deadline = mono_ms() + l->stall_ms;
		else if (mono_ms() > deadline) {
			/*
			 * No completion at all for that long: the link is cut or
			 * the peer hangs. Transports may retry for much longer
			 * (soft-RoCE rides out a cut of tens of seconds); a
			 * migration should fail instead, with its source intact.
			 * The buffers and registrations of what is still posted
			 * stay with the queue pair until the link is torn down,
			 * which destroys the queue pair first.
			 */
			l->broken = true;
			err = -ETIMEDOUT;
			break;
		}
	}
	/* What is still posted stays registered until the queue pair is gone;
	 * one whose piece was never posted (a failed post) goes now. */
	for (uint64_t k = done; k < posted; k++) {
		struct regcache_ent **e = &reg[k % XFER_REGS_MAX];

		if (!*e)
			continue;
		assert(l->nheld < XFER_REGS_MAX);
		l->held[l->nheld++] = *e;
		*e = NULL;
	}
	for (unsigned k = 0; k < XFER_REGS_MAX; k++)
		if (reg[k])
			regcache_put(l->ps->regs, reg[k]);
	pthread_mutex_unlock(&l->xfer);
	if (!err) {
		t->zero_copy += zc;
		t->staged += staged;
	}
	return err;
}

static int verbs_write(struct pool *p, uint64_t roff, const struct xfer_local *from, uint64_t len,
		       struct xfer_tally *t)
{
	return xfer(p, roff, from, len, true, t);
}

static int verbs_read(struct pool *p, uint64_t roff, const struct xfer_local *to, uint64_t len,
		      struct xfer_tally *t)
{
	return xfer(p, roff, to, len, false, t);
}
#else
static int verbs_write(struct pool *p, uint64_t roff, const struct xfer_local *from, uint64_t len,
		       struct xfer_tally *t)
{
	(void)p, (void)roff, (void)from, (void)len, (void)t;
	return -ENOTCONN;
}

static int verbs_read(struct pool *p, uint64_t roff, const struct xfer_local *to, uint64_t len,
		      struct xfer_tally *t)
{
	(void)p, (void)roff, (void)to, (void)len, (void)t;
	return -ENOTCONN;
}
#endif

const struct xfer_engine xfer_verbs = {
	.id = XFER_VERBS,
	.name = "verbs",
	.read = verbs_read,
	.write = verbs_write,
};
