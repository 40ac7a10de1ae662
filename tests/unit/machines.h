/* SPDX-License-Identifier: MIT */
/* Hand-built machines shared by the classification and p2pdma tests. */
#ifndef PAGEMAP_TEST_MACHINES_H
#define PAGEMAP_TEST_MACHINES_H
#include "synth.h"

/*
 * The repo's QEMU "pcie" machine, by hand:
 *   node0: pci0000:00 -> 00:01.0 root port -> 01:00.0 switch up ->
 *            02:00.0 down -> 03:00.0 mem A ; 02:01.0 down -> 04:00.0 mem B
 *          00:02.0 root port -> 05:00.0 nvme
 *          pci0000:40 (second host bridge, same node) -> 40:01.0 rp -> 41:00.0 gpu C
 *   node1: pci0000:80 -> 80:00.0 root port -> 81:00.0 nic
 * All bridges' port types are left for topo_graph_finalize() to infer.
 */
struct test_machine {
	struct topo_graph *g;
	int hb0, hb40, hb80;
	int rp0, up, dn0, dn1, a, b, rp2, nvme, rp40, c, rp80, nic;
};

int test_machine_build(struct test_machine *m, uint16_t root_vendor, uint16_t root_device);
int test_dev(const struct topo_graph *g, const char *name);
#endif
