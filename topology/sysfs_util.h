/* SPDX-License-Identifier: MIT */
/* Small readers for sysfs/procfs attributes below an optional replay root. */
#ifndef PAGEMAP_SYSFS_UTIL_H
#define PAGEMAP_SYSFS_UTIL_H
#include <stddef.h>
#include <stdint.h>

/* Joins root ("" for live) and a printf-formatted absolute path. */
int sysfs_path(char *buf, size_t len, const char *root, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Reads a whole attribute, trailing newline stripped. Returns its length or -errno. */
int sysfs_read_str(const char *path, char *buf, size_t len);
int sysfs_read_long(const char *path, long *out);      /* decimal or 0x-prefixed hex */
int sysfs_read_u64(const char *path, uint64_t *out);
/* Basename of a symlink's target ("../../bus/pci/drivers/nvme" -> "nvme"). */
int sysfs_link_basename(const char *path, char *buf, size_t len);
/* The last PCI BDF-looking component of a symlink's target, as hwloc attaches
 * class devices to their PCI function. Returns 0 or -ENOENT. */
int sysfs_link_last_bdf(const char *path, char *bdf, size_t len);
/* Reads up to len bytes of a binary file. Returns bytes read or -errno. */
long sysfs_read_bin(const char *path, void *buf, size_t len);
#endif
