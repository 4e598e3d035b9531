/* The rules that name and match USB devices, apart from how devices are
 * found (usb.c, libudev): whether a device matches a config entry, and
 * which kubelet device ID each device gets. Pure functions over plain
 * data: no I/O, no libudev, testable alone.
 *
 * IDs. A device's ID is chosen once, when the device is first seen, and
 * kept while it stays plugged in, whatever else comes or goes; the caller
 * keeps the IDs it gave (usbmatch_assign never changes one). Tried in
 * order, the first that no present device holds wins:
 *   1. VVVV-PPPP-SERIAL   the serial, sanitized (see usbmatch_sanitize);
 *   2. for a twin (another present device with the same vendor, product
 *      and raw serial): VVVV-PPPP-port-PORT, then the hashed form;
 *      for a serial that only sanitizes or truncates like another one:
 *      VVVV-PPPP-SERIAL-xHHHHHHHHHHHHHHHH (the serial, shortened, and an
 *      FNV-1a 64 of the raw serial), then the port form;
 *      without a serial: the port form;
 *   3. the port form with -2, -3, ... appended: some n is free (at most
 *      as many IDs are held as devices are present), so an ID is always
 *      found and never shared.
 * Devices seen together (the enumeration at start) are given IDs in port
 * order (strverscmp: 1-1.2 before 1-1.10), those whose serial is its own
 * ID unchanged first, so a restart is deterministic: the twin at the
 * lowest port keeps the serial form, and "AB_12_x" keeps it before
 * "AB 12/x" wherever each is plugged.
 *
 * Every ID is at most USBMATCH_ID_MAX - 1 bytes of [A-Za-z0-9._-],
 * starts and ends with a letter or digit: a valid kubelet device ID, env
 * var value and CDI device name as it is. */
#ifndef UDP_USBMATCH_H
#define UDP_USBMATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Room for a device's ID, NUL included. */
#define USBMATCH_ID_MAX 128

/* What matching and naming look at. The strings are the caller's. */
struct usbmatch_dev {
	int32_t vendor, product; /* -1: unreadable */
	const char *serial;	 /* NULL: none (an empty one is none too) */
	const char *port;	 /* the kernel's port path, "1-1.4": unique while plugged */
	int32_t dev_class;	 /* -1: unreadable */
	const uint8_t *if_class; /* classes of its interfaces */
	size_t n_if;
	char id[USBMATCH_ID_MAX]; /* "" until usbmatch_assign gives one */
};

/* Whether d matches entry u: vendor, product, class (the device's or any
 * interface's) equal where u sets them; serial and port matched as Go's
 * path.Match globs (pathmatch.h), the dialect of paths. */
bool usbmatch_entry(const struct cfg_usb *u, const struct usbmatch_dev *d);

/* Whether an entry of a group before group gi of the resource called name
 * in cfg (resources in config order, then their groups) matches d: then d
 * is that group's, not this one's (one device, one resource). Groups are
 * found by resource name and index, so cfg may be another copy of the
 * configuration than the one the caller's groups live in. False when the
 * group is not in cfg, or cfg or name is NULL. */
bool usbmatch_claimed_before(const struct config *cfg, const char *name, size_t gi,
			     const struct usbmatch_dev *d);

/* Copies s into buf with every byte outside [A-Za-z0-9._-] made '_',
 * cut to at most len - 1 bytes, then without the trailing '.', '-' and
 * '_' (an ID must end with a letter or digit). Returns the length, and
 * sets *lossy when the result is not s itself. */
size_t usbmatch_sanitize(const char *s, char *buf, size_t len, bool *lossy);

/* FNV-1a, 64 bits. Not a cryptographic hash, and it need not be: it only
 * tells apart serials a device chose, which nobody forges to collide
 * (and a collision costs nothing: the ID is checked for uniqueness and
 * the port form is next). */
uint64_t usbmatch_fnv1a64(const char *s);

/* Gives every device of devs[0..n) whose id is "" an ID, in port order,
 * keeping those that have one (see the top of this file). devs are the
 * devices present now. Returns how many IDs it gave. */
size_t usbmatch_assign(struct usbmatch_dev *const *devs, size_t n);

/* Whether no two of devs[0..n) hold the same non-empty id. */
bool usbmatch_unique(struct usbmatch_dev *const *devs, size_t n);

#endif
