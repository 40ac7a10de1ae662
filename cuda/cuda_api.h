/* SPDX-License-Identifier: MIT */
/*
 * The few CUDA driver API calls the broker's GPU pools and pmbench gpu
 * make, loaded from libcuda.so.1 at run time (libpmcuda, cuda/meson.build).
 * The types are declared here, as the driver's ABI defines them (cuda.h:
 * CUresult is an enum, CUdevice an int, CUdeviceptr an unsigned long long on
 * 64-bit, CUcontext and CUstream pointers), so what links this builds
 * without CUDA headers and runs without a driver.
 */
#ifndef PAGEMAP_CUDA_API_H
#define PAGEMAP_CUDA_API_H

#include <assert.h>
#include <stddef.h>

typedef int cu_result; /* CUDA_SUCCESS is 0 */
typedef int cu_device;
typedef struct cu_ctx_st *cu_context;
typedef struct cu_stream_st *cu_stream; /* NULL: the legacy default stream */
typedef struct cu_event_st *cu_event;
typedef unsigned long long cu_deviceptr;

#define CU_SUCCESS 0
#define CU_ERROR_PEER_ACCESS_ALREADY_ENABLED 704

/* CUstream_flags: no implicit synchronisation with the legacy default stream. */
#define CU_STREAM_NON_BLOCKING 0x1
/* CUevent_flags. */
#define CU_EVENT_DISABLE_TIMING 0x2

/* CUdevice_attribute, an enum. */
#define CU_DEVICE_ATTRIBUTE_CONCURRENT_MANAGED_ACCESS 89
/* CUmemAttach_flags, for cuMemAllocManaged. */
#define CU_MEM_ATTACH_GLOBAL 0x1
/* CUmemLocationType, an enum. */
#define CU_MEM_LOCATION_TYPE_DEVICE 0x1 /* id: a device ordinal */
#define CU_MEM_LOCATION_TYPE_HOST 0x2   /* id: ignored */

/* CUmemLocation (CUmemLocation_v1), passed by value. */
struct cu_mem_location {
	int type; /* CU_MEM_LOCATION_TYPE_* */
	int id;
};
static_assert(sizeof(struct cu_mem_location) == 8, "CUmemLocation is two 32-bit fields");

/* The _v2 entry points are what cuda.h's macros call today. */
struct cuda_api {
	void *lib;
	cu_result (*init)(unsigned int flags);                        /* cuInit */
	cu_result (*device_get_count)(int *count);                    /* cuDeviceGetCount */
	cu_result (*device_get)(cu_device *dev, int ordinal);         /* cuDeviceGet */
	cu_result (*device_get_name)(char *name, int len, cu_device dev);
	cu_result (*device_total_mem)(size_t *bytes, cu_device dev);  /* _v2 */
	cu_result (*device_get_pci_bus_id)(char *id, int len, cu_device dev);
	cu_result (*device_can_access_peer)(int *can, cu_device dev, cu_device peer);
	cu_result (*primary_ctx_retain)(cu_context *ctx, cu_device dev);
	cu_result (*primary_ctx_release)(cu_device dev);              /* _v2 */
	cu_result (*ctx_set_current)(cu_context ctx);
	cu_result (*mem_alloc)(cu_deviceptr *p, size_t bytes);        /* _v2 */
	cu_result (*mem_free)(cu_deviceptr p);                        /* _v2 */
	cu_result (*memcpy_htod)(cu_deviceptr dst, const void *src, size_t n); /* _v2 */
	cu_result (*memcpy_dtoh)(void *dst, cu_deviceptr src, size_t n);       /* _v2 */
	cu_result (*memcpy_peer)(cu_deviceptr dst, cu_context dctx, cu_deviceptr src,
				 cu_context sctx, size_t n);
	cu_result (*mem_host_register)(void *p, size_t bytes, unsigned int flags); /* _v2 */
	cu_result (*mem_host_unregister)(void *p);
	cu_result (*get_error_string)(cu_result r, const char **s);
	/* Copies on streams, ordered by events (the broker's copy engine). */
	cu_result (*stream_create)(cu_stream *s, unsigned int flags);       /* cuStreamCreate */
	cu_result (*stream_destroy)(cu_stream s);                           /* _v2 */
	cu_result (*stream_synchronize)(cu_stream stream);
	cu_result (*memcpy_htod_async)(cu_deviceptr dst, const void *src, size_t n,
				       cu_stream s);                        /* _v2 */
	cu_result (*memcpy_dtoh_async)(void *dst, cu_deviceptr src, size_t n,
				       cu_stream s);                        /* _v2 */
	/* Device to device: the synchronous calls may return before such a
	 * copy is over, so it goes on a stream that is then waited for. */
	cu_result (*memcpy_peer_async)(cu_deviceptr dst, cu_context dctx, cu_deviceptr src,
				       cu_context sctx, size_t n, cu_stream s);
	cu_result (*event_create)(cu_event *e, unsigned int flags);         /* cuEventCreate */
	cu_result (*event_record)(cu_event e, cu_stream s);
	cu_result (*event_synchronize)(cu_event e);
	cu_result (*event_destroy)(cu_event e);                             /* _v2 */

	/*
	 * Optional: NULL where the driver lacks them. cuCtxEnablePeerAccess
	 * lets the current context's copies reach the peer's memory directly
	 * (the broker and pmbench gpu try it; without it cuMemcpyPeer still
	 * works). The rest are for pmbench gpu's baselines, and the broker
	 * does not call them. As CUDA 13.0's cuda.h
	 * declares them, each under the name its macros map to (no per-thread
	 * default stream).
	 */
	cu_result (*ctx_enable_peer_access)(cu_context peer, unsigned int flags);
	cu_result (*device_get_attribute)(int *value, int attrib, cu_device dev);
	cu_result (*mem_alloc_host)(void **p, size_t bytes);          /* _v2 */
	cu_result (*mem_free_host)(void *p);
	cu_result (*mem_alloc_managed)(cu_deviceptr *p, size_t bytes, unsigned int flags);
	/* cuMemPrefetchAsync_v2 (CUDA 12.2 on; the older cuMemPrefetchAsync
	 * took a CUdevice and no flags). */
	cu_result (*mem_prefetch_async)(cu_deviceptr p, size_t bytes, struct cu_mem_location to,
					unsigned int flags, cu_stream stream);
};

/* dlopen()s the driver and cuInit()s it. 0; -ENOENT: no driver library, or
 * one without a required entry point; -ENODEV: the driver found no device;
 * -EIO: cuInit failed otherwise. On failure *why says what happened, for the
 * log. Optional entry points the driver lacks are left NULL. */
int cuda_load(struct cuda_api *api, char *why, size_t len);
void cuda_unload(struct cuda_api *api);
/* The driver's name for r, or "CUDA error N". */
const char *cuda_error(const struct cuda_api *api, cu_result r, char *buf, size_t len);
#endif
