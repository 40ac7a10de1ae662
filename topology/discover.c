/* SPDX-License-Identifier: MIT */
/* Runs every discovery source against the live machine or a captured tree. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "source.h"
#include "sysfs_util.h"

/* Order matters: PCI needs NUMA nodes (one-node machines), osdevs need PCI
 * functions, RDMA needs netdevs, KFD and NVML need PCI functions. */
static const struct topo_source *const sources[] = {
	&topo_source_cpu, &topo_source_numa, &topo_source_pci,
	&topo_source_osdev, &topo_source_rdma, &topo_source_kfd, &topo_source_nvml,
};

int topo_ctx_error(struct topo_ctx *ctx, int err, const char *fmt, ...)
{
	va_list ap;

	if (ctx->errbuf && ctx->errlen && !ctx->errbuf[0]) {
		va_start(ap, fmt);
		vsnprintf(ctx->errbuf, ctx->errlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

int topo_discover(const struct topo_discover_opts *o, struct topo_graph **out)
{
	struct topo_ctx ctx = { .root = "", .live = true };
	char root[PATH_MAX], probe[PATH_MAX + 32];
	struct topo_graph *g;
	struct stat st;
	int r;

	if (!o || !out)
		return -EINVAL;
	ctx.no_verbs = o->no_verbs;
	ctx.errbuf = o->errbuf;
	ctx.errlen = o->errlen;
	if (ctx.errbuf && ctx.errlen)
		ctx.errbuf[0] = '\0';
	if (o->sysfs_root && strcmp(o->sysfs_root, "/")) {
		size_t n = strlen(o->sysfs_root);

		if (n == 0 || n >= sizeof(root))
			return topo_ctx_error(&ctx, -EINVAL, "bad sysfs root '%s'", o->sysfs_root);
		memcpy(root, o->sysfs_root, n + 1);
		while (n > 1 && root[n - 1] == '/')
			root[--n] = '\0';
		snprintf(probe, sizeof(probe), "%s/sys/bus/pci/devices", root);
		if (stat(probe, &st) || !S_ISDIR(st.st_mode))
			return topo_ctx_error(&ctx, -ENOENT,
					      "%s: not a captured sysfs tree (no sys/bus/pci/devices)",
					      o->sysfs_root);
		ctx.root = root;
		ctx.live = false;
	}
	g = topo_graph_new();
	if (!g)
		return -ENOMEM;
	if (ctx.live)
		snprintf(g->source, sizeof(g->source), "live");
	else
		snprintf(g->source, sizeof(g->source), "sysfs:%s", ctx.root);
	for (size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++) {
		r = sources[i]->discover(&ctx, g);
		if (r < 0) {
			topo_ctx_error(&ctx, r, "%s discovery failed: %s", sources[i]->name,
				       strerror(-r));
			topo_graph_free(g);
			return r;
		}
	}
	r = topo_graph_finalize(g);
	if (r < 0) {
		topo_ctx_error(&ctx, r, "inconsistent PCI tree");
		topo_graph_free(g);
		return r;
	}
	*out = g;
	return 0;
}
