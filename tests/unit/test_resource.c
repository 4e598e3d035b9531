/* The resource object's life cycle: every allocation of resource_new
 * failing in turn leaves nothing behind (no live count, no metrics entry,
 * no leak: ASan checks); a destroyed resource is out of /metrics at once
 * and freed only once its server has let go; a served one is freed after
 * its gRPC server's shutdown has come back through the loop. Linked with
 * the allocation wrappers of tests/fuzz/failalloc.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fuzz/failalloc.h"
#include "check.h"
#include "log.h"
#include "metrics.h"
#include "resource.h"

static char dir[64];

struct world {
	struct config cfg;
	struct loop *loop;
	struct metrics *metrics;
	struct rpc *rpc;
	struct resource_env env;
	char kubelet_sock[128];
};

static void world_init(struct world *w, bool with_rpc)
{
	memset(w, 0, sizeof(*w));
	w->cfg.domain = "example.com";
	w->cfg.plugin_dir = dir;
	w->cfg.grace_ms = 1000;
	w->cfg.cdi_dir = dir;
	snprintf(w->kubelet_sock, sizeof(w->kubelet_sock), "%skubelet.sock", dir);
	w->loop = loop_new();
	w->metrics = metrics_new();
	w->rpc = with_rpc ? rpc_new() : NULL;
	w->env = (struct resource_env){.loop = w->loop,
				       .rpc = w->rpc,
				       .metrics = w->metrics,
				       .cfg = &w->cfg,
				       .kubelet_sock = w->kubelet_sock,
				       .instance = "0badcafe"};
}

static void world_free(struct world *w)
{
	rpc_free(w->rpc);
	metrics_free(w->metrics);
	loop_free(w->loop);
}

/* A device with one path group and templates: every kind of copy. */
static void device(struct cfg_device *dev, struct cfg_group *g, struct cfg_path *p,
		   struct dev_kv *env)
{
	*p = (struct cfg_path){.path = "/dev/null", .mount_path = "/dev/x", .limit = 1};
	strcpy(p->permissions, "rw");
	*env = (struct dev_kv){.key = "K_{index}", .value = "{id}"};
	*g = (struct cfg_group){.paths = p, .n_paths = 1, .count = 2, .env = env, .n_env = 1};
	*dev = (struct cfg_device){.name = "serial", .groups = g, .n_groups = 1};
}

static bool listed(struct metrics *m, const char *name)
{
	size_t len;
	char *text = metrics_render(m, &len);
	bool found = text && strstr(text, name) != NULL;
	free(text);
	return found;
}

/* Runs the jobs the gRPC thread hands to the loop until cond holds or 5 s
 * pass. */
static bool pump_until(struct world *w, bool (*cond)(struct world *))
{
	for (int i = 0; i < 500 && !cond(w); i++) {
		struct pollfd pfd = {.fd = rpc_job_fd(w->rpc), .events = POLLIN};
		if (poll(&pfd, 1, 10) > 0)
			rpc_run_jobs(w->rpc);
	}
	return cond(w);
}

static bool none_live(struct world *w)
{
	return w->env.live == 0;
}

TEST(every_failed_allocation_leaves_nothing)
{
	struct world w;
	world_init(&w, true);
	struct cfg_device dev;
	struct cfg_group g;
	struct cfg_path p;
	struct dev_kv kv;
	device(&dev, &g, &p, &kv);
	long n = 0;
	for (;; n++) {
		failalloc_start(n);
		struct resource *r = resource_new(&w.env, &dev, NULL);
		int err = errno;
		bool failed = failalloc_failed();
		failalloc_stop();
		if (!failed) {
			CHECK(r != NULL);
			resource_destroy(r, true);
			CHECK(pump_until(&w, none_live));
			break;
		}
		if (r) { /* a failure it could live with: still whole */
			CHECK_STR(resource_full_name(r), "example.com/serial");
			resource_destroy(r, true);
			CHECK(pump_until(&w, none_live));
		} else {
			CHECK_INT(err, ENOMEM);
		}
		CHECK_INT(w.env.live, 0);
		CHECK(!listed(w.metrics, "example.com/serial"));
	}
	CHECK(n > 5); /* the copy, names, table, metrics and server all allocate */
	world_free(&w);
}

TEST(destroy_unlists_at_once_and_frees_after_the_server)
{
	struct world w;
	world_init(&w, true);
	CHECK_INT(rpc_start(w.rpc), 0);
	struct cfg_device dev;
	struct cfg_group g;
	struct cfg_path p;
	struct dev_kv kv;
	device(&dev, &g, &p, &kv);
	struct resource *r = resource_new(&w.env, &dev, NULL);
	CHECK(r != NULL);
	CHECK_INT(w.env.live, 1);
	CHECK(listed(w.metrics, "example.com/serial"));
	/* the copy is ours: the caller's config may go */
	dev.name = "other";
	CHECK_STR(resource_name(r), "serial");
	CHECK_INT(resource_serve(r), 0);
	CHECK(resource_publish(r));
	CHECK(!resource_publish(r)); /* nothing new */
	char sock[256];
	snprintf(sock, sizeof(sock), "%susbdp-%s-0.sock", dir, w.env.instance);
	struct stat st;
	CHECK_INT(stat(sock, &st), 0);
	resource_destroy(r, true);
	CHECK(!listed(w.metrics, "example.com/serial"));
	CHECK(stat(sock, &st) < 0); /* the socket goes with it */
	CHECK(pump_until(&w, none_live));
	world_free(&w);
}

TEST(a_resource_without_server_is_freed_at_once)
{
	struct world w;
	world_init(&w, false);
	struct cfg_device dev;
	struct cfg_group g;
	struct cfg_path p;
	struct dev_kv kv;
	device(&dev, &g, &p, &kv);
	struct resource *r = resource_new(&w.env, &dev, "tty/x");
	CHECK(r != NULL);
	CHECK_STR(resource_origin(r), "tty/x");
	CHECK(resource_serve(r) < 0); /* no gRPC side yet */
	resource_destroy(r, false);
	CHECK_INT(w.env.live, 0);
	world_free(&w);
}

int main(void)
{
	log_set_level(LOG_LEVEL_NONE);
	snprintf(dir, sizeof(dir), "/tmp/udp-res-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	strcat(dir, "/");
	RUN(every_failed_allocation_leaves_nothing);
	RUN(destroy_unlists_at_once_and_frees_after_the_server);
	RUN(a_resource_without_server_is_freed_at_once);
	rmdir(dir);
	return CHECK_SUMMARY();
}
