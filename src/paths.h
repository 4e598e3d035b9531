/* Path groups: expanding a group's globs into instances with
 * generic-device-plugin's semantics, and the directories to watch so that
 * every change of the expansion is noticed. Pure functions over the file
 * system; no state. */
#ifndef UDP_PATHS_H
#define UDP_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "instance.h"

/* Expands group g (index group_index in its device) now.
 * Each path is a glob with Go's path.Match syntax, expanded as Go's fs.Glob
 * does it (generic-device-plugin's semantics), except that a wildcard never
 * matches a leading '.'; matches sorted with strcmp. With m_k
 * the matches of path k and L_k its limit, paths that match nothing and are
 * optional are left out; the group yields
 *   n = min(max_k m_k, min_k m_k * L_k)
 * instances (0 when a required path matches nothing). Instance i takes, for
 * each path k, match number (i mod m_k) -- i.e. the sorted matches repeated
 * L_k times, as generic-device-plugin pairs them.
 * Each node: host_path = the match; container_path = mountPath, or the
 * match when mountPath is unset, with the match's base name appended when
 * mountPath ends in '/'; mount/read_only/permissions from the path entry.
 * IDs: for count slot j, the lower-case hex SHA-1 of the decimal string of
 * j followed by every node's host path concatenated in order -- exactly
 * generic-device-plugin's IDs, so the kubelet's checkpoint survives a switch.
 * key: "g<group_index>:" followed by the host paths joined with '\n'.
 * On success *out (may be NULL when *n_out == 0) is owned by the caller
 * (free with dev_instances_free). Returns 0 or a negative errno. */
int paths_expand(const struct cfg_group *g, size_t group_index, struct dev_instance **out,
		 size_t *n_out);

/* False when a '/'-separated component of pattern is malformed ("x[",
 * "[]", a trailing '\\'; see pathmatch.h): exactly the patterns paths_expand
 * refuses with -EINVAL. */
bool paths_pattern_valid(const char *pattern);

/* Appends to *dirs (a malloc'd array of malloc'd strings, *n_dirs long) the
 * existing directories in which a created, deleted or renamed entry can
 * change paths_expand's result for g: for each path, the directories that
 * match the glob's directory part (every component before the last), or,
 * when none of them exists yet, the deepest existing ancestor of the
 * glob's literal prefix (so that creating /dev/snd is seen for
 * /dev/snd/\*). Also the intermediate directories of globbed components
 * (for /dev/bus/usb/\*\/\*: /dev/bus/usb and each /dev/bus/usb/NNN).
 * Duplicates are not added twice. Returns 0 or -ENOMEM. */
int paths_watch_dirs(const struct cfg_group *g, char ***dirs, size_t *n_dirs);

/* Appends, the same way, every directory that a Device path of g matches
 * (generic-device-plugin's /dev/snd): such a device is healthy while a
 * node is below it, so the directory itself must be watched. 0, -EINVAL
 * or -ENOMEM. */
int paths_device_dirs(const struct cfg_group *g, char ***dirs, size_t *n_dirs);

/* The invariant that lets an event be judged by its name alone: what
 * paths_expand gives for g is a function of the entries of the
 * directories paths_watch_dirs gives (and of the nodes below a matched
 * Device directory) whose names g's components can match; an entry no
 * component can match is never read beyond its name, so its coming, going
 * or changing leaves the expansion as it was.
 *
 * Whether an inotify event for entry name of directory dir (one that
 * paths_watch_dirs or paths_device_dirs gave, as it spelled it) can change
 * what paths_expand, paths_watch_dirs or paths_device_dirs give for g:
 * true when dir/name is, component by component, a possible match of some
 * path's leading components (an intermediate directory of a glob, the
 * literal prefix, a match), or lies below a match (a Device directory's
 * nodes). Component matching is paths_expand's: pathmatch, a wildcard
 * never matching a leading '.'. Errs towards true: an empty name (the
 * directory itself), a malformed pattern, no memory. False means a rescan
 * of g cannot see anything new because of this event. */
bool paths_event_matters(const struct cfg_group *g, const char *dir, const char *name);

#endif
