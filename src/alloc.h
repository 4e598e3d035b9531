/* What the plugin answers, independent of the transport: Allocate,
 * GetPreferredAllocation and PreStartContainer computed from an immutable
 * snapshot of one resource.
 *
 * Environment variables set by Allocate, for a resource named NAME
 * (upper-cased, '-' -> '_') and the k-th requested device (0-based, in
 * request order):
 *   USBDP_<NAME>_IDS      the requested device IDs, comma-separated
 *   USBDP_<NAME>_<k>      the container paths of every node of device k,
 *                         comma-separated (usually one: /dev/ttyUSB0)
 *   USBDP_<NAME>_<k>_ID   device k's ID
 *   USBDP_<NAME>_<k>_<S>  each of the instance's own variables (dev_env:
 *                         for USB devices TTY, BUS, VENDOR, PRODUCT, ...)
 * then the group's env and annotations templates (tmpl.h), expanded for
 * each device; a key two devices set to different values gets both,
 * comma-separated, in request order.
 */
#ifndef UDP_ALLOC_H
#define UDP_ALLOC_H

#include <stddef.h>

#include "deviceplugin.pb-c.h"
#include "table.h"

/* Every container request answered in order. With cdi_kind (NULL: off),
 * the nodes of each device are named as the CDI device of cdi.h instead of
 * DeviceSpecs and Mounts (devices without nodes name none). Every node of
 * every requested device is checked again (dev_node_check): the snapshot
 * may not know yet that it is gone. Errors: -ENOENT for an
 * unknown ID, -EBUSY for an Unhealthy one, -ENODEV for a node that does
 * not check out (err names it), -EINVAL for an empty request,
 * -EEXIST when two devices would put different files at one container
 * path; err then names the ID and why. The response is freed with
 * protobuf_c_message_free_unpacked(&(*out)->base, NULL). */
int alloc_allocate(const struct snapshot *s, const char *name, const char *cdi_kind,
		   const V1beta1__AllocateRequest *req, V1beta1__AllocateResponse **out, char *err,
		   size_t errlen);

/* Chooses allocation_size IDs per container request: must_include first,
 * then spreading over distinct instances (fewest already chosen), then
 * over count slots (instances with most available slots first), ties in
 * table order. Unknown IDs in the request are ignored. */
int alloc_preferred(const struct snapshot *s, const V1beta1__PreferredAllocationRequest *req,
		    V1beta1__PreferredAllocationResponse **out, char *err, size_t errlen);

/* 0 when every node of every device still checks out (dev_node_check);
 * otherwise -ENOENT (unknown ID) or -ENODEV (a node that does not),
 * described in err. */
int alloc_prestart(const struct snapshot *s, const V1beta1__PreStartContainerRequest *req,
		   char *err, size_t errlen);

/* USBDP_<NAME> for name into buf; 0 or -ENAMETOOLONG. */
int alloc_env_prefix(const char *name, char *buf, size_t len);

#endif
