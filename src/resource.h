/* A resource: one devices[] entry of the config (or one file a
 * smarter-device-manager devicematch entry matched) = one device table,
 * one unix socket and gRPC server, one registration with the kubelet, one
 * CDI spec and one set of metrics. This object owns all of them.
 *
 * Life cycle, on the event loop only: resource_new; resource_serve and
 * resource_register (or resource_settle after plugin-directory events);
 * resource_publish after table changes; resource_destroy. Destroy stops
 * everything at once, in a fixed order, but the memory is freed only when
 * the last asynchronous operation (the Register call in flight, the gRPC
 * server's shutdown) has called back: never while one still can. */
#ifndef UDP_RESOURCE_H
#define UDP_RESOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "metrics.h"
#include "rpc.h"
#include "table.h"

struct resource;

/* A socket's file name: "usbdp-<instance>-<seq>.sock", whatever the
 * resource's name, so that it always fits a unix socket address (the
 * longest is this long) and two plugin processes on one node (a rolling
 * update, a manual run) never pick the same name. */
#define RESOURCE_SOCKET_NAME_MAX (6 + 8 + 1 + 10 + 5)

/* What every resource shares; owned by the daemon, outliving them all. */
struct resource_env {
	struct loop *loop;
	struct rpc *rpc; /* NULL until the gRPC side is up: no server before */
	struct metrics *metrics;
	const struct config *cfg; /* settings: domain, plugin_dir, cdi, cdi_dir, grace */
	const char *kubelet_sock; /* the kubelet's Registration socket */
	char instance[9];	  /* 8 random hex digits: this process's sockets */
	unsigned next_seq;	  /* socket incarnations, never reused in a process */
	unsigned live;		  /* resources not yet freed (destroyed or not) */
	/* A Register of a destroyed resource succeeded: the kubelet may now
	 * dial its gone socket for that name, so the live resource of that
	 * name (if any) must register again. */
	void (*late_register)(void *data, const char *name);
	void *data;
};

/* A resource for dev (copied). origin: NULL for a configured device, else
 * the /dev file a devicematch entry matched (derived resource). Its
 * device table starts empty; with env->rpc set its server is created (not
 * listening yet). NULL with errno set (ENOMEM, or EINVAL: a name CDI cannot
 * take, logged). */
struct resource *resource_new(struct resource_env *env, const struct cfg_device *dev,
			      const char *origin);

/* Stops and lets go of r: cancels its registration and retry timer,
 * unlists its metrics, stops its server and removes its socket; removes
 * its CDI spec unless keep_cdi (a stopping plugin leaves specs in place
 * for containers starting meanwhile). r must not be used afterwards. */
void resource_destroy(struct resource *r, bool keep_cdi);

/* Creates the gRPC server once env->rpc exists. 0 or negative errno. */
int resource_start_server(struct resource *r);

/* Serves a fresh socket (a new name: the kubelet's view of the old one
 * may linger). 0 or negative errno (logged). */
int resource_serve(struct resource *r);
/* Registers with the kubelet now (or once more after the call in flight). */
void resource_register(struct resource *r);
/* After plugin-directory events: serves again if the socket is gone, and
 * registers when the kubelet is there and it is new, the socket is new or
 * nothing was registered. Negative errno when serving failed (retry). */
int resource_settle(struct resource *r, bool kubelet_new, bool kubelet_present);

/* When the table changed since the last call: a snapshot to the server,
 * the CDI spec (written before the kubelet hears of the devices in it)
 * and the metrics. True when something was published. */
bool resource_publish(struct resource *r);

/* Replaces the config entry (copied): the table is cleared and refilled by
 * the next scan. 0 or -ENOMEM (nothing changed). */
int resource_set_device(struct resource *r, const struct cfg_device *dev);

const char *resource_name(const struct resource *r);	  /* "serial" */
const char *resource_full_name(const struct resource *r); /* "domain/serial" */
const struct cfg_device *resource_device(const struct resource *r);
const char *resource_origin(const struct resource *r);	 /* NULL: configured */
const char *resource_cdi_kind(const struct resource *r); /* NULL: no CDI */
struct table *resource_table(struct resource *r);
/* Healthy devices in the last published list. */
uint64_t resource_healthy(const struct resource *r);

#endif
