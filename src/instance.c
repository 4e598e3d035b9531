#include "instance.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

void dev_instance_clear(struct dev_instance *inst)
{
	if (!inst)
		return;
	free(inst->key);
	for (unsigned i = 0; inst->ids && i < inst->count; i++)
		free(inst->ids[i]);
	free(inst->ids);
	for (size_t i = 0; inst->nodes && i < inst->n_nodes; i++) {
		free(inst->nodes[i].host_path);
		free(inst->nodes[i].container_path);
	}
	free(inst->nodes);
	for (size_t i = 0; inst->env && i < inst->n_env; i++) {
		free(inst->env[i].suffix);
		free(inst->env[i].value);
	}
	free(inst->env);
	dev_kv_free(inst->env_tmpl, inst->n_env_tmpl);
	dev_kv_free(inst->ann_tmpl, inst->n_ann_tmpl);
	memset(inst, 0, sizeof(*inst));
}

void dev_kv_free(struct dev_kv *kv, size_t n)
{
	for (size_t i = 0; kv && i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

int dev_kv_copy(struct dev_kv **dst, const struct dev_kv *src, size_t n)
{
	if (n == 0) {
		*dst = NULL;
		return 0;
	}
	struct dev_kv *c = calloc(n, sizeof(*c));
	if (!c)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		c[i].key = strdup(src[i].key);
		c[i].value = strdup(src[i].value);
		if (!c[i].key || !c[i].value) {
			dev_kv_free(c, i + 1);
			return -ENOMEM;
		}
	}
	*dst = c;
	return 0;
}

void dev_instances_free(struct dev_instance *insts, size_t n)
{
	if (!insts)
		return;
	for (size_t i = 0; i < n; i++)
		dev_instance_clear(&insts[i]);
	free(insts);
}

int dev_instance_copy(struct dev_instance *dst, const struct dev_instance *src)
{
	struct dev_instance c = {.count = src->count, .n_nodes = src->n_nodes};
	c.key = strdup(src->key ? src->key : "");
	c.ids = calloc(src->count ? src->count : 1, sizeof(*c.ids));
	c.nodes = calloc(src->n_nodes ? src->n_nodes : 1, sizeof(*c.nodes));
	if (!c.key || !c.ids || !c.nodes)
		goto oom;
	for (unsigned i = 0; i < src->count; i++)
		if (!(c.ids[i] = strdup(src->ids[i])))
			goto oom;
	for (size_t i = 0; i < src->n_nodes; i++) {
		c.nodes[i] = src->nodes[i];
		c.nodes[i].host_path = strdup(src->nodes[i].host_path);
		c.nodes[i].container_path = strdup(src->nodes[i].container_path);
		if (!c.nodes[i].host_path || !c.nodes[i].container_path)
			goto oom;
	}
	if (src->n_env) {
		c.env = calloc(src->n_env, sizeof(*c.env));
		if (!c.env)
			goto oom;
		c.n_env = src->n_env;
		for (size_t i = 0; i < src->n_env; i++) {
			c.env[i].suffix = strdup(src->env[i].suffix);
			c.env[i].value = strdup(src->env[i].value);
			if (!c.env[i].suffix || !c.env[i].value)
				goto oom;
		}
	}
	if (dev_kv_copy(&c.env_tmpl, src->env_tmpl, src->n_env_tmpl) < 0)
		goto oom;
	c.n_env_tmpl = src->n_env_tmpl;
	if (dev_kv_copy(&c.ann_tmpl, src->ann_tmpl, src->n_ann_tmpl) < 0)
		goto oom;
	c.n_ann_tmpl = src->n_ann_tmpl;
	*dst = c;
	return 0;
oom:
	dev_instance_clear(&c);
	return -ENOMEM;
}

int dev_instance_add_device(struct dev_instance *inst, const char *path, const char *perms)
{
	struct dev_node *a = realloc(inst->nodes, (inst->n_nodes + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	inst->nodes = a;
	struct dev_node *nd = &a[inst->n_nodes];
	*nd = (struct dev_node){0};
	snprintf(nd->permissions, sizeof(nd->permissions), "%s", perms);
	nd->host_path = strdup(path);
	nd->container_path = strdup(path);
	if (!nd->host_path || !nd->container_path) {
		free(nd->host_path);
		free(nd->container_path);
		return -ENOMEM;
	}
	inst->n_nodes++;
	return 0;
}

int dev_instance_add_env(struct dev_instance *inst, const char *suffix, const char *value)
{
	struct dev_env *e = realloc(inst->env, (inst->n_env + 1) * sizeof(*e));
	if (!e)
		return -ENOMEM;
	inst->env = e;
	e[inst->n_env].suffix = strdup(suffix);
	e[inst->n_env].value = strdup(value);
	if (!e[inst->n_env].suffix || !e[inst->n_env].value) {
		free(e[inst->n_env].suffix);
		free(e[inst->n_env].value);
		return -ENOMEM;
	}
	inst->n_env++;
	return 0;
}

/* ---- a directory of device nodes (generic-device-plugin's /dev/snd) ---- */

static int walk(const char *dir, unsigned depth, dev_dir_fn fn, void *data)
{
	struct dirent **ents = NULL;
	int n = scandir(dir, &ents, NULL, alphasort), r = 0;
	if (n < 0)
		return errno == ENOMEM ? -ENOMEM : 0; /* gone meanwhile: nothing below */
	for (int i = 0; i < n; i++) {
		char *p = NULL;
		struct stat st;
		if (r == 0 && ents[i]->d_name[0] != '.' &&
		    asprintf(&p, "%s/%s", dir, ents[i]->d_name) < 0) {
			p = NULL;
			r = -ENOMEM;
		}
		if (p && lstat(p, &st) == 0) {
			if (S_ISDIR(st.st_mode) && depth < DEV_DIR_MAX_DEPTH)
				r = walk(p, depth + 1, fn, data);
			else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
				r = fn(data, p, &st);
		}
		free(p);
		free(ents[i]);
	}
	free(ents);
	return r;
}

int dev_dir_walk(const char *dir, dev_dir_fn fn, void *data)
{
	return walk(dir, 1, fn, data);
}

static int stop_at_first(void *data, const char *path, const struct stat *st)
{
	(void)data;
	(void)path;
	(void)st;
	return 1;
}

int dev_node_check(const struct dev_node *node, char *why, size_t whylen)
{
	struct stat st;
	if (stat(node->host_path, &st) < 0) {
		int e = errno;
		snprintf(why, whylen, "stat %s: %s", node->host_path, strerror(e));
		return -e;
	}
	if (node->mount)
		return 0;
	/* A directory handed over as a Device (runtimes expand it into the
	 * nodes below it): healthy while it holds one. */
	if (S_ISDIR(st.st_mode) && !node->kind) {
		int r = dev_dir_walk(node->host_path, stop_at_first, NULL);
		if (r < 0 || r == 1)
			return r < 0 ? r : 0;
		snprintf(why, whylen, "%s holds no character or block device", node->host_path);
		return -ENODEV;
	}
	if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
		snprintf(why, whylen, "%s is not a character or block device", node->host_path);
		return -ENODEV;
	}
	if ((node->kind == 'c' && !S_ISCHR(st.st_mode)) ||
	    (node->kind == 'b' && !S_ISBLK(st.st_mode))) {
		snprintf(why, whylen, "%s is a %s device, expected a %s device", node->host_path,
			 S_ISCHR(st.st_mode) ? "character" : "block",
			 node->kind == 'c' ? "character" : "block");
		return -ENODEV;
	}
	if (node->rdev && st.st_rdev != node->rdev) {
		snprintf(why, whylen, "%s is device %u:%u, expected %u:%u (a stale node?)",
			 node->host_path, major(st.st_rdev), minor(st.st_rdev), major(node->rdev),
			 minor(node->rdev));
		return -ENODEV;
	}
	return 0;
}
