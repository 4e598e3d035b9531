/* Directory watching: the process's one inotify instance, its watch list
 * and the one place that drains it. Instances are scarce (128 per user by
 * default, shared with every root process on a node), so every part of the
 * plugin that follows a directory subscribes here. Several owners, each
 * identified by its (cb, data) pair, may watch one directory; each gets the
 * events of the directories it asked for, with the mask it asked for. */
#ifndef UDP_DIRWATCH_H
#define UDP_DIRWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct dirwatch;

/* One event on the loop: dir is the directory as the owner named it, name
 * the entry's name in it ("" for an event on dir itself), mask inotify's.
 * Always delivered whatever the owner's mask: IN_IGNORED (dir is no longer
 * watched: it was removed or unmounted; the subscription is already gone)
 * and IN_Q_OVERFLOW (events were lost; dir is NULL; once per owner). */
typedef void (*dirwatch_cb)(void *data, const char *dir, const char *name, uint32_t mask);

/* A watcher drained on loop; NULL on ENOMEM. Without an inotify instance
 * (the per-user limit reached) it still works degraded: every add fails
 * and tries to get one again, so a lifted limit is noticed. */
struct dirwatch *dirwatch_new(struct loop *loop);

/* NULL while every watch asked for could be made; else why not (a kernel
 * limit on instances or watches), for logs and /healthz. The owners must
 * then find changes by rescanning. Said once at level error when it
 * starts, once at info when it ends. */
const char *dirwatch_degraded(const struct dirwatch *w);
void dirwatch_free(struct dirwatch *w); /* NULL is a no-op */

/* Subscribes (cb, data) to dir's events in mask (IN_* flags). 1 when the
 * subscription is new, 0 when it existed (its mask is replaced), negative
 * errno when inotify refuses (ENOSPC: the per-user watch limit; ENOENT,
 * ENOTDIR: no such directory). */
int dirwatch_add(struct dirwatch *w, const char *dir, uint32_t mask, dirwatch_cb cb, void *data);
/* Ends the subscription, if any. Safe from any callback. */
void dirwatch_del(struct dirwatch *w, const char *dir, dirwatch_cb cb, void *data);

/* Makes (cb, data)'s subscriptions exactly dirs[0..n) with mask: ends the
 * others and adds the missing ones. Returns how many were added; a
 * directory inotify refuses is skipped and its error is kept in *err
 * (the first one; 0 when none), with the directory in *err_dir (borrowed
 * from dirs). */
size_t dirwatch_sync(struct dirwatch *w, char *const *dirs, size_t n, uint32_t mask, dirwatch_cb cb,
		     void *data, int *err, const char **err_dir);

/* Number of directories watched (for /metrics and logs). */
size_t dirwatch_count(const struct dirwatch *w);

#endif
