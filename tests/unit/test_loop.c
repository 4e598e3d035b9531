/* The event loop, driven one loop_step at a time: fd readiness on pipes and
 * eventfds, removal from callbacks, timer order, re-arm and cancel, the
 * timer pass that must not spin, the idle callback and loop_stop. Every
 * wait is the loop's own (epoll on a ready fd, or a timer's deadline);
 * nothing sleeps to synchronise. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "check.h"
#include "loop.h"

/* ---- fixtures ---- */

/* What the callbacks saw, in order, as "<tag>;" entries. */
struct trace {
	char log[512];
	int calls;
};

static void trace_add(struct trace *t, const char *tag)
{
	size_t len = strlen(t->log);
	int r = snprintf(t->log + len, sizeof(t->log) - len, "%s;", tag);
	if (r < 0 || (size_t)r >= sizeof(t->log) - len)
		CHECK(!"trace full");
	t->calls++;
}

/* The loop and fds the tests stand on: without them nothing can be
 * tested, and a machine without pipes is broken, not a world to skip. */
static void must(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "test_loop: %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

static struct loop *new_loop(void)
{
	struct loop *loop = loop_new();
	must(loop != NULL, "loop_new");
	return loop;
}

static void make_pipe(int p[2])
{
	must(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2");
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

static void poke(int fd)
{
	CHECK_INT(write(fd, "x", 1), 1);
}

static void drain(int fd)
{
	char buf[64];
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

/* An fd watch: records its tag, drains its fd, then does what it is told. */
struct fdw {
	struct trace *t;
	const char *tag;
	int fd;		  /* the fd it expects */
	uint32_t events;  /* the events it saw last */
	struct fdw *peer; /* deleted by this callback when set */
	bool del_self, stop;
};

static void on_fd(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct fdw *w = data;

	CHECK_INT(fd, w->fd);
	w->events = events;
	trace_add(w->t, w->tag);
	drain(fd);
	if (w->del_self)
		loop_del_fd(loop, fd);
	if (w->peer)
		loop_del_fd(loop, w->peer->fd);
	if (w->stop)
		loop_stop(loop);
}

/* A timer: records its tag; optionally re-arms itself at now + rearm_us
 * while rearm_left > 0, arms or cancels another timer, or stops the loop. */
struct tmr {
	struct trace *t;
	const char *tag;
	int rearm_left;
	int64_t rearm_us;
	struct tmr *arm, *cancel;
	bool stop;
};

static void on_timer(struct loop *loop, void *data)
{
	struct tmr *m = data;

	trace_add(m->t, m->tag);
	if (m->rearm_left > 0) {
		m->rearm_left--;
		CHECK_INT(loop_timer_set(loop, loop_now_us() + m->rearm_us, on_timer, m), 0);
	}
	if (m->arm)
		CHECK_INT(loop_timer_set(loop, loop_now_us(), on_timer, m->arm), 0);
	if (m->cancel)
		loop_timer_cancel(loop, on_timer, m->cancel);
	if (m->stop)
		loop_stop(loop);
}

static void on_idle(struct loop *loop, void *data)
{
	(void)loop;
	trace_add(data, "idle");
}

/* ---- fds ---- */

TEST(fd_readiness_dispatch)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	struct fdw w = {.t = &t, .tag = "r", .fd = p[0]};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);

	/* Nothing to read: no call. */
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 0);

	/* Readable: one call with EPOLLIN, the fd and the data pointer. */
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "r;");
	CHECK(w.events & EPOLLIN);

	/* Drained by the callback: no call again. */
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);

	/* A second fd, an eventfd; both ready: each called once. */
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	must(efd >= 0, "eventfd");
	struct fdw e = {.t = &t, .tag = "e", .fd = efd};
	CHECK_INT(loop_add_fd(loop, efd, EPOLLIN, on_fd, &e), 0);
	poke(p[1]);
	CHECK_INT(eventfd_write(efd, 1), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 3);
	CHECK(strstr(t.log + 2, "r;") && strstr(t.log + 2, "e;"));

	/* A watch on the same fd twice, or on a closed fd, is refused. */
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), -EEXIST);
	CHECK_INT(loop_add_fd(loop, -1, EPOLLIN, on_fd, &w), -EINVAL);
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, NULL, &w), -EINVAL);

	loop_free(loop);
	close(efd);
	close_pipe(p);
}

TEST(del_own_fd_from_its_callback)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	struct fdw w = {.t = &t, .tag = "r", .fd = p[0], .del_self = true};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "r;");

	/* Gone from the loop, still open: readable again, never called. */
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);
	CHECK(fcntl(p[0], F_GETFD) >= 0);

	/* The fd can be watched again afterwards. */
	w.del_self = false;
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 2);

	loop_free(loop);
	close_pipe(p);
}

TEST(del_other_fd_in_the_same_pass)
{
	struct trace t = {0};
	int a[2], b[2];
	struct loop *loop = new_loop();

	make_pipe(a);
	make_pipe(b);
	/* Both ready in one epoll_wait; each deletes the other. Whichever
	 * epoll reports first runs; the other's event, already fetched, must
	 * not be dispatched (ASan: nor touch freed memory). */
	struct fdw wa = {.t = &t, .tag = "a", .fd = a[0]};
	struct fdw wb = {.t = &t, .tag = "b", .fd = b[0]};
	wa.peer = &wb;
	wb.peer = &wa;
	CHECK_INT(loop_add_fd(loop, a[0], EPOLLIN, on_fd, &wa), 0);
	CHECK_INT(loop_add_fd(loop, b[0], EPOLLIN, on_fd, &wb), 0);
	poke(a[1]);
	poke(b[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);
	CHECK(strcmp(t.log, "a;") == 0 || strcmp(t.log, "b;") == 0);

	/* The survivor is still watched; the deleted one is not. */
	bool a_left = t.log[0] == 'a';
	poke(a[1]);
	poke(b[1]);
	wa.peer = wb.peer = NULL;
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 2);
	CHECK_STR(t.log + 2, a_left ? "a;" : "b;");

	loop_free(loop);
	close_pipe(a);
	close_pipe(b);
}

/* loop_del_fd after the fd was closed while a duplicate keeps the file
 * open: epoll keeps the registration (EPOLL_CTL_DEL fails with EBADF) and
 * goes on reporting it. The event must reach no callback and no freed
 * watch (the old loop kept a pointer to the freed watch in epoll's data:
 * a use-after-free under ASan). */
TEST(stale_event_after_close_then_del)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	int dup_fd = fcntl(p[0], F_DUPFD_CLOEXEC, 0);
	must(dup_fd >= 0, "dup");
	struct fdw w = {.t = &t, .tag = "r", .fd = p[0]};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	close(p[0]);
	loop_del_fd(loop, p[0]);
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 0);
	loop_free(loop);
	close(dup_fd);
	close(p[1]);
}

/* ---- timers ---- */

TEST(timers_in_deadline_order)
{
	struct trace t = {0};
	struct loop *loop = new_loop();

	int64_t now = loop_now_us();
	struct tmr m1 = {.t = &t, .tag = "1"}, m2 = {.t = &t, .tag = "2"};
	struct tmr m3 = {.t = &t, .tag = "3"}, later = {.t = &t, .tag = "later"};
	/* Armed out of order, all due: they run earliest first. */
	CHECK_INT(loop_timer_set(loop, now - 1000, on_timer, &m3), 0);
	CHECK_INT(loop_timer_set(loop, now - 3000, on_timer, &m1), 0);
	CHECK_INT(loop_timer_set(loop, now + 3600000000LL, on_timer, &later), 0);
	CHECK_INT(loop_timer_set(loop, now - 2000, on_timer, &m2), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "1;2;3;");
	/* One-shot: fired timers are disarmed; the future one waits. */
	CHECK(!loop_timer_armed(loop, on_timer, &m1));
	CHECK(loop_timer_armed(loop, on_timer, &later));
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 3);
	loop_free(loop);
}

TEST(timer_wakes_a_blocking_step)
{
	struct trace t = {0};
	struct loop *loop = new_loop();

	/* No fd at all: a step that may block 10 s returns by the timer's
	 * deadline 20 ms away (one or two steps: epoll counts whole ms), not
	 * before it. */
	struct tmr m = {.t = &t, .tag = "m"};
	int64_t t0 = loop_now_us(), at = t0 + 20000;
	CHECK_INT(loop_timer_set(loop, at, on_timer, &m), 0);
	for (int i = 0; i < 3 && t.calls == 0; i++)
		CHECK_INT(loop_step(loop, 10000), 0);
	CHECK_INT(t.calls, 1);
	CHECK(loop_now_us() >= at);
	CHECK(loop_now_us() - t0 < 5000000);
	loop_free(loop);
}

TEST(rearm_and_cancel)
{
	struct trace t = {0};
	struct loop *loop = new_loop();

	int64_t now = loop_now_us();
	struct tmr m = {.t = &t, .tag = "m"}, other = {.t = &t, .tag = "o"};

	/* Re-arming (same cb and data) moves the one timer. */
	CHECK_INT(loop_timer_set(loop, now + 3600000000LL, on_timer, &m), 0);
	CHECK_INT(loop_timer_set(loop, now - 1, on_timer, &m), 0);
	CHECK(loop_timer_armed(loop, on_timer, &m));
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "m;");
	CHECK(!loop_timer_armed(loop, on_timer, &m));
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);

	/* And moving it into the future keeps it from firing. */
	CHECK_INT(loop_timer_set(loop, now - 1, on_timer, &m), 0);
	CHECK_INT(loop_timer_set(loop, now + 3600000000LL, on_timer, &m), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);

	/* Cancelled: disarmed, never fires; other data is another timer. */
	CHECK_INT(loop_timer_set(loop, now - 1, on_timer, &m), 0);
	CHECK_INT(loop_timer_set(loop, now - 1, on_timer, &other), 0);
	loop_timer_cancel(loop, on_timer, &m);
	loop_timer_cancel(loop, on_timer, &m); /* twice: a no-op */
	CHECK(!loop_timer_armed(loop, on_timer, &m));
	CHECK(loop_timer_armed(loop, on_timer, &other));
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "m;o;");
	loop_free(loop);
}

TEST(cancel_a_due_timer_from_another)
{
	struct trace t = {0};
	struct loop *loop = new_loop();

	/* Both due in one pass; the first cancels the second, which then
	 * must not run. */
	int64_t now = loop_now_us();
	struct tmr b = {.t = &t, .tag = "b"};
	struct tmr a = {.t = &t, .tag = "a", .cancel = &b};
	CHECK_INT(loop_timer_set(loop, now - 2000, on_timer, &a), 0);
	CHECK_INT(loop_timer_set(loop, now - 1000, on_timer, &b), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "a;");
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "a;");
	loop_free(loop);
}

/* The spin: a timer that re-arms itself at now (or earlier) from its own
 * callback ran again and again inside one timer pass, starving every fd.
 * It must run once per loop_step. (The callback stops re-arming after 50
 * runs, so the old loop ends the test with a failure, not a hang.) */
TEST(rearm_at_now_runs_once_per_step)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	struct tmr m = {.t = &t, .tag = "t", .rearm_left = 50, .rearm_us = 0};
	struct fdw w = {.t = &t, .tag = "fd", .fd = p[0]};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	CHECK_INT(loop_timer_set(loop, loop_now_us(), on_timer, &m), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 1);
	CHECK(loop_timer_armed(loop, on_timer, &m));

	/* The next step runs it once more, and serves the fd ready meanwhile. */
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "t;fd;t;");

	/* Re-armed in the past: the same. */
	m.rearm_us = -5000;
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 4);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 5);
	loop_free(loop);
	close_pipe(p);
}

TEST(timer_armed_in_the_pass_waits)
{
	struct trace t = {0};
	struct loop *loop = new_loop();

	/* a arms b at now from its callback: b runs in the next step. */
	struct tmr b = {.t = &t, .tag = "b"};
	struct tmr a = {.t = &t, .tag = "a", .arm = &b};
	CHECK_INT(loop_timer_set(loop, loop_now_us(), on_timer, &a), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "a;");
	CHECK(loop_timer_armed(loop, on_timer, &b));
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "a;b;");
	loop_free(loop);
}

/* ---- idle, timeout, stop ---- */

TEST(idle_runs_after_a_dispatch)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	struct fdw w = {.t = &t, .tag = "fd", .fd = p[0]};
	struct tmr m = {.t = &t, .tag = "t"};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	loop_set_idle(loop, on_idle, &t);

	/* Nothing dispatched: no idle call. */
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_INT(t.calls, 0);

	/* An fd and a timer in one step: one idle call, after both. */
	poke(p[1]);
	CHECK_INT(loop_timer_set(loop, loop_now_us() - 1, on_timer, &m), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "fd;t;idle;");

	/* A timer alone counts too. */
	CHECK_INT(loop_timer_set(loop, loop_now_us() - 1, on_timer, &m), 0);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "fd;t;idle;t;idle;");

	/* Unset: no call. */
	loop_set_idle(loop, NULL, NULL);
	poke(p[1]);
	CHECK_INT(loop_step(loop, 0), 0);
	CHECK_STR(t.log, "fd;t;idle;t;idle;fd;");
	loop_free(loop);
	close_pipe(p);
}

TEST(step_with_timeout_zero_returns_at_once)
{
	struct trace t = {0};
	int p[2];
	struct loop *loop = new_loop();

	make_pipe(p);
	/* An idle fd and a timer an hour away: 100 steps take well under a
	 * second, on a busy machine too; one blocking wait would take the
	 * hour (and the watchdog in main ends that). */
	struct fdw w = {.t = &t, .tag = "fd", .fd = p[0]};
	struct tmr m = {.t = &t, .tag = "t"};
	CHECK_INT(loop_add_fd(loop, p[0], EPOLLIN, on_fd, &w), 0);
	CHECK_INT(loop_timer_set(loop, loop_now_us() + 3600000000LL, on_timer, &m), 0);
	int64_t t0 = loop_now_us();
	for (int i = 0; i < 100; i++)
		CHECK_INT(loop_step(loop, 0), 0);
	CHECK(loop_now_us() - t0 < 1000000);
	CHECK_INT(t.calls, 0);

	/* A short timeout with nothing due returns too, with nothing run. */
	CHECK_INT(loop_step(loop, 1), 0);
	CHECK_INT(t.calls, 0);
	loop_free(loop);
	close_pipe(p);
}

TEST(stop_from_an_fd_and_from_a_timer)
{
	struct trace t = {0};
	struct loop *loop = new_loop();
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	must(efd >= 0, "eventfd");
	/* loop_run returns after the pass in which a callback stopped it. */
	struct fdw w = {.t = &t, .tag = "e", .fd = efd, .stop = true};
	CHECK_INT(loop_add_fd(loop, efd, EPOLLIN, on_fd, &w), 0);
	CHECK_INT(eventfd_write(efd, 1), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK_STR(t.log, "e;");

	/* loop_run starts afresh; a timer stops it this time. */
	struct tmr m = {.t = &t, .tag = "t", .stop = true};
	CHECK_INT(loop_timer_set(loop, loop_now_us(), on_timer, &m), 0);
	CHECK_INT(loop_run(loop), 0);
	CHECK_STR(t.log, "e;t;");
	loop_free(loop);
	close(efd);
}

TEST(free_null)
{
	loop_free(NULL);
}

int main(void)
{
	/* A loop that blocks where it must not would hang the run: SIGALRM
	 * ends it as a failure instead. */
	alarm(60);
	RUN(fd_readiness_dispatch);
	RUN(del_own_fd_from_its_callback);
	RUN(del_other_fd_in_the_same_pass);
	RUN(stale_event_after_close_then_del);
	RUN(timers_in_deadline_order);
	RUN(timer_wakes_a_blocking_step);
	RUN(rearm_and_cancel);
	RUN(cancel_a_due_timer_from_another);
	RUN(rearm_at_now_runs_once_per_step);
	RUN(timer_armed_in_the_pass_waits);
	RUN(idle_runs_after_a_dispatch);
	RUN(step_with_timeout_zero_returns_at_once);
	RUN(stop_from_an_fd_and_from_a_timer);
	RUN(free_null);
	return CHECK_SUMMARY();
}
