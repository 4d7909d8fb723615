/*
 * libFuzzer target for rule and scene definitions: compile them against a
 * small house, list them back, and push a few state changes, events and
 * ticks through the engine so runs, waits and timers are exercised too.
 * fuzz-sources: core
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rules.h"
#include "../unit/rules_stub.h"
#include "scenes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const struct hearth_capability light[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY, .access = 7, .value_on = HEARTH_STRING("ON"),
	 .value_off = HEARTH_STRING("OFF")},
	{.name = "brightness", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = 3, .min = 0,
	 .max = 254}};
static const struct hearth_capability sensor[] = {
	{.name = "occupancy", .type = HEARTH_CAP_BINARY, .access = 5, .value_on = HEARTH_BOOL(true),
	 .value_off = HEARTH_BOOL(false)},
	{.name = "illuminance", .type = HEARTH_CAP_NUMERIC, .access = 5}};

static struct registry *house(void)
{
	struct registry *reg = registry_new();
	struct device *d;
	struct cap *caps;
	char err[200];
	registry_add(reg, "f:light", "hall/light", "f", &d, err, sizeof(err));
	cap_array_from_abi(light, 2, &caps, err, sizeof(err));
	registry_set_caps(d, caps, 2);
	registry_add(reg, "f:motion", "hall/motion", "f", &d, err, sizeof(err));
	cap_array_from_abi(sensor, 2, &caps, err, sizeof(err));
	registry_set_caps(d, caps, 2);
	return reg;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cJSON *j = cJSON_ParseWithLength((const char *)data, size);
	if (!j)
		return 0;
	struct registry *reg = house();
	struct rules *r = rules_new(&rules_stub_host, reg);
	struct scenes *sc = scenes_new(reg);
	char err[400];
	cJSON *one = cJSON_IsArray(j) ? j->child : j;
	for (; one; one = cJSON_IsArray(j) ? one->next : NULL) {
		if (cJSON_GetObjectItem(one, "targets"))
			scenes_add(sc, one, err, sizeof(err));
		else
			rules_add(r, one, RULES_SOURCE_API, err, sizeof(err));
	}
	rules_start(r);
	struct device *motion = registry_by_id(reg, "f:motion");
	for (int i = 0; i < 4; i++) {
		struct hearth_attr a[2] = {{"occupancy", HEARTH_BOOL(i % 2 == 0)},
					   {"illuminance", HEARTH_NUMBER(i * 20)}};
		const char *changed_names[2];
		int n = registry_merge(motion, a, 2, changed_names);
		if (n > 0)
			rules_on_state(r, motion, changed_names, (size_t)n);
		rules_on_event(r, motion, "action", NULL);
		rules_on_mqtt(r, "a/b", "{\"x\":1}", 7);
		rules_stub_now_ms += 61000;
		rules_tick(r);
	}
	cJSON *list = rules_to_json(r);
	cJSON_Delete(list);
	list = scenes_to_json(sc);
	cJSON_Delete(list);
	rules_free(r);
	scenes_free(sc);
	registry_free(reg);
	cJSON_Delete(j);
	return 0;
}
