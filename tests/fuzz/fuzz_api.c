/*
 * libFuzzer target for what arrives on the hub's own topics: the topic
 * parser (first line of the input), the JSON limits and parser (the rest),
 * and validation of every attribute of a /set against each capability kind.
 * fuzz-sources: core
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "capability.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const modes[] = {"auto", "heat", "off"};
static const struct hearth_capability color_feats[] = {
	{.name = "x", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = 3, .min = 0, .max = 1},
	{.name = "y", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = 3, .min = 0, .max = 1}};
static const struct hearth_capability abi_caps[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7, .value_on = HEARTH_STRING("ON"),
	 .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = 7, .min = 0,
	 .max = 254, .step = 1},
	{.name = "mode", .type = HEARTH_CAP_ENUM, .access = 7, .values = modes, .n_values = 3},
	{.name = "label", .type = HEARTH_CAP_TEXT, .access = 7},
	{.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = 7, .features = color_feats,
	 .n_features = 2},
	{.name = "zones", .type = HEARTH_CAP_LIST, .access = 7},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cap *caps;
	static size_t n_caps;
	if (!caps) {
		char err[200];
		n_caps = sizeof(abi_caps) / sizeof(abi_caps[0]);
		if (cap_array_from_abi(abi_caps, n_caps, &caps, err, sizeof(err)))
			return 0;
	}
	const uint8_t *nl = memchr(data, '\n', size);
	size_t topic_len = nl ? (size_t)(nl - data) : size;
	char topic[600];
	if (topic_len < sizeof(topic)) {
		memcpy(topic, data, topic_len);
		topic[topic_len] = '\0';
		struct api_topic t;
		(void)api_topic_parse("hearth", topic, &t);
	}
	const uint8_t *body = nl ? nl + 1 : data + size;
	size_t len = nl ? size - topic_len - 1 : 0;
	cJSON *j = NULL;
	char err[300];
	if (api_json_parse(body, len, &j, err, sizeof(err)) != 0)
		return 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, j)
	{
		for (size_t i = 0; i < n_caps; i++) {
			cJSON *out = NULL;
			if (cap_validate_value(&caps[i], item, NULL, &out, err, sizeof(err)) == 0)
				cJSON_Delete(out);
		}
	}
	cJSON_Delete(j);
	return 0;
}
