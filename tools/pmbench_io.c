/* SPDX-License-Identifier: MIT */
/*
 * pmbench io: pm_store and pm_load between managed memory placed in a pool
 * and a file or block device, by the storage device's own DMA where the
 * kernel allows it (P2P DMA into a p2pmem pool), against the same transfer
 * bounced through host memory (PM_FILE_BOUNCE), interleaved in one run.
 * Each sample moves the whole buffer one way; the data is checked at the
 * end, in memory and in the file. The file's first SIZE bytes (from
 * --offset) are overwritten.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "json_out.h"
#include "pagemap.h"
#include "pmbench.h"
#include "pmbench_migrate.h"

static const char usage_text[] =
	"Usage: pmbench io --pagemap DEVICE[/REGION] --file PATH [--size BYTES] [--offset BYTES]\n"
	"                  [--samples N] [--socket PATH] [--json]\n"
	"pm_store and pm_load of SIZE bytes of managed memory placed in the pagemap, to and\n"
	"from PATH (a block device or file, OVERWRITTEN from --offset), straight by the\n"
	"storage device's DMA where the kernel allows it, against the same transfer through\n"
	"host memory (PM_FILE_BOUNCE) in the same run. Prints the ratio, the bytes each way\n"
	"moved by P2P DMA, DMA into host memory or a bounce, and why any bounced.\n"
	"  --pagemap D[/R] where the memory lives, as pmctl names pools (0000:03:00.0/p2pmem)\n"
	"  --file PATH    the storage (opened read-write; O_DIRECT when it allows)\n"
	"  --size BYTES   default 8M, whole 2 MiB chunks;  --offset BYTES  default 0\n"
	"  --samples N    per direction and way, default 10 (5..10000)\n"
	"  --socket PATH  the broker (default $PAGEMAP_SOCKET, then the usual sockets)\n"
	"  --json         the whole JSON document instead of a summary\n";

#define CHUNK (2u << 20)

struct iobench {
	struct pm_client *c;
	int pm, file;
	uint8_t *buf;
	size_t size;
	off_t offset;
	int samples;
};

/* One transfer, timed; res filled. */
static int one(struct iobench *x, bool store, unsigned flags, double *t, struct pm_io_result *res)
{
	double t0 = bench_now();
	ssize_t n = store ? pm_store(x->c, x->buf, x->size, x->file, x->offset, flags, res)
			  : pm_load(x->c, x->buf, x->size, x->file, x->offset, flags, res);

	*t = bench_now() - t0;
	if (n < 0)
		return (int)n;
	return (size_t)n == x->size ? 0 : -EIO;
}

static json_object *way_json(const char *kind, size_t size, double *t, int n,
			     const struct pm_io_result *res)
{
	json_object *o = json_object_new_object();
	struct bench_stats st;

	bench_stats(t, n, &st);
	if (!o || json_out_add(o, "kind", json_object_new_string(kind)) ||
	    bench_add_rates(o, size, &st) ||
	    json_out_add(o, "bytes_p2p_dma", json_object_new_uint64(res->bytes_p2p_dma)) ||
	    json_out_add(o, "bytes_dma", json_object_new_uint64(res->bytes_dma)) ||
	    json_out_add(o, "bytes_staged", json_object_new_uint64(res->bytes_bounced)) ||
	    json_out_add(o, "fallback", json_object_new_int(res->fallback)) ||
	    (res->reason[0] && json_out_add(o, "reason", json_object_new_string(res->reason)))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Both ways of one direction, interleaved; the row, or NULL with why. */
static json_object *direction(struct iobench *x, bool store, char *why, size_t wlen)
{
	const char *op = store ? "pm_store" : "pm_load";
	double *td = calloc((size_t)x->samples, sizeof(double));
	double *tb = calloc((size_t)x->samples, sizeof(double));
	struct pm_io_result rd = { 0 }, rb = { 0 };
	json_object *row = NULL, *d = NULL, *b = NULL;
	struct bench_stats sd, sb;
	int r = td && tb ? 0 : -ENOMEM;

	for (int i = 0; !r && i < x->samples; i++) {
		r = one(x, store, 0, &td[i], &rd);
		if (r < 0) {
			snprintf(why, wlen, "%s: %s", op, strerror(-r));
			break;
		}
		/* The baseline failing fails the benchmark: no ratio without it. */
		r = one(x, store, PM_FILE_BOUNCE, &tb[i], &rb);
		if (r < 0)
			snprintf(why, wlen, "baseline %s with PM_FILE_BOUNCE: %s", op,
				 strerror(-r));
	}
	if (!r) {
		bench_stats(td, x->samples, &sd);
		bench_stats(tb, x->samples, &sb);
		d = way_json("direct", x->size, td, x->samples, &rd);
		b = way_json("bounce", x->size, tb, x->samples, &rb);
		row = json_object_new_object();
		/* json_out_add owns what it is given, added or not. */
		if (!d || !b || !row ||
		    json_out_add(row, "op", json_object_new_string(store ? "store" : "load")) ||
		    bench_add_rates(row, x->size, &sd) ||
		    json_out_add(row, "bytes_p2p_dma", json_object_new_uint64(rd.bytes_p2p_dma)) ||
		    json_out_add(row, "bytes_staged", json_object_new_uint64(rd.bytes_bounced)) ||
		    (rd.reason[0] &&
		     json_out_add(row, "reason", json_object_new_string(rd.reason))) ||
		    json_out_add_num(row, "ratio", sb.median / sd.median, 3))
			r = -ENOMEM;
		if (!r) {
			r = json_out_add(row, "direct", d) ? -ENOMEM : 0;
			d = NULL;
		}
		if (!r) {
			r = json_out_add(row, "baseline", b) ? -ENOMEM : 0;
			b = NULL;
		}
		if (r < 0)
			snprintf(why, wlen, "out of memory");
	}
	json_object_put(d);
	json_object_put(b);
	free(td);
	free(tb);
	if (r < 0) {
		json_object_put(row);
		return NULL;
	}
	return row;
}

/* The memory and the file hold the same bytes, those written first. */
static int verify(struct iobench *x, uint64_t want, char *why, size_t wlen)
{
	uint8_t *copy = malloc(x->size);
	ssize_t n;
	int r;

	if (!copy)
		return -ENOMEM;
	n = pread(x->file, copy, x->size, x->offset);
	if (n != (ssize_t)x->size) {
		snprintf(why, wlen, "reading the file back: %s", n < 0 ? strerror(errno) : "short");
		free(copy);
		return -EIO;
	}
	r = bench_checksum(copy, x->size) == want ? 0 : -EIO;
	free(copy);
	if (r < 0) {
		snprintf(why, wlen, "the file does not hold the bytes stored");
		return r;
	}
	/* A CPU read of the memory: the chunks come home from the pool. */
	return bench_verify(x->buf, x->size, CHUNK, 1, want, why, wlen);
}

int pmbench_io(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "pagemap", required_argument, NULL, 'p' },
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 'z' },
		{ "offset", required_argument, NULL, 'o' },
		{ "samples", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct iobench bench = { .pm = -1, .file = -1, .size = 8u << 20, .samples = 10 };
	struct iobench *x = &bench;
	const char *sock = NULL, *spec = NULL, *path = NULL;
	json_object *root = NULL, *results;
	struct migbench_pool pool;
	bool json = false;
	char why[400] = "";
	int ch, r, exit_code = 1;
	uint64_t want;
	char *end;
	long v;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': sock = optarg; break;
		case 'p': spec = optarg; break;
		case 'f': path = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'z':
		case 'o':
			v = (long)bench_parse_size(optarg);
			if ((!v && strcmp(optarg, "0")) || (ch == 'z' && !v) || v % 4096) {
				fprintf(stderr, "pmbench io: --%s: '%s' is not a size in whole "
						"4 KiB pages (bytes, or with K, M, G)\n",
					ch == 'z' ? "size" : "offset", optarg);
				return 2;
			}
			if (ch == 'z')
				x->size = (size_t)v;
			else
				x->offset = (off_t)v;
			break;
		case 's':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 5 || v > 10000) {
				fprintf(stderr, "pmbench io: --samples: '%s' is not 5..10000\n",
					optarg);
				return 2;
			}
			x->samples = (int)v;
			break;
		case ':':
			fprintf(stderr, "pmbench io: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench io: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench io: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!spec || !path) {
		fprintf(stderr, "pmbench io: --pagemap and --file are required\n%s", usage_text);
		return 2;
	}
	x->size = (x->size + CHUNK - 1) / CHUNK * CHUNK;
	x->file = open(path, O_RDWR | O_CLOEXEC);
	if (x->file < 0) {
		fprintf(stderr, "pmbench io: --file: cannot open '%s': %s\n", path, strerror(errno));
		return 1;
	}
	r = pm_connect(sock, &x->c);
	if (r < 0) {
		fprintf(stderr, "pmbench io: cannot connect to %s: %s\n", sock ? sock : "the broker",
			strerror(-r));
		goto out;
	}
	r = migbench_pool_open(x->c, spec, &pool);
	if (r < 0 || pool.fd == PM_FD_SYSTEM) {
		fprintf(stderr, "pmbench io: --pagemap: cannot open '%s': %s\n", spec,
			r < 0 ? strerror(-r) : "system memory is no pagemap");
		goto out;
	}
	x->pm = pool.fd;
	r = pm_alloc(x->c, x->size, PM_ALLOC_CHUNK_SHIFT(21), (void **)&x->buf);
	if (r < 0) {
		fprintf(stderr, "pmbench io: pm_alloc of %zu bytes: %s\n", x->size, strerror(-r));
		goto out;
	}
	want = bench_fill(x->buf, x->size, 1);
	r = pm_migrate(x->c, x->buf, x->size, x->pm, 0);
	if (r < 0) {
		fprintf(stderr, "pmbench io: pm_migrate into %s: %s\n", spec, strerror(-r));
		goto out;
	}
	root = json_object_new_object();
	results = json_object_new_array();
	if (!root || !results ||
	    json_out_add(root, "bench", json_object_new_string("io")) ||
	    json_out_add(root, "pagemap", json_object_new_string(spec)) ||
	    json_out_add(root, "kind", json_object_new_string(migbench_kind_name(pool.kind))) ||
	    json_out_add(root, "file", json_object_new_string(path)) ||
	    json_out_add(root, "size", json_object_new_uint64(x->size)) ||
	    json_out_add(root, "samples", json_object_new_int(x->samples)) ||
	    json_out_add(root, "results", results)) {
		fprintf(stderr, "pmbench io: out of memory\n");
		goto out;
	}
	/* Stores first: the file then holds the memory's bytes, and every
	 * later transfer moves the same bytes back and forth. */
	for (int store = 1; store >= 0; store--) {
		json_object *row = direction(x, store, why, sizeof(why));

		if (!row) {
			fprintf(stderr, "pmbench io: %s\n", why);
			goto out;
		}
		json_object_array_add(results, row);
	}
	r = verify(x, want, why, sizeof(why));
	json_out_add(root, "verified", json_object_new_boolean(r == 0));
	if (r < 0)
		fprintf(stderr, "pmbench io: data check failed: %s\n", why);
	bench_emit(root, json);
	exit_code = r < 0 ? 1 : 0;
out:
	json_object_put(root);
	if (x->buf)
		pm_free(x->c, x->buf);
	if (x->pm >= 0)
		close(x->pm);
	if (x->c)
		pm_disconnect(x->c);
	close(x->file);
	return exit_code;
}
