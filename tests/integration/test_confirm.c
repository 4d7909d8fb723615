/*
 * End-to-end command confirmation: a /set counts as done only once the
 * device reports the new state. A command its device does not confirm
 * within [mqtt] command_timeout_ms is sent once more (the plugin says a
 * repeat is harmless), then reported failed on bridge/event
 * ("command_failed"), bridge/response/device/set and, when a rule sent it,
 * in that firing's trace (also after a restart). A device that answers, even
 * only to the repeat, is not reported.
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

static const char *str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	if (!cJSON_IsString(v))
		fail_msg("'%s' is not a string", key);
	return v->valuestring;
}

static void expect_ok(cJSON *r)
{
	assert_non_null(r);
	if (strcmp(str(r, "status"), "ok") != 0)
		fail_msg("request failed: %s", str(r, "error"));
	cJSON_Delete(r);
}

/* The relay's command topic gets one message within ms. */
static void expect_cmd(struct client *c, const char *contains, int ms)
{
	char *cmd = client_wait(c, "t/relay/cmd", contains, ms);
	if (!cmd)
		fail_msg("no command with %s on t/relay/cmd within %d ms", contains, ms);
	free(cmd);
}

/* A generic relay on t/relay/... whose state the test reports by hand (or
 * not: then it is silent), a hub with a 1.5 s confirmation timeout. */
struct relay_env {
	char dir[40], path[300];
	struct broker broker;
	struct hearthd hub;
};

/* Returns a client listening to events, set answers and the relay's
 * commands. */
static struct client *relay_start(struct relay_env *e)
{
	char extra[600];
	snprintf(e->dir, sizeof(e->dir), "/tmp/hearth-confirm-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/devices.json", e->dir);
	FILE *f = fopen(e->path, "w");
	assert_non_null(f);
	fputs("{\"devices\":[{\"id\":\"relay\",\"name\":\"test/relay\",\"state_topic\":\"t/relay/state\","
	      "\"command_topic\":\"t/relay/cmd\",\"attributes\":[{\"name\":\"state\",\"key\":\"state\","
	      "\"type\":\"binary\",\"access\":\"rw\",\"value_on\":\"ON\",\"value_off\":\"OFF\"}]}]}",
	      f);
	fclose(f);
	chmod(e->path, 0600);
	snprintf(extra, sizeof(extra), "[plugin.mqttdev]\ntasmota = false\ndevices_file = %s\n",
		 e->path);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start_full(&e->hub, e->broker.port, "command_timeout_ms = 1500\n",
					    "mqttdev", extra),
			 0);
	struct client *c = client_new(e->broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/bridge/event");
	client_subscribe(c, "hearth/bridge/response/device/set");
	client_subscribe(c, "t/relay/cmd");
	return c;
}

static void relay_stop(struct relay_env *e)
{
	assert_int_equal(hearthd_cleanup(&e->hub), 0);
	broker_stop(&e->broker);
	unlink(e->path);
	rmdir(e->dir);
}

static void test_unconfirmed_command_reported(void **state)
{
	(void)state;
	struct relay_env env;
	struct client *c = relay_start(&env);
	client_publish(c, "t/relay/state", "{\"state\":\"OFF\"}", false);
	client_pump(c, 300);

	/* answered: the device reports what it was told */
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"ON\"}", false);
	expect_cmd(c, "ON", 3000);
	client_publish(c, "t/relay/state", "{\"state\":\"ON\"}", false);

	/* silent: the command goes out twice, nothing comes back */
	client_clear(c);
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"OFF\"}", false);
	expect_cmd(c, "OFF", 3000);
	client_clear(c);
	expect_cmd(c, "OFF", 4000); /* the repeat, after 1.5 s */
	cJSON *ev = client_wait_json(c, "hearth/bridge/event", "command_failed", 5000);
	assert_non_null(ev);
	cJSON *data = cJSON_GetObjectItem(ev, "data");
	assert_string_equal(str(data, "name"), "test/relay");
	assert_non_null(strstr(str(data, "reason"), "(sent twice)"));
	assert_null(cJSON_GetObjectItem(data, "rule"));
	cJSON *unconfirmed = cJSON_GetObjectItem(data, "unconfirmed");
	assert_string_equal(str(unconfirmed, "state"), "OFF");
	cJSON_Delete(ev);
	char *err = client_wait(c, "hearth/bridge/response/device/set", "did not report", 1000);
	assert_non_null(err);
	free(err);
	/* twice, not three times (a wait consumes what it found) */
	assert_int_equal(client_count(c, "t/relay/cmd"), 0);

	/* answered only to the repeat: not a failure */
	client_clear(c);
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"OFF\"}", false);
	expect_cmd(c, "OFF", 3000);
	client_clear(c);
	expect_cmd(c, "OFF", 4000);
	client_publish(c, "t/relay/state", "{\"state\":\"OFF\"}", false);
	client_pump(c, 3500);
	assert_int_equal(client_count_containing(c, "command_failed"), 0);

	/* sent by a rule: the firing's trace tells it, also after a restart */
	expect_ok(client_request(c, "rule/add",
				 "\"id\":\"relay-on\",\"triggers\":[{\"type\":\"mqtt\",\"topic\":\"t/go\"}],"
				 "\"actions\":[{\"type\":\"publish\",\"topic\":\"t/note\",\"payload\":\"x\"},"
				 "{\"type\":\"set\",\"device\":\"test/relay\",\"state\":{\"state\":\"ON\"}}]",
				 3000));
	client_clear(c);
	expect_ok(client_request(c, "rule/trigger", "\"id\":\"relay-on\"", 3000));
	ev = client_wait_json(c, "hearth/bridge/event", "command_failed", 8000);
	assert_non_null(ev);
	data = cJSON_GetObjectItem(ev, "data");
	assert_string_equal(str(data, "rule"), "relay-on");
	assert_string_equal(str(data, "action"), "actions[1]");
	cJSON_Delete(ev);
	for (int round = 0; round < 2; round++) {
		cJSON *r = client_request(c, "rule/trace", "\"id\":\"relay-on\"", 3000);
		assert_non_null(r);
		cJSON *rd = cJSON_GetObjectItem(r, "data");
		const char *why = str(rd, "explanation");
		if (!strstr(why, "actions[1]: unconfirmed (test/relay: the device did not report the new state "
				"within 1.5 s (sent twice))") ||
		    !strstr(why, "actions[0]: ok"))
			fail_msg("explanation (round %d): %s", round, why);
		cJSON_Delete(r);
		if (round == 0) {
			/* the amended trace is what the store keeps */
			client_pump(c, 1500);
			assert_int_equal(hearthd_signal_wait(&env.hub, SIGTERM, 3000), 0);
			assert_int_equal(hearthd_restart(&env.hub), 0);
			client_free(c);
			c = client_new(env.broker.port);
			assert_non_null(c);
		}
	}
	client_free(c);
	relay_stop(&env);
}

/* A newer command to the same attribute, sent before the device showed the
 * older one: the older is not repeated (that would undo the newer); a
 * device/set request for it is answered that it was replaced. */
static void test_newer_command_replaces_older(void **state)
{
	(void)state;
	struct relay_env env;
	struct client *c = relay_start(&env);
	/* the relay has never reported: neither value is confirmed by itself */
	client_pump(c, 300);
	client_clear(c);
	client_publish(c, "hearth/bridge/request/device/set",
		       "{\"id\":\"test/relay\",\"state\":{\"state\":\"ON\"},\"transaction\":\"older\"}",
		       false);
	expect_cmd(c, "ON", 3000);
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"OFF\"}", false);
	expect_cmd(c, "OFF", 3000);
	char *r = client_wait(c, "hearth/bridge/response/device/set", "replaced", 3000);
	assert_non_null(r);
	assert_non_null(strstr(r, "older"));
	free(r);
	/* past the timeout: only the newer one is repeated, then reported */
	cJSON *ev = client_wait_json(c, "hearth/bridge/event", "command_failed", 6000);
	assert_non_null(ev);
	assert_string_equal(str(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "data"), "unconfirmed"),
				"state"),
			    "OFF");
	cJSON_Delete(ev);
	client_pump(c, 500);
	/* the older one was never sent again; the newer failed once */
	assert_null(client_wait(c, "t/relay/cmd", "\"ON\"", 10));
	assert_null(client_wait(c, "hearth/bridge/event", "command_failed", 10));
	client_free(c);
	relay_stop(&env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unconfirmed_command_reported),
		cmocka_unit_test(test_newer_command_replaces_older),
	};
	return cmocka_run_group_tests_name("integration: command confirmation", tests, NULL, NULL);
}
