/*
 * cron: five-field cron expressions and their next firing time in the
 * process's local time zone.
 *
 * Pure module: libc only. The DST rule is timeutil's: a wall time skipped by
 * a spring-forward gap fires once when the gap ends (as cronie does for
 * gaps under three hours), a wall time repeated by a fall-back fires once,
 * at its first occurrence; this holds for "*" fields too.
 */
#ifndef HEARTH_CRON_H
#define HEARTH_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRON_TEXT_MAX 256 /* bytes of an expression */
#define CRON_SEARCH_YEARS 5

struct cron_expr {
	uint64_t minutes;  /* bit 0..59 */
	uint32_t hours;	   /* bit 0..23 */
	uint32_t days;	   /* bit 1..31 */
	uint16_t months;   /* bit 1..12 */
	uint8_t weekdays;  /* bit 0..6, 0 = Sunday (7 folds to 0) */
	bool days_any;	   /* the day-of-month field starts with '*' */
	bool weekdays_any; /* the day-of-week field starts with '*' */
};

/*
 * Parse "minute hour day-of-month month day-of-week", fields separated by
 * blanks. Each field is a list (a,b,c) of '*', a number or a range a-b,
 * each optionally followed by a step "/n" (every n-th value of the range;
 * "a/n" runs from a to the field's maximum). Months take
 * jan..dec and days sun..sat, any case; day 7 is Sunday too, and a range
 * ending in "sun" ("fri-sun") runs to 7. Also the macros @hourly, @daily,
 * @midnight, @weekly, @monthly, @yearly, @annually.
 *   text: the expression, at most CRON_TEXT_MAX bytes.
 *   out: the parsed expression, untouched on failure.
 *   err, err_len: on failure a message naming the field and the text at
 *     fault, e.g. "cron field 2 (hour): 24 is out of range 0..23" (may be
 *     NULL/0).
 * Returns 0 or -EINVAL.
 */
int cron_parse(const char *text, struct cron_expr *out, char *err, size_t err_len);

/*
 * The next local time strictly after after_ms (a whole minute, seconds 0)
 * that matches e. Standard day rule: when both day fields are restricted
 * (neither starts with '*'), a day matching either one matches; otherwise
 * both must match. DST as described above.
 *   out_ms: the instant, untouched on failure.
 * Returns 0; -ENOENT when nothing matches within CRON_SEARCH_YEARS years
 * (e.g. "0 0 31 2 *"); -EINVAL for NULL; -ERANGE for after_ms outside
 * TIMEUTIL_MIN_MS..TIMEUTIL_MAX_MS.
 */
int cron_next(const struct cron_expr *e, int64_t after_ms, int64_t *out_ms);

#endif
