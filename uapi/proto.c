/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proto.h"

/* The wire is little-endian; the structs are used in place. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pagemap's wire structs are used in place: big-endian hosts need conversions"
#endif

int pm_msg_send(int sock, struct pm_hdr *hdr, const void *payload, size_t len, const int *fds,
		unsigned nfds)
{
	return pm_msg_send_flags(sock, hdr, payload, len, fds, nfds, 0);
}

int pm_msg_send_flags(int sock, struct pm_hdr *hdr, const void *payload, size_t len,
		      const int *fds, unsigned nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PM_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { hdr, sizeof(*hdr) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	size_t total = sizeof(*hdr) + len, sent = 0;

	if (len > PM_MAX_PAYLOAD || nfds > PM_MAX_FDS)
		return -EMSGSIZE;
	hdr->magic = PM_PROTO_MAGIC;
	hdr->length = (uint32_t)len;
	hdr->nfds = (uint16_t)nfds;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* A stream socket may take a message in pieces; fds go with the first. */
	while (sent < total) {
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		sent += (size_t)n;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		while (mh.msg_iovlen && (size_t)n >= mh.msg_iov[0].iov_len) {
			n -= (ssize_t)mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen) {
			mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + n;
			mh.msg_iov[0].iov_len -= (size_t)n;
		}
	}
	return 0;
}

void pm_msg_close_fds(struct pm_msg *m)
{
	for (unsigned i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	m->nfds = 0;
}

int pm_msg_take_fd(struct pm_msg *m, unsigned i)
{
	int fd;

	if (i >= m->nfds)
		return -1;
	fd = m->fds[i];
	m->fds[i] = -1;
	return fd;
}

/* Collects SCM_RIGHTS fds into fds[*nfds]; anything else (or too many) is an error. */
static int collect_fds(struct msghdr *mh, int *fds, unsigned *nfds)
{
	int r = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			r = -EPROTO;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < PM_MAX_FDS)
				fds[(*nfds)++] = fd;
			else {
				close(fd);
				r = -EPROTO;
			}
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		r = -EPROTO;
	return r;
}

/* Reads exactly len bytes of a stream, fds with the first read when m is
 * given. 0, -ECONNRESET on EOF before len, or -errno. */
static int read_full(int sock, void *buf, size_t len, struct pm_msg *m)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PM_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	size_t got = 0;
	int r = 0;

	while (got < len) {
		struct iovec iov = { (char *)buf + got, len - got };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;

		if (got == 0 && m) {
			mh.msg_control = ctl.buf;
			mh.msg_controllen = sizeof(ctl.buf);
		}
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (got == 0 && m) {
			int c = collect_fds(&mh, m->fds, &m->nfds);

			if (c < 0)
				r = c;
		}
		if (n == 0)
			return r ? r : -ECONNRESET;
		got += (size_t)n;
	}
	return r;
}

/* One datagram is one message: header and payload together. */
static int recv_datagram(int sock, struct pm_msg *m, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * PM_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { &m->hdr, sizeof(m->hdr) }, { m->payload, sizeof(m->payload) } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	int r;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	r = collect_fds(&mh, m->fds, &m->nfds);
	if (n == 0 && !r)
		return -ECONNRESET;
	if (r < 0 || (mh.msg_flags & MSG_TRUNC) || (size_t)n < sizeof(m->hdr) ||
	    m->hdr.magic != PM_PROTO_MAGIC || (size_t)n != sizeof(m->hdr) + m->hdr.length)
		return -EPROTO;
	return 0;
}

int pm_msg_recv(int sock, struct pm_msg *m)
{
	return pm_msg_recv_flags(sock, m, 0);
}

int pm_msg_recv_flags(int sock, struct pm_msg *m, int flags)
{
	int type = 0, r;
	socklen_t tl = sizeof(type);

	m->nfds = 0;
	if (getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return -errno;
	if (type != SOCK_SEQPACKET && flags)
		return -EINVAL; /* a stream cannot give up half-way through a message */
	if (type == SOCK_SEQPACKET) {
		r = recv_datagram(sock, m, flags);
		if (r < 0)
			goto fail;
	} else {
		r = read_full(sock, &m->hdr, sizeof(m->hdr), m);
		if (r < 0)
			goto fail;
		/* Check the header before trusting its length. */
		if (m->hdr.magic != PM_PROTO_MAGIC || m->hdr.length > PM_MAX_PAYLOAD) {
			r = -EPROTO;
			goto fail;
		}
		r = read_full(sock, m->payload, m->hdr.length, NULL);
		if (r < 0)
			goto fail;
	}
	if ((m->hdr.flags & ~PM_HDR_KNOWN) || m->hdr.nfds != m->nfds) {
		r = -EPROTO;
		goto fail;
	}
	return 0;
fail:
	pm_msg_close_fds(m);
	return r;
}

int pm_name_get(const char *field, size_t size, bool allow_empty, char *out)
{
	size_t n = strnlen(field, size);

	if (n == size || (n == 0 && !allow_empty))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)field[i] < 0x20 || (unsigned char)field[i] > 0x7e)
			return -EINVAL;
	for (size_t i = n; i < size; i++)
		if (field[i])
			return -EINVAL; /* padding must be zero, like reserved fields */
	memcpy(out, field, n + 1);
	return 0;
}

int pm_name_put(char *field, size_t size, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n >= size)
		return -ENAMETOOLONG;
	memset(field, 0, size);
	if (n)
		memcpy(field, s, n);
	return 0;
}

void pm_reader_init(struct pm_reader *rd)
{
	rd->len = 0;
	rd->nfds = 0;
}

void pm_reader_reset(struct pm_reader *rd)
{
	for (unsigned i = 0; i < rd->nfds; i++)
		close(rd->fds[i]);
	pm_reader_init(rd);
}

int pm_reader_read(int sock, struct pm_reader *rd, struct pm_msg *m)
{
	for (;;) {
		union {
			char buf[CMSG_SPACE(sizeof(int) * PM_MAX_FDS)];
			struct cmsghdr align;
		} ctl;
		const struct pm_hdr *h = (const struct pm_hdr *)rd->buf;
		size_t want = sizeof(*h);
		struct iovec iov;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				     .msg_controllen = sizeof(ctl.buf) };
		ssize_t n;
		int r;

		if (rd->len >= sizeof(*h)) {
			if (h->magic != PM_PROTO_MAGIC || h->length > PM_MAX_PAYLOAD ||
			    (h->flags & ~PM_HDR_KNOWN) || h->nfds > PM_MAX_FDS)
				goto proto;
			want += h->length;
		}
		if (rd->len >= sizeof(*h) && rd->len == want) {
			if (h->nfds != rd->nfds)
				goto proto;
			memcpy(&m->hdr, h, sizeof(*h));
			memcpy(m->payload, rd->buf + sizeof(*h), h->length);
			memcpy(m->fds, rd->fds, sizeof(int) * rd->nfds);
			m->nfds = rd->nfds;
			pm_reader_init(rd);
			return 1;
		}
		iov.iov_base = rd->buf + rd->len;
		iov.iov_len = want - rd->len;
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -errno;
		r = collect_fds(&mh, rd->fds, &rd->nfds);
		if (r < 0)
			goto proto;
		if (n == 0)
			return -ECONNRESET;
		rd->len += (size_t)n;
	}
proto:
	pm_reader_reset(rd);
	return -EPROTO;
}

const char *pm_kind_name(uint32_t kind)
{
	switch (kind) {
	case PM_KIND_HOST_NUMA:
		return "host-numa";
	case PM_KIND_PCI_BAR:
		return "pci-bar";
	case PM_KIND_RDMA_REMOTE:
		return "rdma-remote";
	case PM_KIND_GPU:
		return "gpu";
	case PM_KIND_EMULATED:
		return "emulated";
	case PM_KIND_P2PMEM:
		return "p2pmem";
	}
	return "unknown";
}
