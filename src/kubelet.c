#include "kubelet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "deviceplugin.pb-c.h"
#include "log.h"

struct kubelet_call {
	struct rpc_tag tag; /* completes on the gRPC thread */
	struct rpc_job job; /* then finishes on the loop */
	struct rpc *rpc;
	grpc_channel *channel;
	grpc_call *call;
	grpc_byte_buffer *req, *resp;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
	kubelet_done_cb done;
	void *data;
};

static void reg_finish(struct rpc_job *job)
{
	struct kubelet_call *rc =
	    (struct kubelet_call *)((char *)job - offsetof(struct kubelet_call, job));
	char *details = grpc_slice_to_c_string(rc->details);
	rc->done(rc->data, (int)rc->status, details ? details : "");
	gpr_free(details);
	if (rc->error_string)
		gpr_free((void *)rc->error_string);
	grpc_slice_unref(rc->details);
	grpc_metadata_array_destroy(&rc->init_md);
	grpc_metadata_array_destroy(&rc->trail_md);
	if (rc->req)
		grpc_byte_buffer_destroy(rc->req);
	if (rc->resp)
		grpc_byte_buffer_destroy(rc->resp);
	grpc_call_unref(rc->call);
	grpc_channel_destroy(rc->channel);
	free(rc);
}

static void reg_complete(struct rpc_tag *tag, bool ok)
{
	struct kubelet_call *rc = (struct kubelet_call *)tag;
	if (!ok && rc->status == GRPC_STATUS_OK)
		rc->status = GRPC_STATUS_UNKNOWN;
	rpc_post(rc->rpc, &rc->job);
}

int kubelet_register(struct rpc *rpc, const char *socket_path, const char *endpoint,
		     const char *resource_name, int timeout_ms, kubelet_done_cb done, void *data,
		     struct kubelet_call **call)
{
	char target[4200];
	int n = snprintf(target, sizeof(target), "unix:%s", socket_path);
	if (n < 0 || (size_t)n >= sizeof(target))
		return -ENAMETOOLONG;

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
	rc->req = rpc_buffer_from(buf, len);
	free(buf);
	rc->tag.fn = reg_complete;
	rc->job.fn = reg_finish;
	rc->rpc = rpc;
	rc->done = done;
	rc->data = data;
	rc->details = grpc_empty_slice();
	grpc_metadata_array_init(&rc->init_md);
	grpc_metadata_array_init(&rc->trail_md);

	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	rc->channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	rc->call = grpc_channel_create_call(
	    rc->channel, NULL, GRPC_PROPAGATE_DEFAULTS, rpc_cq(rpc),
	    grpc_slice_from_static_string("/v1beta1.Registration/Register"), NULL,
	    rpc_deadline_ms(timeout_ms), NULL);

	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = rc->req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &rc->init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &rc->resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &rc->trail_md;
	ops[5].data.recv_status_on_client.status = &rc->status;
	ops[5].data.recv_status_on_client.status_details = &rc->details;
	ops[5].data.recv_status_on_client.error_string = &rc->error_string;
	grpc_call_error e = grpc_call_start_batch(rc->call, ops, 6, &rc->tag, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("register: start_batch failed err=%d", (int)e);
		grpc_call_unref(rc->call);
		grpc_channel_destroy(rc->channel);
		grpc_metadata_array_destroy(&rc->init_md);
		grpc_metadata_array_destroy(&rc->trail_md);
		grpc_byte_buffer_destroy(rc->req);
		free(rc);
		return -EIO;
	}
	if (call)
		*call = rc;
	return 0;
}

void kubelet_cancel(struct kubelet_call *call)
{
	if (call)
		grpc_call_cancel(call->call, NULL);
}
