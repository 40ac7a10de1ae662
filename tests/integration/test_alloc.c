/* SPDX-License-Identifier: MIT */
/*
 * Managed allocations: pm_alloc hands back zeroed, writable memory in whole
 * chunks, below a device's address limit when asked; the broker keeps the
 * memfd it was given only after checking it, accounts it, and drops it on
 * pm_free or when the session ends; bad input leaves nothing behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "it_broker.h"

static struct it_broker br;

static bool up(void)
{
	return br.pid || it_broker_up(&br, 1000);
}

static void test_alloc_free(void)
{
	struct pm_stats_reply st;
	struct pm_client *c;
	unsigned char *p;
	void *a = NULL, *b = NULL;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 3 << 20, 0, &a), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 1);
	CU_ASSERT_EQUAL(st.allocated_bytes, 4u << 20); /* two 2 MiB chunks */
	p = a;
	CU_ASSERT_EQUAL(p[0], 0);
	CU_ASSERT_EQUAL(p[(4 << 20) - 1], 0); /* the whole rounded size is usable */
	memset(p, 0x5a, 4 << 20);
	CU_ASSERT_EQUAL(p[12345], 0x5a);
	CU_ASSERT_EQUAL(pm_alloc(c, 100, PM_ALLOC_CHUNK_SHIFT(16), &b), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocated_bytes, (4u << 20) + 65536);
	CU_ASSERT(it_has_fd_named(br.pid, "pagemap:alloc"));
	CU_ASSERT_EQUAL(pm_free(c, b), 0);
	CU_ASSERT_EQUAL(pm_free(c, b), -EINVAL);            /* twice */
	CU_ASSERT_EQUAL(pm_free(c, p + 4096), -EINVAL);     /* not its start */
	CU_ASSERT_EQUAL(pm_free(c, &st), -EINVAL);          /* not ours at all */
	CU_ASSERT_EQUAL(pm_free(c, a), 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 0);
	CU_ASSERT_EQUAL(st.allocated_bytes, 0);
	IT_WAIT_UNTIL(!it_has_fd_named(br.pid, "pagemap:alloc"), 2000)
		;
	CU_ASSERT_FALSE(it_has_fd_named(br.pid, "pagemap:alloc"));
	pm_disconnect(c);
}

static void test_addr_bits(void)
{
	static const unsigned bits[] = { 40, 36, 32 };
	struct pm_client *c;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		void *a[3] = { 0 };

		/* Several, so the search has to step past its own earlier ones. */
		for (int k = 0; k < 3; k++) {
			CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 8 << 20, PM_ALLOC_ADDR_BITS(bits[i]), &a[k]), 0);
			CU_ASSERT((uintptr_t)a[k] + (8u << 20) <= (uintptr_t)1 << bits[i]);
			CU_ASSERT_EQUAL((uintptr_t)a[k] % (2u << 20), 0); /* chunk-aligned */
			memset(a[k], k + 1, 8 << 20);
		}
		CU_ASSERT(a[0] != a[1] && a[1] != a[2]);
		for (int k = 0; k < 3; k++) {
			CU_ASSERT_EQUAL(((unsigned char *)a[k])[(8 << 20) - 1], k + 1);
			CU_ASSERT_EQUAL(pm_free(c, a[k]), 0);
		}
	}
	pm_disconnect(c);
}

static void test_bad_arguments(void)
{
	struct pm_client *c;
	void *a = (void *)1;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(pm_alloc(c, 0, 0, &a), -EINVAL);
	CU_ASSERT_EQUAL(pm_alloc(c, 4096, 1u << 31, &a), -EINVAL);          /* unknown flag */
	CU_ASSERT_EQUAL(pm_alloc(c, 4096, PM_ALLOC_CHUNK_SHIFT(12), &a), -EINVAL);
	CU_ASSERT_EQUAL(pm_alloc(c, 4096, PM_ALLOC_ADDR_BITS(12), &a), -EINVAL);
	CU_ASSERT_EQUAL(pm_alloc(c, SIZE_MAX, 0, &a), -EINVAL);
	CU_ASSERT_EQUAL(pm_alloc(c, 4096, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_alloc(NULL, 4096, 0, &a), -EINVAL);
	CU_ASSERT_PTR_EQUAL(a, (void *)1); /* untouched on failure */
	CU_ASSERT_EQUAL(pm_free(c, NULL), -EINVAL);
	pm_disconnect(c);
}

/* What the broker accepts as an allocation's memory, over a raw session. */
static int raw_alloc(int s, const struct pm_alloc *a, int fd)
{
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_ALLOC,
			    .length = sizeof(*a), .nfds = fd >= 0, .request_id = 9 };
	struct pm_msg *m = malloc(sizeof(*m));
	int status;

	if (!m)
		return 1000;
	if (it_raw_send(s, &h, a, sizeof(*a), fd >= 0 ? &fd : NULL, fd >= 0) < 0 ||
	    it_raw_recv(s, m, 2000) < 0) {
		free(m);
		return 1001;
	}
	pm_msg_close_fds(m);
	status = ((struct pm_reply *)m->payload)->status;
	free(m);
	return status;
}

static void test_broker_checks_the_memfd(void)
{
	struct pm_alloc a = { .size = 2 << 20, .chunk_size = 2 << 20 };
	struct pm_stats_reply st;
	struct pm_client *c;
	int s, sealed, unsealed, pipefd[2], before;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	before = it_count_fds(br.pid);
	sealed = memfd_create("t", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsealed = memfd_create("t", MFD_CLOEXEC);
	CU_ASSERT_FATAL(sealed >= 0 && unsealed >= 0 && pipe2(pipefd, O_CLOEXEC) == 0);
	CU_ASSERT_EQUAL(ftruncate(sealed, 2 << 20), 0);
	CU_ASSERT_EQUAL(ftruncate(unsealed, 2 << 20), 0);
	CU_ASSERT_EQUAL(raw_alloc(s, &a, sealed), -EINVAL); /* not sealed yet */
	CU_ASSERT_EQUAL(fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	CU_ASSERT_EQUAL(raw_alloc(s, &a, unsealed), -EINVAL);
	CU_ASSERT_EQUAL(raw_alloc(s, &a, pipefd[0]), -EINVAL); /* not a memfd */
	CU_ASSERT_EQUAL(raw_alloc(s, &a, -1), -EPROTO);         /* no fd */
	a.size = 4 << 20;
	CU_ASSERT_EQUAL(raw_alloc(s, &a, sealed), -EINVAL); /* size it does not have */
	a.size = 2 << 20;
	a.chunk_size = 3 << 20;
	CU_ASSERT_EQUAL(raw_alloc(s, &a, sealed), -EINVAL); /* not a power of two */
	a.chunk_size = 4096;
	CU_ASSERT_EQUAL(raw_alloc(s, &a, sealed), -EINVAL); /* below the minimum */
	a.chunk_size = 2 << 20;
	a.reserved = 1;
	CU_ASSERT_EQUAL(raw_alloc(s, &a, sealed), -EINVAL);
	a.reserved = 0;
	/* Every refused fd was closed by the broker. */
	CU_ASSERT(it_broker_fds_settle(&br, before, 2000) == before);
	CU_ASSERT(raw_alloc(s, &a, sealed) == 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 1);
	/* The session's end drops what it registered. */
	close(s);
	IT_WAIT_UNTIL(it_stats(c, &st) == 0 && st.allocations == 0, 2000)
		;
	CU_ASSERT_EQUAL(st.allocations, 0);
	CU_ASSERT(it_broker_fds_settle(&br, before - 1, 2000) == before - 1);
	close(sealed);
	close(unsealed);
	close(pipefd[0]);
	close(pipefd[1]);
	pm_disconnect(c);
}

static void test_disconnect_frees(void)
{
	struct pm_stats_reply st;
	struct pm_client *c, *adm;
	void *a;

	if (!up())
		return;
	adm = it_connect(&br);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL && adm != NULL);
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(pm_alloc(c, 1 << 20, 0, &a), 0);
	CU_ASSERT_EQUAL(it_stats(adm, &st), 0);
	CU_ASSERT_EQUAL(st.allocations, 10);
	pm_disconnect(c);
	IT_WAIT_UNTIL(it_stats(adm, &st) == 0 && st.allocations == 0, 2000)
		;
	CU_ASSERT_EQUAL(st.allocations, 0);
	CU_ASSERT_EQUAL(st.allocated_bytes, 0);
	pm_disconnect(adm);
}

/* Last: the broker must exit 0 after all of the above (checked by stop). */
static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "alloc, write, free, accounting", test_alloc_free },
		{ "addresses below a device's limit", test_addr_bits },
		{ "bad arguments", test_bad_arguments },
		{ "the broker checks the memfd", test_broker_checks_the_memfd },
		{ "disconnect frees every allocation", test_disconnect_frees },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	return cu_run("alloc", tests);
}
