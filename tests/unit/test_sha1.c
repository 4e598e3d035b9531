/* SHA-1 against the FIPS 180 examples and lengths around the padding
 * boundaries (expected digests computed independently with Python's
 * hashlib), fed whole and in awkward chunks. */
#include "check.h"
#include "sha1.h"

#include <stdlib.h>

static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

/* Hashes len bytes of data, fed in pieces of the given sizes, cycled. */
static void digest_chunked(const void *data, size_t len, const size_t *chunks, size_t n_chunks,
			   char hex[SHA1_HEX_LEN])
{
	const unsigned char *p = data;
	struct sha1_ctx ctx;
	uint8_t md[SHA1_DIGEST_LEN];
	size_t off = 0;

	sha1_init(&ctx);
	for (size_t i = 0; off < len; i++) {
		size_t take = chunks[i % n_chunks];

		if (take > len - off)
			take = len - off;
		sha1_update(&ctx, p + off, take);
		off += take;
	}
	sha1_final(&ctx, md);
	sha1_hex(md, hex);
}

static void digest(const void *data, size_t len, char hex[SHA1_HEX_LEN])
{
	size_t whole = len ? len : 1;

	digest_chunked(data, len, &whole, 1, hex);
}

TEST(test_empty)
{
	char hex[SHA1_HEX_LEN];
	struct sha1_ctx ctx;
	uint8_t md[SHA1_DIGEST_LEN];

	digest("", 0, hex);
	CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");

	/* A NULL buffer of length 0 is allowed and changes nothing. */
	sha1_init(&ctx);
	sha1_update(&ctx, NULL, 0);
	sha1_final(&ctx, md);
	sha1_hex(md, hex);
	CHECK_STR(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

TEST(test_abc)
{
	char hex[SHA1_HEX_LEN];

	digest("abc", 3, hex);
	CHECK_STR(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

TEST(test_448_bits)
{
	char hex[SHA1_HEX_LEN];

	digest(msg448, sizeof(msg448) - 1, hex);
	CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

TEST(test_896_bits)
{
	char hex[SHA1_HEX_LEN];

	digest(msg896, sizeof(msg896) - 1, hex);
	CHECK_STR(hex, "a49b2446a02c645bf419f995b67091253a04a259");
}

TEST(test_million_a)
{
	const size_t len = 1000000;
	char *buf = malloc(len);
	char hex[SHA1_HEX_LEN];
	static const size_t odd[] = {1, 63, 64, 65, 1000, 7, 4096, 3};
	struct sha1_ctx ctx;
	uint8_t md[SHA1_DIGEST_LEN];

	CHECK(buf != NULL);
	if (!buf)
		return;
	memset(buf, 'a', len);
	digest(buf, len, hex);
	CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	digest_chunked(buf, len, odd, sizeof(odd) / sizeof(odd[0]), hex);
	CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
	free(buf);

	/* One byte at a time, as FIPS describes the test. */
	sha1_init(&ctx);
	for (size_t i = 0; i < len; i++)
		sha1_update(&ctx, "a", 1);
	sha1_final(&ctx, md);
	sha1_hex(md, hex);
	CHECK_STR(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
}

/* Every split of the 448-bit message into two pieces, and several chunk
 * patterns, give the same digest. */
TEST(test_odd_chunkings)
{
	const size_t len = sizeof(msg448) - 1;
	static const size_t patterns[][3] = {
	    {1, 1, 1}, {2, 3, 5}, {7, 11, 13}, {55, 1, 1}, {56, 1, 1}};
	char hex[SHA1_HEX_LEN];

	for (size_t cut = 0; cut <= len; cut++) {
		struct sha1_ctx ctx;
		uint8_t md[SHA1_DIGEST_LEN];

		sha1_init(&ctx);
		sha1_update(&ctx, msg448, cut);
		sha1_update(&ctx, msg448 + cut, len - cut);
		sha1_final(&ctx, md);
		sha1_hex(md, hex);
		CHECK_STR(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
	}
	for (size_t i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
		digest_chunked(msg896, sizeof(msg896) - 1, patterns[i], 3, hex);
		CHECK_STR(hex, "a49b2446a02c645bf419f995b67091253a04a259");
	}
}

/* Lengths where the padding does or does not spill into an extra block. */
TEST(test_padding_boundaries)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
	    {55, "ddf57317ef34bfee3b6df83d359098930eb278bc"},
	    {56, "a0d492bb0fc889d0eca3bc137066ab6f4f74f369"},
	    {63, "c55856749bef509bdfe6bfebfc7bf4e793e82132"},
	    {64, "bede92be29c3874e1b54ddc77988d606fc857a8e"},
	    {65, "b05a80522b053d6dc7e0a517d0e70212c7dad11f"},
	    {119, "504e27376a6e0f0dba8295b85cb25dc4dfa17d23"},
	    {120, "82134b02fb3f702491be9bed581eeab59334acb2"},
	    {127, "34d5e582029e9b9b85b2febe31da3db7cdabaaea"},
	    {128, "a09133e6730ffe899efb70204cb5646cd5dc24ee"},
	};
	unsigned char buf[128];
	static const size_t threes[] = {3};
	char hex[SHA1_HEX_LEN];

	/* The bytes Python hashed: (i * 7 + 3) & 255. */
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (unsigned char)((i * 7 + 3) & 255);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		digest(buf, cases[i].len, hex);
		CHECK_STR(hex, cases[i].hex);
		digest_chunked(buf, cases[i].len, threes, 1, hex);
		CHECK_STR(hex, cases[i].hex);
	}
}

/* The IDs generic-device-plugin derives: SHA-1 of "<slot><host path>...". */
TEST(test_device_id_inputs)
{
	char hex[SHA1_HEX_LEN];

	digest("0/dev/null", 10, hex);
	CHECK_STR(hex, "a05d4ff4e9b480f66fc87cca95ab63e584e86317");
	digest("12/dev/null", 11, hex);
	CHECK_STR(hex, "f2f5016e0a8136b79f8a618160a5fb682a6e33c7");
}

TEST(test_hex)
{
	uint8_t md[SHA1_DIGEST_LEN];
	char hex[SHA1_HEX_LEN];

	for (unsigned i = 0; i < SHA1_DIGEST_LEN; i++)
		md[i] = (uint8_t)(i * 13 + 0x0f);
	memset(hex, 'X', sizeof(hex));
	sha1_hex(md, hex);
	CHECK_STR(hex, "0f1c293643505d6a7784919eabb8c5d2dfecf906");
	CHECK_INT(strlen(hex), 40);
}

int main(void)
{
	RUN(test_empty);
	RUN(test_abc);
	RUN(test_448_bits);
	RUN(test_896_bits);
	RUN(test_million_a);
	RUN(test_odd_chunkings);
	RUN(test_padding_boundaries);
	RUN(test_device_id_inputs);
	RUN(test_hex);
	return CHECK_SUMMARY();
}
