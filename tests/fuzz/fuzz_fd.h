/* SPDX-License-Identifier: MIT */
/*
 * File descriptor leak check shared by the fuzz targets: ASan finds leaked
 * memory, not leaked fds, and a parser that forgets to close a received fd or
 * a directory stream would exhaust the broker's fd table one message at a time.
 */
#ifndef PAGEMAP_FUZZ_FD_H
#define PAGEMAP_FUZZ_FD_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The lowest free fd number: the same before and after every input, or an
 * input left an fd open. Probed around each input, not once at start: the
 * fuzzer itself opens and closes files between inputs. */
static inline int fuzz_fd_probe(void)
{
	int fd = fcntl(0, F_DUPFD_CLOEXEC, 0);

	if (fd < 0) {
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			abort();
	}
	close(fd);
	return fd;
}

static inline void fuzz_fd_check(int baseline, const char *target)
{
	int now = fuzz_fd_probe();

	if (now != baseline) {
		fprintf(stderr, "%s: fd leak: lowest free fd %d after the input, %d before\n",
			target, now, baseline);
		abort();
	}
}
#endif
