/* The event loop over epoll. Watches live in an array and epoll's data
 * carries a watch's id, never a pointer: an event fetched for a watch that
 * a callback has removed (or removed and re-added) in the same pass names
 * an id no live watch has, and is dropped. Timers are an unsorted array
 * (a handful at most); each carries the sequence number of its arming, so
 * that the timer pass runs only timers armed before it began: one that a
 * callback arms again at "now" waits for the next iteration instead of
 * spinning in this one. */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct watch {
	uint64_t id; /* epoll's data; unique for the loop's life */
	int fd;
	loop_fd_cb cb;
	void *data;
	bool dead; /* removed during dispatch; dropped after the pass */
};

struct timer {
	int64_t deadline_us;
	uint64_t seq; /* when it was (re-)armed: loop->timer_seq then */
	loop_timer_cb cb;
	void *data;
};

struct loop {
	int epfd;
	struct watch *watches;
	size_t n_watches, cap_watches;
	uint64_t next_id;
	struct timer *timers; /* unsorted; few of them */
	size_t n_timers, cap_timers;
	uint64_t timer_seq;
	loop_idle_cb idle_cb;
	void *idle_data;
	bool stop;
	bool dispatching;
};

int64_t loop_now_us(void)
{
	struct timespec ts;
	/* (void): CLOCK_MONOTONIC always exists on Linux and ts is valid,
	 * the only two ways clock_gettime can fail. */
	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct loop *loop_new(void)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int e = errno;
		free(loop);
		errno = e;
		return NULL;
	}
	return loop;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	free(loop->watches);
	free(loop->timers);
	/* (void): nothing is left to flush; close releases the fd even when
	 * it reports an error. */
	(void)close(loop->epfd);
	free(loop);
}

static void reap_watches(struct loop *loop)
{
	size_t j = 0;
	for (size_t i = 0; i < loop->n_watches; i++)
		if (!loop->watches[i].dead)
			loop->watches[j++] = loop->watches[i];
	loop->n_watches = j;
}

static struct watch *find_watch(struct loop *loop, uint64_t id)
{
	for (size_t i = 0; i < loop->n_watches; i++)
		if (loop->watches[i].id == id && !loop->watches[i].dead)
			return &loop->watches[i];
	return NULL;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data)
{
	if (!loop || fd < 0 || !cb)
		return -EINVAL;
	if (loop->n_watches == loop->cap_watches) {
		size_t cap = loop->cap_watches ? loop->cap_watches * 2 : 16;
		struct watch *w = realloc(loop->watches, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		loop->watches = w;
		loop->cap_watches = cap;
	}
	uint64_t id = ++loop->next_id;
	struct epoll_event ev = {.events = events, .data.u64 = id};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	loop->watches[loop->n_watches++] = (struct watch){id, fd, cb, data, false};
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	if (!loop)
		return;
	for (size_t i = 0; i < loop->n_watches; i++) {
		struct watch *w = &loop->watches[i];
		if (w->fd == fd && !w->dead) {
			/* (void): it fails only when fd is no longer open (the
			 * caller closed it first, which took it out of the set
			 * unless it was duplicated) or not in the set; either
			 * way the watch is gone, and an event for it names an
			 * id no watch has. */
			(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
			w->dead = true;
		}
	}
	if (!loop->dispatching)
		reap_watches(loop);
}

static struct timer *find_timer(struct loop *loop, loop_timer_cb cb, void *data)
{
	for (size_t i = 0; i < loop->n_timers; i++)
		if (loop->timers[i].cb == cb && loop->timers[i].data == data)
			return &loop->timers[i];
	return NULL;
}

int loop_timer_set(struct loop *loop, int64_t deadline_us, loop_timer_cb cb, void *data)
{
	if (!loop || !cb)
		return -EINVAL;
	struct timer *t = find_timer(loop, cb, data);
	if (!t) {
		if (loop->n_timers == loop->cap_timers) {
			size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 8;
			struct timer *n = realloc(loop->timers, cap * sizeof(*n));
			if (!n)
				return -ENOMEM;
			loop->timers = n;
			loop->cap_timers = cap;
		}
		t = &loop->timers[loop->n_timers++];
		*t = (struct timer){.cb = cb, .data = data};
	}
	t->deadline_us = deadline_us;
	t->seq = loop->timer_seq++;
	return 0;
}

void loop_timer_cancel(struct loop *loop, loop_timer_cb cb, void *data)
{
	struct timer *t = loop ? find_timer(loop, cb, data) : NULL;
	if (t)
		*t = loop->timers[--loop->n_timers];
}

bool loop_timer_armed(struct loop *loop, loop_timer_cb cb, void *data)
{
	return loop && find_timer(loop, cb, data) != NULL;
}

void loop_set_idle(struct loop *loop, loop_idle_cb cb, void *data)
{
	if (!loop)
		return;
	loop->idle_cb = cb;
	loop->idle_data = data;
}

/* Milliseconds until the earliest timer, rounded up; -1 when none. */
static int timers_timeout_ms(struct loop *loop)
{
	if (loop->n_timers == 0)
		return -1;
	int64_t earliest = loop->timers[0].deadline_us;
	for (size_t i = 1; i < loop->n_timers; i++)
		if (loop->timers[i].deadline_us < earliest)
			earliest = loop->timers[i].deadline_us;
	int64_t left = earliest - loop_now_us();
	if (left <= 0)
		return 0;
	int64_t ms = (left + 999) / 1000;
	return ms > 24 * 3600 * 1000 ? 24 * 3600 * 1000 : (int)ms;
}

/* The index of the earliest timer due at now and armed before seq (ties:
 * the first armed), or -1. */
static ssize_t next_due(struct loop *loop, int64_t now, uint64_t seq)
{
	ssize_t best = -1;
	for (size_t i = 0; i < loop->n_timers; i++) {
		const struct timer *t = &loop->timers[i];
		if (t->deadline_us > now || t->seq >= seq)
			continue;
		if (best < 0 || t->deadline_us < loop->timers[best].deadline_us ||
		    (t->deadline_us == loop->timers[best].deadline_us &&
		     t->seq < loop->timers[best].seq))
			best = (ssize_t)i;
	}
	return best;
}

/* Fires, earliest first, every timer due when the pass begins and armed
 * before it. A timer is removed before its callback runs, so the callback
 * may re-arm it (for the next pass) or cancel any other. */
static int run_timers(struct loop *loop)
{
	int fired = 0;
	int64_t now = loop_now_us();
	uint64_t seq = loop->timer_seq;
	ssize_t i;

	while ((i = next_due(loop, now, seq)) >= 0) {
		struct timer t = loop->timers[i];
		loop->timers[i] = loop->timers[--loop->n_timers];
		t.cb(loop, t.data);
		fired++;
	}
	return fired;
}

/* Runs the callback of every live watch among evs; how many ran. A
 * callback may add and remove watches: the array may move, so each watch
 * is looked up again by id and copied before its callback runs. */
static int dispatch(struct loop *loop, const struct epoll_event *evs, int n)
{
	int ran = 0;

	loop->dispatching = true;
	for (int i = 0; i < n; i++) {
		const struct watch *w = find_watch(loop, evs[i].data.u64);
		if (!w)
			continue;
		struct watch copy = *w;
		copy.cb(loop, copy.fd, evs[i].events, copy.data);
		ran++;
	}
	loop->dispatching = false;
	reap_watches(loop);
	return ran;
}

int loop_step(struct loop *loop, int timeout_ms)
{
	if (!loop)
		return -EINVAL;
	int t = timers_timeout_ms(loop);
	if (timeout_ms < 0 || (t >= 0 && t < timeout_ms))
		timeout_ms = t;
	struct epoll_event evs[32];
	int n = epoll_wait(loop->epfd, evs, 32, timeout_ms);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	int ran = dispatch(loop, evs, n);
	ran += run_timers(loop);
	if (ran > 0 && loop->idle_cb)
		loop->idle_cb(loop, loop->idle_data);
	return 0;
}

int loop_run(struct loop *loop)
{
	if (!loop)
		return -EINVAL;
	loop->stop = false;
	while (!loop->stop) {
		int r = loop_step(loop, -1);
		if (r < 0)
			return r;
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	if (loop)
		loop->stop = true;
}
