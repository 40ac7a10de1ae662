/* SPDX-License-Identifier: MIT */
/*
 * Test helper, a pagemap holder: pm_watch [--timeout S] DEVICE[/REGION]...
 * connects ($PAGEMAP_SOCKET), opens a pagemap of each device, prints
 * "open DEVICE id=N" (or "error DEVICE -ERRNO"), then holds the fds and the
 * connection as a client would, printing "revoked DEVICE id=N reason=R" for
 * each REVOKED event and "hup DEVICE" when the broker hangs up. Exits 0 once
 * every opened fd has hung up, 1 at the timeout (0: never) or on an error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagemap.h"

#define MAX_DEVS 16

int main(int argc, char **argv)
{
	struct pollfd pfd[MAX_DEVS];
	const char *name[MAX_DEVS];
	int n = 0, left = 0, timeout_s = 30, argi = 1;
	struct pm_client *c;
	time_t end;
	int r;

	if (argc > 2 && !strcmp(argv[1], "--timeout")) {
		timeout_s = atoi(argv[2]);
		argi = 3;
	}
	if (argi >= argc || argc - argi > MAX_DEVS) {
		fprintf(stderr, "usage: pm_watch [--timeout S] DEVICE[/REGION]... (at most %d)\n",
			MAX_DEVS);
		return 2;
	}
	r = pm_connect(NULL, &c);
	if (r < 0) {
		fprintf(stderr, "pm_watch: connect: %s\n", strerror(-r));
		return 1;
	}
	for (int i = argi; i < argc; i++) {
		char dev[128], *slash;
		struct pagemap_info info;
		int fd;

		snprintf(dev, sizeof(dev), "%s", argv[i]);
		slash = strchr(dev, '/');
		if (slash)
			*slash++ = '\0';
		fd = pagemap_open(c, dev, slash, 0);
		if (fd < 0 || pagemap_query(fd, &info) < 0) {
			printf("error %s %d\n", argv[i], fd < 0 ? fd : -EIO);
			if (fd >= 0)
				close(fd);
			continue;
		}
		printf("open %s id=%llu\n", argv[i], (unsigned long long)info.id);
		name[n] = argv[i];
		pfd[n].fd = fd;
		pfd[n].events = POLLIN;
		n++;
	}
	fflush(stdout);
	left = n;
	end = time(NULL) + timeout_s;
	while (left > 0 && (!timeout_s || time(NULL) < end)) {
		if (poll(pfd, (nfds_t)n, 200) < 0 && errno != EINTR) {
			pm_disconnect(c);
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct pagemap_event ev;

			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			while ((r = pagemap_read_event(pfd[i].fd, &ev)) == 1)
				printf("revoked %s id=%llu reason=%d\n", name[i],
				       (unsigned long long)ev.id, ev.reason);
			if (r == -ENODEV || (pfd[i].revents & POLLHUP)) {
				printf("hup %s\n", name[i]);
				close(pfd[i].fd);
				pfd[i].fd = -1;
				left--;
			}
		}
		fflush(stdout);
	}
	pm_disconnect(c);
	return left ? 1 : 0;
}
