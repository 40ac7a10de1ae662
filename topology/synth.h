/* SPDX-License-Identifier: MIT */
/* Synthetic machines for tests and scale benchmarks: always marked emulated. */
#ifndef PAGEMAP_TOPO_SYNTH_H
#define PAGEMAP_TOPO_SYNTH_H
#include "topo.h"

/* Adds host bridge "pciDDDD:BB" on numa. Returns its index. */
int topo_synth_hostbridge(struct topo_graph *g, uint32_t domain, uint8_t bus, int numa);
/* Adds a PCI function below parent (-1: on hb's root bus). Bridges get class
 * 0x060400; port type is left to topo_graph_finalize() unless port is given
 * (anything but TOPO_PORT_ENDPOINT sets it as if read from capabilities).
 * Returns the pci index. */
int topo_synth_fn(struct topo_graph *g, const char *bdf, int parent, int hb,
		  uint32_t class_code, enum topo_port_type port, int speed, int width);
/* A two-socket server: per socket hb_per_socket host bridges, each a root
 * port -> one switch -> devs_per_switch endpoints (GPUs and NICs alternating),
 * one PCI domain per host bridge. Finalized. */
int topo_synth_server(int hb_per_socket, int devs_per_switch, struct topo_graph **out);
#endif
