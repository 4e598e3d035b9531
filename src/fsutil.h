/* File system helpers shared by the modules that keep files on disk (the
 * CDI specs, the NFD feature file, the plugin directory): `mkdir -p` and
 * the atomic replacement of a file. */
#ifndef UDP_FSUTIL_H
#define UDP_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Creates the directory path and every missing parent, each with mode
 * (less the umask); one that exists already is fine. 0, or negative errno:
 * -EINVAL (NULL or empty), -ENAMETOOLONG, -ENOTDIR (path or a parent is
 * not a directory), or what mkdir(2) says. */
int fsutil_mkdir_p(const char *path, mode_t mode);

/* Replaces the file path with len bytes of data in one rename(2): readers
 * see the old file or the new one, never a part. The new file is first
 * written to a hidden temporary file ".<name>.XXXXXX" beside it (same
 * directory, so the rename stays on one file system; hidden, so no reader
 * of the directory takes it for one of its files), given mode (exactly,
 * whatever the umask) and fsync'd. A missing directory is created with
 * its parents, mode 0755 less the umask. 0 or negative errno; on error the
 * temporary file is gone and path untouched. data may be NULL when len
 * is 0. */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* What is at path: 0 nothing, 1 a unix socket nobody answers on (stale),
 * 2 one that answers (live); negative errno (ENOTSOCK: something else). */
int fsutil_socket_state(const char *path);

#endif
