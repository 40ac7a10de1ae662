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
 *   FAKE_CUDA_TRACE=1    every call and its result on stderr
 * A malformed setting makes cuInit fail (and say why) rather than run a test
 * without the faults it asked for.
 */
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
	CUDA_ERROR_INVALID_HANDLE = 400,
	CUDA_ERROR_ILLEGAL_ADDRESS = 700,
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
	X(cuMemAllocManaged) X(cuMemPrefetchAsync_v2) X(cuStreamSynchronize) X(cuGetErrorString)

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
	{ CUDA_ERROR_INVALID_HANDLE, "CUDA_ERROR_INVALID_HANDLE",
	  "invalid resource handle (" SIM ")" },
	{ CUDA_ERROR_ILLEGAL_ADDRESS, "CUDA_ERROR_ILLEGAL_ADDRESS",
	  "an illegal memory access was encountered (" SIM ")" },
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

/* The last release of device d's primary context frees what it held, as a
 * real driver does; a caller that left anything there has a leak. */
static void ctx_reset(int d, const char *when)
{
	unsigned nal = 0, nman = 0, nreg = 0;

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
		free(h);
		nreg++;
	}
	if (nal || nman || nreg)
		say("warning: %s of device %d's primary context: %u cuMemAlloc, %u "
		    "cuMemAllocManaged and %u host registrations were still live (leaked)",
		    when, d, nal, nman, nreg);
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
	if (r == CUDA_SUCCESS && n)
		memcpy(to, src, n);
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
	if (r == CUDA_SUCCESS && n)
		memcpy(dst, from, n);
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
	if (r == CUDA_SUCCESS && !(h = calloc(1, sizeof(*h))))
		r = CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		h->start = (uintptr_t)p;
		h->len = bytes;
		h->dev = current->dev;
		h->next = hostregs;
		hostregs = h;
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
	CUresult r;

	BEGIN(cuStreamSynchronize);
	pthread_mutex_lock(&lock);
	r = stream ? CUDA_ERROR_INVALID_HANDLE : need_current();
	pthread_mutex_unlock(&lock);
	END(cuStreamSynchronize, r);
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
