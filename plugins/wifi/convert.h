/*
 * Unit conversions between what Wi-Fi lights speak and hearth's light
 * attributes, which follow zigbee2mqtt: brightness 0..254 and colour
 * temperature in mired. Devices speak brightness in percent (1..100) and
 * colour temperature in kelvin.
 *
 * A round trip 0..254 -> percent -> 0..254 loses precision (120 -> 47 % ->
 * 119). The *_from_* functions take a hint, the last value hearth set (-1:
 * none): when the device's value is what that hint turns into, the hint is
 * reported back unchanged, so a light set to 120 reads 120.
 */
#ifndef WIFI_CONVERT_H
#define WIFI_CONVERT_H

#define CONV_BRIGHT_MAX 254
#define CONV_KELVIN_MIN 1700
#define CONV_KELVIN_MAX 6500

/* 0..254 -> 1..100 % (0 is the dimmest a device can go, 1 %). */
int conv_pct_from_bright(double bright);
/* 1..100 % -> 0..254, keeping hint when it maps to the same percent. */
int conv_bright_from_pct(int pct, int hint);
/* mired -> kelvin, clamped to kmin..kmax. */
int conv_kelvin_from_mired(double mired, int kmin, int kmax);
/* kelvin -> mired, keeping hint when it maps to the same kelvin (within
 * the device's clamp). */
int conv_mired_from_kelvin(int kelvin, int hint, int kmin, int kmax);
/* 0xRRGGBB <-> parts. */
void conv_rgb_split(long rgb, int *r, int *g, int *b);
long conv_rgb_join(int r, int g, int b);

#endif
