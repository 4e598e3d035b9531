/* Typed values of the configuration and its error messages, shared by the
 * sources (config.c) and the device schema (cfgschema.c). Every getter
 * takes the node n, the field path of its parent and the key (leaf) for
 * the message; on failure it writes "<source>[:line]: <path>.<leaf>:
 * <reason>" into the source's buffer and returns -EINVAL. */
#ifndef UDP_CFGVAL_H
#define UDP_CFGVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "cfgtree.h"

/* A field path: devices[N].groups[N].paths[N].mountPath */
#define CFGVAL_PATH_BUF 192

/* Where values come from, for messages: "config.yaml" (with the node's
 * line appended when lines), "--device #2", "--domain", "$DOMAIN". */
struct cfg_src {
	const char *name;
	bool lines;
	char *err;
	size_t errlen;
};

/* Writes the message for node n (may be NULL) at path.leaf (either may be
 * NULL) into s's buffer; returns -EINVAL. */
int cfgval_fail(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		const char *leaf, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The same message, logged as a warning. */
void cfgval_warn(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		 const char *leaf, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* buf = parent + ".key[i]" (or "key[i]" at the root); -ENAMETOOLONG. */
int cfgval_path_index(char *buf, size_t size, const char *parent, const char *key, size_t i);
/* Says "field path too long" at parent; returns -ENAMETOOLONG. */
int cfgval_path_too_long(const struct cfg_src *s, const struct cfg_node *n, const char *parent);

/* ---- text ---- */
bool cfgval_in_list(const char *s, const char *const *list); /* list ends with NULL */
bool cfgval_is_digit(char c);
bool cfgval_is_integer(const char *t); /* [+-]digits */
/* A YAML 1.1 boolean word ("true", "Yes", "off"...): true and *out set. */
bool cfgval_bool_word(const char *t, bool *out);
/* A malloc'd copy of s without surrounding white space, or NULL. */
char *cfgval_dup_trim(const char *s);
/* Go's time.ParseDuration syntax ("30s", "1m30s", "1.5h", "0"), or a bare
 * integer of seconds, rounded down to milliseconds: NULL, or the reason. */
const char *cfgval_parse_duration(const char *t, unsigned *ms);

/* ---- nodes ---- */
bool cfgval_is_null(const struct cfg_node *n); /* NULL, or a null scalar */
bool cfgval_is_bool(const struct cfg_node *n); /* a plain boolean scalar */
/* The value of key, or NULL when absent or null. */
const struct cfg_node *cfgval_field(const struct cfg_node *map, const char *key);
/* The value of a required key: fails when it is absent or null. */
int cfgval_required(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		    const char *key, const struct cfg_node **out);
/* What n is, for "expected X, got Y" (may be formatted into buf). */
const char *cfgval_got(const struct cfg_node *n, char *buf, size_t size);
int cfgval_expect_kind(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		       const char *leaf, enum cfg_kind kind);
/* Any scalar but null and booleans (a plain number is its text); *out is
 * borrowed from n. */
int cfgval_get_string(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		      const char *leaf, const char **out);
int cfgval_get_bool(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, bool *out);
/* A decimal integer in [min, max]; quoted digits ("2") are accepted too. */
int cfgval_get_uint(const struct cfg_src *s, const struct cfg_node *n, const char *path,
		    const char *leaf, unsigned min, unsigned max, unsigned *out);

/* ---- keys ---- */
/* The allowed key that key probably meant (case, '-', '_' or a plural
 * 's' apart), or NULL. */
const char *cfgval_suggest(const char *key, const char *const *allowed);
/* Refuses any key of map not in allowed; keys listed in misplaced (may be
 * NULL) get hint instead of a suggestion. */
int cfgval_check_keys(const struct cfg_src *s, const struct cfg_node *map, const char *path,
		      const char *const *allowed, const char *const *misplaced, const char *hint);

#endif
