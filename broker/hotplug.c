/* SPDX-License-Identifier: MIT */
/*
 * Devices going away: the kernel's uevents (NETLINK_KOBJECT_UEVENT, no udev
 * needed) say "remove" for a PCI function being unplugged or hot-removed;
 * a periodic look at each live pool's sysfs directory catches what a
 * missed or filtered uevent would not. Either revokes the device's pagemaps.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker.h"

static void uevent_read(struct broker *b, struct watch *w, uint32_t events)
{
	char buf[8192];
	struct sockaddr_nl from;
	socklen_t fromlen = sizeof(from);
	ssize_t n;

	(void)events;
	while ((n = recvfrom(w->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&from,
			     &fromlen)) > 0) {
		const char *action = NULL, *devpath = NULL, *subsystem = NULL, *slash;

		/* Only the kernel's own messages (udev re-broadcasts differ). */
		if (fromlen != sizeof(from) || from.nl_pid != 0) {
			fromlen = sizeof(from);
			continue;
		}
		fromlen = sizeof(from);
		buf[n] = '\0';
		/* "remove@/devices/...\0ACTION=remove\0DEVPATH=...\0SUBSYSTEM=pci\0..." */
		for (char *kv = buf; kv < buf + n; kv += strlen(kv) + 1) {
			if (!strncmp(kv, "ACTION=", 7))
				action = kv + 7;
			else if (!strncmp(kv, "DEVPATH=", 8))
				devpath = kv + 8;
			else if (!strncmp(kv, "SUBSYSTEM=", 10))
				subsystem = kv + 10;
		}
		if (!action || !devpath || !subsystem || strcmp(action, "remove") ||
		    strcmp(subsystem, "pci"))
			continue;
		slash = strrchr(devpath, '/');
		if (!slash)
			continue;
		if (registry_revoke_device(b, slash + 1, -ENODEV) >= 0)
			blog(LOG_INFO, "%s removed: its pagemaps are revoked", slash + 1);
	}
}

int hotplug_init(struct broker *b)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = 1 };
	int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_KOBJECT_UEVENT);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	b->uevent.fd = fd;
	b->uevent.cb = uevent_read;
	return loop_add(b, &b->uevent, EPOLLIN);
}

void hotplug_check_sysfs(struct broker *b)
{
	for (struct pool *p = b->pools; p; p = p->next)
		if (p->pm && p->sysfs[0] && !p->gone && access(p->sysfs, F_OK) < 0) {
			blog(LOG_INFO, "%s vanished from sysfs: its pagemaps are revoked", p->device);
			registry_revoke_device(b, p->device, -ENODEV);
		}
}
