/* Virtual groups: devices that need no file, for scheduler and quota tests
 * and clusters without the hardware. */
#ifndef UDP_VIRTUAL_H
#define UDP_VIRTUAL_H

#include <stddef.h>

#include "config.h"
#include "instance.h"

/* The virt->count instances of virtual group g: instance i has key
 * "v<i, 6 digits>", IDs <idPrefix>-<node>-<i> (with -<slot> appended when
 * the group's count is above 1) and no node -- or, with a
 * deviceFilePrefix, the device file <prefix><ID> (<prefix><i> when only
 * that one exists; permissions "rw"), which must then exist for the
 * device to be Healthy. 0 or -ENOMEM. */
int virtual_expand(const struct cfg_group *g, const char *node, struct dev_instance **out,
		   size_t *n_out);

#endif
