/* SPDX-License-Identifier: MIT */
/*
 * pagemapd's shared state: one single-threaded epoll loop owns everything
 * here, so nothing below takes a lock.
 */
#ifndef PAGEMAP_BROKER_H
#define PAGEMAP_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "pagemap_proto.h"
#include "peer.h"
#include "proto.h"
#include "topo.h"
#include "xfer.h"

struct broker;

/* ---- loop.c: every fd the loop watches is one of these ---- */
struct watch {
	int fd; /* -1 once retired */
	void (*cb)(struct broker *b, struct watch *w, uint32_t events);
	struct watch *retired_next;
};

int loop_add(struct broker *b, struct watch *w, uint32_t events);
void loop_del(struct broker *b, struct watch *w);
/*
 * Stops watching w, closes its fd and frees the object w is the first
 * member of once the current batch of events is dispatched: a callback may
 * retire objects whose events are still pending in that batch.
 */
void loop_retire(struct broker *b, struct watch *w);
void loop_reap(struct broker *b);
uint64_t now_ms(void);
/* Re-arms the one timer to the earliest deadline the registry needs. */
void loop_arm_timer(struct broker *b);

/* ---- log.c ---- */
enum log_level { LOG_ERR, LOG_WARN, LOG_INFO, LOG_DEBUG };
extern enum log_level log_max;
void blog(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- pools: pool.c and one pool_*.c per kind ---- */
struct pool;
struct gpu;
struct link;
struct table;
struct pool_ops {
	enum pm_pool_kind kind;
	const char *name;
	/* Acquires what a live pagemap of this pool needs (a BAR mapping...). */
	int (*create)(struct pool *p);
	void (*destroy)(struct pool *p);
	/* The copy engine that moves its bytes when the broker cannot map it
	 * (xfer.h); NULL: the CPU, through p->map. */
	const struct xfer_engine *engine;
};

struct pool {
	char device[PM_NAME_MAX];
	char region[PM_REGION_MAX];
	const struct pool_ops *ops;
	int numa;
	uint64_t capacity, used;
	uint32_t addr_bits;
	bool emulated;
	bool gone; /* revoked or removed: opens fail with revoked_by */
	int revoked_by; /* -ECANCELED an administrator (until RESTORE), -ENODEV
			 * its device went away (until it comes back); 0 */
	char sysfs[512]; /* the device's sysfs directory ("" for none) */
	/* Device pools (BAR, emulated): the broker's mapping of the whole pool
	 * while a pagemap lives; chunks are copied in and out of it. */
	uint8_t *map;
	uint64_t *space; /* which PM_CHUNK_MIN units are placed (space.c) */
	uint64_t nunits;
	/* Pools whose memory outlives the broker (recover.c): where each chunk
	 * sits, mapped from the state directory; orphans a crashed broker left. */
	struct table *recs;
	size_t recs_len;
	uint64_t orphans;
	uint8_t *orphan_map; /* per PM_CHUNK_MIN unit: an orphan's first unit */
	/* What only one kind of pool has: the member its ops name. */
	union {
		struct {                   /* PCI BAR (pool_bar.c) */
			int index;         /* the BAR */
			bool enabled_here; /* we turned memory decoding on */
		} bar;
		struct {                   /* emulated (pool_emulated.c) */
			int memfd;         /* the broker-held memory, -1 when none */
			char backing[600]; /* a file in the state directory, "" none */
		} emu;
		struct gpu *gpu;           /* GPU (pool_gpu.c, xfer_cuda.c) */
		struct {                   /* p2pmem (pool_p2pmem.c) */
			uint64_t size;     /* the device's p2pmem; capacity: what we hold */
		} p2p;
		struct {                   /* RDMA remote (peer.c, xfer_verbs.c) */
			struct link *link; /* the peer connection, NULL when down */
			uint64_t raddr;    /* the arena the peer exported */
			uint32_t rkey;
		} remote;
	} k;
	struct pagemap *pm; /* the live pagemap, NULL when none */
	struct pool *next;
};

extern const struct pool_ops pool_numa_ops;
extern const struct pool_ops pool_bar_ops;
extern const struct pool_ops pool_emulated_ops;
extern const struct pool_ops pool_remote_ops;
extern const struct pool_ops pool_gpu_ops;
extern const struct pool_ops pool_p2pmem_ops;

/* pool_p2pmem.c: a pool per function that published p2pmem (real machines). */
int p2pmem_pools_add(struct broker *b);
/* Whether p's p2pmem is still published (its driver still bound). */
bool p2pmem_present(const struct pool *p);
/* Whether p's device is there: its sysfs directory, and for p2pmem the
 * published memory. */
bool pool_device_present(const struct pool *p);

/* pool_gpu.c: a pool per CUDA device when the driver loads; none otherwise. */
int gpu_pools_add(struct broker *b);
void gpu_pools_free(struct broker *b);
/* Whether the driver says a's and b's devices reach each other (GPU pools). */
bool gpu_can_peer(const struct pool *a, const struct pool *b);
struct allocation;
/* The allocation is being freed: the GPU pools' registrations of its pages
 * go (now, or as soon as the copies using them finish). Loop thread. */
void gpu_forget_alloc(struct broker *b, const struct allocation *al);

struct pool_bar_conf {
	char device[PM_NAME_MAX];
	int bar;
};

/* Appends a pool (discovery order is kept: a device's first pool is its
 * default). NULL when out of memory. */
struct pool *pool_add(struct broker *b, const struct pool_ops *ops, const char *device,
		      const char *region);
/* Builds the pool list from the topology and the configured BAR pools. */
int pools_build(struct broker *b, const struct pool_bar_conf *bars, unsigned nbars);
void pools_free(struct broker *b);
struct pool *pool_find(struct broker *b, const char *device, const char *region);
/* The name pools use for a device named any way pmtopo accepts (its BDF). */
const char *pool_canonical_device(const struct broker *b, const char *device);
/* Bytes free: a node's MemFree for host pools, capacity - used otherwise. */
uint64_t pool_free(const struct broker *b, const struct pool *p);
/* The topology device of the NUMA node whose CPUs include cpu, or -1. */
int pool_caller_node(const struct broker *b, int cpu);
/* p as PM_OP_POOLS describes it, the path class from the topology device
 * from (pool_caller_node; -1: none). */
void pool_describe(const struct broker *b, const struct pool *p, int from,
		   struct pm_pools_entry *out);
/* Whether chunks placed in p live in the broker's mapping (not host pages). */
static inline bool pool_is_device(const struct pool *p)
{
	return p->ops->kind != PM_KIND_HOST_NUMA;
}

/* ---- space.c: where chunks sit inside a device pool ---- */
int space_init(struct pool *p);
void space_fini(struct pool *p);
/* Reserves len bytes (a multiple of PM_CHUNK_MIN), aligned to len where it
 * can. Returns the offset, or -ENOSPC. */
int64_t space_get(struct pool *p, uint64_t len);
/* Reserves exactly [off, off + len) (recovery). 0, or -EBUSY if taken. */
int space_take(struct pool *p, uint64_t off, uint64_t len);
void space_put(struct pool *p, uint64_t off, uint64_t len);

/* ---- policy.c: the configuration file ---- */
struct access_rule {
	char device[PM_NAME_MAX]; /* "*" for every device */
	int64_t uid;              /* -1: any */
	int64_t gid;              /* -1: any */
	bool allow;
};

struct config {
	char socket_path[256];
	char topology[512];
	char sysfs_root[512];
	char state_dir[256]; /* chunk records of pools that outlive us; "" none */
	char psi_path[256];    /* memory pressure source, /proc/pressure/memory */
	double psi_some_avg10; /* reclaim lingering pagemaps above this */
	uint64_t reclaim_watermark; /* reclaim when a pool's free bytes drop below */
	int linger_ms;
	struct pool_bar_conf bars[16];
	unsigned nbars;
	struct access_rule rules[64];
	unsigned nrules;
	/* Limits (docs/security.md): 0 is "none" only where the docs say so. */
	uint32_t max_sessions;
	uint32_t max_sessions_per_uid;
	uint32_t max_handles_per_uid;
	uint32_t max_allocations_per_session;
	uint32_t max_allocations_per_uid;
	uint64_t max_alloc_chunks_per_uid; /* bounds the broker's chunk tables */
	uint64_t max_alloc_bytes_per_uid;
	uint32_t max_jobs_per_uid;         /* migration requests queued or running */
	uint32_t max_fds_per_uid;          /* all of the above that hold fds; 0: a quarter of ours */
	uint64_t max_placed_bytes_per_uid; /* device pool bytes; 0: no quota */
	uint32_t min_residency_ms; /* advice-driven moves wait this long after a move */
	uint32_t max_residency_ms; /* back-off ceiling for chunks moved back and forth */
	uint32_t migrate_workers;  /* copy threads */
	uint64_t gpu_pool_bytes;   /* VRAM one GPU pagemap takes (at most half the device) */
	uint64_t gpu_pin_bytes;    /* client memory registered at once per GPU pool; 0: staged */
	bool gpu_pin_keep;         /* registrations outlive their copy (LRU within the cap) */
	struct rdma_conf rdma;
};

void config_defaults(struct config *c);
/* Reads a JSON config file (docs/pagemapd.md). err names the bad field. */
int config_load(struct config *c, const char *path, char *err, size_t errlen);
/* Whether uid/gid may open pool p: explicit rules first, then the device's
 * own permissions. 0 or -EACCES. */
int policy_check(const struct broker *b, const struct pool *p, const struct ucred *cred);
/* Once the pools are known: rules naming a device any way pmtopo accepts
 * ("MEM0", "04:00.0") are rewritten to the name pools carry, and a rule
 * that names no pool is said in the log (it can never match). */
void policy_resolve(struct broker *b);

/* ---- registry.c: pagemaps and their handles ---- */
struct handle {
	struct watch w; /* the broker's end of the pagemap fd's socketpair */
	struct pagemap *pm;
	/* The client's end, by identity: a pagemap fd sent back to us is this
	 * handle's when it is the same socket inode. */
	dev_t cdev;
	ino_t cino;
	uint64_t cookie; /* SO_COOKIE of the client's end: never reused */
	uint64_t session_id; /* who opened it (the fd may have moved since) */
	uint32_t uid;
	struct handle *next;
};

struct pagemap {
	uint64_t id;
	struct pool *pool;
	enum pm_pagemap_state state;
	uint32_t refs; /* handles alive */
	uint64_t pins; /* allocation chunks living in it: they keep it too */
	unsigned busy; /* copies in flight into or out of its pool */
	uint64_t linger_deadline;
	struct handle *handles;
	struct pagemap *next;
};

/* Opens (creating or reviving) the pool's pagemap and makes a new handle.
 * Returns the client's end of the handle socket (caller sends, then closes)
 * or -errno. */
int registry_open(struct broker *b, struct pool *p, uint64_t session_id, uint32_t uid,
		  struct pm_info *info);
void registry_info(const struct pagemap *pm, struct pm_info *info);
/* The live handle whose client end fd is, or NULL. */
struct handle *registry_handle_of_fd(struct broker *b, int fd);
void registry_pin(struct broker *b, struct pagemap *pm);
void registry_unpin(struct broker *b, struct pagemap *pm);
/* Revokes every pagemap of the named device; marks its pools gone for
 * reason (-ECANCELED: an administrator, -ENODEV: the device went away).
 * Returns the number revoked or -ENOENT. */
int registry_revoke_device(struct broker *b, const char *device, int reason);
/* An administrator lifts a revoke: the device's revoked pools are served
 * again. The number restored, or -ENOENT. */
int registry_restore_device(struct broker *b, const char *device);
/* A PCI function came back (rescan, hot-add): its pools that went away with
 * it are served again. The number restored. */
int registry_device_added(struct broker *b, const char *bdf);
/* The same for every gone pool whose sysfs directory is back: what a missed
 * uevent (or a build without libudev) would not tell. */
void registry_check_returned(struct broker *b);
/* Tears down lingering pagemaps whose time is up (or all, under pressure). */
void registry_expire(struct broker *b, bool pressure);
uint64_t registry_next_deadline(const struct broker *b);
unsigned registry_handles_of_session(const struct broker *b, uint64_t session_id);
/* Creates p's pagemap if it has none and pins it (recovery holds a pool's
 * memory for its orphans this way). 0 or -errno. */
int registry_hold(struct broker *b, struct pool *p);
/* Graceful stop: every device pagemap is revoked, its chunks copied home. */
void registry_shutdown(struct broker *b);
void registry_free(struct broker *b);

/* ---- session.c: control connections ---- */

/* One chunk of a managed allocation: where its data is, where it was asked
 * to be, and the advice on it. Every pagemap pointer here pins its pagemap. */
struct chunk {
	struct pagemap *where;     /* NULL: system memory (the memfd's pages) */
	struct pagemap *requested; /* preferred location; NULL: none */
	struct pagemap *accessed_by[PM_ACCESSORS_MAX];
	uint64_t off;              /* where a device pool holds it */
	uint64_t resident_until;   /* ms: advice-driven moves wait until then */
	uint32_t residency_ms;     /* grows when the chunk moves back and forth */
	int32_t error;             /* last failed transfer, 0 */
	uint16_t advice;           /* PM_RUN_PREFERRED... */
	bool requested_system;     /* preferred location is system memory */
	bool only_system;          /* PM_ADVICE_FLAG_ONLY_SYSTEM */
	bool host_copy;            /* READ_MOSTLY: the memfd's pages are valid too */
	bool busy;                 /* a copy is in flight */
	uint32_t queued;           /* migration jobs yet to decide on it (migrate.c) */
	uint64_t came_from;        /* the pagemap id it last moved from, 0 system */
};

/* A managed allocation a client registered: its memfd, which the broker
 * keeps to act on the memory, and its chunks. */
/*
 * A client's userfaultfd (PM_OP_UFFD), shared by its session and the
 * allocations it was named for, closed with the last of them: a copy in
 * flight for a freed allocation still holds it.
 */
struct uffd_ref {
	int fd;
	unsigned refs;
	uint32_t uid; /* charged one handle (an fd) while it lives */
};

struct allocation {
	uint64_t id;
	uint64_t session_id;
	int32_t pid;
	uint32_t uid;
	int memfd;
	uint64_t size, chunk_size, nchunks;
	uint64_t ino, dev; /* the memfd's inode: who it is across a broker restart */
	struct chunk *chunks;
	/* Where the client maps it, and its userfaultfd: copies home go
	 * straight into the mapping (PM_OP_UFFD). NULL/0 when not told. */
	struct uffd_ref *uffd;
	uint64_t uaddr;
	unsigned busy; /* chunks in flight: the allocation outlives its free */
	bool dead;     /* freed (or its session ended) while busy */
	struct allocation *next;
};

struct session {
	struct watch w;
	struct broker *b;
	struct allocation *allocs;
	unsigned nallocs;
	uint64_t id;
	struct ucred cred;
	char client[32];
	uint16_t version; /* 0 until HELLO */
	int refused;      /* over a session limit: HELLO gets this, then the end */
	struct pm_reader rd;
	struct uffd_ref *uffd; /* the last userfaultfd it sent (PM_OP_UFFD) */
	struct session *next;
};

void session_accept(struct broker *b, struct watch *w, uint32_t events);
/* Listens again after accept() ran out of fds, once some may be free. */
void session_accept_resume(struct broker *b);

/* ---- alloc.c: managed allocations ---- */
int alloc_register(struct broker *b, struct session *s, const struct pm_alloc *a, int memfd,
		   struct pm_alloc_reply *rep);
int alloc_free(struct broker *b, struct session *s, uint64_t id);
struct allocation *alloc_find(struct session *s, uint64_t id);
/* PM_OP_UFFD: takes fd (closed on failure too). */
int alloc_set_uffd(struct broker *b, struct session *s, const struct pm_uffd *u, int fd);
void uffd_put(struct broker *b, struct uffd_ref *u);
/* [first, first + count) within al's chunks, without overflow. */
bool alloc_in_range(const struct allocation *al, uint64_t first, uint64_t count);
int alloc_place(struct broker *b, struct session *s, const struct pm_place *pl, int pagemap_fd);
int alloc_query(struct broker *b, struct session *s, const struct pm_query_range *q,
		uint64_t *ids);
/* A chunk of al leaves its place at off in device pool p: the space and
 * the uid's quota both get it back. */
void alloc_space_put(struct broker *b, const struct allocation *al, struct pool *p,
		     uint64_t off);
/* Points chunk field *slot at pm, pinning pm and unpinning the old one. */
void alloc_set_ref(struct broker *b, struct pagemap **slot, struct pagemap *pm);
/* A revoked pagemap: its chunks are copied home (evacuated) if the pool can
 * still be read, and every reference to it is dropped. */
void alloc_forget_pagemap(struct broker *b, struct pagemap *pm);
void alloc_free_all(struct broker *b, struct session *s);
/* Frees a dead allocation once nothing is in flight. */
void alloc_reap(struct broker *b, struct allocation *al);
void session_free_all(struct broker *b);
struct session *session_by_id(struct broker *b, uint64_t id);
/* Sends a reply on s's control connection. */
int session_reply(struct session *s, uint16_t opcode, uint64_t request_id, const void *body,
		  size_t len, const int *fds, unsigned nfds);

/* ---- migrate.c: the migration engine ---- */
int engine_init(struct broker *b);
void engine_fini(struct broker *b);
/* PM_OP_MIGRATE: checks and queues; replies when over (or at once, async).
 * Returns 0 when the reply is deferred or sent, or -errno to reply now. */
int engine_migrate(struct broker *b, struct session *s, struct pm_msg *m);
/* al is being freed: work queued on it is cancelled. */
void engine_forget_alloc(struct broker *b, struct allocation *al);
/* The session is gone: its queued work is cancelled, nobody is answered. */
void engine_session_gone(struct broker *b, struct session *s);
/* pm is revoked: waits for copies touching its pool, fails work aimed at it. */
void engine_forget_pagemap(struct broker *b, struct pagemap *pm);
/* Issues whatever queued work can run now. */
void engine_kick(struct broker *b);
uint64_t engine_next_deadline(const struct broker *b);
/* Jobs queued (and copies in flight): for tests and the fuzzers. */
unsigned engine_jobs(const struct broker *b, unsigned *inflight);
/* Whether device a's pool reaches device b's pool peer to peer. */
bool engine_peer_path(const struct broker *b, const struct pool *a, const struct pool *c);
/* PM_OP_FILE_IO: a job of the engine like a migration; 0 when it will
 * answer (when the transfer is over), else -errno to reply now. */
int engine_file_io(struct broker *b, struct session *s, struct pm_msg *m);

/* ---- file_io.c: the file side of PM_OP_FILE_IO ---- */
struct io_file {
	int fd;
	bool direct;                /* O_DIRECT: the storage device DMAs */
	char storage[PM_NAME_MAX];  /* the PCI function holding its bytes, "" unknown */
};

/* Whether the client's fd may be read (load) or written (store) by the
 * workers; fills f. 0, or -EBADF (O_PATH, wrong access mode), -EINVAL (not
 * a regular file or block device), -EOPNOTSUPP (not a local kernel file
 * system's file, nor a PCI device's disk). */
int file_io_check(const struct broker *b, int fd, bool store, struct io_file *f);
/* Why bytes of a transfer into or out of pool p (NULL: host memory) went
 * through host memory: fallback is the DMA attempt's error, 0 none made. */
void file_io_explain(const struct broker *b, const struct io_file *f, const struct pool *p,
		     int fallback, bool bounce, char *out, size_t len);

/* ---- advise.c: advice and chunk state as runs ---- */
int advise_apply(struct broker *b, struct session *s, const struct pm_advise *a, int pagemap_fd);
/* Fills at most max runs for chunks [first, first + count); returns how
 * many were filled; *more says whether chunks remain after them. */
unsigned runs_describe(const struct allocation *al, uint64_t first, uint64_t count,
		       struct pm_run *out, unsigned max, bool *more);

/* ---- hotplug.c: devices going away ---- */
int hotplug_init(struct broker *b);
/* Revokes pools whose sysfs directory vanished (uevents can be missed). */
void hotplug_check_sysfs(struct broker *b);

/* ---- uid.c: what each uid holds, against its limits ---- */
enum uid_res {
	UID_SESSIONS,
	UID_HANDLES,
	UID_ALLOCATIONS,
	UID_ALLOC_CHUNKS,
	UID_ALLOC_BYTES,
	UID_JOBS,
	UID_PLACED_BYTES,
	UID_NRES
};
/* Charges n of r to uid: 0, or the limit's errno (-EMFILE for counts of
 * things that hold fds, -EDQUOT for memory, -EAGAIN for queued work) with a
 * log line naming the uid and the limit; nothing is charged then. */
int uid_charge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n);
void uid_uncharge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n);
void uid_free_all(struct broker *b);
/* Charges past the limit: bytes that exist already (recovered chunks). */
void uid_force_charge(struct broker *b, uint32_t uid, enum uid_res r, uint64_t n);

/* ---- recover.c: chunks that outlive a crash ---- */
int recover_init(struct broker *b);
/* Chunk chunk of al sits at off in p (pending: its copy is under way). */
void recover_note(struct pool *p, uint64_t off, const struct allocation *al, uint64_t chunk,
		  bool pending);
void recover_forget(struct pool *p, uint64_t off);
/* The pending word of the record at off: cleared once its copy is whole. */
uint32_t *recover_pending_flag(struct pool *p, uint64_t off);
/* al was just registered: chunks a crashed broker left for its memfd are its. */
void recover_claim(struct broker *b, struct allocation *al);
/* Orphans not claimed in time are freed. */
void recover_expire(struct broker *b);
void recover_fini(struct broker *b);

/* ---- pressure.c ---- */
bool pressure_high(const struct broker *b);

struct broker {
	int epfd;
	struct watch listen;
	struct watch timer;
	struct watch uevent;
	struct watch signals;
	struct config conf;
	struct topo_graph *topo;
	struct pool *pools;
	struct pagemap *pagemaps;
	struct session *sessions;
	struct allocation *dying; /* freed while copies were in flight */
	struct engine *engine;
	struct peers *peers;
	uint64_t next_session_id, next_pagemap_id, next_alloc_id;
	struct watch *retired;
	struct uid_usage *uids; /* uid.c */
	unsigned refused_sessions; /* connections being told they are over a limit */
	uint64_t accept_resume_at; /* ms: accept() failed for want of fds; 0 */
	uint64_t recover_deadline; /* ms: orphans unclaimed then are freed; 0 */
	uint64_t limits_hit;    /* requests refused by a per-uid limit */
	uint64_t evacuated_bytes, lost_bytes; /* chunks of revoked device pools */
	struct pm_stats_reply stats;
	struct xfer_stats xfer[XFER_ENGINES]; /* per copy engine (xfer.c) */
	bool running;
	bool owns_path; /* we made the socket file (not systemd): unlinked at stop */
};

/* ---- daemon.c: the broker's life ---- */
/* Everything up to serving: topology, pools, socket (b->conf set), loop,
 * engine, peers; SIGINT/SIGTERM end the loop when signals. 0 or -errno. */
int broker_start(struct broker *b, bool signals);
/* One turn of the loop: waits up to timeout_ms (-1: for ever) for events
 * and handles them. Events handled, or -errno. */
int broker_dispatch(struct broker *b, int timeout_ms);
/* Stops serving: device data home, then everything freed. */
void broker_stop(struct broker *b);
/* Makes dir (mode) or checks it: a real directory, ours, and with mode
 * (repair: set it) or else writable by nobody else. 0, -EPERM or -errno. */
int broker_dir_ours(const char *dir, mode_t mode, bool repair);

/* The broker's own uid may administer it, as may root. */
bool broker_is_admin(const struct ucred *cred);
#endif
