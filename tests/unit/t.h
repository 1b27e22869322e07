/*
 * t.h - the unit-test harness: each RUN() is one test, printed as
 * "ok - name" or "not ok - name" (TAP-like); tests/run counts those lines.
 * A failed CHECK prints file:line and the expression to stderr. A test in
 * which no CHECK ran proves nothing, so it fails too ("(no check ran)").
 */
#ifndef SC_T_H
#define SC_T_H

#include <stdio.h>
#include <string.h>

static int t_checks;
static int t_fail_checks;
static int t_tests_failed;

#define CHECK(cond) do { \
	t_checks++; \
	if (!(cond)) { \
		t_fail_checks++; \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_MEM(a, b, n) CHECK(memcmp((a), (b), (n)) == 0)

#define RUN(fn) do { \
	int t_f0 = t_fail_checks, t_c0 = t_checks; \
	fn(); \
	if (t_checks == t_c0) { \
		t_tests_failed++; \
		printf("not ok - %s (no check ran)\n", #fn); \
	} else if (t_fail_checks == t_f0) { \
		printf("ok - %s\n", #fn); \
	} else { \
		t_tests_failed++; \
		printf("not ok - %s\n", #fn); \
	} \
	fflush(stdout); \
} while (0)

#define T_EXIT() (t_tests_failed ? 1 : 0)

#endif
