/* SPDX-License-Identifier: MIT */
/*
 * perftest (linux-rdma/perftest: ib_write_bw, ib_write_lat) as a baseline for
 * pmbench rdma: running a server and a client of one tool on this machine,
 * and reading the result row of what the client printed.
 */
#ifndef PAGEMAP_PMBENCH_PERFTEST_H
#define PAGEMAP_PMBENCH_PERFTEST_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* perftest's "MB/sec" is MiB/s: it divides bytes per second by 0x100000. */
#define PERFTEST_MBS_BYTES 1048576.0
/* --report_gbits' "Gb/sec" is 1e9 bits per second. */
#define PERFTEST_GBS_BYTES 125000000.0

/* One run of a tool against itself: a server in the background, then a client. */
struct perftest_spec {
	const char *tool;     /* "ib_write_bw", "ib_write_lat" */
	const char *dev;      /* -d: the RDMA device */
	const char *addr;     /* what the client connects to (perftest's TCP handshake) */
	uint64_t size;        /* -s: message size, bytes */
	unsigned long iters;  /* -n */
	int port;             /* -p; 0: perftest's default (18515) */
	int timeout_s;        /* for the client's run, and again for the server's exit */
};

/* ib_write_bw's result row; rates in bytes per second, whatever unit it printed. */
struct perftest_bw {
	uint64_t iterations;
	double peak_bps, avg_bps;
	double peak, avg;     /* as printed, in unit */
	char unit[16];        /* "MB/sec" (MiB/s) or "Gb/sec" */
	double msg_rate_mpps; /* NAN when not printed */
};

/*
 * ib_write_lat's result row in microseconds, NAN for columns this perftest
 * does not print. For WRITE, perftest reports half of each ping-pong round
 * trip: the time for one message to land on the other side.
 */
struct perftest_lat {
	uint64_t iterations;
	double t_min, t_max, t_typical, t_avg, t_stdev, p99, p999;
};

/* Finds tool in $PATH: true with its path in path. */
bool perftest_find(const char *tool, char *path, size_t len);

/*
 * Starts the server, then runs the client, again every 300 ms while it
 * fails and the server still waits (it fails fast until the server
 * listens). Returns 0 with *out the client's output (stdout and stderr; the
 * caller frees it), or -errno with why filled: -ENOENT no such tool in
 * $PATH, -ETIMEDOUT a process ran past timeout_s (it is killed), -EIO a
 * process failed (why quotes the end of its output).
 */
int perftest_run(const struct perftest_spec *s, char **out, char *why, size_t len);

/*
 * Read the result row for message size size from a client's output: 0 with
 * *out filled, -ENOENT no such row (why says what was found), -EPROTO a row
 * or header this parser does not understand. Columns are found by their
 * headings, so perftest versions that add or drop columns still parse.
 */
int perftest_parse_bw(const char *text, uint64_t size, struct perftest_bw *out, char *why,
		      size_t len);
int perftest_parse_lat(const char *text, uint64_t size, struct perftest_lat *out, char *why,
		       size_t len);
#endif
