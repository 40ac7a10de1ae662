/* SPDX-License-Identifier: MIT */
/*
 * Placement in a page: allocate managed memory, say where it belongs, move
 * it there, ask where it is, read it back with plain loads.
 *
 *   cc placement.c $(pkg-config --cflags --libs libpagemap)
 *   ./a.out 0000:03:00.0        (a device as pmtopo names it; default node0)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pagemap.h>

#define SIZE (8u << 20)

static int failed(const char *what, int err)
{
	fprintf(stderr, "placement: %s: %s\n", what, strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	const char *device = argc > 1 ? argv[1] : "node0";
	struct pm_range runs[16];
	struct pm_client *c;
	uint32_t *p;
	int fd, n, r, status = 1;

	if ((r = pm_connect(NULL, &c)) < 0)
		return failed("no broker", r);
	if ((r = pm_alloc(c, SIZE, 0, (void **)&p)) < 0) {
		failed("pm_alloc", r);
		goto out_disconnect;
	}
	for (uint32_t i = 0; i < SIZE / 4; i++)
		p[i] = i;
	if ((fd = pagemap_open(c, device, NULL, 0)) < 0) {
		fprintf(stderr, "placement: cannot open %s: %s\n", device, strerror(-fd));
		goto out_free;
	}
	/* Advice records where the chunks belong; PM_FD_PREFERRED moves them there. */
	if ((r = pm_madvise(c, p, SIZE, PM_ADV_PREFERRED_LOCATION, fd)) < 0)
		failed("pm_madvise", r);
	else if ((r = pm_migrate(c, p, SIZE, PM_FD_PREFERRED, 0)) < 0)
		failed("pm_migrate", r);
	else if ((n = pm_query_range(c, p, SIZE, runs, 16)) < 0)
		failed("pm_query_range", n);
	else
		status = 0;
	for (int i = 0; status == 0 && i < n && i < 16; i++)
		printf("%p +%zu: resident in pagemap %llu (0: system memory), requested %llu\n",
		       runs[i].addr, runs[i].len, (unsigned long long)runs[i].resident,
		       (unsigned long long)runs[i].requested);
	/* Plain loads: a chunk in a device pool comes back on first touch. */
	for (uint32_t i = 0; status == 0 && i < SIZE / 4; i++)
		if (p[i] != i) {
			fprintf(stderr, "placement: word %u reads %u\n", i, p[i]);
			status = 1;
		}
	if (status == 0)
		printf("%s: %u MiB there and back, intact\n", device, SIZE >> 20);
	close(fd);
out_free:
	pm_free(c, p);
out_disconnect:
	pm_disconnect(c);
	return status;
}
