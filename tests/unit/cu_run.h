/* SPDX-License-Identifier: MIT */
/* Runs a CUnit registry with the basic interface; the exit status says how it went. */
#ifndef PAGEMAP_CU_RUN_H
#define PAGEMAP_CU_RUN_H
#include <stdbool.h>

#include <CUnit/CUnit.h>

struct cu_test {
	const char *name;
	CU_TestFunc fn;
};

/* Registers one suite of tests (NULL-terminated) and runs it. Returns the exit
 * status for main(): 0 all passed, 1 a failure. Tests that cannot run return
 * 77 from main() themselves, before calling this. */
int cu_run(const char *suite, const struct cu_test *tests);

/* An assertion whose failure says what differed: prints "file:line: message"
 * to stderr and records it with CUnit. */
void cu_check_at(bool ok, const char *file, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* $PAGEMAP_SOURCE_ROOT/rel, or rel from the working directory. */
const char *cu_source_path(const char *rel);
#endif
