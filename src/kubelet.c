#include "kubelet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/alloc.h>

#include "deviceplugin.pb-c.h"
#include "log.h"

struct kubelet_call {
	struct rpc_tag tag; /* completes on the gRPC thread */
	struct rpc_job job; /* then finishes on the loop */
	struct rpc *rpc;
	struct rpc_unary u;
	kubelet_done_cb done;
	void *data;
};

static void reg_finish(struct rpc_job *job)
{
	struct kubelet_call *rc =
	    (struct kubelet_call *)((char *)job - offsetof(struct kubelet_call, job));
	char *details = grpc_slice_to_c_string(rc->u.details);
	rc->done(rc->data, (int)rc->u.status, details ? details : "");
	gpr_free(details);
	rpc_unary_clear(&rc->u);
	free(rc);
}

static void reg_complete(struct rpc_tag *tag, bool ok)
{
	struct kubelet_call *rc = (struct kubelet_call *)tag;
	if (!ok && rc->u.status == GRPC_STATUS_OK)
		rc->u.status = GRPC_STATUS_UNKNOWN;
	rpc_post(rc->rpc, &rc->job);
}

int kubelet_register(struct rpc *rpc, const char *socket_path, const char *endpoint,
		     const char *resource_name, int timeout_ms, kubelet_done_cb done, void *data,
		     struct kubelet_call **call)
{
	V1beta1__DevicePluginOptions opts = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
	opts.pre_start_required = true;
	opts.get_preferred_allocation_available = true;
	V1beta1__RegisterRequest req = V1BETA1__REGISTER_REQUEST__INIT;
	req.version = KUBELET_API_VERSION;
	req.endpoint = (char *)endpoint;
	req.resource_name = (char *)resource_name;
	req.options = &opts;
	size_t len = v1beta1__register_request__get_packed_size(&req);
	uint8_t *buf = malloc(len ? len : 1);
	struct kubelet_call *rc = calloc(1, sizeof(*rc));
	if (!buf || !rc) {
		free(buf);
		free(rc);
		return -ENOMEM;
	}
	v1beta1__register_request__pack(&req, buf);
	grpc_byte_buffer *bb = rpc_buffer_from(buf, len);
	free(buf);
	rc->tag.fn = reg_complete;
	rc->job.fn = reg_finish;
	rc->rpc = rpc;
	rc->done = done;
	rc->data = data;
	int e = rpc_unary_start(&rc->u, rpc_cq(rpc), socket_path, "/v1beta1.Registration/Register",
				bb, timeout_ms, &rc->tag);
	if (e < 0) {
		rpc_unary_clear(&rc->u);
		free(rc);
		return e;
	}
	if (call)
		*call = rc;
	return 0;
}

void kubelet_cancel(struct kubelet_call *call)
{
	if (call)
		grpc_call_cancel(call->u.call, NULL);
}
