/* SPDX-License-Identifier: MIT */
/*
 * Pagemap lifetime against a real broker: creation and sharing, the fd as the
 * reference across dup/fork/SCM_RIGHTS, linger/revive/teardown, and a client
 * killed while holding fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_broker.h"

#define LINGER_LONG 4000 /* long enough to look at a lingering pagemap */

static void test_create_and_share(void)
{
	struct pagemap_info a, b, e;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c, *c2;
	int fa, fb, fe, fn1;

	if (!it_broker_up(&br, LINGER_LONG))
		return;
	c = it_connect(&br);
	c2 = it_connect(&br);
	CU_ASSERT_FATAL(c && c2);

	fa = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(fa >= 0);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 1);
	CU_ASSERT_EQUAL(st.pagemaps, 1);
	CU_ASSERT_EQUAL(st.handles, 1);
	CU_ASSERT_EQUAL(pagemap_query(fa, &a), 0);
	CU_ASSERT(a.id != 0);
	CU_ASSERT_STRING_EQUAL(a.device, "node0");
	CU_ASSERT_STRING_EQUAL(a.region, "");
	CU_ASSERT_EQUAL(a.kind, PAGEMAP_KIND_HOST_NUMA);
	CU_ASSERT_EQUAL(a.state, PAGEMAP_STATE_ACTIVE);
	CU_ASSERT_EQUAL(a.numa_node, 0);
	CU_ASSERT_EQUAL(a.refs, 1);
	CU_ASSERT_EQUAL(a.capacity, IT_NODE_CAPACITY0);

	/* A later open, from another session, shares it. */
	fb = pagemap_open(c2, "node0", "", 0);
	CU_ASSERT_FATAL(fb >= 0);
	CU_ASSERT(fb != fa);
	CU_ASSERT_EQUAL(pagemap_query(fb, &b), 0);
	CU_ASSERT_EQUAL(b.id, a.id);
	CU_ASSERT_EQUAL(b.refs, 2);
	CU_ASSERT_EQUAL(pagemap_query(fa, &a), 0);
	CU_ASSERT_EQUAL(a.refs, 2);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 1);
	CU_ASSERT_EQUAL(st.pagemaps, 1);
	CU_ASSERT_EQUAL(st.handles, 2);

	/* Other pools, other pagemaps, other ids. */
	fn1 = pagemap_open(c, "node1", NULL, 0);
	fe = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fn1 >= 0 && fe >= 0);
	CU_ASSERT_EQUAL(pagemap_query(fe, &e), 0);
	CU_ASSERT(e.id != a.id && e.id != 0);
	CU_ASSERT(it_id(fn1) != a.id && it_id(fn1) != e.id && it_id(fn1) != 0);
	CU_ASSERT_STRING_EQUAL(e.device, IT_EMU0);
	CU_ASSERT_STRING_EQUAL(e.region, "mem");
	CU_ASSERT_EQUAL(e.kind, PAGEMAP_KIND_EMULATED);
	CU_ASSERT_EQUAL(e.capacity, IT_EMU_CAPACITY);
	CU_ASSERT_EQUAL(e.refs, 1);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 3);
	CU_ASSERT_EQUAL(st.pagemaps, 3);
	CU_ASSERT_EQUAL(st.handles, 4);
	CU_ASSERT_EQUAL(it_state(c, e.id), PM_STATE_ACTIVE);

	/* Closing one of two handles drops refs, and nothing lingers. */
	close(fb);
	IT_WAIT_UNTIL(pagemap_query(fa, &a) == 0 && a.refs == 1, 2000)
		;
	CU_ASSERT_EQUAL(a.refs, 1);
	CU_ASSERT_EQUAL(a.state, PAGEMAP_STATE_ACTIVE);

	/* The fd outlives its control connection (the fd is the reference). */
	pm_disconnect(c2);
	pm_disconnect(c);
	CU_ASSERT_EQUAL(pagemap_query(fa, &a), 0);
	CU_ASSERT_EQUAL(a.refs, 1);
	CU_ASSERT_EQUAL(a.state, PAGEMAP_STATE_ACTIVE);
	close(fa);
	close(fe);
	close(fn1);
	it_broker_stop(&br);
}

static void test_dup(void)
{
	struct pagemap_info info;
	struct it_broker br;
	struct pm_client *c;
	uint64_t id;
	int fd, copy;

	if (!it_broker_up(&br, LINGER_LONG))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	fd = pagemap_open(c, "node0", NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_id(fd);
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	CU_ASSERT_FATAL(copy >= 0);
	close(fd);
	/* A round trip on the control connection after the close: a wrongly
	 * observed hang-up would have been handled by now. */
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_ACTIVE);
	CU_ASSERT_EQUAL(pagemap_query(copy, &info), 0);
	CU_ASSERT_EQUAL(info.id, id);
	CU_ASSERT_EQUAL(info.refs, 1);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);
	close(copy);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* The child holds the only copy after the parent closed its own. */
static void test_fork(void)
{
	struct it_broker br;
	struct pm_client *c;
	struct pm_info li;
	int fd, go[2], done[2];
	uint64_t id;
	pid_t pid;

	if (!it_broker_up(&br, LINGER_LONG))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	fd = pagemap_open(c, "node1", NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_id(fd);
	CU_ASSERT_FATAL(pipe2(go, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct pagemap_info info;
		char ok;

		/* 1: query once the parent has closed its copy; 2: close and exit. */
		if (it_wait_byte(go[0], 5000) != '1')
			_exit(2);
		ok = pagemap_query(fd, &info) == 0 && info.id == id && info.refs == 1 &&
				     info.state == PAGEMAP_STATE_ACTIVE
			     ? 'y'
			     : 'n';
		it_post(done[1], ok);
		if (it_wait_byte(go[0], 5000) != '2')
			_exit(3);
		_exit(0); /* the exit closes the last copy */
	}
	close(fd);
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	CU_ASSERT_EQUAL(it_lookup(c, id, &li), 1);
	CU_ASSERT_EQUAL(li.state, PM_STATE_ACTIVE);
	CU_ASSERT_EQUAL(li.refs, 1);
	it_post(go[1], '1');
	CU_ASSERT_EQUAL(it_wait_byte(done[0], 5000), 'y');
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_ACTIVE);
	it_post(go[1], '2');
	CU_ASSERT_EQUAL(it_reap(pid, 5000), 0);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	close(go[0]);
	close(go[1]);
	close(done[0]);
	close(done[1]);
	pm_disconnect(c);
	it_broker_stop(&br);
}

static int send_fd(int sock, int fd, uint64_t id)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &id, sizeof(id) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == sizeof(id) ? 0 : -1;
}

static int recv_fd(int sock, uint64_t *id)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { id, sizeof(*id) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	int fd = -1;

	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != sizeof(*id))
		return -1;
	cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/*
 * SCM_RIGHTS to a process that never inherited the fd (forked before the
 * open): it receives it, the sender closes its copy, and the receiver's
 * close is the last one the broker sees, while the receiver is still alive.
 */
static void test_scm_rights(void)
{
	struct it_broker br;
	struct pm_client *c;
	struct pm_info li;
	int sv[2], fd;
	uint64_t id;
	pid_t pid;

	if (!it_broker_up(&br, LINGER_LONG))
		return;
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct pagemap_info info;
		uint64_t want = 0;
		int got;

		close(sv[0]);
		got = recv_fd(sv[1], &want);
		if (got < 0)
			_exit(2);
		it_post(sv[1], 'r'); /* received */
		if (it_wait_byte(sv[1], 5000) != 'q')
			_exit(3);
		it_post(sv[1], pagemap_query(got, &info) == 0 && info.id == want && info.refs == 1 &&
					       info.state == PAGEMAP_STATE_ACTIVE
				       ? 'y'
				       : 'n');
		if (it_wait_byte(sv[1], 5000) != 'c')
			_exit(4);
		close(got);
		it_post(sv[1], 'c'); /* closed: still alive until told to exit */
		if (it_wait_byte(sv[1], 5000) != 'x')
			_exit(5);
		_exit(0);
	}
	close(sv[1]);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	fd = pagemap_open(c, IT_EMU1, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_id(fd);
	CU_ASSERT_EQUAL(send_fd(sv[0], fd, id), 0);
	CU_ASSERT_EQUAL(it_wait_byte(sv[0], 5000), 'r');
	close(fd);
	CU_ASSERT_EQUAL(pm_ping(c), 0);
	CU_ASSERT_EQUAL(it_lookup(c, id, &li), 1);
	CU_ASSERT_EQUAL(li.state, PM_STATE_ACTIVE);
	CU_ASSERT_EQUAL(li.refs, 1);
	it_post(sv[0], 'q');
	CU_ASSERT_EQUAL(it_wait_byte(sv[0], 5000), 'y');
	it_post(sv[0], 'c');
	CU_ASSERT_EQUAL(it_wait_byte(sv[0], 5000), 'c');
	/* The receiver lives on: the broker saw its close, not its exit. */
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_lookup(c, id, &li), 1);
	CU_ASSERT_EQUAL(li.refs, 0);
	CU_ASSERT_EQUAL(kill(pid, 0), 0);
	it_post(sv[0], 'x');
	CU_ASSERT_EQUAL(it_reap(pid, 5000), 0);
	close(sv[0]);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* A reopen inside the linger revives the same pagemap. */
static void test_linger_revive(void)
{
	struct pagemap_info info;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	uint64_t id;
	int fd;

	if (!it_broker_up(&br, 1000))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_id(fd);
	close(fd);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 500)
		;
	CU_ASSERT_EQUAL_FATAL(it_state(c, id), PM_STATE_LINGERING);
	/* Well inside the window, not at its very start. */
	it_sleep_ms(500);
	CU_ASSERT_EQUAL_FATAL(it_state(c, id), PM_STATE_LINGERING);
	/* Lingering: still holding its memory. */
	CU_ASSERT(it_has_fd_named(br.pid, "pagemapd:emulated:" IT_EMU0));
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.pagemaps, 1);
	CU_ASSERT_EQUAL(st.handles, 0);

	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), 0);
	CU_ASSERT_EQUAL(info.id, id);
	CU_ASSERT_EQUAL(info.state, PAGEMAP_STATE_ACTIVE);
	CU_ASSERT_EQUAL(info.refs, 1);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 1);
	CU_ASSERT_EQUAL(st.revived, 1);
	CU_ASSERT_EQUAL(st.torn_down, 0);
	CU_ASSERT_EQUAL(st.reclaimed, 0);
	/* Revived, it stays: the old deadline must not tear it down. */
	close(fd);
	IT_WAIT_UNTIL(it_state(c, id) == PM_STATE_LINGERING, 2000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* After the window: torn down, memory released, the next open is new. */
static void test_linger_teardown(void)
{
	const int linger = 300;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	uint64_t id, id2, t0, elapsed;
	int fd, base;

	if (!it_broker_up(&br, linger))
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	base = it_count_fds(br.pid);
	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id = it_id(fd);
	CU_ASSERT(it_has_fd_named(br.pid, "pagemapd:emulated:" IT_EMU0));
	t0 = it_now_ms();
	close(fd);
	IT_WAIT_UNTIL(it_state(c, id) != PM_STATE_ACTIVE, 1000)
		;
	CU_ASSERT_EQUAL(it_state(c, id), PM_STATE_LINGERING);
	IT_WAIT_UNTIL(it_state(c, id) == 0, 3000)
		;
	elapsed = it_now_ms() - t0;
	CU_ASSERT_EQUAL(it_state(c, id), 0);
	/* Not before the linger is over (the broker starts it after our close). */
	CU_ASSERT(elapsed >= (uint64_t)linger);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.torn_down, 1);
	CU_ASSERT_EQUAL(st.reclaimed, 0);
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	CU_ASSERT_EQUAL(st.handles, 0);
	/* Its memory (the emulated pool's memfd) and its socket are gone. */
	CU_ASSERT_FALSE(it_has_fd_named(br.pid, "pagemapd:emulated:"));
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, base, 1000), base);

	fd = pagemap_open(c, IT_EMU0, NULL, 0);
	CU_ASSERT_FATAL(fd >= 0);
	id2 = it_id(fd);
	CU_ASSERT(id2 != 0 && id2 != id);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.created, 2);
	CU_ASSERT_EQUAL(st.revived, 0);
	close(fd);
	pm_disconnect(c);
	it_broker_stop(&br);
}

/* A client SIGKILLed while holding fds and its session releases everything. */
static void test_sigkill(void)
{
	struct pm_client_info ci;
	struct pm_stats_reply st;
	struct it_broker br;
	struct pm_client *c;
	uint64_t ids[2] = { 0, 0 };
	int up[2];
	pid_t pid;

	if (!it_broker_up(&br, LINGER_LONG))
		return;
	CU_ASSERT_FATAL(pipe2(up, O_CLOEXEC) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct pm_client *cc = it_connect(&br);
		int a = cc ? pagemap_open(cc, "node0", NULL, 0) : -1;
		int e = cc ? pagemap_open(cc, IT_EMU0, NULL, 0) : -1;
		uint64_t got[2] = { it_id(a), it_id(e) };

		if (write(up[1], got, sizeof(got)) != sizeof(got))
			_exit(2);
		for (;;)
			pause();
	}
	close(up[1]);
	if (read(up[0], ids, sizeof(ids)) != sizeof(ids) || !ids[0] || !ids[1]) {
		kill(pid, SIGKILL);
		it_reap(pid, 5000);
		close(up[0]);
		CU_FAIL_FATAL("the child could not open its pagemaps");
	}
	close(up[0]);
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(it_client_of_pid(c, pid, &ci), 1);
	CU_ASSERT_EQUAL(ci.handles, 2);
	CU_ASSERT_EQUAL(ci.uid, getuid());

	kill(pid, SIGKILL);
	CU_ASSERT_EQUAL(it_reap(pid, 5000), 128 + SIGKILL);
	IT_WAIT_UNTIL(it_client_of_pid(c, pid, NULL) == 0 && it_state(c, ids[0]) != PM_STATE_ACTIVE &&
			      it_state(c, ids[1]) != PM_STATE_ACTIVE,
		      2000)
		;
	CU_ASSERT_EQUAL(it_client_of_pid(c, pid, NULL), 0);
	CU_ASSERT_EQUAL(it_state(c, ids[0]), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_state(c, ids[1]), PM_STATE_LINGERING);
	CU_ASSERT_EQUAL(it_stats(c, &st), 0);
	CU_ASSERT_EQUAL(st.handles, 0);
	CU_ASSERT_EQUAL(st.sessions, 1); /* ours */
	pm_disconnect(c);
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "first open creates, later opens share", test_create_and_share },
		{ "the fd survives dup", test_dup },
		{ "the fd survives fork", test_fork },
		{ "the fd survives SCM_RIGHTS to another process", test_scm_rights },
		{ "a reopen while lingering revives", test_linger_revive },
		{ "after the linger: torn down, new id", test_linger_teardown },
		{ "a SIGKILLed client releases everything", test_sigkill },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: lifetime", tests);
}
