/* errbuf: whole messages are written as they are; cut ones end in dots. */
#include "check.h"
#include "errbuf.h"

TEST(fits)
{
	char buf[16];

	errbuf_put(buf, sizeof(buf), "%s=%d", "count", 42);
	CHECK_STR(buf, "count=42");
	/* Exactly size - 1 characters is not a cut. */
	errbuf_put(buf, sizeof(buf), "%s", "123456789012345");
	CHECK_STR(buf, "123456789012345");
}

TEST(cut)
{
	char buf[16];

	errbuf_put(buf, sizeof(buf), "%s", "1234567890123456");
	CHECK_STR(buf, "123456789012...");
	errbuf_put(buf, 4, "%s", "abcdef");
	CHECK_STR(buf, "...");
	errbuf_put(buf, 3, "%s", "abcdef");
	CHECK_STR(buf, "..");
	errbuf_put(buf, 2, "%s", "abcdef");
	CHECK_STR(buf, ".");
	buf[0] = 'x';
	errbuf_put(buf, 1, "%s", "abcdef");
	CHECK_INT(buf[0], '\0');
}

TEST(no_buffer)
{
	char buf[4] = "abc";

	errbuf_put(NULL, 10, "x");
	errbuf_put(buf, 0, "x");
	CHECK_STR(buf, "abc");
}

int main(void)
{
	RUN(fits);
	RUN(cut);
	RUN(no_buffer);
	return CHECK_SUMMARY();
}
