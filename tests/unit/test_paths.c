/* paths_expand and paths_watch_dirs on a scratch tree under /tmp. The
 * module does not look at file types, so regular files stand in for
 * device nodes. */
#include "check.h"
#include "paths.h"

#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_PATHS 4

/* A scratch directory and a group whose patterns live in it. */
struct fixture {
	char root[64];
	char pat[MAX_PATHS][512];
	struct cfg_path paths[MAX_PATHS];
	struct cfg_group group;
};

static bool fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/udp-test-paths-XXXXXX");
	if (!mkdtemp(f->root)) {
		perror("mkdtemp");
		return false;
	}
	f->group.paths = f->paths;
	f->group.count = 1;
	return true;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void fixture_done(struct fixture *f)
{
	CHECK_INT(nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

/* Formats root + "/" + rel into buf; a truncation fails the test. */
static const char *under(const struct fixture *f, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *under(const struct fixture *f, char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(buf, len, "%s/", f->root);

	CHECK(n > 0 && (size_t)n < len);
	va_start(ap, fmt);
	n += vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	CHECK((size_t)n < len);
	return buf;
}

/* Creates each relative path: a directory when it ends in '/', else an
 * empty file (parents must exist). */
static void make(const struct fixture *f, const char *const *rel, size_t n)
{
	char buf[512];

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(rel[i]);

		under(f, buf, sizeof(buf), "%s", rel[i]);
		if (rel[i][len - 1] == '/') {
			CHECK_INT(mkdir(buf, 0755), 0);
		} else {
			FILE *fp = fopen(buf, "w");

			CHECK(fp != NULL);
			if (fp)
				fclose(fp);
		}
	}
}
#define MAKE(f, ...)                                                                               \
	do {                                                                                       \
		static const char *const make_list_[] = {__VA_ARGS__};                             \
		make(f, make_list_, sizeof(make_list_) / sizeof(make_list_[0]));                   \
	} while (0)

/* Adds path entry k with pattern root/rel, limit 1, Device, "rw". */
static struct cfg_path *add_path(struct fixture *f, const char *rel)
{
	size_t k = f->group.n_paths++;
	struct cfg_path *p = &f->paths[k];

	under(f, f->pat[k], sizeof(f->pat[k]), "%s", rel);
	memset(p, 0, sizeof(*p));
	p->path = f->pat[k];
	p->type = CFG_PATH_DEVICE;
	memcpy(p->permissions, "rw", 3);
	p->limit = 1;
	return p;
}

/* Points path entry k at root/rel. */
static void set_path(struct fixture *f, size_t k, const char *rel)
{
	under(f, f->pat[k], sizeof(f->pat[k]), "%s", rel);
	f->paths[k].path = f->pat[k];
}

/* The host path of node k of inst, relative to the root. */
static const char *rel_host(const struct fixture *f, const struct dev_instance *inst, size_t k)
{
	const char *h = inst->nodes[k].host_path;
	size_t rl = strlen(f->root);

	if (strncmp(h, f->root, rl) != 0 || h[rl] != '/')
		return h;
	return h + rl + 1;
}

/* Expected ID: SHA-1 over decimal j and the host paths, fed piece by piece
 * to libcrypto's streaming API (paths.c hashes one joined buffer). */
static void expected_id(const struct dev_instance *inst, unsigned j, char hex[41])
{
	char num[16];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	hex[0] = '\0';
	snprintf(num, sizeof(num), "%u", j);
	CHECK(ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL));
	CHECK(ctx && EVP_DigestUpdate(ctx, num, strlen(num)));
	for (size_t k = 0; ctx && k < inst->n_nodes; k++)
		CHECK(EVP_DigestUpdate(ctx, inst->nodes[k].host_path,
				       strlen(inst->nodes[k].host_path)));
	CHECK(ctx && EVP_DigestFinal_ex(ctx, md, &md_len));
	EVP_MD_CTX_free(ctx);
	CHECK_INT(md_len, 20);
	for (unsigned i = 0; i < md_len && i < 20; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Checks the key and IDs of every instance against their nodes. */
static void check_identity(const struct dev_instance *insts, size_t n, size_t group_index)
{
	for (size_t i = 0; i < n; i++) {
		char key[4096], hex[41];
		int off = snprintf(key, sizeof(key), "g%zu:", group_index);

		for (size_t k = 0; k < insts[i].n_nodes; k++)
			off += snprintf(key + off, sizeof(key) - (size_t)off, "%s%s", k ? "\n" : "",
					insts[i].nodes[k].host_path);
		CHECK((size_t)off < sizeof(key));
		CHECK_STR(insts[i].key, key);
		for (unsigned j = 0; j < insts[i].count; j++) {
			expected_id(&insts[i], j, hex);
			CHECK_STR(insts[i].ids[j], hex);
		}
	}
}

/* Checks instance i's host paths (relative to the root), in order. */
static void check_hosts(const struct fixture *f, const struct dev_instance *insts, size_t n,
			size_t i, const char *const *want, size_t n_want)
{
	CHECK(i < n);
	if (i >= n)
		return;
	CHECK_INT(insts[i].n_nodes, n_want);
	for (size_t k = 0; k < n_want && k < insts[i].n_nodes; k++)
		CHECK_STR(rel_host(f, &insts[i], k), want[k]);
}
#define HOSTS(f, insts, n, i, ...)                                                                 \
	do {                                                                                       \
		static const char *const hosts_want_[] = {__VA_ARGS__};                            \
		check_hosts(f, insts, n, i, hosts_want_,                                           \
			    sizeof(hosts_want_) / sizeof(hosts_want_[0]));                         \
	} while (0)

static size_t expand(struct fixture *f, size_t group_index, struct dev_instance **insts)
{
	size_t n = 12345;

	*insts = NULL;
	CHECK_INT(paths_expand(&f->group, group_index, insts, &n), 0);
	check_identity(*insts, n, group_index);
	return n;
}

/* ---- paths_expand ---- */

TEST(test_limit_caps_pairs)
{
	struct fixture f;
	struct dev_instance *insts;
	struct cfg_path *y;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "A/", "B/", "A/x2", "A/x0", "A/x1", "B/y0");
	add_path(&f, "A/x*");
	y = add_path(&f, "B/y*");

	/* n = min(max(3, 1), min(3 * 1, 1 * 1)) = 1 */
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "A/x0", "B/y0");
	dev_instances_free(insts, n);

	/* y reusable three times: x0-y0, x1-y0, x2-y0 */
	y->limit = 3;
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 3);
	HOSTS(&f, insts, n, 0, "A/x0", "B/y0");
	HOSTS(&f, insts, n, 1, "A/x1", "B/y0");
	HOSTS(&f, insts, n, 2, "A/x2", "B/y0");
	dev_instances_free(insts, n);

	/* a larger limit does not add instances beyond the longest list */
	y->limit = 10;
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 3);
	dev_instances_free(insts, n);
	fixture_done(&f);
}

TEST(test_shorter_first_path)
{
	struct fixture f;
	struct dev_instance *insts;
	struct cfg_path *x, *y;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "A/", "B/", "A/x0", "B/y0", "B/y1", "B/y2");
	x = add_path(&f, "A/x*");
	y = add_path(&f, "B/y*");

	/* n = min(3, 1 * 1) = 1 */
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "A/x0", "B/y0");
	dev_instances_free(insts, n);

	/* x reused: instance i takes match i mod m of each path */
	x->limit = 2;
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 2);
	HOSTS(&f, insts, n, 0, "A/x0", "B/y0");
	HOSTS(&f, insts, n, 1, "A/x0", "B/y1");
	dev_instances_free(insts, n);

	/* x: 2 matches limit 2, y: 3 matches -> n = min(3, min(4, 3)) = 3 */
	MAKE(&f, "A/x1");
	y->limit = 1;
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 3);
	HOSTS(&f, insts, n, 0, "A/x0", "B/y0");
	HOSTS(&f, insts, n, 1, "A/x1", "B/y1");
	HOSTS(&f, insts, n, 2, "A/x0", "B/y2");
	dev_instances_free(insts, n);
	fixture_done(&f);
}

TEST(test_optional_and_required_missing)
{
	struct fixture f;
	struct dev_instance *insts, sentinel;
	struct cfg_path *opt, *req;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "A/", "A/x0", "A/x1", "C/", "C/z0");
	add_path(&f, "A/x*");
	opt = add_path(&f, "B/*");
	opt->optional = true;

	/* the optional path matches nothing: skipped, no node */
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 2);
	HOSTS(&f, insts, n, 0, "A/x0");
	HOSTS(&f, insts, n, 1, "A/x1");
	dev_instances_free(insts, n);

	/* an optional path that matches takes part like any other */
	set_path(&f, 1, "C/*");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "A/x0", "C/z0");
	dev_instances_free(insts, n);

	/* a required path that matches nothing: no instance at all */
	set_path(&f, 1, "B/*");
	req = add_path(&f, "D/*");
	req->limit = 5;
	n = 7;
	insts = &sentinel;
	CHECK_INT(paths_expand(&f.group, 0, &insts, &n), 0);
	CHECK_INT(n, 0);
	CHECK(insts == NULL);

	/* only optional paths, none matching */
	f.paths[0].optional = true;
	set_path(&f, 0, "Q/x*");
	req->optional = true;
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 0);
	CHECK(insts == NULL);
	fixture_done(&f);
}

TEST(test_single_file_count)
{
	struct fixture f;
	struct dev_instance *insts;
	char fuse[512];
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "fuse");
	add_path(&f, "fuse");
	f.group.count = 10;
	n = expand(&f, 2, &insts);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(insts[0].count, 10);
		for (unsigned a = 0; a < insts[0].count; a++)
			for (unsigned b = a + 1; b < insts[0].count; b++)
				CHECK(strcmp(insts[0].ids[a], insts[0].ids[b]) != 0);
		under(&f, fuse, sizeof(fuse), "fuse");
		CHECK_STR(insts[0].nodes[0].host_path, fuse);
		CHECK_STR(insts[0].nodes[0].container_path, fuse);
		CHECK_CONTAINS(insts[0].key, "g2:/tmp/");
	}
	dev_instances_free(insts, n);

	/* a missing literal path is a required path with no match */
	set_path(&f, 0, "fusX");
	n = expand(&f, 2, &insts);
	CHECK_INT(n, 0);
	fixture_done(&f);
}

/* IDs hard-coded from Python: hashlib.sha1(b"0/dev/null").hexdigest() etc.,
 * i.e. exactly what generic-device-plugin registers for these groups. */
TEST(test_ids_match_generic_device_plugin)
{
	char null_path[] = "/dev/null", zero_path[] = "/dev/zero";
	struct cfg_path p[2] = {
	    {.path = null_path, .limit = 1, .permissions = "rw"},
	    {.path = zero_path, .limit = 1, .permissions = "rw"},
	};
	struct cfg_group g = {.paths = p, .n_paths = 1, .count = 13};
	struct dev_instance *insts = NULL;
	size_t n = 0;

	if (access("/dev/null", F_OK) != 0 || access("/dev/zero", F_OK) != 0)
		SKIP("no /dev/null or /dev/zero");
	CHECK_INT(paths_expand(&g, 0, &insts, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_INT(insts[0].count, 13);
		CHECK_STR(insts[0].ids[0], "a05d4ff4e9b480f66fc87cca95ab63e584e86317");
		CHECK_STR(insts[0].ids[1], "e1627eebaecf41ed6ae23c74c2434c44e50e222f");
		CHECK_STR(insts[0].ids[2], "e04e518056c23b1779897e51cf022e359b426a20");
		CHECK_STR(insts[0].ids[12], "f2f5016e0a8136b79f8a618160a5fb682a6e33c7");
		CHECK_STR(insts[0].key, "g0:/dev/null");
	}
	dev_instances_free(insts, n);

	g.n_paths = 2;
	g.count = 1;
	CHECK_INT(paths_expand(&g, 3, &insts, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1) {
		CHECK_STR(insts[0].ids[0], "e803da18c5c1d683918b30b991c98298dc1e763f");
		CHECK_STR(insts[0].key, "g3:/dev/null\n/dev/zero");
	}
	dev_instances_free(insts, n);
}

/* IDs fixed as the hand-written SHA-1 (src/sha1.c, since replaced by
 * libcrypto) computed them, and as Python's hashlib agrees: inputs of
 * 54 to 56, 62 to 64 and 134 to 136 bytes ("<slot><path><path>..."), on
 * both sides of where SHA-1's padding spills into another block, and
 * slots of one to three digits. Every path is one Linux always has. */
TEST(test_ids_fixed_across_blocks)
{
	static const char *const names[] = {
	    "/dev/null",
	    "/dev/zero",
	    "/dev/full",
	    "/dev/tty",
	    "/proc/sys/kernel/osrelease",
	    "/proc/sys/kernel/hostname",
	    "/proc/sys/kernel/ostype",
	    "/proc/sys/kernel/version",
	};
	static const struct {
		size_t pick[8], n;
		const char *id[3]; /* slots 0, 10, 100 */
	} groups[] = {
	    {{0, 1, 2, 4},
	     4,
	     {"962a0b58c895f2c2b7b71124cf82b6ef368739a6",
	      "1f8c67170c509521dfe696fadbc7abbe7f2d46fd",
	      "0b8f0ff9dfe2be2239521d0cbd3d5e8e2f0c5f2b"}},
	    {{0, 1, 2, 3, 4},
	     5,
	     {"57fc1010d7f9ee50e1a10dbe1613723a9764e35d",
	      "eda4b7daf4868a4f55235cff44ad4c8fe653be7a",
	      "02dfa23432b34c7048c8576c9c4fd385d2db44ec"}},
	    {{0, 1, 2, 3, 4, 5, 6, 7},
	     8,
	     {"f49b56eeccd24a7099ac6a04c3378c4b0867ff58",
	      "6983f2017511fbfd0638cd2777e649492f814557",
	      "2ebe386026b3bd6babb6a7499444f085f63a9d86"}},
	};
	char copies[8][64];
	struct cfg_path p[8];

	for (size_t k = 0; k < 8; k++)
		if (access(names[k], F_OK) != 0)
			SKIP("no %s", names[k]);
	for (size_t gi = 0; gi < sizeof(groups) / sizeof(groups[0]); gi++) {
		struct dev_instance *insts = NULL;
		size_t n = 0;

		for (size_t k = 0; k < groups[gi].n; k++) {
			snprintf(copies[k], sizeof(copies[k]), "%s", names[groups[gi].pick[k]]);
			p[k] =
			    (struct cfg_path){.path = copies[k], .limit = 1, .permissions = "rw"};
		}
		struct cfg_group g = {.paths = p, .n_paths = groups[gi].n, .count = 101};
		CHECK_INT(paths_expand(&g, 0, &insts, &n), 0);
		CHECK_INT(n, 1);
		if (n == 1) {
			CHECK_INT(insts[0].count, 101);
			CHECK_STR(insts[0].ids[0], groups[gi].id[0]);
			CHECK_STR(insts[0].ids[10], groups[gi].id[1]);
			CHECK_STR(insts[0].ids[100], groups[gi].id[2]);
		}
		dev_instances_free(insts, n);
	}
}

TEST(test_node_fields)
{
	struct fixture f;
	struct dev_instance *insts;
	struct cfg_path *b, *c;
	char want[512], dir_mount[] = "/in/container/dir/", fixed[] = "/dev/fixed";
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "A/", "A/x0", "B/", "B/y0", "C/", "C/z0");
	add_path(&f, "A/x*");
	b = add_path(&f, "B/y*");
	b->mount_path = dir_mount;
	b->type = CFG_PATH_MOUNT;
	b->read_only = true;
	c = add_path(&f, "C/z*");
	c->mount_path = fixed;
	memcpy(c->permissions, "mrw", 4);
	n = expand(&f, 1, &insts);
	CHECK_INT(n, 1);
	if (n == 1 && insts[0].n_nodes == 3) {
		const struct dev_node *nd = insts[0].nodes;

		CHECK_STR(nd[0].container_path, under(&f, want, sizeof(want), "A/x0"));
		CHECK(!nd[0].mount);
		CHECK_STR(nd[0].permissions, "rw");
		CHECK_STR(nd[1].container_path, "/in/container/dir/y0");
		CHECK(nd[1].mount);
		CHECK(nd[1].read_only);
		CHECK_STR(nd[2].container_path, "/dev/fixed");
		CHECK(!nd[2].mount);
		CHECK(!nd[2].read_only);
		CHECK_STR(nd[2].permissions, "mrw");
	}
	dev_instances_free(insts, n);
	fixture_done(&f);
}

/* Matches are ordered by strcmp over the whole path, as Go's sort.Strings
 * does: "a-b/f" before "a/f" ('-' < '/'), "B" before "a". */
TEST(test_sort_order)
{
	struct fixture f;
	struct dev_instance *insts;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "d/", "d/a/", "d/a-b/", "d/B/", "d/a/f", "d/a-b/f", "d/B/f", "d/a/g");
	add_path(&f, "d/*/f");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 3);
	HOSTS(&f, insts, n, 0, "d/B/f");
	HOSTS(&f, insts, n, 1, "d/a-b/f");
	HOSTS(&f, insts, n, 2, "d/a/f");
	dev_instances_free(insts, n);
	fixture_done(&f);
}

/* Unlike Go's fs.Glob, a wildcard never matches a leading '.' (udev's
 * hidden temporary symlinks); a pattern that spells the '.' does. "." and
 * ".." are never yielded. */
TEST(test_hidden_entries)
{
	struct fixture f;
	struct dev_instance *insts;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "h/", "h/.hid", "h/vis", "h/.hd/", "h/.hd/vis");
	add_path(&f, "h/*");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "h/vis");
	dev_instances_free(insts, n);

	set_path(&f, 0, "h/.*");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 2);
	HOSTS(&f, insts, n, 0, "h/.hd");
	HOSTS(&f, insts, n, 1, "h/.hid");
	dev_instances_free(insts, n);

	set_path(&f, 0, "h/*/vis");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 0);
	dev_instances_free(insts, n);

	set_path(&f, 0, "h/.hd/vis");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "h/.hd/vis");
	dev_instances_free(insts, n);
	fixture_done(&f);
}

TEST(test_pattern_valid)
{
	CHECK(paths_pattern_valid("/dev/ttyUSB*"));
	CHECK(paths_pattern_valid("/dev/snd/pcmC[0-9]D?c"));
	CHECK(paths_pattern_valid("/dev/lit\\*"));
	CHECK(!paths_pattern_valid("/dev/x["));
	CHECK(!paths_pattern_valid("/dev/[]/x"));
	CHECK(!paths_pattern_valid("/dev/x\\"));
	CHECK(!paths_pattern_valid(NULL));
}

TEST(test_escaped_meta)
{
	struct fixture f;
	struct dev_instance *insts;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "e/", "e/a*b", "e/axb");
	add_path(&f, "e/a\\*b");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "e/a*b");
	dev_instances_free(insts, n);
	fixture_done(&f);
}

/* Go's path.Match syntax, not fnmatch's: '!' is no negation, no POSIX
 * classes, '?' is one UTF-8 character, and a malformed pattern is an error
 * (fs.Glob's ErrBadPattern) rather than a literal. */
TEST(test_go_pattern_syntax)
{
	struct fixture f;
	struct dev_instance sentinel, *insts;
	size_t n;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "p/", "p/!a", "p/b", "p/1", "p/\xc3\xa9", "p/:", "p/d]", "p/x[");
	add_path(&f, "p/[!a]*");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "p/!a");
	dev_instances_free(insts, n);

	set_path(&f, 0, "p/?");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 4);
	HOSTS(&f, insts, n, 0, "p/1");
	HOSTS(&f, insts, n, 1, "p/:");
	HOSTS(&f, insts, n, 2, "p/b");
	HOSTS(&f, insts, n, 3, "p/\xc3\xa9");
	dev_instances_free(insts, n);

	/* the class of '[', ':', 'd', 'i', 'g', 't', then a literal ']' */
	set_path(&f, 0, "p/[[:digit:]]");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "p/d]");
	dev_instances_free(insts, n);

	set_path(&f, 0, "p/x\\[");
	n = expand(&f, 0, &insts);
	CHECK_INT(n, 1);
	HOSTS(&f, insts, n, 0, "p/x[");
	dev_instances_free(insts, n);

	/* malformed, even where nothing would be read */
	static const char *const bad[] = {"p/x[",  "nope/[a-]", "p/[]",	  "p/[^]",
					  "p/a\\", "p/[\xa4]",	"nope[/x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		set_path(&f, 0, bad[i]);
		insts = &sentinel;
		n = 9;
		CHECK_INT(paths_expand(&f.group, 0, &insts, &n), -EINVAL);
		CHECK(insts == &sentinel);
		CHECK_INT(n, 9);
	}
	fixture_done(&f);
}

TEST(test_expand_arguments)
{
	struct fixture f;
	struct dev_instance *insts = NULL;
	size_t n = 0;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	CHECK_INT(paths_expand(NULL, 0, &insts, &n), -EINVAL);
	CHECK_INT(paths_expand(&f.group, 0, NULL, &n), -EINVAL);
	CHECK_INT(paths_expand(&f.group, 0, &insts, NULL), -EINVAL);
	f.group.count = 0;
	CHECK_INT(paths_expand(&f.group, 0, &insts, &n), -EINVAL);
	f.group.count = 1;
	/* no paths: nothing to expand */
	n = 5;
	CHECK_INT(paths_expand(&f.group, 0, &insts, &n), 0);
	CHECK_INT(n, 0);
	CHECK(insts == NULL);
	fixture_done(&f);
}

/* Out of descriptors is an error, not "the directory holds nothing":
 * otherwise every device would vanish from the kubelet's list. */
TEST(test_out_of_descriptors)
{
	struct fixture f;
	struct dev_instance sentinel, *insts = &sentinel;
	struct rlimit old, low;
	char **dirs = NULL;
	size_t n = 7;
	int fd;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "A/", "A/x0", "A/sub/");
	add_path(&f, "A/*/x*");
	fd = dup(0);
	CHECK(fd >= 0 && getrlimit(RLIMIT_NOFILE, &old) == 0);
	if (fd >= 0) {
		close(fd);
		low = old;
		low.rlim_cur = (rlim_t)fd; /* the next open(2) fails */
		CHECK_INT(setrlimit(RLIMIT_NOFILE, &low), 0);
		CHECK_INT(paths_expand(&f.group, 0, &insts, &n), -EMFILE);
		CHECK(insts == &sentinel);
		CHECK_INT(n, 7);
		n = 0;
		CHECK_INT(paths_watch_dirs(&f.group, &dirs, &n), -EMFILE);
		CHECK(dirs == NULL);
		CHECK_INT(n, 0);
		CHECK_INT(setrlimit(RLIMIT_NOFILE, &old), 0);
	}
	fixture_done(&f);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

TEST(test_thousand_matches)
{
	struct fixture f;
	struct dev_instance *insts;
	char buf[512];
	double best = 1e9;
	size_t n = 0;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "many/", "one");
	for (unsigned i = 0; i < 1000; i++) {
		FILE *fp =
		    fopen(under(&f, buf, sizeof(buf), "many/tty%04u", (i * 389) % 1000), "w");

		CHECK(fp != NULL);
		if (fp)
			fclose(fp);
	}
	add_path(&f, "many/tty*");
	add_path(&f, "one")->limit = 1000;
	for (int round = 0; round < 5; round++) {
		double t0 = now_ms(), dt;

		CHECK_INT(paths_expand(&f.group, 0, &insts, &n), 0);
		dt = now_ms() - t0;
		if (dt < best)
			best = dt;
		CHECK_INT(n, 1000);
		if (round == 0) {
			check_identity(insts, n, 0);
			HOSTS(&f, insts, n, 0, "many/tty0000", "one");
			HOSTS(&f, insts, n, 999, "many/tty0999", "one");
		}
		dev_instances_free(insts, n);
	}
	printf("  expand of 1000 matches: %.2f ms (best of 5)\n", best);
	/* Generous: this runs under ASan and UBSan. */
	CHECK(best < 100.0);
	fixture_done(&f);
}

/* ---- paths_watch_dirs ---- */

static void free_dirs(char **dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i]);
	free(dirs);
}

/* dirs holds exactly the wanted directories (relative to the root, "" for
 * the root itself, absolute when starting with '/'), each once, all
 * normalised. */
static void check_dirs(const struct fixture *f, char **dirs, size_t n, const char *const *want,
		       size_t n_want)
{
	char buf[512];

	CHECK_INT(n, n_want);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(dirs[i]);

		CHECK(strstr(dirs[i], "//") == NULL);
		CHECK(len == 1 || dirs[i][len - 1] != '/');
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(dirs[i], dirs[j]) != 0);
	}
	for (size_t w = 0; w < n_want; w++) {
		bool found = false;

		if (want[w][0] == '/')
			snprintf(buf, sizeof(buf), "%s", want[w]);
		else if (want[w][0] == '\0')
			snprintf(buf, sizeof(buf), "%s", f->root);
		else
			under(f, buf, sizeof(buf), "%s", want[w]);
		for (size_t i = 0; i < n; i++)
			found = found || strcmp(dirs[i], buf) == 0;
		if (!found)
			fprintf(stderr, "  missing watch dir %s\n", buf);
		CHECK(found);
	}
}
#define WATCH(f, ...)                                                                              \
	do {                                                                                       \
		static const char *const watch_want_[] = {__VA_ARGS__};                            \
		char **watch_dirs_ = NULL;                                                         \
		size_t watch_n_ = 0;                                                               \
		CHECK_INT(paths_watch_dirs(&(f)->group, &watch_dirs_, &watch_n_), 0);              \
		check_dirs(f, watch_dirs_, watch_n_, watch_want_,                                  \
			   sizeof(watch_want_) / sizeof(watch_want_[0]));                          \
		free_dirs(watch_dirs_, watch_n_);                                                  \
	} while (0)

TEST(test_watch_deep_glob)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "a/", "a/b/");
	add_path(&f, "a/b/*/c*/d?");
	/* nothing below the literal prefix yet */
	WATCH(&f, "a/b");

	MAKE(&f, "a/b/x/", "a/b/y/", "a/b/file", "a/b/x/c1/", "a/b/x/c2", "a/b/x/zz/", "a/b/y/cz/",
	     "a/b/x/c1/d1", "a/b/x/c1/dd/");
	/* every level's directories; not files, not non-matching names,
	 * not the last level's matches */
	WATCH(&f, "a/b", "a/b/x", "a/b/y", "a/b/x/c1", "a/b/y/cz");
	fixture_done(&f);
}

TEST(test_watch_missing_prefix)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "m/", "file");
	add_path(&f, "m/n/*/x");
	/* m/n does not exist: its deepest existing ancestor */
	WATCH(&f, "m");

	f.group.n_paths = 0;
	add_path(&f, "nope/deeper/*");
	WATCH(&f, "");

	/* a prefix that exists but is not a directory */
	f.group.n_paths = 0;
	add_path(&f, "file/*");
	WATCH(&f, "");

	/* once it appears, the prefix itself is watched */
	MAKE(&f, "m/n/");
	f.group.n_paths = 0;
	add_path(&f, "m/n/*/x");
	WATCH(&f, "m/n");
	fixture_done(&f);
}

TEST(test_watch_literal)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "fuse", "sub/");
	add_path(&f, "fuse");
	WATCH(&f, "");

	f.group.n_paths = 0;
	add_path(&f, "sub/ttyX");
	WATCH(&f, "sub");

	f.group.n_paths = 0;
	add_path(&f, "missing/fuse");
	WATCH(&f, "");

	/* a glob only in the last component behaves the same */
	f.group.n_paths = 0;
	add_path(&f, "sub/tty*");
	WATCH(&f, "sub");
	fixture_done(&f);
}

TEST(test_watch_usb_layout)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "bus/", "bus/usb/", "bus/usb/001/", "bus/usb/002/", "bus/usb/devices",
	     "bus/usb/001/001", "bus/usb/002/003");
	add_path(&f, "bus/usb/*/*");
	WATCH(&f, "bus/usb", "bus/usb/001", "bus/usb/002");
	fixture_done(&f);
}

TEST(test_watch_shared_and_appended)
{
	struct fixture f;
	char **dirs = NULL;
	size_t n = 0;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "a/", "a/b/", "a/b/x/", "a/b/x/c1/", "snd/");
	add_path(&f, "a/b/*/c*/d?");
	add_path(&f, "a/b/x/*");
	add_path(&f, "snd/pcm*");
	add_path(&f, "snd/control*");
	WATCH(&f, "a/b", "a/b/x", "a/b/x/c1", "snd");

	/* appending: what is already in the list is not added again */
	CHECK_INT(paths_watch_dirs(&f.group, &dirs, &n), 0);
	CHECK_INT(n, 4);
	CHECK_INT(paths_watch_dirs(&f.group, &dirs, &n), 0);
	CHECK_INT(n, 4);
	f.group.n_paths = 0;
	add_path(&f, "fuse");
	CHECK_INT(paths_watch_dirs(&f.group, &dirs, &n), 0);
	CHECK_INT(n, 5);
	if (n == 5)
		CHECK_STR(dirs[4], f.root);
	free_dirs(dirs, n);

	/* an empty group adds nothing */
	dirs = NULL;
	n = 0;
	f.group.n_paths = 0;
	CHECK_INT(paths_watch_dirs(&f.group, &dirs, &n), 0);
	CHECK_INT(n, 0);
	CHECK(dirs == NULL);
	fixture_done(&f);
}

TEST(test_watch_normalised)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "a/", "a/b/", "a/b/x/");
	add_path(&f, "/a//b/./*//c*/");
	WATCH(&f, "a/b", "a/b/x");

	f.group.n_paths = 0;
	add_path(&f, "a/b/");
	WATCH(&f, "a");
	fixture_done(&f);
}

TEST(test_watch_escaped_and_hidden)
{
	struct fixture f;

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "lit*dir/", "h/", "h/.hd/", "h/vis/");
	add_path(&f, "lit\\*dir/*");
	add_path(&f, "h/*/x");
	WATCH(&f, "lit*dir", "h", "h/vis");

	f.group.n_paths = 0;
	add_path(&f, "no\\*dir/*");
	WATCH(&f, "");

	/* a malformed level matches nothing: the walk stops above it */
	f.group.n_paths = 0;
	add_path(&f, "h/[/x");
	WATCH(&f, "h");
	fixture_done(&f);
}

TEST(test_watch_symlinked_dir)
{
	struct fixture f;
	char target[512], link[512];

	if (!fixture_init(&f))
		SKIP("no temporary directory under /tmp");
	MAKE(&f, "by-id/", "real/");
	CHECK_INT(symlink(under(&f, target, sizeof(target), "real"),
			  under(&f, link, sizeof(link), "by-id/usb-x")),
		  0);
	add_path(&f, "by-id/*/*");
	WATCH(&f, "by-id", "by-id/usb-x");
	fixture_done(&f);
}

TEST(test_watch_root_and_arguments)
{
	char root_glob[] = "/*", root[] = "/";
	struct cfg_path p = {.path = root_glob, .limit = 1};
	struct cfg_group g = {.paths = &p, .n_paths = 1, .count = 1};
	char **dirs = NULL;
	size_t n = 0;

	CHECK_INT(paths_watch_dirs(&g, &dirs, &n), 0);
	CHECK_INT(n, 1);
	if (n == 1)
		CHECK_STR(dirs[0], "/");
	free_dirs(dirs, n);

	dirs = NULL;
	n = 0;
	p.path = root;
	CHECK_INT(paths_watch_dirs(&g, &dirs, &n), 0);
	CHECK_INT(n, 0);

	CHECK_INT(paths_watch_dirs(NULL, &dirs, &n), -EINVAL);
	CHECK_INT(paths_watch_dirs(&g, NULL, &n), -EINVAL);
	CHECK_INT(paths_watch_dirs(&g, &dirs, NULL), -EINVAL);
	n = 3;
	CHECK_INT(paths_watch_dirs(&g, &dirs, &n), -EINVAL);
}

/* ---- paths_event_matters: which events can change the expansion ---- */

/* Whether an event for name in dir matters to a group of the given paths. */
static bool matters(const char *const *paths, const char *dir, const char *name)
{
	struct cfg_path p[4] = {{0}};
	size_t n = 0;
	for (; paths[n] && n < 4; n++)
		p[n] = (struct cfg_path){.path = (char *)paths[n], .limit = 1};
	struct cfg_group g = {.paths = p, .n_paths = n, .count = 1};
	return paths_event_matters(&g, dir, name);
}

TEST(test_event_matters_leaf_glob)
{
	const char *const tty[] = {"/dev/ttyUSB*", NULL};
	CHECK(matters(tty, "/dev", "ttyUSB0"));
	CHECK(!matters(tty, "/dev", "ttyS0"));
	CHECK(!matters(tty, "/dev", "other"));
	CHECK(!matters(tty, "/dev/", "null"));	  /* a trailing '/' in the dir */
	CHECK(matters(tty, "/dev", ""));	  /* the directory itself */
	CHECK(!matters(tty, "/tmp", "ttyUSB0"));  /* another directory */
	CHECK(matters(tty, "/dev/ttyUSB0", "x")); /* below a match */
	const char *const hidden[] = {"/dev/*", NULL};
	CHECK(!matters(hidden, "/dev", ".#tmp1234")); /* udev's temporary names */
	CHECK(matters(hidden, "/dev", "a"));
	const char *const dot[] = {"/dev/.x*", NULL};
	CHECK(matters(dot, "/dev", ".x1"));
	CHECK(!matters(dot, "/dev", "x1"));
}

TEST(test_event_matters_intermediate_levels)
{
	const char *const usb[] = {"/dev/bus/usb/*/*", NULL};
	CHECK(matters(usb, "/dev/bus/usb", "003"));	/* a new bus directory */
	CHECK(matters(usb, "/dev/bus/usb/003", "005")); /* a node in it */
	CHECK(!matters(usb, "/dev/bus/usb", ".hidden"));
	CHECK(matters(usb, "/dev/bus", "usb")); /* the literal prefix comes */
	CHECK(!matters(usb, "/dev/bus", "pci"));
	CHECK(matters(usb, "/dev", "bus")); /* its deepest existing ancestor */
	CHECK(!matters(usb, "/dev", "ttyS0"));
	const char *const snd[] = {"/dev/snd/pcm[CD]*", "/dev/snd/control?", NULL};
	CHECK(matters(snd, "/dev/snd", "pcmC0D0p"));
	CHECK(matters(snd, "/dev/snd", "controlC"));
	CHECK(!matters(snd, "/dev/snd", "timer"));
	CHECK(!matters(snd, "/dev/snd", "control12"));
	const char *const esc[] = {"/dev/a\\*b/*", NULL}; /* a literal '*' */
	CHECK(matters(esc, "/dev", "a*b"));
	CHECK(!matters(esc, "/dev", "axb"));
}

TEST(test_event_matters_relative_and_bad)
{
	const char *const rel[] = {"dev/tty*", NULL};
	CHECK(matters(rel, "dev", "tty1"));
	CHECK(!matters(rel, "dev", "null"));
	CHECK(!matters(rel, "/dev", "tty1")); /* absolute is not relative */
	const char *const bad[] = {"/dev/x[", NULL};
	CHECK(matters(bad, "/dev", "anything")); /* malformed: a retry is due */
	const char *const lit[] = {"/dev/snd", NULL};
	CHECK(matters(lit, "/dev/snd", "pcmC0D0p")); /* a Device directory's nodes */
	CHECK(matters(lit, "/dev", "snd"));
	CHECK(!matters(lit, "/dev", "sndx"));
}

int main(void)
{
	RUN(test_limit_caps_pairs);
	RUN(test_shorter_first_path);
	RUN(test_optional_and_required_missing);
	RUN(test_single_file_count);
	RUN(test_ids_match_generic_device_plugin);
	RUN(test_ids_fixed_across_blocks);
	RUN(test_node_fields);
	RUN(test_sort_order);
	RUN(test_hidden_entries);
	RUN(test_pattern_valid);
	RUN(test_escaped_meta);
	RUN(test_go_pattern_syntax);
	RUN(test_expand_arguments);
	RUN(test_out_of_descriptors);
	RUN(test_thousand_matches);
	RUN(test_watch_deep_glob);
	RUN(test_watch_missing_prefix);
	RUN(test_watch_literal);
	RUN(test_watch_usb_layout);
	RUN(test_event_matters_leaf_glob);
	RUN(test_event_matters_intermediate_levels);
	RUN(test_event_matters_relative_and_bad);
	RUN(test_watch_shared_and_appended);
	RUN(test_watch_normalised);
	RUN(test_watch_escaped_and_hidden);
	RUN(test_watch_symlinked_dir);
	RUN(test_watch_root_and_arguments);
	return CHECK_SUMMARY();
}
