/* SPDX-License-Identifier: MIT */
/*
 * Names from udev's hwdb first: an mmap'd index, the same data as pci.ids.
 * libpci can read hwdb too, but only after parsing all of pci.ids (~25M
 * instructions, nine tenths of a small machine's whole discovery). pci.ids
 * through libpci remains the fallback when hwdb is absent or lacks the
 * vendor. A device hwdb lacks under a vendor it knows is printed as lspci
 * prints ids missing from its database: "Device 0d57".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pci_names.h"
#if HAVE_LIBUDEV
#include <libudev.h>
#endif

struct pci_names {
	struct pci_access *acc;
#if HAVE_LIBUDEV
	struct udev *udev;
	struct udev_hwdb *hwdb;
#endif
};

struct pci_names *pci_names_new(struct pci_access *acc)
{
	struct pci_names *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->acc = acc;
#if HAVE_LIBUDEV
	n->udev = udev_new();
	n->hwdb = n->udev ? udev_hwdb_new(n->udev) : NULL;
#endif
	return n;
}

void pci_names_free(struct pci_names *n)
{
	if (!n)
		return;
#if HAVE_LIBUDEV
	udev_hwdb_unref(n->hwdb);
	udev_unref(n->udev);
#endif
	free(n);
}

#if HAVE_LIBUDEV
static bool hwdb_get(struct pci_names *n, const char *modalias, const char *key, char *buf,
		     size_t len)
{
	struct udev_list_entry *e;

	udev_list_entry_foreach(e, udev_hwdb_get_properties_list_entry(n->hwdb, modalias, 0))
		if (!strcmp(udev_list_entry_get_name(e), key)) {
			snprintf(buf, len, "%s", udev_list_entry_get_value(e));
			return true;
		}
	return false;
}

static bool hwdb_lookup(struct pci_names *n, struct topo_pci *p)
{
	char alias[64];

	if (!n->hwdb)
		return false;
	snprintf(alias, sizeof(alias), "pci:v%08X", p->vendor);
	if (!hwdb_get(n, alias, "ID_VENDOR_FROM_DATABASE", p->vendor_name, sizeof(p->vendor_name)))
		return false;
	snprintf(alias, sizeof(alias), "pci:v%08Xd%08X", p->vendor, p->device);
	if (!hwdb_get(n, alias, "ID_MODEL_FROM_DATABASE", p->device_name, sizeof(p->device_name)))
		snprintf(p->device_name, sizeof(p->device_name), "Device %04x", p->device);
	return true;
}
#endif

void pci_names_lookup(struct pci_names *n, struct topo_pci *p)
{
#if HAVE_LIBUDEV
	if (hwdb_lookup(n, p))
		return;
#endif
	pci_lookup_name(n->acc, p->vendor_name, sizeof(p->vendor_name), PCI_LOOKUP_VENDOR,
			p->vendor);
	pci_lookup_name(n->acc, p->device_name, sizeof(p->device_name), PCI_LOOKUP_DEVICE,
			p->vendor, p->device);
}
