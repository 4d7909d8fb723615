/*
 * Broker faults: mosquitto is killed and restarted many times while hearthd
 * runs under load. hearthd never exits, reconnects within 2 s of the
 * broker's return each time, resubscribes (it takes commands again) and
 * republishes its retained state to the broker that lost it.
 *
 * Commands across SIGKILLs: a broker killed without warning loses what it
 * had acknowledged but not yet delivered, so a publisher cannot trust QoS 1
 * alone. The device/set request answers once the device has confirmed the
 * command or it has failed: a publisher that sends again whatever stayed
 * unanswered gets every command done or reported failed, none silently lost.
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

#include <mosquitto.h>
#include <pthread.h>

#include "harness.h"

#define RESTARTS 20

/* A broker, and a hub whose 50 climate sensors report every 100 ms. */
static void start_under_load(struct broker *broker, struct hearthd *hub)
{
	assert_int_equal(broker_start(broker), 0);
	assert_int_equal(hearthd_start(hub, broker->port,
				       "[plugin.virtual]\ndevices = climate:50, light:1\n"
				       "interval_ms = 100\n"),
			 0);
}

static void test_broker_killed_and_restarted(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	start_under_load(&broker, &hub);
	long long worst = 0;
	unsigned seed = (unsigned)getpid();
	for (int i = 0; i < RESTARTS; i++) {
		broker_kill(&broker);
		usleep((useconds_t)(100000 + rand_r(&seed) % 900000));
		assert_int_equal(waitpid(hub.pid, NULL, WNOHANG), 0); /* never exits */
		assert_int_equal(broker_restart(&broker), 0);
		long long back = harness_now_ms();
		/* the broker lost everything: online again means hearthd reconnected
		 * and republished */
		char *online = NULL;
		while (!online && harness_now_ms() - back < 5000)
			online = client_retained(broker.port, "hearth/bridge/state", 50);
		long long took = harness_now_ms() - back;
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

/* -- commands end to end across SIGKILLs ---------------------------------------------- */

#define COMMANDS 2000
#define RESEND_MS 3000

struct publisher {
	struct mosquitto *m;
	pthread_mutex_t lock;
	long long sent_ms[COMMANDS]; /* last (re)send, 0: not yet sent */
	int answer[COMMANDS];	     /* 0 none, 1 ok, 2 error */
	int resent;
	int answers; /* answers received, repeats included */
};

static void pub_connected(struct mosquitto *m, void *user, int rc)
{
	(void)user;
	/* the killed broker forgot every subscription */
	if (rc == 0)
		mosquitto_subscribe(m, NULL, "hearth/bridge/response/device/set", 1);
}

static void pub_message(struct mosquitto *m, void *user, const struct mosquitto_message *msg)
{
	(void)m;
	struct publisher *p = user;
	cJSON *o = cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
	cJSON *t = cJSON_GetObjectItem(o, "transaction");
	cJSON *status = cJSON_GetObjectItem(o, "status");
	if (cJSON_IsNumber(t) && t->valueint >= 0 && t->valueint < COMMANDS &&
	    cJSON_IsString(status)) {
		pthread_mutex_lock(&p->lock);
		p->answers++;
		if (!p->answer[t->valueint])
			p->answer[t->valueint] = strcmp(status->valuestring, "ok") == 0 ? 1 : 2;
		pthread_mutex_unlock(&p->lock);
	}
	cJSON_Delete(o);
}

static void send_command(struct publisher *p, int n)
{
	char body[160];
	/* brightness 1..254, never TOGGLE: the same request twice does no harm */
	snprintf(body, sizeof(body),
		 "{\"id\":\"virtual/light-1\",\"state\":{\"brightness\":%d,\"transition\":0},"
		 "\"transaction\":%d}",
		 1 + n % 254, n);
	/* while the broker is down the library keeps QoS 1 messages and sends
	 * them after it reconnects; a refusal here is only counted as unsent */
	mosquitto_publish(p->m, NULL, "hearth/bridge/request/device/set", (int)strlen(body), body, 1,
			  false);
	pthread_mutex_lock(&p->lock);
	p->sent_ms[n] = harness_now_ms();
	pthread_mutex_unlock(&p->lock);
}

/* Send again every command unanswered for RESEND_MS; how many are open. */
static int resend_unanswered(struct publisher *p, int upto)
{
	int open = 0;
	for (int n = 0; n < upto; n++) {
		pthread_mutex_lock(&p->lock);
		bool due = !p->answer[n] && harness_now_ms() - p->sent_ms[n] > RESEND_MS;
		bool unanswered = !p->answer[n];
		pthread_mutex_unlock(&p->lock);
		open += unanswered;
		if (due) {
			p->resent++;
			send_command(p, n);
		}
	}
	return open;
}

static void test_commands_end_to_end_across_kills(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	start_under_load(&broker, &hub);
	static struct publisher p;
	memset(&p, 0, sizeof(p));
	pthread_mutex_init(&p.lock, NULL);
	char id[64];
	snprintf(id, sizeof(id), "hearth-test-publisher-%d", (int)getpid());
	/* a persistent session: QoS 1 messages wait in it while disconnected */
	p.m = mosquitto_new(id, false, &p);
	assert_non_null(p.m);
	mosquitto_connect_callback_set(p.m, pub_connected);
	mosquitto_message_callback_set(p.m, pub_message);
	mosquitto_reconnect_delay_set(p.m, 1, 2, false);
	mosquitto_max_inflight_messages_set(p.m, 0);
	assert_int_equal(mosquitto_connect(p.m, "127.0.0.1", broker.port, 30), MOSQ_ERR_SUCCESS);
	assert_int_equal(mosquitto_loop_start(p.m), MOSQ_ERR_SUCCESS);
	usleep(300000);

	unsigned seed = (unsigned)getpid();
	int next = 0;
	for (int kill_no = 0; kill_no < RESTARTS; kill_no++) {
		/* up for 1.5..2.5 s (the publisher's library waits 1 s before it
		 * reconnects), down for 0.1..1 s, a command every 25 ms */
		long long up_until = harness_now_ms() + 1500 + rand_r(&seed) % 1000;
		while (harness_now_ms() < up_until) {
			if (next < COMMANDS)
				send_command(&p, next++);
			usleep(25000);
		}
		broker_kill(&broker);
		long long down_until = harness_now_ms() + 100 + rand_r(&seed) % 900;
		while (harness_now_ms() < down_until) {
			if (next < COMMANDS)
				send_command(&p, next++);
			usleep(25000);
		}
		assert_int_equal(waitpid(hub.pid, NULL, WNOHANG), 0);
		assert_int_equal(broker_restart(&broker), 0);
		resend_unanswered(&p, next);
	}
	while (next < COMMANDS)
		send_command(&p, next++);
	/* the end: every command answered, sending again what stays open */
	long long until = harness_now_ms() + 60000;
	int open = COMMANDS;
	while ((open = resend_unanswered(&p, COMMANDS)) > 0 && harness_now_ms() < until)
		usleep(100000);
	int ok = 0, failed = 0;
	pthread_mutex_lock(&p.lock);
	for (int n = 0; n < COMMANDS; n++) {
		ok += p.answer[n] == 1;
		failed += p.answer[n] == 2;
	}
	int answers = p.answers;
	pthread_mutex_unlock(&p.lock);
	fprintf(stderr,
		"commands across %d broker SIGKILLs: %d sent, %d confirmed, %d reported failed, "
		"%d unanswered; %d sent again after %d ms without an answer (%d answers in all)\n",
		RESTARTS, COMMANDS, ok, failed, open, p.resent, RESEND_MS, answers);
	assert_int_equal(open, 0);
	assert_int_equal(ok + failed, COMMANDS);
	mosquitto_disconnect(p.m);
	mosquitto_loop_stop(p.m, true);
	mosquitto_destroy(p.m);
	pthread_mutex_destroy(&p.lock);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

int main(void)
{
	mosquitto_lib_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_broker_killed_and_restarted),
		cmocka_unit_test(test_commands_end_to_end_across_kills),
	};
	return cmocka_run_group_tests_name("integration: broker faults", tests, NULL, NULL);
}
