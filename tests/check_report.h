/* SPDX-License-Identifier: MIT */
/*
 * How the check programs (pm_gpu_check, pm_gpu_fault_check, pm_remote_check)
 * report: a line per check on stdout, "ok ..." or "FAIL: ...", and the
 * failures counted for the exit status.
 */
#ifndef PAGEMAP_CHECK_REPORT_H
#define PAGEMAP_CHECK_REPORT_H
#include <stdio.h>

static int failures;

#define FAIL(...)                             \
	do {                                  \
		printf("FAIL: " __VA_ARGS__); \
		putchar('\n');                \
		failures++;                   \
	} while (0)
#define OK(...)                            \
	do {                               \
		printf("ok " __VA_ARGS__); \
		putchar('\n');             \
	} while (0)
#endif
