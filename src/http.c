/* --listen: /healthz and /metrics, answered by a small HTTP/1.1 responder on
 * its own thread (epoll).
 *
 * Why our own and not libmicrohttpd (used before): its timeout is an idle
 * timeout, so a client sending a byte a second keeps its connection for
 * ever; it has no per-client limit and no hook to bound a whole request from
 * the outside. 520 such clients (any Pod can reach the node's port 8080)
 * held every probe for 30 s. We serve two fixed GET answers: reading the
 * request line, skipping the headers, answering and closing (Connection:
 * close; probes connect anew each time) takes less code than fencing the
 * library in, and drops a dependency.
 *
 * Limits, each counted in usbdp_http_rejected_total{reason} and logged at
 * most once per LOG_EVERY_US:
 * - deadline: DEADLINE_US from accept to the end of the request head, as
 *   long again to write the answer and to see the client close;
 * - head_too_large: a head over MAX_HEAD bytes gets 431;
 * - per_client: one source address holds at most PER_CLIENT connections;
 * - total: at most h->cap connections, kept well below RLIMIT_NOFILE so that
 *   idle clients never take the descriptors the event loop needs;
 * - fd_limit: accept found no descriptor free (the rest of the process holds
 *   them): accepting pauses for PAUSE_US.
 * Over per_client or total, the OLDEST connection (of that address, or of
 * all) is closed, not the new one: a flood from the address the kubelet
 * probes from (hostNetwork: loopback or the node IP) cannot lock a probe
 * out. With TCP_DEFER_ACCEPT a connection reaches accept() with its first
 * bytes, so a probe's request (one segment) is answered there and then,
 * before anything newer can push it out. */
#include "http.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define MAX_CONNECTIONS 128 /* fewer under a low RLIMIT_NOFILE */
#define PER_CLIENT	32
#define RESERVE_FDS	32 /* descriptors always left to the rest of the process */
#define DEADLINE_US	(2 * 1000000ULL)
#define MAX_HEAD	8192
#define MAX_LINE	128 /* request line: any target of ours fits */
#define LOG_EVERY_US	(10 * 1000000ULL)
#define PAUSE_US	(100 * 1000ULL)
#define ID_LISTEN	0
#define ID_WAKE		1

enum state { C_FREE, C_HEAD, C_WRITE, C_DRAIN };

struct conn {
	struct conn *prev, *next; /* in use: by deadline, earliest first; free: free list */
	uint64_t deadline;	  /* µs, CLOCK_MONOTONIC */
	uint32_t gen;		  /* tells a stale epoll event from one for this fd */
	int fd;
	enum state state;
	unsigned char peer[16]; /* source address, IPv4 as ::ffff:a.b.c.d */
	size_t head, line_len;
	bool line_done, blank;
	char line[MAX_LINE];
	char *out;
	size_t out_len, out_off;
};

struct http {
	struct metrics *m;
	pthread_t thread;
	int lfd, ep, wake, port;
	struct conn *conns, *first, *last, *free_list;
	size_t cap, n; /* connections: at most, open */
	uint64_t paused_until, next_log, pending[HTTP_REJ_N];
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000;
}

static void rejected(struct http *h, enum http_reject why)
{
	metrics_http_rejected(h->m, why);
	h->pending[why]++;
}

/* One line for everything rejected since the last one, at most every
 * LOG_EVERY_US: a flood never floods the log. */
static void log_rejections(struct http *h, uint64_t now)
{
	uint64_t sum = 0, *p = h->pending;
	for (int i = 0; i < HTTP_REJ_N; i++)
		sum += p[i];
	if (!sum || now < h->next_log)
		return;
	log_warn("http: connections cut short by the limits per_client=%llu total=%llu "
		 "deadline=%llu head_too_large=%llu fd_limit=%llu (at most one line every %llus)",
		 (unsigned long long)p[HTTP_REJ_PER_CLIENT], (unsigned long long)p[HTTP_REJ_TOTAL],
		 (unsigned long long)p[HTTP_REJ_DEADLINE],
		 (unsigned long long)p[HTTP_REJ_HEAD_TOO_LARGE],
		 (unsigned long long)p[HTTP_REJ_FD_LIMIT], LOG_EVERY_US / 1000000ULL);
	memset(h->pending, 0, sizeof(h->pending));
	h->next_log = now + LOG_EVERY_US;
}

static void unlink_conn(struct http *h, struct conn *c)
{
	*(c->prev ? &c->prev->next : &h->first) = c->next;
	*(c->next ? &c->next->prev : &h->last) = c->prev;
}

/* Every deadline is DEADLINE_US from now: appending keeps the list sorted. */
static void rearm(struct http *h, struct conn *c, enum state s)
{
	if (c->state != C_FREE)
		unlink_conn(h, c);
	else
		h->n++;
	c->state = s;
	c->deadline = now_us() + DEADLINE_US;
	c->next = NULL;
	c->prev = h->last;
	*(h->last ? &h->last->next : &h->first) = c;
	h->last = c;
}

/* The epoll data of a connection: its slot (after ID_LISTEN and ID_WAKE)
 * and its generation. */
static int watch(struct http *h, struct conn *c, int op, uint32_t events)
{
	struct epoll_event ev = {.events = events,
				 .data.u64 = (uint64_t)c->gen << 32 | (uint64_t)(c - h->conns + 2)};
	return epoll_ctl(h->ep, op, c->fd, &ev);
}

static void close_conn(struct http *h, struct conn *c)
{
	unlink_conn(h, c);
	h->n--;
	close(c->fd); /* also leaves the epoll set */
	free(c->out);
	c->out = NULL;
	c->state = C_FREE;
	c->gen++;
	c->next = h->free_list;
	h->free_list = c;
}

/* status: "404 Not Found"; extra: more header lines; body is copied. */
static int queue_answer(struct conn *c, bool head_only, const char *status, const char *extra,
			const char *type, const char *body, size_t len)
{
	char hdr[320];
	int n = snprintf(hdr, sizeof(hdr),
			 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
			 status, type, len, extra);
	size_t blen = head_only ? 0 : len;
	if (n < 0 || (size_t)n >= sizeof(hdr) || !(c->out = malloc((size_t)n + blen + 1)))
		return -ENOMEM;
	memcpy(c->out, hdr, (size_t)n);
	if (blen)
		memcpy(c->out + n, body, blen);
	c->out_len = (size_t)n + blen;
	c->out_off = 0;
	return 0;
}

#define TEXT "text/plain; charset=utf-8"

/* The answer to a complete request line (without its CR LF). */
static int answer(struct http *h, struct conn *c)
{
	char *l = c->line, *sp1 = strchr(l, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	bool ok = sp1 && sp2 && sp1 > l && sp1[1] == '/' && !strchr(sp2 + 1, ' ') &&
		  (!strcmp(sp2 + 1, "HTTP/1.1") || !strcmp(sp2 + 1, "HTTP/1.0"));
	for (char *p = l; ok && p < sp1; p++)
		ok = *p >= 'A' && *p <= 'Z';
	for (char *p = sp1 + 1; ok && p < sp2; p++)
		ok = *p > ' ' && *p < 0x7f;
	if (!ok)
		return queue_answer(c, false, "400 Bad Request", "", TEXT, "bad request\n", 12);
	*sp1 = *sp2 = '\0';
	bool head = !strcmp(l, "HEAD");
	if (!head && strcmp(l, "GET"))
		return queue_answer(c, false, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
				    TEXT, "GET or HEAD only\n", 17);
	char *target = sp1 + 1;
	target[strcspn(target, "?")] = '\0'; /* a query string changes nothing */
	char *body = NULL;
	size_t len = 0;
	int e;
	if (!strcmp(target, "/healthz")) {
		bool ready = false;
		body = metrics_health(h->m, &ready);
		len = body ? strlen(body) : 0;
		e = queue_answer(c, head,
				 !body	 ? "500 Internal Server Error"
				 : ready ? "200 OK"
					 : "503 Service Unavailable",
				 "", TEXT, body, len);
	} else if (!strcmp(target, "/metrics")) {
		body = metrics_render(h->m, &len);
		e = body ? queue_answer(c, head, "200 OK", "",
					"text/plain; version=0.0.4; charset=utf-8", body, len)
			 : queue_answer(c, head, "500 Internal Server Error", "", TEXT, "", 0);
	} else {
		e = queue_answer(c, head, "404 Not Found", "", TEXT,
				 "not found: try /healthz or /metrics\n", 36);
	}
	free(body);
	return e;
}

/* Sends what is left of the answer; then half-closes and waits for the
 * client's end, so that unread request bytes do not reset the connection
 * before the client has read the answer. */
static void on_writable(struct http *h, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			return close_conn(h, c);
		c->out_off += (size_t)n;
	}
	shutdown(c->fd, SHUT_WR);
	rearm(h, c, C_DRAIN);
	watch(h, c, EPOLL_CTL_MOD, EPOLLIN);
}

static void start_answer(struct http *h, struct conn *c, int e)
{
	if (e < 0)
		return close_conn(h, c);
	rearm(h, c, C_WRITE);
	watch(h, c, EPOLL_CTL_MOD, EPOLLOUT);
	on_writable(h, c);
}

/* Takes head bytes: keeps the request line, skips header lines up to the
 * empty line (CR LF or a bare LF ends a line). */
static void on_readable(struct http *h, struct conn *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			return close_conn(h, c);
		if (c->state == C_DRAIN)
			continue; /* read and dropped */
		for (ssize_t i = 0; i < n; i++) {
			char ch = buf[i];
			if (++c->head > MAX_HEAD) {
				rejected(h, HTTP_REJ_HEAD_TOO_LARGE);
				return start_answer(
				    h, c,
				    queue_answer(c, false, "431 Request Header Fields Too Large",
						 "", TEXT, "request head too large\n", 23));
			}
			if (!c->line_done) {
				if (ch == '\n') {
					c->line_done = true;
					c->blank = true;
					if (c->line_len && c->line[c->line_len - 1] == '\r')
						c->line_len--;
					c->line[c->line_len] = '\0';
				} else if (c->line_len + 1 >= sizeof(c->line)) {
					return start_answer(
					    h, c,
					    queue_answer(c, false, "414 URI Too Long", "", TEXT,
							 "URI too long\n", 13));
				} else {
					c->line[c->line_len++] = ch;
				}
			} else if (ch == '\n') {
				if (c->blank)
					return start_answer(h, c, answer(h, c));
				c->blank = true;
			} else if (ch != '\r') {
				c->blank = false;
			}
		}
	}
}

/* Closes the oldest connection (of peer, or of all), unless its request has
 * come in since we last looked: that one is answered and the next oldest is
 * taken. A probe accepted just before a burst of new connections is never
 * pushed out unread. Ends: every pass closes one or answers one. */
static void evict(struct http *h, const unsigned char *peer, enum http_reject why)
{
	for (;;) {
		struct conn *v = h->first;
		while (v && peer && memcmp(v->peer, peer, 16))
			v = v->next;
		if (!v)
			return;
		uint32_t gen = v->gen;
		if (v->state == C_HEAD) {
			on_readable(h, v);
			if (v->gen != gen)
				return; /* the client had gone: room made */
			if (v->state != C_HEAD)
				continue;
		}
		if (v->state != C_DRAIN)
			rejected(h, why);
		return close_conn(h, v);
	}
}

static void accept_one(struct http *h, int fd, const struct sockaddr_storage *ss)
{
	unsigned char peer[16] = {0};
	if (ss->ss_family == AF_INET6) {
		memcpy(peer, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	} else if (ss->ss_family == AF_INET) {
		peer[10] = peer[11] = 0xff;
		memcpy(peer + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	}
	size_t same = 0;
	for (struct conn *c = h->first; c; c = c->next)
		same += !memcmp(c->peer, peer, 16);
	if (same >= PER_CLIENT)
		evict(h, peer, HTTP_REJ_PER_CLIENT);
	if (h->n >= h->cap)
		evict(h, NULL, HTTP_REJ_TOTAL);
	struct conn *c = h->free_list;
	h->free_list = c->next;
	c->fd = fd;
	memcpy(c->peer, peer, 16);
	c->head = c->line_len = 0;
	c->line_done = c->blank = false;
	rearm(h, c, C_HEAD);
	if (watch(h, c, EPOLL_CTL_ADD, EPOLLIN) < 0)
		return close_conn(h, c);
	on_readable(h, c); /* a probe's request is usually there already */
}

static void on_accept(struct http *h)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(h->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_one(h, fd, &ss);
			continue;
		}
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			rejected(h, HTTP_REJ_FD_LIMIT);
			h->paused_until = now_us() + PAUSE_US;
			struct epoll_event ev = {.events = 0, .data.u64 = ID_LISTEN};
			epoll_ctl(h->ep, EPOLL_CTL_MOD, h->lfd, &ev);
		}
		return; /* EAGAIN, or an error of one aborted connection */
	}
}

static void *serve(void *arg)
{
	struct http *h = arg;
	struct epoll_event evs[64];
	for (;;) {
		uint64_t now = now_us(), until = UINT64_MAX;
		while (h->first && h->first->deadline <= now) {
			if (h->first->state != C_DRAIN)
				rejected(h, HTTP_REJ_DEADLINE);
			close_conn(h, h->first);
		}
		if (h->paused_until && h->paused_until <= now) {
			h->paused_until = 0;
			struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ID_LISTEN};
			epoll_ctl(h->ep, EPOLL_CTL_MOD, h->lfd, &ev);
		}
		log_rejections(h, now);
		if (h->first)
			until = h->first->deadline;
		if (h->paused_until && h->paused_until < until)
			until = h->paused_until;
		for (int i = 0; i < HTTP_REJ_N; i++)
			if (h->pending[i] && h->next_log < until)
				until = h->next_log;
		int timeout = until == UINT64_MAX ? -1 : (int)((until - now + 999) / 1000);
		int n = epoll_wait(h->ep, evs, 64, timeout);
		for (int i = 0; i < n; i++) {
			uint64_t id = evs[i].data.u64 & 0xffffffffu;
			if (id == ID_WAKE)
				return NULL;
			if (id == ID_LISTEN) {
				on_accept(h);
				continue;
			}
			struct conn *c = &h->conns[id - 2];
			if (c->state == C_FREE || c->gen != evs[i].data.u64 >> 32)
				continue; /* closed (and maybe reused) earlier in this batch */
			if (c->state == C_WRITE)
				on_writable(h, c);
			else
				on_readable(h, c);
		}
	}
}
/* Splits "HOST:PORT", ":PORT" or "[V6]:PORT". */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	if (!colon)
		return -EINVAL;
	const char *h = addr;
	size_t n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		h = addr + 1;
		n -= 2;
	}
	if (n >= hlen || strlen(colon + 1) >= plen)
		return -ENAMETOOLONG;
	memcpy(host, h, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

static int listen_on(const char *addr, int *port_out)
{
	char host[256], port[16];
	int e = split_addr(addr, host, sizeof(host), port, sizeof(port));
	if (e < 0)
		return e;
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	/* ":8080": every address, IPv6 and IPv4 on one dual-stack socket */
	int g = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (g != 0)
		return -EADDRNOTAVAIL;
	int fd = -1;
	e = -EADDRNOTAVAIL;
	/* For a bare ":PORT", IPv6's :: first (dual stack), then the rest. */
	for (int pass = *host ? 1 : 0; pass < 2 && fd < 0; pass++)
		for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
			if (pass == 0 && ai->ai_family != AF_INET6)
				continue;
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
				    0);
			if (fd < 0) {
				e = -errno;
				continue;
			}
			int one = 1, zero = 0, defer = DEADLINE_US / 1000000;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			/* Accepted once the first bytes are in: a probe's request is
			 * there when we take its connection, and a client that says
			 * nothing takes no descriptor of ours for a while. */
			setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
			if (ai->ai_family == AF_INET6 && !*host)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4096) < 0) {
				e = -errno;
				close(fd);
				fd = -1;
			}
		}
	freeaddrinfo(res);
	if (fd < 0)
		return e;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	*port_out = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		*port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
							   : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

/* The connection cap: half of the descriptors left after RESERVE_FDS. */
static size_t conn_cap(void)
{
	struct rlimit rl;
	size_t cap = MAX_CONNECTIONS;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		size_t fit = rl.rlim_cur > RESERVE_FDS + 4 ? (rl.rlim_cur - RESERVE_FDS) / 2 : 2;
		if (fit < cap)
			cap = fit;
	}
	return cap;
}

static int setup(struct http *h, const char *addr)
{
	h->cap = conn_cap();
	h->conns = calloc(h->cap, sizeof(*h->conns));
	if (!h->conns)
		return -ENOMEM;
	for (size_t i = h->cap; i-- > 0;) {
		h->conns[i].next = h->free_list;
		h->free_list = &h->conns[i];
	}
	h->lfd = listen_on(addr, &h->port);
	if (h->lfd < 0)
		return h->lfd;
	h->ep = epoll_create1(EPOLL_CLOEXEC);
	h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->ep < 0 || h->wake < 0)
		return -errno;
	struct epoll_event l = {.events = EPOLLIN, .data.u64 = ID_LISTEN};
	struct epoll_event w = {.events = EPOLLIN, .data.u64 = ID_WAKE};
	if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->lfd, &l) < 0 ||
	    epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake, &w) < 0)
		return -errno;
	return -pthread_create(&h->thread, NULL, serve, h);
}

static void teardown(struct http *h)
{
	while (h->first)
		close_conn(h, h->first);
	if (h->lfd >= 0)
		close(h->lfd);
	if (h->ep >= 0)
		close(h->ep);
	if (h->wake >= 0)
		close(h->wake);
	free(h->conns);
	free(h);
}

struct http *http_start(const char *addr, struct metrics *m)
{
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->m = m;
	h->lfd = h->ep = h->wake = -1;
	int e = setup(h, addr);
	if (e < 0) {
		log_error("cannot listen for /healthz and /metrics listen=%s err=\"%s\"", addr,
			  strerror(-e));
		teardown(h);
		errno = -e;
		return NULL;
	}
	log_info("serving /healthz and /metrics listen=%s port=%d max_connections=%zu "
		 "per_client=%d deadline_ms=%llu",
		 addr, h->port, h->cap, PER_CLIENT, DEADLINE_US / 1000);
	return h;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	uint64_t one = 1;
	if (write(h->wake, &one, sizeof(one)) != sizeof(one))
		log_warn("http: cannot wake the HTTP thread err=\"%s\"", strerror(errno));
	pthread_join(h->thread, NULL);
	teardown(h);
}
