/* SPDX-License-Identifier: MIT */
/* pmbench: benchmarks printing a summary, or JSON with --json; each subcommand
 * measures its baseline in the same run. */
#ifndef PAGEMAP_PMBENCH_H
#define PAGEMAP_PMBENCH_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

struct pm_client;

struct bench_stats {
	double median, p5, p95, p99, min; /* seconds */
	int samples;
};

double bench_now(void);
/* Sorts samples in place and fills stats. */
void bench_stats(double *samples, int n, struct bench_stats *out);
/* The directory of the running binary, to find its siblings (pmtopo, ../broker). */
void bench_self_dir(char *buf, size_t len);
/* pmbench_summary.c: root as JSON (json), else a summary for people: one
 * line per measurement with its baseline and ratio. */
void bench_emit(json_object *root, bool json);
/*
 * pmbench_uffd.c: the median time of a bare userfaultfd fault on shmem, the
 * handler filling one page (whole_chunk false: the round trip) or the whole
 * chunk (true: the round trip plus the kernel's cost of the chunk's pages),
 * over samples touches of nchunks chunks. 0 or -errno.
 */
int bench_uffd_fault(size_t chunk, size_t nchunks, int samples, bool whole_chunk,
		     double *median_s);
/* ---- pmbench_data.c: for the benchmarks that move data ---- */
struct engine_leg;
/* One pm_migrate of [buf, buf + size) to fd, its time in *t (seconds); the
 * engines' counters read on either side, outside the time, and the
 * difference added to leg (engine_stats.h). pm_migrate's result. */
int engine_leg_migrate(struct pm_client *c, void *buf, size_t size, int fd, double *t,
		       struct engine_leg *leg);
/* Fills buf with a pattern of seed (no earlier buffer left the same); its checksum. */
uint64_t bench_fill(void *buf, size_t len, uint64_t seed);
uint64_t bench_checksum(const void *buf, size_t len);
/* Reads all of buf against want (bench_fill's checksum); 0, or -EIO with
 * the first bad word's offset and chunk in why. */
int bench_verify(const void *buf, size_t len, size_t chunk, uint64_t seed, uint64_t want,
		 char *why, size_t wlen);
/* 0 when every chunk of [buf, buf + len) is resident in pagemap id (0:
 * system memory, else named where in why), -EIO or pm_query's error. */
int bench_resident(struct pm_client *c, const void *buf, size_t len, size_t chunk, uint64_t id,
		   const char *where, char *why, size_t wlen);
/* "64M", "1G", "65536": bytes, binary suffixes, at most 1 TiB. 0 for anything else. */
size_t bench_parse_size(const char *s);
/* GB/s (1e9 bytes), NAN when secs is not positive. */
double bench_gbps(size_t bytes, double secs);
/* median_gbps, p5_gbps, p95_gbps of bytes moved in the times of s. */
int bench_add_rates(json_object *o, size_t bytes, const struct bench_stats *s);

/* ---- pmbench_broker.c: a broker of the benchmark's own ---- */
struct bench_broker {
	pid_t pid;
	char dir[4096];
	char sock[108];
	char log[4112];
	char conf[4112]; /* "" when started without a configuration file */
	int linger_ms;   /* --linger-ms, set before starting */
};
/* Spawns pagemapd ($PAGEMAPD, else ../broker/pagemapd beside this binary,
 * else the installed PAGEMAP_SBINDIR/pagemapd) on a socket in a fresh
 * temporary directory, pinned to cpu unless it is -1, with config (JSON
 * text, or NULL) and an emulated topology file (or NULL), and connects *out
 * to it. 0 or -errno (what went wrong is on stderr). */
int bench_broker_start(struct bench_broker *bp, const char *bench, int cpu, const char *config,
		       const char *topology, struct pm_client **out);
void bench_broker_stop(struct bench_broker *bp);
void bench_broker_print_log(const struct bench_broker *bp);

int pmbench_topo(int argc, char **argv);
int pmbench_rtt(int argc, char **argv);
int pmbench_migrate(int argc, char **argv);
int pmbench_io(int argc, char **argv);
int pmbench_rdma(int argc, char **argv);
int pmbench_gpu(int argc, char **argv);
int pmbench_load(int argc, char **argv);
#endif
