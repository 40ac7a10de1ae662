/* SPDX-License-Identifier: MIT */
/*
 * pmbench migrate's measurements: one pair in both directions with its
 * baseline interleaved, and fault-back latency. Everything outside the timed
 * calls checks: the chunks are where pm_migrate was asked to put them, and
 * the data that comes back is the data that left.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "json_out.h"
#include "pmbench.h"
#include "pmbench_migrate.h"

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif
#ifndef MPOL_LOCAL
#define MPOL_LOCAL 4
#endif

#define FAULT_MIN_SAMPLES 100

/* ---- where the buffer is ---- */

static long move_pages_sys(size_t n, void **pages, const int *nodes, int *status, int flags)
{
	return syscall(SYS_move_pages, 0, (unsigned long)n, pages, nodes, status, flags);
}

/*
 * The node most of the buffer's pages are on (a sample of them), -1 if
 * unknown. Only for chunks in host memory: each sampled page is read first,
 * because move_pages() knows only pages mapped here, and pages the broker
 * wrote into the memfd are not until touched.
 */
static int buffer_node(struct migbench *x)
{
	int count[64] = { 0 }, best = -1;
	size_t step = x->npages > 256 ? x->npages / 256 : 1, n = 0, pg = x->size / x->npages;
	volatile uint8_t sink = 0;

	for (size_t i = 0; i < x->npages; i += step) {
		x->buf_pages[n] = x->buf + i * pg;
		sink ^= *(volatile const uint8_t *)x->buf_pages[n++];
	}
	(void)sink;
	if (move_pages_sys(n, x->buf_pages, NULL, x->mp_status, 0) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (x->mp_status[i] >= 0 && x->mp_status[i] < 64)
			count[x->mp_status[i]]++;
	for (int i = 0; i < 64; i++)
		if (count[i] && (best < 0 || count[i] > count[best]))
			best = i;
	return best;
}

/* Chunks of the buffer whose resident pagemap is id; -errno on failure. */
static long chunks_at(struct migbench *x, uint64_t id)
{
	struct pm_range runs[64];
	uint8_t *p = x->buf, *end = x->buf + x->size;
	long at = 0;

	while (p < end) {
		int n = pm_query_range(x->c, p, (size_t)(end - p), runs, 64);
		uint8_t *next;

		if (n <= 0)
			return n < 0 ? n : -EPROTO;
		if (n > 64)
			n = 64;
		for (int i = 0; i < n; i++)
			if (runs[i].resident == id)
				at += (long)(runs[i].len / x->chunk);
		next = (uint8_t *)runs[n - 1].addr + runs[n - 1].len;
		if (next <= p)
			return -EPROTO;
		p = next;
	}
	return at;
}

/* After a migration to dst: every chunk says it is there, and host pages are. */
static int check_at(struct migbench *x, const struct migbench_pool *dst, char *why, size_t len)
{
	long want = (long)(x->size / x->chunk), at = chunks_at(x, dst->id);
	int node;

	if (at < 0) {
		snprintf(why, len, "pm_query_range: %s", strerror((int)-at));
		return (int)at;
	}
	if (at != want) {
		snprintf(why, len, "after pm_migrate to %s, %ld of %ld chunks are resident there",
			 dst->name, at, want);
		return -EIO;
	}
	if (dst->kind == PAGEMAP_KIND_HOST_NUMA && (node = buffer_node(x)) != dst->node) {
		snprintf(why, len, "after pm_migrate to %s, the pages are on node %d", dst->name,
			 node);
		return -EIO;
	}
	return 0;
}

/* ---- one migration, timed by the caller ---- */

static void show_progress(struct migbench *x, const struct migbench_pool *src,
			  const struct migbench_pool *dst)
{
	long at = chunks_at(x, dst->id);

	/* On a terminal one line that updates itself; in a log one line each. */
	if (at >= 0)
		fprintf(stderr, "%spmbench migrate: %s -> %s: %ld/%zu chunks%s", x->tty ? "\r" : "",
			src->name, dst->name, at, x->size / x->chunk, x->tty ? "" : "\n");
}

/*
 * pm_migrate of the whole buffer. With --progress it is asynchronous: the
 * completion fd is polled with a 200 ms timeout and each timeout prints how
 * many chunks are at the target, so only migrations longer than that pay for
 * the queries.
 */
static int migrate(struct migbench *x, const struct migbench_pool *src,
		   const struct migbench_pool *dst)
{
	struct pm_migrate_result res;
	bool shown = false;
	int fd, r;

	if (!x->progress)
		return pm_migrate(x->c, x->buf, x->size, dst->fd, 0);
	fd = pm_migrate(x->c, x->buf, x->size, dst->fd, PM_MIGRATE_ASYNC);
	if (fd < 0)
		return fd;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		r = poll(&p, 1, 200);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			r = -errno;
			break;
		}
		if (r == 0) {
			show_progress(x, src, dst);
			shown = true;
			continue;
		}
		r = pm_migrate_result(fd, &res);
		if (r == 0)
			continue;
		if (r > 0)
			r = res.status;
		break;
	}
	if (shown) {
		show_progress(x, src, dst);
		if (x->tty)
			fputc('\n', stderr);
	}
	close(fd);
	return r;
}

/* The broker's migration byte counters (direct, bounced, host). */
static int broker_counters(struct migbench *x, uint64_t v[3])
{
	struct pm_stats_reply st;
	const size_t want = sizeof(st) - sizeof(st.r);
	size_t len = 0;
	int r = pm_client_call(x->c, PM_OP_STATS, NULL, 0, &st.sessions, want, &len, NULL);

	if (r < 0)
		return r;
	if (len != want)
		return -EPROTO;
	v[0] = st.bytes_direct;
	v[1] = st.bytes_bounced;
	v[2] = st.bytes_host;
	return 0;
}

/* ---- baselines ---- */

enum base_kind { BASE_NONE, BASE_MOVE_PAGES, BASE_MEMCPY };
static const char *const base_names[] = { "none", "move_pages", "memcpy" };

/*
 * Whether move_pages() put every page of the baseline buffer where nodes
 * says: 0, the first page's error (-ENOENT: a page the kernel could not
 * find), or -EBUSY. r is what the call returned, -errno on failure, or a
 * positive count of pages it did not move. Pages left behind would flatter
 * the time.
 */
static int base_moved(const struct migbench *x, const int *nodes, long r)
{
	if (r < 0)
		return (int)r;
	for (size_t i = 0; r == 0 && i < x->npages; i++)
		if (x->mp_status[i] != nodes[i])
			r = x->mp_status[i] < 0 ? x->mp_status[i] : -EBUSY;
	return r > 0 ? -EBUSY : (int)r;
}

/* One baseline leg: the same bytes moved the kernel's or the CPU's way. */
static int base_one(struct migbench *x, enum base_kind k, int dir, double *t)
{
	double t0 = bench_now();
	long r = 0;

	if (k == BASE_MOVE_PAGES)
		r = move_pages_sys(x->npages, x->mp_pages, x->mp_node[dir], x->mp_status,
				   MPOL_MF_MOVE);
	else
		memcpy(x->plain[!dir], x->plain[dir], x->size);
	if (r < 0)
		r = -errno;
	*t = bench_now() - t0;
	return k == BASE_MOVE_PAGES ? base_moved(x, x->mp_node[dir], r) : 0;
}

/*
 * Puts the move_pages buffer's pages on node a (leg 0 moves them to b, leg 1
 * back), every one of them: a page already on b would not be moved by the
 * first leg and would flatter it.
 */
static int base_prepare(struct migbench *x, enum base_kind k, int na, int nb)
{
	long r;

	if (k != BASE_MOVE_PAGES)
		return 0;
	for (size_t i = 0; i < x->npages; i++) {
		x->mp_node[0][i] = nb;
		x->mp_node[1][i] = na;
	}
	r = move_pages_sys(x->npages, x->mp_pages, x->mp_node[1], x->mp_status, MPOL_MF_MOVE);
	if (r < 0)
		r = -errno;
	return base_moved(x, x->mp_node[1], r);
}

/* ---- results ---- */

static void record_error(struct migbench *x, const struct migbench_pool *a,
			 const struct migbench_pool *b, const char *stage, int err, const char *why)
{
	json_object *o = json_object_new_object();

	fprintf(stderr, "pmbench migrate: %s -> %s, %zu-byte chunks: %s: %s\n", a->name, b->name,
		x->chunk, stage, why && why[0] ? why : strerror(-err));
	x->failures++;
	if (o && (json_out_add(o, "src", json_object_new_string(a->name)) ||
		  json_out_add(o, "dst", json_object_new_string(b->name)) ||
		  json_out_add(o, "chunk_size", json_object_new_uint64(x->chunk)) ||
		  json_out_add(o, "stage", json_object_new_string(stage)) ||
		  json_out_add(o, "error", json_object_new_string(why && why[0] ? why
									      : strerror(-err))))) {
		json_object_put(o);
		return;
	}
	json_out_append(x->errors, o);
}

static void record_leg(struct migbench *x, const struct migbench_pool *src,
		       const struct migbench_pool *dst, const struct migbench_leg *l,
		       enum base_kind bk)
{
	json_object *o = json_object_new_object(), *sub;
	struct bench_stats pm, bs = { 0 };
	double ratio = NAN;

	bench_stats(l->pm, x->samples, &pm);
	if (bk != BASE_NONE) {
		bench_stats(l->base, x->samples, &bs);
		ratio = bench_gbps(x->size, pm.median) / bench_gbps(x->size, bs.median);
	}
	if (!o || json_out_add(o, "src", json_object_new_string(src->name)) ||
	    json_out_add(o, "dst", json_object_new_string(dst->name)) ||
	    json_out_add(o, "src_kind", json_object_new_string(migbench_kind_name(src->kind))) ||
	    json_out_add(o, "dst_kind", json_object_new_string(migbench_kind_name(dst->kind))) ||
	    json_out_add(o, "emulated",
			 json_object_new_boolean(src->kind == PAGEMAP_KIND_EMULATED ||
						 dst->kind == PAGEMAP_KIND_EMULATED)) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(x->chunk)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(x->size)) ||
	    json_out_add(o, "samples", json_object_new_int(x->samples)) ||
	    bench_add_rates(o, x->size, &pm))
		goto fail;
	/* Each sub-object goes into o first: o owns it from then on, also on failure. */
	sub = json_object_new_object();
	if (json_out_add(o, "baseline", sub) ||
	    json_out_add(sub, "kind", json_object_new_string(base_names[bk])) ||
	    (bk != BASE_NONE && bench_add_rates(sub, x->size, &bs)) || json_out_add_num(o, "ratio", ratio, 3))
		goto fail;
	if (!l->counters_ok) {
		if (json_object_object_add(o, "broker_bytes_per_sample", NULL))
			goto fail;
	} else {
		sub = json_object_new_object();
		if (json_out_add(o, "broker_bytes_per_sample", sub) ||
		    json_out_add(sub, "direct", json_object_new_uint64(l->counters[0] /
									(uint64_t)x->samples)) ||
		    json_out_add(sub, "bounced", json_object_new_uint64(l->counters[1] /
									 (uint64_t)x->samples)) ||
		    json_out_add(sub, "host", json_object_new_uint64(l->counters[2] /
								      (uint64_t)x->samples)))
			goto fail;
	}
	/* Per sample, as the counters above: the engines, zero-copy and staged bytes. */
	if (l->engines_ok && engine_stats_json(o, &l->engines, (uint64_t)x->samples) < 0)
		goto fail;
	if (json_out_add(o, "verified", json_object_new_boolean(true)) ||
	    json_out_append(x->pairs, o))
		goto oom;
	return;
fail:
	json_object_put(o);
oom:
	fprintf(stderr, "pmbench migrate: %s -> %s: %s\n", src->name, dst->name, strerror(ENOMEM));
	x->failures++;
}

/* ---- one pair at one chunk size ---- */

/* Two nodes: the kernel's move_pages(); anything with a device pool: a memcpy. */
static enum base_kind baseline_of(const struct migbench_pool *a, const struct migbench_pool *b)
{
	if (migbench_pool_is_host(a) && migbench_pool_is_host(b))
		return a->node >= 0 && b->node >= 0 ? BASE_MOVE_PAGES : BASE_NONE;
	return BASE_MEMCPY;
}

/* Times one direction: pm_migrate, and the broker's counters around it. */
static int pm_leg(struct migbench *x, const struct migbench_pool *src,
		  const struct migbench_pool *dst, struct migbench_leg *l, int i)
{
	uint64_t before[3], after[3];
	struct engine_stats e0, e1, d;
	bool counted = broker_counters(x, before) == 0;
	bool engines = engine_stats_read(x->c, &e0) == 0;
	double t0 = bench_now();
	int r = migrate(x, src, dst);

	l->pm[i] = bench_now() - t0;
	if (r == 0 && counted && broker_counters(x, after) == 0) {
		for (int k = 0; k < 3; k++)
			l->counters[k] += after[k] - before[k];
	} else {
		l->counters_ok = false;
	}
	if (r == 0 && engines && engine_stats_read(x->c, &e1) == 0) {
		engine_stats_delta(&e0, &e1, &d);
		engine_stats_add(&l->engines, &d);
	} else {
		l->engines_ok = false;
	}
	return r;
}

void migbench_run_pair(struct migbench *x, const struct migbench_job *j, uint64_t seed)
{
	const struct migbench_pool *a = &x->pools[j->a], *b = &x->pools[j->b];
	enum base_kind bk = baseline_of(a, b);
	const char *stage = "placing the buffer";
	char why[256] = "";
	uint64_t want;
	double t;
	int r;

	for (int d = 0; d < 2; d++) {
		memset(x->leg[d].counters, 0, sizeof(x->leg[d].counters));
		x->leg[d].counters_ok = true;
		memset(&x->leg[d].engines, 0, sizeof(x->leg[d].engines));
		x->leg[d].engines_ok = true;
	}
	/* One broker request brings everything home faster than faulting it chunk by chunk. */
	r = pm_migrate(x->c, x->buf, x->size, PM_FD_SYSTEM, 0);
	if (r == 0) {
		want = bench_fill(x->buf, x->size, seed);
		r = migrate(x, &x->pools[0], a);
	}
	if (r == 0) {
		stage = "baseline";
		r = base_prepare(x, bk, a->node, b->node);
	}
	/* A warm-up round, which also checks that pm_migrate puts the chunks where asked. */
	if (r == 0) {
		stage = "warm-up";
		r = migrate(x, a, b);
	}
	if (r == 0)
		r = check_at(x, b, why, sizeof(why));
	if (r == 0)
		r = migrate(x, b, a);
	if (r == 0)
		r = check_at(x, a, why, sizeof(why));
	for (int d = 0; r == 0 && bk != BASE_NONE && d < 2; d++)
		r = base_one(x, bk, d, &t);
	/* Interleaved, so that drift falls on pm_migrate and its baseline alike. */
	for (int i = 0; r == 0 && i < x->samples; i++) {
		stage = "pm_migrate";
		r = pm_leg(x, a, b, &x->leg[0], i);
		if (r == 0)
			r = pm_leg(x, b, a, &x->leg[1], i);
		stage = "baseline";
		for (int d = 0; r == 0 && bk != BASE_NONE && d < 2; d++)
			r = base_one(x, bk, d, &x->leg[d].base[i]);
	}
	if (r == 0) {
		stage = "verify";
		r = bench_verify(x->buf, x->size, x->chunk, seed, want, why, sizeof(why));
	}
	if (r < 0) {
		record_error(x, a, b, stage, r, why);
		return;
	}
	record_leg(x, a, b, &x->leg[0], bk);
	if (j->both)
		record_leg(x, b, a, &x->leg[1], bk);
}

/* ---- fault-back latency ---- */

/* Touch order k of round r: in order, or a fresh shuffle per round. */
static void fault_order(size_t *ord, size_t n, bool random, uint64_t *rng)
{
	for (size_t k = 0; k < n; k++)
		ord[k] = k;
	for (size_t k = n - 1; random && k > 0; k--) {
		size_t m, t;

		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		m = (size_t)(*rng % (k + 1));
		t = ord[k];
		ord[k] = ord[m];
		ord[m] = t;
	}
}

/* The bare userfaultfd floors for this chunk size, in seconds; NAN when
 * they could not be measured (said on stderr: the result then fails). */
static void fault_floors(struct migbench *x, size_t want_n, double *rtt, double *fill)
{
	size_t n = x->size / x->chunk > 64 ? 64 : x->size / x->chunk;
	int r = bench_uffd_fault(x->chunk, n, (int)want_n, false, rtt);

	if (r == 0)
		r = bench_uffd_fault(x->chunk, n, (int)want_n, true, fill);
	if (r < 0) {
		fprintf(stderr, "pmbench migrate: fault-back baseline (userfaultfd): %s\n",
			strerror(-r));
		*rtt = *fill = NAN;
	}
}

/*
 * Migrates the buffer to pool p, then times the first CPU read of each
 * chunk, which brings the chunk back (userfaultfd in libpagemap), in rounds
 * until there are enough samples: once touching the chunks in order (where
 * libpagemap's window brings the chunks ahead home with a fault), once in
 * a random order (every fault alone). Baselines from the same run: a bare
 * userfaultfd round trip on shmem, the same filling the whole chunk (the
 * kernel's floor for bringing that many bytes back), and a memcpy of one
 * chunk. Appends one result per order to out; the benchmark fails when a
 * baseline could not be measured.
 */
void migbench_fault_back(struct migbench *x, const struct migbench_pool *p, uint64_t seed,
			 json_object *out)
{
	size_t nchunks = x->size / x->chunk, want_n = (size_t)x->samples;
	size_t rounds, *ord = NULL;
	uint64_t rng = seed | 1;
	double rtt, fill;

	if (want_n < FAULT_MIN_SAMPLES)
		want_n = FAULT_MIN_SAMPLES;
	rounds = (want_n + nchunks - 1) / nchunks;
	fault_floors(x, want_n, &rtt, &fill);
	if (isnan(rtt))
		x->failures++;
	ord = calloc(nchunks, sizeof(*ord));
	for (int random = 0; random < 2; random++) {
		double *lat = calloc(rounds * nchunks, sizeof(double));
		double *base = calloc(rounds * nchunks, sizeof(double));
		const char *stage = "placing the buffer";
		struct bench_stats ls, bs;
		volatile uint8_t sink = 0;
		char why[256] = "";
		uint64_t want = 0;
		size_t n = 0;
		json_object *o, *b;
		int r = lat && base && ord ? pm_migrate(x->c, x->buf, x->size, PM_FD_SYSTEM, 0)
					   : -ENOMEM;

		if (r == 0)
			want = bench_fill(x->buf, x->size, seed);
		for (size_t round = 0; r == 0 && round < rounds; round++) {
			stage = "pm_migrate";
			r = migrate(x, &x->pools[0], p);
			if (r == 0)
				r = check_at(x, p, why, sizeof(why));
			stage = "first touch";
			fault_order(ord, nchunks, random, &rng);
			for (size_t k = 0; r == 0 && k < nchunks; k++) {
				volatile const uint8_t *c = x->buf + ord[k] * x->chunk;
				double t0 = bench_now();

				sink ^= *c;
				lat[n] = bench_now() - t0;
				t0 = bench_now();
				memcpy(x->plain[1], x->plain[0], x->chunk);
				base[n++] = bench_now() - t0;
			}
		}
		if (r == 0) {
			stage = "verify";
			r = bench_verify(x->buf, x->size, x->chunk, seed, want, why, sizeof(why));
		}
		(void)sink;
		if (r < 0) {
			record_error(x, &x->pools[0], p, stage, r, why);
			free(lat);
			free(base);
			continue;
		}
		bench_stats(lat, (int)n, &ls);
		bench_stats(base, (int)n, &bs);
		o = json_object_new_object();
		b = NULL;
		if (!o || json_out_add(o, "chunk_size", json_object_new_uint64(x->chunk)) ||
		    json_out_add(o, "order", json_object_new_string(random ? "random" : "sequential")) ||
		    json_out_add(o, "samples", json_object_new_int((int)n)) ||
		    json_out_add_num(o, "median_us", ls.median * 1e6, 2) ||
		    json_out_add_num(o, "p5_us", ls.p5 * 1e6, 2) ||
		    json_out_add_num(o, "p95_us", ls.p95 * 1e6, 2) ||
		    json_out_add(o, "baseline", b = json_object_new_object()) ||
		    json_out_add(b, "kind", json_object_new_string("uffd_round_trip")) ||
		    json_out_add_num(b, "median_us", rtt * 1e6, 2) ||
		    json_out_add_num(o, "slowdown", ls.median / rtt, 1) ||
		    json_out_add_num(o, "uffd_fill_chunk_us", fill * 1e6, 2) ||
		    json_out_add_num(o, "vs_uffd_fill_chunk", ls.median / fill, 2) ||
		    json_out_add_num(o, "memcpy_chunk_us", bs.median * 1e6, 2) ||
		    json_out_add(o, "verified", json_object_new_boolean(true)) ||
		    json_out_append(out, o)) {
			json_object_put(o);
			fprintf(stderr, "pmbench migrate: fault-back: %s\n", strerror(ENOMEM));
			x->failures++;
		}
		free(lat);
		free(base);
	}
	free(ord);
}

/* ---- buffers ---- */

/*
 * A plain buffer on the same footing as managed memory. That is shmem in
 * 4 KiB pages, so these are too. And it is out of reach of automatic NUMA
 * balancing (a shmem mapping without a policy of its own, or bound by
 * pm_migrate, is never scanned), so these get a policy of their own:
 * MPOL_LOCAL places pages as the default does, but without MPOL_F_MOF the
 * scanner skips the mapping. Scanned, its PTEs turn PROT_NONE every scan
 * period, and a 6.1 kernel's move_pages() then finds no page there
 * (-ENOENT, nothing moved). Best effort: base_moved() catches what it
 * would have prevented, and fails the baseline.
 */
static void *map_plain(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, size, MADV_NOHUGEPAGE);
	syscall(SYS_mbind, p, size, MPOL_LOCAL, NULL, 0, 0);
	memset(p, 0x5a, size);
	return p;
}

int migbench_buffers_init(struct migbench *x)
{
	long pg = sysconf(_SC_PAGESIZE);

	x->npages = x->size / (size_t)pg;
	for (int d = 0; d < 2; d++) {
		x->plain[d] = map_plain(x->size);
		x->mp_node[d] = calloc(x->npages, sizeof(int));
		x->leg[d].pm = calloc((size_t)x->samples, sizeof(double));
		x->leg[d].base = calloc((size_t)x->samples, sizeof(double));
		if (!x->plain[d] || !x->mp_node[d] || !x->leg[d].pm || !x->leg[d].base)
			return -ENOMEM;
	}
	x->mp = map_plain(x->size);
	x->mp_pages = calloc(x->npages, sizeof(void *));
	x->buf_pages = calloc(x->npages, sizeof(void *));
	x->mp_status = calloc(x->npages, sizeof(int));
	if (!x->mp || !x->mp_pages || !x->buf_pages || !x->mp_status)
		return -ENOMEM;
	for (size_t i = 0; i < x->npages; i++)
		x->mp_pages[i] = x->mp + i * (size_t)pg;
	return 0;
}

void migbench_buffers_free(struct migbench *x)
{
	for (int d = 0; d < 2; d++) {
		if (x->plain[d])
			munmap(x->plain[d], x->size);
		free(x->mp_node[d]);
		free(x->leg[d].pm);
		free(x->leg[d].base);
	}
	if (x->mp)
		munmap(x->mp, x->size);
	free(x->mp_pages);
	free(x->buf_pages);
	free(x->mp_status);
}
