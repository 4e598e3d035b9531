/* The device plugin gRPC servers: one unix socket and one grpc_server per
 * resource, all driven by the rpc module's thread. The event loop publishes
 * table snapshots; every open ListAndWatch stream then sends the newest one
 * (one send in flight per stream: a stream still sending marks itself dirty
 * and sends the newest snapshot when its send completes, so bursts
 * coalesce). */
#ifndef UDP_SERVER_H
#define UDP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "rpc.h"
#include "table.h"

struct servers;

/* names[r]: the resource's config name ("serial"), used for env vars;
 * full_names[r]: "domain/name", used in logs. Both copied. */
struct servers *servers_new(struct rpc *rpc, size_t n, const char *const *names,
			    const char *const *full_names);
/* Appends a resource (names copied); its index, or -ENOMEM. cdi_kind
 * (copied; NULL: off): Allocate names CDI devices of this kind instead of
 * DeviceSpecs and Mounts. */
ssize_t servers_add(struct servers *s, const char *name, const char *full_name,
		    const char *cdi_kind);
/* Stops every server (cancels streams), waits for them: call before
 * rpc_free. NULL is a no-op. */
void servers_free(struct servers *s);

/* (Re)creates resource r's server on a unix socket at path, replacing any
 * previous one (whose socket file is removed if it is still ours). A stale
 * file at path is removed first. Serving when it returns 0. */
int servers_listen(struct servers *s, size_t r, const char *path);
/* Stops resource r's server and removes its socket. */
void servers_stop(struct servers *s, size_t r);
/* True while r's server is up and its socket file is the one it created. */
bool servers_socket_ok(struct servers *s, size_t r);

/* Hands snapshot snap (the reference passes to the server) of resource r
 * to its streams. */
void servers_publish(struct servers *s, size_t r, struct snapshot *snap);

struct metrics_res;
/* Where resource r counts its streams and Allocate calls (borrowed). */
void servers_set_metrics(struct servers *s, size_t r, struct metrics_res *m);

#endif
