#include "evict.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <grpc/grpc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "kubeapi.h"
#include "log.h"
#include "podres.h"

/* Retries: 0.5 s, 1 s, 2 s ... at most a minute apart, for as long as the
 * device stays gone (a PodDisruptionBudget may hold an eviction for long;
 * kubectl drain waits the same way). */
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS	 60000
#define LIST_TIMEOUT_MS	 10000
#define COMPONENT	 "usb-device-plugin"
#define REASON		 "DeviceGone"

/* ---- shared by the loop and the worker ---- */

/* The deadline of one device passed: what the worker acts on. */
struct decision {
	_Atomic int refs;
	atomic_bool cancelled; /* set by the loop: the device is back */
	char *resource, *id, *why;
	int64_t since_us, due_us;
};

/* One step of the worker: find the Pods (pod NULL), or evict one Pod. */
struct task {
	struct task *next;
	struct decision *dec; /* a reference */
	char *ns, *pod;
	unsigned attempt;
	bool warned; /* one warning per step, however many retries */
	int64_t due_us;
};

/* A device of a resource that is not Healthy (loop only). */
struct watch {
	struct watch *next;
	char *resource, *id, *why;
	int64_t since_us;
	struct decision *dec; /* NULL until the deadline passes; a reference */
	bool seen;	      /* in the list just published */
	bool back;	      /* Healthy in it */
};

struct evict {
	struct loop *loop;
	struct metrics *metrics;
	unsigned after_ms;
	char *podres_sock, *node;
	struct watch *watches; /* loop only */

	struct kubeapi *api; /* worker only */
	bool v1beta1;	     /* worker only: the server has no policy/v1 Eviction */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct task *queue; /* by due time; under mu */
	atomic_bool stop;
};

static void decision_unref(struct decision *d)
{
	if (!d || atomic_fetch_sub(&d->refs, 1) != 1)
		return;
	free(d->resource);
	free(d->id);
	free(d->why);
	free(d);
}

static struct decision *decision_ref(struct decision *d)
{
	atomic_fetch_add(&d->refs, 1);
	return d;
}

static void task_free(struct task *t)
{
	if (!t)
		return;
	decision_unref(t->dec);
	free(t->ns);
	free(t->pod);
	free(t);
}

/* Queues t (owned by the queue from now on) in due order. */
static void enqueue(struct evict *e, struct task *t)
{
	pthread_mutex_lock(&e->mu);
	struct task **p = &e->queue;
	while (*p && (*p)->due_us <= t->due_us)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	pthread_cond_signal(&e->cond);
	pthread_mutex_unlock(&e->mu);
}

static int64_t now_us(void)
{
	return loop_now_us();
}

/* ---- the worker ---- */

static double secs(int64_t us)
{
	return (double)us / 1e6;
}

/* Schedules t again after a backoff; one warning per step, the retries
 * after it at debug level. */
static void retry(struct evict *e, struct task *t, const char *what, const char *why)
{
	unsigned shift = t->attempt < 10 ? t->attempt : 10;
	int64_t ms = (int64_t)BACKOFF_FIRST_MS << shift;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	char who[600] = "";
	if (t->pod)
		errbuf_put(who, sizeof(who), " pod=%s/%s", t->ns, t->pod);
	if (!t->warned)
		log_warn("evict: %s failed resource=%s device=%s%s err=\"%s\": retrying with "
			 "backoff until it works or the device is back",
			 what, t->dec->resource, t->dec->id, who, why);
	else
		log_debug("evict: %s failed again resource=%s device=%s%s attempt=%u err=\"%s\" "
			  "retry_in_ms=%lld",
			  what, t->dec->resource, t->dec->id, who, t->attempt + 1, why,
			  (long long)ms);
	t->warned = true;
	t->attempt++;
	t->due_us = now_us() + ms * 1000;
	enqueue(e, t);
}

/* A Kubernetes object name: what may go into a URL path unescaped. */
static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 253 && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789.-") == n;
}

static void list_pods(struct evict *e, struct task *t)
{
	struct decision *d = t->dec;
	struct podres_pod *pods = NULL;
	size_t n = 0;
	char why[256] = "";
	int r = podres_find(e->podres_sock, d->resource, d->id, LIST_TIMEOUT_MS, &e->stop, &pods,
			    &n, why, sizeof(why));
	if (r == -ECANCELED) {
		task_free(t);
		return;
	}
	if (r < 0) {
		if (!why[0])
			errbuf_put(why, sizeof(why), "%s", strerror(-r));
		retry(e, t, "PodResources List", why);
		return;
	}
	char names[1024] = "";
	size_t len = 0;
	for (size_t i = 0; i < n && len < sizeof(names); i++) {
		int w = snprintf(names + len, sizeof(names) - len, "%s%s/%s", i ? "," : "",
				 pods[i].namespace_, pods[i].name);
		len = w < 0 ? sizeof(names) : len + (size_t)w;
	}
	if (len >= sizeof(names))
		memcpy(names + sizeof(names) - 4, "...", 4);
	log_info("evict: device gone past the deadline resource=%s device=%s why=\"%s\" "
		 "gone_for=%.1fs pods=%s",
		 d->resource, d->id, d->why, secs(now_us() - d->since_us), n ? names : "none");
	for (size_t i = 0; i < n; i++) {
		struct task *pt = calloc(1, sizeof(*pt));
		if (pt && (pt->ns = strdup(pods[i].namespace_)) &&
		    (pt->pod = strdup(pods[i].name))) {
			pt->dec = decision_ref(d);
			pt->due_us = now_us();
			enqueue(e, pt);
			continue;
		}
		log_error("evict: out of memory: pod=%s/%s not evicted", pods[i].namespace_,
			  pods[i].name);
		task_free(pt);
	}
	podres_pods_free(pods, n);
	task_free(t);
}

/* The "message" of a Kubernetes Status answer, or the start of the body. */
static void status_message(const char *body, char *out, size_t size)
{
	cJSON *j = cJSON_Parse(body);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
	errbuf_put(out, size, "%s", cJSON_IsString(m) ? m->valuestring : body);
	cJSON_Delete(j);
}

static void rfc3339(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	if (!gmtime_r(&now, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		errbuf_put(buf, size, "1970-01-01T00:00:00Z");
}

/* Posts one core/v1 Event about an object; one attempt, a warning when it
 * fails (the eviction itself is done and counted). */
static void post_event(struct evict *e, const char *ns, const char *kind, const char *name,
		       const char *uid, const char *message)
{
	char ts[32], path[512], why[256] = "";
	rfc3339(ts, sizeof(ts));
	int n = snprintf(path, sizeof(path), "/api/v1/namespaces/%s/events", ns);
	cJSON *ev = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(ev, "metadata");
	cJSON *obj = cJSON_AddObjectToObject(ev, "involvedObject");
	cJSON *src = cJSON_AddObjectToObject(ev, "source");
	char gen[300];
	int g = snprintf(gen, sizeof(gen), "%.240s.", name);
	cJSON_AddStringToObject(ev, "apiVersion", "v1");
	cJSON_AddStringToObject(ev, "kind", "Event");
	cJSON_AddStringToObject(meta, "generateName", gen);
	cJSON_AddStringToObject(meta, "namespace", ns);
	cJSON_AddStringToObject(obj, "apiVersion", "v1");
	cJSON_AddStringToObject(obj, "kind", kind);
	cJSON_AddStringToObject(obj, "name", name);
	if (strcmp(kind, "Pod") == 0)
		cJSON_AddStringToObject(obj, "namespace", ns);
	if (uid)
		cJSON_AddStringToObject(obj, "uid", uid);
	cJSON_AddStringToObject(ev, "reason", REASON);
	cJSON_AddStringToObject(ev, "message", message);
	cJSON_AddStringToObject(ev, "type", "Warning");
	cJSON_AddStringToObject(src, "component", COMPONENT);
	cJSON_AddStringToObject(src, "host", e->node);
	cJSON_AddStringToObject(ev, "firstTimestamp", ts);
	cJSON_AddStringToObject(ev, "lastTimestamp", ts);
	cJSON_AddNumberToObject(ev, "count", 1);
	cJSON_AddStringToObject(ev, "reportingComponent", COMPONENT);
	cJSON_AddStringToObject(ev, "reportingInstance", e->node);
	char *json = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	long status = 0;
	char *body = NULL;
	int r = -ENOMEM;
	if (json && n > 0 && (size_t)n < sizeof(path) && g > 0 && (size_t)g < sizeof(gen))
		r = kubeapi_request(e->api, "POST", path, json, &status, &body, why, sizeof(why));
	if (r == 0 && status / 100 != 2)
		status_message(body, why, sizeof(why));
	if (r < 0 || status / 100 != 2)
		log_warn("evict: event not posted about=%s/%s status=%ld err=\"%s\"", kind, name,
			 status, why[0] ? why : strerror(-r));
	free(body);
	free(json);
}

static void done(struct evict *e, struct task *t, enum ev_result result, const char *what,
		 const char *detail)
{
	struct decision *d = t->dec;
	metrics_eviction(e->metrics, d->resource, result); /* counted when logged */
	if (result == EV_FAILED)
		log_error("evict: pod=%s/%s resource=%s device=%s %s: %s", t->ns, t->pod,
			  d->resource, d->id, what, detail);
	else
		log_info("evict: pod=%s/%s resource=%s device=%s %s attempts=%u "
			 "after_deadline=%.2fs",
			 t->ns, t->pod, d->resource, d->id, what, t->attempt + 1,
			 secs(now_us() - d->due_us));
	task_free(t);
}

/* GET the Pod: its uid (for the eviction's precondition and the Event),
 * and whether it still runs here. 1: go on; 0: finished (t freed); -1:
 * retried (t queued again). */
static int check_pod(struct evict *e, struct task *t, const char *path, char *uid, size_t uidlen)
{
	long status = 0;
	char *body = NULL, why[256] = "";
	int r = kubeapi_request(e->api, "GET", path, NULL, &status, &body, why, sizeof(why));
	if (r == 0 && status == 200) {
		cJSON *j = cJSON_Parse(body);
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(j, "metadata"), "uid");
		const cJSON *node = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(j, "spec"), "nodeName");
		bool here = !cJSON_IsString(node) || strcmp(node->valuestring, e->node) == 0;
		if (cJSON_IsString(u))
			errbuf_put(uid, uidlen, "%s", u->valuestring);
		cJSON_Delete(j);
		free(body);
		if (here)
			return 1;
		done(e, t, EV_GONE, "already gone", "");
		return 0;
	}
	if (r == 0)
		status_message(body, why, sizeof(why));
	free(body);
	if (r == 0 && status == 404) {
		done(e, t, EV_GONE, "already gone", "");
		return 0;
	}
	if (r < 0 || status == 429 || status >= 500) {
		retry(e, t, "getting the Pod", why);
		return -1;
	}
	char detail[320];
	errbuf_put(detail, sizeof(detail), "status=%ld err=\"%s\"", status, why);
	done(e, t, EV_FAILED, "cannot read the Pod", detail);
	return 0;
}

static char *eviction_body(const struct evict *e, const struct task *t, const char *uid)
{
	cJSON *ev = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(ev, "metadata");
	cJSON_AddStringToObject(ev, "apiVersion", e->v1beta1 ? "policy/v1beta1" : "policy/v1");
	cJSON_AddStringToObject(ev, "kind", "Eviction");
	cJSON_AddStringToObject(meta, "name", t->pod);
	cJSON_AddStringToObject(meta, "namespace", t->ns);
	if (uid[0]) {
		cJSON *opts = cJSON_AddObjectToObject(ev, "deleteOptions");
		cJSON *pre = cJSON_AddObjectToObject(opts, "preconditions");
		cJSON_AddStringToObject(pre, "uid", uid);
	}
	char *json = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	return json;
}

static void evicted(struct evict *e, struct task *t, const char *uid)
{
	struct decision *d = t->dec;
	char msg[1024], node_msg[1024];
	double gone = secs(d->due_us - d->since_us);
	errbuf_put(msg, sizeof(msg),
		   "Evicted by %s: its device %s of %s has been unhealthy (%s) for %.0fs "
		   "(--evict-after); the Pod can only run again where such a device is",
		   COMPONENT, d->id, d->resource, d->why, gone);
	errbuf_put(node_msg, sizeof(node_msg),
		   "Device %s of %s has been unhealthy (%s) for %.0fs: Pod %s/%s that held it "
		   "was evicted",
		   d->id, d->resource, d->why, gone, t->ns, t->pod);
	post_event(e, t->ns, "Pod", t->pod, uid[0] ? uid : NULL, msg);
	post_event(e, "default", "Node", e->node, e->node, node_msg);
	done(e, t, EV_EVICTED, "evicted", "");
}

static void evict_pod(struct evict *e, struct task *t)
{
	if (atomic_load(&t->dec->cancelled)) {
		done(e, t, EV_CANCELLED, "not evicted: the device is back", "");
		return;
	}
	if (!name_ok(t->ns) || !name_ok(t->pod)) {
		done(e, t, EV_FAILED, "not evicted", "not a Kubernetes name");
		return;
	}
	char path[600], uid[128] = "";
	int n = snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s", t->ns, t->pod);
	if (n < 0 || (size_t)n >= sizeof(path) - sizeof("/eviction")) {
		done(e, t, EV_FAILED, "not evicted", "name too long");
		return;
	}
	if (check_pod(e, t, path, uid, sizeof(uid)) <= 0)
		return;
	memcpy(path + n, "/eviction", sizeof("/eviction"));
	char *json = eviction_body(e, t, uid), *body = NULL, why[256] = "";
	long status = 0;
	int r = json ? kubeapi_request(e->api, "POST", path, json, &status, &body, why, sizeof(why))
		     : -ENOMEM;
	free(json);
	if (r == 0 && status / 100 != 2)
		status_message(body, why, sizeof(why));
	bool old = r == 0 && status == 400 && !e->v1beta1 && body && strstr(body, "policy/v1");
	free(body);
	if (r == 0 && status / 100 == 2)
		evicted(e, t, uid);
	else if (old) { /* a server before 1.22: policy/v1beta1 only */
		log_info("evict: the API server has no policy/v1 Eviction: using policy/v1beta1");
		e->v1beta1 = true;
		enqueue(e, t);
	} else if (r == 0 && (status == 404 || status == 409)) /* gone, or another uid */
		done(e, t, EV_GONE, "already gone", "");
	else if (r < 0 || status == 429 || status >= 500)
		retry(e, t, status == 429 ? "eviction (blocked: disruption budget?)" : "eviction",
		      why);
	else {
		char detail[320];
		errbuf_put(detail, sizeof(detail), "status=%ld err=\"%s\"", status, why);
		done(e, t, EV_FAILED, "eviction refused", detail);
	}
}

static void *worker(void *arg)
{
	struct evict *e = arg;
	pthread_mutex_lock(&e->mu);
	while (!atomic_load(&e->stop)) {
		struct task *t = e->queue;
		int64_t now = now_us();
		if (!t) {
			pthread_cond_wait(&e->cond, &e->mu);
			continue;
		}
		if (t->due_us > now) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = (int64_t)ts.tv_nsec + (t->due_us - now) * 1000;
			ts.tv_sec += ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&e->cond, &e->mu, &ts);
			continue;
		}
		e->queue = t->next;
		pthread_mutex_unlock(&e->mu);
		if (atomic_load(&t->dec->cancelled) && !t->pod)
			task_free(t); /* the loop logged that the device is back */
		else if (t->pod)
			evict_pod(e, t);
		else
			list_pods(e, t);
		pthread_mutex_lock(&e->mu);
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- the loop side ---- */

static void watch_free(struct watch *w)
{
	decision_unref(w->dec);
	free(w->resource);
	free(w->id);
	free(w->why);
	free(w);
}

static void on_due(struct loop *loop, void *data);

/* The timer at the earliest deadline still to come. */
static void arm(struct evict *e)
{
	int64_t next = 0;
	for (struct watch *w = e->watches; w; w = w->next) {
		int64_t at = w->since_us + (int64_t)e->after_ms * 1000;
		if (!w->dec && (!next || at < next))
			next = at;
	}
	if (!next)
		loop_timer_cancel(e->loop, on_due, e);
	else if (loop_timer_set(e->loop, next, on_due, e) < 0)
		log_error("evict: deadline not scheduled: out of memory");
}

static void on_due(struct loop *loop, void *data)
{
	(void)loop;
	struct evict *e = data;
	int64_t now = now_us();
	for (struct watch *w = e->watches; w; w = w->next) {
		int64_t at = w->since_us + (int64_t)e->after_ms * 1000;
		if (w->dec || at > now)
			continue;
		struct decision *d = calloc(1, sizeof(*d));
		struct task *t = calloc(1, sizeof(*t));
		if (!d || !t || !(d->resource = strdup(w->resource)) || !(d->id = strdup(w->id)) ||
		    !(d->why = strdup(w->why))) {
			log_error("evict: out of memory: resource=%s device=%s not acted on; "
				  "trying again after another %.1fs",
				  w->resource, w->id, (double)e->after_ms / 1000);
			w->since_us = now; /* not a timer firing at once, again and again */
			if (d)
				atomic_store(&d->refs, 1);
			decision_unref(d);
			free(t);
			continue;
		}
		atomic_store(&d->refs, 2); /* the watch's and the task's */
		d->since_us = w->since_us;
		d->due_us = now;
		w->dec = d;
		t->dec = d;
		t->due_us = now;
		enqueue(e, t);
	}
	arm(e);
}

static struct watch *find_watch(struct evict *e, const char *resource, const char *id)
{
	for (struct watch *w = e->watches; w; w = w->next)
		if (strcmp(w->id, id) == 0 && strcmp(w->resource, resource) == 0)
			return w;
	return NULL;
}

static void add_watch(struct evict *e, const char *resource, const struct snap_device *dv,
		      int64_t now)
{
	const char *why = dv->instance->why ? dv->instance->why : "unhealthy";
	struct watch *w = calloc(1, sizeof(*w));
	if (!w || !(w->resource = strdup(resource)) || !(w->id = strdup(dv->id)) ||
	    !(w->why = strdup(why))) {
		log_error("evict: out of memory: resource=%s device=%s not watched", resource,
			  dv->id);
		if (w)
			watch_free(w);
		return;
	}
	w->since_us = now;
	w->seen = true;
	w->next = e->watches;
	e->watches = w;
	log_info("evict: device unhealthy resource=%s device=%s why=\"%s\": the Pods holding it "
		 "are evicted in %.1fs unless it comes back",
		 resource, dv->id, why, (double)e->after_ms / 1000);
}

void evict_observe(struct evict *e, const char *resource, const struct snapshot *snap, int64_t now)
{
	if (!e || !resource || !snap)
		return;
	for (struct watch *w = e->watches; w; w = w->next)
		if (strcmp(w->resource, resource) == 0)
			w->seen = false;
	for (size_t i = 0; i < snap->n_devices; i++) {
		const struct snap_device *dv = &snap->devices[i];
		struct watch *w = find_watch(e, resource, dv->id);
		if (w)
			w->seen = true;
		if (!w && !dv->instance->healthy)
			add_watch(e, resource, dv, now);
		if (!w || !dv->instance->healthy)
			continue;
		if (w->dec)
			atomic_store(&w->dec->cancelled, true);
		log_info("evict: device back resource=%s device=%s after=%.1fs: %s", resource,
			 dv->id, secs(now - w->since_us),
			 w->dec ? "evictions not yet done are cancelled" : "no eviction");
		w->back = true;
	}
	/* Healthy again: gone. Dropped from the list after the deadline: the
	 * decision stands and nothing is left to watch. */
	for (struct watch **p = &e->watches; *p;) {
		struct watch *w = *p;
		bool mine = strcmp(w->resource, resource) == 0;
		if (mine && (w->back || (!w->seen && w->dec))) {
			*p = w->next;
			watch_free(w);
		} else
			p = &w->next;
	}
	arm(e);
}

/* ---- life cycle ---- */

struct evict *evict_new(struct loop *loop, struct metrics *metrics, const struct evict_settings *s,
			char *why, size_t errlen)
{
	if (!loop || !s || !s->after_ms || !s->pod_resources_socket || !s->sa_dir ||
	    !s->node_name) {
		errbuf_put(why, errlen, "bad arguments");
		errno = EINVAL;
		return NULL;
	}
	struct evict *e = calloc(1, sizeof(*e));
	if (!e || !(e->podres_sock = strdup(s->pod_resources_socket)) ||
	    !(e->node = strdup(s->node_name))) {
		if (e)
			free(e->podres_sock);
		free(e);
		errbuf_put(why, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	e->loop = loop;
	e->metrics = metrics;
	e->after_ms = s->after_ms;
	pthread_mutex_init(&e->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* loop_now_us's clock */
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	grpc_init(); /* the PodResources client; balanced in evict_free */
	int err;
	if (!(e->api = kubeapi_new(s->sa_dir, &e->stop, why, errlen))) {
		err = errno;
		evict_free(e);
		errno = err;
		return NULL;
	}
	if ((err = pthread_create(&e->thread, NULL, worker, e)) != 0) {
		errbuf_put(why, errlen, "cannot start the eviction thread: %s", strerror(err));
		evict_free(e);
		errno = err;
		return NULL;
	}
	e->started = true;
	log_info("evict: on after=%.1fs api=%s pod_resources=%s node=%s",
		 (double)e->after_ms / 1000, kubeapi_url(e->api), e->podres_sock, e->node);
	return e;
}

void evict_free(struct evict *e)
{
	if (!e)
		return;
	if (e->started) {
		pthread_mutex_lock(&e->mu);
		atomic_store(&e->stop, true);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->mu);
		pthread_join(e->thread, NULL);
	}
	while (e->queue) {
		struct task *t = e->queue;
		e->queue = t->next;
		task_free(t);
	}
	while (e->watches) {
		struct watch *w = e->watches;
		e->watches = w->next;
		watch_free(w);
	}
	if (e->loop)
		loop_timer_cancel(e->loop, on_due, e);
	kubeapi_free(e->api);
	grpc_shutdown();
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->mu);
	free(e->podres_sock);
	free(e->node);
	free(e);
}
