/* SPDX-License-Identifier: MIT */
/* The in-process broker of the stateful fuzzers (broker_harness.h). */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "broker_harness.h"

#ifndef PAGEMAP_SOURCE_ROOT
#define PAGEMAP_SOURCE_ROOT "."
#endif

struct broker fh_broker;
static char dir[64];
static int base_fds;

void fh_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\nbroker invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* Sockets and memfds open: what sessions, handles, async migrations and
 * allocations hold (libFuzzer's own pipes and files come and go). */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], link[128];
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		n += !strncmp(link, "socket:", 7) || !strncmp(link, "/memfd:", 7);
	}
	closedir(d);
	return n;
}

static void cleanup(void)
{
	struct broker *b = &fh_broker;

	if (b->running)
		broker_stop(b);
	b->running = false;
	if (dir[0])
		rmdir(dir);
}

void fh_start(void)
{
	struct broker *b = &fh_broker;
	const char *root = getenv("PAGEMAP_SOURCE_ROOT");

	if (b->running)
		return;
	signal(SIGPIPE, SIG_IGN);
	log_max = getenv("FUZZ_BROKER_LOG") ? LOG_DEBUG : LOG_ERR - 1;
	snprintf(dir, sizeof(dir), "/tmp/pm-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		fh_fail("mkdtemp: %s", strerror(errno));
	config_defaults(&b->conf);
	snprintf(b->conf.socket_path, sizeof(b->conf.socket_path), "%s/s", dir);
	snprintf(b->conf.topology, sizeof(b->conf.topology), "%s/%s", root ? root : PAGEMAP_SOURCE_ROOT,
		 "examples/topologies/qemu-pcie.json");
	b->conf.psi_path[0] = '\0';
	b->conf.linger_ms = 0;
	b->conf.migrate_workers = 2;
	/* Small limits, so inputs reach them. */
	b->conf.max_jobs_per_uid = 8;
	b->conf.max_alloc_chunks_per_uid = 256;
	b->conf.max_handles_per_uid = 16;
	b->conf.max_sessions_per_uid = 6;
	b->conf.min_residency_ms = 0;
	b->conf.max_residency_ms = 0;
	if (broker_start(b, false) < 0)
		fh_fail("the broker does not start (topology %s)", b->conf.topology);
	atexit(cleanup);
	fh_pump(50);
	base_fds = count_fds();
}

int fh_send(int sock, uint16_t opcode, uint64_t id, const void *p, size_t len, const int *fds,
	    unsigned nfds)
{
	struct pm_hdr hdr = { .version = 1, .opcode = opcode, .request_id = id };

	return pm_msg_send_flags(sock, &hdr, p, len, fds, nfds, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int fh_connect(bool hello)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pm_hello h = { .min_version = 1, .max_version = 1 };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fh_broker.conf.socket_path);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		return -1;
	}
	pm_name_put(h.client, sizeof(h.client), "fuzz");
	if (hello && fh_send(s, PM_OP_HELLO, 1, &h, sizeof(h), NULL, 0) < 0) {
		close(s);
		return -1;
	}
	return s;
}

static uint64_t ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool fh_pump(unsigned ms)
{
	uint64_t end = ms_now() + ms;
	int quiet = 0;

	do {
		unsigned inflight = 0, jobs = engine_jobs(&fh_broker, &inflight);
		int n = broker_dispatch(&fh_broker, jobs || inflight ? 1 : 0);

		if (n < 0)
			fh_fail("epoll_wait: %s", strerror(-n));
		quiet = n == 0 && !jobs && !inflight ? quiet + 1 : 0;
		if (quiet >= 3)
			return true;
	} while (ms_now() < end || quiet);
	return false;
}

void fh_check_clean(const char *what)
{
	struct broker *b = &fh_broker;
	unsigned inflight = 0, jobs;
	int fds;

	/* Sessions end as the loop sees their hang-ups, copies drain, and a
	 * pagemap fd still in flight in a closed socket's queue is released by
	 * the kernel a moment later (a deferred fput): its handle hangs up then. */
	for (int i = 0; i < 200 && (b->sessions || b->dying || b->stats.handles ||
				    engine_jobs(b, NULL)); i++)
		fh_pump(10);
	jobs = engine_jobs(b, &inflight);
	if (b->sessions)
		fh_fail("%s: a session outlived its client", what);
	if (jobs || inflight)
		fh_fail("%s: %u jobs and %u copies left with no client (a deadlock?)", what, jobs,
			inflight);
	if (b->dying)
		fh_fail("%s: a freed allocation was never reaped", what);
	if (b->stats.sessions || b->stats.handles || b->stats.allocations ||
	    b->stats.allocated_bytes)
		fh_fail("%s: stats left: %llu sessions, %llu handles, %llu allocations", what,
			(unsigned long long)b->stats.sessions, (unsigned long long)b->stats.handles,
			(unsigned long long)b->stats.allocations);
	if (b->uids)
		fh_fail("%s: a uid is still charged for something", what);
	if (b->refused_sessions)
		fh_fail("%s: refused sessions left", what);
	for (const struct pool *p = b->pools; p; p = p->next)
		if (p->used)
			fh_fail("%s: pool %s/%s has %llu bytes used by nobody", what, p->device,
				p->region, (unsigned long long)p->used);
	for (const struct pagemap *pm = b->pagemaps; pm; pm = pm->next)
		if (pm->pins || pm->refs || pm->busy)
			fh_fail("%s: pagemap %llu of %s: %llu pins, %u refs, %u busy", what,
				(unsigned long long)pm->id, pm->pool->device,
				(unsigned long long)pm->pins, pm->refs, pm->busy);
	fds = count_fds();
	if (fds != base_fds) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int)getpid());
		if (system(cmd) < 0)
			perror("ls");
		fh_fail("%s: %d fds open, %d before (a leak)", what, fds, base_fds);
	}
}
