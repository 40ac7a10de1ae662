/* SPDX-License-Identifier: MIT */
/*
 * pagemapd as a service: what main() tells the service manager (daemon.c),
 * and the end of the device event monitor (hotplug.c). The fuzzer's
 * in-process broker uses none of it.
 */
#ifndef PAGEMAP_DAEMON_H
#define PAGEMAP_DAEMON_H

#include "broker.h"

/* broker/meson.build defines it; builds of the broker's files elsewhere
 * (scripts/run-fuzz) go without libsystemd. */
#ifndef HAVE_LIBSYSTEMD
#define HAVE_LIBSYSTEMD 0
#endif

/*
 * sd_notify(3) for Type=notify: each is a no-op without $NOTIFY_SOCKET or
 * without libsystemd. ready: READY=1 and the first STATUS=, once serving.
 */
void daemon_notify_ready(struct broker *b);
/* STATUS= again when what it says changed, at most once a second. Returns
 * the ms until a held-back update may go (the loop's timeout), -1 none. */
int daemon_notify_status(struct broker *b);
void daemon_notify_stopping(struct broker *b);
/* The start failed with err (-errno): STATUS= and ERRNO= say why. */
void daemon_notify_failed(int err);

/* Stops watching device events and frees the monitor (broker_stop). */
void hotplug_fini(struct broker *b);

#endif
