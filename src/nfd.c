#include "nfd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

#define HEADER "# Written by usb-device-plugin; rewritten whenever devices change.\n"

int nfd_write(const char *path, const char *const *lines, size_t n)
{
	size_t len = strlen(HEADER);

	if (!path || (n && !lines))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!lines[i])
			return -EINVAL;
		len += strlen(lines[i]) + 1;
	}
	char *text = malloc(len), *p = text;
	if (!text)
		return -ENOMEM;
	p = mempcpy(p, HEADER, strlen(HEADER));
	for (size_t i = 0; i < n; i++) {
		p = mempcpy(p, lines[i], strlen(lines[i]));
		*p++ = '\n';
	}
	/* The temporary file ".<name>.XXXXXX" is hidden: NFD skips it. */
	int r = fsutil_write_atomic(path, text, len, 0644);
	free(text);
	return r;
}
