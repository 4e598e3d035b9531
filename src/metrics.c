#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double bucket_le[METRICS_N_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
						    0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
static const char *const source_names[HP_N_SOURCES] = {"paths", "uevent", "libusb", "inotify"};
static const char *const action_names[HP_N_ACTIONS] = {"add",	 "remove", "bind",
						       "unbind", "change", "other"};

static const char *const ev_names[EV_N_RESULTS] = {"evicted", "gone", "failed", "cancelled"};

struct ev_count {
	char *resource;
	uint64_t n[EV_N_RESULTS];
};

struct metrics {
	pthread_mutex_t mu; /* the resource list and the eviction counts */
	struct metrics_res **res;
	size_t n_res;
	struct ev_count *ev; /* resources that saw an eviction, in order of the first */
	size_t n_ev;
	_Atomic uint64_t hotplug[HP_N_SOURCES][HP_N_ACTIONS];
	_Atomic uint64_t buckets[METRICS_N_BUCKETS]; /* cumulative on render, not here */
	_Atomic uint64_t lat_count;
	_Atomic uint64_t lat_sum_ns;
	/* why events are found by rescanning instead (a static string), or
	 * NULL; under mu */
	const char *degraded;
	_Atomic uint64_t http_rejected[HTTP_REJ_N];
};

struct metrics *metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));
	if (m)
		pthread_mutex_init(&m->mu, NULL);
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	/* Entries belong to their resources, which unlist them. */
	free(m->res);
	for (size_t i = 0; i < m->n_ev; i++)
		free(m->ev[i].resource);
	free(m->ev);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

struct metrics_res *metrics_res_new(struct metrics *m, const char *name)
{
	struct metrics_res *r = calloc(1, sizeof(*r));
	if (!r || !(r->name = strdup(name))) {
		free(r);
		return NULL;
	}
	pthread_mutex_lock(&m->mu);
	struct metrics_res **a = realloc(m->res, (m->n_res + 1) * sizeof(*a));
	if (a) {
		m->res = a;
		m->res[m->n_res++] = r;
	}
	pthread_mutex_unlock(&m->mu);
	if (!a) {
		free(r->name);
		free(r);
		return NULL;
	}
	return r;
}

void metrics_res_unlist(struct metrics *m, struct metrics_res *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_res; i++)
		if (m->res[i] == r) {
			memmove(&m->res[i], &m->res[i + 1], (m->n_res - i - 1) * sizeof(*m->res));
			m->n_res--;
			break;
		}
	pthread_mutex_unlock(&m->mu);
}

void metrics_res_free(struct metrics_res *r)
{
	if (!r)
		return;
	free(r->name);
	free(r);
}

void metrics_hotplug(struct metrics *m, enum hp_source src, enum hp_action action)
{
	if (m && src < HP_N_SOURCES && action < HP_N_ACTIONS)
		atomic_fetch_add_explicit(&m->hotplug[src][action], 1, memory_order_relaxed);
}

enum hp_action metrics_action(const char *a)
{
	for (int i = 0; i < HP_OTHER; i++)
		if (a && strcmp(a, action_names[i]) == 0)
			return (enum hp_action)i;
	return HP_OTHER;
}

void metrics_latency(struct metrics *m, double s)
{
	if (!m || s < 0)
		return;
	for (int i = 0; i < METRICS_N_BUCKETS; i++)
		if (s <= bucket_le[i]) {
			atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
			break;
		}
	atomic_fetch_add_explicit(&m->lat_count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->lat_sum_ns, (uint64_t)(s * 1e9), memory_order_relaxed);
}

void metrics_eviction(struct metrics *m, const char *resource, enum ev_result result)
{
	if (!m || !resource || result >= EV_N_RESULTS)
		return;
	pthread_mutex_lock(&m->mu);
	size_t i = 0;
	while (i < m->n_ev && strcmp(m->ev[i].resource, resource) != 0)
		i++;
	if (i == m->n_ev) {
		struct ev_count *a = reallocarray(m->ev, m->n_ev + 1, sizeof(*a));
		char *name = a ? strdup(resource) : NULL;
		if (a)
			m->ev = a;
		if (name)
			m->ev[m->n_ev++] = (struct ev_count){.resource = name};
		else
			i = SIZE_MAX;
	}
	if (i != SIZE_MAX)
		m->ev[i].n[result]++;
	pthread_mutex_unlock(&m->mu);
}

/* A growing text buffer; on ENOMEM it stops growing and render fails. */
struct buf {
	char *s;
	size_t len, cap;
	bool oom;
};

static bool buf_init(struct buf *b, size_t cap)
{
	*b = (struct buf){.cap = cap, .s = malloc(cap)};
	if (b->s)
		b->s[0] = '\0';
	return b->s != NULL;
}

/* The text, or NULL (and nothing to free) when it ran out of memory. */
static char *buf_finish(struct buf *b, size_t *len)
{
	if (b->oom) {
		free(b->s);
		return NULL;
	}
	if (len)
		*len = b->len;
	return b->s;
}

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n + 1;
		char *s = realloc(b->s, cap);
		if (!s) {
			b->oom = true;
			return;
		}
		b->s = s;
		b->cap = cap;
	}
}

/* Label values: our resource names are [a-z0-9.-/]; escape anyway. */
static void label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			put(b, "\\%c", *v);
		else if (*v == '\n')
			put(b, "\\n");
		else
			put(b, "%c", *v);
	}
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static void per_resource(struct buf *b, struct metrics *m, const char *name, const char *type,
			 const char *help, size_t off)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	for (size_t i = 0; i < m->n_res; i++) {
		struct metrics_res *r = m->res[i];
		_Atomic uint64_t *v = (_Atomic uint64_t *)((char *)r + off);
		put(b, "%s{resource=\"", name);
		label(b, r->name);
		put(b, "\"} %llu\n", (unsigned long long)LOAD(*v));
	}
}

static const char *const reject_names[HTTP_REJ_N] = {[HTTP_REJ_PER_CLIENT] = "per_client",
						     [HTTP_REJ_TOTAL] = "total",
						     [HTTP_REJ_DEADLINE] = "deadline",
						     [HTTP_REJ_HEAD_TOO_LARGE] = "head_too_large",
						     [HTTP_REJ_FD_LIMIT] = "fd_limit"};

void metrics_http_rejected(struct metrics *m, enum http_reject why)
{
	atomic_fetch_add_explicit(&m->http_rejected[why], 1, memory_order_relaxed);
}

static void http_rejections(struct buf *b, struct metrics *m)
{
	put(b, "# HELP usbdp_http_rejected_total HTTP connections cut short by a limit, by "
	       "reason.\n# TYPE usbdp_http_rejected_total counter\n");
	for (int i = 0; i < HTTP_REJ_N; i++)
		put(b, "usbdp_http_rejected_total{reason=\"%s\"} %llu\n", reject_names[i],
		    (unsigned long long)LOAD(m->http_rejected[i]));
}

char *metrics_render(struct metrics *m, size_t *len)
{
	struct buf b;
	if (!buf_init(&b, 4096))
		return NULL;
	put(&b, "# HELP usbdp_build_info The plugin's version.\n# TYPE usbdp_build_info gauge\n"
		"usbdp_build_info{version=\"");
	label(&b, UDP_VERSION);
	put(&b, "\"} 1\n");
	pthread_mutex_lock(&m->mu);
	put(&b, "# HELP usbdp_devices Devices listed to the kubelet, by health.\n"
		"# TYPE usbdp_devices gauge\n");
	for (size_t i = 0; i < m->n_res; i++) {
		struct metrics_res *r = m->res[i];
		uint64_t all = LOAD(r->devices), ok = LOAD(r->healthy);
		put(&b, "usbdp_devices{resource=\"");
		label(&b, r->name);
		put(&b, "\",health=\"healthy\"} %llu\nusbdp_devices{resource=\"",
		    (unsigned long long)ok);
		label(&b, r->name);
		put(&b, "\",health=\"unhealthy\"} %llu\n", (unsigned long long)(all - ok));
	}
	per_resource(&b, m, "usbdp_registered", "gauge",
		     "1 while the kubelet has accepted the resource's registration.",
		     offsetof(struct metrics_res, registered));
	per_resource(&b, m, "usbdp_registrations_total", "counter",
		     "Register calls the kubelet accepted.",
		     offsetof(struct metrics_res, registrations));
	per_resource(&b, m, "usbdp_registration_errors_total", "counter",
		     "Register calls that failed.",
		     offsetof(struct metrics_res, registration_errors));
	per_resource(&b, m, "usbdp_cdi_failing", "gauge",
		     "1 while the resource's CDI spec cannot be written (its list is held back).",
		     offsetof(struct metrics_res, failing));
	per_resource(&b, m, "usbdp_devices_withheld", "gauge",
		     "Devices found but not listed: over the limits a resource's list keeps to.",
		     offsetof(struct metrics_res, withheld));
	per_resource(&b, m, "usbdp_listandwatch_streams", "gauge", "Open ListAndWatch streams.",
		     offsetof(struct metrics_res, streams));
	per_resource(&b, m, "usbdp_allocate_calls_total", "counter", "Allocate calls answered.",
		     offsetof(struct metrics_res, allocate_calls));
	per_resource(&b, m, "usbdp_allocate_errors_total", "counter",
		     "Allocate calls refused (unknown or unhealthy device, bad request).",
		     offsetof(struct metrics_res, allocate_errors));
	put(&b, "# HELP usbdp_evictions_total Pods whose device was gone for --evict-after, by "
		"outcome.\n# TYPE usbdp_evictions_total counter\n");
	for (size_t i = 0; i < m->n_ev; i++)
		for (int r = 0; r < EV_N_RESULTS; r++) {
			put(&b, "usbdp_evictions_total{resource=\"");
			label(&b, m->ev[i].resource);
			put(&b, "\",result=\"%s\"} %llu\n", ev_names[r],
			    (unsigned long long)m->ev[i].n[r]);
		}
	pthread_mutex_unlock(&m->mu);
	put(&b, "# HELP usbdp_hotplug_events_total Device events seen, by source and action.\n"
		"# TYPE usbdp_hotplug_events_total counter\n");
	for (int s = 0; s < HP_N_SOURCES; s++)
		for (int a = 0; a < HP_N_ACTIONS; a++) {
			uint64_t v = LOAD(m->hotplug[s][a]);
			if (v)
				put(&b,
				    "usbdp_hotplug_events_total{source=\"%s\",action=\"%s\"} "
				    "%llu\n",
				    source_names[s], action_names[a], (unsigned long long)v);
		}
	put(&b, "# HELP usbdp_event_to_stream_seconds From a device event to the new list being "
		"handed to the ListAndWatch streams.\n# TYPE usbdp_event_to_stream_seconds "
		"histogram\n");
	uint64_t cum = 0;
	for (int i = 0; i < METRICS_N_BUCKETS; i++) {
		cum += LOAD(m->buckets[i]);
		put(&b, "usbdp_event_to_stream_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[i],
		    (unsigned long long)cum);
	}
	uint64_t count = LOAD(m->lat_count);
	put(&b,
	    "usbdp_event_to_stream_seconds_bucket{le=\"+Inf\"} %llu\n"
	    "usbdp_event_to_stream_seconds_sum %.9f\nusbdp_event_to_stream_seconds_count %llu\n",
	    (unsigned long long)count, (double)LOAD(m->lat_sum_ns) / 1e9,
	    (unsigned long long)count);
	pthread_mutex_lock(&m->mu);
	const char *degraded = m->degraded;
	pthread_mutex_unlock(&m->mu);
	put(&b,
	    "# HELP usbdp_degraded 1 while changes are found by periodic rescans because a "
	    "kernel limit (inotify) stands in the way.\n# TYPE usbdp_degraded gauge\n"
	    "usbdp_degraded %d\n",
	    degraded != NULL);
	http_rejections(&b, m);
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "re");
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	put(&b,
	    "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
	    "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
	    rss * sysconf(_SC_PAGESIZE));
	return buf_finish(&b, len);
}

void metrics_set_degraded(struct metrics *m, const char *why)
{
	pthread_mutex_lock(&m->mu);
	m->degraded = why;
	pthread_mutex_unlock(&m->mu);
}

/* Over-limit resources: still ready (they serve the devices that fit, and
 * a restart would find the same files), one line each. */
static void health_withheld(struct buf *b, struct metrics *m)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_res; i++) {
		uint64_t n = LOAD(m->res[i]->withheld);
		if (n)
			put(b, "over limit: %s: %llu devices not listed\n", m->res[i]->name,
			    (unsigned long long)n);
	}
	pthread_mutex_unlock(&m->mu);
}

char *metrics_health(struct metrics *m, bool *ready)
{
	struct buf b;
	if (!buf_init(&b, 256))
		return NULL;
	*ready = true;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n_res; i++) {
		struct metrics_res *r = m->res[i];
		if (LOAD(r->failing)) {
			put(&b, "%s: its CDI spec cannot be written\n", r->name);
			*ready = false;
		} else if (!LOAD(r->serving)) {
			put(&b, "%s: not serving its socket\n", r->name);
			*ready = false;
		} else if (!LOAD(r->registered)) {
			put(&b, "%s: not registered with the kubelet\n", r->name);
			*ready = false;
		}
	}
	const char *degraded = m->degraded;
	pthread_mutex_unlock(&m->mu);
	if (*ready)
		put(&b, "ok\n");
	health_withheld(&b, m);
	/* Still ready: the plugin works, only later; a restart cannot help. */
	if (degraded)
		put(&b, "degraded: %s\n", degraded);
	return buf_finish(&b, NULL);
}
