/*
 * libFuzzer target for the ble plugin's BTHome v2 decoder (service data after the 0xFCD2 UUID).
 * The first input byte picks the key (none, 16 bytes, 12 bytes) and whether
 * the advertiser MAC is known; the rest is the service data.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_ble_bthome.c \
 *       plugins/ble/ad.c plugins/ble/fields.c plugins/ble/ccm.c plugins/ble/bthome.c \
 *       plugins/ble/mibeacon.c plugins/ble/pvvx.c $(pkg-config --libs libcrypto) -lm \
 *       -o fuzz_ble_bthome
 *   ./fuzz_ble_bthome tests/fuzz/corpus/ble_bthome
 * fuzz-sources: plugins/ble/ad.c plugins/ble/fields.c plugins/ble/ccm.c plugins/ble/bthome.c plugins/ble/mibeacon.c plugins/ble/pvvx.c
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/ble/ble.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key16[16] = {0xe9, 0xea, 0x89, 0x5f, 0xac, 0x7c, 0xca, 0x6d,
				  0x30, 0x53, 0x24, 0x32, 0xa5, 0x16, 0xf3, 0xa8};
static const uint8_t mac[6] = {0xa4, 0xc1, 0x38, 0x02, 0x83, 0xf4};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ble_reading r;
	if (size < 1 || size > BLE_AD_MAX + 1)
		return 0;
	static const size_t key_lens[] = {0, 16, 12, 0};
	size_t key_len = key_lens[data[0] & 3];
	int rc = bthome_decode(data + 1, size - 1, (data[0] & 4) ? NULL : mac, key_len ? key16 : NULL,
		     key_len, &r);
	size_t sum = 0;
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		if (ble_fields[r.v[i].field].kind == BLE_TEXT)
			sum += strlen(ble_value_text(&r, &r.v[i]));
	return sum == (size_t)-1;
}
