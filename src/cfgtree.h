/* A small generic document tree for configuration: maps, sequences and
 * scalars, each with the line and column where it starts, built from YAML
 * (libyaml) or from JSON (cJSON). Scalars keep their raw text and whether
 * they were written plain (unquoted) so the caller resolves types itself.
 *
 * YAML: one document per stream (an empty stream gives a NULL root);
 * anchors are accepted and ignored, aliases are refused (a configuration
 * has no need of them, and refusing them rules out "billion laughs"
 * expansions); explicit tags other than yaml.org's (!!str, !!int, ...) and
 * the non-specific "!" are refused; !!str and "!" make a scalar quoted.
 * Map keys must be scalars; a key repeated in one map is an error.
 * Nesting deeper than CFGTREE_MAX_DEPTH is an error.
 *
 * JSON: strings become quoted scalars; numbers plain scalars whose text is
 * the number (integral values printed as integers, without exponent or
 * decimals); true, false and null the plain scalars "true", "false" and
 * "null". cJSON does not track positions: nodes built from JSON have line
 * and column 0. */
#ifndef UDP_CFGTREE_H
#define UDP_CFGTREE_H

#include <stdbool.h>
#include <stddef.h>

#define CFGTREE_MAX_DEPTH 64

enum cfg_kind {
	CFG_SCALAR = 0,
	CFG_SEQ,
	CFG_MAP,
};

struct cfg_node;

struct cfg_pair {
	struct cfg_node *key; /* always a CFG_SCALAR */
	struct cfg_node *value;
};

struct cfg_node {
	enum cfg_kind kind;
	unsigned line;	 /* 1-based; 0 when unknown (built from cJSON) */
	unsigned column; /* 1-based, in bytes; 0 when unknown */
	/* CFG_SCALAR: text is NUL-terminated, len bytes long (text may hold a
	 * NUL of its own when YAML escaped one: compare len with strlen). */
	char *text;
	size_t len;
	bool quoted; /* not plain: quoted, block (| or >), or tagged !!str */
	/* CFG_SEQ */
	struct cfg_node **items;
	size_t n_items;
	/* CFG_MAP, in document order, keys distinct */
	struct cfg_pair *pairs;
	size_t n_pairs;
	size_t cap; /* internal: capacity of items or pairs */
};

/* Where and why parsing failed. line and column are 1-based, 0 when not
 * known; syntax tells a malformed document (msg is the parser's reason)
 * from a well-formed one this module refuses (duplicate key, alias, ...). */
struct cfgtree_error {
	unsigned line;
	unsigned column;
	bool syntax;
	char msg[256];
};

/* Parses buf (len bytes, need not be NUL-terminated) as YAML. On success
 * *root is the document's root, owned by the caller (cfgtree_free), or
 * NULL when the stream holds no document. Returns 0, -EBADMSG (syntax),
 * -EINVAL (refused construct) or -ENOMEM; *e is filled on any error
 * (e may be NULL). */
int cfgtree_parse_yaml(const char *buf, size_t len, struct cfg_node **root,
		       struct cfgtree_error *e);

/* Checks that buf is exactly one JSON value, strictly (cJSON), without
 * building anything. Returns 0 or -EBADMSG with *e filled (position
 * computed from cJSON's error offset). */
int cfgtree_check_json(const char *buf, size_t len, struct cfgtree_error *e);

/* Parses buf as JSON (cJSON) and builds the tree (never NULL on success).
 * Returns 0, -EBADMSG (syntax), -EINVAL (duplicate key, too deep) or
 * -ENOMEM; *e is filled on any error (e may be NULL). */
int cfgtree_parse_json(const char *buf, size_t len, struct cfg_node **root,
		       struct cfgtree_error *e);

/* Frees the node and everything below it; NULL is a no-op. */
void cfgtree_free(struct cfg_node *node);

/* The value of key in map, or NULL when map is not a map or lacks the key.
 * The result is borrowed from map. */
const struct cfg_node *cfgtree_get(const struct cfg_node *map, const char *key);

/* The pair whose key is key, or NULL (borrowed, as above). */
const struct cfg_pair *cfgtree_get_pair(const struct cfg_node *map, const char *key);

/* "map", "list" or "scalar". */
const char *cfgtree_kind_name(enum cfg_kind kind);

#endif
