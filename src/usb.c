#include "usb.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <libudev.h>
#include <libusb.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirwatch.h"
#include "log.h"
#include "metrics.h"
#include "usbids.h"
#include "usbmatch.h"

/* In inotify mode (no uevents reach us), how long a device may stay
 * unsettled before we rescan again, and how often we reconcile anyway. */
#define SETTLE_RETRY_US 100000
#define SETTLE_RETRIES	50
#define RECONCILE_US	(60 * 1000000LL)
/* How long the monitor may stay silent about a change /dev/bus/usb shows
 * before we conclude that uevents do not reach us. */
#define MONITOR_GRACE_US 1000000
/* uevents handled per loop iteration (a device's plug is about 8). */
#define MONITOR_BATCH 64

struct usb_node {
	char *path;
	char *subsystem;
	/* Its class device was removed while the usb_device stays: kept, so
	 * that the missing node makes the device Unhealthy at the first event
	 * of an unplug (children go first), not at the last. */
	bool gone;
	dev_t rdev; /* what sysfs says the node is */
};

struct usb_dev {
	char *syspath; /* identity while plugged */
	char *port;    /* sysname: "1-1.4" */
	char *bus_node;
	dev_t bus_rdev;
	int busnum, devnum;
	/* vendor, product, classes and the ID; its serial and port point to
	 * the two below */
	struct usbmatch_dev m;
	char *serial;
	uint8_t if_class[32];
	struct usb_node *nodes; /* children's device nodes, sorted by path */
	size_t n_nodes;
	bool bound;
	bool logged; /* "settled" was logged */
};

struct usb_watch {
	struct loop *loop;
	struct usbids *ids;
	struct metrics *metrics;
	usb_changed_cb cb;
	void *cb_data;
	struct udev *udev;
	struct udev_monitor *mon;
	int mon_fd;
	enum usb_mode mode;
	libusb_context *usb;
	libusb_hotplug_callback_handle hotplug;
	bool hotplug_ok;
	struct dirwatch *dw; /* /dev/bus/usb, the safety net (borrowed; may be NULL) */
	bool changed;
	/* when the event that made the first untold change arrived, or 0 */
	int64_t changed_since_us;
	char **verify; /* syspaths whose children are to be walked (on_verify) */
	size_t n_verify;
	unsigned settle_retries;
	int64_t last_monitor_event_us;
	bool removed;	       /* a device or a node went since the last notify */
	int64_t hold_since_us; /* first removal of the burst being held, or 0 */
	char *hold_dev;	       /* the device whose removal last extended it */
	bool scanning;	       /* IDs are given when the scan ends */
	struct usb_dev **devs;
	size_t n_devs;
};

const char *usb_mode_name(enum usb_mode mode)
{
	switch (mode) {
	case USB_MODE_UDEV:
		return "udev";
	case USB_MODE_KERNEL:
		return "kernel";
	case USB_MODE_INOTIFY:
		return "inotify";
	}
	return "?";
}

/* ---- records ---- */

static void dev_free(struct usb_dev *d)
{
	if (!d)
		return;
	free(d->syspath);
	free(d->port);
	free(d->bus_node);
	free(d->serial);
	for (size_t i = 0; i < d->n_nodes; i++) {
		free(d->nodes[i].path);
		free(d->nodes[i].subsystem);
	}
	free(d->nodes);
	free(d);
}

static struct usb_dev *find_dev(const struct usb_watch *w, const char *syspath, size_t *idx)
{
	for (size_t i = 0; i < w->n_devs; i++)
		if (strcmp(w->devs[i]->syspath, syspath) == 0) {
			if (idx)
				*idx = i;
			return w->devs[i];
		}
	return NULL;
}

/* The record whose syspath is a proper prefix directory of syspath: the
 * usb_device a child belongs to (works on remove, when sysfs is gone). */
static struct usb_dev *owner_of(const struct usb_watch *w, const char *syspath)
{
	struct usb_dev *best = NULL;
	size_t best_len = 0;
	for (size_t i = 0; i < w->n_devs; i++) {
		size_t n = strlen(w->devs[i]->syspath);
		if (n > best_len && strncmp(syspath, w->devs[i]->syspath, n) == 0 &&
		    syspath[n] == '/') {
			best = w->devs[i];
			best_len = n;
		}
	}
	return best;
}

/* A hex value of 1-4 digits (idVendor, bDeviceClass ...); -1 when
 * missing or malformed. */
static int32_t parse_hex(const char *v, const char *name, const char *port)
{
	if (!v)
		return -1;
	char *end;
	errno = 0;
	unsigned long x = strtoul(v, &end, 16);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno || end == v || *end || x > 0xffff || !isxdigit((unsigned char)v[0])) {
		log_warn("usb device port=%s: %s \"%.16s\" is not hexadecimal: ignored", port, name,
			 v);
		return -1;
	}
	return (int32_t)x;
}

static int32_t hex_attr(struct udev_device *ud, const char *name, const char *port)
{
	return parse_hex(udev_device_get_sysattr_value(ud, name), name, port);
}

static int dec_attr(struct udev_device *ud, const char *name)
{
	const char *v = udev_device_get_sysattr_value(ud, name);
	if (!v)
		return -1;
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno || end == v || x < 0 || x > 0xffff)
		return -1;
	return (int)x;
}

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct usb_node *)a)->path, ((const struct usb_node *)b)->path);
}

static bool has_node(const struct usb_dev *d, const char *path)
{
	for (size_t i = 0; i < d->n_nodes; i++)
		if (strcmp(d->nodes[i].path, path) == 0 && !d->nodes[i].gone)
			return true;
	return false;
}

static int add_node(struct usb_dev *d, const char *path, const char *subsystem, dev_t rdev)
{
	for (size_t i = 0; i < d->n_nodes; i++)
		if (strcmp(d->nodes[i].path, path) == 0) {
			d->nodes[i].gone = false;
			return 0;
		}
	struct usb_node *n = realloc(d->nodes, (d->n_nodes + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	d->nodes = n;
	n[d->n_nodes].path = strdup(path);
	n[d->n_nodes].subsystem = strdup(subsystem ? subsystem : "misc");
	n[d->n_nodes].gone = false;
	n[d->n_nodes].rdev = rdev;
	if (!n[d->n_nodes].path || !n[d->n_nodes].subsystem) {
		free(n[d->n_nodes].path);
		free(n[d->n_nodes].subsystem);
		return -ENOMEM;
	}
	d->n_nodes++;
	qsort(d->nodes, d->n_nodes, sizeof(*d->nodes), cmp_node);
	return 0;
}

/* Marks the node gone; true when it was known and present. */
static bool lose_node(struct usb_dev *d, const char *path)
{
	for (size_t i = 0; i < d->n_nodes; i++)
		if (strcmp(d->nodes[i].path, path) == 0 && !d->nodes[i].gone) {
			d->nodes[i].gone = true;
			return true;
		}
	return false;
}

/* Forgets the lost nodes of a subsystem: a driver came back with new
 * ones. */
static void drop_lost(struct usb_dev *d, const char *subsystem)
{
	size_t j = 0;
	for (size_t i = 0; i < d->n_nodes; i++) {
		if (d->nodes[i].gone && strcmp(d->nodes[i].subsystem, subsystem) == 0) {
			free(d->nodes[i].path);
			free(d->nodes[i].subsystem);
			continue;
		}
		d->nodes[j++] = d->nodes[i];
	}
	d->n_nodes = j;
}

/* Notes an interface class of d (each once). cls < 0: none. */
static void add_if_class(struct usb_dev *d, int32_t cls)
{
	bool seen = false;
	for (size_t i = 0; i < d->m.n_if; i++)
		seen = seen || d->if_class[i] == cls;
	if (cls >= 0 && !seen && d->m.n_if < sizeof(d->if_class))
		d->if_class[d->m.n_if++] = (uint8_t)cls;
}

/* Whether the nearest usb_device above child c is d (and not a device
 * plugged into a hub that d is). */
static bool belongs_to(struct udev_device *c, const struct usb_dev *d)
{
	/* the parent is owned by c: no unref */
	struct udev_device *p =
	    udev_device_get_parent_with_subsystem_devtype(c, "usb", "usb_device");
	return p && strcmp(udev_device_get_syspath(p), d->syspath) == 0;
}

/* Walks the children of ud: device nodes and interface classes. */
static void read_children(struct usb_watch *w, struct udev_device *ud, struct usb_dev *d)
{
	struct udev_enumerate *e = udev_enumerate_new(w->udev);
	if (!e)
		return;
	udev_enumerate_add_match_parent(e, ud);
	udev_enumerate_scan_devices(e);
	struct udev_list_entry *it;
	udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e))
	{
		const char *sp = udev_list_entry_get_name(it);
		if (strcmp(sp, d->syspath) == 0)
			continue;
		struct udev_device *c = udev_device_new_from_syspath(w->udev, sp);
		if (!c)
			continue;
		const char *type = udev_device_get_devtype(c);
		const char *sub = udev_device_get_subsystem(c);
		if (type && strcmp(type, "usb_interface") == 0 && belongs_to(c, d)) {
			add_if_class(d, hex_attr(c, "bInterfaceClass", d->port));
		} else if (type && strcmp(type, "usb_device") == 0) {
			/* a device behind a hub: its own record, not our child */
		} else if (udev_device_get_devnode(c) && belongs_to(c, d)) {
			add_node(d, udev_device_get_devnode(c), sub, udev_device_get_devnum(c));
		}
		udev_device_unref(c);
	}
	udev_enumerate_unref(e);
}

static void describe(struct usb_watch *w, const struct usb_dev *d, char *buf, size_t len)
{
	char vname[128] = "", pname[128] = "";
	if (d->m.vendor >= 0 && d->m.product >= 0)
		usbids_lookup(w->ids, (uint16_t)d->m.vendor, (uint16_t)d->m.product, vname,
			      sizeof(vname), pname, sizeof(pname));
	/* a log line: a cut one is still worth printing */
	(void)snprintf(buf, len,
		       "port=%s vendor=%04x product=%04x serial=\"%s\" id=%s name=\"%s%s%s\"",
		       d->port, (unsigned)(d->m.vendor & 0xffff), (unsigned)(d->m.product & 0xffff),
		       d->serial ? d->serial : "", d->m.id[0] ? d->m.id : "-", vname,
		       *pname ? " " : "", pname);
}

static bool same_record(const struct usb_dev *a, const struct usb_dev *b)
{
	if (a->bound != b->bound || a->m.vendor != b->m.vendor || a->m.product != b->m.product ||
	    a->busnum != b->busnum || a->devnum != b->devnum || a->n_nodes != b->n_nodes ||
	    a->m.n_if != b->m.n_if || a->m.dev_class != b->m.dev_class)
		return false;
	if ((a->serial == NULL) != (b->serial == NULL) ||
	    (a->serial && strcmp(a->serial, b->serial)))
		return false;
	if ((a->bus_node == NULL) != (b->bus_node == NULL) ||
	    (a->bus_node && strcmp(a->bus_node, b->bus_node)))
		return false;
	for (size_t i = 0; i < a->n_nodes; i++)
		if (strcmp(a->nodes[i].path, b->nodes[i].path) ||
		    a->nodes[i].gone != b->nodes[i].gone)
			return false;
	/* the same classes, whichever order they were found in (events or a
	 * walk of sysfs) */
	for (size_t i = 0; i < a->m.n_if; i++)
		if (!memchr(b->if_class, a->if_class[i], b->m.n_if))
			return false;
	return true;
}

/* Gives d the children old has (nodes, interface classes). */
static int copy_children(struct usb_dev *d, const struct usb_dev *old)
{
	memcpy(d->if_class, old->if_class, old->m.n_if);
	d->m.n_if = old->m.n_if;
	if (!old->n_nodes)
		return 0;
	d->nodes = calloc(old->n_nodes, sizeof(*d->nodes));
	if (!d->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < old->n_nodes; i++) {
		d->nodes[i] = old->nodes[i];
		d->nodes[i].path = strdup(old->nodes[i].path);
		d->nodes[i].subsystem = strdup(old->nodes[i].subsystem);
		d->n_nodes++;
		if (!d->nodes[i].path || !d->nodes[i].subsystem)
			return -ENOMEM; /* dev_free frees the part copied */
	}
	return 0;
}

/* Reads everything about usb_device ud into a fresh record. bound_hint:
 * the event said so ("bind"), whatever the driver link says yet.
 * children: walk its children too (a scan finds them for every device at
 * once instead: see scan). */
static struct usb_dev *read_dev(struct usb_watch *w, struct udev_device *ud, bool bound_hint,
				bool children)
{
	struct usb_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->syspath = strdup(udev_device_get_syspath(ud));
	d->port = strdup(udev_device_get_sysname(ud));
	if (!d->syspath || !d->port) {
		dev_free(d);
		return NULL;
	}
	d->m.vendor = hex_attr(ud, "idVendor", d->port);
	d->m.product = hex_attr(ud, "idProduct", d->port);
	d->m.dev_class = hex_attr(ud, "bDeviceClass", d->port);
	d->busnum = dec_attr(ud, "busnum");
	d->devnum = dec_attr(ud, "devnum");
	/* The udev database's serial when there is one (it is what udev's
	 * by-id links use), else sysfs's. */
	const char *serial = udev_device_get_property_value(ud, "ID_SERIAL_SHORT");
	if (!serial)
		serial = udev_device_get_sysattr_value(ud, "serial");
	d->serial = dup_or_null(serial);
	d->m.serial = d->serial;
	d->m.port = d->port;
	d->m.if_class = d->if_class;
	const char *node = udev_device_get_devnode(ud);
	char buf[64];
	if (!node && d->busnum > 0 && d->devnum > 0) {
		/* fits: dec_attr keeps both within 0..65535 */
		(void)snprintf(buf, sizeof(buf), "/dev/bus/usb/%03d/%03d", d->busnum, d->devnum);
		node = buf;
	}
	if (!node)
		log_warn("usb device port=%s has no device node (no DEVNAME, busnum or devnum): "
			 "only its children are handed out",
			 d->port);
	d->bus_node = dup_or_null(node);
	d->bus_rdev = udev_device_get_devnum(ud);
	/* Bound: the driver link, or DRIVER in the uevent file (which is what a
	 * bound device's uevent carries; umockdev testbeds have only that). */
	d->bound = bound_hint || udev_device_get_driver(ud) != NULL ||
		   udev_device_get_property_value(ud, "DRIVER") != NULL;
	if (children)
		read_children(w, ud, d);
	return d;
}

/* Gives the devices without an ID theirs (usbmatch_assign: in port
 * order, never changing one given), then logs the devices that settled. */
static void assign_ids(struct usb_watch *w)
{
	struct usbmatch_dev **v = malloc((w->n_devs ? w->n_devs : 1) * sizeof(*v));
	if (!v) {
		log_error("usb: out of memory choosing device IDs");
		return;
	}
	for (size_t i = 0; i < w->n_devs; i++)
		v[i] = &w->devs[i]->m;
	usbmatch_assign(v, w->n_devs);
	free(v);
	for (size_t i = 0; i < w->n_devs; i++) {
		struct usb_dev *d = w->devs[i];
		if (d->bound && !d->logged) {
			char desc[400];
			describe(w, d, desc, sizeof(desc));
			log_info("usb device settled %s nodes=%zu", desc,
				 d->n_nodes + (d->bus_node != NULL));
			d->logged = true;
		}
	}
}

/* A removal of (part of) the device at syspath: see "Removal bursts"
 * below. Only the first removal of each device of a burst extends the
 * hold: a device's own uevents coming a little apart do not delay it. */
static void removal(struct usb_watch *w, const char *syspath)
{
	w->changed = true;
	if (w->hold_dev && strcmp(w->hold_dev, syspath) == 0)
		return;
	free(w->hold_dev);
	w->hold_dev = strdup(syspath); /* NULL: the next removal extends, no harm */
	w->removed = true;
}

/* Puts fresh record d in place of the one with its syspath (keeping its
 * ID: it never changes while the device stays); notes a change when it
 * differs. Takes d. Outside a scan, a new device gets its ID at once. */
static void store(struct usb_watch *w, struct usb_dev *d)
{
	size_t i;
	struct usb_dev *old = find_dev(w, d->syspath, &i);
	if (old) {
		d->logged = old->logged && d->bound;
		memcpy(d->m.id, old->m.id, sizeof(d->m.id));
		if (same_record(old, d)) {
			dev_free(d);
			return;
		}
		if (old->bound && !d->bound)
			removal(w, d->syspath); /* unlisted */
		dev_free(old);
		w->devs[i] = d;
	} else {
		struct usb_dev **a = realloc(w->devs, (w->n_devs + 1) * sizeof(*a));
		if (!a) {
			log_error("usb: out of memory");
			dev_free(d);
			return;
		}
		w->devs = a;
		w->devs[w->n_devs++] = d;
	}
	w->changed = true;
	if (!w->scanning)
		assign_ids(w);
}

static void forget(struct usb_watch *w, const char *syspath)
{
	size_t i;
	struct usb_dev *d = find_dev(w, syspath, &i);
	if (!d)
		return;
	char desc[400];
	describe(w, d, desc, sizeof(desc));
	log_info("usb device removed %s", desc);
	removal(w, d->syspath);
	dev_free(d);
	w->devs[i] = w->devs[--w->n_devs];
}

static bool is_usb_device(struct udev_device *ud)
{
	const char *sub = udev_device_get_subsystem(ud);
	const char *type = udev_device_get_devtype(ud);
	return sub && type && strcmp(sub, "usb") == 0 && strcmp(type, "usb_device") == 0;
}

/* Re-reads the usb_device at syspath from sysfs (or forgets it when it is
 * gone), its children too. */
static void refresh(struct usb_watch *w, const char *syspath, bool bound_hint)
{
	struct udev_device *ud = udev_device_new_from_syspath(w->udev, syspath);
	if (!ud) {
		forget(w, syspath);
		return;
	}
	struct usb_dev *d = read_dev(w, ud, bound_hint, true);
	udev_device_unref(ud);
	if (d)
		store(w, d);
}

static void note_since(struct usb_watch *w, int64_t t);
static void notify(struct usb_watch *w);

/* The walks of sysfs that bind events put off (see on_bind): done once the
 * list the bind made is out (timers due now would run before the loop's
 * idle callback, which publishes it). */
#define VERIFY_DELAY_US 1000

static void on_verify(struct loop *loop, void *data)
{
	(void)loop;
	struct usb_watch *w = data;
	int64_t t = loop_now_us();
	char **v = w->verify;
	size_t n = w->n_verify;
	w->verify = NULL;
	w->n_verify = 0;
	for (size_t i = 0; i < n; i++) {
		struct usb_dev *old = find_dev(w, v[i], NULL);
		struct udev_device *ud =
		    old ? udev_device_new_from_syspath(w->udev, v[i]) : NULL; /* !old: gone */
		struct usb_dev *d = ud ? read_dev(w, ud, old->bound, true) : NULL;
		if (ud)
			udev_device_unref(ud);
		if (d && !same_record(old, d))
			log_warn("usb device port=%s: sysfs differs from what its uevents told "
				 "(uevents lost?): updated",
				 d->port);
		if (d)
			store(w, d);
		else if (old && !ud)
			forget(w, v[i]);
		free(v[i]);
	}
	free(v);
	note_since(w, t);
	notify(w);
}

static int verify_later(struct usb_watch *w, const char *syspath)
{
	for (size_t i = 0; i < w->n_verify; i++)
		if (strcmp(w->verify[i], syspath) == 0)
			return 0;
	char **v = realloc(w->verify, (w->n_verify + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	w->verify = v;
	if (!(v[w->n_verify] = strdup(syspath)))
		return -ENOMEM;
	if (loop_timer_set(w->loop, loop_now_us() + VERIFY_DELAY_US, on_verify, w) < 0) {
		free(v[w->n_verify]);
		return -ENOMEM;
	}
	w->n_verify++;
	return 0;
}

/* The "bind" of usb_device syspath: the device settles. The kernel binds
 * it after every interface probed and made its nodes, each with its own
 * uevents, so a device whose plug we followed has its children in its
 * record already: only its own attributes are read again, and the walk of
 * its children in sysfs, which costs more than everything else on the way
 * to the kubelet, is done right after the list is out (on_verify; a child
 * whose event was lost is added then). A device we know nothing of is read
 * whole. */
static void on_bind(struct usb_watch *w, const char *syspath)
{
	struct usb_dev *old = find_dev(w, syspath, NULL);
	if (!old) {
		refresh(w, syspath, true);
		return;
	}
	struct udev_device *ud = udev_device_new_from_syspath(w->udev, syspath);
	if (!ud) {
		forget(w, syspath);
		return;
	}
	struct usb_dev *d = read_dev(w, ud, true, false);
	if (d && (copy_children(d, old) < 0 || verify_later(w, syspath) < 0)) {
		dev_free(d); /* out of memory: the walk now, then */
		d = read_dev(w, ud, true, true);
	}
	udev_device_unref(ud);
	if (d)
		store(w, d);
}

static int cmp_syspath(const void *a, const void *b)
{
	return strcmp((*(struct usb_dev *const *)a)->syspath,
		      (*(struct usb_dev *const *)b)->syspath);
}

/* The record of v (n, sorted by syspath) at exactly syspath, or NULL. */
static struct usb_dev *find_sorted(struct usb_dev **v, size_t n, const char *syspath)
{
	struct usb_dev key = {.syspath = (char *)syspath}, *k = &key;
	struct usb_dev **hit = n ? bsearch(&k, v, n, sizeof(*v), cmp_syspath) : NULL;
	return hit ? *hit : NULL;
}

/* The record of v (sorted) nearest above syspath: the usb_device that a
 * child at syspath belongs to (and not a hub above it), or NULL. */
static struct usb_dev *owner_sorted(struct usb_dev **v, size_t n, const char *syspath)
{
	char buf[4096];
	int len = snprintf(buf, sizeof(buf), "%s", syspath);
	if (len < 0 || (size_t)len >= sizeof(buf))
		return NULL;
	char *slash;
	while ((slash = strrchr(buf, '/')) && slash > buf) {
		*slash = '\0';
		struct usb_dev *d = find_sorted(v, n, buf);
		if (d)
			return d;
	}
	return NULL;
}

/* The device nodes of every device below the usb_devices of v (sorted):
 * /sys/dev/{char,block} links every node's device, so one pass over them
 * finds them all, where a child enumeration per device would walk every
 * sysfs directory below it (every bus twice, through its root hub). */
static void scan_nodes(struct usb_watch *w, struct usb_dev **v, size_t n)
{
	static const char *const dirs[] = {"/sys/dev/char", "/sys/dev/block"};
	for (size_t k = 0; k < sizeof(dirs) / sizeof(dirs[0]); k++) {
		DIR *dp = opendir(dirs[k]);
		if (!dp)
			continue;
		struct dirent *de;
		while ((de = readdir(dp))) {
			if (de->d_name[0] == '.')
				continue;
			char link[300], target[4096], sp[4096];
			int m = snprintf(link, sizeof(link), "%s/%s", dirs[k], de->d_name);
			if (m < 0 || (size_t)m >= sizeof(link))
				continue;
			ssize_t t = readlink(link, target, sizeof(target) - 1);
			if (t <= 0)
				continue;
			target[t] = '\0';
			/* "../../devices/..." relative to /sys/dev/<kind> */
			const char *rel = target;
			while (strncmp(rel, "../", 3) == 0)
				rel += 3;
			m = snprintf(sp, sizeof(sp), "/sys/%s", rel);
			if (m < 0 || (size_t)m >= sizeof(sp) || find_sorted(v, n, sp))
				continue; /* a usb_device's own node: its bus_node */
			struct usb_dev *d = owner_sorted(v, n, sp);
			if (!d)
				continue;
			struct udev_device *c = udev_device_new_from_syspath(w->udev, sp);
			if (!c)
				continue;
			const char *node = udev_device_get_devnode(c);
			if (node && add_node(d, node, udev_device_get_subsystem(c),
					     udev_device_get_devnum(c)) < 0)
				log_error("usb: out of memory reading the nodes of port=%s",
					  d->port);
			udev_device_unref(c);
		}
		closedir(dp);
	}
}

/* Enumerates every usb_device now; forgets records whose device is gone.
 * One enumeration of the usb subsystem gives the devices and their
 * interfaces, one pass over /sys/dev their nodes; then every record is
 * complete before it is stored (so a rescan finds what really changed). */
static int scan(struct usb_watch *w)
{
	struct udev_enumerate *e = udev_enumerate_new(w->udev);
	if (!e)
		return -ENOMEM;
	udev_enumerate_add_match_subsystem(e, "usb");
	udev_enumerate_scan_devices(e);
	struct usb_dev **fresh = NULL;
	size_t n_fresh = 0, cap = 0;
	struct iface {
		char *syspath, *cls;
	} *ifs = NULL;
	size_t n_ifs = 0, cap_ifs = 0;
	int r = 0;
	struct udev_list_entry *it;
	udev_list_entry_foreach(it, udev_enumerate_get_list_entry(e))
	{
		struct udev_device *ud =
		    udev_device_new_from_syspath(w->udev, udev_list_entry_get_name(it));
		if (!ud)
			continue;
		const char *type = udev_device_get_devtype(ud);
		if (type && strcmp(type, "usb_device") == 0) {
			struct usb_dev *d = read_dev(w, ud, false, false);
			if (d && n_fresh == cap) {
				size_t c = cap ? 2 * cap : 64;
				struct usb_dev **a = realloc(fresh, c * sizeof(*a));
				if (a) {
					fresh = a;
					cap = c;
				} else {
					dev_free(d);
					d = NULL;
				}
			}
			if (d)
				fresh[n_fresh++] = d;
			else
				r = -ENOMEM;
		} else if (type && strcmp(type, "usb_interface") == 0) {
			const char *cls = udev_device_get_sysattr_value(ud, "bInterfaceClass");
			if (n_ifs == cap_ifs) {
				size_t c = cap_ifs ? 2 * cap_ifs : 64;
				struct iface *a = realloc(ifs, c * sizeof(*a));
				if (a) {
					ifs = a;
					cap_ifs = c;
				}
			}
			char *sp = n_ifs < cap_ifs ? strdup(udev_device_get_syspath(ud)) : NULL;
			char *c = sp && cls ? strdup(cls) : NULL;
			if (sp && (!cls || c)) {
				ifs[n_ifs].syspath = sp;
				ifs[n_ifs].cls = c;
				n_ifs++;
			} else {
				free(sp);
				free(c);
				r = -ENOMEM;
			}
		}
		udev_device_unref(ud);
	}
	udev_enumerate_unref(e);
	if (n_fresh)
		qsort(fresh, n_fresh, sizeof(*fresh), cmp_syspath);
	/* interfaces in syspath order, as a device's own child walk finds them */
	for (size_t i = 0; i < n_ifs; i++) {
		struct usb_dev *d = owner_sorted(fresh, n_fresh, ifs[i].syspath);
		if (d)
			add_if_class(d, parse_hex(ifs[i].cls, "bInterfaceClass", d->port));
		free(ifs[i].syspath);
		free(ifs[i].cls);
	}
	free(ifs);
	scan_nodes(w, fresh, n_fresh);
	if (r < 0)
		log_error("usb: out of memory enumerating devices: some are missing");
	/* the records whose device is gone */
	for (size_t i = 0; i < w->n_devs;) {
		if (find_sorted(fresh, n_fresh, w->devs[i]->syspath))
			i++;
		else
			forget(w, w->devs[i]->syspath); /* moves the last one to i */
	}
	w->scanning = true; /* IDs once every device is in: in port order */
	for (size_t i = 0; i < n_fresh; i++)
		store(w, fresh[i]);
	w->scanning = false;
	free(fresh);
	assign_ids(w);
	return 0;
}

/* Removal bursts. A hub losing power, or a hub unplugged, removes its
 * devices one after the other, a few milliseconds apart: told at once,
 * the kubelet would get one update per device and, between them, list as
 * Healthy devices that are already gone. So after a removal the change is
 * held while removals of more devices keep coming (each at most
 * HOLD_QUIET_US after the previous device's first), for at most
 * HOLD_MAX_US from the first, and then told once. A lone unplug is told
 * HOLD_QUIET_US after its first uevent. Arrivals are told at once unless a
 * hold is running. */
#define HOLD_QUIET_US 10000
#define HOLD_MAX_US   50000

static void tell(struct usb_watch *w)
{
	w->hold_since_us = 0;
	w->removed = false;
	free(w->hold_dev);
	w->hold_dev = NULL;
	if (w->changed) {
		int64_t since = w->changed_since_us ? w->changed_since_us : loop_now_us();
		w->changed = false;
		w->changed_since_us = 0;
		w->cb(w->cb_data, since);
	}
}

static void on_hold(struct loop *loop, void *data)
{
	(void)loop;
	tell(data);
}

/* The work that started at t (an event's arrival) changed something that
 * is not told yet: the change is timed from the first such t. */
static void note_since(struct usb_watch *w, int64_t t)
{
	if (w->changed && !w->changed_since_us)
		w->changed_since_us = t;
}

static void notify(struct usb_watch *w)
{
	if (!w->changed)
		return;
	if (w->removed) {
		int64_t now = loop_now_us();
		if (!w->hold_since_us)
			w->hold_since_us = now;
		w->removed = false;
		int64_t at = now + HOLD_QUIET_US;
		if (at > w->hold_since_us + HOLD_MAX_US)
			at = w->hold_since_us + HOLD_MAX_US;
		if (loop_timer_set(w->loop, at, on_hold, w) == 0)
			return;
		/* no timer (out of memory): tell now rather than never */
	} else if (w->hold_since_us) {
		return; /* told when the hold ends */
	}
	loop_timer_cancel(w->loop, on_hold, w);
	tell(w);
}

/* ---- udev monitor ---- */

static void on_uevent(struct usb_watch *w, struct udev_device *ud)
{
	const char *action = udev_device_get_action(ud);
	const char *sp = udev_device_get_syspath(ud);
	if (!action || !sp)
		return;
	w->last_monitor_event_us = loop_now_us();
	if (is_usb_device(ud))
		metrics_hotplug(w->metrics, HP_UEVENT, metrics_action(action));
	log_debug("uevent action=%s subsystem=%s devtype=%s syspath=%s", action,
		  udev_device_get_subsystem(ud) ? udev_device_get_subsystem(ud) : "",
		  udev_device_get_devtype(ud) ? udev_device_get_devtype(ud) : "", sp);
	if (is_usb_device(ud)) {
		if (strcmp(action, "remove") == 0)
			forget(w, sp);
		else if (strcmp(action, "unbind") == 0) {
			struct usb_dev *d = find_dev(w, sp, NULL);
			if (d && d->bound) {
				d->bound = false;
				removal(w, sp);
			}
		} else if (strcmp(action, "bind") == 0)
			on_bind(w, sp);
		else /* add, change */
			refresh(w, sp, false);
		return;
	}
	const char *type = udev_device_get_devtype(ud);
	if (type && strcmp(type, "usb_interface") == 0) {
		/* its class, for the bind of its device (on_bind) */
		struct usb_dev *d = owner_of(w, sp);
		if (d && strcmp(action, "remove") != 0 && strcmp(action, "unbind") != 0) {
			size_t n = d->m.n_if;
			add_if_class(d, hex_attr(ud, "bInterfaceClass", d->port));
			w->changed |= d->m.n_if != n;
		}
		return;
	}
	const char *node = udev_device_get_devnode(ud);
	if (!node)
		return;
	struct usb_dev *d = owner_of(w, sp);
	if (!d)
		return;
	if (strcmp(action, "remove") == 0) {
		if (lose_node(d, node)) {
			if (d->bound)
				log_info("usb device port=%s lost node=%s", d->port, node);
			removal(w, d->syspath);
		}
	} else if (!has_node(d, node)) {
		/* A late child (its driver loaded after the device settled). */
		const char *sub = udev_device_get_subsystem(ud);
		drop_lost(d, sub ? sub : "misc");
		if (add_node(d, node, sub, udev_device_get_devnum(ud)) == 0) {
			if (d->bound)
				log_info("usb device port=%s new node=%s", d->port, node);
			w->changed = true;
		}
	}
}

static void on_monitor(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)fd;
	(void)events;
	struct usb_watch *w = data;
	struct udev_device *ud;
	/* A bounded batch: in a storm the loop gets back control (and the
	 * kubelet an update) every MONITOR_BATCH events; the fd stays
	 * readable, so the rest comes on the next iteration. */
	for (int i = 0; i < MONITOR_BATCH; i++) {
		int64_t t = loop_now_us(); /* the event's arrival, before reading it */
		if (!(ud = udev_monitor_receive_device(w->mon)))
			break;
		on_uevent(w, ud);
		udev_device_unref(ud);
		note_since(w, t);
	}
	notify(w);
}

/* ---- libusb hotplug ---- */

/* The kernel's name for the device: "BUS-PORT.PORT...", root hubs "usbBUS". */
static int usb_sysname(libusb_device *dev, char *buf, size_t len)
{
	uint8_t ports[8];
	int n = libusb_get_port_numbers(dev, ports, (int)sizeof(ports));
	int bus = libusb_get_bus_number(dev);
	int off = n <= 0 ? snprintf(buf, len, "usb%d", bus) : snprintf(buf, len, "%d-", bus);
	for (int i = 0; i < n && off > 0 && (size_t)off < len; i++)
		off += snprintf(buf + off, len - (size_t)off, i ? ".%d" : "%d", ports[i]);
	return off > 0 && (size_t)off < len ? 0 : -ENAMETOOLONG;
}

static int LIBUSB_CALL on_hotplug(libusb_context *ctx, libusb_device *dev,
				  libusb_hotplug_event event, void *data)
{
	(void)ctx;
	struct usb_watch *w = data;
	char name[64];
	if (usb_sysname(dev, name, sizeof(name)) < 0)
		return 0;
	metrics_hotplug(w->metrics, HP_LIBUSB,
			event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? HP_ADD : HP_REMOVE);
	log_debug("libusb hotplug event=%s device=%s",
		  event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "arrived" : "left", name);
	/* Same device, second source: merged by sysfs path. A device the
	 * monitor already told us about changes nothing here. */
	struct udev_device *ud = udev_device_new_from_subsystem_sysname(w->udev, "usb", name);
	if (ud) {
		const char *sp = udev_device_get_syspath(ud);
		struct usb_dev *known = find_dev(w, sp, NULL);
		if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED && !known) {
			struct usb_dev *d = read_dev(w, ud, false, true);
			if (d)
				store(w, d);
		}
		udev_device_unref(ud);
	} else if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT) {
		for (size_t i = 0; i < w->n_devs; i++)
			if (strcmp(w->devs[i]->port, name) == 0) {
				forget(w, w->devs[i]->syspath);
				break;
			}
	}
	return 0; /* stay registered */
}

static void on_libusb(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)fd;
	(void)events;
	struct usb_watch *w = data;
	struct timeval zero = {0, 0};
	int64_t t = loop_now_us();
	libusb_handle_events_timeout_completed(w->usb, &zero, NULL);
	note_since(w, t);
	notify(w);
}

static void LIBUSB_CALL pollfd_added(int fd, short events, void *data)
{
	struct usb_watch *w = data;
	uint32_t ev = ((events & POLLIN) ? EPOLLIN : 0) | ((events & POLLOUT) ? EPOLLOUT : 0);
	loop_add_fd(w->loop, fd, ev, on_libusb, w);
}

static void LIBUSB_CALL pollfd_removed(int fd, void *data)
{
	struct usb_watch *w = data;
	loop_del_fd(w->loop, fd);
}

static void libusb_setup(struct usb_watch *w)
{
	int r = libusb_init(&w->usb);
	if (r < 0) {
		log_warn("libusb unavailable err=\"%s\": following udev alone", libusb_strerror(r));
		w->usb = NULL;
		return;
	}
	if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
		log_info("libusb has no hotplug support here: following udev alone");
		return;
	}
	r = libusb_hotplug_register_callback(
	    w->usb, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0,
	    LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
	    on_hotplug, w, &w->hotplug);
	if (r < 0) {
		log_warn("libusb hotplug registration failed err=\"%s\"", libusb_strerror(r));
		return;
	}
	w->hotplug_ok = true;
	/* libusb's descriptors go into our epoll set: no thread of its own. */
	const struct libusb_pollfd **fds = libusb_get_pollfds(w->usb);
	for (size_t i = 0; fds && fds[i]; i++)
		pollfd_added(fds[i]->fd, fds[i]->events, w);
	libusb_free_pollfds(fds);
	libusb_set_pollfd_notifiers(w->usb, pollfd_added, pollfd_removed, w);
}

/* ---- the safety net: /dev/bus/usb with inotify ----
 * devtmpfs creates /dev/bus/usb/BBB/DDD in the kernel, in every mount
 * namespace that shares /dev, whether or not uevents reach us. In udev or
 * kernel mode a change seen here that the monitor does not confirm within
 * MONITOR_GRACE_US means the monitor is deaf (a container without
 * hostNetwork): switch to inotify mode, where these events and a slow
 * reconcile drive rescans. */

static void on_scan_timer(struct loop *loop, void *data);

static void on_bus_event(void *data, const char *dir, const char *name, uint32_t mask);

#define BUS_EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM)

/* Watches /dev/bus/usb and each bus directory in it, or, until it exists,
 * the deepest of its parents that does. */
static void watch_bus_dirs(struct usb_watch *w)
{
	static const char *const chain[] = {"/dev/bus/usb", "/dev/bus", "/dev"};
	char *dirs[129];
	char paths[128][32];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]) && !n; i++) {
		if (access(chain[i], F_OK) != 0)
			continue;
		dirs[n++] = (char *)chain[i];
		for (int b = 1; i == 0 && b < 128; b++) { /* and each bus directory */
			snprintf(paths[b], sizeof(paths[b]), "/dev/bus/usb/%03d", b);
			if (access(paths[b], F_OK) == 0)
				dirs[n++] = paths[b];
		}
	}
	int err;
	const char *err_dir;
	dirwatch_sync(w->dw, dirs, n, BUS_EVENTS, on_bus_event, w, &err, &err_dir);
	if (err && err != -EMFILE && err != -ENOSPC) /* a limit: said once by dirwatch */
		log_warn("usb: cannot watch dir=%s err=\"%s\"", err_dir, strerror(-err));
}

static void on_rewatch(struct loop *loop, void *data)
{
	(void)loop;
	watch_bus_dirs(data);
}

static bool any_unsettled(const struct usb_watch *w)
{
	for (size_t i = 0; i < w->n_devs; i++)
		if (!w->devs[i]->bound)
			return true;
	return false;
}

static void on_scan_timer(struct loop *loop, void *data)
{
	struct usb_watch *w = data;
	int64_t asked = w->last_monitor_event_us;
	int64_t t = loop_now_us();
	scan(w);
	note_since(w, t);
	if (w->mode != USB_MODE_INOTIFY && w->changed &&
	    loop_now_us() - asked > MONITOR_GRACE_US - 1000) {
		log_warn("usb: a change appeared in /dev/bus/usb that no %s event reported: events "
			 "do not reach this process (a container without hostNetwork?); following "
			 "/dev/bus/usb with inotify, reconciling every %llds",
			 usb_mode_name(w->mode), RECONCILE_US / 1000000);
		w->mode = USB_MODE_INOTIFY;
	}
	if (w->mode == USB_MODE_INOTIFY) {
		/* No bind event will tell us when a device settles: look again. */
		if (any_unsettled(w) && w->settle_retries < SETTLE_RETRIES) {
			w->settle_retries++;
			loop_timer_set(loop, loop_now_us() + SETTLE_RETRY_US, on_scan_timer, w);
		} else {
			w->settle_retries = 0;
			loop_timer_set(loop, loop_now_us() + RECONCILE_US, on_scan_timer, w);
		}
	}
	notify(w);
}

static void on_bus_event(void *data, const char *dir, const char *name, uint32_t mask)
{
	(void)dir;
	(void)name;
	struct usb_watch *w = data;
	struct loop *loop = w->loop;
	metrics_hotplug(w->metrics, HP_INOTIFY,
			mask & (IN_CREATE | IN_MOVED_TO)     ? HP_ADD
			: mask & (IN_DELETE | IN_MOVED_FROM) ? HP_REMOVE
							     : HP_OTHER);
	/* A new bus directory, or /dev/bus/usb itself: watched again once
	 * the burst of events is read (the timer coalesces them). */
	if (loop_timer_set(loop, loop_now_us(), on_rewatch, w) < 0)
		log_error("usb: cannot schedule a watch update: out of memory");
	int64_t delay = w->mode == USB_MODE_INOTIFY ? 2000 : MONITOR_GRACE_US;
	int64_t at = loop_now_us() + delay;
	/* in inotify mode an earlier (reconcile) deadline is brought forward */
	if ((!loop_timer_armed(loop, on_scan_timer, w) || w->mode == USB_MODE_INOTIFY) &&
	    loop_timer_set(loop, at, on_scan_timer, w) < 0)
		log_error("usb: cannot schedule a rescan: out of memory");
	w->settle_retries = 0;
}

/* ---- setup ---- */

struct usb_watch *usb_watch_new(struct loop *loop, struct dirwatch *dw, struct usbids *ids,
				struct metrics *m, usb_changed_cb cb, void *data)
{
	struct usb_watch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->loop = loop;
	w->ids = ids;
	w->metrics = m;
	w->cb = cb;
	w->cb_data = data;
	w->mon_fd = -1;
	w->dw = dw;
	w->udev = udev_new();
	if (!w->udev) {
		free(w);
		errno = ENOMEM;
		return NULL;
	}
	/* udevd running: its monitor, with the udev database's properties;
	 * else the kernel's own uevents. */
	bool udevd = access("/run/udev/control", F_OK) == 0;
	w->mode = udevd ? USB_MODE_UDEV : USB_MODE_KERNEL;
	w->mon = udev_monitor_new_from_netlink(w->udev, udevd ? "udev" : "kernel");
	if (w->mon) {
		udev_monitor_set_receive_buffer_size(w->mon, 4 * 1024 * 1024);
		if (udev_monitor_enable_receiving(w->mon) < 0) {
			udev_monitor_unref(w->mon);
			w->mon = NULL;
		}
	}
	if (w->mon) {
		w->mon_fd = udev_monitor_get_fd(w->mon);
		loop_add_fd(loop, w->mon_fd, EPOLLIN, on_monitor, w);
	} else {
		log_warn("usb: cannot listen to uevents: following /dev/bus/usb with inotify");
		w->mode = USB_MODE_INOTIFY;
	}
	/* Monitor first, then enumerate: nothing falls between the two. */
	int64_t t0 = loop_now_us();
	scan(w);
	w->changed = w->removed = false;
	w->changed_since_us = 0;
	free(w->hold_dev);
	w->hold_dev = NULL;
	log_info("usb enumeration devices=%zu ms=%.1f events=%s udev_db=%s", w->n_devs,
		 (double)(loop_now_us() - t0) / 1000, usb_mode_name(w->mode),
		 access("/run/udev/data", R_OK) == 0 ? "yes" : "no (sysfs attributes only)");
	libusb_setup(w);
	/* Enumeration churns through thousands of small libudev objects: give
	 * the freed heap back instead of keeping the peak for ever. */
	malloc_trim(0);
	if (w->dw)
		watch_bus_dirs(w);
	if (w->mode == USB_MODE_INOTIFY)
		loop_timer_set(loop, loop_now_us() + RECONCILE_US, on_scan_timer, w);
	return w;
}

void usb_watch_free(struct usb_watch *w)
{
	if (!w)
		return;
	loop_timer_cancel(w->loop, on_scan_timer, w);
	loop_timer_cancel(w->loop, on_hold, w);
	loop_timer_cancel(w->loop, on_verify, w);
	for (size_t i = 0; i < w->n_verify; i++)
		free(w->verify[i]);
	free(w->verify);
	if (w->usb) {
		libusb_set_pollfd_notifiers(w->usb, NULL, NULL, NULL);
		const struct libusb_pollfd **fds = libusb_get_pollfds(w->usb);
		for (size_t i = 0; fds && fds[i]; i++)
			loop_del_fd(w->loop, fds[i]->fd);
		libusb_free_pollfds(fds);
		if (w->hotplug_ok)
			libusb_hotplug_deregister_callback(w->usb, w->hotplug);
		libusb_exit(w->usb);
	}
	if (w->mon) {
		loop_del_fd(w->loop, w->mon_fd);
		udev_monitor_unref(w->mon);
	}
	loop_timer_cancel(w->loop, on_rewatch, w);
	if (w->dw) /* ends every subscription of ours */
		dirwatch_sync(w->dw, NULL, 0, 0, on_bus_event, w, &(int){0}, &(const char *){NULL});
	for (size_t i = 0; i < w->n_devs; i++)
		dev_free(w->devs[i]);
	free(w->devs);
	free(w->hold_dev);
	udev_unref(w->udev);
	free(w);
}

size_t usb_watch_settled_ids(const struct usb_watch *w, uint32_t *out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < w->n_devs; i++) {
		const struct usb_dev *d = w->devs[i];
		if (!d->bound || d->m.vendor < 0 || d->m.product < 0)
			continue;
		if (n < max)
			out[n] = (uint32_t)d->m.vendor << 16 | (uint32_t)d->m.product;
		n++;
	}
	return n;
}

/* ---- matching and instances ---- */

static bool matches(const struct usb_dev *d, const struct cfg_usb *u)
{
	return usbmatch_entry(u, &d->m);
}

static int cmp_port(const void *a, const void *b)
{
	const struct usb_dev *x = *(struct usb_dev *const *)a, *y = *(struct usb_dev *const *)b;
	return strverscmp(x->port, y->port);
}

static const char *env_name_of(const char *subsystem, char *buf, size_t len)
{
	if (strcmp(subsystem, "video4linux") == 0)
		return "VIDEO";
	size_t n = 0;
	for (; subsystem[n] && n + 1 < len; n++)
		buf[n] = isalnum((unsigned char)subsystem[n])
			     ? (char)toupper((unsigned char)subsystem[n])
			     : '_';
	buf[n] = '\0';
	return buf;
}

/* Where node path goes in the container: mount_path (a directory ending
 * in '/') + its base name, or path itself. -ENAMETOOLONG when it does
 * not fit. */
static int container_path(const char *mount_path, const char *path, char *buf, size_t len)
{
	const char *base = strrchr(path, '/');
	int n = mount_path ? snprintf(buf, len, "%s%s", mount_path, base ? base + 1 : path)
			   : snprintf(buf, len, "%s", path);
	return n >= 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

static int add_env(struct dev_instance *inst, const char *pre, const char *k, const char *v)
{
	char key[96];
	int n = snprintf(key, sizeof(key), "%s%s", pre, k);
	if (n < 0 || (size_t)n >= sizeof(key))
		return -ENAMETOOLONG;
	return dev_instance_add_env(inst, key, v);
}

static int add_dev_env(struct dev_instance *inst, const struct usb_dev *d, size_t j,
		       const struct cfg_usb *u)
{
	char pre[32] = "", val[8];
	if (j > 0 && snprintf(pre, sizeof(pre), "DEV%zu_", j) >= (int)sizeof(pre))
		return -ENAMETOOLONG;
	int r = 0;
	if (d->bus_node)
		r = add_env(inst, pre, "BUS", d->bus_node);
	(void)snprintf(val, sizeof(val), "%04x", (unsigned)(d->m.vendor & 0xffff)); /* fits */
	if (r == 0)
		r = add_env(inst, pre, "VENDOR", val);
	(void)snprintf(val, sizeof(val), "%04x", (unsigned)(d->m.product & 0xffff));
	if (r == 0)
		r = add_env(inst, pre, "PRODUCT", val);
	if (r == 0 && d->serial)
		r = add_env(inst, pre, "SERIAL", d->serial);
	if (r == 0)
		r = add_env(inst, pre, "PORT", d->port);
	/* one variable per kind of node: TTY=/dev/ttyACM0,/dev/ttyACM1 */
	for (size_t i = 0; i < d->n_nodes && r == 0; i++) {
		bool first = true;
		for (size_t k = 0; k < i; k++)
			first = first && strcmp(d->nodes[k].subsystem, d->nodes[i].subsystem) != 0;
		if (!first)
			continue;
		char name[64], *list = NULL;
		size_t used = 0;
		for (size_t k = i; k < d->n_nodes && r == 0; k++) {
			if (strcmp(d->nodes[k].subsystem, d->nodes[i].subsystem) != 0)
				continue;
			char path[512];
			r = container_path(u->mount_path, d->nodes[k].path, path, sizeof(path));
			if (r < 0)
				break;
			size_t add = strlen(path) + 2;
			char *nl = realloc(list, used + add);
			if (!nl) {
				r = -ENOMEM;
				break;
			}
			list = nl;
			used += (size_t)snprintf(list + used, add, "%s%s", used ? "," : "", path);
		}
		if (list && r == 0)
			r = add_env(inst, pre,
				    env_name_of(d->nodes[i].subsystem, name, sizeof(name)), list);
		free(list);
	}
	return r;
}

static int push_node(struct dev_instance *inst, const char *host, const char *container,
		     const char *subsystem, dev_t rdev)
{
	struct dev_node *n = realloc(inst->nodes, (inst->n_nodes + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	inst->nodes = n;
	n = &n[inst->n_nodes];
	memset(n, 0, sizeof(*n));
	n->host_path = strdup(host);
	n->container_path = strdup(container);
	memcpy(n->permissions, "rw", 3);
	n->kind = subsystem && strcmp(subsystem, "block") == 0 ? 'b' : 'c';
	n->rdev = rdev;
	if (!n->host_path || !n->container_path) {
		free(n->host_path);
		free(n->container_path);
		return -ENOMEM;
	}
	inst->n_nodes++;
	return 0;
}

/* The instance of devs[0..g->n_usb) (one per entry): their IDs joined
 * with '+', every node of each, their facts as env. */
static int build_instance(struct dev_instance *inst, const struct cfg_group *g, size_t gi,
			  struct usb_dev **devs)
{
	size_t len = 1;
	for (size_t e = 0; e < g->n_usb; e++)
		len += strlen(devs[e]->m.id) + 1;
	char *id = malloc(len);
	if (!id)
		return -ENOMEM;
	id[0] = '\0';
	int r = 0;
	for (size_t e = 0; e < g->n_usb && r == 0; e++) {
		struct usb_dev *d = devs[e];
		if (e)
			strcat(id, "+");
		strcat(id, d->m.id); /* fits: len counted every part */
		if (d->bus_node)
			r = push_node(inst, d->bus_node, d->bus_node, "usb", d->bus_rdev);
		for (size_t k = 0; k < d->n_nodes && r == 0; k++) {
			char c[512];
			r = container_path(g->usb[e].mount_path, d->nodes[k].path, c, sizeof(c));
			if (r == 0)
				r = push_node(inst, d->nodes[k].path, c, d->nodes[k].subsystem,
					      d->nodes[k].rdev);
		}
		if (r == 0)
			r = add_dev_env(inst, d, e, &g->usb[e]);
	}
	inst->count = g->count ? g->count : 1;
	inst->ids = calloc(inst->count, sizeof(*inst->ids));
	if (r == 0 && asprintf(&inst->key, "u%zu:%s", gi, id) < 0) {
		inst->key = NULL;
		r = -ENOMEM;
	}
	if (r == 0 && !inst->ids)
		r = -ENOMEM;
	for (unsigned j = 0; j < inst->count && r == 0; j++) {
		if (inst->count == 1)
			inst->ids[j] = strdup(id);
		else if (asprintf(&inst->ids[j], "%s-%u", id, j) < 0)
			inst->ids[j] = NULL;
		if (!inst->ids[j])
			r = -ENOMEM;
	}
	free(id);
	return r;
}

int usb_expand(const struct usb_watch *w, const struct config *cfg, const char *name,
	       const struct cfg_group *g, size_t gi, struct dev_instance **out, size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (g->n_usb == 0)
		return 0;
	struct usb_dev ***lists = calloc(g->n_usb, sizeof(*lists));
	size_t *n_lists = calloc(g->n_usb, sizeof(*n_lists));
	bool *taken = calloc(w->n_devs ? w->n_devs : 1, sizeof(*taken));
	int r = 0;
	if (!lists || !n_lists || !taken) {
		r = -ENOMEM;
		goto out;
	}
	/* devices an earlier group has, or without an ID (out of memory when
	 * it was chosen), are nobody's here */
	for (size_t i = 0; i < w->n_devs; i++)
		taken[i] = !w->devs[i]->bound || !w->devs[i]->m.id[0] ||
			   usbmatch_claimed_before(cfg, name, gi, &w->devs[i]->m);
	size_t n = SIZE_MAX;
	for (size_t e = 0; e < g->n_usb; e++) {
		lists[e] = calloc(w->n_devs ? w->n_devs : 1, sizeof(**lists));
		if (!lists[e]) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < w->n_devs; i++) {
			if (taken[i] || !matches(w->devs[i], &g->usb[e]))
				continue;
			taken[i] = true;
			lists[e][n_lists[e]++] = w->devs[i];
		}
		qsort(lists[e], n_lists[e], sizeof(*lists[e]), cmp_port);
		if (n_lists[e] < n)
			n = n_lists[e];
	}
	if (n == 0 || n == SIZE_MAX)
		goto out;
	struct dev_instance *insts = calloc(n, sizeof(*insts));
	struct usb_dev **row = calloc(g->n_usb, sizeof(*row));
	if (!insts || !row) {
		free(insts);
		free(row);
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
		for (size_t e = 0; e < g->n_usb; e++)
			row[e] = lists[e][i];
		r = build_instance(&insts[i], g, gi, row);
	}
	free(row);
	if (r < 0) {
		dev_instances_free(insts, n);
		goto out;
	}
	*out = insts;
	*n_out = n;
out:
	for (size_t e = 0; lists && e < g->n_usb; e++)
		free(lists[e]);
	free(lists);
	free(n_lists);
	free(taken);
	return r;
}

/* ---- --list ---- */

/* Every entry d matches; the first one has it (see usb_expand), the
 * others are told that they do not. */
static void list_matches(FILE *out, const struct config *cfg, const struct usb_dev *d)
{
	const char *owner = NULL;
	size_t og = 0, oe = 0;
	for (size_t r = 0; r < cfg->n_devices; r++)
		for (size_t g = 0; g < cfg->devices[r].n_groups; g++)
			for (size_t e = 0; e < cfg->devices[r].groups[g].n_usb; e++) {
				if (!matches(d, &cfg->devices[r].groups[g].usb[e]))
					continue;
				fprintf(out, "    matches  %s/%s  groups[%zu].usb[%zu]",
					cfg->domain, cfg->devices[r].name, g, e);
				if (owner) {
					fprintf(out,
						"  (not offered here: %s/%s groups[%zu].usb[%zu] "
						"has it)\n",
						cfg->domain, owner, og, oe);
				} else {
					fputc('\n', out);
					owner = cfg->devices[r].name;
					og = g;
					oe = e;
				}
			}
	if (!owner)
		fprintf(out, "    matches  nothing in the configuration\n");
}

int usb_list(FILE *out, const struct config *cfg, struct usbids *ids)
{
	struct usb_watch w = {.ids = ids};
	w.udev = udev_new();
	if (!w.udev)
		return -ENOMEM;
	int r = scan(&w);
	if (w.n_devs)
		qsort(w.devs, w.n_devs, sizeof(*w.devs), cmp_port);
	fprintf(
	    out, "%zu USB device%s (events: %s; udev database: %s; names: %s)\n", w.n_devs,
	    w.n_devs == 1 ? "" : "s", access("/run/udev/control", F_OK) == 0 ? "udev" : "kernel",
	    access("/run/udev/data", R_OK) == 0 ? "yes" : "no", ids ? usbids_path(ids) : "none");
	for (size_t i = 0; i < w.n_devs; i++) {
		const struct usb_dev *d = w.devs[i];
		char vname[128] = "", pname[128] = "";
		if (d->m.vendor >= 0 && d->m.product >= 0)
			usbids_lookup(ids, (uint16_t)d->m.vendor, (uint16_t)d->m.product, vname,
				      sizeof(vname), pname, sizeof(pname));
		fprintf(out, "\nport %s  %04x:%04x  %s%s%s\n", d->port,
			(unsigned)(d->m.vendor & 0xffff), (unsigned)(d->m.product & 0xffff), vname,
			*pname ? " / " : "", pname);
		fprintf(out, "    serial   %s\n", d->serial ? d->serial : "(none)");
		fprintf(out, "    id       %s\n", d->m.id[0] ? d->m.id : "(none)");
		fprintf(out, "    class    %02x, interfaces", (unsigned)(d->m.dev_class & 0xff));
		for (size_t k = 0; k < d->m.n_if; k++)
			fprintf(out, " %02x", d->if_class[k]);
		fprintf(out, "%s\n", d->bound ? "" : "  (no driver bound: not settled)");
		if (d->bus_node)
			fprintf(out, "    node     %s\n", d->bus_node);
		for (size_t k = 0; k < d->n_nodes; k++)
			fprintf(out, "    node     %s  (%s)\n", d->nodes[k].path,
				d->nodes[k].subsystem);
		if (cfg)
			list_matches(out, cfg, d);
	}
	for (size_t i = 0; i < w.n_devs; i++)
		dev_free(w.devs[i]);
	free(w.devs);
	free(w.hold_dev);
	udev_unref(w.udev);
	return r;
}
