/* The kubelet's Registration service, as a client: one asynchronous
 * Register call per attempt over the kubelet's unix socket. */
#ifndef UDP_KUBELET_H
#define UDP_KUBELET_H

#include "rpc.h"

#define KUBELET_SOCKET_NAME "kubelet.sock"
#define KUBELET_API_VERSION "v1beta1"

/* status: a grpc_status_code (0 = registered); message: the status details
 * (borrowed for the call). Runs on the event loop. */
typedef void (*kubelet_done_cb)(void *data, int status, const char *message);

struct kubelet_call;

/* Sends RegisterRequest{version v1beta1, endpoint, resource_name, options
 * (pre_start_required, get_preferred_allocation_available)} to the kubelet
 * at socket_path, with a timeout of timeout_ms; done runs on the loop when
 * it ends, and *call (borrowed) is valid until then. 0 or negative errno
 * (then done is never called). */
int kubelet_register(struct rpc *rpc, const char *socket_path, const char *endpoint,
		     const char *resource_name, int timeout_ms, kubelet_done_cb done, void *data,
		     struct kubelet_call **call);

/* Ends a call in flight now (done still runs, with CANCELLED): so that a
 * kubelet that never answers does not hold up a shutdown. */
void kubelet_cancel(struct kubelet_call *call);

#endif
