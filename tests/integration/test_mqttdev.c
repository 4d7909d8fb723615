/*
 * The mqttdev plugin against a real mosquitto and hearthd. The test plays
 * the devices: it publishes the payloads Tasmota and Shelly devices send
 * (tests/fixtures/mqttdev, written from their documentation), answers
 * Shelly's JSON-RPC requests, and checks the devices, capabilities, state
 * and availability hearth shows, and the exact commands a hearth /set
 * sends. Generic JSON devices come from the fixture devices files,
 * the benchmark's among them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 3000
#define FIX "tests/fixtures/mqttdev/"
#define SHELLY1 "shellyplus1pm-a8032ab12345"
#define SHELLY1_ID "mqttdev:shelly:" SHELLY1
#define PLUG_MAC "A4CF12B3C4D5"
#define PLUG "hearth/tasmota/tasmota_B3C4D5"

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
};

/* ---- set up -------------------------------------------------------------------------------- */

static char *fixture(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), FIX "%s", name);
	FILE *f = fopen(path, "re");
	if (!f)
		fail_msg("cannot open %s", path);
	char *buf = calloc(1, 65536);
	size_t n = fread(buf, 1, 65535, f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return buf;
}

static void fixture_path(char *out, size_t cap, const char *name)
{
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(out, cap, "%s/" FIX "%s", cwd, name);
}

static int start(void **state, const char *section)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start_plugins(&e->hub, e->broker.port, "mqttdev", section), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	*state = e;
	return 0;
}

static int setup_devices(void **state)
{
	char path[PATH_MAX + 64], section[PATH_MAX + 512];
	fixture_path(path, sizeof(path), "devices.json");
	snprintf(section, sizeof(section),
		 "[plugin.mqttdev]\ndevices_file = %s\nshelly = " SHELLY1 "\nrpc_timeout_ms = 700\n",
		 path);
	return start(state, section);
}

static int setup_bench(void **state)
{
	char path[PATH_MAX + 64], section[PATH_MAX + 128];
	fixture_path(path, sizeof(path), "bench.json");
	snprintf(section, sizeof(section), "[plugin.mqttdev]\ntasmota = false\ndevices_file = %s\n",
		 path);
	return start(state, section);
}

static int setup_discover(void **state)
{
	return start(state, "[plugin.mqttdev]\nshelly_discover = true\nshelly_parent = shellies\n");
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

/* ---- helpers -------------------------------------------------------------------------------- */

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!cJSON_IsString(v))
		fail_msg("'%s' is not a string", key);
	return v->valuestring;
}

/* hearth/bridge/devices' entry for id, once it is there (bounded). */
static cJSON *device(struct env *e, const char *id, int min_caps)
{
	for (int tries = 0; tries < 30; tries++) {
		char *p = client_retained(e->broker.port, "hearth/bridge/devices", 300);
		cJSON *all = p ? cJSON_Parse(p) : NULL;
		free(p);
		cJSON *d;
		cJSON_ArrayForEach(d, all)
		{
			const cJSON *i = cJSON_GetObjectItem(d, "id");
			if (cJSON_IsString(i) && strcmp(i->valuestring, id) == 0 &&
			    cJSON_GetArraySize(cJSON_GetObjectItem(d, "capabilities")) >= min_caps) {
				cJSON *copy = cJSON_Duplicate(d, 1);
				cJSON_Delete(all);
				return copy;
			}
		}
		cJSON_Delete(all);
		usleep(100 * 1000);
	}
	fail_msg("device %s never appeared with %d capabilities", id, min_caps);
	return NULL;
}

static const cJSON *capability(const cJSON *dev, const char *name)
{
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItem(dev, "capabilities"))
	{
		if (strcmp(str(c, "name"), name) == 0)
			return c;
	}
	fail_msg("no capability %s", name);
	return NULL;
}

/* Wait for a state message on topic holding every fragment. */
static void expect_state(struct env *e, const char *topic, const char *const *fragments,
			 size_t n)
{
	for (int tries = 0; tries < 20; tries++) {
		char *p = client_wait(e->c, topic, fragments[0], WAIT_MS);
		if (!p)
			break;
		bool all = true;
		for (size_t i = 1; i < n; i++)
			all &= strstr(p, fragments[i]) != NULL;
		free(p);
		if (all)
			return;
	}
	fail_msg("no message on %s with %s...", topic, fragments[0]);
}

static void expect_payload(struct env *e, const char *topic, const char *want)
{
	char *p = client_wait(e->c, topic, NULL, WAIT_MS);
	if (!p)
		fail_msg("nothing on %s", topic);
	assert_string_equal(p, want);
	free(p);
}

static void set(struct env *e, const char *name, const char *json)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "hearth/%s/set", name);
	assert_int_equal(client_publish(e->c, topic, json, false), 0);
}

/* ---- Tasmota -------------------------------------------------------------------------------- */

static void tasmota_plug(void **state)
{
	struct env *e = *state;
	char *cfg = fixture("tasmota_plug_config.json"), *sn = fixture("tasmota_plug_sensors.json");
	assert_int_equal(client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/config", cfg, true), 0);
	assert_int_equal(client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/sensors", sn, true), 0);
	free(cfg);
	free(sn);
	cJSON *d = device(e, "mqttdev:tasmota:a4cf12b3c4d5", 11);
	assert_string_equal(str(d, "name"), "tasmota/tasmota_B3C4D5");
	assert_string_equal(str(d, "vendor"), "Tasmota");
	assert_string_equal(str(d, "model"), "Sonoff S31");
	assert_string_equal(str(capability(d, "state"), "type"), "binary");
	assert_string_equal(str(capability(d, "energy"), "unit"), "kWh");
	assert_string_equal(str(capability(d, "power"), "unit"), "W");
	cJSON_Delete(d);

	assert_int_equal(client_subscribe(e->c, PLUG), 0);
	assert_int_equal(client_subscribe(e->c, PLUG "/availability"), 0);
	assert_int_equal(client_subscribe(e->c, "cmnd/tasmota_B3C4D5/#"), 0);
	client_clear(e->c);
	char *st = fixture("tasmota_plug_state.json");
	assert_int_equal(client_publish(e->c, "tele/tasmota_B3C4D5/LWT", "Online", true), 0);
	assert_int_equal(client_publish(e->c, "tele/tasmota_B3C4D5/STATE", st, false), 0);
	free(st);
	static const char *const on[] = {"\"state\":\"ON\"", "\"rssi\":-61"};
	expect_state(e, PLUG, on, 2);
	char *tel = fixture("tasmota_plug_sensor.json");
	assert_int_equal(client_publish(e->c, "tele/tasmota_B3C4D5/SENSOR", tel, false), 0);
	free(tel);
	static const char *const power[] = {"\"power\":1870", "\"energy\":12.401"};
	expect_state(e, PLUG, power, 2);

	/* a hearth /set becomes Tasmota's own command */
	client_clear(e->c);
	set(e, "tasmota/tasmota_B3C4D5", "{\"state\":\"OFF\"}");
	expect_payload(e, "cmnd/tasmota_B3C4D5/POWER", "OFF");
	/* the device answers on stat/RESULT; hearth follows */
	assert_int_equal(client_publish(e->c, "stat/tasmota_B3C4D5/RESULT", "{\"POWER\":\"OFF\"}",
					false),
			 0);
	static const char *const off[] = {"\"state\":\"OFF\""};
	expect_state(e, PLUG, off, 1);
	/* the last will: unavailable */
	assert_int_equal(client_publish(e->c, "tele/tasmota_B3C4D5/LWT", "Offline", true), 0);
	char *av = client_wait(e->c, PLUG "/availability", "offline", WAIT_MS);
	assert_non_null(av);
	free(av);
}

/* True while hearth/bridge/devices lists id (false once it is gone, bounded). */
static bool device_listed(struct env *e, const char *id, bool want)
{
	for (int tries = 0; tries < 30; tries++) {
		char *p = client_retained(e->broker.port, "hearth/bridge/devices", 300);
		bool listed = p && strstr(p, id);
		free(p);
		if (listed == want)
			return want;
		usleep(100 * 1000);
	}
	return !want;
}

/* A Tasmota that clears its discovery config is forgotten, memory and all,
 * and may come back; sensors messages of devices without a config (anyone
 * can publish them) are kept for the newest few devices only. */
static void tasmota_retired_and_flood(void **state)
{
	struct env *e = *state;
	char *cfg = fixture("tasmota_plug_config.json"), *sn = fixture("tasmota_plug_sensors.json");
	const char *id = "mqttdev:tasmota:a4cf12b3c4d5";
	for (int round = 0; round < 3; round++) {
		assert_int_equal(
			client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/config", cfg, true), 0);
		assert_int_equal(
			client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/sensors", sn, true), 0);
		cJSON_Delete(device(e, id, 11));
		assert_int_equal(client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/config", "", true),
				 0);
		assert_int_equal(
			client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/sensors", "", true), 0);
		assert_false(device_listed(e, id, false));
	}
	/* 200 strangers with sensors and no config */
	for (int i = 0; i < 200; i++) {
		char topic[96];
		snprintf(topic, sizeof(topic), "tasmota/discovery/0000000%05X/sensors", i);
		assert_int_equal(client_publish(e->c, topic, sn, false), 0);
	}
	client_pump(e->c, 500);
	assert_true(hearthd_log_contains(&e->hub, "wait already; forgetting the oldest"));
	/* a real device still joins */
	assert_int_equal(client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/config", cfg, true), 0);
	assert_int_equal(client_publish(e->c, "tasmota/discovery/" PLUG_MAC "/sensors", sn, true), 0);
	cJSON_Delete(device(e, id, 11));
	free(cfg);
	free(sn);
}

static void tasmota_full_topic_and_light(void **state)
{
	struct env *e = *state;
	char *garden = fixture("tasmota_garden_config.json");
	char *bulb = fixture("tasmota_bulb_config.json");
	assert_int_equal(client_publish(e->c, "tasmota/discovery/BCDDC20D0E0F/config", garden, true),
			 0);
	assert_int_equal(client_publish(e->c, "tasmota/discovery/5CCF7F9A8B7C/config", bulb, true),
			 0);
	free(garden);
	free(bulb);
	cJSON *g = device(e, "mqttdev:tasmota:bcddc20d0e0f", 3);
	capability(g, "state_1");
	capability(g, "state_2");
	cJSON_Delete(g);
	cJSON *b = device(e, "mqttdev:tasmota:5ccf7f9a8b7c", 5);
	assert_string_equal(str(capability(b, "color"), "type"), "composite");
	cJSON_Delete(b);

	assert_int_equal(client_subscribe(e->c, "hearth/tasmota/garden"), 0);
	assert_int_equal(client_subscribe(e->c, "home/cmd/garden/#"), 0);
	assert_int_equal(client_subscribe(e->c, "cmnd/bulb_9A8B7C/#"), 0);
	client_clear(e->c);
	/* the device's own full topic, prefixes and state texts */
	assert_int_equal(client_publish(e->c, "home/st/garden/POWER2", "AN", false), 0);
	static const char *const on2[] = {"\"state_2\":\"ON\""};
	expect_state(e, "hearth/tasmota/garden", on2, 1);
	set(e, "tasmota/garden", "{\"state_1\":\"ON\"}");
	expect_payload(e, "home/cmd/garden/POWER1", "ON");
	set(e, "tasmota/bulb_9A8B7C", "{\"brightness\":50,\"color_temp\":250}");
	expect_payload(e, "cmnd/bulb_9A8B7C/Dimmer", "50");
	expect_payload(e, "cmnd/bulb_9A8B7C/CT", "250");
	set(e, "tasmota/bulb_9A8B7C", "{\"color\":{\"r\":255,\"g\":0,\"b\":128}}");
	expect_payload(e, "cmnd/bulb_9A8B7C/Color", "255,0,128");
	/* out of range: refused by the hub, nothing reaches the bulb */
	client_clear(e->c);
	set(e, "tasmota/bulb_9A8B7C", "{\"brightness\":150}");
	client_pump(e->c, 300);
	assert_int_equal(client_count(e->c, "cmnd/bulb_9A8B7C/Dimmer"), 0);
}

/* ---- Shelly --------------------------------------------------------------------------------- */

/* Wait for a request frame on <prefix>/rpc; returns its id. */
static long long expect_request(struct env *e, const char *prefix, const char *method,
				cJSON **frame_out)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "%s/rpc", prefix);
	cJSON *f = client_wait_json(e->c, topic, method, WAIT_MS);
	if (!f)
		fail_msg("no %s request on %s", method, topic);
	const cJSON *id = cJSON_GetObjectItem(f, "id");
	assert_true(cJSON_IsNumber(id));
	assert_string_equal(str(f, "src"), "hearth-mqttdev");
	assert_string_equal(str(f, "method"), method);
	long long v = (long long)id->valuedouble;
	if (frame_out)
		*frame_out = f;
	else
		cJSON_Delete(f);
	return v;
}

static void reply(struct env *e, long long id, const char *body)
{
	char frame[70000];
	snprintf(frame, sizeof(frame), "{\"id\":%lld,\"src\":\"" SHELLY1 "\",\"dst\":"
		 "\"hearth-mqttdev\",%s}", id, body);
	assert_int_equal(client_publish(e->c, "hearth-mqttdev/rpc", frame, false), 0);
}

/* The Shelly comes online; hearth asks for its status and learns it. */
static void shelly_online(struct env *e)
{
	assert_int_equal(client_subscribe(e->c, SHELLY1 "/rpc"), 0);
	assert_int_equal(client_subscribe(e->c, "hearth/shelly/" SHELLY1), 0);
	assert_int_equal(client_subscribe(e->c, "hearth/shelly/" SHELLY1 "/availability"), 0);
	assert_int_equal(client_subscribe(e->c, "hearth/bridge/response/device/set"), 0);
	client_clear(e->c);
	assert_int_equal(client_publish(e->c, SHELLY1 "/online", "true", true), 0);
	long long id = expect_request(e, SHELLY1, "Shelly.GetStatus", NULL);
	char *full = fixture("shelly_plus1pm_fullstatus.json");
	cJSON *f = cJSON_Parse(full);
	free(full);
	char *params = cJSON_PrintUnformatted(cJSON_GetObjectItem(f, "params"));
	char body[65536];
	snprintf(body, sizeof(body), "\"result\":%s", params);
	reply(e, id, body);
	free(params);
	cJSON_Delete(f);
}

static void shelly_listed(void **state)
{
	struct env *e = *state;
	shelly_online(e);
	cJSON *d = device(e, SHELLY1_ID, 8);
	assert_string_equal(str(d, "name"), "shelly/" SHELLY1);
	assert_string_equal(str(d, "vendor"), "Shelly");
	assert_string_equal(str(d, "model"), "shellyplus1pm");
	assert_string_equal(str(capability(d, "energy"), "unit"), "kWh");
	cJSON_Delete(d);
	static const char *const off[] = {"\"state\":\"OFF\"", "\"voltage\":231.4"};
	expect_state(e, "hearth/shelly/" SHELLY1, off, 2);

	/* hearth's /set: exactly Shelly's JSON-RPC Switch.Set on <id>/rpc */
	client_clear(e->c);
	set(e, "shelly/" SHELLY1, "{\"state\":\"ON\"}");
	cJSON *frame = NULL;
	long long id = expect_request(e, SHELLY1, "Switch.Set", &frame);
	char *text = cJSON_PrintUnformatted(frame);
	char want[256];
	snprintf(want, sizeof(want),
		 "{\"id\":%lld,\"src\":\"hearth-mqttdev\",\"method\":\"Switch.Set\","
		 "\"params\":{\"id\":0,\"on\":true}}",
		 id);
	assert_string_equal(text, want);
	free(text);
	cJSON_Delete(frame);
	reply(e, id, "\"result\":{\"was_on\":false}");
	/* the change itself comes as a notification */
	char *ntf = fixture("shelly_plus1pm_notifystatus.json");
	assert_int_equal(client_publish(e->c, SHELLY1 "/events/rpc", ntf, false), 0);
	free(ntf);
	static const char *const on[] = {"\"state\":\"ON\""};
	expect_state(e, "hearth/shelly/" SHELLY1, on, 1);
	/* generic status updates on <id>/status/switch:0 are read too */
	char *st = fixture("shelly_plus1pm_status_switch0.json");
	assert_int_equal(client_publish(e->c, SHELLY1 "/status/switch:0", st, false), 0);
	free(st);
	static const char *const power[] = {"\"power\":52.3"};
	expect_state(e, "hearth/shelly/" SHELLY1, power, 1);

	/* an error reply fails the command, with the Shelly's words */
	client_clear(e->c);
	set(e, "shelly/" SHELLY1, "{\"state\":\"OFF\"}");
	id = expect_request(e, SHELLY1, "Switch.Set", NULL);
	reply(e, id, "\"error\":{\"code\":-103,\"message\":\"Invalid argument 'id'\"}");
	char *r = client_wait(e->c, "hearth/bridge/response/device/set", "Shelly error -103",
			      WAIT_MS);
	assert_non_null(r);
	free(r);
	/* no reply at all: timed out (rpc_timeout_ms = 700) */
	client_clear(e->c);
	set(e, "shelly/" SHELLY1, "{\"state\":\"OFF\"}");
	expect_request(e, SHELLY1, "Switch.Set", NULL);
	r = client_wait(e->c, "hearth/bridge/response/device/set", "did not answer", WAIT_MS);
	assert_non_null(r);
	free(r);
	/* its last will */
	assert_int_equal(client_publish(e->c, SHELLY1 "/online", "false", true), 0);
	char *av = client_wait(e->c, "hearth/shelly/" SHELLY1 "/availability", "offline", WAIT_MS);
	assert_non_null(av);
	free(av);
}

static void shelly_discovered(void **state)
{
	struct env *e = *state;
	assert_int_equal(client_subscribe(e->c, "shellies/#"), 0);
	assert_int_equal(client_subscribe(e->c, "hearth/bridge/event"), 0);
	char *full = fixture("shelly_plusi4_fullstatus.json");
	assert_int_equal(client_publish(e->c, "shellies/shellyplusi4-c4d8d5a1b2c3/events/rpc", full,
					false),
			 0);
	free(full);
	cJSON *d = device(e, "mqttdev:shelly:shellyplusi4-c4d8d5a1b2c3", 5);
	assert_string_equal(str(capability(d, "action_1"), "type"), "enum");
	cJSON_Delete(d);
	client_clear(e->c);
	char *ev = fixture("shelly_plusi4_event.json");
	assert_int_equal(client_publish(e->c, "shellies/shellyplusi4-c4d8d5a1b2c3/events/rpc", ev,
					false),
			 0);
	free(ev);
	char *got = client_wait(e->c, "hearth/bridge/event", "double_push", WAIT_MS);
	assert_non_null(got);
	assert_non_null(strstr(got, "\"action_1\":\"double_push\""));
	free(got);
	/* found by listening only: hearth never asked it anything */
	client_pump(e->c, 200);
	assert_int_equal(client_count(e->c, "shellies/shellyplusi4-c4d8d5a1b2c3/rpc"), 0);
	/* something under the parent that is no Shelly is no device */
	assert_int_equal(client_publish(e->c, "shellies/kettle/online", "true", false), 0);
	client_pump(e->c, 300);
	char *all = client_retained(e->broker.port, "hearth/bridge/devices", 500);
	assert_non_null(all);
	assert_null(strstr(all, "kettle"));
	assert_non_null(strstr(all, "shellyplusi4-c4d8d5a1b2c3"));
	free(all);
	/* 200 strangers that say nothing useful are remembered for a few only */
	for (int i = 0; i < 200; i++) {
		char topic[96];
		snprintf(topic, sizeof(topic), "shellies/shellyplus1-0000000%05x/events/rpc", i);
		assert_int_equal(client_publish(e->c, topic, "{}", false), 0);
	}
	client_pump(e->c, 500);
	assert_true(hearthd_log_contains(&e->hub, "wait already; forgetting the oldest"));
	/* a real one still joins, and the first one still answers */
	char *full2 = fixture("shelly_plusi4_fullstatus.json");
	assert_int_equal(client_publish(e->c, "shellies/shellyplusi4-c4d8d5a1b2d4/events/rpc", full2,
					false),
			 0);
	free(full2);
	cJSON_Delete(device(e, "mqttdev:shelly:shellyplusi4-c4d8d5a1b2d4", 5));
}

/* ---- generic devices ------------------------------------------------------------------------- */

static void generic_devices(void **state)
{
	struct env *e = *state;
	cJSON *d = device(e, "mqttdev:diy-climate", 3);
	assert_string_equal(str(d, "name"), "diy/climate");
	assert_string_equal(str(capability(d, "temperature"), "unit"), "°C");
	cJSON_Delete(d);
	assert_int_equal(client_subscribe(e->c, "hearth/diy/#"), 0);
	assert_int_equal(client_subscribe(e->c, "diy/relay/cmd"), 0);
	client_clear(e->c);
	assert_int_equal(client_publish(e->c, "diy/climate/state",
					"{\"bme280\":{\"temperature\":21.5,\"humidity\":48},"
					"\"power\":{\"battery\":91}}",
					false),
			 0);
	static const char *const climate[] = {"\"temperature\":21.5", "\"humidity\":48",
					      "\"battery\":91"};
	expect_state(e, "hearth/diy/climate", climate, 3);
	assert_int_equal(client_publish(e->c, "diy/climate/status", "offline", true), 0);
	char *av = client_wait(e->c, "hearth/diy/climate/availability", "offline", WAIT_MS);
	assert_non_null(av);
	free(av);

	assert_int_equal(client_publish(e->c, "diy/relay/state", "{\"relay\":1,\"mode\":\"auto\"}",
					false),
			 0);
	static const char *const relay[] = {"\"state\":\"ON\"", "\"mode\":\"auto\""};
	expect_state(e, "hearth/diy/relay", relay, 2);
	set(e, "diy/relay", "{\"state\":\"OFF\"}");
	expect_payload(e, "diy/relay/cmd", "{\"relay\":0}");
	set(e, "diy/relay", "{\"state\":\"TOGGLE\",\"level\":3}");
	expect_payload(e, "diy/relay/cmd", "{\"relay\":0,\"out\":{\"level\":3}}");
	assert_int_equal(client_publish(e->c, "diy/door/state", "open", false), 0);
	static const char *const door[] = {"\"contact\":false"};
	expect_state(e, "hearth/diy/door", door, 1);
}

static void bench_devices(void **state)
{
	struct env *e = *state;
	cJSON *last = device(e, "mqttdev:bench-light-99", 2);
	cJSON_Delete(last);
	char *p = client_retained(e->broker.port, "hearth/bridge/devices", 500);
	cJSON *all = p ? cJSON_Parse(p) : NULL;
	free(p);
	assert_int_equal(cJSON_GetArraySize(all), 200);
	cJSON_Delete(all);
	assert_int_equal(client_subscribe(e->c, "hearth/bench/#"), 0);
	assert_int_equal(client_subscribe(e->c, "bench/light/+/set"), 0);
	client_clear(e->c);
	for (int i = 0; i < 100; i += 33) {
		char topic[64], payload[64], want[64];
		snprintf(topic, sizeof(topic), "bench/sensor/%d/state", i);
		snprintf(payload, sizeof(payload), "{\"motion\":true,\"seq\":%d}", 1000 + i);
		assert_int_equal(client_publish(e->c, topic, payload, false), 0);
		snprintf(topic, sizeof(topic), "hearth/bench/sensor-%d", i);
		snprintf(want, sizeof(want), "\"seq\":%d", 1000 + i);
		const char *frags[] = {want, "\"motion\":true"};
		expect_state(e, topic, frags, 2);
	}
	set(e, "bench/light-3", "{\"state\":\"ON\",\"seq\":5}");
	expect_payload(e, "bench/light/3/set", "{\"state\":\"ON\",\"seq\":5}");
	/* no state topic: hearth shows what it told the light */
	static const char *const light[] = {"\"state\":\"ON\"", "\"seq\":5"};
	expect_state(e, "hearth/bench/light-3", light, 2);
}

/* ---- refusals ------------------------------------------------------------------------------- */

static void refused(const char *section, const char *logged)
{
	struct broker b;
	struct hearthd h;
	assert_int_equal(broker_start(&b), 0);
	assert_int_equal(hearthd_start_plugins(&h, b.port, "mqttdev", section), 0);
	bool seen = false;
	for (int i = 0; i < 20 && !seen; i++) {
		seen = hearthd_log_contains(&h, logged);
		if (!seen)
			usleep(100 * 1000);
	}
	if (!seen)
		fail_msg("the log never said: %s", logged);
	assert_int_equal(hearthd_cleanup(&h), 0);
	broker_stop(&b);
}

static void loops_refused(void **state)
{
	(void)state;
	char dir[] = "/tmp/hearth-mqttdev-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], section[256];
	snprintf(path, sizeof(path), "%s/loop.json", dir);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs("{\"devices\":[{\"id\":\"echo\",\"state_topic\":\"hearth/echo\","
	      "\"attributes\":[{\"name\":\"x\",\"type\":\"text\"}]}]}",
	      f);
	fclose(f);
	snprintf(section, sizeof(section), "[plugin.mqttdev]\ndevices_file = %s\n", path);
	refused(section, "state_topic 'hearth/echo' is inside the hub's own topics");
	refused("[plugin.mqttdev]\nshelly = hearth/bridge\n", "shelly: 'hearth/bridge'");
	refused("[plugin.mqttdev]\nshelly = s1\nshelly_src = hearth\n",
		"shelly_src: replies on 'hearth/rpc'");
	refused("[plugin.mqttdev]\nshelly_discover = true\n", "shelly_discover needs shelly_parent");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(tasmota_plug, setup_devices, teardown),
		cmocka_unit_test_setup_teardown(tasmota_retired_and_flood, setup_devices, teardown),
		cmocka_unit_test_setup_teardown(tasmota_full_topic_and_light, setup_devices,
						teardown),
		cmocka_unit_test_setup_teardown(shelly_listed, setup_devices, teardown),
		cmocka_unit_test_setup_teardown(shelly_discovered, setup_discover, teardown),
		cmocka_unit_test_setup_teardown(generic_devices, setup_devices, teardown),
		cmocka_unit_test_setup_teardown(bench_devices, setup_bench, teardown),
		cmocka_unit_test(loops_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
