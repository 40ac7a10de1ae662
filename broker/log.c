/* SPDX-License-Identifier: MIT */
/*
 * Log lines on stderr. Under systemd stderr is a journal stream, which takes
 * a "<N>" prefix as the line's priority and names the program itself; on a
 * terminal or in a file those prefixes are noise, so lines are plain there,
 * with a word for the levels worth telling apart.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"

enum log_level log_max = LOG_INFO;

static bool to_journal;
static pthread_once_t to_journal_once = PTHREAD_ONCE_INIT;

/*
 * systemd sets $JOURNAL_STREAM to the device and inode of the stream it
 * connected stdout/stderr to. A child whose stderr was redirected since
 * still inherits the variable, hence the comparison with stderr itself.
 */
static void journal_check(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char end;

	if (!env || sscanf(env, "%llu:%llu%c", &dev, &ino, &end) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) < 0)
		return;
	to_journal = st.st_dev == dev && st.st_ino == ino;
}

void blog(enum log_level lvl, const char *fmt, ...)
{
	/* syslog priorities: LOG_ERR 3, LOG_WARNING 4, LOG_INFO 6, LOG_DEBUG 7 */
	static const char *const journal[] = { "<3>", "<4>", "<6>", "<7>" };
	static const char *const plain[] = { "pagemapd: error: ", "pagemapd: warning: ",
					     "pagemapd: ", "pagemapd: debug: " };
	va_list ap;

	if (lvl > log_max)
		return;
	/* Copy threads log too: the first line decides, once. */
	pthread_once(&to_journal_once, journal_check);
	va_start(ap, fmt);
	/* One line, whole, however many threads log at once. */
	flockfile(stderr);
	fputs(to_journal ? journal[lvl] : plain[lvl], stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	funlockfile(stderr);
	va_end(ap);
}
