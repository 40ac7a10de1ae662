/* SPDX-License-Identifier: MIT */
/*
 * Sending and receiving protocol messages with their fds: the one place that
 * frames, checks and unpacks what crosses a pagemap socket. The broker, the
 * library and the tests all use it (static library libpmproto).
 */
#ifndef PAGEMAP_PROTO_IO_H
#define PAGEMAP_PROTO_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap_proto.h"

struct pm_msg {
	struct pm_hdr hdr;
	uint8_t payload[PM_MAX_PAYLOAD];
	int fds[PM_MAX_FDS]; /* received fds, owned by the message until taken */
	unsigned nfds;
};

/*
 * Sends header + payload with nfds fds (borrowed: the caller still owns and
 * closes them). Fills magic, length and nfds. Returns 0 or -errno.
 */
int pm_msg_send(int sock, struct pm_hdr *hdr, const void *payload, size_t len, const int *fds,
		unsigned nfds);

/* The same with sendmsg() flags: MSG_DONTWAIT for a socket the caller does
 * not control (-EAGAIN rather than waiting on a peer that does not read). */
int pm_msg_send_flags(int sock, struct pm_hdr *hdr, const void *payload, size_t len,
		      const int *fds, unsigned nfds, int flags);

/*
 * Receives one message: on a stream socket the header then exactly its
 * payload; on a seqpacket socket one datagram. Validates magic, length,
 * known flags and that the fds that arrived are exactly hdr.nfds (checking
 * MSG_CTRUNC). On any error every received fd is closed, and the return is
 * -EPROTO (malformed), -ECONNRESET (orderly EOF before a whole message) or
 * another -errno. Received fds are MSG_CMSG_CLOEXEC. 0 on success.
 */
int pm_msg_recv(int sock, struct pm_msg *m);

/* The same with recvmsg() flags (MSG_DONTWAIT: -EAGAIN when nothing is
 * pending); seqpacket sockets only. */
int pm_msg_recv_flags(int sock, struct pm_msg *m, int flags);

/* Closes the fds still owned by m. */
void pm_msg_close_fds(struct pm_msg *m);

/* Takes ownership of received fd i (-1 if none): the message forgets it. */
int pm_msg_take_fd(struct pm_msg *m, unsigned i);

/* A NUL-padded fixed-size name field is valid when it holds a NUL, only
 * printable characters before it and zeros after; copies it out (out has
 * size bytes). Returns 0 or -EINVAL. */
int pm_name_get(const char *field, size_t size, bool allow_empty, char *out);
/* Fills a fixed-size field with s, NUL-padded. -ENAMETOOLONG if it does not fit. */
int pm_name_put(char *field, size_t size, const char *s);

/* A pool kind (enum pm_pool_kind) as every tool and log spells it:
 * "host-numa", "pci-bar", ... "unknown" for a value it does not know. */
const char *pm_kind_name(uint32_t kind);


/*
 * Incremental reading for a non-blocking stream socket, so a client that
 * sends half a message cannot stall its reader (the broker's event loop).
 */
struct pm_reader {
	uint8_t buf[sizeof(struct pm_hdr) + PM_MAX_PAYLOAD];
	size_t len;
	int fds[PM_MAX_FDS];
	unsigned nfds;
};

void pm_reader_init(struct pm_reader *rd);
/*
 * Reads what is available. Returns 1 with a whole message in *m (its fds
 * now owned by m), 0 when more bytes are needed (EAGAIN), -ECONNRESET on
 * EOF, -EPROTO for a malformed stream (fds closed), or -errno.
 */
int pm_reader_read(int sock, struct pm_reader *rd, struct pm_msg *m);
void pm_reader_reset(struct pm_reader *rd);
#endif
