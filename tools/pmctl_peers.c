/* SPDX-License-Identifier: MIT */
/*
 * pmctl peers: the broker's RDMA links to peer brokers, one line each. The
 * rate is the RDMA port's, as ibv_devinfo would show it: the bandwidth of
 * the NET edge between this node and the peer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "json_out.h"
#include "pmctl.h"

static const char *role_name(uint32_t r)
{
	return r == PM_PEER_IMPORTS ? "imports" : r == PM_PEER_EXPORTS ? "exports" : "?";
}

static const char *state_name(uint32_t s)
{
	switch (s) {
	case PM_PEER_DOWN:
		return "down";
	case PM_PEER_CONNECTING:
		return "connecting";
	case PM_PEER_AUTHENTICATING:
		return "authenticating";
	case PM_PEER_READY:
		return "ready";
	}
	return "?";
}

/* A record copied out with its strings terminated (the broker pads them). */
static void read_peer(const uint8_t *rec, struct pm_peer_info *pi)
{
	memcpy(pi, rec, sizeof(*pi));
	pi->name[sizeof(pi->name) - 1] = '\0';
	pi->address[sizeof(pi->address) - 1] = '\0';
	pi->device[sizeof(pi->device) - 1] = '\0';
}

static json_object *peer_json(const struct pm_peer_info *pi)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_out_add(o, "name", json_object_new_string(pi->name)) < 0 ||
	    json_out_add_str_or_null(o, "address", pi->address[0] ? pi->address : NULL) < 0 ||
	    json_out_add_str_or_null(o, "device", pi->device[0] ? pi->device : NULL) < 0 ||
	    json_out_add(o, "role", json_object_new_string(role_name(pi->role))) < 0 ||
	    json_out_add(o, "state", json_object_new_string(state_name(pi->state))) < 0 ||
	    json_out_add(o, "rate_mbps", json_object_new_int64(pi->rate_mbps)) < 0 ||
	    json_out_add(o, "pools", json_object_new_int64(pi->npools)) < 0 ||
	    json_out_add(o, "pinned_bytes", json_object_new_int64((int64_t)pi->pinned)) < 0 ||
	    json_out_add(o, "connects", json_object_new_int64((int64_t)pi->connects)) < 0) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

int pmctl_peers(struct pm_client *c, bool json)
{
	static uint8_t buf[PM_MAX_PAYLOAD];
	const uint8_t *recs = NULL;
	struct pm_peer_info pi;
	int n = pmctl_call_list(c, PM_OP_PEERS, buf, sizeof(buf), sizeof(pi), &recs);

	if (n < 0) {
		fprintf(stderr, "pmctl: peers: %s\n", strerror(-n));
		return 1;
	}
	if (json) {
		json_object *arr = json_object_new_array();

		for (int i = 0; arr && i < n; i++) {
			read_peer(recs + (size_t)i * sizeof(pi), &pi);
			if (json_out_append(arr, peer_json(&pi)) < 0) {
				json_object_put(arr);
				arr = NULL;
			}
		}
		if (!arr || pmctl_print_json("peers", arr) < 0) {
			fprintf(stderr, "pmctl: peers: %s\n", strerror(ENOMEM));
			return 1;
		}
		return 0;
	}
	if (!n) {
		printf("(no peer brokers: see pagemapd --peer and --rdma-listen)\n");
		return 0;
	}
	printf("%-20s %-8s %-14s %-8s %10s %5s %10s %8s  %s\n", "PEER", "ROLE", "STATE", "DEVICE",
	       "RATE", "POOLS", "PINNED", "CONNECTS", "ADDRESS");
	for (int i = 0; i < n; i++) {
		char rate[32], pinned[32];

		read_peer(recs + (size_t)i * sizeof(pi), &pi);
		if (pi.rate_mbps)
			snprintf(rate, sizeof(rate), "%.1f Gb/s", pi.rate_mbps / 1000.0);
		else
			snprintf(rate, sizeof(rate), "-");
		printf("%-20s %-8s %-14s %-8s %10s %5u %10s %8" PRIu64 "  %s\n", pi.name,
		       role_name(pi.role), state_name(pi.state), pi.device[0] ? pi.device : "-", rate,
		       pi.npools, pmctl_human_bytes(pi.pinned, pinned, sizeof(pinned)), pi.connects,
		       pi.address[0] ? pi.address : "-");
	}
	return 0;
}
