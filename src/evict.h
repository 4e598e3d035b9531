/* Eviction of Pods whose device is gone (--evict-after, off by default).
 *
 * The event loop tells this module what each resource publishes; a device
 * listed Unhealthy (or dropped after being so) for after_ms has its
 * deadline pass, and a worker thread of this module then asks the
 * kubelet's PodResources API which Pods hold the device and evicts each
 * through the Eviction API (so PodDisruptionBudgets hold), with an Event on
 * the Pod and one on the Node, retrying with backoff. A device that comes
 * back Healthy before its deadline cancels it, and cancels what is still
 * being retried after it. Nothing blocking ever runs on the loop. */
#ifndef UDP_EVICT_H
#define UDP_EVICT_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "metrics.h"
#include "table.h"

struct evict_settings {
	unsigned after_ms;		  /* > 0 */
	const char *pod_resources_socket; /* the kubelet's PodResources socket */
	const char *sa_dir;		  /* the service account's token and ca.crt */
	const char *node_name;		  /* this node: its Events, and a Pod's check */
};

struct evict;

/* Starts the module (its worker thread included; signals must already be
 * blocked). loop and metrics are borrowed and must outlive it; settings
 * are copied. NULL with errno set and the reason in why (ENOENT: no API
 * server in the environment). */
struct evict *evict_new(struct loop *loop, struct metrics *metrics, const struct evict_settings *s,
			char *why, size_t errlen);
/* Stops the worker (a request in flight is aborted) and frees everything;
 * evictions not yet done are dropped. NULL is a no-op. */
void evict_free(struct evict *e);

/* After resource (full name "domain/name") published snap: starts the
 * clock of each device newly Unhealthy, stops it for each device Healthy
 * again. A device absent from snap keeps its clock (dropped after the
 * grace period, it is still gone). On the loop only. */
void evict_observe(struct evict *e, const char *resource, const struct snapshot *snap,
		   int64_t now_us);

#endif
