#include "devmatch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pathtrust.h"

/* ---- directory listings ---- */

struct entry {
	char *name;
	bool dir; /* a real directory, not a symlink to one */
};

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

static void entries_free(struct entry *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* The entries of dir but '.'-names, sorted. Types come from readdir (no
 * stat per entry: /dev is walked after every event), fstatat only where
 * the file system does not say. -errno when unreadable. */
static int list_dir(const char *dir, struct entry **out, size_t *n_out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -errno;
	struct entry *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	const struct dirent *e;
	while (r == 0 && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			struct entry *a = realloc(v, (cap = cap ? 2 * cap : 32) * sizeof(*a));
			if (!a) {
				r = -ENOMEM;
				break;
			}
			v = a;
		}
		bool isdir = e->d_type == DT_DIR;
		struct stat st;
		if (e->d_type == DT_UNKNOWN)
			isdir = fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				S_ISDIR(st.st_mode);
		if (!(v[n].name = strdup(e->d_name)))
			r = -ENOMEM;
		else
			v[n++].dir = isdir;
	}
	closedir(d);
	if (r < 0) {
		entries_free(v, n);
		return r;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_entry);
	*out = v;
	*n_out = n;
	return 0;
}

/* ---- what each name matched, across scans ---- */

struct verdict {
	char *name; /* NULL: empty slot */
	int match;  /* expression index, or -1 */
	unsigned gen;
};

struct devmatch {
	char *root;
	struct verdict *tab; /* open addressing, linear probing */
	size_t cap, used;
	unsigned gen; /* of the scan running or last run */
	char **dirs;  /* entered by the last scan, root first */
	size_t n_dirs;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct verdict *slot(struct verdict *tab, size_t cap, const char *name)
{
	size_t i = (size_t)hash(name) & (cap - 1);
	while (tab[i].name && strcmp(tab[i].name, name) != 0)
		i = (i + 1) & (cap - 1);
	return &tab[i];
}

/* Rebuilds the table at capacity cap with the verdicts of generation gen
 * only (every one when gen is 0); 0 or -ENOMEM (table unchanged). */
static int rebuild(struct devmatch *dm, size_t cap, unsigned gen)
{
	struct verdict *tab = calloc(cap, sizeof(*tab));
	if (!tab)
		return -ENOMEM;
	size_t used = 0;
	for (size_t i = 0; i < dm->cap; i++) {
		struct verdict *v = &dm->tab[i];
		if (!v->name)
			continue;
		if (gen && v->gen != gen) {
			free(v->name);
			continue;
		}
		*slot(tab, cap, v->name) = *v;
		used++;
	}
	free(dm->tab);
	dm->tab = tab;
	dm->cap = cap;
	dm->used = used;
	return 0;
}

struct devmatch *devmatch_new(const char *root)
{
	struct devmatch *dm = calloc(1, sizeof(*dm));
	if (!dm || !(dm->root = strdup(root)) || rebuild(dm, 64, 0) < 0) {
		devmatch_free(dm);
		return NULL;
	}
	size_t len = strlen(dm->root);
	while (len > 1 && dm->root[len - 1] == '/')
		dm->root[--len] = '\0';
	return dm;
}

static void forget_dirs(struct devmatch *dm)
{
	for (size_t i = 0; i < dm->n_dirs; i++)
		free(dm->dirs[i]);
	free(dm->dirs);
	dm->dirs = NULL;
	dm->n_dirs = 0;
}

void devmatch_forget(struct devmatch *dm)
{
	for (size_t i = 0; i < dm->cap; i++) {
		free(dm->tab[i].name);
		dm->tab[i].name = NULL;
	}
	dm->used = 0;
}

void devmatch_free(struct devmatch *dm)
{
	if (!dm)
		return;
	if (dm->tab)
		devmatch_forget(dm);
	free(dm->tab);
	forget_dirs(dm);
	free(dm->root);
	free(dm);
}

/* ---- scanning ---- */

struct walker {
	struct devmatch *dm;
	const struct cfg_match *m;
	size_t n;
	devmatch_cb fn;
	void *data;
	char path[PATH_MAX]; /* root/rel of the entry at hand */
	size_t root_len;
};

/* The expression rel matches (-1: none), remembered. */
static int judge(struct walker *w, const char *rel)
{
	struct devmatch *dm = w->dm;
	if (dm->used * 2 >= dm->cap && rebuild(dm, dm->cap * 2, 0) < 0)
		return -ENOMEM;
	struct verdict *v = slot(dm->tab, dm->cap, rel);
	if (!v->name) {
		if (!(v->name = strdup(rel)))
			return -ENOMEM;
		dm->used++;
		v->match = -1;
		for (size_t i = 0; i < w->n && v->match < 0; i++)
			if (cfg_match_matches(&w->m[i], rel))
				v->match = (int)i;
	}
	v->gen = dm->gen;
	return v->match;
}

static int add_dir(struct devmatch *dm, const char *path)
{
	char **a = realloc(dm->dirs, (dm->n_dirs + 1) * sizeof(*a));
	if (!a)
		return -ENOMEM;
	dm->dirs = a;
	return (a[dm->n_dirs] = strdup(path)) ? (dm->n_dirs++, 0) : -ENOMEM;
}

/* Whether the directory path (rel below the root, at depth) is matched
 * and walked:
 * not /dev/shm and /dev/mqueue (every user's files, and their churn), nor
 * any directory a user other than root can write -- what is in it is not
 * root's, and a device never is. */
static bool enterable(const char *path, const char *rel, unsigned depth)
{
	struct stat st;
	if (depth == 1 && (strcmp(rel, "shm") == 0 || strcmp(rel, "mqueue") == 0))
		return false;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && !pathtrust_others_write(&st);
}

/* Walks the directory in w->path (len long). */
static int walk(struct walker *w, size_t len, unsigned depth)
{
	struct entry *ents = NULL;
	size_t n = 0;
	int r = list_dir(w->path, &ents, &n);
	if (r < 0)
		return r == -ENOMEM ? r : 0; /* gone meanwhile: its events will say */
	for (size_t i = 0; r == 0 && i < n; i++) {
		size_t nl = strlen(ents[i].name);
		if (len + 1 + nl >= sizeof(w->path))
			continue;
		w->path[len] = '/';
		memcpy(w->path + len + 1, ents[i].name, nl + 1);
		const char *rel = w->path + w->root_len + 1;
		if (ents[i].dir && !enterable(w->path, rel, depth)) {
			w->path[len] = '\0'; /* neither matched nor walked */
			continue;
		}
		int v = judge(w, rel);
		if (v == -ENOMEM)
			r = v;
		else if (v >= 0)
			w->fn(w->data, rel, (size_t)v);
		if (r == 0 && ents[i].dir && depth < DEVMATCH_MAX_DEPTH &&
		    (r = add_dir(w->dm, w->path)) == 0)
			r = walk(w, len + 1 + nl, depth + 1);
		w->path[len] = '\0';
	}
	entries_free(ents, n);
	return r;
}

int devmatch_scan(struct devmatch *dm, const struct cfg_match *m, size_t n, devmatch_cb fn,
		  void *data)
{
	struct walker *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct walker){.dm = dm, .m = m, .n = n, .fn = fn, .data = data};
	w->root_len = strlen(dm->root);
	struct stat st;
	int r = 0;
	if (w->root_len >= sizeof(w->path))
		r = -ENAMETOOLONG;
	else if (lstat(dm->root, &st) < 0 || !S_ISDIR(st.st_mode))
		r = -ENOENT;
	forget_dirs(dm);
	dm->gen = dm->gen + 1 ? dm->gen + 1 : 1;
	if (r == 0) {
		memcpy(w->path, dm->root, w->root_len + 1);
		r = add_dir(dm, dm->root);
	}
	if (r == 0)
		r = walk(w, w->root_len, 1);
	/* Names gone since the last scan: dropped, so the table stays the size
	 * of /dev. Counted cheaply: every name seen has this generation. */
	size_t seen = 0;
	for (size_t i = 0; r == 0 && i < dm->cap; i++)
		seen += dm->tab[i].name && dm->tab[i].gen == dm->gen;
	if (r == 0 && seen < dm->used)
		r = rebuild(dm, dm->cap, dm->gen);
	free(w);
	return r;
}

int devmatch_watch_dirs(const struct devmatch *dm, char ***dirs, size_t *n_dirs)
{
	for (size_t i = 0; i < dm->n_dirs; i++) {
		bool have = false;
		for (size_t j = 0; j < *n_dirs && !have; j++)
			have = strcmp((*dirs)[j], dm->dirs[i]) == 0;
		if (have)
			continue;
		char **a = realloc(*dirs, (*n_dirs + 1) * sizeof(*a));
		if (!a)
			return -ENOMEM;
		*dirs = a;
		if (!(a[*n_dirs] = strdup(dm->dirs[i])))
			return -ENOMEM;
		(*n_dirs)++;
	}
	return 0;
}

/* ---- which events matter ---- */

/* dir/name relative to root into rel: 1, or 0 when it is not below root
 * (or too long to be a name devmatch_scan could give). */
static int relative(const char *root, const char *dir, const char *name, char *rel, size_t len)
{
	size_t rl = strlen(root);
	while (rl > 1 && root[rl - 1] == '/')
		rl--;
	if (strncmp(dir, root, rl) != 0 || (dir[rl] != '\0' && dir[rl] != '/'))
		return 0;
	const char *sub = dir[rl] ? dir + rl + 1 : "";
	int n = snprintf(rel, len, "%s%s%s", sub, *sub ? "/" : "", name);
	return n >= 0 && (size_t)n < len;
}

bool devmatch_event_new_name(const char *root, const struct cfg_match *m, size_t n, const char *dir,
			     const char *name, bool is_dir)
{
	char rel[PATH_MAX];
	if (!dir || !name || !*name)
		return true;
	if (!relative(root, dir, name, rel, sizeof(rel)))
		return false;
	/* devmatch_scan never reports a hidden name, nor one below it. */
	for (const char *c = rel; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
		if (c[0] == '.')
			return false;
	if (is_dir) /* what is below it is found by walking it */
		return true;
	for (size_t i = 0; i < n; i++)
		if (cfg_match_matches(&m[i], rel))
			return true;
	return false;
}

bool devmatch_event_matters(const char *root, const struct cfg_group *g, const char *dir,
			    const char *name)
{
	char rel[PATH_MAX];
	if (!g || !g->dev_name || !dir || !name || !*name)
		return true;
	if (!relative(root, dir, name, rel, sizeof(rel)))
		return false;
	/* The file itself, a directory above it, or a node below it. */
	size_t a = strlen(rel), b = strlen(g->dev_name);
	size_t k = a < b ? a : b;
	return strncmp(rel, g->dev_name, k) == 0 &&
	       (a == b || (a < b ? g->dev_name[a] == '/' : rel[b] == '/'));
}

/* ---- the instance of one matched file ---- */

/* Every character or block device below dir, as nodes, in walk order. */
static int add_dir_nodes(struct dev_instance *inst, const char *dir, unsigned depth)
{
	struct entry *ents = NULL;
	size_t n = 0;
	int r = list_dir(dir, &ents, &n);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		char *p = NULL;
		struct stat st;
		if (asprintf(&p, "%s/%s", dir, ents[i].name) < 0) {
			r = -ENOMEM;
			break;
		}
		if (ents[i].dir && depth < DEVMATCH_MAX_DEPTH) {
			if (enterable(p, "", 0))
				r = add_dir_nodes(inst, p, depth + 1);
		} else if (!ents[i].dir && lstat(p, &st) == 0 &&
			   (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
			r = dev_instance_add_device(inst, p, "rw");
		free(p);
	}
	entries_free(ents, n);
	return r;
}

static int cmp_node(const void *a, const void *b)
{
	return strcmp(((const struct dev_node *)a)->host_path,
		      ((const struct dev_node *)b)->host_path);
}

static int build(const char *path, bool dir, const struct cfg_group *g, struct dev_instance *inst)
{
	if (asprintf(&inst->key, "sdm:%s", g->dev_name) < 0) {
		inst->key = NULL;
		return -ENOMEM;
	}
	if (!(inst->ids = calloc(g->count, sizeof(*inst->ids))))
		return -ENOMEM;
	inst->count = g->count;
	for (unsigned i = 0; i < g->count; i++)
		if (asprintf(&inst->ids[i], "%u", i) < 0) {
			inst->ids[i] = NULL;
			return -ENOMEM;
		}
	if (!dir)
		return dev_instance_add_device(inst, path, "rw");
	int r = add_dir_nodes(inst, path, 1);
	if (r == 0 && inst->n_nodes > 1) /* by path, not walk order: snd/a/b < snd/a-x */
		qsort(inst->nodes, inst->n_nodes, sizeof(*inst->nodes), cmp_node);
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
	size_t trusted = 1; /* a link in /dev may lead out of root's files */
	int r = pathtrust_filter(&path, NULL, &trusted);
	if (r < 0 || trusted == 0) {
		if (r < 0)
			free(path);
		return r;
	}
	bool dir = false;
	if (lstat(path, &st) == 0) {
		dir = S_ISDIR(st.st_mode);
	} else if (errno == ENOENT) {
		free(path);
		return 0;
	} /* else listed, and its health says why */
	struct dev_instance *inst = calloc(1, sizeof(*inst));
	r = inst ? build(path, dir, g, inst) : -ENOMEM;
	free(path);
	if (r < 0) {
		dev_instances_free(inst, 1);
		return r;
	}
	*out = inst;
	*n_out = 1;
	return 0;
}
