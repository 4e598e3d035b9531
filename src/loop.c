#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

struct watch {
	int fd;
	loop_fd_cb cb;
	void *data;
	bool dead; /* removed during dispatch; freed after the pass */
};

struct timer {
	int64_t deadline_us;
	loop_timer_cb cb;
	void *data;
};

struct loop {
	int epfd;
	struct watch **watches; /* epoll data points at these */
	size_t n_watches, cap_watches;
	struct timer *timers; /* unsorted; few of them */
	size_t n_timers, cap_timers;
	loop_idle_cb idle_cb;
	void *idle_data;
	bool stop;
	bool dispatching;
};

int64_t loop_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
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
	for (size_t i = 0; i < loop->n_watches; i++)
		free(loop->watches[i]);
	free(loop->watches);
	free(loop->timers);
	close(loop->epfd);
	free(loop);
}

static void reap_watches(struct loop *loop)
{
	size_t j = 0;
	for (size_t i = 0; i < loop->n_watches; i++) {
		if (loop->watches[i]->dead)
			free(loop->watches[i]);
		else
			loop->watches[j++] = loop->watches[i];
	}
	loop->n_watches = j;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *data)
{
	if (!loop || fd < 0 || !cb)
		return -EINVAL;
	if (loop->n_watches == loop->cap_watches) {
		size_t cap = loop->cap_watches ? loop->cap_watches * 2 : 16;
		struct watch **w = realloc(loop->watches, cap * sizeof(*w));
		if (!w)
			return -ENOMEM;
		loop->watches = w;
		loop->cap_watches = cap;
	}
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct watch){.fd = fd, .cb = cb, .data = data};
	struct epoll_event ev = {.events = events, .data.ptr = w};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;
		free(w);
		return -e;
	}
	loop->watches[loop->n_watches++] = w;
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	for (size_t i = 0; i < loop->n_watches; i++) {
		struct watch *w = loop->watches[i];
		if (w->fd == fd && !w->dead) {
			epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
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
	struct timer *t = find_timer(loop, cb, data);
	if (t) {
		t->deadline_us = deadline_us;
		return 0;
	}
	if (loop->n_timers == loop->cap_timers) {
		size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 8;
		struct timer *n = realloc(loop->timers, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		loop->timers = n;
		loop->cap_timers = cap;
	}
	loop->timers[loop->n_timers++] = (struct timer){deadline_us, cb, data};
	return 0;
}

void loop_timer_cancel(struct loop *loop, loop_timer_cb cb, void *data)
{
	struct timer *t = find_timer(loop, cb, data);
	if (t)
		*t = loop->timers[--loop->n_timers];
}

bool loop_timer_armed(struct loop *loop, loop_timer_cb cb, void *data)
{
	return find_timer(loop, cb, data) != NULL;
}

void loop_set_idle(struct loop *loop, loop_idle_cb cb, void *data)
{
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

/* Fires every due timer once. A timer is removed before its callback runs,
 * so the callback may re-arm it. */
static int run_timers(struct loop *loop)
{
	int fired = 0;
	int64_t now = loop_now_us();
	for (size_t i = 0; i < loop->n_timers;) {
		if (loop->timers[i].deadline_us > now) {
			i++;
			continue;
		}
		struct timer t = loop->timers[i];
		loop->timers[i] = loop->timers[--loop->n_timers];
		t.cb(loop, t.data);
		fired++;
		i = 0; /* the callback may have reshuffled the array */
		now = loop_now_us();
	}
	return fired;
}

int loop_step(struct loop *loop, int timeout_ms)
{
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
	loop->dispatching = true;
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;
		if (!w->dead)
			w->cb(loop, w->fd, evs[i].events, w->data);
	}
	loop->dispatching = false;
	reap_watches(loop);
	int fired = run_timers(loop);
	if ((n > 0 || fired > 0) && loop->idle_cb)
		loop->idle_cb(loop, loop->idle_data);
	return 0;
}

int loop_run(struct loop *loop)
{
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
	loop->stop = true;
}
