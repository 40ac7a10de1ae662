/* SPDX-License-Identifier: MIT */
/*
 * Revoking a device's pagemaps: by an administrator (PM_OP_REVOKE) and by
 * the device's sysfs directory vanishing under a holder. Holders see POLLIN
 * (the event), then POLLHUP; everything later is -ENODEV; other pools are
 * not disturbed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "it_broker.h"

static short poll_fd(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 ? p.revents : 0;
}

/* One holder's view of its revoked pagemap. */
static void check_revoked(int fd, uint64_t id, int reason)
{
	struct pagemap_event ev = { 0 };
	struct pagemap_info info;

	CU_ASSERT(poll_fd(fd, 2000) & POLLIN);
	CU_ASSERT_EQUAL(pagemap_read_event(fd, &ev), 1);
	CU_ASSERT_EQUAL(ev.type, PAGEMAP_EVENT_REVOKED);
	CU_ASSERT_EQUAL(ev.reason, reason);
	CU_ASSERT_EQUAL(ev.id, id);
	CU_ASSERT(poll_fd(fd, 2000) & POLLHUP);
	CU_ASSERT_EQUAL(pagemap_read_event(fd, &ev), -ENODEV);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), -ENODEV);
}

static void test_admin_revoke(void)
{
	struct pagemap_event ev;
	struct pagemap_info info;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	int f1, f2, f1dup, other, lingering;
	uint64_t id, other_id, ling_id;

	if (!it_broker_up(&br, 4000))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	f1 = pagemap_open(c, IT_EMU0, NULL, 0);
	f2 = pagemap_open(c, IT_EMU0, "mem", 0);
	other = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(f1 >= 0 && f2 >= 0 && other >= 0);
	f1dup = fcntl(f1, F_DUPFD_CLOEXEC, 0);
	CU_ASSERT_FATAL(f1dup >= 0);
	id = it_id(f1);
	other_id = it_id(other);
	CU_ASSERT_EQUAL(it_id(f2), id);
	/* No event on a live pagemap. */
	CU_ASSERT_EQUAL(pagemap_read_event(f1, &ev), 0);
	CU_ASSERT_EQUAL(poll_fd(f1, 0), 0);
	/* A lingering pagemap of another device, revoked later. */
	lingering = pagemap_open(c, IT_EMU1, NULL, 0);
	ling_id = it_id(lingering);
	CU_ASSERT_FATAL(lingering >= 0);
	close(lingering);
	IT_WAIT_UNTIL(it_state(c, ling_id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, ling_id), PM_STATE_LINGERING);

	CU_ASSERT_EQUAL(it_revoke(c, IT_EMU0), 1); /* one pagemap revoked */
	check_revoked(f1, id, -ECANCELED);
	check_revoked(f2, id, -ECANCELED);
	/* The dup shares f1's socket: the event was read through f1. */
	CU_ASSERT(poll_fd(f1dup, 0) & POLLHUP);
	CU_ASSERT_EQUAL(pagemap_query(f1dup, &info), -ENODEV);
	CU_ASSERT_EQUAL(it_state(c, id), 0);
	/* Opens say it was revoked, as its holders were told (not "no such"). */
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU0, NULL, 0), -ECANCELED);
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU0, "mem", 0), -ECANCELED);
	CU_ASSERT_EQUAL(it_pool_state(c, IT_EMU0, "mem"), PM_POOL_REVOKED);
	CU_ASSERT_FALSE(it_has_fd_named(br.pid, "pagemapd:emulated:" IT_EMU0));

	/* Nothing else disturbed. */
	CU_ASSERT_EQUAL(pagemap_query(other, &info), 0);
	CU_ASSERT_EQUAL(info.id, other_id);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);
	CU_ASSERT_EQUAL(info.refs, 1);
	CU_ASSERT_EQUAL(poll_fd(other, 0), 0);
	CU_ASSERT_EQUAL(it_state(c, ling_id), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.revoked, 1);
	CU_ASSERT_EQUAL(st.handles, 1);
	CU_ASSERT_EQUAL(st.pagemaps, 2);

	/* A lingering pagemap is revoked too, and a device without one just closes. */
	CU_ASSERT_EQUAL(it_revoke(c, IT_EMU1), 1);
	CU_ASSERT_EQUAL(it_state(c, ling_id), 0);
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU1, NULL, 0), -ECANCELED);
	/* Host memory only with force. */
	CU_ASSERT_EQUAL(it_revoke(c, "node1"), -EBUSY);
	CU_ASSERT_EQUAL(it_pool_state(c, "node1", NULL), PM_POOL_AVAILABLE);
	CU_ASSERT_EQUAL(it_revoke_force(c, "node1"), 0);
	CU_ASSERT_EQUAL(it_open_err(c, "node1", NULL, 0), -ECANCELED);
	CU_ASSERT_EQUAL(it_revoke(c, "no-such-device"), -ENOENT);
	CU_ASSERT_EQUAL(pagemap_query(other, &info), 0);
	CU_ASSERT_EQUAL(it_pool_state(c, "node0", NULL), PM_POOL_LIVE);

	/* Restore: served again, once; the rest stays as it was. */
	CU_ASSERT_EQUAL(it_restore(c, IT_EMU0), 1);
	CU_ASSERT_EQUAL(it_pool_state(c, IT_EMU0, "mem"), PM_POOL_AVAILABLE);
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU0, NULL, 0), 0);
	CU_ASSERT_EQUAL(it_restore(c, IT_EMU0), 0);
	CU_ASSERT_EQUAL(it_restore(c, "node1"), 1);
	CU_ASSERT_EQUAL(it_open_err(c, "node1", NULL, 0), 0);
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU1, NULL, 0), -ECANCELED);
	CU_ASSERT_EQUAL(it_restore(c, "no-such-device"), -ENOENT);

	close(f1);
	close(f2);
	close(f1dup);
	close(other);
	pm_disconnect(c);
	it_broker_stop(&br);
}

static int make_file(const char *path, off_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size) < 0)
		r = -errno;
	close(fd);
	return r;
}

/*
 * A PCI BAR pool whose device vanishes from sysfs under a holder. The broker
 * reads a copy of the captured QEMU machine (tests/fixtures/qemu-pcie), so
 * the ivshmem BAR 2 from the config is a real BAR pool; its resource2 is a
 * sparse file in that copy, and removing the device's sysfs entry is the
 * hot-removal.
 */
static void test_sysfs_vanish(void)
{
	char cfg[600], dev[300], target[600] = "";
	struct it_opts o = { .linger_ms = 4000, .config = cfg, .no_topology = true };
	struct pagemap_info info;
	struct it_broker br;
	struct pm_client *c;
	int bar, other;
	uint64_t id;

	if (it_broker_init(&br) < 0)
		return;
	CU_ASSERT_FATAL(it_copy_tree(cu_source_path("tests/fixtures/qemu-pcie"),
				     it_path(&br, "sysfs")) == 0);
	snprintf(dev, sizeof(dev), "%s", it_path(&br, "sysfs/sys/bus/pci/devices/" IT_EMU0));
	CU_ASSERT_FATAL(make_file(it_path(&br, "sysfs/sys/bus/pci/devices/" IT_EMU0 "/resource2"),
				  (off_t)IT_EMU_CAPACITY, 0600) == 0);
	snprintf(cfg, sizeof(cfg),
		 "{\"pressure\": {\"psi_path\": \"\"}, \"sysfs_root\": \"%s\","
		 " \"pools\": {\"bar\": [{\"device\": \"%s\", \"bar\": 2}]}}\n",
		 it_path(&br, "sysfs"), IT_EMU0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	bar = pagemap_open(c, IT_EMU0, "bar2", 0);
	other = pagemap_open(c, "node1", NULL, 0);
	CU_ASSERT_FATAL(bar >= 0 && other >= 0);
	CU_ASSERT_EQUAL(pagemap_query(bar, &info), 0);
	CU_ASSERT_EQUAL(info.kind, PAGEMAP_KIND_PCI_BAR);
	CU_ASSERT_STRING_EQUAL(info.region, "bar2");
	CU_ASSERT_EQUAL(info.capacity, IT_EMU_CAPACITY);
	id = info.id;

	/* Hot-removal: the device's sysfs entry goes away. */
	CU_ASSERT_FATAL(readlink(dev, target, sizeof(target) - 1) > 0);
	CU_ASSERT_EQUAL(unlink(dev), 0);
	check_revoked(bar, id, -ENODEV);
	CU_ASSERT_EQUAL(it_open_err(c, IT_EMU0, "bar2", 0), -ENODEV);
	CU_ASSERT_EQUAL(it_pool_state(c, IT_EMU0, "bar2"), PM_POOL_GONE);
	CU_ASSERT_EQUAL(pagemap_query(other, &info), 0);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);
	CU_ASSERT(it_log_has(&br, IT_EMU0, "vanished", NULL));

	/* It comes back (a rescan): served again, a new pagemap. */
	CU_ASSERT_EQUAL_FATAL(symlink(target, dev), 0);
	CU_ASSERT_EQUAL(it_pool_state(c, IT_EMU0, "bar2"), PM_POOL_AVAILABLE);
	close(bar);
	bar = pagemap_open(c, IT_EMU0, "bar2", 0);
	CU_ASSERT(bar >= 0);
	CU_ASSERT(bar >= 0 && it_pagemap_id(bar) != id);
	CU_ASSERT(it_log_has(&br, IT_EMU0, "is back", NULL));
	close(bar);
	close(other);
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "PM_OP_REVOKE revokes a device's pagemaps only", test_admin_revoke },
		{ "a device vanishing from sysfs is revoked", test_sysfs_vanish },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: revoke", tests);
}
