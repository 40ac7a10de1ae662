/* SPDX-License-Identifier: MIT */
/*
 * The broker's life: start (topology, pools, the socket, the loop's fds, the
 * engine, peers), one turn of the loop at a time, and the stop, which sends
 * device-resident data home before anything is freed. main.c drives it for
 * pagemapd; the stateful fuzzer drives it in-process (tests/fuzz/).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "broker.h"
#include "daemon.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

int broker_dir_ours(const char *dir, mode_t mode, bool repair)
{
	struct stat st;
	int fd, r = 0;

	if (mkdir(dir, mode) < 0 && errno != EEXIST)
		return -errno;
	/* Through an fd, not the path: a link planted in its place is refused. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (st.st_uid != geteuid())
		r = -EPERM;
	else if (repair && (st.st_mode & 07777) != mode && fchmod(fd, mode) < 0)
		r = -errno;
	else if (!repair && (st.st_mode & 022))
		r = -EPERM;
	close(fd);
	return r;
}

/*
 * The socket's directory: searchable by whoever should reach the socket,
 * everyone for the system broker (root's, in /run, where the policy decides
 * who may open what), only its user for a user's broker.
 */
static int socket_dir(const char *dir, mode_t mode)
{
	int r = broker_dir_ours(dir, mode, true);

	if (r < 0)
		blog(LOG_ERR, "%s: %s", dir,
		     r == -EPERM ? "owned by another user: not ours to listen in" : strerror(-r));
	return r;
}

static int default_socket(char *buf, size_t len)
{
	const char *rt = getenv("XDG_RUNTIME_DIR"), *env = getenv("PAGEMAP_SOCKET");
	int r;

	/* Clients find the broker through $PAGEMAP_SOCKET too. */
	if (env && *env) {
		snprintf(buf, len, "%s", env);
		return 0;
	}
	if (getuid() == 0)
		rt = "/run";
	if (!rt || !*rt)
		return -ENOENT;
	snprintf(buf, len, "%s/pagemap", rt);
	r = socket_dir(buf, getuid() == 0 ? 0755 : 0700);
	if (r < 0)
		return r;
	snprintf(buf, len, "%s/pagemap/broker.sock", rt);
	return 0;
}

/* A socket file nobody listens on is stale (a crashed broker): replace it. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, probe, r;
	mode_t old;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		if (connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(probe);
			return -EADDRINUSE;
		}
		close(probe);
	}
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/*
	 * Anyone may connect: what they may open is the policy's business, and a
	 * user's broker lives in a 0700 runtime directory anyway. The mode comes
	 * from the umask at bind(), not a chmod() by path afterwards, which
	 * would follow whatever was put at that path in between.
	 */
	old = umask(0111);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

/* The socket file of our own: the configured path, else the default one. */
static int own_socket(struct broker *b)
{
	int fd;

	if (!b->conf.socket_path[0] &&
	    default_socket(b->conf.socket_path, sizeof(b->conf.socket_path)) < 0) {
		blog(LOG_ERR, "no socket path: set --socket or XDG_RUNTIME_DIR");
		return -ENOENT;
	}
	fd = listen_on(b->conf.socket_path);
	if (fd < 0) {
		blog(LOG_ERR, "%s: %s", b->conf.socket_path, strerror(-fd));
		return fd;
	}
	/* Only now: a path another broker answers on is never ours to unlink. */
	b->owns_path = true;
	return fd;
}

/* A start that fails leaves no socket file that nobody will ever answer. */
static void own_socket_drop(struct broker *b)
{
	if (!b->owns_path)
		return;
	unlink(b->conf.socket_path);
	b->owns_path = false;
}

#if HAVE_LIBSYSTEMD
/* The path systemd bound, for the log (the unit's ListenStream=). */
static void systemd_socket_name(int fd, char *buf, size_t len)
{
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 ||
	    salen <= offsetof(struct sockaddr_un, sun_path) || !sa.sun_path[0])
		return;
	snprintf(buf, len, " %.*s", (int)(salen - offsetof(struct sockaddr_un, sun_path)),
		 sa.sun_path);
}

/*
 * The socket a service manager passed (pagemapd.socket): exactly one
 * listening AF_UNIX stream socket. Anything else is a unit written wrong,
 * and guessing which fd to serve could hand pagemaps out where nobody
 * meant to. The fd, -ENOENT when none was passed, else -errno.
 */
static int systemd_socket(char *name, size_t len)
{
	int n = sd_listen_fds(1), fd = SD_LISTEN_FDS_START, r;

	if (n == 0)
		return -ENOENT;
	if (n < 0) {
		blog(LOG_ERR, "the sockets systemd passed: %s", strerror(-n));
		return n;
	}
	if (n > 1) {
		blog(LOG_ERR, "systemd passed %d sockets: pagemapd serves one "
		     "(one ListenStream= in pagemapd.socket)", n);
		return -EINVAL;
	}
	r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
	if (r <= 0) {
		blog(LOG_ERR, "the socket systemd passed (fd %d) is not a listening AF_UNIX "
		     "stream socket%s%s", fd, r < 0 ? ": " : "", r < 0 ? strerror(-r) : "");
		return r < 0 ? r : -EINVAL;
	}
	/* As our own socket: accept() must not block on a client that left. */
	r = fcntl(fd, F_GETFL);
	if (r < 0 || fcntl(fd, F_SETFL, r | O_NONBLOCK) < 0)
		return -errno;
	systemd_socket_name(fd, name, len);
	return fd;
}
#else
/*
 * Without libsystemd passed sockets are not served (nor expected: the
 * units are not installed then). A manager that passes some anyway waits
 * for a broker on them: say so and stop, rather than serve elsewhere.
 */
static int systemd_socket(char *name, size_t len)
{
	const char *pid = getenv("LISTEN_PID");
	char self[24];

	(void)name;
	(void)len;
	snprintf(self, sizeof(self), "%ld", (long)getpid());
	if (!getenv("LISTEN_FDS") || !pid || strcmp(pid, self))
		return -ENOENT;
	blog(LOG_ERR, "systemd passed sockets (LISTEN_FDS), but this pagemapd is built "
	     "without libsystemd (meson -Dsystemd=enabled)");
	return -EOPNOTSUPP;
}
#endif

static void timer_fired(struct broker *b, struct watch *w, uint32_t events)
{
	uint64_t ticks;

	(void)events;
	if (read(w->fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		blog(LOG_WARN, "timer: %s", strerror(errno));
	hotplug_check_sysfs(b);
	session_accept_resume(b);
	recover_expire(b);
	registry_expire(b, pressure_high(b));
	engine_kick(b); /* chunks whose residency ended */
	peers_tick(b);  /* peers to reconnect */
	loop_arm_timer(b);
}

static void signal_fired(struct broker *b, struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(w->fd, &si, sizeof(si)) == sizeof(si))
		blog(LOG_INFO, "signal %u: exiting", si.ssi_signo);
	b->running = false;
}

/*
 * Every session, handle, allocation and async migration holds an fd here:
 * run with the hard limit, not the soft 1024 a service is started with
 * (systemd's default for its children, for select()'s sake; we use epoll).
 */
static void raise_fd_limit(struct broker *b)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			blog(LOG_WARN, "cannot raise the fd limit to %llu: %s",
			     (unsigned long long)rl.rlim_max, strerror(errno));
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	/* A uid's share of them, unless the configuration says otherwise. */
	if (!b->conf.max_fds_per_uid) {
		uint64_t share = rl.rlim_cur / 4;

		b->conf.max_fds_per_uid = share < 256 ? 256 : share > (1u << 24) ? 1u << 24
										 : (uint32_t)share;
	}
	blog(LOG_DEBUG, "fd limit %llu, a uid's share %u", (unsigned long long)rl.rlim_cur,
	     b->conf.max_fds_per_uid);
}

/* Where a passed socket listens (" PATH"), for the log; "" when our own. */
static char systemd_name[sizeof(((struct sockaddr_un *)0)->sun_path) + 2];

static int setup(struct broker *b, bool signals)
{
	struct topo_discover_opts o = { 0 };
	char err[1024] = "";
	sigset_t mask;
	int r, listen_fd;

	if (b->conf.topology[0]) {
		r = topo_file_load(b->conf.topology, &b->topo, err, sizeof(err));
		if (r == 0 && !b->topo->emulated)
			blog(LOG_WARN, "%s is not marked emulated: serving it as emulated anyway",
			     b->conf.topology);
		if (r == 0)
			b->topo->emulated = true;
	} else {
		o.sysfs_root = b->conf.sysfs_root[0] ? b->conf.sysfs_root : NULL;
		o.errbuf = err;
		o.errlen = sizeof(err);
		r = topo_discover(&o, &b->topo);
	}
	if (r < 0) {
		blog(LOG_ERR, "topology: %s", err[0] ? err : strerror(-r));
		return r;
	}
	r = pools_build(b, b->conf.bars, b->conf.nbars);
	if (r < 0)
		return r;
	policy_resolve(b);
	raise_fd_limit(b);
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (b->epfd < 0)
		return -errno;
	listen_fd = systemd_socket(systemd_name, sizeof(systemd_name));
	if (listen_fd == -ENOENT)
		listen_fd = own_socket(b);
	if (listen_fd < 0)
		return listen_fd;
	b->listen.fd = listen_fd;
	b->listen.cb = session_accept;
	if ((r = loop_add(b, &b->listen, EPOLLIN)) < 0)
		return r;
	b->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	b->timer.cb = timer_fired;
	if (b->timer.fd < 0 || (r = loop_add(b, &b->timer, EPOLLIN)) < 0)
		return b->timer.fd < 0 ? -errno : r;
	if (!signals)
		goto signals_done;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A client's pm_store past its file's size limit fails with EFBIG
	 * rather than killing the broker. */
	signal(SIGXFSZ, SIG_IGN);
	b->signals.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	b->signals.cb = signal_fired;
	if (b->signals.fd < 0 || (r = loop_add(b, &b->signals, EPOLLIN)) < 0)
		return b->signals.fd < 0 ? -errno : r;
signals_done:
	if ((r = hotplug_init(b)) < 0)
		blog(LOG_WARN, "no uevents (%s): removals are noticed by polling sysfs",
		     strerror(-r));
	return recover_init(b);
}


int broker_start(struct broker *b, bool signals)
{
	int r = setup(b, signals);

	if (r < 0)
		goto fail;
	r = engine_init(b);
	if (r < 0) {
		blog(LOG_ERR, "migration engine: %s", strerror(-r));
		goto fail;
	}
	r = peers_init(b);
	if (r < 0) {
		blog(LOG_ERR, "peer brokers: %s", strerror(-r));
		goto fail;
	}
	if (b->owns_path)
		blog(LOG_INFO, "listening on %s (%s, %zu NUMA nodes%s)", b->conf.socket_path,
		     b->topo->source, b->topo->n_numa, b->topo->emulated ? ", EMULATED" : "");
	else
		blog(LOG_INFO, "listening on systemd socket%s (%s, %zu NUMA nodes%s)", systemd_name,
		     b->topo->source, b->topo->n_numa, b->topo->emulated ? ", EMULATED" : "");
	b->running = true;
	return 0;
fail:
	own_socket_drop(b);
	return r;
}

int broker_dispatch(struct broker *b, int timeout_ms)
{
	struct epoll_event ev[32];
	int n = epoll_wait(b->epfd, ev, 32, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct watch *w = ev[i].data.ptr;

		if (w->fd >= 0)
			w->cb(b, w, ev[i].events);
	}
	loop_reap(b);
	return n;
}

void broker_stop(struct broker *b)
{
	/* Nothing in a device pool is lost to a restart: it goes home first. */
	if (b->engine)
		registry_shutdown(b);
	hotplug_fini(b);
	session_free_all(b);
	engine_fini(b);
	peers_fini(b);
	registry_free(b);
	recover_fini(b);
	uid_free_all(b);
	loop_reap(b);
	pools_free(b);
	topo_graph_free(b->topo);
	b->topo = NULL;
	if (b->owns_path && b->conf.socket_path[0])
		unlink(b->conf.socket_path);
	/* The loop's own fds (0 where never opened: b starts zeroed). */
	if (b->listen.fd > 0)
		close(b->listen.fd);
	if (b->timer.fd > 0)
		close(b->timer.fd);
	if (b->signals.fd > 0)
		close(b->signals.fd);
	if (b->epfd > 0)
		close(b->epfd);
}

/* ---- the service manager (Type=notify) ---- */

#if HAVE_LIBSYSTEMD
/* What the last STATUS= said and when: updates are rate-limited. */
static struct {
	bool on; /* $NOTIFY_SOCKET was set when we became ready */
	char sent[128];
	uint64_t sent_ms;
} status;

static void status_line(const struct broker *b, char *buf, size_t len)
{
	unsigned pools = 0;

	for (const struct pool *p = b->pools; p; p = p->next)
		pools++;
	snprintf(buf, len, "serving %u pool%s, %llu pagemap%s, %llu session%s", pools,
		 pools == 1 ? "" : "s", (unsigned long long)b->stats.pagemaps,
		 b->stats.pagemaps == 1 ? "" : "s", (unsigned long long)b->stats.sessions,
		 b->stats.sessions == 1 ? "" : "s");
}

/* first: what goes before STATUS= in the same datagram ("READY=1\n"). */
static void status_send(const char *first, const char *line)
{
	snprintf(status.sent, sizeof(status.sent), "%s", line);
	status.sent_ms = now_ms();
	sd_notifyf(0, "%sSTATUS=%s", first, line);
}

void daemon_notify_ready(struct broker *b)
{
	char line[sizeof(status.sent)];

	status.on = getenv("NOTIFY_SOCKET") != NULL;
	if (!status.on)
		return;
	status_line(b, line, sizeof(line));
	status_send("READY=1\n", line);
}

/*
 * Sessions come and go by the thousand a second under load: one datagram
 * to the manager per change would be its load too. A change within a
 * second of the last update waits for the second to end.
 */
int daemon_notify_status(struct broker *b)
{
	char line[sizeof(status.sent)];
	uint64_t now;

	if (!status.on)
		return -1;
	status_line(b, line, sizeof(line));
	if (!strcmp(line, status.sent))
		return -1;
	now = now_ms();
	if (now - status.sent_ms < 1000)
		return (int)(status.sent_ms + 1000 - now);
	status_send("", line);
	return -1;
}

void daemon_notify_stopping(struct broker *b)
{
	(void)b;
	if (status.on)
		sd_notify(0, "STOPPING=1\nSTATUS=stopping: device data goes home first");
}

void daemon_notify_failed(int err)
{
	sd_notifyf(0, "STATUS=failed to start: %s\nERRNO=%d", strerror(-err), -err);
}
#else
void daemon_notify_ready(struct broker *b)
{
	(void)b;
}

int daemon_notify_status(struct broker *b)
{
	(void)b;
	return -1;
}

void daemon_notify_stopping(struct broker *b)
{
	(void)b;
}

void daemon_notify_failed(int err)
{
	(void)err;
}
#endif
