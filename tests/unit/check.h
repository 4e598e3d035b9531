/* A minimal unit test harness: TEST(name) functions registered in main via
 * RUN(name); CHECK* record a failure and keep going; SKIP(fmt, ...) ends a
 * test whose world is missing (no mknod, no file it reads) as skipped, with
 * the reason; SKIP_ALL(fmt, ...) in main skips every later RUN. The summary
 * line is "unit <file>: N passed, N failed, N skipped". Exit status, as
 * systemd's tests: 1 on any failure, else 77 when every test was skipped
 * (the file tested nothing), else 0. */
#ifndef UDP_CHECK_H
#define UDP_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The exit status of a test file that could test nothing here. */
#define CHECK_EXIT_SKIP 77

static int check_failed_in_test, check_skipped_in_test;
static int check_tests_passed, check_tests_failed, check_tests_skipped;
static char check_skip_reason[256];
static char check_skip_all_reason[256];

__attribute__((format(printf, 3, 0))) static inline void check_vset(char *buf, size_t len,
								    const char *fmt, va_list ap)
{
	if (vsnprintf(buf, len, fmt, ap) < 0)
		snprintf(buf, len, "(reason unprintable)");
}

__attribute__((format(printf, 1, 2))) static inline void check_skip(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	check_vset(check_skip_reason, sizeof(check_skip_reason), fmt, ap);
	va_end(ap);
	check_skipped_in_test = 1;
}

__attribute__((format(printf, 1, 2))) static inline void check_skip_all(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	check_vset(check_skip_all_reason, sizeof(check_skip_all_reason), fmt, ap);
	va_end(ap);
}

/* Prints the summary line; the exit status for main. */
static inline int check_summary(const char *file)
{
	printf("unit %s: %d passed, %d failed, %d skipped\n", file, check_tests_passed,
	       check_tests_failed, check_tests_skipped);
	if (check_tests_failed)
		return 1;
	if (check_tests_passed == 0 && check_tests_skipped > 0)
		return CHECK_EXIT_SKIP;
	return 0;
}

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

/* Ends the current test as skipped: it returns from the function it is
 * written in, so use it in the TEST body itself. A CHECK that failed before
 * it still makes the test fail. */
#define SKIP(...)                                                                                  \
	do {                                                                                       \
		check_skip(__VA_ARGS__);                                                           \
		return;                                                                            \
	} while (0)

/* In main, before the RUNs: every later test is skipped for this reason. */
#define SKIP_ALL(...) check_skip_all(__VA_ARGS__)

#define TEST(name) static void name(void)

#define RUN(name)                                                                                  \
	do {                                                                                       \
		check_failed_in_test = 0;                                                          \
		check_skipped_in_test = 0;                                                         \
		if (check_skip_all_reason[0])                                                      \
			check_skip("%s", check_skip_all_reason);                                   \
		else                                                                               \
			name();                                                                    \
		if (check_failed_in_test) {                                                        \
			check_tests_failed++;                                                      \
			fprintf(stderr, "FAIL %s\n", #name);                                       \
		} else if (check_skipped_in_test) {                                                \
			check_tests_skipped++;                                                     \
			fprintf(stderr, "SKIP %s: %s\n", #name, check_skip_reason);                \
		} else {                                                                           \
			check_tests_passed++;                                                      \
		}                                                                                  \
	} while (0)

#define CHECK_SUMMARY() check_summary(__FILE__)

#endif
