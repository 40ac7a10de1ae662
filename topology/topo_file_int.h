/* SPDX-License-Identifier: MIT */
/*
 * Private to topo_file*.c: the pieces the topology file's reader
 * (topo_file_read.c), writer (topo_file_write.c) and entry points
 * (topo_file.c) share. The format itself is docs/topology-format.md.
 */
#ifndef PAGEMAP_TOPO_FILE_INT_H
#define PAGEMAP_TOPO_FILE_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "topo.h"

#define TOPO_FILE_FORMAT "pagemap-topology"
#define TOPO_FILE_VERSION 1

/* Where a load reports what went wrong. */
struct topo_file_ctx {
	const char *name; /* file name (or "<string>") leading every message */
	char *err;        /* may be NULL */
	size_t errlen;
};

/* Writes "NAME: PATH: MESSAGE" (or "NAME: MESSAGE" when path is NULL or
 * empty) into ctx->err and returns rc, so callers can `return topo_file_fail(...)`. */
int topo_file_fail(struct topo_file_ctx *ctx, int rc, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Builds a finalized graph from a parsed document. *out is set only on success. */
int topo_file_from_json(struct topo_file_ctx *ctx, struct json_object *root,
			struct topo_graph **out);

/* Name tables both directions use. */
const char *topo_file_port_state_name(int state);   /* "ACTIVE"; "unknown" out of range */
int topo_file_port_state_parse(const char *name);    /* -1 when not a known name */
const char *topo_file_fabric_type_name(enum topo_fabric_type t); /* NULL when invalid */
int topo_file_fabric_type_parse(const char *name);  /* -1 when not a known name */

/* ---- topo_file_field.c: typed JSON member access for the reader ---- */

#define TOPO_FILE_PATHLEN 160 /* a JSON path in a message: "pci[12].bars[1].size" */

/* topo_file_get_*() flags */
#define F_REQ 1u  /* absent is an error */
#define F_NULL 2u /* JSON null is allowed (and means "none") */

struct topo_file_rd {
	struct topo_file_ctx *ctx;
	struct topo_graph *g;
	bool *hb_explicit; /* per pci[]: hostbridge given, not inherited */
};

/* Report a bad value at path; return -EINVAL (or -ENOMEM). */
int topo_file_invalid(struct topo_file_rd *rd, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int topo_file_oom(struct topo_file_rd *rd);
/* Build "path.key" / "path[i]" into buf (TOPO_FILE_PATHLEN bytes); buf may be path. */
const char *topo_file_path_key(char *buf, const char *path, const char *key);
const char *topo_file_path_index(char *buf, const char *path, size_t i);
const char *topo_file_type_name(enum json_type t);

/*
 * The getters return 1 when the member is there (and *out is set), 0 when it
 * is absent and not F_REQ (*out untouched, so callers preset the default),
 * or a negative errno after reporting why.
 */
int topo_file_get_member(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, enum json_type want, unsigned flags,
			 struct json_object **v);
int topo_file_check_keys(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *const *allowed);
int topo_file_get_int64(struct topo_file_rd *rd, struct json_object *o, const char *path,
			const char *key, unsigned flags, int64_t min, int64_t max, int64_t *out);
int topo_file_get_int(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, int64_t min, int64_t max, int *out);
int topo_file_get_u64(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, uint64_t max, uint64_t *out);
int topo_file_get_bool(struct topo_file_rd *rd, struct json_object *o, const char *path,
		       const char *key, unsigned flags, bool *out);
/* Finite and >= 0; integers accepted. */
int topo_file_get_double(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, unsigned flags, double *out);
/* Fits cap with its NUL; never F_NULL (check for null with get_member first). */
int topo_file_get_string(struct topo_file_rd *rd, struct json_object *o, const char *path,
			 const char *key, unsigned flags, char *dst, size_t cap);
/* "0x" and 1 to 16 hex digits, at most max. */
int topo_file_get_hex(struct topo_file_rd *rd, struct json_object *o, const char *path,
		      const char *key, unsigned flags, uint64_t max, uint64_t *out);
/* A BDF naming a function already in rd->g: *out its index, -1 for null. */
int topo_file_get_pci_ref(struct topo_file_rd *rd, struct json_object *o, const char *path,
			  const char *key, unsigned flags, int *out);
int topo_file_get_cpulist(struct topo_file_rd *rd, struct json_object *o, const char *path,
			  const char *key, char *dst, size_t cap);
/* Optional "numa": -1 or the id of a node in rd->g. */
int topo_file_get_numa_ref(struct topo_file_rd *rd, struct json_object *o, const char *path,
			   int *out);
/* arr[i] as an object with only the given keys; its path goes to ipath. */
int topo_file_get_element(struct topo_file_rd *rd, struct json_object *arr, size_t i,
			  const char *path, const char *const *keys, char *ipath,
			  struct json_object **el);
/* "DDDD:BB:DD.F" or lspci's "BB:DD.F"; "pciDDDD:BB". */

#endif
