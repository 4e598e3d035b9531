#include "daemon.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cdi.h"
#include "devmatch.h"
#include "http.h"
#include "kubelet.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "nfd.h"
#include "paths.h"
#include "rpc.h"
#include "server.h"
#include "table.h"
#include "usb.h"
#include "usbids.h"
#include "virtual.h"

#define SETTLE_MS	    100 /* after a plugin-directory event, before acting */
#define REGISTER_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS	    500
#define BACKOFF_MAX_MS	    30000
#define DIR_RETRY_MS	    1000
/* Path rescans are rate-limited, not delayed: a lone event is rescanned at
 * once, and the events of a burst (a hub of dongles, udev adding symlinks)
 * that arrive within this interval of the last rescan share the next one.
 * A rescan per event would make a storm of n events cost n full scans. */
#define RESCAN_INTERVAL_US 2000
/* Resources made for files matched by devicematch entries: each is a gRPC
 * server with its socket, so a runaway expression must not make one per
 * file of /dev. */
#define MAX_DERIVED 256

enum reg_state { REG_IDLE, REG_IN_FLIGHT, REG_DONE, REG_BACKOFF };

static const char *const reg_state_name[] = {"idle", "in-flight", "registered", "backoff"};

struct daemon;

struct res_state {
	struct daemon *d;
	size_t r;
	enum reg_state state;
	bool again; /* register once more when the call in flight ends */
	unsigned failures;
	unsigned seq; /* socket incarnation */
	char endpoint[128];
	uint64_t published;
	bool published_any;
	struct metrics_res *m;
	const struct cfg_device *dev; /* in one of the daemon's configs; NULL once retired */
	char *name;		      /* the device's name, kept when retired */
	struct kubelet_call *call;    /* the Register call in flight */
	char *full_name;	      /* domain/name */
	bool retired;		      /* removed from the config by a reload */
	struct cfg_device *owned;     /* a derived device (smarter-device-manager), owned */
	char *cdi_kind;		      /* with --cdi: the kind of its CDI spec */
	char *cdi_json;		      /* the spec last written */
};

struct dir_watch {
	int wd;
	char *dir;
};

struct daemon {
	const struct config *cfg; /* settings: the start-up config's */
	const struct config *cur; /* the newest config: its smarter-device-manager entries */
	int argc;
	char **argv;
	struct config **reloaded; /* configs loaded by SIGHUP, owned */
	size_t n_reloaded;
	struct loop *loop;
	struct table *table;
	struct rpc *rpc;
	struct servers *servers;
	struct res_state **res; /* slots, never removed: retired instead */
	size_t n_res;
	char kubelet_sock[PATH_MAX];
	int sig_fd;
	int plugin_fd; /* inotify on the plugin directory */
	int plugin_wd;
	int dev_fd; /* inotify on the directories path globs look in */
	struct dir_watch *watches;
	size_t n_watches;
	bool rescan;
	int64_t last_rescan_us;
	char **warned; /* "path r1 r2" of shared nodes already warned about */
	size_t n_warned;
	struct usbids *ids;
	struct usb_watch *usb; /* NULL when no group asks for USB devices */
	struct devmatch *sdm;  /* NULL until a config has devicematch entries */
	struct metrics *metrics;
	struct http *http;
	int64_t pending_since_us; /* first device event not yet published */
	char *nfd_written;	  /* the feature lines last written (joined) */
	bool usb_dirty;
	bool kubelet_seen; /* kubelet.sock (re)created since the last settle */
	int exit_code;
};

/* ---- path discovery ---- */

/* The directory of a virtual group's device files, as a glob's would be. */
static void watch_prefix_dir(const char *prefix, char ***dirs, size_t *n_dirs)
{
	struct cfg_path p = {.limit = 1};
	struct cfg_group g = {.paths = &p, .n_paths = 1, .count = 1};
	if (asprintf(&p.path, "%s*", prefix) < 0)
		return;
	paths_watch_dirs(&g, dirs, n_dirs);
	free(p.path);
}

/* Watches what the path and devicematch groups look at; true when it
 * added a watch (what appeared in the new directory before it may have
 * been missed). */
static bool update_watches(struct daemon *d)
{
	char **dirs = NULL;
	size_t n_dirs = 0;
	bool added = false;
	for (size_t r = 0; r < d->n_res; r++)
		for (size_t g = 0; !d->res[r]->retired && g < d->res[r]->dev->n_groups; g++) {
			const struct cfg_group *grp = &d->res[r]->dev->groups[g];
			if (grp->n_paths)
				paths_watch_dirs(grp, &dirs, &n_dirs);
			if (grp->virt && grp->virt->device_file_prefix)
				watch_prefix_dir(grp->virt->device_file_prefix, &dirs, &n_dirs);
		}
	if (d->cur->n_matches && d->sdm)
		devmatch_watch_dirs(d->sdm, &dirs, &n_dirs);
	/* Drop watches no longer wanted. */
	for (size_t i = 0; i < d->n_watches;) {
		bool keep = false;
		for (size_t j = 0; j < n_dirs && !keep; j++)
			keep = strcmp(d->watches[i].dir, dirs[j]) == 0;
		if (keep) {
			i++;
			continue;
		}
		inotify_rm_watch(d->dev_fd, d->watches[i].wd);
		log_debug("unwatch dir=%s", d->watches[i].dir);
		free(d->watches[i].dir);
		d->watches[i] = d->watches[--d->n_watches];
	}
	for (size_t j = 0; j < n_dirs; j++) {
		bool have = false;
		for (size_t i = 0; i < d->n_watches && !have; i++)
			have = strcmp(d->watches[i].dir, dirs[j]) == 0;
		if (have) {
			free(dirs[j]);
			continue;
		}
		int wd =
		    inotify_add_watch(d->dev_fd, dirs[j],
				      IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |
					  IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB | IN_ONLYDIR);
		struct dir_watch *w = realloc(d->watches, (d->n_watches + 1) * sizeof(*w));
		if (wd < 0 || !w) {
			if (wd < 0)
				log_warn("cannot watch dir=%s err=\"%s\"", dirs[j],
					 strerror(errno));
			if (w)
				d->watches = w;
			free(dirs[j]);
			continue;
		}
		d->watches = w;
		d->watches[d->n_watches++] = (struct dir_watch){.wd = wd, .dir = dirs[j]};
		log_debug("watch dir=%s", dirs[j]);
		added = true;
	}
	free(dirs);
	return added;
}

/* Hands the group's env and annotation templates to its instances. */
static int decorate(struct dev_instance *insts, size_t n, const struct cfg_group *g)
{
	for (size_t i = 0; i < n; i++) {
		struct dev_instance *in = &insts[i];
		if (dev_kv_copy(&in->env_tmpl, g->env, g->n_env) < 0)
			return -ENOMEM;
		in->n_env_tmpl = g->n_env;
		if (dev_kv_copy(&in->ann_tmpl, g->annotations, g->n_annotations) < 0)
			return -ENOMEM;
		in->n_ann_tmpl = g->n_annotations;
	}
	return 0;
}

static const char *group_kind(const struct cfg_group *g)
{
	return g->n_usb ? "usb" : g->virt ? "virtual" : g->dev_name ? "devicematch" : "path";
}

/* Expands group g of resource r now: what it provides, undecorated. */
static int expand_group(struct daemon *d, const char *name, const struct cfg_group *g, size_t gi,
			struct dev_instance **insts, size_t *n)
{
	if (g->n_usb)
		return usb_expand(d->usb, d->cur, name, g, gi, insts, n);
	if (g->virt)
		return virtual_expand(g, d->cfg->node_name, insts, n);
	if (g->dev_name)
		return devmatch_expand(CONFIG_SDM_DEV_DIR, g, insts, n);
	return paths_expand(g, gi, insts, n);
}

/* Brings the table up to date with one kind of group (usb, or the file
 * system's: paths, devicematch and virtual) of every resource: expand
 * each group now and hand the result over. */
static void scan_groups(struct daemon *d, bool usb)
{
	int64_t now = loop_now_us();
	for (size_t r = 0; r < d->n_res; r++) {
		if (d->res[r]->retired)
			continue;
		const struct cfg_device *dev = d->res[r]->dev;
		for (size_t g = 0; g < dev->n_groups; g++) {
			const struct cfg_group *grp = &dev->groups[g];
			if (usb != (grp->n_usb > 0))
				continue;
			struct dev_instance *insts = NULL;
			size_t n = 0;
			int e = expand_group(d, d->res[r]->name, grp, g, &insts, &n);
			if (e == 0 && (grp->n_env || grp->n_annotations) &&
			    (e = decorate(insts, n, grp)) < 0)
				dev_instances_free(insts, n); /* expand frees on its errors */
			if (e < 0) {
				log_warn("%s scan failed resource=%s group=%zu err=\"%s\"",
					 group_kind(grp), d->res[r]->full_name, g, strerror(-e));
				continue;
			}
			table_update_group(d->table, r, g, insts, n, now);
		}
	}
}

/* ---- smarter-device-manager: a resource per matching file ---- */

static int add_slot(struct daemon *d, const struct cfg_device *dev, bool owned);
static int serve_resource(struct daemon *d, size_t r);
static void register_resource(struct daemon *d, size_t r);
static bool kubelet_socket_present(const struct daemon *d);

/* True the first time key is seen: for warnings given once. */
static bool first_time(struct daemon *d, const char *key)
{
	for (size_t i = 0; i < d->n_warned; i++)
		if (strcmp(d->warned[i], key) == 0)
			return false;
	char **w = realloc(d->warned, (d->n_warned + 1) * sizeof(*w));
	if (w)
		d->warned = w;
	if (w && (w[d->n_warned] = strdup(key)))
		d->n_warned++;
	return true;
}

/* A device made for the file name, as a config would give it. */
static struct cfg_device *derived_device(const char *name, const char *file, unsigned count)
{
	struct cfg_device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->name = strdup(name);
	dev->groups = calloc(1, sizeof(*dev->groups));
	if (dev->groups) {
		dev->n_groups = 1;
		dev->groups[0].count = count;
		dev->groups[0].dev_name = strdup(file);
	}
	if (!dev->name || !dev->groups || !dev->groups[0].dev_name) {
		config_device_clear(dev);
		free(dev);
		return NULL;
	}
	return dev;
}

static void on_match(void *data, const char *file, size_t mi)
{
	struct daemon *d = data;
	const struct cfg_match *m = &d->cur->matches[mi];
	char key[PATH_MAX + 16], name[PATH_MAX];
	/* smarter-device-manager's names: net/tun is smarter-devices/net_tun */
	snprintf(name, sizeof(name), "%s", file);
	for (char *c = name; *c; c++)
		if (*c == '/')
			*c = '_';
	if (!config_resource_name_ok(name)) {
		snprintf(key, sizeof(key), "sdm-name %s", name);
		if (first_time(d, key))
			log_warn(
			    "devicematch file skipped file=%s/%s devicematch=\"%s\": \"%s\" is "
			    "not a valid resource name (letters, digits, '-', '_', '.'; at "
			    "most 63)",
			    CONFIG_SDM_DEV_DIR, file, m->pattern, name);
		return;
	}
	size_t derived = 0;
	for (size_t r = 0; r < d->n_res; r++) {
		const struct res_state *rs = d->res[r];
		if (rs->retired)
			continue;
		derived += rs->owned != NULL;
		if (strcmp(rs->name, name) != 0)
			continue;
		snprintf(key, sizeof(key), "sdm-dup %s", name);
		if (!rs->owned && first_time(d, key))
			log_warn("devicematch file skipped file=%s/%s: a configured device has the "
				 "name %s",
				 CONFIG_SDM_DEV_DIR, file, name);
		return;
	}
	if (derived >= MAX_DERIVED) { /* an expression like ".*": a server per file */
		if (first_time(d, "sdm-max"))
			log_error(
			    "devicematch file skipped file=%s/%s devicematch=\"%s\": already %d "
			    "resources for matching files (the most served); narrow the "
			    "expressions",
			    CONFIG_SDM_DEV_DIR, file, m->pattern, MAX_DERIVED);
		return;
	}
	struct cfg_device *dev = derived_device(name, file, m->max);
	int e = dev ? add_slot(d, dev, true) : -ENOMEM;
	if (e < 0) {
		config_device_clear(dev);
		free(dev);
		snprintf(key, sizeof(key), "sdm-add %s", name);
		if (e == -ENOMEM || first_time(d, key))
			log_error("cannot add resource=%s err=\"%s\"", name, strerror(-e));
		return;
	}
	size_t r = d->n_res - 1;
	log_info("resource added for a matching file resource=%s file=%s/%s devicematch=\"%s\" "
		 "line=%u count=%u",
		 d->res[r]->full_name, CONFIG_SDM_DEV_DIR, file, m->pattern, m->line, m->max);
	if (d->servers && serve_resource(d, r) == 0 && kubelet_socket_present(d))
		register_resource(d, r);
}

/* A resource for every file the devicematch entries match now; one made
 * once stays (its device goes Unhealthy, then away, with the file). */
static void sync_derived(struct daemon *d)
{
	if (!d->cur->n_matches)
		return;
	if (!d->sdm && !(d->sdm = devmatch_new(CONFIG_SDM_DEV_DIR))) {
		log_error("cannot scan dir=%s: out of memory", CONFIG_SDM_DEV_DIR);
		return;
	}
	int e = devmatch_scan(d->sdm, d->cur->matches, d->cur->n_matches, on_match, d);
	if (e < 0 && first_time(d, "sdm-scan"))
		log_warn("cannot list dir=%s err=\"%s\"", CONFIG_SDM_DEV_DIR, strerror(-e));
}

static void on_rescan(struct loop *loop, void *data);

static void scan_paths(struct daemon *d)
{
	sync_derived(d);
	scan_groups(d, false);
	if (update_watches(d)) /* once more, for what came before the watch */
		loop_timer_set(d->loop, loop_now_us(), on_rescan, d);
}

/* The kernel dropped watch wd (its directory is gone): forget it before
 * the number is handed out again. */
static void forget_watch(struct daemon *d, int wd)
{
	for (size_t i = 0; i < d->n_watches; i++)
		if (d->watches[i].wd == wd) {
			free(d->watches[i].dir);
			d->watches[i] = d->watches[--d->n_watches];
			return;
		}
}

static void on_rescan(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	d->rescan = true; /* done, then published, by on_idle */
}

static void on_dev_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)events;
	struct daemon *d = data;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW)
				log_warn("inotify queue overflow: rescanning");
			log_debug("dev event mask=0x%x name=%s", ev->mask, ev->len ? ev->name : "");
			if (ev->mask & IN_IGNORED)
				forget_watch(d, ev->wd);
			metrics_hotplug(d->metrics, HP_PATHS,
					ev->mask & (IN_CREATE | IN_MOVED_TO)	 ? HP_ADD
					: ev->mask & (IN_DELETE | IN_MOVED_FROM) ? HP_REMOVE
										 : HP_OTHER);
			p += sizeof(*ev) + ev->len;
		}
		if (!d->pending_since_us)
			d->pending_since_us = loop_now_us();
		if (!loop_timer_armed(d->loop, on_rescan, d)) {
			int64_t at = d->last_rescan_us + RESCAN_INTERVAL_US;
			int64_t now = loop_now_us();
			loop_timer_set(d->loop, at > now ? at : now, on_rescan, d);
		}
	}
}

/* ---- USB discovery ---- */

static void scan_usb(struct daemon *d)
{
	scan_groups(d, true);
}

static void on_usb_changed(void *data)
{
	struct daemon *d = data;
	d->usb_dirty = true; /* matched once per loop iteration, in on_idle */
	if (!d->pending_since_us)
		d->pending_since_us = loop_now_us();
}

static bool wants_usb(const struct daemon *d)
{
	for (size_t r = 0; r < d->n_res; r++)
		for (size_t g = 0; !d->res[r]->retired && g < d->res[r]->dev->n_groups; g++)
			if (d->res[r]->dev->groups[g].n_usb)
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
	d->usb = usb_watch_new(d->loop, d->ids, d->metrics, on_usb_changed, d);
	if (!d->usb)
		return -errno;
	scan_usb(d);
	return 0;
}

/* ---- publishing ---- */

static void on_expire(struct loop *loop, void *data);

static void on_shared(void *data, const char *path, size_t r1, const char *id1, size_t r2,
		      const char *id2)
{
	struct daemon *d = data;
	char key[4200];
	snprintf(key, sizeof(key), "%s %zu %zu", path, r1, r2);
	if (!first_time(d, key))
		return;
	log_warn("node offered by two resources node=%s resources=%s,%s ids=%s,%s: the kubelet "
		 "counts them apart and may give it to a Pod of each",
		 path, d->res[r1]->full_name, d->res[r2]->full_name, id1, id2);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The node-feature-discovery feature file: "usbdp.NAME=N" per resource
 * with N > 0 healthy devices, "usbdp.usb-VVVV-PPPP=N" per USB model
 * plugged in. Rewritten (atomically) only when its content changes. */
static void write_features(struct daemon *d)
{
	if (!d->cfg->nfd_file)
		return;
	uint32_t ids[512];
	size_t n_ids = d->usb ? usb_watch_settled_ids(d->usb, ids, 512) : 0;
	if (n_ids > 512)
		n_ids = 512;
	char **lines = calloc(d->n_res + n_ids + 1, sizeof(*lines));
	size_t n = 0;
	bool oom = !lines;
	for (size_t r = 0; !oom && r < d->n_res; r++) {
		uint64_t healthy = d->res[r]->m ? atomic_load(&d->res[r]->m->healthy) : 0;
		if (d->res[r]->retired || !healthy)
			continue;
		oom = asprintf(&lines[n], "usbdp.%s=%llu", d->res[r]->name,
			       (unsigned long long)healthy) < 0;
		n += !oom;
	}
	qsort(ids, n_ids, sizeof(*ids), cmp_u32);
	for (size_t i = 0; !oom && i < n_ids;) {
		size_t j = i;
		while (j < n_ids && ids[j] == ids[i])
			j++;
		oom = asprintf(&lines[n], "usbdp.usb-%04x-%04x=%zu", ids[i] >> 16, ids[i] & 0xffff,
			       j - i) < 0;
		n += !oom;
		i = j;
	}
	char *joined = NULL;
	size_t len = 0;
	FILE *f = oom ? NULL : open_memstream(&joined, &len);
	if (f) {
		qsort(lines, n, sizeof(*lines), cmp_str);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s\n", lines[i]);
		fclose(f);
	}
	if (joined && !(d->nfd_written && strcmp(joined, d->nfd_written) == 0)) {
		int e = nfd_write(d->cfg->nfd_file, (const char *const *)lines, n);
		if (e < 0) {
			log_warn("cannot write the NFD feature file path=%s err=\"%s\"",
				 d->cfg->nfd_file, strerror(-e));
			free(joined);
		} else {
			log_debug("NFD feature file written path=%s features=%zu", d->cfg->nfd_file,
				  n);
			free(d->nfd_written);
			d->nfd_written = joined;
		}
	} else {
		free(joined);
	}
	for (size_t i = 0; lines && i < n; i++)
		free(lines[i]);
	free(lines);
	if (oom)
		log_warn("cannot write the NFD feature file: out of memory");
}

/* With --cdi: the resource's CDI spec, rewritten when it changed -- before
 * the kubelet hears of the devices in it. */
static void write_cdi(struct daemon *d, struct res_state *rs, const struct snapshot *snap)
{
	char *json = NULL;
	int e = cdi_spec_json(rs->cdi_kind, snap, &json);
	if (e == -ENODEV) { /* no device to describe: CDI refuses empty specs */
		if (rs->cdi_json && !*rs->cdi_json)
			return;
		e = cdi_remove(d->cfg->cdi_dir, rs->cdi_kind);
		if (e == 0 && !(json = strdup("")))
			e = -ENOMEM;
	} else if (e == 0 && rs->cdi_json && strcmp(json, rs->cdi_json) == 0) {
		free(json);
		return;
	} else if (e == 0)
		e = cdi_write(d->cfg->cdi_dir, rs->cdi_kind, json);
	if (e < 0) {
		log_warn("cannot write the CDI spec resource=%s dir=%s err=\"%s\"", rs->full_name,
			 d->cfg->cdi_dir, strerror(-e));
		free(json);
		return;
	}
	log_debug("CDI spec %s resource=%s kind=%s", *json ? "written" : "removed", rs->full_name,
		  rs->cdi_kind);
	free(rs->cdi_json);
	rs->cdi_json = json;
}

/* Publishes what changed; true when some resource had a new generation. */
static bool publish(struct daemon *d)
{
	bool any = false;
	for (size_t r = 0; r < d->n_res; r++) {
		struct res_state *rs = d->res[r];
		uint64_t gen = table_generation(d->table, r);
		if (rs->published_any && gen == rs->published)
			continue;
		struct snapshot *snap = table_snapshot(d->table, r);
		if (!snap) {
			log_error("snapshot failed resource=%s: out of memory",
				  d->res[r]->full_name);
			continue;
		}
		log_debug("publish resource=%s generation=%llu devices=%zu healthy=%zu",
			  d->res[r]->full_name, (unsigned long long)gen, snap->n_devices,
			  snap->n_healthy);
		if (rs->m) {
			atomic_store(&rs->m->devices, snap->n_devices);
			atomic_store(&rs->m->healthy, snap->n_healthy);
		}
		if (rs->cdi_kind)
			write_cdi(d, rs, snap);
		servers_publish(d->servers, r, snap);
		rs->published = gen;
		rs->published_any = true;
		any = true;
	}

	if (any && d->n_res > 1)
		table_shared_nodes(d->table, on_shared, d);
	if (any)
		write_features(d);
	int64_t next = table_next_expiry(d->table);
	if (next)
		loop_timer_set(d->loop, next, on_expire, d);
	else
		loop_timer_cancel(d->loop, on_expire, d);
	return any;
}

static void on_expire(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	table_expire(d->table, loop_now_us());
	/* publish runs from the idle callback right after */
}

/* After every loop iteration: rescan once for a burst of events, publish
 * the result once. */
static void on_idle(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	/* The events a scan takes in are timed from the first of them to the
	 * publication of what they changed. */
	int64_t since = 0;
	if (d->rescan || d->usb_dirty) {
		since = d->pending_since_us;
		d->pending_since_us = 0;
	}
	if (d->rescan) {
		d->rescan = false;
		d->last_rescan_us = loop_now_us();
		scan_paths(d);
	}
	bool usb_changed = d->usb_dirty;
	if (d->usb_dirty) {
		d->usb_dirty = false;
		scan_usb(d);
	}
	if (publish(d) && since)
		metrics_latency(d->metrics, (double)(loop_now_us() - since) / 1e6);
	if (usb_changed) /* a model no group matches still makes a label */
		write_features(d);
}

/* ---- kubelet registration ---- */

static void register_resource(struct daemon *d, size_t r);

static bool kubelet_socket_present(const struct daemon *d)
{
	struct stat st;
	return stat(d->kubelet_sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

static void on_retry(struct loop *loop, void *data)
{
	(void)loop;
	struct res_state *rs = data;
	rs->state = REG_IDLE;
	if (rs->retired)
		return;
	if (kubelet_socket_present(rs->d))
		register_resource(rs->d, rs->r);
	else
		log_info("waiting for kubelet socket=%s resource=%s", rs->d->kubelet_sock,
			 rs->full_name);
}

static void on_registered(void *data, int status, const char *message)
{
	struct res_state *rs = data;
	struct daemon *d = rs->d;
	rs->call = NULL;
	if (rs->m) {
		atomic_store(&rs->m->registered, status == 0);
		atomic_fetch_add(status == 0 ? &rs->m->registrations : &rs->m->registration_errors,
				 1);
	}
	if (rs->retired) {
		rs->state = REG_IDLE;
		/* A Register of a removed incarnation that the kubelet took after
		 * the new one's would leave it dialing a gone socket: register the
		 * live slot of that name again. */
		for (size_t r = 0; status == 0 && r < d->n_res; r++)
			if (!d->res[r]->retired && strcmp(d->res[r]->name, rs->name) == 0 &&
			    kubelet_socket_present(d))
				register_resource(d, r);
		return;
	}
	if (status == 0) {
		rs->state = REG_DONE;
		rs->failures = 0;
		log_info("registered with kubelet resource=%s endpoint=%s", rs->full_name,
			 rs->endpoint);
	} else {
		unsigned shift = rs->failures < 6 ? rs->failures : 6;
		int64_t delay = (int64_t)BACKOFF_MIN_MS << shift;
		if (delay > BACKOFF_MAX_MS)
			delay = BACKOFF_MAX_MS;
		rs->failures++;
		rs->state = REG_BACKOFF;
		log_warn("registration failed resource=%s status=%d reason=\"%s\" attempt=%u "
			 "retry_ms=%lld",
			 rs->full_name, status, message, rs->failures, (long long)delay);
		loop_timer_set(d->loop, loop_now_us() + delay * 1000, on_retry, rs);
	}
	if (rs->again && d->exit_code < 0) {
		rs->again = false;
		loop_timer_cancel(d->loop, on_retry, rs);
		rs->state = REG_IDLE;
		register_resource(d, rs->r);
	}
}

static void register_resource(struct daemon *d, size_t r)
{
	struct res_state *rs = d->res[r];
	if (rs->state == REG_IN_FLIGHT) {
		rs->again = true;
		return;
	}
	loop_timer_cancel(d->loop, on_retry, rs);
	log_info("registering with kubelet resource=%s endpoint=%s previous=%s",
		 d->res[r]->full_name, rs->endpoint, reg_state_name[rs->state]);
	int e = kubelet_register(d->rpc, d->kubelet_sock, rs->endpoint, rs->full_name,
				 REGISTER_TIMEOUT_MS, on_registered, rs, &rs->call);
	if (e < 0) {
		on_registered(rs, 2 /* UNKNOWN */, strerror(-e));
		return;
	}
	rs->state = REG_IN_FLIGHT;
}

/* Creates resource r's socket under a fresh name and serves it. */
static int serve_resource(struct daemon *d, size_t r)
{
	struct res_state *rs = d->res[r];
	char path[PATH_MAX];
	int n =
	    snprintf(rs->endpoint, sizeof(rs->endpoint), "usbdp-%s.%u.sock", rs->name, rs->seq++);
	if (n < 0 || (size_t)n >= sizeof(rs->endpoint))
		return -ENAMETOOLONG;
	n = snprintf(path, sizeof(path), "%s%s", d->cfg->plugin_dir, rs->endpoint);
	if (n < 0 || (size_t)n >= sizeof(path) ||
	    (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		log_error("socket path too long for a unix socket path=%s%s", d->cfg->plugin_dir,
			  rs->endpoint);
		return -ENAMETOOLONG;
	}
	int e = servers_listen(d->servers, r, path);
	if (e < 0)
		log_error("cannot serve resource=%s socket=%s err=\"%s\"", d->res[r]->full_name,
			  path, strerror(-e));
	if (rs->m) {
		atomic_store(&rs->m->serving, e == 0);
		atomic_store(&rs->m->registered, 0); /* a new socket: not registered yet */
	}
	if (e == 0) /* after the metrics: what the log says, /healthz says too */
		log_info("serving resource=%s socket=%s", rs->full_name, path);
	return e;
}

/* Settles the state after plugin-directory events: serve every resource
 * whose socket is gone, and (re)register whatever needs it. */
static void on_settle(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	bool kubelet_new = d->kubelet_seen;
	d->kubelet_seen = false;
	bool present = kubelet_socket_present(d);
	for (size_t r = 0; r < d->n_res; r++) {
		if (d->res[r]->retired)
			continue;
		bool reserve = !servers_socket_ok(d->servers, r);
		if (reserve && d->res[r]->m)
			atomic_store(&d->res[r]->m->serving, 0);
		if (reserve) {
			log_info("socket gone, serving again resource=%s", d->res[r]->full_name);
			if (serve_resource(d, r) < 0) {
				loop_timer_set(d->loop, loop_now_us() + DIR_RETRY_MS * 1000,
					       on_settle, d);
				continue;
			}
		}
		if (present && (reserve || kubelet_new || d->res[r]->state == REG_IDLE))
			register_resource(d, r);
	}
	if (!present)
		log_info("waiting for kubelet socket=%s", d->kubelet_sock);
}

static int watch_plugin_dir(struct daemon *d);

static void on_plugin_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)events;
	struct daemon *d = data;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool act = false, lost = false;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			const char *name = ev->len ? ev->name : "";
			if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
				lost = true;
				continue;
			}
			if (strcmp(name, KUBELET_SOCKET_NAME) == 0 &&
			    (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
				log_info("kubelet socket created: kubelet (re)started");
				d->kubelet_seen = true;
				act = true;
			} else if (strncmp(name, "usbdp-", 6) == 0 &&
				   (ev->mask & (IN_DELETE | IN_MOVED_FROM))) {
				for (size_t r = 0; r < d->n_res; r++)
					if (!d->res[r]->retired &&
					    strcmp(name, d->res[r]->endpoint) == 0) {
						log_info("plugin socket deleted resource=%s",
							 d->res[r]->full_name);
						act = true;
					}
			} else if (ev->mask & IN_Q_OVERFLOW) {
				act = true;
			}
		}
	}
	if (lost) {
		log_warn("plugin directory gone dir=%s: waiting for it", d->cfg->plugin_dir);
		loop_del_fd(d->loop, d->plugin_fd);
		close(d->plugin_fd);
		d->plugin_fd = -1;
		if (watch_plugin_dir(d) < 0)
			return;
		act = true;
	}
	if (act && !loop_timer_armed(d->loop, on_settle, d))
		loop_timer_set(d->loop, loop_now_us() + SETTLE_MS * 1000, on_settle, d);
}

static void on_dir_retry(struct loop *loop, void *data)
{
	(void)loop;
	struct daemon *d = data;
	if (watch_plugin_dir(d) == 0)
		on_settle(d->loop, d);
}

/* mkdir -p of the plugin directory, then an inotify watch on it. */
static int watch_plugin_dir(struct daemon *d)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", d->cfg->plugin_dir);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			break;
		*p = '/';
	}
	d->plugin_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->plugin_fd < 0)
		return -errno;
	d->plugin_wd = inotify_add_watch(d->plugin_fd, d->cfg->plugin_dir,
					 IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM |
					     IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	if (d->plugin_wd < 0) {
		int e = errno;
		log_warn("cannot watch plugin directory dir=%s err=\"%s\": retrying",
			 d->cfg->plugin_dir, strerror(e));
		close(d->plugin_fd);
		d->plugin_fd = -1;
		loop_timer_set(d->loop, loop_now_us() + DIR_RETRY_MS * 1000, on_dir_retry, d);
		return -e;
	}
	return loop_add_fd(d->loop, d->plugin_fd, EPOLLIN, on_plugin_event, d);
}

/* Removes sockets named like ours that nobody serves (a killed earlier
 * run); a live one (another instance) is left alone. */
static void remove_stale_sockets(struct daemon *d)
{
	char pattern[PATH_MAX];
	for (size_t r = 0; r < d->n_res; r++) {
		int n = snprintf(pattern, sizeof(pattern), "%susbdp-%s.*.sock", d->cfg->plugin_dir,
				 d->res[r]->name);
		if (n < 0 || (size_t)n >= sizeof(pattern))
			continue;
		glob_t gl;
		if (glob(pattern, 0, NULL, &gl) != 0)
			continue;
		for (size_t i = 0; i < gl.gl_pathc; i++) {
			struct sockaddr_un sa = {.sun_family = AF_UNIX};
			if (strlen(gl.gl_pathv[i]) >= sizeof(sa.sun_path))
				continue;
			strcpy(sa.sun_path, gl.gl_pathv[i]);
			int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fd < 0)
				continue;
			if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
			    errno == ECONNREFUSED) {
				log_info("removing stale socket path=%s", gl.gl_pathv[i]);
				unlink(gl.gl_pathv[i]);
			}
			close(fd);
		}
		globfree(&gl);
	}
}

/* ---- SIGHUP: reload ---- */

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_kv(const struct dev_kv *a, size_t na, const struct dev_kv *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].key, b[i].key) || strcmp(a[i].value, b[i].value))
			return false;
	return true;
}

static bool same_device(const struct cfg_device *a, const struct cfg_device *b)
{
	if (strcmp(a->name, b->name) || a->n_groups != b->n_groups)
		return false;
	for (size_t g = 0; g < a->n_groups; g++) {
		const struct cfg_group *x = &a->groups[g], *y = &b->groups[g];
		if (x->count != y->count || x->n_paths != y->n_paths || x->n_usb != y->n_usb ||
		    !str_eq(x->dev_name, y->dev_name) ||
		    !same_kv(x->env, x->n_env, y->env, y->n_env) ||
		    !same_kv(x->annotations, x->n_annotations, y->annotations, y->n_annotations) ||
		    !x->virt != !y->virt)
			return false;
		if (x->virt && (x->virt->count != y->virt->count ||
				!str_eq(x->virt->id_prefix, y->virt->id_prefix) ||
				!str_eq(x->virt->device_file_prefix, y->virt->device_file_prefix)))
			return false;
		for (size_t i = 0; i < x->n_paths; i++) {
			const struct cfg_path *p = &x->paths[i], *q = &y->paths[i];
			if (!str_eq(p->path, q->path) || !str_eq(p->mount_path, q->mount_path) ||
			    p->type != q->type || strcmp(p->permissions, q->permissions) ||
			    p->read_only != q->read_only || p->limit != q->limit ||
			    p->optional != q->optional)
				return false;
		}
		for (size_t i = 0; i < x->n_usb; i++) {
			const struct cfg_usb *u = &x->usb[i], *v = &y->usb[i];
			if (u->vendor != v->vendor || u->product != v->product ||
			    u->usb_class != v->usb_class || !str_eq(u->serial, v->serial) ||
			    !str_eq(u->port, v->port) || !str_eq(u->mount_path, v->mount_path))
				return false;
		}
	}
	return true;
}

static void retire(struct daemon *d, size_t r)
{
	struct res_state *rs = d->res[r];
	rs->retired = true;
	rs->dev = NULL;
	loop_timer_cancel(d->loop, on_retry, rs);
	kubelet_cancel(rs->call);
	servers_stop(d->servers, r);
	table_clear_resource(d->table, r);
	if (rs->cdi_kind) {
		int e = cdi_remove(d->cfg->cdi_dir, rs->cdi_kind);
		if (e < 0)
			log_warn("cannot remove the CDI spec resource=%s err=\"%s\"", rs->full_name,
				 strerror(-e));
		free(rs->cdi_json);
		rs->cdi_json = NULL;
	}
	if (rs->owned) {
		config_device_clear(rs->owned);
		free(rs->owned);
		rs->owned = NULL;
	}
	if (rs->m) {
		atomic_store(&rs->m->active, 0);
		atomic_store(&rs->m->registered, 0);
		atomic_store(&rs->m->serving, 0);
	}
	log_info("resource removed by reload resource=%s: no longer served", rs->full_name);
}

static void warn_setting(const char *what, const char *old, const char *now)
{
	if (!str_eq(old, now))
		log_warn("reload: %s changed from \"%s\" to \"%s\": it takes effect at the next "
			 "start; still using \"%s\"",
			 what, old, now, old);
}

/* Frees the reloaded configs no resource points into any more, so that
 * reloading does not grow memory. */
static void drop_unused_configs(struct daemon *d)
{
	size_t k = 0;
	for (size_t i = 0; i < d->n_reloaded; i++) {
		const struct config *c = d->reloaded[i];
		bool used = c == d->cur; /* its devicematch entries */
		for (size_t r = 0; r < d->n_res && !used; r++) {
			const struct cfg_device *dev = d->res[r]->dev;
			used = dev && dev >= c->devices && dev < c->devices + c->n_devices;
		}
		if (used) {
			d->reloaded[k++] = d->reloaded[i];
		} else {
			config_free(d->reloaded[i]);
			free(d->reloaded[i]);
		}
	}
	d->n_reloaded = k;
}

/* A resource made for a matching file stays while an entry of the new
 * config still matches it, with that entry's count. */
static void reload_derived(struct daemon *d, size_t r, const struct config *nc)
{
	struct res_state *rs = d->res[r];
	const struct cfg_match *m = NULL;
	const char *file = rs->owned->groups[0].dev_name; /* net/tun, not net_tun */
	for (size_t i = 0; i < nc->n_matches && !m; i++)
		if (regexec(&nc->matches[i].regex, file, 0, NULL, 0) == 0)
			m = &nc->matches[i];
	bool clash = false;
	for (size_t j = 0; j < nc->n_devices && !clash; j++)
		clash = strcmp(nc->devices[j].name, rs->name) == 0;
	if (!m || clash) {
		retire(d, r);
	} else if (rs->owned->groups[0].count != m->max) {
		rs->owned->groups[0].count = m->max;
		table_clear_resource(d->table, r); /* rescanned */
		log_info("resource changed by reload resource=%s count=%u", rs->full_name, m->max);
	}
}

/* Reads the flags and the config file again and applies the devices list,
 * the log level and the grace period. Resources not changed keep their
 * socket, streams and registration; changed ones are rescanned on the
 * same socket; removed ones stop being served; new ones are served and
 * registered. A config that does not load changes nothing. */
static void reload(struct daemon *d)
{
	struct config *nc = calloc(1, sizeof(*nc));
	char err[1024];
	struct config **list = realloc(d->reloaded, (d->n_reloaded + 1) * sizeof(*list));
	if (list)
		d->reloaded = list;
	if (!nc || !list) {
		free(nc);
		log_error("reload failed: out of memory");
		return;
	}
	if (config_load(nc, d->argc, d->argv, err, sizeof(err)) < 0) {
		log_error("reload refused: %s: keeping the running configuration", err);
		free(nc);
		return;
	}
	d->reloaded[d->n_reloaded++] = nc;
	d->cur = nc;
	if (d->sdm)
		devmatch_forget(d->sdm); /* new expressions */
	warn_setting("domain", d->cfg->domain, nc->domain);
	if (nc->cdi != d->cfg->cdi)
		warn_setting("cdi", d->cfg->cdi ? "true" : "false", nc->cdi ? "true" : "false");
	warn_setting("cdi-dir", d->cfg->cdi_dir, nc->cdi_dir);
	warn_setting("plugin-directory", d->cfg->plugin_dir, nc->plugin_dir);
	warn_setting("listen", d->cfg->listen, nc->listen);
	log_set_level(nc->log_level);
	table_set_grace(d->table, nc->grace_ms);
	size_t n_before = d->n_res;
	for (size_t r = 0; r < n_before; r++) {
		struct res_state *rs = d->res[r];
		if (rs->retired)
			continue;
		if (rs->owned) {
			reload_derived(d, r, nc);
			continue;
		}
		const struct cfg_device *now = NULL;
		for (size_t j = 0; j < nc->n_devices && !now; j++)
			if (strcmp(nc->devices[j].name, rs->name) == 0)
				now = &nc->devices[j];
		if (!now) {
			retire(d, r);
		} else if (same_device(rs->dev, now)) {
			rs->dev = now; /* the same, from the config that stays */
		} else {
			rs->dev = now;
			table_clear_resource(d->table, r); /* rescanned below */
			log_info("resource changed by reload resource=%s: rescanning",
				 rs->full_name);
		}
	}
	for (size_t j = 0; j < nc->n_devices; j++) {
		bool known = false;
		for (size_t r = 0; r < n_before && !known; r++)
			known = !d->res[r]->retired &&
				strcmp(d->res[r]->name, nc->devices[j].name) == 0;
		if (known)
			continue;
		if (add_slot(d, &nc->devices[j], false) < 0) {
			log_error("reload: out of memory adding resource=%s", nc->devices[j].name);
			continue;
		}
		log_info("resource added by reload resource=%s", d->res[d->n_res - 1]->full_name);
		if (serve_resource(d, d->n_res - 1) == 0 && kubelet_socket_present(d))
			register_resource(d, d->n_res - 1);
	}
	drop_unused_configs(d);
	if (start_usb(d) < 0)
		log_error("reload: cannot start USB discovery err=\"%s\"", strerror(errno));
	d->rescan = true;
	d->usb_dirty = d->usb != NULL;
}

/* ---- signals ---- */

static void on_signal(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)events;
	struct daemon *d = data;
	struct signalfd_siginfo si;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
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

/* A resource slot for dev: its names, metrics, table and (once the gRPC
 * side exists) server entries. The slot's index is the same in all. */
/* Frees a slot and what it owns; NULL is a no-op. */
static void slot_free(struct res_state *rs)
{
	if (!rs)
		return;
	free(rs->name);
	free(rs->full_name);
	free(rs->cdi_kind);
	free(rs->cdi_json);
	config_device_clear(rs->owned);
	free(rs->owned);
	free(rs);
}

static int add_slot(struct daemon *d, const struct cfg_device *dev, bool owned)
{
	struct res_state *rs = calloc(1, sizeof(*rs));
	struct res_state **a = realloc(d->res, (d->n_res + 1) * sizeof(*a));
	char kind[CDI_KIND_MAX];
	if (a)
		d->res = a;
	if (!rs || !a || asprintf(&rs->full_name, "%s/%s", d->cfg->domain, dev->name) < 0 ||
	    !(rs->name = strdup(dev->name))) {
		slot_free(rs);
		return -ENOMEM;
	}
	int e = d->cfg->cdi ? cdi_kind(d->cfg->domain, dev->name, kind, sizeof(kind)) : 0;
	for (size_t r = 0; e == 0 && d->cfg->cdi && r < d->n_res; r++)
		if (!d->res[r]->retired && strcmp(d->res[r]->cdi_kind, kind) == 0) {
			log_error("resource=%s not served: its CDI kind %s is also %s's (CDI turns "
				  "characters other than letters, digits, '-' and '_' into '_')",
				  rs->full_name, kind, d->res[r]->full_name);
			e = -EEXIST;
		}
	if (e == 0 && d->cfg->cdi && !(rs->cdi_kind = strdup(kind)))
		e = -ENOMEM;
	if (e < 0) {
		slot_free(rs);
		return e;
	}
	rs->d = d;
	rs->r = d->n_res;
	rs->dev = dev;
	/* A name served before (removed, then added back by reloads) goes on
	 * with its socket numbers: gRPC unlinks an old listener's file
	 * whenever it gets to it, so a name is never reused. */
	for (size_t r = 0; r < d->n_res; r++)
		if (d->res[r]->retired && strcmp(d->res[r]->name, rs->name) == 0 &&
		    d->res[r]->seq > rs->seq)
			rs->seq = d->res[r]->seq;
	rs->m = metrics_resource(d->metrics, rs->full_name);
	if (table_add_resource(d->table, rs->full_name) != (ssize_t)rs->r ||
	    (d->servers &&
	     servers_add(d->servers, dev->name, rs->full_name, rs->cdi_kind) != (ssize_t)rs->r)) {
		slot_free(rs);
		return -ENOMEM;
	}
	if (owned)
		rs->owned = (struct cfg_device *)dev;
	if (d->servers)
		servers_set_metrics(d->servers, rs->r, rs->m);
	d->res[d->n_res++] = rs;
	return 0;
}

static int setup(struct daemon *d)
{
	int e;
	int n = snprintf(d->kubelet_sock, sizeof(d->kubelet_sock), "%s%s", d->cfg->plugin_dir,
			 KUBELET_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(d->kubelet_sock))
		return -ENAMETOOLONG;

	if (!(d->loop = loop_new()))
		return -errno;
	loop_set_idle(d->loop, on_idle, d);

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	d->sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (d->sig_fd < 0)
		return -errno;
	loop_add_fd(d->loop, d->sig_fd, EPOLLIN, on_signal, d);

	if (!(d->metrics = metrics_new()))
		return -ENOMEM;
	if (!(d->table = table_new(0, NULL, d->cfg->grace_ms)))
		return -ENOMEM;
	for (size_t r = 0; r < d->cfg->n_devices; r++)
		if ((e = add_slot(d, &d->cfg->devices[r], false)) < 0)
			return e;
	d->dev_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->dev_fd < 0)
		return -errno;
	loop_add_fd(d->loop, d->dev_fd, EPOLLIN, on_dev_event, d);
	scan_paths(d);
	e = start_usb(d);
	if (e < 0)
		return e;
	for (size_t r = 0; r < d->n_res; r++) {
		struct snapshot *s = table_snapshot(d->table, r);
		log_info("resource=%s devices=%zu healthy=%zu", d->res[r]->full_name,
			 s ? s->n_devices : 0, s ? s->n_healthy : 0);
		snapshot_unref(s);
	}

	if (!(d->rpc = rpc_new()))
		return -ENOMEM;
	e = loop_add_fd(d->loop, rpc_job_fd(d->rpc), EPOLLIN, on_rpc_jobs, d);
	if (e < 0)
		return e;
	if ((e = rpc_start(d->rpc)) < 0)
		return e;
	if (!(d->servers = servers_new(d->rpc, 0, NULL, NULL)))
		return -ENOMEM;
	for (size_t r = 0; r < d->n_res; r++) {
		if (servers_add(d->servers, d->res[r]->name, d->res[r]->full_name,
				d->res[r]->cdi_kind) != (ssize_t)r)
			return -ENOMEM;
		servers_set_metrics(d->servers, r, d->res[r]->m);
	}
	publish(d);
	/* Without its HTTP endpoint the plugin still does its main job: the
	 * failure is logged (and the probes will say so). */
	d->http = http_start(d->cfg->listen, d->metrics);

	if (watch_plugin_dir(d) == 0)
		remove_stale_sockets(d);
	for (size_t r = 0; r < d->n_res; r++)
		if (serve_resource(d, r) < 0)
			loop_timer_set(d->loop, loop_now_us() + DIR_RETRY_MS * 1000, on_settle, d);
	on_settle(d->loop, d);
	return 0;
}

static void teardown(struct daemon *d)
{
	http_stop(d->http); /* first: it reads the metrics */
	for (size_t r = 0; r < d->n_res; r++)
		kubelet_cancel(d->res[r]->call); /* a kubelet that never answers */
	servers_free(d->servers);		 /* stops serving, removes our sockets */
	rpc_free(d->rpc);			 /* runs the last registration callbacks */
	usb_watch_free(d->usb);
	usbids_close(d->ids);
	devmatch_free(d->sdm);
	if (d->loop)
		loop_free(d->loop);
	table_free(d->table);
	for (size_t i = 0; i < d->n_watches; i++)
		free(d->watches[i].dir);
	free(d->watches);
	if (d->dev_fd >= 0)
		close(d->dev_fd);
	if (d->plugin_fd >= 0)
		close(d->plugin_fd);
	if (d->sig_fd >= 0)
		close(d->sig_fd);
	metrics_free(d->metrics);
	free(d->nfd_written);
	for (size_t i = 0; i < d->n_warned; i++)
		free(d->warned[i]);
	free(d->warned);
	for (size_t r = 0; r < d->n_res; r++)
		slot_free(d->res[r]);
	free(d->res);
	for (size_t i = 0; i < d->n_reloaded; i++) {
		config_free(d->reloaded[i]);
		free(d->reloaded[i]);
	}
	free(d->reloaded);
}

int daemon_run(const struct config *cfg, int argc, char **argv)
{
	struct daemon d = {.cfg = cfg,
			   .cur = cfg,
			   .argc = argc,
			   .argv = argv,
			   .sig_fd = -1,
			   .plugin_fd = -1,
			   .dev_fd = -1,
			   .exit_code = -1};
	int e = setup(&d);
	if (e < 0) {
		log_error("start-up failed err=\"%s\"", strerror(-e));
		d.exit_code = 1;
	} else {
		e = loop_run(d.loop);
		if (e < 0) {
			log_error("event loop failed err=\"%s\"", strerror(-e));
			d.exit_code = 1;
		}
	}
	teardown(&d);
	if (d.exit_code == 0)
		log_info("stopped");
	return d.exit_code < 0 ? 1 : d.exit_code;
}
