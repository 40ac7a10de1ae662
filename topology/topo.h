/* SPDX-License-Identifier: MIT */
/*
 * libpmtopo: the machine's interconnect topology as a graph.
 *
 * Discovery sources (live sysfs + libpci + libibverbs, a captured sysfs tree,
 * or a topology file) all fill the same struct topo_graph; classification
 * (classify.c, p2pdma.c, peer_groups.c) only ever reads that struct, so every
 * verdict can be tested on hand-built graphs.
 *
 * All functions return 0 / >= 0 on success or a negative errno.
 */
#ifndef PAGEMAP_TOPO_H
#define PAGEMAP_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TOPO_NAME_MAX 64
#define TOPO_BDF_MAX 24
#define TOPO_MAX_BARS 6
#define TOPO_MAX_PORTS 8
#define TOPO_MAX_HOPS 64

/* What role a PCI function plays in the tree. */
enum topo_port_type {
	TOPO_PORT_ENDPOINT = 0,
	TOPO_PORT_ROOT,        /* PCIe root port: part of the host bridge */
	TOPO_PORT_SWITCH_UP,   /* upstream port of a PCIe switch */
	TOPO_PORT_SWITCH_DOWN, /* downstream port of a PCIe switch */
	TOPO_PORT_PCI_BRIDGE,  /* conventional PCI/PCI-X bridge: counted as a switch */
};

/* What a device is, for filters and labels. A bitmask so filters compose. */
enum topo_dev_kind {
	TOPO_DEV_OTHER = 1u << 0,
	TOPO_DEV_GPU = 1u << 1,   /* class 0x03xx */
	TOPO_DEV_ACCEL = 1u << 2, /* class 0x0b40, 0x12xx */
	TOPO_DEV_NIC = 1u << 3,   /* class 0x02xx, or an RDMA device */
	TOPO_DEV_NVME = 1u << 4,  /* class 0x010802 */
	TOPO_DEV_MEM = 1u << 5,   /* class 0x05xx: memory controllers (ivshmem, CXL type 3) */
	TOPO_DEV_NUMA = 1u << 6,  /* a NUMA node (its CPUs and memory) */
	TOPO_DEV_BRIDGE = 1u << 7,
};

struct topo_bar {
	uint64_t size;
	uint8_t index;
	bool prefetch;
	bool is64;
};

/* "unknown" for every integer attribute below is -1 (or 0 for sizes/speeds). */
struct topo_pci {
	uint32_t domain;
	uint8_t bus, dev, fn;
	char bdf[TOPO_BDF_MAX]; /* "0000:17:00.0"; domains may be wider than 16 bits */
	uint16_t vendor, device, subvendor, subdevice;
	uint32_t class_code; /* 24 bits: base, sub, prog-if */
	char vendor_name[TOPO_NAME_MAX];
	char device_name[2 * TOPO_NAME_MAX];
	char driver[32];
	int numa;
	int iommu_group;
	/* Link speed in units of 0.1 GT/s (2.5 GT/s = 25), width in lanes. */
	int cur_speed, cur_width, max_speed, max_width;
	int parent;     /* index of the upstream bridge in graph->pci, -1 on a root bus */
	int hostbridge; /* index in graph->hostbridges */
	int physfn;     /* SR-IOV VF: index of its PF, else -1 */
	enum topo_port_type port;
	bool port_from_caps; /* port type read from the PCIe capability, not inferred */
	/* ACS control register; -1 when config space beyond 64 bytes was not readable. */
	int acs_ctrl;
	unsigned nbars;
	struct topo_bar bars[TOPO_MAX_BARS];
	char local_cpus[128]; /* cpulist string, "" if unknown */
	bool removed;         /* hot-removed: kept for stable indices, ignored everywhere */
};

struct topo_hostbridge {
	char name[TOPO_NAME_MAX]; /* sysfs name, "pci0000:17" */
	uint32_t domain;
	uint8_t bus;
	int numa;
	/* The device the kernel's p2pdma whitelist looks at: first device on the
	 * root bus when it is 00.0 or a root port; vendor 0 when there is none. */
	uint16_t root_vendor, root_device;
};

struct topo_hmat {
	bool present;
	uint32_t read_bw, write_bw;   /* MB/s */
	uint32_t read_lat, write_lat; /* ns */
	uint64_t initiators;          /* bitmask of initiator node ids (< 64) */
};

struct topo_numa {
	int id;
	char cpulist[256];
	uint64_t mem_total; /* bytes */
	bool has_cpu;       /* false: memory-only node (CXL, GPU memory, DAX kmem) */
	struct topo_hmat access0;
};

struct topo_rdma_port {
	int num;
	int state; /* IBV_PORT_* numbering: 1 down, 2 init, 3 armed, 4 active, 5 active-defer */
	char link_layer[16];
	char rate[32];  /* as sysfs prints it: "100 Gb/sec (4X EDR)" */
	double gbps;    /* decoded rate, Gb/s */
};

struct topo_rdma {
	char name[TOPO_NAME_MAX];
	uint64_t node_guid;
	int pci;          /* PCI function, -1 for none (soft device without netdev) */
	char netdev[32];  /* "" if none */
	bool soft;        /* rxe/siw: rides on a netdev */
	int nports;
	struct topo_rdma_port ports[TOPO_MAX_PORTS];
};

/* A named kernel device bound to a PCI function: netdev, DRM node, NVMe controller. */
struct topo_osdev {
	char name[TOPO_NAME_MAX];
	char cls[16]; /* "net", "drm", "nvme" */
	int pci;
};

enum topo_fabric_type {
	TOPO_FABRIC_NVLINK = 1,
	TOPO_FABRIC_XGMI,
};

/* A non-PCIe link between two PCI functions (NVLink, XGMI). */
struct topo_fabric {
	int a, b;
	enum topo_fabric_type type;
	int count;   /* parallel links */
	double gbps; /* total, GB/s */
};

struct topo_cpu_info {
	char vendor[16]; /* "GenuineIntel", "AuthenticAMD", "" unknown */
	int family;      /* -1 unknown */
	int model;
};

/* The devices pairs are classified between: a PCI function of interest, an
 * RDMA device (whose PCI function may be its netdev's), or a NUMA node. */
struct topo_device {
	char name[TOPO_NAME_MAX];
	char alias[16]; /* matrix column: GPU0, NIC1, NVME0, MEM0, ACC0, DEV3, node1 */
	enum topo_dev_kind kind;
	int pci;  /* -1 for NUMA nodes and parentless soft RDMA devices */
	int rdma; /* index in graph->rdma or -1 */
	int numa; /* NUMA node id (for TOPO_DEV_NUMA: the node) or -1 */
	bool removed;
};

#define TOPO_ARRAY(type, name) \
	type *name;                \
	size_t n_##name, cap_##name

struct topo_graph {
	char source[512]; /* "live", "sysfs:DIR", "file:PATH" */
	bool emulated;    /* from a topology file marked emulated: never a real path */
	char hostname[TOPO_NAME_MAX];
	struct topo_cpu_info cpu;
	double socket_link_gbps; /* inter-socket bandwidth, GB/s; 0 = unknown */

	TOPO_ARRAY(struct topo_numa, numa);
	int *numa_dist; /* n_numa * n_numa, by index into numa[] */
	TOPO_ARRAY(struct topo_hostbridge, hostbridges);
	TOPO_ARRAY(struct topo_pci, pci);
	TOPO_ARRAY(struct topo_rdma, rdma);
	TOPO_ARRAY(struct topo_osdev, osdevs);
	TOPO_ARRAY(struct topo_fabric, fabric);
	TOPO_ARRAY(struct topo_device, devices); /* derived by topo_graph_finalize() */
};

/* ---- bdf.c ---- */
/* "DDDD:BB:DD.F" (the domain may be wider than 16 bits), and with
 * allow_short lspci's "BB:DD.F" (domain 0). The whole string, in range. */
bool topo_parse_bdf(const char *s, bool allow_short, uint32_t *dom, uint8_t *bus, uint8_t *dev,
		    uint8_t *fn);
/* s as this project writes a BDF ("0000:3b:00.0"), e.g. from a driver's
 * "00000000:3B:00.0"; s unchanged when it is not a BDF. */
void topo_bdf_canonical(const char *s, char *out, size_t len);
/* "pciDDDD:BB", the kernel's name for a host bridge's root bus. */
bool topo_parse_hostbridge(const char *s, uint32_t *dom, uint8_t *bus);

/* ---- graph.c: building and looking up ---- */
struct topo_graph *topo_graph_new(void);
void topo_graph_free(struct topo_graph *g);
int topo_graph_add_numa(struct topo_graph *g, const struct topo_numa *n);
int topo_graph_add_hostbridge(struct topo_graph *g, const struct topo_hostbridge *hb);
int topo_graph_add_pci(struct topo_graph *g, const struct topo_pci *p);
int topo_graph_add_rdma(struct topo_graph *g, const struct topo_rdma *r);
int topo_graph_add_osdev(struct topo_graph *g, const struct topo_osdev *o);
int topo_graph_add_fabric(struct topo_graph *g, const struct topo_fabric *f);
/* Allocates the distance matrix for the current NUMA nodes (filled with -1). */
int topo_graph_set_numa_count(struct topo_graph *g);
void topo_pci_init(struct topo_pci *p);
int topo_graph_find_pci(const struct topo_graph *g, uint32_t domain, uint8_t bus, uint8_t dev,
			uint8_t fn);
int topo_graph_find_pci_bdf(const struct topo_graph *g, const char *bdf);
/* The function above i, as pci_upstream_bridge() sees it: a VF goes up
 * through its PF. -1 at a root. */
int topo_pci_upstream(const struct topo_graph *g, int i);
/* A function on a loop of the walk up from i (only a corrupt or crafted
 * sysfs tree or file can make one), or -1 when the walk ends at a root. */
int topo_pci_upstream_loop(const struct topo_graph *g, int i);
int topo_graph_find_numa(const struct topo_graph *g, int id);
int topo_numa_distance(const struct topo_graph *g, int node_a, int node_b);
/* Infers port types where capabilities did not give them, builds devices[]. */
int topo_graph_finalize(struct topo_graph *g);
/* Marks a PCI function and everything below it removed; rebuild devices. */
int topo_graph_remove_pci(struct topo_graph *g, int pci);
/* Resolve a user's name: BDF (with or without domain), RDMA name, netdev,
 * DRM node, NVMe name, device label or "nodeN". Returns a devices[] index. */
int topo_graph_lookup(const struct topo_graph *g, const char *name);
enum topo_dev_kind topo_pci_kind(const struct topo_pci *p);
const char *topo_dev_kind_name(enum topo_dev_kind k);
const char *topo_port_type_name(enum topo_port_type t);
/* Effective NUMA node of a PCI function (-1 on a one-node machine means node 0). */
int topo_pci_numa(const struct topo_graph *g, int pci);

/* ---- pcie_link.c ---- */
int topo_parse_link_speed(const char *s); /* "8.0 GT/s PCIe" -> 80; unknown -> 0 */
double topo_pcie_gbps(int speed, int width); /* GB/s after encoding, NCCL's table */
/* Speed and width of the link above pci: the lower of its and its parent's
 * maximum (current values drop at idle), 0 where unknown. */
void topo_pci_uplink_caps(const struct topo_graph *g, int pci, int *speed, int *width);
/* Bandwidth of the link from pci to its parent: min of both ends' max. 0 = none/unknown. */
double topo_pci_uplink_gbps(const struct topo_graph *g, int pci);
bool topo_pci_downtrained(const struct topo_pci *p);

/* ---- discovery ---- */
struct topo_discover_opts {
	const char *sysfs_root; /* NULL: live "/" ; else a captured tree (DIR/sys, DIR/proc) */
	bool no_verbs;          /* do not ask libibverbs even when live */
	char *errbuf;           /* optional: a human-readable reason on failure */
	size_t errlen;
};
int topo_discover(const struct topo_discover_opts *o, struct topo_graph **out);

/* ---- topo_file.c: the JSON topology file (docs/topology-format.md) ---- */
int topo_file_load(const char *path, struct topo_graph **out, char *err, size_t errlen);
int topo_file_load_string(const char *json, struct topo_graph **out, char *err, size_t errlen);
int topo_file_dump(const struct topo_graph *g, FILE *f);
struct json_object;
/* The graph as the topology file's JSON object; the caller owns it (json_object_put). */
struct json_object *topo_file_to_json(const struct topo_graph *g);

/* ---- classify.c ---- */
enum topo_class {
	TOPO_CLASS_X = 0, /* self */
	TOPO_CLASS_NV,    /* fabric link (NVLink NV#, XGMI) */
	TOPO_CLASS_PIX,   /* at most one PCIe switch */
	TOPO_CLASS_PXB,   /* several switches, no host bridge */
	TOPO_CLASS_PHB,   /* through one host bridge */
	TOPO_CLASS_NODE,  /* across host bridges in one NUMA node */
	TOPO_CLASS_SYS,   /* across NUMA nodes */
	TOPO_CLASS_NET,   /* different machines, over RDMA */
};

enum topo_p2p_verdict {
	TOPO_P2P_BUS_ADDR = 0,      /* direct: TLPs routed by the switch */
	TOPO_P2P_THRU_HOST_BRIDGE,  /* works, through the root complex */
	TOPO_P2P_NOT_SUPPORTED,
	TOPO_P2P_NOT_APPLICABLE,    /* a NUMA node or non-PCI endpoint */
};

enum topo_hop_kind { TOPO_HOP_PCI, TOPO_HOP_HOSTBRIDGE, TOPO_HOP_NUMA, TOPO_HOP_FABRIC };

struct topo_hop {
	enum topo_hop_kind kind;
	int index;
};

struct topo_path {
	enum topo_class cls;
	int fabric_links;        /* NV#: number of links */
	enum topo_fabric_type fabric_type;
	int p2p_distance;        /* the kernel's pci_p2pdma distance, -1 n/a */
	enum topo_p2p_verdict p2p;
	bool p2p_acs_unknown;    /* verdict assumed no ACS redirect where unreadable */
	char reason[512];        /* why P2P is not direct, or what a direct verdict assumed */
	double gbps;             /* bottleneck estimate, GB/s; 0 unknown */
	int nhops;
	struct topo_hop hops[TOPO_MAX_HOPS];
};

int topo_classify(const struct topo_graph *g, int dev_a, int dev_b, struct topo_path *out);

/*
 * Matrices classify millions of pairs: a device's place in the tree is
 * computed once (topo_device_pos), then each pair costs a prefix compare.
 * topo_classify_pos fills cls, fabric_*, gbps only: no hops, no p2pdma.
 * topo_classify uses the same two functions, so both agree by construction.
 */
#define TOPO_MAX_DEPTH 16
struct topo_pos {
	int dev, pci, hostbridge, numa, kind;
	int depth;                      /* entries in chain[] */
	int chain[TOPO_MAX_DEPTH];      /* the function and its bridges, root bus first */
	int sw[TOPO_MAX_DEPTH];         /* switch of each chain entry, -1 for none */
	double up_gbps[TOPO_MAX_DEPTH]; /* bottleneck from the function up to chain[k] */
	double root_gbps;               /* bottleneck up to the host bridge */
};
int topo_device_pos(const struct topo_graph *g, int dev, struct topo_pos *out);
void topo_classify_pos(const struct topo_graph *g, const struct topo_pos *a,
		       const struct topo_pos *b, struct topo_path *out);
const char *topo_class_name(enum topo_class c);
const char *topo_p2p_verdict_name(enum topo_p2p_verdict v);
/* Formats the class as a matrix cell: "PIX", "NV4", "X". */
void topo_class_cell(const struct topo_path *p, char *buf, size_t len);
int topo_hop_name(const struct topo_graph *g, const struct topo_hop *h, char *buf, size_t len);

/* ---- p2pdma.c: the kernel's pci_p2pdma distance rules ---- */
int topo_p2pdma(const struct topo_graph *g, int provider_pci, int client_pci,
		struct topo_path *out);
bool topo_hostbridge_whitelisted(uint16_t vendor, uint16_t device, bool same_host_bridge);

/* ---- fabric.c ---- */
/* Index in g->fabric of the link between two PCI functions, or -1. */
int topo_fabric_between(const struct topo_graph *g, int pci_a, int pci_b);
/* A GPU whose NVLink counts to its GPU peers add up to more links than any
 * GPU has (18): the links go into NVSwitches (nvidia-smi shows NV18 between
 * every pair of an 8-GPU H100 board). */
#define TOPO_NVLINK_MAX_PER_GPU 18
bool topo_fabric_nvswitched(const struct topo_graph *g, int pci);

/* ---- peer_groups.c ---- */
/* Groups devices (PCI-backed, not removed) into cliques of direct paths.
 * group[i] is devices[i]'s group id, -1 for devices not grouped.
 * Returns the number of groups. */
int topo_peer_groups(const struct topo_graph *g, int *group);

#endif
