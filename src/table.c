#include "table.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sizelimits.h"

struct entry {
	struct dev_instance inst;
	size_t group;
	bool healthy;
	char *why;
	int64_t gone_since_us; /* 0 while the instance is discovered */
};

struct table {
	struct entry *entries; /* sorted by (group, key) */
	size_t n, cap;
	uint64_t generation;
	const char *name; /* borrowed */
	int64_t grace_us;
};

struct table *table_new(const char *name, unsigned grace_ms)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->name = name;
	t->grace_us = (int64_t)grace_ms * 1000;
	return t;
}

void table_set_grace(struct table *t, unsigned grace_ms)
{
	t->grace_us = (int64_t)grace_ms * 1000;
}

static void entry_clear(struct entry *e)
{
	dev_instance_clear(&e->inst);
	free(e->why);
	e->why = NULL;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++)
		entry_clear(&t->entries[i]);
	free(t->entries);
	free(t);
}

static int cmp_inst_key(const void *a, const void *b)
{
	const struct dev_instance *x = a, *y = b;
	return strcmp(x->key, y->key);
}

static int cmp_entry(size_t g1, const char *k1, size_t g2, const char *k2)
{
	if (g1 != g2)
		return g1 < g2 ? -1 : 1;
	return strcmp(k1, k2);
}

/* Health of a discovered instance: every node must pass dev_node_check.
 * Returns a malloc'd reason when unhealthy, NULL when healthy. */
static char *check_health(const struct dev_instance *inst)
{
	char why[512];
	for (size_t i = 0; i < inst->n_nodes; i++)
		if (dev_node_check(&inst->nodes[i], why, sizeof(why)) < 0)
			return strdup(why);
	return NULL;
}

static const char *first_id(const struct dev_instance *inst)
{
	return inst->count ? inst->ids[0] : "";
}

static const char *first_path(const struct dev_instance *inst)
{
	return inst->n_nodes ? inst->nodes[0].host_path : "";
}

/* Sets health from a fresh check; returns true when it changed. */
static bool refresh_health(const struct table *t, struct entry *e)
{
	char *why = check_health(&e->inst);
	bool healthy = why == NULL;
	bool changed = healthy != e->healthy;
	if (changed && healthy)
		log_info("device healthy resource=%s id=%s path=%s", t->name, first_id(&e->inst),
			 first_path(&e->inst));
	else if (changed)
		log_warn("device unhealthy resource=%s id=%s reason=\"%s\"", t->name,
			 first_id(&e->inst), why);
	free(e->why);
	e->why = why;
	e->healthy = healthy;
	return changed;
}

static bool same_nodes(const struct dev_instance *a, const struct dev_instance *b)
{
	if (a->n_nodes != b->n_nodes || a->count != b->count)
		return false;
	for (size_t i = 0; i < a->n_nodes; i++) {
		const struct dev_node *x = &a->nodes[i], *y = &b->nodes[i];
		if (strcmp(x->host_path, y->host_path) ||
		    strcmp(x->container_path, y->container_path) || x->mount != y->mount ||
		    x->read_only != y->read_only || strcmp(x->permissions, y->permissions) ||
		    x->kind != y->kind || x->rdev != y->rdev)
			return false;
	}
	for (unsigned i = 0; i < a->count; i++)
		if (strcmp(a->ids[i], b->ids[i]))
			return false;
	if (a->n_env != b->n_env)
		return false;
	for (size_t i = 0; i < a->n_env; i++)
		if (strcmp(a->env[i].suffix, b->env[i].suffix) ||
		    strcmp(a->env[i].value, b->env[i].value))
			return false;
	return true;
}

static bool any_touched(const struct dev_instance *inst, table_touched_fn touched, void *data)
{
	for (size_t i = 0; i < inst->n_nodes; i++)
		if (touched(data, inst->nodes[i].host_path))
			return true;
	return false;
}

int table_update_group(struct table *t, size_t g, struct dev_instance *insts, size_t n,
		       int64_t now_us)
{
	return table_update_group_touched(t, g, insts, n, now_us, NULL, NULL);
}

int table_update_group_touched(struct table *t, size_t g, struct dev_instance *insts, size_t n,
			       int64_t now_us, table_touched_fn touched, void *data)
{
	if (!t) {
		dev_instances_free(insts, n);
		return -EINVAL;
	}
	struct table *res = t;
	if (n > 1)
		qsort(insts, n, sizeof(*insts), cmp_inst_key);

	/* Merge the sorted old entries of group g with the sorted new ones
	 * into a fresh array; other groups' entries are carried over. */
	size_t cap = res->n + n;
	struct entry *out = calloc(cap ? cap : 1, sizeof(*out));
	if (!out) {
		dev_instances_free(insts, n);
		return -ENOMEM;
	}
	bool changed = false;
	size_t o = 0, i = 0, j = 0;
	while (i < res->n || j < n) {
		struct entry *old = i < res->n ? &res->entries[i] : NULL;
		struct dev_instance *nw = j < n ? &insts[j] : NULL;
		int c;
		if (!old)
			c = 1;
		else if (!nw)
			c = -1;
		else
			c = cmp_entry(old->group, old->inst.key, g, nw->key);
		if (c < 0) {
			/* Old entry with no counterpart: gone if it is ours. */
			if (old->group == g && old->gone_since_us == 0) {
				old->gone_since_us = now_us ? now_us : 1;
				if (old->healthy) {
					free(old->why);
					old->why = strdup("vanished");
					old->healthy = false;
				}
				log_info("device unhealthy (gone) resource=%s id=%s path=%s "
					 "grace_ms=%lld",
					 t->name, first_id(&old->inst), first_path(&old->inst),
					 (long long)(t->grace_us / 1000));
				changed = true;
			}
			out[o++] = *old;
			i++;
		} else if (c > 0) {
			struct entry e = {.inst = *nw, .group = g};
			memset(nw, 0, sizeof(*nw));
			log_info("device added resource=%s id=%s path=%s nodes=%zu", t->name,
				 first_id(&e.inst), first_path(&e.inst), e.inst.n_nodes);
			refresh_health(t, &e);
			if (!e.healthy)
				log_warn("device unhealthy resource=%s id=%s reason=\"%s\"",
					 t->name, first_id(&e.inst), e.why ? e.why : "unknown");
			out[o++] = e;
			changed = true;
			j++;
		} else {
			assert(old && nw); /* c == 0: both sides present */
			struct entry e = *old;
			bool recheck = !touched || e.gone_since_us;
			if (e.gone_since_us) {
				log_info("device back resource=%s id=%s", t->name,
					 first_id(&e.inst));
				e.gone_since_us = 0;
				changed = true;
			}
			if (!same_nodes(&e.inst, nw)) {
				dev_instance_clear(&e.inst);
				e.inst = *nw;
				memset(nw, 0, sizeof(*nw));
				changed = recheck = true;
			}
			if ((recheck || any_touched(&e.inst, touched, data)) &&
			    refresh_health(t, &e))
				changed = true;
			out[o++] = e;
			i++;
			j++;
		}
	}
	dev_instances_free(insts, n);
	free(res->entries);
	res->entries = out;
	res->n = o;
	res->cap = cap;
	if (changed)
		res->generation++;
	return changed ? 1 : 0;
}

void table_clear(struct table *t)
{
	if (t->n == 0)
		return;
	for (size_t i = 0; i < t->n; i++)
		entry_clear(&t->entries[i]);
	t->n = 0;
	t->generation++;
}

int table_expire(struct table *t, int64_t now_us)
{
	int dropped = 0;
	size_t o = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = &t->entries[i];
		if (e->gone_since_us && now_us - e->gone_since_us >= t->grace_us) {
			log_info("device dropped resource=%s id=%s", t->name, first_id(&e->inst));
			entry_clear(e);
			dropped++;
			continue;
		}
		t->entries[o++] = *e;
	}
	if (o != t->n) {
		t->n = o;
		t->generation++;
	}
	return dropped;
}

int64_t table_next_expiry(const struct table *t)
{
	int64_t next = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct entry *e = &t->entries[i];
		if (!e->gone_since_us)
			continue;
		int64_t at = e->gone_since_us + t->grace_us;
		if (next == 0 || at < next)
			next = at;
	}
	return next;
}

uint64_t table_generation(const struct table *t)
{
	return t->generation;
}

size_t table_n_instances(const struct table *t)
{
	return t->n;
}

/* ---- snapshots ---- */

struct snapshot *snapshot_ref(struct snapshot *s)
{
	if (s) {
		int old = atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
		assert(old > 0); /* a reference can only come from a live one */
		(void)old;
	}
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (!s)
		return;
	int old = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
	if (old <= 0) { /* more unrefs than refs: a bug that must not free twice */
		log_error("snapshot released more often than referenced refs=%d", old);
		abort();
	}
	if (old != 1)
		return;
	for (size_t i = 0; i < s->n_instances; i++) {
		dev_instance_clear(&s->instances[i].inst);
		free(s->instances[i].why);
	}
	free(s->instances);
	free(s->devices);
	free(s);
}

static int cmp_dev(const void *a, const void *b)
{
	const struct snap_device *x = a, *y = b;
	return strcmp(x->id, y->id);
}

/* By ID, then by instance order, so that of two equal IDs the first
 * group's comes first. */
static int cmp_dev_stable(const void *a, const void *b)
{
	const struct snap_device *x = a, *y = b;
	int c = strcmp(x->id, y->id);
	if (c)
		return c;
	return x->instance < y->instance ? -1 : x->instance > y->instance;
}

/* Table order: by instance (group, then key), then slot. */
static int cmp_dev_table(const void *a, const void *b)
{
	const struct snap_device *x = a, *y = b;
	if (x->instance != y->instance)
		return x->instance < y->instance ? -1 : 1;
	return x->slot < y->slot ? -1 : x->slot > y->slot;
}

/* Keeps the devices that fit the limits, first in table order, so the
 * same ones stay listed whatever their health (each is counted at its
 * largest encoding); s->devices stays sorted by ID. */
static void cap_devices(struct snapshot *s)
{
	size_t bytes = 0, n = 0;
	for (size_t i = 0; i < s->n_devices; i++)
		bytes += limit_list_entry_bytes(strlen(s->devices[i].id));
	if (s->n_devices <= LIMIT_DEVICES && bytes <= LIMIT_LIST_BYTES)
		return;
	qsort(s->devices, s->n_devices, sizeof(*s->devices), cmp_dev_table);
	bytes = 0;
	while (n < s->n_devices && n < LIMIT_DEVICES) {
		size_t b = limit_list_entry_bytes(strlen(s->devices[n].id));
		if (bytes + b > LIMIT_LIST_BYTES)
			break;
		bytes += b;
		n++;
	}
	s->n_withheld = s->n_devices - n;
	s->n_devices = n;
	qsort(s->devices, n, sizeof(*s->devices), cmp_dev);
}

const struct snap_device *snapshot_find(const struct snapshot *s, const char *id)
{
	if (!s || !id)
		return NULL;
	struct snap_device key = {.id = id};
	return bsearch(&key, s->devices, s->n_devices, sizeof(key), cmp_dev);
}

struct snapshot *table_snapshot(const struct table *t)
{
	const struct table *res = t;
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	s->generation = res->generation;
	size_t n_dev = 0;
	for (size_t i = 0; i < res->n; i++)
		n_dev += res->entries[i].inst.count;
	s->instances = calloc(res->n ? res->n : 1, sizeof(*s->instances));
	s->devices = calloc(n_dev ? n_dev : 1, sizeof(*s->devices));
	if (!s->instances || !s->devices)
		goto oom;
	for (size_t i = 0; i < res->n; i++) {
		const struct entry *e = &res->entries[i];
		struct snap_instance *si = &s->instances[i];
		if (dev_instance_copy(&si->inst, &e->inst) < 0)
			goto oom;
		s->n_instances = i + 1;
		si->healthy = e->healthy;
		if (e->why && !(si->why = strdup(e->why)))
			goto oom;
	}
	size_t d = 0;
	for (size_t i = 0; i < s->n_instances; i++)
		for (unsigned k = 0; k < s->instances[i].inst.count; k++)
			s->devices[d++] = (struct snap_device){
			    .id = s->instances[i].inst.ids[k],
			    .instance = &s->instances[i],
			    .slot = k,
			};
	qsort(s->devices, d, sizeof(*s->devices), cmp_dev_stable);
	/* Two groups may produce the same ID (same files matched twice): list
	 * it once, from the first group. */
	size_t u = 0;
	for (size_t i = 0; i < d; i++) {
		if (u && strcmp(s->devices[u - 1].id, s->devices[i].id) == 0)
			continue;
		s->devices[u++] = s->devices[i];
	}
	s->n_devices = u;
	cap_devices(s);
	for (size_t i = 0; i < s->n_devices; i++)
		if (s->devices[i].instance->healthy)
			s->n_healthy++;
	return s;
oom:
	snapshot_unref(s);
	return NULL;
}

/* ---- nodes shared across resources ---- */

struct node_ref {
	const char *path;
	size_t r;
	const char *id;
};

static int cmp_node_ref(const void *a, const void *b)
{
	const struct node_ref *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c)
		return c;
	return x->r < y->r ? -1 : x->r > y->r;
}

int table_shared_nodes(const struct table *const *ts, size_t n_tables, table_shared_cb fn,
		       void *data)
{
	size_t n = 0;
	for (size_t r = 0; r < n_tables; r++)
		for (size_t i = 0; i < ts[r]->n; i++)
			if (!ts[r]->entries[i].gone_since_us)
				n += ts[r]->entries[i].inst.n_nodes;
	if (n < 2)
		return 0;
	struct node_ref *refs = malloc(n * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	size_t k = 0;
	for (size_t r = 0; r < n_tables; r++)
		for (size_t i = 0; i < ts[r]->n; i++) {
			const struct entry *e = &ts[r]->entries[i];
			if (e->gone_since_us)
				continue;
			for (size_t j = 0; j < e->inst.n_nodes; j++)
				refs[k++] = (struct node_ref){e->inst.nodes[j].host_path, r,
							      first_id(&e->inst)};
		}
	qsort(refs, k, sizeof(*refs), cmp_node_ref);
	for (size_t i = 0; i < k;) {
		size_t j = i + 1;
		while (j < k && strcmp(refs[j].path, refs[i].path) == 0)
			j++;
		/* one call per path, with the first two resources that hold it:
		 * n resources offering one file are one warning, not n^2 */
		for (size_t b = i + 1; b < j; b++)
			if (refs[b].r != refs[i].r) {
				fn(data, refs[i].path, refs[i].r, refs[i].id, refs[b].r,
				   refs[b].id);
				break;
			}
		i = j;
	}
	free(refs);
	return 0;
}
