/*
 * libFuzzer target for Yeelight discovery text: the bytes as a search
 * answer or an advertisement (NOTIFY), then the capabilities and
 * attributes a bulb so described would get.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_yeelight_discovery.c plugins/wifi/yeelight_codec.c \
 *       plugins/wifi/convert.c $(pkg-config --libs libcjson) -lm -o fuzz_yeelight_discovery
 *   ./fuzz_yeelight_discovery tests/fuzz/corpus/yeelight_discovery
 * fuzz-sources: plugins/wifi/yeelight_codec.c plugins/wifi/convert.c
 */
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/wifi/yeelight_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct yl_discovery d;
	struct hearth_capability caps[8];
	struct hearth_attr attrs[8];
	char color[160];
	if (yl_discovery_parse((const char *)data, size, &d) != 0)
		return 0;
	(void)yl_caps_build(d.support, d.model, caps, 8);
	(void)yl_props_attrs(&d.props, ~0u, d.support, d.model, NULL, attrs, 8, color,
			     sizeof(color));
	return 0;
}
