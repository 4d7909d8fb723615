#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

static enum hearth_log_level current_level = HEARTH_LOG_INFO;
static int json_format;
static log_sink_fn sink_fn;
static void *sink_user;
static pthread_t loop_thread;
static int loop_thread_known;
static int in_sink;

static const char *const level_names[] = {"error", "warning", "info", "debug"};
/* syslog priorities for journald's "<N>" prefix */
static const int level_prio[] = {3, 4, 6, 7};

void log_set_level(enum hearth_log_level level)
{
	if (level >= HEARTH_LOG_ERROR && level <= HEARTH_LOG_DEBUG)
		current_level = level;
}

enum hearth_log_level log_get_level(void)
{
	return current_level;
}

void log_set_format(int json)
{
	json_format = json;
}

void log_set_sink(log_sink_fn fn, void *user)
{
	sink_fn = fn;
	sink_user = user;
	loop_thread = pthread_self();
	loop_thread_known = 1;
}

int log_level_parse(const char *text, enum hearth_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(text, level_names[i]) == 0) {
			*out = (enum hearth_log_level)i;
			return 0;
		}
	}
	if (strcmp(text, "warn") == 0) {
		*out = HEARTH_LOG_WARNING;
		return 0;
	}
	return -EINVAL;
}

const char *log_level_name(enum hearth_log_level level)
{
	if (level < HEARTH_LOG_ERROR || level > HEARTH_LOG_DEBUG)
		return "?";
	return level_names[level];
}

static void write_text(enum hearth_log_level level, const char *source, const char *msg)
{
	if (getenv("JOURNAL_STREAM")) {
		fprintf(stderr, "<%d>%s%s%s\n", level_prio[level], source ? source : "",
			source ? ": " : "", msg);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char when[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld %-7s %s%s%s\n", when, ts.tv_nsec / 1000000L, level_names[level],
		source ? source : "", source ? ": " : "", msg);
}

static void write_json(enum hearth_log_level level, const char *source, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	cJSON_AddNumberToObject(o, "ts", (double)ts.tv_sec + ts.tv_nsec / 1e9);
	cJSON_AddStringToObject(o, "level", level_names[level]);
	if (source)
		cJSON_AddStringToObject(o, "source", source);
	cJSON_AddStringToObject(o, "message", msg);
	char *line = cJSON_PrintUnformatted(o);
	if (line) {
		fprintf(stderr, "%s\n", line);
		cJSON_free(line);
	}
	cJSON_Delete(o);
}

void log_vmsg(enum hearth_log_level level, const char *source, const char *fmt, va_list ap)
{
	if (level < HEARTH_LOG_ERROR)
		level = HEARTH_LOG_ERROR;
	if (level > HEARTH_LOG_DEBUG)
		level = HEARTH_LOG_DEBUG;
	if (level > current_level)
		return;
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* one line per message: no control characters reach the log */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
	if (json_format)
		write_json(level, source, msg);
	else
		write_text(level, source, msg);
	if (level <= HEARTH_LOG_WARNING && sink_fn && !in_sink && loop_thread_known &&
	    pthread_equal(pthread_self(), loop_thread)) {
		in_sink = 1;
		sink_fn(sink_user, level, source, msg);
		in_sink = 0;
	}
}

void log_msg(enum hearth_log_level level, const char *source, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, source, fmt, ap);
	va_end(ap);
}
