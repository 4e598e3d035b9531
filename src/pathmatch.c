/* Go's path.Match, from its documented grammar:
 *
 *	pattern: { term }
 *	term:    '*' | '?' | '[' [ '^' ] { character-range } ']' | c | '\\' c
 *	character-range: c | '\\' c | lo '-' hi   (c != '\\', '-', ']')
 *
 * Hand-written because fnmatch(3) is a different dialect, and which files
 * match must not change when a config moves from generic-device-plugin:
 * fnmatch negates a class with '!' (Go: '^', and '!' is a literal),
 * "[:digit:]" is a class there, a malformed pattern matches literally
 * there (Go refuses it), '?' takes one byte rather than one UTF-8
 * character, and without FNM_PATHNAME '*' crosses '/'. The matching
 * follows Go's: the pattern is cut into chunks at each run of '*', and
 * each chunk is taken at the first place it matches (only the last one is
 * tried further along), so the results agree even where '/' in a name
 * makes that choice matter. */
#include "pathmatch.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RUNE_ERROR 0xfffdu

/* One UTF-8 character as Go's utf8.DecodeRune reads it: an invalid,
 * overlong or truncated sequence is U+FFFD of width 1. len > 0. */
static uint32_t utf8_decode(const char *s, size_t len, size_t *width)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t r, min;
	size_t n;

	*width = 1;
	if (p[0] < 0x80)
		return p[0];
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2, r = p[0] & 0x1fu, min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3, r = p[0] & 0x0fu, min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4, r = p[0] & 0x07u, min = 0x10000;
	} else {
		return RUNE_ERROR;
	}
	if (len < n)
		return RUNE_ERROR;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return RUNE_ERROR;
		r = r << 6 | (p[i] & 0x3fu);
	}
	if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff))
		return RUNE_ERROR;
	*width = n;
	return r;
}

/* One end of a character range at p; NULL when malformed. */
static const char *class_char(const char *p, const char *end, uint32_t *r)
{
	size_t w;

	if (p >= end || *p == '-' || *p == ']')
		return NULL;
	if (*p == '\\' && ++p >= end)
		return NULL;
	*r = utf8_decode(p, (size_t)(end - p), &w);
	if (*r == RUNE_ERROR && w == 1)
		return NULL;
	return p + w;
}

/* The class starting just after '[' at p: whether it holds c, and where
 * it ends (after ']'); NULL when malformed. */
static const char *class_match(const char *p, const char *end, uint32_t c, bool *in)
{
	bool negated = p < end && *p == '^', found = false;
	size_t n_ranges = 0;

	p += negated;
	while (p >= end || *p != ']' || n_ranges == 0) {
		uint32_t lo, hi;

		if (!(p = class_char(p, end, &lo)))
			return NULL;
		hi = lo;
		if (p < end && *p == '-' && !(p = class_char(p + 1, end, &hi)))
			return NULL;
		found = found || (lo <= c && c <= hi);
		n_ranges++;
	}
	*in = found != negated;
	return p + 1;
}

bool pathmatch_valid(const char *pattern)
{
	const char *p = pattern, *end;
	bool in;

	if (!pattern)
		return false;
	end = p + strlen(p);
	while (p < end) {
		if (*p == '[') {
			if (!(p = class_match(p + 1, end, 0, &in)))
				return false;
		} else if (*p == '\\') {
			if (p + 1 >= end)
				return false;
			p += 2;
		} else {
			p++;
		}
	}
	return true;
}

/* Go's scanChunk: the end of the chunk at p, i.e. the next '*' that is
 * neither escaped nor inside a class. */
static const char *chunk_end(const char *p, const char *end)
{
	bool in_class = false;

	for (; p < end; p++) {
		if (*p == '\\' && p + 1 < end)
			p++;
		else if (*p == '[')
			in_class = true;
		else if (*p == ']')
			in_class = false;
		else if (*p == '*' && !in_class)
			break;
	}
	return p;
}

/* Matches the (valid, star-free) chunk [p, pend) against the start of
 * [s, send): where the match ends in s, or NULL. */
static const char *match_chunk(const char *p, const char *pend, const char *s, const char *send)
{
	while (p < pend) {
		size_t w = 1;
		uint32_t c;
		bool in = true;

		if (s == send)
			return NULL;
		if (*p == '?') {
			in = *s != '/';
			utf8_decode(s, (size_t)(send - s), &w);
			p++;
		} else if (*p == '[') {
			c = utf8_decode(s, (size_t)(send - s), &w);
			p = class_match(p + 1, pend, c, &in);
		} else {
			p += *p == '\\';
			in = *p++ == *s;
		}
		if (!in)
			return NULL;
		s += w;
	}
	return s;
}

int pathmatch(const char *pattern, const char *name)
{
	const char *p = pattern, *pend, *s = name, *send;

	if (!pathmatch_valid(pattern) || !name)
		return -EINVAL;
	pend = p + strlen(p);
	send = s + strlen(s);
	while (p < pend) {
		const char *chunk, *t;
		bool star = false;

		for (; p < pend && *p == '*'; p++)
			star = true;
		chunk = p;
		p = chunk_end(p, pend);
		if (star && chunk == p) /* a trailing '*' takes the rest but '/' */
			return memchr(s, '/', (size_t)(send - s)) == NULL;
		/* The last chunk must end the name; an earlier one is taken at
		 * the first place it matches. */
		t = match_chunk(chunk, p, s, send);
		if (t && (t == send || p < pend)) {
			s = t;
			continue;
		}
		if (!star)
			return 0;
		for (t = NULL; s < send && *s != '/' && !t; s++) {
			t = match_chunk(chunk, p, s + 1, send);
			if (t && p == pend && t != send)
				t = NULL;
		}
		if (!t)
			return 0;
		s = t;
	}
	return s == send;
}
