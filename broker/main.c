/* SPDX-License-Identifier: MIT */
/* pagemapd: one broker per node, handing out pagemap fds. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "config.h"
#include "daemon.h"

static void usage(FILE *f)
{
	fputs("Usage: pagemapd [OPTIONS]\n"
	      "The pagemap broker: hands out pagemap fds for this node's memory pools.\n\n"
	      "  --socket PATH      listen here (default $PAGEMAP_SOCKET, then\n"
	      "                     $XDG_RUNTIME_DIR/pagemap/broker.sock, /run/pagemap/broker.sock\n"
	      "                     for root; a socket systemd passes is used instead)\n"
	      "  --config FILE      pools, access rules, limits (docs/pagemapd.md)\n"
	      "  --topology FILE    serve an EMULATED machine from a topology file\n"
	      "  --sysfs-root DIR   read a captured sysfs tree instead of this machine's\n"
	      "  --linger-ms N      keep unused pagemaps N ms before teardown (default 5000)\n"
	      "  --rdma-listen HOST:PORT   export host memory to peer brokers (rdma_cm)\n"
	      "  --peer NAME=HOST:PORT     use a peer broker's memory as pagemaps NAME:nodeN\n"
	      "                            (repeatable)\n"
	      "  --peer-secret FILE        shared secret peers must prove (mode 0600)\n"
	      "  --state-dir DIR    keep device pools' chunk records (and emulated pools'\n"
	      "                     memory) here, so a crash loses none of them (tmpfs)\n"
	      "  -v, --verbose      debug log;  -h, --help;  --version\n",
	      f);
}

/* The version, and what this build can do as a service. */
static void version(void)
{
	printf("pagemapd %s (%csystemd %clibudev)\n", PAGEMAP_VERSION, HAVE_LIBSYSTEMD ? '+' : '-',
	       HAVE_LIBUDEV ? '+' : '-');
}

/*
 * json-c's message for a file it cannot open names neither the option nor
 * the errno: say both before config_load() reads it. O_NONBLOCK: a FIFO
 * with no writer yet must not hang the check.
 */
static int config_readable(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), r = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISDIR(st.st_mode))
		r = -EISDIR;
	else if (!S_ISREG(st.st_mode))
		r = -EINVAL; /* a FIFO or device: reading it could wait for ever */
	close(fd);
	return r;
}

static int load_config(struct config *conf, const char *path)
{
	char err[512];
	int r = config_readable(path);

	if (r < 0) {
		fprintf(stderr, "pagemapd: --config %s: %s (%s)\n", path, strerror(-r),
			strerrorname_np(-r));
		return r;
	}
	r = config_load(conf, path, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "pagemapd: %s\n", err);
	return r;
}

/* The loop, telling the service manager how it goes between turns. */
static void serve(struct broker *b)
{
	int timeout = -1, r;

	daemon_notify_ready(b);
	while (b->running) {
		r = broker_dispatch(b, timeout);
		if (r < 0) {
			blog(LOG_ERR, "epoll_wait: %s", strerror(-r));
			break;
		}
		timeout = daemon_notify_status(b);
	}
	daemon_notify_stopping(b);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'c' },
		{ "topology", required_argument, NULL, 't' },
		{ "sysfs-root", required_argument, NULL, 'r' },
		{ "linger-ms", required_argument, NULL, 'l' },
		{ "rdma-listen", required_argument, NULL, 'R' },
		{ "peer", required_argument, NULL, 'P' },
		{ "peer-secret", required_argument, NULL, 'S' },
		{ "state-dir", required_argument, NULL, 'D' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static struct broker b;
	const char *config = NULL, *socket_arg = NULL, *topology = NULL, *sysroot = NULL;
	const char *listen_arg = NULL, *secret_arg = NULL, *state_arg = NULL;
	struct peer_conf cli_peers[16];
	unsigned ncli_peers = 0;
	long linger = -1;
	char err[512];
	int c, r;

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 's': socket_arg = optarg; break;
		case 'c': config = optarg; break;
		case 't': topology = optarg; break;
		case 'r': sysroot = optarg; break;
		case 'l':
			errno = 0;
			linger = strtol(optarg, &end, 10);
			if (errno || *end || linger < 0 || linger > 3600000) {
				fprintf(stderr, "pagemapd: --linger-ms: '%s' is not 0..3600000\n", optarg);
				return 2;
			}
			break;
		case 'R':
			listen_arg = optarg;
			break;
		case 'P':
			if (ncli_peers == 16) {
				fprintf(stderr, "pagemapd: --peer: at most 16 peers\n");
				return 2;
			}
			if (peer_conf_parse(optarg, &cli_peers[ncli_peers], err, sizeof(err)) < 0) {
				fprintf(stderr, "pagemapd: %s\n", err);
				return 2;
			}
			ncli_peers++;
			break;
		case 'S':
			secret_arg = optarg;
			break;
		case 'D':
			state_arg = optarg;
			break;
		case 'v': log_max = LOG_DEBUG; break;
		case 'h': usage(stdout); return 0;
		case 'V': version(); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pagemapd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	config_defaults(&b.conf);
	if (config && load_config(&b.conf, config) < 0)
		return 2;
	/* The command line wins over the file. */
	if (socket_arg)
		snprintf(b.conf.socket_path, sizeof(b.conf.socket_path), "%s", socket_arg);
	if (topology)
		snprintf(b.conf.topology, sizeof(b.conf.topology), "%s", topology);
	if (sysroot)
		snprintf(b.conf.sysfs_root, sizeof(b.conf.sysfs_root), "%s", sysroot);
	if (linger >= 0)
		b.conf.linger_ms = (int)linger;
	if (listen_arg && hostport_parse(listen_arg, b.conf.rdma.listen_host,
					 sizeof(b.conf.rdma.listen_host), b.conf.rdma.listen_port,
					 sizeof(b.conf.rdma.listen_port)) < 0) {
		fprintf(stderr, "pagemapd: --rdma-listen: '%s' is not HOST:PORT\n", listen_arg);
		return 2;
	}
	if (ncli_peers) {
		memcpy(b.conf.rdma.peers, cli_peers, ncli_peers * sizeof(cli_peers[0]));
		b.conf.rdma.npeers = ncli_peers;
	}
	if (secret_arg)
		snprintf(b.conf.rdma.secret_file, sizeof(b.conf.rdma.secret_file), "%s", secret_arg);
	if (state_arg)
		snprintf(b.conf.state_dir, sizeof(b.conf.state_dir), "%s", state_arg);
	r = broker_start(&b, true);
	if (r < 0) {
		daemon_notify_failed(r);
		return 1;
	}
	serve(&b);
	broker_stop(&b);
	return 0;
}
