/* SPDX-License-Identifier: MIT */
/*
 * Session dispatch fuzzer: the input is what a client writes on its control
 * connection, as it is (framing, headers, payloads), to an in-process broker
 * (broker_harness.h), after a HELLO or without one. Some of it goes with
 * fds attached: a memfd, a pipe, a socket. The broker must answer or end
 * the session, never crash, and hold nothing once the client is gone.
 */
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_harness.h"

/* Sends bytes with up to 3 fds of the kinds the first byte picks. */
static void send_with_fds(int s, const uint8_t *p, size_t n, uint8_t kinds)
{
	char cbuf[CMSG_SPACE(3 * sizeof(int))] = { 0 };
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[3], nfds = 0, pipefd[2] = { -1, -1 };

	if (kinds & 1) {
		fds[nfds] = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		if (fds[nfds] >= 0 && ftruncate(fds[nfds], 1 << 20) == 0 &&
		    fcntl(fds[nfds], F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0)
			nfds++;
		else if (fds[nfds] >= 0)
			close(fds[nfds]);
	}
	if ((kinds & 2) && pipe2(pipefd, O_CLOEXEC) == 0)
		fds[nfds++] = pipefd[0];
	if (kinds & 4) {
		fds[nfds] = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fds[nfds] >= 0)
			nfds++;
	}
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	(void)!sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t junk[1 << 16];
	uint8_t mode;
	int s;

	if (!size)
		return 0;
	fh_start();
	mode = data[0];
	s = fh_connect(!(mode & 0x80));
	if (s < 0)
		return 0;
	data++;
	size--;
	/* In up to four pieces, the loop turning in between: messages split
	 * across reads, and pieces with fds. */
	for (int piece = 0; piece < 4 && size; piece++) {
		size_t n = piece == 3 ? size : size / (size_t)(4 - piece);

		if (!n)
			n = size;
		send_with_fds(s, data, n, piece == 1 ? mode & 7 : 0);
		data += n;
		size -= n;
		fh_pump(1);
		/* Replies are read and dropped: a client that never reads is
		 * another test's subject (it-malformed). */
		while (recv(s, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
	}
	close(s);
	fh_check_clean("after the client left");
	for (struct pool *p = fh_broker.pools; p; p = p->next)
		p->gone = false;
	return 0;
}
