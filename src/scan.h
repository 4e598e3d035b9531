/* Expanding a resource's groups into its device table: path globs,
 * smarter-device-manager files, virtual devices and USB devices, each by
 * its own module, decorated with the group's templates; and the
 * directories whose changes can change that expansion. */
#ifndef UDP_SCAN_H
#define UDP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "resource.h"
#include "usb.h"

/* Hands what every group of r of one kind provides now to r's table: the
 * USB groups (usb true; w may then not be NULL), or the file system's
 * (paths, devicematch, virtual). cfg: the config in force (a USB device
 * goes to the first of its groups in cfg's order); node_name names virtual
 * devices. A group that cannot be expanded is logged and keeps what it
 * had: 0, or the negative errno of the last failure (scan again later). */
int scan_resource(struct resource *r, bool usb, const struct usb_watch *w, const struct config *cfg,
		  const char *node_name, int64_t now_us);

/* An inotify event in a watched directory: entry name of dir ("" for dir
 * itself), inotify's mask. */
struct scan_event {
	char *dir;
	char *name;
	uint32_t mask;
};

/* Whether file-system group gi of r can expand differently because of
 * event ev: paths_event_matters, devmatch_event_matters, or, for a
 * virtual group, the glob "<device_file_prefix>*". USB groups: false (a
 * path event never changes them). */
bool scan_group_matters(const struct resource *r, size_t gi, const struct scan_event *ev);

/* scan_resource(r, false, ...) for only the groups that one of ev[0..n)
 * matters to (scan_group_matters): what no event can have changed is
 * neither read nor handed to the table again. */
int scan_resource_events(struct resource *r, const struct config *cfg, const char *node_name,
			 int64_t now_us, const struct scan_event *ev, size_t n);

/* Appends to *dirs (malloc'd strings, *n_dirs long) the directories whose
 * entries r's path and virtual groups look at. 0 or -ENOMEM. */
int scan_watch_dirs(const struct resource *r, char ***dirs, size_t *n_dirs);

/* True when r has a USB group. */
bool scan_wants_usb(const struct resource *r);

#endif
