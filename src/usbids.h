/* Vendor, product and class names from the usb.ids database, for log lines
 * and --list. Names are looked up, never required: a missing database only
 * means no names.
 *
 * The file stays on disk; an open database holds a small sorted index of
 * line offsets and reads a vendor's block with pread when asked (see
 * usbids.c for why). A database is not thread-safe: one thread at a time. */
#ifndef UDP_USBIDS_H
#define UDP_USBIDS_H

#include <stddef.h>
#include <stdint.h>

struct usbids; /* an open database */

/* Opens and indexes the first readable database of: path, when non-NULL (then
 * only it); else $USB_IDS (when set and non-empty), /usr/share/misc/usb.ids,
 * /usr/share/hwdata/usb.ids, /var/lib/usbutils/usb.ids, and ../usbids/usb.ids
 * relative to the directory of the running binary (/proc/self/exe).
 * A file without a single vendor or class line is not a database (ENODATA).
 * Returns NULL with errno set when none can be read: ENOENT when none exists,
 * else the first other error met. The caller owns the result. */
struct usbids *usbids_open(const char *path);

/* Closes the file and frees the database. NULL: no-op. */
void usbids_close(struct usbids *db);

/* The absolute path of the open file (borrowed, valid until usbids_close);
 * NULL for a NULL db. */
const char *usbids_path(const struct usbids *db);

/* Writes the vendor name into vname and the product name into pname, each ""
 * when unknown; a buffer may be NULL when its length is 0. Names longer than a
 * buffer are cut at a UTF-8 character boundary; control characters become '?'.
 * Returns 0 when at least the vendor is known, -ENOENT when it is not (also for
 * a NULL db), -EINVAL for a NULL buffer with a non-zero length, or another
 * negative errno when the file cannot be read. A file replaced since it was
 * opened (package upgrade) is opened and indexed again. */
int usbids_lookup(struct usbids *db, uint16_t vendor, uint16_t product, char *vname, size_t vlen,
		  char *pname, size_t plen);

/* The name of a USB class code (the "C xx  Name" lines) into name, "" when
 * unknown. Returns 0 when known, else as usbids_lookup. */
int usbids_class(struct usbids *db, uint8_t cls, char *name, size_t len);

/* What an open database holds, for tests and --list's summary. */
struct usbids_stats {
	size_t vendors;	    /* distinct vendor ids indexed */
	size_t classes;	    /* distinct class codes indexed */
	size_t index_bytes; /* heap bytes of the index */
	size_t total_bytes; /* heap bytes of the whole database object */
};

/* Fills *out (all zero for a NULL db). */
void usbids_stats(const struct usbids *db, struct usbids_stats *out);

#endif
