/* The event loop: epoll over fds plus one-shot timers on CLOCK_MONOTONIC.
 * Single-threaded: every callback runs on the thread calling loop_run or
 * loop_step. Callbacks may add and remove fds and timers, including their
 * own. No timer, no wake-up: an idle loop sleeps in epoll_wait forever. */
#ifndef UDP_LOOP_H
#define UDP_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events, void *data);
typedef void (*loop_timer_cb)(struct loop *loop, void *data);
/* Runs once after every loop iteration that dispatched something: the place
 * to publish the coalesced result of a burst of events. */
typedef void (*loop_idle_cb)(struct loop *loop, void *data);

struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Watches fd for events (EPOLLIN...). 0 or negative errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data);
/* Stops watching fd; does not close it: call it before closing fd. Safe
 * from any callback: an event already fetched for fd in the same pass is
 * not dispatched. */
void loop_del_fd(struct loop *loop, int fd);

/* Microseconds of CLOCK_MONOTONIC. */
int64_t loop_now_us(void);

/* Arms (or re-arms) the timer identified by (cb, data) to fire once at
 * deadline_us; a timer is identified by its pair, so re-arming moves it.
 * A pass fires, earliest deadline first, the timers due when it begins;
 * one armed during the pass (even at "now", even by its own callback)
 * waits for the next iteration. 0, -EINVAL or -ENOMEM. */
int loop_timer_set(struct loop *loop, int64_t deadline_us, loop_timer_cb cb, void *data);
void loop_timer_cancel(struct loop *loop, loop_timer_cb cb, void *data);
bool loop_timer_armed(struct loop *loop, loop_timer_cb cb, void *data);

void loop_set_idle(struct loop *loop, loop_idle_cb cb, void *data);

/* One iteration: waits at most timeout_ms (-1: until the next timer or
 * fd event; 0: not at all), dispatches the ready fds, then the due timers,
 * then runs the idle callback if anything ran. 0 or negative errno. */
int loop_step(struct loop *loop, int timeout_ms);
/* Runs until loop_stop. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

#endif
