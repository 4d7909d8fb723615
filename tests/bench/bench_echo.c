/*
 * hearth-bench echo: the trivial engine that sets the ceiling. For every
 * bench/sensor/<i>/state whose payload says "motion":true it publishes
 * {"state":"ON","seq":N} on bench/light/<i>/set, echoing the sensor's seq.
 * No parsing beyond that, no state, no disk: what any engine behind the
 * same broker could do at best. Stops on SIGTERM or SIGINT.
 */
#include "bench.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define SENSOR_PREFIX "bench/sensor/"
#define SENSOR_SUFFIX "/state"

static volatile sig_atomic_t stop;

struct echo {
	struct mosquitto *mosq;
	int qos;
	uint64_t echoed;
};

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static bool sensor_index(const char *topic, long *out)
{
	size_t pl = strlen(SENSOR_PREFIX), sl = strlen(SENSOR_SUFFIX), tl = strlen(topic);
	if (tl <= pl + sl || strncmp(topic, SENSOR_PREFIX, pl) != 0 ||
	    strcmp(topic + tl - sl, SENSOR_SUFFIX) != 0)
		return false;
	char *end;
	long i = strtol(topic + pl, &end, 10);
	if (end != topic + tl - sl || i < 0)
		return false;
	*out = i;
	return true;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
	struct echo *e = obj;
	char buf[256];
	long i;
	if (!sensor_index(msg->topic, &i) || msg->payloadlen <= 0 ||
	    msg->payloadlen >= (int)sizeof(buf))
		return;
	memcpy(buf, msg->payload, (size_t)msg->payloadlen);
	buf[msg->payloadlen] = '\0';
	if (!strstr(buf, "\"motion\":true"))
		return;
	const char *seq = strstr(buf, "\"seq\":");
	unsigned long long n = seq ? strtoull(seq + 6, NULL, 10) : 0;
	char topic[64], payload[64];
	snprintf(topic, sizeof(topic), "bench/light/%ld/set", i);
	int len = snprintf(payload, sizeof(payload), "{\"state\":\"ON\",\"seq\":%llu}", n);
	if (mosquitto_publish(mosq, NULL, topic, len, payload, e->qos, false) == MOSQ_ERR_SUCCESS)
		e->echoed++;
}

int bench_echo_main(int argc, char **argv)
{
	long port = 0, qos = 0;
	int opt;
	optind = 1;
	while ((opt = getopt(argc, argv, "p:q:")) != -1) {
		if ((opt == 'p' && bench_parse_long(optarg, 1, 65535, &port)) ||
		    (opt == 'q' && bench_parse_long(optarg, 0, 1, &qos)))
			continue;
		fprintf(stderr, "usage: hearth-bench echo -p PORT [-q 0|1]\n");
		return 2;
	}
	if (!port) {
		fprintf(stderr, "usage: hearth-bench echo -p PORT [-q 0|1]\n");
		return 2;
	}
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	struct echo e = {.qos = (int)qos};
	char id[64];
	snprintf(id, sizeof(id), "bench-echo-%d", (int)getpid());
	e.mosq = bench_client((int)port, id, &e);
	if (!e.mosq)
		return 1;
	mosquitto_message_callback_set(e.mosq, on_message);
	mosquitto_subscribe(e.mosq, NULL, SENSOR_PREFIX "+" SENSOR_SUFFIX, (int)qos);
	int rc = 0;
	while (!stop) {
		if (bench_pump(&e.mosq, 1, 1000000000LL)) {
			fprintf(stderr, "hearth-bench echo: lost the broker\n");
			rc = 1;
			break;
		}
	}
	fprintf(stderr, "hearth-bench echo: %" PRIu64 " actions\n", e.echoed);
	bench_client_free(e.mosq);
	return rc;
}
