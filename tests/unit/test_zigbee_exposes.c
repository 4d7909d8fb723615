/*
 * The zigbee plugin's exposes mapper: every expose kind, the flattening of
 * specific kinds, colour composites, presets, numeric enums, triggers, group
 * merging, limits, and malformed or unknown exposes (logged with their JSON,
 * never a crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../plugins/zigbee/exposes.c"

struct warned {
	int n;
	char why[8][128];
	char json[8][512];
};

static void on_warn(void *user, const char *why, const cJSON *expose)
{
	struct warned *w = user;
	if (w->n < 8) {
		snprintf(w->why[w->n], sizeof(w->why[0]), "%s", why);
		char *j = cJSON_PrintUnformatted(expose);
		snprintf(w->json[w->n], sizeof(w->json[0]), "%s", j ? j : "");
		cJSON_free(j);
	}
	w->n++;
}

/* Map exposes given as JSON text. */
static void map_json(const char *json, struct zcaps *z, struct warned *w)
{
	cJSON *e = cJSON_Parse(json);
	assert_non_null(e);
	memset(z, 0, sizeof(*z));
	memset(w, 0, sizeof(*w));
	assert_int_equal(zx_map(e, z, on_warn, w), 0);
	cJSON_Delete(e);
	assert_int_equal((int)z->n_unmapped, w->n);
}

static const struct hearth_capability *cap(const struct zcaps *z, const char *name)
{
	int i = zx_find(z, name);
	if (i < 0)
		fail_msg("no capability %s", name);
	return &z->caps[i];
}

static void test_binary(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("[{\"type\":\"binary\",\"name\":\"occupancy\",\"property\":\"occupancy\","
		 "\"access\":1,\"value_on\":true,\"value_off\":false,\"description\":\"Moving\"},"
		 "{\"type\":\"binary\",\"name\":\"state\",\"property\":\"state_l1\",\"access\":7,"
		 "\"value_on\":\"ON\",\"value_off\":\"OFF\",\"value_toggle\":\"TOGGLE\"}]",
		 &z, &w);
	assert_int_equal(z.n, 2);
	const struct hearth_capability *c = cap(&z, "occupancy");
	assert_int_equal(c->type, HEARTH_CAP_BINARY);
	assert_int_equal(c->access, HEARTH_ACCESS_PUBLISHED);
	assert_int_equal(c->value_on.type, HEARTH_VALUE_BOOL);
	assert_true(c->value_on.u.boolean);
	assert_false(c->value_off.u.boolean);
	assert_string_equal(c->description, "Moving");
	c = cap(&z, "state_l1"); /* named by property, not by name */
	assert_int_equal(c->access, 7);
	assert_int_equal(c->value_on.type, HEARTH_VALUE_STRING);
	assert_string_equal(c->value_on.u.string, "ON");
	assert_string_equal(c->value_off.u.string, "OFF");
	zx_free(&z);
}

static void test_numeric(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("[{\"type\":\"numeric\",\"property\":\"color_temp\",\"access\":7,\"unit\":\"mired\","
		 "\"value_min\":153,\"value_max\":500,\"value_step\":1,\"label\":\"Colour temp\","
		 "\"presets\":[{\"name\":\"coolest\",\"value\":153},{\"name\":\"warmest\",\"value\":500},"
		 "{\"name\":\"bad\"}]},"
		 "{\"type\":\"numeric\",\"property\":\"temperature\",\"access\":5,\"unit\":\"°C\"},"
		 "{\"type\":\"numeric\",\"property\":\"flat\",\"value_step\":0}]",
		 &z, &w);
	assert_int_equal(z.n, 3);
	const struct hearth_capability *c = cap(&z, "color_temp");
	assert_int_equal(c->type, HEARTH_CAP_NUMERIC);
	assert_int_equal(c->flags, HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX | HEARTH_CAP_HAS_STEP);
	assert_true(c->min == 153 && c->max == 500 && c->step == 1);
	assert_string_equal(c->unit, "mired");
	/* no description: the label; presets follow it */
	assert_string_equal(c->description, "Colour temp. Presets: coolest=153, warmest=500");
	c = cap(&z, "temperature");
	assert_int_equal(c->flags, 0);
	assert_string_equal(c->unit, "°C");
	assert_int_equal(c->access, 5);
	assert_int_equal(cap(&z, "flat")->flags, 0); /* a zero step says nothing */
	assert_int_equal(cap(&z, "flat")->access, HEARTH_ACCESS_PUBLISHED);
	zx_free(&z);
}

static void test_enum_kinds(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("[{\"type\":\"enum\",\"property\":\"system_mode\",\"access\":7,"
		 "\"values\":[\"off\",\"heat\",\"off\"]},"
		 "{\"type\":\"enum\",\"property\":\"trv_mode\",\"access\":7,\"values\":[1,2,5]},"
		 "{\"type\":\"enum\",\"property\":\"selftest\",\"access\":2,\"values\":[\"\"]}]",
		 &z, &w);
	assert_int_equal(z.n, 3);
	const struct hearth_capability *c = cap(&z, "system_mode");
	assert_int_equal(c->type, HEARTH_CAP_ENUM);
	assert_int_equal(c->n_values, 2); /* a repeated value once */
	assert_string_equal(c->values[1], "heat");
	/* an enum of numbers stays numbers: a range, and the exact list */
	int i = zx_find(&z, "trv_mode");
	c = &z.caps[i];
	assert_int_equal(c->type, HEARTH_CAP_NUMERIC);
	assert_true(c->min == 1 && c->max == 5);
	assert_non_null(strstr(c->description, "One of: 1, 2, 5"));
	struct hearth_value v = HEARTH_NUMBER(2);
	assert_true(zx_value_allowed(&z, (size_t)i, &v));
	v = HEARTH_NUMBER(3);
	assert_false(zx_value_allowed(&z, (size_t)i, &v));
	/* a trigger: a text that takes only "" */
	i = zx_find(&z, "selftest");
	assert_int_equal(z.caps[i].type, HEARTH_CAP_TEXT);
	assert_int_equal(z.caps[i].access, HEARTH_ACCESS_SET);
	v = HEARTH_STRING("");
	assert_true(zx_value_allowed(&z, (size_t)i, &v));
	v = HEARTH_STRING("go");
	assert_false(zx_value_allowed(&z, (size_t)i, &v));
	/* anything else the hub validated passes */
	i = zx_find(&z, "system_mode");
	v = HEARTH_STRING("heat");
	assert_true(zx_value_allowed(&z, (size_t)i, &v));
	zx_free(&z);
}

static void test_text_list_composite(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("[{\"type\":\"text\",\"property\":\"schedule_settings\",\"access\":7},"
		 "{\"type\":\"list\",\"property\":\"zones\",\"access\":2,\"item_type\":{\"type\":"
		 "\"composite\",\"name\":\"z\",\"features\":[]}},"
		 "{\"type\":\"composite\",\"property\":\"level_config\",\"access\":7,\"features\":["
		 "{\"type\":\"binary\",\"property\":\"execute_if_off\",\"access\":7,\"value_on\":true,"
		 "\"value_off\":false},{\"type\":\"list\",\"property\":\"zones\",\"access\":2}]}]",
		 &z, &w);
	assert_int_equal(z.n, 3);
	assert_int_equal(cap(&z, "schedule_settings")->type, HEARTH_CAP_TEXT);
	assert_int_equal(cap(&z, "zones")->type, HEARTH_CAP_LIST);
	const struct hearth_capability *c = cap(&z, "level_config");
	assert_int_equal(c->type, HEARTH_CAP_COMPOSITE);
	assert_int_equal(c->n_features, 2);
	assert_string_equal(c->features[0].name, "execute_if_off");
	assert_int_equal(c->features[1].type, HEARTH_CAP_LIST);
	zx_free(&z);
}

static const char light[] =
	"[{\"type\":\"light\",\"features\":["
	"{\"type\":\"binary\",\"property\":\"state\",\"access\":7,\"value_on\":\"ON\",\"value_off\":"
	"\"OFF\"},"
	"{\"type\":\"numeric\",\"property\":\"brightness\",\"access\":7,\"value_min\":0,"
	"\"value_max\":254},"
	"{\"type\":\"composite\",\"name\":\"color_xy\",\"property\":\"color\",\"access\":7,"
	"\"features\":[{\"type\":\"numeric\",\"property\":\"x\",\"access\":7},"
	"{\"type\":\"numeric\",\"property\":\"y\",\"access\":7}]},"
	"{\"type\":\"composite\",\"name\":\"color_hs\",\"property\":\"color\",\"access\":7,"
	"\"features\":[{\"type\":\"numeric\",\"property\":\"hue\",\"access\":7},"
	"{\"type\":\"numeric\",\"property\":\"saturation\",\"access\":7}]}]},"
	"{\"type\":\"numeric\",\"property\":\"linkquality\",\"access\":1}]";

static void test_light_flattened(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json(light, &z, &w);
	/* state, brightness, color, transition, linkquality */
	assert_int_equal(z.n, 5);
	const struct hearth_capability *c = cap(&z, "color");
	assert_int_equal(c->type, HEARTH_CAP_COMPOSITE);
	assert_int_equal(c->n_features, 4);
	assert_string_equal(c->features[2].name, "hue");
	c = cap(&z, "transition");
	assert_int_equal(c->access, HEARTH_ACCESS_SET);
	assert_true(z.meta[zx_find(&z, "state")].specific);
	assert_true(z.meta[zx_find(&z, "transition")].specific);
	assert_false(z.meta[zx_find(&z, "linkquality")].specific);
	zx_free(&z);
}

static void test_specific_kinds(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("[{\"type\":\"switch\",\"endpoint\":\"l1\",\"features\":[{\"type\":\"binary\","
		 "\"property\":\"state_l1\",\"access\":7,\"value_on\":\"ON\",\"value_off\":\"OFF\"}]},"
		 "{\"type\":\"switch\",\"endpoint\":\"l2\",\"features\":[{\"type\":\"binary\","
		 "\"property\":\"state_l2\",\"access\":7,\"value_on\":\"ON\",\"value_off\":\"OFF\"}]},"
		 "{\"type\":\"lock\",\"features\":[{\"type\":\"binary\",\"property\":\"lock_state\","
		 "\"access\":3,\"value_on\":\"LOCK\",\"value_off\":\"UNLOCK\"}]},"
		 "{\"type\":\"cover\",\"features\":[{\"type\":\"enum\",\"property\":\"state\","
		 "\"access\":3,\"values\":[\"OPEN\",\"CLOSE\",\"STOP\"]},{\"type\":\"numeric\","
		 "\"property\":\"position\",\"access\":7,\"value_min\":0,\"value_max\":100}]},"
		 "{\"type\":\"climate\",\"features\":[{\"type\":\"numeric\",\"property\":"
		 "\"occupied_heating_setpoint\",\"access\":7}]},"
		 "{\"type\":\"fan\",\"features\":[{\"type\":\"enum\",\"property\":\"fan_mode\","
		 "\"access\":7,\"values\":[\"low\",\"high\"]}]}]",
		 &z, &w);
	assert_int_equal(w.n, 0);
	assert_int_equal(z.n, 7);
	assert_string_equal(cap(&z, "lock_state")->value_on.u.string, "LOCK");
	assert_int_equal(cap(&z, "state")->type, HEARTH_CAP_ENUM);
	assert_int_equal(cap(&z, "state_l2")->type, HEARTH_CAP_BINARY);
	assert_int_equal(cap(&z, "fan_mode")->n_values, 2);
	assert_int_equal(zx_find(&z, "transition"), -1); /* lights only */
	zx_free(&z);
}

struct bad {
	const char *expose;
	const char *why_part;
};

static void test_malformed_and_unknown(void **state)
{
	(void)state;
	static const struct bad cases[] = {
		{"42", "not an object with a type"},
		{"{\"property\":\"x\"}", "not an object with a type"},
		{"{\"type\":\"gizmo\",\"property\":\"x\"}", "type is not one hearth knows"},
		{"{\"type\":\"numeric\",\"name\":\"x\"}", "no property"},
		{"{\"type\":\"numeric\",\"property\":\"\"}", "not 1..64 bytes"},
		{"{\"type\":\"numeric\",\"property\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		 "xxxxxxxxxxxxxxxxx\"}",
		 "not 1..64 bytes"},
		{"{\"type\":\"numeric\",\"property\":\"x\",\"access\":\"rw\"}", "access"},
		{"{\"type\":\"numeric\",\"property\":\"x\",\"access\":9}", "access"},
		{"{\"type\":\"numeric\",\"property\":\"x\",\"value_min\":\"low\"}", "not a number"},
		{"{\"type\":\"numeric\",\"property\":\"x\",\"value_min\":9,\"value_max\":1}",
		 "above value_max"},
		{"{\"type\":\"binary\",\"property\":\"x\",\"value_on\":1,\"value_off\":1}",
		 "two different"},
		{"{\"type\":\"binary\",\"property\":\"x\",\"value_on\":\"ON\"}", "two different"},
		{"{\"type\":\"binary\",\"property\":\"x\",\"value_on\":{},\"value_off\":1}",
		 "two different"},
		{"{\"type\":\"enum\",\"property\":\"x\",\"values\":[]}", "1..256 values"},
		{"{\"type\":\"enum\",\"property\":\"x\"}", "1..256 values"},
		{"{\"type\":\"enum\",\"property\":\"x\",\"values\":[\"a\",1]}", "all numbers"},
		{"{\"type\":\"enum\",\"property\":\"x\",\"values\":[\"a\",\"\"]}", "all numbers"},
		{"{\"type\":\"composite\",\"property\":\"x\",\"features\":[]}", "1..32 features"},
		{"{\"type\":\"composite\",\"property\":\"x\",\"features\":[{\"type\":\"composite\","
		 "\"property\":\"y\",\"features\":[]}]}",
		 "one level"},
		{"{\"type\":\"composite\",\"property\":\"x\",\"features\":[{\"type\":\"numeric\","
		 "\"property\":\"y\"},{\"type\":\"numeric\",\"property\":\"y\"}]}",
		 "twice"},
		{"{\"type\":\"composite\",\"property\":\"x\",\"features\":[{\"type\":\"enum\","
		 "\"property\":\"y\",\"values\":[1,2]}]}",
		 "inside a composite"},
		{"{\"type\":\"composite\",\"property\":\"x\",\"features\":[{\"type\":\"what\","
		 "\"property\":\"y\"}]}",
		 "not one hearth knows"},
		{"{\"type\":\"light\"}", "without a features array"},
		{"{\"type\":\"light\",\"features\":[{\"type\":\"light\",\"features\":[{\"type\":"
		 "\"light\",\"features\":[{\"type\":\"light\",\"features\":[{\"type\":\"light\","
		 "\"features\":[]}]}]}]}]}",
		 "nested too deep"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char json[1024];
		snprintf(json, sizeof(json), "[%s,{\"type\":\"numeric\",\"property\":\"ok\"}]",
			 cases[i].expose);
		struct zcaps z;
		struct warned w;
		map_json(json, &z, &w);
		if (w.n != 1 || !strstr(w.why[0], cases[i].why_part))
			fail_msg("case %zu (%s): %d warnings, first '%s'", i, cases[i].expose, w.n,
				 w.n ? w.why[0] : "");
		/* the expose's own JSON (or the nested part at fault) goes with it */
		cJSON *a = cJSON_Parse(cases[i].expose);
		char *text = cJSON_PrintUnformatted(a);
		assert_true(w.json[0][0] != '\0');
		assert_non_null(strstr(text, w.json[0]));
		cJSON_free(text);
		cJSON_Delete(a);
		/* the good expose beside it is still mapped */
		assert_true(zx_find(&z, "ok") >= 0);
		zx_free(&z);
	}
}

static void test_exposes_not_array(void **state)
{
	(void)state;
	struct zcaps z;
	struct warned w;
	map_json("{\"type\":\"numeric\"}", &z, &w);
	assert_int_equal(w.n, 1);
	assert_int_equal(z.n, 0);
	memset(&z, 0, sizeof(z));
	assert_int_equal(zx_map(NULL, &z, on_warn, &w), 0); /* no exposes: no capabilities */
	assert_int_equal(z.n, 0);
	zx_free(&z);
	zx_free(NULL);
}

static void test_limits(void **state)
{
	(void)state;
	/* 300 numerics: the first 256 map, the rest are reported */
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; i < 300; i++) {
		cJSON *e = cJSON_CreateObject();
		char prop[16];
		snprintf(prop, sizeof(prop), "p%d", i);
		cJSON_AddStringToObject(e, "type", "numeric");
		cJSON_AddStringToObject(e, "property", prop);
		cJSON_AddItemToArray(a, e);
	}
	struct zcaps z = {0};
	assert_int_equal(zx_map(a, &z, NULL, NULL), 0);
	assert_int_equal(z.n, ZB_CAPS_MAX);
	assert_int_equal(z.n_unmapped, 300 - ZB_CAPS_MAX);
	zx_free(&z);
	cJSON_Delete(a);
	/* an enum value over 256 bytes */
	char json[600];
	char big[300];
	memset(big, 'v', 280);
	big[280] = '\0';
	snprintf(json, sizeof(json), "[{\"type\":\"enum\",\"property\":\"e\",\"values\":[\"%s\"]}]",
		 big);
	struct warned w;
	map_json(json, &z, &w);
	assert_int_equal(w.n, 1);
	zx_free(&z);
	/* a long description is cut on a character boundary */
	char desc[1400] = "[{\"type\":\"text\",\"property\":\"t\",\"description\":\"";
	for (int i = 0; i < 400; i++)
		strcat(desc, "é");
	strcat(desc, "\"}]");
	map_json(desc, &z, &w);
	const char *d = cap(&z, "t")->description;
	assert_true(strlen(d) <= ZB_CAP_DESC_MAX);
	assert_int_equal(strlen(d) % 2, 0); /* whole two-byte characters */
	zx_free(&z);
}

static void test_ota_and_groups(void **state)
{
	(void)state;
	struct zcaps a, b;
	struct warned w;
	map_json(light, &a, &w);
	map_json("[{\"type\":\"light\",\"features\":[{\"type\":\"binary\",\"property\":\"state\","
		 "\"access\":7,\"value_on\":\"ON\",\"value_off\":\"OFF\"},{\"type\":\"numeric\","
		 "\"property\":\"brightness\",\"access\":7,\"value_min\":1,\"value_max\":255},"
		 "{\"type\":\"numeric\",\"property\":\"color_temp\",\"access\":7}]}]",
		 &b, &w);
	assert_int_equal(zx_add_ota(&a), 0);
	assert_int_equal(zx_add_ota(&a), 0); /* once only */
	assert_int_equal(a.n, 7);
	assert_int_equal(cap(&a, "update")->type, HEARTH_CAP_COMPOSITE);
	assert_int_equal(cap(&a, "ota")->access, HEARTH_ACCESS_SET);
	assert_false(a.meta[zx_find(&a, "ota")].specific);

	struct zcaps g = {0};
	assert_int_equal(zx_merge_specific(&g, &a), 0);
	assert_int_equal(zx_merge_specific(&g, &b), 0);
	/* state, brightness, color, transition, color_temp; no linkquality, no ota */
	assert_int_equal(g.n, 5);
	assert_int_equal(zx_find(&g, "linkquality"), -1);
	assert_int_equal(zx_find(&g, "ota"), -1);
	const struct hearth_capability *c = cap(&g, "brightness");
	assert_true(c->min == 0 && c->max == 255); /* the widest range of the members */
	assert_int_equal(cap(&g, "color")->n_features, 4);
	zx_free(&a);
	zx_free(&b);
	zx_free(&g);
}

/* The shared export maps with nothing left over. */
static void test_vector_maps_fully(void **state)
{
	(void)state;
	FILE *f = fopen("../shared/vectors/z2m_devices.json", "re");
	if (!f)
		skip();
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	cJSON *devices = cJSON_Parse(buf);
	assert_non_null(devices);
	int mapped = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, devices)
	{
		const cJSON *def = cJSON_GetObjectItem(d, "definition");
		if (!cJSON_IsObject(def))
			continue;
		struct zcaps z = {0};
		assert_int_equal(zx_map(cJSON_GetObjectItem(def, "exposes"), &z, NULL, NULL), 0);
		if (z.n_unmapped)
			fail_msg("%s: %zu exposes unmapped",
				 cJSON_GetObjectItem(d, "friendly_name")->valuestring, z.n_unmapped);
		assert_true(z.n > 0);
		zx_free(&z);
		mapped++;
	}
	assert_int_equal(mapped, 44);
	cJSON_Delete(devices);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_binary),
		cmocka_unit_test(test_numeric),
		cmocka_unit_test(test_enum_kinds),
		cmocka_unit_test(test_text_list_composite),
		cmocka_unit_test(test_light_flattened),
		cmocka_unit_test(test_specific_kinds),
		cmocka_unit_test(test_malformed_and_unknown),
		cmocka_unit_test(test_exposes_not_array),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_ota_and_groups),
		cmocka_unit_test(test_vector_maps_fully),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
