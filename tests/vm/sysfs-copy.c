// SPDX-License-Identifier: MIT
/*
 * sysfs-copy [-r ROOT] OUTDIR
 *
 * Copies, in one process, the sysfs/procfs files a topology discoverer reads into
 * OUTDIR in hwloc-gather-topology layout (OUTDIR/sys/..., OUTDIR/proc/...), so
 * that `lstopo --input OUTDIR` and our own discoverer can replay the machine.
 * hwloc-gather-topology forks a cat per file and takes minutes under TCG; this
 * takes about a second. Attribute files are copied by content, symlinks are kept
 * as symlinks with their (relative) targets; unreadable attributes are skipped.
 * ROOT (default /) lets the copier be run against an earlier copy.
 *
 * Copied, and nothing else (fixtures must stay small and diffable):
 *   proc/{cpuinfo,meminfo}
 *   sys/devices/system/cpu/{online,possible}, cpuN/topology/ (all of it)
 *   sys/devices/system/node/{online,possible}, nodeN/{cpulist,cpumap,meminfo,distance},
 *     nodeN/access{0,1}/{initiators,targets}/... (files and links; present when
 *     the firmware has an ACPI HMAT)
 *   sys/bus/pci/devices/<bdf> (links)
 *   sys/devices/pci*: every PCI function's PCI_ATTRS, and its PCI_LINKS
 *   sys/class/{net,infiniband,drm,nvme,block}/<dev> (links) and, in the device
 *     directory each points to, CLASS_ATTRS (and its `device` link)
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *root = "";
static const char *outdir;
static unsigned n_files, n_links, n_skipped;

static const char *const PCI_ATTRS[] = {
	"vendor", "device", "class", "revision", "subsystem_vendor", "subsystem_device",
	"config", "resource", "numa_node", "local_cpulist", "local_cpus",
	"current_link_speed", "current_link_width", "max_link_speed", "max_link_width",
	"secondary_bus_number", "subordinate_bus_number", NULL,
};
/* Names matched as prefixes (virtfn0, virtfn1, ...). */
static const char *const PCI_LINKS[] = { "driver", "iommu_group", "physfn", "virtfn", NULL };

struct class_spec {
	const char *name;
	const char *const *attrs; /* relative paths; see copy_pattern for "a/<any>/b" */
};
static const char *const NET_ATTRS[] = {
	"address", "type", "dev_id", "dev_port", "ifindex", "mtu", "operstate", NULL,
};
static const char *const IB_ATTRS[] = {
	"node_guid", "sys_image_guid", "node_type", "fw_ver", "parent",
	"ports/*/state", "ports/*/phys_state", "ports/*/rate", "ports/*/link_layer",
	"ports/*/lid", "ports/*/lid_mask_count", "ports/*/gids/0", NULL,
};
static const char *const DRM_ATTRS[] = { "dev", NULL };
static const char *const NVME_ATTRS[] = {
	"model", "serial", "firmware_rev", "transport", "address", "cntlid", "state", NULL,
};
static const char *const BLOCK_ATTRS[] = {
	"dev", "size", "partition", "removable", "ro",
	"queue/hw_sector_size", "queue/logical_block_size", "queue/rotational", NULL,
};
static const struct class_spec CLASSES[] = {
	{ "net", NET_ATTRS },   { "infiniband", IB_ATTRS }, { "drm", DRM_ATTRS },
	{ "nvme", NVME_ATTRS }, { "block", BLOCK_ATTRS },   { NULL, NULL },
};

static void die(const char *what, const char *path)
{
	fprintf(stderr, "sysfs-copy: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void path_join(char *buf, const char *a, const char *b)
{
	if (snprintf(buf, PATH_MAX, "%s/%s", a, b) >= PATH_MAX) {
		errno = ENAMETOOLONG;
		die("path", a);
	}
}

/* mkdir -p for OUTDIR + rel; rel is an absolute-looking path like /sys/x. */
static void mkdirs_out(const char *rel)
{
	char p[PATH_MAX];
	path_join(p, outdir, rel);
	for (char *s = p + strlen(outdir) + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			die("mkdir", p);
		*s = '/';
	}
	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		die("mkdir", p);
}

static void mkparent_out(const char *rel)
{
	char d[PATH_MAX];
	snprintf(d, sizeof(d), "%s", rel);
	char *slash = strrchr(d, '/');
	if (slash && slash != d) {
		*slash = '\0';
		mkdirs_out(d);
	}
}

/* Copies the regular file ROOT+rel by content. Attributes that cannot be read
 * (write-only, or refused by the driver, e.g. a link speed with no link) are
 * skipped: the replay must simply not see them either. */
static void copy_file(const char *rel)
{
	char src[PATH_MAX], dst[PATH_MAX];
	static char buf[1 << 16];
	path_join(src, root, rel);
	int fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		n_skipped += errno != ENOENT;
		return;
	}
	/* sysfs returns a binary attribute (config: 4096 bytes for root on PCIe)
	 * in chunks; read to EOF. */
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0) {
			close(fd);
			n_skipped++;
			return;
		}
		if (r == 0 || (len += (size_t)r) == sizeof(buf))
			break;
	}
	close(fd);
	mkparent_out(rel);
	path_join(dst, outdir, rel);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0)
		die("create", dst);
	if (write(out, buf, len) != (ssize_t)len)
		die("write", dst);
	close(out);
	n_files++;
}

static void copy_link(const char *rel)
{
	char src[PATH_MAX], dst[PATH_MAX], target[PATH_MAX];
	path_join(src, root, rel);
	ssize_t n = readlink(src, target, sizeof(target) - 1);
	if (n < 0)
		return;
	target[n] = '\0';
	mkparent_out(rel);
	path_join(dst, outdir, rel);
	if (symlink(target, dst) < 0 && errno != EEXIST)
		die("symlink", dst);
	n_links++;
}

/* Copies ROOT+rel whatever it is: file by content, link as link, directory
 * recursively (used for small subtrees only: nodeN/access0). */
static void copy_any(const char *rel)
{
	char src[PATH_MAX];
	struct stat st;
	path_join(src, root, rel);
	if (lstat(src, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		copy_link(rel);
	} else if (S_ISREG(st.st_mode)) {
		copy_file(rel);
	} else if (S_ISDIR(st.st_mode)) {
		DIR *d = opendir(src);
		if (!d)
			return;
		mkdirs_out(rel);
		struct dirent *e;
		while ((e = readdir(d))) {
			/* Driver-model plumbing every sysfs device dir carries;
			 * no topology in it. */
			if (e->d_name[0] == '.' || !strcmp(e->d_name, "power") ||
			    !strcmp(e->d_name, "uevent") || !strcmp(e->d_name, "subsystem"))
				continue;
			char sub[PATH_MAX];
			path_join(sub, rel, e->d_name);
			copy_any(sub);
		}
		closedir(d);
	}
}

/* "cpu12" with prefix "cpu" */
static bool is_numbered(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) != 0 || !name[n])
		return false;
	for (const char *s = name + n; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* DDDD:BB:DD.F */
static bool is_bdf(const char *s)
{
	unsigned a, b, c, f;
	int n = 0;
	return sscanf(s, "%4x:%2x:%2x.%1x%n", &a, &b, &c, &f, &n) == 4 && s[n] == '\0' &&
	       strlen(s) == 12;
}

/* Calls fn(rel_of_entry, name) for each entry of ROOT+rel. */
static void for_each_entry(const char *rel, void (*fn)(const char *, const char *))
{
	char src[PATH_MAX];
	path_join(src, root, rel);
	DIR *d = opendir(src);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		path_join(sub, rel, e->d_name);
		fn(sub, e->d_name);
	}
	closedir(d);
}

static void cpu_entry(const char *rel, const char *name)
{
	if (!is_numbered(name, "cpu"))
		return;
	char sub[PATH_MAX];
	path_join(sub, rel, "topology");
	copy_any(sub);
}

static void node_entry(const char *rel, const char *name)
{
	static const char *const files[] = { "cpulist", "cpumap", "meminfo", "distance",
					     "access0", "access1", NULL };
	if (!is_numbered(name, "node"))
		return;
	mkdirs_out(rel);
	for (const char *const *f = files; *f; f++) {
		char sub[PATH_MAX];
		path_join(sub, rel, *f);
		copy_any(sub);
	}
}

static void pci_function(const char *rel, const char *name)
{
	char src[PATH_MAX];
	struct stat st;
	if (!is_bdf(name))
		return;
	path_join(src, root, rel);
	/* Children are real directories; links named like a BDF are not ours. */
	if (lstat(src, &st) < 0 || !S_ISDIR(st.st_mode))
		return;
	mkdirs_out(rel);
	for (const char *const *a = PCI_ATTRS; *a; a++) {
		char sub[PATH_MAX];
		path_join(sub, rel, *a);
		copy_file(sub);
	}
	DIR *d = opendir(src);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		for (const char *const *l = PCI_LINKS; *l; l++) {
			if (strncmp(e->d_name, *l, strlen(*l)) == 0 && e->d_type == DT_LNK) {
				char sub[PATH_MAX];
				path_join(sub, rel, e->d_name);
				copy_link(sub);
			}
		}
	}
	closedir(d);
	/* Functions behind a bridge are subdirectories of the bridge. */
	for_each_entry(rel, pci_function);
}

static void link_entry(const char *rel, const char *name)
{
	(void)name;
	copy_link(rel);
}

static void pci_root(const char *rel, const char *name)
{
	if (strncmp(name, "pci", 3) != 0)
		return;
	mkdirs_out(rel);
	for_each_entry(rel, pci_function);
}

/* Resolves the class link ROOT+rel lexically (sysfs links are relative and
 * contain no further links) into a path relative to ROOT. */
static bool resolve_link(const char *rel, char *out)
{
	char src[PATH_MAX], target[PATH_MAX], joined[PATH_MAX * 2];
	path_join(src, root, rel);
	ssize_t n = readlink(src, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	snprintf(joined, sizeof(joined), "%s", rel);
	*strrchr(joined, '/') = '\0';
	strcat(joined, "/");
	strcat(joined, target);
	/* normalise . and .. */
	char *parts[PATH_MAX / 2];
	int np = 0;
	for (char *tok = strtok(joined, "/"); tok; tok = strtok(NULL, "/")) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..")) {
			if (np)
				np--;
			continue;
		}
		parts[np++] = tok;
	}
	out[0] = '\0';
	for (int i = 0; i < np; i++) {
		if (strlen(out) + strlen(parts[i]) + 2 > PATH_MAX)
			return false;
		strcat(out, "/");
		strcat(out, parts[i]);
	}
	return true;
}

/* Copies one attribute pattern of a class device; "ports/ * /state" style
 * patterns (one '*' path component) expand over the directory entries. */
static void copy_pattern(const char *dev, const char *pat)
{
	const char *star = strstr(pat, "/*/");
	char sub[PATH_MAX];
	if (!star) {
		path_join(sub, dev, pat);
		copy_file(sub);
		return;
	}
	char dir[PATH_MAX], src[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/%.*s", dev, (int)(star - pat), pat);
	path_join(src, root, dir);
	DIR *d = opendir(src);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s/%s", dir, e->d_name, star + 3) >= PATH_MAX)
			continue;
		copy_file(sub);
	}
	closedir(d);
}

static const struct class_spec *cur_class;

static void class_entry(const char *rel, const char *name)
{
	char src[PATH_MAX], dev[PATH_MAX];
	struct stat st;
	(void)name;
	path_join(src, root, rel);
	if (lstat(src, &st) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		copy_link(rel);
		if (!resolve_link(rel, dev))
			return;
	} else {
		/* Old kernels keep class devices as directories. */
		snprintf(dev, sizeof(dev), "%s", rel);
	}
	mkdirs_out(dev);
	for (const char *const *a = cur_class->attrs; *a; a++)
		copy_pattern(dev, *a);
	char sub[PATH_MAX];
	path_join(sub, dev, "device"); /* the parent (PCI function, nvme controller) */
	char s2[PATH_MAX];
	path_join(s2, root, sub);
	if (lstat(s2, &st) == 0 && S_ISLNK(st.st_mode))
		copy_link(sub);
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt == 'r')
			root = optarg;
		else
			goto usage;
	}
	if (optind != argc - 1)
		goto usage;
	outdir = argv[optind];
	if (!strcmp(root, "/"))
		root = "";
	if (mkdir(outdir, 0755) < 0 && errno != EEXIST)
		die("mkdir", outdir);

	copy_file("/proc/cpuinfo");
	copy_file("/proc/meminfo");

	copy_file("/sys/devices/system/cpu/online");
	copy_file("/sys/devices/system/cpu/possible");
	for_each_entry("/sys/devices/system/cpu", cpu_entry);

	copy_file("/sys/devices/system/node/online");
	copy_file("/sys/devices/system/node/possible");
	for_each_entry("/sys/devices/system/node", node_entry);

	mkdirs_out("/sys/bus/pci/devices");
	for_each_entry("/sys/bus/pci/devices", link_entry);
	for_each_entry("/sys/devices", pci_root);

	for (const struct class_spec *c = CLASSES; c->name; c++) {
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "/sys/class/%s", c->name);
		cur_class = c;
		for_each_entry(rel, class_entry);
	}

	fprintf(stderr, "sysfs-copy: %u files, %u links copied into %s (%u unreadable skipped)\n",
		n_files, n_links, outdir, n_skipped);
	return 0;

usage:
	fprintf(stderr, "usage: sysfs-copy [-r ROOT] OUTDIR\n");
	return 2;
}
