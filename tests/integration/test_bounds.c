/* SPDX-License-Identifier: MIT */
/*
 * Per-uid limits (docs/security.md): whatever a client can make the broker
 * keep is charged to its uid, and a request past the uid's share is refused
 * with the limit's errno and a log line naming the uid and the limit, while
 * the broker goes on serving everyone else. Also: a broker out of fds stops
 * accepting instead of spinning, and accepts again once fds are free.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_broker.h"

static bool up_with(struct it_broker *br, const char *limits, const char *migration)
{
	char conf[512];
	struct it_opts o = { .linger_ms = 1000, .config = conf };

	snprintf(conf, sizeof(conf),
		 "{\"pressure\": {\"psi_path\": \"\"}, \"limits\": {%s}%s%s%s}\n", limits,
		 migration ? ", \"migration\": {" : "", migration ? migration : "",
		 migration ? "}" : "");
	CU_ASSERT_EQUAL_FATAL(it_broker_init(br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(br, &o), 0);
	return true;
}

static void test_sessions_per_uid(void)
{
	struct pm_client *c[4];
	struct it_broker br;

	up_with(&br, "\"max_sessions_per_uid\": 3", NULL);
	for (int i = 0; i < 3; i++) {
		c[i] = it_connect(&br);
		CU_ASSERT_FATAL(c[i] != NULL);
	}
	/* The fourth is told why (pm_connect's error), and nothing else changes. */
	setenv("PAGEMAP_SOCKET", br.sock, 1);
	CU_ASSERT_EQUAL(pm_connect(NULL, &c[3]), -EMFILE);
	CU_ASSERT(it_log_has(&br, "uid ", "max_sessions_per_uid (3) reached", NULL));
	pm_disconnect(c[0]);
	c[0] = NULL;
	IT_WAIT_UNTIL((c[0] = it_connect(&br)) != NULL, 2000)
		;
	CU_ASSERT(c[0] != NULL);
	for (int i = 0; i < 3; i++)
		if (c[i])
			pm_disconnect(c[i]);
	it_broker_stop(&br);
}

static void test_handles_per_uid(void)
{
	struct it_broker br;
	struct pm_client *c;
	int fd[5];

	up_with(&br, "\"max_handles_per_uid\": 4", NULL);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	for (int i = 0; i < 4; i++) {
		fd[i] = pagemap_open(c, i % 2 ? "node0" : IT_EMU0, NULL, 0);
		CU_ASSERT(fd[i] >= 0);
	}
	CU_ASSERT_EQUAL(pagemap_open(c, "node1", NULL, 0), -EMFILE);
	CU_ASSERT(it_log_has(&br, "max_handles_per_uid (4) reached", NULL));
	close(fd[0]);
	/* The broker sees the close as a hang-up: the handle is given back. */
	fd[4] = -1;
	IT_WAIT_UNTIL((fd[4] = pagemap_open(c, "node1", NULL, 0)) >= 0, 2000)
		;
	CU_ASSERT(fd[4] >= 0);
	for (int i = 1; i < 5; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* Everything of a uid that holds an fd in the broker shares one budget. */
static void test_fd_share(void)
{
	struct it_broker br;
	struct pm_client *c;
	int fds[32], n = 0, r = 0;
	void *a;

	up_with(&br, "\"max_fds_per_uid\": 20", NULL);
	c = it_connect(&br); /* 1: the session */
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(pm_alloc(c, 2 << 20, 0, &a), 0); /* 2: its memfd */
	while (n < 32 && (r = pagemap_open(c, "node0", NULL, 0)) >= 0)
		fds[n++] = r;
	CU_ASSERT_EQUAL(r, -EMFILE);
	CU_ASSERT_EQUAL(n, 18);
	CU_ASSERT(it_log_has(&br, "max_fds_per_uid (20) reached", NULL));
	for (int i = 0; i < n; i++)
		close(fds[i]);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/*
 * Finding 4: an allocation's chunk table is the broker's memory. A sparse
 * 256 GiB allocation in 64 KiB chunks (4 Mi chunks, 352 MiB of table) was
 * accepted; now the uid's chunk budget refuses it, and smaller ones that
 * fit are accepted until the budget is spent.
 */
static void test_allocation_budget(void)
{
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	void *a, *b, *big;

	up_with(&br, "\"max_alloc_chunks_per_uid\": 64, \"max_alloc_bytes_per_uid\": 8388608",
		NULL);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(pm_alloc(c, 256ull << 30, PM_ALLOC_CHUNK_SHIFT(16), &big), -EDQUOT);
	CU_ASSERT(it_log_has(&br, "max_alloc_chunks_per_uid (64) reached", NULL));
	CU_ASSERT_EQUAL(pm_alloc(c, 4u << 20, PM_ALLOC_CHUNK_SHIFT(16), &a), 0); /* 64 chunks */
	CU_ASSERT_EQUAL(pm_alloc(c, 64u << 10, PM_ALLOC_CHUNK_SHIFT(16), &b), -EDQUOT);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	/* Bytes: 8 MiB in 2 MiB chunks fits, 10 MiB does not. */
	CU_ASSERT_EQUAL(pm_alloc(c, 10u << 20, 0, &b), -EDQUOT);
	CU_ASSERT(it_log_has(&br, "max_alloc_bytes_per_uid (8388608) reached", NULL));
	CU_ASSERT_EQUAL(pm_alloc(c, 8u << 20, 0, &b), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 1);
	CU_ASSERT_EQUAL(pm_free(c, b), 0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/*
 * Finding 5: queued migrations are bounded per uid. Advice-driven moves
 * that wait out a residency stay queued; the third is refused with
 * -EAGAIN, and one is accepted again once they are over.
 */
static void test_jobs_per_uid(void)
{
	struct it_broker br;
	struct pm_client *c;
	uint8_t *p;
	void *a;
	int fd, cfd[3];

	up_with(&br, "\"max_jobs_per_uid\": 2",
		"\"min_residency_ms\": 1500, \"max_residency_ms\": 1500");
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 2 << 20, 0, &a), 0);
	p = a;
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_madvise(c, a, 2 << 20, PM_ADV_PREFERRED_LOCATION, fd), PM_ADV_APPLIED);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 2 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(p[0], 0); /* home by a fault: the residency starts */
	cfd[0] = pm_migrate(c, a, 2 << 20, PM_FD_PREFERRED, PM_MIGRATE_ASYNC);
	cfd[1] = pm_migrate(c, a, 2 << 20, PM_FD_PREFERRED, PM_MIGRATE_ASYNC);
	CU_ASSERT(cfd[0] >= 0 && cfd[1] >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 2 << 20, PM_FD_PREFERRED, PM_MIGRATE_ASYNC), -EAGAIN);
	CU_ASSERT(it_log_has(&br, "max_jobs_per_uid (2) reached", NULL));
	CU_ASSERT(it_readable(cfd[0], 10000));
	CU_ASSERT(it_readable(cfd[1], 10000));
	cfd[2] = -1;
	IT_WAIT_UNTIL((cfd[2] = pm_migrate(c, a, 2 << 20, PM_FD_SYSTEM, PM_MIGRATE_ASYNC)) >= 0,
		      2000)
		;
	CU_ASSERT(cfd[2] >= 0 && it_readable(cfd[2], 10000));
	for (int i = 0; i < 3; i++)
		if (cfd[i] >= 0)
			close(cfd[i]);
	close(fd);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* CPU seconds the process has used (utime + stime), from /proc. */
static double cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (!p || !(p = strrchr(buf, ')')))
		return -1;
	/* Fields after the name: state is 3rd; utime and stime are 14th, 15th. */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * Finding 3: a broker out of fds (a client holds handles up to the fd
 * limit) used to spin on its listening socket, which accept() could not
 * empty. It must idle until fds are free, then accept the waiting client.
 */
static void test_out_of_fds(void)
{
	struct it_opts o = { .linger_ms = 1000,
			     .config = "{\"pressure\": {\"psi_path\": \"\"}}\n" };
	const char *old = getenv("PAGEMAPD_WRAPPER");
	struct it_broker br;
	struct pm_client *c;
	int fds[256], n = 0, r = 0, waiter, extra;
	double t0, used;
	pid_t pid;

	if (old && *old) {
		printf("\n  SKIP: PAGEMAPD_WRAPPER is set; this test sets its own\n");
		return;
	}
	setenv("PAGEMAPD_WRAPPER", "prlimit --nofile=64:64", 1);
	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	r = it_broker_start(&br, &o);
	unsetenv("PAGEMAPD_WRAPPER");
	CU_ASSERT_EQUAL_FATAL(r, 0);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	while (n < 256 && (r = pagemap_open(c, "node0", NULL, 0)) >= 0)
		fds[n++] = r;
	CU_ASSERT_EQUAL(r, -EMFILE);
	CU_ASSERT(n > 10 && n < 64);
	/* A handle takes two fds for a moment: one may be left, for a session. */
	extra = it_raw_connect(&br);
	CU_ASSERT_FATAL(extra >= 0);
	it_raw_hello(extra);

	/* The next client waits in the backlog: accept() fails with EMFILE. */
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct pm_client *w;

		/* Our copies of the handles would keep them open. */
		for (int i = 0; i < n; i++)
			close(fds[i]);
		w = it_connect(&br);

		_exit(w ? 0 : 1);
	}
	it_sleep_ms(200);
	t0 = cpu_seconds(br.pid);
	it_sleep_ms(1000);
	used = cpu_seconds(br.pid) - t0;
	printf("\n  broker CPU while out of fds: %.2f s in 1 s\n", used);
	CU_ASSERT(t0 >= 0 && used < 0.3);
	CU_ASSERT(it_log_has(&br, "cannot accept connections", "paused", NULL));

	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(extra);
	waiter = it_reap(pid, 5000);
	CU_ASSERT_EQUAL(waiter, 0);
	if (waiter)
		printf("\n  waiter: %d\n", waiter);
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "sessions per uid", test_sessions_per_uid },
		{ "handles per uid", test_handles_per_uid },
		{ "one fd budget per uid", test_fd_share },
		{ "allocation chunks and bytes per uid", test_allocation_budget },
		{ "queued migrations per uid", test_jobs_per_uid },
		{ "out of fds: no spin, accepts again", test_out_of_fds },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: bounds", tests);
}
