/* The server's call state machine, driven by a gRPC core client over a
 * real unix socket: unknown methods, unary calls before any list, bad
 * request bytes, a ListAndWatch stream that gets the first list and every
 * change, and server_free with a stream open (the stream ends, and the
 * server is freed through the loop's job queue only after that). */
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "deviceplugin.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "server.h"
#include "table.h"

static char dir[64], sock[128];

struct client {
	grpc_channel *ch;
	grpc_completion_queue *cq;
};

static void client_open(struct client *c)
{
	char target[160];
	snprintf(target, sizeof(target), "unix:%s", sock);
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	c->ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	c->cq = grpc_completion_queue_create_for_pluck(NULL);
}

static void client_close(struct client *c)
{
	grpc_channel_destroy(c->ch);
	grpc_completion_queue_shutdown(c->cq);
	while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
		   .type != GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(c->cq);
}

static bool run_batch(struct client *c, grpc_call *call, grpc_op *ops, size_t n, void *tag)
{
	if (grpc_call_start_batch(call, ops, n, tag, NULL) != GRPC_CALL_OK)
		return false;
	grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, rpc_deadline_ms(10000), NULL);
	return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* A unary call: the status, and the reply's bytes (malloc'd) if any. */
static grpc_status_code unary(struct client *c, const char *method, const void *req, size_t len,
			      void **reply, size_t *reply_len)
{
	grpc_slice m = grpc_slice_from_static_string(method);
	grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m,
						   NULL, rpc_deadline_ms(10000), NULL);
	grpc_byte_buffer *send = rpc_buffer_from(req, len), *recv = NULL;
	grpc_metadata_array md, tmd;
	grpc_metadata_array_init(&md);
	grpc_metadata_array_init(&tmd);
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = send;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &recv;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
	CHECK(run_batch(c, call, ops, 6, (void *)1));
	*reply = rpc_buffer_read(recv, reply_len);
	if (recv)
		grpc_byte_buffer_destroy(recv);
	grpc_byte_buffer_destroy(send);
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&tmd);
	grpc_call_unref(call);
	return status;
}

/* A snapshot of n devices "d0".."d<n-1>", all healthy (no nodes). */
static struct snapshot *snap_of(struct table *t, size_t n, int64_t now)
{
	struct dev_instance *v = calloc(n ? n : 1, sizeof(*v));
	for (size_t i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "d%zu", i);
		v[i].key = strdup(id);
		v[i].count = 1;
		v[i].ids = calloc(1, sizeof(char *));
		v[i].ids[0] = strdup(id);
	}
	table_update_group(t, 0, v, n, now);
	return table_snapshot(t);
}

static int freed;
static void on_freed(void *data)
{
	(void)data;
	freed++;
}

static void pump_jobs(struct rpc *rpc, int want)
{
	for (int i = 0; i < 500 && freed < want; i++) {
		struct pollfd pfd = {.fd = rpc_job_fd(rpc), .events = POLLIN};
		if (poll(&pfd, 1, 10) > 0)
			rpc_run_jobs(rpc);
	}
}

TEST(unary_calls_and_their_statuses)
{
	struct rpc *rpc = rpc_new();
	CHECK_INT(rpc_start(rpc), 0);
	struct server *srv = server_new(rpc, "serial", "example.com/serial", NULL, NULL);
	CHECK_INT(server_listen(srv, sock), 0);
	CHECK(server_socket_ok(srv));
	struct client c;
	client_open(&c);
	void *reply;
	size_t len;
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/Nope", "", 0, &reply, &len),
		  GRPC_STATUS_UNIMPLEMENTED);
	free(reply);
	/* no list published yet */
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/Allocate", "", 0, &reply, &len),
		  GRPC_STATUS_UNAVAILABLE);
	free(reply);
	struct table *t = table_new("example.com/serial", 1000);
	server_publish(srv, snap_of(t, 2, 1));
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/Allocate", "\xff\xff", 2, &reply, &len),
		  GRPC_STATUS_INVALID_ARGUMENT);
	free(reply);
	/* GetDevicePluginOptions answers both options */
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/GetDevicePluginOptions", "", 0, &reply, &len),
		  GRPC_STATUS_OK);
	V1beta1__DevicePluginOptions *o = v1beta1__device_plugin_options__unpack(NULL, len, reply);
	CHECK(o && o->pre_start_required && o->get_preferred_allocation_available);
	if (o)
		v1beta1__device_plugin_options__free_unpacked(o, NULL);
	free(reply);
	/* an unknown device is refused, a known one answered */
	V1beta1__ContainerAllocateRequest cr = V1BETA1__CONTAINER_ALLOCATE_REQUEST__INIT;
	char *ids[] = {"d1"};
	cr.n_devices_ids = 1;
	cr.devices_ids = ids;
	V1beta1__ContainerAllocateRequest *crs[] = {&cr};
	V1beta1__AllocateRequest req = V1BETA1__ALLOCATE_REQUEST__INIT;
	req.n_container_requests = 1;
	req.container_requests = crs;
	uint8_t buf[256];
	size_t n = v1beta1__allocate_request__pack(&req, buf);
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/Allocate", buf, n, &reply, &len),
		  GRPC_STATUS_OK);
	free(reply);
	ids[0] = "d7";
	n = v1beta1__allocate_request__pack(&req, buf);
	CHECK_INT(unary(&c, "/v1beta1.DevicePlugin/Allocate", buf, n, &reply, &len),
		  GRPC_STATUS_NOT_FOUND);
	free(reply);
	client_close(&c);
	freed = 0;
	server_free(srv, on_freed, NULL);
	CHECK_INT(freed, 0); /* never before it returns: through the loop */
	pump_jobs(rpc, 1);
	CHECK_INT(freed, 1);
	struct stat st;
	CHECK(stat(sock, &st) < 0); /* the socket went with it */
	table_free(t);
	rpc_free(rpc);
}

/* Reads the next ListAndWatch message of call: its device count, or -1. */
static int next_list(struct client *c, grpc_call *call)
{
	grpc_byte_buffer *recv = NULL;
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &recv;
	if (!run_batch(c, call, &op, 1, (void *)2) || !recv)
		return -1;
	size_t len;
	void *data = rpc_buffer_read(recv, &len);
	grpc_byte_buffer_destroy(recv);
	V1beta1__ListAndWatchResponse *r =
	    v1beta1__list_and_watch_response__unpack(NULL, len, data);
	free(data);
	int count = r ? (int)r->n_devices : -1;
	if (r)
		v1beta1__list_and_watch_response__free_unpacked(r, NULL);
	return count;
}

TEST(stream_follows_publications_and_ends_with_the_server)
{
	struct rpc *rpc = rpc_new();
	CHECK_INT(rpc_start(rpc), 0);
	struct server *srv = server_new(rpc, "serial", "example.com/serial", NULL, NULL);
	CHECK_INT(server_listen(srv, sock), 0);
	struct table *t = table_new("example.com/serial", 1000);
	server_publish(srv, snap_of(t, 1, 1));
	struct client c;
	client_open(&c);
	grpc_slice m = grpc_slice_from_static_string("/v1beta1.DevicePlugin/ListAndWatch");
	grpc_call *call = grpc_channel_create_call(c.ch, NULL, GRPC_PROPAGATE_DEFAULTS, c.cq, m,
						   NULL, rpc_deadline_ms(20000), NULL);
	grpc_byte_buffer *empty = rpc_buffer_from("", 0);
	grpc_metadata_array md;
	grpc_metadata_array_init(&md);
	grpc_op ops[4];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = empty;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
	CHECK(run_batch(&c, call, ops, 4, (void *)3));
	CHECK_INT(next_list(&c, call), 1);
	server_publish(srv, snap_of(t, 3, 2));
	CHECK_INT(next_list(&c, call), 3);
	/* the server goes while the stream is open: the stream ends */
	freed = 0;
	server_free(srv, on_freed, NULL);
	CHECK_INT(next_list(&c, call), -1);
	grpc_status_code status = GRPC_STATUS_OK;
	grpc_metadata_array tmd;
	grpc_metadata_array_init(&tmd);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	grpc_slice details = grpc_empty_slice();
	ops[0].data.recv_status_on_client.status = &status;
	ops[0].data.recv_status_on_client.status_details = &details;
	ops[0].data.recv_status_on_client.trailing_metadata = &tmd;
	CHECK(run_batch(&c, call, ops, 1, (void *)4));
	grpc_slice_unref(details);
	CHECK(status != GRPC_STATUS_OK);
	pump_jobs(rpc, 1);
	CHECK_INT(freed, 1);
	grpc_metadata_array_destroy(&md);
	grpc_metadata_array_destroy(&tmd);
	grpc_byte_buffer_destroy(empty);
	grpc_call_unref(call);
	client_close(&c);
	table_free(t);
	rpc_free(rpc);
}

int main(void)
{
	log_set_level(LOG_LEVEL_NONE);
	snprintf(dir, sizeof(dir), "/tmp/udp-srv-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(sock, sizeof(sock), "%s/s.sock", dir);
	RUN(unary_calls_and_their_statuses);
	RUN(stream_follows_publications_and_ends_with_the_server);
	rmdir(dir);
	return CHECK_SUMMARY();
}
