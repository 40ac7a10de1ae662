/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for what topology/ reads from sysfs and procfs: the text
 * parsers (cpulists and masks, BDFs, host bridge names, link speeds, RDMA
 * rates), then the whole discovery (topo_discover with .sysfs_root) over a
 * small tree built from the input in a per-process scratch directory: CPU
 * and NUMA files, PCI functions through libpci and sysfs, class links,
 * RDMA ports and KFD io_links. A graph that comes out is classified and
 * written as a topology file.
 *
 * Input: text records, each starting on a line of its own,
 *   "@ PATH\n"  a regular file; its content runs to the next record line,
 *              less the newline that ends it (so binary files are exact)
 *   "> PATH TARGET\n"  a symbolic link
 *   "/ PATH\n"  a directory
 * PATH is relative to the captured root ("sys/bus/pci/devices/0000:00:01.0/
 * class"), made of [A-Za-z0-9._:+-] components without "." or "..". A link
 * TARGET is relative, may start with "../" as far up as the root and not
 * further: nothing the input builds points outside the tree. Records that
 * break a rule or collide with an earlier one are skipped.
 * sys/bus/pci/devices always exists (topo_discover requires it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pci/pci.h>

#include "cpuset.h"
#include "fuzz_fd.h"
#include "source.h"
#include "topo.h"

#define FUZZ_MAX_INPUT (64u << 10)
#define MAX_RECORDS 96
#define MAX_DEPTH 16
#define MAX_PATH 256
#define MAX_DEVICES 8

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                       \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "fuzz_sysfs: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                         \
			abort();                                                          \
		}                                                                         \
	} while (0)

static char base[256]; /* per process: the tree, and TMPDIR for whatever discovery makes */
static char root[300];

/*
 * libpci parses all of pci.ids on the first name lookup of every pci_access
 * (milliseconds; discovery makes a new one per run). Names are not what is
 * fuzzed here, so the harness answers lookups itself, as lspci -n would.
 */
char *pci_lookup_name(struct pci_access *a, char *buf, int size, int flags, ...)
{
	va_list ap;
	int id;

	(void)a;
	va_start(ap, flags);
	id = va_arg(ap, int);
	va_end(ap);
	snprintf(buf, (size_t)size, "%s %04x", flags & PCI_LOOKUP_VENDOR ? "Vendor" : "Device", id & 0xffff);
	return buf;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	if (ftw->level == 0)
		return 0; /* base itself stays */
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int rm_all(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void clean(void)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A crash ends the process without atexit(): the next run removes the trees
 * of our processes that are gone. */
static void remove_stale(const char *parent)
{
	char path[512];
	struct dirent *de;
	struct stat st;
	DIR *d = opendir(parent);
	int pid;

	while (d && (de = readdir(d))) {
		if (sscanf(de->d_name, "fuzz_sysfs.%d.", &pid) != 1 || pid <= 0 ||
		    (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		snprintf(path, sizeof(path), "%s/%s", parent, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid())
			nftw(path, rm_all, 16, FTW_DEPTH | FTW_PHYS);
	}
	if (d)
		closedir(d);
}

static void remove_base(void)
{
	clean();
	rmdir(base);
}

/* Where the trees go: $FUZZ_SYSFS_TMPDIR, else tmpfs (a tree per input on
 * a disk file system costs several times more), else $TMPDIR or /tmp. */
static const char *scratch_parent(void)
{
	const char *d = getenv("FUZZ_SYSFS_TMPDIR");

	if (d && *d)
		return d;
	if (access("/dev/shm", W_OK) == 0)
		return "/dev/shm";
	d = getenv("TMPDIR");
	return d && *d ? d : "/tmp";
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = scratch_parent();

	(void)argc;
	(void)argv;
	if (strlen(tmp) > 200) {
		fprintf(stderr, "fuzz_sysfs: scratch directory name too long: %s\n", tmp);
		abort();
	}
	remove_stale(tmp);
	snprintf(base, sizeof(base), "%s/fuzz_sysfs.%d.XXXXXX", tmp, (int)getpid());
	if (!mkdtemp(base)) {
		perror("fuzz_sysfs: mkdtemp");
		abort();
	}
	snprintf(root, sizeof(root), "%s/t", base);
	/* Anything discovery puts under $TMPDIR stays in ours. */
	setenv("TMPDIR", base, 1);
	/* A fake NVML would run on captures too: not this harness's business. */
	unsetenv("PAGEMAP_NVML_LIB");
	atexit(remove_base);
	return 0;
}

static bool good_component(const char *s, size_t n)
{
	if (n == 0 || n > 64 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* Splits a relative path into components; false when one is bad. */
static bool split(const char *p, size_t len, const char **comp, size_t *clen, int *n)
{
	*n = 0;
	if (len == 0 || len >= MAX_PATH)
		return false;
	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && p[j] != '/')
			j++;
		if (*n == MAX_DEPTH || !good_component(p + i, j - i))
			return false;
		comp[*n] = p + i;
		clen[(*n)++] = j - i;
		i = j + 1;
		if (j + 1 == len)
			return false; /* trailing slash */
	}
	return *n > 0;
}

/* Opens (making them) the first n components as real directories below the
 * root: never through a link, so link targets cannot climb out. */
static int open_dirs(const char **comp, const size_t *clen, int n)
{
	int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (int i = 0; i < n && fd >= 0; i++) {
		char name[65];
		int next;

		memcpy(name, comp[i], clen[i]);
		name[clen[i]] = '\0';
		mkdirat(fd, name, 0755);
		next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	return fd;
}

static void make_file(const char *p, size_t plen, const uint8_t *content, size_t len)
{
	const char *comp[MAX_DEPTH];
	size_t clen[MAX_DEPTH];
	char name[65];
	int n, dir, fd;

	if (!split(p, plen, comp, clen, &n) || (dir = open_dirs(comp, clen, n - 1)) < 0)
		return;
	memcpy(name, comp[n - 1], clen[n - 1]);
	name[clen[n - 1]] = '\0';
	fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	close(dir);
	if (fd < 0)
		return;
	if (len && write(fd, content, len) < 0)
		abort();
	close(fd);
}

static void make_dir(const char *p, size_t plen)
{
	const char *comp[MAX_DEPTH];
	size_t clen[MAX_DEPTH];
	int n, dir;

	if (split(p, plen, comp, clen, &n) && (dir = open_dirs(comp, clen, n)) >= 0)
		close(dir);
}

static void make_link(const char *p, size_t plen, const char *t, size_t tlen)
{
	const char *comp[MAX_DEPTH], *tcomp[MAX_DEPTH];
	size_t clen[MAX_DEPTH], tclen[MAX_DEPTH];
	char name[65], target[MAX_PATH];
	int n, tn, up = 0, dir;

	if (!split(p, plen, comp, clen, &n))
		return;
	while (tlen >= 3 && !memcmp(t, "../", 3)) {
		t += 3;
		tlen -= 3;
		up++;
	}
	/* From the link's directory (n - 1 deep) at most back to the root. */
	if (up > n - 1 || up * 3 + tlen >= sizeof(target) || !split(t, tlen, tcomp, tclen, &tn))
		return;
	for (int i = 0; i < up; i++)
		memcpy(target + 3 * i, "../", 3);
	memcpy(target + 3 * up, t, tlen);
	target[3 * up + tlen] = '\0';
	if ((dir = open_dirs(comp, clen, n - 1)) < 0)
		return;
	memcpy(name, comp[n - 1], clen[n - 1]);
	name[clen[n - 1]] = '\0';
	symlinkat(target, dir, name);
	close(dir);
}

/* The record line at p (p starts a line): its kind, or 0. */
static char record_kind(const uint8_t *p, const uint8_t *end)
{
	if (end - p >= 2 && p[1] == ' ' && (p[0] == '@' || p[0] == '>' || p[0] == '/'))
		return (char)p[0];
	return 0;
}

/* The text parsers, on one attribute's content as the sources read it;
 * CPU sets (4096 bits to format) only for files with "cpu" in their path. */
static void parse_text(const char *path, size_t plen, const uint8_t *c, size_t n)
{
	bool cpus = memmem(path, plen, "cpu", 3) != NULL;
	static char buf[4096], out[6 * 4096 + 16];
	struct cpuset a, b;
	uint32_t dom, dom2;
	uint8_t bus, dev, fn, bus2, dev2, fn2;

	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	memcpy(buf, c, n);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0'; /* as sysfs_read_str() gives it */

	CHECK(topo_parse_link_speed(buf) >= 0 && topo_parse_link_speed(buf) <= 10000);
	(void)topo_rdma_rate_gbps(buf);
	if (cpus && cpuset_parse_list(buf, &a) == 0) {
		cpuset_format_list(&a, out, sizeof(out));
		CHECK(cpuset_parse_list(out, &b) == 0);
		CHECK(memcmp(&a, &b, sizeof(a)) == 0);
	}
	if (cpus && cpuset_parse_mask(buf, &a) == 0) {
		cpuset_format_list(&a, out, sizeof(out));
		CHECK(cpuset_parse_list(out, &b) == 0);
		CHECK(memcmp(&a, &b, sizeof(a)) == 0);
		(void)cpuset_subset(&a, &b);
		(void)cpuset_empty(&a);
	}
	for (int shrt = 0; shrt < 2; shrt++) {
		if (!topo_parse_bdf(buf, shrt, &dom, &bus, &dev, &fn))
			continue;
		CHECK(dev <= 0x1f && fn <= 7);
		snprintf(out, sizeof(out), "%04x:%02x:%02x.%x", dom, bus, dev, fn);
		CHECK(topo_parse_bdf(out, false, &dom2, &bus2, &dev2, &fn2));
		CHECK(dom == dom2 && bus == bus2 && dev == dev2 && fn == fn2);
	}
	topo_bdf_canonical(buf, out, TOPO_BDF_MAX);
	CHECK(strlen(out) < TOPO_BDF_MAX);
	(void)topo_parse_hostbridge(buf, &dom, &bus);
}

/* A discovered graph used as pmtopo uses one: classified, written out. */
static void use_graph(const struct topo_graph *g)
{
	size_t n = g->n_devices < MAX_DEVICES ? g->n_devices : MAX_DEVICES;
	struct topo_path *p = malloc(sizeof(*p));
	struct topo_graph *g2 = NULL;
	char cell[32], hop[256], err[256], *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!p)
		abort();
	for (size_t a = 0; a < n; a++)
		for (size_t b = 0; b < n; b++) {
			if (topo_classify(g, (int)a, (int)b, p) < 0)
				continue;
			CHECK(p->nhops >= 0 && p->nhops <= TOPO_MAX_HOPS);
			topo_class_cell(p, cell, sizeof(cell));
			for (int h = 0; h < p->nhops; h++)
				topo_hop_name(g, &p->hops[h], hop, sizeof(hop));
		}
	free(p);
	f = open_memstream(&text, &len);
	if (!f)
		abort();
	topo_file_dump(g, f);
	fclose(f);
	/* What sysfs gave is not validated like a file: the reload may refuse. */
	if (topo_file_load_string(text, &g2, err, sizeof(err)) == 0)
		topo_graph_free(g2);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct topo_discover_opts o = { .sysfs_root = root, .no_verbs = true };
	struct topo_graph *g = NULL;
	char err[512];
	int fds, records = 0;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	fds = fuzz_fd_probe();
	if (mkdir(root, 0755) < 0)
		abort();
	make_dir("sys/bus/pci/devices", 19);

	/* Anything before the first record line is ignored. */
	while (p < end && !record_kind(p, end)) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));

		p = nl ? nl + 1 : end;
	}
	while (p < end && records++ < MAX_RECORDS) {
		char kind = record_kind(p, end);
		const uint8_t *line = p + 2, *nl = memchr(line, '\n', (size_t)(end - line));
		const uint8_t *lend = nl ? nl : end, *body = nl ? nl + 1 : end, *q = body;

		/* The body runs to the next line that starts a record. */
		while (q < end && !record_kind(q, end)) {
			const uint8_t *n2 = memchr(q, '\n', (size_t)(end - q));

			q = n2 ? n2 + 1 : end;
		}
		if (kind == '@') {
			size_t blen = (size_t)(q - body);

			if (blen && body[blen - 1] == '\n')
				blen--;
			make_file((const char *)line, (size_t)(lend - line), body, blen);
			parse_text((const char *)line, (size_t)(lend - line), body, blen);
		} else if (kind == '/') {
			make_dir((const char *)line, (size_t)(lend - line));
		} else {
			const uint8_t *sp = memchr(line, ' ', (size_t)(lend - line));

			if (sp)
				make_link((const char *)line, (size_t)(sp - line), (const char *)sp + 1,
					  (size_t)(lend - sp - 1));
		}
		p = q;
	}

	o.errbuf = err;
	o.errlen = sizeof(err);
	if (topo_discover(&o, &g) == 0) {
		CHECK(g != NULL);
		use_graph(g);
		topo_graph_free(g);
	} else {
		CHECK(g == NULL); /* output untouched on failure */
		CHECK(memchr(err, '\0', sizeof(err)));
	}
	clean();
	fuzz_fd_check(fds, "fuzz_sysfs");
	return 0;
}
