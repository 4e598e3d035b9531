/* Whether root put a file where it is: the rule that keeps a planted link
 * or file from reaching a Pod.
 *
 * A path is trusted when every name on the way to its file was placed by
 * root and cannot be replaced by anyone else: each directory entered, each
 * symbolic link followed (and then its target, the same way), and the file
 * itself. A name is placed by root when
 *   - its directory can be written by root only (owned by uid 0, no write
 *     bit for others, group write only for gid 0), or
 *   - its directory is owned by uid 0 and sticky (/tmp, /dev/shm) and the
 *     entry is owned by uid 0 -- and, unless a directory, has one link, so
 *     that a hard link someone made to a root file does not count.
 * The starting point (/, or the working directory for a relative path) is
 * the operator's choice and is not judged. The path is resolved the way
 * the kernel resolves it at most 40 links deep, so the same string handed
 * to the runtime later names the same file, which nobody but root can
 * change. */
#ifndef UDP_PATHTRUST_H
#define UDP_PATHTRUST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* The last directory a check went through, so that checking many files of
 * one directory costs no stat each: in a directory only root can write,
 * an entry is root's, and readdir's type says whether it is a link (whose
 * target is then checked in full). Valid for one scan only: zero it
 * before (modes change between scans). */
struct pathtrust_memo {
	char *dir; /* resolved, trusted; malloc'd */
	struct stat st;
};

void pathtrust_memo_clear(struct pathtrust_memo *m);

/* 0 when path is trusted; -EPERM when not, with the reason in why (why_len
 * bytes, may be 0); -ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG or -ENOMEM when
 * it cannot be resolved. memo may be NULL. */
int pathtrust_check(const char *path, struct pathtrust_memo *memo, char *why, size_t why_len);

/* Whether an entry with status entry, in a directory with status dir, was
 * placed by root (the rule above, for one name). */
bool pathtrust_placed(const struct stat *dir, const struct stat *entry);

/* Whether users other than root can create, rename or remove names in a
 * directory with status dir. */
bool pathtrust_others_write(const struct stat *dir);

/* Drops from paths[0..*n) (malloc'd strings, order kept) every path that
 * is not trusted (-EPERM), freeing them, and logs each refused path with
 * its reason once per process. types, when not NULL, holds each path's
 * type as readdir gave it (DT_*; DT_UNKNOWN when not known) and is
 * compacted alike. A path that cannot be resolved but whose every name on
 * the way is root's (a dangling link) is kept: only root can complete it,
 * and its health says what is wrong. 0, or -ENOMEM, -EMFILE, -ENFILE
 * (paths from the failure on are kept unchecked: scan again). */
int pathtrust_filter(char **paths, unsigned char *types, size_t *n);

#endif
