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

#include "pagemap.h"
#include "pagemap_proto.h"
#include "pmbench.h"

#define WARMUP 100
#define ROUNDS 10
/* A NOP: a bare header out, a header and a pm_reply back. */
#define RAW_REQ sizeof(struct pm_hdr)
#define RAW_REP (sizeof(struct pm_hdr) + sizeof(struct pm_reply))

enum { M_RAW, M_NOP, M_OPEN_CLOSE, M_QUERY, M_COUNT };
static const char *const mnames[M_COUNT] = { "raw_unix_pingpong", "broker_nop", "open_close",
					     "query" };

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

static void print_stats(const char *name, const struct bench_stats *s)
{
	printf("    \"%s\": {\"median_us\": %.2f, \"p5_us\": %.2f, \"p95_us\": %.2f, "
	       "\"p99_us\": %.2f, \"samples\": %d},\n",
	       name, s->median * 1e6, s->p5 * 1e6, s->p95 * 1e6, s->p99 * 1e6, s->samples);
}

int pmbench_rtt(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "samples", required_argument, NULL, 's' },
		{ "pin", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	struct bench_broker bp = { .linger_ms = 5000 };
	struct bench_stats st[M_COUNT];
	struct pagemap_info before, after;
	const char *sock = NULL;
	struct pm_client *c = NULL;
	double *v[M_COUNT] = { 0 }, t;
	enum pin pin = PIN_SAME;
	bool pin_given = false;
	int samples = 2000, ch, r = 0, raw = -1, hold = -1, status, exit_code = 1;
	pid_t echo = -1;
	char *end;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': sock = optarg; break;
		case 's':
			errno = 0;
			samples = (int)strtol(optarg, &end, 10);
			if (errno || *end || !*optarg)
				samples = -1;
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
		case 'j': break; /* JSON is the only output */
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pmbench rtt: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (samples < ROUNDS || samples > 1000000) {
		fprintf(stderr, "pmbench rtt: --samples must be %d..1000000\n", ROUNDS);
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
	printf("{\n  \"benchmark\": \"rtt\",\n  \"broker\": \"%s\",\n", sock ? sock : "spawned");
	printf("  \"samples\": %d,\n  \"warmup\": %d,\n  \"rounds\": %d,\n", samples, WARMUP,
	       ROUNDS);
	printf("  \"pin\": {\"mode\": \"%s\", \"client_cpu\": %d, \"server_cpu\": %d},\n",
	       pin_names[pin], pin_cpu[0], pin_cpu[1]);
	printf("  \"raw_request_bytes\": %zu,\n  \"raw_reply_bytes\": %zu,\n", RAW_REQ, RAW_REP);
	printf("  \"rtt\": {\n");
	for (int m = 0; m < M_COUNT; m++)
		print_stats(mnames[m], &st[m]);
	printf("    \"unit\": \"microseconds\"\n  },\n");
	printf("  \"ratios\": {\"broker_nop_vs_raw\": %.2f, \"open_close_vs_raw\": %.2f, "
	       "\"query_vs_raw\": %.2f},\n",
	       st[M_NOP].median / st[M_RAW].median, st[M_OPEN_CLOSE].median / st[M_RAW].median,
	       st[M_QUERY].median / st[M_RAW].median);
	printf("  \"goal\": {\"broker_nop_vs_raw_max\": 2.5, \"met\": %s},\n",
	       st[M_NOP].median / st[M_RAW].median <= 2.5 ? "true" : "false");
	printf("  \"held_pagemap\": {\"id\": %llu, \"id_after\": %llu, \"refs_before\": %u, "
	       "\"refs_after\": %u}\n}\n",
	       (unsigned long long)before.id, (unsigned long long)after.id, before.refs, after.refs);
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
