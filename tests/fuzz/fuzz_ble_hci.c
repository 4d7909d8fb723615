/*
 * libFuzzer target for the ble plugin's HCI event parser (source = hci):
 * the input is one HCI event packet; every advertising report found is
 * walked as AD data, and the command-completion parser runs on it too.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_ble_hci.c \
 *       plugins/ble/ad.c plugins/ble/hci.c -o fuzz_ble_hci
 *   ./fuzz_ble_hci tests/fuzz/corpus/ble_hci
 * fuzz-sources: plugins/ble/ad.c plugins/ble/hci.c
 */
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/ble/ble.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(void *user, const struct ble_advert *adv)
{
	size_t *sum = user, off = 0, n;
	uint8_t type;
	const uint8_t *p;
	while (ble_ad_next(adv->ad, adv->ad_len, &off, &type, &p, &n) == 1)
		*sum += n ? p[n - 1] : type;
	*sum += (size_t)adv->rssi + adv->mac[0];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t sum = 0;
	uint8_t status;
	(void)hci_parse_event(data, size, walk, &sum);
	(void)hci_parse_command_done(data, size, 0x200c, &status);
	(void)hci_parse_command_done(data, size, 0x200b, &status);
	return sum == (size_t)-1;
}
