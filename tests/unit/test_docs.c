/*
 * Every JSON example in docs/rules.md is a rule or a scene that hearth
 * accepts, against a house of devices with the names the docs use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "rules_stub.h"
#include "scenes.h"

static const char *const on_off[] = {"ON", "OFF"};
static const char *const actions[] = {"single", "double", "hold", "release"};

#define BIN_ONOFF(n) {.name = n, .type = HEARTH_CAP_BINARY, .access = 7, .value_on = HEARTH_STRING("ON"), .value_off = HEARTH_STRING("OFF")}
#define BIN_BOOL(n, acc) {.name = n, .type = HEARTH_CAP_BINARY, .access = acc, .value_on = HEARTH_BOOL(true), .value_off = HEARTH_BOOL(false)}
#define NUM(n, lo, hi, acc) {.name = n, .type = HEARTH_CAP_NUMERIC, .access = acc, .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX, .min = lo, .max = hi}

static const struct hearth_capability light[] = {
	BIN_ONOFF("state"), NUM("brightness", 0, 254, 7), NUM("color_temp", 150, 500, 7),
	NUM("transition", 0, 3600, 2)};
static const struct hearth_capability motion[] = {BIN_BOOL("occupancy", 5),
						  NUM("illuminance", 0, 100000, 5)};
static const struct hearth_capability thermo[] = {NUM("temperature", -40, 80, 5),
						  NUM("humidity", 0, 100, 5)};
static const struct hearth_capability plug[] = {BIN_ONOFF("state"), NUM("power", 0, 3680, 5)};
static const struct hearth_capability contact[] = {BIN_BOOL("contact", 5)};
static const struct hearth_capability leak[] = {BIN_BOOL("water_leak", 5)};
static const struct hearth_capability button[] = {
	{.name = "action", .type = HEARTH_CAP_ENUM, .access = 1, .values = actions, .n_values = 4}};

static const struct {
	const char *name;
	const struct hearth_capability *caps;
	size_t n;
} house[] = {
	{"hall/motion", motion, 2},	  {"hall/light", light, 4},	 {"lounge/lamp", light, 4},
	{"bedroom/lamp", light, 4},	  {"lounge/thermometer", thermo, 2},
	{"lounge/fan-plug", plug, 2},	  {"front/door", contact, 1},	 {"kitchen/leak", leak, 1},
	{"garden/valve", plug, 2},	  {"bedroom/button", button, 1},
};


static struct registry *make_house(void)
{
	struct registry *reg = registry_new();
	assert_non_null(reg);
	for (size_t i = 0; i < sizeof(house) / sizeof(house[0]); i++) {
		char id[64], err[200];
		struct device *dev;
		struct cap *caps;
		snprintf(id, sizeof(id), "doc:%zu", i);
		assert_int_equal(registry_add(reg, id, house[i].name, "doc", &dev, err, sizeof(err)), 0);
		assert_int_equal(cap_array_from_abi(house[i].caps, house[i].n, &caps, err, sizeof(err)), 0);
		registry_set_caps(dev, caps, house[i].n);
	}
	(void)on_off;
	return reg;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[256 * 1024];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void test_rules_doc_examples(void **state)
{
	(void)state;
	struct registry *reg = make_house();
	struct rules *rules = rules_new(&rules_stub_host, reg);
	struct scenes *scenes = scenes_new(reg);
	char *doc = read_all("docs/rules.md");
	int n_rules = 0, n_scenes = 0;
	for (char *p = strstr(doc, "```json\n"); p; p = strstr(p, "```json\n")) {
		p += 8;
		char *end = strstr(p, "```");
		assert_non_null(end);
		*end = '\0';
		cJSON *j = cJSON_Parse(p);
		if (!j)
			fail_msg("docs/rules.md: a JSON example does not parse:\n%s", p);
		char err[400] = "";
		if (cJSON_GetObjectItem(j, "targets")) {
			if (scenes_add(scenes, j, err, sizeof(err)) != 0)
				fail_msg("docs/rules.md: scene refused: %s", err);
			n_scenes++;
		} else {
			if (rules_add(rules, j, RULES_SOURCE_API, err, sizeof(err)) != 0)
				fail_msg("docs/rules.md: rule refused: %s", err);
			n_rules++;
		}
		cJSON_Delete(j);
		p = end + 3;
	}
	/* every trigger, condition and action type has an example */
	assert_true(n_rules >= 13);
	assert_true(n_scenes >= 1);
	rules_free(rules);
	scenes_free(scenes);
	registry_free(reg);
}

int main(void)
{
	setenv("TZ", "Europe/Amsterdam", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_doc_examples),
	};
	return cmocka_run_group_tests_name("docs examples", tests, NULL, NULL);
}
