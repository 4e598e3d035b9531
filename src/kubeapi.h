/* A small Kubernetes API client over libcurl: HTTPS to the API server the
 * in-cluster way ($KUBERNETES_SERVICE_HOST and _PORT, the service
 * account's CA and bearer token), one blocking request at a time with
 * timeouts. Meant for one worker thread, never for the event loop. */
#ifndef UDP_KUBEAPI_H
#define UDP_KUBEAPI_H

#include <stdatomic.h>
#include <stddef.h>

#define KUBEAPI_DEFAULT_SA_DIR	   "/var/run/secrets/kubernetes.io/serviceaccount"
#define KUBEAPI_CONNECT_TIMEOUT_MS 5000
#define KUBEAPI_TIMEOUT_MS	   10000

struct kubeapi;

/* A client for the API server named by the environment, trusting
 * sa_dir/ca.crt and sending sa_dir/token (read again for each request:
 * projected tokens rotate). stop (borrowed, may be NULL) aborts a request
 * in flight when it turns true. NULL with errno set and the reason in why
 * (ENOENT: not in a cluster, no such variables; ENOMEM). */
struct kubeapi *kubeapi_new(const char *sa_dir, const atomic_bool *stop, char *why, size_t errlen);
void kubeapi_free(struct kubeapi *k); /* NULL is a no-op */

/* The server's base URL ("https://10.96.0.1:443"). */
const char *kubeapi_url(const struct kubeapi *k);

/* method path with an optional JSON body. 0 when the server answered (any
 * HTTP status, in *status; its body, NUL-terminated and malloc'd, in *body
 * for the caller to free), or negative errno when it did not, the reason
 * in why: -ETIMEDOUT, -ECONNREFUSED, -ECANCELED (stop), -EACCES (no token
 * file), -EIO (TLS or transfer error), -ENOMEM. */
int kubeapi_request(struct kubeapi *k, const char *method, const char *path, const char *json,
		    long *status, char **body, char *why, size_t errlen);

#endif
