/*
 * Integration test harness: a real mosquitto on a free 127.0.0.1 port in a
 * temp dir, a real hearthd process with a temp database and config, and a
 * synchronous MQTT client for assertions. Every wait is bounded in time;
 * every process is stopped by pid.
 *
 * Binaries come from $B (default "build"): $B/hearthd, $B/plugins.
 */
#ifndef HEARTH_TEST_HARNESS_H
#define HEARTH_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

struct broker {
	pid_t pid;
	int port;
	char dir[256];
	char extra[2048];
};

/* Start mosquitto (no persistence) on a free port. 0 or -1. */
int broker_start(struct broker *b);
/* The same with extra mosquitto.conf text appended (it may set
 * allow_anonymous, password_file, acl_file, more listeners). */
int broker_start_with(struct broker *b, const char *extra_conf);
/* A free TCP port on 127.0.0.1 (nothing listens there right now). */
int harness_free_port(void);
/* Start it again on the same port after a stop or kill. */
int broker_restart(struct broker *b);
/* SIGKILL (no clean shutdown) and reap. */
void broker_kill(struct broker *b);
/* SIGTERM, reap, remove the temp dir. */
void broker_stop(struct broker *b);

struct hearthd {
	pid_t pid;
	int port;
	char dir[256];	/* temp dir holding conf, db, log */
	char conf[300];
	char db[300];
	char log[300];
	char enable[256]; /* [plugins] enable */
	char mqtt_extra[1024]; /* more [mqtt] keys (username, password_file, tls_ca ...) */
	int last_status;  /* exit status of the last stop, or 0 */
	char extra[8192]; /* extra config text, kept for restarts */
};

/* Write a config (virtual plugin enabled unless extra overrides [plugins])
 * and start hearthd against port; waits until hearth/bridge/state is online
 * (up to 5 s). extra: more config text appended (may be NULL). 0 or -1. */
int hearthd_start(struct hearthd *h, int port, const char *extra);
/* The same with [plugins] enable = enable (e.g. "zigbee" or "virtual, zigbee").
 * extra must begin with a section header, e.g. "[plugin.zigbee]\n...". */
int hearthd_start_plugins(struct hearthd *h, int port, const char *enable, const char *extra);
/* The same with more keys in [mqtt] (e.g. "username = hearth\n"). The hub
 * does not have to reach the broker: it is started when READY is logged. */
int hearthd_start_full(struct hearthd *h, int port, const char *mqtt_extra, const char *enable,
		       const char *extra);
/* Start again with the same dir (same database). */
int hearthd_restart(struct hearthd *h);
/* Send sig, wait up to timeout_ms; returns the exit status (0..255), 128+N
 * for a signal death, or -1 on timeout (then it is SIGKILLed). */
int hearthd_signal_wait(struct hearthd *h, int sig, int timeout_ms);
/* Stop (SIGTERM) and remove the temp dir. Returns the exit status of the
 * last stop (0: clean; under ASan a leak or error makes it non-zero) and
 * prints the daemon's log when it is not 0. */
int hearthd_cleanup(struct hearthd *h);
/* True when the hearthd log contains text. */
bool hearthd_log_contains(const struct hearthd *h, const char *text);

struct client;

/* A fresh MQTT client connected to port (clean session). NULL on failure. */
struct client *client_new(int port);
/* The same with a username and password. */
struct client *client_new_auth(int port, const char *user, const char *password);
void client_free(struct client *c);
int client_subscribe(struct client *c, const char *filter);
int client_publish(struct client *c, const char *topic, const char *payload, bool retain);
/* Forget every message received so far. */
void client_clear(struct client *c);
/* Pump the network for ms. */
void client_pump(struct client *c, int ms);
/*
 * Wait up to timeout_ms for a message on topic (exact) received after the
 * last clear, whose payload contains `contains` (NULL: any). Returns a
 * malloc'd copy of the payload (NULL on timeout). retained_out may be NULL.
 */
char *client_wait(struct client *c, const char *topic, const char *contains, int timeout_ms);
/* Same, parsed as JSON (NULL on timeout or bad JSON). */
cJSON *client_wait_json(struct client *c, const char *topic, const char *contains,
			int timeout_ms);
/* Number of messages (any topic) whose payload contains text. */
int client_count_containing(struct client *c, const char *text);
/* Number of messages received on topic since the last clear. */
int client_count(struct client *c, const char *topic);
/* Read the retained message of topic with a fresh subscription (NULL if
 * none arrives within timeout_ms; "" for none retained is not detectable,
 * so callers use a short timeout). */
char *client_retained(int port, const char *topic, int timeout_ms);
/* Send a bridge request and wait for its response (matched by transaction).
 * Returns the response object or NULL. */
cJSON *client_request(struct client *c, const char *path, const char *json_without_braces,
		      int timeout_ms);

/* Monotonic time in milliseconds, and a sleep. */
long long harness_now_ms(void);
void harness_sleep_ms(int ms);
/* The first column of the first row sql gives on the database at path,
 * opened read-only; -1 when anything fails. */
long long harness_db_ll(const char *path, const char *sql);
/* Path of the build dir ($B or "build"). */
const char *harness_build_dir(void);
/* True when hearthd runs under memcheck (HEARTH_VALGRIND=1, make
 * valgrind-integration): tests of timing under load skip themselves. */
bool harness_valgrind(void);

#endif
