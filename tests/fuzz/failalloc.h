/* Allocation failure injection for the code under test. The targets that
 * use it are linked with -Wl,--wrap=malloc,... (see fuzz.mk), so that the
 * allocations of the objects linked in (not those of libyaml, cJSON or
 * protobuf-c, which are shared libraries) go through failalloc.c. */
#ifndef UDP_FAILALLOC_H
#define UDP_FAILALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* From now on, counts allocations and fails the one numbered fail_at
 * (0-based; -1: none) with ENOMEM, once. */
void failalloc_start(long fail_at);
/* Stops counting and failing; returns the number of allocations seen. */
long failalloc_stop(void);
/* Whether an allocation failed since failalloc_start. */
bool failalloc_failed(void);

/* A hash of the input, to choose which allocation fails. */
static inline uint64_t failalloc_hash(const uint8_t *data, size_t size)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 0x100000001b3ULL;
	return h;
}

#endif
