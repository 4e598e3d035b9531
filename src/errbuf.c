#include "errbuf.h"

#include <stdio.h>
#include <string.h>

void errbuf_vput(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n;

	if (!buf || size == 0)
		return;
	n = vsnprintf(buf, size, fmt, ap);
	if (n < 0) {
		buf[0] = '\0';
	} else if ((size_t)n >= size) {
		/* "..." at the end, or as many dots as fit in a tiny buffer. */
		size_t dots = size - 1 < 3 ? size - 1 : 3;

		memset(buf + size - 1 - dots, '.', dots);
	}
}

void errbuf_put(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vput(buf, size, fmt, ap);
	va_end(ap);
}
