/* SPDX-License-Identifier: MIT */
/*
 * The kernel's PCI peer-to-peer DMA rules (drivers/pci/p2pdma.c), evaluated
 * on our graph so users can learn whether P2P works between two functions and,
 * when it does not, why. Reimplemented from the kernel's documented behaviour:
 *  - walk up from the provider; at each ancestor look for it above the client;
 *  - ACS redirect (RR, CR, EC) on the provider's way up to and including the
 *    common ancestor, or on the client's way up below it, forces the transfer
 *    through the host bridge;
 *  - no common ancestor also means through the host bridge;
 *  - through the host bridge is allowed on AMD Zen (family >= 0x17) or when
 *    the host bridges' root devices are whitelisted, else not supported.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "topo.h"

#define PCI_ACS_RR 0x0004
#define PCI_ACS_CR 0x0008
#define PCI_ACS_EC 0x0020

/* The kernel's whitelist (as of v6.2), kept as data. REQ_SAME: only when both
 * ends are below this same host bridge. */
static const struct {
	uint16_t vendor, device;
	bool req_same;
} whitelist[] = {
	{ 0x8086, 0x3c00, true },  { 0x8086, 0x3c01, true },  /* Xeon E5 / Core i7 */
	{ 0x8086, 0x2f00, true },  { 0x8086, 0x2f01, true },  /* Xeon E5 v3 */
	{ 0x8086, 0x2030, false }, { 0x8086, 0x2031, false }, /* Skylake-E */
	{ 0x8086, 0x2032, false }, { 0x8086, 0x2033, false },
	{ 0x8086, 0x2020, false }, { 0x8086, 0x09a2, false }, /* Ice Lake-SP */
};

bool topo_hostbridge_whitelisted(uint16_t vendor, uint16_t device, bool same_host_bridge)
{
	for (size_t i = 0; i < sizeof(whitelist) / sizeof(whitelist[0]); i++)
		if (whitelist[i].vendor == vendor && whitelist[i].device == device)
			return same_host_bridge || !whitelist[i].req_same;
	return false;
}


static bool acs_redir(const struct topo_pci *p)
{
	return p->acs_ctrl > 0 && (p->acs_ctrl & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC));
}

struct walk {
	char acs[256];     /* BDFs with ACS redirect, ','-separated as pci=disable_acs_redir= wants */
	int acs_cnt;
	char unknown[256]; /* bridges whose ACS state could not be read */
};

static void append(char *buf, size_t len, const char *s)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s%s", n ? ";" : "", s);
}

static void check_acs(const struct topo_graph *g, int i, struct walk *w)
{
	const struct topo_pci *p = &g->pci[i];

	if (acs_redir(p)) {
		append(w->acs, sizeof(w->acs), p->bdf);
		w->acs_cnt++;
	} else if (p->acs_ctrl < 0 && p->port != TOPO_PORT_ENDPOINT) {
		append(w->unknown, sizeof(w->unknown), p->bdf);
	}
}

static bool cpu_supports_p2pdma(const struct topo_graph *g)
{
	return !strcmp(g->cpu.vendor, "AuthenticAMD") && g->cpu.family >= 0x17;
}

__attribute__((format(printf, 2, 3))) static void add_reason(struct topo_path *out,
							     const char *fmt, ...)
{
	size_t n = strlen(out->reason);
	va_list ap;

	if (n && n + 2 < sizeof(out->reason)) {
		strcpy(out->reason + n, "; ");
		n += 2;
	}
	if (n >= sizeof(out->reason) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(out->reason + n, sizeof(out->reason) - n, fmt, ap);
	va_end(ap);
}

static void through_host_bridge(const struct topo_graph *g, int provider, int client,
				bool acs_redirects, struct topo_path *out)
{
	const struct topo_hostbridge *ha = &g->hostbridges[g->pci[provider].hostbridge];
	const struct topo_hostbridge *hb = &g->hostbridges[g->pci[client].hostbridge];
	bool same = ha == hb;
	char ida[16], idb[16];

	(void)acs_redirects;
	out->p2p = TOPO_P2P_THRU_HOST_BRIDGE;
	if (cpu_supports_p2pdma(g)) {
		add_reason(out, "allowed through the root complex: AMD Zen CPU");
		return;
	}
	snprintf(ida, sizeof(ida), "%04x:%04x", ha->root_vendor, ha->root_device);
	snprintf(idb, sizeof(idb), "%04x:%04x", hb->root_vendor, hb->root_device);
	if (same && topo_hostbridge_whitelisted(ha->root_vendor, ha->root_device, true)) {
		add_reason(out, "allowed through host bridge %s: root device %s is whitelisted",
			   ha->name, ida);
		return;
	}
	if (!same && topo_hostbridge_whitelisted(ha->root_vendor, ha->root_device, false) &&
	    topo_hostbridge_whitelisted(hb->root_vendor, hb->root_device, false)) {
		add_reason(out, "allowed across host bridges %s and %s: both whitelisted", ha->name,
			   hb->name);
		return;
	}
	out->p2p = TOPO_P2P_NOT_SUPPORTED;
	if (!ha->root_vendor)
		add_reason(out, "host bridge %s has no root device at 00.0 for the whitelist",
			   ha->name);
	else if (same)
		add_reason(out, "host bridge %s (root device %s) is not in the kernel's P2PDMA whitelist",
			   ha->name, ida);
	else if (topo_hostbridge_whitelisted(ha->root_vendor, ha->root_device, true) &&
		 topo_hostbridge_whitelisted(hb->root_vendor, hb->root_device, true))
		add_reason(out, "different root complexes (%s, %s): whitelist entry requires one host bridge",
			   ha->name, hb->name);
	else
		add_reason(out, "different root complexes (%s, %s) and not both whitelisted", ha->name,
			   hb->name);
	if (!g->cpu.vendor[0])
		add_reason(out, "CPU vendor unknown (no /proc/cpuinfo)");
}

static void bar_check(const struct topo_graph *g, int provider, struct topo_path *out)
{
	const struct topo_pci *p = &g->pci[provider];

	if (p->nbars == 0) {
		out->p2p = TOPO_P2P_NOT_SUPPORTED;
		add_reason(out, "%s has no memory BAR to expose as peer memory", p->bdf);
	}
}

int topo_p2pdma(const struct topo_graph *g, int provider, int client, struct topo_path *out)
{
	struct walk w = { .acs_cnt = 0 };
	int a, bb, dist_a = 0, dist_b = 0;

	if (provider < 0 || client < 0 || (size_t)provider >= g->n_pci ||
	    (size_t)client >= g->n_pci)
		return -EINVAL;
	out->reason[0] = '\0';
	out->p2p_acs_unknown = false;
	for (a = provider; a >= 0; a = topo_pci_upstream(g, a), dist_a++) {
		dist_b = 0;
		check_acs(g, a, &w);
		for (bb = client; bb >= 0; bb = topo_pci_upstream(g, bb), dist_b++)
			if (bb == a)
				goto common;
	}
	out->p2p_distance = dist_a + dist_b;
	add_reason(out, "no common upstream bridge: the path crosses the root complex");
	through_host_bridge(g, provider, client, false, out);
	goto done;
common:
	for (bb = client; bb >= 0 && bb != a; bb = topo_pci_upstream(g, bb))
		check_acs(g, bb, &w);
	out->p2p_distance = dist_a + dist_b;
	if (!w.acs_cnt) {
		out->p2p = TOPO_P2P_BUS_ADDR;
		goto done;
	}
	add_reason(out, "ACS redirect set on %s (boot with pci=disable_acs_redir=%s to allow direct P2P)",
		   w.acs, w.acs);
	through_host_bridge(g, provider, client, true, out);
done:
	/* Unreadable ACS state only matters when it is all that makes the path direct. */
	if (out->p2p == TOPO_P2P_BUS_ADDR && w.unknown[0]) {
		out->p2p_acs_unknown = true;
		add_reason(out, "assumed no ACS redirect on %s: config space not readable (run as root)",
			   w.unknown);
	}
	bar_check(g, provider, out);
	return 0;
}
