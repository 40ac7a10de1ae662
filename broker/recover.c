/* SPDX-License-Identifier: MIT */
/*
 * What a crashed broker's successor can take back (docs/security.md,
 * "Restarts"). Some pools' memory outlives the broker: a PCI BAR is device
 * memory, and with a state directory an emulated pool lives in a file there
 * rather than a memfd. For those, where each chunk sits is written down as
 * it happens, in a table per pool mapped from the state directory (tmpfs:
 * /run): one record per PM_CHUNK_MIN unit, at a chunk's first unit. The
 * kernel keeps a dead process's MAP_SHARED writes, so a crash loses none.
 *
 * A record names its chunk by the owner's memfd (inode, size, chunk size,
 * uid) and index. A successor finds the records still set ("orphans"),
 * keeps their pool space, and gives each chunk back to the allocation that
 * registers the same memfd again (libpagemap's reconnect), then forgets
 * what nobody claimed within RECOVER_MS.
 *
 * A record is written before its copy starts (pending) and confirmed once
 * the data is in place: by the copy worker before it punches the host
 * pages, or on completion, before the source's record is forgotten. So a
 * confirmed record always names a whole copy, and while a record is
 * pending the data is still wherever it came from. A successor takes back
 * confirmed records only, whatever the host side shows (a client can punch
 * its own pages; a copy home cut short leaves some): a pending one may name
 * a slot still holding what an earlier owner left there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker.h"

#define RECOVER_MS 60000
#define TABLE_MAGIC 0x324d4350u /* "PCM2" */

struct rec {
	uint64_t ino;        /* the owner's memfd inode; 0: a free unit */
	uint64_t dev;        /* and its device (hugetlbfs and shmem number apart) */
	uint64_t size, chunk_size, chunk;
	uint32_t uid;
	uint32_t pending;    /* 1: written before its copy completed */
};

struct table {
	uint32_t magic, unit;
	uint64_t capacity;
	char boot_id[40]; /* records name inodes, which mean nothing after a reboot */
	struct rec recs[];
};

static void boot_id(char out[40])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	memset(out, 0, 40);
	if (f) {
		if (!fgets(out, 40, f))
			out[0] = 0;
		fclose(f);
	}
}

static bool persists(const struct broker *b, const struct pool *p)
{
	return b->conf.state_dir[0] &&
	       (p->ops == &pool_emulated_ops || p->ops == &pool_bar_ops);
}

/* "0000:03:00.0" "mem" -> DIR/0000:03:00.0-mem.EXT */
static void state_path(const struct broker *b, const struct pool *p, const char *ext, char *buf,
		       size_t len)
{
	snprintf(buf, len, "%s/%s-%s.%s", b->conf.state_dir, p->device,
		 p->region[0] ? p->region : "default", ext);
}

static int table_map(struct broker *b, struct pool *p)
{
	char path[700];
	uint64_t nunits = p->capacity / PM_CHUNK_MIN;
	size_t len = sizeof(struct table) + nunits * sizeof(struct rec);
	char boot[40];
	struct table *t;
	int fd, r = 0;

	state_path(b, p, "chunks", path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (t == MAP_FAILED)
		return -errno;
	/* Another pool size, layout or boot: nothing in it is ours. */
	boot_id(boot);
	if (t->magic != TABLE_MAGIC || t->unit != PM_CHUNK_MIN || t->capacity != p->capacity ||
	    memcmp(t->boot_id, boot, sizeof(boot))) {
		if (t->magic)
			blog(LOG_WARN, "%s: not this pool's table from this boot: started afresh",
			     path);
		memset(t, 0, len);
		t->magic = TABLE_MAGIC;
		t->unit = PM_CHUNK_MIN;
		t->capacity = p->capacity;
		memcpy(t->boot_id, boot, sizeof(boot));
	}
	p->recs = t;
	p->recs_len = len;
	return 0;
}

int recover_init(struct broker *b)
{
	unsigned pools = 0;
	uint64_t orphans = 0;
	int r;

	if (!b->conf.state_dir[0])
		return 0;
	/* Records decide whose data goes where: only ours may be believed,
	 * and a directory others could write may hold forged ones already. */
	r = broker_dir_ours(b->conf.state_dir, 0700, false);
	if (r < 0) {
		blog(LOG_ERR, "state directory %s: %s", b->conf.state_dir,
		     r == -EPERM ? "must be a directory of ours that no one else may write"
				 : strerror(-r));
		return r;
	}
	for (struct pool *p = b->pools; p; p = p->next) {
		if (!persists(b, p))
			continue;
		if (p->ops == &pool_emulated_ops)
			state_path(b, p, "mem", p->k.emu.backing, sizeof(p->k.emu.backing));
		r = table_map(b, p);
		if (r < 0) {
			blog(LOG_ERR, "%s: cannot keep chunk records: %s", p->device, strerror(-r));
			return r;
		}
		pools++;
		for (uint64_t u = 0; u < p->capacity / PM_CHUNK_MIN; u++) {
			struct rec *rc = &p->recs->recs[u];

			/* A copy that never completed: its data is still where
			 * it came from, and the slot may hold someone else's. */
			if (rc->ino && rc->pending)
				memset(rc, 0, sizeof(*rc));
			p->orphans += rc->ino != 0;
		}
		if (!p->orphans)
			continue;
		p->orphan_map = calloc(p->capacity / PM_CHUNK_MIN, 1);
		if (!p->orphan_map) {
			p->orphans = 0;
			return -ENOMEM;
		}
		/* The pool's memory, as the last broker left it, is held (and
		 * its orphans' space kept) until they are claimed or given up. */
		r = registry_hold(b, p);
		if (r < 0) {
			blog(LOG_ERR, "%s: cannot recover %llu chunks: %s", p->device,
			     (unsigned long long)p->orphans, strerror(-r));
			memset(p->recs->recs, 0, p->recs_len - sizeof(struct table));
			free(p->orphan_map);
			p->orphan_map = NULL;
			p->orphans = 0;
			continue;
		}
		for (uint64_t u = 0; u < p->capacity / PM_CHUNK_MIN; u++) {
			const struct rec *rc = &p->recs->recs[u];

			if (!rc->ino)
				continue;
			if (space_take(p, u * PM_CHUNK_MIN, rc->chunk_size) < 0) {
				memset(&p->recs->recs[u], 0, sizeof(*rc));
				p->orphans--;
				continue;
			}
			p->orphan_map[u] = 1;
		}
		orphans += p->orphans;
	}
	if (orphans) {
		b->recover_deadline = now_ms() + RECOVER_MS;
		blog(LOG_INFO, "recovering %llu chunks left in device pools by the last broker: "
			       "kept %d s for their owners to come back",
		     (unsigned long long)orphans, RECOVER_MS / 1000);
	} else if (pools) {
		blog(LOG_DEBUG, "state in %s: %u pools keep their chunks across a crash",
		     b->conf.state_dir, pools);
	}
	return 0;
}

void recover_note(struct pool *p, uint64_t off, const struct allocation *al, uint64_t chunk,
		  bool pending)
{
	struct rec *rc;

	if (!p->recs)
		return;
	rc = &p->recs->recs[off / PM_CHUNK_MIN];
	rc->dev = al->dev;
	rc->size = al->size;
	rc->chunk_size = al->chunk_size;
	rc->chunk = chunk;
	rc->uid = al->uid;
	rc->pending = pending;
	/* The identity last: a record is whole once it names someone. */
	__atomic_store_n(&rc->ino, al->ino, __ATOMIC_RELEASE);
}

uint32_t *recover_pending_flag(struct pool *p, uint64_t off)
{
	return p->recs ? &p->recs->recs[off / PM_CHUNK_MIN].pending : NULL;
}

void recover_forget(struct pool *p, uint64_t off)
{
	if (p->recs)
		__atomic_store_n(&p->recs->recs[off / PM_CHUNK_MIN].ino, 0, __ATOMIC_RELEASE);
}

/* An orphan nobody will have: its space and record go. */
static void orphan_gone(struct broker *b, struct pool *p, uint64_t u)
{
	p->orphan_map[u] = 0;
	if (--p->orphans)
		return;
	free(p->orphan_map);
	p->orphan_map = NULL;
	if (p->pm)
		registry_unpin(b, p->pm); /* registry_hold's pin */
}

static void drop_orphan(struct broker *b, struct pool *p, uint64_t u)
{
	struct rec *rc = &p->recs->recs[u];

	space_put(p, u * PM_CHUNK_MIN, rc->chunk_size);
	memset(rc, 0, sizeof(*rc));
	orphan_gone(b, p, u);
}

void recover_claim(struct broker *b, struct allocation *al)
{
	uint64_t found = 0;

	for (struct pool *p = b->pools; p; p = p->next) {
		if (!p->orphans || !p->pm)
			continue;
		for (uint64_t u = 0; u < p->capacity / PM_CHUNK_MIN && p->orphans; u++) {
			struct rec *rc = &p->recs->recs[u];
			struct chunk *ch;

			if (!p->orphan_map[u] || rc->ino != al->ino || rc->dev != al->dev ||
			    rc->uid != al->uid || rc->size != al->size ||
			    rc->chunk_size != al->chunk_size || rc->chunk >= al->nchunks)
				continue;
			ch = &al->chunks[rc->chunk];
			/* Pending: the data never left where it came from. A
			 * second confirmed copy (a crash between confirming the
			 * new place and forgetting the old): the same bytes. */
			if (__atomic_load_n(&rc->pending, __ATOMIC_ACQUIRE) || ch->where) {
				drop_orphan(b, p, u);
				continue;
			}
			alloc_set_ref(b, &ch->where, p->pm);
			ch->off = u * PM_CHUNK_MIN;
			rc->pending = 0;
			/* Its bytes were placed before: charged again, over a
			 * quota or not (refusing would lose them). */
			uid_force_charge(b, al->uid, UID_PLACED_BYTES, al->chunk_size);
			found++;
			orphan_gone(b, p, u);
		}
	}
	if (found)
		blog(LOG_INFO, "allocation %llu (pid %d): %llu chunks recovered from device pools",
		     (unsigned long long)al->id, (int)al->pid, (unsigned long long)found);
}

void recover_expire(struct broker *b)
{
	uint64_t dropped = 0;

	if (!b->recover_deadline || now_ms() < b->recover_deadline)
		return;
	b->recover_deadline = 0;
	for (struct pool *p = b->pools; p; p = p->next)
		for (uint64_t u = 0; p->orphans && u < p->capacity / PM_CHUNK_MIN; u++)
			if (p->orphan_map[u]) {
				drop_orphan(b, p, u);
				dropped++;
			}
	if (dropped)
		blog(LOG_WARN, "%llu recovered chunks were not claimed in %d s: freed",
		     (unsigned long long)dropped, RECOVER_MS / 1000);
}

/* Records still set at a stop are orphans nobody claimed yet: they stay
 * for the next broker, as does their pool's memory. */
void recover_fini(struct broker *b)
{
	for (struct pool *p = b->pools; p; p = p->next) {
		if (p->recs)
			munmap(p->recs, p->recs_len);
		p->recs = NULL;
		free(p->orphan_map);
		p->orphan_map = NULL;
	}
}
