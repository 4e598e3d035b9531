#include "cfgtree.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "errbuf.h"

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

static void seterr(struct cfgtree_error *e, unsigned line, unsigned column, bool syntax,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void seterr(struct cfgtree_error *e, unsigned line, unsigned column, bool syntax,
		   const char *fmt, ...)
{
	if (!e)
		return;
	e->line = line;
	e->column = column;
	e->syntax = syntax;
	va_list ap;
	va_start(ap, fmt);
	errbuf_vput(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

const char *cfgtree_kind_name(enum cfg_kind kind)
{
	switch (kind) {
	case CFG_SCALAR:
		return "scalar";
	case CFG_SEQ:
		return "list";
	case CFG_MAP:
		return "map";
	}
	return "?";
}

void cfgtree_free(struct cfg_node *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->n_items; i++)
		cfgtree_free(node->items[i]);
	free(node->items);
	for (size_t i = 0; i < node->n_pairs; i++) {
		cfgtree_free(node->pairs[i].key);
		cfgtree_free(node->pairs[i].value);
	}
	free(node->pairs);
	free(node->text);
	free(node);
}

static struct cfg_node *node_new(enum cfg_kind kind, unsigned line, unsigned column)
{
	struct cfg_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->kind = kind;
	n->line = line;
	n->column = column;
	return n;
}

static struct cfg_node *scalar_new(const char *text, size_t len, bool quoted, unsigned line,
				   unsigned column)
{
	struct cfg_node *n = node_new(CFG_SCALAR, line, column);
	if (!n)
		return NULL;
	n->text = malloc(len + 1);
	if (!n->text) {
		free(n);
		return NULL;
	}
	if (len)
		memcpy(n->text, text, len);
	n->text[len] = '\0';
	n->len = len;
	n->quoted = quoted;
	return n;
}

/* Makes room for one more item or pair. */
static int grow(struct cfg_node *n)
{
	size_t used = n->kind == CFG_SEQ ? n->n_items : n->n_pairs;
	if (used < n->cap)
		return 0;
	size_t cap = n->cap ? n->cap * 2 : 4;
	if (n->kind == CFG_SEQ) {
		struct cfg_node **items = reallocarray(n->items, cap, sizeof(*items));
		if (!items)
			return -ENOMEM;
		n->items = items;
	} else {
		struct cfg_pair *pairs = reallocarray(n->pairs, cap, sizeof(*pairs));
		if (!pairs)
			return -ENOMEM;
		n->pairs = pairs;
	}
	n->cap = cap;
	return 0;
}

static const struct cfg_pair *find_key(const struct cfg_node *map, const char *key, size_t len)
{
	for (size_t i = 0; i < map->n_pairs; i++) {
		const struct cfg_node *k = map->pairs[i].key;
		if (k->len == len && memcmp(k->text, key, len) == 0)
			return &map->pairs[i];
	}
	return NULL;
}

const struct cfg_pair *cfgtree_get_pair(const struct cfg_node *map, const char *key)
{
	if (!map || !key || map->kind != CFG_MAP)
		return NULL;
	return find_key(map, key, strlen(key));
}

const struct cfg_node *cfgtree_get(const struct cfg_node *map, const char *key)
{
	const struct cfg_pair *p = cfgtree_get_pair(map, key);
	return p ? p->value : NULL;
}

/* Adds key (a scalar, ownership taken on success) to map with no value yet. */
static int map_add_key(struct cfg_node *map, struct cfg_node *key, struct cfgtree_error *e)
{
	if (key->kind != CFG_SCALAR) {
		seterr(e, key->line, key->column, false, "a map key must be a scalar, not a %s",
		       cfgtree_kind_name(key->kind));
		return -EINVAL;
	}
	const struct cfg_pair *dup = find_key(map, key->text, key->len);
	if (dup) {
		if (dup->key->line)
			seterr(e, key->line, key->column, false,
			       "duplicate key \"%.64s\" (first at line %u)", key->text,
			       dup->key->line);
		else
			seterr(e, key->line, key->column, false, "duplicate key \"%.64s\"",
			       key->text);
		return -EINVAL;
	}
	if (grow(map) < 0)
		return -ENOMEM;
	map->pairs[map->n_pairs].key = key;
	map->pairs[map->n_pairs].value = NULL;
	map->n_pairs++;
	return 0;
}

static int seq_add(struct cfg_node *seq, struct cfg_node *item)
{
	if (grow(seq) < 0)
		return -ENOMEM;
	seq->items[seq->n_items++] = item;
	return 0;
}

/* Position of byte offset off in buf, both 1-based. */
static void position(const char *buf, size_t len, size_t off, unsigned *line, unsigned *column)
{
	unsigned l = 1;
	size_t bol = 0;
	if (off > len)
		off = len;
	for (size_t i = 0; i < off; i++) {
		if (buf[i] == '\n') {
			l++;
			bol = i + 1;
		}
	}
	*line = l;
	*column = (unsigned)(off - bol + 1);
}

/* ---- YAML ---- */

struct ybuild {
	struct cfg_node *root;
	struct cfg_node *stack[CFGTREE_MAX_DEPTH];
	size_t depth;
	unsigned documents;
};

/* Hands node to its parent (or makes it the root); on error the caller
 * still owns node. */
static int yb_attach(struct ybuild *b, struct cfg_node *node, struct cfgtree_error *e)
{
	if (b->depth == 0) {
		b->root = node;
		return 0;
	}
	struct cfg_node *parent = b->stack[b->depth - 1];
	if (parent->kind == CFG_SEQ) {
		if (seq_add(parent, node) < 0) {
			seterr(e, node->line, node->column, false, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	if (parent->n_pairs > 0 && !parent->pairs[parent->n_pairs - 1].value) {
		parent->pairs[parent->n_pairs - 1].value = node;
		return 0;
	}
	int r = map_add_key(parent, node, e);
	if (r == -ENOMEM)
		seterr(e, node->line, node->column, false, "out of memory");
	return r;
}

/* Checks an explicit tag; sets *str when it makes the scalar a string. */
static int yb_tag(const unsigned char *tag, const yaml_mark_t *m, bool scalar, bool *str,
		  struct cfgtree_error *e)
{
	if (!tag)
		return 0;
	const char *t = (const char *)tag;
	if (scalar && (strcmp(t, "!") == 0 || strcmp(t, YAML_TAG_PREFIX "str") == 0)) {
		*str = true;
		return 0;
	}
	if (strncmp(t, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0)
		return 0;
	seterr(e, (unsigned)m->line + 1, (unsigned)m->column + 1, false,
	       "unsupported tag \"%.64s\" (only YAML's standard tags such as !!str are allowed)",
	       t);
	return -EINVAL;
}

static int yb_push(struct ybuild *b, struct cfg_node *node, struct cfgtree_error *e)
{
	if (b->depth == CFGTREE_MAX_DEPTH) {
		seterr(e, node->line, node->column, false, "nested deeper than %d levels",
		       CFGTREE_MAX_DEPTH);
		cfgtree_free(node);
		return -EINVAL;
	}
	int r = yb_attach(b, node, e);
	if (r < 0) {
		cfgtree_free(node);
		return r;
	}
	b->stack[b->depth++] = node;
	return 0;
}

/* Handles one event; returns 1 at the end of the stream, 0 to go on, or a
 * negative errno. */
static int yb_event(struct ybuild *b, const yaml_event_t *ev, struct cfgtree_error *e)
{
	const yaml_mark_t *m = &ev->start_mark;
	unsigned line = (unsigned)m->line + 1, column = (unsigned)m->column + 1;
	struct cfg_node *n;
	bool str = false;
	int r;

	switch (ev->type) {
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (++b->documents > 1) {
			seterr(e, line, column, false,
			       "more than one YAML document (---): give exactly one");
			return -EINVAL;
		}
		return 0;
	case YAML_ALIAS_EVENT:
		seterr(e, line, column, false,
		       "aliases (*%.64s) are not supported: write the value out",
		       (const char *)ev->data.alias.anchor);
		return -EINVAL;
	case YAML_SCALAR_EVENT:
		r = yb_tag(ev->data.scalar.tag, m, true, &str, e);
		if (r < 0)
			return r;
		n = scalar_new((const char *)ev->data.scalar.value, ev->data.scalar.length,
			       str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE, line,
			       column);
		if (!n) {
			seterr(e, line, column, false, "out of memory");
			return -ENOMEM;
		}
		r = yb_attach(b, n, e);
		if (r < 0)
			cfgtree_free(n);
		return r;
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT:
		r = yb_tag(ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
								 : ev->data.mapping_start.tag,
			   m, false, &str, e);
		if (r < 0)
			return r;
		n = node_new(ev->type == YAML_SEQUENCE_START_EVENT ? CFG_SEQ : CFG_MAP, line,
			     column);
		if (!n) {
			seterr(e, line, column, false, "out of memory");
			return -ENOMEM;
		}
		return yb_push(b, n, e);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth > 0)
			b->depth--;
		return 0;
	default:
		return 0;
	}
}

static int yaml_failure(const yaml_parser_t *p, const char *buf, size_t len,
			struct cfgtree_error *e)
{
	unsigned line, column;
	const char *problem = p->problem ? p->problem : "unknown error";

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		seterr(e, 0, 0, false, "out of memory");
		return -ENOMEM;
	case YAML_READER_ERROR:
		position(buf, len, p->problem_offset, &line, &column);
		if (p->problem_value >= 0)
			seterr(e, line, column, true, "%s (byte 0x%02x)", problem,
			       (unsigned)p->problem_value);
		else
			seterr(e, line, column, true, "%s", problem);
		return -EBADMSG;
	default:
		line = (unsigned)p->problem_mark.line + 1;
		column = (unsigned)p->problem_mark.column + 1;
		/* The most common one deserves plain words. */
		if (p->problem_mark.index < len && buf[p->problem_mark.index] == '\t')
			seterr(e, line, column, true, "a tab: YAML indents with spaces only");
		else if (p->context)
			seterr(e, line, column, true, "%s %s", problem, p->context);
		else
			seterr(e, line, column, true, "%s", problem);
		return -EBADMSG;
	}
}

int cfgtree_parse_yaml(const char *buf, size_t len, struct cfg_node **root, struct cfgtree_error *e)
{
	if ((!buf && len) || !root) {
		seterr(e, 0, 0, false, "invalid argument");
		return -EINVAL;
	}
	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		seterr(e, 0, 0, false, "out of memory");
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)(buf ? buf : ""), len);

	struct ybuild b = {0};
	int r = 0;
	while (r == 0) {
		yaml_event_t ev;
		if (!yaml_parser_parse(&parser, &ev)) {
			r = yaml_failure(&parser, buf, len, e);
			break;
		}
		r = yb_event(&b, &ev, e);
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (r < 0) {
		cfgtree_free(b.root);
		return r;
	}
	*root = b.root;
	return 0;
}

/* ---- JSON ---- */

/* cJSON's parse_string reports one byte past where it failed: past a key
 * that does not start with '"', past the opening quote of a string that
 * never ends. Finds which, from the context of off - 1: sets *why and
 * returns the offset of the culprit, or returns off unchanged. */
static size_t json_string_culprit(const char *buf, size_t len, size_t off, const char **why)
{
	char stack[CFGTREE_MAX_DEPTH];
	size_t depth = 0, p = off - 1;
	bool in_str = false, esc = false;
	char last = '\0'; /* the last significant character outside strings */
	if (off == 0 || off > len || buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' ||
	    buf[p] == '\n')
		return off;
	for (size_t i = 0; i < p; i++) {
		char c = buf[i];
		if (in_str) {
			in_str = esc || c != '"';
			esc = !esc && c == '\\';
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			if (depth == sizeof(stack))
				return off;
			stack[depth++] = c;
		} else if ((c == '}' || c == ']') && depth > 0) {
			depth--;
		}
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			last = c;
	}
	if (in_str)
		return off;
	if (buf[p] == '"') {
		*why = "unterminated string";
		return p;
	}
	if (depth > 0 && stack[depth - 1] == '{' && (last == '{' || last == ',')) {
		*why = "expected a quoted key";
		return p;
	}
	return off;
}

/* Reports the JSON syntax error at byte offset off of buf (len bytes);
 * why, when known, is the reason. */
static int json_failure(const char *buf, size_t len, size_t off, const char *why, const char *what,
			struct cfgtree_error *e)
{
	unsigned line, column;
	position(buf, len, off, &line, &column);
	if (why && off < len && buf[off] >= 0x20 && buf[off] < 0x7f && buf[off] != '"') {
		seterr(e, line, column, true, "%s, got '%c'", why, buf[off]);
		return -EBADMSG;
	}
	if (why) {
		seterr(e, line, column, true, "%s", why);
		return -EBADMSG;
	}
	if (off >= len) {
		seterr(e, line, column, true, "unexpected end of input%s", what);
		return -EBADMSG;
	}
	unsigned char c = (unsigned char)buf[off];
	char near[24];
	size_t k = 0;
	for (size_t i = off; i < len && k < 16 && buf[i] != '\n'; i++)
		near[k++] = (buf[i] >= 0x20 && buf[i] < 0x7f) ? buf[i] : '?';
	near[k] = '\0';
	if (c >= 0x20 && c < 0x7f)
		seterr(e, line, column, true, "unexpected '%c'%s (near \"%s\")", c, what, near);
	else
		seterr(e, line, column, true, "unexpected byte 0x%02x%s", c, what);
	return -EBADMSG;
}

/* What strict JSON refuses in strings and cJSON lets through: a control
 * character (JSON wants it escaped; libyaml would fold a raw line break
 * into a space, so the same text would mean one thing in a file, another
 * in a flag) and an escaped NUL (cJSON's strings end there: the rest would
 * be dropped silently). The offset of the first one in buf with *why, or
 * len. */
static size_t json_bad_string(const char *buf, size_t len, const char **why)
{
	bool in_str = false, esc = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (!in_str) {
			in_str = c == '"';
		} else if (c < 0x20) {
			*why = "unescaped control character";
			return i;
		} else if (esc) {
			esc = false;
			if (c == 'u' && len - i > 4 && memcmp(buf + i + 1, "0000", 4) == 0) {
				*why = "\\u0000 (NUL)";
				return i - 1;
			}
		} else if (c == '\\') {
			esc = true;
		} else if (c == '"') {
			in_str = false;
		}
	}
	return len;
}

/* Parses strictly: one value, then only whitespace to the end. */
static int json_parse(const char *buf, size_t len, cJSON **out, struct cfgtree_error *e)
{
	if (!buf && len) {
		seterr(e, 0, 0, false, "invalid argument");
		return -EINVAL;
	}
	/* A NUL-terminated copy parsed with its terminator, so that the end of
	 * the input is a position of its own in cJSON's error offset (without
	 * it cJSON reports the last byte instead). */
	char *copy = malloc(len + 1);
	if (!copy) {
		seterr(e, 0, 0, false, "out of memory");
		return -ENOMEM;
	}
	if (len)
		memcpy(copy, buf, len);
	copy[len] = '\0';
	const char *end = NULL;
	/* cJSON says NULL both for bad syntax and for a failed allocation;
	 * malloc's errno tells them apart. */
	errno = 0;
	cJSON *j = cJSON_ParseWithLengthOpts(copy, len + 1, &end, 0);
	if (!j && errno == ENOMEM) {
		free(copy);
		seterr(e, 0, 0, false, "out of memory");
		return -ENOMEM;
	}
	if (!j) {
		size_t off = end && end >= copy ? (size_t)(end - copy) : 0;
		const char *why = NULL;
		free(copy);
		off = json_string_culprit(buf, len, off, &why);
		return json_failure(buf, len, off, why, "", e);
	}
	size_t off = end ? (size_t)(end - copy) : len;
	while (off < len && buf[off] != '\0' && strchr(" \t\r\n", buf[off]))
		off++;
	free(copy);
	if (off < len) {
		cJSON_Delete(j);
		return json_failure(buf, len, off, NULL, " after the JSON value", e);
	}
	const char *why = NULL;
	if ((off = json_bad_string(buf, len, &why)) < len) {
		unsigned line, column;
		cJSON_Delete(j);
		position(buf, len, off, &line, &column);
		if (buf[off] == '\\')
			seterr(e, line, column, true, "%s in a string is not supported", why);
		else
			seterr(e, line, column, true,
			       "%s 0x%02x in a string (write \\n, \\t or \\u00XX)", why,
			       (unsigned char)buf[off]);
		return -EBADMSG;
	}
	*out = j;
	return 0;
}

int cfgtree_check_json(const char *buf, size_t len, struct cfgtree_error *e)
{
	cJSON *j = NULL;
	int r = json_parse(buf, len, &j, e);
	cJSON_Delete(j);
	return r;
}

static struct cfg_node *json_number(double v)
{
	char text[64];
	int n;
	/* Integral values as integers: 2838 must stay "2838", not "2838.0". */
	if (v > -9.0e18 && v < 9.0e18 && (double)(long long)v == v)
		n = snprintf(text, sizeof(text), "%lld", (long long)v);
	else
		n = snprintf(text, sizeof(text), "%.17g", v);
	if (n < 0 || (size_t)n >= sizeof(text))
		return NULL;
	return scalar_new(text, (size_t)n, false, 0, 0);
}

static int from_json(const cJSON *j, unsigned depth, struct cfg_node **out,
		     struct cfgtree_error *e);

static int from_json_object(const cJSON *j, unsigned depth, struct cfg_node *map,
			    struct cfgtree_error *e)
{
	for (const cJSON *c = j->child; c; c = c->next) {
		const char *k = c->string ? c->string : "";
		struct cfg_node *key = scalar_new(k, strlen(k), true, 0, 0);
		if (!key)
			return -ENOMEM;
		int r = map_add_key(map, key, e);
		if (r < 0) {
			cfgtree_free(key);
			return r;
		}
		r = from_json(c, depth + 1, &map->pairs[map->n_pairs - 1].value, e);
		if (r < 0)
			return r;
	}
	return 0;
}

static int from_json_array(const cJSON *j, unsigned depth, struct cfg_node *seq,
			   struct cfgtree_error *e)
{
	for (const cJSON *c = j->child; c; c = c->next) {
		struct cfg_node *item = NULL;
		int r = from_json(c, depth + 1, &item, e);
		if (r < 0)
			return r;
		r = seq_add(seq, item);
		if (r < 0) {
			cfgtree_free(item);
			return r;
		}
	}
	return 0;
}

static int from_json(const cJSON *j, unsigned depth, struct cfg_node **out, struct cfgtree_error *e)
{
	struct cfg_node *n = NULL;
	int r = 0;

	if (cJSON_IsString(j)) {
		n = scalar_new(j->valuestring, strlen(j->valuestring), true, 0, 0);
	} else if (cJSON_IsNumber(j)) {
		n = json_number(j->valuedouble);
	} else if (cJSON_IsBool(j)) {
		n = cJSON_IsTrue(j) ? scalar_new("true", 4, false, 0, 0)
				    : scalar_new("false", 5, false, 0, 0);
	} else if (cJSON_IsNull(j)) {
		n = scalar_new("null", 4, false, 0, 0);
	} else if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
		if (depth >= CFGTREE_MAX_DEPTH) {
			seterr(e, 0, 0, false, "nested deeper than %d levels", CFGTREE_MAX_DEPTH);
			return -EINVAL;
		}
		n = node_new(cJSON_IsObject(j) ? CFG_MAP : CFG_SEQ, 0, 0);
		if (n)
			r = cJSON_IsObject(j) ? from_json_object(j, depth, n, e)
					      : from_json_array(j, depth, n, e);
	} else {
		seterr(e, 0, 0, false, "unsupported JSON value");
		return -EINVAL;
	}
	if (!n || r == -ENOMEM) {
		cfgtree_free(n);
		seterr(e, 0, 0, false, "out of memory");
		return -ENOMEM;
	}
	if (r < 0) {
		cfgtree_free(n);
		return r;
	}
	*out = n;
	return 0;
}

int cfgtree_parse_json(const char *buf, size_t len, struct cfg_node **root, struct cfgtree_error *e)
{
	if (!root) {
		seterr(e, 0, 0, false, "invalid argument");
		return -EINVAL;
	}
	cJSON *j = NULL;
	int r = json_parse(buf, len, &j, e);
	if (r < 0)
		return r;
	struct cfg_node *n = NULL;
	r = from_json(j, 0, &n, e);
	cJSON_Delete(j);
	if (r < 0)
		return r;
	*root = n;
	return 0;
}
