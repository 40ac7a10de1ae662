/* SPDX-License-Identifier: MIT */
/*
 * libpagemap's argument checks and error returns against a real broker:
 * fds that are not pagemap fds, bad open arguments, no broker at the path,
 * the broker going away under a holder, and one client shared by threads.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "it_broker.h"

static void test_not_a_pagemap_fd(void)
{
	struct pagemap_event ev;
	struct pagemap_info info;
	int p[2], st[2], dg[2], file, closed, fds[7];

	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) == 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dg) == 0);
	file = open(cu_source_path("meson.build"), O_RDONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(file >= 0);
	closed = dup(file);
	close(closed);
	memcpy(fds, (int[]){ p[0], p[1], file, st[0], dg[0], closed, -1 }, sizeof(fds));
	for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		CU_ASSERT_EQUAL(pagemap_query(fds[i], &info), -EBADF);
		CU_ASSERT_EQUAL(pagemap_read_event(fds[i], &ev), -EBADF);
	}
	/* Nothing was written to the stream socket either. */
	CU_ASSERT_EQUAL(recv(st[1], &info, sizeof(info), MSG_DONTWAIT), -1);
	CU_ASSERT_EQUAL(errno, EAGAIN);
	close(p[0]);
	close(p[1]);
	close(st[0]);
	close(st[1]);
	close(dg[0]);
	close(dg[1]);
	close(file);
}

/*
 * A SEQPACKET socket that is not a pagemap fd cannot be told apart by its
 * type; pagemap_query must still come back (an error) instead of waiting
 * forever for a reply nobody will send. Run in a child with a deadline.
 */
static void test_foreign_seqpacket(void)
{
	int sv[2], status;
	pid_t pid;

	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct pagemap_info info;
		int r = pagemap_query(sv[0], &info);

		_exit(r == -EBADF ? 0 : r < 0 ? 1 : 2);
	}
	close(sv[0]);
	status = it_reap(pid, 2000); /* -1: still waiting, killed */
	if (status < 0)
		fprintf(stderr, "pagemap_query on a foreign SEQPACKET socket still blocked after 2 s\n");
	CU_ASSERT(status == 0 || status == 1);
	close(sv[1]);
}

static void test_open_arguments(void)
{
	char dev63[64], dev64[65], reg31[32], reg32[33];
	struct pagemap_info info;
	struct it_broker br;
	struct pm_client *c;
	int fd;

	if (!it_broker_up(&br, 0))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	memset(dev63, 'd', 63), dev63[63] = '\0';
	memset(dev64, 'd', 64), dev64[64] = '\0';
	memset(reg31, 'r', 31), reg31[31] = '\0';
	memset(reg32, 'r', 32), reg32[32] = '\0';

	CU_ASSERT_EQUAL(it_open_err(c, "node0", NULL, 1), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", NULL, 0x80000000u), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, NULL, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, "", NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(NULL, "node0", NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, dev64, NULL, 0), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", reg32, 0), -EINVAL);
	CU_ASSERT_EQUAL(it_open_err(c, "no\tde", NULL, 0), -EINVAL);
	/* The longest names that fit are fine, just unknown. */
	CU_ASSERT_EQUAL(it_open_err(c, dev63, NULL, 0), -ENOENT);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", reg31, 0), -ENOENT);
	CU_ASSERT_EQUAL(it_open_err(c, "node7", NULL, 0), -ENOENT);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", "vram", 0), -ENOENT);
	CU_ASSERT_EQUAL(pm_ping(NULL), -EINVAL);
	pm_disconnect(NULL);

	fd = pagemap_open(c, IT_EMU0, "mem", 0);
	CU_ASSERT(fd >= 0);
	CU_ASSERT_EQUAL(pagemap_query(fd, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pagemap_read_event(fd, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), 0);
	if (fd >= 0)
		close(fd);
	/* Nothing above left a handle behind. */
	{
		struct pm_stats_reply st;

		IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.handles == 0, 2000)
			;
		CU_ASSERT_EQUAL(st.handles, 0);
	}
	pm_disconnect(c);
	it_broker_stop(&br);
}

static void test_connect_errors(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/pm-it-api-XXXXXX", path[200], longp[200];
	struct pm_client *c = (struct pm_client *)&sa; /* must stay untouched on failure */
	int s;

	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/missing.sock", dir);
	CU_ASSERT_EQUAL(pm_connect(path, &c), -ENOENT);
	CU_ASSERT_PTR_EQUAL(c, (struct pm_client *)&sa);

	/* A socket file nobody listens on any more. */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(s);
	CU_ASSERT_EQUAL(pm_connect(path, &c), -ECONNREFUSED);
	unlink(path);

	/* A plain file is no broker either. */
	snprintf(path, sizeof(path), "%s/file", dir);
	CU_ASSERT_EQUAL(it_write_file(path, "x"), 0);
	CU_ASSERT(pm_connect(path, &c) < 0);
	unlink(path);

	memset(longp, 'l', sizeof(longp) - 1);
	longp[0] = '/';
	longp[sizeof(longp) - 1] = '\0';
	CU_ASSERT(pm_connect(longp, &c) < 0);
	CU_ASSERT_EQUAL(pm_connect(NULL, NULL), -EINVAL);
	CU_ASSERT_PTR_EQUAL(c, (struct pm_client *)&sa);
	rmdir(dir);
}

/* $PAGEMAP_SOCKET is used for a NULL path. */
static void test_connect_env(void)
{
	struct it_broker br;
	struct pm_client *c = NULL;

	if (!it_broker_up(&br, 0))
		return;
	setenv("PAGEMAP_SOCKET", br.sock, 1);
	CU_ASSERT_EQUAL(pm_connect(NULL, &c), 0);
	unsetenv("PAGEMAP_SOCKET");
	CU_ASSERT(c != NULL);
	if (c) {
		CU_ASSERT_EQUAL(pm_ping(c), 0);
		pm_disconnect(c);
	}
	it_broker_stop(&br);
}

/* The broker exits under a holder: -ENODEV, and no crash on our side. */
static void test_broker_gone(void)
{
	struct pagemap_event ev;
	struct pagemap_info info;
	struct it_broker br;
	struct pm_client *c;
	int fd;

	if (!it_broker_up(&br, 1000))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	fd = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	br.self_fds += 2; /* fd and c outlive the broker on purpose */
	it_broker_stop(&br);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), -ENODEV);
	CU_ASSERT_EQUAL(pagemap_read_event(fd, &ev), -ENODEV);
	CU_ASSERT(pm_ping(c) < 0);
	CU_ASSERT(pagemap_open(c, "node0", NULL, 0) < 0);
	close(fd);
	pm_disconnect(c);
}

struct worker {
	struct pm_client *c;
	int failures;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 200; i++) {
		struct pagemap_info info;
		int fd = pagemap_open(w->c, i % 3 ? "node0" : IT_EMU1, NULL, 0);

		if (fd < 0 || pagemap_query(fd, &info) != 0 || pm_ping(w->c) != 0)
			w->failures++;
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

/* One client, four threads: every request gets its own reply. */
static void test_threads(void)
{
	struct worker w[4];
	pthread_t t[4];
	struct it_broker br;
	struct pm_client *c;

	if (!it_broker_up(&br, 1000))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .c = c };
		CU_ASSERT_FATAL(pthread_create(&t[i], NULL, work, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(w[i].failures, 0);
	}
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "pagemap_query on fds that are not pagemaps: -EBADF", test_not_a_pagemap_fd },
		{ "pagemap_query on a foreign SEQPACKET socket returns", test_foreign_seqpacket },
		{ "pagemap_open argument checks", test_open_arguments },
		{ "pm_connect without a broker", test_connect_errors },
		{ "pm_connect(NULL) uses $PAGEMAP_SOCKET", test_connect_env },
		{ "the broker gone under a holder: -ENODEV", test_broker_gone },
		{ "one client shared by threads", test_threads },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: libpagemap API", tests);
}
