/*
 * The wifi plugin end to end: a real mosquitto, a real hearthd with the
 * wifi plugin, two miio-sim devices (a legacy plug and a MIoT purifier)
 * and a yeelight-sim bulb, all on 127.0.0.1 with discovery off. /set goes
 * through MQTT to the simulated device (checked in the simulator's own
 * state file) and back to hearth/<name>; changes made on the device show
 * up; the plug survives packet loss and damaged answers; devices that
 * vanish go offline and come back online after a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define PLUG_TOKEN "00112233445566778899aabbccddeeff"
#define PURIFIER_TOKEN "5a1c0ffee0ddba11c0ffee0ddba11c0f"
#define PLUG_DID "1001"
#define PURIFIER_DID "1002"
#define BULB_ID "0x00000000000abcde"
#define PLUG "kitchen/plug"
#define PURIFIER "living/purifier"
#define BULB "desk_bulb"
#define WAIT_MS 6000

struct sim {
	pid_t pid;
	int ctl; /* the simulator's stdin */
	char state[300];
	char *argv[16];
	char args[16][64];
	int argc;
};

struct env {
	char dir[64];
	struct broker broker;
	struct hearthd hub;
	struct client *c;
	struct sim plug, purifier, bulb;
	int plug_port, purifier_port, bulb_port, bulb_dport;
};

/* ---- helpers ------------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int free_port(int type)
{
	int fd = socket(AF_INET, type, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void sim_arg(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sim_arg(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->args[s->argc], sizeof(s->args[0]), fmt, ap);
	va_end(ap);
	s->argv[s->argc] = s->args[s->argc];
	s->argv[++s->argc] = NULL;
}

/* Start (or restart) a simulator with its arguments; returns once it has
 * bound its ports (its state file appears). */
static void sim_start(struct sim *s)
{
	int p[2];
	unlink(s->state);
	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(p[0], 0);
		dup2(null, 1);
		close(p[0]);
		close(p[1]);
		execv(s->argv[0], s->argv);
		_exit(127);
	}
	close(p[0]);
	s->ctl = p[1];
	fcntl(s->ctl, F_SETFD, FD_CLOEXEC);
	long long until = now_ms() + 3000;
	while (access(s->state, R_OK) != 0 && now_ms() < until)
		usleep(10000);
	if (access(s->state, R_OK) != 0)
		fail_msg("%s did not start", s->argv[0]);
}

static void sim_kill(struct sim *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
	}
	s->pid = 0;
	if (s->ctl >= 0)
		close(s->ctl);
	s->ctl = -1;
}

static void sim_ctl(struct sim *s, const char *line)
{
	size_t n = strlen(line);
	assert_int_equal(write(s->ctl, line, n), (ssize_t)n);
}

static cJSON *sim_state(struct sim *s)
{
	FILE *f = fopen(s->state, "r");
	char buf[1024];
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = '\0';
	return cJSON_Parse(buf);
}

/* Wait until the simulator's state file has key == want (a JSON text). */
static void sim_wait(struct sim *s, const char *key, const char *want)
{
	long long until = now_ms() + WAIT_MS;
	char *got = NULL;
	do {
		free(got);
		cJSON *st = sim_state(s);
		got = st ? cJSON_PrintUnformatted(cJSON_GetObjectItem(st, key)) : NULL;
		cJSON_Delete(st);
		if (got && strcmp(got, want) == 0) {
			free(got);
			return;
		}
		usleep(20000);
	} while (now_ms() < until);
	fail_msg("%s: %s is %s, expected %s", s->argv[0], key, got ? got : "(none)", want);
}

static double sim_number(struct sim *s, const char *key)
{
	cJSON *st = sim_state(s);
	cJSON *v = cJSON_GetObjectItem(st, key);
	assert_true(cJSON_IsNumber(v));
	double d = v->valuedouble;
	cJSON_Delete(st);
	return d;
}

static void set(struct env *e, const char *name, const char *json)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "hearth/%s/set", name);
	assert_int_equal(client_publish(e->c, topic, json, false), 0);
}

/* Wait for hearth/<name> to carry every fragment (e.g. "\"state\":\"ON\""). */
static void state_wait(struct env *e, const char *name, const char *a, const char *b)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "hearth/%s", name);
	long long until = now_ms() + WAIT_MS;
	while (now_ms() < until) {
		char *p = client_wait(e->c, topic, a, (int)(until - now_ms()));
		bool ok = p && (!b || strstr(p, b));
		free(p);
		if (ok)
			return;
	}
	fail_msg("%s never showed %s%s%s", topic, a, b ? " and " : "", b ? b : "");
}

static void avail_wait(struct env *e, const char *name, const char *state)
{
	char topic[128], want[64];
	snprintf(topic, sizeof(topic), "hearth/%s/availability", name);
	snprintf(want, sizeof(want), "\"%s\"", state);
	char *p = client_wait(e->c, topic, want, WAIT_MS + 4000);
	if (!p)
		fail_msg("%s never became %s", name, state);
	free(p);
}

static void retained_wait(struct env *e, const char *topic, const char *contains)
{
	long long until = now_ms() + WAIT_MS;
	while (now_ms() < until) {
		char *p = client_retained(e->broker.port, topic, 300);
		bool ok = p && strstr(p, contains);
		free(p);
		if (ok)
			return;
	}
	fail_msg("%s never held %s", topic, contains);
}

/* ---- set-up -------------------------------------------------------------- */

static void sims_prepare(struct env *e)
{
	char bin[PATH_MAX];
	snprintf(bin, sizeof(bin), "%s/tests/sim/miio-sim", harness_build_dir());
	struct sim *s = &e->plug;
	sim_arg(s, "%s", bin);
	sim_arg(s, "--port=%d", e->plug_port);
	sim_arg(s, "--token=%s", PLUG_TOKEN);
	sim_arg(s, "--did=%s", PLUG_DID);
	sim_arg(s, "--mode=plug");
	snprintf(s->state, sizeof(s->state), "%s/plug.json", e->dir);
	sim_arg(s, "--state-file=%s", s->state);

	s = &e->purifier;
	sim_arg(s, "%s", bin);
	sim_arg(s, "--port=%d", e->purifier_port);
	sim_arg(s, "--token=%s", PURIFIER_TOKEN);
	sim_arg(s, "--did=%s", PURIFIER_DID);
	sim_arg(s, "--mode=purifier");
	snprintf(s->state, sizeof(s->state), "%s/purifier.json", e->dir);
	sim_arg(s, "--state-file=%s", s->state);

	s = &e->bulb;
	snprintf(bin, sizeof(bin), "%s/tests/sim/yeelight-sim", harness_build_dir());
	sim_arg(s, "%s", bin);
	sim_arg(s, "--port=%d", e->bulb_port);
	sim_arg(s, "--discovery-port=%d", e->bulb_dport);
	sim_arg(s, "--id=%s", BULB_ID);
	sim_arg(s, "--name=%s", BULB);
	sim_arg(s, "--quota=600");
	snprintf(s->state, sizeof(s->state), "%s/bulb.json", e->dir);
	sim_arg(s, "--state-file=%s", s->state);
}

static void devices_file(struct env *e, char *path, size_t cap)
{
	snprintf(path, cap, "%s/devices.json", e->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	/* the purifier's model is learnt from miIO.info */
	fprintf(f,
		"[{\"host\":\"127.0.0.1\",\"port\":%d,\"token\":\"%s\",\"model\":\"chuangmi.plug.m1\","
		"\"name\":\"%s\"},\n {\"host\":\"127.0.0.1\",\"port\":%d,\"token\":\"%s\","
		"\"name\":\"%s\"}]\n",
		e->plug_port, PLUG_TOKEN, PLUG, e->purifier_port, PURIFIER_TOKEN, PURIFIER);
	fclose(f);
	assert_int_equal(chmod(path, 0600), 0);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char path[128], conf[1024];
	assert_non_null(e);
	e->plug.ctl = e->purifier.ctl = e->bulb.ctl = -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/hearth-wifi-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	e->plug_port = free_port(SOCK_DGRAM);
	e->purifier_port = free_port(SOCK_DGRAM);
	e->bulb_port = free_port(SOCK_STREAM);
	e->bulb_dport = free_port(SOCK_DGRAM);
	sims_prepare(e);
	sim_start(&e->plug);
	sim_start(&e->purifier);
	sim_start(&e->bulb);
	devices_file(e, path, sizeof(path));
	snprintf(conf, sizeof(conf),
		 "[plugin.wifi]\ndiscovery = false\nmiio_devices = %s\n"
		 "yeelight_devices = 127.0.0.1:%d\nyeelight_discovery_port = %d\n"
		 "poll_interval_s = 1\ntimeout_ms = 100\nretries = 4\nbackoff_max_s = 1\n"
		 "yeelight_quota = 600\n",
		 path, e->bulb_port, e->bulb_dport);
	assert_int_equal(broker_start(&e->broker), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	client_subscribe(e->c, "hearth/#");
	assert_int_equal(hearthd_start_plugins(&e->hub, e->broker.port, "wifi", conf), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	client_free(e->c);
	hearthd_cleanup(&e->hub);
	broker_stop(&e->broker);
	sim_kill(&e->plug);
	sim_kill(&e->purifier);
	sim_kill(&e->bulb);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", e->dir);
	free(e);
	return 0;
}

/* ---- the tests ----------------------------------------------------------- */

static cJSON *device_with_id(cJSON *devices, const char *id)
{
	cJSON *d;
	cJSON_ArrayForEach(d, devices)
	{
		cJSON *v = cJSON_GetObjectItem(d, "id");
		if (cJSON_IsString(v) && strcmp(v->valuestring, id) == 0)
			return d;
	}
	return NULL;
}

static void check_device(cJSON *devices, const char *id, const char *name, const char *model)
{
	cJSON *d = device_with_id(devices, id);
	if (!d)
		fail_msg("device %s is not listed", id);
	assert_string_equal(cJSON_GetObjectItem(d, "name")->valuestring, name);
	assert_string_equal(cJSON_GetObjectItem(d, "plugin")->valuestring, "wifi");
	assert_string_equal(cJSON_GetObjectItem(d, "model")->valuestring, model);
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(d, "capabilities")) >= 2);
}

static void test_devices_appear(void **state)
{
	struct env *e = *state;
	/* all three answer and are polled: their state is retained */
	state_wait(e, PLUG, "\"temperature\":24.5", "\"state\":\"OFF\"");
	state_wait(e, PURIFIER, "\"pm25\":12", "\"mode\":\"auto\"");
	state_wait(e, BULB, "\"brightness\":127", "\"color_temp\":250");
	long long until = now_ms() + WAIT_MS;
	cJSON *devices = NULL;
	while (!devices && now_ms() < until) {
		char *p = client_retained(e->broker.port, "hearth/bridge/devices", 500);
		cJSON *d = p ? cJSON_Parse(p) : NULL;
		free(p);
		if (cJSON_GetArraySize(d) == 3)
			devices = d;
		else
			cJSON_Delete(d);
	}
	assert_non_null(devices);
	check_device(devices, "wifi:miio:" PLUG_DID, PLUG, "chuangmi.plug.m1");
	check_device(devices, "wifi:miio:" PURIFIER_DID, PURIFIER, "zhimi.airpurifier.mb3");
	check_device(devices, "wifi:yeelight:" BULB_ID, BULB, "color");
	cJSON_Delete(devices);
	char *a = client_retained(e->broker.port, "hearth/" PLUG "/availability", 500);
	assert_non_null(a);
	assert_string_equal(a, "{\"state\":\"online\"}");
	free(a);
}

static void test_plug_set_and_device_change(void **state)
{
	struct env *e = *state;
	client_clear(e->c);
	set(e, PLUG, "{\"state\":\"ON\"}");
	state_wait(e, PLUG, "\"state\":\"ON\"", NULL);
	sim_wait(&e->plug, "power", "\"on\"");
	/* pressed on the device: the next poll reports it */
	client_clear(e->c);
	sim_ctl(&e->plug, "set power off\n");
	state_wait(e, PLUG, "\"state\":\"OFF\"", NULL);
	client_clear(e->c);
	set(e, PLUG, "{\"state\":\"TOGGLE\"}");
	state_wait(e, PLUG, "\"state\":\"ON\"", NULL);
	sim_wait(&e->plug, "power", "\"on\"");
}

static void test_purifier_set(void **state)
{
	struct env *e = *state;
	client_clear(e->c);
	set(e, PURIFIER, "{\"state\":\"ON\",\"mode\":\"favorite\",\"favorite_level\":9,"
			 "\"child_lock\":\"LOCK\"}");
	state_wait(e, PURIFIER, "\"mode\":\"favorite\"", "\"child_lock\":\"LOCK\"");
	sim_wait(&e->purifier, "power", "true");
	sim_wait(&e->purifier, "mode", "2");
	sim_wait(&e->purifier, "favorite_level", "9");
	sim_wait(&e->purifier, "child_lock", "true");
}

static void test_bulb_set_and_push(void **state)
{
	struct env *e = *state;
	client_clear(e->c);
	set(e, BULB, "{\"state\":\"ON\",\"brightness\":120,\"color_temp\":300}");
	state_wait(e, BULB, "\"brightness\":120", "\"color_temp\":300");
	sim_wait(&e->bulb, "power", "\"on\"");
	sim_wait(&e->bulb, "bright", "47");
	sim_wait(&e->bulb, "ct", "3333");
	client_clear(e->c);
	set(e, BULB, "{\"color\":{\"hue\":120,\"saturation\":100}}");
	state_wait(e, BULB, "\"color_mode\":\"hs\"", "\"hue\":120");
	sim_wait(&e->bulb, "hue", "120");
	/* changed from the bulb's side: pushed at once */
	client_clear(e->c);
	sim_ctl(&e->bulb, "set bright 10\n");
	state_wait(e, BULB, "\"brightness\":25", NULL);
	/* a command the bulb refuses comes back as an error */
	client_clear(e->c);
	set(e, BULB, "{\"state\":\"OFF\"}");
	state_wait(e, BULB, "\"state\":\"OFF\"", NULL);
	set(e, BULB, "{\"brightness\":200}");
	char *p = client_wait(e->c, "hearth/bridge/response/device/set", "bulb is off", WAIT_MS);
	assert_non_null(p);
	free(p);
	assert_int_equal(sim_number(&e->bulb, "quota_errors"), 0);
}

static void test_plug_survives_loss_and_garbage(void **state)
{
	struct env *e = *state;
	double dropped = sim_number(&e->plug, "dropped");
	/* every command a change, so every one is a request; the simulator drops
	 * one request in three and damages one answer in four: commands go on
	 * until one was lost for certain (bounded), each served all the same */
	cJSON *st = sim_state(&e->plug);
	const cJSON *power = cJSON_GetObjectItem(st, "power");
	bool on = cJSON_IsString(power) && strcmp(power->valuestring, "on") == 0;
	cJSON_Delete(st);
	sim_ctl(&e->plug, "drop 33\n");
	sim_ctl(&e->plug, "garbage 25\n");
	client_clear(e->c);
	int steps = 0;
	while (steps < 4 || (sim_number(&e->plug, "dropped") <= dropped && steps < 12)) {
		on = !on;
		steps++;
		const char *word = on ? "ON" : "OFF";
		char json[64], frag[64], want[16];
		snprintf(json, sizeof(json), "{\"state\":\"%s\"}", word);
		snprintf(frag, sizeof(frag), "\"state\":\"%s\"", word);
		snprintf(want, sizeof(want), "\"%s\"", on ? "on" : "off");
		set(e, PLUG, json);
		state_wait(e, PLUG, frag, NULL);
		sim_wait(&e->plug, "power", want);
	}
	assert_true(sim_number(&e->plug, "dropped") > dropped);
	/* answers slower than the first wait: the late answer still counts */
	sim_ctl(&e->plug, "drop 0\n");
	sim_ctl(&e->plug, "garbage 0\n");
	sim_ctl(&e->plug, "delay 150\n");
	set(e, PLUG, on ? "{\"state\":\"OFF\"}" : "{\"state\":\"ON\"}");
	state_wait(e, PLUG, on ? "\"state\":\"OFF\"" : "\"state\":\"ON\"", NULL);
	sim_wait(&e->plug, "power", on ? "\"off\"" : "\"on\"");
	sim_ctl(&e->plug, "delay 0\n");
	client_pump(e->c, 1500); /* a few polls through the loss too */
	assert_int_equal(client_count(e->c, "hearth/" PLUG "/availability"), 0);
	char *resp = client_wait(e->c, "hearth/bridge/response/device/set", NULL, 10);
	if (resp)
		fail_msg("a command failed through the loss: %s", resp);
}

static void test_plug_vanishes_and_returns(void **state)
{
	struct env *e = *state;
	client_clear(e->c);
	sim_kill(&e->plug);
	avail_wait(e, PLUG, "offline");
	/* a restarted device has a new stamp: the plugin must say hello again */
	sim_start(&e->plug);
	avail_wait(e, PLUG, "online");
	client_clear(e->c);
	set(e, PLUG, "{\"state\":\"ON\"}");
	state_wait(e, PLUG, "\"state\":\"ON\"", NULL);
	sim_wait(&e->plug, "power", "\"on\"");
}

static void test_plug_quick_restart(void **state)
{
	struct env *e = *state;
	/* the plug is on; killed and back (off, with a new stamp) before the
	 * plugin notices: its session is stale, and it must find out */
	client_clear(e->c);
	sim_kill(&e->plug);
	sim_start(&e->plug);
	state_wait(e, PLUG, "\"state\":\"OFF\"", NULL);
	retained_wait(e, "hearth/" PLUG "/availability", "online");
	client_clear(e->c);
	set(e, PLUG, "{\"state\":\"ON\"}");
	state_wait(e, PLUG, "\"state\":\"ON\"", NULL);
	sim_wait(&e->plug, "power", "\"on\"");
	assert_true(sim_number(&e->plug, "bad_stamps") >= 1);
}

static void test_bulb_vanishes_and_returns(void **state)
{
	struct env *e = *state;
	client_clear(e->c);
	sim_kill(&e->bulb);
	avail_wait(e, BULB, "offline");
	sim_start(&e->bulb);
	avail_wait(e, BULB, "online");
	client_clear(e->c);
	set(e, BULB, "{\"state\":\"ON\",\"brightness\":254}");
	state_wait(e, BULB, "\"brightness\":254", "\"state\":\"ON\"");
	sim_wait(&e->bulb, "bright", "100");
}

static void test_tokens_never_logged(void **state)
{
	struct env *e = *state;
	static const char *const tokens[] = {PLUG_TOKEN, PURIFIER_TOKEN, "00112233", "5a1c0ffee"};
	assert_true(hearthd_log_contains(&e->hub, "wifi:"));
	for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++)
		assert_false(hearthd_log_contains(&e->hub, tokens[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devices_appear),
		cmocka_unit_test(test_plug_set_and_device_change),
		cmocka_unit_test(test_purifier_set),
		cmocka_unit_test(test_bulb_set_and_push),
		cmocka_unit_test(test_plug_survives_loss_and_garbage),
		cmocka_unit_test(test_plug_vanishes_and_returns),
		cmocka_unit_test(test_plug_quick_restart),
		cmocka_unit_test(test_bulb_vanishes_and_returns),
		cmocka_unit_test(test_tokens_never_logged),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
