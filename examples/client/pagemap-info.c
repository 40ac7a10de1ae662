/* SPDX-License-Identifier: MIT */
/*
 * A libpagemap client in a page: open a pagemap of each device named on the
 * command line (default node0) and print what the broker says about it.
 *
 *   cc pagemap-info.c $(pkg-config --cflags --libs libpagemap)
 *   ./a.out node0 0000:03:00.0
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pagemap.h>

static const char *kind_name(uint32_t kind)
{
	static const char *const names[] = { "?", "host-numa", "pci-bar", "rdma-remote", "gpu",
					     "emulated" };

	return kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

int main(int argc, char **argv)
{
	const char *def[] = { "node0" };
	const char *const *devs = argc > 1 ? (const char *const *)argv + 1 : def;
	int n = argc > 1 ? argc - 1 : 1, status = 0;
	struct pm_client *c;
	int r = pm_connect(NULL, &c);

	if (r < 0) {
		fprintf(stderr, "pagemap-info: no broker: %s\n", strerror(-r));
		return 1;
	}
	for (int i = 0; i < n; i++) {
		struct pagemap_info info;
		int fd = pagemap_open(c, devs[i], NULL, 0);

		if (fd < 0) {
			fprintf(stderr, "pagemap-info: %s: %s\n", devs[i], strerror(-fd));
			status = 1;
			continue;
		}
		r = pagemap_query(fd, &info);
		if (r == 0)
			printf("%s: pagemap %llu, %s%s%s, %s, NUMA node %d, %llu MiB, %u-bit, refs %u\n",
			       devs[i], (unsigned long long)info.id, info.device,
			       info.region[0] ? "/" : "", info.region, kind_name(info.kind),
			       info.numa_node, (unsigned long long)(info.capacity >> 20),
			       info.addr_bits, info.refs);
		else
			fprintf(stderr, "pagemap-info: %s: query: %s\n", devs[i], strerror(-r));
		/* The fd is the reference: closing it lets the pagemap linger, then go. */
		close(fd);
	}
	pm_disconnect(c);
	return status;
}
