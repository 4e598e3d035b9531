#include "resources.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cdi.h"
#include "log.h"

struct resources {
	struct resource_env *env;
	struct plugindir *pd;
	struct derived *dv;
	struct resource **v;
	size_t n;
};

struct resources *resources_new(struct resource_env *env, struct plugindir *pd, struct derived *dv)
{
	struct resources *rs = calloc(1, sizeof(*rs));
	if (rs)
		*rs = (struct resources){.env = env, .pd = pd, .dv = dv};
	return rs;
}

void resources_free(struct resources *rs, bool keep_cdi)
{
	if (!rs)
		return;
	while (rs->n)
		resource_destroy(rs->v[--rs->n], keep_cdi);
	free(rs->v);
	free(rs);
}

struct resource *const *resources_list(const struct resources *rs, size_t *n)
{
	*n = rs ? rs->n : 0;
	return rs ? rs->v : NULL;
}

struct resource *resources_find(const struct resources *rs, const char *name)
{
	for (size_t i = 0; rs && i < rs->n; i++)
		if (strcmp(resource_name(rs->v[i]), name) == 0)
			return rs->v[i];
	return NULL;
}

struct resource *resources_add(struct resources *rs, const struct cfg_device *dev,
			       const char *origin)
{
	struct resource **a = realloc(rs->v, (rs->n + 1) * sizeof(*a));
	if (!a) {
		errno = ENOMEM;
		return NULL;
	}
	rs->v = a;
	struct resource *r = resource_new(rs->env, dev, origin);
	if (!r)
		return NULL;
	const char *kind = resource_cdi_kind(r);
	for (size_t i = 0; kind && i < rs->n; i++)
		if (strcmp(resource_cdi_kind(rs->v[i]), kind) == 0) {
			log_error("resource=%s not served: its CDI kind %s is also %s's (CDI turns "
				  "characters other than letters, digits, '-' and '_' into '_')",
				  resource_full_name(r), kind, resource_full_name(rs->v[i]));
			resource_destroy(r, true);
			errno = EEXIST;
			return NULL;
		}
	rs->v[rs->n++] = r;
	if (rs->env->rpc && resource_serve(r) == 0 && plugindir_kubelet_present(rs->pd))
		resource_register(r);
	return r;
}

static void remove_at(struct resources *rs, size_t i)
{
	struct resource *r = rs->v[i];
	log_info("resource removed by reload resource=%s: no longer served", resource_full_name(r));
	memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof(*rs->v));
	rs->n--;
	resource_destroy(r, false);
}

/* A derived resource stays while an entry of nc still matches its file,
 * with that entry's count. False when it was removed. */
static bool reload_derived(struct resources *rs, size_t i, const struct config *nc)
{
	struct resource *r = rs->v[i];
	struct cfg_device dev;
	int e = derived_reload(rs->dv, nc, r, &dev);
	if (e == -ENOENT) {
		remove_at(rs, i);
		return false;
	}
	if (e == 1 && resource_set_device(r, &dev) == 0)
		log_info("resource changed by reload resource=%s count=%u", resource_full_name(r),
			 dev.groups[0].count);
	else if (e != 0)
		log_error("reload: out of memory changing resource=%s", resource_full_name(r));
	if (e == 1)
		config_device_clear(&dev);
	return true;
}

void resources_apply(struct resources *rs, const struct config *nc)
{
	for (size_t i = 0; i < rs->n;) {
		struct resource *r = rs->v[i];
		if (resource_origin(r)) {
			i += reload_derived(rs, i, nc);
			continue;
		}
		const struct cfg_device *now = NULL;
		for (size_t j = 0; j < nc->n_devices && !now; j++)
			if (strcmp(nc->devices[j].name, resource_name(r)) == 0)
				now = &nc->devices[j];
		if (!now) {
			remove_at(rs, i);
			continue;
		}
		if (!config_device_equal(resource_device(r), now)) {
			if (resource_set_device(r, now) == 0)
				log_info("resource changed by reload resource=%s: rescanning",
					 resource_full_name(r));
			else
				log_error("reload: out of memory changing resource=%s",
					  resource_full_name(r));
		}
		i++;
	}
	for (size_t j = 0; j < nc->n_devices; j++) {
		if (resources_find(rs, nc->devices[j].name))
			continue;
		struct resource *r = resources_add(rs, &nc->devices[j], NULL);
		if (r)
			log_info("resource added by reload resource=%s", resource_full_name(r));
		else
			log_error("reload: cannot add resource=%s err=\"%s\"", nc->devices[j].name,
				  strerror(errno));
	}
}

void resources_late_register(struct resources *rs, const char *name)
{
	struct resource *r = resources_find(rs, name);
	if (r && plugindir_kubelet_present(rs->pd))
		resource_register(r);
}

bool resources_cdi_file(void *data, const char *file)
{
	const struct resources *rs = data;
	for (size_t i = 0; rs && i < rs->n; i++) {
		const char *kind = resource_cdi_kind(rs->v[i]);
		char path[PATH_MAX];
		if (kind && cdi_spec_path("/", kind, path, sizeof(path)) == 0 &&
		    strcmp(path + 1, file) == 0)
			return true;
	}
	return false;
}
