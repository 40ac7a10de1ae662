/* SPDX-License-Identifier: MIT */
/*
 * Peer brokers over RDMA (peer.h). One rdma_cm event channel serves the
 * listening id and every connection; each connection (a link) has an RC
 * queue pair whose receive side carries the few control messages of the
 * handshake (its CQ's completion channel is watched by the loop) and whose
 * send side carries RDMA WRITE and READ issued by copy workers (its CQ is
 * polled by the worker doing the transfer, one worker per link at a time).
 *
 * Handshake, after the connection is established:
 *   exporter -> importer  CHALLENGE  Ns
 *   importer -> exporter  RESPONSE   Nc, HMAC(secret, "importer" Ns Nc)
 *   exporter -> importer  EXPORTS    HMAC(secret, "exporter" Nc Ns arenas), arenas
 * Nothing is registered for remote access before the importer has proved
 * the secret, and the importer uses nothing before the exporter has.
 *
 * Whoever answers a challenge first hands the challenger a MAC to test
 * guesses of the secret against, offline. The importer answers first: only
 * a party that can pose as the exporter's address gets that, where any
 * client of the listener would if the exporter answered first. Guessing is
 * made expensive besides: the MAC key is PBKDF2 of the secret (KEY_ROUNDS
 * rounds, once at start), and the secret must be 16 bytes or more.
 * Connections not yet authenticated are few (PENDING_MAX) and short-lived
 * (HANDSHAKE_MS): each holds a PD, CQs and a QP.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "config.h"

void rdma_conf_defaults(struct rdma_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->export_bytes = 64ull << 20;
	c->max_pinned_bytes = 512ull << 20;
	c->xfer_bufs = 8;
	c->xfer_buf_bytes = 1u << 20;
	c->ack_timeout = 15; /* 134 ms: about 1 s with seven retries */
	c->stall_ms = 3000;
	c->zero_copy = RDMA_ZC_WRITE;
}

int hostport_parse(const char *arg, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(arg, ':');
	const char *h = arg;
	size_t n;

	if (!colon || !colon[1] || strlen(colon + 1) >= plen)
		return -EINVAL;
	n = (size_t)(colon - arg);
	if (n >= 2 && arg[0] == '[' && arg[n - 1] == ']') { /* [v6]:port */
		h = arg + 1;
		n -= 2;
	}
	if (!n || n >= hlen)
		return -EINVAL;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

int peer_conf_parse(const char *arg, struct peer_conf *out, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : 0;

	if (!eq || !n || n >= sizeof(out->name)) {
		snprintf(err, errlen, "--peer '%s': want NAME=HOST:PORT, NAME 1..%zu characters", arg,
			 sizeof(out->name) - 1);
		return -EINVAL;
	}
	memcpy(out->name, arg, n);
	out->name[n] = '\0';
	/* The name prefixes device names ("NAME:node0"): keep it plain. */
	for (const char *p = out->name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_')) {
			snprintf(err, errlen, "--peer '%s': NAME may hold letters, digits, - and _",
				 arg);
			return -EINVAL;
		}
	if (hostport_parse(eq + 1, out->host, sizeof(out->host), out->port, sizeof(out->port)) < 0) {
		snprintf(err, errlen, "--peer '%s': '%s' is not HOST:PORT", arg, eq + 1);
		return -EINVAL;
	}
	return 0;
}

#if !HAVE_RDMA
int peers_init(struct broker *b)
{
	if (b->conf.rdma.listen_host[0] || b->conf.rdma.npeers) {
		blog(LOG_ERR, "peer brokers need RDMA: built without librdmacm/libcrypto");
		return -EOPNOTSUPP;
	}
	return 0;
}

void peers_fini(struct broker *b)
{
	(void)b;
}

void peers_tick(struct broker *b)
{
	(void)b;
}

uint64_t peers_next_deadline(const struct broker *b)
{
	(void)b;
	return 0;
}

void peers_check(struct broker *b)
{
	(void)b;
}

void peers_forget_file(struct broker *b, uint64_t dev, uint64_t ino)
{
	(void)b;
	(void)dev;
	(void)ino;
}

unsigned peers_describe(const struct broker *b, struct pm_peer_info *out, unsigned max)
{
	(void)b;
	(void)out;
	(void)max;
	return 0;
}

#else
#include <fcntl.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peer_link.h"

#define HANDSHAKE_MS 10000 /* connect to authenticated, at most */
#define PENDING_MAX 8      /* accepted connections not yet authenticated */
#define KEY_ROUNDS 200000  /* PBKDF2-SHA256 rounds: about 0.1 s, once */

static void link_down(struct broker *b, struct link *l, const char *why);
static void link_reap(struct broker *b, struct link *l);
static int listen_start(struct broker *b, struct peers *ps);

/* ---- control messages ---- */

/* What follows the MAC in a control message: the export list. */
#define CTRL_BODY offsetof(struct ctrl_msg, npools)

/* HMAC over the role, both nonces and, for EXPORTS, the export list. */
static void mac(const struct peers *ps, const char *role, const uint8_t *n1, const uint8_t *n2,
		const struct ctrl_msg *body, uint8_t out[CTRL_MAC])
{
	uint8_t msg[16 + 2 * CTRL_NONCE + sizeof(*body) - CTRL_BODY];
	size_t rl = strlen(role), len = 16 + 2 * CTRL_NONCE;
	unsigned outlen = CTRL_MAC;

	memset(msg, 0, sizeof(msg));
	memcpy(msg, role, rl < 16 ? rl : 16);
	memcpy(msg + 16, n1, CTRL_NONCE);
	memcpy(msg + 16 + CTRL_NONCE, n2, CTRL_NONCE);
	if (body) {
		memcpy(msg + len, (const uint8_t *)body + CTRL_BODY, sizeof(*body) - CTRL_BODY);
		len += sizeof(*body) - CTRL_BODY;
	}
	if (!HMAC(EVP_sha256(), ps->key, sizeof(ps->key), msg, len, out, &outlen))
		RAND_bytes(out, CTRL_MAC); /* matches nothing: the peer is refused */
}

static bool mac_ok(const struct peers *ps, const char *role, const uint8_t *n1,
		   const uint8_t *n2, const struct ctrl_msg *body, const uint8_t *got)
{
	uint8_t want[CTRL_MAC];

	mac(ps, role, n1, n2, body, want);
	return CRYPTO_memcmp(want, got, CTRL_MAC) == 0;
}

static int post_recv(struct link *l, unsigned slot)
{
	struct ibv_sge sge = { .addr = (uintptr_t)l->ctrl[slot], .length = sizeof(l->ctrl[slot]),
			       .lkey = l->ctrl_mr->lkey };
	struct ibv_recv_wr wr = { .wr_id = slot, .sg_list = &sge, .num_sge = 1 }, *bad;

	return ibv_post_recv(l->id->qp, &wr, &bad) ? -EIO : 0;
}

static int send_ctrl(struct link *l, const struct ctrl_msg *m)
{
	struct ibv_sge sge = { .addr = (uintptr_t)l->ctrl[CTRL_SLOTS],
			       .length = sizeof(*m), .lkey = l->ctrl_mr->lkey };
	struct ibv_send_wr wr = { .wr_id = UINT64_MAX, .sg_list = &sge, .num_sge = 1,
				  .opcode = IBV_WR_SEND }, *bad;

	/* Unsignalled: a handshake has three messages, and the next one is
	 * sent only after the peer answered the last, so the slot is free. */
	memcpy(l->ctrl[CTRL_SLOTS], m, sizeof(*m));
	return ibv_post_send(l->id->qp, &wr, &bad) ? -EIO : 0;
}

/* ---- exporting: arenas a peer may read and write ---- */

static void arenas_free(struct link *l)
{
	for (unsigned i = 0; i < l->narenas; i++) {
		struct arena *a = &l->arenas[i];

		if (a->mr)
			ibv_dereg_mr(a->mr);
		if (a->map)
			munmap(a->map, a->len);
		if (a->memfd >= 0)
			close(a->memfd);
		if (a->pinned)
			regcache_uncharge(l->ps->regs, a->len);
	}
	l->narenas = 0;
}

/* An arena on host node `node`: a memfd bound to it, populated there, then
 * registered (which pins it, unless the device pages on demand). */
static int arena_make(struct broker *b, struct link *l, int node)
{
	struct arena *a = &l->arenas[l->narenas];
	uint64_t len = b->conf.rdma.export_bytes;
	unsigned long mask[16] = { 0 };
	int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ;
	char name[64];

	if (l->narenas == ARENAS_MAX)
		return -E2BIG;
	/* Charged first: idle registrations of client memory make room. */
	if (!l->odp && regcache_charge(l->ps->regs, len) < 0)
		return -ENOSPC;
	memset(a, 0, sizeof(*a));
	a->memfd = -1;
	a->node = node;
	a->len = len;
	snprintf(name, sizeof(name), "pagemapd:export:%s:node%d", l->conf.name, node);
	a->memfd = memfd_create(name, MFD_CLOEXEC);
	if (a->memfd < 0 || ftruncate(a->memfd, (off_t)len) < 0)
		goto fail;
	a->map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, a->memfd, 0);
	if (a->map == MAP_FAILED) {
		a->map = NULL;
		goto fail;
	}
	if (node >= 0 && node < 1024) {
		mask[node / 64] = 1ul << (node % 64);
		syscall(SYS_mbind, a->map, len, 2 /* MPOL_BIND */, mask, 1025, 0);
	}
	if (l->odp)
		access |= IBV_ACCESS_ON_DEMAND;
	a->mr = ibv_reg_mr(l->pd, a->map, len, access);
	if (!a->mr)
		goto fail;
	a->pinned = !l->odp;
	l->narenas++;
	return 0;
fail:
	{
		int r = errno ? -errno : -ENOMEM;

		if (!l->odp)
			regcache_uncharge(l->ps->regs, len);
		if (a->map)
			munmap(a->map, len);
		if (a->memfd >= 0)
			close(a->memfd);
		a->map = NULL;
		a->memfd = -1;
		return r;
	}
}

static int exports_send(struct broker *b, struct link *l)
{
	struct ctrl_msg m = { .magic = CTRL_MAGIC, .type = CTRL_EXPORTS };
	int r = 0;

	/* Node by node until the pinned-memory cap says stop: a peer gets
	 * what fits, and the log says what did not. */
	for (size_t i = 0; i < b->topo->n_numa && r == 0; i++)
		r = arena_make(b, l, b->topo->numa[i].id);
	if (r < 0)
		blog(l->narenas ? LOG_WARN : LOG_ERR, "peer %s: exporting %u of %zu host nodes: %s%s",
		     l->conf.name, l->narenas, b->topo->n_numa, strerror(-r),
		     r == -ENOSPC ? " (rdma.max_pinned_bytes)" : "");
	if (!l->narenas)
		return r < 0 ? r : -ENODEV;
	m.npools = l->narenas;
	for (unsigned i = 0; i < l->narenas; i++) {
		snprintf(m.pools[i].name, sizeof(m.pools[i].name), "node%d", l->arenas[i].node);
		m.pools[i].addr = (uintptr_t)l->arenas[i].map;
		m.pools[i].len = l->arenas[i].len;
		m.pools[i].rkey = l->arenas[i].mr->rkey;
		m.pools[i].node = (uint32_t)l->arenas[i].node;
	}
	mac(l->ps, "exporter", l->nonce_theirs, l->nonce_mine, &m, m.mac);
	blog(LOG_INFO, "peer %s authenticated: exporting %u host node(s), %llu MiB each%s",
	     l->conf.name, l->narenas, (unsigned long long)(b->conf.rdma.export_bytes >> 20),
	     l->odp ? " (on-demand paging)" : " (pinned)");
	return send_ctrl(l, &m);
}

/* ---- importing: remote pools from an EXPORTS message ---- */

static void pools_import(struct broker *b, struct link *l, const struct ctrl_msg *m)
{
	l->npools = 0;
	for (uint32_t i = 0; i < m->npools && i < ARENAS_MAX; i++) {
		char dev[PM_NAME_MAX], name[sizeof(m->pools[i].name) + 1];
		struct pool *p;

		memcpy(name, m->pools[i].name, sizeof(m->pools[i].name));
		name[sizeof(m->pools[i].name)] = '\0';
		/* Authenticated is not infallible: names become device names. */
		if (!name[0] || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(name) ||
		    m->pools[i].len < PM_CHUNK_MIN) {
			blog(LOG_WARN, "peer %s: export %u is malformed: ignored", l->conf.name, i);
			continue;
		}
		snprintf(dev, sizeof(dev), "%s:%s", l->conf.name, name);
		p = pool_find(b, dev, "");
		if (!p) {
			p = pool_add(b, &pool_remote_ops, dev, "");
			if (!p)
				continue;
		}
		if (p->pm) /* a pagemap of the last connection: never reused */
			continue;
		p->gone = false;
		p->k.remote.link = l;
		p->k.remote.raddr = m->pools[i].addr;
		p->k.remote.rkey = m->pools[i].rkey;
		/* At most 1 TiB from one peer: the space bitmap is sized by it. */
		p->capacity = m->pools[i].len < (1ull << 40) ? m->pools[i].len : 1ull << 40;
		p->capacity -= p->capacity % PM_CHUNK_MIN;
		p->numa = -1;
		p->addr_bits = 64;
		l->pools[l->npools++] = p;
		blog(LOG_INFO, "peer %s: pool %s, %llu MiB over RDMA", l->conf.name, dev,
		     (unsigned long long)(p->capacity >> 20));
	}
}

/* ---- the handshake ---- */

static void ctrl_message(struct broker *b, struct link *l, const struct ctrl_msg *m, size_t len)
{
	struct ctrl_msg out = { .magic = CTRL_MAGIC };

	if (len < offsetof(struct ctrl_msg, pools) || m->magic != CTRL_MAGIC) {
		link_down(b, l, "malformed control message");
		return;
	}
	switch (m->type) {
	case CTRL_CHALLENGE: /* importer */
		if (!l->importer || l->state != LINK_AUTH)
			break;
		memcpy(l->nonce_theirs, m->nonce, CTRL_NONCE);
		RAND_bytes(l->nonce_mine, CTRL_NONCE);
		out.type = CTRL_RESPONSE;
		memcpy(out.nonce, l->nonce_mine, CTRL_NONCE);
		mac(l->ps, "importer", l->nonce_theirs, l->nonce_mine, NULL, out.mac);
		if (send_ctrl(l, &out) < 0)
			link_down(b, l, "cannot send");
		return;
	case CTRL_RESPONSE: /* exporter */
		if (l->importer || l->state != LINK_AUTH)
			break;
		memcpy(l->nonce_theirs, m->nonce, CTRL_NONCE);
		if (!mac_ok(l->ps, "importer", l->nonce_mine, l->nonce_theirs, NULL, m->mac)) {
			blog(LOG_WARN, "peer %s: wrong secret: connection refused", l->conf.name);
			link_down(b, l, "authentication failed");
			return;
		}
		if (exports_send(b, l) < 0) {
			link_down(b, l, "cannot export");
			return;
		}
		l->state = LINK_READY;
		l->connects++;
		return;
	case CTRL_EXPORTS: /* importer */
		if (!l->importer || l->state != LINK_AUTH || len < sizeof(*m))
			break;
		if (!mac_ok(l->ps, "exporter", l->nonce_mine, l->nonce_theirs, m, m->mac)) {
			blog(LOG_WARN, "peer %s: it does not hold the secret: disconnecting",
			     l->conf.name);
			link_down(b, l, "peer authentication failed");
			return;
		}
		/* Published under xfer: workers read the state with it held. */
		pthread_mutex_lock(&l->xfer);
		l->state = LINK_READY;
		pthread_mutex_unlock(&l->xfer);
		l->backoff_ms = 0;
		l->connects++;
		blog(LOG_INFO, "peer %s: connected and authenticated", l->conf.name);
		pools_import(b, l, m);
		return;
	}
	link_down(b, l, "unexpected control message");
}

static void ctrl_event(struct broker *b, struct watch *w, uint32_t events)
{
	struct link *l = (struct link *)w;
	struct ibv_cq *cq;
	struct ibv_wc wc[4];
	void *ctx;
	int n;

	(void)events;
	if (ibv_get_cq_event(l->ch, &cq, &ctx) < 0)
		return;
	ibv_ack_cq_events(cq, 1);
	ibv_req_notify_cq(cq, 0);
	while (l->state != LINK_DOWN && (n = ibv_poll_cq(l->ctrl_cq, 4, wc)) > 0) {
		for (int i = 0; i < n && l->state != LINK_DOWN; i++) {
			unsigned slot = (unsigned)wc[i].wr_id;

			if (wc[i].status != IBV_WC_SUCCESS) {
				link_down(b, l, ibv_wc_status_str(wc[i].status));
				return;
			}
			if (slot >= CTRL_SLOTS)
				continue;
			ctrl_message(b, l, (const struct ctrl_msg *)l->ctrl[slot], wc[i].byte_len);
			if (l->state != LINK_DOWN && post_recv(l, slot) < 0)
				link_down(b, l, "cannot post a receive");
		}
	}
}

/* ---- connection setup ---- */

/* The port's signalling rate in Mb/s, from its width and per-lane speed
 * (the IB encodings ibv_query_port reports, for RoCE too). */
static uint32_t port_rate_mbps(struct ibv_context *v, uint8_t port)
{
	static const struct {
		uint32_t code, mbps;
	} speeds[] = { { 1, 2500 }, { 2, 5000 }, { 4, 10000 }, { 8, 10313 }, { 16, 14063 },
		       { 32, 25781 }, { 64, 53125 }, { 128, 106250 }, { 256, 212500 } };
	static const struct {
		uint32_t code, lanes;
	} widths[] = { { 1, 1 }, { 2, 4 }, { 4, 8 }, { 8, 12 }, { 16, 2 } };
	struct ibv_port_attr a;
	uint32_t lane = 0, lanes = 0;

	if (ibv_query_port(v, port, &a))
		return 0;
	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++)
		if (speeds[i].code == a.active_speed)
			lane = speeds[i].mbps;
	for (size_t i = 0; i < sizeof(widths) / sizeof(widths[0]); i++)
		if (widths[i].code == a.active_width)
			lanes = widths[i].lanes;
	return lane * lanes;
}

static bool device_has_odp(struct ibv_context *verbs)
{
	struct ibv_device_attr_ex attr;

	if (ibv_query_device_ex(verbs, NULL, &attr))
		return false;
	return (attr.odp_caps.general_caps & IBV_ODP_SUPPORT) &&
	       (attr.odp_caps.per_transport_caps.rc_odp_caps &
		(IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ)) ==
		       (IBV_ODP_SUPPORT_WRITE | IBV_ODP_SUPPORT_READ);
}

/* PD, CQs, the QP, control buffers and transfer buffers on l->id. */
static int link_setup(struct broker *b, struct link *l)
{
	const struct rdma_conf *rc = &b->conf.rdma;
	struct ibv_qp_init_attr qa = { 0 };
	uint64_t xfer = (uint64_t)rc->xfer_bufs * rc->xfer_buf_bytes;
	struct ibv_context *v = l->id->verbs;

	l->odp = device_has_odp(v);
	l->pd = ibv_alloc_pd(v);
	l->ch = ibv_create_comp_channel(v);
	if (!l->pd || !l->ch)
		return -ENOMEM;
	l->ctrl_cq = ibv_create_cq(v, CTRL_SLOTS + 2, l, l->ch, 0);
	l->data_cq = ibv_create_cq(v, (int)rc->xfer_bufs + 8, NULL, NULL, 0);
	if (!l->ctrl_cq || !l->data_cq)
		return -ENOMEM;
	qa.send_cq = l->data_cq;
	qa.recv_cq = l->ctrl_cq;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = rc->xfer_bufs + 8;
	qa.cap.max_recv_wr = CTRL_SLOTS;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(l->id, l->pd, &qa))
		return -errno;
	l->ctrl_mr = ibv_reg_mr(l->pd, l->ctrl, sizeof(l->ctrl), IBV_ACCESS_LOCAL_WRITE);
	if (!l->ctrl_mr)
		return -errno;
	for (unsigned i = 0; i < CTRL_SLOTS; i++)
		if (post_recv(l, i) < 0)
			return -EIO;
	/* Transfer buffers only where transfers start: the importer. */
	if (l->importer) {
		if (regcache_charge(l->ps->regs, xfer) < 0)
			return -ENOSPC;
		l->xfer_buf = mmap(NULL, xfer, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (l->xfer_buf == MAP_FAILED) {
			l->xfer_buf = NULL;
			regcache_uncharge(l->ps->regs, xfer);
			return -ENOMEM;
		}
		l->xfer_bytes = xfer; /* for the unmap, whatever fails next */
		l->xfer_mr = ibv_reg_mr(l->pd, l->xfer_buf, xfer, IBV_ACCESS_LOCAL_WRITE);
		if (!l->xfer_mr) {
			int r = -errno;

			regcache_uncharge(l->ps->regs, xfer);
			return r;
		}
	}
	l->said_staged = false;
	l->nbufs = rc->xfer_bufs;
	l->buf_bytes = rc->xfer_buf_bytes;
	l->stall_ms = rc->stall_ms;
	/*
	 * How long an unanswered packet waits before a retry (4.096 us * 2^n,
	 * seven retries): short enough that a dead peer or a cut link fails the
	 * transfer in about a second, not the tens of seconds RoCE's default
	 * path lifetime gives. A blip shorter than that is retried through.
	 */
	{
		uint8_t t = rc->ack_timeout;

		if (rdma_set_option(l->id, RDMA_OPTION_ID, RDMA_OPTION_ID_ACK_TIMEOUT, &t, sizeof(t)))
			blog(LOG_WARN, "peer %s: cannot set the ACK timeout: %s", l->conf.name,
			     strerror(errno));
	}
	l->ctrl_w.fd = l->ch->fd;
	l->ctrl_w.cb = ctrl_event;
	fcntl(l->ch->fd, F_SETFL, fcntl(l->ch->fd, F_GETFL) | O_NONBLOCK);
	ibv_req_notify_cq(l->ctrl_cq, 0);
	return loop_add(b, &l->ctrl_w, EPOLLIN);
}

/* Frees the verbs resources and the id; the link struct stays. */
static void link_teardown(struct broker *b, struct link *l)
{
	if (l->ctrl_w.fd >= 0 && l->ch) {
		loop_del(b, &l->ctrl_w);
		l->ctrl_w.fd = -1;
	}
	arenas_free(l);
	if (l->id && l->id->qp)
		rdma_destroy_qp(l->id);
	/* Nothing is posted any more: what a stalled transfer left can go,
	 * then every registration of client memory in this domain. */
	for (unsigned i = 0; i < l->nheld; i++)
		regcache_put(l->ps->regs, l->held[i]);
	l->nheld = 0;
	if (l->pd)
		regcache_invalidate_dom(l->ps->regs, l->pd);
	if (l->xfer_mr)
		ibv_dereg_mr(l->xfer_mr);
	if (l->xfer_buf)
		munmap(l->xfer_buf, l->xfer_bytes);
	if (l->xfer_mr)
		regcache_uncharge(l->ps->regs, l->xfer_bytes);
	if (l->ctrl_mr)
		ibv_dereg_mr(l->ctrl_mr);
	if (l->data_cq)
		ibv_destroy_cq(l->data_cq);
	if (l->ctrl_cq)
		ibv_destroy_cq(l->ctrl_cq);
	if (l->ch)
		ibv_destroy_comp_channel(l->ch);
	if (l->pd)
		ibv_dealloc_pd(l->pd);
	if (l->id)
		rdma_destroy_id(l->id);
	l->xfer_mr = NULL;
	l->xfer_buf = NULL;
	l->ctrl_mr = NULL;
	l->data_cq = l->ctrl_cq = NULL;
	l->ch = NULL;
	l->pd = NULL;
	l->id = NULL;
}

static void link_free(struct peers *ps, struct link *l)
{
	for (struct link **pp = &ps->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_destroy(&l->xfer);
	free(l);
}

/*
 * The connection is gone or refused. Transfers in flight fail (their
 * source data stays where it was); the peer's pagemaps are revoked; an
 * importer tries again later, an exporter's link is freed.
 */
static void link_down(struct broker *b, struct link *l, const char *why)
{
	struct peers *ps = l->ps;

	if (l->state == LINK_DOWN)
		return;
	blog(l->state == LINK_READY ? LOG_WARN : LOG_INFO, "peer %s: %s", l->conf.name, why);
	l->broken = true;
	l->state = LINK_DOWN;
	if (l->id && l->id->qp)
		rdma_disconnect(l->id);
	/* A worker mid-transfer sees its work requests flushed and lets go. */
	pthread_mutex_lock(&l->xfer);
	pthread_mutex_unlock(&l->xfer);
	for (unsigned i = 0; i < l->npools; i++) {
		l->pools[i]->k.remote.link = NULL;
		registry_revoke_device(b, l->pools[i]->device, -ENODEV);
	}
	l->npools = 0;
	l->teardown = true; /* after the current rdma_cm event is acked */
	if (l->importer) {
		l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : 500;
		if (l->backoff_ms > 8000)
			l->backoff_ms = 8000;
		l->retry_at = now_ms() + l->backoff_ms;
		loop_arm_timer(b);
	}
	(void)ps;
}

/* An exporter's link goes once its teardown is done; its memory after the
 * current batch of events (loop_retire), which may still hold one for it. */
static void link_reap(struct broker *b, struct link *l)
{
	if (!l->teardown)
		return;
	l->teardown = false;
	link_teardown(b, l);
	if (l->importer)
		return;
	for (struct link **pp = &l->ps->links; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	pthread_mutex_destroy(&l->xfer);
	loop_retire(b, &l->ctrl_w);
}

static int link_connect(struct broker *b, struct link *l)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
	int r;

	/* The last connection's resources go first: its id must not be
	 * overwritten (leaked), nor torn down after this one is made. */
	link_reap(b, l);
	l->broken = false;
	l->state = LINK_CONNECTING;
	l->since = now_ms();
	r = getaddrinfo(l->conf.host, l->conf.port, &hints, &ai);
	if (r) {
		link_down(b, l, gai_strerror(r));
		return -EHOSTUNREACH;
	}
	if (rdma_create_id(l->ps->ec, &l->id, l, RDMA_PS_TCP) ||
	    rdma_resolve_addr(l->id, NULL, ai->ai_addr, 2000)) {
		r = -errno;
		freeaddrinfo(ai);
		link_down(b, l, strerror(-r));
		return r;
	}
	freeaddrinfo(ai);
	return 0;
}

static struct rdma_conn_param conn_param(const struct link *l)
{
	struct rdma_conn_param p = { .initiator_depth = 4, .responder_resources = 4,
				     .retry_count = 7, .rnr_retry_count = 7 };
	struct ibv_device_attr attr;

	if (l->id && l->id->verbs && !ibv_query_device(l->id->verbs, &attr)) {
		if (attr.max_qp_init_rd_atom < p.initiator_depth)
			p.initiator_depth = (uint8_t)attr.max_qp_init_rd_atom;
		if (attr.max_qp_rd_atom < p.responder_resources)
			p.responder_resources = (uint8_t)attr.max_qp_rd_atom;
	}
	return p;
}

static struct link *link_new(struct peers *ps, const struct peer_conf *pc, bool importer)
{
	struct link *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->ps = ps;
	l->conf = *pc;
	l->importer = importer;
	l->state = LINK_DOWN;
	l->ctrl_w.fd = -1;
	pthread_mutex_init(&l->xfer, NULL);
	l->next = ps->links;
	ps->links = l;
	return l;
}

static void accept_request(struct broker *b, struct rdma_cm_id *id)
{
	struct peer_conf pc = { 0 };
	struct rdma_conn_param p;
	char host[64] = "?";
	struct link *l;
	unsigned pending = 0;
	int r;

	getnameinfo(rdma_get_peer_addr(id), sizeof(struct sockaddr_storage), host, sizeof(host),
		    NULL, 0, NI_NUMERICHOST);
	for (l = b->peers->links; l; l = l->next)
		pending += !l->importer && l->state != LINK_READY && l->state != LINK_DOWN;
	if (pending >= PENDING_MAX) {
		static uint64_t said;

		if (now_ms() - said >= 10000) {
			blog(LOG_WARN, "peer connection from %s refused: %u not yet authenticated",
			     host, pending);
			said = now_ms();
		}
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	snprintf(pc.name, sizeof(pc.name), "from %s", host);
	l = link_new(b->peers, &pc, false);
	if (!l) {
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
		return;
	}
	l->id = id;
	id->context = l;
	l->since = now_ms();
	r = link_setup(b, l);
	p = conn_param(l);
	if (r < 0 || rdma_accept(id, &p)) {
		blog(LOG_WARN, "peer %s: cannot accept: %s", l->conf.name,
		     strerror(r < 0 ? -r : errno));
		if (!l->id->qp)
			rdma_reject(id, NULL, 0);
		l->state = LINK_CONNECTING;
		link_down(b, l, "refused");
		link_reap(b, l);
		return;
	}
	l->state = LINK_CONNECTING;
}

static void cm_event(struct broker *b, struct watch *w, uint32_t events)
{
	struct peers *ps = b->peers;
	struct rdma_cm_event *ev;

	(void)w;
	(void)events;
	while (rdma_get_cm_event(ps->ec, &ev) == 0) {
		struct rdma_cm_id *id = ev->id;
		enum rdma_cm_event_type type = ev->event;
		struct link *l = id->context;
		int status = ev->status;

		/* Acked first: destroying an id waits for its events' acks. */
		rdma_ack_cm_event(ev);
		if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
			accept_request(b, id);
			continue;
		}
		if (!l) {
			/* The listening id. Its device going away must free it,
			 * or the device cannot be removed; listen again later. */
			if (type == RDMA_CM_EVENT_DEVICE_REMOVAL && id == ps->listen_id) {
				blog(LOG_WARN, "peer listener: RDMA device removed; listening again "
					       "when it is back");
				rdma_destroy_id(id);
				ps->listen_id = NULL;
				ps->relisten_at = now_ms() + 1000;
				loop_arm_timer(b);
			}
			continue;
		}
		switch (type) {
		case RDMA_CM_EVENT_ADDR_RESOLVED:
			if (rdma_resolve_route(id, 2000))
				link_down(b, l, "cannot resolve a route");
			break;
		case RDMA_CM_EVENT_ROUTE_RESOLVED: {
			struct rdma_conn_param p;
			int r = link_setup(b, l);

			p = conn_param(l);
			if (r < 0 || rdma_connect(id, &p))
				link_down(b, l, strerror(r < 0 ? -r : errno));
			break;
		}
		case RDMA_CM_EVENT_ESTABLISHED:
			l->state = LINK_AUTH;
			l->rate_mbps = port_rate_mbps(id->verbs, id->port_num);
			snprintf(l->device, sizeof(l->device), "%s",
				 ibv_get_device_name(id->verbs->device));
			if (!l->importer) {
				struct ctrl_msg m = { .magic = CTRL_MAGIC, .type = CTRL_CHALLENGE };

				RAND_bytes(l->nonce_mine, CTRL_NONCE);
				memcpy(m.nonce, l->nonce_mine, CTRL_NONCE);
				if (send_ctrl(l, &m) < 0)
					link_down(b, l, "cannot send");
			}
			break;
		case RDMA_CM_EVENT_DISCONNECTED:
			link_down(b, l, "disconnected");
			break;
		case RDMA_CM_EVENT_DEVICE_REMOVAL:
			link_down(b, l, "RDMA device removed");
			break;
		case RDMA_CM_EVENT_REJECTED:
		case RDMA_CM_EVENT_UNREACHABLE:
		case RDMA_CM_EVENT_ADDR_ERROR:
		case RDMA_CM_EVENT_ROUTE_ERROR:
		case RDMA_CM_EVENT_CONNECT_ERROR:
			link_down(b, l, rdma_event_str(type));
			(void)status;
			break;
		default:
			break;
		}
		link_reap(b, l);
	}
}

static int secret_load(struct peers *ps, const char *path)
{
	static const char salt[] = "pagemap peer secret v2";
	struct stat st;
	ssize_t n;
	/* Not through a link someone else planted, nor a FIFO that blocks. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		blog(LOG_ERR, "peer secret %s: %s", path,
		     errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		blog(LOG_ERR, "peer secret %s: not a regular file", path);
		return -EINVAL;
	}
	/* A secret anyone else can read, or write, is no secret. */
	if ((st.st_mode & 0077) || (st.st_uid != geteuid() && st.st_uid != 0)) {
		close(fd);
		blog(LOG_ERR, "peer secret %s: must be ours or root's, mode 0600 or stricter", path);
		return -EPERM;
	}
	n = read(fd, ps->secret, sizeof(ps->secret));
	close(fd);
	while (n > 0 && (ps->secret[n - 1] == '\n' || ps->secret[n - 1] == '\r'))
		n--;
	if (n < 16) {
		blog(LOG_ERR, "peer secret %s: want at least 16 bytes", path);
		return -EINVAL;
	}
	ps->secret_len = (size_t)n;
	if (!PKCS5_PBKDF2_HMAC((const char *)ps->secret, (int)n, (const uint8_t *)salt,
			       sizeof(salt) - 1, KEY_ROUNDS, EVP_sha256(), sizeof(ps->key), ps->key))
		return -ENOMEM;
	return 0;
}

static int listen_start(struct broker *b, struct peers *ps)
{
	const struct rdma_conf *rc = &b->conf.rdma;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*ai;
	int r = getaddrinfo(rc->listen_host, rc->listen_port, &hints, &ai);

	if (r) {
		blog(LOG_ERR, "--rdma-listen %s:%s: %s", rc->listen_host, rc->listen_port,
		     gai_strerror(r));
		return -EINVAL;
	}
	if (rdma_create_id(ps->ec, &ps->listen_id, NULL, RDMA_PS_TCP) ||
	    rdma_bind_addr(ps->listen_id, ai->ai_addr) || rdma_listen(ps->listen_id, 8)) {
		r = -errno;
		freeaddrinfo(ai);
		if (ps->listen_id)
			rdma_destroy_id(ps->listen_id);
		ps->listen_id = NULL;
		blog(LOG_ERR, "--rdma-listen %s:%s: %s (no RDMA device on that address?)",
		     rc->listen_host, rc->listen_port, strerror(-r));
		return r;
	}
	freeaddrinfo(ai);
	blog(LOG_INFO, "exporting host memory to peers on %s:%s", rc->listen_host,
	     rc->listen_port);
	return 0;
}

int peers_init(struct broker *b)
{
	const struct rdma_conf *rc = &b->conf.rdma;
	struct peers *ps;
	int r;

	if (!rc->listen_host[0] && !rc->npeers)
		return 0;
	if (!rc->secret_file[0]) {
		blog(LOG_ERR, "peer brokers need --peer-secret FILE: no unauthenticated peers");
		return -EINVAL;
	}
	ps = calloc(1, sizeof(*ps));
	if (!ps)
		return -ENOMEM;
	b->peers = ps;
	ps->regs = regcache_new(&xfer_verbs_reg_ops, NULL, rc->max_pinned_bytes, VERBS_REG_IDLE_MAX);
	if (!ps->regs)
		return -ENOMEM;
	ps->zero_copy = rc->zero_copy;
	r = secret_load(ps, rc->secret_file);
	if (r < 0)
		return r;
	ps->ec = rdma_create_event_channel();
	if (!ps->ec)
		return -errno;
	fcntl(ps->ec->fd, F_SETFL, fcntl(ps->ec->fd, F_GETFL) | O_NONBLOCK);
	ps->ecw.fd = ps->ec->fd;
	ps->ecw.cb = cm_event;
	r = loop_add(b, &ps->ecw, EPOLLIN);
	if (r < 0)
		return r;
	if (rc->listen_host[0] && (r = listen_start(b, ps)) < 0)
		return r;
	for (unsigned i = 0; i < rc->npeers; i++) {
		struct link *l = link_new(ps, &rc->peers[i], true);

		if (!l)
			return -ENOMEM;
		link_connect(b, l);
		link_reap(b, l); /* a connect that failed at once */
	}
	return 0;
}

void peers_fini(struct broker *b)
{
	struct peers *ps = b->peers;

	if (!ps)
		return;
	while (ps->links) {
		struct link *l = ps->links;

		l->state = LINK_DOWN;
		link_teardown(b, l);
		link_free(ps, l);
	}
	if (ps->listen_id)
		rdma_destroy_id(ps->listen_id);
	if (ps->ec) {
		loop_del(b, &ps->ecw);
		rdma_destroy_event_channel(ps->ec);
	}
	if (ps->regs) {
		struct regcache_stats st;

		regcache_stats(ps->regs, &st);
		regcache_destroy(ps->regs); /* every link is gone: nothing in use */
		blog(LOG_INFO, "rdma registrations: %llu made, %llu reused, %llu refused by "
			       "rdma.max_pinned_bytes, %llu failed, %llu evicted; pinned at most "
			       "%llu of %llu bytes",
		     (unsigned long long)st.registrations, (unsigned long long)st.hits,
		     (unsigned long long)st.refused, (unsigned long long)st.failed,
		     (unsigned long long)st.evictions, (unsigned long long)st.pinned_peak,
		     (unsigned long long)st.cap);
	}
	OPENSSL_cleanse(ps->secret, sizeof(ps->secret));
	OPENSSL_cleanse(ps->key, sizeof(ps->key));
	free(ps);
	b->peers = NULL;
}

void peers_tick(struct broker *b)
{
	uint64_t now = now_ms();

	if (!b->peers)
		return;
	if (b->peers->relisten_at && now >= b->peers->relisten_at) {
		b->peers->relisten_at = 0;
		if (listen_start(b, b->peers) < 0)
			b->peers->relisten_at = now + 2000;
	}
	/* A connection that does not get through the handshake in time (a
	 * peer that connects and says nothing, a lost CHALLENGE) holds a
	 * queue pair for nothing: drop it. */
	for (struct link *l = b->peers->links, *next; l; l = next) {
		next = l->next;
		if ((l->state == LINK_CONNECTING || l->state == LINK_AUTH) &&
		    now >= l->since + HANDSHAKE_MS) {
			link_down(b, l, "handshake timed out");
			link_reap(b, l);
		}
	}
	for (struct link *l = b->peers->links; l; l = l->next)
		if (l->importer && l->state == LINK_DOWN && l->retry_at && l->retry_at <= now) {
			l->retry_at = 0;
			link_connect(b, l);
			link_reap(b, l);
		}
}

void peers_forget_file(struct broker *b, uint64_t dev, uint64_t ino)
{
	if (b->peers)
		regcache_invalidate(b->peers->regs, (dev_t)dev, (ino_t)ino);
}

void peers_check(struct broker *b)
{
	if (!b->peers)
		return;
	for (struct link *l = b->peers->links; l; l = l->next)
		if (l->broken && l->state != LINK_DOWN)
			link_down(b, l, "a transfer failed (peer or link gone)");
}

unsigned peers_describe(const struct broker *b, struct pm_peer_info *out, unsigned max)
{
	static const uint32_t states[] = { [LINK_DOWN] = PM_PEER_DOWN,
					   [LINK_CONNECTING] = PM_PEER_CONNECTING,
					   [LINK_AUTH] = PM_PEER_AUTHENTICATING,
					   [LINK_READY] = PM_PEER_READY };
	unsigned n = 0;

	if (!b->peers)
		return 0;
	for (const struct link *l = b->peers->links; l && n < max; l = l->next) {
		struct pm_peer_info *pi = &out[n++];
		char addr[sizeof(pi->address) + 8] = "";

		memset(pi, 0, sizeof(*pi));
		pm_name_put(pi->name, sizeof(pi->name), l->conf.name);
		if (l->importer)
			snprintf(addr, sizeof(addr), "%s:%s", l->conf.host, l->conf.port);
		addr[sizeof(pi->address) - 1] = '\0';
		pm_name_put(pi->address, sizeof(pi->address), addr);
		if (l->state != LINK_DOWN)
			pm_name_put(pi->device, sizeof(pi->device), l->device);
		pi->role = l->importer ? PM_PEER_IMPORTS : PM_PEER_EXPORTS;
		pi->state = states[l->state];
		pi->rate_mbps = l->state == LINK_DOWN ? 0 : l->rate_mbps;
		pi->npools = l->importer ? l->npools : l->narenas;
		pi->pinned = l->xfer_bytes * (l->xfer_mr != NULL);
		for (unsigned i = 0; i < l->narenas; i++)
			pi->pinned += l->arenas[i].pinned ? l->arenas[i].len : 0;
		if (l->pd)
			pi->pinned += regcache_pinned_dom(b->peers->regs, l->pd);
		pi->connects = l->connects;
	}
	return n;
}

uint64_t peers_next_deadline(const struct broker *b)
{
	uint64_t next = 0;

	if (!b->peers)
		return 0;
	next = b->peers->relisten_at;
	for (const struct link *l = b->peers->links; l; l = l->next) {
		uint64_t t = l->state == LINK_CONNECTING || l->state == LINK_AUTH
				     ? l->since + HANDSHAKE_MS
			     : l->importer && l->state == LINK_DOWN ? l->retry_at
								    : 0;

		if (t && (!next || t < next))
			next = t;
	}
	return next;
}
#endif
