/* SPDX-License-Identifier: MIT */
/*
 * The kernel's p2pdma rules on synthetic trees: captures carry 64 bytes of
 * config space, so ACS and whitelist cases exist only here.
 */
#include <string.h>

#include "cu_run.h"
#include "machines.h"

#define ACS_RR 0x04
#define ACS_SV 0x01 /* source validation: not a redirect bit */

static struct test_machine m;
static struct topo_path path;

static void build(uint16_t vendor, uint16_t device)
{
	topo_graph_free(m.g);
	CU_ASSERT_FATAL(test_machine_build(&m, vendor, device) == 0);
	/* full config space read: ACS state known (no ACS capability) everywhere */
	for (size_t i = 0; i < m.g->n_pci; i++)
		m.g->pci[i].acs_ctrl = 0;
}

static void p2p(int provider, int client)
{
	CU_ASSERT_FATAL(topo_p2pdma(m.g, provider, client, &path) == 0);
}

static void test_same_switch_direct(void)
{
	build(0x1b36, 0x000c);
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
	CU_ASSERT_EQUAL(path.p2p_distance, 4);
	CU_ASSERT_STRING_EQUAL(path.reason, "");
	CU_ASSERT_FALSE(path.p2p_acs_unknown);
	p2p(m.a, m.a);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
	CU_ASSERT_EQUAL(path.p2p_distance, 0);
}

static void test_two_functions(void)
{
	int f1;

	build(0x1b36, 0x000c);
	f1 = topo_synth_fn(m.g, "0000:03:00.1", m.dn0, m.hb0, 0x050000, TOPO_PORT_ENDPOINT, 80, 16);
	CU_ASSERT_FATAL(f1 >= 0 && topo_graph_finalize(m.g) == 0);
	p2p(m.a, f1);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
	CU_ASSERT_EQUAL(path.p2p_distance, 2);
}

static void test_acs_redirect(void)
{
	build(0x8086, 0x2030); /* Skylake-E: whitelisted */
	m.g->pci[m.dn0].acs_ctrl = ACS_RR | ACS_SV;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "ACS redirect set on 0000:02:00.0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "pci=disable_acs_redir=0000:02:00.0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "whitelisted"));
	/* source validation alone redirects nothing */
	m.g->pci[m.dn0].acs_ctrl = ACS_SV;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
}

static void test_acs_on_common_ancestor_and_client_side(void)
{
	build(0x8086, 0x2030);
	m.g->pci[m.up].acs_ctrl = 0x08; /* CR on the switch's upstream port */
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "0000:01:00.0"));
	m.g->pci[m.up].acs_ctrl = 0;
	m.g->pci[m.dn1].acs_ctrl = 0x20; /* EC on the client's side */
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "0000:02:01.0"));
	/* above the common ancestor ACS does not matter */
	m.g->pci[m.dn1].acs_ctrl = 0;
	m.g->pci[m.rp0].acs_ctrl = ACS_RR;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
}

static void test_not_whitelisted(void)
{
	build(0x1b36, 0x000c); /* QEMU's root port: not in the whitelist */
	m.g->pci[m.dn0].acs_ctrl = ACS_RR;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_NOT_SUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "not in the kernel's P2PDMA whitelist"));
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "1b36:000c"));
	p2p(m.a, m.nvme);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_NOT_SUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "no common upstream bridge"));
}

static void test_amd_zen(void)
{
	build(0x1022, 0x1480);
	strcpy(m.g->cpu.vendor, "AuthenticAMD");
	m.g->cpu.family = 0x19;
	p2p(m.a, m.nic);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "AMD Zen"));
	m.g->cpu.family = 0x15; /* pre-Zen */
	p2p(m.a, m.nic);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_NOT_SUPPORTED);
}

static void test_across_host_bridges(void)
{
	build(0x8086, 0x2030);
	p2p(m.a, m.nic);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
	CU_ASSERT_EQUAL(path.p2p_distance, 6); /* 4 up from a, 2 up from the NIC */
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "both whitelisted"));
	/* Xeon E5 entries require both ends below the same host bridge */
	build(0x8086, 0x3c00);
	p2p(m.a, m.nic);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_NOT_SUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "requires one host bridge"));
	p2p(m.a, m.nvme);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_THRU_HOST_BRIDGE);
}

static void test_whitelist_table(void)
{
	CU_ASSERT_TRUE(topo_hostbridge_whitelisted(0x8086, 0x2030, false));
	CU_ASSERT_TRUE(topo_hostbridge_whitelisted(0x8086, 0x09a2, false));
	CU_ASSERT_TRUE(topo_hostbridge_whitelisted(0x8086, 0x3c01, true));
	CU_ASSERT_FALSE(topo_hostbridge_whitelisted(0x8086, 0x3c01, false));
	CU_ASSERT_FALSE(topo_hostbridge_whitelisted(0x1b36, 0x000c, true));
}

static void test_acs_unknown(void)
{
	build(0x1b36, 0x000c);
	m.g->pci[m.dn0].acs_ctrl = -1;
	m.g->pci[m.up].acs_ctrl = -1;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
	CU_ASSERT_TRUE(path.p2p_acs_unknown);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "assumed no ACS redirect on 0000:02:00.0;0000:01:00.0"));
}

static void test_no_bar(void)
{
	build(0x1b36, 0x000c);
	m.g->pci[m.a].nbars = 0;
	p2p(m.a, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_NOT_SUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(path.reason, "no memory BAR"));
	p2p(m.b, m.a); /* the other way round b exposes memory */
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
}

/* A VF on its own virtual bus goes up through its PF, as pci_upstream_bridge(). */
static void test_vf_through_pf(void)
{
	int vf;

	build(0x1b36, 0x000c);
	vf = topo_synth_fn(m.g, "0000:03:00.4", -1, m.hb0, 0x050000, TOPO_PORT_ENDPOINT, 80, 16);
	CU_ASSERT_FATAL(vf >= 0);
	m.g->pci[vf].physfn = m.a;
	m.g->pci[vf].acs_ctrl = 0;
	CU_ASSERT_FATAL(topo_graph_finalize(m.g) == 0);
	p2p(vf, m.b);
	CU_ASSERT_EQUAL(path.p2p, TOPO_P2P_BUS_ADDR);
	CU_ASSERT_EQUAL(path.p2p_distance, 4);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "same switch is direct, distance 4", test_same_switch_direct },
		{ "two functions of one device, distance 2", test_two_functions },
		{ "ACS redirect on the provider side", test_acs_redirect },
		{ "ACS on common ancestor and client side", test_acs_on_common_ancestor_and_client_side },
		{ "host bridge not whitelisted", test_not_whitelisted },
		{ "AMD Zen allows the root complex", test_amd_zen },
		{ "across host bridges", test_across_host_bridges },
		{ "whitelist table", test_whitelist_table },
		{ "unreadable ACS is flagged", test_acs_unknown },
		{ "provider without memory BAR", test_no_bar },
		{ "VF goes up through its PF", test_vf_through_pf },
		{ NULL, NULL },
	};
	int r = cu_run("p2pdma", tests);

	topo_graph_free(m.g);
	return r;
}
