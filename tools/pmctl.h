/* SPDX-License-Identifier: MIT */
/* pmctl's commands, one file each, and the output helpers they share (pmctl.c). */
#ifndef PAGEMAP_PMCTL_H
#define PAGEMAP_PMCTL_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "client.h"

/* "512 MiB", "1.5 GiB": binary units, one decimal only when it is not whole. */
const char *pmctl_human_bytes(uint64_t v, char *buf, size_t len);
/* Every JSON document pmctl prints: {"version": PMCTL_JSON_VERSION, view: val},
 * or for view NULL val's members beside the version (val an object). Frees
 * val. 0 or -ENOMEM. */
#define PMCTL_JSON_VERSION 1
int pmctl_print_json(const char *view, json_object *val);
/*
 * A list request: the reply body is pm_list_reply's count and flags, then
 * count records of size rec. Returns the count, with *recs pointing into
 * buf, or -errno (-EPROTO for a reply that does not add up).
 */
int pmctl_call_list(struct pm_client *c, uint16_t op, uint8_t *buf, size_t cap, size_t rec,
		    const uint8_t **recs);

/* pmctl ranges [SESSION_ID]: allocations and their chunk runs (0: every session).
 * Returns the exit status, having named any failure on stderr. */
int pmctl_ranges(struct pm_client *c, uint64_t session_id, bool json);
/* pmctl peers: links to peer brokers. Returns the exit status. */
int pmctl_peers(struct pm_client *c, bool json);
/* pmctl pools: every pool the caller may open, with its state. Exit status. */
int pmctl_pools(struct pm_client *c, bool json);
/* pmctl revoke [--force] DEVICE, pmctl restore DEVICE. Exit status. */
int pmctl_revoke(struct pm_client *c, const char *device, bool restore, bool force, bool json);
#endif
