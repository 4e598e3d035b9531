/* Logging: one line per event on stderr, "ts=... level=... msg key=value".
 * Levels match generic-device-plugin's --log-level names. */
#ifndef UDP_LOG_H
#define UDP_LOG_H

enum log_level {
	LOG_LEVEL_ALL = 0, /* everything, including trace */
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_NONE,
};

/* Parses "all", "debug", "info", "warn", "error", "none"; -EINVAL otherwise. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);

/* Writes one line if level is enabled. fmt is the message, conventionally
 * "event key=value ...". Thread-safe (one write(2) per line). */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
