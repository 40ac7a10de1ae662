/* SPDX-License-Identifier: MIT */
/*
 * pmbench load: many clients at once against one broker, each a process
 * with its own connection, managed memory and fault handler, each making a
 * seeded random mix of requests: pagemap open/close, query, alloc/free,
 * advice, small migrations (one or two chunks, to a device pool or home)
 * and CPU faults of chunks left in device pools. Per kind of request: p50,
 * p99 and max latency, and errors. Per client: how long it took, so a
 * starved client shows. The broker's RSS is sampled as it goes.
 *
 * --kill N SIGKILLs N clients at random points; every client's data is
 * checked at its end, and once every client is gone the broker must hold
 * nothing: no session, handle, allocation or pool byte, and no more fds
 * than before the run. Any error, lost byte or leak makes the run fail
 * (exit 1): a load figure with errors is not a figure.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "json_out.h"
#include "pagemap.h"
#include "pmbench.h"

enum kind { K_OPEN_CLOSE, K_QUERY, K_ALLOC_FREE, K_ADVISE, K_MIGRATE, K_FAULT, K_N };
static const char *const kind_names[K_N] = { "open_close", "query", "alloc_free",
					     "madvise", "migrate", "fault" };
/* Out of 100: mostly cheap control requests, as a busy node would see. */
static const unsigned weights[K_N] = { 20, 25, 10, 15, 20, 10 };

#define CHUNK (64u << 10)
#define NCHUNKS 16 /* each client's allocation: 1 MiB */
#define ERR_TEXT 96

/* What a client leaves for the parent, in memory shared across fork. */
struct slot {
	float *lat_us;     /* requests' latencies, in order */
	uint8_t *kind;     /* their kinds */
	uint32_t done;     /* requests made */
	uint32_t errors[K_N];
	uint32_t data_errors;
	double seconds;    /* the client's whole run */
	int finished;      /* 1: ran to the end and exited */
	char first_error[ERR_TEXT];
};

struct opts {
	unsigned clients, requests, kill;
	uint64_t seed;
	const char *socket, *topology;
	bool json;
};

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void fail(struct slot *sl, enum kind k, const char *what, int r)
{
	sl->errors[k]++;
	if (!sl->first_error[0])
		snprintf(sl->first_error, ERR_TEXT, "%s: %s", what, strerror(-r));
}

/* One client's run, in its own process. */
static int client(const struct opts *o, const char *sock, unsigned id, struct slot *sl)
{
	uint64_t seed = o->seed ^ (0x1234567ull * (id + 1)), data_seed = seed;
	struct pm_client *c;
	int dev[2], where[NCHUNKS] = { 0 }; /* 0 home, 1/2 a device pool */
	uint8_t *mem;
	void *a;
	double t0 = bench_now();
	int r;

	r = pm_connect(sock, &c);
	if (r < 0) {
		fail(sl, K_OPEN_CLOSE, "pm_connect", r);
		return 1;
	}
	r = pm_alloc(c, NCHUNKS * CHUNK, PM_ALLOC_CHUNK_SHIFT(16), &a);
	dev[0] = pagemap_open(c, "0000:03:00.0", NULL, 0);
	dev[1] = pagemap_open(c, "0000:04:00.0", NULL, 0);
	if (r < 0 || dev[0] < 0 || dev[1] < 0) {
		fail(sl, K_ALLOC_FREE, "setup", r < 0 ? r : dev[0] < 0 ? dev[0] : dev[1]);
		return 1;
	}
	mem = a;
	bench_fill(mem, NCHUNKS * CHUNK, data_seed);
	for (unsigned n = 0; n < o->requests; n++) {
		unsigned pick = (unsigned)(rnd(&seed) % 100), i = (unsigned)(rnd(&seed) % NCHUNKS);
		enum kind k = K_OPEN_CLOSE;
		struct pagemap_info info;
		double t;
		void *b;
		int fd;

		for (unsigned acc = weights[0]; pick >= acc; acc += weights[++k])
			;
		t = bench_now();
		switch (k) {
		case K_OPEN_CLOSE:
			fd = pagemap_open(c, "node0", NULL, 0);
			if (fd < 0)
				fail(sl, k, "pagemap_open", fd);
			else
				close(fd);
			break;
		case K_QUERY:
			r = pagemap_query(dev[i & 1], &info);
			if (r < 0)
				fail(sl, k, "pagemap_query", r);
			break;
		case K_ALLOC_FREE:
			r = pm_alloc(c, 4 * CHUNK, PM_ALLOC_CHUNK_SHIFT(16), &b);
			if (r == 0)
				r = pm_free(c, b);
			if (r < 0)
				fail(sl, k, "pm_alloc/pm_free", r);
			break;
		case K_ADVISE:
			r = pm_madvise(c, mem + i * CHUNK, CHUNK,
				       i & 2 ? PM_ADV_PREFERRED_LOCATION : PM_ADV_UNSET_PREFERRED_LOCATION,
				       i & 2 ? dev[i & 1] : PM_FD_SYSTEM);
			if (r < 0)
				fail(sl, k, "pm_madvise", r);
			break;
		case K_MIGRATE: {
			unsigned to = (unsigned)(rnd(&seed) % 3), len = i + 1 < NCHUNKS ? 2 : 1;

			r = pm_migrate(c, mem + i * CHUNK, len * CHUNK, to ? dev[to - 1] : PM_FD_SYSTEM,
				       0);
			if (r < 0)
				fail(sl, k, "pm_migrate", r);
			else
				for (unsigned j = i; j < i + len; j++)
					where[j] = (int)to;
			break;
		}
		case K_FAULT:
			/* The first chunk found away is touched: a fault brings it home. */
			for (unsigned j = 0; j < NCHUNKS; j++, i = (i + 1) % NCHUNKS)
				if (where[i])
					break;
			t = bench_now();
			(void)*(volatile uint64_t *)(mem + i * CHUNK + 8 * (n % (CHUNK / 8)));
			where[i] = 0;
			break;
		case K_N:
			break;
		}
		sl->lat_us[n] = (float)((bench_now() - t) * 1e6);
		sl->kind[n] = (uint8_t)k;
		sl->done = n + 1;
	}
	/* Everything comes home and must be what was written. */
	r = pm_migrate(c, mem, NCHUNKS * CHUNK, PM_FD_SYSTEM, 0);
	if (r < 0)
		fail(sl, K_MIGRATE, "pm_migrate home", r);
	{
		uint8_t *want = malloc(NCHUNKS * CHUNK);

		if (want) {
			bench_fill(want, NCHUNKS * CHUNK, data_seed);
			if (memcmp(want, mem, NCHUNKS * CHUNK))
				sl->data_errors++;
			free(want);
		}
	}
	close(dev[0]);
	close(dev[1]);
	pm_free(c, a);
	pm_disconnect(c);
	sl->seconds = bench_now() - t0;
	sl->finished = 1;
	return 0;
}

/* VmRSS or VmHWM of pid in KiB, 0 when unknown. */
static long proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			v = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return v;
}

/* Open fds of pid, or -1. */
static int proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Client i's slot in the shared area: the slot, then its latencies and kinds. */
static struct slot *slot_of(uint8_t *shm, size_t per, unsigned i)
{
	return (struct slot *)(shm + per * i);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fputs("Usage: pmbench load [--clients N] [--requests N] [--kill N] [--seed S]\n"
	      "                    [--socket PATH | --topology FILE] [--json]\n"
	      "  N client processes (default 256), each making N requests (default 10000) of a\n"
	      "  random mix; --kill N SIGKILLs N of them at random points. Without --socket a\n"
	      "  broker of its own serves an EMULATED machine (--topology, default the QEMU\n"
	      "  test machine) with per-uid limits raised for the client count. A summary\n"
	      "  (p50/p99 per request kind, errors, RSS, what the broker still holds) by\n"
	      "  default; --json: the whole JSON document. Exit 1 on any error or leak.\n",
	      f);
}

/* The QEMU test machine's topology: from the source tree ($PAGEMAP_SOURCE_ROOT
 * or beside the build tree), else where an install keeps it. */
static const char *default_topology(char *buf, size_t len)
{
	const char *root = getenv("PAGEMAP_SOURCE_ROOT");
	char dir[PATH_MAX];

	if (root && *root) {
		snprintf(buf, len, "%s/examples/topologies/qemu-pcie.json", root);
		return buf;
	}
	bench_self_dir(dir, sizeof(dir));
	snprintf(buf, len, "%s/../../examples/topologies/qemu-pcie.json", dir);
	if (access(buf, R_OK) < 0)
		snprintf(buf, len, "%s/topologies/qemu-pcie.json", PAGEMAP_DATADIR);
	return buf;
}

int pmbench_load(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "clients", required_argument, NULL, 'c' }, { "requests", required_argument, NULL, 'n' },
		{ "kill", required_argument, NULL, 'k' },    { "seed", required_argument, NULL, 'S' },
		{ "socket", required_argument, NULL, 's' },  { "topology", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },          { "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct opts o = { .clients = 256, .requests = 10000, .seed = 1 };
	/* Pagemaps left unused go soon after the run: what is still open then
	 * is a leak. */
	struct bench_broker bp = { .linger_ms = 100 };
	struct pm_stats_reply st = { 0 };
	struct pm_client *adm = NULL;
	char topo[PATH_MAX + 64], conf[1024];
	const char *sock;
	pid_t *pids;
	size_t per;
	uint8_t *shm;
	long rss0 = 0, rss_peak = 0, rss_end = 0;
	int fds0 = -1, fds_end = -1, c, killed = 0, unfinished = 0, ret = 0;
	double t0, wall;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		char *end = NULL;
		unsigned long v = optarg ? strtoul(optarg, &end, 10) : 0;

		if (optarg && (*end || !*optarg)) {
			fprintf(stderr, "pmbench load: '%s' is not a number\n", optarg);
			return 2;
		}
		switch (c) {
		case 'c': o.clients = (unsigned)v; break;
		case 'n': o.requests = (unsigned)v; break;
		case 'k': o.kill = (unsigned)v; break;
		case 'S': o.seed = v; break;
		case 's': o.socket = optarg; break;
		case 't': o.topology = optarg; break;
		case 'j': o.json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o.clients || o.clients > 4096 || !o.requests || o.requests > 1000000 ||
	    o.kill > o.clients) {
		fprintf(stderr, "pmbench load: --clients 1..4096, --requests 1..1000000, "
				"--kill 0..clients\n");
		return 2;
	}
	/* Limits for this many clients of one uid; the defaults are for many uids. */
	snprintf(conf, sizeof(conf),
		 "{\"pressure\": {\"psi_path\": \"\"}, \"limits\": {\"max_sessions\": %u,"
		 " \"max_sessions_per_uid\": %u, \"max_handles_per_uid\": %u,"
		 " \"max_allocations_per_uid\": %u, \"max_jobs_per_uid\": %u}}\n",
		 o.clients + 16, o.clients + 16, 4 * o.clients + 16, 4 * o.clients + 16,
		 4 * o.clients + 16);
	if (o.socket) {
		sock = o.socket;
		if (pm_connect(sock, &adm) < 0) {
			fprintf(stderr, "pmbench load: cannot connect to %s\n", sock);
			return 1;
		}
	} else {
		if (bench_broker_start(&bp, "load", -1, conf,
				       o.topology ? o.topology : default_topology(topo, sizeof(topo)),
				       &adm) < 0)
			return 1;
		sock = bp.sock;
		rss0 = proc_kib(bp.pid, "VmRSS:");
		fds0 = proc_fds(bp.pid);
	}
	/* Each client's slot, then its latencies and kinds; slots 64-aligned. */
	per = (sizeof(struct slot) + (size_t)o.requests * (sizeof(float) + 1) + 63) & ~(size_t)63;
	shm = mmap(NULL, per * o.clients, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1,
		   0);
	pids = calloc(o.clients, sizeof(*pids));
	if (shm == MAP_FAILED || !pids) {
		fprintf(stderr, "pmbench load: out of memory\n");
		return 1;
	}
	t0 = bench_now();
	fflush(stdout);
	for (unsigned i = 0; i < o.clients; i++) {
		struct slot *sl = slot_of(shm, per, i);

		/* Set before the fork: the child and this process see the same. */
		sl->lat_us = (float *)(sl + 1);
		sl->kind = (uint8_t *)(sl->lat_us + o.requests);
		pids[i] = fork();
		if (pids[i] == 0)
			_exit(client(&o, sock, i, sl));
		if (pids[i] < 0) {
			fprintf(stderr, "pmbench load: fork: %s\n", strerror(errno));
			return 1;
		}
	}
	/* Kills at random points, the RSS sampled meanwhile. */
	{
		uint64_t s = o.seed * 77 + 5;
		unsigned left = o.kill, alive = o.clients;

		while (alive) {
			struct timespec ts = { 0, 20 * 1000 * 1000 };
			int status;
			pid_t p;

			while ((p = waitpid(-1, &status, WNOHANG)) > 0)
				alive--;
			if (bp.pid) {
				long r = proc_kib(bp.pid, "VmRSS:");

				rss_peak = r > rss_peak ? r : rss_peak;
			}
			if (left && rnd(&s) % 2 == 0) {
				unsigned v = (unsigned)(rnd(&s) % o.clients);
				struct slot *sl = slot_of(shm, per, v);

				if (!sl->finished && sl->done > 0 && kill(pids[v], SIGKILL) == 0) {
					sl->finished = -1;
					killed++;
					left--;
				}
			}
			if (alive)
				nanosleep(&ts, NULL);
		}
	}
	wall = bench_now() - t0;

	/* Every client gone: the broker holds nothing of theirs. */
	for (int i = 0; i < 300; i++) {
		if (pm_client_call(adm, PM_OP_STATS, NULL, 0, &st.sessions,
				   sizeof(st) - sizeof(st.r), NULL, NULL) < 0)
			break;
		if (st.sessions <= 1 && !st.handles && !st.allocations)
			break;
		usleep(10000);
	}
	if (bp.pid) {
		for (int i = 0; i < 200 && (fds_end = proc_fds(bp.pid)) != fds0; i++)
			usleep(10000);
		rss_end = proc_kib(bp.pid, "VmRSS:");
	}

	{
		json_object *root = json_object_new_object(), *kinds = json_object_new_object();
		json_object *inv = json_object_new_object();
		uint64_t total = 0, errors = 0, data_errors = 0;
		double *client_s = calloc(o.clients, sizeof(double)), slowest = 0;
		float *lat = malloc((size_t)o.clients * o.requests * sizeof(float));
		unsigned nc = 0;
		const char *first = NULL;

		for (int k = 0; k < K_N && lat; k++) {
			json_object *ko = json_object_new_object();
			size_t n = 0;
			uint64_t kerr = 0;

			for (unsigned i = 0; i < o.clients; i++) {
				const struct slot *sl = slot_of(shm, per, i);

				for (uint32_t r = 0; r < sl->done; r++)
					if (sl->kind[r] == k)
						lat[n++] = sl->lat_us[r];
				kerr += sl->errors[k];
			}
			qsort(lat, n, sizeof(float), cmp_float);
			json_object_object_add(ko, "requests", json_object_new_int64((int64_t)n));
			json_object_object_add(ko, "errors", json_object_new_int64((int64_t)kerr));
			json_out_add_num(ko, "p50_us", n ? lat[n / 2] : NAN, 1);
			json_out_add_num(ko, "p99_us", n ? lat[(size_t)((double)(n - 1) * 0.99)] : NAN, 1);
			json_out_add_num(ko, "max_us", n ? lat[n - 1] : NAN, 1);
			json_object_object_add(kinds, kind_names[k], ko);
			total += n;
			errors += kerr;
		}
		for (unsigned i = 0; i < o.clients; i++) {
			const struct slot *sl = slot_of(shm, per, i);

			data_errors += sl->data_errors;
			if (sl->finished == 1 && client_s) {
				client_s[nc++] = sl->seconds;
				slowest = sl->seconds > slowest ? sl->seconds : slowest;
			} else if (sl->finished == 0) {
				unfinished++;
			}
			if (!first && sl->first_error[0])
				first = sl->first_error;
		}
		json_object_object_add(root, "benchmark", json_object_new_string("load"));
		json_object_object_add(root, "broker",
				       json_object_new_string(o.socket ? o.socket : "spawned, EMULATED"));
		json_object_object_add(root, "clients", json_object_new_int((int)o.clients));
		json_object_object_add(root, "requests_per_client", json_object_new_int((int)o.requests));
		json_object_object_add(root, "killed", json_object_new_int(killed));
		json_object_object_add(root, "requests", json_object_new_int64((int64_t)total));
		json_object_object_add(root, "errors", json_object_new_int64((int64_t)errors));
		if (first)
			json_object_object_add(root, "first_error", json_object_new_string(first));
		json_object_object_add(root, "data_errors", json_object_new_int64((int64_t)data_errors));
		json_out_add_num(root, "wall_s", wall, 3);
		json_out_add_num(root, "requests_per_s", (double)total / wall, 3);
		json_object_object_add(root, "kinds", kinds);
		{
			/* Starvation: the slowest client against the median one. */
			struct bench_stats cs = { 0 };
			double med;

			bench_stats(client_s, (int)nc, &cs);
			med = nc ? cs.median : NAN;
			json_out_add_num(root, "client_median_s", med, 3);
			json_out_add_num(root, "client_slowest_s", nc ? slowest : NAN, 3);
			json_out_add_num(root, "slowest_over_median", nc && med > 0 ? slowest / med : NAN, 3);
		}
		json_object_object_add(root, "clients_unfinished", json_object_new_int(unfinished));
		if (bp.pid) {
			json_object *rss = json_object_new_object(), *fds = json_object_new_object();

			json_object_object_add(rss, "start_kib", json_object_new_int64(rss0));
			json_object_object_add(rss, "peak_kib", json_object_new_int64(rss_peak));
			json_object_object_add(rss, "end_kib", json_object_new_int64(rss_end));
			json_object_object_add(root, "broker_rss", rss);
			json_object_object_add(fds, "start", json_object_new_int(fds0));
			json_object_object_add(fds, "end", json_object_new_int(fds_end));
			json_object_object_add(root, "broker_fds", fds);
		}
		json_object_object_add(inv, "sessions_left",
				       json_object_new_int64((int64_t)st.sessions - 1));
		json_object_object_add(inv, "handles_left", json_object_new_int64((int64_t)st.handles));
		json_object_object_add(inv, "allocations_left",
				       json_object_new_int64((int64_t)st.allocations));
		json_object_object_add(root, "after", inv);
		bench_emit(root, o.json);
		if (errors || data_errors || unfinished || st.sessions > 1 || st.handles ||
		    st.allocations || (bp.pid && fds_end != fds0))
			ret = 1;
		json_object_put(root);
		free(client_s);
		free(lat);
	}
	pm_disconnect(adm);
	bench_broker_stop(&bp);
	munmap(shm, per * o.clients);
	free(pids);
	return ret;
}
