/* SPDX-License-Identifier: MIT */
/*
 * Memory of a peer broker, over RDMA (peer.c): an arena the peer registered
 * for us, filled and read with RDMA WRITE and READ. The broker cannot touch
 * it with the CPU (no mapping); a pagemap of it only needs space accounting.
 */
#include "broker.h"

static int remote_create(struct pool *p)
{
	return space_init(p);
}

static void remote_destroy(struct pool *p)
{
	space_fini(p);
}

const struct pool_ops pool_remote_ops = {
	.kind = PM_KIND_RDMA_REMOTE,
	.name = "rdma-remote",
	.create = remote_create,
	.destroy = remote_destroy,
	.engine = &xfer_verbs,
};
