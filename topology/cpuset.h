/* SPDX-License-Identifier: MIT */
/* CPU sets as the kernel prints them: lists ("0-7,16-23") and masks ("ff,00ff00ff"). */
#ifndef PAGEMAP_CPUSET_H
#define PAGEMAP_CPUSET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPUSET_WORDS 64 /* 4096 CPUs */

struct cpuset {
	uint64_t w[CPUSET_WORDS];
};

int cpuset_parse_list(const char *s, struct cpuset *out);
int cpuset_parse_mask(const char *s, struct cpuset *out);
void cpuset_format_list(const struct cpuset *c, char *buf, size_t len);
bool cpuset_empty(const struct cpuset *c);
bool cpuset_subset(const struct cpuset *sub, const struct cpuset *super);
#endif
