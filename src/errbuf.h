/* Error messages into a caller's fixed buffer, with truncation shown: a
 * message too long for the buffer is cut and ends in "...", so a reader
 * can tell a cut message from a whole one. A leaf module. */
#ifndef UDP_ERRBUF_H
#define UDP_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

/* Formats into buf (size bytes). buf may be NULL or size 0: nothing is
 * written. A formatting error leaves buf empty. */
void errbuf_vput(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
void errbuf_put(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
