/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include "engine_stats.h"
#include "json_out.h"

int engine_stats_read(struct pm_client *c, struct engine_stats *st)
{
	uint8_t buf[sizeof(struct pm_list_reply) + ENGINE_STATS_MAX * sizeof(struct pm_engine_info)];
	const size_t head = sizeof(struct pm_list_reply) - sizeof(struct pm_reply);
	uint32_t count;
	size_t len = 0;
	int r = pm_client_call(c, PM_OP_ENGINES, NULL, 0, buf, sizeof(buf), &len, NULL);

	if (r < 0)
		return r;
	if (len < head)
		return -EPROTO;
	memcpy(&count, buf, sizeof(count));
	if ((uint32_t)r != count || count > ENGINE_STATS_MAX ||
	    len != head + (size_t)count * sizeof(struct pm_engine_info))
		return -EPROTO;
	st->n = (int)count;
	for (int i = 0; i < st->n; i++) {
		/* Records come unaligned and untrusted: copied out, names ended. */
		memcpy(&st->e[i], buf + head + (size_t)i * sizeof(st->e[i]), sizeof(st->e[i]));
		st->e[i].name[sizeof(st->e[i].name) - 1] = '\0';
	}
	return 0;
}

void engine_stats_delta(const struct engine_stats *before, const struct engine_stats *after,
			struct engine_stats *out)
{
	*out = *after;
	for (int i = 0; i < out->n; i++) {
		struct pm_engine_info *o = &out->e[i];

		for (int k = 0; k < before->n; k++) {
			const struct pm_engine_info *b = &before->e[k];

			if (strcmp(b->name, o->name))
				continue;
			o->bytes -= b->bytes;
			o->bytes_zero_copy -= b->bytes_zero_copy;
			o->bytes_staged -= b->bytes_staged;
			o->bytes_p2p_dma -= b->bytes_p2p_dma;
			o->copies -= b->copies;
			o->failed -= b->failed;
			o->busy_ns -= b->busy_ns;
		}
	}
}

void engine_stats_add(struct engine_stats *sum, const struct engine_stats *add)
{
	for (int i = 0; i < add->n; i++) {
		const struct pm_engine_info *a = &add->e[i];
		struct pm_engine_info *o = NULL;

		for (int k = 0; k < sum->n && !o; k++)
			if (!strcmp(sum->e[k].name, a->name))
				o = &sum->e[k];
		if (!o) {
			if (sum->n == ENGINE_STATS_MAX)
				continue;
			o = &sum->e[sum->n++];
			*o = *a;
			continue;
		}
		o->bytes += a->bytes;
		o->bytes_zero_copy += a->bytes_zero_copy;
		o->bytes_staged += a->bytes_staged;
		o->bytes_p2p_dma += a->bytes_p2p_dma;
		o->copies += a->copies;
		o->failed += a->failed;
		o->busy_ns += a->busy_ns;
	}
}

int engine_stats_json(json_object *o, const struct engine_stats *st, uint64_t div)
{
	json_object *engines = json_object_new_object();
	uint64_t zc = 0, staged = 0, p2p = 0;

	if (!div)
		div = 1;
	if (json_out_add(o, "engines", engines))
		return -ENOMEM;
	for (int i = 0; i < st->n; i++) {
		const struct pm_engine_info *e = &st->e[i];
		json_object *x = json_object_new_object();

		zc += e->bytes_zero_copy;
		staged += e->bytes_staged;
		p2p += e->bytes_p2p_dma;
		if (json_out_add(engines, e->name, x) ||
		    json_out_add(x, "bytes", json_object_new_uint64(e->bytes / div)) ||
		    json_out_add(x, "bytes_zero_copy",
				 json_object_new_uint64(e->bytes_zero_copy / div)) ||
		    json_out_add(x, "bytes_staged", json_object_new_uint64(e->bytes_staged / div)) ||
		    json_out_add(x, "bytes_p2p_dma",
				 json_object_new_uint64(e->bytes_p2p_dma / div)) ||
		    json_out_add(x, "copies", json_object_new_uint64(e->copies / div)) ||
		    json_out_add(x, "failed", json_object_new_uint64(e->failed / div)))
			return -ENOMEM;
	}
	if (json_out_add(o, "bytes_zero_copy", json_object_new_uint64(zc / div)) ||
	    json_out_add(o, "bytes_staged", json_object_new_uint64(staged / div)) ||
	    json_out_add(o, "bytes_p2p_dma", json_object_new_uint64(p2p / div)))
		return -ENOMEM;
	return 0;
}
