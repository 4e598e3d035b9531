#include "nfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int nfd_write(const char *path, const char *const *lines, size_t n)
{
	char tmp[4200];
	const char *slash = strrchr(path, '/');
	size_t dir_len = slash ? (size_t)(slash - path) : 0;
	/* The temporary file sits beside the target: rename(2) is atomic only
	 * within one file system. A leading '.' keeps NFD from reading it. */
	int len = snprintf(tmp, sizeof(tmp), "%.*s%s.%s.XXXXXX", (int)dir_len, path,
			   slash ? "/" : "", slash ? slash + 1 : path);
	if (len < 0 || (size_t)len >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return -e;
	}
	fprintf(f, "# Written by usb-device-plugin; rewritten whenever devices change.\n");
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", lines[i]);
	int e = 0;
	if (fflush(f) != 0 || fchmod(fileno(f), 0644) < 0 || fsync(fileno(f)) < 0)
		e = -errno;
	if (fclose(f) != 0 && !e)
		e = -errno;
	if (!e && rename(tmp, path) < 0)
		e = -errno;
	if (e)
		unlink(tmp);
	return e;
}
