/* The device plugin gRPC server of one resource: a unix socket and a
 * grpc_server, driven by the rpc module's thread. The event loop publishes
 * table snapshots; every open ListAndWatch stream then sends the newest one
 * (one send in flight per stream: a stream still sending marks itself dirty
 * and sends the newest snapshot when its send completes, so bursts
 * coalesce). */
#ifndef UDP_SERVER_H
#define UDP_SERVER_H

#include <stdbool.h>

#include "rpc.h"
#include "table.h"

struct server;
struct metrics_res;

/* A server that does not listen yet. name: the resource's config name
 * ("serial"), used for env vars; full_name: "domain/name", used in logs;
 * cdi_kind (NULL: off): Allocate names CDI devices of this kind instead of
 * DeviceSpecs and Mounts. All three copied. m (borrowed, may be NULL) counts
 * streams and Allocate calls; it must stay valid until server_free's done
 * callback has run. NULL on ENOMEM. */
struct server *server_new(struct rpc *rpc, const char *name, const char *full_name,
			  const char *cdi_kind, struct metrics_res *m);

/* Stops serving (cancels calls, removes the socket if it is still ours)
 * and lets go of srv: it is freed once the gRPC thread has finished the
 * last operation on it, and done(data) then runs on the event loop (from
 * rpc_run_jobs) -- never before server_free returns. srv must not be used
 * after this call. */
void server_free(struct server *srv, void (*done)(void *data), void *data);

/* (Re)creates the server on a unix socket at path, replacing any previous
 * one (whose socket file is removed if it is still ours). A stale file at
 * path is removed first. Serving when it returns 0. */
int server_listen(struct server *srv, const char *path);
/* Stops serving and removes the socket. */
void server_stop(struct server *srv);
/* True while the server is up and its socket file is the one it created. */
bool server_socket_ok(struct server *srv);

/* Hands snapshot snap (the reference passes to the server) to the
 * streams. */
void server_publish(struct server *srv, struct snapshot *snap);

#endif
