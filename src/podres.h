/* The kubelet's PodResources API v1, as a blocking client: which Pods hold
 * a device. Meant for a worker thread, never for the event loop. */
#ifndef UDP_PODRES_H
#define UDP_PODRES_H

#include <stdatomic.h>
#include <stddef.h>

#define PODRES_DEFAULT_SOCKET "/var/lib/kubelet/pod-resources/kubelet.sock"

struct podres_pod {
	char *namespace_;
	char *name;
};

/* Calls List on the kubelet's unix socket and returns, in *pods (malloc'd,
 * free with podres_pods_free), each Pod with a container holding device id
 * of resource (full name, "domain/name"), once. Waits at most timeout_ms;
 * returns early (-ECANCELED) when *stop becomes true. 0 or negative errno:
 * -ETIMEDOUT, -ECONNREFUSED/-EIO (call failed; the gRPC status text is put
 * in why, errlen bytes), -EBADMSG (undecodable answer), -ENOMEM. */
int podres_find(const char *socket_path, const char *resource, const char *id, int timeout_ms,
		const atomic_bool *stop, struct podres_pod **pods, size_t *n_pods, char *why,
		size_t errlen);

void podres_pods_free(struct podres_pod *pods, size_t n);

#endif
