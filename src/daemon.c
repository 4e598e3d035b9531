/* The wiring: start the sources (directory watches, USB discovery, the
 * plugin directory, signals, the gRPC thread's hand-off, HTTP), turn each
 * burst of events into one rescan and one publication, diff the resources
 * on reload, stop on a signal. Each resource is an object of its own
 * (resource.c); this file only decides when they are made, scanned,
 * published and destroyed. */
#include "daemon.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdi.h"
#include "derived.h"
#include "dirwatch.h"
#include "evict.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "nodefeat.h"
#include "once.h"
#include "plugindir.h"
#include "resource.h"
#include "resources.h"
#include "rpc.h"
#include "scan.h"
#include "usb.h"
#include "usbids.h"

/* Path rescans are rate-limited, not delayed: a lone event is rescanned at
 * once, and the events of a burst (a hub of dongles, udev adding symlinks)
 * that arrive within this interval of the last rescan share the next one.
 * A rescan per event would make a storm of n events cost n full scans. */
#define RESCAN_INTERVAL_US 2000
/* At a stop, how long the gRPC side may take to let go of the resources
 * before the completion queue is drained the hard way (rpc_free). */
#define STOP_WAIT_MS 5000

/* Events whose entry can matter are kept for the rescan (which then reads
 * only what they can have changed); beyond this many, it reads it all. */
#define EVENTS_MAX 64

#define DEV_EVENTS                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |     \
	 IN_ATTRIB)

struct daemon {
	const struct config *cfg; /* settings: the start-up config's (borrowed) */
	struct config *cur;	  /* the newest reloaded config (owned), or NULL */
	int argc;
	char **argv;
	struct loop *loop;
	struct rpc *rpc;
	struct metrics *metrics;
	struct http *http;
	struct dirwatch *dw;
	struct plugindir *pd;
	struct resource_env env;
	struct resources *rs; /* the live resources */
	struct derived *derived;
	struct usbids *ids;
	struct usb_watch *usb; /* NULL when no group asks for USB devices */
	struct features *features;
	struct once *warned; /* shared-node warnings given */
	struct evict *evict; /* NULL unless --evict-after */
	int sig_fd;
	bool stopping;		/* resources are being let go: no scans, no reloads */
	bool rescan, usb_dirty; /* rescan: every file-system group */
	bool events_due;	/* the rate limit let the kept events through */
	bool events_all;	/* an event that no list of names can say */
	struct scan_event events[EVENTS_MAX];
	size_t n_events;
	int64_t last_rescan_us;
	int64_t scan_retry_ms;	  /* after a failed scan: the next retry's delay */
	int64_t pending_since_us; /* first device event not yet published */
	int exit_code;
};

/* The config whose devicematch entries are in force. */
static const struct config *current(const struct daemon *d)
{
	return d->cur ? d->cur : d->cfg;
}

/* ---- the resources ---- */

static struct resource *on_derived(void *data, const struct cfg_device *dev, const char *file)
{
	struct daemon *d = data;
	return resources_add(d->rs, dev, file);
}

static struct resource *on_find(void *data, const char *name)
{
	struct daemon *d = data;
	return resources_find(d->rs, name);
}

static void on_late_register(void *data, const char *name)
{
	struct daemon *d = data;
	resources_late_register(d->rs, name);
}

/* ---- scanning ---- */

static void on_dev_event(void *data, const char *dir, const char *name, uint32_t mask);

/* Watches what the path, virtual and devicematch groups look at; true when
 * it added a watch (what appeared in the new directory before it may have
 * been missed). */
static bool update_watches(struct daemon *d)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	char **dirs = NULL;
	size_t n_dirs = 0;
	int e = 0;
	for (size_t r = 0; e == 0 && r < n_res; r++)
		e = scan_watch_dirs(res[r], &dirs, &n_dirs);
	if (e == 0 && current(d)->n_matches)
		e = derived_watch_dirs(d->derived, &dirs, &n_dirs);
	if (e < 0)
		log_error("directories to watch not all known: out of memory");
	int err;
	const char *err_dir;
	size_t added =
	    dirwatch_sync(d->dw, dirs, n_dirs, DEV_EVENTS, on_dev_event, d, &err, &err_dir);
	/* A kernel limit is said once by dirwatch (and polled around). */
	if (err && err != -EMFILE && err != -ENOSPC)
		log_warn("cannot watch dir=%s err=\"%s\"", err_dir, strerror(-err));
	for (size_t i = 0; i < n_dirs; i++)
		free(dirs[i]);
	free(dirs);
	return added > 0;
}

/* Brings every resource's table up to date with one kind of group (usb, or
 * the file system's: paths, devicematch and virtual). */
static void on_scan_retry(struct loop *loop, void *data);

/* With ev (usb false), only the groups one of ev[0..n_ev) matters to. */
static void scan_groups(struct daemon *d, bool usb, const struct scan_event *ev, size_t n_ev)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	int64_t now = loop_now_us();
	bool failed = false;
	for (size_t r = 0; r < n_res; r++)
		failed |=
		    (ev ? scan_resource_events(res[r], current(d), d->cfg->node_name, now, ev, n_ev)
			: scan_resource(res[r], usb, d->usb, current(d), d->cfg->node_name, now)) <
		    0;
	/* A scan that failed (descriptors or memory ran out) is tried again:
	 * the device that appeared meanwhile must not wait for another event.
	 * 100 ms, doubling to 5 s; a scan that works resets it. */
	if (!failed) {
		d->scan_retry_ms = 0;
		return;
	}
	d->scan_retry_ms = d->scan_retry_ms ? 2 * d->scan_retry_ms : 100;
	if (d->scan_retry_ms > 5000)
		d->scan_retry_ms = 5000;
	if (loop_timer_set(d->loop, now + d->scan_retry_ms * 1000, on_scan_retry, d) < 0)
		log_error("failed scan not retried: out of memory");
}

static void on_scan_retry(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	d->rescan = true;
	d->usb_dirty = d->usb != NULL;
}

static void on_rescan(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	d->events_due = true; /* done, then published, by on_idle */
}

static void free_events(struct scan_event *ev, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(ev[i].dir);
		free(ev[i].name);
	}
}

static void drop_events(struct daemon *d)
{
	free_events(d->events, d->n_events);
	d->n_events = 0;
	d->events_all = false;
	d->events_due = false;
}

static void arm_rescan(struct daemon *d, int64_t at)
{
	if (loop_timer_set(d->loop, at, on_rescan, d) < 0) {
		log_error("rescan not scheduled: out of memory; rescanning now");
		d->rescan = true;
	}
}

#define DEGRADED_POLL_US 1000000

static void on_degraded_poll(struct loop *loop, void *data);

/* Without inotify (a kernel limit): a rescan and a look at the plugin
 * directory every second, for as long as it lasts; said on /healthz. */
static void check_degraded(struct daemon *d)
{
	const char *why = dirwatch_degraded(d->dw);
	metrics_set_degraded(d->metrics, why);
	if (!why)
		loop_timer_cancel(d->loop, on_degraded_poll, d);
	else if (!loop_timer_armed(d->loop, on_degraded_poll, d) &&
		 loop_timer_set(d->loop, loop_now_us() + DEGRADED_POLL_US, on_degraded_poll, d) < 0)
		log_error("no fallback polling: out of memory");
}

static void on_degraded_poll(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	d->rescan = true; /* also tries the watches again */
	bool lost = false;
	for (size_t r = 0; r < n_res && d->rpc; r++)
		lost |= !resource_socket_ok(res[r]);
	plugindir_poll(d->pd, lost);
	check_degraded(d);
}

/* Whether a kept event can change the directories to watch: an entry
 * that is (or was: deleted, moved away) a directory, or a symbolic link
 * to one. One stat, of that entry only. */
static bool changes_dirs(const struct scan_event *ev)
{
	if (ev->mask & (IN_ISDIR | IN_DELETE | IN_MOVED_FROM))
		return true;
	char path[PATH_MAX];
	struct stat st;
	int n = snprintf(path, sizeof(path), "%s/%s", ev->dir, ev->name);
	return n < 0 || (size_t)n >= sizeof(path) || (stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

/* Every file-system group (ev NULL), or only those the events ev[0..n)
 * matter to: the walk of /dev for devicematch entries and the update of
 * the watches only when one of them can need it. */
static void scan_paths(struct daemon *d, const struct scan_event *ev, size_t n)
{
	bool sync = !ev, dirs = !ev;
	for (size_t i = 0; i < n; i++) {
		sync = sync || derived_event_matters(current(d), ev[i].dir, ev[i].name,
						     ev[i].mask & IN_ISDIR);
		dirs = dirs || changes_dirs(&ev[i]);
	}
	if (sync) {
		size_t n_all = 0; /* configured and derived: one limit for both */
		resources_list(d->rs, &n_all);
		derived_sync(d->derived, current(d), n_all, on_find, on_derived, d);
	}
	scan_groups(d, false, ev, n);
	if (dirs && update_watches(d)) { /* once more, for what came before the watch */
		d->events_all = true;
		arm_rescan(d, loop_now_us());
	}
	check_degraded(d);
}

/* Whether an event of a watched directory can change any resource: a
 * group it matters to, or a devicematch entry that may match it. */
static bool event_matters(struct daemon *d, const struct scan_event *ev)
{
	if (derived_event_matters(current(d), ev->dir, ev->name, ev->mask & IN_ISDIR))
		return true;
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	for (size_t r = 0; r < n_res; r++)
		for (size_t g = 0; g < resource_device(res[r])->n_groups; g++)
			if (scan_group_matters(res[r], g, ev))
				return true;
	return false;
}

/* Keeps the event for the next rescan; false when it cannot be (then the
 * rescan reads everything). */
static bool keep_event(struct daemon *d, const char *dir, const char *name, uint32_t mask)
{
	if (d->events_all || d->n_events == EVENTS_MAX)
		return false;
	struct scan_event *ev = &d->events[d->n_events];
	ev->dir = strdup(dir);
	ev->name = strdup(name);
	if (!ev->dir || !ev->name) {
		free(ev->dir);
		free(ev->name);
		return false;
	}
	ev->mask = mask;
	d->n_events++;
	return true;
}

static void on_dev_event(void *data, const char *dir, const char *name, uint32_t mask)
{
	struct daemon *d = data;
	log_debug("dev event dir=%s name=%s mask=0x%x", dir ? dir : "", name, mask);
	metrics_hotplug(d->metrics, HP_PATHS,
			mask & (IN_CREATE | IN_MOVED_TO)     ? HP_ADD
			: mask & (IN_DELETE | IN_MOVED_FROM) ? HP_REMOVE
							     : HP_OTHER);
	/* Lost events, a directory gone, moved or changed itself: no list of
	 * names says what changed, so everything is read again. */
	bool whole =
	    !dir || !*name ||
	    (mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT));
	struct scan_event ev = {(char *)dir, (char *)name, mask};
	if (!whole && !event_matters(d, &ev))
		return; /* no glob, no devicematch entry can see that name */
	if (whole || !keep_event(d, dir, name, mask))
		d->events_all = true;
	if (!d->pending_since_us)
		d->pending_since_us = loop_now_us();
	if (!loop_timer_armed(d->loop, on_rescan, d)) {
		int64_t at = d->last_rescan_us + RESCAN_INTERVAL_US;
		int64_t now = loop_now_us();
		arm_rescan(d, at > now ? at : now);
	}
}

static void on_usb_changed(void *data, int64_t since_us)
{
	struct daemon *d = data;
	d->usb_dirty = true; /* matched once per loop iteration, in on_idle */
	if (!d->pending_since_us || since_us < d->pending_since_us)
		d->pending_since_us = since_us; /* the uevent's arrival */
}

static bool wants_usb(const struct daemon *d)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	for (size_t r = 0; r < n_res; r++)
		if (scan_wants_usb(res[r]))
			return true;
	return false;
}

static int start_usb(struct daemon *d)
{
	if (d->usb || !wants_usb(d))
		return 0;
	d->ids = usbids_open(NULL);
	if (d->ids)
		log_debug("usb names from=%s", usbids_path(d->ids));
	else
		log_info("no usb.ids database found: devices are logged without names");
	d->usb = usb_watch_new(d->loop, d->dw, d->ids, d->metrics, on_usb_changed, d);
	if (!d->usb)
		return -errno;
	scan_groups(d, true, NULL, 0);
	return 0;
}

/* ---- publishing ---- */

static void on_shared(void *data, const char *path, size_t r1, const char *id1, size_t r2,
		      const char *id2)
{
	struct daemon *d = data;
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	if (!once_first(d->warned, path)) /* one warning per file */
		return;
	log_warn("node offered by two resources node=%s resources=%s,%s ids=%s,%s: the kubelet "
		 "counts them apart and may give it to a Pod of each",
		 path, resource_full_name(res[r1]), resource_full_name(res[r2]), id1, id2);
}

static void write_features(struct daemon *d)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	uint32_t ids[512];
	size_t n_ids = d->usb ? usb_watch_settled_ids(d->usb, ids, 512) : 0;
	features_update(d->features, res, n_res, ids, n_ids > 512 ? 512 : n_ids);
}

static void on_expire(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	for (size_t r = 0; r < n_res; r++)
		table_expire(resource_table(res[r]), loop_now_us());
	/* published from the idle callback right after */
}

/* Publishes what changed; true when some resource had a new generation. */
static bool publish(struct daemon *d)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	bool any = false;
	int64_t next = 0;
	for (size_t r = 0; r < n_res; r++) {
		bool changed = resource_publish(res[r]);
		any |= changed;
		if (changed && d->evict) {
			struct snapshot *s = table_snapshot(resource_table(res[r]));
			evict_observe(d->evict, resource_full_name(res[r]), s, loop_now_us());
			snapshot_unref(s);
		}
		int64_t at = table_next_expiry(resource_table(res[r]));
		if (at && (!next || at < next))
			next = at;
	}
	if (any && n_res > 1) {
		const struct table **ts = malloc(n_res * sizeof(*ts));
		for (size_t r = 0; ts && r < n_res; r++)
			ts[r] = resource_table(res[r]);
		if (!ts || table_shared_nodes(ts, n_res, on_shared, d) < 0)
			log_warn("shared nodes not checked: out of memory");
		free(ts);
	}
	if (any)
		write_features(d);
	if (!next)
		loop_timer_cancel(d->loop, on_expire, d);
	else if (loop_timer_set(d->loop, next, on_expire, d) < 0)
		log_error("expiry of gone devices not scheduled: out of memory");
	return any;
}

/* After every loop iteration: rescan once for a burst of events, publish
 * the result once. */
static void on_idle(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	if (d->stopping)
		return;
	/* The events a scan takes in are timed from the first of them to the
	 * publication of what they changed. */
	int64_t since = 0;
	if (d->rescan || d->events_due || d->usb_dirty) {
		since = d->pending_since_us;
		d->pending_since_us = 0;
	}
	if (d->rescan || (d->events_due && d->events_all)) {
		d->rescan = false;
		drop_events(d);
		d->last_rescan_us = loop_now_us();
		scan_paths(d, NULL, 0);
	} else if (d->events_due && d->n_events) {
		/* Taken out first: the scan may keep new events. */
		struct scan_event ev[EVENTS_MAX];
		size_t n = d->n_events;
		memcpy(ev, d->events, n * sizeof(*ev));
		d->n_events = 0;
		d->events_due = false;
		d->last_rescan_us = loop_now_us();
		scan_paths(d, ev, n);
		free_events(ev, n);
	} else {
		d->events_due = false;
	}
	bool usb_changed = d->usb_dirty;
	if (d->usb_dirty) {
		d->usb_dirty = false;
		scan_groups(d, true, NULL, 0);
	}
	if (publish(d) && since)
		metrics_latency(d->metrics, (double)(loop_now_us() - since) / 1e6);
	if (usb_changed) /* a model no group matches still makes a label */
		write_features(d);
}

/* ---- the kubelet ---- */

/* After plugin-directory events: serve every resource whose socket is gone
 * and (re)register what needs it. */
static void on_settle(void *data, bool kubelet_new)
{
	struct daemon *d = data;
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	bool present = plugindir_kubelet_present(d->pd);
	bool retry = false;
	for (size_t r = 0; r < n_res; r++)
		retry |= resource_settle(res[r], kubelet_new, present) < 0;
	if (retry)
		plugindir_retry(d->pd);
}

/* ---- SIGHUP: reload ---- */

/* Reads the flags and the config file again and applies the devices list,
 * the log level and the grace period. A config that does not load changes
 * nothing. */
static void reload(struct daemon *d)
{
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	struct config *nc = calloc(1, sizeof(*nc));
	char err[1024];
	if (!nc) {
		log_error("reload failed: out of memory");
		return;
	}
	if (config_load(nc, d->argc, d->argv, err, sizeof(err)) < 0) {
		log_error("reload refused: %s: keeping the running configuration", err);
		free(nc);
		return;
	}
	config_warn_reload(d->cfg, nc);
	log_set_level(nc->log_level);
	for (size_t r = 0; r < n_res; r++)
		table_set_grace(resource_table(res[r]), nc->grace_ms);
	resources_apply(d->rs, nc);
	/* Resources copy what they use: the previous config can go. */
	if (d->cur) {
		config_free(d->cur);
		free(d->cur);
	}
	d->cur = nc;
	if (start_usb(d) < 0)
		log_error("reload: cannot start USB discovery err=\"%s\"", strerror(errno));
	d->rescan = true;
	d->usb_dirty = d->usb != NULL;
}

/* ---- signals and the gRPC hand-off ---- */

static void on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)events;
	struct daemon *d = data;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP && d->stopping) {
			log_info("SIGHUP received while stopping: ignored");
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			log_info("SIGHUP received: reloading the configuration");
			reload(d);
			continue;
		}
		log_info("signal received signal=%s: stopping", strsignal((int)si.ssi_signo));
		d->exit_code = 0;
		loop_stop(loop);
	}
}

static void on_rpc_jobs(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)fd;
	(void)events;
	struct daemon *d = data;
	rpc_run_jobs(d->rpc);
}

/* ---- start and stop ---- */

/* SIGTERM, SIGINT and SIGHUP through a signalfd on the loop. Blocked
 * before any thread starts, so that every thread inherits the mask. */
static int setup_signals(struct daemon *d)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	int e = pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (e)
		return -e;
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		return -errno;
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0)
		return -errno;
	/* Without it SIGTERM stays blocked and unread: no start at all. */
	return loop_add_fd(d->loop, d->sig_fd, EPOLLIN, on_signal, d);
}

static int start_evict(struct daemon *d)
{
	char why[512];
	struct evict_settings s = {d->cfg->evict_after_ms, d->cfg->pod_resources_socket,
				   d->cfg->sa_dir, d->cfg->node_name};
	if ((d->evict = evict_new(d->loop, d->metrics, &s, why, sizeof(why))))
		return 0;
	log_error("--evict-after cannot work: %s", why);
	return -errno;
}

static int setup(struct daemon *d)
{
	int e;
	if (!(d->loop = loop_new()))
		return -errno;
	loop_set_idle(d->loop, on_idle, d);
	if ((e = setup_signals(d)) < 0)
		return e;
	if (!(d->metrics = metrics_new()) || !(d->warned = once_new()) ||
	    !(d->derived = derived_new()))
		return -ENOMEM;
	if (d->cfg->nfd_file && !(d->features = features_new(d->cfg->nfd_file)))
		return -ENOMEM;
	if ((e = resource_check_plugin_dir(d->cfg->plugin_dir)) < 0)
		return e;
	if (!(d->dw = dirwatch_new(d->loop)))
		return -errno;
	if (!(d->pd = plugindir_new(d->loop, d->dw, d->cfg->plugin_dir, on_settle, d)))
		return -errno;
	if (!(d->rs = resources_new(&d->env, d->pd, d->derived)))
		return -ENOMEM;
	d->env = (struct resource_env){.loop = d->loop,
				       .metrics = d->metrics,
				       .cfg = d->cfg,
				       .kubelet_sock = plugindir_kubelet_sock(d->pd),
				       .late_register = on_late_register,
				       .data = d};
	resource_env_name(&d->env);
	for (size_t r = 0; r < d->cfg->n_devices; r++)
		if (!resources_add(d->rs, &d->cfg->devices[r], NULL))
			return -errno;
	scan_paths(d, NULL, 0);
	if ((e = start_usb(d)) < 0)
		return e;
	/* What a killed earlier run left: specs of resources gone from the
	 * config, partial temporary files. */
	if (d->cfg->cdi &&
	    (e = cdi_clean(d->cfg->cdi_dir, d->cfg->domain, resources_cdi_file, d->rs)) < 0)
		log_warn("cannot clean the CDI directory dir=%s err=\"%s\"", d->cfg->cdi_dir,
			 strerror(-e));
	size_t n_res;
	struct resource *const *res = resources_list(d->rs, &n_res);
	for (size_t r = 0; r < n_res; r++) {
		struct snapshot *s = table_snapshot(resource_table(res[r]));
		log_info("resource=%s devices=%zu healthy=%zu", resource_full_name(res[r]),
			 s ? s->n_devices : 0, s ? s->n_healthy : 0);
		snapshot_unref(s);
	}

	if (!(d->rpc = rpc_new()))
		return -ENOMEM;
	d->env.rpc = d->rpc;
	if ((e = loop_add_fd(d->loop, rpc_job_fd(d->rpc), EPOLLIN, on_rpc_jobs, d)) < 0 ||
	    (e = rpc_start(d->rpc)) < 0)
		return e;
	for (size_t r = 0; r < n_res; r++)
		if ((e = resource_start_server(res[r])) < 0)
			return e;
	if (d->cfg->evict_after_ms && (e = start_evict(d)) < 0)
		return e;
	publish(d);
	/* Without its HTTP endpoint the plugin still does its main job: the
	 * failure is logged (and the probes will say so). */
	d->http = http_start(d->cfg->listen, d->metrics);

	plugindir_remove_stale(d->pd);
	bool retry = false;
	for (size_t r = 0; r < n_res; r++)
		retry |= resource_serve(res[r]) < 0;
	if (retry)
		plugindir_retry(d->pd);
	on_settle(d, false);
	if (!plugindir_kubelet_present(d->pd))
		log_info("waiting for kubelet socket=%s", plugindir_kubelet_sock(d->pd));
	return 0;
}

/* Destroys every resource, then lets the gRPC side call back until each
 * is freed (bounded: rpc_free then drains what is left). */
static void stop_resources(struct daemon *d)
{
	d->stopping = true;
	resources_free(d->rs, true);
	d->rs = NULL;
	int64_t until = loop_now_us() + (int64_t)STOP_WAIT_MS * 1000;
	while (d->env.live && d->rpc && loop_now_us() < until)
		if (loop_step(d->loop, 100) < 0)
			break;
	if (d->env.live)
		log_warn("resources still shutting down after %d ms live=%u: draining",
			 STOP_WAIT_MS, d->env.live);
}

static void teardown(struct daemon *d)
{
	http_stop(d->http);   /* first: it reads the metrics */
	evict_free(d->evict); /* its worker may be in a request: aborted */
	if (d->loop)
		stop_resources(d);
	/* Drains the completion queue: the last callbacks run here, and so do
	 * the frees of resources that were still shutting down. */
	rpc_free(d->rpc);
	drop_events(d);
	usb_watch_free(d->usb);
	usbids_close(d->ids);
	plugindir_free(d->pd);
	dirwatch_free(d->dw);
	derived_free(d->derived);
	if (d->loop)
		loop_free(d->loop);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	/* NFD labels say what this node offers: nothing once we stop (a clean
	 * stop; after a crash the next start rewrites the file). */
	if (d->features && d->exit_code == 0 && unlink(d->cfg->nfd_file) < 0 && errno != ENOENT)
		log_warn("cannot remove the NFD feature file path=%s err=\"%s\"", d->cfg->nfd_file,
			 strerror(errno));
	features_free(d->features);
	once_free(d->warned);
	metrics_free(d->metrics);
	if (d->cur) {
		config_free(d->cur);
		free(d->cur);
	}
}

int daemon_run(const struct config *cfg, int argc, char **argv)
{
	struct daemon d = {.cfg = cfg, .argc = argc, .argv = argv, .sig_fd = -1, .exit_code = -1};
	int e = setup(&d);
	if (e < 0) {
		log_error("start-up failed err=\"%s\"", strerror(-e));
		d.exit_code = 1;
	} else if ((e = loop_run(d.loop)) < 0) {
		log_error("event loop failed err=\"%s\"", strerror(-e));
		d.exit_code = 1;
	}
	teardown(&d);
	if (d.exit_code == 0)
		log_info("stopped");
	return d.exit_code < 0 ? 1 : d.exit_code;
}
