#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct rpc {
	grpc_completion_queue *cq;
	pthread_t thread;
	bool started;
	int pipe_rd, pipe_wr;
};

/* gRPC core's own log lines go through ours, one level lower: its errors
 * are usually a peer going away, which we report ourselves. */
static void grpc_log_sink(gpr_log_func_args *args)
{
	enum log_level lvl =
	    args->severity == GPR_LOG_SEVERITY_ERROR ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG;
	log_write(lvl, "grpc file=%s:%d msg=\"%s\"", args->file, args->line, args->message);
}

struct rpc *rpc_new(void)
{
	struct rpc *rpc = calloc(1, sizeof(*rpc));
	if (!rpc)
		return NULL;
	int p[2] = {-1, -1};
	/* Only the read end is non-blocking: the loop drains it; a writer
	 * (the gRPC thread) may wait for room rather than lose a job. */
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;
		if (p[0] >= 0) {
			close(p[0]);
			close(p[1]);
		}
		free(rpc);
		errno = e;
		return NULL;
	}
	rpc->pipe_rd = p[0];
	rpc->pipe_wr = p[1];
	gpr_set_log_function(grpc_log_sink);
	gpr_set_log_verbosity(GPR_LOG_SEVERITY_ERROR);
	grpc_init();
	rpc->cq = grpc_completion_queue_create_for_next(NULL);
	return rpc;
}

static void *rpc_thread(void *arg)
{
	struct rpc *rpc = arg;
	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(rpc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE && ev.tag) {
			struct rpc_tag *tag = ev.tag;
			tag->fn(tag, ev.success != 0);
		}
	}
	return NULL;
}

int rpc_start(struct rpc *rpc)
{
	int r = pthread_create(&rpc->thread, NULL, rpc_thread, rpc);
	if (r)
		return -r;
	pthread_setname_np(rpc->thread, "grpc-cq");
	rpc->started = true;
	return 0;
}

void rpc_free(struct rpc *rpc)
{
	if (!rpc)
		return;
	grpc_completion_queue_shutdown(rpc->cq);
	if (rpc->started)
		pthread_join(rpc->thread, NULL);
	else
		while (grpc_completion_queue_next(rpc->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
			   .type != GRPC_QUEUE_SHUTDOWN)
			;
	grpc_completion_queue_destroy(rpc->cq);
	rpc_run_jobs(rpc); /* jobs posted by the last completions */
	close(rpc->pipe_rd);
	close(rpc->pipe_wr);
	grpc_shutdown_blocking();
	free(rpc);
}

grpc_completion_queue *rpc_cq(struct rpc *rpc)
{
	return rpc->cq;
}

int rpc_job_fd(struct rpc *rpc)
{
	return rpc->pipe_rd;
}

void rpc_post(struct rpc *rpc, struct rpc_job *job)
{
	/* A pointer is written whole: pipe writes below PIPE_BUF are atomic. */
	for (;;) {
		ssize_t w = write(rpc->pipe_wr, &job, sizeof(job));
		if (w == (ssize_t)sizeof(job))
			return;
		if (w < 0 && errno == EINTR)
			continue;
		log_error("rpc hand-off failed err=\"%s\"", strerror(errno));
		return;
	}
}

void rpc_run_jobs(struct rpc *rpc)
{
	struct rpc_job *jobs[64];
	for (;;) {
		ssize_t n = read(rpc->pipe_rd, jobs, sizeof(jobs));
		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / sizeof(jobs[0]); i++)
			jobs[i]->fn(jobs[i]);
	}
}

grpc_byte_buffer *rpc_buffer_from(const void *data, size_t len)
{
	grpc_slice s = grpc_slice_from_copied_buffer(data, len);
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

void *rpc_buffer_read(grpc_byte_buffer *bb, size_t *len)
{
	*len = 0;
	if (!bb)
		return NULL;
	grpc_byte_buffer_reader reader;
	if (!grpc_byte_buffer_reader_init(&reader, bb))
		return NULL;
	grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
	grpc_byte_buffer_reader_destroy(&reader);
	size_t n = GRPC_SLICE_LENGTH(s);
	void *out = malloc(n ? n : 1);
	if (out) {
		memcpy(out, GRPC_SLICE_START_PTR(s), n);
		*len = n;
	}
	grpc_slice_unref(s);
	return out;
}

gpr_timespec rpc_deadline_ms(int64_t ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

int rpc_unary_start(struct rpc_unary *u, grpc_completion_queue *cq, const char *socket_path,
		    const char *method, grpc_byte_buffer *req, int64_t timeout_ms, void *tag)
{
	u->req = req;
	u->details = grpc_empty_slice();
	grpc_metadata_array_init(&u->init_md);
	grpc_metadata_array_init(&u->trail_md);
	u->started = true;
	char target[4200];
	int n = snprintf(target, sizeof(target), "unix:%s", socket_path);
	if (n < 0 || (size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	if (!req)
		return -ENOMEM;
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	u->channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	if (!u->channel)
		return -ENOMEM;
	u->call = grpc_channel_create_call(u->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
					   grpc_slice_from_static_string(method), NULL,
					   rpc_deadline_ms(timeout_ms), NULL);
	if (!u->call)
		return -ENOMEM;
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = u->req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &u->init_md;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &u->resp;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &u->trail_md;
	ops[5].data.recv_status_on_client.status = &u->status;
	ops[5].data.recv_status_on_client.status_details = &u->details;
	ops[5].data.recv_status_on_client.error_string = &u->error_string;
	grpc_call_error e = grpc_call_start_batch(u->call, ops, 6, tag, NULL);
	if (e != GRPC_CALL_OK) {
		log_error("rpc: %s: start_batch failed err=%d", method, (int)e);
		return -EIO;
	}
	return 0;
}

void rpc_unary_clear(struct rpc_unary *u)
{
	if (!u->started)
		return;
	if (u->error_string)
		gpr_free((void *)u->error_string);
	grpc_slice_unref(u->details);
	grpc_metadata_array_destroy(&u->init_md);
	grpc_metadata_array_destroy(&u->trail_md);
	if (u->req)
		grpc_byte_buffer_destroy(u->req);
	if (u->resp)
		grpc_byte_buffer_destroy(u->resp);
	if (u->call)
		grpc_call_unref(u->call);
	if (u->channel)
		grpc_channel_destroy(u->channel);
	memset(u, 0, sizeof(*u));
}
