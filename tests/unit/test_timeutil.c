/*
 * Unit tests for timeutil.c: durations, times of day and weekday names,
 * local calendar functions in zones with and without DST (including zones
 * whose midnight is skipped or repeated), next_time_of_day across DST
 * transitions in Europe, North America and Australia, and time windows
 * across midnight. Expected instants are written in UTC or with explicit
 * offsets and converted with timegm, independently of the code under test.
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

#include "timeutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL_MS INT64_C(-777)
#define H (3600 * 1000LL)
#define M (60 * 1000LL)
#define S 1000LL

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static void set_tz(const char *zone)
{
	assert_int_equal(setenv("TZ", zone, 1), 0);
	tzset();
}

/* "2026-03-29T01:00:00Z", "...T03:00:00+02:00", optional ".mmm". */
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
	int64_t t = (int64_t)timegm(&tm);
	int64_t off = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
	return (t - off) * 1000 + ms;
}

static const char *show(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000 - (ms % 1000 < 0));
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm);
	return buf;
}

/* Independent of timeutil: wall-clock seconds of day via localtime_r. */
static int libc_sod(int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	return tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec;
}

static int libc_mday(int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	return tm.tm_mday;
}

/* ---------------------------------------------------------------------------
 * Durations
 * ------------------------------------------------------------------------- */

static void test_duration_good(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int64_t ms;
	} rows[] = {
		{"90s", 90 * S},
		{"30m", 30 * M},
		{"2h", 2 * H},
		{"1h30m", 90 * M},
		{"1d", 24 * H},
		{"500ms", 500},
		{"1h 30m", 90 * M},
		{"1h  30m", 90 * M},
		{"1h\t30m", 90 * M},
		{"-30m", -30 * M},
		{"+5s", 5 * S},
		{"00:05:00", 5 * M},
		{"01:30:15", H + 30 * M + 15 * S},
		{"25:00:00", 25 * H},
		{"-00:00:01", -S},
		{"45", 45 * S},
		{"-45", -45 * S},
		{"0", 0},
		{"+0", 0},
		{"0s", 0},
		{"0ms", 0},
		{"1m30s", 90 * S},
		{"1d2h3m4s5ms", 24 * H + 2 * H + 3 * M + 4 * S + 5},
		{"1d 1ms", 24 * H + 1},
		{"  10m  ", 10 * M},
		{"007s", 7 * S},
		{"400d", 400 * 24 * H},
		{"-400d", -400 * 24 * H},
		{"9600:00:00", 400 * 24 * H},
		{"34560000", 400 * 24 * H},
		{"34560000000ms", 400 * 24 * H},
		{"399d23h59m59s999ms", 400 * 24 * H - 1},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		int64_t v = SENTINEL_MS;
		char err[128] = "";
		int rc = timeutil_duration_parse(rows[i].text, &v, err, sizeof(err));
		if (rc != 0 || v != rows[i].ms)
			fail_msg("\"%s\": rc %d (%s) value %lld, want %lld", rows[i].text, rc, err,
				 (long long)v, (long long)rows[i].ms);
	}
}

static void test_duration_bad(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int rc;
		const char *why; /* a part of the message */
	} rows[] = {
		{"", -EINVAL, "empty"},
		{"   ", -EINVAL, "empty"},
		{"-", -EINVAL, "empty"},
		{"+", -EINVAL, "empty"},
		{"abc", -EINVAL, "expected a number"},
		{"10x", -EINVAL, "unknown unit"},
		{"30min", -EINVAL, "unknown unit"},
		{"1H", -EINVAL, "unknown unit"},
		{"1.5h", -EINVAL, "unknown unit"},
		{"1h30", -EINVAL, "needs a unit"},
		{"45 30m", -EINVAL, "needs a unit"},
		{"5 m", -EINVAL, "needs a unit"},
		{"- 5m", -EINVAL, "expected a number"},
		{"--5s", -EINVAL, "expected a number"},
		{"30m1h", -EINVAL, "largest first"},
		{"1h1h", -EINVAL, "largest first"},
		{"1s1ms1s", -EINVAL, "largest first"},
		{"h", -EINVAL, "expected a number"},
		{"5s,", -EINVAL, "expected a number"},
		{"-0", -EINVAL, "negative zero"},
		{"-0s", -EINVAL, "negative zero"},
		{"-0h0m", -EINVAL, "negative zero"},
		{"-00:00:00", -EINVAL, "negative zero"},
		{"00:60:00", -EINVAL, "00..59"},
		{"00:00:60", -EINVAL, "00..59"},
		{"00:5:00", -EINVAL, "HH:MM:SS"},
		{"00:05", -EINVAL, "HH:MM:SS"},
		{"1:2:3:4", -EINVAL, "HH:MM:SS"},
		{":05:00", -EINVAL, "HH:MM:SS"},
		{"00:05:00s", -EINVAL, "HH:MM:SS"},
		{"401d", -ERANGE, "400 days"},
		{"400d1ms", -ERANGE, "400 days"},
		{"34560001", -ERANGE, "400 days"},
		{"9600:00:01", -ERANGE, "400 days"},
		{"-401d", -ERANGE, "400 days"},
		{"99999999999999999999s", -ERANGE, "400 days"},
		{"9223372036854775807ms", -ERANGE, "400 days"},
		{"0000000000000000000001s", -ERANGE, "400 days"},
		{"1d\n", -EINVAL, "expected a number"},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		int64_t v = SENTINEL_MS;
		char err[160] = "", quoted[80];
		int rc = timeutil_duration_parse(rows[i].text, &v, err, sizeof(err));
		snprintf(quoted, sizeof(quoted), "\"%s\"", rows[i].text);
		if (rc != rows[i].rc || v != SENTINEL_MS || !strstr(err, quoted) ||
		    !strstr(err, rows[i].why))
			fail_msg("\"%s\": rc %d value %lld err '%s'; want rc %d, '%s'",
				 rows[i].text, rc, (long long)v, err, rows[i].rc, rows[i].why);
	}
}

static void test_duration_edges(void **state)
{
	(void)state;
	int64_t v = SENTINEL_MS;
	char err[64] = "";
	assert_int_equal(timeutil_duration_parse(NULL, &v, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
	/* no error buffer is fine */
	assert_int_equal(timeutil_duration_parse("x", &v, NULL, 0), -EINVAL);
	assert_int_equal(v, SENTINEL_MS);
	/* a tiny error buffer is cut, not overrun */
	char tiny[8];
	memset(tiny, 'z', sizeof(tiny));
	assert_int_equal(timeutil_duration_parse("bogus", &v, tiny, 4), -EINVAL);
	assert_int_equal(strlen(tiny), 3);
	assert_int_equal(tiny[4], 'z');
	/* too long: refused without reading past the bound */
	char lng[TIMEUTIL_TEXT_MAX + 10];
	memset(lng, ' ', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	lng[0] = '1';
	lng[1] = 's';
	assert_int_equal(timeutil_duration_parse(lng, &v, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(v, SENTINEL_MS);
	/* exactly at the bound is read */
	lng[TIMEUTIL_TEXT_MAX] = '\0';
	assert_int_equal(timeutil_duration_parse(lng, &v, err, sizeof(err)), 0);
	assert_int_equal(v, S);
}

/* ---------------------------------------------------------------------------
 * Times of day and weekdays
 * ------------------------------------------------------------------------- */

static void test_time_of_day(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		int seconds; /* -1: refused */
	} rows[] = {
		{"00:00", 0},	     {"23:59:59", 86399},
		{"7:30", 27000},     {"07:30", 27000},
		{"07:30:15", 27015}, {"12:00", 43200},
		{"23:59", 86340},    {"0:00:00", 0},
		{"24:00", -1},	     {"12:60", -1},
		{"12:00:60", -1},    {"1230", -1},
		{"12:3", -1},	     {"", -1},
		{"12:00:", -1},	     {"-1:00", -1},
		{" 12:00", -1},	     {"12:00 ", -1},
		{"123:00", -1},	     {"aa:bb", -1},
		{"12:00:00:00", -1}, {"12:000", -1},
		{"12:00:5", -1},     {":30", -1},
		{"12h", -1},	     {"12:00pm", -1},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		int v = -777;
		char err[128] = "";
		int rc = timeutil_time_of_day_parse(rows[i].text, &v, err, sizeof(err));
		if (rows[i].seconds >= 0) {
			if (rc != 0 || v != rows[i].seconds)
				fail_msg("\"%s\": rc %d (%s) value %d, want %d", rows[i].text, rc,
					 err, v, rows[i].seconds);
		} else {
			char quoted[40];
			snprintf(quoted, sizeof(quoted), "\"%s\"", rows[i].text);
			if (rc != -EINVAL || v != -777 || !strstr(err, quoted))
				fail_msg("\"%s\": rc %d value %d err '%s', want refusal",
					 rows[i].text, rc, v, err);
		}
	}
	int v = -777;
	assert_int_equal(timeutil_time_of_day_parse(NULL, &v, NULL, 0), -EINVAL);
	assert_int_equal(v, -777);
}

static void test_weekday_parse(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		unsigned bit; /* 0: refused */
	} rows[] = {
		{"sun", TIMEUTIL_SUN},
		{"mon", TIMEUTIL_MON},
		{"tue", TIMEUTIL_TUE},
		{"wed", TIMEUTIL_WED},
		{"thu", TIMEUTIL_THU},
		{"fri", TIMEUTIL_FRI},
		{"sat", TIMEUTIL_SAT},
		{"sunday", TIMEUTIL_SUN},
		{"monday", TIMEUTIL_MON},
		{"tuesday", TIMEUTIL_TUE},
		{"wednesday", TIMEUTIL_WED},
		{"thursday", TIMEUTIL_THU},
		{"friday", TIMEUTIL_FRI},
		{"saturday", TIMEUTIL_SAT},
		{"MONDAY", TIMEUTIL_MON},
		{"Fri", TIMEUTIL_FRI},
		{"sAtUrDaY", TIMEUTIL_SAT},
		{"mo", 0},
		{"mond", 0},
		{"", 0},
		{"funday", 0},
		{"monday1", 0},
		{" mon", 0},
		{"mon ", 0},
		{"wednesdayy", 0},
		{"1", 0},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		unsigned bit = 0xdead;
		int rc = timeutil_weekday_parse(rows[i].text, &bit);
		if (rows[i].bit ? (rc != 0 || bit != rows[i].bit)
				: (rc != -EINVAL || bit != 0xdead))
			fail_msg("\"%s\": rc %d bit %#x", rows[i].text, rc, bit);
	}
	unsigned bit = 0xdead;
	assert_int_equal(timeutil_weekday_parse(NULL, &bit), -EINVAL);
	assert_int_equal(bit, 0xdead);
	assert_int_equal(TIMEUTIL_ALL_DAYS, TIMEUTIL_SUN | TIMEUTIL_MON | TIMEUTIL_TUE |
						    TIMEUTIL_WED | TIMEUTIL_THU | TIMEUTIL_FRI |
						    TIMEUTIL_SAT);
}

/* ---------------------------------------------------------------------------
 * Calendar
 * ------------------------------------------------------------------------- */

static void test_civil_roundtrip(void **state)
{
	(void)state;
	assert_int_equal(timeutil_days_from_civil(1970, 1, 1), 0);
	assert_int_equal(timeutil_days_from_civil(2000, 3, 1), 11017);
	assert_int_equal(timeutil_days_from_civil(1969, 12, 31), -1);
	assert_int_equal(timeutil_days_from_civil(1900, 1, 1), -25567);
	assert_int_equal(timeutil_weekday_of_days(0), 4);  /* Thursday */
	assert_int_equal(timeutil_weekday_of_days(-1), 3); /* Wednesday */
	assert_int_equal(timeutil_weekday_of_days(timeutil_days_from_civil(2026, 3, 29)), 0);
	assert_int_equal(timeutil_days_in_month(2024, 2), 29);
	assert_int_equal(timeutil_days_in_month(2026, 2), 28);
	assert_int_equal(timeutil_days_in_month(1900, 2), 28);
	assert_int_equal(timeutil_days_in_month(2000, 2), 29);
	assert_int_equal(timeutil_days_in_month(2026, 4), 30);
	assert_int_equal(timeutil_days_in_month(2026, 13), 0);
	/* every day from 1890 to 2110 against timegm and back */
	int64_t first = timeutil_days_from_civil(1890, 1, 1);
	for (int64_t d = first; d < first + 220 * 366; d++) {
		int64_t y;
		int m, day;
		timeutil_civil_from_days(d, &y, &m, &day);
		struct tm tm = {.tm_year = (int)y - 1900, .tm_mon = m - 1, .tm_mday = day};
		int64_t back = (int64_t)timegm(&tm) / 86400;
		if (back != d || timeutil_days_from_civil(y, m, day) != d ||
		    tm.tm_wday != timeutil_weekday_of_days(d))
			fail_msg("day %lld -> %lld-%d-%d -> %lld", (long long)d, (long long)y, m,
				 day, (long long)back);
	}
}

static void test_local_day(void **state)
{
	(void)state;
	static const struct {
		const char *zone, *t, *midnight;
		int sod, wday;
	} rows[] = {
		{"UTC", "2026-05-01T10:00:00Z", "2026-05-01T00:00:00Z", 36000, 5},
		{"UTC", "1969-12-31T23:59:59.999Z", "1969-12-31T00:00:00Z", 86399, 3},
		{"UTC", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z", 0, 4},
		{"Europe/Amsterdam", "2026-03-29T12:00:00+02:00", "2026-03-29T00:00:00+01:00",
		 43200, 0},
		{"Europe/Amsterdam", "2026-10-25T23:30:00+01:00", "2026-10-25T00:00:00+02:00",
		 84600, 0},
		/* the second pass of the repeated hour still belongs to the 25th */
		{"Europe/Amsterdam", "2026-10-25T02:30:00+01:00", "2026-10-25T00:00:00+02:00", 9000,
		 0},
		{"Europe/Amsterdam", "2026-03-28T23:59:59.999+01:00", "2026-03-28T00:00:00+01:00",
		 86399, 6},
		{"America/New_York", "2026-11-01T23:00:00-05:00", "2026-11-01T00:00:00-04:00",
		 82800, 0},
		{"Australia/Sydney", "2026-10-04T09:00:00+11:00", "2026-10-04T00:00:00+10:00",
		 32400, 0},
		{"Asia/Kolkata", "2026-05-01T00:10:00+05:30", "2026-05-01T00:00:00+05:30", 600, 5},
		/* Havana skips midnight on 2026-03-08: the day starts at 01:00 CDT */
		{"America/Havana", "2026-03-08T12:00:00-04:00", "2026-03-08T05:00:00Z", 43200, 0},
		/* and has it twice on 2026-11-01: the day starts at the first */
		{"America/Havana", "2026-11-01T12:00:00-05:00", "2026-11-01T00:00:00-04:00", 43200,
		 0},
		{"America/Santiago", "2026-09-06T10:00:00-03:00", "2026-09-06T04:00:00Z", 36000, 0},
		/* Apia skipped 2011-12-30 entirely */
		{"Pacific/Apia", "2011-12-31T12:00:00+14:00", "2011-12-31T00:00:00+14:00", 43200,
		 6},
		{"Pacific/Apia", "2011-12-29T12:00:00-10:00", "2011-12-29T00:00:00-10:00", 43200,
		 4},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		set_tz(rows[i].zone);
		int64_t t = iso_ms(rows[i].t), want = iso_ms(rows[i].midnight);
		int64_t got = timeutil_local_midnight(t);
		int sod = timeutil_local_seconds_of_day(t), wday = timeutil_local_weekday(t);
		if (got != want || sod != rows[i].sod || wday != rows[i].wday) {
			char a[64], b[64];
			fail_msg("%s %s: midnight %s (want %s) sod %d (want %d) wday %d (want %d)",
				 rows[i].zone, rows[i].t, show(got, a, sizeof(a)),
				 show(want, b, sizeof(b)), sod, rows[i].sod, wday, rows[i].wday);
		}
	}
	/* out of range inputs are clamped, not undefined */
	set_tz("UTC");
	assert_int_equal(timeutil_local_midnight(INT64_MIN), TIMEUTIL_MIN_MS);
	assert_int_equal(timeutil_local_midnight(INT64_MAX), TIMEUTIL_MAX_MS);
	assert_int_equal(timeutil_local_seconds_of_day(INT64_MAX), 0);
}

/* Every hour of a year in several zones: midnight <= t, same local date. */
static void test_local_midnight_year(void **state)
{
	(void)state;
	static const char *const zones[] = {"Europe/Amsterdam",	   "America/New_York",
					    "Australia/Sydney",	   "America/Havana",
					    "Australia/Lord_Howe", "Asia/Kathmandu"};
	for (size_t z = 0; z < ARRAY_LEN(zones); z++) {
		set_tz(zones[z]);
		int64_t start = iso_ms("2026-01-01T00:00:00Z");
		for (int64_t t = start; t < start + 366 * 24 * H; t += H + 7 * M) {
			int64_t mid = timeutil_local_midnight(t);
			int sod = timeutil_local_seconds_of_day(t);
			if (mid > t || t - mid > 25 * H || libc_mday(mid) != libc_mday(t) ||
			    libc_mday(mid - 1) == libc_mday(t) || sod != libc_sod(t)) {
				char a[64], b[64];
				fail_msg("%s: t %s midnight %s", zones[z], show(t, a, sizeof(a)),
					 show(mid, b, sizeof(b)));
			}
		}
	}
}

/* ---------------------------------------------------------------------------
 * next_time_of_day
 * ------------------------------------------------------------------------- */

struct next_row {
	const char *zone, *after;
	const char *tod;
	unsigned days;
	const char *want;
};

static void run_next_rows(const struct next_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		set_tz(rows[i].zone);
		int sod;
		assert_int_equal(timeutil_time_of_day_parse(rows[i].tod, &sod, NULL, 0), 0);
		int64_t got = SENTINEL_MS, want = iso_ms(rows[i].want);
		int rc = timeutil_next_time_of_day(iso_ms(rows[i].after), sod, rows[i].days, &got);
		if (rc != 0 || got != want) {
			char a[64], b[64];
			fail_msg("row %zu %s after %s at %s: rc %d got %s want %s", i, rows[i].zone,
				 rows[i].after, rows[i].tod, rc, show(got, a, sizeof(a)),
				 show(want, b, sizeof(b)));
		}
	}
}

static void test_next_time_of_day_plain(void **state)
{
	(void)state;
	static const struct next_row rows[] = {
		{"UTC", "2026-05-01T10:00:00Z", "12:00", TIMEUTIL_ALL_DAYS, "2026-05-01T12:00:00Z"},
		/* strictly after */
		{"UTC", "2026-05-01T12:00:00Z", "12:00", TIMEUTIL_ALL_DAYS, "2026-05-02T12:00:00Z"},
		{"UTC", "2026-05-01T11:59:59.999Z", "12:00", TIMEUTIL_ALL_DAYS,
		 "2026-05-01T12:00:00Z"},
		{"UTC", "2026-05-01T12:00:00.001Z", "12:00", TIMEUTIL_ALL_DAYS,
		 "2026-05-02T12:00:00Z"},
		{"UTC", "2026-05-01T23:59:59Z", "00:00", TIMEUTIL_ALL_DAYS, "2026-05-02T00:00:00Z"},
		{"UTC", "2026-05-01T00:00:00Z", "23:59:59", TIMEUTIL_ALL_DAYS,
		 "2026-05-01T23:59:59Z"},
		/* 2026-05-01 is a Friday */
		{"UTC", "2026-05-01T10:00:00Z", "07:00", TIMEUTIL_MON, "2026-05-04T07:00:00Z"},
		{"UTC", "2026-05-01T10:00:00Z", "07:00", TIMEUTIL_FRI, "2026-05-08T07:00:00Z"},
		{"UTC", "2026-05-01T06:00:00Z", "07:00", TIMEUTIL_FRI, "2026-05-01T07:00:00Z"},
		{"UTC", "2026-05-01T10:00:00Z", "09:00", TIMEUTIL_SAT | TIMEUTIL_SUN,
		 "2026-05-02T09:00:00Z"},
		{"UTC", "2026-05-02T10:00:00Z", "09:00", TIMEUTIL_SAT | TIMEUTIL_SUN,
		 "2026-05-03T09:00:00Z"},
		{"UTC", "2026-05-03T10:00:00Z", "09:00", TIMEUTIL_SAT | TIMEUTIL_SUN,
		 "2026-05-09T09:00:00Z"},
		{"UTC", "1969-12-31T10:00:00Z", "09:00", TIMEUTIL_ALL_DAYS, "1970-01-01T09:00:00Z"},
		{"Europe/Amsterdam", "2026-05-01T10:00:00Z", "07:00", TIMEUTIL_ALL_DAYS,
		 "2026-05-02T07:00:00+02:00"},
		{"Asia/Kathmandu", "2026-05-01T00:00:00Z", "06:00", TIMEUTIL_ALL_DAYS,
		 "2026-05-01T06:00:00+05:45"},
		{"Asia/Kathmandu", "2026-05-01T00:15:00Z", "06:00", TIMEUTIL_ALL_DAYS,
		 "2026-05-02T06:00:00+05:45"},
		/* a local weekday differs from the UTC one in Auckland */
		{"Pacific/Auckland", "2026-05-01T20:00:00Z", "09:00", TIMEUTIL_SAT,
		 "2026-05-02T09:00:00+12:00"},
		{"America/Los_Angeles", "2026-05-02T06:00:00Z", "22:00", TIMEUTIL_FRI,
		 "2026-05-08T22:00:00-07:00"},
	};
	run_next_rows(rows, ARRAY_LEN(rows));
}

static void test_next_time_of_day_dst(void **state)
{
	(void)state;
	static const struct next_row rows[] = {
		/* Amsterdam spring: 02:00 CET -> 03:00 CEST; 02:30 fires at 03:00 once */
		{"Europe/Amsterdam", "2026-03-28T23:00:00Z", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-03-29T03:00:00+02:00"},
		{"Europe/Amsterdam", "2026-03-29T03:00:00+02:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-03-30T02:30:00+02:00"},
		{"Europe/Amsterdam", "2026-03-28T23:00:00Z", "02:00", TIMEUTIL_ALL_DAYS,
		 "2026-03-29T03:00:00+02:00"},
		{"Europe/Amsterdam", "2026-03-28T23:00:00Z", "01:59:59", TIMEUTIL_ALL_DAYS,
		 "2026-03-29T01:59:59+01:00"},
		{"Europe/Amsterdam", "2026-03-28T23:00:00Z", "03:00", TIMEUTIL_ALL_DAYS,
		 "2026-03-29T03:00:00+02:00"},
		/* after 03:00 the skipped time does not come back that day */
		{"Europe/Amsterdam", "2026-03-29T03:00:00+02:00", "02:59:59", TIMEUTIL_ALL_DAYS,
		 "2026-03-30T02:59:59+02:00"},
		/* Amsterdam autumn: 03:00 CEST -> 02:00 CET; 02:30 fires at the first */
		{"Europe/Amsterdam", "2026-10-24T22:00:00Z", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-10-25T02:30:00+02:00"},
		{"Europe/Amsterdam", "2026-10-25T02:30:00+02:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-10-26T02:30:00+01:00"},
		/* asked during the second pass: the repeat does not fire */
		{"Europe/Amsterdam", "2026-10-25T02:10:00+01:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-10-26T02:30:00+01:00"},
		{"Europe/Amsterdam", "2026-10-25T02:10:00+01:00", "03:00", TIMEUTIL_ALL_DAYS,
		 "2026-10-25T03:00:00+01:00"},
		{"Europe/Amsterdam", "2026-10-24T22:00:00Z", "12:00", TIMEUTIL_SUN,
		 "2026-10-25T12:00:00+01:00"},
		/* New York: 02:00 EST -> 03:00 EDT on 03-08, 02:00 EDT -> 01:00 EST on 11-01 */
		{"America/New_York", "2026-03-08T05:00:00Z", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-03-08T03:00:00-04:00"},
		{"America/New_York", "2026-03-08T03:00:00-04:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-03-09T02:30:00-04:00"},
		{"America/New_York", "2026-11-01T04:00:00Z", "01:30", TIMEUTIL_ALL_DAYS,
		 "2026-11-01T01:30:00-04:00"},
		{"America/New_York", "2026-11-01T01:30:00-04:00", "01:30", TIMEUTIL_ALL_DAYS,
		 "2026-11-02T01:30:00-05:00"},
		/* Sydney: 03:00 AEDT -> 02:00 AEST on 04-05, 02:00 AEST -> 03:00 AEDT on 10-04 */
		{"Australia/Sydney", "2026-04-04T13:00:00Z", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-04-05T02:30:00+11:00"},
		{"Australia/Sydney", "2026-04-05T02:30:00+11:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-04-06T02:30:00+10:00"},
		{"Australia/Sydney", "2026-10-03T14:00:00Z", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-10-04T03:00:00+11:00"},
		{"Australia/Sydney", "2026-10-04T03:00:00+11:00", "02:30", TIMEUTIL_ALL_DAYS,
		 "2026-10-05T02:30:00+11:00"},
		/* Lord Howe moves by half an hour */
		{"Australia/Lord_Howe", "2026-10-03T13:30:00Z", "02:15", TIMEUTIL_ALL_DAYS,
		 "2026-10-04T02:30:00+11:00"},
		{"Australia/Lord_Howe", "2026-04-04T13:00:00Z", "01:45", TIMEUTIL_ALL_DAYS,
		 "2026-04-05T01:45:00+11:00"},
		/* Havana skips midnight: 00:00 fires at 01:00 CDT */
		{"America/Havana", "2026-03-07T12:00:00-05:00", "00:00", TIMEUTIL_ALL_DAYS,
		 "2026-03-08T01:00:00-04:00"},
		{"America/Havana", "2026-03-07T12:00:00-05:00", "00:00", TIMEUTIL_SUN,
		 "2026-03-08T01:00:00-04:00"},
		/* Santiago repeats 23:00..24:00 on Saturday 2026-04-04 */
		{"America/Santiago", "2026-04-04T12:00:00-03:00", "23:30", TIMEUTIL_ALL_DAYS,
		 "2026-04-04T23:30:00-03:00"},
		{"America/Santiago", "2026-04-04T23:30:00-03:00", "23:30", TIMEUTIL_ALL_DAYS,
		 "2026-04-05T23:30:00-04:00"},
		/*
		 * Apia skipped Friday 2011-12-30: its noon falls in the gap and so
		 * fires once when the gap ends, at Saturday 00:00.
		 */
		{"Pacific/Apia", "2011-12-29T13:00:00-10:00", "12:00", TIMEUTIL_ALL_DAYS,
		 "2011-12-31T00:00:00+14:00"},
		{"Pacific/Apia", "2011-12-31T00:00:00+14:00", "12:00", TIMEUTIL_ALL_DAYS,
		 "2011-12-31T12:00:00+14:00"},
		{"Pacific/Apia", "2011-12-29T13:00:00-10:00", "12:00", TIMEUTIL_SAT,
		 "2011-12-31T12:00:00+14:00"},
	};
	run_next_rows(rows, ARRAY_LEN(rows));
}

/*
 * Every wall-clock second of day on DST days: a daily time fires exactly
 * once on the day, at that wall time, or at the end of the gap when it was
 * skipped, or at its first occurrence when it was repeated. Checked against
 * localtime_r, not timeutil.
 */
static void check_dst_day(const char *zone, const char *day_start, int gap_lo, int gap_hi,
			  const char *gap_end, int rep_lo, int rep_hi, int rep_len_s, int step)
{
	set_tz(zone);
	int64_t start = iso_ms(day_start);
	int64_t gap_end_ms = gap_end ? iso_ms(gap_end) : 0;
	int64_t next_start = timeutil_local_midnight(start + 26 * H);
	assert_true(next_start > start + 22 * H && next_start < start + 26 * H);
	for (int sod = 0; sod < 86400; sod += step) {
		int64_t f1 = SENTINEL_MS, f2 = SENTINEL_MS;
		assert_int_equal(timeutil_next_time_of_day(start - 1, sod, TIMEUTIL_ALL_DAYS, &f1),
				 0);
		assert_int_equal(timeutil_next_time_of_day(f1, sod, TIMEUTIL_ALL_DAYS, &f2), 0);
		bool in_gap = sod >= gap_lo && sod < gap_hi;
		bool repeated = sod >= rep_lo && sod < rep_hi;
		bool ok = f1 >= start && f1 < next_start && f2 >= next_start;
		ok = ok && (in_gap ? f1 == gap_end_ms : libc_sod(f1) == sod);
		/* the first occurrence: the same wall time comes again later */
		ok = ok && (!repeated || libc_sod(f1 + rep_len_s * S) == sod);
		if (!ok) {
			char a[64], b[64];
			fail_msg("%s sod %d: fires %s then %s", zone, sod, show(f1, a, sizeof(a)),
				 show(f2, b, sizeof(b)));
		}
	}
}

static void test_next_time_of_day_every_second(void **state)
{
	(void)state;
	check_dst_day("Europe/Amsterdam", "2026-03-29T00:00:00+01:00", 7200, 10800,
		      "2026-03-29T03:00:00+02:00", 0, 0, 0, 1);
	check_dst_day("Europe/Amsterdam", "2026-10-25T00:00:00+02:00", 0, 0, NULL, 7200, 10800,
		      3600, 1);
	check_dst_day("America/New_York", "2026-03-08T00:00:00-05:00", 7200, 10800,
		      "2026-03-08T03:00:00-04:00", 0, 0, 0, 7);
	check_dst_day("America/New_York", "2026-11-01T00:00:00-04:00", 0, 0, NULL, 3600, 7200, 3600,
		      7);
	check_dst_day("Australia/Sydney", "2026-10-04T00:00:00+10:00", 7200, 10800,
		      "2026-10-04T03:00:00+11:00", 0, 0, 0, 7);
	check_dst_day("Australia/Sydney", "2026-04-05T00:00:00+11:00", 0, 0, NULL, 7200, 10800,
		      3600, 7);
	check_dst_day("Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", 7200, 9000,
		      "2026-10-04T02:30:00+11:00", 0, 0, 0, 7);
	check_dst_day("Australia/Lord_Howe", "2026-04-05T00:00:00+11:00", 0, 0, NULL, 5400, 7200,
		      1800, 7);
}

static void test_next_time_of_day_errors(void **state)
{
	(void)state;
	set_tz("UTC");
	int64_t out = SENTINEL_MS;
	assert_int_equal(timeutil_next_time_of_day(0, 0, 0, &out), -EINVAL);
	assert_int_equal(timeutil_next_time_of_day(0, 0, 0x80, &out), -EINVAL);
	assert_int_equal(timeutil_next_time_of_day(0, 0, 0xffffffffu, &out), -EINVAL);
	assert_int_equal(timeutil_next_time_of_day(0, -1, TIMEUTIL_ALL_DAYS, &out), -EINVAL);
	assert_int_equal(timeutil_next_time_of_day(0, 86400, TIMEUTIL_ALL_DAYS, &out), -EINVAL);
	assert_int_equal(timeutil_next_time_of_day(INT64_MAX, 0, TIMEUTIL_ALL_DAYS, &out), -ERANGE);
	assert_int_equal(timeutil_next_time_of_day(INT64_MIN, 0, TIMEUTIL_ALL_DAYS, &out), -ERANGE);
	assert_int_equal(out, SENTINEL_MS);
	assert_int_equal(timeutil_next_time_of_day(TIMEUTIL_MAX_MS, 0, TIMEUTIL_ALL_DAYS, &out), 0);
	assert_true(out > TIMEUTIL_MAX_MS);
}

/* ---------------------------------------------------------------------------
 * Windows
 * ------------------------------------------------------------------------- */

static void test_in_window(void **state)
{
	(void)state;
	/* 2026-05-01 is a Friday */
	static const struct {
		const char *t;
		int after, before;
		unsigned days;
		bool in;
	} rows[] = {
		/* 22:00..06:00 on Friday */
		{"2026-05-01T23:00:00", 79200, 21600, TIMEUTIL_FRI, true},
		{"2026-05-02T03:00:00", 79200, 21600, TIMEUTIL_FRI, true},
		{"2026-05-02T05:59:59.999", 79200, 21600, TIMEUTIL_FRI, true},
		{"2026-05-02T06:00:00", 79200, 21600, TIMEUTIL_FRI, false},
		{"2026-05-01T22:00:00", 79200, 21600, TIMEUTIL_FRI, true},
		{"2026-05-01T21:59:59.999", 79200, 21600, TIMEUTIL_FRI, false},
		{"2026-05-01T03:00:00", 79200, 21600, TIMEUTIL_FRI, false}, /* started Thursday */
		{"2026-05-01T03:00:00", 79200, 21600, TIMEUTIL_THU, true},
		{"2026-05-02T23:00:00", 79200, 21600, TIMEUTIL_FRI, false}, /* Saturday's own */
		{"2026-05-01T12:00:00", 79200, 21600, TIMEUTIL_ALL_DAYS, false},
		{"2026-05-01T00:00:00", 79200, 21600, TIMEUTIL_THU, true},
		/* 08:00..17:00 working days */
		{"2026-05-04T08:00:00", 28800, 61200, 0x3e, true},
		{"2026-05-04T16:59:59", 28800, 61200, 0x3e, true},
		{"2026-05-04T17:00:00", 28800, 61200, 0x3e, false},
		{"2026-05-04T07:59:59", 28800, 61200, 0x3e, false},
		{"2026-05-02T10:00:00", 28800, 61200, 0x3e, false},
		/* open bounds */
		{"2026-05-01T18:00:00", 64800, -1, TIMEUTIL_ALL_DAYS, true},
		{"2026-05-01T23:59:59", 64800, -1, TIMEUTIL_ALL_DAYS, true},
		{"2026-05-02T00:00:00", 64800, -1, TIMEUTIL_ALL_DAYS, false},
		{"2026-05-01T17:59:59", 64800, -1, TIMEUTIL_ALL_DAYS, false},
		{"2026-05-01T06:59:59", -1, 25200, TIMEUTIL_ALL_DAYS, true},
		{"2026-05-01T00:00:00", -1, 25200, TIMEUTIL_ALL_DAYS, true},
		{"2026-05-01T07:00:00", -1, 25200, TIMEUTIL_ALL_DAYS, false},
		{"2026-05-01T06:00:00", -1, 25200, TIMEUTIL_SAT, false},
		{"2026-05-01T12:00:00", -1, -1, TIMEUTIL_FRI, true},
		{"2026-05-01T12:00:00", -1, -1, TIMEUTIL_SAT, false},
		/* after == before: the whole day */
		{"2026-05-01T09:59:59", 36000, 36000, TIMEUTIL_FRI, true},
		{"2026-05-01T10:00:00", 36000, 36000, TIMEUTIL_FRI, true},
		{"2026-05-01T00:00:00", 0, 0, TIMEUTIL_FRI, true},
		{"2026-05-01T10:00:00", 36000, 36000, TIMEUTIL_SAT, false},
		/* bad input */
		{"2026-05-01T12:00:00", 0, 86399, 0, false},
		{"2026-05-01T12:00:00", 86400, 0, TIMEUTIL_ALL_DAYS, false},
		{"2026-05-01T12:00:00", 0, -2, TIMEUTIL_ALL_DAYS, false},
	};
	set_tz("Europe/Amsterdam");
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		char t[48];
		snprintf(t, sizeof(t), "%s+02:00", rows[i].t);
		bool in =
			timeutil_in_window(iso_ms(t), rows[i].after, rows[i].before, rows[i].days);
		if (in != rows[i].in)
			fail_msg("row %zu: %s in [%d, %d) days %#x: %d", i, rows[i].t,
				 rows[i].after, rows[i].before, rows[i].days, in);
	}
}

static void test_in_window_dst(void **state)
{
	(void)state;
	set_tz("Europe/Amsterdam");
	/* 01:00..03:00 on the spring day lasts one real hour */
	int64_t t0 = iso_ms("2026-03-29T00:00:00Z"), n = 0;
	for (int64_t t = t0 - 2 * H; t < t0 + 4 * H; t += M)
		n += timeutil_in_window(t, 3600, 10800, TIMEUTIL_SUN);
	assert_int_equal(n, 60);
	/* and three real hours on the autumn day */
	t0 = iso_ms("2026-10-24T23:00:00Z");
	n = 0;
	for (int64_t t = t0 - 2 * H; t < t0 + 6 * H; t += M)
		n += timeutil_in_window(t, 3600, 10800, TIMEUTIL_SUN);
	assert_int_equal(n, 180);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_good),
		cmocka_unit_test(test_duration_bad),
		cmocka_unit_test(test_duration_edges),
		cmocka_unit_test(test_time_of_day),
		cmocka_unit_test(test_weekday_parse),
		cmocka_unit_test(test_civil_roundtrip),
		cmocka_unit_test(test_local_day),
		cmocka_unit_test(test_local_midnight_year),
		cmocka_unit_test(test_next_time_of_day_plain),
		cmocka_unit_test(test_next_time_of_day_dst),
		cmocka_unit_test(test_next_time_of_day_every_second),
		cmocka_unit_test(test_next_time_of_day_errors),
		cmocka_unit_test(test_in_window),
		cmocka_unit_test(test_in_window_dst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
