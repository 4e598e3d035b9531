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

/* Runs the settle callback again in a second (a socket could not be
 * served). */
void plugindir_retry(struct plugindir *pd);

/* Removes the sockets "usbdp-*.sock" of an earlier run that nobody
 * answers on (connection refused); a socket that answers belongs to
 * another instance and is left alone, with a warning. */
void plugindir_remove_stale(struct plugindir *pd);

/* What is at path: 0 nothing, 1 a socket nobody answers on (stale), 2 a
 * socket that answers (live); negative errno (ENOTSOCK: something else). */
int plugindir_socket_state(const char *path);

#endif
