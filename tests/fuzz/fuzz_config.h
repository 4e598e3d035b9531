/* What both config targets check after config_load: on error a message and
 * a zeroed struct; on success what config.h promises about every field. */
#ifndef UDP_FUZZ_CONFIG_H
#define UDP_FUZZ_CONFIG_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "failalloc.h"
#include "fuzz_util.h"

static inline bool fuzz_name_ok(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static inline bool fuzz_perms_ok(const char *p)
{
	/* a subsequence of "mrw" */
	const char *order = "mrw";
	for (; *p; p++) {
		const char *at = strchr(order, *p);
		if (!at)
			return false;
		order = at + 1;
	}
	return true;
}

static inline void fuzz_check_group(const struct cfg_group *g)
{
	FUZZ_REQUIRE(g->count >= 1 && g->count <= 10000);
	FUZZ_REQUIRE((g->n_paths > 0) + (g->n_usb > 0) + (g->virt != NULL) == 1);
	FUZZ_REQUIRE(!g->virt ||
		     (g->virt->count >= 1 && g->virt->id_prefix && g->virt->id_prefix[0]));
	for (size_t i = 0; i < g->n_env; i++)
		FUZZ_REQUIRE(g->env[i].key[0] && !strchr(g->env[i].key, '='));
	for (size_t i = 0; i < g->n_paths; i++) {
		const struct cfg_path *p = &g->paths[i];
		FUZZ_REQUIRE(p->path && p->path[0] == '/');
		FUZZ_REQUIRE(!p->mount_path || p->mount_path[0] == '/');
		FUZZ_REQUIRE(p->limit >= 1);
		FUZZ_REQUIRE(fuzz_perms_ok(p->permissions));
		FUZZ_REQUIRE(p->type == CFG_PATH_MOUNT || p->permissions[0]);
		FUZZ_REQUIRE(p->type == CFG_PATH_MOUNT || !p->read_only);
	}
	for (size_t i = 0; i < g->n_usb; i++) {
		const struct cfg_usb *u = &g->usb[i];
		FUZZ_REQUIRE(u->vendor >= -1 && u->vendor <= 0xffff);
		FUZZ_REQUIRE(u->product >= -1 && u->product <= 0xffff);
		FUZZ_REQUIRE(u->usb_class >= -1 && u->usb_class <= 0xff);
		FUZZ_REQUIRE(!u->mount_path || (u->mount_path[0] == '/' &&
						u->mount_path[strlen(u->mount_path) - 1] == '/'));
		FUZZ_REQUIRE(u->vendor >= 0 || u->product >= 0 || u->serial || u->usb_class >= 0 ||
			     u->port);
	}
}

static inline void fuzz_check_config(const struct config *c)
{
	FUZZ_REQUIRE(c->domain && c->listen && c->plugin_dir);
	size_t len = strlen(c->plugin_dir);
	FUZZ_REQUIRE(len > 0 && c->plugin_dir[len - 1] == '/');
	FUZZ_REQUIRE(c->log_level >= LOG_LEVEL_ALL && c->log_level <= LOG_LEVEL_NONE);
	FUZZ_REQUIRE(c->n_devices > 0 || c->n_matches > 0 || c->show_help || c->show_version ||
		     c->show_list);
	for (size_t i = 0; i < c->n_matches; i++)
		FUZZ_REQUIRE(c->matches[i].pattern && c->matches[i].max >= 1);
	for (size_t i = 0; i < c->n_devices; i++) {
		const struct cfg_device *d = &c->devices[i];
		FUZZ_REQUIRE(d->name && fuzz_name_ok(d->name));
		FUZZ_REQUIRE(d->n_groups >= 1);
		for (size_t j = 0; j < i; j++)
			FUZZ_REQUIRE(strcmp(c->devices[j].name, d->name) != 0);
		for (size_t g = 0; g < d->n_groups; g++)
			fuzz_check_group(&d->groups[g]);
	}
}

/* The error buffer: usually roomy, for some inputs (chosen by size) tiny,
 * so that cutting messages short is exercised too. malloc'd to its exact
 * size so that ASan sees any overrun. */
static inline size_t fuzz_errlen(size_t input_size)
{
	return input_size % 5 == 0 ? 1 + (input_size / 5) % 24 : 512;
}

/* Runs config_load on argv with allocation number fail_at failing (-1:
 * none), checks the outcome and returns the number of allocations. */
static inline long fuzz_config_pass(int argc, char **argv, size_t errlen, long fail_at)
{
	static const struct config zero;
	struct config cfg;
	char *err = malloc(errlen);
	if (!err)
		abort();
	memset(&cfg, 0xa5, sizeof(cfg));
	memset(err, 'x', errlen);
	failalloc_start(fail_at);
	int r = config_load(&cfg, argc, argv, err, errlen);
	bool failed = failalloc_failed();
	long n = failalloc_stop();
	if (getenv("FUZZ_LOG"))
		fprintf(stderr, "config_load: fail_at=%ld failed=%d r=%d err=\"%.*s\"\n", fail_at,
			failed, r, (int)strnlen(err, errlen), err);
	/* A failed allocation is never ignored (though an error met before
	 * it may be the one reported: parse_args reports the first), except
	 * by --help and --version, which ignore every other flag's trouble. */
	if (r < 0) {
		FUZZ_REQUIRE(memcmp(&cfg, &zero, sizeof(cfg)) == 0);
		fuzz_check_err(err, errlen);
	} else {
		FUZZ_REQUIRE(r == 0);
		FUZZ_REQUIRE(!failed || cfg.show_help || cfg.show_version);
		fuzz_check_config(&cfg);
		config_free(&cfg);
	}
	free(err);
	return n;
}

/* Runs config_load on argv and checks the outcome; then again with one
 * of its allocations failing, chosen by hash (the input's). */
static inline void fuzz_config_run(int argc, char **argv, size_t errlen, uint64_t hash)
{
	long n = fuzz_config_pass(argc, argv, errlen, -1);
	if (n > 0)
		fuzz_config_pass(argc, argv, errlen, (long)(hash % (uint64_t)n));
}

#endif
