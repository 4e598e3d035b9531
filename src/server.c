#include "server.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>

#include "alloc.h"
#include "deviceplugin.pb-c.h"
#include "fsutil.h"
#include "log.h"
#include "metrics.h"
#include "sizelimits.h"

/* The largest request accepted: 1 MiB holds ~20,000 device IDs. */
#define SERVER_MAX_REQUEST (1 << 20)

enum method {
	M_UNKNOWN = 0,
	M_OPTIONS,
	M_LIST_AND_WATCH,
	M_PREFERRED,
	M_ALLOCATE,
	M_PRESTART,
};

static const struct {
	const char *path;
	enum method m;
} methods[] = {
    {"/v1beta1.DevicePlugin/GetDevicePluginOptions", M_OPTIONS},
    {"/v1beta1.DevicePlugin/ListAndWatch", M_LIST_AND_WATCH},
    {"/v1beta1.DevicePlugin/GetPreferredAllocation", M_PREFERRED},
    {"/v1beta1.DevicePlugin/Allocate", M_ALLOCATE},
    {"/v1beta1.DevicePlugin/PreStartContainer", M_PRESTART},
};

enum call_state {
	S_REQUESTED, /* waiting for grpc_server_request_call */
	S_RECEIVING, /* unary: reading the request */
	S_FINISHING, /* unary: response and status sent */
	S_STREAMING, /* ListAndWatch */
};

struct gsrv;

struct call {
	struct rpc_tag tag;
	struct rpc_tag close_tag; /* streams: RECV_CLOSE_ON_SERVER */
	struct gsrv *gs;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	enum call_state state;
	enum method method;
	grpc_byte_buffer *recv_bb;
	grpc_byte_buffer *send_bb;
	grpc_slice status_details;
	bool has_status_details;
	int cancelled;
	/* streams, under server.mu */
	bool in_flight, closed;
	bool sent_any;	   /* initial metadata and a first list went out */
	uint64_t sent_gen; /* generation of the last list sent */
	struct call *prev, *next;
};

/* One grpc_server incarnation of a resource; replaced when the kubelet
 * deletes our socket. Freed once shut down and its last call is gone. */
struct gsrv {
	struct server *srv;
	grpc_server *server;
	struct rpc_tag shutdown_tag;
	unsigned calls;
	bool shutting_down, shut_down;
};

/* Freed on the event loop once its owner let go (server_free) and every
 * gsrv is gone: a reference for the owner and one per live gsrv. */
struct server {
	struct rpc *rpc;
	pthread_mutex_t mu; /* everything in here, its gsrvs and their calls */
	unsigned refs;
	bool posted; /* the last reference went: the free job is posted */
	struct rpc_job free_job;
	void (*done)(void *data);
	void *done_data;
	struct snapshot *snap;
	grpc_byte_buffer *lw_msg; /* ListAndWatchResponse of snap */
	uint8_t *lw_bytes;	  /* the same, packed: to compare the next one with */
	size_t lw_len;
	struct call *streams;
	size_t n_streams;
	struct gsrv *gs;
	char *path;
	dev_t dev;
	ino_t ino;
	struct metrics_res *metrics; /* may be NULL */
	char *name;		     /* config name, for env vars */
	char *full_name;	     /* domain/name, for logs */
	char *cdi_kind;		     /* NULL, or Allocate names CDI devices of this kind */
};

static void call_fn(struct rpc_tag *tag, bool ok);
static void close_fn(struct rpc_tag *tag, bool ok);

/* ---- lifetime ---- */

/* Runs on the event loop: nothing on the gRPC thread holds srv any more. */
static void server_destroy(struct rpc_job *job)
{
	struct server *srv = (struct server *)((char *)job - offsetof(struct server, free_job));
	void (*done)(void *) = srv->done;
	void *data = srv->done_data;
	snapshot_unref(srv->snap);
	if (srv->lw_msg)
		grpc_byte_buffer_destroy(srv->lw_msg);
	free(srv->lw_bytes);
	free(srv->name);
	free(srv->full_name);
	free(srv->cdi_kind);
	pthread_mutex_destroy(&srv->mu);
	free(srv);
	if (done)
		done(data);
}

/* Every unlock goes through here: when the last reference went while the
 * lock was held, the free is handed to the loop -- after the unlock, the
 * last time this thread touches srv. */
static void unlock(struct server *srv)
{
	bool last = srv->refs == 0 && !srv->posted;
	if (last)
		srv->posted = true;
	pthread_mutex_unlock(&srv->mu);
	if (last)
		rpc_post(srv->rpc, &srv->free_job);
}

static void gsrv_maybe_free(struct gsrv *gs)
{
	/* under mu */
	if (!gs->shut_down || gs->calls)
		return;
	grpc_server_destroy(gs->server);
	struct server *srv = gs->srv;
	free(gs);
	assert(srv->refs > 0);
	srv->refs--;
}

static void call_free(struct call *c)
{
	/* under mu */
	struct gsrv *gs = c->gs;
	if (c->call)
		grpc_call_unref(c->call);
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->recv_bb)
		grpc_byte_buffer_destroy(c->recv_bb);
	if (c->send_bb)
		grpc_byte_buffer_destroy(c->send_bb);
	if (c->has_status_details)
		grpc_slice_unref(c->status_details);
	free(c);
	gs->calls--;
	gsrv_maybe_free(gs);
}

/* Asks for the next incoming call on gs; under mu. */
static void request_call(struct gsrv *gs)
{
	if (gs->shutting_down)
		return;
	struct call *c = calloc(1, sizeof(*c));
	if (!c) {
		log_error("server out of memory resource=%s", gs->srv->full_name);
		return;
	}
	c->tag.fn = call_fn;
	c->close_tag.fn = close_fn;
	c->gs = gs;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	gs->calls++;
	grpc_completion_queue *cq = rpc_cq(gs->srv->rpc);
	grpc_call_error e =
	    grpc_server_request_call(gs->server, &c->call, &c->details, &c->md, cq, cq, &c->tag);
	if (e != GRPC_CALL_OK) {
		log_error("grpc_server_request_call failed err=%d", (int)e);
		call_free(c);
	}
}

/* ---- messages ---- */

static uint8_t *pack_bytes(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf)
		protobuf_c_message_pack(m, buf);
	return buf;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m)
{
	size_t len;
	uint8_t *buf = pack_bytes(m, &len);
	if (!buf)
		return NULL;
	grpc_byte_buffer *bb = rpc_buffer_from(buf, len);
	free(buf);
	return bb;
}

/* The ListAndWatchResponse of snap, packed (malloc'd, *len bytes). */
static uint8_t *list_bytes(const struct snapshot *snap, size_t *len)
{
	V1beta1__ListAndWatchResponse msg = V1BETA1__LIST_AND_WATCH_RESPONSE__INIT;
	size_t n = snap ? snap->n_devices : 0;
	V1beta1__Device *devs = calloc(n ? n : 1, sizeof(*devs));
	V1beta1__Device **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
	uint8_t *bytes = NULL;
	if (devs && ptrs) {
		for (size_t i = 0; i < n; i++) {
			v1beta1__device__init(&devs[i]);
			devs[i].id = (char *)snap->devices[i].id;
			devs[i].health =
			    snap->devices[i].instance->healthy ? "Healthy" : "Unhealthy";
			ptrs[i] = &devs[i];
		}
		msg.n_devices = n;
		msg.devices = ptrs;
		bytes = pack_bytes(&msg.base, len);
	}
	free(devs);
	free(ptrs);
	return bytes;
}

/* ---- streams ---- */

/* Sends the newest list on stream c if it has not seen it; under mu. */
static void stream_send(struct call *c)
{
	struct server *srv = c->gs->srv;
	if (c->in_flight || c->closed || !srv->lw_msg)
		return;
	uint64_t gen = srv->snap ? srv->snap->generation : 0;
	if (c->sent_any && gen <= c->sent_gen)
		return;
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->sent_any) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
	}
	c->send_bb = grpc_byte_buffer_copy(srv->lw_msg);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = c->send_bb;
	n++;
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->tag, NULL);
	if (e != GRPC_CALL_OK) {
		log_warn("ListAndWatch send failed resource=%s err=%d", srv->full_name, (int)e);
		grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
		return;
	}
	c->in_flight = true;
	c->sent_any = true;
	c->sent_gen = gen;
	log_debug("ListAndWatch send resource=%s devices=%zu generation=%llu", srv->full_name,
		  srv->snap ? srv->snap->n_devices : 0, (unsigned long long)c->sent_gen);
}

static void stream_unlink(struct call *c)
{
	struct server *srv = c->gs->srv;
	if (c->prev)
		c->prev->next = c->next;
	else if (srv->streams == c)
		srv->streams = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
	srv->n_streams--;
	if (srv->metrics)
		atomic_store(&srv->metrics->streams, srv->n_streams);
}

static void stream_start(struct call *c)
{
	struct server *srv = c->gs->srv;
	c->state = S_STREAMING;
	c->next = srv->streams;
	if (srv->streams)
		srv->streams->prev = c;
	srv->streams = c;
	srv->n_streams++;
	if (srv->metrics)
		atomic_store(&srv->metrics->streams, srv->n_streams);
	log_info("ListAndWatch opened resource=%s streams=%zu", srv->full_name, srv->n_streams);
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	if (grpc_call_start_batch(c->call, &op, 1, &c->close_tag, NULL) != GRPC_CALL_OK) {
		stream_unlink(c);
		call_free(c);
		return;
	}
	stream_send(c);
}

/* The stream ended (client went away or server shutdown). */
static void close_fn(struct rpc_tag *tag, bool ok)
{
	(void)ok;
	struct call *c = (struct call *)((char *)tag - offsetof(struct call, close_tag));
	struct server *srv = c->gs->srv;
	pthread_mutex_lock(&srv->mu);
	c->closed = true;
	stream_unlink(c);
	log_info("ListAndWatch closed resource=%s streams=%zu", srv->full_name, srv->n_streams);
	if (!c->in_flight)
		call_free(c);
	unlock(srv);
}

static void stream_sent(struct call *c, bool ok)
{
	c->in_flight = false;
	if (c->send_bb) {
		grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
	}
	if (c->closed) {
		call_free(c);
		return;
	}
	if (ok)
		stream_send(c); /* a newer snapshot may have arrived meanwhile */
}

/* ---- unary calls ---- */

static void finish(struct call *c, grpc_byte_buffer *reply, grpc_status_code code,
		   const char *details)
{
	grpc_op ops[4];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
	if (reply) {
		c->send_bb = reply;
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n++].data.send_message.send_message = reply;
	}
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = code;
	if (details) {
		c->status_details = grpc_slice_from_copied_string(details);
		c->has_status_details = true;
		ops[n].data.send_status_from_server.status_details = &c->status_details;
	}
	n++;
	ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
	c->state = S_FINISHING;
	if (grpc_call_start_batch(c->call, ops, n, &c->tag, NULL) != GRPC_CALL_OK)
		call_free(c);
}

static grpc_status_code status_of(int err)
{
	switch (err) {
	case -ENOENT:
		return GRPC_STATUS_NOT_FOUND;
	case -EBUSY:
		return GRPC_STATUS_FAILED_PRECONDITION;
	case -ENOMEM:
		return GRPC_STATUS_RESOURCE_EXHAUSTED;
	case -EINVAL:
		return GRPC_STATUS_INVALID_ARGUMENT;
	default:
		return GRPC_STATUS_FAILED_PRECONDITION;
	}
}

/* One line per container (the first few IDs, then how many more): a
 * request of 40,000 IDs must not write 40,000 lines. */
static void log_allocate(const char *full_name, const V1beta1__AllocateRequest *req, int r)
{
	enum { MAX_CONTAINERS = 16, MAX_IDS = 8 };
	for (size_t i = 0; i < req->n_container_requests && i < MAX_CONTAINERS; i++) {
		const V1beta1__ContainerAllocateRequest *cr = req->container_requests[i];
		char ids[512] = "";
		size_t len = 0;
		for (size_t k = 0; k < cr->n_devices_ids && k < MAX_IDS; k++) {
			int n = snprintf(ids + len, sizeof(ids) - len, "%s%s", k ? "," : "",
					 cr->devices_ids[k]);
			if (n < 0 || (size_t)n >= sizeof(ids) - len)
				break; /* the line says how many there were */
			len += (size_t)n;
		}
		log_info("allocate resource=%s container=%zu ids=%s count=%zu result=%s", full_name,
			 i, ids, cr->n_devices_ids, r ? "refused" : "ok");
	}
	if (req->n_container_requests > MAX_CONTAINERS)
		log_info("allocate resource=%s containers=%zu (the first %d logged)", full_name,
			 req->n_container_requests, MAX_CONTAINERS);
}

/* Computes the answer of a unary call from its request bytes. Runs without
 * the lock, on its own snapshot reference. */
static void handle_unary(struct call *c, struct snapshot *snap, const char *name,
			 const char *cdi_kind, const char *full_name, const uint8_t *data,
			 size_t len)
{
	char err[512] = "";
	grpc_byte_buffer *reply = NULL;
	int r = 0;
	switch (c->method) {
	case M_OPTIONS: {
		V1beta1__DevicePluginOptions o = V1BETA1__DEVICE_PLUGIN_OPTIONS__INIT;
		o.pre_start_required = true;
		o.get_preferred_allocation_available = true;
		reply = pack(&o.base);
		break;
	}
	case M_ALLOCATE: {
		V1beta1__AllocateRequest *req = v1beta1__allocate_request__unpack(NULL, len, data);
		V1beta1__AllocateResponse *resp = NULL;
		if (!req) {
			r = -EINVAL;
			snprintf(err, sizeof(err), "malformed AllocateRequest");
		} else if ((r = alloc_allocate(snap, name, cdi_kind, req, &resp, err,
					       sizeof(err))) == 0) {
			reply = pack(&resp->base);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		struct metrics_res *mr = c->gs->srv->metrics;
		if (mr) {
			atomic_fetch_add(&mr->allocate_calls, 1);
			if (r < 0)
				atomic_fetch_add(&mr->allocate_errors, 1);
		}
		if (req) {
			log_allocate(full_name, req, r);
			v1beta1__allocate_request__free_unpacked(req, NULL);
		}
		break;
	}
	case M_PREFERRED: {
		V1beta1__PreferredAllocationRequest *req =
		    v1beta1__preferred_allocation_request__unpack(NULL, len, data);
		V1beta1__PreferredAllocationResponse *resp = NULL;
		if (!req) {
			r = -EINVAL;
			snprintf(err, sizeof(err), "malformed PreferredAllocationRequest");
		} else if ((r = alloc_preferred(snap, req, &resp, err, sizeof(err))) == 0) {
			reply = pack(&resp->base);
			protobuf_c_message_free_unpacked(&resp->base, NULL);
		}
		if (req)
			v1beta1__preferred_allocation_request__free_unpacked(req, NULL);
		break;
	}
	case M_PRESTART: {
		V1beta1__PreStartContainerRequest *req =
		    v1beta1__pre_start_container_request__unpack(NULL, len, data);
		if (!req) {
			r = -EINVAL;
			snprintf(err, sizeof(err), "malformed PreStartContainerRequest");
		} else if ((r = alloc_prestart(snap, req, err, sizeof(err))) == 0) {
			V1beta1__PreStartContainerResponse o =
			    V1BETA1__PRE_START_CONTAINER_RESPONSE__INIT;
			reply = pack(&o.base);
		}
		if (req)
			v1beta1__pre_start_container_request__free_unpacked(req, NULL);
		break;
	}
	default:
		r = -EINVAL;
		break;
	}
	if (r == 0 && !reply) {
		r = -ENOMEM;
		snprintf(err, sizeof(err), "out of memory");
	}
	if (r < 0)
		log_warn("request refused resource=%s method=%s reason=\"%s\"", full_name,
			 methods[c->method - 1].path, err);
	struct server *srv = c->gs->srv;
	pthread_mutex_lock(&srv->mu);
	if (r < 0)
		finish(c, NULL, status_of(r), err);
	else
		finish(c, reply, GRPC_STATUS_OK, NULL);
	unlock(srv);
}

static enum method method_of(const grpc_slice *path)
{
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (grpc_slice_str_cmp(*path, methods[i].path) == 0)
			return methods[i].m;
	return M_UNKNOWN;
}

static void on_request(struct call *c)
{
	/* under mu */
	request_call(c->gs); /* keep one request outstanding */
	c->method = method_of(&c->details.method);
	if (c->method == M_LIST_AND_WATCH) {
		stream_start(c);
		return;
	}
	if (c->method == M_UNKNOWN) {
		char *m = grpc_slice_to_c_string(c->details.method);
		log_info("unknown method called method=%s", m);
		char msg[300];
		snprintf(msg, sizeof(msg), "method %s is not implemented", m);
		gpr_free(m);
		finish(c, NULL, GRPC_STATUS_UNIMPLEMENTED, msg);
		return;
	}
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->recv_bb;
	c->state = S_RECEIVING;
	if (grpc_call_start_batch(c->call, &op, 1, &c->tag, NULL) != GRPC_CALL_OK)
		call_free(c);
}

static void call_fn(struct rpc_tag *tag, bool ok)
{
	struct call *c = (struct call *)tag;
	struct server *srv = c->gs->srv;
	pthread_mutex_lock(&srv->mu);
	switch (c->state) {
	case S_REQUESTED:
		if (!ok) /* server shutting down */
			call_free(c);
		else
			on_request(c);
		break;
	case S_RECEIVING: {
		if (!ok || !c->recv_bb) {
			finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
			break;
		}
		struct snapshot *snap = snapshot_ref(srv->snap);
		unlock(srv);
		size_t len;
		uint8_t *data = rpc_buffer_read(c->recv_bb, &len);
		if (!data) {
			pthread_mutex_lock(&srv->mu);
			finish(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
			snapshot_unref(snap);
			break;
		}
		if (snap)
			handle_unary(c, snap, srv->name, srv->cdi_kind, srv->full_name, data, len);
		else {
			pthread_mutex_lock(&srv->mu);
			finish(c, NULL, GRPC_STATUS_UNAVAILABLE, "device list not ready");
			unlock(srv);
		}
		free(data);
		snapshot_unref(snap);
		return;
	}
	case S_FINISHING:
		call_free(c);
		break;
	case S_STREAMING:
		stream_sent(c, ok);
		break;
	}
	unlock(srv);
}

/* ---- the server ---- */

struct server *server_new(struct rpc *rpc, const char *name, const char *full_name,
			  const char *cdi_kind, struct metrics_res *m)
{
	struct server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->rpc = rpc;
	srv->refs = 1; /* the owner's */
	srv->free_job.fn = server_destroy;
	srv->metrics = m;
	srv->name = strdup(name);
	srv->full_name = strdup(full_name);
	srv->cdi_kind = cdi_kind ? strdup(cdi_kind) : NULL;
	if (!srv->name || !srv->full_name || (cdi_kind && !srv->cdi_kind)) {
		free(srv->name);
		free(srv->full_name);
		free(srv->cdi_kind);
		free(srv);
		return NULL;
	}
	pthread_mutex_init(&srv->mu, NULL);
	return srv;
}

static void shutdown_fn(struct rpc_tag *tag, bool ok)
{
	(void)ok;
	struct gsrv *gs = (struct gsrv *)((char *)tag - offsetof(struct gsrv, shutdown_tag));
	struct server *srv = gs->srv;
	pthread_mutex_lock(&srv->mu);
	gs->shut_down = true;
	gsrv_maybe_free(gs);
	unlock(srv);
}

/* Starts shutting down the current grpc_server; under mu. */
static void srv_shutdown(struct server *srv)
{
	struct gsrv *gs = srv->gs;
	if (!gs)
		return;
	srv->gs = NULL;
	gs->shutting_down = true;
	grpc_server_shutdown_and_notify(gs->server, rpc_cq(srv->rpc), &gs->shutdown_tag);
	grpc_server_cancel_all_calls(gs->server);
}

static void remove_socket(struct server *srv)
{
	if (!srv->path)
		return;
	struct stat st;
	/* Remove it only if it is still the file we created. */
	if (stat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		(void)unlink(srv->path); /* gone meanwhile: nothing to do */
	free(srv->path);
	srv->path = NULL;
}

int server_listen(struct server *srv, const char *path)
{
	char addr[4200];
	int n = snprintf(addr, sizeof(addr), "unix:%s", path);
	if (n < 0 || (size_t)n >= sizeof(addr))
		return -ENAMETOOLONG;
	struct gsrv *gs = calloc(1, sizeof(*gs));
	char *pathdup = strdup(path);
	if (!gs || !pathdup) {
		free(gs);
		free(pathdup);
		return -ENOMEM;
	}
	pthread_mutex_lock(&srv->mu);
	srv_shutdown(srv);
	remove_socket(srv);
	unlock(srv);

	/* A stale socket of an earlier run goes; one that answers is another
	 * process's, never ours to remove. */
	int state = fsutil_socket_state(path);
	if (state == 2 || state == -ENOTSOCK) {
		free(gs);
		free(pathdup);
		return state == 2 ? -EADDRINUSE : -EEXIST;
	}
	if (state == 1)
		(void)unlink(path); /* gone meanwhile: fine */
	gs->srv = srv;
	gs->shutdown_tag.fn = shutdown_fn;
	/* The kubelet's requests are small (IDs of one node's devices): a
	 * bound on what one call may make us decode, copy and look up. */
	grpc_arg arg = {.type = GRPC_ARG_INTEGER,
			.key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
			.value.integer = SERVER_MAX_REQUEST};
	grpc_channel_args args = {.num_args = 1, .args = &arg};
	gs->server = grpc_server_create(&args, NULL);
	grpc_server_register_completion_queue(gs->server, rpc_cq(srv->rpc), NULL);
	grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
	/* The socket is the kubelet's (root) alone, whatever the umask: bind
	 * creates it under this mask (no other thread of ours creates files),
	 * and it is set again below in case the library binds later. */
	mode_t mask = umask(0177);
	int port = grpc_server_add_http2_port(gs->server, addr, creds);
	umask(mask);
	grpc_server_credentials_release(creds);
	if (port == 0) {
		grpc_server_destroy(gs->server);
		free(gs);
		free(pathdup);
		return -EADDRNOTAVAIL;
	}
	grpc_server_start(gs->server);
	struct stat st;
	int e = stat(path, &st) < 0 || chmod(path, 0600) < 0 ? -errno : 0;
	pthread_mutex_lock(&srv->mu);
	srv->refs++; /* the gsrv's, until gsrv_maybe_free */
	srv->gs = gs;
	if (e < 0) {
		srv_shutdown(srv);
		free(pathdup);
	} else {
		srv->path = pathdup;
		srv->dev = st.st_dev;
		srv->ino = st.st_ino;
		request_call(gs);
	}
	unlock(srv);
	return e;
}

void server_stop(struct server *srv)
{
	pthread_mutex_lock(&srv->mu);
	srv_shutdown(srv);
	remove_socket(srv);
	unlock(srv);
}

bool server_socket_ok(struct server *srv)
{
	pthread_mutex_lock(&srv->mu);
	struct stat st;
	bool ok = srv->gs && srv->path && stat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
		  st.st_ino == srv->ino;
	unlock(srv);
	return ok;
}

void server_publish(struct server *srv, struct snapshot *snap)
{
	/* Serialise once, outside the lock; every stream shares the bytes. */
	size_t len = 0;
	uint8_t *bytes = list_bytes(snap, &len);
	if (bytes && len > LIMIT_LIST_BYTES) {
		/* The table keeps lists under the limit: this is a bug, and a
		 * list the kubelet refuses would leave it with no devices. */
		log_error("list not sent resource=%s bytes=%zu max_list_bytes=%d: the last one "
			  "stays",
			  srv->full_name, len, LIMIT_LIST_BYTES);
		free(bytes);
		snapshot_unref(snap);
		return;
	}
	grpc_byte_buffer *msg = bytes ? rpc_buffer_from(bytes, len) : NULL;
	pthread_mutex_lock(&srv->mu);
	struct snapshot *old = srv->snap;
	grpc_byte_buffer *old_msg = srv->lw_msg;
	uint8_t *old_bytes = srv->lw_bytes;
	/* The kubelet sees IDs and health only: a change it cannot see (a
	 * node list, a gone device that was already Unhealthy) sends nothing
	 * to a stream that has the previous list. */
	bool same =
	    old && old_bytes && bytes && len == srv->lw_len && memcmp(bytes, old_bytes, len) == 0;
	uint64_t old_gen = old ? old->generation : 0;
	srv->snap = snap;
	srv->lw_msg = msg;
	srv->lw_bytes = bytes;
	srv->lw_len = len;
	for (struct call *c = srv->streams; c; c = c->next) {
		if (same && c->sent_any && c->sent_gen == old_gen && snap)
			c->sent_gen = snap->generation;
		stream_send(c);
	}
	unlock(srv);
	snapshot_unref(old);
	free(old_bytes);
	if (old_msg)
		grpc_byte_buffer_destroy(old_msg);
}

void server_free(struct server *srv, void (*done)(void *data), void *data)
{
	if (!srv) {
		if (done)
			done(data);
		return;
	}
	pthread_mutex_lock(&srv->mu);
	srv->done = done;
	srv->done_data = data;
	srv_shutdown(srv);
	remove_socket(srv);
	assert(srv->refs > 0);
	srv->refs--; /* the owner's */
	unlock(srv);
}
