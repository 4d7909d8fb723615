/*
 * libFuzzer target for what a browser sends the dashboard: WebSocket frames
 * (the first byte picks frame or path) and request paths mapped to files.
 * Whatever parses is echoed back the way the server would.
 * fuzz-sources: core
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "web_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		struct web_frame f;
		char err[256];
		if (web_frame_parse("hearth", data + 1, size - 1, &f, err, sizeof(err)) == 0) {
			char *msg = web_frame_message(f.topic, f.payload, f.payload_len, false);
			free(msg);
			(void)web_topic_retained("hearth", f.topic);
			web_frame_clear(&f);
		} else {
			free(web_frame_error(err, NULL));
		}
		return 0;
	}
	char path[1024], rel[512];
	size_t n = size - 1 < sizeof(path) - 1 ? size - 1 : sizeof(path) - 1;
	memcpy(path, data + 1, n);
	path[n] = '\0';
	const char *mime = NULL;
	if (web_path_map(path, rel, sizeof(rel), &mime) == 0)
		(void)web_path_public(rel);
	return 0;
}
