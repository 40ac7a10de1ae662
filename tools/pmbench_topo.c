/* SPDX-License-Identifier: MIT */
/*
 * pmbench topo: discovery time on this machine (in process, and as a whole
 * pmtopo process next to lstopo-no-graphics --of xml measured in the same
 * run), then a synthetic machine of N devices: build, classify all pairs,
 * peer groups, topology file round trip.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmbench.h"
#include "synth.h"
#include "topo.h"

static void print_stats(const char *name, struct bench_stats *s, bool last)
{
	printf("    \"%s\": {\"median_ms\": %.3f, \"p5_ms\": %.3f, \"p95_ms\": %.3f, \"samples\": %d}%s\n",
	       name, s->median * 1e3, s->p5 * 1e3, s->p95 * 1e3, s->samples, last ? "" : ",");
}

/* Wall time of one run of argv with stdout/stderr to /dev/null; <0 on failure. */
static double time_process(char *const argv[], const char *env_root)
{
	double t0 = bench_now();
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
			_exit(127);
		if (env_root)
			setenv("HWLOC_FSROOT", env_root, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	return bench_now() - t0;
}

static int sample_process(char *const argv[], const char *env_root, int n, struct bench_stats *s)
{
	double *v = calloc((size_t)n, sizeof(double));

	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n; i++) {
		v[i] = time_process(argv, env_root);
		if (v[i] < 0) {
			free(v);
			return -ENOENT;
		}
	}
	bench_stats(v, n, s);
	free(v);
	return 0;
}

static int sample_discovery(const char *root, int n, struct bench_stats *s, size_t *npci)
{
	double *v = calloc((size_t)n, sizeof(double));
	struct topo_discover_opts o = { .sysfs_root = root };
	int r = 0;

	if (!v)
		return -ENOMEM;
	for (int i = 0; i < n && r == 0; i++) {
		struct topo_graph *g;
		double t0 = bench_now();

		r = topo_discover(&o, &g);
		v[i] = bench_now() - t0;
		if (r == 0) {
			*npci = g->n_pci;
			topo_graph_free(g);
		}
	}
	if (r == 0)
		bench_stats(v, n, s);
	free(v);
	return r;
}

/* Replaces *g by the graph read back from its own topology file text. */
static int load_from_file_text(struct topo_graph **g, double *secs, size_t *bytes)
{
	struct topo_graph *loaded;
	char *text = NULL, err[256];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	double t0;
	int r;

	if (!f)
		return -ENOMEM;
	r = topo_file_dump(*g, f);
	if (fclose(f) && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(text);
		return r;
	}
	t0 = bench_now();
	r = topo_file_load_string(text, &loaded, err, sizeof(err));
	*secs = bench_now() - t0;
	*bytes = len;
	free(text);
	if (r < 0) {
		fprintf(stderr, "pmbench topo: reloading the synthetic machine: %s\n", err);
		return r;
	}
	topo_graph_free(*g);
	*g = loaded;
	return 0;
}

/* Builds the synthetic machine, reloads it from its file, classifies every ordered pair. */
static int bench_synthetic(int ndev, int samples)
{
	int per_switch = 32, hbs = (ndev + 2 * per_switch - 1) / (2 * per_switch);
	double *build = calloc((size_t)samples, sizeof(double));
	double *cls = calloc((size_t)samples, sizeof(double));
	double *grp = calloc((size_t)samples, sizeof(double));
	double *load = calloc((size_t)samples, sizeof(double));
	struct bench_stats sb, sc, sg, sl;
	size_t file_bytes = 0;
	struct topo_path *p = malloc(sizeof(*p));
	unsigned long long counts[8] = { 0 };
	size_t ndevices = 0, npairs = 0;
	int ngroups = 0, r = 0;

	if (!build || !cls || !grp || !load || !p) {
		r = -ENOMEM;
		goto out;
	}
	for (int s = 0; s < samples && r == 0; s++) {
		struct topo_graph *g;
		struct topo_pos *pos;
		int *group;
		double t0 = bench_now();

		r = topo_synth_server(hbs, per_switch, &g);
		if (r < 0)
			break;
		build[s] = bench_now() - t0;
		/* What a user's machine file costs: dump it, time loading it back. */
		r = load_from_file_text(&g, &load[s], &file_bytes);
		if (r < 0)
			break;
		ndevices = g->n_devices;
		memset(counts, 0, sizeof(counts));
		t0 = bench_now();
		pos = malloc(g->n_devices * sizeof(*pos));
		for (size_t a = 0; pos && a < g->n_devices; a++)
			if ((r = topo_device_pos(g, (int)a, &pos[a])) < 0)
				break;
		for (size_t a = 0; pos && r == 0 && a < g->n_devices; a++)
			for (size_t b = 0; b < g->n_devices; b++) {
				topo_classify_pos(g, &pos[a], &pos[b], p);
				counts[p->cls & 7]++;
			}
		cls[s] = bench_now() - t0;
		free(pos);
		if (!pos)
			r = -ENOMEM;
		if (r < 0) {
			topo_graph_free(g);
			break;
		}
		npairs = g->n_devices * g->n_devices;
		group = malloc(g->n_devices * sizeof(int));
		t0 = bench_now();
		ngroups = group ? topo_peer_groups(g, group) : -ENOMEM;
		grp[s] = bench_now() - t0;
		free(group);
		topo_graph_free(g);
		if (ngroups < 0)
			r = ngroups;
	}
	if (r < 0)
		goto out;
	bench_stats(build, samples, &sb);
	bench_stats(cls, samples, &sc);
	bench_stats(grp, samples, &sg);
	bench_stats(load, samples, &sl);
	printf("  \"synthetic\": {\n    \"emulated\": true,\n    \"devices\": %zu,\n"
	       "    \"ordered_pairs\": %zu,\n    \"peer_groups\": %d,\n",
	       ndevices, npairs, ngroups);
	printf("    \"class_counts\": {");
	for (int c = TOPO_CLASS_X; c <= TOPO_CLASS_NET; c++)
		printf("%s\"%s\": %llu", c ? ", " : "", topo_class_name(c), counts[c]);
	printf("},\n");
	printf("    \"topology_file_bytes\": %zu,\n", file_bytes);
	printf("    \"load_plus_classify_all_ms\": %.3f,\n", (sl.median + sc.median) * 1e3);
	print_stats("build", &sb, false);
	print_stats("file_load", &sl, false);
	print_stats("classify_all_pairs", &sc, false);
	print_stats("peer_groups", &sg, true);
	printf("  }\n");
out:
	free(build);
	free(cls);
	free(grp);
	free(load);
	free(p);
	return r;
}

int pmbench_topo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sysfs-root", required_argument, NULL, 'r' },
		{ "synthetic", required_argument, NULL, 'n' },
		{ "samples", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *root = NULL;
	int ndev = 4096, samples = 10, c, r;
	char dir[PATH_MAX], pmtopo[PATH_MAX + 16];
	struct bench_stats disc, ours, lstopo;
	size_t npci = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root = optarg; break;
		case 'n': ndev = atoi(optarg); break;
		case 's': samples = atoi(optarg); break;
		case 'j': break; /* JSON is the only output */
		default: return 2;
		}
	}
	if (ndev < 2 || ndev > 1 << 16 || samples < 1 || samples > 10000) {
		fprintf(stderr, "pmbench topo: --synthetic must be 2..65536 and --samples 1..10000\n");
		return 2;
	}
	r = sample_discovery(root, samples, &disc, &npci);
	if (r < 0) {
		fprintf(stderr, "pmbench topo: discovery failed: %s\n", strerror(-r));
		return 1;
	}
	bench_self_dir(dir, sizeof(dir));
	snprintf(pmtopo, sizeof(pmtopo), "%s/pmtopo", dir);
	char *ours_argv[] = { pmtopo, "--json", "--no-verbs", root ? "--sysfs-root" : NULL,
			      (char *)root, NULL };
	char *lstopo_argv[] = { "lstopo-no-graphics", "--of", "xml", "-", NULL };
	int have_ours = sample_process(ours_argv, NULL, samples, &ours) == 0;
	int have_lstopo = sample_process(lstopo_argv, root, samples, &lstopo) == 0;

	printf("{\n  \"benchmark\": \"topo\",\n  \"source\": \"%s\",\n  \"pci_functions\": %zu,\n",
	       root ? root : "live", npci);
	printf("  \"discovery\": {\n");
	print_stats("in_process", &disc, !have_ours && !have_lstopo);
	if (have_ours)
		print_stats("pmtopo_json_process", &ours, !have_lstopo);
	if (have_lstopo)
		print_stats("lstopo_xml_process_baseline", &lstopo, true);
	printf("  },\n");
	if (have_ours && have_lstopo)
		printf("  \"speedup_vs_lstopo\": %.2f,\n", lstopo.median / ours.median);
	else
		printf("  \"speedup_vs_lstopo\": null,\n");
	r = bench_synthetic(ndev, samples < 3 ? samples : 3);
	printf("}\n");
	if (r < 0) {
		fprintf(stderr, "pmbench topo: synthetic: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
