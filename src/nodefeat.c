#include "nodefeat.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "nfd.h"

struct features {
	char *path;
	char *written; /* the lines last written, joined */
};

struct features *features_new(const char *path)
{
	struct features *f = calloc(1, sizeof(*f));
	if (f && !(f->path = strdup(path))) {
		free(f);
		return NULL;
	}
	return f;
}

void features_free(struct features *f)
{
	if (!f)
		return;
	free(f->path);
	free(f->written);
	free(f);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted lines into *lines (n_lines long); false on ENOMEM. */
static bool make_lines(struct resource *const *res, size_t n, uint32_t *ids, size_t n_ids,
		       char ***lines, size_t *n_lines)
{
	char **l = calloc(n + n_ids + 1, sizeof(*l));
	size_t k = 0;
	bool oom = !l;
	for (size_t r = 0; !oom && r < n; r++) {
		uint64_t healthy = resource_healthy(res[r]);
		if (!healthy)
			continue;
		oom = asprintf(&l[k], "usbdp.%s=%llu", resource_name(res[r]),
			       (unsigned long long)healthy) < 0;
		k += !oom;
	}
	qsort(ids, n_ids, sizeof(*ids), cmp_u32);
	for (size_t i = 0; !oom && i < n_ids;) {
		size_t j = i;
		while (j < n_ids && ids[j] == ids[i])
			j++;
		oom = asprintf(&l[k], "usbdp.usb-%04x-%04x=%zu", ids[i] >> 16, ids[i] & 0xffff,
			       j - i) < 0;
		k += !oom;
		i = j;
	}
	if (l)
		qsort(l, k, sizeof(*l), cmp_str);
	*lines = l;
	*n_lines = k;
	return !oom;
}

static char *join(char *const *lines, size_t n)
{
	char *joined = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&joined, &len);
	if (!f)
		return NULL;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", lines[i]);
	if (fclose(f) != 0) {
		free(joined);
		return NULL;
	}
	return joined;
}

void features_update(struct features *f, struct resource *const *res, size_t n,
		     const uint32_t *usb_ids, size_t n_ids)
{
	if (!f)
		return;
	uint32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof(*ids));
	char **lines = NULL;
	size_t k = 0;
	char *joined = NULL;
	bool ok = ids != NULL;
	if (ok) {
		memcpy(ids, usb_ids, n_ids * sizeof(*ids));
		ok = make_lines(res, n, ids, n_ids, &lines, &k) && (joined = join(lines, k));
	}
	if (!ok) {
		log_warn("cannot write the NFD feature file: out of memory");
	} else if (!f->written || strcmp(joined, f->written) != 0) {
		int e = nfd_write(f->path, (const char *const *)lines, k);
		if (e < 0) {
			log_warn("cannot write the NFD feature file path=%s err=\"%s\"", f->path,
				 strerror(-e));
		} else {
			log_debug("NFD feature file written path=%s features=%zu", f->path, k);
			free(f->written);
			f->written = joined;
			joined = NULL;
		}
	}
	free(joined);
	for (size_t i = 0; lines && i < k; i++)
		free(lines[i]);
	free(lines);
	free(ids);
}
