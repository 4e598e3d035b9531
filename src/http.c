#include "http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

/* A client gets this long to send its request and read the answer. */
#define CLIENT_TIMEOUT_S 10
#define MAX_CONNECTIONS	 512
/* Request header memory per connection: bigger headers get an error. */
#define CONNECTION_MEMORY (32 * 1024)

struct http {
	struct MHD_Daemon *mhd;
	struct metrics *m;
	int fd;
	int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, size_t len,
			     const char *type)
{
	struct MHD_Response *r =
	    body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
		 : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	(void)version;
	(void)upload;
	struct http *h = cls;
	/* First call: headers only. Answer on the second, after any body
	 * (which we do not want) has been read. */
	if (!*state) {
		*state = h;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* discard */
		return MHD_YES;
	}
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (!head && strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, strdup("GET or HEAD only\n"), 17,
			     "text/plain; charset=utf-8");
	if (strcmp(url, "/healthz") == 0) {
		bool ready;
		char *body = metrics_health(h->m, &ready);
		return reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, body,
			     body ? strlen(body) : 0, "text/plain; charset=utf-8");
	}
	if (strcmp(url, "/metrics") == 0) {
		size_t len = 0;
		char *body = metrics_render(h->m, &len);
		if (!body)
			return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, 0, "text/plain");
		return reply(c, MHD_HTTP_OK, body, len, "text/plain; version=0.0.4; charset=utf-8");
	}
	return reply(c, MHD_HTTP_NOT_FOUND, strdup("not found: try /healthz or /metrics\n"), 36,
		     "text/plain; charset=utf-8");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
		msg[--n] = '\0';
	log_debug("http msg=\"%s\"", msg);
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
			int one = 1, zero = 0;
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (ai->ai_family == AF_INET6 && !*host)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
			if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
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

struct http *http_start(const char *addr, struct metrics *m)
{
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->m = m;
	h->fd = listen_on(addr, &h->port);
	if (h->fd < 0) {
		int e = -h->fd;
		log_error("cannot listen for /healthz and /metrics listen=%s err=\"%s\"", addr,
			  strerror(e));
		free(h);
		errno = e;
		return NULL;
	}
	h->mhd = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL,
	    on_request, h, MHD_OPTION_LISTEN_SOCKET, h->fd, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CLIENT_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
	    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
	if (!h->mhd) {
		log_error("cannot start the HTTP server listen=%s", addr);
		close(h->fd);
		free(h);
		errno = EIO;
		return NULL;
	}
	log_info("serving /healthz and /metrics listen=%s port=%d", addr, h->port);
	return h;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	close(h->fd);
	free(h);
}
