/* SPDX-License-Identifier: MIT */
/*
 * perftest as pmbench rdma's baseline: a tool's server and client on this
 * machine (both ends on one RDMA device, as the broker's loopback peers
 * are), and the client's result row read by column heading.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pmbench.h"
#include "pmbench_perftest.h"

#define CONNECT_TRIES 50        /* x 300 ms: a server under TCG starts in seconds */
#define CAPTURE_MAX (1u << 20)  /* the end of a process's output that we keep */
#define MAX_COLS 16
#define LABEL_MAX 40

/* ---- running the tool ---- */

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

bool perftest_find(const char *tool, char *path, size_t len)
{
	const char *env = getenv("PATH"), *p, *colon;

	if (!env || !*env)
		env = "/usr/local/bin:/usr/bin:/bin";
	for (p = env;; p = colon + 1) {
		size_t n;
		int w;

		colon = strchr(p, ':');
		n = colon ? (size_t)(colon - p) : strlen(p);
		/* An empty element is the current directory, as execvp() has it. */
		w = n ? snprintf(path, len, "%.*s/%s", (int)n, p, tool)
		      : snprintf(path, len, "./%s", tool);
		if (w > 0 && (size_t)w < len && access(path, X_OK) == 0)
			return true;
		if (!colon)
			return false;
	}
}

/* Runs exe with stdout and stderr into out, stdin from /dev/null; its pid or -errno. */
static pid_t spawn(const char *exe, char *const argv[], int out)
{
	pid_t parent = getpid(), pid;
	int nul;

	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid < 0 ? -errno : pid;
	/* Our stdout is the JSON: nothing of perftest's may reach it. */
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	/* A server left waiting for its client would hold the port after we die. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(127);
	execv(exe, argv);
	_exit(127);
}

/* 1: pid exited (*status), 0: still running at deadline (bench_now() seconds), -errno. */
static int wait_until(pid_t pid, double deadline, int *status)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bench_now() >= deadline)
			return 0;
		sleep_ms(5);
	}
}

static void kill_wait(pid_t pid)
{
	int status;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* What a process wrote into the memfd fd: its last CAPTURE_MAX bytes, NUL-terminated. */
static char *captured(int fd)
{
	struct stat st;
	off_t from = 0;
	ssize_t got;
	char *buf;

	if (fstat(fd, &st) < 0)
		return NULL;
	if (st.st_size > (off_t)CAPTURE_MAX)
		from = st.st_size - (off_t)CAPTURE_MAX;
	buf = malloc((size_t)(st.st_size - from) + 1);
	if (!buf)
		return NULL;
	got = pread(fd, buf, (size_t)(st.st_size - from), from);
	buf[got > 0 ? got : 0] = '\0';
	return buf;
}

/* "ib_write_bw client exited with status 1: <its last two lines>" into why. */
static void describe(char *why, size_t len, const char *tool, const char *who, int status,
		     int fd)
{
	char *text = captured(fd), *end, *lines[2] = { NULL, NULL };
	char how[48];
	int n = 0;

	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "was killed by signal %d", WTERMSIG(status));
	else if (WEXITSTATUS(status) == 127)
		snprintf(how, sizeof(how), "could not be started (status 127)");
	else
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
	/* perftest's errors are its last lines; earlier ones are its settings. */
	for (end = text ? text + strlen(text) : NULL; end && end > text && n < 2;) {
		char *eol = end, *bol;

		while (eol > text && isspace((unsigned char)eol[-1]))
			eol--;
		if (eol == text)
			break;
		*eol = '\0';
		for (bol = eol; bol > text && bol[-1] != '\n'; bol--)
			;
		while (isspace((unsigned char)*bol))
			bol++;
		lines[n++] = bol;
		end = bol;
	}
	snprintf(why, len, "%s %s %s%s%s%s%s", tool, who, how, n ? ": " : " (no output)",
		 n > 1 ? lines[1] : "", n > 1 ? " / " : "", n ? lines[0] : "");
	free(text);
}

/* argv for exe: -d DEV -F -s SIZE -n ITERS [-p PORT] [ADDR]; the strings live in num. */
static void build_argv(const struct perftest_spec *s, const char *exe, const char *addr,
		       char num[3][24], char *argv[13])
{
	int n = 0;

	snprintf(num[0], 24, "%llu", (unsigned long long)s->size);
	snprintf(num[1], 24, "%lu", s->iters);
	snprintf(num[2], 24, "%d", s->port);
	argv[n++] = (char *)exe;
	argv[n++] = (char *)"-d";
	argv[n++] = (char *)s->dev;
	/* Run even if the CPU frequency governor could skew the cycle counter. */
	argv[n++] = (char *)"-F";
	argv[n++] = (char *)"-s";
	argv[n++] = num[0];
	argv[n++] = (char *)"-n";
	argv[n++] = num[1];
	if (s->port) {
		argv[n++] = (char *)"-p";
		argv[n++] = num[2];
	}
	if (addr)
		argv[n++] = (char *)addr;
	argv[n] = NULL;
}

static int new_capture(const char *name, char *why, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		snprintf(why, len, "memfd_create: %s", strerror(errno));
	return fd < 0 ? -errno : fd;
}

int perftest_run(const struct perftest_spec *s, char **out, char *why, size_t len)
{
	char exe[PATH_MAX], num[3][24], *argv[13];
	int sfd, cfd = -1, r, status;
	pid_t srv, cli;

	if (!perftest_find(s->tool, exe, sizeof(exe))) {
		snprintf(why, len, "%s not found in $PATH (install perftest)", s->tool);
		return -ENOENT;
	}
	sfd = new_capture("perftest-server", why, len);
	if (sfd < 0)
		return sfd;
	build_argv(s, exe, NULL, num, argv);
	srv = spawn(exe, argv, sfd);
	if (srv < 0) {
		snprintf(why, len, "%s server: fork: %s", s->tool, strerror((int)-srv));
		close(sfd);
		return (int)srv;
	}
	build_argv(s, exe, s->addr, num, argv);
	for (int attempt = 1;; attempt++) {
		if (waitpid(srv, &status, WNOHANG) == srv) {
			srv = 0;
			describe(why, len, s->tool, "server", status, sfd);
			r = -EIO;
			goto out;
		}
		if (cfd >= 0)
			close(cfd);
		cfd = new_capture("perftest-client", why, len);
		if (cfd < 0) {
			r = cfd;
			goto out;
		}
		cli = spawn(exe, argv, cfd);
		if (cli < 0) {
			snprintf(why, len, "%s client: fork: %s", s->tool, strerror((int)-cli));
			r = (int)cli;
			goto out;
		}
		r = wait_until(cli, bench_now() + s->timeout_s, &status);
		if (r <= 0) {
			kill_wait(cli);
			if (r == 0)
				snprintf(why, len, "%s client ran past %d s (killed)", s->tool,
					 s->timeout_s);
			else
				snprintf(why, len, "%s client: waitpid: %s", s->tool, strerror(-r));
			r = r ? r : -ETIMEDOUT;
			goto out;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			break;
		/* Refused until the server listens; anything else shows once tries run out. */
		if (attempt == CONNECT_TRIES) {
			describe(why, len, s->tool, "client", status, cfd);
			r = -EIO;
			goto out;
		}
		sleep_ms(300);
	}
	/* The server ends with the test: one that fails or hangs taints the client's numbers. */
	r = wait_until(srv, bench_now() + s->timeout_s, &status);
	if (r <= 0) {
		snprintf(why, len, "%s server did not exit within %d s of its client", s->tool,
			 s->timeout_s);
		r = r ? r : -ETIMEDOUT;
		goto out;
	}
	srv = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		describe(why, len, s->tool, "server", status, sfd);
		r = -EIO;
		goto out;
	}
	*out = captured(cfd);
	r = *out ? 0 : -ENOMEM;
	if (r < 0)
		snprintf(why, len, "reading %s's output: %s", s->tool, strerror(ENOMEM));
out:
	if (srv > 0)
		kill_wait(srv);
	if (cfd >= 0)
		close(cfd);
	close(sfd);
	return r;
}

/* ---- reading the result ---- */

/* A result heading: " #bytes     #iterations    BW peak[MB/sec] ...". */
struct heading {
	int n;
	char label[MAX_COLS][LABEL_MAX];
};

/*
 * Splits a heading into column labels: "#word" tokens, or text up to and
 * including a ']' ("BW average[MB/sec]", "99% percentile[usec]"), or the
 * rest of the line. Spaces cannot separate columns: labels hold spaces, and
 * "#bytes #iterations" holds only one between two columns.
 */
static bool parse_heading(const char *p, const char *end, struct heading *h)
{
	h->n = 0;
	while (p < end && h->n < MAX_COLS) {
		const char *s, *e;
		size_t n;

		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end)
			break;
		s = p;
		if (*p == '#') {
			while (p < end && !isspace((unsigned char)*p))
				p++;
		} else {
			const char *rb = memchr(p, ']', (size_t)(end - p));

			p = rb ? rb + 1 : end;
		}
		for (e = p; e > s && isspace((unsigned char)e[-1]); e--)
			;
		n = (size_t)(e - s) < LABEL_MAX - 1 ? (size_t)(e - s) : LABEL_MAX - 1;
		memcpy(h->label[h->n], s, n);
		h->label[h->n++][n] = '\0';
	}
	return h->n >= 2 && !strcmp(h->label[0], "#bytes");
}

/*
 * A data row for messages of size bytes: its numbers into v (at most max),
 * their count; 0 for any other line. The row ends at the first field that
 * is not a number.
 */
static int parse_row(const char *p, const char *end, uint64_t size, double *v, int max)
{
	char line[512], *s, *e;
	size_t n = (size_t)(end - p) < sizeof(line) - 1 ? (size_t)(end - p) : sizeof(line) - 1;
	unsigned long long first;
	int k = 0;

	memcpy(line, p, n);
	line[n] = '\0';
	for (s = line; isspace((unsigned char)*s); s++)
		;
	if (!isdigit((unsigned char)*s))
		return 0;
	errno = 0;
	first = strtoull(s, &e, 10);
	if (errno || (*e && !isspace((unsigned char)*e)) || first != size)
		return 0;
	v[k++] = (double)first;
	for (s = e; k < max;) {
		double d;

		while (isspace((unsigned char)*s))
			s++;
		if (!*s)
			break;
		d = strtod(s, &e);
		if (e == s)
			break;
		v[k++] = d;
		s = e;
	}
	return k;
}

struct result {
	struct heading h;
	double v[MAX_COLS];
	int n;
};

/* The first row for size below a heading. 0, or -ENOENT with why. */
static int find_row(const char *text, uint64_t size, struct result *res, char *why, size_t len)
{
	struct heading h;
	int headings = 0;

	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n'), *end = eol ? eol : p + strlen(p);

		if (parse_heading(p, end, &h)) {
			res->h = h;
			headings++;
		} else if (headings && (res->n = parse_row(p, end, size, res->v, MAX_COLS)) > 0) {
			return 0;
		}
		p = eol ? eol + 1 : end;
	}
	if (headings)
		snprintf(why, len, "perftest printed no result row for %llu-byte messages",
			 (unsigned long long)size);
	else
		snprintf(why, len, "perftest printed no result heading (\"#bytes ...\")");
	return -ENOENT;
}

/*
 * The value under the heading that starts with prefix, NAN when there is
 * none or the row is shorter; the unit between its brackets into unit.
 */
static double column(const struct result *res, const char *prefix, char *unit, size_t len)
{
	for (int i = 0; i < res->h.n; i++) {
		const char *l = res->h.label[i], *lb, *rb;

		if (strncmp(l, prefix, strlen(prefix)))
			continue;
		lb = strchr(l, '[');
		rb = lb ? strchr(lb, ']') : NULL;
		if (unit && lb && rb)
			snprintf(unit, len, "%.*s", (int)(rb - lb - 1), lb + 1);
		return i < res->n ? res->v[i] : NAN;
	}
	return NAN;
}

int perftest_parse_bw(const char *text, uint64_t size, struct perftest_bw *out, char *why,
		      size_t len)
{
	struct perftest_bw bw = { 0 };
	struct result res;
	double scale, iters;
	int r = find_row(text, size, &res, why, len);

	if (r < 0)
		return r;
	bw.avg = column(&res, "BW average[", bw.unit, sizeof(bw.unit));
	bw.peak = column(&res, "BW peak[", NULL, 0);
	bw.msg_rate_mpps = column(&res, "MsgRate[", NULL, 0);
	iters = column(&res, "#iterations", NULL, 0);
	if (!strcmp(bw.unit, "MB/sec")) {
		scale = PERFTEST_MBS_BYTES;
	} else if (!strcmp(bw.unit, "Gb/sec")) {
		scale = PERFTEST_GBS_BYTES;
	} else {
		snprintf(why, len, "perftest's result has no \"BW average[MB/sec]\" or "
				   "\"[Gb/sec]\" column");
		return -EPROTO;
	}
	if (!isfinite(bw.avg) || bw.avg <= 0) {
		snprintf(why, len, "perftest's BW average for %llu-byte messages is %g",
			 (unsigned long long)size, bw.avg);
		return -EPROTO;
	}
	bw.iterations = isfinite(iters) && iters > 0 ? (uint64_t)iters : 0;
	bw.avg_bps = bw.avg * scale;
	bw.peak_bps = bw.peak * scale;
	*out = bw;
	return 0;
}

int perftest_parse_lat(const char *text, uint64_t size, struct perftest_lat *out, char *why,
		       size_t len)
{
	struct perftest_lat lat = { 0 };
	struct result res;
	char unit[16] = "";
	double iters;
	int r = find_row(text, size, &res, why, len);

	if (r < 0)
		return r;
	lat.t_typical = column(&res, "t_typical[", unit, sizeof(unit));
	if (strcmp(unit, "usec")) {
		snprintf(why, len, "perftest's result has no \"t_typical[usec]\" column%s",
			 unit[0] ? " (times in cycles?)" : "");
		return -EPROTO;
	}
	if (!isfinite(lat.t_typical) || lat.t_typical <= 0) {
		snprintf(why, len, "perftest's t_typical for %llu-byte messages is %g",
			 (unsigned long long)size, lat.t_typical);
		return -EPROTO;
	}
	iters = column(&res, "#iterations", NULL, 0);
	lat.iterations = isfinite(iters) && iters > 0 ? (uint64_t)iters : 0;
	lat.t_min = column(&res, "t_min[", NULL, 0);
	lat.t_max = column(&res, "t_max[", NULL, 0);
	lat.t_avg = column(&res, "t_avg[", NULL, 0);
	lat.t_stdev = column(&res, "t_stdev[", NULL, 0);
	lat.p99 = column(&res, "99% percentile[", NULL, 0);
	lat.p999 = column(&res, "99.9% percentile[", NULL, 0);
	*out = lat;
	return 0;
}
