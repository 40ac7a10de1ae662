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
 *
 * Kinds, states, advice, its flags and results, and pm_range's bits are
 * fixed numbers: the wire protocol's own (docs/protocol.md), which
 * libpagemap passes through unchanged.
 */
#ifndef PAGEMAP_H
#define PAGEMAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
	PAGEMAP_KIND_P2PMEM = 6,      /* PCI peer-to-peer memory a driver published (p2pmem) */
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
	int32_t reason; /* REVOKED: -ENODEV device gone, -ECANCELED administrator,
			 * -ESHUTDOWN the broker stops (its data was copied home) */
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
 * -ECANCELED revoked by an administrator (until pmctl restore), -ENODEV its
 * device is gone, -EINVAL bad argument. pm_list_pools says which pools
 * exist and their state.
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
 * Targets a pagemap_fd argument may name besides a pagemap fd.
 * PM_FD_SYSTEM: system memory (host pages, wherever the range's memory
 * policy puts them). PM_FD_PREFERRED (pm_migrate only): each chunk's
 * preferred location (PM_ADV_PREFERRED_LOCATION); chunks without one stay.
 */
#define PM_FD_SYSTEM (-1)
#define PM_FD_PREFERRED (-2)

/* pm_migrate flags. */
/* Return at once with a completion fd (see pm_migrate_result). */
#define PM_MIGRATE_ASYNC 0x1u
/* The destination's contents are undefined afterwards: nothing is copied
 * (output buffers). The source copy is dropped. */
#define PM_MIGRATE_DISCARD 0x2u

/* How far a migration got. */
struct pm_migrate_result {
	int32_t status;          /* 0, or the first error (-errno) */
	uint32_t reserved0;
	uint64_t bytes_done;     /* bytes of the range now at their destination */
	uint64_t bytes_direct;   /* copied device to device */
	uint64_t bytes_bounced;  /* copied through a host buffer */
	uint64_t bytes_host;     /* copied between host memory and a device */
	uint64_t reserved[3];
};

/*
 * Moves the chunks [addr, addr + len) touches into pagemap_fd's pool (or
 * PM_FD_SYSTEM, PM_FD_PREFERRED). addr must be page aligned and the range
 * inside one allocation (-EINVAL; never rounded). The chunks keep the
 * pagemap alive while they live in it, whatever happens to the fd.
 *
 * Synchronous by default: returns 0 once every chunk is there. With
 * PM_MIGRATE_ASYNC it returns a completion fd (O_CLOEXEC; the caller closes
 * it) that polls POLLIN when the migration is over; pm_migrate_result()
 * then says how it went. Host NUMA moves happen in this process (mbind);
 * other pools are filled by the broker's migration engine, directly between
 * two devices where the topology allows, through host memory otherwise.
 *
 * A chunk in a non-host pool is not in this process's memory: a CPU access
 * to it migrates it back first (userfaultfd, inside libpagemap), except for
 * READ_MOSTLY chunks, whose host copy stays valid until written. Chunks
 * are write-protected before they leave host memory, so a store racing the
 * copy waits until the chunk has moved and come back; on kernels without
 * userfaultfd write protection of shmem (before 5.19) such a store may be
 * lost, as with DMA from a buffer the CPU is writing.
 *
 * -EBADF not a pagemap fd, -ENODEV revoked, -ENOSPC the pool is full,
 * -EDQUOT over the uid's quota, -EIO a transfer failed (the broker's log and
 * pm_query_range say which), -EOPNOTSUPP the kernel lacks userfaultfd.
 */
int pm_migrate(struct pm_client *c, void *addr, size_t len, int pagemap_fd, unsigned int flags);

/* One range of a batch migration. */
struct pm_migrate_range {
	void *addr;
	size_t len;
	int pagemap_fd; /* a pagemap fd, PM_FD_SYSTEM or PM_FD_PREFERRED */
	uint32_t reserved; /* 0 */
};

/*
 * Several ranges, each to its own target, in one request to the broker
 * (at most PM_MIGRATE_BATCH_MAX ranges and PM_MIGRATE_BATCH_FDS distinct
 * pagemap fds). Ranges are moved in order; a failure stops the rest and
 * *res (when not NULL) says how far it got. Ranges whose chunks overlap
 * are refused (-EINVAL): a chunk goes to one place per request. Returns 0,
 * a completion fd with PM_MIGRATE_ASYNC, or -errno.
 */
#define PM_MIGRATE_BATCH_MAX 64
#define PM_MIGRATE_BATCH_FDS 4
int pm_migrate_batch(struct pm_client *c, const struct pm_migrate_range *ranges, size_t n,
		     unsigned int flags, struct pm_migrate_result *res);

/*
 * Reads the outcome of an asynchronous migration without blocking: 1 with
 * *res filled once it is over, 0 while it runs, -EBADF not a completion fd.
 */
int pm_migrate_result(int completion_fd, struct pm_migrate_result *res);

/* pm_madvise advice, after CUDA's cudaMemAdvise. */
enum pm_advice {
	PM_ADV_PREFERRED_LOCATION = 1,       /* pagemap_fd (or PM_FD_SYSTEM): where chunks belong */
	PM_ADV_UNSET_PREFERRED_LOCATION = 2, /* pagemap_fd: PM_FD_SYSTEM (ignored) */
	PM_ADV_ACCESSED_BY = 3,              /* pagemap_fd: a pagemap of the accessing device */
	PM_ADV_UNSET_ACCESSED_BY = 4,        /* pagemap_fd: that pagemap again */
	PM_ADV_READ_MOSTLY = 5,              /* host copy stays valid while elsewhere */
	PM_ADV_UNSET_READ_MOSTLY = 6,
};

/* Flags OR'ed into advice. */
/* PREFERRED_LOCATION/ACCESSED_BY: when the accessing device has no peer path
 * to the preferred location, fall back (peer, then the accessor's own
 * pagemap, then system memory) instead of failing with -ENOLINK. */
#define PM_ADV_FLAG_FALLBACK 0x100
/* PREFERRED_LOCATION: prefetches to it (PM_FD_PREFERRED) move only chunks now
 * in system memory, leaving chunks other devices hold where they are. */
#define PM_ADV_FLAG_ONLY_SYSTEM 0x200

/* What pm_madvise applied (its return value on success). */
#define PM_ADV_APPLIED 0        /* as asked: the accessor reaches the location peer to peer */
#define PM_ADV_APPLIED_LOCAL 1  /* fallback: the accessor's pagemap is the preferred location */
#define PM_ADV_APPLIED_SYSTEM 2 /* fallback: system memory is the preferred location */

/*
 * Records advice for the chunks [addr, addr + len) touches; nothing moves
 * until a migration or a fault (pm_migrate with PM_FD_PREFERRED prefetches
 * to the preferred location). Repeating the same advice changes nothing.
 * Returns PM_ADV_APPLIED* or -EINVAL (bad range, unknown advice or flag),
 * -EBADF, -ENODEV, -ENOLINK (ACCESSED_BY a device with no peer path to the
 * preferred location, no fallback flag), -EOPNOTSUPP (READ_MOSTLY without
 * userfaultfd write protection), -E2BIG (more than PM_ACCESSED_BY_MAX
 * accessors on a chunk).
 */
#define PM_ACCESSED_BY_MAX 4
int pm_madvise(struct pm_client *c, void *addr, size_t len, int advice, int pagemap_fd);

/*
 * Where each chunk [addr, addr + len) touches lives: the id of its pagemap
 * (pagemap_info.id), or 0 for system memory. Fills at most n ids and returns
 * the number of chunks in the range, or -errno.
 */
int pm_query(struct pm_client *c, const void *addr, size_t len, uint64_t *pagemap_ids, size_t n);

#define PM_PAGEMAP_SYSTEM UINT64_MAX /* pm_range.requested: system memory */

/* pm_range.advice bits */
#define PM_RANGE_PREFERRED 0x1   /* a preferred location is set */
#define PM_RANGE_ACCESSED_BY 0x2 /* accessors are set (accessed_by[]) */
#define PM_RANGE_READ_MOSTLY 0x4
/* pm_range.flags bits */
#define PM_RANGE_IN_FLIGHT 0x1   /* a migration of these chunks is under way */
#define PM_RANGE_HOST_COPY 0x2   /* a valid host copy exists besides the resident one */

/* A run of chunks that are alike in every field. */
struct pm_range {
	void *addr;
	size_t len;
	uint64_t resident;  /* pagemap id where the data is; 0 system memory */
	uint64_t requested; /* preferred location: pagemap id, PM_PAGEMAP_SYSTEM, 0 none */
	uint64_t accessed_by[PM_ACCESSED_BY_MAX]; /* pagemap ids, 0-terminated */
	uint32_t advice;    /* PM_RANGE_PREFERRED... */
	uint32_t flags;     /* PM_RANGE_IN_FLIGHT... */
	int32_t error;      /* the last failed transfer's -errno, else 0 */
	uint32_t reserved0;
	uint64_t reserved[4];
};

/*
 * The range [addr, addr + len) as uniform runs: where the data is and where
 * it was asked to be are separate fields, never confused. Fills at most n
 * and returns the number of runs, or -errno.
 */
int pm_query_range(struct pm_client *c, const void *addr, size_t len, struct pm_range *out,
		   size_t n);

/* A pool the broker serves (pm_list_pools). */
enum pm_pool_state {
	PM_POOL_AVAILABLE = 1, /* no pagemap now: the first pagemap_open creates it */
	PM_POOL_LIVE = 2,      /* a pagemap exists (open, or lingering) */
	PM_POOL_REVOKED = 3,   /* an administrator revoked it: opens fail (-ECANCELED)
				* until pmctl restore */
	PM_POOL_GONE = 4,      /* its device went away: opens fail (-ENODEV) until it
				* comes back */
};

struct pm_pool_info {
	char device[64];   /* as pagemap_open takes it */
	char region[32];   /* "" for the device's only or default pool */
	uint32_t kind;     /* enum pagemap_kind */
	int32_t numa;      /* the NUMA node it is nearest, -1 none */
	uint64_t capacity; /* bytes */
	uint64_t free;     /* bytes: a node's free memory, else capacity - used */
	uint32_t state;    /* enum pm_pool_state */
	char path[8];      /* the path class from this thread's CPU, as pmtopo
			    * names classes (NODE, SYS, PHB, PIX...); "" unknown */
	uint64_t pagemap_id; /* the live pagemap's id, 0 when none */
	uint64_t reserved[4];
};

/*
 * Every pool this process may open (the broker's policy decides), like
 * numactl -H for every memory the node reaches: fills at most n entries and
 * returns how many pools there are, or -errno.
 */
int pm_list_pools(struct pm_client *c, struct pm_pool_info *out, size_t n);

/* pm_load and pm_store flags. */
/* Through a host buffer even where the storage device could DMA straight
 * into or out of the memory (a baseline to measure against, like cuFile's
 * compatibility mode). */
#define PM_FILE_BOUNCE 0x2u

/* How a pm_load or pm_store went. */
struct pm_io_result {
	uint64_t bytes_done;    /* moved to or from the file */
	uint64_t bytes_p2p_dma; /* by the storage device's DMA straight into or out of
				 * another device's memory (a p2pmem pool): PCI P2P DMA */
	uint64_t bytes_dma;     /* by its DMA straight into or out of host memory */
	uint64_t bytes_bounced; /* through a host buffer or the kernel's page cache */
	int32_t fallback;       /* the error of a DMA the kernel refused, 0 none:
				 * -EREMOTEIO no P2P path between the two devices,
				 * -EFAULT memory no device can DMA into (a BAR pool) */
	uint32_t reserved0;
	char reason[256];       /* why bytes went through host memory, "" when none did;
				 * for a refused pair, the p2pdma verdict pmtopo --pair gives */
	uint64_t reserved[4];
};

/*
 * Reads len bytes of the regular file or block device fd, from offset, into
 * managed memory [addr, addr + len), wherever its chunks live: nothing
 * moves. A chunk in a device pool is filled where it is, by the storage
 * device's own DMA when the kernel allows the pair (an NVMe controller
 * writing into a p2pmem pool behind the same PCIe switch: PCI peer-to-peer
 * DMA, the path GPUDirect Storage takes), else through a host buffer; a
 * chunk in host memory by the same DMA into its pages. *res (may be NULL)
 * says how many bytes went which way and why any bounced.
 *
 * For DMA the file must be read with O_DIRECT: libpagemap reopens fd so
 * (in this process, with its rights) when offset is a multiple of 4096 and
 * the file system allows it; otherwise the bytes come through the page
 * cache. addr and len must be multiples of 4096 and inside one allocation
 * (-EINVAL). Past the end of the file the range is filled with zeros.
 *
 * Returns the bytes read from the file, or -errno: -EBADF fd not open for
 * reading, -EINVAL a pipe, socket or character device, -EOPNOTSUPP a file
 * on a file system other than ext2/3/4, xfs, btrfs, f2fs or tmpfs (FUSE,
 * overlayfs, NFS, procfs...) or a block device that is not a PCI device's
 * disk (loop, nbd, device-mapper), -EIO the device failed (the range's
 * contents are undefined).
 */
ssize_t pm_load(struct pm_client *c, void *addr, size_t len, int fd, off_t offset,
		unsigned int flags, struct pm_io_result *res);

/*
 * The other way: [addr, addr + len) into fd at offset, read where each chunk
 * lives (by the device's DMA out of a p2pmem pool where the kernel allows
 * it). -EBADF when fd is not open for writing. Returns the bytes written.
 */
ssize_t pm_store(struct pm_client *c, const void *addr, size_t len, int fd, off_t offset,
		 unsigned int flags, struct pm_io_result *res);

#ifdef __cplusplus
}
#endif
#endif
