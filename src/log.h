/*
 * log: levelled log lines to stderr, as text or JSON, plus an optional sink
 * (the hub publishes warnings and errors on <base>/bridge/logging).
 *
 * Under systemd (JOURNAL_STREAM set) text lines carry a "<N>" priority prefix
 * and no timestamp, so journald files them at the right level.
 * Loop thread only, except log_msg(), which is safe from any thread (the sink
 * is then skipped).
 */
#ifndef HEARTH_LOG_H
#define HEARTH_LOG_H

#include <hearth/plugin.h>
#include <stdarg.h>

/* A sink sees every line at or above HEARTH_LOG_WARNING, on the loop thread.
 * source may be NULL; msg is borrowed for the call. */
typedef void (*log_sink_fn)(void *user, enum hearth_log_level level, const char *source,
			    const char *msg);

void log_set_level(enum hearth_log_level level);
enum hearth_log_level log_get_level(void);
/* json: 0 text, 1 one JSON object per line. */
void log_set_format(int json);
/* Install (or with fn NULL remove) the sink. */
void log_set_sink(log_sink_fn fn, void *user);
/* Parse "error", "warning", "info", "debug". Returns 0 or -EINVAL. */
int log_level_parse(const char *text, enum hearth_log_level *out);
const char *log_level_name(enum hearth_log_level level);

/* Log one line. source names the subsystem or plugin ("mqtt", "virtual"),
 * or NULL. */
void log_msg(enum hearth_log_level level, const char *source, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum hearth_log_level level, const char *source, const char *fmt, va_list ap);

#define log_error(src, ...) log_msg(HEARTH_LOG_ERROR, (src), __VA_ARGS__)
#define log_warning(src, ...) log_msg(HEARTH_LOG_WARNING, (src), __VA_ARGS__)
#define log_info(src, ...) log_msg(HEARTH_LOG_INFO, (src), __VA_ARGS__)
#define log_debug(src, ...) log_msg(HEARTH_LOG_DEBUG, (src), __VA_ARGS__)

#endif
