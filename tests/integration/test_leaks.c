/* SPDX-License-Identifier: MIT */
/*
 * Many open/close cycles leave nothing behind: not in this process
 * (/proc/self/fd), not in the broker (/proc/PID/fd, its handle and pagemap
 * counts).
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "it_broker.h"

#define CYCLES 1000

/* The broker's fds once only c is connected. */
static int settled_fds(const struct it_broker *br, struct pm_client *c)
{
	struct pm_stats_reply st;

	IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.sessions == 1, 2000)
		;
	CU_ASSERT_EQUAL(st.sessions, 1);
	return it_count_fds(br->pid);
}

static void test_cycles_no_linger(void)
{
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	int self0, broker0, failed = 0, bad_query = 0;

	if (!it_broker_up(&br, 0))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	broker0 = settled_fds(&br, c);
	self0 = it_count_fds(0);
	for (int i = 0; i < CYCLES; i++) {
		/* A host pool and an emulated one (a memfd per pagemap). */
		int fd = pagemap_open(c, i % 2 ? IT_EMU0 : "node0", NULL, 0);
		struct pagemap_info info;

		if (fd < 0) {
			failed++;
			continue;
		}
		if (i % 50 == 0 && pagemap_query(fd, &info) != 0)
			bad_query++;
		close(fd);
	}
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(bad_query, 0);
	CU_ASSERT_EQUAL(it_count_fds(0), self0);
	IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.handles == 0 && st.pagemaps == 0, 3000)
		;
	CU_ASSERT_EQUAL(st.handles, 0);
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	CU_ASSERT(st.created >= 2 && st.created <= CYCLES);
	CU_ASSERT_EQUAL(st.created, st.torn_down);
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker0, 2000), broker0);
	CU_ASSERT_FALSE(it_has_fd_named(br.pid, "pagemapd:emulated:"));
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* With a linger, the cycles reuse one pagemap per pool. */
static void test_cycles_lingering(void)
{
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	int self0, broker0, failed = 0;
	uint64_t id;

	if (!it_broker_up(&br, 10000))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	broker0 = settled_fds(&br, c);
	self0 = it_count_fds(0);
	id = 0;
	for (int i = 0; i < CYCLES; i++) {
		int fd = pagemap_open(c, "node1", NULL, 0);

		if (fd < 0) {
			failed++;
			continue;
		}
		if (i == 0)
			id = it_id(fd);
		close(fd);
	}
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(it_count_fds(0), self0);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 1);
	CU_ASSERT_EQUAL(st.pagemaps, 1);
	CU_ASSERT_EQUAL(st.handles, 0);
	CU_ASSERT_EQUAL(st.torn_down, 0);
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker0, 2000), broker0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* Sessions come and go: none stays behind. */
static void test_session_cycles(void)
{
	struct pm_stats_reply st;
	struct pm_client_info ci[8];
	struct it_broker br;
	struct pm_client *c;
	int self0, broker0, failed = 0;

	if (!it_broker_up(&br, 0))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	broker0 = settled_fds(&br, c);
	self0 = it_count_fds(0);
	for (int i = 0; i < CYCLES / 5; i++) {
		struct pm_client *k = it_connect(&br);
		int fd = k ? pagemap_open(k, "node0", NULL, 0) : -1;

		if (fd < 0)
			failed++;
		else
			close(fd);
		pm_disconnect(k);
	}
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_EQUAL(it_count_fds(0), self0);
	IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.sessions == 1 && st.pagemaps == 0, 3000)
		;
	CU_ASSERT_EQUAL(st.sessions, 1);
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	CU_ASSERT_EQUAL(it_clients(c, ci, 8), 1);
	CU_ASSERT_EQUAL(ci[0].pid, getpid());
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker0, 2000), broker0);
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "1000 open/close cycles, no linger", test_cycles_no_linger },
		{ "1000 open/close cycles, lingering", test_cycles_lingering },
		{ "200 connect/open/close/disconnect cycles", test_session_cycles },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: leaks", tests);
}
