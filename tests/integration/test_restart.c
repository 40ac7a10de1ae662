/* SPDX-License-Identifier: MIT */
/*
 * A broker restart with clients holding data in device pools. Stopped
 * (SIGTERM, as systemctl restart does), the broker copies every chunk home
 * first: no byte is lost, and clients carry on with the new broker at the
 * same socket, same addresses. Killed, the chunks of pools whose memory
 * died with it are lost, and say so: SIGBUS on access, never zeros; the
 * rest of the allocation is intact and the client carries on.
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

#define LEN (8u << 20)
#define AWAY (6u << 20) /* the first three 2 MiB chunks go to a device pool */

static const struct it_opts opts = { .linger_ms = 1000 };

/* Starts the broker again in the same directory, on the same socket. */
static int start_again(struct it_broker *br, const struct it_opts *o)
{
	int self_fds = br->self_fds, r = it_broker_start(br, o);

	/* Our fds are counted from the first start: the client's are ours. */
	br->self_fds = self_fds;
	return r;
}

/* Stops the broker with sig; its exit status. The directory stays. */
static int stop(struct it_broker *br, int sig)
{
	int status;

	kill(br->pid, sig);
	status = it_reap(br->pid, 10000);
	br->pid = 0;
	return status;
}

static void test_graceful_restart(void)
{
	struct pm_client *c;
	struct it_broker br;
	struct pollfd pfd;
	uint64_t ids[4];
	void *a;
	int fd;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &opts), 0);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, LEN, 0, &a), 0);
	it_pattern_fill(a, 0, LEN, 21);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, AWAY, fd, 0), 0);
	CU_ASSERT_EQUAL(it_chunks_in(c, a, LEN, it_pagemap_id(fd)), 3);

	CU_ASSERT_EQUAL_FATAL(stop(&br, SIGTERM), 0);
	CU_ASSERT(it_log_has(&br, "shutdown: 1 device pagemaps revoked, 6291456 bytes evacuated",
			     " 0 lost", NULL));
	CU_ASSERT_EQUAL_FATAL(start_again(&br, &opts), 0);
	/* The holder was told: the event, then the hang-up. */
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	CU_ASSERT(poll(&pfd, 1, 1000) == 1);
	close(fd);
	/* Every byte is home; the next call finds the new broker by itself. */
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, LEN, 21), SIZE_MAX);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, LEN, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, a, LEN, ids, 4), 4);
	CU_ASSERT_EQUAL(ids[3], it_pagemap_id(fd));
	CU_ASSERT_EQUAL(it_pattern_check(a, 0, LEN, 21), SIZE_MAX); /* faults home */
	close(fd);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/*
 * In a child: LEN of data seeded with seed, its first AWAY bytes moved to an
 * emulated pool; says so ('m') and waits until the broker was killed and
 * started again ('r'). 0, or the exit status that says what failed.
 */
static int away_then_restart(struct it_broker *br, uint64_t seed, int to_parent, int from_parent,
			     struct pm_client **c, void **a)
{
	int fd;

	*c = it_connect(br);
	if (!*c || pm_alloc(*c, LEN, 0, a) < 0)
		return 10;
	it_pattern_fill(*a, 0, LEN, seed);
	fd = pagemap_open(*c, IT_EMU0, NULL, 0);
	if (fd < 0 || pm_migrate(*c, *a, AWAY, fd, 0) < 0)
		return 11;
	close(fd);
	if (it_post(to_parent, 'm') < 0 || it_wait_byte(from_parent, 20000) != 'r')
		return 12;
	return 0;
}

/* In a child: data away in an emulated pool, the broker killed and started
 * again; host chunks intact, the client carries on, the lost chunk SIGBUS. */
static int after_crash(struct it_broker *br, int to_parent, int from_parent)
{
	struct pm_client *c;
	volatile uint8_t *p;
	void *a, *b;
	int fd, r = away_then_restart(br, 22, to_parent, from_parent, &c, &a);

	if (r)
		return r;
	p = a;
	/* The new broker serves this client: a new allocation works. */
	if (pm_alloc(c, 2u << 20, 0, &b) < 0)
		return 13;
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	if (fd < 0 || pm_migrate(c, b, 2u << 20, fd, 0) < 0)
		return 14;
	close(fd);
	if (it_pattern_check(a, AWAY, LEN - AWAY, 22) != SIZE_MAX)
		return 15; /* the chunk that stayed home */
	/* Lost: SIGBUS, the default action (a sanitizer would report it). */
	signal(SIGBUS, SIG_DFL);
	(void)p[0];
	return 16;
}

/*
 * A client (child) puts data away and says 'm'; the broker is SIGKILLed and
 * started again (o); the child is told 'r' and goes on. Its exit status.
 */
static int crash_under(struct it_broker *br, const struct it_opts *o,
		       int (*child)(struct it_broker *, int, int), const char *log_after_start)
{
	int up[2], down[2], status = -1;
	pid_t pid;

	if (pipe2(up, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(down, O_CLOEXEC) < 0) {
		close(up[0]);
		close(up[1]);
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(child(br, up[1], down[0]));
	if (pid > 0) {
		CU_ASSERT_EQUAL(it_wait_byte(up[0], 20000), 'm');
		CU_ASSERT_EQUAL(stop(br, SIGKILL), 128 + SIGKILL);
		CU_ASSERT_EQUAL(start_again(br, o), 0);
		if (log_after_start)
			CU_ASSERT(it_log_has(br, log_after_start, NULL));
		it_post(down[1], 'r');
		status = it_reap(pid, 20000);
	}
	for (int i = 0; i < 2; i++) {
		close(up[i]);
		close(down[i]);
	}
	return status;
}

static void test_crash_restart(void)
{
	struct it_broker br;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &opts), 0);
	CU_ASSERT_EQUAL(crash_under(&br, &opts, after_crash, NULL), 128 + SIGBUS);
	it_broker_stop(&br);
}

/* In a child: data away in an emulated pool kept in a state directory; the
 * broker killed and started again; every byte must come back. */
static int after_recovered_crash(struct it_broker *br, int to_parent, int from_parent)
{
	struct pm_client *c;
	uint64_t ids[4];
	void *a;
	int r = away_then_restart(br, 23, to_parent, from_parent, &c, &a);

	if (r)
		return r;
	/* The first call reconnects and registers again: the chunks are found
	 * where the old broker left them. */
	if (pm_query(c, a, LEN, ids, 4) != 4 || !ids[0] || !ids[2] || ids[3])
		return 13;
	if (it_pattern_check(a, 0, LEN, 23) != SIZE_MAX)
		return 14; /* faults fetch them from the recovered pool */
	if (pm_query(c, a, LEN, ids, 4) != 4 || ids[0])
		return 15;
	pm_free(c, a);
	pm_disconnect(c);
	return 0;
}

static void test_crash_recovered(void)
{
	char conf[512];
	struct it_opts o = { .linger_ms = 1000, .config = conf };
	struct it_broker br;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	snprintf(conf, sizeof(conf), "{\"pressure\": {\"psi_path\": \"\"}, \"state_dir\": \"%s\"}\n",
		 it_path(&br, "state"));
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	CU_ASSERT_EQUAL(crash_under(&br, &o, after_recovered_crash, "recovering 3 chunks"), 0);
	CU_ASSERT(it_log_has(&br, "3 chunks recovered from device pools", NULL));
	it_broker_stop(&br);
}

/*
 * From review: after a reconnect the new broker numbers the allocations
 * anew. A request built with an old id must not reach it (A's free freed
 * B; A's fault fetched B's chunk).
 */
static void test_ids_after_restart(void)
{
	struct pm_client *c;
	struct it_broker br;
	uint64_t ids[2];
	void *a, *b;
	int fd;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &opts), 0);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 << 20, 0, &a), 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 << 20, 0, &b), 0);
	it_pattern_fill(a, 0, 4 << 20, 31);
	it_pattern_fill(b, 0, 4 << 20, 32);
	CU_ASSERT_EQUAL_FATAL(stop(&br, SIGTERM), 0);
	CU_ASSERT_EQUAL_FATAL(start_again(&br, &opts), 0);
	/* Freeing A first: built with A's old id, which may be B's now. */
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(pm_query(c, b, 4 << 20, ids, 2), 2);
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, b, 4 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(it_pattern_check(b, 0, 4 << 20, 32), SIZE_MAX);
	close(fd);
	CU_ASSERT_EQUAL(pm_free(c, b), 0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* In a child: a move refused halfway (quota), a restart, then a touch of a
 * chunk that never left and was never written: zeros, not SIGBUS. */
static int refused_then_restart(struct it_broker *br, int to_parent, int from_parent)
{
	struct pm_client *c = it_connect(br);
	volatile uint8_t *p;
	void *a;
	int fd;

	if (!c || pm_alloc(c, 8 << 20, 0, &a) < 0)
		return 10;
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	if (fd < 0 || pm_migrate(c, a, 8 << 20, fd, 0) != -EDQUOT)
		return 11;
	close(fd);
	if (it_post(to_parent, 'm') < 0 || it_wait_byte(from_parent, 20000) != 'r')
		return 12;
	signal(SIGBUS, SIG_DFL);
	p = a;
	return p[(6 << 20) + 5] == 0 ? 0 : 13; /* chunk 3: home all along */
}

static void test_refused_move_restart(void)
{
	static const char conf[] = "{\"pressure\": {\"psi_path\": \"\"},"
				   " \"limits\": {\"max_placed_bytes_per_uid\": 6291456}}\n";
	struct it_opts o = { .linger_ms = 1000, .config = conf };
	struct it_broker br;

	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	CU_ASSERT_EQUAL(crash_under(&br, &o, refused_then_restart, NULL), 0);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "graceful restart: every chunk home, the client carries on",
		  test_graceful_restart },
		{ "crash: lost chunks SIGBUS, the rest intact, the client carries on",
		  test_crash_restart },
		{ "crash with a state directory: every chunk recovered", test_crash_recovered },
		{ "allocation ids from before a restart reach no one", test_ids_after_restart },
		{ "a move refused halfway: no chunk taken for lost", test_refused_move_restart },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: restart", tests);
}
