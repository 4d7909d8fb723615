/*
 * Light unit conversions; see convert.h.
 */
#include "convert.h"

#include <math.h>

static int clampi(long v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

int conv_pct_from_bright(double bright)
{
	if (!(bright >= 0))
		bright = 0;
	return clampi(lround(bright * 100.0 / CONV_BRIGHT_MAX), 1, 100);
}

int conv_bright_from_pct(int pct, int hint)
{
	pct = clampi(pct, 0, 100);
	if (hint >= 0 && hint <= CONV_BRIGHT_MAX && conv_pct_from_bright(hint) == pct)
		return hint;
	return clampi(lround(pct * (double)CONV_BRIGHT_MAX / 100.0), 0, CONV_BRIGHT_MAX);
}

int conv_kelvin_from_mired(double mired, int kmin, int kmax)
{
	if (!(mired >= 1))
		return kmax;
	return clampi(lround(1e6 / mired), kmin, kmax);
}

int conv_mired_from_kelvin(int kelvin, int hint, int kmin, int kmax)
{
	if (kelvin < 1)
		kelvin = kmax;
	if (hint > 0 && conv_kelvin_from_mired(hint, kmin, kmax) == clampi(kelvin, kmin, kmax))
		return hint;
	return (int)lround(1e6 / kelvin);
}

void conv_rgb_split(long rgb, int *r, int *g, int *b)
{
	rgb = rgb < 0 ? 0 : rgb & 0xffffff;
	*r = (int)(rgb >> 16) & 0xff;
	*g = (int)(rgb >> 8) & 0xff;
	*b = (int)rgb & 0xff;
}

long conv_rgb_join(int r, int g, int b)
{
	return ((long)clampi(r, 0, 255) << 16) | ((long)clampi(g, 0, 255) << 8) | clampi(b, 0, 255);
}
