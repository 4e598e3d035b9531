/* Counters and gauges for /metrics, written by the loop and gRPC threads
 * with atomics, read by the HTTP thread; and the Prometheus text rendering.
 * A per-resource entry belongs to its resource: listed (rendered) from
 * metrics_res_new until metrics_res_unlist, freed by the resource once no
 * thread can write to it any more. */
#ifndef UDP_METRICS_H
#define UDP_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum hp_source { HP_PATHS, HP_UEVENT, HP_LIBUSB, HP_INOTIFY, HP_N_SOURCES };
enum hp_action { HP_ADD, HP_REMOVE, HP_BIND, HP_UNBIND, HP_CHANGE, HP_OTHER, HP_N_ACTIONS };

struct metrics_res {
	char *name;		     /* domain/name */
	_Atomic uint64_t registered; /* the kubelet accepted the last Register */
	_Atomic uint64_t serving;    /* our socket exists and its server runs */
	_Atomic uint64_t registrations, registration_errors;
	_Atomic uint64_t allocate_calls, allocate_errors;
	_Atomic uint64_t devices, healthy, streams;
	_Atomic uint64_t failing;  /* its CDI spec cannot be written */
	_Atomic uint64_t withheld; /* devices not listed: over the limits (sizelimits.h) */
};

#define METRICS_N_BUCKETS 12

struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

/* A new per-resource entry, listed at once; NULL on ENOMEM. */
struct metrics_res *metrics_res_new(struct metrics *m, const char *name);
/* Stops rendering r (it stays valid for writers until metrics_res_free). */
void metrics_res_unlist(struct metrics *m, struct metrics_res *r);
void metrics_res_free(struct metrics_res *r); /* NULL is a no-op */

void metrics_hotplug(struct metrics *m, enum hp_source src, enum hp_action action);
enum hp_action metrics_action(const char *uevent_action);
/* Time from a device event to the table change being handed to the
 * ListAndWatch streams. */
void metrics_latency(struct metrics *m, double seconds);

/* The outcome of one Pod's eviction (usbdp_evictions_total's result). */
enum ev_result {
	EV_EVICTED,   /* the Eviction API accepted it */
	EV_GONE,      /* the Pod was gone (or on another node) before */
	EV_FAILED,    /* refused for good (e.g. 403) */
	EV_CANCELLED, /* the device came back, or the plugin stopped, first */
	EV_N_RESULTS
};
/* Counts one outcome for resource (full name). Any thread; a failed
 * allocation loses the count (logged by the caller's own line anyway). */
void metrics_eviction(struct metrics *m, const char *resource, enum ev_result result);
/* HTTP connections cut short by a limit of src/http.c, by reason. */
enum http_reject {
	HTTP_REJ_PER_CLIENT,	 /* over the per-address limit: its oldest closed */
	HTTP_REJ_TOTAL,		 /* over the connection cap: the oldest closed */
	HTTP_REJ_DEADLINE,	 /* request or answer not through in time */
	HTTP_REJ_HEAD_TOO_LARGE, /* answered 431 */
	HTTP_REJ_FD_LIMIT,	 /* accept failed for want of descriptors */
	HTTP_REJ_N
};
void metrics_http_rejected(struct metrics *m, enum http_reject why);

/* The whole exposition text (Prometheus text format 0.0.4), malloc'd. */
char *metrics_render(struct metrics *m, size_t *len);

/* why (a static string, or NULL) the plugin finds changes by rescanning:
 * shown on /healthz (still ready) and as usbdp_degraded on /metrics. */
void metrics_set_degraded(struct metrics *m, const char *why);

/* "ok\n", or one line per reason the plugin is not ready; malloc'd.
 * *ready says which. */
char *metrics_health(struct metrics *m, bool *ready);

#endif
