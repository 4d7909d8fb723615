#include "cron.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "timeutil.h"

#define TOKEN_MAX 16

enum field { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
					  "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const struct {
	const char *name;
	int min, max;
	const char *const *names; /* names[i] is value first_name + i */
	int n_names, first_name;
} fields[F_COUNT] = {
	[F_MINUTE] = {"minute", 0, 59, NULL, 0, 0},
	[F_HOUR] = {"hour", 0, 23, NULL, 0, 0},
	[F_DOM] = {"day-of-month", 1, 31, NULL, 0, 0},
	[F_MONTH] = {"month", 1, 12, month_names, 12, 1},
	[F_DOW] = {"day-of-week", 0, 7, day_names, 7, 0},
};

static const struct {
	const char *name, *expansion;
} macros[] = {
	{"@hourly", "0 * * * *"},   {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
	{"@weekly", "0 0 * * 0"},   {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
	{"@annually", "0 0 1 1 *"},
};

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

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parsing state for one field, for error messages. */
struct field_ctx {
	enum field f;
	char *err;
	size_t err_len;
};

static int field_err(const struct field_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int field_err(const struct field_ctx *c, const char *fmt, ...)
{
	char why[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	set_err(c->err, c->err_len, "cron field %d (%s): %s", (int)c->f + 1, fields[c->f].name,
		why);
	return -EINVAL;
}

/* Copies the run of letters and digits at *p into tok, advancing *p. */
static size_t read_token(const char **p, char *tok)
{
	size_t n = 0;
	while (is_alnum(**p)) {
		if (n < TOKEN_MAX)
			tok[n++] = **p;
		else
			n = TOKEN_MAX + 1;
		(*p)++;
	}
	tok[n > TOKEN_MAX ? TOKEN_MAX : n] = '\0';
	return n;
}

static bool all_digits(const char *tok)
{
	for (; *tok; tok++)
		if (*tok < '0' || *tok > '9')
			return false;
	return true;
}

/* A number or a name in item; *is_sun says it was the name "sun". */
static int read_value(const struct field_ctx *c, const char *item, const char **p, int *out,
		      bool *is_sun)
{
	char tok[TOKEN_MAX + 1];
	size_t n = read_token(p, tok);
	if (n == 0)
		return field_err(c, "missing value in \"%s\"", item);
	if (n > 4) /* "0005" is the longest sensible number, names are three letters */
		return field_err(c, "\"%s%s\" is not a %s", tok, n > TOKEN_MAX ? "..." : "",
				 fields[c->f].names ? "number or name" : "number");
	*is_sun = false;
	if (all_digits(tok)) {
		int v = 0;
		for (const char *q = tok; *q; q++)
			v = v * 10 + (*q - '0');
		if (v < fields[c->f].min || v > fields[c->f].max)
			return field_err(c, "%s is out of range %d..%d", tok, fields[c->f].min,
					 fields[c->f].max);
		*out = v;
		return 0;
	}
	for (int i = 0; i < fields[c->f].n_names; i++) {
		if (!strcasecmp(tok, fields[c->f].names[i])) {
			*out = fields[c->f].first_name + i;
			*is_sun = c->f == F_DOW && i == 0;
			return 0;
		}
	}
	return field_err(c, "\"%s\" is not a %s", tok,
			 fields[c->f].names ? "number or name" : "number");
}

static int read_step(const struct field_ctx *c, const char **p, int *out)
{
	char tok[TOKEN_MAX + 1];
	int span = fields[c->f].max - fields[c->f].min + 1;
	size_t n = read_token(p, tok);
	if (n == 0 || n > 3 || !all_digits(tok))
		return field_err(c, "step \"%s\" is not a number", tok);
	int v = 0;
	for (const char *q = tok; *q; q++)
		v = v * 10 + (*q - '0');
	if (v < 1 || v > span)
		return field_err(c, "step %d is out of range 1..%d", v, span);
	*out = v;
	return 0;
}

/* One list item: '*' or a value or a range, then an optional step. */
static int parse_item(const struct field_ctx *c, const char *item, uint64_t *bits)
{
	const char *p = item;
	int lo = fields[c->f].min, hi = fields[c->f].max, step = 1;
	bool is_sun, range = false;
	int rc;

	if (*p == '*') {
		p++;
	} else {
		if ((rc = read_value(c, item, &p, &lo, &is_sun)))
			return rc;
		hi = lo;
		if (*p == '-') {
			p++;
			range = true;
			if ((rc = read_value(c, item, &p, &hi, &is_sun)))
				return rc;
			if (is_sun && lo > 0)
				hi = 7;
			if (lo > hi)
				return field_err(c, "range \"%s\" is backwards", item);
		}
	}
	if (*p == '/') {
		p++;
		if ((rc = read_step(c, &p, &step)))
			return rc;
		if (!range && *item != '*')
			hi = fields[c->f].max;
	}
	if (*p)
		return field_err(c, "unexpected \"%c\" in \"%s\"", *p, item);
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ull << (c->f == F_DOW && v == 7 ? 0 : v);
	return 0;
}

/* A comma-separated list: text is one field, NUL-terminated. */
static int parse_field(const struct field_ctx *c, char *text, uint64_t *bits)
{
	char *item = text;
	for (;;) {
		char *comma = strchr(item, ',');
		if (comma)
			*comma = '\0';
		if (!*item) {
			if (comma)
				*comma = ',';
			return field_err(c, "empty list item in \"%s\"", text);
		}
		int rc = parse_item(c, item, bits);
		if (rc)
			return rc;
		if (!comma)
			return 0;
		*comma = ',';
		item = comma + 1;
	}
}

/* Splits text at blanks into at most F_COUNT fields; returns the count seen. */
static int split_fields(char *text, char *out[F_COUNT])
{
	int n = 0;
	char *p = text;
	for (;;) {
		while (is_blank(*p))
			*p++ = '\0';
		if (!*p)
			return n;
		if (n < F_COUNT)
			out[n] = p;
		n++;
		while (*p && !is_blank(*p))
			p++;
	}
}

static const char *expand_macro(const char *text)
{
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++)
		if (!strcasecmp(text, macros[i].name))
			return macros[i].expansion;
	return NULL;
}

static int parse_fields(char *buf, struct cron_expr *e, char *err, size_t err_len)
{
	char *parts[F_COUNT];
	int n = split_fields(buf, parts);
	if (n != F_COUNT) {
		set_err(err, err_len, "cron: expected 5 fields (%s), got %d",
			"minute hour day-of-month month day-of-week", n);
		return -EINVAL;
	}
	uint64_t bits[F_COUNT] = {0};
	for (int f = 0; f < F_COUNT; f++) {
		struct field_ctx c = {(enum field)f, err, err_len};
		int rc = parse_field(&c, parts[f], &bits[f]);
		if (rc)
			return rc;
	}
	e->minutes = bits[F_MINUTE];
	e->hours = (uint32_t)bits[F_HOUR];
	e->days = (uint32_t)bits[F_DOM];
	e->months = (uint16_t)bits[F_MONTH];
	e->weekdays = (uint8_t)bits[F_DOW];
	e->days_any = parts[F_DOM][0] == '*';
	e->weekdays_any = parts[F_DOW][0] == '*';
	return 0;
}

int cron_parse(const char *text, struct cron_expr *out, char *err, size_t err_len)
{
	char buf[CRON_TEXT_MAX + 1];
	struct cron_expr e = {0};
	if (!text || !out) {
		set_err(err, err_len, "cron: expression missing");
		return -EINVAL;
	}
	size_t len = strnlen(text, CRON_TEXT_MAX + 1);
	if (len > CRON_TEXT_MAX) {
		set_err(err, err_len, "cron: expression longer than %d bytes", CRON_TEXT_MAX);
		return -EINVAL;
	}
	while (is_blank(*text))
		text++;
	if (*text == '@') {
		char name[16];
		size_t n = strcspn(text, " \t");
		const char *expansion = NULL;
		if (n < sizeof(name)) {
			memcpy(name, text, n);
			name[n] = '\0';
			expansion = expand_macro(name);
		}
		if (!expansion) {
			set_err(err, err_len, "cron: unknown macro \"%.*s\"",
				(int)(n < 32 ? n : 32), text);
			return -EINVAL;
		}
		if (text[n + strspn(text + n, " \t")]) {
			set_err(err, err_len, "cron: unexpected text after \"%s\"", name);
			return -EINVAL;
		}
		text = expansion;
	}
	snprintf(buf, sizeof(buf), "%s", text);
	int rc = parse_fields(buf, &e, err, err_len);
	if (rc)
		return rc;
	*out = e;
	return 0;
}

/* ---- next firing ------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Lowest set bit at or above from, or -1. */
static int next_bit(uint64_t bits, int from, int max)
{
	for (int i = from; i <= max; i++)
		if (bits & (1ull << i))
			return i;
	return -1;
}

static bool day_matches(const struct cron_expr *e, int64_t day, int mday)
{
	bool dom = e->days & (1u << mday);
	bool dow = e->weekdays & (1u << timeutil_weekday_of_days(day));
	if (e->days_any || e->weekdays_any)
		return dom && dow;
	return dom || dow;
}

/*
 * The first wall-clock minute at or after wall_min (minutes since the epoch
 * in local wall time) that matches e, on a day up to last_day. Skips whole
 * months, days and hours that cannot match.
 */
static bool next_wall_match(const struct cron_expr *e, int64_t wall_min, int64_t last_day,
			    int64_t *out)
{
	int64_t day = floor_div(wall_min, 1440);
	int hour = (int)(wall_min - day * 1440) / 60, minute = (int)(wall_min - day * 1440) % 60;

	while (day <= last_day) {
		int64_t y;
		int m, d;
		timeutil_civil_from_days(day, &y, &m, &d);
		if (!(e->months & (1u << m))) {
			day += timeutil_days_in_month(y, m) - d + 1;
			hour = minute = 0;
			continue;
		}
		int h = day_matches(e, day, d) ? next_bit(e->hours, hour, 23) : -1;
		if (h < 0) {
			day++;
			hour = minute = 0;
			continue;
		}
		int mi = next_bit(e->minutes, h == hour ? minute : 0, 59);
		if (mi < 0) {
			hour = h + 1;
			minute = 0;
			if (hour > 23) {
				day++;
				hour = 0;
			}
			continue;
		}
		*out = day * 1440 + h * 60 + mi;
		return true;
	}
	return false;
}

int cron_next(const struct cron_expr *e, int64_t after_ms, int64_t *out_ms)
{
	if (!e || !out_ms)
		return -EINVAL;
	if (after_ms < TIMEUTIL_MIN_MS || after_ms > TIMEUTIL_MAX_MS)
		return -ERANGE;
	int64_t after_s = floor_div(after_ms, 1000);
	int64_t wall_min = floor_div(timeutil_wall_from_instant(after_s), 60);
	int64_t y;
	int m, d;
	timeutil_civil_from_days(floor_div(wall_min, 1440), &y, &m, &d);
	if (m == 2 && d == 29)
		d = 28;
	int64_t last_day = timeutil_days_from_civil(y + CRON_SEARCH_YEARS, m, d);

	/*
	 * Wall times before after's own wall time map to instants at or before
	 * it, so the search starts there. A match can still map to an instant
	 * not after after_ms while after_ms is in the second pass of a repeated
	 * hour; the loop walks past those, a bounded number of minutes.
	 */
	for (int i = 0; i < 3 * 1440; i++) {
		int64_t match;
		if (!next_wall_match(e, wall_min, last_day, &match))
			return -ENOENT;
		int64_t t_s = timeutil_instant_from_wall(match * 60);
		if (t_s > after_s) {
			*out_ms = t_s * 1000;
			return 0;
		}
		wall_min = match + 1;
	}
	return -ENOENT;
}
