/* What discovery produces and the device table stores: an instance (one
 * allocatable meta-device) made of nodes (device files or bind mounts). */
#ifndef UDP_INSTANCE_H
#define UDP_INSTANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct dev_node {
	char *host_path;
	char *container_path;
	bool mount;	     /* bind Mount instead of a DeviceSpec */
	bool read_only;	     /* Mount only */
	char permissions[4]; /* DeviceSpec cgroup access, subset of "mrw" */
	char kind;	     /* a Device must be: 'c' char, 'b' block, 0 either (or a
			      * directory of them, expanded by the runtime) */
	dev_t rdev;	     /* and have this device number; 0: any */
};

/* An environment variable Allocate sets for the instance: the full name is
 * USBDP_<NAME>_<k>_<suffix> (see alloc.h). */
struct dev_env {
	char *suffix; /* e.g. "TTY", "VENDOR" */
	char *value;
};

/* A key and a value: an env or annotation template (tmpl.h). */
struct dev_kv {
	char *key;
	char *value;
};

struct dev_instance {
	/* Identity of the instance within its resource, stable while the same
	 * files make it up: a re-discovered instance with the same key is the
	 * same instance. For path groups: the group index and the joined host
	 * paths. */
	char *key;
	/* Kubelet device IDs, one per count slot (count >= 1). */
	char **ids;
	unsigned count;
	struct dev_node *nodes;
	size_t n_nodes;
	struct dev_env *env; /* discovery's facts about the instance (USB IDs ...) */
	size_t n_env;
	/* Allocate decorations from the instance's group: templates of the
	 * env vars and annotations it adds (both key and value may hold
	 * placeholders, see tmpl.h). */
	struct dev_kv *env_tmpl;
	size_t n_env_tmpl;
	struct dev_kv *ann_tmpl;
	size_t n_ann_tmpl;
};

/* Frees what the instance owns (not the struct itself); NULL is a no-op. */
void dev_instance_clear(struct dev_instance *inst);
/* Clears n instances and frees the array; NULL is a no-op. */
void dev_instances_free(struct dev_instance *insts, size_t n);
/* Deep copy; 0 or -ENOMEM (dst untouched on error). */
int dev_instance_copy(struct dev_instance *dst, const struct dev_instance *src);

/* Copies n key/value pairs into *dst (malloc'd; NULL when n == 0); 0 or
 * -ENOMEM (*dst untouched on error). */
int dev_kv_copy(struct dev_kv **dst, const struct dev_kv *src, size_t n);
/* Frees n pairs and the array; NULL is a no-op. */
void dev_kv_free(struct dev_kv *kv, size_t n);

/* Appends a Device node at path (host and container), with permissions
 * perms; 0 or -ENOMEM (inst unchanged). */
int dev_instance_add_device(struct dev_instance *inst, const char *path, const char *perms);

/* Appends a copy of (suffix, value) to inst->env; 0 or -ENOMEM. */
int dev_instance_add_env(struct dev_instance *inst, const char *suffix, const char *value);

/* Calls fn for every character or block device below dir (not following
 * symbolic links, skipping '.' names, DEV_DIR_MAX_DEPTH levels deep), in
 * sorted order, until fn returns non-zero: returns that, or 0, or
 * -ENOMEM. A directory that cannot be read holds nothing. */
#define DEV_DIR_MAX_DEPTH 8
struct stat;
typedef int (*dev_dir_fn)(void *data, const char *path, const struct stat *st);
int dev_dir_walk(const char *dir, dev_dir_fn fn, void *data);

/* Checks that a node can be handed out now: it exists, and a Device is a
 * character or block device (of node->kind and node->rdev when set), or,
 * when node->kind is 0, a directory holding one. Returns 0, or a negative errno
 * with a human-readable reason in why (e.g. "stat: No such file or directory", "not a character or
 * block device"). */
int dev_node_check(const struct dev_node *node, char *why, size_t whylen);

#endif
