#include "sun.h"

#include <errno.h>
#include <math.h>

#include "timeutil.h"

#define PI 3.14159265358979323846
#define ZENITH_DEG 90.833 /* 0.567 refraction + 0.266 solar radius */
#define JD_UNIX_EPOCH 2440587.5
#define JD_J2000 2451545.0
#define ITERATIONS 5

struct solar {
	double declination_deg;
	double equation_of_time_min;
};

static double rad(double deg)
{
	return deg * PI / 180.0;
}

static double deg(double rad_)
{
	return rad_ * 180.0 / PI;
}

static bool place_ok(double lat, double lon)
{
	return isfinite(lat) && isfinite(lon) && fabs(lat) <= 90.0 && fabs(lon) <= 180.0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The sun's declination and the equation of time at t_s (Unix seconds). */
static void solar_at(double t_s, struct solar *s)
{
	double jc = (t_s / 86400.0 + JD_UNIX_EPOCH - JD_J2000) / 36525.0; /* Julian century */
	double mean_long = fmod(280.46646 + jc * (36000.76983 + jc * 0.0003032), 360.0);
	double mean_anom = 357.52911 + jc * (35999.05029 - 0.0001537 * jc);
	double ecc = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc);
	double m = rad(mean_anom);
	double center = sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc)) +
			sin(2 * m) * (0.019993 - 0.000101 * jc) + sin(3 * m) * 0.000289;
	double omega = rad(125.04 - 1934.136 * jc);
	double app_long = mean_long + center - 0.00569 - 0.00478 * sin(omega);
	double mean_obliq =
		23.0 +
		(26.0 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60.0) / 60.0;
	double obliq = rad(mean_obliq + 0.00256 * cos(omega));
	double y = tan(obliq / 2) * tan(obliq / 2);
	double l0 = rad(mean_long);

	s->declination_deg = deg(asin(sin(obliq) * sin(rad(app_long))));
	s->equation_of_time_min =
		4.0 * deg(y * sin(2 * l0) - 2 * ecc * sin(m) + 4 * ecc * y * sin(m) * cos(2 * l0) -
			  0.5 * y * y * sin(4 * l0) - 1.25 * ecc * ecc * sin(2 * m));
}

/*
 * The event of the solar day whose noon falls near UTC day utc_day, in Unix
 * seconds. Starts from that noon and re-evaluates the sun's position at the
 * estimate, which converges in a few rounds. Near polar day or night the
 * sun may graze the horizon at the event yet miss it at noon, so only the
 * last round decides whether there is an event. False when the sun stays
 * up or down.
 */
static bool event_of_utc_day(double lat, double lon, int64_t utc_day, enum sun_event ev,
			     double *out_s)
{
	double day0 = (double)utc_day * 86400.0;
	double t = day0 + 43200.0 - lon * 240.0;
	for (int i = 0; i < ITERATIONS; i++) {
		struct solar s;
		solar_at(t, &s);
		double dec = rad(s.declination_deg), la = rad(lat);
		double cos_ha = cos(rad(ZENITH_DEG)) / (cos(la) * cos(dec)) - tan(la) * tan(dec);
		if (!(cos_ha >= -1.0 && cos_ha <= 1.0)) {
			if (i == ITERATIONS - 1 || isnan(cos_ha))
				return false;
			cos_ha = cos_ha < 0 ? -1.0 : 1.0;
		}
		double ha = deg(acos(cos_ha));
		double minutes = 720.0 - 4.0 * (lon + (ev == SUN_SUNRISE ? ha : -ha)) -
				 s.equation_of_time_min;
		t = day0 + minutes * 60.0;
	}
	*out_s = t;
	return true;
}

int sun_event_on(double lat, double lon, int64_t day_ms, enum sun_event ev, int64_t *out_ms)
{
	if (!place_ok(lat, lon) || (ev != SUN_SUNRISE && ev != SUN_SUNSET) || !out_ms)
		return -EINVAL;
	if (day_ms < TIMEUTIL_MIN_MS || day_ms > TIMEUTIL_MAX_MS)
		return -ERANGE;
	int64_t wall_day = floor_div(timeutil_wall_from_instant(floor_div(day_ms, 1000)), 86400);
	int64_t start = timeutil_instant_from_wall(wall_day * 86400);
	int64_t end = timeutil_instant_from_wall((wall_day + 1) * 86400);
	int64_t noon_utc_day =
		floor_div(timeutil_instant_from_wall(wall_day * 86400 + 43200), 86400);

	/*
	 * The local day and the UTC days need not line up (Auckland in summer,
	 * Kiribati): take every solar day near it whose event lands inside.
	 */
	bool found = false;
	double best = 0;
	for (int k = -2; k <= 2; k++) {
		double t;
		if (!event_of_utc_day(lat, lon, noon_utc_day + k, ev, &t))
			continue;
		if (t >= (double)start && t < (double)end && (!found || t < best)) {
			best = t;
			found = true;
		}
	}
	if (!found)
		return -ENOENT;
	*out_ms = (int64_t)llround(best * 1000.0);
	return 0;
}

int sun_next(double lat, double lon, enum sun_event ev, int64_t offset_ms, int64_t after_ms,
	     int64_t *out_ms)
{
	if (!place_ok(lat, lon) || (ev != SUN_SUNRISE && ev != SUN_SUNSET) || !out_ms)
		return -EINVAL;
	if (offset_ms < -SUN_OFFSET_MAX_MS || offset_ms > SUN_OFFSET_MAX_MS)
		return -EINVAL;
	if (after_ms < TIMEUTIL_MIN_MS || after_ms > TIMEUTIL_MAX_MS)
		return -ERANGE;

	/*
	 * An event past after_ms - offset_ms lies on that instant's local day
	 * or later; events move forward day by day, so the first one wins.
	 */
	int64_t first = floor_div(after_ms - offset_ms, 1000);
	int64_t wall_day = floor_div(timeutil_wall_from_instant(first), 86400);
	for (int i = 0; i <= SUN_SEARCH_DAYS; i++, wall_day++) {
		int64_t noon_ms = timeutil_instant_from_wall(wall_day * 86400 + 43200) * 1000;
		int64_t t_ms;
		if (noon_ms < TIMEUTIL_MIN_MS || noon_ms > TIMEUTIL_MAX_MS)
			break;
		if (sun_event_on(lat, lon, noon_ms, ev, &t_ms) == 0 &&
		    t_ms + offset_ms > after_ms) {
			*out_ms = t_ms + offset_ms;
			return 0;
		}
	}
	return -ENOENT;
}

double sun_elevation(double lat, double lon, int64_t t_ms)
{
	if (!place_ok(lat, lon))
		return NAN;
	struct solar s;
	double t_s = (double)t_ms / 1000.0;
	solar_at(t_s, &s);
	double utc_min = fmod(t_s, 86400.0) / 60.0;
	if (utc_min < 0)
		utc_min += 1440.0;
	double hour_angle = (utc_min + s.equation_of_time_min + 4.0 * lon) / 4.0 - 180.0;
	double la = rad(lat), dec = rad(s.declination_deg);
	double cos_zenith = sin(la) * sin(dec) + cos(la) * cos(dec) * cos(rad(hour_angle));
	if (cos_zenith > 1.0)
		cos_zenith = 1.0;
	if (cos_zenith < -1.0)
		cos_zenith = -1.0;
	return 90.0 - deg(acos(cos_zenith));
}

bool sun_is_up(double lat, double lon, int64_t t_ms)
{
	double elevation = sun_elevation(lat, lon, t_ms);
	return !isnan(elevation) && elevation > 90.0 - ZENITH_DEG;
}
