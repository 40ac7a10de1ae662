/* SPDX-License-Identifier: MIT */
/*
 * Hostile input on raw sockets, no libpagemap in between: on the control
 * connection (framing errors end the session, request errors get an error
 * reply) and on a pagemap fd (errors are dropped, the fd keeps working). One
 * broker takes all of it, in order, and must still answer, leak no fd, and
 * exit cleanly at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "it_broker.h"

static struct it_broker br;
static struct pm_client *adm; /* a well-behaved client, kept for the whole run */
static int broker_fds;        /* the broker's fds with only adm connected */
static struct pm_msg msg;

static uint64_t perrs(void)
{
	struct pm_stats_reply st;

	return it_stats(adm, &st) == 0 ? st.protocol_errors : 0;
}

static bool up(void)
{
	CU_ASSERT_FATAL(br.pid > 0 && adm != NULL);
	return true;
}

/* A raw control connection past HELLO. */
static int raw_session(void)
{
	int s = it_raw_connect(&br);

	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	return s;
}

static int call(int s, uint16_t op, const void *payload, size_t len)
{
	int status = 1, r = it_raw_call(s, 1, op, payload, len, &status, NULL);

	return r < 0 ? 1000 + r : status; /* transport errors show as 1000 - errno */
}

/* The broker still serves: the old session, and a new one. */
static void still_serving(void)
{
	struct pm_client *c = it_connect(&br);

	CU_ASSERT_EQUAL(pm_ping(adm), 0);
	CU_ASSERT(c != NULL);
	if (c) {
		CU_ASSERT_EQUAL(pm_ping(c), 0);
		pm_disconnect(c);
	}
}

static void t_start(void)
{
	struct pm_stats_reply st;

	CU_ASSERT_EQUAL_FATAL(it_broker_up(&br, 0), true);
	adm = it_connect(&br);
	CU_ASSERT_FATAL(adm != NULL);
	IT_WAIT_UNTIL(it_stats(adm, &st) == 0 && st.sessions == 1, 2000)
		;
	CU_ASSERT_EQUAL(st.sessions, 1);
	broker_fds = it_count_fds(br.pid);
	CU_ASSERT(broker_fds > 0);
}

static void bad_header(struct pm_hdr h)
{
	uint64_t before = perrs();
	int s = raw_session();

	CU_ASSERT_EQUAL(it_raw_send(s, &h, NULL, 0, NULL, 0), 0);
	CU_ASSERT(it_raw_closed(s, 2000));
	close(s);
	CU_ASSERT(perrs() > before);
	still_serving();
}

static void t_bad_magic(void)
{
	if (up())
		bad_header((struct pm_hdr){ .magic = 0xdeadbeef, .version = 1, .opcode = PM_OP_NOP,
					    .request_id = 1 });
}

static void t_oversize(void)
{
	if (up())
		bad_header((struct pm_hdr){ .magic = PM_PROTO_MAGIC, .version = 1,
					    .opcode = PM_OP_NOP, .length = PM_MAX_PAYLOAD + 1,
					    .request_id = 1 });
}

static void t_unknown_flags(void)
{
	if (up())
		bad_header((struct pm_hdr){ .magic = PM_PROTO_MAGIC, .version = 1,
					    .opcode = PM_OP_NOP, .flags = 0x8000, .request_id = 1 });
}

static void t_too_many_fds(void)
{
	if (up())
		bad_header((struct pm_hdr){ .magic = PM_PROTO_MAGIC, .version = 1,
					    .opcode = PM_OP_NOP, .nfds = PM_MAX_FDS + 1,
					    .request_id = 1 });
}

static void t_before_hello(void)
{
	struct pm_open o = { 0 };
	uint64_t before;
	int s;

	if (!up())
		return;
	before = perrs();
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	pm_name_put(o.device, sizeof(o.device), "node0");
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), -EPROTO);
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EPROTO);
	CU_ASSERT_EQUAL(call(s, PM_OP_STATS, NULL, 0), -EPROTO);
	/* The session survives and can still say HELLO. */
	CU_ASSERT_EQUAL(it_raw_hello(s), 0);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	/* docs/protocol.md: "every error is counted in STATS.protocol_errors". */
	CU_ASSERT_EQUAL(perrs() - before, 3);
	close(s);
}

static void t_version_mismatch(void)
{
	uint64_t before;
	int s, status = 1;

	if (!up())
		return;
	s = raw_session();
	before = perrs();
	CU_ASSERT_EQUAL(it_raw_call(s, 2, PM_OP_NOP, NULL, 0, &status, NULL), 0);
	CU_ASSERT_EQUAL(status, -EPROTO);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	CU_ASSERT_EQUAL(perrs() - before, 1); /* docs/protocol.md: every error counted */
	close(s);
}

static void t_unknown_opcode(void)
{
	static const uint16_t ops[] = { 0, 99, PM_OP_QUERY, PM_EV_REVOKED, 0xffff };
	uint64_t before;
	int s;

	if (!up())
		return;
	s = raw_session();
	before = perrs();
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		CU_ASSERT_EQUAL(call(s, ops[i], NULL, 0), -EOPNOTSUPP);
	CU_ASSERT_EQUAL(perrs() - before, 5);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	close(s);
}

static int hello_with(int s, uint16_t min, uint16_t max, uint32_t flags, const char *name,
		      size_t len)
{
	struct pm_hello h = { .min_version = min, .max_version = max, .flags = flags };

	memcpy(h.client, name, strlen(name) < sizeof(h.client) ? strlen(name) : sizeof(h.client));
	return call(s, PM_OP_HELLO, &h, len);
}

static void t_hello(void)
{
	char noterm[33];
	int s;

	if (!up())
		return;
	memset(noterm, 'x', 32);
	noterm[32] = '\0';
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL(hello_with(s, 2, 5, 0, "t", sizeof(struct pm_hello)), -EPROTONOSUPPORT);
	CU_ASSERT_EQUAL(hello_with(s, 0, 0, 0, "t", sizeof(struct pm_hello)), -EPROTONOSUPPORT);
	CU_ASSERT_EQUAL(hello_with(s, 2, 1, 0, "t", sizeof(struct pm_hello)), -EINVAL);
	CU_ASSERT_EQUAL(hello_with(s, 1, 1, 1, "t", sizeof(struct pm_hello)), -EINVAL);
	CU_ASSERT_EQUAL(hello_with(s, 1, 1, 0, "t", sizeof(struct pm_hello) - 1), -EINVAL);
	CU_ASSERT_EQUAL(hello_with(s, 1, 1, 0, noterm, sizeof(struct pm_hello)), -EINVAL);
	CU_ASSERT_EQUAL(hello_with(s, 1, 1, 0, "a\tb", sizeof(struct pm_hello)), -EINVAL);
	/* Nothing was negotiated. */
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), -EPROTO);
	/* A range that reaches ours is fine. */
	CU_ASSERT_EQUAL(hello_with(s, 1, 7, 0, "t", sizeof(struct pm_hello)), 0);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	close(s);
}

static void t_open_fields(void)
{
	struct pm_stats_reply st0, st1;
	struct pagemap_info info;
	struct pm_open good = { 0 }, o;
	int s, status = 1, fd = -1;

	if (!up())
		return;
	s = raw_session();
	pm_name_put(good.device, sizeof(good.device), "node0");
	CU_ASSERT_EQUAL(it_stats(adm, &st0), 0);

	o = good, o.flags = 1;
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.reserved = 1;
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good;
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o) - 1), -EINVAL);
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, 0), -EINVAL);
	memset(o.device, 'a', sizeof(o.device)); /* no NUL */
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.device[6] = 'x'; /* "node0\0x" */
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.device[sizeof(o.device) - 1] = 1;
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.device[2] = '\n';
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.device[0] = '\0';
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, o.region[1] = 'x'; /* "" then garbage */
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	o = good, memset(o.region, 'r', sizeof(o.region));
	CU_ASSERT_EQUAL(call(s, PM_OP_OPEN, &o, sizeof(o)), -EINVAL);
	CU_ASSERT_EQUAL(it_stats(adm, &st1), 0);
	CU_ASSERT_EQUAL(st1.created, st0.created);
	CU_ASSERT_EQUAL(st1.handles, st0.handles);

	/* The same session still opens a good one, fd attached. */
	CU_ASSERT_EQUAL(it_raw_call(s, 1, PM_OP_OPEN, &good, sizeof(good), &status, &fd), 0);
	CU_ASSERT_EQUAL(status, 0);
	CU_ASSERT(fd >= 0);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), 0);
	CU_ASSERT_STRING_EQUAL(info.device, "node0");
	if (fd >= 0)
		close(fd);
	close(s);
}

static void t_truncated(void)
{
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_OPEN,
			    .length = sizeof(struct pm_open), .request_id = 9 };
	char half[sizeof(struct pm_open) / 2] = "node0";
	int s;

	if (!up())
		return;
	/* Half a header, then gone. */
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL(send(s, &h, 10, MSG_NOSIGNAL), 10);
	close(s);
	/* A header and half its payload, then gone. */
	s = raw_session();
	CU_ASSERT_EQUAL(it_raw_send(s, &h, half, sizeof(half), NULL, 0), 0);
	close(s);
	still_serving();
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker_fds, 2000), broker_fds);
}

static void t_fds_on_control(void)
{
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_NOP,
			    .nfds = 1, .request_id = 77 };
	int p[2], p5[5][2], fds[5], s;
	uint64_t before;

	if (!up())
		return;
	/* nfds says 1, one arrives: refused with -EPROTO, fd closed, session kept. */
	s = raw_session();
	before = perrs();
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	CU_ASSERT_EQUAL(it_raw_send(s, &h, NULL, 0, &p[1], 1), 0);
	close(p[1]);
	CU_ASSERT_EQUAL(it_raw_recv(s, &msg, 2000), 0);
	CU_ASSERT_EQUAL(((struct pm_reply *)msg.payload)->status, -EPROTO);
	CU_ASSERT_EQUAL(msg.hdr.request_id, 77);
	CU_ASSERT(it_pipe_widowed(p[0], 2000)); /* the broker kept no copy */
	close(p[0]);
	CU_ASSERT(perrs() > before);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);

	/* nfds says 0, one arrives: the stream is malformed, session closed. */
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	h.nfds = 0;
	CU_ASSERT_EQUAL(it_raw_send(s, &h, NULL, 0, &p[1], 1), 0);
	close(p[1]);
	CU_ASSERT(it_raw_closed(s, 2000));
	CU_ASSERT(it_pipe_widowed(p[0], 2000));
	close(p[0]);
	close(s);

	/* nfds says 2, one arrives. */
	s = raw_session();
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	h.nfds = 2;
	CU_ASSERT_EQUAL(it_raw_send(s, &h, NULL, 0, &p[1], 1), 0);
	close(p[1]);
	CU_ASSERT(it_raw_closed(s, 2000));
	CU_ASSERT(it_pipe_widowed(p[0], 2000));
	close(p[0]);
	close(s);

	/* Five arrive, more than a message may carry. */
	s = raw_session();
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_FATAL(pipe2(p5[i], O_CLOEXEC) == 0);
		fds[i] = p5[i][1];
	}
	h.nfds = 4;
	CU_ASSERT_EQUAL(it_raw_send(s, &h, NULL, 0, fds, 5), 0);
	for (int i = 0; i < 5; i++)
		close(p5[i][1]);
	CU_ASSERT(it_raw_closed(s, 2000));
	for (int i = 0; i < 5; i++) {
		CU_ASSERT(it_pipe_widowed(p5[i][0], 2000));
		close(p5[i][0]);
	}
	close(s);
	still_serving();
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker_fds, 2000), broker_fds);
}

/* Half a message left hanging stalls nobody; finishing it later works. */
static void t_half_message_no_stall(void)
{
	struct pm_hello hello = { .min_version = 1, .max_version = 1 };
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_HELLO,
			    .length = sizeof(hello), .request_id = 5 };
	uint8_t buf[sizeof(h) + sizeof(hello)];
	uint64_t t0;
	int s;

	if (!up())
		return;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &hello, sizeof(hello));
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL(send(s, buf, 10, MSG_NOSIGNAL), 10);
	t0 = it_now_ms();
	still_serving();
	CU_ASSERT(it_now_ms() - t0 < 1000);
	/* Now the rest of the header and half the payload. */
	CU_ASSERT_EQUAL(send(s, buf + 10, sizeof(h) - 10 + 20, MSG_NOSIGNAL),
			(ssize_t)sizeof(h) - 10 + 20);
	t0 = it_now_ms();
	still_serving();
	CU_ASSERT(it_now_ms() - t0 < 1000);
	/* And the end: a whole HELLO, answered. */
	CU_ASSERT_EQUAL(send(s, buf + sizeof(h) + 20, sizeof(hello) - 20, MSG_NOSIGNAL),
			(ssize_t)sizeof(hello) - 20);
	CU_ASSERT_EQUAL(it_raw_recv(s, &msg, 2000), 0);
	CU_ASSERT_EQUAL(msg.hdr.request_id, 5);
	CU_ASSERT_EQUAL(((struct pm_reply *)msg.payload)->status, 0);
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	close(s);
}

/* A client that sends and never reads loses its session, nobody else stalls. */
static void t_never_reads(void)
{
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_STATS };
	uint64_t deadline;
	bool closed = false;
	int s;

	if (!up())
		return;
	s = raw_session();
	deadline = it_now_ms() + 5000;
	while (!closed && it_now_ms() < deadline) {
		ssize_t n;

		h.request_id++;
		n = send(s, &h, sizeof(h), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			closed = true;
		else if (n < 0 && errno == EAGAIN)
			it_sleep_ms(1);
	}
	CU_ASSERT(closed);
	close(s);
	still_serving();
}

/* ---- on a pagemap fd ---- */

static int pagemap_fd(void)
{
	int fd = pagemap_open(adm, "node0", NULL, 0);

	CU_ASSERT_FATAL(fd >= 0);
	return fd;
}

/* The pagemap behind fd is unharmed: listed active with one ref, queryable. */
static void unharmed(int fd, uint64_t id)
{
	struct pagemap_info info;
	struct pm_info li;

	CU_ASSERT_EQUAL(pm_ping(adm), 0);
	CU_ASSERT_EQUAL(it_lookup(adm, id, &li), 1);
	CU_ASSERT_EQUAL(li.state, PM_STATE_ACTIVE);
	CU_ASSERT_EQUAL(li.refs, 1);
	CU_ASSERT_EQUAL(pagemap_query(fd, &info), 0);
	CU_ASSERT_EQUAL(info.id, id);
	CU_ASSERT_EQUAL(info.refs, 1);
}

static void t_query_without_reply_fd(void)
{
	struct pm_query q = { 0 };
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_QUERY,
			    .length = sizeof(q), .request_id = 3 };
	uint64_t before, id;
	int fd;

	if (!up())
		return;
	fd = pagemap_fd();
	id = it_id(fd);
	before = perrs();
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), NULL, 0), 0);
	IT_WAIT_UNTIL(perrs() > before, 2000)
		;
	CU_ASSERT(perrs() > before);
	unharmed(fd, id);
	close(fd);
}

/* A reply "socket" that is a pipe: nothing is written to it, it counts as
 * malformed, and the handle is unharmed. */
static void t_query_reply_fd_not_a_socket(void)
{
	struct pm_query q = { 0 };
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_QUERY,
			    .length = sizeof(q), .request_id = 5, .nfds = 1 };
	struct pollfd pfd;
	uint64_t before, id;
	int p[2], fd;

	if (!up())
		return;
	fd = pagemap_fd();
	id = it_id(fd);
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	before = perrs();
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), &p[1], 1), 0);
	close(p[1]);
	IT_WAIT_UNTIL(perrs() > before, 2000)
		;
	CU_ASSERT(perrs() > before);
	/* EOF without a byte: the broker closed its copy and wrote nothing. */
	pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
	CU_ASSERT_EQUAL(poll(&pfd, 1, 2000), 1);
	CU_ASSERT_EQUAL(read(p[0], &q, sizeof(q)), 0);
	close(p[0]);
	unharmed(fd, id);
	close(fd);
}

/*
 * A reply socket whose queue the client filled on purpose: the broker must
 * drop the reply rather than wait on it, and keep serving everyone else.
 */
static void t_full_reply_socket(void)
{
	struct pm_query q = { 0 };
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_QUERY,
			    .length = sizeof(q), .request_id = 4, .nfds = 1 };
	char junk[256] = { 0 };
	uint64_t before, id;
	int sv[2], fd, s;
	uint64_t t0;

	if (!up())
		return;
	fd = pagemap_fd();
	id = it_id(fd);
	CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
	while (send(sv[1], junk, sizeof(junk), MSG_DONTWAIT) > 0)
		;
	before = perrs();
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), &sv[1], 1), 0);
	/* Twenty stalls of even 100 ms would show here. */
	s = raw_session();
	t0 = it_now_ms();
	CU_ASSERT_EQUAL(call(s, PM_OP_NOP, NULL, 0), 0);
	CU_ASSERT(it_now_ms() - t0 < 500);
	close(s);
	/* Dropped at once: waiting even 100 ms on each would take 2 s. */
	IT_WAIT_UNTIL(perrs() >= before + 20, 1000)
		;
	CU_ASSERT(perrs() >= before + 20);
	close(sv[0]);
	close(sv[1]);
	unharmed(fd, id);
	close(fd);
}

/* Sends one datagram with a fresh reply socket; the broker's answer status. */
static int dgram_reply(int fd, const struct pm_hdr *h, const void *p, size_t len)
{
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1000;
	r = it_raw_send(fd, h, p, len, &sv[1], 1);
	close(sv[1]);
	if (r == 0)
		r = it_raw_recv(sv[0], &msg, 2000);
	close(sv[0]);
	if (r < 0)
		return 1000 + r;
	pm_msg_close_fds(&msg);
	return ((struct pm_reply *)msg.payload)->status;
}

static void t_garbage_datagrams(void)
{
	struct pm_query q = { 0 };
	const struct pm_hdr good = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_QUERY,
				     .length = sizeof(q), .nfds = 1, .request_id = 4 };
	struct pm_hdr h;
	char junk[64];
	int fd, p[2], p5[5][2], fds[5];
	uint64_t id, before;

	if (!up())
		return;
	fd = pagemap_fd();
	id = it_id(fd);
	before = perrs();
	for (unsigned i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37 + 11);

	/* Fragments and wrong framing, no reply socket. */
	CU_ASSERT_EQUAL(send(fd, junk, 7, MSG_NOSIGNAL), 7);
	CU_ASSERT_EQUAL(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	h = good, h.nfds = 0, h.magic = 0x12345678;
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), NULL, 0), 0);
	h = good, h.nfds = 0, h.length = 100; /* says 100, carries 8 */
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), NULL, 0), 0);
	h = good; /* says one fd, carries none */
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), NULL, 0), 0);
	unharmed(fd, id);

	/* Well framed, wrong content: an error on the reply socket. */
	h = good, h.opcode = 99;
	CU_ASSERT_EQUAL(dgram_reply(fd, &h, &q, sizeof(q)), -EOPNOTSUPP);
	h = good, h.flags = PM_HDR_REPLY;
	CU_ASSERT_EQUAL(dgram_reply(fd, &h, &q, sizeof(q)), -EINVAL);
	h = good, q.flags = 1;
	CU_ASSERT_EQUAL(dgram_reply(fd, &h, &q, sizeof(q)), -EINVAL);
	q.flags = 0, q.reserved = 1;
	CU_ASSERT_EQUAL(dgram_reply(fd, &h, &q, sizeof(q)), -EINVAL);
	q.reserved = 0, h.length = 4;
	CU_ASSERT_EQUAL(dgram_reply(fd, &h, &q, 4), -EINVAL);
	unharmed(fd, id);

	/* Extra fds: closed by the broker, the query answered. */
	CU_ASSERT_FATAL(pipe2(p, O_CLOEXEC) == 0);
	{
		int sv[2], two[2];

		CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
		two[0] = sv[1];
		two[1] = p[1];
		h = good, h.nfds = 2;
		CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), two, 2), 0);
		close(sv[1]);
		close(p[1]);
		CU_ASSERT_EQUAL(it_raw_recv(sv[0], &msg, 2000), 0);
		CU_ASSERT_EQUAL(((struct pm_reply *)msg.payload)->status, 0);
		pm_msg_close_fds(&msg);
		close(sv[0]);
		CU_ASSERT(it_pipe_widowed(p[0], 2000));
		close(p[0]);
	}
	/* More fds than a message may carry: dropped, every one closed. */
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_FATAL(pipe2(p5[i], O_CLOEXEC) == 0);
		fds[i] = p5[i][1];
	}
	h = good, h.nfds = 5;
	CU_ASSERT_EQUAL(it_raw_send(fd, &h, &q, sizeof(q), fds, 5), 0);
	for (int i = 0; i < 5; i++) {
		close(p5[i][1]);
		CU_ASSERT(it_pipe_widowed(p5[i][0], 2000));
		close(p5[i][0]);
	}
	unharmed(fd, id);
	CU_ASSERT(perrs() > before);
	close(fd);
}

/*
 * A zero-length datagram is data, not a hang-up: the holder still holds its
 * fd, so the pagemap must stay active with its reference.
 */
static void t_empty_datagram(void)
{
	uint64_t id;
	int fd;

	if (!up())
		return;
	fd = pagemap_fd();
	id = it_id(fd);
	CU_ASSERT_EQUAL(send(fd, "", 0, MSG_NOSIGNAL), 0);
	unharmed(fd, id);
	close(fd);
}

static void t_survivor(void)
{
	struct pm_stats_reply st;

	if (!up())
		return;
	CU_ASSERT(perrs() > 0);
	still_serving();
	IT_WAIT_UNTIL(it_stats(adm, &st) == 0 && st.sessions == 1 && st.pagemaps == 0, 2000)
		;
	CU_ASSERT_EQUAL(st.sessions, 1);
	CU_ASSERT_EQUAL(st.handles, 0);
	CU_ASSERT_EQUAL(st.pagemaps, 0);
	CU_ASSERT_EQUAL(it_broker_fds_settle(&br, broker_fds, 2000), broker_fds);
	pm_disconnect(adm);
	adm = NULL;
	it_broker_stop(&br);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "start the broker", t_start },
		{ "control: bad magic closes the session", t_bad_magic },
		{ "control: length > PM_MAX_PAYLOAD closes the session", t_oversize },
		{ "control: unknown header flags close the session", t_unknown_flags },
		{ "control: nfds > PM_MAX_FDS closes the session", t_too_many_fds },
		{ "control: requests before HELLO get -EPROTO", t_before_hello },
		{ "control: another version than negotiated gets -EPROTO", t_version_mismatch },
		{ "control: unknown opcodes get -EOPNOTSUPP", t_unknown_opcode },
		{ "control: HELLO version ranges and fields", t_hello },
		{ "control: OPEN field checks get -EINVAL", t_open_fields },
		{ "control: truncated messages, then close", t_truncated },
		{ "control: fds on a control request", t_fds_on_control },
		{ "control: half a message stalls nobody", t_half_message_no_stall },
		{ "control: a client that never reads is dropped", t_never_reads },
		{ "pagemap fd: QUERY without a reply socket", t_query_without_reply_fd },
		{ "pagemap fd: QUERY with a pipe for a reply socket", t_query_reply_fd_not_a_socket },
		{ "pagemap fd: reply socket full on purpose", t_full_reply_socket },
		{ "pagemap fd: garbage datagrams are ignored", t_garbage_datagrams },
		{ "pagemap fd: an empty datagram is not a hang-up", t_empty_datagram },
		{ "the broker survived it all", t_survivor },
		{ NULL, NULL },
	};

	signal(SIGPIPE, SIG_IGN);
	return cu_run("integration: malformed input", tests);
}
