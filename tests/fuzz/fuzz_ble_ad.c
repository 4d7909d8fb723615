/*
 * libFuzzer target for the ble plugin's whole advertisement path: the input
 * is AD data as on air. Every AD structure is walked; each service data
 * payload with a decoder (BTHome, MiBeacon, 0x181A) is decoded without a
 * key, with a 16-byte and with a 12-byte key; the local name is read; the
 * reading goes through numbering and de-duplication.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_ble_ad.c \
 *       plugins/ble/ad.c plugins/ble/fields.c plugins/ble/ccm.c plugins/ble/bthome.c \
 *       plugins/ble/mibeacon.c plugins/ble/pvvx.c plugins/ble/dedup.c \
 *       $(pkg-config --libs libcrypto) -lm -o fuzz_ble_ad
 *   ./fuzz_ble_ad tests/fuzz/corpus/ble_ad
 * fuzz-sources: plugins/ble/ad.c plugins/ble/fields.c plugins/ble/ccm.c plugins/ble/bthome.c plugins/ble/mibeacon.c plugins/ble/pvvx.c plugins/ble/dedup.c
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/ble/ble.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key16[16] = {0x23, 0x1d, 0x39, 0xc1, 0xd7, 0xcc, 0x1a, 0xb1,
				  0xae, 0xe2, 0x24, 0xcd, 0x09, 0x6d, 0xb9, 0x32};
static const uint8_t mac[6] = {0x54, 0x48, 0xe6, 0x8f, 0x80, 0xa5};

/* Touch every value the way the plugin does, so bad offsets show. */
static size_t consume(const struct ble_reading *r)
{
	size_t sum = 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct ble_value *v = &r->v[i];
		const char *attr = ble_field_attr(v->field);
		sum += attr ? strlen(attr) : 0;
		if (ble_fields[v->field].kind == BLE_TEXT)
			sum += strlen(ble_value_text(r, v));
		if (v->event)
			sum += strlen(v->event);
	}
	return sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ble_reading r;
	static struct ble_dedup dedup;
	char name[32];
	size_t off = 0, n, sum = 0;
	uint8_t type;
	const uint8_t *p;
	if (size > BLE_AD_MAX)
		return 0;
	(void)ble_ad_local_name(data, size, name, sizeof(name));
	while (ble_ad_next(data, size, &off, &type, &p, &n) == 1) {
		if (type != 0x16 || n < 2)
			continue;
		ble_decoder_fn fn = ble_decoder_for(ble_le16(p));
		if (!fn)
			continue;
		static const size_t key_lens[] = {0, 16, 12};
		for (size_t k = 0; k < 3; k++) {
			if (fn(p + 2, n - 2, mac, key_lens[k] ? key16 : NULL, key_lens[k], &r) == 0) {
				sum += consume(&r);
				(void)ble_dedup_check(&dedup, &r, (int64_t)size);
			}
		}
	}
	return sum == (size_t)-1;
}
