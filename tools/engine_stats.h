/* SPDX-License-Identifier: MIT */
/*
 * The broker's copy engines and what each moved (PM_OP_ENGINES): read by
 * pmctl stats and by pmbench around each measurement.
 */
#ifndef PAGEMAP_ENGINE_STATS_H
#define PAGEMAP_ENGINE_STATS_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "client.h"
#include "pagemap_proto.h"

#define ENGINE_STATS_MAX 8

struct engine_stats {
	struct pm_engine_info e[ENGINE_STATS_MAX];
	int n;
};

/* 0 with st filled, or -errno (-EOPNOTSUPP/-EINVAL from a broker without the op). */
int engine_stats_read(struct pm_client *c, struct engine_stats *st);
/* after - before, engine by engine (matched by name). */
void engine_stats_delta(const struct engine_stats *before, const struct engine_stats *after,
			struct engine_stats *out);
/* sum += add, engine by engine (matched by name; new names appended). */
void engine_stats_add(struct engine_stats *sum, const struct engine_stats *add);
/* What the engines did over a leg's samples; ok while every read worked
 * (a broker without PM_OP_ENGINES: none does). Start with { .ok = true }. */
struct engine_leg {
	struct engine_stats sum;
	bool ok;
};
/* {"engines": {"cpu": {"bytes": ...}, ...}, "bytes_zero_copy": N, "bytes_staged": N}
 * added to o, each count divided by div (per sample). 0 or -ENOMEM. */
int engine_stats_json(json_object *o, const struct engine_stats *st, uint64_t div);
#endif
