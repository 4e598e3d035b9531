#include "scan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmatch.h"
#include "log.h"
#include "paths.h"
#include "virtual.h"

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

/* What group g (index gi) provides now, undecorated. */
static int expand_group(const struct resource *r, const struct cfg_group *g, size_t gi,
			const struct usb_watch *w, const struct config *cfg, const char *node_name,
			struct dev_instance **insts, size_t *n)
{
	if (g->n_usb)
		return usb_expand(w, cfg, resource_name(r), g, gi, insts, n);
	if (g->virt)
		return virtual_expand(g, node_name, insts, n);
	if (g->dev_name)
		return devmatch_expand(CONFIG_SDM_DEV_DIR, g, insts, n);
	return paths_expand(g, gi, insts, n);
}

/* Whether group g is to be scanned: of the kind asked for and, with
 * events, one of them matters to it. */
static bool wanted(const struct resource *r, size_t g, bool usb, const struct scan_event *ev,
		   size_t n_ev)
{
	const struct cfg_group *grp = &resource_device(r)->groups[g];
	if (usb != (grp->n_usb > 0))
		return false;
	if (!ev)
		return true;
	for (size_t i = 0; i < n_ev; i++)
		if (scan_group_matters(r, g, &ev[i]))
			return true;
	return false;
}

/* True when the file at path is one an event named, or lies below it, or
 * holds it (a Device directory): its health may have changed. */
static bool event_touches(const struct scan_event *ev, const char *path)
{
	size_t dl = strlen(ev->dir), nl = strlen(ev->name), pl = strlen(path);
	while (dl > 1 && ev->dir[dl - 1] == '/')
		dl--;
	if (pl >= dl && strncmp(path, ev->dir, dl) == 0 && (path[dl] == '\0' || path[dl] == '/')) {
		if (path[dl] == '\0') /* the directory itself */
			return true;
		const char *rest = path + dl + 1;
		return nl == 0 ||
		       (strncmp(rest, ev->name, nl) == 0 && (rest[nl] == '\0' || rest[nl] == '/'));
	}
	/* below a node that is a directory */
	return dl > pl && strncmp(ev->dir, path, pl) == 0 && ev->dir[pl] == '/';
}

struct events {
	const struct scan_event *ev;
	size_t n;
};

static bool touched(void *data, const char *path)
{
	const struct events *evs = data;
	for (size_t i = 0; i < evs->n; i++)
		if (event_touches(&evs->ev[i], path))
			return true;
	return false;
}

static int scan(struct resource *r, bool usb, const struct usb_watch *w, const struct config *cfg,
		const char *node_name, int64_t now_us, const struct scan_event *ev, size_t n_ev)
{
	int failed = 0;
	const struct cfg_device *dev = resource_device(r);
	for (size_t g = 0; g < dev->n_groups; g++) {
		const struct cfg_group *grp = &dev->groups[g];
		if (!wanted(r, g, usb, ev, n_ev))
			continue;
		struct dev_instance *insts = NULL;
		size_t n = 0;
		int e = expand_group(r, grp, g, w, cfg, node_name, &insts, &n);
		if (e == 0 && (grp->n_env || grp->n_annotations) &&
		    (e = decorate(insts, n, grp)) < 0)
			dev_instances_free(insts, n); /* expand frees on its errors */
		if (e < 0) {
			log_warn("%s scan failed resource=%s group=%zu err=\"%s\"", group_kind(grp),
				 resource_full_name(r), g, strerror(-e));
			failed = e;
			continue;
		}
		struct events evs = {ev, n_ev};
		e = table_update_group_touched(resource_table(r), g, insts, n, now_us,
					       ev ? touched : NULL, &evs);
		if (e < 0) {
			log_error("table update failed resource=%s group=%zu err=\"%s\"",
				  resource_full_name(r), g, strerror(-e));
			failed = e;
		}
	}
	return failed;
}

int scan_resource(struct resource *r, bool usb, const struct usb_watch *w, const struct config *cfg,
		  const char *node_name, int64_t now_us)
{
	return scan(r, usb, w, cfg, node_name, now_us, NULL, 0);
}

int scan_resource_events(struct resource *r, const struct config *cfg, const char *node_name,
			 int64_t now_us, const struct scan_event *ev, size_t n)
{
	return scan(r, false, NULL, cfg, node_name, now_us, ev, n);
}

/* The glob a virtual group's device files are looked for with. */
static int prefix_glob(const char *prefix, struct cfg_path *p, struct cfg_group *g)
{
	*p = (struct cfg_path){.limit = 1};
	*g = (struct cfg_group){.paths = p, .n_paths = 1, .count = 1};
	return asprintf(&p->path, "%s*", prefix) < 0 ? -ENOMEM : 0;
}

bool scan_group_matters(const struct resource *r, size_t gi, const struct scan_event *ev)
{
	const struct cfg_group *g = &resource_device(r)->groups[gi];
	if (g->n_usb)
		return false;
	if (g->dev_name)
		return devmatch_event_matters(CONFIG_SDM_DEV_DIR, g, ev->dir, ev->name);
	if (g->virt && !g->virt->device_file_prefix)
		return false;
	if (g->virt) {
		struct cfg_path p;
		struct cfg_group pg;
		if (prefix_glob(g->virt->device_file_prefix, &p, &pg) < 0)
			return true;
		bool m = paths_event_matters(&pg, ev->dir, ev->name);
		free(p.path);
		return m;
	}
	return paths_event_matters(g, ev->dir, ev->name);
}

/* The directory of a virtual group's device files, as a glob's would be. */
static int watch_prefix_dir(const char *prefix, char ***dirs, size_t *n_dirs)
{
	struct cfg_path p;
	struct cfg_group g;
	if (prefix_glob(prefix, &p, &g) < 0)
		return -ENOMEM;
	int e = paths_watch_dirs(&g, dirs, n_dirs);
	free(p.path);
	return e;
}

int scan_watch_dirs(const struct resource *r, char ***dirs, size_t *n_dirs)
{
	const struct cfg_device *dev = resource_device(r);
	int e = 0;
	for (size_t g = 0; e == 0 && g < dev->n_groups; g++) {
		const struct cfg_group *grp = &dev->groups[g];
		if (grp->n_paths)
			e = paths_watch_dirs(grp, dirs, n_dirs);
		if (e == 0 && grp->n_paths)
			e = paths_device_dirs(grp, dirs, n_dirs);
		if (e == 0 && grp->virt && grp->virt->device_file_prefix)
			e = watch_prefix_dir(grp->virt->device_file_prefix, dirs, n_dirs);
	}
	return e;
}

bool scan_wants_usb(const struct resource *r)
{
	const struct cfg_device *dev = resource_device(r);
	for (size_t g = 0; g < dev->n_groups; g++)
		if (dev->groups[g].n_usb)
			return true;
	return false;
}
