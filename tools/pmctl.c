/* SPDX-License-Identifier: MIT */
/* pmctl: what a running pagemapd holds (pagemaps, clients, allocations, counters), and revoking
 * a device. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <json-c/json.h>

#include "engine_stats.h"
#include "json_out.h"

#include "client.h"
#include "config.h"
#include "pmctl.h"

static void usage(FILE *f)
{
	fputs("Usage: pmctl [OPTIONS] COMMAND\n"
	      "Inspect and administer the pagemap broker (pagemapd).\n\n"
	      "Commands:\n"
	      "  pagemaps              every live pagemap: id, device, region, kind, state, refs, size\n"
	      "  clients               connected sessions: pid, uid, gid, open handles (yours;\n"
	      "                        every user's for root or the broker's user)\n"
	      "  ranges [SESSION_ID]   managed allocations and where their chunks are, as runs:\n"
	      "                        resident and requested pagemap, advice, flags, last error\n"
	      "                        (default: every session; others' need root or the broker's user)\n"
	      "  peers                 links to peer brokers over RDMA: role, state, device,\n"
	      "                        port rate (the NET edge's bandwidth), pools, pinned memory\n"
	      "  pools                 every pool you may open: kind, NUMA node, capacity, free,\n"
	      "                        state (available, live, revoked, gone), path from this CPU\n"
	      "  revoke [--force] DEVICE\n"
	      "                        revoke DEVICE's pagemaps (data moves home, holders are told)\n"
	      "                        and disable it until restored; host nodes need --force\n"
	      "  restore DEVICE        serve a revoked DEVICE again\n"
	      "                        (revoke and restore: root or the broker's user only)\n"
	      "  stats                 the broker's counters\n\n"
	      "Options:\n"
	      "  --socket PATH         the broker's socket (default $PAGEMAP_SOCKET, then\n"
	      "                        $XDG_RUNTIME_DIR/pagemap/broker.sock, /run/pagemap/broker.sock)\n"
	      "  --json                JSON on stdout instead of a table\n"
	      "  --force               revoke: also host memory (a NUMA node)\n"
	      "  -h, --help            this text;  --version\n",
	      f);
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case PM_STATE_ACTIVE: return "active";
	case PM_STATE_LINGERING: return "lingering";
	case PM_STATE_REVOKED: return "revoked";
	}
	return "unknown";
}

const char *pmctl_human_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double d = (double)v;
	unsigned u = 0;

	while (d >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		d /= 1024;
		u++;
	}
	if (u == 0 || d == (double)(uint64_t)d)
		snprintf(buf, len, "%.0f %s", d, units[u]);
	else
		snprintf(buf, len, "%.1f %s", d, units[u]);
	return buf;
}

int pmctl_print_json(const char *view, json_object *val)
{
	json_object *root = json_object_new_object();
	const char *s;
	int r = -ENOMEM;

	if (!root || json_out_add(root, "version", json_object_new_int(PMCTL_JSON_VERSION)))
		goto out;
	if (view) {
		r = json_out_add(root, view, val);
		val = NULL;
		if (r < 0)
			goto out;
	} else {
		/* An object view: its members beside the version. */
		json_object_object_foreach(val, k, v)
			if (json_object_object_add(root, k, json_object_get(v)))
				goto out;
	}
	s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
							 JSON_C_TO_STRING_NOSLASHESCAPE);
	r = s ? 0 : -ENOMEM;
	if (s)
		printf("%s\n", s);
out:
	json_object_put(val);
	json_object_put(root);
	return r;
}

int pmctl_call_list(struct pm_client *c, uint16_t op, uint8_t *buf, size_t cap, size_t rec,
		    const uint8_t **recs)
{
	const size_t head = sizeof(struct pm_list_reply) - sizeof(struct pm_reply);
	uint32_t count, flags;
	size_t len = 0;
	int r = pm_client_call(c, op, NULL, 0, buf, cap, &len, NULL);

	if (r < 0)
		return r;
	if (len < head)
		return -EPROTO;
	memcpy(&count, buf, sizeof(count));
	memcpy(&flags, buf + sizeof(count), sizeof(flags));
	if ((uint32_t)r != count || len != head + (size_t)count * rec)
		return -EPROTO;
	if (flags & PM_LIST_TRUNCATED)
		fprintf(stderr, "pmctl: the broker has more than %u; only those fit one reply\n",
			count);
	*recs = buf + head;
	return (int)count;
}

/* Records come unaligned and untrusted: copy them out, NUL-terminate names. */
static void read_info(const uint8_t *rec, struct pm_info *in)
{
	memcpy(in, rec, sizeof(*in));
	in->device[sizeof(in->device) - 1] = '\0';
	in->region[sizeof(in->region) - 1] = '\0';
}

static void read_client(const uint8_t *rec, struct pm_client_info *ci)
{
	memcpy(ci, rec, sizeof(*ci));
	ci->client[sizeof(ci->client) - 1] = '\0';
}

/* Prints n records of rec bytes as one JSON array named view, each made by to_json. */
static int print_json_list(const char *view, const uint8_t *recs, int n, size_t rec,
			   json_object *(*to_json)(const uint8_t *rec))
{
	json_object *arr = json_object_new_array();

	if (!arr)
		return -ENOMEM;
	for (int i = 0; i < n; i++)
		if (json_out_append(arr, to_json(recs + (size_t)i * rec)) < 0) {
			json_object_put(arr);
			return -ENOMEM;
		}
	return pmctl_print_json(view, arr);
}

static json_object *pagemap_json(const uint8_t *rec)
{
	json_object *o = json_object_new_object();
	struct pm_info info, *in = &info;

	if (!o)
		return NULL;
	read_info(rec, in);
	if (json_out_add(o, "id", json_object_new_uint64(in->id)) ||
	    json_out_add(o, "device", json_object_new_string(in->device)) ||
	    json_out_add(o, "region", json_object_new_string(in->region)) ||
	    json_out_add(o, "kind", json_object_new_string(pm_kind_name(in->kind))) ||
	    json_out_add(o, "state", json_object_new_string(state_name(in->state))) ||
	    json_out_add(o, "refs", json_object_new_int64(in->refs)) ||
	    json_out_add(o, "capacity", json_object_new_uint64(in->capacity)) ||
	    json_out_add(o, "used", json_object_new_uint64(in->used)) ||
	    json_out_add(o, "numa_node", json_object_new_int(in->numa_node)) ||
	    json_out_add(o, "addr_bits", json_object_new_int64(in->addr_bits))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int cmd_pagemaps(struct pm_client *c, bool json)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const uint8_t *recs = NULL;
	int n = pmctl_call_list(c, PM_OP_LIST, buf, sizeof(buf), sizeof(struct pm_info), &recs);

	if (n < 0)
		return n;
	if (json)
		return print_json_list("pagemaps", recs, n, sizeof(struct pm_info), pagemap_json);
	printf("%-6s %-16s %-8s %-11s %-9s %4s %10s %10s %4s\n", "ID", "DEVICE", "REGION",
	       "KIND", "STATE", "REFS", "CAPACITY", "USED", "NUMA");
	for (int i = 0; i < n; i++) {
		struct pm_info in;
		char cap[32], used[32], numa[16];

		read_info(recs + (size_t)i * sizeof(in), &in);
		if (in.numa_node >= 0)
			snprintf(numa, sizeof(numa), "%d", in.numa_node);
		else
			snprintf(numa, sizeof(numa), "-");
		printf("%-6" PRIu64 " %-16s %-8s %-11s %-9s %4u %10s %10s %4s\n", in.id, in.device,
		       in.region[0] ? in.region : "-", pm_kind_name(in.kind), state_name(in.state),
		       in.refs, pmctl_human_bytes(in.capacity, cap, sizeof(cap)),
		       pmctl_human_bytes(in.used, used, sizeof(used)), numa);
	}
	if (n == 0)
		printf("(no live pagemaps)\n");
	return 0;
}

static json_object *client_json(const uint8_t *rec)
{
	json_object *o = json_object_new_object();
	struct pm_client_info info, *ci = &info;

	if (!o)
		return NULL;
	read_client(rec, ci);
	if (json_out_add(o, "session_id", json_object_new_uint64(ci->session_id)) ||
	    json_out_add(o, "pid", json_object_new_int(ci->pid)) ||
	    json_out_add(o, "uid", json_object_new_int64(ci->uid)) ||
	    json_out_add(o, "gid", json_object_new_int64(ci->gid)) ||
	    json_out_add(o, "handles", json_object_new_int64(ci->handles)) ||
	    json_out_add(o, "client", json_object_new_string(ci->client))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int cmd_clients(struct pm_client *c, bool json)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const uint8_t *recs = NULL;
	int n = pmctl_call_list(c, PM_OP_CLIENTS, buf, sizeof(buf), sizeof(struct pm_client_info),
				&recs);

	if (n < 0)
		return n;
	if (json)
		return print_json_list("clients", recs, n, sizeof(struct pm_client_info),
				       client_json);
	printf("%-8s %8s %6s %6s %7s  %s\n", "SESSION", "PID", "UID", "GID", "HANDLES", "CLIENT");
	for (int i = 0; i < n; i++) {
		struct pm_client_info ci;

		read_client(recs + (size_t)i * sizeof(ci), &ci);
		printf("%-8" PRIu64 " %8d %6u %6u %7u  %s%s\n", ci.session_id, ci.pid, ci.uid, ci.gid,
		       ci.handles, ci.client[0] ? ci.client : "-",
		       ci.session_id == c->session_id ? " (this pmctl)" : "");
	}
	return 0;
}

static int cmd_stats(struct pm_client *c, bool json)
{
	struct pm_stats_reply st = { 0 };
	const size_t want = sizeof(st) - sizeof(st.r);
	const struct {
		const char *name;
		const uint64_t *v;
		const char *help;
	} f[] = {
		{ "sessions", &st.sessions, "connected now" },
		{ "pagemaps", &st.pagemaps, "live (active + lingering)" },
		{ "handles", &st.handles, "open pagemap handles" },
		{ "created", &st.created, "pagemaps created since start" },
		{ "revived", &st.revived, "lingering pagemaps reopened" },
		{ "torn_down", &st.torn_down, "torn down after their linger" },
		{ "reclaimed", &st.reclaimed, "torn down early under memory pressure" },
		{ "revoked", &st.revoked, "pagemaps revoked" },
		{ "denied", &st.denied, "opens refused by policy" },
		{ "protocol_errors", &st.protocol_errors, "malformed requests" },
		{ "allocations", &st.allocations, "managed allocations registered" },
		{ "allocated_bytes", &st.allocated_bytes, "bytes in them" },
		{ "bytes_direct", &st.bytes_direct, "migrated device to device" },
		{ "bytes_bounced", &st.bytes_bounced, "migrated device to device via host memory" },
		{ "bytes_host", &st.bytes_host, "migrated between host memory and a device" },
		{ "faults", &st.faults, "chunks brought back by CPU faults" },
	};
	size_t len = 0;
	json_object *o;
	struct engine_stats es;
	bool have_engines;
	int r = pm_client_call(c, PM_OP_STATS, NULL, 0, &st.sessions, want, &len, NULL);

	if (r < 0)
		return r;
	if (len != want)
		return -EPROTO;
	/* A broker from before the transport layer has no engine counters. */
	have_engines = engine_stats_read(c, &es) == 0;
	if (json) {
		o = json_object_new_object();
		if (!o)
			return -ENOMEM;
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			if (json_out_add(o, f[i].name, json_object_new_uint64(*f[i].v)) < 0) {
				json_object_put(o);
				return -ENOMEM;
			}
		if (have_engines && engine_stats_json(o, &es, 1) < 0) {
			json_object_put(o);
			return -ENOMEM;
		}
		return pmctl_print_json(NULL, o);
	}
	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		printf("%-16s %12" PRIu64 "  %s\n", f[i].name, *f[i].v, f[i].help);
	if (!have_engines)
		return 0;
	printf("\n%-8s %12s %12s %12s %12s %10s %7s %10s\n", "ENGINE", "BYTES", "ZERO-COPY",
	       "P2P-DMA", "STAGED", "COPIES", "FAILED", "BUSY");
	for (int i = 0; i < es.n; i++) {
		const struct pm_engine_info *e = &es.e[i];
		char b[32], z[32], pp[32], sg[32];

		printf("%-8s %12s %12s %12s %12s %10" PRIu64 " %7" PRIu64 " %9.3fs\n", e->name,
		       pmctl_human_bytes(e->bytes, b, sizeof(b)),
		       pmctl_human_bytes(e->bytes_zero_copy, z, sizeof(z)),
		       pmctl_human_bytes(e->bytes_p2p_dma, pp, sizeof(pp)),
		       pmctl_human_bytes(e->bytes_staged, sg, sizeof(sg)), e->copies, e->failed,
		       e->busy_ns / 1e9);
	}
	return 0;
}

/* A decimal u64, the whole string: no sign, no spaces, no overflow. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	enum { OPT_SOCKET = 256, OPT_JSON, OPT_VERSION, OPT_FORCE };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static const char *const commands[] = { "pagemaps", "clients", "ranges", "peers", "pools",
						"revoke", "restore", "stats" };
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *socket_arg = NULL, *cmd, *device = NULL;
	struct pm_client *c = NULL;
	bool json = false, force = false, admin;
	uint64_t session = 0;
	int ch, nmin, nmax, r;
	size_t i;

	opterr = 0; /* our messages, named "pmctl:" whatever argv[0] is */
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case OPT_SOCKET: socket_arg = optarg; break;
		case OPT_JSON: json = true; break;
		case OPT_FORCE: force = true; break;
		case OPT_VERSION: printf("pmctl %s\n", PAGEMAP_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		case ':':
			fprintf(stderr, "pmctl: option '%s' needs an argument\n", argv[optind - 1]);
			return 2;
		default:
			if (optopt)
				fprintf(stderr, "pmctl: unknown option '-%c' (see pmctl --help)\n",
					optopt);
			else
				fprintf(stderr, "pmctl: unknown option '%s' (see pmctl --help)\n",
					argv[optind - 1]);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr,
			"pmctl: missing COMMAND (pagemaps, clients, ranges, peers, pools, revoke, "
			"restore, stats)\n");
		return 2;
	}
	cmd = argv[optind++];
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i]))
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		fprintf(stderr, "pmctl: unknown command '%s' (pagemaps, clients, ranges, peers, "
				"pools, revoke, restore, stats)\n", cmd);
		return 2;
	}
	admin = !strcmp(cmd, "revoke") || !strcmp(cmd, "restore");
	nmin = admin ? 1 : 0;
	nmax = admin || !strcmp(cmd, "ranges") ? 1 : 0;
	if (argc - optind < nmin) {
		fprintf(stderr, "pmctl: %s: missing DEVICE argument\n", cmd);
		return 2;
	}
	if (argc - optind > nmax) {
		fprintf(stderr, "pmctl: %s: unexpected argument '%s'\n", cmd, argv[optind + nmax]);
		return 2;
	}
	if (force && strcmp(cmd, "revoke")) {
		fprintf(stderr, "pmctl: %s: --force is for revoke only\n", cmd);
		return 2;
	}
	if (admin)
		device = argv[optind];
	if (device && !device[0]) {
		fprintf(stderr, "pmctl: %s: empty DEVICE argument\n", cmd);
		return 2;
	}
	if (!strcmp(cmd, "ranges") && optind < argc && parse_u64(argv[optind], &session) < 0) {
		fprintf(stderr, "pmctl: ranges: invalid SESSION_ID '%s' (a session number as "
				"pmctl clients shows it, 0 for every session)\n", argv[optind]);
		return 2;
	}

	r = pm_client_socket_path(socket_arg, path, sizeof(path));
	if (r < 0) {
		fprintf(stderr, "pmctl: socket path '%s': %s\n",
			socket_arg ? socket_arg : getenv("PAGEMAP_SOCKET"), strerror(-r));
		return 1;
	}
	r = pm_connect(path, &c);
	if (r < 0) {
		fprintf(stderr, "pmctl: cannot connect to %s: %s%s\n", path, strerror(-r),
			r == -ENOENT || r == -ECONNREFUSED ? " (is pagemapd running?)" : "");
		return 1;
	}
	/* Commands that say what went wrong themselves and return the exit status. */
	if (admin || !strcmp(cmd, "ranges") || !strcmp(cmd, "peers") || !strcmp(cmd, "pools")) {
		if (admin)
			r = pmctl_revoke(c, device, !strcmp(cmd, "restore"), force, json);
		else if (!strcmp(cmd, "pools"))
			r = pmctl_pools(c, json);
		else if (!strcmp(cmd, "peers"))
			r = pmctl_peers(c, json);
		else
			r = pmctl_ranges(c, session, json);
		pm_disconnect(c);
		return r;
	}
	if (!strcmp(cmd, "pagemaps"))
		r = cmd_pagemaps(c, json);
	else if (!strcmp(cmd, "clients"))
		r = cmd_clients(c, json);
	else
		r = cmd_stats(c, json);
	pm_disconnect(c);
	if (r < 0) {
		fprintf(stderr, "pmctl: %s: %s\n", cmd, strerror(-r));
		return 1;
	}
	return 0;
}
