/* SPDX-License-Identifier: MIT */
/*
 * Devices going and coming back: the kernel's uevents for PCI functions,
 * through a libudev monitor. "remove" (an unplug, a hot-remove, a sysfs
 * remove) revokes the device's pagemaps; "add" (a rescan, a hot-add) serves
 * the pools that went with it again. A periodic look at each live pool's
 * sysfs directory catches what a missed or dropped uevent would not.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "daemon.h"

#if HAVE_LIBUDEV
#include <libudev.h>

/*
 * One monitor per process, as the signals and the log are: struct broker
 * has room for its fd (b->uevent) but not for the monitor itself.
 */
static struct udev *udev;
static struct udev_monitor *monitor;

/* Events handled per wakeup: a storm of them must not starve the sessions
 * (the rest wait in the socket; the loop comes back at once). */
#define EVENTS_PER_TURN 64

static void device_event(struct broker *b, struct udev_device *dev)
{
	const char *action = udev_device_get_action(dev), *bdf = udev_device_get_sysname(dev);

	if (!action || !bdf)
		return;
	blog(LOG_DEBUG, "uevent: %s %s", action, bdf);
	if (!strcmp(action, "remove")) {
		if (registry_revoke_device(b, bdf, -ENODEV) >= 0)
			blog(LOG_INFO, "%s removed: its pagemaps are revoked", bdf);
	} else if (!strcmp(action, "add")) {
		registry_device_added(b, bdf);
	}
}

static void uevent_read(struct broker *b, struct watch *w, uint32_t events)
{
	struct udev_device *dev;

	(void)w;
	(void)events;
	for (int i = 0; i < EVENTS_PER_TURN; i++) {
		dev = udev_monitor_receive_device(monitor);
		if (!dev)
			break;
		device_event(b, dev);
		udev_device_unref(dev);
	}
}

void hotplug_fini(struct broker *b)
{
	if (monitor && b->uevent.fd > 0)
		loop_del(b, &b->uevent);
	b->uevent.fd = -1;
	monitor = udev_monitor_unref(monitor);
	udev = udev_unref(udev);
}

/* libudev returns NULL with errno set, or a negative errno. */
static int monitor_open(void)
{
	int r;

	udev = udev_new();
	if (!udev)
		return errno ? -errno : -ENOMEM;
	/*
	 * "kernel": the kernel's own uevents, not udevd's re-broadcast, so
	 * this works where no udevd runs (containers, minimal QEMU guests).
	 */
	monitor = udev_monitor_new_from_netlink(udev, "kernel");
	if (!monitor)
		return errno ? -errno : -ENOMEM;
	r = udev_monitor_filter_add_match_subsystem_devtype(monitor, "pci", NULL);
	if (r >= 0)
		r = udev_monitor_enable_receiving(monitor);
	return r < 0 ? r : 0;
}

int hotplug_init(struct broker *b)
{
	int r = monitor_open();

	if (r >= 0) {
		b->uevent.fd = udev_monitor_get_fd(monitor);
		b->uevent.cb = uevent_read;
		r = loop_add(b, &b->uevent, EPOLLIN);
	}
	if (r < 0) {
		b->uevent.fd = -1; /* not added: nothing to take out of the loop */
		hotplug_fini(b);
	}
	return r;
}
#else
int hotplug_init(struct broker *b)
{
	(void)b;
	blog(LOG_WARN, "built without libudev: device removals are noticed by polling sysfs, "
	     "and devices that come back are not served again until a restart");
	return 0;
}

void hotplug_fini(struct broker *b)
{
	(void)b;
}
#endif

void hotplug_check_sysfs(struct broker *b)
{
	for (struct pool *p = b->pools; p; p = p->next)
		if (p->pm && !p->gone && !pool_device_present(p)) {
			blog(LOG_INFO, "%s vanished from sysfs: its pagemaps are revoked", p->device);
			registry_revoke_device(b, p->device, -ENODEV);
		}
}
