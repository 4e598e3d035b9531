/* The device table of one resource: instances (by group) -> nodes, with
 * health and a generation. Owned by its resource and changed by the event
 * loop only; other threads read immutable, reference-counted snapshots. */
#ifndef UDP_TABLE_H
#define UDP_TABLE_H

#include <stdatomic.h>
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
	_Atomic int refs;
	uint64_t generation;
	struct snap_instance *instances; /* table order: by group, then key */
	size_t n_instances;
	struct snap_device *devices; /* sorted by id, unique */
	size_t n_devices;
	size_t n_healthy; /* devices listed Healthy */
	/* Devices over the limits (sizelimits.h: LIMIT_DEVICES, and
	 * LIMIT_LIST_BYTES of encoded list) and so not listed: those last in
	 * table order. */
	size_t n_withheld;
};

/* NULL is a no-op for both; an unref without a reference aborts. */
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);
/* The device with this ID, or NULL. O(log n). */
const struct snap_device *snapshot_find(const struct snapshot *s, const char *id);

/* An empty table; name (borrowed, must outlive the table) is used in log
 * lines. NULL on ENOMEM. */
struct table *table_new(const char *name, unsigned grace_ms);
void table_free(struct table *t); /* NULL is a no-op */
/* Drops every instance at once (the resource's groups changed). */
void table_clear(struct table *t);
void table_set_grace(struct table *t, unsigned grace_ms);

/* Replaces what group g provides with insts[0..n) (ownership
 * of the array and its contents passes to the table, also on error).
 * Instances matched by key keep their place; new ones are added; missing
 * ones become Unhealthy ("gone") and are dropped grace_ms later. Health of
 * present instances comes from dev_node_check on every node. Logs each
 * change. Returns 1 when the resource changed (generation bumped), 0 when
 * not, negative errno on error. */
int table_update_group(struct table *t, size_t g, struct dev_instance *insts, size_t n,
		       int64_t now_us);

/* Whether the file at path may have changed since the last update. */
typedef bool (*table_touched_fn)(void *data, const char *path);

/* table_update_group after events that named only some files: an
 * instance that is still there, with the same nodes, has its health
 * checked again only when touched(data, path) is true for one of its
 * nodes' host paths (a node's health changes only with its file). A NULL
 * touched checks every one. */
int table_update_group_touched(struct table *t, size_t g, struct dev_instance *insts, size_t n,
			       int64_t now_us, table_touched_fn touched, void *data);

/* Drops gone instances whose grace ran out. Returns the number dropped. */
int table_expire(struct table *t, int64_t now_us);
/* The earliest time a gone instance expires, or 0 when none is gone. */
int64_t table_next_expiry(const struct table *t);

uint64_t table_generation(const struct table *t);
/* Number of instances (present or gone). */
size_t table_n_instances(const struct table *t);

/* Calls fn once for each host path that present instances of two or more
 * different tables hold, with the first two of them (r1 < r2) and one ID
 * of each: the same device file offered twice, which the kubelet may hand
 * to two Pods. O(n log n) in the nodes. */
typedef void (*table_shared_cb)(void *data, const char *path, size_t r1, const char *id1, size_t r2,
				const char *id2);
int table_shared_nodes(const struct table *const *ts, size_t n_tables, table_shared_cb fn,
		       void *data);

/* A new snapshot (caller owns the reference), NULL on ENOMEM. It lists the
 * devices in table order (by group, then key; slots in order) while they
 * fit the limits of sizelimits.h, and counts the rest in n_withheld: a glob
 * that matches more than foreseen never makes a list the kubelet refuses. */
struct snapshot *table_snapshot(const struct table *t);

#endif
