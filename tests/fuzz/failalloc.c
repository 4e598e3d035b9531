/* The --wrap'ed allocation functions: pass-through, except for the one
 * allocation failalloc_start asked to fail. One thread only. */
#include "failalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_reallocarray(void *p, size_t n, size_t size);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static bool counting, failed;
static long seen, fail_at = -1;

void failalloc_start(long at)
{
	counting = true;
	failed = false;
	seen = 0;
	fail_at = at;
}

long failalloc_stop(void)
{
	counting = false;
	fail_at = -1;
	return seen;
}

bool failalloc_failed(void)
{
	return failed;
}

static bool fail_now(void)
{
	if (!counting)
		return false;
	if (seen++ != fail_at)
		return false;
	failed = true;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

void *__wrap_reallocarray(void *p, size_t n, size_t size)
{
	return fail_now() ? NULL : __real_reallocarray(p, n, size);
}

char *__wrap_strdup(const char *s)
{
	return fail_now() ? NULL : __real_strdup(s);
}

char *__wrap_strndup(const char *s, size_t n)
{
	return fail_now() ? NULL : __real_strndup(s, n);
}
