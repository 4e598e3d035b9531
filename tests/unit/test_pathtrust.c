/* pathtrust: the "root put it there" rule, on a real tree in /tmp whose
 * owners and modes are set as another user's files would be (chown needs
 * root: skipped otherwise). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "check.h"
#include "pathtrust.h"

#define NOBODY 65534

static char root[64];

static const char *at(const char *rel)
{
	static char buf[4][256];
	static int next;
	char *b = buf[next++ % 4];
	int n = snprintf(b, sizeof(buf[0]), "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof(buf[0]))
		abort();
	return b;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void must(int ok, const char *what)
{
	if (!ok) {
		perror(what);
		exit(1);
	}
}

static void dir(const char *rel, mode_t mode, uid_t uid)
{
	must(mkdir(at(rel), 0700) == 0, rel);
	must(chmod(at(rel), mode) == 0, rel); /* no umask */
	must(lchown(at(rel), uid, uid) == 0, rel);
}

static void node(const char *rel, uid_t uid)
{
	must(mknod(at(rel), S_IFCHR | 0600, makedev(1, 3)) == 0, rel);
	must(lchown(at(rel), uid, uid) == 0, rel);
}

static void link_to(const char *rel, const char *target, uid_t uid)
{
	must(symlink(target, at(rel)) == 0, rel);
	must(lchown(at(rel), uid, uid) == 0, rel);
}

/* The tree:
 *   safe/        0755 root   dev (node), lnk -> dev, up -> ../safe/dev
 *   sticky/      1777 root   mine (root's node), theirs (nobody's node),
 *                            planted -> ../safe/dev (nobody's link),
 *                            rootlink -> ../safe/dev (root's link),
 *                            hard (a second link to safe/hardsrc)
 *   open/        0777 root   dev (root's node)
 *   grp/         0775 root:100  dev;  grp0/ 0775 root:0  dev
 *   theirs/      0755 nobody dev
 *   via/         0755 root   out -> ../sticky/planted (root's link to a planted one)
 *   loop/        0755 root   a -> b, b -> a */
static void build_tree(void)
{
	snprintf(root, sizeof(root), "/tmp/test_pathtrust.XXXXXX");
	must(mkdtemp(root) != NULL, "mkdtemp");
	must(chmod(root, 0755) == 0, "chmod root");
	dir("safe", 0755, 0);
	node("safe/dev", 0);
	node("safe/hardsrc", 0);
	link_to("safe/lnk", "dev", 0);
	link_to("safe/up", "../safe/dev", 0);
	dir("sticky", 01777, 0);
	node("sticky/mine", 0);
	node("sticky/theirs", NOBODY);
	link_to("sticky/planted", "../safe/dev", NOBODY);
	link_to("sticky/rootlink", "../safe/dev", 0);
	must(link(at("safe/hardsrc"), at("sticky/hard")) == 0, "link");
	dir("open", 0777, 0);
	node("open/dev", 0);
	dir("grp", 0775, 0);
	must(lchown(at("grp"), 0, 100) == 0, "chown grp");
	node("grp/dev", 0);
	dir("grp0", 0775, 0);
	node("grp0/dev", 0);
	dir("theirs", 0755, NOBODY);
	node("theirs/dev", 0);
	dir("via", 0755, 0);
	link_to("via/out", "../sticky/planted", 0);
	dir("loop", 0755, 0);
	link_to("loop/a", "b", 0);
	link_to("loop/b", "a", 0);
}

static int check(const char *rel, char *why, size_t len)
{
	return pathtrust_check(at(rel), NULL, why, len);
}

TEST(root_only_directories_are_trusted)
{
	char why[256] = "";
	CHECK_INT(check("safe/dev", why, sizeof(why)), 0);
	CHECK_INT(check("safe/lnk", why, sizeof(why)), 0);
	CHECK_INT(check("safe/up", why, sizeof(why)), 0);
	CHECK_INT(check("safe/../safe/./dev", why, sizeof(why)), 0);
	CHECK_INT(check("grp0/dev", why, sizeof(why)), 0); /* group root may write */
	CHECK_INT(check("safe", why, sizeof(why)), 0);	   /* a directory itself */
	CHECK_STR(why, "");
}

TEST(sticky_directories_trust_roots_own_entries_only)
{
	char why[256] = "";
	CHECK_INT(check("sticky/mine", why, sizeof(why)), 0);
	CHECK_INT(check("sticky/rootlink", why, sizeof(why)), 0);
	CHECK_INT(check("sticky/theirs", why, sizeof(why)), -EPERM);
	CHECK_CONTAINS(why, "sticky/theirs (owner uid 65534)");
	CHECK_CONTAINS(why, "mode 1777");
	CHECK_INT(check("sticky/planted", why, sizeof(why)), -EPERM);
	/* a hard link: anyone could have made it to a root file */
	CHECK_INT(check("sticky/hard", why, sizeof(why)), -EPERM);
}

TEST(writable_by_others_trusts_nothing_below)
{
	char why[256] = "";
	CHECK_INT(check("open/dev", why, sizeof(why)), -EPERM);
	CHECK_CONTAINS(why, "mode 0777");
	CHECK_INT(check("grp/dev", why, sizeof(why)), -EPERM);
	CHECK_INT(check("theirs/dev", why, sizeof(why)), -EPERM);
	CHECK_CONTAINS(why, "owner uid 65534");
}

TEST(a_root_link_to_a_planted_link_is_refused)
{
	char why[256] = "";
	CHECK_INT(check("via/out", why, sizeof(why)), -EPERM);
	CHECK_CONTAINS(why, "sticky/planted");
}

TEST(unresolvable_paths)
{
	CHECK_INT(check("loop/a", NULL, 0), -ELOOP);
	CHECK_INT(check("safe/none", NULL, 0), -ENOENT);
	CHECK_INT(check("safe/dev/x", NULL, 0), -ENOTDIR);
	CHECK_INT(pathtrust_check("", NULL, NULL, 0), -ENOENT);
}

TEST(relative_paths_start_at_the_working_directory)
{
	char cwd[4096];
	must(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	must(chdir(root) == 0, "chdir");
	CHECK_INT(pathtrust_check("safe/dev", NULL, NULL, 0), 0);
	CHECK_INT(pathtrust_check("sticky/theirs", NULL, NULL, 0), -EPERM);
	must(chdir(cwd) == 0, "chdir back");
}

TEST(the_memo_gives_the_same_verdicts)
{
	struct pathtrust_memo memo = {0};
	const char *rels[] = {"safe/dev",    "safe/lnk", "sticky/mine", "sticky/theirs",
			      "sticky/hard", "safe/up",	 "open/dev",	"safe/dev"};
	for (size_t i = 0; i < sizeof(rels) / sizeof(*rels); i++)
		CHECK_INT(pathtrust_check(at(rels[i]), &memo, NULL, 0), check(rels[i], NULL, 0));
	CHECK(memo.dir != NULL);
	pathtrust_memo_clear(&memo);
	CHECK(memo.dir == NULL);
}

TEST(filter_keeps_order_and_drops_only_refused)
{
	const char *rels[] = {"safe/dev", "sticky/theirs", "safe/none", "sticky/mine", "open/dev"};
	char *v[5];
	size_t n = 5;
	for (size_t i = 0; i < n; i++)
		must((v[i] = strdup(at(rels[i]))) != NULL, "strdup");
	CHECK_INT(pathtrust_filter(v, NULL, &n), 0);
	CHECK_INT((int)n, 3);
	CHECK_STR(v[0], at("safe/dev"));
	CHECK_STR(v[1], at("safe/none")); /* all root's on the way: kept */
	CHECK_STR(v[2], at("sticky/mine"));
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

TEST(readdir_types_give_the_same_verdicts)
{
	/* the types readdir gives: a plain entry of a root-only directory is
	 * taken without a stat, a link still has its target checked */
	const char *rels[] = {"safe/dev", "safe/lnk", "via/out", "sticky/theirs", "sticky/mine"};
	unsigned char types[] = {DT_CHR, DT_LNK, DT_LNK, DT_CHR, DT_CHR};
	char *v[5];
	size_t n = 5;
	for (size_t i = 0; i < n; i++)
		must((v[i] = strdup(at(rels[i]))) != NULL, "strdup");
	CHECK_INT(pathtrust_filter(v, types, &n), 0);
	CHECK_INT((int)n, 3);
	CHECK_STR(v[0], at("safe/dev"));
	CHECK_STR(v[1], at("safe/lnk"));
	CHECK_STR(v[2], at("sticky/mine"));
	CHECK_INT(types[1], DT_LNK);
	CHECK_INT(types[2], DT_CHR);
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

int main(void)
{
	if (geteuid() != 0)
		SKIP_ALL("chown needs root");
	else
		build_tree();
	RUN(root_only_directories_are_trusted);
	RUN(sticky_directories_trust_roots_own_entries_only);
	RUN(writable_by_others_trusts_nothing_below);
	RUN(a_root_link_to_a_planted_link_is_refused);
	RUN(unresolvable_paths);
	RUN(relative_paths_start_at_the_working_directory);
	RUN(the_memo_gives_the_same_verdicts);
	RUN(filter_keeps_order_and_drops_only_refused);
	RUN(readdir_types_give_the_same_verdicts);
	if (root[0] && nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "test_pathtrust: could not remove %s\n", root);
	return CHECK_SUMMARY();
}
