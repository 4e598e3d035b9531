/* smarter-device-manager's discovery: the names of the files under a /dev
 * directory, relative to it ("ttyUSB0", "net/tun", "snd"), matched against
 * its devicematch expressions; and the instance one such file makes.
 * Pure functions over the file system; no state. */
#ifndef UDP_DEVMATCH_H
#define UDP_DEVMATCH_H

#include <stddef.h>

#include "config.h"
#include "instance.h"

/* How deep below root names are looked for (smarter-device-manager: 10). */
#define DEVMATCH_MAX_DEPTH 10

typedef void (*devmatch_cb)(void *data, const char *name, size_t match);

/* Calls fn(data, name, i) for every entry below root (files, directories,
 * symlinks; in strcmp order, depth first) whose relative name some
 * expression matches, i the first of m[0..n) that does. Entries whose name
 * or directory starts with '.' are skipped (udev's temporary files);
 * symlinked directories are not entered. Returns 0 or a negative errno
 * (-ENOENT when root is missing). */
int devmatch_scan(const char *root, const struct cfg_match *m, size_t n, devmatch_cb fn,
		  void *data);

/* Appends to *dirs (as paths_watch_dirs does) root and every directory
 * below it that devmatch_scan enters. 0 or -ENOMEM. */
int devmatch_watch_dirs(const char *root, char ***dirs, size_t *n_dirs);

/* The instance of a derived group (g->dev_name): key "sdm:<name>", IDs
 * "0".."count-1" (smarter-device-manager's), one node: root/<name>, or,
 * when that is a directory, every character or block device below it
 * (sorted); permissions "rw" as smarter-device-manager gives. No instance
 * when the file does not exist. 0 or -ENOMEM. */
int devmatch_expand(const char *root, const struct cfg_group *g, struct dev_instance **out,
		    size_t *n_out);

#endif
