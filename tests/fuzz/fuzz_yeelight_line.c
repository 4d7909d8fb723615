/*
 * libFuzzer target for the Yeelight control connection: the bytes as one
 * line from a bulb (a result, an error or a props notification), applied
 * to a bulb's state and turned into hearth attributes as the driver does.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_yeelight_line.c plugins/wifi/yeelight_codec.c plugins/wifi/convert.c \
 *       $(pkg-config --libs libcjson) -lm -o fuzz_yeelight_line
 *   ./fuzz_yeelight_line tests/fuzz/corpus/yeelight_line
 * fuzz-sources: plugins/wifi/yeelight_codec.c plugins/wifi/convert.c
 */
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/wifi/yeelight_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct yl_msg m;
	struct yl_props p = {0};
	struct yl_hints h = {120, 300};
	struct hearth_attr attrs[8];
	char color[160];
	if (yl_line_parse((const char *)data, size, &m) != 0)
		return 0;
	if (m.kind == YL_MSG_RESULT)
		(void)yl_get_prop_apply(&m, yl_prop_names, yl_prop_count, &p);
	else if (m.kind == YL_MSG_PROPS)
		p = m.props;
	(void)yl_props_attrs(&p, ~0u, ~0u, "color", &h, attrs, 8, color, sizeof(color));
	(void)yl_props_attrs(&p, ~0u, ~0u, "mono", NULL, attrs, 3, color, 8);
	return 0;
}
