/* Go's path.Match: the glob dialect of generic-device-plugin's paths and of
 * the USB serial and port globs. A leaf module: no state, no allocation. */
#ifndef UDP_PATHMATCH_H
#define UDP_PATHMATCH_H

#include <stdbool.h>

/* Go's path.Match semantics:
 *	'*'     any sequence of characters other than '/'
 *	'?'     one character (UTF-8) other than '/'
 *	[...]   a class: ranges lo-hi, "[^...]" negates, '\\' escapes
 *	'\\' c  c itself
 * Both strings are NUL-terminated. */

/* False when pattern is malformed (an unclosed or empty class, a range
 * without an end, a trailing '\\') or NULL. */
bool pathmatch_valid(const char *pattern);

/* 1 when pattern matches all of name, 0 when not, -EINVAL when the pattern
 * is malformed (whatever name is) or an argument is NULL. */
int pathmatch(const char *pattern, const char *name);

#endif
