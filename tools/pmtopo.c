/* SPDX-License-Identifier: MIT */
/* pmtopo: the machine's devices, NUMA nodes and the paths between them. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pmtopo.h"

static void usage(FILE *f)
{
	fputs("Usage: pmtopo [OPTIONS] [VIEW]\n"
	      "Show the interconnect topology: devices x devices matrix by default.\n\n"
	      "Source (default: this machine, live):\n"
	      "  --sysfs-root DIR      replay a captured sysfs tree (hwloc-gather-topology --io layout)\n"
	      "  --load FILE           read a topology file (docs/topology-format.md; '-' for stdin)\n"
	      "  --no-verbs            do not query libibverbs (sysfs only)\n\n"
	      "Views:\n"
	      "  (none)                matrix of path classes, like nvidia-smi topo -m\n"
	      "  --tree                PCIe tree per NUMA node, like lspci -tv\n"
	      "  --json                machine, devices, pairs and peer groups as JSON\n"
	      "  --dot                 Graphviz: pmtopo --dot | dot -Tsvg > machine.svg\n"
	      "  --pair A B            path between two devices: class first, then details\n"
	      "  --export nccl-xml     NCCL_TOPO_FILE format\n"
	      "  --dump FILE           write the topology file ('-' for stdout)\n\n"
	      "  --filter LIST         device kinds: gpu,accel,nic,nvme,mem,other,numa,all\n"
	      "                        (--tree keeps the bridges that lead to them)\n"
	      "  -h, --help            this text;  --version\n\n"
	      "Devices are named by BDF (0000:17:00.0 or 17:00.0), RDMA name (mlx5_0),\n"
	      "netdev (eth0), DRM node (card0, renderD128), NVMe (nvme0), alias (GPU0) or\n"
	      "NUMA node (node1).\n",
	      f);
}

static int parse_filter(const char *list, unsigned *mask)
{
	static const struct {
		const char *name;
		unsigned bits;
	} kinds[] = {
		{ "gpu", TOPO_DEV_GPU },   { "accel", TOPO_DEV_ACCEL }, { "nic", TOPO_DEV_NIC },
		{ "nvme", TOPO_DEV_NVME }, { "mem", TOPO_DEV_MEM },     { "other", TOPO_DEV_OTHER },
		{ "numa", TOPO_DEV_NUMA }, { "all", ~0u },
	};
	char *dup = strdup(list), *tok, *save = NULL;

	if (!dup)
		return -ENOMEM;
	*mask = 0;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
			if (!strcmp(tok, kinds[i].name))
				break;
		if (i == sizeof(kinds) / sizeof(kinds[0])) {
			fprintf(stderr, "pmtopo: --filter: unknown device kind '%s' "
					"(gpu, accel, nic, nvme, mem, other, numa, all)\n", tok);
			free(dup);
			return -EINVAL;
		}
		*mask |= kinds[i].bits;
	}
	free(dup);
	/* "", "," and the like select nothing: say so rather than print nothing. */
	if (!*mask) {
		fprintf(stderr, "pmtopo: --filter: empty list '%s'; kinds are gpu, accel, nic, "
				"nvme, mem, other, numa, all\n", list);
		return -EINVAL;
	}
	return 0;
}

int pmtopo_selected(const struct pmtopo_view *v, int **idx)
{
	int *out = malloc((v->g->n_devices ? v->g->n_devices : 1) * sizeof(*out)), n = 0;

	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < v->g->n_devices; i++)
		if (!v->g->devices[i].removed && (v->g->devices[i].kind & v->kinds))
			out[n++] = (int)i;
	*idx = out;
	return n;
}

static int lookup(const struct topo_graph *g, const char *name)
{
	int d = topo_graph_lookup(g, name);

	if (d == -ENODEV)
		fprintf(stderr, "pmtopo: '%s' is a PCI bridge, not a device\n", name);
	else if (d < 0)
		fprintf(stderr, "pmtopo: unknown device '%s' (see pmtopo --json | devices)\n", name);
	return d;
}

enum view { VIEW_MATRIX, VIEW_TREE, VIEW_JSON, VIEW_DOT, VIEW_PAIR, VIEW_NCCL, VIEW_DUMP };

int main(int argc, char **argv)
{
	enum { OPT_SYSFS = 256, OPT_LOAD, OPT_TREE, OPT_JSON, OPT_DOT, OPT_PAIR, OPT_EXPORT,
	       OPT_DUMP, OPT_FILTER, OPT_NOVERBS, OPT_VERSION };
	static const struct option opts[] = {
		{ "sysfs-root", required_argument, NULL, OPT_SYSFS },
		{ "load", required_argument, NULL, OPT_LOAD },
		{ "tree", no_argument, NULL, OPT_TREE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "dot", no_argument, NULL, OPT_DOT },
		{ "pair", no_argument, NULL, OPT_PAIR },
		{ "export", required_argument, NULL, OPT_EXPORT },
		{ "dump", required_argument, NULL, OPT_DUMP },
		{ "filter", required_argument, NULL, OPT_FILTER },
		{ "no-verbs", no_argument, NULL, OPT_NOVERBS },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *sysfs_root = NULL, *load = NULL, *dump = NULL;
	struct topo_discover_opts dopts = { 0 };
	struct pmtopo_view v = { .out = stdout };
	enum view view = VIEW_MATRIX;
	struct topo_graph *g = NULL;
	char err[1024] = "";
	bool filter_set = false;
	int c, r, views = 0;

	v.kinds = TOPO_DEV_GPU | TOPO_DEV_ACCEL | TOPO_DEV_NIC | TOPO_DEV_NVME | TOPO_DEV_MEM;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_SYSFS: sysfs_root = optarg; break;
		case OPT_LOAD: load = optarg; break;
		case OPT_TREE: view = VIEW_TREE; views++; break;
		case OPT_JSON: view = VIEW_JSON; views++; break;
		case OPT_DOT: view = VIEW_DOT; views++; break;
		case OPT_PAIR: view = VIEW_PAIR; views++; break;
		case OPT_DUMP: view = VIEW_DUMP; dump = optarg; views++; break;
		case OPT_EXPORT:
			if (strcmp(optarg, "nccl-xml")) {
				fprintf(stderr, "pmtopo: --export: unknown format '%s' (nccl-xml)\n",
					optarg);
				return 2;
			}
			view = VIEW_NCCL;
			views++;
			break;
		case OPT_FILTER:
			if (parse_filter(optarg, &v.kinds) < 0)
				return 2;
			filter_set = true;
			break;
		case OPT_NOVERBS: dopts.no_verbs = true; break;
		case OPT_VERSION: printf("pmtopo %s\n", PAGEMAP_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (views > 1) {
		fprintf(stderr, "pmtopo: choose one view\n");
		return 2;
	}
	if (sysfs_root && load) {
		fprintf(stderr, "pmtopo: --sysfs-root and --load are exclusive\n");
		return 2;
	}
	if ((view == VIEW_PAIR) != (optind + 2 == argc) || (view != VIEW_PAIR && optind < argc)) {
		if (view == VIEW_PAIR)
			fprintf(stderr, "pmtopo: --pair needs two device names\n");
		else
			fprintf(stderr, "pmtopo: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (load) {
		/* Through the file loader, so stdin gets its size limit, NUL check
		 * and line:column errors, named as /dev/stdin. */
		r = topo_file_load(strcmp(load, "-") ? load : "/dev/stdin", &g, err, sizeof(err));
	} else {
		dopts.sysfs_root = sysfs_root;
		dopts.errbuf = err;
		dopts.errlen = sizeof(err);
		r = topo_discover(&dopts, &g);
	}
	if (r < 0) {
		fprintf(stderr, "pmtopo: %s\n", err[0] ? err : strerror(-r));
		return 1;
	}
	/* Pairs, dot, JSON and the tree describe everything unless filtered. */
	if (!filter_set && (view == VIEW_JSON || view == VIEW_DOT || view == VIEW_TREE))
		v.kinds = ~0u;
	v.g = g;
	switch (view) {
	case VIEW_MATRIX: r = pmtopo_print_matrix(&v); break;
	case VIEW_TREE: r = pmtopo_print_tree(&v); break;
	case VIEW_JSON: r = pmtopo_print_json(&v); break;
	case VIEW_DOT: r = pmtopo_print_dot(&v); break;
	case VIEW_NCCL: r = pmtopo_print_nccl_xml(&v); break;
	case VIEW_PAIR: {
		int a = lookup(g, argv[optind]), b = a < 0 ? a : lookup(g, argv[optind + 1]);

		r = a < 0 || b < 0 ? -ENOENT : pmtopo_print_pair(&v, a, b);
		if (r == -ENOENT) {
			topo_graph_free(g);
			return 1;
		}
		break;
	}
	case VIEW_DUMP: {
		FILE *f = strcmp(dump, "-") ? fopen(dump, "we") : stdout;

		if (!f) {
			fprintf(stderr, "pmtopo: --dump: cannot write '%s': %m\n", dump);
			topo_graph_free(g);
			return 1;
		}
		r = topo_file_dump(g, f);
		if (f != stdout && fclose(f) && r >= 0)
			r = -errno;
		break;
	}
	}
	if (r >= 0 && fflush(stdout))
		r = -errno;
	if (r < 0)
		fprintf(stderr, "pmtopo: %s\n", strerror(-r));
	topo_graph_free(g);
	return r < 0 ? 1 : 0;
}
