/* SPDX-License-Identifier: MIT */
/*
 * Typed access to the topology file's JSON members for topo_file_read.c:
 * each getter checks presence, JSON type and range, and on a mismatch
 * reports the member's JSON path ("pci[3].link.max_width: ...").
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "topo.h"
#include "topo_file_int.h"

int topo_file_invalid(struct topo_file_rd *rd, const char *path, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return topo_file_fail(rd->ctx, -EINVAL, path, "%s", msg);
}

int topo_file_oom(struct topo_file_rd *rd)
{
	return topo_file_fail(rd->ctx, -ENOMEM, NULL, "out of memory");
}

/* Appends to a path, truncating rather than overflowing; buf may be path. */
static const char *append(char *buf, const char *path, const char *sep, const char *tail,
			  const char *end)
{
	size_t n = strnlen(path, TOPO_FILE_PATHLEN - 1), k;

	memmove(buf, path, n);
	buf[n] = '\0';
	for (const char *parts[] = { sep, tail, end }, **s = parts; s < parts + 3; s++) {
		k = strlen(*s);
		if (k > TOPO_FILE_PATHLEN - 1 - n)
			k = TOPO_FILE_PATHLEN - 1 - n;
		memcpy(buf + n, *s, k);
		n += k;
		buf[n] = '\0';
	}
	return buf;
}

/* "pci[3]" + "parent" -> "pci[3].parent"; top-level keys have no leading dot. */
const char *topo_file_path_key(char *buf, const char *path, const char *key)
{
	return append(buf, path, *path ? "." : "", key, "");
}

const char *topo_file_path_index(char *buf, const char *path, size_t i)
{
	char num[24];

	snprintf(num, sizeof(num), "%zu", i);
	return append(buf, path, "[", num, "]");
}

const char *topo_file_type_name(enum json_type t)
{
	switch (t) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
		return "a number";
	case json_type_int:
		return "an integer";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "?";
}

/* 1: *v holds the member (NULL for an allowed null); 0: absent; <0: error. */
int topo_file_get_member(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, enum json_type want, unsigned flags,
			 struct json_object **v)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *m;
	enum json_type t;

	if (!json_object_object_get_ex(o, key, &m)) {
		if (flags & F_REQ)
			return topo_file_invalid(rd, topo_file_path_key(p, path, key), "missing");
		return 0;
	}
	t = json_object_get_type(m);
	if ((t == json_type_null && (flags & F_NULL)) || t == want ||
	    (want == json_type_double && t == json_type_int)) {
		*v = m;
		return 1;
	}
	return topo_file_invalid(rd, topo_file_path_key(p, path, key), "expected %s%s, got %s",
				 topo_file_type_name(want), flags & F_NULL ? " or null" : "",
				 topo_file_type_name(t));
}

int topo_file_check_keys(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *const *allowed)
{
	char p[TOPO_FILE_PATHLEN];

	json_object_object_foreach(o, key, val) {
		const char *const *a;

		(void)val;
		for (a = allowed; *a && strcmp(*a, key); a++)
			;
		if (!*a)
			return topo_file_invalid(rd, topo_file_path_key(p, path, key),
						 "unknown key");
	}
	return 0;
}

int topo_file_get_int64(struct topo_file_rd *rd, struct json_object *o, const char *path,
			const char *key, unsigned flags, int64_t min, int64_t max, int64_t *out)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	int64_t x;
	int r = topo_file_get_member(rd, o, path, key, json_type_int, flags, &v);

	if (r <= 0)
		return r;
	x = json_object_get_int64(v);
	if (x < min || x > max)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "%" PRId64 " is out of range %" PRId64 "..%" PRId64, x,
					 min, max);
	*out = x;
	return 1;
}

/* An int field: *out untouched when absent. */
int topo_file_get_int(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, int64_t min, int64_t max, int *out)
{
	int64_t x = 0;
	int r = topo_file_get_int64(rd, o, path, key, flags, min, max, &x);

	if (r > 0)
		*out = (int)x;
	return r;
}

int topo_file_get_u64(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, uint64_t max, uint64_t *out)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	uint64_t x;
	int r = topo_file_get_member(rd, o, path, key, json_type_int, flags, &v);

	if (r <= 0)
		return r;
	if (json_object_get_int64(v) < 0)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "must not be negative");
	x = json_object_get_uint64(v);
	if (x > max)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "%" PRIu64 " is out of range 0..%" PRIu64, x, max);
	*out = x;
	return 1;
}

int topo_file_get_bool(struct topo_file_rd *rd, struct json_object *o, const char *path,
		       const char *key, unsigned flags, bool *out)
{
	struct json_object *v;
	int r = topo_file_get_member(rd, o, path, key, json_type_boolean, flags, &v);

	if (r > 0)
		*out = json_object_get_boolean(v);
	return r;
}

/* Finite and not negative: bandwidths. */
int topo_file_get_double(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, unsigned flags, double *out)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	double x;
	int r = topo_file_get_member(rd, o, path, key, json_type_double, flags, &v);

	if (r <= 0)
		return r;
	x = json_object_get_double(v);
	if (!isfinite(x) || x < 0)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "must be a finite number >= 0");
	*out = x;
	return 1;
}

/* A string that fits dst; NUL characters inside would silently cut it short.
 * Never with F_NULL: callers check for null with topo_file_get_member() first. */
int topo_file_get_string(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, unsigned flags, char *dst, size_t cap)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	const char *s;
	size_t len;
	int r = topo_file_get_member(rd, o, path, key, json_type_string, flags, &v);

	if (r <= 0)
		return r;
	s = json_object_get_string(v);
	len = (size_t)json_object_get_string_len(v);
	if (strlen(s) != len)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "contains a NUL character");
	if (len >= cap)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "longer than %zu bytes", cap - 1);
	memcpy(dst, s, len + 1);
	return 1;
}

/* "0x" and 1 to 16 hex digits, at most max. */
int topo_file_get_hex(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, uint64_t max, uint64_t *out)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	const char *s;
	uint64_t x;
	size_t n;
	int r = topo_file_get_member(rd, o, path, key, json_type_string, flags, &v);

	if (r <= 0)
		return r;
	s = json_object_get_string(v);
	n = strlen(s);
	if (n != (size_t)json_object_get_string_len(v) || n < 3 || n > 18 || s[0] != '0' ||
	    (s[1] != 'x' && s[1] != 'X') || strspn(s + 2, "0123456789abcdefABCDEF") != n - 2)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "expected a hex string like \"0x15b3\", got \"%.24s\"", s);
	x = strtoull(s + 2, NULL, 16);
	if (x > max)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "%s is out of range (max 0x%" PRIx64 ")", s, max);
	*out = x;
	return 1;
}

/* A reference to a PCI function already in the graph: *out = its index, -1 for null. */
int topo_file_get_pci_ref(struct topo_file_rd *rd, struct json_object *o, const char *path,
			  const char *key, unsigned flags, int *out)
{
	char p[TOPO_FILE_PATHLEN];
	struct json_object *v;
	const char *s;
	uint32_t dom;
	uint8_t bus, dev, fn;
	int r = topo_file_get_member(rd, o, path, key, json_type_string, flags, &v), i;

	if (r <= 0)
		return r;
	if (!v) {
		*out = -1;
		return 1;
	}
	s = json_object_get_string(v);
	if (strlen(s) != (size_t)json_object_get_string_len(v) ||
	    !topo_parse_bdf(s, true, &dom, &bus, &dev, &fn))
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "not a PCI address (DDDD:BB:DD.F): \"%.32s\"", s);
	i = topo_graph_find_pci(rd->g, dom, bus, dev, fn);
	if (i < 0)
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "no PCI function %04x:%02x:%02x.%x", dom, bus, dev, fn);
	*out = i;
	return 1;
}

/* "" or "0-3,8,10-11": what sysfs cpulist files hold. */
static bool valid_cpulist(const char *s)
{
	if (!*s)
		return true;
	for (;;) {
		unsigned long lo, hi;
		char *e;

		if (*s < '0' || *s > '9')
			return false;
		lo = strtoul(s, &e, 10);
		hi = lo;
		if (*e == '-') {
			if (e[1] < '0' || e[1] > '9')
				return false;
			hi = strtoul(e + 1, &e, 10);
		}
		if (hi < lo)
			return false;
		if (!*e)
			return true;
		if (*e != ',')
			return false;
		s = e + 1;
	}
}

int topo_file_get_cpulist(struct topo_file_rd *rd, struct json_object *o, const char *path,
			  const char *key, char *dst, size_t cap)
{
	char p[TOPO_FILE_PATHLEN];
	int r = topo_file_get_string(rd, o, path, key, 0, dst, cap);

	if (r > 0 && !valid_cpulist(dst))
		return topo_file_invalid(rd, topo_file_path_key(p, path, key),
					 "not a cpulist like \"0-3,8\": \"%s\"", dst);
	return r;
}

int topo_file_get_numa_ref(struct topo_file_rd *rd, struct json_object *o, const char *path,
			   int *out)
{
	char p[TOPO_FILE_PATHLEN];
	int r = topo_file_get_int(rd, o, path, "numa", 0, -1, INT_MAX, out);

	if (r > 0 && *out >= 0 && topo_graph_find_numa(rd->g, *out) < 0)
		return topo_file_invalid(rd, topo_file_path_key(p, path, "numa"), "no NUMA node %d",
					 *out);
	return r;
}

/* Each element of an array member must be an object with only the given keys. */
int topo_file_get_element(struct topo_file_rd *rd, struct json_object *arr, size_t i,
			  const char *path, const char *const *keys, char *ipath,
			  struct json_object **el)
{
	*el = json_object_array_get_idx(arr, i);
	topo_file_path_index(ipath, path, i);
	if (!json_object_is_type(*el, json_type_object))
		return topo_file_invalid(rd, ipath, "expected an object, got %s",
					 topo_file_type_name(json_object_get_type(*el)));
	return topo_file_check_keys(rd, *el, ipath, keys);
}
