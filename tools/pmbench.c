/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "pmbench.h"

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const double *s, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);

	return s[i < 0 ? 0 : i >= n ? n - 1 : i];
}

void bench_stats(double *samples, int n, struct bench_stats *out)
{
	qsort(samples, (size_t)n, sizeof(double), cmp_double);
	out->samples = n;
	out->min = n ? samples[0] : 0;
	out->median = n ? pct(samples, n, 0.5) : 0;
	out->p5 = n ? pct(samples, n, 0.05) : 0;
	out->p95 = n ? pct(samples, n, 0.95) : 0;
	out->p99 = n ? pct(samples, n, 0.99) : 0;
}

void bench_self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	buf[n > 0 ? n : 0] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "topo", pmbench_topo, "discovery time vs lstopo; classification of all pairs at scale" },
	{ "rtt", pmbench_rtt, "broker round trips (NOP, open+close, query) vs a raw Unix socket" },
	{ "migrate", pmbench_migrate, "pm_migrate throughput between pools vs move_pages/memcpy; "
				      "fault-back latency" },
	{ "rdma", pmbench_rdma, "pm_migrate to/from a peer broker's pool over RDMA vs perftest "
				"(ib_write_bw, ib_write_lat)" },
	{ "gpu", pmbench_gpu, "pm_migrate to/from a GPU's pool vs pinned cuMemcpy and managed "
			      "memory's cuMemPrefetchAsync" },
	{ "io", pmbench_io, "pm_load/pm_store by the storage device's DMA (P2P into p2pmem) vs "
		"the same through host memory" },
	{ "load", pmbench_load, "many clients' mixed requests at once: p50/p99 per kind, errors, "
				"broker RSS and fds; --kill N clients mid-run" },
};

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(argc < 2 ? stderr : stdout,
			"Usage: pmbench COMMAND [OPTIONS]  (a summary on stdout, JSON with --json;\n"
			"                                   pmbench COMMAND --help for its options)\n");
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			fprintf(argc < 2 ? stderr : stdout, "  %-8s %s\n", cmds[i].name, cmds[i].help);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("pmbench %s\n", PAGEMAP_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].run(argc - 1, argv + 1);
	fprintf(stderr, "pmbench: unknown command '%s'\n", argv[1]);
	return 2;
}
