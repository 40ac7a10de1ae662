/* SPDX-License-Identifier: MIT */
/* Log lines on stderr (the journal under systemd), prefixed by their level. */
#include <stdarg.h>
#include <stdio.h>

#include "broker.h"

enum log_level log_max = LOG_INFO;

void blog(enum log_level lvl, const char *fmt, ...)
{
	static const char *const prefix[] = { "<3>", "<4>", "<6>", "<7>" };
	va_list ap;

	if (lvl > log_max)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "%spagemapd: ", prefix[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
