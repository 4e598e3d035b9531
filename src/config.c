/* Configuration: flags, environment, config file, defaults; then the
 * device list, validated completely with the source, field path and reason
 * of the first problem. See docs/config-reference.md. */
#include "config.h"
#include "pathmatch.h"
#include "tmpl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cdi.h"
#include "cfgtree.h"
#include "log.h"

#define PATH_BUF      192	/* a field path: devices[N].groups[N].paths[N].mountPath */
#define MAX_FILE_SIZE (4 << 20) /* a config file is a few kB; refuse anything absurd */
#define MAX_COUNT     10000	/* count slots per instance (ListAndWatch stays small) */
#define MAX_NAME      63	/* Kubernetes' limit for the name part of a resource */
#define MAX_DOMAIN    253
#define STR_(x)	      #x
#define STR(x)	      STR_(x)

/* Where values come from, for messages: "config.yaml" (with the node's
 * line appended), "--device #2", "--domain", "$DOMAIN". */
struct src {
	const char *name;
	bool lines;
	char *err;
	size_t errlen;
};

/* Writes into err, marking a message cut short with "...". */
static void errput(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void errput(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		err[0] = '\0';
	else if ((size_t)n >= errlen && errlen >= 4)
		memcpy(err + errlen - 4, "...", 4);
}

/* Formats "<source>[:line]: <path>[.<leaf>]: <reason>" into buf. */
static void vformat_at(char *buf, size_t size, const struct src *s, const struct cfg_node *n,
		       const char *path, const char *leaf, const char *fmt, va_list ap)
{
	char reason[512];
	int k = vsnprintf(reason, sizeof(reason), fmt, ap);
	if (k < 0)
		reason[0] = '\0';
	else if ((size_t)k >= sizeof(reason))
		memcpy(reason + sizeof(reason) - 4, "...", 4);
	char line[24] = "";
	if (s->lines && n && n->line) {
		k = snprintf(line, sizeof(line), ":%u", n->line);
		if (k < 0 || (size_t)k >= sizeof(line))
			line[0] = '\0';
	}
	const char *p = path ? path : "", *l = leaf ? leaf : "";
	errput(buf, size, "%s%s: %s%s%s%s%s", s->name, line, p, (*p && *l) ? "." : "", l,
	       (*p || *l) ? ": " : "", reason);
}

static int fail(const struct src *s, const struct cfg_node *n, const char *path, const char *leaf,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const struct src *s, const struct cfg_node *n, const char *path, const char *leaf,
		const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat_at(s->err, s->errlen, s, n, path, leaf, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void warn(const struct src *s, const struct cfg_node *n, const char *path, const char *leaf,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void warn(const struct src *s, const struct cfg_node *n, const char *path, const char *leaf,
		 const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vformat_at(msg, sizeof(msg), s, n, path, leaf, fmt, ap);
	va_end(ap);
	log_warn("config warning: %s", msg);
}

/* parent + ".key[i]" (or "key[i]" at the root). */
static int path_index(char *buf, size_t size, const char *parent, const char *key, size_t i)
{
	int n = snprintf(buf, size, "%s%s%s[%zu]", parent, (*parent && *key) ? "." : "", key, i);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

static int path_too_long(const struct src *s, const struct cfg_node *n, const char *parent)
{
	fail(s, n, parent, NULL, "field path too long");
	return -ENAMETOOLONG;
}

/* ---- scalars ---- */

enum scalar_type { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STRING };

static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes",
					 "YES",	 "on",	 "On",	 "ON",	NULL};
static const char *const false_words[] = {"false", "False", "FALSE", "no",  "No",
					  "NO",	   "off",   "Off",   "OFF", NULL};
static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};

static bool in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_integer(const char *t)
{
	if (*t == '-' || *t == '+')
		t++;
	if (!*t)
		return false;
	for (; *t; t++)
		if (!is_digit(*t))
			return false;
	return true;
}

static bool is_float(const char *t)
{
	if (*t == '-' || *t == '+')
		t++;
	if (strcmp(t, ".inf") == 0 || strcmp(t, ".Inf") == 0 || strcmp(t, ".INF") == 0)
		return true;
	bool digits = false, dot = false;
	for (; *t && *t != 'e' && *t != 'E'; t++) {
		if (is_digit(*t))
			digits = true;
		else if (*t == '.' && !dot)
			dot = true;
		else
			return false;
	}
	if (!digits)
		return false;
	if (!*t)
		return true;
	t++;
	return is_integer(t);
}

/* YAML 1.1's resolution of plain scalars, without y/n (as PyYAML) nor
 * sexagesimal and base-prefixed numbers: quoted scalars are strings. */
static enum scalar_type classify(const struct cfg_node *n)
{
	if (n->quoted)
		return SC_STRING;
	if (in_list(n->text, null_words))
		return SC_NULL;
	if (in_list(n->text, true_words) || in_list(n->text, false_words))
		return SC_BOOL;
	if (is_integer(n->text))
		return SC_INT;
	if (is_float(n->text) || strcmp(n->text, ".nan") == 0 || strcmp(n->text, ".NaN") == 0)
		return SC_FLOAT;
	return SC_STRING;
}

static bool is_null(const struct cfg_node *n)
{
	return !n || (n->kind == CFG_SCALAR && classify(n) == SC_NULL);
}

/* The value of key, or NULL when absent or null. */
static const struct cfg_node *field(const struct cfg_node *map, const char *key)
{
	const struct cfg_node *n = cfgtree_get(map, key);
	return is_null(n) ? NULL : n;
}

/* The value of a required key: fails when it is absent or null. */
static int required(const struct src *s, const struct cfg_node *map, const char *path,
		    const char *key, const struct cfg_node **out)
{
	const struct cfg_pair *p = cfgtree_get_pair(map, key);
	*out = NULL;
	if (!p)
		return fail(s, map, path, key, "required key is missing");
	if (is_null(p->value))
		return fail(s, p->value, path, key, "must not be null");
	*out = p->value;
	return 0;
}

/* What n is, for "expected X, got Y". */
static const char *got(const struct cfg_node *n, char *buf, size_t size)
{
	if (n->kind != CFG_SCALAR)
		return n->kind == CFG_MAP ? "a map" : "a list";
	static const char *const names[] = {
	    [SC_NULL] = "null",	     [SC_BOOL] = "a boolean",  [SC_INT] = "an integer",
	    [SC_FLOAT] = "a number", [SC_STRING] = "a string",
	};
	enum scalar_type t = classify(n);
	if (t == SC_NULL)
		return "null";
	int k = snprintf(buf, size, "%s (%.40s%s)", names[t], n->text, n->len > 40 ? "..." : "");
	return (k < 0 || (size_t)k >= size) ? names[t] : buf;
}

static int expect_kind(const struct src *s, const struct cfg_node *n, const char *path,
		       const char *leaf, enum cfg_kind kind)
{
	char buf[80];
	if (n->kind == kind)
		return 0;
	return fail(s, n, path, leaf, "expected a %s, got %s", cfgtree_kind_name(kind),
		    got(n, buf, sizeof(buf)));
}

/* A string: any scalar but null and booleans (a plain number is its text).
 * *out is borrowed from n. */
static int get_string(const struct src *s, const struct cfg_node *n, const char *path,
		      const char *leaf, const char **out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR)
		return fail(s, n, path, leaf, "expected a string, got %s",
			    got(n, buf, sizeof(buf)));
	enum scalar_type t = classify(n);
	if (t == SC_BOOL)
		return fail(s, n, path, leaf, "expected a string, got a boolean (%s): quote it",
			    n->text);
	if (t == SC_NULL)
		return fail(s, n, path, leaf, "expected a string, got null");
	if (strlen(n->text) != n->len)
		return fail(s, n, path, leaf, "contains a NUL character");
	*out = n->text;
	return 0;
}

static int get_bool(const struct src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, bool *out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR || classify(n) != SC_BOOL)
		return fail(s, n, path, leaf, "expected a boolean (true or false), got %s",
			    got(n, buf, sizeof(buf)));
	*out = in_list(n->text, true_words);
	return 0;
}

/* A decimal integer in [min, max]; quoted digits ("2") are accepted too. */
static int get_uint(const struct src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, unsigned min, unsigned max, unsigned *out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR || !is_integer(n->text) || strlen(n->text) != n->len)
		return fail(s, n, path, leaf, "expected an integer, got %s",
			    got(n, buf, sizeof(buf)));
	const char *t = n->text;
	bool neg = *t == '-';
	if (*t == '-' || *t == '+')
		t++;
	unsigned long long v = 0;
	bool big = false;
	for (; *t; t++) {
		if (v > (ULLONG_MAX - 9) / 10)
			big = true;
		else
			v = v * 10 + (unsigned)(*t - '0');
	}
	if ((neg && v > 0) || (!big && v < min))
		return fail(s, n, path, leaf, "must be at least %u, got %s", min, n->text);
	if (big || v > max)
		return fail(s, n, path, leaf, "must be at most %u, got %s", max, n->text);
	*out = (unsigned)v;
	return 0;
}

/* A malloc'd copy of s without leading and trailing white space. */
static char *dup_trim(const char *s)
{
	while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
		s++;
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || (s[len - 1] >= '\t' && s[len - 1] <= '\r')))
		len--;
	return strndup(s, len);
}

/* ---- keys ---- */

/* Lower-case, without '-' and '_': "mount_path" and "mountpath" are "mountpath". */
static void normalize_key(const char *k, char *out, size_t size)
{
	size_t j = 0;
	for (; *k && j + 1 < size; k++) {
		if (*k == '-' || *k == '_')
			continue;
		out[j++] = (*k >= 'A' && *k <= 'Z') ? (char)(*k - 'A' + 'a') : *k;
	}
	out[j] = '\0';
}

static bool same_but_plural(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la + 1 == lb && b[la] == 's')
		return strncmp(a, b, la) == 0;
	if (lb + 1 == la && a[lb] == 's')
		return strncmp(a, b, lb) == 0;
	return false;
}

/* The allowed key that key probably meant, or NULL. */
static const char *suggest(const char *key, const char *const *allowed)
{
	char nk[64], na[64];
	if (strlen(key) >= sizeof(nk))
		return NULL;
	normalize_key(key, nk, sizeof(nk));
	for (size_t i = 0; allowed[i]; i++) {
		normalize_key(allowed[i], na, sizeof(na));
		if (strcmp(nk, na) == 0 || same_but_plural(nk, na))
			return allowed[i];
	}
	return NULL;
}

/* Refuses any key of map not in allowed; keys listed in misplaced get
 * hint instead of a suggestion. */
static int check_keys(const struct src *s, const struct cfg_node *map, const char *path,
		      const char *const *allowed, const char *const *misplaced, const char *hint)
{
	for (size_t i = 0; i < map->n_pairs; i++) {
		const struct cfg_node *k = map->pairs[i].key;
		if (in_list(k->text, allowed))
			continue;
		const char *sug = suggest(k->text, allowed);
		if (sug)
			return fail(s, k, path, k->text, "unknown key (did you mean \"%s\"?)", sug);
		if (misplaced && in_list(k->text, misplaced))
			return fail(s, k, path, k->text, "unknown key (%s)", hint);
		return fail(s, k, path, k->text, "unknown key");
	}
	return 0;
}

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
	memset(d, 0, sizeof(*d));
}

bool config_resource_name_ok(const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > MAX_NAME)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
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
		bool alnum = is_digit(c) || (c >= 'a' && c <= 'z');
		if (!alnum && (c != '-' || i == 0 || i == len - 1))
			return false;
	}
	return len > 0;
}

/* The trimmed, validated resource name of node n into *out (malloc'd). */
static int get_name(const struct src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, char **out)
{
	const char *raw;
	int r = get_string(s, n, path, leaf, &raw);
	if (r < 0)
		return r;
	char *name = dup_trim(raw);
	if (!name)
		return -ENOMEM;
	if (!*name)
		r = fail(s, n, path, leaf, "must not be empty");
	else if (strlen(name) > MAX_NAME)
		r = fail(s, n, path, leaf, "\"%.20s...\" is longer than %d characters", name,
			 MAX_NAME);
	else if (!name_valid(name))
		r = fail(s, n, path, leaf,
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
static int get_abs_path(const struct src *s, const struct cfg_node *n, const char *path,
			const char *leaf, bool required, char **out)
{
	const char *raw;
	int r = get_string(s, n, path, leaf, &raw);
	if (r < 0)
		return r;
	char *p = dup_trim(raw);
	if (!p)
		return -ENOMEM;
	if (!*p && !required) {
		free(p);
		*out = NULL;
		return 0;
	}
	if (!*p)
		r = fail(s, n, path, leaf, "must not be empty");
	else if (*p != '/')
		r = fail(s, n, path, leaf, "must be an absolute path (start with '/'), got \"%s\"",
			 p);
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
static int get_glob(const struct src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, char **out)
{
	int r = get_abs_path(s, n, path, leaf, true, out);
	if (r < 0)
		return r;
	if (!glob_valid(*out)) {
		r = fail(s, n, path, leaf,
			 "\"%s\" is not a valid glob (unclosed '[', empty class or trailing '\\')",
			 *out);
		free(*out);
		*out = NULL;
	}
	return r;
}

/* "wr" -> "rw": distinct letters of m, r, w, stored in the order "mrw". */
static int get_permissions(const struct src *s, const struct cfg_node *n, const char *path,
			   char out[4])
{
	const char *t;
	int r = get_string(s, n, path, "permissions", &t);
	if (r < 0)
		return r;
	if (!*t)
		return fail(s, n, path, "permissions",
			    "must not be empty: give some of m, r, w (e.g. \"rw\")");
	bool seen[3] = {false, false, false};
	for (const char *c = t; *c; c++) {
		const char *at = strchr("mrw", *c);
		if (!at)
			return fail(s, n, path, "permissions",
				    "invalid permission '%c' in \"%s\": allowed are m (mknod), "
				    "r (read), w (write)",
				    *c, t);
		if (seen[at - "mrw"])
			return fail(s, n, path, "permissions", "'%c' given twice in \"%s\"", *c, t);
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

static int parse_path_type(const struct src *s, const struct cfg_node *map, const char *path,
			   enum cfg_path_type *out)
{
	const struct cfg_node *n = field(map, "type");
	const char *t = "";
	*out = CFG_PATH_DEVICE;
	if (n && get_string(s, n, path, "type", &t) < 0)
		return -EINVAL;
	if (strcmp(t, "Mount") == 0)
		*out = CFG_PATH_MOUNT;
	else if (*t && strcmp(t, "Device") != 0)
		return fail(s, n, path, "type",
			    "unknown type \"%s\": allowed are \"Device\" (the default) and "
			    "\"Mount\" (case matters)",
			    t);
	return 0;
}

/* The fields besides path and mountPath. */
static int parse_path_options(const struct src *s, const struct cfg_node *map, const char *path,
			      struct cfg_path *p)
{
	const struct cfg_node *n;
	int r = parse_path_type(s, map, path, &p->type);
	if (r < 0)
		return r;
	if (p->type == CFG_PATH_DEVICE)
		memcpy(p->permissions, "mrw", 4);
	if ((n = field(map, "permissions"))) {
		char perms[4];
		if ((r = get_permissions(s, n, path, perms)) < 0)
			return r;
		if (p->type == CFG_PATH_MOUNT)
			warn(s, n, path, "permissions",
			     "ignored on a Mount entry (use readOnly: true for a read-only mount)");
		else
			memcpy(p->permissions, perms, sizeof(perms));
	}
	if ((n = field(map, "readOnly"))) {
		if ((r = get_bool(s, n, path, "readOnly", &p->read_only)) < 0)
			return r;
		if (p->type == CFG_PATH_DEVICE && p->read_only) {
			warn(s, n, path, "readOnly",
			     "ignored on a Device entry (use permissions: \"r\" instead)");
			p->read_only = false;
		}
	}
	p->limit = 1;
	if ((n = field(map, "limit")) &&
	    (r = get_uint(s, n, path, "limit", 1, UINT_MAX, &p->limit)) < 0)
		return r;
	if ((n = field(map, "optional")) &&
	    (r = get_bool(s, n, path, "optional", &p->optional)) < 0)
		return r;
	return 0;
}

/* One entry of a group's paths; on error *p owns what it holds so far. */
static int parse_path(const struct src *s, const struct cfg_node *map, const char *path,
		      struct cfg_path *p)
{
	int r = expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	if ((r = check_keys(s, map, path, path_keys, NULL, NULL)) < 0)
		return r;
	const struct cfg_node *n = NULL;
	if ((r = required(s, map, path, "path", &n)) < 0 ||
	    (r = get_glob(s, n, path, "path", &p->path)) < 0)
		return r;
	if ((n = field(map, "mountPath")) &&
	    (r = get_abs_path(s, n, path, "mountPath", false, &p->mount_path)) < 0)
		return r;
	return parse_path_options(s, map, path, p);
}

/* A USB ID: always hex, 1 to 4 digits, optional 0x; "*" or null: any (-1). */
static int get_usb_id(const struct src *s, const struct cfg_node *n, const char *path,
		      const char *leaf, int32_t *out)
{
	char buf[80];
	*out = -1;
	if (is_null(n))
		return 0;
	if (n->kind != CFG_SCALAR || classify(n) == SC_BOOL)
		return fail(s, n, path, leaf, "expected a hex USB ID such as \"1a86\", got %s",
			    got(n, buf, sizeof(buf)));
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
		return fail(s, n, path, leaf,
			    "invalid USB ID \"%.40s\": give 1 to 4 hex digits, optionally after "
			    "0x (e.g. \"1a86\"), or \"*\" for any",
			    t);
	/* generic-device-plugin decoded unquoted numbers in its config file
	 * as decimal (and so matched nothing); say that we read them as hex. */
	if (s->lines && !n->quoted && h == t && is_integer(t) && v >= 10)
		warn(s, n, path, leaf,
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
static int get_usb_class(const struct src *s, const struct cfg_node *n, const char *path,
			 int32_t *out)
{
	*out = -1;
	if (is_null(n))
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
		return fail(s, n, path, "class",
			    "USB class 0x%x is out of range: give 2 hex digits (\"02\") or a "
			    "name (\"cdc-acm\", \"hid\", \"video\", \"audio\", ...)",
			    v);
	}
	return r;
}

static int parse_usb(const struct src *s, const struct cfg_node *map, const char *path,
		     struct cfg_usb *u)
{
	u->vendor = u->product = -1;
	int r = expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	if ((r = check_keys(s, map, path, usb_keys, NULL, NULL)) < 0)
		return r;
	if ((r = get_usb_id(s, cfgtree_get(map, "vendor"), path, "vendor", &u->vendor)) < 0)
		return r;
	if ((r = get_usb_id(s, cfgtree_get(map, "product"), path, "product", &u->product)) < 0)
		return r;
	const struct cfg_node *n = field(map, "serial");
	const char *serial = "";
	if (n && (r = get_string(s, n, path, "serial", &serial)) < 0)
		return r;
	if (*serial && !(u->serial = strdup(serial)))
		return -ENOMEM;
	if ((r = get_usb_class(s, cfgtree_get(map, "class"), path, &u->usb_class)) < 0)
		return r;
	const char *port = "";
	if ((n = field(map, "port")) && (r = get_string(s, n, path, "port", &port)) < 0)
		return r;
	if (*port && !(u->port = dup_trim(port)))
		return -ENOMEM;
	if ((n = field(map, "mountPath")) &&
	    (r = get_abs_path(s, n, path, "mountPath", false, &u->mount_path)) < 0)
		return r;
	if (u->mount_path && u->mount_path[strlen(u->mount_path) - 1] != '/')
		return fail(s, n, path, "mountPath",
			    "must be a directory ending in '/' (the device's nodes are put in "
			    "it by name), got \"%s\"",
			    u->mount_path);
	if (u->vendor < 0 && u->product < 0 && !u->serial && u->usb_class < 0 && !u->port)
		return fail(s, map, path, NULL,
			    "matches every USB device; give at least vendor, product, class, "
			    "port or serial");
	return 0;
}

/* The non-empty list under key of a group; NULL when absent. */
static int group_list(const struct src *s, const struct cfg_node *group, const char *path,
		      const char *key, const struct cfg_node **out)
{
	const struct cfg_node *n = field(group, key);
	*out = NULL;
	if (!n)
		return 0;
	int r = expect_kind(s, n, path, key, CFG_SEQ);
	if (r < 0)
		return r;
	if (n->n_items == 0)
		return fail(s, n, path, key, "must not be empty");
	*out = n;
	return 0;
}

static int parse_group_entries(const struct src *s, const struct cfg_node *list, const char *path,
			       struct cfg_group *g)
{
	char sub[PATH_BUF];
	bool usb = g->usb != NULL;
	for (size_t i = 0; i < list->n_items; i++) {
		if (path_index(sub, sizeof(sub), path, usb ? "usb" : "paths", i) < 0)
			return path_too_long(s, list, path);
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
static int check_template(const struct src *s, const struct cfg_node *n, const char *path,
			  const char *leaf, const char *what, const char *text, enum tmpl_kind kind)
{
	char why[256];
	if (tmpl_check(text, kind, why, sizeof(why)) < 0)
		return fail(s, n, path, leaf, "%s \"%.60s\": %s", what, text, why);
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
static int parse_decor(const struct src *s, const struct cfg_node *map, const char *path,
		       const char *key, enum tmpl_kind kind, struct dev_kv **kv, size_t *n_kv)
{
	const struct cfg_node *m = field(map, key);
	if (!m)
		return 0;
	int r = expect_kind(s, m, path, key, CFG_MAP);
	char sub[PATH_BUF];
	int n = snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
	if (n < 0 || (size_t)n >= sizeof(sub))
		return path_too_long(s, map, path);
	for (size_t i = 0; r == 0 && i < m->n_pairs; i++) {
		const struct cfg_node *k = m->pairs[i].key, *v = m->pairs[i].value;
		const char *text = "";
		if (!*k->text)
			return fail(s, k, sub, NULL, "empty key");
		if (strcmp(key, "env") == 0 && (strchr(k->text, '=') || is_digit(k->text[0])))
			return fail(s, k, sub, k->text,
				    "not a valid environment variable name (no '=', not starting "
				    "with a digit)");
		if ((r = check_template(s, k, sub, k->text, "key", k->text, kind)) < 0 ||
		    (!is_null(v) && (r = get_string(s, v, sub, k->text, &text)) < 0) ||
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

/* {count, idPrefix, envPrefix, annotationPrefix, deviceFilePrefix}: the
 * prefixes of env and annotations become templates "<prefix>{index}" =
 * "{id}" of the group. */
static int parse_virtual(const struct src *s, const struct cfg_node *map, const char *parent,
			 struct cfg_group *g)
{
	char path[PATH_BUF];
	const struct cfg_node *n;
	const char *t;
	int r = snprintf(path, sizeof(path), "%s%svirtual", parent, *parent ? "." : "");
	if (r < 0 || (size_t)r >= sizeof(path))
		return path_too_long(s, map, parent);
	if ((r = expect_kind(s, map, parent, "virtual", CFG_MAP)) < 0 ||
	    (r = check_keys(s, map, path, virtual_keys, NULL, NULL)) < 0)
		return r;
	if (!(g->virt = calloc(1, sizeof(*g->virt))))
		return -ENOMEM;
	g->virt->count = 1;
	if ((n = field(map, "count")) &&
	    (r = get_uint(s, n, path, "count", 1, MAX_COUNT, &g->virt->count)) < 0)
		return r;
	t = "virtual";
	if ((n = field(map, "idPrefix")) && (r = get_string(s, n, path, "idPrefix", &t)) < 0)
		return r;
	if (!(g->virt->id_prefix = dup_trim(t)))
		return -ENOMEM;
	const char *id = g->virt->id_prefix;
	if (!*id ||
	    strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
		strlen(id))
		return fail(s, n, path, "idPrefix",
			    "\"%s\" must be a non-empty string of letters, digits, '-', "
			    "'_' and '.' (device IDs are <idPrefix>-<node>-<i>)",
			    g->virt->id_prefix);
	if ((n = field(map, "deviceFilePrefix")) &&
	    (r = get_abs_path(s, n, path, "deviceFilePrefix", false,
			      &g->virt->device_file_prefix)) < 0)
		return r;
	static const char *const pre_keys[] = {"envPrefix", "annotationPrefix"};
	for (int i = 0; i < 2; i++) {
		if (!(n = field(map, pre_keys[i])))
			continue;
		if ((r = get_string(s, n, path, pre_keys[i], &t)) < 0)
			return r;
		if (!*t)
			return fail(s, n, path, pre_keys[i], "must not be empty");
		if (i == 0 && (strchr(t, '=') || is_digit(*t)))
			return fail(s, n, path, pre_keys[i],
				    "\"%s\" cannot start an environment variable name", t);
		char *key = prefix_template(t, "{index}");
		r = key ? kv_push(i ? &g->annotations : &g->env, i ? &g->n_annotations : &g->n_env,
				  key, "{id}")
			: -ENOMEM;
		free(key);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_group(const struct src *s, const struct cfg_node *map, const char *path,
		       struct cfg_group *g)
{
	const struct cfg_node *paths = NULL, *usb = NULL, *virt = NULL, *n = NULL;
	int r = expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	r = check_keys(s, map, path, group_keys, group_misplaced,
		       "it belongs in an entry of the group's paths, usb or virtual");
	if (r < 0)
		return r;
	virt = field(map, "virtual");
	if (!!field(map, "paths") + !!field(map, "usb") + !!virt > 1)
		return fail(s, map, path, NULL,
			    "a group has one of paths, usb or virtual: put them in separate "
			    "groups");
	if ((r = group_list(s, map, path, "paths", &paths)) < 0 ||
	    (r = group_list(s, map, path, "usb", &usb)) < 0)
		return r;
	if (!paths && !usb && !virt)
		return fail(s, map, path, NULL,
			    "a group needs a non-empty paths or usb list, or a virtual map");
	g->count = 1;
	if ((n = field(map, "count")) &&
	    (r = get_uint(s, n, path, "count", 1, MAX_COUNT, &g->count)) < 0)
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
static int parse_device_old(const struct src *s, const struct cfg_node *map, const char *path,
			    struct cfg_device *d)
{
	static const char *const keys[] = {"type", "count", "paths", NULL};
	char sub[PATH_BUF];
	const struct cfg_node *paths = NULL, *n = NULL;
	unsigned count = 1;
	int r = check_keys(s, map, path, keys, NULL, NULL);
	if (r < 0 || (r = get_name(s, cfgtree_get(map, "type"), path, "type", &d->name)) < 0)
		return r;
	if ((n = field(map, "count")) &&
	    (r = get_uint(s, n, path, "count", 1, MAX_COUNT, &count)) < 0)
		return r;
	if ((r = required(s, map, path, "paths", &n)) < 0 ||
	    (r = group_list(s, map, path, "paths", &paths)) < 0 ||
	    (r = alloc_groups(d, paths->n_items)) < 0)
		return r;
	for (size_t i = 0; i < paths->n_items; i++) {
		struct cfg_group *g = &d->groups[d->n_groups++];
		g->count = count;
		if (!(g->paths = calloc(1, sizeof(*g->paths))))
			return -ENOMEM;
		g->n_paths = 1;
		g->paths[0] = (struct cfg_path){.type = CFG_PATH_DEVICE, .limit = 1};
		memcpy(g->paths[0].permissions, "mrw", 4);
		if (path_index(sub, sizeof(sub), path, "paths", i) < 0)
			return path_too_long(s, map, path);
		r = get_glob(s, paths->items[i], sub, NULL, &g->paths[0].path);
		if (r < 0)
			return r;
	}
	warn(s, map, path, NULL,
	     "deprecated device schema {type, count, paths}: read as {\"name\": \"%s\", "
	     "\"groups\": [one group per path: {\"paths\": [{\"path\": PATH}], \"count\": %u}]}",
	     d->name, count);
	return 0;
}

static const char *const device_keys[] = {"name", "groups", NULL};
static const char *const device_misplaced[] = {"paths", "usb", "count", NULL};

/* One device object; *name_node and *name_leaf say where its name is. On
 * error *d owns what it holds so far. */
static int parse_device(const struct src *s, const struct cfg_node *map, const char *path,
			struct cfg_device *d, const struct cfg_node **name_node,
			const char **name_leaf)
{
	char sub[PATH_BUF];
	int r = expect_kind(s, map, path, NULL, CFG_MAP);
	if (r < 0)
		return r;
	bool old = cfgtree_get(map, "type");
	if (old && (cfgtree_get(map, "name") || cfgtree_get(map, "groups")))
		return fail(s, map, path, NULL,
			    "mixes the old device schema (type, count, paths) with the new one "
			    "(name, groups): use one");
	*name_leaf = old ? "type" : "name";
	if (old)
		return (r = required(s, map, path, "type", name_node)) < 0
			   ? r
			   : parse_device_old(s, map, path, d);
	r = check_keys(s, map, path, device_keys, device_misplaced,
		       "it belongs in a group: \"groups\": [{\"paths\": ...} or {\"usb\": ...}]");
	if (r < 0 || (r = required(s, map, path, "name", name_node)) < 0 ||
	    (r = get_name(s, *name_node, path, "name", &d->name)) < 0)
		return r;
	const struct cfg_node *groups = NULL;
	if ((r = required(s, map, path, "groups", &groups)) < 0 ||
	    (r = expect_kind(s, groups, path, "groups", CFG_SEQ)) < 0)
		return r;
	if (groups->n_items == 0)
		return fail(s, groups, path, "groups",
			    "must not be empty: give at least one group");
	if ((r = alloc_groups(d, groups->n_items)) < 0)
		return r;
	for (size_t i = 0; i < groups->n_items; i++) {
		if (path_index(sub, sizeof(sub), path, "groups", i) < 0)
			return path_too_long(s, map, path);
		d->n_groups = i + 1;
		if ((r = parse_group(s, groups->items[i], sub, &d->groups[i])) < 0)
			return r;
	}
	return 0;
}

/* A list of devices being built, with where each name came from. */
struct devlist {
	struct cfg_device *v;
	size_t n, cap;
	unsigned *lines;
};

static void devlist_free(struct devlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		config_device_clear(&l->v[i]);
	free(l->v);
	free(l->lines);
	memset(l, 0, sizeof(*l));
}

static int devlist_grow(struct devlist *l)
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

/* Parses one device object into l. index is its position in its list
 * (file) or among the --device flags; the file's list is named key. */
static int devlist_add(struct devlist *l, const struct src *s, const struct cfg_node *node,
		       const char *key, size_t index)
{
	char path[PATH_BUF] = "";
	const struct cfg_node *name_node = NULL;
	const char *leaf = "name";
	if (key && path_index(path, sizeof(path), "", key, index) < 0)
		return path_too_long(s, node, "");
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
	for (size_t j = 0; j + 1 < l->n; j++) {
		if (strcmp(l->v[j].name, d->name) != 0)
			continue;
		if (key)
			return fail(s, name_node, path, leaf,
				    "duplicate name \"%s\" (first at %s[%zu], line %u)", d->name,
				    key, j, l->lines[j]);
		return fail(s, name_node, path, leaf,
			    "duplicate name \"%s\" (also given by --device #%zu)", d->name, j + 1);
	}
	return 0;
}

/* ---- settings ---- */

static int apply_domain(const struct src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	size_t len = strlen(v);
	bool ok = true;
	if (len == 0)
		return fail(s, n, NULL, leaf, "must not be empty");
	if (len > MAX_DOMAIN)
		return fail(s, n, NULL, leaf, "longer than %d characters", MAX_DOMAIN);
	/* Labels of [a-z0-9-], each starting and ending with [a-z0-9]. */
	for (size_t i = 0; i < len && ok; i++) {
		bool first = i == 0 || v[i - 1] == '.', last = i == len - 1 || v[i + 1] == '.';
		if (v[i] == '-' || v[i] == '.')
			ok = !first && !last;
		else
			ok = is_digit(v[i]) || (v[i] >= 'a' && v[i] <= 'z');
	}
	if (!ok)
		return fail(s, n, NULL, leaf,
			    "\"%s\" is not a valid DNS-1123 subdomain: use lower-case letters, "
			    "digits, '-' and '.', each dot-separated label starting and ending "
			    "with a letter or digit",
			    v);
	/* The kubelet treats "*kubernetes.io/NAME" as a native resource. */
	if (len >= 13 && strcmp(v + len - 13, "kubernetes.io") == 0)
		return fail(s, n, NULL, leaf, "\"%s\" is reserved for Kubernetes' own resources",
			    v);
	free(cfg->domain);
	cfg->domain = strdup(v);
	return cfg->domain ? 0 : -ENOMEM;
}

/* HOST:PORT or :PORT, with a numeric port, IPv6 hosts in brackets. */
static int apply_listen(const struct src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg)
{
	const char *colon = strrchr(v, ':');
	const char *port = colon ? colon + 1 : "";
	size_t hostlen = colon ? (size_t)(colon - v) : 0;
	bool ok = colon && *port && strlen(port) <= 5 && is_integer(port) && is_digit(*port) &&
		  atoi(port) <= 65535;
	if (ok && hostlen > 0 && v[0] == '[')
		ok = v[hostlen - 1] == ']';
	else if (ok)
		ok = !memchr(v, ':', hostlen);
	if (!ok)
		return fail(s, n, NULL, leaf,
			    "invalid address \"%s\": give HOST:PORT or :PORT with a numeric port "
			    "(e.g. \":8080\", \"127.0.0.1:8080\", \"[::1]:8080\")",
			    v);
	free(cfg->listen);
	cfg->listen = strdup(v);
	return cfg->listen ? 0 : -ENOMEM;
}

static int apply_log_level(const struct src *s, const struct cfg_node *n, const char *leaf,
			   const char *v, struct config *cfg)
{
	if (log_level_parse(v, &cfg->log_level) < 0)
		return fail(s, n, NULL, leaf,
			    "unknown log level \"%s\": possible values are all, debug, info, warn, "
			    "error, none",
			    v);
	return 0;
}

static int apply_plugin_dir(const struct src *s, const struct cfg_node *n, const char *leaf,
			    const char *v, struct config *cfg)
{
	size_t len = strlen(v);
	if (len == 0)
		return fail(s, n, NULL, leaf, "must not be empty");
	bool slash = v[len - 1] == '/';
	char *dir = malloc(len + 2);
	if (!dir)
		return -ENOMEM;
	memcpy(dir, v, len);
	memcpy(dir + len, slash ? "" : "/", slash ? 1 : 2);
	free(cfg->plugin_dir);
	cfg->plugin_dir = dir;
	return 0;
}

struct unit {
	const char *name;
	unsigned long long ns;
};

/* Go's units; µs may be spelled with U+00B5 (micro sign) or U+03BC (mu). */
static const struct unit units[] = {
    {"ns", 1ULL},	{"us", 1000ULL},      {"\xc2\xb5s", 1000ULL}, {"\xce\xbcs", 1000ULL},
    {"ms", 1000000ULL}, {"s", 1000000000ULL}, {"m", 60000000000ULL},  {"h", 3600000000000ULL},
};

/* One "1.5h" element of a Go duration at *t, added to *ns. */
static const char *duration_element(const char **t, unsigned long long *ns)
{
	unsigned long long whole = 0;
	double frac = 0, scale = 1;
	bool digits = false, big = false;
	const char *p = *t;
	for (; is_digit(*p); p++, digits = true) {
		if (whole > (ULLONG_MAX - 9) / 10)
			big = true;
		else
			whole = whole * 10 + (unsigned)(*p - '0');
	}
	if (*p == '.')
		for (p++; is_digit(*p); p++, digits = true)
			if (scale < 1e18) {
				frac = frac * 10 + (*p - '0');
				scale *= 10;
			}
	if (!digits)
		return "expected a number";
	const char *u = p;
	while (*p && !is_digit(*p) && *p != '.')
		p++;
	size_t ulen = (size_t)(p - u);
	if (ulen == 0)
		return "missing unit";
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].name) != ulen || strncmp(u, units[i].name, ulen) != 0)
			continue;
		unsigned long long v;
		if (big || __builtin_mul_overflow(whole, units[i].ns, &v) ||
		    __builtin_add_overflow(v, (unsigned long long)(frac / scale * units[i].ns),
					   &v) ||
		    __builtin_add_overflow(*ns, v, ns))
			return "too long";
		*t = p;
		return NULL;
	}
	return "unknown unit (use ns, us, ms, s, m or h)";
}

/* Go's time.ParseDuration syntax ("30s", "1m30s", "1.5h", "0"), or a bare
 * integer of seconds; rounded down to milliseconds. NULL or the reason. */
static const char *parse_duration(const char *t, unsigned *ms)
{
	unsigned long long ns = 0;
	if (*t == '-' && strcmp(t, "-0") != 0)
		return "must not be negative";
	if (*t == '-' || *t == '+')
		t++;
	if (is_integer(t) && is_digit(*t)) {
		unsigned long long sec = 0;
		for (; *t; t++) {
			if (sec > 5000000)
				return "too long";
			sec = sec * 10 + (unsigned)(*t - '0');
		}
		ns = sec * 1000000000ULL;
	} else if (!*t) {
		return "must not be empty";
	}
	while (*t) {
		const char *why = duration_element(&t, &ns);
		if (why)
			return why;
	}
	if (ns / 1000000ULL > UINT_MAX)
		return "too long (at most 4294967295ms, about 49 days)";
	*ms = (unsigned)(ns / 1000000ULL);
	return NULL;
}

static int apply_grace(const struct src *s, const struct cfg_node *n, const char *leaf,
		       const char *v, struct config *cfg)
{
	const char *why = parse_duration(v, &cfg->grace_ms);
	if (why)
		return fail(s, n, NULL, leaf,
			    "invalid duration \"%s\": %s; give e.g. 30s, 500ms, 2m, 1m30s, or a "
			    "number of seconds",
			    v, why);
	return 0;
}

/* Empty: off; else an absolute path. */
static int apply_nfd_file(const struct src *s, const struct cfg_node *n, const char *leaf,
			  const char *v, struct config *cfg)
{
	free(cfg->nfd_file);
	cfg->nfd_file = NULL;
	if (!*v)
		return 0;
	if (*v != '/' || v[strlen(v) - 1] == '/')
		return fail(s, n, NULL, leaf, "must be an absolute file path, got \"%s\"", v);
	return (cfg->nfd_file = strdup(v)) ? 0 : -ENOMEM;
}

static int apply_cdi(const struct src *s, const struct cfg_node *n, const char *leaf, const char *v,
		     struct config *cfg)
{
	/* a flag's spellings (Go's strconv.ParseBool) and YAML's booleans */
	static const char *const yes[] = {"1", "t", "T", NULL};
	static const char *const no[] = {"0", "f", "F", NULL};
	if (in_list(v, yes) || in_list(v, no) || in_list(v, true_words) ||
	    in_list(v, false_words)) {
		cfg->cdi = in_list(v, yes) || in_list(v, true_words);
		return 0;
	}
	return fail(s, n, NULL, leaf, "expected true or false, got \"%s\"", v);
}

static int apply_cdi_dir(const struct src *s, const struct cfg_node *n, const char *leaf,
			 const char *v, struct config *cfg)
{
	if (*v != '/')
		return fail(s, n, NULL, leaf, "must be an absolute directory path, got \"%s\"", v);
	free(cfg->cdi_dir);
	return (cfg->cdi_dir = strdup(v)) ? 0 : -ENOMEM;
}

typedef int (*apply_fn)(const struct src *s, const struct cfg_node *n, const char *leaf,
			const char *v, struct config *cfg);

enum setting {
	SET_DOMAIN,
	SET_LISTEN,
	SET_LOG_LEVEL,
	SET_PLUGIN_DIR,
	SET_GRACE,
	SET_NFD,
	SET_CDI,
	SET_CDI_DIR,
	N_SETTINGS
};

static const struct setting_def {
	const char *name; /* flag without "--", and config file key */
	const char *env;
	const char *def;
	apply_fn apply;
} settings[N_SETTINGS] = {
    [SET_DOMAIN] = {"domain", "DOMAIN", CONFIG_DEFAULT_DOMAIN, apply_domain},
    [SET_LISTEN] = {"listen", "LISTEN", CONFIG_DEFAULT_LISTEN, apply_listen},
    [SET_LOG_LEVEL] = {"log-level", "LOG_LEVEL", "info", apply_log_level},
    [SET_PLUGIN_DIR] = {"plugin-directory", "PLUGIN_DIRECTORY", CONFIG_DEFAULT_PLUGIN_DIR,
			apply_plugin_dir},
    [SET_GRACE] = {"grace-period", "GRACE_PERIOD", STR(CONFIG_DEFAULT_GRACE_MS) "ms", apply_grace},
    [SET_NFD] = {"nfd-features-file", "NFD_FEATURES_FILE", "", apply_nfd_file},
    [SET_CDI] = {"cdi", "CDI", "false", apply_cdi},
    [SET_CDI_DIR] = {"cdi-dir", "CDI_DIR", CONFIG_DEFAULT_CDI_DIR, apply_cdi_dir},
};

/* ---- flags ---- */

struct flags {
	const char *value[N_SETTINGS]; /* borrowed from argv; NULL: not given */
	const char *config;
	const char *format;   /* --config-format */
	const char **devices; /* malloc'd array of pointers into argv */
	size_t n_devices;
	bool help, version, list, udev_rules;
};

static const char *const flag_names[] = {
    "device",	    "config",  "domain",	"listen", "log-level",	       "plugin-directory",
    "grace-period", "version", "help",		"list",	  "nfd-features-file", "udev-rules",
    "cdi",	    "cdi-dir", "config-format", NULL};

static int parse_bool_text(const char *t, bool *out)
{
	static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True", NULL};
	static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False", NULL};
	if (in_list(t, yes))
		*out = true;
	else if (in_list(t, no))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Stores a flag's value; name is the flag without "--". */
static int flag_store(struct flags *f, const char *name, const char *value)
{
	for (int i = 0; i < N_SETTINGS; i++) {
		if (strcmp(name, settings[i].name) == 0) {
			f->value[i] = value;
			return 0;
		}
	}
	if (strcmp(name, "config") == 0) {
		f->config = value;
		return 0;
	}
	if (strcmp(name, "config-format") == 0) {
		f->format = value;
		return 0;
	}
	const char **d = reallocarray(f->devices, f->n_devices + 1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	f->devices = d;
	f->devices[f->n_devices++] = value;
	return 0;
}

/* Handles argv[*i], a "--name[=value]" flag. Writes the reason into err. */
static int parse_long_flag(struct flags *f, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *name = argv[*i] + 2, *eq = strchr(name, '=');
	size_t len = eq ? (size_t)(eq - name) : strlen(name);
	char key[40];
	if (len >= sizeof(key))
		len = sizeof(key) - 1;
	memcpy(key, name, len);
	key[len] = '\0';
	if (!in_list(key, flag_names)) {
		const char *sug = suggest(key, flag_names);
		errput(err, errlen, "--%s: unknown flag (%s%s%s)", key,
		       sug ? "did you mean --" : "see --help", sug ? sug : "", sug ? "?" : "");
		return -EINVAL;
	}
	bool is_bool = strcmp(key, "version") == 0 || strcmp(key, "help") == 0 ||
		       strcmp(key, "list") == 0 || strcmp(key, "udev-rules") == 0;
	if (is_bool) {
		bool v = true;
		if (eq && parse_bool_text(eq + 1, &v) < 0) {
			errput(err, errlen, "--%s: invalid boolean \"%s\" (use true or false)", key,
			       eq + 1);
			return -EINVAL;
		}
		*(key[0] == 'v'	  ? &f->version
		  : key[0] == 'h' ? &f->help
		  : key[0] == 'u' ? &f->udev_rules
				  : &f->list) = v;
		return 0;
	}
	const char *value = eq ? eq + 1 : NULL;
	if (strcmp(key, "cdi") == 0 && !value) /* a boolean: --cdi, --cdi=false */
		value = "true";
	/* "--domain --listen x": --domain lacks its value (--flag=--v still works). */
	if (!value && *i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0)
		value = argv[++*i];
	if (!value) {
		errput(err, errlen, "--%s: missing value", key);
		return -EINVAL;
	}
	int r = flag_store(f, key, value);
	if (r < 0)
		errput(err, errlen, "--%s: out of memory", key);
	return r;
}

/* Fills *f from argv. Keeps going after an error so that --help and
 * --version are seen wherever they are; returns the first error. */
static int parse_args(struct flags *f, int argc, char **argv, char *err, size_t errlen)
{
	int first = 0;
	bool positional = false;
	char msg[256];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int r = 0;
		msg[0] = '\0';
		if (!a)
			continue;
		if (!positional && strcmp(a, "--") == 0) {
			positional = true;
			continue;
		}
		if (!positional && (strcmp(a, "-h") == 0)) {
			f->help = true;
		} else if (i == 1 && strcmp(a, "list") == 0) {
			f->list = true; /* "usb-device-plugin list [flags]" */
		} else if (!positional && strncmp(a, "--", 2) == 0) {
			r = parse_long_flag(f, argc, argv, &i, msg, sizeof(msg));
		} else if (!positional && a[0] == '-' && a[1]) {
			const char *sug = in_list(a + 1, flag_names) ? a + 1 : NULL;
			errput(msg, sizeof(msg), "%.40s: unknown flag (%s%s%s)", a,
			       sug ? "did you mean --" : "see --help", sug ? sug : "",
			       sug ? "?" : "");
			r = -EINVAL;
		} else {
			errput(msg, sizeof(msg),
			       "\"%.40s\": unexpected argument: settings are given as flags "
			       "(see --help)",
			       a);
			r = -EINVAL;
		}
		if (r < 0 && first == 0) {
			first = r;
			errput(err, errlen, "%s", msg);
		}
	}
	return first;
}

/* ---- config file ---- */

static const char *const default_files[] = {
    "/etc/usb-device-plugin/config.yaml",
    "/etc/usb-device-plugin/config.yml",
    "/etc/usb-device-plugin/config.json",
    "/etc/generic-device-plugin/config.yaml",
    "/etc/generic-device-plugin/config.yml",
    "/etc/generic-device-plugin/config.json",
    "./config.yaml",
    "./config.yml",
    "./config.json",
    /* smarter-device-manager's image reads config/conf.yaml from /root: its
     * DaemonSet mounts the ConfigMap there, so only the image changes. */
    "/root/config/conf.yaml",
    NULL,
};

/* The file to read into *out (malloc'd), or NULL when none is given and
 * none of the default locations exists. */
static int find_config(const struct flags *f, char **out, char *err, size_t errlen)
{
	const char *found = NULL;
	struct stat st;
	*out = NULL;
	if (f->config) {
		if (!*f->config) {
			errput(err, errlen, "--config: must not be empty");
			return -EINVAL;
		}
		found = f->config;
	}
	for (size_t i = 0; !found && default_files[i]; i++) {
		/* Only absence skips a location; EACCES and the like are reported
		 * when the file is read. */
		if (stat(default_files[i], &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
			found = default_files[i];
	}
	if (!found)
		return 0;
	*out = strdup(found);
	return *out ? 0 : -ENOMEM;
}

static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		errput(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);
	int r = b ? 0 : -ENOMEM;
	while (r == 0) {
		if (n == cap) {
			char *nb = cap >= MAX_FILE_SIZE ? NULL : realloc(b, cap * 2 + 1);
			if (!nb) {
				r = cap >= MAX_FILE_SIZE ? -EFBIG : -ENOMEM;
				break;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t k = read(fd, b + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			r = -errno;
		else if (k == 0)
			break;
		else
			n += (size_t)k;
	}
	close(fd);
	if (r < 0) {
		free(b);
		if (r == -EFBIG)
			errput(err, errlen, "%s: larger than %d bytes", path, MAX_FILE_SIZE);
		else
			errput(err, errlen, "%s: cannot read: %s", path, strerror(-r));
		return r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* JSON when the first non-blank character (after a UTF-8 BOM) opens an
 * object or an array. */
static bool looks_like_json(const char *buf, size_t len)
{
	size_t i = 0;
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		i = 3;
	while (i < len && buf[i] && strchr(" \t\r\n", buf[i]))
		i++;
	return i < len && (buf[i] == '{' || buf[i] == '[');
}

/* Formats a cfgtree error of the source named name. */
static void tree_error(char *err, size_t errlen, const char *name, bool lines, bool json,
		       const struct cfgtree_error *e)
{
	char at[48] = "";
	int k = 0;
	if (e->syntax && lines)
		k = snprintf(at, sizeof(at), " at column %u", e->column);
	else if (e->syntax && e->line > 1)
		k = snprintf(at, sizeof(at), " at line %u, column %u", e->line, e->column);
	else if (e->syntax)
		k = snprintf(at, sizeof(at), " at column %u", e->column);
	if (k < 0 || (size_t)k >= sizeof(at))
		at[0] = '\0';
	char line[24] = "";
	if (lines && e->line && snprintf(line, sizeof(line), ":%u", e->line) >= (int)sizeof(line))
		line[0] = '\0';
	if (e->syntax)
		errput(err, errlen, "%s%s: invalid %s%s: %s", name, line, json ? "JSON" : "YAML",
		       at, e->msg);
	else
		errput(err, errlen, "%s%s: %s", name, line, e->msg);
}

static int parse_file(const char *path, struct cfg_node **root, char *err, size_t errlen)
{
	char *buf = NULL;
	size_t len = 0;
	struct cfgtree_error e;
	int r = read_file(path, &buf, &len, err, errlen);
	if (r < 0)
		return r;
	if (looks_like_json(buf, len)) {
		/* Strict JSON first, then libyaml for line numbers (JSON is YAML);
		 * the few valid JSON texts libyaml refuses (tab indentation,
		 * surrogate pairs) fall back to cJSON's tree, without lines. */
		r = cfgtree_check_json(buf, len, &e);
		if (r == 0) {
			r = cfgtree_parse_yaml(buf, len, root, &e);
			if (r == -EBADMSG)
				r = cfgtree_parse_json(buf, len, root, &e);
		}
		if (r < 0)
			tree_error(err, errlen, path, true, true, &e);
	} else {
		r = cfgtree_parse_yaml(buf, len, root, &e);
		if (r < 0)
			tree_error(err, errlen, path, true, false, &e);
	}
	free(buf);
	return r;
}

/* ---- smarter-device-manager's config file ---- */

static const char *const sdm_keys[] = {"devicematch", "nummaxdevices", NULL};

/* Go's RE2 syntax that POSIX ERE reads differently or not at all: refused
 * rather than matching something else silently. */
static const char *re2_only(const char *re)
{
	for (const char *c = re; *c; c++) {
		if (*c == '\\' && c[1] && strchr("dDsSpPbBAzQE", c[1]))
			return c[1] == 'd' ? "\\d (write [0-9])" : "a Perl-style escape";
		if (*c == '\\' && c[1])
			c++;
		else if (*c == '(' && c[1] == '?')
			return "(?...) groups";
	}
	return NULL;
}

/* An expression's size once its {m,n} repetitions are written out, as
 * glibc's regcomp does (an upper bound; saturates above MAX_RE_SIZE):
 * "x{1,32767}" alone makes regcomp take gigabytes and minutes. */
#define MAX_RE_SIZE 1024
static unsigned long long re_size(const char *re)
{
	enum { DEPTH = 32 };
	unsigned long long sum[DEPTH] = {0}, last[DEPTH] = {0};
	int d = 0;
	for (const char *c = re; *c && sum[d] <= MAX_RE_SIZE; c++) {
		unsigned long long atom = 1;
		if (*c == '(') {
			if (++d == DEPTH)
				return MAX_RE_SIZE + 1;
			sum[d] = last[d] = 0;
			continue;
		} else if (*c == ')' && d > 0) {
			atom = sum[d--];
		} else if (*c == '{' && (c[1] >= '0' && c[1] <= '9')) {
			char *end;
			unsigned long long lo = strtoull(c + 1, &end, 10), hi = lo;
			if (*end == ',')
				hi = end[1] == '}' ? lo + 1 : strtoull(end + 1, &end, 10);
			else
				end--;
			if (end[1] == '}' || *end == '}') {
				unsigned long long n = hi > lo ? hi : lo;
				n = n > MAX_RE_SIZE ? MAX_RE_SIZE + 1 : n;
				sum[d] += last[d] * (n ? n - 1 : 0);
				last[d] *= n;
				c = strchr(c, '}');
				continue;
			}
		} else if (*c == '[') {
			const char *e = c + 1 + (c[1] == '^');
			e += *e == ']';
			while (*e && *e != ']')
				e += (*e == '[' && strchr(":.=", e[1]) && strchr(e + 2, ']'))
					 ? strchr(e + 2, ']') - e + 1
					 : 1;
			c = *e ? e : c;
		} else if (*c == '\\' && c[1]) {
			c++;
		}
		sum[d] += atom;
		last[d] = atom;
	}
	while (d > 0) {
		sum[d - 1] += sum[d];
		d--;
	}
	return sum[0];
}

static int parse_sdm_entry(const struct src *s, const struct cfg_node *item, const char *path,
			   struct config *cfg)
{
	const struct cfg_node *n = NULL;
	const char *pattern;
	unsigned max = 0;
	int r = expect_kind(s, item, path, NULL, CFG_MAP);
	if (r < 0 || (r = check_keys(s, item, path, sdm_keys, NULL, NULL)) < 0 ||
	    (r = required(s, item, path, "devicematch", &n)) < 0 ||
	    (r = get_string(s, n, path, "devicematch", &pattern)) < 0)
		return r;
	if (strcmp(pattern, "nvidia-gpu") == 0) {
		warn(s, n, path, "devicematch",
		     "\"nvidia-gpu\" skipped: GPUs are not offered as /dev files here; use "
		     "NVIDIA's device plugin for them");
		return 0;
	}
	const char *bad = re2_only(pattern);
	if (bad)
		return fail(s, n, path, "devicematch",
			    "\"%s\" uses %s, which POSIX extended regular expressions do not have",
			    pattern, bad);
	if (re_size(pattern) > MAX_RE_SIZE)
		return fail(s, n, path, "devicematch",
			    "\"%.60s\" is too large once its {m,n} repetitions are written out "
			    "(more than %d): /dev names are short, shorten the bounds",
			    pattern, MAX_RE_SIZE);
	const struct cfg_node *pn = n;
	if ((r = required(s, item, path, "nummaxdevices", &n)) < 0 ||
	    (r = get_uint(s, n, path, "nummaxdevices", 1, MAX_COUNT, &max)) < 0)
		return r;
	struct cfg_match *m = &cfg->matches[cfg->n_matches];
	int e = regcomp(&m->regex, pattern, REG_EXTENDED | REG_NOSUB);
	if (e != 0) {
		char why[160];
		regerror(e, &m->regex, why, sizeof(why));
		return fail(s, pn, path, "devicematch", "invalid regular expression \"%s\": %s",
			    pattern, why);
	}
	if (!(m->pattern = strdup(pattern))) {
		regfree(&m->regex);
		return -ENOMEM;
	}
	m->max = max;
	m->line = item->line;
	cfg->n_matches++;
	return 0;
}

/* A YAML list of {devicematch, nummaxdevices} into cfg->matches. */
static int parse_sdm(const struct src *s, const struct cfg_node *root, struct config *cfg)
{
	char path[PATH_BUF], buf[80];
	if (is_null(root) || root->kind != CFG_SEQ)
		return fail(s, root, NULL, NULL,
			    "expected smarter-device-manager's format, a list of {devicematch, "
			    "nummaxdevices}, got %s",
			    root ? got(root, buf, sizeof(buf)) : "an empty file");
	if (root->n_items == 0)
		return fail(s, root, NULL, NULL, "the list of devicematch entries is empty");
	if (!(cfg->matches = calloc(root->n_items, sizeof(*cfg->matches))))
		return -ENOMEM;
	for (size_t i = 0; i < root->n_items; i++) {
		if (path_index(path, sizeof(path), "", "", i) < 0)
			return path_too_long(s, root, "");
		int r = parse_sdm_entry(s, root->items[i], path, cfg);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_format(const char *v, const char *label, enum cfg_format *out, char *err,
			size_t errlen)
{
	if (strcmp(v, "auto") == 0)
		*out = CFG_FORMAT_AUTO;
	else if (strcmp(v, "generic-device-plugin") == 0)
		*out = CFG_FORMAT_GDP;
	else if (strcmp(v, "smarter-device-manager") == 0)
		*out = CFG_FORMAT_SDM;
	else {
		errput(err, errlen,
		       "%s: unknown format \"%s\" (allowed: auto, generic-device-plugin, "
		       "smarter-device-manager)",
		       label, v);
		return -EINVAL;
	}
	return 0;
}

/* ---- the simulator's environment ---- */

/* $USBDP_VIRTUAL_RESOURCE (and its companions) add one resource of
 * virtual devices, for a DaemonSet that runs without a config file. */
static int add_env_virtual(struct devlist *l, char *err, size_t errlen)
{
	static const struct {
		const char *env, *key;
	} vars[] = {{"USBDP_VIRTUAL_COUNT", "count"},
		    {"USBDP_VIRTUAL_ID_PREFIX", "idPrefix"},
		    {"USBDP_VIRTUAL_ENV_PREFIX", "envPrefix"},
		    {"USBDP_VIRTUAL_ANNOTATION_PREFIX", "annotationPrefix"},
		    {"USBDP_VIRTUAL_DEVICE_FILE_PREFIX", "deviceFilePrefix"}};
	const char *name = getenv("USBDP_VIRTUAL_RESOURCE");
	if (!name || !*name)
		return 0;
	for (size_t j = 0; j < l->n; j++)
		if (strcmp(l->v[j].name, name) == 0) {
			errput(err, errlen,
			       "$USBDP_VIRTUAL_RESOURCE: \"%s\" is also the name of a configured "
			       "device",
			       name);
			return -EINVAL;
		}
	cJSON *dev = cJSON_CreateObject(), *groups = cJSON_AddArrayToObject(dev, "groups");
	cJSON *group = cJSON_CreateObject(), *virt = cJSON_AddObjectToObject(group, "virtual");
	bool ok = dev && groups && group && virt && cJSON_AddStringToObject(dev, "name", name) &&
		  cJSON_AddItemToArray(groups, group);
	if (!ok)
		cJSON_Delete(group);
	for (size_t i = 0; ok && i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i].env);
		if (v && *v)
			ok = cJSON_AddStringToObject(virt, vars[i].key, v) != NULL;
	}
	char *text = ok ? cJSON_PrintUnformatted(dev) : NULL;
	cJSON_Delete(dev);
	struct cfg_node *root = NULL;
	int r = text ? cfgtree_parse_json(text, strlen(text), &root, NULL) : -ENOMEM;
	free(text);
	struct src s = {.name = "$USBDP_VIRTUAL_*", .err = err, .errlen = errlen};
	if (r == 0)
		r = devlist_add(l, &s, root, NULL, l->n);
	cfgtree_free(root);
	return r;
}

/* $NODE_NAME (the downward API's spec.nodeName) or the host name, as a
 * device ID part: lower case, [a-z0-9.-]. */
static int resolve_node_name(struct config *cfg)
{
	char host[256] = "node";
	const char *v = getenv("NODE_NAME");
	if (!v || !*v) {
		if (gethostname(host, sizeof(host)) < 0 || !host[0])
			snprintf(host, sizeof(host), "node");
		host[sizeof(host) - 1] = '\0';
		v = host;
	}
	if (!(cfg->node_name = strdup(v)))
		return -ENOMEM;
	for (char *c = cfg->node_name; *c; c++)
		*c = isalnum((unsigned char)*c) || *c == '.' ? (char)tolower((unsigned char)*c)
							     : '-';
	return 0;
}

/* ---- putting it together ---- */

static const char *const top_keys[] = {"domain",       "listen",  "log-level", "plugin-directory",
				       "grace-period", "devices", "device",    "nfd-features-file",
				       "cdi",	       "cdi-dir", NULL};

/* Checks the file's top level; *devices is its devices list (or NULL),
 * *key the name it was given under. */
static int check_top(const struct src *s, const struct cfg_node *root,
		     const struct cfg_node **devices, const char **key)
{
	*devices = NULL;
	*key = "devices";
	if (is_null(root))
		return 0;
	if (root->kind != CFG_MAP)
		return expect_kind(s, root, NULL, NULL, CFG_MAP);
	int r = check_keys(s, root, NULL, top_keys, NULL, NULL);
	if (r < 0)
		return r;
	const struct cfg_pair *a = cfgtree_get_pair(root, "devices");
	const struct cfg_pair *b = cfgtree_get_pair(root, "device");
	if (a && b)
		return fail(s, b->key, NULL, "device",
			    "\"device\" is an alias of \"devices\": give only one");
	if (b)
		*key = "device";
	*devices = field(root, *key);
	if (*devices && (r = expect_kind(s, *devices, NULL, *key, CFG_SEQ)) < 0)
		return r;
	return 0;
}

/* Each setting from the flag, the environment, the file or the default. */
static int resolve_settings(const struct flags *f, const struct src *file,
			    const struct cfg_node *root, struct config *cfg)
{
	char label[48];
	for (int i = 0; i < N_SETTINGS; i++) {
		const struct setting_def *d = &settings[i];
		const char *env = getenv(d->env);
		const struct cfg_node *n = field(root, d->name);
		struct src s = {.err = file->err, .errlen = file->errlen, .name = label};
		const char *v = d->def, *leaf = NULL;
		int r = 0;
		if (f->value[i]) {
			r = snprintf(label, sizeof(label), "--%s", d->name);
			v = f->value[i];
		} else if (env && *env) {
			r = snprintf(label, sizeof(label), "$%s", d->env);
			v = env;
		} else if (n) {
			s = *file;
			leaf = d->name;
			if (i == SET_CDI && n->kind == CFG_SCALAR && classify(n) == SC_BOOL)
				v = n->text;
			else if ((r = get_string(&s, n, NULL, leaf, &v)) < 0)
				return r;
		} else if (i == SET_DOMAIN && cfg->format == CFG_FORMAT_SDM) {
			v = CONFIG_SDM_DOMAIN; /* its resources are smarter-devices/NAME */
		}
		if (r < 0 || (size_t)r >= sizeof(label))
			return -ENAMETOOLONG;
		if ((r = d->apply(&s, n && s.lines ? n : NULL, leaf, v, cfg)) < 0)
			return r;
	}
	return 0;
}

/* The i-th --device flag (value v) into l. JSON, or YAML flow syntax
 * too, as generic-device-plugin's ghodss/yaml reads it. */
static int add_flag_device(struct devlist *l, const struct src *file, const char *v, size_t i)
{
	char label[32];
	struct cfg_node *root = NULL;
	struct cfgtree_error e;
	struct src s = {.name = label, .err = file->err, .errlen = file->errlen};
	int n = snprintf(label, sizeof(label), "--device #%zu", i + 1);
	if (n < 0 || (size_t)n >= sizeof(label))
		return -ENAMETOOLONG;
	int r = cfgtree_parse_json(v, strlen(v), &root, &e);
	if (r == -EBADMSG) {
		/* A YAML scalar is no device: then cJSON's error is the useful one. */
		int y = cfgtree_parse_yaml(v, strlen(v), &root, NULL);
		if (y == -ENOMEM || (y == 0 && root && root->kind == CFG_MAP))
			r = y;
	}
	if (r == 0)
		r = devlist_add(l, &s, root, NULL, i);
	else if (r == -ENOMEM)
		errput(file->err, file->errlen, "%s: out of memory", label);
	else
		tree_error(file->err, file->errlen, label, false, true, &e);
	cfgtree_free(root);
	return r;
}

/* The devices: from the --device flags if any, else from the file's list
 * (which is validated either way). */
static int load_devices(const struct flags *f, const struct src *file, const struct cfg_node *list,
			const char *key, struct config *cfg)
{
	struct devlist from_file = {0}, from_flags = {0};
	int r = 0;
	for (size_t i = 0; list && r == 0 && i < list->n_items; i++)
		r = devlist_add(&from_file, file, list->items[i], key, i);
	for (size_t i = 0; r == 0 && i < f->n_devices; i++)
		r = add_flag_device(&from_flags, file, f->devices[i], i);
	struct devlist *use = f->n_devices ? &from_flags : &from_file;
	if (r == 0)
		r = add_env_virtual(use, file->err, file->errlen);
	if (r == 0) {
		cfg->devices = use->v;
		cfg->n_devices = use->n;
		free(use->lines);
		memset(use, 0, sizeof(*use));
	}
	devlist_free(&from_file);
	devlist_free(&from_flags);
	return r;
}

/* --help and --version: the defaults, whatever else is wrong. */
static int apply_defaults(struct config *cfg)
{
	struct src s = {.name = "default"};
	for (int i = 0; i < N_SETTINGS; i++) {
		int r = settings[i].apply(&s, NULL, NULL, settings[i].def, cfg);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The file as the chosen (or recognised) format: its devices list or its
 * smarter-device-manager entries. */
static int load_file(const struct src *file, const struct cfg_node *root, enum cfg_format fmt,
		     const struct cfg_node **list, const char **key, struct config *cfg)
{
	if (fmt == CFG_FORMAT_AUTO) /* a list of {devicematch, ...}: theirs */
		fmt = root && root->kind == CFG_SEQ && root->n_items &&
			      (cfgtree_get(root->items[0], "devicematch") ||
			       cfgtree_get(root->items[0], "nummaxdevices"))
			  ? CFG_FORMAT_SDM
			  : CFG_FORMAT_GDP;
	cfg->format = fmt;
	if (fmt == CFG_FORMAT_SDM)
		return parse_sdm(file, root, cfg);
	return check_top(file, root, list, key);
}

static int load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	struct flags f = {0};
	struct cfg_node *root = NULL;
	const struct cfg_node *list = NULL;
	const char *key = "devices";
	struct src file = {.name = "", .lines = true, .err = err, .errlen = errlen};
	int r = parse_args(&f, argc, argv, err, errlen);
	if (f.help || f.version) {
		cfg->show_help = f.help;
		cfg->show_version = f.version;
		if (err && errlen)
			err[0] = '\0';
		r = apply_defaults(cfg);
		goto out;
	}
	const char *fmt = f.format ? f.format : getenv("CONFIG_FORMAT");
	enum cfg_format want = CFG_FORMAT_AUTO;
	if (r < 0 ||
	    (fmt && *fmt &&
	     (r = parse_format(fmt, f.format ? "--config-format" : "$CONFIG_FORMAT", &want, err,
			       errlen)) < 0) ||
	    (r = find_config(&f, &cfg->config_file, err, errlen)) < 0)
		goto out;
	if (want == CFG_FORMAT_SDM && !cfg->config_file) {
		errput(err, errlen, "%s: smarter-device-manager: no config file (give --config)",
		       f.format ? "--config-format" : "$CONFIG_FORMAT");
		r = -EINVAL;
		goto out;
	}
	if (cfg->config_file) {
		file.name = cfg->config_file;
		if ((r = parse_file(cfg->config_file, &root, err, errlen)) < 0 ||
		    (r = load_file(&file, root, want, &list, &key, cfg)) < 0)
			goto out;
	}
	if ((r = resolve_settings(&f, &file, root, cfg)) < 0 ||
	    (r = load_devices(&f, &file, list, key, cfg)) < 0 || (r = resolve_node_name(cfg)) < 0)
		goto out;
	char kind[CDI_KIND_MAX];
	if (cfg->cdi && cdi_kind(cfg->domain, "x", kind, sizeof(kind)) < 0) {
		errput(err, errlen,
		       "cdi: the domain \"%s\" cannot be a CDI vendor (it must start with a "
		       "letter)",
		       cfg->domain);
		r = -EINVAL;
		goto out;
	}
	cfg->show_list = f.list;
	cfg->show_udev_rules = f.udev_rules;
	if (cfg->n_devices == 0 && cfg->n_matches == 0 && !f.list) {
		errput(err, errlen,
		       "no devices configured: give --device, a config file with a devices "
		       "list, a smarter-device-manager config or $USBDP_VIRTUAL_RESOURCE");
		r = -EINVAL;
	}
out:
	free(f.devices);
	cfgtree_free(root);
	return r;
}

int config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!cfg || argc < 0 || (argc > 0 && !argv)) {
		errput(err, errlen, "config_load: invalid argument");
		return -EINVAL;
	}
	struct config tmp = {.log_level = LOG_LEVEL_INFO};
	int r = load(&tmp, argc, argv, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM && err && errlen && !err[0])
			errput(err, errlen, "out of memory while loading the configuration");
		else if (r == -ENAMETOOLONG && err && errlen && !err[0])
			errput(err, errlen, "configuration field path too long");
		config_free(&tmp);
		memset(cfg, 0, sizeof(*cfg));
		return r;
	}
	*cfg = tmp;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; cfg->devices && i < cfg->n_devices; i++)
		config_device_clear(&cfg->devices[i]);
	free(cfg->devices);
	free(cfg->domain);
	free(cfg->listen);
	free(cfg->plugin_dir);
	free(cfg->config_file);
	free(cfg->nfd_file);
	free(cfg->cdi_dir);
	free(cfg->node_name);
	for (size_t i = 0; cfg->matches && i < cfg->n_matches; i++) {
		regfree(&cfg->matches[i].regex);
		free(cfg->matches[i].pattern);
	}
	free(cfg->matches);
	memset(cfg, 0, sizeof(*cfg));
}

const char *config_usage(void)
{
	return "Usage: usb-device-plugin [FLAGS]\n"
	       "\n"
	       "A Kubernetes device plugin for USB devices and other host device files;\n"
	       "a drop-in replacement for squat/generic-device-plugin (same flags,\n"
	       "environment variables and config file).\n"
	       "\n"
	       "Flags (--flag VALUE or --flag=VALUE):\n"
	       "  --device JSON            A resource to expose (see below). Repeatable; any\n"
	       "                           --device replaces the config file's devices list.\n"
	       "  --config FILE            YAML or JSON config file. Default: the first that\n"
	       "                           exists of /etc/usb-device-plugin/config.EXT,\n"
	       "                           /etc/generic-device-plugin/config.EXT,\n"
	       "                           ./config.EXT (EXT: yaml, yml or json) and\n"
	       "                           /root/config/conf.yaml.\n"
	       "  --config-format FORMAT   auto, generic-device-plugin or\n"
	       "                           smarter-device-manager (a list of {devicematch,\n"
	       "                           nummaxdevices}: a resource smarter-devices/NAME\n"
	       "                           per matching file under /dev). auto: by shape.\n"
	       "                           Env CONFIG_FORMAT. Default: auto\n"
	       "  --domain DOMAIN          Resources are named DOMAIN/NAME; squat.ai makes\n"
	       "                           this a drop-in for generic-device-plugin's Pods.\n"
	       "                           Env DOMAIN. Default: " CONFIG_DEFAULT_DOMAIN "\n"
	       "  --listen ADDR            HOST:PORT or :PORT of /healthz and /metrics.\n"
	       "                           Env LISTEN. Default: " CONFIG_DEFAULT_LISTEN "\n"
	       "  --log-level LEVEL        all, debug, info, warn, error or none.\n"
	       "                           Env LOG_LEVEL. Default: info\n"
	       "  --plugin-directory DIR   The kubelet's device plugin directory.\n"
	       "                           Env PLUGIN_DIRECTORY.\n"
	       "                           Default: " CONFIG_DEFAULT_PLUGIN_DIR "\n"
	       "  --grace-period DURATION  How long an unplugged device stays listed\n"
	       "                           Unhealthy before it is dropped: 30s, 500ms, 2m,\n"
	       "                           1m30s, or a number of seconds.\n"
	       "                           Env GRACE_PERIOD. Default: 30s\n"
	       "  --nfd-features-file FILE Keep FILE, a node-feature-discovery local feature\n"
	       "                           file, up to date with what is plugged in (one\n"
	       "                           label per resource and per USB vendor:product).\n"
	       "                           Env NFD_FEATURES_FILE. Default: off\n"
	       "  --cdi                    Write a CDI spec per resource and answer Allocate\n"
	       "                           with CDI device names (kubelet 1.29+ by default;\n"
	       "                           containerd 1.7+ with enable_cdi, CRI-O 1.23+).\n"
	       "                           Env CDI. Default: false\n"
	       "  --cdi-dir DIR            Where the CDI specs go. Env CDI_DIR.\n"
	       "                           Default: " CONFIG_DEFAULT_CDI_DIR "\n"
	       "  --udev-rules             Print udev rules for the configured USB devices\n"
	       "                           (tag, group plugdev, mode 0660) and exit.\n"
	       "  --list                   Print every USB device on this node with its\n"
	       "                           nodes and the resources it matches, and exit: a\n"
	       "                           dry run for writing config (also: list).\n"
	       "  --version                Print the version and exit.\n"
	       "  -h, --help               Print this help and exit.\n"
	       "\n"
	       "Each setting comes from its flag, else its environment variable (unless\n"
	       "empty), else the config file key named like the flag (domain, listen,\n"
	       "log-level, plugin-directory, grace-period, and devices: a list of\n"
	       "devices), else the default.\n"
	       "\n"
	       "A device (a --device value, or an item of the config file's devices):\n"
	       "  {\"name\": NAME, \"groups\": [GROUP, ...]}\n"
	       "  NAME   lower-case letters, digits and '-': the resource DOMAIN/NAME.\n"
	       "  GROUP  {\"paths\": [PATH, ...], \"count\": N} or {\"usb\": [USB, ...], "
	       "\"count\": N}\n"
	       "         or {\"virtual\": VIRTUAL, \"count\": N}, each optionally with\n"
	       "         \"env\": {KEY: VALUE} and \"annotations\": {KEY: VALUE}, templates\n"
	       "         with placeholders ({id}, {index}, {host}, {container}, {tty}...).\n"
	       "         Every match of a group is one allocatable device, which N\n"
	       "         containers may hold at once (count, default 1).\n"
	       "  VIRTUAL {\"count\": 4, \"idPrefix\": \"sim\", \"envPrefix\": \"SIM_\",\n"
	       "          \"annotationPrefix\": \"sim.example.com/\", \"deviceFilePrefix\":\n"
	       "          \"/dev/x\"}: devices that need no file (IDs sim-NODE-I); also from\n"
	       "          $USBDP_VIRTUAL_RESOURCE, _COUNT, _ID_PREFIX, _ENV_PREFIX,\n"
	       "          _ANNOTATION_PREFIX, _DEVICE_FILE_PREFIX without any config.\n"
	       "  PATH   {\"path\": \"/dev/GLOB\", \"mountPath\": \"/in/container\",\n"
	       "          \"type\": \"Device\" or \"Mount\", \"permissions\": \"mrw\",\n"
	       "          \"readOnly\": false, \"limit\": 1, \"optional\": false}\n"
	       "  USB    {\"vendor\": \"1a86\", \"product\": \"7523\", \"serial\": \"GLOB\",\n"
	       "          \"class\": \"02\" or \"cdc-acm\", \"port\": \"1-1.*\",\n"
	       "          \"mountPath\": \"/dev/serial/\"}\n"
	       "         IDs are hexadecimal (unquoted numbers too); \"*\" or omitted: any.\n"
	       "         Every matching USB device is one allocatable device, with its\n"
	       "         /dev/bus/usb node and all its children's nodes (tty, hidraw...).\n"
	       "The old form {\"type\": NAME, \"count\": N, \"paths\": [\"/dev/x\", ...]} is\n"
	       "still read (one group per path), with a warning.\n"
	       "\n"
	       "Examples:\n"
	       "  usb-device-plugin --device '{\"name\": \"serial\", \"groups\": [{\"usb\":\n"
	       "      [{\"vendor\": \"1a86\", \"product\": \"7523\"}]}]}'\n"
	       "  usb-device-plugin --domain squat.ai --device '{\"name\": \"fuse\",\n"
	       "      \"groups\": [{\"paths\": [{\"path\": \"/dev/fuse\"}], \"count\": 10}]}'\n"
	       "\n"
	       "Full reference: docs/config-reference.md\n";
}
