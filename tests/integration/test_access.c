/* SPDX-License-Identifier: MIT */
/*
 * Access control: explicit rules from the config, a device's own permissions
 * for PCI BAR pools, and administration limited to root and the broker's uid.
 * Denials are -EACCES, counted, and logged with uid and device.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it_broker.h"

#define NOBODY 65534

static void test_deny_rule(void)
{
	char cfg[300], uid[32];
	struct it_opts o = { .linger_ms = 1000, .config = cfg };
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	int fd;

	snprintf(cfg, sizeof(cfg),
		 "{\"pressure\": {\"psi_path\": \"\"},"
		 " \"access\": [{\"device\": \"node0\", \"uid\": %u, \"allow\": false}]}\n",
		 (unsigned)getuid());
	if (it_broker_init(&br) < 0)
		return;
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", NULL, 0), -EACCES);
	CU_ASSERT_EQUAL(it_open_err(c, "node0", "", 0), -EACCES);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.denied, 2);
	CU_ASSERT_EQUAL(st.created, 0); /* a denial creates nothing */
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	snprintf(uid, sizeof(uid), "uid %u ", (unsigned)getuid());
	CU_ASSERT(it_log_has(&br, "denied", uid, "node0", NULL));

	/* The rule names one device: the others stay open. */
	fd = pagemap_open(c, "node1", NULL, 0);
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.denied, 2);
	pm_disconnect(c);
	it_broker_stop(&br);
}

enum { R_REVOKE, R_NODE1, R_NODE0, R_BAR, R_BAR_KIND, R_SEES_NODE1, R_SEES_NODE0, R_SEES_BAR, R_N };

/* A client under another uid: its results, one int each. */
static int nobody_tries(void *ctx, int *res, unsigned n)
{
	struct pagemap_info info;
	struct pm_client *c = it_connect(ctx);
	int fd;

	(void)n;
	if (!c)
		return 3;
	res[R_BAR_KIND] = 0;
	/* What pm_list_pools shows is what this uid may open. */
	res[R_SEES_NODE1] = it_pool_state(c, "node1", NULL) > 0;
	res[R_SEES_NODE0] = it_pool_state(c, "node0", NULL) > 0;
	res[R_SEES_BAR] = it_pool_state(c, IT_EMU0, "bar2") > 0;
	res[R_REVOKE] = it_revoke(c, "node0");
	res[R_NODE1] = it_open_err(c, "node1", NULL, 0);
	res[R_NODE0] = it_open_err(c, "node0", NULL, 0);
	fd = pagemap_open(c, IT_EMU0, "bar2", 0);
	res[R_BAR] = fd < 0 ? fd : 0;
	if (fd >= 0 && pagemap_query(fd, &info) == 0)
		res[R_BAR_KIND] = (int)info.kind;
	if (fd >= 0)
		close(fd);
	pm_disconnect(c);
	return 0;
}

static int as_nobody(const struct it_broker *br, int out[R_N])
{
	return it_as_uid(NOBODY, nobody_tries, (void *)br, out, R_N);
}

/*
 * Root only: a process under uid 65534. The broker serves a copy of the
 * captured QEMU machine with its ivshmem BAR 2 as a PCI BAR pool, whose
 * sysfs resource2 (a file in that copy) decides who may open it.
 */
static void test_other_uid(void)
{
	char cfg[600], bar[300];
	struct it_opts o = { .linger_ms = 1000, .config = cfg, .no_topology = true };
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	int res[R_N], fd;

	if (getuid() != 0) {
		printf("\n  SKIP: not root, cannot run a client under another uid\n");
		return;
	}
	if (it_broker_init(&br) < 0)
		return;
	CU_ASSERT_FATAL(it_copy_tree(cu_source_path("tests/fixtures/qemu-pcie"),
				     it_path(&br, "sysfs")) == 0);
	snprintf(bar, sizeof(bar), "%s", it_path(&br, "sysfs/sys/bus/pci/devices/" IT_EMU0 "/resource2"));
	fd = open(bar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, (off_t)IT_EMU_CAPACITY) == 0);
	close(fd);
	CU_ASSERT_FATAL(chmod(bar, 0600) == 0);
	snprintf(cfg, sizeof(cfg),
		 "{\"pressure\": {\"psi_path\": \"\"}, \"sysfs_root\": \"%s\","
		 " \"pools\": {\"bar\": [{\"device\": \"%s\", \"bar\": 2}]},"
		 " \"access\": [{\"device\": \"node1\", \"uid\": %d, \"allow\": false}]}\n",
		 it_path(&br, "sysfs"), IT_EMU0, NOBODY);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_open_to_all(&br), 0);

	CU_ASSERT_EQUAL_FATAL(as_nobody(&br, res), 0);
	CU_ASSERT_EQUAL(res[R_REVOKE], -EPERM);
	CU_ASSERT_EQUAL(res[R_NODE1], -EACCES); /* the rule */
	CU_ASSERT_EQUAL(res[R_NODE0], 0);       /* no rule: host memory is everyone's */
	CU_ASSERT_EQUAL(res[R_BAR], -EACCES);   /* resource2 is root's, 0600 */
	CU_ASSERT_EQUAL(res[R_SEES_NODE1], 0);  /* pools it may not open are not listed */
	CU_ASSERT_EQUAL(res[R_SEES_NODE0], 1);
	CU_ASSERT_EQUAL(res[R_SEES_BAR], 0);
	CU_ASSERT(it_log_has(&br, "denied", "uid 65534 ", "node1", NULL));
	CU_ASSERT(it_log_has(&br, "denied", "uid 65534 ", IT_EMU0, NULL));
	CU_ASSERT(it_log_has(&br, "uid 65534 ", "revoking", "node0", NULL));

	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.denied, 2);
	CU_ASSERT_EQUAL(st.revoked, 0);
	fd = pagemap_open(c, "node0", NULL, 0); /* the failed revoke changed nothing */
	CU_ASSERT(fd >= 0);
	if (fd >= 0)
		close(fd);

	/* The device's permissions open it up. */
	CU_ASSERT_EQUAL(chmod(bar, 0666), 0);
	CU_ASSERT_EQUAL_FATAL(as_nobody(&br, res), 0);
	CU_ASSERT_EQUAL(res[R_BAR], 0);
	CU_ASSERT_EQUAL(res[R_BAR_KIND], PAGEMAP_KIND_PCI_BAR);
	CU_ASSERT_EQUAL(res[R_SEES_BAR], 1);
	CU_ASSERT_EQUAL(res[R_NODE1], -EACCES);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.denied, 3);
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "a deny rule refuses, counts and logs", test_deny_rule },
		{ "another uid: rules, device permissions, no admin", test_other_uid },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: access", tests);
}
