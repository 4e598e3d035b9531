/* SHA-1 (FIPS 180-4), for generic-device-plugin compatible device IDs.
 * Not for security: SHA-1 is broken for collision resistance; here it
 * only has to reproduce the IDs another program computed. */
#ifndef UDP_SHA1_H
#define UDP_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SHA1_DIGEST_LEN 20
#define SHA1_HEX_LEN	41 /* 40 hex digits and the NUL */

struct sha1_ctx {
	uint32_t h[5];
	uint64_t total;	   /* bytes hashed so far */
	uint8_t block[64]; /* partial block */
	size_t used;	   /* bytes in block */
};

void sha1_init(struct sha1_ctx *ctx);
/* data may be NULL when len is 0. */
void sha1_update(struct sha1_ctx *ctx, const void *data, size_t len);
/* Writes the digest; ctx must be initialised again before another use. */
void sha1_final(struct sha1_ctx *ctx, uint8_t out[SHA1_DIGEST_LEN]);
/* Lower-case hex of a digest, NUL-terminated. */
void sha1_hex(const uint8_t in[SHA1_DIGEST_LEN], char out[SHA1_HEX_LEN]);

#endif
