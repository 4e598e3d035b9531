#include "pathtrust.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "log.h"
#include "once.h"

#define MAX_LINKS 40 /* the kernel's own limit on links in one lookup */

bool pathtrust_others_write(const struct stat *dir)
{
	return dir->st_uid != 0 || (dir->st_mode & S_IWOTH) ||
	       ((dir->st_mode & S_IWGRP) && dir->st_gid != 0);
}

bool pathtrust_placed(const struct stat *dir, const struct stat *entry)
{
	if (!pathtrust_others_write(dir))
		return true;
	/* Sticky: only an entry's owner (or the directory's) may rename or
	 * remove it, so root's own entries stay root's. */
	return dir->st_uid == 0 && (dir->st_mode & S_ISVTX) && entry->st_uid == 0 &&
	       (S_ISDIR(entry->st_mode) || entry->st_nlink == 1);
}

void pathtrust_memo_clear(struct pathtrust_memo *m)
{
	if (!m)
		return;
	free(m->dir);
	m->dir = NULL;
}

/* The name of path when it is an entry of the memo's directory. */
static const char *memo_entry(const struct pathtrust_memo *m, const char *path)
{
	size_t ml = m && m->dir ? strlen(m->dir) : 0;
	if (ml == 0 || strncmp(path, m->dir, ml) != 0 || path[ml] != '/')
		return NULL;
	const char *name = path + ml + 1;
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return NULL;
	return name;
}

/* True when path, of readdir type type, is a plain (not link) entry of
 * the memo's directory and that directory is root's alone: trusted
 * without a stat. */
static bool known_plain(const struct pathtrust_memo *m, const char *path, unsigned char type)
{
	return type != DT_UNKNOWN && type != DT_LNK && memo_entry(m, path) &&
	       !pathtrust_others_write(&m->st);
}

/* A resolution in progress: cur is the resolved directory so far (""
 * stands for "/"), rest what is still to walk. */
struct walk {
	char cur[PATH_MAX];
	struct stat cur_st;
	char rest[PATH_MAX];
	size_t links;
};

/* Sets w->cur to dir (len bytes) with status st. */
static int set_cur(struct walk *w, const char *dir, size_t len, const struct stat *st)
{
	if (len >= sizeof(w->cur))
		return -ENAMETOOLONG;
	memmove(w->cur, dir, len);
	w->cur[len] = '\0';
	w->cur_st = *st;
	return 0;
}

static int start(struct walk *w, const char *path, const struct pathtrust_memo *memo)
{
	size_t ml = memo && memo->dir ? strlen(memo->dir) : 0;
	if (memo_entry(memo, path)) {
		if (strlen(path + ml) >= sizeof(w->rest))
			return -ENAMETOOLONG;
		strcpy(w->rest, path + ml);
		return set_cur(w, memo->dir, ml, &memo->st);
	}
	if (strlen(path) >= sizeof(w->rest))
		return -ENAMETOOLONG;
	strcpy(w->rest, path);
	if (path[0] == '/') {
		struct stat st;
		if (lstat("/", &st) < 0)
			return -errno;
		return set_cur(w, "", 0, &st);
	}
	if (!getcwd(w->cur, sizeof(w->cur)))
		return -errno;
	if (stat(w->cur, &w->cur_st) < 0)
		return -errno;
	if (strcmp(w->cur, "/") == 0)
		w->cur[0] = '\0';
	return 0;
}

/* Takes the next component off w->rest into comp; false when none is left. */
static bool next_component(struct walk *w, char *comp, size_t size)
{
	const char *s = w->rest;
	while (*s == '/')
		s++;
	size_t len = strcspn(s, "/");
	if (len == 0 || len >= size) {
		w->rest[0] = '\0';
		return len != 0; /* a component longer than NAME_MAX: lstat says */
	}
	memcpy(comp, s, len);
	comp[len] = '\0';
	memmove(w->rest, s + len, strlen(s + len) + 1);
	return true;
}

static bool rest_empty(const struct walk *w)
{
	return w->rest[strspn(w->rest, "/")] == '\0';
}

/* Follows the link at path (in w->cur): its target goes before w->rest. */
static int follow(struct walk *w, const char *path)
{
	char target[PATH_MAX];
	if (++w->links > MAX_LINKS)
		return -ELOOP;
	ssize_t tl = readlink(path, target, sizeof(target));
	if (tl < 0)
		return -errno;
	if ((size_t)tl >= sizeof(target) || (size_t)tl + 1 + strlen(w->rest) >= sizeof(w->rest))
		return -ENAMETOOLONG;
	memmove(w->rest + tl + 1, w->rest, strlen(w->rest) + 1);
	memcpy(w->rest, target, (size_t)tl);
	w->rest[tl] = '/';
	if (target[0] == '/') {
		struct stat st;
		if (lstat("/", &st) < 0)
			return -errno;
		return set_cur(w, "", 0, &st);
	}
	return 0;
}

static int go_up(struct walk *w)
{
	char *slash = strrchr(w->cur, '/');
	struct stat st;
	size_t len = slash ? (size_t)(slash - w->cur) : 0;
	char up[PATH_MAX];
	memcpy(up, w->cur, len);
	up[len] = '\0';
	if (lstat(len ? up : "/", &st) < 0)
		return -errno;
	return set_cur(w, up, len, &st);
}

static int resolve(struct walk *w, char *why, size_t why_len, bool *final_in_cur)
{
	char comp[NAME_MAX + 1], next[PATH_MAX];
	*final_in_cur = false;
	while (next_component(w, comp, sizeof(comp))) {
		if (strcmp(comp, ".") == 0)
			continue;
		if (strcmp(comp, "..") == 0) {
			int r = go_up(w);
			if (r < 0)
				return r;
			continue;
		}
		int n = snprintf(next, sizeof(next), "%s/%s", w->cur, comp);
		if (n < 0 || (size_t)n >= sizeof(next))
			return -ENAMETOOLONG;
		struct stat st;
		if (lstat(next, &st) < 0)
			return -errno;
		if (!pathtrust_placed(&w->cur_st, &st)) {
			errbuf_put(why, why_len,
				   "%s (owner uid %u) is in %s, which users other than root can "
				   "write (owner uid %u, mode %04o)",
				   next, (unsigned)st.st_uid, w->cur[0] ? w->cur : "/",
				   (unsigned)w->cur_st.st_uid,
				   (unsigned)(w->cur_st.st_mode & 07777));
			return -EPERM;
		}
		if (S_ISLNK(st.st_mode)) {
			int r = follow(w, next);
			if (r < 0)
				return r;
			continue;
		}
		if (rest_empty(w)) {
			*final_in_cur = true;
			return 0;
		}
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		int r = set_cur(w, next, (size_t)n, &st);
		if (r < 0)
			return r;
	}
	return 0; /* the path names a directory, w->cur */
}

int pathtrust_check(const char *path, struct pathtrust_memo *memo, char *why, size_t why_len)
{
	if (!path || !*path)
		return -ENOENT;
	struct walk *w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->links = 0;
	bool final_in_cur = false;
	int r = start(w, path, memo);
	if (r == 0)
		r = resolve(w, why, why_len, &final_in_cur);
	if (r == 0 && memo && final_in_cur && (!memo->dir || strcmp(memo->dir, w->cur) != 0)) {
		char *dir = strdup(w->cur);
		if (dir) { /* else: no memo, only slower */
			pathtrust_memo_clear(memo);
			memo->dir = dir;
			memo->st = w->cur_st;
		}
	}
	free(w);
	return r;
}

static struct once *refused; /* paths said to be refused, process-wide */

/* True the first time path is refused. */
static bool first_refusal(const char *path)
{
	if (!refused)
		refused = once_new();
	return once_first(refused, path);
}

int pathtrust_filter(char **paths, unsigned char *types, size_t *n)
{
	struct pathtrust_memo memo = {0};
	size_t kept = 0;
	int r = 0;
	for (size_t i = 0; i < *n; i++) {
		char why[512] = "";
		unsigned char type = types ? types[i] : DT_UNKNOWN;
		int e = 0;
		if (r == 0 && !known_plain(&memo, paths[i], type))
			e = pathtrust_check(paths[i], &memo, why, sizeof(why));
		if (e == -ENOMEM || e == -EMFILE || e == -ENFILE) {
			r = e;
			e = 0;
		}
		/* Unresolvable (a dangling link ...) but everything on the way was
		 * root's: kept, only root can complete it; its health tells. */
		if (e != -EPERM) {
			if (types)
				types[kept] = type;
			paths[kept++] = paths[i];
			continue;
		}
		if (first_refusal(paths[i]))
			log_warn("refusing a file that a user other than root could have put there "
				 "path=\"%s\" why=\"%s\"",
				 paths[i], why);
		free(paths[i]);
	}
	pathtrust_memo_clear(&memo);
	*n = kept;
	return r;
}
