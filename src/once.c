#include "once.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing, linear probing, kept at most half full. */
struct once {
	char **slots;
	size_t cap, n;
};

#define MIN_CAP 64
/* Keys that churn (device paths come and go) must not grow the set for
 * good: past this many it starts again, and a warning may then repeat. */
#define MAX_KEYS 4096

struct once *once_new(void)
{
	struct once *o = calloc(1, sizeof(*o));
	if (o && !(o->slots = calloc(MIN_CAP, sizeof(*o->slots)))) {
		free(o);
		return NULL;
	}
	if (o)
		o->cap = MIN_CAP;
	return o;
}

void once_free(struct once *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->cap; i++)
		free(o->slots[i]);
	free(o->slots);
	free(o);
}

static uint64_t hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: keys are ours, not hostile to it */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static char **slot(char **slots, size_t cap, const char *key)
{
	size_t i = (size_t)hash(key) & (cap - 1);
	while (slots[i] && strcmp(slots[i], key) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static bool grow(struct once *o)
{
	size_t cap = o->cap * 2;
	char **slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < o->cap; i++)
		if (o->slots[i])
			*slot(slots, cap, o->slots[i]) = o->slots[i];
	free(o->slots);
	o->slots = slots;
	o->cap = cap;
	return true;
}

bool once_first(struct once *o, const char *key)
{
	if (!o)
		return true;
	char **s = slot(o->slots, o->cap, key);
	if (*s)
		return false;
	if (o->n >= MAX_KEYS) {
		for (size_t i = 0; i < o->cap; i++) {
			free(o->slots[i]);
			o->slots[i] = NULL;
		}
		o->n = 0;
		s = slot(o->slots, o->cap, key);
	}
	if (2 * (o->n + 1) > o->cap) {
		if (!grow(o))
			return true;
		s = slot(o->slots, o->cap, key);
	}
	if ((*s = strdup(key)))
		o->n++;
	return true;
}
