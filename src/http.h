/* --listen: /healthz and /metrics over HTTP/1.1, served on a thread of its
 * own (epoll) with bounded connections and a deadline per request, so that
 * a slow or hostile client never holds up the event loop or the probes. */
#ifndef UDP_HTTP_H
#define UDP_HTTP_H

#include "metrics.h"

struct http;

/* Listens on addr ("HOST:PORT", ":PORT", "[v6]:PORT"; port 0 picks a free
 * one) and serves m (borrowed). NULL with errno set and a log line on
 * failure. */
struct http *http_start(const char *addr, struct metrics *m);
void http_stop(struct http *h); /* NULL: no-op */

#endif
