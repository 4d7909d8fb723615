/*
 * The BLE decoders (BTHome v2, MiBeacon, atc1441/pvvx), compiled in from
 * plugins/ble, against:
 *  - every BLE vector of the shared public_vectors.json, one cmocka test per
 *    vector, loaded at run time ($HEARTH_VECTORS, else
 *    ../shared/vectors/public_vectors.json): the decoded packet is turned
 *    into the vector's shape and compared as the vector says ("exact" keys
 *    must match with nothing extra, other keys must be present and equal,
 *    "transforms" apply to the decoded value, "expect_error" must fail);
 *  - our own case for every BTHome object id the decoder knows;
 *  - the cases where specifications and devices disagree (PROTOCOLS.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../../plugins/ble/ad.c"
#include "../../plugins/ble/bthome.c"
#include "../../plugins/ble/ccm.c"
#include "../../plugins/ble/dedup.c"
#include "../../plugins/ble/fields.c"
#include "../../plugins/ble/mibeacon.c"
#include "../../plugins/ble/pvvx.c"

#define VECTORS_DEFAULT "../shared/vectors/public_vectors.json"

/* ---- helpers ------------------------------------------------------------------ */

static size_t hex(const char *text, uint8_t *out, size_t cap)
{
	int n = ble_hex_decode(text, strlen(text), out, cap);
	assert_true(n >= 0);
	return (size_t)n;
}

static bool is_flat(const char *format)
{
	return strcmp(format, "pvvx_custom") == 0 || strcmp(format, "atc1441") == 0;
}

static ble_decoder_fn decoder_of(const char *format)
{
	if (strcmp(format, "bthome_v2") == 0)
		return bthome_decode;
	if (strcmp(format, "mibeacon") == 0)
		return mibeacon_decode;
	if (is_flat(format))
		return pvvx_decode;
	return NULL;
}

static void value_name(const struct ble_value *v, char *out, size_t cap)
{
	const char *name = ble_fields[v->field].name;
	if (v->index)
		snprintf(out, cap, "%s_%u", name, v->index);
	else
		snprintf(out, cap, "%s", name);
}

static cJSON *value_json(const struct ble_reading *r, const struct ble_value *v)
{
	switch (ble_fields[v->field].kind) {
	case BLE_SENSOR:
		return cJSON_CreateNumber(v->number);
	case BLE_TEXT:
		return cJSON_CreateString(ble_value_text(r, v));
	case BLE_BINARY:
		return cJSON_CreateBool(v->boolean);
	default: {
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "event_type", v->event);
		if (v->has_steps) {
			cJSON *props = cJSON_AddObjectToObject(e, "event_properties");
			cJSON_AddNumberToObject(props, "steps", v->steps);
		} else {
			cJSON_AddNullToObject(e, "event_properties");
		}
		return e;
	}
	}
}

/* Later values of the same name replace earlier ones (MiBeacon). */
static void put(cJSON *obj, const char *name, cJSON *value)
{
	if (cJSON_GetObjectItemCaseSensitive(obj, name))
		cJSON_ReplaceItemInObjectCaseSensitive(obj, name, value);
	else
		cJSON_AddItemToObject(obj, name, value);
}

static void mac_text(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02X:%02X:%02X:%02X:%02X:%02X", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
}

/* The decoded packet in the shape of a vector's "expected". */
static cJSON *view(const struct ble_reading *r, const char *format)
{
	cJSON *o = cJSON_CreateObject();
	bool flat = is_flat(format);
	cJSON *cat[4] = {o, o, o, o};
	if (!flat) {
		cat[BLE_SENSOR] = cat[BLE_TEXT] = cJSON_AddObjectToObject(o, "sensors");
		cat[BLE_BINARY] = cJSON_AddObjectToObject(o, "binary");
		cat[BLE_EVENT] = cJSON_AddObjectToObject(o, "events");
		cJSON_AddNumberToObject(o, "version", r->version);
		cJSON_AddBoolToObject(o, "encrypted", r->encrypted);
		cJSON_AddBoolToObject(o, "trigger_based", r->trigger_based);
		if (r->has_counter32)
			cJSON_AddNumberToObject(o, "counter", r->counter32);
		if (r->truncated)
			cJSON_AddNumberToObject(o, "truncated_object", r->truncated_id);
	}
	char mac[18];
	if (r->has_frame_mac) {
		mac_text(r->frame_mac, mac);
		cJSON_AddStringToObject(flat ? o : cJSON_AddObjectToObject(o, "frame"), "mac", mac);
	}
	if (r->plaintext_len) {
		char text[2 * BLE_AD_MAX + 1];
		ble_hex_encode(r->plaintext, r->plaintext_len, text);
		cJSON_AddStringToObject(o, "plaintext_hex", text);
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct ble_value *v = &r->v[i];
		enum ble_kind kind = ble_fields[v->field].kind;
		if (kind == BLE_EVENT && !v->event)
			continue;
		char name[64];
		value_name(v, name, sizeof(name));
		put(cat[kind], name, value_json(r, v));
	}
	return o;
}

static bool num_equal(double a, double b)
{
	return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b));
}

/* Deep comparison; with `subset`, keys of act that exp lacks are allowed at
 * the top of an object. */
static bool same(const cJSON *exp, const cJSON *act, bool subset, const char *path, char *why,
		 size_t why_len)
{
	if (!act) {
		snprintf(why, why_len, "%s: missing", path);
		return false;
	}
	if (cJSON_IsNumber(exp)) {
		if (cJSON_IsNumber(act) && num_equal(act->valuedouble, exp->valuedouble))
			return true;
	} else if (cJSON_IsString(exp)) {
		if (cJSON_IsString(act) && strcasecmp(exp->valuestring, act->valuestring) == 0)
			return true;
	} else if (cJSON_IsBool(exp) || cJSON_IsNull(exp)) {
		if (act->type == exp->type)
			return true;
	} else if (cJSON_IsObject(exp) && cJSON_IsObject(act)) {
		const cJSON *e;
		cJSON_ArrayForEach(e, exp)
		{
			char sub[200];
			snprintf(sub, sizeof(sub), "%s.%s", path, e->string);
			if (!same(e, cJSON_GetObjectItemCaseSensitive(act, e->string), false, sub, why,
				  why_len))
				return false;
		}
		cJSON_ArrayForEach(e, act)
		{
			if (!subset && !cJSON_GetObjectItemCaseSensitive(exp, e->string)) {
				snprintf(why, why_len, "%s.%s: not expected", path, e->string);
				return false;
			}
		}
		return true;
	}
	char *a = cJSON_PrintUnformatted(act), *x = cJSON_PrintUnformatted(exp);
	snprintf(why, why_len, "%s: got %s, expected %s", path, a, x);
	free(a);
	free(x);
	return false;
}

static bool listed(const cJSON *array, const char *key)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, array)
		if (cJSON_IsString(e) && strcmp(e->valuestring, key) == 0)
			return true;
	return false;
}

static void apply_transforms(cJSON *act, const cJSON *transforms)
{
	const cJSON *t;
	cJSON_ArrayForEach(t, transforms)
	{
		char path[100];
		snprintf(path, sizeof(path), "%s", t->string);
		char *dot = strchr(path, '.');
		assert_non_null(dot);
		*dot = '\0';
		cJSON *v = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(act, path), dot + 1);
		assert_string_equal(t->valuestring, "trunc_int");
		if (cJSON_IsNumber(v))
			cJSON_SetNumberValue(v, trunc(v->valuedouble));
	}
}

struct input {
	uint8_t sd[BLE_AD_MAX];
	size_t len;
	uint8_t mac[6];
	bool has_mac;
	uint8_t key[BLE_KEY_LEN];
	size_t key_len;
};

static void read_input(const cJSON *vec, struct input *in)
{
	const cJSON *input = cJSON_GetObjectItemCaseSensitive(vec, "input");
	const cJSON *sd = cJSON_GetObjectItemCaseSensitive(input, "service_data_hex");
	const cJSON *mac = cJSON_GetObjectItemCaseSensitive(input, "mac");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(input, "bindkey");
	memset(in, 0, sizeof(*in));
	assert_true(cJSON_IsString(sd));
	in->len = hex(sd->valuestring, in->sd, sizeof(in->sd));
	if (cJSON_IsString(mac)) {
		assert_int_equal(ble_mac_parse(mac->valuestring, in->mac), 0);
		in->has_mac = true;
	}
	if (cJSON_IsString(key))
		in->key_len = hex(key->valuestring, in->key, sizeof(in->key));
}

static int decode_input(const char *format, const struct input *in, struct ble_reading *r)
{
	ble_decoder_fn fn = decoder_of(format);
	assert_non_null(fn);
	return fn(in->sd, in->len, in->has_mac ? in->mac : NULL, in->key_len ? in->key : NULL,
		  in->key_len, r);
}

static int expected_errno(const char *text)
{
	if (strstr(text, "MIC"))
		return -EBADMSG;
	if (strstr(text, "version"))
		return -EPROTONOSUPPORT;
	return 0;
}

/* ---- one test per public vector ---------------------------------------------------- */

static void test_vector(void **state)
{
	const cJSON *vec = *state;
	const char *id = cJSON_GetObjectItemCaseSensitive(vec, "id")->valuestring;
	const char *format = cJSON_GetObjectItemCaseSensitive(vec, "format")->valuestring;
	const cJSON *expected = cJSON_GetObjectItemCaseSensitive(vec, "expected");
	const cJSON *exact = cJSON_GetObjectItemCaseSensitive(vec, "exact");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(vec, "expect_error");
	struct input in;
	static struct ble_reading r;
	read_input(vec, &in);
	int rc = decode_input(format, &in, &r);
	if (cJSON_IsString(error)) {
		if (rc >= 0)
			fail_msg("%s: decoded, but must fail with \"%s\"", id, error->valuestring);
		int want = expected_errno(error->valuestring);
		if (want && rc != want)
			fail_msg("%s: failed with %d, expected %d (%s)", id, rc, want,
				 error->valuestring);
		return;
	}
	if (rc != 0)
		fail_msg("%s: decode failed: %s (%d)", id, ble_decode_strerror(rc), rc);
	cJSON *act = view(&r, format);
	apply_transforms(act, cJSON_GetObjectItemCaseSensitive(vec, "transforms"));
	const cJSON *e;
	char why[512] = "";
	bool ok = true;
	cJSON_ArrayForEach(e, expected)
	{
		bool subset = !listed(exact, e->string);
		if (!same(e, cJSON_GetObjectItemCaseSensitive(act, e->string), subset, e->string,
			  why, sizeof(why))) {
			ok = false;
			break;
		}
	}
	if (!ok) {
		char *dump = cJSON_PrintUnformatted(act);
		print_error("%s: %s\n  decoded: %s\n", id, why, dump);
		free(dump);
	}
	cJSON_Delete(act);
	assert_true(ok);
}

/* ---- every BTHome object id, our own values ------------------------------------ */

struct id_case {
	uint8_t id;
	const char *objects; /* hex after the device info byte 0x40 */
	const char *expect;  /* {"sensors":{..}} etc., compared exactly */
};

static const struct id_case id_cases[] = {
	{0x00, "0007", "{\"sensors\":{\"packet_id\":7}}"},
	{0x01, "0155", "{\"sensors\":{\"battery\":85}}"},
	{0x02, "02e8fd", "{\"sensors\":{\"temperature\":-5.36}}"},
	{0x03, "03d007", "{\"sensors\":{\"humidity\":20}}"},
	{0x04, "04a08601", "{\"sensors\":{\"pressure\":1000}}"},
	{0x05, "0540420f", "{\"sensors\":{\"illuminance\":10000}}"},
	{0x06, "06e803", "{\"sensors\":{\"mass\":10}}"},
	{0x07, "07e903", "{\"sensors\":{\"mass\":10.01}}"},
	{0x08, "0838ff", "{\"sensors\":{\"dew_point\":-2}}"},
	{0x09, "09ff", "{\"sensors\":{\"count\":255}}"},
	{0x0a, "0a40420f", "{\"sensors\":{\"energy\":1000}}"},
	{0x0b, "0b102700", "{\"sensors\":{\"power\":100}}"},
	{0x0c, "0cb80b", "{\"sensors\":{\"voltage\":3}}"},
	{0x0d, "0d2c01", "{\"sensors\":{\"pm25\":300}}"},
	{0x0e, "0e5802", "{\"sensors\":{\"pm10\":600}}"},
	{0x0f, "0f00", "{\"binary\":{\"generic\":false}}"},
	{0x10, "1000", "{\"binary\":{\"power\":false}}"},
	{0x11, "1101", "{\"binary\":{\"opening\":true}}"},
	{0x12, "12a00f", "{\"sensors\":{\"carbon_dioxide\":4000}}"},
	{0x13, "13e803", "{\"sensors\":{\"volatile_organic_compounds\":1000}}"},
	{0x14, "141027", "{\"sensors\":{\"moisture\":100}}"},
	{0x15, "1500", "{\"binary\":{\"battery\":false}}"},
	{0x16, "1600", "{\"binary\":{\"battery_charging\":false}}"},
	{0x17, "1701", "{\"binary\":{\"carbon_monoxide\":true}}"},
	{0x18, "1800", "{\"binary\":{\"cold\":false}}"},
	{0x19, "1901", "{\"binary\":{\"connectivity\":true}}"},
	{0x1a, "1a01", "{\"binary\":{\"door\":true}}"},
	{0x1b, "1b00", "{\"binary\":{\"garage_door\":false}}"},
	{0x1c, "1c00", "{\"binary\":{\"gas\":false}}"},
	{0x1d, "1d01", "{\"binary\":{\"heat\":true}}"},
	{0x1e, "1e00", "{\"binary\":{\"light\":false}}"},
	{0x1f, "1f00", "{\"binary\":{\"lock\":false}}"},
	{0x20, "2000", "{\"binary\":{\"moisture\":false}}"},
	{0x21, "2101", "{\"binary\":{\"motion\":true}}"},
	{0x22, "2200", "{\"binary\":{\"moving\":false}}"},
	{0x23, "2300", "{\"binary\":{\"occupancy\":false}}"},
	{0x24, "2401", "{\"binary\":{\"plug\":true}}"},
	{0x25, "2501", "{\"binary\":{\"presence\":true}}"},
	{0x26, "2600", "{\"binary\":{\"problem\":false}}"},
	{0x27, "2700", "{\"binary\":{\"running\":false}}"},
	{0x28, "2801", "{\"binary\":{\"safety\":true}}"},
	{0x29, "2900", "{\"binary\":{\"smoke\":false}}"},
	{0x2a, "2a01", "{\"binary\":{\"sound\":true}}"},
	{0x2b, "2b01", "{\"binary\":{\"tamper\":true}}"},
	{0x2c, "2c00", "{\"binary\":{\"vibration\":false}}"},
	{0x2d, "2d00", "{\"binary\":{\"window\":false}}"},
	{0x2e, "2e64", "{\"sensors\":{\"humidity\":100}}"},
	{0x2f, "2f32", "{\"sensors\":{\"moisture\":50}}"},
	{0x3a, "3a02", "{\"events\":{\"button\":{\"event_type\":\"double_press\","
		       "\"event_properties\":null}}}"},
	{0x3b, "3b010405", "{\"events\":{\"command\":{\"event_type\":\"step_down\","
			   "\"event_properties\":{\"steps\":5}}}}"},
	{0x3c, "3c0205", "{\"events\":{\"dimmer\":{\"event_type\":\"rotate_right\","
			 "\"event_properties\":{\"steps\":5}}}}"},
	{0x3d, "3d3930", "{\"sensors\":{\"count\":12345}}"},
	{0x3e, "3e15cd5b07", "{\"sensors\":{\"count\":123456789}}"},
	{0x3f, "3f9cff", "{\"sensors\":{\"rotation\":-10}}"},
	{0x40, "400a00", "{\"sensors\":{\"distance\":10}}"},
	{0x41, "410a00", "{\"sensors\":{\"distance\":1}}"},
	{0x42, "42e80300", "{\"sensors\":{\"duration\":1}}"},
	{0x43, "43e803", "{\"sensors\":{\"current\":1}}"},
	{0x44, "44e803", "{\"sensors\":{\"speed\":10}}"},
	{0x45, "459cff", "{\"sensors\":{\"temperature\":-10}}"},
	{0x46, "4664", "{\"sensors\":{\"uv_index\":10}}"},
	{0x47, "47e803", "{\"sensors\":{\"volume\":100}}"},
	{0x48, "48e803", "{\"sensors\":{\"volume\":1000}}"},
	{0x49, "49e803", "{\"sensors\":{\"volume_flow_rate\":1}}"},
	{0x4a, "4ae803", "{\"sensors\":{\"voltage\":100}}"},
	{0x4b, "4be80300", "{\"sensors\":{\"gas\":1}}"},
	{0x4c, "4ce8030000", "{\"sensors\":{\"gas\":1}}"},
	{0x4d, "4de8030000", "{\"sensors\":{\"energy\":1}}"},
	{0x4e, "4ee8030000", "{\"sensors\":{\"volume\":1}}"},
	{0x4f, "4fe8030000", "{\"sensors\":{\"water\":1}}"},
	{0x50, "5000000000", "{\"sensors\":{\"timestamp\":\"1970-01-01T00:00:00+00:00\"}}"},
	{0x51, "51e803", "{\"sensors\":{\"acceleration\":1}}"},
	{0x52, "52e803", "{\"sensors\":{\"gyroscope\":1}}"},
	{0x53, "5303616263", "{\"sensors\":{\"text\":\"abc\"}}"},
	{0x54, "5402beef", "{\"sensors\":{\"raw\":\"beef\"}}"},
	{0x55, "55e8030000", "{\"sensors\":{\"volume_storage\":1}}"},
	{0x56, "562c01", "{\"sensors\":{\"conductivity\":300}}"},
	{0x57, "57f6", "{\"sensors\":{\"temperature\":-10}}"},
	{0x58, "5864", "{\"sensors\":{\"temperature\":35}}"},
	{0x59, "5980", "{\"sensors\":{\"count\":-128}}"},
	{0x5a, "5a0080", "{\"sensors\":{\"count\":-32768}}"},
	{0x5b, "5bffffffff", "{\"sensors\":{\"count\":-1}}"},
	{0x5c, "5c18fcffff", "{\"sensors\":{\"power\":-10}}"},
	{0x5d, "5d18fc", "{\"sensors\":{\"current\":-1}}"},
	{0x5e, "5e1027", "{\"sensors\":{\"direction\":100}}"},
	{0x5f, "5f6400", "{\"sensors\":{\"precipitation\":10}}"},
	{0x60, "6003", "{\"sensors\":{\"channel\":3}}"},
	{0x61, "61e803", "{\"sensors\":{\"rotational_speed\":1000}}"},
	{0x62, "6240420f00", "{\"sensors\":{\"speed\":1}}"},
	{0x63, "63c0bdf0ff", "{\"sensors\":{\"acceleration\":-1}}"},
	{0x64, "6401", "{\"sensors\":{\"light_level\":1}}"},
	{0x65, "6509", "{\"sensors\":{\"settings_revision\":9}}"},
	{0xf0, "f00200", "{\"sensors\":{\"device_type_id\":2}}"},
	{0xf1, "f104030201", "{\"sensors\":{\"firmware_version\":\"1.2.3.4\"}}"},
	{0xf2, "f2030201", "{\"sensors\":{\"firmware_version\":\"1.2.3\"}}"},
};

static void check_objects(const char *objects_hex, const char *expect_json)
{
	char text[600];
	snprintf(text, sizeof(text), "40%s", objects_hex);
	uint8_t sd[BLE_AD_MAX];
	size_t len = hex(text, sd, sizeof(sd));
	static struct ble_reading r;
	assert_int_equal(bthome_decode(sd, len, NULL, NULL, 0, &r), 0);
	cJSON *act = view(&r, "bthome_v2");
	cJSON *exp = cJSON_Parse(expect_json);
	assert_non_null(exp);
	const char *cats[] = {"sensors", "binary", "events"};
	char why[512] = "";
	bool ok = true;
	for (size_t i = 0; i < 3 && ok; i++) {
		cJSON *want = cJSON_GetObjectItemCaseSensitive(exp, cats[i]);
		cJSON *empty = cJSON_CreateObject();
		ok = same(want ? want : empty, cJSON_GetObjectItemCaseSensitive(act, cats[i]), false,
			  cats[i], why, sizeof(why));
		cJSON_Delete(empty);
	}
	if (!ok)
		print_error("objects %s: %s\n", objects_hex, why);
	cJSON_Delete(exp);
	cJSON_Delete(act);
	assert_true(ok);
	assert_false(r.truncated);
	assert_false(r.stopped_unknown);
}

static void test_bthome_every_object_id(void **state)
{
	(void)state;
	bool covered[256] = {false};
	for (size_t i = 0; i < sizeof(id_cases) / sizeof(id_cases[0]); i++) {
		check_objects(id_cases[i].objects, id_cases[i].expect);
		covered[id_cases[i].id] = true;
	}
	for (int id = 0; id < 256; id++) {
		if (bt_objs[id].how != BT_UNKNOWN && !covered[id])
			fail_msg("BTHome object id 0x%02x has no test case", id);
		if (bt_objs[id].how == BT_UNKNOWN && covered[id])
			fail_msg("0x%02x is tested but unknown to the decoder", id);
	}
}

static void test_bthome_commands(void **state)
{
	(void)state;
	check_objects("3b0000", "{\"events\":{\"command\":{\"event_type\":\"off\","
				"\"event_properties\":null}}}");
	check_objects("3b0001", "{\"events\":{\"command\":{\"event_type\":\"on\","
				"\"event_properties\":null}}}");
	check_objects("3b010305", "{\"events\":{\"command\":{\"event_type\":\"step_up\","
				  "\"event_properties\":{\"steps\":5}}}}");
	/* an unknown opcode is no event, and the length still moves parsing on */
	check_objects("3b0209aabb0164", "{\"sensors\":{\"battery\":100}}");
}

static void test_bthome_structure(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64];
	/* several objects, repeated ids in order of appearance, events indexed
	 * together with their "none" siblings */
	size_t n = hex("40000102ca09020a0a3a003a043c0103", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), 0);
	cJSON *act = view(&r, "bthome_v2");
	cJSON *exp = cJSON_Parse("{\"sensors\":{\"packet_id\":1,\"temperature_1\":25.06,"
				 "\"temperature_2\":25.7},\"events\":{\"button_2\":{\"event_type\":"
				 "\"long_press\",\"event_properties\":null},\"dimmer\":{\"event_type\":"
				 "\"rotate_left\",\"event_properties\":{\"steps\":3}}}}");
	char why[300];
	assert_true(same(exp, act, true, "", why, sizeof(why)));
	assert_true(r.has_counter8);
	assert_int_equal(r.counter8, 1);
	cJSON_Delete(exp);
	cJSON_Delete(act);

	/* an unknown id ends the packet; what came before stands */
	n = hex("40015d77aabbcc0232", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.stopped_unknown);
	assert_int_equal(r.unknown_id, 0x77);
	assert_int_equal(r.n, 1);

	/* a truncated object: earlier values stand, the packet is flagged */
	n = hex("4002ca0903bf", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.truncated);
	assert_int_equal(r.truncated_id, 3);
	assert_int_equal(r.n, 1);
	/* a text object whose length runs past the end */
	n = hex("4053ff4142", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.truncated);
	/* trigger-based flag, BTHome v1 refused, empty packet fine */
	n = hex("44", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.trigger_based);
	assert_int_equal(r.n, 0);
	n = hex("2002ca09", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, NULL, NULL, 0, &r), -EPROTONOSUPPORT);
	assert_int_equal(bthome_decode(sd, 0, NULL, NULL, 0, &r), -EINVAL);
}

static void test_bthome_encryption(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64], key[16], mac[6], rev[6];
	hex("231d39c1d7cc1ab1aee224cd096db932", key, sizeof(key));
	assert_int_equal(ble_mac_parse("54:48:E6:8F:80:A5", mac), 0);
	size_t n = hex("41e445f3c9962b332211006c7c4519", sd, sizeof(sd));
	assert_int_equal(bthome_decode(sd, n, mac, key, 16, &r), 0);
	assert_int_equal(r.counter32, 1122867);
	/* the nonce takes the MAC in display order: reversed, it fails */
	for (int i = 0; i < 6; i++)
		rev[i] = mac[5 - i];
	assert_int_equal(bthome_decode(sd, n, rev, key, 16, &r), -EBADMSG);
	assert_int_equal(r.n, 0);
	/* no key, a short key, no MAC, too short to hold counter and MIC */
	assert_int_equal(bthome_decode(sd, n, mac, NULL, 0, &r), -ENOKEY);
	assert_int_equal(bthome_decode(sd, n, mac, key, 12, &r), -ENOKEY);
	assert_int_equal(bthome_decode(sd, n, NULL, key, 16, &r), -EINVAL);
	assert_int_equal(bthome_decode(sd, 8, mac, key, 16, &r), -EINVAL);
	/* a flipped ciphertext bit fails the MIC */
	sd[2] ^= 1;
	assert_int_equal(bthome_decode(sd, n, mac, key, 16, &r), -EBADMSG);
	/* our encryption, their decoder: the spec's example comes out */
	uint8_t plain[6], nonce[13], out[6], tag[4];
	hex("02ca0903bf13", plain, sizeof(plain));
	hex("5448e68f80a5d2fc4133221100", nonce, sizeof(nonce));
	assert_int_equal(ble_ccm_encrypt(key, nonce, 13, NULL, 0, plain, 6, tag, 4, out), 0);
	uint8_t want[6], want_tag[4];
	hex("e445f3c9962b", want, sizeof(want));
	hex("6c7c4519", want_tag, sizeof(want_tag));
	assert_memory_equal(out, want, 6);
	assert_memory_equal(tag, want_tag, 4);
}

/* PROTOCOLS.md: the encryption counter must grow; a restart from a small
 * value (battery change, wrap) is allowed; repeats are duplicates. */
static void test_bthome_counter_sequences(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64], key[16], mac[6];
	hex("231d39c1d7cc1ab1aee224cd096db932", key, sizeof(key));
	ble_mac_parse("54:48:E6:8F:80:A5", mac);
	static const struct {
		const char *first, *second;
		enum ble_verdict verdict;
	} seqs[] = {
		{"41e445f3c9962b332211006c7c4519", "413e932cc7175f34221100553876af", BLE_NEW},
		{"41e445f3c9962b332211006c7c4519", "41723d3035fb88322211009e7414c0", BLE_REPLAY},
		{"41ba0db07aeef6ffffffff21fd4600", "41de40b50e676600000000d7cb95de", BLE_NEW},
		{"41e445f3c9962b332211006c7c4519", "41e445f3c9962b332211006c7c4519",
		 BLE_DUPLICATE},
	};
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		struct ble_dedup d = {0};
		size_t n = hex(seqs[i].first, sd, sizeof(sd));
		assert_int_equal(bthome_decode(sd, n, mac, key, 16, &r), 0);
		assert_int_equal(ble_dedup_check(&d, &r, 1000), BLE_NEW);
		n = hex(seqs[i].second, sd, sizeof(sd));
		assert_int_equal(bthome_decode(sd, n, mac, key, 16, &r), 0);
		assert_int_equal(ble_dedup_check(&d, &r, 1500), seqs[i].verdict);
	}
}

static void test_dedup_packet_ids(void **state)
{
	(void)state;
	struct ble_dedup d = {0};
	struct ble_reading r = {.has_counter8 = true};
	r.counter8 = 250;
	assert_int_equal(ble_dedup_check(&d, &r, 0), BLE_NEW);
	assert_int_equal(ble_dedup_check(&d, &r, 100), BLE_DUPLICATE);
	assert_int_equal(ble_dedup_check(&d, &r, 500000), BLE_DUPLICATE);
	r.counter8 = 3; /* wrapped forward */
	assert_int_equal(ble_dedup_check(&d, &r, 1000), BLE_NEW);
	r.counter8 = 255; /* a late repeat from before the wrap */
	assert_int_equal(ble_dedup_check(&d, &r, 2000), BLE_DUPLICATE);
	/* the same id after a long silence, an old id after a restart */
	r.counter8 = 3;
	assert_int_equal(ble_dedup_check(&d, &r, 1000 + 600000), BLE_NEW);
	r.counter8 = 1;
	assert_int_equal(ble_dedup_check(&d, &r, 1000 + 600000 + 5000), BLE_NEW);
	/* no counter at all: every packet is news */
	struct ble_reading none = {0};
	assert_int_equal(ble_dedup_check(&d, &none, 0), BLE_NEW);
	assert_int_equal(ble_dedup_check(&d, &none, 0), BLE_NEW);
}

/* MiBeacon capability I/O field: 2 bytes in the v5 document, 1 byte in
 * some decoders. Both shapes decode. */
static void test_mibeacon_io_capability(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64];
	/* FC 0x5070: v5, object + capability + MAC; capability 0x20: I/O follows */
	size_t n = hex("70505b0501f4830238c1a4200102" "0410020101", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_true(num_equal(r.v[0].number, 25.7));
	n = hex("70505b0501f4830238c1a42001" "0410020101", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_true(num_equal(r.v[0].number, 25.7));
	/* capability without I/O, and a frame with no objects */
	n = hex("70505b0501f4830238c1a408" "0410020201", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(num_equal(r.v[0].number, 25.8));
	n = hex("30585b05bf6b872f38c1a408", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.n, 0);
	assert_non_null(r.model);
	assert_string_equal(r.model->model, "LYWSD03MMC");
}

static void test_mibeacon_frames(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64], mac[6];
	/* v1 and mesh frames are not supported */
	size_t n = hex("50105b05034c94b438c1a40d10041001ea01", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), -EPROTONOSUPPORT);
	n = hex("d0305b05034c94b438c1a40d10041001ea01", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), -EPROTONOSUPPORT);
	/* encrypted without a key, without a MAC anywhere */
	n = hex("58585b0550f4830238c1a495ef58763c26000097e2abb5", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), -ENOKEY);
	n = hex("4858594fef546f0e7450729321010038d74333", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), -EINVAL);
	/* door values 3 (reset) and 0xFF (abnormal) say nothing */
	n = hex("5040d60301d6030a38c1a419100103", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.n, 0);
	n = hex("5040d60301d6030a38c1a4191001ff", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_int_equal(r.n, 0);
	/* unknown objects are skipped by their length, known ones still read */
	n = hex("5040d60301d6030a38c1a4ee770200000a100155", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.has_unknown);
	assert_int_equal(r.unknown_id, 0x77ee);
	assert_int_equal(r.n, 1);
	assert_true(num_equal(r.v[0].number, 85));
	/* an object longer than the frame */
	n = hex("5040d60301d6030a38c1a40a1005", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, NULL, NULL, 0, &r), 0);
	assert_true(r.truncated);
	/* no-motion: 30 s still counts as motion, 31 s does not */
	ble_mac_parse("A4:C1:38:07:F6:01", mac);
	n = hex("5040f6070101f60738c1a4" "1710041e000000", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, mac, NULL, 0, &r), 0);
	assert_true(r.v[0].boolean);
	n = hex("5040f6070101f60738c1a4" "1710041f000000", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, mac, NULL, 0, &r), 0);
	assert_false(r.v[0].boolean);
	assert_true(num_equal(r.v[1].number, 31));
}

/* MiBeacon v2/v3 legacy encryption, from the YLKG07YL dimmer captures in
 * custom-components/ble_monitor's tests (test_xiaomi_parser.py,
 * test_Xiaomi_YLKG07YL_press / _rotate): service data and 12-byte key. */
static void test_mibeacon_legacy(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t sd[64], key[12], mac[6];
	hex("b853075158487ca39a5b5ea9", key, sizeof(key));
	ble_mac_parse("F8:24:41:C5:98:8B", mac);
	size_t n = hex("5830b603d28b98c54124f8c3491476757e00000099", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, mac, key, 12, &r), 0);
	assert_string_equal(r.model->model, "YLKG07YL/YLKG08YL");
	assert_int_equal(r.n, 1);
	assert_int_equal(r.v[0].field, F_E_DIMMER);
	assert_string_equal(r.v[0].event, "press");
	assert_int_equal(r.v[0].steps, 1);
	n = hex("5830b603368b98c54124f88bb8f2661351000000d6", sd, sizeof(sd));
	assert_int_equal(mibeacon_decode(sd, n, mac, key, 12, &r), 0);
	assert_string_equal(r.v[0].event, "rotate_left");
	assert_int_equal(r.v[0].steps, 1);
	/* a wrong key makes objects that do not fit; a v4 key is the wrong size */
	key[0] ^= 0x55;
	assert_int_equal(mibeacon_decode(sd, n, mac, key, 12, &r), -EBADMSG);
	uint8_t key16[16] = {0};
	assert_int_equal(mibeacon_decode(sd, n, mac, key16, 16, &r), -ENOKEY);
}

/* pvvx's encrypted 0x181A forms, built with the firmware's layout. */
static void test_pvvx_encrypted(void **state)
{
	(void)state;
	static struct ble_reading r;
	uint8_t key[16], mac[6], nonce[11], sd[16], tag[4];
	hex("00112233445566778899aabbccddeeff", key, sizeof(key));
	ble_mac_parse("A4:C1:38:12:34:56", mac);
	uint8_t plain[6] = {0x2f, 0x09, 0xaa, 0x17, 0x4b, 0x05}; /* 23.51 °C, 60.58 %, 75 %, 0x05 */
	static const uint8_t aad = 0x11;
	hex("563412" "38c1a4" "0e161a18" "7c", nonce, sizeof(nonce));
	sd[0] = 0x7c;
	assert_int_equal(ble_ccm_encrypt(key, nonce, 11, &aad, 1, plain, 6, tag, 4, sd + 1), 0);
	memcpy(sd + 7, tag, 4);
	assert_int_equal(pvvx_decode(sd, 11, mac, key, 16, &r), 0);
	assert_int_equal(r.format, BLE_FMT_PVVX_ENC);
	cJSON *act = view(&r, "pvvx_custom");
	cJSON *exp = cJSON_Parse("{\"temperature\":23.51,\"humidity\":60.58,\"battery\":75,"
				 "\"counter\":124,\"reed_switch\":true,\"gpio_trg_output\":false,"
				 "\"gpio_trg_controlled\":true}");
	char why[300];
	assert_true(same(exp, act, true, "", why, sizeof(why)));
	cJSON_Delete(exp);
	cJSON_Delete(act);
	assert_int_equal(pvvx_decode(sd, 11, mac, NULL, 0, &r), -ENOKEY);
	key[3] ^= 1;
	assert_int_equal(pvvx_decode(sd, 11, mac, key, 16, &r), -EBADMSG);
	key[3] ^= 1;

	/* the short atc form: half degrees from -40, half percents */
	uint8_t small[3] = {80 + 47, 121, 0x80 | 64}; /* 23.5 °C, 60.5 %, 64 %, trigger on */
	hex("563412" "38c1a4" "0b161a18" "05", nonce, sizeof(nonce));
	sd[0] = 0x05;
	assert_int_equal(ble_ccm_encrypt(key, nonce, 11, &aad, 1, small, 3, tag, 4, sd + 1), 0);
	memcpy(sd + 4, tag, 4);
	assert_int_equal(pvvx_decode(sd, 8, mac, key, 16, &r), 0);
	assert_int_equal(r.format, BLE_FMT_ATC1441_ENC);
	assert_true(num_equal(r.v[0].number, 23.5));
	assert_true(num_equal(r.v[1].number, 60.5));
	assert_true(num_equal(r.v[2].number, 64));
	assert_true(r.v[3].boolean);
	/* other lengths are not these formats */
	assert_int_equal(pvvx_decode(sd, 9, mac, key, 16, &r), -EINVAL);
}

/* ---- running ----------------------------------------------------------------------- */

static cJSON *load_vectors(void)
{
	const char *path = getenv("HEARTH_VECTORS");
	if (!path || !*path)
		path = VECTORS_DEFAULT;
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	static char buf[4 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static const struct CMUnitTest own_tests[] = {
	cmocka_unit_test(test_bthome_every_object_id),
	cmocka_unit_test(test_bthome_commands),
	cmocka_unit_test(test_bthome_structure),
	cmocka_unit_test(test_bthome_encryption),
	cmocka_unit_test(test_bthome_counter_sequences),
	cmocka_unit_test(test_dedup_packet_ids),
	cmocka_unit_test(test_mibeacon_io_capability),
	cmocka_unit_test(test_mibeacon_frames),
	cmocka_unit_test(test_mibeacon_legacy),
	cmocka_unit_test(test_pvvx_encrypted),
};

int main(void)
{
	cJSON *root = load_vectors();
	const cJSON *vectors = cJSON_GetObjectItemCaseSensitive(root, "vectors");
	if (!cJSON_IsArray(vectors)) {
		fprintf(stderr, "no vectors: set HEARTH_VECTORS to public_vectors.json\n");
		return 1;
	}
	size_t cap = (size_t)cJSON_GetArraySize(vectors);
	struct CMUnitTest *tests = calloc(cap ? cap : 1, sizeof(*tests));
	size_t n = 0, per_format[4] = {0};
	static const char *const formats[] = {"bthome_v2", "mibeacon", "pvvx_custom", "atc1441"};
	const cJSON *vec;
	cJSON_ArrayForEach(vec, vectors)
	{
		const cJSON *format = cJSON_GetObjectItemCaseSensitive(vec, "format");
		for (size_t i = 0; i < 4; i++) {
			if (!cJSON_IsString(format) || strcmp(format->valuestring, formats[i]) != 0)
				continue;
			per_format[i]++;
			tests[n++] = (struct CMUnitTest){
				.name = cJSON_GetObjectItemCaseSensitive(vec, "id")->valuestring,
				.test_func = test_vector,
				.initial_state = (void *)vec,
			};
		}
	}
	printf("public BLE vectors: bthome_v2 %zu, mibeacon %zu, pvvx_custom %zu, atc1441 %zu\n",
	       per_format[0], per_format[1], per_format[2], per_format[3]);
	int failed = _cmocka_run_group_tests("ble_public_vectors", tests, n, NULL, NULL);
	failed += cmocka_run_group_tests_name("ble_decoders", own_tests, NULL, NULL);
	/* Every BLE vector the README counts must have been run. */
	if (per_format[0] != 189 || per_format[1] != 39 || per_format[2] != 10 ||
	    per_format[3] != 5) {
		fprintf(stderr, "expected 189/39/10/5 BLE vectors\n");
		failed++;
	}
	free(tests);
	cJSON_Delete(root);
	return failed ? 1 : 0;
}
