#include "dirwatch.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "log.h"

struct sub {
	dirwatch_cb cb;
	void *data;
	uint32_t mask;
	char *dir; /* as this owner named it: two names may reach one inode */
};

/* One inotify watch (wd) and the owners that share it. */
struct watch {
	int wd;
	struct sub *subs;
	size_t n_subs;
};

struct dirwatch {
	struct loop *loop;
	int fd; /* -1 while no inotify instance could be had */
	struct watch *watches;
	size_t n;
	int limit;	 /* 0, or -EMFILE / -ENOSPC: a kernel limit stands in the way */
	const char *why; /* what it means, for logs and /healthz */
};

/* Events every owner gets whatever it asked for. */
#define ALWAYS (IN_IGNORED | IN_Q_OVERFLOW)

static void on_event(struct loop *loop, int fd, uint32_t events, void *data);

/* A kernel limit was hit (or lifted: e == 0); said once per change. */
static void set_limit(struct dirwatch *w, int e)
{
	if (e == w->limit)
		return;
	w->limit = e;
	w->why = e == -EMFILE	? "no inotify instance: the per-user limit "
				  "fs.inotify.max_user_instances is reached"
		 : e == -ENOSPC ? "inotify watches refused: the per-user limit "
				  "fs.inotify.max_user_watches is reached"
				: NULL;
	if (w->why)
		log_error("%s: changes are found by rescanning every second instead of at once; "
			  "raise the limit (sysctl) or stop what holds the instances",
			  w->why);
	else
		log_info("inotify works again: changes are seen at once");
}

/* Gets an inotify instance if there is none; 0 or negative errno. */
static int instance(struct dirwatch *w)
{
	if (w->fd >= 0)
		return 0;
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0) {
		int e = -errno;
		if (e == -EMFILE || e == -ENFILE)
			set_limit(w, -EMFILE);
		return e;
	}
	int e = loop_add_fd(w->loop, fd, EPOLLIN, on_event, w);
	if (e < 0) {
		close(fd);
		return e;
	}
	w->fd = fd;
	return 0;
}

struct dirwatch *dirwatch_new(struct loop *loop)
{
	struct dirwatch *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->loop = loop;
	w->fd = -1;
	(void)instance(w); /* without one it works degraded, and says so */
	return w;
}

const char *dirwatch_degraded(const struct dirwatch *w)
{
	return w ? w->why : NULL;
}

static void watch_clear(struct watch *wt)
{
	for (size_t i = 0; i < wt->n_subs; i++)
		free(wt->subs[i].dir);
	free(wt->subs);
}

void dirwatch_free(struct dirwatch *w)
{
	if (!w)
		return;
	if (w->fd >= 0) {
		loop_del_fd(w->loop, w->fd);
		close(w->fd);
	}
	for (size_t i = 0; i < w->n; i++)
		watch_clear(&w->watches[i]);
	free(w->watches);
	free(w);
}

size_t dirwatch_count(const struct dirwatch *w)
{
	return w ? w->n : 0;
}

static struct watch *find_wd(struct dirwatch *w, int wd)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->watches[i].wd == wd)
			return &w->watches[i];
	return NULL;
}

/* The subscription of (cb, data) to dir: its watch and index. */
static struct watch *find_sub(struct dirwatch *w, const char *dir, dirwatch_cb cb, void *data,
			      size_t *idx)
{
	for (size_t i = 0; i < w->n; i++)
		for (size_t k = 0; k < w->watches[i].n_subs; k++) {
			const struct sub *s = &w->watches[i].subs[k];
			if (s->cb == cb && s->data == data && strcmp(s->dir, dir) == 0) {
				*idx = k;
				return &w->watches[i];
			}
		}
	return NULL;
}

static uint32_t union_mask(const struct watch *wt)
{
	uint32_t m = IN_ONLYDIR;
	for (size_t k = 0; k < wt->n_subs; k++)
		m |= wt->subs[k].mask;
	return m;
}

static void drop_watch(struct dirwatch *w, struct watch *wt)
{
	watch_clear(wt);
	*wt = w->watches[--w->n];
}

int dirwatch_add(struct dirwatch *w, const char *dir, uint32_t mask, dirwatch_cb cb, void *data)
{
	size_t k;
	struct watch *wt = find_sub(w, dir, cb, data, &k);
	if (wt) {
		wt->subs[k].mask = mask;
		/* Replacing a mask of a live watch only fails if the directory
		 * went, and then IN_IGNORED is on its way. */
		(void)inotify_add_watch(w->fd, dir, union_mask(wt));
		return 0;
	}
	int e = instance(w);
	if (e < 0)
		return e;
	/* The mask is first added to what the inode's watch has, if any: the
	 * same directory may be reached through another name. */
	int wd = inotify_add_watch(w->fd, dir, mask | IN_ONLYDIR | IN_MASK_ADD);
	if (wd < 0) {
		e = -errno;
		if (e == -ENOSPC)
			set_limit(w, -ENOSPC);
		return e;
	}
	char *copy = strdup(dir);
	wt = find_wd(w, wd);
	if (!wt && copy) {
		struct watch *a = realloc(w->watches, (w->n + 1) * sizeof(*a));
		if (a) {
			w->watches = a;
			wt = &w->watches[w->n++];
			*wt = (struct watch){.wd = wd};
		}
	}
	struct sub *subs = wt ? realloc(wt->subs, (wt->n_subs + 1) * sizeof(*subs)) : NULL;
	if (!subs) {
		free(copy);
		if (wt && wt->n_subs == 0) {
			drop_watch(w, wt);
			(void)inotify_rm_watch(w->fd, wd); /* ours alone: nothing else to undo */
		}
		return -ENOMEM;
	}
	wt->subs = subs;
	wt->subs[wt->n_subs++] = (struct sub){.cb = cb, .data = data, .mask = mask, .dir = copy};
	return 1;
}

void dirwatch_del(struct dirwatch *w, const char *dir, dirwatch_cb cb, void *data)
{
	size_t k;
	struct watch *wt = find_sub(w, dir, cb, data, &k);
	if (!wt)
		return;
	free(wt->subs[k].dir);
	wt->subs[k] = wt->subs[--wt->n_subs];
	if (wt->n_subs) {
		/* Narrow the mask to what the others still want. */
		(void)inotify_add_watch(w->fd, wt->subs[0].dir, union_mask(wt));
		return;
	}
	/* EINVAL means the kernel dropped it already (IN_IGNORED queued). */
	(void)inotify_rm_watch(w->fd, wt->wd);
	drop_watch(w, wt);
}

size_t dirwatch_sync(struct dirwatch *w, char *const *dirs, size_t n, uint32_t mask, dirwatch_cb cb,
		     void *data, int *err, const char **err_dir)
{
	*err = 0;
	*err_dir = NULL;
	/* End what is no longer wanted (restart after each: del reorders). */
	for (bool again = true; again;) {
		again = false;
		for (size_t i = 0; i < w->n && !again; i++)
			for (size_t k = 0; k < w->watches[i].n_subs && !again; k++) {
				const struct sub *s = &w->watches[i].subs[k];
				if (s->cb != cb || s->data != data)
					continue;
				bool keep = false;
				for (size_t j = 0; j < n && !keep; j++)
					keep = strcmp(dirs[j], s->dir) == 0;
				if (keep)
					continue;
				log_debug("unwatch dir=%s", s->dir);
				char *dir = strdup(s->dir);
				if (dir)
					dirwatch_del(w, dir, cb, data);
				free(dir);
				again = dir != NULL;
			}
	}
	size_t added = 0;
	bool refused = false;
	for (size_t j = 0; j < n; j++) {
		size_t k;
		if (find_sub(w, dirs[j], cb, data, &k))
			continue;
		int e = dirwatch_add(w, dirs[j], mask, cb, data);
		if (e > 0) {
			log_debug("watch dir=%s", dirs[j]);
			added++;
		} else if (e < 0) {
			refused |= e == -ENOSPC || e == -EMFILE;
			if (!*err) {
				*err = e;
				*err_dir = dirs[j];
			}
		}
	}
	/* Everything this owner wants is watched: a limit hit before is
	 * lifted as far as it is concerned (a retry found room). */
	if (!refused && w->limit && w->fd >= 0 && added)
		set_limit(w, 0);
	return added;
}

/* Delivers one event to every owner of wd that wants it. Callbacks may add
 * and end subscriptions, so each owner is looked up again before its
 * call. */
static void dispatch(struct dirwatch *w, const struct inotify_event *ev)
{
	struct watch *wt = find_wd(w, ev->wd);
	if (!wt)
		return;
	size_t n = wt->n_subs;
	struct sub *copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy) {
		log_error("inotify event dropped: out of memory");
		return;
	}
	memcpy(copy, wt->subs, n * sizeof(*copy));
	const char *name = ev->len ? ev->name : "";
	for (size_t i = 0; i < n; i++) {
		wt = find_wd(w, ev->wd);
		struct sub *s = NULL;
		for (size_t k = 0; wt && k < wt->n_subs && !s; k++)
			if (wt->subs[k].cb == copy[i].cb && wt->subs[k].data == copy[i].data &&
			    wt->subs[k].dir == copy[i].dir)
				s = &wt->subs[k];
		if (!s || !(ev->mask & (s->mask | ALWAYS)))
			continue;
		if (ev->mask & IN_IGNORED) {
			/* The kernel ended the watch: the subscription goes
			 * before the owner hears of it. */
			char *dir = s->dir;
			*s = wt->subs[--wt->n_subs];
			if (wt->n_subs == 0)
				drop_watch(w, wt);
			copy[i].cb(copy[i].data, dir, name, ev->mask);
			free(dir);
			continue;
		}
		s->cb(s->data, s->dir, name, ev->mask);
	}
	free(copy);
}

/* Every owner once: events were lost, each must look again. */
static void overflow(struct dirwatch *w)
{
	log_warn("inotify queue overflow: events lost, rescanning");
	size_t total = 0;
	for (size_t i = 0; i < w->n; i++)
		total += w->watches[i].n_subs;
	struct sub *seen = malloc((total ? total : 1) * sizeof(*seen));
	if (!seen) {
		log_error("inotify overflow not handled: out of memory");
		return;
	}
	size_t n = 0;
	for (size_t i = 0; i < w->n; i++)
		for (size_t k = 0; k < w->watches[i].n_subs; k++) {
			const struct sub *s = &w->watches[i].subs[k];
			bool dup = false;
			for (size_t j = 0; j < n && !dup; j++)
				dup = seen[j].cb == s->cb && seen[j].data == s->data;
			if (!dup)
				seen[n++] = *s;
		}
	for (size_t j = 0; j < n; j++)
		seen[j].cb(seen[j].data, NULL, "", IN_Q_OVERFLOW);
	free(seen);
}

static void on_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	(void)loop;
	(void)events;
	struct dirwatch *w = data;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* EAGAIN: drained */
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW)
				overflow(w);
			else
				dispatch(w, ev);
		}
	}
}
