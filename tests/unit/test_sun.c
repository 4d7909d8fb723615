/*
 * Unit tests for sun.c: sunrise and sunset against reference values for
 * places on both hemispheres and both sides of the date line, polar day and
 * night, sun_next with offsets across midnight, the sun's elevation, and a
 * cross-check against an independent low-precision algorithm (the US Naval
 * Observatory's "Almanac for Computers", 1990) written out in this file.
 *
 * Reference values: computed with PyEphem 4.1.4 (libastro, VSOP87 based)
 * for the centre of the sun at -0deg50' with no refraction model (pressure
 * 0), which is the definition NOAA's calculator uses (zenith 90.833 deg).
 * Where a published table was found it agrees to the minute:
 *   London 2024-12-21 08:03 / 15:53 GMT (the figures given for this test;
 *     newspaper tables for the solstice show 08:03-08:04 / 15:53);
 *   Amsterdam 2026-06-21 05:18 / 22:06 CEST (the figures given);
 *   Sydney 2024-06-21 07:00 / 16:54 AEST (the figures given; a Sydney
 *     guide lists 7:00am / 4:54pm for the 2025 solstice);
 *   New York 2024-03-20: the figures given for this test (07:03 / 19:13
 *     EDT) are five minutes off; PyEphem gives 06:58:30 / 19:08:42, and a
 *     published NYC almanac for the equinox (2012-03-20) lists sunrise
 *     06:58 EDT, so the PyEphem values are used;
 *   the equator on the 2024 equinox: "about 06:00 / 18:07 UTC" was given;
 *     PyEphem gives 06:04:03 / 18:10:33 (the equation of time is -7.5 min
 *     and the refracted day is ~12h07m), so those are used;
 *   Tromso: midnight sun from about 18 May to 26 July, polar night from
 *     about 26 November to 15 January (Wikipedia's figures), matching the
 *     PyEphem first sunset of 2026-07-26 00:37 CEST.
 * No value here was read from NOAA's own calculator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sun.h"
#include "timeutil.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SENTINEL_MS INT64_C(-777)
#define MIN_MS (60 * 1000LL)
#define HOUR_MS (3600 * 1000LL)
#define DAY_MS (24 * HOUR_MS)
#define PI 3.14159265358979323846

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static void set_tz(const char *zone)
{
	assert_int_equal(setenv("TZ", zone, 1), 0);
	tzset();
}

/* "2026-03-29T01:00:00Z" or with "+02:00". */
static int64_t iso_ms(const char *s)
{
	struct tm tm = {0};
	int n = 0, oh = 0, om = 0;
	char sign = 0;
	if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &n) != 6)
		fail_msg("bad test time %s", s);
	const char *p = s + n;
	if (*p == '+' || *p == '-') {
		sign = *p;
		if (sscanf(p + 1, "%d:%d", &oh, &om) != 2)
			fail_msg("bad offset in %s", s);
	} else if (strcmp(p, "Z") != 0)
		fail_msg("bad zone in %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	int64_t off = (oh * 3600 + om * 60) * (sign == '-' ? -1 : 1);
	return ((int64_t)timegm(&tm) - off) * 1000;
}

static const char *show(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S %Z", &tm);
	return buf;
}

static int64_t llabs64(int64_t v)
{
	return v < 0 ? -v : v;
}

struct place {
	const char *name, *zone;
	double lat, lon;
};

static const struct place AMSTERDAM = {"Amsterdam", "Europe/Amsterdam", 52.3676, 4.9041};
static const struct place LONDON = {"London", "Europe/London", 51.5074, -0.1278};
static const struct place NEW_YORK = {"New York", "America/New_York", 40.7128, -74.0060};
static const struct place SYDNEY = {"Sydney", "Australia/Sydney", -33.8688, 151.2093};
static const struct place EQUATOR = {"0,0", "UTC", 0.0, 0.0};
static const struct place HONOLULU = {"Honolulu", "Pacific/Honolulu", 21.3069, -157.8583};
static const struct place AUCKLAND = {"Auckland", "Pacific/Auckland", -36.8485, 174.7633};
static const struct place REYKJAVIK = {"Reykjavik", "Atlantic/Reykjavik", 64.1466, -21.9426};
static const struct place KIRITIMATI = {"Kiritimati", "Pacific/Kiritimati", 1.8721, -157.4278};
static const struct place USHUAIA = {"Ushuaia", "America/Argentina/Ushuaia", -54.8019, -68.3030};
static const struct place TROMSO = {"Tromso", "Europe/Oslo", 69.6492, 18.9553};

/* ---------------------------------------------------------------------------
 * Reference values
 * ------------------------------------------------------------------------- */

static void test_reference_table(void **state)
{
	(void)state;
	static const struct {
		const struct place *p;
		const char *day; /* any instant on the local day */
		const char *rise, *set;
		int tolerance_s;
	} rows[] = {
		{&AMSTERDAM, "2026-06-21T12:00:00+02:00", "2026-06-21T05:18:00+02:00",
		 "2026-06-21T22:06:22+02:00", 60},
		{&LONDON, "2024-12-21T12:00:00Z", "2024-12-21T08:03:59Z", "2024-12-21T15:53:36Z",
		 60},
		{&NEW_YORK, "2024-03-20T12:00:00-04:00", "2024-03-20T06:58:30-04:00",
		 "2024-03-20T19:08:42-04:00", 60},
		{&SYDNEY, "2024-06-21T12:00:00+10:00", "2024-06-21T07:00:04+10:00",
		 "2024-06-21T16:53:55+10:00", 60},
		{&EQUATOR, "2024-03-20T12:00:00Z", "2024-03-20T06:04:03Z", "2024-03-20T18:10:33Z",
		 60},
		/* southern summer with DST */
		{&SYDNEY, "2024-12-21T12:00:00+11:00", "2024-12-21T05:40:51+11:00",
		 "2024-12-21T20:05:37+11:00", 60},
		{&USHUAIA, "2026-12-21T12:00:00-03:00", "2026-12-21T04:51:26-03:00",
		 "2026-12-21T22:11:18-03:00", 60},
		/* local days that straddle UTC days */
		{&HONOLULU, "2026-06-21T12:00:00-10:00", "2026-06-21T05:50:23-10:00",
		 "2026-06-21T19:16:17-10:00", 60},
		{&AUCKLAND, "2025-01-01T12:00:00+13:00", "2025-01-01T06:05:12+13:00",
		 "2025-01-01T20:43:24+13:00", 60},
		{&AUCKLAND, "2025-06-21T12:00:00+12:00", "2025-06-21T07:33:43+12:00",
		 "2025-06-21T17:11:40+12:00", 60},
		{&KIRITIMATI, "2026-03-01T12:00:00+14:00", "2026-03-01T06:39:49+14:00",
		 "2026-03-01T18:44:25+14:00", 60},
		/* Reykjavik's sunset of the 20th comes after midnight: it is the 21st's */
		{&REYKJAVIK, "2026-06-21T12:00:00Z", "2026-06-21T02:55:12Z", "2026-06-21T00:03:45Z",
		 60},
		/* DST days */
		{&AMSTERDAM, "2026-03-29T12:00:00+02:00", "2026-03-29T07:22:08+02:00",
		 "2026-03-29T20:09:11+02:00", 60},
		{&AMSTERDAM, "2026-10-25T12:00:00+01:00", "2026-10-25T07:23:23+01:00",
		 "2026-10-25T17:24:43+01:00", 60},
		/* next to polar night the sun grazes the horizon: less precise */
		{&TROMSO, "2026-11-26T12:00:00+01:00", "2026-11-26T10:57:12+01:00",
		 "2026-11-26T12:04:55+01:00", 120},
		{&TROMSO, "2027-01-15T12:00:00+01:00", "2027-01-15T11:35:13+01:00",
		 "2027-01-15T12:12:28+01:00", 120},
		/* next to midnight sun: set 00:28:06, rise 00:52:11 */
		{&TROMSO, "2026-05-18T12:00:00+02:00", "2026-05-18T00:52:11+02:00",
		 "2026-05-18T00:28:06+02:00", 120},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		const struct place *p = rows[i].p;
		set_tz(p->zone);
		const char *want_text[2] = {rows[i].rise, rows[i].set};
		for (int ev = SUN_SUNRISE; ev <= SUN_SUNSET; ev++) {
			int64_t got = SENTINEL_MS, want = iso_ms(want_text[ev]);
			int rc = sun_event_on(p->lat, p->lon, iso_ms(rows[i].day),
					      (enum sun_event)ev, &got);
			if (rc != 0 || llabs64(got - want) > rows[i].tolerance_s * 1000LL) {
				char a[64], b[64];
				fail_msg("%s %s %s: rc %d got %s want %s (%+.0f s)", p->name,
					 rows[i].day, ev ? "sunset" : "sunrise", rc,
					 show(got, a, sizeof(a)), show(want, b, sizeof(b)),
					 (double)(got - want) / 1000.0);
			}
		}
	}
}

/* Any instant of the local day gives the same event. */
static void test_any_instant_of_the_day(void **state)
{
	(void)state;
	const struct place *places[] = {&AMSTERDAM, &AUCKLAND, &HONOLULU, &KIRITIMATI, &SYDNEY};
	for (size_t i = 0; i < ARRAY_LEN(places); i++) {
		set_tz(places[i]->zone);
		int64_t mid = timeutil_local_midnight(iso_ms("2026-10-25T12:00:00Z"));
		int64_t next_mid = timeutil_local_midnight(mid + 26 * HOUR_MS);
		for (int ev = SUN_SUNRISE; ev <= SUN_SUNSET; ev++) {
			int64_t first = SENTINEL_MS;
			assert_int_equal(sun_event_on(places[i]->lat, places[i]->lon, mid,
						      (enum sun_event)ev, &first),
					 0);
			assert_true(first >= mid && first < next_mid);
			for (int64_t t = mid; t < next_mid; t += 17 * MIN_MS) {
				int64_t got = SENTINEL_MS;
				assert_int_equal(sun_event_on(places[i]->lat, places[i]->lon, t,
							      (enum sun_event)ev, &got),
						 0);
				assert_int_equal(got, first);
			}
		}
	}
}

static void test_polar(void **state)
{
	(void)state;
	set_tz(TROMSO.zone);
	static const char *const days[] = {"2026-06-21T12:00:00+02:00", "2026-12-21T12:00:00+01:00",
					   "2026-07-01T00:30:00+02:00",
					   "2027-01-01T23:59:00+01:00"};
	for (size_t i = 0; i < ARRAY_LEN(days); i++) {
		for (int ev = SUN_SUNRISE; ev <= SUN_SUNSET; ev++) {
			int64_t out = SENTINEL_MS;
			assert_int_equal(sun_event_on(TROMSO.lat, TROMSO.lon, iso_ms(days[i]),
						      (enum sun_event)ev, &out),
					 -ENOENT);
			assert_int_equal(out, SENTINEL_MS);
		}
	}
	/* midnight sun: up at midnight; polar night: down at noon */
	assert_true(sun_is_up(TROMSO.lat, TROMSO.lon, iso_ms("2026-06-21T00:00:00+02:00")));
	assert_false(sun_is_up(TROMSO.lat, TROMSO.lon, iso_ms("2026-12-21T12:00:00+01:00")));

	/* the first sunset after the midnight sun, and the first sunrise after polar night */
	int64_t out = SENTINEL_MS;
	assert_int_equal(sun_next(TROMSO.lat, TROMSO.lon, SUN_SUNSET, 0,
				  iso_ms("2026-06-21T12:00:00+02:00"), &out),
			 0);
	assert_true(llabs64(out - iso_ms("2026-07-26T00:37:00+02:00")) <= 2 * MIN_MS);
	assert_int_equal(sun_next(TROMSO.lat, TROMSO.lon, SUN_SUNRISE, 0,
				  iso_ms("2026-12-01T00:00:00+01:00"), &out),
			 0);
	assert_true(llabs64(out - iso_ms("2027-01-15T11:35:13+01:00")) <= 2 * MIN_MS);

	/* the poles: half a year of day, half of night */
	set_tz("UTC");
	assert_int_equal(sun_event_on(90.0, 0.0, iso_ms("2026-06-21T12:00:00Z"), SUN_SUNSET, &out),
			 -ENOENT);
	assert_int_equal(
		sun_event_on(-90.0, 0.0, iso_ms("2026-06-21T12:00:00Z"), SUN_SUNRISE, &out),
		-ENOENT);
	assert_true(sun_is_up(90.0, 0.0, iso_ms("2026-06-21T12:00:00Z")));
	assert_false(sun_is_up(-90.0, 0.0, iso_ms("2026-06-21T12:00:00Z")));
	/*
	 * At 89 N the sun rises and sets only for a few days around each
	 * equinox; it grazes the horizon, so minutes of time are hundredths of
	 * a degree: PyEphem has the first sunset at 2026-09-22 21:52:45 and the
	 * first sunrise at 2026-09-23 02:22:27; the spring sunrise comes after
	 * 14 March 2027 (none that day) and by 18 March (06:50).
	 */
	assert_int_equal(sun_next(89.0, 0.0, SUN_SUNSET, 0, iso_ms("2026-04-01T00:00:00Z"), &out),
			 0);
	assert_true(llabs64(out - iso_ms("2026-09-22T21:52:45Z")) <= 10 * MIN_MS);
	assert_int_equal(sun_next(89.0, 0.0, SUN_SUNRISE, 0, iso_ms("2026-04-01T00:00:00Z"), &out),
			 0);
	assert_true(llabs64(out - iso_ms("2026-09-23T02:22:27Z")) <= 10 * MIN_MS);
	assert_int_equal(sun_next(89.0, 0.0, SUN_SUNRISE, 0, iso_ms("2026-10-15T00:00:00Z"), &out),
			 0);
	assert_true(out > iso_ms("2027-03-15T00:00:00Z") && out < iso_ms("2027-03-18T07:00:00Z"));
}

/* ---------------------------------------------------------------------------
 * sun_next
 * ------------------------------------------------------------------------- */

static void test_next(void **state)
{
	(void)state;
	set_tz(AMSTERDAM.zone);
	const double la = AMSTERDAM.lat, lo = AMSTERDAM.lon;
	int64_t rise20, rise21, rise22, set21, out;
	assert_int_equal(sun_event_on(la, lo, iso_ms("2026-06-20T12:00:00Z"), SUN_SUNRISE, &rise20),
			 0);
	assert_int_equal(sun_event_on(la, lo, iso_ms("2026-06-21T12:00:00Z"), SUN_SUNRISE, &rise21),
			 0);
	assert_int_equal(sun_event_on(la, lo, iso_ms("2026-06-22T12:00:00Z"), SUN_SUNRISE, &rise22),
			 0);
	assert_int_equal(sun_event_on(la, lo, iso_ms("2026-06-21T12:00:00Z"), SUN_SUNSET, &set21),
			 0);

	static const struct {
		enum sun_event ev;
		int64_t offset_ms;
		const char *after;
		int which; /* 20, 21, 22: rise of that day; 121: set of the 21st */
	} rows[] = {
		{SUN_SUNRISE, 0, "2026-06-21T00:00:00+02:00", 21},
		{SUN_SUNRISE, 0, "2026-06-20T23:59:59+02:00", 21},
		{SUN_SUNRISE, 0, "2026-06-20T04:00:00+02:00", 20},
		{SUN_SUNRISE, 0, "2026-06-21T12:00:00+02:00", 22},
		{SUN_SUNSET, 0, "2026-06-21T12:00:00+02:00", 121},
		/* six hours before sunrise is the evening before */
		{SUN_SUNRISE, -6 * HOUR_MS, "2026-06-20T12:00:00+02:00", 21},
		{SUN_SUNRISE, -6 * HOUR_MS, "2026-06-20T23:30:00+02:00", 22},
		{SUN_SUNRISE, -30 * MIN_MS, "2026-06-21T04:40:00+02:00", 21},
		/* three hours after sunset is after midnight */
		{SUN_SUNSET, 3 * HOUR_MS, "2026-06-22T00:30:00+02:00", 121},
		{SUN_SUNSET, 3 * HOUR_MS, "2026-06-21T12:00:00+02:00", 121},
		{SUN_SUNSET, SUN_OFFSET_MAX_MS, "2026-06-22T12:00:00+02:00", 121},
		{SUN_SUNRISE, -SUN_OFFSET_MAX_MS, "2026-06-20T05:00:00+02:00", 21},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		int64_t base = rows[i].which == 20   ? rise20
			       : rows[i].which == 21 ? rise21
			       : rows[i].which == 22 ? rise22
						     : set21;
		out = SENTINEL_MS;
		int rc = sun_next(la, lo, rows[i].ev, rows[i].offset_ms, iso_ms(rows[i].after),
				  &out);
		if (rc != 0 || out != base + rows[i].offset_ms) {
			char a[64], b[64];
			fail_msg("row %zu: rc %d got %s want %s", i, rc, show(out, a, sizeof(a)),
				 show(base + rows[i].offset_ms, b, sizeof(b)));
		}
	}
	/* strictly after: asking at the event gives the next day's */
	assert_int_equal(sun_next(la, lo, SUN_SUNRISE, 0, rise21, &out), 0);
	assert_int_equal(out, rise22);
	assert_int_equal(sun_next(la, lo, SUN_SUNRISE, 0, rise21 - 1, &out), 0);
	assert_int_equal(out, rise21);

	/* walking a year of sunsets: one per day, always forward */
	int64_t t = iso_ms("2026-01-01T00:00:00+01:00");
	for (int i = 0; i < 365; i++) {
		int64_t next;
		assert_int_equal(sun_next(la, lo, SUN_SUNSET, -15 * MIN_MS, t, &next), 0);
		assert_true(next > t + 20 * HOUR_MS || i == 0);
		assert_true(next < t + 28 * HOUR_MS);
		t = next;
	}
	assert_true(t >= iso_ms("2026-12-31T16:00:00+01:00") &&
		    t < iso_ms("2027-01-01T00:00:00+01:00"));
}

static void test_next_southern_and_dateline(void **state)
{
	(void)state;
	/* Auckland: sunrise minus 8 h lands on the previous local (and UTC) evening */
	set_tz(AUCKLAND.zone);
	int64_t rise, out;
	assert_int_equal(sun_event_on(AUCKLAND.lat, AUCKLAND.lon,
				      iso_ms("2025-01-01T12:00:00+13:00"), SUN_SUNRISE, &rise),
			 0);
	assert_int_equal(sun_next(AUCKLAND.lat, AUCKLAND.lon, SUN_SUNRISE, -8 * HOUR_MS,
				  iso_ms("2024-12-31T21:00:00+13:00"), &out),
			 0);
	assert_int_equal(out, rise - 8 * HOUR_MS);
	/* Honolulu: sunset plus 5 h is the next local day, two UTC days later */
	set_tz(HONOLULU.zone);
	int64_t set;
	assert_int_equal(sun_event_on(HONOLULU.lat, HONOLULU.lon,
				      iso_ms("2026-06-21T12:00:00-10:00"), SUN_SUNSET, &set),
			 0);
	assert_int_equal(sun_next(HONOLULU.lat, HONOLULU.lon, SUN_SUNSET, 5 * HOUR_MS,
				  iso_ms("2026-06-22T00:00:00-10:00"), &out),
			 0);
	assert_int_equal(out, set + 5 * HOUR_MS);
	/* Ushuaia in December: long days, the sunset late in the evening */
	set_tz(USHUAIA.zone);
	assert_int_equal(sun_next(USHUAIA.lat, USHUAIA.lon, SUN_SUNSET, 0,
				  iso_ms("2026-12-21T12:00:00-03:00"), &out),
			 0);
	assert_true(llabs64(out - iso_ms("2026-12-21T22:11:18-03:00")) <= MIN_MS);
}

static void test_errors(void **state)
{
	(void)state;
	set_tz("UTC");
	int64_t out = SENTINEL_MS;
	const int64_t t = iso_ms("2026-06-21T12:00:00Z");
	assert_int_equal(sun_event_on(91.0, 0, t, SUN_SUNRISE, &out), -EINVAL);
	assert_int_equal(sun_event_on(-91.0, 0, t, SUN_SUNRISE, &out), -EINVAL);
	assert_int_equal(sun_event_on(0, 180.5, t, SUN_SUNRISE, &out), -EINVAL);
	assert_int_equal(sun_event_on(NAN, 0, t, SUN_SUNRISE, &out), -EINVAL);
	assert_int_equal(sun_event_on(0, INFINITY, t, SUN_SUNRISE, &out), -EINVAL);
	assert_int_equal(sun_event_on(0, 0, t, (enum sun_event)7, &out), -EINVAL);
	assert_int_equal(sun_event_on(0, 0, t, SUN_SUNRISE, NULL), -EINVAL);
	assert_int_equal(sun_event_on(0, 0, INT64_MAX, SUN_SUNRISE, &out), -ERANGE);
	assert_int_equal(sun_next(0, 0, SUN_SUNSET, SUN_OFFSET_MAX_MS + 1, t, &out), -EINVAL);
	assert_int_equal(sun_next(0, 0, SUN_SUNSET, -SUN_OFFSET_MAX_MS - 1, t, &out), -EINVAL);
	assert_int_equal(sun_next(0, 0, SUN_SUNSET, INT64_MIN, t, &out), -EINVAL);
	assert_int_equal(sun_next(95.0, 0, SUN_SUNSET, 0, t, &out), -EINVAL);
	assert_int_equal(sun_next(0, 0, SUN_SUNSET, 0, INT64_MIN, &out), -ERANGE);
	assert_int_equal(out, SENTINEL_MS);
	assert_true(isnan(sun_elevation(NAN, 0, t)));
	assert_false(sun_is_up(100.0, 0, t));
	/* the end of the range: no crash, an answer or -ENOENT */
	int rc = sun_next(0, 0, SUN_SUNSET, 0, TIMEUTIL_MAX_MS, &out);
	assert_true(rc == 0 || rc == -ENOENT);
	/* extreme longitudes are accepted */
	assert_int_equal(sun_event_on(0, 180.0, t, SUN_SUNRISE, &out), 0);
	assert_int_equal(sun_event_on(0, -180.0, t, SUN_SUNRISE, &out), 0);
}

/* ---------------------------------------------------------------------------
 * Elevation
 * ------------------------------------------------------------------------- */

static void test_elevation(void **state)
{
	(void)state;
	static const struct {
		const struct place *p;
		const char *t;
		double deg; /* PyEphem, no refraction */
	} rows[] = {
		{&AMSTERDAM, "2026-06-21T11:40:00Z", 61.0661},
		{&TROMSO, "2026-06-21T22:00:00Z", 3.4526},
		{&SYDNEY, "2024-06-21T02:00:00Z", 32.6867},
		{&EQUATOR, "2024-03-20T12:07:00Z", 89.8328},
		{&NEW_YORK, "2024-03-20T03:00:00Z", -40.5952},
		{&TROMSO, "2026-12-21T11:00:00Z", -3.1435},
		{&USHUAIA, "2026-12-21T16:00:00Z", 58.0941},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		double e = sun_elevation(rows[i].p->lat, rows[i].p->lon, iso_ms(rows[i].t));
		if (fabs(e - rows[i].deg) > 0.05)
			fail_msg("%s %s: elevation %.4f want %.4f", rows[i].p->name, rows[i].t, e,
				 rows[i].deg);
		assert_true(sun_is_up(rows[i].p->lat, rows[i].p->lon, iso_ms(rows[i].t)) ==
			    (rows[i].deg > -0.833));
	}
	/* before the epoch works too (fmod of a negative time) */
	double e = sun_elevation(0, 0, iso_ms("1969-03-21T12:07:00Z"));
	assert_true(e > 89.0);
}

/* Through a year: each event inside its local day, at -0.833 deg, the sun
 * coming up at sunrise and going down at sunset. */
static void check_year(const struct place *p, int min_days_with_events)
{
	set_tz(p->zone);
	int64_t day = iso_ms("2026-01-01T12:00:00Z");
	int n = 0;
	for (int i = 0; i < 365; i++, day += DAY_MS) {
		int64_t mid = timeutil_local_midnight(day),
			next_mid = timeutil_local_midnight(day + DAY_MS);
		bool both = true;
		for (int ev = SUN_SUNRISE; ev <= SUN_SUNSET; ev++) {
			int64_t t;
			int rc = sun_event_on(p->lat, p->lon, day, (enum sun_event)ev, &t);
			if (rc == -ENOENT) {
				both = false;
				continue;
			}
			assert_int_equal(rc, 0);
			double e = sun_elevation(p->lat, p->lon, t);
			bool up_before = sun_is_up(p->lat, p->lon, t - 2 * MIN_MS);
			bool up_after = sun_is_up(p->lat, p->lon, t + 2 * MIN_MS);
			if (t < mid || t >= next_mid || fabs(e + 0.833) > 0.01 ||
			    up_before != (ev == SUN_SUNSET) || up_after != (ev == SUN_SUNRISE)) {
				char a[64];
				fail_msg("%s %s at %s: elevation %.4f up %d/%d", p->name,
					 ev ? "sunset" : "sunrise", show(t, a, sizeof(a)), e,
					 up_before, up_after);
			}
		}
		n += both;
	}
	if (n < min_days_with_events)
		fail_msg("%s: %d days with both events, want %d", p->name, n, min_days_with_events);
}

static void test_year_consistency(void **state)
{
	(void)state;
	check_year(&AMSTERDAM, 365);
	check_year(&SYDNEY, 365);
	check_year(&HONOLULU, 365);
	check_year(&AUCKLAND, 365);
	check_year(&KIRITIMATI, 365);
	check_year(&USHUAIA, 365);
	check_year(&EQUATOR, 365);
	/* around midsummer a Reykjavik sunset can slip past midnight: a day without one */
	check_year(&REYKJAVIK, 360);
	/* Tromso: about two months each of midnight sun and polar night */
	check_year(&TROMSO, 200);
}

/* ---------------------------------------------------------------------------
 * Independent cross-check: USNO "Almanac for Computers" (1990) sunrise and
 * sunset, a low-precision algorithm good to a minute or two.
 * ------------------------------------------------------------------------- */

static double d2r(double d)
{
	return d * PI / 180.0;
}

static double r2d(double r)
{
	return r * 180.0 / PI;
}

static double norm(double v, double range)
{
	v = fmod(v, range);
	return v < 0 ? v + range : v;
}

/* UT hours of the event on day-of-year doy, or -1 when there is none. */
static double usno_event(int doy, double lat, double lon, bool rising)
{
	double lng_hour = lon / 15.0;
	double t = doy + ((rising ? 6.0 : 18.0) - lng_hour) / 24.0;
	double mean_anomaly = 0.9856 * t - 3.289;
	double true_long = norm(mean_anomaly + 1.916 * sin(d2r(mean_anomaly)) +
					0.020 * sin(d2r(2 * mean_anomaly)) + 282.634,
				360.0);
	double ra = norm(r2d(atan(0.91764 * tan(d2r(true_long)))), 360.0);
	ra += floor(true_long / 90.0) * 90.0 - floor(ra / 90.0) * 90.0;
	ra /= 15.0;
	double sin_dec = 0.39782 * sin(d2r(true_long));
	double cos_dec = cos(asin(sin_dec));
	double cos_h = (cos(d2r(90.833)) - sin_dec * sin(d2r(lat))) / (cos_dec * cos(d2r(lat)));
	if (cos_h > 1.0 || cos_h < -1.0)
		return -1.0;
	double h = rising ? 360.0 - r2d(acos(cos_h)) : r2d(acos(cos_h));
	double local_t = h / 15.0 + ra - 0.06571 * t - 6.622;
	return norm(local_t - lng_hour, 24.0);
}

static void test_usno_cross_check(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		double lat, lon;
	} places[] = {
		{"Amsterdam", 52.3676, 4.9041},	  {"New York", 40.7128, -74.0060},
		{"Sydney", -33.8688, 151.2093},	  {"Honolulu", 21.3069, -157.8583},
		{"Auckland", -36.8485, 174.7633}, {"Cape Town", -33.9249, 18.4241},
		{"Singapore", 1.3521, 103.8198},  {"Anchorage", 61.2181, -149.9003},
		{"Ushuaia", -54.8019, -68.3030},  {"equator", 0.0, 0.0},
	};
	set_tz("UTC");
	double worst = 0;
	for (size_t i = 0; i < ARRAY_LEN(places); i++) {
		for (int month = 1; month <= 12; month++) {
			for (int mday = 1; mday <= 28; mday += 9) {
				struct tm tm = {
					.tm_year = 126, .tm_mon = month - 1, .tm_mday = mday};
				int64_t midnight = (int64_t)timegm(&tm) * 1000;
				for (int ev = SUN_SUNRISE; ev <= SUN_SUNSET; ev++) {
					double ut = usno_event(tm.tm_yday + 1, places[i].lat,
							       places[i].lon, ev == SUN_SUNRISE);
					int64_t got;
					assert_true(ut >= 0);
					assert_int_equal(sun_event_on(places[i].lat, places[i].lon,
								      midnight + DAY_MS / 2,
								      (enum sun_event)ev, &got),
							 0);
					/* the same event may be a UTC day apart: take the nearest
					 */
					double best = 1e18;
					for (int k = -1; k <= 1; k++) {
						double usno_ms = (double)midnight + ut * 3600e3 +
								 k * (double)DAY_MS;
						double d = fabs((double)got - usno_ms);
						if (d < best)
							best = d;
					}
					if (best > worst)
						worst = best;
					if (best > 3 * 60e3)
						fail_msg("%s 2026-%02d-%02d %s: %.1f min from USNO",
							 places[i].name, month, mday,
							 ev ? "sunset" : "sunrise", best / 60e3);
				}
			}
		}
	}
	print_message("largest difference from the USNO algorithm: %.1f s\n", worst / 1000.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference_table),
		cmocka_unit_test(test_any_instant_of_the_day),
		cmocka_unit_test(test_polar),
		cmocka_unit_test(test_next),
		cmocka_unit_test(test_next_southern_and_dateline),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_elevation),
		cmocka_unit_test(test_year_consistency),
		cmocka_unit_test(test_usno_cross_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
