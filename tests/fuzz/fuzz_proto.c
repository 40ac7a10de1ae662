/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the wire decoder (uapi/proto.c): bytes and fds go
 * through a real socketpair, in the pieces the input says, and are read the
 * way each side reads them: the broker's pm_reader_read on a non-blocking
 * stream (broker/session.c), the library's pm_msg_recv on the stream and on
 * a pagemap fd's seqpacket socket. Every decoded message is checked against
 * what proto.h promises, run through the per-opcode name checks the broker
 * and the library apply, and sent back through pm_msg_send to compare.
 *
 * Input (tests/fuzz/gen_proto_seeds.py writes it):
 *   u8 mode   bits 0-1: 0 pm_reader_read (stream, broker), 1 pm_msg_recv
 *             (stream), 2 pm_msg_recv (seqpacket), 3 pm_msg_recv_flags
 *             MSG_DONTWAIT (seqpacket); bit 2: EOF after the last piece;
 *             bit 3: SO_PASSCRED on the reader (a cmsg that is not SCM_RIGHTS)
 *   pieces    { u8 nfds (low 3 bits: /dev/null fds sent with it), u32le len,
 *             len bytes } until the input ends; a short last piece is cut.
 * A stream sends each piece with one sendmsg; a seqpacket socket sends each
 * as one datagram and reads one message after it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fuzz_fd.h"
#include "proto.h"

#define FUZZ_MAX_INPUT (4u * PM_MAX_PAYLOAD)
/* A blocking stream reader needs everything queued before it reads: stay
 * well under the socket buffer (pieces cost their data plus an skb). */
#define STREAM_MAX_PIECES 64
#define SEND_FDS_MAX 7

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int null_fd = -1;
static struct pm_msg msg, echo;
static struct pm_reader reader;

#define CHECK(cond)                                                                      \
	do {                                                                             \
		if (!(cond)) {                                                           \
			fprintf(stderr, "fuzz_proto: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                        \
			abort();                                                         \
		}                                                                        \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0)
		abort();
	return 0;
}

/* A name field as the receiving side checks it; a valid one must survive
 * pm_name_put unchanged. */
static void check_name(const char *field, size_t size, bool allow_empty)
{
	char out[PM_NAME_MAX + 1], again[PM_NAME_MAX + 1];

	CHECK(size <= PM_NAME_MAX);
	if (pm_name_get(field, size, allow_empty, out) < 0)
		return;
	CHECK(strlen(out) < size);
	CHECK(pm_name_put(again, size, out) == 0);
	CHECK(memcmp(again, field, size) == 0);
}

static void check_info(const struct pm_info *info)
{
	check_name(info->device, sizeof(info->device), false);
	check_name(info->region, sizeof(info->region), true);
}

/* Replies that carry a pm_list_reply and count records: the library's view. */
static void check_list(const struct pm_msg *m, size_t rec, void (*each)(const void *))
{
	const struct pm_list_reply *l = (const void *)m->payload;

	if (m->hdr.length < sizeof(*l) || l->r.status < 0)
		return;
	if ((m->hdr.length - sizeof(*l)) / rec < l->count)
		return; /* the library refuses a count the payload cannot hold */
	for (uint32_t i = 0; i < l->count; i++)
		each(m->payload + sizeof(*l) + i * rec);
}

static void each_info(const void *p)
{
	check_info(p);
}

static void each_client(const void *p)
{
	const struct pm_client_info *ci = p;

	check_name(ci->client, sizeof(ci->client), true);
}

static void each_peer(const void *p)
{
	const struct pm_peer_info *pi = p;

	check_name(pi->name, sizeof(pi->name), false);
	check_name(pi->address, sizeof(pi->address), true);
	check_name(pi->device, sizeof(pi->device), true);
}

/* The per-opcode checks on fixed-size payloads (broker/session.c's op_*,
 * libpagemap's reply parsing): sizes, then the NUL-padded names. */
static void check_opcode(const struct pm_msg *m)
{
	const void *p = m->payload;
	uint32_t len = m->hdr.length;
	bool reply = m->hdr.flags & PM_HDR_REPLY;

	switch (m->hdr.opcode) {
	case PM_OP_HELLO:
		if (!reply && len == sizeof(struct pm_hello))
			check_name(((const struct pm_hello *)p)->client, 32, true);
		break;
	case PM_OP_OPEN:
		if (!reply && len == sizeof(struct pm_open)) {
			const struct pm_open *o = p;

			check_name(o->device, sizeof(o->device), false);
			check_name(o->region, sizeof(o->region), true);
		} else if (reply && len == sizeof(struct pm_open_reply)) {
			check_info(&((const struct pm_open_reply *)p)->info);
		}
		break;
	case PM_OP_QUERY:
		if (reply && len == sizeof(struct pm_query_reply))
			check_info(&((const struct pm_query_reply *)p)->info);
		break;
	case PM_OP_REVOKE:
		if (!reply && len == sizeof(struct pm_revoke))
			check_name(((const struct pm_revoke *)p)->device, PM_NAME_MAX, false);
		break;
	case PM_OP_LIST:
		if (reply)
			check_list(m, sizeof(struct pm_info), each_info);
		break;
	case PM_OP_CLIENTS:
		if (reply)
			check_list(m, sizeof(struct pm_client_info), each_client);
		break;
	case PM_OP_PEERS:
		if (reply)
			check_list(m, sizeof(struct pm_peer_info), each_peer);
		break;
	default:
		break;
	}
}

/* Sends the decoded message again and reads it back: header, payload and
 * fd count must come through unchanged. */
static void check_echo(const struct pm_msg *m)
{
	struct pm_hdr h = m->hdr;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	CHECK(pm_msg_send(sv[0], &h, m->payload, m->hdr.length, m->fds, m->nfds) == 0);
	CHECK(pm_msg_recv(sv[1], &echo) == 0);
	CHECK(memcmp(&echo.hdr, &m->hdr, sizeof(m->hdr)) == 0);
	CHECK(memcmp(echo.payload, m->payload, m->hdr.length) == 0);
	CHECK(echo.nfds == m->nfds);
	pm_msg_close_fds(&echo);
	close(sv[0]);
	close(sv[1]);
}

/* A whole message: what proto.h promises, then what its users do with it. */
static void handle(struct pm_msg *m)
{
	CHECK(m->hdr.magic == PM_PROTO_MAGIC);
	CHECK(m->hdr.length <= PM_MAX_PAYLOAD);
	CHECK(!(m->hdr.flags & ~PM_HDR_KNOWN));
	CHECK(m->nfds <= PM_MAX_FDS);
	CHECK(m->hdr.nfds == m->nfds);
	for (unsigned i = 0; i < m->nfds; i++) {
		int fl = fcntl(m->fds[i], F_GETFD);

		CHECK(fl >= 0 && (fl & FD_CLOEXEC));
	}
	check_opcode(m);
	check_echo(m);
	/* The broker takes the first fd of ALLOC and PLACE: taken, then forgotten. */
	if (m->nfds) {
		int fd = pm_msg_take_fd(m, 0);

		CHECK(fd >= 0);
		CHECK(pm_msg_take_fd(m, 0) == -1);
		close(fd);
	}
	CHECK(pm_msg_take_fd(m, m->nfds) == -1);
	pm_msg_close_fds(m);
	CHECK(m->nfds == 0);
}

/* One piece, with n fds (dups of /dev/null, made by the kernel). */
static int send_piece(int sock, const uint8_t *buf, size_t len, unsigned n)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * SEND_FDS_MAX)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (n) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		for (unsigned i = 0; i < n; i++)
			memcpy(CMSG_DATA(c) + i * sizeof(int), &null_fd, sizeof(int));
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	/* A stream may take part of a piece: the rest is lost, as from a
	 * client that gave up; the readers must cope with any prefix. */
	return 0;
}

struct pieces {
	const uint8_t *p, *end;
};

static bool next_piece(struct pieces *it, const uint8_t **buf, size_t *len, unsigned *nfds)
{
	uint32_t n;

	if (it->end - it->p < 5)
		return false;
	*nfds = it->p[0] & 7;
	memcpy(&n, it->p + 1, 4);
	it->p += 5;
	if (n > (size_t)(it->end - it->p))
		n = (uint32_t)(it->end - it->p);
	*buf = it->p;
	*len = n;
	it->p += n;
	return true;
}

/* The broker: non-blocking reads after every piece, as epoll would wake it. */
static void run_reader(int wr, int rd, struct pieces *it, bool eof)
{
	const uint8_t *buf;
	size_t len;
	unsigned nfds;
	int r = 0;

	pm_reader_init(&reader);
	while (r >= 0) {
		bool more = next_piece(it, &buf, &len, &nfds);

		if (more)
			send_piece(wr, buf, len, nfds);
		else if (eof)
			shutdown(wr, SHUT_WR);
		else
			break;
		while ((r = pm_reader_read(rd, &reader, &msg)) == 1)
			handle(&msg);
		if (r == -EPROTO)
			CHECK(reader.len == 0 && reader.nfds == 0); /* fds closed */
		if (!more)
			break;
	}
	/* session_end(): whatever a half message brought goes. */
	pm_reader_reset(&reader);
}

/* The library on its control socket: blocking reads of whole messages. */
static void run_stream(int wr, int rd, struct pieces *it)
{
	const uint8_t *buf;
	size_t len;
	unsigned nfds, n = 0;

	while (n++ < STREAM_MAX_PIECES && next_piece(it, &buf, &len, &nfds))
		if (send_piece(wr, buf, len, nfds) < 0)
			break;
	shutdown(wr, SHUT_WR); /* else a short stream blocks the reader for ever */
	while (pm_msg_recv(rd, &msg) == 0)
		handle(&msg);
	CHECK(msg.nfds == 0); /* a failed receive closed what it got */
}

/* A pagemap fd: one datagram, one message. */
static void run_seqpacket(int wr, int rd, struct pieces *it, bool eof, bool dontwait)
{
	const uint8_t *buf;
	size_t len;
	unsigned nfds;
	int r;

	while (next_piece(it, &buf, &len, &nfds)) {
		if (send_piece(wr, buf, len, nfds) < 0)
			continue;
		r = dontwait ? pm_msg_recv_flags(rd, &msg, MSG_DONTWAIT) : pm_msg_recv(rd, &msg);
		if (r == 0)
			handle(&msg);
		else
			CHECK(msg.nfds == 0);
	}
	if (eof) {
		shutdown(wr, SHUT_WR);
		r = dontwait ? pm_msg_recv_flags(rd, &msg, MSG_DONTWAIT) : pm_msg_recv(rd, &msg);
		CHECK(r == -ECONNRESET);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pieces it = { data + 1, data + size };
	int sv[2], one = 1, mode, type, fds;
	bool eof;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	fds = fuzz_fd_probe();
	mode = data[0] & 3;
	eof = data[0] & 4;
	type = mode < 2 ? SOCK_STREAM : SOCK_SEQPACKET;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (data[0] & 8)
		setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one));
	if (mode == 0)
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
	switch (mode) {
	case 0:
		run_reader(sv[0], sv[1], &it, eof);
		break;
	case 1:
		run_stream(sv[0], sv[1], &it);
		break;
	default:
		run_seqpacket(sv[0], sv[1], &it, eof, mode == 3);
		break;
	}
	close(sv[0]);
	close(sv[1]);
	fuzz_fd_check(fds, "fuzz_proto");
	return 0;
}
