/* SPDX-License-Identifier: MIT */
/* PCIe link speeds and the bandwidth estimates derived from them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topo.h"

/*
 * The kernel prints "8.0 GT/s PCIe" (>= 5.6), "8 GT/s" or "8.0 GT/s" (older)
 * and "Unknown" (older: "Unknown speed"). Returns 0.1 GT/s units, 0 unknown.
 */
int topo_parse_link_speed(const char *s)
{
	char *end;
	double v;

	if (!s)
		return 0;
	v = strtod(s, &end);
	if (end == s || v <= 0 || v > 1000)
		return 0;
	while (*end == ' ')
		end++;
	if (strncmp(end, "GT/s", 4))
		return 0;
	return (int)(v * 10 + 0.5);
}

/*
 * Usable GB/s per link, NCCL's estimate: width x per-lane factor / 80, where
 * the factor folds encoding overhead (8b/10b up to Gen2, 128b/130b after):
 * Gen3 x16 = 12, Gen4 x16 = 24, Gen5 x16 = 48 GB/s.
 */
double topo_pcie_gbps(int speed, int width)
{
	static const struct {
		int speed;
		int factor;
	} table[] = { { 25, 15 }, { 50, 30 }, { 80, 60 }, { 160, 120 }, { 320, 240 }, { 640, 480 } };
	int factor = 0;

	if (speed <= 0 || width <= 0)
		return 0;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (speed >= table[i].speed)
			factor = table[i].factor;
	return (double)width * factor / 80.0;
}

static int min_known(int a, int b)
{
	if (a <= 0)
		return b;
	if (b <= 0)
		return a;
	return a < b ? a : b;
}

/*
 * A physical link exists between an endpoint or a switch's upstream port and
 * the port above it. Switch-internal hops (downstream to upstream port) and a
 * root port's hop into its host bridge are not links and do not limit.
 * Use the lower of both ends' maximum: current values drop at idle (ASPM).
 */
void topo_pci_uplink_caps(const struct topo_graph *g, int pci, int *speed, int *width)
{
	const struct topo_pci *p = &g->pci[pci];
	const struct topo_pci *up = p->parent >= 0 ? &g->pci[p->parent] : NULL;

	*speed = min_known(p->max_speed, up ? up->max_speed : 0);
	*width = min_known(p->max_width, up ? up->max_width : 0);
}

double topo_pci_uplink_gbps(const struct topo_graph *g, int pci)
{
	const struct topo_pci *p = &g->pci[pci];
	int speed, width;

	if (p->port == TOPO_PORT_ROOT || p->port == TOPO_PORT_SWITCH_DOWN || p->parent < 0)
		return 0;
	topo_pci_uplink_caps(g, pci, &speed, &width);
	return topo_pcie_gbps(speed, width);
}

bool topo_pci_downtrained(const struct topo_pci *p)
{
	return p->cur_speed > 0 && p->max_speed > 0 && p->cur_width > 0 && p->max_width > 0 &&
	       (p->cur_speed < p->max_speed || p->cur_width < p->max_width);
}
