/*
 * Unit tests for capability.c: the ABI copy and its refusals, the JSON form
 * and its round trip, value validation, JSON equality and value conversion.
 * Table-driven: each table row names itself in the failure message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capability.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MINMAX (HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_MAX)
#define RANGE (MINMAX | HEARTH_CAP_HAS_STEP)
/* Plain initialisers: the HEARTH_* compound literals are not constant
 * expressions, so they cannot fill static tables. */
/* clang-format off */
#define V_STR(s) {.type = HEARTH_VALUE_STRING, .u.string = (s)}
#define V_BOOL(b) {.type = HEARTH_VALUE_BOOL, .u.boolean = (b)}
#define V_JSON(s) {.type = HEARTH_VALUE_JSON, .u.string = (s)}
/* clang-format on */

/* Something out-parameters must still hold after a refusal. */
static struct cap untouched_cap;
#define SENTINEL_CAPS (&untouched_cap)
static cJSON untouched_json;
#define SENTINEL_JSON (&untouched_json)

static const char *const effect_values[] = {"blink", "breathe", "okay"};

static const struct hearth_capability xy_features[] = {
	{.name = "x", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = MINMAX, .min = 0, .max = 1},
	{.name = "y", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = MINMAX, .min = 0, .max = 1},
};

static const struct hearth_capability mood_features[] = {
	{.name = "on",
	 .type = HEARTH_CAP_BINARY,
	 .access = 7,
	 .value_on = V_BOOL(true),
	 .value_off = V_BOOL(false)},
	{.name = "mode",
	 .type = HEARTH_CAP_ENUM,
	 .access = 7,
	 .values = effect_values,
	 .n_values = 3},
	{.name = "level", .type = HEARTH_CAP_NUMERIC, .access = 7},
};

/* One capability of every kind; tests pick single entries or the lot. */
static const struct hearth_capability light[] = {
	{.name = "state",
	 .type = HEARTH_CAP_BINARY,
	 .access = 7,
	 .value_on = V_STR("ON"),
	 .value_off = V_STR("OFF")},
	{.name = "occupancy",
	 .type = HEARTH_CAP_BINARY,
	 .access = 1,
	 .value_on = V_BOOL(true),
	 .value_off = V_BOOL(false)},
	{.name = "brightness",
	 .type = HEARTH_CAP_NUMERIC,
	 .access = 7,
	 .flags = RANGE,
	 .min = 0,
	 .max = 254,
	 .step = 1},
	{.name = "temperature",
	 .type = HEARTH_CAP_NUMERIC,
	 .access = 1,
	 .unit = "°C",
	 .description = "Measured temperature"},
	{.name = "power",
	 .type = HEARTH_CAP_NUMERIC,
	 .access = 5,
	 .unit = "W",
	 .flags = HEARTH_CAP_HAS_MIN | HEARTH_CAP_HAS_STEP,
	 .min = -0.5,
	 .step = 0.25},
	{.name = "effect",
	 .type = HEARTH_CAP_ENUM,
	 .access = 2,
	 .values = effect_values,
	 .n_values = 3},
	{.name = "label", .type = HEARTH_CAP_TEXT, .access = 3},
	{.name = "color",
	 .type = HEARTH_CAP_COMPOSITE,
	 .access = 7,
	 .features = xy_features,
	 .n_features = 2},
	{.name = "mood",
	 .type = HEARTH_CAP_COMPOSITE,
	 .access = 7,
	 .features = mood_features,
	 .n_features = 3},
	{.name = "schedule", .type = HEARTH_CAP_LIST, .access = 7},
};

enum {
	L_STATE,
	L_OCCUPANCY,
	L_BRIGHTNESS,
	L_TEMPERATURE,
	L_POWER,
	L_EFFECT,
	L_LABEL,
	L_COLOR,
	L_MOOD,
	L_SCHEDULE
};

/* ---------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------- */

static cJSON *parse(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	if (!j)
		fail_msg("test JSON does not parse: %s", text);
	return j;
}

/* Fails, showing both sides, unless got equals the JSON text want. */
static void expect_json(const char *label, const cJSON *got, const char *want)
{
	cJSON *w = parse(want);
	bool same = cJSON_Compare(got, w, true);
	cJSON_Delete(w);
	if (!same) {
		char *g = got ? cJSON_PrintUnformatted(got) : NULL;
		print_error("%s:\n  got  %s\n  want %s\n", label, g ? g : "(null)", want);
		cJSON_free(g);
		fail();
	}
}

static void expect_err_has(const char *label, const char *err, const char *part)
{
	if (part && !strstr(err, part))
		fail_msg("%s: error \"%s\" does not contain \"%s\"", label, err, part);
}

static struct cap *caps_from(const struct hearth_capability *src, size_t n)
{
	struct cap *caps = NULL;
	char err[256] = "";
	int rc = cap_array_from_abi(src, n, &caps, err, sizeof(err));
	if (rc)
		fail_msg("cap_array_from_abi: %d %s", rc, err);
	return caps;
}

static char *to_text(const struct cap *caps, size_t n)
{
	cJSON *j = cap_array_to_json(caps, n);
	assert_non_null(j);
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	assert_non_null(s);
	return s;
}

/* ---------------------------------------------------------------------------
 * cap_type_name
 * ------------------------------------------------------------------------- */

static void test_type_names(void **state)
{
	(void)state;
	static const struct {
		int type;
		const char *name;
	} rows[] = {
		{HEARTH_CAP_BINARY, "binary"},
		{HEARTH_CAP_NUMERIC, "numeric"},
		{HEARTH_CAP_ENUM, "enum"},
		{HEARTH_CAP_TEXT, "text"},
		{HEARTH_CAP_COMPOSITE, "composite"},
		{HEARTH_CAP_LIST, "list"},
		{0, NULL},
		{7, NULL},
		{-1, NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		const char *got = cap_type_name((enum hearth_cap_type)rows[i].type);
		if (!rows[i].name ? got != NULL : !got || strcmp(got, rows[i].name) != 0)
			fail_msg("cap_type_name(%d) = %s, want %s", rows[i].type,
				 got ? got : "NULL", rows[i].name ? rows[i].name : "NULL");
	}
}

/* ---------------------------------------------------------------------------
 * cap_array_from_abi: accepted shapes, checked through their JSON form
 * ------------------------------------------------------------------------- */

struct accept_row {
	const char *label;
	const struct hearth_capability *caps;
	size_t n;
	const char *json;
};

static const struct accept_row accept_rows[] = {
	{"binary with string values", &light[L_STATE], 1,
	 "[{\"name\":\"state\",\"type\":\"binary\",\"access\":7,\"value_on\":\"ON\","
	 "\"value_off\":\"OFF\"}]"},
	{"binary with bool values", &light[L_OCCUPANCY], 1,
	 "[{\"name\":\"occupancy\",\"type\":\"binary\",\"access\":1,\"value_on\":true,"
	 "\"value_off\":false}]"},
	{"numeric with min/max/step", &light[L_BRIGHTNESS], 1,
	 "[{\"name\":\"brightness\",\"type\":\"numeric\",\"access\":7,\"value_min\":0,"
	 "\"value_max\":254,\"value_step\":1}]"},
	{"numeric with unit and description", &light[L_TEMPERATURE], 1,
	 "[{\"name\":\"temperature\",\"type\":\"numeric\",\"access\":1,\"unit\":\"°C\","
	 "\"description\":\"Measured temperature\"}]"},
	{"numeric with min and step only", &light[L_POWER], 1,
	 "[{\"name\":\"power\",\"type\":\"numeric\",\"access\":5,\"unit\":\"W\","
	 "\"value_min\":-0.5,\"value_step\":0.25}]"},
	{"enum", &light[L_EFFECT], 1,
	 "[{\"name\":\"effect\",\"type\":\"enum\",\"access\":2,"
	 "\"values\":[\"blink\",\"breathe\",\"okay\"]}]"},
	{"text", &light[L_LABEL], 1, "[{\"name\":\"label\",\"type\":\"text\",\"access\":3}]"},
	{"composite color_xy", &light[L_COLOR], 1,
	 "[{\"name\":\"color\",\"type\":\"composite\",\"access\":7,\"features\":["
	 "{\"name\":\"x\",\"type\":\"numeric\",\"access\":7,\"value_min\":0,\"value_max\":1},"
	 "{\"name\":\"y\",\"type\":\"numeric\",\"access\":7,\"value_min\":0,\"value_max\":1}]}]"},
	{"composite with binary and enum features", &light[L_MOOD], 1,
	 "[{\"name\":\"mood\",\"type\":\"composite\",\"access\":7,\"features\":["
	 "{\"name\":\"on\",\"type\":\"binary\",\"access\":7,\"value_on\":true,\"value_off\":false},"
	 "{\"name\":\"mode\",\"type\":\"enum\",\"access\":7,"
	 "\"values\":[\"blink\",\"breathe\",\"okay\"]},"
	 "{\"name\":\"level\",\"type\":\"numeric\",\"access\":7}]}]"},
	{"list", &light[L_SCHEDULE], 1, "[{\"name\":\"schedule\",\"type\":\"list\",\"access\":7}]"},
	{"no capabilities", NULL, 0, "[]"},
};

static void test_from_abi_accepts(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(accept_rows); i++) {
		const struct accept_row *row = &accept_rows[i];
		struct cap *caps = NULL;
		char err[256] = "";
		int rc = cap_array_from_abi(row->caps, row->n, &caps, err, sizeof(err));
		if (rc)
			fail_msg("%s: refused with %d: %s", row->label, rc, err);
		assert_non_null(caps);
		cJSON *j = cap_array_to_json(caps, row->n);
		expect_json(row->label, j, row->json);
		cJSON_Delete(j);
		cap_array_free(caps, row->n);
	}
}

/* The copy owns its strings and keeps every field. */
static void test_from_abi_copies_fields(void **state)
{
	(void)state;
	size_t n = ARRAY_LEN(light);
	struct cap *caps = caps_from(light, n);

	const struct cap *b = cap_find(caps, n, "brightness");
	assert_non_null(b);
	assert_int_equal(b->type, HEARTH_CAP_NUMERIC);
	assert_int_equal(b->flags, RANGE);
	assert_true(b->min == 0 && b->max == 254 && b->step == 1);

	const struct cap *t = cap_find(caps, n, "temperature");
	assert_non_null(t);
	assert_string_equal(t->unit, "°C");
	assert_ptr_not_equal(t->unit, light[L_TEMPERATURE].unit);
	assert_string_equal(t->description, "Measured temperature");

	const struct cap *e = cap_find(caps, n, "effect");
	assert_non_null(e);
	assert_int_equal(e->n_values, 3);
	assert_string_equal(e->values[1], "breathe");
	assert_ptr_not_equal(e->values[1], effect_values[1]);

	const struct cap *s = cap_find(caps, n, "state");
	assert_non_null(s);
	assert_true(cJSON_IsString(s->value_on) && strcmp(s->value_on->valuestring, "ON") == 0);
	assert_true(cJSON_IsString(s->value_off) && strcmp(s->value_off->valuestring, "OFF") == 0);

	const struct cap *o = cap_find(caps, n, "occupancy");
	assert_non_null(o);
	assert_true(cJSON_IsTrue(o->value_on) && cJSON_IsFalse(o->value_off));

	const struct cap *c = cap_find(caps, n, "color");
	assert_non_null(c);
	assert_int_equal(c->n_features, 2);
	assert_string_equal(c->features[0].name, "x");
	assert_true(c->features[1].max == 1);

	assert_null(cap_find(caps, n, "nope"));
	assert_null(cap_find(caps, n, "brightnes"));
	cap_array_free(caps, n);
	cap_array_free(NULL, 3);
}

/* ---------------------------------------------------------------------------
 * cap_array_from_abi: refusals
 * ------------------------------------------------------------------------- */

#define NAME_64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct hearth_capability bad_no_name[] = {{.type = HEARTH_CAP_TEXT}};
static const struct hearth_capability bad_empty_name[] = {{.name = "", .type = HEARTH_CAP_TEXT}};
static const struct hearth_capability bad_long_name[] = {
	{.name = NAME_64 "b", .type = HEARTH_CAP_TEXT}};
static const struct hearth_capability bad_control_name[] = {
	{.name = "tab\tname", .type = HEARTH_CAP_TEXT}};
static const struct hearth_capability bad_type[] = {
	{.name = "gauge", .type = (enum hearth_cap_type)42}};
static const struct hearth_capability bad_type_zero[] = {
	{.name = "zero", .type = (enum hearth_cap_type)0}};
static const struct hearth_capability bad_min_max[] = {
	{.name = "level", .type = HEARTH_CAP_NUMERIC, .flags = MINMAX, .min = 10, .max = 1}};
static const struct hearth_capability bad_step_zero[] = {
	{.name = "dim", .type = HEARTH_CAP_NUMERIC, .flags = HEARTH_CAP_HAS_STEP, .step = 0}};
static const struct hearth_capability bad_step_negative[] = {
	{.name = "dim", .type = HEARTH_CAP_NUMERIC, .flags = HEARTH_CAP_HAS_STEP, .step = -1}};
static const struct hearth_capability bad_enum_empty[] = {
	{.name = "mode", .type = HEARTH_CAP_ENUM, .values = effect_values, .n_values = 0}};
static const struct hearth_capability bad_enum_null[] = {
	{.name = "mode", .type = HEARTH_CAP_ENUM, .values = NULL, .n_values = 3}};
static const char *const empty_value[] = {"a", ""};
static const struct hearth_capability bad_enum_empty_value[] = {
	{.name = "mode", .type = HEARTH_CAP_ENUM, .values = empty_value, .n_values = 2}};
static const struct hearth_capability bad_binary_equal[] = {{.name = "state",
							     .type = HEARTH_CAP_BINARY,
							     .value_on = V_STR("ON"),
							     .value_off = V_STR("ON")}};
static const struct hearth_capability bad_binary_equal_bool[] = {{.name = "state",
								  .type = HEARTH_CAP_BINARY,
								  .value_on = V_BOOL(true),
								  .value_off = V_BOOL(true)}};
static const struct hearth_capability bad_binary_unset[] = {
	{.name = "state", .type = HEARTH_CAP_BINARY}};
static const struct hearth_capability bad_binary_json[] = {{.name = "state",
							    .type = HEARTH_CAP_BINARY,
							    .value_on = V_JSON("{}"),
							    .value_off = V_STR("OFF")}};
static const struct hearth_capability bad_composite_empty[] = {
	{.name = "color", .type = HEARTH_CAP_COMPOSITE}};
static const struct hearth_capability nested_inner[] = {
	{.name = "inner", .type = HEARTH_CAP_COMPOSITE, .features = xy_features, .n_features = 2}};
static const struct hearth_capability bad_composite_nested[] = {
	{.name = "outer", .type = HEARTH_CAP_COMPOSITE, .features = nested_inner, .n_features = 1}};
static const struct hearth_capability bad_feature[] = {
	{.name = "hue", .type = HEARTH_CAP_NUMERIC, .flags = MINMAX, .min = 360, .max = 0}};
static const struct hearth_capability bad_composite_feature[] = {{.name = "color_hs",
								  .type = HEARTH_CAP_COMPOSITE,
								  .features = bad_feature,
								  .n_features = 1}};
static const struct hearth_capability bad_duplicate[] = {
	{.name = "label", .type = HEARTH_CAP_TEXT},
	{.name = "state",
	 .type = HEARTH_CAP_BINARY,
	 .value_on = V_STR("ON"),
	 .value_off = V_STR("OFF")},
	{.name = "label", .type = HEARTH_CAP_LIST},
};
/* A bad capability after good ones: the good ones must be freed (ASan). */
static const struct hearth_capability bad_after_good[] = {
	{.name = "label", .type = HEARTH_CAP_TEXT},
	{.name = "effect", .type = HEARTH_CAP_ENUM, .values = effect_values, .n_values = 3},
	{.name = "level", .type = HEARTH_CAP_NUMERIC, .flags = MINMAX, .min = 3, .max = 2},
};

struct refuse_row {
	const char *label;
	const struct hearth_capability *caps;
	size_t n;
	const char *err_has[2];
};

static const struct refuse_row refuse_rows[] = {
	{"no name", bad_no_name, 1, {"name", NULL}},
	{"empty name", bad_empty_name, 1, {"name", NULL}},
	{"name of 65 bytes", bad_long_name, 1, {"64", NULL}},
	{"name with a control character", bad_control_name, 1, {"name", NULL}},
	{"unknown type", bad_type, 1, {"'gauge'", "type"}},
	{"type 0", bad_type_zero, 1, {"'zero'", "type"}},
	{"min above max", bad_min_max, 1, {"'level'", "min"}},
	{"step 0", bad_step_zero, 1, {"'dim'", "step"}},
	{"step below 0", bad_step_negative, 1, {"'dim'", "step"}},
	{"enum with 0 values", bad_enum_empty, 1, {"'mode'", "values"}},
	{"enum with NULL values", bad_enum_null, 1, {"'mode'", "values"}},
	{"enum with an empty value", bad_enum_empty_value, 1, {"'mode'", NULL}},
	{"binary with equal strings", bad_binary_equal, 1, {"'state'", "value_on"}},
	{"binary with equal bools", bad_binary_equal_bool, 1, {"'state'", "value_on"}},
	{"binary without values", bad_binary_unset, 1, {"'state'", NULL}},
	{"binary with a JSON value", bad_binary_json, 1, {"'state'", NULL}},
	{"composite without features", bad_composite_empty, 1, {"'color'", "features"}},
	{"composite nested two levels", bad_composite_nested, 1, {"'inner'", "one level"}},
	{"composite with a bad feature", bad_composite_feature, 1, {"'hue'", "min"}},
	{"duplicate names", bad_duplicate, 3, {"'label'", "twice"}},
	{"bad one after good ones", bad_after_good, 3, {"'level'", NULL}},
	{"NULL array with n > 0", NULL, 2, {NULL, NULL}},
};

static void test_from_abi_refuses(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(refuse_rows); i++) {
		const struct refuse_row *row = &refuse_rows[i];
		struct cap *caps = SENTINEL_CAPS;
		char err[256] = "";
		int rc = cap_array_from_abi(row->caps, row->n, &caps, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("%s: rc %d, want -EINVAL", row->label, rc);
		if (caps != SENTINEL_CAPS)
			fail_msg("%s: *out was written on failure", row->label);
		if (!err[0])
			fail_msg("%s: no error text", row->label);
		for (size_t k = 0; k < ARRAY_LEN(row->err_has); k++)
			expect_err_has(row->label, err, row->err_has[k]);
		/* err may be NULL: the refusal stays the same */
		assert_int_equal(cap_array_from_abi(row->caps, row->n, &caps, NULL, 0), -EINVAL);
	}
}

static void test_from_abi_name_length_bound(void **state)
{
	(void)state;
	const struct hearth_capability ok[] = {{.name = NAME_64, .type = HEARTH_CAP_TEXT}};
	struct cap *caps = caps_from(ok, 1);
	assert_int_equal(strlen(caps[0].name), 64);
	cap_array_free(caps, 1);
}

/* CAP_MAX_PER_DEVICE, CAP_MAX_FEATURES and CAP_MAX_VALUES: the limit is
 * accepted, one more is refused. */
static void test_from_abi_count_limits(void **state)
{
	(void)state;
	size_t max = CAP_MAX_PER_DEVICE + 1;
	struct hearth_capability *src = calloc(max, sizeof(*src));
	char(*names)[16] = calloc(max, sizeof(*names));
	const char **values = calloc(CAP_MAX_VALUES + 1, sizeof(*values));
	assert_true(src && names && values);
	for (size_t i = 0; i < max; i++) {
		snprintf(names[i], sizeof(names[i]), "c%zu", i);
		src[i] = (struct hearth_capability){.name = names[i], .type = HEARTH_CAP_TEXT};
		if (i <= CAP_MAX_VALUES)
			values[i] = names[i];
	}
	struct cap *caps = NULL;
	char err[256] = "";
	assert_int_equal(cap_array_from_abi(src, CAP_MAX_PER_DEVICE, &caps, err, sizeof(err)), 0);
	cap_array_free(caps, CAP_MAX_PER_DEVICE);
	caps = SENTINEL_CAPS;
	assert_int_equal(cap_array_from_abi(src, max, &caps, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(caps, SENTINEL_CAPS);
	expect_err_has("too many capabilities", err, "256");

	struct hearth_capability comp = {.name = "big",
					 .type = HEARTH_CAP_COMPOSITE,
					 .features = src,
					 .n_features = CAP_MAX_FEATURES};
	assert_int_equal(cap_array_from_abi(&comp, 1, &caps, err, sizeof(err)), 0);
	cap_array_free(caps, 1);
	comp.n_features = CAP_MAX_FEATURES + 1;
	assert_int_equal(cap_array_from_abi(&comp, 1, &caps, err, sizeof(err)), -EINVAL);
	expect_err_has("too many features", err, "'big'");

	struct hearth_capability en = {.name = "many",
				       .type = HEARTH_CAP_ENUM,
				       .values = values,
				       .n_values = CAP_MAX_VALUES};
	assert_int_equal(cap_array_from_abi(&en, 1, &caps, err, sizeof(err)), 0);
	cap_array_free(caps, 1);
	en.n_values = CAP_MAX_VALUES + 1;
	assert_int_equal(cap_array_from_abi(&en, 1, &caps, err, sizeof(err)), -EINVAL);
	expect_err_has("too many values", err, "'many'");
	free(values);
	free(names);
	free(src);
}

/* Features of a composite become members of one JSON object, so their
 * names must be unique like the capabilities' own. */
static void test_from_abi_refuses_duplicate_feature_names(void **state)
{
	(void)state;
	static const struct hearth_capability twins[] = {
		{.name = "x", .type = HEARTH_CAP_NUMERIC},
		{.name = "x", .type = HEARTH_CAP_NUMERIC, .flags = MINMAX, .min = 0, .max = 1},
	};
	static const struct hearth_capability comp[] = {{.name = "color",
							 .type = HEARTH_CAP_COMPOSITE,
							 .features = twins,
							 .n_features = 2}};
	struct cap *caps = SENTINEL_CAPS;
	char err[256] = "";
	int rc = cap_array_from_abi(comp, 1, &caps, err, sizeof(err));
	if (rc == 0)
		cap_array_free(caps, 1);
	assert_int_equal(rc, -EINVAL);
	expect_err_has("duplicate feature", err, "'x'");
}

/* ---------------------------------------------------------------------------
 * JSON form
 * ------------------------------------------------------------------------- */

static void roundtrip(const char *label, const struct hearth_capability *src, size_t n)
{
	struct cap *caps = caps_from(src, n);
	char *first = to_text(caps, n);
	cJSON *parsed = parse(first);
	struct cap *back = NULL;
	size_t n_back = 0;
	char err[256] = "";
	int rc = cap_array_from_json(parsed, &back, &n_back, err, sizeof(err));
	if (rc)
		fail_msg("%s: cap_array_from_json refused %s: %d %s", label, first, rc, err);
	assert_int_equal(n_back, n);
	char *second = to_text(back, n_back);
	if (strcmp(first, second) != 0)
		fail_msg("%s: round trip differs:\n  %s\n  %s", label, first, second);
	cJSON_free(second);
	cJSON_free(first);
	cJSON_Delete(parsed);
	cap_array_free(back, n_back);
	cap_array_free(caps, n);
}

static void test_json_roundtrip(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(accept_rows); i++)
		roundtrip(accept_rows[i].label, accept_rows[i].caps, accept_rows[i].n);
	roundtrip("every type together", light, ARRAY_LEN(light));
}

struct json_refuse_row {
	const char *label;
	const char *json;
	const char *err_has;
};

static const struct json_refuse_row json_refuse_rows[] = {
	{"not an array", "{\"name\":\"a\",\"type\":\"text\"}", "array"},
	{"entry not an object", "[1]", "name"},
	{"no name", "[{\"type\":\"text\"}]", "name"},
	{"no type", "[{\"name\":\"a\"}]", "type"},
	{"unknown type", "[{\"name\":\"a\",\"type\":\"gauge\"}]", "type"},
	{"name not a string", "[{\"name\":5,\"type\":\"text\"}]", "name"},
	{"enum without values", "[{\"name\":\"m\",\"type\":\"enum\"}]", "'m'"},
	{"enum with a number value", "[{\"name\":\"m\",\"type\":\"enum\",\"values\":[\"a\",1]}]",
	 "'m'"},
	{"binary with equal values",
	 "[{\"name\":\"s\",\"type\":\"binary\",\"value_on\":\"ON\",\"value_off\":\"ON\"}]", "'s'"},
	{"binary with an object value",
	 "[{\"name\":\"s\",\"type\":\"binary\",\"value_on\":{},\"value_off\":\"OFF\"}]", "'s'"},
	{"min above max", "[{\"name\":\"n\",\"type\":\"numeric\",\"value_min\":5,\"value_max\":1}]",
	 "'n'"},
	{"step 0", "[{\"name\":\"n\",\"type\":\"numeric\",\"value_step\":0}]", "'n'"},
	{"composite without features", "[{\"name\":\"c\",\"type\":\"composite\"}]", "'c'"},
	{"duplicate names",
	 "[{\"name\":\"d\",\"type\":\"text\"},{\"name\":\"d\",\"type\":\"list\"}]", "twice"},
};

static void test_from_json_refuses(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(json_refuse_rows); i++) {
		const struct json_refuse_row *row = &json_refuse_rows[i];
		cJSON *j = parse(row->json);
		struct cap *caps = SENTINEL_CAPS;
		size_t n = 77;
		char err[256] = "";
		int rc = cap_array_from_json(j, &caps, &n, err, sizeof(err));
		cJSON_Delete(j);
		if (rc != -EINVAL)
			fail_msg("%s: rc %d, want -EINVAL", row->label, rc);
		if (caps != SENTINEL_CAPS || n != 77)
			fail_msg("%s: out-parameters written on failure", row->label);
		expect_err_has(row->label, err, row->err_has);
	}
	struct cap *caps = SENTINEL_CAPS;
	size_t n = 0;
	assert_int_equal(cap_array_from_json(NULL, &caps, &n, NULL, 0), -EINVAL);
}

static void expect_from_json_refusal(const char *label, const cJSON *json, const char *err_has)
{
	struct cap *caps = SENTINEL_CAPS;
	size_t n = 0;
	char err[256] = "";
	int rc = cap_array_from_json(json, &caps, &n, err, sizeof(err));
	if (rc != -EINVAL)
		fail_msg("%s: rc %d, want -EINVAL", label, rc);
	if (!err[0])
		fail_msg("%s: refused with no error text", label);
	expect_err_has(label, err, err_has);
}

/* The header promises "err says where" for every -EINVAL of
 * cap_array_from_json, also for the limits checked while walking the JSON. */
static void test_from_json_refusals_explain_limits(void **state)
{
	(void)state;
	static const struct json_refuse_row rows[] = {
		{"composite nested two levels",
		 "[{\"name\":\"outer\",\"type\":\"composite\",\"features\":[{\"name\":\"inner\","
		 "\"type\":\"composite\",\"features\":[{\"name\":\"x\",\"type\":\"numeric\"}]}]}]",
		 "inner"},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		cJSON *j = parse(rows[i].json);
		expect_from_json_refusal(rows[i].label, j, rows[i].err_has);
		cJSON_Delete(j);
	}
	/* one feature and one value past their limits */
	cJSON *big = parse("[{\"name\":\"big\",\"type\":\"composite\",\"features\":[]}]");
	cJSON *feats = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(big, 0), "features");
	cJSON *many = parse("[{\"name\":\"many\",\"type\":\"enum\",\"values\":[]}]");
	cJSON *values = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(many, 0), "values");
	char name[16];
	for (int i = 0; i <= CAP_MAX_VALUES; i++) {
		snprintf(name, sizeof(name), "v%d", i);
		assert_true(cJSON_AddItemToArray(values, cJSON_CreateString(name)));
		if (i > CAP_MAX_FEATURES)
			continue;
		cJSON *f = cJSON_CreateObject();
		assert_non_null(cJSON_AddStringToObject(f, "name", name));
		assert_non_null(cJSON_AddStringToObject(f, "type", "text"));
		assert_true(cJSON_AddItemToArray(feats, f));
	}
	expect_from_json_refusal("33 features", big, "big");
	expect_from_json_refusal("257 enum values", many, "many");
	cJSON_Delete(many);
	cJSON_Delete(big);
}

static void test_from_json_empty_array(void **state)
{
	(void)state;
	cJSON *j = parse("[]");
	struct cap *caps = NULL;
	size_t n = 5;
	char err[64] = "";
	assert_int_equal(cap_array_from_json(j, &caps, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 0);
	cap_array_free(caps, n);
	cJSON_Delete(j);
}

/* ---------------------------------------------------------------------------
 * cap_validate_value
 * ------------------------------------------------------------------------- */

struct validate_row {
	const char *cap;
	const char *value;
	const char *current; /* NULL: no present value */
	int rc;
	const char *want;	/* result JSON when rc == 0 */
	const char *err_has[3]; /* when rc != 0 */
};

/* clang-format off */
#define OK(c, v, cur, w) {c, v, cur, 0, w, {NULL, NULL, NULL}}
#define BAD(c, v, ...) {c, v, NULL, -EINVAL, NULL, {__VA_ARGS__}}
/* clang-format on */

static const struct validate_row validate_rows[] = {
	/* binary with string values */
	OK("state", "\"ON\"", NULL, "\"ON\""),
	OK("state", "\"OFF\"", NULL, "\"OFF\""),
	OK("state", "\"on\"", NULL, "\"ON\""),
	OK("state", "\"oFf\"", NULL, "\"OFF\""),
	OK("state", "\"TOGGLE\"", "\"ON\"", "\"OFF\""),
	OK("state", "\"TOGGLE\"", "\"OFF\"", "\"ON\""),
	OK("state", "\"TOGGLE\"", NULL, "\"ON\""),
	OK("state", "\"toggle\"", "\"ON\"", "\"OFF\""),
	BAD("state", "1", "state", "\"ON\"", "\"OFF\""),
	BAD("state", "\"maybe\"", "maybe", "\"ON\"", "\"OFF\""),
	BAD("state", "true", "state", "TOGGLE", NULL),
	BAD("state", "{}", "state", NULL, NULL),
	/* binary with bool values */
	OK("occupancy", "true", NULL, "true"),
	OK("occupancy", "false", NULL, "false"),
	OK("occupancy", "\"TOGGLE\"", "true", "false"),
	OK("occupancy", "\"TOGGLE\"", "false", "true"),
	OK("occupancy", "\"TOGGLE\"", NULL, "true"),
	BAD("occupancy", "1", "occupancy", "true", "false"),
	BAD("occupancy", "\"maybe\"", "maybe", "true", "false"),
	/* numeric */
	OK("brightness", "0", NULL, "0"),
	OK("brightness", "254", NULL, "254"),
	OK("brightness", "120.5", NULL, "120.5"),
	BAD("brightness", "255", "brightness: 255 is above the maximum 254", NULL, NULL),
	BAD("brightness", "-1", "brightness: -1 is below the minimum 0", NULL, NULL),
	BAD("brightness", "\"100\"", "brightness", "not a number", NULL),
	BAD("brightness", "true", "brightness", "not a number", NULL),
	BAD("brightness", "null", "brightness", "not a number", NULL),
	BAD("brightness", "[1]", "brightness", "not a number", NULL),
	OK("temperature", "-40.25", NULL, "-40.25"),
	OK("temperature", "100000", NULL, "100000"),
	BAD("temperature", "false", "temperature", "not a number", NULL),
	OK("power", "-0.5", NULL, "-0.5"),
	BAD("power", "-0.75", "power", "-0.75", "minimum -0.5"),
	/* enum */
	OK("effect", "\"blink\"", NULL, "\"blink\""),
	OK("effect", "\"okay\"", NULL, "\"okay\""),
	BAD("effect", "\"party\"", "effect", "party", "blink, breathe, okay"),
	BAD("effect", "\"BLINK\"", "BLINK", "blink, breathe, okay", NULL),
	BAD("effect", "3", "effect", "blink, breathe, okay", NULL),
	/* text */
	OK("label", "\"hello\"", NULL, "\"hello\""),
	OK("label", "\"\"", NULL, "\"\""),
	BAD("label", "42", "label", "text", NULL),
	BAD("label", "null", "label", "text", NULL),
	/* composite */
	OK("color", "{\"x\":0.31,\"y\":0.32}", NULL, "{\"x\":0.31,\"y\":0.32}"),
	OK("color", "{\"x\":0.5}", NULL, "{\"x\":0.5}"),
	BAD("color", "{\"x\":0.3,\"z\":1}", "color", "'z'", NULL),
	BAD("color", "{\"x\":2}", "above the maximum 1", NULL, NULL),
	BAD("color", "{\"x\":\"red\"}", "not a number", NULL, NULL),
	BAD("color", "\"red\"", "color", "object", NULL),
	BAD("color", "[0.3,0.3]", "color", "object", NULL),
	OK("mood", "{\"on\":\"TOGGLE\",\"mode\":\"okay\",\"level\":3}", NULL,
	   "{\"on\":true,\"mode\":\"okay\",\"level\":3}"),
	BAD("mood", "{\"mode\":\"party\"}", "party", "blink, breathe, okay", NULL),
	/* list */
	OK("schedule", "[1,\"a\",{\"b\":2}]", NULL, "[1,\"a\",{\"b\":2}]"),
	OK("schedule", "[]", NULL, "[]"),
	BAD("schedule", "{\"a\":1}", "schedule", "list", NULL),
	BAD("schedule", "\"x\"", "schedule", "list", NULL),
};

static void validate_one(const struct cap *caps, size_t n, const struct validate_row *row)
{
	char label[160];
	snprintf(label, sizeof(label), "%s <- %s (current %s)", row->cap, row->value,
		 row->current ? row->current : "none");
	const struct cap *c = cap_find(caps, n, row->cap);
	if (!c)
		fail_msg("%s: no such capability in the test table", label);
	cJSON *value = parse(row->value);
	cJSON *current = row->current ? parse(row->current) : NULL;
	cJSON *out = SENTINEL_JSON;
	char err[256] = "";
	int rc = cap_validate_value(c, value, current, &out, err, sizeof(err));
	if (rc != row->rc)
		fail_msg("%s: rc %d, want %d (err \"%s\")", label, rc, row->rc, err);
	if (rc == 0) {
		assert_true(out != SENTINEL_JSON && out != value);
		expect_json(label, out, row->want);
		cJSON_Delete(out);
	} else {
		if (out != SENTINEL_JSON)
			fail_msg("%s: *out written on failure", label);
		for (size_t k = 0; k < ARRAY_LEN(row->err_has); k++)
			expect_err_has(label, err, row->err_has[k]);
	}
	cJSON_Delete(current);
	cJSON_Delete(value);
}

static void test_validate_value(void **state)
{
	(void)state;
	size_t n = ARRAY_LEN(light);
	struct cap *caps = caps_from(light, n);
	for (size_t i = 0; i < ARRAY_LEN(validate_rows); i++)
		validate_one(caps, n, &validate_rows[i]);
	cap_array_free(caps, n);
}

/* Home Assistant sends {"h","s"} where zigbee2mqtt's color_hs names its
 * members hue and saturation: taken under the device's names. */
static const struct hearth_capability hs_features[] = {
	{.name = "hue", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = MINMAX, .min = 0,
	 .max = 360},
	{.name = "saturation", .type = HEARTH_CAP_NUMERIC, .access = 7, .flags = MINMAX, .min = 0,
	 .max = 100},
};
static const struct hearth_capability hs_light[] = {
	{.name = "color", .type = HEARTH_CAP_COMPOSITE, .access = 7, .features = hs_features,
	 .n_features = ARRAY_LEN(hs_features)},
};

static void test_validate_hs_short_names(void **state)
{
	(void)state;
	static const struct validate_row rows[] = {
		OK("color", "{\"h\":120,\"s\":80}", NULL, "{\"hue\":120,\"saturation\":80}"),
		OK("color", "{\"hue\":120,\"s\":80}", NULL, "{\"hue\":120,\"saturation\":80}"),
		BAD("color", "{\"h\":400}", "above the maximum 360", NULL, NULL),
		BAD("color", "{\"h\":1,\"hue\":2}", "'h' and 'hue' are the same member", NULL, NULL),
		BAD("color", "{\"x\":0.3}", "'x'", NULL, NULL),
	};
	struct cap *caps = caps_from(hs_light, 1);
	for (size_t i = 0; i < ARRAY_LEN(rows); i++)
		validate_one(caps, 1, &rows[i]);
	cap_array_free(caps, 1);
}

/* The result is independent of the input: freeing one leaves the other. */
static void test_validate_value_copies(void **state)
{
	(void)state;
	struct cap *caps = caps_from(&light[L_STATE], 1);
	cJSON *value = parse("\"on\"");
	cJSON *out = NULL;
	assert_int_equal(cap_validate_value(&caps[0], value, NULL, &out, NULL, 0), 0);
	cJSON_Delete(value);
	assert_true(cJSON_IsString(out));
	assert_string_equal(out->valuestring, "ON");
	cJSON_Delete(out);
	cap_array_free(caps, 1);
}

static void test_validate_text_length(void **state)
{
	(void)state;
	struct cap *caps = caps_from(&light[L_LABEL], 1);
	char *text = malloc(4098);
	assert_non_null(text);
	memset(text, 'a', 4097);
	text[4097] = '\0';
	cJSON *v = cJSON_CreateString(text);
	cJSON *out = SENTINEL_JSON;
	char err[256] = "";
	assert_int_equal(cap_validate_value(&caps[0], v, NULL, &out, err, sizeof(err)), -EINVAL);
	assert_ptr_equal(out, SENTINEL_JSON);
	expect_err_has("4097 bytes", err, "4096");
	expect_err_has("4097 bytes", err, "label");
	cJSON_Delete(v);

	text[4096] = '\0';
	v = cJSON_CreateString(text);
	assert_int_equal(cap_validate_value(&caps[0], v, NULL, &out, err, sizeof(err)), 0);
	assert_int_equal(strlen(out->valuestring), 4096);
	cJSON_Delete(out);
	cJSON_Delete(v);
	free(text);
	cap_array_free(caps, 1);
}

/* Values that JSON text cannot carry but a cJSON tree built in code can. */
static void test_validate_numeric_not_finite(void **state)
{
	(void)state;
	struct cap *caps = caps_from(&light[L_TEMPERATURE], 1);
	const double bad[] = {NAN, INFINITY, -INFINITY};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		cJSON *v = cJSON_CreateNumber(bad[i]);
		cJSON *out = SENTINEL_JSON;
		char err[256] = "";
		assert_int_equal(cap_validate_value(&caps[0], v, NULL, &out, err, sizeof(err)),
				 -EINVAL);
		assert_ptr_equal(out, SENTINEL_JSON);
		expect_err_has("not finite", err, "temperature");
		cJSON_Delete(v);
	}
	cap_array_free(caps, 1);
}

/* ---------------------------------------------------------------------------
 * cap_json_equal
 * ------------------------------------------------------------------------- */

static void test_json_put(void **state)
{
	(void)state;
	cJSON *o = cJSON_Parse("{\"a\":1,\"enabled\":true,\"z\":3}");
	assert_non_null(o);
	/* replaced in place: same key, same position, later members still found */
	assert_int_equal(cap_json_put(o, "enabled", cJSON_CreateBool(0)), 0);
	assert_int_equal(cap_json_put(o, "new", cJSON_CreateString("x")), 0);
	char *text = cJSON_PrintUnformatted(o);
	assert_string_equal(text, "{\"a\":1,\"enabled\":false,\"z\":3,\"new\":\"x\"}");
	cJSON_free(text);
	assert_non_null(cJSON_GetObjectItemCaseSensitive(o, "z"));
	/* a value that could not be made: refused, the object as it was */
	assert_int_equal(cap_json_put(o, "a", NULL), -ENOMEM);
	assert_int_equal(cJSON_GetObjectItemCaseSensitive(o, "a")->valueint, 1);
	cJSON_Delete(o);
}

static void test_json_equal(void **state)
{
	(void)state;
	static const struct {
		const char *a, *b;
		bool equal;
	} rows[] = {
		{"1", "1.0", true},
		{"1", "1", true},
		{"0", "-0", true},
		{"0.1", "0.10000000000000001", true},
		{"1", "1.0000001", false},
		{"\"1\"", "1", false},
		{"\"ON\"", "\"on\"", false},
		{"\"ON\"", "\"ON\"", true},
		{"true", "true", true},
		{"true", "false", false},
		{"true", "1", false},
		{"null", "null", true},
		{"null", "false", false},
		{"[1,2]", "[1,2]", true},
		{"[1,2]", "[2,1]", false},
		{"[1]", "[1,1]", false},
		{"{\"a\":{\"b\":[1,{\"c\":\"d\"}]}}", "{\"a\":{\"b\":[1,{\"c\":\"d\"}]}}", true},
		{"{\"a\":{\"b\":[1,{\"c\":\"d\"}]}}", "{\"a\":{\"b\":[1,{\"c\":\"e\"}]}}", false},
		{"{\"x\":1,\"y\":2}", "{\"y\":2,\"x\":1}", true},
		{"{\"x\":1}", "{\"x\":1,\"y\":2}", false},
		{"{\"x\":1}", "{\"X\":1}", false},
		{"{}", "[]", false},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		cJSON *a = parse(rows[i].a), *b = parse(rows[i].b);
		if (cap_json_equal(a, b) != rows[i].equal || cap_json_equal(b, a) != rows[i].equal)
			fail_msg("cap_json_equal(%s, %s) is not %d", rows[i].a, rows[i].b,
				 rows[i].equal);
		cJSON_Delete(a);
		cJSON_Delete(b);
	}
	cJSON *one = parse("1");
	assert_true(cap_json_equal(NULL, NULL));
	assert_false(cap_json_equal(one, NULL));
	assert_false(cap_json_equal(NULL, one));
	cJSON_Delete(one);
}

/* ---------------------------------------------------------------------------
 * cap_value_to_json / cap_value_from_json
 * ------------------------------------------------------------------------- */

static void test_value_to_json(void **state)
{
	(void)state;
	const struct {
		const char *label;
		struct hearth_value value;
		const char *want; /* NULL: refused with -EINVAL */
	} rows[] = {
		{"null", {.type = HEARTH_VALUE_NULL}, "null"},
		{"true", HEARTH_BOOL(true), "true"},
		{"false", HEARTH_BOOL(false), "false"},
		{"number", HEARTH_NUMBER(21.5), "21.5"},
		{"negative number", HEARTH_NUMBER(-3), "-3"},
		{"large number", HEARTH_NUMBER(1e300), "1e300"},
		{"infinity", HEARTH_NUMBER(INFINITY), NULL},
		{"minus infinity", HEARTH_NUMBER(-INFINITY), NULL},
		{"NaN", HEARTH_NUMBER(NAN), NULL},
		{"string", HEARTH_STRING("ON"), "\"ON\""},
		{"empty string", HEARTH_STRING(""), "\"\""},
		{"UTF-8 string", HEARTH_STRING("Küche"), "\"Küche\""},
		{"NULL string", HEARTH_STRING(NULL), NULL},
		{"JSON object", HEARTH_JSON("{\"x\":0.31,\"y\":0.32}"), "{\"x\":0.31,\"y\":0.32}"},
		{"JSON array", HEARTH_JSON("[1,\"a\",null]"), "[1,\"a\",null]"},
		{"JSON empty object", HEARTH_JSON(" {} "), "{}"},
		{"JSON number scalar", HEARTH_JSON("1"), NULL},
		{"JSON string scalar", HEARTH_JSON("\"ON\""), NULL},
		{"JSON true scalar", HEARTH_JSON("true"), NULL},
		{"JSON null scalar", HEARTH_JSON("null"), NULL},
		{"JSON unterminated", HEARTH_JSON("{\"x\":"), NULL},
		{"JSON invalid", HEARTH_JSON("{bad}"), NULL},
		{"JSON empty text", HEARTH_JSON(""), NULL},
		{"JSON NULL text", HEARTH_JSON(NULL), NULL},
		{"unknown type", {.type = (enum hearth_value_type)9}, NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		cJSON *out = SENTINEL_JSON;
		int rc = cap_value_to_json(&rows[i].value, &out);
		if (!rows[i].want) {
			if (rc != -EINVAL || out != SENTINEL_JSON)
				fail_msg("%s: rc %d, want -EINVAL and *out untouched",
					 rows[i].label, rc);
			continue;
		}
		if (rc != 0)
			fail_msg("%s: rc %d, want 0", rows[i].label, rc);
		expect_json(rows[i].label, out, rows[i].want);
		cJSON_Delete(out);
	}
}

/* Text after the JSON value makes it invalid JSON text, not a value. */
static void test_value_to_json_refuses_trailing_text(void **state)
{
	(void)state;
	static const char *const texts[] = {"{\"x\":1} junk", "[1]]", "{}{}"};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
		struct hearth_value v = HEARTH_JSON(texts[i]);
		cJSON *out = SENTINEL_JSON;
		int rc = cap_value_to_json(&v, &out);
		if (rc == 0)
			cJSON_Delete(out);
		if (rc != -EINVAL)
			fail_msg("JSON text '%s': rc %d, want -EINVAL", texts[i], rc);
	}
}

static void test_value_from_json(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		enum hearth_value_type type;
		const char *text; /* STRING or JSON text */
	} rows[] = {
		{"true", HEARTH_VALUE_BOOL, NULL},
		{"false", HEARTH_VALUE_BOOL, NULL},
		{"2.5", HEARTH_VALUE_NUMBER, NULL},
		{"\"ON\"", HEARTH_VALUE_STRING, "ON"},
		{"{\"x\":1}", HEARTH_VALUE_JSON, "{\"x\":1}"},
		{"[1,2]", HEARTH_VALUE_JSON, "[1,2]"},
		{"null", HEARTH_VALUE_NULL, NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
		cJSON *j = parse(rows[i].json);
		static char sentinel[] = "untouched";
		struct hearth_value v;
		char *scratch = sentinel;
		cap_value_from_json(j, &v, &scratch);
		if (v.type != rows[i].type)
			fail_msg("%s: type %d, want %d", rows[i].json, (int)v.type,
				 (int)rows[i].type);
		if (rows[i].text)
			assert_string_equal(v.u.string, rows[i].text);
		if (v.type == HEARTH_VALUE_STRING)
			assert_ptr_equal(v.u.string, j->valuestring);
		if (v.type == HEARTH_VALUE_JSON)
			assert_ptr_equal(v.u.string, scratch);
		else
			assert_null(scratch);
		if (v.type == HEARTH_VALUE_BOOL)
			assert_int_equal(v.u.boolean, cJSON_IsTrue(j));
		if (v.type == HEARTH_VALUE_NUMBER)
			assert_true(v.u.number == 2.5);
		/* and back: the same JSON value */
		if (v.type != HEARTH_VALUE_NULL) {
			cJSON *back = NULL;
			assert_int_equal(cap_value_to_json(&v, &back), 0);
			assert_true(cap_json_equal(back, j));
			cJSON_Delete(back);
		}
		cJSON_free(scratch);
		cJSON_Delete(j);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_type_names),
		cmocka_unit_test(test_from_abi_accepts),
		cmocka_unit_test(test_from_abi_copies_fields),
		cmocka_unit_test(test_from_abi_refuses),
		cmocka_unit_test(test_from_abi_name_length_bound),
		cmocka_unit_test(test_from_abi_count_limits),
		cmocka_unit_test(test_from_abi_refuses_duplicate_feature_names),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_from_json_refuses),
		cmocka_unit_test(test_from_json_refusals_explain_limits),
		cmocka_unit_test(test_from_json_empty_array),
		cmocka_unit_test(test_validate_value),
		cmocka_unit_test(test_validate_value_copies),
		cmocka_unit_test(test_validate_hs_short_names),
		cmocka_unit_test(test_validate_text_length),
		cmocka_unit_test(test_validate_numeric_not_finite),
		cmocka_unit_test(test_json_equal),
		cmocka_unit_test(test_json_put),
		cmocka_unit_test(test_value_to_json),
		cmocka_unit_test(test_value_to_json_refuses_trailing_text),
		cmocka_unit_test(test_value_from_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
