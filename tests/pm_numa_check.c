/* SPDX-License-Identifier: MIT */
/*
 * pm_numa_check NODE_A NODE_B: through the broker ($PAGEMAP_SOCKET), allocate
 * 16 MiB of managed memory, fill it, migrate it to NODE_A's then NODE_B's
 * pagemap, and after each move check with move_pages(2) that every page is
 * on that node, that pm_query names that pagemap for every chunk, and that
 * the data is intact. For the real-kernel test on a two-node guest.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pagemap.h"

#define SIZE (16u << 20)

static int check(struct pm_client *c, unsigned char *p, int node, uint64_t id)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = SIZE / page, wrong = 0;
	void **pages = calloc(n, sizeof(*pages));
	int *status = calloc(n, sizeof(*status));
	uint64_t ids[8];
	int r = 0;

	if (!pages || !status)
		return 1;
	for (size_t i = 0; i < n; i++)
		pages[i] = p + i * page;
	if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) < 0) {
		perror("move_pages");
		r = 1;
	}
	for (size_t i = 0; i < n; i++)
		wrong += status[i] != node;
	if (wrong) {
		fprintf(stderr, "%zu of %zu pages not on node %d (first status %d)\n", wrong, n, node,
			status[0]);
		r = 1;
	}
	if (pm_query(c, p, SIZE, ids, 8) != 8) {
		fprintf(stderr, "pm_query failed\n");
		r = 1;
	}
	for (int i = 0; i < 8; i++)
		if (ids[i] != id) {
			fprintf(stderr, "chunk %d in pagemap %llu, want %llu\n", i,
				(unsigned long long)ids[i], (unsigned long long)id);
			r = 1;
		}
	for (size_t i = 0; i < SIZE; i++)
		if (p[i] != (unsigned char)(i * 7 + 3)) {
			fprintf(stderr, "data changed at %zu\n", i);
			r = 1;
			break;
		}
	printf("%s: %zu pages on node %d, 8 chunks in pagemap %llu, data intact\n",
	       r ? "FAIL" : "ok", n - wrong, node, (unsigned long long)id);
	free(pages);
	free(status);
	return r;
}

int main(int argc, char **argv)
{
	struct pm_client *c;
	unsigned char *p;
	void *a;
	int r, fails = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: pm_numa_check NODE_A NODE_B\n");
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0 || (r = pm_alloc(c, SIZE, 0, &a)) < 0) {
		fprintf(stderr, "pm_numa_check: %s\n", strerror(-r));
		return 1;
	}
	p = a;
	for (size_t i = 0; i < SIZE; i++)
		p[i] = (unsigned char)(i * 7 + 3);
	for (int k = 1; k <= 2; k++) {
		char name[32];
		struct pagemap_info info;
		int node = atoi(argv[k]), fd;

		snprintf(name, sizeof(name), "node%d", node);
		fd = pagemap_open(c, name, NULL, 0);
		if (fd < 0 || pagemap_query(fd, &info) < 0) {
			fprintf(stderr, "open %s: %s\n", name, strerror(-fd));
			return 1;
		}
		r = pm_migrate(c, a, SIZE, fd, 0);
		if (r < 0) {
			fprintf(stderr, "pm_migrate to %s: %s\n", name, strerror(-r));
			return 1;
		}
		fails += check(c, p, node, info.id);
		close(fd); /* the chunks keep the pagemap */
	}
	pm_free(c, a);
	pm_disconnect(c);
	return fails ? 1 : 0;
}
