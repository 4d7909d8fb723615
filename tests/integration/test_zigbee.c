/*
 * The zigbee plugin against a real mosquitto, a real hearthd and z2m-sim
 * serving ../shared/vectors/z2m_devices.json (a zigbee2mqtt 2.x
 * bridge/devices export): every device and capability, every settable
 * attribute's exact payload, every published attribute's type, groups,
 * permit_join, firmware updates, availability, renames, leaves and joins.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define VECTORS "../shared/vectors/z2m_devices.json"
#define WAIT_MS 3000

struct env {
	struct broker broker;
	struct hearthd hub;
	pid_t sim;
	struct client *c;
	cJSON *vector;	/* the export */
	cJSON *devices; /* hearth/bridge/devices */
};

static struct env *env;

/* ---- helpers ------------------------------------------------------------------ */

static cJSON *load_vector(void)
{
	FILE *f = fopen(VECTORS, "re");
	if (!f)
		return NULL;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

static pid_t sim_start(int port)
{
	char bin[512], ports[16];
	snprintf(bin, sizeof(bin), "%s/tests/sim/z2m-sim", harness_build_dir());
	snprintf(ports, sizeof(ports), "%d", port);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execl(bin, bin, "-p", ports, "-d", VECTORS, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void sim_stop(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	for (int i = 0; i < 300; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(10 * 1000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(j) ? j->valuestring : NULL;
}

static cJSON *by_key(const cJSON *array, const char *key, const char *value)
{
	cJSON *d;
	cJSON_ArrayForEach(d, array)
	{
		const char *v = str(d, key);
		if (v && strcmp(v, value) == 0)
			return d;
	}
	return NULL;
}

static bool wanted(const cJSON *d)
{
	const char *type = str(d, "type");
	return !(type && strcmp(type, "Coordinator") == 0) &&
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "interview_completed")) &&
	       cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(d, "definition"));
}

static char *hearth_id(const cJSON *d, char *buf, size_t len)
{
	snprintf(buf, len, "zigbee:%s", str(d, "ieee_address"));
	return buf;
}

/* Fetch hearth/bridge/devices until it holds n devices (bounded). */
static cJSON *hearth_devices(int port, int n)
{
	for (int tries = 0; tries < 50; tries++) {
		char *p = client_retained(port, "hearth/bridge/devices", 500);
		cJSON *j = p ? cJSON_Parse(p) : NULL;
		free(p);
		if (cJSON_GetArraySize(j) >= n)
			return j;
		cJSON_Delete(j);
		usleep(100 * 1000);
	}
	return NULL;
}

static void control(const char *json)
{
	client_clear(env->c);
	assert_int_equal(client_publish(env->c, "z2m-sim/control", json, false), 0);
	char *done = client_wait(env->c, "z2m-sim/control/done", NULL, WAIT_MS);
	assert_non_null(done);
	if (!strstr(done, "\"ok\":true"))
		fail_msg("control %s: %s", json, done);
	free(done);
}

static char *topic_of(char *buf, size_t len, const char *a, const char *b, const char *c)
{
	snprintf(buf, len, "%s%s%s", a, b, c ? c : "");
	return buf;
}

/* ---- what the export says hearth must have ------------------------------------- */

static const char *const specific[] = {"light", "switch", "lock", "cover", "climate", "fan"};

static bool is_specific(const char *type)
{
	for (size_t i = 0; i < sizeof(specific) / sizeof(specific[0]); i++)
		if (strcmp(type, specific[i]) == 0)
			return true;
	return false;
}

/* The hearth type of one generic expose, by the mapping docs/zigbee.md gives. */
static const char *expected_type(const cJSON *e)
{
	const char *type = str(e, "type");
	if (strcmp(type, "enum") != 0)
		return type;
	int numbers = 0, empty = 0, n = 0;
	const cJSON *v;
	cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(e, "values"))
	{
		n++;
		numbers += cJSON_IsNumber(v);
		empty += cJSON_IsString(v) && !v->valuestring[0];
	}
	return numbers == n ? "numeric" : empty == n ? "text" : "enum";
}

/* expected: object name -> {"type":..., "access":...}; access bits add up
 * when a property repeats (the two colour composites). */
static void expect_exposes(const cJSON *exposes, cJSON *expected)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, exposes)
	{
		const char *type = str(e, "type");
		if (is_specific(type)) {
			expect_exposes(cJSON_GetObjectItemCaseSensitive(e, "features"), expected);
			if (strcmp(type, "light") == 0 && !cJSON_GetObjectItem(expected, "transition")) {
				cJSON *t = cJSON_AddObjectToObject(expected, "transition");
				cJSON_AddStringToObject(t, "type", "numeric");
				cJSON_AddNumberToObject(t, "access", 2);
			}
			continue;
		}
		const char *prop = str(e, "property");
		int access = cJSON_GetObjectItemCaseSensitive(e, "access")->valueint;
		cJSON *have = cJSON_GetObjectItemCaseSensitive(expected, prop);
		if (have) {
			cJSON *a = cJSON_GetObjectItemCaseSensitive(have, "access");
			cJSON_SetNumberValue(a, (double)(a->valueint | access));
			continue;
		}
		cJSON *x = cJSON_AddObjectToObject(expected, prop);
		cJSON_AddStringToObject(x, "type", expected_type(e));
		cJSON_AddNumberToObject(x, "access", access);
	}
}

static cJSON *expected_caps(const cJSON *d)
{
	const cJSON *def = cJSON_GetObjectItemCaseSensitive(d, "definition");
	cJSON *expected = cJSON_CreateObject();
	expect_exposes(cJSON_GetObjectItemCaseSensitive(def, "exposes"), expected);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(def, "supports_ota"))) {
		cJSON *u = cJSON_AddObjectToObject(expected, "update");
		cJSON_AddStringToObject(u, "type", "composite");
		cJSON_AddNumberToObject(u, "access", 1);
		cJSON *o = cJSON_AddObjectToObject(expected, "ota");
		cJSON_AddStringToObject(o, "type", "enum");
		cJSON_AddNumberToObject(o, "access", 2);
	}
	return expected;
}

/* ---- setup ----------------------------------------------------------------------- */

static int group_teardown(void **state);

static int group_setup(void **state)
{
	env = calloc(1, sizeof(*env));
	if (!env)
		return -1;
	int want = 1; /* the bridge device */
	const cJSON *d;
	if (!(env->vector = load_vector()) || broker_start(&env->broker))
		goto fail;
	cJSON_ArrayForEach(d, env->vector) want += wanted(d);
	env->sim = sim_start(env->broker.port);
	if (env->sim <= 0 ||
	    hearthd_start_plugins(&env->hub, env->broker.port, "zigbee",
				  "[plugin.zigbee]\nbase_topic = zigbee2mqtt\n"))
		goto fail;
	env->devices = hearth_devices(env->broker.port, want);
	env->c = client_new(env->broker.port);
	if (!env->devices || !env->c)
		goto fail;
	client_subscribe(env->c, "hearth/#");
	client_subscribe(env->c, "z2m-sim/#");
	client_subscribe(env->c, "zigbee2mqtt/bridge/request/#");
	return 0;
fail:
	/* whatever started is stopped, by pid */
	group_teardown(state);
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	client_free(env->c);
	/* hearthd must stop cleanly: exit status 0, no sanitizer report */
	int status = env->hub.dir[0] ? hearthd_cleanup(&env->hub) : 0;
	sim_stop(env->sim);
	broker_stop(&env->broker);
	cJSON_Delete(env->vector);
	cJSON_Delete(env->devices);
	free(env);
	env = NULL;
	if (status != 0)
		fprintf(stderr, "hearthd exited with status %d\n", status);
	return status == 0 ? 0 : -1;
}

/* ---- the export maps fully ----------------------------------------------------------- */

static void test_every_device_and_capability(void **state)
{
	(void)state;
	int checked = 0;
	const cJSON *d;
	cJSON_ArrayForEach(d, env->vector)
	{
		char id[64];
		cJSON *h = by_key(env->devices, "id", hearth_id(d, id, sizeof(id)));
		if (!wanted(d)) {
			assert_null(h); /* the coordinator is not a device */
			continue;
		}
		if (!h)
			fail_msg("%s (%s) is not in hearth", id, str(d, "friendly_name"));
		const cJSON *def = cJSON_GetObjectItemCaseSensitive(d, "definition");
		assert_string_equal(str(h, "name"), str(d, "friendly_name"));
		assert_string_equal(str(h, "plugin"), "zigbee");
		assert_string_equal(str(h, "vendor"), str(def, "vendor"));
		assert_string_equal(str(h, "model"), str(def, "model"));
		cJSON *expected = expected_caps(d);
		cJSON *caps = cJSON_GetObjectItemCaseSensitive(h, "capabilities");
		if (cJSON_GetArraySize(caps) != cJSON_GetArraySize(expected))
			fail_msg("%s: %d capabilities, expected %d", str(d, "friendly_name"),
				 cJSON_GetArraySize(caps), cJSON_GetArraySize(expected));
		const cJSON *x;
		cJSON_ArrayForEach(x, expected)
		{
			cJSON *cap = by_key(caps, "name", x->string);
			if (!cap)
				fail_msg("%s: no capability %s", str(d, "friendly_name"), x->string);
			if (strcmp(str(cap, "type"), str(x, "type")) != 0)
				fail_msg("%s.%s: type %s, expected %s", str(d, "friendly_name"),
					 x->string, str(cap, "type"), str(x, "type"));
			assert_int_equal(cJSON_GetObjectItem(cap, "access")->valueint,
					 cJSON_GetObjectItem(x, "access")->valueint);
		}
		cJSON_Delete(expected);
		checked++;
	}
	assert_int_equal(checked, 44);
	/* nothing in the export was left unmapped */
	assert_false(hearthd_log_contains(&env->hub, "cannot be mapped"));
	/* the two colour composites are one capability with both feature pairs */
	cJSON *hue = by_key(env->devices, "name", "living_room/hue_color");
	cJSON *color = by_key(cJSON_GetObjectItem(hue, "capabilities"), "name", "color");
	cJSON *features = cJSON_GetObjectItem(color, "features");
	assert_int_equal(cJSON_GetArraySize(features), 4);
	assert_non_null(by_key(features, "name", "x"));
	assert_non_null(by_key(features, "name", "saturation"));
	/* presets live in the description */
	cJSON *ct = by_key(cJSON_GetObjectItem(hue, "capabilities"), "name", "color_temp");
	assert_non_null(strstr(str(ct, "description"), "warmest=500"));
	assert_int_equal(cJSON_GetObjectItem(ct, "value_max")->valueint, 500);
	/* the bridge itself */
	cJSON *bridge = by_key(env->devices, "id", "zigbee:bridge");
	assert_non_null(bridge);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(bridge, "available")));
}

/* A valid value for one hearth capability (as in hearth/bridge/devices). */
static cJSON *sample_value(const cJSON *cap)
{
	const char *type = str(cap, "type");
	const cJSON *min = cJSON_GetObjectItem(cap, "value_min");
	const cJSON *max = cJSON_GetObjectItem(cap, "value_max");
	if (strcmp(type, "binary") == 0)
		return cJSON_Duplicate(cJSON_GetObjectItem(cap, "value_on"), 1);
	if (strcmp(type, "numeric") == 0)
		return cJSON_CreateNumber(min ? min->valuedouble : max ? max->valuedouble : 1);
	if (strcmp(type, "enum") == 0) {
		const cJSON *values = cJSON_GetObjectItem(cap, "values");
		return cJSON_Duplicate(cJSON_GetArrayItem(values, cJSON_GetArraySize(values) - 1), 1);
	}
	if (strcmp(type, "text") == 0) {
		const char *desc = str(cap, "description");
		return cJSON_CreateString(desc && strstr(desc, "to trigger") ? "" : "hearth");
	}
	if (strcmp(type, "list") == 0)
		return cJSON_CreateArray();
	cJSON *o = cJSON_CreateObject();
	const cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(cap, "features"))
		cJSON_AddItemToObject(o, str(f, "name"), sample_value(f));
	return o;
}

/* Every settable capability of one device, each in its own /set, sent in
 * a row; zigbee2mqtt must then receive exactly those payloads, in order. */
static int set_each(const cJSON *h)
{
	const char *name = str(h, "name");
	char topic[300], rx[300];
	cJSON *sets = cJSON_CreateArray();
	const cJSON *cap;
	cJSON_ArrayForEach(cap, cJSON_GetObjectItem(h, "capabilities"))
	{
		if (!(cJSON_GetObjectItem(cap, "access")->valueint & 2) ||
		    strcmp(str(cap, "name"), "ota") == 0)
			continue;
		cJSON *set = cJSON_CreateObject();
		cJSON_AddItemToObject(set, str(cap, "name"), sample_value(cap));
		cJSON_AddItemToArray(sets, set);
		char *payload = cJSON_PrintUnformatted(set);
		client_publish(env->c, topic_of(topic, sizeof(topic), "hearth/", name, "/set"),
			       payload, false);
		free(payload);
	}
	/* the friendly name is the hearth name in this export */
	topic_of(rx, sizeof(rx), "z2m-sim/received/", name, NULL);
	const cJSON *set;
	cJSON_ArrayForEach(set, sets)
	{
		char *payload = cJSON_PrintUnformatted(set);
		cJSON *got = client_wait_json(env->c, rx, NULL, WAIT_MS);
		if (!got)
			fail_msg("%s: %s did not reach zigbee2mqtt", name, payload);
		if (!cJSON_Compare(got, set, 1))
			fail_msg("%s: sent %s, zigbee2mqtt got %s", name, payload,
				 cJSON_PrintUnformatted(got));
		cJSON_Delete(got);
		free(payload);
	}
	int n = cJSON_GetArraySize(sets);
	cJSON_Delete(sets);
	return n;
}

static void test_every_settable_attribute(void **state)
{
	(void)state;
	int sent = 0;
	const cJSON *h;
	cJSON_ArrayForEach(h, env->devices)
	{
		if (strcmp(str(h, "id"), "zigbee:bridge") == 0)
			continue;
		client_clear(env->c);
		sent += set_each(h);
	}
	assert_true(sent > 150);
	print_message("%d settable attributes checked\n", sent);
}

/* A value of the right JSON type for a published expose. */
static cJSON *state_value(const cJSON *e)
{
	const char *type = str(e, "type");
	if (strcmp(type, "binary") == 0)
		return cJSON_Duplicate(cJSON_GetObjectItem(e, "value_off"), 1);
	if (strcmp(type, "numeric") == 0)
		return cJSON_CreateNumber(12.5);
	if (strcmp(type, "enum") == 0)
		return cJSON_Duplicate(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "values"), 0), 1);
	if (strcmp(type, "list") == 0)
		return cJSON_Parse("[{\"x\":1,\"y\":2}]");
	if (strcmp(type, "composite") == 0) {
		cJSON *o = cJSON_CreateObject();
		const cJSON *f;
		cJSON_ArrayForEach(f, cJSON_GetObjectItem(e, "features"))
			cJSON_AddItemToObject(o, str(f, "property"), state_value(f));
		return o;
	}
	return cJSON_CreateString("some text");
}

static void state_of_exposes(const cJSON *exposes, cJSON *st)
{
	const cJSON *e;
	cJSON_ArrayForEach(e, exposes)
	{
		if (is_specific(str(e, "type"))) {
			state_of_exposes(cJSON_GetObjectItem(e, "features"), st);
			continue;
		}
		const char *prop = str(e, "property");
		if ((cJSON_GetObjectItem(e, "access")->valueint & 1) &&
		    !cJSON_GetObjectItemCaseSensitive(st, prop))
			cJSON_AddItemToObject(st, prop, state_value(e));
	}
}

/* One state message per device, carrying every published expose and a few
 * attributes no expose names; all sent first, then checked in hearth. */
static void test_every_published_attribute(void **state)
{
	(void)state;
	int attrs = 0, lq = 200;
	char topic[300], marker[40];
	cJSON *sent = cJSON_CreateObject();
	const cJSON *d;
	client_clear(env->c);
	cJSON_ArrayForEach(d, env->vector)
	{
		if (!wanted(d))
			continue;
		const char *name = str(d, "friendly_name");
		cJSON *st = cJSON_AddObjectToObject(sent, name);
		state_of_exposes(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "definition"), "exposes"),
				 st);
		/* a linkquality of its own tells this report from earlier ones */
		cJSON_DeleteItemFromObject(st, "linkquality");
		cJSON_AddNumberToObject(st, "linkquality", lq--);
		cJSON_AddStringToObject(st, "last_seen", "2025-01-02T03:04:05.000Z");
		cJSON_AddItemToObject(st, "update",
				      cJSON_Parse("{\"state\":\"idle\",\"installed_version\":1}"));
		char *payload = cJSON_PrintUnformatted(st);
		client_publish(env->c, topic_of(topic, sizeof(topic), "zigbee2mqtt/", name, NULL),
			       payload, false);
		free(payload);
	}
	const cJSON *st;
	cJSON_ArrayForEach(st, sent)
	{
		const char *name = st->string;
		snprintf(marker, sizeof(marker), "\"linkquality\":%d",
			 cJSON_GetObjectItem(st, "linkquality")->valueint);
		cJSON *got = client_wait_json(
			env->c, topic_of(topic, sizeof(topic), "hearth/", name, NULL), marker, WAIT_MS);
		if (!got)
			fail_msg("%s: its state never reached hearth", name);
		const cJSON *a;
		cJSON_ArrayForEach(a, st)
		{
			cJSON *v = cJSON_GetObjectItemCaseSensitive(got, a->string);
			if (!v || !cJSON_Compare(v, a, 1))
				fail_msg("%s: attribute %s differs in hearth", name, a->string);
			attrs++;
		}
		cJSON_Delete(got);
	}
	cJSON_Delete(sent);
	print_message("%d published attributes checked\n", attrs);
	assert_true(attrs > 300);
}

/* ---- behaviour ------------------------------------------------------------------------- */

static void test_transition_reported(void **state)
{
	(void)state;
	client_clear(env->c);
	client_publish(env->c, "hearth/kitchen/hue_a19/set", "{\"state\":\"ON\",\"brightness\":10}",
		       false);
	cJSON *s = client_wait_json(env->c, "hearth/kitchen/hue_a19", "\"brightness\":10", WAIT_MS);
	assert_non_null(s);
	cJSON_Delete(s);
	client_clear(env->c);
	client_publish(env->c, "hearth/kitchen/hue_a19/set", "{\"brightness\":250,\"transition\":1}",
		       false);
	s = client_wait_json(env->c, "hearth/kitchen/hue_a19", "\"brightness\":250", WAIT_MS);
	assert_non_null(s);
	cJSON_Delete(s);
	/* the light went through several steps on the way */
	assert_true(client_count(env->c, "hearth/kitchen/hue_a19") >= 4);
	char *got = client_wait(env->c, "z2m-sim/received/kitchen/hue_a19", NULL, WAIT_MS);
	assert_non_null(got);
	assert_string_equal(got, "{\"brightness\":250,\"transition\":1}");
	free(got);
}

static void test_get(void **state)
{
	(void)state;
	client_clear(env->c);
	client_publish(env->c, "hearth/bedroom/tradfri_ws/get", "{\"brightness\":\"\"}", false);
	char *got = client_wait(env->c, "z2m-sim/received_get/bedroom/tradfri_ws", NULL, WAIT_MS);
	assert_non_null(got);
	assert_string_equal(got, "{\"brightness\":\"\"}");
	free(got);
}

static void test_action_is_an_event(void **state)
{
	(void)state;
	client_clear(env->c);
	client_publish(env->c, "zigbee2mqtt/desk/button", "{\"action\":\"double\",\"battery\":90}",
		       false);
	cJSON *ev = client_wait_json(env->c, "hearth/bridge/event", "\"double\"", WAIT_MS);
	assert_non_null(ev);
	char *text = cJSON_PrintUnformatted(ev);
	assert_non_null(strstr(text, "zigbee:0x00158d0001a2b3cb"));
	free(text);
	cJSON_Delete(ev);
}

static void test_permit_join(void **state)
{
	(void)state;
	client_clear(env->c);
	cJSON *r = client_request(env->c, "permit_join", "\"time\":60", WAIT_MS);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON_Delete(r);
	char *req = client_wait(env->c, "zigbee2mqtt/bridge/request/permit_join", NULL, WAIT_MS);
	assert_non_null(req);
	assert_string_equal(req, "{\"time\":60}");
	free(req);
	/* zigbee2mqtt's answer is relayed */
	cJSON *ev = client_wait_json(env->c, "hearth/bridge/event", "permit_join", WAIT_MS);
	assert_non_null(ev);
	char *text = cJSON_PrintUnformatted(ev);
	assert_non_null(strstr(text, "\"status\":\"ok\""));
	assert_non_null(strstr(text, "\"time\":60"));
	free(text);
	cJSON_Delete(ev);
	cJSON *b = client_wait_json(env->c, "hearth/zigbee2mqtt/bridge", "\"permit_join\":true",
				    WAIT_MS);
	assert_non_null(b);
	cJSON_Delete(b);
	/* and closing it through the bridge device */
	client_clear(env->c);
	client_publish(env->c, "hearth/zigbee2mqtt/bridge/set", "{\"permit_join\":false}", false);
	req = client_wait(env->c, "zigbee2mqtt/bridge/request/permit_join", NULL, WAIT_MS);
	assert_non_null(req);
	assert_string_equal(req, "{\"time\":0}");
	free(req);
}

static void test_firmware_update(void **state)
{
	(void)state;
	client_clear(env->c);
	client_publish(env->c, "hearth/office/climate_t1/set", "{\"ota\":\"check\"}", false);
	char *req = client_wait(env->c, "zigbee2mqtt/bridge/request/device/ota_update/check", NULL,
				WAIT_MS);
	assert_non_null(req);
	assert_string_equal(req, "{\"id\":\"0x54ef441000a2b3c3\"}");
	free(req);
	cJSON *ev = client_wait_json(env->c, "hearth/bridge/event", "ota_check", WAIT_MS);
	assert_non_null(ev);
	cJSON_Delete(ev);
	client_clear(env->c);
	client_publish(env->c, "hearth/office/climate_t1/set", "{\"ota\":\"update\"}", false);
	cJSON *s = client_wait_json(env->c, "hearth/office/climate_t1", "\"progress\":50", WAIT_MS);
	assert_non_null(s);
	cJSON_Delete(s);
	ev = client_wait_json(env->c, "hearth/bridge/event", "ota_update", WAIT_MS);
	assert_non_null(ev);
	cJSON_Delete(ev);
}

static void test_groups(void **state)
{
	(void)state;
	control("{\"cmd\":\"groups\",\"groups\":[{\"id\":7,\"friendly_name\":\"living/lights\","
		"\"members\":[{\"ieee_address\":\"0x0017880104a2b3e4\",\"endpoint\":11},"
		"{\"ieee_address\":\"0x0017880104a2b3e5\",\"endpoint\":11}],\"scenes\":[]}]}");
	cJSON *devs = hearth_devices(env->broker.port, 46);
	assert_non_null(devs);
	cJSON *g = by_key(devs, "id", "zigbee:group:7");
	assert_non_null(g);
	assert_string_equal(str(g, "name"), "living/lights");
	cJSON *caps = cJSON_GetObjectItem(g, "capabilities");
	assert_non_null(by_key(caps, "name", "state"));
	assert_non_null(by_key(caps, "name", "brightness"));
	assert_non_null(by_key(caps, "name", "color"));
	assert_null(by_key(caps, "name", "linkquality")); /* only what a light does */
	cJSON_Delete(devs);
	client_clear(env->c);
	client_publish(env->c, "hearth/living/lights/set", "{\"state\":\"ON\",\"brightness\":77}",
		       false);
	char *got = client_wait(env->c, "z2m-sim/received/living/lights", NULL, WAIT_MS);
	assert_non_null(got);
	assert_string_equal(got, "{\"state\":\"ON\",\"brightness\":77}");
	free(got);
	cJSON *s = client_wait_json(env->c, "hearth/living/lights", "\"brightness\":77", WAIT_MS);
	assert_non_null(s);
	cJSON_Delete(s);
}

static void test_device_availability(void **state)
{
	(void)state;
	control("{\"cmd\":\"availability\",\"name\":\"tv/plug\",\"state\":\"offline\"}");
	char *a = client_wait(env->c, "hearth/tv/plug/availability", "offline", WAIT_MS);
	assert_non_null(a);
	free(a);
	control("{\"cmd\":\"availability\",\"name\":\"tv/plug\",\"state\":\"online\"}");
	a = client_wait(env->c, "hearth/tv/plug/availability", "online", WAIT_MS);
	assert_non_null(a);
	free(a);
}

static void test_bridge_offline_online(void **state)
{
	(void)state;
	control("{\"cmd\":\"bridge\",\"state\":\"offline\"}");
	static const char *const names[] = {"hearth/hall/smoke/availability",
					    "hearth/boiler/relay/availability",
					    "hearth/zigbee2mqtt/bridge/availability"};
	for (size_t i = 0; i < 3; i++) {
		char *a = client_wait(env->c, names[i], "offline", WAIT_MS);
		if (!a)
			fail_msg("%s did not go offline", names[i]);
		free(a);
	}
	/* a command while zigbee2mqtt is away is answered with why */
	client_publish(env->c, "hearth/boiler/relay/set", "{\"state_l1\":\"ON\"}", false);
	cJSON *r = client_wait_json(env->c, "hearth/bridge/response/device/set", "offline", WAIT_MS);
	assert_non_null(r);
	cJSON_Delete(r);
	control("{\"cmd\":\"bridge\",\"state\":\"online\"}");
	for (size_t i = 0; i < 3; i++) {
		char *a = client_wait(env->c, names[i], "online", WAIT_MS);
		if (!a)
			fail_msg("%s did not come back online", names[i]);
		free(a);
	}
}

static void test_rename_in_zigbee2mqtt(void **state)
{
	(void)state;
	control("{\"cmd\":\"rename\",\"from\":\"lamp/tradfri_outlet\",\"to\":\"lamp/outlet\"}");
	for (int i = 0; i < 100 && !hearthd_log_contains(&env->hub, "to 'lamp/outlet'"); i++)
		usleep(20 * 1000);
	assert_true(hearthd_log_contains(&env->hub, "to 'lamp/outlet'"));
	/* the hearth name, and so its history and rules, stay; commands follow */
	client_clear(env->c);
	client_publish(env->c, "hearth/lamp/tradfri_outlet/set", "{\"state\":\"OFF\"}", false);
	char *got = client_wait(env->c, "z2m-sim/received/lamp/outlet", NULL, WAIT_MS);
	assert_non_null(got);
	assert_string_equal(got, "{\"state\":\"OFF\"}");
	free(got);
	cJSON *s = client_wait_json(env->c, "hearth/lamp/tradfri_outlet", "\"OFF\"", WAIT_MS);
	assert_non_null(s);
	cJSON_Delete(s);
}

static void test_leave_and_join(void **state)
{
	(void)state;
	control("{\"cmd\":\"leave\",\"ieee\":\"0x00124b0022a2b3ec\"}");
	cJSON *ev = client_wait_json(env->c, "hearth/bridge/event", "0x00124b0022a2b3ec", WAIT_MS);
	assert_non_null(ev);
	char *text = cJSON_PrintUnformatted(ev);
	assert_non_null(strstr(text, "device_removed"));
	free(text);
	cJSON_Delete(ev);
	/* a new sensor joins: a copy of the one that left, under a new address */
	cJSON *d = cJSON_Duplicate(by_key(env->vector, "friendly_name", "attic/sonoff_th"), 1);
	cJSON_ReplaceItemInObject(d, "ieee_address", cJSON_CreateString("0x00124b0022a2b3ff"));
	cJSON_ReplaceItemInObject(d, "friendly_name", cJSON_CreateString("cellar/th"));
	cJSON *cmd = cJSON_CreateObject();
	cJSON_AddStringToObject(cmd, "cmd", "join");
	cJSON_AddItemToObject(cmd, "device", d);
	char *payload = cJSON_PrintUnformatted(cmd);
	control(payload);
	free(payload);
	cJSON_Delete(cmd);
	ev = client_wait_json(env->c, "hearth/bridge/event", "0x00124b0022a2b3ff", WAIT_MS);
	assert_non_null(ev);
	text = cJSON_PrintUnformatted(ev);
	assert_non_null(strstr(text, "device_joined"));
	assert_non_null(strstr(text, "cellar/th"));
	free(text);
	cJSON_Delete(ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_device_and_capability),
		cmocka_unit_test(test_every_settable_attribute),
		cmocka_unit_test(test_every_published_attribute),
		cmocka_unit_test(test_transition_reported),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_action_is_an_event),
		cmocka_unit_test(test_permit_join),
		cmocka_unit_test(test_firmware_update),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_device_availability),
		cmocka_unit_test(test_bridge_offline_online),
		cmocka_unit_test(test_rename_in_zigbee2mqtt),
		cmocka_unit_test(test_leave_and_join),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
