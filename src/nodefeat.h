/* The node-feature-discovery feature file (--nfd-features-file):
 * "usbdp.NAME=N" per resource with N > 0 healthy devices and
 * "usbdp.usb-VVVV-PPPP=N" per USB model plugged in, rewritten (through
 * nfd_write, atomically) only when the lines change. */
#ifndef UDP_NODEFEAT_H
#define UDP_NODEFEAT_H

#include <stddef.h>
#include <stdint.h>

#include "resource.h"

struct features;

/* path (copied) is the feature file. NULL on ENOMEM. */
struct features *features_new(const char *path);
void features_free(struct features *f); /* NULL is a no-op */

/* The lines for res[0..n) and the USB models usb_ids[0..n_ids) (vendor <<
 * 16 | product, one per device plugged in); written when they changed.
 * Failures are logged. */
void features_update(struct features *f, struct resource *const *res, size_t n,
		     const uint32_t *usb_ids, size_t n_ids);

#endif
