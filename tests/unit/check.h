/* A minimal unit test harness: TEST(name) functions registered in main via
 * RUN(name); CHECK* record a failure and keep going; the summary line is
 * "unit <file>: N passed, N failed". Exit status 1 on any failure. */
#ifndef UDP_CHECK_H
#define UDP_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failed_in_test;
static int check_tests_passed, check_tests_failed;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
			check_failed_in_test = 1;                                                  \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                    \
		if (check_a_ != check_b_) {                                                        \
			fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n", __FILE__,    \
				__LINE__, #a, check_a_, #b, check_b_);                             \
			check_failed_in_test = 1;                                                  \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                       \
		if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                   \
			fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,      \
				__LINE__, #a, check_a_ ? check_a_ : "(null)",                      \
				check_b_ ? check_b_ : "(null)");                                   \
			check_failed_in_test = 1;                                                  \
		}                                                                                  \
	} while (0)

/* The string a contains the substring b. */
#define CHECK_CONTAINS(a, b)                                                                       \
	do {                                                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                       \
		if (!check_a_ || !strstr(check_a_, check_b_)) {                                    \
			fprintf(stderr, "  %s:%d: %s == \"%s\" lacks \"%s\"\n", __FILE__,          \
				__LINE__, #a, check_a_ ? check_a_ : "(null)", check_b_);           \
			check_failed_in_test = 1;                                                  \
		}                                                                                  \
	} while (0)

#define TEST(name) static void name(void)

#define RUN(name)                                                                                  \
	do {                                                                                       \
		check_failed_in_test = 0;                                                          \
		name();                                                                            \
		if (check_failed_in_test) {                                                        \
			check_tests_failed++;                                                      \
			fprintf(stderr, "FAIL %s\n", #name);                                       \
		} else {                                                                           \
			check_tests_passed++;                                                      \
		}                                                                                  \
	} while (0)

#define CHECK_SUMMARY()                                                                            \
	(printf("unit %s: %d passed, %d failed\n", __FILE__, check_tests_passed,                   \
		check_tests_failed),                                                               \
	 check_tests_failed ? 1 : 0)

#endif
