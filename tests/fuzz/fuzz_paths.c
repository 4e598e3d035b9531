/* The input is a path group: its globs are expanded (paths_expand, with
 * Go's path.Match and fs.Glob semantics, SHA-1 IDs) and its directories to
 * watch listed (paths_watch_dirs), inside a small tree made at start.
 *
 * Input: byte 0 gives count (1 + (b & 3)) and the group index (b >> 2);
 * the rest is up to MAX_PATHS entries separated by NUL bytes, each an
 * options byte then a glob relative to the tree:
 *   bit 0 optional, bit 1 Mount, bit 2 readOnly,
 *   bits 3-4 mountPath: none, "/c/" (a directory), "/c/file", "",
 *   bits 5-7 limit - 1.
 * Globs with a ".." component (backslashes ignored) are skipped: they
 * would leave the tree. Checked besides the sanitizers: paths_expand
 * refuses (-EINVAL) exactly the groups where paths_pattern_valid says a
 * glob is malformed; instances have count 40-hex IDs, one node per path
 * used and a "g<index>:" key. Then again with one allocation failing. */
#include <errno.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "failalloc.h"
#include "fuzz_util.h"
#include "paths.h"

#define MAX_PATHS 6

static char root[64];

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void remove_tree(void)
{
	nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Directories end in '/'; "name -> target" is a symbolic link. Acyclic:
 * a loop would make "*" repeated grow the matches exponentially. */
static void make_tree(void)
{
	static const char *const entries[] = {
	    "a",	 "b",	     "ab",	     ".hidden",		   "tty0",
	    "tty1",	 "ttyUSB10", "\xc3\xa9",     "\xff",		   "[x]",
	    "*",	 "q?",	     "back\\slash",  "d/",		   "d/x",
	    "d/y",	 "d/.h/",    "d/sub/",	     "d/sub/z",		   "e/",
	    "bus/",	 "bus/usb/", "bus/usb/001/", "bus/usb/001/001",	   "bus/usb/001/002",
	    "bus/usb/002/", "bus/usb/002/001", "link -> d", "dangling -> nowhere", NULL};
	char path[256];
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(root, sizeof(root), "%s/udp-fuzz-tree.XXXXXX", dir);
	if (!mkdtemp(root))
		fuzz_die("fuzz_paths: mkdtemp");
	atexit(remove_tree);
	for (size_t i = 0; entries[i]; i++) {
		const char *e = entries[i], *arrow = strstr(e, " -> ");
		size_t len = strlen(e);
		int ok;
		if (arrow) {
			snprintf(path, sizeof(path), "%s/%.*s", root, (int)(arrow - e), e);
			ok = symlink(arrow + 4, path) == 0;
		} else if (e[len - 1] == '/') {
			snprintf(path, sizeof(path), "%s/%.*s", root, (int)len - 1, e);
			ok = mkdir(path, 0755) == 0;
		} else {
			snprintf(path, sizeof(path), "%s/%s", root, e);
			FILE *f = fopen(path, "w");
			ok = f && fclose(f) == 0;
		}
		if (!ok)
			fuzz_die(path);
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	make_tree();
	return 0;
}

/* Whether glob has a ".." component once backslashes are dropped. */
static bool leaves_tree(const char *glob)
{
	size_t dots = 0;
	for (const char *p = glob;; p++) {
		if (*p == '\\')
			continue;
		if (*p == '/' || !*p) {
			if (dots == 2)
				return true;
			if (!*p)
				return false;
			dots = 0;
		} else {
			dots = *p == '.' && dots < 3 ? dots + 1 : 3;
		}
	}
}

static bool is_hex40(const char *s)
{
	for (int i = 0; i < 40; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[40] == '\0';
}

/* Expands g and lists its directories, allocation number fail_at failing
 * (-1: none); checks the results and returns the number of allocations. */
static long pass(const struct cfg_group *g, size_t index, bool all_valid, long fail_at)
{
	struct dev_instance *insts = NULL;
	size_t n = 0, n_dirs = 0;
	char **dirs = NULL;
	failalloc_start(fail_at);
	int r = paths_expand(g, index, &insts, &n);
	int w = paths_watch_dirs(g, &dirs, &n_dirs);
	bool failed = failalloc_failed();
	long allocs = failalloc_stop();
	if (!failed) {
		FUZZ_REQUIRE(r == (all_valid ? 0 : -EINVAL));
		FUZZ_REQUIRE(w == 0);
	}
	FUZZ_REQUIRE(r == 0 || r == -EINVAL || r == -ENOMEM);
	FUZZ_REQUIRE(w == 0 || w == -ENOMEM);
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "g%zu:", index);
	for (size_t i = 0; r == 0 && i < n; i++) {
		FUZZ_REQUIRE(insts[i].count == g->count && insts[i].n_nodes <= g->n_paths);
		FUZZ_REQUIRE(strncmp(insts[i].key, prefix, strlen(prefix)) == 0);
		for (unsigned j = 0; j < insts[i].count; j++)
			FUZZ_REQUIRE(is_hex40(insts[i].ids[j]));
	}
	if (r == 0)
		dev_instances_free(insts, n);
	for (size_t i = 0; i < n_dirs; i++)
		free(dirs[i]);
	free(dirs);
	return allocs;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const mount_paths[] = {NULL, "/c/", "/c/file", ""};
	struct cfg_path paths[MAX_PATHS];
	struct cfg_group g = {.paths = paths};
	char *buf;
	bool all_valid = true, skip = false;
	if (size < 2)
		return 0;
	buf = malloc(size);
	if (!buf)
		abort();
	memcpy(buf, data + 1, size - 1);
	buf[size - 1] = '\0';
	g.count = 1 + (data[0] & 3);
	for (size_t i = 0; i < size - 1 && g.n_paths < MAX_PATHS;) {
		const char *entry = buf + i;
		unsigned o = (unsigned char)entry[0];
		i += strlen(entry) + 1;
		if (!o) /* an empty entry: no options byte */
			continue;
		struct cfg_path *p = &paths[g.n_paths];
		memset(p, 0, sizeof(*p));
		if (asprintf(&p->path, "%s/%s", root, entry + 1) < 0)
			abort();
		g.n_paths++;
		p->optional = o & 1;
		p->type = o & 2 ? CFG_PATH_MOUNT : CFG_PATH_DEVICE;
		p->read_only = o & 4;
		p->mount_path = (char *)mount_paths[(o >> 3) & 3];
		p->limit = 1 + (o >> 5);
		if (p->type == CFG_PATH_DEVICE)
			memcpy(p->permissions, "rw", 3);
		all_valid = all_valid && paths_pattern_valid(p->path);
		skip = skip || leaves_tree(entry + 1);
	}
	if (!skip && g.n_paths > 0) {
		long n = pass(&g, data[0] >> 2, all_valid, -1);
		if (n > 0)
			pass(&g, data[0] >> 2, all_valid, (long)(failalloc_hash(data, size) % (uint64_t)n));
	}
	for (size_t k = 0; k < g.n_paths; k++)
		free(paths[k].path);
	free(buf);
	return 0;
}
