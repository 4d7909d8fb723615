/*
 * Commands sent while hearthd is down: hearthd keeps a persistent MQTT
 * session, so QoS 1 commands queued at the broker are executed when it comes
 * back — unless the publisher gave them an MQTT 5 message expiry that ran
 * out meanwhile: the broker drops those, and no stale command is replayed.
 * A command its publisher stamped (user property "timestamp") longer ago
 * than [mqtt] command_max_age_s is dropped by hearthd with a log line.
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
#include <time.h>
#include <unistd.h>

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "harness.h"

static void publish_v5(int port, const char *topic, const char *payload, uint32_t expiry_s,
		       const char *stamp)
{
	struct mosquitto *m = mosquitto_new(NULL, true, NULL);
	assert_non_null(m);
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	assert_int_equal(mosquitto_connect(m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
	mosquitto_property *props = NULL;
	if (expiry_s)
		mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
	if (stamp)
		mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "timestamp", stamp);
	int mid = 0;
	assert_int_equal(mosquitto_publish_v5(m, &mid, topic, (int)strlen(payload), payload, 1, false,
					      props),
			 MOSQ_ERR_SUCCESS);
	mosquitto_property_free_all(&props);
	for (int i = 0; i < 50; i++)
		mosquitto_loop(m, 10, 1); /* until the PUBACK is in */
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
}

static void test_queued_while_down(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	char stamp[32];
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start_full(&hub, broker.port, "command_max_age_s = 2\n", "virtual",
					    "[plugin.virtual]\ninterval_ms = 0\n"),
			 0);
	assert_int_equal(hearthd_signal_wait(&hub, SIGTERM, 3000), 0);

	/* down: one command that may wait, one that must not wait 3 s by its
	 * expiry, one stamped now that is too old 3 s later */
	snprintf(stamp, sizeof(stamp), "%lld", (long long)time(NULL));
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"brightness\":61,\"transition\":0}", 0,
		   NULL);
	publish_v5(broker.port, "hearth/virtual/light-2/set", "{\"brightness\":62,\"transition\":0}", 2,
		   NULL);
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"color_temp\":222}", 0, stamp);
	sleep(3);

	struct client *c = client_new(broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/light-1");
	client_subscribe(c, "hearth/virtual/light-2");
	client_clear(c);
	assert_int_equal(hearthd_restart(&hub), 0);
	char *p = client_wait(c, "hearth/virtual/light-1", "\"brightness\":61", 5000);
	assert_non_null(p);
	free(p);
	client_pump(c, 1000);
	p = client_wait(c, "hearth/virtual/light-2", "\"brightness\":62", 0);
	assert_null(p);
	p = client_wait(c, "hearth/virtual/light-1", "\"color_temp\":222", 0);
	assert_null(p);
	assert_true(hearthd_log_contains(&hub, "longer than [mqtt] command_max_age_s = 2: dropped"));

	/* stamped now (RFC 3339, and milliseconds): carried out */
	time_t now = time(NULL);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"color_temp\":333}", 0, stamp);
	p = client_wait(c, "hearth/virtual/light-1", "\"color_temp\":333", 5000);
	assert_non_null(p);
	free(p);
	snprintf(stamp, sizeof(stamp), "%lld000", (long long)time(NULL));
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"color_temp\":344}", 0, stamp);
	p = client_wait(c, "hearth/virtual/light-1", "\"color_temp\":344", 5000);
	assert_non_null(p);
	free(p);
	/* an unreadable stamp is no stamp */
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"color_temp\":355}", 0, "soon");
	p = client_wait(c, "hearth/virtual/light-1", "\"color_temp\":355", 5000);
	assert_non_null(p);
	free(p);
	client_free(c);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queued_while_down),
	};
	return cmocka_run_group_tests_name("integration: commands queued while down", tests, NULL,
					   NULL);
}
