/*
 * Commands sent while hearthd is down: hearthd keeps a persistent MQTT
 * session, so QoS 1 commands queued at the broker are executed when it comes
 * back — unless the publisher gave them an MQTT 5 message expiry that ran
 * out meanwhile: the broker drops those, and no stale command is replayed.
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

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "harness.h"

static void publish_v5(int port, const char *topic, const char *payload, uint32_t expiry_s)
{
	struct mosquitto *m = mosquitto_new(NULL, true, NULL);
	assert_non_null(m);
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	assert_int_equal(mosquitto_connect(m, "127.0.0.1", port, 30), MOSQ_ERR_SUCCESS);
	mosquitto_property *props = NULL;
	if (expiry_s)
		mosquitto_property_add_int32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, expiry_s);
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
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start(&hub, broker.port, "[plugin.virtual]\ninterval_ms = 0\n"), 0);
	assert_int_equal(hearthd_signal_wait(&hub, SIGTERM, 3000), 0);

	/* down: one command that may wait, one that must not wait 3 s */
	publish_v5(broker.port, "hearth/virtual/light-1/set", "{\"brightness\":61,\"transition\":0}", 0);
	publish_v5(broker.port, "hearth/virtual/light-2/set", "{\"brightness\":62,\"transition\":0}", 2);
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
