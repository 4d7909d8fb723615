/*
 * ctl_mqtt: one short MQTT session for a hearthctl command, driven by
 * libmosquitto's own loop in a bounded wait (the CLI may block).
 *
 * A command opens a session, subscribes (which also starts a "sync" round
 * trip: once the sync message comes back, every retained message of the
 * subscription has been delivered), publishes, and runs until its message
 * handler sets done, the deadline passes or the user interrupts.
 *
 * Errors other than -ETIMEDOUT are printed to stderr here, once; -ETIMEDOUT
 * is left to the caller, which knows what it was waiting for.
 */
#ifndef HEARTHCTL_MQTT_H
#define HEARTHCTL_MQTT_H

#include <signal.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>

#include "ctl_args.h"

/* Set by the SIGINT/SIGTERM handler; a running session returns -EINTR. */
extern volatile sig_atomic_t ctl_interrupted;

struct ctl_session;

/* Called for every message; msg is borrowed for the call, and NULL when the
 * sync message came back (every retained message has been delivered). */
typedef void (*ctl_message_fn)(struct ctl_session *s, const struct mosquitto_message *msg);

struct ctl_session {
	struct mosquitto *mosq;
	const struct ctl_opts *opts;
	char client_id[40];
	char sync_topic[96];
	int64_t deadline_ms; /* 0: none */
	int connect_rc;	     /* -1 until CONNACK */
	int sub_mid;
	int subscribed;
	int synced;
	int pub_mid; /* of the command's own publish; 0 before it */
	int pub_done;
	int lost;
	/* Set by the handler when the command has its answer. */
	int done;
	/* The command's exit status, chosen by the handler. */
	int status;
	ctl_message_fn on_message;
	void *user;
};

/* Milliseconds on the monotonic clock. */
int64_t ctl_now_ms(void);

/*
 * Connect to opts->host:opts->port as "hearthctl-<pid>" with a clean session.
 * With deadline set, the whole command (connect included) must finish within
 * opts->timeout_s. Returns 0, -EINTR, or -ECONNREFUSED/-ENOMEM after
 * printing why (a broker that does not answer in time counts as refusing).
 */
int ctl_session_open(struct ctl_session *s, const struct ctl_opts *opts, int deadline,
		     ctl_message_fn on_message, void *user);

/*
 * Subscribe to n topic filters (QoS 1) plus the sync topic, wait for the
 * SUBACK, then send the sync message. Returns 0, -EINTR, or another
 * negative errno after printing why.
 */
int ctl_session_subscribe(struct ctl_session *s, const char *const *topics, int n);

/* Publish payload (not retained) at QoS 1. run() will not return 0 before
 * the broker has acknowledged it. Returns 0 or a negative errno. */
int ctl_session_publish(struct ctl_session *s, const char *topic, const char *payload);

/*
 * Run the loop until done is set (and the publish, if any, is acknowledged).
 * Returns 0, -ETIMEDOUT (deadline passed, not printed), -EINTR (interrupted),
 * or -ECONNRESET (connection lost, printed).
 */
int ctl_session_run(struct ctl_session *s);

/* Push the deadline to now + timeout_s (watch's idle timeout). */
void ctl_session_extend(struct ctl_session *s, int timeout_s);

/* A message's payload parsed as JSON (at most CTL_PAYLOAD_MAX bytes), or
 * NULL. The result is new. */
#define CTL_PAYLOAD_MAX (16 * 1024 * 1024)
cJSON *ctl_payload_json(const struct mosquitto_message *msg);

/* Disconnect and free; safe on a session that failed to open. */
void ctl_session_close(struct ctl_session *s);

#endif
