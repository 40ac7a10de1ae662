/* SPDX-License-Identifier: MIT */
/*
 * Pagemaps and their handles. A pagemap is one pool's live state; a handle
 * is one pagemap_open(): a SOCK_SEQPACKET socketpair whose client end is the
 * pagemap fd. The kernel tells us when the last copy of that end is closed,
 * in any process (the broker's end hangs up), so the fd is the reference
 * without any cooperation from the client. The last handle gone starts the
 * linger; a reopen revives; the deadline (or memory pressure) tears down.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"

void registry_info(const struct pagemap *pm, struct pm_info *info)
{
	const struct pool *p = pm->pool;

	memset(info, 0, sizeof(*info));
	info->id = pm->id;
	pm_name_put(info->device, sizeof(info->device), p->device);
	pm_name_put(info->region, sizeof(info->region), p->region);
	info->kind = p->ops->kind;
	info->state = pm->state;
	info->numa_node = p->numa;
	info->refs = pm->refs;
	info->capacity = p->capacity;
	info->used = p->used;
	info->addr_bits = p->addr_bits;
}

static void unlink_pagemap(struct broker *b, struct pagemap *pm)
{
	for (struct pagemap **pp = &b->pagemaps; *pp; pp = &(*pp)->next)
		if (*pp == pm) {
			*pp = pm->next;
			return;
		}
}

static void teardown(struct broker *b, struct pagemap *pm)
{
	struct pool *p = pm->pool;

	blog(LOG_INFO, "pagemap %llu (%s%s%s) torn down", (unsigned long long)pm->id, p->device,
	     p->region[0] ? "/" : "", p->region);
	if (p->ops->destroy)
		p->ops->destroy(p);
	p->pm = NULL;
	unlink_pagemap(b, pm);
	free(pm);
	b->stats.pagemaps--;
}

/* Nothing holds pm any more: no handle, no chunk. It lingers. */
static void maybe_linger(struct broker *b, struct pagemap *pm)
{
	if (pm->refs || pm->pins || pm->state != PM_STATE_ACTIVE)
		return;
	pm->state = PM_STATE_LINGERING;
	pm->linger_deadline = now_ms() + (uint64_t)b->conf.linger_ms;
	blog(LOG_DEBUG, "pagemap %llu lingers %d ms", (unsigned long long)pm->id, b->conf.linger_ms);
	if (b->conf.linger_ms == 0)
		registry_expire(b, false);
	else
		loop_arm_timer(b);
}

void registry_pin(struct broker *b, struct pagemap *pm)
{
	(void)b;
	pm->pins++;
	/* A lingering pagemap that gets data (or a copy in flight) lives on. */
	if (pm->state == PM_STATE_LINGERING) {
		pm->state = PM_STATE_ACTIVE;
		pm->linger_deadline = 0;
	}
}

void registry_unpin(struct broker *b, struct pagemap *pm)
{
	pm->pins--;
	maybe_linger(b, pm);
}

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

/*
 * A socket's identity: its cookie, which the kernel never hands out twice
 * (64 bits, Linux 4.12 for every socket family). A socket inode number is
 * 32 bits from a counter that wraps, so a client that makes sockets until
 * one gets a live handle's number would otherwise pass for its holder.
 * Kernels without SO_COOKIE fall back to the inode (0 here).
 */
static uint64_t socket_cookie(int fd)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) < 0 || len != sizeof(cookie))
		return 0;
	return cookie;
}

struct handle *registry_handle_of_fd(struct broker *b, int fd)
{
	struct stat st;
	uint64_t cookie;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return NULL;
	cookie = socket_cookie(fd);
	for (struct pagemap *pm = b->pagemaps; pm; pm = pm->next)
		for (struct handle *h = pm->handles; h; h = h->next)
			if (h->cino == st.st_ino && h->cdev == st.st_dev && h->cookie == cookie)
				return h;
	return NULL;
}

static void handle_close(struct broker *b, struct handle *h)
{
	struct pagemap *pm = h->pm;

	for (struct handle **hh = &pm->handles; *hh; hh = &(*hh)->next)
		if (*hh == h) {
			*hh = h->next;
			break;
		}
	loop_retire(b, &h->w);
	uid_uncharge(b, h->uid, UID_HANDLES, 1);
	pm->refs--;
	b->stats.handles--;
	maybe_linger(b, pm);
}

/* PM_OP_QUERY on a pagemap fd: the reply goes to the socket that came with it. */
static void handle_request(struct broker *b, struct handle *h, struct pm_msg *m)
{
	struct pm_query_reply rep = { 0 };
	struct pm_hdr hdr = { .version = m->hdr.version, .opcode = m->hdr.opcode,
			      .flags = PM_HDR_REPLY, .request_id = m->hdr.request_id };
	const struct pm_query *q = (const void *)m->payload;
	int reply_fd = pm_msg_take_fd(m, 0);
	struct stat st;

	pm_msg_close_fds(m);
	/* The reply goes where the client says, but only to a socket. */
	if (reply_fd >= 0 && (fstat(reply_fd, &st) < 0 || !S_ISSOCK(st.st_mode))) {
		close(reply_fd);
		reply_fd = -1;
	}
	if (reply_fd < 0 || m->hdr.opcode != PM_OP_QUERY || m->hdr.flags ||
	    m->hdr.length != sizeof(*q) || q->flags || q->reserved) {
		b->stats.protocol_errors++;
		rep.r.status = reply_fd < 0 ? -EPROTO : m->hdr.opcode != PM_OP_QUERY ? -EOPNOTSUPP
										     : -EINVAL;
	} else {
		registry_info(h->pm, &rep.info);
	}
	if (reply_fd >= 0) {
		/* The reply socket is the client's, its buffer possibly filled on
		 * purpose: never wait on it. A reply that does not fit is dropped. */
		if (pm_msg_send_flags(reply_fd, &hdr, &rep, sizeof(rep), NULL, 0, MSG_DONTWAIT) < 0)
			b->stats.protocol_errors++;
		close(reply_fd);
	}
}

static void handle_event(struct broker *b, struct watch *w, uint32_t events)
{
	struct handle *h = (struct handle *)w;

	/*
	 * Only a hang-up means the last copy of the client's end is closed, in
	 * any process. EOF without it is an empty datagram (recv returns 0 for
	 * both) and RDHUP alone a holder's shutdown(): the handle stays, as it
	 * does for any malformed request.
	 */
	if (events & (EPOLLHUP | EPOLLERR)) {
		handle_close(b, h);
		return;
	}
	if (events & EPOLLRDHUP) {
		/* Nothing more can arrive: wait for the hang-up alone, which epoll
		 * always reports, instead of waking on RDHUP forever. */
		struct epoll_event ev = { .events = 0, .data.ptr = w };

		epoll_ctl(b->epfd, EPOLL_CTL_MOD, w->fd, &ev);
		return;
	}
	if (events & EPOLLIN) {
		struct pm_msg *m = malloc(sizeof(*m));
		int r = m ? pm_msg_recv_flags(h->w.fd, m, MSG_DONTWAIT) : -ENOMEM;

		if (r == 0)
			handle_request(b, h, m);
		else if (r != -EAGAIN)
			b->stats.protocol_errors++;
		free(m);
	}
}

static struct pagemap *pagemap_create(struct broker *b, struct pool *p)
{
	struct pagemap *pm = calloc(1, sizeof(*pm));
	int r;

	if (!pm)
		return NULL;
	if (p->ops->create && (r = p->ops->create(p)) < 0) {
		blog(LOG_WARN, "%s: cannot create pagemap: %s", p->device, strerror(-r));
		free(pm);
		errno = -r;
		return NULL;
	}
	pm->id = ++b->next_pagemap_id;
	pm->pool = p;
	pm->state = PM_STATE_ACTIVE;
	pm->next = b->pagemaps;
	b->pagemaps = pm;
	p->pm = pm;
	b->stats.pagemaps++;
	b->stats.created++;
	blog(LOG_INFO, "pagemap %llu created for %s%s%s (%s)", (unsigned long long)pm->id,
	     p->device, p->region[0] ? "/" : "", p->region, pm_kind_name(p->ops->kind));
	return pm;
}

int registry_open(struct broker *b, struct pool *p, uint64_t session_id, uint32_t uid,
		  struct pm_info *info)
{
	struct pagemap *pm = p->pm;
	struct handle *h;
	int sv[2], r;

	if (p->gone)
		return p->revoked_by ? p->revoked_by : -ENODEV;
	r = uid_charge(b, uid, UID_HANDLES, 1);
	if (r < 0)
		return r;
	h = calloc(1, sizeof(*h));
	if (!h) {
		uid_uncharge(b, uid, UID_HANDLES, 1);
		return -ENOMEM;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
		r = -errno;
		uid_uncharge(b, uid, UID_HANDLES, 1);
		free(h);
		return r;
	}
	if (!pm) {
		pm = pagemap_create(b, p);
		if (!pm) {
			r = errno ? -errno : -ENOMEM;
			goto fail;
		}
	} else if (pm->state == PM_STATE_LINGERING) {
		pm->state = PM_STATE_ACTIVE;
		pm->linger_deadline = 0;
		b->stats.revived++;
		blog(LOG_DEBUG, "pagemap %llu revived", (unsigned long long)pm->id);
	}
	{
		struct stat st;

		if (fstat(sv[1], &st) < 0) {
			r = -errno;
			goto fail;
		}
		h->cdev = st.st_dev;
		h->cino = st.st_ino;
		h->cookie = socket_cookie(sv[1]);
	}
	h->w.fd = sv[0];
	h->w.cb = handle_event;
	h->pm = pm;
	h->session_id = session_id;
	h->uid = uid;
	r = loop_add(b, &h->w, EPOLLIN | EPOLLRDHUP);
	if (r < 0)
		goto fail;
	h->next = pm->handles;
	pm->handles = h;
	pm->refs++;
	b->stats.handles++;
	registry_info(pm, info);
	/* Pools of devices that can vanish are looked at on every tick. */
	loop_arm_timer(b);
	return sv[1];
fail:
	close(sv[0]);
	close(sv[1]);
	free(h);
	uid_uncharge(b, uid, UID_HANDLES, 1);
	/* A pagemap created for this open and left without handles lingers. */
	if (pm && !pm->refs && pm->state == PM_STATE_ACTIVE) {
		pm->state = PM_STATE_LINGERING;
		pm->linger_deadline = now_ms();
		loop_arm_timer(b);
	}
	return r;
}

static void pagemap_revoke(struct broker *b, struct pagemap *pm, int reason)
{
	struct pm_event_revoked ev = { .id = pm->id, .reason = reason };

	blog(LOG_INFO, "pagemap %llu (%s) revoked: %s", (unsigned long long)pm->id,
	     pm->pool->device, reason == -ESHUTDOWN ? "the broker stops" : strerror(-reason));
	pm->state = PM_STATE_REVOKED;
	while (pm->handles) {
		struct handle *h = pm->handles;
		struct pm_hdr hdr = { .version = PM_PROTO_VERSION_MAX, .opcode = PM_EV_REVOKED,
				      .flags = PM_HDR_EVENT };

		/* Holders see the event, then EOF: POLLIN, then POLLHUP. */
		pm_msg_send(h->w.fd, &hdr, &ev, sizeof(ev), NULL, 0);
		pm->handles = h->next;
		uid_uncharge(b, h->uid, UID_HANDLES, 1);
		loop_retire(b, &h->w);
		b->stats.handles--;
	}
	pm->refs = 0;
	alloc_forget_pagemap(b, pm);
	pm->pins = 0;
	b->stats.revoked++;
	teardown(b, pm);
}

int registry_revoke_device(struct broker *b, const char *device, int reason)
{
	int n = 0, found = 0;

	for (struct pool *p = b->pools; p; p = p->next) {
		if (strcmp(p->device, device))
			continue;
		found = 1;
		p->gone = true;
		/* An administrator's word outlasts the device's coming and going. */
		if (p->revoked_by != -ECANCELED)
			p->revoked_by = reason;
		if (p->pm) {
			pagemap_revoke(b, p->pm, reason);
			n++;
		}
	}
	loop_arm_timer(b);
	return found ? n : -ENOENT;
}

int registry_restore_device(struct broker *b, const char *device)
{
	int n = 0, found = 0;

	for (struct pool *p = b->pools; p; p = p->next) {
		if (strcmp(p->device, device))
			continue;
		found = 1;
		if (!p->gone || p->revoked_by != -ECANCELED)
			continue;
		/* Back to what the device itself says: gone if it left meanwhile. */
		if (!pool_device_present(p)) {
			p->revoked_by = -ENODEV;
			continue;
		}
		p->gone = false;
		p->revoked_by = 0;
		n++;
	}
	return found ? n : -ENOENT;
}

int registry_device_added(struct broker *b, const char *bdf)
{
	int n = 0;

	for (struct pool *p = b->pools; p; p = p->next)
		if (!strcmp(p->device, bdf) && p->gone && p->revoked_by == -ENODEV &&
		    !p->pm && pool_device_present(p)) {
			p->gone = false;
			p->revoked_by = 0;
			n++;
		}
	if (n)
		blog(LOG_INFO, "%s is back: its %d pool%s served again", bdf, n, n == 1 ? "" : "s");
	return n;
}

void registry_check_returned(struct broker *b)
{
	for (struct pool *p = b->pools; p; p = p->next)
		if (p->gone && p->revoked_by == -ENODEV && p->sysfs[0] && pool_device_present(p))
			registry_device_added(b, p->device);
}

void registry_expire(struct broker *b, bool pressure)
{
	uint64_t now = now_ms();
	struct pagemap *pm = b->pagemaps, *next;

	for (; pm; pm = next) {
		next = pm->next;
		if (pm->state != PM_STATE_LINGERING)
			continue;
		if (pressure || (b->conf.reclaim_watermark &&
				 pool_free(b, pm->pool) < b->conf.reclaim_watermark)) {
			b->stats.reclaimed++;
			blog(LOG_INFO, "pagemap %llu reclaimed early: %s", (unsigned long long)pm->id,
			     pressure ? "memory pressure" : "pool below its watermark");
		} else if (pm->linger_deadline > now) {
			continue;
		} else {
			b->stats.torn_down++;
		}
		teardown(b, pm);
	}
	loop_arm_timer(b);
}

uint64_t registry_next_deadline(const struct broker *b)
{
	uint64_t next = 0, tick = now_ms() + 1000;

	for (const struct pagemap *pm = b->pagemaps; pm; pm = pm->next) {
		/* Live pagemaps of devices that can vanish want a periodic look. */
		uint64_t t = pm->state == PM_STATE_LINGERING ? pm->linger_deadline
			     : pm->pool->sysfs[0]         ? tick
							  : 0;

		if (t && (!next || t < next))
			next = t;
	}
	return next;
}

unsigned registry_handles_of_session(const struct broker *b, uint64_t session_id)
{
	unsigned n = 0;

	for (const struct pagemap *pm = b->pagemaps; pm; pm = pm->next)
		for (const struct handle *h = pm->handles; h; h = h->next)
			n += h->session_id == session_id;
	return n;
}

int registry_hold(struct broker *b, struct pool *p)
{
	if (!p->pm && !pagemap_create(b, p))
		return errno ? -errno : -ENOMEM;
	registry_pin(b, p->pm);
	return 0;
}

void registry_shutdown(struct broker *b)
{
	struct pagemap *pm, *next;
	unsigned n = 0;

	for (pm = b->pagemaps; pm; pm = next) {
		next = pm->next;
		if (!pool_is_device(pm->pool))
			continue;
		/* Revoking evacuates: every chunk in the pool is copied home into
		 * its owner's memfd, which outlives us. Holders are told why. */
		pagemap_revoke(b, pm, -ESHUTDOWN);
		n++;
		next = b->pagemaps; /* the list changed under us */
	}
	blog(LOG_INFO, "shutdown: %u device pagemaps revoked, %llu bytes evacuated home, %llu lost",
	     n, (unsigned long long)b->evacuated_bytes, (unsigned long long)b->lost_bytes);
}

void registry_free(struct broker *b)
{
	while (b->pagemaps) {
		struct pagemap *pm = b->pagemaps;

		while (pm->handles) {
			struct handle *h = pm->handles;

			pm->handles = h->next;
			close(h->w.fd);
			free(h);
		}
		b->pagemaps = pm->next;
		if (pm->pool->ops->destroy)
			pm->pool->ops->destroy(pm->pool);
		pm->pool->pm = NULL;
		free(pm);
	}
}
