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
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "json_out.h"
#include "pmbench.h"
#include "synth.h"
#include "topo.h"

static const char usage_text[] =
	"Usage: pmbench topo [--sysfs-root DIR] [--synthetic N] [--samples N] [--json]\n"
	"Topology discovery time on this machine: in this process, and as a whole pmtopo\n"
	"--json process against lstopo-no-graphics --of xml (the baseline) in the same run;\n"
	"then a synthetic machine of N devices (EMULATED): build, topology file load, the\n"
	"class of every ordered pair, peer groups.\n"
	"  --sysfs-root DIR  a captured sysfs tree instead of this machine's\n"
	"  --synthetic N     devices of the synthetic machine (2..65536, default 4096)\n"
	"  --samples N       timed runs of each (1..10000, default 10; synthetic: at most 3)\n"
	"  --json            the whole JSON document instead of a summary\n";

/* A row of the summary's table: name, then the times in milliseconds. */
static json_object *stats_json(const char *id, const char *name, const struct bench_stats *s)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if ((id && json_out_add(o, "id", json_object_new_string(id))) ||
	    (name && json_out_add(o, "name", json_object_new_string(name))) ||
	    json_out_add_num(o, "median_ms", s->median * 1e3, 3) ||
	    json_out_add_num(o, "p5_ms", s->p5 * 1e3, 3) ||
	    json_out_add_num(o, "p95_ms", s->p95 * 1e3, 3) ||
	    json_out_add(o, "samples", json_object_new_int(s->samples))) {
		json_object_put(o);
		return NULL;
	}
	return o;
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

/* Builds the synthetic machine, reloads it from its file, classifies every
 * ordered pair; the figures into root["synthetic"]. */
static int bench_synthetic(json_object *root, int ndev, int samples)
{
	int per_switch = 32, hbs = (ndev + 2 * per_switch - 1) / (2 * per_switch);
	double *build = calloc((size_t)samples, sizeof(double));
	double *cls = calloc((size_t)samples, sizeof(double));
	double *grp = calloc((size_t)samples, sizeof(double));
	double *load = calloc((size_t)samples, sizeof(double));
	struct bench_stats sb, sc, sg, sl;
	json_object *syn, *o;
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
	/* Each container goes into its parent first, so that the parent owns it. */
	r = -ENOMEM;
	syn = json_object_new_object();
	if (json_out_add(root, "synthetic", syn) ||
	    json_out_add(syn, "emulated", json_object_new_boolean(true)) ||
	    json_out_add(syn, "devices", json_object_new_uint64(ndevices)) ||
	    json_out_add(syn, "ordered_pairs", json_object_new_uint64(npairs)) ||
	    json_out_add(syn, "peer_groups", json_object_new_int(ngroups)))
		goto out;
	o = json_object_new_object();
	if (json_out_add(syn, "class_counts", o))
		goto out;
	for (int c = TOPO_CLASS_X; c <= TOPO_CLASS_NET; c++)
		if (json_out_add(o, topo_class_name(c), json_object_new_uint64(counts[c])))
			goto out;
	if (json_out_add(syn, "topology_file_bytes", json_object_new_uint64(file_bytes)) ||
	    json_out_add_num(syn, "load_plus_classify_all_ms", (sl.median + sc.median) * 1e3, 3))
		goto out;
	o = json_object_new_array();
	if (json_out_add(syn, "stages", o) ||
	    json_out_append(o, stats_json("build", "build the machine", &sb)) ||
	    json_out_append(o, stats_json("file_load", "load its topology file", &sl)) ||
	    json_out_append(o, stats_json("classify_all_pairs", "classify every ordered pair", &sc)) ||
	    json_out_append(o, stats_json("peer_groups", "peer groups", &sg)))
		goto out;
	r = 0;
out:
	free(build);
	free(cls);
	free(grp);
	free(load);
	free(p);
	return r;
}

/* "N" within lo..hi into *out, else the option and the bad value named. */
static int parse_count(const char *opt, const char *arg, int lo, int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno || end == arg || *end || v < lo || v > hi) {
		fprintf(stderr, "pmbench topo: --%s: '%s' is not a number in %d..%d\n", opt, arg,
			lo, hi);
		return -EINVAL;
	}
	*out = (int)v;
	return 0;
}

/* The discovery rows: in process, then pmtopo's process against lstopo's.
 * What goes into root is root's, also when this fails. */
static int discovery_json(json_object *root, const struct bench_stats *disc,
			  const struct bench_stats *ours, const struct bench_stats *lstopo,
			  const char *missing)
{
	json_object *rows, *row, *base;

	if (json_out_add(root, "unit", json_object_new_string("milliseconds")))
		return -ENOMEM;
	rows = json_object_new_array();
	if (json_out_add(root, "discovery", rows) ||
	    json_out_append(rows, stats_json("in_process", "topo_discover() in this process", disc)))
		return -ENOMEM;
	if (ours) {
		row = stats_json("pmtopo_json_process", "pmtopo --json, a whole process", ours);
		if (json_out_append(rows, row))
			return -ENOMEM;
		/* The baseline's kind names it in the summary ("lstopo... 9.5 ms"). */
		base = lstopo ? stats_json(NULL, NULL, lstopo) : NULL;
		if (lstopo &&
		    (json_out_add(row, "baseline", base) ||
		     json_out_add(base, "kind", json_object_new_string("lstopo-no-graphics --of xml")) ||
		     json_out_add_num(row, "slowdown", ours->median / lstopo->median, 2)))
			return -ENOMEM;
	}
	if (json_out_add_num(root, "speedup_vs_lstopo",
			     ours && lstopo ? lstopo->median / ours->median : NAN, 2))
		return -ENOMEM;
	/* Say what is missing rather than leave a row out silently. */
	if (!ours && json_out_add(root, "pmtopo_missing", json_object_new_string(missing)))
		return -ENOMEM;
	if (!lstopo &&
	    json_out_add(root, "lstopo_missing",
			 json_object_new_string("lstopo-no-graphics did not run (not installed? "
						"apt-get install hwloc-nox)")))
		return -ENOMEM;
	return 0;
}

int pmbench_topo(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sysfs-root", required_argument, NULL, 'r' },
		{ "synthetic", required_argument, NULL, 'n' },
		{ "samples", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *root_dir = NULL;
	int ndev = 4096, samples = 10, c, r;
	char dir[PATH_MAX], pmtopo[PATH_MAX + 16], missing[PATH_MAX + 64];
	struct bench_stats disc, ours, lstopo;
	json_object *root = NULL;
	bool json = false;
	size_t npci = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'r': root_dir = optarg; break;
		case 'n':
			if (parse_count("synthetic", optarg, 2, 1 << 16, &ndev) < 0)
				return 2;
			break;
		case 's':
			if (parse_count("samples", optarg, 1, 10000, &samples) < 0)
				return 2;
			break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case ':':
			fprintf(stderr, "pmbench topo: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench topo: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench topo: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	r = sample_discovery(root_dir, samples, &disc, &npci);
	if (r < 0) {
		fprintf(stderr, "pmbench topo: discovery of %s failed: %s\n",
			root_dir ? root_dir : "this machine", strerror(-r));
		return 1;
	}
	/* The installed pmtopo sits beside the installed pmbench, as in the build tree. */
	bench_self_dir(dir, sizeof(dir));
	snprintf(pmtopo, sizeof(pmtopo), "%s/pmtopo", dir);
	char *ours_argv[] = { pmtopo, "--json", "--no-verbs", root_dir ? "--sysfs-root" : NULL,
			      (char *)root_dir, NULL };
	char *lstopo_argv[] = { "lstopo-no-graphics", "--of", "xml", "-", NULL };
	bool have_ours = sample_process(ours_argv, NULL, samples, &ours) == 0;
	bool have_lstopo = sample_process(lstopo_argv, root_dir, samples, &lstopo) == 0;

	snprintf(missing, sizeof(missing), "%s did not run (not built or installed beside pmbench?)",
		 pmtopo);
	root = json_object_new_object();
	r = root ? 0 : -ENOMEM;
	if (r == 0 &&
	    (json_out_add(root, "benchmark", json_object_new_string("topo")) ||
	     json_out_add(root, "source", json_object_new_string(root_dir ? root_dir : "live")) ||
	     json_out_add(root, "pci_functions", json_object_new_uint64(npci))))
		r = -ENOMEM;
	if (r == 0)
		r = discovery_json(root, &disc, have_ours ? &ours : NULL,
				   have_lstopo ? &lstopo : NULL, missing);
	if (r < 0) {
		fprintf(stderr, "pmbench topo: %s\n", strerror(-r));
		json_object_put(root);
		return 1;
	}
	r = bench_synthetic(root, ndev, samples < 3 ? samples : 3);
	if (r < 0) {
		fprintf(stderr, "pmbench topo: the synthetic machine of %d devices: %s\n", ndev,
			strerror(-r));
		json_object_put(root);
		return 1;
	}
	bench_emit(root, json);
	json_object_put(root);
	return fflush(stdout) ? 1 : 0;
}
