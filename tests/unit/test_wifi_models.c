/*
 * The miIO model table (plugins/wifi/miio_models.c): every row is sound,
 * models find their rows, and polls and sets become exactly the requests
 * the devices expect (legacy get_prop/set_power for chuangmi.plug.m1, MIoT
 * get_properties/set_properties for the purifier and humidifier), and their
 * answers become hearth attributes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/wifi/convert.c"
#include "../../plugins/wifi/miio_models.c"

static cJSON *json(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	assert_non_null(j);
	return j;
}

static const struct hearth_attr *attr(const struct hearth_attr *a, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].name, name) == 0)
			return &a[i];
	return NULL;
}

static void assert_text(const struct hearth_attr *a, size_t n, const char *name,
			const char *want)
{
	const struct hearth_attr *x = attr(a, n, name);
	if (!x)
		fail_msg("no attribute %s", name);
	assert_int_equal(x->value.type, HEARTH_VALUE_STRING);
	assert_string_equal(x->value.u.string, want);
}

static void assert_number(const struct hearth_attr *a, size_t n, const char *name, double want)
{
	const struct hearth_attr *x = attr(a, n, name);
	if (!x)
		fail_msg("no attribute %s", name);
	assert_int_equal(x->value.type, HEARTH_VALUE_NUMBER);
	if (x->value.u.number != want)
		fail_msg("%s: %g, expected %g", name, x->value.u.number, want);
}

/* ---- the table ----------------------------------------------------------- */

static void check_row(const struct miio_model *m)
{
	assert_true(m->n_props <= MIIO_PROPS_MAX);
	assert_true(m->max_props > 0);
	assert_non_null(m->description);
	for (size_t c = 0; c < m->n_caps; c++) {
		const struct hearth_capability *cap = &m->caps[c];
		int i = miio_prop_index(m, cap->name);
		if (i < 0)
			fail_msg("%s: capability %s has no property", m->pattern, cap->name);
		if (cap->type == HEARTH_CAP_ENUM)
			assert_true(cap->n_values > 0);
		if (cap->type == HEARTH_CAP_BINARY)
			assert_string_not_equal(cap->value_on.u.string, cap->value_off.u.string);
		const struct miio_prop *p = &m->props[i];
		bool set = cap->access & HEARTH_ACCESS_SET;
		if (m->style == MIIO_LEGACY) {
			assert_non_null(p->prop);
			assert_int_equal(set, p->setter != NULL);
		} else {
			assert_true(p->siid > 0 && p->piid > 0);
		}
	}
	for (size_t i = 0; i < m->n_props; i++) {
		assert_non_null(miio_prop_cap(m, i));
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(m->props[i].attr, m->props[k].attr);
	}
}

static void test_rows_are_sound(void **state)
{
	(void)state;
	assert_true(miio_model_count() >= 4);
	for (size_t i = 0; i < miio_model_count(); i++)
		check_row(miio_model_at(i));
	check_row(miio_model_generic());
	assert_null(miio_model_at(miio_model_count()));
}

static void test_find(void **state)
{
	(void)state;
	static const struct {
		const char *model, *pattern;
		enum miio_style style;
	} cases[] = {
		{"chuangmi.plug.m1", "chuangmi.plug.m1", MIIO_LEGACY},
		{"chuangmi.plug.v3", "chuangmi.plug.*", MIIO_LEGACY},
		{"zhimi.airpurifier.mb3", "zhimi.airpurifier.*", MIIO_MIOT},
		{"zhimi.airpurifier.v6", "zhimi.airpurifier.v6", MIIO_LEGACY},
		{"yeelink.light.lamp1", "yeelink.light.lamp1", MIIO_LEGACY},
		{"yeelink.light.color1", "yeelink.light.*", MIIO_LEGACY},
		{"zhimi.humidifier.ca4", "zhimi.humidifier.ca4", MIIO_MIOT},
		{"zhimi.humidifier.v1", "zhimi.humidifier.v1", MIIO_LEGACY},
		{"roborock.vacuum.s5", "*", MIIO_LEGACY},
		{"", "*", MIIO_LEGACY},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct miio_model *m = miio_model_find(cases[i].model);
		assert_non_null(m);
		assert_string_equal(m->pattern, cases[i].pattern);
		assert_int_equal(m->style, cases[i].style);
	}
	assert_ptr_equal(miio_model_find(NULL), miio_model_generic());
	assert_true(miio_model_matches("a.b.*", "a.b.c"));
	assert_false(miio_model_matches("a.b.*", "a.bc"));
	assert_false(miio_model_matches("a.b.c", "a.b.cd"));
}

/* ---- the plug: legacy ---------------------------------------------------- */

static void test_plug_poll(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("chuangmi.plug.m1");
	char params[MIIO_PARAMS_MAX];
	const char *method;
	size_t next = 0, n = 0;
	struct hearth_attr a[MIIO_PROPS_MAX];
	assert_int_equal(miio_poll_build(m, 0, &method, params, sizeof(params), &next), 0);
	assert_string_equal(method, "get_prop");
	assert_string_equal(params, "[\"power\",\"temperature\"]");
	assert_int_equal(next, 2);
	assert_int_equal(miio_poll_build(m, next, &method, params, sizeof(params), &next), -ENOENT);

	cJSON *r = json("[\"on\",24.5]");
	assert_int_equal(miio_poll_parse(m, 0, 2, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_int_equal(n, 2);
	assert_text(a, n, "state", "ON");
	assert_number(a, n, "temperature", 24.5);
	cJSON_Delete(r);
	/* numbers as text, a missing value, wrong types */
	r = json("[\"off\",\"23.0\"]");
	assert_int_equal(miio_poll_parse(m, 0, 2, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_text(a, n, "state", "OFF");
	assert_number(a, n, "temperature", 23);
	cJSON_Delete(r);
	r = json("[null,\"warm\"]");
	assert_int_equal(miio_poll_parse(m, 0, 2, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_int_equal(n, 0);
	cJSON_Delete(r);
	r = json("[\"on\"]");
	assert_int_equal(miio_poll_parse(m, 0, 2, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_int_equal(n, 1);
	cJSON_Delete(r);
	r = json("{\"power\":\"on\"}");
	assert_int_equal(miio_poll_parse(m, 0, 2, r, NULL, a, MIIO_PROPS_MAX, &n), -EBADMSG);
	cJSON_Delete(r);
}

static void test_plug_set(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("chuangmi.plug.m1");
	struct miio_set_req r[4];
	char err[200];
	size_t n = 0;
	struct hearth_attr on[] = {{"state", HEARTH_STRING("ON")}};
	assert_int_equal(miio_set_build(m, on, 1, r, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].method, "set_power");
	assert_string_equal(r[0].params, "[\"on\"]");
	assert_int_equal(r[0].props_mask, 1u);
	struct hearth_attr off[] = {{"state", HEARTH_STRING("OFF")}};
	assert_int_equal(miio_set_build(m, off, 1, r, 4, &n, err, sizeof(err)), 0);
	assert_string_equal(r[0].params, "[\"off\"]");

	struct hearth_attr ro[] = {{"temperature", HEARTH_NUMBER(20)}};
	assert_int_equal(miio_set_build(m, ro, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "temperature"));
	struct hearth_attr unknown[] = {{"volume", HEARTH_NUMBER(1)}};
	assert_int_equal(miio_set_build(m, unknown, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
	struct hearth_attr twice[] = {{"state", HEARTH_STRING("ON")}, {"state", HEARTH_STRING("ON")}};
	assert_int_equal(miio_set_build(m, twice, 2, r, 4, &n, err, sizeof(err)), -EINVAL);
	struct hearth_attr bad[] = {{"state", HEARTH_STRING("MAYBE")}};
	assert_int_equal(miio_set_build(m, bad, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
	assert_int_equal(miio_set_build(m, on, 0, r, 4, &n, err, sizeof(err)), -EINVAL);

	cJSON *ok = json("[\"ok\"]"), *no = json("[\"error\"]"), *zero = json("[0]");
	assert_int_equal(miio_set_result_check(m, ok, err, sizeof(err)), 0);
	assert_int_equal(miio_set_result_check(m, zero, err, sizeof(err)), 0);
	assert_int_equal(miio_set_result_check(m, no, err, sizeof(err)), -EREMOTEIO);
	assert_non_null(strstr(err, "error"));
	cJSON_Delete(ok);
	cJSON_Delete(no);
	cJSON_Delete(zero);
}

/* ---- the purifier: MIoT -------------------------------------------------- */

static void test_purifier_poll(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("zhimi.airpurifier.mb3");
	char params[MIIO_PARAMS_MAX];
	const char *method;
	size_t next = 0, n = 0;
	struct hearth_attr a[MIIO_PROPS_MAX];
	assert_int_equal(miio_poll_build(m, 0, &method, params, sizeof(params), &next), 0);
	assert_string_equal(method, "get_properties");
	assert_int_equal(next, m->n_props);
	static const char head[] = "[{\"did\":\"state\",\"siid\":2,\"piid\":2},"
				   "{\"did\":\"mode\",\"siid\":2,\"piid\":5},";
	assert_true(strncmp(params, head, strlen(head)) == 0);
	cJSON *p = json(params);
	assert_int_equal(cJSON_GetArraySize(p), (int)m->n_props);
	cJSON_Delete(p);

	cJSON *r = json("[{\"did\":\"state\",\"siid\":2,\"piid\":2,\"code\":0,\"value\":true},"
			"{\"did\":\"mode\",\"siid\":2,\"piid\":5,\"code\":0,\"value\":2},"
			"{\"did\":\"pm25\",\"siid\":3,\"piid\":6,\"code\":0,\"value\":17},"
			"{\"did\":\"temperature\",\"siid\":3,\"piid\":8,\"code\":0,\"value\":21.2},"
			"{\"did\":\"humidity\",\"siid\":3,\"piid\":7,\"code\":-4003},"
			"{\"did\":\"child_lock\",\"siid\":7,\"piid\":1,\"code\":0,\"value\":true},"
			"{\"did\":\"led\",\"siid\":6,\"piid\":6,\"code\":0,\"value\":false},"
			"{\"did\":\"x\",\"siid\":99,\"piid\":1,\"code\":0,\"value\":1},"
			"{\"did\":\"mode\",\"siid\":2,\"piid\":5,\"code\":0,\"value\":9}]");
	assert_int_equal(miio_poll_parse(m, 0, next, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_int_equal(n, 6);
	assert_text(a, n, "state", "ON");
	assert_text(a, n, "mode", "favorite");
	assert_number(a, n, "pm25", 17);
	assert_number(a, n, "temperature", 21.2);
	assert_null(attr(a, n, "humidity")); /* code -4003: not reported */
	assert_text(a, n, "child_lock", "LOCK");
	assert_text(a, n, "led", "OFF");
	cJSON_Delete(r);
}

static void test_purifier_set(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("zhimi.airpurifier.mb3");
	struct miio_set_req r[4];
	char err[200];
	size_t n = 0;
	struct hearth_attr a[] = {{"mode", HEARTH_STRING("favorite")},
				  {"state", HEARTH_STRING("ON")},
				  {"child_lock", HEARTH_STRING("UNLOCK")},
				  {"favorite_level", HEARTH_NUMBER(9)}};
	assert_int_equal(miio_set_build(m, a, 4, r, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].method, "set_properties");
	assert_string_equal(r[0].params,
			    "[{\"did\":\"state\",\"siid\":2,\"piid\":2,\"value\":true},"
			    "{\"did\":\"mode\",\"siid\":2,\"piid\":5,\"value\":2},"
			    "{\"did\":\"favorite_level\",\"siid\":10,\"piid\":10,\"value\":9},"
			    "{\"did\":\"child_lock\",\"siid\":7,\"piid\":1,\"value\":false}]");
	struct hearth_attr bad_mode[] = {{"mode", HEARTH_STRING("turbo")}};
	assert_int_equal(miio_set_build(m, bad_mode, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
	struct hearth_attr range[] = {{"fan_level", HEARTH_NUMBER(4)}};
	assert_int_equal(miio_set_build(m, range, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
	struct hearth_attr ro[] = {{"pm25", HEARTH_NUMBER(4)}};
	assert_int_equal(miio_set_build(m, ro, 1, r, 4, &n, err, sizeof(err)), -EINVAL);

	cJSON *ok = json("[{\"did\":\"state\",\"siid\":2,\"piid\":2,\"code\":0}]");
	cJSON *no = json("[{\"did\":\"mode\",\"siid\":2,\"piid\":5,\"code\":-4005}]");
	cJSON *obj = json("{\"code\":0}");
	assert_int_equal(miio_set_result_check(m, ok, err, sizeof(err)), 0);
	assert_int_equal(miio_set_result_check(m, no, err, sizeof(err)), -EREMOTEIO);
	assert_non_null(strstr(err, "-4005"));
	assert_int_equal(miio_set_result_check(m, obj, err, sizeof(err)), -EREMOTEIO);
	cJSON_Delete(ok);
	cJSON_Delete(no);
	cJSON_Delete(obj);
}

static void test_legacy_purifier_scale(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("zhimi.airpurifier.v6");
	char params[MIIO_PARAMS_MAX];
	const char *method;
	size_t next = 0, n = 0;
	struct hearth_attr a[MIIO_PROPS_MAX];
	assert_int_equal(miio_poll_build(m, 0, &method, params, sizeof(params), &next), 0);
	assert_string_equal(params, "[\"power\",\"mode\",\"aqi\",\"temp_dec\",\"humidity\","
				    "\"favorite_level\",\"filter1_life\",\"led\",\"buzzer\","
				    "\"child_lock\"]");
	cJSON *r = json("[\"on\",\"silent\",8,215,40,10,90,\"off\",\"on\",\"off\"]");
	assert_int_equal(miio_poll_parse(m, 0, next, r, NULL, a, MIIO_PROPS_MAX, &n), 0);
	assert_int_equal(n, 10);
	assert_number(a, n, "temperature", 21.5); /* temp_dec is tenths */
	assert_text(a, n, "mode", "silent");
	assert_text(a, n, "child_lock", "UNLOCK");
	cJSON_Delete(r);
	struct miio_set_req req[4];
	char err[200];
	struct hearth_attr set[] = {{"mode", HEARTH_STRING("idle")},
				    {"favorite_level", HEARTH_NUMBER(12)}};
	assert_int_equal(miio_set_build(m, set, 2, req, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(req[0].method, "set_mode");
	assert_string_equal(req[0].params, "[\"idle\"]");
	assert_string_equal(req[1].method, "set_level_favorite");
	assert_string_equal(req[1].params, "[12]");
}

/* ---- lamps and humidifiers ----------------------------------------------- */

static void test_lamp(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("yeelink.light.lamp1");
	struct miio_set_req r[4];
	char err[200];
	size_t n = 0;
	struct hearth_attr a[] = {{"state", HEARTH_STRING("OFF")},
				  {"brightness", HEARTH_NUMBER(254)},
				  {"color_temp", HEARTH_NUMBER(250)}};
	assert_int_equal(miio_set_build(m, a, 3, r, 4, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 3);
	assert_string_equal(r[0].method, "set_bright");
	assert_string_equal(r[0].params, "[100,\"smooth\",500]");
	assert_string_equal(r[1].method, "set_ct_abx");
	assert_string_equal(r[1].params, "[4000,\"smooth\",500]");
	assert_string_equal(r[2].method, "set_power"); /* off after what needs it on */
	assert_string_equal(r[2].params, "[\"off\",\"smooth\",500]");
	assert_int_equal(miio_set_build(m, a, 3, r, 2, &n, err, sizeof(err)), -ENOSPC);

	struct hearth_attr out[MIIO_PROPS_MAX];
	int hints[MIIO_PROPS_MAX] = {-1, 120, 300};
	cJSON *res = json("[\"on\",47,3333]");
	assert_int_equal(miio_poll_parse(m, 0, 3, res, hints, out, MIIO_PROPS_MAX, &n), 0);
	assert_number(out, n, "brightness", 120); /* the hint survives the round trip */
	assert_number(out, n, "color_temp", 300);
	cJSON_Delete(res);
	res = json("[\"on\",100,2700]");
	assert_int_equal(miio_poll_parse(m, 0, 3, res, hints, out, MIIO_PROPS_MAX, &n), 0);
	assert_number(out, n, "brightness", 254);
	assert_number(out, n, "color_temp", 370);
	cJSON_Delete(res);
}

static void test_humidifier(void **state)
{
	(void)state;
	const struct miio_model *m = miio_model_find("zhimi.humidifier.ca4");
	struct miio_set_req r[4];
	char err[200];
	size_t n = 0;
	struct hearth_attr a[] = {{"target_humidity", HEARTH_NUMBER(50)},
				  {"mode", HEARTH_STRING("high")}};
	assert_int_equal(miio_set_build(m, a, 2, r, 4, &n, err, sizeof(err)), 0);
	assert_string_equal(r[0].params,
			    "[{\"did\":\"mode\",\"siid\":2,\"piid\":5,\"value\":3},"
			    "{\"did\":\"target_humidity\",\"siid\":2,\"piid\":6,\"value\":50}]");
	const struct miio_model *v1 = miio_model_find("zhimi.humidifier.v1");
	struct hearth_attr b[] = {{"mode", HEARTH_STRING("medium")}};
	assert_int_equal(miio_set_build(v1, b, 1, r, 4, &n, err, sizeof(err)), 0);
	assert_string_equal(r[0].method, "set_mode");
	assert_string_equal(r[0].params, "[\"medium\"]");
	struct hearth_attr c[] = {{"mode", HEARTH_STRING("auto")}}; /* v1 has no auto */
	assert_int_equal(miio_set_build(v1, c, 1, r, 4, &n, err, sizeof(err)), -EINVAL);
}

/* ---- chunking and miIO.info ---------------------------------------------- */

static void test_poll_chunks(void **state)
{
	(void)state;
	static const struct hearth_capability caps[] = {
		{.name = "a", .type = HEARTH_CAP_NUMERIC, .access = 5},
		{.name = "b", .type = HEARTH_CAP_NUMERIC, .access = 5},
		{.name = "c", .type = HEARTH_CAP_NUMERIC, .access = 5},
	};
	static const struct miio_prop props[] = {
		{.attr = "a", .siid = 2, .piid = 1},
		{.attr = "b", .siid = 2, .piid = 2},
		{.attr = "c", .siid = 3, .piid = 1},
	};
	static const struct miio_model m = {"test.*", "test", MIIO_MIOT, 2, 0, 0, caps, 3, props, 3};
	char params[MIIO_PARAMS_MAX];
	const char *method;
	size_t next = 0;
	assert_int_equal(miio_poll_build(&m, 0, &method, params, sizeof(params), &next), 0);
	assert_int_equal(next, 2);
	assert_int_equal(miio_poll_build(&m, next, &method, params, sizeof(params), &next), 0);
	assert_int_equal(next, 3);
	assert_string_equal(params, "[{\"did\":\"c\",\"siid\":3,\"piid\":1}]");
	assert_int_equal(miio_poll_build(&m, next, &method, params, sizeof(params), &next), -ENOENT);
	assert_int_equal(miio_poll_build(&m, 0, &method, params, 16, &next), -ENOSPC);
}

static void test_info_model(void **state)
{
	(void)state;
	char model[MIIO_MODEL_MAX] = "unchanged";
	cJSON *ok = json("{\"model\":\"chuangmi.plug.m1\",\"fw_ver\":\"1.2.4_59\"}");
	cJSON *bad = json("{\"model\":\"Chuang Mi\"}");
	cJSON *none = json("{\"fw_ver\":\"1\"}");
	assert_int_equal(miio_info_model(bad, model, sizeof(model)), -EBADMSG);
	assert_int_equal(miio_info_model(none, model, sizeof(model)), -EBADMSG);
	assert_string_equal(model, "unchanged");
	assert_int_equal(miio_info_model(ok, model, sizeof(model)), 0);
	assert_string_equal(model, "chuangmi.plug.m1");
	assert_int_equal(miio_info_model(ok, model, 8), -EBADMSG);
	cJSON_Delete(ok);
	cJSON_Delete(bad);
	cJSON_Delete(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows_are_sound),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_plug_poll),
		cmocka_unit_test(test_plug_set),
		cmocka_unit_test(test_purifier_poll),
		cmocka_unit_test(test_purifier_set),
		cmocka_unit_test(test_legacy_purifier_scale),
		cmocka_unit_test(test_lamp),
		cmocka_unit_test(test_humidifier),
		cmocka_unit_test(test_poll_chunks),
		cmocka_unit_test(test_info_model),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
