/* SPDX-License-Identifier: MIT */
/*
 * A pagemapd of pmbench's own, for the benchmarks that do not measure an
 * existing broker (--socket): spawned on a socket in a fresh temporary
 * directory, with a configuration file when the benchmark needs one, its log
 * kept to a file and shown only if it fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "pagemap.h"
#include "pmbench.h"

static void nap_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

void bench_broker_print_log(const struct bench_broker *bp)
{
	char line[512];
	FILE *f = fopen(bp->log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  | %s", line);
	fclose(f);
}

void bench_broker_stop(struct bench_broker *bp)
{
	int status;

	if (bp->pid > 0) {
		kill(bp->pid, SIGTERM);
		for (int i = 0; i < 200 && waitpid(bp->pid, &status, WNOHANG) == 0; i++)
			nap_ms(10);
		if (waitpid(bp->pid, &status, WNOHANG) == 0) {
			kill(bp->pid, SIGKILL);
			waitpid(bp->pid, &status, 0);
		}
		bp->pid = 0;
	}
	if (bp->dir[0]) {
		unlink(bp->sock);
		unlink(bp->log);
		unlink(bp->conf);
		rmdir(bp->dir);
		bp->dir[0] = '\0';
	}
}

/* The child: stdout is the benchmark's JSON, so the broker gets /dev/null
 * there and its log file on stderr. */
static void exec_broker(const struct bench_broker *bp, const char *exe, int cpu,
			const char *topology)
{
	const char *argv[12];
	char linger[16];
	int lfd = open(bp->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int nfd = open("/dev/null", O_RDWR | O_CLOEXEC), n = 0;

	if (lfd < 0 || nfd < 0 || dup2(nfd, 0) < 0 || dup2(nfd, 1) < 0 || dup2(lfd, 2) < 0)
		_exit(127);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			_exit(127);
	}
	argv[n++] = exe;
	argv[n++] = "--socket";
	argv[n++] = bp->sock;
	snprintf(linger, sizeof(linger), "%d", bp->linger_ms);
	argv[n++] = "--linger-ms";
	argv[n++] = linger;
	if (bp->conf[0]) {
		argv[n++] = "--config";
		argv[n++] = bp->conf;
	}
	if (topology) {
		argv[n++] = "--topology";
		argv[n++] = topology;
	}
	argv[n] = NULL;
	execv(exe, (char *const *)argv);
	_exit(127);
}

/*
 * Which pagemapd to run: $PAGEMAPD when set (and only it: a wrapper or a
 * build the user chose must not be swapped for another silently), else the
 * build tree's (pmbench in build/tools, the broker in build/broker), else the
 * installed one (pmbench in bindir, the broker in sbindir).
 */
static int find_pagemapd(const char *bench, char *exe, size_t len)
{
	const char *env = getenv("PAGEMAPD");
	char dir[PATH_MAX];

	if (env && *env) {
		snprintf(exe, len, "%s", env);
		if (access(exe, X_OK) == 0)
			return 0;
		fprintf(stderr, "pmbench %s: PAGEMAPD=%s: %s\n", bench, env, strerror(errno));
		return -ENOENT;
	}
	bench_self_dir(dir, sizeof(dir));
	snprintf(exe, len, "%s/../broker/pagemapd", dir);
	if (access(exe, X_OK) == 0)
		return 0;
	snprintf(exe, len, "%s/pagemapd", PAGEMAP_SBINDIR);
	if (access(exe, X_OK) == 0)
		return 0;
	fprintf(stderr, "pmbench %s: no pagemapd at %s/../broker/pagemapd nor at %s "
			"(set PAGEMAPD or use --socket)\n", bench, dir, exe);
	return -ENOENT;
}

int bench_broker_start(struct bench_broker *bp, const char *bench, int cpu, const char *config,
		       const char *topology, struct pm_client **out)
{
	const char *tmp = getenv("TMPDIR");
	char exe[PATH_MAX + 32];
	int r = -ETIMEDOUT, status, linger = bp->linger_ms;

	memset(bp, 0, sizeof(*bp));
	bp->linger_ms = linger;
	r = find_pagemapd(bench, exe, sizeof(exe));
	if (r < 0)
		return r;
	r = -ETIMEDOUT;
	snprintf(bp->dir, sizeof(bp->dir), "%s/pmbench-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
		 bench);
	if (!mkdtemp(bp->dir)) {
		r = -errno;
		fprintf(stderr, "pmbench %s: mkdtemp %s: %s\n", bench, bp->dir, strerror(-r));
		bp->dir[0] = '\0';
		return r;
	}
	if (strlen(bp->dir) + sizeof("/broker.sock") > sizeof(bp->sock)) {
		fprintf(stderr, "pmbench %s: temporary directory %s: path too long for a socket\n",
			bench, bp->dir);
		rmdir(bp->dir);
		bp->dir[0] = '\0';
		return -ENAMETOOLONG;
	}
	snprintf(bp->sock, sizeof(bp->sock), "%s/broker.sock", bp->dir);
	snprintf(bp->log, sizeof(bp->log), "%s/pagemapd.log", bp->dir);
	if (config) {
		FILE *f;

		snprintf(bp->conf, sizeof(bp->conf), "%s/pagemapd.json", bp->dir);
		f = fopen(bp->conf, "we");
		if (!f || fputs(config, f) < 0 || fclose(f) != 0) {
			fprintf(stderr, "pmbench %s: %s: %s\n", bench, bp->conf, strerror(errno));
			bench_broker_stop(bp);
			return -EIO;
		}
	}
	fflush(stdout);
	bp->pid = fork();
	if (bp->pid < 0) {
		r = -errno;
		bp->pid = 0;
		bench_broker_stop(bp);
		return r;
	}
	if (bp->pid == 0)
		exec_broker(bp, exe, cpu, topology);
	for (int i = 0; i < 500; i++) {
		if (waitpid(bp->pid, &status, WNOHANG) == bp->pid) {
			bp->pid = 0;
			r = -ECHILD;
			break;
		}
		r = pm_connect(bp->sock, out);
		if (r == 0)
			return 0;
		nap_ms(10);
	}
	fprintf(stderr, "pmbench %s: pagemapd (%s) did not start on %s: %s; its log:\n", bench,
		exe, bp->sock, r == -ECHILD ? "it exited" : strerror(-r));
	bench_broker_print_log(bp);
	bench_broker_stop(bp);
	return r;
}
