/* SPDX-License-Identifier: MIT */
/*
 * The verbs engine (xfer.h): RDMA WRITE and READ to a peer broker's memory,
 * run by copy workers. A chunk goes out or comes in as pieces of the link's
 * registered transfer buffers, several in flight at once (ib_write_bw's way
 * of keeping the wire busy). Only the transfer buffers are registered on
 * this side, so pinned memory stays bounded whatever is migrated: the cost
 * is one local copy per piece (pread or pwrite of the allocation's memfd,
 * or a memcpy from a pool mapping), counted as staged.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "xfer.h"

#if HAVE_RDMA
#include "copy.h"
#include "peer_link.h"


static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Moves len bytes: out (RDMA WRITE from local to remote) or in (RDMA READ).
 * Pieces complete in posting order on an RC queue pair, so the ring of
 * buffers is reused in order. On any failure the remaining work requests
 * are waited for (flushed when the queue pair breaks) before the buffers
 * may be reused.
 */
static int xfer(struct pool *p, uint64_t roff, const struct xfer_local *loc, uint64_t len,
		bool out, struct xfer_tally *t)
{
	int fd = loc->fd;
	off_t off = loc->off;
	uint8_t *ptr = loc->ptr;
	struct link *l = p->link;
	uint64_t bs, pieces, posted = 0, done = 0, deadline;
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
	deadline = mono_ms() + l->stall_ms;
	while (done < posted || (posted < pieces && !err)) {
		struct ibv_wc wc[8];
		int n;

		while (!err && posted < pieces && posted - done < l->nbufs) {
			unsigned slot = (unsigned)(posted % l->nbufs);
			uint64_t n_bytes = len - posted * bs < bs ? len - posted * bs : bs;
			uint8_t *buf = l->xfer_buf + (uint64_t)slot * bs;
			struct ibv_sge sge = { .addr = (uintptr_t)buf, .length = (uint32_t)n_bytes,
					       .lkey = l->xfer_mr->lkey };
			struct ibv_send_wr wr = { .wr_id = posted, .sg_list = &sge, .num_sge = 1,
						  .opcode = out ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ,
						  .send_flags = IBV_SEND_SIGNALED },
					   *bad;

			if (out)
				err = copy_local_to_buf(fd, off + (off_t)(posted * bs),
						ptr ? ptr + posted * bs : NULL, buf, n_bytes);
			if (err)
				break;
			wr.wr.rdma.remote_addr = p->raddr + roff + posted * bs;
			wr.wr.rdma.rkey = p->rkey;
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
			uint64_t k = wc[i].wr_id;

			if (k == UINT64_MAX)
				continue; /* a control send that asked for nothing */
			if (wc[i].status != IBV_WC_SUCCESS) {
				err = -EIO;
				l->broken = true;
			} else if (!out && !err) {
				uint64_t n_bytes = len - k * bs < bs ? len - k * bs : bs;

				err = copy_buf_to_local(fd, off + (off_t)(k * bs), ptr ? ptr + k * bs : NULL,
					       l->xfer_buf + (k % l->nbufs) * bs, n_bytes);
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
			 * The buffers stay with the queue pair until the link is
			 * torn down, which destroys the queue pair first.
			 */
			l->broken = true;
			err = -ETIMEDOUT;
			break;
		}
	}
	pthread_mutex_unlock(&l->xfer);
	if (!err)
		t->staged += len;
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
