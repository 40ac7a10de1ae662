/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpuset.h"

#define NBITS (CPUSET_WORDS * 64)

static void set_bit(struct cpuset *c, unsigned long b)
{
	c->w[b / 64] |= 1ull << (b % 64);
}

static bool test_bit(const struct cpuset *c, unsigned long b)
{
	return c->w[b / 64] >> (b % 64) & 1;
}

int cpuset_parse_list(const char *s, struct cpuset *out)
{
	struct cpuset c = { { 0 } };

	while (*s && *s != '\n') {
		char *end;
		unsigned long a = strtoul(s, &end, 10), b = a;

		if (end == s)
			return -EINVAL;
		if (*end == '-') {
			s = end + 1;
			b = strtoul(s, &end, 10);
			if (end == s || b < a)
				return -EINVAL;
		}
		if (b >= NBITS)
			return -ERANGE;
		for (unsigned long i = a; i <= b; i++)
			set_bit(&c, i);
		s = end;
		if (*s == ',')
			s++;
		else if (*s && *s != '\n')
			return -EINVAL;
	}
	*out = c;
	return 0;
}

/* Comma-separated 32-bit hex words, most significant first. */
int cpuset_parse_mask(const char *s, struct cpuset *out)
{
	struct cpuset c = { { 0 } };
	size_t nwords = 1;
	const char *p;

	for (p = s; *p && *p != '\n'; p++)
		nwords += *p == ',';
	if (nwords > CPUSET_WORDS * 2)
		return -ERANGE;
	for (size_t word = nwords; word-- > 0;) {
		char *end;
		unsigned long v = strtoul(s, &end, 16);

		if (end == s || (*end && *end != ',' && *end != '\n'))
			return -EINVAL;
		c.w[word / 2] |= (uint64_t)(v & 0xffffffffu) << (32 * (word % 2));
		s = *end == ',' ? end + 1 : end;
	}
	*out = c;
	return 0;
}

void cpuset_format_list(const struct cpuset *c, char *buf, size_t len)
{
	size_t n = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned long i = 0; i < NBITS && n < len; i++) {
		unsigned long j = i;

		if (!test_bit(c, i))
			continue;
		while (j + 1 < NBITS && test_bit(c, j + 1))
			j++;
		if (j > i)
			n += (size_t)snprintf(buf + n, len - n, "%s%lu-%lu", n ? "," : "", i, j);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s%lu", n ? "," : "", i);
		i = j;
	}
}

bool cpuset_empty(const struct cpuset *c)
{
	for (size_t i = 0; i < CPUSET_WORDS; i++)
		if (c->w[i])
			return false;
	return true;
}

bool cpuset_subset(const struct cpuset *sub, const struct cpuset *super)
{
	for (size_t i = 0; i < CPUSET_WORDS; i++)
		if (sub->w[i] & ~super->w[i])
			return false;
	return true;
}
