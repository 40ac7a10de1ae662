/* SPDX-License-Identifier: MIT */
/*
 * pmbench rtt: round trips to pagemapd (a NOP, pagemap_open + close of a
 * handle to a live pagemap, pagemap_query) next to a raw Unix-socket
 * ping-pong of the same message sizes measured in the same run. The four
 * measurements run interleaved in rounds so that drift (frequency, other
 * load) falls on all of them alike. A round trip between two processes on
 * one CPU and one between two CPUs (a cross-CPU wake-up each way) differ
 * several-fold (7x seen in a 2-vCPU VM), and left alone the scheduler may
 * place the echo and the broker differently from run to run. So by default
 * (--pin same) this process, the echo process and the spawned broker share
 * one CPU: the ratio then measures software, not placement. --pin split puts
 * the far ends on a second CPU; --pin none (the default with --socket, whose
 * broker is not ours to pin) lets the scheduler decide.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "json_out.h"
#include "pagemap.h"
#include "pagemap_proto.h"
#include "pmbench.h"

static const char usage_text[] =
	"Usage: pmbench rtt [--socket PATH] [--samples N] [--pin none|same|split] [--json]\n"
	"Round trips to pagemapd (a NOP, pagemap_open + close, pagemap_query) against a raw\n"
	"Unix-socket ping-pong of the same sizes (the baseline), interleaved in one run.\n"
	"  --socket PATH  measure this broker (default: start one of our own: $PAGEMAPD,\n"
	"                 else the build tree's, else the installed pagemapd)\n"
	"  --samples N    round trips of each kind (10..1000000, default 2000)\n"
	"  --pin MODE     same: all ends on one CPU (default), split: the far ends on a\n"
	"                 second CPU, none: the scheduler decides (default with --socket)\n"
	"  --json         the whole JSON document instead of a summary\n";

#define WARMUP 100
#define ROUNDS 10
/* A NOP: a bare header out, a header and a pm_reply back. */
#define RAW_REQ sizeof(struct pm_hdr)
#define RAW_REP (sizeof(struct pm_hdr) + sizeof(struct pm_reply))

enum { M_RAW, M_NOP, M_OPEN_CLOSE, M_QUERY, M_COUNT };
static const char *const mnames[M_COUNT] = { "raw_unix_pingpong", "broker_nop", "open_close",
					     "query" };
/* What the summary calls them. */
static const char *const mtitles[M_COUNT] = { "raw Unix ping-pong", "broker NOP",
					      "pagemap_open + close", "pagemap_query" };

enum pin { PIN_NONE, PIN_SAME, PIN_SPLIT };
static const char *const pin_names[] = { "none", "same", "split" };
/* The CPUs for --pin: [0] this process, [1] the echo process and the broker. */
static int pin_cpu[2] = { -1, -1 };

static int pin_plan(enum pin pin)
{
	cpu_set_t set;
	int n = 0;

	if (pin == PIN_NONE)
		return 0;
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++)
		if (CPU_ISSET(cpu, &set))
			pin_cpu[n++] = cpu;
	if (n < (pin == PIN_SPLIT ? 2 : 1))
		return -ERANGE;
	if (pin == PIN_SAME)
		pin_cpu[1] = pin_cpu[0];
	return 0;
}

/* Pins the calling process to pin_cpu[which] (no-op without --pin). */
static int pin_self(int which)
{
	cpu_set_t set;

	if (pin_cpu[which] < 0)
		return 0;
	CPU_ZERO(&set);
	CPU_SET(pin_cpu[which], &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static int full_io(int fd, void *buf, size_t len, bool wr)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = wr ? write(fd, (char *)buf + done, len - done)
			       : read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		done += (size_t)n;
	}
	return 0;
}

/* The raw baseline's far end: reads a request, writes a reply, until EOF. */
static pid_t start_echo(int *sock)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		unsigned char req[RAW_REQ], rep[RAW_REP] = { 0 };

		close(sv[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (pin_self(1) < 0)
			_exit(127);
		while (full_io(sv[1], req, sizeof(req), false) == 0 &&
		       full_io(sv[1], rep, sizeof(rep), true) == 0)
			;
		_exit(0);
	}
	close(sv[1]);
	*sock = sv[0];
	return pid;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int one(int m, int raw, struct pm_client *c, int hold, double *t)
{
	unsigned char req[RAW_REQ] = { 0 }, rep[RAW_REP];
	struct pagemap_info info;
	double t0 = bench_now();
	int r, fd;

	switch (m) {
	case M_RAW:
		r = full_io(raw, req, sizeof(req), true);
		if (r == 0)
			r = full_io(raw, rep, sizeof(rep), false);
		break;
	case M_NOP:
		r = pm_ping(c);
		break;
	case M_OPEN_CLOSE:
		fd = pagemap_open(c, "node0", NULL, 0);
		r = fd < 0 ? fd : close(fd);
		break;
	default:
		r = pagemap_query(hold, &info);
		break;
	}
	*t = bench_now() - t0;
	return r;
}

/* The times of s in microseconds into o. */
static int add_stats(json_object *o, const struct bench_stats *s)
{
	if (json_out_add_num(o, "median_us", s->median * 1e6, 2) ||
	    json_out_add_num(o, "p5_us", s->p5 * 1e6, 2) ||
	    json_out_add_num(o, "p95_us", s->p95 * 1e6, 2) ||
	    json_out_add_num(o, "p99_us", s->p99 * 1e6, 2) ||
	    json_out_add(o, "samples", json_object_new_int(s->samples)))
		return -ENOMEM;
	return 0;
}

/* One row per kind; the broker's rows carry the raw ping-pong as their baseline.
 * Each container goes into its parent first, so that the parent owns it. */
static json_object *row_json(int m, const struct bench_stats *st)
{
	json_object *o = json_object_new_object(), *base;

	if (!o || json_out_add(o, "id", json_object_new_string(mnames[m])) ||
	    json_out_add(o, "name", json_object_new_string(mtitles[m])) || add_stats(o, &st[m]))
		goto fail;
	if (m == M_RAW)
		return o;
	base = json_object_new_object();
	if (json_out_add(o, "baseline", base) ||
	    json_out_add(base, "kind", json_object_new_string(mtitles[M_RAW])) ||
	    add_stats(base, &st[M_RAW]) ||
	    json_out_add_num(o, "slowdown", st[m].median / st[M_RAW].median, 2))
		goto fail;
	return o;
fail:
	json_object_put(o);
	return NULL;
}

static json_object *report_json(const char *sock, enum pin pin, const struct bench_stats *st,
				const struct pagemap_info *before, const struct pagemap_info *after)
{
	json_object *root = json_object_new_object(), *o;
	double nop_ratio = st[M_NOP].median / st[M_RAW].median;

	if (!root || json_out_add(root, "benchmark", json_object_new_string("rtt")) ||
	    json_out_add(root, "broker", json_object_new_string(sock ? sock : "spawned")) ||
	    json_out_add(root, "samples", json_object_new_int(st[M_RAW].samples)) ||
	    json_out_add(root, "warmup", json_object_new_int(WARMUP)) ||
	    json_out_add(root, "rounds", json_object_new_int(ROUNDS)))
		goto fail;
	o = json_object_new_object();
	if (json_out_add(root, "pin", o) ||
	    json_out_add(o, "mode", json_object_new_string(pin_names[pin])) ||
	    json_out_add(o, "client_cpu", json_object_new_int(pin_cpu[0])) ||
	    json_out_add(o, "server_cpu", json_object_new_int(pin_cpu[1])) ||
	    json_out_add(root, "raw_request_bytes", json_object_new_uint64(RAW_REQ)) ||
	    json_out_add(root, "raw_reply_bytes", json_object_new_uint64(RAW_REP)) ||
	    json_out_add(root, "unit", json_object_new_string("microseconds")))
		goto fail;
	o = json_object_new_array();
	if (json_out_add(root, "rtt", o))
		goto fail;
	for (int m = 0; m < M_COUNT; m++)
		if (json_out_append(o, row_json(m, st)))
			goto fail;
	o = json_object_new_object();
	if (json_out_add(root, "goal", o) ||
	    json_out_add_num(o, "broker_nop_vs_raw", nop_ratio, 2) ||
	    json_out_add_num(o, "broker_nop_vs_raw_max", 2.5, 1) ||
	    json_out_add(o, "met", json_object_new_boolean(nop_ratio <= 2.5)))
		goto fail;
	o = json_object_new_object();
	if (json_out_add(root, "held_pagemap", o) ||
	    json_out_add(o, "id", json_object_new_uint64(before->id)) ||
	    json_out_add(o, "id_after", json_object_new_uint64(after->id)) ||
	    json_out_add(o, "refs_before", json_object_new_uint64(before->refs)) ||
	    json_out_add(o, "refs_after", json_object_new_uint64(after->refs)))
		goto fail;
	return root;
fail:
	json_object_put(root);
	return NULL;
}

int pmbench_rtt(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "samples", required_argument, NULL, 's' },
		{ "pin", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct bench_broker bp = { .linger_ms = 5000 };
	struct bench_stats st[M_COUNT];
	struct pagemap_info before, after;
	const char *sock = NULL;
	struct pm_client *c = NULL;
	double *v[M_COUNT] = { 0 }, t;
	enum pin pin = PIN_SAME;
	bool pin_given = false, json = false;
	int samples = 2000, ch, r = 0, raw = -1, hold = -1, status, exit_code = 1;
	json_object *report;
	pid_t echo = -1;
	char *end;
	long n;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': sock = optarg; break;
		case 's':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || n < ROUNDS || n > 1000000) {
				fprintf(stderr, "pmbench rtt: --samples: '%s' is not a number in "
						"%d..1000000\n", optarg, ROUNDS);
				return 2;
			}
			samples = (int)n;
			break;
		case 'p':
			pin_given = true;
			if (!strcmp(optarg, "none"))
				pin = PIN_NONE;
			else if (!strcmp(optarg, "same"))
				pin = PIN_SAME;
			else if (!strcmp(optarg, "split"))
				pin = PIN_SPLIT;
			else {
				fprintf(stderr, "pmbench rtt: --pin: unknown placement '%s' "
						"(none, same, split)\n", optarg);
				return 2;
			}
			break;
		case 'j': json = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		case ':':
			fprintf(stderr, "pmbench rtt: option '%s' needs an argument\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "pmbench rtt: unknown option '%s'\n%s", argv[optind - 1],
				usage_text);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench rtt: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	/* Someone else's broker runs where it runs: pinning only our side would
	 * compare different placements. */
	if (sock && !pin_given)
		pin = PIN_NONE;
	r = pin_plan(pin);
	if (r == 0)
		r = pin_self(0);
	if (r < 0) {
		fprintf(stderr, "pmbench rtt: --pin %s: %s\n", pin_names[pin],
			r == -ERANGE ? "not enough CPUs in this process's affinity mask" : strerror(-r));
		return 1;
	}
	if (pin_given && pin != PIN_NONE && sock)
		fprintf(stderr, "pmbench rtt: --pin %s: the broker at %s is not ours to pin; "
				"only this process and the echo process are pinned\n",
			pin_names[pin], sock);
	for (int m = 0; m < M_COUNT; m++) {
		v[m] = calloc((size_t)samples, sizeof(double));
		if (!v[m]) {
			fprintf(stderr, "pmbench rtt: %s\n", strerror(ENOMEM));
			goto out;
		}
	}
	/* The echo process first, so it inherits no broker connection. */
	echo = start_echo(&raw);
	if (echo < 0) {
		fprintf(stderr, "pmbench rtt: cannot start the echo process: %s\n",
			strerror((int)-echo));
		goto out;
	}
	if (sock) {
		r = pm_connect(sock, &c);
		if (r < 0) {
			fprintf(stderr, "pmbench rtt: cannot connect to %s: %s\n", sock, strerror(-r));
			goto out;
		}
	} else if (bench_broker_start(&bp, "rtt", pin_cpu[1], NULL, NULL, &c) < 0) {
		goto out;
	}
	/* Held across the loop: the pagemap lives, so the loop opens and closes handles. */
	hold = pagemap_open(c, "node0", NULL, 0);
	if (hold < 0) {
		fprintf(stderr, "pmbench rtt: pagemap_open node0: %s\n", strerror(-hold));
		goto out;
	}
	r = pagemap_query(hold, &before);
	if (r < 0) {
		fprintf(stderr, "pmbench rtt: pagemap_query: %s\n", strerror(-r));
		goto out;
	}
	for (int m = 0; m < M_COUNT; m++)
		for (int i = 0; i < WARMUP; i++)
			if ((r = one(m, raw, c, hold, &t)) < 0) {
				fprintf(stderr, "pmbench rtt: %s (warm-up): %s\n", mnames[m],
					strerror(-r));
				goto out;
			}
	for (int round = 0; round < ROUNDS; round++) {
		int lo = samples * round / ROUNDS, hi = samples * (round + 1) / ROUNDS;

		for (int m = 0; m < M_COUNT; m++)
			for (int i = lo; i < hi; i++)
				if ((r = one(m, raw, c, hold, &v[m][i])) < 0) {
					fprintf(stderr, "pmbench rtt: %s: %s\n", mnames[m],
						strerror(-r));
					goto out;
				}
	}
	/* The broker sees the closes asynchronously: let it catch up, then expect
	 * the pagemap it had before (same id) with our one handle left. */
	for (int i = 0; i < 100; i++) {
		r = pagemap_query(hold, &after);
		if (r < 0 || after.refs == before.refs)
			break;
		sleep_ms(10);
	}
	if (r < 0) {
		fprintf(stderr, "pmbench rtt: pagemap_query after the loop: %s\n", strerror(-r));
		goto out;
	}
	for (int m = 0; m < M_COUNT; m++)
		bench_stats(v[m], samples, &st[m]);
	report = report_json(sock, pin, st, &before, &after);
	if (!report) {
		fprintf(stderr, "pmbench rtt: %s\n", strerror(ENOMEM));
		goto out;
	}
	bench_emit(report, json);
	json_object_put(report);
	exit_code = 0;
	if (after.id != before.id || after.refs != before.refs) {
		fprintf(stderr, "pmbench rtt: the held pagemap changed: id %llu -> %llu, refs %u -> %u\n",
			(unsigned long long)before.id, (unsigned long long)after.id, before.refs,
			after.refs);
		exit_code = 1;
	}
out:
	if (hold >= 0)
		close(hold);
	pm_disconnect(c);
	if (raw >= 0)
		close(raw); /* EOF ends the echo process */
	if (echo > 0)
		waitpid(echo, &status, 0);
	bench_broker_stop(&bp);
	for (int m = 0; m < M_COUNT; m++)
		free(v[m]);
	return exit_code;
}
