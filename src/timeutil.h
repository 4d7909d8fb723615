/*
 * timeutil: durations, times of day, weekdays and local calendar arithmetic
 * for the automation engine.
 *
 * Pure module: libc only, no MQTT, SQL or libuv. Times are int64_t
 * milliseconds since the Unix epoch. "Local" means the process's time zone
 * (TZ, applied once with tzset() by the daemon). Zones with leap seconds
 * ("right/...") are not supported. Loop thread only: the local-time
 * functions read the process's zone, which nobody may change meanwhile.
 *
 * DST rule used everywhere (timeutil, cron, sun): a local date and wall-clock
 * time maps to one instant. A wall time skipped by a spring-forward gap maps
 * to the first instant after the gap; a wall time repeated by a fall-back
 * maps to its first occurrence.
 */
#ifndef HEARTH_TIMEUTIL_H
#define HEARTH_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Weekday bits, numbered as struct tm's tm_wday. */
#define TIMEUTIL_SUN (1u << 0)
#define TIMEUTIL_MON (1u << 1)
#define TIMEUTIL_TUE (1u << 2)
#define TIMEUTIL_WED (1u << 3)
#define TIMEUTIL_THU (1u << 4)
#define TIMEUTIL_FRI (1u << 5)
#define TIMEUTIL_SAT (1u << 6)
#define TIMEUTIL_ALL_DAYS 0x7fu

#define TIMEUTIL_DAY_S 86400
#define TIMEUTIL_DAY_MS 86400000LL
/* Longest duration timeutil_duration_parse accepts, either sign. */
#define TIMEUTIL_DURATION_MAX_MS (400 * TIMEUTIL_DAY_MS)
/* Longest text timeutil_duration_parse and timeutil_time_of_day_parse read. */
#define TIMEUTIL_TEXT_MAX 64

/*
 * Instants the local-time functions accept: 1900-01-01 .. 4000-01-01 UTC.
 * Functions returning int refuse others with -ERANGE; those returning a
 * value clamp their argument into this range first.
 */
#define TIMEUTIL_MIN_MS (-2208988800000LL)
#define TIMEUTIL_MAX_MS (64060588800000LL)

/*
 * Parse a duration.
 *   text: "500ms", "90s", "30m", "2h", "1d", combinations in falling order
 *         ("1h30m", "1d 2h 3m 4s", spaces allowed between parts), a plain
 *         integer meaning seconds ("45"), or "HH:MM:SS" ("00:05:00", hours
 *         may exceed 23). An optional leading '-' or '+' applies to the whole
 *         ("-30m"); the caller decides whether a negative value is allowed.
 *         Whole numbers only; surrounding blanks are ignored.
 *   out_ms: the value in milliseconds, |value| <= TIMEUTIL_DURATION_MAX_MS.
 *   err, err_len: on failure a message quoting the text (may be NULL/0).
 * Returns 0; -EINVAL for NULL, empty, garbage, repeated or out-of-order
 * units, a negative zero ("-0s") or text longer than TIMEUTIL_TEXT_MAX;
 * -ERANGE past the maximum.
 */
int timeutil_duration_parse(const char *text, int64_t *out_ms, char *err, size_t err_len);

/*
 * Parse a time of day, "HH:MM" or "HH:MM:SS" (hour may be one digit),
 * 00:00:00..23:59:59.
 *   out_seconds: seconds since midnight, 0..86399.
 *   err, err_len: on failure a message quoting the text (may be NULL/0).
 * Returns 0 or -EINVAL.
 */
int timeutil_time_of_day_parse(const char *text, int *out_seconds, char *err, size_t err_len);

/*
 * Parse a weekday name: "mon".."sun" or "monday".."sunday", any case.
 *   out_bit: the day's TIMEUTIL_* bit.
 * Returns 0 or -EINVAL.
 */
int timeutil_weekday_parse(const char *text, unsigned *out_bit);

/*
 * Start of the local calendar day containing t_ms: local midnight, or the
 * end of a DST gap that swallowed midnight.
 */
int64_t timeutil_local_midnight(int64_t t_ms);

/* Wall-clock seconds since local midnight at t_ms, 0..86399. */
int timeutil_local_seconds_of_day(int64_t t_ms);

/* Local weekday at t_ms, 0 = Sunday .. 6 = Saturday. */
int timeutil_local_weekday(int64_t t_ms);

/*
 * The next instant strictly after after_ms whose local wall-clock time is
 * seconds_of_day on a local day whose weekday is in weekdays, with the DST
 * rule above: a skipped time fires once when the gap ends, a repeated time
 * fires once (its first occurrence).
 *   seconds_of_day: 0..86399.  weekdays: non-empty TIMEUTIL_* mask.
 *   out_ms: the instant (whole seconds).
 * Returns 0; -EINVAL for a bad time or mask; -ERANGE for after_ms outside
 * TIMEUTIL_MIN_MS..TIMEUTIL_MAX_MS.
 */
int timeutil_next_time_of_day(int64_t after_ms, int seconds_of_day, unsigned weekdays,
			      int64_t *out_ms);

/*
 * Whether t_ms lies in the local time window [after_s, before_s).
 *   after_s, before_s: seconds of day 0..86399, or -1 for an open bound.
 *     after_s > before_s crosses midnight (22:00..06:00); after_s ==
 *     before_s, or both open, is the whole day.
 *   weekdays: TIMEUTIL_* mask of the day the window started on: a
 *     22:00..06:00 window on Friday includes Saturday 03:00. For open or
 *     whole-day windows that is the day of t_ms.
 * Returns false for an empty mask or a bound out of range.
 */
bool timeutil_in_window(int64_t t_ms, int after_s, int before_s, unsigned weekdays);

/*
 * Calendar helpers shared by cron and sun. "Wall seconds" count local
 * wall-clock seconds since 1970-01-01 00:00 as if every day had 86400 s.
 */

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (m 1..12). */
int64_t timeutil_days_from_civil(int64_t y, int m, int d);

/* The date of a day count from timeutil_days_from_civil. */
void timeutil_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Days in month m (1..12) of year y. */
int timeutil_days_in_month(int64_t y, int m);

/* Weekday (0 = Sunday) of a day count from timeutil_days_from_civil. */
int timeutil_weekday_of_days(int64_t days);

/* Local wall seconds at instant t_s (seconds since the epoch). */
int64_t timeutil_wall_from_instant(int64_t t_s);

/*
 * The instant (seconds since the epoch) of local wall seconds wall_s, with
 * the DST rule above. wall_s must come from a date within the range the
 * TIMEUTIL_MIN_MS/MAX_MS bound allows plus a few years.
 */
int64_t timeutil_instant_from_wall(int64_t wall_s);

#endif
