#include "alloc.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdi.h"
#include "tmpl.h"

#define FREE_MSG(m) protobuf_c_message_free_unpacked((ProtobufCMessage *)(m), NULL)

int alloc_env_prefix(const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "USBDP_%s", name);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	for (char *p = buf; *p; p++)
		*p = *p == '-' || *p == '.' ? '_' : (char)toupper((unsigned char)*p);
	return 0;
}

/* A growable, malloc'd array of message pointers. */
static int push(void ***arr, size_t *n, void *item)
{
	void **a = realloc(*arr, (*n + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	a[(*n)++] = item;
	*arr = a;
	return 0;
}

/* Env and annotation entries are both {base, key, value} messages: one
 * description of each lets the same code fill either map. */
struct map_kind {
	size_t size;
	void (*init)(void *);
	size_t key_off, value_off;
};

static void env_init(void *e)
{
	v1beta1__container_allocate_response__envs_entry__init(e);
}

static void ann_init(void *e)
{
	v1beta1__container_allocate_response__annotations_entry__init(e);
}

static const struct map_kind env_map = {
    sizeof(V1beta1__ContainerAllocateResponse__EnvsEntry), env_init,
    offsetof(V1beta1__ContainerAllocateResponse__EnvsEntry, key),
    offsetof(V1beta1__ContainerAllocateResponse__EnvsEntry, value)};
static const struct map_kind ann_map = {
    sizeof(V1beta1__ContainerAllocateResponse__AnnotationsEntry), ann_init,
    offsetof(V1beta1__ContainerAllocateResponse__AnnotationsEntry, key),
    offsetof(V1beta1__ContainerAllocateResponse__AnnotationsEntry, value)};

static char **field_at(void *msg, size_t off)
{
	return (char **)((char *)msg + off);
}

static int new_entry(void ***arr, size_t *n, const struct map_kind *k, const char *key,
		     const char *value)
{
	void *e = malloc(k->size);
	if (!e)
		return -ENOMEM;
	k->init(e);
	char **kp = field_at(e, k->key_off), **vp = field_at(e, k->value_off);
	*kp = strdup(key);
	*vp = strdup(value);
	if (!*kp || !*vp || push(arr, n, e) < 0) {
		FREE_MSG(e);
		return -ENOMEM;
	}
	return 0;
}

static int add_env(V1beta1__ContainerAllocateResponse *c, const char *key, const char *value)
{
	return new_entry((void ***)&c->envs, &c->n_envs, &env_map, key, value);
}

static int append(char **buf, const char *sep, const char *s);

/* Sets key to value, or, when key is there already with another value,
 * appends ",value": two devices decorating one key are both seen. */
static int map_set(void ***arr, size_t *n, const struct map_kind *k, const char *key,
		   const char *value)
{
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(*field_at((*arr)[i], k->key_off), key) != 0)
			continue;
		char **v = field_at((*arr)[i], k->value_off);
		return strcmp(*v, value) == 0 ? 0 : append(v, ",", value);
	}
	return new_entry(arr, n, k, key, value);
}

/* The host path c already has at container path path (and whether as a
 * Mount), or NULL. */
static const char *held_at(const V1beta1__ContainerAllocateResponse *c, const char *path,
			   bool *mount)
{
	for (size_t i = 0; i < c->n_devices; i++)
		if (strcmp(c->devices[i]->container_path, path) == 0) {
			*mount = false;
			return c->devices[i]->host_path;
		}
	for (size_t i = 0; i < c->n_mounts; i++)
		if (strcmp(c->mounts[i]->container_path, path) == 0) {
			*mount = true;
			return c->mounts[i]->host_path;
		}
	return NULL;
}

/* Adds the DeviceSpec or Mount of node, once per container path (two count
 * slots of one instance, or two instances sharing a file through a path's
 * limit, share their nodes). -EEXIST, with *held set, when the container
 * path already holds another file: one of the two would be lost. */
static int add_node(V1beta1__ContainerAllocateResponse *c, const struct dev_node *node,
		    const char **held)
{
	bool mount = false;
	*held = held_at(c, node->container_path, &mount);
	if (*held)
		return strcmp(*held, node->host_path) == 0 && mount == node->mount ? 0 : -EEXIST;
	if (node->mount) {
		V1beta1__Mount *m = malloc(sizeof(*m));
		if (!m)
			return -ENOMEM;
		v1beta1__mount__init(m);
		m->container_path = strdup(node->container_path);
		m->host_path = strdup(node->host_path);
		m->read_only = node->read_only;
		if (!m->container_path || !m->host_path ||
		    push((void ***)&c->mounts, &c->n_mounts, m) < 0) {
			FREE_MSG(m);
			return -ENOMEM;
		}
		return 0;
	}
	V1beta1__DeviceSpec *d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	v1beta1__device_spec__init(d);
	d->container_path = strdup(node->container_path);
	d->host_path = strdup(node->host_path);
	d->permissions = strdup(node->permissions);
	if (!d->container_path || !d->host_path || !d->permissions ||
	    push((void ***)&c->devices, &c->n_devices, d) < 0) {
		FREE_MSG(d);
		return -ENOMEM;
	}
	return 0;
}

/* Appends s to the malloc'd string *buf, separated by sep. */
static int append(char **buf, const char *sep, const char *s)
{
	size_t old = *buf ? strlen(*buf) : 0;
	size_t add = (old ? strlen(sep) : 0) + strlen(s);
	char *b = realloc(*buf, old + add + 1);
	if (!b)
		return -ENOMEM;
	b[old] = '\0';
	if (old)
		strcat(b, sep);
	strcat(b, s);
	*buf = b;
	return 0;
}

/* The instance's env and annotation templates, expanded for device k. */
static int decorate(V1beta1__ContainerAllocateResponse *c, const struct tmpl_ctx *ctx, char *err,
		    size_t errlen)
{
	const struct dev_instance *inst = ctx->inst;
	int r = 0;
	for (int m = 0; m < 2 && r == 0; m++) {
		const struct dev_kv *kv = m ? inst->ann_tmpl : inst->env_tmpl;
		size_t n = m ? inst->n_ann_tmpl : inst->n_env_tmpl;
		for (size_t i = 0; i < n && r == 0; i++) {
			char *key = NULL, *value = NULL;
			r = tmpl_expand(kv[i].key, ctx, &key);
			if (r == 0)
				r = tmpl_expand(kv[i].value, ctx, &value);
			if (r == 0 && !*key) {
				snprintf(err, errlen,
					 "device \"%s\": %s template \"%s\" expands to "
					 "an empty name",
					 ctx->id, m ? "annotation" : "env", kv[i].key);
				r = -EINVAL;
			} else if (r == 0) {
				r = m ? map_set((void ***)&c->annotations, &c->n_annotations,
						&ann_map, key, value)
				      : map_set((void ***)&c->envs, &c->n_envs, &env_map, key,
						value);
			} else if (r == -EINVAL) {
				snprintf(err, errlen, "device \"%s\": bad template \"%s\"", ctx->id,
					 kv[i].key);
			}
			free(key);
			free(value);
		}
	}
	return r;
}

/* The CDI device of an instance, once per container. */
static int add_cdi(V1beta1__ContainerAllocateResponse *c, const char *kind,
		   const struct dev_instance *inst)
{
	char name[512];
	if (inst->n_nodes == 0) /* nothing to inject: a virtual device */
		return 0;
	if (cdi_device_name(kind, inst, name, sizeof(name)) < 0)
		return -ENAMETOOLONG;
	for (size_t i = 0; i < c->n_cdi_devices; i++)
		if (strcmp(c->cdi_devices[i]->name, name) == 0)
			return 0;
	V1beta1__CDIDevice *d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	v1beta1__cdidevice__init(d);
	if (!(d->name = strdup(name)) ||
	    push((void ***)&c->cdi_devices, &c->n_cdi_devices, d) < 0) {
		FREE_MSG(d);
		return -ENOMEM;
	}
	return 0;
}

static int container_answer(const struct snapshot *s, const char *name, const char *prefix,
			    const char *cdi_kind, const V1beta1__ContainerAllocateRequest *creq,
			    V1beta1__ContainerAllocateResponse *c, char *err, size_t errlen)
{
	char key[256];
	char *ids = NULL;
	int r = 0;
	for (size_t k = 0; k < creq->n_devices_ids; k++) {
		const char *id = creq->devices_ids[k];
		const struct snap_device *d = snapshot_find(s, id);
		if (!d) {
			snprintf(err, errlen, "unknown device ID \"%s\"", id);
			r = -ENOENT;
			break;
		}
		const struct snap_instance *si = d->instance;
		if (!si->healthy) {
			snprintf(err, errlen, "device \"%s\" is unhealthy: %s", id,
				 si->why ? si->why : "unknown reason");
			r = -EBUSY;
			break;
		}
		/* The snapshot may be older than the device: its nodes can be
		 * gone (an unplug whose uevents are not read yet) or be other
		 * devices now. Never hand out what is not there. */
		for (size_t i = 0; i < si->inst.n_nodes && r == 0; i++) {
			char why[400];
			if (dev_node_check(&si->inst.nodes[i], why, sizeof(why)) < 0) {
				snprintf(err, errlen, "device \"%s\": %s", id, why);
				r = -ENODEV;
			}
		}
		if (r < 0)
			break;
		char *paths = NULL;
		if (cdi_kind)
			r = add_cdi(c, cdi_kind, &si->inst);
		for (size_t i = 0; i < si->inst.n_nodes && r == 0; i++) {
			const struct dev_node *node = &si->inst.nodes[i];
			const char *held = NULL;
			if (!cdi_kind) /* else the runtime injects them from the CDI spec */
				r = add_node(c, node, &held);
			if (r == -EEXIST)
				snprintf(err, errlen,
					 "device \"%s\": container path %s already holds %s, "
					 "not also %s",
					 id, node->container_path, held, node->host_path);
			if (r == 0)
				r = append(&paths, ",", node->container_path);
		}
		if (r == 0) {
			snprintf(key, sizeof(key), "%s_%zu", prefix, k);
			r = add_env(c, key, paths ? paths : "");
		}
		if (r == 0) {
			snprintf(key, sizeof(key), "%s_%zu_ID", prefix, k);
			r = add_env(c, key, id);
		}
		for (size_t i = 0; i < si->inst.n_env && r == 0; i++) {
			snprintf(key, sizeof(key), "%s_%zu_%s", prefix, k, si->inst.env[i].suffix);
			r = add_env(c, key, si->inst.env[i].value);
		}
		if (r == 0) {
			struct tmpl_ctx ctx = {.id = id,
					       .index = k,
					       .slot = d->slot,
					       .resource = name,
					       .inst = &si->inst};
			r = decorate(c, &ctx, err, errlen);
		}
		free(paths);
		if (r == 0)
			r = append(&ids, ",", id);
		if (r < 0) {
			if (r == -ENOMEM)
				snprintf(err, errlen, "out of memory");
			else if (r == -ENAMETOOLONG)
				snprintf(err, errlen, "device \"%s\": CDI device name too long",
					 id);
			break;
		}
	}
	if (r == 0) {
		snprintf(key, sizeof(key), "%s_IDS", prefix);
		r = add_env(c, key, ids ? ids : "");
		if (r < 0)
			snprintf(err, errlen, "out of memory");
	}
	free(ids);
	return r;
}

int alloc_allocate(const struct snapshot *s, const char *name, const char *cdi_kind,
		   const V1beta1__AllocateRequest *req, V1beta1__AllocateResponse **out, char *err,
		   size_t errlen)
{
	char prefix[128];
	if (alloc_env_prefix(name, prefix, sizeof(prefix)) < 0) {
		snprintf(err, errlen, "resource name too long");
		return -EINVAL;
	}
	if (req->n_container_requests == 0) {
		snprintf(err, errlen, "no container requests");
		return -EINVAL;
	}
	V1beta1__AllocateResponse *resp = malloc(sizeof(*resp));
	if (!resp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v1beta1__allocate_response__init(resp);
	int r = 0;
	for (size_t i = 0; i < req->n_container_requests && r == 0; i++) {
		V1beta1__ContainerAllocateResponse *c = malloc(sizeof(*c));
		if (!c) {
			snprintf(err, errlen, "out of memory");
			r = -ENOMEM;
			break;
		}
		v1beta1__container_allocate_response__init(c);
		if (push((void ***)&resp->container_responses, &resp->n_container_responses, c) <
		    0) {
			FREE_MSG(c);
			snprintf(err, errlen, "out of memory");
			r = -ENOMEM;
			break;
		}
		r = container_answer(s, name, prefix, cdi_kind, req->container_requests[i], c, err,
				     errlen);
	}
	if (r < 0) {
		FREE_MSG(resp);
		return r;
	}
	*out = resp;
	return 0;
}

/* ---- GetPreferredAllocation ---- */

struct cand {
	const struct snap_device *dev;
	const char *id; /* as the kubelet sent it */
	bool chosen;
};

static size_t instance_index(const struct snapshot *s, const struct snap_instance *si)
{
	return (size_t)(si - s->instances);
}

/* Picks IDs for one container request into resp->device_ids. */
static int prefer_one(const struct snapshot *s,
		      const V1beta1__ContainerPreferredAllocationRequest *cr,
		      V1beta1__ContainerPreferredAllocationResponse *resp)
{
	size_t n = cr->n_available_deviceids;
	struct cand *c = calloc(n ? n : 1, sizeof(*c));
	/* per instance: how many we chose, how many of its slots are available */
	unsigned *chosen = calloc(s->n_instances ? s->n_instances : 1, sizeof(*chosen));
	unsigned *avail = calloc(s->n_instances ? s->n_instances : 1, sizeof(*avail));
	int r = 0;
	if (!c || !chosen || !avail) {
		r = -ENOMEM;
		goto out;
	}
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		const struct snap_device *d = snapshot_find(s, cr->available_deviceids[i]);
		if (!d)
			continue;
		c[nc++] = (struct cand){.dev = d, .id = cr->available_deviceids[i]};
		avail[instance_index(s, d->instance)]++;
	}
	size_t want = cr->allocation_size > 0 ? (size_t)cr->allocation_size : 0;
	/* must_include first, in the order given */
	for (size_t i = 0; i < cr->n_must_include_deviceids && resp->n_deviceids < want; i++) {
		const char *id = cr->must_include_deviceids[i];
		for (size_t j = 0; j < nc; j++)
			if (!c[j].chosen && strcmp(c[j].id, id) == 0) {
				c[j].chosen = true;
				chosen[instance_index(s, c[j].dev->instance)]++;
				break;
			}
		char *dup = strdup(id);
		if (!dup || push((void ***)&resp->deviceids, &resp->n_deviceids, dup) < 0) {
			free(dup);
			r = -ENOMEM;
			goto out;
		}
	}
	while (resp->n_deviceids < want) {
		ssize_t best = -1;
		for (size_t j = 0; j < nc; j++) {
			if (c[j].chosen)
				continue;
			if (best < 0) {
				best = (ssize_t)j;
				continue;
			}
			size_t a = instance_index(s, c[j].dev->instance);
			size_t b = instance_index(s, c[best].dev->instance);
			if (chosen[a] != chosen[b] ? chosen[a] < chosen[b]
			    : avail[a] != avail[b] ? avail[a] > avail[b]
			    : a != b		   ? a < b
						   : c[j].dev->slot < c[best].dev->slot)
				best = (ssize_t)j;
		}
		if (best < 0)
			break;
		c[best].chosen = true;
		chosen[instance_index(s, c[best].dev->instance)]++;
		char *dup = strdup(c[best].id);
		if (!dup || push((void ***)&resp->deviceids, &resp->n_deviceids, dup) < 0) {
			free(dup);
			r = -ENOMEM;
			goto out;
		}
	}
out:
	free(c);
	free(chosen);
	free(avail);
	return r;
}

int alloc_preferred(const struct snapshot *s, const V1beta1__PreferredAllocationRequest *req,
		    V1beta1__PreferredAllocationResponse **out, char *err, size_t errlen)
{
	V1beta1__PreferredAllocationResponse *resp = malloc(sizeof(*resp));
	if (!resp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	v1beta1__preferred_allocation_response__init(resp);
	int r = 0;
	for (size_t i = 0; i < req->n_container_requests && r == 0; i++) {
		V1beta1__ContainerPreferredAllocationResponse *c = malloc(sizeof(*c));
		if (!c) {
			r = -ENOMEM;
			break;
		}
		v1beta1__container_preferred_allocation_response__init(c);
		if (push((void ***)&resp->container_responses, &resp->n_container_responses, c) <
		    0) {
			FREE_MSG(c);
			r = -ENOMEM;
			break;
		}
		r = prefer_one(s, req->container_requests[i], c);
	}
	if (r < 0) {
		snprintf(err, errlen, "out of memory");
		FREE_MSG(resp);
		return r;
	}
	*out = resp;
	return 0;
}

int alloc_prestart(const struct snapshot *s, const V1beta1__PreStartContainerRequest *req,
		   char *err, size_t errlen)
{
	for (size_t k = 0; k < req->n_devices_ids; k++) {
		const struct snap_device *d = snapshot_find(s, req->devices_ids[k]);
		if (!d) {
			snprintf(err, errlen, "unknown device ID \"%s\"", req->devices_ids[k]);
			return -ENOENT;
		}
		const struct dev_instance *inst = &d->instance->inst;
		for (size_t i = 0; i < inst->n_nodes; i++) {
			char why[400];
			if (dev_node_check(&inst->nodes[i], why, sizeof(why)) < 0) {
				snprintf(err, errlen, "device \"%s\": %s", req->devices_ids[k],
					 why);
				return -ENODEV;
			}
		}
	}
	return 0;
}
