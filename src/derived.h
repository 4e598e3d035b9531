/* smarter-device-manager's model: every file below /dev that a
 * devicematch entry matches becomes a resource of its own (net/tun is
 * smarter-devices/net_tun), offered nummaxdevices times. This module finds
 * those files and says which resources to make or keep; the daemon makes
 * them. */
#ifndef UDP_DERIVED_H
#define UDP_DERIVED_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "resource.h"

struct derived;

struct derived *derived_new(void);     /* NULL on ENOMEM */
void derived_free(struct derived *dv); /* NULL is a no-op */

/* Makes a resource for dev (a derived device for the file, which is
 * relative to /dev) and returns it (borrowed), or NULL with errno set. */
typedef struct resource *(*derived_add_cb)(void *data, const struct cfg_device *dev,
					   const char *file);

/* The live resource of that name, or NULL. */
typedef struct resource *(*derived_find_cb)(void *data, const char *name);

/* For every file cfg's devicematch entries match now and that has no
 * resource (find) yet: add(data, dev, file), while fewer than
 * LIMIT_RESOURCES (sizelimits.h) resources exist in all, configured and
 * derived (n_resources now): a runaway expression must not make a server
 * per file of /dev. Skipped files are logged once each. */
void derived_sync(struct derived *dv, const struct config *cfg, size_t n_resources,
		  derived_find_cb find, derived_add_cb add, void *data);

/* After a reload to cfg: the device the derived resource r should now have
 * (into *out, to free with config_device_clear) -> 1; 0 when r keeps its
 * device as it is; -ENOENT when no entry matches its file any more or a
 * configured device took its name (remove it); -ENOMEM. */
int derived_reload(struct derived *dv, const struct config *cfg, const struct resource *r,
		   struct cfg_device *out);

/* Appends the directories to watch (see devmatch_watch_dirs). */
int derived_watch_dirs(const struct derived *dv, char ***dirs, size_t *n_dirs);

/* Whether an inotify event (see devmatch_event_new_name) can make
 * derived_sync with cfg find a file it has not seen: false lets a rescan
 * skip the walk of /dev. */
bool derived_event_matters(const struct config *cfg, const char *dir, const char *name,
			   bool is_dir);

#endif
