/* Container Device Interface (CDI) specs: with --cdi the plugin keeps one
 * spec file per resource in a CDI directory and Allocate answers with the
 * fully qualified CDI device names ("vendor/class=name") instead of
 * DeviceSpecs and Mounts; the container runtime resolves them.
 *
 * Names follow both the spec's text (SPEC.md "Kind", "CDI Devices") and
 * what the reference parser (pkg/parser) accepts, whichever is stricter:
 * - vendor: the plugin's domain, taken as is; it must start with a letter,
 *   end with a letter or digit, hold letters, digits, '_', '-', '.' between,
 *   and have at most 253 characters (the spec wants a DNS subdomain).
 * - class: the resource name with every character outside [A-Za-z0-9_-]
 *   made '_' ('.' needs cdiVersion 0.6.0), then a 'd' put in front unless
 *   it starts with a letter and after it unless it ends with a letter or
 *   digit; at most 63 characters.
 * - device name: the instance's first ID with every character outside
 *   [A-Za-z0-9_.-] made '_' (the parser also takes ':', the spec's text
 *   does not), then a 'd' in front unless it starts with a letter or digit
 *   and after it unless it ends with one.
 * Two resources whose names differ only where this makes '_' share a kind
 * and a spec file: the caller must refuse that.
 *
 * The file is "<dir>/<vendor>-<class>.json", the name CDI's own
 * GenerateSpecName gives a vendor+class spec. */
#ifndef UDP_CDI_H
#define UDP_CDI_H

#include <stdbool.h>
#include <stddef.h>

#include "instance.h"
#include "table.h"

/* 0.5.0 is the first version with "hostPath" on device nodes (and device
 * names starting with a digit); nothing newer is used. */
#define CDI_VERSION "0.5.0"
/* Room for any kind cdi_kind accepts: vendor, '/', class, NUL. */
#define CDI_KIND_MAX (253 + 1 + 63 + 1)

/* "vendor/class" for domain and resource name (the part after the
 * domain) into buf; 0, -EINVAL (NULL, empty, or a domain CDI refuses) or
 * -ENAMETOOLONG (domain over 253 or class over 63 characters, or buf too
 * small). */
int cdi_kind(const char *domain, const char *name, char *buf, size_t len);

/* The fully qualified CDI device name "kind=devname" of inst (its ids[0]),
 * as Allocate returns it, into buf; 0, -EINVAL (no ID) or -ENAMETOOLONG.
 * It is the name cdi_spec_json gives the instance's device, but the spec
 * may leave that device out (see there). */
int cdi_device_name(const char *kind, const struct dev_instance *inst, char *buf, size_t len);

/* The spec of snapshot s (borrowed) as JSON text, newline-terminated and
 * malloc'd (the caller frees it), into *out: keys cdiVersion, kind,
 * devices; one device per instance in snapshot order, with containerEdits
 * of "deviceNodes" (path, hostPath, permissions) for Device nodes and
 * "mounts" (hostPath, containerPath, options "rbind" and "ro" or "rw") for
 * Mount nodes. Left out are instances that are unhealthy, have no ID, no
 * node, a node with an empty path or a Device node without permissions
 * (CDI would read that as "rwm"), and every instance whose device name
 * another usable instance also gets (logged): a runtime refuses a spec
 * with a name twice, and Allocate must never name another instance's
 * device. Returns 0; -ENODEV when no device is left (a spec with no
 * devices is invalid: remove the file instead, see cdi_remove); -EINVAL;
 * -ENOMEM. *out is written only on success. */
int cdi_spec_json(const char *kind, const struct snapshot *s, char **out);

/* The spec file's path "<dir>/<vendor>-<class>.json" for kind into buf;
 * 0, -EINVAL (kind without '/') or -ENAMETOOLONG. */
int cdi_spec_path(const char *dir, const char *kind, char *buf, size_t len);

/* Replaces the spec file of kind in dir with json in one rename(2), so
 * readers see the old file or the new one, never a part: a temporary file
 * ".<vendor>-<class>.json.XXXXXX" in dir (hidden, and without the ".json"
 * or ".yaml" suffix a CDI registry reads), mode 0644, fsync'd. Creates dir
 * and its parents (mode 0755 less the umask) when missing. 0 or negative errno. */
int cdi_write(const char *dir, const char *kind, const char *json);

/* Removes the spec file of kind from dir; 0 also when there was none, else
 * negative errno. */
int cdi_remove(const char *dir, const char *kind);

/* At start: removes from dir the spec files of vendor (the domain) that
 * keep(data, file name) does not want -- resources no longer configured --
 * and the hidden temporary files a killed writer left. The number
 * removed, or negative errno. */
int cdi_clean(const char *dir, const char *vendor, bool (*keep)(void *data, const char *file),
	      void *data);

#endif
