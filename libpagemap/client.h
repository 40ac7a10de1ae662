/* SPDX-License-Identifier: MIT */
/*
 * The client side of the protocol, shared by libpagemap's public functions
 * and by the tools and tests that speak admin requests (pmctl, pmbench).
 * Not installed: the public API is include/pagemap.h.
 */
#ifndef PAGEMAP_CLIENT_H
#define PAGEMAP_CLIENT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"
#include "proto.h"

/* A managed allocation as this process sees it. */
struct pm_alloc_entry {
	void *addr;
	size_t size, chunk_size;
	int memfd;
	uint64_t id;
	struct pm_alloc_entry *next;
};

struct pm_client {
	int sock;
	struct pm_alloc_entry *allocs; /* under lock */
	uint16_t version;
	uint64_t next_id;
	uint64_t session_id;
	pthread_mutex_t lock; /* one request/reply exchange at a time */
};

/*
 * One request and its reply on the control connection. The reply body
 * (after struct pm_reply) is copied into reply[0..cap) and its length stored
 * in *len; a reply fd, if any, is returned through *fd (caller closes) when
 * fd is not NULL, else closed. Returns the reply's status (>= 0) or -errno.
 */
int pm_client_call(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		   void *reply, size_t cap, size_t *len, int *fd);
/* The same, sending nfds fds (borrowed) with the request. */
int pm_client_call_fds(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		       const int *fds, unsigned nfds, void *reply, size_t cap, size_t *len, int *fd);

/* Resolves NULL to $PAGEMAP_SOCKET, the user's, then the system's socket. */
int pm_client_socket_path(const char *given, char *buf, size_t len);

void pm_info_from_wire(const struct pm_info *w, struct pagemap_info *out);
/* pm_disconnect(): unmaps what pm_alloc mapped (the broker drops its side
 * with the session). */
void pm_alloc_release_all(struct pm_client *c);
#endif
