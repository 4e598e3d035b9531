#include "kubeapi.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"

#define MAX_TOKEN (64 * 1024)
#define MAX_BODY  (1024 * 1024) /* answers we read are small objects */

struct kubeapi {
	CURL *curl; /* kept: its connection to the server is reused */
	char *url;
	char *ca_file, *token_file;
	const atomic_bool *stop;
};

struct body {
	char *s;
	size_t len;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *data)
{
	struct body *b = data;
	size_t len = size * n;
	if (b->len + len > MAX_BODY) {
		b->too_big = true;
		return 0;
	}
	char *s = realloc(b->s, b->len + len + 1);
	if (!s)
		return 0;
	memcpy(s + b->len, p, len);
	b->s = s;
	b->len += len;
	b->s[b->len] = '\0';
	return len;
}

static int on_progress(void *data, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	const atomic_bool *stop = data;
	return stop && atomic_load(stop); /* non-zero aborts the transfer */
}

static char *path_join(const char *dir, const char *name)
{
	char *s;
	return asprintf(&s, "%s/%s", dir, name) < 0 ? NULL : s;
}

struct kubeapi *kubeapi_new(const char *sa_dir, const atomic_bool *stop, char *why, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	if (!host || !*host || !port || !*port) {
		errbuf_put(why, errlen,
			   "$KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT are not set: not "
			   "running in a cluster");
		errno = ENOENT;
		return NULL;
	}
	if (strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
	    strpbrk(host, "/@?#[] ")) {
		errbuf_put(why, errlen, "bad API server address host=%s port=%s", host, port);
		errno = EINVAL;
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		errbuf_put(why, errlen, "cannot initialise libcurl");
		errno = ENOMEM;
		return NULL;
	}
	struct kubeapi *k = calloc(1, sizeof(*k));
	bool v6 = strchr(host, ':') != NULL;
	char *url = NULL;
	if (k && asprintf(&url, v6 ? "https://[%s]:%s" : "https://%s:%s", host, port) >= 0)
		k->url = url;
	if (!k || !k->url || !(k->ca_file = path_join(sa_dir, "ca.crt")) ||
	    !(k->token_file = path_join(sa_dir, "token")) || !(k->curl = curl_easy_init())) {
		kubeapi_free(k);
		if (!k)
			curl_global_cleanup();
		errbuf_put(why, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	k->stop = stop;
	return k;
}

void kubeapi_free(struct kubeapi *k)
{
	if (!k)
		return;
	if (k->curl)
		curl_easy_cleanup(k->curl);
	free(k->url);
	free(k->ca_file);
	free(k->token_file);
	free(k);
	curl_global_cleanup();
}

const char *kubeapi_url(const struct kubeapi *k)
{
	return k->url;
}

/* The token file's first line, malloc'd; NULL with errno set. */
static char *read_token(const char *file)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *t = malloc(MAX_TOKEN + 1);
	ssize_t n = t ? read(fd, t, MAX_TOKEN) : -1;
	int e = errno;
	close(fd);
	if (n <= 0) {
		free(t);
		errno = n == 0 ? ENODATA : e;
		return NULL;
	}
	t[n] = '\0';
	t[strcspn(t, "\r\n")] = '\0';
	return t;
}

static int curl_errno(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void set_options(struct kubeapi *k, const char *url, const char *method, const char *json,
			struct curl_slist *hdrs, struct body *b, char *curl_err)
{
	CURL *c = k->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_CAINFO, k->ca_file);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* not the loop's signals: a thread */
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)KUBEAPI_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)KUBEAPI_TIMEOUT_MS);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)k->stop);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_err);
}

int kubeapi_request(struct kubeapi *k, const char *method, const char *path, const char *json,
		    long *status, char **body, char *why, size_t errlen)
{
	if (!k || !method || !path || path[0] != '/' || !status || !body)
		return -EINVAL;
	char *token = read_token(k->token_file);
	if (!token) {
		errbuf_put(why, errlen, "cannot read the service account token file=%s err=\"%s\"",
			   k->token_file, strerror(errno));
		return -EACCES;
	}
	char *url = NULL, *auth = NULL;
	struct curl_slist *hdrs = NULL, *h;
	int e = -ENOMEM;
	char *s;
	if (asprintf(&s, "%s%s", k->url, path) >= 0)
		url = s;
	if (asprintf(&s, "Authorization: Bearer %s", token) >= 0)
		auth = s;
	free(token);
	if (!url || !auth)
		goto out;
	const char *lines[] = {auth, "Accept: application/json", "Content-Type: application/json",
			       "User-Agent: usb-device-plugin/" UDP_VERSION};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		if (!(h = curl_slist_append(hdrs, lines[i])))
			goto out;
		hdrs = h;
	}
	struct body b = {0};
	char curl_err[CURL_ERROR_SIZE] = "";
	set_options(k, url, method, json, hdrs, &b, curl_err);
	CURLcode c = curl_easy_perform(k->curl);
	if (c == CURLE_OK) {
		curl_easy_getinfo(k->curl, CURLINFO_RESPONSE_CODE, status);
		*body = b.s ? b.s : strdup("");
		e = *body ? 0 : -ENOMEM;
		if (e < 0)
			errbuf_put(why, errlen, "out of memory");
	} else {
		free(b.s);
		e = b.too_big ? -EIO : curl_errno(c);
		errbuf_put(why, errlen, "%s",
			   b.too_big	 ? "answer too long"
			   : curl_err[0] ? curl_err
					 : curl_easy_strerror(c));
	}
	/* The request holds no pointer to these after perform. */
	curl_easy_setopt(k->curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(k->curl, CURLOPT_ERRORBUFFER, NULL);
out:
	if (e == -ENOMEM && why && !why[0])
		errbuf_put(why, errlen, "out of memory");
	curl_slist_free_all(hdrs);
	free(url);
	if (auth) {
		memset(auth, 0, strlen(auth)); /* the token */
		free(auth);
	}
	return e;
}
