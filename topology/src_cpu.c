/* SPDX-License-Identifier: MIT */
/* CPU vendor and family (the kernel's p2pdma allows all of AMD Zen) and host name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "source.h"
#include "sysfs_util.h"

static int discover_cpu(struct topo_ctx *ctx, struct topo_graph *g)
{
	char path[4096], line[512];
	FILE *f;

	if (sysfs_path(path, sizeof(path), ctx->root, "/proc/sys/kernel/hostname") == 0 &&
	    sysfs_read_str(path, g->hostname, sizeof(g->hostname)) < 0 && ctx->live)
		gethostname(g->hostname, sizeof(g->hostname) - 1);
	if (sysfs_path(path, sizeof(path), ctx->root, "/proc/cpuinfo"))
		return 0;
	f = fopen(path, "re");
	if (!f)
		return 0; /* captures without /proc: CPU rules then stay unknown */
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		const char *val;

		if (!colon)
			continue;
		val = colon + 1;
		while (*val == ' ' || *val == '\t')
			val++;
		if (!strncmp(line, "vendor_id", 9) && !g->cpu.vendor[0])
			sscanf(val, "%15s", g->cpu.vendor);
		else if (!strncmp(line, "cpu family", 10) && g->cpu.family < 0)
			g->cpu.family = atoi(val);
		else if (!strncmp(line, "model\t", 6) && g->cpu.model < 0)
			g->cpu.model = atoi(val);
		else if (line[0] == '\n' && g->cpu.vendor[0])
			break; /* first processor is enough: the kernel looks at CPU 0 */
	}
	fclose(f);
	return 0;
}

const struct topo_source topo_source_cpu = { "cpu", discover_cpu };
