/* USB discovery: every usb_device on the node with the device nodes of its
 * children (tty, hidraw, video4linux, sound, input, ...), kept current from
 * libudev (enumeration, then the udev monitor) and libusb hotplug
 * callbacks, all driven by the event loop. The two sources describe the
 * same devices and are merged by sysfs path.
 *
 * A device becomes an instance only once settled: its usb_device is bound
 * to a driver (the "bind" uevent, or a driver link found at enumeration),
 * which the kernel does after every interface probed and created its
 * nodes. Children that appear later (a driver loaded late) update it. */
#ifndef UDP_USB_H
#define UDP_USB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "instance.h"
#include "loop.h"

struct usb_watch;
struct usbids;

/* Where events come from; see usb_watch_new. */
enum usb_mode {
	USB_MODE_UDEV,	  /* udev monitor (udevd's netlink group): normal on a host */
	USB_MODE_KERNEL,  /* kernel uevents: no udevd on the node */
	USB_MODE_INOTIFY, /* neither reaches us (no hostNetwork): /dev/bus/usb + rescans */
};

/* Runs on the loop after a batch of events changed the set of devices.
 * A batch with a removal is told a few milliseconds late, once for the
 * whole burst (a hub unplugged): see HOLD_QUIET_US in usb.c. since_us
 * (loop_now_us's clock): when the first event of the change reached this
 * process, before anything was read or done about it. */
typedef void (*usb_changed_cb)(void *data, int64_t since_us);

/* Enumerates now, then follows events on loop. ids (borrowed, may be NULL)
 * names devices in logs. NULL with errno set on failure. */
struct metrics;
/* m (borrowed, may be NULL) counts the events. */
struct dirwatch;
/* dw (borrowed, may be NULL: no safety net) watches /dev/bus/usb. */
struct usb_watch *usb_watch_new(struct loop *loop, struct dirwatch *dw, struct usbids *ids,
				struct metrics *m, usb_changed_cb cb, void *data);
void usb_watch_free(struct usb_watch *w);

const char *usb_mode_name(enum usb_mode mode);
/* Writes (vendor << 16 | product) of every settled USB device into out
 * (at most max); returns how many there are (may exceed max). */
size_t usb_watch_settled_ids(const struct usb_watch *w, uint32_t *out, size_t max);

/* The instances group g (index gi of its device) has now: with entries
 * E1..Ek, the settled devices matching each entry (a device is taken by the
 * first entry it matches), each list sorted by port path; instance i holds
 * device i of every list, so there are as many instances as the shortest
 * list has devices. Nodes per device: its /dev/bus/usb node, then its
 * children's nodes sorted by path.
 *
 * One device, one resource: a device that an entry of a group before g
 * (group gi of the resource called name) in cfg matches (resources in
 * config order, then their groups; usbmatch_claimed_before) is that
 * group's and not g's, so the kubelet can never hand one dongle to two
 * Pods through two resources. cfg is the newest configuration (g may be
 * a copy of its group); cfg or name NULL: no group is before g.
 *
 * IDs: each device's own (usbmatch.h: VVVV-PPPP-SERIAL, a port or hashed
 * form for twins and look-alikes; chosen when the device is first seen
 * and kept while it stays plugged in); devices of one instance joined
 * with '+'; count slots add -0, -1, ... when count > 1. Returns 0 or
 * -ENOMEM. */
int usb_expand(const struct usb_watch *w, const struct config *cfg, const char *name,
	       const struct cfg_group *g, size_t gi, struct dev_instance **out, size_t *n_out);

/* The dry run behind --list: every USB device on the node, its nodes and
 * the resources and groups of cfg it matches, printed to out. */
int usb_list(FILE *out, const struct config *cfg, struct usbids *ids);

#endif
