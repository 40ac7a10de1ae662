/* SPDX-License-Identifier: MIT */
/* Connecting, HELLO, and request/reply on the control connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

int pm_client_socket_path(const char *given, char *buf, size_t len)
{
	const char *env = getenv("PAGEMAP_SOCKET"), *rt = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (!given && env && *env)
		given = env;
	if (given) {
		if (strlen(given) >= len)
			return -ENAMETOOLONG;
		snprintf(buf, len, "%s", given);
		return 0;
	}
	/* A user's own broker first, then the system's. */
	if (rt && *rt) {
		snprintf(buf, len, "%s/pagemap/broker.sock", rt);
		if (stat(buf, &st) == 0)
			return 0;
	}
	snprintf(buf, len, "/run/pagemap/broker.sock");
	return 0;
}

void pm_info_from_wire(const struct pm_info *w, struct pagemap_info *out)
{
	memset(out, 0, sizeof(*out));
	out->id = w->id;
	memcpy(out->device, w->device, sizeof(out->device));
	out->device[sizeof(out->device) - 1] = '\0';
	memcpy(out->region, w->region, sizeof(out->region));
	out->region[sizeof(out->region) - 1] = '\0';
	out->kind = w->kind;
	out->state = w->state;
	out->numa_node = w->numa_node;
	out->refs = w->refs;
	out->capacity = w->capacity;
	out->used = w->used;
	out->addr_bits = w->addr_bits;
}

/* A caller waiting for the reply to request id. */
struct pm_reply_slot {
	uint64_t id;
	struct pm_msg *m; /* set when the reply arrived */
	struct pm_reply_slot *next;
};

/* Hands a message to the slot waiting for it. Caller holds c->lock. */
static void deliver(struct pm_client *c, struct pm_msg *m)
{
	for (struct pm_reply_slot *w = c->waiting; w; w = w->next)
		if (!w->m && (m->hdr.flags & PM_HDR_REPLY) && w->id == m->hdr.request_id) {
			w->m = m;
			return;
		}
	/* The control connection carries no events: a broken broker. */
	pm_msg_close_fds(m);
	free(m);
	c->dead = -EPROTO;
}

/* Waits for slot's reply, reading for everyone while nobody else does.
 * Called and returns with c->lock held. */
static int wait_reply(struct pm_client *c, struct pm_reply_slot *slot)
{
	while (!slot->m && !c->dead) {
		struct pm_msg *m;
		uint64_t gen;
		int r, sock;

		if (c->reading) {
			pthread_cond_wait(&c->replied, &c->lock);
			continue;
		}
		m = malloc(sizeof(*m));
		if (!m)
			return -ENOMEM;
		c->reading = true;
		sock = c->sock;
		gen = c->gen;
		pthread_mutex_unlock(&c->lock);
		r = pm_msg_recv(sock, m);
		pthread_mutex_lock(&c->lock);
		c->reading = false;
		if (r < 0) {
			free(m);
			/* The end of a connection already replaced says nothing
			 * about the new one. */
			if (gen == c->gen)
				c->dead = r;
		} else if (gen == c->gen) {
			deliver(c, m);
		} else {
			pm_msg_close_fds(m);
			free(m);
		}
		pthread_cond_broadcast(&c->replied);
	}
	return slot->m ? 0 : c->dead;
}

int pm_client_call(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		   void *reply, size_t cap, size_t *len, int *fd)
{
	return pm_client_call_fds(c, opcode, req, reqlen, NULL, 0, reply, cap, len, fd);
}

static int call(struct pm_client *c, bool ordered, uint64_t gen, uint16_t opcode,
		const void *req, size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
		size_t *len, int *fd);

int pm_client_call_fds(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		       const int *fds, unsigned nfds, void *reply, size_t cap, size_t *len, int *fd)
{
	return call(c, false, 0, opcode, req, reqlen, fds, nfds, reply, cap, len, fd);
}

int pm_client_call_gen(struct pm_client *c, uint64_t gen, uint16_t opcode, const void *req,
		       size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
		       size_t *len, int *fd)
{
	return call(c, false, gen, opcode, req, reqlen, fds, nfds, reply, cap, len, fd);
}

int pm_client_call_ordered(struct pm_client *c, uint64_t gen, uint16_t opcode, const void *req,
			   size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
			   size_t *len, int *fd)
{
	return call(c, true, gen, opcode, req, reqlen, fds, nfds, reply, cap, len, fd);
}

static int call(struct pm_client *c, bool ordered, uint64_t gen, uint16_t opcode,
		const void *req, size_t reqlen, const int *fds, unsigned nfds, void *reply, size_t cap,
		size_t *len, int *fd)
{
	struct pm_hdr hdr = { .version = c->version ? c->version : PM_PROTO_VERSION_MAX,
			      .opcode = opcode };
	struct pm_reply_slot slot = { 0 };
	const struct pm_reply *rep;
	struct pm_msg *m;
	size_t body;
	int r;

	for (int tries = 0;; tries++) {
		/* The broker went away since the last call: perhaps it is back. */
		if (c->reconnect && pm_client_dead(c))
			c->reconnect(c);
		pthread_mutex_lock(&c->lock);
		r = c->dead;
		/* Ids from before a reconnect name nothing, or someone else. */
		if (!r && gen && gen != c->gen)
			r = -ESTALE;
		if (!r) {
			hdr.request_id = slot.id = ++c->next_id;
			hdr.version = c->version ? c->version : PM_PROTO_VERSION_MAX;
			r = pm_msg_send(c->sock, &hdr, req, reqlen, fds, nfds);
			/* The broker went away: so does every later call. */
			if (r == -EPIPE || r == -ECONNRESET || r == -ENOTCONN)
				c->dead = r;
		}
		/* Not sent, so safe to send again once: to a broker restarted
		 * since the last call. A request that was sent is never
		 * repeated (the broker may have acted on it). */
		if (!c->dead || tries || !c->reconnect || r == -ESTALE)
			break;
		pthread_mutex_unlock(&c->lock);
	}
	if (ordered)
		pthread_mutex_unlock(&c->order);
	if (r < 0) {
		pthread_mutex_unlock(&c->lock);
		return r;
	}
	slot.next = c->waiting;
	c->waiting = &slot;
	r = wait_reply(c, &slot);
	for (struct pm_reply_slot **pp = &c->waiting; *pp; pp = &(*pp)->next)
		if (*pp == &slot) {
			*pp = slot.next;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	m = slot.m;
	if (r < 0 || !m) {
		if (m) {
			pm_msg_close_fds(m);
			free(m);
		}
		return r < 0 ? r : -EPROTO;
	}
	if (m->hdr.opcode != opcode || m->hdr.length < sizeof(struct pm_reply)) {
		r = -EPROTO;
		goto out;
	}
	/* Copied outside the lock: reply may be managed memory that faults. */
	rep = (const void *)m->payload;
	r = rep->status;
	body = m->hdr.length - sizeof(*rep);
	/* Error replies may carry a body too (how far a migration got). */
	if (body > cap)
		body = cap;
	if (reply)
		memcpy(reply, m->payload + sizeof(*rep), body);
	if (len)
		*len = reply ? body : 0;
	if (fd)
		*fd = r >= 0 ? pm_msg_take_fd(m, 0) : -1;
out:
	pm_msg_close_fds(m);
	free(m);
	return r;
}

bool pm_client_dead(struct pm_client *c)
{
	bool dead;

	pthread_mutex_lock(&c->lock);
	dead = c->dead != 0;
	pthread_mutex_unlock(&c->lock);
	return dead;
}
