/* "Say it once": a set of keys seen, for warnings that must not repeat on
 * every rescan. Hashed, so checking costs O(1) however many there are;
 * bounded (4096 keys, then it starts again). */
#ifndef UDP_ONCE_H
#define UDP_ONCE_H

#include <stdbool.h>

struct once;

struct once *once_new(void);	/* NULL on ENOMEM */
void once_free(struct once *o); /* NULL is a no-op */
/* True the first time key is given (and when o is NULL or memory runs
 * out: better a repeated warning than a lost one). */
bool once_first(struct once *o, const char *key);

#endif
