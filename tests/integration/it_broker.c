/* SPDX-License-Identifier: MIT */
/* Integration-test helpers (it_broker.h): a real pagemapd per test. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "it_broker.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/*
 * Brokers and directories a fatal assertion left behind when it jumped out
 * of a test: copies, not pointers (the test's it_broker was on its stack).
 * Cleaned up at exit.
 */
static struct leftover {
	pid_t pid;
	char dir[sizeof(((struct it_broker *)0)->dir)];
} leftovers[16];

static void clean_leftovers(void)
{
	for (unsigned i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++) {
		struct leftover *l = &leftovers[i];

		if (l->pid > 0) {
			kill(l->pid, SIGKILL);
			waitpid(l->pid, NULL, 0);
		}
		if (l->dir[0])
			nftw(l->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		memset(l, 0, sizeof(*l));
	}
}

/* Records b's directory and pid (pid 0: not running); gone: forgets it. */
static void track(const struct it_broker *b, bool gone)
{
	static bool registered;
	struct leftover *l = NULL;

	if (!registered) {
		atexit(clean_leftovers);
		registered = true;
	}
	for (unsigned i = 0; i < sizeof(leftovers) / sizeof(leftovers[0]); i++)
		if (!strcmp(leftovers[i].dir, b->dir) || (!l && !leftovers[i].dir[0]))
			l = &leftovers[i];
	if (!l)
		return;
	if (gone) {
		if (!strcmp(l->dir, b->dir))
			memset(l, 0, sizeof(*l));
		return;
	}
	l->pid = b->pid;
	snprintf(l->dir, sizeof(l->dir), "%s", b->dir);
}

uint64_t it_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t it_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void it_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int it_count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/fd");
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return pid ? n : n - 1; /* not the directory stream's own fd */
}

bool it_has_fd_named(pid_t pid, const char *s)
{
	char path[64], link[320], target[256];
	struct dirent *e;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!found && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", path, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		found = strstr(target, s) != NULL;
	}
	closedir(d);
	return found;
}

int it_broker_fds_settle(const struct it_broker *b, int n, unsigned ms)
{
	int have = it_count_fds(b->pid);

	IT_WAIT_UNTIL((have = it_count_fds(b->pid)) == n, ms)
		;
	return have;
}

const char *it_path(const struct it_broker *b, const char *name)
{
	static char bufs[8][256];
	static unsigned next;
	char *buf = bufs[next++ % 8];

	snprintf(buf, sizeof(bufs[0]), "%s/%s", b->dir, name);
	return buf;
}

int it_write_file(const char *path, const char *text)
{
	char tmp[300];
	size_t len = strlen(text);
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -EIO;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	return r;
}

int it_broker_init(struct it_broker *b)
{
	const char *tmp = getenv("TMPDIR");

	memset(b, 0, sizeof(*b));
	/* Socket paths are short (108 bytes): a long TMPDIR is not used. */
	if (!tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	snprintf(b->dir, sizeof(b->dir), "%s/pm-it-XXXXXX", tmp);
	if (!mkdtemp(b->dir))
		return -errno;
	track(b, false);
	snprintf(b->sock, sizeof(b->sock), "%s/broker.sock", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
	return 0;
}

static void dump_log(const struct it_broker *b)
{
	char line[512];
	FILE *f = fopen(b->log, "re");

	if (!f)
		return;
	fprintf(stderr, "---- pagemapd log (%s) ----\n", b->log);
	while (fgets(line, sizeof(line), f))
		fprintf(stderr, "  %s", line);
	fprintf(stderr, "----\n");
	fclose(f);
}

static int try_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = -errno;

		close(fd);
		return r;
	}
	return fd;
}

int it_broker_start(struct it_broker *b, const struct it_opts *o)
{
	const char *bin = getenv("PAGEMAPD"), *wrap = getenv("PAGEMAPD_WRAPPER");
	char linger[32], topo[4096];
	const char *argv[32];
	char wrapper[256];
	struct pm_client *c = NULL;
	unsigned argc = 0;
	uint64_t deadline;
	int r;

	if (!bin)
		return -ENOENT;
	b->self_fds = it_count_fds(0);
	b->failures = CU_get_number_of_failures();
	snprintf(linger, sizeof(linger), "%d", o->linger_ms);
	snprintf(topo, sizeof(topo), "%s", cu_source_path(o->topology ? o->topology : IT_TOPOLOGY));
	/* $PAGEMAPD_WRAPPER runs the broker under a tool: "valgrind -q
	 * --error-exitcode=99" turns its memory errors into a failed exit. */
	snprintf(wrapper, sizeof(wrapper), "%s", wrap ? wrap : "");
	for (char *save = NULL, *w = strtok_r(wrapper, " ", &save); w && argc < 16;
	     w = strtok_r(NULL, " ", &save))
		argv[argc++] = w;
	argv[argc++] = bin;
	argv[argc++] = "--socket";
	argv[argc++] = b->sock;
	argv[argc++] = "--linger-ms";
	argv[argc++] = linger;
	if (!o->no_topology) {
		argv[argc++] = "--topology";
		argv[argc++] = topo;
	}
	{
		/* Without a config of the test's, the host's own memory pressure
		 * (/proc/pressure/memory) must not reclaim lingering pagemaps. */
		const char *text = o->config ? o->config : "{\"pressure\": {\"psi_path\": \"\"}}\n";
		const char *cfg = it_path(b, "config.json");

		if ((r = it_write_file(cfg, text)) < 0)
			return r;
		argv[argc++] = "--config";
		argv[argc++] = cfg;
	}
	if (o->verbose)
		argv[argc++] = "-v";
	argv[argc] = NULL;

	fflush(NULL);
	b->pid = fork();
	if (b->pid < 0) {
		b->pid = 0;
		return -errno;
	}
	if (b->pid == 0) {
		int log = open(b->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int null = open("/dev/null", O_RDONLY);

		if (log < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(log, 1);
		dup2(log, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	track(b, false);
	/* Until the socket accepts and a HELLO round trip answers. */
	deadline = it_now_ms() + 10000;
	for (;;) {
		int status;

		if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
			fprintf(stderr, "pagemapd exited at start (status 0x%x)\n", status);
			b->pid = 0;
			track(b, false);
			dump_log(b);
			return -ECHILD;
		}
		if (pm_connect(b->sock, &c) == 0)
			break;
		if (it_now_ms() > deadline)
			return -ETIMEDOUT;
		it_sleep_ms(5);
	}
	r = pm_ping(c);
	pm_disconnect(c);
	return r;
}

bool it_broker_up(struct it_broker *b, int linger_ms)
{
	struct it_opts o = { .linger_ms = linger_ms };
	int r = it_broker_init(b);

	if (r == 0)
		r = it_broker_start(b, &o);
	if (r < 0)
		fprintf(stderr, "cannot start pagemapd: %s\n", strerror(-r));
	CU_ASSERT_EQUAL(r, 0);
	if (r < 0)
		it_broker_stop(b);
	return r == 0;
}

static void list_fds(void)
{
	char link[300], target[256];
	struct dirent *e;
	DIR *d = opendir("/proc/self/fd");

	while (d && (e = readdir(d))) {
		ssize_t n;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
	}
	if (d)
		closedir(d);
}

void it_broker_stop(struct it_broker *b)
{
	int status = -1, fds;

	if (b->pid > 0) {
		kill(b->pid, SIGTERM);
		status = it_reap(b->pid, 5000);
		b->pid = 0;
		/* Exit 0 after SIGTERM: it shut down cleanly and never crashed. */
		if (status != 0)
			fprintf(stderr, "pagemapd exit status %d (128+N: signal N)\n", status);
		CU_ASSERT_EQUAL(status, 0);
		/* What this test opened, it closed: no fd leaked on our side. */
		fds = it_count_fds(0);
		if (fds != b->self_fds) {
			fprintf(stderr, "test process: %d fds open at the end, %d at the start:\n", fds,
				b->self_fds);
			list_fds();
		}
		CU_ASSERT_EQUAL(fds, b->self_fds);
	}
	if (CU_get_number_of_failures() > b->failures)
		dump_log(b);
	if (b->dir[0]) {
		nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		track(b, true);
	}
	b->dir[0] = '\0';
}

int it_broker_open_to_all(const struct it_broker *b)
{
	if (chmod(b->dir, 0755) < 0 || chmod(b->sock, 0666) < 0)
		return -errno;
	return 0;
}

bool it_log_has(const struct it_broker *b, ...)
{
	char line[1024];
	bool found = false;
	FILE *f = fopen(b->log, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		const char *s;
		va_list ap;

		found = true;
		va_start(ap, b);
		while ((s = va_arg(ap, const char *)))
			if (!strstr(line, s))
				found = false;
		va_end(ap);
	}
	fclose(f);
	return found;
}

int it_copy_tree(const char *from, const char *to)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("cp", "cp", "-a", from, to, (char *)NULL);
		_exit(127);
	}
	return it_reap(pid, 20000) == 0 ? 0 : -1;
}

struct pm_client *it_connect(const struct it_broker *b)
{
	struct pm_client *c = NULL;

	return pm_connect(b->sock, &c) == 0 ? c : NULL;
}

int it_stats(struct pm_client *c, struct pm_stats_reply *st)
{
	size_t len = 0;
	int r;

	memset(st, 0, sizeof(*st));
	/* The reply body is everything after pm_reply. */
	r = pm_client_call(c, PM_OP_STATS, NULL, 0, &st->sessions, sizeof(*st) - sizeof(st->r),
			   &len, NULL);
	if (r < 0)
		return r;
	return len == sizeof(*st) - sizeof(st->r) ? 0 : -EPROTO;
}

/* LIST and CLIENTS replies: count, reserved, then the entries. */
static uint8_t list_buf[PM_MAX_PAYLOAD];

int it_list(struct pm_client *c, struct pm_info *out, unsigned max)
{
	size_t len = 0;
	uint32_t count;
	int r = pm_client_call(c, PM_OP_LIST, NULL, 0, list_buf, sizeof(list_buf), &len, NULL);

	if (r < 0)
		return r;
	memcpy(&count, list_buf, sizeof(count));
	if (len != 8 + (size_t)count * sizeof(struct pm_info) || (int)count != r)
		return -EPROTO;
	if (count > max)
		count = max;
	memcpy(out, list_buf + 8, count * sizeof(*out));
	return r;
}

int it_lookup(struct pm_client *c, uint64_t id, struct pm_info *out)
{
	static struct pm_info all[256];
	int n = it_list(c, all, 256);

	if (n < 0)
		return n;
	for (int i = 0; i < n && i < 256; i++)
		if (all[i].id == id) {
			if (out)
				*out = all[i];
			return 1;
		}
	return 0;
}

int it_state(struct pm_client *c, uint64_t id)
{
	struct pm_info info;
	int r = it_lookup(c, id, &info);

	return r <= 0 ? r : (int)info.state;
}

int it_clients(struct pm_client *c, struct pm_client_info *out, unsigned max)
{
	size_t len = 0;
	uint32_t count;
	int r = pm_client_call(c, PM_OP_CLIENTS, NULL, 0, list_buf, sizeof(list_buf), &len, NULL);

	if (r < 0)
		return r;
	memcpy(&count, list_buf, sizeof(count));
	if (len != 8 + (size_t)count * sizeof(struct pm_client_info) || (int)count != r)
		return -EPROTO;
	if (count > max)
		count = max;
	memcpy(out, list_buf + 8, count * sizeof(*out));
	return r;
}

int it_client_of_pid(struct pm_client *c, pid_t pid, struct pm_client_info *out)
{
	static struct pm_client_info all[256];
	int n = it_clients(c, all, 256);

	if (n < 0)
		return n;
	for (int i = 0; i < n && i < 256; i++)
		if (all[i].pid == pid) {
			if (out)
				*out = all[i];
			return 1;
		}
	return 0;
}

static int revoke_op(struct pm_client *c, uint16_t op, const char *device, uint32_t flags)
{
	struct pm_revoke rv = { .flags = flags };

	if (pm_name_put(rv.device, sizeof(rv.device), device) < 0)
		return -EINVAL;
	return pm_client_call(c, op, &rv, sizeof(rv), NULL, 0, NULL, NULL);
}

int it_revoke(struct pm_client *c, const char *device)
{
	return revoke_op(c, PM_OP_REVOKE, device, 0);
}

int it_revoke_force(struct pm_client *c, const char *device)
{
	return revoke_op(c, PM_OP_REVOKE, device, PM_REVOKE_FORCE);
}

int it_restore(struct pm_client *c, const char *device)
{
	return revoke_op(c, PM_OP_RESTORE, device, 0);
}

int it_pool_state(struct pm_client *c, const char *device, const char *region)
{
	struct pm_pool_info pools[64];
	int n = pm_list_pools(c, pools, 64);

	for (int i = 0; i < n && i < 64; i++)
		if (!strcmp(pools[i].device, device) &&
		    (!region || !strcmp(pools[i].region, region)))
			return (int)pools[i].state;
	return n < 0 ? n : 0;
}

int it_open_err(struct pm_client *c, const char *device, const char *region, unsigned flags)
{
	int fd = pagemap_open(c, device, region, flags);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

uint64_t it_id(int pagemap_fd)
{
	struct pagemap_info info;

	return pagemap_query(pagemap_fd, &info) == 0 ? info.id : 0;
}

/* ---- managed memory ---- */

uint64_t it_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

uint64_t it_pagemap_id(int fd)
{
	struct pagemap_info info;

	return pagemap_query(fd, &info) == 0 ? info.id : 0;
}

/* Word w of the pattern: splitmix64 of (seed, w). Any word can be recomputed
 * alone, and a word that lands at the wrong offset, or under another seed,
 * differs from the one expected there (but for a 2^-64 chance). */
static uint64_t pattern_word(uint64_t seed, size_t w)
{
	uint64_t s = seed * 0x100000001b3ull + (uint64_t)w * 0x9e3779b97f4a7c15ull;

	return it_rand(&s);
}

void it_pattern_fill(void *base, size_t off, size_t len, uint64_t seed)
{
	uint64_t *p = (uint64_t *)((char *)base + off);

	for (size_t i = 0; i < len / 8; i++)
		p[i] = pattern_word(seed, off / 8 + i);
}

uint8_t it_pattern_byte(size_t off, uint64_t seed)
{
	uint64_t w = pattern_word(seed, off / 8);
	uint8_t b[8];

	memcpy(b, &w, sizeof(b));
	return b[off % 8];
}

size_t it_pattern_check(const void *base, size_t off, size_t len, uint64_t seed)
{
	/* Volatile: every word is loaded, also past a difference, so every
	 * chunk is touched (and faulted back) whatever the data, and checks on
	 * fault counters and residency that follow do not fail along with this
	 * one. */
	const volatile uint64_t *p = (const volatile uint64_t *)((const char *)base + off);
	size_t bad = SIZE_MAX;

	for (size_t i = 0; i < len / 8; i++) {
		uint64_t w = p[i];

		if (bad == SIZE_MAX && w != pattern_word(seed, off / 8 + i)) {
			uint8_t b[8];

			memcpy(b, &w, sizeof(b));
			for (size_t k = 0; k < 8 && bad == SIZE_MAX; k++)
				if (b[k] != it_pattern_byte(off + 8 * i + k, seed))
					bad = off + 8 * i + k;
		}
	}
	return bad;
}

uint64_t it_used(int pagemap_fd)
{
	struct pagemap_info info;

	return pagemap_query(pagemap_fd, &info) == 0 ? info.used : UINT64_MAX;
}

int it_chunks_in(struct pm_client *c, const void *addr, size_t len, uint64_t id)
{
	/* Chunks are at least PM_CHUNK_MIN: this many ids always suffice. */
	size_t max = len / PM_CHUNK_MIN + 2;
	uint64_t *ids = calloc(max, sizeof(*ids));
	int n, count = 0;

	if (!ids)
		return -ENOMEM;
	n = pm_query(c, addr, len, ids, max);
	for (int i = 0; i < n && (size_t)i < max; i++)
		count += ids[i] == id;
	free(ids);
	if (n >= 0 && (size_t)n > max)
		return -E2BIG;
	return n < 0 ? n : count;
}

bool it_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r == 1 && (p.revents & (POLLIN | POLLHUP));
}

/* ---- raw ---- */

int it_raw_connect(const struct it_broker *b)
{
	return try_connect(b->sock);
}

int it_raw_send(int sock, const struct pm_hdr *hdr, const void *payload, size_t len,
		const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = { { (void *)hdr, hdr ? sizeof(*hdr) : 0 }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t n;

	if (nfds > 8)
		return -EINVAL;
	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return -errno;
	return (size_t)n == iov[0].iov_len + len ? 0 : -EIO;
}

int it_raw_request(int sock, uint16_t version, uint16_t opcode, const void *payload, size_t len,
		   uint64_t request_id)
{
	struct pm_hdr hdr = { .magic = PM_PROTO_MAGIC, .version = version, .opcode = opcode,
			      .length = (uint32_t)len, .request_id = request_id };

	return it_raw_send(sock, &hdr, payload, len, NULL, 0);
}

int it_raw_recv(int sock, struct pm_msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		return -ETIMEDOUT;
	return pm_msg_recv(sock, m);
}

int it_raw_call(int sock, uint16_t version, uint16_t opcode, const void *payload, size_t len,
		int *status, int *fd)
{
	static uint64_t next_id = 1000;
	struct pm_msg *m = malloc(sizeof(*m));
	uint64_t id = ++next_id;
	int r;

	if (fd)
		*fd = -1;
	if (!m)
		return -ENOMEM;
	r = it_raw_request(sock, version, opcode, payload, len, id);
	if (r == 0)
		r = it_raw_recv(sock, m, 2000);
	if (r == 0) {
		const struct pm_reply *rep = (const void *)m->payload;

		if (!(m->hdr.flags & PM_HDR_REPLY) || m->hdr.request_id != id ||
		    m->hdr.opcode != opcode || m->hdr.length < sizeof(*rep))
			r = -EPROTO;
		else
			*status = rep->status;
		if (fd && r == 0)
			*fd = pm_msg_take_fd(m, 0);
		pm_msg_close_fds(m);
	}
	free(m);
	return r;
}

int it_raw_hello(int sock)
{
	struct pm_hello h = { .min_version = 1, .max_version = 1 };
	int status = 0, r;

	pm_name_put(h.client, sizeof(h.client), "it-raw");
	r = it_raw_call(sock, 1, PM_OP_HELLO, &h, sizeof(h), &status, NULL);
	return r < 0 ? r : status;
}

int it_raw_alloc(int sock, uint64_t size, uint64_t chunk, uint64_t *id, int *memfd)
{
	static uint64_t rid = 1u << 30;
	struct pm_alloc al = { .size = size, .chunk_size = chunk };
	struct pm_hdr hdr = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_ALLOC,
			      .length = sizeof(al), .nfds = 1, .request_id = ++rid };
	struct pm_msg *m = malloc(sizeof(*m));
	int fd = memfd_create("it", MFD_CLOEXEC | MFD_ALLOW_SEALING), r;

	if (!m || fd < 0 || ftruncate(fd, (off_t)size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0) {
		r = -errno;
		goto out;
	}
	r = it_raw_send(sock, &hdr, &al, sizeof(al), &fd, 1);
	if (r == 0)
		r = it_raw_recv(sock, m, 5000);
	if (r == 0) {
		const struct pm_alloc_reply *rep = (const void *)m->payload;

		r = m->hdr.length >= sizeof(rep->r) ? rep->r.status : -EPROTO;
		if (r == 0 && m->hdr.length == sizeof(*rep))
			*id = rep->alloc_id;
		pm_msg_close_fds(m);
	}
out:
	free(m);
	if (memfd && r == 0)
		*memfd = fd;
	else if (fd >= 0)
		close(fd);
	return r;
}

bool it_raw_closed(int sock, int timeout_ms)
{
	uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
	char buf[4096];

	for (;;) {
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int left = (int)(deadline - it_now_ms());
		ssize_t n;

		if (left <= 0 || poll(&p, 1, left) <= 0)
			return false;
		n = recv(sock, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
	}
}

bool it_pipe_widowed(int read_end, int timeout_ms)
{
	struct pollfd p = { .fd = read_end, .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLHUP);
}

/* ---- children ---- */

int it_as_uid(uid_t uid, int (*fn)(void *ctx, int *res, unsigned n), void *ctx, int *res,
	      unsigned n)
{
	size_t len = n * sizeof(int);
	int p[2], status;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int r;

		close(p[0]);
		if (setgid(uid) < 0 || setuid(uid) < 0)
			_exit(2);
		r = fn(ctx, res, n);
		_exit(r ? r : write(p[1], res, len) == (ssize_t)len ? 0 : 4);
	}
	close(p[1]);
	status = read(p[0], res, len) == (ssize_t)len ? 0 : -1;
	close(p[0]);
	if (it_reap(pid, 5000) != 0)
		status = -1;
	return status;
}

int it_post(int fd, char c)
{
	return write(fd, &c, 1) == 1 ? 0 : -errno;
}

int it_wait_byte(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	unsigned char c;

	if (poll(&p, 1, timeout_ms) != 1 || read(fd, &c, 1) != 1)
		return -1;
	return c;
}

int it_reap(pid_t pid, int timeout_ms)
{
	uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		if (r < 0)
			return -1;
		if (it_now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return -1;
		}
		it_sleep_ms(2);
	}
}

struct pm_engine_info it_engine(struct pm_client *c, const char *name)
{
	uint8_t buf[sizeof(struct pm_list_reply) + 8 * sizeof(struct pm_engine_info)];
	const size_t head = sizeof(struct pm_list_reply) - sizeof(struct pm_reply);
	struct pm_engine_info e = { 0 };
	size_t len = 0;
	int n = pm_client_call(c, PM_OP_ENGINES, NULL, 0, buf, sizeof(buf), &len, NULL);

	CU_ASSERT_FATAL(n > 0);
	CU_ASSERT_EQUAL_FATAL(len, head + (size_t)n * sizeof(e));
	for (int i = 0; i < n; i++) {
		memcpy(&e, buf + head + (size_t)i * sizeof(e), sizeof(e));
		if (!strncmp(e.name, name, sizeof(e.name)))
			return e;
	}
	cu_check_at(false, __FILE__, __LINE__, "no engine named %s", name);
	memset(&e, 0, sizeof(e));
	return e;
}

void it_fixture_up(struct it_fixture *f, const struct it_broker *b, const char *dev, size_t size,
		   unsigned shift, uint64_t seed)
{
	void *a;

	f->c = it_connect(b);
	CU_ASSERT_FATAL(f->c != NULL);
	f->pm = pagemap_open(f->c, dev, NULL, 0);
	CU_ASSERT_FATAL(f->pm >= 0);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(f->c, size, shift ? PM_ALLOC_CHUNK_SHIFT(shift) : 0, &a),
			      0);
	f->p = a;
	it_pattern_fill(f->p, 0, size, seed);
}

void it_fixture_down(struct it_fixture *f)
{
	CU_ASSERT_EQUAL(pm_free(f->c, f->p), 0);
	close(f->pm);
	pm_disconnect(f->c);
}
