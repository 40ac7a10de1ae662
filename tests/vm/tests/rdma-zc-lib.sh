# SPDX-License-Identifier: MIT
# shellcheck shell=bash disable=SC2154 # b (PM_BUILD_DIR) and run come from the test
# Sourced by the rdma-*.sh tests (no vm-profile line: not a test itself).
# Zero-copy RDMA checks: the verbs engine's counters from pmctl, and
# rdma_numa_check, built in the guest from the source below against the
# libpagemap in PM_BUILD_DIR:
#
#   rdma_numa_check REMOTE   for 2 MiB and 64 KiB chunks, 16 MiB of seeded
#       data: host node0 -> REMOTE -> system memory (pm_migrate) -> host
#       node1, new data, -> REMOTE -> system memory by CPU faults -> node0.
#       After each host move every page's node is checked with
#       move_pages(2): pages the broker still held (mapped, or pinned by an
#       RDMA registration) would stay where they were. After each return the
#       data is checked, so a registration that outlived the pages it pinned
#       (the chunk punched out and refaulted) would show as the old data.
#
# Prints "ok ..." per step and "FAIL: ..." per failure; exits 1 on any.

# verbs_counter SOCKET FIELD: the verbs engine's FIELD (bytes, bytes_zero_copy,
# bytes_staged, copies, failed) from pmctl stats.
verbs_counter() {
	"$b/tools/pmctl" --socket "$1" --json stats | jq -r ".engines.verbs.$2"
}

# link_pinned SOCKET: bytes pmctl peers says the first link holds registered.
link_pinned() {
	"$b/tools/pmctl" --socket "$1" --json peers | jq -r '.peers[0].pinned_bytes'
}

# numa_check SOCKET REMOTE WANT_ZERO_COPY WANT_STAGED: rdma_numa_check REMOTE
# through the broker at SOCKET (4 x 16 MiB each way), and the verbs engine's
# zero-copy and staged bytes for it: WANT_* a number, or "any". Sets numa_zc
# and numa_st. Needs $run/rdma_numa_check (build_numa_check "$run").
numa_check() {
	local zc0 st0 zc1 st1
	zc0=$(verbs_counter "$1" bytes_zero_copy)
	st0=$(verbs_counter "$1" bytes_staged)
	PAGEMAP_SOCKET=$1 "$run/rdma_numa_check" "$2" >"$run/numa.out" ||
		{ cat "$run/numa.out"; fail "rdma_numa_check on $1 failed"; }
	cat "$run/numa.out"
	zc1=$(verbs_counter "$1" bytes_zero_copy)
	st1=$(verbs_counter "$1" bytes_staged)
	numa_zc=$((zc1 - zc0)) numa_st=$((st1 - st0))
	echo "rdma_numa_check: $numa_zc bytes zero copy, $numa_st staged"
	[[ $3 == any ]] || ((numa_zc == $3)) || fail "zero-copy bytes $numa_zc, want $3"
	[[ $4 == any ]] || ((numa_st == $4)) || fail "staged bytes $numa_st, want $4"
	((numa_zc + numa_st == 134217728)) || fail "rdma_numa_check moved $((numa_zc + numa_st)) bytes"
}

# build_numa_check DIR: compiles rdma_numa_check into DIR.
build_numa_check() {
	cat >"$1/rdma_numa_check.c" <<'EOF'
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check_pattern.h"
#include "pagemap.h"

#define SIZE (16u << 20)

static int failures;
#define FAIL(...) (printf("FAIL: " __VA_ARGS__), putchar('\n'), failures++)

/* Pages of [a, a + SIZE) not on node (move_pages with no target: where each is). */
static size_t off_node(void *a, int node, int *first)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = SIZE / page, wrong = 0;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));

	for (size_t i = 0; i < n; i++)
		pages[i] = (char *)a + i * page;
	if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) < 0) {
		*first = -errno;
		wrong = n;
	}
	for (size_t i = 0; wrong < n && i < n; i++)
		if (status[i] != node && !wrong++)
			*first = status[i];
	free(pages);
	free(status);
	return wrong;
}

static int all_in(struct pm_client *c, void *a, size_t chunk, uint64_t id)
{
	uint64_t ids[256];
	int n = pm_query(c, a, SIZE, ids, 256), k = 0;

	for (int i = 0; i < n && i < 256; i++)
		k += ids[i] == id;
	return n == (int)(SIZE / chunk) && k == n;
}

static void step(struct pm_client *c, void *a, size_t chunk, int fd, uint64_t id,
		 const char *what, int node)
{
	int r = pm_migrate(c, a, SIZE, fd, 0), first = 0;
	size_t wrong;

	if (r < 0) {
		FAIL("%zu KiB chunks -> %s: %s", chunk >> 10, what, strerror(-r));
		return;
	}
	if (!all_in(c, a, chunk, id)) {
		FAIL("%zu KiB chunks -> %s: pm_query disagrees", chunk >> 10, what);
		return;
	}
	if (node >= 0 && (wrong = off_node(a, node, &first)))
		FAIL("%zu KiB chunks -> %s: %zu of %u pages not on node %d (one says %d)",
		     chunk >> 10, what, wrong, SIZE / 4096, node, first);
	else
		printf("ok %zu KiB chunks -> %s%s\n", chunk >> 10, what,
		       node >= 0 ? ": every page there" : "");
}

static void intact(const void *a, size_t chunk, uint64_t seed, const char *when)
{
	size_t bad = check_bad_words(a, 0, SIZE / 8, seed);

	if (bad)
		FAIL("%zu KiB chunks %s: %zu words differ", chunk >> 10, when, bad);
	else
		printf("ok %zu KiB chunks %s: data intact\n", chunk >> 10, when);
}

int main(int argc, char **argv)
{
	struct pagemap_info ri, ni[2];
	struct pm_client *c;
	int rfd, nfd[2], r;

	if (argc != 2) {
		fprintf(stderr, "usage: rdma_numa_check REMOTE\n");
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0) {
		fprintf(stderr, "rdma_numa_check: %s\n", strerror(-r));
		return 1;
	}
	rfd = pagemap_open(c, argv[1], NULL, 0);
	nfd[0] = pagemap_open(c, "node0", NULL, 0);
	nfd[1] = pagemap_open(c, "node1", NULL, 0);
	if (rfd < 0 || nfd[0] < 0 || nfd[1] < 0 || pagemap_query(rfd, &ri) < 0 ||
	    pagemap_query(nfd[0], &ni[0]) < 0 || pagemap_query(nfd[1], &ni[1]) < 0) {
		fprintf(stderr, "rdma_numa_check: cannot open %s, node0 and node1\n", argv[1]);
		return 1;
	}
	for (unsigned shift = 21; shift >= 16; shift -= 5) {
		size_t chunk = (size_t)1 << shift;
		uint64_t seed = shift * 1000;
		void *a;

		if (pm_alloc(c, SIZE, PM_ALLOC_CHUNK_SHIFT(shift), &a) < 0) {
			FAIL("pm_alloc");
			continue;
		}
		check_fill(a, SIZE, seed);
		step(c, a, chunk, nfd[0], ni[0].id, "node0", 0);
		step(c, a, chunk, rfd, ri.id, argv[1], -1);
		step(c, a, chunk, PM_FD_SYSTEM, 0, "system memory", -1);
		intact(a, chunk, seed, "back by pm_migrate");
		step(c, a, chunk, nfd[1], ni[1].id, "node1", 1);
		intact(a, chunk, seed, "on node1");
		/* New data: the next trip out must carry it, not what a stale
		 * registration of the first trip's pages would still hold. */
		check_fill(a, SIZE, ++seed);
		step(c, a, chunk, rfd, ri.id, argv[1], -1);
		intact(a, chunk, seed, "back by CPU faults"); /* touching brings it home */
		if (!all_in(c, a, chunk, 0))
			FAIL("%zu KiB chunks: not all home after the faults", chunk >> 10);
		step(c, a, chunk, nfd[0], ni[0].id, "node0", 0);
		intact(a, chunk, seed, "on node0");
		pm_free(c, a);
	}
	close(rfd);
	close(nfd[0]);
	close(nfd[1]);
	pm_disconnect(c);
	return failures ? 1 : 0;
}
EOF
	cc -O2 -Wall -I"$PM_SRCDIR/libpagemap/include" -I"$PM_SRCDIR/tests" \
		-o "$1/rdma_numa_check" "$1/rdma_numa_check.c" \
		-L"$b/libpagemap" -Wl,-rpath,"$b/libpagemap" -lpagemap
}
