#include "devmatch.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A growable list of malloc'd strings. */
struct strv {
	char **v;
	size_t n;
};

static int strv_push(struct strv *l, char *s)
{
	if (!s)
		return -ENOMEM;
	char **a = realloc(l->v, (l->n + 1) * sizeof(*a));
	if (!a) {
		free(s);
		return -ENOMEM;
	}
	a[l->n++] = s;
	l->v = a;
	return 0;
}

static void strv_free(struct strv *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entries of dir (not '.'-names), sorted; -errno when unreadable. */
static int list_dir(const char *dir, struct strv *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	int r = 0;
	const struct dirent *e;
	while (r == 0 && (e = readdir(d)))
		if (e->d_name[0] != '.')
			r = strv_push(out, strdup(e->d_name));
	closedir(d);
	if (r == 0 && out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), cmp_str);
	return r;
}

static bool is_dir_nofollow(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* What a walk does with each entry: full path, name relative to the root,
 * and whether it is a (real) directory. Non-zero stops the walk. */
typedef int (*visit_fn)(void *data, const char *path, const char *rel, bool dir);

static int walk(const char *path, const char *rel, unsigned depth, visit_fn fn, void *data)
{
	struct strv names = {0};
	int r = list_dir(path, &names);
	if (r < 0) {
		strv_free(&names);
		return r == -ENOMEM ? r : 0; /* a directory gone meanwhile: skipped */
	}
	for (size_t i = 0; r == 0 && i < names.n; i++) {
		char *p = NULL, *q = NULL;
		if (asprintf(&p, "%s/%s", path, names.v[i]) < 0 ||
		    asprintf(&q, "%s%s%s", rel, *rel ? "/" : "", names.v[i]) < 0) {
			free(p);
			r = -ENOMEM;
			break;
		}
		bool dir = is_dir_nofollow(p);
		r = fn(data, p, q, dir);
		if (r == 0 && dir && depth < DEVMATCH_MAX_DEPTH)
			r = walk(p, q, depth + 1, fn, data);
		free(p);
		free(q);
	}
	strv_free(&names);
	return r;
}

struct scan {
	const struct cfg_match *m;
	size_t n;
	devmatch_cb fn;
	void *data;
};

static int scan_visit(void *data, const char *path, const char *rel, bool dir)
{
	(void)path;
	(void)dir;
	const struct scan *s = data;
	for (size_t i = 0; i < s->n; i++)
		if (regexec(&s->m[i].regex, rel, 0, NULL, 0) == 0) {
			s->fn(s->data, rel, i);
			break;
		}
	return 0;
}

int devmatch_scan(const char *root, const struct cfg_match *m, size_t n, devmatch_cb fn, void *data)
{
	struct scan s = {.m = m, .n = n, .fn = fn, .data = data};
	if (!is_dir_nofollow(root))
		return -ENOENT;
	return walk(root, "", 1, scan_visit, &s);
}

static int dirs_visit(void *data, const char *path, const char *rel, bool dir)
{
	(void)rel;
	return dir ? strv_push(data, strdup(path)) : 0;
}

int devmatch_watch_dirs(const char *root, char ***dirs, size_t *n_dirs)
{
	struct strv found = {0};
	int r = strv_push(&found, strdup(root));
	if (r == 0)
		r = walk(root, "", 1, dirs_visit, &found);
	for (size_t i = 0; r == 0 && i < found.n; i++) {
		bool have = false;
		for (size_t j = 0; j < *n_dirs && !have; j++)
			have = strcmp((*dirs)[j], found.v[i]) == 0;
		if (have)
			continue;
		char **a = realloc(*dirs, (*n_dirs + 1) * sizeof(*a));
		if (!a) {
			r = -ENOMEM;
			break;
		}
		*dirs = a;
		a[(*n_dirs)++] = found.v[i];
		found.v[i] = NULL;
	}
	strv_free(&found);
	return r;
}

static int nodes_visit(void *data, const char *path, const char *rel, bool dir)
{
	(void)rel;
	struct stat st;
	if (dir || lstat(path, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
		return 0;
	return strv_push(data, strdup(path));
}

static int add_node(struct dev_instance *inst, const char *path)
{
	struct dev_node *a = realloc(inst->nodes, (inst->n_nodes + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	inst->nodes = a;
	struct dev_node *nd = &a[inst->n_nodes];
	*nd = (struct dev_node){.permissions = "rw"};
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

static int build(const char *path, bool dir, const struct cfg_group *g, struct dev_instance *inst)
{
	int r = asprintf(&inst->key, "sdm:%s", g->dev_name) < 0 ? -ENOMEM : 0;
	inst->ids = r == 0 ? calloc(g->count, sizeof(*inst->ids)) : NULL;
	if (!inst->ids)
		return -ENOMEM;
	inst->count = g->count;
	for (unsigned i = 0; i < g->count; i++)
		if (asprintf(&inst->ids[i], "%u", i) < 0) {
			inst->ids[i] = NULL;
			return -ENOMEM;
		}
	if (!dir)
		return add_node(inst, path);
	struct strv devs = {0};
	r = walk(path, "", 1, nodes_visit, &devs);
	for (size_t i = 0; r == 0 && i < devs.n; i++)
		r = add_node(inst, devs.v[i]);
	strv_free(&devs);
	return r;
}

int devmatch_expand(const char *root, const struct cfg_group *g, struct dev_instance **out,
		    size_t *n_out)
{
	char *path = NULL;
	struct stat st;
	*out = NULL;
	*n_out = 0;
	if (!g->dev_name || g->count == 0)
		return -EINVAL;
	if (asprintf(&path, "%s/%s", root, g->dev_name) < 0)
		return -ENOMEM;
	if (lstat(path, &st) < 0 && errno == ENOENT) {
		free(path);
		return 0;
	}
	struct dev_instance *inst = calloc(1, sizeof(*inst));
	int r = inst ? build(path, is_dir_nofollow(path), g, inst) : -ENOMEM;
	free(path);
	if (r < 0) {
		dev_instances_free(inst, 1);
		return r;
	}
	*out = inst;
	*n_out = 1;
	return 0;
}
