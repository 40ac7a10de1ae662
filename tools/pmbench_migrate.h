/* SPDX-License-Identifier: MIT */
/*
 * pmbench migrate's parts: the command and its JSON (pmbench_migrate.c), the
 * measurements (pmbench_migrate_run.c), the pools (pmbench_pools.c).
 */
#ifndef PAGEMAP_PMBENCH_MIGRATE_H
#define PAGEMAP_PMBENCH_MIGRATE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "client.h"
#include "engine_stats.h"

#define MIGBENCH_MAX_POOLS 8 /* default set: 8 pools are 56 ordered pairs already */
#define MIGBENCH_MAX_PAIRS 32 /* --pair options */
#define MIGBENCH_NAME_MAX (PM_NAME_MAX + PM_REGION_MAX)

/* A place a buffer can be migrated to. */
struct migbench_pool {
	char name[MIGBENCH_NAME_MAX]; /* "system", "node0", "0000:03:00.0/mem" */
	int fd;            /* our pagemap fd, or PM_FD_SYSTEM */
	uint64_t id;       /* pagemap id; 0 for system memory */
	uint32_t kind;     /* enum pagemap_kind; 0 for system memory */
	int node;          /* host NUMA pools: their node; else -1 */
	uint64_t capacity; /* bytes; 0 for system memory */
};

/* "host-numa", "emulated"...; "system" for system memory. */
const char *migbench_kind_name(uint32_t kind);
/* Whether the CPU reads the pool's memory in place (no fault back). */
bool migbench_pool_is_host(const struct migbench_pool *p);

/*
 * Opens the pool named "system", "nodeN" or DEVICE[/REGION] as pmtopo names
 * devices. Returns 0 with *out filled (close it with migbench_pool_close) or
 * -errno from pagemap_open/pagemap_query.
 */
int migbench_pool_open(struct pm_client *c, const char *name, struct migbench_pool *out);
void migbench_pool_close(struct migbench_pool *p);

/*
 * Splits "SRC:DST" where the names may hold colons themselves (BDFs): the one
 * split whose halves are both pool names. -EINVAL when there is none or more
 * than one.
 */
int migbench_split_pair(const char *arg, char *src, char *dst, size_t len);

/*
 * The default pools: system memory, this host's NUMA nodes the broker serves,
 * then every other pool the broker lists for us (pm_list_pools) and, when a
 * topology file is named, the GPU, accelerator and memory devices in it that
 * the broker opens. At most max; what is left out or unusable is named on
 * stderr. Returns the count or -errno.
 */
int migbench_pools_default(struct pm_client *c, const char *topology, uint64_t min_capacity,
			   struct migbench_pool *out, int max);
/* One pair to measure: a -> b, and b -> a too when both (indices into pools). */
struct migbench_job {
	int a, b;
	bool both;
};

/* One direction's samples: seconds per migration, and the broker's counters. */
struct migbench_leg {
	double *pm, *base;
	uint64_t counters[3]; /* bytes direct, bounced, host: summed over the samples */
	bool counters_ok;
	/* What each copy engine did, summed over the samples (PM_OP_ENGINES). */
	struct engine_stats engines;
	bool engines_ok;
};

struct migbench {
	struct pm_client *c;
	struct migbench_pool pools[2 * MIGBENCH_MAX_PAIRS + MIGBENCH_MAX_POOLS];
	int npools;
	struct migbench_job jobs[MIGBENCH_MAX_POOLS * MIGBENCH_MAX_POOLS];
	int njobs;
	size_t size, chunk;
	int samples;
	bool progress, tty; /* --progress; stderr is a terminal */
	uint8_t *buf;       /* the managed buffer (pm_alloc), chunks of chunk bytes */
	uint8_t *plain[2];  /* memcpy baseline: two plain buffers of size bytes */
	uint8_t *mp;        /* move_pages baseline: a plain buffer of size bytes */
	void **mp_pages;    /* its pages, for move_pages() */
	int *mp_node[2];    /* move_pages() targets: [0] to b, [1] back to a */
	int *mp_status;
	void **buf_pages;   /* a sample of buf's pages, to ask their node */
	size_t npages;
	struct migbench_leg leg[2];
	json_object *pairs, *skipped, *errors; /* results, appended to as they come */
	int failures;
};

/* The plain buffers and sample arrays for size and samples. -ENOMEM. */
int migbench_buffers_init(struct migbench *x);
void migbench_buffers_free(struct migbench *x);
/* Measures one pair at the current chunk size into x->pairs, or x->errors. */
void migbench_run_pair(struct migbench *x, const struct migbench_job *j, uint64_t seed);
/* Fault-back latency of pool p at the current chunk size, in order and in a
 * random order: one result each appended to out, or an error in x->errors. */
void migbench_fault_back(struct migbench *x, const struct migbench_pool *p, uint64_t seed,
			 json_object *out);
#endif
