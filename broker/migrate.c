/* SPDX-License-Identifier: MIT */
/*
 * The migration engine. Requests (jobs) queue in arrival order, CPU faults
 * ahead of the rest; the loop thread walks them, decides per chunk what to
 * do, and hands copies to a few worker threads. Workers only move bytes:
 * every piece of state (chunk locations, pool space, pins, counters) is
 * changed by the loop thread, before a copy is issued and after it
 * completes, so nothing here is shared but the two copy queues.
 *
 * A chunk changes location only when its copy has completed, and one copy
 * per chunk is in flight at a time: later requests on the chunk wait their
 * turn, so a chunk is never half-owned. Host NUMA moves are not copies: the
 * client moved its own pages (mbind) before asking, and the engine records
 * where they are.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"
#include "copy.h"

enum target_kind { TGT_PAGEMAP, TGT_SYSTEM, TGT_PREFERRED, TGT_REVOKED };

#define FAULT_INLINE_MAX (2u << 20) /* faults copied by the loop thread itself */
#define KICK_BUDGET 16384 /* chunk decisions and queue scans per engine pass */
/*
 * Neighbouring chunks that go the same way are one copy up to this size:
 * one hand-off to a worker, one pread or pwrite, one hole punch for the
 * run, instead of one each per chunk (64 KiB chunks moved at 0.5x of 2 MiB
 * ones without it). Large enough to amortise those, small enough that a
 * 64 MiB move still spreads over every worker.
 */
#define COPY_BATCH (2u << 20)

struct mig_range {
	struct allocation *al;
	uint64_t first, count, next; /* next: the next chunk to decide on */
	enum target_kind target;
	struct pagemap *pm; /* TGT_PAGEMAP: pinned while the job lives */
};

/* A PM_OP_FILE_IO job's file and bytes; its one range covers their chunks,
 * which it reads or writes where they are and never moves. */
struct mig_io {
	struct io_file f;  /* the fd is the job's, closed when it ends */
	uint64_t start, len; /* bytes of the allocation */
	uint64_t file_off;
	bool store, bounce;
	struct pm_file_io_reply rep;
};

struct mig_job {
	struct mig_job *next;
	uint64_t seq;      /* arrival order: requests on a chunk are served in it */
	uint32_t uid;      /* charged one of max_jobs_per_uid while the job lives */
	struct session *s; /* NULL once the session is gone: nobody to answer */
	uint64_t request_id;
	int done_fd;       /* PM_MIG_ASYNC: the broker's end of the completion socket */
	uint32_t flags;
	unsigned nranges, cur, inflight;
	bool stopped;      /* failed or cancelled: nothing more is issued */
	struct pm_migrate_reply rep;
	struct mig_io *io; /* a file transfer, not a migration */
	struct mig_range r[];
};

struct engine {
	struct watch ev; /* eventfd: copies completed */
	struct copy_queue q;
	struct mig_job *jobs;
	unsigned inflight; /* chunks */
	/* Bytes of chunks in flight, and how many may be: enough to keep every
	 * worker busy with a full batch and the next one queued, whatever the
	 * chunk size (a count of chunks would starve 64 KiB moves). */
	uint64_t inflight_bytes, max_inflight_bytes;
	/* Work left in this pass (chunk decisions and queue scans): a pass
	 * that runs out yields the loop to everyone else and resumes through
	 * the eventfd, so no request holds the loop thread for long. */
	unsigned budget;
	uint64_t next_seq;
	uint64_t next_deadline; /* earliest resident_until a job waits for */
	/* The copy being planned: neighbouring chunks join it until it is
	 * COPY_BATCH bytes or the run breaks, then it goes to the workers. */
	struct copy *open;
	bool check_peers;       /* an RDMA copy failed: is its link down? */
	/* File transfers in flight, and how many may be: fewer than the
	 * workers, so a slow or stuck storage device never holds them all
	 * (every fault and migration waits on a free worker). */
	unsigned io_inflight, max_io_inflight;
};

bool engine_peer_path(const struct broker *b, const struct pool *a, const struct pool *c)
{
	int da = topo_graph_lookup(b->topo, a->device), dc = topo_graph_lookup(b->topo, c->device);
	struct topo_path path;

	if (a == c || !strcmp(a->device, c->device))
		return true;
	/* GPUs: what the driver says (NVLink or PCIe P2P it will do). */
	if (a->ops == &pool_gpu_ops || c->ops == &pool_gpu_ops)
		return gpu_can_peer(a, c);
	if (da < 0 || dc < 0 || topo_classify(b->topo, da, dc, &path) < 0)
		return false;
	return path.cls == TOPO_CLASS_NV || path.p2p == TOPO_P2P_BUS_ADDR ||
	       path.p2p == TOPO_P2P_THRU_HOST_BRIDGE;
}

/* ---- finishing jobs ---- */

/* Chunk i has been decided on by the job of mr (or never will be). */
static void range_advance(struct mig_range *mr)
{
	assert(mr->next < mr->first + mr->count && mr->al->chunks[mr->next].queued);
	mr->al->chunks[mr->next].queued--;
	mr->next++;
}

static void job_fail(struct mig_job *j, int err)
{
	if (!j->rep.r.status)
		j->rep.r.status = err;
	if (j->stopped)
		return;
	j->stopped = true;
	/* What it will never decide on no longer holds the chunks' queues. */
	for (unsigned n = j->cur; n < j->nranges; n++) {
		struct mig_range *mr = &j->r[n];

		while (mr->next < mr->first + mr->count)
			range_advance(mr);
	}
}

static bool job_over(const struct mig_job *j)
{
	return !j->inflight && (j->stopped || j->cur >= j->nranges);
}

static void job_finish(struct broker *b, struct mig_job *j)
{
	struct engine *e = b->engine;

	for (struct mig_job **pp = &e->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (j->io) {
		j->io->rep.r.status = j->rep.r.status;
		if (j->s)
			session_reply(j->s, PM_OP_FILE_IO, j->request_id, &j->io->rep,
				      sizeof(j->io->rep), NULL, 0);
		close(j->io->f.fd);
		uid_uncharge(b, j->uid, UID_HANDLES, 1);
		free(j->io);
	} else if (j->done_fd >= 0) {
		struct pm_hdr hdr = { .version = PM_PROTO_VERSION_MAX, .opcode = PM_OP_MIGRATE,
				      .flags = PM_HDR_EVENT, .request_id = j->request_id };

		/* A client that closed its end does not care; nothing to undo. */
		pm_msg_send_flags(j->done_fd, &hdr, &j->rep, sizeof(j->rep), NULL, 0,
				  MSG_DONTWAIT | MSG_NOSIGNAL);
		close(j->done_fd);
	} else if (j->s) {
		session_reply(j->s, PM_OP_MIGRATE, j->request_id, &j->rep, sizeof(j->rep), NULL, 0);
	}
	for (unsigned i = 0; i < j->nranges; i++)
		if (j->r[i].pm)
			registry_unpin(b, j->r[i].pm);
	uid_uncharge(b, j->uid, UID_JOBS, 1);
	free(j);
}

static void complete(struct broker *b, struct copy *cp);

/* ---- deciding what a chunk needs ---- */

enum plan { PLAN_DONE, PLAN_ISSUED, PLAN_WAIT };

static struct pool *dev_pool(const struct pagemap *pm)
{
	return pm && pool_is_device(pm->pool) ? pm->pool : NULL;
}

/* Records a move and grows the chunk's residency when it comes straight
 * back where it was (a ping-pong), so advice-driven moves back off. */
static void note_move(struct broker *b, struct chunk *ch, const struct pagemap *from,
		      const struct pagemap *to)
{
	uint64_t now = now_ms(), base = b->conf.min_residency_ms;
	uint64_t from_id = from ? from->id : 0, to_id = to ? to->id : 0;

	if (ch->resident_until && now < ch->resident_until + ch->residency_ms &&
	    ch->came_from == to_id)
		ch->residency_ms = ch->residency_ms * 2 > b->conf.max_residency_ms
					   ? b->conf.max_residency_ms
					   : ch->residency_ms * 2;
	else
		ch->residency_ms = (uint32_t)base;
	ch->came_from = from_id;
	ch->resident_until = now + ch->residency_ms;
}

static void count_done(struct broker *b, struct mig_job *j, uint64_t chunk_size,
		       const struct copy *cp)
{
	j->rep.bytes_done += chunk_size;
	if (!cp || cp->discard)
		return;
	switch (cp->kind) {
	case CP_DIRECT:
		j->rep.bytes_direct += chunk_size;
		b->stats.bytes_direct += chunk_size;
		break;
	case CP_BOUNCE:
		j->rep.bytes_bounced += chunk_size;
		b->stats.bytes_bounced += chunk_size;
		break;
	case CP_TO_DEV:
	case CP_TO_HOST:
		j->rep.bytes_host += chunk_size;
		b->stats.bytes_host += chunk_size;
		break;
	case CP_NONE:
	case CP_FILE_IN:
	case CP_FILE_OUT:
		break;
	}
}

/* Where chunk i of the range should go; false when it stays. */
static int target_of(const struct mig_job *j, const struct mig_range *mr, const struct chunk *ch,
		     struct pagemap **to)
{
	if (j->flags & PM_MIG_FAULT) {
		*to = NULL;
		return 1;
	}
	switch (mr->target) {
	case TGT_PAGEMAP:
		*to = mr->pm;
		return 1;
	case TGT_SYSTEM:
		*to = NULL;
		return 1;
	case TGT_PREFERRED:
		if (!ch->requested && !ch->requested_system)
			return 0;
		if (ch->only_system && dev_pool(ch->where))
			return 0;
		*to = ch->requested;
		return 1;
	case TGT_REVOKED:
		break;
	}
	return -ENODEV;
}

/*
 * Whether a job that came before j still has chunk i of al to move.
 * Requests on a chunk are served in the order they came, faults included:
 * a fault may jump the queue for the copy slots, but not an earlier move
 * of its chunk (the writer was stopped by the write protection put on for
 * that move, and must be let go only once the chunk has gone and come
 * back, or its store would land in pages about to go); and no request
 * waits for one that came after it, so two never wait for each other.
 * Most chunks are wanted by one job at a time: their count says so without
 * a look at the queue.
 */
static bool pending_before(struct engine *e, const struct mig_job *j,
			   const struct allocation *al, uint64_t i)
{
	if (al->chunks[i].queued <= 1)
		return false;
	for (const struct mig_job *k = e->jobs; k; k = k->next) {
		if (k == j || k->stopped || k->seq > j->seq)
			continue;
		for (unsigned n = k->cur; n < k->nranges; n++) {
			const struct mig_range *mr = &k->r[n];

			if (e->budget)
				e->budget--;
			if (mr->al == al && i >= mr->next && i < mr->first + mr->count)
				return true;
		}
	}
	return false;
}

/*
 * A thread is stopped on this chunk and the copy home is one pwrite from a
 * pool we map: the loop thread does it rather than pay two thread hand-offs
 * (to a worker and back), which cost more than the copy. Other small copies
 * stay with the workers: done here they cost every other client's requests
 * more than they save (pmbench load, 256 clients: control requests' p50
 * 1.1-1.8 ms with them on workers, 8-15 ms done here). So does a fault that
 * brings the chunks ahead of it home too: one batched copy on a worker.
 */
static bool copy_inline(const struct mig_job *j, const struct copy *cp)
{
	return (j->flags & PM_MIG_FAULT) && j->nranges == 1 && j->r[0].count == 1 &&
	       cp->kind == CP_TO_HOST && cp->src && !cp->rsrc && !cp->rdst &&
	       cp->len <= FAULT_INLINE_MAX;
}

/* Whether want continues the open copy: the next chunk of the same run,
 * going the same way, contiguous at both ends, and room left. */
static bool batch_joins(const struct copy *open, const struct copy *want)
{
	uint64_t at = open->len;

	if (open->job != want->job || open->al != want->al ||
	    open->chunk + open->nchunks != want->chunk || open->kind != want->kind ||
	    open->engine != want->engine || open->from != want->from || open->to != want->to ||
	    open->discard != want->discard || open->punch != want->punch ||
	    open->keep_host != want->keep_host || open->len + want->len > COPY_BATCH)
		return false;
	if (open->to && want->to_off != open->to_off + at)
		return false;
	if ((want->src && want->src != open->src + at) ||
	    (want->dst && want->dst != open->dst + at) ||
	    (want->rsrc && want->rsrc_off != open->rsrc_off + at) ||
	    (want->rdst && want->rdst_off != open->rdst_off + at))
		return false;
	return true;
}

/* The open copy goes to the workers. */
static void flush_open(struct engine *e)
{
	if (e->open)
		copy_queue_push(&e->q, e->open);
	e->open = NULL;
}

/*
 * Chunk i's part of a file transfer, read or written where the chunk is
 * (its pool's mapping, its pool's engine, or the memfd). The chunk stays
 * put and busy meanwhile, like a chunk being moved.
 */
static int plan_io(struct broker *b, struct mig_job *j, struct mig_range *mr, uint64_t i)
{
	struct engine *e = b->engine;
	struct allocation *al = mr->al;
	struct chunk *ch = &al->chunks[i];
	struct pool *p = dev_pool(ch->where);
	const struct mig_io *io = j->io;
	uint64_t lo = i * al->chunk_size, hi = lo + al->chunk_size, delta;
	struct copy *cp;

	if (pending_before(e, j, al, i) || e->io_inflight >= e->max_io_inflight)
		return PLAN_WAIT;
	if (lo < io->start)
		lo = io->start;
	if (hi > io->start + io->len)
		hi = io->start + io->len;
	delta = lo - i * al->chunk_size;
	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return -ENOMEM;
	cp->kind = io->store ? CP_FILE_OUT : CP_FILE_IN;
	cp->engine = &xfer_block;
	cp->job = j;
	cp->al = al;
	cp->chunk = i;
	cp->nchunks = 1;
	cp->from = ch->where;
	cp->len = hi - lo;
	cp->chunk_len = al->chunk_size;
	cp->memfd = al->memfd;
	cp->file_off = (off_t)lo;
	cp->uffd = -1;
	cp->dst_memfd = -1;
	if (p && p->map)
		cp->src = p->map + ch->off + delta;
	else if (p)
		cp->rsrc = p, cp->rsrc_off = ch->off + delta;
	cp->io.fd = io->f.fd;
	cp->io.off = (off_t)(io->file_off + (lo - io->start));
	cp->io.direct = io->f.direct;
	cp->io.p2p = p && p->ops == &pool_p2pmem_ops && io->f.storage[0];
	cp->io.bounce = io->bounce;
	cp->io.drop_host = !io->store && p && ch->host_copy;
	cp->io.chunk_off = i * al->chunk_size;
	ch->busy = true;
	al->busy++;
	/* The pool's mapping must outlive the copy (engine_forget_pagemap). */
	if (ch->where)
		ch->where->busy++;
	j->inflight++;
	e->inflight++;
	e->io_inflight++;
	e->inflight_bytes += al->chunk_size;
	flush_open(e);
	copy_queue_push(&e->q, cp);
	return PLAN_ISSUED;
}

static int plan_chunk(struct broker *b, struct mig_job *j, struct mig_range *mr, uint64_t i)
{
	struct engine *e = b->engine;
	struct allocation *al = mr->al;
	struct chunk *ch = &al->chunks[i];
	struct pagemap *from = ch->where, *to = NULL;
	struct pool *fp = dev_pool(from), *tp;
	struct copy want = { 0 }, *cp;
	int64_t off = 0;
	int r;

	if (j->io)
		return plan_io(b, j, mr, i);
	r = target_of(j, mr, ch, &to);
	if (r < 0)
		return r;
	if (pending_before(e, j, al, i))
		return PLAN_WAIT;
	if (r == 0 || from == to) {
		count_done(b, j, al->chunk_size, NULL);
		return PLAN_DONE;
	}
	if (to && to->state == PM_STATE_REVOKED)
		return -ENODEV;
	tp = dev_pool(to);
	if (!fp && !tp) {
		/* Host to host: the client moved its pages before asking. */
		alloc_set_ref(b, &ch->where, to);
		count_done(b, j, al->chunk_size, NULL);
		return PLAN_DONE;
	}
	/* Advice-driven moves respect residency; explicit ones and faults do not. */
	if (mr->target == TGT_PREFERRED && !(j->flags & PM_MIG_FAULT) &&
	    ch->resident_until > now_ms()) {
		if (!e->next_deadline || ch->resident_until < e->next_deadline)
			e->next_deadline = ch->resident_until;
		return PLAN_WAIT;
	}
	if (tp) {
		r = uid_charge(b, al->uid, UID_PLACED_BYTES, al->chunk_size);
		if (r < 0)
			return r;
		off = space_get(tp, al->chunk_size);
		if (off < 0) {
			uid_uncharge(b, al->uid, UID_PLACED_BYTES, al->chunk_size);
			return (int)off;
		}
		/* Written down before the copy: a crash mid-copy is resolved
		 * by what the host side shows (recover.c). */
		recover_note(tp, (uint64_t)off, al, i, true);
	}
	want.job = j;
	want.al = al;
	want.chunk = i;
	want.nchunks = 1;
	want.from = from;
	want.to = to;
	want.to_off = (uint64_t)off;
	want.len = want.chunk_len = al->chunk_size;
	want.memfd = al->memfd;
	want.file_off = (off_t)(i * al->chunk_size);
	want.uffd = al->uffd ? al->uffd->fd : -1;
	want.uaddr = al->uaddr + i * al->chunk_size;
	want.discard = j->flags & PM_MIG_DISCARD;
	want.dst_memfd = tp && tp->ops == &pool_emulated_ops ? tp->k.emu.memfd : -1;
	want.confirm = tp && recover_pending_flag(tp, (uint64_t)off) ? tp : NULL;
	want.engine = xfer_pick(fp, tp);
	if (!fp) {
		want.kind = CP_TO_DEV;
		/* READ_MOSTLY keeps the host pages as a replica. */
		want.keep_host = ch->advice & PM_RUN_READ_MOSTLY;
		want.punch = !want.keep_host;
	} else if (!tp) {
		want.kind = ch->host_copy ? CP_NONE : CP_TO_HOST;
	} else {
		want.kind = engine_peer_path(b, fp, tp) ? CP_DIRECT : CP_BOUNCE;
		want.keep_host = ch->host_copy;
	}
	/* Each device side is the pool's mapping, or for a pool the broker
	 * cannot map the pool and offset its engine addresses. */
	if (fp && fp->map)
		want.src = fp->map + ch->off;
	else if (fp)
		want.rsrc = fp, want.rsrc_off = ch->off;
	if (tp && tp->map)
		want.dst = tp->map + off;
	else if (tp)
		want.rdst = tp, want.rdst_off = (uint64_t)off;
	if (e->open && batch_joins(e->open, &want)) {
		cp = NULL;
		e->open->len += want.len;
		e->open->nchunks++;
	} else {
		cp = malloc(sizeof(*cp));
		if (!cp) {
			if (tp)
				alloc_space_put(b, al, tp, (uint64_t)off);
			return -ENOMEM;
		}
		*cp = want;
	}
	ch->busy = true;
	al->busy++;
	if (from)
		from->busy++;
	/* The destination must outlive the copy even if every other
	 * reference to it goes meanwhile (advice unset, fd closed). */
	if (to) {
		to->busy++;
		registry_pin(b, to);
	}
	j->inflight++;
	e->inflight++;
	e->inflight_bytes += al->chunk_size;
	if (!cp)
		return PLAN_ISSUED;
	if (copy_inline(j, cp)) {
		copy_run(cp, NULL);
		complete(b, cp);
		return PLAN_ISSUED;
	}
	flush_open(e);
	e->open = cp;
	return PLAN_ISSUED;
}

static bool engine_full(const struct engine *e)
{
	return e->inflight && e->inflight_bytes >= e->max_inflight_bytes;
}

/* Issues what job j can issue now. Whether it got anywhere: decided on a
 * chunk, or stopped (either may let a job that waits on it go). */
static bool job_issue(struct broker *b, struct mig_job *j)
{
	struct engine *e = b->engine;
	bool moved = false;

	while (!j->stopped && j->cur < j->nranges) {
		struct mig_range *mr = &j->r[j->cur];

		while (mr->next < mr->first + mr->count) {
			int r;

			if (engine_full(e) || mr->al->chunks[mr->next].busy)
				return moved;
			if (!e->budget)
				return moved;
			e->budget--;
			r = plan_chunk(b, j, mr, mr->next);
			if (r == PLAN_WAIT)
				return moved;
			if (r < 0) {
				job_fail(j, r);
				return true;
			}
			/* A copy done in this thread may have failed the job, which
			 * then gave back every chunk it had left, this one too. */
			if (j->stopped)
				return true;
			range_advance(mr);
			moved = true;
		}
		j->cur++;
	}
	return moved;
}

/*
 * Issues whatever queued work can run now. A job that waited on an earlier
 * request's chunk may be ahead of it in the queue (faults go first): when
 * a later job gets somewhere without a copy (a chunk already in place, a
 * failure, its end), the pass runs again, or the waiter would sleep until
 * some unrelated completion woke the engine, perhaps never.
 */
void engine_kick(struct broker *b)
{
	struct engine *e = b->engine;
	struct mig_job *j, *next;
	bool again;

	e->next_deadline = 0;
	e->budget = KICK_BUDGET;
	do {
		bool waiting = false;

		again = false;
		for (j = e->jobs; j; j = next) {
			bool moved;

			next = j->next;
			moved = job_issue(b, j);
			if (job_over(j)) {
				job_finish(b, j);
				moved = true;
			} else if (!j->stopped && j->cur < j->nranges) {
				waiting = true;
			}
			/* Progress behind a waiter: it may go now. */
			if (moved && waiting && !engine_full(e))
				again = true;
		}
	} while (again && e->budget);
	flush_open(e);
	/* Out of budget with work left: the rest after the loop's other events. */
	if (!e->budget && e->jobs) {
		uint64_t one = 1;

		if (write(e->ev.fd, &one, sizeof(one)) < 0) {
			/* The counter is far from full: EAGAIN still leaves it readable. */
		}
	}
	/* Someone waits for a chunk's residency to end: wake then. */
	if (e->next_deadline)
		loop_arm_timer(b);
}

unsigned engine_jobs(const struct broker *b, unsigned *inflight)
{
	unsigned n = 0;

	for (const struct mig_job *j = b->engine->jobs; j; j = j->next)
		n++;
	if (inflight)
		*inflight = b->engine->inflight;
	return n;
}

uint64_t engine_next_deadline(const struct broker *b)
{
	return b->engine ? b->engine->next_deadline : 0;
}

/* ---- completions ---- */

/* One chunk of a finished copy (the k-th of its run). */
static void complete_chunk(struct broker *b, struct copy *cp, unsigned k)
{
	struct mig_job *j = cp->job;
	struct allocation *al = cp->al;
	uint64_t i = cp->chunk + k, to_off = cp->to_off + k * cp->chunk_len;
	struct chunk *ch = &al->chunks[i];
	struct pool *fp = dev_pool(cp->from), *tp = dev_pool(cp->to);

	ch->busy = false;
	al->busy--;
	if (cp->from)
		cp->from->busy--;
	if (cp->to)
		cp->to->busy--;
	j->inflight--;
	b->engine->inflight--;
	b->engine->inflight_bytes -= al->chunk_size;
	if (cp->err) {
		ch->error = -EIO;
		if (tp)
			alloc_space_put(b, al, tp, to_off);
	} else {
		/* The new place is confirmed before the old one is forgotten:
		 * a crash between the two leaves two good copies, not none. */
		if (tp)
			recover_note(tp, to_off, al, i, false);
		if (fp)
			alloc_space_put(b, al, fp, ch->off);
		if (tp)
			ch->off = to_off;
		ch->host_copy = tp && cp->keep_host;
		ch->error = 0;
		note_move(b, ch, cp->from, cp->to);
		alloc_set_ref(b, &ch->where, cp->to);
		count_done(b, j, al->chunk_size, cp);
		if (j->flags & PM_MIG_FAULT)
			b->stats.faults++;
	}
	if (cp->to)
		registry_unpin(b, cp->to); /* after the chunk took its own pin */
}

/* A file transfer's part of a chunk is done: the chunk is where it was. */
static void complete_io(struct broker *b, struct copy *cp)
{
	struct mig_job *j = cp->job;
	struct mig_io *io = j->io;
	struct allocation *al = cp->al;
	struct chunk *ch = &al->chunks[cp->chunk];
	struct pool *p = dev_pool(cp->from);

	xfer_account(b, XFER_BLOCK, cp->err ? 0 : cp->io.done, &cp->tally, cp->ns, cp->err);
	ch->busy = false;
	al->busy--;
	if (cp->from)
		cp->from->busy--;
	j->inflight--;
	b->engine->inflight--;
	b->engine->io_inflight--;
	b->engine->inflight_bytes -= al->chunk_size;
	io->rep.bytes_done += cp->io.done;
	io->rep.bytes_p2p_dma += cp->tally.p2p;
	io->rep.bytes_dma += cp->tally.zero_copy - cp->tally.p2p;
	io->rep.bytes_bounced += cp->tally.staged;
	/* The first part that went through host memory says why for all. */
	if (cp->tally.staged && !io->rep.reason[0]) {
		io->rep.fallback = cp->io.fallback;
		file_io_explain(b, &io->f, p, cp->io.fallback, io->bounce, io->rep.reason,
				sizeof(io->rep.reason));
		if (cp->io.fallback)
			blog(LOG_INFO, "allocation %llu: %s", (unsigned long long)al->id,
			     io->rep.reason);
	}
	/* The replica went before the load began (xfer_block.c), whatever
	 * came of it: the device side may hold new bytes. */
	if (cp->io.drop_host && cp->io.dropped)
		ch->host_copy = false;
	if (cp->err) {
		/* A failed load leaves the chunk's bytes undefined; a failed
		 * store only the client's file. */
		if (!io->store)
			ch->error = cp->err;
		blog(LOG_ERR, "allocation %llu chunk %llu: %s %s failed: %s",
		     (unsigned long long)al->id, (unsigned long long)cp->chunk,
		     io->store ? "store from" : "load into", p ? p->device : "host memory",
		     strerror(-cp->err));
		job_fail(j, cp->err);
	}
	free(cp);
	if (al->dead)
		alloc_reap(b, al);
}

static void complete(struct broker *b, struct copy *cp)
{
	struct allocation *al = cp->al;
	bool moved = cp->kind != CP_NONE && !cp->discard;

	if (cp->kind == CP_FILE_IN || cp->kind == CP_FILE_OUT) {
		complete_io(b, cp);
		return;
	}

	xfer_account(b, cp->engine->id, moved ? cp->len : 0, &cp->tally, cp->ns, cp->err);
	if (cp->err) {
		struct pool *fp = dev_pool(cp->from), *tp = dev_pool(cp->to);

		blog(LOG_ERR, "allocation %llu chunks %llu-%llu: %s copy %s -> %s failed: %s",
		     (unsigned long long)al->id, (unsigned long long)cp->chunk,
		     (unsigned long long)(cp->chunk + cp->nchunks - 1), cp->engine->name,
		     fp ? fp->device : "host", tp ? tp->device : "host", strerror(-cp->err));
		/* Not now: taking the link down revokes pagemaps, which waits
		 * for copies this very drain may still hold. */
		if (cp->rsrc || cp->rdst)
			b->engine->check_peers = true;
	}
	for (unsigned k = 0; k < cp->nchunks; k++)
		complete_chunk(b, cp, k);
	if (cp->err)
		job_fail(cp->job, -EIO);
	free(cp);
	if (al->dead)
		alloc_reap(b, al);
}

static void drain(struct broker *b)
{
	struct copy *cp = copy_queue_take_done(&b->engine->q);

	while (cp) {
		struct copy *next = cp->next;

		complete(b, cp);
		cp = next;
	}
}

static void completions(struct broker *b, struct watch *w, uint32_t events)
{
	uint64_t n;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		blog(LOG_WARN, "engine eventfd: %s", strerror(errno));
	drain(b);
	if (b->engine->check_peers) {
		b->engine->check_peers = false;
		peers_check(b);
	}
	engine_kick(b);
}

/* ---- requests ---- */

static int parse_range(struct broker *b, struct session *s, const struct pm_migrate_entry *en,
		       const struct pm_msg *m, struct mig_range *mr)
{
	struct handle *h;

	if (en->reserved)
		return -EINVAL;
	mr->al = alloc_find(s, en->alloc_id);
	if (!mr->al)
		return -ENOENT;
	if (!alloc_in_range(mr->al, en->first, en->count))
		return -EINVAL;
	mr->first = mr->next = en->first;
	mr->count = en->count;
	switch (en->target) {
	case PM_TARGET_SYSTEM:
		mr->target = TGT_SYSTEM;
		return 0;
	case PM_TARGET_PREFERRED:
		mr->target = TGT_PREFERRED;
		return 0;
	default:
		break;
	}
	if (en->target < 0 || (unsigned)en->target >= m->nfds)
		return -EINVAL;
	/* The fd is the capability: only a live handle's client end names a pagemap. */
	h = registry_handle_of_fd(b, m->fds[en->target]);
	if (!h)
		return -EBADF;
	if (h->pm->state == PM_STATE_REVOKED || h->pm->pool->gone)
		return -ENODEV;
	mr->target = TGT_PAGEMAP;
	mr->pm = h->pm;
	return 0;
}

/* Appends j to the queue (faults go ahead of all but earlier faults: a
 * thread is stopped) and gets going. */
static void job_queue(struct broker *b, struct mig_job *j)
{
	struct mig_job **tail = &b->engine->jobs;

	j->seq = ++b->engine->next_seq;
	if (j->flags & PM_MIG_FAULT)
		while (*tail && ((*tail)->flags & PM_MIG_FAULT))
			tail = &(*tail)->next;
	else
		while (*tail)
			tail = &(*tail)->next;
	j->next = *tail;
	*tail = j;
	engine_kick(b);
}

/* A job of nranges ranges for request m of session s, charged to its uid
 * (max_jobs_per_uid) until job_finish; NULL with *err when refused. */
static struct mig_job *job_new(struct broker *b, struct session *s, const struct pm_msg *m,
			       unsigned nranges, int *err)
{
	struct mig_job *j;

	*err = uid_charge(b, s->cred.uid, UID_JOBS, 1);
	if (*err < 0)
		return NULL;
	j = calloc(1, sizeof(*j) + nranges * sizeof(j->r[0]));
	if (!j) {
		uid_uncharge(b, s->cred.uid, UID_JOBS, 1);
		*err = -ENOMEM;
		return NULL;
	}
	j->uid = s->cred.uid;
	j->s = s;
	j->request_id = m->hdr.request_id;
	j->done_fd = -1;
	return j;
}

int engine_migrate(struct broker *b, struct session *s, struct pm_msg *m)
{
	const struct pm_migrate_req *rq = (const void *)m->payload;
	const struct pm_migrate_entry *en = (const void *)(rq + 1);
	struct mig_job *j;
	int sv[2] = { -1, -1 }, r;

	if (m->hdr.length < sizeof(*rq) || !rq->nranges || rq->nranges > PM_MIGRATE_MAX_RANGES ||
	    m->hdr.length != sizeof(*rq) + rq->nranges * sizeof(*en) || (rq->flags & ~PM_MIG_KNOWN))
		return -EINVAL;
	/* A fault brings one range home; it is no place for the rest. */
	if ((rq->flags & PM_MIG_FAULT) && (rq->nranges != 1 || (rq->flags & ~PM_MIG_FAULT)))
		return -EINVAL;
	j = job_new(b, s, m, rq->nranges, &r);
	if (!j)
		return r;
	j->flags = rq->flags;
	for (unsigned i = 0; i < rq->nranges; i++) {
		r = parse_range(b, s, &en[i], m, &j->r[i]);
		/* A chunk twice in one request would be decided twice (and
		 * make every later request on it scan the queue). */
		for (unsigned k = 0; r == 0 && k < i; k++)
			if (j->r[k].al == j->r[i].al &&
			    j->r[k].first < j->r[i].first + j->r[i].count &&
			    j->r[i].first < j->r[k].first + j->r[k].count)
				r = -EINVAL;
		if (r < 0) {
			uid_uncharge(b, j->uid, UID_JOBS, 1);
			free(j);
			return r;
		}
	}
	for (unsigned i = 0; i < rq->nranges; i++) {
		const struct mig_range *mr = &j->r[i];

		if (mr->pm)
			registry_pin(b, mr->pm);
		for (uint64_t c = mr->first; c < mr->first + mr->count; c++)
			mr->al->chunks[c].queued++;
	}
	j->nranges = rq->nranges;
	if (j->flags & PM_MIG_ASYNC) {
		struct pm_reply ok = { 0 };

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
			r = -errno;
			job_fail(j, r);
			j->done_fd = -1;
			j->s = NULL;
			job_finish(b, j);
			return r;
		}
		j->done_fd = sv[0];
		r = session_reply(s, PM_OP_MIGRATE, m->hdr.request_id, &ok, sizeof(ok), &sv[1], 1);
		close(sv[1]);
		if (r < 0)
			j->s = NULL;
	}
	job_queue(b, j);
	return 0;
}

int engine_file_io(struct broker *b, struct session *s, struct pm_msg *m)
{
	struct pm_file_io q;
	struct allocation *al;
	struct mig_range *mr;
	struct mig_job *j;
	struct io_file f;
	int r;

	if (m->nfds != 1)
		return -EPROTO;
	if (m->hdr.length != sizeof(q))
		return -EINVAL;
	memcpy(&q, m->payload, sizeof(q));
	if (q.reserved || (q.flags & ~PM_IO_KNOWN) || !q.len || q.start % PM_IO_ALIGN ||
	    q.len % PM_IO_ALIGN || q.file_off > (uint64_t)INT64_MAX - q.len)
		return -EINVAL;
	al = alloc_find(s, q.alloc_id);
	if (!al)
		return -ENOENT;
	if (q.start >= al->size || q.len > al->size - q.start)
		return -EINVAL;
	r = file_io_check(b, m->fds[0], q.flags & PM_IO_STORE, &f);
	if (r < 0)
		return r;
	j = job_new(b, s, m, 1, &r);
	if (!j)
		return r;
	/* The fd it holds counts with the uid's other fds. */
	r = uid_charge(b, j->uid, UID_HANDLES, 1);
	j->io = r < 0 ? NULL : calloc(1, sizeof(*j->io));
	if (!j->io) {
		if (r == 0) {
			uid_uncharge(b, j->uid, UID_HANDLES, 1);
			r = -ENOMEM;
		}
		uid_uncharge(b, j->uid, UID_JOBS, 1);
		free(j);
		return r;
	}
	j->io->f = f;
	j->io->f.fd = pm_msg_take_fd(m, 0);
	j->io->start = q.start;
	j->io->len = q.len;
	j->io->file_off = q.file_off;
	j->io->store = q.flags & PM_IO_STORE;
	j->io->bounce = q.flags & PM_IO_BOUNCE;
	mr = &j->r[0];
	mr->al = al;
	mr->first = mr->next = q.start / al->chunk_size;
	mr->count = (q.start + q.len + al->chunk_size - 1) / al->chunk_size - mr->first;
	mr->target = TGT_SYSTEM; /* unused: file jobs move nothing */
	for (uint64_t c = mr->first; c < mr->first + mr->count; c++)
		al->chunks[c].queued++;
	j->nranges = 1;
	job_queue(b, j);
	return 0;
}

void engine_session_gone(struct broker *b, struct session *s)
{
	struct mig_job *j, *next;

	for (j = b->engine->jobs; j; j = next) {
		next = j->next;
		if (j->s != s)
			continue;
		j->s = NULL;
		job_fail(j, -ECANCELED);
		if (job_over(j))
			job_finish(b, j);
	}
}

void engine_forget_alloc(struct broker *b, struct allocation *al)
{
	for (struct mig_job *j = b->engine->jobs; j; j = j->next)
		for (unsigned i = 0; i < j->nranges; i++)
			if (j->r[i].al == al && !j->stopped)
				job_fail(j, -ECANCELED);
	/* Its memfd is registered for zero copy no longer, by RDMA or CUDA
	 * (copies in flight keep what they use until they end). */
	peers_forget_file(b, al->dev, al->ino);
	gpu_forget_alloc(b, al);
	/* Jobs with nothing left in flight are answered now. */
	engine_kick(b);
}

void engine_forget_pagemap(struct broker *b, struct pagemap *pm)
{
	struct engine *e = b->engine;

	/* Copies in and out of the pool finish before its mapping goes: wait,
	 * applying completions (so chunks that just arrived are evacuated). */
	while (pm->busy) {
		uint64_t n;

		if (read(e->ev.fd, &n, sizeof(n)) < 0 && errno == EAGAIN) {
			struct timespec ts = { 0, 200000 };

			nanosleep(&ts, NULL);
		}
		drain(b);
	}
	for (struct mig_job *j = e->jobs; j; j = j->next)
		for (unsigned i = 0; i < j->nranges; i++)
			if (j->r[i].pm == pm) {
				j->r[i].pm = NULL;
				j->r[i].target = TGT_REVOKED;
				pm->pins--;
			}
}

int engine_init(struct broker *b)
{
	struct engine *e = calloc(1, sizeof(*e));
	unsigned n = b->conf.migrate_workers;
	int r;

	if (!e)
		return -ENOMEM;
	e->ev.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	e->ev.cb = completions;
	if (e->ev.fd < 0) {
		free(e);
		return -errno;
	}
	r = copy_queue_start(&e->q, n, e->ev.fd);
	if (r < 0)
		goto fail;
	e->max_inflight_bytes = 2ull * n * COPY_BATCH;
	e->max_io_inflight = n > 1 ? n / 2 : 1;
	r = loop_add(b, &e->ev, EPOLLIN);
	if (r < 0) {
		copy_queue_stop(&e->q);
		goto fail;
	}
	b->engine = e;
	return 0;
fail:
	close(e->ev.fd);
	free(e);
	return r;
}

void engine_fini(struct broker *b)
{
	struct engine *e = b->engine;

	if (!e)
		return;
	copy_queue_stop(&e->q);
	drain(b);
	while (e->jobs) {
		e->jobs->stopped = true;
		job_finish(b, e->jobs);
	}
	loop_del(b, &e->ev);
	close(e->ev.fd);
	free(e);
	b->engine = NULL;
}
