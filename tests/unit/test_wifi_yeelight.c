/*
 * The Yeelight codec (plugins/wifi/yeelight_codec.c) and the light unit
 * conversions (convert.c): the public yeelight_discovery vector from
 * ../shared/vectors/public_vectors.json (read at run time), search answers,
 * control lines, capabilities from "support", /set -> commands, and the
 * command quota.
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
#include "../../plugins/wifi/yeelight_codec.c"

#define VECTORS_PATH "../shared/vectors/public_vectors.json"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *buf = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

static double num_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str_at(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

/* ---- the public vector --------------------------------------------------- */

static void check_vector(const cJSON *v)
{
	const char *text = str_at(cJSON_GetObjectItemCaseSensitive(v, "input"), "text");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(v, "expected");
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(exp, "props");
	struct yl_discovery d;
	assert_int_equal(yl_discovery_parse(text, strlen(text), &d), 0);
	assert_int_equal(d.notify, strcmp(str_at(exp, "kind"), "advertisement") == 0);
	assert_string_equal(d.ip, str_at(exp, "ip"));
	assert_int_equal(d.port, (int)num_at(exp, "port"));
	assert_int_equal(d.max_age, (unsigned)num_at(exp, "max_age"));
	/* the id is above 2^53: compare as the JSON double, and exactly by text */
	assert_true((double)d.id == num_at(exp, "device_id"));
	assert_non_null(strstr(text, "id: "));
	char want_id[YL_ID_TEXT_MAX];
	snprintf(want_id, sizeof(want_id), "%s", strstr(text, "id: ") + 4);
	want_id[18] = '\0';
	assert_string_equal(d.id_text, want_id);
	assert_string_equal(d.model, str_at(props, "model"));
	assert_int_equal(d.fw_ver, (unsigned)num_at(props, "fw_ver"));
	assert_int_equal(d.props.power, strcmp(str_at(props, "power"), "on") == 0);
	assert_int_equal(d.props.bright, (int)num_at(props, "bright"));
	assert_int_equal(d.props.color_mode, (int)num_at(props, "color_mode"));
	assert_int_equal(d.props.ct, (int)num_at(props, "ct"));
	assert_int_equal(d.props.rgb, (long)num_at(props, "rgb"));
	assert_int_equal(d.props.hue, (int)num_at(props, "hue"));
	assert_int_equal(d.props.sat, (int)num_at(props, "sat"));
	assert_string_equal(d.props.name, str_at(props, "name"));
	assert_int_equal(d.props.has, YL_HAS_POWER | YL_HAS_BRIGHT | YL_HAS_CT | YL_HAS_RGB |
					      YL_HAS_HUE | YL_HAS_SAT | YL_HAS_COLOR_MODE |
					      YL_HAS_NAME);
	assert_true(d.support & YL_SUP_SET_POWER);
	assert_true(d.support & YL_SUP_SET_CT);
	assert_true(d.support & YL_SUP_SET_RGB);
	assert_false(d.support & YL_SUP_SET_HSV);
}

static void test_public_discovery_vector(void **state)
{
	(void)state;
	char *text = slurp(VECTORS_PATH);
	if (!text)
		fail_msg("cannot read %s (run the tests from the repository root)", VECTORS_PATH);
	cJSON *root = cJSON_Parse(text);
	free(text);
	assert_non_null(root);
	size_t seen = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "vectors"))
	{
		const cJSON *format = cJSON_GetObjectItemCaseSensitive(v, "format");
		if (!cJSON_IsString(format) || strcmp(format->valuestring, "yeelight_discovery"))
			continue;
		check_vector(v);
		seen++;
	}
	assert_int_equal(seen, 1);
	cJSON_Delete(root);
}

/* ---- discovery ----------------------------------------------------------- */

static const char answer[] = "HTTP/1.1 200 OK\r\n"
			     "Cache-Control: max-age=3600\r\n"
			     "Date: \r\n"
			     "Ext: \r\n"
			     "Location: yeelight://192.168.1.239:55443\r\n"
			     "Server: POSIX UPnP/1.0 YGLC/1\r\n"
			     "id: 0x0000000002dfb19a\r\n"
			     "model: mono\r\n"
			     "fw_ver: 45\r\n"
			     "support: get_prop set_default set_power toggle set_bright "
			     "start_cf stop_cf set_scene cron_add cron_get cron_del set_name\r\n"
			     "power: off\r\n"
			     "bright: 1\r\n"
			     "color_mode: 2\r\n"
			     "ct: 2700\r\n"
			     "rgb: 0\r\n"
			     "hue: 0\r\n"
			     "sat: 0\r\n"
			     "name: desk\r\n\r\n";

static void test_search_answer(void **state)
{
	(void)state;
	struct yl_discovery d;
	assert_int_equal(yl_discovery_parse(answer, strlen(answer), &d), 0);
	assert_false(d.notify);
	assert_string_equal(d.ip, "192.168.1.239");
	assert_int_equal(d.port, 55443);
	assert_int_equal(d.max_age, 3600);
	assert_true(d.id == 0x2dfb19aull);
	assert_string_equal(d.id_text, "0x0000000002dfb19a");
	assert_string_equal(d.model, "mono");
	assert_int_equal(d.fw_ver, 45);
	assert_int_equal(d.support, YL_SUP_GET_PROP | YL_SUP_SET_POWER | YL_SUP_TOGGLE |
					    YL_SUP_SET_BRIGHT | YL_SUP_SET_NAME);
	assert_false(d.props.power);
	assert_int_equal(d.props.bright, 1);
	assert_string_equal(d.props.name, "desk");
}

static void test_discovery_errors(void **state)
{
	(void)state;
	struct yl_discovery d;
	char search[256];
	int n = yl_search_build(search, sizeof(search), NULL);
	assert_true(n > 0);
	/* a search is not an answer */
	assert_int_equal(yl_discovery_parse(search, (size_t)n, &d), -EBADMSG);
	static const char *const bad[] = {
		"HTTP/1.1 200 OK\r\nLocation: yeelight://10.0.0.2:55443\r\n\r\n", /* no id */
		"HTTP/1.1 200 OK\r\nid: 0x1\r\n\r\n",				   /* no Location */
		"HTTP/1.1 200 OK\r\nid: 0x1\r\nLocation: http://10.0.0.2:80/\r\n",
		"HTTP/1.1 200 OK\r\nid: 0x1\r\nLocation: yeelight://10.0.0.2:70000\r\n",
		"HTTP/1.1 200 OK\r\nid: 0x1\r\nLocation: yeelight://evil.example:1\r\n",
		"HTTP/1.1 200 OK\r\nid: 0x11112222333344445\r\nLocation: yeelight://1.2.3.4\r\n",
		"HTTP/1.1 404 Not Found\r\nid: 0x1\r\nLocation: yeelight://1.2.3.4:1\r\n",
		"",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(yl_discovery_parse(bad[i], strlen(bad[i]), &d), -EBADMSG);
	/* a Location without a port means 55443; bad values are skipped */
	static const char ok[] = "HTTP/1.1 200 OK\nid: 0x2\nLocation: yeelight://10.0.0.9\n"
				 "bright: 300\npower: maybe\nct: 3000\n";
	assert_int_equal(yl_discovery_parse(ok, strlen(ok), &d), 0);
	assert_int_equal(d.port, YL_PORT);
	assert_int_equal(d.props.has, YL_HAS_CT);
}

static void test_search_build(void **state)
{
	(void)state;
	char buf[256];
	static const char want[] = "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1982\r\n"
				   "MAN: \"ssdp:discover\"\r\nST: wifi_bulb\r\n\r\n";
	assert_int_equal(yl_search_build(buf, sizeof(buf), NULL), (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(yl_search_build(buf, 20, NULL), -ENOSPC);
}

/* ---- control lines ------------------------------------------------------- */

static void test_lines(void **state)
{
	(void)state;
	struct yl_msg m;
	const char *l1 = "{\"id\":1,\"result\":[\"ok\"]}\r\n";
	assert_int_equal(yl_line_parse(l1, strlen(l1), &m), 0);
	assert_int_equal(m.kind, YL_MSG_RESULT);
	assert_int_equal(m.id, 1);
	assert_int_equal(m.n_results, 1);
	assert_string_equal(m.results[0], "ok");

	const char *l2 = "{\"id\":9,\"error\":{\"code\":-1,\"message\":\"unsupported method\"}}";
	assert_int_equal(yl_line_parse(l2, strlen(l2), &m), 0);
	assert_int_equal(m.kind, YL_MSG_ERROR);
	assert_int_equal(m.id, 9);
	assert_int_equal(m.error_code, -1);
	assert_string_equal(m.error_message, "unsupported method");

	const char *l3 = "{\"method\":\"props\",\"params\":{\"power\":\"on\",\"bright\":\"10\","
			 "\"ct\":4000,\"flowing\":\"0\",\"rgb\":\"oops\"}}";
	assert_int_equal(yl_line_parse(l3, strlen(l3), &m), 0);
	assert_int_equal(m.kind, YL_MSG_PROPS);
	assert_int_equal(m.props.has, YL_HAS_POWER | YL_HAS_BRIGHT | YL_HAS_CT);
	assert_true(m.props.power);
	assert_int_equal(m.props.bright, 10);
	assert_int_equal(m.props.ct, 4000);

	static const char *const bad[] = {
		"", "[]", "{}", "not json", "{\"id\":\"x\",\"result\":[]}", "{\"id\":1}",
		"{\"method\":\"other\",\"params\":{}}", "{\"method\":\"props\",\"params\":[]}",
		"{\"id\":-4,\"result\":[]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(yl_line_parse(bad[i], strlen(bad[i]), &m), -EBADMSG);
}

static void test_get_prop(void **state)
{
	(void)state;
	char params[256];
	struct yl_msg m;
	struct yl_props p = {0};
	assert_true(yl_get_prop_params(params, sizeof(params)) > 0);
	assert_string_equal(params, "[\"power\",\"bright\",\"ct\",\"rgb\",\"hue\",\"sat\","
				    "\"color_mode\",\"name\"]");
	const char *l = "{\"id\":3,\"result\":[\"on\",\"80\",\"2700\",\"\",\"\",\"\",\"2\",\"\"]}";
	assert_int_equal(yl_line_parse(l, strlen(l), &m), 0);
	assert_int_equal(yl_get_prop_apply(&m, yl_prop_names, yl_prop_count, &p), 4);
	assert_int_equal(p.has, YL_HAS_POWER | YL_HAS_BRIGHT | YL_HAS_CT | YL_HAS_COLOR_MODE);
	assert_int_equal(p.bright, 80);
	assert_int_equal(p.color_mode, 2);
}

static void test_command_format(void **state)
{
	(void)state;
	char buf[128];
	static const char want[] = "{\"id\":5,\"method\":\"set_power\",\"params\":[\"on\",\"smooth\","
				   "500]}\r\n";
	assert_int_equal(yl_command_format(buf, sizeof(buf), 5, "set_power", "[\"on\",\"smooth\",500]"),
			 (int)strlen(want));
	assert_string_equal(buf, want);
	assert_int_equal(yl_command_format(buf, sizeof(buf), 5, "bad\"m", NULL), -EINVAL);
	assert_int_equal(yl_command_format(buf, 16, 5, "toggle", NULL), -ENOSPC);
	assert_true(yl_command_format(buf, sizeof(buf), 6, "toggle", NULL) > 0);
	assert_string_equal(buf, "{\"id\":6,\"method\":\"toggle\",\"params\":[]}\r\n");
}

/* ---- capabilities and state ---------------------------------------------- */

static const struct hearth_capability *cap_named(const struct hearth_capability *caps, size_t n,
						 const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(caps[i].name, name) == 0)
			return &caps[i];
	return NULL;
}

static void test_caps(void **state)
{
	(void)state;
	struct hearth_capability caps[8];
	unsigned all = YL_SUP_GET_PROP | YL_SUP_SET_POWER | YL_SUP_SET_BRIGHT | YL_SUP_SET_CT |
		       YL_SUP_SET_RGB | YL_SUP_SET_HSV | YL_SUP_SET_NAME;
	size_t n = yl_caps_build(all, "color", caps, 8);
	assert_int_equal(n, 7);
	const struct hearth_capability *ct = cap_named(caps, n, "color_temp");
	assert_non_null(ct);
	assert_true(ct->min == 154 && ct->max == 588);
	assert_int_equal(cap_named(caps, n, "color")->type, HEARTH_CAP_COMPOSITE);
	assert_int_equal(cap_named(caps, n, "color")->n_features, 5);
	assert_int_equal(cap_named(caps, n, "transition")->access, HEARTH_ACCESS_SET);

	n = yl_caps_build(YL_SUP_SET_POWER | YL_SUP_SET_BRIGHT | YL_SUP_SET_CT, "mono", caps, 8);
	assert_int_equal(n, 4);
	assert_true(cap_named(caps, n, "color_temp")->max == 370);
	assert_null(cap_named(caps, n, "color"));

	n = yl_caps_build(0, "", caps, 8);
	assert_int_equal(n, 2); /* power and transition, whatever a bulb says */
	assert_non_null(cap_named(caps, n, "state"));
}

static const struct hearth_attr *attr_named(const struct hearth_attr *a, size_t n,
					    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i].name, name) == 0)
			return &a[i];
	return NULL;
}

static void test_props_attrs(void **state)
{
	(void)state;
	unsigned all = YL_SUP_SET_POWER | YL_SUP_SET_BRIGHT | YL_SUP_SET_CT | YL_SUP_SET_HSV |
		       YL_SUP_SET_NAME;
	struct yl_props p = {0};
	struct yl_hints h = {-1, -1};
	struct hearth_attr a[8];
	char color[128];
	assert_int_equal(yl_prop_set(&p, "power", "on"), 0);
	assert_int_equal(yl_prop_set(&p, "bright", "47"), 0);
	assert_int_equal(yl_prop_set(&p, "ct", "3333"), 0);
	assert_int_equal(yl_prop_set(&p, "rgb", "65280"), 0);
	assert_int_equal(yl_prop_set(&p, "hue", "200"), 0);
	assert_int_equal(yl_prop_set(&p, "sat", "80"), 0);
	assert_int_equal(yl_prop_set(&p, "color_mode", "3"), 0);
	assert_int_equal(yl_prop_set(&p, "name", "lamp"), 0);
	assert_int_equal(yl_prop_set(&p, "bright", "101"), -EINVAL);
	assert_int_equal(yl_prop_set(&p, "flowing", "1"), -ENOENT);
	size_t n = yl_props_attrs(&p, ~0u, all, "color", &h, a, 8, color, sizeof(color));
	assert_int_equal(n, 6);
	assert_string_equal(attr_named(a, n, "state")->value.u.string, "ON");
	assert_true(attr_named(a, n, "brightness")->value.u.number == 119);
	assert_true(attr_named(a, n, "color_temp")->value.u.number == 300);
	assert_int_equal(attr_named(a, n, "color")->value.type, HEARTH_VALUE_JSON);
	assert_string_equal(color, "{\"hue\":200,\"saturation\":80,\"r\":0,\"g\":255,\"b\":0}");
	assert_string_equal(attr_named(a, n, "color_mode")->value.u.string, "hs");
	assert_string_equal(attr_named(a, n, "bulb_name")->value.u.string, "lamp");
	/* what hearth set reads back unchanged: 120 -> 47 % -> 120 */
	h.bright = 120;
	n = yl_props_attrs(&p, YL_HAS_BRIGHT, all, "color", &h, a, 8, color, sizeof(color));
	assert_int_equal(n, 1);
	assert_true(a[0].value.u.number == 120);
	/* only the asked fields */
	n = yl_props_attrs(&p, YL_HAS_POWER, all, "color", &h, a, 8, color, sizeof(color));
	assert_int_equal(n, 1);
}

/* ---- /set ---------------------------------------------------------------- */

#define ALL_SUPPORT                                                                              \
	(YL_SUP_SET_POWER | YL_SUP_SET_BRIGHT | YL_SUP_SET_CT | YL_SUP_SET_RGB | YL_SUP_SET_HSV | \
	 YL_SUP_SET_NAME)

static void test_set_order_and_effects(void **state)
{
	(void)state;
	struct yl_props cur = {.rgb = 0x102030, .hue = 10, .sat = 20};
	struct yl_hints h = {-1, -1};
	struct yl_req r[8];
	char err[160];
	size_t n = 0;
	struct hearth_attr on[] = {{"brightness", HEARTH_NUMBER(254)},
				   {"color_temp", HEARTH_NUMBER(250)},
				   {"state", HEARTH_STRING("ON")}};
	assert_int_equal(yl_set_build(on, 3, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 0);
	assert_int_equal(n, 3);
	assert_string_equal(r[0].method, "set_power");
	assert_string_equal(r[0].params, "[\"on\",\"smooth\",500]");
	assert_string_equal(r[1].method, "set_bright");
	assert_string_equal(r[1].params, "[100,\"smooth\",500]");
	assert_string_equal(r[2].method, "set_ct_abx");
	assert_string_equal(r[2].params, "[4000,\"smooth\",500]");
	assert_string_equal(r[2].group, "color");
	assert_int_equal(h.bright, 254);
	assert_int_equal(h.mired, 250);

	struct hearth_attr off[] = {{"state", HEARTH_STRING("OFF")},
				    {"brightness", HEARTH_NUMBER(1)},
				    {"transition", HEARTH_NUMBER(0)}};
	assert_int_equal(yl_set_build(off, 3, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].params, "[1,\"sudden\",0]");
	assert_string_equal(r[1].method, "set_power"); /* off goes last */
	assert_string_equal(r[1].params, "[\"off\",\"sudden\",0]");

	struct hearth_attr slow[] = {{"state", HEARTH_STRING("ON")},
				     {"transition", HEARTH_NUMBER(0.01)}};
	assert_int_equal(yl_set_build(slow, 2, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 0);
	assert_string_equal(r[0].params, "[\"on\",\"smooth\",30]"); /* the bulb's minimum */
}

static void test_set_color(void **state)
{
	(void)state;
	struct yl_props cur = {.rgb = 0x102030, .hue = 10, .sat = 20};
	struct yl_hints h = {-1, -1};
	struct yl_req r[8];
	char err[160];
	size_t n = 0;
	struct hearth_attr hs[] = {{"color", HEARTH_JSON("{\"hue\":120}")}};
	assert_int_equal(yl_set_build(hs, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 0);
	assert_int_equal(n, 1);
	assert_string_equal(r[0].method, "set_hsv");
	assert_string_equal(r[0].params, "[120,20,\"smooth\",500]"); /* saturation kept */
	struct hearth_attr rgb[] = {{"color", HEARTH_JSON("{\"r\":255,\"b\":1}")}};
	assert_int_equal(yl_set_build(rgb, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 0);
	assert_string_equal(r[0].method, "set_rgb");
	assert_string_equal(r[0].params, "[16719873,\"smooth\",500]"); /* 0xff2001 */

	static const char *const bad[] = {"{\"hue\":1,\"r\":2}", "{}", "[1]", "{\"hue\":400}",
					  "{\"r\":\"x\"}", "nope"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hearth_attr a[] = {{"color", HEARTH_JSON(bad[i])}};
		err[0] = '\0';
		assert_int_equal(yl_set_build(a, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
					      sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "color"));
	}
}

static void test_set_refused(void **state)
{
	(void)state;
	struct yl_props cur = {0};
	struct yl_hints h = {-1, -1};
	struct yl_req r[8];
	char err[160];
	size_t n = 77;
	struct hearth_attr ct[] = {{"color_temp", HEARTH_NUMBER(300)}};
	assert_int_equal(yl_set_build(ct, 1, &cur, YL_SUP_SET_POWER, "mono", r, 8, &n, &h, err,
				      sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "color_temp"));
	assert_int_equal(n, 77); /* untouched */
	struct hearth_attr other[] = {{"volume", HEARTH_NUMBER(3)}};
	assert_int_equal(yl_set_build(other, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 -EINVAL);
	struct hearth_attr only_t[] = {{"transition", HEARTH_NUMBER(1)}};
	assert_int_equal(yl_set_build(only_t, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 -EINVAL);
	struct hearth_attr name[] = {{"bulb_name", HEARTH_STRING("a\"b")}};
	assert_int_equal(yl_set_build(name, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 -EINVAL);
	struct hearth_attr state_bad[] = {{"state", HEARTH_STRING("MAYBE")}};
	assert_int_equal(yl_set_build(state_bad, 1, &cur, ALL_SUPPORT, "color", r, 8, &n, &h, err,
				      sizeof(err)),
			 -EINVAL);
	assert_int_equal(h.bright, -1);
}

/* ---- quota and conversions ----------------------------------------------- */

static void test_quota(void **state)
{
	(void)state;
	struct yl_quota q;
	yl_quota_init(&q, 60, 60000);
	for (int i = 0; i < 60; i++) {
		assert_int_equal(yl_quota_wait(&q, 1000 + i * 10), 0);
		yl_quota_take(&q, 1000 + i * 10);
	}
	/* the 61st waits until the first leaves the window */
	assert_int_equal(yl_quota_wait(&q, 2000), 59000);
	assert_int_equal(yl_quota_wait(&q, 61000), 0);
	yl_quota_take(&q, 61000);
	assert_int_equal(yl_quota_wait(&q, 61001), 9);
	yl_quota_init(&q, 0, 1000); /* limits are kept sane */
	assert_int_equal(q.limit, 1);
	yl_quota_init(&q, 100000, 1000);
	assert_int_equal(q.limit, YL_QUOTA_MAX);
}

static void test_conversions(void **state)
{
	(void)state;
	assert_int_equal(conv_pct_from_bright(254), 100);
	assert_int_equal(conv_pct_from_bright(0), 1);
	assert_int_equal(conv_pct_from_bright(127), 50);
	assert_int_equal(conv_bright_from_pct(100, -1), 254);
	assert_int_equal(conv_bright_from_pct(47, -1), 119);
	assert_int_equal(conv_bright_from_pct(47, 120), 120);
	assert_int_equal(conv_bright_from_pct(48, 120), 122);
	assert_int_equal(conv_kelvin_from_mired(250, 1700, 6500), 4000);
	assert_int_equal(conv_kelvin_from_mired(100, 1700, 6500), 6500);
	assert_int_equal(conv_kelvin_from_mired(1000, 2700, 6500), 2700);
	assert_int_equal(conv_mired_from_kelvin(4000, -1, 1700, 6500), 250);
	assert_int_equal(conv_mired_from_kelvin(3333, 300, 1700, 6500), 300);
	assert_int_equal(conv_mired_from_kelvin(6500, 100, 1700, 6500), 100);
	int r, g, b;
	conv_rgb_split(0x12ab34, &r, &g, &b);
	assert_int_equal(r, 0x12);
	assert_int_equal(g, 0xab);
	assert_int_equal(b, 0x34);
	assert_int_equal(conv_rgb_join(300, -1, 0x34), 0xff0034);
	/* every brightness survives the round trip with its hint */
	for (int v = 0; v <= 254; v++)
		assert_int_equal(conv_bright_from_pct(conv_pct_from_bright(v), v), v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_discovery_vector),
		cmocka_unit_test(test_search_answer),
		cmocka_unit_test(test_discovery_errors),
		cmocka_unit_test(test_search_build),
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_get_prop),
		cmocka_unit_test(test_command_format),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_props_attrs),
		cmocka_unit_test(test_set_order_and_effects),
		cmocka_unit_test(test_set_color),
		cmocka_unit_test(test_set_refused),
		cmocka_unit_test(test_quota),
		cmocka_unit_test(test_conversions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
