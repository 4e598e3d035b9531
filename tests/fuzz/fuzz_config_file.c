/* The input is a config file (YAML, or JSON when it starts with '{' or
 * '['), loaded as `usb-device-plugin --config FILE` would load it.
 *
 * Also a differential check of the two parsers: config_load reads a JSON
 * file with libyaml (for line numbers) and a --device value with cJSON, so
 * a text both accept must give the same tree from both (numbers compared
 * by value: cJSON prints them anew). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfgtree.h"
#include "fuzz_config.h"
#include "fuzz_util.h"
#include "log.h"

static struct fuzz_file file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_clear_config_env();
	fuzz_file_init(&file, "config");
	/* Warnings are formatted either way; writing them is only noise. */
	if (!getenv("FUZZ_LOG"))
		log_set_level(LOG_LEVEL_NONE);
	return 0;
}

/* Whether the tree cJSON built (j) and the one libyaml built (y) say the
 * same thing. */
static bool same_tree(const struct cfg_node *j, const struct cfg_node *y)
{
	if (j->kind != y->kind)
		return false;
	switch (j->kind) {
	case CFG_SCALAR:
		if (j->quoted || y->quoted)
			return j->quoted == y->quoted && j->len == y->len &&
			       memcmp(j->text, y->text, j->len) == 0;
		if (strcmp(j->text, "true") == 0 || strcmp(j->text, "false") == 0 ||
		    strcmp(j->text, "null") == 0)
			return strcmp(j->text, y->text) == 0;
		return strtod(j->text, NULL) == strtod(y->text, NULL);
	case CFG_SEQ:
		if (j->n_items != y->n_items)
			return false;
		for (size_t i = 0; i < j->n_items; i++)
			if (!same_tree(j->items[i], y->items[i]))
				return false;
		return true;
	case CFG_MAP:
		if (j->n_pairs != y->n_pairs)
			return false;
		for (size_t i = 0; i < j->n_pairs; i++)
			if (!same_tree(j->pairs[i].key, y->pairs[i].key) ||
			    !same_tree(j->pairs[i].value, y->pairs[i].value))
				return false;
		return true;
	}
	return false;
}

static void compare_parsers(const uint8_t *data, size_t size)
{
	struct cfg_node *j = NULL, *y = NULL;
	if (cfgtree_parse_json((const char *)data, size, &j, NULL) == 0 &&
	    cfgtree_parse_yaml((const char *)data, size, &y, NULL) == 0)
		FUZZ_REQUIRE(y && same_tree(j, y));
	cfgtree_free(j);
	cfgtree_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *argv[] = {"usb-device-plugin", "--config", file.path, NULL};
	fuzz_file_write(&file, data, size);
	fuzz_config_run(3, argv, fuzz_errlen(size), failalloc_hash(data, size));
	compare_parsers(data, size);
	return 0;
}
