/* The device schema of the configuration: devices (generic-device-plugin's
 * schema and ours) and smarter-device-manager's entries, parsed from a
 * cfg_node tree into config.h's structures. Used by config.c, which owns
 * the sources (flags, file, environment). */
#ifndef UDP_CFGSCHEMA_H
#define UDP_CFGSCHEMA_H

#include <stddef.h>

#include "cfgtree.h"
#include "cfgval.h"
#include "config.h"

/* A list of devices being built, with the line each name came from. */
struct cfgschema_devlist {
	struct cfg_device *v;
	size_t n, cap;
	unsigned *lines;
};

/* Parses the device object node into l, refusing a name already in l.
 * index is its position in its list (file) or among the --device flags;
 * the file's list is named key (NULL for a flag). 0 or a negative errno
 * with the message in s's buffer. */
int cfgschema_devlist_add(struct cfgschema_devlist *l, const struct cfg_src *s,
			  const struct cfg_node *node, const char *key, size_t index);
/* Frees what l holds; l is then empty. */
void cfgschema_devlist_free(struct cfgschema_devlist *l);

/* smarter-device-manager's format, a list of {devicematch, nummaxdevices},
 * into cfg->matches and cfg->n_matches (freed by config_free, also on
 * error). */
int cfgschema_parse_sdm(const struct cfg_src *s, const struct cfg_node *root, struct config *cfg);
/* Frees n entries of m and m itself. */
void cfgschema_matches_free(struct cfg_match *m, size_t n);

#endif
