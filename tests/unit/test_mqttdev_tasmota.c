/*
 * The mqttdev plugin's Tasmota parser and encoder on payloads written from
 * Tasmota's documentation (tests/fixtures/mqttdev/README.md): discovery
 * config and sensors into capabilities, the device's full topic and
 * prefixes, state messages, LWT, and the exact commands a hearth /set
 * becomes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/mqttdev/common.c"
#include "../../plugins/mqttdev/tasmota.c"

#define FIX "tests/fixtures/mqttdev/"

static char *fixture(const char *name, size_t *len)
{
	char path[256];
	snprintf(path, sizeof(path), FIX "%s", name);
	FILE *f = fopen(path, "re");
	if (!f)
		fail_msg("cannot open %s (tests run from the repository root)", path);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *copy = malloc(n + 1);
	memcpy(copy, buf, n + 1);
	*len = n;
	return copy;
}

static void load(struct tasmota *t, const char *config, const char *sensors)
{
	memset(t, 0, sizeof(*t));
	size_t len;
	char err[128] = "", *p = fixture(config, &len);
	if (tasmota_parse_config(t, p, len, err, sizeof(err)))
		fail_msg("%s: %s", config, err);
	free(p);
	if (sensors) {
		p = fixture(sensors, &len);
		assert_int_equal(tasmota_parse_sensors(t, p, len), 0);
		free(p);
	}
	tasmota_build_caps(t);
}

static const struct hearth_capability *cap(const struct tasmota *t, const char *name)
{
	int i = mcaps_find(&t->caps, name);
	if (i < 0)
		fail_msg("no capability %s", name);
	return &t->caps.caps[i].c;
}

static const struct hearth_value *attr(const struct mstate *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->attrs[i].name, name) == 0)
			return &s->attrs[i].value;
	fail_msg("no attribute %s in the report", name);
	return NULL;
}

static void expect_str(const struct mstate *s, const char *name, const char *want)
{
	const struct hearth_value *v = attr(s, name);
	assert_int_equal(v->type, HEARTH_VALUE_STRING);
	assert_string_equal(v->u.string, want);
}

static void expect_num(const struct mstate *s, const char *name, double want)
{
	const struct hearth_value *v = attr(s, name);
	assert_int_equal(v->type, HEARTH_VALUE_NUMBER);
	if (fabs(v->u.number - want) > 1e-9)
		fail_msg("%s is %g, want %g", name, v->u.number, want);
}

static void message(struct tasmota *t, int which, const char *suffix, const char *payload,
		    struct mstate *s)
{
	mstate_init(s);
	assert_int_equal(tasmota_parse_message(t, which, suffix, payload, strlen(payload), s), 0);
}

static void message_file(struct tasmota *t, int which, const char *suffix, const char *file,
			 struct mstate *s)
{
	size_t len;
	char *p = fixture(file, &len);
	mstate_init(s);
	assert_int_equal(tasmota_parse_message(t, which, suffix, p, len, s), 0);
	free(p);
}

/* ---- discovery ------------------------------------------------------------------------------ */

static void plug_capabilities(void **state)
{
	(void)state;
	struct tasmota t;
	load(&t, "tasmota_plug_config.json", "tasmota_plug_sensors.json");
	assert_string_equal(t.mac, "a4cf12b3c4d5");
	assert_string_equal(t.topic, "tasmota_B3C4D5");
	assert_string_equal(t.model, "Sonoff S31");
	assert_string_equal(t.sw, "13.2.0");
	const struct hearth_capability *st = cap(&t, "state");
	assert_int_equal(st->type, HEARTH_CAP_BINARY);
	assert_true(st->access & HEARTH_ACCESS_SET);
	assert_string_equal(st->value_on.u.string, "ON");
	static const char *const want[][2] = {
		{"energy", "kWh"},	    {"energy_today", "kWh"}, {"energy_yesterday", "kWh"},
		{"power", "W"},		    {"apparent_power", "VA"}, {"reactive_power", "var"},
		{"voltage", "V"},	    {"current", "A"},	     {"rssi", "dBm"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const struct hearth_capability *c = cap(&t, want[i][0]);
		assert_int_equal(c->type, HEARTH_CAP_NUMERIC);
		assert_false(c->access & HEARTH_ACCESS_SET);
		assert_non_null(c->unit);
		assert_string_equal(c->unit, want[i][1]);
	}
	assert_null(cap(&t, "power_factor")->unit);
	/* state, nine measured values (power factor among them), rssi; no
	 * capability for the TotalStartTime text */
	assert_int_equal(t.caps.n, 11);
}

static void plug_topics_and_commands(void **state)
{
	(void)state;
	struct tasmota t;
	load(&t, "tasmota_plug_config.json", NULL);
	char topic[MD_TOPIC_MAX];
	assert_int_equal(tasmota_topic(&t, TAS_STAT, "+", topic, sizeof(topic)), 0);
	assert_string_equal(topic, "stat/tasmota_B3C4D5/+");
	assert_int_equal(tasmota_topic(&t, TAS_TELE, "LWT", topic, sizeof(topic)), 0);
	assert_string_equal(topic, "tele/tasmota_B3C4D5/LWT");
	struct hearth_attr on = {"state", HEARTH_STRING("ON")};
	struct tas_cmd cmds[4];
	size_t n;
	assert_int_equal(tasmota_encode(&t, &on, 1, cmds, 4, &n), 0);
	assert_int_equal(n, 1);
	/* one relay: POWER, not POWER1 */
	assert_string_equal(cmds[0].command, "POWER");
	assert_string_equal(cmds[0].payload, "ON");
	assert_int_equal(tasmota_topic(&t, TAS_CMND, cmds[0].command, topic, sizeof(topic)), 0);
	assert_string_equal(topic, "cmnd/tasmota_B3C4D5/POWER");
	/* a plug has no dimmer */
	struct hearth_attr bri = {"brightness", HEARTH_NUMBER(10)};
	assert_int_equal(tasmota_encode(&t, &bri, 1, cmds, 4, &n), -EINVAL);
}

static void plug_state_messages(void **state)
{
	(void)state;
	struct tasmota t;
	load(&t, "tasmota_plug_config.json", "tasmota_plug_sensors.json");
	struct mstate s;
	message_file(&t, TAS_TELE, "STATE", "tasmota_plug_state.json", &s);
	expect_str(&s, "state", "ON");
	expect_num(&s, "rssi", -61);
	assert_int_equal(s.n, 2);
	message(&t, TAS_STAT, "RESULT", "{\"POWER\":\"OFF\"}", &s);
	expect_str(&s, "state", "OFF");
	message(&t, TAS_STAT, "POWER", "ON", &s);
	expect_str(&s, "state", "ON");
	message_file(&t, TAS_TELE, "SENSOR", "tasmota_plug_sensor.json", &s);
	expect_num(&s, "power", 1870);
	expect_num(&s, "energy", 12.401);
	expect_num(&s, "current", 8.318);
	expect_num(&s, "power_factor", 0.98);
	/* "Period" was not in the discovery message: a new capability */
	assert_true(s.caps_changed);
	expect_num(&s, "energy_period", 1);
	message(&t, TAS_TELE, "LWT", "Offline", &s);
	assert_int_equal(s.online, 0);
	assert_int_equal(s.n, 0);
	message(&t, TAS_TELE, "LWT", "Online", &s);
	assert_int_equal(s.online, 1);
	/* POWER on tele, LWT on stat: not where Tasmota sends them */
	message(&t, TAS_TELE, "POWER", "OFF", &s);
	assert_int_equal(s.n, 0);
	mstate_init(&s);
	assert_int_equal(tasmota_parse_message(&t, TAS_STAT, "LWT", "Offline", 7, &s), 0);
	assert_int_equal(s.online, -1);
}

static void bulb_light(void **state)
{
	(void)state;
	struct tasmota t;
	load(&t, "tasmota_bulb_config.json", NULL);
	assert_int_equal(cap(&t, "brightness")->max, 100);
	assert_int_equal(cap(&t, "color_temp")->min, 153);
	assert_int_equal(cap(&t, "color_temp")->max, 500);
	const struct hearth_capability *col = cap(&t, "color");
	assert_int_equal(col->type, HEARTH_CAP_COMPOSITE);
	assert_int_equal(col->n_features, 3);
	struct mstate s;
	message_file(&t, TAS_STAT, "RESULT", "tasmota_bulb_result.json", &s);
	expect_str(&s, "state", "ON");
	expect_num(&s, "brightness", 60);
	expect_num(&s, "color_temp", 300);
	const struct hearth_value *c = attr(&s, "color");
	assert_int_equal(c->type, HEARTH_VALUE_JSON);
	assert_string_equal(c->u.string, "{\"r\":153,\"g\":102,\"b\":51}");
	struct hearth_attr set[] = {
		{"state", HEARTH_STRING("ON")},
		{"brightness", HEARTH_NUMBER(50)},
		{"color_temp", HEARTH_NUMBER(250)},
		{"color", HEARTH_JSON("{\"r\":255,\"g\":0,\"b\":128}")},
	};
	struct tas_cmd cmds[8];
	size_t n;
	assert_int_equal(tasmota_encode(&t, set, 4, cmds, 8, &n), 0);
	assert_int_equal(n, 4);
	static const char *const want[][2] = {
		{"POWER", "ON"}, {"Dimmer", "50"}, {"CT", "250"}, {"Color", "255,0,128"}};
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(cmds[i].command, want[i][0]);
		assert_string_equal(cmds[i].payload, want[i][1]);
	}
	/* decimal colours (SetOption17 1) read the same */
	message(&t, TAS_STAT, "RESULT", "{\"Color\":\"10,20,30\"}", &s);
	assert_string_equal(attr(&s, "color")->u.string, "{\"r\":10,\"g\":20,\"b\":30}");
}

/* A full topic of the user's own, other prefixes, two relays and state
 * texts in German. */
static void garden_full_topic(void **state)
{
	(void)state;
	struct tasmota t;
	load(&t, "tasmota_garden_config.json", "tasmota_garden_sensors.json");
	char topic[MD_TOPIC_MAX];
	assert_int_equal(tasmota_topic(&t, TAS_CMND, "POWER2", topic, sizeof(topic)), 0);
	assert_string_equal(topic, "home/cmd/garden/POWER2");
	assert_int_equal(tasmota_topic(&t, TAS_TELE, "+", topic, sizeof(topic)), 0);
	assert_string_equal(topic, "home/tl/garden/+");
	/* two relays, no main one */
	assert_int_equal(mcaps_find(&t.caps, "state"), -1);
	cap(&t, "state_1");
	cap(&t, "state_2");
	struct mstate s;
	message(&t, TAS_STAT, "POWER2", "AN", &s);
	expect_str(&s, "state_2", "ON");
	message(&t, TAS_STAT, "RESULT", "{\"POWER1\":\"AUS\",\"POWER2\":\"AN\"}", &s);
	expect_str(&s, "state_1", "OFF");
	expect_str(&s, "state_2", "ON");
	message(&t, TAS_TELE, "LWT", "Lost", &s);
	assert_int_equal(s.online, 0);
	message(&t, TAS_TELE, "LWT", "Here", &s);
	assert_int_equal(s.online, 1);
	struct hearth_attr off = {"state_2", HEARTH_STRING("OFF")};
	struct tas_cmd cmds[2];
	size_t n;
	assert_int_equal(tasmota_encode(&t, &off, 1, cmds, 2, &n), 0);
	assert_string_equal(cmds[0].command, "POWER2");
	assert_string_equal(cmds[0].payload, "OFF");
	/* the second sensor measuring temperature is named after itself */
	assert_string_equal(cap(&t, "temperature")->unit, "°C");
	assert_string_equal(cap(&t, "ds18b20_temperature")->unit, "°C");
	cap(&t, "humidity");
	cap(&t, "dew_point");
	message(&t, TAS_TELE, "SENSOR",
		"{\"Time\":\"2024-03-01T10:10:00\",\"AM2301\":{\"Temperature\":22.0,"
		"\"Humidity\":44.0,\"DewPoint\":9.2},\"DS18B20\":{\"Id\":\"01144A0CB2AA\","
		"\"Temperature\":15.1},\"TempUnit\":\"C\"}",
		&s);
	expect_num(&s, "temperature", 22.0);
	expect_num(&s, "ds18b20_temperature", 15.1);
	assert_false(s.caps_changed);
	/* a sensor plugged in later */
	message(&t, TAS_TELE, "SENSOR", "{\"BH1750\":{\"Illuminance\":120}}", &s);
	assert_true(s.caps_changed);
	expect_num(&s, "illuminance", 120);
	assert_string_equal(cap(&t, "illuminance")->unit, "lx");
}

static void topic_variables(void **state)
{
	(void)state;
	struct tasmota t;
	memset(&t, 0, sizeof(t));
	const char *cfg = "{\"mac\":\"a4cf12b3c4d5\",\"t\":\"x\",\"hn\":\"plug-host\","
			  "\"ft\":\"%prefix%/%hostname%/%id%\",\"tp\":[\"cmnd\",\"stat\",\"tele\"],"
			  "\"rl\":[1]}";
	assert_int_equal(tasmota_parse_config(&t, cfg, strlen(cfg), NULL, 0), 0);
	char topic[MD_TOPIC_MAX];
	/* %id% is the MAC's last six digits in capitals; a missing end slash added */
	assert_int_equal(tasmota_topic(&t, TAS_CMND, "POWER", topic, sizeof(topic)), 0);
	assert_string_equal(topic, "cmnd/plug-host/B3C4D5/POWER");
	/* defaults: names from the topic, Online/Offline, ON/OFF */
	assert_string_equal(t.name, "x");
	assert_string_equal(t.online, "Online");
	assert_string_equal(t.state_on, "ON");
}

static void bad_configs(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",
		"not json",
		"[1,2]",
		"{\"t\":\"x\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"12345\",\"t\":\"x\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4dz\",\"t\":\"x\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"t\":\"a#\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"t\":\"a/b\",\"ft\":\"%prefix%/%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"t\":\"x\",\"ft\":\"%topic%/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"t\":\"x\",\"ft\":\"%prefix%/+/\"}",
		"{\"mac\":\"a4cf12b3c4d5\",\"t\":\"x\",\"ft\":\"%prefix%/%topic%/\",\"tp\":[\"\"]}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tasmota t;
		memset(&t, 0, sizeof(t));
		char err[128] = "";
		if (tasmota_parse_config(&t, bad[i], strlen(bad[i]), err, sizeof(err)) != -EINVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
		assert_false(t.have_config);
	}
	/* nested past the limit: refused before cJSON recurses */
	char deep[256];
	size_t n = 0;
	for (; n < 100; n++)
		deep[n] = '[';
	deep[n] = '\0';
	struct tasmota t;
	memset(&t, 0, sizeof(t));
	assert_int_equal(tasmota_parse_config(&t, deep, n, NULL, 0), -EINVAL);
	/* a second config with another MAC is not this device's */
	load(&t, "tasmota_plug_config.json", NULL);
	size_t len;
	char *other = fixture("tasmota_bulb_config.json", &len);
	assert_int_equal(tasmota_parse_config(&t, other, len, NULL, 0), -EINVAL);
	assert_string_equal(t.topic, "tasmota_B3C4D5");
	free(other);
}

static void messages_before_config(void **state)
{
	(void)state;
	struct tasmota t;
	memset(&t, 0, sizeof(t));
	struct mstate s;
	mstate_init(&s);
	assert_int_equal(tasmota_parse_message(&t, TAS_STAT, "POWER", "ON", 2, &s), -EINVAL);
	char topic[64];
	assert_int_equal(tasmota_topic(&t, TAS_CMND, "POWER", topic, sizeof(topic)), -EINVAL);
	load(&t, "tasmota_plug_config.json", NULL);
	/* garbage and unknown suffixes report nothing */
	mstate_init(&s);
	assert_int_equal(tasmota_parse_message(&t, TAS_TELE, "STATE", "{oops", 5, &s), -EINVAL);
	message(&t, TAS_STAT, "RESULT", "{\"POWER\":\"MAYBE\",\"POWER9\":\"ON\",\"Dimmer\":5}", &s);
	assert_int_equal(s.n, 0);
	message(&t, TAS_STAT, "UPGRADE", "{\"Upgrade\":\"Done\"}", &s);
	assert_int_equal(s.n, 0);
	/* too small a buffer */
	assert_int_equal(tasmota_topic(&t, TAS_CMND, "POWER", topic, 8), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plug_capabilities),   cmocka_unit_test(plug_topics_and_commands),
		cmocka_unit_test(plug_state_messages), cmocka_unit_test(bulb_light),
		cmocka_unit_test(garden_full_topic),   cmocka_unit_test(topic_variables),
		cmocka_unit_test(bad_configs),	       cmocka_unit_test(messages_before_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
