/* SPDX-License-Identifier: MIT */
/*
 * A stand-in for libnvidia-ml.so.1, for testing topology/src_nvml.c without
 * NVIDIA hardware (tests/nvml_test.sh). It answers the six calls the source
 * makes from $FAKE_NVML: "GPU>REMOTE*COUNT;..." where GPU is a BDF, REMOTE a
 * BDF or "switch", COUNT how many links. Labelled as fake in every use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GPUS 64
#define MAX_LINKS 18

struct fake_gpu {
	unsigned dom, bus, dev, fn;
	int nlinks;
	char remote[MAX_LINKS][32]; /* "00000000:BB:DD.F" as NVML writes it */
};

struct fake_pci {
	char legacy[16];
	unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
	char bus_id[32];
};

static struct fake_gpu gpus[MAX_GPUS];
static int ngpus;

static struct fake_gpu *gpu_of(unsigned dom, unsigned bus, unsigned dev, unsigned fn)
{
	for (int i = 0; i < ngpus; i++)
		if (gpus[i].dom == dom && gpus[i].bus == bus && gpus[i].dev == dev &&
		    gpus[i].fn == fn)
			return &gpus[i];
	if (ngpus == MAX_GPUS)
		return NULL;
	gpus[ngpus] = (struct fake_gpu){ dom, bus, dev, fn, 0, { { 0 } } };
	return &gpus[ngpus++];
}

int nvmlInit_v2(void);
int nvmlInit_v2(void)
{
	const char *spec = getenv("FAKE_NVML");
	char *copy, *tok, *save;

	ngpus = 0;
	if (!spec)
		return 0;
	copy = strdup(spec);
	for (tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		unsigned d, b, s, f, rd, rb, rs, rf;
		char remote[32];
		int count;
		struct fake_gpu *g;

		if (sscanf(tok, "%x:%x:%x.%x>%31[^*]*%d", &d, &b, &s, &f, remote, &count) != 6)
			continue;
		g = gpu_of(d, b, s, f);
		for (int i = 0; g && i < count && g->nlinks < MAX_LINKS; i++) {
			if (!strcmp(remote, "switch"))
				snprintf(g->remote[g->nlinks++], 32, "00000000:FF:00.0");
			else if (sscanf(remote, "%x:%x:%x.%x", &rd, &rb, &rs, &rf) == 4)
				snprintf(g->remote[g->nlinks++], 32, "%08X:%02X:%02X.%X", rd, rb,
					 rs, rf);
		}
	}
	free(copy);
	return 0;
}

int nvmlShutdown(void);
int nvmlShutdown(void)
{
	return 0;
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *id, void **dev);
int nvmlDeviceGetHandleByPciBusId_v2(const char *id, void **dev)
{
	unsigned d, b, s, f;

	if (sscanf(id, "%x:%x:%x.%x", &d, &b, &s, &f) != 4)
		return 2; /* NVML_ERROR_INVALID_ARGUMENT */
	for (int i = 0; i < ngpus; i++)
		if (gpus[i].dom == d && gpus[i].bus == b && gpus[i].dev == s && gpus[i].fn == f) {
			*dev = &gpus[i];
			return 0;
		}
	return 6; /* NVML_ERROR_NOT_FOUND */
}

int nvmlDeviceGetNvLinkState(void *dev, unsigned link, int *active);
int nvmlDeviceGetNvLinkState(void *dev, unsigned link, int *active)
{
	*active = (int)link < ((struct fake_gpu *)dev)->nlinks;
	return 0;
}

int nvmlDeviceGetNvLinkRemotePciInfo_v2(void *dev, unsigned link, struct fake_pci *pci);
int nvmlDeviceGetNvLinkRemotePciInfo_v2(void *dev, unsigned link, struct fake_pci *pci)
{
	struct fake_gpu *g = dev;

	if ((int)link >= g->nlinks)
		return 3; /* NVML_ERROR_NOT_SUPPORTED */
	memset(pci, 0, sizeof(*pci));
	snprintf(pci->bus_id, sizeof(pci->bus_id), "%s", g->remote[link]);
	sscanf(pci->bus_id, "%x:%x:%x", &pci->domain, &pci->bus, &pci->device);
	return 0;
}

int nvmlDeviceGetNvLinkVersion(void *dev, unsigned link, unsigned *version);
int nvmlDeviceGetNvLinkVersion(void *dev, unsigned link, unsigned *version)
{
	(void)dev;
	(void)link;
	*version = 4;
	return 0;
}
