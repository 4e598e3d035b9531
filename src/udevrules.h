/* udev rules for the USB entries of a config: tag the matching devices
 * and their class nodes for the plugin and give the nodes a group and
 * mode that a non-root container (supplementalGroups: [plugdev's GID])
 * can open. */
#ifndef UDP_UDEVRULES_H
#define UDP_UDEVRULES_H

#include <stdio.h>

#include "config.h"

#define UDEV_RULES_GROUP "plugdev"
#define UDEV_RULES_MODE	 "0660"
#define UDEV_RULES_TAG	 "usb-device-plugin"

/* Writes the rules to out. 0, or -EIO when out failed. */
int udev_rules_write(FILE *out, const struct config *cfg);

#endif
