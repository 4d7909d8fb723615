/*
 * Home Assistant discovery against a real mosquitto and hearthd with the
 * virtual plugin: retained configs under homeassistant/..., a light driven
 * by exactly the JSON HA's light (JSON schema) sends, renames, removals,
 * HA's birth message, a custom prefix and discovery turned off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 3000
#define QUIET "[plugin.virtual]\ninterval_ms = 0\n"

#define LIGHT_CFG "homeassistant/light/hearth_virtual_light-1/light/config"
#define PLUG_CFG "homeassistant/switch/hearth_virtual_plug-1/state/config"
#define BRIDGE_CFG "homeassistant/binary_sensor/hearth_bridge/connection_state/config"

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
};

static int start(void **state, const char *extra)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start(&e->hub, e->broker.port, extra), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	assert_int_equal(client_subscribe(e->c, "homeassistant/#"), 0);
	*state = e;
	return 0;
}

static int setup(void **state)
{
	return start(state, QUIET);
}

static int teardown(void **state)
{
	struct env *e = *state;
	client_free(e->c);
	int status = hearthd_cleanup(&e->hub);
	broker_stop(&e->broker);
	free(e);
	assert_int_equal(status, 0);
	return 0;
}

/* A retained config, waiting for the daemon's batches to get there. */
static cJSON *retained_json(struct env *e, const char *topic)
{
	for (int tries = 0; tries < 20; tries++) {
		char *p = client_retained(e->broker.port, topic, 250);
		cJSON *j = p && p[0] ? cJSON_Parse(p) : NULL;
		free(p);
		if (j)
			return j;
	}
	return NULL;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v))
		fail_msg("'%s' is not a string", key);
	return v->valuestring;
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsNumber(v))
		fail_msg("'%s' is not a number", key);
	return v->valuedouble;
}

static void expect_array(const cJSON *o, const char *key, const char *json)
{
	cJSON *want = cJSON_Parse(json);
	assert_non_null(want);
	if (!cJSON_Compare(want, cJSON_GetObjectItemCaseSensitive(o, key), true))
		fail_msg("'%s' is not %s", key, json);
	cJSON_Delete(want);
}

/* Forget what the subscription brought so far (retained configs). */
static void settle(struct env *e)
{
	client_pump(e->c, 200);
	client_clear(e->c);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void configs_retained(void **state)
{
	struct env *e = *state;
	cJSON *light = retained_json(e, LIGHT_CFG);
	assert_non_null(light);
	assert_string_equal(str(light, "schema"), "json");
	assert_string_equal(str(light, "command_topic"), "hearth/virtual/light-1/set");
	assert_string_equal(str(light, "state_topic"), "hearth/virtual/light-1");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(light, "brightness")));
	assert_int_equal((int)num(light, "brightness_scale"), 254);
	expect_array(light, "supported_color_modes", "[\"color_temp\"]");
	assert_int_equal((int)num(light, "min_mireds"), 150);
	assert_int_equal((int)num(light, "max_mireds"), 500);
	assert_string_equal(str(light, "unique_id"), "hearth_virtual_light-1_light");
	assert_string_equal(str(light, "availability_mode"), "all");
	expect_array(light, "availability",
		     "[{\"topic\":\"hearth/bridge/state\",\"value_template\":\"{{ value_json.state }}\"},"
		     "{\"topic\":\"hearth/virtual/light-1/availability\","
		     "\"value_template\":\"{{ value_json.state }}\"}]");
	cJSON *dev = cJSON_GetObjectItem(light, "device");
	expect_array(dev, "identifiers", "[\"hearth_virtual_light-1\"]");
	assert_string_equal(str(dev, "via_device"), "hearth_bridge");
	assert_string_equal(str(dev, "manufacturer"), "hearth");
	cJSON_Delete(light);

	cJSON *bridge = retained_json(e, BRIDGE_CFG);
	assert_non_null(bridge);
	assert_string_equal(str(bridge, "state_topic"), "hearth/bridge/state");
	assert_string_equal(str(bridge, "device_class"), "connectivity");
	cJSON_Delete(bridge);

	cJSON *contact = retained_json(
		e, "homeassistant/binary_sensor/hearth_virtual_contact-1/contact/config");
	assert_non_null(contact);
	assert_string_equal(str(contact, "device_class"), "door");
	assert_string_equal(str(contact, "payload_on"), "False");
	cJSON_Delete(contact);

	cJSON *action = retained_json(e, "homeassistant/event/hearth_virtual_button-1/action/config");
	assert_non_null(action);
	assert_string_equal(str(action, "state_topic"), "hearth/bridge/event");
	expect_array(action, "event_types", "[\"single\",\"double\",\"hold\",\"release\"]");
	cJSON_Delete(action);

	cJSON *temp = retained_json(
		e, "homeassistant/sensor/hearth_virtual_climate-1/temperature/config");
	assert_non_null(temp);
	assert_string_equal(str(temp, "device_class"), "temperature");
	assert_string_equal(str(temp, "unit_of_measurement"), "°C");
	cJSON_Delete(temp);
}

/*
 * What HA's JSON-schema light publishes for light.turn_on with brightness
 * 128 (of HA's 255) and a 1 s transition: the state, then the transition
 * (a float), then the brightness scaled to brightness_scale 254 and rounded
 * (128 * 254 / 255 = 127.498..., so 127).
 */
#define HA_TURN_ON "{\"state\":\"ON\",\"transition\":1.0,\"brightness\":127}"

static void light_command_round_trip(void **state)
{
	struct env *e = *state;
	cJSON *light = retained_json(e, LIGHT_CFG);
	assert_non_null(light);
	char topic[256];
	snprintf(topic, sizeof(topic), "%s", str(light, "command_topic"));
	cJSON_Delete(light);
	assert_int_equal(client_subscribe(e->c, "hearth/virtual/light-1"), 0);
	client_clear(e->c);
	assert_int_equal(client_publish(e->c, topic, HA_TURN_ON, false), 0);
	/* the fade ends on the brightness HA asked for */
	cJSON *st = NULL;
	for (int i = 0; i < 40 && !st; i++) {
		cJSON *j = client_wait_json(e->c, "hearth/virtual/light-1", NULL, WAIT_MS);
		assert_non_null(j);
		const cJSON *b = cJSON_GetObjectItem(j, "brightness");
		if (cJSON_IsNumber(b) && b->valueint == 127 &&
		    strcmp(str(j, "state"), "ON") == 0)
			st = j;
		else
			cJSON_Delete(j);
	}
	assert_non_null(st);
	cJSON_Delete(st);

	/* a colour temperature in mireds, as HA sends it with color_temp_kelvin unset */
	client_clear(e->c);
	assert_int_equal(client_publish(e->c, topic, "{\"state\":\"ON\",\"color_temp\":300}", false),
			 0);
	cJSON *ct = NULL;
	for (int i = 0; i < 40 && !ct; i++) {
		cJSON *j = client_wait_json(e->c, "hearth/virtual/light-1", NULL, WAIT_MS);
		assert_non_null(j);
		const cJSON *v = cJSON_GetObjectItem(j, "color_temp");
		if (cJSON_IsNumber(v) && v->valueint == 300)
			ct = j;
		else
			cJSON_Delete(j);
	}
	assert_non_null(ct);
	/* HA's JSON light shows the colour temperature back only with a mode */
	assert_string_equal(str(ct, "color_mode"), "color_temp");
	cJSON_Delete(ct);

	client_clear(e->c);
	assert_int_equal(client_publish(e->c, topic, "{\"state\":\"OFF\"}", false), 0);
	char *off = client_wait(e->c, "hearth/virtual/light-1", "\"state\":\"OFF\"", 5000);
	assert_non_null(off);
	free(off);
}

/* A switch's HA payloads are hearth /set payloads too. */
static void switch_command_round_trip(void **state)
{
	struct env *e = *state;
	cJSON *plug = retained_json(e, PLUG_CFG);
	assert_non_null(plug);
	assert_int_equal(client_subscribe(e->c, "hearth/virtual/plug-1"), 0);
	/* off, then on: a state that does not change is not published again */
	static const char *const steps[][2] = {{"payload_off", "\"state\":\"OFF\""},
					       {"payload_on", "\"state\":\"ON\""}};
	for (size_t i = 0; i < 2; i++) {
		client_clear(e->c);
		assert_int_equal(client_publish(e->c, str(plug, "command_topic"),
						str(plug, steps[i][0]), false),
				 0);
		char *p = client_wait(e->c, "hearth/virtual/plug-1", steps[i][1], WAIT_MS);
		assert_non_null(p);
		free(p);
	}
	cJSON_Delete(plug);
}

static void rename_republishes(void **state)
{
	struct env *e = *state;
	cJSON *plug = retained_json(e, PLUG_CFG);
	assert_non_null(plug);
	cJSON_Delete(plug);
	settle(e);
	cJSON *r = client_request(e->c, "device/rename",
				  "\"from\":\"virtual/plug-1\",\"to\":\"kitchen/plug\"", WAIT_MS);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON_Delete(r);
	/* same topic (it is the id's), new topics inside */
	char *p = client_wait(e->c, PLUG_CFG, "\"command_topic\":\"hearth/kitchen/plug/set\"",
			      WAIT_MS);
	assert_non_null(p);
	free(p);
	cJSON *again = retained_json(e, PLUG_CFG);
	assert_non_null(again);
	assert_string_equal(str(again, "state_topic"), "hearth/kitchen/plug");
	assert_string_equal(str(cJSON_GetObjectItem(again, "device"), "name"), "kitchen/plug");
	cJSON_Delete(again);
}

static void remove_clears(void **state)
{
	struct env *e = *state;
	static const char *const topics[] = {
		"homeassistant/binary_sensor/hearth_virtual_contact-1/contact/config",
		"homeassistant/sensor/hearth_virtual_contact-1/battery/config",
	};
	for (size_t i = 0; i < 2; i++) {
		cJSON *j = retained_json(e, topics[i]);
		assert_non_null(j);
		cJSON_Delete(j);
	}
	settle(e);
	cJSON *r = client_request(e->c, "device/remove", "\"id\":\"virtual/contact-1\"", WAIT_MS);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON_Delete(r);
	for (size_t i = 0; i < 2; i++) {
		char *p = client_wait(e->c, topics[i], NULL, WAIT_MS);
		assert_non_null(p);
		assert_string_equal(p, "");
		free(p);
		/* nothing retained any more */
		char *left = client_retained(e->broker.port, topics[i], 300);
		assert_true(left == NULL || left[0] == '\0');
		free(left);
	}
}

static void birth_republishes(void **state)
{
	struct env *e = *state;
	cJSON *light = retained_json(e, LIGHT_CFG);
	assert_non_null(light);
	cJSON_Delete(light);
	settle(e);
	assert_int_equal(client_publish(e->c, "homeassistant/status", "offline", false), 0);
	client_pump(e->c, 300);
	assert_int_equal(client_count(e->c, LIGHT_CFG), 0);
	assert_int_equal(client_publish(e->c, "homeassistant/status", "online", false), 0);
	char *b = client_wait(e->c, BRIDGE_CFG, "connectivity", WAIT_MS);
	assert_non_null(b);
	free(b);
	char *l = client_wait(e->c, LIGHT_CFG, "\"schema\":\"json\"", WAIT_MS);
	assert_non_null(l);
	free(l);
	assert_true(hearthd_log_contains(&e->hub, "Home Assistant is online"));
}

static int setup_prefix(void **state)
{
	return start(state, QUIET "[homeassistant]\ndiscovery_prefix = ha-test\n");
}

static void custom_prefix(void **state)
{
	struct env *e = *state;
	cJSON *light = retained_json(e, "ha-test/light/hearth_virtual_light-1/light/config");
	assert_non_null(light);
	cJSON_Delete(light);
	char *none = client_retained(e->broker.port, LIGHT_CFG, 300);
	assert_null(none);
	/* HA's birth on its own prefix */
	client_clear(e->c);
	assert_int_equal(client_subscribe(e->c, "ha-test/#"), 0);
	assert_int_equal(client_publish(e->c, "ha-test/status", "online", false), 0);
	char *l = client_wait(e->c, "ha-test/light/hearth_virtual_light-1/light/config", NULL,
			      WAIT_MS);
	assert_non_null(l);
	free(l);
}

static int setup_off(void **state)
{
	return start(state, QUIET "[homeassistant]\nenabled = false\n");
}

static void disabled_publishes_nothing(void **state)
{
	struct env *e = *state;
	client_pump(e->c, 500);
	assert_int_equal(client_count(e->c, LIGHT_CFG), 0);
	assert_int_equal(client_count(e->c, BRIDGE_CFG), 0);
	char *none = client_retained(e->broker.port, LIGHT_CFG, 300);
	assert_null(none);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(configs_retained, setup, teardown),
		cmocka_unit_test_setup_teardown(light_command_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(switch_command_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(rename_republishes, setup, teardown),
		cmocka_unit_test_setup_teardown(remove_clears, setup, teardown),
		cmocka_unit_test_setup_teardown(birth_republishes, setup, teardown),
		cmocka_unit_test_setup_teardown(custom_prefix, setup_prefix, teardown),
		cmocka_unit_test_setup_teardown(disabled_publishes_nothing, setup_off, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
