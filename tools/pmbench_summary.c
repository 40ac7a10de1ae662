/* SPDX-License-Identifier: MIT */
/*
 * pmbench's output: the JSON document with --json, else a summary a person
 * reads, made from the same document so the two never disagree. One line
 * per measurement: what moved where, its median, the baseline's median
 * from the same run and the ratio, and the bytes that were staged.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "pmbench.h"

static const char *str_of(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : NULL;
}

static bool num_of(json_object *o, const char *key, double *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return false;
	*out = json_object_get_double(v);
	return true;
}

static void human_bytes(double v, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, v == (double)(uint64_t)v ? "%.0f %s" : "%.1f %s", v, unit[u]);
}

/* "4.52 GB/s" or "12.3 us" or "7.10 ms": the first median the object has. */
static bool median_of(json_object *o, char *buf, size_t len)
{
	double v;

	if (num_of(o, "median_gbps", &v))
		snprintf(buf, len, "%.2f GB/s", v);
	else if (num_of(o, "median_us", &v))
		snprintf(buf, len, "%.1f us", v);
	else if (num_of(o, "median_ms", &v))
		snprintf(buf, len, "%.2f ms", v);
	else
		return false;
	return true;
}

/* One measurement (an element of pairs, results, legs...) on one line. */
static void print_row(json_object *o, int indent)
{
	const char *src = str_of(o, "src"), *dst = str_of(o, "dst");
	const char *names[] = { "direction", "name", "op", "kind", "order", "stage" };
	json_object *base, *v;
	char med[48], bmed[48], sz[32];
	double x;

	const char *sep = "";

	printf("%*s", indent, "");
	if (src && dst) {
		printf("%s -> %s", src, dst);
		sep = ", ";
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (str_of(o, names[i])) {
			printf("%s%s", sep, str_of(o, names[i]));
			sep = ", ";
		}
	if (num_of(o, "chunk_size", &x)) {
		human_bytes(x, sz, sizeof(sz));
		printf("%s%s chunks", sep, sz);
	}
	if (median_of(o, med, sizeof(med)))
		printf(": %s", med);
	if (json_object_object_get_ex(o, "baseline", &base) &&
	    json_object_is_type(base, json_type_object)) {
		if (median_of(base, bmed, sizeof(bmed)))
			printf(", %s %s", str_of(base, "kind") ? str_of(base, "kind") : "baseline",
			       bmed);
		else if (str_of(base, "kind"))
			printf(", no baseline (%s)", str_of(base, "kind"));
	}
	if (num_of(o, "ratio", &x) && !isnan(x))
		printf(" = %.2fx", x);
	if (num_of(o, "slowdown", &x))
		printf(" = %.1fx the baseline's time", x);
	if (num_of(o, "bytes_staged", &x)) {
		human_bytes(x, sz, sizeof(sz));
		printf(", staged %s", sz);
	}
	if (num_of(o, "bytes_zero_copy", &x) && x > 0) {
		human_bytes(x, sz, sizeof(sz));
		printf(", zero-copy %s", sz);
	}
	if (num_of(o, "bytes_p2p_dma", &x) && x > 0) {
		human_bytes(x, sz, sizeof(sz));
		printf(", P2P DMA %s", sz);
	}
	if (str_of(o, "error"))
		printf(": %s", str_of(o, "error"));
	if (str_of(o, "reason"))
		printf(": %s", str_of(o, "reason"));
	if (json_object_object_get_ex(o, "verified", &v) && !json_object_get_boolean(v))
		printf(" (NOT VERIFIED)");
	printf("\n");
}

static void print_obj(json_object *o, int indent);

static void print_value(const char *key, json_object *v, int indent)
{
	char med[48];

	switch (json_object_get_type(v)) {
	case json_type_array:
		if (!json_object_array_length(v))
			return;
		printf("%*s%s:\n", indent, "", key);
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *e = json_object_array_get_idx(v, i);

			if (json_object_is_type(e, json_type_object))
				print_row(e, indent + 2);
			else
				printf("%*s%s\n", indent + 2, "", json_object_get_string(e));
		}
		return;
	case json_type_object:
		if (median_of(v, med, sizeof(med)) && !json_object_object_get_ex(v, "results", NULL)) {
			printf("%*s%s: ", indent, "", key);
			print_row(v, 0);
			return;
		}
		printf("%*s%s:\n", indent, "", key);
		print_obj(v, indent + 2);
		return;
	case json_type_null:
		return;
	default:
		printf("%*s%s: %s\n", indent, "", key, json_object_get_string(v));
	}
}

static void print_obj(json_object *o, int indent)
{
	json_object_object_foreach(o, key, v) {
		/* The list of pools and the like are for programs. */
		if (!strcmp(key, "pools") || !strcmp(key, "benchmark"))
			continue;
		print_value(key, v, indent);
	}
}

void bench_emit(json_object *root, bool json)
{
	const char *name = str_of(root, "benchmark");

	if (json) {
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	printf("pmbench %s (--json for everything, in JSON)\n", name ? name : "");
	print_obj(root, 2);
	fflush(stdout);
}
