/* SPDX-License-Identifier: MIT */
/*
 * The configuration file (docs/pagemapd.md): pools to serve, who may open
 * what, limits. JSON, read strictly: an unknown key is an error, so a typo
 * cannot silently widen access.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "broker.h"

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->linger_ms = 5000;
	snprintf(c->psi_path, sizeof(c->psi_path), "/proc/pressure/memory");
	c->psi_some_avg10 = 20.0;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);

	c->max_sessions = 1024;
	/* One process per GPU rank is common: a node's worth of ranks fits. */
	c->max_sessions_per_uid = 256;
	c->max_handles_per_uid = 1024;
	c->max_allocations_per_session = 4096;
	c->max_allocations_per_uid = 4096;
	/* 88 bytes of chunk table each: 22 MiB of broker memory per uid. */
	c->max_alloc_chunks_per_uid = 1u << 18;
	/* Managed memory is the client's own, but the broker copies into it
	 * and walks it: a uid gets at most the machine's memory. */
	c->max_alloc_bytes_per_uid = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize
							     : 1ull << 40;
	c->max_jobs_per_uid = 256;
	c->min_residency_ms = 20;
	c->max_residency_ms = 1000;
	c->migrate_workers = 4;
	c->gpu_pool_bytes = 4ull << 30;
	c->gpu_pin_bytes = 256ull << 20;
	rdma_conf_defaults(&c->rdma);
}

struct cfg_ctx {
	const char *file;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4))) static int fail(struct cfg_ctx *x, const char *path,
						      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s: %s: %s", x->file, path, msg);
	return -EINVAL;
}

static int check_keys(struct cfg_ctx *x, json_object *o, const char *path,
		      const char *const *keys)
{
	json_object_object_foreach(o, key, val) {
		const char *const *k;

		(void)val;
		for (k = keys; *k && strcmp(*k, key); k++)
			;
		if (!*k)
			return fail(x, path, "unknown key '%s'", key);
	}
	return 0;
}

static int get_string(struct cfg_ctx *x, json_object *o, const char *path, const char *key,
		      char *out, size_t len)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return fail(x, path, "'%s' must be a string", key);
	if ((size_t)json_object_get_string_len(v) >= len)
		return fail(x, path, "'%s' is too long", key);
	snprintf(out, len, "%s", json_object_get_string(v));
	return 1;
}

static int get_int(struct cfg_ctx *x, json_object *o, const char *path, const char *key,
		   int64_t min, int64_t max, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return fail(x, path, "'%s' must be an integer", key);
	*out = json_object_get_int64(v);
	if (*out < min || *out > max)
		return fail(x, path, "'%s' must be %lld..%lld", key, (long long)min, (long long)max);
	return 1;
}

static int read_bars(struct cfg_ctx *x, struct config *c, json_object *arr)
{
	static const char *const keys[] = { "device", "bar", NULL };
	char path[64];

	if (!json_object_is_type(arr, json_type_array))
		return fail(x, "pools.bar", "must be an array");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		struct pool_bar_conf *bc = &c->bars[c->nbars];
		int64_t bar = -1;
		int r;

		snprintf(path, sizeof(path), "pools.bar[%zu]", i);
		if (c->nbars == sizeof(c->bars) / sizeof(c->bars[0]))
			return fail(x, path, "too many BAR pools");
		if (!json_object_is_type(e, json_type_object))
			return fail(x, path, "must be an object");
		if ((r = check_keys(x, e, path, keys)) < 0)
			return r;
		if ((r = get_string(x, e, path, "device", bc->device, sizeof(bc->device))) <= 0)
			return r < 0 ? r : fail(x, path, "'device' is required");
		if ((r = get_int(x, e, path, "bar", 0, 5, &bar)) <= 0)
			return r < 0 ? r : fail(x, path, "'bar' is required");
		bc->bar = (int)bar;
		c->nbars++;
	}
	return 0;
}

static int read_access(struct cfg_ctx *x, struct config *c, json_object *arr)
{
	static const char *const keys[] = { "device", "uid", "gid", "allow", NULL };
	char path[64];

	if (!json_object_is_type(arr, json_type_array))
		return fail(x, "access", "must be an array");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i), *allow;
		struct access_rule *ar = &c->rules[c->nrules];
		int r;

		snprintf(path, sizeof(path), "access[%zu]", i);
		if (c->nrules == sizeof(c->rules) / sizeof(c->rules[0]))
			return fail(x, path, "too many rules");
		if (!json_object_is_type(e, json_type_object))
			return fail(x, path, "must be an object");
		if ((r = check_keys(x, e, path, keys)) < 0)
			return r;
		ar->uid = ar->gid = -1;
		if ((r = get_string(x, e, path, "device", ar->device, sizeof(ar->device))) <= 0)
			return r < 0 ? r : fail(x, path, "'device' is required (\"*\" for all)");
		if ((r = get_int(x, e, path, "uid", 0, UINT32_MAX, &ar->uid)) < 0 ||
		    (r = get_int(x, e, path, "gid", 0, UINT32_MAX, &ar->gid)) < 0)
			return r;
		if (!json_object_object_get_ex(e, "allow", &allow) ||
		    !json_object_is_type(allow, json_type_boolean))
			return fail(x, path, "'allow' (true or false) is required");
		ar->allow = json_object_get_boolean(allow);
		c->nrules++;
	}
	return 0;
}

static int read_rdma(struct cfg_ctx *x, struct config *c, json_object *o,
		     const char *const *keys)
{
	struct rdma_conf *rc = &c->rdma;
	char listen[160] = "", zc[8];
	json_object *peers;
	int64_t v;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return fail(x, "rdma", "must be an object");
	if ((r = check_keys(x, o, "rdma", keys)) < 0 ||
	    (r = get_string(x, o, "rdma", "listen", listen, sizeof(listen))) < 0 ||
	    (r = get_string(x, o, "rdma", "secret_file", rc->secret_file,
			    sizeof(rc->secret_file))) < 0)
		return r;
	if (listen[0] && hostport_parse(listen, rc->listen_host, sizeof(rc->listen_host),
					rc->listen_port, sizeof(rc->listen_port)) < 0)
		return fail(x, "rdma", "'listen' must be HOST:PORT");
	if ((r = get_int(x, o, "rdma", "export_bytes", 1 << 20, INT64_MAX, &v)) < 0)
		return r;
	if (r)
		rc->export_bytes = (uint64_t)v;
	if ((r = get_int(x, o, "rdma", "max_pinned_bytes", 0, INT64_MAX, &v)) < 0)
		return r;
	if (r)
		rc->max_pinned_bytes = (uint64_t)v;
	if ((r = get_int(x, o, "rdma", "transfer_buffers", 1, 256, &v)) < 0)
		return r;
	if (r)
		rc->xfer_bufs = (uint32_t)v;
	if ((r = get_int(x, o, "rdma", "transfer_buffer_bytes", 4096, 1 << 30, &v)) < 0)
		return r;
	if (r)
		rc->xfer_buf_bytes = (uint32_t)v;
	if ((r = get_int(x, o, "rdma", "ack_timeout", 1, 31, &v)) < 0)
		return r;
	if (r)
		rc->ack_timeout = (uint8_t)v;
	if ((r = get_int(x, o, "rdma", "stall_ms", 100, 600000, &v)) < 0)
		return r;
	if (r)
		rc->stall_ms = (uint32_t)v;
	if ((r = get_string(x, o, "rdma", "zero_copy", zc, sizeof(zc))) < 0)
		return r;
	if (r && !strcmp(zc, "off"))
		rc->zero_copy = RDMA_ZC_OFF;
	else if (r && !strcmp(zc, "write"))
		rc->zero_copy = RDMA_ZC_WRITE;
	else if (r && !strcmp(zc, "both"))
		rc->zero_copy = RDMA_ZC_BOTH;
	else if (r)
		return fail(x, "rdma", "'zero_copy' must be \"off\", \"write\" or \"both\"");
	if (!json_object_object_get_ex(o, "peers", &peers))
		return 0;
	if (!json_object_is_type(peers, json_type_array))
		return fail(x, "rdma.peers", "must be an array of \"NAME=HOST:PORT\" strings");
	for (size_t i = 0; i < json_object_array_length(peers); i++) {
		json_object *e = json_object_array_get_idx(peers, i);
		char err[256];

		if (rc->npeers == sizeof(rc->peers) / sizeof(rc->peers[0]))
			return fail(x, "rdma.peers", "at most 16 peers");
		if (!json_object_is_type(e, json_type_string))
			return fail(x, "rdma.peers", "entries must be \"NAME=HOST:PORT\" strings");
		if (peer_conf_parse(json_object_get_string(e), &rc->peers[rc->npeers], err,
				    sizeof(err)) < 0)
			return fail(x, "rdma.peers", "%s", err);
		rc->npeers++;
	}
	return 0;
}

static int read_root(struct cfg_ctx *x, struct config *c, json_object *root)
{
	static const char *const keys[] = { "socket", "topology", "sysfs_root", "state_dir", "linger_ms",
					    "pressure", "pools", "access", "limits", "migration",
					    "rdma", NULL };
	static const char *const rkeys[] = { "listen", "peers", "secret_file", "export_bytes",
					     "max_pinned_bytes", "transfer_buffers",
					     "transfer_buffer_bytes", "ack_timeout", "stall_ms",
					     "zero_copy", NULL };
	static const char *const mkeys[] = { "workers", "min_residency_ms", "max_residency_ms",
					     "gpu_pool_bytes", "gpu_pin_bytes", "gpu_pin_keep",
					     NULL };
	static const char *const pkeys[] = { "psi_path", "some_avg10", "watermark_bytes", NULL };
	static const char *const poolkeys[] = { "bar", NULL };
#define LIMIT(name, lo, hi) \
	{ #name, lo, hi, offsetof(struct config, name), sizeof(((struct config *)0)->name) == 8 }
	static const struct {
		const char *key;
		int64_t min, max;
		size_t off;
		bool wide; /* uint64_t, else uint32_t */
	} limits[] = {
		LIMIT(max_sessions, 1, 1 << 20),
		LIMIT(max_sessions_per_uid, 1, 1 << 20),
		LIMIT(max_handles_per_uid, 1, 1 << 24),
		LIMIT(max_allocations_per_session, 1, 1 << 24),
		LIMIT(max_allocations_per_uid, 1, 1 << 24),
		LIMIT(max_alloc_chunks_per_uid, 1, 1ll << 32),
		LIMIT(max_alloc_bytes_per_uid, PM_CHUNK_MIN, INT64_MAX),
		LIMIT(max_jobs_per_uid, 1, 1 << 20),
		LIMIT(max_fds_per_uid, 16, 1 << 24),
		LIMIT(max_placed_bytes_per_uid, 0, INT64_MAX),
	};
#undef LIMIT
	const char *lkeys[sizeof(limits) / sizeof(limits[0]) + 1] = { NULL };
	json_object *o;
	int64_t v;
	int r;

	if (!json_object_is_type(root, json_type_object))
		return fail(x, "(top)", "must be an object");
	if ((r = check_keys(x, root, "(top)", keys)) < 0 ||
	    (r = get_string(x, root, "(top)", "socket", c->socket_path, sizeof(c->socket_path))) < 0 ||
	    (r = get_string(x, root, "(top)", "topology", c->topology, sizeof(c->topology))) < 0 ||
	    (r = get_string(x, root, "(top)", "sysfs_root", c->sysfs_root, sizeof(c->sysfs_root))) < 0 ||
	    (r = get_string(x, root, "(top)", "state_dir", c->state_dir, sizeof(c->state_dir))) < 0)
		return r;
	if ((r = get_int(x, root, "(top)", "linger_ms", 0, 3600000, &v)) < 0)
		return r;
	if (r)
		c->linger_ms = (int)v;
	if (json_object_object_get_ex(root, "pressure", &o)) {
		json_object *d;

		if (!json_object_is_type(o, json_type_object))
			return fail(x, "pressure", "must be an object");
		if ((r = check_keys(x, o, "pressure", pkeys)) < 0 ||
		    (r = get_string(x, o, "pressure", "psi_path", c->psi_path, sizeof(c->psi_path))) < 0)
			return r;
		if (json_object_object_get_ex(o, "some_avg10", &d)) {
			if (!json_object_is_type(d, json_type_double) &&
			    !json_object_is_type(d, json_type_int))
				return fail(x, "pressure", "'some_avg10' must be a number");
			c->psi_some_avg10 = json_object_get_double(d);
		}
		if ((r = get_int(x, o, "pressure", "watermark_bytes", 0, INT64_MAX, &v)) < 0)
			return r;
		if (r)
			c->reclaim_watermark = (uint64_t)v;
	}
	if (json_object_object_get_ex(root, "pools", &o)) {
		json_object *bars;

		if (!json_object_is_type(o, json_type_object))
			return fail(x, "pools", "must be an object");
		if ((r = check_keys(x, o, "pools", poolkeys)) < 0)
			return r;
		if (json_object_object_get_ex(o, "bar", &bars) && (r = read_bars(x, c, bars)) < 0)
			return r;
	}
	if (json_object_object_get_ex(root, "access", &o) && (r = read_access(x, c, o)) < 0)
		return r;
	if (json_object_object_get_ex(root, "limits", &o)) {
		if (!json_object_is_type(o, json_type_object))
			return fail(x, "limits", "must be an object");
		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
			lkeys[i] = limits[i].key;
		if ((r = check_keys(x, o, "limits", lkeys)) < 0)
			return r;
		for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
			void *field = (char *)c + limits[i].off;

			if ((r = get_int(x, o, "limits", limits[i].key, limits[i].min, limits[i].max,
					 &v)) < 0)
				return r;
			if (r && limits[i].wide)
				*(uint64_t *)field = (uint64_t)v;
			else if (r)
				*(uint32_t *)field = (uint32_t)v;
		}
	}
	if (json_object_object_get_ex(root, "migration", &o)) {
		json_object *v_keep;

		if (!json_object_is_type(o, json_type_object))
			return fail(x, "migration", "must be an object");
		if ((r = check_keys(x, o, "migration", mkeys)) < 0)
			return r;
		if ((r = get_int(x, o, "migration", "workers", 1, 64, &v)) < 0)
			return r;
		if (r)
			c->migrate_workers = (uint32_t)v;
		if ((r = get_int(x, o, "migration", "min_residency_ms", 0, 60000, &v)) < 0)
			return r;
		if (r)
			c->min_residency_ms = (uint32_t)v;
		if ((r = get_int(x, o, "migration", "max_residency_ms", 0, 600000, &v)) < 0)
			return r;
		if (r)
			c->max_residency_ms = (uint32_t)v;
		if ((r = get_int(x, o, "migration", "gpu_pool_bytes", 1 << 20, INT64_MAX, &v)) < 0)
			return r;
		if (r)
			c->gpu_pool_bytes = (uint64_t)v;
		if ((r = get_int(x, o, "migration", "gpu_pin_bytes", 0, INT64_MAX, &v)) < 0)
			return r;
		if (r)
			c->gpu_pin_bytes = (uint64_t)v;
		if (json_object_object_get_ex(o, "gpu_pin_keep", &v_keep)) {
			if (!json_object_is_type(v_keep, json_type_boolean))
				return fail(x, "migration", "'gpu_pin_keep' is true or false");
			c->gpu_pin_keep = json_object_get_boolean(v_keep);
		}
		if (c->max_residency_ms < c->min_residency_ms)
			return fail(x, "migration", "max_residency_ms is below min_residency_ms");
	}
	if (json_object_object_get_ex(root, "rdma", &o) && (r = read_rdma(x, c, o, rkeys)) < 0)
		return r;
	return 0;
}

/* A configuration is a few KiB: anything past this is not one. */
#define CONFIG_MAX (1u << 20)

/* The line of text[off], for a parse error. */
static unsigned line_of(const char *text, size_t off)
{
	unsigned line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

/* Whether anything but white space follows the JSON that ends at off. */
static bool trailing(const char *text, size_t off, size_t len)
{
	for (; off < len; off++)
		if (!text[off] || !strchr(" \t\r\n", text[off]))
			return true;
	return false;
}

/*
 * The file's JSON, or NULL with err naming the file and what is wrong: the
 * errno when it cannot be read, the line where the JSON breaks (json-c's
 * own messages name neither).
 */
static json_object *config_parse(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	struct json_tokener *tok;
	json_object *root = NULL;
	char *text;
	size_t len;

	if (!f) {
		snprintf(err, errlen, "%s: %s (%s)", path, strerror(errno), strerrorname_np(errno));
		return NULL;
	}
	text = malloc(CONFIG_MAX + 1);
	len = text ? fread(text, 1, CONFIG_MAX + 1, f) : 0;
	if (!text || ferror(f))
		snprintf(err, errlen, "%s: %s", path, text ? strerror(errno) : "out of memory");
	else if (len > CONFIG_MAX)
		snprintf(err, errlen, "%s: larger than %u bytes: not a configuration", path,
			 CONFIG_MAX);
	else if (!(tok = json_tokener_new()))
		snprintf(err, errlen, "%s: out of memory", path);
	else {
		root = json_tokener_parse_ex(tok, text, (int)len);
		if (root && trailing(text, json_tokener_get_parse_end(tok), len)) {
			snprintf(err, errlen, "%s: line %u: text after the configuration's object",
				 path, line_of(text, json_tokener_get_parse_end(tok)));
			json_object_put(root);
			root = NULL;
		} else if (!root) {
			enum json_tokener_error e = json_tokener_get_error(tok);

			snprintf(err, errlen, "%s: line %u: not valid JSON: %s", path,
				 line_of(text, json_tokener_get_parse_end(tok)),
				 e == json_tokener_continue ? "it ends too early"
							    : json_tokener_error_desc(e));
		}
		json_tokener_free(tok);
	}
	free(text);
	fclose(f);
	return root;
}

int config_load(struct config *c, const char *path, char *err, size_t errlen)
{
	struct cfg_ctx x = { .file = path, .err = err, .errlen = errlen };
	json_object *root = config_parse(path, err, errlen);
	int r;

	if (!root)
		return -EINVAL;
	r = read_root(&x, c, root);
	json_object_put(root);
	return r;
}

void policy_resolve(struct broker *b)
{
	for (unsigned i = 0; i < b->conf.nrules; i++) {
		struct access_rule *ar = &b->conf.rules[i];
		const char *canon;

		if (!strcmp(ar->device, "*"))
			continue;
		canon = pool_canonical_device(b, ar->device);
		if (!pool_find(b, canon, NULL)) {
			blog(LOG_WARN, "access[%u]: '%s' names no pool here: the rule never matches",
			     i, ar->device);
			continue;
		}
		if (strcmp(canon, ar->device)) {
			blog(LOG_DEBUG, "access[%u]: '%s' is %s", i, ar->device, canon);
			snprintf(ar->device, sizeof(ar->device), "%s", canon);
		}
	}
}

/* The device's own permissions: rw on the sysfs file that maps its memory. */
static bool may_use_file(const char *path, const struct ucred *cred)
{
	struct stat st;

	if (cred->uid == 0)
		return true;
	if (stat(path, &st) < 0)
		return false;
	if (st.st_uid == cred->uid)
		return (st.st_mode & (S_IRUSR | S_IWUSR)) == (S_IRUSR | S_IWUSR);
	if (st.st_gid == cred->gid)
		return (st.st_mode & (S_IRGRP | S_IWGRP)) == (S_IRGRP | S_IWGRP);
	return (st.st_mode & (S_IROTH | S_IWOTH)) == (S_IROTH | S_IWOTH);
}

int policy_check(const struct broker *b, const struct pool *p, const struct ucred *cred)
{
	char path[600];

	/* Explicit rules decide; the first that matches wins. */
	for (unsigned i = 0; i < b->conf.nrules; i++) {
		const struct access_rule *ar = &b->conf.rules[i];

		if ((strcmp(ar->device, "*") && strcmp(ar->device, p->device)) ||
		    (ar->uid >= 0 && (uint32_t)ar->uid != cred->uid) ||
		    (ar->gid >= 0 && (uint32_t)ar->gid != cred->gid))
			continue;
		return ar->allow ? 0 : -EACCES;
	}
	/* Otherwise host memory and emulated pools are everyone's, and a
	 * device's pools are for those who may use the device itself. */
	if (p->ops->kind == PM_KIND_P2PMEM)
		snprintf(path, sizeof(path), "%s/p2pmem/allocate", p->sysfs);
	else if (p->ops->kind == PM_KIND_PCI_BAR)
		snprintf(path, sizeof(path), "%s/resource%d", p->sysfs, p->k.bar.index);
	else
		return 0;
	return may_use_file(path, cred) ? 0 : -EACCES;
}
