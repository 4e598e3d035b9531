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

#include "kubelet.h"
#include "log.h"

#define SETTLE_MS    100 /* after an event, before acting: the kubelet wipes in bursts */
#define DIR_RETRY_MS 1000

#define EVENTS (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF)

struct plugindir {
	struct loop *loop;
	struct dirwatch *dw;
	char *dir;
	char kubelet_sock[PATH_MAX];
	bool watched;
	bool kubelet_seen; /* kubelet.sock (re)created since the last settle */
	plugindir_settle_cb settle;
	void *data;
};

static void on_settle(struct loop *loop, void *data)
{
	(void)loop;
	struct plugindir *pd = data;
	bool kubelet_new = pd->kubelet_seen;
	pd->kubelet_seen = false;
	pd->settle(pd->data, kubelet_new);
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
	if (watch_dir(pd) == 0)
		on_settle(pd->loop, pd);
}

/* mkdir -p of the directory, then a watch on it; on failure, again in a
 * second. */
static int watch_dir(struct plugindir *pd)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s", pd->dir);
	int e = n < 0 || (size_t)n >= sizeof(path) ? -ENAMETOOLONG : 0;
	for (char *p = path + 1; e == 0 && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		/* A failure here shows as the watch's own error below. */
		bool failed = mkdir(path, 0755) < 0 && errno != EEXIST;
		*p = '/';
		if (failed)
			break;
	}
	if (e == 0) {
		int r = dirwatch_add(pd->dw, pd->dir, EVENTS, on_event, pd);
		e = r < 0 ? r : 0;
	}
	if (e < 0) {
		log_warn("cannot watch the plugin directory dir=%s err=\"%s\": retrying", pd->dir,
			 strerror(-e));
		if (loop_timer_set(pd->loop, loop_now_us() + DIR_RETRY_MS * 1000, on_dir_retry,
				   pd) < 0)
			log_error("cannot retry watching dir=%s: out of memory", pd->dir);
		return e;
	}
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
	(void)watch_dir(pd); /* a failure retries by itself */
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
	arm(pd, DIR_RETRY_MS);
}

int plugindir_socket_state(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int r = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ? 2
		: errno == ECONNREFUSED				     ? 1
								     : -errno;
	close(fd);
	return r;
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
		int state = plugindir_socket_state(path);
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
