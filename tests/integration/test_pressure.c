/* SPDX-License-Identifier: MIT */
/*
 * Lingering pagemaps reclaimed early: PSI memory pressure (a file standing in
 * for /proc/pressure/memory) and a pool's free bytes below the watermark.
 * The linger is a minute, so only the pressure rules can end one in time.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "it_broker.h"

#define LINGER 60000
#define PSI_LOW "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n" \
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
#define PSI_HIGH "some avg10=99.00 avg60=0.00 avg300=0.00 total=0\n" \
		 "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
/* The broker looks at least once a second while pagemaps linger. */
#define ONE_LOOK 1300

static bool start(struct it_broker *br, unsigned long long watermark)
{
	char cfg[600];
	struct it_opts o = { .linger_ms = LINGER, .config = cfg };
	int r;

	if (it_broker_init(br) < 0)
		return false;
	CU_ASSERT_EQUAL(it_write_file(it_path(br, "psi"), PSI_LOW), 0);
	if (watermark)
		snprintf(cfg, sizeof(cfg),
			 "{\"pressure\": {\"psi_path\": \"%s\", \"watermark_bytes\": %llu}}\n",
			 it_path(br, "psi"), watermark);
	else
		snprintf(cfg, sizeof(cfg), "{\"pressure\": {\"psi_path\": \"%s\"}}\n",
			 it_path(br, "psi"));
	r = it_broker_start(br, &o);
	CU_ASSERT_EQUAL(r, 0);
	return r == 0;
}

static uint64_t open_and_linger(struct pm_client *c, const char *device)
{
	int fd = pagemap_open(c, device, NULL, 0);
	uint64_t id = it_id(fd);

	CU_ASSERT(fd >= 0 && id != 0);
	if (fd >= 0)
		close(fd);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	return id;
}

static void test_psi(void)
{
	struct pagemap_info info;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	uint64_t id, t0;
	int held;

	if (!start(&br, 0))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	held = pagemap_open(c, "node1", NULL, 0); /* active: pressure leaves it alone */
	CU_ASSERT_FATAL(held >= 0);
	id = open_and_linger(c, "node0");

	/* avg10 0.00 is below the default 20.0: it stays. */
	it_sleep_ms(ONE_LOOK);
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.reclaimed, 0);

	/* Pressure: reclaimed long before the minute is over. */
	CU_ASSERT_EQUAL(it_write_file(it_path(&br, "psi"), PSI_HIGH), 0);
	t0 = it_now_ms();
	IT_WAIT_UNTIL(it_state(c, id) == 0, 2500)
		;
	CU_ASSERT_EQUAL(it_state(c, id), 0);
	CU_ASSERT(it_now_ms() - t0 < 2500);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.reclaimed, 1);
	CU_ASSERT_EQUAL(st.torn_down, 0);
	CU_ASSERT_EQUAL(st.pagemaps, 1);
	CU_ASSERT_EQUAL(pagemap_query(held, &info), 0);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);

	/* Still under pressure: the next one to linger goes too. */
	close(held);
	IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.pagemaps == 0, 2500)
		;
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	CU_ASSERT_EQUAL(st.reclaimed, 2);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/*
 * Watermark above the emulated pools' 64 MiB and below the emulated nodes'
 * gigabyte: an emulated pool's lingering pagemap goes at once, a node's
 * stays, and an active one is never touched.
 */
static void test_watermark(void)
{
	struct pagemap_info info;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	uint64_t node, emu;
	int held;

	if (!start(&br, 2 * IT_EMU_CAPACITY))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	held = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(held >= 0);
	node = open_and_linger(c, "node0");

	it_sleep_ms(ONE_LOOK);
	CU_ASSERT_EQUAL(pagemap_query(held, &info), 0);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);
	CU_ASSERT_EQUAL(it_state(c, node), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.reclaimed, 0);

	emu = it_id(held);
	close(held);
	IT_WAIT_UNTIL(it_state(c, emu) == 0, 2500)
		;
	CU_ASSERT_EQUAL(it_state(c, emu), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.reclaimed, 1);
	CU_ASSERT_EQUAL(st.torn_down, 0);
	CU_ASSERT_EQUAL(it_state(c, node), PM_STATE_LINGERING);
	CU_ASSERT_FALSE(it_has_fd_named(br.pid, "pagemapd:emulated:"));

	/* Same for another pool (not waiting to see it linger: it may be gone first). */
	held = pagemap_open(c, IT_EMU0, NULL, 0);
	emu = it_id(held);
	CU_ASSERT_FATAL(held >= 0 && emu != 0);
	close(held);
	IT_WAIT_UNTIL(it_state(c, emu) == 0, 2500)
		;
	CU_ASSERT_EQUAL(it_state(c, emu), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.reclaimed, 2);
	CU_ASSERT_EQUAL(it_state(c, node), PM_STATE_LINGERING);
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "PSI pressure reclaims lingering pagemaps", test_psi },
		{ "a pool below its watermark is reclaimed", test_watermark },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: pressure", tests);
}
