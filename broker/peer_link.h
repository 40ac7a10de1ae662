/* SPDX-License-Identifier: MIT */
/* Inside peer.c and xfer_verbs.c: one RDMA connection to a peer broker. */
#ifndef PAGEMAP_PEER_LINK_H
#define PAGEMAP_PEER_LINK_H

#include <pthread.h>
#include <rdma/rdma_cma.h>
#include <infiniband/verbs.h>

#include "broker.h"
#include "regcache.h"

/* "PER2": version 2 keys the MACs with PBKDF2 of the secret and covers the
 * export list; a version 1 peer is refused as malformed, not as wrong. */
#define CTRL_MAGIC 0x32524550u
#define CTRL_NONCE 16
#define CTRL_MAC 32
#define CTRL_SLOTS 4
#define ARENAS_MAX 16

enum ctrl_type { CTRL_CHALLENGE = 1, CTRL_RESPONSE = 2, CTRL_EXPORTS = 3 };

/* Broker to broker, on the queue pair: fixed-size, little-endian. */
struct ctrl_msg {
	uint32_t magic;
	uint32_t type;
	uint8_t nonce[CTRL_NONCE];
	uint8_t mac[CTRL_MAC];
	uint32_t npools;
	uint32_t reserved;
	struct {
		char name[32]; /* "node0" */
		uint64_t addr;
		uint64_t len;
		uint32_t rkey;
		uint32_t node;
	} pools[ARENAS_MAX];
};

/* Registrations a transfer holds at most: one per piece in flight, and
 * there are transfer_buffers (at most 256) of those (xfer_verbs.c). */
#define XFER_REGS_MAX 260

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_AUTH, LINK_READY };

/* Host memory this broker exports to one importer. */
struct arena {
	int memfd;
	uint8_t *map;
	uint64_t len;
	struct ibv_mr *mr;
	int node;
	bool pinned;
};

struct link {
	struct watch ctrl_w; /* the control CQ's completion channel */
	struct peers *ps;
	struct peer_conf conf;
	bool importer; /* we connected: the peer exports to us */
	enum link_state state;
	bool teardown; /* resources go once the current cm event is acked */
	bool odp;      /* the device pages registered memory on demand */
	struct rdma_cm_id *id;
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;
	struct ibv_cq *ctrl_cq, *data_cq;
	struct ibv_mr *ctrl_mr;
	uint8_t ctrl[CTRL_SLOTS + 1][sizeof(struct ctrl_msg)];
	uint8_t nonce_mine[CTRL_NONCE], nonce_theirs[CTRL_NONCE];
	/* Transfers (importer): one worker at a time, under xfer. */
	pthread_mutex_t xfer;
	struct ibv_mr *xfer_mr;
	uint8_t *xfer_buf;
	uint64_t xfer_bytes;
	unsigned nbufs;
	uint32_t buf_bytes;
	uint32_t stall_ms; /* a transfer with no completion this long fails */
	uint32_t rate_mbps;  /* the port's rate, read when the link came up */
	/* Registrations of client memory a transfer that stalled left posted:
	 * released once the queue pair is destroyed (link_teardown). A stall
	 * breaks the link, so one transfer at most leaves any. */
	struct regcache_ent *held[XFER_REGS_MAX];
	unsigned nheld;
	volatile bool said_staged; /* logged why zero copy fell back, once a connection */
	char device[32];     /* the RDMA device carrying it */
	uint64_t connects;   /* authenticated connections */
	volatile bool broken;
	uint64_t retry_at, backoff_ms;
	uint64_t since; /* when the current connection attempt began */
	struct pool *pools[ARENAS_MAX]; /* importer: the remote pools it serves */
	unsigned npools;
	struct arena arenas[ARENAS_MAX]; /* exporter */
	unsigned narenas;
	struct link *next;
};

struct peers {
	struct rdma_event_channel *ec;
	struct watch ecw;
	struct rdma_cm_id *listen_id;
	uint64_t relisten_at; /* listen again then (its device went away) */
	struct link *links;
	uint8_t secret[PEER_SECRET_MAX];
	uint8_t key[32]; /* PBKDF2-SHA256 of the secret: what the MACs are keyed with */
	size_t secret_len;
	/* Client memory registered for zero copy, and the pinned-bytes budget
	 * (rdma.max_pinned_bytes) it shares with arenas and transfer buffers. */
	struct regcache *regs;
	enum rdma_zero_copy zero_copy; /* rdma.zero_copy */
};

/* xfer_verbs.c: registering client memory with a link's protection domain. */
extern const struct regcache_ops xfer_verbs_reg_ops;
/* Idle registrations the cache keeps at most (only on-demand paging ones are kept). */
#define VERBS_REG_IDLE_MAX 256
#endif
