/* SPDX-License-Identifier: MIT */
/*
 * Replays real machines captured by hwloc's test suite (shared/fixtures/hwloc)
 * through topo_discover() and compares the PCI tree, PCI locality and NUMA
 * nodes with what hwloc's lstopo printed for the same capture.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <malloc.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cu_run.h"
#include "topo.h"

extern char **environ;

#define check_at(ok, line, ...) cu_check_at(ok, __FILE__, line, __VA_ARGS__)
#define CHECK(cond, ...) check_at(!!(cond), __LINE__, __VA_ARGS__)

/* ---- hwloc's view: the object tree lstopo printed ---- */

enum hw_type {
	HW_OTHER,
	HW_MACHINE,
	HW_PACKAGE,
	HW_GROUP,
	HW_NUMA,
	HW_PU,
	HW_HOSTBRIDGE,
	HW_PCIBRIDGE,
	HW_PCIDEV,
};

struct hw_obj {
	enum hw_type type;
	int parent;          /* index in hw_tree.o, -1 for the root */
	int os_index;        /* P#, -1 if none */
	bool memory_subtype; /* NUMANode(GPUMemory) and the like: no CPUs of its own */
	bool has_children;
	char busid[TOPO_BDF_MAX];
	int vendor, device, class16;
};

struct hw_tree {
	char src[128]; /* where it came from, for messages */
	struct hw_obj *o;
	size_t n, cap;
};

static int hw_add(struct hw_tree *t, const struct hw_obj *obj)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 256;
		struct hw_obj *o = realloc(t->o, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		t->o = o;
		t->cap = cap;
	}
	t->o[t->n] = *obj;
	if (obj->parent >= 0)
		t->o[obj->parent].has_children = true;
	return (int)t->n++;
}

static void hw_free(struct hw_tree *t)
{
	free(t->o);
	t->o = NULL;
	t->n = t->cap = 0;
}

static bool hw_is_pci(const struct hw_obj *o)
{
	return o->type == HW_PCIDEV || o->type == HW_PCIBRIDGE;
}

static int hw_find_busid(const struct hw_tree *t, const char *busid)
{
	for (size_t i = 0; i < t->n; i++)
		if (hw_is_pci(&t->o[i]) && !strcasecmp(t->o[i].busid, busid))
			return (int)i;
	return -1;
}

static bool hw_below(const struct hw_tree *t, int i, int ancestor)
{
	for (int a = i; a >= 0; a = t->o[a].parent)
		if (a == ancestor)
			return true;
	return false;
}

static int hw_count_below(const struct hw_tree *t, int ancestor, enum hw_type type,
			  int *last_os_index)
{
	int n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->o[i].type != type || t->o[i].memory_subtype || !hw_below(t, (int)i, ancestor))
			continue;
		n++;
		if (last_os_index)
			*last_os_index = t->o[i].os_index;
	}
	return n;
}

/*
 * hwloc hangs a host bridge below the smallest object covering its CPUs. Its
 * NUMA node is that of the nearest ancestor with (CPU) NUMA nodes below it:
 * hwloc 2 attaches nodes beside the CPUs, on the Machine of a one-node box,
 * and a host bridge on the Machine of a multi-node box is local to none.
 */
static int hw_hostbridge_numa(const struct hw_tree *t, int hb)
{
	for (int a = t->o[hb].parent; a >= 0; a = t->o[a].parent) {
		int id = -1, n = hw_count_below(t, a, HW_NUMA, &id);

		if (n)
			return n == 1 ? id : -1;
	}
	return -1;
}

/* Whether lstopo shows PUs for a NUMA node: those of its parent in hwloc 2
 * (memory children), its own subtree in hwloc 1 style output. */
static bool hw_numa_shows_pus(const struct hw_tree *t, int node)
{
	int scope = t->o[node].has_children ? node : t->o[node].parent;

	if (t->o[node].memory_subtype || scope < 0)
		return false;
	return hw_count_below(t, scope, HW_PU, NULL) > 0;
}

static enum hw_type console_type(const char *word)
{
	static const struct {
		const char *name;
		enum hw_type type;
	} map[] = {
		{ "Machine", HW_MACHINE },	{ "Package", HW_PACKAGE },
		{ "NUMANode", HW_NUMA },	{ "PU", HW_PU },
		{ "HostBridge", HW_HOSTBRIDGE }, { "PCIBridge", HW_PCIBRIDGE },
		{ "PCI", HW_PCIDEV },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (!strcmp(word, map[i].name))
			return map[i].type;
	return !strncmp(word, "Group", 5) ? HW_GROUP : HW_OTHER;
}

/* "PCI L#0 (busid=0000:1a:00.0 id=15b3:1013 class=0207(InfiniBand) ...)" */
static int console_pci_attrs(const char *s, struct hw_obj *o)
{
	const char *b = strstr(s, "(busid="), *id = strstr(s, " id="), *cl = strstr(s, " class=");
	unsigned v, d, c;

	if (!b || !id || !cl || sscanf(b + 7, "%23[0-9a-fA-F:.]", o->busid) != 1 ||
	    sscanf(id + 4, "%x:%x", &v, &d) != 2 || sscanf(cl + 7, "%4x", &c) != 1)
		return -EINVAL;
	o->vendor = (int)v;
	o->device = (int)d;
	o->class16 = (int)c;
	return 0;
}

/* lstopo -v console output: two spaces of indentation per tree level. */
static int parse_console(FILE *f, struct hw_tree *t)
{
	int stack[64], last_depth = -1;
	char line[8192];

	while (fgets(line, sizeof(line), f)) {
		size_t ind = strspn(line, " ");
		char *s = line + ind, word[64];
		struct hw_obj o = { .os_index = -1, .vendor = -1, .device = -1, .class16 = -1 };
		const char *p;
		int depth = (int)ind / 2, idx;

		if (!strncmp(s, "depth ", 6) || !strncmp(s, "Special depth", 13))
			break; /* the per-depth summary after the tree */
		if (*s == '\n' || *s == '\0')
			continue;
		/* "4 x { PCI ... }" is a collapsed run: we would lose devices. */
		if (!isalpha((unsigned char)*s) || ind % 2 || depth > last_depth + 1 || depth >= 64 ||
		    sscanf(s, "%63[A-Za-z0-9_-]", word) != 1) {
			fprintf(stderr, "%s: cannot parse line: %s", t->src, line);
			return -EINVAL;
		}
		o.type = console_type(word);
		o.memory_subtype = o.type == HW_NUMA && s[strlen(word)] == '(';
		o.parent = depth ? stack[depth - 1] : -1;
		p = strstr(s, "(P#");
		if (p)
			o.os_index = atoi(p + 3);
		if (hw_is_pci(&o) && console_pci_attrs(s, &o) < 0) {
			fprintf(stderr, "%s: PCI line without busid/id/class: %s", t->src, line);
			return -EINVAL;
		}
		if ((idx = hw_add(t, &o)) < 0)
			return idx;
		stack[depth] = idx;
		last_depth = depth;
	}
	return t->n ? 0 : -ENODATA;
}

/* Value of attribute `name` in the tag [tag, end), "" when absent. */
static void xml_attr(const char *tag, const char *end, const char *name, char *buf, size_t len)
{
	size_t nl = strlen(name);

	buf[0] = '\0';
	for (const char *p = tag; p + nl + 2 < end; p++) {
		const char *q;

		if (p[-1] != ' ' || strncmp(p, name, nl) || p[nl] != '=' || p[nl + 1] != '"')
			continue;
		p += nl + 2;
		q = memchr(p, '"', (size_t)(end - p));
		if (q)
			snprintf(buf, len, "%.*s", (int)(q - p), p);
		return;
	}
}

/* The '>' that ends the tag at p, skipping quoted attribute values. */
static const char *xml_tag_end(const char *p)
{
	bool quoted = false;

	for (; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '>' && !quoted)
			return p;
	}
	return NULL;
}

/* lstopo's XML export: <object type=...> nesting, PCI attributes in pci_busid/pci_type. */
static int parse_xml(const char *x, struct hw_tree *t)
{
	int stack[64], depth = 0;

	for (const char *p = strchr(x, '<'); p; p = strchr(p + 1, '<')) {
		struct hw_obj o = { .os_index = -1, .vendor = -1, .device = -1, .class16 = -1 };
		const char *end;
		char type[32], buf[128];
		unsigned v, d, c;
		int idx;

		if (!strncmp(p, "</object>", 9)) {
			if (depth-- == 0)
				return -EINVAL;
			continue;
		}
		if (strncmp(p, "<object ", 8))
			continue;
		end = xml_tag_end(p);
		if (!end)
			return -EINVAL;
		xml_attr(p + 1, end, "type", type, sizeof(type));
		if (!strcmp(type, "Machine"))
			o.type = HW_MACHINE;
		else if (!strcmp(type, "Package"))
			o.type = HW_PACKAGE;
		else if (!strcmp(type, "Group"))
			o.type = HW_GROUP;
		else if (!strcmp(type, "NUMANode"))
			o.type = HW_NUMA;
		else if (!strcmp(type, "PU"))
			o.type = HW_PU;
		else if (!strcmp(type, "PCIDev"))
			o.type = HW_PCIDEV;
		else if (!strcmp(type, "Bridge")) {
			xml_attr(p + 1, end, "bridge_type", buf, sizeof(buf));
			o.type = !strncmp(buf, "0-", 2) ? HW_HOSTBRIDGE : HW_PCIBRIDGE;
		}
		xml_attr(p + 1, end, "os_index", buf, sizeof(buf));
		if (buf[0])
			o.os_index = atoi(buf);
		xml_attr(p + 1, end, "subtype", buf, sizeof(buf));
		o.memory_subtype = o.type == HW_NUMA && buf[0];
		if (hw_is_pci(&o)) {
			/* pci_type="0604 [8086:3c02] [0000:0000] 07 00": class [vendor:device] ... */
			xml_attr(p + 1, end, "pci_busid", o.busid, sizeof(o.busid));
			xml_attr(p + 1, end, "pci_type", buf, sizeof(buf));
			if (!o.busid[0] || sscanf(buf, "%x [%x:%x]", &c, &v, &d) != 3)
				return -EINVAL;
			o.class16 = (int)c;
			o.vendor = (int)v;
			o.device = (int)d;
		}
		o.parent = depth ? stack[depth - 1] : -1;
		if ((idx = hw_add(t, &o)) < 0)
			return idx;
		if (end[-1] != '/') {
			if (depth == 64)
				return -EINVAL;
			stack[depth++] = idx;
		}
		p = end;
	}
	return depth == 0 && t->n ? 0 : -EINVAL;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1))) {
		if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		} else {
			buf[n] = '\0';
		}
	}
	fclose(f);
	return buf;
}

/* ---- fixtures and scratch directories ---- */

struct fixture {
	const char *name;
	/* Its .test sets HWLOC_PCI_LOCALITY: hwloc's placement of host bridges
	 * there is forced by hand, not read from the capture. */
	bool forced_locality;
	/* NUMA nodes the shipped output hides and we report: hwloc drops NVIDIA
	 * GPU memory nodes unless HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES=1. */
	int hidden_numa[8];
	int n_hidden_numa;
};

static const struct fixture fixtures[] = {
	{ .name = "2pa-pcidomain32bits" },
	{ .name = "32em64t-2n8c+dax+nvme+mic+dimms" },
	{ .name = "32intel64-2p8co2t+8ve" },
	{ .name = "40intel64-2g2n4c+pcilocality", .forced_locality = true },
	{ .name = "40intel64-4n10c+pci-conflicts" },
	{ .name = "nvidiagpunumanodes",
	  .hidden_numa = { 250, 251, 252, 253, 254, 255 },
	  .n_hidden_numa = 6 },
};

static const char *fixture_dir(void)
{
	static char buf[4096];
	const char *shared = getenv("PAGEMAP_SHARED_DIR");

	if (shared && shared[0])
		snprintf(buf, sizeof(buf), "%s/fixtures/hwloc", shared);
	else
		snprintf(buf, sizeof(buf), "%s", cu_source_path("../shared/fixtures/hwloc"));
	return buf;
}

static int make_scratch_in(const char *base, char *buf, size_t len)
{
	snprintf(buf, len, "%s/pagemap-discover-XXXXXX", base);
	if (mkdtemp(buf))
		return 0;
	buf[0] = '\0';
	return -errno;
}

static int make_scratch(char *buf, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	return make_scratch_in(tmp && tmp[0] ? tmp : "/tmp", buf, len);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (dir[0])
		nftw(dir, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static int run_tar(const char *tarball, const char *dest)
{
	char *argv[] = { "tar", "-xjf", (char *)tarball, "-C", (char *)dest, NULL };
	pid_t pid;
	int st, e;

	if ((e = posix_spawnp(&pid, "tar", NULL, NULL, argv, environ)))
		return -e;
	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* Extracts the tarball into a fresh directory under base; root gets
 * <tmp>/<top dir>, which need not match the fixture's name. */
static int extract_in(const char *base, const char *tarball, char *tmp, size_t tmplen,
		      char *root, size_t rootlen)
{
	struct dirent *de;
	int r, n = 0;
	DIR *d;

	if ((r = make_scratch_in(base, tmp, tmplen)) < 0)
		return r;
	if ((r = run_tar(tarball, tmp)) < 0)
		return r;
	d = opendir(tmp);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && n++ == 0)
			snprintf(root, rootlen, "%s/%s", tmp, de->d_name);
	closedir(d);
	return n == 1 ? 0 : -EINVAL;
}

/*
 * A capture is some 10,000 small files: tmpfs takes them in well under a
 * second where a busy disk can take ten. So TMPDIR when set, else /dev/shm;
 * that may be small (64 MiB in containers, the largest capture needs 25), so
 * a failed extraction moves on to the next place.
 */
static int extract(const char *tarball, char *tmp, size_t tmplen, char *root, size_t rootlen)
{
	const char *env = getenv("TMPDIR");
	const char *bases[] = { env && env[0] ? env : NULL, "/dev/shm", "/tmp" };
	int r = -ENOENT;

	for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		if (!bases[i] || access(bases[i], W_OK))
			continue;
		if ((r = extract_in(bases[i], tarball, tmp, tmplen, root, rootlen)) == 0)
			return 0;
		rm_tree(tmp);
		tmp[0] = '\0';
	}
	return r;
}

static bool have_program(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
		if (n && access(buf, X_OK) == 0)
			return true;
		path += n + (path[n] == ':');
	}
	return false;
}

/* ---- the checks ---- */

static int nearest(const struct hw_tree *t, int i, enum hw_type type)
{
	for (int a = t->o[i].parent; a >= 0; a = t->o[a].parent)
		if (t->o[a].type == type)
			return a;
	return -1;
}

static void chain_str(char *buf, size_t len, char chain[][TOPO_BDF_MAX], int n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int k = 0; k < n && off < len; k++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", k ? " <- " : "", chain[k]);
	if (!n)
		snprintf(buf, len, "(host bridge)");
}

/* 1: ids and class; 2: upstream chain; 3: NUMA locality. */
static void check_pci(const char *fx, const struct hw_tree *t, const struct topo_graph *g,
		      bool check_locality)
{
	int checked = 0;

	for (size_t i = 0; i < t->n; i++) {
		const struct hw_obj *o = &t->o[i];
		char hw_chain[16][TOPO_BDF_MAX], our_chain[16][TOPO_BDF_MAX], a[512], b[512];
		int n_hw = 0, n_ours = 0, k, hb, want;
		bool same;

		if (!hw_is_pci(o))
			continue;
		k = topo_graph_find_pci_bdf(g, o->busid);
		CHECK(k >= 0, "%s: %s (%s): hwloc lists %s %04x:%04x, our graph lacks it", fx, o->busid,
		      t->src, o->type == HW_PCIBRIDGE ? "PCIBridge" : "PCI", o->vendor, o->device);
		if (k < 0)
			continue;
		checked++;
		CHECK(g->pci[k].vendor == o->vendor && g->pci[k].device == o->device,
		      "%s: %s: hwloc id=%04x:%04x, ours %04x:%04x", fx, o->busid, o->vendor,
		      o->device, g->pci[k].vendor, g->pci[k].device);
		CHECK((int)(g->pci[k].class_code >> 8) == o->class16,
		      "%s: %s: hwloc class=%04x, ours %06x", fx, o->busid, o->class16,
		      g->pci[k].class_code);

		for (int p = nearest(t, (int)i, HW_PCIBRIDGE); p >= 0 && n_hw < 16;
		     p = nearest(t, p, HW_PCIBRIDGE))
			snprintf(hw_chain[n_hw++], TOPO_BDF_MAX, "%s", t->o[p].busid);
		/* Bridges hwloc hides (e.g. one with an invalid bus range) are skipped. */
		for (int p = g->pci[k].parent; p >= 0 && n_ours < 16; p = g->pci[p].parent)
			if (hw_find_busid(t, g->pci[p].bdf) >= 0)
				snprintf(our_chain[n_ours++], TOPO_BDF_MAX, "%s", g->pci[p].bdf);
		same = n_hw == n_ours;
		for (int j = 0; same && j < n_hw; j++)
			same = !strcasecmp(hw_chain[j], our_chain[j]);
		chain_str(a, sizeof(a), hw_chain, n_hw);
		chain_str(b, sizeof(b), our_chain, n_ours);
		CHECK(same, "%s: %s: upstream chain: hwloc %s, ours %s", fx, o->busid, a, b);

		hb = nearest(t, (int)i, HW_HOSTBRIDGE);
		CHECK(hb >= 0, "%s: %s: no HostBridge above it in %s", fx, o->busid, t->src);
		if (!check_locality || hb < 0)
			continue;
		want = hw_hostbridge_numa(t, hb);
		if (want < 0 && g->n_numa == 1)
			want = g->numa[0].id;
		CHECK(topo_pci_numa(g, k) == want,
		      "%s: %s: hwloc puts its host bridge near NUMA node %d, topo_pci_numa says %d "
		      "(sysfs numa_node %d, local_cpus %s)",
		      fx, o->busid, want, topo_pci_numa(g, k), g->pci[k].numa, g->pci[k].local_cpus);
	}
	CHECK(checked > 0, "%s: no PCI device of %s found in our graph", fx, t->src);
}

/* 4: every entry of sys/bus/pci/devices, as lspci lists them, and no more. */
static void check_count(const char *fx, const char *root, const struct topo_graph *g)
{
	char path[4096];
	struct dirent *de;
	size_t entries = 0, ours = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/sys/bus/pci/devices", root);
	d = opendir(path);
	CHECK(d != NULL, "%s: cannot open %s", fx, path);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		entries++;
		CHECK(topo_graph_find_pci_bdf(g, de->d_name) >= 0,
		      "%s: sys/bus/pci/devices/%s is not in our graph", fx, de->d_name);
	}
	if (d)
		closedir(d);
	for (size_t i = 0; i < g->n_pci; i++)
		ours += !g->pci[i].removed;
	CHECK(ours == entries, "%s: %zu PCI functions in sys/bus/pci/devices, we found %zu", fx,
	      entries, ours);
}

/* 5: the same NUMA node ids, memory-only exactly where hwloc shows no PUs. */
static void check_numa(const char *fx, const struct hw_tree *t, const struct topo_graph *g,
		       const int *hidden, int n_hidden)
{
	for (size_t i = 0; i < t->n; i++) {
		int k;

		if (t->o[i].type != HW_NUMA)
			continue;
		k = topo_graph_find_numa(g, t->o[i].os_index);
		CHECK(k >= 0, "%s: hwloc has NUMANode P#%d (%s), we do not", fx, t->o[i].os_index,
		      t->src);
		if (k >= 0)
			CHECK(g->numa[k].has_cpu == hw_numa_shows_pus(t, (int)i),
			      "%s: NUMA node %d: hwloc shows %s PUs, our has_cpu=%d (cpulist '%s')",
			      fx, g->numa[k].id, hw_numa_shows_pus(t, (int)i) ? "its" : "no",
			      g->numa[k].has_cpu, g->numa[k].cpulist);
	}
	for (size_t k = 0; k < g->n_numa; k++) {
		bool listed = false, hidden_here = false;

		for (size_t i = 0; i < t->n; i++)
			listed |= t->o[i].type == HW_NUMA && t->o[i].os_index == g->numa[k].id;
		for (int j = 0; j < n_hidden; j++)
			hidden_here |= hidden[j] == g->numa[k].id;
		CHECK(listed || hidden_here, "%s: we report NUMA node %d, hwloc (%s) does not", fx,
		      g->numa[k].id, t->src);
		if (!listed && hidden_here)
			CHECK(!g->numa[k].has_cpu,
			      "%s: NUMA node %d hidden by hwloc as GPU memory, but has_cpu=1", fx,
			      g->numa[k].id);
	}
}

/* lstopo on the extracted tree, when installed: a cross-check with every I/O
 * object (--whole-io, --no-collapse) and GPU memory nodes kept. */
static int run_lstopo(const char *root, struct hw_tree *t)
{
	char cmd[8192];
	FILE *f;
	int r, st;

	if (strchr(root, '\''))
		return -EINVAL;
	snprintf(cmd, sizeof(cmd),
		 "env -u HWLOC_PCI_LOCALITY HWLOC_COMPONENTS=linux,stop HWLOC_FSROOT='%s' "
		 "HWLOC_KEEP_NVIDIA_GPU_NUMA_NODES=1 HWLOC_SHOW_ERRORS=none "
		 "lstopo-no-graphics -v --whole-io --no-collapse 2>/dev/null",
		 root);
	f = popen(cmd, "r");
	if (!f)
		return -errno;
	r = parse_console(f, t);
	/* Drain what the parser stopped short of, so lstopo exits cleanly. */
	while (fgets(cmd, sizeof(cmd), f))
		;
	st = pclose(f);
	if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		r = -EIO;
	return r;
}

static void replay(const struct fixture *fx)
{
	char path[4096], tmp[4096] = "", root[4096] = "", err[512] = "";
	struct topo_discover_opts opts = { .no_verbs = true, .errbuf = err, .errlen = sizeof(err) };
	struct hw_tree expect = { 0 }, live = { 0 };
	struct topo_graph *g = NULL;
	char *xml;
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "%s/%s.tar.bz2", fixture_dir(), fx->name);
	r = extract(path, tmp, sizeof(tmp), root, sizeof(root));
	CHECK(r == 0, "%s: extracting %s failed: %s", fx->name, path, strerror(-r));
	if (r < 0)
		goto out;
	opts.sysfs_root = root;
	r = topo_discover(&opts, &g);
	CHECK(r == 0, "%s: topo_discover(%s) = %d: %s", fx->name, root, r, err);
	if (r < 0)
		goto out;

	snprintf(path, sizeof(path), "%s/%s.console", fixture_dir(), fx->name);
	snprintf(expect.src, sizeof(expect.src), "%s.console", fx->name);
	if ((f = fopen(path, "re"))) {
		r = parse_console(f, &expect);
		fclose(f);
	} else {
		snprintf(path, sizeof(path), "%s/%s.xml", fixture_dir(), fx->name);
		snprintf(expect.src, sizeof(expect.src), "%s.xml", fx->name);
		xml = read_file(path);
		r = xml ? parse_xml(xml, &expect) : -errno;
		free(xml);
	}
	CHECK(r == 0, "%s: cannot parse %s: %s", fx->name, expect.src, strerror(-r));
	if (r == 0) {
		check_pci(fx->name, &expect, g, !fx->forced_locality);
		check_numa(fx->name, &expect, g, fx->hidden_numa, fx->n_hidden_numa);
	}
	check_count(fx->name, root, g);

	if (have_program("lstopo-no-graphics")) {
		snprintf(live.src, sizeof(live.src), "live lstopo");
		r = run_lstopo(root, &live);
		CHECK(r == 0, "%s: lstopo-no-graphics on %s failed: %s", fx->name, root,
		      strerror(-r));
		if (r == 0) {
			check_pci(fx->name, &live, g, !fx->forced_locality);
			check_numa(fx->name, &live, g, NULL, 0);
		}
	} else {
		printf("(lstopo-no-graphics not installed: no live cross-check) ");
	}
out:
	hw_free(&expect);
	hw_free(&live);
	topo_graph_free(g);
	rm_tree(tmp);
}

static void test_2pa_pcidomain32bits(void)
{
	replay(&fixtures[0]);
}

static void test_32em64t_dax_nvme_mic(void)
{
	replay(&fixtures[1]);
}

static void test_32intel64_8ve(void)
{
	replay(&fixtures[2]);
}

/* Locality is not compared here: its .test forces it with HWLOC_PCI_LOCALITY. */
static void test_40intel64_pcilocality(void)
{
	replay(&fixtures[3]);
}

static void test_40intel64_pci_conflicts(void)
{
	replay(&fixtures[4]);
}

static void test_nvidiagpunumanodes(void)
{
	replay(&fixtures[5]);
}

/* ---- error paths ---- */

static void test_missing_root(void)
{
	char tmp[4096], missing[4200], err[512] = "";
	struct topo_graph *g = (struct topo_graph *)&err; /* must stay untouched */
	struct topo_discover_opts opts = { .no_verbs = true, .errbuf = err, .errlen = sizeof(err) };
	int r;

	CU_ASSERT_FATAL(make_scratch(tmp, sizeof(tmp)) == 0);
	snprintf(missing, sizeof(missing), "%s/no-such-capture", tmp);
	opts.sysfs_root = missing;
	r = topo_discover(&opts, &g);
	CHECK(r == -ENOENT, "topo_discover(%s) = %d, want -ENOENT", missing, r);
	CHECK(strstr(err, missing) != NULL, "error message '%s' does not name %s", err, missing);
	CHECK(g == (struct topo_graph *)&err, "output graph written on failure");
	rm_tree(tmp);
}

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	if (!f)
		return -errno;
	fputs(text, f);
	return fclose(f) ? -errno : 0;
}

static int mkdir_p(const char *path)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0755) && errno != EEXIST ? -errno : 0;
}

/* A complete function as the kernel shows it, linked from sys/bus/pci/devices. */
static int add_function(const char *root, const char *bdf, const char *cls)
{
	char dev[4096], link[4096], target[4096];
	int r;

	snprintf(dev, sizeof(dev), "%s/sys/devices/pci0000:00/%s", root, bdf);
	snprintf(link, sizeof(link), "%s/sys/bus/pci/devices/%s", root, bdf);
	snprintf(target, sizeof(target), "../../../devices/pci0000:00/%s", bdf);
	if ((r = mkdir_p(dev)) < 0 || (r = write_file(dev, "vendor", "0x8086\n")) < 0 ||
	    (r = write_file(dev, "device", "0x1234\n")) < 0 ||
	    (r = write_file(dev, "class", cls)) < 0 ||
	    (r = write_file(dev, "resource", "0x0 0x0 0x0\n")) < 0 ||
	    (r = write_file(dev, "irq", "0\n")) < 0 ||
	    (r = write_file(dev, "local_cpus", "1\n")) < 0)
		return r;
	return symlink(target, link) ? -errno : 0;
}

/*
 * Captures are not always tidy: a dangling entry, a `class` that is not a
 * number, a function that is a plain directory holding only `class` and
 * `local_cpus`. libpci's default error handler would exit(); we must not.
 */
static void test_broken_tree(void)
{
	char tmp[4096], dir[4200], err[512] = "";
	struct topo_discover_opts opts = { .no_verbs = true, .errbuf = err, .errlen = sizeof(err) };
	struct topo_graph *g = NULL;
	int r, k;

	CU_ASSERT_FATAL(make_scratch(tmp, sizeof(tmp)) == 0);
	snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices", tmp);
	CU_ASSERT_FATAL(mkdir_p(dir) == 0);
	CU_ASSERT_FATAL(add_function(tmp, "0000:00:00.0", "0x060000\n") == 0);
	CU_ASSERT_FATAL(add_function(tmp, "0000:00:01.0", "garbage\n") == 0);
	CU_ASSERT_FATAL(symlink("../../../devices/pci0000:00/0000:00:03.0",
				strcat(dir, "/0000:00:03.0")) == 0);
	snprintf(dir, sizeof(dir), "%s/sys/bus/pci/devices/0000:00:02.0", tmp);
	CU_ASSERT_FATAL(mkdir_p(dir) == 0);
	CU_ASSERT_FATAL(write_file(dir, "class", "0x030000\n") == 0);
	CU_ASSERT_FATAL(write_file(dir, "local_cpus", "1\n") == 0);

	opts.sysfs_root = tmp;
	r = topo_discover(&opts, &g);
	CHECK(r == 0, "broken tree: topo_discover = %d: %s", r, err);
	if (r == 0) {
		k = topo_graph_find_pci_bdf(g, "0000:00:00.0");
		CHECK(k >= 0 && g->pci[k].vendor == 0x8086 && g->pci[k].device == 0x1234 &&
			      g->pci[k].class_code == 0x060000,
		      "broken tree: the intact function 0000:00:00.0 is missing or wrong");
		k = topo_graph_find_pci_bdf(g, "0000:00:02.0");
		CHECK(k >= 0 && g->pci[k].class_code == 0x030000 && g->pci[k].parent == -1,
		      "broken tree: the class-only plain directory 0000:00:02.0 is missing or wrong");
		CHECK(topo_graph_find_pci_bdf(g, "0000:00:01.0") >= 0,
		      "broken tree: the function with a garbage class is missing");
	}
	topo_graph_free(g);
	rm_tree(tmp);
}

/* Entries of /proc/self/fd, give or take a constant. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/*
 * Discovers root a few times and reports what stayed open (fds) or
 * allocated (heap bytes) across them; then once more into *g, returning
 * topo_discover()'s result. Warming runs come first: glibc's tcache keeps up
 * to 7 freed chunks of each size and mallinfo2() counts them in use, so the
 * first runs of anything seem to leak a few KiB.
 */
static int discover_counting(const char *root, struct topo_graph **g, char *err, size_t errlen,
			     int *fds, long *heap)
{
	struct topo_discover_opts opts = { .sysfs_root = root, .no_verbs = true, .errbuf = err,
					   .errlen = errlen };
	struct topo_graph *t;
	long heap0 = 0;
	int fds0 = 0;

	for (int i = 0; i < 14; i++) {
		if (i == 10) {
			fds0 = open_fds();
			heap0 = (long)mallinfo2().uordblks;
		}
		t = NULL;
		if (topo_discover(&opts, &t) == 0)
			topo_graph_free(t);
	}
	*fds = open_fds() - fds0;
	*heap = (long)mallinfo2().uordblks - heap0;
	return topo_discover(&opts, g);
}

/*
 * libpci reports errors through our handler, which longjmps out of it: what
 * the failing libpci function had open stayed open. A `resource` line it
 * cannot parse cost its FILE; a devices/ entry that is not a function
 * address, or whose domain does not fit an int, its DIR and a half-built
 * pci_dev (~33 KiB); every discovery of such a tree, and the discovery
 * failed. Found by fuzz_sysfs (sysfs-libpci-bad-resource-leaks-fd,
 * sysfs-libpci-bad-entry-name-leaks-dir-and-dev). Each case alone, then
 * all together: nothing leaks, and the tree is read.
 */
static void test_libpci_errors_leak_nothing(void)
{
	static const char *const steps[] = { "bad resource", "entry name not a BDF",
					     "domain beyond an int", "all three" };
	char tmp[4096], dev[4200], from[4200], to[4200], err[512];
	struct topo_graph *g;
	long heap;
	int r, k, fds;

	CU_ASSERT_FATAL(make_scratch(tmp, sizeof(tmp)) == 0);
	snprintf(dev, sizeof(dev), "%s/sys/bus/pci/devices", tmp);
	CU_ASSERT_FATAL(mkdir_p(dev) == 0);
	CU_ASSERT_FATAL(add_function(tmp, "0000:00:00.0", "0x060000\n") == 0);
	for (size_t step = 0; step < sizeof(steps) / sizeof(steps[0]); step++) {
		switch (step) {
		case 0: /* BAR 0 (16 MiB), then a line libpci cannot parse */
			CU_ASSERT_FATAL(add_function(tmp, "0000:00:01.0", "0x030200\n") == 0);
			snprintf(dev, sizeof(dev), "%s/sys/devices/pci0000:00/0000:00:01.0", tmp);
			CU_ASSERT_FATAL(write_file(dev, "resource",
						   "0x00000000fb000000 0x00000000fbffffff "
						   "0x0000000000040200\nnot a resource line\n") == 0);
			break;
		case 1: /* a complete function, but linked as "00" */
			CU_ASSERT_FATAL(add_function(tmp, "0000:00:02.0", "0x020000\n") == 0);
			snprintf(from, sizeof(from), "%s/sys/bus/pci/devices/0000:00:02.0", tmp);
			snprintf(to, sizeof(to), "%s/sys/bus/pci/devices/00", tmp);
			CU_ASSERT_FATAL(rename(from, to) == 0);
			break;
		case 2: /* libpci's domain is an int; without "00" */
			CU_ASSERT_FATAL(unlink(to) == 0);
			CU_ASSERT_FATAL(add_function(tmp, "80000000:00:03.0", "0x010802\n") == 0);
			break;
		case 3:
			CU_ASSERT_FATAL(symlink("../../../devices/pci0000:00/0000:00:02.0", to) == 0);
			break;
		}
		g = NULL;
		err[0] = '\0';
		r = discover_counting(tmp, &g, err, sizeof(err), &fds, &heap);
		CHECK(fds == 0, "%s: %d fds left open by 4 discoveries", steps[step], fds);
		CHECK(heap < 2048, "%s: %ld heap bytes left allocated by 4 discoveries", steps[step],
		      heap);
		CHECK(r == 0, "%s: topo_discover = %d: %s", steps[step], r, err);
		if (r < 0)
			continue;
		CHECK(topo_graph_find_pci_bdf(g, "0000:00:00.0") >= 0, "%s: 0000:00:00.0 missing",
		      steps[step]);
		k = topo_graph_find_pci_bdf(g, "0000:00:01.0");
		CHECK(k >= 0 && g->pci[k].class_code == 0x030200 && g->pci[k].nbars == 1 &&
			      g->pci[k].bars[0].index == 0 && g->pci[k].bars[0].size == 16u << 20,
		      "%s: 0000:00:01.0 missing, or not its one 16 MiB BAR", steps[step]);
		CHECK(topo_graph_find_pci_bdf(g, "0000:00:02.0") < 0,
		      "%s: the entry \"00\" was taken for 0000:00:02.0", steps[step]);
		if (step >= 2) {
			k = topo_graph_find_pci_bdf(g, "80000000:00:03.0");
			CHECK(k >= 0 && g->pci[k].class_code == 0x010802,
			      "%s: 80000000:00:03.0 missing or wrong", steps[step]);
		}
		topo_graph_free(g);
	}
	rm_tree(tmp);
}

int main(void)
{
	static const struct cu_test tests[] = {
		{ "2pa-pcidomain32bits", test_2pa_pcidomain32bits },
		{ "32em64t-2n8c+dax+nvme+mic+dimms", test_32em64t_dax_nvme_mic },
		{ "32intel64-2p8co2t+8ve", test_32intel64_8ve },
		{ "40intel64-2g2n4c+pcilocality", test_40intel64_pcilocality },
		{ "40intel64-4n10c+pci-conflicts", test_40intel64_pci_conflicts },
		{ "nvidiagpunumanodes", test_nvidiagpunumanodes },
		{ "missing root", test_missing_root },
		{ "broken tree", test_broken_tree },
		{ "libpci errors leak nothing", test_libpci_errors_leak_nothing },
		{ NULL, NULL },
	};
	struct stat st;

	if (stat(fixture_dir(), &st) || !S_ISDIR(st.st_mode)) {
		printf("SKIP: no hwloc fixtures at %s\n", fixture_dir());
		return 77;
	}
	return cu_run("discover-sysfs", tests);
}
