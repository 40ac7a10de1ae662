/* SPDX-License-Identifier: MIT */
/*
 * pmbench rdma: pm_migrate between host memory and a peer broker's memory
 * over RDMA (a pagemap such as "a:node0"), next to perftest on the same RDMA
 * device in the same run: throughput both ways at 64 KiB and 2 MiB chunks
 * against ib_write_bw, and the latency of moving one 64 KiB chunk there and
 * of faulting one back against ib_write_lat. Data is filled before and
 * checked after, never inside the timed calls. Around each timed call the
 * broker's copy engine counters (PM_OP_ENGINES) are read, also outside the
 * timing, to say how the bytes moved: straight from or to the client's
 * pages (bytes_zero_copy) or through staging buffers (bytes_staged).
 * pmbench_perftest.c runs and reads perftest.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "engine_stats.h"
#include "json_out.h"
#include "pagemap.h"
#include "pmbench.h"
#include "pmbench_migrate.h"
#include "pmbench_perftest.h"

#define SMALL_SHIFT 16 /* 64 KiB chunks */
#define LARGE_SHIFT 21 /* 2 MiB chunks, the default */
#define LAT_MIN_SAMPLES 100
/* ib_write_bw's message: the size of the peer link's transfer buffers (peer.c). */
#define BW_MSG (1u << 20)
#define BW_MAX_ITERS 100000ul
#define LAT_MSG (1u << SMALL_SHIFT)
#define LAT_ITERS 1000ul /* perftest's default */
/* Per perftest process: a start, then its bytes at 5 MB/s (soft-RoCE under TCG moves ~50). */
#define PERFTEST_TIMEOUT_S(bytes) (120 + (int)((bytes) / 5000000u))
#define PERFTEST_TRIES 3

static const char usage_text[] =
	"Usage: pmbench rdma --remote NAME [--socket PATH] [--size BYTES] [--samples N]\n"
	"                    [--ib-dev DEV] [--ib-addr ADDR] [--perftest-port PORT]\n"
	"                    [--no-perftest] [--json]\n"
	"pm_migrate to and from a peer broker's pool over RDMA vs perftest on the same device.\n"
	"  --remote NAME         the peer's pagemap, as this broker names it (a:node0)\n"
	"  --socket PATH         the broker (default $PAGEMAP_SOCKET, then the usual sockets)\n"
	"  --size BYTES          buffer size, K/M/G suffixes (default 32M)\n"
	"  --samples N           timed migrations per direction (10..100000, default 10)\n"
	"  --ib-dev DEV          the RDMA device the peer link uses (rxe0): perftest runs on it;\n"
	"                        without it there is no perftest baseline\n"
	"  --ib-addr ADDR        the address perftest's client connects to (default 127.0.0.1;\n"
	"                        only perftest's TCP handshake uses it)\n"
	"  --perftest-port PORT  perftest's TCP port (default perftest's, 18515)\n"
	"  --no-perftest         no baseline\n"
	"  --json                everything, in JSON (default: a summary per direction)\n";

struct rdmabench {
	struct pm_client *c;
	bool json; /* --json: the document, not the summary */
	int fd;                    /* the remote pagemap */
	struct pagemap_info remote;
	char rname[MIGBENCH_NAME_MAX]; /* the broker's name for it: DEVICE[/REGION] */
	size_t size;
	int samples;
	uint64_t seed;
	json_object *errors;
	int failures;
};

/* perftest: where it runs, and its results or why there are none. */
struct baseline {
	const char *dev, *addr;
	int port;                  /* 0: perftest's default */
	bool bw_ok, lat_ok;
	int bw_runs, lat_runs;     /* perftest runs made, see run_baseline() */
	struct perftest_bw bw;
	struct perftest_lat lat;
	char bw_err[512], lat_err[512];
};

/* ---- results ---- */

static void record_error(struct rdmabench *x, const char *stage, size_t chunk, int err,
			 const char *why)
{
	const char *msg = why && why[0] ? why : strerror(-err);
	json_object *o = json_object_new_object();

	fprintf(stderr, "pmbench rdma: %zu-byte chunks: %s: %s\n", chunk, stage, msg);
	x->failures++;
	if (o && (json_out_add(o, "stage", json_object_new_string(stage)) ||
		  json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
		  json_out_add(o, "error", json_object_new_string(msg)))) {
		json_object_put(o);
		return;
	}
	json_out_append(x->errors, o);
}


/* One direction's throughput; base: ib_write_bw's average, bytes/s (NAN: none). */
static json_object *leg_json(const struct rdmabench *x, size_t chunk, bool to_remote,
			     double *t, double base, const struct engine_leg *le)
{
	const char *dir = to_remote ? "host_to_remote" : "remote_to_host";
	json_object *o = json_object_new_object();
	struct bench_stats s;

	bench_stats(t, x->samples, &s);
	/* Rate percentiles from time percentiles: the slow tail (p5) is the long times' (p95). */
	if (!o || json_out_add(o, "direction", json_object_new_string(dir)) ||
	    json_out_add(o, "src", json_object_new_string(to_remote ? "system" : x->rname)) ||
	    json_out_add(o, "dst", json_object_new_string(to_remote ? x->rname : "system")) ||
	    json_out_add(o, "rdma_op", json_object_new_string(to_remote ? "write" : "read")) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(x->size)) ||
	    json_out_add(o, "samples", json_object_new_int(x->samples)) ||
	    bench_add_rates(o, x->size, &s) ||
	    json_out_add_num(o, "baseline_gbps", base / 1e9, 3) ||
	    json_out_add_num(o, "ratio", bench_gbps(x->size, s.median) / (base / 1e9), 3) ||
	    json_out_add(o, "verified", json_object_new_boolean(true))) {
		json_object_put(o);
		return NULL;
	}
	/* Per sample: one pm_migrate of size bytes. */
	if (le->ok ? engine_stats_json(o, &le->sum, (uint64_t)x->samples) < 0
		   : (json_object_object_add(o, "bytes_zero_copy", NULL) ||
		      json_object_object_add(o, "bytes_staged", NULL))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *lat_json(double *t, int n, double base_us)
{
	json_object *o = json_object_new_object();
	struct bench_stats s;

	bench_stats(t, n, &s);
	if (!o || json_out_add_num(o, "median_us", s.median * 1e6, 2) ||
	    json_out_add_num(o, "p5_us", s.p5 * 1e6, 2) ||
	    json_out_add_num(o, "p95_us", s.p95 * 1e6, 2) ||
	    json_out_add_num(o, "ratio", s.median * 1e6 / base_us, 2)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* ---- measurements ---- */

/*
 * Moves the whole buffer to the remote pool and back, samples times, at one
 * chunk size, into arr. The first round trip is a warm-up that also checks
 * that pm_migrate puts every chunk where it was asked to.
 */
static void throughput(struct rdmabench *x, unsigned shift, const struct baseline *b,
		       json_object *arr)
{
	size_t chunk = (size_t)1 << shift, n = (size_t)x->samples;
	double *t[2] = { calloc(n, sizeof(double)), calloc(n, sizeof(double)) };
	double base = b && b->bw_ok ? b->bw.avg_bps : NAN;
	struct engine_leg le[2] = { { .ok = true }, { .ok = true } };
	uint64_t seed = x->seed, want = 0;
	const char *stage = "pm_alloc";
	char why[256] = "";
	uint8_t *buf = NULL;
	int r;

	x->seed += x->size;
	r = t[0] && t[1] ? pm_alloc(x->c, x->size, PM_ALLOC_CHUNK_SHIFT(shift), (void **)&buf)
			 : -ENOMEM;
	if (r == 0) {
		want = bench_fill(buf, x->size, seed);
		stage = "warm-up";
		r = pm_migrate(x->c, buf, x->size, x->fd, 0);
	}
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, x->remote.id, "the remote pool", why, sizeof(why));
	if (r == 0)
		r = pm_migrate(x->c, buf, x->size, PM_FD_SYSTEM, 0);
	if (r == 0)
		r = bench_resident(x->c, buf, x->size, chunk, 0, "the remote pool", why, sizeof(why));
	for (size_t i = 0; r == 0 && i < n; i++) {
		stage = "pm_migrate to the remote pool";
		r = engine_leg_migrate(x->c, buf, x->size, x->fd, &t[0][i], &le[0]);
		if (r)
			break;
		stage = "pm_migrate back to system memory";
		r = engine_leg_migrate(x->c, buf, x->size, PM_FD_SYSTEM, &t[1][i], &le[1]);
	}
	/* All home before reading: a fault would hide a move back that did not happen. */
	if (r == 0) {
		stage = "verify";
		r = bench_resident(x->c, buf, x->size, chunk, 0, "the remote pool", why, sizeof(why));
	}
	if (r == 0)
		r = bench_verify(buf, x->size, chunk, seed, want, why, sizeof(why));
	if (r < 0) {
		record_error(x, stage, chunk, r, why);
	} else if (json_out_append(arr, leg_json(x, chunk, true, t[0], base, &le[0])) ||
		   json_out_append(arr, leg_json(x, chunk, false, t[1], base, &le[1]))) {
		record_error(x, "results", chunk, -ENOMEM, NULL);
	}
	if (buf)
		pm_free(x->c, buf);
	free(t[0]);
	free(t[1]);
}

/*
 * Small moves: each 64 KiB chunk of a buffer host -> remote, one
 * pm_migrate each (a request, one RDMA WRITE, the reply); then the first
 * CPU read of each, which faults it back (an RDMA READ inside libpagemap's
 * fault handler). In rounds over the buffer until there are enough samples.
 */
static json_object *latency(struct rdmabench *x, const struct baseline *b)
{
	size_t chunk = LAT_MSG, want_n = (size_t)x->samples, nchunks, rounds, len, n = 0;
	double base_us = b && b->lat_ok ? b->lat.t_typical : NAN;
	uint64_t seed = x->seed, want = 0;
	const char *stage = "pm_alloc";
	volatile uint8_t sink = 0;
	double *mv = NULL, *fb = NULL;
	json_object *o = NULL;
	char why[256] = "";
	uint8_t *buf = NULL;
	int r;

	if (want_n < LAT_MIN_SAMPLES)
		want_n = LAT_MIN_SAMPLES;
	nchunks = want_n < x->size / chunk ? want_n : x->size / chunk;
	rounds = (want_n + nchunks - 1) / nchunks;
	len = nchunks * chunk;
	x->seed += len;
	mv = calloc(rounds * nchunks, sizeof(double));
	fb = calloc(rounds * nchunks, sizeof(double));
	r = mv && fb ? pm_alloc(x->c, len, PM_ALLOC_CHUNK_SHIFT(SMALL_SHIFT), (void **)&buf)
		     : -ENOMEM;
	if (r == 0) {
		want = bench_fill(buf, len, seed);
		/* The first transfers of a link may pay for its setup: not ours to time. */
		stage = "warm-up";
		r = pm_migrate(x->c, buf, len, x->fd, 0);
	}
	if (r == 0)
		r = pm_migrate(x->c, buf, len, PM_FD_SYSTEM, 0);
	for (size_t round = 0; r == 0 && round < rounds; round++) {
		stage = "pm_migrate of one chunk";
		for (size_t k = 0; r == 0 && k < nchunks; k++) {
			double t0 = bench_now();

			r = pm_migrate(x->c, buf + k * chunk, chunk, x->fd, 0);
			mv[n + k] = bench_now() - t0;
		}
		if (r == 0)
			r = bench_resident(x->c, buf, len, chunk, x->remote.id, "the remote pool", why, sizeof(why));
		if (r)
			break;
		stage = "first touch";
		for (size_t k = 0; r == 0 && k < nchunks; k++) {
			volatile const uint8_t *p = buf + k * chunk;
			double t0 = bench_now();

			sink ^= *p;
			fb[n + k] = bench_now() - t0;
		}
		if (r == 0)
			r = bench_resident(x->c, buf, len, chunk, 0, "the remote pool", why, sizeof(why));
		n += nchunks;
	}
	(void)sink;
	if (r == 0) {
		stage = "verify";
		r = bench_verify(buf, len, chunk, seed, want, why, sizeof(why));
	}
	if (r < 0) {
		record_error(x, stage, chunk, r, why);
		goto out;
	}
	o = json_object_new_object();
	if (!o || json_out_add(o, "chunk_size", json_object_new_uint64(chunk)) ||
	    json_out_add(o, "samples", json_object_new_int((int)n)) ||
	    json_out_add(o, "unit", json_object_new_string("microseconds")) ||
	    json_out_add(o, "move_to_remote", lat_json(mv, (int)n, base_us)) ||
	    json_out_add(o, "fault_back", lat_json(fb, (int)n, base_us)) ||
	    json_out_add_num(o, "baseline_us", base_us, 2) ||
	    json_out_add(o, "verified", json_object_new_boolean(true))) {
		json_object_put(o);
		o = NULL;
		record_error(x, "results", chunk, -ENOMEM, NULL);
	}
out:
	if (buf)
		pm_free(x->c, buf);
	free(mv);
	free(fb);
	return o;
}

/* ---- perftest ---- */

/*
 * Runs s and reads its result into b (lat: ib_write_lat's, else
 * ib_write_bw's), again while the run succeeds but its numbers are unusable:
 * perftest converts cycles with a clock rate it measures, and under
 * emulation that measurement may fail ("Correlation coefficient r^2 ... <
 * 0.9"); with -F it then prints inf instead of exiting. 0 or -errno with err
 * filled; *runs: how many runs it took.
 */
static int run_baseline(struct rdmabench *x, const struct perftest_spec *s, bool lat,
			struct baseline *b, char *err, size_t len, int *runs)
{
	int r;

	for (*runs = 1;; ++*runs) {
		char *text = NULL;

		r = perftest_run(s, &text, err, len);
		if (r == 0)
			r = lat ? perftest_parse_lat(text, s->size, &b->lat, err, len)
				: perftest_parse_bw(text, s->size, &b->bw, err, len);
		if (r == -EPROTO && text && strstr(text, "Correlation coefficient")) {
			size_t n = strlen(err);

			snprintf(err + n, len - n, " (perftest could not measure its CPU clock)");
		}
		free(text);
		if (r != -EPROTO || *runs == PERFTEST_TRIES)
			break;
	}
	if (r < 0) {
		fprintf(stderr, "pmbench rdma: baseline %s: %s\n", s->tool, err);
		x->failures++;
	}
	return r;
}

/* ib_write_bw, moving as many bytes as pm_migrate moves each way over all samples. */
static void baseline_bw(struct rdmabench *x, struct baseline *b)
{
	struct perftest_spec s = { .tool = "ib_write_bw", .dev = b->dev, .addr = b->addr,
				   .size = BW_MSG, .port = b->port };
	size_t iters = x->size / BW_MSG * (size_t)x->samples;

	s.iters = iters < 5 ? 5 : iters > BW_MAX_ITERS ? BW_MAX_ITERS : iters;
	s.timeout_s = PERFTEST_TIMEOUT_S((uint64_t)s.iters * BW_MSG);
	b->bw_ok = run_baseline(x, &s, false, b, b->bw_err, sizeof(b->bw_err), &b->bw_runs) == 0;
}

static void baseline_lat(struct rdmabench *x, struct baseline *b)
{
	/* A ping-pong: every iteration moves a message each way. */
	struct perftest_spec s = { .tool = "ib_write_lat", .dev = b->dev, .addr = b->addr,
				   .size = LAT_MSG, .iters = LAT_ITERS, .port = b->port,
				   .timeout_s = PERFTEST_TIMEOUT_S(2 * LAT_ITERS * LAT_MSG) };

	b->lat_ok = run_baseline(x, &s, true, b, b->lat_err, sizeof(b->lat_err), &b->lat_runs) == 0;
}

static json_object *bw_json(const struct baseline *b)
{
	const char *unit = !strcmp(b->bw.unit, "MB/sec")
				   ? "MB/sec as perftest prints it: 2^20 bytes per second"
				   : "Gb/sec as perftest prints it: 1e9 bits per second";
	json_object *o = json_object_new_object();

	if (!o || json_out_add(o, "msg_size", json_object_new_uint64(BW_MSG)) ||
	    json_out_add(o, "iterations", json_object_new_uint64(b->bw.iterations)) ||
	    json_out_add(o, "runs", json_object_new_int(b->bw_runs)) ||
	    json_out_add(o, "unit", json_object_new_string(unit)) ||
	    json_out_add_num(o, "peak", b->bw.peak, 2) || json_out_add_num(o, "average", b->bw.avg, 2) ||
	    json_out_add_num(o, "peak_gbps", b->bw.peak_bps / 1e9, 3) ||
	    json_out_add_num(o, "average_gbps", b->bw.avg_bps / 1e9, 3) ||
	    json_out_add_num(o, "msg_rate_mpps", b->bw.msg_rate_mpps, 6)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static json_object *lat_base_json(const struct baseline *b)
{
	json_object *o = json_object_new_object();

	if (!o || json_out_add(o, "msg_size", json_object_new_uint64(LAT_MSG)) ||
	    json_out_add(o, "iterations", json_object_new_uint64(b->lat.iterations)) ||
	    json_out_add(o, "runs", json_object_new_int(b->lat_runs)) ||
	    json_out_add(o, "unit", json_object_new_string("microseconds")) ||
	    json_out_add(o, "one_way", json_object_new_boolean(true)) ||
	    json_out_add_num(o, "t_min_us", b->lat.t_min, 2) || json_out_add_num(o, "t_max_us", b->lat.t_max, 2) ||
	    json_out_add_num(o, "t_typical_us", b->lat.t_typical, 2) ||
	    json_out_add_num(o, "t_avg_us", b->lat.t_avg, 2) ||
	    json_out_add_num(o, "t_stdev_us", b->lat.t_stdev, 2) ||
	    json_out_add_num(o, "p99_us", b->lat.p99, 2) || json_out_add_num(o, "p999_us", b->lat.p999, 2)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* obj[key] = val and obj[key_error] = null; or, without a result, null and why. */
static int add_result(json_object *obj, const char *key, bool ok, json_object *val,
		      const char *err)
{
	char ekey[64];

	snprintf(ekey, sizeof(ekey), "%s_error", key);
	if (ok)
		return json_out_add(obj, key, val) ? -ENOMEM
						   : json_out_add_str_or_null(obj, ekey, NULL);
	return json_object_object_add(obj, key, NULL) ? -ENOMEM
						      : json_out_add_str_or_null(obj, ekey, err);
}

static int baseline_json(json_object *root, const struct baseline *b)
{
	json_object *o = json_object_new_object();

	if (json_out_add(root, "baseline", o) ||
	    json_out_add(o, "tool", json_object_new_string("perftest")) ||
	    json_out_add(o, "ib_dev", json_object_new_string(b->dev)) ||
	    json_out_add(o, "ib_addr", json_object_new_string(b->addr)) ||
	    json_out_add(o, "tcp_port", json_object_new_int(b->port ? b->port : 18515)) ||
	    add_result(o, "ib_write_bw", b->bw_ok, b->bw_ok ? bw_json(b) : NULL, b->bw_err) ||
	    add_result(o, "ib_write_lat", b->lat_ok, b->lat_ok ? lat_base_json(b) : NULL,
		       b->lat_err))
		return -ENOMEM;
	return json_object_object_add(root, "baseline_reason", NULL) ? -ENOMEM : 0;
}

/* ---- the command ---- */

/* Opens --remote and checks that it is a peer's pool with room for size bytes. */
static int open_remote(struct rdmabench *x, const char *name)
{
	char dev[sizeof(x->rname)], *region;
	int r;

	if (strlen(name) >= sizeof(dev)) {
		fprintf(stderr, "pmbench rdma: --remote %s: name too long\n", name);
		return -ENAMETOOLONG;
	}
	/* DEVICE[/REGION], as pmbench migrate and pmctl name pools. */
	snprintf(dev, sizeof(dev), "%s", name);
	region = strchr(dev, '/');
	if (region)
		*region++ = '\0';
	x->fd = pagemap_open(x->c, dev, region, 0);
	if (x->fd < 0) {
		fprintf(stderr, "pmbench rdma: --remote %s: %s\n", name,
			x->fd == -ENOENT ? "the broker serves no such pagemap (a peer's pools "
					   "are PEER:nodeN once it is connected; the broker "
					   "logs each)"
					 : strerror(-x->fd));
		return x->fd;
	}
	r = pagemap_query(x->fd, &x->remote);
	if (r < 0) {
		fprintf(stderr, "pmbench rdma: --remote %s: pagemap_query: %s\n", name,
			strerror(-r));
		return r;
	}
	snprintf(x->rname, sizeof(x->rname), "%.*s%s%.*s", (int)sizeof(x->remote.device),
		 x->remote.device, x->remote.region[0] ? "/" : "", (int)sizeof(x->remote.region),
		 x->remote.region);
	if (x->remote.kind != PAGEMAP_KIND_RDMA_REMOTE) {
		fprintf(stderr, "pmbench rdma: --remote %s: a %s pool, not a peer broker's "
				"memory (rdma-remote)\n",
			name, migbench_kind_name(x->remote.kind));
		return -EINVAL;
	}
	if (x->remote.capacity < x->remote.used ||
	    x->remote.capacity - x->remote.used < x->size) {
		fprintf(stderr, "pmbench rdma: --remote %s: %llu bytes free, --size needs %zu\n",
			name,
			(unsigned long long)(x->remote.capacity > x->remote.used
						     ? x->remote.capacity - x->remote.used : 0),
			x->size);
		return -ENOSPC;
	}
	return 0;
}

static int header_json(json_object *root, const struct rdmabench *x, const char *sock,
		       const char *name)
{
	json_object *rem = json_object_new_object();

	return json_out_add(root, "benchmark", json_object_new_string("rdma")) ||
	       json_out_add(root, "broker", json_object_new_string(sock ? sock : "default")) ||
	       json_out_add(root, "remote", rem) ||
	       json_out_add(rem, "name", json_object_new_string(name)) ||
	       json_out_add(rem, "pagemap", json_object_new_string(x->rname)) ||
	       json_out_add(rem, "id", json_object_new_uint64(x->remote.id)) ||
	       json_out_add(rem, "kind", json_object_new_string(
						 migbench_kind_name(x->remote.kind))) ||
	       json_out_add(rem, "capacity", json_object_new_uint64(x->remote.capacity)) ||
	       json_out_add(root, "size", json_object_new_uint64(x->size)) ||
	       json_out_add(root, "samples", json_object_new_int(x->samples)) ||
	       json_out_add(root, "unit", json_object_new_string("GB/s (1e9 bytes per second)"));
}

int pmbench_rdma(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "remote", required_argument, NULL, 'r' },
		{ "socket", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 'z' },
		{ "samples", required_argument, NULL, 's' },
		{ "ib-dev", required_argument, NULL, 'd' },
		{ "ib-addr", required_argument, NULL, 'a' },
		{ "perftest-port", required_argument, NULL, 'p' },
		{ "no-perftest", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct rdmabench bench = { .fd = -1, .size = 32u << 20, .samples = 10, .seed = 1 };
	struct rdmabench *x = &bench;
	struct baseline b = { .addr = "127.0.0.1" };
	const char *sock = NULL, *remote = NULL, *no_base = NULL;
	char exe[PATH_MAX], reason[128];
	bool perftest = true;
	json_object *root = NULL, *thr = NULL, *lat;
	int ch, r, exit_code = 1;
	char *end;
	long v;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': remote = optarg; break;
		case 'S': sock = optarg; break;
		case 'd': b.dev = optarg; break;
		case 'a': b.addr = optarg; break;
		case 'n': perftest = false; break;
		case 'j': x->json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'z':
			x->size = bench_parse_size(optarg);
			if (!x->size) {
				fprintf(stderr, "pmbench rdma: --size: '%s' is not a size "
						"(bytes, or with K, M, G)\n", optarg);
				return 2;
			}
			break;
		case 's':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 10 || v > 100000) {
				fprintf(stderr, "pmbench rdma: --samples: '%s' is not 10..100000\n",
					optarg);
				return 2;
			}
			x->samples = (int)v;
			break;
		case 'p':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 1 || v > 65535) {
				fprintf(stderr, "pmbench rdma: --perftest-port: '%s' is not "
						"1..65535\n", optarg);
				return 2;
			}
			b.port = (int)v;
			break;
		case ':':
			fprintf(stderr, "pmbench rdma: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench rdma: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench rdma: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!remote || !*remote) {
		fprintf(stderr, "pmbench rdma: --remote NAME is required: the peer broker's "
				"pagemap, as this broker names it (a:node0)\n");
		return 2;
	}
	if (b.dev && !*b.dev) {
		fprintf(stderr, "pmbench rdma: --ib-dev: empty device name\n");
		return 2;
	}
	if (!*b.addr) {
		fprintf(stderr, "pmbench rdma: --ib-addr: empty address\n");
		return 2;
	}
	/* Whole 2 MiB chunks, so every sample at either chunk size moves size bytes. */
	x->size = (x->size + ((size_t)1 << LARGE_SHIFT) - 1) >> LARGE_SHIFT << LARGE_SHIFT;
	/* Why there is no baseline, decided before anything runs. */
	if (!perftest) {
		no_base = "--no-perftest";
	} else if (!b.dev) {
		no_base = "no --ib-dev: perftest must run on the device the peer link uses";
	} else {
		static const char *const tools[] = { "ib_write_bw", "ib_write_lat" };

		for (int i = 0; !no_base && i < 2; i++)
			if (!perftest_find(tools[i], exe, sizeof(exe))) {
				snprintf(reason, sizeof(reason),
					 "perftest is not installed (no %s in $PATH)", tools[i]);
				no_base = reason;
			}
	}

	r = pm_connect(sock, &x->c);
	if (r < 0) {
		fprintf(stderr, "pmbench rdma: cannot connect to %s: %s%s\n",
			sock ? sock : "the broker", strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ? " (is pagemapd running? "
							     "--socket, $PAGEMAP_SOCKET)" : "");
		return 1;
	}
	if (open_remote(x, remote) < 0)
		goto out;
	if (no_base && perftest)
		fprintf(stderr, "pmbench rdma: no perftest baseline: %s\n", no_base);
	root = json_object_new_object();
	if (!root || header_json(root, x, sock, remote) ||
	    json_out_add(root, "throughput", thr = json_object_new_array()) ||
	    !(x->errors = json_object_new_array())) {
		fprintf(stderr, "pmbench rdma: %s\n", strerror(ENOMEM));
		goto out;
	}
	/*
	 * Each baseline right before the measurement it is compared with, so
	 * that drift falls on both alike; never at the same time, as they
	 * share the device.
	 */
	if (!no_base)
		baseline_bw(x, &b);
	throughput(x, SMALL_SHIFT, no_base ? NULL : &b, thr);
	throughput(x, LARGE_SHIFT, no_base ? NULL : &b, thr);
	if (!no_base)
		baseline_lat(x, &b);
	lat = latency(x, no_base ? NULL : &b);
	if (lat ? json_out_add(root, "latency", lat)
		: json_object_object_add(root, "latency", NULL))
		goto oom;
	if (no_base) {
		if (json_object_object_add(root, "baseline", NULL) ||
		    json_out_add(root, "baseline_reason", json_object_new_string(no_base)))
			goto oom;
	} else if (baseline_json(root, &b) < 0) {
		goto oom;
	}
	r = json_out_add(root, "errors", x->errors);
	x->errors = NULL; /* root's now, or freed */
	if (r)
		goto oom;
	bench_emit(root, x->json);
	exit_code = x->failures ? 1 : 0;
	goto out;
oom:
	fprintf(stderr, "pmbench rdma: %s\n", strerror(ENOMEM));
out:
	json_object_put(x->errors);
	json_object_put(root);
	if (x->fd >= 0)
		close(x->fd);
	pm_disconnect(x->c);
	return exit_code;
}
