/* SPDX-License-Identifier: MIT */
/*
 * libpagemap: handles to every memory pool of this node, from pagemapd.
 *
 * A pagemap fd is a capability and a reference at once: you can name a
 * pagemap only if you hold its fd, and the pagemap lives (or lingers a few
 * seconds) as long as some process holds a copy of it. dup(), fork() and
 * SCM_RIGHTS passing all keep it; close() of the last copy anywhere releases
 * it. When the pool's device goes away the pagemap is revoked: the fd polls
 * POLLIN then POLLHUP, pagemap_read_event() reports it, and every later call
 * on the fd returns -ENODEV.
 *
 * Every function returns 0 (or a count, or an fd) on success and a negative
 * errno on failure; output parameters are untouched on failure. Functions
 * taking a struct pm_client are thread-safe for that client.
 */
#ifndef PAGEMAP_H
#define PAGEMAP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pm_client;

enum pagemap_kind {
	PAGEMAP_KIND_HOST_NUMA = 1,   /* a host NUMA node's memory */
	PAGEMAP_KIND_PCI_BAR = 2,     /* a PCI device's BAR memory */
	PAGEMAP_KIND_RDMA_REMOTE = 3, /* memory of another node, over RDMA */
	PAGEMAP_KIND_GPU = 4,         /* GPU VRAM */
	PAGEMAP_KIND_EMULATED = 5,    /* memory the broker holds for an emulated device */
};

enum pagemap_state {
	PAGEMAP_STATE_ACTIVE = 1,
	PAGEMAP_STATE_LINGERING = 2, /* no holder left; torn down soon unless reopened */
	PAGEMAP_STATE_REVOKED = 3,
};

struct pagemap_info {
	uint64_t id;         /* stable for the pagemap's life; never reused by a broker */
	char device[64];     /* the pool's device: "node1", "0000:03:00.0" */
	char region[32];     /* "" for a device's only pool, "bar2", "vram" */
	uint32_t kind;       /* enum pagemap_kind */
	uint32_t state;      /* enum pagemap_state */
	int32_t numa_node;   /* the NUMA node the pool is local to, -1 for none */
	uint32_t refs;       /* open handles: pagemap_open() calls whose fds live */
	uint64_t capacity;   /* bytes */
	uint64_t used;       /* bytes placed in the pool */
	uint32_t addr_bits;  /* address width of the pool's device */
	uint32_t reserved0;
	uint64_t reserved[8]; /* zero: room to grow without breaking the ABI */
};

enum pagemap_event_type {
	PAGEMAP_EVENT_REVOKED = 1,
};

struct pagemap_event {
	uint32_t type;  /* enum pagemap_event_type */
	int32_t reason; /* REVOKED: -ENODEV device gone, -ECANCELED administrator */
	uint64_t id;    /* the pagemap's id */
	uint64_t reserved[4];
};

/*
 * Connects to the broker at socket_path; NULL means $PAGEMAP_SOCKET, then
 * $XDG_RUNTIME_DIR/pagemap/broker.sock, then /run/pagemap/broker.sock.
 * On success *out is a client to pm_disconnect(). -ENOENT/-ECONNREFUSED:
 * no broker there; -EPROTONOSUPPORT: no common protocol version.
 */
int pm_connect(const char *socket_path, struct pm_client **out);

/* Closes the connection and frees every allocation pm_alloc made through c.
 * Pagemap fds stay valid: they are the references. */
void pm_disconnect(struct pm_client *c);

/*
 * Opens device's pool named region (NULL: the device's default pool).
 * device is a NUMA node ("node1") or a device as pmtopo names it (BDF,
 * alias...). flags must be 0. Returns a new pagemap fd (O_CLOEXEC; the
 * caller closes it) or -ENOENT unknown device/region, -EACCES not allowed,
 * -ENODEV revoked or gone, -EINVAL bad argument.
 */
int pagemap_open(struct pm_client *c, const char *device, const char *region, unsigned int flags);

/* Describes the pagemap behind pagemap_fd; works after pm_disconnect().
 * -EBADF: not a pagemap fd (a socket of the same type whose peer does not
 * answer within a second is taken for one that is not); -ENODEV: revoked or
 * the broker is gone. */
int pagemap_query(int pagemap_fd, struct pagemap_info *info);

/*
 * Reads one pending event without blocking: 1 with *ev filled, 0 when none
 * is pending, -ENODEV when the pagemap is gone and no event remains, -EBADF
 * for an fd that is not a pagemap fd. Poll the fd for POLLIN to wait.
 */
int pagemap_read_event(int pagemap_fd, struct pagemap_event *ev);

/* One round trip to the broker that changes nothing (health checks, latency). */
int pm_ping(struct pm_client *c);

/*
 * pm_alloc flags. PM_ALLOC_ADDR_BITS(n): place the allocation entirely below
 * 1 << n (n in 20..63), for a device that addresses n bits, so the CPU and
 * the device use the same addresses. PM_ALLOC_CHUNK_SHIFT(s): chunks of
 * 1 << s bytes (s in 16..30; default 21, 2 MiB): the unit of placement.
 */
#define PM_ALLOC_ADDR_BITS(n) ((unsigned int)(n) & 0x3fu)
#define PM_ALLOC_CHUNK_SHIFT(s) (((unsigned int)(s) & 0x1fu) << 8)

/*
 * Allocates managed memory: at least size bytes (rounded up to whole
 * chunks), zeroed, used with plain loads and stores, and known to the broker
 * so that it can be placed in any pool. On success *addr is its start.
 * -EINVAL bad size or flags, -ENOMEM no room (or no address below the
 * limit), -EMFILE the session's allocation limit.
 */
int pm_alloc(struct pm_client *c, size_t size, unsigned int flags, void **addr);

/* Frees what pm_alloc returned at exactly addr; -EINVAL for anything else. */
int pm_free(struct pm_client *c, void *addr);

/*
 * Moves the chunks [addr, addr + len) touches into pagemap_fd's pool, now
 * (synchronous). addr must be page aligned and the range inside one
 * allocation (-EINVAL; never rounded). flags must be 0. The chunks keep the
 * pagemap alive while they live in it, whatever happens to the fd.
 * Host NUMA pagemaps only, so far: others return -EOPNOTSUPP.
 * -EBADF not a pagemap fd, -ENODEV revoked.
 */
int pm_migrate(struct pm_client *c, void *addr, size_t len, int pagemap_fd, unsigned int flags);

/*
 * Where each chunk [addr, addr + len) touches lives: the id of its pagemap
 * (pagemap_info.id), or 0 for system memory no placement asked for. Fills at
 * most n ids and returns the number of chunks in the range, or -errno.
 */
int pm_query(struct pm_client *c, const void *addr, size_t len, uint64_t *pagemap_ids, size_t n);

#ifdef __cplusplus
}
#endif
#endif
