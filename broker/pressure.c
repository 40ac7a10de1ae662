/* SPDX-License-Identifier: MIT */
/*
 * Memory pressure, as the kernel's PSI reports it: "some avg10=" of
 * /proc/pressure/memory above the configured threshold means lingering
 * pagemaps should give their memory back now (the kernel's drm_pagemap
 * cache does the same from its shrinker).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

bool pressure_high(const struct broker *b)
{
	char line[256];
	bool high = false;
	FILE *f;

	if (!b->conf.psi_path[0])
		return false;
	f = fopen(b->conf.psi_path, "re");
	if (!f)
		return false; /* kernels without PSI: the timer alone decides */
	while (fgets(line, sizeof(line), f)) {
		const char *avg = strstr(line, "avg10=");

		if (!strncmp(line, "some", 4) && avg) {
			high = strtod(avg + 6, NULL) >= b->conf.psi_some_avg10;
			break;
		}
	}
	fclose(f);
	return high;
}
