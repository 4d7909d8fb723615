/*
 * sun: sunrise, sunset and the sun's elevation for a place, after the NOAA
 * solar position algorithm (the one behind NOAA's Solar Calculator: Julian
 * century, geometric mean longitude and anomaly, equation of centre,
 * apparent longitude, corrected obliquity, declination, equation of time).
 * Sunrise and sunset are when the sun's centre is at zenith 90.833 degrees
 * (refraction and the sun's radius). Good to about a minute between the
 * polar circles, less near polar day and night.
 *
 * Pure module: libc and libm only. Local days follow the process's time
 * zone and timeutil's DST rule. Loop thread only.
 */
#ifndef HEARTH_SUN_H
#define HEARTH_SUN_H

#include <stdbool.h>
#include <stdint.h>

/* Largest |offset_ms| sun_next accepts. */
#define SUN_OFFSET_MAX_MS (24 * 3600 * 1000LL)
/* How far ahead sun_next looks, in days. */
#define SUN_SEARCH_DAYS 370

enum sun_event { SUN_SUNRISE, SUN_SUNSET };

/*
 * The sun event on the local calendar day containing day_ms.
 *   lat, lon: degrees, north and east positive, |lat| <= 90, |lon| <= 180.
 *   ev: SUN_SUNRISE or SUN_SUNSET.
 *   out_ms: the instant, untouched on failure. Should the event happen
 *     twice that day (possible only next to polar day or night), the first.
 * Returns 0; -ENOENT when the sun does not rise (or set) that day: polar
 * night (or polar day); -EINVAL for a bad place or event; -ERANGE for day_ms
 * outside TIMEUTIL_MIN_MS..TIMEUTIL_MAX_MS.
 */
int sun_event_on(double lat, double lon, int64_t day_ms, enum sun_event ev, int64_t *out_ms);

/*
 * The first instant strictly after after_ms that is an event ev plus
 * offset_ms ("30 minutes before sunset" is SUN_SUNSET, -30 min), looking up
 * to SUN_SEARCH_DAYS days ahead.
 *   offset_ms: |offset_ms| <= SUN_OFFSET_MAX_MS.
 *   out_ms: the instant, untouched on failure.
 * Returns 0; -ENOENT when no such event comes within the search; -EINVAL
 * for a bad place, event or offset; -ERANGE for after_ms out of range.
 */
int sun_next(double lat, double lon, enum sun_event ev, int64_t offset_ms, int64_t after_ms,
	     int64_t *out_ms);

/*
 * Whether the sun is up at t_ms: its centre above -0.833 degrees, the
 * threshold sunrise and sunset use. False for a bad place.
 */
bool sun_is_up(double lat, double lon, int64_t t_ms);

/*
 * The geometric elevation of the sun's centre above the horizon at t_ms, in
 * degrees (-90..90), without refraction. NAN for a bad place.
 */
double sun_elevation(double lat, double lon, int64_t t_ms);

#endif
