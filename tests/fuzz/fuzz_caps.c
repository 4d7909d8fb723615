/*
 * libFuzzer target for stored capability JSON (the form kept in SQLite and
 * published on bridge/devices): parse, and print back what parsed.
 * fuzz-sources: core
 */
#include <stddef.h>
#include <stdint.h>

#include "capability.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	struct cap *caps = NULL;
	size_t n = 0;
	char err[300];
	if (cap_array_from_json(j, &caps, &n, err, sizeof(err)) == 0) {
		cJSON *back = cap_array_to_json(caps, n);
		cJSON_Delete(back);
		cap_array_free(caps, n);
	}
	cJSON_Delete(j);
	return 0;
}
