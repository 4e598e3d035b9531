/* fsutil: mkdir -p and the atomic file writer, in a temporary directory.
 * Atomicity is watched with inotify (the final name only ever appears by
 * a rename) and with a reader holding the old file open; failures (a
 * read-only or non-directory parent, a failed rename, a write cut short)
 * must leave no temporary file and the old file as it was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "fsutil.h"
#include "nfd.h"

static char root[64];

/* root/rel into buf. */
static const char *at(char *buf, size_t len, const char *rel)
{
	int n = snprintf(buf, len, "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= len)
		abort();
	return buf;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

/* A fresh, empty root for each test. */
static void fresh_root(void)
{
	if (root[0])
		nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	snprintf(root, sizeof(root), "/tmp/test_fsutil.XXXXXX");
	if (!mkdtemp(root)) {
		perror("test_fsutil: mkdtemp");
		exit(1);
	}
}

/* The names in dir, sorted, space-separated, into buf; how many. */
static int list_dir(const char *dir, char *buf, size_t len)
{
	struct dirent **v;
	int n = scandir(dir, &v, NULL, alphasort), k = 0;

	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *name = v[i]->d_name;
		if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
			size_t off = strlen(buf);
			snprintf(buf + off, len - off, "%s%s", k++ ? " " : "", name);
		}
		free(v[i]);
	}
	if (n >= 0)
		free(v);
	return n < 0 ? -1 : k;
}

/* The file's text (up to 4 KiB) into buf; "" when unreadable. */
static const char *slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	return buf;
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mode : 0;
}

/* ---- mkdir -p ---- */

TEST(mkdir_p_creates_parents)
{
	char p[256], q[256];
	mode_t old = umask(022);

	fresh_root();
	CHECK_INT(fsutil_mkdir_p(at(p, sizeof(p), "a/b/c"), 0750), 0);
	umask(old);
	CHECK(S_ISDIR(mode_of(p)));
	CHECK_INT(mode_of(p) & 07777, 0750);
	CHECK_INT(mode_of(at(q, sizeof(q), "a")) & 07777, 0750);
	/* There already: fine, and the mode of what exists is left alone. */
	CHECK_INT(fsutil_mkdir_p(p, 0700), 0);
	CHECK_INT(mode_of(p) & 07777, 0750);
	CHECK_INT(fsutil_mkdir_p("/", 0755), 0);
	/* Doubled and trailing slashes; a relative path. */
	CHECK_INT(fsutil_mkdir_p(at(p, sizeof(p), "x//y/"), 0755), 0);
	CHECK(S_ISDIR(mode_of(at(p, sizeof(p), "x/y"))));
	char cwd[256];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	CHECK_INT(chdir(root), 0);
	CHECK_INT(fsutil_mkdir_p("rel/dir", 0755), 0);
	CHECK_INT(chdir(cwd), 0);
	CHECK(S_ISDIR(mode_of(at(p, sizeof(p), "rel/dir"))));
}

TEST(mkdir_p_errors)
{
	char p[256], f[256];

	fresh_root();
	CHECK_INT(fsutil_mkdir_p(NULL, 0755), -EINVAL);
	CHECK_INT(fsutil_mkdir_p("", 0755), -EINVAL);
	/* A file where a directory should be: last or in the middle. */
	int fd = open(at(f, sizeof(f), "file"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(fsutil_mkdir_p(f, 0755), -ENOTDIR);
	CHECK_INT(fsutil_mkdir_p(at(p, sizeof(p), "file/sub"), 0755), -ENOTDIR);
	/* Longer than PATH_MAX. */
	char *lng = malloc(5000);
	CHECK(lng != NULL);
	if (lng) {
		memset(lng, 'a', 4999);
		lng[4999] = '\0';
		CHECK_INT(fsutil_mkdir_p(lng, 0755), -ENAMETOOLONG);
		free(lng);
	}
}

/* ---- the atomic writer ---- */

TEST(write_new_file)
{
	char p[256], names[512], buf[4096];
	mode_t old = umask(077); /* the mode must not depend on it */

	fresh_root();
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "state"), "hello\n", 6, 0644), 0);
	umask(old);
	CHECK_STR(slurp(p, buf, sizeof(buf)), "hello\n");
	CHECK(S_ISREG(mode_of(p)));
	CHECK_INT(mode_of(p) & 07777, 0644);
	/* Only the file: no temporary file left. */
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
	CHECK_STR(names, "state");
	/* Another mode, and empty data (NULL with length 0). */
	CHECK_INT(fsutil_write_atomic(p, NULL, 0, 0600), 0);
	CHECK_STR(slurp(p, buf, sizeof(buf)), "");
	CHECK_INT(mode_of(p) & 07777, 0600);
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
}

TEST(write_replaces_atomically)
{
	char p[256], names[512], buf[4096];

	fresh_root();
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "state"), "old\n", 4, 0644), 0);
	struct stat st0;
	CHECK_INT(stat(p, &st0), 0);
	/* A reader of the old file, and a watch on the directory. */
	int reader = open(p, O_RDONLY | O_CLOEXEC);
	CHECK(reader >= 0);
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	CHECK(ino >= 0);
	CHECK(inotify_add_watch(ino, root, IN_CREATE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) >=
	      0);

	CHECK_INT(fsutil_write_atomic(p, "new text\n", 9, 0644), 0);

	/* The final name was never written to: it appeared by one rename of
	 * a hidden ".state.XXXXXX" file, made and written beside it. */
	char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(ino, ev, sizeof(ev));
	int created = 0, moved = 0;
	CHECK(n > 0);
	for (char *q = ev; n > 0 && q < ev + n;) {
		const struct inotify_event *e = (const struct inotify_event *)q;
		const char *name = e->len ? e->name : "";
		if (e->mask & IN_MOVED_TO) {
			moved++;
			CHECK_STR(name, "state");
		} else {
			CHECK(strncmp(name, ".state.", 7) == 0 && strlen(name) == 13);
			created += !!(e->mask & IN_CREATE);
		}
		q += sizeof(*e) + e->len;
	}
	CHECK_INT(created, 1);
	CHECK_INT(moved, 1);

	/* The reader still reads the whole old file; the name, the new one. */
	ssize_t got = reader >= 0 ? read(reader, buf, sizeof(buf) - 1) : -1;
	buf[got > 0 ? got : 0] = '\0';
	CHECK_STR(buf, "old\n");
	CHECK_STR(slurp(p, buf, sizeof(buf)), "new text\n");
	struct stat st1;
	CHECK_INT(stat(p, &st1), 0);
	CHECK(st1.st_ino != st0.st_ino);
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
	if (reader >= 0)
		close(reader);
	if (ino >= 0)
		close(ino);
}

TEST(write_creates_directory)
{
	char p[256], d[256], buf[64];
	mode_t old = umask(022);

	fresh_root();
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "var/run/cdi/x.json"), "{}\n", 3, 0644), 0);
	umask(old);
	CHECK_STR(slurp(p, buf, sizeof(buf)), "{}\n");
	CHECK_INT(mode_of(at(d, sizeof(d), "var/run/cdi")) & 07777, 0755);
	CHECK_INT(mode_of(at(d, sizeof(d), "var")) & 07777, 0755);
	CHECK(S_ISDIR(mode_of(d)));
}

/* Turns CAP_DAC_OVERRIDE (root's leave to write anywhere) off or back on
 * in the effective set; false when that cannot be done. */
static bool dac_override(bool on)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct c[2];
	const unsigned mask = 1u << CAP_DAC_OVERRIDE;

	if (syscall(SYS_capget, &h, c) != 0)
		return false;
	if (on)
		c[0].effective |= c[0].permitted & mask;
	else
		c[0].effective &= ~mask;
	return syscall(SYS_capset, &h, c) == 0;
}

TEST(write_errors)
{
	char p[256], f[256], names[512];

	fresh_root();
	CHECK_INT(fsutil_write_atomic(NULL, "", 0, 0644), -EINVAL);
	CHECK_INT(fsutil_write_atomic("", "", 0, 0644), -EINVAL);
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "x"), NULL, 1, 0644), -EINVAL);
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "dir/"), "x", 1, 0644), -EISDIR);
	/* The parent is a file. */
	int fd = open(at(f, sizeof(f), "file"), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "file/x"), "x", 1, 0644), -ENOTDIR);
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "file/sub/x"), "x", 1, 0644), -ENOTDIR);
	/* A name too long for the temporary file (NAME_MAX). */
	char lng[300], lp[600];
	memset(lng, 'n', 250);
	lng[250] = '\0';
	CHECK_INT(fsutil_write_atomic(at(lp, sizeof(lp), lng), "x", 1, 0644), -ENAMETOOLONG);
	/* Nothing left behind by any of them. */
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
	CHECK_STR(names, "file");
}

TEST(write_read_only_parent)
{
	char d[256], p[256], names[512], buf[64];

	fresh_root();
	CHECK_INT(fsutil_mkdir_p(at(d, sizeof(d), "ro"), 0755), 0);
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "ro/state"), "old\n", 4, 0644), 0);
	CHECK_INT(chmod(d, 0555), 0);
	if (geteuid() == 0 && !dac_override(false)) {
		CHECK_INT(chmod(d, 0755), 0);
		SKIP("root, and cannot drop CAP_DAC_OVERRIDE: %s", strerror(errno));
	}
	int r = fsutil_write_atomic(p, "new\n", 4, 0644);
	/* Also where the directory is missing under a read-only one. */
	char q[256];
	int r2 = fsutil_write_atomic(at(q, sizeof(q), "ro/sub/state"), "x", 1, 0644);
	if (geteuid() == 0)
		CHECK(dac_override(true));
	CHECK_INT(r, -EACCES);
	CHECK_INT(r2, -EACCES);
	CHECK_INT(chmod(d, 0755), 0);
	CHECK_STR(slurp(p, buf, sizeof(buf)), "old\n");
	CHECK_INT(list_dir(d, names, sizeof(names)), 1);
	CHECK_STR(names, "state");
}

TEST(failed_rename_leaves_nothing)
{
	char p[256], f[256], names[512];

	fresh_root();
	/* The name is taken by a non-empty directory: written, then the
	 * rename fails; the temporary file must go. */
	CHECK_INT(fsutil_mkdir_p(at(f, sizeof(f), "state/keep"), 0755), 0);
	int r = fsutil_write_atomic(at(p, sizeof(p), "state"), "x", 1, 0644);
	CHECK(r == -EISDIR || r == -ENOTEMPTY || r == -EEXIST);
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
	CHECK_STR(names, "state");
	CHECK(S_ISDIR(mode_of(p)));
}

/* A file size limit of 4 bytes: the first write of 10 is cut short at 4,
 * the next fails with EFBIG. The error comes back, the old file stays,
 * the temporary file goes. */
TEST(failed_write_leaves_nothing)
{
	char p[256], names[512], buf[64];
	struct rlimit old, lim;

	fresh_root();
	CHECK_INT(fsutil_write_atomic(at(p, sizeof(p), "state"), "old\n", 4, 0644), 0);
	CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 4;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &lim), 0);
	int r = fsutil_write_atomic(p, "0123456789", 10, 0644);
	CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	CHECK_INT(r, -EFBIG);
	CHECK_STR(slurp(p, buf, sizeof(buf)), "old\n");
	CHECK_INT(list_dir(root, names, sizeof(names)), 1);
	CHECK_STR(names, "state");
}

/* nfd_write goes through it: the directory is made when missing (the old
 * writer of its own failed with ENOENT), the lines follow a comment. */
TEST(nfd_write_uses_it)
{
	char p[256], buf[512];
	const char *lines[] = {"usbdp.usb-1a86-7523=2", "usbdp.usb-0403-6001=1"};

	fresh_root();
	CHECK_INT(nfd_write(at(p, sizeof(p), "features.d/usb-device-plugin"), lines, 2), 0);
	CHECK_STR(slurp(p, buf, sizeof(buf)),
		  "# Written by usb-device-plugin; rewritten whenever devices change.\n"
		  "usbdp.usb-1a86-7523=2\nusbdp.usb-0403-6001=1\n");
	CHECK_INT(mode_of(p) & 07777, 0644);
	CHECK_INT(nfd_write(p, NULL, 0), 0);
	CHECK_STR(slurp(p, buf, sizeof(buf)),
		  "# Written by usb-device-plugin; rewritten whenever devices change.\n");
	CHECK_INT(nfd_write(p, NULL, 1), -EINVAL);
}

int main(void)
{
	RUN(mkdir_p_creates_parents);
	RUN(mkdir_p_errors);
	RUN(write_new_file);
	RUN(write_replaces_atomically);
	RUN(write_creates_directory);
	RUN(write_errors);
	RUN(write_read_only_parent);
	RUN(failed_rename_leaves_nothing);
	RUN(failed_write_leaves_nothing);
	RUN(nfd_write_uses_it);
	if (root[0] && nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
		fprintf(stderr, "test_fsutil: could not remove %s\n", root);
	return CHECK_SUMMARY();
}
