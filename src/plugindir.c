#include "plugindir.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fsutil.h"
#include "kubelet.h"
#include "log.h"

#define SETTLE_MS	 100 /* after an event, before acting: the kubelet wipes in bursts */
#define DIR_RETRY_MS	 1000
#define DIR_RETRY_MAX_MS 30000

#define EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct plugindir {
	struct loop *loop;
	struct dirwatch *dw;
	char *dir;
	char kubelet_sock[PATH_MAX];
	bool watched;
	int dir_err;		/* the directory's last error, said once */
	int64_t dir_retry_ms;	/* the next retry's delay */
	int64_t serve_retry_ms; /* the same for serving (plugindir_retry) */
	bool retried;
	bool kubelet_seen; /* kubelet.sock (re)created since the last settle */
	/* which kubelet.sock was there at the last settle: without inotify a
	 * poll compares, to notice a kubelet restart */
	ino_t kubelet_ino;
	struct timespec kubelet_ctime;
	plugindir_settle_cb settle;
	void *data;
};

/* Whether kubelet.sock is another one than at the last call. */
static bool kubelet_changed(struct plugindir *pd)
{
	struct stat st;
	bool there = stat(pd->kubelet_sock, &st) == 0 && S_ISSOCK(st.st_mode);
	ino_t ino = there ? st.st_ino : 0;
	struct timespec ct = there ? st.st_ctim : (struct timespec){0};
	bool changed = ino != pd->kubelet_ino || ct.tv_sec != pd->kubelet_ctime.tv_sec ||
		       ct.tv_nsec != pd->kubelet_ctime.tv_nsec;
	pd->kubelet_ino = ino;
	pd->kubelet_ctime = ct;
	return changed && there;
}

static void on_settle(struct loop *loop, void *data)
{
	(void)loop;
	struct plugindir *pd = data;
	bool kubelet_new = pd->kubelet_seen;
	pd->kubelet_seen = false;
	(void)kubelet_changed(pd); /* the one seen now is the one settled with */
	pd->retried = false;
	pd->settle(pd->data, kubelet_new);
	if (!pd->retried) /* everything served: the next failure starts at 1 s */
		pd->serve_retry_ms = 0;
	if (!plugindir_kubelet_present(pd))
		log_info("waiting for kubelet socket=%s", pd->kubelet_sock);
}

static void arm(struct plugindir *pd, int ms)
{
	if (loop_timer_armed(pd->loop, on_settle, pd))
		return;
	if (loop_timer_set(pd->loop, loop_now_us() + (int64_t)ms * 1000, on_settle, pd) < 0)
		log_error("plugin directory events not handled: out of memory");
}

static int watch_dir(struct plugindir *pd);

static void on_event(void *data, const char *dir, const char *name, uint32_t mask)
{
	(void)dir;
	struct plugindir *pd = data;
	if (mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) {
		if (!pd->watched)
			return;
		log_warn("plugin directory gone dir=%s: waiting for it", pd->dir);
		dirwatch_del(pd->dw, pd->dir, on_event, pd);
		pd->watched = false;
		if (watch_dir(pd) == 0)
			arm(pd, SETTLE_MS);
		return;
	}
	if (strcmp(name, KUBELET_SOCKET_NAME) == 0 && (mask & (IN_CREATE | IN_MOVED_TO))) {
		log_info("kubelet socket created: kubelet (re)started");
		pd->kubelet_seen = true;
		arm(pd, SETTLE_MS);
	} else if (strncmp(name, "usbdp-", 6) == 0 && (mask & (IN_DELETE | IN_MOVED_FROM))) {
		log_debug("plugin socket deleted name=%s", name);
		arm(pd, SETTLE_MS);
	} else if (mask & IN_Q_OVERFLOW) {
		arm(pd, SETTLE_MS);
	}
}

static void on_dir_retry(struct loop *loop, void *data)
{
	(void)loop;
	struct plugindir *pd = data;
	if (watch_dir(pd) == 0) {
		pd->kubelet_seen |= kubelet_changed(pd);
		on_settle(pd->loop, pd);
	}
}

/* mkdir -p of the directory, then a watch on it; on failure, again later
 * (1 s, doubling to 30 s), the reason said once per change. */
static int watch_dir(struct plugindir *pd)
{
	int e = fsutil_mkdir_p(pd->dir, 0755);
	if (e == 0) {
		int r = dirwatch_add(pd->dw, pd->dir, EVENTS, on_event, pd);
		/* without inotify (a limit) the directory is polled instead */
		e = r < 0 && !dirwatch_degraded(pd->dw) ? r : 0;
	}
	if (e < 0) {
		if (e != pd->dir_err)
			log_error("cannot use the plugin directory dir=%s err=\"%s\": retrying, "
				  "and serving nothing until it works",
				  pd->dir, strerror(-e));
		pd->dir_err = e;
		int64_t delay = pd->dir_retry_ms ? 2 * pd->dir_retry_ms : DIR_RETRY_MS;
		pd->dir_retry_ms = delay > DIR_RETRY_MAX_MS ? DIR_RETRY_MAX_MS : delay;
		if (loop_timer_set(pd->loop, loop_now_us() + pd->dir_retry_ms * 1000, on_dir_retry,
				   pd) < 0)
			log_error("cannot retry watching dir=%s: out of memory", pd->dir);
		return e;
	}
	if (pd->dir_err)
		log_info("plugin directory usable again dir=%s", pd->dir);
	pd->dir_err = 0;
	pd->dir_retry_ms = 0;
	pd->watched = true;
	return 0;
}

struct plugindir *plugindir_new(struct loop *loop, struct dirwatch *dw, const char *dir,
				plugindir_settle_cb settle, void *data)
{
	struct plugindir *pd = calloc(1, sizeof(*pd));
	if (!pd)
		return NULL;
	*pd = (struct plugindir){.loop = loop, .dw = dw, .settle = settle, .data = data};
	int n =
	    snprintf(pd->kubelet_sock, sizeof(pd->kubelet_sock), "%s%s", dir, KUBELET_SOCKET_NAME);
	if (n < 0 || (size_t)n >= sizeof(pd->kubelet_sock) || !(pd->dir = strdup(dir))) {
		free(pd);
		errno = n < 0 || (size_t)n >= sizeof(pd->kubelet_sock) ? ENAMETOOLONG : ENOMEM;
		return NULL;
	}
	(void)kubelet_changed(pd); /* the kubelet there now is not a restart */
	(void)watch_dir(pd);	   /* a failure retries by itself */
	return pd;
}

void plugindir_free(struct plugindir *pd)
{
	if (!pd)
		return;
	loop_timer_cancel(pd->loop, on_settle, pd);
	loop_timer_cancel(pd->loop, on_dir_retry, pd);
	if (pd->watched)
		dirwatch_del(pd->dw, pd->dir, on_event, pd);
	free(pd->dir);
	free(pd);
}

const char *plugindir_kubelet_sock(const struct plugindir *pd)
{
	return pd->kubelet_sock;
}

bool plugindir_kubelet_present(const struct plugindir *pd)
{
	struct stat st;
	return stat(pd->kubelet_sock, &st) == 0 && S_ISSOCK(st.st_mode);
}

void plugindir_retry(struct plugindir *pd)
{
	int64_t delay = pd->serve_retry_ms ? 2 * pd->serve_retry_ms : DIR_RETRY_MS;
	pd->serve_retry_ms = delay > DIR_RETRY_MAX_MS ? DIR_RETRY_MAX_MS : delay;
	pd->retried = true;
	arm(pd, (int)pd->serve_retry_ms);
}

void plugindir_poll(struct plugindir *pd, bool sockets_lost)
{
	if (!pd->watched && !loop_timer_armed(pd->loop, on_dir_retry, pd))
		(void)watch_dir(pd); /* a failure arms its own retry */
	if (kubelet_changed(pd)) {
		log_info("kubelet socket replaced (seen by polling): kubelet (re)started");
		pd->kubelet_seen = true;
		arm(pd, SETTLE_MS);
	} else if (sockets_lost) {
		arm(pd, SETTLE_MS);
	}
}

void plugindir_remove_stale(struct plugindir *pd)
{
	char pattern[PATH_MAX];
	int n = snprintf(pattern, sizeof(pattern), "%susbdp-*.sock", pd->dir);
	if (n < 0 || (size_t)n >= sizeof(pattern))
		return;
	glob_t gl;
	if (glob(pattern, 0, NULL, &gl) != 0)
		return;
	for (size_t i = 0; i < gl.gl_pathc; i++) {
		const char *path = gl.gl_pathv[i];
		int state = fsutil_socket_state(path);
		if (state == 2) {
			log_warn("another instance is serving socket=%s: left alone (two plugins "
				 "on one node register the same resources; stop one)",
				 path);
		} else if (state == 1) {
			log_info("removing stale socket path=%s", path);
			if (unlink(path) < 0 && errno != ENOENT)
				log_warn("cannot remove stale socket path=%s err=\"%s\"", path,
					 strerror(errno));
		}
	}
	globfree(&gl);
}
