/* devmatch_scan, devmatch_watch_dirs and devmatch_expand on a scratch
 * tree under /tmp standing in for /dev. Device nodes need mknod (root with
 * CAP_MKNOD); without it the checks that need them are skipped, saying so. */
#include "check.h"
#include "devmatch.h"
#include "gore.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char root[64];
static bool have_mknod;

/* root + "/" + rel (printf-style) into a static buffer of n. */
static const char *at(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *at(char *buf, size_t len, const char *fmt, ...)
{
	char rel[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rel))
		abort();
	n = snprintf(buf, len, "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= len)
		abort();
	return buf;
}

static void mkdir_rel(const char *rel)
{
	char p[600];
	if (mkdir(at(p, sizeof(p), "%s", rel), 0755) < 0) {
		perror(p);
		abort();
	}
}

static void file_rel(const char *rel)
{
	char p[600];
	FILE *f = fopen(at(p, sizeof(p), "%s", rel), "w");
	if (!f || fclose(f) != 0) {
		perror(p);
		abort();
	}
}

/* A character (or block) device node; a regular file when mknod is not
 * permitted (have_mknod says which). */
static void node_rel(const char *rel, bool block)
{
	char p[600];
	at(p, sizeof(p), "%s", rel);
	if (have_mknod && mknod(p, (block ? S_IFBLK : S_IFCHR) | 0600, makedev(1, 3)) == 0)
		return;
	file_rel(rel);
}

static void symlink_rel(const char *target, const char *rel)
{
	char p[600];
	if (symlink(target, at(p, sizeof(p), "%s", rel)) < 0) {
		perror(p);
		abort();
	}
}

/* The tree:
 *   ttyUSB0 ttyUSB1 (char)  fuse (regular)  .hidden (regular)
 *   net/tun (char)
 *   snd/controlC0 snd/pcmC0D0p (char)  snd/readme (regular)
 *   snd/sub/hw (block)  snd/.tmp (char, hidden)
 *   .udev/ttyUSB9 (regular, in a hidden directory)
 *   link-dir -> snd (a symlinked directory)
 *   d1/d2/.../d12 (for the depth limit) */
#define CHAIN 12

static void build_tree(void)
{
	node_rel("ttyUSB0", false);
	node_rel("ttyUSB1", false);
	file_rel("fuse");
	file_rel(".hidden");
	mkdir_rel("net");
	node_rel("net/tun", false);
	mkdir_rel("snd");
	node_rel("snd/controlC0", false);
	node_rel("snd/pcmC0D0p", false);
	file_rel("snd/readme");
	mkdir_rel("snd/sub");
	node_rel("snd/sub/hw", true);
	node_rel("snd/.tmp", false);
	mkdir_rel(".udev");
	file_rel(".udev/ttyUSB9");
	symlink_rel("snd", "link-dir");
	char rel[256] = "";
	for (int i = 1; i <= CHAIN; i++) {
		size_t len = strlen(rel);
		snprintf(rel + len, sizeof(rel) - len, "%sd%d", i > 1 ? "/" : "", i);
		mkdir_rel(rel);
	}
}

/* The chain's name of depth k: "d1/d2/.../dk". */
static const char *chain_name(char *buf, size_t len, int k)
{
	buf[0] = '\0';
	for (int i = 1; i <= k; i++) {
		size_t n = strlen(buf);
		snprintf(buf + n, len - n, "%sd%d", i > 1 ? "/" : "", i);
	}
	return buf;
}

/* ---- matches compiled by hand ---- */

#define MAX_RE 4

struct matches {
	struct cfg_match m[MAX_RE];
	size_t n;
};

static void matches_init(struct matches *ms, const char *const *patterns)
{
	memset(ms, 0, sizeof(*ms));
	for (size_t i = 0; patterns[i] && i < MAX_RE; i++) {
		char why[128];
		if (gore_compile(patterns[i], &ms->m[i].re, why, sizeof(why)) != 0) {
			fprintf(stderr, "gore_compile %s failed: %s\n", patterns[i], why);
			abort();
		}
		ms->m[i].pattern = (char *)patterns[i];
		ms->m[i].max = 1;
		ms->n++;
	}
}

static void matches_free(struct matches *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		gore_free(ms->m[i].re);
}

/* What devmatch_scan reported, in order. */
#define MAX_SEEN 64

struct seen {
	char *name[MAX_SEEN];
	size_t match[MAX_SEEN];
	size_t n;
	bool overflow;
};

static void record(void *data, const char *name, size_t match)
{
	struct seen *s = data;
	if (s->n == MAX_SEEN) {
		s->overflow = true;
		return;
	}
	s->name[s->n] = strdup(name);
	s->match[s->n++] = match;
}

static void seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->name[i]);
	memset(s, 0, sizeof(*s));
}

static void count_cb(void *data, const char *name, size_t match)
{
	(void)name;
	(void)match;
	++*(size_t *)data;
}

/* The index of name in s, or -1. */
static long seen_find(const struct seen *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->name[i] && strcmp(s->name[i], name) == 0)
			return (long)i;
	return -1;
}

/* ---- devmatch_scan ---- */

/* Scans dir (a fresh scanner) with patterns into *s; the scan's result. */
static int scan_with(const char *dir, const char *const *patterns, struct seen *s)
{
	struct matches ms;
	matches_init(&ms, patterns);
	struct devmatch *dm = devmatch_new(dir);
	CHECK(dm != NULL);
	int r = dm ? devmatch_scan(dm, ms.m, ms.n, record, s) : -ENOMEM;
	CHECK(!s->overflow);
	devmatch_free(dm);
	matches_free(&ms);
	return r;
}

static const char *const match_all[] = {".*", NULL};

TEST(scan_order_and_names)
{
	struct seen s = {0};
	CHECK_INT(scan_with(root, match_all, &s), 0);
	/* Every entry, depth first, strcmp order in each directory; a directory
	 * before what it holds; names relative to the root: the chain d1 ...
	 * (as deep as the limit), then the rest. */
	char chain[128];
	static const char *const tail[] = {"fuse",    "link-dir",      "net",	       "net/tun",
					   "snd",     "snd/controlC0", "snd/pcmC0D0p", "snd/readme",
					   "snd/sub", "snd/sub/hw",    "ttyUSB0",      "ttyUSB1"};
	size_t n_tail = sizeof(tail) / sizeof(tail[0]);
	CHECK_INT(s.n, DEVMATCH_MAX_DEPTH + n_tail);
	for (int k = 1; k <= DEVMATCH_MAX_DEPTH && (size_t)k <= s.n; k++)
		CHECK_STR(s.name[k - 1], chain_name(chain, sizeof(chain), k));
	for (size_t i = 0; i < n_tail && DEVMATCH_MAX_DEPTH + i < s.n; i++) {
		CHECK_STR(s.name[DEVMATCH_MAX_DEPTH + i], tail[i]);
		CHECK_INT(s.match[DEVMATCH_MAX_DEPTH + i], 0);
	}
	seen_free(&s);

	/* A root given with a trailing '/': the same names. */
	char slash[600];
	snprintf(slash, sizeof(slash), "%s/", root);
	CHECK_INT(scan_with(slash, match_all, &s), 0);
	CHECK_INT(s.n, DEVMATCH_MAX_DEPTH + n_tail);
	CHECK(seen_find(&s, "net/tun") >= 0);
	CHECK_INT(seen_find(&s, "/net/tun"), -1);
	seen_free(&s);
}

TEST(scan_first_match_wins)
{
	static const char *const pats[] = {"^ttyUSB1$", "^tty", "^(net/tun|snd)$", "USB0", NULL};
	struct seen s = {0};
	CHECK_INT(scan_with(root, pats, &s), 0);
	CHECK_INT(s.n, 4);
	static const struct {
		const char *name;
		size_t match;
	} want[] = {{"net/tun", 2}, {"snd", 2}, {"ttyUSB0", 1}, {"ttyUSB1", 0}};
	for (size_t i = 0; i < 4 && i < s.n; i++) {
		CHECK_STR(s.name[i], want[i].name);
		CHECK_INT(s.match[i], want[i].match);
	}
	seen_free(&s);

	/* No expression: nothing reported, no error. */
	static const char *const none[] = {NULL};
	CHECK_INT(scan_with(root, none, &s), 0);
	CHECK_INT(s.n, 0);
}

/* Go's regexp syntax, as smarter-device-manager's configs use it: Perl
 * classes, flags, unanchored unless anchored. */
TEST(scan_go_syntax)
{
	static const char *const pats[] = {"^ttyUSB\\d$", "(?i)^NET/TUN$", "\\bcontrol\\w+", NULL};
	struct seen s = {0};
	CHECK_INT(scan_with(root, pats, &s), 0);
	static const struct {
		const char *name;
		size_t match;
	} want[] = {{"net/tun", 1}, {"snd/controlC0", 2}, {"ttyUSB0", 0}, {"ttyUSB1", 0}};
	CHECK_INT(s.n, 4);
	for (size_t i = 0; i < 4 && i < s.n; i++) {
		CHECK_STR(s.name[i], want[i].name);
		CHECK_INT(s.match[i], want[i].match);
	}
	seen_free(&s);
}

TEST(scan_skips_hidden_and_symlinked_dirs)
{
	static const char *const pats[] = {"hidden|udev|USB9|tmp", "^link-dir", NULL};
	struct seen s = {0};
	CHECK_INT(scan_with(root, pats, &s), 0);
	/* ".hidden", ".udev", ".udev/ttyUSB9" and "snd/.tmp" are not seen; the
	 * symlink itself is, but nothing through it ("link-dir/controlC0"). */
	CHECK_INT(s.n, 1);
	if (s.n >= 1) {
		CHECK_STR(s.name[0], "link-dir");
		CHECK_INT(s.match[0], 1);
	}
	seen_free(&s);
	CHECK_INT(scan_with(root, match_all, &s), 0);
	CHECK_INT(seen_find(&s, ".udev/ttyUSB9"), -1);
	CHECK_INT(seen_find(&s, ".hidden"), -1);
	CHECK_INT(seen_find(&s, "snd/.tmp"), -1);
	CHECK_INT(seen_find(&s, "link-dir/controlC0"), -1);
	CHECK(seen_find(&s, "link-dir") >= 0);
	seen_free(&s);
}

TEST(scan_depth_limit)
{
	static const char *const pats[] = {"^d1", NULL};
	struct seen s = {0};
	char name[128];
	CHECK_INT(scan_with(root, pats, &s), 0);
	CHECK_INT(s.n, DEVMATCH_MAX_DEPTH);
	CHECK(seen_find(&s, chain_name(name, sizeof(name), DEVMATCH_MAX_DEPTH)) >= 0);
	CHECK_INT(seen_find(&s, chain_name(name, sizeof(name), DEVMATCH_MAX_DEPTH + 1)), -1);
	seen_free(&s);
}

TEST(scan_missing_root)
{
	struct seen s = {0};
	char p[600];
	CHECK_INT(scan_with(at(p, sizeof(p), "nonexistent"), match_all, &s), -ENOENT);
	/* A file or a symlink to a directory is no root either. */
	CHECK_INT(scan_with(at(p, sizeof(p), "fuse"), match_all, &s), -ENOENT);
	CHECK_INT(scan_with(at(p, sizeof(p), "link-dir"), match_all, &s), -ENOENT);
	CHECK_INT(s.n, 0);
	/* A subdirectory as the root: names relative to it. */
	CHECK_INT(scan_with(at(p, sizeof(p), "snd"), match_all, &s), 0);
	CHECK(seen_find(&s, "sub/hw") >= 0);
	CHECK_INT(seen_find(&s, "snd/sub/hw"), -1);
	seen_free(&s);
	devmatch_free(NULL);
}

/* A scanner keeps its verdicts across scans: files added and removed
 * between two scans are seen; new expressions after devmatch_forget. */
TEST(rescan)
{
	static const char *const tty[] = {"^tty", NULL};
	static const char *const net[] = {"^net/", "^ttyUSB1$", NULL};
	struct matches m1, m2;
	matches_init(&m1, tty);
	matches_init(&m2, net);
	struct devmatch *dm = devmatch_new(root);
	CHECK(dm != NULL);
	if (!dm)
		return;
	struct seen s = {0};
	CHECK_INT(devmatch_scan(dm, m1.m, m1.n, record, &s), 0);
	CHECK_INT(s.n, 2);
	seen_free(&s);

	file_rel("ttyACM0");
	char p[600];
	CHECK_INT(devmatch_scan(dm, m1.m, m1.n, record, &s), 0);
	CHECK_INT(s.n, 3);
	CHECK(seen_find(&s, "ttyACM0") >= 0);
	seen_free(&s);
	CHECK_INT(unlink(at(p, sizeof(p), "ttyACM0")), 0);
	CHECK_INT(devmatch_scan(dm, m1.m, m1.n, record, &s), 0);
	CHECK_INT(s.n, 2);
	CHECK_INT(seen_find(&s, "ttyACM0"), -1);
	seen_free(&s);

	/* Many names come and go: the scanner follows (and its table grows and
	 * shrinks without losing any). */
	mkdir_rel("many");
	char rel[64];
	for (int i = 0; i < 300; i++) {
		snprintf(rel, sizeof(rel), "many/tty%03d", i);
		file_rel(rel);
	}
	static const char *const many[] = {"^many/tty", NULL};
	struct matches m3;
	matches_init(&m3, many);
	devmatch_forget(dm);
	size_t count = 0;
	CHECK_INT(devmatch_scan(dm, m3.m, m3.n, count_cb, &count), 0);
	CHECK_INT(count, 300);
	count = 0;
	CHECK_INT(devmatch_scan(dm, m3.m, m3.n, count_cb, &count), 0);
	CHECK_INT(count, 300);
	for (int i = 0; i < 300; i++) {
		snprintf(rel, sizeof(rel), "many/tty%03d", i);
		CHECK_INT(unlink(at(p, sizeof(p), "%s", rel)), 0);
	}
	CHECK_INT(rmdir(at(p, sizeof(p), "many")), 0);
	CHECK_INT(devmatch_scan(dm, m3.m, m3.n, record, &s), 0);
	CHECK_INT(s.n, 0);
	seen_free(&s);
	matches_free(&m3);

	/* New expressions, after devmatch_forget. */
	devmatch_forget(dm);
	CHECK_INT(devmatch_scan(dm, m2.m, m2.n, record, &s), 0);
	CHECK_INT(s.n, 2);
	if (s.n == 2) {
		CHECK_STR(s.name[0], "net/tun");
		CHECK_INT(s.match[0], 0);
		CHECK_STR(s.name[1], "ttyUSB1");
		CHECK_INT(s.match[1], 1);
	}
	seen_free(&s);
	devmatch_free(dm);
	matches_free(&m1);
	matches_free(&m2);
}

/* ---- devmatch_watch_dirs ---- */

static long find_str(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return (long)i;
	return -1;
}

static void strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

TEST(watch_dirs)
{
	struct matches ms;
	matches_init(&ms, match_all);
	struct devmatch *dm = devmatch_new(root);
	CHECK(dm != NULL);
	if (!dm)
		return;
	struct seen s = {0};
	CHECK_INT(devmatch_scan(dm, ms.m, ms.n, record, &s), 0);
	seen_free(&s);
	char **dirs = NULL;
	size_t n = 0;
	char p[600], rel[128];
	CHECK_INT(devmatch_watch_dirs(dm, &dirs, &n), 0);
	CHECK(n >= 4);
	if (n >= 1)
		CHECK_STR(dirs[0], root); /* root first */
	CHECK(find_str(dirs, n, at(p, sizeof(p), "net")) >= 0);
	CHECK(find_str(dirs, n, at(p, sizeof(p), "snd")) >= 0);
	CHECK(find_str(dirs, n, at(p, sizeof(p), "snd/sub")) >= 0);
	CHECK(find_str(dirs, n, at(p, sizeof(p), "d1")) >= 0);
	/* Every directory the scan enters (listing names up to the limit) ... */
	chain_name(rel, sizeof(rel), DEVMATCH_MAX_DEPTH - 1);
	CHECK(find_str(dirs, n, at(p, sizeof(p), "%s", rel)) >= 0);
	/* ... but none it does not: past the limit, hidden, through a link. */
	chain_name(rel, sizeof(rel), DEVMATCH_MAX_DEPTH);
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), "%s", rel)), -1);
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), ".udev")), -1);
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), "link-dir")), -1);
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), "link-dir/sub")), -1);
	/* No files. */
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), "fuse")), -1);
	CHECK_INT(find_str(dirs, n, at(p, sizeof(p), "net/tun")), -1);
	/* 1 root + d1..d(MAX-1) + net, snd, snd/sub. */
	CHECK_INT(n, 1 + (DEVMATCH_MAX_DEPTH - 1) + 3);

	/* Again: appended to, without duplicates. */
	size_t first = n;
	CHECK_INT(devmatch_watch_dirs(dm, &dirs, &n), 0);
	CHECK_INT(n, first);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			CHECK(strcmp(dirs[i], dirs[j]) != 0);
	strs_free(dirs, n);

	/* Entries already in the list from elsewhere are kept, first. */
	dirs = malloc(2 * sizeof(*dirs));
	n = 0;
	if (dirs) {
		dirs[n++] = strdup("/elsewhere");
		dirs[n++] = strdup(at(p, sizeof(p), "net"));
		CHECK_INT(devmatch_watch_dirs(dm, &dirs, &n), 0);
		CHECK_INT(n, first + 1);
		if (n >= 2) {
			CHECK_STR(dirs[0], "/elsewhere");
			CHECK_STR(dirs[1], p);
		}
		if (n >= 3)
			CHECK_STR(dirs[2], root);
		strs_free(dirs, n);
	}

	/* A failed scan (root gone) leaves nothing to watch. */
	devmatch_free(dm);
	dm = devmatch_new(at(p, sizeof(p), "nonexistent"));
	CHECK(dm != NULL);
	dirs = NULL;
	n = 0;
	if (dm) {
		CHECK_INT(devmatch_scan(dm, ms.m, ms.n, record, &s), -ENOENT);
		CHECK_INT(devmatch_watch_dirs(dm, &dirs, &n), 0);
		CHECK_INT(n, 0);
	}
	strs_free(dirs, n);
	devmatch_free(dm);
	matches_free(&ms);
}

/* ---- devmatch_expand ---- */

static struct cfg_group sdm_group(char *name, unsigned count)
{
	return (struct cfg_group){.dev_name = name, .count = count};
}

TEST(expand_file)
{
	struct dev_instance *inst = (struct dev_instance *)1;
	size_t n = 99;
	char p[600];
	char name[] = "ttyUSB0";
	struct cfg_group g = sdm_group(name, 3);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), 0);
	CHECK_INT(n, 1);
	CHECK(inst != NULL);
	if (n == 1 && inst) {
		CHECK_STR(inst->key, "sdm:ttyUSB0");
		CHECK_INT(inst->count, 3);
		CHECK_STR(inst->ids[0], "0");
		CHECK_STR(inst->ids[1], "1");
		CHECK_STR(inst->ids[2], "2");
		CHECK_INT(inst->n_nodes, 1);
		if (inst->n_nodes == 1) {
			CHECK_STR(inst->nodes[0].host_path, at(p, sizeof(p), "ttyUSB0"));
			CHECK_STR(inst->nodes[0].container_path, p);
			CHECK_STR(inst->nodes[0].permissions, "rw");
			CHECK(!inst->nodes[0].mount);
		}
	}
	dev_instances_free(inst, n);

	/* A nested name, and count 1: one ID "0". */
	char tun[] = "net/tun";
	g = sdm_group(tun, 1);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(inst->key, "sdm:net/tun");
		CHECK_INT(inst->count, 1);
		CHECK_STR(inst->ids[0], "0");
		CHECK_INT(inst->n_nodes, 1);
		if (inst->n_nodes == 1)
			CHECK_STR(inst->nodes[0].host_path, at(p, sizeof(p), "net/tun"));
	}
	dev_instances_free(inst, n);
}

TEST(expand_directory)
{
	if (!have_mknod)
		SKIP("mknod not permitted: a directory entry needs device nodes");
	struct dev_instance *inst = NULL;
	size_t n = 0;
	char p[600];
	char name[] = "snd";
	struct cfg_group g = sdm_group(name, 2);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(inst->key, "sdm:snd");
		CHECK_INT(inst->count, 2);
		CHECK_STR(inst->ids[1], "1");
		/* Every char or block device below, sorted; not readme, not the
		 * directory sub, not the hidden .tmp. */
		static const char *const want[] = {"snd/controlC0", "snd/pcmC0D0p", "snd/sub/hw"};
		CHECK_INT(inst->n_nodes, 3);
		for (size_t i = 0; i < 3 && i < inst->n_nodes; i++) {
			CHECK_STR(inst->nodes[i].host_path, at(p, sizeof(p), "%s", want[i]));
			CHECK_STR(inst->nodes[i].container_path, p);
			CHECK_STR(inst->nodes[i].permissions, "rw");
		}
	}
	dev_instances_free(inst, n);
}

TEST(expand_missing_and_invalid)
{
	struct dev_instance *inst = (struct dev_instance *)1;
	size_t n = 99;
	char name[] = "ttyUSB7";
	struct cfg_group g = sdm_group(name, 1);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), 0);
	CHECK_INT(n, 0);
	CHECK(inst == NULL);

	char ok[] = "ttyUSB0";
	g = sdm_group(ok, 0);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), -EINVAL);
	CHECK_INT(n, 0);
	g = sdm_group(NULL, 1);
	CHECK_INT(devmatch_expand(root, &g, &inst, &n), -EINVAL);
	CHECK_INT(n, 0);
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* ---- which events matter ---- */

TEST(event_new_name)
{
	static const char *const pats[] = {"^ttyUSB[0-9]*$", "^net/tun$", NULL};
	struct matches ms;
	matches_init(&ms, pats);
	CHECK(devmatch_event_new_name("/dev", ms.m, ms.n, "/dev", "ttyUSB3", false));
	CHECK(devmatch_event_new_name("/dev", ms.m, ms.n, "/dev/net", "tun", false));
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/dev", "ttyS0", false));
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/dev/net", "tap0", false));
	/* a directory: what is below it is only known by walking it */
	CHECK(devmatch_event_new_name("/dev", ms.m, ms.n, "/dev", "net", true));
	/* hidden names, and what is below them, are never reported */
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/dev", ".udev", true));
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/dev/.x", "ttyUSB0", false));
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/devices", "ttyUSB0", false));
	CHECK(!devmatch_event_new_name("/dev", ms.m, ms.n, "/tmp", "ttyUSB0", false));
	CHECK(devmatch_event_new_name("/dev", ms.m, ms.n, "/dev", "", false));
	matches_free(&ms);
}

TEST(event_matters_to_group)
{
	struct cfg_group g = {.dev_name = "net/tun", .count = 1};
	CHECK(devmatch_event_matters("/dev", &g, "/dev/net", "tun"));
	CHECK(devmatch_event_matters("/dev", &g, "/dev", "net")); /* its directory goes */
	CHECK(!devmatch_event_matters("/dev", &g, "/dev/net", "tap0"));
	CHECK(!devmatch_event_matters("/dev", &g, "/dev", "netx"));
	CHECK(!devmatch_event_matters("/dev", &g, "/dev/net", "tunx"));
	struct cfg_group snd = {.dev_name = "snd", .count = 1};
	CHECK(devmatch_event_matters("/dev", &snd, "/dev/snd", "pcmC0D0p")); /* its nodes */
	CHECK(devmatch_event_matters("/dev", &snd, "/dev/snd/by-path", "x"));
	CHECK(!devmatch_event_matters("/dev", &snd, "/dev", "sndx"));
	CHECK(devmatch_event_matters("/dev", &snd, "/dev", ""));
}

int main(void)
{
	snprintf(root, sizeof(root), "/tmp/test_devmatch.XXXXXX");
	if (!mkdtemp(root)) {
		perror("test_devmatch: mkdtemp");
		return 1;
	}
	char probe[600];
	at(probe, sizeof(probe), "probe");
	have_mknod = mknod(probe, S_IFCHR | 0600, makedev(1, 3)) == 0;
	if (!have_mknod)
		fprintf(stderr, "unit %s: mknod not permitted (%s): device node checks skipped\n",
			__FILE__, strerror(errno));
	else
		unlink(probe);
	build_tree();

	RUN(scan_order_and_names);
	RUN(scan_first_match_wins);
	RUN(scan_go_syntax);
	RUN(scan_skips_hidden_and_symlinked_dirs);
	RUN(scan_depth_limit);
	RUN(scan_missing_root);
	RUN(rescan);
	RUN(watch_dirs);
	RUN(expand_file);
	RUN(expand_directory);
	RUN(expand_missing_and_invalid);
	RUN(event_new_name);
	RUN(event_matters_to_group);

	if (nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "test_devmatch: could not remove %s\n", root);
	return CHECK_SUMMARY();
}
