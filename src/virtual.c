#include "virtual.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int one(const struct cfg_group *g, const char *node, unsigned i, struct dev_instance *inst)
{
	const struct cfg_virtual *v = g->virt;
	if (asprintf(&inst->key, "v%06u", i) < 0) {
		inst->key = NULL;
		return -ENOMEM;
	}
	if (!(inst->ids = calloc(g->count, sizeof(*inst->ids))))
		return -ENOMEM;
	inst->count = g->count;
	for (unsigned j = 0; j < g->count; j++) {
		int n = g->count > 1
			    ? asprintf(&inst->ids[j], "%s-%s-%u-%u", v->id_prefix, node, i, j)
			    : asprintf(&inst->ids[j], "%s-%s-%u", v->id_prefix, node, i);
		if (n < 0) {
			inst->ids[j] = NULL;
			return -ENOMEM;
		}
	}
	if (!v->device_file_prefix)
		return 0;
	/* The simple device plugin's code maps /dev/F-<ID>, its README
	 * /dev/F-<i>: whichever a node has (the ID's when neither). */
	char *path = NULL, *by_index = NULL;
	struct stat st;
	if (asprintf(&path, "%s%s", v->device_file_prefix, inst->ids[0]) < 0)
		return -ENOMEM;
	if (lstat(path, &st) < 0) {
		if (asprintf(&by_index, "%s%u", v->device_file_prefix, i) < 0)
			by_index = NULL; /* then the ID's */
		else if (lstat(by_index, &st) == 0) {
			free(path);
			path = by_index;
			by_index = NULL;
		}
		free(by_index);
	}
	int r = dev_instance_add_device(inst, path, "rw");
	free(path);
	return r;
}

int virtual_expand(const struct cfg_group *g, const char *node, struct dev_instance **out,
		   size_t *n_out)
{
	*out = NULL;
	*n_out = 0;
	if (!g->virt || g->count == 0)
		return -EINVAL;
	struct dev_instance *insts = calloc(g->virt->count, sizeof(*insts));
	if (!insts)
		return -ENOMEM;
	for (unsigned i = 0; i < g->virt->count; i++) {
		int r = one(g, node, i, &insts[i]);
		if (r < 0) {
			dev_instances_free(insts, g->virt->count);
			return r;
		}
	}
	*out = insts;
	*n_out = g->virt->count;
	return 0;
}
