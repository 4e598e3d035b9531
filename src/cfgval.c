/* Typed values of the configuration and its error messages: scalars read
 * as YAML 1.1 resolves them, keys checked with a suggestion for a near
 * miss, Go durations, and "<source>[:line]: <field path>: <reason>".
 *
 * Go's duration syntax is parsed by hand: generic-device-plugin's flags
 * take time.ParseDuration's grammar, which no C library offers. */
#include "cfgval.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "log.h"

/* ---- errors ---- */

/* Formats "<source>[:line]: <path>[.<leaf>]: <reason>" into buf. */
static void vformat_at(char *buf, size_t size, const struct cfg_src *s, const struct cfg_node *n,
		       const char *path, const char *leaf, const char *fmt, va_list ap)
{
	char reason[512];
	errbuf_vput(reason, sizeof(reason), fmt, ap);
	char line[24] = "";
	if (s->lines && n && n->line) {
		int k = snprintf(line, sizeof(line), ":%u", n->line);
		if (k < 0 || (size_t)k >= sizeof(line))
			line[0] = '\0';
	}
	const char *p = path ? path : "", *l = leaf ? leaf : "";
	errbuf_put(buf, size, "%s%s: %s%s%s%s%s", s->name, line, p, (*p && *l) ? "." : "", l,
		   (*p || *l) ? ": " : "", reason);
}

int cfgval_fail(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		const char *leaf, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vformat_at(s->err, s->errlen, s, n, path, leaf, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void cfgval_warn(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		 const char *leaf, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vformat_at(msg, sizeof(msg), s, n, path, leaf, fmt, ap);
	va_end(ap);
	log_warn("config warning: %s", msg);
}

/* parent + ".key[i]" (or "key[i]" at the root). */
int cfgval_path_index(char *buf, size_t size, const char *parent, const char *key, size_t i)
{
	int n = snprintf(buf, size, "%s%s%s[%zu]", parent, (*parent && *key) ? "." : "", key, i);
	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

int cfgval_path_too_long(const struct cfg_src *s, const struct cfg_node *n, const char *parent)
{
	cfgval_fail(s, n, parent, NULL, "field path too long");
	return -ENAMETOOLONG;
}

/* ---- scalars ---- */

enum scalar_type { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STRING };

static const char *const true_words[] = {"true", "True", "TRUE", "yes", "Yes",
					 "YES",	 "on",	 "On",	 "ON",	NULL};
static const char *const false_words[] = {"false", "False", "FALSE", "no",  "No",
					  "NO",	   "off",   "Off",   "OFF", NULL};
static const char *const null_words[] = {"", "~", "null", "Null", "NULL", NULL};

bool cfgval_in_list(const char *s, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

bool cfgval_bool_word(const char *t, bool *out)
{
	bool yes = cfgval_in_list(t, true_words);

	if (!yes && !cfgval_in_list(t, false_words))
		return false;
	*out = yes;
	return true;
}

bool cfgval_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool cfgval_is_integer(const char *t)
{
	if (*t == '-' || *t == '+')
		t++;
	if (!*t)
		return false;
	for (; *t; t++)
		if (!cfgval_is_digit(*t))
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
		if (cfgval_is_digit(*t))
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
	return cfgval_is_integer(t);
}

/* YAML 1.1's resolution of plain scalars, without y/n (as PyYAML) nor
 * sexagesimal and base-prefixed numbers: quoted scalars are strings. */
static enum scalar_type classify(const struct cfg_node *n)
{
	if (n->quoted)
		return SC_STRING;
	if (cfgval_in_list(n->text, null_words))
		return SC_NULL;
	if (cfgval_in_list(n->text, true_words) || cfgval_in_list(n->text, false_words))
		return SC_BOOL;
	if (cfgval_is_integer(n->text))
		return SC_INT;
	if (is_float(n->text) || strcmp(n->text, ".nan") == 0 || strcmp(n->text, ".NaN") == 0)
		return SC_FLOAT;
	return SC_STRING;
}

bool cfgval_is_bool(const struct cfg_node *n)
{
	return n->kind == CFG_SCALAR && classify(n) == SC_BOOL;
}

bool cfgval_is_null(const struct cfg_node *n)
{
	return !n || (n->kind == CFG_SCALAR && classify(n) == SC_NULL);
}

/* The value of key, or NULL when absent or null. */
const struct cfg_node *cfgval_field(const struct cfg_node *map, const char *key)
{
	const struct cfg_node *n = cfgtree_get(map, key);
	return cfgval_is_null(n) ? NULL : n;
}

/* The value of a required key: fails when it is absent or null. */
int cfgval_required(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		    const char *key, const struct cfg_node **out)
{
	const struct cfg_pair *p = cfgtree_get_pair(map, key);
	*out = NULL;
	if (!p)
		return cfgval_fail(s, map, path, key, "required key is missing");
	if (cfgval_is_null(p->value))
		return cfgval_fail(s, p->value, path, key, "must not be null");
	*out = p->value;
	return 0;
}

/* What n is, for "expected X, got Y". */
const char *cfgval_got(const struct cfg_node *n, char *buf, size_t size)
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

int cfgval_expect_kind(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		       const char *leaf, enum cfg_kind kind)
{
	char buf[80];
	if (n->kind == kind)
		return 0;
	return cfgval_fail(s, n, path, leaf, "expected a %s, got %s", cfgtree_kind_name(kind),
			   cfgval_got(n, buf, sizeof(buf)));
}

/* A string: any scalar but null and booleans (a plain number is its text).
 * *out is borrowed from n. */
int cfgval_get_string(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		      const char *leaf, const char **out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR)
		return cfgval_fail(s, n, path, leaf, "expected a string, got %s",
				   cfgval_got(n, buf, sizeof(buf)));
	enum scalar_type t = classify(n);
	if (t == SC_BOOL)
		return cfgval_fail(s, n, path, leaf,
				   "expected a string, got a boolean (%s): quote it", n->text);
	if (t == SC_NULL)
		return cfgval_fail(s, n, path, leaf, "expected a string, got null");
	if (strlen(n->text) != n->len)
		return cfgval_fail(s, n, path, leaf, "contains a NUL character");
	*out = n->text;
	return 0;
}

int cfgval_get_bool(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, bool *out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR || classify(n) != SC_BOOL)
		return cfgval_fail(s, n, path, leaf, "expected a boolean (true or false), got %s",
				   cfgval_got(n, buf, sizeof(buf)));
	return cfgval_bool_word(n->text, out) ? 0 : -EINVAL;
}

/* A decimal integer in [min, max]; quoted digits ("2") are accepted too. */
int cfgval_get_uint(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, unsigned min, unsigned max, unsigned *out)
{
	char buf[80];
	if (n->kind != CFG_SCALAR || !cfgval_is_integer(n->text) || strlen(n->text) != n->len)
		return cfgval_fail(s, n, path, leaf, "expected an integer, got %s",
				   cfgval_got(n, buf, sizeof(buf)));
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
		return cfgval_fail(s, n, path, leaf, "must be at least %u, got %s", min, n->text);
	if (big || v > max)
		return cfgval_fail(s, n, path, leaf, "must be at most %u, got %s", max, n->text);
	*out = (unsigned)v;
	return 0;
}

/* A malloc'd copy of s without leading and trailing white space. */
char *cfgval_dup_trim(const char *s)
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
const char *cfgval_suggest(const char *key, const char *const *allowed)
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
int cfgval_check_keys(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		      const char *const *allowed, const char *const *misplaced, const char *hint)
{
	for (size_t i = 0; i < map->n_pairs; i++) {
		const struct cfg_node *k = map->pairs[i].key;
		if (cfgval_in_list(k->text, allowed))
			continue;
		const char *sug = cfgval_suggest(k->text, allowed);
		if (sug)
			return cfgval_fail(s, k, path, k->text,
					   "unknown key (did you mean \"%s\"?)", sug);
		if (misplaced && cfgval_in_list(k->text, misplaced))
			return cfgval_fail(s, k, path, k->text, "unknown key (%s)", hint);
		return cfgval_fail(s, k, path, k->text, "unknown key");
	}
	return 0;
}

/* ---- durations ---- */

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
	for (; cfgval_is_digit(*p); p++, digits = true) {
		if (whole > (ULLONG_MAX - 9) / 10)
			big = true;
		else
			whole = whole * 10 + (unsigned)(*p - '0');
	}
	if (*p == '.')
		for (p++; cfgval_is_digit(*p); p++, digits = true)
			if (scale < 1e18) {
				frac = frac * 10 + (*p - '0');
				scale *= 10;
			}
	if (!digits)
		return "expected a number";
	const char *u = p;
	while (*p && !cfgval_is_digit(*p) && *p != '.')
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
const char *cfgval_parse_duration(const char *t, unsigned *ms)
{
	unsigned long long ns = 0;
	if (*t == '-' && strcmp(t, "-0") != 0)
		return "must not be negative";
	if (*t == '-' || *t == '+')
		t++;
	if (cfgval_is_integer(t) && cfgval_is_digit(*t)) {
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
