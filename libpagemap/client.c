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

/* Reads replies until the one for id arrives; the control connection carries
 * no events, so anything else is a broken broker. */
static int read_reply(struct pm_client *c, uint64_t id, uint16_t opcode, struct pm_msg *m)
{
	int r = pm_msg_recv(c->sock, m);

	if (r < 0)
		return r;
	if (!(m->hdr.flags & PM_HDR_REPLY) || m->hdr.request_id != id ||
	    m->hdr.opcode != opcode || m->hdr.length < sizeof(struct pm_reply)) {
		pm_msg_close_fds(m);
		return -EPROTO;
	}
	return 0;
}

int pm_client_call(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		   void *reply, size_t cap, size_t *len, int *fd)
{
	return pm_client_call_fds(c, opcode, req, reqlen, NULL, 0, reply, cap, len, fd);
}

int pm_client_call_fds(struct pm_client *c, uint16_t opcode, const void *req, size_t reqlen,
		       const int *fds, unsigned nfds, void *reply, size_t cap, size_t *len, int *fd)
{
	struct pm_msg *m = malloc(sizeof(*m));
	struct pm_hdr hdr = { .version = c->version ? c->version : PM_PROTO_VERSION_MAX,
			      .opcode = opcode };
	const struct pm_reply *rep;
	size_t body;
	int r;

	if (!m)
		return -ENOMEM;
	pthread_mutex_lock(&c->lock);
	hdr.request_id = ++c->next_id;
	r = pm_msg_send(c->sock, &hdr, req, reqlen, fds, nfds);
	if (r == 0)
		r = read_reply(c, hdr.request_id, opcode, m);
	pthread_mutex_unlock(&c->lock);
	if (r < 0)
		goto out;
	rep = (const void *)m->payload;
	r = rep->status;
	body = m->hdr.length - sizeof(*rep);
	if (r >= 0 && reply) {
		if (body > cap)
			body = cap;
		memcpy(reply, m->payload + sizeof(*rep), body);
	}
	if (len)
		*len = r >= 0 ? body : 0;
	if (fd)
		*fd = r >= 0 ? pm_msg_take_fd(m, 0) : -1;
	pm_msg_close_fds(m);
out:
	free(m);
	return r;
}
