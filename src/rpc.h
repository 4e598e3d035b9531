/* The gRPC runtime: gRPC core initialised once, one completion queue and
 * the one thread that drains it, for every resource server and for the
 * registration client. Objects that start gRPC operations embed an
 * rpc_tag; its fn runs on the gRPC thread when the operation completes.
 * Work that must happen on the event loop is handed over with rpc_post. */
#ifndef UDP_RPC_H
#define UDP_RPC_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stdint.h>

struct rpc;

struct rpc_tag {
	/* ok: the operation succeeded (see grpc_completion_queue_next). */
	void (*fn)(struct rpc_tag *tag, bool ok);
};

/* A unit of work posted from the gRPC thread to the event loop. */
struct rpc_job {
	void (*fn)(struct rpc_job *job); /* runs on the loop; owns job */
};

/* grpc_init, the completion queue and the hand-off pipe; NULL on error. */
struct rpc *rpc_new(void);
/* Starts the gRPC thread. 0 or negative errno. */
int rpc_start(struct rpc *rpc);
/* Shuts the queue down, joins the thread, grpc_shutdown. Every server must
 * have been shut down and every call finished before. NULL: no-op. */
void rpc_free(struct rpc *rpc);

grpc_completion_queue *rpc_cq(struct rpc *rpc);

/* The read end of the hand-off pipe: the loop watches it for EPOLLIN and
 * calls rpc_run_jobs. */
int rpc_job_fd(struct rpc *rpc);
void rpc_run_jobs(struct rpc *rpc);
/* From any thread: queue job for the loop. */
void rpc_post(struct rpc *rpc, struct rpc_job *job);

/* A unary call as a client, over a unix socket: the state the call writes
 * into. Zeroed, then rpc_unary_start; rpc_unary_clear releases it (also
 * after a failed start). */
struct rpc_unary {
	grpc_channel *channel;
	grpc_call *call;
	grpc_byte_buffer *req, *resp;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	const char *error_string;
	bool started;
};

/* Dials socket_path and starts method ("/pkg.Service/Method") with req
 * (owned by u from now on, also on error), a deadline timeout_ms away; the
 * whole call completes as one batch with tag on cq. 0, -ENAMETOOLONG,
 * -ENOMEM or -EIO. */
int rpc_unary_start(struct rpc_unary *u, grpc_completion_queue *cq, const char *socket_path,
		    const char *method, grpc_byte_buffer *req, int64_t timeout_ms, void *tag);
void rpc_unary_clear(struct rpc_unary *u);

/* Helpers shared by the server and the client. */
grpc_byte_buffer *rpc_buffer_from(const void *data, size_t len);
/* Copies a received message into one malloc'd block of *len bytes (an
 * empty message gives a 1-byte block and *len 0). NULL when bb is NULL
 * (no message) or on ENOMEM. The caller frees. */
void *rpc_buffer_read(grpc_byte_buffer *bb, size_t *len);
gpr_timespec rpc_deadline_ms(int64_t ms);

#endif
