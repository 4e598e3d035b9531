/* The kubelet's device-plugin directory, watched: the kubelet (re)creating
 * kubelet.sock means it (re)started; one of our sockets deleted means the
 * kubelet wiped the directory; the directory itself going means it must be
 * waited for. After such events settle (SETTLE_MS), the owner's callback
 * decides what to serve and register again. */
#ifndef UDP_PLUGINDIR_H
#define UDP_PLUGINDIR_H

#include <stdbool.h>

#include "dirwatch.h"
#include "loop.h"

struct plugindir;

/* kubelet_new: kubelet.sock was (re)created since the last call. */
typedef void (*plugindir_settle_cb)(void *data, bool kubelet_new);

/* Watches dir (copied; ends with '/'), creating it (and its parents) when
 * missing; when that fails, tries again every second. NULL on ENOMEM. */
struct plugindir *plugindir_new(struct loop *loop, struct dirwatch *dw, const char *dir,
				plugindir_settle_cb settle, void *data);
void plugindir_free(struct plugindir *pd); /* NULL is a no-op */

/* The kubelet's Registration socket path. */
const char *plugindir_kubelet_sock(const struct plugindir *pd);
bool plugindir_kubelet_present(const struct plugindir *pd);

/* Runs the settle callback again later (a socket could not be served):
 * in 1 s, doubling to 30 s while it keeps failing. */
void plugindir_retry(struct plugindir *pd);

/* Without inotify (a kernel limit, see dirwatch_degraded): looks instead,
 * and settles when kubelet.sock was replaced since the last settle or
 * sockets_lost (the caller saw one of our sockets gone). Tries to watch the
 * directory again. */
void plugindir_poll(struct plugindir *pd, bool sockets_lost);

/* Removes the sockets "usbdp-*.sock" of an earlier run that nobody
 * answers on (connection refused); a socket that answers belongs to
 * another instance and is left alone, with a warning. */
void plugindir_remove_stale(struct plugindir *pd);

#endif
