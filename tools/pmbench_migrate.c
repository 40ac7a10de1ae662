/* SPDX-License-Identifier: MIT */
/*
 * pmbench migrate: pm_migrate throughput between pools (system memory, host
 * NUMA nodes, device pools), each pair in both directions, next to what the
 * kernel or the CPU does with the same bytes in the same run: move_pages()
 * of a plain buffer between the same two nodes, or a single-thread memcpy
 * for pairs with a device pool. Then fault-back latency: the first CPU touch
 * of each chunk that lives in a device pool. This file: the command, which
 * pairs, the JSON around the results (pmbench_migrate_run.c measures).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "json_out.h"
#include "pmbench.h"
#include "pmbench_migrate.h"

static const char usage_text[] =
	"Usage: pmbench migrate [--socket PATH] [--size BYTES] [--chunk-shift S] [--samples N]\n"
	"                       [--pair SRC:DST]... [--topology FILE] [--progress] [--json]\n"
	"pm_migrate throughput between pools vs move_pages()/memcpy, and fault-back latency.\n"
	"  --socket PATH    the broker (default $PAGEMAP_SOCKET, then the usual sockets)\n"
	"  --size BYTES     buffer size, K/M/G suffixes (default 64M)\n"
	"  --chunk-shift S  one chunk size, 1 << S bytes (16..30; default: 16 and 21)\n"
	"  --samples N      timed migrations per direction (10..100000, default 10)\n"
	"  --pair SRC:DST   measure SRC -> DST only (repeatable); names: system, node1,\n"
	"                   0000:03:00.0/mem (default: every pair among system memory, the\n"
	"                   host's nodes and the broker's device pools, both directions)\n"
	"  --topology FILE  also the pools of this topology's devices (the broker lists its own)\n"
	"  --progress       migrate asynchronously, printing progress to stderr every 200 ms\n";

/* Finds or opens the pool name; its index, or -1 after saying why. */
static int pool_index(struct migbench *x, const char *name, const char *pair)
{
	struct migbench_pool p;
	int r = migbench_pool_open(x->c, name, &p);

	if (r < 0) {
		fprintf(stderr, "pmbench migrate: --pair %s: cannot open %s: %s\n", pair, name,
			r == -ENOENT ? "the broker serves no such pool (see pmctl pagemaps, pmtopo)"
				     : strerror(-r));
		return -1;
	}
	for (int i = 0; i < x->npools; i++)
		if (x->pools[i].id == p.id && !strcmp(x->pools[i].name, p.name)) {
			migbench_pool_close(&p);
			return i;
		}
	x->pools[x->npools] = p;
	return x->npools++;
}

static int add_pair(struct migbench *x, const char *arg)
{
	char src[MIGBENCH_NAME_MAX], dst[MIGBENCH_NAME_MAX];
	int a, b;

	migbench_split_pair(arg, src, dst, sizeof(src)); /* checked with the options */
	a = pool_index(x, src, arg);
	b = a < 0 ? -1 : pool_index(x, dst, arg);
	if (b < 0)
		return -1;
	if (a == b) {
		fprintf(stderr, "pmbench migrate: --pair %s: source and destination are one pool\n",
			arg);
		return -1;
	}
	x->jobs[x->njobs++] = (struct migbench_job){ .a = a, .b = b };
	return 0;
}

static void skip(struct migbench *x, const struct migbench_pool *a, const struct migbench_pool *b,
		 const char *why)
{
	json_object *o = json_object_new_object();

	if (o && (json_out_add(o, "src", json_object_new_string(a->name)) ||
		  json_out_add(o, "dst", json_object_new_string(b->name)) ||
		  json_out_add(o, "reason", json_object_new_string(why)))) {
		json_object_put(o);
		return;
	}
	json_out_append(x->skipped, o);
}

/*
 * Why a pair of host pools has no throughput to report, or NULL. System
 * memory is wherever the range's memory policy puts pages, and pm_migrate to
 * a node binds the range to it: after that, "system" is that node, and a
 * move there and back would time one real move and one no-op.
 */
static const char *host_pair_skip(const struct migbench_pool *a, const struct migbench_pool *b)
{
	if (!migbench_pool_is_host(a) || !migbench_pool_is_host(b))
		return NULL;
	if (!a->kind || !b->kind)
		return "system memory and a node: a move to the node binds the range there";
	if (a->node == b->node)
		return "one NUMA node: nothing would move";
	return NULL;
}

static json_object *pools_json(const struct migbench *x)
{
	json_object *arr = json_object_new_array();

	for (int i = 0; arr && i < x->npools; i++) {
		const struct migbench_pool *p = &x->pools[i];
		json_object *o = json_object_new_object();

		if (json_out_append(arr, o) ||
		    json_out_add(o, "name", json_object_new_string(p->name)) ||
		    json_out_add(o, "id", json_object_new_uint64(p->id)) ||
		    json_out_add(o, "kind", json_object_new_string(migbench_kind_name(p->kind))) ||
		    json_out_add(o, "emulated",
				 json_object_new_boolean(p->kind == PAGEMAP_KIND_EMULATED)) ||
		    json_out_add(o, "numa_node", json_object_new_int(p->node)) ||
		    json_out_add(o, "capacity", json_object_new_uint64(p->capacity))) {
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

/* The first device pool measured: where fault-back latency is taken. */
static const struct migbench_pool *fault_pool(const struct migbench *x)
{
	for (int i = 0; i < x->npools; i++)
		if (!migbench_pool_is_host(&x->pools[i]))
			return &x->pools[i];
	return NULL;
}

/* Every pair, per chunk size, then fault-back; results into root. */
static int run_all(struct migbench *x, const unsigned *shifts, int nshifts, json_object *root)
{
	const struct migbench_pool *fp = fault_pool(x);
	json_object *fb = NULL, *fbr = NULL;
	uint64_t seed = 1;
	int r;

	if (fp) {
		fb = json_object_new_object();
		if (json_out_add(root, "fault_back", fb) ||
		    json_out_add(fb, "pool", json_object_new_string(fp->name)) ||
		    json_out_add(fb, "kind", json_object_new_string(migbench_kind_name(fp->kind))) ||
		    json_out_add(fb, "emulated",
				 json_object_new_boolean(fp->kind == PAGEMAP_KIND_EMULATED)) ||
		    json_out_add(fb, "unit", json_object_new_string("microseconds")) ||
		    json_out_add(fb, "results", fbr = json_object_new_array()))
			return -ENOMEM;
	} else if (json_object_object_add(root, "fault_back", NULL)) {
		return -ENOMEM;
	}
	for (int s = 0; s < nshifts; s++) {
		x->chunk = (size_t)1 << shifts[s];
		r = pm_alloc(x->c, x->size, PM_ALLOC_CHUNK_SHIFT(shifts[s]), (void **)&x->buf);
		if (r < 0) {
			fprintf(stderr, "pmbench migrate: pm_alloc %zu bytes in %zu-byte chunks: %s\n",
				x->size, x->chunk, strerror(-r));
			return r;
		}
		for (int j = 0; j < x->njobs; j++) {
			const struct migbench_pool *a = &x->pools[x->jobs[j].a];
			const struct migbench_pool *b = &x->pools[x->jobs[j].b];
			const char *why = host_pair_skip(a, b);

			if (why) {
				if (s == 0)
					skip(x, a, b, why);
				continue;
			}
			migbench_run_pair(x, &x->jobs[j], seed);
			seed += x->size;
		}
		if (fp) {
			migbench_fault_back(x, fp, seed, fbr);
			seed += x->size;
		}
		pm_free(x->c, x->buf);
		x->buf = NULL;
	}
	return 0;
}

int pmbench_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 'z' },
		{ "chunk-shift", required_argument, NULL, 'c' },
		{ "samples", required_argument, NULL, 's' },
		{ "pair", required_argument, NULL, 'p' },
		{ "topology", required_argument, NULL, 't' },
		{ "progress", no_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct migbench bench; /* big (pool table), and one per process */
	struct migbench *x = &bench;
	const char *sock = NULL, *topology = NULL, *pairs[MIGBENCH_MAX_PAIRS];
	char src[MIGBENCH_NAME_MAX], dst[MIGBENCH_NAME_MAX];
	unsigned shifts[2] = { 16, 21 };
	int nshifts = 2, npairs = 0, ch, r, exit_code = 1;
	bool json = false;
	json_object *root = NULL;
	char *end;
	long v;

	x->size = 64u << 20;
	x->samples = 10;
	x->tty = isatty(STDERR_FILENO);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': sock = optarg; break;
		case 't': topology = optarg; break;
		case 'P': x->progress = true; break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case 'z':
			x->size = bench_parse_size(optarg);
			if (!x->size) {
				fprintf(stderr, "pmbench migrate: --size: '%s' is not a size "
						"(bytes, or with K, M, G)\n", optarg);
				return 2;
			}
			break;
		case 'c':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 16 || v > 30) {
				fprintf(stderr, "pmbench migrate: --chunk-shift: '%s' is not 16..30\n",
					optarg);
				return 2;
			}
			shifts[0] = (unsigned)v;
			nshifts = 1;
			break;
		case 's':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || v < 10 || v > 100000) {
				fprintf(stderr, "pmbench migrate: --samples: '%s' is not 10..100000\n",
					optarg);
				return 2;
			}
			x->samples = (int)v;
			break;
		case 'p':
			if (npairs >= MIGBENCH_MAX_PAIRS) {
				fprintf(stderr, "pmbench migrate: at most %d --pair options\n",
					MIGBENCH_MAX_PAIRS);
				return 2;
			}
			/* Names are checked now; whether the broker serves them, once connected. */
			if (migbench_split_pair(optarg, src, dst, sizeof(src)) < 0) {
				fprintf(stderr, "pmbench migrate: --pair %s: not SRC:DST with two "
						"pool names (system, node1, 0000:03:00.0/mem)\n",
					optarg);
				return 2;
			}
			pairs[npairs++] = optarg;
			break;
		case ':':
			fprintf(stderr, "pmbench migrate: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench migrate: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench migrate: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	/* Whole chunks of the largest size, so every sample moves exactly size bytes. */
	{
		size_t big = (size_t)1 << shifts[nshifts - 1];

		x->size = (x->size + big - 1) / big * big;
	}
	r = pm_connect(sock, &x->c);
	if (r < 0) {
		fprintf(stderr, "pmbench migrate: cannot connect to %s: %s%s\n",
			sock ? sock : "the broker", strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ? " (is pagemapd running? "
							     "--socket, $PAGEMAP_SOCKET)" : "");
		return 1;
	}
	if (npairs) {
		migbench_pool_open(x->c, "system", &x->pools[x->npools++]);
		for (int i = 0; i < npairs; i++)
			if (add_pair(x, pairs[i]) < 0)
				goto out;
	} else {
		r = migbench_pools_default(x->c, topology, x->size, x->pools, MIGBENCH_MAX_POOLS);
		if (r < 0) {
			fprintf(stderr, "pmbench migrate: finding pools: %s\n", strerror(-r));
			goto out;
		}
		x->npools = r;
		for (int a = 0; a < x->npools; a++)
			for (int b = a + 1; b < x->npools; b++)
				x->jobs[x->njobs++] =
					(struct migbench_job){ .a = a, .b = b, .both = true };
	}
	if (migbench_buffers_init(x) < 0) {
		fprintf(stderr, "pmbench migrate: %s\n", strerror(ENOMEM));
		goto out;
	}
	root = json_object_new_object();
	if (!root || json_out_add(root, "benchmark", json_object_new_string("migrate")) ||
	    json_out_add(root, "broker", json_object_new_string(sock ? sock : "default")) ||
	    json_out_add(root, "size", json_object_new_uint64(x->size)) ||
	    json_out_add(root, "samples", json_object_new_int(x->samples)) ||
	    json_out_add(root, "progress", json_object_new_boolean(x->progress)) ||
	    json_out_add(root, "unit", json_object_new_string("GB/s (1e9 bytes per second)")) ||
	    json_out_add(root, "pools", pools_json(x)) ||
	    json_out_add(root, "pairs", x->pairs = json_object_new_array()) ||
	    json_out_add(root, "skipped", x->skipped = json_object_new_array()) ||
	    json_out_add(root, "errors", x->errors = json_object_new_array())) {
		fprintf(stderr, "pmbench migrate: %s\n", strerror(ENOMEM));
		goto out;
	}
	r = run_all(x, shifts, nshifts, root);
	if (r < 0)
		goto out;
	bench_emit(root, json);
	exit_code = x->failures ? 1 : 0;
out:
	json_object_put(root);
	if (x->buf)
		pm_free(x->c, x->buf);
	migbench_buffers_free(x);
	for (int i = 0; i < x->npools; i++)
		migbench_pool_close(&x->pools[i]);
	pm_disconnect(x->c);
	return exit_code;
}
