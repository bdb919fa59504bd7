/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A stand-in for tools/testing/selftests/kselftest.h, used only when this directory is built
 * outside a kernel tree (the Makefile adds -Ishim then). It implements the subset the
 * auxspec programs call, with the same KTAP output and exit codes. In a kernel tree the
 * real kselftest.h is used.
 */
#ifndef __KSELFTEST_H
#define __KSELFTEST_H
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define KSFT_PASS  0
#define KSFT_FAIL  1
#define KSFT_XFAIL 2
#define KSFT_XPASS 3
#define KSFT_SKIP  4

static struct { unsigned int pass, fail, xfail, xskip; } ksft_cnt;
static unsigned int ksft_plan;

static inline unsigned int ksft_test_num(void) { return ksft_cnt.pass + ksft_cnt.fail + ksft_cnt.xfail + ksft_cnt.xskip; }
static inline int ksft_get_fail_cnt(void) { return ksft_cnt.fail; }

static inline void ksft_print_header(void)
{
	if (!getenv("KSFT_TAP_LEVEL"))
		printf("TAP version 13\n");
}

static inline void ksft_set_plan(unsigned int plan)
{
	ksft_plan = plan;
	printf("1..%u\n", plan);
}

static inline void ksft_print_cnts(void)
{
	printf("# Totals: pass:%u fail:%u xfail:%u xpass:0 skip:%u error:0\n", ksft_cnt.pass, ksft_cnt.fail, ksft_cnt.xfail, ksft_cnt.xskip);
}

#define KSFT_SHIM_OUT(prefix_fmt, counter)			\
	do {							\
		va_list args;					\
		counter++;					\
		printf(prefix_fmt, ksft_test_num());		\
		va_start(args, msg);				\
		vprintf(msg, args);				\
		va_end(args);					\
	} while (0)

static inline void ksft_print_msg(const char *msg, ...)
{
	va_list args;

	printf("# ");
	va_start(args, msg);
	vprintf(msg, args);
	va_end(args);
}

static inline void ksft_test_result_pass(const char *msg, ...) { KSFT_SHIM_OUT("ok %u ", ksft_cnt.pass); }
static inline void ksft_test_result_fail(const char *msg, ...) { KSFT_SHIM_OUT("not ok %u ", ksft_cnt.fail); }
static inline void ksft_test_result_xfail(const char *msg, ...) { KSFT_SHIM_OUT("ok %u # XFAIL ", ksft_cnt.xfail); }
static inline void ksft_test_result_skip(const char *msg, ...) { KSFT_SHIM_OUT("ok %u # SKIP ", ksft_cnt.xskip); }

static inline int ksft_exit_pass(void) { ksft_print_cnts(); exit(KSFT_PASS); }
static inline int ksft_exit_fail(void) { ksft_print_cnts(); exit(KSFT_FAIL); }

#define ksft_finished()								\
	(ksft_plan == ksft_cnt.pass + ksft_cnt.xfail + ksft_cnt.xskip ?	\
	 ksft_exit_pass() : ksft_exit_fail())

static inline int ksft_exit_fail_msg(const char *msg, ...)
{
	va_list args;

	printf("Bail out! ");
	va_start(args, msg);
	vprintf(msg, args);
	va_end(args);
	ksft_print_cnts();
	exit(KSFT_FAIL);
}

static inline int ksft_exit_skip(const char *msg, ...)
{
	va_list args;

	if (ksft_plan || ksft_test_num()) {
		ksft_cnt.xskip++;
		printf("ok %u # SKIP ", ksft_test_num());
	} else {
		printf("1..0 # SKIP ");
	}
	va_start(args, msg);
	vprintf(msg, args);
	va_end(args);
	if (ksft_test_num())
		ksft_print_cnts();
	exit(KSFT_SKIP);
}
#endif
