#include "timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DAY_S TIMEUTIL_DAY_S

static void set_err(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
	if (!err || !err_len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int64_t clamp_ms(int64_t t_ms)
{
	if (t_ms < TIMEUTIL_MIN_MS)
		return TIMEUTIL_MIN_MS;
	if (t_ms > TIMEUTIL_MAX_MS)
		return TIMEUTIL_MAX_MS;
	return t_ms;
}

/* ---- calendar ---------------------------------------------------------- */

/*
 * Gregorian arithmetic on a year that starts in March, so the leap day is
 * the last day of its year; 400-year eras of 146097 days make it exact for
 * any sign.
 */
int64_t timeutil_days_from_civil(int64_t y, int m, int d)
{
	if (m <= 2)
		y--;
	int64_t era = floor_div(y, 400);
	int64_t year_of_era = y - era * 400;
	int month_from_march = (m + 9) % 12;
	int64_t day_of_year = (153 * month_from_march + 2) / 5 + d - 1;
	int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
	return era * 146097 + day_of_era - 719468; /* 719468: 0000-03-01 .. 1970-01-01 */
}

void timeutil_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t day_of_era = z - era * 146097;
	int64_t year_of_era =
		(day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
	int64_t day_of_year =
		day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
	int month_from_march = (int)((5 * day_of_year + 2) / 153);
	int month = month_from_march < 10 ? month_from_march + 3 : month_from_march - 9;
	*d = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
	*m = month;
	*y = year_of_era + era * 400 + (month <= 2);
}

int timeutil_days_in_month(int64_t y, int m)
{
	static const int len[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12)
		return 0;
	if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
		return 29;
	return len[m - 1];
}

int timeutil_weekday_of_days(int64_t days)
{
	return (int)floor_mod(days + 4, 7); /* 1970-01-01 was a Thursday */
}

/* ---- local time -------------------------------------------------------- */

static int64_t utc_offset(int64_t t_s)
{
	time_t tt = (time_t)t_s;
	struct tm tm;
	if (!localtime_r(&tt, &tm))
		return 0;
	return tm.tm_gmtoff;
}

int64_t timeutil_wall_from_instant(int64_t t_s)
{
	return t_s + utc_offset(t_s);
}

/* First instant whose wall clock reads wall_s or later, inside a gap. */
static int64_t gap_end(int64_t wall_s, const int64_t *offs, size_t n)
{
	int64_t lo_off = offs[0], hi_off = offs[0];
	for (size_t i = 1; i < n; i++) {
		if (offs[i] < lo_off)
			lo_off = offs[i];
		if (offs[i] > hi_off)
			hi_off = offs[i];
	}
	/* wall(lo) < wall_s <= wall(hi): neither bound was a valid mapping */
	int64_t lo = wall_s - hi_off, hi = wall_s - lo_off;
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		if (timeutil_wall_from_instant(mid) >= wall_s)
			hi = mid;
		else
			lo = mid;
	}
	return hi;
}

/*
 * The candidates are the instants wall_s - offset, for the offsets in force
 * a day before and a day after, that really have that offset: two for a
 * repeated time, none for a skipped one. This assumes at most one
 * transition within a day of wall_s, as in every zone in use today; with
 * more the answer is still an instant near wall_s.
 */
int64_t timeutil_instant_from_wall(int64_t wall_s)
{
	int64_t offs[4];
	offs[0] = utc_offset(wall_s - DAY_S);
	offs[1] = utc_offset(wall_s + DAY_S);
	if (offs[0] == offs[1] && utc_offset(wall_s - offs[0]) == offs[0])
		return wall_s - offs[0];
	offs[2] = utc_offset(wall_s - offs[0]);
	offs[3] = utc_offset(wall_s - offs[1]);

	bool found = false;
	int64_t best = 0;
	for (size_t i = 0; i < 4; i++) {
		int64_t t = wall_s - offs[i];
		if (utc_offset(t) == offs[i] && (!found || t < best)) {
			best = t;
			found = true;
		}
	}
	return found ? best : gap_end(wall_s, offs, 4);
}

static int64_t wall_of_ms(int64_t t_ms)
{
	return timeutil_wall_from_instant(floor_div(clamp_ms(t_ms), 1000));
}

int64_t timeutil_local_midnight(int64_t t_ms)
{
	int64_t day = floor_div(wall_of_ms(t_ms), DAY_S);
	return timeutil_instant_from_wall(day * DAY_S) * 1000;
}

int timeutil_local_seconds_of_day(int64_t t_ms)
{
	return (int)floor_mod(wall_of_ms(t_ms), DAY_S);
}

int timeutil_local_weekday(int64_t t_ms)
{
	return timeutil_weekday_of_days(floor_div(wall_of_ms(t_ms), DAY_S));
}

int timeutil_next_time_of_day(int64_t after_ms, int seconds_of_day, unsigned weekdays,
			      int64_t *out_ms)
{
	if (seconds_of_day < 0 || seconds_of_day >= DAY_S)
		return -EINVAL;
	if (!weekdays || (weekdays & ~TIMEUTIL_ALL_DAYS))
		return -EINVAL;
	if (after_ms < TIMEUTIL_MIN_MS || after_ms > TIMEUTIL_MAX_MS)
		return -ERANGE;

	/*
	 * A wall time on an earlier date maps to an instant at or before
	 * after_ms, and the mapping never goes backwards as the date advances,
	 * so the first candidate past after_ms is the answer.
	 */
	int64_t day = floor_div(wall_of_ms(after_ms), DAY_S);
	for (int i = 0; i < 9; i++, day++) {
		if (!(weekdays & (1u << timeutil_weekday_of_days(day))))
			continue;
		int64_t t_s = timeutil_instant_from_wall(day * DAY_S + seconds_of_day);
		if (t_s > floor_div(after_ms, 1000)) {
			*out_ms = t_s * 1000;
			return 0;
		}
	}
	return -ENOENT; /* unreachable with a non-empty mask */
}

bool timeutil_in_window(int64_t t_ms, int after_s, int before_s, unsigned weekdays)
{
	if (!weekdays || after_s < -1 || after_s >= DAY_S || before_s < -1 || before_s >= DAY_S)
		return false;
	int64_t wall = wall_of_ms(t_ms);
	int64_t day = floor_div(wall, DAY_S);
	int sod = (int)floor_mod(wall, DAY_S);
	bool in;

	if (after_s < 0 && before_s < 0)
		in = true;
	else if (after_s < 0)
		in = sod < before_s;
	else if (before_s < 0)
		in = sod >= after_s;
	else if (after_s == before_s)
		in = true;
	else if (after_s < before_s)
		in = sod >= after_s && sod < before_s;
	else if (sod >= after_s)
		in = true;
	else if (sod < before_s) {
		in = true;
		day--; /* the window opened yesterday evening */
	} else
		in = false;
	return in && (weekdays & (1u << timeutil_weekday_of_days(day)));
}

/* ---- parsing ----------------------------------------------------------- */

/*
 * Reads up to max_digits digits at *p into *out. Returns the number of
 * digits read (0: none).
 */
static int read_number(const char **p, int max_digits, int64_t *out)
{
	int64_t v = 0;
	int n = 0;
	while (is_digit(**p) && n < max_digits) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	*out = v;
	return n;
}

static const struct {
	const char *name;
	int64_t ms;
} duration_units[] = {
	{"d", TIMEUTIL_DAY_MS}, {"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000},
};

/* Index into duration_units of the unit at p, or -1; *len gets its length. */
static int unit_at(const char *p, size_t *len)
{
	for (size_t i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
		size_t n = strlen(duration_units[i].name);
		if (strncmp(p, duration_units[i].name, n) == 0 && !(p[n] >= 'a' && p[n] <= 'z')) {
			*len = n;
			return (int)i;
		}
	}
	return -1;
}

/* "HH:MM:SS" with hours of any size up to the maximum. */
static int parse_clock(const char *p, int64_t *out_ms, const char **why)
{
	int64_t h, m, s;
	if (!read_number(&p, 5, &h) || *p++ != ':' || read_number(&p, 2, &m) != 2 || *p++ != ':' ||
	    read_number(&p, 2, &s) != 2 || *p) {
		*why = "expected HH:MM:SS";
		return -EINVAL;
	}
	if (m > 59 || s > 59) {
		*why = "minutes and seconds must be 00..59";
		return -EINVAL;
	}
	*out_ms = ((h * 60 + m) * 60 + s) * 1000;
	return 0;
}

/* Parts like "1d 2h3m" in falling order, or one bare number of seconds. */
static int parse_parts(const char *p, int64_t *out_ms, const char **why)
{
	int64_t total = 0, prev_unit_ms = INT64_MAX;
	bool first = true;
	while (*p) {
		int64_t v;
		size_t ulen = 0;
		if (!first)
			while (is_blank(*p))
				p++;
		if (!read_number(&p, 13, &v)) {
			*why = "expected a number";
			return -EINVAL;
		}
		if (is_digit(*p))
			goto range;
		if (!*p && first) {
			if (v > TIMEUTIL_DURATION_MAX_MS / 1000)
				goto range;
			total = v * 1000; /* a plain number: seconds */
			break;
		}
		int u = unit_at(p, &ulen);
		if (u < 0) {
			*why = is_blank(*p) || !*p ? "a number needs a unit (ms, s, m, h, d)"
						   : "unknown unit (use ms, s, m, h, d)";
			return -EINVAL;
		}
		int64_t unit_ms = duration_units[u].ms;
		if (unit_ms >= prev_unit_ms) {
			*why = "units must appear once each, largest first";
			return -EINVAL;
		}
		prev_unit_ms = unit_ms;
		if (v > TIMEUTIL_DURATION_MAX_MS / unit_ms)
			goto range;
		total += v * unit_ms;
		if (total > TIMEUTIL_DURATION_MAX_MS)
			goto range;
		p += ulen;
		first = false;
	}
	*out_ms = total;
	return 0;
range:
	*why = "longer than 400 days";
	return -ERANGE;
}

int timeutil_duration_parse(const char *text, int64_t *out_ms, char *err, size_t err_len)
{
	if (!text) {
		set_err(err, err_len, "duration missing");
		return -EINVAL;
	}
	size_t len = strnlen(text, TIMEUTIL_TEXT_MAX + 1);
	if (len > TIMEUTIL_TEXT_MAX) {
		set_err(err, err_len, "duration \"%.*s...\": too long", TIMEUTIL_TEXT_MAX / 2,
			text);
		return -EINVAL;
	}
	char buf[TIMEUTIL_TEXT_MAX + 1];
	const char *start = text;
	while (is_blank(*start))
		start++;
	size_t n = strlen(start);
	while (n && is_blank(start[n - 1]))
		n--;
	memcpy(buf, start, n);
	buf[n] = '\0';

	const char *p = buf, *why = NULL;
	bool negative = *p == '-';
	if (*p == '-' || *p == '+')
		p++;
	int64_t v = 0;
	int rc;
	if (!*p) {
		why = "empty";
		rc = -EINVAL;
	} else if (strchr(p, ':'))
		rc = parse_clock(p, &v, &why);
	else
		rc = parse_parts(p, &v, &why);
	if (!rc && v > TIMEUTIL_DURATION_MAX_MS) {
		why = "longer than 400 days";
		rc = -ERANGE;
	}
	if (!rc && negative && v == 0) {
		why = "negative zero";
		rc = -EINVAL;
	}
	if (rc) {
		set_err(err, err_len, "duration \"%s\": %s", text, why);
		return rc;
	}
	*out_ms = negative ? -v : v;
	return 0;
}

int timeutil_time_of_day_parse(const char *text, int *out_seconds, char *err, size_t err_len)
{
	if (!text) {
		set_err(err, err_len, "time of day missing");
		return -EINVAL;
	}
	size_t len = strnlen(text, TIMEUTIL_TEXT_MAX + 1);
	const char *p = text;
	int64_t h, m, s = 0;
	int hd = read_number(&p, 2, &h);
	bool ok = len <= TIMEUTIL_TEXT_MAX && hd >= 1 && *p++ == ':' && read_number(&p, 2, &m) == 2;
	if (ok && *p == ':') {
		p++;
		ok = read_number(&p, 2, &s) == 2;
	}
	ok = ok && !*p && h <= 23 && m <= 59 && s <= 59;
	if (!ok) {
		set_err(err, err_len,
			"time of day \"%.*s\": expected HH:MM or HH:MM:SS, 00:00..23:59:59",
			TIMEUTIL_TEXT_MAX, text);
		return -EINVAL;
	}
	*out_seconds = (int)(h * 3600 + m * 60 + s);
	return 0;
}

int timeutil_weekday_parse(const char *text, unsigned *out_bit)
{
	static const char *const names[7][2] = {
		{"sun", "sunday"},   {"mon", "monday"}, {"tue", "tuesday"},  {"wed", "wednesday"},
		{"thu", "thursday"}, {"fri", "friday"}, {"sat", "saturday"},
	};
	if (!text || strnlen(text, 16) > 9)
		return -EINVAL;
	for (unsigned i = 0; i < 7; i++) {
		if (!strcasecmp(text, names[i][0]) || !strcasecmp(text, names[i][1])) {
			*out_bit = 1u << i;
			return 0;
		}
	}
	return -EINVAL;
}
