/* SPDX-License-Identifier: MIT */
/*
 * Control connections: HELLO first, then requests. Everything a client sends
 * is checked before use (sizes, reserved fields, flags, names); a malformed
 * message gets an error reply and nothing else changes; a stream that can no
 * longer be framed ends the session. Sockets are non-blocking both ways: a
 * client that sends half a message or stops reading cannot stall the loop.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker.h"

bool broker_is_admin(const struct ucred *cred)
{
	return cred->uid == 0 || cred->uid == getuid();
}

static void session_end(struct broker *b, struct session *s, const char *why)
{
	blog(LOG_DEBUG, "session %llu (pid %d) ends: %s", (unsigned long long)s->id,
	     (int)s->cred.pid, why);
	for (struct session **ss = &b->sessions; *ss; ss = &(*ss)->next)
		if (*ss == s) {
			*ss = s->next;
			break;
		}
	pm_reader_reset(&s->rd);
	engine_session_gone(b, s);
	alloc_free_all(b, s);
	uffd_put(b, s->uffd);
	s->uffd = NULL;
	loop_retire(b, &s->w);
	if (s->refused) {
		b->refused_sessions--;
	} else {
		b->stats.sessions--;
		uid_uncharge(b, s->cred.uid, UID_SESSIONS, 1);
	}
	/* An fd is free again: if accept() had run out, try now. */
	session_accept_resume(b);
}

int session_reply(struct session *s, uint16_t opcode, uint64_t request_id, const void *body,
		  size_t len, const int *fds, unsigned nfds)
{
	struct pm_hdr hdr = { .version = s->version ? s->version : PM_PROTO_VERSION_MAX,
			      .opcode = opcode, .flags = PM_HDR_REPLY, .request_id = request_id };

	return pm_msg_send(s->w.fd, &hdr, body, len, fds, nfds);
}

struct session *session_by_id(struct broker *b, uint64_t id)
{
	for (struct session *s = b->sessions; s; s = s->next)
		if (s->id == id)
			return s;
	return NULL;
}

/* Sends a reply; a client that does not read its replies loses its session. */
static int reply(struct session *s, const struct pm_msg *req, const void *body, size_t len,
		 const int *fds, unsigned nfds)
{
	return session_reply(s, req->hdr.opcode, req->hdr.request_id, body, len, fds, nfds);
}

/* Malformed requests (not refusals such as -ENOENT or -EACCES) are counted. */
static int reply_status(struct session *s, const struct pm_msg *req, int status)
{
	struct pm_reply r = { .status = status };

	if (status == -EPROTO || status == -EINVAL || status == -EOPNOTSUPP ||
	    status == -EPROTONOSUPPORT)
		s->b->stats.protocol_errors++;
	return reply(s, req, &r, sizeof(r), NULL, 0);
}

static int op_hello(struct broker *b, struct session *s, const struct pm_msg *m)
{
	const struct pm_hello *h = (const void *)m->payload;
	struct pm_hello_reply rep = { .max_payload = PM_MAX_PAYLOAD, .session_id = s->id };
	char name[sizeof(h->client)];
	uint16_t v;

	if (m->hdr.length != sizeof(*h) || h->flags || h->min_version > h->max_version)
		return reply_status(s, m, -EINVAL);
	if (pm_name_get(h->client, sizeof(h->client), true, name) < 0)
		return reply_status(s, m, -EINVAL);
	v = h->max_version < PM_PROTO_VERSION_MAX ? h->max_version : PM_PROTO_VERSION_MAX;
	if (v < h->min_version || v < PM_PROTO_VERSION_MIN) {
		blog(LOG_WARN, "pid %d speaks protocol %u..%u, we speak %u..%u", (int)s->cred.pid,
		     h->min_version, h->max_version, PM_PROTO_VERSION_MIN, PM_PROTO_VERSION_MAX);
		return reply_status(s, m, -EPROTONOSUPPORT);
	}
	s->version = v;
	snprintf(s->client, sizeof(s->client), "%s", name);
	rep.version = v;
	return reply(s, m, &rep, sizeof(rep), NULL, 0);
}

static int op_open(struct broker *b, struct session *s, const struct pm_msg *m)
{
	const struct pm_open *o = (const void *)m->payload;
	struct pm_open_reply rep = { 0 };
	char device[PM_NAME_MAX], region[PM_REGION_MAX];
	struct pool *p;
	int fd, r;

	if (m->hdr.length != sizeof(*o) || o->flags || o->reserved ||
	    pm_name_get(o->device, sizeof(o->device), false, device) < 0 ||
	    pm_name_get(o->region, sizeof(o->region), true, region) < 0)
		return reply_status(s, m, -EINVAL);
	p = pool_find(b, device, region);
	if (!p)
		return reply_status(s, m, -ENOENT);
	if (p->gone)
		registry_check_returned(b);
	/* Revoked by an administrator (-ECANCELED, as its holders were told)
	 * or gone with its device (-ENODEV): not the same as no such pool. */
	if (p->gone)
		return reply_status(s, m, p->revoked_by ? p->revoked_by : -ENODEV);
	r = policy_check(b, p, &s->cred);
	if (r < 0) {
		b->stats.denied++;
		blog(LOG_WARN, "denied uid %u (pid %d) access to %s%s%s", s->cred.uid,
		     (int)s->cred.pid, device, region[0] ? "/" : "", region);
		return reply_status(s, m, r);
	}
	fd = registry_open(b, p, s->id, s->cred.uid, &rep.info);
	if (fd < 0)
		return reply_status(s, m, fd);
	rep.r.status = 0;
	r = reply(s, m, &rep, sizeof(rep), &fd, 1);
	/* The client's end now lives in flight or in the client; ours goes. */
	close(fd);
	return r;
}

static int op_list(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	struct pm_list_reply *rep = (void *)buf;
	struct pm_info *info = (void *)(rep + 1);
	uint32_t n = 0, max = (sizeof(buf) - sizeof(*rep)) / sizeof(*info);

	if (m->hdr.length)
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	for (const struct pagemap *pm = b->pagemaps; pm; pm = pm->next) {
		if (n == max) {
			rep->flags |= PM_LIST_TRUNCATED;
			break;
		}
		registry_info(pm, &info[n++]);
	}
	rep->count = n;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(*info), NULL, 0);
}

/* Whether s may see t's session and allocations: its own uid's, or all for
 * an administrator. */
static bool may_see(const struct session *s, const struct session *t)
{
	return broker_is_admin(&s->cred) || s->cred.uid == t->cred.uid;
}

static int op_clients(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	struct pm_list_reply *rep = (void *)buf;
	struct pm_client_info *ci = (void *)(rep + 1);
	uint32_t n = 0, max = (sizeof(buf) - sizeof(*rep)) / sizeof(*ci);

	if (m->hdr.length)
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	for (const struct session *t = b->sessions; t; t = t->next) {
		/* Who else uses the broker (pids, program names) is not every
		 * user's business: the administrator sees all, others their own. */
		if (!may_see(s, t) || t->refused)
			continue;
		if (n == max) {
			rep->flags |= PM_LIST_TRUNCATED;
			break;
		}
		memset(&ci[n], 0, sizeof(ci[n]));
		ci[n].session_id = t->id;
		ci[n].pid = t->cred.pid;
		ci[n].uid = t->cred.uid;
		ci[n].gid = t->cred.gid;
		ci[n].handles = registry_handles_of_session(b, t->id);
		pm_name_put(ci[n].client, sizeof(ci[n].client), t->client);
		n++;
	}
	rep->count = n;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(*ci), NULL, 0);
}

/* REVOKE and RESTORE: an administrator's, by device name. */
static int op_revoke(struct broker *b, struct session *s, const struct pm_msg *m)
{
	const struct pm_revoke *rv = (const void *)m->payload;
	bool restore = m->hdr.opcode == PM_OP_RESTORE;
	char device[PM_NAME_MAX];
	const char *canon;
	struct pool *p;
	int r;

	if (m->hdr.length != sizeof(*rv) || (rv->flags & ~(restore ? 0 : PM_REVOKE_FORCE)) ||
	    rv->reserved || pm_name_get(rv->device, sizeof(rv->device), false, device) < 0)
		return reply_status(s, m, -EINVAL);
	if (!broker_is_admin(&s->cred)) {
		blog(LOG_WARN, "denied uid %u (pid %d) %s %s: not an administrator",
		     s->cred.uid, (int)s->cred.pid, restore ? "restoring" : "revoking", device);
		return reply_status(s, m, -EPERM);
	}
	canon = pool_canonical_device(b, device);
	if (restore) {
		r = registry_restore_device(b, canon);
		if (r > 0)
			blog(LOG_INFO, "%s restored by uid %u: served again", canon, s->cred.uid);
		return reply_status(s, m, r);
	}
	/* Host memory holds every client's pages: disabling it is asked twice. */
	p = pool_find(b, canon, NULL);
	if (p && p->ops->kind == PM_KIND_HOST_NUMA && !(rv->flags & PM_REVOKE_FORCE))
		return reply_status(s, m, -EBUSY);
	r = registry_revoke_device(b, canon, -ECANCELED);
	if (r >= 0)
		blog(LOG_INFO, "%s revoked by uid %u: disabled until restored", canon, s->cred.uid);
	return reply_status(s, m, r);
}

static int op_pools(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const struct pm_pools_req *q = (const void *)m->payload;
	struct pm_list_reply *rep = (void *)buf;
	unsigned max = (sizeof(buf) - sizeof(*rep)) / sizeof(struct pm_pools_entry), n = 0;
	struct pm_pools_entry *out = (struct pm_pools_entry *)(rep + 1);
	int from;

	if (m->hdr.length != sizeof(*q) || q->reserved)
		return reply_status(s, m, -EINVAL);
	registry_check_returned(b);
	from = pool_caller_node(b, q->cpu);
	memset(rep, 0, sizeof(*rep));
	for (const struct pool *p = b->pools; p; p = p->next) {
		/* What the caller may not open it does not see either. */
		if (policy_check(b, p, &s->cred) < 0)
			continue;
		if (n == max) {
			rep->flags |= PM_LIST_TRUNCATED;
			break;
		}
		pool_describe(b, p, from, &out[n++]);
	}
	rep->count = n;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(struct pm_pools_entry), NULL, 0);
}

static int op_stats(struct broker *b, struct session *s, const struct pm_msg *m)
{
	struct pm_stats_reply rep = b->stats;

	if (m->hdr.length)
		return reply_status(s, m, -EINVAL);
	rep.r.status = 0;
	rep.r.reserved = 0;
	return reply(s, m, &rep, sizeof(rep), NULL, 0);
}

static int op_alloc(struct broker *b, struct session *s, struct pm_msg *m)
{
	const struct pm_alloc *a = (const void *)m->payload;
	struct pm_alloc_reply rep = { 0 };
	int memfd, r;

	if (m->nfds != 1)
		return reply_status(s, m, -EPROTO);
	if (m->hdr.length != sizeof(*a))
		return reply_status(s, m, -EINVAL);
	memfd = pm_msg_take_fd(m, 0);
	r = alloc_register(b, s, a, memfd, &rep);
	if (r < 0) {
		close(memfd);
		return reply_status(s, m, r);
	}
	return reply(s, m, &rep, sizeof(rep), NULL, 0);
}

static int op_free(struct broker *b, struct session *s, const struct pm_msg *m)
{
	const struct pm_free *f = (const void *)m->payload;

	if (m->hdr.length != sizeof(*f))
		return reply_status(s, m, -EINVAL);
	return reply_status(s, m, alloc_free(b, s, f->alloc_id));
}

static int op_place(struct broker *b, struct session *s, struct pm_msg *m)
{
	const struct pm_place *pl = (const void *)m->payload;

	if (m->nfds != 1)
		return reply_status(s, m, -EPROTO);
	if (m->hdr.length != sizeof(*pl))
		return reply_status(s, m, -EINVAL);
	/* The fd is only looked at; dispatch's caller closes it. */
	return reply_status(s, m, alloc_place(b, s, pl, m->fds[0]));
}

static int op_query_range(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint64_t ids[PM_QUERY_MAX + 1];
	const struct pm_query_range *q = (const void *)m->payload;
	struct pm_reply *rep = (struct pm_reply *)ids;
	int n;

	if (m->hdr.length != sizeof(*q))
		return reply_status(s, m, -EINVAL);
	n = alloc_query(b, s, q, ids + 1);
	if (n < 0)
		return reply_status(s, m, n);
	/* struct pm_reply is 8 bytes: it takes ids[0]'s place. */
	rep->status = n;
	rep->reserved = 0;
	return reply(s, m, ids, sizeof(*rep) + (size_t)n * sizeof(uint64_t), NULL, 0);
}

static int op_migrate(struct broker *b, struct session *s, struct pm_msg *m)
{
	int r = engine_migrate(b, s, m);

	/* 0: the engine answers, now (async) or when the move is over. */
	return r < 0 ? reply_status(s, m, r) : 0;
}

static int op_file_io(struct broker *b, struct session *s, struct pm_msg *m)
{
	int r = engine_file_io(b, s, m);

	/* 0: the engine answers when the transfer is over. */
	return r < 0 ? reply_status(s, m, r) : 0;
}

static int op_advise(struct broker *b, struct session *s, struct pm_msg *m)
{
	const struct pm_advise *a = (const void *)m->payload;

	if (m->hdr.length != sizeof(*a) || m->nfds > 1)
		return reply_status(s, m, -EINVAL);
	return reply_status(s, m, advise_apply(b, s, a, m->nfds ? m->fds[0] : -1));
}

static int op_ranges(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const struct pm_query_range *q = (const void *)m->payload;
	struct pm_list_reply *rep = (void *)buf;
	const struct allocation *al;
	unsigned n, max = (sizeof(buf) - sizeof(*rep)) / sizeof(struct pm_run);
	bool more;

	(void)b;
	if (m->hdr.length != sizeof(*q))
		return reply_status(s, m, -EINVAL);
	al = alloc_find(s, q->alloc_id);
	if (!al)
		return reply_status(s, m, -ENOENT);
	if (!alloc_in_range(al, q->first, q->count))
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	n = runs_describe(al, q->first, q->count, (struct pm_run *)(rep + 1), max, &more);
	rep->count = n;
	rep->flags = more ? PM_LIST_TRUNCATED : 0;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(struct pm_run), NULL, 0);
}

static int op_allocs(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const struct pm_allocs *q = (const void *)m->payload;
	struct pm_list_reply *rep = (void *)buf;
	size_t used = sizeof(*rep);
	uint32_t count = 0;

	if (m->hdr.length != sizeof(*q))
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	for (const struct session *t = b->sessions; t; t = t->next) {
		if ((q->session_id && t->id != q->session_id) || !may_see(s, t))
			continue;
		for (const struct allocation *al = t->allocs; al; al = al->next) {
			struct pm_alloc_info *ai = (void *)(buf + used);
			unsigned room;
			bool more;

			if (sizeof(buf) - used < sizeof(*ai) + sizeof(struct pm_run)) {
				rep->flags |= PM_LIST_TRUNCATED;
				goto out;
			}
			room = (unsigned)((sizeof(buf) - used - sizeof(*ai)) / sizeof(struct pm_run));
			memset(ai, 0, sizeof(*ai));
			ai->session_id = t->id;
			ai->alloc_id = al->id;
			ai->size = al->size;
			ai->chunk_size = al->chunk_size;
			ai->pid = al->pid;
			for (uint64_t i = 0; i < al->nchunks; i++)
				ai->in_flight += al->chunks[i].busy;
			ai->nruns = runs_describe(al, 0, al->nchunks, (struct pm_run *)(ai + 1), room,
						  &more);
			used += sizeof(*ai) + ai->nruns * sizeof(struct pm_run);
			count++;
			if (more) {
				rep->flags |= PM_LIST_TRUNCATED;
				goto out;
			}
		}
	}
out:
	if (q->session_id && !count && !session_by_id(b, q->session_id))
		return reply_status(s, m, -ENOENT);
	rep->count = count;
	rep->r.status = (int32_t)count;
	return reply(s, m, buf, used, NULL, 0);
}

static int op_peers(struct broker *b, struct session *s, const struct pm_msg *m)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	struct pm_list_reply *rep = (void *)buf;
	unsigned max = (sizeof(buf) - sizeof(*rep)) / sizeof(struct pm_peer_info), n;

	if (m->hdr.length)
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	n = peers_describe(b, (struct pm_peer_info *)(rep + 1), max);
	rep->count = n;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(struct pm_peer_info), NULL, 0);
}

static int op_uffd(struct broker *b, struct session *s, struct pm_msg *m)
{
	struct pm_uffd u;
	int fd;

	if (m->nfds != 1)
		return reply_status(s, m, -EPROTO);
	if (m->hdr.length != sizeof(u))
		return reply_status(s, m, -EINVAL);
	memcpy(&u, m->payload, sizeof(u));
	fd = pm_msg_take_fd(m, 0);
	return reply_status(s, m, alloc_set_uffd(b, s, &u, fd));
}

static int op_engines(struct broker *b, struct session *s, const struct pm_msg *m)
{
	uint8_t buf[sizeof(struct pm_list_reply) + XFER_ENGINES * sizeof(struct pm_engine_info)];
	struct pm_list_reply *rep = (void *)buf;
	unsigned n;

	if (m->hdr.length)
		return reply_status(s, m, -EINVAL);
	memset(rep, 0, sizeof(*rep));
	n = xfer_describe(b, (struct pm_engine_info *)(rep + 1), XFER_ENGINES);
	rep->count = n;
	rep->r.status = (int32_t)n;
	return reply(s, m, buf, sizeof(*rep) + n * sizeof(struct pm_engine_info), NULL, 0);
}

/* The opcodes that may carry fds on the control connection, and how many. */
static unsigned max_fds(uint16_t opcode)
{
	switch (opcode) {
	case PM_OP_ALLOC:
	case PM_OP_PLACE:
	case PM_OP_ADVISE:
	case PM_OP_UFFD:
	case PM_OP_FILE_IO:
		return 1;
	case PM_OP_MIGRATE:
		return PM_MAX_FDS;
	default:
		return 0;
	}
}

static int dispatch(struct broker *b, struct session *s, struct pm_msg *m)
{
	int r;

	if (m->nfds > max_fds(m->hdr.opcode) || (m->hdr.flags & PM_HDR_KNOWN)) {
		pm_msg_close_fds(m);
		return reply_status(s, m, -EPROTO);
	}
	if (s->refused) {
		/* Over a limit: whatever it asks is told so, and the session ends. */
		reply_status(s, m, s->refused);
		return s->refused; /* negative: the caller ends the session */
	}
	if (m->hdr.opcode != PM_OP_HELLO && !s->version)
		return reply_status(s, m, -EPROTO); /* HELLO first */
	if (m->hdr.opcode != PM_OP_HELLO && m->hdr.version != s->version)
		return reply_status(s, m, -EPROTO);
	switch (m->hdr.opcode) {
	case PM_OP_HELLO:
		r = op_hello(b, s, m);
		break;
	case PM_OP_NOP:
		r = reply_status(s, m, m->hdr.length ? -EINVAL : 0);
		break;
	case PM_OP_OPEN:
		r = op_open(b, s, m);
		break;
	case PM_OP_LIST:
		r = op_list(b, s, m);
		break;
	case PM_OP_CLIENTS:
		r = op_clients(b, s, m);
		break;
	case PM_OP_REVOKE:
	case PM_OP_RESTORE:
		r = op_revoke(b, s, m);
		break;
	case PM_OP_POOLS:
		r = op_pools(b, s, m);
		break;
	case PM_OP_STATS:
		r = op_stats(b, s, m);
		break;
	case PM_OP_ALLOC:
		r = op_alloc(b, s, m);
		break;
	case PM_OP_FREE:
		r = op_free(b, s, m);
		break;
	case PM_OP_PLACE:
		r = op_place(b, s, m);
		break;
	case PM_OP_QUERY_RANGE:
		r = op_query_range(b, s, m);
		break;
	case PM_OP_MIGRATE:
		r = op_migrate(b, s, m);
		break;
	case PM_OP_ADVISE:
		r = op_advise(b, s, m);
		break;
	case PM_OP_RANGES:
		r = op_ranges(b, s, m);
		break;
	case PM_OP_ALLOCS:
		r = op_allocs(b, s, m);
		break;
	case PM_OP_PEERS:
		r = op_peers(b, s, m);
		break;
	case PM_OP_ENGINES:
		r = op_engines(b, s, m);
		break;
	case PM_OP_UFFD:
		r = op_uffd(b, s, m);
		break;
	case PM_OP_FILE_IO:
		r = op_file_io(b, s, m);
		break;
	default:
		r = reply_status(s, m, -EOPNOTSUPP);
		break;
	}
	return r;
}

static void session_event(struct broker *b, struct watch *w, uint32_t events)
{
	struct session *s = (struct session *)w;
	static struct pm_msg m;
	int r;

	/* A few messages per wake-up: one busy client cannot starve the rest. */
	for (int i = 0; i < 16; i++) {
		r = pm_reader_read(s->w.fd, &s->rd, &m);
		if (r == 0)
			return;
		if (r < 0) {
			if (r == -EPROTO) {
				b->stats.protocol_errors++;
				blog(LOG_WARN, "pid %d sent a malformed stream: session closed",
				     (int)s->cred.pid);
			}
			session_end(b, s, strerror(-r));
			return;
		}
		r = dispatch(b, s, &m);
		pm_msg_close_fds(&m);
		if (r < 0) {
			session_end(b, s, s->refused ? "over a session limit" : "cannot send a reply");
			return;
		}
	}
	(void)events;
}

/* Connections told "over the limit" at once: more than this are closed
 * unanswered, so refusing cannot itself use up the broker's fds. */
#define REFUSED_MAX 32

void session_accept_resume(struct broker *b)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &b->listen };

	if (!b->accept_resume_at)
		return;
	b->accept_resume_at = 0;
	epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->listen.fd, &ev);
}

/*
 * accept() failed for want of fds or memory. The pending connection keeps
 * the listening socket readable, and a level-triggered loop would spin on
 * it: stop listening until a session ends or a tick has passed. Clients
 * wait in the backlog meanwhile.
 */
static void accept_pause(struct broker *b, int err)
{
	struct epoll_event ev = { .events = 0, .data.ptr = &b->listen };
	static uint64_t said;

	/* Retried every tick while it lasts: said once every ten seconds. */
	if (!said || now_ms() - said >= 10000) {
		blog(LOG_WARN, "cannot accept connections: %s (%u sessions): paused until fds free",
		     strerror(err), (unsigned)b->stats.sessions);
		said = now_ms();
	}
	epoll_ctl(b->epfd, EPOLL_CTL_MOD, b->listen.fd, &ev);
	b->accept_resume_at = now_ms() + 100;
	loop_arm_timer(b);
}

/* 0, or why a new session of this uid is refused (-EMFILE, -EUSERS). */
static int session_admit(struct broker *b, const struct ucred *cred)
{
	if (b->conf.max_sessions && b->stats.sessions >= b->conf.max_sessions) {
		blog(LOG_WARN, "uid %u (pid %d): max_sessions (%u) reached: connection refused",
		     cred->uid, (int)cred->pid, b->conf.max_sessions);
		return -EUSERS;
	}
	return uid_charge(b, cred->uid, UID_SESSIONS, 1);
}

void session_accept(struct broker *b, struct watch *w, uint32_t events)
{
	struct session *s;
	socklen_t len;
	int fd;

	(void)events;
	fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			accept_pause(b, errno);
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return;
	}
	len = sizeof(s->cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &s->cred, &len) < 0) {
		close(fd);
		free(s);
		return;
	}
	s->refused = session_admit(b, &s->cred);
	if (s->refused && b->refused_sessions >= REFUSED_MAX) {
		close(fd);
		free(s);
		return;
	}
	s->w.fd = fd;
	s->w.cb = session_event;
	s->b = b;
	s->id = ++b->next_session_id;
	pm_reader_init(&s->rd);
	if (loop_add(b, &s->w, EPOLLIN | EPOLLRDHUP) < 0) {
		if (!s->refused)
			uid_uncharge(b, s->cred.uid, UID_SESSIONS, 1);
		close(fd);
		free(s);
		return;
	}
	s->next = b->sessions;
	b->sessions = s;
	if (s->refused)
		b->refused_sessions++;
	else
		b->stats.sessions++;
	blog(LOG_DEBUG, "session %llu: pid %d uid %u%s", (unsigned long long)s->id,
	     (int)s->cred.pid, s->cred.uid, s->refused ? " (refused)" : "");
}

void session_free_all(struct broker *b)
{
	while (b->sessions)
		session_end(b, b->sessions, "broker exits");
}
