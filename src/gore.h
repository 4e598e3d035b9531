/* Go's regexp through RE2: smarter-device-manager's devicematch
 * expressions, compiled and matched with the semantics of Go's
 * regexp.Compile and Regexp.MatchString (RE2 syntax, linear time). */
#ifndef UDP_GORE_H
#define UDP_GORE_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gore; /* a compiled expression */

/* Compiles pattern (NUL-terminated) into *out. Returns 0, -EINVAL when the
 * pattern is invalid, uses \C (which Go refuses) or needs more than 2 MiB
 * compiled, with RE2's reason written into err (errlen bytes, may be NULL;
 * cut short with "..."), or -ENOMEM. *out is set only on success. */
int gore_compile(const char *pattern, struct gore **out, char *err, size_t errlen);

/* Whether re matches anywhere in text (unanchored, as Go's MatchString;
 * anchor with ^...$ in the pattern). Linear in the length of text. False
 * too in the unlikely case that memory runs out while matching. */
bool gore_match(const struct gore *re, const char *text);

void gore_free(struct gore *re); /* NULL is a no-op */

#ifdef __cplusplus
}
#endif

#endif
