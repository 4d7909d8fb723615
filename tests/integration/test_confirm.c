/*
 * End-to-end command confirmation: a /set counts as done only once the
 * device reports the new state. A device that accepts the command but never
 * shows it is reported failed on bridge/event ("command_failed") and
 * bridge/response/device/set; a device that answers is not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static void test_unconfirmed_command_reported(void **state)
{
	(void)state;
	char dir[] = "/tmp/hearth-confirm-XXXXXX", path[300], extra[600];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/devices.json", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"devices\":[{\"id\":\"relay\",\"name\":\"test/relay\",\"state_topic\":\"t/relay/state\","
	      "\"command_topic\":\"t/relay/cmd\",\"attributes\":[{\"name\":\"state\",\"key\":\"state\","
	      "\"type\":\"binary\",\"access\":\"rw\",\"value_on\":\"ON\",\"value_off\":\"OFF\"}]}]}",
	      f);
	fclose(f);
	chmod(path, 0600);
	snprintf(extra, sizeof(extra), "[plugin.mqttdev]\ntasmota = false\ndevices_file = %s\n", path);
	struct broker broker;
	struct hearthd hub;
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start_plugins(&hub, broker.port, "mqttdev", extra), 0);
	struct client *c = client_new(broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/bridge/event");
	client_subscribe(c, "hearth/bridge/response/device/set");
	client_subscribe(c, "t/relay/cmd");
	client_publish(c, "t/relay/state", "{\"state\":\"OFF\"}", false);
	client_pump(c, 300);

	/* answered: the device reports what it was told */
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"ON\"}", false);
	char *cmd = client_wait(c, "t/relay/cmd", NULL, 3000);
	assert_non_null(cmd);
	free(cmd);
	client_publish(c, "t/relay/state", "{\"state\":\"ON\"}", false);

	/* silent: the command goes out, nothing comes back */
	client_publish(c, "hearth/test/relay/set", "{\"state\":\"OFF\"}", false);
	cmd = client_wait(c, "t/relay/cmd", NULL, 3000);
	assert_non_null(cmd);
	free(cmd);

	cJSON *ev = client_wait_json(c, "hearth/bridge/event", "command_failed", 15000);
	assert_non_null(ev);
	cJSON *data = cJSON_GetObjectItem(ev, "data");
	assert_string_equal(cJSON_GetObjectItem(data, "name")->valuestring, "test/relay");
	cJSON *unconfirmed = cJSON_GetObjectItem(data, "unconfirmed");
	assert_string_equal(cJSON_GetObjectItem(unconfirmed, "state")->valuestring, "OFF");
	cJSON_Delete(ev);
	char *err = client_wait(c, "hearth/bridge/response/device/set", "did not report", 1000);
	assert_non_null(err);
	free(err);
	/* only the silent one failed */
	client_pump(c, 1500);
	assert_int_equal(client_count_containing(c, "command_failed"), 1);
	client_free(c);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unconfirmed_command_reported),
	};
	return cmocka_run_group_tests_name("integration: command confirmation", tests, NULL, NULL);
}
