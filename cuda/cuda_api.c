/* SPDX-License-Identifier: MIT */
/* Loading the CUDA driver at run time (cuda_api.h). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cuda_api.h"

#define CUDA_ERROR_NO_DEVICE 100

struct sym {
	const char *name;
	size_t off;
};

#define SYM(field, name) { name, offsetof(struct cuda_api, field) }
static const struct sym required[] = {
	SYM(init, "cuInit"),
	SYM(device_get_count, "cuDeviceGetCount"),
	SYM(device_get, "cuDeviceGet"),
	SYM(device_get_name, "cuDeviceGetName"),
	SYM(device_total_mem, "cuDeviceTotalMem_v2"),
	SYM(device_get_pci_bus_id, "cuDeviceGetPCIBusId"),
	SYM(device_can_access_peer, "cuDeviceCanAccessPeer"),
	SYM(primary_ctx_retain, "cuDevicePrimaryCtxRetain"),
	SYM(primary_ctx_release, "cuDevicePrimaryCtxRelease_v2"),
	SYM(ctx_set_current, "cuCtxSetCurrent"),
	SYM(mem_alloc, "cuMemAlloc_v2"),
	SYM(mem_free, "cuMemFree_v2"),
	SYM(memcpy_htod, "cuMemcpyHtoD_v2"),
	SYM(memcpy_dtoh, "cuMemcpyDtoH_v2"),
	SYM(memcpy_peer, "cuMemcpyPeer"),
	SYM(mem_host_register, "cuMemHostRegister_v2"),
	SYM(mem_host_unregister, "cuMemHostUnregister"),
	SYM(get_error_string, "cuGetErrorString"),
	SYM(stream_create, "cuStreamCreate"),
	SYM(stream_destroy, "cuStreamDestroy_v2"),
	SYM(stream_synchronize, "cuStreamSynchronize"),
	SYM(memcpy_htod_async, "cuMemcpyHtoDAsync_v2"),
	SYM(memcpy_dtoh_async, "cuMemcpyDtoHAsync_v2"),
	SYM(memcpy_peer_async, "cuMemcpyPeerAsync"),
	SYM(event_create, "cuEventCreate"),
	SYM(event_record, "cuEventRecord"),
	SYM(event_synchronize, "cuEventSynchronize"),
	SYM(event_destroy, "cuEventDestroy_v2"),
};

/* Absent from older drivers; the broker runs without them. */
static const struct sym optional[] = {
	SYM(ctx_enable_peer_access, "cuCtxEnablePeerAccess"),
	SYM(device_get_attribute, "cuDeviceGetAttribute"),
	SYM(mem_alloc_host, "cuMemAllocHost_v2"),
	SYM(mem_free_host, "cuMemFreeHost"),
	SYM(mem_alloc_managed, "cuMemAllocManaged"),
	SYM(mem_prefetch_async, "cuMemPrefetchAsync_v2"),
};
#undef SYM

static void *lookup(struct cuda_api *api, const struct sym *s)
{
	void *f = dlsym(api->lib, s->name);

	/* POSIX guarantees a dlsym()ed function converts back. */
	if (f)
		memcpy((char *)api + s->off, &f, sizeof(f));
	return f;
}

int cuda_load(struct cuda_api *api, char *why, size_t len)
{
	cu_result r;

	memset(api, 0, sizeof(*api));
	api->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (!api->lib) {
		snprintf(why, len, "no CUDA driver (%s)", dlerror());
		return -ENOENT;
	}
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (!lookup(api, &required[i])) {
			snprintf(why, len, "the CUDA driver lacks %s: too old", required[i].name);
			cuda_unload(api);
			return -ENOENT;
		}
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
		lookup(api, &optional[i]);
	r = api->init(0);
	if (r != CU_SUCCESS) {
		char buf[64];

		snprintf(why, len, "cuInit: %s", cuda_error(api, r, buf, sizeof(buf)));
		cuda_unload(api);
		return r == CUDA_ERROR_NO_DEVICE ? -ENODEV : -EIO;
	}
	return 0;
}

void cuda_unload(struct cuda_api *api)
{
	if (api->lib)
		dlclose(api->lib);
	memset(api, 0, sizeof(*api));
}

const char *cuda_error(const struct cuda_api *api, cu_result r, char *buf, size_t len)
{
	const char *s = NULL;

	if (api->get_error_string && api->get_error_string(r, &s) == CU_SUCCESS && s)
		return s;
	snprintf(buf, len, "CUDA error %d", r);
	return buf;
}
