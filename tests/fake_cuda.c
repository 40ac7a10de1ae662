/* SPDX-License-Identifier: MIT */
/*
 * A SIMULATED CUDA driver: libcuda.so.1 for the gpu-sim test
 * (tests/gpu_sim_test.sh), so that the broker's GPU pools (broker/pool_gpu.c)
 * and pmbench gpu run where there is no GPU. Nothing here touches a GPU: its
 * "VRAM" is host memory, its copies are memcpy, and anything measured
 * through it is meaningless as GPU performance. Every line it prints, every
 * device name and every error string it hands out says SIMULATED.
 *
 * It answers exactly the entry points cuda/cuda_api.c resolves (required
 * and optional), with the driver's ABI and error codes as cuda.h declares
 * them, and keeps the rules real drivers enforce that the broker must get
 * right: cuInit first; memory calls need a context current in the calling
 * thread (201 otherwise, so per-worker-thread context handling is checked);
 * primary contexts are refcounted and their last release frees what they
 * held; device pointers are opaque numbers the CPU cannot dereference
 * (non-canonical addresses: a dereference crashes, as it would on a GPU);
 * host registrations may not overlap (712).
 *
 * Streams are real queues: each has a thread that runs its copies in order,
 * each taking FAKE_CUDA_DMA_US at least, so an async copy is still running
 * when the call returns, and a caller that reuses a buffer before its event
 * or stream says the copy is done reads or writes the wrong bytes, as on a
 * GPU. cuMemHostRegister faults the range in and stands for pinning it: a
 * copy that meets registered pages the process no longer has mapped (a hole
 * punched in the file behind them since, for instance) would reach the old
 * pages on a GPU, not the file's; here it says so (an error line) and moves
 * poison instead. An async copy from or to host memory that is not
 * page-locked (registered or cuMemAllocHost) is legal but synchronous on a
 * real driver, so here it is a warning: the caller lost its overlap.
 *
 * Environment (read once, at the first call):
 *   FAKE_CUDA_DEVICES    devices (default 2; 0: cuInit says no device)
 *   FAKE_CUDA_MEM        bytes of VRAM each, K/M/G suffixes (default 1G),
 *                        reserved lazily (MAP_NORESERVE)
 *   FAKE_CUDA_BDFS       PCI addresses, comma-separated
 *                        (default 0000:41:00.0,0000:42:00.0, then 0000:43:00.0...)
 *   FAKE_CUDA_PEER       cuDeviceCanAccessPeer between distinct devices (default 1)
 *   FAKE_CUDA_FAIL       "name:N[:err],...": the N-th call (1-based, counted per
 *                        entry point across threads) of name returns err
 *                        (default 999, CUDA_ERROR_UNKNOWN); name with or
 *                        without its _v2 suffix, err a number or CUDA_ERROR_*
 *   FAKE_CUDA_FAIL_AFTER "name:N[:err],...": every call from the N-th on fails
 *                        (a device that went bad)
 *   FAKE_CUDA_STALL      "name:N:ms,...": the N-th call of name takes ms
 *                        milliseconds more, then succeeds (a stuck DMA engine)
 *   FAKE_CUDA_DMA_US     microseconds each async copy takes on its stream at
 *                        least (default 100; 0: as fast as memcpy)
 *   FAKE_CUDA_TRACE=1    every call and its result on stderr
 * A malformed setting makes cuInit fail (and say why) rather than run a test
 * without the faults it asked for. At unload it says how much host memory
 * was registered at most at once (cuMemHostRegister), for tests of a cap.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>

/*
 * The driver's ABI, written out from cuda.h on purpose rather than taken
 * from cuda/cuda_api.h: if its declarations were wrong, calls through them
 * would fail here as they would against the real driver.
 */
typedef enum cudaError_enum {
	CUDA_SUCCESS = 0,
	CUDA_ERROR_INVALID_VALUE = 1,
	CUDA_ERROR_OUT_OF_MEMORY = 2,
	CUDA_ERROR_NOT_INITIALIZED = 3,
	CUDA_ERROR_DEINITIALIZED = 4,
	CUDA_ERROR_NO_DEVICE = 100,
	CUDA_ERROR_INVALID_DEVICE = 101,
	CUDA_ERROR_INVALID_CONTEXT = 201,
	CUDA_ERROR_ECC_UNCORRECTABLE = 214,
	CUDA_ERROR_PEER_ACCESS_UNSUPPORTED = 217,
	CUDA_ERROR_INVALID_HANDLE = 400,
	CUDA_ERROR_ILLEGAL_ADDRESS = 700,
	CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704,
	CUDA_ERROR_CONTEXT_IS_DESTROYED = 709,
	CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED = 712,
	CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED = 713,
	CUDA_ERROR_LAUNCH_FAILED = 719,
	CUDA_ERROR_NOT_SUPPORTED = 801,
	CUDA_ERROR_UNKNOWN = 999,
} CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr; /* CUdeviceptr_v2 on 64-bit hosts */
typedef struct CUctx_st *CUcontext;
typedef struct CUstream_st *CUstream;
typedef struct CUevent_st *CUevent;
typedef enum CUmemLocationType_enum {
	CU_MEM_LOCATION_TYPE_INVALID = 0x0,
	CU_MEM_LOCATION_TYPE_DEVICE = 0x1,
	CU_MEM_LOCATION_TYPE_HOST = 0x2,
} CUmemLocationType;
typedef struct CUmemLocation_st {
	CUmemLocationType type;
	int id;
} CUmemLocation;
#define CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS 89
#define CU_DEVICE_ATTRIBUTE_MAX 150 /* attributes above are CUDA_ERROR_INVALID_VALUE */
#define CU_MEM_ATTACH_GLOBAL 0x1
#define CU_MEM_ATTACH_HOST 0x2
#define CU_STREAM_NON_BLOCKING 0x1
#define CU_EVENT_FLAGS 0x7 /* BLOCKING_SYNC, DISABLE_TIMING, INTERPROCESS */

#define EXPORT __attribute__((visibility("default")))

EXPORT CUresult cuInit(unsigned int flags);
EXPORT CUresult cuDeviceGetCount(int *count);
EXPORT CUresult cuDeviceGet(CUdevice *device, int ordinal);
EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice dev);
EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev);
EXPORT CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev);
EXPORT CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer);
EXPORT CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice dev);
EXPORT CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev);
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev);
EXPORT CUresult cuCtxSetCurrent(CUcontext ctx);
EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes);
EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr);
EXPORT CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n);
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n);
EXPORT CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx,
			     size_t n);
EXPORT CUresult cuMemHostRegister_v2(void *p, size_t bytes, unsigned int flags);
EXPORT CUresult cuMemHostUnregister(void *p);
EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytes);
EXPORT CUresult cuMemFreeHost(void *p);
EXPORT CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytes, unsigned int flags);
EXPORT CUresult cuMemPrefetchAsync_v2(CUdeviceptr p, size_t n, CUmemLocation to,
				      unsigned int flags, CUstream stream);
EXPORT CUresult cuStreamSynchronize(CUstream stream);
EXPORT CUresult cuStreamCreate(CUstream *ps, unsigned int flags);
EXPORT CUresult cuStreamDestroy_v2(CUstream s);
EXPORT CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s);
EXPORT CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s);
EXPORT CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src,
				  CUcontext sctx, size_t n, CUstream s);
EXPORT CUresult cuEventCreate(CUevent *pe, unsigned int flags);
EXPORT CUresult cuEventRecord(CUevent e, CUstream s);
EXPORT CUresult cuEventSynchronize(CUevent e);
EXPORT CUresult cuEventDestroy_v2(CUevent e);
EXPORT CUresult cuCtxEnablePeerAccess(CUcontext peer, unsigned int flags);
EXPORT CUresult cuGetErrorString(CUresult error, const char **str);

#define SIM "SIMULATED CUDA driver"
#define MAX_DEVS 16
#define MAX_RULES 32
#define ALIGN (2ull << 20) /* cuMemAlloc's granularity for large allocations */
/*
 * Device pointers: device d's VRAM offset o is DPTR_BASE + (d << 40) + o.
 * Non-canonical on x86-64 (4- and 5-level paging) and outside any user
 * address space elsewhere, so the CPU faults on any dereference.
 */
#define DPTR_BASE 0xdc00000000000000ull
#define DEV_SPAN (1ull << 40)

#define ENTRY_POINTS(X)                                                                        \
	X(cuInit) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceTotalMem_v2)  \
	X(cuDeviceGetPCIBusId) X(cuDeviceCanAccessPeer) X(cuDeviceGetAttribute)                 \
	X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease_v2) X(cuCtxSetCurrent)          \
	X(cuMemAlloc_v2) X(cuMemFree_v2) X(cuMemcpyHtoD_v2) X(cuMemcpyDtoH_v2) X(cuMemcpyPeer)  \
	X(cuMemHostRegister_v2) X(cuMemHostUnregister) X(cuMemAllocHost_v2) X(cuMemFreeHost)    \
	X(cuMemAllocManaged) X(cuMemPrefetchAsync_v2) X(cuStreamSynchronize) X(cuGetErrorString) \
	X(cuStreamCreate) X(cuStreamDestroy_v2) X(cuMemcpyHtoDAsync_v2) X(cuMemcpyDtoHAsync_v2)  \
	X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)                                    \
	X(cuEventDestroy_v2) X(cuCtxEnablePeerAccess) X(cuMemcpyPeerAsync)

#define EP_ENUM(n) EP_##n,
#define EP_NAME(n) #n,
enum ep { ENTRY_POINTS(EP_ENUM) NEP };
static const char *const ep_name[NEP] = { ENTRY_POINTS(EP_NAME) };

static const struct {
	CUresult code;
	const char *name, *text;
} errors[] = {
	{ CUDA_SUCCESS, "CUDA_SUCCESS", "no error (" SIM ")" },
	{ CUDA_ERROR_INVALID_VALUE, "CUDA_ERROR_INVALID_VALUE", "invalid argument (" SIM ")" },
	{ CUDA_ERROR_OUT_OF_MEMORY, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory (" SIM ")" },
	{ CUDA_ERROR_NOT_INITIALIZED, "CUDA_ERROR_NOT_INITIALIZED",
	  "initialization error (" SIM ")" },
	{ CUDA_ERROR_DEINITIALIZED, "CUDA_ERROR_DEINITIALIZED", "driver shutting down (" SIM ")" },
	{ CUDA_ERROR_NO_DEVICE, "CUDA_ERROR_NO_DEVICE",
	  "no CUDA-capable device is detected (" SIM ")" },
	{ CUDA_ERROR_INVALID_DEVICE, "CUDA_ERROR_INVALID_DEVICE",
	  "invalid device ordinal (" SIM ")" },
	{ CUDA_ERROR_INVALID_CONTEXT, "CUDA_ERROR_INVALID_CONTEXT",
	  "invalid device context (" SIM ")" },
	{ CUDA_ERROR_ECC_UNCORRECTABLE, "CUDA_ERROR_ECC_UNCORRECTABLE",
	  "uncorrectable ECC error encountered (" SIM ")" },
	{ CUDA_ERROR_PEER_ACCESS_UNSUPPORTED, "CUDA_ERROR_PEER_ACCESS_UNSUPPORTED",
	  "peer access is not supported between these two devices (" SIM ")" },
	{ CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE",
	  "invalid resource handle (" SIM ")" },
	{ CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
	  "an illegal memory access was encountered (" SIM ")" },
	{ CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED",
	  "peer access is already enabled (" SIM ")" },
	{ CUDA_ERROR_CONTEXT_IS_DESTROYED, "CUDA_ERROR_CONTEXT_IS_DESTROYED",
	  "context is destroyed (" SIM ")" },
	{ CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
	  "part or all of the requested memory range is already mapped (" SIM ")" },
	{ CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
	  "pointer does not correspond to a registered memory region (" SIM ")" },
	{ CUDA_ERROR_LAUNCH_FAILED, "CUDA_ERROR_LAUNCH_FAILED",
	  "unspecified launch failure (" SIM ")" },
	{ CUDA_ERROR_NOT_SUPPORTED, "CUDA_ERROR_NOT_SUPPORTED",
	  "operation not supported (" SIM ")" },
	{ CUDA_ERROR_UNKNOWN, "CUDA_ERROR_UNKNOWN", "unknown error (" SIM ")" },
};

/* A primary context: one per device, the same handle for the device's life. */
struct CUctx_st {
	int dev;
};

enum alloc_kind { A_DEVICE, A_MANAGED };

struct alloc {
	struct alloc *next;
	enum alloc_kind kind;
	int dev;          /* the context it was made in */
	CUdeviceptr ptr;
	size_t len;       /* as asked */
	size_t off, span; /* A_DEVICE: where in the device's VRAM, rounded to ALIGN */
	uint8_t *host;    /* A_MANAGED: the host mapping */
};

/* Page-locked host memory: cuMemHostRegister's or cuMemAllocHost's. */
struct hostreg {
	struct hostreg *next;
	uintptr_t start;
	size_t len;
	int dev;          /* the context that registered it */
	bool allocated;   /* cuMemAllocHost: ours to unmap */
};

/* One copy a stream runs: host and device sides resolved when queued. */
struct op {
	uint8_t *dst;
	const uint8_t *src;
	size_t n;
	bool to_dev;
	bool peer; /* device to device: no host side */
};

#define RING 64 /* ops queued per stream; a 65th call waits, as a full queue does */

struct CUstream_st {
	struct CUstream_st *next; /* streams, under lock */
	int dev;
	unsigned flags;
	pthread_t thread;
	pthread_mutex_t mu;       /* the rest, the stream's own */
	pthread_cond_t cv;
	struct op ring[RING];
	uint64_t queued, done;    /* ops: queued, and run to completion */
	bool stop;
};

struct CUevent_st {
	struct CUevent_st *next;  /* events, under lock */
	int dev;
	struct CUstream_st *s;    /* recorded on s after its op seq; NULL: complete */
	uint64_t seq;
};

struct dev {
	struct CUctx_st ctx;
	int refs;         /* primary context retains; 0: inactive */
	uint8_t *vram;    /* mem bytes, MAP_NORESERVE */
	char bdf[32];
	struct alloc *allocs; /* A_DEVICE, by offset */
};

struct rule {
	enum ep ep;
	uint64_t n;
	CUresult err;
	bool after;
	unsigned stall_ms; /* FAKE_CUDA_STALL: not an error, a delay */
	atomic_bool told;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char config_error[256]; /* set: cuInit fails with it */
static bool trace, peer = true;
static atomic_bool initialized; /* read without the lock by every entry point */
static int ndevs = 2;
static size_t mem = 1ull << 30;
static struct dev devs[MAX_DEVS];
static struct alloc *managed;
static struct hostreg *hostregs;
static struct CUstream_st *streams;
static struct CUevent_st *events;
static bool peer_on[MAX_DEVS][MAX_DEVS]; /* cuCtxEnablePeerAccess: [current][peer] */
static unsigned dma_us = 100;
static int pagemap_fd = -1; /* /proc/self/pagemap: is a registered page still ours? */
static size_t reg_now, reg_peak; /* bytes cuMemHostRegister holds, under lock */
static uint64_t reg_calls;
static atomic_bool told_pageable;
static struct rule rules[MAX_RULES];
static unsigned nrules;
static atomic_uint_fast64_t calls[NEP];
static __thread struct CUctx_st *current;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One write per line: threads' lines do not interleave. */
	fprintf(stderr, SIM ": %s\n", line);
}

static const char *error_name(CUresult r)
{
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].code == r)
			return errors[i].name;
	return "CUDA_ERROR_?";
}

/* ---- configuration ---- */

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	unsigned shift = 0;

	if (end == s)
		return false;
	switch (*end) {
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	default: break;
	}
	if (*end || v == 0 || v > (DEV_SPAN >> shift))
		return false;
	*out = (size_t)(v << shift);
	return true;
}

static int ep_lookup(const char *name, size_t len)
{
	for (int i = 0; i < NEP; i++) {
		size_t n = strlen(ep_name[i]);

		/* "cuMemcpyHtoD" names cuMemcpyHtoD_v2 too. */
		if ((n == len || (n == len + 3 && !strcmp(ep_name[i] + len, "_v2"))) &&
		    !strncmp(ep_name[i], name, len))
			return i;
	}
	return -1;
}

static bool parse_error(const char *s, CUresult *out)
{
	char *end;
	long v;

	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (!strcmp(s, errors[i].name)) {
			*out = errors[i].code;
			return true;
		}
	v = strtol(s, &end, 10);
	if (end == s || *end || v <= 0 || v > 100000)
		return false;
	*out = (CUresult)v;
	return true;
}

/* "name:N[:err],...", appended to rules[]. */
static bool parse_rules(const char *var, bool after, bool stall)
{
	const char *spec = getenv(var);
	char buf[1024], *save = NULL;

	if (!spec || !*spec)
		return true;
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(config_error, sizeof(config_error), "%s is too long", var);
		return false;
	}
	strcpy(buf, spec);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':'), *n_end, *err;
		unsigned long long n;
		struct rule *r;
		int ep;

		ep = colon ? ep_lookup(tok, (size_t)(colon - tok)) : -1;
		if (ep < 0 || nrules == MAX_RULES) {
			snprintf(config_error, sizeof(config_error),
				 "%s: '%s' is not ENTRY_POINT:N[:ERROR] with an entry point this "
				 "driver has (at most %d rules)", var, tok, MAX_RULES);
			return false;
		}
		n = strtoull(colon + 1, &n_end, 10);
		r = &rules[nrules];
		r->ep = (enum ep)ep;
		r->n = n;
		r->after = after;
		r->err = CUDA_ERROR_UNKNOWN;
		err = *n_end == ':' ? n_end + 1 : NULL;
		if (stall) {
			char *ms_end = NULL;
			unsigned long ms = err ? strtoul(err, &ms_end, 10) : 0;

			if (n_end == colon + 1 || n == 0 || !err || *ms_end || !ms || ms > 600000) {
				snprintf(config_error, sizeof(config_error),
					 "%s: '%s' is not ENTRY_POINT:N:MILLISECONDS", var, tok);
				return false;
			}
			r->stall_ms = (unsigned)ms;
			r->err = CUDA_SUCCESS;
			nrules++;
			continue;
		}
		if (n_end == colon + 1 || n == 0 || (*n_end && !err) ||
		    (err && !parse_error(err, &r->err))) {
			snprintf(config_error, sizeof(config_error),
				 "%s: '%s': N counts calls from 1, ERROR is a number or a "
				 "CUDA_ERROR_* name", var, tok);
			return false;
		}
		nrules++;
	}
	return true;
}

static void configure(void)
{
	const char *s;

	trace = (s = getenv("FAKE_CUDA_TRACE")) && *s && strcmp(s, "0");
	pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if ((s = getenv("FAKE_CUDA_DMA_US"))) {
		char *end;
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || *end || v > 1000000) {
			snprintf(config_error, sizeof(config_error),
				 "FAKE_CUDA_DMA_US='%s' is not 0..1000000", s);
			return;
		}
		dma_us = (unsigned)v;
	}
	if ((s = getenv("FAKE_CUDA_PEER")))
		peer = strcmp(s, "0") != 0;
	if ((s = getenv("FAKE_CUDA_DEVICES"))) {
		char *end;
		long v = strtol(s, &end, 10);

		if (end == s || *end || v < 0 || v > MAX_DEVS) {
			snprintf(config_error, sizeof(config_error),
				 "FAKE_CUDA_DEVICES='%s' is not 0..%d", s, MAX_DEVS);
			return;
		}
		ndevs = (int)v;
	}
	if ((s = getenv("FAKE_CUDA_MEM")) && !parse_size(s, &mem)) {
		snprintf(config_error, sizeof(config_error),
			 "FAKE_CUDA_MEM='%s' is not a size (bytes, K, M, G; at most 1 TiB)", s);
		return;
	}
	mem = (mem + ALIGN - 1) / ALIGN * ALIGN;
	s = getenv("FAKE_CUDA_BDFS");
	for (int i = 0; i < ndevs; i++) {
		const char *comma;
		size_t n;

		if (!s || !*s) {
			snprintf(devs[i].bdf, sizeof(devs[i].bdf), "0000:%02x:00.0", 0x41 + i);
			continue;
		}
		comma = strchr(s, ',');
		n = comma ? (size_t)(comma - s) : strlen(s);
		if (n >= sizeof(devs[i].bdf) || n < 7) {
			snprintf(config_error, sizeof(config_error),
				 "FAKE_CUDA_BDFS: '%.*s' is not a PCI address", (int)n, s);
			return;
		}
		memcpy(devs[i].bdf, s, n);
		devs[i].bdf[n] = 0;
		s = comma ? comma + 1 : NULL;
	}
	if (parse_rules("FAKE_CUDA_FAIL", false, false) &&
	    parse_rules("FAKE_CUDA_FAIL_AFTER", true, false))
		parse_rules("FAKE_CUDA_STALL", false, true);
}

/* ---- every entry point goes through these ---- */

static CUresult enter(enum ep ep, uint64_t *nth)
{
	pthread_once(&once, configure);
	*nth = atomic_fetch_add(&calls[ep], 1) + 1;
	for (unsigned i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];

		if (r->ep != ep || (r->after ? *nth < r->n : *nth != r->n))
			continue;
		if (r->stall_ms) {
			struct timespec ts = { .tv_sec = r->stall_ms / 1000,
					       .tv_nsec = (long)(r->stall_ms % 1000) * 1000000L };

			say("stalling call %" PRIu64 " of %s for %u ms (FAKE_CUDA_STALL)", *nth,
			    ep_name[ep], r->stall_ms);
			nanosleep(&ts, NULL);
			continue;
		}
		/* A device gone bad fails on and on: said once, then traced. */
		if (!r->after || !atomic_exchange(&r->told, true) || trace)
			say("injecting %s (%d) into call %" PRIu64 " of %s (%s=...%s:%" PRIu64 ")",
			    error_name(r->err), r->err, *nth, ep_name[ep],
			    r->after ? "FAKE_CUDA_FAIL_AFTER" : "FAKE_CUDA_FAIL", ep_name[ep], r->n);
		return r->err;
	}
	if (ep != EP_cuInit && ep != EP_cuGetErrorString && !initialized)
		return CUDA_ERROR_NOT_INITIALIZED;
	return CUDA_SUCCESS;
}

static CUresult leave(enum ep ep, uint64_t nth, CUresult r)
{
	if (trace)
		say("%s #%" PRIu64 " -> %d%s%s", ep_name[ep], nth, r, r ? " " : "",
		    r ? error_name(r) : "");
	return r;
}

#define BEGIN(name)                                \
	uint64_t nth_;                             \
	CUresult r_ = enter(EP_##name, &nth_);     \
	if (r_ != CUDA_SUCCESS)                    \
		return leave(EP_##name, nth_, r_);
#define END(name, r) return leave(EP_##name, nth_, (r))

/* ---- state, under lock ---- */

static struct dev *dev_of(CUdevice d)
{
	return d >= 0 && d < ndevs ? &devs[d] : NULL;
}

static struct CUctx_st *ctx_check(CUcontext c, CUresult *r)
{
	for (int i = 0; i < ndevs; i++)
		if (c == &devs[i].ctx) {
			*r = devs[i].refs ? CUDA_SUCCESS : CUDA_ERROR_CONTEXT_IS_DESTROYED;
			return c;
		}
	*r = CUDA_ERROR_INVALID_CONTEXT;
	return NULL;
}

/* Memory calls: a live context current in this thread. */
static CUresult need_current(void)
{
	CUresult r;

	if (!current)
		return CUDA_ERROR_INVALID_CONTEXT;
	ctx_check(current, &r);
	return r;
}

/* The allocation holding [p, p + n), device or managed; NULL when none. */
static struct alloc *alloc_at(CUdeviceptr p, size_t n)
{
	for (int i = 0; i <= ndevs; i++)
		for (struct alloc *a = i < ndevs ? devs[i].allocs : managed; a; a = a->next)
			if (p >= a->ptr && p - a->ptr <= a->len && n <= a->len - (p - a->ptr))
				return a;
	return NULL;
}

static uint8_t *host_of(const struct alloc *a, CUdeviceptr p)
{
	return a->kind == A_MANAGED ? a->host + (p - a->ptr)
				    : devs[a->dev].vram + a->off + (p - a->ptr);
}

static void alloc_free(struct alloc *a)
{
	if (a->kind == A_MANAGED)
		munmap(a->host, a->len);
	else /* VRAM given back reads as zeros next time, unlike a real GPU's */
		madvise(devs[a->dev].vram + a->off, a->span, MADV_DONTNEED);
	free(a);
}

static bool overlaps(uintptr_t start, size_t len)
{
	for (struct hostreg *h = hostregs; h; h = h->next)
		if (start < h->start + h->len && h->start < start + len)
			return true;
	return false;
}

/* The registration or cuMemAllocHost buffer holding [p, p + n); NULL: pageable. */
static struct hostreg *hostreg_of(uintptr_t p, size_t n)
{
	for (struct hostreg *h = hostregs; h; h = h->next)
		if (p >= h->start && p - h->start <= h->len && n <= h->len - (p - h->start))
			return h;
	return NULL;
}

static bool live_stream(const struct CUstream_st *s)
{
	for (struct CUstream_st *x = streams; x; x = x->next)
		if (x == s)
			return true;
	return false;
}

static bool live_event(const struct CUevent_st *e)
{
	for (struct CUevent_st *x = events; x; x = x->next)
		if (x == e)
			return true;
	return false;
}

/*
 * Whether every page of [p, p + n) is mapped in this process now
 * (/proc/self/pagemap's present bit, which needs no privilege): 1, 0, or -1
 * when it cannot tell. A registered page that is no longer mapped was taken
 * from under the registration (a hole punched in the file behind it): a
 * pinned page would have stayed where it was, detached from the file.
 */
static int pages_mapped(uintptr_t p, size_t n)
{
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t i = p / pg, last = (p + n - 1) / pg;
	uint64_t e[512];

	if (pagemap_fd < 0 || !n)
		return -1;
	while (i <= last) {
		size_t k = last - i + 1 < 512 ? (size_t)(last - i + 1) : 512;

		if (pread(pagemap_fd, e, k * sizeof(e[0]), (off_t)(i * sizeof(e[0]))) !=
		    (ssize_t)(k * sizeof(e[0])))
			return -1;
		for (size_t j = 0; j < k; j++)
			if (!(e[j] >> 63))
				return 0;
		i += k;
	}
	return 1;
}

/*
 * The host side of a copy that runs now: registered pages must still be the
 * ones registered. false (said, as an error) when they are not: the caller
 * moves poison instead of the bytes, as a GPU would move the old pages'.
 */
static bool host_side_ok(const uint8_t *host, size_t n, bool to_dev, const char *what)
{
	struct hostreg *h;
	bool registered;

	pthread_mutex_lock(&lock);
	h = hostreg_of((uintptr_t)host, n);
	registered = h && !h->allocated;
	pthread_mutex_unlock(&lock);
	if (!registered || pages_mapped((uintptr_t)host, n) != 0)
		return true;
	say("error: %s: registered host memory at %p (+%zu) is no longer this process's pages "
	    "(a hole punched in the file behind it since cuMemHostRegister?): a GPU would %s "
	    "the old, pinned pages; poison instead", what, (const void *)host, n,
	    to_dev ? "read" : "write");
	return false;
}

static void run_copy(const struct op *op, const char *what)
{
	if (op->peer) {
		memmove(op->dst, op->src, op->n);
	} else if (op->to_dev) {
		if (host_side_ok(op->src, op->n, true, what))
			memcpy(op->dst, op->src, op->n);
		else
			memset(op->dst, 0xdb, op->n);
	} else if (host_side_ok(op->dst, op->n, false, what)) {
		memcpy(op->dst, op->src, op->n);
	}
}

/* A stream's thread: its copies in order, each taking dma_us at least. */
static void *stream_main(void *arg)
{
	struct CUstream_st *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct op op;

		while (!s->stop && s->done == s->queued)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->done == s->queued)
			break; /* stopped, and nothing left */
		op = s->ring[s->done % RING];
		pthread_mutex_unlock(&s->mu);
		if (dma_us) {
			struct timespec ts = { .tv_sec = dma_us / 1000000,
					       .tv_nsec = (long)(dma_us % 1000000) * 1000L };

			nanosleep(&ts, NULL);
		}
		run_copy(&op, op.peer ? "cuMemcpyPeerAsync"
				      : op.to_dev ? "cuMemcpyHtoDAsync" : "cuMemcpyDtoHAsync");
		pthread_mutex_lock(&s->mu);
		s->done++;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Until s has run its op seq (and every one before). */
static void stream_wait(struct CUstream_st *s, uint64_t seq)
{
	pthread_mutex_lock(&s->mu);
	while (s->done < seq)
		pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

/* Work on the legacy default stream waits for device dev's blocking streams. */
static void legacy_sync(int dev)
{
	struct CUstream_st *wait[64];
	uint64_t upto[64];
	unsigned n = 0;

	pthread_mutex_lock(&lock);
	for (struct CUstream_st *s = streams; s && n < 64; s = s->next)
		if (s->dev == dev && !(s->flags & CU_STREAM_NON_BLOCKING)) {
			pthread_mutex_lock(&s->mu);
			upto[n] = s->queued;
			pthread_mutex_unlock(&s->mu);
			wait[n++] = s;
		}
	pthread_mutex_unlock(&lock);
	for (unsigned i = 0; i < n; i++)
		stream_wait(wait[i], upto[i]);
}

/* The last release of device d's primary context frees what it held, as a
 * real driver does; a caller that left anything there has a leak. */
static void ctx_reset(int d, const char *when)
{
	unsigned nal = 0, nman = 0, nreg = 0, nstream = 0, nevent = 0;

	while (devs[d].allocs) {
		struct alloc *a = devs[d].allocs;

		devs[d].allocs = a->next;
		alloc_free(a);
		nal++;
	}
	for (struct alloc **pp = &managed; *pp;) {
		struct alloc *a = *pp;

		if (a->dev != d) {
			pp = &a->next;
			continue;
		}
		*pp = a->next;
		alloc_free(a);
		nman++;
	}
	for (struct hostreg **pp = &hostregs; *pp;) {
		struct hostreg *h = *pp;

		if (h->dev != d) {
			pp = &h->next;
			continue;
		}
		*pp = h->next;
		if (h->allocated)
			munmap((void *)h->start, h->len);
		else
			reg_now -= h->len;
		free(h);
		nreg++;
	}
	/* Streams left behind finish what they hold on their own (not joined
	 * here: their copies take the lock) and are never freed. */
	for (struct CUstream_st **pp = &streams; *pp;) {
		struct CUstream_st *s = *pp;

		if (s->dev != d) {
			pp = &s->next;
			continue;
		}
		*pp = s->next;
		pthread_mutex_lock(&s->mu);
		s->stop = true;
		pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		pthread_detach(s->thread);
		nstream++;
	}
	for (struct CUevent_st **pp = &events; *pp;) {
		struct CUevent_st *e = *pp;

		if (e->dev != d) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		free(e);
		nevent++;
	}
	for (int i = 0; i < MAX_DEVS; i++)
		peer_on[d][i] = peer_on[i][d] = false;
	if (nal || nman || nreg || nstream || nevent)
		say("warning: %s of device %d's primary context: %u cuMemAlloc, %u "
		    "cuMemAllocManaged, %u host registrations, %u streams and %u events were "
		    "still live (leaked)", when, d, nal, nman, nreg, nstream, nevent);
}

/* ---- initialisation and devices ---- */

CUresult cuInit(unsigned int flags)
{
	CUresult r = CUDA_SUCCESS;

	BEGIN(cuInit);
	pthread_mutex_lock(&lock);
	if (initialized)
		goto out;
	if (flags) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else if (config_error[0]) {
		say("error: %s", config_error);
		r = CUDA_ERROR_INVALID_VALUE;
	} else if (!ndevs) {
		say("no device (FAKE_CUDA_DEVICES=0)");
		r = CUDA_ERROR_NO_DEVICE;
	}
	for (int i = 0; r == CUDA_SUCCESS && i < ndevs; i++) {
		devs[i].ctx.dev = i;
		devs[i].vram = mmap(NULL, mem, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (devs[i].vram == MAP_FAILED) {
			devs[i].vram = NULL;
			r = CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (r != CUDA_SUCCESS) {
		for (int i = 0; i < ndevs; i++)
			if (devs[i].vram) {
				munmap(devs[i].vram, mem);
				devs[i].vram = NULL;
			}
		goto out;
	}
	initialized = true;
	say("%d simulated device%s of %zu MiB (host memory, not a GPU: tests/fake_cuda.c), "
	    "peer access %s, %u injected fault rule%s%s",
	    ndevs, ndevs == 1 ? "" : "s", mem >> 20, peer ? "on" : "off", nrules,
	    nrules == 1 ? "" : "s", trace ? ", tracing calls" : "");
out:
	pthread_mutex_unlock(&lock);
	END(cuInit, r);
}

CUresult cuDeviceGetCount(int *count)
{
	BEGIN(cuDeviceGetCount);
	if (!count)
		END(cuDeviceGetCount, CUDA_ERROR_INVALID_VALUE);
	*count = ndevs;
	END(cuDeviceGetCount, CUDA_SUCCESS);
}

CUresult cuDeviceGet(CUdevice *device, int ordinal)
{
	BEGIN(cuDeviceGet);
	if (!device)
		END(cuDeviceGet, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(ordinal))
		END(cuDeviceGet, CUDA_ERROR_INVALID_DEVICE);
	*device = ordinal;
	END(cuDeviceGet, CUDA_SUCCESS);
}

CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	BEGIN(cuDeviceGetName);
	if (!name || len <= 0)
		END(cuDeviceGetName, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev))
		END(cuDeviceGetName, CUDA_ERROR_INVALID_DEVICE);
	snprintf(name, (size_t)len, "SIMULATED CUDA device %d (tests/fake_cuda.c)", dev);
	END(cuDeviceGetName, CUDA_SUCCESS);
}

CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	BEGIN(cuDeviceTotalMem_v2);
	if (!bytes)
		END(cuDeviceTotalMem_v2, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev))
		END(cuDeviceTotalMem_v2, CUDA_ERROR_INVALID_DEVICE);
	*bytes = mem;
	END(cuDeviceTotalMem_v2, CUDA_SUCCESS);
}

CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice dev)
{
	BEGIN(cuDeviceGetPCIBusId);
	if (!id || len <= 0)
		END(cuDeviceGetPCIBusId, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev))
		END(cuDeviceGetPCIBusId, CUDA_ERROR_INVALID_DEVICE);
	if (snprintf(id, (size_t)len, "%s", devs[dev].bdf) >= len)
		END(cuDeviceGetPCIBusId, CUDA_ERROR_INVALID_VALUE);
	END(cuDeviceGetPCIBusId, CUDA_SUCCESS);
}

CUresult cuDeviceCanAccessPeer(int *can, CUdevice dev, CUdevice peer_dev)
{
	BEGIN(cuDeviceCanAccessPeer);
	if (!can)
		END(cuDeviceCanAccessPeer, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev) || !dev_of(peer_dev))
		END(cuDeviceCanAccessPeer, CUDA_ERROR_INVALID_DEVICE);
	*can = peer && dev != peer_dev; /* a device is not its own peer */
	END(cuDeviceCanAccessPeer, CUDA_SUCCESS);
}

CUresult cuDeviceGetAttribute(int *value, int attrib, CUdevice dev)
{
	BEGIN(cuDeviceGetAttribute);
	if (!value || attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX)
		END(cuDeviceGetAttribute, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev))
		END(cuDeviceGetAttribute, CUDA_ERROR_INVALID_DEVICE);
	/* Managed memory is host memory here: the CPU may always use it. */
	*value = attrib == CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS;
	END(cuDeviceGetAttribute, CUDA_SUCCESS);
}

/* ---- contexts ---- */

CUresult cuDevicePrimaryCtxRetain(CUcontext *pctx, CUdevice dev)
{
	BEGIN(cuDevicePrimaryCtxRetain);
	if (!pctx)
		END(cuDevicePrimaryCtxRetain, CUDA_ERROR_INVALID_VALUE);
	if (!dev_of(dev))
		END(cuDevicePrimaryCtxRetain, CUDA_ERROR_INVALID_DEVICE);
	pthread_mutex_lock(&lock);
	devs[dev].refs++;
	pthread_mutex_unlock(&lock);
	*pctx = &devs[dev].ctx;
	END(cuDevicePrimaryCtxRetain, CUDA_SUCCESS);
}

CUresult cuDevicePrimaryCtxRelease_v2(CUdevice dev)
{
	CUresult r = CUDA_SUCCESS;

	BEGIN(cuDevicePrimaryCtxRelease_v2);
	if (!dev_of(dev))
		END(cuDevicePrimaryCtxRelease_v2, CUDA_ERROR_INVALID_DEVICE);
	pthread_mutex_lock(&lock);
	if (!devs[dev].refs) {
		say("warning: cuDevicePrimaryCtxRelease_v2 of device %d, not retained", dev);
		r = CUDA_ERROR_INVALID_CONTEXT;
	} else if (!--devs[dev].refs) {
		ctx_reset(dev, "last release");
	}
	pthread_mutex_unlock(&lock);
	END(cuDevicePrimaryCtxRelease_v2, r);
}

CUresult cuCtxSetCurrent(CUcontext ctx)
{
	CUresult r = CUDA_SUCCESS;

	BEGIN(cuCtxSetCurrent);
	pthread_mutex_lock(&lock);
	if (ctx)
		ctx_check(ctx, &r);
	if (r == CUDA_SUCCESS)
		current = ctx;
	pthread_mutex_unlock(&lock);
	END(cuCtxSetCurrent, r);
}

/* ---- memory ---- */

CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes)
{
	CUresult r;
	struct alloc *a = NULL, **pp;
	struct dev *d;
	size_t span, at = 0;

	BEGIN(cuMemAlloc_v2);
	if (!dptr || !bytes)
		END(cuMemAlloc_v2, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r != CUDA_SUCCESS)
		goto out;
	d = &devs[current->dev];
	span = bytes > mem ? mem + ALIGN : (bytes + ALIGN - 1) / ALIGN * ALIGN;
	/* First fit in offset order. */
	for (pp = &d->allocs; *pp && (*pp)->off - at < span; pp = &(*pp)->next)
		at = (*pp)->off + (*pp)->span;
	if (span > mem || at > mem - span || !(a = calloc(1, sizeof(*a)))) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
		goto out;
	}
	a->kind = A_DEVICE;
	a->dev = current->dev;
	a->off = at;
	a->span = span;
	a->len = bytes;
	a->ptr = DPTR_BASE + (CUdeviceptr)current->dev * DEV_SPAN + at;
	a->next = *pp;
	*pp = a;
	*dptr = a->ptr;
out:
	pthread_mutex_unlock(&lock);
	END(cuMemAlloc_v2, r);
}

CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	CUresult r;

	BEGIN(cuMemFree_v2);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS) {
		r = CUDA_ERROR_INVALID_VALUE;
		for (int i = 0; i <= ndevs && r != CUDA_SUCCESS; i++)
			for (struct alloc **pp = i < ndevs ? &devs[i].allocs : &managed; *pp;
			     pp = &(*pp)->next)
				if ((*pp)->ptr == dptr) {
					struct alloc *a = *pp;

					*pp = a->next;
					alloc_free(a);
					r = CUDA_SUCCESS;
					break;
				}
	}
	pthread_mutex_unlock(&lock);
	END(cuMemFree_v2, r);
}

/*
 * The host side of a copy at device pointer p, n bytes: checked under the
 * lock, copied outside it, so that copy workers run side by side (a caller
 * that frees memory while copying it is wrong on any driver).
 */
static CUresult resolve(CUdeviceptr p, size_t n, const struct CUctx_st *in, uint8_t **host)
{
	struct alloc *a;
	CUresult r;

	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS) {
		a = alloc_at(p, n);
		if (!a || (in && (a->kind != A_DEVICE || a->dev != in->dev)))
			r = CUDA_ERROR_INVALID_VALUE;
		else
			*host = host_of(a, p);
	}
	pthread_mutex_unlock(&lock);
	return r;
}

CUresult cuMemcpyHtoD_v2(CUdeviceptr dst, const void *src, size_t n)
{
	uint8_t *to = NULL;
	CUresult r;

	BEGIN(cuMemcpyHtoD_v2);
	r = resolve(dst, n, NULL, &to);
	if (r == CUDA_SUCCESS && n && !src)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS && n) {
		struct op op = { .dst = to, .src = src, .n = n, .to_dev = true };

		legacy_sync(current->dev);
		run_copy(&op, "cuMemcpyHtoD");
	}
	END(cuMemcpyHtoD_v2, r);
}

CUresult cuMemcpyDtoH_v2(void *dst, CUdeviceptr src, size_t n)
{
	uint8_t *from = NULL;
	CUresult r;

	BEGIN(cuMemcpyDtoH_v2);
	r = resolve(src, n, NULL, &from);
	if (r == CUDA_SUCCESS && n && !dst)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS && n) {
		struct op op = { .dst = dst, .src = from, .n = n, .to_dev = false };

		legacy_sync(current->dev);
		run_copy(&op, "cuMemcpyDtoH");
	}
	END(cuMemcpyDtoH_v2, r);
}

/* Each side must be memory of its own context's device, as the driver
 * requires: a broker that mixed the contexts up fails here. */
CUresult cuMemcpyPeer(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx, size_t n)
{
	uint8_t *to = NULL, *from = NULL;
	CUresult r;

	BEGIN(cuMemcpyPeer);
	pthread_mutex_lock(&lock);
	ctx_check(dctx, &r);
	if (r == CUDA_SUCCESS)
		ctx_check(sctx, &r);
	pthread_mutex_unlock(&lock);
	if (r == CUDA_SUCCESS)
		r = resolve(dst, n, dctx, &to);
	if (r == CUDA_SUCCESS)
		r = resolve(src, n, sctx, &from);
	if (r == CUDA_SUCCESS && n)
		memmove(to, from, n);
	END(cuMemcpyPeer, r);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/*
 * What pinning does first: every page of the range faulted in, writable,
 * without changing a byte (a shared file mapping gets the file's pages, a
 * hole a new page). false: the range is not all mapped.
 */
static bool populate(void *p, size_t bytes)
{
	const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)p & ~(pg - 1), end = ((uintptr_t)p + bytes + pg - 1) & ~(pg - 1);

	if (!madvise((void *)start, end - start, MADV_POPULATE_WRITE))
		return true;
	if (errno != EINVAL)
		return false;
	/* An older kernel: a read fault maps a shared file's page too. */
	for (uintptr_t a = start; a < end; a += pg)
		(void)*(volatile const uint8_t *)a;
	return true;
}

CUresult cuMemHostRegister_v2(void *p, size_t bytes, unsigned int flags)
{
	struct hostreg *h = NULL;
	CUresult r;

	BEGIN(cuMemHostRegister_v2);
	if (!p || !bytes || (flags & ~0xfu))
		END(cuMemHostRegister_v2, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS && overlaps((uintptr_t)p, bytes))
		r = CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	if (r == CUDA_SUCCESS && !populate(p, bytes))
		r = CUDA_ERROR_INVALID_VALUE;
	if (r == CUDA_SUCCESS && !(h = calloc(1, sizeof(*h))))
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		h->start = (uintptr_t)p;
		h->len = bytes;
		h->dev = current->dev;
		h->next = hostregs;
		hostregs = h;
		reg_calls++;
		reg_now += bytes;
		if (reg_now > reg_peak)
			reg_peak = reg_now;
	}
	pthread_mutex_unlock(&lock);
	END(cuMemHostRegister_v2, r);
}

/* cuMemHostUnregister takes cuMemHostRegister's pointer; cuMemFreeHost
 * cuMemAllocHost's. */
static CUresult hostreg_drop(void *p, bool allocated)
{
	CUresult r = need_current();

	if (r != CUDA_SUCCESS)
		return r;
	for (struct hostreg **pp = &hostregs; *pp; pp = &(*pp)->next) {
		struct hostreg *h = *pp;

		if (h->start != (uintptr_t)p || h->allocated != allocated)
			continue;
		*pp = h->next;
		if (allocated)
			munmap(p, h->len);
		else
			reg_now -= h->len;
		free(h);
		return CUDA_SUCCESS;
	}
	return allocated ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
}

CUresult cuMemHostUnregister(void *p)
{
	CUresult r;

	BEGIN(cuMemHostUnregister);
	pthread_mutex_lock(&lock);
	r = hostreg_drop(p, false);
	pthread_mutex_unlock(&lock);
	END(cuMemHostUnregister, r);
}

CUresult cuMemAllocHost_v2(void **pp, size_t bytes)
{
	struct hostreg *h = NULL;
	void *p = MAP_FAILED;
	CUresult r;

	BEGIN(cuMemAllocHost_v2);
	if (!pp || !bytes)
		END(cuMemAllocHost_v2, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS) {
		h = calloc(1, sizeof(*h));
		p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (!h || p == MAP_FAILED) {
			free(h);
			if (p != MAP_FAILED)
				munmap(p, bytes);
			r = CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (r == CUDA_SUCCESS) {
		h->start = (uintptr_t)p;
		h->len = bytes;
		h->dev = current->dev;
		h->allocated = true;
		h->next = hostregs;
		hostregs = h;
		*pp = p;
	}
	pthread_mutex_unlock(&lock);
	END(cuMemAllocHost_v2, r);
}

CUresult cuMemFreeHost(void *p)
{
	CUresult r;

	BEGIN(cuMemFreeHost);
	pthread_mutex_lock(&lock);
	r = hostreg_drop(p, true);
	pthread_mutex_unlock(&lock);
	END(cuMemFreeHost, r);
}

/* Managed memory is host memory the CPU uses directly; prefetches move nothing. */
CUresult cuMemAllocManaged(CUdeviceptr *dptr, size_t bytes, unsigned int flags)
{
	struct alloc *a = NULL;
	CUresult r;

	BEGIN(cuMemAllocManaged);
	if (!dptr || !bytes || (flags != CU_MEM_ATTACH_GLOBAL && flags != CU_MEM_ATTACH_HOST))
		END(cuMemAllocManaged, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS) {
		a = calloc(1, sizeof(*a));
		if (a)
			a->host = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (!a || a->host == MAP_FAILED) {
			free(a);
			r = CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (r == CUDA_SUCCESS) {
		a->kind = A_MANAGED;
		a->dev = current->dev;
		a->len = bytes;
		a->ptr = (CUdeviceptr)(uintptr_t)a->host;
		a->next = managed;
		managed = a;
		*dptr = a->ptr;
	}
	pthread_mutex_unlock(&lock);
	END(cuMemAllocManaged, r);
}

CUresult cuMemPrefetchAsync_v2(CUdeviceptr p, size_t n, CUmemLocation to, unsigned int flags,
			       CUstream stream)
{
	struct alloc *a;
	CUresult r;

	BEGIN(cuMemPrefetchAsync_v2);
	if (stream) /* this driver has only the default stream */
		END(cuMemPrefetchAsync_v2, CUDA_ERROR_INVALID_HANDLE);
	if (flags || !((to.type == CU_MEM_LOCATION_TYPE_DEVICE && dev_of(to.id)) ||
		       to.type == CU_MEM_LOCATION_TYPE_HOST))
		END(cuMemPrefetchAsync_v2, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS) {
		a = alloc_at(p, n);
		if (!a || a->kind != A_MANAGED)
			r = CUDA_ERROR_INVALID_VALUE;
	}
	pthread_mutex_unlock(&lock);
	END(cuMemPrefetchAsync_v2, r);
}

CUresult cuStreamSynchronize(CUstream stream)
{
	uint64_t upto = 0;
	CUresult r;

	BEGIN(cuStreamSynchronize);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS && stream && !live_stream(stream))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS && stream) {
		pthread_mutex_lock(&stream->mu);
		upto = stream->queued;
		pthread_mutex_unlock(&stream->mu);
	}
	pthread_mutex_unlock(&lock);
	if (r == CUDA_SUCCESS) {
		if (stream)
			stream_wait(stream, upto);
		else
			legacy_sync(current->dev);
	}
	END(cuStreamSynchronize, r);
}

/* ---- streams and events ---- */

CUresult cuStreamCreate(CUstream *ps, unsigned int flags)
{
	struct CUstream_st *s = NULL;
	CUresult r;

	BEGIN(cuStreamCreate);
	if (!ps || (flags & ~(unsigned)CU_STREAM_NON_BLOCKING))
		END(cuStreamCreate, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS && !(s = calloc(1, sizeof(*s))))
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		s->dev = current->dev;
		s->flags = flags;
		pthread_mutex_init(&s->mu, NULL);
		pthread_cond_init(&s->cv, NULL);
		if (pthread_create(&s->thread, NULL, stream_main, s)) {
			pthread_mutex_destroy(&s->mu);
			pthread_cond_destroy(&s->cv);
			free(s);
			r = CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (r == CUDA_SUCCESS) {
		s->next = streams;
		streams = s;
		*ps = s;
	}
	pthread_mutex_unlock(&lock);
	END(cuStreamCreate, r);
}

/* Work still queued completes first, as the driver lets it. */
CUresult cuStreamDestroy_v2(CUstream s)
{
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	BEGIN(cuStreamDestroy_v2);
	pthread_mutex_lock(&lock);
	for (struct CUstream_st **pp = &streams; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			r = CUDA_SUCCESS;
			break;
		}
	pthread_mutex_unlock(&lock);
	if (r != CUDA_SUCCESS)
		END(cuStreamDestroy_v2, r);
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&lock);
	for (struct CUevent_st *e = events; e; e = e->next)
		if (e->s == s)
			e->s = NULL; /* it completed */
	pthread_mutex_unlock(&lock);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	END(cuStreamDestroy_v2, CUDA_SUCCESS);
}

static CUresult queue(CUstream s, const struct op *op, const char *what);

/*
 * Async copies: checked and resolved now, run by the stream's thread later
 * (the legacy default stream runs them now). Host memory that is not
 * page-locked works, synchronously on a real driver: a warning.
 */
static CUresult copy_async(CUdeviceptr dptr, uint8_t *host, size_t n, bool to_dev, CUstream s,
			   const char *what)
{
	struct op op = { .n = n, .to_dev = to_dev };
	uint8_t *dev = NULL;
	bool locked = false;
	CUresult r = resolve(dptr, n, NULL, &dev);

	if (r == CUDA_SUCCESS && n && !host)
		r = CUDA_ERROR_INVALID_VALUE;
	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&lock);
	if (s && (!live_stream(s) || s->dev != current->dev))
		r = CUDA_ERROR_INVALID_HANDLE; /* a stream of another context */
	locked = hostreg_of((uintptr_t)host, n) != NULL;
	pthread_mutex_unlock(&lock);
	if (r != CUDA_SUCCESS || !n)
		return r;
	if (!locked && !atomic_exchange(&told_pageable, true))
		say("warning: %s with pageable host memory at %p (+%zu): a real driver copies "
		    "it synchronously, so nothing overlaps", what, (void *)host, n);
	op.dst = to_dev ? dev : host;
	op.src = to_dev ? host : dev;
	return queue(s, &op, what);
}

/* Runs op on stream s (now, on the legacy default stream). */
static CUresult queue(CUstream s, const struct op *op, const char *what)
{
	if (!s) {
		legacy_sync(current->dev);
		run_copy(op, what);
		return CUDA_SUCCESS;
	}
	pthread_mutex_lock(&s->mu);
	while (s->queued - s->done >= RING)
		pthread_cond_wait(&s->cv, &s->mu);
	s->ring[s->queued % RING] = *op;
	s->queued++;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return CUDA_SUCCESS;
}

CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr dst, const void *src, size_t n, CUstream s)
{
	BEGIN(cuMemcpyHtoDAsync_v2);
	END(cuMemcpyHtoDAsync_v2,
	    copy_async(dst, (uint8_t *)(uintptr_t)src, n, true, s, "cuMemcpyHtoDAsync"));
}

CUresult cuMemcpyDtoHAsync_v2(void *dst, CUdeviceptr src, size_t n, CUstream s)
{
	BEGIN(cuMemcpyDtoHAsync_v2);
	END(cuMemcpyDtoHAsync_v2, copy_async(src, dst, n, false, s, "cuMemcpyDtoHAsync"));
}

/* As cuMemcpyPeer, on a stream of the current context. */
CUresult cuMemcpyPeerAsync(CUdeviceptr dst, CUcontext dctx, CUdeviceptr src, CUcontext sctx,
			   size_t n, CUstream s)
{
	struct op op = { .n = n, .peer = true };
	uint8_t *to = NULL, *from = NULL;
	CUresult r;

	BEGIN(cuMemcpyPeerAsync);
	pthread_mutex_lock(&lock);
	ctx_check(dctx, &r);
	if (r == CUDA_SUCCESS)
		ctx_check(sctx, &r);
	if (r == CUDA_SUCCESS)
		r = need_current();
	if (r == CUDA_SUCCESS && s && (!live_stream(s) || s->dev != current->dev))
		r = CUDA_ERROR_INVALID_HANDLE;
	pthread_mutex_unlock(&lock);
	if (r == CUDA_SUCCESS)
		r = resolve(dst, n, dctx, &to);
	if (r == CUDA_SUCCESS)
		r = resolve(src, n, sctx, &from);
	if (r != CUDA_SUCCESS || !n)
		END(cuMemcpyPeerAsync, r);
	op.dst = to;
	op.src = from;
	END(cuMemcpyPeerAsync, queue(s, &op, "cuMemcpyPeerAsync"));
}

CUresult cuEventCreate(CUevent *pe, unsigned int flags)
{
	struct CUevent_st *e = NULL;
	CUresult r;

	BEGIN(cuEventCreate);
	if (!pe || (flags & ~(unsigned)CU_EVENT_FLAGS))
		END(cuEventCreate, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS && !(e = calloc(1, sizeof(*e))))
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		e->dev = current->dev;
		e->next = events;
		events = e;
		*pe = e;
	}
	pthread_mutex_unlock(&lock);
	END(cuEventCreate, r);
}

/* Completes once everything queued on s so far has run. */
CUresult cuEventRecord(CUevent e, CUstream s)
{
	CUresult r;

	BEGIN(cuEventRecord);
	pthread_mutex_lock(&lock);
	r = need_current();
	if (r == CUDA_SUCCESS && (!live_event(e) || e->dev != current->dev ||
				  (s && (!live_stream(s) || s->dev != current->dev))))
		r = CUDA_ERROR_INVALID_HANDLE;
	if (r == CUDA_SUCCESS) {
		e->s = s;
		e->seq = 0;
		if (s) {
			pthread_mutex_lock(&s->mu);
			e->seq = s->queued;
			pthread_mutex_unlock(&s->mu);
		}
	}
	pthread_mutex_unlock(&lock);
	END(cuEventRecord, r);
}

/* The stream e waits on and up to where; false: no such event. */
static bool event_target(CUevent e, struct CUstream_st **s, uint64_t *seq)
{
	bool ok;

	pthread_mutex_lock(&lock);
	ok = live_event(e);
	if (ok) {
		*s = e->s;
		*seq = e->seq;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

CUresult cuEventSynchronize(CUevent e)
{
	struct CUstream_st *s = NULL;
	uint64_t seq = 0;

	BEGIN(cuEventSynchronize);
	if (!event_target(e, &s, &seq))
		END(cuEventSynchronize, CUDA_ERROR_INVALID_HANDLE);
	if (s)
		stream_wait(s, seq);
	END(cuEventSynchronize, CUDA_SUCCESS);
}

CUresult cuEventDestroy_v2(CUevent e)
{
	CUresult r = CUDA_ERROR_INVALID_HANDLE;

	BEGIN(cuEventDestroy_v2);
	pthread_mutex_lock(&lock);
	for (struct CUevent_st **pp = &events; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			free(e);
			r = CUDA_SUCCESS;
			break;
		}
	pthread_mutex_unlock(&lock);
	END(cuEventDestroy_v2, r);
}

/* The current context's copies may reach peer's memory (FAKE_CUDA_PEER). */
CUresult cuCtxEnablePeerAccess(CUcontext peer_ctx, unsigned int flags)
{
	struct CUctx_st *c;
	CUresult r;

	BEGIN(cuCtxEnablePeerAccess);
	if (flags)
		END(cuCtxEnablePeerAccess, CUDA_ERROR_INVALID_VALUE);
	pthread_mutex_lock(&lock);
	r = need_current();
	c = r == CUDA_SUCCESS ? ctx_check(peer_ctx, &r) : NULL;
	if (r == CUDA_SUCCESS && (c->dev == current->dev || !peer))
		r = CUDA_ERROR_PEER_ACCESS_UNSUPPORTED;
	else if (r == CUDA_SUCCESS && peer_on[current->dev][c->dev])
		r = CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED;
	else if (r == CUDA_SUCCESS)
		peer_on[current->dev][c->dev] = true;
	pthread_mutex_unlock(&lock);
	END(cuCtxEnablePeerAccess, r);
}

CUresult cuGetErrorString(CUresult error, const char **str)
{
	BEGIN(cuGetErrorString);
	if (!str)
		END(cuGetErrorString, CUDA_ERROR_INVALID_VALUE);
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
		if (errors[i].code == error) {
			*str = errors[i].text;
			END(cuGetErrorString, CUDA_SUCCESS);
		}
	*str = NULL;
	END(cuGetErrorString, CUDA_ERROR_INVALID_VALUE);
}

/* At dlclose (or exit): whatever the caller still holds is a leak. */
__attribute__((destructor)) static void unload(void)
{
	if (!initialized)
		return;
	say("host registrations: %" PRIu64 " cuMemHostRegister calls, at most %zu bytes "
	    "registered at once", reg_calls, reg_peak);
	for (int i = 0; i < ndevs; i++) {
		if (devs[i].refs)
			say("warning: unloaded with device %d's primary context retained %d "
			    "time%s (leaked)", i, devs[i].refs, devs[i].refs == 1 ? "" : "s");
		ctx_reset(i, "unload");
		munmap(devs[i].vram, mem);
	}
	if (trace) {
		char line[1024];
		size_t at = 0;

		for (int i = 0; i < NEP && at < sizeof(line); i++)
			if (atomic_load(&calls[i]))
				at += (size_t)snprintf(line + at, sizeof(line) - at, " %s=%" PRIu64,
						       ep_name[i], (uint64_t)atomic_load(&calls[i]));
		say("unloaded; calls:%s", line);
	}
}
