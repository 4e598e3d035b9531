#include "paths.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pathmatch.h"
#include "pathtrust.h"

/* Paths, each with its type as readdir gave it (DT_UNKNOWN when not
 * known): pathtrust needs no stat for a plain entry of a root directory. */
struct strv {
	char **v;
	unsigned char *type;
	size_t n, cap;
};

static void strv_clear(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	free(s->type);
	memset(s, 0, sizeof(*s));
}

/* Takes ownership of str (freed on failure). 0 or -ENOMEM. */
static int strv_push_typed(struct strv *s, char *str, unsigned char type)
{
	if (!str)
		return -ENOMEM;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (v)
			s->v = v;
		unsigned char *t = v ? realloc(s->type, cap) : NULL;
		if (!t) {
			free(str);
			return -ENOMEM;
		}
		s->type = t;
		s->cap = cap;
	}
	s->type[s->n] = type;
	s->v[s->n++] = str;
	return 0;
}

static int strv_push(struct strv *s, char *str)
{
	return strv_push_typed(s, str, DT_UNKNOWN);
}

struct typed {
	char *path;
	unsigned char type;
};

static int compare_typed(const void *a, const void *b)
{
	return strcmp(((const struct typed *)a)->path, ((const struct typed *)b)->path);
}

/* Sorts s by path with strcmp, types along. 0 or -ENOMEM. */
static int strv_sort(struct strv *s)
{
	if (s->n < 2)
		return 0;
	struct typed *t = malloc(s->n * sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->n; i++)
		t[i] = (struct typed){s->v[i], s->type[i]};
	qsort(t, s->n, sizeof(*t), compare_typed);
	for (size_t i = 0; i < s->n; i++) {
		s->v[i] = t[i].path;
		s->type[i] = t[i].type;
	}
	free(t);
	return 0;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A component is a glob when it has an unescaped '*', '?' or '['. */
static bool has_meta(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '*' || s[i] == '?' || s[i] == '[')
			return true;
	}
	return false;
}

/* A pattern split into components, empty and "." ones dropped. */
struct components {
	bool absolute;
	size_t n;
	const char **s; /* into the pattern */
	size_t *len;
};

static int components_split(const char *pattern, struct components *c)
{
	size_t max = 1;

	for (const char *p = pattern; *p; p++)
		max += *p == '/';
	memset(c, 0, sizeof(*c));
	c->absolute = pattern[0] == '/';
	c->s = calloc(max, sizeof(*c->s));
	c->len = calloc(max, sizeof(*c->len));
	if (!c->s || !c->len)
		return -ENOMEM;
	for (const char *p = pattern; *p;) {
		size_t len = strcspn(p, "/");

		if (len > 0 && !(len == 1 && p[0] == '.')) {
			c->s[c->n] = p;
			c->len[c->n] = len;
			c->n++;
		}
		p += len;
		while (*p == '/')
			p++;
	}
	return 0;
}

static void components_free(struct components *c)
{
	free(c->s);
	free(c->len);
}

/* Joins the first n components into a normalised path ("/" or "." when
 * n == 0); with unescape, backslash escapes are resolved (a literal path
 * rather than a pattern). Returns a malloc'd string or NULL. */
static char *components_join(const struct components *c, size_t n, bool unescape)
{
	size_t cap = 2, off = 0;
	char *s;

	for (size_t i = 0; i < n; i++)
		cap += c->len[i] + 1;
	s = malloc(cap);
	if (!s)
		return NULL;
	if (n == 0) {
		s[0] = c->absolute ? '/' : '.';
		s[1] = '\0';
		return s;
	}
	for (size_t i = 0; i < n; i++) {
		if (i > 0 || c->absolute)
			s[off++] = '/';
		for (size_t j = 0; j < c->len[i]; j++) {
			if (unescape && c->s[i][j] == '\\' && j + 1 < c->len[i])
				j++;
			s[off++] = c->s[i][j];
		}
	}
	s[off] = '\0';
	return s;
}

/* ---- globbing as Go's fs.Glob does it (but for hidden names) ----
 *
 * generic-device-plugin expands paths with Go's fs.Glob, and the IDs must
 * come out identical. glob(3) differs from it: it never lets a wildcard
 * match a leading '.' in a directory component (GLOB_PERIOD only reaches
 * the last one), it orders by strcoll, and its matcher is fnmatch's. So the
 * walk is done here the way fs.Glob does it: a pattern without
 * metacharacters is stat(2)ed; otherwise the literal leading directory is
 * read and each further component matched (pathmatch) against the entries
 * of the previous level, "." and ".." never listed; the result is sorted
 * with strcmp like Go's sort.Strings. A directory that cannot be opened
 * (missing, not a directory, no permission) holds no match, as for
 * fs.Glob; running out of memory or descriptors is an error. */

/* Go's hasMeta: a backslash also makes fs.Glob read the directory. */
static bool go_has_meta(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == '\\')
			return true;
	return false;
}

static char *path_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir), nl = strlen(name);
	bool slash = dl > 0 && dir[dl - 1] != '/';
	char *s;

	if (strcmp(dir, ".") == 0) /* a relative pattern's own level */
		return strdup(name);
	s = malloc(dl + slash + nl + 1);
	if (!s)
		return NULL;
	memcpy(s, dir, dl);
	if (slash)
		s[dl] = '/';
	memcpy(s + dl + slash, name, nl + 1);
	return s;
}

/* Whether a directory entry is a directory, following symbolic links. */
static bool entry_is_dir(const char *path, const struct dirent *e)
{
	if (e->d_type == DT_DIR)
		return true;
	if (e->d_type != DT_LNK && e->d_type != DT_UNKNOWN)
		return false;
	return is_dir(path);
}

/* opendir's failures that say nothing about the directory: reporting them
 * keeps the caller's last good state instead of "no devices". */
static bool out_of_resources(int err)
{
	return err == ENOMEM || err == EMFILE || err == ENFILE;
}

/* 0 when the component comp (len bytes) is a valid pattern, -EINVAL when
 * not, -ENOMEM. */
static int component_valid(const char *comp, size_t len)
{
	char *pattern = strndup(comp, len);
	int r;

	if (!pattern)
		return -ENOMEM;
	r = pathmatch_valid(pattern) ? 0 : -EINVAL;
	free(pattern);
	return r;
}

/* Appends to next every entry of the directories in dirs whose name
 * matches the component comp (len bytes); with only_dirs, only those that
 * are directories. Returns 0, -EINVAL (malformed comp), -ENOMEM, -EMFILE
 * or -ENFILE. */
static int match_level(const struct strv *dirs, const char *comp, size_t len, bool only_dirs,
		       struct strv *next)
{
	char *pattern = strndup(comp, len);
	int r = 0;

	if (!pattern)
		return -ENOMEM;
	if (!pathmatch_valid(pattern))
		r = -EINVAL;
	for (size_t i = 0; r == 0 && i < dirs->n; i++) {
		DIR *dir = opendir(dirs->v[i]);
		struct dirent *e;

		if (!dir) {
			if (out_of_resources(errno))
				r = -errno;
			continue;
		}
		while (r == 0 && (e = readdir(dir))) {
			char *path;

			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			/* Unlike fs.Glob, a wildcard never matches a leading '.':
			 * udev creates symlinks under hidden temporary names
			 * (".#...") and renames them, and matching those would
			 * list a phantom device for a grace period. Hidden
			 * entries match only a pattern that spells the '.'. */
			if (e->d_name[0] == '.' && comp[0] != '.')
				continue;
			if (pathmatch(pattern, e->d_name) != 1)
				continue;
			path = path_join(dirs->v[i], e->d_name);
			if (path && only_dirs && !entry_is_dir(path, e)) {
				free(path);
				continue;
			}
			r = strv_push_typed(next, path, e->d_type);
		}
		closedir(dir);
	}
	free(pattern);
	return r;
}

/* Fills the empty *out with the sorted matches of pattern. Returns 0 or a
 * negative errno (see match_level); the caller clears *out either way. */
static int go_glob(const char *pattern, struct strv *out)
{
	struct components c;
	struct strv cur = {0}, next = {0};
	struct stat st;
	size_t first = 0;
	int r = components_split(pattern, &c);

	if (r < 0)
		goto out;
	while (first < c.n && !go_has_meta(c.s[first], c.len[first]))
		first++;
	if (first == c.n) {
		if (stat(pattern, &st) == 0)
			r = strv_push(out, components_join(&c, c.n, false));
		else if (errno == ENOMEM)
			r = -ENOMEM;
		goto out;
	}
	for (size_t j = first; r == 0 && j < c.n; j++)
		r = component_valid(c.s[j], c.len[j]); /* -EINVAL: fs.Glob's ErrBadPattern */
	if (r < 0)
		goto out;
	r = strv_push(&cur, components_join(&c, first, false));
	for (size_t j = first; r == 0 && j < c.n && cur.n > 0; j++) {
		r = match_level(&cur, c.s[j], c.len[j], j + 1 < c.n, &next);
		strv_clear(&cur);
		cur = next;
		memset(&next, 0, sizeof(next));
	}
	if (r == 0) {
		*out = cur;
		memset(&cur, 0, sizeof(cur));
		r = strv_sort(out);
	}
out:
	strv_clear(&cur);
	strv_clear(&next);
	components_free(&c);
	return r;
}

/* ---- expansion ---- */

/* A path entry of the group that takes part in the expansion. */
struct used_path {
	const struct cfg_path *cfg;
	char **matches; /* borrowed from the group's match lists */
	size_t n;
};

/* Go's filepath.Base: the last element, trailing slashes ignored, "/" for
 * a path of slashes only. Sets *len; the result points into path. */
static const char *base_name(const char *path, size_t *len)
{
	size_t end = strlen(path), start;

	while (end > 0 && path[end - 1] == '/')
		end--;
	if (end == 0) {
		*len = 1;
		return "/";
	}
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	*len = end - start;
	return path + start;
}

/* mountPath, or the match when unset; with the match's base name appended
 * when that ends in '/'. Returns a malloc'd string or NULL. */
static char *container_path(const char *mount_path, const char *match)
{
	const char *mp = mount_path && *mount_path ? mount_path : match;
	size_t mlen = strlen(mp), blen;
	const char *base;
	char *s;

	if (mlen == 0 || mp[mlen - 1] != '/')
		return strdup(mp);
	base = base_name(match, &blen);
	s = malloc(mlen + blen + 1);
	if (!s)
		return NULL;
	memcpy(s, mp, mlen);
	memcpy(s + mlen, base, blen);
	s[mlen + blen] = '\0';
	return s;
}

/* "g<group_index>:" and the host paths joined with '\n'. */
static char *instance_key(const struct dev_instance *inst, size_t group_index)
{
	char prefix[32];
	int plen = snprintf(prefix, sizeof(prefix), "g%zu:", group_index);
	size_t len, off;
	char *key;

	if (plen < 0 || (size_t)plen >= sizeof(prefix))
		return NULL;
	len = (size_t)plen;
	for (size_t k = 0; k < inst->n_nodes; k++)
		len += strlen(inst->nodes[k].host_path) + 1;
	key = malloc(len + 1);
	if (!key)
		return NULL;
	memcpy(key, prefix, (size_t)plen);
	off = (size_t)plen;
	for (size_t k = 0; k < inst->n_nodes; k++) {
		size_t hl = strlen(inst->nodes[k].host_path);

		if (k > 0)
			key[off++] = '\n';
		memcpy(key + off, inst->nodes[k].host_path, hl);
		off += hl;
	}
	key[off] = '\0';
	return key;
}

/* The ID of count slot j: hex SHA-1 of the decimal j, then every host path,
 * as generic-device-plugin computes it. SHA-1 (libcrypto's) only reproduces
 * those IDs; nothing here relies on it resisting collisions. NULL when out
 * of memory or libcrypto fails (the caller reports -ENOMEM). */
static char *instance_id(const struct dev_instance *inst, unsigned j)
{
	static const char digits[] = "0123456789abcdef";
	char num[16];
	int nlen = snprintf(num, sizeof(num), "%u", j);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (nlen < 0 || (size_t)nlen >= sizeof(num))
		return NULL;
	size_t len = (size_t)nlen;
	for (size_t k = 0; k < inst->n_nodes; k++)
		len += strlen(inst->nodes[k].host_path);
	char *in = malloc(len), *p = in;
	if (!in)
		return NULL;
	p = mempcpy(p, num, (size_t)nlen);
	for (size_t k = 0; k < inst->n_nodes; k++)
		p = mempcpy(p, inst->nodes[k].host_path, strlen(inst->nodes[k].host_path));
	int ok = EVP_Digest(in, len, md, &md_len, EVP_sha1(), NULL);
	free(in);
	char *hex = ok ? malloc(2 * (size_t)md_len + 1) : NULL;
	if (!hex)
		return NULL;
	for (unsigned i = 0; i < md_len; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * md_len] = '\0';
	return hex;
}

/* The ID generic-device-plugin's first schema had for count slot j of a
 * match: "<path>-<j>" (a group of that schema has one path). */
static char *old_schema_id(const struct dev_instance *inst, unsigned j)
{
	char *id = NULL;
	if (asprintf(&id, "%s-%u", inst->n_nodes ? inst->nodes[0].host_path : "", j) < 0)
		return NULL;
	return id;
}

/* Appends a node below a directory Device to the ','-joined list *data. */
static int join_node(void *data, const char *path, const struct stat *st)
{
	(void)st;
	char **list = data, *more = NULL;
	if (asprintf(&more, "%s%s%s", *list ? *list : "", *list ? "," : "", path) < 0)
		return -ENOMEM;
	free(*list);
	*list = more;
	return 0;
}

/* A literal Device path that is a directory (generic-device-plugin's
 * /dev/snd): the nodes below it now become the fact DIR_NODES (Allocate's
 * USBDP_<NAME>_<k>_DIR_NODES), so that a node coming or going below it
 * changes the device, and its CDI spec, which lists them, is rewritten. */
static int add_dir_nodes_fact(struct dev_instance *inst, const struct used_path *used,
			      size_t n_used)
{
	char *list = NULL;
	int r = 0;
	for (size_t k = 0; r == 0 && k < n_used; k++) {
		const struct cfg_path *p = used[k].cfg;
		if (p->type == CFG_PATH_DEVICE && !has_meta(p->path, strlen(p->path)) &&
		    is_dir(inst->nodes[k].host_path))
			r = dev_dir_walk(inst->nodes[k].host_path, join_node, &list);
	}
	if (r == 0 && list)
		r = dev_instance_add_env(inst, "DIR_NODES", list);
	free(list);
	return r;
}

/* Fills the zeroed *inst as instance i. On error returns -ENOMEM and leaves
 * what it allocated in *inst for dev_instance_clear. */
static int instance_build(struct dev_instance *inst, const struct used_path *used, size_t n_used,
			  size_t i, size_t group_index, unsigned count, bool old_ids)
{
	inst->nodes = calloc(n_used ? n_used : 1, sizeof(*inst->nodes));
	if (!inst->nodes)
		return -ENOMEM;
	inst->n_nodes = n_used;
	for (size_t k = 0; k < n_used; k++) {
		const struct cfg_path *p = used[k].cfg;
		const char *match = used[k].matches[i % used[k].n];
		struct dev_node *node = &inst->nodes[k];

		node->host_path = strdup(match);
		node->container_path = container_path(p->mount_path, match);
		if (!node->host_path || !node->container_path)
			return -ENOMEM;
		node->mount = p->type == CFG_PATH_MOUNT;
		node->read_only = p->read_only;
		memcpy(node->permissions, p->permissions, sizeof(node->permissions));
		node->permissions[sizeof(node->permissions) - 1] = '\0';
	}
	inst->key = instance_key(inst, group_index);
	if (!inst->key)
		return -ENOMEM;
	inst->ids = calloc(count, sizeof(*inst->ids));
	if (!inst->ids)
		return -ENOMEM;
	inst->count = count;
	for (unsigned j = 0; j < count; j++)
		if (!(inst->ids[j] = old_ids ? old_schema_id(inst, j) : instance_id(inst, j)))
			return -ENOMEM;
	return add_dir_nodes_fact(inst, used, n_used);
}

/* m * limit, saturating. */
static size_t reusable_len(size_t m, unsigned limit)
{
	if (limit != 0 && m > SIZE_MAX / limit)
		return SIZE_MAX;
	return m * limit;
}

int paths_expand(const struct cfg_group *g, size_t group_index, struct dev_instance **out,
		 size_t *n_out)
{
	struct strv *found = NULL;
	struct used_path *used = NULL;
	struct dev_instance *insts = NULL;
	size_t n_used = 0, natural = 0, reusable = SIZE_MAX, n = 0;
	int r = 0;

	if (!g || !out || !n_out || (g->n_paths > 0 && !g->paths) || g->count == 0)
		return -EINVAL;
	found = calloc(g->n_paths ? g->n_paths : 1, sizeof(*found));
	used = calloc(g->n_paths ? g->n_paths : 1, sizeof(*used));
	if (!found || !used) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t k = 0; k < g->n_paths; k++) {
		const struct cfg_path *p = &g->paths[k];
		size_t m;

		if (!p->path) {
			r = -EINVAL;
			goto out;
		}
		r = go_glob(p->path, &found[k]);
		if (r == 0) /* only what root put there (pathtrust.h) */
			r = pathtrust_filter(found[k].v, found[k].type, &found[k].n);
		if (r < 0)
			goto out;
		m = found[k].n;
		if (m == 0 && p->optional)
			continue;
		used[n_used++] = (struct used_path){p, found[k].v, m};
		if (m > natural)
			natural = m;
		if (reusable_len(m, p->limit) < reusable)
			reusable = reusable_len(m, p->limit);
	}
	n = natural < reusable ? natural : reusable;
	if (n > 0) {
		insts = calloc(n, sizeof(*insts));
		if (!insts) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			r = instance_build(&insts[i], used, n_used, i, group_index, g->count,
					   g->old_ids);
			if (r < 0) {
				dev_instances_free(insts, n);
				goto out;
			}
		}
	}
	*out = insts;
	*n_out = n;
out:
	for (size_t k = 0; found && k < g->n_paths; k++)
		strv_clear(&found[k]);
	free(found);
	free(used);
	return r;
}

/* ---- directories to watch ---- */

/* The directory of the first n components if it exists, else its deepest
 * existing ancestor (the root, "/" or ".", is taken as existing). */
static int watch_literal_prefix(const struct components *c, size_t n, struct strv *found,
				bool *exists)
{
	*exists = false;
	for (size_t k = n + 1; k-- > 0;) {
		char *dir = components_join(c, k, true);

		if (!dir)
			return -ENOMEM;
		if (k == 0 || is_dir(dir)) {
			*exists = k == n;
			return strv_push(found, dir);
		}
		free(dir);
	}
	return 0; /* not reached: k == 0 always pushes */
}

/* For pattern c1/.../cN whose first glob component is cf (cN when none is):
 * the literal prefix c1..c(f-1), then the directories matching c1..cj for
 * j from f to N-1 -- every directory in which creating or removing an entry
 * can change a deeper level's matches, and so the expansion. */
static int watch_pattern(const char *pattern, struct strv *found)
{
	struct components c;
	struct strv cur = {0}, next = {0};
	size_t first;
	bool exists;
	int r = components_split(pattern, &c);

	if (r < 0 || c.n == 0)
		goto out;
	for (first = 0; first + 1 < c.n; first++)
		if (has_meta(c.s[first], c.len[first]))
			break;
	r = watch_literal_prefix(&c, first, found, &exists);
	if (r < 0 || !exists)
		goto out;
	r = strv_push(&cur, strdup(found->v[found->n - 1]));
	for (size_t j = first; r == 0 && j + 1 < c.n && cur.n > 0; j++) {
		r = match_level(&cur, c.s[j], c.len[j], true, &next);
		if (r == -EINVAL) /* malformed: matches nothing, as for paths_expand */
			r = 0;
		for (size_t i = 0; r == 0 && i < next.n; i++)
			r = strv_push(found, strdup(next.v[i]));
		strv_clear(&cur);
		cur = next;
		memset(&next, 0, sizeof(next));
	}
out:
	strv_clear(&cur);
	strv_clear(&next);
	components_free(&c);
	return r;
}

struct dir_ref {
	const char *s;
	size_t idx;
};

static int compare_dir_ref(const void *a, const void *b)
{
	const struct dir_ref *x = a, *y = b;
	int c = strcmp(x->s, y->s);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Moves the candidates that are neither in *dirs nor repeated onto the end
 * of *dirs, in their order; frees the others. Sorting keeps this
 * O(n log n). On -ENOMEM *dirs is untouched and found still owns its
 * strings. */
static int dirs_merge(char ***dirs, size_t *n_dirs, struct strv *found)
{
	size_t total = *n_dirs + found->n, n_keep = 0;
	struct dir_ref *refs = malloc((total ? total : 1) * sizeof(*refs));
	bool *keep = calloc(found->n ? found->n : 1, sizeof(*keep));
	int r = -ENOMEM;

	if (!refs || !keep)
		goto out;
	for (size_t i = 0; i < total; i++)
		refs[i] = (struct dir_ref){i < *n_dirs ? (*dirs)[i] : found->v[i - *n_dirs], i};
	qsort(refs, total, sizeof(*refs), compare_dir_ref);
	for (size_t i = 0; i < total; i++) {
		/* The first of a run of equal strings is the one kept. */
		if (i > 0 && strcmp(refs[i - 1].s, refs[i].s) == 0)
			continue;
		if (refs[i].idx >= *n_dirs) {
			keep[refs[i].idx - *n_dirs] = true;
			n_keep++;
		}
	}
	if (n_keep > 0) {
		char **v = realloc(*dirs, (*n_dirs + n_keep) * sizeof(*v));

		if (!v)
			goto out;
		*dirs = v;
	}
	for (size_t i = 0; i < found->n; i++) {
		if (keep[i])
			(*dirs)[(*n_dirs)++] = found->v[i];
		else
			free(found->v[i]);
	}
	found->n = 0;
	r = 0;
out:
	free(refs);
	free(keep);
	return r;
}

/* Literal paths only: a stat each, where a glob would read its directories
 * again on every rescan for a case nobody configures. */
int paths_device_dirs(const struct cfg_group *g, char ***dirs, size_t *n_dirs)
{
	struct strv found = {0};
	int r = 0;

	if (!g || !dirs || !n_dirs || (g->n_paths > 0 && !g->paths) || (*n_dirs > 0 && !*dirs))
		return -EINVAL;
	for (size_t k = 0; r == 0 && k < g->n_paths; k++) {
		const char *p = g->paths[k].path;
		struct components c;
		if (!p || g->paths[k].type != CFG_PATH_DEVICE || has_meta(p, strlen(p)))
			continue;
		r = components_split(p, &c);
		char *dir = r == 0 && c.n > 0 ? components_join(&c, c.n, true) : NULL;
		components_free(&c);
		if (r == 0 && c.n > 0 && !dir)
			r = -ENOMEM;
		else if (dir && is_dir(dir))
			r = strv_push(&found, dir);
		else
			free(dir);
	}
	if (r == 0)
		r = dirs_merge(dirs, n_dirs, &found);
	strv_clear(&found);
	return r;
}

int paths_watch_dirs(const struct cfg_group *g, char ***dirs, size_t *n_dirs)
{
	struct strv found = {0};
	int r = 0;

	if (!g || !dirs || !n_dirs || (g->n_paths > 0 && !g->paths) || (*n_dirs > 0 && !*dirs))
		return -EINVAL;
	for (size_t k = 0; r == 0 && k < g->n_paths; k++)
		if (g->paths[k].path)
			r = watch_pattern(g->paths[k].path, &found);
	if (r == 0)
		r = dirs_merge(dirs, n_dirs, &found);
	strv_clear(&found);
	return r;
}

/* ---- which events matter ---- */

/* Whether name can be what component comp (len bytes) matches, in
 * go_glob's or watch_pattern's walk: pathmatch, and the hidden-'.' rule of
 * match_level (for a literal component it changes nothing: a name equal to
 * it starts with '.' only if it does). A malformed component is taken to
 * match: paths_expand fails on it, and a retry is what the event asks. */
static bool component_may_match(const char *comp, size_t len, const char *name)
{
	char buf[256];
	if (len >= sizeof(buf))
		return true;
	memcpy(buf, comp, len);
	buf[len] = '\0';
	if (name[0] == '.' && comp[0] != '.')
		return false;
	return pathmatch(buf, name) != 0;
}

/* Whether path dir/name (dir normalised, as paths_watch_dirs gives it) is
 * a prefix of a possible match of pattern, a match, or below one. */
static int pattern_may_reach(const char *pattern, const struct components *ev, bool *hit)
{
	struct components c;
	int r = components_split(pattern, &c);
	if (r < 0) {
		components_free(&c);
		return r;
	}
	*hit = c.absolute == ev->absolute;
	for (size_t i = 0; *hit && i < c.n && i < ev->n; i++) {
		char name[256];
		if (ev->len[i] >= sizeof(name))
			break; /* no file name is that long: taken to match */
		memcpy(name, ev->s[i], ev->len[i]);
		name[ev->len[i]] = '\0';
		*hit = component_may_match(c.s[i], c.len[i], name);
	}
	components_free(&c);
	return 0;
}

bool paths_event_matters(const struct cfg_group *g, const char *dir, const char *name)
{
	if (!g || !dir || !name || !*name || strchr(name, '/'))
		return true; /* the directory itself: anything may have changed */
	char *path = path_join(dir, name);
	struct components ev;
	bool hit = false;
	int r = path ? components_split(path, &ev) : -ENOMEM;
	for (size_t k = 0; r == 0 && !hit && k < g->n_paths; k++)
		r = g->paths[k].path ? pattern_may_reach(g->paths[k].path, &ev, &hit) : -EINVAL;
	if (path)
		components_free(&ev);
	free(path);
	return hit || r < 0;
}

bool paths_pattern_valid(const char *pattern)
{
	char *copy = pattern ? strdup(pattern) : NULL;
	bool valid = copy != NULL;

	/* Each component is matched on its own, so each must be valid. */
	for (char *p = copy, *slash; valid && p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		valid = pathmatch_valid(p);
	}
	free(copy);
	return valid;
}
