/*
 * mqtt: libmosquitto driven from the libuv loop. The only file that includes
 * mosquitto.h.
 *
 * No second thread runs the client: a uv_poll watches mosquitto_socket()
 * (write interest while mosquitto_want_write()), a 1 s timer runs
 * mosquitto_loop_misc(). The TCP connect (with DNS) runs on the thread pool
 * so a slow or unreachable broker never blocks the loop; nothing else
 * touches the client meanwhile. Reconnects back off 0.25 s, 0.5 s, 1 s ... 30 s,
 * resubscribe every remembered filter, and report through connect_fn.
 * MQTT 5 with no-local subscriptions (the hub never hears its own
 * publications); falls back to 3.1.1 when the broker refuses version 5.
 *
 * Edge module: logs. Loop thread only.
 */
#ifndef HEARTH_MQTT_H
#define HEARTH_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct mqtt;

struct mqtt_options {
	const char *host;
	int port;
	const char *client_id;
	const char *username;	/* NULL: none */
	const char *password;	/* NULL: none; copied */
	const char *tls_ca;	/* NULL: no TLS */
	const char *tls_cert;
	const char *tls_key;
	bool tls_insecure;
	int keepalive_s;
	const char *will_topic;	  /* retained last will, QoS 1; NULL: none */
	const char *will_payload;
	uint32_t session_expiry_s; /* 0: clean session */
};

/* connected: true on CONNACK success (after resubscribing), false on loss. */
typedef void (*mqtt_connect_fn)(void *user, bool connected);
/* Every message received; topic and payload borrowed for the call. */
typedef void (*mqtt_message_fn)(void *user, const char *topic, const void *payload, size_t len,
				bool retained);

/* Create a client (not yet connecting). Options are copied. 0 or -ENOMEM,
 * -EINVAL (TLS files unusable: logged). */
int mqtt_new(uv_loop_t *loop, const struct mqtt_options *options, mqtt_connect_fn connect_fn,
	     mqtt_message_fn message_fn, void *user, struct mqtt **out);

/* Begin connecting (and keep reconnecting until mqtt_stop). */
void mqtt_start(struct mqtt *m);

/* Every function below accepts a NULL client (a hub whose start failed
 * before it had one): nothing is sent, and it reports "not connected". */

/* Remember filter and subscribe now if connected. Subscribing the same
 * filter twice counts twice (unsubscribe drops one reference). */
int mqtt_subscribe(struct mqtt *m, const char *filter, int qos);
int mqtt_unsubscribe(struct mqtt *m, const char *filter);

/* Publish. -ENOTCONN when not connected (message dropped), -EINVAL for a
 * bad topic or payload over 256 MiB, -ENOMEM. */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
		 bool retain);

bool mqtt_is_connected(const struct mqtt *m);

/* Inside a message callback: the time the publisher stamped on the message
 * with an MQTT 5 user property "timestamp", in ms since the epoch; 0 when
 * there is none or it is unreadable, and outside a callback. */
int64_t mqtt_message_sent_ms(const struct mqtt *m);

/* Parse a timestamp: Unix time in seconds ("1795446792", "1795446792.25"),
 * in milliseconds when 13 digits or more ("1795446792250"), or RFC 3339
 * ("2026-11-23T15:13:12Z", "2026-11-23T16:13:12.5+01:00"). 0 or -EINVAL. */
int mqtt_timestamp_parse(const char *text, int64_t *out_ms);
/* Connections made so far (for tests and health). */
unsigned mqtt_connect_count(const struct mqtt *m);

/* Flush what is queued, disconnect cleanly (the will is not sent) and call
 * done(user) once the socket is closed, or after timeout_ms at most. */
void mqtt_stop(struct mqtt *m, uint64_t timeout_ms, void (*done)(void *user), void *user);

/* Free; only after mqtt_stop's done ran, or before mqtt_start. NULL ok. */
void mqtt_free(struct mqtt *m);

/* MQTT topic filter match (+ and #). */
bool mqtt_topic_matches(const char *filter, const char *topic);
/* Valid topic to publish to (no wildcards, UTF-8, 1..65535 bytes). */
bool mqtt_topic_valid(const char *topic);
/* Valid subscription filter. */
bool mqtt_filter_valid(const char *filter);

#endif
