/* SPDX-License-Identifier: MIT */
/* Parsing PCI names: function addresses and host bridge names, strictly. */
#include <stdio.h>
#include <string.h>

#include "topo.h"

/* 1 to max hex digits. */
static bool hexrun(const char **s, int max, uint32_t *v)
{
	int n = 0;

	*v = 0;
	for (; n < max; n++, (*s)++) {
		char c = **s;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;

		if (d < 0)
			break;
		*v = *v << 4 | (uint32_t)d;
	}
	return n > 0;
}

bool topo_parse_bdf(const char *s, bool allow_short, uint32_t *dom, uint8_t *bus, uint8_t *dev,
		    uint8_t *fn)
{
	uint32_t a, b, c, d;

	if (!hexrun(&s, 8, &a) || *s++ != ':' || !hexrun(&s, 2, &b))
		return false;
	if (*s == ':') {
		s++;
		if (!hexrun(&s, 2, &c) || *s++ != '.' || !hexrun(&s, 1, &d) || *s)
			return false;
	} else {
		if (!allow_short || a > 0xff || *s++ != '.' || !hexrun(&s, 1, &c) || *s)
			return false;
		d = c;
		c = b;
		b = a;
		a = 0;
	}
	if (c > 0x1f || d > 7)
		return false;
	*dom = a;
	*bus = (uint8_t)b;
	*dev = (uint8_t)c;
	*fn = (uint8_t)d;
	return true;
}

void topo_bdf_canonical(const char *s, char *out, size_t len)
{
	uint32_t dom;
	uint8_t bus, dev, fn;

	if (topo_parse_bdf(s, false, &dom, &bus, &dev, &fn))
		snprintf(out, len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	else
		snprintf(out, len, "%s", s);
}

bool topo_parse_hostbridge(const char *s, uint32_t *dom, uint8_t *bus)
{
	uint32_t b;

	if (strncmp(s, "pci", 3))
		return false;
	s += 3;
	if (!hexrun(&s, 8, dom) || *s++ != ':' || !hexrun(&s, 2, &b) || *s)
		return false;
	*bus = (uint8_t)b;
	return true;
}
