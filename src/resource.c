#include "resource.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cdi.h"
#include "kubelet.h"
#include "log.h"
#include "server.h"
#include "sizelimits.h"

#define REGISTER_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS	    500
#define BACKOFF_MAX_MS	    30000

enum reg_state { REG_IDLE, REG_IN_FLIGHT, REG_DONE, REG_BACKOFF };

static const char *const reg_state_name[] = {"idle", "in-flight", "registered", "backoff"};

struct resource {
	struct resource_env *env;
	struct cfg_device dev; /* our copy */
	char *full_name;       /* domain/name */
	char *origin;	       /* the devicematch file, or NULL */
	struct table *table;
	uint64_t published; /* generation last published */
	bool published_any;
	/* gRPC */
	struct server *server;
	char endpoint[128]; /* the socket's file name, as registered */
	int serve_err;	    /* the last serving error, said once */
	/* registration */
	enum reg_state state;
	bool again; /* register once more when the call in flight ends */
	/* what the call in flight registers, with which kubelet: a repeat
	 * asked for meanwhile is needless when both are still the same */
	char reg_endpoint[128];
	struct kubelet_id {
		ino_t ino;
		struct timespec ctime; /* an inode number may be reused at once */
	} reg_kubelet;
	unsigned failures;
	struct kubelet_call *call; /* the Register call in flight */
	/* CDI */
	char *cdi_kind; /* NULL without --cdi */
	char *cdi_json; /* the spec last written ("" once removed) */
	int cdi_err;	/* the last write's error, said once */
	int64_t cdi_retry_ms;
	/* metrics */
	struct metrics_res *m;
	size_t withheld; /* devices over the limits in the last list (sizelimits.h) */
	/* teardown: destroyed, and what must still call back */
	bool dying;
	bool server_live;
};

static void resource_release(struct resource *r);

const char *resource_name(const struct resource *r)
{
	return r->dev.name;
}

const char *resource_full_name(const struct resource *r)
{
	return r->full_name;
}

const struct cfg_device *resource_device(const struct resource *r)
{
	return &r->dev;
}

const char *resource_origin(const struct resource *r)
{
	return r->origin;
}

const char *resource_cdi_kind(const struct resource *r)
{
	return r->cdi_kind;
}

struct table *resource_table(struct resource *r)
{
	return r->table;
}

uint64_t resource_healthy(const struct resource *r)
{
	return r->m ? atomic_load(&r->m->healthy) : 0;
}

/* ---- creation and teardown ---- */

int resource_check_plugin_dir(const char *dir)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	if (strlen(dir) + RESOURCE_SOCKET_NAME_MAX <= max)
		return 0;
	log_error("plugin directory too long for unix sockets dir=%s: at most %zu characters", dir,
		  max - RESOURCE_SOCKET_NAME_MAX);
	return -ENAMETOOLONG;
}

void resource_env_name(struct resource_env *env)
{
	uint32_t token;
	if (getrandom(&token, sizeof(token), 0) != sizeof(token))
		token = (uint32_t)getpid() ^ (uint32_t)loop_now_us(); /* no entropy yet: unlikely */
	snprintf(env->instance, sizeof(env->instance), "%08x", token);
}

struct resource *resource_new(struct resource_env *env, const struct cfg_device *dev,
			      const char *origin)
{
	struct resource *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->env = env;
	env->live++; /* resource_release undoes it */
	int e = config_device_copy(&r->dev, dev);
	const char *domain = dev->domain ? dev->domain : env->cfg->domain;
	if (e == 0 && (asprintf(&r->full_name, "%s/%s", domain, dev->name) < 0 ||
		       (origin && !(r->origin = strdup(origin)))))
		e = -ENOMEM;
	if (e == 0 && env->cfg->cdi) {
		char kind[CDI_KIND_MAX];
		e = cdi_kind(domain, dev->name, kind, sizeof(kind));
		if (e < 0)
			log_error(
			    "resource=%s not served: no CDI kind can be made of it err=\"%s\"",
			    r->full_name ? r->full_name : dev->name, strerror(-e));
		else if (!(r->cdi_kind = strdup(kind)))
			e = -ENOMEM;
	}
	if (e == 0 && !(r->table = table_new(r->full_name, env->cfg->grace_ms)))
		e = -ENOMEM;
	if (e == 0 && !(r->m = metrics_res_new(env->metrics, r->full_name)))
		e = -ENOMEM;
	if (e == 0 && env->rpc)
		e = resource_start_server(r);
	if (e < 0) {
		r->dying = true;
		resource_release(r);
		errno = -e;
		return NULL;
	}
	return r;
}

int resource_start_server(struct resource *r)
{
	if (r->server)
		return 0;
	r->server = server_new(r->env->rpc, r->dev.name, r->full_name, r->cdi_kind, r->m);
	if (!r->server)
		return -ENOMEM;
	r->server_live = true;
	return 0;
}

/* Frees r once it is destroyed and nothing can call back any more. */
static void resource_release(struct resource *r)
{
	if (!r->dying || r->server_live || r->call)
		return;
	metrics_res_unlist(r->env->metrics, r->m); /* NULL, or already: no-op */
	metrics_res_free(r->m);
	table_free(r->table);
	config_device_clear(&r->dev);
	free(r->full_name);
	free(r->origin);
	free(r->cdi_kind);
	free(r->cdi_json);
	r->env->live--;
	free(r);
}

static void on_server_gone(void *data)
{
	struct resource *r = data;
	r->server_live = false;
	resource_release(r);
}

static void on_retry(struct loop *loop, void *data);
static void on_cdi_retry(struct loop *loop, void *data);

void resource_destroy(struct resource *r, bool keep_cdi)
{
	if (!r)
		return;
	r->dying = true;
	loop_timer_cancel(r->env->loop, on_retry, r);
	loop_timer_cancel(r->env->loop, on_cdi_retry, r);
	kubelet_cancel(r->call); /* its callback still comes, and releases */
	/* /metrics and /healthz stop counting it now; the server may still
	 * write its counters until it is gone. */
	metrics_res_unlist(r->env->metrics, r->m);
	if (r->cdi_kind && !keep_cdi && r->cdi_json && *r->cdi_json) {
		int e = cdi_remove(r->env->cfg->cdi_dir, r->cdi_kind);
		if (e < 0)
			log_warn("cannot remove the CDI spec resource=%s err=\"%s\"", r->full_name,
				 strerror(-e));
	}
	if (r->server) {
		struct server *srv = r->server;
		r->server = NULL;
		server_free(srv, on_server_gone, r); /* on_server_gone comes later */
	}
	resource_release(r);
}

int resource_set_device(struct resource *r, const struct cfg_device *dev)
{
	struct cfg_device copy;
	if (config_device_copy(&copy, dev) < 0)
		return -ENOMEM;
	config_device_clear(&r->dev);
	r->dev = copy;
	table_clear(r->table); /* rescanned */
	return 0;
}

/* ---- serving and registration ---- */

/* Which kubelet.sock is there (a restarted kubelet makes a new one); ino 0
 * when there is none. */
static struct kubelet_id kubelet_id(const struct resource_env *env)
{
	struct stat st;
	if (stat(env->kubelet_sock, &st) < 0 || !S_ISSOCK(st.st_mode))
		return (struct kubelet_id){0};
	return (struct kubelet_id){.ino = st.st_ino, .ctime = st.st_ctim};
}

static bool same_kubelet(struct kubelet_id a, struct kubelet_id b)
{
	return a.ino && a.ino == b.ino && a.ctime.tv_sec == b.ctime.tv_sec &&
	       a.ctime.tv_nsec == b.ctime.tv_nsec;
}

static bool kubelet_present(const struct resource_env *env)
{
	return kubelet_id(env).ino != 0;
}

int resource_serve(struct resource *r)
{
	if (!r->server)
		return -EINVAL;
	char path[PATH_MAX];
	const char *dir = r->env->cfg->plugin_dir;
	int n = snprintf(r->endpoint, sizeof(r->endpoint), "usbdp-%s-%u.sock", r->env->instance,
			 r->env->next_seq++);
	if (n < 0 || (size_t)n >= sizeof(r->endpoint))
		return -ENAMETOOLONG;
	n = snprintf(path, sizeof(path), "%s%s", dir, r->endpoint);
	if (n < 0 || (size_t)n >= sizeof(path) ||
	    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_error("socket path too long for a unix socket path=%s%s", dir, r->endpoint);
		return -ENAMETOOLONG;
	}
	int e = server_listen(r->server, path);
	/* gRPC says EADDRNOTAVAIL whatever went wrong: ask the directory. */
	if (e == -EADDRNOTAVAIL && access(dir, W_OK) < 0)
		e = -errno;
	if (e < 0 && e != r->serve_err) /* said once per change, not per retry */
		log_error("cannot serve resource=%s socket=%s err=\"%s\"", r->full_name, path,
			  strerror(-e));
	else if (e < 0)
		log_debug("cannot serve resource=%s err=\"%s\"", r->full_name, strerror(-e));
	r->serve_err = e;
	atomic_store(&r->m->serving, e == 0);
	atomic_store(&r->m->registered, 0); /* a new socket: not registered yet */
	if (e == 0) /* after the metrics: what the log says, /healthz says too */
		log_info("serving resource=%s socket=%s", r->full_name, path);
	return e;
}

/* Registers again later, waiting longer after each failure; the delay in
 * ms. */
static int64_t backoff(struct resource *r)
{
	unsigned shift = r->failures < 6 ? r->failures : 6;
	int64_t delay = (int64_t)BACKOFF_MIN_MS << shift;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	r->failures++;
	r->state = REG_BACKOFF;
	if (loop_timer_set(r->env->loop, loop_now_us() + delay * 1000, on_retry, r) < 0)
		log_error("no retry of the registration resource=%s: out of memory", r->full_name);
	return delay;
}

static void on_registered(void *data, int status, const char *message)
{
	struct resource *r = data;
	r->call = NULL;
	atomic_store(&r->m->registered, status == 0);
	atomic_fetch_add(status == 0 ? &r->m->registrations : &r->m->registration_errors, 1);
	if (r->dying) {
		if (status == 0 && r->env->late_register)
			r->env->late_register(r->env->data, r->dev.name);
		resource_release(r);
		return;
	}
	if (status == 0) {
		r->state = REG_DONE;
		r->failures = 0;
		log_info("registered with kubelet resource=%s endpoint=%s", r->full_name,
			 r->endpoint);
	} else {
		int64_t delay = backoff(r);
		log_warn("registration failed resource=%s status=%d reason=\"%s\" attempt=%u "
			 "retry_ms=%lld",
			 r->full_name, status, message, r->failures, (long long)delay);
	}
	/* Asked again while in flight, but the kubelet that answered is still
	 * the one there and the socket the same: already done. */
	if (r->again && status == 0 && strcmp(r->reg_endpoint, r->endpoint) == 0 &&
	    same_kubelet(r->reg_kubelet, kubelet_id(r->env)) && server_socket_ok(r->server)) {
		log_debug("registration repeat skipped resource=%s", r->full_name);
		r->again = false;
	}
	if (r->again) {
		r->again = false;
		loop_timer_cancel(r->env->loop, on_retry, r);
		r->state = REG_IDLE;
		resource_register(r);
	}
}

static void on_retry(struct loop *loop, void *data)
{
	(void)loop;
	struct resource *r = data;
	r->state = REG_IDLE;
	if (kubelet_present(r->env))
		resource_register(r);
	else
		log_info("waiting for kubelet socket=%s resource=%s", r->env->kubelet_sock,
			 r->full_name);
}

void resource_register(struct resource *r)
{
	if (r->dying || !r->server)
		return;
	if (r->state == REG_IN_FLIGHT) {
		r->again = true;
		return;
	}
	loop_timer_cancel(r->env->loop, on_retry, r);
	/* Never advertise a socket the kubelet wiped meanwhile: a new one
	 * first (the settle after the wipe would only do it later). */
	if (!server_socket_ok(r->server) && resource_serve(r) < 0) {
		int64_t delay = backoff(r); /* resource_serve logged why */
		log_info("not registered: no socket resource=%s retry_ms=%lld", r->full_name,
			 (long long)delay);
		return;
	}
	log_info("registering with kubelet resource=%s endpoint=%s previous=%s", r->full_name,
		 r->endpoint, reg_state_name[r->state]);
	memcpy(r->reg_endpoint, r->endpoint, sizeof(r->reg_endpoint));
	r->reg_kubelet = kubelet_id(r->env);
	int e = kubelet_register(r->env->rpc, r->env->kubelet_sock, r->endpoint, r->full_name,
				 REGISTER_TIMEOUT_MS, on_registered, r, &r->call);
	if (e < 0) {
		r->call = NULL;
		on_registered(r, 2 /* UNKNOWN */, strerror(-e));
		return;
	}
	r->state = REG_IN_FLIGHT;
}

bool resource_socket_ok(const struct resource *r)
{
	return r->server && server_socket_ok(r->server);
}

int resource_settle(struct resource *r, bool kubelet_new, bool present)
{
	bool reserve = !server_socket_ok(r->server);
	if (reserve) {
		atomic_store(&r->m->serving, 0);
		log_info("socket gone, serving again resource=%s", r->full_name);
		int e = resource_serve(r);
		if (e < 0)
			return e;
	}
	if (present && (reserve || kubelet_new || r->state == REG_IDLE))
		resource_register(r);
	return 0;
}

/* ---- publishing ---- */

/* With --cdi: the spec, rewritten when it changed -- before the kubelet
 * hears of the devices in it. 0, or negative errno (logged once per
 * error) when the spec could not be written. */
static int write_cdi(struct resource *r, const struct snapshot *snap)
{
	const char *dir = r->env->cfg->cdi_dir;
	char *json = NULL;
	int e = cdi_spec_json(r->cdi_kind, snap, &json);
	if (e == -ENODEV) { /* no device to describe: CDI refuses empty specs */
		if (r->cdi_json && !*r->cdi_json)
			return 0;
		e = cdi_remove(dir, r->cdi_kind);
		if (e == 0 && !(json = strdup("")))
			e = -ENOMEM;
	} else if (e == 0 && r->cdi_json && strcmp(json, r->cdi_json) == 0) {
		free(json);
		return 0;
	} else if (e == 0) {
		e = cdi_write(dir, r->cdi_kind, json);
	}
	if (e < 0) {
		if (e != r->cdi_err)
			log_error("cannot write the CDI spec resource=%s dir=%s err=\"%s\": its "
				  "devices are not advertised until it is written; retrying",
				  r->full_name, dir, strerror(-e));
		r->cdi_err = e;
		free(json);
		return e;
	}
	if (r->cdi_err)
		log_info("CDI spec written again resource=%s", r->full_name);
	r->cdi_err = 0;
	log_debug("CDI spec %s resource=%s kind=%s", *json ? "written" : "removed", r->full_name,
		  r->cdi_kind);
	free(r->cdi_json);
	r->cdi_json = json;
	return 0;
}

static void on_cdi_retry(struct loop *loop, void *data)
{
	(void)loop;
	resource_publish(data);
}

/* Over the limits or back under them: said once each way, not per list. */
static void say_withheld(struct resource *r, const struct snapshot *snap)
{
	atomic_store(&r->m->withheld, snap->n_withheld);
	if (snap->n_withheld && !r->withheld)
		log_error("resource over its limits resource=%s listed=%zu withheld=%zu "
			  "max_devices=%d max_list_bytes=%d: the devices first in table order "
			  "are listed, the others not until there is room; narrow the globs "
			  "or lower count",
			  r->full_name, snap->n_devices, snap->n_withheld, LIMIT_DEVICES,
			  LIMIT_LIST_BYTES);
	else if (!snap->n_withheld && r->withheld)
		log_info("resource back under its limits resource=%s listed=%zu", r->full_name,
			 snap->n_devices);
	r->withheld = snap->n_withheld;
}

bool resource_publish(struct resource *r)
{
	uint64_t gen = table_generation(r->table);
	if (r->published_any && gen == r->published)
		return false;
	struct snapshot *snap = table_snapshot(r->table);
	if (!snap) {
		log_error("snapshot failed resource=%s: out of memory", r->full_name);
		return false;
	}
	log_debug("publish resource=%s generation=%llu devices=%zu healthy=%zu", r->full_name,
		  (unsigned long long)gen, snap->n_devices, snap->n_healthy);
	atomic_store(&r->m->devices, snap->n_devices);
	atomic_store(&r->m->healthy, snap->n_healthy);
	say_withheld(r, snap);
	/* A device named in no spec must not reach the kubelet: Allocate
	 * would name a CDI device the runtime cannot find. The last list
	 * stays; the write is retried after 1 s, doubling to 30 s. */
	if (r->cdi_kind && write_cdi(r, snap) < 0) {
		snapshot_unref(snap);
		atomic_store(&r->m->failing, 1);
		r->cdi_retry_ms = r->cdi_retry_ms ? 2 * r->cdi_retry_ms : 1000;
		if (r->cdi_retry_ms > 30000)
			r->cdi_retry_ms = 30000;
		if (loop_timer_set(r->env->loop, loop_now_us() + r->cdi_retry_ms * 1000,
				   on_cdi_retry, r) < 0)
			log_error("no retry of the CDI spec resource=%s: out of memory",
				  r->full_name);
		return false;
	}
	r->cdi_retry_ms = 0;
	atomic_store(&r->m->failing, 0);
	if (r->server)
		server_publish(r->server, snap);
	else
		snapshot_unref(snap);
	r->published = gen;
	r->published_any = true;
	return true;
}
