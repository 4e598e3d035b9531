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
	grpc_channel *channel;
	grpc_call *call;
	grpc_byte_buffer *req, *resp;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
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
			grpc_call_cancel(lc->call, NULL);
			cancelled = true;
		}
	}
}

static void list_call_clear(struct list_call *lc)
{
	if (lc->error_string)
		gpr_free((void *)lc->error_string);
	grpc_slice_unref(lc->details);
	grpc_metadata_array_destroy(&lc->init_md);
	grpc_metadata_array_destroy(&lc->trail_md);
	if (lc->req)
		grpc_byte_buffer_destroy(lc->req);
	if (lc->resp)
		grpc_byte_buffer_destroy(lc->resp);
	if (lc->call)
		grpc_call_unref(lc->call);
	if (lc->channel)
		grpc_channel_destroy(lc->channel);
	if (lc->cq) {
		grpc_completion_queue_shutdown(lc->cq);
		grpc_completion_queue_destroy(lc->cq);
	}
}

/* Starts List and waits for it. 0, or negative errno with why filled. */
static int call_list(struct list_call *lc, const char *target, int timeout_ms,
		     const atomic_bool *stop, char *why, size_t errlen)
{
	static const uint8_t empty[1];
	lc->details = grpc_empty_slice();
	grpc_metadata_array_init(&lc->init_md);
	grpc_metadata_array_init(&lc->trail_md);
	if (!(lc->cq = grpc_completion_queue_create_for_pluck(NULL)) ||
	    !(lc->req = rpc_buffer_from(empty, 0)))
		return -ENOMEM;
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	lc->channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	lc->call =
	    grpc_channel_create_call(lc->channel, NULL, GRPC_PROPAGATE_DEFAULTS, lc->cq,
				     grpc_slice_from_static_string("/v1.PodResourcesLister/List"),
				     NULL, rpc_deadline_ms(timeout_ms), NULL);
	if (!lc->call)
		return -ENOMEM;
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = lc->req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &lc->init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &lc->resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &lc->trail_md;
	ops[5].data.recv_status_on_client.status = &lc->status;
	ops[5].data.recv_status_on_client.status_details = &lc->details;
	ops[5].data.recv_status_on_client.error_string = &lc->error_string;
	if (grpc_call_start_batch(lc->call, ops, 6, lc, NULL) != GRPC_CALL_OK) {
		errbuf_put(why, errlen, "cannot start the call");
		return -EIO;
	}
	if (!wait_batch(lc, stop))
		return -ECANCELED;
	if (lc->status == GRPC_STATUS_OK)
		return 0;
	char *details = grpc_slice_to_c_string(lc->details);
	errbuf_put(why, errlen, "status %d: %s", (int)lc->status, details ? details : "");
	gpr_free(details);
	switch (lc->status) {
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
	char target[4200];
	int n = snprintf(target, sizeof(target), "unix:%s", socket_path);
	if (n < 0 || (size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	struct list_call lc = {0};
	int e = call_list(&lc, target, timeout_ms, stop, why, errlen);
	if (e == 0) {
		size_t len = 0;
		uint8_t *buf = rpc_buffer_read(lc.resp, &len);
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
