/* node-feature-discovery's local feature file ("features.d"): one
 * "name=value" line per feature; NFD turns each into the node label
 * feature.node.kubernetes.io/<name>=<value>. Written atomically. */
#ifndef UDP_NFD_H
#define UDP_NFD_H

#include <stddef.h>

/* Replaces path with a comment line and the given lines (each
 * "name=value") in one rename: readers see the old file or the new one,
 * never a part (see fsutil_write_atomic: a hidden temporary file, which
 * NFD skips; mode 0644; the directory created when missing). 0 or
 * negative errno. */
int nfd_write(const char *path, const char *const *lines, size_t n);

#endif
