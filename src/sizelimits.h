/* The plugin's size limits, in one place (README "Limits"). A config over
 * them is refused at start and on reload; what only the files found at run
 * time can exceed (a glob matching more files than foreseen) is cut to the
 * limit, said in the log, on /metrics and on /healthz. */
#ifndef UDP_SIZELIMITS_H
#define UDP_SIZELIMITS_H

#include <stddef.h>
#include <stdint.h>

/* Configured resources: each is a unix socket, a gRPC server, a
 * registration and a set of metrics (some 40 KiB each); 10,000 of them took
 * 393 MiB against the DaemonSet's 64 MiB. smarter-device-manager's
 * derived resources count too: a devicematch file that would make one
 * more is skipped (derived.h). */
#define LIMIT_RESOURCES 256

/* Devices (kubelet device IDs) one resource lists: the kubelet keeps every
 * one in memory and in its checkpoint, and each list change sends them all
 * again. A node has far fewer real devices; 10,000 also covers a count of
 * 10,000 on one file (the most a group's count may be). */
#define LIMIT_DEVICES 10000

/* The kubelet's gRPC client receives at most 4 MiB (4,194,304 bytes) per
 * message (grpc-go's default, which it keeps): a larger
 * ListAndWatchResponse is refused with RESOURCE_EXHAUSTED and the resource
 * gets no devices at all. The encoded list stays below this, some 190 KiB
 * under that limit. */
#define LIMIT_LIST_BYTES 4000000

/* Bytes of a varint holding v. */
static inline size_t limit_varint_bytes(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Bytes one device with an ID of id_len bytes adds to an encoded
 * ListAndWatchResponse at most (health "Unhealthy", the longer word; no
 * topology): field 1 (devices) holding Device{ID = 1, health = 2}. */
static inline size_t limit_list_entry_bytes(size_t id_len)
{
	size_t dev = 1 + limit_varint_bytes(id_len) + id_len + 1 + 1 + 9;
	return 1 + limit_varint_bytes(dev) + dev;
}

#endif
