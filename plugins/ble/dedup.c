/*
 * Which packets are new. Devices repeat each advertisement several times
 * (MiBeacon asks for 8 repeats of an event) so that one gets through; a
 * repeat must not be reported again, or a button press would fire twice.
 *
 * - An encryption counter (BTHome, MiBeacon v4/v5) must grow. An equal one
 *   is a repeat; a smaller one is a replay, except a restart from a small
 *   value (a battery change, or the wrap after 0xFFFFFFFF).
 * - An 8-bit packet id / frame counter: the same value is a repeat; a value
 *   up to 64 behind is a late repeat, unless the device was silent long
 *   enough to have restarted.
 */
#include "ble.h"

#define RESTART_BELOW 100	  /* an encryption counter this small may restart */
#define BEHIND_WINDOW 64	  /* packet ids this far behind are old repeats */
#define RESTART_SILENCE_MS 4000	  /* silence after which an old id is a restart */
#define SAME_ID_SILENCE_MS 600000 /* silence after which the same id is news */

static enum ble_verdict check32(const struct ble_dedup *d, uint32_t counter)
{
	if (!d->has32 || counter > d->last32)
		return BLE_NEW;
	if (counter == d->last32)
		return BLE_DUPLICATE;
	return counter < RESTART_BELOW ? BLE_NEW : BLE_REPLAY;
}

static enum ble_verdict check8(const struct ble_dedup *d, uint8_t id, int64_t now_ms)
{
	if (!d->has8)
		return BLE_NEW;
	int64_t silence = now_ms - d->last_ms;
	uint8_t ahead = (uint8_t)(id - d->last8);
	if (ahead == 0)
		return silence >= SAME_ID_SILENCE_MS ? BLE_NEW : BLE_DUPLICATE;
	if (ahead > 256 - BEHIND_WINDOW && silence < RESTART_SILENCE_MS)
		return BLE_DUPLICATE;
	return BLE_NEW;
}

enum ble_verdict ble_dedup_check(struct ble_dedup *d, const struct ble_reading *r, int64_t now_ms)
{
	enum ble_verdict v = BLE_NEW;
	if (r->has_counter32)
		v = check32(d, r->counter32);
	/* With an encryption counter the 8-bit id only tells repeats apart
	 * when the counter itself did not move. */
	if (v == BLE_NEW && r->has_counter8 && !r->has_counter32)
		v = check8(d, r->counter8, now_ms);
	if (v != BLE_NEW)
		return v;
	if (r->has_counter32) {
		d->has32 = true;
		d->last32 = r->counter32;
	}
	if (r->has_counter8) {
		d->has8 = true;
		d->last8 = r->counter8;
	}
	d->last_ms = now_ms;
	return BLE_NEW;
}
