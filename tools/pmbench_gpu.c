/* SPDX-License-Identifier: MIT */
/*
 * pmbench gpu: pm_migrate of a buffer from system memory to a GPU's pool
 * (cudaN/vram) and back, at 64 KiB and 2 MiB chunks, next to what the CUDA
 * driver does with as many bytes on the same GPU in the same run:
 * cuMemcpyHtoD/DtoH between pinned host memory (cuMemAllocHost) and a
 * cuMemAlloc buffer (the baseline each ratio is against), the same from
 * pageable memory (the driver's own staging), and cuMemPrefetchAsync of
 * managed memory (cuMemAllocManaged) to the device and back to the CPU.
 * Then GPU to GPU: pm_migrate from cudaN's pool to a second GPU's and back,
 * against cuMemcpyPeer between two cuMemAlloc buffers on the same two
 * devices (peer access enabled where the driver allows); with one GPU that
 * part is skipped, and says why. Methods take turns sample by sample, so
 * that drift falls on all alike; data is filled before and checked after,
 * never inside the timed calls. Around every timed pm_migrate the broker's
 * engine counters are read (PM_OP_ENGINES): each leg reports what its copies
 * moved zero-copy and staged. The driver is loaded at run time
 * (cuda/cuda_api.h): without it, without the device, or with a broker that
 * has no such GPU pool, the command says why (JSON) and exits 77.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cuda_api.h"
#include "engine_stats.h"
#include "json_out.h"
#include "pagemap.h"
#include "topo.h"
#include "pmbench.h"

#define SMALL_SHIFT 16 /* 64 KiB chunks */
#define LARGE_SHIFT 21 /* 2 MiB chunks, the default */
#define GOAL_RATIO 0.9 /* the goal: pm_migrate at 0.9x pinned cuMemcpy or better */
#define EXIT_SKIP 77

enum dir { TO_GPU, TO_HOST, NDIRS };
/* GPU to GPU: out to the peer, and back. */
enum pdir { TO_PEER, FROM_PEER, NPDIRS };
/* What moves the bytes: pm_migrate, then the baselines. */
enum method { M_PM, M_PINNED, M_PAGEABLE, M_MANAGED, NMETHODS };

static const char *const method_key[NMETHODS] = { "pm_migrate", "pinned_memcpy",
						  "pageable_memcpy", "managed_prefetch" };

static const char usage_text[] =
	"Usage: pmbench gpu [--json] [--socket PATH] [--gpu cudaN] [--peer cudaM] [--size BYTES]\n"
	"                   [--samples N]\n"
	"pm_migrate between system memory and a GPU's pool vs the CUDA driver on the same GPU:\n"
	"cuMemcpyHtoD/DtoH from pinned memory (the baseline of the ratios) and from pageable\n"
	"memory, cuMemPrefetchAsync of managed memory; and between two GPUs' pools vs\n"
	"cuMemcpyPeer. Each leg reports the bytes the broker's copies moved zero-copy and\n"
	"staged. Exits 77 (skipped) without a CUDA driver, without the device, or when the\n"
	"broker lacks the pool; with one GPU, GPU to GPU is skipped and says why.\n"
	"  --socket PATH  the broker (default $PAGEMAP_SOCKET, then the usual sockets)\n"
	"  --gpu cudaN    the broker's pool cudaN/vram, on the driver's device N (default cuda0)\n"
	"  --peer cudaM   the second GPU for GPU to GPU (default: the first other device)\n"
	"  --size BYTES   buffer size, K/M/G suffixes (default 256M)\n"
	"  --samples N    timed round trips per chunk size (10..100000, default 10)\n"
	"  --json         everything, in JSON (default: a summary per leg)\n";

/* The second GPU, for GPU to GPU. */
struct peerbench {
	int ordinal;            /* -1: the first other device */
	char pool[32];          /* "cuda1/vram" */
	cu_device dev;
	cu_context ctx;
	bool ctx_held;
	int fd;
	struct pagemap_info info;
	/* Why GPU to GPU is not measured at all; NULL when it is. */
	const char *skip;
	char skip_buf[320];
	/* The baseline: cuMemcpyPeer between src (on the first GPU) and dst
	 * (on this one); why it is not (or no longer) measured. */
	cu_deviceptr src, dst;
	uint64_t sum;
	const char *off;
	char off_buf[256];
	int can_access;         /* cuDeviceCanAccessPeer both ways; -1 unknown */
	const char *access;     /* peer access for the baseline: "enabled", or why not */
	char access_buf[160];
	double *t[2][NPDIRS];   /* [0] pm_migrate, [1] cuMemcpyPeer */
	struct engine_leg le[NPDIRS];
};

struct gpubench {
	struct pm_client *c;
	bool json; /* --json: the document, not the summary */
	struct cuda_api cu;
	int ordinal;            /* N of cudaN: the broker's device N and the driver's */
	char pool[32];          /* "cuda0/vram" */
	cu_device dev;
	cu_context ctx;         /* the device's primary context, while held */
	bool ctx_held;
	char model[128], busid[32];
	int managed_access;     /* CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS; -1 unknown */
	int fd;                 /* the pool's pagemap */
	struct pagemap_info info;
	size_t size;
	int samples;
	uint64_t seed;
	/* The baselines' buffers (size bytes each) and their data's checksums:
	 * host and device buffers per method (managed: the one buffer). */
	void *host[NMETHODS];
	cu_deviceptr dbuf[NMETHODS], managed;
	uint64_t sum[NMETHODS];
	/* Why a baseline is not (or no longer) measured; NULL while it is. */
	const char *off[NMETHODS];
	char off_buf[NMETHODS][256];
	double *t[NMETHODS][NDIRS]; /* seconds per sample */
	struct engine_leg le[NDIRS];
	struct peerbench pe;
	json_object *errors;
	int failures;
};

/* ---- errors ---- */

/* chunk 0: not tied to a chunk size (setting up). */
static void record_error(struct gpubench *x, const char *stage, size_t chunk, int err,
			 const char *why)
{
	const char *msg = why && why[0] ? why : strerror(-err);
	json_object *o = json_object_new_object();

	if (chunk)
		fprintf(stderr, "pmbench gpu: %zu-byte chunks: %s: %s\n", chunk, stage, msg);
	else
		fprintf(stderr, "pmbench gpu: %s: %s\n", stage, msg);
	x->failures++;
	if (o && (json_out_add(o, "stage", json_object_new_string(stage)) ||
		  (chunk ? json_out_add(o, "chunk_size", json_object_new_uint64(chunk))
			 : json_object_object_add(o, "chunk_size", NULL)) ||
		  json_out_add(o, "error", json_object_new_string(msg)))) {
		json_object_put(o);
		return;
	}
	json_out_append(x->errors, o);
}

/* Stops measuring baseline m: call failed with r. */
static void base_fail(struct gpubench *x, enum method m, size_t chunk, const char *call,
		      cu_result r)
{
	char buf[64];

	snprintf(x->off_buf[m], sizeof(x->off_buf[m]), "%s: %s", call,
		 cuda_error(&x->cu, r, buf, sizeof(buf)));
	x->off[m] = x->off_buf[m];
	record_error(x, method_key[m], chunk, -EIO, x->off[m]);
}

/* ---- baselines: the CUDA driver moving as many bytes on the same GPU ---- */

/* Pinned (cuMemAllocHost) or pageable (plain) host memory, and a device
 * buffer of its own. */
static void memcpy_prepare(struct gpubench *x, enum method m)
{
	cu_result r;

	if (m == M_PINNED && (!x->cu.mem_alloc_host || !x->cu.mem_free_host)) {
		x->off[m] = "the CUDA driver lacks cuMemAllocHost_v2 or cuMemFreeHost";
		return;
	}
	if (m == M_PINNED) {
		r = x->cu.mem_alloc_host(&x->host[m], x->size);
		if (r != CU_SUCCESS) {
			x->host[m] = NULL;
			base_fail(x, m, 0, "cuMemAllocHost", r);
			return;
		}
	} else {
		x->host[m] = malloc(x->size);
		if (!x->host[m]) {
			x->off[m] = "no memory for the pageable buffer";
			record_error(x, method_key[m], 0, -ENOMEM, x->off[m]);
			return;
		}
	}
	r = x->cu.mem_alloc(&x->dbuf[m], x->size);
	if (r != CU_SUCCESS) {
		x->dbuf[m] = 0;
		base_fail(x, m, 0, "cuMemAlloc", r);
		return;
	}
	x->sum[m] = bench_fill(x->host[m], x->size, x->seed);
	x->seed += x->size;
}

static void managed_prepare(struct gpubench *x)
{
	cu_result r;

	if (!x->cu.mem_alloc_managed || !x->cu.mem_prefetch_async || !x->cu.stream_synchronize) {
		x->off[M_MANAGED] = "the CUDA driver lacks cuMemAllocManaged, cuStreamSynchronize "
				    "or cuMemPrefetchAsync_v2 (CUDA 12.2 or later)";
		return;
	}
	if (x->managed_access == 0) {
		snprintf(x->off_buf[M_MANAGED], sizeof(x->off_buf[M_MANAGED]),
			 "device %d cannot hold managed memory the CPU may use "
			 "(CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS is 0): nothing to "
			 "prefetch to", x->ordinal);
		x->off[M_MANAGED] = x->off_buf[M_MANAGED];
		return;
	}
	r = x->cu.mem_alloc_managed(&x->managed, x->size, CU_MEM_ATTACH_GLOBAL);
	if (r != CU_SUCCESS) {
		x->managed = 0;
		base_fail(x, M_MANAGED, 0, "cuMemAllocManaged", r);
		return;
	}
	/* Written by the CPU: the pages start in host memory. */
	x->sum[M_MANAGED] = bench_fill((void *)(uintptr_t)x->managed, x->size, x->seed);
	x->seed += x->size;
}

static void base_free(struct gpubench *x)
{
	/* cuMemFree frees managed memory too. */
	if (x->managed)
		x->cu.mem_free(x->managed);
	x->managed = 0;
	for (int m = M_PINNED; m < NMETHODS; m++) {
		if (x->dbuf[m])
			x->cu.mem_free(x->dbuf[m]);
		x->dbuf[m] = 0;
	}
	if (x->host[M_PINNED])
		x->cu.mem_free_host(x->host[M_PINNED]);
	free(x->host[M_PAGEABLE]);
	x->host[M_PINNED] = x->host[M_PAGEABLE] = NULL;
}

/* One transfer of the whole buffer by baseline m, timed into *t; 0, or -1 when
 * m is not measured (any more). */
static int base_one(struct gpubench *x, enum method m, enum dir d, size_t chunk, double *t)
{
	struct cu_mem_location to = { .type = CU_MEM_LOCATION_TYPE_HOST };
	const char *call;
	double t0;
	cu_result r;

	if (x->off[m])
		return -1;
	if (d == TO_GPU)
		to = (struct cu_mem_location){ .type = CU_MEM_LOCATION_TYPE_DEVICE,
					       .id = x->ordinal };
	t0 = bench_now();
	if (m != M_MANAGED) {
		call = d == TO_GPU ? "cuMemcpyHtoD" : "cuMemcpyDtoH";
		r = d == TO_GPU ? x->cu.memcpy_htod(x->dbuf[m], x->host[m], x->size)
				: x->cu.memcpy_dtoh(x->host[m], x->dbuf[m], x->size);
		/* From pageable memory cuMemcpyHtoD may return once the bytes
		 * are in the driver's staging memory, before the DMA is over. */
		if (r == CU_SUCCESS && m == M_PAGEABLE && d == TO_GPU) {
			call = "cuStreamSynchronize";
			r = x->cu.stream_synchronize(NULL);
		}
	} else {
		call = "cuMemPrefetchAsync";
		r = x->cu.mem_prefetch_async(x->managed, x->size, to, 0, NULL);
		if (r == CU_SUCCESS) {
			call = "cuStreamSynchronize";
			r = x->cu.stream_synchronize(NULL);
		}
	}
	*t = bench_now() - t0;
	if (r == CU_SUCCESS)
		return 0;
	base_fail(x, m, chunk, call, r);
	return -1;
}

/* Outside the timed calls: the bytes made the trip. cuMemcpy: the device's
 * copy read back into a zeroed buffer; managed: read by the CPU where it is. */
static void base_verify(struct gpubench *x, enum method m, size_t chunk)
{
	const void *buf = m != M_MANAGED ? x->host[m] : (const void *)(uintptr_t)x->managed;
	cu_result r;

	if (x->off[m])
		return;
	if (m != M_MANAGED) {
		memset(x->host[m], 0, x->size);
		r = x->cu.memcpy_dtoh(x->host[m], x->dbuf[m], x->size);
		if (r != CU_SUCCESS) {
			base_fail(x, m, chunk, "cuMemcpyDtoH", r);
			return;
		}
	}
	if (bench_checksum(buf, x->size) != x->sum[m]) {
		snprintf(x->off_buf[m], sizeof(x->off_buf[m]), "verify: the data differs after %s",
			 m != M_MANAGED ? "cuMemcpyHtoD/DtoH" : "cuMemPrefetchAsync");
		x->off[m] = x->off_buf[m];
		record_error(x, method_key[m], chunk, -EIO, x->off[m]);
	}
}

/* ---- results ---- */

/* A baseline's rates, or null when it was not measured. */
static int add_base(json_object *o, const struct gpubench *x, enum method m, enum dir d,
		    const struct bench_stats *s)
{
	static const char *const calls[NMETHODS][NDIRS] = {
		[M_PINNED] = { "cuMemcpyHtoD", "cuMemcpyDtoH" },
		[M_PAGEABLE] = { "cuMemcpyHtoD, cuStreamSynchronize", "cuMemcpyDtoH" },
		[M_MANAGED] = { "cuMemPrefetchAsync to the device, cuStreamSynchronize",
				"cuMemPrefetchAsync to the host, cuStreamSynchronize" },
	};
	json_object *b;

	if (x->off[m])
		return json_object_object_add(o, method_key[m], NULL) ? -ENOMEM : 0;
	b = json_object_new_object();
	if (json_out_add(o, method_key[m], b) ||
	    json_out_add(b, "call", json_object_new_string(calls[m][d])) ||
	    bench_add_rates(b, x->size, s))
		return -ENOMEM;
	return 0;
}

/* What the broker's engines moved in a leg, per sample; nulls when unknown. */
static int engines_json(json_object *o, const struct gpubench *x, const struct engine_leg *le)
{
	if (le->ok)
		return engine_stats_json(o, &le->sum, (uint64_t)x->samples) < 0 ? -ENOMEM : 0;
	return json_object_object_add(o, "engines", NULL) ||
	       json_object_object_add(o, "bytes_zero_copy", NULL) ||
	       json_object_object_add(o, "bytes_staged", NULL) ? -ENOMEM : 0;
}

/* The ratio against the leg's baseline, and whether it meets the goal. */
static int ratio_json(json_object *o, const char *baseline, double ratio)
{
	if (json_out_add(o, "baseline", json_object_new_string(baseline)) ||
	    json_out_add_num(o, "ratio", ratio, 3))
		return -ENOMEM;
	return isfinite(ratio) ? json_out_add(o, "meets_goal",
					      json_object_new_boolean(ratio >= GOAL_RATIO))
			       : json_object_object_add(o, "meets_goal", NULL) ? -ENOMEM : 0;
}

/* One direction at one chunk size; sorts the samples. */
static json_object *leg_json(struct gpubench *x, size_t chunk, enum dir d)
{
	json_object *o = json_object_new_object();
	struct bench_stats s[NMETHODS] = { 0 };
	const char *dir = d == TO_GPU ? "host_to_gpu" : "gpu_to_host";
	double pm, rate[NMETHODS];

	for (int m = 0; m < NMETHODS; m++) {
		rate[m] = NAN;
		if (!x->off[m]) {
			bench_stats(x->t[m][d], x->samples, &s[m]);
			rate[m] = bench_gbps(x->size, s[m].median);
		}
	}
	pm = rate[M_PM];
	if (!o || json_out_add(o, "direction", json_object_new_string(dir)) ||
	    json_out_add(o, "src", json_object_new_string(d == TO_GPU ? "system" : x->pool)) ||
	    json_out_add(o, "dst", json_object_new_string(d == TO_GPU ? x->pool : "system")) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(x->size)) ||
	    json_out_add(o, "samples", json_object_new_int(x->samples)) ||
	    bench_add_rates(o, x->size, &s[M_PM]) ||
	    add_base(o, x, M_PINNED, d, &s[M_PINNED]) ||
	    add_base(o, x, M_PAGEABLE, d, &s[M_PAGEABLE]) ||
	    add_base(o, x, M_MANAGED, d, &s[M_MANAGED]) ||
	    ratio_json(o, method_key[M_PINNED], pm / rate[M_PINNED]) ||
	    json_out_add_num(o, "ratio_pageable", pm / rate[M_PAGEABLE], 3) ||
	    json_out_add_num(o, "ratio_managed", pm / rate[M_MANAGED], 3) ||
	    engines_json(o, x, &x->le[d]) ||
	    json_out_add(o, "verified", json_object_new_boolean(true))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- measurements ---- */


/*
 * x->size bytes of managed memory in chunks of 1 << shift, filled with the
 * pattern of x->seed (want: its checksum), moved to the GPU once: the
 * first round of a measurement, not timed. 0 or -errno, *stage naming
 * what failed.
 */
static int alloc_on_gpu(struct gpubench *x, unsigned shift, uint8_t **buf, uint64_t *want,
			const char **stage, const char *warm)
{
	uint64_t seed = x->seed;
	int r;

	x->seed += x->size;
	*stage = "pm_alloc";
	r = pm_alloc(x->c, x->size, PM_ALLOC_CHUNK_SHIFT(shift), (void **)buf);
	if (r < 0)
		return r;
	*want = bench_fill(*buf, x->size, seed);
	*stage = warm;
	return pm_migrate(x->c, *buf, x->size, x->fd, 0);
}

/*
 * The whole buffer to the GPU's pool and back, samples times, at one chunk
 * size, each round trip followed by one of each baseline; into arr. The
 * first round is a warm-up, not timed, which also checks that pm_migrate puts
 * every chunk where it was asked to and pays for the baselines' first touch.
 */
static void throughput(struct gpubench *x, unsigned shift, json_object *arr)
{
	size_t chunk = (size_t)1 << shift;
	uint64_t seed = x->seed, want = 0;
	const char *stage = "pm_alloc";
	char why[256] = "";
	uint8_t *buf = NULL;
	double unused;
	int r;

	r = alloc_on_gpu(x, shift, &buf, &want, &stage, "warm-up");
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, x->info.id, x->pool, why, sizeof(why));
	if (r == 0)
		r = pm_migrate(x->c, buf, x->size, PM_FD_SYSTEM, 0);
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, 0, x->pool, why, sizeof(why));
	for (int m = M_PINNED; r == 0 && m < NMETHODS; m++)
		for (int d = 0; d < NDIRS; d++)
			base_one(x, m, d, chunk, &unused);
	for (int d = 0; d < NDIRS; d++)
		x->le[d] = (struct engine_leg){ .ok = true };
	for (int i = 0; r == 0 && i < x->samples; i++) {
		stage = "pm_migrate to the GPU";
		r = engine_leg_migrate(x->c, buf, x->size, x->fd,
				       &x->t[M_PM][TO_GPU][i], &x->le[TO_GPU]);
		if (r)
			break;
		stage = "pm_migrate back to system memory";
		r = engine_leg_migrate(x->c, buf, x->size, PM_FD_SYSTEM,
				       &x->t[M_PM][TO_HOST][i], &x->le[TO_HOST]);
		for (int m = M_PINNED; r == 0 && m < NMETHODS; m++)
			for (int d = 0; d < NDIRS; d++)
				base_one(x, m, d, chunk, &x->t[m][d][i]);
	}
	/* All home before reading: a fault would hide a move back that did not happen. */
	if (r == 0) {
		stage = "verify";
		r = bench_resident(x->c, buf, x->size, chunk, 0, x->pool, why, sizeof(why));
	}
	if (r == 0)
		r = bench_verify(buf, x->size, chunk, seed, want, why, sizeof(why));
	for (int m = M_PINNED; r == 0 && m < NMETHODS; m++)
		base_verify(x, m, chunk);
	if (r < 0)
		record_error(x, stage, chunk, r, why);
	else if (json_out_append(arr, leg_json(x, chunk, TO_GPU)) ||
		 json_out_append(arr, leg_json(x, chunk, TO_HOST)))
		record_error(x, "results", chunk, -ENOMEM, NULL);
	if (buf)
		pm_free(x->c, buf);
}

/* ---- GPU to GPU: cudaN's pool and a second GPU's, against cuMemcpyPeer ---- */

static void peer_skip(struct gpubench *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_skip(struct gpubench *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->pe.skip_buf, sizeof(x->pe.skip_buf), fmt, ap);
	va_end(ap);
	x->pe.skip = x->pe.skip_buf;
	fprintf(stderr, "pmbench gpu: GPU to GPU skipped: %s\n", x->pe.skip);
}

static void peer_base_fail(struct gpubench *x, size_t chunk, const char *call, cu_result r)
{
	char buf[64];

	snprintf(x->pe.off_buf, sizeof(x->pe.off_buf), "%s: %s", call,
		 cuda_error(&x->cu, r, buf, sizeof(buf)));
	x->pe.off = x->pe.off_buf;
	record_error(x, "memcpy_peer", chunk, -EIO, x->pe.off);
}

/* Makes ctx current; the first GPU's again afterwards is the caller's. */
static cu_result peer_on(struct gpubench *x, cu_context ctx)
{
	return x->cu.ctx_set_current(ctx);
}

/* Both ways, for the baseline (the broker enables its own). */
static void peer_access(struct gpubench *x)
{
	struct peerbench *pe = &x->pe;
	cu_result r, r2 = CU_SUCCESS;
	char buf[64];
	int ab = 0, ba = 0;

	if (x->cu.device_can_access_peer(&ab, x->dev, pe->dev) == CU_SUCCESS &&
	    x->cu.device_can_access_peer(&ba, pe->dev, x->dev) == CU_SUCCESS)
		pe->can_access = ab && ba;
	if (!x->cu.ctx_enable_peer_access) {
		pe->access = "the CUDA driver lacks cuCtxEnablePeerAccess";
		return;
	}
	r = x->cu.ctx_enable_peer_access(pe->ctx, 0);
	if ((r == CU_SUCCESS || r == CU_ERROR_PEER_ACCESS_ALREADY_ENABLED) &&
	    peer_on(x, pe->ctx) == CU_SUCCESS) {
		r2 = x->cu.ctx_enable_peer_access(x->ctx, 0);
		peer_on(x, x->ctx);
	}
	if (r == CU_ERROR_PEER_ACCESS_ALREADY_ENABLED)
		r = CU_SUCCESS;
	if (r2 == CU_ERROR_PEER_ACCESS_ALREADY_ENABLED)
		r2 = CU_SUCCESS;
	if (r == CU_SUCCESS && r2 == CU_SUCCESS) {
		pe->access = "enabled";
		return;
	}
	snprintf(pe->access_buf, sizeof(pe->access_buf), "cuCtxEnablePeerAccess: %s (cuMemcpyPeer "
		 "may go through host memory)",
		 cuda_error(&x->cu, r != CU_SUCCESS ? r : r2, buf, sizeof(buf)));
	pe->access = pe->access_buf;
}

/* The baseline's buffers: src on the first GPU (filled), dst on the peer. */
static void peer_base_prepare(struct gpubench *x)
{
	struct peerbench *pe = &x->pe;
	const char *call = "cuMemAlloc";
	void *tmp = malloc(x->size);
	cu_result r;

	if (!tmp) {
		pe->off = "no memory to fill the cuMemcpyPeer buffers";
		record_error(x, "memcpy_peer", 0, -ENOMEM, pe->off);
		return;
	}
	r = peer_on(x, pe->ctx);
	if (r == CU_SUCCESS)
		r = x->cu.mem_alloc(&pe->dst, x->size);
	if (r != CU_SUCCESS)
		pe->dst = 0;
	peer_on(x, x->ctx);
	if (r == CU_SUCCESS) {
		r = x->cu.mem_alloc(&pe->src, x->size);
		if (r != CU_SUCCESS)
			pe->src = 0;
	}
	if (r == CU_SUCCESS) {
		pe->sum = bench_fill(tmp, x->size, x->seed);
		x->seed += x->size;
		call = "cuMemcpyHtoD";
		r = x->cu.memcpy_htod(pe->src, tmp, x->size);
		if (r == CU_SUCCESS) {
			call = "cuStreamSynchronize";
			r = x->cu.stream_synchronize(NULL);
		}
	}
	free(tmp);
	if (r != CU_SUCCESS)
		peer_base_fail(x, 0, call, r);
}

/*
 * The second GPU: the driver's device and the broker's pool, or why GPU to
 * GPU is skipped (pe->skip). The first other device when --peer is not
 * given.
 */
static void peer_setup(struct gpubench *x)
{
	struct peerbench *pe = &x->pe;
	char buf[64], dev[16];
	int n = 0;
	cu_result r = x->cu.device_get_count(&n);

	if (r != CU_SUCCESS) {
		peer_skip(x, "cuDeviceGetCount: %s", cuda_error(&x->cu, r, buf, sizeof(buf)));
		return;
	}
	if (pe->ordinal < 0)
		pe->ordinal = x->ordinal == 0 ? 1 : 0;
	snprintf(dev, sizeof(dev), "cuda%d", pe->ordinal);
	snprintf(pe->pool, sizeof(pe->pool), "%s/vram", dev);
	if (n < 2) {
		peer_skip(x, "the CUDA driver sees %d device here: GPU to GPU needs two", n);
		return;
	}
	if (pe->ordinal >= n) {
		peer_skip(x, "the CUDA driver sees %d devices here, no device %d", n, pe->ordinal);
		return;
	}
	r = x->cu.device_get(&pe->dev, pe->ordinal);
	if (r != CU_SUCCESS) {
		peer_skip(x, "cuDeviceGet %d: %s", pe->ordinal, cuda_error(&x->cu, r, buf, sizeof(buf)));
		return;
	}
	pe->fd = pagemap_open(x->c, dev, "vram", 0);
	if (pe->fd < 0) {
		peer_skip(x, "%s: %s", pe->pool,
			  pe->fd == -ENOENT ? "the broker serves no such GPU pool" : strerror(-pe->fd));
		return;
	}
	if (pagemap_query(pe->fd, &pe->info) < 0 || pe->info.kind != PAGEMAP_KIND_GPU) {
		peer_skip(x, "%s is not a GPU pool", pe->pool);
		return;
	}
	if (pe->info.capacity < pe->info.used || pe->info.capacity - pe->info.used < x->size) {
		peer_skip(x, "%s: %llu bytes free, --size needs %zu", pe->pool,
			  (unsigned long long)(pe->info.capacity > pe->info.used
						       ? pe->info.capacity - pe->info.used : 0),
			  x->size);
		return;
	}
	r = x->cu.primary_ctx_retain(&pe->ctx, pe->dev);
	if (r != CU_SUCCESS) {
		peer_skip(x, "device %d: cuDevicePrimaryCtxRetain: %s", pe->ordinal,
			  cuda_error(&x->cu, r, buf, sizeof(buf)));
		return;
	}
	pe->ctx_held = true;
	for (int m = 0; m < 2; m++)
		for (int d = 0; d < NPDIRS; d++)
			if (!(pe->t[m][d] = calloc((size_t)x->samples, sizeof(double)))) {
				peer_skip(x, "%s", strerror(ENOMEM));
				return;
			}
	peer_access(x);
	peer_base_prepare(x);
}

static void peer_free(struct gpubench *x)
{
	struct peerbench *pe = &x->pe;

	for (int m = 0; m < 2; m++)
		for (int d = 0; d < NPDIRS; d++)
			free(pe->t[m][d]);
	if (pe->src)
		x->cu.mem_free(pe->src);
	if (pe->dst && peer_on(x, pe->ctx) == CU_SUCCESS)
		x->cu.mem_free(pe->dst);
	if (pe->ctx_held) {
		peer_on(x, x->ctx);
		x->cu.primary_ctx_release(pe->dev);
	}
	if (pe->fd >= 0)
		close(pe->fd);
	pe->src = pe->dst = 0;
	pe->ctx_held = false;
	pe->fd = -1;
}

/* One cuMemcpyPeer of the whole buffer, waited for in both contexts (a
 * copy between devices may be running still when the call returns). */
static int peer_one(struct gpubench *x, enum pdir d, size_t chunk, double *t)
{
	struct peerbench *pe = &x->pe;
	bool out = d == TO_PEER;
	const char *call = "cuMemcpyPeer";
	double t0;
	cu_result r;

	if (pe->off)
		return -1;
	t0 = bench_now();
	r = x->cu.memcpy_peer(out ? pe->dst : pe->src, out ? pe->ctx : x->ctx,
			      out ? pe->src : pe->dst, out ? x->ctx : pe->ctx, x->size);
	if (r == CU_SUCCESS) {
		call = "cuStreamSynchronize";
		r = x->cu.stream_synchronize(NULL);
	}
	if (r == CU_SUCCESS && (r = peer_on(x, pe->ctx)) == CU_SUCCESS) {
		r = x->cu.stream_synchronize(NULL);
		peer_on(x, x->ctx);
	}
	*t = bench_now() - t0;
	if (r == CU_SUCCESS)
		return 0;
	peer_base_fail(x, chunk, call, r);
	return -1;
}

/* Both buffers read back: the data went out and came back whole. */
static void peer_verify(struct gpubench *x, size_t chunk)
{
	struct peerbench *pe = &x->pe;
	uint8_t *tmp;
	cu_result r = CU_SUCCESS;

	if (pe->off)
		return;
	tmp = malloc(x->size);
	if (!tmp)
		return;
	for (int side = 0; side < 2 && r == CU_SUCCESS && !pe->off; side++) {
		memset(tmp, 0, x->size);
		r = peer_on(x, side ? pe->ctx : x->ctx);
		if (r == CU_SUCCESS)
			r = x->cu.memcpy_dtoh(tmp, side ? pe->dst : pe->src, x->size);
		peer_on(x, x->ctx);
		if (r != CU_SUCCESS) {
			peer_base_fail(x, chunk, "cuMemcpyDtoH", r);
		} else if (bench_checksum(tmp, x->size) != pe->sum) {
			pe->off = "verify: the data differs after cuMemcpyPeer";
			record_error(x, "memcpy_peer", chunk, -EIO, pe->off);
		}
	}
	free(tmp);
}

static json_object *peer_leg_json(struct gpubench *x, size_t chunk, enum pdir d)
{
	struct peerbench *pe = &x->pe;
	json_object *o = json_object_new_object(), *b = NULL;
	struct bench_stats s[2] = { 0 };
	double base = NAN;

	bench_stats(pe->t[0][d], x->samples, &s[0]);
	if (!pe->off) {
		bench_stats(pe->t[1][d], x->samples, &s[1]);
		base = bench_gbps(x->size, s[1].median);
	}
	if (!o || json_out_add(o, "direction", json_object_new_string("gpu_to_gpu")) ||
	    json_out_add(o, "src", json_object_new_string(d == TO_PEER ? x->pool : pe->pool)) ||
	    json_out_add(o, "dst", json_object_new_string(d == TO_PEER ? pe->pool : x->pool)) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(x->size)) ||
	    json_out_add(o, "samples", json_object_new_int(x->samples)) ||
	    bench_add_rates(o, x->size, &s[0]) ||
	    (pe->off ? json_object_object_add(o, "memcpy_peer", NULL)
		     : (json_out_add(o, "memcpy_peer", b = json_object_new_object()) ||
			json_out_add(b, "call", json_object_new_string(
						"cuMemcpyPeer, cuStreamSynchronize")) ||
			bench_add_rates(b, x->size, &s[1]))) ||
	    ratio_json(o, "memcpy_peer", bench_gbps(x->size, s[0].median) / base) ||
	    engines_json(o, x, &pe->le[d]) ||
	    json_out_add(o, "verified", json_object_new_boolean(true))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/*
 * The buffer on cudaN's pool, then samples times to the peer's pool and
 * back, each pair followed by cuMemcpyPeer both ways; home and checked at
 * the end. The first round is a warm-up, not timed.
 */
static void peer_throughput(struct gpubench *x, unsigned shift, json_object *arr)
{
	struct peerbench *pe = &x->pe;
	size_t chunk = (size_t)1 << shift;
	uint64_t seed = x->seed, want = 0;
	const char *stage = "pm_alloc";
	char why[256] = "";
	uint8_t *buf = NULL;
	double unused;
	int r;

	r = alloc_on_gpu(x, shift, &buf, &want, &stage, "GPU to GPU warm-up");
	if (r == 0)
		r = pm_migrate(x->c, buf, x->size, pe->fd, 0);
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, pe->info.id, pe->pool, why, sizeof(why));
	if (r == 0)
		r = pm_migrate(x->c, buf, x->size, x->fd, 0);
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, x->info.id, x->pool, why, sizeof(why));
	for (int d = 0; r == 0 && d < NPDIRS; d++)
		peer_one(x, (enum pdir)d, chunk, &unused);
	for (int d = 0; d < NPDIRS; d++)
		pe->le[d] = (struct engine_leg){ .ok = true };
	for (int i = 0; r == 0 && i < x->samples; i++) {
		stage = "pm_migrate to the peer GPU";
		r = engine_leg_migrate(x->c, buf, x->size, pe->fd,
				       &pe->t[0][TO_PEER][i], &pe->le[TO_PEER]);
		if (r)
			break;
		stage = "pm_migrate back from the peer GPU";
		r = engine_leg_migrate(x->c, buf, x->size, x->fd,
				       &pe->t[0][FROM_PEER][i], &pe->le[FROM_PEER]);
		for (int d = 0; r == 0 && d < NPDIRS; d++)
			peer_one(x, (enum pdir)d, chunk, &pe->t[1][d][i]);
	}
	if (r == 0) {
		stage = "verify";
		r = pm_migrate(x->c, buf, x->size, PM_FD_SYSTEM, 0);
	}
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, 0, x->pool, why, sizeof(why));
	if (r == 0)
		r = bench_verify(buf, x->size, chunk, seed, want, why, sizeof(why));
	if (r == 0)
		peer_verify(x, chunk);
	if (r < 0)
		record_error(x, stage, chunk, r, why);
	else if (json_out_append(arr, peer_leg_json(x, chunk, TO_PEER)) ||
		 json_out_append(arr, peer_leg_json(x, chunk, FROM_PEER)))
		record_error(x, "results", chunk, -ENOMEM, NULL);
	if (buf)
		pm_free(x->c, buf);
}

/* {"measured", "reason", "pagemap", "ordinal", "can_access_peer", "peer_access", ...} */
static int peer_json(json_object *root, const struct gpubench *x)
{
	const struct peerbench *pe = &x->pe;
	json_object *o = json_object_new_object();

	if (json_out_add(root, "gpu_to_gpu", o) ||
	    json_out_add(o, "measured", json_object_new_boolean(!pe->skip)) ||
	    json_out_add_str_or_null(o, "reason", pe->skip) ||
	    json_out_add(o, "pagemap", json_object_new_string(pe->pool)) ||
	    json_out_add(o, "ordinal", json_object_new_int(pe->ordinal)) ||
	    (pe->can_access < 0 ? json_object_object_add(o, "can_access_peer", NULL)
				: json_out_add(o, "can_access_peer",
					       json_object_new_boolean(pe->can_access))) ||
	    json_out_add_str_or_null(o, "peer_access", pe->access) ||
	    json_out_add(o, "baseline_measured", json_object_new_boolean(!pe->skip && !pe->off)) ||
	    json_out_add_str_or_null(o, "baseline_reason", pe->skip ? pe->skip : pe->off))
		return -ENOMEM;
	return 0;
}

/* ---- the command ---- */

/* "cuda3" or "cuda3/vram": 3; -1 for anything else. */
static int parse_gpu(const char *s)
{
	char *end;
	long v;

	if (strncmp(s, "cuda", 4) || s[4] < '0' || s[4] > '9')
		return -1;
	errno = 0;
	v = strtol(s + 4, &end, 10);
	if (errno || v > 4095 || (*end && strcmp(end, "/vram")))
		return -1;
	return (int)v;
}

/* Prints {"benchmark": "gpu", "gpu": {...}, "skipped": why}; the exit code. */
static int skipped(const struct gpubench *x, const char *why)
{
	json_object *o = json_object_new_object(), *g = NULL;

	fprintf(stderr, "pmbench gpu: skipped: %s\n", why);
	if (!o || json_out_add(o, "benchmark", json_object_new_string("gpu")) ||
	    json_out_add(o, "gpu", g = json_object_new_object()) ||
	    json_out_add(g, "pagemap", json_object_new_string(x->pool)) ||
	    json_out_add(g, "ordinal", json_object_new_int(x->ordinal)) ||
	    json_out_add(o, "skipped", json_object_new_string(why))) {
		json_object_put(o);
		fprintf(stderr, "pmbench gpu: %s\n", strerror(ENOMEM));
		return 1;
	}
	bench_emit(o, x->json);
	json_object_put(o);
	return EXIT_SKIP;
}

/* The driver's device N: its name, PCI address, and whether it takes prefetches. */
static int device_open(struct gpubench *x, char *why, size_t wlen)
{
	char buf[64];
	int n = 0;
	cu_result r = x->cu.device_get_count(&n);

	if (r != CU_SUCCESS) {
		snprintf(why, wlen, "cuDeviceGetCount: %s",
			 cuda_error(&x->cu, r, buf, sizeof(buf)));
		return -ENODEV;
	}
	if (x->ordinal >= n) {
		snprintf(why, wlen, "the CUDA driver sees %d device%s here, no device %d", n,
			 n == 1 ? "" : "s", x->ordinal);
		return -ENODEV;
	}
	r = x->cu.device_get(&x->dev, x->ordinal);
	if (r != CU_SUCCESS) {
		snprintf(why, wlen, "cuDeviceGet %d: %s", x->ordinal,
			 cuda_error(&x->cu, r, buf, sizeof(buf)));
		return -ENODEV;
	}
	x->cu.device_get_name(x->model, sizeof(x->model), x->dev);
	if (x->cu.device_get_pci_bus_id(buf, sizeof(buf), x->dev) == CU_SUCCESS)
		topo_bdf_canonical(buf, x->busid, sizeof(x->busid));
	x->managed_access = -1;
	if (x->cu.device_get_attribute &&
	    x->cu.device_get_attribute(&x->managed_access,
				       CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS,
				       x->dev) != CU_SUCCESS)
		x->managed_access = -1;
	return 0;
}

/* Opens cudaN/vram: 0; -ENOENT (the broker has none: a skip, why filled);
 * other -errno after saying why. */
static int pool_open(struct gpubench *x, char *why, size_t wlen)
{
	char dev[16];
	int r;

	snprintf(dev, sizeof(dev), "cuda%d", x->ordinal);
	x->fd = pagemap_open(x->c, dev, "vram", 0);
	if (x->fd == -ENOENT) {
		snprintf(why, wlen, "the broker serves no GPU pool %s (it makes one per device "
				    "its CUDA driver finds; pmctl pagemaps lists them)", x->pool);
		return -ENOENT;
	}
	if (x->fd < 0) {
		fprintf(stderr, "pmbench gpu: %s: %s\n", x->pool, strerror(-x->fd));
		return x->fd;
	}
	r = pagemap_query(x->fd, &x->info);
	if (r < 0) {
		fprintf(stderr, "pmbench gpu: %s: pagemap_query: %s\n", x->pool, strerror(-r));
		return r;
	}
	if (x->info.kind != PAGEMAP_KIND_GPU) {
		fprintf(stderr, "pmbench gpu: %s is not a GPU pool\n", x->pool);
		return -EINVAL;
	}
	if (x->info.capacity < x->info.used || x->info.capacity - x->info.used < x->size) {
		fprintf(stderr, "pmbench gpu: %s: %llu bytes free, --size needs %zu\n", x->pool,
			(unsigned long long)(x->info.capacity > x->info.used
						     ? x->info.capacity - x->info.used : 0),
			x->size);
		return -ENOSPC;
	}
	return 0;
}

static int header_json(json_object *root, const struct gpubench *x, const char *sock)
{
	json_object *g = json_object_new_object(), *b = NULL, *p = NULL, *m = NULL;

	if (json_out_add(root, "benchmark", json_object_new_string("gpu")) ||
	    json_out_add(root, "broker", json_object_new_string(sock ? sock : "default")) ||
	    json_out_add(root, "gpu", g) ||
	    json_out_add(g, "pagemap", json_object_new_string(x->pool)) ||
	    json_out_add(g, "id", json_object_new_uint64(x->info.id)) ||
	    json_out_add(g, "capacity", json_object_new_uint64(x->info.capacity)) ||
	    json_out_add(g, "ordinal", json_object_new_int(x->ordinal)) ||
	    json_out_add(g, "model", json_object_new_string(x->model)) ||
	    json_out_add(g, "pci_bus_id", json_object_new_string(x->busid)) ||
	    (x->managed_access < 0
		     ? json_object_object_add(g, "concurrent_managed_access", NULL)
		     : json_out_add(g, "concurrent_managed_access",
				    json_object_new_boolean(x->managed_access))) ||
	    json_out_add(root, "size", json_object_new_uint64(x->size)) ||
	    json_out_add(root, "samples", json_object_new_int(x->samples)) ||
	    json_out_add(root, "unit", json_object_new_string("GB/s (1e9 bytes per second)")) ||
	    json_out_add_num(root, "goal_ratio", GOAL_RATIO, 2) ||
	    json_out_add(root, "baselines", b = json_object_new_object()) ||
	    json_out_add(b, method_key[M_PINNED], p = json_object_new_object()) ||
	    json_out_add(p, "host_buffer", json_object_new_string("cuMemAllocHost")) ||
	    json_out_add(p, "device_buffer", json_object_new_string("cuMemAlloc")) ||
	    json_out_add(b, method_key[M_PAGEABLE], p = json_object_new_object()) ||
	    json_out_add(p, "host_buffer", json_object_new_string("malloc (pageable)")) ||
	    json_out_add(p, "device_buffer", json_object_new_string("cuMemAlloc")) ||
	    json_out_add(b, method_key[M_MANAGED], m = json_object_new_object()) ||
	    json_out_add(m, "buffer",
			 json_object_new_string("cuMemAllocManaged (CU_MEM_ATTACH_GLOBAL)")))
		return -ENOMEM;
	return 0;
}

/* Whether each baseline was measured throughout, and why not. */
static int baselines_json(json_object *root, const struct gpubench *x)
{
	json_object *b = json_object_object_get(root, "baselines");

	for (int m = M_PINNED; m < NMETHODS; m++) {
		json_object *o = json_object_object_get(b, method_key[m]);

		if (json_out_add(o, "measured", json_object_new_boolean(!x->off[m])) ||
		    json_out_add_str_or_null(o, "reason", x->off[m]))
			return -ENOMEM;
	}
	return 0;
}

int pmbench_gpu(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "gpu", required_argument, NULL, 'g' },
		{ "peer", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, 'z' },
		{ "samples", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct gpubench bench = { .fd = -1, .size = 256u << 20, .samples = 10, .seed = 1,
				  .pe = { .ordinal = -1, .fd = -1, .can_access = -1 } };
	struct gpubench *x = &bench;
	const char *sock = NULL, *gpu = "cuda0", *peer = NULL;
	json_object *root = NULL, *thr = NULL;
	int ch, r, exit_code = 1;
	char why[320], gpu_name[16];
	char *end;
	long v;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': sock = optarg; break;
		case 'g': gpu = optarg; break;
		case 'p': peer = optarg; break;
		case 'j': x->json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'z':
			x->size = bench_parse_size(optarg);
			if (!x->size) {
				fprintf(stderr, "pmbench gpu: --size: '%s' is not a size "
						"(bytes, or with K, M, G)\n", optarg);
				return 2;
			}
			break;
		case 's':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 10 || v > 100000) {
				fprintf(stderr, "pmbench gpu: --samples: '%s' is not 10..100000\n",
					optarg);
				return 2;
			}
			x->samples = (int)v;
			break;
		case ':':
			fprintf(stderr, "pmbench gpu: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench gpu: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench gpu: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	x->ordinal = parse_gpu(gpu);
	if (x->ordinal < 0) {
		fprintf(stderr, "pmbench gpu: --gpu: '%s' is not a GPU pool name "
				"(cuda0, cuda1...)\n", gpu);
		return 2;
	}
	if (peer && ((x->pe.ordinal = parse_gpu(peer)) < 0 || x->pe.ordinal == x->ordinal)) {
		fprintf(stderr, "pmbench gpu: --peer: '%s' is not a GPU pool name other than "
				"--gpu's (cuda0, cuda1...)\n", peer);
		return 2;
	}
	snprintf(gpu_name, sizeof(gpu_name), "cuda%d", x->ordinal);
	snprintf(x->pool, sizeof(x->pool), "%s/vram", gpu_name);
	/* Whole 2 MiB chunks, so every sample at either chunk size moves size bytes. */
	x->size = (x->size + ((size_t)1 << LARGE_SHIFT) - 1) >> LARGE_SHIFT << LARGE_SHIFT;

	/* No driver or no device is a skip, whether or not a broker runs (CI). */
	if (cuda_load(&x->cu, why, sizeof(why)) < 0)
		return skipped(x, why);
	if (device_open(x, why, sizeof(why)) < 0) {
		exit_code = skipped(x, why);
		goto out;
	}
	if (getenv("CUDA_VISIBLE_DEVICES"))
		fprintf(stderr, "pmbench gpu: CUDA_VISIBLE_DEVICES is set: device %d here (%s) "
				"must be the one the broker calls %s\n",
			x->ordinal, x->busid, gpu_name);
	r = pm_connect(sock, &x->c);
	if (r < 0) {
		fprintf(stderr, "pmbench gpu: cannot connect to %s: %s%s\n",
			sock ? sock : "the broker", strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ? " (is pagemapd running? "
							     "--socket, $PAGEMAP_SOCKET)" : "");
		goto out;
	}
	r = pool_open(x, why, sizeof(why));
	if (r == -ENOENT)
		exit_code = skipped(x, why);
	if (r < 0)
		goto out;

	r = x->cu.primary_ctx_retain(&x->ctx, x->dev);
	if (r == CU_SUCCESS) {
		x->ctx_held = true;
		r = x->cu.ctx_set_current(x->ctx);
	}
	if (r != CU_SUCCESS) {
		char buf[64];

		fprintf(stderr, "pmbench gpu: device %d: %s: %s\n", x->ordinal,
			x->ctx_held ? "cuCtxSetCurrent" : "cuDevicePrimaryCtxRetain",
			cuda_error(&x->cu, r, buf, sizeof(buf)));
		goto out;
	}
	for (int m = 0; m < NMETHODS; m++)
		for (int d = 0; d < NDIRS; d++)
			if (!(x->t[m][d] = calloc((size_t)x->samples, sizeof(double)))) {
				fprintf(stderr, "pmbench gpu: %s\n", strerror(ENOMEM));
				goto out;
			}
	root = json_object_new_object();
	if (!root || header_json(root, x, sock) ||
	    json_out_add(root, "throughput", thr = json_object_new_array()) ||
	    !(x->errors = json_object_new_array())) {
		fprintf(stderr, "pmbench gpu: %s\n", strerror(ENOMEM));
		goto out;
	}
	memcpy_prepare(x, M_PINNED);
	memcpy_prepare(x, M_PAGEABLE);
	managed_prepare(x);
	for (int m = M_PINNED; m < NMETHODS; m++)
		if (x->off[m])
			fprintf(stderr, "pmbench gpu: no %s baseline: %s\n", method_key[m], x->off[m]);
	throughput(x, SMALL_SHIFT, thr);
	throughput(x, LARGE_SHIFT, thr);
	peer_setup(x);
	if (!x->pe.skip) {
		peer_throughput(x, SMALL_SHIFT, thr);
		peer_throughput(x, LARGE_SHIFT, thr);
	}
	if (baselines_json(root, x) < 0 || peer_json(root, x) < 0)
		goto oom;
	r = json_out_add(root, "errors", x->errors);
	x->errors = NULL; /* root's now, or freed */
	if (r)
		goto oom;
	bench_emit(root, x->json);
	exit_code = x->failures ? 1 : 0;
	goto out;
oom:
	fprintf(stderr, "pmbench gpu: %s\n", strerror(ENOMEM));
out:
	json_object_put(x->errors);
	json_object_put(root);
	for (int m = 0; m < NMETHODS; m++)
		for (int d = 0; d < NDIRS; d++)
			free(x->t[m][d]);
	if (x->ctx_held) {
		peer_free(x);
		base_free(x);
		x->cu.primary_ctx_release(x->dev);
	}
	if (x->fd >= 0)
		close(x->fd);
	if (x->c)
		pm_disconnect(x->c);
	cuda_unload(&x->cu);
	return exit_code;
}
