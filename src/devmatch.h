/* smarter-device-manager's discovery: the names of the files under a /dev
 * directory, relative to it ("ttyUSB0", "net/tun", "snd"), matched against
 * its devicematch expressions; and the instance one such file makes. */
#ifndef UDP_DEVMATCH_H
#define UDP_DEVMATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "instance.h"

/* How deep below root names are looked for (smarter-device-manager: 10). */
#define DEVMATCH_MAX_DEPTH 10

/* A scanner of one root. It remembers which expression each name matched
 * (or none), so a rescan -- after every event under /dev -- runs the
 * expressions only on names it has not seen, and the directories it
 * walked, to be watched. */
struct devmatch;

/* root is copied; NULL on ENOMEM. */
struct devmatch *devmatch_new(const char *root);
void devmatch_free(struct devmatch *dm); /* NULL is a no-op */

typedef void (*devmatch_cb)(void *data, const char *name, size_t match);

/* Walks root and calls fn(data, name, i) for every entry below it (files,
 * directories, symlinks; depth first, each directory in strcmp order)
 * whose relative name one of m[0..n) matches, i the first that does.
 * Skipped, with what is below them: /dev/shm and /dev/mqueue (root/shm,
 * root/mqueue), any directory a user other than root can write
 * (pathtrust.h), and entries whose name starts with '.'
 * (udev's temporary files); symlinked directories are not entered; at
 * most DEVMATCH_MAX_DEPTH levels. m must be the same expressions as in the
 * previous scan, or devmatch_forget called since. Returns 0 or a negative
 * errno (-ENOENT when root is missing, -ENOMEM). */
int devmatch_scan(struct devmatch *dm, const struct cfg_match *m, size_t n, devmatch_cb fn,
		  void *data);

/* Forgets what the expressions matched: call when they change. */
void devmatch_forget(struct devmatch *dm);

/* Appends to *dirs (a malloc'd array of malloc'd strings, as
 * paths_watch_dirs does) root and every directory the last scan entered,
 * each once. 0 or -ENOMEM. */
int devmatch_watch_dirs(const struct devmatch *dm, char ***dirs, size_t *n_dirs);

/* The instance of a derived group (g->dev_name): key "sdm:<name>", IDs
 * "0".."count-1" (smarter-device-manager's), nodes: root/<name>, or, when
 * that is a directory, every character or block device below it (sorted
 * by path, same rules as devmatch_scan); permissions "rw" as smarter-device-manager
 * gives. No instance when the file does not exist. 0 or -ENOMEM. */
int devmatch_expand(const char *root, const struct cfg_group *g, struct dev_instance **out,
		    size_t *n_out);

/* Whether an inotify event for entry name of directory dir (is_dir: the
 * entry is a directory, IN_ISDIR) can make devmatch_scan of root with
 * m[0..n) report a name it would not have reported before, or stop
 * reporting one: dir/name lies below root, no component of its relative
 * name starts with '.', and it is a directory (a walk finds what is below)
 * or one of the expressions matches its relative name. True for an empty
 * name (the directory itself). */
bool devmatch_event_new_name(const char *root, const struct cfg_match *m, size_t n, const char *dir,
			     const char *name, bool is_dir);

/* Whether such an event can change what devmatch_expand(root, g) gives:
 * dir/name is root/<g->dev_name>, a directory above it or an entry below
 * it. True for an empty name. */
bool devmatch_event_matters(const char *root, const struct cfg_group *g, const char *dir,
			    const char *name);

#endif
