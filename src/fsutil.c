#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* One component: made, or there already as a directory. */
static int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (mkdir(path, mode) == 0)
		return 0;
	int e = errno;
	/* Whatever mkdir said (EEXIST, but also EACCES or EROFS for a
	 * directory that exists where we may not write), a directory that
	 * is there is what was asked for. */
	if (stat(path, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	return -e;
}

int fsutil_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];

	if (!path || !*path)
		return -EINVAL;
	int n = snprintf(buf, sizeof(buf), "%s", path);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	/* Each prefix ending before a '/' (or at the end), skipping the
	 * empty ones of a leading, doubled or trailing '/'. */
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		if (p[-1] != '/') {
			*p = '\0';
			int r = mkdir_one(buf, mode);
			*p = c;
			if (r < 0)
				return r;
		}
		if (c == '\0')
			return 0;
	}
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* mkostemp on tmpl (a "...XXXXXX" template of tlen characters, restored
 * before a second try); when the directory (dir_len characters of path)
 * is missing, creates it and tries once more. An fd or negative errno. */
static int make_temp(char *tmpl, size_t tlen, const char *path, size_t dir_len)
{
	char saved[PATH_MAX], dir[PATH_MAX];

	memcpy(saved, tmpl, tlen + 1);
	int fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno != ENOENT || dir_len == 0)
		return -errno;
	memcpy(dir, path, dir_len);
	dir[dir_len] = '\0';
	int r = fsutil_mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	memcpy(tmpl, saved, tlen + 1);
	fd = mkostemp(tmpl, O_CLOEXEC);
	return fd >= 0 ? fd : -errno;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];

	if (!path || !*path || (!data && len))
		return -EINVAL;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base)
		return -EISDIR;
	size_t dir_len = (size_t)(base - path); /* with its '/' */
	int n = snprintf(tmp, sizeof(tmp), "%.*s.%s.XXXXXX", (int)dir_len, path, base);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = make_temp(tmp, (size_t)n, path, dir_len);
	if (fd < 0)
		return fd;
	int r = write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp); /* (void): the error that matters is r */
	return r;
}

int fsutil_socket_state(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 2
		: errno == ECONNREFUSED				     ? 1
								     : -errno;
	close(fd);
	return r;
}
