/* SPDX-License-Identifier: MIT */
/*
 * Carrying on across a broker restart. The control connection breaking is
 * not the end of a client's managed memory: the memfds are the client's,
 * and a broker stopping gracefully copies every chunk home into them
 * before it exits. The next call (or the next fault) connects to the
 * broker at the same socket, says HELLO again and registers every
 * allocation again, under the same addresses.
 *
 * A chunk the new broker found still in a device pool (one whose memory
 * outlives a broker, with a state directory: recover.c) stays away, and a
 * touch fetches it as before. What cannot come back is said, never papered
 * over: a chunk that may have been away from host memory (PM_CHUNK_AWAY),
 * is in no pool now and whose pages are all holes in the memfd was lost
 * with the old broker: its range faults SIGBUS (pm_fault_lose). Pagemap fds
 * and advice were the old broker's: holders saw the revocation or the
 * hang-up and open again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

/* One request and its reply on a private socket (the new connection before
 * it is published): the reply's status, its body copied to out. */
static int call_on(int sock, uint16_t opcode, const void *req, size_t len, const int *fds,
		   unsigned nfds, void *out, size_t cap, uint64_t id)
{
	struct pm_hdr hdr = { .version = PM_PROTO_VERSION_MAX, .opcode = opcode,
			      .request_id = id };
	struct pm_msg *m = malloc(sizeof(*m));
	const struct pm_reply *rep;
	int r;

	if (!m)
		return -ENOMEM;
	r = pm_msg_send(sock, &hdr, req, len, fds, nfds);
	if (r == 0)
		r = pm_msg_recv(sock, m);
	if (r == 0) {
		rep = (const void *)m->payload;
		if (!(m->hdr.flags & PM_HDR_REPLY) || m->hdr.request_id != id ||
		    m->hdr.opcode != opcode || m->hdr.length < sizeof(*rep) + cap)
			r = m->hdr.length >= sizeof(*rep) && rep->status < 0 ? rep->status : -EPROTO;
		else if (rep->status < 0)
			r = rep->status;
		else
			memcpy(out, rep + 1, cap);
		pm_msg_close_fds(m);
	}
	free(m);
	return r;
}

/* Whether [off, off + len) of fd holds any data (not all holes). */
static bool has_data(int fd, off_t off, size_t len)
{
	off_t d = lseek(fd, off, SEEK_DATA);

	return d >= 0 && d < off + (off_t)len;
}

/*
 * Chunks that were away, once e is registered again: still in a device pool
 * (the new broker recovered them: a pool whose memory outlived the old
 * one), home (data in the memfd), or lost. c->lock held.
 */
static int settle_away(struct pm_client *c, int sock, struct pm_alloc_entry *e)
{
	uint64_t *where = malloc(PM_QUERY_MAX * sizeof(*where));

	if (!where)
		return -ENOMEM;
	for (size_t first = 0; first < e->nchunks; first += PM_QUERY_MAX) {
		size_t n = e->nchunks - first < PM_QUERY_MAX ? e->nchunks - first : PM_QUERY_MAX;
		struct pm_query_range q = { .alloc_id = e->id, .first = first, .count = n };
		int r = call_on(sock, PM_OP_QUERY_RANGE, &q, sizeof(q), NULL, 0, where,
				n * sizeof(where[0]), ++c->next_id);

		if (r < 0) {
			free(where);
			return r;
		}
		for (size_t k = 0; k < n; k++) {
			size_t i = first + k;

			e->state[i] &= (uint8_t)~PM_CHUNK_READ_MOSTLY; /* advice is gone */
			if (!(e->state[i] & PM_CHUNK_AWAY) || where[k])
				continue; /* home all along, or still away (a fault fetches it) */
			e->state[i] &= (uint8_t)~PM_CHUNK_AWAY;
			if (!has_data(e->memfd, (off_t)(i * e->chunk_size), e->chunk_size))
				pm_fault_lose(c, (uintptr_t)e->addr + i * e->chunk_size,
					      e->chunk_size);
		}
	}
	free(where);
	return 0;
}

int pm_client_reconnect(struct pm_client *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pm_hello h = { .min_version = PM_PROTO_VERSION_MIN,
			      .max_version = PM_PROTO_VERSION_MAX };
	struct pm_hello_reply hr;
	struct timeval timeout = { .tv_sec = 5 }, forever = { 0 };
	uint64_t id;
	int sock, old, r;

	if (!c->path[0] || strlen(c->path) >= sizeof(sa.sun_path))
		return -ENOTCONN;
	strcpy(sa.sun_path, c->path);
	pthread_mutex_lock(&c->lock);
	if (!c->dead) {
		pthread_mutex_unlock(&c->lock);
		return 0; /* another thread got there first */
	}
	/* c->lock is held throughout: a broker that does not accept (its
	 * backlog full) or accepts and never answers must not hold every
	 * thread of ours for long. */
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock >= 0) {
		setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
		setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
	}
	if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	/* Everything on the new socket before anyone else may use it: the
	 * allocation list and ids stay consistent for every other thread. */
	id = ++c->next_id;
	pm_name_put(h.client, sizeof(h.client), program_invocation_short_name);
	r = call_on(sock, PM_OP_HELLO, &h, sizeof(h), NULL, 0, &hr.version,
		    sizeof(hr) - sizeof(hr.r), id);
	if (r < 0)
		goto fail;
	for (struct pm_alloc_entry *e = c->allocs; e; e = e->next) {
		struct pm_alloc req = { .size = e->size, .chunk_size = e->chunk_size };
		struct pm_alloc_reply rep;

		r = call_on(sock, PM_OP_ALLOC, &req, sizeof(req), &e->memfd, 1, &rep.alloc_id,
			    sizeof(rep) - sizeof(rep.r), ++c->next_id);
		if (r < 0)
			goto fail;
		e->id = rep.alloc_id;
		e->uffd_told = false; /* a new broker: told again on next use */
		r = settle_away(c, sock, e);
		if (r < 0)
			goto fail;
		memset(e->pref_node, 0xff, e->nchunks * sizeof(e->pref_node[0])); /* -1: advice gone */
	}
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &forever, sizeof(forever));
	setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof(forever));
	old = c->sock;
	c->sock = sock;
	c->gen++;
	c->version = hr.version;
	c->session_id = hr.session_id;
	c->dead = 0;
	pthread_mutex_unlock(&c->lock);
	/* A reader still in recv() on it returns now; the number is not
	 * reused under it, since it holds the file until then. */
	shutdown(old, SHUT_RDWR);
	close(old);
	return 0;
fail:
	if (sock >= 0)
		close(sock);
	pthread_mutex_unlock(&c->lock);
	return r;
}
