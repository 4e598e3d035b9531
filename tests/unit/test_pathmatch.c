/* pathmatch against Go's documented path.Match grammar: '*', '?', classes,
 * ranges, "[^...]", escapes, '/' handling, UTF-8, malformed patterns. The
 * expected results are what Go's path.Match returns for the same pair. */
#include "check.h"
#include "pathmatch.h"

#include <errno.h>

TEST(literals)
{
	CHECK_INT(pathmatch("abc", "abc"), 1);
	CHECK_INT(pathmatch("abc", "abd"), 0);
	CHECK_INT(pathmatch("abc", "ab"), 0);
	CHECK_INT(pathmatch("ab", "abc"), 0);
	CHECK_INT(pathmatch("", ""), 1);
	CHECK_INT(pathmatch("", "a"), 0);
	CHECK_INT(pathmatch("/dev/ttyUSB0", "/dev/ttyUSB0"), 1);
	/* ']', '-', '^' and '!' are plain characters outside a class. */
	CHECK_INT(pathmatch("a]b-c^d!", "a]b-c^d!"), 1);
}

TEST(star)
{
	CHECK_INT(pathmatch("*", ""), 1);
	CHECK_INT(pathmatch("*", "anything"), 1);
	CHECK_INT(pathmatch("a*", "a"), 1);
	CHECK_INT(pathmatch("a*", "abc"), 1);
	CHECK_INT(pathmatch("a*", "ba"), 0);
	CHECK_INT(pathmatch("*c", "abc"), 1);
	CHECK_INT(pathmatch("a*c", "ac"), 1);
	CHECK_INT(pathmatch("a*c", "abcbc"), 1);
	CHECK_INT(pathmatch("a*c", "abcb"), 0);
	CHECK_INT(pathmatch("a**c", "abc"), 1);
	CHECK_INT(pathmatch("a*b*c*d", "axbxcxd"), 1);
	CHECK_INT(pathmatch("a*b*c*d", "axbxcx"), 0);
	CHECK_INT(pathmatch("ttyUSB*", "ttyUSB12"), 1);
	CHECK_INT(pathmatch("*x", "xxx"), 1);
}

TEST(question)
{
	CHECK_INT(pathmatch("?", "a"), 1);
	CHECK_INT(pathmatch("?", ""), 0);
	CHECK_INT(pathmatch("?", "ab"), 0);
	CHECK_INT(pathmatch("a?c", "abc"), 1);
	CHECK_INT(pathmatch("a?c", "ac"), 0);
	CHECK_INT(pathmatch("pcmC?D?c", "pcmC0D1c"), 1);
}

TEST(slash)
{
	/* Neither '*' nor '?' matches '/'; a literal or a class can. */
	CHECK_INT(pathmatch("*", "a/b"), 0);
	CHECK_INT(pathmatch("a*", "ab/c"), 0);
	CHECK_INT(pathmatch("a*/b", "abc/b"), 1);
	CHECK_INT(pathmatch("a*/b", "a/c/b"), 0);
	CHECK_INT(pathmatch("a*b*c*d*e*/f", "axbxcxdxe/f"), 1);
	CHECK_INT(pathmatch("a*b*c*d*e*/f", "axbxcxdxexxx/f"), 1);
	CHECK_INT(pathmatch("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"), 0);
	CHECK_INT(pathmatch("a*b?c*x", "abxbbxdbxebxczzx"), 1);
	CHECK_INT(pathmatch("a?b", "a/b"), 0);
	CHECK_INT(pathmatch("a[/]b", "a/b"), 1);
	CHECK_INT(pathmatch("a[^x]b", "a/b"), 1);
	CHECK_INT(pathmatch("a\\/b", "a/b"), 1);
	CHECK_INT(pathmatch("/dev/*/*", "/dev/snd/pcm"), 1);
	CHECK_INT(pathmatch("/dev/*", "/dev/snd/pcm"), 0);
	/* As Go: a chunk after '*' is taken where it first matches, and a
	 * later '*' cannot cross '/' to make up for it. */
	CHECK_INT(pathmatch("*[/x]*c", "x/ac"), 0);
}

TEST(classes)
{
	CHECK_INT(pathmatch("[abc]", "b"), 1);
	CHECK_INT(pathmatch("[abc]", "d"), 0);
	CHECK_INT(pathmatch("[a-c]", "c"), 1);
	CHECK_INT(pathmatch("[a-c]", "d"), 0);
	CHECK_INT(pathmatch("[0-9][0-9]", "42"), 1);
	CHECK_INT(pathmatch("[a-cx-z]", "y"), 1);
	CHECK_INT(pathmatch("[a-cx-z]", "m"), 0);
	CHECK_INT(pathmatch("[^a-c]", "d"), 1);
	CHECK_INT(pathmatch("[^a-c]", "b"), 0);
	CHECK_INT(pathmatch("[^a]", ""), 0);
	/* '!' does not negate (fnmatch's dialect); it is a member. */
	CHECK_INT(pathmatch("[!a]", "b"), 0);
	CHECK_INT(pathmatch("[!a]", "!"), 1);
	/* No POSIX named classes: "[:digit:]" is the set ':', 'd', 'i', ... */
	CHECK_INT(pathmatch("[[:digit:]]", "5"), 0);
	CHECK_INT(pathmatch("[[:digit:]]", "d]"), 1);
	/* '*' inside a class is a member, not a wildcard. */
	CHECK_INT(pathmatch("a[*]b", "a*b"), 1);
	CHECK_INT(pathmatch("a[*]b", "axb"), 0);
	CHECK_INT(pathmatch("x*[*]", "xyz*"), 1);
}

TEST(escapes)
{
	CHECK_INT(pathmatch("a\\*b", "a*b"), 1);
	CHECK_INT(pathmatch("a\\*b", "axb"), 0);
	CHECK_INT(pathmatch("a\\?b", "a?b"), 1);
	CHECK_INT(pathmatch("a\\?b", "axb"), 0);
	CHECK_INT(pathmatch("\\[x]", "[x]"), 1);
	CHECK_INT(pathmatch("\\a", "a"), 1);
	CHECK_INT(pathmatch("[\\]]", "]"), 1);
	CHECK_INT(pathmatch("[\\-]", "-"), 1);
	CHECK_INT(pathmatch("[x\\-]", "z"), 0);
	CHECK_INT(pathmatch("[\\^a]", "^"), 1);
	CHECK_INT(pathmatch("[a\\-z]", "-"), 1);
	CHECK_INT(pathmatch("[a\\-z]", "m"), 0);
	CHECK_INT(pathmatch("*\\*", "ab*"), 1);
}

TEST(utf8)
{
	/* '?' and a class take one character, not one byte. */
	CHECK_INT(pathmatch("?", "\xc3\xa9"), 1); /* é */
	CHECK_INT(pathmatch("??", "\xc3\xa9"), 0);
	CHECK_INT(pathmatch("a?b", "a\xe2\x82\xac"
				   "b"),
		  1); /* € */
	CHECK_INT(pathmatch("[\xc3\xa0-\xc3\xbf]", "\xc3\xa9"), 1);
	CHECK_INT(pathmatch("[^\xc3\xa9]", "\xc3\xa9"), 0);
	CHECK_INT(pathmatch("[^a]", "\xf0\x9f\x98\x80"), 1); /* one 4-byte character */
	CHECK_INT(pathmatch("*\xc3\xa9", "caf\xc3\xa9"), 1);
	/* An invalid byte in a name is one character (U+FFFD). */
	CHECK_INT(pathmatch("a?b", "a\xff"
				   "b"),
		  1);
	CHECK_INT(pathmatch("?", "\xc3"), 1);
	CHECK_INT(pathmatch("[^a]", "\xff"), 1);
	/* In a pattern's class, an invalid byte is malformed. */
	CHECK(!pathmatch_valid("[\xff]"));
	CHECK_INT(pathmatch("[\xff]", "x"), -EINVAL);
	/* Outside a class it is a literal byte. */
	CHECK_INT(pathmatch("a\xff", "a\xff"), 1);
}

TEST(malformed)
{
	static const char *const bad[] = {
	    "[",  "x[",	 "[]",	"[^]",	 "[a-]", "[-a]", "[a",	 "[a-b", "[^",
	    "\\", "a\\", "[\\", "[x\\]", "*[",	 "a*b[", "[]a]", "[z-",	 "[a-]x",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(!pathmatch_valid(bad[i]));
		/* Refused whatever the name, even when an earlier part fails. */
		CHECK_INT(pathmatch(bad[i], ""), -EINVAL);
		CHECK_INT(pathmatch(bad[i], "zzz"), -EINVAL);
	}
	CHECK(!pathmatch_valid(NULL));
	CHECK_INT(pathmatch(NULL, "a"), -EINVAL);
	CHECK_INT(pathmatch("a", NULL), -EINVAL);
	/* Valid: ']' and '-' alone, a class holding ']' or '-' escaped. */
	CHECK(pathmatch_valid("]"));
	CHECK(pathmatch_valid("-"));
	CHECK(pathmatch_valid("[\\]-\\-]"));
	CHECK(pathmatch_valid("/dev/snd/pcmC[0-9]D?c"));
	CHECK(pathmatch_valid(""));
}

int main(void)
{
	RUN(literals);
	RUN(star);
	RUN(question);
	RUN(slash);
	RUN(classes);
	RUN(escapes);
	RUN(utf8);
	RUN(malformed);
	return CHECK_SUMMARY();
}
