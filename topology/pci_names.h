/* SPDX-License-Identifier: MIT */
/* Vendor and device names for PCI ids. */
#ifndef PAGEMAP_PCI_NAMES_H
#define PAGEMAP_PCI_NAMES_H
#include <pci/pci.h>

#include "topo.h"

struct pci_names;

/* acc supplies libpci's pci.ids lookup, used only when hwdb cannot answer. */
struct pci_names *pci_names_new(struct pci_access *acc);
void pci_names_free(struct pci_names *n);
void pci_names_lookup(struct pci_names *n, struct topo_pci *p);
#endif
