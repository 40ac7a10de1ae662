/* SPDX-License-Identifier: MIT */
/*
 * pmctl pools, revoke and restore: which pools the broker serves and in
 * what state, and an administrator taking a device away and giving it back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"
#include "pagemap.h"
#include "pmctl.h"

static const char *pool_state_name(uint32_t s)
{
	switch (s) {
	case PM_POOL_AVAILABLE: return "available";
	case PM_POOL_LIVE: return "live";
	case PM_POOL_REVOKED: return "revoked";
	case PM_POOL_GONE: return "gone";
	}
	return "unknown";
}

static json_object *pool_json(const struct pm_pool_info *p)
{
	json_object *o = json_object_new_object();

	if (!o || json_out_add(o, "device", json_object_new_string(p->device)) ||
	    json_out_add(o, "region", json_object_new_string(p->region)) ||
	    json_out_add(o, "kind", json_object_new_string(pm_kind_name(p->kind))) ||
	    json_out_add(o, "numa_node", json_object_new_int(p->numa)) ||
	    json_out_add(o, "capacity", json_object_new_uint64(p->capacity)) ||
	    json_out_add(o, "free", json_object_new_uint64(p->free)) ||
	    json_out_add(o, "state", json_object_new_string(pool_state_name(p->state))) ||
	    json_out_add_str_or_null(o, "path", p->path[0] ? p->path : NULL) ||
	    (p->pagemap_id ? json_out_add(o, "pagemap_id", json_object_new_uint64(p->pagemap_id))
			   : json_object_object_add(o, "pagemap_id", NULL))) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int pmctl_pools(struct pm_client *c, bool json)
{
	/* One reply of the broker holds at most this many: one call. */
	const size_t max = (PM_MAX_PAYLOAD - sizeof(struct pm_list_reply)) /
			   sizeof(struct pm_pools_entry);
	struct pm_pool_info *pools = calloc(max, sizeof(*pools));
	int n = pools ? pm_list_pools(c, pools, max) : -ENOMEM;

	if (n > (int)max)
		n = (int)max;
	if (n < 0) {
		fprintf(stderr, "pmctl: pools: %s\n", strerror(-n));
		free(pools);
		return 1;
	}
	if (json) {
		json_object *arr = json_object_new_array();

		for (int i = 0; arr && i < n; i++)
			if (json_out_append(arr, pool_json(&pools[i]))) {
				json_object_put(arr);
				arr = NULL;
			}
		free(pools);
		if (!arr || pmctl_print_json("pools", arr) < 0) {
			fprintf(stderr, "pmctl: pools: %s\n", strerror(ENOMEM));
			return 1;
		}
		return 0;
	}
	printf("%-20s %-8s %-11s %4s %10s %10s %-9s %s\n", "DEVICE", "REGION", "KIND", "NUMA",
	       "CAPACITY", "FREE", "STATE", "PATH");
	for (int i = 0; i < n; i++) {
		const struct pm_pool_info *p = &pools[i];
		char cap[32], fr[32], numa[16];

		if (p->numa >= 0)
			snprintf(numa, sizeof(numa), "%d", p->numa);
		else
			snprintf(numa, sizeof(numa), "-");
		printf("%-20s %-8s %-11s %4s %10s %10s %-9s %s\n", p->device,
		       p->region[0] ? p->region : "-", pm_kind_name(p->kind), numa,
		       pmctl_human_bytes(p->capacity, cap, sizeof(cap)),
		       pmctl_human_bytes(p->free, fr, sizeof(fr)), pool_state_name(p->state),
		       p->path[0] ? p->path : "-");
	}
	if (!n)
		printf("(no pools this user may open)\n");
	free(pools);
	return 0;
}

int pmctl_revoke(struct pm_client *c, const char *device, bool restore, bool force, bool json)
{
	const char *verb = restore ? "restore" : "revoke";
	struct pm_revoke rv = { .flags = force ? PM_REVOKE_FORCE : 0 };
	json_object *o;
	int r;

	if (pm_name_put(rv.device, sizeof(rv.device), device) < 0) {
		fprintf(stderr, "pmctl: %s %s: device name longer than %d bytes\n", verb, device,
			PM_NAME_MAX - 1);
		return 2;
	}
	r = pm_client_call(c, restore ? PM_OP_RESTORE : PM_OP_REVOKE, &rv, sizeof(rv), NULL, 0,
			   NULL, NULL);
	if (r == -EBUSY && !restore) {
		fprintf(stderr, "pmctl: revoke %s: host memory holds every client's pages; "
				"revoke it only with --force\n", device);
		return 1;
	}
	if (r == -EPERM) {
		fprintf(stderr, "pmctl: %s %s: not allowed (root or the broker's user only)\n", verb,
			device);
		return 1;
	}
	if (r == -ENOENT) {
		fprintf(stderr, "pmctl: %s %s: the broker serves no pool of device '%s' "
				"(see pmctl pools)\n", verb, device, device);
		return 1;
	}
	if (r == -EINVAL) {
		fprintf(stderr, "pmctl: %s %s: invalid device name\n", verb, device);
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "pmctl: %s %s: %s\n", verb, device, strerror(-r));
		return 1;
	}
	if (json) {
		o = json_object_new_object();
		if (!o || json_out_add(o, "device", json_object_new_string(device)) ||
		    json_out_add(o, restore ? "restored" : "revoked", json_object_new_int(r))) {
			json_object_put(o);
			fprintf(stderr, "pmctl: %s %s: %s\n", verb, device, strerror(ENOMEM));
			return 1;
		}
		return pmctl_print_json(NULL, o) < 0 ? 1 : 0;
	}
	if (restore && r)
		printf("%s: restored %d pool%s: served again\n", device, r, r == 1 ? "" : "s");
	else if (restore)
		printf("%s: nothing to restore (not revoked, or its device is gone)\n", device);
	else
		printf("%s: revoked %d pagemap%s; the device stays disabled until "
		       "'pmctl restore %s'\n", device, r, r == 1 ? "" : "s", device);
	return 0;
}
