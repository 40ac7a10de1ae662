/* SPDX-License-Identifier: MIT */
/*
 * Peer brokers over RDMA. A broker that names a peer (--peer NAME=ADDR:PORT)
 * connects to it with rdma_cm, proves it holds the shared secret, and is
 * handed the pools the peer exports: a registered arena per host NUMA node,
 * which appears here as pagemap "NAME:nodeN" (kind rdma-remote) and is
 * filled and read with one-sided RDMA WRITE and READ. A broker that listens
 * (--rdma-listen) exports to every peer that proves the secret.
 */
#ifndef PAGEMAP_PEER_H
#define PAGEMAP_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct broker;
struct pool;

#define PEER_NAME_MAX 32
#define PEER_SECRET_MAX 256

struct peer_conf {
	char name[PEER_NAME_MAX];
	char host[128];
	char port[16];
};

/* What the verbs engine moves straight from or to the client's memfd. */
enum rdma_zero_copy {
	RDMA_ZC_OFF,   /* nothing: every byte through the transfer buffers */
	RDMA_ZC_WRITE, /* RDMA WRITE from the client's pages (the default) */
	RDMA_ZC_BOTH,  /* and RDMA READ into them (docs/pagemapd.md: a race) */
};

struct rdma_conf {
	char listen_host[128]; /* "" : not listening */
	char listen_port[16];
	struct peer_conf peers[16];
	unsigned npeers;
	char secret_file[512];
	uint64_t export_bytes;     /* arena per host node and importer */
	uint64_t max_pinned_bytes; /* registered (pinned) memory, all peers */
	uint32_t xfer_bufs;        /* transfer buffers per peer connection */
	uint32_t xfer_buf_bytes;
	uint8_t ack_timeout; /* IB local ACK timeout exponent: 4.096 us << n */
	uint32_t stall_ms;   /* a transfer with no progress this long fails */
	enum rdma_zero_copy zero_copy;
};

void rdma_conf_defaults(struct rdma_conf *c);
/* "NAME=HOST:PORT" (HOST may be [v6]); err names what is wrong. */
int peer_conf_parse(const char *arg, struct peer_conf *out, char *err, size_t errlen);
/* "HOST:PORT". */
int hostport_parse(const char *arg, char *host, size_t hlen, char *port, size_t plen);

/* Starts listening and connecting, as configured. 0 when nothing is
 * configured; -EOPNOTSUPP when built without RDMA. */
int peers_init(struct broker *b);
void peers_fini(struct broker *b);
/* Reconnects peers whose retry time came. */
void peers_tick(struct broker *b);
uint64_t peers_next_deadline(const struct broker *b);
struct pm_peer_info;
/* Fills at most max records, one per link; returns how many. */
unsigned peers_describe(const struct broker *b, struct pm_peer_info *out, unsigned max);

/* A transfer found its link broken (the queue pair failed: retries
 * exhausted, a cut link, a dead peer the CM has not reported yet): the
 * link goes down and its pagemaps are revoked, as on a disconnect. */
void peers_check(struct broker *b);

/* An allocation's memfd is going (freed, or its session ended): every
 * registration of it is dropped, those in use once their transfer ends. */
void peers_forget_file(struct broker *b, uint64_t dev, uint64_t ino);

#endif
