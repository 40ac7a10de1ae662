/* SPDX-License-Identifier: MIT */
/* The transport layer's table of engines and their counters (xfer.h). */
#include <errno.h>
#include <string.h>

#include "broker.h"
#include "xfer.h"

static const struct xfer_engine *const engines[XFER_ENGINES] = {
	[XFER_CPU] = &xfer_cpu,
	[XFER_CUDA] = &xfer_cuda,
	[XFER_VERBS] = &xfer_verbs,
	[XFER_BLOCK] = &xfer_block,
};

const struct xfer_engine *xfer_engine_of(const struct pool *p)
{
	if (!p || !p->ops->engine)
		return &xfer_cpu;
	return p->ops->engine;
}

const struct xfer_engine *xfer_pick(const struct pool *from, const struct pool *to)
{
	const struct xfer_engine *f = xfer_engine_of(from), *t = xfer_engine_of(to);

	return t != &xfer_cpu ? t : f;
}

void xfer_account(struct broker *b, enum xfer_engine_id id, uint64_t len,
		  const struct xfer_tally *t, uint64_t ns, int err)
{
	struct xfer_stats *s = &b->xfer[id];

	s->busy_ns += ns;
	if (err) {
		s->failed++;
		return;
	}
	s->copies++;
	s->bytes += len;
	s->zero_copy += t->zero_copy;
	s->staged += t->staged;
	s->p2p_dma += t->p2p;
}

unsigned xfer_describe(const struct broker *b, struct pm_engine_info *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < XFER_ENGINES && n < max; i++, n++) {
		const struct xfer_stats *s = &b->xfer[i];

		memset(&out[n], 0, sizeof(out[n]));
		strncpy(out[n].name, engines[i]->name, sizeof(out[n].name) - 1);
		out[n].bytes = s->bytes;
		out[n].bytes_zero_copy = s->zero_copy;
		out[n].bytes_staged = s->staged;
		out[n].copies = s->copies;
		out[n].failed = s->failed;
		out[n].busy_ns = s->busy_ns;
		out[n].bytes_p2p_dma = s->p2p_dma;
	}
	return n;
}
