/* SPDX-License-Identifier: MIT */
/*
 * pmctl ranges: every managed allocation the broker knows (PM_OP_ALLOCS) and
 * where its chunks are, as runs of alike chunks: resident and requested
 * pagemap, advice, flags, the last failed transfer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json_out.h"
#include "pmctl.h"

#define HEAD (sizeof(struct pm_list_reply) - sizeof(struct pm_reply))

/*
 * Checks that the reply frames: count allocations, each a pm_alloc_info and
 * exactly its nruns pm_run, nothing after. Records sit unaligned in buf, so
 * every read copies out.
 */
static int check_reply(const uint8_t *buf, size_t len, uint32_t count)
{
	size_t off = HEAD;

	for (uint32_t i = 0; i < count; i++) {
		struct pm_alloc_info ai;

		if (len - off < sizeof(ai))
			return -EPROTO;
		memcpy(&ai, buf + off, sizeof(ai));
		off += sizeof(ai);
		if (ai.nruns > (len - off) / sizeof(struct pm_run))
			return -EPROTO;
		off += (size_t)ai.nruns * sizeof(struct pm_run);
	}
	return off == len ? 0 : -EPROTO;
}

/* "system", or a pagemap id; NULL for none (requested only). */
static const char *where(uint64_t id, bool requested, char *buf, size_t len)
{
	if (requested && id == 0)
		return NULL;
	if (requested ? id == PM_RUN_REQUESTED_SYSTEM : id == 0)
		return "system";
	snprintf(buf, len, "%" PRIu64, id);
	return buf;
}

static void chunk_span(const struct pm_run *run, char *buf, size_t len)
{
	if (run->count == 1)
		snprintf(buf, len, "%" PRIu64, run->first);
	else
		snprintf(buf, len, "%" PRIu64 "-%" PRIu64, run->first, run->first + run->count - 1);
}

/* Appends word to buf, space-separated (cut at len). */
static void add_word(char *buf, size_t len, const char *word)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? " " : "", word);
}

/* "preferred accessed-by:3,4 read-mostly" (without ids: "accessed-by"), unknown
 * bits in hex; "-" for none. */
static void advice_words(const struct pm_run *run, bool ids, char *buf, size_t len)
{
	uint32_t rest = run->advice & ~(uint32_t)(PM_RUN_PREFERRED | PM_RUN_ACCESSED_BY |
						  PM_RUN_READ_MOSTLY);
	char word[128];

	buf[0] = '\0';
	if (run->advice & PM_RUN_PREFERRED)
		add_word(buf, len, "preferred");
	if (run->advice & PM_RUN_ACCESSED_BY) {
		size_t n = snprintf(word, sizeof(word), "accessed-by%s", ids ? ":" : "");

		for (int i = 0; ids && i < PM_ACCESSORS_MAX && run->accessed_by[i]; i++)
			n += snprintf(word + n, sizeof(word) - n, "%s%" PRIu64, i ? "," : "",
				      run->accessed_by[i]);
		add_word(buf, len, word);
	}
	if (run->advice & PM_RUN_READ_MOSTLY)
		add_word(buf, len, "read-mostly");
	if (rest) {
		snprintf(word, sizeof(word), "0x%x", rest);
		add_word(buf, len, word);
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void flag_words(uint32_t flags, char *buf, size_t len)
{
	uint32_t rest = flags & ~(uint32_t)(PM_RUN_IN_FLIGHT | PM_RUN_HOST_COPY);
	char word[16];

	buf[0] = '\0';
	if (flags & PM_RUN_IN_FLIGHT)
		add_word(buf, len, "in-flight");
	if (flags & PM_RUN_HOST_COPY)
		add_word(buf, len, "host-copy");
	if (rest) {
		snprintf(word, sizeof(word), "0x%x", rest);
		add_word(buf, len, word);
	}
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void print_table(const uint8_t *buf, uint32_t count, uint64_t self)
{
	size_t off = HEAD;

	for (uint32_t i = 0; i < count; i++) {
		struct pm_alloc_info ai;
		char size[32], chunk[32];

		memcpy(&ai, buf + off, sizeof(ai));
		off += sizeof(ai);
		printf("%ssession %" PRIu64 ", pid %d: allocation %" PRIu64 ", %s in %" PRIu64
		       " chunks of %s, %" PRIu64 " in flight%s\n",
		       i ? "\n" : "", ai.session_id, ai.pid, ai.alloc_id,
		       pmctl_human_bytes(ai.size, size, sizeof(size)),
		       ai.chunk_size ? ai.size / ai.chunk_size : 0,
		       pmctl_human_bytes(ai.chunk_size, chunk, sizeof(chunk)), ai.in_flight,
		       ai.session_id == self ? " (this pmctl)" : "");
		printf("  %-11s %9s  %-9s %-10s %-19s %-28s %s\n", "CHUNKS", "BYTES", "RESIDENT",
		       "REQUESTED", "FLAGS", "ADVICE", "ERROR");
		for (uint32_t k = 0; k < ai.nruns; k++, off += sizeof(struct pm_run)) {
			char span[48], bytes[32], res[24], req[24], flags[48], adv[160];
			const char *rq;
			struct pm_run run;

			memcpy(&run, buf + off, sizeof(run));
			chunk_span(&run, span, sizeof(span));
			flag_words(run.flags, flags, sizeof(flags));
			advice_words(&run, true, adv, sizeof(adv));
			rq = where(run.requested, true, req, sizeof(req));
			printf("  %-11s %9s  %-9s %-10s %-19s %-28s %s\n", span,
			       pmctl_human_bytes(run.count * ai.chunk_size, bytes, sizeof(bytes)),
			       where(run.resident, false, res, sizeof(res)), rq ? rq : "none", flags,
			       adv, run.error ? strerror(-run.error) : "-");
		}
	}
	if (count == 0)
		printf("(no managed allocations)\n");
}

/* A location as JSON: a pagemap id, 0 for system memory; a requested
 * location that is none is null. One type per key, whatever the value. */
static int add_where(json_object *o, const char *key, uint64_t id, bool requested)
{
	if (requested && id == 0)
		return json_object_object_add(o, key, NULL) ? -ENOMEM : 0;
	if (requested && id == PM_RUN_REQUESTED_SYSTEM)
		id = 0;
	return json_out_add(o, key, json_object_new_uint64(id));
}

static json_object *words_json(const char *words)
{
	json_object *arr = json_object_new_array();
	char copy[160], *save = NULL;

	if (!arr || !strcmp(words, "-"))
		return arr;
	snprintf(copy, sizeof(copy), "%s", words);
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
		if (json_out_append(arr, json_object_new_string(w)) < 0) {
			json_object_put(arr);
			return NULL;
		}
	return arr;
}

static json_object *run_json(const struct pm_run *run, uint64_t chunk_size)
{
	json_object *o = json_object_new_object(), *acc = json_object_new_array();
	char adv[160], flags[48];

	if (!o || !acc)
		goto fail;
	for (int i = 0; i < PM_ACCESSORS_MAX && run->accessed_by[i]; i++)
		if (json_out_append(acc, json_object_new_uint64(run->accessed_by[i])) < 0)
			goto fail;
	flag_words(run->flags, flags, sizeof(flags));
	advice_words(run, false, adv, sizeof(adv));
	if (json_out_add(o, "first_chunk", json_object_new_uint64(run->first)) ||
	    json_out_add(o, "chunks", json_object_new_uint64(run->count)) ||
	    json_out_add(o, "offset", json_object_new_uint64(run->first * chunk_size)) ||
	    json_out_add(o, "bytes", json_object_new_uint64(run->count * chunk_size)) ||
	    add_where(o, "resident", run->resident, false) ||
	    add_where(o, "requested", run->requested, true) ||
	    json_out_add(o, "advice", words_json(adv)))
		goto fail;
	/* json_out_add owns acc from here, also when it fails. */
	if (json_out_add(o, "accessed_by", acc)) {
		json_object_put(o);
		return NULL;
	}
	if (json_out_add(o, "flags", words_json(flags)) ||
	    json_out_add(o, "error", json_object_new_int(run->error)) ||
	    json_out_add_str_or_null(o, "error_text", run->error ? strerror(-run->error) : NULL)) {
		json_object_put(o);
		return NULL;
	}
	return o;
fail:
	json_object_put(acc);
	json_object_put(o);
	return NULL;
}

static json_object *alloc_json(const uint8_t *buf, size_t *off)
{
	json_object *o = json_object_new_object(), *runs = json_object_new_array();
	struct pm_alloc_info ai;
	int r = o && runs ? 0 : -ENOMEM;

	memcpy(&ai, buf + *off, sizeof(ai));
	*off += sizeof(ai);
	for (uint32_t k = 0; k < ai.nruns; k++, *off += sizeof(struct pm_run)) {
		struct pm_run run;

		memcpy(&run, buf + *off, sizeof(run));
		if (r == 0)
			r = json_out_append(runs, run_json(&run, ai.chunk_size));
	}
	if (r < 0) {
		json_object_put(runs);
		json_object_put(o);
		return NULL;
	}
	if (json_out_add(o, "session_id", json_object_new_uint64(ai.session_id)) ||
	    json_out_add(o, "pid", json_object_new_int(ai.pid)) ||
	    json_out_add(o, "alloc_id", json_object_new_uint64(ai.alloc_id)) ||
	    json_out_add(o, "size", json_object_new_uint64(ai.size)) ||
	    json_out_add(o, "chunk_size", json_object_new_uint64(ai.chunk_size)) ||
	    json_out_add(o, "chunks",
			 json_object_new_uint64(ai.chunk_size ? ai.size / ai.chunk_size : 0)) ||
	    json_out_add(o, "in_flight", json_object_new_uint64(ai.in_flight)) ||
	    json_out_add(o, "runs", runs)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int print_json_allocs(const uint8_t *buf, uint32_t count)
{
	json_object *arr = json_object_new_array();
	size_t off = HEAD;

	if (!arr)
		return -ENOMEM;
	for (uint32_t i = 0; i < count; i++)
		if (json_out_append(arr, alloc_json(buf, &off)) < 0) {
			json_object_put(arr);
			return -ENOMEM;
		}
	return pmctl_print_json("allocations", arr);
}

int pmctl_ranges(struct pm_client *c, uint64_t session_id, bool json)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	struct pm_allocs req = { .session_id = session_id };
	uint32_t count, flags;
	char who[48] = "";
	size_t len = 0;
	int r = pm_client_call(c, PM_OP_ALLOCS, &req, sizeof(req), buf, sizeof(buf), &len, NULL);

	if (session_id)
		snprintf(who, sizeof(who), " %" PRIu64, session_id);
	if (r == -EPERM) {
		fprintf(stderr, "pmctl: ranges%s: not allowed to see other sessions' allocations "
				"(root or the broker's user only; name your own session)\n", who);
		return 1;
	}
	if (r == -ENOENT && session_id) {
		fprintf(stderr, "pmctl: ranges%s: no session %" PRIu64 " (see pmctl clients)\n",
			who, session_id);
		return 1;
	}
	if (r == -EOPNOTSUPP) {
		fprintf(stderr, "pmctl: ranges: this pagemapd does not list allocations "
				"(an older broker?)\n");
		return 1;
	}
	if (r >= 0 && len < HEAD)
		r = -EPROTO;
	if (r >= 0) {
		memcpy(&count, buf, sizeof(count));
		memcpy(&flags, buf + sizeof(count), sizeof(flags));
		if ((uint32_t)r != count || check_reply(buf, len, count) < 0)
			r = -EPROTO;
	}
	if (r < 0) {
		fprintf(stderr, "pmctl: ranges%s: %s\n", who, strerror(-r));
		return 1;
	}
	if (flags & PM_LIST_TRUNCATED)
		fprintf(stderr, "pmctl: ranges: the broker has more allocations or runs than fit "
				"one reply; the list is cut after %u\n", count);
	if (json)
		r = print_json_allocs(buf, count);
	else
		print_table(buf, count, c->session_id);
	if (r < 0) {
		fprintf(stderr, "pmctl: ranges: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
