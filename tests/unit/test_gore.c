/* gore: Go's regexp semantics through RE2 -- compile errors with RE2's
 * reason, unanchored matching, what Go refuses, and linear time on an
 * expression that backtracking matchers take exponential time on. */
#include "check.h"
#include "gore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Compiles re (must succeed) and matches text. */
static bool match(const char *re, const char *text)
{
	struct gore *g = NULL;
	char err[128] = "";
	int r = gore_compile(re, &g, err, sizeof(err));
	bool m;

	CHECK_INT(r, 0);
	if (r != 0) {
		fprintf(stderr, "  %s: %s\n", re, err);
		return false;
	}
	m = gore_match(g, text);
	gore_free(g);
	return m;
}

TEST(unanchored)
{
	CHECK(match("USB", "ttyUSB0"));
	CHECK(!match("^USB", "ttyUSB0"));
	CHECK(match("^tty", "ttyUSB0"));
	CHECK(!match("tty$", "ttyUSB0"));
	CHECK(match("^ttyUSB0$", "ttyUSB0"));
	CHECK(match("", "anything"));
	CHECK(match("a|b", "xbx"));
}

TEST(go_syntax)
{
	CHECK(match("^tty\\d+$", "tty12"));
	CHECK(!match("^tty\\d+$", "ttyS"));
	CHECK(match("(?i)^snd$", "SnD"));
	CHECK(match("\\s", "a b"));
	CHECK(match("^\\w+$", "ttyUSB_0"));
	CHECK(match("\\bUSB", "x/USB"));
	CHECK(!match("\\bUSB", "xUSB"));
	CHECK(match("\\pL", "\xc3\xa9"));
	CHECK(!match("^\\pL{100}$", "abc")); /* compiles within the memory bound */
	CHECK(match("^.$", "\xc3\xa9"));     /* one character of two bytes */
	CHECK(match("^[[:digit:]]+$", "42"));
	CHECK(match("\\Qa.b\\E", "a.b"));
	CHECK(!match("\\Qa.b\\E", "axb"));
	CHECK(match("(?P<name>x)y", "xy"));
	CHECK(!match("^a.b$", "a\nb")); /* '.' takes no newline without (?s) */
	CHECK(match("(?s)^a.b$", "a\nb"));
	/* Leftmost-first alternation does not change whether it matches. */
	CHECK(match("^(a|ab)(c|bcd)$", "abcd"));
}

TEST(errors)
{
	static const struct {
		const char *re, *why;
	} bad[] = {
	    {"tty[0-", "missing ]"},
	    {"(ab", "missing )"},
	    {"ab)", "unexpected )"},
	    {"a**", "bad repetition operator"},
	    {"x{1001}", "invalid repetition size"},
	    {"(x{100}){100}", "invalid repetition size"},
	    {"\\8", "invalid escape sequence"},
	    {"(?<n>x)", "invalid"},
	    {"\\C", "invalid escape sequence: \\C"}, /* Go refuses it; RE2 would not */
	    {"a\xff", "invalid UTF-8"},
	    {"\\pL{1000}", "pattern too large"}, /* the memory bound, not Go's rule */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gore *g = (struct gore *)&g; /* must be left alone */
		char err[128] = "";
		CHECK_INT(gore_compile(bad[i].re, &g, err, sizeof(err)), -EINVAL);
		CHECK(g == (struct gore *)&g);
		CHECK_CONTAINS(err, bad[i].why);
	}
	/* \C inside \Q...\E is two literal characters. */
	CHECK(match("\\Qa\\C\\E", "a\\C"));
	/* A reason cut short is marked; no buffer at all is fine. */
	struct gore *g = NULL;
	char tiny[8];
	CHECK_INT(gore_compile("tty[0-", &g, tiny, sizeof(tiny)), -EINVAL);
	CHECK_STR(tiny, "miss...");
	CHECK_INT(gore_compile("tty[0-", &g, NULL, 0), -EINVAL);
	gore_free(NULL);
}

/* (a*)*b on a long string of a's without b: exponential for a
 * backtracking matcher, linear here. 4 MB takes milliseconds; the bound
 * is loose for loaded machines and sanitizers. */
TEST(linear_time)
{
	size_t len = 4u << 20;
	char *s = malloc(len + 1);
	struct gore *g = NULL;
	struct timespec t0, t1;

	CHECK(s != NULL);
	if (!s)
		return;
	memset(s, 'a', len);
	s[len] = '\0';
	CHECK_INT(gore_compile("(a*)*b", &g, NULL, 0), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(g && !gore_match(g, s));
	CHECK(g && !gore_match(g, s + len - 30)); /* 30 a's: 2^30 paths to backtrack */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("  (a*)*b on 4 MiB of a's: %.1f ms\n", ms);
	CHECK(ms < 5000);
	s[len - 1] = 'b';
	CHECK(g && gore_match(g, s));
	gore_free(g);
	free(s);
}

int main(void)
{
	RUN(unanchored);
	RUN(go_syntax);
	RUN(errors);
	RUN(linear_time);
	return CHECK_SUMMARY();
}
