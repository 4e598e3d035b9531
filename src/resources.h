/* The live resources, in config order: looked up by name, added (two
 * resources may not share a CDI kind), removed, and diffed against a
 * reloaded config. Each entry is a struct resource (resource.h); this is
 * only the list and the rules for changing it. */
#ifndef UDP_RESOURCES_H
#define UDP_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "derived.h"
#include "plugindir.h"
#include "resource.h"

struct resources;

/* env, pd and dv are borrowed and outlive the list. NULL on ENOMEM. */
struct resources *resources_new(struct resource_env *env, struct plugindir *pd, struct derived *dv);
/* Destroys every resource left (keep_cdi: see resource_destroy), then the
 * list. NULL is a no-op. */
void resources_free(struct resources *rs, bool keep_cdi);

/* The resources, in order (borrowed; valid until the list changes). A
 * NULL list (being stopped) is empty for these three. */
struct resource *const *resources_list(const struct resources *rs, size_t *n);
struct resource *resources_find(const struct resources *rs, const char *name);

/* A new resource for dev (copied; origin as in resource_new), appended;
 * served and registered at once when the gRPC side is up. NULL with errno
 * set (EEXIST: its CDI kind is another's, logged). */
struct resource *resources_add(struct resources *rs, const struct cfg_device *dev,
			       const char *origin);

/* The diff of a reload to nc: unchanged resources keep their socket,
 * streams and registration; changed ones are rescanned on the same
 * socket; removed ones are destroyed; new ones are added. Each logged. */
void resources_apply(struct resources *rs, const struct config *nc);

/* A Register of a destroyed resource succeeded after its successor's: the
 * live one of that name registers again (resource_env.late_register). */
void resources_late_register(struct resources *rs, const char *name);

/* For cdi_clean: whether file (a name in the CDI directory) is the spec of
 * a resource in the list (data). */
bool resources_cdi_file(void *data, const char *file);

#endif
