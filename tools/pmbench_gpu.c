/* SPDX-License-Identifier: MIT */
/*
 * pmbench gpu: pm_migrate of a buffer from system memory to a GPU's pool
 * (cudaN/vram) and back, at 64 KiB and 2 MiB chunks, next to what the CUDA
 * driver does with as many bytes on the same GPU in the same run:
 * cuMemcpyHtoD/DtoH between pinned host memory (cuMemAllocHost) and a
 * cuMemAlloc buffer, and cuMemPrefetchAsync of managed memory
 * (cuMemAllocManaged) to the device and back to the CPU. The three take turns
 * sample by sample, so that drift falls on all alike; data is filled before
 * and checked after, never inside the timed calls. The driver is loaded at
 * run time (cuda/cuda_api.h): without it, without the device, or with a
 * broker that has no such GPU pool, the command says why and exits 77.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cuda_api.h"
#include "json_out.h"
#include "pagemap.h"
#include "topo.h"
#include "pmbench.h"

#define SMALL_SHIFT 16 /* 64 KiB chunks */
#define LARGE_SHIFT 21 /* 2 MiB chunks, the default */
#define GOAL_RATIO 0.9 /* the goal: pm_migrate at 0.9x pinned cuMemcpy or better */
#define EXIT_SKIP 77
#define JSON_FLAGS \
	(JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE)

enum dir { TO_GPU, TO_HOST, NDIRS };
/* What moves the bytes: pm_migrate, then the baselines. */
enum method { M_PM, M_PINNED, M_MANAGED, NMETHODS };

static const char *const method_key[NMETHODS] = { "pm_migrate", "pinned_memcpy",
						  "managed_prefetch" };

static const char usage_text[] =
	"Usage: pmbench gpu [--json] [--socket PATH] [--gpu cudaN] [--size BYTES] [--samples N]\n"
	"pm_migrate between system memory and a GPU's pool vs the CUDA driver on the same GPU:\n"
	"cuMemcpyHtoD/DtoH from pinned memory, cuMemPrefetchAsync of managed memory. Exits 77\n"
	"(skipped) without a CUDA driver, without the device, or when the broker lacks the pool.\n"
	"  --socket PATH  the broker (default $PAGEMAP_SOCKET, then the usual sockets)\n"
	"  --gpu cudaN    the broker's pool cudaN/vram, on the driver's device N (default cuda0)\n"
	"  --size BYTES   buffer size, K/M/G suffixes (default 256M)\n"
	"  --samples N    timed round trips per chunk size (10..100000, default 10)\n"
	"  --json         JSON on stdout (the only output)\n";

struct gpubench {
	struct pm_client *c;
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
	/* The baselines' buffers (size bytes each) and their data's checksums. */
	void *pinned;
	cu_deviceptr dbuf, managed;
	uint64_t pinned_sum, managed_sum;
	/* Why a baseline is not (or no longer) measured; NULL while it is. */
	const char *off[NMETHODS];
	char off_buf[NMETHODS][256];
	double *t[NMETHODS][NDIRS]; /* seconds per sample */
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

static void pinned_prepare(struct gpubench *x)
{
	cu_result r;

	if (!x->cu.mem_alloc_host || !x->cu.mem_free_host) {
		x->off[M_PINNED] = "the CUDA driver lacks cuMemAllocHost_v2 or cuMemFreeHost";
		return;
	}
	r = x->cu.mem_alloc_host(&x->pinned, x->size);
	if (r != CU_SUCCESS) {
		x->pinned = NULL;
		base_fail(x, M_PINNED, 0, "cuMemAllocHost", r);
		return;
	}
	r = x->cu.mem_alloc(&x->dbuf, x->size);
	if (r != CU_SUCCESS) {
		x->dbuf = 0;
		base_fail(x, M_PINNED, 0, "cuMemAlloc", r);
		return;
	}
	x->pinned_sum = bench_fill(x->pinned, x->size, x->seed);
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
	x->managed_sum = bench_fill((void *)(uintptr_t)x->managed, x->size, x->seed);
	x->seed += x->size;
}

static void base_free(struct gpubench *x)
{
	/* cuMemFree frees managed memory too. */
	if (x->managed)
		x->cu.mem_free(x->managed);
	if (x->dbuf)
		x->cu.mem_free(x->dbuf);
	if (x->pinned)
		x->cu.mem_free_host(x->pinned);
	x->managed = x->dbuf = 0;
	x->pinned = NULL;
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
	if (m == M_PINNED) {
		/* Both return once the bytes are there: with pinned host memory
		 * the driver API's synchronous copies are synchronous. */
		call = d == TO_GPU ? "cuMemcpyHtoD" : "cuMemcpyDtoH";
		r = d == TO_GPU ? x->cu.memcpy_htod(x->dbuf, x->pinned, x->size)
				: x->cu.memcpy_dtoh(x->pinned, x->dbuf, x->size);
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

/* Outside the timed calls: the bytes made the trip. Pinned: the device's copy
 * read back into a zeroed buffer; managed: read by the CPU where it is. */
static void base_verify(struct gpubench *x, enum method m, size_t chunk)
{
	const void *buf = m == M_PINNED ? x->pinned : (const void *)(uintptr_t)x->managed;
	uint64_t want = m == M_PINNED ? x->pinned_sum : x->managed_sum;
	cu_result r;

	if (x->off[m])
		return;
	if (m == M_PINNED) {
		memset(x->pinned, 0, x->size);
		r = x->cu.memcpy_dtoh(x->pinned, x->dbuf, x->size);
		if (r != CU_SUCCESS) {
			base_fail(x, m, chunk, "cuMemcpyDtoH", r);
			return;
		}
	}
	if (bench_checksum(buf, x->size) != want) {
		snprintf(x->off_buf[m], sizeof(x->off_buf[m]), "verify: the data differs after %s",
			 m == M_PINNED ? "cuMemcpyHtoD/DtoH" : "cuMemPrefetchAsync");
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

/* One direction at one chunk size; sorts the samples. */
static json_object *leg_json(struct gpubench *x, size_t chunk, enum dir d)
{
	json_object *o = json_object_new_object();
	struct bench_stats s[NMETHODS] = { 0 };
	const char *dir = d == TO_GPU ? "host_to_gpu" : "gpu_to_host";
	double pm, pinned = NAN, managed = NAN, ratio;

	for (int m = 0; m < NMETHODS; m++)
		if (!x->off[m])
			bench_stats(x->t[m][d], x->samples, &s[m]);
	pm = bench_gbps(x->size, s[M_PM].median);
	if (!x->off[M_PINNED])
		pinned = bench_gbps(x->size, s[M_PINNED].median);
	if (!x->off[M_MANAGED])
		managed = bench_gbps(x->size, s[M_MANAGED].median);
	ratio = pm / pinned;
	if (!o || json_out_add(o, "direction", json_object_new_string(dir)) ||
	    json_out_add(o, "src", json_object_new_string(d == TO_GPU ? "system" : x->pool)) ||
	    json_out_add(o, "dst", json_object_new_string(d == TO_GPU ? x->pool : "system")) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(x->size)) ||
	    json_out_add(o, "samples", json_object_new_int(x->samples)) ||
	    bench_add_rates(o, x->size, &s[M_PM]) ||
	    add_base(o, x, M_PINNED, d, &s[M_PINNED]) ||
	    add_base(o, x, M_MANAGED, d, &s[M_MANAGED]) ||
	    json_out_add_num(o, "ratio", ratio, 3) ||
	    json_out_add_num(o, "ratio_managed", pm / managed, 3) ||
	    (isfinite(ratio) ? json_out_add(o, "meets_goal",
					    json_object_new_boolean(ratio >= GOAL_RATIO))
			     : json_object_object_add(o, "meets_goal", NULL)) ||
	    json_out_add(o, "verified", json_object_new_boolean(true))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- measurements ---- */

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
	double t0, unused;
	int r;

	x->seed += x->size;
	r = pm_alloc(x->c, x->size, PM_ALLOC_CHUNK_SHIFT(shift), (void **)&buf);
	if (r == 0) {
		want = bench_fill(buf, x->size, seed);
		stage = "warm-up";
		r = pm_migrate(x->c, buf, x->size, x->fd, 0);
	}
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, x->info.id, x->pool, why, sizeof(why));
	if (r == 0)
		r = pm_migrate(x->c, buf, x->size, PM_FD_SYSTEM, 0);
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, 0, x->pool, why, sizeof(why));
	for (int m = M_PINNED; r == 0 && m < NMETHODS; m++)
		for (int d = 0; d < NDIRS; d++)
			base_one(x, m, d, chunk, &unused);
	for (int i = 0; r == 0 && i < x->samples; i++) {
		stage = "pm_migrate to the GPU";
		t0 = bench_now();
		r = pm_migrate(x->c, buf, x->size, x->fd, 0);
		x->t[M_PM][TO_GPU][i] = bench_now() - t0;
		if (r)
			break;
		stage = "pm_migrate back to system memory";
		t0 = bench_now();
		r = pm_migrate(x->c, buf, x->size, PM_FD_SYSTEM, 0);
		x->t[M_PM][TO_HOST][i] = bench_now() - t0;
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
	printf("%s\n", json_object_to_json_string_ext(o, JSON_FLAGS));
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
		{ "size", required_argument, NULL, 'z' },
		{ "samples", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct gpubench bench = { .fd = -1, .size = 256u << 20, .samples = 10, .seed = 1 };
	struct gpubench *x = &bench;
	const char *sock = NULL, *gpu = "cuda0";
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
		case 'j': break; /* JSON is the only output */
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
	pinned_prepare(x);
	managed_prepare(x);
	if (x->off[M_PINNED])
		fprintf(stderr, "pmbench gpu: no pinned cuMemcpy baseline: %s\n", x->off[M_PINNED]);
	if (x->off[M_MANAGED])
		fprintf(stderr, "pmbench gpu: no managed-memory baseline: %s\n",
			x->off[M_MANAGED]);
	throughput(x, SMALL_SHIFT, thr);
	throughput(x, LARGE_SHIFT, thr);
	if (baselines_json(root, x) < 0)
		goto oom;
	r = json_out_add(root, "errors", x->errors);
	x->errors = NULL; /* root's now, or freed */
	if (r)
		goto oom;
	printf("%s\n", json_object_to_json_string_ext(root, JSON_FLAGS));
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
