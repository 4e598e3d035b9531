#include "cdi.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"

#define VENDOR_MAX 253
#define CLASS_MAX  63

/* ASCII only: the CDI parser's notion of letters and digits. */
static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_alnum(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static bool put(char *buf, size_t len, size_t *n, char c)
{
	if (*n + 1 >= len)
		return false;
	buf[(*n)++] = c;
	return true;
}

/* src made a CDI name into buf: characters that are neither alphanumeric
 * nor in extra become '_'; a 'd' goes in front unless src starts with a
 * letter (letter_first) or an alphanumeric, and after it unless it ends
 * with an alphanumeric. Its length, or -ENAMETOOLONG. */
static int fix_name(const char *src, const char *extra, bool letter_first, char *buf, size_t len)
{
	size_t n = 0;
	bool first_ok = letter_first ? is_alpha(src[0]) : is_alnum(src[0]);

	if (!first_ok && !put(buf, len, &n, 'd'))
		return -ENAMETOOLONG;
	for (const char *p = src; *p; p++)
		if (!put(buf, len, &n, is_alnum(*p) || strchr(extra, *p) ? *p : '_'))
			return -ENAMETOOLONG;
	if (!is_alnum(buf[n - 1]) && !put(buf, len, &n, 'd'))
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return (int)n;
}

/* What CDI's parser takes as a vendor (its ValidateVendorName). */
static bool vendor_ok(const char *v)
{
	size_t len = strlen(v);

	if (!is_alpha(v[0]) || !is_alnum(v[len - 1]))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!is_alnum(v[i]) && !strchr("_-.", v[i]))
			return false;
	return true;
}

int cdi_kind(const char *domain, const char *name, char *buf, size_t len)
{
	char class[CLASS_MAX + 1];

	if (!domain || !name || !buf || !*domain || !*name)
		return -EINVAL;
	if (strlen(domain) > VENDOR_MAX)
		return -ENAMETOOLONG;
	if (!vendor_ok(domain))
		return -EINVAL;
	int r = fix_name(name, "_-", true, class, sizeof(class));
	if (r < 0)
		return r;
	r = snprintf(buf, len, "%s/%s", domain, class);
	if (r < 0 || (size_t)r >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* The kind's '/' when kind is "vendor/class" with both non-empty. */
static const char *kind_slash(const char *kind)
{
	const char *slash = kind ? strchr(kind, '/') : NULL;

	if (!slash || slash == kind || !slash[1] || strchr(slash + 1, '/'))
		return NULL;
	return slash;
}

static bool has_id(const struct dev_instance *inst)
{
	return inst->count > 0 && inst->ids && inst->ids[0];
}

int cdi_device_name(const char *kind, const struct dev_instance *inst, char *buf, size_t len)
{
	if (!kind_slash(kind) || !inst || !buf || !has_id(inst))
		return -EINVAL;
	int k = snprintf(buf, len, "%s=", kind);
	int r = -ENAMETOOLONG;
	if (k >= 0 && (size_t)k < len)
		r = fix_name(inst->ids[0], "_-.", false, buf + k, len - (size_t)k);
	if (r < 0) {
		if (len)
			buf[0] = '\0';
		return r;
	}
	return 0;
}

/* Whether the instance can be a CDI device that a runtime accepts and
 * that grants no more than the DeviceSpecs would. */
static bool usable(const struct snap_instance *si)
{
	const struct dev_instance *inst = &si->inst;

	if (!si->healthy || !has_id(inst) || inst->n_nodes == 0)
		return false;
	for (size_t k = 0; k < inst->n_nodes; k++) {
		const struct dev_node *n = &inst->nodes[k];
		if (!n->host_path || !*n->host_path || !n->container_path || !*n->container_path)
			return false;
		if (!n->mount && !n->permissions[0])
			return false;
	}
	return true;
}

struct named {
	const char *name;
	size_t i;
};

static int cmp_named(const void *a, const void *b)
{
	const struct named *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Frees and clears names[i] of every instance whose name another one has
 * too. 0 or -ENOMEM. */
static int drop_clashes(const char *kind, const struct snapshot *s, char **names)
{
	size_t m = 0;
	struct named *v = malloc(s->n_instances * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_instances; i++)
		if (names[i])
			v[m++] = (struct named){names[i], i};
	qsort(v, m, sizeof(*v), cmp_named);
	/* Runs of equal names; a run is done with before its names are freed. */
	for (size_t a = 0, b; a < m; a = b) {
		for (b = a + 1; b < m && strcmp(v[a].name, v[b].name) == 0; b++)
			;
		for (size_t j = a; b - a > 1 && j < b; j++) {
			log_warn(
			    "cdi device left out kind=%s name=%s id=%s reason=\"another device "
			    "has the same CDI name\"",
			    kind, v[j].name, s->instances[v[j].i].inst.ids[0]);
			free(names[v[j].i]);
			names[v[j].i] = NULL;
		}
	}
	free(v);
	return 0;
}

/* The device name of every usable instance (NULL for the others) into
 * *out, clashes dropped. Returns how many are left or -ENOMEM. */
static ssize_t device_names(const char *kind, const struct snapshot *s, char ***out)
{
	char **names = calloc(s->n_instances, sizeof(*names));
	ssize_t left = 0;

	if (!names)
		return -ENOMEM;
	for (size_t i = 0; i < s->n_instances; i++) {
		const struct snap_instance *si = &s->instances[i];
		if (!usable(si))
			continue;
		size_t len = strlen(si->inst.ids[0]) + 3; /* 'd' twice, NUL */
		names[i] = malloc(len);
		if (!names[i] || fix_name(si->inst.ids[0], "_-.", false, names[i], len) < 0) {
			left = -ENOMEM;
			break;
		}
	}
	if (left == 0)
		left = drop_clashes(kind, s, names);
	for (size_t i = 0; left >= 0 && i < s->n_instances; i++)
		left += names[i] != NULL;
	if (left <= 0) {
		for (size_t i = 0; i < s->n_instances; i++)
			free(names[i]);
		free(names);
		return left;
	}
	*out = names;
	return left;
}

/* A new object or string appended to arr; NULL on ENOMEM. */
static cJSON *append(cJSON *arr, cJSON *item)
{
	if (item && !cJSON_AddItemToArray(arr, item)) {
		cJSON_Delete(item);
		return NULL;
	}
	return item;
}

static cJSON *add_node(cJSON *arr, const char *path, const char *host, const char *perms)
{
	cJSON *o = append(arr, cJSON_CreateObject());

	if (!o || !cJSON_AddStringToObject(o, "path", path) ||
	    !cJSON_AddStringToObject(o, "hostPath", host) ||
	    !cJSON_AddStringToObject(o, "permissions", perms))
		return NULL;
	return o;
}

struct below {
	cJSON *arr;
	const struct dev_node *n;
};

/* A node below a directory Device: the same path below its container path. */
static int add_below(void *data, const char *host, const struct stat *st)
{
	(void)st;
	const struct below *b = data;
	char *path = NULL;
	if (asprintf(&path, "%s%s", b->n->container_path, host + strlen(b->n->host_path)) < 0)
		return -ENOMEM;
	cJSON *o = add_node(b->arr, path, host, b->n->permissions);
	free(path);
	return o ? 0 : -ENOMEM;
}

/* A CDI deviceNode must be a node: a directory (generic-device-plugin's
 * /dev/snd, which runtimes expand for a DeviceSpec) is expanded here into
 * the nodes below it as they are now. */
static cJSON *add_device_node(cJSON *arr, const struct dev_node *n)
{
	struct stat st;
	if (!n->kind && stat(n->host_path, &st) == 0 && S_ISDIR(st.st_mode)) {
		struct below b = {arr, n};
		return dev_dir_walk(n->host_path, add_below, &b) < 0 ? NULL : arr;
	}
	return add_node(arr, n->container_path, n->host_path, n->permissions);
}

/* A bind mount ("rbind", or "bind", is what makes it one; SPEC.md leaves
 * "type" out for them): "rbind" takes submounts along, as CRI runtimes do
 * for a device plugin's Mounts. */
static cJSON *add_mount(cJSON *arr, const struct dev_node *n)
{
	cJSON *o = append(arr, cJSON_CreateObject());
	cJSON *opts;

	if (!o || !cJSON_AddStringToObject(o, "hostPath", n->host_path) ||
	    !cJSON_AddStringToObject(o, "containerPath", n->container_path) ||
	    !(opts = cJSON_AddArrayToObject(o, "options")) ||
	    !append(opts, cJSON_CreateString("rbind")) ||
	    !append(opts, cJSON_CreateString(n->read_only ? "ro" : "rw")))
		return NULL;
	return o;
}

/* Appends the device name with inst's edits to devices; 0 or -ENOMEM. */
static int add_device(cJSON *devices, const char *name, const struct dev_instance *inst)
{
	cJSON *dev = append(devices, cJSON_CreateObject());
	cJSON *edits;

	if (!dev || !cJSON_AddStringToObject(dev, "name", name) ||
	    !(edits = cJSON_AddObjectToObject(dev, "containerEdits")))
		return -ENOMEM;
	/* Device nodes first, then mounts; an array only when not empty. */
	for (int pass = 0; pass < 2; pass++) {
		cJSON *arr = NULL;
		for (size_t k = 0; k < inst->n_nodes; k++) {
			const struct dev_node *n = &inst->nodes[k];
			if (n->mount != (pass == 1))
				continue;
			if (!arr &&
			    !(arr = cJSON_AddArrayToObject(edits, pass ? "mounts" : "deviceNodes")))
				return -ENOMEM;
			if (!(pass ? add_mount(arr, n) : add_device_node(arr, n)))
				return -ENOMEM;
		}
	}
	return 0;
}

/* root's text, newline-terminated, in memory of our own malloc. */
static char *print_json(const cJSON *root)
{
	char *text = cJSON_Print(root);

	if (!text)
		return NULL;
	size_t len = strlen(text);
	char *out = malloc(len + 2);
	if (out) {
		memcpy(out, text, len);
		out[len] = '\n';
		out[len + 1] = '\0';
	}
	cJSON_free(text);
	return out;
}

int cdi_spec_json(const char *kind, const struct snapshot *s, char **out)
{
	char **names = NULL, *text;
	cJSON *root = NULL, *devices;
	int r = -ENOMEM;

	if (!kind_slash(kind) || !s || !out || (s->n_instances && !s->instances))
		return -EINVAL;
	if (s->n_instances == 0)
		return -ENODEV;
	ssize_t n = device_names(kind, s, &names);
	if (n <= 0)
		return n < 0 ? (int)n : -ENODEV;
	if (!(root = cJSON_CreateObject()) ||
	    !cJSON_AddStringToObject(root, "cdiVersion", CDI_VERSION) ||
	    !cJSON_AddStringToObject(root, "kind", kind) ||
	    !(devices = cJSON_AddArrayToObject(root, "devices")))
		goto out;
	for (size_t i = 0; i < s->n_instances; i++)
		if (names[i] && add_device(devices, names[i], &s->instances[i].inst) < 0)
			goto out;
	if ((text = print_json(root))) {
		*out = text;
		r = 0;
	}
out:
	cJSON_Delete(root);
	for (size_t i = 0; i < s->n_instances; i++)
		free(names[i]);
	free(names);
	return r;
}

int cdi_spec_path(const char *dir, const char *kind, char *buf, size_t len)
{
	const char *slash = kind_slash(kind);

	if (!dir || !*dir || !slash || !buf)
		return -EINVAL;
	size_t dl = strlen(dir);
	int r = snprintf(buf, len, "%s%s%.*s-%s.json", dir, dir[dl - 1] == '/' ? "" : "/",
			 (int)(slash - kind), kind, slash + 1);
	if (r < 0 || (size_t)r >= len)
		return -ENAMETOOLONG;
	return 0;
}

int cdi_write(const char *dir, const char *kind, const char *json)
{
	char path[PATH_MAX];

	if (!json)
		return -EINVAL;
	int r = cdi_spec_path(dir, kind, path, sizeof(path));
	if (r < 0)
		return r;
	/* The temporary file ".<vendor>-<class>.json.XXXXXX" is hidden and
	 * does not end in ".json": no registry reads it. */
	return fsutil_write_atomic(path, json, strlen(json), 0644);
}

int cdi_remove(const char *dir, const char *kind)
{
	char path[PATH_MAX];
	int r = cdi_spec_path(dir, kind, path, sizeof(path));

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int cdi_clean(const char *dir, const char *vendor, bool (*keep)(void *data, const char *file),
	      void *data)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	size_t vl = strlen(vendor);
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		bool hidden = n[0] == '.';
		const char *base = hidden ? n + 1 : n;
		/* ours: "<vendor>-<class>.json", or its hidden temporary file
		 * ".<vendor>-<class>.json.XXXXXX" a killed writer left */
		if (strncmp(base, vendor, vl) != 0 || base[vl] != '-')
			continue;
		const char *json = strstr(base + vl + 1, ".json");
		if (!json || (hidden ? json[5] != '.' : json[5] != '\0'))
			continue;
		if (!hidden && keep(data, n))
			continue;
		if (unlinkat(dirfd(d), n, 0) == 0) {
			log_info("CDI file removed: %s path=%s/%s",
				 hidden ? "a partial write of an earlier run" : "no such resource",
				 dir, n);
			removed++;
		}
	}
	closedir(d);
	return removed;
}
