/* SPDX-License-Identifier: MIT */
/*
 * The pagemap wire protocol, version 1: what libpagemap and pagemapd say to
 * each other. This header is the specification (docs/protocol.md explains
 * it with diagrams); every struct is fixed-width little-endian, naturally
 * aligned, padded with explicit reserved fields that must be zero, and its
 * size is asserted below. Nothing here may change size once released: grow
 * by a new opcode or a new version.
 *
 * The values both sides use (pool kinds, pagemap states, advice, run bits)
 * are defined here, as wire values, and never change. The public API
 * (libpagemap/include/pagemap.h, installed without this header) spells the
 * ones it passes through with its own names and the same numbers;
 * libpagemap/wire_check.c asserts at build time that each equals its wire
 * value. The broker includes only this header, never pagemap.h.
 *
 * Two kinds of socket carry it:
 *  - the control connection: a Unix SOCK_STREAM socket to the broker
 *    ($XDG_RUNTIME_DIR/pagemap/broker.sock or /run/pagemap/broker.sock);
 *  - a pagemap fd: one end of a SOCK_SEQPACKET socketpair the broker made for
 *    one pagemap_open(). It is the capability and the reference; requests on
 *    it carry their own reply socket (a fd in SCM_RIGHTS) because the pagemap
 *    fd may be shared by processes that would otherwise read each other's
 *    replies.
 */
#ifndef PAGEMAP_PROTO_H
#define PAGEMAP_PROTO_H

#include <assert.h>
#include <stdint.h>

#define PM_PROTO_MAGIC 0x50414d50u /* "PMAP" as little-endian bytes */
#define PM_PROTO_VERSION_MIN 1
#define PM_PROTO_VERSION_MAX 1

#define PM_MAX_PAYLOAD 65536u /* a longer message is a protocol error */
#define PM_MAX_FDS 4          /* per message; more is a protocol error */
#define PM_NAME_MAX 64        /* device names, NUL-padded */
#define PM_REGION_MAX 32      /* region names, NUL-padded */

/* Every message, both directions, starts with this. */
struct pm_hdr {
	uint32_t magic;      /* PM_PROTO_MAGIC */
	uint16_t version;    /* the negotiated version (HELLO: the client's maximum) */
	uint16_t opcode;     /* enum pm_opcode; replies echo the request's */
	uint32_t length;     /* payload bytes after this header, <= PM_MAX_PAYLOAD */
	uint16_t nfds;       /* fds attached with SCM_RIGHTS to this message */
	uint16_t flags;      /* PM_HDR_* */
	uint64_t request_id; /* chosen by the requester, echoed in the reply; 0 in events */
};
static_assert(sizeof(struct pm_hdr) == 24, "pm_hdr is 24 bytes");

#define PM_HDR_REPLY 0x0001u /* a reply to request_id */
#define PM_HDR_EVENT 0x0002u /* unsolicited: a pagemap event */
#define PM_HDR_KNOWN (PM_HDR_REPLY | PM_HDR_EVENT)

enum pm_opcode {
	PM_OP_HELLO = 1,   /* control: version negotiation, must be first */
	PM_OP_NOP = 2,     /* control: round trip, no effect */
	PM_OP_OPEN = 3,    /* control: open a pagemap; the reply carries its fd */
	PM_OP_QUERY = 4,   /* pagemap fd: its info (reply on the attached socket) */
	PM_OP_LIST = 5,    /* control: every live pagemap (pmctl pagemaps) */
	PM_OP_CLIENTS = 6, /* control: the caller's uid's sessions, all for admins (pmctl clients) */
	PM_OP_REVOKE = 7,  /* control, admin: revoke a device's pagemaps */
	PM_OP_STATS = 8,   /* control: broker counters */
	PM_OP_ALLOC = 9,   /* control: register a managed allocation (its memfd attached) */
	PM_OP_FREE = 10,   /* control: forget a managed allocation */
	PM_OP_PLACE = 11,  /* control: chunks now live in the attached pagemap fd's pagemap */
	PM_OP_QUERY_RANGE = 12, /* control: the pagemap each chunk lives in */
	PM_OP_MIGRATE = 13, /* control: move chunks (pagemap fds attached) */
	PM_OP_ADVISE = 14,  /* control: placement advice for chunks */
	PM_OP_RANGES = 15,  /* control: chunk state as uniform runs */
	PM_OP_ALLOCS = 16,  /* control: allocations and their runs (pmctl ranges) */
	PM_OP_PEERS = 17,   /* control: links to peer brokers (pmctl peers) */
	PM_OP_ENGINES = 18, /* control: bytes each copy engine moved (pmctl stats) */
	PM_OP_UFFD = 19,    /* control: where an allocation is mapped, the userfaultfd attached */
	PM_OP_FILE_IO = 20, /* control: file or block data into or out of an allocation */
	PM_OP_POOLS = 21,   /* control: every pool the caller may open (pmctl pools) */
	PM_OP_RESTORE = 22, /* control, admin: serve a revoked device again */
	PM_EV_REVOKED = 64, /* event on a pagemap fd: the pagemap was revoked */
};

/* Every reply's payload starts with this. */
struct pm_reply {
	int32_t status; /* >= 0 success (op-specific), else a negative errno */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_reply) == 8, "pm_reply is 8 bytes");

/* PM_OP_HELLO */
struct pm_hello {
	uint16_t min_version; /* lowest version the client speaks */
	uint16_t max_version; /* highest; also in the header */
	uint32_t flags;       /* none defined: must be 0 */
	char client[32];      /* free text for pmctl clients, NUL-padded */
};
static_assert(sizeof(struct pm_hello) == 40, "pm_hello is 40 bytes");

struct pm_hello_reply {
	struct pm_reply r;
	uint16_t version; /* chosen: min(client max, broker max) if >= both mins */
	uint16_t reserved;
	uint32_t max_payload;
	uint64_t session_id;
};
static_assert(sizeof(struct pm_hello_reply) == 24, "pm_hello_reply is 24 bytes");

/* PM_OP_OPEN */
struct pm_open {
	char device[PM_NAME_MAX];   /* "node1", "0000:03:00.0", "emu0", NUL-padded */
	char region[PM_REGION_MAX]; /* "" for the device's default pool */
	uint32_t flags;             /* none defined: must be 0 */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_open) == 104, "pm_open is 104 bytes");

/* pm_info.kind (pagemap.h: enum pagemap_kind, PAGEMAP_KIND_*). */
enum pm_pool_kind {
	PM_KIND_HOST_NUMA = 1,
	PM_KIND_PCI_BAR = 2,
	PM_KIND_RDMA_REMOTE = 3,
	PM_KIND_GPU = 4,
	PM_KIND_EMULATED = 5,
	PM_KIND_P2PMEM = 6, /* PCI peer-to-peer memory a driver published (p2pmem) */
};

/* pm_info.state (pagemap.h: enum pagemap_state, PAGEMAP_STATE_*). */
enum pm_pagemap_state {
	PM_STATE_ACTIVE = 1,
	PM_STATE_LINGERING = 2, /* no reference left; torn down when the linger ends */
	PM_STATE_REVOKED = 3,
};

/* A pagemap as the broker describes it (OPEN, QUERY and LIST replies). */
struct pm_info {
	uint64_t id; /* stable for the pagemap's life, never reused by a broker */
	char device[PM_NAME_MAX];
	char region[PM_REGION_MAX];
	uint32_t kind;  /* enum pm_pool_kind */
	uint32_t state; /* enum pm_pagemap_state */
	int32_t numa_node; /* -1 when none */
	uint32_t refs;     /* open handles: pagemap_open() calls whose fds live */
	uint64_t capacity; /* bytes */
	uint64_t used;     /* bytes placed */
	uint32_t addr_bits; /* device address width */
	uint32_t reserved0;
	uint64_t reserved[4];
};
static_assert(sizeof(struct pm_info) == 176, "pm_info is 176 bytes");

struct pm_open_reply {
	struct pm_reply r; /* on success one fd is attached: the pagemap fd */
	struct pm_info info;
};
static_assert(sizeof(struct pm_open_reply) == 184, "pm_open_reply is 184 bytes");

/* PM_OP_QUERY, sent on a pagemap fd with one fd attached: the reply socket. */
struct pm_query {
	uint32_t flags; /* none defined: must be 0 */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_query) == 8, "pm_query is 8 bytes");

struct pm_query_reply {
	struct pm_reply r;
	struct pm_info info;
};
static_assert(sizeof(struct pm_query_reply) == 184, "pm_query_reply is 184 bytes");

/* PM_OP_LIST: no request payload. Reply: pm_list_reply then count pm_info. */
struct pm_list_reply {
	struct pm_reply r; /* status: the count */
	uint32_t count;
	uint32_t flags;    /* PM_LIST_* */
};
/* More records exist than fit one reply (PM_MAX_PAYLOAD): the list is cut. */
#define PM_LIST_TRUNCATED 0x1u
static_assert(sizeof(struct pm_list_reply) == 16, "pm_list_reply is 16 bytes");

/* PM_OP_CLIENTS: no request payload. Reply: pm_list_reply then count pm_client_info. */
struct pm_client_info {
	uint64_t session_id;
	int32_t pid;
	uint32_t uid;
	uint32_t gid;
	uint32_t handles; /* pagemap handles this session opened and that are still open */
	char client[32];
};
static_assert(sizeof(struct pm_client_info) == 56, "pm_client_info is 56 bytes");

/* PM_OP_REVOKE */
/* PM_OP_REVOKE and PM_OP_RESTORE. Reply status: the pagemaps revoked, or
 * the pools restored. A revoked device stays disabled (opens fail with
 * -ECANCELED) until RESTORE. */
#define PM_REVOKE_FORCE 0x1u /* also host memory (NUMA nodes; without: -EBUSY) */
struct pm_revoke {
	char device[PM_NAME_MAX];
	uint32_t flags; /* PM_REVOKE_FORCE; RESTORE: 0 */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_revoke) == 72, "pm_revoke is 72 bytes");

/* PM_OP_STATS: no request payload. */
struct pm_stats_reply {
	struct pm_reply r;
	uint64_t sessions;       /* connected now */
	uint64_t pagemaps;       /* live (active + lingering) */
	uint64_t handles;        /* open pagemap handles */
	uint64_t created;        /* pagemaps created since start */
	uint64_t revived;        /* lingering pagemaps reopened */
	uint64_t torn_down;      /* after their linger */
	uint64_t reclaimed;      /* torn down early under memory pressure */
	uint64_t revoked;
	uint64_t denied;         /* opens refused by policy */
	uint64_t protocol_errors;
	uint64_t allocations;     /* managed allocations registered now */
	uint64_t allocated_bytes; /* their total size */
	uint64_t bytes_direct;    /* migrated device to device */
	uint64_t bytes_bounced;   /* migrated device to device through a host buffer */
	uint64_t bytes_host;      /* migrated between host memory and a device */
	uint64_t faults;          /* chunks brought back by CPU faults */
};
static_assert(sizeof(struct pm_stats_reply) == 136, "pm_stats_reply is 136 bytes");

/*
 * PM_OP_ALLOC, with one fd: the memfd backing the allocation, sealed against
 * shrinking and growing, exactly size bytes. The broker keeps it so it can
 * act on the memory (copies to and from device pools) and drops it on FREE
 * or when the session ends.
 */
struct pm_alloc {
	uint64_t size;       /* a multiple of chunk_size */
	uint64_t chunk_size; /* a power of two, PM_CHUNK_MIN..PM_CHUNK_MAX */
	uint32_t flags;      /* none defined: must be 0 */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_alloc) == 24, "pm_alloc is 24 bytes");

#define PM_CHUNK_MIN (64u << 10)
#define PM_CHUNK_MAX (1u << 30)

struct pm_alloc_reply {
	struct pm_reply r;
	uint64_t alloc_id; /* names the allocation in later requests of this session */
	uint64_t nchunks;
};
static_assert(sizeof(struct pm_alloc_reply) == 24, "pm_alloc_reply is 24 bytes");

/* PM_OP_FREE */
struct pm_free {
	uint64_t alloc_id;
};
static_assert(sizeof(struct pm_free) == 8, "pm_free is 8 bytes");

/*
 * PM_OP_PLACE, with one fd: a pagemap fd, the capability for the pagemap the
 * chunks [first, first + count) of the allocation now live in. The client
 * moved host memory itself (its pages, its mapping); the broker records the
 * location, and the chunks keep that pagemap alive until they leave it.
 */
struct pm_place {
	uint64_t alloc_id;
	uint64_t first;
	uint64_t count;
	uint32_t flags; /* none defined: must be 0 */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_place) == 32, "pm_place is 32 bytes");

/* PM_OP_QUERY_RANGE: reply body is count u64 pagemap ids (0: system memory,
 * no pagemap asked for), count <= PM_QUERY_MAX. */
struct pm_query_range {
	uint64_t alloc_id;
	uint64_t first;
	uint64_t count;
};
static_assert(sizeof(struct pm_query_range) == 24, "pm_query_range is 24 bytes");
#define PM_QUERY_MAX ((PM_MAX_PAYLOAD - sizeof(struct pm_reply)) / sizeof(uint64_t))

/*
 * PM_OP_MIGRATE: pm_migrate_req, then nranges pm_migrate_entry; up to
 * PM_MAX_FDS pagemap fds attached, which entries name by index. Reply:
 * pm_migrate_reply when the move is over, or at once with PM_MIG_ASYNC,
 * carrying one fd: a SOCK_SEQPACKET socket on which the broker sends one
 * pm_migrate_reply (header opcode PM_OP_MIGRATE, flags PM_HDR_EVENT) at the
 * end and then closes.
 */
#define PM_MIG_ASYNC 0x1u
#define PM_MIG_DISCARD 0x2u /* contents undefined: no copy */
#define PM_MIG_FAULT 0x4u   /* a CPU fault: to system memory, before anything else */
#define PM_MIG_KNOWN (PM_MIG_ASYNC | PM_MIG_DISCARD | PM_MIG_FAULT)
#define PM_MIGRATE_MAX_RANGES 64

struct pm_migrate_req {
	uint32_t flags; /* PM_MIG_* */
	uint32_t nranges; /* 1..PM_MIGRATE_MAX_RANGES */
};
static_assert(sizeof(struct pm_migrate_req) == 8, "pm_migrate_req is 8 bytes");

#define PM_TARGET_SYSTEM (-1)    /* system memory */
#define PM_TARGET_PREFERRED (-2) /* each chunk's preferred location */

struct pm_migrate_entry {
	uint64_t alloc_id;
	uint64_t first;
	uint64_t count;
	int32_t target; /* an attached fd's index, or PM_TARGET_* */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_migrate_entry) == 32, "pm_migrate_entry is 32 bytes");

struct pm_migrate_reply {
	struct pm_reply r; /* the first error, or 0 */
	uint64_t bytes_done; /* bytes of chunks now where asked, in request order */
	uint64_t bytes_direct;
	uint64_t bytes_bounced;
	uint64_t bytes_host;
};
static_assert(sizeof(struct pm_migrate_reply) == 40, "pm_migrate_reply is 40 bytes");

/*
 * PM_OP_ADVISE, with one pagemap fd attached for the advice that names one
 * (PREFERRED_LOCATION to a pagemap, ACCESSED_BY, UNSET_ACCESSED_BY). Reply
 * status: PM_ADVICE_APPLIED* or -errno.
 */
struct pm_advise {
	uint64_t alloc_id;
	uint64_t first;
	uint64_t count;
	uint32_t advice; /* enum pm_advice_kind | PM_ADVICE_FLAG_* */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_advise) == 32, "pm_advise is 32 bytes");

/* pm_advise.advice, low 8 bits (pagemap.h: enum pm_advice, PM_ADV_*). */
enum pm_advice_kind {
	PM_ADVICE_PREFERRED_LOCATION = 1,       /* the fd's pagemap; no fd: system memory */
	PM_ADVICE_UNSET_PREFERRED_LOCATION = 2, /* no fd */
	PM_ADVICE_ACCESSED_BY = 3,              /* the fd: a pagemap of the accessing device */
	PM_ADVICE_UNSET_ACCESSED_BY = 4,        /* the fd: that pagemap again */
	PM_ADVICE_READ_MOSTLY = 5,              /* no fd */
	PM_ADVICE_UNSET_READ_MOSTLY = 6,        /* no fd */
};
#define PM_ADVICE_KIND_MASK 0xffu
/* pm_advise.advice, flags above the kind (pagemap.h: PM_ADV_FLAG_*). */
#define PM_ADVICE_FLAG_FALLBACK 0x100u    /* no peer path: fall back instead of -ENOLINK */
#define PM_ADVICE_FLAG_ONLY_SYSTEM 0x200u /* prefetches move only chunks in system memory */
#define PM_ADVICE_FLAGS_KNOWN (PM_ADVICE_FLAG_FALLBACK | PM_ADVICE_FLAG_ONLY_SYSTEM)
/* The ADVISE reply's status on success (pagemap.h: PM_ADV_APPLIED*). */
#define PM_ADVICE_APPLIED 0        /* as asked */
#define PM_ADVICE_APPLIED_LOCAL 1  /* fallback: the accessor's pagemap is the preferred location */
#define PM_ADVICE_APPLIED_SYSTEM 2 /* fallback: system memory is the preferred location */

/* PM_OP_RANGES: a pm_query_range request; reply: pm_list_reply (count runs)
 * then count pm_run. PM_LIST_TRUNCATED: more runs follow the last one. */
#define PM_ACCESSORS_MAX 4 /* pagemap.h: PM_ACCESSED_BY_MAX */
struct pm_run {
	uint64_t first; /* chunk index */
	uint64_t count;
	uint64_t resident;  /* pagemap id, 0 system memory */
	uint64_t requested; /* pagemap id, PM_RUN_REQUESTED_SYSTEM, 0 none */
	uint64_t accessed_by[PM_ACCESSORS_MAX];
	uint32_t advice; /* PM_RUN_PREFERRED... */
	uint32_t flags;  /* PM_RUN_IN_FLIGHT... */
	int32_t error;
	uint32_t reserved;
};
static_assert(sizeof(struct pm_run) == 80, "pm_run is 80 bytes");

/* pm_run.requested: system memory is the preferred location (pagemap.h:
 * PM_PAGEMAP_SYSTEM). */
#define PM_RUN_REQUESTED_SYSTEM UINT64_MAX
/* pm_run.advice bits (pagemap.h: pm_range.advice, PM_RANGE_*). */
#define PM_RUN_PREFERRED 0x1u   /* a preferred location is set */
#define PM_RUN_ACCESSED_BY 0x2u /* accessors are set (accessed_by[]) */
#define PM_RUN_READ_MOSTLY 0x4u /* the host copy stays valid while the chunk is elsewhere */
/* pm_run.flags bits (pagemap.h: pm_range.flags, PM_RANGE_*). */
#define PM_RUN_IN_FLIGHT 0x1u   /* a migration of these chunks is under way */
#define PM_RUN_HOST_COPY 0x2u   /* a valid host copy exists besides the resident one */

/* PM_OP_ALLOCS: pm_allocs request; reply: pm_list_reply (count allocations)
 * then, per allocation, pm_alloc_info and its nruns pm_run. Other sessions'
 * allocations need an administrator. */
struct pm_allocs {
	uint64_t session_id; /* 0: every session */
};
static_assert(sizeof(struct pm_allocs) == 8, "pm_allocs is 8 bytes");

struct pm_alloc_info {
	uint64_t session_id;
	uint64_t alloc_id;
	uint64_t size;
	uint64_t chunk_size;
	int32_t pid;
	uint32_t nruns;
	uint64_t in_flight; /* chunks moving now */
};
static_assert(sizeof(struct pm_alloc_info) == 48, "pm_alloc_info is 48 bytes");

/*
 * PM_OP_UFFD, with one fd attached: the userfaultfd with which this session
 * registers its allocations' ranges (missing mode), and where allocation
 * alloc_id is mapped. Copies home then land in that mapping with
 * UFFDIO_COPY: no write through the memfd's inode lock, no zeroed page
 * overwritten, the pages mapped already. Where that fails (a range not
 * registered, a mapping gone), the copy goes through the memfd as without
 * it. Optional: a client that never sends it loses nothing but speed.
 */
struct pm_uffd {
	uint64_t alloc_id;
	uint64_t addr; /* page-aligned start of the allocation's mapping */
};
static_assert(sizeof(struct pm_uffd) == 16, "pm_uffd is 16 bytes");

/*
 * PM_OP_FILE_IO, with one fd attached: a regular file or block device the
 * client opened (O_DIRECT when it could). Bytes [file_off, file_off + len)
 * of the file go into chunks first.. of allocation alloc_id at byte offset
 * start (PM_IO_LOAD), or the other way (PM_IO_STORE), wherever each chunk
 * lives: into a device pool's memory by the storage device's own DMA when
 * the kernel allows it (PCI P2P DMA into p2pmem), else through a host
 * buffer. Chunks do not move. start and len are multiples of 4096 and
 * inside the allocation. Reply: pm_file_io_reply; status 0 or -errno.
 */
#define PM_IO_STORE 0x1u  /* allocation to file; without it, file to allocation */
#define PM_IO_BOUNCE 0x2u /* through a host buffer even where DMA could go direct */
#define PM_IO_KNOWN (PM_IO_STORE | PM_IO_BOUNCE)
#define PM_IO_ALIGN 4096u

struct pm_file_io {
	uint64_t alloc_id;
	uint64_t start;    /* byte offset in the allocation */
	uint64_t len;
	uint64_t file_off;
	uint32_t flags;    /* PM_IO_* */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_file_io) == 40, "pm_file_io is 40 bytes");

#define PM_IO_REASON_MAX 256

struct pm_file_io_reply {
	struct pm_reply r;      /* the first error, or 0 */
	uint64_t bytes_done;    /* moved to or from the file (a load past its end: fewer) */
	uint64_t bytes_p2p_dma; /* by the storage device's DMA straight to or from a device pool */
	uint64_t bytes_dma;     /* by its DMA straight to or from host memory */
	uint64_t bytes_bounced; /* through a host buffer (copied by the CPU on one side) */
	int32_t fallback;       /* why bytes bounced where DMA was tried: -errno, or 0 */
	uint32_t reserved;
	char reason[PM_IO_REASON_MAX]; /* that, in words (the topology's p2pdma reason), NUL-padded */
};
static_assert(sizeof(struct pm_file_io_reply) == 304, "pm_file_io_reply is 304 bytes");

/*
 * PM_OP_ENGINES: no request payload. Reply: pm_list_reply then count
 * pm_engine_info, one per copy engine of the broker's transport layer
 * ("cpu", "cuda", "verbs", "block"), counted since the broker started.
 * bytes_zero_copy: moved by a DMA engine straight from or to their pages;
 * bytes_staged: through a staging buffer on the way (copied into
 * registered memory first, or bounced through host memory). A CPU copy
 * is neither: the CPU is the engine. bytes_p2p_dma: the part of
 * bytes_zero_copy one device's DMA engine moved into or out of another
 * device's memory (an NVMe controller reading into a p2pmem pool).
 */
struct pm_engine_info {
	char name[16];
	uint64_t bytes;           /* moved by completed copies */
	uint64_t bytes_zero_copy;
	uint64_t bytes_staged;
	uint64_t copies;          /* completed */
	uint64_t failed;          /* copies that failed */
	uint64_t busy_ns;         /* workers' time in this engine's copies */
	uint64_t bytes_p2p_dma;   /* a device's DMA engine wrote another device's memory */
};
static_assert(sizeof(struct pm_engine_info) == 72, "pm_engine_info is 72 bytes");

/*
 * PM_OP_POOLS: pm_pools_req. Reply: pm_list_reply then count pm_pools_entry,
 * every pool the caller may open (the policy's verdict for its uid),
 * revoked and gone ones included.
 */
struct pm_pools_req {
	int32_t cpu;       /* the caller's CPU (path classes from it), -1 unknown */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_pools_req) == 8, "pm_pools_req is 8 bytes");

/* pm_pools_entry.state (pagemap.h: enum pm_pool_state, PM_POOL_*). */
enum pm_pools_state {
	PM_POOLS_AVAILABLE = 1, /* no pagemap now: the first open creates it */
	PM_POOLS_LIVE = 2,      /* a pagemap exists (active or lingering) */
	PM_POOLS_REVOKED = 3,   /* an administrator revoked it: opens fail until RESTORE */
	PM_POOLS_GONE = 4,      /* its device went away: served again if it comes back */
};

struct pm_pools_entry {
	char device[PM_NAME_MAX];
	char region[PM_REGION_MAX];
	uint32_t kind;      /* enum pm_pool_kind */
	int32_t numa_node;  /* -1 when none */
	uint64_t capacity;  /* bytes */
	uint64_t free;      /* bytes: a node's MemFree, else capacity - used */
	uint32_t state;     /* enum pm_pools_state */
	uint32_t reserved0;
	char path[8];       /* path class from the caller's CPU (NODE, SYS, PIX...), "" unknown */
	uint64_t pagemap_id; /* the live pagemap's id, else 0 */
	uint64_t reserved[4];
};
static_assert(sizeof(struct pm_pools_entry) == 176, "pm_pools_entry is 176 bytes");

/* PM_OP_PEERS: no request payload. Reply: pm_list_reply then count
 * pm_peer_info, one per RDMA link to a peer broker. */
enum pm_peer_role {
	PM_PEER_IMPORTS = 1, /* we use its memory: its pools are pagemaps NAME:DEVICE here */
	PM_PEER_EXPORTS = 2, /* it uses ours: it connected to our --rdma-listen */
};

enum pm_peer_state {
	PM_PEER_DOWN = 0, /* importer: waiting to reconnect */
	PM_PEER_CONNECTING = 1,
	PM_PEER_AUTHENTICATING = 2,
	PM_PEER_READY = 3,
};

struct pm_peer_info {
	char name[32];      /* --peer NAME, or "from ADDR" for a peer that connected to us */
	char address[64];   /* HOST:PORT we connect to, or "" */
	char device[32];    /* the RDMA device carrying the link, "" when down */
	uint32_t role;      /* enum pm_peer_role */
	uint32_t state;     /* enum pm_peer_state */
	uint32_t rate_mbps; /* the RDMA port's signalling rate: the NET edge's bandwidth */
	uint32_t npools;    /* pools imported, or host nodes exported */
	uint64_t pinned;    /* memory registered for this link */
	uint64_t connects;  /* authenticated connections so far */
};
static_assert(sizeof(struct pm_peer_info) == 160, "pm_peer_info is 160 bytes");

/* PM_EV_REVOKED on a pagemap fd: then the broker closes its end. */
struct pm_event_revoked {
	uint64_t id;
	int32_t reason; /* -ENODEV: device gone; -ECANCELED: administrator */
	uint32_t reserved;
};
static_assert(sizeof(struct pm_event_revoked) == 16, "pm_event_revoked is 16 bytes");

#endif
