/* SPDX-License-Identifier: MIT */
/* libpagemap's public functions (include/pagemap.h). */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#define PM_EXPORT __attribute__((visibility("default")))

static int hello(struct pm_client *c)
{
	struct pm_hello h = { .min_version = PM_PROTO_VERSION_MIN,
			      .max_version = PM_PROTO_VERSION_MAX };
	struct pm_hello_reply rep;
	size_t len;
	int r;

	pm_name_put(h.client, sizeof(h.client), program_invocation_short_name);
	r = pm_client_call(c, PM_OP_HELLO, &h, sizeof(h), &rep.version,
			   sizeof(rep) - sizeof(rep.r), &len, NULL);
	if (r < 0)
		return r;
	if (len != sizeof(rep) - sizeof(rep.r) || rep.version < PM_PROTO_VERSION_MIN ||
	    rep.version > PM_PROTO_VERSION_MAX)
		return -EPROTO;
	c->version = rep.version;
	c->session_id = rep.session_id;
	return 0;
}

PM_EXPORT int pm_connect(const char *socket_path, struct pm_client **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pm_client *c;
	int r;

	if (!out)
		return -EINVAL;
	r = pm_client_socket_path(socket_path, sa.sun_path, sizeof(sa.sun_path));
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->order, NULL);
	pthread_cond_init(&c->replied, NULL);
	c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		r = -errno;
		goto fail;
	}
	if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		goto fail;
	}
	snprintf(c->path, sizeof(c->path), "%s", sa.sun_path);
	c->gen = 1;
	c->reconnect = pm_client_reconnect;
	r = hello(c);
	if (r < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (c->sock >= 0)
		close(c->sock);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return r;
}

PM_EXPORT void pm_disconnect(struct pm_client *c)
{
	if (!c)
		return;
	pm_fault_stop(c);
	pm_alloc_release_all(c);
	close(c->sock);
	pthread_cond_destroy(&c->replied);
	pthread_mutex_destroy(&c->order);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

PM_EXPORT int pagemap_open(struct pm_client *c, const char *device, const char *region,
			   unsigned int flags)
{
	struct pm_open o = { .flags = flags };
	struct pm_info info;
	size_t len;
	int fd = -1, r;

	if (!c || !device || flags)
		return -EINVAL;
	if (pm_name_put(o.device, sizeof(o.device), device) < 0 || !device[0] ||
	    pm_name_put(o.region, sizeof(o.region), region) < 0)
		return -EINVAL;
	r = pm_client_call(c, PM_OP_OPEN, &o, sizeof(o), &info, sizeof(info), &len, &fd);
	if (r < 0)
		return r;
	if (fd < 0 || len != sizeof(info)) {
		if (fd >= 0)
			close(fd);
		return -EPROTO;
	}
	return fd;
}

/* A pagemap fd is one end of a seqpacket socketpair the broker made. */
static int check_pagemap_fd(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -EBADF;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
		return -EBADF;
	return 0;
}

/*
 * The request goes on the pagemap fd, which other processes may share; the
 * reply comes back on a private socket sent along with it, so nobody else
 * can read it.
 */
PM_EXPORT int pagemap_query(int pagemap_fd, struct pagemap_info *info)
{
	static const struct timeval reply_timeout = { .tv_sec = 1 };
	struct pm_query q = { 0 };
	struct pm_hdr hdr = { .version = PM_PROTO_VERSION_MAX, .opcode = PM_OP_QUERY,
			      .request_id = 1 };
	struct pm_msg *m;
	const struct pm_query_reply *rep;
	int sv[2], r;

	if (!info)
		return -EINVAL;
	r = check_pagemap_fd(pagemap_fd);
	if (r < 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	r = pm_msg_send(pagemap_fd, &hdr, &q, sizeof(q), &sv[1], 1);
	close(sv[1]);
	if (r < 0) {
		close(sv[0]);
		/* The broker closed its end: revoked, or the broker is gone. */
		return r == -EPIPE || r == -ECONNRESET || r == -ECONNREFUSED ? -ENODEV : r;
	}
	/* The broker answers in microseconds; a SEQPACKET socket whose peer
	 * stays silent is not a pagemap fd, however alike it looks. */
	setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &reply_timeout, sizeof(reply_timeout));
	m = malloc(sizeof(*m));
	r = m ? pm_msg_recv(sv[0], m) : -ENOMEM;
	close(sv[0]);
	if (r == -ECONNRESET)
		r = -ENODEV;
	else if (r == -EAGAIN || r == -EWOULDBLOCK)
		r = -EBADF;
	if (r < 0)
		goto out;
	rep = (const void *)m->payload;
	pm_msg_close_fds(m);
	if (!(m->hdr.flags & PM_HDR_REPLY) || m->hdr.opcode != PM_OP_QUERY ||
	    m->hdr.length < sizeof(rep->r)) {
		r = -EPROTO;
	} else if (rep->r.status < 0) {
		r = rep->r.status;
	} else if (m->hdr.length != sizeof(*rep)) {
		r = -EPROTO;
	} else {
		pm_info_from_wire(&rep->info, info);
		r = 0;
	}
out:
	free(m);
	return r;
}

PM_EXPORT int pagemap_read_event(int pagemap_fd, struct pagemap_event *ev)
{
	struct pm_msg *m;
	const struct pm_event_revoked *rv;
	int r;

	if (!ev)
		return -EINVAL;
	r = check_pagemap_fd(pagemap_fd);
	if (r < 0)
		return r;
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* MSG_DONTWAIT, not O_NONBLOCK: the fd's flags are shared with every holder. */
	r = pm_msg_recv_flags(pagemap_fd, m, MSG_DONTWAIT);
	if (r == -EAGAIN || r == -EWOULDBLOCK) {
		free(m);
		return 0;
	}
	if (r == -ECONNRESET) {
		r = -ENODEV;
		goto out;
	}
	if (r < 0)
		goto out;
	pm_msg_close_fds(m);
	rv = (const void *)m->payload;
	if (!(m->hdr.flags & PM_HDR_EVENT) || m->hdr.opcode != PM_EV_REVOKED ||
	    m->hdr.length != sizeof(*rv)) {
		r = -EPROTO;
		goto out;
	}
	memset(ev, 0, sizeof(*ev));
	ev->type = PAGEMAP_EVENT_REVOKED;
	ev->reason = rv->reason;
	ev->id = rv->id;
	r = 1;
out:
	free(m);
	return r;
}

PM_EXPORT int pm_ping(struct pm_client *c)
{
	if (!c)
		return -EINVAL;
	return pm_client_call(c, PM_OP_NOP, NULL, 0, NULL, 0, NULL, NULL);
}

PM_EXPORT int pm_list_pools(struct pm_client *c, struct pm_pool_info *out, size_t n)
{
	static const size_t head = sizeof(struct pm_list_reply) - sizeof(struct pm_reply);
	struct pm_pools_req q = { .cpu = sched_getcpu() };
	uint8_t *buf;
	uint32_t count;
	size_t len = 0;
	int r;

	if (!c || (n && !out))
		return -EINVAL;
	buf = malloc(PM_MAX_PAYLOAD);
	if (!buf)
		return -ENOMEM;
	r = pm_client_call(c, PM_OP_POOLS, &q, sizeof(q), buf, PM_MAX_PAYLOAD, &len, NULL);
	if (r >= 0) {
		memcpy(&count, buf, sizeof(count));
		if (len < head || count != (uint32_t)r ||
		    count > (PM_MAX_PAYLOAD - head) / sizeof(struct pm_pools_entry) ||
		    len != head + (size_t)count * sizeof(struct pm_pools_entry))
			r = -EPROTO;
	}
	/* Records come unaligned and untrusted: copied out, names terminated. */
	for (int i = 0; r >= 0 && (size_t)i < n && i < r; i++) {
		struct pm_pools_entry e;
		struct pm_pool_info *o = &out[i];

		memcpy(&e, buf + head + (size_t)i * sizeof(e), sizeof(e));
		memset(o, 0, sizeof(*o));
		memcpy(o->device, e.device, sizeof(o->device) - 1);
		memcpy(o->region, e.region, sizeof(o->region) - 1);
		memcpy(o->path, e.path, sizeof(o->path) - 1);
		o->kind = e.kind;
		o->numa = e.numa_node;
		o->capacity = e.capacity;
		o->free = e.free;
		o->state = e.state;
		o->pagemap_id = e.pagemap_id;
	}
	free(buf);
	return r;
}
