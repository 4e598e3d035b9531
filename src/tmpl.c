#include "tmpl.h"

#include "errbuf.h"
#include "instance.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum ph {
	PH_ID,
	PH_INDEX,
	PH_SLOT,
	PH_RESOURCE,
	PH_HOST,
	PH_CONTAINER,
	PH_HOSTS,
	PH_CONTAINERS,
	PH_FACT
};

struct name {
	const char *name;
	enum ph ph;
	const char *suffix; /* PH_FACT: the dev_env suffix; USB groups only */
	bool takes_index;
};

/* In the order error messages list them. */
static const struct name names[] = {
    {"id", PH_ID, NULL, false},
    {"index", PH_INDEX, NULL, false},
    {"slot", PH_SLOT, NULL, false},
    {"resource", PH_RESOURCE, NULL, false},
    {"host", PH_HOST, NULL, true},
    {"container", PH_CONTAINER, NULL, true},
    {"hosts", PH_HOSTS, NULL, false},
    {"containers", PH_CONTAINERS, NULL, false},
    {"bus", PH_FACT, "BUS", false},
    {"vendor", PH_FACT, "VENDOR", false},
    {"product", PH_FACT, "PRODUCT", false},
    {"serial", PH_FACT, "SERIAL", false},
    {"port", PH_FACT, "PORT", false},
    {"tty", PH_FACT, "TTY", false},
    {"hidraw", PH_FACT, "HIDRAW", false},
    {"video", PH_FACT, "VIDEO", false},
    {"sound", PH_FACT, "SOUND", false},
    {"input", PH_FACT, "INPUT", false},
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

/* Longer than any known name: edit distances are computed on a stack row. */
#define NAME_MAX_LEN 15
/* How much of a placeholder an error message quotes. */
#define QUOTE_MAX 40

/* One piece of a template: literal bytes, or a placeholder. */
struct tok {
	size_t off;	 /* where it starts in the text */
	size_t end;	 /* where the next one starts */
	const char *lit; /* literal bytes, NULL for a placeholder */
	size_t lit_len;
	const char *name; /* placeholder name, not NUL-terminated */
	size_t name_len;
	bool has_index;
	unsigned index;
};

/* Writes a message into err (may be NULL); a message too long for errlen
 * is cut and ends in "..." -- losing its tail is all truncation can do to
 * an error text. Returns -EINVAL for the caller to pass on. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vput(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* A placeholder with c_len bytes between its braces, quoted in a message:
 * how many of its bytes to print, and the ellipsis after them. */
static int quote_len(size_t c_len)
{
	return c_len + 2 > QUOTE_MAX ? QUOTE_MAX : (int)(c_len + 2);
}

static const char *quote_tail(size_t c_len)
{
	return c_len + 2 > QUOTE_MAX ? "..." : "";
}

/* Parses the content c (c_len bytes) of the placeholder "{...}" at offset
 * off into t: "name" or "name[N]". */
static int parse_placeholder(const char *c, size_t c_len, size_t off, struct tok *t, char *err,
			     size_t errlen)
{
	const char *open = memchr(c, '[', c_len);
	size_t rest, k = 0;
	unsigned v = 0;

	t->name = c;
	t->name_len = open ? (size_t)(open - c) : c_len;
	if (!open)
		return 1;
	rest = c_len - t->name_len - 1;
	while (k < rest && k < 4 && open[1 + k] >= '0' && open[1 + k] <= '9')
		v = v * 10 + (unsigned)(open[1 + k++] - '0');
	if (k == 0 || k > 3 || k == rest || open[1 + k] != ']')
		return fail(
		    err, errlen,
		    "placeholder \"%.*s%s\" at offset %zu: index must be a number from 0 to 999",
		    quote_len(c_len), c - 1, quote_tail(c_len), off);
	if (k + 1 != rest)
		return fail(err, errlen,
			    "placeholder \"%.*s%s\" at offset %zu: expected \"}\" after \"]\"",
			    quote_len(c_len), c - 1, quote_tail(c_len), off);
	t->has_index = true;
	t->index = v;
	return 1;
}

/* The token at text + pos into t. Returns 1, 0 at the end of the text, or
 * -EINVAL for a syntax error (described in err). */
static int next_token(const char *text, size_t pos, struct tok *t, char *err, size_t errlen)
{
	const char *p = text + pos;
	size_t n;

	memset(t, 0, sizeof(*t));
	t->off = pos;
	if (*p == '\0')
		return 0;
	if ((*p == '{' || *p == '}') && p[1] == *p) {
		t->lit = p;
		t->lit_len = 1;
		t->end = pos + 2;
		return 1;
	}
	if (*p == '}')
		return fail(err, errlen,
			    "lone \"}\" at offset %zu (write \"}}\" for a literal brace)", pos);
	if (*p != '{') {
		t->lit = p;
		t->lit_len = strcspn(p, "{}");
		t->end = pos + t->lit_len;
		return 1;
	}
	n = strcspn(p + 1, "{}");
	if (p[1 + n] == '\0')
		return fail(err, errlen,
			    "unterminated \"{\" at offset %zu (write \"{{\" for a literal brace)",
			    pos);
	if (p[1 + n] == '{')
		return fail(err, errlen,
			    "nested \"{\" at offset %zu (write \"{{\" for a literal brace)",
			    pos + 1 + n);
	if (n == 0)
		return fail(
		    err, errlen,
		    "empty placeholder \"{}\" at offset %zu (write \"{{}}\" for literal braces)",
		    pos);
	t->end = pos + n + 2;
	return parse_placeholder(p + 1, n, pos, t, err, errlen);
}

static const struct name *lookup(const char *name, size_t len)
{
	for (size_t i = 0; i < N_NAMES; i++)
		if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
			return &names[i];
	return NULL;
}

static bool known_for(const struct name *nm, enum tmpl_kind kind)
{
	return nm->ph != PH_FACT || kind == TMPL_USB;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Levenshtein distance between a and b, ignoring ASCII case; b is a known
 * name (at most NAME_MAX_LEN bytes). */
static size_t edit_distance(const char *a, size_t an, const char *b, size_t bn)
{
	size_t row[NAME_MAX_LEN + 1];

	if (bn > NAME_MAX_LEN)
		return SIZE_MAX;
	for (size_t j = 0; j <= bn; j++)
		row[j] = j;
	for (size_t i = 1; i <= an; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (size_t j = 1; j <= bn; j++) {
			size_t up = row[j];
			size_t best = diag + (lower(a[i - 1]) != lower(b[j - 1]));

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			diag = up;
			row[j] = best;
		}
	}
	return row[bn];
}

/* The known name for kind closest to name, within a distance of 2; NULL
 * when there is none. */
static const char *suggest(const char *name, size_t len, enum tmpl_kind kind)
{
	const char *best = NULL;
	size_t best_d = 3;

	if (len == 0)
		return NULL;
	for (size_t i = 0; i < N_NAMES; i++) {
		size_t kn = strlen(names[i].name);

		if (!known_for(&names[i], kind) || len > kn + 2 || kn > len + 2)
			continue;
		size_t d = edit_distance(name, len, names[i].name, kn);
		if (d < best_d) {
			best_d = d;
			best = names[i].name;
		}
	}
	return best;
}

/* The names known for kind, joined with ", ", into buf (always fits: the
 * table is fixed). */
static void known_list(enum tmpl_kind kind, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_NAMES; i++) {
		if (!known_for(&names[i], kind))
			continue;
		int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", names[i].name);
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0';
			return;
		}
		used += (size_t)n;
	}
}

/* Checks that placeholder t names something kind knows. */
static int check_name(const struct tok *t, enum tmpl_kind kind, char *err, size_t errlen)
{
	const struct name *nm = lookup(t->name, t->name_len);
	size_t c_len = t->end - t->off - 2;
	const char *raw = t->name - 1;

	if (!nm) {
		const char *hint = suggest(t->name, t->name_len, kind);
		char known[256];

		known_list(kind, known, sizeof(known));
		return fail(
		    err, errlen, "unknown placeholder \"%.*s%s\" at offset %zu%s%s%s (known: %s)",
		    quote_len(c_len), raw, quote_tail(c_len), t->off,
		    hint ? ", did you mean \"{" : "", hint ? hint : "", hint ? "}\"?" : "", known);
	}
	if (!known_for(nm, kind))
		return fail(err, errlen,
			    "placeholder \"%.*s%s\" at offset %zu is only known for usb groups",
			    quote_len(c_len), raw, quote_tail(c_len), t->off);
	if (t->has_index && !nm->takes_index)
		return fail(
		    err, errlen,
		    "placeholder \"%.*s%s\" at offset %zu: only host and container take an index",
		    quote_len(c_len), raw, quote_tail(c_len), t->off);
	return 0;
}

int tmpl_check(const char *text, enum tmpl_kind kind, char *err, size_t errlen)
{
	struct tok t;
	size_t pos = 0;
	int r;

	if (err && errlen > 0)
		err[0] = '\0';
	if (!text)
		return fail(err, errlen, "no template");
	if (kind != TMPL_PATHS && kind != TMPL_USB && kind != TMPL_VIRTUAL)
		return fail(err, errlen, "unknown group kind %d", (int)kind);
	while ((r = next_token(text, pos, &t, err, errlen)) > 0) {
		if (!t.lit && (r = check_name(&t, kind, err, errlen)) < 0)
			return r;
		pos = t.end;
	}
	return r;
}

/* A growable, always NUL-terminated output buffer. */
struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const char *s, size_t n)
{
	if (n > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	size_t need = b->len + n + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (cap < need)
			cap = cap > SIZE_MAX / 2 ? need : cap * 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static int buf_str(struct buf *b, const char *s)
{
	return s ? buf_add(b, s, strlen(s)) : 0;
}

static int buf_uint(struct buf *b, unsigned long long v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%llu", v);

	if (n < 0 || (size_t)n >= sizeof(num))
		return -EINVAL;
	return buf_add(b, num, (size_t)n);
}

static size_t n_nodes(const struct dev_instance *inst)
{
	return inst && inst->nodes ? inst->n_nodes : 0;
}

static const char *node_path(const struct dev_instance *inst, size_t i, bool host)
{
	if (i >= n_nodes(inst))
		return NULL;
	return host ? inst->nodes[i].host_path : inst->nodes[i].container_path;
}

static int add_joined(struct buf *b, const struct dev_instance *inst, bool host)
{
	int r = 0;

	for (size_t i = 0; i < n_nodes(inst) && r == 0; i++) {
		if (i > 0)
			r = buf_add(b, ",", 1);
		if (r == 0)
			r = buf_str(b, node_path(inst, i, host));
	}
	return r;
}

static const char *fact(const struct dev_instance *inst, const char *suffix)
{
	if (!inst || !inst->env)
		return NULL;
	for (size_t i = 0; i < inst->n_env; i++)
		if (inst->env[i].suffix && strcmp(inst->env[i].suffix, suffix) == 0)
			return inst->env[i].value;
	return NULL;
}

static int expand_one(struct buf *b, const struct tok *t, const struct tmpl_ctx *ctx)
{
	const struct name *nm = lookup(t->name, t->name_len);
	const char *slash;

	if (!nm || (t->has_index && !nm->takes_index))
		return -EINVAL;
	switch (nm->ph) {
	case PH_ID:
		return buf_str(b, ctx->id);
	case PH_INDEX:
		return buf_uint(b, ctx->index);
	case PH_SLOT:
		return buf_uint(b, ctx->slot);
	case PH_RESOURCE:
		slash = ctx->resource ? strrchr(ctx->resource, '/') : NULL;
		return buf_str(b, slash ? slash + 1 : ctx->resource);
	case PH_HOST:
	case PH_CONTAINER:
		return buf_str(b, node_path(ctx->inst, t->index, nm->ph == PH_HOST));
	case PH_HOSTS:
	case PH_CONTAINERS:
		return add_joined(b, ctx->inst, nm->ph == PH_HOSTS);
	case PH_FACT:
		return buf_str(b, fact(ctx->inst, nm->suffix));
	}
	return -EINVAL;
}

int tmpl_expand(const char *text, const struct tmpl_ctx *ctx, char **out)
{
	struct buf b = {0};
	struct tok t;
	size_t pos = 0;
	int r;

	if (!text || !ctx || !out)
		return -EINVAL;
	while ((r = next_token(text, pos, &t, NULL, 0)) > 0) {
		r = t.lit ? buf_add(&b, t.lit, t.lit_len) : expand_one(&b, &t, ctx);
		if (r < 0)
			break;
		pos = t.end;
	}
	if (r == 0)
		r = buf_add(&b, "", 0);
	if (r < 0) {
		free(b.p);
		return r;
	}
	*out = b.p;
	return 0;
}
