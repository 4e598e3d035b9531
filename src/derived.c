#include "derived.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devmatch.h"
#include "log.h"
#include "once.h"
#include "sizelimits.h"

struct derived {
	struct devmatch *dm;	   /* NULL until a config has entries */
	const struct config *seen; /* the config whose expressions dm remembers */
	struct once *warned;
	/* for on_match, during one derived_sync */
	const struct config *cfg;
	size_t n_resources; /* configured and derived */
	derived_find_cb find;
	derived_add_cb add;
	void *data;
};

struct derived *derived_new(void)
{
	struct derived *dv = calloc(1, sizeof(*dv));
	if (dv && !(dv->warned = once_new())) {
		free(dv);
		return NULL;
	}
	return dv;
}

void derived_free(struct derived *dv)
{
	if (!dv)
		return;
	devmatch_free(dv->dm);
	once_free(dv->warned);
	free(dv);
}

/* smarter-device-manager's names: every character outside [A-Za-z0-9_-]
 * becomes '_' (net/tun is net_tun, pci-0000:00:14.0 is pci-0000_00_14_0).
 * 0 or -ENAMETOOLONG. */
static int resource_name_of(const char *file, char *name, size_t len)
{
	int n = snprintf(name, len, "%s", file);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	for (char *c = name; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
			*c = '_';
	return 0;
}

/* A device made for the file name, as a config would give it. */
static int derived_device(struct cfg_device *dev, const char *name, const char *file,
			  unsigned count)
{
	*dev = (struct cfg_device){0};
	dev->name = strdup(name);
	dev->groups = calloc(1, sizeof(*dev->groups));
	if (dev->groups) {
		dev->n_groups = 1;
		dev->groups[0].count = count;
		dev->groups[0].dev_name = strdup(file);
	}
	if (!dev->name || !dev->groups || !dev->groups[0].dev_name) {
		config_device_clear(dev);
		return -ENOMEM;
	}
	return 0;
}

static bool warn_once(struct derived *dv, const char *what, const char *name)
{
	char key[PATH_MAX + 32];
	int n = snprintf(key, sizeof(key), "%s %s", what, name);
	return n < 0 || (size_t)n >= sizeof(key) || once_first(dv->warned, key);
}

static void on_match(void *data, const char *file, size_t mi)
{
	struct derived *dv = data;
	const struct cfg_match *m = &dv->cfg->matches[mi];
	char name[PATH_MAX];
	if (resource_name_of(file, name, sizeof(name)) < 0 || !config_resource_name_ok(name)) {
		/* What the kubelet would refuse too: no use registering it. */
		if (warn_once(dv, "name", file))
			log_warn("devicematch file skipped file=%s/%s devicematch=\"%s\" name=%s: "
				 "the kubelet refuses it as a resource name (it must start and "
				 "end with a letter or digit, at most 63 characters)",
				 CONFIG_SDM_DEV_DIR, file, m->pattern,
				 strlen(name) > 80 ? "(too long)" : name);
		return;
	}
	const struct resource *have = dv->find(dv->data, name);
	if (have) {
		const char *other = resource_origin(have);
		if (!other && warn_once(dv, "dup", name))
			log_warn("devicematch file skipped file=%s/%s: a configured device has the "
				 "name %s",
				 CONFIG_SDM_DEV_DIR, file, name);
		else if (other && strcmp(other, file) != 0 && warn_once(dv, "collide", file))
			log_warn("devicematch file skipped file=%s/%s: its name collides with "
				 "file=%s/%s's after mapping (every character other than letters, "
				 "digits, '_' and '-' becomes '_'): both are %s, which stays with "
				 "%s/%s",
				 CONFIG_SDM_DEV_DIR, file, CONFIG_SDM_DEV_DIR, other,
				 resource_full_name(have), CONFIG_SDM_DEV_DIR, other);
		return;
	}
	if (dv->n_resources >= LIMIT_RESOURCES) { /* an expression like ".*" */
		if (warn_once(dv, "max", ""))
			log_error(
			    "devicematch file skipped file=%s/%s devicematch=\"%s\": already %d "
			    "resources, configured and for matching files (the most served); "
			    "narrow the expressions",
			    CONFIG_SDM_DEV_DIR, file, m->pattern, LIMIT_RESOURCES);
		return;
	}
	struct cfg_device dev;
	struct resource *r = NULL;
	int e = derived_device(&dev, name, file, m->max);
	if (e == 0 && !(r = dv->add(dv->data, &dev, file)))
		e = -errno;
	config_device_clear(&dev);
	if (e < 0) {
		if (e == -ENOMEM || warn_once(dv, "add", name))
			log_error("cannot add resource=%s err=\"%s\"", name, strerror(-e));
		return;
	}
	dv->n_resources++;
	log_info("resource added for a matching file resource=%s file=%s/%s devicematch=\"%s\" "
		 "line=%u count=%u",
		 resource_full_name(r), CONFIG_SDM_DEV_DIR, file, m->pattern, m->line, m->max);
}

void derived_sync(struct derived *dv, const struct config *cfg, size_t n_resources,
		  derived_find_cb find, derived_add_cb add, void *data)
{
	if (!cfg->n_matches)
		return;
	if (!dv->dm && !(dv->dm = devmatch_new(CONFIG_SDM_DEV_DIR))) {
		log_error("cannot scan dir=%s: out of memory", CONFIG_SDM_DEV_DIR);
		return;
	}
	if (dv->seen != cfg) { /* new expressions: what they match is not known */
		devmatch_forget(dv->dm);
		dv->seen = cfg;
	}
	dv->cfg = cfg;
	dv->n_resources = n_resources;
	dv->find = find;
	dv->add = add;
	dv->data = data;
	int e = devmatch_scan(dv->dm, cfg->matches, cfg->n_matches, on_match, dv);
	if (e < 0 && warn_once(dv, "scan", ""))
		log_warn("cannot list dir=%s err=\"%s\"", CONFIG_SDM_DEV_DIR, strerror(-e));
}

int derived_reload(struct derived *dv, const struct config *cfg, const struct resource *r,
		   struct cfg_device *out)
{
	(void)dv;
	const char *file = resource_origin(r); /* net/tun, not net_tun */
	const struct cfg_match *m = NULL;
	for (size_t i = 0; i < cfg->n_matches && !m; i++)
		if (cfg_match_matches(&cfg->matches[i], file))
			m = &cfg->matches[i];
	for (size_t j = 0; m && j < cfg->n_devices; j++)
		if (strcmp(cfg->devices[j].name, resource_name(r)) == 0)
			m = NULL; /* a configured device takes the name */
	if (!m)
		return -ENOENT;
	const struct cfg_device *dev = resource_device(r);
	if (dev->n_groups == 1 && dev->groups[0].count == m->max)
		return 0;
	int e = derived_device(out, resource_name(r), file, m->max);
	return e < 0 ? e : 1;
}

int derived_watch_dirs(const struct derived *dv, char ***dirs, size_t *n_dirs)
{
	return dv->dm ? devmatch_watch_dirs(dv->dm, dirs, n_dirs) : 0;
}

bool derived_event_matters(const struct config *cfg, const char *dir, const char *name, bool is_dir)
{
	return cfg->n_matches && devmatch_event_new_name(CONFIG_SDM_DEV_DIR, cfg->matches,
							 cfg->n_matches, dir, name, is_dir);
}
