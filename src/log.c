#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {
    [LOG_LEVEL_ALL] = "all",   [LOG_LEVEL_DEBUG] = "debug", [LOG_LEVEL_INFO] = "info",
    [LOG_LEVEL_WARN] = "warn", [LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_NONE] = "none",
};

/* The one piece of process-wide state: read by every thread that logs. */
static _Atomic int current_level = LOG_LEVEL_INFO;

int log_level_parse(const char *name, enum log_level *out)
{
	if (!name || !out)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if ((unsigned)level >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[level];
}

void log_set_level(enum log_level level)
{
	atomic_store(&current_level, (int)level);
}

int log_enabled(enum log_level level)
{
	return level != LOG_LEVEL_NONE && (int)level >= atomic_load(&current_level);
}

void log_write(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	int saved_errno = errno;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, ts.tv_nsec / 1000000, log_level_name(level));
	if (n < 0)
		n = 0;
	/* Leave room for the newline; a truncated line is marked, not lost. */
	const size_t room = sizeof(line) - 1;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, room - (size_t)n, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len >= room) {
		len = room - 1;
		memcpy(line + len - 3, "...", 3);
	}
	/* Values come from the kubelet, sysfs and file names: a control
	 * character in one (a newline in a device ID) must not forge a line
	 * or a terminal sequence. Each becomes \xHH, written out below. */
	char out[sizeof(line) * 4 + 2];
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f) {
			static const char hex[] = "0123456789abcdef";
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '\n';
	ssize_t w = write(STDERR_FILENO, out, o);
	(void)w;
	errno = saved_errno;
}
