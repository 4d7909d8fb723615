/*
 * Broker faults: mosquitto is killed and restarted many times while hearthd
 * runs under load. hearthd never exits, reconnects within 2 s of the
 * broker's return each time, resubscribes (it takes commands again) and
 * republishes its retained state to the broker that lost it.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define RESTARTS 20

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_broker_killed_and_restarted(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start(&hub, broker.port,
				       "[plugin.virtual]\ndevices = climate:50, light:1\n"
				       "interval_ms = 100\n"),
			 0);
	long long worst = 0;
	unsigned seed = (unsigned)getpid();
	for (int i = 0; i < RESTARTS; i++) {
		broker_kill(&broker);
		usleep((useconds_t)(100000 + rand_r(&seed) % 900000));
		assert_int_equal(waitpid(hub.pid, NULL, WNOHANG), 0); /* never exits */
		assert_int_equal(broker_restart(&broker), 0);
		long long back = mono_ms();
		/* the broker lost everything: online again means hearthd reconnected
		 * and republished */
		char *online = NULL;
		while (!online && mono_ms() - back < 5000)
			online = client_retained(broker.port, "hearth/bridge/state", 50);
		long long took = mono_ms() - back;
		assert_non_null(online);
		assert_string_equal(online, "{\"state\":\"online\"}");
		free(online);
		if (took > worst)
			worst = took;
		/* resubscribed: a command works */
		struct client *c = client_new(broker.port);
		assert_non_null(c);
		client_subscribe(c, "hearth/virtual/light-1");
		char set[64];
		snprintf(set, sizeof(set), "{\"brightness\":%d}", 10 + i);
		client_publish(c, "hearth/virtual/light-1/set", set, false);
		char want[32];
		snprintf(want, sizeof(want), "\"brightness\":%d", 10 + i);
		char *p = client_wait(c, "hearth/virtual/light-1", want, 3000);
		assert_non_null(p);
		free(p);
		char *devices = client_retained(broker.port, "hearth/bridge/devices", 1000);
		assert_non_null(devices);
		free(devices);
		client_free(c);
	}
	fprintf(stderr, "broker faults: %d restarts, worst reconnect-and-republish %lld ms\n",
		RESTARTS, worst);
	assert_true(worst <= 2000);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_killed_and_restarted),
	};
	return cmocka_run_group_tests_name("integration: broker faults", tests, NULL, NULL);
}
