/* SPDX-License-Identifier: MIT */
/*
 * Placement of host memory: pm_migrate moves an allocation's chunks into a
 * NUMA node's pagemap (the pages really move: move_pages says where they
 * are), pm_query reports per chunk where each lives, the chunks keep their
 * pagemap alive after its fd is closed and release it when freed, and bad
 * input is refused before anything moves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "it_broker.h"

static struct it_broker br;

static bool up(void)
{
	return br.pid || it_broker_up(&br, 300);
}

/* The node of the page at p, as the kernel says (move_pages with no target). */
static int node_of(void *p)
{
	int status = -1;

	if (syscall(SYS_move_pages, 0, 1UL, &p, NULL, &status, 0) < 0)
		return -errno;
	return status;
}

static void test_migrate_and_query(void)
{
	uint64_t ids[4] = { 9, 9, 9, 9 }, node0;
	struct pm_client *c;
	unsigned char *p;
	void *a;
	int fd;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 8 << 20, 0, &a), 0);
	p = a;
	memset(p, 0x11, 8 << 20);
	CU_ASSERT_EQUAL(pm_query(c, a, 8 << 20, ids, 4), 4);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(ids[i], 0); /* system memory, nothing asked */
	fd = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	node0 = it_pagemap_id(fd);
	/* One page inside chunk 1 moves the whole chunk. */
	CU_ASSERT_EQUAL(pm_migrate(c, p + (2 << 20) + 4096, 4096, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, a, 8 << 20, ids, 4), 4);
	CU_ASSERT_EQUAL(ids[0], 0);
	CU_ASSERT_EQUAL(ids[1], node0);
	CU_ASSERT_EQUAL(ids[2], 0);
	CU_ASSERT_EQUAL(node_of(p + (2 << 20)), 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 8 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, p + (6 << 20), 4096, ids, 4), 1); /* just chunk 3 */
	CU_ASSERT_EQUAL(ids[0], node0);
	CU_ASSERT_EQUAL(p[(8 << 20) - 1], 0x11); /* the data went along */
	/* n smaller than the range: fills n, says how many there are. */
	ids[1] = 77;
	CU_ASSERT_EQUAL(pm_query(c, a, 8 << 20, ids, 1), 4);
	CU_ASSERT_EQUAL(ids[1], 77);
	/* The chunks hold the pagemap: closing the fd does not start its linger. */
	close(fd);
	it_sleep_ms(600);
	CU_ASSERT_EQUAL(it_state(c, node0), PM_STATE_ACTIVE);
	/* Freed, they let go: it lingers, then goes. */
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	IT_WAIT_UNTIL(it_state(c, node0) == 0, 3000)
		;
	CU_ASSERT_EQUAL(it_state(c, node0), 0); /* not listed */
	pm_disconnect(c);
}

static void test_refused(void)
{
	struct pm_client *c;
	uint64_t ids[2];
	char *p;
	void *a;
	int fd, emu, pipefd[2], sv[2];

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 << 20, 0, &a), 0);
	p = a;
	fd = pagemap_open(c, "node0", NULL, 0);
	emu = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0 && emu >= 0);
	CU_ASSERT_FATAL(pipe2(pipefd, O_CLOEXEC) == 0);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CU_ASSERT_EQUAL(pm_migrate(c, p + 1, 4096, fd, 0), -EINVAL);        /* unaligned */
	CU_ASSERT_EQUAL(pm_migrate(c, p, 0, fd, 0), -EINVAL);               /* empty */
	CU_ASSERT_EQUAL(pm_migrate(c, p, (4 << 20) + 4096, fd, 0), -EINVAL); /* past the end */
	CU_ASSERT_EQUAL(pm_migrate(c, ids, 4096, fd, 0), -EINVAL);          /* not from pm_alloc */
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, fd, 0x80), -EINVAL);         /* flags */
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, pipefd[0], 0), -EBADF);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, sv[0], 0), -EBADF);          /* a look-alike */
	CU_ASSERT_EQUAL(pm_query(c, p + 1, 4096, ids, 2), -EINVAL);
	CU_ASSERT_EQUAL(pm_query(c, p, 4096, NULL, 2), -EINVAL);
	/* Nothing moved by any of that. */
	CU_ASSERT_EQUAL(pm_query(c, a, 4 << 20, ids, 2), 2);
	CU_ASSERT(ids[0] == 0 && ids[1] == 0);
	/* Revoked: -ENODEV, and nothing recorded. */
	CU_ASSERT_EQUAL(it_revoke(c, IT_EMU0), 1);
	CU_ASSERT_EQUAL(pm_migrate(c, p, 4096, emu, 0), -ENODEV);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[0]);
	close(sv[1]);
	close(emu);
	close(fd);
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	pm_disconnect(c);
}

/* PLACE names the pagemap by fd only: a look-alike socket is refused by the broker too. */
static void test_raw_place_capability(void)
{
	struct pm_place pl = { .first = 0, .count = 1 };
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_PLACE,
			    .length = sizeof(pl), .nfds = 1, .request_id = 5 };
	struct pm_alloc a = { .size = 2 << 20, .chunk_size = 2 << 20 };
	struct pm_hdr ha = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_ALLOC,
			     .length = sizeof(a), .nfds = 1, .request_id = 4 };
	struct pm_msg *m = malloc(sizeof(*m));
	int s, mfd, sv[2];

	if (!up() || !m)
		return;
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0 && it_raw_hello(s) == 0);
	mfd = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	CU_ASSERT_FATAL(mfd >= 0 && ftruncate(mfd, 2 << 20) == 0);
	CU_ASSERT_EQUAL(fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	CU_ASSERT_EQUAL(it_raw_send(s, &ha, &a, sizeof(a), &mfd, 1), 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_recv(s, m, 2000), 0);
	CU_ASSERT_EQUAL_FATAL(((struct pm_reply *)m->payload)->status, 0);
	memcpy(&pl.alloc_id, m->payload + sizeof(struct pm_reply), sizeof(pl.alloc_id));
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	CU_ASSERT_EQUAL(it_raw_send(s, &h, &pl, sizeof(pl), &sv[0], 1), 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_recv(s, m, 2000), 0);
	CU_ASSERT_EQUAL(((struct pm_reply *)m->payload)->status, -EBADF);
	pl.count = 2; /* past the end */
	CU_ASSERT_EQUAL(it_raw_send(s, &h, &pl, sizeof(pl), &sv[0], 1), 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_recv(s, m, 2000), 0);
	CU_ASSERT_EQUAL(((struct pm_reply *)m->payload)->status, -EINVAL);
	close(sv[0]);
	close(sv[1]);
	close(mfd);
	close(s);
	free(m);
}

/* Revoking a pagemap chunks live in sends them back to system memory. */
static void test_revoke_with_chunks(void)
{
	struct pm_stats_reply st;
	struct pm_client *c;
	uint64_t ids[2] = { 9, 9 };
	void *a;
	int fd;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 4 << 20, 0, &a), 0);
	fd = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 4 << 20, fd, 0), 0);
	CU_ASSERT_EQUAL(pm_query(c, a, 4 << 20, ids, 2), 2);
	CU_ASSERT(ids[0] != 0 && ids[0] == ids[1]);
	CU_ASSERT_EQUAL(it_revoke(c, "node0"), -EBUSY); /* host memory: only with force */
	CU_ASSERT_EQUAL(it_revoke_force(c, "node0"), 1);
	CU_ASSERT_EQUAL(pm_query(c, a, 4 << 20, ids, 2), 2);
	CU_ASSERT(ids[0] == 0 && ids[1] == 0);
	CU_ASSERT_EQUAL(pm_migrate(c, a, 4096, fd, 0), -ENODEV);
	CU_ASSERT_EQUAL(pm_free(c, a), 0); /* nothing left pinned to free twice */
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 0);
	close(fd);
	pm_disconnect(c);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "migrate to a NUMA pagemap, query per chunk", test_migrate_and_query },
		{ "refused before anything moves", test_refused },
		{ "PLACE takes only a real pagemap fd", test_raw_place_capability },
		{ "revoke sends chunks back to system memory", test_revoke_with_chunks },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("place", tests);
}
