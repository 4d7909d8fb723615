/*
 * libFuzzer target for the Wi-Fi plugin's configuration texts: the bytes
 * as a miIO devices file and as a yeelight_devices host list.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Iinclude $(pkg-config --cflags libcjson) \
 *       tests/fuzz/fuzz_wifi_config.c plugins/wifi/wifi_config.c plugins/wifi/miio_codec.c \
 *       $(pkg-config --libs libcjson libcrypto) -o fuzz_wifi_config
 *   ./fuzz_wifi_config tests/fuzz/corpus/wifi_config
 * fuzz-sources: plugins/wifi/wifi_config.c plugins/wifi/miio_codec.c
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/wifi/wifi_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct miio_conf confs[WIFI_MIIO_DEVICES_MAX];
	struct host_port hosts[WIFI_YEELIGHT_MAX];
	char err[200];
	size_t n = 0;
	(void)wifi_devices_parse((const char *)data, size, confs, WIFI_MIIO_DEVICES_MAX, &n, err,
				 sizeof(err));
	char *text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	(void)wifi_hosts_parse(text, 55443, hosts, WIFI_YEELIGHT_MAX, &n, err, sizeof(err));
	free(text);
	return 0;
}
