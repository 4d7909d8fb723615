/*
 * Hostile input: floods of oversized payloads, JSON nested 2,000 deep,
 * objects with 20,000 keys, invalid UTF-8, NUL bytes and wildcards in names,
 * at thousands of messages a second. hearthd must not crash, its memory must
 * stay flat, its log must stay rate-limited, and a legitimate command sent in
 * the middle of the flood must still be served.
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

#include "harness.h"

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

static long lines_in(const char *path)
{
	FILE *f = fopen(path, "r");
	long n = 0;
	int ch;
	while (f && (ch = fgetc(f)) != EOF)
		n += ch == '\n';
	if (f)
		fclose(f);
	return n;
}

static char *deep(int depth)
{
	char *s = malloc((size_t)depth * 2 + 16);
	size_t n = 0;
	n += (size_t)sprintf(s, "{\"state\":");
	for (int i = 0; i < depth; i++)
		s[n++] = '[';
	for (int i = 0; i < depth; i++)
		s[n++] = ']';
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

static char *wide(int keys)
{
	char *s = malloc((size_t)keys * 16 + 8);
	size_t n = 0;
	s[n++] = '{';
	for (int i = 0; i < keys; i++)
		n += (size_t)sprintf(s + n, "%s\"k%d\":1", i ? "," : "", i);
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

/* One burst of every kind of bad input, published as fast as the client
 * goes (QoS 0: a flood does not wait for acknowledgements). */
static void burst(struct mosquitto *m, int rounds)
{
	static char big[1024 * 1024];
	memset(big, 'x', sizeof(big));
	big[0] = '{';
	char *d = deep(2000), *w = wide(20000);
	static const char bad_utf8[] = "{\"state\":\"\xff\xfe\xc0\x80\"}";
	static const char with_nul[] = "{\"state\":\"O\0N\"}";
	for (int i = 0; i < rounds; i++) {
		mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", (int)strlen(d), d, 0, false);
		mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", (int)strlen(w), w, 0, false);
		mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", sizeof(bad_utf8) - 1, bad_utf8,
				  0, false);
		mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", sizeof(with_nul) - 1, with_nul,
				  0, false);
		mosquitto_publish(m, NULL, "hearth/no\xffsuch/set", 2, "{}", 0, false);
		mosquitto_publish(m, NULL, "hearth/bridge/request/device/rename", 30,
				  "{\"from\":\"virtual/light-1\",\"to\":\"a/#\"}", 0, false);
		mosquitto_publish(m, NULL, "hearth/bridge/request/device/rename", 36,
				  "{\"from\":\"virtual/light-1\",\"to\":\"x+y\"}", 0, false);
		for (int k = 0; k < 20; k++)
			mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", 7, "garbage", 0, false);
		if (i % 10 == 0)
			mosquitto_publish(m, NULL, "hearth/virtual/light-1/set", sizeof(big), big, 0,
					  false);
		mosquitto_loop(m, 0, 1);
	}
	for (int i = 0; i < 200; i++)
		mosquitto_loop(m, 5, 1);
	free(d);
	free(w);
}

static void test_flood(void **state)
{
	(void)state;
	struct broker broker;
	struct hearthd hub;
	assert_int_equal(broker_start(&broker), 0);
	assert_int_equal(hearthd_start(&hub, broker.port, "[plugin.virtual]\ninterval_ms = 0\n"), 0);
	struct mosquitto *m = mosquitto_new(NULL, true, NULL);
	assert_non_null(m);
	assert_int_equal(mosquitto_connect(m, "127.0.0.1", broker.port, 30), MOSQ_ERR_SUCCESS);

	burst(m, 100); /* warm up: allocator arenas, caches, the broker's buffers */
	sleep(1);
	long before = rss_kib(hub.pid);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	burst(m, 200); /* ~5,400 hostile messages, 20 of them 1 MiB */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

	/* a legitimate command right behind the flood is still served */
	struct client *c = client_new(broker.port);
	assert_non_null(c);
	client_subscribe(c, "hearth/virtual/light-1");
	client_publish(c, "hearth/virtual/light-1/set", "{\"brightness\":123,\"transition\":0}", false);
	char *p = client_wait(c, "hearth/virtual/light-1", "\"brightness\":123", 10000);
	assert_non_null(p);
	free(p);
	sleep(1);
	long after = rss_kib(hub.pid);
	long log_lines = lines_in(hub.log);
	fprintf(stderr,
		"hostile: %.0f msgs/s sent for %.1f s; hearthd RSS %ld -> %ld KiB; %ld log lines\n",
		200 * 27 / secs, secs, before, after, log_lines);
	assert_int_equal(waitpid(hub.pid, NULL, WNOHANG), 0);
#if defined(__SANITIZE_ADDRESS__)
	/* make asan: freed blocks wait in ASan's quarantine (256 MiB), so the
	 * resident size says nothing here; the release build checks it */
	(void)before;
#else
	/* under valgrind memcheck holds freed blocks back the same way; it
	 * checks the leaks itself */
	if (!harness_valgrind())
		assert_true(after - before < 2048); /* flat: under 2 MiB of drift */
#endif
	/* rate-limited: at most ~10 bad-input lines a second (+ start-up lines) */
	assert_true(log_lines < 200 + 12 * (long)(secs + 12));
	assert_true(hearthd_log_contains(&hub, "more bad messages not logged"));
	/* nothing changed: the light kept its name, no device was renamed */
	char *devices = client_retained(broker.port, "hearth/bridge/devices", 1000);
	assert_non_null(devices);
	assert_non_null(strstr(devices, "\"virtual/light-1\""));
	free(devices);
	client_free(c);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	assert_int_equal(hearthd_cleanup(&hub), 0);
	broker_stop(&broker);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flood),
	};
	return cmocka_run_group_tests_name("integration: hostile input", tests, NULL, NULL);
}
