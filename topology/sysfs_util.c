/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sysfs_util.h"
#include "topo.h"

int sysfs_path(char *buf, size_t len, const char *root, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s", root ? root : "");

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	if (m < 0 || (size_t)m >= len - (size_t)n)
		return -ENAMETOOLONG;
	return 0;
}

long sysfs_read_bin(const char *path, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0)
		return -errno;
	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;

			close(fd);
			/* Some attributes fail with EIO/EINVAL at read time (e.g.
			 * link speed of a device in D3cold): report, don't crash. */
			return got ? (long)got : e;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	return (long)got;
}

int sysfs_read_str(const char *path, char *buf, size_t len)
{
	long n;

	if (len == 0)
		return -EINVAL;
	n = sysfs_read_bin(path, buf, len - 1);
	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return (int)n;
}

int sysfs_read_long(const char *path, long *out)
{
	char buf[64], *end;
	long v;
	int r = sysfs_read_str(path, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	v = strtol(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	*out = v;
	return 0;
}

int sysfs_read_u64(const char *path, uint64_t *out)
{
	char buf[64], *end;
	unsigned long long v;
	int r = sysfs_read_str(path, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	v = strtoull(buf, &end, 0);
	if (errno || end == buf)
		return -EINVAL;
	*out = v;
	return 0;
}

int sysfs_link_basename(const char *path, char *buf, size_t len)
{
	char target[4096];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	const char *base;

	if (n < 0)
		return -errno;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

static int is_bdf(const char *s, size_t n)
{
	uint32_t dom;
	uint8_t bus, dev, fn;
	char tmp[32];

	if (n >= sizeof(tmp))
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return topo_parse_bdf(tmp, false, &dom, &bus, &dev, &fn);
}

int sysfs_link_last_bdf(const char *path, char *bdf, size_t len)
{
	char target[4096];
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	const char *found = NULL;
	size_t flen = 0;

	if (n < 0)
		return -errno;
	target[n] = '\0';
	for (char *c = target; *c;) {
		char *slash = strchr(c, '/');
		size_t clen = slash ? (size_t)(slash - c) : strlen(c);

		if (is_bdf(c, clen)) {
			found = c;
			flen = clen;
		}
		c += clen;
		if (*c == '/')
			c++;
	}
	if (!found)
		return -ENOENT;
	if (flen >= len)
		return -ENAMETOOLONG;
	memcpy(bdf, found, flen);
	bdf[flen] = '\0';
	return 0;
}
