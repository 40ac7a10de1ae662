/* SPDX-License-Identifier: MIT */
/*
 * The few CUDA driver API calls the GPU pool makes, loaded from
 * libcuda.so.1 at run time. The types are declared here, as the driver's
 * ABI defines them (cuda.h: CUresult is an enum, CUdevice an int,
 * CUdeviceptr an unsigned long long on 64-bit, CUcontext a pointer), so the
 * broker builds without CUDA headers and runs without a driver.
 */
#ifndef PAGEMAP_CUDA_API_H
#define PAGEMAP_CUDA_API_H

#include <stddef.h>

typedef int cu_result; /* CUDA_SUCCESS is 0 */
typedef int cu_device;
typedef struct cu_ctx_st *cu_context;
typedef unsigned long long cu_deviceptr;

#define CU_SUCCESS 0

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
};

/* dlopen()s the driver and cuInit()s it. 0; -ENOENT: no driver library;
 * -ENODEV: the driver found no device; -EIO: cuInit failed otherwise. On
 * failure *why says what happened, for the log. */
int cuda_load(struct cuda_api *api, char *why, size_t len);
void cuda_unload(struct cuda_api *api);
/* The driver's name for r, or "CUDA error N". */
const char *cuda_error(const struct cuda_api *api, cu_result r, char *buf, size_t len);
#endif
