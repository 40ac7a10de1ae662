/* SPDX-License-Identifier: MIT */
/*
 * Integration-test helpers: a real pagemapd on a temporary socket, the admin
 * requests pmctl makes, raw protocol sockets, and fd counting (ours and the
 * broker's) to catch leaks.
 */
#ifndef PAGEMAP_IT_BROKER_H
#define PAGEMAP_IT_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h" /* struct pm_client, pm_client_call: admin requests */
#include "cu_run.h"
#include "pagemap.h"
#include "proto.h"

/* The emulated machine every test broker serves, and pools it has. */
#define IT_TOPOLOGY "examples/topologies/qemu-pcie.json"
#define IT_EMU0 "0000:03:00.0" /* ivshmem, emulated pool "mem" */
#define IT_EMU1 "0000:04:00.0"
#define IT_EMU_CAPACITY (64ull << 20) /* their largest prefetchable BAR */
#define IT_NODE_CAPACITY0 1055469568ull

struct it_broker {
	pid_t pid; /* 0 when not running */
	char dir[128]; /* mkdtemp: socket, log, config, whatever the test puts there */
	char sock[108];
	char log[160];
	int self_fds;      /* our fd count when the broker started */
	unsigned failures; /* CUnit failures then: more at stop shows the broker's log */
};

struct it_opts {
	int linger_ms;      /* --linger-ms */
	bool no_topology;   /* default: --topology IT_TOPOLOGY (an emulated machine) */
	const char *topology; /* another topology file, relative to PAGEMAP_SOURCE_ROOT;
			       * NULL: IT_TOPOLOGY */
	const char *config; /* JSON text: written to DIR/config.json and passed as --config;
			     * NULL: a config that turns PSI off (the host's pressure
			     * must not reclaim the tests' lingering pagemaps) */
	bool verbose;       /* -v */
};

/* Makes the temporary directory (call before writing files into it). 0 or -errno. */
int it_broker_init(struct it_broker *b);
/* DIR/name, in one of a few rotating static buffers. */
const char *it_path(const struct it_broker *b, const char *name);
/* Starts pagemapd (after it_broker_init) and waits until its
 * socket accepts and one round trip answers. 0 or -errno. */
int it_broker_start(struct it_broker *b, const struct it_opts *o);
/* it_broker_init + it_broker_start with only a linger; asserts success. */
bool it_broker_up(struct it_broker *b, int linger_ms);
/* SIGTERM, waitpid; asserts that the broker exited 0 and that this process
 * has as many fds open as when the broker started. Removes the directory. */
void it_broker_stop(struct it_broker *b);
/* Lets other uids reach the socket (root tests that drop privileges). */
int it_broker_open_to_all(const struct it_broker *b);
/* Whether the broker's log has a line containing every one of the strings
 * (NULL-terminated list). */
bool it_log_has(const struct it_broker *b, ...) __attribute__((sentinel));

/* Writes a file atomically (temp + rename): the broker never reads half. */
int it_write_file(const char *path, const char *text);

/* cp -a from to (a captured sysfs tree the test may change). 0 or -1. */
int it_copy_tree(const char *from, const char *to);

/* A libpagemap client of b, or NULL. */
struct pm_client *it_connect(const struct it_broker *b);

/* A connection to b, the pagemap of device dev, and size bytes of managed
 * memory in chunks of 1 << shift (0: the default) filled with seed's
 * pattern, still in system memory. Asserts each step. */
struct it_fixture {
	struct pm_client *c;
	int pm;
	uint8_t *p;
};
void it_fixture_up(struct it_fixture *f, const struct it_broker *b, const char *dev, size_t size,
		   unsigned shift, uint64_t seed);
/* Frees the memory, closes the pagemap and the connection. */
void it_fixture_down(struct it_fixture *f);

/* The counters of the copy engine named name (PM_OP_ENGINES); asserts it
 * is listed. */
struct pm_engine_info it_engine(struct pm_client *c, const char *name);

/* Admin requests, as pmctl makes them. */
int it_stats(struct pm_client *c, struct pm_stats_reply *st);
int it_list(struct pm_client *c, struct pm_info *out, unsigned max); /* count or -errno */
/* 1 and *out when the pagemap is listed, 0 when it is not, or -errno. */
int it_lookup(struct pm_client *c, uint64_t id, struct pm_info *out);
/* The listed state of pagemap id (PM_STATE_*), 0 when not listed, or -errno. */
int it_state(struct pm_client *c, uint64_t id);
int it_clients(struct pm_client *c, struct pm_client_info *out, unsigned max);
/* The client_info of the session of pid: 1 found, 0 not, or -errno. */
int it_client_of_pid(struct pm_client *c, pid_t pid, struct pm_client_info *out);
int it_revoke(struct pm_client *c, const char *device);
/* The same with PM_REVOKE_FORCE (host NUMA nodes need it). */
int it_revoke_force(struct pm_client *c, const char *device);
/* PM_OP_RESTORE: the number of pools served again, or -errno. */
int it_restore(struct pm_client *c, const char *device);
/* The state (PM_POOL_*) pm_list_pools gives device's pool in region (NULL:
 * its first), 0 when not listed, or -errno. */
int it_pool_state(struct pm_client *c, const char *device, const char *region);
/* pagemap_open's error, or 0 (the fd closed) when it unexpectedly succeeded. */
int it_open_err(struct pm_client *c, const char *device, const char *region, unsigned flags);
/* The id pagemap_query reports for fd, 0 on error. */
uint64_t it_id(int pagemap_fd);

uint64_t it_now_ms(void);
uint64_t it_now_us(void);
void it_sleep_ms(unsigned ms);

/* Re-evaluates cond every 5 ms until it holds or ms milliseconds pass; check
 * cond again (with an assertion) afterwards. No fixed sleeps. */
#define IT_WAIT_UNTIL(cond, ms)                                                       \
	for (uint64_t it_deadline_ = it_now_ms() + (ms); !(cond) && it_now_ms() < it_deadline_; \
	     it_sleep_ms(5))

/* Open fds of a process (0: this one), or -errno. */
int it_count_fds(pid_t pid);
/* Whether one of pid's fds links to a name containing s ("memfd:..."). */
bool it_has_fd_named(pid_t pid, const char *s);
/* Waits until the broker has exactly n fds; returns its last count. */
int it_broker_fds_settle(const struct it_broker *b, int n, unsigned ms);

/* ---- managed memory: seeded data and where it lives ---- */
/*
 * Fills [base + off, base + off + len) with a pattern that depends on seed
 * and on each 8-byte word's offset from base, so data that comes back from
 * the wrong chunk, or stale, does not match. off and len: multiples of 8.
 */
void it_pattern_fill(void *base, size_t off, size_t len, uint64_t seed);
/* The offset from base of the first byte in [off, off + len) that differs
 * from the pattern, or SIZE_MAX when all match. Reads every byte, also after
 * a difference (a CPU access: chunks in device pools fault back). */
size_t it_pattern_check(const void *base, size_t off, size_t len, uint64_t seed);
/* The pattern's byte at offset off from base. */
uint8_t it_pattern_byte(size_t off, uint64_t seed);
/* The next value of a splitmix64 generator (tests' own random choices). */
uint64_t it_rand(uint64_t *state);
/* The id of the pagemap behind fd (pagemap_query), 0 when it is none. */
uint64_t it_pagemap_id(int fd);
/* pagemap_query(fd).used, or UINT64_MAX on error. */
uint64_t it_used(int pagemap_fd);
/* How many chunks of [addr, addr + len) pm_query places in pagemap id (0:
 * system memory), or -errno. Thread-safe. */
int it_chunks_in(struct pm_client *c, const void *addr, size_t len, uint64_t id);
/* Whether fd polls POLLIN (or POLLHUP) within timeout_ms. */
bool it_readable(int fd, int timeout_ms);

/* ---- raw protocol, no libpagemap ---- */
/* A connected control socket (no HELLO yet), or -errno. */
int it_raw_connect(const struct it_broker *b);
/* Sends hdr exactly as given (no field filled in) and payload in one
 * sendmsg, with fds attached when nfds > 0. 0 or -errno. */
int it_raw_send(int sock, const struct pm_hdr *hdr, const void *payload, size_t len,
		const int *fds, unsigned nfds);
/* A well-formed request. */
int it_raw_request(int sock, uint16_t version, uint16_t opcode, const void *payload, size_t len,
		   uint64_t request_id);
/* Waits up to timeout_ms for one message. 0, -ETIMEDOUT, -ECONNRESET (EOF)... */
int it_raw_recv(int sock, struct pm_msg *m, int timeout_ms);
/* A request and its reply: 0 with *status (the reply's), or -errno for the
 * transport (-ETIMEDOUT, -ECONNRESET). A reply fd, if any, goes to *fd or is closed. */
int it_raw_call(int sock, uint16_t version, uint16_t opcode, const void *payload, size_t len,
		int *status, int *fd);
/* HELLO for version 1: the reply's status, or a transport -errno. */
int it_raw_hello(int sock);
/*
 * Registers a fresh sealed memfd of size bytes in chunks of chunk on sock
 * (after HELLO): 0 with the allocation's id in *id and the memfd, still
 * ours, in *memfd (NULL: closed), or -errno / the reply's status.
 */
int it_raw_alloc(int sock, uint64_t size, uint64_t chunk, uint64_t *id, int *memfd);
/* Whether the peer closed sock (EOF or reset) within timeout_ms; data before
 * the EOF is read and dropped. */
bool it_raw_closed(int sock, int timeout_ms);
/* Whether every copy of the write end of a pipe is closed within timeout_ms,
 * read through its read end (a leak of a passed fd keeps it open). */
bool it_pipe_widowed(int read_end, int timeout_ms);

/* ---- another uid ---- */
/*
 * Runs fn(ctx, res, n) in a child under uid and gid (root only), which fills
 * n ints of results; they come back in res. The child's exit status (0 when
 * fn ran), or -1 when it could not be run or did not report.
 */
int it_as_uid(uid_t uid, int (*fn)(void *ctx, int *res, unsigned n), void *ctx, int *res,
	      unsigned n);

/* ---- children: one byte at a time over pipes ---- */
int it_post(int fd, char c);
/* The next byte, or -1 on EOF/timeout. */
int it_wait_byte(int fd, int timeout_ms);
/* waitpid with a deadline: the exit status, 128+signal, or -1 (SIGKILLed then). */
int it_reap(pid_t pid, int timeout_ms);
#endif
