/*
 * Unit tests for cron.c: the parser (good expressions to their bit sets,
 * bad ones to their exact messages), cron_next over a table of cases
 * (steps, lists, names, the day-of-month/day-of-week OR rule, leap days,
 * impossible dates, DST days in Amsterdam), a brute-force minute-scanning
 * cross-check in UTC, and whole simulated years of every-five-minutes
 * fires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "timeutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL_MS INT64_C(-777)
#define MIN_MS (60 * 1000LL)
#define DAY_MS (24 * 3600 * 1000LL)

/* Sanitizers slow everything down; the plain build must be fast. */
#if defined(__SANITIZE_ADDRESS__)
#define SLOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SLOW_BUILD 1
#endif
#endif
#ifndef SLOW_BUILD
#define SLOW_BUILD 0
#endif

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static void set_tz(const char *zone)
{
	assert_int_equal(setenv("TZ", zone, 1), 0);
	tzset();
}

/* "2026-03-29T01:00:00Z" or with "+02:00"; optional ".mmm". */
static int64_t iso_ms(const char *s)
{
	struct tm tm = {0};
	int ms = 0, n = 0, oh = 0, om = 0;
	char sign = 0;
	if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &n) != 6)
		fail_msg("bad test time %s", s);
	const char *p = s + n;
	if (*p == '.') {
		ms = atoi(p + 1);
		p += 4;
	}
	if (*p == '+' || *p == '-') {
		sign = *p;
		if (sscanf(p + 1, "%d:%d", &oh, &om) != 2)
			fail_msg("bad offset in %s", s);
	} else if (strcmp(p, "Z") != 0)
		fail_msg("bad zone in %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	int64_t off = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
	return ((int64_t)timegm(&tm) - off) * 1000 + ms;
}

static const char *show(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm);
	return buf;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct cron_expr parse_ok(const char *text)
{
	struct cron_expr e;
	char err[160] = "";
	if (cron_parse(text, &e, err, sizeof(err)) != 0)
		fail_msg("cron_parse(\"%s\"): %s", text, err);
	return e;
}

static uint64_t bits(int lo, int hi, int step)
{
	uint64_t b = 0;
	for (int v = lo; v <= hi; v += step)
		b |= 1ull << v;
	return b;
}

/* ---------------------------------------------------------------------------
 * Parsing
 * ------------------------------------------------------------------------- */

static void test_parse_good(void **state)
{
	(void)state;
	const uint64_t all_min = bits(0, 59, 1), all_hour = bits(0, 23, 1);
	const uint64_t all_day = bits(1, 31, 1), all_mon = bits(1, 12, 1), all_dow = bits(0, 6, 1);
	const struct {
		const char *text;
		uint64_t minutes, hours, days, months, weekdays;
		bool days_any, weekdays_any;
	} rows[] = {
		{"* * * * *", all_min, all_hour, all_day, all_mon, all_dow, true, true},
		{"*/15 * * * *", bits(0, 59, 15), all_hour, all_day, all_mon, all_dow, true, true},
		{"5-55/10 * * * *", bits(5, 55, 10), all_hour, all_day, all_mon, all_dow, true,
		 true},
		{"0/20 * * * *", bits(0, 59, 20), all_hour, all_day, all_mon, all_dow, true, true},
		{"10/20 * * * *", bits(10, 59, 20), all_hour, all_day, all_mon, all_dow, true,
		 true},
		{"1,2,3,58 * * * *", bits(1, 3, 1) | 1ull << 58, all_hour, all_day, all_mon,
		 all_dow, true, true},
		{"0-4,50-59/3 * * * *", bits(0, 4, 1) | bits(50, 59, 3), all_hour, all_day, all_mon,
		 all_dow, true, true},
		{"*/60 * * * *", 1, all_hour, all_day, all_mon, all_dow, true, true},
		{"0 9-17 * * mon-fri", 1, bits(9, 17, 1), all_day, all_mon, bits(1, 5, 1), true,
		 false},
		{"0 */6 * * *", 1, bits(0, 23, 6), all_day, all_mon, all_dow, true, true},
		{"0 0 1,15 * *", 1, 1, 1u << 1 | 1u << 15, all_mon, all_dow, false, true},
		{"0 0 */2 * *", 1, 1, bits(1, 31, 2), all_mon, all_dow, true, true},
		{"0 0 * jan,jul *", 1, 1, all_day, 1u << 1 | 1u << 7, all_dow, true, true},
		{"0 0 * JAN-Mar *", 1, 1, all_day, bits(1, 3, 1), all_dow, true, true},
		{"0 0 * 1-12/3 *", 1, 1, all_day, 1u << 1 | 1u << 4 | 1u << 7 | 1u << 10, all_dow,
		 true, true},
		{"0 0 * * 7", 1, 1, all_day, all_mon, 1, true, false},
		{"0 0 * * 0", 1, 1, all_day, all_mon, 1, true, false},
		{"0 0 * * 5-7", 1, 1, all_day, all_mon, 1u << 5 | 1u << 6 | 1, true, false},
		{"0 0 * * fri-sun", 1, 1, all_day, all_mon, 1u << 5 | 1u << 6 | 1, true, false},
		{"0 0 * * sun-sat", 1, 1, all_day, all_mon, all_dow, true, false},
		{"0 0 * * SUN,Sat", 1, 1, all_day, all_mon, 1u << 6 | 1, true, false},
		{"0 0 * * 0-7/2", 1, 1, all_day, all_mon, 1u << 0 | 1u << 2 | 1u << 4 | 1u << 6,
		 true, false},
		{"0 0 13 * 5", 1, 1, 1u << 13, all_mon, 1u << 5, false, false},
		{"0 0 */13 * 5", 1, 1, 1u << 1 | 1u << 14 | 1u << 27, all_mon, 1u << 5, true,
		 false},
		{"59 23 31 12 6", 1ull << 59, 1u << 23, 1u << 31, 1u << 12, 1u << 6, false, false},
		{"  0\t 0  *  *  *  ", 1, 1, all_day, all_mon, all_dow, true, true},
		{"0005 * * * *", 1u << 5, all_hour, all_day, all_mon, all_dow, true, true},
		{"@hourly", 1, all_hour, all_day, all_mon, all_dow, true, true},
		{"@daily", 1, 1, all_day, all_mon, all_dow, true, true},
		{"@midnight", 1, 1, all_day, all_mon, all_dow, true, true},
		{"@weekly", 1, 1, all_day, all_mon, 1, true, false},
		{"@monthly", 1, 1, 1u << 1, all_mon, all_dow, false, true},
		{"@yearly", 1, 1, 1u << 1, 1u << 1, all_dow, false, true},
		{"@annually", 1, 1, 1u << 1, 1u << 1, all_dow, false, true},
		{" @Daily ", 1, 1, all_day, all_mon, all_dow, true, true},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		struct cron_expr e = parse_ok(rows[i].text);
		if (e.minutes != rows[i].minutes || e.hours != rows[i].hours ||
		    e.days != rows[i].days || e.months != rows[i].months ||
		    e.weekdays != rows[i].weekdays || e.days_any != rows[i].days_any ||
		    e.weekdays_any != rows[i].weekdays_any)
			fail_msg("\"%s\": minutes %#llx hours %#x days %#x months %#x weekdays %#x "
				 "any %d/%d",
				 rows[i].text, (unsigned long long)e.minutes, e.hours, e.days,
				 e.months, e.weekdays, e.days_any, e.weekdays_any);
	}
}

static void test_parse_bad(void **state)
{
	(void)state;
	static const struct {
		const char *text, *err;
	} rows[] = {
		{"0 24 * * *", "cron field 2 (hour): 24 is out of range 0..23"},
		{"60 * * * *", "cron field 1 (minute): 60 is out of range 0..59"},
		{"0 0 0 * *", "cron field 3 (day-of-month): 0 is out of range 1..31"},
		{"0 0 32 * *", "cron field 3 (day-of-month): 32 is out of range 1..31"},
		{"0 0 * 13 *", "cron field 4 (month): 13 is out of range 1..12"},
		{"0 0 * 0 *", "cron field 4 (month): 0 is out of range 1..12"},
		{"0 0 * * 8", "cron field 5 (day-of-week): 8 is out of range 0..7"},
		{"0 0-24 * * *", "cron field 2 (hour): 24 is out of range 0..23"},
		{"0 0 * foo *", "cron field 4 (month): \"foo\" is not a number or name"},
		{"0 0 * * funday",
		 "cron field 5 (day-of-week): \"funday\" is not a number or name"},
		{"0 0 * * jan", "cron field 5 (day-of-week): \"jan\" is not a number or name"},
		{"x * * * *", "cron field 1 (minute): \"x\" is not a number"},
		{"mon * * * *", "cron field 1 (minute): \"mon\" is not a number"},
		{"5x * * * *", "cron field 1 (minute): \"5x\" is not a number"},
		{"00005 * * * *", "cron field 1 (minute): \"00005\" is not a number"},
		{"30-10 * * * *", "cron field 1 (minute): range \"30-10\" is backwards"},
		{"0 0 * * sat-mon", "cron field 5 (day-of-week): range \"sat-mon\" is backwards"},
		{"*/0 * * * *", "cron field 1 (minute): step 0 is out of range 1..60"},
		{"0 */25 * * *", "cron field 2 (hour): step 25 is out of range 1..24"},
		{"*/x * * * *", "cron field 1 (minute): step \"x\" is not a number"},
		{"*/ * * * *", "cron field 1 (minute): step \"\" is not a number"},
		{"1,,2 * * * *", "cron field 1 (minute): empty list item in \"1,,2\""},
		{"1, * * * *", "cron field 1 (minute): empty list item in \"1,\""},
		{",1 * * * *", "cron field 1 (minute): empty list item in \",1\""},
		{"0 0 * * mon-", "cron field 5 (day-of-week): missing value in \"mon-\""},
		{"-5 * * * *", "cron field 1 (minute): missing value in \"-5\""},
		{"1-2-3 * * * *", "cron field 1 (minute): unexpected \"-\" in \"1-2-3\""},
		{"*/5/2 * * * *", "cron field 1 (minute): unexpected \"/\" in \"*/5/2\""},
		{"** * * * *", "cron field 1 (minute): unexpected \"*\" in \"**\""},
		{"*-5 * * * *", "cron field 1 (minute): unexpected \"-\" in \"*-5\""},
		{"0 0 ? * *", "cron field 3 (day-of-month): missing value in \"?\""},
		{"* * * *",
		 "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 4"},
		{"* * * * * *",
		 "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 6"},
		{"", "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
		{"   ",
		 "cron: expected 5 fields (minute hour day-of-month month day-of-week), got 0"},
		{"@reboot", "cron: unknown macro \"@reboot\""},
		{"@", "cron: unknown macro \"@\""},
		{"@daily 5", "cron: unexpected text after \"@daily\""},
		{"@averyveryverylongmacroname",
		 "cron: unknown macro \"@averyveryverylongmacroname\""},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		struct cron_expr e, before;
		memset(&e, 0x5a, sizeof(e));
		before = e;
		char err[200] = "";
		int rc = cron_parse(rows[i].text, &e, err, sizeof(err));
		if (rc != -EINVAL || strcmp(err, rows[i].err) != 0 ||
		    memcmp(&e, &before, sizeof(e)))
			fail_msg("\"%s\": rc %d err '%s', want '%s'", rows[i].text, rc, err,
				 rows[i].err);
	}
}

static void test_parse_edges(void **state)
{
	(void)state;
	struct cron_expr e;
	char err[100] = "";
	assert_int_equal(cron_parse(NULL, &e, err, sizeof(err)), -EINVAL);
	assert_int_equal(cron_parse("* * * * *", NULL, err, sizeof(err)), -EINVAL);
	assert_int_equal(cron_parse("bad", &e, NULL, 0), -EINVAL);

	char lng[CRON_TEXT_MAX + 2];
	memset(lng, ' ', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	memcpy(lng, "* * * * *", 9);
	assert_int_equal(cron_parse(lng, &e, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cron: expression longer than 256 bytes");
	lng[CRON_TEXT_MAX] = '\0';
	assert_int_equal(cron_parse(lng, &e, err, sizeof(err)), 0);

	/* a long token is cut in the message, not overrun */
	char tok[CRON_TEXT_MAX];
	memset(tok, 'a', 200);
	strcpy(tok + 200, " * * * *");
	assert_int_equal(cron_parse(tok, &e, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "cron field 1 (minute): \"aaaaaaaaaaaaaaaa...\" is not a number");

	/* every macro equals its expansion */
	static const char *const pairs[][2] = {
		{"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},  {"@weekly", "0 0 * * 0"},
		{"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
	};
	for (size_t i = 0; i < ARRAY_LEN(pairs); i++) {
		/* field by field: padding bytes hold nothing to compare */
		struct cron_expr a = parse_ok(pairs[i][0]), b = parse_ok(pairs[i][1]);
		assert_true(a.minutes == b.minutes && a.hours == b.hours && a.days == b.days &&
			    a.months == b.months && a.weekdays == b.weekdays &&
			    a.days_any == b.days_any && a.weekdays_any == b.weekdays_any);
	}
}

/* ---------------------------------------------------------------------------
 * cron_next
 * ------------------------------------------------------------------------- */

struct next_row {
	const char *zone, *expr, *after, *want; /* want NULL: -ENOENT */
};

static void run_next_rows(const struct next_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		set_tz(rows[i].zone);
		struct cron_expr e = parse_ok(rows[i].expr);
		int64_t got = SENTINEL_MS;
		int rc = cron_next(&e, iso_ms(rows[i].after), &got);
		char a[64], b[64];
		if (!rows[i].want) {
			if (rc != -ENOENT || got != SENTINEL_MS)
				fail_msg("row %zu \"%s\" after %s: rc %d got %s, want -ENOENT", i,
					 rows[i].expr, rows[i].after, rc, show(got, a, sizeof(a)));
			continue;
		}
		int64_t want = iso_ms(rows[i].want);
		if (rc != 0 || got != want)
			fail_msg("row %zu %s \"%s\" after %s: rc %d got %s want %s", i,
				 rows[i].zone, rows[i].expr, rows[i].after, rc,
				 show(got, a, sizeof(a)), show(want, b, sizeof(b)));
	}
}

static void test_next_table(void **state)
{
	(void)state;
	static const struct next_row rows[] = {
		{"UTC", "*/15 * * * *", "2026-01-01T10:07:00Z", "2026-01-01T10:15:00Z"},
		{"UTC", "*/15 * * * *", "2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z"},
		{"UTC", "*/15 * * * *", "2026-01-01T10:14:59.999Z", "2026-01-01T10:15:00Z"},
		{"UTC", "*/15 * * * *", "2026-01-01T10:15:00.001Z", "2026-01-01T10:30:00Z"},
		{"UTC", "*/15 * * * *", "2026-01-01T23:50:00Z", "2026-01-02T00:00:00Z"},
		{"UTC", "* * * * *", "2026-01-01T10:15:30Z", "2026-01-01T10:16:00Z"},
		{"UTC", "5-55/10 * * * *", "2026-01-01T10:56:00Z", "2026-01-01T11:05:00Z"},
		{"UTC", "5-55/10 * * * *", "2026-01-01T10:05:00Z", "2026-01-01T10:15:00Z"},
		{"UTC", "1,2,58 * * * *", "2026-01-01T10:02:00Z", "2026-01-01T10:58:00Z"},
		/* 2026-01-02 is a Friday */
		{"UTC", "0 9-17 * * mon-fri", "2026-01-02T17:30:00Z", "2026-01-05T09:00:00Z"},
		{"UTC", "0 9-17 * * mon-fri", "2026-01-02T08:59:59Z", "2026-01-02T09:00:00Z"},
		{"UTC", "0 9-17 * * mon-fri", "2026-01-02T16:00:00Z", "2026-01-02T17:00:00Z"},
		{"UTC", "0 0 1,15 * *", "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"},
		{"UTC", "30 6 * jan,jul *", "2026-02-01T00:00:00Z", "2026-07-01T06:30:00Z"},
		{"UTC", "30 6 * jan,jul *", "2026-07-31T06:30:00Z", "2027-01-01T06:30:00Z"},
		{"UTC", "0 0 * * sun", "2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"},
		{"UTC", "0 0 * * 7", "2026-01-02T00:00:00Z", "2026-01-04T00:00:00Z"},
		{"UTC", "@weekly", "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"},
		{"UTC", "@monthly", "2026-01-31T12:00:00Z", "2026-02-01T00:00:00Z"},
		{"UTC", "@yearly", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"UTC", "@hourly", "2026-12-31T23:00:00Z", "2027-01-01T00:00:00Z"},
		/* both day fields restricted: either matches (Friday or the 13th) */
		{"UTC", "0 0 13 * 5", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z"},
		{"UTC", "0 0 13 * 5", "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z"},
		{"UTC", "0 0 13 * 5", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"},
		{"UTC", "0 0 13 * *", "2026-02-01T00:00:00Z", "2026-02-13T00:00:00Z"},
		{"UTC", "0 0 * * 5", "2026-02-01T00:00:00Z", "2026-02-06T00:00:00Z"},
		/* a day field starting with '*' is unrestricted: both must match */
		{"UTC", "0 0 */13 * 5", "2026-01-01T00:00:00Z", "2026-02-27T00:00:00Z"},
		{"UTC", "0 0 */13 * 5", "2026-08-15T00:00:00Z", "2026-11-27T00:00:00Z"},
		{"UTC", "0 0 1 * */2", "2026-01-02T00:00:00Z", "2026-02-01T00:00:00Z"},
		/* leap days and impossible dates */
		{"UTC", "0 12 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T12:00:00Z"},
		{"UTC", "0 12 29 2 *", "2028-02-29T12:00:00Z", "2032-02-29T12:00:00Z"},
		{"UTC", "0 0 31 2 *", "2026-01-01T00:00:00Z", NULL},
		{"UTC", "0 0 30 2 *", "2026-01-01T00:00:00Z", NULL},
		{"UTC", "0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", NULL},
		{"UTC", "0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"UTC", "59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
		/* 2100 is no leap year: the next 29 February is 8 years away */
		{"UTC", "0 0 29 2 *", "2097-01-01T00:00:00Z", NULL},
		{"UTC", "0 0 29 2 *", "2095-01-01T00:00:00Z", "2096-02-29T00:00:00Z"},
		{"UTC", "0 0 1 1 *", "1969-06-01T00:00:00Z", "1970-01-01T00:00:00Z"},
		/* local zones */
		{"America/New_York", "0 9 * * *", "2026-03-07T15:00:00Z",
		 "2026-03-08T09:00:00-04:00"},
		{"Asia/Kathmandu", "0 0 * * *", "2026-05-01T00:00:00Z",
		 "2026-05-02T00:00:00+05:45"},
		{"Pacific/Auckland", "0 8 * * sat", "2026-05-01T19:00:00Z",
		 "2026-05-02T08:00:00+12:00"},
		/* Amsterdam spring: 02:00 CET -> 03:00 CEST; 02:30 fires at 03:00, once */
		{"Europe/Amsterdam", "30 2 * * *", "2026-03-28T23:00:00Z",
		 "2026-03-29T03:00:00+02:00"},
		{"Europe/Amsterdam", "30 2 * * *", "2026-03-29T03:00:00+02:00",
		 "2026-03-30T02:30:00+02:00"},
		{"Europe/Amsterdam", "*/15 * * * *", "2026-03-29T01:45:00+01:00",
		 "2026-03-29T03:00:00+02:00"},
		{"Europe/Amsterdam", "*/15 * * * *", "2026-03-29T03:00:00+02:00",
		 "2026-03-29T03:15:00+02:00"},
		{"Europe/Amsterdam", "0 2 29 3 *", "2026-03-01T00:00:00Z",
		 "2026-03-29T03:00:00+02:00"},
		/* Amsterdam autumn: 03:00 CEST -> 02:00 CET; 02:30 fires once, the first */
		{"Europe/Amsterdam", "30 2 * * *", "2026-10-24T22:00:00Z",
		 "2026-10-25T02:30:00+02:00"},
		{"Europe/Amsterdam", "30 2 * * *", "2026-10-25T02:30:00+02:00",
		 "2026-10-26T02:30:00+01:00"},
		{"Europe/Amsterdam", "30 2 * * *", "2026-10-25T02:10:00+01:00",
		 "2026-10-26T02:30:00+01:00"},
		/* the repeated hour's second pass fires nothing, even for "*" */
		{"Europe/Amsterdam", "*/15 * * * *", "2026-10-25T02:45:00+02:00",
		 "2026-10-25T03:00:00+01:00"},
		{"Europe/Amsterdam", "* * * * *", "2026-10-25T02:20:30+01:00",
		 "2026-10-25T03:00:00+01:00"},
		{"Europe/Amsterdam", "0 3 * * *", "2026-10-24T22:00:00Z",
		 "2026-10-25T03:00:00+01:00"},
		/* New York and Sydney */
		{"America/New_York", "30 2 * * *", "2026-03-08T05:00:00Z",
		 "2026-03-08T03:00:00-04:00"},
		{"America/New_York", "30 1 * * *", "2026-11-01T04:00:00Z",
		 "2026-11-01T01:30:00-04:00"},
		{"America/New_York", "30 1 * * *", "2026-11-01T01:30:00-04:00",
		 "2026-11-02T01:30:00-05:00"},
		{"Australia/Sydney", "30 2 * * *", "2026-10-03T14:00:00Z",
		 "2026-10-04T03:00:00+11:00"},
		{"Australia/Sydney", "30 2 * * *", "2026-04-04T13:00:00Z",
		 "2026-04-05T02:30:00+11:00"},
		{"Australia/Sydney", "30 2 * * *", "2026-04-05T02:30:00+11:00",
		 "2026-04-06T02:30:00+10:00"},
		/* Havana skips midnight: a midnight job runs at 01:00 */
		{"America/Havana", "0 0 * * *", "2026-03-07T12:00:00-05:00",
		 "2026-03-08T01:00:00-04:00"},
	};
	run_next_rows(rows, ARRAY_LEN(rows));
}

static void test_next_errors(void **state)
{
	(void)state;
	set_tz("UTC");
	struct cron_expr e = parse_ok("* * * * *");
	int64_t out = SENTINEL_MS;
	assert_int_equal(cron_next(NULL, 0, &out), -EINVAL);
	assert_int_equal(cron_next(&e, 0, NULL), -EINVAL);
	assert_int_equal(cron_next(&e, INT64_MAX, &out), -ERANGE);
	assert_int_equal(cron_next(&e, INT64_MIN, &out), -ERANGE);
	assert_int_equal(cron_next(&e, TIMEUTIL_MAX_MS + 1, &out), -ERANGE);
	assert_int_equal(out, SENTINEL_MS);
	assert_int_equal(cron_next(&e, TIMEUTIL_MAX_MS, &out), 0);
	assert_int_equal(out, TIMEUTIL_MAX_MS + MIN_MS);
	assert_int_equal(cron_next(&e, TIMEUTIL_MIN_MS, &out), 0);
	assert_int_equal(out, TIMEUTIL_MIN_MS + MIN_MS);
	/* an all-zero expression (not from cron_parse) never matches */
	struct cron_expr zero = {0};
	out = SENTINEL_MS;
	assert_int_equal(cron_next(&zero, 0, &out), -ENOENT);
	assert_int_equal(out, SENTINEL_MS);
}

/* ---------------------------------------------------------------------------
 * Cross-check against minute-by-minute scanning (UTC)
 * ------------------------------------------------------------------------- */

static bool brute_match(const struct cron_expr *e, time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	bool dom = e->days >> tm.tm_mday & 1, dow = e->weekdays >> tm.tm_wday & 1;
	bool day = (e->days_any || e->weekdays_any) ? dom && dow : dom || dow;
	return day && (e->minutes >> tm.tm_min & 1) && (e->hours >> tm.tm_hour & 1) &&
	       (e->months >> (tm.tm_mon + 1) & 1);
}

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

/* A random field: '*', a value, a range, a list or a step. */
static void random_field(char *buf, size_t len, int lo, int hi)
{
	int a = lo + (int)rnd((unsigned)(hi - lo + 1)), b = lo + (int)rnd((unsigned)(hi - lo + 1));
	if (a > b) {
		int t = a;
		a = b;
		b = t;
	}
	switch (rnd(6)) {
	case 0:
		snprintf(buf, len, "*");
		break;
	case 1:
		snprintf(buf, len, "%d", a);
		break;
	case 2:
		snprintf(buf, len, "%d-%d", a, b);
		break;
	case 3:
		snprintf(buf, len, "%d,%d", a, b);
		break;
	case 4:
		snprintf(buf, len, "*/%u", 1 + rnd(7));
		break;
	default:
		snprintf(buf, len, "%d-%d/%u", a, b, 1 + rnd(4));
		break;
	}
}

static void test_next_brute_force(void **state)
{
	(void)state;
	set_tz("UTC");
	const int64_t window_min = 10 * 24 * 60;
	for (int i = 0; i < 300; i++) {
		char f[5][24], text[128];
		static const int lo[5] = {0, 0, 1, 1, 0}, hi[5] = {59, 23, 31, 12, 7};
		for (int k = 0; k < 5; k++)
			random_field(f[k], sizeof(f[k]), lo[k], hi[k]);
		if (rnd(2))
			snprintf(f[3], sizeof(f[3]), "*"); /* most cases should fire soon */
		snprintf(text, sizeof(text), "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
		struct cron_expr e = parse_ok(text);
		int64_t after = iso_ms("2024-01-01T00:00:00Z") + (int64_t)rnd(6 * 366) * DAY_MS +
				(int64_t)rnd(86400000u);
		int64_t want = -1;
		time_t t0 = (time_t)(after / 1000 / 60 * 60);
		for (int64_t m = 1; m <= window_min; m++) {
			if (brute_match(&e, t0 + (time_t)(m * 60))) {
				want = ((int64_t)t0 + m * 60) * 1000;
				break;
			}
		}
		int64_t got = SENTINEL_MS;
		int rc = cron_next(&e, after, &got);
		bool ok = want >= 0 ? rc == 0 && got == want
				    : (rc == -ENOENT ||
				       (rc == 0 && got > after + window_min * MIN_MS &&
					brute_match(&e, (time_t)(got / 1000))));
		if (!ok) {
			char a[64], b[64], c[64];
			fail_msg("\"%s\" after %s: rc %d got %s want %s", text, show(after, a, 64),
				 rc, show(got, b, 64),
				 want >= 0 ? show(want, c, 64) : "none in window");
		}
	}
}

/* ---------------------------------------------------------------------------
 * Whole years
 * ------------------------------------------------------------------------- */

/* Counts the fires of expr from start (inclusive) to end (exclusive). */
static long count_fires(const char *expr, const char *start, const char *end, double *secs)
{
	struct cron_expr e = parse_ok(expr);
	int64_t t = iso_ms(start) - 1, stop = iso_ms(end);
	long n = 0;
	int64_t prev_wall = INT64_MIN;
	double t0 = now_s();
	for (;;) {
		int64_t next;
		assert_int_equal(cron_next(&e, t, &next), 0);
		if (next <= t)
			fail_msg("cron_next went backwards at %lld", (long long)t);
		if (next >= stop)
			break;
		/* wall-clock time (libc's view) only ever moves forward: no repeats */
		time_t s = (time_t)(next / 1000);
		struct tm tm;
		localtime_r(&s, &tm);
		int64_t wall = (int64_t)tm.tm_yday * 86400 + tm.tm_hour * 3600 + tm.tm_min * 60;
		if (wall <= prev_wall || tm.tm_min % 5 != 0 || tm.tm_sec != 0)
			fail_msg("fire %ld at wall %02d:%02d:%02d day %d", n, tm.tm_hour, tm.tm_min,
				 tm.tm_sec, tm.tm_yday);
		prev_wall = wall;
		t = next;
		n++;
		if (n > 200000)
			fail_msg("runaway");
	}
	*secs = now_s() - t0;
	return n;
}

static void test_year_of_fives(void **state)
{
	(void)state;
	double secs, limit = SLOW_BUILD || getenv("HEARTH_SLOW") ? 10.0 : 1.0;

	set_tz("UTC");
	long n = count_fires("*/5 * * * *", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", &secs);
	assert_int_equal(n, 105120);
	print_message("UTC year of */5: %ld fires in %.3f s\n", n, secs);
	if (secs > limit)
		fail_msg("a year of */5 took %.2f s (limit %.0f s)", secs, limit);

	set_tz("Asia/Tokyo");
	n = count_fires("*/5 * * * *", "2024-01-01T00:00:00+09:00", "2025-01-01T00:00:00+09:00",
			&secs);
	assert_int_equal(n, 105408); /* leap year */

	/*
	 * Amsterdam: 2026-03-29 02:00..02:55 collapse into the 03:00 fire (-12);
	 * the repeated hour on 2026-10-25 fires once (+0).
	 */
	set_tz("Europe/Amsterdam");
	n = count_fires("*/5 * * * *", "2026-01-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00",
			&secs);
	assert_int_equal(n, 105120 - 12);
	print_message("Amsterdam year of */5: %ld fires in %.3f s\n", n, secs);
	if (secs > limit)
		fail_msg("a year of */5 took %.2f s (limit %.0f s)", secs, limit);
}

/* Searches that skip by fields, not minutes, stay fast even when they fail. */
static void test_far_searches_fast(void **state)
{
	(void)state;
	set_tz("Europe/Amsterdam");
	struct cron_expr never = parse_ok("0 0 31 2 *"), leap = parse_ok("0 12 29 2 *");
	double t0 = now_s();
	for (int i = 0; i < 1000; i++) {
		int64_t out;
		assert_int_equal(
			cron_next(&never, iso_ms("2026-01-01T00:00:00Z") + i * DAY_MS, &out),
			-ENOENT);
		assert_int_equal(cron_next(&leap, iso_ms("2028-03-01T00:00:00Z"), &out), 0);
		assert_int_equal(out, iso_ms("2032-02-29T12:00:00+01:00"));
	}
	double secs = now_s() - t0;
	print_message("2000 multi-year searches in %.3f s\n", secs);
	if (secs > (SLOW_BUILD || getenv("HEARTH_SLOW") ? 10.0 : 1.0))
		fail_msg("2000 multi-year searches took %.2f s", secs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),    cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_edges),   cmocka_unit_test(test_next_table),
		cmocka_unit_test(test_next_errors),   cmocka_unit_test(test_next_brute_force),
		cmocka_unit_test(test_year_of_fives), cmocka_unit_test(test_far_searches_fast),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
