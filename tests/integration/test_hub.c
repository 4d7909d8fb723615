/*
 * hearthd against a real mosquitto: the MQTT API, persistence across
 * restarts, broker loss, clean shutdown.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start(&e->hub, e->broker.port, NULL), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	client_free(e->c);
	int status = hearthd_cleanup(&e->hub);
	broker_stop(&e->broker);
	free(e);
	/* a clean exit also proves no sanitizer report in the daemon */
	assert_int_equal(status, 0);
	return 0;
}

static cJSON *device_by_name(cJSON *devices, const char *name)
{
	cJSON *d;
	cJSON_ArrayForEach(d, devices)
	{
		cJSON *n = cJSON_GetObjectItem(d, "name");
		if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0)
			return d;
	}
	return NULL;
}

static cJSON *retained_json(struct env *e, const char *topic)
{
	char *p = client_retained(e->broker.port, topic, 500);
	cJSON *j = p ? cJSON_Parse(p) : NULL;
	free(p);
	return j;
}

static double num(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	assert_true(cJSON_IsNumber(v));
	return v->valuedouble;
}

static const char *str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static void test_devices_published(void **state)
{
	struct env *e = *state;
	cJSON *devices = retained_json(e, "hearth/bridge/devices");
	assert_non_null(devices);
	assert_int_equal(cJSON_GetArraySize(devices), 7);
	static const char *const names[] = {"virtual/light-1",	"virtual/light-2",
					    "virtual/plug-1",	"virtual/motion-1",
					    "virtual/climate-1", "virtual/contact-1",
					    "virtual/button-1"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		cJSON *d = device_by_name(devices, names[i]);
		assert_non_null(d);
		assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "available")));
		assert_string_equal(str(d, "plugin"), "virtual");
		assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(d, "capabilities")) >= 2);
	}
	cJSON *light = device_by_name(devices, "virtual/light-1");
	assert_string_equal(str(light, "id"), "virtual:light-1");
	cJSON_Delete(devices);

	cJSON *info = retained_json(e, "hearth/bridge/info");
	assert_non_null(info);
	assert_int_equal((int)num(info, "devices"), 7);
	assert_string_equal(str(info, "abi"), "1.1");
	cJSON_Delete(info);

	char *avail = client_retained(e->broker.port, "hearth/virtual/light-1/availability", 500);
	assert_non_null(avail);
	assert_string_equal(avail, "{\"state\":\"online\"}");
	free(avail);
}

static void test_set_changes_state(void **state)
{
	struct env *e = *state;
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	client_publish(e->c, "hearth/virtual/light-1/set", "{\"state\":\"ON\",\"brightness\":120}",
		       false);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":120", 3000);
	assert_non_null(s);
	assert_string_equal(str(s, "state"), "ON");
	cJSON_Delete(s);
	cJSON *r = retained_json(e, "hearth/virtual/light-1");
	assert_non_null(r);
	assert_string_equal(str(r, "state"), "ON");
	assert_int_equal((int)num(r, "brightness"), 120);
	cJSON_Delete(r);

	/* TOGGLE, and the single-attribute topic with a raw value */
	client_clear(e->c);
	client_publish(e->c, "hearth/virtual/light-1/set", "{\"state\":\"TOGGLE\"}", false);
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"OFF\"", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
	client_publish(e->c, "hearth/virtual/light-1/set/brightness", "33", false);
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":33", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
	/* a sensor is settable too, so tests and demos can drive it */
	client_subscribe(e->c, "hearth/virtual/climate-1");
	client_publish(e->c, "hearth/virtual/climate-1/set", "{\"temperature\":19.5}", false);
	s = client_wait_json(e->c, "hearth/virtual/climate-1", "\"temperature\":19.5", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
}

struct bad_set {
	const char *topic;
	const char *payload;
	const char *device;
	const char *error_part;
};

static void test_bad_set_changes_nothing(void **state)
{
	struct env *e = *state;
	static const struct bad_set cases[] = {
		{"hearth/virtual/light-1/set", "{\"brightness\":300}", "virtual/light-1",
		 "above the maximum 254"},
		{"hearth/virtual/light-1/set", "{\"brightness\":-1}", "virtual/light-1",
		 "below the minimum 0"},
		{"hearth/virtual/light-1/set", "{\"brightness\":\"high\"}", "virtual/light-1",
		 "not a number"},
		{"hearth/virtual/light-1/set", "{\"state\":\"MAYBE\"}", "virtual/light-1",
		 "is not one of"},
		{"hearth/virtual/light-1/set", "{\"colour\":1}", "virtual/light-1",
		 "no attribute 'colour'"},
		{"hearth/virtual/light-1/set", "{\"state\":\"ON\",\"brightness\":999}",
		 "virtual/light-1", "above the maximum"},
		{"hearth/virtual/light-1/set", "not json", "virtual/light-1", "not valid JSON"},
		{"hearth/virtual/light-1/set", "[1,2]", "virtual/light-1", "JSON object"},
		{"hearth/virtual/light-1/set", "{}", "virtual/light-1", "JSON object"},
		{"hearth/virtual/light-1/set", "", "virtual/light-1", "empty"},
		{"hearth/no/such/device/set", "{\"state\":\"ON\"}", "no/such/device",
		 "no device is named"},
	};
	cJSON *before = retained_json(e, "hearth/virtual/light-1");
	assert_non_null(before);
	client_subscribe(e->c, "hearth/bridge/response/device/set");
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		client_publish(e->c, cases[i].topic, cases[i].payload, false);
		cJSON *r = client_wait_json(e->c, "hearth/bridge/response/device/set",
					    cases[i].error_part, 3000);
		if (!r)
			fail_msg("case %zu (%s): no error containing '%s'", i, cases[i].payload,
				 cases[i].error_part);
		assert_string_equal(str(r, "status"), "error");
		assert_string_equal(str(cJSON_GetObjectItem(r, "data"), "device"), cases[i].device);
		cJSON_Delete(r);
	}
	/* nothing reached the device: no state message, retained state unchanged */
	client_pump(e->c, 300);
	assert_int_equal(client_count(e->c, "hearth/virtual/light-1"), 0);
	cJSON *after = retained_json(e, "hearth/virtual/light-1");
	assert_true(cJSON_Compare(before, after, 1));
	cJSON_Delete(before);
	cJSON_Delete(after);
	/* a read-only attribute: the virtual transition parameter is set-only, the
	 * bridge itself is not a device; use a capability without SET via a
	 * plugin-independent case: unknown device checked above */
	assert_true(hearthd_log_contains(&e->hub, "above the maximum 254"));
}

static void test_limits(void **state)
{
	struct env *e = *state;
	client_subscribe(e->c, "hearth/bridge/response/device/set");
	client_subscribe(e->c, "hearth/bridge/response/device/options");
	client_clear(e->c);
	/* over 64 KiB */
	size_t big = 70 * 1024;
	char *payload = malloc(big + 1);
	memset(payload, ' ', big);
	memcpy(payload, "{\"state\":\"ON\"", 13);
	payload[big - 1] = '}';
	payload[big] = '\0';
	client_publish(e->c, "hearth/virtual/light-1/set", payload, false);
	free(payload);
	cJSON *r = client_wait_json(e->c, "hearth/bridge/response/device/set", "over the limit", 3000);
	assert_non_null(r);
	cJSON_Delete(r);
	/* nested 17 deep */
	char deep[128] = "{\"state\":";
	for (int i = 0; i < 17; i++)
		strcat(deep, "[");
	for (int i = 0; i < 17; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	client_publish(e->c, "hearth/virtual/light-1/set", deep, false);
	r = client_wait_json(e->c, "hearth/bridge/response/device/set", "nested deeper", 3000);
	assert_non_null(r);
	cJSON_Delete(r);
	/* a name over 128 bytes in a request */
	char name[200];
	memset(name, 'n', 150);
	name[150] = '\0';
	char req[400];
	snprintf(req, sizeof(req), "\"from\":\"virtual/light-1\",\"to\":\"%s\"", name);
	r = client_request(e->c, "device/rename", req, 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "error");
	assert_non_null(strstr(str(r, "error"), "1 to 128 bytes"));
	cJSON_Delete(r);
}

static void test_bad_requests(void **state)
{
	struct env *e = *state;
	struct {
		const char *path, *body, *error_part;
	} cases[] = {
		{"device/rename", "\"from\":\"nope\",\"to\":\"x\"", "no device is named 'nope'"},
		{"device/rename", "\"from\":\"virtual/light-1\"", "'to' is missing"},
		{"device/rename", "\"from\":\"virtual/light-1\",\"to\":\"virtual/plug-1\"", "taken"},
		{"device/rename", "\"from\":\"virtual/light-1\",\"to\":\"a+b\"", "wildcard"},
		{"device/rename", "\"from\":\"virtual/light-1\",\"to\":\"x/set\"", "reserved"},
		{"device/rename", "\"from\":\"virtual/light-1\",\"to\":7", "not a string"},
		{"device/remove", "\"id\":\"nope\"", "no device is named"},
		{"device/options", "\"id\":\"virtual/light-1\",\"options\":{\"colour\":1}",
		 "unknown option"},
		{"device/options", "\"id\":\"virtual/light-1\",\"options\":{\"room\":5}", "text"},
		{"device/options", "\"id\":\"virtual/light-1\"", "'options' is missing"},
		{"permit_join", "\"time\":-5", "whole number"},
		{"permit_join", "\"time\":\"soon\"", "whole number"},
		{"no/such/request", "", "unknown request"},
	};
	cJSON *before = retained_json(e, "hearth/bridge/devices");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cJSON *r = client_request(e->c, cases[i].path, cases[i].body, 3000);
		if (!r)
			fail_msg("case %zu: no response", i);
		assert_string_equal(str(r, "status"), "error");
		if (!strstr(str(r, "error"), cases[i].error_part))
			fail_msg("case %zu: error '%s' lacks '%s'", i, str(r, "error"),
				 cases[i].error_part);
		/* the transaction comes back */
		assert_non_null(cJSON_GetObjectItem(r, "transaction"));
		cJSON_Delete(r);
	}
	/* not JSON at all */
	client_subscribe(e->c, "hearth/bridge/response/device/remove");
	client_publish(e->c, "hearth/bridge/request/device/remove", "{oops", false);
	cJSON *r = client_wait_json(e->c, "hearth/bridge/response/device/remove", "not valid JSON",
				    3000);
	assert_non_null(r);
	cJSON_Delete(r);
	cJSON *after = retained_json(e, "hearth/bridge/devices");
	assert_true(cJSON_Compare(before, after, 1));
	cJSON_Delete(before);
	cJSON_Delete(after);
}

static void test_rename_and_remove(void **state)
{
	struct env *e = *state;
	cJSON *r = client_request(e->c, "device/rename",
				  "\"from\":\"virtual/light-2\",\"to\":\"kitchen/light\"", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	assert_string_equal(str(cJSON_GetObjectItem(r, "data"), "to"), "kitchen/light");
	cJSON_Delete(r);
	client_pump(e->c, 200);
	/* old topics cleared, new ones retained */
	char *old = client_retained(e->broker.port, "hearth/virtual/light-2", 300);
	assert_null(old);
	old = client_retained(e->broker.port, "hearth/virtual/light-2/availability", 300);
	assert_null(old);
	char *now = client_retained(e->broker.port, "hearth/kitchen/light/availability", 500);
	assert_non_null(now);
	free(now);
	/* the new name takes commands */
	client_subscribe(e->c, "hearth/kitchen/light");
	client_publish(e->c, "hearth/kitchen/light/set", "{\"brightness\":77}", false);
	cJSON *s = client_wait_json(e->c, "hearth/kitchen/light", "\"brightness\":77", 3000);
	assert_non_null(s);
	cJSON_Delete(s);

	/* options */
	r = client_request(e->c, "device/options",
			   "\"id\":\"kitchen/light\",\"options\":{\"room\":\"kitchen\"}", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON_Delete(r);
	client_pump(e->c, 200);
	cJSON *devices = retained_json(e, "hearth/bridge/devices");
	assert_string_equal(str(device_by_name(devices, "kitchen/light"), "room"), "kitchen");
	cJSON_Delete(devices);

	/* remove */
	r = client_request(e->c, "device/remove", "\"id\":\"kitchen/light\"", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON_Delete(r);
	client_pump(e->c, 200);
	assert_null(client_retained(e->broker.port, "hearth/kitchen/light", 300));
	assert_null(client_retained(e->broker.port, "hearth/kitchen/light/availability", 300));
	devices = retained_json(e, "hearth/bridge/devices");
	assert_null(device_by_name(devices, "kitchen/light"));
	assert_int_equal(cJSON_GetArraySize(devices), 6);
	cJSON_Delete(devices);
}

static int db_count(const char *db, const char *sql)
{
	sqlite3 *h = NULL;
	sqlite3_stmt *st = NULL;
	int n = -1;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static void test_restart_keeps_state(void **state)
{
	struct env *e = *state;
	cJSON *r = client_request(e->c, "device/rename",
				  "\"from\":\"virtual/plug-1\",\"to\":\"lounge/lamp plug\"", 3000);
	assert_non_null(r);
	cJSON_Delete(r);
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_publish(e->c, "hearth/virtual/light-1/set", "{\"state\":\"ON\",\"brightness\":42}",
		       false);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":42", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 3000), 0);
	assert_int_equal(db_count(e->hub.db, "SELECT count(*) FROM devices"), 7);
	assert_int_equal(db_count(e->hub.db, "SELECT count(*) FROM state WHERE device_id = "
					     "'virtual:light-1' AND attribute = 'brightness' AND "
					     "value = '42'"),
			 1);

	/* a fresh broker that lost everything */
	client_free(e->c);
	e->c = NULL;
	broker_kill(&e->broker);
	assert_int_equal(broker_restart(&e->broker), 0);
	assert_null(client_retained(e->broker.port, "hearth/virtual/light-1", 200));
	assert_int_equal(hearthd_restart(&e->hub), 0);
	e->c = client_new(e->broker.port);
	cJSON *light = retained_json(e, "hearth/virtual/light-1");
	assert_non_null(light);
	assert_int_equal((int)num(light, "brightness"), 42);
	assert_string_equal(str(light, "state"), "ON");
	cJSON_Delete(light);
	cJSON *devices = retained_json(e, "hearth/bridge/devices");
	assert_non_null(device_by_name(devices, "lounge/lamp plug"));
	assert_null(device_by_name(devices, "virtual/plug-1"));
	assert_int_equal(cJSON_GetArraySize(devices), 7);
	cJSON_Delete(devices);
}

static void test_broker_restart(void **state)
{
	struct env *e = *state;
	client_free(e->c);
	e->c = NULL;
	broker_kill(&e->broker);
	usleep(1500 * 1000);
	assert_int_equal(broker_restart(&e->broker), 0);
	/* hearthd reconnects (backoff 1 s, 2 s, ...) and republishes */
	char *online = NULL;
	for (int i = 0; i < 100 && !online; i++)
		online = client_retained(e->broker.port, "hearth/bridge/state", 100);
	assert_non_null(online);
	assert_string_equal(online, "{\"state\":\"online\"}");
	free(online);
	e->c = client_new(e->broker.port);
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_publish(e->c, "hearth/virtual/light-1/set", "{\"brightness\":200}", false);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":200", 5000);
	assert_non_null(s);
	cJSON_Delete(s);
	assert_true(hearthd_log_contains(&e->hub, "connection to 127.0.0.1"));
}

static void test_sigterm_offline(void **state)
{
	struct env *e = *state;
	client_subscribe(e->c, "hearth/bridge/state");
	client_clear(e->c);
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 1000), 0);
	char *p = client_wait(e->c, "hearth/bridge/state", "offline", 2000);
	assert_non_null(p);
	free(p);
	char *retained = client_retained(e->broker.port, "hearth/bridge/state", 500);
	assert_non_null(retained);
	assert_string_equal(retained, "{\"state\":\"offline\"}");
	free(retained);
}

static void test_health_and_get(void **state)
{
	struct env *e = *state;
	cJSON *r = client_request(e->c, "health_check", "", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	cJSON *d = cJSON_GetObjectItem(r, "data");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "healthy")));
	assert_int_equal((int)num(d, "devices"), 7);
	assert_true(num(d, "rss_kib") > 0);
	cJSON_Delete(r);
	/* /get publishes the state even when nothing changed */
	client_subscribe(e->c, "hearth/virtual/contact-1");
	client_clear(e->c);
	client_publish(e->c, "hearth/virtual/contact-1/get", "{\"contact\":\"\"}", false);
	char *p = client_wait(e->c, "hearth/virtual/contact-1", "contact", 3000);
	assert_non_null(p);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_devices_published, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_changes_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_set_changes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rename_and_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_keeps_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sigterm_offline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_and_get, setup, teardown),
	};
	return cmocka_run_group_tests_name("integration: hub", tests, NULL, NULL);
}
