/* SPDX-License-Identifier: MIT */
/*
 * pm_load and pm_store (PM_OP_FILE_IO) against a real broker: file bytes go
 * into and out of managed memory wherever its chunks live (host memory, an
 * emulated pool, a p2pmem pool read from a captured sysfs tree) without
 * moving them, in order with migrations of the same chunks, and the block
 * engine counts them. What it must refuse, it refuses without keeping the
 * fd. Real P2P DMA (an NVMe controller writing a p2pmem pool) needs the
 * P2PDMA kernel: tests/vm/tests/p2p-pool.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "it_broker.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define TOPOLOGY "examples/topologies/two-socket-mem.json"
#define POOL "0000:03:00.0"

static struct it_broker br;
/* The files the tests read and write live on tmpfs: the broker reads only
 * files of local kernel file systems (not overlayfs, which /tmp may be). */
static char files[64];

static const char *file_path(const char *name)
{
	static char buf[4][128];
	static unsigned k;
	char *p = buf[k++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", files, name);
	return p;
}

static bool up(void)
{
	struct it_opts o = { .linger_ms = 300, .topology = TOPOLOGY };

	if (br.pid)
		return true;
	CU_ASSERT_EQUAL_FATAL(it_broker_init(&br), 0);
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&br, &o), 0);
	return br.pid != 0;
}

/* A file holding size bytes of seed's pattern; its fd, opened with flags. */
static int pattern_file(const char *name, size_t size, uint64_t seed, int flags)
{
	const char *path = file_path(name);
	uint8_t *buf = malloc(size);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CU_ASSERT_FATAL(buf != NULL && fd >= 0);
	it_pattern_fill(buf, 0, size, seed);
	CU_ASSERT_EQUAL_FATAL(pwrite(fd, buf, size, 0), (ssize_t)size);
	free(buf);
	close(fd);
	fd = open(path, flags | O_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	return fd;
}


/* Whether [0, len) of fd holds seed's pattern, laid out from base_off. */
static bool file_has(int fd, size_t len, size_t base_off, uint64_t seed)
{
	uint8_t *buf = malloc(len);
	bool ok = buf && pread(fd, buf, len, 0) == (ssize_t)len;

	for (size_t i = 0; ok && i < len; i++)
		ok = buf[i] == it_pattern_byte(base_off + i, seed);
	free(buf);
	return ok;
}

static bool direct_io_works(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd >= 0)
		close(fd);
	return fd >= 0;
}

/*
 * 4 MiB loaded into memory half in host memory, half in an emulated pool:
 * the chunks stay where they are, every byte comes back as the file holds
 * it, and the engine counts the bytes; then stored to another file from
 * where they live.
 */
static void test_load_store_where_it_lives(void)
{
	const size_t size = 4 * MiB;
	struct pm_engine_info e0, e1;
	struct pm_io_result res;
	struct it_fixture f;
	struct pm_client *c;
	int pm, in, out;
	uint8_t *p;

	if (!up())
		return;
	it_fixture_up(&f, &br, POOL, size, 16, 1);
	c = f.c;
	pm = f.pm;
	p = f.p;
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p + size / 2, size / 2, pm, 0), 0);
	in = pattern_file("in", size, 2, O_RDONLY);
	e0 = it_engine(c, "block");

	CU_ASSERT_EQUAL(pm_load(c, p, size, in, 0, 0, &res), (ssize_t)size);
	CU_ASSERT_EQUAL(res.bytes_done, size);
	CU_ASSERT_EQUAL(res.bytes_p2p_dma, 0); /* an emulated pool is no PCI device */
	CU_ASSERT_EQUAL(res.bytes_dma + res.bytes_bounced, size);
	/* Where the file system takes O_DIRECT, every byte was DMA'd into
	 * the memory that holds it (host pages, the pool's memfd). */
	if (direct_io_works(file_path("in"))) {
		CU_ASSERT_EQUAL(res.bytes_dma, size);
		CU_ASSERT_STRING_EQUAL(res.reason, "");
	} else {
		CU_ASSERT_PTR_NOT_NULL(strstr(res.reason, "O_DIRECT"));
	}
	/* Nothing moved: half is still in the pool. */
	CU_ASSERT_EQUAL(it_chunks_in(c, p + size / 2, size / 2, it_pagemap_id(pm)),
			(int)(size / 2 / (64 * KiB)));
	e1 = it_engine(c, "block");
	CU_ASSERT_EQUAL(e1.bytes - e0.bytes, size);
	CU_ASSERT_EQUAL(e1.failed - e0.failed, 0);
	CU_ASSERT(e1.copies - e0.copies >= size / (64 * KiB));

	/* Stored from where it is (the pool half read in place), then read. */
	out = open(file_path("out"), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(out >= 0);
	CU_ASSERT_EQUAL(pm_store(c, p, size, out, 0, 0, &res), (ssize_t)size);
	CU_ASSERT_EQUAL(res.bytes_done, size);
	CU_ASSERT(file_has(out, size, 0, 2));
	CU_ASSERT_EQUAL(it_chunks_in(c, p + size / 2, size / 2, it_pagemap_id(pm)),
			(int)(size / 2 / (64 * KiB)));
	/* The CPU sees the loaded bytes, host half and pool half. */
	CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 2), SIZE_MAX);

	close(in);
	close(out);
	it_fixture_down(&f);
}

/*
 * Parts of chunks: 12 KiB at 4 KiB into a 64 KiB chunk in the pool, from
 * file offset 8 KiB; the bytes around it keep what they had. A load past
 * the file's end returns what the file had and zeros the rest.
 */
static void test_partial_and_eof(void)
{
	const size_t size = 256 * KiB;
	struct pm_io_result res;
	struct it_fixture f;
	struct pm_client *c;
	int pm, in;
	uint8_t *p;

	if (!up())
		return;
	it_fixture_up(&f, &br, POOL, size, 16, 3);
	c = f.c;
	pm = f.pm;
	p = f.p;
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, size, pm, 0), 0);
	in = pattern_file("part", 64 * KiB, 4, O_RDONLY);

	CU_ASSERT_EQUAL(pm_load(c, p + 68 * KiB, 12 * KiB, in, 8 * KiB, 0, &res),
			(ssize_t)(12 * KiB));
	CU_ASSERT_EQUAL(it_pattern_check(p, 0, 68 * KiB, 3), SIZE_MAX);
	for (size_t i = 0; i < 12 * KiB; i++)
		if (p[68 * KiB + i] != it_pattern_byte(8 * KiB + i, 4)) {
			CU_FAIL("loaded part differs from the file");
			break;
		}
	CU_ASSERT_EQUAL(it_pattern_check(p, 80 * KiB, size - 80 * KiB, 3), SIZE_MAX);

	/* 128 KiB from offset 32 KiB of a 64 KiB file: 32 KiB, then zeros. */
	CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, size, pm, 0), 0);
	CU_ASSERT_EQUAL(pm_load(c, p + 128 * KiB, 128 * KiB, in, 32 * KiB, 0, &res),
			(ssize_t)(32 * KiB));
	CU_ASSERT_EQUAL(res.bytes_done, 32 * KiB);
	for (size_t i = 0; i < 128 * KiB; i++)
		if (p[128 * KiB + i] != (i < 32 * KiB ? it_pattern_byte(32 * KiB + i, 4) : 0)) {
			CU_FAIL("load past the end of the file: wrong bytes");
			break;
		}
	close(in);
	it_fixture_down(&f);
}

/*
 * PM_FILE_BOUNCE goes through a host buffer and says so. A READ_MOSTLY
 * chunk's host replica does not survive a load into its pool copy: the
 * CPU reads the new bytes, not the old replica.
 */
static void test_bounce_and_replica(void)
{
	const size_t size = 1 * MiB;
	struct pm_io_result res;
	struct it_fixture f;
	struct pm_client *c;
	int pm, in;
	uint8_t *p;

	if (!up())
		return;
	it_fixture_up(&f, &br, POOL, size, 0, 5);
	c = f.c;
	pm = f.pm;
	p = f.p;
	in = pattern_file("bounce", size, 6, O_RDONLY);

	CU_ASSERT_EQUAL(pm_load(c, p, size, in, 0, PM_FILE_BOUNCE, &res), (ssize_t)size);
	CU_ASSERT_EQUAL(res.bytes_bounced, size);
	CU_ASSERT_EQUAL(res.bytes_dma + res.bytes_p2p_dma, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(res.reason, "as asked"));
	CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 6), SIZE_MAX);

	/* A valid host replica, then new bytes into the pool copy. */
	if (pm_madvise(c, p, size, PM_ADV_READ_MOSTLY, PM_FD_SYSTEM) == -EOPNOTSUPP) {
		fprintf(stderr, "(no userfaultfd write protection: replica part skipped) ");
	} else {
		CU_ASSERT_EQUAL_FATAL(pm_migrate(c, p, size, pm, 0), 0);
		CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 6), SIZE_MAX);
		close(in);
		in = pattern_file("bounce2", size, 7, O_RDONLY);
		CU_ASSERT_EQUAL(pm_load(c, p, size, in, 0, 0, &res), (ssize_t)size);
		CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 7), SIZE_MAX);
	}
	close(in);
	it_fixture_down(&f);
}

/*
 * Requests on a chunk are served in order: a load sent while an async
 * migration of the same chunks is under way lands after it, in the pool,
 * and the data the CPU then reads is the file's.
 */
static void test_ordered_with_migration(void)
{
	const size_t size = 8 * MiB;
	struct pm_migrate_result mres;
	struct it_fixture f;
	struct pm_client *c;
	int pm, in, done;
	uint8_t *p;

	if (!up())
		return;
	it_fixture_up(&f, &br, POOL, size, 16, 8);
	c = f.c;
	pm = f.pm;
	p = f.p;
	in = pattern_file("ordered", size, 9, O_RDONLY);
	done = pm_migrate(c, p, size, pm, PM_MIGRATE_ASYNC);
	CU_ASSERT_FATAL(done >= 0);
	CU_ASSERT_EQUAL(pm_load(c, p, size, in, 0, 0, NULL), (ssize_t)size);
	CU_ASSERT_TRUE(it_readable(done, 10000));
	CU_ASSERT_EQUAL(pm_migrate_result(done, &mres), 1);
	CU_ASSERT_EQUAL(mres.status, 0);
	close(done);
	CU_ASSERT_EQUAL(it_chunks_in(c, p, size, it_pagemap_id(pm)), (int)(size / (64 * KiB)));
	CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 9), SIZE_MAX);
	close(in);
	it_fixture_down(&f);
}

static int raw_file_io(int s, const struct pm_file_io *q, int fd)
{
	struct pm_hdr h = { .magic = PM_PROTO_MAGIC, .version = 1, .opcode = PM_OP_FILE_IO,
			    .length = sizeof(*q), .nfds = fd >= 0, .request_id = 7 };
	struct pm_msg m;
	int32_t status;

	if (it_raw_send(s, &h, q, sizeof(*q), &fd, fd >= 0) < 0 || it_raw_recv(s, &m, 5000) < 0)
		return INT32_MIN;
	memcpy(&status, m.payload, sizeof(status));
	pm_msg_close_fds(&m);
	return status;
}

/* What it refuses, it refuses by name, keeps no fd of, and the session
 * goes on. */
static void test_refused(void)
{
	struct pm_client *c;
	struct pm_file_io q = { .len = 64 * KiB };
	uint64_t id;
	int s, pfd[2], wr, rd, opath, memfd, fd;
	uint8_t *p;

	if (!up())
		return;
	c = it_connect(&br);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, 1 * MiB, 0, (void **)&p), 0);
	wr = pattern_file("wr", 64 * KiB, 1, O_WRONLY);
	rd = pattern_file("rd", 64 * KiB, 1, O_RDONLY);
	CU_ASSERT_EQUAL(pm_load(c, p, 64 * KiB, wr, 0, 0, NULL), -EBADF);
	CU_ASSERT_EQUAL(pm_store(c, p, 64 * KiB, rd, 0, 0, NULL), -EBADF);
	CU_ASSERT_EQUAL(pm_load(c, p + 100, 64 * KiB, rd, 0, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_load(c, p, 1000, rd, 0, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_load(c, p, 4 * MiB, rd, 0, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_load(c, p, 64 * KiB, rd, -4096, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_load(c, p, 64 * KiB, rd, 0, 0x80, NULL), -EINVAL);
	CU_ASSERT_EQUAL(pm_load(c, &q, 4096, rd, 0, 0, NULL), -EINVAL); /* not managed */
	CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
	CU_ASSERT_EQUAL(pm_load(c, p, 64 * KiB, pfd[0], 0, 0, NULL), -EINVAL);
	/* procfs: its handlers check the reader's credentials, the broker's. */
	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pm_load(c, p, 4096, fd, 0, 0, NULL), -EOPNOTSUPP);
	close(fd);
	CU_ASSERT_EQUAL(pm_free(c, p), 0);
	pm_disconnect(c);

	/* The raw request: no fd, bad fields, an O_PATH fd, another's allocation. */
	s = it_raw_connect(&br);
	CU_ASSERT_FATAL(s >= 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_hello(s), 0);
	CU_ASSERT_EQUAL_FATAL(it_raw_alloc(s, 1 * MiB, 64 * KiB, &id, &memfd), 0);
	opath = open(file_path("rd"), O_PATH | O_CLOEXEC);
	CU_ASSERT_FATAL(opath >= 0);
	q.alloc_id = id;
	CU_ASSERT_EQUAL(raw_file_io(s, &q, -1), -EPROTO);
	CU_ASSERT_EQUAL(raw_file_io(s, &q, opath), -EBADF);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .len = 64 * KiB,
							     .flags = PM_IO_STORE }, pfd[1]),
			-EINVAL);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .len = 64 * KiB,
							     .reserved = 1 }, pfd[1]),
			-EINVAL);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .len = 64 * KiB,
							     .file_off = UINT64_MAX - 4095 }, rd),
			-EINVAL);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .start = 1 * MiB,
							     .len = 4096 }, rd),
			-EINVAL);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id + 99, .len = 4096 },
				    rd),
			-ENOENT);
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .len = 4096,
							     .flags = PM_IO_STORE }, rd),
			-EBADF);
	/* A good one still works on this session. */
	CU_ASSERT_EQUAL(raw_file_io(s, &(struct pm_file_io){ .alloc_id = id, .len = 64 * KiB },
				    rd),
			0);
	/* No refused fd was kept: ours is the pipe's last write end. */
	close(pfd[1]);
	CU_ASSERT_TRUE(it_pipe_widowed(pfd[0], 1000));
	close(pfd[0]);
	close(opath);
	close(memfd);
	close(s);
	close(wr);
	close(rd);
}

/*
 * p2pmem a driver published, read from a captured sysfs tree: the NVMe
 * function gets a pool of kind p2pmem, region "p2pmem", of the size sysfs
 * gives (its "allocate" is a plain file here, mapped as the kernel's would
 * be); chunks move in and out, a load fills them in place (no P2P: the
 * file is on no PCI device), and the pool is revoked when the device
 * leaves sysfs.
 */
static void test_p2pmem_pool(void)
{
	static const char nvme[] = "0000:05:00.0";
	const size_t size = 2 * MiB;
	struct it_opts o = { .linger_ms = 300, .no_topology = true };
	char cfg[600], dir[400], path[500];
	struct pagemap_info info;
	struct pm_io_result res;
	struct it_broker pb;
	struct pm_client *c;
	int pm, in, fd;
	uint8_t *p;

	if (it_broker_init(&pb) < 0)
		return;
	CU_ASSERT_FATAL(it_copy_tree(cu_source_path("tests/fixtures/qemu-pcie"),
				     it_path(&pb, "sysfs")) == 0);
	snprintf(dir, sizeof(dir), "%s/%s/p2pmem",
		 it_path(&pb, "sysfs/sys/bus/pci/devices"), nvme);
	CU_ASSERT_FATAL(mkdir(dir, 0755) == 0);
	snprintf(path, sizeof(path), "%s/size", dir);
	CU_ASSERT_EQUAL_FATAL(it_write_file(path, "16777216\n"), 0);
	snprintf(path, sizeof(path), "%s/available", dir);
	CU_ASSERT_EQUAL_FATAL(it_write_file(path, "16777216\n"), 0);
	snprintf(path, sizeof(path), "%s/published", dir);
	CU_ASSERT_EQUAL_FATAL(it_write_file(path, "1\n"), 0);
	snprintf(path, sizeof(path), "%s/allocate", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CU_ASSERT_FATAL(fd >= 0 && ftruncate(fd, 16 * MiB) == 0);
	close(fd);
	snprintf(cfg, sizeof(cfg), "{\"pressure\": {\"psi_path\": \"\"}, \"sysfs_root\": \"%s\"}\n",
		 it_path(&pb, "sysfs"));
	o.config = cfg;
	CU_ASSERT_EQUAL_FATAL(it_broker_start(&pb, &o), 0);
	c = it_connect(&pb);
	CU_ASSERT_FATAL(c != NULL);
	pm = pagemap_open(c, nvme, "p2pmem", 0);
	CU_ASSERT_FATAL(pm >= 0);
	CU_ASSERT_EQUAL(pagemap_query(pm, &info), 0);
	CU_ASSERT_EQUAL(info.kind, PAGEMAP_KIND_P2PMEM);
	CU_ASSERT_STRING_EQUAL(info.region, "p2pmem");
	CU_ASSERT_EQUAL(info.capacity, 16 * MiB);

	CU_ASSERT_EQUAL_FATAL(pm_alloc(c, size, 0, (void **)&p), 0);
	it_pattern_fill(p, 0, size, 10);
	CU_ASSERT_EQUAL(pm_migrate(c, p, size, pm, 0), 0);
	CU_ASSERT_EQUAL(it_chunks_in(c, p, size, info.id), 1);
	CU_ASSERT_EQUAL(pagemap_query(pm, &info), 0);
	CU_ASSERT_EQUAL(info.used, size);
	in = pattern_file("p2pin", size, 11, O_RDONLY);
	CU_ASSERT_EQUAL(pm_load(c, p, size, in, 0, 0, &res), (ssize_t)size);
	CU_ASSERT_EQUAL(res.bytes_p2p_dma, 0);
	CU_ASSERT_EQUAL(it_chunks_in(c, p, size, info.id), 1);
	CU_ASSERT_EQUAL(it_pattern_check(p, 0, size, 11), SIZE_MAX);
	close(in);

	/* The driver unbinds: its p2pmem goes (allocate with it) while the
	 * function stays. The pagemap is revoked; published again, the pool
	 * is served again. */
	snprintf(path, sizeof(path), "%s/allocate", dir);
	CU_ASSERT_EQUAL(rename(path, it_path(&pb, "allocate.away")), 0);
	CU_ASSERT_TRUE(it_readable(pm, 10000));
	CU_ASSERT_EQUAL(it_pool_state(c, nvme, "p2pmem"), PM_POOL_GONE);
	CU_ASSERT_EQUAL(it_open_err(c, nvme, "p2pmem", 0), -ENODEV);
	CU_ASSERT_EQUAL(rename(it_path(&pb, "allocate.away"), path), 0);
	CU_ASSERT_EQUAL(it_pool_state(c, nvme, "p2pmem"), PM_POOL_AVAILABLE);
	close(pm);
	pm = pagemap_open(c, nvme, "p2pmem", 0);
	CU_ASSERT_FATAL(pm >= 0);

	/* Hot-removal: the pool's pagemap is revoked. */
	CU_ASSERT_EQUAL(pm_migrate(c, p, size, pm, 0), 0);
	snprintf(path, sizeof(path), "%s/%s", it_path(&pb, "sysfs/sys/bus/pci/devices"), nvme);
	CU_ASSERT_EQUAL(unlink(path), 0);
	CU_ASSERT_TRUE(it_readable(pm, 10000));
	CU_ASSERT(it_log_has(&pb, nvme, "vanished", NULL));
	CU_ASSERT_EQUAL(pm_free(c, p), 0);
	close(pm);
	pm_disconnect(c);
	it_broker_stop(&pb);
}

static void test_stop(void)
{
	if (br.pid)
		it_broker_stop(&br);
}

int main(void)
{
	char cmd[128];
	int r;
	static const struct cu_test tests[] = {
		{ "load and store where chunks live", test_load_store_where_it_lives },
		{ "parts of chunks, past the end of the file", test_partial_and_eof },
		{ "bounce on request; a load drops a stale replica", test_bounce_and_replica },
		{ "a load waits for a migration of its chunks", test_ordered_with_migration },
		{ "PM_OP_FILE_IO refuses bad input", test_refused },
		{ "p2pmem pool from sysfs", test_p2pmem_pool },
		{ "broker exits cleanly", test_stop },
		{ NULL, NULL },
	};

	snprintf(files, sizeof(files), "/dev/shm/pm-it-file-io.XXXXXX");
	if (!mkdtemp(files)) {
		perror("mkdtemp in /dev/shm");
		return 1;
	}
	r = cu_run("file-io", tests);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", files);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", files);
	return r;
}
