/* SPDX-License-Identifier: MIT */
/*
 * The client side of the protocol, shared by libpagemap's public functions
 * and by the tools and tests that speak admin requests (pmctl, pmbench).
 * Not installed: the public API is include/pagemap.h.
 */
#ifndef PAGEMAP_CLIENT_H
#define PAGEMAP_CLIENT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemap.h"
#include "proto.h"

/* What this process knows of a chunk, to protect and fault it right. */
#define PM_CHUNK_READ_MOSTLY 0x1 /* advised: write-protect while elsewhere */
#define PM_CHUNK_REGISTERED 0x2  /* under userfaultfd: it may leave host memory */
#define PM_CHUNK_AWAY 0x4        /* may be outside host memory: lost if its broker dies */

/* A managed allocation as this process sees it. */
struct pm_alloc_entry {
	void *addr;
	size_t size, chunk_size, nchunks;
	int memfd;
	uint64_t id;
	uint8_t *state;     /* PM_CHUNK_* per chunk, under the client's lock */
	int16_t *pref_node; /* preferred host node per chunk, -1 none */
	/* Which migration write-protected each chunk last (pm_client.wp_epoch):
	 * only that one, or a fault seen after it, may lift the protection. */
	uint64_t *wp_epoch;
	bool uffd_told; /* the broker has our userfaultfd for it (PM_OP_UFFD) */
	struct pm_alloc_entry *next;
};

struct pm_reply_slot;
struct pm_fault;

struct pm_client {
	int sock;
	struct pm_alloc_entry *allocs; /* under lock */
	uint16_t version;
	uint64_t next_id;
	uint64_t session_id;
	/*
	 * Requests from several threads share the connection: each sends under
	 * the lock and waits for its reply; whichever waiter finds nobody
	 * reading reads for all and hands replies to their slots.
	 */
	pthread_mutex_t lock;
	/*
	 * Orders requests that must reach the broker in order: a migration
	 * write-protects its chunks and is sent under it, and the fault
	 * handler sends under it too, so a fault on a chunk about to move
	 * never overtakes the request that moves it.
	 */
	pthread_mutex_t order;
	pthread_cond_t replied;
	struct pm_reply_slot *waiting;
	bool reading;
	int dead; /* the connection broke: every call fails with this */
	struct pm_fault *fault; /* userfaultfd handler, started on first need */
	uint64_t wp_epoch;      /* under lock: one per migration that protects */
	char path[108];         /* the broker's socket: where to reconnect */
	/* Under lock: which connection this is (1, then one more per
	 * reconnect). Allocation ids are that connection's broker's: a request
	 * built with ids of an older one is refused unsent (-ESTALE). */
	uint64_t gen;
	/* pm_client_reconnect, set by pm_connect: the admin tools link this
	 * file on its own, and reach the library's code through it. */
	int (*reconnect)(struct pm_client *c);
};

/*
 * One request and its reply on the control connection. The reply body
 * (after struct pm_reply), error replies' too, is copied into reply[0..cap)
 * and its length stored in *len; a reply fd, if any, is returned through *fd (caller closes) when
 * fd is not NULL, else closed. Returns the reply's status (>= 0) or -errno.
 */
int pm_client_call(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		   void *reply, size_t cap, size_t *len, int *fd);
/* The same, sending nfds fds (borrowed) with the request. */
int pm_client_call_fds(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		       const int *fds, unsigned nfds, void *reply, size_t cap, size_t *len, int *fd);
/* The same for a request that names allocations by the ids of connection
 * gen (pm_span.gen, pm_chunk_at): -ESTALE, unsent, when the connection has
 * changed since; the caller looks the ids up again. */
int pm_client_call_gen(struct pm_client *c, uint64_t gen, uint16_t opcode, const void *req,
		       size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
		       size_t *len, int *fd);
/* The same, called holding c->order, which it releases once the request is
 * sent (or has failed to be). */
int pm_client_call_ordered(struct pm_client *c, uint64_t gen, uint16_t opcode, const void *req,
			   size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
			   size_t *len, int *fd);

/* Whether the control connection broke (every call fails until a reconnect). */
bool pm_client_dead(struct pm_client *c);
/* reconnect.c: a new connection to the broker at c->path, allocations
 * registered again, chunks lost with the old broker made to fault SIGBUS.
 * 0 (also when another thread reconnected first) or -errno. */
int pm_client_reconnect(struct pm_client *c);

/* Resolves NULL to $PAGEMAP_SOCKET, the user's, then the system's socket. */
int pm_client_socket_path(const char *given, char *buf, size_t len);

void pm_info_from_wire(const struct pm_info *w, struct pagemap_info *out);
/* pm_disconnect(): unmaps what pm_alloc mapped (the broker drops its side
 * with the session). */
void pm_alloc_release_all(struct pm_client *c);

void pm_alloc_entry_free(struct pm_alloc_entry *e);
/* The allocation holding [addr, addr + len) entirely, or NULL. Caller holds
 * c->lock. */
struct pm_alloc_entry *pm_alloc_find_range(const struct pm_client *c, uintptr_t addr,
					   size_t len);

/* The chunks a range touches. */
struct pm_span {
	uint64_t id, first, count;
	uint64_t gen; /* the connection whose broker id is */
	uintptr_t start; /* first chunk's address */
	size_t chunk;
};
/* -EINVAL: not page aligned, empty, or not inside one allocation (Linux's
 * rules: never silently rounded). */
int pm_span_of(struct pm_client *c, const void *addr, size_t len, struct pm_span *sp);

/* ---- fault.c: CPU access to chunks that left host memory ---- */
/* Starts the fault handler if needed. 0, or -EOPNOTSUPP without userfaultfd. */
int pm_fault_start(struct pm_client *c);
void pm_fault_stop(struct pm_client *c);
/* Whether the kernel write-protects shmem for us (READ_MOSTLY replicas). */
bool pm_fault_can_wp(struct pm_client *c);
/* Puts [addr, addr + len) under the handler (missing pages, and write
 * protection when available); after pm_fault_start. */
int pm_fault_register(struct pm_client *c, void *addr, size_t len);
/* Tells the broker our userfaultfd for the allocation at addr (once). */
void pm_fault_tell(struct pm_client *c, const void *addr);
/* Write-protects (wp) or releases [addr, addr + len); wakes waiters. */
/* The chunk holding addr: its allocation id, index, start, size, and the
 * epoch of the migration that protected it last. Takes c->lock. */
bool pm_chunk_at(struct pm_client *c, uintptr_t addr, uint64_t *id, uint64_t *idx,
		 uintptr_t *start, size_t *size, uint64_t *epoch, uint64_t *gen);
int pm_fault_protect(struct pm_client *c, void *addr, size_t len, bool wp);
/* [start, start + size) was lost with its broker: every access to it gets
 * SIGBUS from now on. */
void pm_fault_lose(struct pm_client *c, uintptr_t start, size_t size);
#endif
