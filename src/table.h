/* The device table: resources -> instances -> nodes, with health and a
 * generation per resource. Owned and changed by the event loop only; other
 * threads read immutable, reference-counted snapshots of it. */
#ifndef UDP_TABLE_H
#define UDP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "instance.h"

struct table;

struct snap_instance {
	struct dev_instance inst;
	bool healthy;
	char *why; /* reason when unhealthy, else NULL */
};

struct snap_device {
	const char *id; /* borrowed from the instance */
	const struct snap_instance *instance;
	unsigned slot; /* count slot */
};

/* An immutable view of one resource. Readers hold a reference. */
struct snapshot {
	int refs; /* atomic */
	uint64_t generation;
	size_t resource;
	struct snap_instance *instances; /* table order: by group, then key */
	size_t n_instances;
	struct snap_device *devices; /* sorted by id, unique */
	size_t n_devices;
	size_t n_healthy; /* devices listed Healthy */
};

struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s); /* NULL is a no-op */
/* The device with this ID, or NULL. O(log n). */
const struct snap_device *snapshot_find(const struct snapshot *s, const char *id);

/* names[r] (borrowed, must outlive the table) is used in log lines. */
struct table *table_new(size_t n_resources, const char *const *names, unsigned grace_ms);
void table_free(struct table *t);
/* Appends a resource (name borrowed); its index, or -ENOMEM. */
ssize_t table_add_resource(struct table *t, const char *name);
/* Drops every instance of resource r at once (it left the config). */
void table_clear_resource(struct table *t, size_t r);
void table_set_grace(struct table *t, unsigned grace_ms);

/* Replaces what group g of resource r provides with insts[0..n) (ownership
 * of the array and its contents passes to the table, also on error).
 * Instances matched by key keep their place; new ones are added; missing
 * ones become Unhealthy ("gone") and are dropped grace_ms later. Health of
 * present instances comes from dev_node_check on every node. Logs each
 * change. Returns 1 when the resource changed (generation bumped), 0 when
 * not, negative errno on error. */
int table_update_group(struct table *t, size_t r, size_t g, struct dev_instance *insts, size_t n,
		       int64_t now_us);

/* Drops gone instances whose grace ran out. Returns the number dropped. */
int table_expire(struct table *t, int64_t now_us);
/* The earliest time a gone instance expires, or 0 when none is gone. */
int64_t table_next_expiry(const struct table *t);

uint64_t table_generation(const struct table *t, size_t r);
/* Number of instances (present or gone) of resource r. */
size_t table_n_instances(const struct table *t, size_t r);

/* Calls fn once for each host path that present instances of two
 * different resources both hold (r1 < r2), with one ID of each: the same
 * device file offered twice, which the kubelet may hand to two Pods. */
typedef void (*table_shared_cb)(void *data, const char *path, size_t r1, const char *id1, size_t r2,
				const char *id2);
int table_shared_nodes(const struct table *t, table_shared_cb fn, void *data);

/* A new snapshot of resource r (caller owns the reference), NULL on ENOMEM. */
struct snapshot *table_snapshot(const struct table *t, size_t r);

#endif
