/*
 * libFuzzer target for the ble plugin's text parsers: the input, as text,
 * goes line by line through the replay-line parser (source = replay:PATH)
 * and as a whole through the keys-file parser.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude tests/fuzz/fuzz_ble_text.c \
 *       plugins/ble/ad.c plugins/ble/keys.c plugins/ble/replay.c -o fuzz_ble_text
 *   ./fuzz_ble_text tests/fuzz/corpus/ble_text
 * fuzz-sources: plugins/ble/ad.c plugins/ble/keys.c plugins/ble/replay.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/ble/ble.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	static struct ble_replay_line line;
	char buf[BLE_REPLAY_LINE_MAX + 2];
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		if (n < sizeof(buf)) {
			memcpy(buf, p, n);
			buf[n] = '\0';
			const char *why = NULL;
			(void)ble_replay_parse(buf, &line, &why);
		}
		p += n + (p[n] == '\n');
	}
	struct ble_keyring ring = {0};
	char err[200];
	if (ble_keys_parse(text, &ring, err, sizeof(err)) == 0 && ring.n)
		(void)ble_keys_find(&ring, ring.keys[0].mac);
	ble_keys_free(&ring);
	free(text);
	return 0;
}
