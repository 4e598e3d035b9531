/* The device schema: generic-device-plugin's devices (name, groups of
 * paths, usb or virtual entries, env and annotations) and
 * smarter-device-manager's {devicematch, nummaxdevices} entries, each
 * validated completely with the field path and reason of the first
 * problem. See docs/config-reference.md. */
#include "cfgschema.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gore.h"
#include "pathmatch.h"
#include "sizelimits.h"
#include "tmpl.h"

/* count slots per instance: more could never all be listed */
#define MAX_COUNT LIMIT_DEVICES
#define MAX_NAME  63 /* Kubernetes' limit for the name part of a resource */

/* ---- devices ---- */

static void group_clear(struct cfg_group *g)
{
	for (size_t i = 0; g->paths && i < g->n_paths; i++) {
		free(g->paths[i].path);
		free(g->paths[i].mount_path);
	}
	free(g->paths);
	for (size_t i = 0; g->usb && i < g->n_usb; i++) {
		free(g->usb[i].serial);
		free(g->usb[i].port);
		free(g->usb[i].mount_path);
	}
	free(g->usb);
	if (g->virt) {
		free(g->virt->id_prefix);
		free(g->virt->device_file_prefix);
		free(g->virt);
	}
	free(g->dev_name);
	dev_kv_free(g->env, g->n_env);
	dev_kv_free(g->annotations, g->n_annotations);
	memset(g, 0, sizeof(*g));
}

void config_device_clear(struct cfg_device *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->groups && i < d->n_groups; i++)
		group_clear(&d->groups[i]);
	free(d->groups);
	free(d->name);
	free(d->domain);
	memset(d, 0, sizeof(*d));
}

static int dup_opt(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -ENOMEM : 0;
}

static int group_copy(struct cfg_group *dst, const struct cfg_group *src)
{
	*dst = (struct cfg_group){.count = src->count, .old_ids = src->old_ids};
	int e = dup_opt(&dst->dev_name, src->dev_name);
	if (e == 0 && src->n_paths && !(dst->paths = calloc(src->n_paths, sizeof(*dst->paths))))
		e = -ENOMEM;
	for (size_t i = 0; e == 0 && i < src->n_paths; i++) {
		dst->paths[i] = src->paths[i];
		dst->paths[i].path = dst->paths[i].mount_path = NULL;
		dst->n_paths = i + 1;
		if ((e = dup_opt(&dst->paths[i].path, src->paths[i].path)) == 0)
			e = dup_opt(&dst->paths[i].mount_path, src->paths[i].mount_path);
	}
	if (e == 0 && src->n_usb && !(dst->usb = calloc(src->n_usb, sizeof(*dst->usb))))
		e = -ENOMEM;
	for (size_t i = 0; e == 0 && i < src->n_usb; i++) {
		dst->usb[i] = src->usb[i];
		dst->usb[i].serial = dst->usb[i].port = dst->usb[i].mount_path = NULL;
		dst->n_usb = i + 1;
		if ((e = dup_opt(&dst->usb[i].serial, src->usb[i].serial)) == 0 &&
		    (e = dup_opt(&dst->usb[i].port, src->usb[i].port)) == 0)
			e = dup_opt(&dst->usb[i].mount_path, src->usb[i].mount_path);
	}
	if (e == 0 && src->virt) {
		if (!(dst->virt = calloc(1, sizeof(*dst->virt))))
			e = -ENOMEM;
		else {
			dst->virt->count = src->virt->count;
			if ((e = dup_opt(&dst->virt->id_prefix, src->virt->id_prefix)) == 0)
				e = dup_opt(&dst->virt->device_file_prefix,
					    src->virt->device_file_prefix);
		}
	}
	if (e == 0 && dev_kv_copy(&dst->env, src->env, src->n_env) < 0)
		e = -ENOMEM;
	if (e == 0)
		dst->n_env = src->n_env;
	if (e == 0 && dev_kv_copy(&dst->annotations, src->annotations, src->n_annotations) < 0)
		e = -ENOMEM;
	if (e == 0)
		dst->n_annotations = src->n_annotations;
	return e;
}

int config_device_copy(struct cfg_device *dst, const struct cfg_device *src)
{
	*dst = (struct cfg_device){0};
	int e = dup_opt(&dst->name, src->name);
	if (e == 0)
		e = dup_opt(&dst->domain, src->domain);
	if (e == 0 && src->n_groups && !(dst->groups = calloc(src->n_groups, sizeof(*dst->groups))))
		e = -ENOMEM;
	for (size_t g = 0; e == 0 && g < src->n_groups; g++) {
		dst->n_groups = g + 1;
		e = group_copy(&dst->groups[g], &src->groups[g]);
	}
	if (e < 0)
		config_device_clear(dst);
	return e;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same_kv(const struct dev_kv *a, size_t na, const struct dev_kv *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].key, b[i].key) || strcmp(a[i].value, b[i].value))
			return false;
	return true;
}

static bool same_path(const struct cfg_path *p, const struct cfg_path *q)
{
	return str_eq(p->path, q->path) && str_eq(p->mount_path, q->mount_path) &&
	       p->type == q->type && strcmp(p->permissions, q->permissions) == 0 &&
	       p->read_only == q->read_only && p->limit == q->limit && p->optional == q->optional;
}

static bool same_usb(const struct cfg_usb *u, const struct cfg_usb *v)
{
	return u->vendor == v->vendor && u->product == v->product && u->usb_class == v->usb_class &&
	       str_eq(u->serial, v->serial) && str_eq(u->port, v->port) &&
	       str_eq(u->mount_path, v->mount_path);
}

static bool same_group(const struct cfg_group *x, const struct cfg_group *y)
{
	if (x->count != y->count || x->old_ids != y->old_ids || x->n_paths != y->n_paths ||
	    x->n_usb != y->n_usb || !str_eq(x->dev_name, y->dev_name) ||
	    !same_kv(x->env, x->n_env, y->env, y->n_env) ||
	    !same_kv(x->annotations, x->n_annotations, y->annotations, y->n_annotations) ||
	    !x->virt != !y->virt)
		return false;
	if (x->virt &&
	    (x->virt->count != y->virt->count || !str_eq(x->virt->id_prefix, y->virt->id_prefix) ||
	     !str_eq(x->virt->device_file_prefix, y->virt->device_file_prefix)))
		return false;
	for (size_t i = 0; i < x->n_paths; i++)
		if (!same_path(&x->paths[i], &y->paths[i]))
			return false;
	for (size_t i = 0; i < x->n_usb; i++)
		if (!same_usb(&x->usb[i], &y->usb[i]))
			return false;
	return true;
}

bool config_device_equal(const struct cfg_device *a, const struct cfg_device *b)
{
	if (strcmp(a->name, b->name) || !str_eq(a->domain, b->domain) || a->n_groups != b->n_groups)
		return false;
	for (size_t g = 0; g < a->n_groups; g++)
		if (!same_group(&a->groups[g], &b->groups[g]))
			return false;
	return true;
}

bool config_resource_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = cfgval_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alnum && (!strchr("-_.", c) || i == 0 || i == len - 1))
			return false;
	}
	return true;
}

static bool name_valid(const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = cfgval_is_digit(c) || (c >= 'a' && c <= 'z');
		if (!alnum && (c != '-' || i == 0 || i == len - 1))
			return false;
	}
	return len > 0;
}

/* The trimmed, validated resource name of node n into *out (malloc'd). */
static int get_name(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, char **out)
{
	const char *raw;
	int r = cfgval_get_string(s, n, path, leaf, &raw);
	if (r < 0)
		return r;
	char *name = cfgval_dup_trim(raw);
	if (!name)
		return -ENOMEM;
	if (!*name)
		r = cfgval_fail(s, n, path, leaf, "must not be empty");
	else if (strlen(name) > MAX_NAME)
		r = cfgval_fail(s, n, path, leaf, "\"%.20s...\" is longer than %d characters", name,
				MAX_NAME);
	else if (!name_valid(name))
		r = cfgval_fail(
		    s, n, path, leaf,
		    "\"%s\" is not a valid name: use lower-case letters, digits and '-', "
		    "starting and ending with a letter or digit "
		    "(^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)",
		    name);
	if (r < 0) {
		free(name);
		return r;
	}
	*out = name;
	return 0;
}

/* A trimmed absolute path (path, mountPath). */
/* A container path made plain in place: "//" and "/./" collapse, ".."
 * takes the previous component away; a trailing '/' (a directory) stays.
 * -EINVAL when ".." climbs above '/'. */
static int normalize_path(char *p)
{
	size_t len = strlen(p);
	bool dir = len > 1 && p[len - 1] == '/';
	char *out = p; /* p[0] == '/' */
	size_t o = 0;
	for (char *c = p; *c;) {
		while (*c == '/')
			c++;
		if (!*c)
			break;
		char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		if (n == 1 && c[0] == '.') {
			/* nothing */
		} else if (n == 2 && c[0] == '.' && c[1] == '.') {
			if (o == 0)
				return -EINVAL;
			while (o > 0 && out[o - 1] != '/')
				o--;
			o--; /* the '/' before it */
		} else {
			out[o++] = '/';
			memmove(out + o, c, n);
			o += n;
		}
		c += n;
	}
	if (o == 0 || dir)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
}

/* A mountPath made plain; one inside /proc or /sys would put a host file
 * over the kernel's view in the container: refused. */
static int check_mount_path(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			    const char *leaf, char *p)
{
	char *raw = strdup(p);
	if (!raw)
		return -ENOMEM;
	int r = 0;
	if (normalize_path(p) < 0)
		r = cfgval_fail(s, n, path, leaf, "\"%s\" climbs above '/' with \"..\"", raw);
	else if (!strcmp(p, "/") || !strncmp(p, "/proc/", 6) || !strcmp(p, "/proc") ||
		 !strncmp(p, "/sys/", 5) || !strcmp(p, "/sys"))
		r = cfgval_fail(s, n, path, leaf,
				"\"%s\" is %s: no device belongs there in a container", raw,
				!strcmp(p, "/") ? "the root" : "inside /proc or /sys");
	else if (strcmp(raw, p) != 0)
		log_info("config: %s.%s \"%s\" is taken as \"%s\"", path, leaf, raw, p);
	free(raw);
	return r;
}

static int get_abs_path(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			const char *leaf, bool required, bool mount, char **out)
{
	const char *raw;
	int r = cfgval_get_string(s, n, path, leaf, &raw);
	if (r < 0)
		return r;
	char *p = cfgval_dup_trim(raw);
	if (!p)
		return -ENOMEM;
	if (!*p && !required) {
		free(p);
		*out = NULL;
		return 0;
	}
	if (!*p)
		r = cfgval_fail(s, n, path, leaf, "must not be empty");
	else if (*p != '/')
		r = cfgval_fail(s, n, path, leaf,
				"must be an absolute path (start with '/'), got \"%s\"", p);
	else if (mount) /* a container path */
		r = check_mount_path(s, n, path, leaf, p);
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* paths_expand matches each '/'-separated component of a glob on its own,
 * so each must be a valid pattern. pattern is cut in place and restored. */
static bool glob_valid(char *pattern)
{
	bool valid = true;

	for (char *p = pattern, *slash; valid && p; p = slash ? slash + 1 : NULL) {
		slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		valid = pathmatch_valid(p);
		if (slash)
			*slash = '/';
	}
	return valid;
}

/* A path glob: absolute, and well-formed for paths_expand. */
static int get_glob(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, char **out)
{
	int r = get_abs_path(s, n, path, leaf, true, false, out);
	if (r < 0)
		return r;
	if (!glob_valid(*out)) {
		r = cfgval_fail(
		    s, n, path, leaf,
		    "\"%s\" is not a valid glob (unclosed '[', empty class or trailing '\\')",
		    *out);
		free(*out);
		*out = NULL;
	}
	return r;
}

/* "wr" -> "rw": distinct letters of m, r, w, stored in the order "mrw". */
static int get_permissions(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			   char out[4])
{
	const char *t;
	int r = cfgval_get_string(s, n, path, "permissions", &t);
	if (r < 0)
		return r;
	if (!*t)
		return cfgval_fail(s, n, path, "permissions",
				   "must not be empty: give some of m, r, w (e.g. \"rw\")");
	bool seen[3] = {false, false, false};
	for (const char *c = t; *c; c++) {
		const char *at = strchr("mrw", *c);
		if (!at)
			return cfgval_fail(
			    s, n, path, "permissions",
			    "invalid permission '%c' in \"%s\": allowed are m (mknod), "
			    "r (read), w (write)",
			    *c, t);
		if (seen[at - "mrw"])
			return cfgval_fail(s, n, path, "permissions", "'%c' given twice in \"%s\"",
					   *c, t);
		seen[at - "mrw"] = true;
	}
	size_t j = 0;
	for (int i = 0; i < 3; i++)
		if (seen[i])
			out[j++] = "mrw"[i];
	out[j] = '\0';
	return 0;
}

static const char *const path_keys[] = {"path",	    "mountPath", "type",     "permissions",
					"readOnly", "limit",	 "optional", NULL};

static int parse_path_type(const struct cfg_src *s, const struct cfg_node *map, const char *path,
			   enum cfg_path_type *out)
{
	const struct cfg_node *n = cfgval_field(map, "type");
	const char *t = "";
	*out = CFG_PATH_DEVICE;
	if (n && cfgval_get_string(s, n, path, "type", &t) < 0)
		return -EINVAL;
	if (strcmp(t, "Mount") == 0)
		*out = CFG_PATH_MOUNT;
	else if (*t && strcmp(t, "Device") != 0)
		return cfgval_fail(s, n, path, "type",
				   "unknown type \"%s\": allowed are \"Device\" (the default) and "
				   "\"Mount\" (case matters)",
				   t);
	return 0;
}

/* The fields besides path and mountPath. */
static int parse_path_options(const struct cfg_src *s, const struct cfg_node *map, const char *path,
			      struct cfg_path *p)
{
	const struct cfg_node *n;
	int r = parse_path_type(s, map, path, &p->type);
	if (r < 0)
		return r;
	if (p->type == CFG_PATH_DEVICE)
		memcpy(p->permissions, "mrw", 4);
	if ((n = cfgval_field(map, "permissions"))) {
		char perms[4];
		if ((r = get_permissions(s, n, path, perms)) < 0)
			return r;
		if (p->type == CFG_PATH_MOUNT)
			cfgval_warn(
			    s, n, path, "permissions",
			    "ignored on a Mount entry (use readOnly: true for a read-only mount)");
		else
			memcpy(p->permissions, perms, sizeof(perms));
	}
	if ((n = cfgval_field(map, "readOnly"))) {
		if ((r = cfgval_get_bool(s, n, path, "readOnly", &p->read_only)) < 0)
			return r;
		if (p->type == CFG_PATH_DEVICE && p->read_only) {
			cfgval_warn(s, n, path, "readOnly",
				    "ignored on a Device entry (use permissions: \"r\" instead)");
			p->read_only = false;
		}
	}
	p->limit = 1;
	if ((n = cfgval_field(map, "limit")) &&
	    (r = cfgval_get_uint(s, n, path, "limit", 1, UINT_MAX, &p->limit)) < 0)
		return r;
	if ((n = cfgval_field(map, "optional")) &&
	    (r = cfgval_get_bool(s, n, path, "optional", &p->optional)) < 0)
		return r;
	return 0;
}

/* One entry of a group's paths; on error *p owns what it holds so far. */
static int parse_path(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		      struct cfg_path *p)
{
	int r = cfgval_expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	if ((r = cfgval_check_keys(s, map, path, path_keys, NULL, NULL)) < 0)
		return r;
	const struct cfg_node *n = NULL;
	if ((r = cfgval_required(s, map, path, "path", &n)) < 0 ||
	    (r = get_glob(s, n, path, "path", &p->path)) < 0)
		return r;
	if ((n = cfgval_field(map, "mountPath")) &&
	    (r = get_abs_path(s, n, path, "mountPath", false, true, &p->mount_path)) < 0)
		return r;
	return parse_path_options(s, map, path, p);
}

/* A USB ID: always hex, 1 to 4 digits, optional 0x; "*" or null: any (-1). */
static int get_usb_id(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		      const char *leaf, int32_t *out)
{
	char buf[80];
	*out = -1;
	if (cfgval_is_null(n))
		return 0;
	if (n->kind != CFG_SCALAR || cfgval_is_bool(n))
		return cfgval_fail(s, n, path, leaf,
				   "expected a hex USB ID such as \"1a86\", got %s",
				   cfgval_got(n, buf, sizeof(buf)));
	const char *t = n->text;
	if (strcmp(t, "*") == 0)
		return 0;
	const char *h = (t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) ? t + 2 : t;
	size_t len = strlen(h);
	long v = 0;
	bool ok = len >= 1 && len <= 4 && strlen(t) == n->len;
	for (size_t i = 0; ok && i < len; i++) {
		const char *d = strchr("0123456789abcdef0123456789ABCDEF", h[i]);
		ok = h[i] && d;
		if (ok)
			v = v * 16 + (d - "0123456789abcdef0123456789ABCDEF") % 16;
	}
	if (!ok)
		return cfgval_fail(
		    s, n, path, leaf,
		    "invalid USB ID \"%.40s\": give 1 to 4 hex digits, optionally after "
		    "0x (e.g. \"1a86\"), or \"*\" for any",
		    t);
	/* generic-device-plugin decoded unquoted numbers in its config file
	 * as decimal (and so matched nothing); say that we read them as hex. */
	if (s->lines && !n->quoted && h == t && cfgval_is_integer(t) && v >= 10)
		cfgval_warn(
		    s, n, path, leaf,
		    "unquoted number %s read as hex 0x%04lx (generic-device-plugin read it as "
		    "decimal); quote it to silence this warning",
		    t, v);
	*out = (int32_t)v;
	return 0;
}

static const char *const usb_keys[] = {"vendor", "product",   "serial", "class",
				       "port",	 "mountPath", NULL};

/* Names accepted for "class", as lsusb and the USB-IF name them. */
static const struct {
	const char *name;
	uint8_t code;
} usb_class_names[] = {
    {"audio", 0x01},	    {"cdc", 0x02},	   {"comm", 0x02},
    {"cdc-acm", 0x02},	    {"hid", 0x03},	   {"physical", 0x05},
    {"image", 0x06},	    {"still-image", 0x06}, {"printer", 0x07},
    {"mass-storage", 0x08}, {"hub", 0x09},	   {"cdc-data", 0x0a},
    {"smart-card", 0x0b},   {"video", 0x0e},	   {"billboard", 0x11},
    {"diagnostic", 0xdc},   {"wireless", 0xe0},	   {"misc", 0xef},
    {"app-specific", 0xfe}, {"vendor", 0xff},	   {"vendor-specific", 0xff},
};

/* "class": a name (checked first: "cdc" is also hex), hex 1-2 digits
 * (optional 0x), or "*". */
static int get_usb_class(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			 int32_t *out)
{
	*out = -1;
	if (cfgval_is_null(n))
		return 0;
	if (n->kind == CFG_SCALAR)
		for (size_t i = 0; i < sizeof(usb_class_names) / sizeof(usb_class_names[0]); i++)
			if (strcasecmp(n->text, usb_class_names[i].name) == 0) {
				*out = usb_class_names[i].code;
				return 0;
			}
	int r = get_usb_id(s, n, path, "class", out);
	if (r == 0 && *out > 0xff) {
		unsigned v = (unsigned)*out;
		*out = -1;
		return cfgval_fail(
		    s, n, path, "class",
		    "USB class 0x%x is out of range: give 2 hex digits (\"02\") or a "
		    "name (\"cdc-acm\", \"hid\", \"video\", \"audio\", ...)",
		    v);
	}
	return r;
}

static int parse_usb(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		     struct cfg_usb *u)
{
	u->vendor = u->product = -1;
	int r = cfgval_expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	if ((r = cfgval_check_keys(s, map, path, usb_keys, NULL, NULL)) < 0)
		return r;
	if ((r = get_usb_id(s, cfgtree_get(map, "vendor"), path, "vendor", &u->vendor)) < 0)
		return r;
	if ((r = get_usb_id(s, cfgtree_get(map, "product"), path, "product", &u->product)) < 0)
		return r;
	const struct cfg_node *n = cfgval_field(map, "serial");
	const char *serial = "";
	if (n && (r = cfgval_get_string(s, n, path, "serial", &serial)) < 0)
		return r;
	if (*serial && !pathmatch_valid(serial))
		return cfgval_fail(s, n, path, "serial",
				   "malformed glob \"%s\" (Go's path.Match: '*', '?', "
				   "'[...]', '\\' escapes)",
				   serial);
	if (*serial && !(u->serial = strdup(serial)))
		return -ENOMEM;
	if ((r = get_usb_class(s, cfgtree_get(map, "class"), path, &u->usb_class)) < 0)
		return r;
	const char *port = "";
	if ((n = cfgval_field(map, "port")) &&
	    (r = cfgval_get_string(s, n, path, "port", &port)) < 0)
		return r;
	if (*port && !pathmatch_valid(port))
		return cfgval_fail(s, n, path, "port",
				   "malformed glob \"%s\" (Go's path.Match: '*', '?', "
				   "'[...]', '\\' escapes)",
				   port);
	if (*port && !(u->port = cfgval_dup_trim(port)))
		return -ENOMEM;
	if ((n = cfgval_field(map, "mountPath")) &&
	    (r = get_abs_path(s, n, path, "mountPath", false, true, &u->mount_path)) < 0)
		return r;
	if (u->mount_path && u->mount_path[strlen(u->mount_path) - 1] != '/')
		return cfgval_fail(
		    s, n, path, "mountPath",
		    "must be a directory ending in '/' (the device's nodes are put in "
		    "it by name), got \"%s\"",
		    u->mount_path);
	if (u->vendor < 0 && u->product < 0 && !u->serial && u->usb_class < 0 && !u->port)
		return cfgval_fail(
		    s, map, path, NULL,
		    "matches every USB device; give at least vendor, product, class, "
		    "port or serial");
	return 0;
}

/* The non-empty list under key of a group; NULL when absent. */
static int group_list(const struct cfg_src *s, const struct cfg_node *group, const char *path,
		      const char *key, const struct cfg_node **out)
{
	const struct cfg_node *n = cfgval_field(group, key);
	*out = NULL;
	if (!n)
		return 0;
	int r = cfgval_expect_kind(s, n, path, key, CFG_SEQ);
	if (r < 0)
		return r;
	if (n->n_items == 0)
		return cfgval_fail(s, n, path, key, "must not be empty");
	*out = n;
	return 0;
}

static int parse_group_entries(const struct cfg_src *s, const struct cfg_node *list,
			       const char *path, struct cfg_group *g)
{
	char sub[CFGVAL_PATH_BUF];
	bool usb = g->usb != NULL;
	for (size_t i = 0; i < list->n_items; i++) {
		if (cfgval_path_index(sub, sizeof(sub), path, usb ? "usb" : "paths", i) < 0)
			return cfgval_path_too_long(s, list, path);
		int r = usb ? parse_usb(s, list->items[i], sub, &g->usb[i])
			    : parse_path(s, list->items[i], sub, &g->paths[i]);
		/* Counted before checking r: a failed entry may own strings. */
		if (usb)
			g->n_usb = i + 1;
		else
			g->n_paths = i + 1;
		if (r < 0)
			return r;
	}
	return 0;
}

static const char *const group_keys[] = {"paths", "usb",	 "virtual", "count",
					 "env",	  "annotations", NULL};
static const char *const group_misplaced[] = {"mountPath", "type",     "permissions", "readOnly",
					      "limit",	   "optional", "vendor",      "product",
					      "serial",	   "idPrefix", NULL};

/* A template (tmpl.h) of an env or annotations map: refused with where. */
static int check_template(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			  const char *leaf, const char *what, const char *text, enum tmpl_kind kind)
{
	char why[256];
	if (tmpl_check(text, kind, why, sizeof(why)) < 0)
		return cfgval_fail(s, n, path, leaf, "%s \"%.60s\": %s", what, text, why);
	return 0;
}

/* Appends (key, value) to a decorations list. */
static int kv_push(struct dev_kv **kv, size_t *n, const char *key, const char *value)
{
	struct dev_kv *a = reallocarray(*kv, *n + 1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	*kv = a;
	a[*n].key = strdup(key);
	a[*n].value = strdup(value);
	if (!a[*n].key || !a[*n].value) {
		free(a[*n].key);
		free(a[*n].value);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

/* A group's env or annotations: a map of templates. Env names, once
 * expanded, must still be names: the literal parts are checked here. */
static int parse_decor(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		       const char *key, enum tmpl_kind kind, struct dev_kv **kv, size_t *n_kv)
{
	const struct cfg_node *m = cfgval_field(map, key);
	if (!m)
		return 0;
	int r = cfgval_expect_kind(s, m, path, key, CFG_MAP);
	char sub[CFGVAL_PATH_BUF];
	int n = snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
	if (n < 0 || (size_t)n >= sizeof(sub))
		return cfgval_path_too_long(s, map, path);
	for (size_t i = 0; r == 0 && i < m->n_pairs; i++) {
		const struct cfg_node *k = m->pairs[i].key, *v = m->pairs[i].value;
		const char *text = "";
		if (!*k->text)
			return cfgval_fail(s, k, sub, NULL, "empty key");
		if (strcmp(key, "env") == 0 &&
		    (strchr(k->text, '=') || cfgval_is_digit(k->text[0])))
			return cfgval_fail(
			    s, k, sub, k->text,
			    "not a valid environment variable name (no '=', not starting "
			    "with a digit)");
		if ((r = check_template(s, k, sub, k->text, "key", k->text, kind)) < 0 ||
		    (!cfgval_is_null(v) &&
		     (r = cfgval_get_string(s, v, sub, k->text, &text)) < 0) ||
		    (r = check_template(s, v, sub, k->text, "value", text, kind)) < 0)
			return r;
		r = kv_push(kv, n_kv, k->text, text);
	}
	return r;
}

/* A literal prefix as a template: braces doubled, then suffix appended. */
static char *prefix_template(const char *prefix, const char *suffix)
{
	size_t n = strlen(prefix), k = 0;
	char *t = malloc(2 * n + strlen(suffix) + 1);
	if (!t)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		t[k++] = prefix[i];
		if (prefix[i] == '{' || prefix[i] == '}')
			t[k++] = prefix[i];
	}
	strcpy(t + k, suffix);
	return t;
}

static const char *const virtual_keys[] = {
    "count", "idPrefix", "envPrefix", "annotationPrefix", "deviceFilePrefix", NULL};

/* An optional prefix: NULL when absent, null or empty (the simulator's
 * "nothing"), else trimmed. */
static int get_prefix(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		      const char *key, const struct cfg_node **node, char **out)
{
	const char *t;
	*out = NULL;
	if (!(*node = cfgval_field(map, key)))
		return 0;
	int r = cfgval_get_string(s, *node, path, key, &t);
	if (r < 0)
		return r;
	if (!(*out = cfgval_dup_trim(t)))
		return -ENOMEM;
	if (!**out) {
		free(*out);
		*out = NULL;
	}
	return 0;
}

/* The simple device plugin's prefixes, for each allocated device:
 * envPrefix P adds P_<id>=/dev/<id>, annotationPrefix A the annotation
 * A-<id> with an empty value. */
static int virtual_decor(struct cfg_group *g, const char *env_prefix, const char *ann_prefix)
{
	char *key = NULL;
	int r = 0;
	if (env_prefix) {
		key = prefix_template(env_prefix, "_{id}");
		r = key ? kv_push(&g->env, &g->n_env, key, "/dev/{id}") : -ENOMEM;
		free(key);
	}
	if (r == 0 && ann_prefix) {
		key = prefix_template(ann_prefix, "-{id}");
		r = key ? kv_push(&g->annotations, &g->n_annotations, key, "") : -ENOMEM;
		free(key);
	}
	return r;
}

/* deviceFilePrefix F: device i is the file /dev/F-<id> (F relative to
 * /dev, as the simple device plugin has it; an absolute F is taken as
 * it is). Kept as the path prefix "/dev/F-". */
static int virtual_file_prefix(const struct cfg_src *s, const struct cfg_node *n, const char *path,
			       char *f, char **out)
{
	if (strstr(f, "..") || f[strlen(f) - 1] == '/') {
		int r = cfgval_fail(s, n, path, "deviceFilePrefix",
				    "\"%s\" must name a file below /dev (no \"..\", no trailing "
				    "'/'): device files are /dev/<prefix>-<id>",
				    f);
		free(f);
		return r;
	}
	int k = asprintf(out, "%s%s-", *f == '/' ? "" : CONFIG_SDM_DEV_DIR "/", f);
	free(f);
	if (k < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* {count, idPrefix, envPrefix, annotationPrefix, deviceFilePrefix}, with
 * the simple device plugin's meaning of each prefix (virtual_decor). */
static int parse_virtual(const struct cfg_src *s, const struct cfg_node *map, const char *parent,
			 struct cfg_group *g)
{
	char path[CFGVAL_PATH_BUF];
	const struct cfg_node *n;
	const char *t;
	int r = snprintf(path, sizeof(path), "%s%svirtual", parent, *parent ? "." : "");
	if (r < 0 || (size_t)r >= sizeof(path))
		return cfgval_path_too_long(s, map, parent);
	if ((r = cfgval_expect_kind(s, map, parent, "virtual", CFG_MAP)) < 0 ||
	    (r = cfgval_check_keys(s, map, path, virtual_keys, NULL, NULL)) < 0)
		return r;
	if (!(g->virt = calloc(1, sizeof(*g->virt))))
		return -ENOMEM;
	g->virt->count = 1;
	if ((n = cfgval_field(map, "count")) &&
	    (r = cfgval_get_uint(s, n, path, "count", 1, MAX_COUNT, &g->virt->count)) < 0)
		return r;
	t = "virtual";
	if ((n = cfgval_field(map, "idPrefix")) &&
	    (r = cfgval_get_string(s, n, path, "idPrefix", &t)) < 0)
		return r;
	if (!(g->virt->id_prefix = cfgval_dup_trim(t)))
		return -ENOMEM;
	const char *id = g->virt->id_prefix;
	if (!*id ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
		strlen(id))
		return cfgval_fail(s, n, path, "idPrefix",
				   "\"%s\" must be a non-empty string of letters, digits, '-', "
				   "'_' and '.' (device IDs are <idPrefix>-<node>-<i>)",
				   g->virt->id_prefix);
	char *f = NULL, *env = NULL, *ann = NULL;
	if ((r = get_prefix(s, map, path, "deviceFilePrefix", &n, &f)) < 0 ||
	    (f && (r = virtual_file_prefix(s, n, path, f, &g->virt->device_file_prefix)) < 0))
		return r;
	if ((r = get_prefix(s, map, path, "envPrefix", &n, &env)) == 0 && env &&
	    (strchr(env, '=') || cfgval_is_digit(*env)))
		r = cfgval_fail(s, n, path, "envPrefix",
				"\"%s\" cannot start an environment variable name", env);
	if (r == 0)
		r = get_prefix(s, map, path, "annotationPrefix", &n, &ann);
	if (r == 0)
		r = virtual_decor(g, env, ann);
	free(env);
	free(ann);
	return r;
}

static int parse_group(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		       struct cfg_group *g)
{
	const struct cfg_node *paths = NULL, *usb = NULL, *virt = NULL, *n = NULL;
	int r = cfgval_expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	r = cfgval_check_keys(s, map, path, group_keys, group_misplaced,
			      "it belongs in an entry of the group's paths, usb or virtual");
	if (r < 0)
		return r;
	virt = cfgval_field(map, "virtual");
	if (!!cfgval_field(map, "paths") + !!cfgval_field(map, "usb") + !!virt > 1)
		return cfgval_fail(s, map, path, NULL,
				   "a group has one of paths, usb or virtual: put them in separate "
				   "groups");
	if ((r = group_list(s, map, path, "paths", &paths)) < 0 ||
	    (r = group_list(s, map, path, "usb", &usb)) < 0)
		return r;
	if (!paths && !usb && !virt)
		return cfgval_fail(s, map, path, NULL,
				   "a group needs a non-empty paths or usb list, or a virtual map");
	g->count = 1;
	if ((n = cfgval_field(map, "count")) &&
	    (r = cfgval_get_uint(s, n, path, "count", 1, MAX_COUNT, &g->count)) < 0)
		return r;
	enum tmpl_kind kind = usb ? TMPL_USB : paths ? TMPL_PATHS : TMPL_VIRTUAL;
	if ((virt && (r = parse_virtual(s, virt, path, g)) < 0) ||
	    (r = parse_decor(s, map, path, "env", kind, &g->env, &g->n_env)) < 0 ||
	    (r = parse_decor(s, map, path, "annotations", kind, &g->annotations,
			     &g->n_annotations)) < 0)
		return r;
	if (virt)
		return 0;
	const struct cfg_node *list = paths ? paths : usb;
	if (usb)
		g->usb = calloc(list->n_items, sizeof(*g->usb));
	else
		g->paths = calloc(list->n_items, sizeof(*g->paths));
	if (!g->usb && !g->paths)
		return -ENOMEM;
	return parse_group_entries(s, list, path, g);
}

static int alloc_groups(struct cfg_device *d, size_t n)
{
	d->groups = calloc(n, sizeof(*d->groups));
	return d->groups ? 0 : -ENOMEM;
}

/* generic-device-plugin's first schema: {type, count, paths: [strings]};
 * every match of every path was separately allocatable, so each path
 * becomes a group of its own. */
static int parse_device_old(const struct cfg_src *s, const struct cfg_node *map, const char *path,
			    struct cfg_device *d)
{
	static const char *const keys[] = {"type", "count", "paths", NULL};
	char sub[CFGVAL_PATH_BUF];
	const struct cfg_node *paths = NULL, *n = NULL;
	unsigned count = 1;
	int r = cfgval_check_keys(s, map, path, keys, NULL, NULL);
	if (r < 0 || (r = get_name(s, cfgtree_get(map, "type"), path, "type", &d->name)) < 0)
		return r;
	if ((n = cfgval_field(map, "count")) &&
	    (r = cfgval_get_uint(s, n, path, "count", 1, MAX_COUNT, &count)) < 0)
		return r;
	if ((r = cfgval_required(s, map, path, "paths", &n)) < 0 ||
	    (r = group_list(s, map, path, "paths", &paths)) < 0 ||
	    (r = alloc_groups(d, paths->n_items)) < 0)
		return r;
	for (size_t i = 0; i < paths->n_items; i++) {
		struct cfg_group *g = &d->groups[d->n_groups++];
		g->count = count;
		g->old_ids = true; /* a kubelet's checkpoint may hold them */
		if (!(g->paths = calloc(1, sizeof(*g->paths))))
			return -ENOMEM;
		g->n_paths = 1;
		g->paths[0] = (struct cfg_path){.type = CFG_PATH_DEVICE, .limit = 1};
		memcpy(g->paths[0].permissions, "mrw", 4);
		if (cfgval_path_index(sub, sizeof(sub), path, "paths", i) < 0)
			return cfgval_path_too_long(s, map, path);
		r = get_glob(s, paths->items[i], sub, NULL, &g->paths[0].path);
		if (r < 0)
			return r;
	}
	cfgval_warn(
	    s, map, path, NULL,
	    "deprecated device schema {type, count, paths}: read as {\"name\": \"%s\", "
	    "\"groups\": [one group per path: {\"paths\": [{\"path\": PATH}], \"count\": %u}]}, "
	    "device IDs <path>-<slot> as before",
	    d->name, count);
	return 0;
}

static const char *const device_keys[] = {"name", "groups", NULL};
static const char *const device_misplaced[] = {"paths", "usb", "count", NULL};

/* One device object; *name_node and *name_leaf say where its name is. On
 * error *d owns what it holds so far. */
static int parse_device(const struct cfg_src *s, const struct cfg_node *map, const char *path,
			struct cfg_device *d, const struct cfg_node **name_node,
			const char **name_leaf)
{
	char sub[CFGVAL_PATH_BUF];
	int r = cfgval_expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	bool old = cfgtree_get(map, "type");
	if (old && (cfgtree_get(map, "name") || cfgtree_get(map, "groups")))
		return cfgval_fail(
		    s, map, path, NULL,
		    "mixes the old device schema (type, count, paths) with the new one "
		    "(name, groups): use one");
	*name_leaf = old ? "type" : "name";
	if (old)
		return (r = cfgval_required(s, map, path, "type", name_node)) < 0
			   ? r
			   : parse_device_old(s, map, path, d);
	r = cfgval_check_keys(
	    s, map, path, device_keys, device_misplaced,
	    "it belongs in a group: \"groups\": [{\"paths\": ...} or {\"usb\": ...}]");
	if (r < 0 || (r = cfgval_required(s, map, path, "name", name_node)) < 0 ||
	    (r = get_name(s, *name_node, path, "name", &d->name)) < 0)
		return r;
	const struct cfg_node *groups = NULL;
	if ((r = cfgval_required(s, map, path, "groups", &groups)) < 0 ||
	    (r = cfgval_expect_kind(s, groups, path, "groups", CFG_SEQ)) < 0)
		return r;
	if (groups->n_items == 0)
		return cfgval_fail(s, groups, path, "groups",
				   "must not be empty: give at least one group");
	if ((r = alloc_groups(d, groups->n_items)) < 0)
		return r;
	for (size_t i = 0; i < groups->n_items; i++) {
		if (cfgval_path_index(sub, sizeof(sub), path, "groups", i) < 0)
			return cfgval_path_too_long(s, map, path);
		d->n_groups = i + 1;
		if ((r = parse_group(s, groups->items[i], sub, &d->groups[i])) < 0)
			return r;
	}
	return 0;
}

void cfgschema_devlist_free(struct cfgschema_devlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		config_device_clear(&l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

static int devlist_grow(struct cfgschema_devlist *l)
{
	if (l->n < l->cap)
		return 0;
	size_t cap = l->cap ? l->cap * 2 : 4;
	struct cfg_device *v = reallocarray(l->v, cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	unsigned *lines = reallocarray(l->lines, cap, sizeof(*lines));
	if (!lines)
		return -ENOMEM;
	l->lines = lines;
	l->cap = cap;
	return 0;
}

/* The fewest devices d lists once each of its groups matches anything: a
 * virtual group's instances are all there, a path or USB group has at
 * least one (a glob may match more: the table caps those at run time). */
static uint64_t least_devices(const struct cfg_device *d)
{
	uint64_t n = 0;
	for (size_t i = 0; i < d->n_groups; i++) {
		const struct cfg_group *g = &d->groups[i];
		n += (uint64_t)g->count * (g->virt ? g->virt->count : 1);
	}
	return n;
}

int cfgschema_devlist_add(struct cfgschema_devlist *l, const struct cfg_src *s,
			  const struct cfg_node *node, const char *key, size_t index)
{
	char path[CFGVAL_PATH_BUF] = "";
	const struct cfg_node *name_node = NULL;
	const char *leaf = "name";
	if (key && cfgval_path_index(path, sizeof(path), "", key, index) < 0)
		return cfgval_path_too_long(s, node, "");
	int r = devlist_grow(l);
	if (r < 0)
		return r;
	struct cfg_device *d = &l->v[l->n];
	memset(d, 0, sizeof(*d));
	r = parse_device(s, node, path, d, &name_node, &leaf);
	if (r < 0) {
		config_device_clear(d);
		return r;
	}
	l->lines[l->n++] = name_node ? name_node->line : 0;
	if (l->n > LIMIT_RESOURCES)
		return cfgval_fail(s, name_node, path, leaf,
				   "\"%s\" is resource number %zu: at most %d may be configured "
				   "(each is a socket, a gRPC server and a registration)",
				   d->name, l->n, LIMIT_RESOURCES);
	uint64_t least = least_devices(d);
	if (least > LIMIT_DEVICES)
		return cfgval_fail(s, node, path, "groups",
				   "resource \"%s\" offers at least %llu devices (count times "
				   "instances, summed over its groups, once each group matches one "
				   "device): more than the %d a resource may list",
				   d->name, (unsigned long long)least, LIMIT_DEVICES);
	for (size_t j = 0; j + 1 < l->n; j++) {
		if (strcmp(l->v[j].name, d->name) != 0)
			continue;
		if (key)
			return cfgval_fail(s, name_node, path, leaf,
					   "duplicate name \"%s\" (first at %s[%zu], line %u)",
					   d->name, key, j, l->lines[j]);
		return cfgval_fail(s, name_node, path, leaf,
				   "duplicate name \"%s\" (also given by --device #%zu)", d->name,
				   j + 1);
	}
	return 0;
}

/* ---- smarter-device-manager's entries ---- */

static const char *const sdm_keys[] = {"devicematch", "nummaxdevices", NULL};

static int parse_sdm_entry(const struct cfg_src *s, const struct cfg_node *item, const char *path,
			   struct config *cfg)
{
	const struct cfg_node *n = NULL;
	const char *pattern;
	unsigned max = 0;
	int r = cfgval_expect_kind(s, item, path, NULL, CFG_MAP);
	if (r < 0 || (r = cfgval_check_keys(s, item, path, sdm_keys, NULL, NULL)) < 0 ||
	    (r = cfgval_required(s, item, path, "devicematch", &n)) < 0 ||
	    (r = cfgval_get_string(s, n, path, "devicematch", &pattern)) < 0)
		return r;
	if (strcmp(pattern, "nvidia-gpu") == 0) {
		cfgval_warn(s, n, path, "devicematch",
			    "\"nvidia-gpu\" skipped: GPUs are not offered as /dev files here; use "
			    "NVIDIA's device plugin for them");
		return 0;
	}
	const struct cfg_node *pn = n;
	if ((r = cfgval_required(s, item, path, "nummaxdevices", &n)) < 0 ||
	    (r = cfgval_get_uint(s, n, path, "nummaxdevices", 1, MAX_COUNT, &max)) < 0)
		return r;
	/* Go's regexp syntax (RE2), as smarter-device-manager compiles it. */
	struct cfg_match *m = &cfg->matches[cfg->n_matches];
	char why[160];
	r = gore_compile(pattern, &m->re, why, sizeof(why));
	if (r == -EINVAL)
		return cfgval_fail(s, pn, path, "devicematch",
				   "invalid regular expression \"%s\": %s", pattern, why);
	if (r < 0)
		return r;
	if (!(m->pattern = strdup(pattern))) {
		gore_free(m->re);
		m->re = NULL;
		return -ENOMEM;
	}
	m->max = max;
	m->line = item->line;
	cfg->n_matches++;
	return 0;
}

int cfgschema_parse_sdm(const struct cfg_src *s, const struct cfg_node *root, struct config *cfg)
{
	char path[CFGVAL_PATH_BUF], buf[80];
	if (cfgval_is_null(root) || root->kind != CFG_SEQ)
		return cfgval_fail(
		    s, root, NULL, NULL,
		    "expected smarter-device-manager's format, a list of {devicematch, "
		    "nummaxdevices}, got %s",
		    root ? cfgval_got(root, buf, sizeof(buf)) : "an empty file");
	if (root->n_items == 0)
		return cfgval_fail(s, root, NULL, NULL, "the list of devicematch entries is empty");
	if (!(cfg->matches = calloc(root->n_items, sizeof(*cfg->matches))))
		return -ENOMEM;
	for (size_t i = 0; i < root->n_items; i++) {
		if (cfgval_path_index(path, sizeof(path), "", "", i) < 0)
			return cfgval_path_too_long(s, root, "");
		int r = parse_sdm_entry(s, root->items[i], path, cfg);
		if (r < 0)
			return r;
	}
	return 0;
}

void cfgschema_matches_free(struct cfg_match *m, size_t n)
{
	for (size_t i = 0; m && i < n; i++) {
		gore_free(m[i].re);
		free(m[i].pattern);
	}
	free(m);
}

bool cfg_match_matches(const struct cfg_match *m, const char *file)
{
	return m && m->re && file && gore_match(m->re, file);
}
