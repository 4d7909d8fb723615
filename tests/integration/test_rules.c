/*
 * Rules and scenes through the real broker: add over MQTT, fire, survive a
 * restart and a kill -9 in the middle of a "for" hold, capture and activate
 * a scene, explain why a rule did not run.
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
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
	char rules_dir[256];
};

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	snprintf(e->rules_dir, sizeof(e->rules_dir), "/tmp/hearth-rules-XXXXXX");
	assert_non_null(mkdtemp(e->rules_dir));
	char extra[1024];
	/* quiet virtual devices: only the test moves them */
	snprintf(extra, sizeof(extra),
		 "[rules]\ndir = %s\n[location]\nlatitude = 52.37\nlongitude = 4.90\n"
		 "timezone = Europe/Amsterdam\n[plugin.virtual]\ninterval_ms = 0\n",
		 e->rules_dir);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start(&e->hub, e->broker.port, extra), 0);
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
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->rules_dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	assert_int_equal(status, 0);
	return 0;
}

static const char *str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	assert_true(cJSON_IsString(v));
	return v->valuestring;
}

static void expect_ok(cJSON *r)
{
	assert_non_null(r);
	if (strcmp(str(r, "status"), "ok") != 0)
		fail_msg("request failed: %s", cJSON_GetObjectItem(r, "error")->valuestring);
	cJSON_Delete(r);
}

static const char motion_rule[] =
	"\"id\":\"motion-light\",\"mode\":\"restart\","
	"\"triggers\":[{\"type\":\"state\",\"device\":\"virtual/motion-1\",\"attribute\":\"occupancy\","
	"\"to\":true}],"
	"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\",\"state\":{\"state\":\"ON\","
	"\"brightness\":150}}]";

static void set_motion(struct env *e, bool on)
{
	client_publish(e->c, "hearth/virtual/motion-1/set",
		       on ? "{\"occupancy\":true}" : "{\"occupancy\":false}", false);
}

static void test_rule_added_over_mqtt_fires(void **state)
{
	struct env *e = *state;
	set_motion(e, false);
	expect_ok(client_request(e->c, "rule/add", motion_rule, 3000));
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_subscribe(e->c, "hearth/bridge/event");
	client_clear(e->c);
	set_motion(e, true);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":150", 3000);
	assert_non_null(s);
	assert_string_equal(str(s, "state"), "ON");
	cJSON_Delete(s);
	cJSON *ev = client_wait_json(e->c, "hearth/bridge/event", "rule_fired", 3000);
	assert_non_null(ev);
	cJSON *data = cJSON_GetObjectItem(ev, "data");
	assert_string_equal(str(data, "rule"), "motion-light");
	assert_string_equal(str(data, "outcome"), "ok");
	cJSON_Delete(ev);

	/* adding the same id again is refused; update works */
	cJSON *r = client_request(e->c, "rule/add", motion_rule, 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "error");
	cJSON_Delete(r);

	/* bridge/rules lists it with its counters */
	char *rules = client_retained(e->broker.port, "hearth/bridge/rules", 1000);
	assert_non_null(rules);
	assert_non_null(strstr(rules, "\"motion-light\""));
	assert_non_null(strstr(rules, "\"virtual/motion-1\""));
	free(rules);
}

static void test_rule_survives_restart(void **state)
{
	struct env *e = *state;
	set_motion(e, false);
	expect_ok(client_request(e->c, "rule/add", motion_rule, 3000));
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 3000), 0);
	assert_int_equal(hearthd_restart(&e->hub), 0);
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	set_motion(e, true);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":150", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
}

static void test_for_hold_survives_kill(void **state)
{
	struct env *e = *state;
	set_motion(e, false);
	client_publish(e->c, "hearth/virtual/light-1/set", "{\"state\":\"OFF\"}", false);
	expect_ok(client_request(
		e->c, "rule/add",
		"\"id\":\"held\",\"triggers\":[{\"type\":\"state\",\"device\":\"virtual/motion-1\","
		"\"attribute\":\"occupancy\",\"to\":true,\"for\":\"3s\"}],"
		"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\",\"state\":{\"state\":"
		"\"ON\",\"brightness\":77}}]",
		3000));
	set_motion(e, true);
	client_pump(e->c, 800);
	/* killed in the middle of the hold; the hold's deadline passes while down */
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGKILL, 3000), 128 + SIGKILL);
	e->hub.last_status = 0;
	sleep(3);
	client_subscribe(e->c, "hearth/bridge/event");
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	assert_int_equal(hearthd_restart(&e->hub), 0);
	cJSON *ev = client_wait_json(e->c, "hearth/bridge/event", "\"missed\":true", 5000);
	assert_non_null(ev);
	assert_string_equal(str(cJSON_GetObjectItem(ev, "data"), "rule"), "held");
	cJSON_Delete(ev);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":77", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
}

static void test_scene_capture_activate(void **state)
{
	struct env *e = *state;
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_publish(e->c, "hearth/virtual/light-1/set",
		       "{\"state\":\"ON\",\"brightness\":60,\"color_temp\":300,\"transition\":0}",
		       false);
	cJSON *s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":60", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
	expect_ok(client_request(e->c, "scene/capture",
				 "\"id\":\"reading\",\"devices\":[\"virtual/light-1\"]", 3000));
	client_publish(e->c, "hearth/virtual/light-1/set",
		       "{\"state\":\"OFF\",\"brightness\":200,\"transition\":0}", false);
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":200", 3000);
	assert_non_null(s);
	cJSON_Delete(s);
	client_clear(e->c);
	cJSON *r = client_request(e->c, "scene/activate", "\"id\":\"reading\"", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "ok");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "data"), "failed")->valueint, 0);
	cJSON_Delete(r);
	/* the light fades back (transition comes from the captured state) */
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":60", 5000);
	assert_non_null(s);
	assert_string_equal(str(s, "state"), "ON");
	cJSON_Delete(s);
	/* bridge/scenes is republished asynchronously (within 200 ms of a change) */
	char *scenes = NULL;
	for (int i = 0; i < 30 && !(scenes && strstr(scenes, "\"reading\"")); i++) {
		free(scenes);
		scenes = client_retained(e->broker.port, "hearth/bridge/scenes", 100);
	}
	if (!scenes || !strstr(scenes, "\"reading\""))
		fail_msg("bridge/scenes: %s", scenes ? scenes : "(none)");
	free(scenes);
}

static void test_explain_why_not(void **state)
{
	struct env *e = *state;
	client_publish(e->c, "hearth/virtual/motion-1/set", "{\"illuminance\":54,\"occupancy\":false}",
		       false);
	expect_ok(client_request(
		e->c, "rule/add",
		"\"id\":\"dark-only\",\"triggers\":[{\"type\":\"state\",\"device\":\"virtual/motion-1\","
		"\"attribute\":\"occupancy\",\"to\":true}],"
		"\"conditions\":[{\"type\":\"numeric\",\"device\":\"virtual/motion-1\","
		"\"attribute\":\"illuminance\",\"below\":30}],"
		"\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-2\",\"state\":{\"state\":"
		"\"ON\"}}]",
		3000));
	set_motion(e, true);
	client_pump(e->c, 500);
	cJSON *r = client_request(e->c, "rule/trace", "\"id\":\"dark-only\"", 3000);
	assert_non_null(r);
	const char *why = str(cJSON_GetObjectItem(r, "data"), "explanation");
	if (!strstr(why, "illuminance was 54, needs below 30") || !strstr(why, "failed"))
		fail_msg("explanation: %s", why);
	cJSON_Delete(r);
}

/* An empty MQTT message (a retained one being cleared) reaches MQTT
 * triggers as an empty payload: it fires, and nothing reads a NULL pointer
 * (under make asan, UBSan would stop hearthd). */
static void test_empty_mqtt_payload(void **state)
{
	struct env *e = *state;
	expect_ok(client_request(
		e->c, "rule/add",
		"\"id\":\"on-empty\",\"triggers\":[{\"type\":\"mqtt\",\"topic\":\"t/cleared\"}],"
		"\"actions\":[{\"type\":\"publish\",\"topic\":\"t/seen\",\"payload\":\"yes\"}]",
		3000));
	client_subscribe(e->c, "t/seen");
	client_clear(e->c);
	assert_int_equal(client_publish(e->c, "t/cleared", "", true), 0);
	char *p = client_wait(e->c, "t/seen", "yes", 3000);
	assert_non_null(p);
	free(p);
	/* a wait for a message, met by an empty one, too */
	expect_ok(client_request(
		e->c, "rule/add",
		"\"id\":\"wait-empty\",\"triggers\":[{\"type\":\"mqtt\",\"topic\":\"t/go\"}],"
		"\"actions\":[{\"type\":\"wait\",\"trigger\":{\"type\":\"mqtt\",\"topic\":\"t/cleared\"},"
		"\"timeout\":\"5s\"},{\"type\":\"publish\",\"topic\":\"t/seen\",\"payload\":\"waited\"}]",
		3000));
	assert_int_equal(client_publish(e->c, "t/go", "1", false), 0);
	client_pump(e->c, 200);
	assert_int_equal(client_publish(e->c, "t/cleared", "", false), 0);
	p = client_wait(e->c, "t/seen", "waited", 3000);
	assert_non_null(p);
	free(p);
}

static void test_file_rule_and_bad_file(void **state)
{
	struct env *e = *state;
	char path[400];
	snprintf(path, sizeof(path), "%s/a.json", e->rules_dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[{%s}, {\"id\":\"broken\",\"triggers\":[],\"actions\":[]}]", motion_rule);
	fclose(f);
	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 3000), 0);
	assert_int_equal(hearthd_restart(&e->hub), 0);
	assert_true(hearthd_log_contains(&e->hub, "rule 'broken': triggers: must be a non-empty list"));
	/* bridge/rules is republished shortly after start: the old retained copy
	 * may come first */
	char *rules = NULL;
	for (int i = 0; i < 30 && !(rules && strstr(rules, "\"source\":\"file\"")); i++) {
		free(rules);
		rules = client_retained(e->broker.port, "hearth/bridge/rules", 100);
	}
	assert_non_null(rules);
	assert_non_null(strstr(rules, "\"source\":\"file\""));
	free(rules);
	/* a file rule cannot be changed over MQTT */
	cJSON *r = client_request(e->c, "rule/remove", "\"id\":\"motion-light\"", 3000);
	assert_non_null(r);
	assert_string_equal(str(r, "status"), "error");
	assert_non_null(strstr(str(r, "error"), "file"));
	cJSON_Delete(r);
}

/* The rules and scenes `make run` uses load without a single complaint,
 * and the demo button really activates the evening scene. */
static void test_demo_rules_load(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	char cwd[512], extra[1024];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(extra, sizeof(extra),
		 "[rules]\ndir = %s/config/rules\n[location]\nlatitude = 52.37\nlongitude = 4.90\n"
		 "[plugin.virtual]\ninterval_ms = 0\n",
		 cwd);
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start(&hub, broker.port, extra), 0);
	assert_true(hearthd_log_contains(&hub, "4 rules and 2 scenes loaded"));
	assert_false(hearthd_log_contains(&hub, "error"));
	struct client *c = client_new(broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/plug-1");
	client_clear(c);
	client_publish(c, "hearth/virtual/plug-1/set", "{\"state\":\"OFF\"}", false);
	char *p = client_wait(c, "hearth/virtual/plug-1", "\"OFF\"", 3000);
	assert_non_null(p);
	free(p);
	client_publish(c, "hearth/virtual/button-1/set", "{\"action\":\"single\"}", false);
	p = client_wait(c, "hearth/virtual/plug-1", "\"ON\"", 3000);
	assert_non_null(p);
	free(p);
	client_free(c);
	int status = hearthd_cleanup(&hub);
	broker_stop(&broker);
	assert_int_equal(status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rule_added_over_mqtt_fires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rule_survives_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_for_hold_survives_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scene_capture_activate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_explain_why_not, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_mqtt_payload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_rule_and_bad_file, setup, teardown),
		cmocka_unit_test(test_demo_rules_load),
	};
	return cmocka_run_group_tests_name("integration: rules", tests, NULL, NULL);
}
