/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the JSON topology file (topology/topo_file*.c): the
 * input is the file's text. A graph that loads is then used the way pmtopo
 * and the broker use one: classified pair by pair (hops, p2pdma, cells),
 * grouped, looked up by name, dumped and loaded again (the canonical form
 * must round-trip byte for byte, as tests/unit/test_topo_file.c requires of
 * the examples), and after a hot-remove of one function classified and
 * dumped once more. Everything is freed: ASan's leak check runs per input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_fd.h"
#include "topo.h"

#define FUZZ_MAX_INPUT (256u << 10)
#define MAX_DEVICES 12 /* pairs classified: enough to reach every rule */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "fuzz_topo_file: %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                            \
			abort();                                                             \
		}                                                                            \
	} while (0)

/* The graph as the file's text, or NULL; caller frees. */
static char *dump(const struct topo_graph *g)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		abort();
	r = topo_file_dump(g, f);
	fclose(f);
	if (r < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void classify_all(const struct topo_graph *g)
{
	size_t n = g->n_devices < MAX_DEVICES ? g->n_devices : MAX_DEVICES;
	struct topo_path *p = malloc(sizeof(*p));
	int *group = calloc(g->n_devices ? g->n_devices : 1, sizeof(int));
	char cell[32], hop[256];

	if (!p || !group)
		abort();
	for (size_t a = 0; a < n; a++) {
		(void)topo_graph_lookup(g, g->devices[a].name);
		(void)topo_graph_lookup(g, g->devices[a].alias);
		for (size_t b = 0; b < n; b++) {
			if (topo_classify(g, (int)a, (int)b, p) < 0)
				continue;
			CHECK(p->nhops >= 0 && p->nhops <= TOPO_MAX_HOPS);
			CHECK(p->cls >= TOPO_CLASS_X && p->cls <= TOPO_CLASS_NET);
			CHECK(strnlen(p->reason, sizeof(p->reason)) < sizeof(p->reason));
			topo_class_cell(p, cell, sizeof(cell));
			for (int h = 0; h < p->nhops; h++)
				topo_hop_name(g, &p->hops[h], hop, sizeof(hop));
			(void)topo_class_name(p->cls);
			(void)topo_p2p_verdict_name(p->p2p);
		}
	}
	if (n)
		CHECK(topo_peer_groups(g, group) >= 0);
	for (size_t i = 0; i < g->n_pci; i++) {
		(void)topo_pci_uplink_gbps(g, (int)i);
		(void)topo_pci_numa(g, (int)i);
		(void)topo_fabric_nvswitched(g, (int)i);
	}
	for (size_t i = 0; i < g->n_numa; i++)
		for (size_t j = 0; j < g->n_numa; j++)
			(void)topo_numa_distance(g, g->numa[i].id, g->numa[j].id);
	free(group);
	free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct topo_graph *g = NULL, *g2 = NULL;
	char err[512], *text, *a, *b;
	int r, fds;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	fds = fuzz_fd_probe();
	text = malloc(size + 1);
	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = 'x';
	r = topo_file_load_string(text, &g, err, sizeof(err));
	free(text);
	if (r < 0) {
		CHECK(g == NULL);      /* output untouched on failure */
		CHECK(err[0] != '\0'); /* and a reason given */
		CHECK(memchr(err, '\0', sizeof(err)));
		fuzz_fd_check(fds, "fuzz_topo_file");
		return 0;
	}
	CHECK(g != NULL);
	classify_all(g);

	/* The canonical form loads again and prints the same bytes. */
	a = dump(g);
	CHECK(a != NULL);
	r = topo_file_load_string(a, &g2, err, sizeof(err));
	if (r < 0)
		fprintf(stderr, "fuzz_topo_file: the dump does not load again: %s\n%s\n", err, a);
	CHECK(r == 0);
	b = dump(g2);
	CHECK(b != NULL);
	if (strcmp(a, b))
		fprintf(stderr, "fuzz_topo_file: dump A\n%s\ndump B\n%s\n", a, b);
	CHECK(strcmp(a, b) == 0);
	CHECK(g2->n_devices == g->n_devices && g2->n_pci == g->n_pci);
	free(a);
	free(b);
	topo_graph_free(g2);

	/* A hot-remove (the broker's path): the graph stays usable. */
	if (g->n_pci) {
		r = topo_graph_remove_pci(g, (int)(size % g->n_pci));
		if (r >= 0) {
			classify_all(g);
			free(dump(g));
		}
	}
	topo_graph_free(g);
	fuzz_fd_check(fds, "fuzz_topo_file");
	return 0;
}
