/* SPDX-License-Identifier: MIT */
/*
 * PCI functions through libpci (ids, class, names, capabilities), with
 * sysfs for what libpci does not give: the upstream chain and host bridge
 * (the device's sysfs path), driver, IOMMU group, link speeds, CPU affinity,
 * SR-IOV parent; and for what libpci cannot read without leaking when it
 * fails: the list of functions and their BARs.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pci/pci.h>

#include "cpuset.h"
#include "pci_names.h"
#include "source.h"
#include "sysfs_util.h"

#define MAX_CHAIN 16

/* Links resolved once every function is known: ancestors from the sysfs path. */
struct pending_link {
	char chain[MAX_CHAIN][TOPO_BDF_MAX];
	int nchain;
	char physfn[TOPO_BDF_MAX];
};

/* libpci's default error handler exit()s and its callers assume it never
 * returns: ours records the message and jumps back to discover_pci(). What
 * the failing libpci function had open stays open, so libpci is only asked
 * for what it reads without holding anything across an error: a function's
 * attributes (sysfs_get_value() closes before it reports) and config space
 * (pci_access's cached fd, closed by pci_cleanup()). */
static _Thread_local jmp_buf *pci_jmp;
static _Thread_local char pci_errmsg[256];

__attribute__((format(printf, 1, 2), noreturn)) static void pci_error(char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	vsnprintf(pci_errmsg, sizeof(pci_errmsg), msg, ap);
	va_end(ap);
	longjmp(*pci_jmp, 1);
}

__attribute__((format(printf, 1, 2))) static void pci_quiet(char *msg, ...)
{
	(void)msg;
}

#define IORESOURCE_MEM 0x00000200
#define IORESOURCE_PREFETCH 0x00002000
#define IORESOURCE_MEM_64 0x00100000

/*
 * BARs 0-5 from sysfs `resource`: "start end flags" in hex, a line each.
 * Read here, not by libpci: its reader reports a malformed line with the
 * file still open, and our handler's longjmp would leak the FILE. The same
 * sizes as libpci's (end - start + 1, 0 when end <= start); a malformed
 * line ends the list.
 */
static void read_bars(struct topo_ctx *ctx, struct topo_pci *p)
{
	char path[4096], line[256];
	FILE *f;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/resource", p->bdf);
	f = fopen(path, "re");
	if (!f)
		return;
	for (int i = 0; i < 6 && p->nbars < TOPO_MAX_BARS && fgets(line, sizeof(line), f); i++) {
		unsigned long long start, end, fl, size;

		if (sscanf(line, "%llx %llx %llx", &start, &end, &fl) != 3)
			break;
		size = end > start ? end - start + 1 : 0;
		if (!size || !(fl & IORESOURCE_MEM))
			continue;
		p->bars[p->nbars++] = (struct topo_bar){
			.index = (uint8_t)i,
			.size = size,
			.prefetch = !!(fl & IORESOURCE_PREFETCH),
			.is64 = !!(fl & IORESOURCE_MEM_64),
		};
	}
	fclose(f);
}

/*
 * How much config space can be read: 64 bytes unprivileged (and in hwloc
 * captures), 256 for conventional PCI, 4096 with PCIe extended space. Probed
 * with two one-byte reads: under a hypervisor every config dword is a trap,
 * and reading all 4096 bytes of a function costs milliseconds.
 */
static int config_len(struct topo_ctx *ctx, const char *bdf)
{
	char path[4096];
	unsigned char b;
	int fd, len = 64;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, &b, 1, 0x40) == 1)
		len = pread(fd, &b, 1, 0x100) == 1 ? 4096 : 256;
	close(fd);
	return len;
}

/* Port type and ACS control live past the first 64 bytes of config space. */
static void read_caps(struct topo_ctx *ctx, struct pci_dev *d, struct topo_pci *p)
{
	static const enum topo_port_type exp_types[16] = {
		[PCI_EXP_TYPE_ROOT_PORT] = TOPO_PORT_ROOT,
		[PCI_EXP_TYPE_UPSTREAM] = TOPO_PORT_SWITCH_UP,
		[PCI_EXP_TYPE_DOWNSTREAM] = TOPO_PORT_SWITCH_DOWN,
		[PCI_EXP_TYPE_PCI_BRIDGE] = TOPO_PORT_PCI_BRIDGE,
		[PCI_EXP_TYPE_PCIE_BRIDGE] = TOPO_PORT_PCI_BRIDGE,
	};
	struct pci_cap *exp, *acs;
	int len = config_len(ctx, p->bdf);

	if (len <= 64)
		return;
	pci_fill_info(d, PCI_FILL_CAPS | (len >= 4096 ? PCI_FILL_EXT_CAPS : 0));
	exp = pci_find_cap(d, PCI_CAP_ID_EXP, PCI_CAP_NORMAL);
	if (exp) {
		unsigned type = (pci_read_word(d, exp->addr + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_TYPE) >> 4;

		if (exp_types[type & 15] && topo_pci_kind(p) == TOPO_DEV_BRIDGE) {
			p->port = exp_types[type & 15];
			p->port_from_caps = true;
		}
	}
	if (len >= 4096) {
		acs = pci_find_cap(d, PCI_EXT_CAP_ID_ACS, PCI_CAP_EXTENDED);
		p->acs_ctrl = acs ? pci_read_word(d, acs->addr + PCI_ACS_CTRL) : 0;
	} else if (!exp) {
		p->acs_ctrl = 0; /* conventional PCI: no extended space, no ACS */
	}
}

/*
 * The device's sysfs path, "../../../devices/pci0000:17/0000:17:00.0/0000:18:00.0",
 * names its host bridge (the "pciDDDD:BB" component) and its ancestors, nearest
 * last. All are kept: captures can lack a bridge that the path still names
 * (hwloc then hangs the device below the next bridge up, and so do we).
 */
static int read_chain(struct topo_ctx *ctx, const char *bdf, char *hb, size_t hblen,
		      struct pending_link *pl)
{
	char path[4096], target[4096], *tok, *save = NULL;
	ssize_t n;

	hb[0] = '\0';
	pl->nchain = 0;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s", bdf);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0 && errno == EINVAL) {
		/* A plain directory (some captures): no chain; like hwloc, give
		 * the function a host bridge of its own bus. */
		uint32_t dom;
		uint8_t bus, dev, fn;

		if (!topo_parse_bdf(bdf, false, &dom, &bus, &dev, &fn))
			return -EINVAL;
		snprintf(hb, hblen, "pci%04x:%02x", dom, bus);
		return 0;
	}
	if (n < 0)
		return -errno;
	target[n] = '\0';
	for (tok = strtok_r(target, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		uint32_t dom;
		uint8_t b, dv, f;

		if (!strncmp(tok, "pci", 3) && strchr(tok, ':')) {
			/* A root bus below a device (Intel VMD, some NTBs) starts
			 * a new hierarchy: what came before is not upstream. */
			snprintf(hb, hblen, "%s", tok);
			pl->nchain = 0;
		} else if (topo_parse_bdf(tok, false, &dom, &b, &dv, &f) && strcmp(tok, bdf) &&
			 pl->nchain < MAX_CHAIN)
			snprintf(pl->chain[pl->nchain++], TOPO_BDF_MAX, "%s", tok);
	}
	return hb[0] ? 0 : -ENOENT;
}

static int find_or_add_hostbridge(struct topo_graph *g, const char *name)
{
	struct topo_hostbridge hb = { .numa = -1 };

	for (size_t i = 0; i < g->n_hostbridges; i++)
		if (!strcmp(g->hostbridges[i].name, name))
			return (int)i;
	if (!topo_parse_hostbridge(name, &hb.domain, &hb.bus))
		return -EINVAL;
	snprintf(hb.name, sizeof(hb.name), "%s", name);
	return topo_graph_add_hostbridge(g, &hb);
}

static void read_sysfs_extras(struct topo_ctx *ctx, struct topo_pci *p)
{
	char path[4096], buf[128];
	long v;

	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/driver", p->bdf);
	sysfs_link_basename(path, p->driver, sizeof(p->driver));
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/iommu_group", p->bdf);
	if (sysfs_link_basename(path, buf, sizeof(buf)) == 0)
		p->iommu_group = atoi(buf);
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/numa_node", p->bdf);
	if (sysfs_read_long(path, &v) == 0)
		p->numa = (int)v;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/current_link_speed",
		   p->bdf);
	if (sysfs_read_str(path, buf, sizeof(buf)) > 0)
		p->cur_speed = topo_parse_link_speed(buf);
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/max_link_speed", p->bdf);
	if (sysfs_read_str(path, buf, sizeof(buf)) > 0)
		p->max_speed = topo_parse_link_speed(buf);
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/current_link_width",
		   p->bdf);
	if (sysfs_read_long(path, &v) == 0 && v > 0 && v <= 32)
		p->cur_width = (int)v;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/max_link_width", p->bdf);
	if (sysfs_read_long(path, &v) == 0 && v > 0 && v <= 32)
		p->max_width = (int)v;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/local_cpulist", p->bdf);
	if (sysfs_read_str(path, p->local_cpus, sizeof(p->local_cpus)) < 0) {
		/* Older kernels and some captures have only the mask. */
		char mask[1200];
		struct cpuset cs;

		sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/local_cpus",
			   p->bdf);
		if (sysfs_read_str(path, mask, sizeof(mask)) > 0 && cpuset_parse_mask(mask, &cs) == 0)
			cpuset_format_list(&cs, p->local_cpus, sizeof(p->local_cpus));
	}
}


static void fill_from_libpci(struct topo_ctx *ctx, struct pci_names *names, struct pci_dev *d,
			     struct topo_pci *p)
{
	/* No PCI_FILL_BASES, _SIZES or _IO_FLAGS: read_bars() reads `resource`. */
	pci_fill_info(d, PCI_FILL_IDENT | PCI_FILL_CLASS | PCI_FILL_CLASS_EXT | PCI_FILL_SUBSYS);
	p->domain = (uint32_t)d->domain;
	p->bus = d->bus;
	p->dev = d->dev;
	p->fn = d->func;
	snprintf(p->bdf, sizeof(p->bdf), "%04x:%02x:%02x.%x", p->domain, p->bus, p->dev, p->fn);
	p->vendor = d->vendor_id;
	p->device = d->device_id;
	p->subvendor = d->subsys_vendor_id;
	p->subdevice = d->subsys_id;
	p->class_code = ((uint32_t)d->device_class << 8) | d->prog_if;
	pci_names_lookup(names, p);
	read_caps(ctx, d, p);
}

/*
 * A function whose sysfs directory lacks what libpci insists on (partial
 * captures keep only `class` and `local_cpus`, say): take what is there.
 */
static int fill_from_sysfs(struct topo_ctx *ctx, struct pci_names *names, const char *bdf,
			   struct topo_pci *p)
{
	static const char *const attrs[] = { "class", "vendor", "device", "subsystem_vendor",
					     "subsystem_device" };
	long v[5] = { 0, 0, 0, 0, 0 };
	char path[4096];

	if (!topo_parse_bdf(bdf, false, &p->domain, &p->bus, &p->dev, &p->fn))
		return -EINVAL;
	snprintf(p->bdf, sizeof(p->bdf), "%04x:%02x:%02x.%x", p->domain, p->bus, p->dev, p->fn);
	for (size_t i = 0; i < 5; i++) {
		sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/%s", bdf, attrs[i]);
		sysfs_read_long(path, &v[i]);
	}
	p->class_code = (uint32_t)v[0] & 0xffffff;
	p->vendor = (uint16_t)v[1];
	p->device = (uint16_t)v[2];
	p->subvendor = (uint16_t)v[3];
	p->subdevice = (uint16_t)v[4];
	if (p->vendor)
		pci_names_lookup(names, p);
	return 0;
}

static int add_function(struct topo_ctx *ctx, struct topo_graph *g, struct topo_pci *p,
			struct pending_link *pl)
{
	char hbname[TOPO_NAME_MAX], path[4096];
	int hb, r;

	read_bars(ctx, p);
	read_sysfs_extras(ctx, p);
	r = read_chain(ctx, p->bdf, hbname, sizeof(hbname), pl);
	if (r < 0)
		return topo_ctx_error(ctx, r, "%s: cannot resolve its sysfs path", p->bdf);
	hb = find_or_add_hostbridge(g, hbname);
	if (hb < 0)
		return topo_ctx_error(ctx, hb, "%s: bad host bridge name '%s'", p->bdf, hbname);
	p->hostbridge = hb;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci/devices/%s/physfn", p->bdf);
	if (sysfs_link_last_bdf(path, pl->physfn, sizeof(pl->physfn)) < 0)
		pl->physfn[0] = '\0';
	r = topo_graph_add_pci(g, p);
	return r == -EEXIST ? 0 : r;
}

struct sort_item {
	struct topo_pci pci;
	struct pending_link pl;
};

static int cmp_item(const void *a, const void *b)
{
	const struct topo_pci *x = &((const struct sort_item *)a)->pci;
	const struct topo_pci *y = &((const struct sort_item *)b)->pci;

	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	return (x->bus << 8 | x->dev << 3 | x->fn) - (y->bus << 8 | y->dev << 3 | y->fn);
}

/* Functions read through libpci come first and those read from sysfs alone
 * after them: restore lspci's order. */
static int sort_functions(struct topo_graph *g, struct pending_link *pl)
{
	struct sort_item *items = malloc((g->n_pci ? g->n_pci : 1) * sizeof(*items));

	if (!items)
		return -ENOMEM;
	for (size_t i = 0; i < g->n_pci; i++) {
		items[i].pci = g->pci[i];
		items[i].pl = pl[i];
	}
	qsort(items, g->n_pci, sizeof(*items), cmp_item);
	for (size_t i = 0; i < g->n_pci; i++) {
		g->pci[i] = items[i].pci;
		pl[i] = items[i].pl;
	}
	free(items);
	return 0;
}

static int link_functions(struct topo_ctx *ctx, struct topo_graph *g, struct pending_link *pl)
{
	int r = sort_functions(g, pl);

	if (r < 0)
		return r;
	for (size_t i = 0; i < g->n_pci; i++) {
		struct topo_pci *p = &g->pci[i];

		for (int k = pl[i].nchain - 1; k >= 0 && p->parent < 0; k--)
			p->parent = topo_graph_find_pci_bdf(g, pl[i].chain[k]);
		if (p->parent < 0)
			p->parent = -1;
		if (pl[i].physfn[0])
			p->physfn = topo_graph_find_pci_bdf(g, pl[i].physfn);
	}
	/* The kernel's tree has no loop; a corrupt or crafted one may, and
	 * every walk up it would spin: cut it where found. */
	for (size_t i = 0; i < g->n_pci; i++) {
		int a;

		while ((a = topo_pci_upstream_loop(g, (int)i)) >= 0)
			g->pci[a].parent = g->pci[a].physfn = -1;
	}
	return 0;
}

/* An entry of sys/bus/pci/devices that names a function. */
struct fn_entry {
	char name[TOPO_BDF_MAX]; /* as the directory has it */
	uint32_t domain;
	uint8_t bus, dev, fn;
	bool libpci; /* read through libpci, else from sysfs alone */
};

/* Lives on the heap: what scan() changes survives a longjmp out of libpci. */
struct scan_state {
	struct fn_entry *fns;
	size_t nfns;
	struct pci_dev **devs; /* ours (pci_get_dev), not on acc->devices: freed here */
	size_t ndevs;
	struct pending_link *pl;
	struct pci_names *names;
};

/* Whether libpci can read the function: it insists on these attributes and
 * fails the whole discovery without one. Live trees always have them;
 * captures may not. */
static bool libpci_readable(const char *dir)
{
	static const char *const need[] = { "vendor", "device", "class" };
	char path[4096];

	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, need[i]);
		if (access(path, R_OK))
			return false;
	}
	return true;
}

static int cmp_fn_entry(const void *a, const void *b)
{
	const struct fn_entry *x = a, *y = b;

	if (x->domain != y->domain)
		return x->domain < y->domain ? -1 : 1;
	if ((x->bus << 8 | x->dev << 3 | x->fn) != (y->bus << 8 | y->dev << 3 | y->fn))
		return (x->bus << 8 | x->dev << 3 | x->fn) - (y->bus << 8 | y->dev << 3 | y->fn);
	return strcmp(x->name, y->name);
}

/*
 * The functions in sys/bus/pci/devices, listed here and not by libpci's
 * pci_scan_bus(): that reports an entry whose name is not a function address
 * with its DIR open and a half-built pci_dev that is on no list, both lost
 * to our handler's longjmp. Entries that are not function addresses are
 * skipped. libpci gets a function only by the name it would build itself
 * ("%04x:%02x:%02x.%d", a domain that fits an int) and with the attributes
 * it insists on; the others are read from sysfs alone.
 */
static int list_functions(struct topo_ctx *ctx, struct scan_state *st, const char *pcipath)
{
	char devdir[4096], entry[4200], canon[TOPO_BDF_MAX];
	size_t cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	snprintf(devdir, sizeof(devdir), "%s/devices", pcipath);
	d = opendir(devdir);
	if (!d)
		return topo_ctx_error(ctx, -errno, "%s: %s", devdir, strerror(errno));
	while ((de = readdir(d))) {
		struct fn_entry e;

		if (strlen(de->d_name) >= TOPO_BDF_MAX ||
		    !topo_parse_bdf(de->d_name, false, &e.domain, &e.bus, &e.dev, &e.fn))
			continue;
		snprintf(e.name, sizeof(e.name), "%s", de->d_name);
		snprintf(canon, sizeof(canon), "%04x:%02x:%02x.%x", e.domain, e.bus, e.dev, e.fn);
		snprintf(entry, sizeof(entry), "%s/%s", devdir, de->d_name);
		e.libpci = e.domain <= INT_MAX && !strcmp(canon, e.name) && libpci_readable(entry);
		if (st->nfns == cap) {
			void *grown = realloc(st->fns, (cap = cap ? 2 * cap : 32) * sizeof(*st->fns));

			if (!grown) {
				r = -ENOMEM;
				break;
			}
			st->fns = grown;
		}
		st->fns[st->nfns++] = e;
	}
	closedir(d);
	/* Address order, not the directory's: host bridges are numbered in the
	 * order their first function is met. */
	if (r == 0 && st->nfns)
		qsort(st->fns, st->nfns, sizeof(*st->fns), cmp_fn_entry);
	return r;
}

static int scan(struct topo_ctx *ctx, struct topo_graph *g, struct pci_access *acc,
		struct scan_state *st)
{
	int r;

	st->names = pci_names_new(acc);
	st->devs = calloc(st->nfns + 1, sizeof(*st->devs));
	st->pl = calloc(st->nfns + 1, sizeof(*st->pl));
	if (!st->names || !st->devs || !st->pl)
		return -ENOMEM;
	/* libpci's functions first: a sysfs-only duplicate does not replace one. */
	for (size_t i = 0; i < st->nfns; i++) {
		const struct fn_entry *e = &st->fns[i];
		struct pci_dev *d;
		struct topo_pci p;

		if (!e->libpci)
			continue;
		topo_pci_init(&p);
		d = pci_get_dev(acc, (int)e->domain, e->bus, e->dev, e->fn);
		st->devs[st->ndevs++] = d;
		fill_from_libpci(ctx, st->names, d, &p);
		r = add_function(ctx, g, &p, &st->pl[g->n_pci]);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < st->nfns; i++) {
		struct topo_pci p;

		if (st->fns[i].libpci)
			continue;
		topo_pci_init(&p);
		if (fill_from_sysfs(ctx, st->names, st->fns[i].name, &p) < 0)
			continue;
		r = add_function(ctx, g, &p, &st->pl[g->n_pci]);
		if (r < 0)
			return r;
	}
	return link_functions(ctx, g, st->pl);
}

static int discover_pci(struct topo_ctx *ctx, struct topo_graph *g)
{
	struct scan_state *st = calloc(1, sizeof(*st));
	struct pci_access *acc = pci_alloc();
	char path[4096];
	jmp_buf jb;
	int r;

	if (!st || !acc) {
		free(st);
		if (acc)
			pci_cleanup(acc);
		return -ENOMEM;
	}
	acc->error = pci_error;
	acc->warning = pci_quiet;
	acc->debug = pci_quiet;
	acc->method = PCI_ACCESS_SYS_BUS_PCI;
	sysfs_path(path, sizeof(path), ctx->root, "/sys/bus/pci");
	r = list_functions(ctx, st, path);
	pci_jmp = &jb;
	if (r < 0) {
		/* error already recorded */
	} else if (setjmp(jb)) {
		r = topo_ctx_error(ctx, -EIO, "libpci: %s", pci_errmsg);
	} else {
		pci_set_param(acc, "sysfs.path", path);
		pci_init(acc);
		r = scan(ctx, g, acc, st);
	}
	pci_jmp = NULL;
	/* Not on acc->devices, so not pci_cleanup()'s to free; before it, as
	 * pci_free_dev() uses acc (and closes its config fd if cached). */
	for (size_t i = 0; i < st->ndevs; i++)
		pci_free_dev(st->devs[i]);
	pci_names_free(st->names);
	free(st->devs);
	free(st->pl);
	free(st->fns);
	free(st);
	pci_cleanup(acc);
	return r;
}

const struct topo_source topo_source_pci = { "pci", discover_pci };
