/*
 * libFuzzer target for the zigbee plugin's parsers: the same bytes go
 * through bridge/devices (and the exposes mapper for every device, with the
 * firmware capabilities and a group merge), bridge/groups, a device state
 * message with its /set encoding, and an availability payload.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_zigbee.c plugins/zigbee/exposes.c plugins/zigbee/z2m.c \
 *       $(pkg-config --libs libcjson) -lm -o fuzz_zigbee
 *   ./fuzz_zigbee tests/fuzz/corpus/zigbee
 * fuzz-sources: plugins/zigbee/exposes.c plugins/zigbee/z2m.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/zigbee/zigbee.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void devices(const char *text, size_t len)
{
	cJSON *root = NULL;
	struct zentry *list = NULL;
	size_t n = 0;
	struct zskip skip;
	if (z2m_parse_devices(text, len, &root, &list, &n, &skip))
		return;
	struct zcaps group = {0};
	for (size_t i = 0; i < n; i++) {
		struct zcaps z = {0};
		if (zx_map(list[i].exposes, &z, NULL, NULL) == 0 && list[i].supports_ota)
			zx_add_ota(&z);
		for (size_t k = 0; k < z.n; k++) {
			struct hearth_value v = HEARTH_NUMBER(1);
			(void)zx_value_allowed(&z, k, &v);
		}
		zx_merge_specific(&group, &z);
		zx_free(&z);
	}
	zx_free(&group);
	free(list);
	cJSON_Delete(root);
}

static void groups(const char *text, size_t len)
{
	cJSON *root = NULL;
	struct zgroup_entry *list = NULL;
	size_t n = 0;
	if (z2m_parse_groups(text, len, &root, &list, &n) == 0) {
		free(list);
		cJSON_Delete(root);
	}
}

static void state(const char *text, size_t len)
{
	struct zstate s;
	if (z2m_parse_state(text, len, &s))
		return;
	char *out = NULL;
	if (z2m_encode_set(s.attrs, s.n, &out) == 0)
		free(out);
	z2m_state_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* payloads arrive with a length, not NUL-terminated */
	char *text = malloc(size ? size : 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	devices(text, size);
	groups(text, size);
	state(text, size);
	(void)z2m_parse_online(text, size);
	free(text);
	return 0;
}
