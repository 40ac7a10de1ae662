/* SPDX-License-Identifier: MIT */
/*
 * Test helper, a service manager's notify socket:
 *
 *   notify_listen PATH [TIMEOUT_S]
 *
 * binds an AF_UNIX datagram socket at PATH (what $NOTIFY_SOCKET names) and
 * prints each line of each message as "PID LINE", PID being the sender's
 * from SCM_CREDENTIALS (systemd checks it against the main pid the same
 * way), flushed at once so a script can wait for a line. Exits 0 on
 * SIGTERM or SIGINT, 1 after TIMEOUT_S (default 60) or on an error; the
 * socket file is removed either way.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int bind_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, on = 1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "notify_listen: %s: path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "notify_listen: %s: %s\n", path, strerror(errno));
		return -1;
	}
	return fd;
}

/* One datagram: its sender's pid, then each of its lines. */
static int receive(int fd)
{
	char buf[4096], ctl[CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	struct ucred cred = { .pid = -1 };
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

	if (n < 0)
		return errno == EINTR ? 0 : -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
	buf[n] = '\0';
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		printf("%d %s\n", (int)cred.pid, line);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, wait_mask;
	int timeout_s = argc > 2 ? atoi(argv[2]) : 60, fd, status = 1;
	time_t end;

	if (argc < 2 || argc > 3 || timeout_s <= 0) {
		fprintf(stderr, "usage: notify_listen PATH [TIMEOUT_S]\n");
		return 2;
	}
	/* Signals arrive only inside ppoll(): a stop is never missed between
	 * the check of stop and the wait. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &wait_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	fd = bind_at(argv[1]);
	if (fd < 0)
		return 1;
	end = time(NULL) + timeout_s;
	while (!stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct timespec ts = { .tv_sec = end - time(NULL) };
		int r;

		if (ts.tv_sec <= 0) {
			fprintf(stderr, "notify_listen: %s: no stop after %d s\n", argv[1], timeout_s);
			goto out;
		}
		r = ppoll(&p, 1, &ts, &wait_mask);
		if (r < 0 && errno != EINTR)
			goto out;
		if (r > 0 && receive(fd) < 0)
			goto out;
	}
	status = 0;
out:
	unlink(argv[1]);
	close(fd);
	return status;
}
