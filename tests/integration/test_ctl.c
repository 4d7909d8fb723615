/*
 * hearthctl end to end: the built $B/hearthctl run as a child process against
 * a real mosquitto and a real hearthd with the virtual plugin. Each run is
 * bounded in time; its stdout, stderr and exit status are checked, and what
 * it changed is checked again over MQTT.
 *
 * The tests share one hub and run in order: later ones rely on what earlier
 * ones renamed, removed or added, and the last one stops the hub.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define RUN_TIMEOUT_MS 10000
#define OUT_MAX (256 * 1024)
#define POLL_UNTIL_MS 3000

struct env {
	struct broker broker;
	struct hearthd hub;
	struct client *c;
	char dir[256]; /* rules dir and rule files */
	char bin[512];
};

struct out {
	int status; /* exit status, or -1 when it had to be killed */
	long elapsed_ms;
	char out[OUT_MAX];
	size_t out_len;
	char err[OUT_MAX];
	size_t err_len;
};

static struct env *env_of(void **state)
{
	return *state;
}

static long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char extra[1024];

	assert_non_null(e);
	*state = e; /* the teardown cleans up whatever was started */
	snprintf(e->dir, sizeof(e->dir), "/tmp/hearth-ctl-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->bin, sizeof(e->bin), "%s/hearthctl", harness_build_dir());
	if (access(e->bin, X_OK) != 0)
		fail_msg("%s is missing: build it first (make B=%s all)", e->bin, harness_build_dir());
	/* quiet virtual devices: only the test moves them */
	snprintf(extra, sizeof(extra), "[rules]\ndir = %s\n[plugin.virtual]\ninterval_ms = 0\n",
		 e->dir);
	assert_int_equal(broker_start(&e->broker), 0);
	assert_int_equal(hearthd_start(&e->hub, e->broker.port, extra), 0);
	e->c = client_new(e->broker.port);
	assert_non_null(e->c);
	return 0;
}

static int group_teardown(void **state)
{
	struct env *e = *state;
	char cmd[300];
	int status;

	if (!e)
		return 0;
	client_free(e->c);
	status = hearthd_cleanup(&e->hub);
	broker_stop(&e->broker);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
	free(e);
	assert_int_equal(status, 0);
	return 0;
}

/* ---- running hearthctl --------------------------------------------------- */

static void child(const struct env *e, int port, const char *const *args, int out_fd, int err_fd)
{
	const char *argv[64];
	char port_text[16];
	int n = 0;

	snprintf(port_text, sizeof(port_text), "%d", port);
	argv[n++] = e->bin;
	argv[n++] = "-H";
	argv[n++] = "127.0.0.1";
	argv[n++] = "-p";
	argv[n++] = port_text;
	while (*args && n < 63)
		argv[n++] = *args++;
	argv[n] = NULL;
	dup2(out_fd, STDOUT_FILENO);
	dup2(err_fd, STDERR_FILENO);
	unsetenv("HEARTH_HOST");
	unsetenv("HEARTH_PORT");
	unsetenv("HEARTH_BASE");
	execv(e->bin, (char *const *)argv);
	_exit(127);
}

/* Read what is there; returns 0 at end of file. */
static int drain(int fd, char *buf, size_t *len)
{
	char scratch[4096];
	ssize_t n;

	if (*len + 1 < OUT_MAX)
		n = read(fd, buf + *len, OUT_MAX - 1 - *len);
	else
		n = read(fd, scratch, sizeof(scratch)); /* past the cap: dropped */
	if (n > 0 && *len + 1 < OUT_MAX)
		*len += (size_t)n;
	buf[*len] = '\0';
	return n > 0 || (n < 0 && errno == EINTR) ? 1 : 0;
}

/* Collect both pipes until they close or the deadline passes. */
static void collect(struct out *o, int out_fd, int err_fd, long deadline)
{
	struct pollfd p[2] = { { .fd = out_fd, .events = POLLIN }, { .fd = err_fd, .events = POLLIN } };
	int open_fds = 2;

	while (open_fds > 0 && mono_ms() < deadline) {
		if (poll(p, 2, (int)(deadline - mono_ms())) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!drain(p[i].fd, i ? o->err : o->out, i ? &o->err_len : &o->out_len)) {
				p[i].fd = -1;
				open_fds--;
			}
		}
	}
}

/* Run hearthctl -H 127.0.0.1 -p port args...; every run is bounded. */
static void run_port(const struct env *e, int port, struct out *o, const char *const *args)
{
	int out_pipe[2], err_pipe[2], st;
	long start = mono_ms(), deadline = start + RUN_TIMEOUT_MS;
	pid_t pid;

	memset(o, 0, sizeof(*o));
	assert_int_equal(pipe2(out_pipe, O_CLOEXEC), 0);
	assert_int_equal(pipe2(err_pipe, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child(e, port, args, out_pipe[1], err_pipe[1]);
	close(out_pipe[1]);
	close(err_pipe[1]);
	collect(o, out_pipe[0], err_pipe[0], deadline);
	close(out_pipe[0]);
	close(err_pipe[0]);
	o->status = -1;
	while (mono_ms() < deadline) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			o->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			break;
		}
		usleep(5000);
	}
	if (o->status < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	o->elapsed_ms = mono_ms() - start;
}

static void run(const struct env *e, struct out *o, const char *const *args)
{
	run_port(e, e->broker.port, o, args);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define CTL(e, o, ...) run(e, o, ARGS(__VA_ARGS__))

/* Fail with everything hearthctl printed when its status is not want. */
static void expect_status(const struct out *o, int want)
{
	if (o->status != want)
		fail_msg("hearthctl exited %d, not %d\nstdout:\n%s\nstderr:\n%s", o->status, want,
			 o->out, o->err);
}

static void expect_out(const struct out *o, const char *text)
{
	if (!strstr(o->out, text))
		fail_msg("stdout lacks '%s':\n%s\nstderr:\n%s", text, o->out, o->err);
}

static void expect_err(const struct out *o, const char *text)
{
	if (!strstr(o->err, text))
		fail_msg("stderr lacks '%s':\n%s", text, o->err);
}

/* Run until stdout shows text: the retained lists follow a change a moment
 * later (the hub batches their publication). */
static void run_until(const struct env *e, struct out *o, const char *const *args,
		      const char *text)
{
	long until = mono_ms() + POLL_UNTIL_MS;

	do {
		run(e, o, args);
		if (o->status == 0 && strstr(o->out, text))
			return;
		usleep(50000);
	} while (mono_ms() < until);
	fail_msg("no '%s' within %d ms; last stdout:\n%s\nstderr:\n%s", text, POLL_UNTIL_MS, o->out,
		 o->err);
}

static int count_lines_starting(const char *text, const char *prefix)
{
	size_t len = strlen(prefix);
	int n = 0;

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += !strncmp(p, prefix, len);
	return n;
}

static void write_file(const struct env *e, const char *name, const char *text, char *path,
		       size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", e->dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static struct out *new_out(void)
{
	struct out *o = calloc(1, sizeof(*o));

	assert_non_null(o);
	return o;
}

/* ---- devices ------------------------------------------------------------- */

static void test_devices(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	cJSON *list;

	CTL(e, o, "devices");
	expect_status(o, 0);
	assert_int_equal(strncmp(o->out, "NAME", 4), 0);
	assert_int_equal(count_lines_starting(o->out, "virtual/"), 7);
	expect_out(o, "virtual/light-1");
	expect_out(o, "virtual/motion-1");

	CTL(e, o, "devices", "--json");
	expect_status(o, 0);
	list = cJSON_Parse(o->out);
	assert_true(cJSON_IsArray(list));
	assert_int_equal(cJSON_GetArraySize(list), 7);
	cJSON_Delete(list);
	free(o);
}

static void test_show(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	CTL(e, o, "show", "virtual/light-1");
	expect_status(o, 0);
	expect_out(o, "virtual:light-1");
	expect_out(o, "brightness");
	expect_out(o, "0..254");

	CTL(e, o, "show", "virtual/nope");
	expect_status(o, 1);
	expect_err(o, "error: no device named 'virtual/nope'");
	free(o);
}

static void test_set(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	char *retained, want[512];
	cJSON *resp;

	CTL(e, o, "set", "virtual/light-1", "state=ON", "brightness=99");
	expect_status(o, 0);
	expect_out(o, "brightness: 99");
	retained = client_retained(e->broker.port, "hearth/virtual/light-1", 2000);
	assert_non_null(retained);
	if (!strstr(retained, "\"brightness\":99"))
		fail_msg("retained state: %s", retained);
	free(retained);

	/* The refusal is printed exactly as the hub published it. */
	client_subscribe(e->c, "hearth/bridge/response/device/set");
	client_clear(e->c);
	CTL(e, o, "set", "virtual/light-1", "brightness=999");
	expect_status(o, 1);
	resp = client_wait_json(e->c, "hearth/bridge/response/device/set", "999", 2000);
	assert_non_null(resp);
	snprintf(want, sizeof(want), "error: %s\n",
		 cJSON_GetObjectItem(resp, "error")->valuestring);
	cJSON_Delete(resp);
	assert_string_equal(o->err, want);
	expect_err(o, "maximum 254");
	assert_int_equal(o->out_len, 0);

	CTL(e, o, "-t", "3", "set", "virtual/nope", "state=ON");
	expect_status(o, 1);
	assert_string_equal(o->err, "error: no device is named 'virtual/nope'\n");
	free(o);
}

static void test_get(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	CTL(e, o, "get", "virtual/light-1");
	expect_status(o, 0);
	expect_out(o, "state: ON");

	CTL(e, o, "get", "virtual/light-1", "brightness", "--json");
	expect_status(o, 0);
	assert_string_equal(o->out, "{\"brightness\":99}\n");
	free(o);
}

static void test_rename_remove(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	CTL(e, o, "rename", "virtual/climate-1", "hall/lamp");
	expect_status(o, 0);
	assert_string_equal(o->out, "renamed virtual/climate-1 to hall/lamp\n");
	run_until(e, o, ARGS("show", "hall/lamp"), "virtual:climate-1");

	CTL(e, o, "remove", "hall/lamp");
	expect_status(o, 0);
	assert_string_equal(o->out, "removed hall/lamp\n");
	run_until(e, o, ARGS("devices"), "virtual/plug-1");
	assert_null(strstr(o->out, "hall/lamp"));

	CTL(e, o, "remove", "hall/lamp");
	expect_status(o, 1);
	expect_err(o, "error: no device is named 'hall/lamp'");
	free(o);
}

static void test_permit_join_and_health(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	CTL(e, o, "permit-join", "10");
	expect_status(o, 0);
	assert_string_equal(o->out, "devices may join for 10 s\n");

	CTL(e, o, "health");
	expect_status(o, 0);
	expect_out(o, "healthy: true");

	CTL(e, o, "health", "--json");
	expect_status(o, 0);
	cJSON *h = cJSON_Parse(o->out);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(h, "healthy")));
	cJSON_Delete(h);
	free(o);
}

/* ---- rules --------------------------------------------------------------- */

static const char motion_rule[] =
	"{\"id\":\"ctl-motion\",\"name\":\"Light on motion\",\n"
	" \"triggers\":[{\"type\":\"state\",\"device\":\"virtual/motion-1\","
	"\"attribute\":\"occupancy\",\"to\":true}],\n"
	" \"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
	"\"state\":{\"state\":\"ON\",\"brightness\":150}}]}\n";

/* The "enabled" of rule id in `rules --json`, or -1 when it is not listed. */
static int rule_enabled(const struct out *o, const char *id)
{
	cJSON *list = cJSON_Parse(o->out), *r;
	int enabled = -1;

	cJSON_ArrayForEach(r, list)
	{
		cJSON *rid = cJSON_GetObjectItem(r, "id");

		if (cJSON_IsString(rid) && !strcmp(rid->valuestring, id))
			enabled = cJSON_IsTrue(cJSON_GetObjectItem(r, "enabled"));
	}
	cJSON_Delete(list);
	return enabled;
}

static void wait_enabled(const struct env *e, struct out *o, const char *id, int want)
{
	long until = mono_ms() + POLL_UNTIL_MS;

	do {
		CTL(e, o, "rules", "--json");
		expect_status(o, 0);
		if (rule_enabled(o, id) == want)
			return;
		usleep(50000);
	} while (mono_ms() < until);
	fail_msg("rule %s never became enabled=%d:\n%s", id, want, o->out);
}

static void test_rules_add_list_toggle(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	char path[400];

	write_file(e, "motion.rule", motion_rule, path, sizeof(path));
	CTL(e, o, "rules", "add", path);
	expect_status(o, 0);
	assert_string_equal(o->out, "added rule ctl-motion\n");

	/* Again: hearth refuses, and the hint names the command that works. */
	CTL(e, o, "rules", "add", path);
	expect_status(o, 1);
	expect_err(o, "error: a rule with the id 'ctl-motion' exists");
	expect_err(o, "hearthctl rules update ");
	CTL(e, o, "rules", "update", path);
	expect_status(o, 0);
	assert_string_equal(o->out, "updated rule ctl-motion\n");

	run_until(e, o, ARGS("rules"), "ctl-motion");
	assert_int_equal(strncmp(o->out, "ID", 2), 0);
	expect_out(o, "Light on motion");
	expect_out(o, "api");

	CTL(e, o, "rules", "disable", "ctl-motion");
	expect_status(o, 0);
	assert_string_equal(o->out, "disabled rule ctl-motion\n");
	wait_enabled(e, o, "ctl-motion", 0);
	CTL(e, o, "rules", "enable", "ctl-motion");
	expect_status(o, 0);
	assert_string_equal(o->out, "enabled rule ctl-motion\n");
	wait_enabled(e, o, "ctl-motion", 1);
	free(o);
}

static void test_rules_bad_input(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	char path[400];

	/* hearth names the rule and the JSON path; printed as it says it */
	write_file(e, "bad.rule",
		   "[{\"id\":\"too-bright\",\"triggers\":[{\"type\":\"start\"}],"
		   "\"actions\":[{\"type\":\"set\",\"device\":\"virtual/light-1\","
		   "\"state\":{\"brightness\":300}}]}]",
		   path, sizeof(path));
	CTL(e, o, "rules", "add", path);
	expect_status(o, 1);
	expect_err(o, "error: rule 'too-bright': actions[0].state.brightness: 300 is above the "
		      "maximum 254");

	write_file(e, "broken.rule", "{\"id\":\"x\",\n \"triggers\": [}\n", path, sizeof(path));
	CTL(e, o, "rules", "add", path);
	expect_status(o, 1);
	expect_err(o, "not valid JSON (line 2");

	CTL(e, o, "rules", "add", "/nonexistent/rule.json");
	expect_status(o, 1);
	expect_err(o, "No such file");

	CTL(e, o, "rules", "trigger", "nope");
	expect_status(o, 1);
	expect_err(o, "error: no rule has the id 'nope'");

	CTL(e, o, "rules", "enable", "bad id!");
	expect_status(o, 2);
	CTL(e, o, "rules", "frobnicate");
	expect_status(o, 2);
	expect_err(o, "unknown rules command 'frobnicate'");
	free(o);
}

static void test_rules_trigger_explain(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	cJSON *data, *s;

	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	CTL(e, o, "rules", "trigger", "ctl-motion");
	expect_status(o, 0);
	assert_string_equal(o->out, "triggered rule ctl-motion\n");
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":150", 3000);
	assert_non_null(s);
	cJSON_Delete(s);

	CTL(e, o, "rules", "trigger", "ctl-motion", "--conditions");
	expect_status(o, 0);

	CTL(e, o, "rules", "explain", "ctl-motion");
	expect_status(o, 0);
	expect_out(o, "trigger 'manual'");
	expect_out(o, "Outcome: ok.");
	assert_null(strstr(o->out, "OUTCOME"));

	CTL(e, o, "rules", "explain", "ctl-motion", "-v");
	expect_status(o, 0);
	expect_out(o, "Outcome: ok.");
	expect_out(o, "TIME");
	assert_true(count_lines_starting(strstr(o->out, "TIME"), "20") >= 2);

	CTL(e, o, "rules", "explain", "ctl-motion", "--json");
	expect_status(o, 0);
	data = cJSON_Parse(o->out);
	assert_true(cJSON_IsString(cJSON_GetObjectItem(data, "explanation")));
	assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(data, "traces")) >= 2);
	cJSON_Delete(data);

	run_until(e, o, ARGS("rules"), "ctl-motion");
	free(o);
}

/* ---- scenes -------------------------------------------------------------- */

static void test_scenes_capture_activate(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	cJSON *s;

	CTL(e, o, "set", "virtual/light-1", "state=ON", "brightness=60", "transition=0");
	expect_status(o, 0);
	CTL(e, o, "scenes", "capture", "ctl-scene", "virtual/light-1", "virtual/plug-1", "--name",
	    "Reading");
	expect_status(o, 0);
	assert_string_equal(o->out, "captured scene ctl-scene (2 devices)\n");
	run_until(e, o, ARGS("scenes"), "ctl-scene");
	expect_out(o, "Reading");

	CTL(e, o, "set", "virtual/light-1", "brightness=200", "transition=0");
	expect_status(o, 0);
	client_subscribe(e->c, "hearth/virtual/light-1");
	client_clear(e->c);
	CTL(e, o, "activate", "ctl-scene");
	expect_status(o, 0);
	expect_out(o, "DEVICE");
	expect_out(o, "virtual/light-1");
	assert_int_equal(count_lines_starting(o->out, "virtual/"), 2);
	s = client_wait_json(e->c, "hearth/virtual/light-1", "\"brightness\":60", 3000);
	assert_non_null(s);
	cJSON_Delete(s);

	CTL(e, o, "activate", "nope");
	expect_status(o, 1);
	expect_err(o, "error: no scene has the id 'nope'");

	CTL(e, o, "scenes", "remove", "ctl-scene");
	expect_status(o, 0);
	assert_string_equal(o->out, "removed scene ctl-scene\n");
	free(o);
}

/* A scene whose device went away: activate lists it and exits 1. */
static void test_activate_partial_failure(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	char path[400];

	write_file(e, "doomed.scene",
		   "{\"id\":\"doomed\",\"targets\":{\"virtual/plug-1\":{\"state\":\"ON\"},"
		   "\"virtual/contact-1\":{\"contact\":true}}}",
		   path, sizeof(path));
	CTL(e, o, "scenes", "add", path);
	expect_status(o, 0);
	assert_string_equal(o->out, "added scene doomed\n");
	CTL(e, o, "remove", "virtual/contact-1");
	expect_status(o, 0);

	CTL(e, o, "activate", "doomed");
	expect_status(o, 1);
	expect_out(o, "error");
	expect_out(o, "is gone");
	expect_err(o, "error: 1 of 2 devices of scene doomed failed");

	CTL(e, o, "activate", "doomed", "--json");
	expect_status(o, 1);
	cJSON *data = cJSON_Parse(o->out);
	assert_int_equal(cJSON_GetObjectItem(data, "failed")->valueint, 1);
	cJSON_Delete(data);
	free(o);
}

/* ---- ecosystem and replace ----------------------------------------------- */

static void test_ecosystem(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	cJSON *data;

	CTL(e, o, "ecosystem");
	expect_status(o, 0);
	expect_out(o, "devices");
	expect_out(o, "virtual 5"); /* two of the seven were removed */
	expect_out(o, "capabilities");

	CTL(e, o, "ecosystem", "--dot");
	expect_status(o, 0);
	assert_int_equal(strncmp(o->out, "digraph", 7), 0);
	expect_out(o, "\"rule ctl-motion\" -> \"virtual/light-1\"");

	CTL(e, o, "ecosystem", "--json");
	expect_status(o, 0);
	data = cJSON_Parse(o->out);
	assert_int_equal(cJSON_GetObjectItem(data, "devices")->valueint, 5);
	assert_true(cJSON_IsObject(cJSON_GetObjectItem(data, "by_plugin")));
	cJSON_Delete(data);

	CTL(e, o, "ecosystem", "--graph");
	expect_status(o, 2);
	free(o);
}

static void test_replace(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	/* The rule sets a brightness, so only the other light can take over. */
	CTL(e, o, "replace", "virtual/light-1", "virtual/light-2");
	expect_status(o, 0);
	assert_string_equal(o->out,
			    "replaced virtual/light-1 by virtual/light-2 (rules and scenes moved: 1)\n");
	run_until(e, o, ARGS("rules", "--json"), "virtual/light-2");

	CTL(e, o, "replace", "virtual/light-1", "virtual/ghost");
	expect_status(o, 1);
	expect_err(o, "virtual/ghost");
	free(o);
}

/* ---- when something is down ---------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void test_broker_down(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();
	int port = free_port();

	assert_true(port > 0);
	run_port(e, port, o, ARGS("-t", "1", "health"));
	expect_status(o, 1);
	expect_err(o, "error: cannot connect to the MQTT broker at 127.0.0.1:");
	assert_true(o->elapsed_ms < 3000);
	assert_int_equal(o->out_len, 0);
	free(o);
}

/* Last: it stops the hub. */
static void test_hub_down(void **state)
{
	struct env *e = env_of(state);
	struct out *o = new_out();

	assert_int_equal(hearthd_signal_wait(&e->hub, SIGTERM, 3000), 0);
	CTL(e, o, "-t", "1", "health");
	expect_status(o, 1);
	expect_err(o, "no answer from hearth");
	assert_true(o->elapsed_ms < 3000);

	/* Every request fails the same way. */
	CTL(e, o, "-t", "1", "rules", "enable", "ctl-motion");
	expect_status(o, 1);
	expect_err(o, "no answer from hearth");
	free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_devices),
		cmocka_unit_test(test_show),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_get),
		cmocka_unit_test(test_rename_remove),
		cmocka_unit_test(test_permit_join_and_health),
		cmocka_unit_test(test_rules_add_list_toggle),
		cmocka_unit_test(test_rules_bad_input),
		cmocka_unit_test(test_rules_trigger_explain),
		cmocka_unit_test(test_scenes_capture_activate),
		cmocka_unit_test(test_activate_partial_failure),
		cmocka_unit_test(test_ecosystem),
		cmocka_unit_test(test_replace),
		cmocka_unit_test(test_broker_down),
		cmocka_unit_test(test_hub_down),
	};
	return cmocka_run_group_tests_name("integration: hearthctl", tests, group_setup,
					   group_teardown);
}
