/* SPDX-License-Identifier: MIT */
/*
 * The JSON topology file: entry points, the parse with line:column errors and
 * the canonical printer. Reading the document into a graph is
 * topo_file_read.c, building it from a graph topo_file_write.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "topo.h"
#include "topo_file_int.h"

/* A topology file of a very large machine is a few MiB; refuse what cannot be one. */
#define MAX_FILE_SIZE (64u << 20)
/* Containers of scalars print on one line when they fit in this many columns. */
#define INLINE_COLUMNS 100

int topo_file_fail(struct topo_file_ctx *ctx, int rc, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!ctx->err || !ctx->errlen)
		return rc;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (path && *path)
		snprintf(ctx->err, ctx->errlen, "%s: %s: %s", ctx->name, path, msg);
	else
		snprintf(ctx->err, ctx->errlen, "%s: %s", ctx->name, msg);
	return rc;
}

static const char *const port_states[] = {
	/* IBV_PORT_* numbering; 0 (IBV_PORT_NOP) is never a real state. */
	[1] = "DOWN", [2] = "INIT", [3] = "ARMED", [4] = "ACTIVE", [5] = "ACTIVE_DEFER",
};

const char *topo_file_port_state_name(int state)
{
	if (state > 0 && (size_t)state < sizeof(port_states) / sizeof(port_states[0]))
		return port_states[state];
	return "unknown";
}

int topo_file_port_state_parse(const char *name)
{
	if (!strcmp(name, "unknown"))
		return 0;
	for (size_t i = 1; i < sizeof(port_states) / sizeof(port_states[0]); i++)
		if (!strcmp(name, port_states[i]))
			return (int)i;
	return -1;
}

const char *topo_file_fabric_type_name(enum topo_fabric_type t)
{
	switch (t) {
	case TOPO_FABRIC_NVLINK:
		return "nvlink";
	case TOPO_FABRIC_XGMI:
		return "xgmi";
	}
	return NULL;
}

int topo_file_fabric_type_parse(const char *name)
{
	if (!strcmp(name, "nvlink"))
		return TOPO_FABRIC_NVLINK;
	if (!strcmp(name, "xgmi"))
		return TOPO_FABRIC_XGMI;
	return -1;
}

/* ---- parsing ---- */

static void line_col(const char *s, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && s[i]; i++) {
		if (s[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* Syntax errors read like a compiler's: "NAME:LINE:COL: MESSAGE". */
static int syntax_error(struct topo_file_ctx *ctx, const char *json, size_t off, const char *what)
{
	unsigned line, col;

	line_col(json, off, &line, &col);
	if (ctx->err && ctx->errlen)
		snprintf(ctx->err, ctx->errlen, "%s:%u:%u: %s", ctx->name, line, col, what);
	return -EINVAL;
}

static int parse_text(struct topo_file_ctx *ctx, const char *json, size_t len,
		      struct topo_graph **out)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	size_t end;
	int r;

	/* The tokener takes an int length. */
	if (len > MAX_FILE_SIZE)
		return topo_file_fail(ctx, -EINVAL, NULL, "larger than %u MiB",
				      MAX_FILE_SIZE >> 20);
	if (memchr(json, '\0', len))
		return topo_file_fail(ctx, -EINVAL, NULL, "contains a NUL byte");
	tok = json_tokener_new();
	if (!tok)
		return topo_file_fail(ctx, -ENOMEM, NULL, "out of memory");
	/* Strict: no trailing commas or garbage after the document. */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, json, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!root) {
		/* A document that stops early only says "continue": name the real problem. */
		const char *what = jerr == json_tokener_continue ? "unexpected end of data" :
			jerr == json_tokener_success ? "not a JSON document" :
							 json_tokener_error_desc(jerr);

		if (jerr == json_tokener_continue || jerr == json_tokener_success)
			end = len;
		return syntax_error(ctx, json, end, what);
	}
	/* Strict mode already rejects most trailing data; this catches whitespace-less ends. */
	for (size_t i = end; i < len; i++) {
		if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
			json_object_put(root);
			return syntax_error(ctx, json, i, "trailing data after the document");
		}
	}
	r = topo_file_from_json(ctx, root, out);
	json_object_put(root);
	return r;
}

static int load_text(const char *name, const char *json, size_t len, struct topo_graph **out,
		     char *err, size_t errlen)
{
	struct topo_file_ctx ctx = { .name = name, .err = err, .errlen = errlen };

	if (err && errlen)
		err[0] = '\0';
	return parse_text(&ctx, json, len, out);
}

int topo_file_load_string(const char *json, struct topo_graph **out, char *err, size_t errlen)
{
	if (!json || !out)
		return -EINVAL;
	return load_text("<string>", json, strlen(json), out, err, errlen);
}

static int read_all(int fd, char **buf, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *b = malloc(cap + 1);

	if (!b)
		return -ENOMEM;
	for (;;) {
		ssize_t k;

		if (n == cap) {
			char *nb;

			if (cap > MAX_FILE_SIZE) {
				free(b);
				return -EFBIG;
			}
			nb = realloc(b, 2 * cap + 1);
			if (!nb) {
				free(b);
				return -ENOMEM;
			}
			b = nb;
			cap *= 2;
		}
		k = read(fd, b + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = -errno;

			free(b);
			return e;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int topo_file_load(const char *path, struct topo_graph **out, char *err, size_t errlen)
{
	struct topo_file_ctx ctx = { .name = path, .err = err, .errlen = errlen };
	struct topo_graph *g = NULL;
	char *buf = NULL;
	size_t len = 0;
	int fd, r;

	if (!path || !out)
		return -EINVAL;
	if (err && errlen)
		err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return topo_file_fail(&ctx, r, NULL, "cannot open: %s", strerror(-r));
	}
	r = read_all(fd, &buf, &len);
	close(fd);
	if (r == -EFBIG)
		return topo_file_fail(&ctx, -EINVAL, NULL, "larger than %u MiB",
				      MAX_FILE_SIZE >> 20);
	if (r < 0)
		return topo_file_fail(&ctx, r, NULL, "cannot read: %s", strerror(-r));
	r = load_text(path, buf, len, &g, err, errlen);
	free(buf);
	if (r < 0)
		return r;
	/* The file's own source says where the machine was captured, and keeping
	 * it keeps --dump of a loaded file identical; record the path only for
	 * files that do not say. */
	if (!g->source[0] &&
	    (size_t)snprintf(g->source, sizeof(g->source), "file:%s", path) >= sizeof(g->source)) {
		topo_graph_free(g);
		return topo_file_fail(&ctx, -ENAMETOOLONG, NULL, "path too long to record");
	}
	*out = g;
	return 0;
}

/* ---- printing ---- */

static bool is_container(struct json_object *o)
{
	return json_object_is_type(o, json_type_object) || json_object_is_type(o, json_type_array);
}

static const char *leaf(struct json_object *o)
{
	/* NULL members are JSON null; json-c prints those as "null". */
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Width of the one-line form, or -1 when a member is itself a container. */
static int inline_width(struct json_object *o)
{
	size_t w = 2, n = 0;

	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, key, val) {
			if (is_container(val))
				return -1;
			/* Keys are the format's own identifiers: nothing to escape. */
			w += strlen(key) + 4 + strlen(leaf(val)) + (n++ ? 2 : 0);
		}
	} else {
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			struct json_object *val = json_object_array_get_idx(o, i);

			if (is_container(val))
				return -1;
			w += strlen(leaf(val)) + (i ? 2 : 0);
		}
	}
	return w > INLINE_COLUMNS ? INLINE_COLUMNS + 1 : (int)w;
}

static void print_value(FILE *f, struct json_object *o, int indent);

static void print_container(FILE *f, struct json_object *o, int indent)
{
	bool obj = json_object_is_type(o, json_type_object);
	int w = inline_width(o);
	size_t n = 0;

	if (w >= 0 && indent + w <= INLINE_COLUMNS) {
		fputc(obj ? '{' : '[', f);
		if (obj) {
			json_object_object_foreach(o, key, val)
				fprintf(f, "%s\"%s\": %s", n++ ? ", " : "", key, leaf(val));
		} else {
			for (size_t i = 0; i < json_object_array_length(o); i++)
				fprintf(f, "%s%s", i ? ", " : "",
					leaf(json_object_array_get_idx(o, i)));
		}
		fputc(obj ? '}' : ']', f);
		return;
	}
	fputs(obj ? "{\n" : "[\n", f);
	if (obj) {
		json_object_object_foreach(o, key, val) {
			fprintf(f, "%s%*s\"%s\": ", n++ ? ",\n" : "", indent + 2, "", key);
			print_value(f, val, indent + 2);
		}
	} else {
		for (size_t i = 0; i < json_object_array_length(o); i++) {
			fprintf(f, "%s%*s", i ? ",\n" : "", indent + 2, "");
			print_value(f, json_object_array_get_idx(o, i), indent + 2);
		}
	}
	fprintf(f, "\n%*s%c", indent, "", obj ? '}' : ']');
}

static void print_value(FILE *f, struct json_object *o, int indent)
{
	if (is_container(o))
		print_container(f, o, indent);
	else
		fputs(leaf(o), f);
}

int topo_file_dump(const struct topo_graph *g, FILE *f)
{
	struct json_object *root;

	if (!g || !f)
		return -EINVAL;
	root = topo_file_to_json(g);
	if (!root)
		return -ENOMEM;
	print_value(f, root, 0);
	fputc('\n', f);
	json_object_put(root);
	if (fflush(f) == EOF || ferror(f))
		return -EIO;
	return 0;
}
