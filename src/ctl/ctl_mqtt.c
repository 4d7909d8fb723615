/*
 * ctl_mqtt: the MQTT session behind every hearthctl command.
 */
#include "ctl_mqtt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KEEPALIVE_S 60
#define LOOP_SLICE_MS 100
#define SUB_MAX 8
#define QOS 1

volatile sig_atomic_t ctl_interrupted;

enum wait_what {
	WAIT_CONNECT,
	WAIT_SUBACK,
	WAIT_DONE,
};

int64_t ctl_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_connect(struct mosquitto *mosq, void *user, int rc)
{
	struct ctl_session *s = user;

	(void)mosq;
	s->connect_rc = rc;
}

static void on_disconnect(struct mosquitto *mosq, void *user, int rc)
{
	struct ctl_session *s = user;

	(void)mosq;
	(void)rc;
	s->lost = 1;
}

static void on_subscribe(struct mosquitto *mosq, void *user, int mid, int qos_count,
			 const int *granted)
{
	struct ctl_session *s = user;
	int i;

	(void)mosq;
	if (mid != s->sub_mid)
		return;
	s->subscribed = 1;
	for (i = 0; i < qos_count; i++)
		if (granted[i] < 0 || granted[i] > 2)
			s->subscribed = -1;
}

static void on_publish(struct mosquitto *mosq, void *user, int mid)
{
	struct ctl_session *s = user;

	(void)mosq;
	if (s->pub_mid && mid == s->pub_mid)
		s->pub_done = 1;
}

static void on_message(struct mosquitto *mosq, void *user, const struct mosquitto_message *msg)
{
	struct ctl_session *s = user;

	(void)mosq;
	if (!strcmp(msg->topic, s->sync_topic)) {
		s->synced = 1;
		if (s->on_message)
			s->on_message(s, NULL);
		return;
	}
	if (s->on_message)
		s->on_message(s, msg);
}

static int reached(const struct ctl_session *s, enum wait_what what)
{
	switch (what) {
	case WAIT_CONNECT:
		return s->connect_rc >= 0;
	case WAIT_SUBACK:
		return s->subscribed != 0;
	case WAIT_DONE:
		return s->done && (!s->pub_mid || s->pub_done);
	}
	return 1;
}

static void print_lost(const struct ctl_session *s, enum wait_what what, int rc)
{
	const char *why = rc == MOSQ_ERR_ERRNO	 ? strerror(errno)
			  : rc == MOSQ_ERR_EAI ? "cannot resolve the host name"
					       : mosquitto_strerror(rc);

	if (what == WAIT_CONNECT)
		fprintf(stderr, "error: cannot connect to the MQTT broker at %s:%d: %s\n",
			s->opts->host, s->opts->port, why);
	else
		fprintf(stderr, "error: lost the connection to the MQTT broker at %s:%d\n",
			s->opts->host, s->opts->port);
}

/* One bounded wait: every slice is at most LOOP_SLICE_MS, so an interrupt
 * or the deadline is noticed promptly. */
static int wait_for(struct ctl_session *s, enum wait_what what)
{
	int64_t now, left;
	int rc, slice;

	while (!reached(s, what)) {
		if (ctl_interrupted)
			return -EINTR;
		now = ctl_now_ms();
		if (s->deadline_ms && now >= s->deadline_ms)
			return -ETIMEDOUT;
		slice = LOOP_SLICE_MS;
		left = s->deadline_ms - now;
		if (s->deadline_ms && left < slice)
			slice = (int)left;
		errno = 0;
		rc = mosquitto_loop(s->mosq, slice, 1);
		if (ctl_interrupted)
			return -EINTR;
		if ((rc != MOSQ_ERR_SUCCESS || s->lost) && !reached(s, what)) {
			print_lost(s, what, rc == MOSQ_ERR_SUCCESS ? MOSQ_ERR_CONN_LOST : rc);
			return -ECONNRESET;
		}
	}
	return 0;
}

static int connect_broker(struct ctl_session *s)
{
	int rc;

	errno = 0;
	rc = mosquitto_connect_async(s->mosq, s->opts->host, s->opts->port, KEEPALIVE_S);
	if (rc != MOSQ_ERR_SUCCESS) {
		print_lost(s, WAIT_CONNECT, rc);
		return -ECONNREFUSED;
	}
	rc = wait_for(s, WAIT_CONNECT);
	if (rc == -ETIMEDOUT)
		fprintf(stderr, "error: no answer from the MQTT broker at %s:%d within %d s\n",
			s->opts->host, s->opts->port, s->opts->timeout_s);
	if (rc)
		return rc == -EINTR ? rc : -ECONNREFUSED;
	if (s->connect_rc != 0) {
		fprintf(stderr, "error: the MQTT broker at %s:%d refused the connection: %s\n",
			s->opts->host, s->opts->port, mosquitto_connack_string(s->connect_rc));
		return -ECONNREFUSED;
	}
	return 0;
}

int ctl_session_open(struct ctl_session *s, const struct ctl_opts *opts, int deadline,
		     ctl_message_fn handler, void *user)
{
	memset(s, 0, sizeof(*s));
	s->opts = opts;
	s->connect_rc = -1;
	s->on_message = handler;
	s->user = user;
	if (deadline)
		s->deadline_ms = ctl_now_ms() + (int64_t)opts->timeout_s * 1000;
	snprintf(s->client_id, sizeof(s->client_id), "hearthctl-%ld", (long)getpid());
	snprintf(s->sync_topic, sizeof(s->sync_topic), "hearthctl/%s/sync", s->client_id);
	mosquitto_lib_init();
	s->mosq = mosquitto_new(s->client_id, true, s);
	if (!s->mosq) {
		fprintf(stderr, "error: out of memory\n");
		return -ENOMEM;
	}
	mosquitto_connect_callback_set(s->mosq, on_connect);
	mosquitto_disconnect_callback_set(s->mosq, on_disconnect);
	mosquitto_subscribe_callback_set(s->mosq, on_subscribe);
	mosquitto_publish_callback_set(s->mosq, on_publish);
	mosquitto_message_callback_set(s->mosq, on_message);
	return connect_broker(s);
}

/* Wait for the SUBACK; a refusal or a silent broker is printed. */
static int await_suback(struct ctl_session *s, const char *first)
{
	int rc = wait_for(s, WAIT_SUBACK);

	if (rc == -ETIMEDOUT)
		fprintf(stderr, "error: the MQTT broker at %s:%d did not confirm the subscription\n",
			s->opts->host, s->opts->port);
	else if (rc == 0 && s->subscribed < 0)
		fprintf(stderr, "error: the MQTT broker at %s:%d refused the subscription to %s\n",
			s->opts->host, s->opts->port, first);
	else
		return rc;
	return -EIO;
}

int ctl_session_subscribe(struct ctl_session *s, const char *const *topics, int n)
{
	char *subs[SUB_MAX + 1];
	int i, rc;

	if (n < 0 || n > SUB_MAX)
		return -EINVAL;
	for (i = 0; i < n; i++)
		subs[i] = (char *)topics[i];
	subs[n] = s->sync_topic;
	rc = mosquitto_subscribe_multiple(s->mosq, &s->sub_mid, n + 1, subs, QOS, 0, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "error: cannot subscribe: %s\n", mosquitto_strerror(rc));
		return -EIO;
	}
	rc = await_suback(s, n > 0 ? topics[0] : s->sync_topic);
	if (rc)
		return rc;
	rc = mosquitto_publish(s->mosq, NULL, s->sync_topic, 0, NULL, QOS, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "error: cannot publish: %s\n", mosquitto_strerror(rc));
		return -EIO;
	}
	return 0;
}

int ctl_session_publish(struct ctl_session *s, const char *topic, const char *payload)
{
	size_t len = strlen(payload);
	int rc;

	rc = mosquitto_publish(s->mosq, &s->pub_mid, topic, (int)len, payload, QOS, false);
	if (rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "error: cannot publish to %s: %s\n", topic, mosquitto_strerror(rc));
		s->pub_mid = 0;
		return rc == MOSQ_ERR_PAYLOAD_SIZE ? -EMSGSIZE : -EIO;
	}
	return 0;
}

int ctl_session_run(struct ctl_session *s)
{
	return wait_for(s, WAIT_DONE);
}

void ctl_session_extend(struct ctl_session *s, int timeout_s)
{
	s->deadline_ms = ctl_now_ms() + (int64_t)timeout_s * 1000;
}

cJSON *ctl_payload_json(const struct mosquitto_message *msg)
{
	if (!msg->payload || msg->payloadlen <= 0 || msg->payloadlen > CTL_PAYLOAD_MAX)
		return NULL;
	return cJSON_ParseWithLength(msg->payload, (size_t)msg->payloadlen);
}

void ctl_session_close(struct ctl_session *s)
{
	if (s->mosq) {
		if (s->connect_rc == 0 && !s->lost)
			mosquitto_disconnect(s->mosq);
		mosquitto_destroy(s->mosq);
		s->mosq = NULL;
	}
	mosquitto_lib_cleanup();
}
