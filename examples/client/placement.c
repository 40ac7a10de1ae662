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

static const char *device = "node0";

static int failed(const char *what, int err)
{
	fprintf(stderr, "placement: %s (%s): %s\n", what, device, strerror(-err));
	return 1;
}

/*
 * A pagemap id as a person reads it. pm_query_range speaks in ids; the one
 * pagemap this program opened has a name (its pagemap_query), system memory
 * is id 0 (or PM_PAGEMAP_SYSTEM where a preference is meant), and any other
 * id is a pool someone else placed the data in: pmctl pagemaps names it.
 */
static const char *where(uint64_t id, const struct pagemap_info *mine, char *buf, size_t len)
{
	if (id == 0 || id == PM_PAGEMAP_SYSTEM)
		snprintf(buf, len, "system memory");
	else if (id == mine->id)
		snprintf(buf, len, "%s%s%s (pagemap %llu)", mine->device, mine->region[0] ? "/" : "",
			 mine->region, (unsigned long long)id);
	else
		snprintf(buf, len, "pagemap %llu (see pmctl pagemaps)", (unsigned long long)id);
	return buf;
}

int main(int argc, char **argv)
{
	struct pm_range runs[16];
	struct pagemap_info info;
	char at[128], want[128];
	struct pm_client *c;
	uint32_t *p;
	int fd, n, r, status = 1;

	if (argc > 1)
		device = argv[1];
	if ((r = pm_connect(NULL, &c)) < 0) {
		fprintf(stderr, "placement: no broker: %s (is pagemapd running? $PAGEMAP_SOCKET)\n",
			strerror(-r));
		return 1;
	}
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
	if ((r = pagemap_query(fd, &info)) < 0)
		failed("pagemap_query", r);
	else if ((r = pm_madvise(c, p, SIZE, PM_ADV_PREFERRED_LOCATION, fd)) < 0)
		failed("pm_madvise", r);
	else if ((r = pm_migrate(c, p, SIZE, PM_FD_PREFERRED, 0)) < 0)
		failed("pm_migrate", r);
	else if ((n = pm_query_range(c, p, SIZE, runs, 16)) < 0)
		failed("pm_query_range", n);
	else
		status = 0;
	for (int i = 0; status == 0 && i < n && i < 16; i++)
		printf("%p +%zu: resident in %s, requested %s\n", runs[i].addr, runs[i].len,
		       where(runs[i].resident, &info, at, sizeof(at)),
		       runs[i].requested ? where(runs[i].requested, &info, want, sizeof(want))
					 : "nowhere in particular");
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
