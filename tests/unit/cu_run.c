/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <CUnit/Basic.h>

#include "cu_run.h"

int cu_run(const char *suite, const struct cu_test *tests)
{
	CU_pSuite s;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite(suite, NULL, NULL);
	if (!s)
		return 1;
	for (const struct cu_test *t = tests; t->name; t++)
		if (!CU_add_test(s, t->name, t->fn))
			return 1;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}

const char *cu_source_path(const char *rel)
{
	static char buf[4096];
	const char *root = getenv("PAGEMAP_SOURCE_ROOT");

	snprintf(buf, sizeof(buf), "%s/%s", root ? root : ".", rel);
	return buf;
}

void cu_check_at(bool ok, const char *file, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ok)
		fprintf(stderr, "  %s:%u: %s\n", file, line, msg);
	/* CUnit copies the message into its failure record. */
	CU_assertImplementation(ok, line, msg, file, "", CU_FALSE);
}
