/* SPDX-License-Identifier: MIT */
/* pmbench: benchmarks printing JSON; each subcommand measures its baseline in the same run. */
#ifndef PAGEMAP_PMBENCH_H
#define PAGEMAP_PMBENCH_H
#include <stddef.h>

struct bench_stats {
	double median, p5, p95, p99, min; /* seconds */
	int samples;
};

double bench_now(void);
/* Sorts samples in place and fills stats. */
void bench_stats(double *samples, int n, struct bench_stats *out);
/* The directory of the running binary, to find its siblings (pmtopo, ../broker). */
void bench_self_dir(char *buf, size_t len);
int pmbench_topo(int argc, char **argv);
int pmbench_rtt(int argc, char **argv);
int pmbench_migrate(int argc, char **argv);
int pmbench_rdma(int argc, char **argv);
int pmbench_gpu(int argc, char **argv);
#endif
