#include "podres.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "errbuf.h"
#include "podresources.pb-c.h"
#include "rpc.h"

/* How often a wait for the answer looks at the stop flag. */
#define STOP_POLL_MS 200

void podres_pods_free(struct podres_pod *pods, size_t n)
{
	for (size_t i = 0; pods && i < n; i++) {
		free(pods[i].namespace_);
		free(pods[i].name);
	}
	free(pods);
}

static bool holds(const V1__PodResources *p, const char *resource, const char *id)
{
	for (size_t c = 0; c < p->n_containers; c++) {
		const V1__ContainerResources *cr = p->containers[c];
		for (size_t d = 0; d < cr->n_devices; d++) {
			const V1__ContainerDevices *cd = cr->devices[d];
			if (!cd->resource_name || strcmp(cd->resource_name, resource) != 0)
				continue;
			for (size_t i = 0; i < cd->n_device_ids; i++)
				if (cd->device_ids[i] && strcmp(cd->device_ids[i], id) == 0)
					return true;
		}
	}
	return false;
}

/* The Pods of resp holding (resource, id). 0 or -ENOMEM. */
static int collect(const V1__ListPodResourcesResponse *resp, const char *resource, const char *id,
		   struct podres_pod **out, size_t *n_out)
{
	struct podres_pod *pods = NULL;
	size_t n = 0;
	for (size_t i = 0; i < resp->n_pod_resources; i++) {
		const V1__PodResources *p = resp->pod_resources[i];
		if (!p->name || !p->namespace_ || !holds(p, resource, id))
			continue;
		struct podres_pod *a = reallocarray(pods, n + 1, sizeof(*a));
		if (!a) {
			podres_pods_free(pods, n);
			return -ENOMEM;
		}
		pods = a;
		pods[n].name = strdup(p->name);
		pods[n].namespace_ = strdup(p->namespace_);
		n++;
		if (!pods[n - 1].name || !pods[n - 1].namespace_) {
			podres_pods_free(pods, n);
			return -ENOMEM;
		}
	}
	*out = pods;
	*n_out = n;
	return 0;
}

struct list_call {
	grpc_completion_queue *cq;
	struct rpc_unary u;
};

/* Waits for the batch, cancelling the call when *stop turns true; true
 * when it completed on its own. */
static bool wait_batch(struct list_call *lc, const atomic_bool *stop)
{
	bool cancelled = false;
	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_pluck(lc->cq, lc, rpc_deadline_ms(STOP_POLL_MS), NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			return !cancelled;
		if (!cancelled && stop && atomic_load(stop)) {
			grpc_call_cancel(lc->u.call, NULL);
			cancelled = true;
		}
	}
}

static void list_call_clear(struct list_call *lc)
{
	rpc_unary_clear(&lc->u);
	if (lc->cq) {
		grpc_completion_queue_shutdown(lc->cq);
		grpc_completion_queue_destroy(lc->cq);
	}
}

/* Starts List and waits for it. 0, or negative errno with why filled. */
static int call_list(struct list_call *lc, const char *socket_path, int timeout_ms,
		     const atomic_bool *stop, char *why, size_t errlen)
{
	static const uint8_t empty[1];
	if (!(lc->cq = grpc_completion_queue_create_for_pluck(NULL)))
		return -ENOMEM;
	int e = rpc_unary_start(&lc->u, lc->cq, socket_path, "/v1.PodResourcesLister/List",
				rpc_buffer_from(empty, 0), timeout_ms, lc);
	if (e < 0) {
		errbuf_put(why, errlen, "cannot start the call: %s", strerror(-e));
		return e;
	}
	if (!wait_batch(lc, stop))
		return -ECANCELED;
	if (lc->u.status == GRPC_STATUS_OK)
		return 0;
	char *details = grpc_slice_to_c_string(lc->u.details);
	errbuf_put(why, errlen, "status %d: %s", (int)lc->u.status, details ? details : "");
	gpr_free(details);
	switch (lc->u.status) {
	case GRPC_STATUS_DEADLINE_EXCEEDED:
		return -ETIMEDOUT;
	case GRPC_STATUS_UNAVAILABLE:
		return -ECONNREFUSED;
	default:
		return -EIO;
	}
}

int podres_find(const char *socket_path, const char *resource, const char *id, int timeout_ms,
		const atomic_bool *stop, struct podres_pod **pods, size_t *n_pods, char *why,
		size_t errlen)
{
	if (!socket_path || !resource || !id || !pods || !n_pods)
		return -EINVAL;
	struct list_call lc = {0};
	int e = call_list(&lc, socket_path, timeout_ms, stop, why, errlen);
	if (e == 0) {
		size_t len = 0;
		uint8_t *buf = rpc_buffer_read(lc.u.resp, &len);
		V1__ListPodResourcesResponse *resp =
		    buf ? v1__list_pod_resources_response__unpack(NULL, len, buf) : NULL;
		if (!resp) {
			errbuf_put(why, errlen, "%s", buf ? "undecodable answer" : "no answer");
			e = buf ? -EBADMSG : -EIO;
		} else {
			e = collect(resp, resource, id, pods, n_pods);
			v1__list_pod_resources_response__free_unpacked(resp, NULL);
		}
		free(buf);
	}
	list_call_clear(&lc);
	return e;
}
